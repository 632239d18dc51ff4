"""What the networks of :mod:`jaxinit.models` share: the params layout, the
:class:`Network` protocol the probes rely on, and the dense-layer helpers.

Params are plain nested dicts of arrays. Every network here stores them as

* ``"input"``: the first layer, ``{"kernel", "bias"?}``;
* hidden layers of equal shape, stacked along a leading depth axis (applied
  with :func:`jax.lax.scan`, so compile time does not grow with depth);
* ``"readout"``: the last layer, ``{"kernel", "bias"?}``.

Kernels have the unit (output feature or channel) axis last, as in Flax.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import jax
from jax.typing import DTypeLike

from jaxinit import gains, presets
from jaxinit.base import Initializer

Params = dict[str, Any]
"""A network's parameters: a nested dict of arrays."""

Layer = tuple[jax.Array, jax.Array | None]
"""``(kernels, biases)`` of a group of layers stacked on a leading axis."""

Activation = Callable[[jax.Array], jax.Array]


@runtime_checkable
class Network(Protocol):
  """What the probes need from a network.

  ``apply(params, x, capture=True)`` returns ``(output, intermediates)`` where
  ``intermediates["preactivations"]`` stacks the probed per-layer signal on a
  leading layer axis; ``perturbations`` (an array of that shape) is added to
  that signal, so its gradient is the gradient with respect to the signal.
  ``layers(params)`` (or of a gradient with the params' structure) lists the
  kernels in forward order, the readout last.
  """

  def apply(self, params: Params, x: jax.Array, *, capture: bool = False,
            perturbations: jax.Array | None = None) -> Any:
    ...

  def layers(self, params: Params) -> tuple[Layer, ...]:
    ...


def default_kernel_init() -> Initializer:
  """He-normal, matching the networks' default ReLU."""
  return presets.he_normal()


def default_bias_init() -> Initializer:
  """Zeros."""
  return presets.zeros


def resolve_activation(activation: str | Activation) -> Activation:
  """The elementwise function for an activation name or callable."""
  return gains.resolve_activation(activation)


def dense(params: Params, x: jax.Array) -> jax.Array:
  """``x @ kernel + bias`` over the last axis of ``x`` (bias if present)."""
  y = x @ params["kernel"]
  return y + params["bias"] if "bias" in params else y


def init_layer(key: jax.Array, shape: tuple[int, ...], kernel_init: Initializer,
               bias_init: Initializer, use_bias: bool, dtype: DTypeLike) -> Params:
  """One layer: ``kernel_init(k1, shape)`` and ``bias_init(k2, shape[-1:])``."""
  k_kernel, k_bias = jax.random.split(key)
  params = {"kernel": kernel_init(k_kernel, shape, dtype)}
  if use_bias:
    params["bias"] = bias_init(k_bias, shape[-1:], dtype)
  return params


def init_stack(key: jax.Array, num: int, shape: tuple[int, ...], kernel_init: Initializer,
               bias_init: Initializer, use_bias: bool, dtype: DTypeLike) -> Params:
  """``num`` layers stacked on a leading axis.

  The initializer is vmapped over split keys, so layer ``i`` is exactly
  ``init_layer(split(key, num)[i], shape, ...)``: one draw of the initializer
  for one matrix, never one draw for a ``(num, *shape)`` tensor (whose fans
  the initializer would compute differently).
  """
  keys = jax.random.split(key, num)
  return jax.vmap(lambda k: init_layer(k, shape, kernel_init, bias_init, use_bias,
                                       dtype))(keys)


def stacked(layer: Params) -> Layer:
  """An unstacked layer as a stack of one, for :meth:`Network.layers`."""
  bias = layer.get("bias")
  return layer["kernel"][None], None if bias is None else bias[None]


def as_layer(stack: Params) -> Layer:
  """A stack of layers as ``(kernels, biases)``."""
  return stack["kernel"], stack.get("bias")


def check_sizes(**sizes: int) -> None:
  """Raises ValueError unless every size is a positive int."""
  for name, value in sizes.items():
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError(f"{name} must be a positive int, got {value!r}")


def perturbation(perturbations: jax.Array | None, index: int | slice) -> jax.Array | None:
  """``perturbations[index]``, or None when there are none."""
  return None if perturbations is None else perturbations[index]


def add(x: jax.Array, eps: jax.Array | None) -> jax.Array:
  """``x + eps``; ``x`` itself when ``eps`` is None (no zeros traced in)."""
  return x if eps is None else x + eps

