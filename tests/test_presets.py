"""Every preset: mean and variance over dense, conv and batched shapes and dtypes;
bit-for-bit and in-distribution agreement with jax.nn.initializers."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxinit
from stats import Z, assert_mean_and_variance

KEY = jax.random.key(20261123)

# (shape, fan_in, fan_out, extra kwargs): fans written out by hand.
SHAPES = {
    "dense": ((256, 128), 256, 128, {}),
    "conv1d": ((5, 32, 48), 160, 240, {}),
    "conv2d": ((3, 3, 32, 64), 288, 576, {}),
    "conv3d": ((3, 3, 3, 16, 32), 432, 864, {}),
    "batched": ((8, 64, 48), 64, 48, {"batch_axis": 0}),
}

# preset factory -> (variance as a function of (fan_in, fan_out)).
FAN_PRESETS = {
    "glorot_normal": (jaxinit.glorot_normal, lambda i, o: 2.0 / (i + o)),
    "glorot_uniform": (jaxinit.glorot_uniform, lambda i, o: 2.0 / (i + o)),
    "he_normal": (jaxinit.he_normal, lambda i, o: 2.0 / i),
    "he_uniform": (jaxinit.he_uniform, lambda i, o: 2.0 / i),
    "he_normal_leaky": (lambda **kw: jaxinit.he_normal(negative_slope=0.2, **kw),
                        lambda i, o: 2.0 / (1.04 * i)),
    "lecun_normal": (jaxinit.lecun_normal, lambda i, o: 1.0 / i),
    "lecun_uniform": (jaxinit.lecun_uniform, lambda i, o: 1.0 / i),
}

FIXED_PRESETS = {
    "normal": (jaxinit.normal(0.05), 0.05**2),
    "uniform": (jaxinit.uniform(0.05, symmetric=True), 0.05**2 / 3),
    "truncated_normal": (jaxinit.truncated_normal(0.05), (0.05 * 0.87962566103423978) ** 2),
}

DTYPES = [jnp.float32, jnp.bfloat16, jnp.float16, jnp.complex64]


# Every shape in float32, and every dtype on the dense and conv2d shapes.
CASES = [(s, jnp.float32) for s in SHAPES] + [
    (s, d) for s in ("dense", "conv2d") for d in DTYPES[1:]]


@pytest.mark.parametrize("shape_name,dtype", CASES,
                         ids=[f"{s}-{jnp.dtype(d).name}" for s, d in CASES])
@pytest.mark.parametrize("preset", list(FAN_PRESETS))
def test_fan_presets_mean_and_variance(preset, shape_name, dtype):
  factory, variance_of = FAN_PRESETS[preset]
  shape, fan_in, fan_out, kwargs = SHAPES[shape_name]
  w = factory(**kwargs)(KEY, shape, dtype)
  assert w.shape == shape and w.dtype == jnp.dtype(dtype)
  assert_mean_and_variance(np.asarray(w.astype(jnp.complex64 if w.dtype == jnp.complex64
                                               else jnp.float32)),
                           variance_of(fan_in, fan_out), f"{preset} {shape_name}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("preset", list(FIXED_PRESETS))
def test_fixed_presets_mean_and_variance(preset, dtype):
  init, variance = FIXED_PRESETS[preset]
  for shape_name in ("dense", "conv2d"):
    shape = SHAPES[shape_name][0]
    w = init(KEY, shape, dtype)
    assert w.shape == shape and w.dtype == jnp.dtype(dtype)
    assert_mean_and_variance(np.asarray(w.astype(jnp.complex64 if jnp.dtype(dtype).kind == "c"
                                                 else jnp.float32)), variance, preset)
  # A bias has no fans; the fixed presets accept it.
  assert init(KEY, (7,), dtype).shape == (7,)


def test_float64_draws_in_float64():
  with jax.enable_x64(True):
    w = jaxinit.he_normal()(KEY, (256, 128), jnp.float64)
    assert w.dtype == jnp.float64
    assert_mean_and_variance(np.asarray(w), 2.0 / 256, "he_normal float64")
    # float64 draws are not float32 draws cast: the low mantissa bits are used.
    assert np.any(np.asarray(w) != np.asarray(w).astype(np.float32).astype(np.float64))


def test_low_precision_is_float32_draw_cast():
  for init in (jaxinit.he_normal(), jaxinit.orthogonal(), jaxinit.normal(0.1)):
    w32 = init(KEY, (64, 32), jnp.float32)
    for dtype in (jnp.bfloat16, jnp.float16, jnp.float8_e4m3fn):
      w = init(KEY, (64, 32), dtype)
      np.testing.assert_array_equal(np.asarray(w), np.asarray(w32.astype(dtype)))
      assert np.all(np.isfinite(np.asarray(w.astype(jnp.float32))))


def test_uniform_bounds_are_exact():
  w = np.asarray(jaxinit.he_uniform()(KEY, (256, 128)))
  bound = math.sqrt(6.0 / 256)
  assert np.abs(w).max() <= bound
  assert np.abs(w).max() > bound * (1 - 1e-3)
  b = np.asarray(jaxinit.uniform(0.3, symmetric=True)(KEY, (100_000,)))
  assert b.min() >= -0.3 and b.max() <= 0.3 and b.min() < -0.299 and b.max() > 0.299


def test_truncated_bounds_are_exact():
  w = np.asarray(jaxinit.lecun_normal()(KEY, (256, 128)))
  bound = 2.0 / 0.87962566103423978 / math.sqrt(256)
  assert np.abs(w).max() <= bound * (1 + 1e-6)
  assert np.abs(w).max() > bound * 0.99


@pytest.mark.parametrize("ours,theirs", [
    (jaxinit.glorot_normal(), jax.nn.initializers.glorot_normal()),
    (jaxinit.glorot_uniform(), jax.nn.initializers.glorot_uniform()),
    (jaxinit.he_normal(), jax.nn.initializers.he_normal()),
    (jaxinit.he_uniform(), jax.nn.initializers.he_uniform()),
    (jaxinit.lecun_normal(), jax.nn.initializers.lecun_normal()),
    (jaxinit.lecun_uniform(), jax.nn.initializers.lecun_uniform()),
    (jaxinit.kaiming_normal(), jax.nn.initializers.kaiming_normal()),
    (jaxinit.xavier_uniform(), jax.nn.initializers.xavier_uniform()),
    (jaxinit.variance_scaling(0.7, "fan_geo_avg", "normal"),
     jax.nn.initializers.variance_scaling(0.7, "fan_geo_avg", "normal")),
    (jaxinit.variance_scaling(3.0, "fan_out", "truncated_normal"),
     jax.nn.initializers.variance_scaling(3.0, "fan_out", "truncated_normal")),
    (jaxinit.zeros, jax.nn.initializers.zeros),
    (jaxinit.ones, jax.nn.initializers.ones),
    (jaxinit.constant(0.3), jax.nn.initializers.constant(0.3)),
], ids=lambda x: getattr(x, "mode", None) or repr(x)[:20])
def test_bit_identical_to_jax(ours, theirs):
  for shape in [(37, 53), (3, 3, 16, 32), (5, 7, 11)]:
    np.testing.assert_array_equal(np.asarray(ours(KEY, shape)), np.asarray(theirs(KEY, shape)))
  with jax.enable_x64(True):
    np.testing.assert_array_equal(np.asarray(ours(KEY, (37, 53), jnp.float64)),
                                  np.asarray(theirs(KEY, (37, 53), jnp.float64)))


@pytest.mark.parametrize("ours,theirs", [
    (jaxinit.normal(0.02), jax.nn.initializers.normal(0.02)),
    (jaxinit.normal(0.3), jax.nn.initializers.normal(0.3)),
    (jaxinit.truncated_normal(0.02), jax.nn.initializers.truncated_normal(0.02)),
    (jaxinit.truncated_normal(0.7, lower=-3.0, upper=1.5),
     jax.nn.initializers.truncated_normal(0.7, lower=-3.0, upper=1.5)),
])
def test_fixed_stddev_within_one_ulp_of_jax(ours, theirs):
  a = np.asarray(ours(KEY, (64, 64)))
  b = np.asarray(theirs(KEY, (64, 64)))
  np.testing.assert_array_max_ulp(a, b, maxulp=1)


def _haar_statistics(sample_fn, n=4, count=20_000):
  keys = jax.random.split(jax.random.key(7), count)
  q = np.asarray(jax.jit(jax.vmap(lambda k: sample_fn(k, (n, n))))(keys), np.float64)
  tr = np.trace(q, axis1=1, axis2=2)
  return q, tr


@pytest.mark.parametrize("ours,theirs", [
    (jaxinit.orthogonal(), jax.nn.initializers.orthogonal()),
    (jaxinit.orthogonal(2.0, column_axis=-2), jax.nn.initializers.orthogonal(2.0, column_axis=-2)),
])
def test_orthogonal_matches_jax_in_distribution(ours, theirs):
  from scipy import stats
  q_ours, tr_ours = _haar_statistics(ours)
  q_jax, tr_jax = _haar_statistics(theirs)
  scale = ours.scale ** 0.5
  # Haar moments on O(n): E[tr Q] = 0, E[(tr Q)^2] = 1.
  for tr in (tr_ours, tr_jax):
    tr = tr / scale
    assert abs(tr.mean()) <= Z * tr.std() / math.sqrt(tr.size)
    sq = tr**2
    assert abs(sq.mean() - 1.0) <= Z * sq.std() / math.sqrt(sq.size)
  # Entries: same marginal law as jax's QR-based sampler.
  assert stats.ks_2samp(q_ours[:, 0, 0], q_jax[:, 0, 0]).pvalue > 1e-4
  assert stats.ks_2samp(q_ours[:, 1, 2], q_jax[:, 1, 2]).pvalue > 1e-4


def test_delta_orthogonal_matches_jax_in_distribution():
  from scipy import stats
  shape = (3, 4, 4)
  keys = jax.random.split(jax.random.key(3), 5000)
  ours = np.asarray(jax.vmap(lambda k: jaxinit.delta_orthogonal()(k, shape))(keys))
  theirs = np.asarray(jax.vmap(lambda k: jax.nn.initializers.delta_orthogonal()(k, shape))(keys))
  for w in (ours, theirs):
    assert np.all(w[:, [0, 2]] == 0)
    g = np.einsum("bij,bik->bjk", w[:, 1], w[:, 1])
    np.testing.assert_allclose(g, np.broadcast_to(np.eye(4), g.shape), atol=1e-5)
  assert stats.ks_2samp(ours[:, 1, 0, 0], theirs[:, 1, 0, 0]).pvalue > 1e-4


def test_torch_linear_default():
  fan_in = 300
  w = np.asarray(jaxinit.torch_linear_default()(KEY, (fan_in, 200)))
  b = np.asarray(jaxinit.torch_linear_bias(fan_in)(KEY, (200,)))
  bound = 1 / math.sqrt(fan_in)
  assert np.abs(w).max() <= bound and np.abs(w).max() > 0.999 * bound
  assert np.abs(b).max() <= bound
  assert_mean_and_variance(w, bound**2 / 3, "torch_linear_default")


def test_dirac_and_identity():
  eye = jaxinit.identity()(KEY, (4, 6))
  np.testing.assert_array_equal(np.asarray(eye), np.eye(4, 6))
  kernel = np.asarray(jaxinit.dirac(2.0)(KEY, (4, 3, 5, 5)))
  assert np.all(kernel[1, 1] == 2 * np.eye(5)) and np.count_nonzero(kernel) == 5
  # 'SAME' convolution with the Dirac kernel is 2 x identity, even kernel size included.
  x = jax.random.normal(KEY, (1, 9, 9, 5))
  y = jax.lax.conv_general_dilated(x, jnp.asarray(kernel), (1, 1), "SAME",
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(np.asarray(y), 2 * np.asarray(x), rtol=1e-6)


def test_delta_orthogonal_conv_is_isometry():
  kernel = jaxinit.delta_orthogonal()(KEY, (3, 8, 16))
  x = jax.random.normal(KEY, (2, 20, 8))
  y = jax.lax.conv_general_dilated(x, kernel, (1,), "SAME",
                                   dimension_numbers=("NWC", "WIO", "NWC"))
  np.testing.assert_allclose(np.linalg.norm(np.asarray(y), axis=-1),
                             np.linalg.norm(np.asarray(x), axis=-1), rtol=1e-5)


def test_depth_scaled_rules():
  base = jaxinit.normal(0.02)
  gpt2 = jaxinit.depth_scaled(base, 12, "gpt2")
  assert math.isclose(gpt2.scale, 0.02**2 / 24)
  fixup = jaxinit.depth_scaled(jaxinit.he_normal(), 16, "fixup", branch_layers=3)
  assert math.isclose(fixup.scale, 2.0 * 16 ** (-2 / 4))
  assert jaxinit.depth_scaled(jaxinit.he_normal(), 5, "zero") == jaxinit.zeros
  assert math.isclose(jaxinit.depth_scaled(base, 4, "sqrt_depth").scale, 0.02**2 / 4)
  # Wrapping a deterministic or foreign init scales its values.
  w = jaxinit.depth_scaled(jaxinit.dirac(), 8, "gpt2")(KEY, (3, 3))
  np.testing.assert_allclose(np.asarray(w), np.eye(3) / 4, rtol=1e-7)
  foreign = jaxinit.depth_scaled(jax.nn.initializers.ones, 2, "sqrt_depth")
  np.testing.assert_allclose(np.asarray(foreign(KEY, (2,))), [2**-0.5] * 2, rtol=1e-7)
  gpt2_w = np.asarray(gpt2(KEY, (256, 256)))
  assert_mean_and_variance(gpt2_w, 0.02**2 / 24, "gpt2 depth-scaled")
