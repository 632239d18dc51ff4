"""The optimizers a grid's ``optimizer`` axis names, and their options.

A value is

* a preset of :data:`TABLE` (``"momentum"`` is SGD with momentum 0.9, as
  most papers mean by it), or any optax optimizer by name (``"adabelief"``,
  ``"sm3"``, ...: every ``optax`` function with a ``learning_rate``);
* an import path ``"package.module:factory"``, or from Python the factory
  itself (``optax.adamw``, your own): anything called as
  ``factory(learning_rate=..., **options)`` returning an optax
  ``GradientTransformation``;
* a table ``{name = ..., **options}``: keyword arguments of the factory.

The learning rate is its own axis (an array inside a compiled program:
:func:`build` makes it a state entry with ``optax.inject_hyperparams``), so it
is never an option. Options are checked at load time: by name where
:data:`OPTION_CHECKS` knows them (``b1`` in ``[0, 1)``, ...), else as plain
data that the factory takes; the optimizer is then built and initialized
once before anything compiles (:mod:`jaxinit.sweep.preflight`).

Optimizers whose update of a parameter depends on that parameter alone
(:data:`FLAT`) update one flat vector per model (fewer, larger kernels); any
other (per-layer norms, factored moments) updates the params tree.

Examples:
  >>> check_optimizer("[grid] optimizer", {"name": "adam", "b1": 0.8})
  {'name': 'adam', 'b1': 0.8}
  >>> check_optimizer("[grid] optimizer", {"name": "adam", "b1": 1.5})
  Traceback (most recent call last):
  ...
  ValueError: [grid] optimizer: option 'b1' of optimizer 'adam' must be a finite number >= 0 and < 1, got 1.5
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jaxinit import checks
from jaxinit.sweep import refs

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
"""Presets: ``(optax factory name, fixed defaults)``. Any other optax name works too."""

OPTIMIZERS: tuple[str, ...] = tuple(TABLE)
"""The presets' names."""

FLAT: frozenset[str] = frozenset({
    "sgd", "momentum", "nesterov", "adam", "adamw", "nadam", "nadamw", "adamax", "adamaxw",
    "amsgrad", "adabelief", "adadelta", "adagrad", "radam", "rmsprop", "lion", "yogi",
    "sign_sgd", "signum"})
"""Optimizers whose update is elementwise: they update one flat vector per model."""


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
"""How options known by name are checked (others: plain data the factory judges)."""


def _optax_names() -> list[str]:
  import optax  # pylint: disable=import-outside-toplevel
  out = []
  for name in dir(optax):
    fn = getattr(optax, name)
    if name.startswith("_") or isinstance(fn, type) or not callable(fn):
      continue
    try:
      if "learning_rate" in inspect.signature(fn).parameters:
        out.append(name)
    except (TypeError, ValueError):
      continue
  return out


def optimizer_factory(name: str, paths: Sequence[str] = ()
                      ) -> tuple[Callable[..., Any], dict[str, Any]]:
  """The factory and fixed defaults behind a canonical optimizer name.

  Raises:
    ValueError: an unknown name, an import path that does not resolve, a
      factory without a ``learning_rate`` parameter.
  """
  import optax  # pylint: disable=import-outside-toplevel
  if name in TABLE:
    factory_name, defaults = TABLE[name]
    return getattr(optax, factory_name), dict(defaults)
  if not refs.is_reference(name):
    if name in _optax_names():
      return getattr(optax, name), {}
    raise ValueError(f"unknown optimizer {name!r}; presets: {', '.join(TABLE)}, any optax "
                     f"optimizer, or an import path 'package.module:factory'"
                     f"{checks.did_you_mean(name, list(TABLE) + _optax_names())}")
  factory = refs.resolve(name, "optimizer", paths)
  if not callable(factory) or "learning_rate" not in _parameters(factory):
    raise ValueError(f"optimizer {name!r} must be a factory taking learning_rate=..., "
                     f"got {factory!r}")
  return factory, {}


