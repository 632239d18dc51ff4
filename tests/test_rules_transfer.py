"""Transfer learning from real checkpoint files (orbax and flax.serialization)."""

from __future__ import annotations

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxinit
from jaxinit.rules import RuleSet, save_params, transfer


class Net(nnx.Module):
  def __init__(self, classes, rngs, adapter=False):
    self.conv = nnx.Conv(1, 8, (3, 3), rngs=rngs)
    self.body = nnx.Linear(8, 16, rngs=rngs)
    if adapter:
      self.adapter = nnx.Linear(16, 16, rngs=rngs)
    self.head = nnx.Linear(16, classes, rngs=rngs)

  def __call__(self, x):
    h = nnx.relu(self.body(nnx.relu(self.conv(x)).mean((1, 2))))
    if hasattr(self, "adapter"):
      h = h + self.adapter(h)
    return self.head(h)


def _flat(model):
  return {"/".join(map(str, p)): np.asarray(v.get_value())
          for p, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}


NEW_RULES = RuleSet.of([jaxinit.Rule("head/*", jaxinit.zeros, label="head"),
                        jaxinit.Rule("adapter/kernel", jaxinit.zeros, label="adapter")])


@pytest.mark.parametrize("fmt", ["orbax", "msgpack"])
def test_nnx_transfer_restores_matches_and_initializes_the_rest(tmp_path, fmt):
  pretrained = Net(10, nnx.Rngs(0))
  file = save_params(tmp_path / ("ckpt" if fmt == "orbax" else "ckpt.msgpack"), pretrained)
  model, report = transfer(nnx.eval_shape(lambda: Net(3, nnx.Rngs(1), adapter=True)), file,
                           NEW_RULES + RuleSet(default=jaxinit.zeros), 7)
  assert report.restored == ("body/bias", "body/kernel", "conv/bias", "conv/kernel")
  assert set(report.initialized) == {"adapter/bias", "adapter/kernel", "head/bias",
                                     "head/kernel"}
  assert report.reshaped == (("head/bias", (10,), (3,)), ("head/kernel", (16, 10), (16, 3)))
  assert report.dropped == ()
  old, new = _flat(pretrained), _flat(model)
  for path in report.restored:
    np.testing.assert_array_equal(old[path], new[path])
  assert not new["head/kernel"].any() and new["head/kernel"].shape == (16, 3)
  assert "head/kernel: checkpoint (16, 10) -> model (16, 3)" in str(report)


def test_transfer_lists_dropped_paths_and_keeps_unmatched_new_params(tmp_path):
  pretrained = Net(10, nnx.Rngs(0), adapter=True)
  file = save_params(tmp_path / "ckpt", pretrained)
  target = Net(10, nnx.Rngs(1))
  before = _flat(target)
  model, report = transfer(target, file, [], 0)
  assert report.dropped == ("adapter/bias", "adapter/kernel")
  assert report.initialized == () and report.kept == ()
  np.testing.assert_array_equal(_flat(model)["head/kernel"], _flat(pretrained)["head/kernel"])
  assert not np.array_equal(before["head/kernel"], _flat(model)["head/kernel"])


@pytest.mark.filterwarnings("ignore:rules that serve no parameter")
def test_shape_mismatch_without_a_rule_names_the_paths(tmp_path):
  file = save_params(tmp_path / "ckpt.msgpack", Net(10, nnx.Rngs(0)))
  with pytest.raises(ValueError, match=r"head/bias: checkpoint \(10,\) vs model \(3,\); "
                                       r"head/kernel: checkpoint \(16, 10\) vs model \(16, 3\)"):
    transfer(Net(3, nnx.Rngs(1)), file, [("adapter/*", jaxinit.zeros)], 0)
  with pytest.raises(FileNotFoundError):
    transfer(Net(3, nnx.Rngs(1)), tmp_path / "missing", [], 0)


def test_report_labels_freeze_restored_layers_in_optax(tmp_path):
  file = save_params(tmp_path / "ckpt", Net(10, nnx.Rngs(0)))
  model, report = transfer(Net(3, nnx.Rngs(1), adapter=True), file, NEW_RULES, 0)
  tx = optax.multi_transform({"initialized": optax.adam(1e-2), "restored": optax.set_to_zero()},
                             report.labels())
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
  before = _flat(model)
  x = jax.random.normal(jax.random.key(0), (4, 6, 6, 1))
  grads = nnx.grad(lambda m: optax.softmax_cross_entropy_with_integer_labels(
      m(x), jnp.arange(4) % 3).mean())(model)
  optimizer.update(model, grads)
  after = _flat(model)
  changed = {p for p in before if not np.array_equal(before[p], after[p])}
  assert changed and changed <= set(report.initialized + report.kept)
  assert all(np.array_equal(before[p], after[p]) for p in report.restored)


