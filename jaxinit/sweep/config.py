"""Sweep grids as data: the TOML schema, its validation, and the models it declares.

A sweep is a grid of axes times a number of seeds. Every combination of axis
values is a *cell*; every (cell, seed) pair is one model, trained
independently of the others. A grid is written in TOML (or given as the same
nested dict from Python, where a value may also be the object itself: a
model factory, arrays, an initializer, a rule set, a loss, an optax
factory)::

  name = "quickstart"        # used for the default output folder
  seeds = 2                  # n (seeds 0..n-1) or a list of seeds, e.g. [0, 5]
  root_seed = 0              # the root of every key (see jaxinit.sweep.keys)
  eval_every = 100           # steps per compiled block; metrics come back per block
  probes = ["second_moment"] # per-layer probes at every evaluation ("auto": built-in models)
  probe_batch = 128          # probes see the first probe_batch training inputs
  chunk_size = 256           # models per saved chunk (what --resume keeps); no effect on results
  lanes = "auto"             # models one device trains at once, or "auto" (by model size)
  loss = "auto"              # by task, a name ("cross_entropy", "mse") or "package.module:loss"
  metrics = []               # more scores: "package.module:metric", ... (accuracy is always there)
  paths = []                 # folders import paths are searched in first (the config's own first)
  base = {width = 64}        # the model's axes at the base size, for a parametrization

  [grid]                     # each axis: one value, or a list of values
  model = "mlp"              # "mlp", "resmlp", "cnn1d", "package.module:factory", or a table
  dataset = "mnist1d"        # a built-in, {name = "npz", path = "data.npz"}, "package.module:load"
  init = ["he_normal", {name = "normal", stddev = 0.01}]   # any jaxinit.get spec, or a rule set
  # or a post-init after the draw: {lsuv = "orthogonal", tol = 0.1}, {metainit = "he_normal"}
  activation = ["relu", "tanh"]
  depth = [2, 8, 16]         # hidden layers (residual blocks for resmlp)
  width = 64
  weight_variance = 1.0      # multiplies the variance of every weight the init draws
  bias_variance = 0.0        # biases ~ N(0, bias_variance); 0 gives zeros
  parametrization = ["sp", "mup"]   # "sp", "ntk", "mup", "depth_mup", "completep" (needs base)
  use_bias = true
  optimizer = ["sgd", {name = "momentum", momentum = 0.9}, "adam"]   # any optax optimizer
  learning_rate = [0.1, 0.01]
  batch_size = 128
  steps = 1000               # a multiple of eval_every
  # any other key: a keyword argument of the model factory (a model axis), e.g.
  # channels = [16, 32]

Every key is optional; :data:`AXES` and :data:`TOP_LEVEL` hold the defaults.
``init`` is anything :func:`jaxinit.get` takes, meaning the rules of
:func:`jaxinit.sweep.params.cell_rules` (every weight, every bias), or a rule
set ``{name = "rules", rules = [{path = "*head*", init = "zeros"}, {module =
"flax.nnx.Conv", init = "he_normal"}]}`` (or ``{"*head*" = "zeros", "*" =
"he_normal"}``, any form :func:`jaxinit.initialize` takes), or either followed by a post-init
(LSUV, MetaInit: :mod:`jaxinit.sweep.init_values`; the init axes in :mod:`~jaxinit.sweep.inits`);
``activation`` a name of :data:`jaxinit.gains.ACTIVATIONS` or a DKS/TAT transformed activation
(``"tat:leaky_relu"``, :mod:`~jaxinit.sweep.activations`); the others are documented beside their
registries: :mod:`~jaxinit.sweep.networks` and :mod:`~jaxinit.sweep.kinds`
(models), :mod:`~jaxinit.sweep.data` and :mod:`~jaxinit.sweep.datasets`,
:mod:`~jaxinit.sweep.optimizers`, :mod:`~jaxinit.sweep.probes`,
:mod:`~jaxinit.sweep.losses`.

A bad file fails in :func:`~jaxinit.sweep.config_file.load_config` (before anything compiles) with a
:class:`ConfigError` that names the key and what it accepts; what needs the
data and the models (a factory refusing a grid value, a loss of the wrong
shape) fails next, in :func:`jaxinit.sweep.preflight.preflight`, still before
anything is written.

Static axes (model, dataset, activation, depth, width, use_bias, optimizer,
batch_size, steps and the model axes) split the models into shape groups,
one compiled program each (groups that differ only in steps share it); the
rest (init, weight_variance, bias_variance, parametrization, learning_rate,
seed) are arrays inside it, except that models under a parametrization other
than SP form their own group (their optimizer takes per-parameter factors).

Examples:
  >>> config = parse_config({"seeds": 2, "grid": {"depth": [2, 4],
  ...                        "dataset": "teacher_student", "steps": 100}})
  >>> len(config.models())
  4
  >>> parse_config({"grid": {"depht": 3}})  # doctest: +ELLIPSIS
  Traceback (most recent call last):
  ...
  jaxinit.sweep.axes.ConfigError: [grid] has no key 'depht' (did you mean 'depth'?); ...
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jaxinit import checks
from jaxinit.sweep import axes, inits, losses, networks
from jaxinit.sweep.axes import (AXES, DATASETS, MODELS, OPTIMIZERS, PROBES, STATIC_AXES,
                                VMAPPED_AXES, ConfigError)
from jaxinit.sweep.optimizers import optimizer_factory


TOP_LEVEL: dict[str, Any] = {
    "name": "sweep",
    "seeds": 1,
    "root_seed": 0,
    "eval_every": 100,
    "probes": "auto",
    "probe_batch": 128,
    "chunk_size": 256,
    "lanes": "auto",
    "loss": "auto",
    "metrics": [],
    "paths": [],
    "base": {},
    "grid": {},
}
"""Top-level keys and their defaults."""


# ---------------------------------------------------------------------------
# One model.


@dataclasses.dataclass(frozen=True, eq=False)
class ModelSpec:
  """One model of a sweep: a grid cell (one value per axis) and a seed.

  Attributes:
    cell: ``{axis: value}`` for every axis of :data:`AXES` (and the grid's
      model axes), plain data.
    seed: the seed.
  """
  cell: Mapping[str, Any]
  seed: int

  @property
  def model_id(self) -> int:
    """A stable 63-bit integer of the cell and seed (the first bits of a SHA-256).

    It depends on nothing else (not on the grid, the root seed or the other
    models); spellings of one initializer are one cell. Two models of one
    sweep never share an id: :func:`parse_config` checks.
    """
    text = axes.canonical_json({"cell": _identity(self.cell), "seed": self.seed})
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1

  def static_key(self) -> str:
    """What decides the compiled program: models with equal keys share one."""
    return axes.canonical_json({**{k: v for k, v in self.cell.items() if k not in VMAPPED_AXES},
                                **inits.static_part(self.cell)})

  def __getitem__(self, axis: str) -> Any:
    return self.cell[axis]

  def __eq__(self, other: object) -> bool:
    return isinstance(other, ModelSpec) and (
        axes.canonical_json(dict(self.cell)), self.seed) == (
            axes.canonical_json(dict(other.cell)), other.seed)

  def __hash__(self) -> int:
    return hash((axes.canonical_json(dict(self.cell)), self.seed))


def _identity(cell: Mapping[str, Any]) -> dict[str, Any]:
  """The cell with its init axes canonical ("he_normal" == {"name": "kaiming_normal"})."""
  return inits.identity_cell(cell)


def label(value: Any) -> str:
  """A short text for an axis value: names stay names, tables become ``name(k=v, ...)``.

  Examples:
    >>> label({"name": "normal", "stddev": 0.01})
    'normal(stddev=0.01)'
    >>> label("he_normal")
    'he_normal'
  """
  if isinstance(value, Mapping):
    options = {k: v for k, v in value.items() if k != "name"}
    inner = ",".join(f"{k}={label(v)}" for k, v in options.items())
    return f"{value.get('name', '')}({inner})"
  if isinstance(value, list):
    return "[" + ",".join(label(v) for v in value) + "]"
  if isinstance(value, bool):
    return "true" if value else "false"
  return str(value)


# ---------------------------------------------------------------------------
# The sweep.


@dataclasses.dataclass(frozen=True)
class SweepConfig:
  """A validated sweep: use :func:`parse_config` or :func:`~jaxinit.sweep.config_file.load_config` to build one.

  Attributes:
    name: the sweep's name.
    seeds: the seeds every cell is trained with.
    root_seed: seed of the root key.
    eval_every: steps per compiled block (metrics and probes after each).
    probes: names from :data:`PROBES`.
    probe_batch: number of training inputs the probes see.
    chunk_size: models per saved chunk (rounded up to whole program calls):
      what ``--resume`` keeps; it changes no result.
    lanes: models one device trains at once (``vmap``-ed), or ``"auto"``
      (:func:`jaxinit.sweep.compile.default_lanes`). Results are bitwise the
      same for equal lanes; other lanes change their last bits.
    grid: ``{axis: tuple of values}`` for every axis of :data:`AXES`, then
      the model axes.
    loss: ``"auto"``, a loss name or reference (:mod:`jaxinit.sweep.losses`).
    metrics: more metrics, names or references.
    paths: absolute folders searched first for import paths (where names are
      looked up, not what the sweep is: configs that differ only here are equal).
    base: the model's axes at the base size (``{"width": 64}``): the base
      model a ``parametrization`` scales against (:mod:`jaxinit.sweep.inits`).
  """
  name: str
  seeds: tuple[int, ...]
  root_seed: int
  eval_every: int
  probes: tuple[str, ...]
  probe_batch: int
  chunk_size: int
  lanes: int | str
  grid: Mapping[str, tuple[Any, ...]]
  loss: str = "auto"
  metrics: tuple[str, ...] = ()
  paths: tuple[str, ...] = dataclasses.field(default=(), compare=False)
  base: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def cells(self) -> list[dict[str, Any]]:
    """Every combination of axis values, the last axis varying fastest."""
    names = list(self.grid)
    return [dict(zip(names, values))
            for values in itertools.product(*(self.grid[a] for a in names))]

  def models(self) -> list[ModelSpec]:
    """Every (cell, seed) pair, seeds varying fastest."""
    return [ModelSpec(cell, seed) for cell in self.cells() for seed in self.seeds]

  def varying_axes(self) -> list[str]:
    """Axes with more than one value."""
    return [a for a in self.grid if len(self.grid[a]) > 1]

  def model_axes(self) -> list[str]:
    """The grid's keyword arguments of its model factories."""
    return [a for a in self.grid if a not in AXES]

  def to_dict(self) -> dict[str, Any]:
    """The resolved config as plain data; ``parse_config(c.to_dict()) == c``."""
    return {"name": self.name, "seeds": list(self.seeds), "root_seed": self.root_seed,
            "eval_every": self.eval_every, "probes": list(self.probes),
            "probe_batch": self.probe_batch, "chunk_size": self.chunk_size,
            "lanes": self.lanes, "loss": self.loss, "metrics": list(self.metrics),
            "paths": list(self.paths), **({"base": dict(self.base)} if self.base else {}),
            "grid": {a: list(v) for a, v in self.grid.items()}}


