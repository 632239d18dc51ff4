"""A 1-D convolutional network (for MNIST-1D-like signals) over plain-dict params.

Layout as in Flax and :func:`jax.lax.conv_general_dilated`: inputs ``NWC``
(batch, length, channels), kernels ``(kernel_size, in, out)`` (fans include
the receptive field, as ``jax.nn.initializers`` compute them; delta-orthogonal
kernels apply), ``'SAME'`` padding and stride 1, so every hidden layer has the
input's length.

Depth convention: ``depth`` is the number of hidden conv layers: one
``in_channels -> channels`` and ``depth - 1`` stacked ``channels ->
channels``, then global average pooling and a dense readout.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from jaxinit.base import Initializer
from jaxinit.models import base
from jaxinit.models.base import Activation, Layer, Params

_DIMENSIONS = ("NWC", "WIO", "NWC")


def conv(params: Params, x: jax.Array) -> jax.Array:
  """A stride-1 ``'SAME'`` 1-D convolution of ``x`` of shape ``(N, W, C)``."""
  y = jax.lax.conv_general_dilated(x, params["kernel"], window_strides=(1,),
                                   padding="SAME", dimension_numbers=_DIMENSIONS)
  return y + params["bias"] if "bias" in params else y


@dataclasses.dataclass(frozen=True)
class CNN1D:
  """Conv layers (stacked hidden ones via scan), global average pooling, readout.

  ``h^1 = conv(x, K^1)``, ``h^{l+1} = conv(phi(h^l), K^{l+1})`` and
  ``y = mean_positions(phi(h^L)) W^out + b^out``.

  Attributes:
    in_channels: input channels (1 for MNIST-1D).
    out_features: output size.
    channels: hidden channels.
    depth: number of hidden conv layers ``>= 1``.
    kernel_size: conv window length.
    activation: an activation name or elementwise callable.
    use_bias: whether layers have biases.
    kernel_init: initializer of the first conv (and of the others unless set).
    hidden_init: initializer of each ``(kernel_size, channels, channels)`` kernel.
    readout_init: initializer of the dense readout.
    bias_init: initializer of every bias.
    param_dtype: dtype of the params.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> net = CNN1D(in_channels=1, out_features=10, channels=4, depth=3)
    >>> params = net.init(jax.random.key(0))
    >>> params["hidden"]["kernel"].shape
    (2, 5, 4, 4)
    >>> y, inter = net.apply(params, jnp.ones((2, 40, 1)), capture=True)
    >>> y.shape, inter["preactivations"].shape
    ((2, 10), (3, 2, 40, 4))
  """

  in_channels: int
  out_features: int
  channels: int
  depth: int
  kernel_size: int = 5
  activation: str | Activation = "relu"
  use_bias: bool = True
  kernel_init: Initializer = dataclasses.field(default_factory=base.default_kernel_init)
  hidden_init: Initializer | None = None
  readout_init: Initializer | None = None
  bias_init: Initializer = dataclasses.field(default_factory=base.default_bias_init)
  param_dtype: DTypeLike = jnp.float32

  def __post_init__(self) -> None:
    base.check_sizes(in_channels=self.in_channels, out_features=self.out_features,
                     channels=self.channels, depth=self.depth,
                     kernel_size=self.kernel_size)
    base.resolve_activation(self.activation)

  def init(self, key: jax.Array) -> Params:
    """Draws params: ``{"input", "hidden" (stacked), "readout"}``.

    Args:
      key: a PRNG key.

    Returns:
      The params dict; ``params["hidden"]["kernel"]`` has shape
      ``(depth - 1, kernel_size, channels, channels)``.
    """
    k_in, k_hidden, k_out = jax.random.split(key, 3)
    hidden_init = self.kernel_init if self.hidden_init is None else self.hidden_init
    readout_init = self.kernel_init if self.readout_init is None else self.readout_init
    common = dict(bias_init=self.bias_init, use_bias=self.use_bias, dtype=self.param_dtype)
    k, c = self.kernel_size, self.channels
    return {
        "input": base.init_layer(k_in, (k, self.in_channels, c), self.kernel_init, **common),
        "hidden": base.init_stack(k_hidden, self.depth - 1, (k, c, c), hidden_init,
                                  **common),
        "readout": base.init_layer(k_out, (c, self.out_features), readout_init, **common),
    }

  def apply(self, params: Params, x: jax.Array, *, capture: bool = False,
            perturbations: jax.Array | None = None) -> Any:
    """Runs the network on ``x`` of shape ``(..., length, in_channels)``.

    Args:
      params: from :meth:`init`.
      x: signals with any leading batch shape, including none.
      capture: also return the intermediates.
      perturbations: optional array of the pre-activations' shape
        ``(depth, ..., length, channels)``, added to them.

    Returns:
      ``y`` of shape ``(..., out_features)``; with ``capture``, ``(y,
      {"preactivations": (depth, ..., length, channels)})``.
    """
    phi = base.resolve_activation(self.activation)
    batch_shape, signal_shape = x.shape[:-2], x.shape[-2:]
    # lax.conv wants exactly one batch axis: fold the leading ones into it.
    x = x.reshape((math.prod(batch_shape),) + signal_shape)
    if perturbations is not None:
      perturbations = perturbations.reshape(
          (self.depth, x.shape[0]) + perturbations.shape[-2:])
    h = base.add(conv(params["input"], x), base.perturbation(perturbations, 0))

    def layer(h, inputs):
      p, eps = inputs
      h = base.add(conv(p, phi(h)), eps)
      return h, h if capture else None

    rest = base.perturbation(perturbations, slice(1, None))
    h_last, hs = jax.lax.scan(layer, h, (params["hidden"], rest))
    pooled = jnp.mean(phi(h_last), axis=-2)
    y = base.dense(params["readout"], pooled).reshape(batch_shape + (-1,))
    if not capture:
      return y
    preacts = jnp.concatenate([h[None], hs])
    return y, {"preactivations": preacts.reshape((self.depth,) + batch_shape +
                                                 preacts.shape[-2:])}

  def layers(self, params: Params) -> tuple[Layer, ...]:
    """Kernels and biases in forward order: first conv, hidden convs, readout.

    Args:
      params: params, or a gradient of the same structure.

    Returns:
      ``(kernels, biases)`` groups stacked on a leading layer axis;
      ``depth + 1`` layers in all.
    """
    return (base.stacked(params["input"]), base.as_layer(params["hidden"]),
            base.stacked(params["readout"]))
