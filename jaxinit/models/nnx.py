"""The networks of :mod:`jaxinit.models` as Flax NNX modules.

Idiomatic Flax: ``nnx.Linear`` / ``nnx.Conv`` layers taking jaxinit
initializers as ``kernel_init=`` and ``bias_init=``; hidden layers of equal
shape created with ``nnx.vmap`` over split RNG streams (so each is one
initializer draw for one matrix) and run with ``nnx.scan``.

Attribute names match the functional params layout, so
``nnx.to_pure_dict(nnx.state(module, nnx.Param))`` *is* the functional params
dict: :func:`as_network` turns a module into a :class:`~jaxinit.models.Network`
(running the module's own code) and its params, which is how the probes see
NNX modules.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import DTypeLike

from jaxinit.base import Initializer
from jaxinit.models import base, cnn, mlp
from jaxinit.models.base import Activation, Layer, Network, Params


def _linear(in_features: int, out_features: int, init: Initializer, common: dict[str, Any],
            rngs: nnx.Rngs) -> nnx.Linear:
  return nnx.Linear(in_features, out_features, kernel_init=init, **common, rngs=rngs)


def _stack(num: int, make: Any, rngs: nnx.Rngs) -> Any:
  """``num`` modules built by ``make(rngs)``, stacked on a leading axis."""

  @nnx.split_rngs(splits=num)
  @nnx.vmap(in_axes=(0,), out_axes=0)
  def build(rngs: nnx.Rngs) -> Any:
    return make(rngs)

  return build(rngs)


def _defaults(kernel_init: Initializer | None,
              bias_init: Initializer | None) -> tuple[Initializer, Initializer]:
  return (base.default_kernel_init() if kernel_init is None else kernel_init,
          base.default_bias_init() if bias_init is None else bias_init)


def _or(init: Initializer | None, fallback: Initializer) -> Initializer:
  return fallback if init is None else init


def _scan_layers(layer_fn: Any, carry: jax.Array, layers: Any,
                 perturbations: jax.Array | None) -> tuple[jax.Array, Any]:
  """``nnx.scan`` of ``layer_fn(carry, layer, eps)`` over stacked layers."""
  scan = nnx.scan(layer_fn, in_axes=(nnx.Carry, 0, 0), out_axes=(nnx.Carry, 0))
  return scan(carry, layers, perturbations)


class MLP(nnx.Module):
  """NNX twin of :class:`jaxinit.models.MLP` (same arguments, same math).

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> import jaxinit.models.nnx as jnnx
    >>> model = jnnx.MLP(3, 2, width=8, depth=4, rngs=nnx.Rngs(0))
    >>> model.hidden.kernel.shape
    (3, 8, 8)
    >>> y, inter = model(jnp.ones((5, 3)), capture=True)
    >>> inter["preactivations"].shape
    (4, 5, 8)
  """

  def __init__(self, in_features: int, out_features: int, width: int, depth: int, *,
               activation: str | Activation = "relu", use_bias: bool = True,
               kernel_init: Initializer | None = None,
               hidden_init: Initializer | None = None,
               readout_init: Initializer | None = None,
               bias_init: Initializer | None = None,
               param_dtype: DTypeLike = jnp.float32, rngs: nnx.Rngs) -> None:
    """Builds the layers.

    Args:
      in_features: input size.
      out_features: output size.
      width: hidden-layer size.
      depth: number of hidden layers ``L >= 1``.
      activation: an activation name or elementwise callable.
      use_bias: whether layers have biases.
      kernel_init: initializer of the first layer (and of the others unless
        set); He-normal by default.
      hidden_init: initializer of each hidden matrix.
      readout_init: initializer of the readout.
      bias_init: initializer of every bias; zeros by default.
      param_dtype: dtype of the params.
      rngs: Flax RNG streams (``params`` is used).
    """
    kernel_init, bias_init = _defaults(kernel_init, bias_init)
    self.spec = mlp.MLP(in_features=in_features, out_features=out_features, width=width,
                        depth=depth, activation=activation, use_bias=use_bias,
                        kernel_init=kernel_init, hidden_init=hidden_init,
                        readout_init=readout_init, bias_init=bias_init,
                        param_dtype=param_dtype)
    common = dict(use_bias=use_bias, bias_init=bias_init, param_dtype=param_dtype)
    self.input = _linear(in_features, width, kernel_init, common, rngs)
    self.hidden = _stack(depth - 1, lambda r: _linear(
        width, width, _or(hidden_init, kernel_init), common, r), rngs)
    self.readout = _linear(width, out_features, _or(readout_init, kernel_init), common,
                           rngs)

  def __call__(self, x: jax.Array, *, capture: bool = False,
               perturbations: jax.Array | None = None) -> Any:
    """As :meth:`jaxinit.models.MLP.apply`."""
    phi = base.resolve_activation(self.spec.activation)
    h = base.add(self.input(x), base.perturbation(perturbations, 0))

    def layer(h, linear, eps):
      h = base.add(linear(phi(h)), eps)
      return h, h if capture else None

    h_last, hs = _scan_layers(layer, h, self.hidden,
                              base.perturbation(perturbations, slice(1, None)))
    y = self.readout(phi(h_last))
    return (y, {"preactivations": jnp.concatenate([h[None], hs])}) if capture else y


class _Block(nnx.Module):
  """One residual branch: ``phi(phi(x) W^hidden + b) W^branch + b'``."""

  def __init__(self, width: int, hidden_init: Initializer, branch_init: Initializer,
               common: dict[str, Any], rngs: nnx.Rngs) -> None:
    self.hidden = _linear(width, width, hidden_init, common, rngs)
    self.branch = _linear(width, width, branch_init, common, rngs)


