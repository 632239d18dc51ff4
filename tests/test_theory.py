"""Mean-field theory: closed forms, quadrature convergence, root finding, errors, CLI.

Runs in float64 (a module-scoped ``jax.enable_x64`` context, restored
afterwards) because the closed forms are checked to 1e-10. The Monte Carlo
comparisons with sampled networks are in ``test_theory_mc.py``.
"""

import functools
import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, optimize

from jaxinit import _quadrature as quad
from jaxinit import theory

TOL = 1e-10   # closed forms (the acceptance bar is 1e-8)


@pytest.fixture(scope="module", autouse=True)
def _float64():
  with jax.enable_x64(True):
    yield


def relu_kernel(q1, q2, c):
  """Cho & Saul 2009 arc-cosine kernel: E[relu(u1) relu(u2)]."""
  t = np.arccos(np.clip(c, -1, 1))
  return np.sqrt(q1 * q2) / (2 * np.pi) * (np.sin(t) + (np.pi - t) * np.cos(t))


def erf_kernel(a, q11, q22, q12):
  """Williams 1997: E[erf(a u1) erf(a u2)]."""
  return 2 / np.pi * np.arcsin(2 * a * a * q12 / np.sqrt((1 + 2 * a * a * q11) *
                                                        (1 + 2 * a * a * q22)))


def erf_chi(a, q11, q22, q12):
  """E[d/du erf(a u1) d/du erf(a u2)] = 4 a^2 / pi / sqrt(det(I + 2 a^2 Sigma))."""
  k = 2 * a * a
  return 4 * a * a / np.pi / np.sqrt((1 + k * q11) * (1 + k * q22) - (k * q12) ** 2)


# ----------------------------------------------------------------------------
# Quadrature.

def test_rayleigh_rule_is_gaussian_for_odd_and_even_powers():
  r, w = quad.rayleigh_rule(12)
  for k in range(24):
    exact = 2 ** (k / 2) * math.gamma(k / 2 + 1)    # int r^(k+1) exp(-r^2/2) dr
    assert abs(np.sum(w * r**k) / exact - 1) < 1e-12, k


def test_half_normal_rule_unchanged_by_refactor():
  x, w = quad.half_normal_rule(3)
  assert abs(w.sum() - 0.5) < 1e-15
  for k in range(6):
    exact = 0.5 * math.prod(range(k - 1, 0, -2)) if k % 2 == 0 else \
        2 ** ((k - 1) / 2) * math.gamma((k + 1) / 2) / math.sqrt(2 * math.pi)
    assert abs(np.sum(w * x**k) - exact) < 1e-13, k


@functools.partial(jax.jit, static_argnums=0)
def _kernels(n, q1, q2, q12):
  """E[phi(u1) phi(u2)] for relu, elu, tanh and erf(1.7 u), polar rule with n x n nodes."""
  erf = lambda x: jax.scipy.special.erf(1.7 * x)  # noqa: E731
  phis = (jax.nn.relu, jax.nn.elu, jnp.tanh, erf)
  return quad.polar_gaussian_expectation(lambda a, b: tuple(phi(a) * phi(b) for phi in phis),
                                         q1, q2, q12, n, n)


@pytest.mark.parametrize("c", [-1.0, -0.999, -0.3, 0.0, 0.6, 0.999, 0.999999, 1.0])
def test_polar_rule_relu_and_erf_kernels(c):
  q1, q2 = 1.3, 0.7
  q12 = c * math.sqrt(q1 * q2)
  r, _, _, e = _kernels(32, q1, q2, q12)
  assert abs(r - relu_kernel(q1, q2, c)) < 1e-14
  assert abs(e - erf_kernel(1.7, q1, q2, q12)) < 1e-13


