"""Init values: how a grid's ``init`` is checked and spelled, one spelling per meaning.

An ``init`` value is anything :func:`jaxinit.get` takes (a name such as
``"he_normal"``, a table ``{name = "variance_scaling", scale = 2.0, ...}``), a
rule set in any form :func:`jaxinit.initialize` takes, or a table naming a
post-init (:data:`~jaxinit.sweep.post_inits.POST_INITS`), its pre-init (any
init value without a post-init; a rule set too) and its options::

  init = ["he_normal",
          {lsuv = "orthogonal"},                 # LSUV after an orthogonal draw
          {lsuv = "normal", tol = 0.05},         # with options
          {metainit = "he_normal", steps = 50},
          "lsuv"]                                # the method's default pre-init

canonical in a grid (and in results, labels, resumed folders) as
``{name = "lsuv", init = "orthogonal", tol = 0.05}``, labelled
``lsuv(init=orthogonal,tol=0.05)``. Every option has a documented default
(:data:`~jaxinit.sweep.post_inits.POST_INITS`); spellings that mean the
same method, pre-init and options are one cell and one init key.

A function initializer (``jax.nn.initializers.he_normal()``) is refused with
the name jaxinit gives it: a sweep records every init by name. The ``init``
axis itself (its default, beside the other init axes) is
:data:`jaxinit.sweep.inits.INIT_AXES`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jaxinit
from jaxinit import checks
from jaxinit.sweep import keys as keys_lib
from jaxinit.sweep import post_inits


def _jaxinit_spelling(fn: Any) -> Any:
  """How jaxinit names what an initializer function draws (``jax.nn.initializers.he_normal()``
  -> ``"he_normal"``), read from its factory's name and closure; None if unknown. A hint for
  messages only: the sweep never draws from it."""
  import inspect  # pylint: disable=import-outside-toplevel
  try:
    params = {k: v for k, v in inspect.getclosurevars(fn).nonlocals.items()
              if isinstance(v, (str, int, float))}
  except (TypeError, ValueError):
    return None
  if "distribution" in params:  # jax.nn.initializers.variance_scaling's name for the sampler
    params["sampler"] = params.pop("distribution")
  spec = {"name": getattr(fn, "__qualname__", "").split(".<locals>")[0], **params}
  try:
    canonical = keys_lib.canonical_initializer(spec)
  except Exception:  # noqa: BLE001  (no jaxinit initializer of that name and parameters)
    return None
  for name in (spec["name"], *jaxinit.specs.names()):  # its own name first ('zeros')
    try:
      if keys_lib.canonical_initializer(name) == canonical:
        return name
    except Exception:  # noqa: BLE001  (a name that needs parameters)
      continue
  return spec


def _function_refused(where: str, fn: Any) -> TypeError:
  """The error for an initializer given as a function (no name to record it by)."""
  try:
    checks.initializer(where, fn)
  except TypeError as err:  # an uncalled factory: say to call it, and what a sweep takes
    try:
      hint = _jaxinit_spelling(fn())
    except Exception:  # noqa: BLE001  (a factory that needs arguments)
      hint = None
    also = f"; in a sweep, name it as jaxinit does: {hint!r}" if hint is not None else ""
    return TypeError(f"{err}{also}")
  hint = _jaxinit_spelling(fn)
  named = (f"write it as jaxinit names it: {hint!r}" if hint is not None else
           "write it as jaxinit names it (a name such as 'he_normal', or a table "
           "{'name': 'variance_scaling', 'scale': 2.0, ...}: jaxinit.names() lists them)")
  return TypeError(f"{where}: {getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', fn)} "
                   f"is an initializer function: a sweep records every init by name (its "
                   f"results, model ids and init keys), and a function has none; {named}")


def _functions_in_rules(where: str, value: Any) -> None:
  """Refuses a function initializer inside a ``{pattern: init}`` dict or a list of pairs."""
  pairs = value.items() if isinstance(value, Mapping) else (
      [r for r in value if isinstance(r, tuple) and len(r) == 2])
  for pattern, init in pairs:
    if callable(init) and not hasattr(init, "to_config"):
      raise _function_refused(f"{where}: rule {pattern!r}", init)


def check_initializer(where: str, value: Any) -> Any:
  """An initializer value, plain: anything :func:`jaxinit.get` takes, or a rule set in any
  form :func:`jaxinit.initialize` takes (a rule set, a list of ``(pattern, init)`` pairs, a
  ``{pattern: init}`` dict; its initializers jaxinit's, by name or object).

  A function initializer (``jax.nn.initializers.he_normal()``) is refused, naming how jaxinit
  spells it: the sweep records every init by name; an uncalled factory
  (``jax.nn.initializers.he_normal``) is refused with a hint to call it."""
  from jaxinit.rules import as_rule_set  # pylint: disable=import-outside-toplevel
  if isinstance(value, (list, tuple)) and value and all(
      isinstance(r, (tuple, dict)) or hasattr(r, "pattern") for r in value):
    _functions_in_rules(where, value)
    value = as_rule_set(value)  # a list of (pattern, initializer) pairs from Python
  elif isinstance(value, Mapping) and value and "name" not in value and not (
      set(value) <= {"rules", "default"}) and all(
          isinstance(v, (str, Mapping)) or callable(v) for v in value.values()):
    _functions_in_rules(where, value)
    try:
      value = as_rule_set(value)  # a {pattern: initializer} dict
    except (TypeError, ValueError) as err:
      raise type(err)(f"{where}: {err}") from None
  elif callable(value) and not isinstance(value, str) and not hasattr(value, "to_config"):
    raise _function_refused(where, value)
  if not isinstance(value, (str, Mapping)) and hasattr(value, "to_config"):
    try:
      value = value.to_config()  # an initializer or rule set object from Python
    except TypeError as err:
      raise TypeError(f"{where}: {err}") from None
  if not isinstance(value, (str, Mapping)):
    raise TypeError(f"{where} must be an initializer name or a table with a 'name' key "
                    f"(anything jaxinit.get accepts, a rule set included), got {value!r}")
  from jaxinit.sweep.axes import plain  # pylint: disable=import-outside-toplevel
  value = plain(value, where)
  try:
    jaxinit.get(dict(value) if isinstance(value, Mapping) else value)
  except (TypeError, ValueError) as err:
    raise ValueError(f"{where}: {err}") from None
  except ArithmeticError as err:  # e.g. a scale that overflows, bounds with no mass
    raise ValueError(f"{where}: {value!r} cannot be built: its numbers are out of range "
                     f"({type(err).__name__}: {err})") from None
  return value


def check_init(where: str, value: Any) -> Any:
  """An ``init`` value, canonical (see the module docstring); its checks' errors name ``where``.

  Raises:
    TypeError, ValueError: an initializer :func:`jaxinit.get` refuses, an
      unknown post-init option (with "did you mean"), a bad option value, a
      post-init of a post-init.

  Examples:
    >>> check_init("[grid] init", {"lsuv": "orthogonal", "tol": 0.05})
    {'name': 'lsuv', 'init': 'orthogonal', 'tol': 0.05}
    >>> check_init("[grid] init", {"lsuv": "orthogonal", "max_iter": 5})
    Traceback (most recent call last):
    ...
    ValueError: [grid] init: lsuv has no option 'max_iter' (did you mean 'max_iters'?); accepted: batch_size, centre, max_iters, target, tol
  """
  post = post_inits.check(where, value, check_initializer)
  return check_initializer(where, value) if post is None else post


def pre_init(value: Any) -> Any:
  """The initializer the rules draw: the value itself, or a post-init's pre-init."""
  post = post_inits.post_init_of(value)
  return value if post is None else post.init


def canonical_init(value: Any) -> Any:
  """An init value in one spelling per meaning: the initializer's ``to_config()``; a
  post-init as ``{name, init, options...}`` with every option filled in."""
  post = post_inits.post_init_of(value)
  if post is None:
    return keys_lib.canonical_initializer(value)
  return {"name": post.name, "init": keys_lib.canonical_initializer(post.init),
          **dict(post.options)}


__all__ = ["canonical_init", "check_init", "check_initializer", "pre_init"]
