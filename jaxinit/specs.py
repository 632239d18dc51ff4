"""Initializers as data: names and config dicts for sweep grids and TOML files.

``get("he_normal")``, ``get({"name": "he_normal", "negative_slope": 0.1})``
and ``get(init.to_config())`` all build initializer objects;
``get(init.to_config()) == init`` for every built-in initializer, so the
same key gives the same array.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from jaxinit import checks, presets
from jaxinit.base import Initializer
from jaxinit.initializers import Constant, Dirac, Scaled, VarianceScaling, scaled


def _scaled_from_config(init: Any, factor: float) -> Initializer:
  return Scaled(get(init), factor)


def _depth_scaled_from_config(init: Any, depth: int, rule: str = "gpt2",
                              branch_layers: int = 2) -> Initializer:
  return presets.depth_scaled(get(init), depth, rule, branch_layers=branch_layers)


def _rules_from_config(rules: Any = (), default: Any = None) -> Any:
  """A rule set (``jaxinit.rules.RuleSet``) from its config."""
  from jaxinit.rules import RuleSet  # pylint: disable=import-outside-toplevel
  return RuleSet.from_config(rules, default)


_REGISTRY: dict[str, Callable[..., Initializer]] = {
    "rules": _rules_from_config,
    # A config names the sampler "sampler" (the field); variance_scaling() calls it
    # "distribution", as jax does.
    "variance_scaling": VarianceScaling,
    "constant": Constant,
    "zeros": lambda: presets.zeros,
    "ones": lambda: presets.ones,
    "dirac": Dirac,
    "identity": Dirac,
    "scaled": _scaled_from_config,
    "depth_scaled": _depth_scaled_from_config,
}
for _name in ("normal", "uniform", "truncated_normal", "glorot_normal", "glorot_uniform",
              "xavier_normal", "xavier_uniform", "he_normal", "he_uniform",
              "kaiming_normal", "kaiming_uniform", "lecun_normal", "lecun_uniform",
              "orthogonal", "delta_orthogonal", "torch_linear_default", "torch_linear_bias",
              "embedding"):
  _REGISTRY[_name] = getattr(presets, _name)
del _name


def names() -> list[str]:
  """The names :func:`get` accepts."""
  return sorted(_REGISTRY)


def register(name: str, factory: Callable[..., Initializer]) -> None:
  """Makes ``get({"name": name, **params})`` call ``factory(**params)``."""
  if not isinstance(name, str) or not name:
    raise TypeError(f"name must be a non-empty str, got {name!r}")
  if not callable(factory):
    raise TypeError(f"factory must be callable, got {factory!r}")
  _REGISTRY[name] = factory


def get(spec: str | dict[str, Any] | Initializer) -> Initializer:
  """An initializer from a name, a config dict, or an initializer (returned as is).

  Args:
    spec: a name from :func:`names`; a dict ``{"name": ..., **params}`` whose
      params are the factory's keyword arguments (nested dicts for samplers
      and wrapped initializers); or an initializer.

  Returns:
    The initializer.

  Raises:
    ValueError: unknown name (the message lists the known ones).
    TypeError: unknown or missing parameters (the message lists the accepted ones).

  Examples:
    >>> import jaxinit
    >>> jaxinit.get("he_normal") == jaxinit.he_normal()
    True
    >>> init = jaxinit.get({"name": "variance_scaling", "scale": 2.0,
    ...                     "mode": "fan_in", "sampler": "normal"})
    >>> jaxinit.get(init.to_config()) == init
    True
  """
  if isinstance(spec, str):
    spec = {"name": spec}
  if isinstance(spec, dict):
    params = dict(spec)
    name = checks.choice("initializer name", params.pop("name", None), names())
    factory = _REGISTRY[name]
    try:
      signature = inspect.signature(factory)
    except (TypeError, ValueError):
      return factory(**params)
    accepted = list(signature.parameters)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
      raise TypeError(f"initializer {name!r} takes parameters {accepted}, "
                      f"got unknown {unknown}")
    try:
      signature.bind(**params)
    except TypeError as err:
      raise TypeError(f"initializer {name!r} takes parameters {accepted}: {err}") from None
    return factory(**params)
  if callable(spec):
    return spec
  raise TypeError(f"an initializer spec must be a name, a dict with a 'name' key or "
                  f"an initializer, got {type(spec).__name__}")


__all__ = ["get", "names", "register", "scaled"]
