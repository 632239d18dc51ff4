"""The verbs: :func:`initialize`, :func:`reinit`, and :func:`plan` / :func:`labels` to look first.

``initialize(target, rules, key)`` draws every parameter a rule (or the
rule set's ``default``) matches; ``reinit`` does the same to a model that
already has values, and leaves every other leaf bit-identical. Each drawn
parameter is :func:`jaxinit.rules.draw` at its path: the same key gives the
same values whatever else the model contains, in any order, on any mesh.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from jaxinit import checks
from jaxinit.base import Initializer
from jaxinit.rules.fans import scales_by_fans, with_fans
from jaxinit.rules.keys import as_key, draw, draw_hashed, draw_many, param_key, path_hash
from jaxinit.rules.patterns import Glob, Rule, RuleSet, as_rule_set, glob_match
from jaxinit.rules.targets import Site, Target, adapt_target

__all__ = ["Assignment", "Plan", "Unmatched", "UnusedRuleWarning", "initialize", "labels", "plan", "reinit",
           "matches"]


class UnusedRuleWarning(UserWarning):
  """A rule matched no parameter of the target."""


def matches(rule: Rule, site: Site) -> bool:
  """Whether ``rule`` serves the parameter ``site``."""
  if not rule.accepts_shape(site.layer_shape):
    return False
  pattern = rule.pattern
  if isinstance(pattern, Glob):
    return glob_match(site.path, pattern.glob)
  for owner in site.owners:
    if pattern.cls in owner.classes:
      if pattern.param is None and owner.name in owner.weights:
        return True
      if pattern.param is not None and glob_match(owner.name, pattern.param):
        return True
  return False


@dataclasses.dataclass(frozen=True)
class Assignment:
  """One parameter to draw.

  Attributes:
    path: its path.
    shape: one layer's shape.
    stack: the leading stacked-layer dims.
    dtype: its dtype.
    init: the rule's initializer adapted to the parameter's fans.
    rule: the index of the rule that matched, or None for the default.
    sharding: where the value goes (None: jax's choice).
  """
  path: str
  shape: tuple[int, ...]
  stack: tuple[int, ...]
  dtype: np.dtype
  init: Initializer
  rule: int | None
  sharding: Any = None

  def draw(self, key: jax.Array) -> jax.Array:
    """:func:`jaxinit.rules.draw` of this parameter: pure in ``key``, vmappable."""
    return draw(key, self.path, self.shape, self.dtype, self.init, self.stack)


@dataclasses.dataclass(frozen=True)
class Unmatched:
  """A requirement of the rules that no parameter meets.

  Attributes:
    rules: indices of the rules (one, or every rule of a ``group``).
    group: the rules' group, or None.
    nearest: the target's paths (or, for module-class rules, its module
      classes) nearest to what the rules name; for shadowed rules, the paths
      they fit.
    shadowed_by: the earlier rules that serve every parameter these rules fit
      (empty: they fit no parameter at all).
  """
  rules: tuple[int, ...]
  group: str | None
  nearest: tuple[str, ...]
  shadowed_by: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class Plan:
  """What a rule set does to a target.

  Attributes:
    assignments: the parameters to draw, in the target's order.
    kept: paths no rule matched (they keep the model's values).
    unused_rules: indices of required rules that match nothing (every rule
      of a group none of whose rules matches).
    rules: the rule set.
    unmatched: the same, one entry per requirement, with the nearest paths.
  """
  assignments: tuple[Assignment, ...]
  kept: tuple[str, ...]
  unused_rules: tuple[int, ...]
  rules: RuleSet
  unmatched: tuple[Unmatched, ...] = ()

  def draw(self, key: jax.Array) -> dict[str, jax.Array]:
    """Every assignment's value, ``{path: array}``: pure in ``key``, for ``jit``/``vmap``.

    Each value is its :meth:`Assignment.draw`, bit for bit; drawn as one
    program with one random-number kernel per distinct elementwise
    initializer and shape (:func:`jaxinit.rules.keys.draw_many`), so compiling
    ``jax.jit(jax.vmap(plan.draw))`` does not grow with the number of layers.
    """
    return _draw_traced(key, self.assignments)

  def unmatched_text(self) -> str:
    """What :attr:`unmatched` says, one clause per requirement ("" when every rule serves)."""
    return _unmatched_text(self)

  def __str__(self) -> str:
    lines = []
    for a in self.assignments:
      which = ("default" if a.rule is None
               else f"rule {a.rule} ({self.rules.rules[a.rule].pattern!r})")
      stack = f" x{a.stack}" if a.stack else ""
      lines.append(f"{a.path} {a.shape}{stack}: {which}")
    lines += [f"{path}: kept" for path in self.kept]
    lines += [f"unused: rule {i} ({self.rules.rules[i].pattern!r})" for i in self.unused_rules]
    return "\n".join(lines)

  def label(self, index: int | None) -> str:
    """The optax label of rule ``index`` (its ``label``, or ``"rule{index}"``; ``"default"``)."""
    if index is None:
      return "default"
    return self.rules.rules[index].label or f"rule{index}"


def _has_no_fans(site: Site) -> bool:
  """A parameter whose fans mean nothing: a norm's scale or bias, or a parameter of fewer
  than 2 axes per layer that no known module gives fans (a bias of a pytree)."""
  return not site.fans.defined if site.fans is not None else len(site.layer_shape) < 2


_FANLESS = {False: "these parameters have none (norm scales and biases, parameters of fewer "
                   "than 2 axes outside a known layer)",
            True: "the default serves only weights (2+ axes per layer); these parameters "
                  "have fewer"}


def _make_plan(target: Target, rules: RuleSet) -> Plan:
  assignments, kept, used = [], [], set()
  winners: dict[str, int | None] = {}
  fanless: dict[int | None, list[str]] = {}
  for site in target.sites:
    index = next((i for i, r in enumerate(rules.rules) if matches(r, site)), None)
    winners[site.path] = index
    if index is None and rules.default is None:
      kept.append(site.path)
      continue
    init = rules.default if index is None else rules.rules[index].init
    if index is not None:
      used.add(index)
    # A fan-scaled rule may serve a layer's bias (its weight's fans: PyTorch's bias init);
    # the catch-all default serves weights only.
    if scales_by_fans(init) and (_has_no_fans(site) or (index is None
                                                         and len(site.layer_shape) < 2)):
      fanless.setdefault(index, []).append(site.path)
      continue
    try:
      adapted = with_fans(init, site.fans)
    except ValueError as err:
      raise ValueError(f"{site.path} (shape {site.shape}): {err}") from None
    assignments.append(Assignment(site.path, site.layer_shape, site.stack, site.dtype, adapted,
                                  index, site.sharding))
  if fanless:
    raise ValueError("; ".join(
        f"{'the default' if i is None else f'rule {i} {rules.rules[i].pattern!r}'} "
        f"({rules.default if i is None else rules.rules[i].init!r}) scales by the fans, and "
        f"{_FANLESS[i is None]}: {paths}" for i, paths in fanless.items())
        + "; give them rules of their own before it, e.g. ('*bias', jaxinit.zeros), "
          "('*scale', jaxinit.ones)")
  unmatched = _unmatched(target, rules, used, winners)
  unused = tuple(i for u in unmatched for i in u.rules)
  return Plan(tuple(assignments), tuple(kept), unused, rules, unmatched)


def _unmatched(target: Target, rules: RuleSet, won: set[int],
               winners: dict[str, int]) -> tuple[Unmatched, ...]:
  """The required rules (and groups) that serve no parameter, in rule order: their patterns
  fit none, or every parameter they fit is served by an earlier rule (shadowed)."""
  requirements: dict[Any, list[int]] = {}
  for i, rule in enumerate(rules.rules):
    if rule.required:
      requirements.setdefault(rule.group if rule.group is not None else i, []).append(i)
  out = []
  for group, indices in requirements.items():
    if any(i in won for i in indices):
      continue
    fitted = [s.path for s in target.sites if any(matches(rules.rules[i], s) for i in indices)]
    if fitted:  # shadowed: `scheme + zero_head(...)` must not silently leave the head alone
      by = tuple(sorted({winners[p] for p in fitted if winners.get(p) is not None}))
      out.append(Unmatched(tuple(indices), group if isinstance(group, str) else None,
                           tuple(fitted[:5]), by))
      continue
    globs = [rules.rules[i].pattern.glob for i in indices
             if isinstance(rules.rules[i].pattern, Glob)]
    if globs:
      paths = [s.path for s in target.sites]
      near = [p for g in globs for p in checks.nearest(g, paths)]
    else:  # module-class rules: the classes the target has
      near = [owner.classes[0].rsplit(".", 1)[-1] for s in target.sites for owner in s.owners]
    out.append(Unmatched(tuple(indices), group if isinstance(group, str) else None,
                         tuple(dict.fromkeys(near))[:5]))
  return tuple(out)


def _unmatched_text(plan: Plan) -> str:
  parts = []
  for u in plan.unmatched:
    which = " or ".join(f"rule {i} {plan.rules.rules[i].pattern!r}" for i in u.rules[:4])
    if len(u.rules) > 4:
      which += f" or {len(u.rules) - 4} more"
    text = f"{u.group} ({which})" if u.group else which
    globs = any(isinstance(plan.rules.rules[i].pattern, Glob) for i in u.rules)
    if u.shadowed_by:
      earlier = " and ".join(f"rule {i} {plan.rules.rules[i].pattern!r}" for i in u.shadowed_by)
      text += (f" is shadowed: every parameter it fits ({', '.join(map(repr, u.nearest))}) is "
               f"served by the earlier {earlier or 'rules'}; put it first")
    elif u.nearest:
      what = "nearest paths" if globs else "the target's module classes"
      text += f" [{what}: {', '.join(map(repr, u.nearest))}]"
    parts.append(text)
  return "; ".join(parts) if parts else ""


def _check_unused(plan: Plan, strict: bool, stacklevel: int = 4) -> None:
  if not plan.unused_rules:
    return
  text = _unmatched_text(plan)
  if strict:
    raise ValueError(f"rules that serve no parameter (strict=True): {text}")
  warnings.warn(f"rules that serve no parameter: {text}", UnusedRuleWarning,
                stacklevel=stacklevel)


def _out_sharding(site_sharding: Any, path: str, override: Any) -> Any:
  if override is None:
    return site_sharding
  if callable(override) and not isinstance(override, Mapping):
    chosen = override(path)
    return site_sharding if chosen is None else chosen
  for glob, sharding in override.items():
    if glob_match(path, glob):
      return sharding
  return site_sharding


@functools.lru_cache(maxsize=1024)
def _compiled(shape: tuple[int, ...], stack: tuple[int, ...], dtype: Any, init: Initializer,
              sharding: Any) -> Callable[..., jax.Array]:
  fn = functools.partial(draw_hashed, shape=shape, dtype=dtype, init=init, stack=stack)
  return jax.jit(fn, out_shardings=sharding)


def _draw_assignment(key: jax.Array, a: Assignment, sharding: Any) -> jax.Array:
  words = np.asarray(path_hash(a.path), np.uint32)
  try:
    try:
      fn = _compiled(a.shape, a.stack, np.dtype(a.dtype), a.init, sharding)
    except TypeError:  # an unhashable initializer: compile for this call only
      fn = jax.jit(functools.partial(draw_hashed, shape=a.shape, dtype=np.dtype(a.dtype),
                                     init=a.init, stack=a.stack), out_shardings=sharding)
    return fn(key, words)
  except (ValueError, TypeError, ZeroDivisionError, NotImplementedError) as err:
    raise ValueError(f"{a.path} (shape {a.shape}, dtype {np.dtype(a.dtype).name}): "
                     f"{a.init!r} cannot initialize it: {err}") from err


def _prepare(target: Any, rules: Any, key: Any, inputs: tuple[Any, ...],
             options: Mapping[str, Any]) -> tuple[Target, Plan, jax.Array]:
  rule_set = as_rule_set(rules)
  key = as_key(key)
  adapted = adapt_target(target, key=key, inputs=inputs, **options)
  return adapted, _make_plan(adapted, rule_set), key


_OPTIONS = ("mesh", "logical_axis_rules", "stack_axes", "init_kwargs", "module")


def plan(target: Any, rules: Any, *inputs: Any, mesh: Any = None,
         logical_axis_rules: Any = None, stack_axes: Mapping[str, int] | None = None,
         init_kwargs: Mapping[str, Any] | None = None, module: Any = None) -> Plan:
  """Which rule serves each parameter of ``target``, without drawing anything.

  Takes the arguments of :func:`initialize` (no key: shapes are found with
  ``jax.eval_shape``).

  Examples:
    >>> import jax, jaxinit
    >>> params = {"dense": {"kernel": jax.numpy.zeros((3, 4)), "bias": jax.numpy.zeros(4)}}
    >>> print(plan(params, [("*/kernel", jaxinit.he_normal())]))
    dense/kernel (3, 4): rule 0 (Glob('*/kernel'))
    dense/bias: kept
  """
  options = dict(mesh=mesh, logical_axis_rules=logical_axis_rules, stack_axes=stack_axes,
                 init_kwargs=init_kwargs, module=module)
  return _prepare(target, rules, jax.random.key(0), inputs, options)[1]


def _run(target: Any, rules: Any, key: Any, inputs: tuple[Any, ...], *, strict: bool,
         out_shardings: Any, require_values: bool, verb: str,
         options: Mapping[str, Any]) -> Any:
  adapted, the_plan, key = _prepare(target, rules, key, inputs, options)
  _check_unused(the_plan, strict)
  if require_values:
    missing = [s.path for s in adapted.sites if not s.has_value and adapted.program is None]
    missing += [s.path for s in adapted.state if not s.has_value]
    if missing:
      raise ValueError(f"{verb} needs a model with values; these leaves have only "
                       f"shapes: {missing} (use jaxinit.initialize for a model from "
                       f"eval_shape)")
  if adapted.program is not None:  # linen: one program builds every variable
    return adapted.program(the_plan.assignments, _traced_draw)
  drawn = {a.path for a in the_plan.assignments}
  empty = [s.path for s in adapted.sites if not s.has_value and s.path not in drawn]
  problems = [f"these parameters have only shapes (nnx.eval_shape / ShapeDtypeStruct) and no "
              f"rule serves them: {empty}; add rules or a default"] if empty else []
  try:
    state = state_values(adapted, key)
  except ValueError as err:  # one error names every abstract leaf left
    problems.append(str(err))
  if problems:
    raise ValueError("; ".join(problems))
  shardings = [_out_sharding(a.sharding, a.path, out_shardings) for a in the_plan.assignments]
  if isinstance(key, jax.core.Tracer) and all(s is None for s in shardings):
    # Inside the caller's jit/vmap: one program for the whole model, with one draw per
    # distinct elementwise initializer and shape (its compile time does not grow with depth).
    values = _draw_traced(key, the_plan.assignments)
  else:  # eagerly: each parameter by a compiled draw shared by every model and call
    values = {a.path: _draw_assignment(key, a, sharding)
              for a, sharding in zip(the_plan.assignments, shardings)}
  return adapted.write(values, state)


def _state_where(s: Any) -> str:
  return f"{s.collection + ' ' if s.collection else ''}{s.path!r} ({s.shape}, {s.dtype})"


def state_values(target: Target, key: jax.Array, skip: Any = ()) -> dict[tuple[str, str], Any]:
  """The values of the target's non-parameter leaves that have only shapes (from
  ``nnx.eval_shape``): what their modules' constructors give them, at each leaf's path key
  (RNG streams: the path key itself, so a stream is reproducible and independent of
  every other). ``skip``: ``(collection, path)`` pairs given otherwise (restored).

  Raises:
    ValueError: naming every such leaf whose constructor value is not known.
  """
  todo = [s for s in target.state if not s.has_value and (s.collection, s.path) not in skip]
  unknown = [s for s in todo if s.init is None]
  if unknown:
    raise ValueError(
        f"these leaves are not parameters and have only shapes (nnx.eval_shape / "
        f"ShapeDtypeStruct), and jaxinit does not know the value their module's constructor "
        f"gives them: {', '.join(_state_where(s) for s in unknown)}. Declare it with "
        f"jaxinit.rules.register_module(YourModule, state={{'name': jaxinit.zeros}}), or "
        f"build the model with values (not from eval_shape)")
  return {(s.collection, s.path): s.init(param_key(key, s.path), s.shape, s.dtype)
          for s in todo}


def _draw_traced(key: jax.Array, assignments: tuple[Assignment, ...]) -> dict[str, jax.Array]:
  try:
    drawn = draw_many(key, [(path_hash(a.path), a.shape, a.dtype, a.init, a.stack)
                            for a in assignments])
  except (ValueError, TypeError, ZeroDivisionError, NotImplementedError):
    drawn = [_traced_draw(key, a) for a in assignments]  # raises, naming the parameter
  return {a.path: value for a, value in zip(assignments, drawn)}


def _traced_draw(key: jax.Array, a: Assignment) -> jax.Array:
  try:
    return a.draw(key)
  except (ValueError, TypeError, ZeroDivisionError, NotImplementedError) as err:
    raise ValueError(f"{a.path} (shape {a.shape}, dtype {np.dtype(a.dtype).name}): "
                     f"{a.init!r} cannot initialize it: {err}") from err


def initialize(target: Any, rules: Any, key: Any, *inputs: Any, strict: bool = False,
               mesh: Any = None, logical_axis_rules: Any = None, out_shardings: Any = None,
               stack_axes: Mapping[str, int] | None = None,
               init_kwargs: Mapping[str, Any] | None = None, module: Any = None) -> Any:
  """Initializes every parameter of ``target`` that a rule (or ``default``) matches.

  Each drawn parameter is ``draw(key, path, shape, dtype, init)``
  (:func:`jaxinit.rules.draw`): ``init`` at ``fold_in(key, hash(path))``,
  adapted to the fans its module declares (:mod:`jaxinit.rules.fans`),
  drawn layer by layer for stacked layers, directly into its sharding.

  Args:
    target: a Flax NNX module (concrete or from ``nnx.eval_shape``; updated in
      place and returned), a Flax linen module followed by sample ``inputs``
      (returns its variables, as ``module.init(key, *inputs)`` would, with
      the matched parameters drawn by the rules), linen variables (a dict
      with ``"params"``), an Equinox module (a new one is returned), or a
      pytree of arrays / ``jax.ShapeDtypeStruct`` (path rules only).
      State that is not a parameter (``nnx.BatchStat``, RNG streams, linen
      collections other than ``params``) is never drawn by the rules; where
      it has only a shape it gets what the module's constructor gives it
      (BatchNorm's mean 0 and variance 1, an attention cache 0, an RNG
      stream the key ``param_key(key, path)`` and count 0; see
      :func:`~jaxinit.rules.register_module` ``state=``).
    rules: a :class:`~jaxinit.rules.RuleSet`, a list of ``(pattern,
      initializer)`` pairs, a ``{pattern: initializer}`` dict (in order:
      first match wins), or a rule-set config dict. A fan-scaled
      ``default`` (``he_normal()``...) serves weights only: a parameter of
      fewer than 2 axes per layer that it would reach is an error (give
      biases and norms rules of their own); a fan-scaled rule may serve a
      known layer's bias, with the weight's fans (PyTorch's bias init).
    key: a ``jax.random.key``, raw key data, or an int seed (traced ints
      too: ``jax.vmap`` over seeds).
    *inputs: sample inputs of a linen module.
    strict: raise, instead of warning, when a rule matches nothing.
    mesh: the mesh for sharding metadata (``nnx.with_partitioning`` names,
      linen partitioning); default: the context's (``jax.set_mesh``).
    logical_axis_rules: linen logical axis rules (``nn.with_logical_partitioning``).
    out_shardings: explicit shardings: ``{path glob: Sharding}`` (first
      match wins) or ``fn(path) -> Sharding | None``.
    stack_axes: ``{path glob: n}``: the first ``n`` axes of these parameters
      stack independent layers (found from the module where it is known).
    init_kwargs: keyword arguments of a linen module's ``init``.
    module: for linen variables, the linen module (with ``inputs``) whose
      classes and fans the rules may use.

  Returns:
    The initialized target (see ``target``).

  Raises:
    ValueError: with ``strict=True``, a rule (or a scheme's required group)
      that matches nothing, naming the target's nearest paths; a parameter
      with only a shape that no rule serves; state with only a shape whose
      constructor value is not known; an initializer that cannot serve a
      parameter, a fan-scaled one on parameters without fans (the messages
      name every path).
    TypeError: a target of no known kind (naming ``target`` and the kinds);
      bad rules (an initializer factory given uncalled: ``he_normal`` for
      ``he_normal()``) or key; a linen module without the sample inputs its
      call needs (naming them).

  Warns:
    UnusedRuleWarning: a rule matched nothing (``strict=False``).

  Examples:
    >>> import jax, jaxinit
    >>> params = {"hidden": {"kernel": jax.numpy.ones((4, 4)), "bias": jax.numpy.ones(4)}}
    >>> new = jaxinit.initialize(params, [("*bias", jaxinit.zeros)], jax.random.key(0))
    >>> new["hidden"]["bias"].tolist(), new["hidden"]["kernel"][0, 0].item()
    ([0.0, 0.0, 0.0, 0.0], 1.0)
  """
  options = dict(mesh=mesh, logical_axis_rules=logical_axis_rules, stack_axes=stack_axes,
                 init_kwargs=init_kwargs, module=module)
  return _run(target, rules, key, inputs, strict=strict, out_shardings=out_shardings,
              require_values=False, verb="initialize", options=options)


def reinit(target: Any, rules: Any, key: Any, *inputs: Any, strict: bool = False,
           mesh: Any = None, logical_axis_rules: Any = None, out_shardings: Any = None,
           stack_axes: Mapping[str, int] | None = None, module: Any = None) -> Any:
  """Re-draws ONLY the parameters a rule matches; every other leaf stays bit-identical.

  The target must hold values (a trained or built model): an NNX module
  (updated in place and returned), linen variables (pass the linen module
  as ``module=`` and its sample ``inputs`` to use module-class rules), an
  Equinox module or a pytree. Other arguments as :func:`initialize`.
  Matched parameters get exactly what :func:`initialize` would give them.

  Raises:
    ValueError: the target has parameters with shapes only; see :func:`initialize`.

  Examples:
    >>> import jax, jaxinit
    >>> params = {"body": {"kernel": jax.numpy.ones((4, 4))},
    ...           "head": {"kernel": jax.numpy.ones((4, 2))}}
    >>> new = jaxinit.reinit(params, [("head/*", jaxinit.zeros)], jax.random.key(0))
    >>> float(new["head"]["kernel"].sum()), new["body"]["kernel"] is params["body"]["kernel"]
    (0.0, True)
  """
  if module is None and inputs:
    raise TypeError("sample inputs go with module= (the linen module of linen variables)")
  options = dict(mesh=mesh, logical_axis_rules=logical_axis_rules, stack_axes=stack_axes,
                 init_kwargs=None, module=module)
  return _run(target, rules, key, inputs, strict=strict, out_shardings=out_shardings,
              require_values=True, verb="reinit", options=options)


def labels(target: Any, rules: Any, *inputs: Any, unmatched: str = "unmatched",
           **options: Any) -> Any:
  """Per-parameter labels for ``optax.multi_transform``: which rule serves each parameter.

  A parameter served by rule ``i`` gets the rule's ``label`` (or
  ``"rule{i}"``), by the default ``"default"``, by nothing ``unmatched``.

  Returns:
    A pytree shaped like the target's parameters: ``nnx.state(model,
    nnx.Param)`` with labels for the variables, linen ``params``, the
    Equinox module with labels at its array leaves (None elsewhere), or the
    pytree.

  Examples:
    >>> import jax, jaxinit, optax
    >>> params = {"body": {"kernel": jax.numpy.ones((4, 4))},
    ...           "head": {"kernel": jax.numpy.ones((4, 2))}}
    >>> tags = labels(params, [jaxinit.rules.Rule("head/*", jaxinit.zeros, label="new")],
    ...               unmatched="frozen")
    >>> tags
    {'body': {'kernel': 'frozen'}, 'head': {'kernel': 'new'}}
    >>> tx = optax.multi_transform({"new": optax.adam(1e-3), "frozen": optax.set_to_zero()},
    ...                            tags)
  """
  unknown = sorted(set(options) - set(_OPTIONS))
  if unknown:
    raise TypeError(f"labels() takes options {list(_OPTIONS)}, got unknown {unknown}")
  adapted, the_plan, _ = _prepare(target, rules, jax.random.key(0), inputs, options)
  names = {path: unmatched for path in the_plan.kept}
  names.update({a.path: the_plan.label(a.rule) for a in the_plan.assignments})
  return adapted.label_tree(names)