def test_linen_and_equinox_transfer(tmp_path):
  class Clf(nn.Module):
    classes: int

    @nn.compact
    def __call__(self, x):
      return nn.Dense(self.classes, name="head")(nn.relu(nn.Dense(16, name="body")(x)))

  x = jnp.ones((1, 8))
  variables = Clf(10).init(jax.random.key(0), x)
  file = save_params(tmp_path / "linen.msgpack", variables)
  new, report = transfer(Clf(4), file, [(nn.Dense, jaxinit.zeros), ("*bias", jaxinit.zeros)],
                         0, x)
  assert report.restored == ("body/bias", "body/kernel") and len(report.reshaped) == 2
  np.testing.assert_array_equal(new["params"]["body"]["kernel"],
                                variables["params"]["body"]["kernel"])
  assert not new["params"]["head"]["kernel"].any()

  pretrained = eqx.nn.MLP(8, 10, 16, 2, key=jax.random.key(0))
  target = eqx.nn.MLP(8, 4, 16, 2, key=jax.random.key(1))
  new, report = transfer(target, pretrained, [(eqx.nn.Linear, jaxinit.lecun_normal()),
                                              ("*bias", jaxinit.zeros)], 0)
  assert report.restored == ("layers/0/weight", "layers/0/bias", "layers/1/weight",
                             "layers/1/bias")
  assert new.layers[2].weight.shape == (4, 16) and not new.layers[2].bias.any()
  np.testing.assert_array_equal(new.layers[1].weight, pretrained.layers[1].weight)


class BnNet(nnx.Module):
  def __init__(self, classes, rngs):
    self.conv = nnx.Conv(1, 8, (3, 3), rngs=rngs)
    self.bn = nnx.BatchNorm(8, rngs=rngs)
    self.drop = nnx.Dropout(0.1, rngs=rngs)
    self.head = nnx.Linear(8, classes, rngs=rngs)
    self.head_bn = nnx.BatchNorm(classes, rngs=rngs)


def _stats(model):
  return {"/".join(map(str, p)): np.asarray(v.get_value())
          for p, v in nnx.to_flat_state(nnx.state(model, nnx.BatchStat))}


def test_batch_statistics_transfer_per_collection(tmp_path):
  # msgpack only: the orbax round trip of the same dict of collections is the first test's.
  pretrained = BnNet(10, nnx.Rngs(0))
  for bn in (pretrained.bn, pretrained.head_bn):  # "trained" running statistics
    bn.mean.set_value(bn.mean.get_value() + 0.5)
    bn.var.set_value(bn.var.get_value() * 3.0)
  file = save_params(tmp_path / "ckpt.msgpack", pretrained)
  model, report = transfer(nnx.eval_shape(lambda: BnNet(3, nnx.Rngs(1))), file,
                           [("head/*", jaxinit.zeros), ("head_bn/*", jaxinit.ones)], 0)
  stats = report.collections["batch_stats"]
  assert stats.restored == ("bn/mean", "bn/var")
  assert stats.reshaped == (("head_bn/mean", (10,), (3,)), ("head_bn/var", (10,), (3,)))
  assert stats.initialized == ("head_bn/mean", "head_bn/var") and stats.dropped == ()
  old, new = _stats(pretrained), _stats(model)
  np.testing.assert_array_equal(new["bn/mean"], old["bn/mean"])
  np.testing.assert_array_equal(new["bn/var"], old["bn/var"])
  assert (new["head_bn/mean"] == 0).all() and (new["head_bn/var"] == 1).all()
  assert report.collections["rng"].initialized == ("drop/rngs/count", "drop/rngs/key")
  assert "bn/mean" not in report.dropped and "batch_stats: restored (2)" in str(report)


def test_linen_batch_stats_transfer():
  class Clf(nn.Module):
    classes: int

    @nn.compact
    def __call__(self, x):
      h = nn.BatchNorm(use_running_average=True, name="bn")(nn.Dense(16, name="body")(x))
      return nn.Dense(self.classes, name="head")(h)

  x = jnp.ones((1, 8))
  variables = Clf(10).init(jax.random.key(0), x)
  variables["batch_stats"]["bn"]["mean"] = variables["batch_stats"]["bn"]["mean"] + 2.0
  new, report = transfer(Clf(4), variables, [(nn.Dense, jaxinit.zeros), ("*bias", jaxinit.zeros)],
                         0, x)
  assert report.collections["batch_stats"].restored == ("bn/mean", "bn/var")
  np.testing.assert_array_equal(new["batch_stats"]["bn"]["mean"], np.full(16, 2.0, np.float32))
  # linen variables: the same, restored into the variables' own collection.
  target = Clf(4).init(jax.random.key(1), x)
  new, report = transfer(target, variables, [("head/*", jaxinit.zeros)], 0)
  assert report.collections["batch_stats"].restored == ("bn/mean", "bn/var")
  np.testing.assert_array_equal(new["batch_stats"]["bn"]["mean"], np.full(16, 2.0, np.float32))


class _ENet(eqx.Module):
  body: eqx.nn.Linear
  head: eqx.nn.Linear
  activation: str = "relu"  # not an array: left out of the checkpoint

  def __init__(self, key, out):
    k1, k2 = jax.random.split(key)
    self.body, self.head = eqx.nn.Linear(4, 8, key=k1), eqx.nn.Linear(8, out, key=k2)


def test_an_equinox_model_saves_and_transfers_from_msgpack(tmp_path):
  """save_params writes an Equinox module's arrays by path (found by a user: msgpack could
  not serialize the module); the body transfers bit for bit, the new head is initialized."""
  pretrained = _ENet(jax.random.key(0), 3)
  path = save_params(tmp_path / "enet.msgpack", pretrained)
  model, report = transfer(_ENet(jax.random.key(1), 5), path, [("head/*", jaxinit.zeros)], 0)
  np.testing.assert_array_equal(model.body.weight, pretrained.body.weight)
  np.testing.assert_array_equal(model.body.bias, pretrained.body.bias)
  assert not np.asarray(model.head.weight).any() and model.head.weight.shape == (5, 8)
  assert "body/weight" in report.restored
