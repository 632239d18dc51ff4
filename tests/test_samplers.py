"""Base samplers against their exact distributions."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as sps

import jaxinit
from jaxinit import samplers
from stats import Z, assert_mean_and_variance, moments

KEY = jax.random.key(11)
N = 20_000
P_MIN = 1e-4  # fixed keys: a KS p-value below this would be a 1-in-10^4 draw


def _draw(sampler, n=N, dtype=jnp.float32):
  return np.asarray(sampler(KEY, (n,), dtype), np.float64)


def test_normal_ks():
  assert sps.kstest(_draw(samplers.normal()), sps.norm.cdf).pvalue > P_MIN


def test_uniform_ks():
  r3 = math.sqrt(3)
  assert sps.kstest(_draw(samplers.uniform()), sps.uniform(-r3, 2 * r3).cdf).pvalue > P_MIN


@pytest.mark.parametrize("lower,upper", [(-2.0, 2.0), (-1.0, 1.0), (-3.0, 1.5), (0.5, 4.0),
                                         (-math.inf, 0.0)])
def test_truncated_normal_ks_and_exact_variance(lower, upper):
  x = _draw(samplers.truncated_normal(lower, upper))
  exact = sps.truncnorm(lower, upper)
  sigma = exact.std()
  assert math.isclose(samplers.truncated_normal_moments(lower, upper)[1], sigma, rel_tol=1e-12)
  # Draws are the truncated normal divided by its exact std, not shifted.
  scaled = sps.truncnorm(lower, upper, scale=1 / sigma)
  assert sps.kstest(x, scaled.cdf).pvalue > P_MIN
  _, _, _, second_se = moments(x - x.mean())
  assert abs(x.var() - 1.0) <= Z * second_se
  assert abs(x.mean() - exact.mean() / sigma) <= Z * x.std() / math.sqrt(x.size)


def test_truncated_constant_for_default_bounds():
  assert samplers.truncated_normal_moments(-2.0, 2.0)[1] == pytest.approx(
      0.87962566103423978, rel=1e-15)


@pytest.mark.parametrize("sampler", [samplers.normal(), samplers.truncated_normal(),
                                     samplers.uniform(), samplers.rademacher()],
                         ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("dtype", [jnp.complex64, jnp.complex128])
def test_complex_second_moment_is_exact(sampler, dtype):
  # 2^20 draws: SE of E|w|^2 is ~0.1%, so Z SE is at most the 0.5%.
  with jax.enable_x64(True):
    w = np.asarray(jaxinit.variance_scaling(3.0, "fan_in", sampler)(KEY, (1024, 1024), dtype))
  assert w.dtype == dtype
  mean, mean_se, second, second_se = moments(w * math.sqrt(1024 / 3.0))
  assert Z * second_se <= 0.005
  # (plus float32 round-off, for samplers of constant modulus such as Rademacher)
  assert abs(second - 1.0) <= Z * second_se + 1e-6, (second, second_se)
  assert mean <= Z * mean_se


def test_jax_complex_truncated_normal_is_too_wide():
  """The defect jaxinit fixes: jax's constant makes E|w|^2 1.86% too large."""
  w = np.asarray(jax.nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")(
      KEY, (1024, 1024), jnp.complex64)) * math.sqrt(1024)
  _, _, second, second_se = moments(w)
  expected = (samplers.complex_truncated_std(2.0) / 0.95311164380491208) ** 2
  assert expected == pytest.approx(1.0186, abs=1e-4)
  assert abs(second - expected) <= Z * second_se
  assert second - 1.0 > 10 * second_se


def test_complex_truncated_modulus_bound():
  w = np.asarray(samplers.truncated_normal()(KEY, (N,), jnp.complex64))
  assert np.abs(w).max() <= 2.0 / samplers.complex_truncated_std(2.0) * (1 + 1e-6)
  with pytest.raises(ValueError, match="lower == -upper"):
    samplers.truncated_normal(-1.0, 2.0)(KEY, (4,), jnp.complex64)


def test_rademacher_values():
  x = _draw(samplers.rademacher())
  assert set(np.unique(x)) == {-1.0, 1.0}
  assert abs(x.mean()) <= Z / math.sqrt(x.size)


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.9])
def test_sparse_exact_zeros_and_unit_variance(fraction):
  rows, cols = 200, 300
  w = np.asarray(samplers.sparse(fraction)(KEY, (rows, cols)), np.float64)
  zeros = math.ceil(fraction * rows)
  np.testing.assert_array_equal((w == 0).sum(axis=0), np.full(cols, zeros))
  assert_mean_and_variance(w, 1.0, f"sparse {fraction}")


