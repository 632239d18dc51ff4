"""The combinator's algebra: fans, specs, errors, objects, jit/vmap, and properties."""

import math

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

import jaxinit

KEY = jax.random.key(5)


# ----------------------------------------------------------------------------- fans

@pytest.mark.parametrize("shape,kwargs,fans", [
    ((10, 20), {}, (10, 20)),
    ((3, 10, 20), {}, (30, 60)),
    ((3, 3, 10, 20), {}, (90, 180)),
    ((2, 3, 4, 10, 20), {}, (240, 480)),
    ((7, 10, 20), {"batch_axis": 0}, (10, 20)),
    ((4, 5, 6), {"in_axis": (0, 1), "out_axis": 2}, (20, 6)),
    ((4, 5, 6), {"in_axis": None, "out_axis": 0}, (30, 4)),
    ((3, 3, 4, 32), {"feature_group_count": 8}, (36, 36)),
    ((3, 3, 1, 64), {"feature_group_count": 64}, (9, 9)),
])
def test_compute_fans(shape, kwargs, fans):
  assert jaxinit.compute_fans(shape, **kwargs) == fans


def test_grouped_conv_variance():
  # Depthwise conv, 32 channels x multiplier 2: fan_out = 9 * 64 / 32 = 18.
  init = jaxinit.variance_scaling(1.0, "fan_out", "normal", feature_group_count=32)
  w = np.asarray(init(KEY, (3, 3, 1, 64)))
  assert init.fan((3, 3, 1, 64)) == 18
  assert abs(w.var() * 18 - 1.0) < 5 * math.sqrt(2 / w.size)


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize("make,exc,words", [
    (lambda: jaxinit.variance_scaling(-1.0, "fan_in", "normal"), ValueError, "scale"),
    (lambda: jaxinit.variance_scaling(math.nan, "fan_in", "normal"), ValueError, "scale"),
    (lambda: jaxinit.variance_scaling(math.inf, "fan_in", "normal"), ValueError, "scale"),
    (lambda: jaxinit.variance_scaling("2", "fan_in", "normal"), TypeError, "scale"),
    (lambda: jaxinit.variance_scaling(True, "fan_in", "normal"), TypeError, "scale"),
    (lambda: jaxinit.variance_scaling(1.0, "fan_mean", "normal"), ValueError, "mode must be one of"),
    (lambda: jaxinit.variance_scaling(1.0, "fan_in", "gaussian"), ValueError,
     "distribution must be one of"),
    (lambda: jaxinit.variance_scaling(1.0, "fan_in", 3), TypeError, "distribution must be"),
    (lambda: jaxinit.variance_scaling(1.0, "fan_in", "normal", in_axis=-1), ValueError,
     "in_axis and out_axis overlap"),
    (lambda: jaxinit.variance_scaling(1.0, "fan_in", "normal", batch_axis=(0, 0)), ValueError,
     "batch_axis"),
    (lambda: jaxinit.variance_scaling(1.0, "fan_in", "normal", in_axis=None, out_axis=None),
     ValueError, "both be None"),
    (lambda: jaxinit.variance_scaling(1.0, "fan_in", "normal", in_axis=1.5), TypeError, "in_axis"),
    (lambda: jaxinit.variance_scaling(1.0, "fan_in", "normal", feature_group_count=0),
     ValueError, "feature_group_count"),
    (lambda: jaxinit.samplers.truncated_normal(2.0, -2.0), ValueError, "lower must be < upper"),
    (lambda: jaxinit.samplers.truncated_normal(1e14, math.inf), ValueError,
     "cannot be sampled in float64"),
    (lambda: jaxinit.samplers.sparse(1.0), ValueError, "fraction"),
    (lambda: jaxinit.samplers.get({"name": "normal", "std": 2}), TypeError, "takes parameters"),
    (lambda: jaxinit.he_normal(negative_slope=math.inf), ValueError, "negative_slope"),
    (lambda: jaxinit.delta_orthogonal(column_axis=2), ValueError, "column_axis"),
    (lambda: jaxinit.depth_scaled(jaxinit.he_normal(), 0), ValueError, "depth"),
    (lambda: jaxinit.depth_scaled(jaxinit.he_normal(), 4, "deep"), ValueError, "rule must be one of"),
    (lambda: jaxinit.depth_scaled(jaxinit.he_normal(), 4, "fixup", branch_layers=1), ValueError,
     "branch_layers"),
    (lambda: jaxinit.torch_linear_bias(0), ValueError, "fan_in"),
    (lambda: jaxinit.constant(math.nan), ValueError, "value"),
    (lambda: jaxinit.get("he"), ValueError, "initializer name must be one of"),
    (lambda: jaxinit.get({"name": "he_normal", "slope": 0.1}), TypeError, "negative_slope"),
    (lambda: jaxinit.get(42), TypeError, "spec"),
    (lambda: jaxinit.gain("relu6"), ValueError, "activation must be"),
    (lambda: jaxinit.gain(lambda x: x.block_until_ready() + "a"), TypeError, "traceable"),
    (lambda: jaxinit.torch_gain("gelu"), ValueError, "name must be one of"),
    (lambda: jaxinit.torch_gain("tanh", 0.1), ValueError, "param"),
], ids=lambda x: x if isinstance(x, str) else "")
def test_construction_errors(make, exc, words):
  with pytest.raises(exc, match=words):
    make()


