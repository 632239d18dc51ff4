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
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "is_traced", "integer", "positive_int", "non_negative_int", "real", "number",
    "boolean", "choice", "did_you_mean", "shape", "real_array",
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
         finite: bool = True, what: str | None = None) -> float:
  """``value`` as a Python float, checked against the bounds.

  Accepts Python ints and floats and real numpy/JAX scalars (0-d arrays
  included); refuses bools, strings, complex numbers and tracers (use
  :func:`is_traced` first where a traced value is welcome).

  Args:
    name: the argument's name, for the message.
    value: the value.
    minimum: lower bound (inclusive unless ``exclusive_minimum``).
    maximum: inclusive upper bound.
    exclusive_minimum: whether ``minimum`` itself is refused.
    finite: refuse NaN and +-inf (NaN is refused always).
    what: the accepted values in words, if the default wording does not fit.

  Raises:
    TypeError: not a real number. ValueError: NaN, infinite or out of range.
  """
  if what is None:
    parts = ["a finite number" if finite else "a number"]
    if minimum is not None:
      parts.append(f"{'>' if exclusive_minimum else '>='} {minimum:g}")
    if maximum is not None:
      parts.append(f"{'and ' if minimum is not None else ''}<= {maximum:g}")
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
  if maximum is not None and result > maximum:
    raise ValueError(f"{name} must be {what}, got {result!r}")
  return result


def number(name: str, value: Any) -> float | complex:
  """A finite real or complex number, as a Python float or complex.

  Raises:
    TypeError: not a number (bools and strings are not). ValueError: NaN or inf.
  """
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