def _parameters(fn: Any) -> list[str]:
  try:
    return list(inspect.signature(fn).parameters)
  except (TypeError, ValueError):
    return []


def check_optimizer(where: str, value: Any, paths: Sequence[str] = ()) -> Any:
  """A grid's optimizer value, canonical: a name, or ``{"name": ..., **options}``."""
  name = value.get("name") if isinstance(value, Mapping) else value
  value, options = refs.named(value)
  if callable(name) and not isinstance(name, str):
    optax_name = value.partition(":")[2]
    if value.startswith("optax:") and optax_name in _optax_names():
      value = optax_name
  if not isinstance(value, str):
    raise TypeError(f"{where} must be an optimizer name, an import path, a factory, or a "
                    f"table with a 'name' key; got {value!r}")
  if "learning_rate" in options:
    raise ValueError(f"{where}: the learning rate is its own axis; set "
                     f"[grid] learning_rate instead of an optimizer option")
  try:
    factory, _ = optimizer_factory(value, paths)
  except ValueError as err:
    raise ValueError(f"{where}: {err}") from None
  taken = [p for p in _parameters(factory) if p != "learning_rate"]
  out = {}
  for key, option in options.items():
    if key not in taken:
      raise ValueError(f"{where}: optimizer {value!r} has no option {key!r}; accepted: "
                       f"{', '.join(taken) or 'none'}{checks.did_you_mean(key, taken)}")
    name = f"{where}: option {key!r} of optimizer {value!r}"
    if key in OPTION_CHECKS:
      out[key] = OPTION_CHECKS[key](name, option)
    else:
      from jaxinit.sweep.axes import plain  # pylint: disable=import-outside-toplevel
      out[key] = plain(option, name)
  return {"name": value, **out} if out else value


def build(factory: Callable[..., Any], defaults: Mapping[str, Any], opts: Mapping[str, Any]
          ) -> Any:
  """The optax optimizer, its learning rate a state entry (set per model by the engine)."""
  import optax  # pylint: disable=import-outside-toplevel
  return optax.inject_hyperparams(factory)(learning_rate=1.0, **{**defaults, **dict(opts)})


def build_parametrized(name: str, opts: Mapping[str, Any], size: int) -> Any:
  """``jaxinit.parametrizations.optimizer(name, ...)`` with per-parameter factors as state.

  The learning rate and the flat ``(size,)`` vectors ``lr_factor``,
  ``eps_factor`` and ``wd_factor`` are ``optax.inject_hyperparams`` entries
  (ones at init; the engine sets each model's:
  :func:`jaxinit.sweep.inits.optimizer_factors`), so models of different
  parametrizations train in one vmapped program. With factors of ones the
  update rounds the same values as optax's ``sgd`` / ``adam`` / ``adamw``,
  but XLA may fuse the final multiply-add differently (not bit for bit), so
  SP models never use it (:func:`jaxinit.sweep.inits.static_part`).

  Args:
    name: ``"sgd"``, ``"adam"`` or ``"adamw"``.
    opts: the optimizer's options (``momentum``, ``b1``, ``weight_decay``, ...).
    size: parameters of one model.
  """
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import optax  # pylint: disable=import-outside-toplevel
  from jaxinit.parametrizations.optim import optimizer  # pylint: disable=import-outside-toplevel

  def factory(learning_rate, lr_factor, eps_factor, wd_factor):
    trees = {"lr_sgd": lr_factor, "lr_adam": lr_factor, "eps": eps_factor,
             "weight_decay": wd_factor}
    return optimizer(name, learning_rate, trees, **dict(opts))

  ones = jnp.ones((size,), jnp.float32)
  return optax.inject_hyperparams(factory)(learning_rate=1.0, lr_factor=ones, eps_factor=ones,
                                           wd_factor=ones)


__all__ = ["FLAT", "OPTIMIZERS", "OPTION_CHECKS", "TABLE", "build", "build_parametrized",
           "check_optimizer", "optimizer_factory"]