@pytest.mark.parametrize("init,shape,dtype,exc,words", [
    (jaxinit.he_normal(), (10,), None, ValueError, "rank is too small"),
    (jaxinit.he_normal(in_axis=3), (4, 5), None, ValueError, "in_axis=3 is out of range"),
    (jaxinit.he_normal(in_axis=-1, out_axis=1), (4, 5), None, ValueError, "overlap"),
    (jaxinit.he_normal(), (4, 5), jnp.int32, TypeError, "dtype must be a floating"),
    (jaxinit.he_normal(), (4, 5), jnp.bool_, TypeError, "dtype must be a floating"),
    (jaxinit.zeros, (4, 5), jnp.int8, TypeError, "dtype"),
    (jaxinit.orthogonal(), (16,), None, ValueError, "rank >= 2"),
    (jaxinit.orthogonal(column_axis=2), (4, 4), None, ValueError, "out_axis=2 is out of range"),
    (jaxinit.delta_orthogonal(), (4, 4), None, ValueError, "rank >= 3"),
    (jaxinit.dirac(), (4,), None, ValueError, "rank >= 2"),
    (jaxinit.variance_scaling(1.0, "fan_in", "normal", feature_group_count=3), (3, 4, 8), None,
     ValueError, "must divide"),
    (jaxinit.variance_scaling(1.0, "fan_in", jaxinit.samplers.sparse(0.9)), (5, 4), None,
     ValueError, "fraction"),
    (jaxinit.he_normal(), (4, -1), None, ValueError, "non-negative"),
    (jaxinit.he_normal(), "ab", None, TypeError, "shape"),
], ids=lambda x: x if isinstance(x, str) else "")
def test_call_errors(init, shape, dtype, exc, words):
  with pytest.raises(exc, match=words):
    init(KEY, shape, dtype)


def test_empty_batch_is_fine_and_never_nan():
  w = jaxinit.he_normal(batch_axis=0)(KEY, (0, 4, 5))
  assert w.shape == (0, 4, 5)
  # Zero-size kernels are empty arrays, not a zero-fan error (as PyTorch's no-op).
  for init, shape in ((jaxinit.he_normal(), (0, 5)), (jaxinit.glorot_uniform(), (3, 0, 0)),
                      (jaxinit.he_normal(), (0, 0))):
    w = init(KEY, shape)
    assert w.shape == shape and w.dtype == jnp.float32
  for init in (jaxinit.he_normal(), jaxinit.glorot_uniform(), jaxinit.orthogonal(),
               jaxinit.lecun_normal(), jaxinit.variance_scaling(0.0, "fan_in", "normal")):
    assert np.all(np.isfinite(np.asarray(init(KEY, (3, 4)))))


# ----------------------------------------------------------------------------- objects

