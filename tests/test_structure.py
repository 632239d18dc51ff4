"""Batch axes and convolution groups: every structured sampler draws each slice on its own.

A batch slice (and a group of a grouped convolution) is an independent draw of
the sampler's structure with its own fans, equal in distribution to a single
draw of the slice's shape; elementwise samplers keep drawing the whole array
at once (the same law, and jax's values).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxinit
from jaxinit import samplers
from stats import assert_mean_and_variance

KEY = jax.random.key(29)


def _gram_error(m):
  m = np.asarray(m, np.float64)
  gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
  return np.abs(gram - np.eye(min(m.shape))).max()


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16, jnp.complex64])
def test_batched_orthogonal_slices_are_orthogonal(dtype):
  # The field report: max |W^T W - I| was 0.5-0.8 per slice.
  init = jaxinit.variance_scaling(1.0, "fan_max", "orthogonal", in_axis=None, batch_axis=0)
  w = init(KEY, (4, 16, 16), dtype)
  assert w.shape == (4, 16, 16) and w.dtype == jnp.dtype(dtype)
  tolerance = 16 * float(jnp.finfo(dtype).eps)
  for q in np.asarray(w.astype(jnp.complex64 if dtype == jnp.complex64 else jnp.float32)):
    gram = q.conj().T @ q
    assert np.abs(gram - np.eye(16)).max() <= tolerance
  assert not np.allclose(np.asarray(w[0], np.complex64), np.asarray(w[1], np.complex64))


@pytest.mark.parametrize("shape,batch_axis,column_axis", [
    ((3, 8, 5), 0, -1), ((8, 3, 5), 1, -1), ((5, 2, 8, 3), (0, 2), -1), ((6, 4, 2), 2, 0)])
def test_batched_orthogonal_any_batch_axes(shape, batch_axis, column_axis):
  """Batch axes anywhere; the sampler sees the slice (the shape without them)."""
  init = jaxinit.variance_scaling(1.0, "fan_max", samplers.orthogonal(column_axis),
                                  in_axis=None, out_axis=column_axis if column_axis < 0 else 0,
                                  batch_axis=batch_axis)
  w = np.asarray(init(KEY, shape))
  batch = (batch_axis,) if isinstance(batch_axis, int) else batch_axis
  rest = [a for a in range(len(shape)) if a not in batch]
  slices = np.moveaxis(w, batch, range(len(batch))).reshape(-1, *[shape[a] for a in rest])
  for s in slices:
    m = np.moveaxis(s, column_axis, -1)
    assert _gram_error(m.reshape(-1, m.shape[-1])) <= 1e-5
  assert len({s.tobytes() for s in slices}) == len(slices)


def test_batched_slice_equals_single_draw_in_distribution():
  """Each slice of a batched draw has the law of one unbatched draw (and slices are
  uncorrelated): entries of 2000 batched 3x3 orthogonal slices against 2000 single draws."""
  batched = jaxinit.variance_scaling(1.0, "fan_max", "orthogonal", in_axis=None, batch_axis=0)
  single = jaxinit.variance_scaling(1.0, "fan_max", "orthogonal", in_axis=None)
  keys = jax.random.split(KEY, 1000)
  a = np.asarray(jax.jit(jax.vmap(lambda k: batched(k, (2, 3, 3))))(keys))
  b = np.asarray(jax.jit(jax.vmap(lambda k: single(k, (3, 3))))(keys))
  for i, j in ((0, 0), (1, 2)):
    assert stats.ks_2samp(a[:, 0, i, j], b[:, i, j]).pvalue > 1e-4
    assert stats.ks_2samp(a[:, 1, i, j], b[:, i, j]).pvalue > 1e-4
  r = np.corrcoef(a[:, 0].reshape(1000, -1).T, a[:, 1].reshape(1000, -1).T)[:9, 9:]
  assert np.abs(r).max() < 5 / math.sqrt(1000)


def test_batched_delta_identity_and_sparse_keep_their_structure():
  # delta: the batch axis is not a spatial axis, so each slice has only its centre tap.
  delta = jaxinit.variance_scaling(1.0, "fan_max", samplers.delta("orthogonal"), batch_axis=0)
  w = np.asarray(delta(KEY, (5, 3, 4, 4)))
  assert np.count_nonzero(w[:, [0, 2]]) == 0
  for s in w[:, 1]:
    np.testing.assert_allclose(s @ s.T, np.eye(4), atol=1e-5)
  # identity: each slice is the identity with the slice's own fan.
  eye = jaxinit.variance_scaling(1.0, "fan_max", "identity", batch_axis=0)(KEY, (3, 4, 4))
  np.testing.assert_allclose(np.asarray(eye), np.broadcast_to(np.eye(4), (3, 4, 4)), rtol=1e-6)
  # sparse: exact zero counts per column of every slice.
  sparse = jaxinit.variance_scaling(1.0, "fan_in", samplers.sparse(0.5), in_axis=0,
                                    batch_axis=1)
  w = np.asarray(sparse(KEY, (10, 3, 6)))
  assert all(((w[:, b] == 0).sum(axis=0) == 5).all() for b in range(3))


def test_user_sampler_draws_each_slice_with_its_own_key_and_fans():
  def constant_draw(key, shape, dtype, out_sharding=None):
    """One random number per draw, broadcast: shows which elements one call drew."""
    return jnp.full(shape, jax.random.normal(key, (), dtype), dtype)

  init = jaxinit.variance_scaling(16.0, "fan_in", constant_draw, in_axis=1, out_axis=3,
                                  batch_axis=(0, 2))
  w = np.asarray(init(KEY, (3, 4, 2, 5)))
  per_slice = w.transpose(0, 2, 1, 3).reshape(6, 20)
  assert all(np.all(s == s[0]) for s in per_slice)   # one call per slice
  assert len(set(per_slice[:, 0])) == 6               # independent keys
  # fans of one (4, 5) slice: fan_in = 4, so the factor is sqrt(16 / 4) = 2.
  ones = jaxinit.variance_scaling(16.0, "fan_in", lambda k, s, d, o=None: jnp.ones(s, d),
                                  batch_axis=0)
  np.testing.assert_array_equal(np.asarray(ones(KEY, (3, 4, 5))), 2.0)


def test_elementwise_samplers_keep_one_draw_and_jax_values():
  ours = jaxinit.glorot_uniform(batch_axis=0)(KEY, (5, 7, 11))
  np.testing.assert_array_equal(
      np.asarray(ours), np.asarray(jax.nn.initializers.glorot_uniform(batch_axis=0)(
          KEY, (5, 7, 11))))


# ----------------------------------------------------------------------------- groups

FAN_PRESETS = [jaxinit.glorot_normal, jaxinit.glorot_uniform, jaxinit.he_normal, jaxinit.he_uniform,
               jaxinit.lecun_normal, jaxinit.lecun_uniform, jaxinit.kaiming_normal,
               jaxinit.xavier_uniform, jaxinit.torch_linear_default, jaxinit.orthogonal,
               jaxinit.delta_orthogonal]


@pytest.mark.parametrize("preset", FAN_PRESETS, ids=lambda p: p.__name__)
def test_every_fan_preset_takes_the_group_count(preset):
  init = preset(feature_group_count=4)
  assert init.feature_group_count == 4
  w = init(KEY, (3, 8, 32))
  assert w.shape == (3, 8, 32) and np.isfinite(np.asarray(w)).all()


def test_depthwise_fan_out():
  # Depthwise 3x3, 64 channels x multiplier 2: fan_out = 9 * 128 / 64 = 18 (was 9 * 128).
  init = jaxinit.he_normal(mode="fan_out", feature_group_count=64)
  assert init.fan((3, 3, 1, 128)) == 18
  assert_mean_and_variance(np.asarray(init(KEY, (3, 3, 1, 128)), np.float64), 2.0 / 18)


def _conv(x, kernel, groups):
  spatial = "DHW"[-(kernel.ndim - 2):]
  dn = ("N" + spatial + "C", spatial + "IO", "N" + spatial + "C")
  return jax.lax.conv_general_dilated(x, kernel, (1,) * (kernel.ndim - 2), "SAME",
                                      dimension_numbers=dn, feature_group_count=groups)


@pytest.mark.parametrize("spatial,channels,groups", [((5,), 16, 4), ((3, 3), 16, 4),
                                                     ((3, 3), 16, 16), ((3, 3, 3), 8, 2)])
def test_grouped_delta_orthogonal_is_an_isometry_layer_after_layer(spatial, channels, groups):
  # The field report: with 4 groups the squared norm shrank to ~0.25 per layer.
  init = jaxinit.delta_orthogonal(feature_group_count=groups)
  x = jax.random.normal(KEY, (2,) + (9,) * len(spatial) + (channels,))
  keys = jax.random.split(jax.random.key(1), 6)
  for k in keys:
    kernel = init(k, spatial + (channels // groups, channels))
    y = _conv(x, kernel, groups)
    centre = tuple(slice(2, -2) for _ in spatial)  # away from the zero padding
    ratio = float(jnp.sum(y[(slice(None),) + centre] ** 2) / jnp.sum(x[(slice(None),) + centre] ** 2))
    assert abs(ratio - 1.0) < 0.01
    x = y


@pytest.mark.parametrize("spatial,channels,groups", [((3,), 12, 3), ((4,), 6, 6), ((3, 3), 8, 8),
                                                     ((3, 3), 8, 2), ((3, 3, 3), 4, 4),
                                                     ((3, 2, 3), 6, 3)])
def test_grouped_and_depthwise_dirac_is_the_identity_map(spatial, channels, groups):
  # The field report: a depthwise conv with dirac() copied only channel 0.
  kernel = jaxinit.dirac(feature_group_count=groups)(KEY, spatial + (channels // groups, channels))
  x = jax.random.normal(KEY, (2,) + (7,) * len(spatial) + (channels,))
  np.testing.assert_allclose(np.asarray(_conv(x, kernel, groups)), np.asarray(x), rtol=1e-6,
                             atol=1e-6)


def test_grouped_orthogonal_blocks_and_torch_dirac_layout():
  w = np.asarray(jaxinit.orthogonal(feature_group_count=4)(KEY, (6, 12)), np.float64)
  for g in range(4):
    block = w[:, 3 * g:3 * (g + 1)]
    np.testing.assert_allclose(block.T @ block, np.eye(3), atol=1e-5)
  # torch.nn.init.dirac_(w, groups=2) on (out=4, in/groups=2, k=3): w[g*2 + d, d, 1] = 1.
  kernel = np.asarray(jaxinit.dirac(feature_group_count=2)(KEY, (3, 2, 4)))
  expected = np.zeros((3, 2, 4))
  for g in range(2):
    for d in range(2):
      expected[1, d, 2 * g + d] = 1.0
  np.testing.assert_array_equal(kernel, expected)


def test_delta_orthogonal_narrowing_is_a_co_isometry():
  """in > out (refused by jax): orthonormal columns at the centre, documented."""
  w = np.asarray(jaxinit.delta_orthogonal()(KEY, (3, 16, 8)), np.float64)
  np.testing.assert_allclose(w[1].T @ w[1], np.eye(8), atol=1e-5)
  assert np.count_nonzero(w[[0, 2]]) == 0
  with pytest.raises(ValueError, match="feature_group_count=3 must divide"):
    jaxinit.delta_orthogonal(feature_group_count=3)(KEY, (3, 4, 8))
