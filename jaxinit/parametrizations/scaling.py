"""A parametrization applied to one model: roles from base shapes, init rules, multiplier trees.

:func:`scale` walks the target and the base model with the model level's
adapters (:mod:`jaxinit.rules.targets`: Flax NNX, linen, Equinox, pytrees)
and pairs their parameters by path, as microsoft/mup's ``set_base_shapes``
pairs ``named_parameters``. For each parameter it finds:

* ``m_in``, ``m_out``: the ratios of its fan-in and fan-out to the base's,
  from the module-aware fans (:mod:`jaxinit.rules.fans`), so Flax's ``(in,
  out)``, Equinox's ``(out, in)`` and convolution layouts all read right; a
  parameter of rank <= 1 or a non-weight (bias, norm scale) has one size
  ratio ``m`` instead. Embedding tables are inputs (fan-in: the vocabulary).
* its role (:data:`~jaxinit.parametrizations.ROLES`) from which of them grow,
  unless ``roles`` names it;
* its depth ratio ``k = L / L_base`` when it belongs to repeated blocks: a
  leading stacked-layer axis that grows (``nnx.vmap`` / ``nn.scan`` stacks),
  or an indexed path (``blocks/7/...``) whose index range grows.

The init rules draw each parameter at the base model's variance times the
role's factor: the base rule's initializer adapted to the *base* fans (a
fixed-variance initializer) times ``init`` — so a fan-in init (He, LeCun,
PyTorch's default) and a constant-std init (``normal(0.02)``) both scale as
muP asks, as mup's ``set_base_shapes(rescale_params=True)`` and
``mup.init`` do. Initializers whose variance is not a fan formula
(orthogonal, identity, delta) are taken to scale as ``1 / fan_in`` at the
target.

Examples:
  >>> import jax, jaxinit
  >>> from jaxinit import parametrizations as P
  >>> def mlp(width):
  ...   return {"input": {"kernel": jax.ShapeDtypeStruct((8, width), "float32")},
  ...           "hidden": {"kernel": jax.ShapeDtypeStruct((width, width), "float32"),
  ...                      "bias": jax.ShapeDtypeStruct((width,), "float32")},
  ...           "readout": {"kernel": jax.ShapeDtypeStruct((width, 10), "float32")}}
  >>> s = P.mup().scale(mlp(256), base=mlp(64))
  >>> [(p.path, p.role, p.factors.lr_adam) for p in s.params]
  [('hidden/bias', 'vector', 1.0), ('hidden/kernel', 'hidden', 0.25), ('input/kernel', 'input', 1.0), ('readout/kernel', 'output', 0.25)]
  >>> s.tree("lr_adam")["readout"]["kernel"]
  0.25
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax

from jaxinit import checks, presets
from jaxinit.base import Initializer
from jaxinit.initializers import (Constant, Scaled, VarianceScaling, compute_fans, scaled,
                                  variance_scaling)
from jaxinit.parametrizations.core import ROLES, Factors, Parametrization
from jaxinit.rules.api import Plan, _make_plan, matches
from jaxinit.rules.patterns import Glob, OfModule, Rule, RuleSet, as_rule_set
from jaxinit.rules.schemes import EMBED, NORM
from jaxinit.rules.targets import Site, adapt_target

__all__ = ["ParamScale", "Scaling", "scale", "default_rules", "param_drawer"]


def default_rules() -> RuleSet:
  """Flax's defaults as rules: LeCun normal weights (by their module fans), zero biases,
  norm scales 1 and biases 0."""
  norms = [Rule(OfModule(c, "bias"), presets.zeros, required=False) for c in NORM]
  norms += [Rule(OfModule(c), presets.ones, required=False) for c in NORM]
  return RuleSet(tuple(norms) + (Rule("*bias", presets.zeros, required=False),),
                 default=presets.lecun_normal())


@dataclasses.dataclass(frozen=True)
class ParamScale:
  """What a parametrization does to one parameter.

  Attributes:
    path: the parameter's path.
    role: one of :data:`~jaxinit.parametrizations.ROLES`.
    shape: one layer's shape in the target.
    base_shape: one layer's shape in the base model.
    m_in: fan-in ratio target / base (weights; 1 for vectors).
    m_out: fan-out ratio target / base (weights; 1 for vectors).
    m: size ratio target / base (vectors; 1 for weights).
    depth_mult: ``L / L_base`` for parameters in repeated blocks, else 1.
    factors: the :class:`~jaxinit.parametrizations.Factors`.
  """
  path: str
  role: str
  shape: tuple[int, ...]
  base_shape: tuple[int, ...]
  m_in: float
  m_out: float
  m: float
  depth_mult: float
  factors: Factors


@dataclasses.dataclass(frozen=True, eq=False)
class Scaling:
  """A parametrization applied to a model (from :func:`scale`).

  Attributes:
    parametrization: the :class:`~jaxinit.parametrizations.Parametrization`.
    params: one :class:`ParamScale` per parameter, in the target's order.
    rules: the init rules for :func:`jaxinit.initialize` (one exact-path
      rule per parameter its base rule set serves).
    kept: paths the base rules do not serve (they keep the model's values,
      not rescaled).
  """
  parametrization: Parametrization
  params: tuple[ParamScale, ...]
  rules: RuleSet
  kept: tuple[str, ...]
  label_tree: Callable[[Mapping[str, Any]], Any] = dataclasses.field(repr=False)

  def __getitem__(self, path: str) -> ParamScale:
    for p in self.params:
      if p.path == path:
        return p
    raise KeyError(f"no parameter {path!r}; parameters are {[p.path for p in self.params]}")

  def tree(self, factor: str) -> Any:
    """One factor of every parameter as a pytree shaped like the model's parameters.

    Args:
      factor: a field of :class:`~jaxinit.parametrizations.Factors`
        (``"lr_adam"``, ``"eps"``, ...) or ``"role"``.

    Returns:
      Python floats (str for ``"role"``) in the parameters' tree
      (``nnx.state(model, nnx.Param)``, linen ``params``, the Equinox module
      with None at non-arrays, the pytree): a prefix of the gradients' tree.
    """
    if factor == "role":
      return self.label_tree({p.path: p.role for p in self.params})
    checks.choice("factor", factor, Factors._fields + ("role",))
    return self.label_tree({p.path: float(getattr(p.factors, factor)) for p in self.params})

  def trees(self, factors: Sequence[str] = ("lr_sgd", "lr_adam", "eps", "weight_decay")
            ) -> dict[str, Any]:
    """``{factor: tree(factor)}``, what :func:`~jaxinit.parametrizations.optimizer` takes in
    place of the scaling; stack these over models of equal shapes
    (``jax.tree.map(lambda *f: jnp.asarray(f), *trees)``) to ``vmap`` over
    parametrizations in one program."""
    return {f: self.tree(f) for f in factors}

  def multiplier(self, path: str) -> float:
    """The forward multiplier of ``path`` (1 unless ``readout="multiplier"``)."""
    return self[path].factors.multiplier

  def optimizer(self, name: str, learning_rate: Any, **kwargs: Any) -> Any:
    """An optax optimizer with this scaling's learning-rate, epsilon and decay factors:
    ``"adam"``, ``"adamw"`` or ``"sgd"``
    (:func:`jaxinit.parametrizations.optimizer`)."""
    from jaxinit.parametrizations.optim import optimizer  # pylint: disable=import-outside-toplevel
    return optimizer(name, learning_rate, self, **kwargs)

  def __str__(self) -> str:
    lines = [f"{self.parametrization.name}: path, role, shape <- base, init, multiplier, "
             f"lr_sgd, lr_adam, eps, weight_decay"]
    for p in self.params:
      f = p.factors
      lines.append(f"{p.path}: {p.role} {p.shape} <- {p.base_shape}"
                   + (f" depth x{p.depth_mult:g}" if p.depth_mult != 1 else "")
                   + f"  {f.init:.4g} {f.multiplier:.4g} {f.lr_sgd:.4g} {f.lr_adam:.4g} "
                     f"{f.eps:.4g} {f.weight_decay:.4g}")
    return "\n".join(lines)


_INDEX = re.compile(r"^\d+$")


def _template(path: str) -> str:
  return "/".join("#" if _INDEX.match(part) else part for part in path.split("/"))


def _escape(path: str) -> str:
  """``path`` as a glob that matches exactly it."""
  return re.sub(r"([*?\[])", r"[\1]", path)


def _is_embedding(site: Site) -> bool:
  return bool(site.owners) and any(c in EMBED for c in site.owners[0].classes)


def _is_weight(site: Site) -> bool:
  if len(site.layer_shape) < 2:
    return False
  if not site.owners:
    return True
  owner = site.owners[0]
  return owner.name in owner.weights and not any(c in NORM for c in owner.classes)


def _fans(site: Site) -> tuple[float, float]:
  """``(fan_in, fan_out)`` of a weight: the module's, embeddings as inputs, else jax's axes."""
  if _is_embedding(site):
    num, features = site.layer_shape[-2], site.layer_shape[-1]
    return float(num), float(features)
  if site.fans is not None:
    return site.fans.fan_in, site.fans.fan_out
  return tuple(float(f) for f in compute_fans(site.layer_shape))  # type: ignore[return-value]


def _ratio(a: float, b: float, what: str, path: str) -> float:
  if b == 0 or a == 0:
    raise ValueError(f"{path}: a zero {what} in the target or the base model")
  return a / b


def _infer_role(site: Site, base: Site) -> tuple[str, float, float, float]:
  """``(role, m_in, m_out, m)`` from the target's and the base's shapes and fans."""
  if len(site.layer_shape) != len(base.layer_shape):
    raise ValueError(f"{site.path}: rank {len(site.layer_shape)} in the target, "
                     f"{len(base.layer_shape)} in the base model ({site.layer_shape} vs "
                     f"{base.layer_shape})")
  m = float(math.prod(_ratio(a, b, "size", site.path)
                      for a, b in zip(site.layer_shape, base.layer_shape) if a != b))
  if _is_weight(site):
    (fi, fo), (bi, bo) = _fans(site), _fans(base)
    m_in, m_out = _ratio(fi, bi, "fan-in", site.path), _ratio(fo, bo, "fan-out", site.path)
    grows_in, grows_out = m_in != 1.0, m_out != 1.0
    role = ("hidden" if grows_in and grows_out else "output" if grows_in
            else "input" if grows_out else "fixed")
    return role, m_in, m_out, m
  return ("vector" if m != 1.0 else "fixed"), 1.0, 1.0, m


def _role_overrides(roles: Any) -> list[tuple[Rule, str]]:
  """``roles``: ``{pattern: role}`` or ``[(pattern, role), ...]``, patterns as rules take."""
  if roles is None:
    return []
  items = roles.items() if isinstance(roles, Mapping) else roles
  out = []
  for pattern, role in items:
    out.append((Rule(pattern, presets.zeros), checks.choice(f"roles[{pattern!r}]", role, ROLES)))
  return out


def _base_sites(base_sites: Sequence[Site]) -> tuple[dict[str, Site], dict[str, list[Site]]]:
  by_path = {s.path: s for s in base_sites}
  by_template: dict[str, list[Site]] = {}
  for s in base_sites:
    by_template.setdefault(_template(s.path), []).append(s)
  return by_path, by_template


def _depth_mult(site: Site, base: Site, target_count: int, base_count: int) -> float:
  stacked = math.prod(site.stack) / math.prod(base.stack) if site.stack or base.stack else 1.0
  return stacked * (target_count / base_count)


def _at_shape(init: Initializer, shape: tuple[int, ...]) -> Initializer:
  """A fan-based variance-scaling ``init`` evaluated at ``shape``'s fans (jax's axes), for
  parameters whose module declares no fans; anything else unchanged."""
  if isinstance(init, Scaled):
    inner = _at_shape(init.init, shape)
    return init if inner is init else Scaled(inner, init.factor)
  if isinstance(init, VarianceScaling) and init.mode != "unit":
    try:
      return variance_scaling(init.scale / init.fan(shape), "unit", init.sampler)
    except ValueError:  # the shape's rank does not fit the initializer's axes
      return init
  return init


def _fixed_variance(init: Initializer) -> bool:
  """Whether ``init`` draws at a variance independent of the shape (after ``with_fans``)."""
  while isinstance(init, Scaled):
    init = init.init
  return isinstance(init, Constant) or (isinstance(init, VarianceScaling) and init.mode == "unit")


def _init_rules(p: Parametrization, scales: Sequence[ParamScale], base_of: Mapping[str, str],
                base_plan: Plan, target_plan: Plan, rule_set: RuleSet,
                unfanned: set[str]) -> tuple[RuleSet, tuple]:
  if p.width == "sp" and p.depth_alpha is None:
    kept = tuple(target_plan.kept)
    return rule_set, kept
  base_inits = {a.path: a.init if a.path not in unfanned else _at_shape(a.init, a.shape)
                for a in base_plan.assignments}
  target_inits = {a.path: a.init for a in target_plan.assignments}
  rules, kept = [], []
  for s in scales:
    base_init = base_inits.get(base_of[s.path])
    if base_init is None or s.path not in target_inits:
      kept.append(s.path)
      continue
    if p.width == "sp":  # depth scaling alone leaves the init to the rules at the target
      init = target_inits[s.path]
    elif _fixed_variance(base_init):
      init = scaled(base_init, s.factors.init)
    else:  # a shape-aware init (orthogonal, identity): taken to scale as 1 / fan_in
      init = scaled(target_inits[s.path], s.factors.init * math.sqrt(s.m_in))
    rules.append(Rule(Glob(_escape(s.path)), init))
  return RuleSet(tuple(rules)), tuple(kept)


def scale(parametrization: Any, target: Any, *inputs: Any, base: Any, rules: Any = None,
          roles: Any = None, base_inputs: tuple[Any, ...] | None = None,
          stack_axes: Mapping[str, int] | None = None, module: Any = None) -> Scaling:
  """Applies a parametrization to ``target``, a wider or deeper version of ``base``.

  Args:
    parametrization: a :class:`~jaxinit.parametrizations.Parametrization`
      (or a name / config for :func:`~jaxinit.parametrizations.get`).
    target: the model to scale (any target :func:`jaxinit.initialize`
      takes; from ``nnx.eval_shape`` is enough), followed by a linen
      module's sample ``inputs``.
    base: the base model, of the same kind and parameter paths (the model
      whose hyperparameters were tuned, usually built at the base width and
      depth; ``nnx.eval_shape`` / ``jax.eval_shape`` avoid drawing it).
    rules: the base model's init rules (default :func:`default_rules`).
    roles: ``{pattern: role}`` overrides (patterns as in rules: path globs,
      module classes), e.g. ``{"*head/kernel": "output"}`` for a model whose
      readout has as many outputs as the base.
    base_inputs: a linen base module's sample inputs (default: ``inputs``).
    stack_axes: ``{path glob: n}`` leading stacked-layer axes (as for
      :func:`jaxinit.initialize`), for both models.
    module: for linen variables, the linen module (with ``inputs``).

  Returns:
    A :class:`Scaling`.

  Raises:
    ValueError: a parameter of the target has no counterpart in the base
      model, or its rank differs.
  """
  from jaxinit.parametrizations.core import get  # pylint: disable=import-outside-toplevel
  p = get(parametrization)
  rule_set = default_rules() if rules is None else as_rule_set(rules)
  base_inputs = inputs if base_inputs is None else tuple(base_inputs)
  key = jax.random.key(0)
  adapted = adapt_target(target, key=key, inputs=inputs, module=module, stack_axes=stack_axes)
  base_target = adapt_target(base, key=key, inputs=base_inputs, module=module,
                             stack_axes=stack_axes)
  target_sites = adapted.sites
  by_path, by_template = _base_sites(base_target.sites)
  counts: dict[str, int] = {}
  for s in target_sites:
    counts[_template(s.path)] = counts.get(_template(s.path), 0) + 1
  overrides = _role_overrides(roles)
  scales, base_of = [], {}
  for site in target_sites:
    template = _template(site.path)
    base_site = by_path.get(site.path) or (by_template.get(template) or [None])[0]
    if base_site is None:
      raise ValueError(f"{site.path} has no counterpart in the base model (its parameters: "
                       f"{sorted(by_path)[:8]}{' ...' if len(by_path) > 8 else ''})")
    base_of[site.path] = base_site.path
    role, m_in, m_out, m = _infer_role(site, base_site)
    role = next((forced for rule, forced in overrides if matches(rule, site)), role)
    depth = _depth_mult(site, base_site, counts[template], len(by_template[template]))
    factors = p.factors(role, m_in=m_in, m_out=m_out, m=m, depth_mult=depth)
    scales.append(ParamScale(site.path, role, site.layer_shape, base_site.layer_shape, m_in,
                             m_out, m, depth, factors))
  target_plan, base_plan = _make_plan(adapted, rule_set), _make_plan(base_target, rule_set)
  unfanned = {b.path for b in base_target.sites if b.fans is None}
  init_rules, kept = _init_rules(p, scales, base_of, base_plan, target_plan, rule_set, unfanned)
  return Scaling(p, tuple(scales), init_rules, kept, adapted.label_tree)


def param_drawer(model: Any, rules: Any) -> Callable[[jax.Array], Any]:
  """``draw(key) -> params``: an NNX model's parameters drawn by ``rules``, traceable.

  ``params`` is ``nnx.split(model, nnx.Param, ...)[1]`` with every parameter a
  rule serves drawn as :func:`jaxinit.initialize` draws it (the same values
  for the same key: :meth:`jaxinit.rules.Assignment.draw`); ``jax.vmap`` it
  over keys to draw many models in one program, ``jax.jit`` it to compile
  the draws once. Parameters no rule serves keep the model's values.

  Args:
    model: a Flax NNX module (concrete or from ``nnx.eval_shape``).
    rules: the rules (e.g. :attr:`Scaling.rules`).

  Raises:
    ValueError: the model holds only shapes for a parameter no rule serves,
      or for non-parameter state (which nothing would draw).
  """
  from flax import nnx  # pylint: disable=import-outside-toplevel
  from jaxinit.rules.api import plan  # pylint: disable=import-outside-toplevel
  from jaxinit.rules.targets import path_of, target_kind  # pylint: disable=import-outside-toplevel
  if target_kind(model) != "nnx":
    raise TypeError(f"param_drawer takes a Flax NNX module, got {type(model).__name__}")
  _, params, rest = nnx.split(model, nnx.Param, ...)
  the_plan = plan(model, rules)
  drawn = {a.path for a in the_plan.assignments}
  is_var = lambda x: isinstance(x, nnx.Variable)  # noqa: E731
  abstract = [path_of(kp) for kp, v in jax.tree_util.tree_flatten_with_path(
      params, is_leaf=is_var)[0] if path_of(kp) not in drawn
              and isinstance(v.get_value(), jax.ShapeDtypeStruct)]
  abstract += [path_of(kp) for kp, v in jax.tree_util.tree_flatten_with_path(rest)[0]
               if isinstance(v, jax.ShapeDtypeStruct)]
  if abstract:
    raise ValueError(f"the model holds shapes only for {abstract[:4]}, which no rule draws: "
                     f"give a concrete model, or rules for every parameter")

  def draw(key: jax.Array) -> Any:
    values = the_plan.draw(key)
    return jax.tree_util.tree_map_with_path(
        lambda kp, v: v.replace(values[path_of(kp)]) if path_of(kp) in values else v,
        params, is_leaf=is_var)

  return draw
