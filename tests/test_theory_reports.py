"""Theory outputs a person can read: unbounded and undefined quantities said in words,
missing critical points reported, ill-conditioned roots exact in float32, activations
without finite moments refused by name.

Runs in the default precision (float32, ``jax_enable_x64`` off): concrete inputs are
solved in float64 on the host and rounded once.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinit import theory
from jaxinit.theory import cli

pytestmark = pytest.mark.skipif(jax.config.jax_enable_x64, reason="checks float32 results")


def run(capsys, *args):
  assert theory.main([*args, "--no-plot"]) == 0
  return capsys.readouterr().out


def rows(out):
  return dict(line.split(None, 1) if not line.startswith(("q*", "c*")) else
              (line[:2], line[2:].strip()) for line in out.splitlines())


def test_ill_conditioned_critical_points_are_exact_in_float32():
  """chi1 - 1 grows like (sw - 1)^2 above tanh's line at sb = 0: float32 gave 1.0000478."""
  crit = theory.critical_weight_variance("tanh", 0.0)
  assert crit.dtype == jnp.float32 and float(crit) == 1.0
  # erf(x): chi1 = sw 4 / pi at q* = 0, so the line starts at pi / 4.
  assert float(theory.critical_weight_variance("erf", 0.0)) == float(np.float32(math.pi / 4))
  assert float(theory.critical_weight_variance("relu", 0.3)) == 2.0


def test_relu_default_bias_says_q_star_is_unbounded(capsys):
  out = run(capsys, "--activation", "relu")
  assert ("q*                        unbounded: sigma_w^2 = 2 is at the limit 2 for relu with "
          "sigma_b^2 = 0.05 > 0") in out
  assert "c*                        undefined (q* unbounded" in out
  assert "phase                     unbounded" in out
  out = run(capsys, "--activation", "relu", "--weight-variance", "2.5")
  assert "sigma_w^2 = 2.5 is above 2 for relu" in out


@pytest.mark.parametrize("activation", ["gelu", "silu"])
def test_no_critical_point_where_chi1_jumps(capsys, activation):
  """GELU/SiLU at sb = 0.05: q* (from q0 = 1) jumps to infinity while chi1 < 1."""
  t = theory.transition(activation, 0.05)
  assert math.isnan(t.critical_weight_variance) and math.isnan(
      theory.critical_weight_variance(activation, 0.05))
  assert 2 < t.weight_variance < 3 and t.chi1_below < 0.8 and t.chi1_above > 1.1
  assert np.isfinite(t.q_star_below) and np.isinf(t.q_star_above)
  assert float(t.unbounded_weight_variance) == pytest.approx(2.0, rel=1e-6)
  out = run(capsys, "--activation", activation)
  assert "critical weight variance  none: chi1 stays below 1" in out
  assert "jumps to infinity" in out and "no critical point" in out
  assert "\nq* " not in out          # no converged-looking q* = 1 (its starting value)
  # With a larger bias GELU's transition is continuous again (at the edge of unbounded q*).
  if activation == "gelu":
    assert float(theory.critical_weight_variance("gelu", 0.4)) == pytest.approx(2.0, rel=1e-5)


@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu", "selu", "sigmoid", "linear"])
def test_cli_never_prints_a_bare_nan_or_inf(capsys, activation):
  for extra in ([], ["--weight-variance", "4"], ["--bias-variance", "0"]):
    out = run(capsys, "--activation", activation, *extra)
    for line in out.splitlines():
      value = line[26:]
      assert value not in ("nan", "inf", "-inf"), line
      assert not value.startswith(("nan", "-inf")), line


def test_phase_diagram_explains_blank_regions():
  d = theory.phase_diagram("gelu", np.linspace(0.5, 4.0, 8), [0.0, 0.05, 0.4])
  assert d.unbounded[:, -1].all() and not d.unbounded[:, 0].any()
  # Every cell is finite or explained: unbounded, or on the critical line (inf).
  explained = np.isfinite(d.xi_c) | d.unbounded | np.isinf(d.xi_c)
  assert explained.all()
  assert np.isnan(d.critical_weight_variances[:2]).all()
  assert np.isfinite(d.transition_weight_variances).all()
  matplotlib = pytest.importorskip("matplotlib")
  matplotlib.use("Agg")
  fig = theory.plot_phase_diagram(d)
  labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
  assert any(label.startswith("q* unbounded") for label in labels)
  assert any(label.startswith("no critical point") for label in labels)
  assert any(label.startswith("critical line") for label in labels)
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  plt.close(fig)


def test_unbounded_phase():
  assert theory.phase("relu", 3.0, 0.0) == "unbounded"
  assert theory.phase("relu", [1.0, 2.0, 2.5], 0.1).tolist() == [
      "ordered", "unbounded", "unbounded"]
  mf = theory.mean_field("relu", 3.0, 0.1)
  assert np.isinf(mf.q_star) and np.isnan(mf.c_star) and np.isnan(mf.xi_c)


@pytest.mark.parametrize("activation, message", [
    (jnp.log, r"activation log has no finite E\[phi\(z\)\^2\], z ~ N\(0, 1\): phi\(z\)\^2 is "
     r"not finite at z = -0.00053"),
    (lambda x: jnp.exp(x**2), r"<lambda> has no finite E\[phi\(z\)\^2\]"),
    (lambda x: jnp.exp(x**2 / 4), r"<lambda> has no finite E\[phi\(z\)\^2\]"),
    (lambda x: 1 / x, "quadrature does not converge"),
])
def test_activations_without_finite_moments_are_refused_by_name(activation, message):
  for call in (lambda: theory.chi1(activation, 1.0, 0.1),
               lambda: theory.length_map(activation, 1.0, 0.1, 1.0),
               lambda: theory.correlation_map(activation, 1.0, 0.1, 0.5, q=1.0),
               lambda: theory.critical_weight_variance(activation, 0.1)):
    with pytest.raises(ValueError, match=message):
      call()


def test_summary_rows_report_the_chosen_point():
  table, sw = cli.summary_rows("tanh", 0.05, None, {})
  assert sw == pytest.approx(1.7609, abs=1e-4) and dict(table)["phase"] == "critical"
  table, sw = cli.summary_rows("gelu", 0.05, None, {})
  assert sw is None and "none chosen" in dict(table)["weight variance"]
