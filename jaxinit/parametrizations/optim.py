"""The optimizer side of a parametrization: per-parameter learning rates, Adam's epsilon,
decoupled weight decay, as optax transforms.

* :func:`scale_by_multipliers`: multiplies each parameter's update by its
  factor (a pytree of floats that is a prefix of the updates' tree, such
  as :meth:`Scaling.tree <jaxinit.parametrizations.Scaling.tree>` gives).
* :func:`add_decayed_weights`: ``update + wd * factor * param``, per
  parameter, applied *after* the learning-rate factors, so that the decay
  per step is ``lr * wd * factor`` whatever the learning-rate factor (mup's
  ``MuAdamW``; applying optax's ``adamw`` decay inside a scaled update
  would shrink it with width, the pitfall mup PR #73 warns about).
* :func:`optimizer` (``"adam"``, ``"adamw"``, ``"sgd"``): optax's
  ``scale_by_adam`` / ``trace`` composed with the factors. Adam's epsilon is
  scaled per parameter by dividing the gradient by the epsilon factor before
  ``scale_by_adam`` (Adam's update ``g / (|g| + eps)`` is unchanged by a
  gradient scale except through ``eps``: ``(g/e) / (|g/e| + eps) = g / (|g| +
  e eps)``).

The factors are Python floats (static), or arrays (:meth:`Scaling.trees
<jaxinit.parametrizations.Scaling.trees>` stacked over models and passed
into a ``vmap``, so that one program trains several parametrizations), and
the learning rate may be a traced scalar or a schedule: the transforms run
inside a ``vmap``-ed, jitted training step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import optax

from jaxinit import checks

__all__ = ["scale_by_multipliers", "add_decayed_weights", "optimizer", "adam", "adamw", "sgd",
           "OPTIMIZERS"]

OPTIMIZERS = ("adam", "adamw", "sgd")


def _prefix_map(fn: Any, factors: Any, tree: Any) -> Any:
  """``fn(factor, leaf)`` for every leaf of ``tree`` under each leaf of ``factors``;
  None factors (non-arrays of an Equinox module) leave their subtree alone."""
  def under(factor, subtree):
    if factor is None:
      return subtree
    return jax.tree.map(lambda x: None if x is None else fn(factor, x), subtree)
  return jax.tree.map(under, factors, tree, is_leaf=lambda x: x is None)


class _Empty(NamedTuple):
  pass


def scale_by_multipliers(factors: Any) -> optax.GradientTransformation:
  """Multiplies each parameter's update by its factor.

  Args:
    factors: a pytree of floats (or arrays) that is a prefix of the
      updates' tree; None entries leave their updates unchanged.

  Examples:
    >>> import jax.numpy as jnp
    >>> tx = scale_by_multipliers({"a": 2.0, "b": 0.5})
    >>> updates, _ = tx.update({"a": jnp.ones(2), "b": jnp.ones(2)}, tx.init(None))
    >>> updates["a"].tolist(), updates["b"].tolist()
    ([2.0, 2.0], [0.5, 0.5])
  """
  def init(params):
    del params
    return _Empty()

  def update(updates, state, params=None):
    del params
    return _prefix_map(lambda f, u: (u * f).astype(u.dtype), factors, updates), state

  return optax.GradientTransformation(init, update)


def add_decayed_weights(weight_decay: Any, factors: Any = None,
                        mask: Any = None) -> optax.GradientTransformation:
  """``update + weight_decay * factor * param`` per parameter (decoupled weight decay).

  Args:
    weight_decay: the base decay rate (a float or a traced scalar).
    factors: per-parameter factors (a prefix pytree, as
      :func:`scale_by_multipliers` takes); None: 1 everywhere.
    mask: as optax's ``add_decayed_weights``: a pytree of bools or a
      function of the params; where False, no decay.
  """
  def init(params):
    del params
    return _Empty()

  def update(updates, state, params=None):
    if params is None:
      raise ValueError("add_decayed_weights needs the params: tx.update(grads, state, params)")
    if factors is None:
      decayed = jax.tree.map(lambda u, p: u + weight_decay * p, updates, params)
    else:
      scales = _prefix_map(lambda f, p: weight_decay * f * p, factors, params)
      decayed = jax.tree.map(lambda u, d: u + d.astype(u.dtype), updates, scales)
    return decayed, state

  tx = optax.GradientTransformation(init, update)
  return optax.masked(tx, mask) if mask is not None else tx


def _trees(scaling: Any, lr_factor: str) -> tuple[Any, Any, Any]:
  """The learning-rate, epsilon and decay factor trees of a Scaling, or of a mapping of
  them (:meth:`Scaling.trees`, possibly stacked over models and traced inside ``vmap``)."""
  if isinstance(scaling, Mapping):
    missing = [k for k in (lr_factor, "eps", "weight_decay") if k not in scaling]
    if missing:
      raise ValueError(f"the factor trees lack {missing} (have {sorted(scaling)})")
    return scaling[lr_factor], scaling["eps"], scaling["weight_decay"]
  return scaling.tree(lr_factor), scaling.tree("eps"), scaling.tree("weight_decay")


def adam(learning_rate: Any, scaling: Any, *, b1: float = 0.9, b2: float = 0.999,
         eps: float = 1e-8, eps_root: float = 0.0, weight_decay: Any = 0.0,
         mask: Any = None, nesterov: bool = False) -> optax.GradientTransformation:
  """Adam with a parametrization's factors (optax's ``adam`` arguments).

  ``update = -lr * (lr_adam * adam(g; eps * eps_factor) + wd * wd_factor * param)``.

  Args:
    learning_rate: the base learning rate (float, traced scalar or schedule).
    scaling: a :class:`~jaxinit.parametrizations.Scaling`, or its
      :meth:`~jaxinit.parametrizations.Scaling.trees` (floats, or arrays
      traced inside a ``vmap`` over models).
    weight_decay: decoupled decay (0: plain Adam); see :func:`adamw`.
    mask: where to decay (optax's ``mask``).
  """
  lr, eps_f, wd_f = _trees(scaling, "lr_adam")
  parts = [scale_by_multipliers(jax.tree.map(lambda e: 1 / e, eps_f)),
           optax.scale_by_adam(b1=b1, b2=b2, eps=eps, eps_root=eps_root, nesterov=nesterov),
           scale_by_multipliers(lr)]
  if not (isinstance(weight_decay, (int, float)) and weight_decay == 0):
    parts.append(add_decayed_weights(weight_decay, wd_f, mask))
  parts.append(optax.scale_by_learning_rate(learning_rate))
  return optax.chain(*parts)


def adamw(learning_rate: Any, scaling: Any, *, b1: float = 0.9, b2: float = 0.999,
          eps: float = 1e-8, eps_root: float = 0.0, weight_decay: Any = 1e-4,
          mask: Any = None, nesterov: bool = False) -> optax.GradientTransformation:
  """AdamW with a parametrization's factors: :func:`adam` with ``weight_decay=1e-4``
  (optax's default). The decay per step is ``lr * wd * wd_factor``, not scaled by the
  learning-rate factor (mup's ``MuAdamW``)."""
  return adam(learning_rate, scaling, b1=b1, b2=b2, eps=eps, eps_root=eps_root,
              weight_decay=weight_decay, mask=mask, nesterov=nesterov)


def sgd(learning_rate: Any, scaling: Any, *, momentum: float | None = None,
        nesterov: bool = False, weight_decay: Any = 0.0,
        mask: Any = None) -> optax.GradientTransformation:
  """SGD (with optional momentum) with a parametrization's factors (optax's ``sgd`` arguments).

  ``update = -lr * (lr_sgd * trace(g) + wd * wd_factor * param)``: decoupled
  decay, ``lr * wd`` per step like mup's ``MuSGD`` (which couples it to the
  gradient and scales it inversely to the learning rate).
  """
  lr, _, wd_f = _trees(scaling, "lr_sgd")
  parts = []
  if momentum is not None:
    parts.append(optax.trace(decay=momentum, nesterov=nesterov))
  parts.append(scale_by_multipliers(lr))
  if not (isinstance(weight_decay, (int, float)) and weight_decay == 0):
    parts.append(add_decayed_weights(weight_decay, wd_f, mask))
  parts.append(optax.scale_by_learning_rate(learning_rate))
  return optax.chain(*parts)


def optimizer(name: str, learning_rate: Any, scaling: Any, **kwargs: Any
              ) -> optax.GradientTransformation:
  """``adam``, ``adamw`` or ``sgd`` (by ``name``) with ``scaling``'s factors.

  Raises:
    ValueError: an unknown name.
  """
  name = checks.choice("optimizer", name, OPTIMIZERS)
  return {"adam": adam, "adamw": adamw, "sgd": sgd}[name](learning_rate, scaling, **kwargs)
