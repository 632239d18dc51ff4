"""What a model's initial state is made from: the grid's init axes and the steps, in one place.

A model's initial params are made in three steps, all declared here:

1. **rules**: its cell's values of the init axes (:data:`INIT_AXES`) make one
   rule set (:func:`jaxinit.sweep.params.cell_rules`);
2. **draw**: ``jaxinit.initialize(model, rules, init_key)``, drawn for many
   models at once by :func:`jaxinit.sweep.params.draw_population`; the init
   key comes from :func:`identity` (:mod:`jaxinit.sweep.keys`);
3. **post-init** (optional): a data-dependent step of
   :data:`~jaxinit.sweep.post_inits.POST_INITS`
   (:func:`jaxinit.lsuv`, :func:`jaxinit.metainit`), run per model inside one
   compiled program ``vmap``-ed over ``lanes`` models (as training is), on a
   batch of training data drawn by the model's init key.

An ``init`` value (an initializer, a rule set, or a post-init with its
pre-init and options) is checked and spelled canonically by
:mod:`jaxinit.sweep.init_values`.

Adding an init axis is one entry of :data:`INIT_AXES` (its default, check and
canonical form) and its meaning in :func:`rules_of` (and, for an axis that
also acts on the optimizer as ``parametrization`` does, in
:func:`static_part` and :func:`optimizer_factors`); adding a post-init is one
entry of :data:`~jaxinit.sweep.post_inits.POST_INITS`.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from jaxinit import checks
from jaxinit.sweep import keys as keys_lib
from jaxinit.sweep import params as params_lib
from jaxinit.sweep import post_inits
from jaxinit.sweep.init_values import canonical_init, check_init, pre_init

_FLOAT32_MAX = float(np.finfo(np.float32).max)


# ---------------------------------------------------------------------------
# The init axes


def _variance(where: str, value: Any) -> float:
  # Arrays inside the compiled programs: float32, where 1e39 would be inf.
  return checks.real(where, value, minimum=0.0, maximum=_FLOAT32_MAX)


@dataclasses.dataclass(frozen=True)
class InitAxis:
  """One axis of what a model's initial state is made from.

  Attributes:
    default: the value when the grid does not set it.
    check: ``check(where, value) -> canonical value`` (TypeError/ValueError).
    canonical: the value in model ids and init keys (one per meaning).
    keyed_at_default: whether the value enters ids and keys at its default
      (False for axes added later, so that existing ids and keys stay).
  """
  default: Any
  check: Callable[[str, Any], Any]
  canonical: Callable[[Any], Any]
  keyed_at_default: bool = True


PARAMETRIZATIONS: tuple[str, ...] = ("sp", "ntk", "mup", "depth_mup", "completep")
"""The ``parametrization`` axis's values: :mod:`jaxinit.parametrizations`' presets."""


def _parametrization(where: str, value: Any) -> str:
  return checks.choice(where, value, PARAMETRIZATIONS)


INIT_AXES: dict[str, InitAxis] = {
    "init": InitAxis("lecun_normal", check_init, canonical_init),
    "weight_variance": InitAxis(1.0, _variance, float),
    "bias_variance": InitAxis(0.0, _variance, float),
    "parametrization": InitAxis("sp", _parametrization, str, keyed_at_default=False),
}
"""The grid's init axes: vmapped (arrays inside one compiled program), each with its default,
check and canonical form. ``init``: an initializer, a rule set, or a post-init
(:mod:`jaxinit.sweep.init_values`); ``weight_variance`` multiplies every weight's variance;
``bias_variance``: biases ~ N(0, bias_variance), zeros at 0 (see
:func:`jaxinit.sweep.params.cell_rules`); ``parametrization``: a preset of
:data:`PARAMETRIZATIONS` applied against the config's ``base`` model
(:func:`scaling_of`): its init rules replace the cell's, and its per-parameter
learning-rate, epsilon and weight-decay factors go to the optimizer
(:func:`optimizer_factors`)."""


def _keyed(axis: str, value: Any) -> bool:
  spec = INIT_AXES[axis]
  return spec.keyed_at_default or value != spec.default


def identity_cell(cell: Mapping[str, Any]) -> dict[str, Any]:
  """A cell as its model id sees it: init axes canonical, later axes at their default left out."""
  out = {}
  for k, v in cell.items():
    if k not in INIT_AXES:
      out[k] = v
    elif _keyed(k, v):
      out[k] = INIT_AXES[k].canonical(v)
  return out


def identity(layout: Any, cell: Mapping[str, Any], seed: int) -> str:
  """What determines a model's initial params (:func:`jaxinit.sweep.keys.init_identity`)."""
  extra = {k: INIT_AXES[k].canonical(cell[k]) for k in INIT_AXES
           if k not in ("init", "weight_variance", "bias_variance") and _keyed(k, cell[k])}
  return keys_lib.init_identity(layout, canonical_init(cell["init"]), cell["weight_variance"],
                                cell["bias_variance"], seed, extra)