@pytest.mark.parametrize("shape,column_axis", [((128, 128), -1), ((256, 64), -1),
                                                ((64, 256), -1), ((3, 3, 16, 32), -1),
                                                ((16, 48), 0)])
def test_orthogonal_to_float32_roundoff(shape, column_axis):
  sampler = samplers.orthogonal(column_axis)
  rows, cols = sampler.matrix_shape(shape)
  w = np.asarray(sampler(KEY, shape), np.float64)
  m = np.moveaxis(w, column_axis, -1).reshape(rows, cols) / math.sqrt(max(rows, cols))
  gram = m.T @ m if rows >= cols else m @ m.T
  # Householder orthogonalization: error ~ n eps.
  assert np.abs(gram - np.eye(min(rows, cols))).max() <= max(rows, cols) * np.finfo(np.float32).eps
  # Unit per-element second moment, exactly (no sampling error for orthogonal structure).
  assert (w**2).mean() == pytest.approx(1.0, rel=1e-5)


def test_orthogonal_in_bfloat16():
  w = jaxinit.orthogonal()(KEY, (256, 256), jnp.bfloat16)
  assert w.dtype == jnp.bfloat16
  q = np.asarray(w, np.float64)
  assert np.abs(q.T @ q - np.eye(256)).max() <= 2.0**-8  # one bfloat16 ulp at 1


def test_orthogonal_complex_is_unitary():
  w = np.asarray(jaxinit.orthogonal()(KEY, (64, 64), jnp.complex64), np.complex128)
  np.testing.assert_allclose(w.conj().T @ w, np.eye(64), atol=64 * np.finfo(np.float32).eps)


def test_haar_determinant_signs_are_balanced():
  # Without the sign correction of R's diagonal, QR-based samplers are biased.
  keys = jax.random.split(KEY, 4000)
  q = jax.jit(jax.vmap(lambda k: samplers.haar_orthonormal(k, 5, 5, jnp.float32)))(keys)
  det = np.linalg.det(np.asarray(q, np.float64))
  np.testing.assert_allclose(np.abs(det), 1.0, atol=1e-5)
  assert abs(det.mean()) <= Z / math.sqrt(det.size)
  first = np.asarray(q[:, 0, 0], np.float64)  # x^2 ~ Beta(1/2, (n-1)/2) on the sphere
  assert sps.kstest(first**2, sps.beta(0.5, 2.0).cdf).pvalue > P_MIN


def test_delta_sampler_centre_tap():
  w = np.asarray(samplers.delta("normal")(KEY, (4, 3, 8, 8)))
  assert np.count_nonzero(w[1, 1]) == 64 and np.count_nonzero(w) == 64
  assert (w**2).mean() == pytest.approx(1.0, rel=0.2)  # one 8x8 draw: loose by design


def test_user_sampler_plugs_in():
  def laplace(key, shape, dtype, out_sharding=None):
    return jax.random.laplace(key, shape, dtype) / math.sqrt(2.0)

  init = jaxinit.variance_scaling(2.0, "fan_in", laplace)
  w = np.asarray(init(KEY, (400, 300)))
  assert_mean_and_variance(w, 2.0 / 400, "laplace")
  with pytest.raises(TypeError, match="to_config"):
    init.to_config()


# Bounds spanning the centre, one tail, and far tails on both sides (to 31 sd).
TAIL_BOUNDS = [(-2.0, 2.0), (-3.0, 1.5), (0.5, 4.0), (1.0, math.inf), (2.0, 3.0), (4.0, math.inf),
               (-math.inf, -4.0), (5.0, 1e6), (6.0, 7.0), (8.0, 9.0), (-9.0, -8.0),
               (12.0, 14.0), (29.0, 30.0), (30.0, math.inf), (-31.0, -30.0), (30.0, 30.5)]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("lower,upper", TAIL_BOUNDS)
