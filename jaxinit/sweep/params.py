"""Each model's initial params: its cell's rules, drawn for many models at once.

A cell's ``init``, ``weight_variance`` and ``bias_variance`` make one rule set
(:func:`cell_rules`), and a model's initial params are, bit for bit,
``jaxinit.initialize(model, cell_rules(...), init_key)`` of its shape group's
model alone (:meth:`jaxinit.sweep.kinds.Built.initialize`; ``init_key`` from
:mod:`jaxinit.sweep.keys`): every parameter a rule serves is
:func:`jaxinit.rules.draw` at its path, with fans from its module; the others
keep the values the model was built with, and each model is built with its
own *model key* (``rngs=nnx.Rngs(model_key)``, ``key=model_key``,
``module.init(model_key, x)``, ``init(model_key)``; the key from the
model's architecture and seed, :mod:`jaxinit.sweep.keys`): a partial rule
set (one for the head only, say) leaves every other parameter at the model's
own initializer, drawn anew for every seed, never one draw shared by all
seeds. ``jaxinit.initialize(model built with model_key, rules, init_key)``
is the reference, bit for bit.

:func:`draw_population` draws them for a whole chunk of models from the
rules' own plan (:func:`jaxinit.rules.plan`: one walk of the model, the rules
layer's), without one compiled program per model:

* a variance-scaling initializer over an elementwise sampler (normal,
  truncated normal, uniform, Rademacher: every fan-based preset) draws every
  layer of every model that uses it at once, ``vmap``-ed over the layers'
  keys (counter-based random bits: the values of each layer drawn alone),
  flat: one compiled program per sampler and power-of-two length shared by
  every layer shape, fan and preset (:func:`_flat_parts`), so a grid's draws
  compile a few small programs, not one per (initializer, shape);
* constants are drawn once;
* any other initializer (orthogonal, delta, identity, sparse, your own) is
  called model by model, by the very program ``jaxinit.initialize`` compiles;
* ``Scaled(init, factor)`` (how weight and bias variances enter) draws
  ``init`` as above and multiplies by each model's factor inside a compiled
  program, as ``Scaled`` does: models that differ only in their variances
  share every compiled draw.

``tests/test_sweep_init.py`` checks the equality on NNX, linen, Equinox and
pure models, for every kind of initializer.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxinit
from jaxinit import samplers
from jaxinit.base import canonical_dtype, sampling_dtype
from jaxinit.initializers import Constant, Scaled, VarianceScaling
from jaxinit.rules import Rule, RuleSet, plan as rules_plan
from jaxinit.rules.keys import draw_hashed, elementwise, path_hash
from jaxinit.sweep.kinds import Built

WEIGHT_RANKS: tuple[int, ...] = tuple(range(2, 9))
"""A *weight* is a parameter whose one layer has rank 2 to 8: dense and convolution
kernels, embeddings."""

UNIT_NORMAL = jaxinit.variance_scaling(1.0, "unit", "normal")
"""``N(0, 1)``: biases are ``sqrt(bias_variance)`` times its draws."""


def cell_rules(init: Any, weight_variance: float = 1.0, bias_variance: float = 0.0) -> RuleSet:
  """The rule set of a cell: what its ``init``, ``weight_variance`` and ``bias_variance`` mean.

  An initializer (a ``jaxinit.get`` spec or object) ``I`` means::

    [Rule("*", I', ndim=2..8, label="weights"),     # every weight (one layer's rank >= 2)
     Rule("*bias", B, ndim=1, label="biases")]      # every rank-1 parameter named *bias

  with ``I' = Scaled(I, sqrt(weight_variance))`` (``I`` when it is 1: the
  weights are ``I``'s draws times ``sqrt(weight_variance)``, fans from their
  modules) and ``B = Scaled(N(0, 1), sqrt(bias_variance))`` (zeros when it
  is 0). Parameters neither rule matches (norm scales, ...) keep the values
  the model was built with: in a sweep, each model built with its own model
  key (see the module docstring).

  A rule set (a ``RuleSet``, or its config ``{name = "rules", rules = [...]}``)
  is used as it is, except that with ``weight_variance != 1`` every weight it
  draws is multiplied by ``sqrt(weight_variance)`` (each rule splits into its
  weights, scaled, and its other parameters; the default likewise); a rule
  set decides its biases itself, so ``bias_variance`` must be 0.

  Raises:
    ValueError: a rule set with a non-zero ``bias_variance``.

  Examples:
    >>> rules = cell_rules("he_normal", 2.0, 0.0)
    >>> [r.label for r in rules], rules.rules[0].init.factor
    (['weights', 'biases'], 1.4142135623730951)
  """
  obj = jaxinit.get(init) if isinstance(init, (str, Mapping)) else init
  factor = math.sqrt(weight_variance)
  if isinstance(obj, RuleSet):
    if bias_variance != 0.0:
      raise ValueError(f"bias_variance = {bias_variance!r} with a rule set: the rule set "
                       f"decides how biases are drawn; leave bias_variance at 0")
    if weight_variance == 1.0:
      return obj
    rules = []
    for r in obj.rules:
      weights = tuple(n for n in (r.ndim or WEIGHT_RANKS) if n in WEIGHT_RANKS)
      others = tuple(n for n in (r.ndim or range(9)) if n not in WEIGHT_RANKS)
      keep = dict(shape=r.shape, label=r.label, required=False)
      if weights:
        rules.append(Rule(r.pattern, Scaled(r.init, factor), ndim=weights, **keep))
      if others:
        rules.append(Rule(r.pattern, r.init, ndim=others, **keep))
    if obj.default is not None:
      rules.append(Rule("*", Scaled(obj.default, factor), ndim=WEIGHT_RANKS, required=False))
    return RuleSet(tuple(rules), obj.default)
  weights = obj if weight_variance == 1.0 else Scaled(obj, factor)
  bias = jaxinit.zeros if bias_variance == 0.0 else Scaled(UNIT_NORMAL,
                                                           math.sqrt(bias_variance))
  return RuleSet((Rule("*", weights, ndim=WEIGHT_RANKS, label="weights", required=False),
                  Rule("*bias", bias, ndim=1, label="biases", required=False)))


@functools.lru_cache(maxsize=256)
def plan(built: Built, rules: RuleSet) -> Any:
  """:func:`jaxinit.rules.plan` of ``built``'s model under ``rules`` (cached)."""
  return rules_plan(built.target, rules, *built.plan_args, **built.plan_options)


