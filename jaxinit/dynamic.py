"""LSUV: layer-sequential unit-variance initialization for any Flax or Equinox model.

Mishkin & Matas (2016), "All you need is a good init": optionally draw each
chosen layer's weights orthonormal, then, layer by layer in forward order,
run a batch through the model and divide the layer's weights by the standard
deviation of its output, until the output variance is within ``tol`` of the
target (``|Var - 1| < 0.1``) or ``max_iters`` rescalings (10) were made.
Here the layers are chosen by rules (:mod:`jaxinit.rules`; default: every
Linear / Conv-like layer of Flax NNX, linen and Equinox), the outputs come
from :mod:`jaxinit.capture`, and ``centre=True`` also sets each chosen
layer's bias so that every output unit has mean 0 on the batch
(data-dependent init: Kraehenbuehl et al. 2016, "Data-dependent
initializations of convolutional neural networks"; Salimans & Kingma 2016,
weight normalization's init).

One forward pass per rescaling: the whole procedure is a single
``lax.while_loop`` whose state says which layer is being fitted and the
scale of every layer; the loop body runs the model once, reads every layer's
output variance, moves past the layers that are done and rescales the next.
So the compiled program holds one forward pass whatever the depth, is
jittable and vmaps over seeds and models (``jax.vmap`` of :func:`lsuv` over
params). A layer of a scanned stack (``nnx.scan`` over stacked weights) is
one layer per slice.

Its result: the new model and an :class:`LSUVReport` (variance when LSUV
reached each layer and at the end, rescalings, converged). A dead layer
(output variance 0) or a non-finite one raises :class:`LSUVError` naming
the layer; non-convergence warns (:class:`LSUVWarning`, carrying the
report). Under ``jit`` / ``vmap`` nothing can be raised: call
:meth:`LSUVReport.check` on the host afterwards.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit import checks
from jaxinit._reduce import pairwise_sum
from jaxinit.capture import Captured, Forward, forward, params_by_path
from jaxinit.presets import orthogonal
from jaxinit.rules.api import plan
from jaxinit.rules.keys import as_key, draw_hashed, path_hash
from jaxinit.rules.patterns import Glob, OfModule, Rule, RuleSet, as_rule_set
from jaxinit.rules.targets import target_kind

__all__ = ["LSUVError", "LSUVReport", "LSUVResult", "LSUVWarning", "LAYER_CLASSES", "lsuv",
           "lsuv_rules"]

LAYER_CLASSES: tuple[str, ...] = (
    "flax.nnx.nn.linear.Linear", "flax.nnx.nn.linear.LinearGeneral",
    "flax.nnx.nn.linear.Einsum", "flax.nnx.nn.linear.Conv", "flax.nnx.nn.linear.ConvTranspose",
    "flax.linen.linear.Dense", "flax.linen.linear.DenseGeneral", "flax.linen.linear.Einsum",
    "flax.linen.linear.Conv", "flax.linen.linear.ConvTranspose", "flax.linen.linear.ConvLocal",
    "equinox.nn._linear.Linear", "equinox.nn._conv.Conv", "equinox.nn._conv.ConvTranspose",
)
"""The Linear / Conv-like layers :func:`lsuv` rescales by default (subclasses included)."""


def lsuv_rules(init: Any = None) -> RuleSet:
  """Every Linear / Conv-like layer's weight (:data:`LAYER_CLASSES`) -> ``init``.

  Args:
    init: the pre-init (default ``jaxinit.orthogonal()``: LSUV's orthonormal
      start).

  Examples:
    >>> import jaxinit
    >>> rules = jaxinit.dynamic.lsuv_rules()
    >>> len(rules), rules.rules[0].pattern
    (14, OfModule('flax.nnx.nn.linear.Linear'))
  """
  init = orthogonal() if init is None else init
  return RuleSet(tuple(Rule(OfModule(c), init, required=False) for c in LAYER_CLASSES))


def _as_rules(rules: Any) -> RuleSet:
  """Rules, pairs, or bare patterns (globs, classes, OfModule: pre-init orthogonal)."""
  if rules is None:
    return lsuv_rules()
  if isinstance(rules, (RuleSet, dict)):
    return as_rule_set(rules)
  if isinstance(rules, (str, type, Glob, OfModule, Rule)):
    rules = [rules]
  converted = []
  for r in rules:
    if isinstance(r, (str, type, Glob, OfModule)):
      converted.append(Rule(r, orthogonal()))
    else:
      converted.append(r)
  return as_rule_set(converted)


# ---------------------------------------------------------------------------
# The report


class LSUVError(ValueError):
  """A chosen layer is dead (output variance 0) or non-finite; ``report`` has the details."""

  def __init__(self, message: str, report: LSUVReport):
    super().__init__(message)
    self.report = report


class LSUVWarning(UserWarning):
  """A layer did not reach the target variance in ``max_iters``; ``report`` has the details."""

  def __init__(self, message: str, report: LSUVReport):
    super().__init__(message)
    self.report = report


@functools.partial(jax.tree_util.register_dataclass,
                   data_fields=["variance_before", "variance_after", "iterations", "converged",
                                "dead", "nonfinite"],
                   meta_fields=["layers", "target", "tol", "max_iters"])
@dataclasses.dataclass(frozen=True)
class LSUVReport:
  """What :func:`lsuv` did to each chosen layer (a pytree: vmaps with it).

  Each array has one entry per layer, in forward order (leading axes for a
  vmapped call: ``(seeds, layers)``).

  Attributes:
    layers: the layers' names (module paths; ``"hidden[2]"`` for a layer of
      a stack).
    variance_before: the layer's output variance when LSUV reached it (the
      layers before it already rescaled).
    variance_after: its output variance in the returned model.
    iterations: rescalings made (0: it was already within ``tol``).
    converged: ``|variance_after - target| <= tol`` (and, with
      ``centre=True``, every unit's mean within ``tol * sqrt(target)`` of 0).
    dead: output variance 0.
    nonfinite: output variance NaN or infinite.
    target: the target variance.
    tol: the tolerance.
    max_iters: the most rescalings per layer.
  """
  layers: tuple[str, ...]
  variance_before: jax.Array
  variance_after: jax.Array
  iterations: jax.Array
  converged: jax.Array
  dead: jax.Array
  nonfinite: jax.Array
  target: float = 1.0
  tol: float = 0.1
  max_iters: int = 10

  @property
  def std_after(self) -> jax.Array:
    """``sqrt(variance_after)``."""
    return jnp.sqrt(self.variance_after)

  def _failing(self, flags: Any) -> list[str]:
    flags = np.asarray(flags).reshape(-1, len(self.layers))
    return [self.layers[i] for i in np.nonzero(flags.any(axis=0))[0]]

  def check(self, stacklevel: int = 2) -> LSUVReport:
    """Raises or warns on the host, after a jitted or vmapped call.

    Raises:
      LSUVError: a dead or non-finite layer (in any seed of a vmapped call).

    Warns:
      LSUVWarning: a layer outside ``target +- tol`` after ``max_iters``.

    Returns:
      The report itself.
    """
    for flags, what in ((self.nonfinite, "a non-finite output variance (NaN or inf: the "
                         "model overflowed on the batch)"),
                        (self.dead, "output variance 0 (a dead layer: its output is constant "
                         "on the batch, so no rescaling can reach the target)")):
      bad = self._failing(flags)
      if bad:
        raise LSUVError(f"lsuv: layer {bad[0]!r} has {what}"
                        + (f"; also {bad[1:]}" if len(bad) > 1 else ""), self)
    bad = self._failing(~np.asarray(self.converged))
    if bad:
      after = np.asarray(self.variance_after).reshape(-1, len(self.layers))
      i = self.layers.index(bad[0])
      warnings.warn(LSUVWarning(
          f"lsuv: {len(bad)} layer(s) did not reach variance {self.target} +- {self.tol} in "
          f"max_iters={self.max_iters} rescalings, first {bad[0]!r} (variance "
          f"{after[:, i].min():.4g}..{after[:, i].max():.4g}); see the warning's .report",
          self), stacklevel=stacklevel)
    return self

  def __str__(self) -> str:
    before = np.asarray(self.variance_before).reshape(-1, len(self.layers))
    after = np.asarray(self.variance_after).reshape(-1, len(self.layers))
    iters = np.asarray(self.iterations).reshape(-1, len(self.layers))
    ok = np.asarray(self.converged).reshape(-1, len(self.layers))
    width = max(len(n) for n in self.layers) if self.layers else 5
    lines = [f"{'layer':<{width}}  {'var before':>11}  {'var after':>10}  iters  converged"]
    for i, name in enumerate(self.layers):
      lines.append(f"{name:<{width}}  {before[0, i]:11.4g}  {after[0, i]:10.4g}  "
                   f"{iters[0, i]:5d}  {bool(ok[:, i].all())}")
    return "\n".join(lines)


class LSUVResult(NamedTuple):
  """What :func:`lsuv` returns.

  Attributes:
    model: the model with the new weights: the NNX module (updated in
      place), a new Equinox module, or new params / linen variables when
      params were passed.
    report: the :class:`LSUVReport`.
  """
  model: Any
  report: LSUVReport


# ---------------------------------------------------------------------------
# The static plan: which layers, their weights, biases and outputs


@dataclasses.dataclass(frozen=True)
class _Layer:
  module: str
  key: str                     # its captured output (the first call)
  weights: tuple[str, ...]     # params paths of the weights scaled together
  bias: str | None             # params path of its bias (centred with centre=True)
  stack: tuple[int, ...]       # leading stacked-layer dims of its weights
  out_stack: int               # leading stack axes of its captured output (>= len(stack))

  @property
  def count(self) -> int:
    return math.prod(self.stack)

  def names(self) -> list[str]:
    if not self.stack:
      return [self.module]
    return [f"{self.module}[{','.join(map(str, i))}]" for i in np.ndindex(*self.stack)]


@dataclasses.dataclass(frozen=True)
class _Plan:
  layers: tuple[_Layer, ...]
  draws: tuple[Any, ...]       # (params path, Assignment) of the pre-init
  sequence: tuple[int, ...]    # the order LSUV visits the layer slices (indices into the
                               # layer-major layout: layer 0's slices, then layer 1's, ...)


def _stack_root(fwd: Forward, layer: _Layer, by_path: Mapping[str, Any]) -> str:
  """The outermost module whose parameters all stack like ``layer``'s: the scanned block."""
  parts = layer.module.split("/")
  for cut in range(1, len(parts) + 1):
    prefix = fwd.param_path("/".join(parts[:cut]), "")
    under = [v for p, v in by_path.items() if p.startswith(prefix)]
    if under and all(tuple(np.shape(v)[:len(layer.stack)]) == layer.stack for v in under):
      return "/".join(parts[:cut])
  return layer.module


def _sequence(fwd: Forward, layers: Sequence[_Layer], order: Mapping[str, int],
              by_path: Mapping[str, Any]) -> tuple[int, ...]:
  """Forward order of the layer slices: the layers of one scanned block interleave
  (block 0's layers, then block 1's, ...), as the scan runs them."""
  roots = [_stack_root(fwd, l, by_path) if l.stack else None for l in layers]
  start: dict[str, int] = {}
  for l, root in zip(layers, roots):
    if root is not None:
      start[root] = min(start.get(root, order[l.key]), order[l.key])
  offsets = np.cumsum([0] + [l.count for l in layers])
  units = []
  for i, (l, root) in enumerate(zip(layers, roots)):
    for j in range(l.count):
      units.append(((start[root], j, order[l.key]) if root is not None
                    else (order[l.key], 0, 0), int(offsets[i] + j)))
  return tuple(u for _, u in sorted(units))


def _avals(tree: Any) -> tuple[Any, ...]:
  leaves, treedef = jax.tree_util.tree_flatten(tree)
  return (treedef,) + tuple((tuple(np.shape(x)), str(getattr(x, "dtype", type(x))))
                            for x in leaves)


_PLANS: dict[Any, _Plan] = {}


def _make_plan(fwd: Forward, params: Any, batch: Any, kwargs: Mapping[str, Any],
               rules: RuleSet, centre: bool) -> _Plan:
  cache_key = (fwd, _avals(params), _avals(batch), tuple(sorted(kwargs.items())), rules, centre)
  try:
    hit = _PLANS.get(cache_key)
  except TypeError:  # unhashable: plan for this call only
    cache_key, hit = None, None
  if hit is not None:
    return hit
  shapes = jax.eval_shape(lambda p, b: fwd.capture(p, b, **kwargs)[1], params, batch)
  if fwd.kind == "linen":
    the_plan = plan(fwd.template(params), rules, batch, module=fwd.definition)
  else:
    the_plan = plan(fwd.template(params), rules)
  by_path = params_by_path(params)
  first_call = {}
  for key in shapes:
    info = shapes.info(key)
    if info.call == 0 and info.leaf is None:
      first_call.setdefault(info.module, key)
  grouped: dict[str, list[Any]] = {}
  for a in the_plan.assignments:
    path = fwd.param_path("", a.path) if fwd.kind == "linen" else a.path
    path = path.removeprefix("/")
    owner = max((m for m in first_call if a.path.startswith(m + "/")), key=len, default=None)
    if owner is None:
      raise ValueError(
          f"lsuv: the layer of parameter {a.path!r} was not captured (never called, called "
          f"inside a JAX transform capture cannot see into, or its output is not one array); "
          f"captured layers: {list(first_call)}")
    grouped.setdefault(owner, []).append((path, a))
  layers = []
  for module, members in grouped.items():
    stacks = {a.stack for _, a in members}
    if len(stacks) > 1:
      raise ValueError(f"lsuv: the weights of layer {module!r} stack differently: "
                       f"{[(p, a.stack) for p, a in members]}")
    stack = stacks.pop()
    key = first_call[module]
    out = shapes[key]
    out_stack = shapes.info(key).stack_ndim
    if stack and (out_stack < len(stack) or tuple(out.shape[:len(stack)]) != stack):
      raise ValueError(
          f"lsuv: layer {module!r} stacks {stack} layers in its weights but its captured "
          f"output has shape {out.shape} (stack axes {out_stack}); a stack must be run by a "
          f"transform that maps it (nnx.scan / nnx.vmap over axis 0)")
    bias = fwd.param_path(module, "bias")
    bias = bias if bias in by_path and jnp.issubdtype(by_path[bias].dtype, jnp.inexact) else None
    layer = _Layer(module, key, tuple(p for p, _ in members), bias, stack, out_stack)
    _check_batch(layer, out.shape, by_path, centre)
    layers.append(layer)
  if not layers:
    raise ValueError(f"lsuv: no layer matched the rules {rules}; captured layers: "
                     f"{list(first_call)}")
  order = {k: i for i, k in enumerate(shapes)}
  layers.sort(key=lambda l: order[l.key])
  draws = tuple((fwd.param_path("", a.path).removeprefix("/") if fwd.kind == "linen"
                 else a.path, a) for a in the_plan.assignments)
  result = _Plan(tuple(layers), draws, _sequence(fwd, layers, order, by_path))
  if cache_key is not None:
    _PLANS[cache_key] = result
    while len(_PLANS) > 64:
      _PLANS.pop(next(iter(_PLANS)))
  return result


def _check_batch(layer: _Layer, out_shape: tuple[int, ...], by_path: Mapping[str, Any],
                 centre: bool) -> None:
  per_layer = out_shape[len(layer.stack):]
  count = math.prod(per_layer)
  if count < 2:
    raise ValueError(f"lsuv: layer {layer.module!r} gives {count} output value(s) per layer on "
                     f"this batch (output shape {tuple(out_shape)}): at least 2 are needed to "
                     f"estimate a variance; use a larger batch")
  if centre and layer.bias is not None:
    units = math.prod(d for d in np.shape(by_path[layer.bias])[len(layer.stack):])
    if count // max(units, 1) < 2:
      raise ValueError(f"lsuv: layer {layer.module!r} gives {count // max(units, 1)} value(s) "
                       f"per unit on this batch (output shape {tuple(out_shape)}, {units} "
                       f"units): centre=True needs at least 2 per unit; use a larger batch")


# ---------------------------------------------------------------------------
# The traced procedure


def _unit_axes(out_ndim: int, bias_shape: tuple[int, ...]) -> tuple[int, ...]:
  """Axes of a per-layer output (leading layer axis 0 excluded) reduced to get the unit means."""
  offset = out_ndim - len(bias_shape)
  return tuple(a for a in range(1, out_ndim)
               if a < offset or bias_shape[a - offset] == 1)


def _mean(x: jax.Array, axes: tuple[int, ...], keepdims: bool = False) -> jax.Array:
  """``jnp.mean`` summed in a fixed order (:func:`jaxinit._reduce.pairwise_sum`): the same
  bits alone and under ``vmap``."""
  return pairwise_sum(x, axes, keepdims) / math.prod(x.shape[a] for a in axes)


def _stats(layer: _Layer, out: jax.Array, bias_shape: tuple[int, ...] | None):
  """Per-layer variance over everything, mean per-unit variance, unit means, max |unit mean|.

  Reduced by :func:`_mean`, so that a vmapped call equals the unbatched one bit for bit.
  """
  n = layer.count
  out = out.reshape((n,) + out.shape[len(layer.stack):]).astype(
      jnp.promote_types(out.dtype, jnp.float32))
  axes = tuple(range(1, out.ndim))
  variance = _mean(jnp.square(out - _mean(out, axes, keepdims=True)), axes)
  if bias_shape is None:
    return variance, variance, None, jnp.zeros((n,), variance.dtype)
  unit_axes = _unit_axes(out.ndim, bias_shape)
  means = _mean(out, unit_axes, keepdims=True)
  unit_var = _mean(jnp.square(out - means), axes)
  means = means.reshape((n,) + bias_shape)
  return variance, unit_var, means, jnp.max(jnp.abs(means.reshape(n, -1)), axis=1)


def _broadcast(values: jax.Array, stack: tuple[int, ...], ndim: int) -> jax.Array:
  """A per-layer vector ``(prod(stack),)`` shaped to multiply a stacked parameter."""
  return values.reshape(stack + (1,) * (ndim - len(stack))) if stack else values[0]


def _run(fwd: Forward, the_plan: _Plan, kwargs: tuple[tuple[str, Any], ...], pre_init: bool,
         centre: bool, target: float, tol: float, max_iters: int, params: Any, batch: Any,
         key: Any) -> tuple[Any, LSUVReport]:
  kwargs = dict(kwargs)
  leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
  from jaxinit.rules.targets import path_of  # pylint: disable=import-outside-toplevel
  index = {path_of(kp): i for i, (kp, _) in enumerate(leaves)}
  values = [leaf for _, leaf in leaves]
  if pre_init:
    _pre_init(values, index, the_plan.draws, key)
  layers = the_plan.layers
  offsets = np.cumsum([0] + [l.count for l in layers])
  n = int(offsets[-1])
  centred = tuple(centre and l.bias is not None for l in layers)
  bias_shapes = tuple(tuple(np.shape(values[index[l.bias]])[len(l.stack):]) if c else None
                      for l, c in zip(layers, centred))
  sequence = np.asarray(the_plan.sequence)
  centred_units = np.repeat(np.asarray(centred, bool), np.diff(offsets))[sequence]
  dtype = jnp.float32
  for l in layers:
    dtype = jnp.promote_types(dtype, values[index[l.weights[0]]].dtype)

  def effective(scales, shifts):
    out = list(values)
    for i, layer in enumerate(layers):
      s = scales[offsets[i]:offsets[i + 1]]
      for path in layer.weights:
        w = values[index[path]]
        out[index[path]] = (w * _broadcast(s, layer.stack, w.ndim)).astype(w.dtype)
      if centred[i]:
        b = values[index[layer.bias]]
        out[index[layer.bias]] = ((b + shifts[i]) * _broadcast(s, layer.stack, b.ndim)
                                  ).astype(b.dtype)
    return out

  # Under vmap over params, the batch is given its own copy per model: a batch shared by
  # every model turns the first layer's matmuls into one wide matmul that sums in another
  # order, and the result would differ from the unbatched call in its last bits.
  batch = batched_like(batch, values)

  def measure(scales, shifts):
    tree = jax.tree_util.tree_unflatten(treedef, effective(scales, shifts))
    captured: Captured = fwd.capture(tree, batch, **kwargs)[1]
    var, unit_var, means, mean_err = [], [], [], []
    for layer, shape in zip(layers, bias_shapes):
      v, u, m, e = _stats(layer, captured[layer.key], shape)
      var.append(v), unit_var.append(u), means.append(m), mean_err.append(e)
    # In the order LSUV visits the layers (means stay per layer, for the shifts).
    return (jnp.concatenate(var).astype(dtype)[sequence],
            jnp.concatenate(unit_var).astype(dtype)[sequence], tuple(means),
            jnp.concatenate(mean_err).astype(dtype)[sequence])

  def within(var, mean_err):
    ok = jnp.abs(var - target) <= tol
    if centre:
      ok &= mean_err <= tol * math.sqrt(target)
    return ok

  def settle(state):
    """Moves past the layers that are done; records each layer's first variance."""
    def cond(s):
      k, it, _, _, var, _, _, mean_err = s
      kk = jnp.minimum(k, n - 1)
      v = var[kk]
      done = within(var, mean_err)[kk] | ~(v > 0) | ~jnp.isfinite(v) | (it >= max_iters)
      return (k < n) & done

    def body(s):
      k, it, before, iters, var, unit_var, means, mean_err = s
      before = jnp.where(it == 0, before.at[k].set(var[k]), before)
      return k + 1, jnp.int32(0), before, iters.at[k].set(it), var, unit_var, means, mean_err

    k, it, before, iters, var, unit_var, means, mean_err = jax.lax.while_loop(cond, body, state)
    kk = jnp.minimum(k, n - 1)
    before = jnp.where((k < n) & (it == 0), before.at[kk].set(var[kk]), before)
    return k, it, before, iters, var, unit_var, means, mean_err

  def rescale(k, scales, shifts, var, unit_var, means):
    used = jnp.where(centred_units, unit_var, var) if any(centred) else var
    factor = jnp.sqrt(target / used[k])
    k = jnp.asarray(sequence)[k]  # its slot in the layer-major layout
    new_shifts = []
    for i, layer in enumerate(layers):
      if not centred[i]:
        new_shifts.append(shifts[i])
        continue
      local = jnp.arange(layer.count) + offsets[i]
      s = scales[offsets[i]:offsets[i + 1]]
      step = jnp.where((local == k).reshape((-1,) + (1,) * len(bias_shapes[i])),
                       means[i] / s.reshape((-1,) + (1,) * len(bias_shapes[i])), 0)
      step = step.reshape(layer.stack + bias_shapes[i]) if layer.stack else step[0]
      new_shifts.append(shifts[i] - step.astype(shifts[i].dtype))
    return scales.at[k].multiply(factor), tuple(new_shifts)

  scales = jnp.ones((n,), dtype)
  shifts = tuple(jnp.zeros(l.stack + bias_shapes[i], dtype) if centred[i] else None
                 for i, l in enumerate(layers))
  var, unit_var, means, mean_err = measure(scales, shifts)
  before = jnp.full((n,), jnp.nan, dtype)
  iters = jnp.zeros((n,), jnp.int32)
  k, it, before, iters, var, unit_var, means, mean_err = settle(
      (jnp.int32(0), jnp.int32(0), before, iters, var, unit_var, means, mean_err))

  def loop_body(state):
    k, it, scales, shifts, before, iters, var, unit_var, means, mean_err = state
    scales, shifts = rescale(k, scales, shifts, var, unit_var, means)
    var, unit_var, means, mean_err = measure(scales, shifts)
    k, it, before, iters, var, unit_var, means, mean_err = settle(
        (k, it + 1, before, iters, var, unit_var, means, mean_err))
    return k, it, scales, shifts, before, iters, var, unit_var, means, mean_err

  state = (k, it, scales, shifts, before, iters, var, unit_var, means, mean_err)
  state = jax.lax.while_loop(lambda s: s[0] < n, loop_body, state)
  _, _, scales, shifts, before, iters, var, _, _, mean_err = state
  new = jax.tree_util.tree_unflatten(treedef, effective(scales, shifts))
  layout = [name for l in layers for name in l.names()]
  names = tuple(layout[u] for u in sequence)
  report = LSUVReport(names, before, var, iters, within(var, mean_err), var == 0,
                      ~jnp.isfinite(var), target, tol, max_iters)
  return new, report


@jax.custom_batching.custom_vmap
def batched_like(x: Any, ref: Any) -> Any:
  """``x``; under ``jax.vmap``, batched (broadcast over the mapped axis) when ``ref`` is.

  A model's forward pass on a batch ``x`` shared by vmapped params computes its first
  layer as one matmul over every model's weights at once (jax's batching rule for
  ``dot_general`` with one batched operand folds the model axis into the free one), which
  XLA sums in another order than one model's matmul: results then differ from the
  unbatched call in their last bits. With ``x`` batched like the params, each model's
  matmul is one slice of a batched matmul, bit for bit the unbatched one (measured on CPU,
  widths 8 to 100; ``tests/test_lsuv.py``).
  """
  del ref
  return x


@batched_like.def_vmap
def _batched_like_rule(axis_size: int, in_batched: Any, x: Any, ref: Any) -> Any:
  x_batched, ref_batched = in_batched
  if any(jax.tree_util.tree_leaves(ref_batched)):
    x = jax.tree_util.tree_map(
        lambda a, b: a if b else jnp.broadcast_to(a, (axis_size,) + jnp.shape(a)), x, x_batched)
    x_batched = jax.tree_util.tree_map(lambda _: True, x)
  return batched_like(x, ref), x_batched


def _pre_init(values: list[Any], index: Mapping[str, int], draws: Sequence[Any],
              key: jax.Array) -> None:
  """Draws the chosen weights as :func:`jaxinit.reinit` would, one vmapped draw per
  (shape, dtype, initializer, stack) group: one compiled QR for a stack of equal layers."""
  groups: dict[Any, list[Any]] = {}
  for path, a in draws:
    groups.setdefault((a.shape, np.dtype(a.dtype), a.init, a.stack), []).append((path, a))
  for (shape, dtype, init, stack), members in groups.items():
    words = jnp.asarray([path_hash(a.path) for _, a in members], jnp.uint32)
    drawn = jax.vmap(lambda w: draw_hashed(key, (w[0], w[1]), shape, dtype, init, stack))(words)
    for i, (path, _) in enumerate(members):
      values[index[path]] = drawn[i]


_JITTED = jax.jit(_run, static_argnums=(0, 1, 2, 3, 4, 5, 6, 7))


# ---------------------------------------------------------------------------
# The entry point


def lsuv(model: Any, batch: Any, *, params: Any = None, key: Any = None, rules: Any = None,
         pre_init: bool = False, target: float = 1.0, tol: float = 0.1, max_iters: int = 10,
         centre: bool = False, check: bool = True,
         call_kwargs: Mapping[str, Any] | None = None) -> LSUVResult:
  """Layer-sequential unit-variance init (Mishkin & Matas 2016) of any model.

  For each chosen layer ``l`` in forward order: ``W_l <- W_l * sqrt(target
  / Var[h_l])`` (``h_l`` the layer's output on ``batch``, the variance over
  all its entries) until ``|Var[h_l] - target| <= tol`` or ``max_iters``
  rescalings. With ``centre=True`` each rescaling first sets the layer's
  bias so that every output unit has mean 0 on the batch, then scales
  weight and bias together: ``h_l <- sqrt(target / Var_unit) (h_l -
  mean_unit)`` (Kraehenbuehl et al. 2016; Salimans & Kingma 2016).

  Pure and jittable; ``jax.vmap`` over ``params`` (and ``key``) fits many
  models at once: for the sweep's vmapped program call it with a
  :class:`~jaxinit.capture.Forward` and ``params=``.

  Args:
    model: a Flax NNX module (updated in place and returned), an Equinox
      module (a new one is returned), a linen module (pass its variables as
      ``params``) or a :class:`~jaxinit.capture.Forward` (pass ``params``).
    batch: the input batch (the model's first positional argument).
    params: params of a Forward, or variables of a linen module.
    key: PRNG key (or int seed) for ``pre_init``.
    rules: which weights are rescaled: a :class:`~jaxinit.rules.RuleSet`,
      ``(pattern, init)`` pairs, or bare patterns (param-path globs such as
      ``"layers/2/kernel"``, module
      classes); default: :func:`lsuv_rules` (every Linear / Conv-like
      layer). The weights of one module are scaled together; the module's
      output is the layer's output.
    pre_init: first draw the chosen weights from the rules' initializers
      (``jaxinit.orthogonal()`` by default: LSUV's orthonormal pre-init).
    target: the target output variance.
    tol: the tolerance on the variance.
    max_iters: the most rescalings per layer.
    centre: also set biases for a zero mean per output unit (layers without
      a bias are only scaled).
    check: after a call outside ``jit`` / ``vmap``, raise on dead or
      non-finite layers and warn on non-convergence (see
      :meth:`LSUVReport.check`).
    call_kwargs: keyword arguments of the model call (``deterministic=True``).

  Returns:
    ``LSUVResult(model, report)``.

  Raises:
    ValueError: no layer matched; a chosen layer was not captured; the
      batch gives fewer than 2 values per layer (or per unit with
      ``centre``); bad arguments.
    LSUVError: (``check``) a dead or non-finite layer.

  Warns:
    LSUVWarning: (``check``) a layer did not converge.

  Examples:
    >>> import jax, jax.numpy as jnp, jaxinit
    >>> from flax import nnx
    >>> class MLP(nnx.Module):
    ...   def __init__(self, rngs):
    ...     init = jaxinit.normal(0.01)  # far too small
    ...     self.layers = nnx.List([nnx.Linear(8, 8, kernel_init=init, rngs=rngs)
    ...                             for _ in range(6)])
    ...   def __call__(self, x):
    ...     for layer in self.layers:
    ...       x = jax.nn.relu(layer(x))
    ...     return x
    >>> x = jax.random.normal(jax.random.key(0), (64, 8))
    >>> model, report = jaxinit.lsuv(MLP(nnx.Rngs(0)), x)
    >>> bool(report.converged.all()), [round(float(s), 3) for s in report.std_after[:3]]
    (True, [1.0, 1.0, 1.0])
  """
  target = checks.real("target", target, minimum=0.0, exclusive_minimum=True)
  tol = checks.real("tol", tol, minimum=0.0, exclusive_minimum=True)
  max_iters = checks.positive_int("max_iters", max_iters)
  pre_init = checks.boolean("pre_init", pre_init)
  centre = checks.boolean("centre", centre)
  check = checks.boolean("check", check)
  rule_set = _as_rules(rules)
  kwargs = dict(call_kwargs or {})
  kind, fwd, params = _resolve("lsuv", model, params)
  if pre_init and key is None:
    raise ValueError("pre_init=True draws the chosen weights anew: pass key=")
  key = as_key(0 if key is None else key)
  the_plan = _make_plan(fwd, params, batch, kwargs, rule_set, centre)
  try:
    hash(tuple(sorted(kwargs.items())))
    run = _JITTED
  except TypeError:
    run = jax.jit(_run, static_argnums=(0, 1, 2, 3, 4, 5, 6, 7))
  new, report = run(fwd, the_plan, tuple(sorted(kwargs.items())), pre_init, centre, target,
                    tol, max_iters, params, batch, key)
  traced = any(checks.is_traced(x) for x in jax.tree_util.tree_leaves((params, batch, key)))
  if check and not traced:
    report.check(stacklevel=3)
  return LSUVResult(_finish(kind, model, fwd, new), report)


def _resolve(who: str, model: Any, params: Any) -> tuple[str, Forward, Any]:
  """``(kind, fwd, params)`` of a model argument (shared by lsuv and metainit)."""
  kind = "forward" if isinstance(model, Forward) else target_kind(model)
  if kind in ("forward", "linen"):
    if params is None:
      raise TypeError(f"{who} of a {'Forward' if kind == 'forward' else 'linen module'} needs "
                      f"params=: its params (variables)")
    return kind, (model if kind == "forward" else Forward("linen", model)), params
  if kind in ("nnx", "equinox"):
    if params is not None:
      raise TypeError(f"params= goes with a Forward or a linen module; a {kind} model holds "
                      f"its own")
    fwd, params = forward(model)
    return kind, fwd, params
  raise TypeError(f"{who} takes a Flax NNX / linen or Equinox model or a Forward, got "
                  f"{type(model).__name__}")


def _finish(kind: str, model: Any, fwd: Forward, new: Any) -> Any:
  """The model to return: the NNX module updated in place, a new Equinox module, or params."""
  if kind == "nnx":
    from flax import nnx  # pylint: disable=import-outside-toplevel
    nnx.update(model, new)
    return model
  if kind == "equinox":
    import equinox as eqx  # pylint: disable=import-outside-toplevel
    return eqx.combine(new, fwd.definition)
  return new
