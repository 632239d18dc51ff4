"""LSUV (jaxinit.lsuv): convergence on real models, errors, jit and vmap over seeds."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxinit
from jaxinit.capture import capture, forward
from jaxinit.dynamic import LSUVError, LSUVWarning, lsuv_rules
from jaxinit.models import ResMLP

TINY = jaxinit.normal(0.01)


class DeepMLP(nnx.Module):
  """Depth-L ReLU MLP, every layer drawn from ``init``."""

  def __init__(self, depth, width, rngs, init=TINY, in_features=None, activation=jax.nn.relu):
    sizes = [in_features or width] + [width] * depth
    self.layers = nnx.List([nnx.Linear(a, b, kernel_init=init, rngs=rngs)
                            for a, b in zip(sizes[:-1], sizes[1:])])
    self.activation = activation

  def __call__(self, x):
    for layer in self.layers:
      x = self.activation(layer(x))
    return x


class MnistCNN(nnx.Module):
  """Flax's NNX MNIST tutorial CNN, minimal rewrite (conv 32, conv 64, avg-pool, 256, 10)."""

  def __init__(self, rngs):
    self.conv1 = nnx.Conv(1, 32, kernel_size=(3, 3), kernel_init=TINY, rngs=rngs)
    self.conv2 = nnx.Conv(32, 64, kernel_size=(3, 3), kernel_init=TINY, rngs=rngs)
    self.linear1 = nnx.Linear(7 * 7 * 64, 256, kernel_init=TINY, rngs=rngs)
    self.linear2 = nnx.Linear(256, 10, kernel_init=TINY, rngs=rngs)

  def __call__(self, x):
    pool = lambda h: nnx.avg_pool(h, window_shape=(2, 2), strides=(2, 2))  # noqa: E731
    x = pool(nnx.relu(self.conv1(x)))
    x = pool(nnx.relu(self.conv2(x)))
    x = x.reshape(x.shape[0], -1)
    return self.linear2(nnx.relu(self.linear1(x)))


class Block(nnx.Module):
  """Pre-LN transformer block: LayerNorm, self-attention, LayerNorm, MLP."""

  def __init__(self, width, heads, rngs):
    self.ln1 = nnx.LayerNorm(width, rngs=rngs)
    self.attn = nnx.MultiHeadAttention(heads, width, decode=False, kernel_init=TINY,
                                       rngs=rngs)
    self.ln2 = nnx.LayerNorm(width, rngs=rngs)
    self.up = nnx.Linear(width, 4 * width, kernel_init=TINY, rngs=rngs)
    self.down = nnx.Linear(4 * width, width, kernel_init=TINY, rngs=rngs)

  def __call__(self, x):
    x = x + self.attn(self.ln1(x))
    return x + self.down(nnx.gelu(self.up(self.ln2(x))))


class Transformer(nnx.Module):

  def __init__(self, width, heads, depth, rngs):
    self.blocks = nnx.List([Block(width, heads, rngs) for _ in range(depth)])

  def __call__(self, x):
    for block in self.blocks:
      x = block(x)
    return x


def _check_converged(model, x, report, max_iters=10, tol=0.1):
  """Every chosen layer's output std, measured anew by capture, is in 1 +- tol."""
  assert bool(np.all(report.converged)), str(report)
  assert int(np.max(report.iterations)) <= max_iters
  _, captured = capture(model, x)
  stds = {}
  for name in report.layers:
    key, _, index = name.partition("[")
    h = captured[key]
    if index:
      h = h[int(index[:-1])]
    stds[name] = float(jnp.std(h))
  assert all(abs(s - 1) <= tol for s in stds.values()), stds
  np.testing.assert_allclose(list(stds.values()), np.sqrt(np.asarray(report.variance_after)),
                             rtol=1e-4)
  return stds


def test_lsuv_rescues_a_30_layer_relu_mlp_from_normal_001():
  x = jax.random.normal(jax.random.key(0), (128, 32))
  model = DeepMLP(30, 32, nnx.Rngs(0))
  _, before = capture(model, x)
  assert float(jnp.std(before["layers/29"])) < 1e-30  # vanished before LSUV
  model, report = jaxinit.lsuv(model, x)
  assert len(report.layers) == 30
  _check_converged(model, x, report)