def static_part(cell: Mapping[str, Any]) -> dict[str, Any]:
  """What the init axes add to a model's shape group: ``{"parametrized": True}`` under a
  parametrization other than SP, whose optimizer takes per-parameter factors, else nothing.

  So SP models run the very program of a sweep without the axis (bit for bit:
  an optimizer with factors of ones rounds the same values, but XLA may fuse
  its last multiply-add differently), and every other parametrization of a
  shape shares one vmapped program.
  """
  return {"parametrized": True} if cell.get("parametrization", "sp") != "sp" else {}


def check_grid(grid: Mapping[str, Sequence[Any]], base: Mapping[str, Any] | None = None
               ) -> None:
  """Checks across the init axes and the config's ``base`` (ValueError naming the keys)."""
  scaled = [p for p in grid["parametrization"] if p != "sp"]
  if scaled and not base:
    raise ValueError(f"[grid] parametrization = {scaled[0]!r} scales the model against a base "
                     f"model: set base = {{width = ..., depth = ...}} (the grid's axes at the "
                     f"base size, e.g. base = {{width = 64}})")
  if scaled:
    from jaxinit.parametrizations.optim import OPTIMIZERS  # pylint: disable=import-outside-toplevel
    from jaxinit.sweep.optimizers import TABLE  # pylint: disable=import-outside-toplevel
    for opt in grid["optimizer"]:
      name = opt["name"] if isinstance(opt, Mapping) else opt
      if TABLE.get(name, ("",))[0] not in OPTIMIZERS:
        raise ValueError(f"[grid] optimizer = {name!r} with parametrization = {scaled[0]!r}: "
                         f"a parametrization's factors go to sgd, momentum, nesterov, adam or "
                         f"adamw (jaxinit.parametrizations.optimizer)")
  rule_sets = [v for v in grid["init"] if isinstance(pre_init(v), Mapping)
               and pre_init(v).get("name") == "rules"]
  biased = [v for v in grid["bias_variance"] if v != 0.0]
  if rule_sets and biased:
    raise ValueError(f"[grid] bias_variance = {biased[0]!r} with a rule set as init: a rule "
                     f"set decides how biases are drawn; leave bias_variance at 0")


def rules_of(cell: Mapping[str, Any], program: Any = None) -> Any:
  """The rule set a cell's init axes make: :func:`jaxinit.sweep.params.cell_rules` of its
  (pre-)init and variances; under a parametrization other than ``"sp"``, the rules of
  :func:`scaling_of` (which needs the shape group's ``program``)."""
  text = json.dumps([pre_init(cell["init"]), cell["weight_variance"], cell["bias_variance"]],
                    sort_keys=True)
  if cell.get("parametrization", "sp") == "sp":
    return _rules(text)
  return _scaling(program, cell["parametrization"], text).rules


@functools.lru_cache(maxsize=1024)  # a grid has few (init, variances) and many models
def _rules(text: str) -> Any:
  return params_lib.cell_rules(*json.loads(text))


def scaling_of(program: Any, cell: Mapping[str, Any]) -> Any:
  """The cell's parametrization applied to the group's model against its base model.

  ``jaxinit.parametrizations.scale(parametrization, model, base=base_model,
  rules=cell_rules(...))``: the base model is the group's factory called with
  the config's ``base`` values (``program.base``) in place of the grid's.

  Raises:
    ValueError: the parametrization needs forward multipliers (the sweep's
      models take none), or the model and the base do not match.
  """
  text = json.dumps([pre_init(cell["init"]), cell["weight_variance"], cell["bias_variance"]],
                    sort_keys=True)
  return _scaling(program, cell["parametrization"], text)