def test_quadrature_convergence_table():
  """Exponential convergence for kinked (relu, elu) and smooth (tanh, erf) integrands."""
  c = 0.6
  values = {n: np.asarray(_kernels(n, 1.0, 1.0, c)) for n in (8, 16, 32, 64)}
  relu, elu, tanh, erf = (np.array([abs(values[n][i] - values[64][i]) for n in (8, 16, 32)])
                          for i in range(4))
  assert abs(values[64][0] - relu_kernel(1.0, 1.0, c)) < 1e-15
  assert abs(values[64][3] - erf_kernel(1.7, 1.0, 1.0, c)) < 1e-14
  # Errors at 8, 16, 32 nodes (module docstring table): each doubling gains orders.
  assert relu[0] < 1e-12 and relu[1] < 1e-14, relu
  assert elu[0] > 1e4 * elu[1] and elu[1] < 1e-14, elu
  assert tanh[0] > 100 * tanh[1] > 1e4 * tanh[2] and tanh[2] < 1e-14, tanh
  assert erf[0] > 100 * erf[1] > 1e4 * erf[2] and erf[2] < 1e-13, erf
  # The tensor-product rule only reaches ~1e-6 for the relu kernel: algebraic.
  tensor = abs(float(quad.bivariate_gaussian_expectation(
      lambda a, b: jax.nn.relu(a) * jax.nn.relu(b), 1.0, 1.0, c, 32)) - relu_kernel(1, 1, c))
  assert tensor > 1e-8
  # 1-D: the half-line split makes the ELU second moment converge exponentially.
  x, w = quad.standard_normal_rule(8)
  x64, w64 = quad.standard_normal_rule(64)
  elu2 = lambda x: np.asarray(jax.nn.elu(jnp.asarray(x))) ** 2  # noqa: E731
  assert abs(np.sum(w * elu2(x)) - np.sum(w64 * elu2(x64))) < 1e-9


# ----------------------------------------------------------------------------
# Closed forms.

def test_relu_closed_forms():
  sw, sb = np.array([0.5, 1.0, 1.5, 1.9]), 0.1
  np.testing.assert_allclose(theory.length_map("relu", sw, sb, 2.0), sw + sb, atol=TOL)
  np.testing.assert_allclose(theory.fixed_point_length("relu", sw, sb), sb / (1 - sw / 2),
                             rtol=TOL)
  np.testing.assert_allclose(theory.chi1("relu", sw, sb), sw / 2, atol=TOL)
  expected_xi = -1 / np.log(sw / 2)
  np.testing.assert_allclose(theory.length_depth_scale("relu", sw, sb), expected_xi, rtol=1e-9)
  mf = theory.mean_field("relu", sw, sb)
  np.testing.assert_allclose(mf.c_star, 1.0, atol=0)
  np.testing.assert_allclose(mf.xi_c, expected_xi, rtol=1e-9)
  np.testing.assert_allclose(theory.max_trainable_depth("relu", sw, sb), 6 * expected_xi,
                             rtol=1e-9)
  np.testing.assert_allclose(theory.critical_weight_variance("relu", [0.0, 0.05, 1.0]), 2.0,
                             atol=TOL)
  # Beyond sw = 2 (with sb > 0) q diverges: no correlation fixed point.
  mf = theory.mean_field("relu", 3.0, 0.1)
  assert mf.q_star == np.inf and np.isnan(mf.c_star) and abs(mf.chi1 - 1.5) < TOL


def test_relu_covariance_and_correlation_maps():
  q11, q22 = 0.8, 2.5
  c = np.array([-1.0, -0.7, 0.0, 0.3, 0.9, 0.99999, 1.0])
  q12 = c * np.sqrt(q11 * q22)
  sw, sb = 1.7, 0.2
  out = theory.covariance_map("relu", sw, sb, q11, q22, q12)
  np.testing.assert_allclose(out[0], sw * q11 / 2 + sb, atol=TOL)
  np.testing.assert_allclose(out[1], sw * q22 / 2 + sb, atol=TOL)
  np.testing.assert_allclose(out[2], sw * relu_kernel(q11, q22, c) + sb, atol=TOL)
  q = 1.3
  np.testing.assert_allclose(theory.correlation_map("relu", sw, sb, c, q=q),
                             (sw * relu_kernel(q, q, c) + sb) / q, atol=TOL)


def test_leaky_relu_parameters_are_forwarded():
  a = 0.2
  np.testing.assert_allclose(theory.chi1("leaky_relu", 1.0, 0.0, negative_slope=a),
                             (1 + a * a) / 2, atol=TOL)
  np.testing.assert_allclose(
      theory.critical_weight_variance("leaky_relu", 0.0, negative_slope=a), 2 / (1 + a * a),
      atol=TOL)