def test_lsuv_converges_on_the_nnx_mnist_cnn():
  x = jax.random.normal(jax.random.key(1), (16, 28, 28, 1))
  model, report = jaxinit.lsuv(MnistCNN(nnx.Rngs(0)), x)
  assert report.layers == ("conv1", "conv2", "linear1", "linear2")
  _check_converged(model, x, report)


def test_lsuv_converges_on_a_transformer_block_stack():
  x = jax.random.normal(jax.random.key(2), (8, 16, 32))
  model, report = jaxinit.lsuv(Transformer(32, 4, 2, nnx.Rngs(0)), x)
  # Every Linear-like layer: q, k, v, out of attention (LinearGeneral), up, down.
  assert len(report.layers) == 12, report.layers
  assert "blocks/0/attn/query" in report.layers and "blocks/1/down" in report.layers
  _check_converged(model, x, report)


def test_lsuv_converges_on_a_scanned_resmlp_layer_by_layer():
  x = jax.random.normal(jax.random.key(3), (64, 8))
  model = ResMLP(8, 4, width=32, depth=4, kernel_init=TINY, rngs=nnx.Rngs(0))
  model, report = jaxinit.lsuv(model, x)
  # Stacked blocks are fitted one slice at a time, in the order the scan runs them.
  assert report.layers[:4] == ("input", "blocks/hidden[0]", "blocks/branch[0]",
                               "blocks/hidden[1]")
  assert len(report.layers) == 2 + 2 * 4
  _check_converged(model, x, report)


def test_lsuv_orthogonal_pre_init_is_drawn_through_the_rules():
  x = jax.random.normal(jax.random.key(0), (64, 16))
  model, report = jaxinit.lsuv(DeepMLP(3, 16, nnx.Rngs(0)), x, pre_init=True, key=7)
  _check_converged(model, x, report)
  # The scaled kernels are orthogonal: W^T W = c I.
  for layer in model.layers:
    w = np.asarray(layer.kernel[...])
    gram = w.T @ w
    np.testing.assert_allclose(gram / gram[0, 0], np.eye(16), atol=1e-5)


def test_lsuv_centre_gives_zero_mean_units():
  x = jax.random.normal(jax.random.key(0), (256, 16)) + 3.0
  model, report = jaxinit.lsuv(DeepMLP(4, 16, nnx.Rngs(0)), x, centre=True)
  _, captured = capture(model, x)
  for name in report.layers:
    means = jnp.mean(captured[name], axis=0)
    assert float(jnp.max(jnp.abs(means))) <= 0.1, name
  _check_converged(model, x, report)


def test_lsuv_rules_choose_the_layers():
  x = jax.random.normal(jax.random.key(0), (64, 16))
  model, report = jaxinit.lsuv(DeepMLP(4, 16, nnx.Rngs(0)), x, rules=["layers/2/kernel"])
  assert report.layers == ("layers/2",)
  assert abs(float(report.variance_after[0]) - 1) <= 0.1


def test_lsuv_linen_and_equinox_models():
  import flax.linen as nn

  class Linen(nn.Module):
    @nn.compact
    def __call__(self, x):
      for _ in range(4):
        x = nn.relu(nn.Dense(16, kernel_init=TINY)(x))
      return x

  x = jax.random.normal(jax.random.key(0), (64, 16))
  module = Linen()
  variables = module.init(jax.random.key(1), x)
  new, report = jaxinit.lsuv(module, x, params=variables)
  assert report.layers == tuple(f"Dense_{i}" for i in range(4))
  h = x
  for i in range(4):
    h = h @ new["params"][f"Dense_{i}"]["kernel"] + new["params"][f"Dense_{i}"]["bias"]
    assert abs(float(jnp.std(h)) - 1) <= 0.1
    h = jax.nn.relu(h)

  eqx = pytest.importorskip("equinox")
  keys = jax.random.split(jax.random.key(2), 4)
  eq = eqx.nn.Sequential([eqx.nn.Linear(16, 16, key=k) for k in keys])
  new_eq, report = jaxinit.lsuv(eq, x)
  assert len(report.layers) == 4
  h = jax.vmap(new_eq.layers[0])(x)
  assert abs(float(jnp.std(h)) - 1) <= 0.1


