"""Argument checks, in one place: every public entry point validates through these.

Each check takes the argument's name (as the user wrote it: ``"fan_in"``,
``"[grid] depth[2]"``) and its value, and returns the canonical Python value or
raises an error that names the argument, says what it accepts and shows what
it got. The rules are the same everywhere:

* integral numpy and JAX scalars are ints (``np.int64(144)`` is 144); a bool
  is never a size or a number, and ``3.0`` is not an int;
* real numbers may be Python, numpy or concrete 0-d JAX scalars; NaN and inf
  are refused unless a check says otherwise;
* a name from a fixed set is checked with a "did you mean" hint.

Type errors raise :class:`TypeError`, values out of range :class:`ValueError`.

Examples:
  >>> import numpy as np
  >>> from jaxinit import checks
  >>> checks.positive_int("fan_in", np.int64(144))
  144
  >>> checks.positive_int("fan_in", True)
  Traceback (most recent call last):
  ...
  TypeError: fan_in must be a positive int, got True
  >>> checks.choice("mode", "fan_ni", ("fan_in", "fan_out"))
  Traceback (most recent call last):
  ...
  ValueError: mode must be one of ['fan_in', 'fan_out'], got 'fan_ni' (did you mean 'fan_in'?)
"""

from __future__ import annotations

import difflib
import math
import numbers
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "is_traced", "integer", "positive_int", "non_negative_int", "real", "number",
    "numeric", "boolean", "choice", "did_you_mean", "nearest", "text", "initializer", "refuse",
    "shape", "axes",
    "inexact_dtype", "real_array",
]


def is_traced(value: Any) -> bool:
  """True for a JAX tracer (a value inside ``jit``/``vmap``/``grad``)."""
  import jax  # pylint: disable=import-outside-toplevel
  return isinstance(value, jax.core.Tracer)


def _scalar(value: Any) -> Any:
  """A concrete 0-d numpy/JAX array as its numpy scalar; anything else unchanged."""
  if isinstance(value, (bool, int, float, complex, str, np.generic)) or is_traced(value):
    return value
  if hasattr(value, "shape") and hasattr(value, "dtype") and getattr(value, "ndim", None) == 0:
    return np.asarray(value)[()]
  return value


def _what(value: Any) -> str:
  text = repr(value)
  return text if len(text) <= 80 else f"{type(value).__name__} {text[:60]}..."


def integer(name: str, value: Any, *, minimum: int | None = None,
            maximum: int | None = None, what: str | None = None) -> int:
  """``value`` as a Python int in ``[minimum, maximum]``.

  Accepts Python ints and integral numpy/JAX scalars (0-d arrays included);
  refuses bools, floats (even integral ones like ``3.0``) and everything else.

  Raises:
    TypeError: not an integer. ValueError: out of range.
  """
  if what is None:
    what = ("a positive int" if minimum == 1 and maximum is None else
            "an int >= 0" if minimum == 0 and maximum is None else
            f"an int in [{minimum}, {maximum}]" if minimum is not None and maximum is not None
            else f"an int >= {minimum}" if minimum is not None else
            f"an int <= {maximum}" if maximum is not None else "an int")
  scalar = _scalar(value)
  if isinstance(scalar, (bool, np.bool_)) or not isinstance(scalar, (int, np.integer)):
    raise TypeError(f"{name} must be {what}, got {_what(value)}")
  result = int(scalar)
  if (minimum is not None and result < minimum) or (maximum is not None and result > maximum):
    raise ValueError(f"{name} must be {what}, got {result}")
  return result


def positive_int(name: str, value: Any) -> int:
  """``integer(name, value, minimum=1)``."""
  return integer(name, value, minimum=1)


def non_negative_int(name: str, value: Any) -> int:
  """``integer(name, value, minimum=0)``."""
  return integer(name, value, minimum=0)