ALL_INITS = [
    jaxinit.zeros, jaxinit.ones, jaxinit.constant(0.5), jaxinit.normal(0.02),
    jaxinit.uniform(0.1), jaxinit.uniform(0.1, symmetric=True),
    jaxinit.truncated_normal(0.02, lower=-3.0, upper=1.0), jaxinit.glorot_normal(),
    jaxinit.glorot_uniform(), jaxinit.he_normal(negative_slope=0.1, mode="fan_out"),
    jaxinit.he_uniform(),
    jaxinit.lecun_normal(batch_axis=0), jaxinit.lecun_uniform(), jaxinit.orthogonal(1.5),
    jaxinit.delta_orthogonal(), jaxinit.dirac(0.5), jaxinit.torch_linear_default(),
    jaxinit.torch_linear_bias(7), jaxinit.depth_scaled(jaxinit.normal(0.02), 6),
    jaxinit.depth_scaled(jaxinit.dirac(), 6, "fixup"),
    jaxinit.variance_scaling(2.0, "fan_geo_avg", jaxinit.samplers.sparse(0.5)),
    jaxinit.variance_scaling(1.0, "fan_max", jaxinit.samplers.delta("normal")),
    jaxinit.variance_scaling(1.0, "fan_in", "rademacher", in_axis=(0, 1), out_axis=2),
]


@pytest.mark.parametrize("init", ALL_INITS, ids=lambda i: repr(i)[:40])
def test_config_round_trip_same_array(init):
  config = init.to_config()
  rebuilt = jaxinit.get(config)
  assert rebuilt == init and hash(rebuilt) == hash(init)
  assert repr(rebuilt) == repr(init)
  shape = (3, 4, 6) if init != jaxinit.dirac(0.5) else (3, 4, 6)
  np.testing.assert_array_equal(np.asarray(init(KEY, shape)), np.asarray(rebuilt(KEY, shape)))
  # Plain data only: survives a TOML/JSON trip.
  import json
  assert jaxinit.get(json.loads(json.dumps(config))) == init


def test_get_by_name_and_dict():
  assert jaxinit.get("he_normal") == jaxinit.he_normal()
  assert jaxinit.get("xavier_uniform") == jaxinit.glorot_uniform()
  assert jaxinit.get("zeros") is jaxinit.zeros
  assert jaxinit.get({"name": "he_normal", "negative_slope": 0.1}) == jaxinit.he_normal(
      negative_slope=0.1)
  init = jaxinit.he_uniform()
  assert jaxinit.get(init) is init
  jaxinit.register("my_init", lambda width=2.0: jaxinit.normal(width))
  assert jaxinit.get({"name": "my_init", "width": 3.0}) == jaxinit.normal(3.0)


def test_objects_are_hashable_comparable_and_readable():
  assert jaxinit.he_normal() == jaxinit.he_normal()
  assert jaxinit.he_normal() != jaxinit.he_uniform()
  assert len({jaxinit.he_normal(), jaxinit.he_normal(), jaxinit.lecun_normal()}) == 2
  assert "VarianceScaling(scale=2.0, mode='fan_in'" in repr(jaxinit.he_normal())
  assert isinstance(jaxinit.he_normal(), jaxinit.Initializer)
  assert isinstance(jaxinit.samplers.normal(), jaxinit.Sampler)


def test_jit_and_vmap_over_keys():
  init = jaxinit.orthogonal()
  keys = jax.random.split(KEY, 4)
  batched = jax.jit(jax.vmap(lambda k: init(k, (8, 8))))(keys)
  for i in range(4):
    np.testing.assert_allclose(np.asarray(batched[i]), np.asarray(init(keys[i], (8, 8))),
                               atol=1e-6)
  he = jaxinit.he_normal()
  jitted = jax.jit(he, static_argnums=(1, 2))
  # Fused (jit) and op-by-op (eager) execution may round the scale multiply differently.
  np.testing.assert_array_max_ulp(np.asarray(jitted(KEY, (5, 6), jnp.float32)),
                                  np.asarray(he(KEY, (5, 6))), maxulp=1)