def _split(init: Any) -> tuple[Any, float | None]:
  """``(static initializer, factor)`` of ``Scaled(static, factor)``; ``(init, None)`` else."""
  if isinstance(init, Scaled) and isinstance(init.factor, float):
    return init.init, init.factor
  return init, None


def _key_data(key: jax.Array, shape: Any, dtype: Any) -> jax.Array:
  """An "initializer" that returns its key: ``draw_hashed`` with it gives a path's key."""
  del shape, dtype
  return jax.random.key_data(key)


def _path_keys_impl(keys: jax.Array, words: jax.Array) -> jax.Array:
  return jax.vmap(lambda k, w: draw_hashed(jax.random.wrap_key_data(k), w, (2,), jnp.uint32,
                                           _key_data))(keys, words)


def _layer_keys_impl(keys: jax.Array, index: jax.Array) -> jax.Array:
  return jax.vmap(lambda k, i: jax.random.key_data(jax.random.fold_in(
      jax.random.wrap_key_data(k), i)))(keys, index)


_path_keys = jax.jit(_path_keys_impl)
_layer_keys = jax.jit(_layer_keys_impl)
_KEY_ROWS = 1024  # rows per key program call: one compile per process


def _in_rows(fn: Any, rows: int, *arrays: np.ndarray) -> np.ndarray:
  """``fn`` over the leading axis in calls of exactly ``rows`` (the last one padded)."""
  n = len(arrays[0])
  parts = []
  for lo in range(0, n, rows):
    chunk = [a[lo:lo + rows] for a in arrays]
    pad = rows - len(chunk[0])
    chunk = [np.concatenate([c, np.repeat(c[:1], pad, axis=0)]) if pad else c for c in chunk]
    parts.append(fn(*chunk))
  return np.concatenate([np.asarray(p) for p in jax.device_get(parts)])[:n]


