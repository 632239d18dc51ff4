"""Multilayer perceptrons as Flax NNX modules.

Depth convention: ``depth`` is the number of hidden layers (for
:class:`ResMLP`, of residual blocks). An :class:`MLP` of depth ``L`` has
``L + 1`` weight matrices: ``in -> width``, ``L - 1`` stacked
``width -> width`` ones, and ``width -> out``. Parameters are drawn by rules
(:mod:`jaxinit.models.base`): each is :func:`jaxinit.rules.draw` at its path.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import DTypeLike

from jaxinit import checks
from jaxinit.base import Initializer
from jaxinit.models import base
from jaxinit.models.base import Activation


def _or(init: Initializer | None, fallback: Initializer) -> Initializer:
  return fallback if init is None else init


def _config(model: base.Model, in_features: int, out_features: int, width: int, depth: int,
            activation: str | Activation, use_bias: bool, param_dtype: DTypeLike) -> None:
  """Checks and keeps the sizes shared by the MLPs."""
  model.in_features = checks.positive_int("in_features", in_features)
  model.out_features = checks.positive_int("out_features", out_features)
  model.width = checks.positive_int("width", width)
  model.depth = checks.positive_int("depth", depth)
  base.resolve_activation(activation)  # an unknown name fails here
  model.activation = activation
  model.use_bias = checks.boolean("use_bias", use_bias)
  model.param_dtype = param_dtype


class MLP(base.Model):
  """A fully connected network ``x -> h^1 -> ... -> h^L -> y``.

  ``h^1 = x W^1 + b^1``, ``h^{l+1} = phi(h^l) W^{l+1} + b^{l+1}`` and the
  readout is linear: ``y = phi(h^L) W^out + b^out``. Params: ``input``,
  ``hidden`` (``depth - 1`` layers stacked on a leading axis) and
  ``readout``, each an ``nnx.Linear`` with ``kernel`` (and ``bias``).

  Examples:
    >>> import jax.numpy as jnp, jaxinit
    >>> model = MLP(3, 2, width=8, depth=4, rngs=0)
    >>> model.hidden.kernel.shape  # depth - 1 stacked hidden layers
    (3, 8, 8)
    >>> y, inter = model(jnp.ones((5, 3)), capture=True)
    >>> y.shape, inter["preactivations"].shape
    ((5, 2), (4, 5, 8))
    >>> [r.label for r in model.rules]
    ['input', 'hidden', 'readout', 'bias']
  """

  layer_order = ("input", "hidden", "readout")

  def __init__(self, in_features: int, out_features: int, width: int, depth: int,
               activation: str | Activation = "relu", *, use_bias: bool = True,
               kernel_init: Initializer | None = None,
               hidden_init: Initializer | None = None,
               readout_init: Initializer | None = None,
               bias_init: Initializer | None = None, rules: Any = None,
               param_dtype: DTypeLike = jnp.float32, rngs: Any) -> None:
    """Builds the layers from shapes and draws them once, by rules.

    Args:
      in_features: input size.
      out_features: output size.
      width: hidden-layer size.
      depth: number of hidden layers ``L >= 1`` (``L + 1`` weight matrices).
      activation: an activation name of :func:`jaxinit.gains.resolve_activation`
        or an elementwise callable.
      use_bias: whether layers have biases.
      kernel_init: initializer of the first layer (and of the others unless
        set); He-normal by default.
      hidden_init: initializer of each ``width x width`` hidden matrix.
      readout_init: initializer of the readout.
      bias_init: initializer of every bias; zeros by default.
      rules: rules that take precedence over the roles' initializers (a
        :class:`~jaxinit.rules.RuleSet` or ``(pattern, init)`` pairs).
      param_dtype: dtype of the params.
      rngs: an ``nnx.Rngs``, a key or an int seed (:func:`base.init_key`).

    Raises:
      ValueError, TypeError: a size that is not a positive int, an unknown
        activation.
    """
    _config(self, in_features, out_features, width, depth, activation, use_bias, param_dtype)
    kernel_init = _or(kernel_init, base.default_kernel_init())
    roles = [("input/kernel", kernel_init, "input"),
             ("hidden/kernel", _or(hidden_init, kernel_init), "hidden"),
             ("readout/kernel", _or(readout_init, kernel_init), "readout")]
    if self.use_bias:
      roles.append(("*bias", _or(bias_init, base.default_bias_init()), "bias"))

    def build(r: nnx.Rngs) -> tuple[nnx.Linear, nnx.Linear, nnx.Linear]:
      linear = functools.partial(nnx.Linear, use_bias=self.use_bias, param_dtype=param_dtype)
      return (linear(self.in_features, self.width, rngs=r),
              base.stack(self.depth - 1, lambda r: linear(self.width, self.width, rngs=r), r),
              linear(self.width, self.out_features, rngs=r))

    self.input, self.hidden, self.readout = base.from_shapes(build)
    self.initialize(base.model_rules(rules, roles), rngs)

  def __call__(self, x: jax.Array, *, capture: bool = False,
               perturbations: jax.Array | None = None) -> Any:
    """Runs the network on ``x`` of shape ``(..., in_features)``.

    Args:
      x: inputs; any leading batch shape, including none.
      capture: also return the intermediates.
      perturbations: optional array of the pre-activations' shape
        ``(depth, ..., width)``, added to them (its gradient is the gradient
        with respect to the pre-activations).

    Returns:
      ``y`` of shape ``(..., out_features)``; with ``capture``, ``(y,
      {"preactivations": (depth, ..., width)})``.
    """
    return base.chain(self.input, self.hidden, self.readout,
                      base.resolve_activation(self.activation), x, capture=capture,
                      perturbations=perturbations)


class _Block(nnx.Module):
  """One residual branch's two layers: ``hidden`` then ``branch``."""

  def __init__(self, width: int, use_bias: bool, param_dtype: DTypeLike,
               rngs: nnx.Rngs) -> None:
    self.hidden = nnx.Linear(width, width, use_bias=use_bias, param_dtype=param_dtype,
                             rngs=rngs)
    self.branch = nnx.Linear(width, width, use_bias=use_bias, param_dtype=param_dtype,
                             rngs=rngs)


