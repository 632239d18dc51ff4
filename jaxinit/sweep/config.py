"""Sweep grids as data: the TOML schema, its validation, and the models it declares.

A sweep is a grid of axes times a number of seeds. Every combination of axis
values is a *cell*; every (cell, seed) pair is one model, trained
independently of the others. A grid is written in TOML (or given as the same
nested dict from Python)::

  name = "quickstart"        # used for the default output folder
  seeds = 2                  # n (seeds 0..n-1) or a list of seeds, e.g. [0, 5]
  root_seed = 0              # the root of every key (see jaxinit.sweep.keys)
  eval_every = 100           # steps per compiled block; metrics come back per block
  probes = ["second_moment"] # per-layer probes at every evaluation
  probe_batch = 128          # probes see the first probe_batch training inputs
  chunk_size = 256           # models per saved chunk (what --resume keeps); no effect on results
  lanes = "auto"             # models one device trains at once, or "auto" (by model size)

  [grid]                     # each axis: one value, or a list of values
  model = "mlp"              # "mlp", "resmlp", "cnn1d", or {name = "resmlp", branch_scale = 0.5}
  dataset = "mnist1d"        # "mnist1d", "digits", "teacher_student", or a dict with options
  init = ["he_normal", {name = "normal", stddev = 0.01}]   # any jaxinit.get spec
  activation = ["relu", "tanh"]
  depth = [2, 8, 16]         # hidden layers (residual blocks for resmlp)
  width = 64
  weight_variance = 1.0      # multiplies the variance of every kernel the init draws
  bias_variance = 0.0        # biases ~ N(0, bias_variance); 0 gives zeros
  use_bias = true
  optimizer = ["sgd", {name = "momentum", momentum = 0.9}, "adam"]
  learning_rate = [0.1, 0.01]
  batch_size = 128
  steps = 1000               # a multiple of eval_every

Every key is optional; :data:`AXES` and :data:`TOP_LEVEL` hold the defaults.
Accepted values:

* ``init``: anything :func:`jaxinit.get` takes, a name or a table
  ``{name = ..., **params}``;
* ``activation``: a name of :data:`jaxinit.gains.ACTIVATIONS`;
* ``optimizer``: ``sgd``, ``momentum`` (SGD with momentum 0.9),
  ``nesterov``, ``adam``, ``adamw``, ``nadam``, ``lamb``, ``lars``, ``lion``,
  ``rmsprop``, ``adagrad``; a table adds keyword arguments of the optax
  factory (all but ``learning_rate``, which is its own axis);
* ``model``: ``mlp``, ``resmlp`` (option ``branch_scale``), ``cnn1d``
  (option ``kernel_size``; inputs become 1-channel signals);
* ``dataset``: ``mnist1d`` (the ``data`` extra), ``digits`` (scikit-learn;
  options ``test_fraction``, ``split_seed``), ``teacher_student`` (options
  ``n_train``, ``n_test``, ``in_features``, ``out_features``,
  ``teacher_width``, ``teacher_depth``, ``teacher_activation``, ``noise``,
  ``seed``);
* ``probes``: ``second_moment``, ``mean``, ``variance`` (of each layer's
  pre-activations), ``dead_fraction``, ``grad_norm`` (of the loss gradient
  with respect to each layer's pre-activations).

A bad file fails in :func:`load_config` (before anything compiles) with a
:class:`ConfigError` that names the key and what it accepts.

Static axes (model, dataset, activation, depth, width, use_bias, optimizer,
batch_size, steps) split the models into shape groups, one compiled program
each (groups that differ only in steps share it); the rest (init,
weight_variance, bias_variance, learning_rate, seed) are arrays inside it.

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
import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jaxinit import checks
from jaxinit.sweep import axes, keys
from jaxinit.sweep.axes import (AXES, DATASETS, MODELS, OPTIMIZERS, PROBES, STATIC_AXES,
                                VMAPPED_AXES, ConfigError)
from jaxinit.sweep.optimizers import optimizer_factory


TOP_LEVEL: dict[str, Any] = {
    "name": "sweep",
    "seeds": 1,
    "root_seed": 0,
    "eval_every": 100,
    "probes": ["second_moment"],
    "probe_batch": 128,
    "chunk_size": 256,
    "lanes": "auto",
    "grid": {},
}
"""Top-level keys and their defaults."""


# ---------------------------------------------------------------------------
# One model.


@dataclasses.dataclass(frozen=True, eq=False)
class ModelSpec:
  """One model of a sweep: a grid cell (one value per axis) and a seed.

  Attributes:
    cell: ``{axis: value}`` for every axis of :data:`AXES`, plain data.
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
    return axes.canonical_json({k: self.cell[k] for k in STATIC_AXES})

  def __getitem__(self, axis: str) -> Any:
    return self.cell[axis]

  def __eq__(self, other: object) -> bool:
    return isinstance(other, ModelSpec) and (
        axes.canonical_json(dict(self.cell)), self.seed) == (
            axes.canonical_json(dict(other.cell)), other.seed)

  def __hash__(self) -> int:
    return hash((axes.canonical_json(dict(self.cell)), self.seed))


