"""The grid's axes: their defaults, which are static, and how each value is checked.

Each check returns the canonical value (plain Python data, so that a model's
id and keys do not depend on how a value was spelled) or raises a
:class:`~jaxinit.sweep.config.ConfigError` naming the key. Named things
(models, datasets, optimizers) are checked by their registries
(:mod:`jaxinit.sweep.networks`, :mod:`jaxinit.sweep.data`,
:mod:`jaxinit.sweep.optimizers`), numbers by :mod:`jaxinit.checks`: NaN and
inf are refused everywhere, numpy scalars accepted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

import jaxinit
from jaxinit import checks, gains
from jaxinit.sweep import data as datasets
from jaxinit.sweep import keys, networks, optimizers, probes
from jaxinit.sweep.data import Spec


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
    "init": "lecun_normal",
    "activation": "relu",
    "depth": 2,
    "width": 64,
    "weight_variance": 1.0,
    "bias_variance": 0.0,
    "use_bias": True,
    "optimizer": "sgd",
    "learning_rate": 0.01,
    "batch_size": 128,
    "steps": 1000,
}
"""Grid axes and their default values, in the order of the results' columns."""

STATIC_AXES: tuple[str, ...] = ("model", "dataset", "activation", "depth", "width", "use_bias",
                                "optimizer", "batch_size", "steps")
"""Axes that change the compiled program: models that differ here never share one."""

VMAPPED_AXES: tuple[str, ...] = ("init", "weight_variance", "bias_variance", "learning_rate")
"""Axes (with the seed) that are arrays inside one compiled program."""



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


def _init_spec(where: str, value: Any) -> Spec:
  if not isinstance(value, (str, Mapping)):
    raise TypeError(f"{where} must be an initializer name or a table with a 'name' key "
                    f"(anything jaxinit.get accepts), got {value!r}")
  value = plain(value)
  try:
    jaxinit.get(dict(value) if isinstance(value, Mapping) else value)
  except (TypeError, ValueError) as err:
    raise ValueError(f"{where}: {err}") from None
  except ArithmeticError as err:  # e.g. a scale that overflows, bounds with no mass
    raise ValueError(f"{where}: {value!r} cannot be built: its numbers are out of range "
                     f"({type(err).__name__}: {err})") from None
  return value


def _activation(where: str, value: Any) -> str:
  if not isinstance(value, str) or value not in gains.ACTIVATIONS:
    raise ValueError(f"{where}: unknown activation {value!r}; accepted: "
                     f"{', '.join(sorted(gains.ACTIVATIONS))}"
                     f"{checks.did_you_mean(value, gains.ACTIVATIONS)}")
  return value


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _variance(where: str, value: Any) -> float:
  # Arrays inside the compiled programs: float32, where 1e39 would be inf.
  return checks.real(where, value, minimum=0.0, maximum=_FLOAT32_MAX)


def _learning_rate(where: str, value: Any) -> float:
  return checks.real(where, value, minimum=0.0, exclusive_minimum=True, maximum=_FLOAT32_MAX)


_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "model": networks.check_model,
    "dataset": datasets.check_dataset,
    "init": _init_spec,
    "activation": _activation,
    "depth": checks.positive_int,
    "width": checks.positive_int,
    "weight_variance": _variance,
    "bias_variance": _variance,
    "use_bias": checks.boolean,
    "optimizer": optimizers.check_optimizer,
    "learning_rate": _learning_rate,
    "batch_size": checks.positive_int,
    "steps": checks.positive_int,
}
assert set(_CHECKS) == set(AXES)


def plain(value: Any) -> Any:
  """A copy as plain JSON data: tuples become lists, numpy scalars Python numbers."""
  def convert(x: Any) -> Any:
    if isinstance(x, np.generic):
      return x.item()
    raise TypeError(f"{x!r} ({type(x).__name__}) is not plain data (numbers, strings, "
                    f"bools, lists, tables)")
  return json.loads(json.dumps(value, default=convert))


def axis_values(key: str, value: Any) -> tuple[Any, ...]:
  where = f"[grid] {key}"
  values = list(value) if isinstance(value, list | tuple) else [value]
  if not values:
    raise ConfigError(f"{where} is an empty list; give at least one value")
  out = tuple(checked(_CHECKS[key], f"{where}[{i}]" if len(values) > 1 or isinstance(
      value, list | tuple) else where, v) for i, v in enumerate(values))
  seen: dict[str, Any] = {}
  for v in out:
    text = canonical_json(keys.canonical_init(v) if key == "init" else v)
    if text in seen:
      same = "twice" if seen[text] == v else f"and {seen[text]!r}, the same value"
      raise ConfigError(f"{where} lists {v!r} {same}; each value must appear once")
    seen[text] = v
  return out


def canonical_json(value: Any) -> str:
  return json.dumps(value, sort_keys=True, separators=(",", ":"))




__all__ = ["AXES", "ConfigError", "DATASETS", "MODELS", "OPTIMIZERS", "PROBES", "STATIC_AXES",
           "VMAPPED_AXES", "axis_values", "canonical_json", "checked", "plain",
           "unknown_key"]
