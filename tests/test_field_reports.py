"""Fault classes from field reports (issue 11): precision of scales, argument types,
initializers as data, activations without finite moments, and small things users hit."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxinit
from jaxinit import samplers

KEY = jax.random.key(31)
J = jax.nn.initializers


# ----------------------------------------------------------------------------- 8. precision

def test_scales_are_computed_in_float64_on_the_host():
  z = np.asarray(jax.random.normal(KEY, (1000,)), np.float64)
  for stddev in (1e20, 1e-22, 1e-23, 1e-30):  # inf, 1% off, zeros, zeros before
    w = np.asarray(jaxinit.normal(stddev)(KEY, (1000,)), np.float64)
    assert np.isfinite(w).all() and np.all(w != 0)
    np.testing.assert_allclose(w, z * np.float32(stddev), rtol=1e-6)
  # A fan-based variance that float32 cannot hold (1e-52, 1e43) still gives the right factor.
  for scale in (1e-50, 1e45):
    w = np.asarray(jaxinit.variance_scaling(scale, "fan_in", "normal")(KEY, (100, 10)),
                   np.float64)
    base = np.asarray(jaxinit.variance_scaling(1.0, "fan_in", "normal")(KEY, (100, 10)),
                      np.float64)
    assert np.isfinite(w).all() and np.all(w != 0)
    np.testing.assert_allclose(w / base, math.sqrt(scale), rtol=1e-6)


@pytest.mark.parametrize("make,dtype,words", [
    (lambda: jaxinit.constant(1e300), jnp.float32, r"value=1e\+300 cannot be represented in float32"),
    (lambda: jaxinit.constant(1e-50), jnp.float32, "value=1e-50 cannot be represented in float32"),
    (lambda: jaxinit.constant([1.0] * 5 + [1e6]), jnp.float16, "value=1e\\+06 .*float16"),
    (lambda: jaxinit.constant(1e300 + 1j), jnp.complex64, "complex64"),
    (lambda: jaxinit.normal(1e5), jnp.float16, r"scale=1e\+10.*float16"),
    (lambda: jaxinit.he_normal(), jnp.float16, None),  # fine: the check refuses only what fails
    (lambda: jaxinit.uniform(1e5), jnp.float16, "scale=100000 cannot be represented in float16"),
    (lambda: jaxinit.uniform(7e4, symmetric=True), jnp.float16, "largest draw"),
    (lambda: jaxinit.dirac(1e39), jnp.float32, "scale=1e\\+39 cannot be represented in float32"),
    (lambda: jaxinit.variance_scaling(1e-100, "unit", "normal"), jnp.float32, "rounds to 0"),
])
def test_unrepresentable_results_are_errors_naming_argument_and_dtype(make, dtype, words):
  init = make()
  if words is None:
    assert np.isfinite(np.asarray(init(KEY, (64, 32), dtype), np.float32)).all()
    return
  with pytest.raises(ValueError, match=words):
    init(KEY, (4, 6), dtype)


# ----------------------------------------------------------------------------- 9. input types

def test_integral_numpy_and_jax_scalars_are_ints():
  fan_in = np.prod((3, 3, 16))  # np.int64(144): refused before
  assert jaxinit.torch_linear_bias(fan_in) == jaxinit.torch_linear_bias(144)
  assert jaxinit.depth_scaled(jaxinit.he_normal(), np.int32(4)) == jaxinit.depth_scaled(
      jaxinit.he_normal(), 4)
  assert jaxinit.compute_fans((np.int64(3), jnp.asarray(4)), np.int16(0), jnp.int32(1)) == (3, 4)
  assert jaxinit.dirac(feature_group_count=np.uint8(2)).feature_group_count == 2
  assert jaxinit.he_normal()(KEY, np.array([4, 5])).shape == (4, 5)


@pytest.mark.parametrize("call,exc,words", [
    (lambda: jaxinit.he_normal()(KEY, (True, 4)), TypeError, "shape must be a sequence of ints"),
    (lambda: jaxinit.he_normal()(KEY, (3.0, 4)), TypeError, "shape must be a sequence of ints"),
    (lambda: jaxinit.compute_fans((3, 4), in_axis="a"), TypeError,
     "in_axis must be an int or a sequence of ints"),
    (lambda: jaxinit.compute_fans((3, 4), feature_group_count=True), TypeError,
     "feature_group_count must be a positive int"),
    (lambda: jaxinit.normal("0.1"), TypeError, "stddev must be a finite number"),
    (lambda: jaxinit.uniform([0.1]), TypeError, "scale must be a finite number"),
    (lambda: jaxinit.truncated_normal(0.1, lower="a"), TypeError, "lower must be"),
    (lambda: jaxinit.orthogonal(True), TypeError, "scale must be"),
    (lambda: jaxinit.orthogonal(column_axis=1.0), TypeError, "column_axis must be an int"),
    (lambda: jaxinit.he_normal(negative_slope="a"), TypeError, "negative_slope must be"),
    (lambda: jaxinit.he_normal(mode="fan_inn"), ValueError, "did you mean 'fan_in'"),
    (lambda: jaxinit.get({"name": ["he_normal"]}), TypeError, "initializer name must be one of"),
    (lambda: jaxinit.get("he_norml"), ValueError, "did you mean 'he_normal'"),
    (lambda: jaxinit.torch_linear_bias(144.0), TypeError, "fan_in must be a positive int"),
    (lambda: jaxinit.torch_linear_bias(True), TypeError, "fan_in must be a positive int"),
    (lambda: jaxinit.depth_scaled(jaxinit.he_normal(), 2.0), TypeError, "depth"),
    (lambda: jaxinit.torch_gain("leaky_relu", "a"), TypeError, "param"),
    (lambda: jaxinit.torch_gain("tanhh"), ValueError, "did you mean 'tanh'"),
    (lambda: jaxinit.gain("relu", num_nodes=2.0), TypeError, "num_nodes"),
    (lambda: jaxinit.samplers.sparse(True), TypeError, "fraction"),
    (lambda: jaxinit.uniform(0.1, symmetric=1), TypeError, "symmetric must be true or false"),
    (lambda: jaxinit.constant("1"), TypeError, "value must be a finite number"),
    (lambda: jaxinit.he_normal(dtype=jnp.int32), TypeError, "dtype must be a floating"),
    # mode="unit" checks the axes it is given against the shape, as every mode does.
    (lambda: jaxinit.variance_scaling(1.0, "unit", "normal", in_axis=5)(KEY, (3, 4)), ValueError,
     "in_axis=5 is out of range"),
    (lambda: jaxinit.variance_scaling(1.0, "unit", "normal", batch_axis=0, in_axis=0)(KEY, (3, 4)),
     ValueError, "overlap"),
])
def test_one_set_of_argument_checks(call, exc, words):
  with pytest.raises(exc, match=words):
    call()


def test_negative_scales_multiply_as_in_jax_never_silently_positive():
  for name, args in (("normal", (-0.1,)), ("uniform", (-0.1,)), ("truncated_normal", (-0.1,))):
    np.testing.assert_array_equal(np.asarray(getattr(jaxinit, name)(*args)(KEY, (8, 8))),
                                  np.asarray(getattr(J, name)(*args)(KEY, (8, 8))))
  for make in (jaxinit.orthogonal, jaxinit.delta_orthogonal, jaxinit.normal,
               lambda s: jaxinit.uniform(s, symmetric=True)):
    np.testing.assert_array_equal(np.asarray(make(-2.0)(KEY, (3, 4, 4))),
                                  -np.asarray(make(2.0)(KEY, (3, 4, 4))))
  assert jaxinit.get(jaxinit.normal(-0.1).to_config()) == jaxinit.normal(-0.1)


# ----------------------------------------------------------------------------- 10. data

def test_concrete_jax_scalars_become_python_numbers():
  pairs = [(jaxinit.variance_scaling(jnp.float32(2.0), "fan_in", "normal"),
            jaxinit.variance_scaling(2.0, "fan_in", "normal")),
           (jaxinit.normal(jnp.asarray(0.5)), jaxinit.normal(0.5)),
           (jaxinit.orthogonal(np.float64(2.0)), jaxinit.orthogonal(2.0)),
           (jaxinit.constant(jnp.asarray(0.25)), jaxinit.constant(0.25)),
           (jaxinit.dirac(jnp.asarray(3.0)), jaxinit.dirac(3.0)),
           (jaxinit.uniform(jnp.asarray(0.5)), jaxinit.uniform(0.5)),
           (jaxinit.truncated_normal(0.1, lower=np.float32(-1.0)),
            jaxinit.truncated_normal(0.1, lower=-1.0))]
  for ours, plain in pairs:
    assert ours == plain and hash(ours) == hash(plain)
    assert jaxinit.get(json.loads(json.dumps(ours.to_config()))) == ours


@pytest.mark.parametrize("value", [1 + 2j, -0.5j, np.complex64(3 - 1j), np.array([1 + 1j, 2.0]),
                                   np.eye(2), [[1.0, 2.0]]], ids=repr)
def test_constants_round_trip_through_json(value):
  init = jaxinit.constant(value)
  hash(init)
  rebuilt = jaxinit.get(json.loads(json.dumps(init.to_config())))
  assert rebuilt == init
  dtype = jnp.complex64 if np.iscomplexobj(value) else jnp.float32
  np.testing.assert_array_equal(np.asarray(rebuilt(KEY, (2, 2), dtype)),
                                np.asarray(init(KEY, (2, 2), dtype)))
  np.testing.assert_array_equal(np.asarray(init(KEY, (2, 2), dtype)),
                                np.broadcast_to(np.asarray(value, dtype), (2, 2)))


def test_traced_scalars_stay_traced():
  scales = jnp.array([0.5, 2.0])
  out = jax.vmap(lambda s: jaxinit.normal(s)(KEY, (5,)))(scales)
  base = np.asarray(jax.nn.initializers.normal(1.0)(KEY, (5,)))
  np.testing.assert_array_equal(np.asarray(out), base[None] * np.asarray(scales)[:, None])
  for make in (jaxinit.constant, jaxinit.dirac, jaxinit.uniform, jaxinit.orthogonal,
               lambda s: jaxinit.variance_scaling(s, "fan_in", "normal"),
               lambda s: jaxinit.scaled(jaxinit.he_normal(), s)):
    w = jax.jit(lambda s, make=make: make(s)(KEY, (3, 3)))(2.0)
    np.testing.assert_allclose(np.asarray(w), np.asarray(make(2.0)(KEY, (3, 3))), rtol=1e-6)


# ----------------------------------------------------------------------------- 11. moments

@pytest.mark.parametrize("activation,label", [
    (lambda x: jnp.exp(x**2), "<lambda>"), (lambda x: 1.0 / x, "<lambda>"), (jnp.log, "log"),
    (lambda x: jnp.exp(x**2 / 4.0), "<lambda>"), (lambda x: 1.0 / (x - 0.3), "<lambda>")])
def test_gain_refuses_activations_without_a_finite_second_moment(activation, label):
  # Before: exp(x^2) gave 9.9e-108 and 1/x 0.0397.
  with pytest.raises(ValueError, match=f"activation {label} has no finite E"):
    jaxinit.gain(activation)


def test_gain_is_exact_for_kinks_away_from_zero():
  # E[hard_tanh(z)^2] = (2 Phi(1) - 1) - 2 phi(1) + 2 (1 - Phi(1)); the Gauss rule was 4e-4 off.
  moment = 2 * stats.norm.cdf(1) - 1 - 2 * stats.norm.pdf(1) + 2 * stats.norm.sf(1)
  assert jaxinit.gain(lambda x: jnp.clip(x, -1.0, 1.0)) == pytest.approx(moment**-0.5, rel=1e-9)
  # relu6: E = E[relu^2] - E[(z^2 - 36) 1{z > 6}] = 1/2 - (6 phi(6) + Q(6)) + 36 Q(6).
  relu6 = 0.5 - 6 * stats.norm.pdf(6) + 35 * stats.norm.sf(6)
  assert jaxinit.gain(jax.nn.relu6) == pytest.approx(relu6**-0.5, rel=1e-12)


# ----------------------------------------------------------------------------- 12. small things

def test_calling_zeros_like_a_factory_says_what_to_do():
  for init, name in ((jaxinit.zeros, "zeros"), (jaxinit.ones, "ones")):
    with pytest.raises(TypeError, match=f"{name} is already an initializer.*jaxinit.{name}_init"):
      init()
  assert jaxinit.zeros_init() is jaxinit.zeros and jaxinit.ones_init() is jaxinit.ones


def test_embedding_fans_are_the_feature_axis():
  import flax.linen as nn
  shape = (50_000, 64)
  table = np.asarray(jaxinit.embedding()(KEY, shape), np.float64)
  assert abs((table**2).sum(axis=1).mean() - 1.0) < 0.01  # he_normal would give ~0.0026
  assert jaxinit.embedding().fan(shape) == 64 and jaxinit.he_normal().fan(shape) == 50_000
  # Flax's own default embedding init, bit for bit.
  for shape in ((1000, 64), (7, 3)):
    np.testing.assert_array_equal(np.asarray(jaxinit.embedding()(KEY, shape)),
                                  np.asarray(nn.linear.default_embed_init(KEY, shape)))
  embed = nn.Embed(100, 16, embedding_init=jaxinit.embedding())
  params = embed.init(KEY, jnp.arange(3))
  assert params["params"]["embedding"].shape == (100, 16)


def test_gain_reference_value_of_elu():
  assert round(jaxinit.gain("elu"), 6) == 1.245198
  assert "elu 1.245198" in jaxinit.gain.__doc__
