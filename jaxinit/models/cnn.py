"""A 1-D convolutional network (for MNIST-1D-like signals) as a Flax NNX module.

Layout as in Flax: inputs ``(..., length, channels)``, kernels
``(kernel_size, in, out)`` (fans include the receptive field, as
``jax.nn.initializers`` and the rules compute them; delta-orthogonal kernels
apply), ``'SAME'`` padding and stride 1, so every hidden layer has the
input's length.

Depth convention: ``depth`` is the number of hidden conv layers: one
``in_channels -> channels`` and ``depth - 1`` stacked ``channels ->
channels``, then global average pooling and a dense readout.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import DTypeLike

from jaxinit import checks
from jaxinit.base import Initializer
from jaxinit.models import base
from jaxinit.models.base import Activation


class CNN1D(base.Model):
  """Conv layers (stacked hidden ones, scanned), global average pooling, readout.

  ``h^1 = conv(x, K^1)``, ``h^{l+1} = conv(phi(h^l), K^{l+1})`` and
  ``y = mean_positions(phi(h^L)) W^out + b^out``. Params: ``input`` and
  ``hidden`` (``depth - 1`` stacked) ``nnx.Conv`` layers, ``readout`` an
  ``nnx.Linear``.

  Examples:
    >>> import jax.numpy as jnp
    >>> model = CNN1D(1, 10, channels=4, depth=3, rngs=0)
    >>> model.hidden.kernel.shape
    (2, 5, 4, 4)
    >>> y, inter = model(jnp.ones((2, 40, 1)), capture=True)
    >>> y.shape, inter["preactivations"].shape
    ((2, 10), (3, 2, 40, 4))
  """

  layer_order = ("input", "hidden", "readout")

  def __init__(self, in_channels: int, out_features: int, channels: int, depth: int, *,
               kernel_size: int = 5, activation: str | Activation = "relu",
               use_bias: bool = True, kernel_init: Initializer | None = None,
               hidden_init: Initializer | None = None,
               readout_init: Initializer | None = None,
               bias_init: Initializer | None = None, rules: Any = None,
               param_dtype: DTypeLike = jnp.float32, rngs: Any) -> None:
    """Builds the layers from shapes and draws them once, by rules.

    Args:
      in_channels: input channels (1 for MNIST-1D).
      out_features: output size.
      channels: hidden channels.
      depth: number of hidden conv layers ``>= 1``.
      kernel_size: conv window length.
      activation: an activation name or elementwise callable.
      use_bias: whether layers have biases.
      kernel_init: initializer of the first conv (and of the others unless
        set); He-normal by default.
      hidden_init: initializer of each ``(kernel_size, channels, channels)`` kernel.
      readout_init: initializer of the dense readout.
      bias_init: initializer of every bias; zeros by default.
      rules: rules that take precedence over the roles' initializers.
      param_dtype: dtype of the params.
      rngs: an ``nnx.Rngs``, a key or an int seed.
    """
    self.in_channels = checks.positive_int("in_channels", in_channels)
    self.out_features = checks.positive_int("out_features", out_features)
    self.channels = checks.positive_int("channels", channels)
    self.depth = checks.positive_int("depth", depth)
    self.kernel_size = checks.positive_int("kernel_size", kernel_size)
    base.resolve_activation(activation)
    self.activation = activation
    self.use_bias = checks.boolean("use_bias", use_bias)
    self.param_dtype = param_dtype
    kernel_init = kernel_init if kernel_init is not None else base.default_kernel_init()
    roles = [("input/kernel", kernel_init, "input"),
             ("hidden/kernel", kernel_init if hidden_init is None else hidden_init, "hidden"),
             ("readout/kernel", kernel_init if readout_init is None else readout_init,
              "readout")]
    if self.use_bias:
      roles.append(("*bias", base.default_bias_init() if bias_init is None else bias_init,
                    "bias"))
    common = dict(use_bias=self.use_bias, param_dtype=param_dtype)

    def conv(c_in: int, r: nnx.Rngs) -> nnx.Conv:
      return nnx.Conv(c_in, self.channels, (self.kernel_size,), padding="SAME", **common,
                      rngs=r)

    def build(r: nnx.Rngs) -> tuple[nnx.Conv, nnx.Conv, nnx.Linear]:
      return (conv(self.in_channels, r),
              base.stack(self.depth - 1, lambda r: conv(self.channels, r), r),
              nnx.Linear(self.channels, self.out_features, **common, rngs=r))

    self.input, self.hidden, self.readout = base.from_shapes(build)
    self.initialize(base.model_rules(rules, roles), rngs)

  def __call__(self, x: jax.Array, *, capture: bool = False,
               perturbations: jax.Array | None = None) -> Any:
    """Runs the network on ``x`` of shape ``(..., length, in_channels)``.

    Args:
      x: signals with any leading batch shape, including none.
      capture: also return the intermediates.
      perturbations: optional array of the pre-activations' shape
        ``(depth, ..., length, channels)``, added to them.

    Returns:
      ``y`` of shape ``(..., out_features)``; with ``capture``, ``(y,
      {"preactivations": (depth, ..., length, channels)})``.
    """
    return base.chain(self.input, self.hidden, self.readout,
                      base.resolve_activation(self.activation), x, capture=capture,
                      perturbations=perturbations, pool=lambda h: jnp.mean(h, axis=-2))
