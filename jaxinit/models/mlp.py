"""Multilayer perceptrons as pure functions over plain-dict params.

A network is a frozen dataclass of hyperparameters (hashable, so it can be a
static argument of :func:`jax.jit`) with ``init(key) -> params`` and
``apply(params, x) -> y``. Both are pure, so a population of networks is just
``jax.vmap(net.init)(keys)`` and ``jax.vmap(net.apply, (0, None))(params, x)``.

Depth convention: ``depth`` is the number of hidden layers (for
:class:`ResMLP`, of residual blocks). An :class:`MLP` of depth ``L`` has
``L + 1`` weight matrices: ``in -> width``, ``L - 1`` stacked
``width -> width`` ones, and ``width -> out``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from jaxinit.base import Initializer
from jaxinit.models import base
from jaxinit.models.base import Activation, Layer, Params


def _interleave(a: jax.Array, b: jax.Array) -> jax.Array:
  """``a_0, b_0, a_1, b_1, ...`` along the leading axis."""
  return jnp.stack([a, b], axis=1).reshape((-1,) + a.shape[1:])


def _or(init: Initializer | None, fallback: Initializer) -> Initializer:
  return fallback if init is None else init


@dataclasses.dataclass(frozen=True)
class MLP:
  """A fully connected network ``x -> h^1 -> ... -> h^L -> y``.

  ``h^1 = x W^1 + b^1``, ``h^{l+1} = phi(h^l) W^{l+1} + b^{l+1}`` and the
  readout is linear: ``y = phi(h^L) W^out + b^out``.

  Attributes:
    in_features: input size.
    out_features: output size.
    width: hidden-layer size.
    depth: number of hidden layers ``L >= 1`` (``L + 1`` weight matrices).
    activation: an activation name of :func:`jaxinit.gains.resolve_activation`
      or an elementwise callable.
    use_bias: whether layers have biases.
    kernel_init: initializer of the first layer (and of the others unless set).
    hidden_init: initializer of each ``width x width`` hidden matrix.
    readout_init: initializer of the readout.
    bias_init: initializer of every bias.
    param_dtype: dtype of the params.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> net = MLP(in_features=3, out_features=2, width=8, depth=4)
    >>> params = net.init(jax.random.key(0))
    >>> params["hidden"]["kernel"].shape  # depth - 1 stacked hidden layers
    (3, 8, 8)
    >>> y, inter = net.apply(params, jnp.ones((5, 3)), capture=True)
    >>> y.shape, inter["preactivations"].shape
    ((5, 2), (4, 5, 8))
  """

  in_features: int
  out_features: int
  width: int
  depth: int
  activation: str | Activation = "relu"
  use_bias: bool = True
  kernel_init: Initializer = dataclasses.field(default_factory=base.default_kernel_init)
  hidden_init: Initializer | None = None
  readout_init: Initializer | None = None
  bias_init: Initializer = dataclasses.field(default_factory=base.default_bias_init)
  param_dtype: DTypeLike = jnp.float32

  def __post_init__(self) -> None:
    base.check_sizes(in_features=self.in_features, out_features=self.out_features,
                     width=self.width, depth=self.depth)
    base.resolve_activation(self.activation)  # an unknown name fails here

  def init(self, key: jax.Array) -> Params:
    """Draws params: ``{"input", "hidden" (stacked), "readout"}``.

    Args:
      key: a PRNG key.

    Returns:
      The params dict; ``params["hidden"]["kernel"]`` has shape
      ``(depth - 1, width, width)``.
    """
    k_in, k_hidden, k_out = jax.random.split(key, 3)
    hidden_init = _or(self.hidden_init, self.kernel_init)
    readout_init = _or(self.readout_init, self.kernel_init)
    common = dict(bias_init=self.bias_init, use_bias=self.use_bias, dtype=self.param_dtype)
    return {
        "input": base.init_layer(k_in, (self.in_features, self.width), self.kernel_init,
                                 **common),
        "hidden": base.init_stack(k_hidden, self.depth - 1, (self.width, self.width),
                                  hidden_init, **common),
        "readout": base.init_layer(k_out, (self.width, self.out_features), readout_init,
                                   **common),
    }

  def apply(self, params: Params, x: jax.Array, *, capture: bool = False,
            perturbations: jax.Array | None = None) -> Any:
    """Runs the network on ``x`` of shape ``(..., in_features)``.

    Args:
      params: from :meth:`init` (or anything of that structure).
      x: inputs; any leading batch shape, including none.
      capture: also return the intermediates.
      perturbations: optional array of the pre-activations' shape
        ``(depth, ..., width)``, added to them (its gradient is the gradient
        with respect to the pre-activations).

    Returns:
      ``y`` of shape ``(..., out_features)``; with ``capture``, ``(y,
      {"preactivations": (depth, ..., width)})``.
    """
    phi = base.resolve_activation(self.activation)
    h = base.add(base.dense(params["input"], x), base.perturbation(perturbations, 0))

    def layer(h, inputs):
      p, eps = inputs
      h = base.add(base.dense(p, phi(h)), eps)
      return h, h if capture else None

    rest = base.perturbation(perturbations, slice(1, None))
    h_last, hs = jax.lax.scan(layer, h, (params["hidden"], rest))
    y = base.dense(params["readout"], phi(h_last))
    if not capture:
      return y
    return y, {"preactivations": jnp.concatenate([h[None], hs])}

  def layers(self, params: Params) -> tuple[Layer, ...]:
    """Kernels and biases in forward order: input, the hidden stack, readout.

    Args:
      params: params, or a gradient of the same structure.

    Returns:
      ``(kernels, biases)`` groups, each stacked on a leading layer axis
      (biases None without ``use_bias``); ``depth + 1`` layers in all.
    """
    return (base.stacked(params["input"]), base.as_layer(params["hidden"]),
            base.stacked(params["readout"]))


@dataclasses.dataclass(frozen=True)
class ResMLP:
  """A pre-activation residual MLP.

  A stem ``x_0 = x W^in + b^in``; ``depth`` blocks
  ``x_l = x_{l-1} + branch_scale * f_l(x_{l-1})`` with the two-layer branch
  ``f(x) = phi(phi(x) W^hidden + b) W^branch + b'``; and the readout
  ``y = phi(x_L) W^out + b^out``. The stream ``x_l`` is what each block's
  first ``phi`` acts on, so it is the probed pre-activation.

  Attributes:
    in_features: input size.
    out_features: output size.
    width: stream and branch width.
    depth: number of residual blocks ``>= 1``.
    activation: an activation name or elementwise callable.
    use_bias: whether layers have biases.
    branch_scale: the residual-branch multiplier ``alpha``.
    kernel_init: initializer of the stem (and of the others unless set).
    hidden_init: initializer of each branch's first matrix.
    branch_init: initializer of each branch's last matrix (e.g. zeros for
      branches that start as the identity map).
    readout_init: initializer of the readout.
    bias_init: initializer of every bias.
    param_dtype: dtype of the params.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> net = ResMLP(in_features=3, out_features=2, width=8, depth=3,
    ...              branch_scale=0.5)
    >>> params = net.init(jax.random.key(0))
    >>> y, inter = net.apply(params, jnp.ones((5, 3)), capture=True)
    >>> sorted(inter), inter["preactivations"].shape
    (['branch', 'inner', 'preactivations'], (3, 5, 8))
  """

  in_features: int
  out_features: int
  width: int
  depth: int
  activation: str | Activation = "relu"
  use_bias: bool = True
  branch_scale: float = 1.0
  kernel_init: Initializer = dataclasses.field(default_factory=base.default_kernel_init)
  hidden_init: Initializer | None = None
  branch_init: Initializer | None = None
  readout_init: Initializer | None = None
  bias_init: Initializer = dataclasses.field(default_factory=base.default_bias_init)
  param_dtype: DTypeLike = jnp.float32

  def __post_init__(self) -> None:
    base.check_sizes(in_features=self.in_features, out_features=self.out_features,
                     width=self.width, depth=self.depth)
    base.resolve_activation(self.activation)

  def init(self, key: jax.Array) -> Params:
    """Draws params: ``{"input", "blocks": {"hidden", "branch"} (stacked), "readout"}``.

    Args:
      key: a PRNG key.

    Returns:
      The params dict; each ``params["blocks"][...]["kernel"]`` has shape
      ``(depth, width, width)``.
    """
    k_in, k_hidden, k_branch, k_out = jax.random.split(key, 4)
    hidden_init = _or(self.hidden_init, self.kernel_init)
    branch_init = _or(self.branch_init, hidden_init)
    readout_init = _or(self.readout_init, self.kernel_init)
    common = dict(bias_init=self.bias_init, use_bias=self.use_bias, dtype=self.param_dtype)
    square = (self.width, self.width)
    return {
        "input": base.init_layer(k_in, (self.in_features, self.width), self.kernel_init,
                                 **common),
        "blocks": {
            "hidden": base.init_stack(k_hidden, self.depth, square, hidden_init, **common),
            "branch": base.init_stack(k_branch, self.depth, square, branch_init, **common),
        },
        "readout": base.init_layer(k_out, (self.width, self.out_features), readout_init,
                                   **common),
    }

  def apply(self, params: Params, x: jax.Array, *, capture: bool = False,
            perturbations: jax.Array | None = None) -> Any:
    """Runs the network on ``x`` of shape ``(..., in_features)``.

    Args:
      params: from :meth:`init`.
      x: inputs; any leading batch shape, including none.
      capture: also return the intermediates.
      perturbations: optional ``(depth, ..., width)`` array added to the
        stream after each block.

    Returns:
      ``y``; with ``capture``, ``(y, intermediates)`` where, each of shape
      ``(depth, ..., width)``: ``"preactivations"`` is the stream after each
      block, ``"branch"`` each branch's output ``f_l`` before scaling, and
      ``"inner"`` each branch's inner pre-activation.
    """
    phi = base.resolve_activation(self.activation)
    alpha = self.branch_scale

    def block(stream, inputs):
      p, eps = inputs
      inner = base.dense(p["hidden"], phi(stream))
      branch = base.dense(p["branch"], phi(inner))
      stream = base.add(stream + alpha * branch, eps)
      return stream, (stream, branch, inner) if capture else None

    stem = base.dense(params["input"], x)
    stream, captured = jax.lax.scan(block, stem, (params["blocks"], perturbations))
    y = base.dense(params["readout"], phi(stream))
    if not capture:
      return y
    streams, branches, inners = captured
    return y, {"preactivations": streams, "branch": branches, "inner": inners}

  def layers(self, params: Params) -> tuple[Layer, ...]:
    """Kernels and biases in forward order: stem, blocks, readout.

    The blocks' matrices are interleaved (hidden_1, branch_1, hidden_2, ...),
    ``2 * depth + 2`` layers in all.

    Args:
      params: params, or a gradient of the same structure.

    Returns:
      ``(kernels, biases)`` groups stacked on a leading layer axis.
    """
    blocks = params["blocks"]
    kernels = _interleave(blocks["hidden"]["kernel"], blocks["branch"]["kernel"])
    biases = (_interleave(blocks["hidden"]["bias"], blocks["branch"]["bias"])
              if "bias" in blocks["hidden"] else None)
    return (base.stacked(params["input"]), (kernels, biases),
            base.stacked(params["readout"]))