@functools.lru_cache(maxsize=None)
def _row_draw(init: Any, shape: tuple[int, ...], dtype: Any, scaled: bool) -> Any:
  """Compiled: one layer per row key (``Scaled`` by the row's factor when ``scaled``)."""
  def one(key_data, factor):
    key = jax.random.wrap_key_data(key_data)
    return (Scaled(init, factor) if scaled else init)(key, shape, dtype)
  return jax.jit(jax.vmap(one))


@functools.lru_cache(maxsize=None)
def _model_draw(init: Any, shape: tuple[int, ...], dtype: Any, stack: tuple[int, ...]) -> Any:
  """Compiled: one model's parameter, exactly as ``jaxinit.initialize`` draws it."""
  return jax.jit(functools.partial(draw_hashed, shape=shape, dtype=dtype, init=init,
                                   stack=stack))


@functools.lru_cache(maxsize=None)
def _times(dtype: Any) -> Any:
  """Compiled: ``Scaled``'s product of draws and per-model factors."""
  return jax.jit(lambda x, f: x * jnp.asarray(f, dtype).reshape((-1,) + (1,) * (x.ndim - 1)))


FLAT_MIN = 4096
"""Elements of the shortest flat draw: every smaller layer of a sampler shares its program."""

_LAST_OP_NOT_A_PRODUCT = (samplers.TruncatedNormal, samplers.Uniform, samplers.Rademacher)
"""Samplers whose raw draw ends in a clamp, a sum or a cast, never a product by a constant."""


def _flat_parts(init: Any, shape: tuple[int, ...], dtype: Any
                ) -> tuple[tuple[Any, int, Any, Any], Any] | None:
  """``((sampler, length, dtype, constant), multiplier)`` when ``init(key, shape, dtype)`` is
  the first ``prod(shape)`` values of a flat draw of ``length``; else None.

  A built-in elementwise sampler in a ``VarianceScaling`` draws
  ``raw(key, shape) * multiplier`` (the multiplier rounded on the host from
  the fan, :func:`jaxinit.samplers.std_multiplier`), and its counter-based
  random bits (partitionable threefry) give element ``i`` the same value
  whatever the shape: so layers of every shape (``length``: a power of two,
  at least :data:`FLAT_MIN`) share one program. Where XLA folds the
  multiplier and ``Scaled``'s factor into one constant ``multiplier x factor``
  and nothing else (:data:`_LAST_OP_NOT_A_PRODUCT`), that product is a per-row
  argument and every fan and preset over the sampler (He, LeCun, Glorot)
  shares the program too (``constant`` None); otherwise (a normal draw ends in
  a product by ``sqrt 2``, which XLA folds with constants) the multiplier is
  the program's ``constant`` and the factor an argument, as in
  :func:`_row_draw`. ``tests/test_sweep_init.py`` holds both to
  ``jaxinit.initialize`` bit for bit.
  """
  if (type(init) is not VarianceScaling or not elementwise(init)  # pylint: disable=unidiomatic-typecheck
      or type(init.sampler).scaled is not samplers._Base.scaled  # pylint: disable=protected-access
      or not jax.config.jax_threefry_partitionable
      or jax.config.jax_default_prng_impl != "threefry2x32"):
    return None
  dtype = canonical_dtype(dtype, init.dtype)
  if sampling_dtype(dtype) != jnp.float32:
    return None
  try:
    variance = init._variance(init.fan(shape), shape, dtype, jnp.dtype(jnp.float32))  # pylint: disable=protected-access
  except (ValueError, ZeroDivisionError):
    return None  # the initializer's own call raises its error
  multiplier = init.sampler._multiplier(variance, jnp.float32)  # pylint: disable=protected-access
  if not (isinstance(multiplier, np.generic) and multiplier.dtype == np.float32):
    return None
  length = max(FLAT_MIN, 1 << (math.prod(shape) - 1).bit_length())
  if isinstance(init.sampler, _LAST_OP_NOT_A_PRODUCT):
    return (init.sampler, length, dtype, None), multiplier
  return (init.sampler, length, dtype, float(multiplier)), np.float32(1.0)