def test_erf_closed_forms():
  a = 1.3
  phi = lambda x: jax.scipy.special.erf(a * x)  # noqa: E731 - a callable, not a name
  q11, q22 = 0.6, 1.9
  c = np.array([-0.95, -0.2, 0.0, 0.5, 0.999, 1.0])
  q12 = c * np.sqrt(q11 * q22)
  sw, sb = 2.5, 0.3
  out = theory.covariance_map(phi, sw, sb, q11, q22, q12)
  np.testing.assert_allclose(out[0], sw * erf_kernel(a, q11, q11, q11) + sb, atol=TOL)
  np.testing.assert_allclose(out[2], sw * erf_kernel(a, q11, q22, q12) + sb, atol=TOL)

  # Fixed point, chi1, critical line and c* against the closed forms (scipy roots).
  length = lambda q, sw, sb: sw * erf_kernel(a, q, q, q) + sb  # noqa: E731
  chi = lambda q, sw: sw * erf_chi(a, q, q, q)  # noqa: E731
  q_star = optimize.brentq(lambda q: length(q, sw, sb) - q, 1e-9, 100, xtol=1e-15)
  mf = theory.mean_field(phi, sw, sb)
  assert abs(mf.q_star - q_star) < TOL
  assert abs(mf.chi1 - chi(q_star, sw)) < TOL
  assert mf.chi1 > 1   # chaotic: c* < 1 solves C(c) = c
  cmap = lambda c: (sw * erf_kernel(a, q_star, q_star, c * q_star) + sb) / q_star  # noqa: E731
  c_star = optimize.brentq(lambda c: cmap(c) - c, -1, 1 - 1e-9, xtol=1e-15)
  assert abs(mf.c_star - c_star) < TOL
  assert abs(mf.chi_c - sw * erf_chi(a, q_star, q_star, c_star * q_star)) < TOL

  for sb in (0.05, 0.5):
    def crit(sw):
      qs = optimize.brentq(lambda q: length(q, sw, sb) - q, 1e-12, 1e3, xtol=1e-15)
      return chi(qs, sw) - 1
    sw_c = optimize.brentq(crit, 0.5, 20, xtol=1e-14)
    assert abs(theory.critical_weight_variance(phi, sb) - sw_c) < 1e-9
  # At sb = 0, q* = 0 below the line and chi1 = sw * 4 a^2 / pi there. Above
  # it chi1 - 1 grows only like (sw - sw_c)^2: the line is resolved to ~sqrt(eps).
  assert abs(theory.critical_weight_variance(phi, 0.0) - np.pi / (4 * a * a)) < 1e-7


def test_linear_closed_forms():
  sw, sb = np.array([0.3, 0.9]), 0.4
  np.testing.assert_allclose(theory.fixed_point_length("linear", sw, sb), sb / (1 - sw),
                             rtol=TOL)
  np.testing.assert_allclose(theory.chi1("linear", sw, sb), sw, atol=TOL)
  out = theory.covariance_map("linear", 0.9, 0.4, 1.0, 2.0, -0.5)
  np.testing.assert_allclose(out, [1.3, 2.2, -0.05], atol=TOL)
  # Every q is a fixed point at sw = 1, sb = 0: q0 is kept.
  assert theory.fixed_point_length("linear", 1.0, 0.0, q0=3.5) == 3.5