def _identity(cell: Mapping[str, Any]) -> dict[str, Any]:
  """The cell with the initializer canonicalized ("he_normal" == {"name": "kaiming_normal"})."""
  return {**cell, "init": keys.canonical_init(cell["init"])}


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
  """A validated sweep: use :func:`parse_config` or :func:`load_config` to build one.

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
    grid: ``{axis: tuple of values}`` for every axis of :data:`AXES`.
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

  def cells(self) -> list[dict[str, Any]]:
    """Every combination of axis values, the last axis varying fastest."""
    axes = list(AXES)
    return [dict(zip(axes, values))
            for values in itertools.product(*(self.grid[a] for a in axes))]

  def models(self) -> list[ModelSpec]:
    """Every (cell, seed) pair, seeds varying fastest."""
    return [ModelSpec(cell, seed) for cell in self.cells() for seed in self.seeds]

  def varying_axes(self) -> list[str]:
    """Axes with more than one value."""
    return [a for a in AXES if len(self.grid[a]) > 1]

  def to_dict(self) -> dict[str, Any]:
    """The resolved config as plain data; ``parse_config(c.to_dict()) == c``."""
    return {"name": self.name, "seeds": list(self.seeds), "root_seed": self.root_seed,
            "eval_every": self.eval_every, "probes": list(self.probes),
            "probe_batch": self.probe_batch, "chunk_size": self.chunk_size,
            "lanes": self.lanes, "grid": {a: list(v) for a, v in self.grid.items()}}


def parse_config(data: Mapping[str, Any]) -> SweepConfig:
  """Validates a sweep declared as a nested dict (the TOML file's structure).

  Args:
    data: top-level keys of :data:`TOP_LEVEL`, with the axes under ``"grid"``.

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
  root_seed = axes.checked(checks.non_negative_int, "root_seed", get("root_seed"))
  eval_every = axes.checked(checks.positive_int, "eval_every", get("eval_every"))
  probes_value = get("probes")
  if not isinstance(probes_value, list | tuple) or not all(
      isinstance(p, str) for p in probes_value):
    raise ConfigError(f"probes must be a list of probe names ({', '.join(PROBES)}), "
                      f"got {probes_value!r}")
  for p in probes_value:
    if p not in PROBES:
      raise ConfigError(f"probes: unknown probe {p!r}; accepted: {', '.join(PROBES)}"
                        f"{checks.did_you_mean(p, PROBES)}")
  if len(set(probes_value)) != len(probes_value):
    raise ConfigError(f"probes lists a probe twice: {list(probes_value)}")
  probe_batch = axes.checked(checks.positive_int, "probe_batch", get("probe_batch"))
  chunk_size = axes.checked(checks.positive_int, "chunk_size", get("chunk_size"))
  lanes = get("lanes")
  if lanes != "auto":
    lanes = axes.checked(lambda w, v: checks.integer(w, v, minimum=1,
                                                 what='a positive int or "auto"'), "lanes", lanes)

  grid_data = get("grid")
  if not isinstance(grid_data, Mapping):
    raise ConfigError(f"grid must be a table of axes, got {grid_data!r}")
  for key in grid_data:
    if key not in AXES:
      if key in TOP_LEVEL:
        raise ConfigError(f"{key!r} is a top-level key, not a grid axis: put it above [grid]")
      raise axes.unknown_key("[grid]", key, list(AXES))
  grid = {a: axes.axis_values(a, grid_data.get(a, default)) for a, default in AXES.items()}
  for steps in grid["steps"]:
    if steps % eval_every:
      raise ConfigError(f"[grid] steps = {steps} is not a multiple of eval_every = "
                        f"{eval_every}; every steps value must be one")
  config = SweepConfig(name=name, seeds=seeds, root_seed=root_seed, eval_every=eval_every,
                       probes=tuple(probes_value), probe_batch=probe_batch,
                       chunk_size=chunk_size, lanes=lanes, grid=grid)
  ids: dict[int, ModelSpec] = {}
  for model in config.models():
    other = ids.setdefault(model.model_id, model)
    if other is not model:  # two distinct cells whose 63-bit digests agree: ~never
      raise ConfigError(f"two models share the id {model.model_id}: {other} and {model}; "
                        f"change one seed")
  return config


def load_config(path: str | Path) -> SweepConfig:
  """Reads and validates a ``.toml`` (or ``.json``) sweep file.

  Args:
    path: the file.

  Returns:
    The :class:`SweepConfig`.

  Raises:
    ConfigError: a syntax error, a bad key or value (the message names the
      file and the key), a folder or a file that is not UTF-8 text;
      FileNotFoundError.
  """
  path = Path(path)
  try:
    text = path.read_bytes().decode("utf-8")
  except FileNotFoundError:
    raise
  except IsADirectoryError:
    raise ConfigError(f"{path} is a folder, not a config file") from None
  except OSError as err:
    raise ConfigError(f"{path}: cannot read it: {err.strerror or err}") from None
  except UnicodeDecodeError as err:
    raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}); save it as UTF-8") from None
  try:
    data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
  except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
    raise ConfigError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'}: "
                      f"{err}") from None
  try:
    return parse_config(data)
  except ConfigError as err:
    raise ConfigError(f"{path}: {err}") from None


