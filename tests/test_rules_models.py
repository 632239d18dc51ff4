"""Rules on model code written the way Flax's own examples write it (our minimal rewrites).

* the NNX MNIST CNN (flax docs, "MNIST tutorial"): two 3x3 convs, average pooling, two Linear;
* a small transformer LM: token + position Embed, blocks of LayerNorm, MultiHeadAttention
  and an MLP, stacked with ``nnx.vmap`` or listed, a final LayerNorm and a head;
* the linen ResNet block of Flax's ImageNet example (conv-BN-ReLU-conv-BN, a 1x1
  projection shortcut, the last BN scale zero).

Plus the acceptance checks on real models: ``reinit`` of a head leaves every other leaf
bit-identical (NNX, linen, Equinox), labels drive ``optax.multi_transform``, and sharded
init from shapes (``nnx.with_partitioning``, linen logical partitioning, explicit
``out_shardings``) gives the unsharded values.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxinit
from jaxinit.rules import RuleSet


class CNN(nnx.Module):
  """The NNX MNIST CNN."""

  def __init__(self, *, rngs: nnx.Rngs, classes: int = 10):
    self.conv1 = nnx.Conv(1, 32, kernel_size=(3, 3), rngs=rngs)
    self.conv2 = nnx.Conv(32, 64, kernel_size=(3, 3), rngs=rngs)
    self.avg_pool = functools.partial(nnx.avg_pool, window_shape=(2, 2), strides=(2, 2))
    self.linear1 = nnx.Linear(3136, 256, rngs=rngs)
    self.linear2 = nnx.Linear(256, classes, rngs=rngs)

  def __call__(self, x):
    x = self.avg_pool(nnx.relu(self.conv1(x)))
    x = self.avg_pool(nnx.relu(self.conv2(x)))
    x = x.reshape(x.shape[0], -1)
    return self.linear2(nnx.relu(self.linear1(x)))


class Block(nnx.Module):
  """Pre-LN transformer block."""

  def __init__(self, width: int, heads: int, *, rngs: nnx.Rngs):
    self.ln1 = nnx.LayerNorm(width, rngs=rngs)
    self.attn = nnx.MultiHeadAttention(heads, width, decode=False, rngs=rngs)
    self.ln2 = nnx.LayerNorm(width, rngs=rngs)
    self.fc = nnx.Linear(width, 4 * width, rngs=rngs)
    self.proj = nnx.Linear(4 * width, width, rngs=rngs)

  def __call__(self, x):
    x = x + self.attn(self.ln1(x), mask=nnx.make_causal_mask(x[..., 0]))
    return x + self.proj(nnx.gelu(self.fc(self.ln2(x))))


class LM(nnx.Module):
  """A small decoder-only LM; ``scan=True`` stacks the blocks with ``nnx.vmap``."""

  def __init__(self, vocab=64, width=32, heads=4, depth=3, context=16, scan=False, *,
               rngs: nnx.Rngs):
    self.tok = nnx.Embed(vocab, width, rngs=rngs)
    self.pos = nnx.Embed(context, width, rngs=rngs)
    if scan:
      @nnx.split_rngs(splits=depth)
      @nnx.vmap(in_axes=(0,), out_axes=0)
      def make(rngs):
        return Block(width, heads, rngs=rngs)
      self.blocks = make(rngs)
    else:
      self.blocks = nnx.List([Block(width, heads, rngs=rngs) for _ in range(depth)])
    self.scan = scan
    self.ln_f = nnx.LayerNorm(width, rngs=rngs)
    self.head = nnx.Linear(width, vocab, rngs=rngs)

  def __call__(self, tokens):
    x = self.tok(tokens) + self.pos(jnp.arange(tokens.shape[-1]))
    if self.scan:
      @nnx.scan(in_axes=(0, nnx.Carry), out_axes=nnx.Carry)
      def body(block, x):
        return block(x)
      x = body(self.blocks, x)
    else:
      for block in self.blocks:
        x = block(x)
    return self.head(self.ln_f(x))


class ResNetBlock(nn.Module):
  """The linen ResNet block of Flax's ImageNet example."""
  filters: int
  strides: tuple[int, int] = (1, 1)

  @nn.compact
  def __call__(self, x, train: bool = True):
    norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9)
    residual = x
    y = nn.Conv(self.filters, (3, 3), self.strides, use_bias=False)(x)
    y = nn.relu(norm()(y))
    y = nn.Conv(self.filters, (3, 3), use_bias=False)(y)
    y = norm(scale_init=nn.initializers.zeros)(y)
    if residual.shape != y.shape:
      residual = nn.Conv(self.filters, (1, 1), self.strides, use_bias=False,
                         name="conv_proj")(residual)
      residual = norm(name="norm_proj")(residual)
    return nn.relu(residual + y)


