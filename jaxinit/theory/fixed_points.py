r"""Mean-field fixed points, depth scales and the order-to-chaos transition.

* ``q*``: the fixed point of the length map reached from ``q0``;
* ``c*``: the stable fixed point of the correlation map at ``q*`` (1 unless
  chaotic);
* ``chi1 = sw E[phi'(sqrt(q*) z)^2]`` (the C-map's slope at ``c = 1``),
  ``chi_c = sw E[phi'(u1) phi'(u2)]`` at ``(q*, c*)`` and the depth scales
  ``xi_q = -1 / ln L'(q*)``, ``xi_c = -1 / ln chi_c``, ``xi_grad = -1 / ln chi1``
  (Schoenholz et al. 2017, "Deep information propagation");
* the critical line ``chi1(sw, sb) = 1``.

Fixed points are found by root finding, not iteration (which slows to a crawl
near the critical line): a bracket grown geometrically, then safeguarded
Newton steps that fall back to bisection (:func:`jaxinit.theory._engine.find_root`).
Concrete calls solve in float64 on the host whatever ``jax_enable_x64`` says.
Each root is differentiable by the implicit function theorem (a
:func:`jax.custom_jvp` around the solver; forward and reverse mode): for
``g(q) = L(q) - q``, ``dq* = (E[phi^2] dsw + dsb) / (1 - L'(q*))``; for
``c*``, ``dc* = dC / (1 - chi_c)`` with ``dC`` the map's change at fixed
``c``; on the critical line ``dsw_c/dsb = -(dchi1/dsb) / (dchi1/dsw)``. At a
transition (``L'(q*) = 1``, ``chi_c = 1``) the derivative does not exist and
comes out infinite.

Where ``q`` grows without bound (the large-``q`` slope of the length map,
``sw lim E[phi(sqrt(q) z)^2] / q``, is above 1; ReLU: ``sw > 2``, or ``sw = 2``
with ``sb > 0``) ``q* = inf``, ``c*``, ``chi_c`` and the depth scales are
undefined (``nan``), ``chi1`` is its large-``q`` limit, and :func:`phase`
says ``"unbounded"``. Some activations (GELU, SiLU) have a stable small
fixed point and an unstable large one: ``q*`` then depends on ``q0``, and as
``sw`` grows the stable one can be lost before ``chi1`` reaches 1, so that
``chi1`` jumps across 1 where ``q*`` jumps to infinity. That is no critical
point: :func:`transition` reports the jump and :func:`critical_weight_variance`
is ``nan`` there.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit.theory import _engine as eng
from jaxinit.theory import kernels as kern
from jaxinit.theory._engine import DEFAULT_NODES, DEFAULT_NODES_2D, Q_MAX, Q_MIN
from jaxinit.theory.kernels import ActivationLike, Kernels

Array = jax.Array

_GROW_STEPS = 50     # q* bracket grows 4x per step: up to 4^50 ~ 1e30 q0
_ROOT_STEPS = 64     # then at most 64 safeguarded Newton / bisection steps
_CRIT_LOG2_RANGE = 64.0   # critical sw searched in [2^-64, 2^64] ...
_CRIT_STEPS = 64          # ... with <= 64 doublings, then 64 halvings of log2 sw
_JUMP = 1e-3         # chi1 changing by more across the final bracket: a jump, not a crossing

PHASES = ("ordered", "critical", "chaotic", "unbounded")
"""Values of :func:`phase`."""


# ----------------------------------------------------------------------------
# Scalar solvers with implicit derivatives.

def _second_moment(k: Kernels, q: Array) -> Array:
  return k.moment(lambda u: k.phi(u) ** 2, q)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def q_star(k: Kernels, sw: Array, sb: Array, q0: Array) -> Array:
  """Fixed point of the length map reached from ``q0``; ``inf`` if ``q`` diverges.

  ``g(q) = L(q) - q`` has ``g(0) = sw phi(0)^2 + sb >= 0``, so ``[0, inf)``
  brackets the root; :func:`~jaxinit.theory._engine.find_root` grows the
  iterate 4x until ``g < 0`` (the iteration from ``q0`` climbs) and then
  homes in. Where every ``q`` is a fixed point (``g = 0`` and ``L' = 1`` at
  ``q0``: linear or ReLU networks exactly at criticality, ``sb = 0``) it
  keeps ``q0``.
  """
  def g(q):
    length, slope, _, _ = k.stats(sw, sb, q)
    return length - q, slope - 1, ()

  zero = jnp.zeros_like(q0)
  hi, root, g0, _ = eng.find_root(g, zero, jnp.full_like(q0, jnp.inf), q0, (),
                                  _GROW_STEPS + _ROOT_STEPS)
  return jnp.where(_neutral(k, sw, sb, q0, g0), q0, jnp.where(jnp.isfinite(hi), root, jnp.inf))


def _neutral(k: Kernels, sw: Array, sb: Array, q0: Array, g0: Array) -> Array:
  eps = jnp.finfo(q0.dtype).eps
  slope = k.stats(sw, sb, q0)[1]
  return ((jnp.abs(g0) <= 64 * eps * (2 * q0 + jnp.abs(g0)))
          & (jnp.abs(slope - 1) <= 1e3 * jnp.sqrt(eps)))


@q_star.defjvp
def _q_star_jvp(k: Kernels, primals: tuple[Array, ...], tangents: tuple[Array, ...]):
  sw, sb, q0 = primals
  t_sw, t_sb, t_q0 = tangents
  q = q_star(k, sw, sb, q0)
  finite = jnp.isfinite(q)
  qs = jnp.where(finite, q, 1.0)
  slope = k.stats(sw, sb, qs)[1]
  den = jnp.where(finite, 1 - slope, 1.0)
  nan = jnp.full_like(q, jnp.nan)
  d_sw = jnp.where(finite, _second_moment(k, qs) / den, nan)
  d_sb = jnp.where(finite, 1 / den, nan)
  neutral = (q == q0) & (jnp.abs(1 - slope) <= 1e3 * jnp.sqrt(jnp.finfo(q.dtype).eps))
  return q, jnp.where(neutral, t_q0, d_sw * t_sw + d_sb * t_sb)


def _correlation_step(k: Kernels, sw: Array, sb: Array, q: Array, c: Array) -> Array:
  return (sw * k.cross(q, q, q * c) + sb) / q


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def c_star(k: Kernels, sw: Array, sb: Array, q: Array, chi1: Array) -> Array:
  """``c*`` at ``q`` (finite, ``> 0``): 1 unless chaotic; the root of ``C(c) = c`` in ``[-1, 1)``.

  Chaotic means ``chi1 > 1`` by more than rounding. Then ``g(c) = C(c) - c``
  is ``>= 0`` at ``c = -1`` (``|E[phi(u) phi(-u)]| <= E[phi^2]``) and ``< 0``
  just below ``c = 1`` (slope ``chi1 > 1`` at the trivial root), so
  ``[-1, 1)`` brackets ``c*``; safeguarded Newton with the slope
  ``C'(c) = sw E[phi'(u1) phi'(u2)]`` (Price's theorem) never evaluates
  ``c = 1``.
  """
  chaotic = chi1 > 1 + 4 * jnp.finfo(q.dtype).eps

  def g(c):
    value = _correlation_step(k, sw, sb, q, c)
    slope = sw * k.cross_slope(q, q, q * c)
    return value - c, slope - 1, ()

  one = jnp.ones_like(q)
  _, root, _, _ = eng.find_root(g, -one, one, 0 * one, (), _ROOT_STEPS, scale=1.0,
                                done=~chaotic)
  return jnp.where(chaotic, root, one)


@c_star.defjvp
def _c_star_jvp(k: Kernels, primals: tuple[Array, ...], tangents: tuple[Array, ...]):
  sw, sb, q, chi1 = primals
  t_sw, t_sb, t_q, _ = tangents
  c = c_star(k, sw, sb, q, chi1)
  moving = (c < 1) & jnp.isfinite(c)
  cs = jnp.where(moving, c, 0.0)
  _, d_map = jax.jvp(lambda a, b, qq: _correlation_step(k, a, b, qq, cs), (sw, sb, q),
                     (t_sw, t_sb, t_q))
  chi_c = sw * k.cross_slope(q, q, q * cs)
  return c, jnp.where(moving, d_map / jnp.where(moving, 1 - chi_c, 1.0), 0.0)


def lengths(k: Kernels, sw: Array, sb: Array, q0: Array) -> tuple[Array, ...]:
  """The 1-D quantities ``(q*, chi1, xi_q, xi_grad)`` (no correlation map: compiles fast)."""
  q = q_star(k, sw, sb, q0)
  _, slope_q, e_d2, _ = k.stats(sw, sb, q)
  chi1 = sw * e_d2
  xi_q = jnp.where(jnp.isfinite(q), eng.safe_log_scale(slope_q), jnp.nan)
  return q, chi1, xi_q, eng.safe_log_scale(chi1)


def summary(k: Kernels, sw: Array, sb: Array, q0: Array) -> tuple[Array, ...]:
  """The fields of :class:`MeanField`; correlation ones ``nan`` where ``q* = inf``."""
  q, chi1, xi_q, xi_grad = lengths(k, sw, sb, q0)
  finite = jnp.isfinite(q)
  qc = jnp.where(finite, jnp.clip(q, Q_MIN, Q_MAX), 1.0)
  c = c_star(k, sw, sb, qc, chi1)
  moving = (c < 1) & jnp.isfinite(c)
  chi_c = jnp.where(moving, sw * k.cross_slope(qc, qc, qc * jnp.where(moving, c, 0.0)), chi1)
  chi_c = jnp.where(jnp.isnan(c), jnp.nan, chi_c)
  nan = jnp.full_like(q, jnp.nan)
  c, chi_c = (jnp.where(finite, v, nan) for v in (c, chi_c))
  return q, c, chi1, chi_c, xi_q, eng.safe_log_scale(chi_c), xi_grad


def _chi1_at(k: Kernels, sw: Array, sb: Array, q0: Array) -> tuple[Array, Array]:
  q = q_star(k, sw, sb, q0)
  return sw * k.stats(sw, sb, q)[2], q


def bracket_transition(k: Kernels, sb: Array, q0: Array) -> tuple[Array, ...]:
  """Bisection on ``t = log2 sw`` for the smallest ``sw`` with ``chi1 > 1``.

  One loop: while no ``t`` with ``chi1 > 1`` is known, probe ``t = 0, 1, 2,
  ...`` (``chi1 -> 0`` as ``sw -> 0``, so ``t = -64`` is below the line); then
  bisect. The first crossing above ``sw = 1`` is found even where quadrature
  underflows at absurd ``sw`` (``chi1`` of tanh grows like ``sqrt(sw)`` but
  its integrand narrows to nothing between nodes).

  Returns:
    ``(sw_below, sw_above, chi1_below, chi1_above, q_below, q_above)`` at the
    ends of the final bracket; ``sw_above = inf`` if ``chi1 <= 1`` up to
    ``sw = 2^64``.
  """
  def step(_, state):
    lo, hi, t = state
    above = _chi1_at(k, jnp.exp2(t), sb, q0)[0] > 1
    lo = jnp.where(above, lo, t)
    hi = jnp.where(above, t, hi)
    return lo, hi, jnp.where(jnp.isfinite(hi), (lo + hi) / 2, t + 1)

  top = jnp.asarray(_CRIT_LOG2_RANGE, sb.dtype)
  state = (-top, jnp.full((), jnp.inf, sb.dtype), jnp.zeros((), sb.dtype))
  lo, hi, _ = jax.lax.fori_loop(0, 2 * _CRIT_STEPS, step, state)
  sw_lo, sw_hi = jnp.exp2(lo), jnp.exp2(hi)
  chi_lo, q_lo = _chi1_at(k, sw_lo, sb, q0)
  chi_hi, q_hi = _chi1_at(k, jnp.where(jnp.isfinite(hi), sw_hi, 1.0), sb, q0)
  return sw_lo, sw_hi, chi_lo, chi_hi, q_lo, q_hi


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def critical(k: Kernels, sb: Array, q0: Array) -> Array:
  """``sw_c(sb)``: where ``chi1`` crosses 1 continuously; ``nan`` for none or a jump.

  The upper end of the final bracket: the smallest float (to the bisection's
  resolution) with ``chi1 > 1``, so that for ReLU with ``sb > 0`` it is 2 and
  ``q*`` there is unbounded rather than a huge finite number.
  """
  sw_lo, sw_hi, chi_lo, chi_hi, _, _ = jax.lax.stop_gradient(bracket_transition(k, sb, q0))
  crossing = jnp.isfinite(sw_hi) & (chi_hi - chi_lo <= _JUMP)
  return jnp.where(crossing, sw_hi, jnp.nan)


@critical.defjvp
def _critical_jvp(k: Kernels, primals: tuple[Array, Array], tangents: tuple[Array, Array]):
  sb, q0 = primals
  t_sb, _ = tangents
  sw = critical(k, sb, q0)
  ok = jnp.isfinite(sw)
  sws = jnp.where(ok, sw, 1.0)
  h = lambda a, b: _chi1_at(k, a, b, q0)[0]  # noqa: E731
  _, h_sw = jax.jvp(h, (sws, sb), (jnp.ones_like(sws), jnp.zeros_like(sb)))
  _, h_sb = jax.jvp(h, (sws, sb), (jnp.zeros_like(sws), jnp.ones_like(sb)))
  return sw, jnp.where(ok, -h_sb / h_sw, jnp.nan) * t_sb


def large_q_growth(k: Kernels) -> Array:
  """``lim_{q -> inf} E[phi(sqrt(q) z)^2] / q`` (at ``q = 1e30``): 1/2 for ReLU, 0 for tanh."""
  q = jnp.asarray(Q_MAX, eng.float_dtype())
  return _second_moment(k, q) / q


class Solver:
  """The vectorized solvers of one activation's :class:`~jaxinit.theory.kernels.Kernels`."""

  def __init__(self, k: Kernels):
    self.kernels = k
    self.vlengths = eng.Vectorized(functools.partial(lengths, k))
    self.vsummary = eng.Vectorized(functools.partial(summary, k))
    self.vcritical = eng.Vectorized(functools.partial(critical, k))
    self.vtransition = eng.Vectorized(functools.partial(bracket_transition, k))
    self.vgrowth = eng.Vectorized(lambda x: large_q_growth(k) + 0 * x)


