"""Rules as data: which parameters an initializer serves, first match wins.

A :class:`Rule` pairs a pattern with an initializer. Patterns:

* :class:`Glob`: a glob over the parameter's path joined by ``"/"``
  (``"*/head/kernel"``, ``"blocks/*/mlp/*/bias"``). ``*`` matches any
  characters, ``"/"`` included, so ``"*bias"`` is every bias; ``?`` one
  character, ``[...]`` a set (:func:`fnmatch.fnmatchcase`).
* :class:`OfModule`: a module class (Flax NNX, Flax linen, Equinox or your
  own), by the class or its import path (``"flax.nnx.Conv"``). Alone it
  matches the module's weights (kernel, embedding; see
  :mod:`jaxinit.rules.fans`); with ``param`` a glob over the parameter's path
  relative to the module (``"bias"``, ``"query/*"``). Subclasses match.

A rule may be refined by the per-layer shape: ``ndim`` (an int or a tuple of
accepted ranks) and ``shape`` (``None`` entries match any size). Stacked
layers (a leading layer axis) are judged by one layer's shape.

A :class:`RuleSet` is an ordered tuple of rules plus an optional ``default``
for parameters no rule matches (without one they keep the model's values).
Rule sets are frozen dataclasses: printable, comparable, hashable, and
``jaxinit.get(rules.to_config()) == rules``. ``rules + other`` concatenates
(``rules`` first), so schemes compose.

Examples:
  >>> import jaxinit
  >>> from jaxinit.rules import RuleSet
  >>> rules = RuleSet.of([("*/head/kernel", jaxinit.zeros), ("*bias", jaxinit.zeros)],
  ...                    default=jaxinit.lecun_normal())
  >>> rules.rules[0].pattern, rules.rules[0].init
  (Glob('*/head/kernel'), Constant(value=0.0, dtype=None))
  >>> jaxinit.get(rules.to_config()) == rules
  True
"""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from jaxinit import checks
from jaxinit.base import Initializer

__all__ = ["Glob", "OfModule", "Pattern", "Rule", "RuleSet", "class_path", "as_rule_set"]


def class_path(cls: type) -> str:
  """The import path of a class: ``f"{cls.__module__}.{cls.__qualname__}"``."""
  return f"{cls.__module__}.{cls.__qualname__}"


def _resolve_class(spec: str) -> type:
  """The class an import path names (``"flax.nnx.Conv"``, ``"equinox.nn.Linear"``)."""
  module_name, _, attr = spec.rpartition(".")
  if not module_name:
    raise ValueError(f"a module class must be given as an import path such as "
                     f"'flax.nnx.Conv', got {spec!r}")
  # Nested classes: walk back until a module imports.
  parts = spec.split(".")
  for cut in range(len(parts) - 1, 0, -1):
    try:
      obj: Any = importlib.import_module(".".join(parts[:cut]))
    except ImportError:
      continue
    try:
      for name in parts[cut:]:
        obj = getattr(obj, name)
    except AttributeError:
      break
    if isinstance(obj, type):
      return obj
    break
  raise ValueError(f"module class {spec!r} cannot be imported (an import path such as "
                   f"'flax.nnx.Conv' or 'equinox.nn.Linear' is expected)")


@dataclasses.dataclass(frozen=True)
class Glob:
  """Matches parameters whose ``"/"``-joined path matches ``glob``."""
  glob: str

  def __post_init__(self):
    if not isinstance(self.glob, str) or not self.glob:
      raise TypeError(f"a path glob must be a non-empty str, got {self.glob!r}")

  def __repr__(self) -> str:
    return f"Glob({self.glob!r})"

  def to_config(self) -> dict[str, Any]:
    return {"path": self.glob}


