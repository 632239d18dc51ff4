"""Drop-in: every name shared with jax.nn.initializers takes jax's arguments with jax's meaning.

For each jax initializer and each of its documented call forms (positional,
keyword, the factory's default ``dtype``), ``jaxinit.X(*args, **kwargs)(key,
shape, dtype)`` equals jax's output bit for bit where the algorithm is the
same (float32 and float64), and in distribution where it is not (orthogonal).
"""

import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxinit

J = jax.nn.initializers
KEY = jax.random.key(13)
SHAPES = [(37, 53), (5, 7, 11)]

JAX_NAMES = sorted(name for name in dir(J) if not name.startswith("_") and name != "Initializer")


def test_every_jax_initializer_has_a_namesake():
  missing = [name for name in JAX_NAMES if not hasattr(jaxinit, name)]
  assert not missing
  assert isinstance(jaxinit.he_normal(), J.Initializer)
  assert isinstance(jaxinit.zeros, J.Initializer)


@pytest.mark.parametrize("name", [n for n in JAX_NAMES if n not in ("zeros", "ones")])
def test_same_positional_parameters_then_keyword_only_extras(name):
  """jax's parameters, in jax's order, with jax's defaults; anything more is keyword-only."""
  theirs = list(inspect.signature(getattr(J, name)).parameters.values())
  ours = list(inspect.signature(getattr(jaxinit, name)).parameters.values())
  assert [(p.name, p.default) for p in ours[:len(theirs)]] == [
      (p.name, p.default) for p in theirs], name
  assert all(p.kind == p.POSITIONAL_OR_KEYWORD for p in ours[:len(theirs)])
  assert all(p.kind == p.KEYWORD_ONLY for p in ours[len(theirs):]), name


# (name, args, kwargs): jax's documented call forms. Each must equal jax's values bit for bit.
BIT_FOR_BIT = [
    ("constant", (-7,), {}),
    ("constant", (0.3, jnp.float32), {}),
    ("constant", (), {"value": 2.5, "dtype": jnp.float64}),
    ("normal", (), {}),
    ("normal", (0.5,), {}),
    ("normal", (0.5, jnp.float32), {}),
    ("normal", (), {"stddev": 0.02, "dtype": jnp.float64}),
    ("normal", (-0.3,), {}),  # jax multiplies by the signed value
    ("normal", (1e20,), {}),
    ("uniform", (), {}),
    ("uniform", (0.5,), {}),
    ("uniform", (0.5, jnp.float32), {}),
    ("uniform", (), {"scale": -2.0}),
    ("truncated_normal", (), {}),
    ("truncated_normal", (0.1,), {}),
    ("truncated_normal", (0.1, jnp.float32), {}),
    ("truncated_normal", (0.7, jnp.float32, -3.0, 1.5), {}),
    ("truncated_normal", (), {"stddev": 0.3, "lower": 0.5, "upper": 4.0}),
    ("truncated_normal", (-0.1,), {}),
    ("variance_scaling", (2.0, "fan_in", "normal"), {}),
    ("variance_scaling", (0.7, "fan_geo_avg", "truncated_normal"), {}),
    ("variance_scaling", (3.0, "fan_out", "uniform", -2, -1), {}),
    ("variance_scaling", (1.0, "fan_avg", "uniform", 0, -1, (), jnp.float32), {}),
    ("variance_scaling", (1.0, "fan_avg", "normal"), {"in_axis": (0, 1), "out_axis": -1}),
    ("variance_scaling", (), {"scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal",
                              "dtype": jnp.float64}),
]
for _name in ("glorot_normal", "glorot_uniform", "xavier_normal", "xavier_uniform", "he_normal",
              "he_uniform", "kaiming_normal", "kaiming_uniform", "lecun_normal", "lecun_uniform"):
  BIT_FOR_BIT += [(_name, (), {}), (_name, (0, 1), {}), (_name, (-2, -1, (), jnp.float32), {}),
                  (_name, (), {"in_axis": -3, "out_axis": -1}),
                  (_name, (), {"batch_axis": 0, "dtype": jnp.float64})]