def test_jacobian_moments_closed_forms():
  depth = 7
  for weights, s1 in (("gaussian", -1.0), ("orthogonal", 0.0)):
    # Linear: D = I (mu2 / mu1^2 = 1); variance / mean^2 = -L s_W.
    m = theory.jacobian_spectrum_moments("linear", 1.2, 0.0, depth, weights=weights)
    assert abs(m.mean - 1.2**depth) < 1e-9
    assert abs(m.variance - 1.2 ** (2 * depth) * depth * (-s1)) < 1e-8
    # ReLU: phi'^2 is Bernoulli(1/2): mu1 = mu2 = 1/2, mu2 / mu1^2 = 2.
    m = theory.jacobian_spectrum_moments("relu", 2.0, 0.0, depth, weights=weights)
    assert abs(m.mean - 1) < TOL
    assert abs(m.variance - depth * (2 - 1 - s1)) < 1e-9
    assert abs(m.second_moment - m.variance - m.mean**2) < 1e-9
  # Per-layer q from an input off the fixed point: product of per-layer chi's.
  m = theory.jacobian_spectrum_moments("tanh", 1.5, 0.1, 3, q0=4.0)
  q1 = 1.5 * 4.0 + 0.1
  q2 = float(theory.length_map("tanh", 1.5, 0.1, q1))
  q3 = float(theory.length_map("tanh", 1.5, 0.1, q2))
  expected = np.prod([1.5 * _e1(lambda z, q=q: (1 - np.tanh(np.sqrt(q) * z) ** 2) ** 2)
                      for q in (q1, q2, q3)])
  assert abs(m.mean - expected) < 1e-9


def _e1(f):
  """Independent reference: E[f(z)] with scipy's adaptive quadrature."""
  return integrate.quad(lambda z: f(z) * np.exp(-z * z / 2) / np.sqrt(2 * np.pi),
                        -np.inf, np.inf, epsabs=1e-14, epsrel=1e-13, limit=200)[0]


# ----------------------------------------------------------------------------
# Root finding and consistency (tanh).

def test_tanh_against_scipy_root_finding():
  sb = 0.05
  length = lambda q, sw: sw * _e1(lambda z: np.tanh(np.sqrt(q) * z) ** 2) + sb  # noqa: E731
  chi = lambda q, sw: sw * _e1(lambda z: (1 - np.tanh(np.sqrt(q) * z) ** 2) ** 2)  # noqa: E731

  def q_star(sw):
    return optimize.brentq(lambda q: length(q, sw) - q, 1e-6, 50, xtol=1e-14)

  sw_c = optimize.brentq(lambda sw: chi(q_star(sw), sw) - 1, 1.0, 3.0, xtol=1e-13)
  assert abs(theory.critical_weight_variance("tanh", sb) - sw_c) < 1e-8
  for sw in (0.8, sw_c, 3.0):
    assert abs(theory.fixed_point_length("tanh", sw, sb) - q_star(sw)) < 1e-9
  assert abs(theory.critical_weight_variance("tanh", 0.0) - 1.0) < 1e-6   # chi1 - 1 ~ (sw - 1)^2


def test_fixed_points_solve_their_maps_and_slopes_match_finite_differences():
  sw = np.array([0.5, 1.2, 1.7609, 2.5, 4.0])
  sb = np.array([0.0, 0.01, 0.05, 0.2, 0.05])
  mf = theory.mean_field("tanh", sw, sb)
  np.testing.assert_allclose(theory.length_map("tanh", sw, sb, mf.q_star), mf.q_star,
                             atol=1e-13)
  assert mf.q_star[0] < 1e-30 and abs(np.exp(-1 / mf.xi_q[0]) - 0.5) < TOL   # slope sw at 0+
  h = 1e-5
  finite = (theory.length_map("tanh", sw, sb, mf.q_star + h)
            - theory.length_map("tanh", sw, sb, np.maximum(mf.q_star - h, 0))) / (2 * h)
  np.testing.assert_allclose(np.exp(-1 / mf.xi_q[1:]), finite[1:], atol=1e-8)
  chaotic = np.asarray(mf.chi1) > 1
  assert chaotic.tolist() == [False, False, False, True, True]
  c = np.asarray(mf.c_star)[chaotic]
  q = np.asarray(mf.q_star)[chaotic]
  s, b = sw[chaotic], sb[chaotic]
  np.testing.assert_allclose(theory.correlation_map("tanh", s, b, c, q=q), c, atol=1e-13)
  slope = (theory.correlation_map("tanh", s, b, c + h, q=q)
           - theory.correlation_map("tanh", s, b, c - h, q=q)) / (2 * h)
  np.testing.assert_allclose(np.asarray(mf.chi_c)[chaotic], slope, atol=1e-8)
  np.testing.assert_allclose(np.asarray(mf.c_star)[~chaotic], 1.0)
  # Plain iteration agrees away from the line (it is slow near it).
  q = 1.0
  for _ in range(300):
    q = theory.length_map("tanh", 2.5, 0.2, q)
  assert abs(q - mf.q_star[3]) < 1e-12


