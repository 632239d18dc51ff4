"""Derivatives of every theory map, boundaries included, and of the fixed points.

Closed forms: the ReLU arc-cosine kernel (Cho & Saul 2009), whose C-map at
``sw = 2, sb = 0`` has slope ``(pi - arccos c) / pi`` and curvature
``1 / (pi sqrt(1 - c^2))``, and the erf arcsine kernel (Williams 1997),
differentiated exactly by JAX in float64. The grids include ``c = -1`` and
``c = 1``, where differentiating the quadrature rule itself gives ``-inf`` or
NaN. Fixed points (``q*``, ``c*``, the critical line, ``xi_c``) are checked
against central finite differences of the solver's values.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from jaxinit import theory

C_GRID = np.array([-1.0, -0.999999, -0.9, -0.5, 0.0, 0.3, 0.9, 0.999999, 1.0])


@pytest.fixture(scope="module", autouse=True)
def _float64():
  with jax.enable_x64(True):
    yield


def relu_slope(c):
  return (np.pi - np.arccos(c)) / np.pi


def erf_kernel(a, q11, q22, q12):
  """Williams 1997: E[erf(a u1) erf(a u2)] (jax.numpy, to be differentiated exactly)."""
  k = 2 * a * a
  return 2 / jnp.pi * jnp.arcsin(k * q12 / jnp.sqrt((1 + k * q11) * (1 + k * q22)))


def test_relu_c_map_slope_and_curvature_on_a_grid_with_endpoints():
  c_map = lambda c: theory.correlation_map("relu", 2.0, 0.0, c, q=1.0)  # noqa: E731
  reverse = jax.vmap(jax.grad(c_map))(C_GRID)
  forward = jax.vmap(lambda c: jax.jvp(c_map, (c,), (1.0,))[1])(C_GRID)
  np.testing.assert_allclose(reverse, relu_slope(C_GRID), atol=1e-12)
  np.testing.assert_allclose(forward, relu_slope(C_GRID), atol=1e-12)
  assert reverse[0] == 0.0 or abs(reverse[0]) < 1e-15 and abs(reverse[-1] - 1) < 1e-15
  # Second derivative: the kink rays move with c (the jump of relu' contributes).
  curvature = jax.vmap(jax.grad(jax.grad(c_map)))(C_GRID)
  inner = slice(1, -1)
  np.testing.assert_allclose(curvature[inner], 1 / (np.pi * np.sqrt(1 - C_GRID[inner] ** 2)),
                             rtol=1e-7)
  assert curvature[0] == np.inf and curvature[-1] == np.inf    # 1 / (pi sqrt(1 - c^2))


def test_erf_covariance_map_derivatives_match_the_arcsine_kernel():
  a, sw, sb = 1.3, 1.7, 0.2
  phi = lambda x: jax.scipy.special.erf(a * x)  # noqa: E731
  q11, q22 = 0.6, 1.9
  q12 = C_GRID * math.sqrt(q11 * q22)

  def ours(q11, q22, q12):
    return theory.covariance_map(phi, sw, sb, q11, q22, q12)[2]

  def exact(q11, q22, q12):
    return sw * erf_kernel(a, q11, q22, q12) + sb

  for f in (ours, exact):
    f.grads = jax.vmap(jax.grad(f, argnums=(0, 1, 2)), (None, None, 0))(q11, q22, q12)
  for mine, theirs in zip(ours.grads, exact.grads):
    np.testing.assert_allclose(mine, theirs, rtol=1e-9, atol=1e-12)
  # Forward mode along a direction mixing all three.
  tangent = (0.3, -0.2, 0.5)
  for q in q12[[0, 4, -1]]:
    mine = jax.jvp(ours, (q11, q22, q), tangent)[1]
    theirs = jax.jvp(exact, (q11, q22, q), tangent)[1]
    assert abs(mine - theirs) < 1e-10, (q, mine, theirs)


def test_tanh_c_map_slope_at_one_is_chi1_and_covariance_gradient_is_finite():
  sw, sb = 1.5, 0.05
  slope = jax.grad(lambda c: theory.correlation_map("tanh", sw, sb, c))(1.0)
  assert abs(slope - theory.chi1("tanh", sw, sb)) < 1e-12
  # d q12' / d q12 at q12 = q11 = q22 is sw E[phi'(u)^2] (the issue's -inf).
  q = 1.3
  grad = jax.grad(lambda q12: theory.covariance_map("tanh", sw, sb, q, q, q12)[2])(q)
  expected = sw * integrate.quad(lambda z: (1 - np.tanh(np.sqrt(q) * z) ** 2) ** 2
                                 * np.exp(-z * z / 2) / np.sqrt(2 * np.pi), -np.inf, np.inf,
                                 epsabs=1e-14, epsrel=1e-13)[0]
  assert abs(grad - expected) < 1e-12
  # and the full gradient there is finite in every argument
  g = jax.grad(lambda *k: theory.covariance_map("tanh", sw, sb, *k)[2], argnums=(0, 1, 2))(
      q, q, q)
  assert np.all(np.isfinite(g))


def test_length_map_is_differentiable_at_zero():
  """The one-sided derivative at q = 0: sw phi'(0)^2 for tanh (sb does not matter)."""
  for sw in (0.5, 2.0):
    assert abs(jax.grad(lambda q: theory.length_map("tanh", sw, 0.3, q))(0.0) - sw) < 1e-9
    assert abs(jax.grad(lambda q: theory.length_map("relu", sw, 0.3, q))(0.0) - sw / 2) < 1e-12