def test_truncated_normal_exact_for_any_bounds(lower, upper, dtype):
  """Finite, inside the bounds, and scipy's truncnorm by KS (p > 1e-4 on 1e5 draws).

  The field reports: jax's inverse-erf sampler gives ~43 infinite values per
  1e5 at [4, inf], variance 1.5e12 at [5, 1e6] and one constant at [6, 7].
  """
  sampler = samplers.truncated_normal(lower, upper)
  mean, sigma = samplers.truncated_normal_moments(lower, upper)
  key = jax.random.fold_in(KEY, TAIL_BOUNDS.index((lower, upper)))
  with jax.enable_x64(dtype == jnp.float64):
    w = sampler(key, (100_000,), dtype)
    assert w.dtype == dtype
    x = np.asarray(w, np.float64) * sigma  # undo the division by the exact std
  assert np.isfinite(x).all()
  slack = 4 * np.finfo(dtype).eps * max(abs(lower), abs(upper) if math.isfinite(upper) else 0)
  assert x.min() >= lower - slack and x.max() <= upper + slack
  assert sps.kstest(x, sps.truncnorm(lower, upper).cdf).pvalue > P_MIN
  # The moments the combinator divides by are the distribution's.
  assert abs(x.mean() - mean) <= Z * sigma / math.sqrt(x.size)


def test_truncated_normal_moments_far_tails_and_narrow_intervals():
  from scipy import special
  # [a, inf]: mean lambda = phi(a) / Q(a) = sqrt(2 / pi) / erfcx(a / sqrt 2) (asymptotically
  # a + 1/a - 2/a^3 + 10/a^5 - 74/a^7), variance 1 - lambda (lambda - a).
  for a in (30.0, 100.0):
    mean, std = samplers.truncated_normal_moments(a, math.inf)
    lam = math.sqrt(2 / math.pi) / special.erfcx(a / math.sqrt(2))
    assert mean == pytest.approx(lam, rel=1e-13)
    assert mean == pytest.approx(a + 1 / a - 2 / a**3 + 10 / a**5 - 74 / a**7, rel=1e-11)
    assert std == pytest.approx(math.sqrt(1 - lam * (lam - a)), rel=1e-6)
  # A narrow interval is nearly uniform: std = width / sqrt(12).
  mean, std = samplers.truncated_normal_moments(0.5, 0.5 + 1e-9)
  assert std == pytest.approx(1e-9 / math.sqrt(12), rel=1e-6)
  assert samplers.truncated_normal_moments(-math.inf, math.inf) == pytest.approx((0.0, 1.0))
  mean, std = samplers.truncated_normal_moments(-31.0, -30.0)
  assert (mean, std) == pytest.approx((-30.033259667433, 0.0332230569), rel=1e-9)


def test_truncated_normal_refuses_what_a_dtype_cannot_resolve():
  with pytest.raises(ValueError, match=r"\[1e\+14, inf\] cannot be sampled in float64"):
    samplers.truncated_normal(1e14, math.inf)
  tail = samplers.truncated_normal(1000.0, math.inf)  # std 1e-3 at 1000: fine in float64 only
  with pytest.raises(ValueError, match="cannot be sampled in float32"):
    tail(KEY, (4,), jnp.float32)
  # float64 is drawn as float32 where x64 is off (as everywhere in jax): it is refused
  # alike, never drawn as one repeated float32 number.
  with jax.enable_x64(False), pytest.raises(ValueError, match="cannot be sampled in float32"):
    tail(KEY, (4,), jnp.float64)
  mean, std = samplers.truncated_normal_moments(1000.0, math.inf)
  with jax.enable_x64(True):
    x = np.asarray(tail(KEY, (10_000,), jnp.float64)) * std
  assert x.min() >= 1000.0 and abs(x.mean() - mean) < Z * std / 100


def test_truncated_normal_preset_inherits_the_tail_sampler():
  w = np.asarray(jaxinit.truncated_normal(0.5, lower=4.0, upper=math.inf)(KEY, (100_000,)))
  # Beyond 12 sd has probability 1e-29: no draw may land there (jax's land at 1.7e38).
  assert np.isfinite(w).all() and w.min() >= 2.0 and w.max() < 0.5 * 12
  assert sps.kstest(w / 0.5, sps.truncnorm(4.0, math.inf).cdf).pvalue > P_MIN
  # jax's own draw here has values at float32's largest number (the defect this fixes).
  theirs = np.asarray(jax.nn.initializers.truncated_normal(0.5, lower=4.0, upper=math.inf)(
      KEY, (100_000,)))
  assert theirs.max() > 1e37