@functools.lru_cache(maxsize=64)
def solver(k: Kernels) -> Solver:
  """The (cached) :class:`Solver` of ``k``."""
  return Solver(k)


def _solver(activation: ActivationLike, params: dict[str, Any], num_nodes: int = DEFAULT_NODES,
            num_nodes_2d: int = DEFAULT_NODES_2D) -> Solver:
  return solver(kern.kernels(activation, params, num_nodes, num_nodes_2d))


# ----------------------------------------------------------------------------
# Public API.

class MeanField(NamedTuple):
  """Mean-field quantities at one ``(weight_variance, bias_variance)`` (see module doc)."""
  q_star: Array
  """Fixed point of the length map (``inf``: unbounded)."""
  c_star: Array
  """Stable fixed point of the correlation map (1 unless chaotic; ``nan`` if ``q*`` is not finite)."""
  chi1: Array
  """``sw E[phi'(sqrt(q*) z)^2]`` (the large-``q`` limit where ``q* = inf``)."""
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
  ``chi1`` is then its ``q -> inf`` limit. Differentiable in the variances
  (implicit differentiation through ``q*`` and ``c*``).

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
  sw, sb = kern.variances(weight_variance, bias_variance)
  q0 = eng.nonnegative("q0", q0)
  return MeanField(*_solver(activation, params, num_nodes, num_nodes_2d).vsummary(sw, sb, q0))