@dataclasses.dataclass(frozen=True)
class OfModule:
  """Matches the weights of modules of class ``cls`` (or ``param`` of them).

  Attributes:
    cls: the class's import path (a class given here is stored as its path,
      ``f"{cls.__module__}.{cls.__qualname__}"``, so rules stay plain data).
    param: glob over the parameter's path relative to the module, or None
      for the module's weights.
  """
  cls: str
  param: str | None = None

  def __post_init__(self):
    cls = self.cls
    if isinstance(cls, type):
      cls = class_path(cls)
    elif isinstance(cls, str):
      from jaxinit.rules.fans import is_known  # pylint: disable=import-outside-toplevel
      if not is_known(cls):  # a canonical path of a known layer needs no import
        cls = class_path(_resolve_class(cls))
    else:
      raise TypeError(f"a module pattern takes a class or its import path, got {cls!r}")
    object.__setattr__(self, "cls", cls)
    if self.param is not None and (not isinstance(self.param, str) or not self.param):
      raise TypeError(f"param must be a non-empty str glob or None, got {self.param!r}")

  def __repr__(self) -> str:
    return f"OfModule({self.cls!r}" + (f", {self.param!r})" if self.param else ")")

  def to_config(self) -> dict[str, Any]:
    return {"module": self.cls, **({"param": self.param} if self.param else {})}


Pattern = Glob | OfModule


def _as_pattern(pattern: Any) -> Pattern:
  if isinstance(pattern, (Glob, OfModule)):
    return pattern
  if isinstance(pattern, str):
    return Glob(pattern)
  if isinstance(pattern, type):
    return OfModule(pattern)
  if (isinstance(pattern, tuple) and len(pattern) == 2
      and isinstance(pattern[0], (type, str)) and isinstance(pattern[1], str)):
    return OfModule(pattern[0], pattern[1])
  raise TypeError(f"a pattern is a path glob (str), a module class, a (module class, "
                  f"param glob) pair, Glob or OfModule; got {pattern!r}")


def _canonical_ndim(ndim: Any) -> tuple[int, ...] | None:
  if ndim is None:
    return None
  if isinstance(ndim, (list, tuple)):
    return tuple(checks.non_negative_int(f"ndim[{i}]", n) for i, n in enumerate(ndim))
  return (checks.non_negative_int("ndim", ndim),)


def _canonical_shape(shape: Any) -> tuple[int | None, ...] | None:
  if shape is None:
    return None
  if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence):
    raise TypeError(f"shape must be a sequence of ints or None, got {shape!r}")
  return tuple(None if d is None else checks.non_negative_int(f"shape[{i}]", d)
               for i, d in enumerate(shape))