class ResNetHead(nn.Module):
  classes: int = 10

  @nn.compact
  def __call__(self, x, train: bool = True):
    x = nn.Conv(16, (3, 3), use_bias=False, name="stem")(x)
    x = ResNetBlock(16)(x, train)
    x = ResNetBlock(32, (2, 2))(x, train)
    return nn.Dense(self.classes, name="head")(x.mean((1, 2)))


def _flat(model):
  return {"/".join(map(str, p)): np.asarray(v.get_value())
          for p, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}


def _leaves(tree):
  return {jax.tree_util.keystr(kp): np.asarray(v)
          for kp, v in jax.tree_util.tree_flatten_with_path(tree)[0] if hasattr(v, "shape")}


def _changed(before, after):
  return sorted(p for p in before if not np.array_equal(before[p], after[p]))


# ---------------------------------------------------------------------------
# NNX MNIST CNN

CNN_RULES = RuleSet.of([(nnx.Conv, jaxinit.he_normal()), ("linear1/kernel", jaxinit.he_normal()),
                        ("linear2/kernel", jaxinit.zeros), ("*bias", jaxinit.zeros)])


def test_cnn_rules_cover_the_model_and_keep_the_signal():
  model = jaxinit.initialize(nnx.eval_shape(lambda: CNN(rngs=nnx.Rngs(0))), CNN_RULES, 0,
                             strict=True)
  params = _flat(model)
  # He at the module's fans: conv2's kernel (3, 3, 32, 64) has fan_in 288.
  assert abs(params["conv2/kernel"].var() * 288 / 2.0 - 1.0) < 0.03
  x = jax.random.normal(jax.random.key(0), (8, 28, 28, 1))
  assert not np.asarray(model(x)).any()  # zero head
  # Interior positions ('SAME' padding feeds zeros at the border): E[y^2] = 2 E[h^2]
  # (He), averaged over 6 seeds (the pooled ReLU input has a large mean: noisy per seed).
  ratios = []
  for seed in range(6):
    model = jaxinit.initialize(nnx.eval_shape(lambda: CNN(rngs=nnx.Rngs(0))), CNN_RULES, seed)
    h = model.avg_pool(nnx.relu(model.conv1(x)))
    ratios.append(float(jnp.mean(model.conv2(h)[:, 1:-1, 1:-1] ** 2) / jnp.mean(h**2)))
  assert abs(np.mean(ratios) / 2.0 - 1.0) < 0.1, ratios


def test_cnn_labels_drive_optax_multi_transform_with_nnx_optimizer():
  model = CNN(rngs=nnx.Rngs(0))
  rules = RuleSet.of([jaxinit.Rule("linear2/*", jaxinit.zeros, label="head")])
  jaxinit.reinit(model, rules, 1)
  tags = jaxinit.rules.labels(model, rules, unmatched="frozen")
  tx = optax.multi_transform({"head": optax.sgd(0.1), "frozen": optax.set_to_zero()}, tags)
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
  before = _flat(model)
  x = jax.random.normal(jax.random.key(0), (8, 28, 28, 1))
  y = jnp.arange(8) % 10
  grads = nnx.grad(lambda m: optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean())(
      model)
  optimizer.update(model, grads)
  assert _changed(before, _flat(model)) == ["linear2/bias", "linear2/kernel"]


# ---------------------------------------------------------------------------
# Transformer LM

LM_RULES = RuleSet.of([(nnx.Embed, jaxinit.normal(0.02)), (nnx.MultiHeadAttention,
                                                           jaxinit.glorot_uniform()),
                       (nnx.LayerNorm, jaxinit.ones), ("*/proj/kernel", jaxinit.zeros),
                       (nnx.Linear, jaxinit.he_normal()), ("*bias", jaxinit.zeros)])