def _one_d(activation: ActivationLike, weight_variance: Any, bias_variance: Any,
           num_nodes: int, params: dict[str, Any], index: int, q0: Any = None) -> Array:
  """Field ``index`` of :func:`lengths`: 0 ``q*``, 1 ``chi1``, 2 ``xi_q``, 3 ``xi_grad``."""
  sw, sb = kern.variances(weight_variance, bias_variance)
  q0 = eng.one() if q0 is None else q0
  return _solver(activation, params, num_nodes).vlengths(sw, sb, q0)[index]


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
  Differentiable: ``dq* = (E[phi(sqrt(q*) z)^2] dsw + dsb) / (1 - L'(q*))``.

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
  q0 = eng.nonnegative("q0", q0)
  if not eng.is_traced(q0) and np.any(q0 <= 0):
    raise ValueError(f"q0 must be > 0, got {q0!r}")
  return _one_d(activation, weight_variance, bias_variance, num_nodes, params, 0, q0)


def chi1(activation: ActivationLike, weight_variance: Any, bias_variance: Any, *,
         num_nodes: int = DEFAULT_NODES, **params: Any) -> Array:
  r"""``chi1 = sw E[phi'(sqrt(q*) z)^2]`` (Poole et al. 2016; Schoenholz et al. 2017, eq. (7)).

  The mean squared singular value of one layer's input-output Jacobian at
  the fixed point: ``< 1`` ordered, ``= 1`` critical, ``> 1`` chaotic. Where
  ``q*`` is unbounded, the large-``q`` limit.

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
  return _one_d(activation, weight_variance, bias_variance, num_nodes, params, 1)


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
  return _one_d(activation, weight_variance, bias_variance, num_nodes, params, 2)


def correlation_depth_scale(activation: ActivationLike, weight_variance: Any,
                            bias_variance: Any, *, num_nodes: int = DEFAULT_NODES,
                            num_nodes_2d: int = DEFAULT_NODES_2D, **params: Any) -> Array:
  r"""``xi_c = -1 / ln chi_c`` (Schoenholz et al. 2017, eq. (9)).

  Correlations approach ``c*`` as ``exp(-l / xi_c)``; ``inf`` on the
  critical line, i.e. wherever ``chi_c`` is 1 to within 4 ulp (so the
  largest finite values are about ``1 / (4 eps)``: 6e14 in float64, 2e6 in
  float32). The same convention holds for every depth scale here. ``nan``
  where ``q*`` is unbounded.

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
  return _one_d(activation, weight_variance, bias_variance, num_nodes, params, 3)


def max_trainable_depth(activation: ActivationLike, weight_variance: Any, bias_variance: Any,
                        *, num_nodes: int = DEFAULT_NODES,
                        num_nodes_2d: int = DEFAULT_NODES_2D, **params: Any) -> Array:
  r"""``6 xi_c``: Schoenholz et al. 2017's empirical bound on the trainable depth.

  Networks deeper than about ``6 xi_c`` did not train in their experiments
  (MNIST, CIFAR-10; fig. 5); it diverges on the critical line, and is
  ``nan`` where ``q*`` is unbounded.

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
  return 6.0 * xi_c


def phase(activation: ActivationLike, weight_variance: Any, bias_variance: Any, *,
          tol: float = 1e-5, num_nodes: int = DEFAULT_NODES, **params: Any) -> Any:
  r"""``"ordered"`` (``chi1 < 1 - tol``), ``"critical"``, ``"chaotic"`` (``chi1 > 1 + tol``), or ``"unbounded"``.

  ``"unbounded"`` where ``q*`` is infinite: the signal's length grows
  without limit with depth, so there is no fixed point whose stability the
  other three describe (ReLU with ``sw > 2``, or ``sw = 2`` and ``sb > 0``).
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
    ['ordered', 'critical', 'unbounded']
  """
  if eng.is_traced(weight_variance, bias_variance):
    raise TypeError("phase returns strings and cannot be traced; use chi1 under jit")
  sw, sb = kern.variances(weight_variance, bias_variance)
  out = _solver(activation, params, num_nodes).vlengths.numpy(sw, sb, eng.one())
  q, x = np.asarray(out[0]), np.asarray(out[1])
  codes = np.where(x < 1 - tol, 0, np.where(x > 1 + tol, 2, 1))
  codes = np.where(np.isinf(q), 3, codes)
  if codes.ndim == 0:
    return PHASES[int(codes)]
  return np.asarray(PHASES, dtype=object)[codes]


def critical_weight_variance(activation: ActivationLike, bias_variance: Any, *,
                             num_nodes: int = DEFAULT_NODES, **params: Any) -> Array:
  r"""The weight variance on the order-to-chaos line: ``chi1(sw, sb) = 1`` at ``q*(sw, sb)``.

  Doubling from ``sw = 1`` until ``chi1 > 1``, then bisection on
  ``log2 sw`` (each step solving for ``q*`` from ``q0 = 1``), in float64 for
  concrete input. Closed forms: linear 1, ReLU 2 for every ``sb``
  (``chi1 = sw / 2``; with ``sb > 0``, ``q*`` diverges there), tanh 1 at
  ``sb = 0``. ``nan`` where there is no critical point: ``chi1`` stays below
  1 up to ``sw = 2^64``, or it jumps across 1 where ``q*`` jumps to infinity
  (GELU, SiLU at small ``sb``; :func:`transition` says where). Differentiable
  in ``sb``: ``dsw_c/dsb = -(dchi1/dsb) / (dchi1/dsw)`` along the line.

  Accuracy: rounding of ``chi1`` where ``chi1 - 1`` is linear in ``sw -
  sw_c`` (any ``sb > 0``; ReLU-like at ``sb = 0``). For odd activations at
  ``sb = 0`` (tanh, erf), ``chi1 - 1`` grows only like ``(sw - sw_c)^2`` above
  the line (``q*`` leaves 0 there), so the line is resolved to about
  ``sqrt(eps)`` of float64, 3e-8 for tanh: float32 results are exact to
  rounding.

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
    >>> float(theory.critical_weight_variance("tanh", 0.0))
    1.0
  """
  sb = eng.nonnegative("bias_variance", bias_variance)
  return _solver(activation, params, num_nodes).vcritical(sb, eng.one())


def critical_line(activation: ActivationLike, bias_variances: Any, *,
                  num_nodes: int = DEFAULT_NODES, **params: Any) -> Array:
  r"""The order-to-chaos line ``sw_c(sb)`` at each bias variance (one vectorized call).

  Args:
    activation: name or traceable elementwise callable.
    bias_variances: 1-D array of ``sb``.
    num_nodes: quadrature nodes per half-line.
    **params: bound to the activation.

  Returns:
    Critical weight variances, one per bias variance (``nan``: none, see
    :func:`critical_weight_variance`).

  Examples:
    >>> from jaxinit import theory
    >>> [round(float(v), 3) for v in theory.critical_line("tanh", [0.0, 0.05])]
    [1.0, 1.761]
  """
  sb = eng.nonnegative("bias_variances", bias_variances)
  if np.ndim(sb) != 1:
    raise ValueError(f"bias_variances must be 1-D, got shape {np.shape(sb)}")
  return critical_weight_variance(activation, sb, num_nodes=num_nodes, **params)


class Transition(NamedTuple):
  """Where ``chi1`` first exceeds 1 as ``sw`` grows at fixed ``sb`` (see :func:`transition`)."""
  critical_weight_variance: Array
  """``sw_c`` where ``chi1`` crosses 1 continuously, else ``nan``."""
  weight_variance: Array
  """Where ``chi1`` first exceeds 1 (crossing or jump); ``inf`` if it never does."""
  chi1_below: Array
  """``chi1`` just below ``weight_variance``."""
  chi1_above: Array
  """``chi1`` just above it."""
  q_star_below: Array
  """``q*`` just below it."""
  q_star_above: Array
  """``q*`` just above it (``inf``: unbounded)."""
  unbounded_weight_variance: Array
  """``1 / lim_{q -> inf} E[phi(sqrt(q) z)^2] / q``: above it ``q`` grows without limit from
  large enough ``q0`` (2 for ReLU; ``inf`` for bounded activations)."""


def transition(activation: ActivationLike, bias_variance: Any, *,
               num_nodes: int = DEFAULT_NODES, **params: Any) -> Transition:
  r"""Where and how the order-to-chaos transition happens at ``sb`` (for reports).

  A critical point needs ``chi1`` to cross 1 continuously. For GELU and SiLU
  at small ``sb`` it does not: the stable fixed point ``q*`` reached from
  ``q0 = 1`` is lost (an unstable fixed point passes ``q0``) while ``chi1``
  is still below 1, and ``chi1`` jumps to its large-``q`` limit above 1.
  ``chi1_below``/``chi1_above`` and ``q_star_below``/``q_star_above`` tell
  the two apart.

  Args:
    activation: name or traceable elementwise callable.
    bias_variance: ``sb`` (concrete scalar or array).
    num_nodes: quadrature nodes per half-line.
    **params: bound to the activation.

  Returns:
    A :class:`Transition` of arrays shaped like ``bias_variance``.

  Examples:
    >>> from jaxinit import theory
    >>> t = theory.transition("gelu", 0.05)
    >>> float(t.critical_weight_variance), round(float(t.weight_variance), 3)
    (nan, 2.234)
    >>> round(float(t.chi1_below), 2), round(float(t.chi1_above), 2), float(t.q_star_above)
    (0.73, 1.12, inf)
  """
  if eng.is_traced(bias_variance):
    raise TypeError("transition reports on concrete values and cannot be traced; use "
                    "critical_weight_variance under jit")
  sb = eng.nonnegative("bias_variance", bias_variance)
  s = _solver(activation, params, num_nodes)
  sw_lo, sw_hi, chi_lo, chi_hi, q_lo, q_hi = (np.asarray(v, np.float64) for v in
                                              s.vtransition(sb, eng.one()))
  crossing = np.isfinite(sw_hi) & (chi_hi - chi_lo <= _JUMP)
  where = sw_hi
  growth = np.asarray(s.vgrowth(np.zeros_like(sb)), np.float64)
  with np.errstate(divide="ignore"):
    unbounded = np.where(growth > 2.0**-_CRIT_LOG2_RANGE, 1 / growth, np.inf)
  return Transition(*(eng.output(v) for v in (
      np.where(crossing, where, np.nan), where, chi_lo,
      np.where(np.isfinite(sw_hi), chi_hi, np.nan), q_lo,
      np.where(np.isfinite(sw_hi), q_hi, np.nan), unbounded)))