@dataclasses.dataclass(frozen=True)
class Rule:
  """``pattern -> init``, optionally refined by the per-layer ``ndim`` / ``shape``.

  Attributes:
    pattern: a :class:`Glob` or :class:`OfModule` (a str, class or
      ``(class, param glob)`` pair is converted).
    init: the initializer.
    ndim: accepted rank(s) of one layer's parameter, or None.
    shape: accepted shape (None entries: any size), or None.
    label: a name for the parameters this rule serves, for
      :func:`~jaxinit.rules.labels` (optax ``multi_transform``); None: no
      label of its own.
    required: whether matching nothing is reported (a warning, or an error
      with ``strict=True``, naming the model's nearest paths). A rule
      "matches" when its pattern fits a parameter, whether or not an earlier
      rule wins it.
    group: a name shared by required rules that are alternatives (a scheme's
      ``"head/*"`` and ``"*/head/*"``, or its rules for the layers of every
      framework): the group is reported only when none of them matches.
  """
  pattern: Pattern
  init: Initializer
  ndim: tuple[int, ...] | None = None
  shape: tuple[int | None, ...] | None = None
  label: str | None = None
  required: bool = True
  group: str | None = None

  def __post_init__(self):
    object.__setattr__(self, "pattern", _as_pattern(self.pattern))
    if isinstance(self.init, (str, dict)):
      from jaxinit.specs import get  # pylint: disable=import-outside-toplevel
      object.__setattr__(self, "init", get(self.init))
    checks.initializer(f"init of rule {self.pattern!r}", self.init)
    object.__setattr__(self, "ndim", _canonical_ndim(self.ndim))
    object.__setattr__(self, "shape", _canonical_shape(self.shape))
    checks.text("label", self.label, allow_none=True)
    object.__setattr__(self, "required", checks.boolean("required", self.required))
    checks.text("group", self.group, allow_none=True)

  def accepts_shape(self, shape: tuple[int, ...]) -> bool:
    """Whether one layer's ``shape`` passes the rule's ``ndim`` / ``shape`` refinement."""
    if self.ndim is not None and len(shape) not in self.ndim:
      return False
    if self.shape is not None:
      return len(shape) == len(self.shape) and all(
          want is None or want == got for want, got in zip(self.shape, shape))
    return True

  def to_config(self) -> dict[str, Any]:
    """Plain data: the pattern's keys, ``"init"`` and the refinements that are set."""
    if not hasattr(self.init, "to_config"):
      raise TypeError(f"the initializer of rule {self.pattern!r} ({self.init!r}) has no "
                      f"to_config(); only built-in initializers can be described as data")
    config = {**self.pattern.to_config(), "init": self.init.to_config()}
    if self.ndim is not None:
      config["ndim"] = list(self.ndim)
    if self.shape is not None:
      config["shape"] = list(self.shape)
    if self.label is not None:
      config["label"] = self.label
    if not self.required:
      config["required"] = False
    if self.group is not None:
      config["group"] = self.group
    return config

  @classmethod
  def from_config(cls, config: dict[str, Any]) -> Rule:
    """The rule a :meth:`to_config` dict describes."""
    if not isinstance(config, dict):
      raise TypeError(f"a rule config must be a dict, got {config!r}")
    config = dict(config)
    keys = ("path", "module", "param", "init", "ndim", "shape", "label", "required", "group")
    unknown = sorted(set(config) - set(keys))
    if unknown:
      raise ValueError(f"a rule config takes keys {list(keys)}, got unknown {unknown}"
                       f"{checks.did_you_mean(unknown[0], keys)}")
    if ("path" in config) == ("module" in config):
      raise ValueError(f"a rule config needs exactly one of 'path' (a glob) and 'module' "
                       f"(a class import path), got {config}")
    if "init" not in config:
      raise ValueError(f"a rule config needs an 'init', got {config}")
    if "path" in config:
      if "param" in config:
        raise ValueError(f"'param' refines a 'module' rule, not a 'path' rule: {config}")
      pattern: Pattern = Glob(config.pop("path"))
    else:
      pattern = OfModule(config.pop("module"), config.pop("param", None))
    return cls(pattern, config.pop("init"), **config)


def _as_rule(rule: Any) -> Rule:
  if isinstance(rule, Rule):
    return rule
  if isinstance(rule, dict):
    return Rule.from_config(rule)
  if isinstance(rule, tuple) and len(rule) == 2:
    return Rule(rule[0], rule[1])
  raise TypeError(f"a rule is a Rule, a (pattern, initializer) pair or a config dict, "
                  f"got {rule!r}")