def _ids(case):
  name, args, kwargs = case
  parts = [repr(a) if not isinstance(a, type) else a.__name__ for a in args]
  parts += [f"{k}={v if not isinstance(v, type) else v.__name__}" for k, v in kwargs.items()]
  return f"{name}({', '.join(parts)})"


@pytest.mark.parametrize("case", BIT_FOR_BIT, ids=[_ids(c) for c in BIT_FOR_BIT])
def test_bit_for_bit_with_jax(case):
  name, args, kwargs = case
  ours, theirs = getattr(jaxinit, name)(*args, **kwargs), getattr(J, name)(*args, **kwargs)
  compared = 0
  with jax.enable_x64(True):  # a float64 default dtype needs x64 to mean float64
    for shape in SHAPES:
      try:
        # No dtype at the call: the factory's default dtype applies, as in jax.
        b = theirs(KEY, shape)
      except (IndexError, ValueError, TypeError):  # axes that do not fit this shape
        with pytest.raises((ValueError, TypeError)):
          ours(KEY, shape)
        continue
      try:
        a = ours(KEY, shape)
      except ValueError as err:  # jax computes fractional fans from overlapping axes
        assert "overlap" in str(err)
        continue
      assert a.dtype == b.dtype and a.shape == b.shape == shape
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
      dtype = jnp.float32 if a.dtype == jnp.float64 else jnp.float64
      np.testing.assert_array_equal(np.asarray(ours(KEY, shape, dtype)),
                                    np.asarray(theirs(KEY, shape, dtype)))
      compared += 1
  assert compared


def test_factory_dtype_is_the_default_of_the_call():
  for init in (jaxinit.uniform(dtype=jnp.bfloat16), jaxinit.he_normal(dtype=jnp.bfloat16),
               jaxinit.orthogonal(dtype=jnp.bfloat16), jaxinit.constant(1.0, jnp.bfloat16),
               jaxinit.variance_scaling(1.0, "fan_in", "orthogonal", dtype="bfloat16"),
               jaxinit.dirac(dtype=jnp.bfloat16), jaxinit.normal(-0.1, jnp.bfloat16)):
    assert init(KEY, (4, 6)).dtype == jnp.bfloat16
    assert init(KEY, (4, 6), jnp.float32).dtype == jnp.float32  # the call's dtype wins
    assert jaxinit.get(init.to_config()) == init


def test_constant_broadcasts_arrays_as_jax_does():
  value = np.arange(6.0).reshape(1, 6)
  for args in ((value,), (jnp.asarray(value), jnp.float32), (np.arange(6),)):
    ours, theirs = jaxinit.constant(*args), J.constant(*args)
    np.testing.assert_array_equal(np.asarray(ours(KEY, (4, 6))), np.asarray(theirs(KEY, (4, 6))))
    assert hash(ours) == hash(jaxinit.constant(*args))
  with pytest.raises(ValueError, match="does not broadcast"):
    jaxinit.constant(value)(KEY, (4, 5))
  # A list is an array too (jax's constant refuses it).
  np.testing.assert_array_equal(np.asarray(jaxinit.constant([1.0, 2.0])(KEY, (3, 2))),
                                np.tile([1.0, 2.0], (3, 1)))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision_same_distribution_as_jax(dtype):
  """jax draws bfloat16/float16 directly, jaxinit in float32 then casts: same law, other bits."""
  from scipy import stats
  for ours, theirs in ((jaxinit.he_normal(), J.he_normal()), (jaxinit.uniform(0.5), J.uniform(0.5)),
                       (jaxinit.normal(0.5), J.normal(0.5))):
    a, b = ours(KEY, (200, 100), dtype), theirs(jax.random.key(1), (200, 100), dtype)
    assert a.dtype == b.dtype == jnp.dtype(dtype)
    assert stats.ks_2samp(np.asarray(a, np.float64).ravel(),
                          np.asarray(b, np.float64).ravel()).pvalue > 1e-4