def _central(f, x, h):
  return (f(x + h) - f(x - h)) / (2 * h)


@pytest.mark.parametrize("name, fn, point, rtol", [
    ("q*", lambda sw, sb: theory.fixed_point_length("tanh", sw, sb), (1.5, 0.2), 1e-8),
    ("c*", lambda sw, sb: theory.fixed_point_correlation("tanh", sw, sb), (3.0, 0.1), 1e-7),
    ("xi_c", lambda sw, sb: theory.correlation_depth_scale("tanh", sw, sb), (3.0, 0.05), 1e-7),
    ("chi1", lambda sw, sb: theory.chi1("erf", sw, sb), (1.2, 0.1), 1e-8),
    ("sw_c", lambda sw, sb: theory.critical_weight_variance("tanh", sb), (1.0, 0.05), 1e-7),
])
def test_fixed_points_differentiate_implicitly(name, fn, point, rtol):
  """Reverse and forward mode through the root finders against central differences."""
  sw, sb = point
  h = 1e-5
  expected = (_central(lambda x: fn(x, sb), sw, h), _central(lambda x: fn(sw, x), sb, h))
  reverse = jax.grad(fn, argnums=(0, 1))(sw, sb)
  forward = jax.jvp(fn, point, (0.3, 0.7))[1]
  for r, e in zip(reverse, expected):
    assert abs(r - e) <= rtol * abs(e) + 1e-12, (name, reverse, expected)
  assert abs(forward - (0.3 * reverse[0] + 0.7 * reverse[1])) <= 1e-12 * abs(forward) + 1e-15


def test_fixed_point_gradients_under_jit_and_vmap():
  sws = jnp.array([0.8, 1.5, 2.5, 4.0])
  grads = jax.jit(jax.vmap(jax.grad(lambda sw: theory.mean_field("tanh", sw, 0.05).q_star)))(sws)
  expected = [_central(lambda s: theory.fixed_point_length("tanh", s, 0.05), float(s), 1e-5)
              for s in sws]
  np.testing.assert_allclose(grads, expected, rtol=1e-7)
  # Ordered phase: c* = 1 is constant, so its gradient is 0; chaotic: not.
  dc = jax.vmap(jax.grad(lambda sw: theory.mean_field("tanh", sw, 0.05).c_star))(sws)
  assert dc[0] == 0 and dc[1] == 0 and dc[2] < 0 and dc[3] < 0


def test_q_star_derivative_where_q_star_is_zero_or_unbounded():
  # q* = 0 (tanh, sb = 0, sw < 1): dq*/dsb = 1 / (1 - sw), dq*/dsw = 0.
  d_sw, d_sb = jax.grad(lambda sw, sb: theory.fixed_point_length("tanh", sw, sb),
                        argnums=(0, 1))(0.5, 0.0)
  assert abs(d_sw) < 1e-12 and abs(d_sb - 2.0) < 1e-9
  # ReLU: q* = sb / (1 - sw / 2) below sw = 2; none above (nan, never a number).
  d_sw, d_sb = jax.grad(lambda sw, sb: theory.fixed_point_length("relu", sw, sb),
                        argnums=(0, 1))(1.0, 0.5)
  assert abs(d_sw - 1.0) < 1e-12 and abs(d_sb - 2.0) < 1e-12
  assert np.isnan(jax.grad(lambda sw: theory.fixed_point_length("relu", sw, 0.5))(3.0))