def test_critical_line_phases_and_depth_scales():
  sbs = np.array([0.0, 0.02, 0.05, 0.1, 0.3])
  line = np.asarray(theory.critical_line("tanh", sbs))
  assert np.all(np.diff(line) > 0)
  np.testing.assert_allclose(theory.chi1("tanh", line, sbs), 1.0, atol=1e-9)
  assert theory.phase("tanh", line[2] * 0.99, 0.05) == "ordered"
  assert theory.phase("tanh", line[2], 0.05) == "critical"
  assert theory.phase("tanh", line[2] * 1.01, 0.05) == "chaotic"
  assert theory.phase("tanh", [1.0, 4.0], 0.05).tolist() == ["ordered", "chaotic"]
  # xi_c grows without bound on both sides of the line.
  offsets = np.array([0.9, 0.99, 0.999, 1.001, 1.01, 1.1])
  xi = np.asarray(theory.correlation_depth_scale("tanh", line[2] * offsets, 0.05))
  assert np.all(np.diff(xi[:3]) > 0) and np.all(np.diff(xi[3:]) < 0) and min(xi[2], xi[3]) > 100
  assert theory.correlation_depth_scale("tanh", line[2], 0.05) > 1e6
  assert theory.gradient_depth_scale("tanh", 4.0, 0.05) < 0 < theory.gradient_depth_scale(
      "tanh", 1.0, 0.05)


def test_jit_and_vmap_over_variances():
  """One jitted, vmapped call over a (sw, sb) grid equals the broadcast eager calls."""
  sws = np.array([0.5, 1.0, 2.0, 4.0])
  grid_sw, grid_sb = (g.ravel() for g in np.meshgrid(sws, [0.0, 0.1]))   # 8 points
  mf = theory.mean_field("tanh", grid_sw, grid_sb)
  crit = theory.critical_weight_variance("tanh", grid_sb)

  @jax.jit
  @jax.vmap
  def traced(sw, sb):
    return theory.mean_field("tanh", sw, sb), theory.critical_weight_variance("tanh", sb)

  traced_mf, traced_crit = traced(jnp.asarray(grid_sw), jnp.asarray(grid_sb))
  for name in ("q_star", "chi1", "c_star"):
    # c* is ill-conditioned close to the line (C'(c*) -> 1): 1e-9, not 1e-13.
    np.testing.assert_allclose(getattr(traced_mf, name), getattr(mf, name), atol=1e-9)
  np.testing.assert_allclose(traced_crit, crit, rtol=1e-12)
  # Traced NaN is not checked: NaN out, no exception.
  assert np.isnan(traced(jnp.array([jnp.nan]), jnp.array([0.05]))[0].chi1[0])


def test_predict_layers():
  p = theory.predict_layers("relu", 2.0, 0.0, 4, q0=1.5, c0=0.0)
  np.testing.assert_allclose(p.q1, 3.0 * np.array([0.5, 1, 1, 1, 1]), atol=TOL)
  c = [0.0, 0.0]
  for _ in range(3):
    c.append(relu_kernel(1, 1, c[-1]) * 2)
  np.testing.assert_allclose(p.c, c, atol=TOL)
  # Two vectors: lengths and covariance from their inner products.
  x1 = np.array([1.0, 2.0, 0.0, -1.0])
  x2 = np.array([0.5, -1.0, 1.0, 1.0])
  p = theory.predict_layers_from_inputs("linear", 0.5, 0.1, 2, x1, x2)
  q11, q22, q12 = x1 @ x1 / 4, x2 @ x2 / 4, x1 @ x2 / 4
  np.testing.assert_allclose(p.q1, [q11, 0.5 * q11 + 0.1, 0.25 * q11 + 0.15], atol=TOL)
  np.testing.assert_allclose(p.q2[1], 0.5 * q22 + 0.1, atol=TOL)
  np.testing.assert_allclose(p.c[1], (0.5 * q12 + 0.1) / np.sqrt(p.q1[1] * p.q2[1]), atol=TOL)


# ----------------------------------------------------------------------------
# Errors.

