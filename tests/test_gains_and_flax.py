"""Gains against reference constants and closed forms; Flax linen and NNX integration."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

import jaxinit
from jaxinit import _quadrature

# 1 / sqrt(E[phi(z)^2]) to 6 decimals (shared/REFERENCES.md).
REFERENCE_GAINS = {"relu": 1.414214, "tanh": 1.592537, "sigmoid": 1.846229, "silu": 1.676532,
                   "gelu": 1.533530, "softplus": 1.041867, "linear": 1.0}


@pytest.mark.parametrize("name", list(REFERENCE_GAINS))
def test_gain_reference_values(name):
  assert jaxinit.gain(name) == pytest.approx(REFERENCE_GAINS[name], abs=5e-7)


def test_gain_closed_forms():
  # ELU: E[elu^2] = 1/2 + e^2 Phi(-2) - 2 e^(1/2) Phi(-1) + 1/2 (exactly, by E[e^(az) 1{z<0}]).
  elu_moment = 1.0 + math.e**2 * stats.norm.cdf(-2) - 2 * math.exp(0.5) * stats.norm.cdf(-1)
  assert jaxinit.gain("elu") == pytest.approx(elu_moment**-0.5, rel=1e-12)
  # Leaky ReLU: E[phi^2] = (1 + a^2) / 2, so gain^2 * (1 + a^2) / 2 = 1, i.e. He's scale.
  for a in (0.01, 0.2, 1.0):
    assert jaxinit.gain("leaky_relu", negative_slope=a) ** 2 == pytest.approx(
        2 / (1 + a * a), rel=1e-12)
  # SELU's self-normalizing fixed point: E[selu(z)^2] = 1 to the published constants' precision.
  assert jaxinit.gain("selu") == pytest.approx(1.0, abs=5e-5)
  # Any traceable callable.
  assert jaxinit.gain(lambda x: 3.0 * x) == pytest.approx(1 / 3, rel=1e-14)


def test_quadrature_matches_adaptive_integration_for_kinked_and_smooth():
  for fn, ref in [
      (lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))), None),
      (lambda x: np.maximum(x, 0.0) ** 3, 2 / math.sqrt(2 * math.pi)),
      (np.tanh, None),
  ]:
    x, w = _quadrature.standard_normal_rule(32)
    value = float(np.sum(w * fn(x) ** 2))
    if ref is None:
      pdf = lambda t: math.exp(-t * t / 2) / math.sqrt(2 * math.pi)  # noqa: E731
      ref = sum(integrate.quad(lambda t: float(fn(np.array(t)) ** 2) * pdf(t), lo, hi,
                               epsabs=1e-14, epsrel=1e-13)[0]
                for lo, hi in [(-np.inf, 0), (0, np.inf)])
    else:  # E[relu(z)^6] = 15 / 2 ... written above as the cube squared
      ref = 15 / 2
    assert value == pytest.approx(ref, rel=1e-11)


def test_torch_gain_table():
  assert jaxinit.torch_gain("linear") == 1.0
  assert jaxinit.torch_gain("conv2d") == 1.0
  assert jaxinit.torch_gain("sigmoid") == 1.0
  assert jaxinit.torch_gain("tanh") == 5 / 3
  assert jaxinit.torch_gain("relu") == math.sqrt(2)
  assert jaxinit.torch_gain("leaky_relu") == math.sqrt(2 / (1 + 0.01**2))
  assert jaxinit.torch_gain("leaky_relu", 0.2) == math.sqrt(2 / 1.04)
  assert jaxinit.torch_gain("selu") == 0.75


def test_gain_composes_with_variance_scaling():
  g = jaxinit.gain("tanh")
  init = jaxinit.variance_scaling(g**2, "fan_in", "normal")
  x = jax.random.normal(jax.random.key(0), (4096, 512))
  w = init(jax.random.key(1), (512, 512))
  h = jnp.tanh(x) @ w  # tanh of unit-variance inputs, then a gain-scaled layer
  var = float(jnp.var(h))
  assert abs(var - 1.0) < 5 * math.sqrt(2 / 512)  # the spread over the 512 weight columns


# ----------------------------------------------------------------------------- Flax

def test_flax_linen_dense_and_conv():
  import flax.linen as nn

  class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
      x = nn.Conv(16, (3,), kernel_init=jaxinit.delta_orthogonal(),
                  bias_init=jaxinit.zeros)(x)
      x = nn.Dense(32, kernel_init=jaxinit.he_normal(), bias_init=jaxinit.normal(0.1),
                   param_dtype=jnp.bfloat16)(x)
      return nn.Dense(4, kernel_init=jaxinit.orthogonal())(x)

  x = jnp.ones((2, 10, 16))
  params = jax.jit(Net().init)(jax.random.key(0), x)["params"]
  conv = params["Conv_0"]["kernel"]
  assert conv.shape == (3, 16, 16) and np.count_nonzero(np.asarray(conv)[[0, 2]]) == 0
  np.testing.assert_allclose(np.asarray(conv[1].T @ conv[1]), np.eye(16), atol=1e-5)
  dense = params["Dense_0"]
  assert dense["kernel"].dtype == jnp.bfloat16 and dense["bias"].dtype == jnp.bfloat16
  readout = np.asarray(params["Dense_1"]["kernel"])
  np.testing.assert_allclose(readout.T @ readout, np.eye(4), atol=1e-5)
  assert Net().apply({"params": params}, x).shape == (2, 10, 4)


def test_flax_nnx_linear_and_conv():
  from flax import nnx

  rngs = nnx.Rngs(0)
  linear = nnx.Linear(64, 32, kernel_init=jaxinit.lecun_normal(),
                      bias_init=jaxinit.torch_linear_bias(64), rngs=rngs)
  conv = nnx.Conv(8, 8, kernel_size=(3,), kernel_init=jaxinit.dirac(), rngs=rngs)
  assert linear.kernel.shape == (64, 32)
  assert np.abs(np.asarray(linear.bias)).max() <= 1 / 8
  x = jax.random.normal(jax.random.key(1), (1, 12, 8))
  np.testing.assert_allclose(np.asarray(conv(x)), np.asarray(x), rtol=1e-6, atol=1e-6)
  # And the NNX kernel is exactly the initializer's output for the key NNX drew.
  replay = nnx.Rngs(0)
  key = replay.params()
  np.testing.assert_array_equal(np.asarray(linear.kernel),
                                np.asarray(jaxinit.lecun_normal()(key, (64, 32))))


# ----------------------------------------------------------------------------- inside traces

def _readme_flax_example() -> str:
  import pathlib
  readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
  section = readme[readme.index("## In Flax"):readme.index("## The algebra")]
  return section[section.index("```python") + len("```python"):section.index("```\n", 10)]


def test_readme_flax_example_runs_under_jit_and_nnx_jit():
  """The README's own example: jax.jit(model.init) with orthogonal(gain("tanh")), nnx.jit."""
  namespace: dict = {}
  exec(compile(_readme_flax_example(), "README.md", "exec"), namespace)  # noqa: S102
  params, layer = namespace["params"]["params"], namespace["layer"]
  assert "jax.jit(MLP().init)" in _readme_flax_example() and "@nnx.jit" in _readme_flax_example()
  q = np.asarray(params["Dense_1"]["kernel"], np.float64) / jaxinit.gain("tanh")
  np.testing.assert_allclose(q.T @ q, np.eye(256), atol=1e-4)
  assert layer.kernel.shape == (40, 256) and np.abs(np.asarray(layer.bias)).max() <= 40**-0.5
  # The same module, initialized eagerly, gives the same parameters.
  eager = namespace["MLP"]().init(jax.random.key(0), jnp.ones((1, 40)))["params"]
  np.testing.assert_allclose(np.asarray(eager["Dense_1"]["kernel"]),
                             np.asarray(params["Dense_1"]["kernel"]), atol=1e-6)


