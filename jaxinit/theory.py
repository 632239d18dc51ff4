r"""Mean-field signal propagation through deep random networks at initialization.

A fully connected network ``h^{l+1} = W^{l+1} phi(h^l) + b^{l+1}`` with
``W_ij ~ N(0, sw / fan_in)`` and ``b_i ~ N(0, sb)`` has, as the width grows,
Gaussian pre-activations whose second moments follow deterministic maps
(Poole et al. 2016, "Exponential expressivity in deep neural networks through
transient chaos"; Schoenholz et al. 2017, "Deep information propagation").
With ``z, z1, z2`` independent standard normals:

* length map: ``q^{l+1} = sw E[phi(sqrt(q^l) z)^2] + sb``; its stable fixed
  point is ``q*``;
* covariance map of two inputs:
  ``q12^{l+1} = sw E[phi(u1) phi(u2)] + sb``, ``(u1, u2) ~ N(0, [[q11, q12], [q12, q22]])``;
* correlation map at ``q*``: ``c^{l+1} = (sw E[phi(u1) phi(u2)] + sb) / q*``
  with ``u1 = sqrt(q*) z1``, ``u2 = sqrt(q*) (c z1 + sqrt(1 - c^2) z2)``; ``c = 1``
  is always a fixed point, ``c*`` is the stable one;
* ``chi1 = sw E[phi'(sqrt(q*) z)^2]``, the slope of the correlation map at
  ``c = 1`` and the mean squared singular value of one layer's Jacobian:
  ``chi1 < 1`` ordered (``c* = 1``), ``chi1 = 1`` critical, ``chi1 > 1``
  chaotic (``c* < 1``);
* ``chi_c = sw E[phi'(u1) phi'(u2)]`` at ``(q*, c*)``, the slope of the
  correlation map at ``c*`` (Price's theorem), and the depth scales
  ``xi_c = -1 / ln chi_c`` (correlations approach ``c*`` as ``exp(-l / xi_c)``),
  ``xi_q = -1 / ln(chi1 + sw E[phi''(u) phi(u)])`` (lengths approach ``q*``;
  the argument is the slope of the length map at ``q*``) and
  ``xi_grad = -1 / ln chi1`` (gradient norms scale as ``exp(-l / xi_grad)``;
  negative in the chaotic phase, where they grow);
* a network is trainable up to depth about ``6 xi_c`` (Schoenholz et al.'s
  empirical bound), which diverges on the critical line ``chi1 = 1``.

Every expectation is a quadrature rule from :mod:`jaxinit._quadrature`: 1-D
ones split at 0 with a half-normal Gauss rule per half-line, 2-D ones in polar
coordinates split at the two kink rays ``u1 = 0``, ``u2 = 0``. Both converge
exponentially for smooth activations and for the ReLU family. Absolute
errors in float64 (against the closed forms for relu and erf, a 100-node
rule otherwise), 1-D ``E[phi(z)^2]`` and 2-D ``E[phi(u1) phi(u2)]`` at
``q = 1``, ``c = 0.6`` (``tests/test_theory.py`` checks these rates):

=====================  =====  =====  =====  =====
1-D nodes per half         4      8     16     32
=====================  =====  =====  =====  =====
relu                   3e-16  4e-16  7e-16  6e-17
elu                    5e-05  2e-10  1e-15  8e-16
tanh                   1e-03  4e-06  2e-10  4e-16
tanh(4 z)              2e-02  1e-03  3e-05  1e-08
=====================  =====  =====  =====  =====

=====================  =====  =====  =====  =====
2-D nodes (radial and
angular per sector)        4      8     16     32
=====================  =====  =====  =====  =====
relu (arc-cosine)      3e-05  1e-13  3e-16  1e-16
elu                    6e-05  5e-11  7e-16  4e-16
tanh                   1e-04  2e-08  2e-11  2e-16
erf(1.7 u) (arcsin)    4e-03  5e-05  1e-08  2e-15
=====================  =====  =====  =====  =====

A tensor-product Gauss rule converges only algebraically for the ReLU kernel
(error 2e-5, 1e-6, 8e-7 at 16, 32, 64 nodes per axis) because the kink of
``u2`` is a slanted line in its coordinates. The defaults, 64 nodes per
half-line (1-D) and 32 x 32 per sector (2-D), give 1e-15 (1-D) and 2e-11
(2-D) for tanh at ``q = 10``, 1e-12 and 5e-9 at ``q = 30``.

Fixed points are found by root finding, not iteration (which slows to a crawl
near the critical line): a bracket grown geometrically, then safeguarded
Newton steps that fall back to bisection, in a ``lax.while_loop`` that stops
at convergence or after a fixed number of steps. The
slopes come from differentiating under the integral: ``dL/dq = sw
E[phi(u) phi'(u) u] / q`` (equal, by Stein's lemma, to Schoenholz et al.'s
``chi1 + sw E[phi phi'']`` but with no second derivative, so kinks are
harmless) and ``dC/dc = sw E[phi'(u1) phi'(u2)]`` (Price's theorem). Every
kernel is therefore jittable and vmappable over the variances; the public
functions broadcast over array arguments, so a phase diagram is one call.
Activation derivatives come from :func:`jax.grad`.

Bad Python inputs (negative or non-finite variances, an activation that is
not traceable) raise eagerly; traced inputs are not checked (NaN out).

Examples:
  >>> from jaxinit import theory
  >>> round(float(theory.critical_weight_variance("relu", 0.0)), 4)
  2.0
  >>> theory.phase("tanh", 1.0, 0.05)
  'ordered'
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import re
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit import _quadrature as quad
from jaxinit.gains import ACTIVATIONS, resolve_activation

Array = jax.Array
ActivationLike = str | Callable[..., Array]

DEFAULT_NODES = 64
"""1-D quadrature nodes per half-line (128 evaluations of ``phi``)."""
DEFAULT_NODES_2D = 32
"""2-D quadrature: radial nodes and angular nodes per sector (4 * 32 * 32 evaluations)."""

_Q_MIN = 1e-30   # q* = 0 (sb = 0): expectations of derivatives use the limit q -> 0+
_Q_MAX = 1e30    # q* = inf (unbounded phi, sw large): ... and q -> inf for chi1
_GROW_STEPS = 50     # q* bracket grows 4x per step: up to 4^50 ~ 1e30 q0
_ROOT_STEPS = 64     # then at most 64 safeguarded Newton / bisection steps
_CRIT_LOG2_RANGE = 64.0   # critical sw searched in [2^-64, 2^64] ...
_CRIT_STEPS = 64          # ... with <= 64 doublings, then 64 halvings of log2 sw
_SMALL_BATCH = 8     # concrete calls run in batches of 8 (n <= 8) or 256 elements
_LARGE_BATCH = 256
_SOLVE = np.asarray(True)
_SKIP = np.asarray(False)


# ----------------------------------------------------------------------------
# Input checking.

def _is_traced(x: Any) -> bool:
  return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(x))


def _float_dtype() -> Any:
  return jnp.result_type(float)


def _check_nonnegative(name: str, value: Any) -> Any:
  """Eager check of a variance-like argument; a float numpy array (or the tracer)."""
  if _is_traced(value):
    return jnp.asarray(value, _float_dtype())
  try:
    arr = np.asarray(value)
  except Exception as err:  # noqa: BLE001 - re-raised with the argument named
    raise TypeError(f"{name} must be a non-negative real number or array, got "
                    f"{type(value).__name__}") from err
  if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer)
                               or np.issubdtype(arr.dtype, np.floating)):
    raise TypeError(f"{name} must be a non-negative real number or array, got "
                    f"{value!r} of dtype {arr.dtype}")
  if not np.all(np.isfinite(arr)):
    raise ValueError(f"{name} must be finite (no NaN or inf), got {value!r}")
  if np.any(arr < 0):
    raise ValueError(f"{name} must be >= 0, got {value!r}")
  return arr.astype(_float_dtype())


def _check_correlation(name: str, value: Any) -> Any:
  arr = _check_finite(name, value)
  if not _is_traced(arr) and np.any(np.abs(arr) > 1):
    raise ValueError(f"{name} must be a correlation in [-1, 1], got {value!r}")
  return arr


def _check_finite(name: str, value: Any) -> Any:
  if _is_traced(value):
    return jnp.asarray(value, _float_dtype())
  arr = np.asarray(value)
  if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer)
                               or np.issubdtype(arr.dtype, np.floating)):
    raise TypeError(f"{name} must be a real number or array, got {value!r}")
  if not np.all(np.isfinite(arr)):
    raise ValueError(f"{name} must be finite (no NaN or inf), got {value!r}")
  return arr.astype(_float_dtype())


def _one() -> np.ndarray:
  return np.ones((), _float_dtype())


def _host(*values: Any) -> tuple[Any, Any]:
  """``(numpy, values as numpy arrays)``, or ``(jax.numpy, values)`` if any is traced.

  Glue arithmetic between kernels then runs on the host for concrete inputs
  (nothing to compile) and stays traceable under a caller's ``jit``/``vmap``.
  """
  if _is_traced(values):
    return jnp, values
  return np, tuple(np.asarray(v) for v in values)


def _check_depth(depth: Any) -> int:
  if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
    raise ValueError(f"depth must be a positive int, got {depth!r}")
  return int(depth)


def _check_nodes(name: str, value: Any) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= 200:
    raise ValueError(f"{name} must be an int in [1, 200], got {value!r}")
  return int(value)


def _check_activation(phi: Callable[..., Array]) -> None:
  """TypeError unless ``phi`` traces elementwise to floats and can be differentiated."""
  accepted = (f"a JAX-traceable elementwise function or one of {sorted(ACTIVATIONS)}")
  try:
    out = jax.eval_shape(phi, jax.ShapeDtypeStruct((3,), jnp.float32))
    jax.eval_shape(jax.grad(phi), jax.ShapeDtypeStruct((), jnp.float32))
  except Exception as err:  # noqa: BLE001 - re-raised with the argument named
    raise TypeError(f"activation must be {accepted}; tracing it failed with "
                    f"{type(err).__name__}: {err}") from err
  if getattr(out, "shape", None) != (3,):
    raise TypeError(f"activation must be {accepted}: it mapped shape (3,) to "
                    f"{getattr(out, 'shape', type(out).__name__)}")


def _elementwise(f: Callable[[Array], Array]) -> Callable[[Array], Array]:
  """A scalar function applied to every entry (``jax.vmap`` over the flattened array)."""
  def apply(x: Array) -> Array:
    return jax.vmap(f)(x.ravel()).reshape(x.shape)
  return apply


# ----------------------------------------------------------------------------
# Kernels: one set of jitted functions per (activation, params, quadrature size).

def _compiler_options() -> dict[str, Any] | None:
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


class _Vectorized:
  """A scalar kernel, broadcast over its arguments.

  Concrete calls are flattened, padded (by repeating the last entry) and run
  in batches of 8 (up to 8 elements) or 256 (more), so a session compiles
  each kernel at most twice rather than for every shape (compiling dominates
  small calls); large calls also waste less on lanes of a ``while_loop``
  waiting for the slowest one. Traced calls (under a caller's ``jit`` or
  ``vmap``) go straight to ``jnp.vectorize``.
  """

  def __init__(self, f: Callable[..., Any]):
    options = _compiler_options()
    self._vectorized = jax.jit(jnp.vectorize(f), compiler_options=options)
    self._batched = jax.jit(jax.vmap(f), compiler_options=options)

  def __call__(self, *args: Any) -> Any:
    if _is_traced(args):
      return self._vectorized(*args)
    arrays = [np.asarray(a) for a in args]
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    n = math.prod(shape)
    if n == 0:
      return self._vectorized(*args)
    size = _SMALL_BATCH if n <= _SMALL_BATCH else _LARGE_BATCH
    padded = -(-n // size) * size
    flat = [np.pad(np.broadcast_to(a, shape).ravel(), (0, padded - n), mode="edge")
            for a in arrays]
    chunks = [jax.tree.map(np.asarray, self._batched(*(a[i:i + size] for a in flat)))
              for i in range(0, padded, size)]
    out = jax.tree.map(lambda *parts: np.concatenate(parts), *chunks)
    return jax.tree.map(lambda r: jnp.asarray(r[:n].reshape(shape)), out)


def _safe_log_scale(chi: Array) -> Array:
  """``-1 / ln chi``, ``inf`` where ``chi`` is 1 to within 4 ulp (not ``+-1 / ulp``)."""
  critical = jnp.abs(chi - 1) <= 4 * jnp.finfo(chi.dtype).eps
  return jnp.where(critical, jnp.inf, -1.0 / jnp.log(chi))


def _find_root(g: Callable[[Array], tuple[Array, Array, Any]], lo: Array, hi: Array,
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


class _MeanField:
  """Scalar mean-field kernels for one activation; public wrappers vectorize them.

  Four jitted kernels, each compiled once per dtype and batch length:
  ``stats`` (1-D moments at a given ``q``), ``summary`` (``q*``, ``c*`` and
  everything derived from them), ``covariance`` (one layer of the covariance
  map) and ``critical``. Every public function is a thin composition of
  these, so a session compiles little (compiling dominates the run time of
  small calls).
  """

  def __init__(self, phi: Callable[[Array], Array], num_nodes: int, num_nodes_2d: int):
    self.phi = phi
    self.dphi = _elementwise(jax.grad(phi))
    self.num_nodes = num_nodes
    self.num_nodes_2d = num_nodes_2d
    self.stats = _Vectorized(self._stats)
    self.summary = _Vectorized(self._summary)
    self.covariance = _Vectorized(self._covariance)
    self.critical = _Vectorized(self._critical_weight_variance)

  # -- 1-D: length map ----------------------------------------------------------
  def _stats(self, sw: Array, sb: Array, q: Array) -> tuple[Array, Array, Array, Array]:
    """``(L(q), dL/dq, E[phi'(u)^2], E[phi'(u)^4])``, ``u = sqrt(q) z``.

    The slope is ``sw E[phi(u) phi'(u) u] / q`` (differentiate under the
    integral); by Stein's lemma it equals the ``sw E[phi'^2 + phi phi'']``
    of Schoenholz et al. without a second derivative, so kinks are harmless.
    Derivative terms use ``q`` clipped to ``[1e-30, 1e30]``: the one-sided
    limits at ``q = 0`` and ``q = inf``.
    """
    qc = jnp.clip(q, _Q_MIN, _Q_MAX)
    x, w = quad.standard_normal_rule(self.num_nodes)
    x = jnp.asarray(x, q.dtype)
    w = jnp.asarray(w, q.dtype)
    u, uc = jnp.sqrt(q) * x, jnp.sqrt(qc) * x
    p, pc, d2 = self.phi(u), self.phi(uc), self.dphi(uc) ** 2
    e_pp, e_pdu, e_d2, e_d4 = (jnp.sum(w * v) for v in (p * p, pc * self.dphi(uc) * uc, d2,
                                                          d2 * d2))
    return sw * e_pp + sb, sw * e_pdu / qc, e_d2, e_d4

  def _q_star(self, sw: Array, sb: Array, q0: Array) -> Array:
    """Fixed point of the length map reached from ``q0``; ``inf`` if ``q`` diverges.

    ``g(q) = L(q) - q`` has ``g(0) = sw phi(0)^2 + sb >= 0``, so ``[0, inf)``
    brackets the root; :func:`_find_root` grows the iterate 4x until
    ``g < 0`` (the iteration from ``q0`` climbs) and then homes in. A map
    with ``g(q0) = 0`` to rounding (linear or ReLU networks exactly at
    criticality, ``sb = 0``) keeps ``q0``.
    """
    def g(q):
      length, slope, _, _ = self._stats(sw, sb, q)
      return length - q, slope - 1, ()

    zero = jnp.zeros_like(q0)
    hi, root, g0, _ = _find_root(g, zero, jnp.full_like(q0, jnp.inf), q0, (),
                                 _GROW_STEPS + _ROOT_STEPS)
    neutral = jnp.abs(g0) <= 64 * jnp.finfo(q0.dtype).eps * (2 * q0 + jnp.abs(g0))
    return jnp.where(neutral, q0, jnp.where(jnp.isfinite(hi), root, jnp.inf))

  # -- 2-D: covariance and correlation maps ---------------------------------------
  def _covariance(self, sw: Array, sb: Array, q11: Array, q22: Array,
                  q12: Array) -> tuple[Array, Array, Array]:
    n = self.num_nodes_2d
    e12 = quad.polar_gaussian_expectation(lambda a, b: self.phi(a) * self.phi(b),
                                          q11, q22, q12, n, n)
    return self._stats(sw, sb, q11)[0], self._stats(sw, sb, q22)[0], sw * e12 + sb

  def _c_star(self, sw: Array, sb: Array, q: Array, chi1: Array,
              solve: Array) -> tuple[Array, Array]:
    """``c*``, the stable fixed point of the correlation map at ``q*``, and ``chi_c`` there.

    ``c* = 1`` and ``chi_c = chi1`` unless chaotic (``chi1 > 1`` by more
    than rounding). Then ``g(c) = C(c) - c`` is ``>= 0`` at ``c = -1``
    (``|E[phi(u) phi(-u)]| <= E[phi^2]``) and ``< 0`` just below ``c = 1``
    (slope ``chi1 > 1`` at the trivial root), so ``[-1, 1)`` brackets
    ``c*``; safeguarded Newton, slope ``C'(c) = sw E[phi'(u1) phi'(u2)]``
    (Price's theorem), never evaluates ``c = 1``. ``chi_c`` is the slope at
    the last iterate (within 4 ulp of ``c*``). ``solve = False`` skips the
    search (``nan`` where chaotic).
    """
    n = self.num_nodes_2d
    chaotic = chi1 > 1 + 4 * jnp.finfo(q.dtype).eps

    def g(c):
      e, slope = quad.polar_gaussian_expectation(
          lambda a, b: (self.phi(a) * self.phi(b), self.dphi(a) * self.dphi(b)),
          q, q, q * c, n, n)
      return (sw * e + sb) / q - c, sw * slope - 1, sw * slope

    one = jnp.ones_like(q)
    _, root, _, slope = _find_root(g, -one, one, 0 * one, one, _ROOT_STEPS, scale=1.0,
                                   done=~(chaotic & solve))
    nan = jnp.full_like(q, jnp.nan)
    return (jnp.where(chaotic, jnp.where(solve, root, nan), one),
            jnp.where(chaotic, jnp.where(solve, slope, nan), chi1))

  def _summary(self, sw: Array, sb: Array, q0: Array, solve: Array) -> tuple[Array, ...]:
    """The fields of :class:`MeanField`; correlation ones ``nan`` where ``q* = inf``.

    ``solve = False`` leaves ``c*`` (and ``chi_c``, ``xi_c``) ``nan`` in the
    chaotic phase instead of solving for it: the 1-D quantities alone.
    """
    q = self._q_star(sw, sb, q0)
    _, slope_q, e_d2, _ = self._stats(sw, sb, q)
    chi1 = sw * e_d2
    finite = jnp.isfinite(q)
    c, chi_c = self._c_star(sw, sb, jnp.where(finite, jnp.clip(q, _Q_MIN, _Q_MAX), 1.0), chi1,
                            solve)
    nan = jnp.full_like(q, jnp.nan)
    c, chi_c, xi_q = (jnp.where(finite, v, nan) for v in (c, chi_c, _safe_log_scale(slope_q)))
    return q, c, chi1, chi_c, xi_q, _safe_log_scale(chi_c), _safe_log_scale(chi1)

  # -- critical line ------------------------------------------------------------
  def _critical_weight_variance(self, sb: Array, q0: Array) -> Array:
    """``sw`` with ``chi1(sw, sb) = 1``, searched on ``t = log2 sw``.

    One loop: while no ``t`` with ``chi1 > 1`` is known, probe
    ``t = 0, 1, 2, ...`` (``chi1 -> 0`` as ``sw -> 0``, so ``t = -64`` is
    below the line); then bisect. The first crossing above ``sw = 1`` is
    found even where quadrature underflows at absurd ``sw`` (``chi1`` of tanh
    grows like ``sqrt(sw)`` but its integrand narrows to nothing between
    nodes). ``nan`` if there is none below ``sw = 2^64``.
    """
    def step(_, state):
      lo, hi, t = state
      sw = jnp.exp2(t)
      above = sw * self._stats(sw, sb, self._q_star(sw, sb, q0))[2] > 1
      lo = jnp.where(above, lo, t)
      hi = jnp.where(above, t, hi)
      return lo, hi, jnp.where(jnp.isfinite(hi), (lo + hi) / 2, t + 1)

    top = jnp.asarray(_CRIT_LOG2_RANGE, sb.dtype)
    state = (-top, jnp.full((), jnp.inf, sb.dtype), jnp.zeros((), sb.dtype))
    lo, hi, _ = jax.lax.fori_loop(0, 2 * _CRIT_STEPS, step, state)
    return jnp.where(jnp.isfinite(hi), jnp.exp2((lo + hi) / 2), jnp.nan)


@functools.lru_cache(maxsize=64)
def _cached_field(activation: ActivationLike, params: tuple[tuple[str, Any], ...],
                  num_nodes: int, num_nodes_2d: int) -> _MeanField:
  return _new_field(activation, dict(params), num_nodes, num_nodes_2d)


def _new_field(activation: ActivationLike, params: dict[str, Any], num_nodes: int,
               num_nodes_2d: int) -> _MeanField:
  phi = resolve_activation(activation, **params)
  _check_activation(phi)
  return _MeanField(phi, num_nodes, num_nodes_2d)


def _field(activation: ActivationLike, params: dict[str, Any], num_nodes: int = DEFAULT_NODES,
           num_nodes_2d: int = DEFAULT_NODES_2D) -> _MeanField:
  num_nodes = _check_nodes("num_nodes", num_nodes)
  num_nodes_2d = _check_nodes("num_nodes_2d", num_nodes_2d)
  if not isinstance(activation, str) and not callable(activation):
    resolve_activation(activation)  # raises the TypeError naming what is accepted
  key = tuple(sorted(params.items()))
  try:
    hash((activation, key))
  except TypeError:
    return _new_field(activation, params, num_nodes, num_nodes_2d)
  return _cached_field(activation, key, num_nodes, num_nodes_2d)


def _variances(weight_variance: Any, bias_variance: Any) -> tuple[Array, Array]:
  return (_check_nonnegative("weight_variance", weight_variance),
          _check_nonnegative("bias_variance", bias_variance))


# ----------------------------------------------------------------------------
# Public API.

def length_map(activation: ActivationLike, weight_variance: Any, bias_variance: Any,
               q: Any, *, num_nodes: int = DEFAULT_NODES, **params: Any) -> Array:
  r"""One step of the length map, ``q' = sw E[phi(sqrt(q) z)^2] + sb``.

  Poole et al. 2016, eq. (3): the second moment of the next layer's
  pre-activations given this layer's, ``z ~ N(0, 1)``.

  Args:
    activation: a name in :data:`jaxinit.gains.ACTIVATIONS` or a traceable
      elementwise callable.
    weight_variance: ``sw``; weights are ``N(0, sw / fan_in)``.
    bias_variance: ``sb``; biases are ``N(0, sb)``.
    q: pre-activation second moment of this layer (``>= 0``).
    num_nodes: quadrature nodes per half-line.
    **params: bound to the activation (e.g. ``negative_slope=0.1``).

  Returns:
    ``q'``, broadcast over the array arguments.

  Examples:
    >>> from jaxinit import theory
    >>> float(theory.length_map("relu", 2.0, 0.0, 3.0))
    3.0
    >>> round(float(theory.length_map("leaky_relu", 2.0, 0.1, 1.0, negative_slope=0.5)), 4)
    1.35
  """
  sw, sb = _variances(weight_variance, bias_variance)
  q = _check_nonnegative("q", q)
  return _field(activation, params, num_nodes).stats(sw, sb, q)[0]


def fixed_point_length(activation: ActivationLike, weight_variance: Any, bias_variance: Any,
                       *, q0: Any = 1.0, num_nodes: int = DEFAULT_NODES,
                       **params: Any) -> Array:
  r"""``q*``: the fixed point of :func:`length_map` that iteration from ``q0`` reaches.

  Found by root finding on ``L(q) - q`` (bracket, then safeguarded Newton),
  accurate to rounding even on the critical line where iteration converges
  only algebraically. ``inf`` when ``q`` grows without bound (e.g. ReLU with
  ``sw > 2``, or ``sw = 2`` and ``sb > 0``); ``0`` when it decays to 0 (e.g.
  tanh with ``sb = 0``, ``sw <= 1``). Where every ``q`` is a fixed point
  (linear with ``sw = 1``, ReLU with ``sw = 2``, both with ``sb = 0``), ``q0``.

  Args:
    activation: a name in :data:`jaxinit.gains.ACTIVATIONS` or a traceable
      elementwise callable.
    weight_variance: ``sw``.
    bias_variance: ``sb``.
    q0: starting length (``> 0``), e.g. that of the first layer.
    num_nodes: quadrature nodes per half-line.
    **params: bound to the activation.

  Returns:
    ``q*``, broadcast over ``weight_variance`` and ``bias_variance``.

  Examples:
    >>> from jaxinit import theory
    >>> round(float(theory.fixed_point_length("relu", 1.0, 0.5)), 6)   # sb / (1 - sw/2)
    1.0
    >>> round(float(theory.fixed_point_length("tanh", 1.5, 0.05)), 3)
    0.418
  """
  sw, sb = _variances(weight_variance, bias_variance)
  q0 = _check_nonnegative("q0", q0)
  if not _is_traced(q0) and np.any(np.asarray(q0) <= 0):
    raise ValueError(f"q0 must be > 0, got {q0!r}")
  return _field(activation, params, num_nodes).summary(sw, sb, q0, _SKIP)[0]


def length_slope(activation: ActivationLike, weight_variance: Any, q: Any, *,
                 num_nodes: int = DEFAULT_NODES, **params: Any) -> Array:
  r"""Slope of the length map, ``dq'/dq = sw E[phi'(u)^2 + phi(u) phi''(u)]``, ``u = sqrt(q) z``.

  Schoenholz et al. 2017, eq. (5) (Price's theorem, ``d/dq E[f(u)] = E[f''(u)]
  / 2`` with ``f = phi^2``); at ``q*`` it is the rate at which lengths
  approach the fixed point. Computed as ``sw E[phi(u) phi'(u) u] / q``
  (equal by Stein's lemma, and free of ``phi''``). ``q = 0`` means the limit
  ``q -> 0+``.

  Args:
    activation: name or traceable elementwise callable.
    weight_variance: ``sw``.
    q: pre-activation second moment.
    num_nodes: quadrature nodes per half-line.
    **params: bound to the activation.

  Returns:
    The slope, broadcast over the arguments.

  Examples:
    >>> from jaxinit import theory
    >>> round(float(theory.length_slope("relu", 1.5, 2.0)), 6)
    0.75
  """
  sw = _check_nonnegative("weight_variance", weight_variance)
  q = _check_nonnegative("q", q)
  return _field(activation, params, num_nodes).stats(sw, 0 * sw, q)[1]


def covariance_map(activation: ActivationLike, weight_variance: Any, bias_variance: Any,
                   q11: Any, q22: Any, q12: Any, *, num_nodes: int = DEFAULT_NODES,
                   num_nodes_2d: int = DEFAULT_NODES_2D,
                   **params: Any) -> tuple[Array, Array, Array]:
  r"""One layer of the covariance map of two inputs.

  ``(q11', q22', q12') = (L(q11), L(q22), sw E[phi(u1) phi(u2)] + sb)`` with
  ``(u1, u2) ~ N(0, [[q11, q12], [q12, q22]])`` (Poole et al. 2016, eq. (5)).

  Args:
    activation: name or traceable elementwise callable.
    weight_variance: ``sw``.
    bias_variance: ``sb``.
    q11, q22: second moments of the two inputs' pre-activations (``>= 0``).
    q12: their covariance (``|q12| <= sqrt(q11 q22)``).
    num_nodes: 1-D nodes per half-line.
    num_nodes_2d: 2-D radial and angular (per sector) nodes.
    **params: bound to the activation.

  Returns:
    ``(q11', q22', q12')``.

  Examples:
    >>> from jaxinit import theory
    >>> [round(float(v), 6) for v in theory.covariance_map("relu", 2.0, 0.0, 1.0, 1.0, 0.0)]
    [1.0, 1.0, 0.31831]
  """
  sw, sb = _variances(weight_variance, bias_variance)
  q11 = _check_nonnegative("q11", q11)
  q22 = _check_nonnegative("q22", q22)
  q12 = _check_finite("q12", q12)
  if not _is_traced((q11, q22, q12)) and np.any(
      np.abs(np.asarray(q12)) > np.sqrt(np.asarray(q11) * np.asarray(q22)) * (1 + 1e-6)):
    raise ValueError("q12 must satisfy |q12| <= sqrt(q11 q22) (a covariance), got "
                     f"q11={q11}, q22={q22}, q12={q12}")
  return _field(activation, params, num_nodes, num_nodes_2d).covariance(sw, sb, q11, q22, q12)


def correlation_map(activation: ActivationLike, weight_variance: Any, bias_variance: Any,
                    c: Any, q: Any = None, *, num_nodes: int = DEFAULT_NODES,
                    num_nodes_2d: int = DEFAULT_NODES_2D, **params: Any) -> Array:
  r"""One step of the correlation map, ``c' = (sw E[phi(u1) phi(u2)] + sb) / q``.

  ``u1 = sqrt(q) z1``, ``u2 = sqrt(q) (c z1 + sqrt(1 - c^2) z2)``; ``q``
  defaults to ``q*`` (Poole et al. 2016, eq. (6)), where ``C(1) = 1``. At
  ``q* = 0`` (``sb = 0`` and ``phi(0) = 0``) the ratio is taken at
  ``q = 1e-30``; at ``q* = inf`` it is not defined (``nan``).

  Args:
    activation: name or traceable elementwise callable.
    weight_variance: ``sw``.
    bias_variance: ``sb``.
    c: input correlation in ``[-1, 1]``.
    q: the length both inputs have; ``None`` for ``q*``.
    num_nodes: 1-D nodes per half-line (for ``q*``).
    num_nodes_2d: 2-D radial and angular (per sector) nodes.
    **params: bound to the activation.

  Returns:
    ``c'``, broadcast over the arguments.

  Examples:
    >>> from jaxinit import theory
    >>> round(float(theory.correlation_map("relu", 2.0, 0.0, 0.0, q=1.0)), 6)   # 1/pi
    0.31831
  """
  sw, sb = _variances(weight_variance, bias_variance)
  c = _check_correlation("c", c)
  field = _field(activation, params, num_nodes, num_nodes_2d)
  q = field.summary(sw, sb, _one(), _SKIP)[0] if q is None else _check_nonnegative("q", q)
  xp, (sw, sb, c, q) = _host(sw, sb, c, q)
  q = xp.where(xp.isfinite(q), xp.clip(q, _Q_MIN, _Q_MAX), xp.nan)
  _, _, q12 = field.covariance(sw, sb, q, q, q * c)
  return jnp.asarray(xp.asarray(q12) / q)


class MeanField(NamedTuple):
  """Mean-field quantities at one ``(weight_variance, bias_variance)`` (see module doc)."""
  q_star: Array
  """Fixed point of the length map."""
  c_star: Array
  """Stable fixed point of the correlation map (1 unless chaotic)."""
  chi1: Array
  """``sw E[phi'(sqrt(q*) z)^2]``."""
  chi_c: Array
  """Slope of the correlation map at ``c*``."""
  xi_q: Array
  """Length depth scale ``-1 / ln(dL/dq at q*)``."""
  xi_c: Array
  """Correlation depth scale ``-1 / ln chi_c``."""
  xi_grad: Array
  """Gradient depth scale ``-1 / ln chi1`` (negative: gradients grow)."""


def mean_field(activation: ActivationLike, weight_variance: Any, bias_variance: Any, *,
               q0: Any = 1.0, num_nodes: int = DEFAULT_NODES,
               num_nodes_2d: int = DEFAULT_NODES_2D, **params: Any) -> MeanField:
  r"""All mean-field quantities of Schoenholz et al. 2017 at once.

  ``q*`` (:func:`fixed_point_length`), ``c*``, ``chi1``, ``chi_c`` and the
  depth scales ``xi_q``, ``xi_c``, ``xi_grad``. Where ``q*`` is infinite the
  correlation quantities are ``nan`` (no fixed point to linearize about);
  ``chi1`` is then its ``q -> inf`` limit.

  Args:
    activation: name or traceable elementwise callable.
    weight_variance: ``sw`` (broadcasts against ``bias_variance``).
    bias_variance: ``sb``.
    q0: starting length for :func:`fixed_point_length`.
    num_nodes: 1-D nodes per half-line.
    num_nodes_2d: 2-D radial and angular (per sector) nodes.
    **params: bound to the activation.

  Returns:
    A :class:`MeanField` of arrays with the broadcast shape.

  Examples:
    >>> from jaxinit import theory
    >>> mf = theory.mean_field("tanh", 4.0, 0.05)
    >>> round(float(mf.chi1), 3), round(float(mf.c_star), 3)
    (1.342, 0.165)
  """
  sw, sb = _variances(weight_variance, bias_variance)
  q0 = _check_nonnegative("q0", q0)
  field = _field(activation, params, num_nodes, num_nodes_2d)
  return MeanField(*field.summary(sw, sb, q0, _SOLVE))


def chi1(activation: ActivationLike, weight_variance: Any, bias_variance: Any, *,
         num_nodes: int = DEFAULT_NODES, **params: Any) -> Array:
  r"""``chi1 = sw E[phi'(sqrt(q*) z)^2]`` (Poole et al. 2016; Schoenholz et al. 2017, eq. (7)).

  The mean squared singular value of one layer's input-output Jacobian at
  the fixed point: ``< 1`` ordered, ``= 1`` critical, ``> 1`` chaotic.

  Args:
    activation: name or traceable elementwise callable.
    weight_variance: ``sw``.
    bias_variance: ``sb``.
    num_nodes: quadrature nodes per half-line.
    **params: bound to the activation.

  Returns:
    ``chi1``, broadcast over the variances.

  Examples:
    >>> from jaxinit import theory
    >>> round(float(theory.chi1("relu", 2.0, 0.0)), 6)
    1.0
    >>> round(float(theory.chi1("tanh", 1.0, 0.0)), 6)
    1.0
  """
  sw, sb = _variances(weight_variance, bias_variance)
  return _field(activation, params, num_nodes).summary(sw, sb, _one(), _SKIP)[2]


def fixed_point_correlation(activation: ActivationLike, weight_variance: Any,
                            bias_variance: Any, *, num_nodes: int = DEFAULT_NODES,
                            num_nodes_2d: int = DEFAULT_NODES_2D, **params: Any) -> Array:
  r"""``c*``, the stable fixed point of :func:`correlation_map`.

  ``1`` in the ordered phase (``chi1 <= 1``); in the chaotic phase the root
  of ``C(c) = c`` in ``[-1, 1)`` (safeguarded Newton, slope from Price's
  theorem). ``nan`` where ``q*`` is infinite.

  Args:
    activation: name or traceable elementwise callable.
    weight_variance: ``sw``.
    bias_variance: ``sb``.
    num_nodes: 1-D nodes per half-line.
    num_nodes_2d: 2-D radial and angular (per sector) nodes.
    **params: bound to the activation.

  Returns:
    ``c*``, broadcast over the variances.

  Examples:
    >>> from jaxinit import theory
    >>> float(theory.fixed_point_correlation("tanh", 1.0, 0.05))
    1.0
  """
  return mean_field(activation, weight_variance, bias_variance, num_nodes=num_nodes,
                    num_nodes_2d=num_nodes_2d, **params).c_star


def chi_c(activation: ActivationLike, weight_variance: Any, bias_variance: Any, *,
          num_nodes: int = DEFAULT_NODES, num_nodes_2d: int = DEFAULT_NODES_2D,
          **params: Any) -> Array:
  r"""``chi_c = sw E[phi'(u1) phi'(u2)]`` at ``(q*, c*)``: the correlation map's slope at ``c*``.

  Schoenholz et al. 2017, eq. (9); equals ``chi1`` when ``c* = 1``.

  Args:
    activation: name or traceable elementwise callable.
    weight_variance: ``sw``.
    bias_variance: ``sb``.
    num_nodes: 1-D nodes per half-line.
    num_nodes_2d: 2-D radial and angular (per sector) nodes.
    **params: bound to the activation.

  Returns:
    ``chi_c``, broadcast over the variances.

  Examples:
    >>> from jaxinit import theory
    >>> round(float(theory.chi_c("relu", 1.0, 0.1)), 6)
    0.5
  """
  return mean_field(activation, weight_variance, bias_variance, num_nodes=num_nodes,
                    num_nodes_2d=num_nodes_2d, **params).chi_c


def length_depth_scale(activation: ActivationLike, weight_variance: Any, bias_variance: Any,
                       *, num_nodes: int = DEFAULT_NODES, **params: Any) -> Array:
  r"""``xi_q = -1 / ln(chi1 + sw E[phi''(u) phi(u)])``, ``u = sqrt(q*) z``.

  Schoenholz et al. 2017, eq. (5): ``|q^l - q*| ~ exp(-l / xi_q)``. The
  argument of the log is :func:`length_slope` at ``q*``.

  Args:
    activation: name or traceable elementwise callable.
    weight_variance: ``sw``.
    bias_variance: ``sb``.
    num_nodes: quadrature nodes per half-line.
    **params: bound to the activation.

  Returns:
    ``xi_q`` in layers (``nan`` where ``q*`` is infinite).

  Examples:
    >>> from jaxinit import theory
    >>> round(float(theory.length_depth_scale("relu", 1.0, 0.1)), 6)   # -1 / ln(1/2)
    1.442695
  """
  sw, sb = _variances(weight_variance, bias_variance)
  return _field(activation, params, num_nodes).summary(sw, sb, _one(), _SKIP)[4]


def correlation_depth_scale(activation: ActivationLike, weight_variance: Any,
                            bias_variance: Any, *, num_nodes: int = DEFAULT_NODES,
                            num_nodes_2d: int = DEFAULT_NODES_2D, **params: Any) -> Array:
  r"""``xi_c = -1 / ln chi_c`` (Schoenholz et al. 2017, eq. (9)).

  Correlations approach ``c*`` as ``exp(-l / xi_c)``; ``inf`` on the
  critical line, i.e. wherever ``chi_c`` is 1 to within 4 ulp (so the
  largest finite values are about ``1 / (4 eps)``: 6e14 in float64, 2e6 in
  float32). The same convention holds for every depth scale here.

  Args:
    activation: name or traceable elementwise callable.
    weight_variance: ``sw``.
    bias_variance: ``sb``.
    num_nodes: 1-D nodes per half-line.
    num_nodes_2d: 2-D radial and angular (per sector) nodes.
    **params: bound to the activation.

  Returns:
    ``xi_c`` in layers.

  Examples:
    >>> from jaxinit import theory
    >>> round(float(theory.correlation_depth_scale("relu", 1.0, 0.1)), 4)   # -1 / ln(1/2)
    1.4427
  """
  return mean_field(activation, weight_variance, bias_variance, num_nodes=num_nodes,
                    num_nodes_2d=num_nodes_2d, **params).xi_c


def gradient_depth_scale(activation: ActivationLike, weight_variance: Any,
                         bias_variance: Any, *, num_nodes: int = DEFAULT_NODES,
                         **params: Any) -> Array:
  r"""``xi_grad = -1 / ln chi1`` (Schoenholz et al. 2017, eq. (16)).

  Backpropagated gradient norms scale as ``exp(-l / xi_grad)``: positive
  (vanishing) when ordered, negative (exploding) when chaotic, ``inf`` at
  criticality.

  Args:
    activation: name or traceable elementwise callable.
    weight_variance: ``sw``.
    bias_variance: ``sb``.
    num_nodes: quadrature nodes per half-line.
    **params: bound to the activation.

  Returns:
    ``xi_grad`` in layers.

  Examples:
    >>> from jaxinit import theory
    >>> round(float(theory.gradient_depth_scale("relu", 1.0, 0.0)), 6)
    1.442695
  """
  sw, sb = _variances(weight_variance, bias_variance)
  return _field(activation, params, num_nodes).summary(sw, sb, _one(), _SKIP)[6]


def max_trainable_depth(activation: ActivationLike, weight_variance: Any, bias_variance: Any,
                        *, num_nodes: int = DEFAULT_NODES,
                        num_nodes_2d: int = DEFAULT_NODES_2D, **params: Any) -> Array:
  r"""``6 xi_c``: Schoenholz et al. 2017's empirical bound on the trainable depth.

  Networks deeper than about ``6 xi_c`` did not train in their experiments
  (MNIST, CIFAR-10; fig. 5); it diverges on the critical line.

  Args:
    activation: name or traceable elementwise callable.
    weight_variance: ``sw``.
    bias_variance: ``sb``.
    num_nodes: 1-D nodes per half-line.
    num_nodes_2d: 2-D radial and angular (per sector) nodes.
    **params: bound to the activation.

  Returns:
    The depth bound in layers (a float).

  Examples:
    >>> from jaxinit import theory
    >>> round(float(theory.max_trainable_depth("relu", 1.0, 0.1)), 4)
    8.6562
  """
  xi_c = correlation_depth_scale(activation, weight_variance, bias_variance,
                                 num_nodes=num_nodes, num_nodes_2d=num_nodes_2d, **params)
  xp, (xi_c,) = _host(xi_c)
  return jnp.asarray(6.0 * xi_c)


PHASES = ("ordered", "critical", "chaotic")


def phase(activation: ActivationLike, weight_variance: Any, bias_variance: Any, *,
          tol: float = 1e-5, num_nodes: int = DEFAULT_NODES, **params: Any) -> Any:
  r"""``"ordered"`` (``chi1 < 1 - tol``), ``"critical"`` or ``"chaotic"`` (``chi1 > 1 + tol``).

  Not jittable (returns strings); use :func:`chi1` under ``jit``.

  Args:
    activation: name or traceable elementwise callable.
    weight_variance: ``sw``.
    bias_variance: ``sb``.
    tol: half-width of the band of ``chi1`` around 1 called critical.
    num_nodes: quadrature nodes per half-line.
    **params: bound to the activation.

  Returns:
    A string for scalar variances, else a numpy array of strings.

  Examples:
    >>> from jaxinit import theory
    >>> theory.phase("relu", [1.0, 2.0, 3.0], 0.0).tolist()
    ['ordered', 'critical', 'chaotic']
  """
  if _is_traced((weight_variance, bias_variance)):
    raise TypeError("phase returns strings and cannot be traced; use chi1 under jit")
  x = np.asarray(chi1(activation, weight_variance, bias_variance, num_nodes=num_nodes,
                      **params))
  codes = np.where(x < 1 - tol, 0, np.where(x > 1 + tol, 2, 1))
  if codes.ndim == 0:
    return PHASES[int(codes)]
  return np.asarray(PHASES, dtype=object)[codes]


def critical_weight_variance(activation: ActivationLike, bias_variance: Any, *,
                             num_nodes: int = DEFAULT_NODES, **params: Any) -> Array:
  r"""The weight variance on the order-to-chaos line: ``chi1(sw, sb) = 1`` at ``q*(sw, sb)``.

  Doubling from ``sw = 1`` until ``chi1 > 1``, then bisection on
  ``log2 sw`` (each step solving for ``q*``). Closed forms: linear 1, ReLU 2 for every
  ``sb`` (``chi1 = sw / 2``; with ``sb > 0``, ``q*`` diverges there), tanh 1
  at ``sb = 0``. ``nan`` if ``chi1`` stays below 1 up to ``sw = 2^64``.

  Accuracy: rounding of ``chi1`` where ``chi1 - 1`` is linear in ``sw -
  sw_c`` (any ``sb > 0``; ReLU-like at ``sb = 0``). For odd activations at
  ``sb = 0`` (tanh, erf), ``chi1 - 1`` grows only like ``(sw - sw_c)^2`` above
  the line (``q*`` leaves 0 there), so the line is resolved to about
  ``sqrt(eps)``: 3e-8 for tanh, 1e-8 for erf in float64.

  Args:
    activation: name or traceable elementwise callable.
    bias_variance: ``sb`` (scalar or array).
    num_nodes: quadrature nodes per half-line.
    **params: bound to the activation.

  Returns:
    The critical ``sw``, shaped like ``bias_variance``.

  Examples:
    >>> from jaxinit import theory
    >>> round(float(theory.critical_weight_variance("tanh", 0.05)), 3)
    1.761
  """
  sb = _check_nonnegative("bias_variance", bias_variance)
  field = _field(activation, params, num_nodes)
  return field.critical(sb, _one())


def critical_line(activation: ActivationLike, bias_variances: Any, *,
                  num_nodes: int = DEFAULT_NODES, **params: Any) -> Array:
  r"""The order-to-chaos line ``sw_c(sb)`` at each bias variance (one vectorized call).

  Args:
    activation: name or traceable elementwise callable.
    bias_variances: 1-D array of ``sb``.
    num_nodes: quadrature nodes per half-line.
    **params: bound to the activation.

  Returns:
    Critical weight variances, one per bias variance.

  Examples:
    >>> from jaxinit import theory
    >>> [round(float(v), 3) for v in theory.critical_line("tanh", [0.0, 0.05])]
    [1.0, 1.761]
  """
  sb = _check_nonnegative("bias_variances", bias_variances)
  if sb.ndim != 1:
    raise ValueError(f"bias_variances must be 1-D, got shape {sb.shape}")
  return critical_weight_variance(activation, sb, num_nodes=num_nodes, **params)


class LayerPrediction(NamedTuple):
  """Mean-field second moments layer by layer; index ``l`` is layer ``l`` (0: the input)."""
  q1: Array
  """``q^l`` of the first input (``|x1|^2 / n`` at ``l = 0``)."""
  q2: Array
  """``q^l`` of the second input."""
  c: Array
  """Correlation ``q12^l / sqrt(q1^l q2^l)``."""


def predict_layers(activation: ActivationLike, weight_variance: Any, bias_variance: Any,
                   depth: int, q0: Any = 1.0, c0: Any = 1.0, *,
                   num_nodes: int = DEFAULT_NODES, num_nodes_2d: int = DEFAULT_NODES_2D,
                   **params: Any) -> LayerPrediction:
  r"""Predicted ``q^l``, ``c^l`` (``l = 0..depth``) for two inputs of length ``q0``, cosine ``c0``.

  ``h^1 = W^1 x + b^1`` gives ``q^1 = sw q^0 + sb`` and
  ``q12^1 = sw q12^0 + sb``; deeper layers apply :func:`covariance_map`
  (a Python loop over layers: under ``jit`` it unrolls). Compare with
  measured ``mean_i (h^l_i)^2`` and the cosine of two inputs'
  pre-activations.

  Args:
    activation: name or traceable elementwise callable.
    weight_variance: ``sw`` (scalar).
    bias_variance: ``sb`` (scalar).
    depth: number of layers ``L >= 1``.
    q0: ``x . x / n`` of the inputs.
    c0: their cosine similarity.
    num_nodes: 1-D nodes per half-line.
    num_nodes_2d: 2-D radial and angular (per sector) nodes.
    **params: bound to the activation.

  Returns:
    A :class:`LayerPrediction` of arrays of length ``depth + 1``.

  Examples:
    >>> from jaxinit import theory
    >>> p = theory.predict_layers("relu", 2.0, 0.0, 3, q0=1.0, c0=0.0)
    >>> [round(float(v), 4) for v in p.c]
    [0.0, 0.0, 0.3183, 0.4937]
  """
  q0 = _check_nonnegative("q0", q0)
  c0 = _check_correlation("c0", c0)
  return _predict(activation, weight_variance, bias_variance, depth, q0, q0, c0 * q0,
                  num_nodes, num_nodes_2d, params)


def predict_layers_from_inputs(activation: ActivationLike, weight_variance: Any,
                               bias_variance: Any, depth: int, x1: Any, x2: Any, *,
                               num_nodes: int = DEFAULT_NODES,
                               num_nodes_2d: int = DEFAULT_NODES_2D,
                               **params: Any) -> LayerPrediction:
  r"""As :func:`predict_layers`, from two input vectors (``q^0_ab = x_a . x_b / n``).

  Args:
    activation: name or traceable elementwise callable.
    weight_variance: ``sw`` (scalar).
    bias_variance: ``sb`` (scalar).
    depth: number of layers ``L >= 1``.
    x1, x2: input vectors of the same length ``n``.
    num_nodes: 1-D nodes per half-line.
    num_nodes_2d: 2-D radial and angular (per sector) nodes.
    **params: bound to the activation.

  Returns:
    A :class:`LayerPrediction` of arrays of length ``depth + 1``.

  Examples:
    >>> import numpy as np
    >>> from jaxinit import theory
    >>> p = theory.predict_layers_from_inputs("relu", 2.0, 0.0, 2, np.ones(4), -np.ones(4))
    >>> [round(float(v), 5) for v in p.c]     # relu(u) relu(-u) = 0
    [-1.0, -1.0, 0.0]
  """
  x1 = _check_finite("x1", x1)
  x2 = _check_finite("x2", x2)
  if x1.ndim != 1 or x1.shape != x2.shape or x1.size == 0:
    raise ValueError(f"x1 and x2 must be non-empty vectors of one length, got shapes "
                     f"{x1.shape} and {x2.shape}")
  n = x1.size
  return _predict(activation, weight_variance, bias_variance, depth, x1 @ x1 / n,
                  x2 @ x2 / n, x1 @ x2 / n, num_nodes, num_nodes_2d, params)


def _predict(activation: ActivationLike, weight_variance: Any, bias_variance: Any,
             depth: int, q11: Array, q22: Array, q12: Array, num_nodes: int,
             num_nodes_2d: int, params: dict[str, Any]) -> LayerPrediction:
  sw, sb = _variances(weight_variance, bias_variance)
  depth = _check_depth(depth)
  if any(np.ndim(v) for v in (sw, sb, q11, q22, q12)):
    raise ValueError("predict_layers takes scalar variances and input moments; "
                     "use jax.vmap for many")
  field = _field(activation, params, num_nodes, num_nodes_2d)
  xp, (sw, sb, q11, q22, q12) = _host(sw, sb, q11, q22, q12)
  layers = [(q11, q22, q12), (sw * q11 + sb, sw * q22 + sb, sw * q12 + sb)]  # h^1 = W^1 x + b^1
  for _ in range(depth - 1):
    layers.append(tuple(xp.asarray(v) for v in field.covariance(sw, sb, *layers[-1])))
  q1, q2, q12 = (xp.stack(v) for v in zip(*layers))
  return LayerPrediction(jnp.asarray(q1), jnp.asarray(q2), jnp.asarray(q12 / xp.sqrt(q1 * q2)))


class JacobianMoments(NamedTuple):
  """Moments of the eigenvalues ``lambda`` of ``J J^T`` (squared singular values of ``J``)."""
  mean: Array
  """``m1 = E[lambda]``."""
  second_moment: Array
  """``m2 = E[lambda^2]``."""
  variance: Array
  """``m2 - m1^2``."""


_S1 = {"gaussian": -1.0, "orthogonal": 0.0}


def jacobian_spectrum_moments(activation: ActivationLike, weight_variance: Any,
                              bias_variance: Any, depth: int, *, weights: str = "gaussian",
                              q0: Any = None, num_nodes: int = DEFAULT_NODES,
                              **params: Any) -> JacobianMoments:
  r"""Mean and variance of the squared singular values of the input-output Jacobian.

  For ``J = D^L W^L ... D^1 W^1`` (``D^l = diag phi'(h^l)``), free
  probability (Pennington, Schoenholz & Ganguli 2017, "Resurrecting the
  sigmoid"; 2018, "The emergence of spectral universality") gives the
  S-transform of ``J J^T`` as the product of those of the ``W^l W^l^T`` and
  ``(D^l)^2``. Writing each as ``S(z) = (1 + s1 z + O(z^2)) / m1``, which
  inverts the moment series with ``s1 = -(m2 - m1^2) / m1^2``, the product
  gives

      mean      m1 = prod_l sw mu1_l                      (= chi^L at q*)
      variance  m2 - m1^2 = m1^2 sum_l (mu2_l / mu1_l^2 - 1 - s_W)

  with ``mu_k,l = E[phi'(h^l)^(2k)]``, ``h^l ~ N(0, q^l)``, and ``s_W`` the
  ``s1`` of ``W W^T / sw``: ``-1`` for Gaussian weights (Marchenko-Pastur,
  ``m2 = 2 m1^2``) and ``0`` for (scaled) orthogonal ones (all eigenvalues
  ``sw``). At the fixed point this is ``m1 = chi^L``,
  ``var = chi^(2L) L (mu2 / mu1^2 - 1 - s_W)``: Gaussian weights add ``L``
  to the relative variance; orthogonal weights with ``mu2 = mu1^2`` (linear
  networks) give an exactly isometric ``J``. Finite width adds ``O(L / N)``
  relative corrections.

  Args:
    activation: name or traceable elementwise callable.
    weight_variance: ``sw`` (scalar).
    bias_variance: ``sb`` (scalar).
    depth: number of layers ``L``.
    weights: ``"gaussian"`` (``N(0, sw / N)`` entries) or ``"orthogonal"``
      (``sqrt(sw)`` times a Haar orthogonal matrix).
    q0: input length ``x . x / n``; ``None`` puts every layer at ``q*``.
      Otherwise ``q^l`` follows the length map from ``q^1 = sw q0 + sb``.
    num_nodes: quadrature nodes per half-line.
    **params: bound to the activation.

  Returns:
    :class:`JacobianMoments` ``(mean, second_moment, variance)``.

  Examples:
    >>> from jaxinit import theory
    >>> m = theory.jacobian_spectrum_moments("relu", 2.0, 0.0, 4)   # mu2 / mu1^2 = 2
    >>> round(float(m.mean), 4), round(float(m.variance), 4)         # 1, 4 (2 - 1 + 1)
    (1.0, 8.0)
    >>> m = theory.jacobian_spectrum_moments("relu", 2.0, 0.0, 4, weights="orthogonal")
    >>> round(float(m.variance), 4)                                  # 4 (2 - 1 - 0)
    4.0
  """
  if weights not in _S1:
    raise ValueError(f"weights must be one of {sorted(_S1)}, got {weights!r}")
  sw, sb = _variances(weight_variance, bias_variance)
  depth = _check_depth(depth)
  if np.ndim(sw) or np.ndim(sb):
    raise ValueError("jacobian_spectrum_moments takes scalar variances; use jax.vmap for many")
  field = _field(activation, params, num_nodes)
  if q0 is None:
    qs = [field.summary(sw, sb, _one(), _SKIP)[0]] * depth
  else:
    qs = [sw * _check_nonnegative("q0", q0) + sb]
    for _ in range(depth - 1):
      qs.append(field.stats(sw, sb, qs[-1])[0])
  xp, (sw, *qs) = _host(sw, *qs)
  _, _, mu1, mu2 = (xp.asarray(v) for v in field.stats(sw, 0 * sw, xp.stack(qs)))
  mean = xp.prod(sw * mu1)
  relative_variance = xp.sum(mu2 / mu1**2 - 1 - _S1[weights])
  return JacobianMoments(*(jnp.asarray(v) for v in (
      mean, mean**2 * (1 + relative_variance), mean**2 * relative_variance)))


# ----------------------------------------------------------------------------
# Phase diagram and command line.

class PhaseDiagram(NamedTuple):
  """Mean-field quantities on a grid; 2-D arrays are indexed ``[bias, weight]``."""
  weight_variances: np.ndarray
  bias_variances: np.ndarray
  q_star: np.ndarray
  chi1: np.ndarray
  xi_c: np.ndarray
  critical_weight_variances: np.ndarray


def phase_diagram(activation: ActivationLike, weight_variances: Any, bias_variances: Any, *,
                  num_nodes: int = DEFAULT_NODES, num_nodes_2d: int = DEFAULT_NODES_2D,
                  **params: Any) -> PhaseDiagram:
  r"""``q*``, ``chi1`` and ``xi_c`` on the grid ``bias_variances x weight_variances``, and ``sw_c``.

  Vectorized: the 1-D quantities on the whole grid, ``c*`` only on its
  chaotic part, and one :func:`critical_line` call.

  Args:
    activation: name or traceable elementwise callable.
    weight_variances: 1-D array of ``sw``.
    bias_variances: 1-D array of ``sb``.
    num_nodes: 1-D nodes per half-line.
    num_nodes_2d: 2-D radial and angular (per sector) nodes.
    **params: bound to the activation.

  Returns:
    A :class:`PhaseDiagram` of numpy arrays.

  Examples:
    >>> from jaxinit import theory
    >>> d = theory.phase_diagram("relu", [1.0, 1.5], [0.0, 0.1, 0.2])
    >>> d.xi_c.shape, d.critical_weight_variances.round(4).tolist()
    ((3, 2), [2.0, 2.0, 2.0])
  """
  sw = _check_nonnegative("weight_variances", weight_variances)
  sb = _check_nonnegative("bias_variances", bias_variances)
  if sw.ndim != 1 or sb.ndim != 1:
    raise ValueError("weight_variances and bias_variances must be 1-D")
  field = _field(activation, params, num_nodes, num_nodes_2d)
  grid_sw, grid_sb = (g.ravel() for g in np.meshgrid(sw, sb))
  # The 1-D quantities everywhere, then c* where chaotic, ordered by chi1 so
  # that the slow lanes near the line share batches.
  first = field.summary(grid_sw, grid_sb, _one(), _SKIP)
  q, chi1_, xi_c = (np.array(first[i]) for i in (0, 2, 5))
  chaotic = np.flatnonzero(np.isnan(xi_c) & np.isfinite(q))
  chaotic = chaotic[np.argsort(chi1_[chaotic])]
  if chaotic.size:
    xi_c[chaotic] = np.asarray(field.summary(grid_sw[chaotic], grid_sb[chaotic], _one(),
                                             _SOLVE)[5])
  crit = critical_line(activation, sb, num_nodes=num_nodes, **params)
  shape = (sb.size, sw.size)
  return PhaseDiagram(sw, sb, q.reshape(shape), chi1_.reshape(shape), xi_c.reshape(shape),
                      np.asarray(crit))


def plot_phase_diagram(diagram: PhaseDiagram, path: str | os.PathLike | None = None, *,
                       title: str | None = None, point: tuple[float, float] | None = None) -> Any:
  """Draws ``xi_c`` over ``(weight variance, bias variance)`` with the critical line.

  matplotlib (the ``plot`` extra) is imported here, not with the package.

  Args:
    diagram: from :func:`phase_diagram`.
    path: where to save a PNG; ``None`` to only return the figure.
    title: figure title.
    point: an ``(sw, sb)`` to mark.

  Returns:
    The matplotlib ``Figure``.
  """
  import matplotlib  # noqa: PLC0415 - optional dependency, imported lazily
  if path is not None:
    matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415
  from matplotlib.colors import LogNorm  # noqa: PLC0415

  xi = np.where(np.isfinite(diagram.xi_c) & (diagram.xi_c > 0), diagram.xi_c, np.nan)
  fig, ax = plt.subplots(figsize=(6, 4.5))
  finite = xi[np.isfinite(xi)]
  norm = None
  if finite.size:
    norm = LogNorm(vmin=max(finite.min(), 1e-2), vmax=max(finite.max(), 1e-2) * 1.0001)
  mesh = ax.pcolormesh(diagram.weight_variances, diagram.bias_variances, xi, shading="nearest",
                       norm=norm, cmap="viridis")
  fig.colorbar(mesh, ax=ax, label=r"correlation depth scale $\xi_c$ (layers)")
  ax.plot(diagram.critical_weight_variances, diagram.bias_variances, "w-", lw=2,
          label=r"critical line $\chi_1 = 1$")
  if point is not None:
    ax.plot(*point, "r*", ms=12, label="chosen")
  ax.set_xlim(diagram.weight_variances.min(), diagram.weight_variances.max())
  ax.set_ylim(diagram.bias_variances.min(), diagram.bias_variances.max())
  ax.set_xlabel(r"weight variance $\sigma_w^2$")
  ax.set_ylabel(r"bias variance $\sigma_b^2$")
  ax.set_title(title or "mean-field phase diagram (ordered: left, chaotic: right)")
  ax.legend(loc="upper left", fontsize=8)
  fig.tight_layout()
  if path is not None:
    fig.savefig(path, dpi=120)
    plt.close(fig)
  return fig


def _parse_param(text: str) -> tuple[str, float]:
  name, sep, value = text.partition("=")
  if not sep or not name.isidentifier():
    raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
  try:
    return name, float(value)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected a number after '=', got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
  """``jaxinit theory``: mean-field summary and phase diagram for one activation.

  Prints ``q*``, ``c*``, ``chi1``, ``xi_c``, the critical weight variance and
  the phase at ``(--weight-variance, --bias-variance)`` (the weight variance
  defaults to the critical one), and writes ``phase_diagram_<activation>.png``
  into ``--out``. Runs in float64.

  Args:
    argv: command-line arguments (without the program name); ``None`` for ``sys.argv``.

  Returns:
    The exit status: 0, or 2 for invalid arguments.

  Examples:
    >>> from jaxinit import theory
    >>> theory.main(["--activation", "relu", "--bias-variance", "0", "--no-plot"])
    activation                relu
    bias variance             0
    weight variance           2 (critical)
    q*                        1
    c*                        1
    chi1                      1
    xi_c                      inf
    critical weight variance  2
    max trainable depth       inf
    phase                     critical
    0
  """
  parser = argparse.ArgumentParser(
      prog="jaxinit theory",
      description="Mean-field signal propagation (Poole et al. 2016, Schoenholz et al. 2017).")
  parser.add_argument("--activation", default="tanh",
                      help=f"one of {', '.join(sorted(ACTIVATIONS))} (default tanh)")
  parser.add_argument("--param", action="append", type=_parse_param, default=[],
                      metavar="NAME=VALUE", help="activation parameter, e.g. negative_slope=0.1")
  parser.add_argument("--bias-variance", type=float, default=0.05)
  parser.add_argument("--weight-variance", type=float, default=None,
                      help="default: the critical weight variance")
  parser.add_argument("--out", default=".", help="directory for the phase-diagram PNG")
  parser.add_argument("--grid", type=int, default=31, help="grid points per axis")
  parser.add_argument("--max-weight-variance", type=float, default=4.0)
  parser.add_argument("--max-bias-variance", type=float, default=None,
                      help="default: max(0.5, 2 x --bias-variance)")
  parser.add_argument("--no-plot", action="store_true", help="skip the phase diagram")
  args = parser.parse_args(argv)
  params = dict(args.param)
  try:
    with jax.enable_x64(True):
      _check_nonnegative("--bias-variance", args.bias_variance)
      sb = args.bias_variance
      crit = float(critical_weight_variance(args.activation, sb, **params))
      if args.weight_variance is None and not math.isfinite(crit):
        raise ValueError(f"{args.activation} has no order-to-chaos transition below "
                         f"2^64 at bias variance {sb}; pass --weight-variance")
      sw = crit if args.weight_variance is None else args.weight_variance
      _check_nonnegative("--weight-variance", sw)
      mf = mean_field(args.activation, sw, sb, **params)
      kind = phase(args.activation, sw, sb, **params)
      rows = [
          ("activation", args.activation + "".join(f" {k}={v:g}" for k, v in params.items())),
          ("bias variance", f"{sb:.6g}"),
          ("weight variance", f"{sw:.6g}" + (" (critical)" if args.weight_variance is None
                                             else "")),
          ("q*", f"{float(mf.q_star):.6g}"),
          ("c*", f"{float(mf.c_star):.6g}"),
          ("chi1", f"{float(mf.chi1):.6g}"),
          ("xi_c", f"{float(mf.xi_c):.6g}"),
          ("critical weight variance", f"{crit:.6g}"),
          ("max trainable depth", f"{6 * float(mf.xi_c):.6g}"),
          ("phase", kind),
      ]
      if not args.no_plot:
        if args.grid < 2:
          raise ValueError(f"--grid must be >= 2, got {args.grid}")
        max_sb = args.max_bias_variance or max(0.5, 2 * sb)
        sws = np.linspace(args.max_weight_variance / args.grid, args.max_weight_variance,
                          args.grid)
        sbs = np.linspace(0.0, max_sb, args.grid)
        diagram = phase_diagram(args.activation, sws, sbs, **params)
        os.makedirs(args.out, exist_ok=True)
        path = os.path.join(args.out, f"phase_diagram_{args.activation}.png")
        plot_phase_diagram(diagram, path, point=(sw, sb),
                           title=f"{args.activation}: correlation depth scale")
        rows.append(("phase diagram", path))
  except (ValueError, TypeError) as err:
    print(f"jaxinit theory: error: {err}", file=sys.stderr)
    return 2
  width = max(len(name) for name, _ in rows) + 2
  for name, value in rows:
    print(f"{name:<{width}}{value}")
  return 0


__all__ = [
    "DEFAULT_NODES", "DEFAULT_NODES_2D", "PHASES", "JacobianMoments", "LayerPrediction",
    "MeanField", "PhaseDiagram", "chi1", "chi_c", "correlation_depth_scale",
    "correlation_map", "covariance_map", "critical_line", "critical_weight_variance",
    "fixed_point_correlation", "fixed_point_length", "gradient_depth_scale",
    "jacobian_spectrum_moments", "length_depth_scale", "length_map", "length_slope", "main",
    "max_trainable_depth", "mean_field", "phase", "phase_diagram", "plot_phase_diagram",
    "predict_layers", "predict_layers_from_inputs",
]


if __name__ == "__main__":
  sys.exit(main())
