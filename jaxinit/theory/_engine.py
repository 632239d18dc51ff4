"""Machinery the theory modules share: argument arrays, compiled vectorized kernels, root finding.

* Arguments: :func:`nonnegative`, :func:`finite` and :func:`correlation`
  check concrete inputs eagerly (through :mod:`jaxinit.checks`) and pass
  tracers through; :func:`host` runs glue arithmetic in numpy for concrete
  values and in ``jax.numpy`` for traced ones.
* :class:`Vectorized` broadcasts a scalar kernel over its arguments. Concrete
  calls run in float64 on the host whatever ``jax_enable_x64`` says (fixed
  points and the critical line are ill-conditioned: in float32 the critical
  weight variance of tanh at ``sb = 0`` came out as 1.0000478) and return the
  default float dtype; traced calls run in the caller's precision.
* :func:`find_root`: a bracketing, safeguarded Newton iteration in a
  ``lax.while_loop`` (jittable, vmappable; differentiate its callers by the
  implicit function theorem, never through the loop).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit import checks

Array = jax.Array
ActivationLike = str | Callable[..., Array]

DEFAULT_NODES = 64
"""1-D quadrature nodes per half-line (128 evaluations of ``phi``)."""
DEFAULT_NODES_2D = 32
"""2-D quadrature: radial nodes and angular nodes per sector (4 * 32 * 32 evaluations)."""

Q_MIN = 1e-30   # q* = 0 (sb = 0): expectations of derivatives use the limit q -> 0+
Q_MAX = 1e30    # q* = inf (unbounded phi, sw large): ... and q -> inf for chi1
_SMALL_BATCH = 8     # concrete calls run in batches of 8 (n <= 8) or 256 elements
_LARGE_BATCH = 256


def is_traced(*values: Any) -> bool:
  """True if any leaf of ``values`` is a JAX tracer."""
  return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(values))


def float_dtype() -> Any:
  """The default float dtype (float64 under ``jax_enable_x64``)."""
  return jnp.result_type(float)


def _array(value: Any) -> Any:
  return value if is_traced(value) else np.asarray(value, np.float64)


def nonnegative(name: str, value: Any) -> Any:
  """A variance-like argument: float64 numpy array ``>= 0`` (or the tracer as a jax array)."""
  if is_traced(value):
    return jnp.asarray(value, float_dtype())
  return checks.real_array(name, value, minimum=0.0,
                           what="a non-negative real number or array")


def finite(name: str, value: Any) -> Any:
  """A real argument: float64 numpy array, no NaN or inf (or the tracer)."""
  if is_traced(value):
    return jnp.asarray(value, float_dtype())
  return checks.real_array(name, value)


def correlation(name: str, value: Any) -> Any:
  """A correlation in ``[-1, 1]`` (or the tracer)."""
  if is_traced(value):
    return jnp.asarray(value, float_dtype())
  arr = checks.real_array(name, value)
  if np.any(np.abs(arr) > 1):
    raise ValueError(f"{name} must be a correlation in [-1, 1], got {value!r}")
  return arr


def one() -> np.ndarray:
  return np.ones((), np.float64)


def host(*values: Any) -> tuple[Any, Any]:
  """``(numpy, values as numpy arrays)``, or ``(jax.numpy, values)`` if any is traced.

  Glue arithmetic between kernels then runs on the host for concrete inputs
  (nothing to compile) and stays traceable under a caller's ``jit``/``vmap``.
  """
  if is_traced(values):
    return jnp, values
  return np, tuple(np.asarray(v) for v in values)


def output(value: Any) -> Any:
  """A host result as a jax array of the default float dtype (tracers unchanged)."""
  if is_traced(value):
    return value
  return jnp.asarray(np.asarray(value), float_dtype())


def compiler_options() -> dict[str, Any] | None:
  """Raises ``--xla_backend_optimization_level=0`` to 1 for these kernels.

  XLA:CPU at level 0 (a compile-time saver some test suites set) miscompiles
  the batched root-finding loops here: with jaxlib 0.10.2, ``vmap`` of
  ``q*(exp2(t))`` returns half the fixed point unless a debug print changes
  the fusion. Level 1 compiles as fast and is correct; other levels are left
  alone.
  """
  if re.search(r"--xla_backend_optimization_level=0(\s|$)", os.environ.get("XLA_FLAGS", "")):
    return {"xla_backend_optimization_level": 1}
  return None


class Vectorized:
  """A scalar kernel, broadcast over its arguments.

  Concrete calls are converted to float64, flattened, padded (by repeating
  the last entry) and run in batches of 8 (up to 8 elements) or 256 (more)
  under ``jax.enable_x64``, so a session compiles each kernel at most twice
  rather than for every shape (compiling dominates small calls), large calls
  waste less on lanes of a ``while_loop`` waiting for the slowest one, and
  every root is found in float64; results come back as jax arrays of the
  default float dtype. Traced calls (under a caller's ``jit``, ``vmap`` or
  ``grad``) go straight to ``jnp.vectorize`` in the caller's precision.
  """

  def __init__(self, f: Callable[..., Any]):
    options = compiler_options()
    self._vectorized = jax.jit(jnp.vectorize(f), compiler_options=options)
    self._batched = jax.jit(jax.vmap(f), compiler_options=options)

  def __call__(self, *args: Any) -> Any:
    """The kernel broadcast over ``args``: jax arrays of the default float dtype."""
    out = self.numpy(*args)
    if is_traced(args):
      return out
    dtype = float_dtype()
    return jax.tree.map(lambda r: jnp.asarray(r, dtype), out)

  def numpy(self, *args: Any) -> Any:
    """As :meth:`__call__`, but concrete results stay float64 numpy arrays (for host glue)."""
    if is_traced(args):
      return self._vectorized(*args)
    arrays = [np.asarray(a) for a in args]
    arrays = [a if a.dtype == bool else a.astype(np.float64) for a in arrays]
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    n = math.prod(shape)
    with jax.enable_x64(True):
      if n == 0:
        return jax.tree.map(np.asarray, self._vectorized(*arrays))
      size = _SMALL_BATCH if n <= _SMALL_BATCH else _LARGE_BATCH
      padded = -(-n // size) * size
      flat = [np.pad(np.broadcast_to(a, shape).ravel(), (0, padded - n), mode="edge")
              for a in arrays]
      chunks = [jax.tree.map(np.asarray, self._batched(*(a[i:i + size] for a in flat)))
                for i in range(0, padded, size)]
    out = jax.tree.map(lambda *parts: np.concatenate(parts), *chunks)
    return jax.tree.map(lambda r: r[:n].reshape(shape), out)


def safe_log_scale(chi: Array) -> Array:
  """``-1 / ln chi``, ``inf`` where ``chi`` is 1 to within 4 ulp (not ``+-1 / ulp``)."""
  critical = jnp.abs(chi - 1) <= 4 * jnp.finfo(chi.dtype).eps
  return jnp.where(critical, jnp.inf, -1.0 / jnp.log(jnp.where(critical, 2.0, chi)))


def find_root(g: Callable[[Array], tuple[Array, Array, Any]], lo: Array, hi: Array,
              x: Array, aux: Any, max_steps: int, scale: float = 0.0,
              done: Array | bool = False) -> tuple[Array, Array, Array, Any]:
  """Safeguarded Newton for ``g(x) = 0`` with ``g(lo) >= 0 > g(hi)``.

  ``g`` returns ``(g(x), g'(x), aux)``. Each step shrinks the bracket with
  the sign of ``g(x)`` and takes the Newton step if it stays inside, else
  bisects (geometrically when the bracket spans decades). While ``hi`` is
  infinite the iterate grows 4x instead. Stops after ``max_steps`` or once
  a step moves ``x`` by at most ``4 eps (|x| + scale)`` (relative for
  ``scale = 0``, absolute near 0 otherwise) or ``g(x) = 0``. A
  ``lax.while_loop``: jittable, and under ``vmap`` it runs until every lane
  is done (lanes with ``done`` set skip it).

  Returns:
    ``(hi, root, g at the starting x, aux at the last evaluated x)``; ``hi``
    is still ``inf`` if no sign change was found.
  """
  eps = jnp.finfo(x.dtype).eps

  def cond(state):
    k, *_, stop = state
    return (k < max_steps) & ~stop

  def body(state):
    k, lo, hi, x, g_first, aux, _ = state
    gx, slope, aux = g(x)
    g_first = jnp.where(k == 0, gx, g_first)
    lo = jnp.where(gx >= 0, x, lo)
    hi = jnp.where(gx < 0, x, hi)
    bounded = jnp.isfinite(hi)
    newton = x - gx / slope
    wide = (lo > 0) & (hi > 4 * lo)
    bisect = jnp.where(wide, jnp.sqrt(lo * jnp.where(bounded, hi, 1.0)), (lo + hi) / 2)
    new = jnp.where(bounded, jnp.where((newton > lo) & (newton < hi), newton, bisect), 4 * x)
    new = jnp.where(gx == 0, x, new)
    stop = bounded & (jnp.abs(new - x) <= 4 * eps * (jnp.abs(x) + scale))
    return k + 1, lo, hi, new, g_first, aux, stop

  state = (0, lo, hi, x, jnp.zeros_like(x), aux, jnp.asarray(done))
  _, _, hi, root, g_first, aux, _ = jax.lax.while_loop(cond, body, state)
  return hi, root, g_first, aux


def bisect(f: Callable[[float], float], lo: float, hi: float, *,
           max_doublings: int = 60) -> float:
  """Host root of an increasing scalar function, to the last bit.

  ``f(lo) <= 0`` is required; ``hi`` is doubled (at most ``max_doublings``
  times) until ``f(hi) >= 0``, then the bracket is bisected until no float
  lies strictly inside. For the one-dimensional solves of the activation
  transforms, where each ``f`` is a cheap host computation.

  Raises:
    ValueError: if ``f(lo) > 0`` or no ``hi`` up to ``2^max_doublings hi`` has
    ``f(hi) >= 0``.
  """
  if f(lo) > 0:
    raise ValueError(f"no root above {lo:g}: f({lo:g}) = {f(lo):g} > 0")
  for _ in range(max_doublings):
    if f(hi) >= 0:
      break
    lo, hi = hi, 2 * hi
  else:
    raise ValueError(f"no root below {hi:g}: f stays negative")
  while True:
    mid = 0.5 * (lo + hi)
    if not lo < mid < hi:
      return mid
    if f(mid) < 0:
      lo = mid
    else:
      hi = mid