def test_nnx_jit_and_eval_shape_with_gain_in_the_module():
  from flax import nnx

  class Block(nnx.Module):
    def __init__(self, rngs):
      self.dense = nnx.Linear(16, 16, kernel_init=jaxinit.orthogonal(jaxinit.gain("tanh")),
                              rngs=rngs)
      self.conv = nnx.Conv(8, 8, (3,), feature_group_count=8,
                           kernel_init=jaxinit.dirac(feature_group_count=8), rngs=rngs)

  block = nnx.jit(lambda: Block(nnx.Rngs(0)))()
  shapes = nnx.eval_shape(lambda: Block(nnx.Rngs(0)))
  assert shapes.dense.kernel.shape == (16, 16) and shapes.conv.kernel.shape == (3, 1, 8)
  x = jax.random.normal(jax.random.key(2), (1, 5, 8))
  np.testing.assert_allclose(np.asarray(block.conv(x)), np.asarray(x), atol=1e-6)  # depthwise dirac


def test_gain_torch_gain_and_compute_fans_inside_every_trace():
  g = jaxinit.gain("tanh")
  fans = jaxinit.compute_fans((3, 3, 16, 32))

  def uses_all(x):
    fan_in, fan_out = jaxinit.compute_fans((3, 3, 16, 32))
    return x * jaxinit.gain("tanh") * jaxinit.torch_gain("leaky_relu", 0.2) * fan_in / fan_out

  expected = g * jaxinit.torch_gain("leaky_relu", 0.2) * fans[0] / fans[1]
  assert float(jax.jit(uses_all)(1.0)) == pytest.approx(expected, rel=1e-6)
  np.testing.assert_allclose(np.asarray(jax.vmap(uses_all)(jnp.ones(3))), expected, rtol=1e-6)
  assert jax.eval_shape(uses_all, 1.0).shape == ()
  _, ys = jax.lax.scan(lambda c, x: (c, uses_all(x)), 0.0, jnp.ones(4))
  np.testing.assert_allclose(np.asarray(ys), expected, rtol=1e-6)
  assert float(jax.grad(uses_all)(1.0)) == pytest.approx(expected, rel=1e-6)
  # A user activation inside jit: evaluated on the host at trace time, not cached.
  assert float(jax.jit(lambda x: x * jaxinit.gain(lambda z: 2.0 * jnp.tanh(z)))(1.0)) == (
      pytest.approx(g / 2, rel=1e-6))


