"""Convolutions that stay fast inside compiled loops on CPU.

XLA:CPU runs a convolution through Eigen only when its operands are laid out
``[batch, spatial..., feature]`` and ``[spatial..., in, out]`` (NHWC / HWIO).
Its ``ConvCanonicalization`` pass transposes every other convolution into
that form, but it visits the entry computation only: a convolution inside a
``while`` body or a ``cond`` branch — every step of a ``lax.scan`` — keeps
its layout and is emitted as a naive loop nest (openxla/xla
``service/cpu/conv_canonicalization.cc``; jax-ml/jax issue #12868, 2022).
Channel-last forward convolutions (Flax's) are already canonical, but their
gradients are not: the transpose of a convolution with respect to its kernel
treats the batch as the feature dimension. Measured here (jax 0.10.2, 2-core
CPU, a 2-layer 16-channel 1-D CNN, batch 32): a plain SGD step 332 us as one
jitted call, 3,528 us inside ``lax.scan``, 274 us inside ``lax.scan`` after
:func:`canonical_convolutions`.

:func:`canonical_convolutions` traces a function and writes each
non-canonical convolution of its jaxpr (in nested calls too) as transposes
around a canonical one. The values are those of the original convolution
(the same products, summed in the same order in the cases measured: a
CNN's gradients came out bit for bit equal).

Examples:
  >>> import jax, jax.numpy as jnp
  >>> def conv(x, w):  # NCW input, OIW kernel: not canonical
  ...   return jax.lax.conv_general_dilated(x, w, (1,), "SAME")
  >>> x, w = jnp.ones((2, 3, 8)), jnp.ones((4, 3, 5))
  >>> bool(jnp.array_equal(canonical_convolutions(conv)(x, w), conv(x, w)))
  True
  >>> has_convolution(jax.make_jaxpr(conv)(x, w).jaxpr)
  True
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
from jax import lax
from jax.extend import core as jcore

CONVOLUTION = lax.conv_general_dilated_p

_AXIS_BINDERS = frozenset({"shard_map", "xla_pmap"})
"""Primitives whose bodies use mesh axis names: re-tracing a body alone would lose them, so
the convolutions inside are left as they are."""


def _is_canonical(dimension_numbers: lax.ConvDimensionNumbers, ndim: int) -> bool:
  """Whether the operands and output are ``[batch, spatial..., feature]`` / ``[spatial..., in, out]``."""
  spatial = tuple(range(1, ndim - 1))
  lhs, rhs, out = dimension_numbers
  return (tuple(lhs) == (0, ndim - 1) + spatial and tuple(out) == (0, ndim - 1) + spatial
          and tuple(rhs) == (ndim - 1, ndim - 2) + tuple(range(ndim - 2)))


def _rewritten(eqn: Any) -> bool:
  return eqn.primitive is CONVOLUTION and not _is_canonical(
      eqn.params["dimension_numbers"], eqn.outvars[0].aval.ndim)


def _needs_rewrite(jaxpr: jcore.Jaxpr) -> bool:
  return any(_rewritten(eqn) or (eqn.primitive.name not in _AXIS_BINDERS and any(
      _needs_rewrite(sub) for sub in jcore.jaxprs_in_params(eqn.params))) for eqn in jaxpr.eqns)


def has_convolution(jaxpr: jcore.Jaxpr) -> bool:
  """Whether ``jaxpr`` (or a jaxpr it calls) contains a convolution."""
  return any(eqn.primitive is CONVOLUTION or any(has_convolution(sub) for sub in
                                                 jcore.jaxprs_in_params(eqn.params))
             for eqn in jaxpr.eqns)


def _canonical_convolution(lhs: jax.Array, rhs: jax.Array, **params: Any) -> jax.Array:
  """``conv_general_dilated`` with ``params`` as transposes around its canonical form."""
  ndim = lhs.ndim
  spatial = tuple(range(1, ndim - 1))
  (lhs_spec, rhs_spec, out_spec) = params["dimension_numbers"]
  lhs = lax.transpose(lhs, (lhs_spec[0], *lhs_spec[2:], lhs_spec[1]))
  rhs = lax.transpose(rhs, (*rhs_spec[2:], rhs_spec[1], rhs_spec[0]))
  canonical = lax.ConvDimensionNumbers((0, ndim - 1) + spatial,
                                       (ndim - 1, ndim - 2) + tuple(range(ndim - 2)),
                                       (0, ndim - 1) + spatial)
  out = CONVOLUTION.bind(lhs, rhs, **{**params, "dimension_numbers": canonical})
  # ``out`` is [batch, spatial..., feature]; dimension d of the result is its axis perm[d].
  perm = [0] * ndim
  perm[out_spec[0]], perm[out_spec[1]] = 0, ndim - 1
  for k, d in enumerate(out_spec[2:]):
    perm[d] = 1 + k
  return lax.transpose(out, tuple(perm))


def _rewrite_param(value: Any) -> Any:
  if isinstance(value, jcore.ClosedJaxpr):
    if not _needs_rewrite(value.jaxpr):
      return value
    return jax.make_jaxpr(functools.partial(_evaluate, value.jaxpr, value.consts))(
        *value.in_avals)
  if isinstance(value, jcore.Jaxpr):
    if not _needs_rewrite(value):
      return value
    if value.constvars:
      raise NotImplementedError("a convolution in a nested open jaxpr with constants")
    closed = _rewrite_param(jcore.ClosedJaxpr(value, ()))
    if closed.consts:  # the rewrite adds transposes only: no constant to carry
      raise NotImplementedError("a rewritten nested open jaxpr with constants")
    return closed.jaxpr
  if isinstance(value, tuple) and value and all(
      isinstance(v, (jcore.ClosedJaxpr, jcore.Jaxpr)) for v in value):
    return tuple(_rewrite_param(v) for v in value)
  return value


def _evaluate(jaxpr: jcore.Jaxpr, consts: Any, *args: Any) -> list[Any]:
  """``jaxpr`` evaluated with its non-canonical convolutions rewritten."""
  env: dict[Any, Any] = {}
  read = lambda v: v.val if isinstance(v, jcore.Literal) else env[v]  # noqa: E731
  env.update(zip(jaxpr.constvars, consts))
  env.update(zip(jaxpr.invars, args))
  for eqn in jaxpr.eqns:
    inputs = [read(v) for v in eqn.invars]
    with eqn.ctx.manager:
      if _rewritten(eqn):
        outputs = [_canonical_convolution(*inputs, **eqn.params)]
      else:
        params = eqn.params
        if eqn.primitive.name not in _AXIS_BINDERS and any(
            _needs_rewrite(sub) for sub in jcore.jaxprs_in_params(params)):
          params = {k: _rewrite_param(v) for k, v in params.items()}
        outputs = eqn.primitive.bind(*inputs, **eqn.primitive.get_bind_params(params))
        if not eqn.primitive.multiple_results:
          outputs = [outputs]
    env.update(zip(eqn.outvars, outputs))
  return [read(v) for v in jaxpr.outvars]


def canonical_convolutions(fn: Callable[..., Any]) -> Callable[..., Any]:
  """``fn`` with every convolution in canonical (NHWC / HWIO) form, for XLA:CPU's fast path.

  ``fn`` is traced once per call (its Python side effects run twice when it
  has a convolution to rewrite, as the rewritten jaxpr is then evaluated);
  if it has none it is called as it is (the same program as without this
  wrapper). Arguments are positional pytrees of arrays (close over static
  values and keyword arguments). Convolutions inside ``shard_map`` or
  ``pmap`` bodies are left as they are (their axis names live in the
  enclosing call).

  Args:
    fn: a function of arrays.

  Returns:
    A function of the same arguments and outputs.
  """

  @functools.wraps(fn)
  def wrapped(*args: Any) -> Any:
    closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*args)
    if not _needs_rewrite(closed.jaxpr):
      return fn(*args)
    outputs = _evaluate(closed.jaxpr, closed.consts, *jax.tree.leaves(args))
    return jax.tree.unflatten(jax.tree.structure(out_shape), outputs)

  return wrapped


def for_backend(fn: Callable[..., Any]) -> Callable[..., Any]:
  """:func:`canonical_convolutions` of ``fn`` on CPU (jax's default backend), else ``fn``."""
  return canonical_convolutions(fn) if jax.default_backend() == "cpu" else fn


__all__ = ["CONVOLUTION", "canonical_convolutions", "for_backend", "has_convolution"]