def real(name: str, value: Any, *, minimum: float | None = None,
         maximum: float | None = None, exclusive_minimum: bool = False,
         exclusive_maximum: bool = False, finite: bool = True, what: str | None = None,
         traced_ok: bool = False) -> Any:
  """``value`` as a Python float, checked against the bounds.

  Accepts Python ints and floats and real numpy/JAX scalars (0-d arrays
  included); refuses bools, strings, complex numbers and, unless
  ``traced_ok``, tracers.

  Args:
    name: the argument's name, for the message.
    value: the value.
    minimum: lower bound (inclusive unless ``exclusive_minimum``).
    maximum: upper bound (inclusive unless ``exclusive_maximum``).
    exclusive_minimum: whether ``minimum`` itself is refused.
    exclusive_maximum: whether ``maximum`` itself is refused.
    finite: refuse NaN and +-inf (NaN is refused always).
    what: the accepted values in words, if the default wording does not fit.
    traced_ok: return a 0-d traced value unchecked (its value is unknown until
      run time: a scale vmapped over inside a jitted sweep).

  Raises:
    TypeError: not a real number. ValueError: NaN, infinite or out of range.
  """
  if traced_ok and is_traced(value):
    return _traced_scalar(name, value, complex_ok=False)
  if what is None:
    parts = ["a finite number" if finite else "a number"]
    if minimum is not None:
      parts.append(f"{'>' if exclusive_minimum else '>='} {minimum:g}")
    if maximum is not None:
      parts.append(f"{'and ' if minimum is not None else ''}{'<' if exclusive_maximum else '<='} "
                   f"{maximum:g}")
    what = " ".join(parts)
  scalar = _scalar(value)
  if (isinstance(scalar, (bool, np.bool_)) or not isinstance(scalar, numbers.Real)
      or isinstance(scalar, (complex, np.complexfloating))):
    raise TypeError(f"{name} must be {what}, got {_what(value)}")
  try:
    result = float(scalar)
  except OverflowError:  # an int too large for a float
    raise ValueError(f"{name} must be {what}, got {_what(value)}") from None
  if math.isnan(result) or (finite and math.isinf(result)):
    raise ValueError(f"{name} must be {what}, got {result}")
  if minimum is not None and (result < minimum or (exclusive_minimum and result == minimum)):
    raise ValueError(f"{name} must be {what}, got {result!r}")
  if maximum is not None and (result > maximum or (exclusive_maximum and result == maximum)):
    raise ValueError(f"{name} must be {what}, got {result!r}")
  return result


def _traced_scalar(name: str, value: Any, complex_ok: bool) -> Any:
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  kinds = (jnp.floating, jnp.integer, jnp.complexfloating) if complex_ok else (
      jnp.floating, jnp.integer)
  if value.ndim or not any(jnp.issubdtype(value.dtype, k) for k in kinds):
    what = "number" if complex_ok else "real number"
    raise TypeError(f"{name} must be a {what}, got a traced array of shape {value.shape} "
                    f"and dtype {value.dtype}")
  return value


def number(name: str, value: Any, *, traced_ok: bool = False) -> Any:
  """A finite real or complex number, as a Python float or complex.

  With ``traced_ok`` a 0-d traced value is returned unchecked.

  Raises:
    TypeError: not a number (bools and strings are not). ValueError: NaN or inf.
  """
  if traced_ok and is_traced(value):
    return _traced_scalar(name, value, complex_ok=True)
  scalar = _scalar(value)
  if isinstance(scalar, (bool, np.bool_)) or not isinstance(scalar, numbers.Number):
    raise TypeError(f"{name} must be a finite real or complex number, got {_what(value)}")
  if isinstance(scalar, (complex, np.complexfloating)):
    result: float | complex = complex(scalar)
    finite = math.isfinite(result.real) and math.isfinite(result.imag)
  else:
    result = float(scalar)
    finite = math.isfinite(result)
  if not finite:
    raise ValueError(f"{name} must be a finite real or complex number, got {result}")
  return result


