"""jaxinit.capture: every module call's output of any model, under jit, vmap and grad."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxinit.models import MLP, ResMLP, functional
from jaxinit.capture import capture, forward, output_gradients


class Twice(nnx.Module):
  """Calls one Linear twice and a nested block once."""

  def __init__(self, rngs):
    self.shared = nnx.Linear(4, 4, rngs=rngs)
    self.block = nnx.Sequential(nnx.Linear(4, 8, rngs=rngs), jax.nn.tanh,
                                nnx.Linear(8, 4, rngs=rngs))

  def __call__(self, x):
    return self.shared(self.block(self.shared(x)))


def test_nnx_outputs_by_path_in_forward_order_with_repeated_calls():
  model = Twice(nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(0), (5, 4))
  y, captured = capture(model, x)
  assert list(captured) == ["shared", "block/layers/0", "block/layers/2", "block", "shared#1"]
  h = model.shared(x)
  np.testing.assert_array_equal(captured["shared"], h)
  np.testing.assert_array_equal(captured["block/layers/0"], model.block.layers[0](h))
  np.testing.assert_array_equal(captured["shared#1"], y)
  assert list(captured.select(nnx.Sequential)) == ["block"]
  assert list(captured.select("block/*")) == ["block/layers/0", "block/layers/2"]
  with pytest.raises(ValueError, match="matches no captured entry"):
    captured.select("nope")
  # The model is untouched: its class's __call__ is restored and it holds no capture state.
  assert not hasattr(nnx.Linear.__call__, "_jaxinit_capture")
  assert not any("jaxinit" in str(p) for p, _ in nnx.to_flat_state(nnx.state(model)))


def test_capture_is_pure_under_jit_and_vmap():
  model = Twice(nnx.Rngs(0))
  fwd, params = forward(model)
  x = jax.random.normal(jax.random.key(0), (5, 4))
  eager = fwd.capture(params, x)[1]
  jitted = jax.jit(fwd.capture)(params, x)[1]
  for k in eager:
    np.testing.assert_allclose(jitted[k], eager[k], rtol=1e-6)
  many = jax.tree.map(lambda a: jnp.stack([a, 2 * a]), params)
  batched = jax.vmap(fwd.capture, in_axes=(0, None))(many, x)[1]
  assert batched["block"].shape == (2, 5, 4)
  np.testing.assert_allclose(batched["shared"][0], eager["shared"], rtol=1e-6)


def test_scanned_stacks_come_out_stacked_one_entry_per_layer():
  model = ResMLP(3, 2, width=8, depth=4, rngs=nnx.Rngs(0))
  x = jnp.ones((5, 3))
  _, captured = capture(model, x)
  assert captured["blocks/hidden"].shape == (4, 5, 8)
  assert captured.stack_ndim("blocks/hidden") == 1
  assert "blocks/hidden[3]" in captured.layers()
  _, old = model(x, capture=True)
  np.testing.assert_allclose(captured["blocks/hidden"], old["inner"], rtol=1e-6)


def test_output_gradients_equal_the_chain_rule():
  model = nnx.Sequential(nnx.Linear(4, 8, rngs=nnx.Rngs(0)), jax.nn.tanh,
                         nnx.Linear(8, 1, rngs=nnx.Rngs(1)))
  fwd, params = forward(model)
  x = jax.random.normal(jax.random.key(0), (5, 4))
  loss, grads, _ = output_gradients(fwd, params, jnp.sum, x, where=["layers/0"])
  h = model.layers[0](x)
  expected = jax.grad(lambda h: jnp.sum(model.layers[2](jnp.tanh(h))))(h)
  np.testing.assert_allclose(grads["layers/0"], expected, rtol=1e-5)
  np.testing.assert_allclose(loss, jnp.sum(model(x)), rtol=1e-6)


def test_linen_and_equinox_models():
  import flax.linen as nn

  class Linen(nn.Module):
    @nn.compact
    def __call__(self, x):
      return nn.Dense(2, name="out")(nn.relu(nn.Dense(8, name="hidden")(x)))

  module, x = Linen(), jnp.ones((3, 4))
  variables = module.init(jax.random.key(0), x)
  y, captured = capture(module, x, variables=variables)
  assert list(captured) == ["hidden", "out"]
  np.testing.assert_allclose(captured["out"], y)
  eqx = pytest.importorskip("equinox")
  mlp = eqx.nn.MLP(4, 2, 8, 2, key=jax.random.key(0))
  y, captured = capture(mlp, x)
  assert captured["layers/0"].shape == (3, 8)
  np.testing.assert_allclose(captured["layers/2"], y, rtol=1e-6)