def test_lsuv_reports_and_raises_name_the_layer():
  x = jax.random.normal(jax.random.key(0), (64, 16))
  dead = DeepMLP(3, 16, nnx.Rngs(0), init=jaxinit.zeros)
  with pytest.raises(LSUVError, match="layers/0.*variance 0"):
    jaxinit.lsuv(dead, x)
  one = DeepMLP(2, 1, nnx.Rngs(0), in_features=16)
  with pytest.raises(ValueError, match="'layers/0'.*at least 2"):
    jaxinit.lsuv(one, x[:1])
  with pytest.warns(LSUVWarning, match="did not reach") as record:
    jaxinit.lsuv(DeepMLP(3, 16, nnx.Rngs(0)), x, max_iters=1, tol=1e-9)
  assert record[0].message.report.iterations.shape == (3,)
  with pytest.raises(ValueError, match="max_iters"):
    jaxinit.lsuv(DeepMLP(3, 16, nnx.Rngs(0)), x, max_iters=0)
  with pytest.raises(ValueError, match="tol"):
    jaxinit.lsuv(DeepMLP(3, 16, nnx.Rngs(0)), x, tol=-1.0)
  with pytest.raises(ValueError, match="key"):
    jaxinit.lsuv(DeepMLP(3, 16, nnx.Rngs(0)), x, pre_init=True)
  with pytest.raises(LSUVError, match="non-finite"):
    jaxinit.lsuv(DeepMLP(3, 16, nnx.Rngs(0)), x.at[0, 0].set(jnp.inf))


def test_lsuv_vmaps_over_seeds_in_one_jit_and_equals_the_unbatched_call():
  x = jax.random.normal(jax.random.key(0), (32, 8))
  fwd, _ = forward(DeepMLP(4, 8, nnx.Rngs(0)))

  def params_of(seed):
    return forward(DeepMLP(4, 8, nnx.Rngs(seed)))[1]

  seeds = 256
  stacked = jax.tree.map(lambda *p: jnp.stack(p), *[params_of(s) for s in range(8)] * 32)
  keys = jax.random.split(jax.random.key(1), seeds)
  run = jax.jit(jax.vmap(lambda p, k: jaxinit.lsuv(fwd, x, params=p, key=k, pre_init=True,
                                                   check=False)))
  new, report = run(stacked, keys)
  assert report.variance_after.shape == (seeds, 4)
  assert bool(report.converged.all())
  for s in (0, 5, 131, 255):
    one = jax.tree.map(lambda a: a[s], stacked)
    single, single_report = jaxinit.lsuv(fwd, x, params=one, key=keys[s], pre_init=True)
    # Bit for bit: the batch is batched like the params and the statistics are summed in
    # a fixed order (jaxinit.dynamic.batched_like, _mean).
    for a, b in zip(jax.tree.leaves(single), jax.tree.leaves(jax.tree.map(lambda a: a[s], new))):
      np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(single_report.iterations, report.iterations[s])


def test_vmapped_lsuv_equals_the_unbatched_call_bit_for_bit_where_plain_reductions_do_not():
  # Width 32, batch 16: jnp.var of a layer's 512 outputs and the first layer's matmul on
  # a batch shared by every model both sum in another order under vmap (the unbatched and
  # vmapped calls differed by up to 3 eps of a tensor's largest entry before the fix).
  x = jax.random.normal(jax.random.key(0), (16, 32))
  fwd, _ = forward(DeepMLP(2, 32, nnx.Rngs(0)))
  params = [forward(DeepMLP(2, 32, nnx.Rngs(s)))[1] for s in range(3)]
  stacked = jax.tree.map(lambda *p: jnp.stack(p), *params)
  run = jax.jit(jax.vmap(lambda p: jaxinit.lsuv(fwd, x, params=p, centre=True, check=False)))
  new, _ = run(stacked)
  for s, one in enumerate(params):
    single, _ = jaxinit.lsuv(fwd, x, params=one, centre=True, check=False)
    for a, b in zip(jax.tree.leaves(single), jax.tree.leaves(jax.tree.map(lambda a: a[s], new))):
      np.testing.assert_array_equal(a, b)


def test_lsuv_rules_default_covers_linear_and_conv_layers():
  assert len(lsuv_rules()) == 14