class ResMLP(nnx.Module):
  """NNX twin of :class:`jaxinit.models.ResMLP` (same arguments, same math).

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> import jaxinit.models.nnx as jnnx
    >>> model = jnnx.ResMLP(3, 2, width=8, depth=3, branch_scale=0.5, rngs=nnx.Rngs(0))
    >>> model.blocks.branch.kernel.shape
    (3, 8, 8)
  """

  def __init__(self, in_features: int, out_features: int, width: int, depth: int, *,
               activation: str | Activation = "relu", use_bias: bool = True,
               branch_scale: float = 1.0, kernel_init: Initializer | None = None,
               hidden_init: Initializer | None = None,
               branch_init: Initializer | None = None,
               readout_init: Initializer | None = None,
               bias_init: Initializer | None = None,
               param_dtype: DTypeLike = jnp.float32, rngs: nnx.Rngs) -> None:
    """Builds the layers.

    Args:
      in_features: input size.
      out_features: output size.
      width: stream and branch width.
      depth: number of residual blocks ``>= 1``.
      activation: an activation name or elementwise callable.
      use_bias: whether layers have biases.
      branch_scale: the residual-branch multiplier.
      kernel_init: initializer of the stem (and of the others unless set).
      hidden_init: initializer of each branch's first matrix.
      branch_init: initializer of each branch's last matrix.
      readout_init: initializer of the readout.
      bias_init: initializer of every bias.
      param_dtype: dtype of the params.
      rngs: Flax RNG streams.
    """
    kernel_init, bias_init = _defaults(kernel_init, bias_init)
    self.spec = mlp.ResMLP(in_features=in_features, out_features=out_features, width=width,
                           depth=depth, activation=activation, use_bias=use_bias,
                           branch_scale=branch_scale, kernel_init=kernel_init,
                           hidden_init=hidden_init, branch_init=branch_init,
                           readout_init=readout_init, bias_init=bias_init,
                           param_dtype=param_dtype)
    common = dict(use_bias=use_bias, bias_init=bias_init, param_dtype=param_dtype)
    hidden_init = _or(hidden_init, kernel_init)
    branch_init = _or(branch_init, hidden_init)
    self.input = _linear(in_features, width, kernel_init, common, rngs)
    self.blocks = _stack(depth, lambda r: _Block(width, hidden_init, branch_init, common, r),
                         rngs)
    self.readout = _linear(width, out_features, _or(readout_init, kernel_init), common,
                           rngs)

  def __call__(self, x: jax.Array, *, capture: bool = False,
               perturbations: jax.Array | None = None) -> Any:
    """As :meth:`jaxinit.models.ResMLP.apply`."""
    phi = base.resolve_activation(self.spec.activation)
    alpha = self.spec.branch_scale

    def block(stream, blk, eps):
      inner = blk.hidden(phi(stream))
      branch = blk.branch(phi(inner))
      stream = base.add(stream + alpha * branch, eps)
      return stream, (stream, branch, inner) if capture else None

    stream, captured = _scan_layers(block, self.input(x), self.blocks, perturbations)
    y = self.readout(phi(stream))
    if not capture:
      return y
    streams, branches, inners = captured
    return y, {"preactivations": streams, "branch": branches, "inner": inners}