def test_every_gain_first_computed_inside_vmap_grad_and_scan_equals_the_host_value():
  """A gain's first computation may happen inside any trace (cache empty); custom_jvp
  activations (jax.nn.relu, ...) bind to a batch trace unless evaluated apart."""
  names = sorted(jaxinit.gains.ACTIVATIONS)
  expected = np.asarray([jaxinit.gain(n) for n in names])

  @jax.custom_jvp
  def my_relu(x):
    return jnp.maximum(x, 0.0)
  my_relu.defjvp(lambda primals, tangents: (my_relu(primals[0]),
                                            jnp.where(primals[0] > 0, tangents[0], 0.0)))

  def gains_times(x):
    return x * jnp.asarray([jaxinit.gain(n) for n in names] + [jaxinit.gain(my_relu)])

  for trace in (lambda f: jax.vmap(f)(jnp.ones(2))[0],
                lambda f: jax.vmap(jax.jacobian(f))(jnp.ones(2))[0],
                lambda f: jax.lax.scan(lambda c, x: (c, f(x)), 0.0, jnp.ones(2))[1][0]):
    jaxinit.gains._second_moment_cached.cache_clear()
    got = np.asarray(trace(gains_times))
    np.testing.assert_allclose(got[:-1], expected, rtol=1e-6)
    assert got[-1] == pytest.approx(math.sqrt(2.0), rel=1e-6)