def boolean(name: str, value: Any) -> bool:
  """``value`` as a Python bool; accepts ``True``/``False`` and numpy bools only.

  Raises:
    TypeError: anything else (``0``, ``1`` and ``"true"`` included).
  """
  scalar = _scalar(value)
  if not isinstance(scalar, (bool, np.bool_)):
    raise TypeError(f"{name} must be true or false, got {_what(value)}")
  return bool(scalar)


def did_you_mean(value: Any, accepted: Iterable[str]) -> str:
  """`` (did you mean 'x'?)`` for the closest accepted name, or ``""``."""
  if not isinstance(value, str):
    return ""
  close = difflib.get_close_matches(value, list(accepted), n=1)
  return f" (did you mean {close[0]!r}?)" if close else ""


def nearest(value: str, candidates: Iterable[str], n: int = 3) -> list[str]:
  """Up to ``n`` of ``candidates`` nearest to ``value`` (a name or a glob): first those that
  contain one of its words (3+ letters; best ``difflib`` ratio first), then close matches.

  Examples:
    >>> nearest("head/*", ["blocks/0/kernel", "lm_head/kernel", "lm_head/bias"])
    ['lm_head/bias', 'lm_head/kernel']
  """
  candidates = list(dict.fromkeys(candidates))
  words = [w for w in re.split(r"[^A-Za-z0-9_]+", value) if len(w) >= 3]
  ratio = lambda c: difflib.SequenceMatcher(None, value, c).ratio()  # noqa: E731
  hits = sorted((c for c in candidates if any(w in c for w in words)), key=ratio, reverse=True)
  close = difflib.get_close_matches(value, candidates, n=n, cutoff=0.5)
  return list(dict.fromkeys(hits + close))[:n]


def text(name: str, value: Any, *, allow_none: bool = False) -> str | None:
  """``value`` if it is a non-empty str (or None where ``allow_none``).

  Raises:
    TypeError: anything else.
  """
  if value is None and allow_none:
    return None
  if not isinstance(value, str) or not value:
    raise TypeError(f"{name} must be a non-empty str{' or None' if allow_none else ''}, "
                    f"got {_what(value)}")
  return value


def refuse(name: str, value: Any, accepted: str) -> TypeError:
  """The TypeError for an argument of no accepted kind: ``"{name} must be {accepted}, got
  ..."`` (raise it)."""
  return TypeError(f"{name} must be {accepted}, got {type(value).__name__} {_what(value)}")