@functools.lru_cache(maxsize=256)
def _scaling(program: Any, name: str, text: str) -> Any:
  from jaxinit import parametrizations  # pylint: disable=import-outside-toplevel
  from jaxinit.sweep.program import base_network, network  # pylint: disable=import-outside-toplevel
  built, base = network(program), base_network(program)
  scaling = parametrizations.scale(name, built.target, *built.plan_args, base=base.target,
                                   rules=_rules(text), **built.plan_options)
  deeper = [p.path for p in scaling.params if p.depth_mult != 1.0]
  if scaling.parametrization.depth_alpha is not None and deeper:
    # Depth-muP / CompleteP multiply each residual branch by (L_base / L)^alpha in the
    # forward pass; the factors alone (init, learning rate) would train another model.
    raise ValueError(f"parametrization {name!r} scales residual branches by (base depth / "
                     f"depth)^{scaling.parametrization.depth_alpha:g} in the forward pass, "
                     f"which the sweep's models do not take ({deeper[0]!r} is in a block the "
                     f"base model has fewer of); sweep depth parametrizations at the base "
                     f"depth, or train them with jaxinit.parametrizations directly")
  multiplied = [p.path for p in scaling.params if p.factors.multiplier != 1.0]
  if multiplied:
    raise ValueError(f"parametrization {name!r} multiplies {multiplied[0]!r}'s output by "
                     f"{scaling[multiplied[0]].factors.multiplier:g} in the forward pass; the "
                     f"sweep's models take no forward multipliers (use readout='absorbed')")
  return scaling


OPTIMIZER_FACTORS: tuple[str, ...] = ("lr_factor", "eps_factor", "wd_factor")
"""The per-parameter optimizer factors a parametrized group's models carry (flat vectors)."""


def optimizer_factors(program: Any, cells: Sequence[Mapping[str, Any]]
                      ) -> dict[str, np.ndarray] | None:
  """Each model's per-parameter learning-rate, epsilon and weight-decay factors, flat.

  ``{"lr_factor", "eps_factor", "wd_factor"}``, each ``(models, size)``
  float32 in :func:`~jaxinit.sweep.step.ravel` order: the factors of
  :func:`scaling_of` (``lr_sgd`` for SGD, ``lr_adam`` for Adam), ones for
  ``"sp"``; None when the group is not parametrized (its optimizer takes none).
  """
  if not program.parametrized:
    return None
  from jaxinit.sweep.optimizers import TABLE  # pylint: disable=import-outside-toplevel
  from jaxinit.sweep.program import network  # pylint: disable=import-outside-toplevel
  built = network(program)
  sizes = [math.prod(x.shape) for x in jax.tree.leaves(built.shapes)]
  lr_name = "lr_sgd" if TABLE[program.optimizer][0] == "sgd" else "lr_adam"
  cache: dict[str, tuple[np.ndarray, ...]] = {}
  out = {k: np.ones((len(cells), sum(sizes)), np.float32) for k in OPTIMIZER_FACTORS}
  for j, cell in enumerate(cells):
    if cell.get("parametrization", "sp") == "sp":
      continue
    key = json.dumps([cell[a] for a in INIT_AXES], sort_keys=True)
    if key not in cache:
      scaling = scaling_of(program, cell)
      cache[key] = tuple(np.repeat(np.asarray(
          [getattr(scaling[p].factors, f) for p in built.paths], np.float32), sizes)
          for f in (lr_name, "eps", "weight_decay"))
    for k, v in zip(OPTIMIZER_FACTORS, cache[key]):
      out[k][j] = v
  return out


# ---------------------------------------------------------------------------
# The steps: rules -> draw -> post-init


