"""What the registries of a sweep (models, datasets, optimizers) share: a value
naming an entry, with options checked by that entry.

A grid value is a name, or a table ``{name = ..., **options}``; its canonical
form is the bare name when there are no options, else a dict with the name
first and every option as the plain Python value its check returned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from jaxinit import checks

Check = Callable[[str, Any], Any]
"""``check(where, value) -> canonical value``, raising TypeError/ValueError naming ``where``."""


def check_entry(where: str, value: Any, what: str,
                entries: Mapping[str, Callable[[], Mapping[str, Check]]]) -> Any:
  """A value naming one of ``entries``, canonical, every option checked.

  Args:
    where: the key's location, for messages (``"[grid] model[1]"``).
    value: a name or a table with a ``"name"`` key.
    what: ``"model"``, ``"dataset"``, ...
    entries: name -> a function returning that entry's option checks.

  Raises:
    TypeError: not a name or a table. ValueError: an unknown name or option,
      or an option its check refuses.

  Examples:
    >>> check_entry("x", {"name": "a", "k": 2}, "thing", {"a": lambda: {"k": checks.positive_int}})
    {'name': 'a', 'k': 2}
  """
  if isinstance(value, str):
    name, options = value, {}
  elif isinstance(value, Mapping):
    options = dict(value)
    name = options.pop("name", None)
  else:
    raise TypeError(f"{where} must be a {what} name or a table with a 'name' key; "
                    f"{what}s: {', '.join(sorted(entries))}; got {value!r}")
  if name not in entries:
    raise ValueError(f"{where}: unknown {what} {name!r}; accepted: "
                     f"{', '.join(sorted(entries))}{checks.did_you_mean(name, entries)}")
  option_checks = entries[name]()
  out = {}
  for key, option in options.items():
    if key not in option_checks:
      accepted = ", ".join(sorted(option_checks)) or "none"
      raise ValueError(f"{where}: {what} {name!r} has no option {key!r}; accepted: {accepted}"
                       f"{checks.did_you_mean(key, option_checks)}")
    out[key] = option_checks[key](f"{where}: option {key!r} of {what} {name!r}", option)
  return {"name": name, **out} if out else name


def split(spec: Any) -> tuple[str, dict[str, Any]]:
  """``(name, options)`` of a canonical registry value.

  Examples:
    >>> split("adam"), split({"name": "adam", "b1": 0.5})
    (('adam', {}), ('adam', {'b1': 0.5}))
  """
  if isinstance(spec, str):
    return spec, {}
  options = dict(spec)
  return options.pop("name"), options


__all__ = ["Check", "check_entry", "split"]
