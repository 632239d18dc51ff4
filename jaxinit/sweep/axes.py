"""The grid's axes: their defaults, which are static, and how each value is checked.

Each check returns the canonical value (plain Python data, so that a model's
id and keys do not depend on how a value was spelled) or raises a
:class:`~jaxinit.sweep.config.ConfigError` naming the key. Named things
(models, datasets, optimizers) are checked by their registries
(:mod:`jaxinit.sweep.networks`, :mod:`jaxinit.sweep.data`,
:mod:`jaxinit.sweep.optimizers`), which import what an import path names
(from the config's ``paths`` first); numbers by :mod:`jaxinit.checks`: NaN
and inf are refused everywhere, numpy scalars accepted.

Besides :data:`AXES`, a grid may hold *model axes*: keyword arguments of its
model factories (``channels = [16, 32]``), static like the others.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from jaxinit import checks
from jaxinit.sweep import data as data_lib
from jaxinit.sweep import activations, datasets, inits, networks, optimizers, probes


class ConfigError(ValueError):
  """A sweep config that cannot run; the message names the key and what is accepted."""


MODELS = networks.MODELS
DATASETS = datasets.DATASETS
OPTIMIZERS = optimizers.OPTIMIZERS
PROBES = probes.NAMES
optimizer_factory = optimizers.optimizer_factory

AXES: dict[str, Any] = {
    "model": "mlp",
    "dataset": "mnist1d",
    "init": inits.INIT_AXES["init"].default,
    "activation": "relu",
    "depth": 2,
    "width": 64,
    "weight_variance": inits.INIT_AXES["weight_variance"].default,
    "bias_variance": inits.INIT_AXES["bias_variance"].default,
    "use_bias": True,
    "optimizer": "sgd",
    "learning_rate": 0.01,
    "batch_size": 128,
    "steps": 1000,
}
"""Grid axes and their default values, in the order of the results' columns."""
# The init axes (what a model's initial state is made from) are declared in
# jaxinit.sweep.inits; those not placed above follow, in their order there.
AXES.update({k: a.default for k, a in inits.INIT_AXES.items() if k not in AXES})

STATIC_AXES: tuple[str, ...] = ("model", "dataset", "activation", "depth", "width", "use_bias",
                                "optimizer", "batch_size", "steps")
"""Axes that change the compiled program: models that differ here never share one (model
axes, a grid's keyword arguments of its model factory, are static too)."""

VMAPPED_AXES: tuple[str, ...] = (*inits.INIT_AXES, "learning_rate")
"""Axes (with the seed) that are arrays inside one compiled program: the init axes
(:data:`jaxinit.sweep.inits.INIT_AXES`) and the learning rate."""


# ---------------------------------------------------------------------------
# Checks of single values (jaxinit.checks, or a registry's): each returns the
# canonical value; their TypeError/ValueError becomes a ConfigError.


def checked(check: Callable[[str, Any], Any], where: str, value: Any) -> Any:
  """``check(where, value)``, its TypeError/ValueError as a :class:`ConfigError`."""
  try:
    return check(where, value)
  except (TypeError, ValueError) as err:
    raise ConfigError(str(err)) from None


def unknown_key(where: str, key: str, accepted: Sequence[str]) -> ConfigError:
  return ConfigError(f"{where} has no key {key!r}{checks.did_you_mean(key, accepted)}; "
                     f"accepted keys: {', '.join(sorted(accepted))}")


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _learning_rate(where: str, value: Any) -> float:
  return checks.real(where, value, minimum=0.0, exclusive_minimum=True, maximum=_FLOAT32_MAX)


_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "model": networks.check_model,
    "dataset": data_lib.check_dataset,
    "activation": activations.check_activation,
    "depth": checks.positive_int,
    "width": checks.positive_int,
    "use_bias": checks.boolean,
    "optimizer": optimizers.check_optimizer,
    "learning_rate": _learning_rate,
    "batch_size": checks.positive_int,
    "steps": checks.positive_int,
    **{k: a.check for k, a in inits.INIT_AXES.items()},
}
assert set(_CHECKS) == set(AXES)