def parse_config(data: Mapping[str, Any], *, base: str | Path | None = None) -> SweepConfig:
  """Validates a sweep declared as a nested dict (the TOML file's structure).

  Args:
    data: top-level keys of :data:`TOP_LEVEL`, with the axes under ``"grid"``.
    base: the folder relative ``paths`` (and the config's own import paths)
      start from: the config file's folder for :func:`~jaxinit.sweep.config_file.load_config`.

  Returns:
    The :class:`SweepConfig`, every value canonical and every default filled in.

  Raises:
    ConfigError: naming the first bad key or value and what is accepted.

  Examples:
    >>> parse_config({"grid": {"learning_rate": [0.1, 0.01]}}).grid["learning_rate"]
    (0.1, 0.01)
  """
  if not isinstance(data, Mapping):
    raise ConfigError(f"a sweep config must be a table (dict), got {type(data).__name__}")
  for key in data:
    if key not in TOP_LEVEL:
      if key in AXES:
        raise ConfigError(f"{key!r} is a grid axis: put it under [grid]")
      raise axes.unknown_key("the top level", key, list(TOP_LEVEL))
  get = lambda key: data.get(key, TOP_LEVEL[key])  # noqa: E731
  top = _top_level(get, base)
  grid_data = get("grid")
  if not isinstance(grid_data, Mapping):
    raise ConfigError(f"grid must be a table of axes, got {grid_data!r}")
  for key in grid_data:
    if key in TOP_LEVEL:
      raise ConfigError(f"{key!r} is a top-level key, not a grid axis: put it above [grid]")
  paths = top["paths"]
  grid = {a: axes.axis_values(a, grid_data.get(a, default), paths) for a, default in AXES.items()}
  grid.update(axes.model_axes(grid_data, grid["model"], paths))
  for steps in grid["steps"]:
    if steps % top["eval_every"]:
      raise ConfigError(f"[grid] steps = {steps} is not a multiple of eval_every = "
                        f"{top['eval_every']}; every steps value must be one")
  top["base"] = _base(get("base"), grid, paths)
  axes.checked(lambda _, g: inits.check_grid(g, top["base"]), "[grid]", grid)
  if top["probes"] == "auto":  # the built-in networks return their pre-activations
    top["probes"] = ("second_moment",) if all(m in MODELS for m in axes.names(grid["model"])) else ()
  config = SweepConfig(grid=grid, **top)
  ids: dict[int, ModelSpec] = {}
  for model in config.models():
    other = ids.setdefault(model.model_id, model)
    if other is not model:  # two distinct cells whose 63-bit digests agree: ~never
      raise ConfigError(f"two models share the id {model.model_id}: {other} and {model}; "
                        f"change one seed")
  return config