def to_toml(config: SweepConfig) -> str:
  """The resolved config as TOML text that :func:`load_config` reads back.

  Examples:
    >>> import tomllib
    >>> c = parse_config({"grid": {"init": [{"name": "normal", "stddev": 0.1}]}})
    >>> parse_config(tomllib.loads(to_toml(c))) == c
    True
  """
  data = config.to_dict()
  grid = data.pop("grid")
  lines = [f"{k} = {_toml_value(v)}" for k, v in data.items()]
  lines += ["", "[grid]"] + [f"{k} = {_toml_value(v)}" for k, v in grid.items()]
  return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
  if isinstance(value, bool):
    return "true" if value else "false"
  if isinstance(value, (int, float)):
    return repr(value)
  if isinstance(value, str):
    return json.dumps(value)
  if isinstance(value, list):
    return "[" + ", ".join(_toml_value(v) for v in value) + "]"
  if isinstance(value, Mapping):
    return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
  raise TypeError(f"cannot write {value!r} as TOML")


__all__ = ["AXES", "ConfigError", "DATASETS", "MODELS", "ModelSpec", "OPTIMIZERS", "PROBES",
           "STATIC_AXES", "SweepConfig", "TOP_LEVEL", "VMAPPED_AXES", "label", "load_config",
           "optimizer_factory", "parse_config", "to_toml"]
