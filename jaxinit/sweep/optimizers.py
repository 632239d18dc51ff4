"""The optimizer table: every name a grid's ``optimizer`` axis takes, and its options.

Each entry is an optax factory and fixed defaults; a grid value is a name, or
a table ``{name = ..., **options}`` whose options are keyword arguments of
the factory. The learning rate is its own axis (an array inside a compiled
program: :func:`build` makes it a state entry with
``optax.inject_hyperparams``), so it is never an option. Options are checked
here, at load time, by :data:`OPTION_CHECKS` (one rule per option name, shared
by every optimizer that takes it); options that are not numbers or bools
(``mask``, ``mu_dtype``, ...) cannot be set from a grid.

Adding an optimizer touches :data:`TABLE` only.

Examples:
  >>> check_optimizer("[grid] optimizer", {"name": "adam", "b1": 0.8})
  {'name': 'adam', 'b1': 0.8}
  >>> check_optimizer("[grid] optimizer", {"name": "adam", "b1": 1.5})
  Traceback (most recent call last):
  ...
  ValueError: [grid] optimizer: option 'b1' of optimizer 'adam' must be a finite number >= 0 and < 1, got 1.5
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from jaxinit import checks
from jaxinit.sweep import registry

TABLE: dict[str, tuple[str, dict[str, Any]]] = {
    # name: (optax factory, fixed defaults). "momentum" and "nesterov" are SGD
    # with a trace, as most papers mean by them.
    "sgd": ("sgd", {}),
    "momentum": ("sgd", {"momentum": 0.9}),
    "nesterov": ("sgd", {"momentum": 0.9, "nesterov": True}),
    "adam": ("adam", {}),
    "adamw": ("adamw", {}),
    "nadam": ("nadam", {}),
    "lamb": ("lamb", {}),
    "lars": ("lars", {}),
    "lion": ("lion", {}),
    "rmsprop": ("rmsprop", {}),
    "adagrad": ("adagrad", {}),
}
"""Optimizer names: ``(optax factory name, fixed defaults)``."""

OPTIMIZERS: tuple[str, ...] = tuple(TABLE)
"""Optimizer names; each is an optax factory called with the grid's learning rate."""

LAYERWISE_OPTIMIZERS: frozenset[str] = frozenset({"lars", "lamb"})
"""Optimizers that use per-layer norms: they update the params tree, the others
one flat vector per model (fewer, larger kernels: faster to compile and run)."""


def _unit_interval(name: str, value: Any) -> float:
  value = checks.real(name, value, minimum=0.0, what="a finite number >= 0 and < 1")
  if value >= 1.0:
    raise ValueError(f"{name} must be a finite number >= 0 and < 1, got {value!r}")
  return value


def _non_negative(name: str, value: Any) -> float:
  return checks.real(name, value, minimum=0.0)


OPTION_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "momentum": _unit_interval, "b1": _unit_interval, "b2": _unit_interval,
    "decay": _unit_interval,
    "eps": _non_negative, "eps_root": _non_negative, "weight_decay": _non_negative,
    "initial_accumulator_value": _non_negative, "initial_scale": _non_negative,
    "trust_coefficient": _non_negative,
    "nesterov": checks.boolean, "centered": checks.boolean, "eps_in_sqrt": checks.boolean,
    "bias_correction": checks.boolean,
}
"""How each optimizer option a grid may set is checked (name -> check)."""


def optimizer_factory(name: str) -> tuple[Callable[..., Any], dict[str, Any]]:
  """The optax factory and fixed defaults behind an optimizer name."""
  import optax  # pylint: disable=import-outside-toplevel
  factory_name, defaults = TABLE[name]
  return getattr(optax, factory_name), dict(defaults)


@functools.cache
def options(name: str) -> tuple[str, ...]:
  """The options a grid may give optimizer ``name``: its factory's numeric and bool ones."""
  factory, _ = optimizer_factory(name)
  return tuple(p for p in inspect.signature(factory).parameters if p in OPTION_CHECKS)


def check_optimizer(where: str, value: Any) -> Any:
  """A grid's optimizer value, canonical (see :func:`jaxinit.sweep.registry.check_entry`)."""
  if isinstance(value, Mapping) and "learning_rate" in value:
    raise ValueError(f"{where}: the learning rate is its own axis; set "
                     f"[grid] learning_rate instead of an optimizer option")
  return registry.check_entry(
      where, value, "optimizer",
      {name: (lambda n=name: {k: OPTION_CHECKS[k] for k in options(n)}) for name in TABLE})


def build(name: str, opts: Mapping[str, Any]) -> Any:
  """The optax optimizer, its learning rate a state entry (set per model by the engine)."""
  import optax  # pylint: disable=import-outside-toplevel
  factory, defaults = optimizer_factory(name)
  return optax.inject_hyperparams(factory)(learning_rate=1.0, **{**defaults, **dict(opts)})


__all__ = ["LAYERWISE_OPTIMIZERS", "OPTIMIZERS", "OPTION_CHECKS", "TABLE", "build",
           "check_optimizer", "optimizer_factory", "options"]