@pytest.mark.parametrize("scan", [False, True])
def test_lm_stack_is_covered_and_runs(scan):
  model = jaxinit.initialize(nnx.eval_shape(lambda: LM(scan=scan, rngs=nnx.Rngs(0))), LM_RULES,
                             3, strict=True)
  plan = jaxinit.rules.plan(model, LM_RULES)
  assert not plan.kept
  if scan:
    q = model.blocks.attn.query.kernel[...]
    assert q.shape == (3, 32, 4, 8)
    # Each stacked layer is drawn alone: layers differ, and each has Glorot's variance.
    assert not np.array_equal(q[0], q[1])
    np.testing.assert_allclose(np.var(np.asarray(q), axis=(1, 2, 3)), 2 / 64, rtol=0.15)
  logits = model(jnp.arange(16)[None] % 64)
  assert logits.shape == (1, 16, 64) and bool(jnp.isfinite(logits).all())


def test_lm_listed_blocks_get_the_same_values_as_a_separately_built_block():
  """Path keys: block 1's values depend on its path alone, not on the blocks around it."""
  lm = jaxinit.initialize(nnx.eval_shape(lambda: LM(rngs=nnx.Rngs(0))), LM_RULES, 9)

  class Wrapper(nnx.Module):
    def __init__(self, rngs):
      self.blocks = nnx.List([nnx.Linear(2, 2, rngs=rngs),  # something else at index 0
                              Block(32, 4, rngs=rngs)])
  with pytest.warns(jaxinit.rules.UnusedRuleWarning, match="Embed"):  # no embedding here
    alone = jaxinit.initialize(nnx.eval_shape(lambda: Wrapper(nnx.Rngs(0))), LM_RULES, 9)
  a, b = _flat(lm), _flat(alone)
  shared = [p for p in b if p.startswith("blocks/1/")]
  assert len(shared) == 16
  for p in shared:
    np.testing.assert_array_equal(a[p], b[p])


def test_lm_reinit_head_changes_only_the_head():
  model = LM(rngs=nnx.Rngs(0))
  before = _flat(model)
  jaxinit.reinit(model, [("head/kernel", jaxinit.normal(0.02))], 4, strict=True)
  assert _changed(before, _flat(model)) == ["head/kernel"]


# ---------------------------------------------------------------------------
# linen ResNet block

RESNET_RULES = RuleSet.of([(nn.Conv, jaxinit.he_normal(mode="fan_out")),
                           ("*/BatchNorm_1/scale", jaxinit.zeros),
                           (nn.BatchNorm, jaxinit.ones), ((nn.BatchNorm, "bias"), jaxinit.zeros),
                           ("head/kernel", jaxinit.zeros), ("head/bias", jaxinit.zeros)])


def test_resnet_block_from_linen_module_and_sample_inputs():
  x = jnp.ones((2, 16, 16, 3))
  model = ResNetHead()
  variables = jaxinit.initialize(model, RESNET_RULES, 0, x, strict=True)
  params = variables["params"]
  assert set(variables) == {"params", "batch_stats"}
  assert not params["ResNetBlock_0"]["BatchNorm_1"]["scale"].any()
  kernel = params["ResNetBlock_1"]["conv_proj"]["kernel"]  # (1, 1, 16, 32), stride 2
  # fan_out of a strided conv: out * prod(k) / prod(s) = 32 / 4.
  assert kernel.shape == (1, 1, 16, 32)
  np.testing.assert_allclose(float(kernel.var()), 2.0 / 8.0, rtol=0.25)
  logits, _ = model.apply(variables, x, mutable=["batch_stats"])
  assert logits.shape == (2, 10)


