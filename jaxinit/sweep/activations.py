"""The activation axis: activation names, and DKS/TAT transformed activations solved per depth.

A grid's ``activation`` value is

* a name of :data:`jaxinit.gains.ACTIVATIONS` (``"relu"``, ``"tanh"``, ...);
* a transformed activation ``"METHOD:FAMILY"`` (``"tat:leaky_relu"``,
  ``"dks:softplus"``), or as a table with the method's targets
  (``{name = "tat", family = "leaky_relu", c_val_0 = 0.8}``): METHOD one of
  :data:`TARGETS` (Martens et al. 2021, DKS; Zhang et al. 2022, TAT), FAMILY
  one of :data:`jaxinit.theory.FAMILIES`, the targets those of
  :func:`jaxinit.theory.dks` / :func:`jaxinit.theory.tat` (their defaults
  when left out).

A transformed activation is solved on the host, once per shape group (and
cached), for the plain network of the group's ``depth``:
:func:`jaxinit.theory.mlp` ``(depth)``, ``depth`` activations, exactly as
``experiments/deep_plain_nets.py`` builds its TAT and DKS networks
(:func:`resolve`). The built-in ``mlp`` and ``cnn1d`` take it; ``resmlp``
(a residual network, another C-map) refuses it; a model of your own that
takes ``activation`` gets the value as written in the grid.

Examples:
  >>> check_activation("[grid] activation", "tat:leaky_relu")
  'tat:leaky_relu'
  >>> phi = resolve("tat:leaky_relu", depth=20)
  >>> from jaxinit import theory
  >>> phi == theory.tat("leaky_relu", theory.mlp(20))
  True
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from jaxinit import checks, gains

TARGETS: dict[str, tuple[str, ...]] = {"dks": ("c_slope_1", "q_slope_1"),
                                       "tat": ("c_val_0", "c_curve")}
"""Transformation methods and the targets each takes (:func:`jaxinit.theory.transform`)."""


def _families() -> tuple[str, ...]:
  from jaxinit.theory import transforms  # pylint: disable=import-outside-toplevel
  return tuple(transforms.FAMILIES)


def _split(value: Any) -> tuple[str, str, dict[str, Any]] | None:
  """``(method, family, targets)`` of a transformed activation value, None for a name."""
  if isinstance(value, tuple):  # a table as a program's frozen keyword arguments hold it
    value = dict(value)
  if isinstance(value, Mapping):
    spec = dict(value)
    return spec.pop("name", None), spec.pop("family", None), spec
  if isinstance(value, str) and ":" in value:
    method, _, family = value.partition(":")
    return method, family, {}
  return None


def check_activation(where: str, value: Any) -> Any:
  """A grid's activation value, canonical (see the module docstring).

  Raises:
    ValueError, TypeError: naming ``where``: an unknown name, method, family or target.

  Examples:
    >>> check_activation("[grid] activation", {"name": "dks", "family": "softplus"})
    'dks:softplus'
    >>> check_activation("[grid] activation", {"name": "dks", "family": "tanh", "c_val_0": 0.5})
    Traceback (most recent call last):
    ...
    ValueError: [grid] activation: dks takes the targets c_slope_1, q_slope_1, not 'c_val_0'
  """
  parts = _split(value)
  if parts is None:
    if not isinstance(value, str) or value not in gains.ACTIVATIONS:
      transformed = ", ".join(f"'{m}:FAMILY'" for m in TARGETS)
      raise ValueError(f"{where}: unknown activation {value!r}; accepted: "
                       f"{', '.join(sorted(gains.ACTIVATIONS))}, or a transformed activation "
                       f"{transformed}{checks.did_you_mean(value, gains.ACTIVATIONS)}")
    return value
  method, family, targets = parts
  try:
    method = checks.choice("method", method, tuple(TARGETS))
    family = checks.choice("family", family, _families())
    for key in targets:
      if key not in TARGETS[method]:
        raise ValueError(f"{method} takes the targets {', '.join(TARGETS[method])}, not "
                         f"{key!r}{checks.did_you_mean(key, TARGETS[method])}")
    targets = {k: checks.real(k, v) for k, v in sorted(targets.items())}
  except (TypeError, ValueError) as err:
    raise type(err)(f"{where}: {err}") from None
  return {"name": method, "family": family, **targets} if targets else f"{method}:{family}"


def is_transformed(value: Any) -> bool:
  """Whether an activation value names a transformed activation."""
  return _split(value) is not None


def resolve(value: Any, depth: int) -> Any:
  """The activation a plain network of ``depth`` layers uses: a name as it is, a
  transformed activation solved for :func:`jaxinit.theory.mlp` ``(depth)`` (cached).

  Raises:
    ValueError: the transformation has no solution for this depth (the theory's message).
  """
  parts = _split(value)
  if parts is None:
    return value
  method, family, targets = parts
  return _solved(method, family, int(depth), tuple(sorted(targets.items())))


@functools.lru_cache(maxsize=256)
def _solved(method: str, family: str, depth: int, targets: tuple[tuple[str, float], ...]) -> Any:
  from jaxinit import theory  # pylint: disable=import-outside-toplevel
  return theory.transform(method, family, theory.mlp(depth), **dict(targets))


__all__ = ["TARGETS", "check_activation", "is_transformed", "resolve"]