@functools.lru_cache(maxsize=None)
def _flat_draw(sampler: Any, length: int, dtype: Any, constant: float | None) -> Any:
  """Compiled: per row, ``sampler``'s raw ``(length,)`` draw times the row's
  ``multiplier x factor`` (``constant`` None) or times ``constant``, then the row's factor
  (see :func:`_flat_parts`)."""
  def one(key_data, multiplier, factor):
    raw = sampler._raw(jax.random.wrap_key_data(key_data), (length,), jnp.float32,  # pylint: disable=protected-access
                       None)
    if constant is None:
      return (raw * (multiplier * factor)).astype(dtype)
    return (raw * np.float32(constant) * factor).astype(dtype)
  return jax.jit(jax.vmap(one))


def _rows_per_call(size: int) -> int:
  """Layers per call of a row draw: a power of two, at most 256 and ~4M elements."""
  return max(1, min(256, 1 << max(0, (2**22 // max(size, 1)).bit_length() - 1)))


@functools.lru_cache(maxsize=64)
def _own_draw(built: Built) -> Any:
  """Compiled: the params of the model built with each row's model key, flat."""
  from jaxinit.sweep.step import ravel  # pylint: disable=import-outside-toplevel
  one = lambda k: ravel(built.own_params(jax.random.wrap_key_data(k))).astype(  # noqa: E731
      jnp.float32)
  return jax.jit(jax.vmap(one))


_OWN_ROWS = 8  # models per call of a model-built draw: one compile per shape group


def draw_population(built: Built, rule_sets: Sequence[RuleSet], init_keys: np.ndarray,
                    model_keys: np.ndarray | None = None) -> np.ndarray:
  """Every model's initial params, flat: ``(models, size)`` float32 (host numpy).

  Model ``j`` gets ``jaxinit.initialize(model, rule_sets[j], init_keys[j])``
  (its params raveled in ``built.paths`` order), bit for bit; see the module
  docstring for how the draws are batched.

  Args:
    built: the shape group's model.
    rule_sets: per model, its rules (:func:`cell_rules`).
    init_keys: per model, its raw init key ``(models, 2)`` uint32.
    model_keys: per model, the raw key it is built with (see the module
      docstring); None: the parameters no rule serves keep the values of the
      model as built once (``key(0)``).

  Returns:
    float32 ``(models, size)``.
  """
  num = len(rule_sets)
  leaves = jax.tree.leaves(built.params)
  sizes = [x.size for x in leaves]
  offsets = np.cumsum([0] + sizes)
  out = np.empty((num, offsets[-1]), np.float32)
  for leaf, lo, hi in zip(leaves, offsets[:-1], offsets[1:]):
    out[:, lo:hi] = np.asarray(leaf, np.float32).reshape(-1)
  where = {path: (lo, hi) for path, lo, hi in zip(built.paths, offsets[:-1], offsets[1:])}
  plans = {rules: plan(built, rules) for rules in set(rule_sets)}
  own = [j for j, rules in enumerate(rule_sets) if plans[rules].kept]
  if own and model_keys is not None:
    # Parameters no rule serves: the model's own initializers, each model its own key.
    own_keys = np.asarray(model_keys, np.uint32).reshape(num, 2)[own]
    out[own] = _in_rows(_own_draw(built), _OWN_ROWS, own_keys)
  rows: dict[tuple[Any, ...], list[tuple[int, Any, float | None]]] = {}
  others: dict[tuple[Any, ...], list[tuple[int, Any, float | None]]] = {}
  for j, rules in enumerate(rule_sets):
    for a in plans[rules].assignments:
      if math.prod(a.stack) * math.prod(a.shape) == 0:
        continue  # nothing to draw (a stack of no layers: an MLP of depth 1)
      static, factor = _split(a.init)
      table = rows if elementwise(static) else others
      table.setdefault((static, a.shape, np.dtype(a.dtype), factor is not None), []).append(
          (j, a, factor))
  keys = np.asarray(init_keys, np.uint32).reshape(num, 2)
  _draw_rows(rows, keys, where, out)
  _draw_models(others, keys, where, out)
  return out


def _draw_rows(groups: dict[tuple[Any, ...], list[Any]], keys: np.ndarray,
               where: dict[str, tuple[int, int]], out: np.ndarray) -> None:
  """Elementwise draws: every layer of every model of a group in a few vmapped calls."""
  requests = [(j, a) for members in groups.values() for j, a, _ in members]
  if not requests:
    return
  words = np.array([path_hash(a.path) for _, a in requests], np.uint32)
  bases = _in_rows(_path_keys, _KEY_ROWS, keys[[j for j, _ in requests]], words)
  # Layer i of a stack: fold_in(the path's key, i), as jaxinit.rules.draw does.
  counts = [math.prod(a.stack) for _, a in requests]
  stacked = [r for r, a in enumerate(requests) if a[1].stack]
  layer_keys = {r: bases[r][None] for r in range(len(requests))}
  if stacked:
    repeated = np.concatenate([np.repeat(bases[r][None], counts[r], axis=0) for r in stacked])
    index = np.concatenate([np.arange(counts[r], dtype=np.uint32) for r in stacked])
    folded = _in_rows(_layer_keys, _KEY_ROWS, repeated, index)
    starts = np.cumsum([0] + [counts[r] for r in stacked])
    layer_keys.update({r: folded[lo:hi] for r, lo, hi in zip(stacked, starts[:-1], starts[1:])})
  # Calls: (program, row length) -> row keys, per-row arguments, (model, assignment, rows).
  calls: dict[tuple[Any, int], tuple[list[Any], list[Any], list[Any]]] = {}
  r = 0
  for (static, shape, dtype, scaled), members in groups.items():
    flat = _flat_parts(static, shape, dtype)
    if flat is None:
      call = calls.setdefault((_row_draw(static, shape, dtype, scaled), math.prod(shape)),
                              ([], [], []))
    else:
      program, multiplier = flat
      call = calls.setdefault((_flat_draw(*program), program[1]), ([], [], []))
    row_keys, row_args, places = call
    for j, a, factor in members:
      row_keys.append(layer_keys[r])
      factor = 1.0 if factor is None else factor
      row_args += [(factor,) if flat is None else (multiplier, factor)] * counts[r]
      places.append((j, a, counts[r]))
      r += 1
  for (draw, length), (row_keys, row_args, places) in calls.items():
    columns = [np.asarray(column, np.float32) for column in zip(*row_args)]
    values = _in_rows(draw, _rows_per_call(length), np.concatenate(row_keys), *columns)
    values = values.reshape(len(values), -1)  # a layer per row (flat draws: and a tail)
    start = 0
    for j, a, count in places:
      lo, hi = where[a.path]
      out[j, lo:hi] = values[start:start + count, :(hi - lo) // count].reshape(-1)
      start += count


def _draw_models(groups: dict[tuple[Any, ...], list[Any]], keys: np.ndarray,
                 where: dict[str, tuple[int, int]], out: np.ndarray) -> None:
  """Other initializers: model by model (constants once), by ``jaxinit.initialize``'s program."""
  for (static, _, dtype, scaled), members in groups.items():
    pending, constants = [], {}
    for j, a, factor in members:
      words = np.asarray(path_hash(a.path), np.uint32)
      value = constants.get(a.stack)
      if value is None and isinstance(static, Constant):
        # The same value for every key (and no random bits to compile): drawn once.
        one = static(jax.random.key(0), a.shape, dtype)
        value = constants[a.stack] = jnp.broadcast_to(one, a.stack + one.shape)
      elif value is None:
        value = _model_draw(static, a.shape, dtype, a.stack)(
            jax.random.wrap_key_data(keys[j]), words)
      pending.append((j, a, value, factor))
    if scaled:
      by_shape: dict[tuple[int, ...], list[int]] = {}
      for i, (_, _, value, _) in enumerate(pending):
        by_shape.setdefault(tuple(value.shape), []).append(i)
      for members_of_shape in by_shape.values():
        stacked = jnp.stack([pending[i][2] for i in members_of_shape])
        factors = np.asarray([pending[i][3] for i in members_of_shape], np.float32)
        product = _times(dtype)(stacked, factors)
        for row, i in enumerate(members_of_shape):
          j, a, _, f = pending[i]
          pending[i] = (j, a, product[row], f)
    for j, a, value, _ in jax.device_get(pending):
      lo, hi = where[a.path]
      out[j, lo:hi] = np.asarray(value).reshape(-1)


__all__ = ["UNIT_NORMAL", "WEIGHT_RANKS", "cell_rules", "draw_population", "plan"]