class CNN1D(nnx.Module):
  """NNX twin of :class:`jaxinit.models.CNN1D` (same arguments, same math).

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> import jaxinit.models.nnx as jnnx
    >>> model = jnnx.CNN1D(1, 10, channels=4, depth=3, rngs=nnx.Rngs(0))
    >>> model(jnp.ones((2, 40, 1))).shape
    (2, 10)
  """

  def __init__(self, in_channels: int, out_features: int, channels: int, depth: int, *,
               kernel_size: int = 5, activation: str | Activation = "relu",
               use_bias: bool = True, kernel_init: Initializer | None = None,
               hidden_init: Initializer | None = None,
               readout_init: Initializer | None = None,
               bias_init: Initializer | None = None,
               param_dtype: DTypeLike = jnp.float32, rngs: nnx.Rngs) -> None:
    """Builds the layers.

    Args:
      in_channels: input channels.
      out_features: output size.
      channels: hidden channels.
      depth: number of hidden conv layers ``>= 1``.
      kernel_size: conv window length.
      activation: an activation name or elementwise callable.
      use_bias: whether layers have biases.
      kernel_init: initializer of the first conv (and of the others unless set).
      hidden_init: initializer of each hidden conv kernel.
      readout_init: initializer of the dense readout.
      bias_init: initializer of every bias.
      param_dtype: dtype of the params.
      rngs: Flax RNG streams.
    """
    kernel_init, bias_init = _defaults(kernel_init, bias_init)
    self.spec = cnn.CNN1D(in_channels=in_channels, out_features=out_features,
                          channels=channels, depth=depth, kernel_size=kernel_size,
                          activation=activation, use_bias=use_bias, kernel_init=kernel_init,
                          hidden_init=hidden_init, readout_init=readout_init,
                          bias_init=bias_init, param_dtype=param_dtype)
    common = dict(use_bias=use_bias, bias_init=bias_init, param_dtype=param_dtype)

    def conv(c_in: int, init: Initializer, r: nnx.Rngs) -> nnx.Conv:
      return nnx.Conv(c_in, channels, (kernel_size,), padding="SAME", kernel_init=init,
                      **common, rngs=r)

    self.input = conv(in_channels, kernel_init, rngs)
    self.hidden = _stack(depth - 1, lambda r: conv(channels, _or(hidden_init, kernel_init),
                                                   r), rngs)
    self.readout = _linear(channels, out_features, _or(readout_init, kernel_init), common,
                           rngs)

  def __call__(self, x: jax.Array, *, capture: bool = False,
               perturbations: jax.Array | None = None) -> Any:
    """As :meth:`jaxinit.models.CNN1D.apply`."""
    phi = base.resolve_activation(self.spec.activation)
    h = base.add(self.input(x), base.perturbation(perturbations, 0))

    def layer(h, conv, eps):
      h = base.add(conv(phi(h)), eps)
      return h, h if capture else None

    h_last, hs = _scan_layers(layer, h, self.hidden,
                              base.perturbation(perturbations, slice(1, None)))
    y = self.readout(jnp.mean(phi(h_last), axis=-2))
    return (y, {"preactivations": jnp.concatenate([h[None], hs])}) if capture else y


@dataclasses.dataclass(frozen=True)
class NNXNetwork:
  """An NNX module seen as a :class:`~jaxinit.models.Network`.

  ``apply`` merges the module's graph with the given params and calls it, so
  the probes run the module's own code; ``layers`` reads the params layout,
  which is the functional twin's.

  Attributes:
    graphdef: the module's static structure, from ``nnx.split``.
    spec: the functional twin (for ``layers``).
  """

  graphdef: Any
  spec: Network

  def apply(self, params: Params, x: jax.Array, *, capture: bool = False,
            perturbations: jax.Array | None = None) -> Any:
    """Calls the module with ``params`` in place of its own."""
    module = nnx.merge(self.graphdef, params)
    return module(x, capture=capture, perturbations=perturbations)

  def layers(self, params: Params) -> tuple[Layer, ...]:
    """As the functional twin's ``layers``."""
    return self.spec.layers(params)


def params_of(module: MLP | ResMLP | CNN1D) -> Params:
  """The module's params as the functional networks' plain nested dict.

  Args:
    module: a module of this file.

  Returns:
    A params dict usable with ``module.spec.apply``.

  Examples:
    >>> from flax import nnx
    >>> import jaxinit.models.nnx as jnnx
    >>> sorted(params_of(jnnx.MLP(3, 2, width=8, depth=4, rngs=nnx.Rngs(0))))
    ['hidden', 'input', 'readout']
  """
  return nnx.to_pure_dict(nnx.state(module, nnx.Param))


def as_network(module: MLP | ResMLP | CNN1D) -> tuple[NNXNetwork, Params]:
  """Splits a module into a :class:`NNXNetwork` and its params, for the probes.

  Args:
    module: a module of this file.

  Returns:
    ``(network, params)``; ``network.apply(params, x)`` equals ``module(x)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> import jaxinit.models.nnx as jnnx
    >>> module = jnnx.MLP(3, 2, width=8, depth=4, rngs=nnx.Rngs(0))
    >>> net, params = as_network(module)
    >>> bool(jnp.allclose(net.apply(params, jnp.ones(3)), module(jnp.ones(3))))
    True
  """
  graphdef, state = nnx.split(module)
  return NNXNetwork(graphdef, module.spec), nnx.to_pure_dict(state)