def initializer(name: str, value: Any) -> Any:
  """``value`` if it can be an initializer ``init(key, shape, dtype)``.

  An initializer *factory* given uncalled (``he_normal`` for ``he_normal()``,
  ``jax.nn.initializers.lecun_normal``, a class such as ``VarianceScaling``) is
  refused with a hint to call it: a function that cannot take ``(key, shape)``
  without defaults for both is a factory.

  Raises:
    TypeError: not callable, or a factory given uncalled.
  """
  import inspect  # pylint: disable=import-outside-toplevel
  if not callable(value):
    raise TypeError(f"{name} must be an initializer init(key, shape, dtype), got "
                    f"{_what(value)}")
  factory = isinstance(value, type)
  if not factory and inspect.isfunction(value):
    try:
      params = inspect.signature(value).parameters.values()
    except (TypeError, ValueError):
      params = None
    if params is not None:
      positional = [p for p in params
                    if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
      variadic = any(p.kind == p.VAR_POSITIONAL for p in params)
      factory = not variadic and sum(p.default is p.empty for p in positional) < 2
  if factory:
    called = f"{getattr(value, '__name__', 'it')}()"
    raise TypeError(f"{name} is the initializer factory {getattr(value, '__qualname__', value)}, "
                    f"not an initializer: call it ({called}, with its arguments)")
  return value


def choice(name: str, value: Any, accepted: Iterable[str]) -> str:
  """``value`` if it is one of ``accepted`` (strings), else a ValueError with a hint.

  Raises:
    TypeError: not a string. ValueError: not one of ``accepted``.
  """
  accepted = list(accepted)
  listed = sorted(accepted) if len(accepted) > 12 else accepted
  if not isinstance(value, str):
    raise TypeError(f"{name} must be one of {listed}, got {_what(value)}")
  if value not in accepted:
    raise ValueError(f"{name} must be one of {listed}, got {value!r}"
                     f"{did_you_mean(value, accepted)}")
  return value


def shape(name: str, value: Any) -> tuple[int, ...]:
  """A shape as a tuple of non-negative Python ints; an int is a 1-D shape.

  Raises:
    TypeError: not an int or a sequence of ints (bools and floats are not
    dimensions). ValueError: a negative dimension.
  """
  if not isinstance(value, (bool, np.bool_)) and isinstance(_scalar(value), (int, np.integer)):
    value = (value,)
  if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
    raise TypeError(f"{name} must be a sequence of ints, got {_what(value)}")
  dims = []
  for i, d in enumerate(value):
    try:
      dims.append(integer(f"{name}[{i}]", d, what="an int"))
    except TypeError:
      raise TypeError(f"{name} must be a sequence of ints, got {_what(value)}") from None
  if any(d < 0 for d in dims):
    raise ValueError(f"{name} must have non-negative dimensions, got {tuple(dims)}")
  return tuple(dims)


def numeric(name: str, value: Any, *, traced_ok: bool = False) -> Any:
  """A finite number, or an array of them as nested tuples of Python numbers.

  Scalars become Python floats or complexes (as :func:`number`); concrete
  numpy/JAX arrays and nested sequences become nested tuples (hashable, and
  plain data for JSON); with ``traced_ok`` a traced array is returned as is.

  Raises:
    TypeError: not numeric (bools and strings are not). ValueError: NaN or inf.

  Examples:
    >>> import numpy as np
    >>> from jaxinit import checks
    >>> checks.numeric("value", np.array([[1, 2], [3, 4]]))
    ((1.0, 2.0), (3.0, 4.0))
  """
  if traced_ok and is_traced(value):
    return value
  if isinstance(value, (str, bytes)) or isinstance(_scalar(value), (bool, np.bool_)):
    raise TypeError(f"{name} must be a finite number or an array of them, got {_what(value)}")
  try:
    array = np.asarray(value)
  except Exception:  # noqa: BLE001 - any failure to convert is the same user error
    raise TypeError(f"{name} must be a finite number or an array of them, "
                    f"got {_what(value)}") from None
  if array.dtype.kind not in "iufc":
    raise TypeError(f"{name} must be a finite number or an array of them, got {_what(value)}")
  if not np.all(np.isfinite(array)):
    raise ValueError(f"{name} must be finite, got {_what(value)}")
  convert = complex if array.dtype.kind == "c" else float
  if array.ndim == 0:
    return convert(array[()])

  def nest(a: np.ndarray) -> Any:
    return tuple(nest(x) for x in a) if a.ndim > 1 else tuple(convert(x) for x in a)
  return nest(array)


def axes(name: str, value: Any, *, allow_none: bool = False) -> int | tuple[int, ...] | None:
  """An axis (int) or axes (a sequence of ints, returned as a tuple), or None if allowed.

  Raises:
    TypeError: anything else (bools and floats are not axes).
  """
  what = "an int or a sequence of ints" + (" or None" if allow_none else "")
  if value is None and allow_none:
    return None
  try:
    return integer(name, value, what=what)
  except TypeError:
    pass
  if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
    raise TypeError(f"{name} must be {what}, got {_what(value)}")
  try:
    return tuple(integer(name, a, what=what) for a in value)
  except TypeError:
    raise TypeError(f"{name} must be {what}, got {_what(value)}") from None


_INEXACT = ("float16", "bfloat16", "float32", "float64", "complex64", "complex128",
            "float8_* (sampled in float32)")


def inexact_dtype(name: str, value: Any) -> np.dtype:
  """A floating or complex dtype (what weights with a variance can have).

  Raises:
    TypeError: not a dtype, or an integer or bool dtype.
  """
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  try:
    dtype = jnp.dtype(value)
  except TypeError:
    raise TypeError(f"{name} must be a floating or complex dtype ({', '.join(_INEXACT)}), "
                    f"got {_what(value)}") from None
  if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.complexfloating)):
    raise TypeError(f"{name} must be a floating or complex dtype ({', '.join(_INEXACT)}), "
                    f"got {dtype.name}: weights of an integer or bool dtype cannot carry "
                    f"a variance")
  return dtype