def plain(value: Any, where: str = "") -> Any:
  """A copy as plain JSON data: tuples become lists, numpy scalars Python numbers.

  Raises:
    TypeError: something that is not plain data. ValueError: NaN or inf.
  """
  prefix = f"{where}: " if where else ""

  def convert(x: Any) -> Any:
    if isinstance(x, np.generic):
      return x.item()
    raise TypeError(f"{prefix}{x!r} ({type(x).__name__}) is not plain data (numbers, "
                    f"strings, bools, lists, tables)")
  try:
    return json.loads(json.dumps(value, default=convert, allow_nan=False))
  except ValueError:
    raise ValueError(f"{prefix}{value!r} holds NaN or inf; give finite numbers") from None


_WITH_PATHS = ("model", "dataset", "optimizer")  # checks that import what a value names


def _is_list(key: str, value: Any) -> bool:
  """Whether a grid value lists several values (a tuple of arrays is one dataset; a list of
  rule pairs is one init)."""
  if key == "dataset" and isinstance(value, tuple):
    return False
  if key == "init" and isinstance(value, list | tuple) and value and all(
      isinstance(v, tuple) or hasattr(v, "pattern") for v in value):
    return False
  return isinstance(value, list | tuple)


def axis_values(key: str, value: Any, paths: Sequence[str] = (),
                check: Callable[[str, Any], Any] | None = None) -> tuple[Any, ...]:
  """An axis's values, each canonical (``check`` for model axes; the axis's own otherwise)."""
  where = f"[grid] {key}"
  listed = _is_list(key, value)
  values = list(value) if listed else [value]
  if not values:
    raise ConfigError(f"{where} is an empty list; give at least one value")
  if check is None:
    check = _CHECKS[key]
    if key in _WITH_PATHS:
      check = functools.partial(check, paths=paths)
  out = tuple(checked(check, f"{where}[{i}]" if listed else where, v)
              for i, v in enumerate(values))
  seen: dict[str, Any] = {}
  for v in out:
    text = canonical_json(inits.INIT_AXES[key].canonical(v) if key in inits.INIT_AXES else v)
    if text in seen:
      same = "twice" if seen[text] == v else f"and {seen[text]!r}, the same value"
      raise ConfigError(f"{where} lists {v!r} {same}; each value must appear once")
    seen[text] = v
  return out


def names(values: Any) -> list[str]:
  """The names of a registry axis's canonical values."""
  return [v["name"] if isinstance(v, Mapping) else v for v in values]


def model_axes(grid_data: Mapping[str, Any], model_values: tuple[Any, ...],
               paths: tuple[str, ...]) -> dict[str, tuple[Any, ...]]:
  """The grid's model axes, checked: every model value's factory must take each of them
  (and each static axis the grid sets)."""
  entries = {name: networks.entry(name, paths) for name in names(model_values)}
  out = {}
  for key in grid_data:
    if key in networks.DATA_KWARGS:
      raise ConfigError(f"[grid] {key}: a model's {key} comes from its dataset, not the grid")
    if key in AXES and key not in networks.OFFERED_AXES:
      continue
    for name, entry in entries.items():
      if networks.accepted(entry, [key]):
        continue
      if key not in AXES:
        taken = networks.parameters(entry.factory)[0] - {"rngs", "key", *networks.DATA_KWARGS}
        raise unknown_key("[grid]", key, sorted(set(AXES) | taken))
      if grid_data[key] in (AXES[key], [AXES[key]]):
        continue  # the default, as a resolved config writes it: nothing to change
      raise ConfigError(f"[grid] {key}: model {name!r} takes no keyword argument {key!r}, so "
                        f"this axis would change nothing; remove it")
    if key not in AXES:
      first = next(iter(entries.values()))
      out[key] = axis_values(key, grid_data[key], paths, check=lambda w, v, k=key: (
          networks.check_kwarg(first, w, k, v)))
  listed = len(model_values) > 1
  for i, value in enumerate(model_values):
    checked(lambda w, v: networks.check_offered(w, v, out, paths),
            f"[grid] model[{i}]" if listed else "[grid] model", value)
  return out


def canonical_json(value: Any) -> str:
  return json.dumps(value, sort_keys=True, separators=(",", ":"))




__all__ = ["AXES", "ConfigError", "DATASETS", "MODELS", "OPTIMIZERS", "PROBES", "STATIC_AXES",
           "VMAPPED_AXES", "axis_values", "canonical_json", "checked", "model_axes", "names",
           "plain", "unknown_key"]
