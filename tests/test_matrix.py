"""The property matrix: every public initializer x {eager, jit, vmap, eval_shape} x dtypes
{float32, bfloat16, float16, complex64} x shapes with batch axes and zero-size axes.

(The shard_map column runs on 4 CPU devices in tests/test_sharding.py.) Each
row compiles one program holding all its shapes and dtypes.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxinit
from matrix_cases import CASES, IDS, combos, outputs, tolerance

KEY = jax.random.key(41)
KEYS = jax.random.split(jax.random.key(42), 2)


def _check(out, shape, dtype):
  assert out.shape == shape and out.dtype == dtype, (out.shape, out.dtype, shape, dtype)
  assert np.isfinite(np.asarray(out.astype(jnp.complex64 if dtype == jnp.complex64
                                          else jnp.float32))).all()


def _close(a, b, dtype):
  wide = jnp.complex64 if dtype == jnp.complex64 else jnp.float32
  a, b = np.asarray(a.astype(wide)), np.asarray(b.astype(wide))
  scale = max(float(np.abs(b).max()), 1e-30) if b.size else 1.0
  np.testing.assert_allclose(a, b, rtol=0, atol=tolerance(dtype) * scale)


@pytest.mark.parametrize("name,init,shapes,dtypes", CASES, ids=IDS)
def test_eager_jit_vmap_and_eval_shape_agree(name, init, shapes, dtypes):
  del name
  draw_all = outputs(init, shapes, dtypes)
  eager = draw_all(KEY)
  jitted = jax.jit(draw_all)(KEY)
  abstract = jax.eval_shape(draw_all, KEY)
  batched = jax.jit(jax.vmap(draw_all))(KEYS)
  per_key = [draw_all(k) for k in KEYS]
  for i, (shape, dtype) in enumerate(combos(shapes, dtypes)):
    _check(eager[i], shape, dtype)
    _check(jitted[i], shape, dtype)
    _close(jitted[i], eager[i], dtype)
    assert (abstract[i].shape, abstract[i].dtype) == (shape, dtype)
    assert batched[i].shape == (2,) + shape and batched[i].dtype == dtype
    for j in range(2):
      _close(batched[i][j], per_key[j][i], dtype)
    if np.prod(shape) > 1 and name_is_random(init):
      assert not np.array_equal(np.asarray(batched[i][0], np.float32 if dtype != jnp.complex64
                                           else np.complex64),
                                np.asarray(batched[i][1], np.float32 if dtype != jnp.complex64
                                           else np.complex64))


def name_is_random(init) -> bool:
  return not isinstance(init, (jaxinit.Constant, jaxinit.Dirac)) and not (
      isinstance(init, jaxinit.Scaled) and isinstance(init.init, jaxinit.Dirac)) and not (
          isinstance(init, jaxinit.VarianceScaling) and isinstance(
              init.sampler, jaxinit.samplers.Identity))


def test_matrix_covers_every_public_initializer():
  covered = {type(case[1]) for case in CASES}
  assert {jaxinit.Constant, jaxinit.Uniform, jaxinit.VarianceScaling, jaxinit.Dirac,
          jaxinit.Scaled} <= covered
  names = {case[0].split("_grouped")[0].split("_batched")[0] for case in CASES}
  public = {"zeros", "ones", "constant", "normal", "uniform", "truncated_normal", "glorot_normal",
            "glorot_uniform", "he_normal", "he_uniform", "lecun_normal", "lecun_uniform",
            "orthogonal", "delta_orthogonal", "dirac", "embedding", "torch_linear_default",
            "torch_linear_bias", "depth_scaled"}
  assert public <= names, public - names
  samplers = {type(case[1].sampler).__name__ for case in CASES
              if isinstance(case[1], jaxinit.VarianceScaling)}
  assert {"Normal", "TruncatedNormal", "Uniform", "Orthogonal", "Rademacher", "Sparse", "Delta",
          "Identity"} <= samplers


def test_complex_uniform_on_half_open_interval_is_refused_clearly():
  with pytest.raises(TypeError, match="dtype must be real"):
    jaxinit.uniform(0.1)(KEY, (3,), jnp.complex64)