def representable(name: str, value: Any, dtype: Any, *, what: str = "") -> None:
  """Refuses a host number that ``dtype`` cannot hold: overflow to inf, or a non-zero value
  rounding to 0 (complex values: each part). ``what`` describes the value in the message.

  Raises:
    ValueError: naming the argument, the value and the dtype.

  Examples:
    >>> import numpy as np
    >>> from jaxinit import checks
    >>> checks.representable("value", 1e300, np.float32)
    Traceback (most recent call last):
    ...
    ValueError: value=1e+300 cannot be represented in float32 (largest finite value 3.40282e+38)
  """
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  dtype = jnp.dtype(dtype)
  finfo = jnp.finfo(dtype)
  parts = (value.real, value.imag) if isinstance(value, complex) else (value,)
  for part in parts:
    with np.errstate(over="ignore", under="ignore"):
      rounded = np.asarray(part, finfo.dtype)
    shown = f"{name}={value:g}" + (f" ({what})" if what else "")
    if not np.isfinite(rounded):
      raise ValueError(f"{shown} cannot be represented in {dtype.name} (largest finite value "
                       f"{float(finfo.max):g})")
    if part != 0 and rounded == 0:
      raise ValueError(f"{shown} cannot be represented in {dtype.name}: it rounds to 0 "
                       f"(smallest non-zero value {float(finfo.smallest_subnormal):g})")


def real_array(name: str, value: Any, *, minimum: float | None = None,
               maximum: float | None = None, what: str | None = None) -> Any:
  """A real number or array of them as a float64 numpy array; a JAX tracer unchanged.

  For functions that broadcast over their arguments (the theory's variances,
  lengths and correlations). Integers and floats of any numpy/JAX dtype are
  accepted, bools, strings, objects and complex numbers are not; NaN and inf
  are refused; bounds are inclusive. A tracer (inside ``jit``/``vmap``/``grad``)
  is returned as it is: its values cannot be checked.

  Raises:
    TypeError: not real numbers. ValueError: NaN, infinite or out of bounds.

  Examples:
    >>> from jaxinit import checks
    >>> checks.real_array("q", [1, 2.5], minimum=0).tolist()
    [1.0, 2.5]
    >>> checks.real_array("q", -1.0, minimum=0)
    Traceback (most recent call last):
    ...
    ValueError: q must be >= 0, got -1.0
  """
  import jax  # pylint: disable=import-outside-toplevel
  if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(value)):
    return value
  if what is None:
    what = "a real number or array of real numbers"
  try:
    arr = np.asarray(value)
  except Exception as err:  # noqa: BLE001 - re-raised with the argument named
    raise TypeError(f"{name} must be {what}, got {_what(value)}") from err
  if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer)
                               or np.issubdtype(arr.dtype, np.floating)):
    raise TypeError(f"{name} must be {what}, got {_what(value)} of dtype {arr.dtype}")
  arr = arr.astype(np.float64)
  if not np.all(np.isfinite(arr)):
    raise ValueError(f"{name} must be finite (no NaN or inf), got {_what(value)}")
  if minimum is not None and np.any(arr < minimum):
    raise ValueError(f"{name} must be >= {minimum:g}, got {_what(value)}")
  if maximum is not None and np.any(arr > maximum):
    raise ValueError(f"{name} must be <= {maximum:g}, got {_what(value)}")
  return arr
