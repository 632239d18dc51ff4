"""Probes through capture give the old path's numbers on jaxinit.models.MLP / ResMLP."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import jaxinit
from jaxinit.models import MLP, ResMLP, functional
from jaxinit import probes
from jaxinit.capture import capture, forward


def _mse(y):
  return jnp.mean(y ** 2)


def _nnx_mlp(activation):
  # jaxinit.models.MLP is an NNX module: functional() gives the
  # old (functional) view of the very same weights.
  return MLP(4, 3, width=16, depth=5, activation=activation, rngs=nnx.Rngs(0))


def test_forward_probes_are_equal_through_capture_and_the_old_path():
  x = jax.random.normal(jax.random.key(0), (32, 4))
  for activation in ("relu", "tanh"):
    module = _nnx_mlp(activation)
    net, params = functional(module)
    assert isinstance(net, jaxinit.models.Functional)
    old = net.apply(params, x, capture=True)[1]["preactivations"]
    _, captured = capture(module, x)
    new = probes.captured_layers(captured, "input", "hidden")  # pre-activations
    assert new.shape == old.shape == (5, 32, 16)
    np.testing.assert_array_equal(new, old)
    for probe in (probes.layer_moments, probes.dead_fraction):
      np.testing.assert_array_equal(jax.tree.leaves(probe(new)), jax.tree.leaves(probe(old)))
    np.testing.assert_array_equal(probes.saturated_fraction(new), probes.saturated_fraction(old))


def test_gradient_norms_are_equal_through_capture_and_the_old_path():
  x = jax.random.normal(jax.random.key(1), (32, 4))
  module = _nnx_mlp("tanh")
  net, params = functional(module)
  old = probes.gradient_norms(net, params, x, _mse)
  fwd, state = forward(module)
  new = probes.output_gradient_norms(fwd, state, x, _mse, "input", "hidden")
  np.testing.assert_allclose(new["loss"], old["loss"], rtol=1e-6)
  np.testing.assert_allclose(new["activations"], old["activations"], rtol=1e-5)


def test_signal_propagation_of_a_resmlp_through_capture():
  x = jax.random.normal(jax.random.key(2), (32, 4))
  module = ResMLP(4, 3, width=16, depth=4, branch_scale=0.5, rngs=nnx.Rngs(0))
  net, params = functional(module)
  old = net.apply(params, x, capture=True)[1]
  _, captured = capture(module, x)
  branch = probes.captured_layers(captured, "blocks/branch")
  np.testing.assert_allclose(branch, old["branch"], rtol=1e-6, atol=1e-7)
  stats_old = probes.signal_propagation(old["preactivations"], old["branch"])
  stats_new = probes.signal_propagation(old["preactivations"], branch)
  np.testing.assert_allclose(stats_new["residual_variance"], stats_old["residual_variance"],
                             rtol=1e-6)