def test_bad_inputs_raise_eagerly():
  with pytest.raises(ValueError, match="weight_variance.*>= 0"):
    theory.chi1("tanh", -1.0, 0.0)
  with pytest.raises(ValueError, match="bias_variance.*finite"):
    theory.chi1("tanh", 1.0, float("nan"))
  with pytest.raises(ValueError, match="bias_variance"):
    theory.critical_weight_variance("tanh", [0.1, -0.1])
  with pytest.raises(TypeError, match="weight_variance"):
    theory.chi1("tanh", "big", 0.0)
  with pytest.raises(ValueError, match="activation must be a callable or one of .*tanh"):
    theory.chi1("tahn", 1.0, 0.0)
  with pytest.raises(TypeError, match="activation must be"):
    theory.chi1(3, 1.0, 0.0)
  with pytest.raises(TypeError, match="traceable"):
    theory.chi1(math.tanh, 1.0, 0.0)
  with pytest.raises(TypeError, match="elementwise"):
    theory.chi1(jnp.sum, 1.0, 0.0)
  with pytest.raises(TypeError, match="traceable"):
    theory.chi1(lambda x: x > 0, 1.0, 0.0)   # not differentiable
  with pytest.raises(ValueError, match="c must be a correlation"):
    theory.correlation_map("tanh", 1.0, 0.0, 1.5)
  with pytest.raises(ValueError, match="q12"):
    theory.covariance_map("tanh", 1.0, 0.0, 1.0, 1.0, 2.0)
  with pytest.raises(ValueError, match="depth"):
    theory.predict_layers("tanh", 1.0, 0.0, 0)
  with pytest.raises(ValueError, match="weights must be one of"):
    theory.jacobian_spectrum_moments("tanh", 1.0, 0.0, 3, weights="uniform")
  with pytest.raises(ValueError, match="q0 must be > 0"):
    theory.fixed_point_length("tanh", 1.0, 0.0, q0=0.0)
  with pytest.raises(ValueError, match="num_nodes"):
    theory.chi1("tanh", 1.0, 0.0, num_nodes=0)
  with pytest.raises(TypeError, match="unexpected keyword"):
    theory.chi1("tanh", 1.0, 0.0, slope=0.1)   # tanh takes no parameters


# ----------------------------------------------------------------------------
# Command line.

def test_main_prints_summary(capsys):
  assert theory.main(["--activation", "relu", "--bias-variance", "0", "--no-plot"]) == 0
  out = capsys.readouterr().out
  assert "critical weight variance  2\n" in out and "phase                     critical" in out
  assert "xi_c                      inf (critical" in out
  assert theory.main(["--activation", "leaky_relu", "--param", "negative_slope=0.2",
                      "--bias-variance", "0.1", "--weight-variance", "4", "--no-plot"]) == 0
  out = capsys.readouterr().out
  assert "phase                     unbounded" in out and "weight variance           4\n" in out
  assert "q*                        unbounded: sigma_w^2 = 4 is above 1.92308 for leaky_relu" in out
  assert "critical weight variance  1.92308\n" in out   # 2 / (1 + 0.2^2)


def test_main_writes_phase_diagram(tmp_path, capsys):
  pytest.importorskip("matplotlib")
  status = theory.main(["--activation", "relu", "--bias-variance", "0.1", "--grid", "2",
                        "--out", str(tmp_path)])
  assert status == 0
  png = tmp_path / "phase_diagram_relu.png"
  assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert str(png) in capsys.readouterr().out


def test_main_rejects_bad_input(capsys):
  assert theory.main(["--activation", "nope", "--no-plot"]) == 2
  assert "activation must be" in capsys.readouterr().err
  assert theory.main(["--bias-variance", "-1", "--no-plot"]) == 2
  assert "--bias-variance must be >= 0" in capsys.readouterr().err


def test_module_entry_point_and_lazy_matplotlib():
  code = ("import sys, runpy; import jaxinit.theory; "
          "assert 'matplotlib' not in sys.modules, 'matplotlib imported eagerly'; "
          "sys.argv = ['jaxinit.theory', '--help']; "
          "runpy.run_module('jaxinit.theory', run_name='__main__')")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
  assert result.returncode == 0, result.stderr
  assert "usage: jaxinit theory" in result.stdout