@dataclasses.dataclass(frozen=True)
class RuleSet:
  """Ordered rules (first match wins) and a ``default`` for the rest.

  Attributes:
    rules: the rules, in order.
    default: the initializer of parameters no rule matches; None: they keep
      the model's values (``initialize`` from shapes alone then needs a rule
      for every parameter).
  """
  rules: tuple[Rule, ...] = ()
  default: Initializer | None = None

  def __post_init__(self):
    rules = self.rules
    if isinstance(rules, Mapping):  # {pattern: initializer}, in order
      rules = tuple(rules.items())
    if isinstance(rules, (str, bytes)) or not isinstance(rules, Iterable):
      raise TypeError(f"rules must be a sequence of rules or a {{pattern: initializer}} dict, "
                      f"got {rules!r}")
    object.__setattr__(self, "rules", tuple(_as_rule(r) for r in rules))
    if isinstance(self.default, (str, dict)):
      from jaxinit.specs import get  # pylint: disable=import-outside-toplevel
      object.__setattr__(self, "default", get(self.default))
    if self.default is not None:
      checks.initializer("default", self.default)

  @classmethod
  def of(cls, rules: Iterable[Any] = (), default: Initializer | None = None) -> RuleSet:
    """A rule set from rules, ``(pattern, init)`` pairs or config dicts, or a
    ``{pattern: init}`` dict (first match wins, in the dict's order)."""
    return cls(rules if isinstance(rules, Mapping) else tuple(rules), default)

  def __add__(self, other: Any) -> RuleSet:
    other = as_rule_set(other)
    return RuleSet(self.rules + other.rules,
                   self.default if self.default is not None else other.default)

  def __radd__(self, other: Any) -> RuleSet:
    return as_rule_set(other) + self

  def __len__(self) -> int:
    return len(self.rules)

  def __iter__(self):
    return iter(self.rules)

  def to_config(self) -> dict[str, Any]:
    """``{"name": "rules", "rules": [...], "default": ...}``; ``jaxinit.get`` rebuilds it."""
    config: dict[str, Any] = {"name": "rules", "rules": [r.to_config() for r in self.rules]}
    if self.default is not None:
      if not hasattr(self.default, "to_config"):
        raise TypeError(f"default {self.default!r} has no to_config()")
      config["default"] = self.default.to_config()
    return config

  @classmethod
  def from_config(cls, rules: Sequence[Any] = (), default: Any = None) -> RuleSet:
    """The rule set a :meth:`to_config` dict (without its ``"name"``) describes."""
    if isinstance(rules, (str, bytes, dict)) or not isinstance(rules, Sequence):
      raise TypeError(f"rules must be a list of rule configs, got {rules!r}")
    return cls(tuple(Rule.from_config(r) if isinstance(r, dict) else _as_rule(r)
                     for r in rules), default)


_CONFIG_KEYS = frozenset({"name", "rules", "default"})


def as_rule_set(rules: Any) -> RuleSet:
  """A :class:`RuleSet` from a rule set, a list of rules / pairs, a ``{pattern:
  initializer}`` dict (ordered: first match wins), or a rule-set config dict (keys
  ``"name"``, ``"rules"``, ``"default"``).

  Raises:
    TypeError: anything else, naming ``rules``.
  """
  if isinstance(rules, RuleSet):
    return rules
  if isinstance(rules, Mapping) and rules and "name" not in rules and not (
      set(rules) <= _CONFIG_KEYS):
    return RuleSet(rules)
  if isinstance(rules, dict):
    config = dict(rules)
    if config.pop("name", "rules") != "rules":
      raise ValueError(f"a rule-set config has name 'rules', got {rules.get('name')!r}")
    unknown = sorted(map(str, set(config) - {"rules", "default"}))
    if unknown:
      raise ValueError(f"a rule-set config takes keys ['name', 'rules', 'default'], got "
                       f"unknown {unknown}{checks.did_you_mean(unknown[0], _CONFIG_KEYS)}")
    return RuleSet.from_config(**config)
  if isinstance(rules, Rule):
    return RuleSet((rules,))
  if isinstance(rules, Iterable) and not isinstance(rules, (str, bytes)):
    return RuleSet(tuple(rules))
  raise checks.refuse("rules", rules, "a RuleSet, a list of (pattern, initializer) pairs, a "
                      "{pattern: initializer} dict or a rule-set config dict")


def glob_match(path: str, glob: str) -> bool:
  """``fnmatch.fnmatchcase(path, glob)``: ``*`` crosses ``"/"``."""
  return fnmatch.fnmatchcase(path, glob)