def test_linen_reinit_head_on_variables_changes_nothing_else():
  x = jnp.ones((2, 16, 16, 3))
  model = ResNetHead()
  variables = model.init(jax.random.key(0), x)
  before = _leaves(variables)
  after = _leaves(jaxinit.reinit(variables, [("head/*", jaxinit.normal(0.01))], 1, strict=True))
  assert _changed(before, after) == ["['params']['head']['bias']", "['params']['head']['kernel']"]
  # Module-class rules on variables: give the module and inputs.
  again = jaxinit.reinit(variables, [(nn.Dense, jaxinit.zeros)], 1, x, module=model,
                         strict=True)
  assert _changed(before, _leaves(again)) == ["['params']['head']['kernel']"]


def test_equinox_reinit_head_changes_nothing_else():
  model = eqx.nn.MLP(8, 3, 16, 3, key=jax.random.key(0))
  before = _leaves(model)
  new = jaxinit.reinit(model, [("layers/3/*", jaxinit.zeros)], 0, strict=True)
  assert isinstance(new, eqx.nn.MLP)
  assert _changed(before, _leaves(new)) == [".layers[3].bias", ".layers[3].weight"]
  # A module rule addresses Equinox's (out, in) layout: fan_in is the last axis.
  wide = eqx.nn.Linear(400, 8, key=jax.random.key(0))
  w = jaxinit.reinit(wide, [(eqx.nn.Linear, jaxinit.lecun_normal())], 0).weight
  np.testing.assert_allclose(float(w.var()) * 400, 1.0, rtol=0.1)


def test_sharded_init_from_shapes_matches_unsharded_values():
  """nnx.with_partitioning, linen logical partitioning + mesh, explicit out_shardings."""
  script = textwrap.dedent("""
      import jax, jax.numpy as jnp, numpy as np
      import flax.linen as nn
      from flax import nnx
      import jaxinit
      P = jax.sharding.PartitionSpec
      mesh = jax.make_mesh((2, 2), ("data", "model"),
                           axis_types=(jax.sharding.AxisType.Explicit,) * 2)
      rules = jaxinit.RuleSet.of([("*kernel", jaxinit.he_normal())], default=jaxinit.zeros)

      class Net(nnx.Module):
        def __init__(self, rngs, part=True):
          wrap = (lambda i: nnx.with_partitioning(i, ("data", "model"))) if part else (
              lambda i: i)
          self.up = nnx.Linear(8, 16, kernel_init=wrap(nnx.initializers.lecun_normal()),
                               rngs=rngs)
      with jax.set_mesh(mesh):
        sharded = jaxinit.initialize(nnx.eval_shape(lambda: Net(nnx.Rngs(0))), rules, 3)
      plain = jaxinit.initialize(nnx.eval_shape(lambda: Net(nnx.Rngs(0), False)), rules, 3)
      k = sharded.up.kernel[...]
      assert k.sharding.spec == P("data", "model"), k.sharding
      assert len(k.addressable_shards) == 4 and k.addressable_shards[0].data.shape == (4, 8)
      np.testing.assert_array_equal(np.asarray(k), np.asarray(plain.up.kernel[...]))

      class Mlp(nn.Module):
        @nn.compact
        def __call__(self, x):
          init = nn.with_logical_partitioning(nn.initializers.lecun_normal(), ("embed", "mlp"))
          return nn.Dense(16, kernel_init=init, name="up")(x)
      axis_rules = (("embed", "data"), ("mlp", "model"))
      x = jnp.ones((1, 8))
      v = jaxinit.initialize(Mlp(), rules, 3, x, mesh=mesh, logical_axis_rules=axis_rules)
      lk = nn.unbox(v)["params"]["up"]["kernel"]
      assert lk.sharding.spec == P("data", "model"), lk.sharding
      np.testing.assert_array_equal(np.asarray(lk), np.asarray(k))  # same path "up/kernel"

      shapes = {"up": {"kernel": jax.ShapeDtypeStruct((8, 16), jnp.float32)}}
      out = jaxinit.initialize(shapes, rules, 3,
                               out_shardings={"*": jax.NamedSharding(mesh, P(None, "model"))})
      assert out["up"]["kernel"].sharding.spec == P(None, "model")
      np.testing.assert_array_equal(np.asarray(out["up"]["kernel"]), np.asarray(k))
      print("ok")
  """)
  env = {"XLA_FLAGS": os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4",
         "JAX_PLATFORMS": "cpu",
         "PATH": "/usr/bin:/bin"}
  out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                       check=False)
  assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]