def initial_params(program: Any, cells: Sequence[Mapping[str, Any]], seeds: Sequence[int],
                   root_seed: int, data: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
  """Every model's initial params, flat ``(models, size)`` float32 (host numpy).

  Model ``j`` gets ``jaxinit.initialize(model, rules_of(cells[j]), init_key)``
  then, if its init names one, its post-init (:mod:`jaxinit.sweep.post_inits`) on
  ``batch_size`` rows of ``data["x_train"]`` (and ``y_train``) drawn with
  replacement by ``randint(fold_in(init_key, 3))``, inside one
  compiled program per shape group and method that runs ``program.lanes``
  models at once; the init key is the
  :func:`identity`'s. Models with equal identities (differing only in what
  their init does not depend on: learning rate, optimizer, ...) share their
  initial params, computed once.

  Args:
    program: the models' shape group (:class:`jaxinit.sweep.program.Program`).
    cells: each model's cell (at least its init axes).
    seeds: each model's seed.
    root_seed: the sweep's root seed.
    data: the group's host data (:func:`jaxinit.sweep.program.device_data`);
      needed when a model has a post-init.

  Raises:
    ValueError: a post-init without ``data``.
  """
  from jaxinit.sweep.program import network  # pylint: disable=import-outside-toplevel
  built = network(program)
  layout = keys_lib.param_layout(built.shapes)
  identities = [identity(layout, c, s) for c, s in zip(cells, seeds)]
  # Common random numbers: models that differ only in what their init does not depend on
  # share their initial params: drawn once.
  unique = list(dict.fromkeys(identities))
  init_keys = keys_lib.derive_keys(root_seed, keys_lib.INIT_TAG, unique)
  first = {text: i for i, text in reversed(list(enumerate(identities)))}
  # Parameters no rule serves: the model's own initializers, built from its model key
  # (architecture and seed: cells that differ only in their rules share it).
  model_keys = keys_lib.derive_keys(root_seed, keys_lib.MODEL_TAG, [
      keys_lib.model_identity(layout, seeds[first[t]]) for t in unique])
  drawn = params_lib.draw_population(
      built, [rules_of(cells[first[t]], program) for t in unique], init_keys, model_keys)
  posts: dict[post_inits.PostSpec, list[int]] = {}
  for u, text in enumerate(unique):
    post = post_inits.post_init_of(cells[first[text]]["init"])
    if post is not None:
      posts.setdefault(post, []).append(u)
  if posts and data is None:
    raise ValueError("initial_params: a post-init needs the group's data")
  for post, rows in posts.items():
    drawn[rows] = post_inits.run_post_init(program, post, drawn[rows], init_keys[rows], data)
  position = {text: i for i, text in enumerate(unique)}
  return drawn[[position[t] for t in identities]]


def check_cell(program: Any, cell: Mapping[str, Any], batch: Any = None) -> None:
  """A cell's init axes can make the model's initial params (shapes only: nothing drawn).

  Its rules plan the model and can draw every parameter they serve, its
  variances' factors are finite float32, and its post-init (if any) traces on
  the model (``batch``: ``(x_train, y_train)`` shapes).

  Raises:
    ValueError: the message says what cannot work (the caller names the cell).
  """
  from jaxinit.sweep.program import network  # pylint: disable=import-outside-toplevel
  built = network(program)
  the_plan = params_lib.plan(built, rules_of(cell, program))
  if cell.get("parametrization", "sp") == "sp":
    # As initialize(strict=True): a rule of the init that matches nothing is a typo until
    # said otherwise (the variances' split rules are not required: the init as given).
    as_given = params_lib.plan(built, params_lib.cell_rules(pre_init(cell["init"])))
    if as_given.unused_rules:
      shown = ", ".join(built.paths[:12]) + (", ..." if len(built.paths) > 12 else "")
      raise ValueError(f"rules that serve no parameter of the model: "
                       f"{as_given.unmatched_text()}; its parameters are {shown} (fix the "
                       f"pattern or the order, or mark the rule required = false if it is "
                       f"meant for other models)")
  for factor in (np.sqrt(cell["weight_variance"]), np.sqrt(cell["bias_variance"])):
    with np.errstate(over="ignore"):
      if not np.isfinite(np.float32(factor)):
        raise ValueError(f"the factor {factor!r} is not a finite float32")
  for a in the_plan.assignments:
    try:
      jax.eval_shape(lambda k, a=a: a.draw(k), jax.random.key(0))
    except Exception as err:  # noqa: BLE001  (any failure of the initializer, named)
      raise ValueError(f"cannot draw {a.path} (shape {a.shape}): {type(err).__name__}: "
                       f"{str(err).splitlines()[0] if str(err) else ''}") from None
  post = post_inits.post_init_of(cell["init"])
  if post is None or batch is None:
    return
  post_inits.check_program(program, post, batch)


__all__ = ["INIT_AXES", "InitAxis", "OPTIMIZER_FACTORS", "PARAMETRIZATIONS", "check_cell",
           "check_grid", "identity", "identity_cell", "initial_params", "optimizer_factors",
           "rules_of", "scaling_of", "static_part"]