def _base(value: Any, grid: Mapping[str, tuple[Any, ...]], paths: tuple[str, ...]
          ) -> dict[str, Any]:
  """The checked ``base`` table: static axes a model factory takes (width, depth, model
  axes), each value checked as the axis's."""
  if not isinstance(value, Mapping):
    raise ConfigError(f"base must be a table of the model's axes at the base size, e.g. "
                      f"base = {{width = 64}}; got {value!r}")
  accepted = [a for a in ("width", "depth") if a in grid] + [a for a in grid if a not in AXES]
  out = {}
  for key, v in value.items():
    if key not in accepted:
      raise axes.unknown_key("base", key, accepted)
    if key in AXES:
      out[key] = axes.checked(checks.positive_int, f"base.{key}", v)
    else:
      entry = networks.entry(axes.names(grid["model"])[0], paths)
      out[key] = axes.checked(lambda w, x, k=key: networks.check_kwarg(entry, w, k, x),
                              f"base.{key}", v)
  return out


def _top_level(get: Any, base: str | Path | None) -> dict[str, Any]:
  """The checked top-level keys (all but the grid)."""
  name = get("name")
  if (not isinstance(name, str) or name.strip(".") == "" or any(c in name for c in "/\\")
      or any(not c.isprintable() for c in name)):
    raise ConfigError(f"name must be a non-empty string without slashes or control "
                      f"characters, and not '.' or '..', got {name!r}")
  seeds_value = get("seeds")
  if isinstance(seeds_value, list | tuple):
    if not seeds_value:
      raise ConfigError("seeds is an empty list; give a count n or a list of seeds")
    seeds = tuple(axes.checked(checks.non_negative_int, f"seeds[{i}]", s)
                  for i, s in enumerate(seeds_value))
    if len(set(seeds)) != len(seeds):
      raise ConfigError(f"seeds lists a seed twice: {list(seeds)}")
  else:
    count = axes.checked(lambda w, v: checks.integer(
        w, v, minimum=1, what="a count n >= 1 (seeds 0..n-1) or a list of ints >= 0"),
        "seeds", seeds_value)
    seeds = tuple(range(count))
  probes = get("probes")
  if probes != "auto":
    if not isinstance(probes, list | tuple) or not all(isinstance(p, str) for p in probes):
      raise ConfigError(f"probes must be \"auto\" or a list of probe names "
                        f"({', '.join(PROBES)}), got {probes!r}")
    for p in probes:
      if p not in PROBES:
        raise ConfigError(f"probes: unknown probe {p!r}; accepted: {', '.join(PROBES)}"
                          f"{checks.did_you_mean(p, PROBES)}")
    if len(set(probes)) != len(probes):
      raise ConfigError(f"probes lists a probe twice: {list(probes)}")
    probes = tuple(probes)
  lanes = get("lanes")
  if lanes != "auto":
    lanes = axes.checked(lambda w, v: checks.integer(w, v, minimum=1,
                                                 what='a positive int or "auto"'), "lanes", lanes)
  paths = get("paths")
  if isinstance(paths, str) or not isinstance(paths, list | tuple) or not all(
      isinstance(p, str) for p in paths):
    raise ConfigError(f"paths must be a list of folders, got {paths!r}")
  paths = tuple(dict.fromkeys(
      ([str(Path(base).resolve())] if base is not None else [])
      + [str((Path(base or ".") / p).resolve()) for p in paths]))
  return {
      "name": name, "seeds": seeds, "probes": probes, "lanes": lanes, "paths": paths,
      "root_seed": axes.checked(checks.non_negative_int, "root_seed", get("root_seed")),
      "eval_every": axes.checked(checks.positive_int, "eval_every", get("eval_every")),
      "probe_batch": axes.checked(checks.positive_int, "probe_batch", get("probe_batch")),
      "chunk_size": axes.checked(checks.positive_int, "chunk_size", get("chunk_size")),
      "loss": axes.checked(lambda w, v: losses.check_loss(w, v, paths), "loss", get("loss")),
      "metrics": tuple(axes.checked(lambda w, v: losses.check_metrics(w, v, paths), "metrics",
                                    get("metrics")))}


__all__ = ["AXES", "ConfigError", "DATASETS", "MODELS", "ModelSpec", "OPTIMIZERS", "PROBES",
           "STATIC_AXES", "SweepConfig", "TOP_LEVEL", "VMAPPED_AXES", "label",
           "optimizer_factory", "parse_config"]