def test_traced_scale_under_vmap():
  scales = jnp.array([0.5, 1.0, 2.0])
  out = jax.vmap(lambda s: jaxinit.variance_scaling(s, "fan_in", "normal")(KEY, (64, 32)))(scales)
  base = np.asarray(jaxinit.variance_scaling(1.0, "fan_in", "normal")(KEY, (64, 32)))
  for s, w in zip([0.5, 1.0, 2.0], out):
    np.testing.assert_allclose(np.asarray(w), base * math.sqrt(s), rtol=1e-6)


def test_dtype_none_is_float32():
  assert jaxinit.he_normal()(KEY, (3, 4)).dtype == jnp.float32
  assert jaxinit.zeros(KEY, (3,)).dtype == jnp.float32


# ----------------------------------------------------------------------------- properties

@st.composite
def shapes_and_axes(draw):
  rank = draw(st.integers(2, 5))
  shape = tuple(draw(st.lists(st.integers(1, 5), min_size=rank, max_size=rank)))
  axes = draw(st.permutations(range(rank)))
  n_in = draw(st.integers(1, rank - 1))
  n_out = draw(st.integers(1, rank - n_in))
  n_batch = draw(st.integers(0, rank - n_in - n_out))
  in_axis = tuple(axes[:n_in])
  out_axis = tuple(axes[n_in:n_in + n_out])
  batch_axis = tuple(axes[n_in + n_out:n_in + n_out + n_batch])
  # Sometimes spell axes negatively, as users do.
  if draw(st.booleans()):
    in_axis = tuple(a - rank for a in in_axis)
  return shape, in_axis, out_axis, batch_axis


@settings(max_examples=20)
@given(shapes_and_axes(), st.sampled_from(jaxinit.MODES),
       st.sampled_from(["normal", "truncated_normal", "uniform", "rademacher"]),
       st.floats(0.1, 10.0))
def test_property_variance_scaling(case, mode, sampler, scale):
  shape, in_axis, out_axis, batch_axis = case
  init = jaxinit.variance_scaling(scale, mode, sampler, in_axis=in_axis, out_axis=out_axis,
                                  batch_axis=batch_axis)
  fan_in, fan_out = jaxinit.compute_fans(shape, in_axis, out_axis, batch_axis)
  size = math.prod(shape)
  batch = math.prod(shape[a] for a in batch_axis)
  # Invariant: fan_in * out_size == fan_out * in_size == size / batch * ... (receptive field)
  receptive = size // batch // math.prod(shape[a] for a in in_axis) // math.prod(
      shape[a] for a in out_axis)
  assert fan_in == receptive * math.prod(shape[a] for a in in_axis)
  assert fan_out == receptive * math.prod(shape[a] for a in out_axis)
  n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2,
       "fan_geo_avg": math.sqrt(fan_in * fan_out), "fan_max": max(fan_in, fan_out),
       "unit": 1}[mode]
  assert init.fan(shape) == pytest.approx(n)
  # One compiled program per example (eager mode would compile every primitive).
  w = jax.jit(init, static_argnums=1)(KEY, shape)
  assert w.shape == shape and w.dtype == jnp.float32
  assert np.all(np.isfinite(np.asarray(w)))
  # The bound of each sampler, in units of the target std, is never exceeded.
  bound = {"normal": math.inf, "truncated_normal": 2 / 0.8796256610342398,
           "uniform": math.sqrt(3), "rademacher": 1.0}[sampler]
  assert np.abs(np.asarray(w)).max() <= bound * math.sqrt(scale / n) * (1 + 1e-6)


@settings(max_examples=8)
@given(st.integers(1, 12), st.integers(1, 12), st.integers(1, 3))
def test_property_orthogonal_any_shape(rows, cols, extra):
  shape = (extra, rows, cols)
  w = np.asarray(jax.jit(jaxinit.orthogonal(), static_argnums=1)(KEY, shape), np.float64)
  m = w.reshape(extra * rows, cols)
  gram = m.T @ m if extra * rows >= cols else m @ m.T
  np.testing.assert_allclose(gram, np.eye(min(extra * rows, cols)), atol=1e-5)