@pytest.mark.parametrize("args,kwargs", [((), {}), ((2.0,), {}), ((2.0, 0), {}),
                                         ((1.0, -1, jnp.float32), {}), ((-1.5,), {}),
                                         ((), {"scale": 0.5, "column_axis": -2})])
def test_orthogonal_same_arguments_same_distribution(args, kwargs):
  scale = kwargs.get("scale", args[0] if args else 1.0)
  axis = kwargs.get("column_axis", args[1] if len(args) > 1 else -1)
  for shape in ((5, 8), (2, 3, 6)):
    ours, theirs = jaxinit.orthogonal(*args, **kwargs)(KEY, shape), J.orthogonal(
        *args, **kwargs)(KEY, shape)
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    for w in (ours, theirs):
      m = np.moveaxis(np.asarray(w, np.float64), axis, -1)
      m = m.reshape(-1, m.shape[-1]) / scale
      gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
      np.testing.assert_allclose(gram, np.eye(min(m.shape)), atol=1e-5)


@pytest.mark.parametrize("args", [(), (2.0,), (1.0, -2), (1.0, -1, jnp.float32), (1.0, 1)])
def test_delta_orthogonal_same_arguments_same_structure(args):
  for shape in ((3, 4, 4), (2, 2, 4, 8)):
    ours, theirs = jaxinit.delta_orthogonal(*args)(KEY, shape), J.delta_orthogonal(*args)(
        KEY, shape)
    assert ours.shape == theirs.shape == shape and ours.dtype == theirs.dtype
    centre = tuple((k - 1) // 2 for k in shape[:-2])
    for w in (np.asarray(ours, np.float64), np.asarray(theirs, np.float64)):
      tap = w[centre] / (args[0] if args else 1.0)
      np.testing.assert_allclose(tap @ tap.T, np.eye(shape[-2]), atol=1e-5)
      assert np.count_nonzero(w) == np.count_nonzero(w[centre])


def test_jax_distribution_names_and_jaxinit_samplers_both_work():
  for distribution in ("truncated_normal", "normal", "uniform", jaxinit.samplers.rademacher(),
                       {"name": "sparse", "fraction": 0.5}, "orthogonal"):
    w = jaxinit.variance_scaling(1.0, "fan_in", distribution)(KEY, (64, 32))
    assert w.shape == (64, 32) and np.isfinite(np.asarray(w)).all()
    assert abs(float(jnp.mean(w**2)) * 64 - 1.0) < 0.25


def test_uniform_keeps_jax_meaning_and_names_the_symmetric_one():
  w = np.asarray(jaxinit.uniform(0.1)(KEY, (10_000,)))
  assert w.min() >= 0.0 and w.max() < 0.1 and abs(w.mean() - 0.05) < 0.002
  s = np.asarray(jaxinit.uniform(0.1, symmetric=True)(KEY, (10_000,)))
  assert s.min() >= -0.1 and s.max() <= 0.1 and abs(s.mean()) < 0.002
  assert math.isclose(jaxinit.uniform(0.1, symmetric=True).scale, 0.1**2 / 3)
  with pytest.raises(TypeError, match="symmetric=True"):
    jaxinit.uniform(0.1)(KEY, (3,), jnp.complex64)


def test_overlapping_axes_are_refused_where_jax_computes_fractional_fans():
  # jax: batch_axis=0 and in_axis=-2 both name axis 0 of a matrix: fan_in = 37 * 53 / 37 / 53 / 37 * 37.
  assert J.he_normal(batch_axis=0)(KEY, (37, 53)).shape == (37, 53)
  with pytest.raises(ValueError, match="in_axis and batch_axis overlap on axes \\[0\\]"):
    jaxinit.he_normal(batch_axis=0)(KEY, (37, 53))