class ResMLP(base.Model):
  """A pre-activation residual MLP.

  A stem ``x_0 = x W^in + b^in``; ``depth`` blocks
  ``x_l = x_{l-1} + branch_scale * f_l(x_{l-1})`` with the two-layer branch
  ``f(x) = phi(phi(x) W^hidden + b) W^branch + b'``; and the readout
  ``y = phi(x_L) W^out + b^out``. The stream ``x_l`` is what each block's
  first ``phi`` acts on, so it is the probed pre-activation. Params:
  ``input``, ``blocks/hidden`` and ``blocks/branch`` (stacked ``depth``
  deep), ``readout``.

  Examples:
    >>> import jax.numpy as jnp
    >>> model = ResMLP(3, 2, width=8, depth=3, branch_scale=0.5, rngs=0)
    >>> model.blocks.branch.kernel.shape
    (3, 8, 8)
    >>> y, inter = model(jnp.ones((5, 3)), capture=True)
    >>> sorted(inter), inter["preactivations"].shape
    (['branch', 'inner', 'preactivations'], (3, 5, 8))
  """

  layer_order = ("input", ("blocks/hidden", "blocks/branch"), "readout")

  def __init__(self, in_features: int, out_features: int, width: int, depth: int,
               activation: str | Activation = "relu", *, use_bias: bool = True,
               branch_scale: float = 1.0, kernel_init: Initializer | None = None,
               hidden_init: Initializer | None = None,
               branch_init: Initializer | None = None,
               readout_init: Initializer | None = None,
               bias_init: Initializer | None = None, rules: Any = None,
               param_dtype: DTypeLike = jnp.float32, rngs: Any) -> None:
    """Builds the layers from shapes and draws them once, by rules.

    Args:
      in_features: input size.
      out_features: output size.
      width: stream and branch width.
      depth: number of residual blocks ``>= 1``.
      activation: an activation name or elementwise callable.
      use_bias: whether layers have biases.
      branch_scale: the residual-branch multiplier ``alpha``.
      kernel_init: initializer of the stem (and of the others unless set).
      hidden_init: initializer of each branch's first matrix.
      branch_init: initializer of each branch's last matrix (default
        ``hidden_init``; e.g. zeros for branches that start as the identity).
      readout_init: initializer of the readout.
      bias_init: initializer of every bias.
      rules: rules that take precedence over the roles' initializers.
      param_dtype: dtype of the params.
      rngs: an ``nnx.Rngs``, a key or an int seed.
    """
    _config(self, in_features, out_features, width, depth, activation, use_bias, param_dtype)
    self.branch_scale = checks.real("branch_scale", branch_scale)
    kernel_init = _or(kernel_init, base.default_kernel_init())
    hidden_init = _or(hidden_init, kernel_init)
    roles = [("input/kernel", kernel_init, "input"),
             ("blocks/hidden/kernel", hidden_init, "hidden"),
             ("blocks/branch/kernel", _or(branch_init, hidden_init), "branch"),
             ("readout/kernel", _or(readout_init, kernel_init), "readout")]
    if self.use_bias:
      roles.append(("*bias", _or(bias_init, base.default_bias_init()), "bias"))

    def build(r: nnx.Rngs) -> tuple[nnx.Linear, _Block, nnx.Linear]:
      linear = functools.partial(nnx.Linear, use_bias=self.use_bias, param_dtype=param_dtype)
      return (linear(self.in_features, self.width, rngs=r),
              base.stack(self.depth,
                         lambda r: _Block(self.width, self.use_bias, param_dtype, r), r),
              linear(self.width, self.out_features, rngs=r))

    self.input, self.blocks, self.readout = base.from_shapes(build)
    self.initialize(base.model_rules(rules, roles), rngs)

  def __call__(self, x: jax.Array, *, capture: bool = False,
               perturbations: jax.Array | None = None) -> Any:
    """Runs the network on ``x`` of shape ``(..., in_features)``.

    Args:
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

    def block(stream, blk, eps):
      inner = blk.hidden(phi(stream))
      branch = blk.branch(phi(inner))
      stream = base.add(stream + alpha * branch, eps)
      return stream, (stream, branch, inner) if capture else None

    stream, captured = base.scan(block, self.input(x), self.blocks, perturbations)
    y = self.readout(phi(stream))
    if not capture:
      return y
    streams, branches, inners = captured
    return y, {"preactivations": streams, "branch": branches, "inner": inners}
