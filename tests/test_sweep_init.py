"""The sweep's batched drawing is the model level's, bit for bit.

``jaxinit.sweep.params.draw_population`` draws many models' initial params at
once; each row must equal ``jaxinit.initialize`` of that model alone with the
same rules and key (``Built.initialize``), for every kind of model the engine
takes and every kind of initializer (elementwise variance scaling, structured,
constants, your own function, rule sets, scaled by weight and bias variances).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from flax import nnx

import jaxinit
from jaxinit.models import MLP, ResMLP
from jaxinit.sweep import kinds, params as params_lib
from jaxinit.sweep.networks import MODELS


class UserCNN(nnx.Module):
  """A user's own NNX CNN (two convs, a dense head)."""

  def __init__(self, channels: int, *, rngs: nnx.Rngs):
    self.conv1 = nnx.Conv(1, channels, (3,), rngs=rngs)
    self.conv2 = nnx.Conv(channels, channels, (3,), rngs=rngs)
    self.head = nnx.Linear(channels, 3, rngs=rngs)

  def __call__(self, x):
    h = nnx.relu(self.conv2(nnx.relu(self.conv1(x))))
    return self.head(h.mean(axis=-2))


class LinenMLP(nn.Module):
  width: int = 6

  @nn.compact
  def __call__(self, x):
    return nn.Dense(2)(nn.tanh(nn.Dense(self.width)(x)))


def _equinox_mlp(*, key):
  import equinox as eqx  # pylint: disable=import-outside-toplevel
  return eqx.nn.MLP(4, 2, 5, 2, key=key)


def _pure():
  def init(key):
    k1, k2 = jax.random.split(key)
    return {"dense": {"kernel": jax.random.normal(k1, (4, 5)), "bias": jnp.zeros(5)},
            "out": {"kernel": jax.random.normal(k2, (5, 2)), "bias": jnp.zeros(2)}}

  def apply(params, x):
    h = jnp.tanh(x @ params["dense"]["kernel"] + params["dense"]["bias"])
    return h @ params["out"]["kernel"] + params["out"]["bias"]

  return init, apply


BUILDS = {
    "builtin_mlp": (MODELS["mlp"].factory, dict(in_features=4, out_features=2, width=6, depth=3,
                                                 activation="relu", use_bias=True), (4,)),
    "builtin_mlp_depth1": (MODELS["mlp"].factory,  # a stack of no hidden layers
                           dict(in_features=4, out_features=2, width=6, depth=1,
                                activation="relu", use_bias=True), (4,)),
    "builtin_resmlp": (MODELS["resmlp"].factory,
                       dict(in_features=4, out_features=2, width=6, depth=2,
                            activation="tanh", use_bias=True), (4,)),
    "nnx_cnn": (UserCNN, dict(channels=4), (10, 1)),
    "linen": (LinenMLP, {}, (4,)),
    "equinox": (_equinox_mlp, {}, (4,)),
    "pure": (_pure, {}, (4,)),
}

CELLS = [("he_normal", 1.0, 0.0), ("glorot_uniform", 2.0, 0.05), ("orthogonal", 1.0, 0.0),
         ("truncated_normal", 0.5, 0.0), ("zeros", 1.0, 0.0), ("lecun_normal", 1.0, 0.3)]


def _flat(tree):
  return np.concatenate([np.asarray(x, np.float32).reshape(-1) for x in jax.tree.leaves(tree)])


@pytest.fixture(scope="module", params=sorted(BUILDS))
def built(request):
  factory, kwargs, shape = BUILDS[request.param]
  return kinds.build(factory, kwargs, np.zeros((1,) + shape, np.float32))


def test_batched_draw_equals_initialize_of_each_model_alone(built):
  rule_sets = [params_lib.cell_rules(*c) for c in CELLS]
  rule_sets += rule_sets[:2]  # repeated cells with other keys share compiled draws
  keys = np.asarray(jax.random.key_data(jax.random.split(jax.random.key(7), len(rule_sets))))
  drawn = params_lib.draw_population(built, rule_sets, keys)
  for j, rules in enumerate(rule_sets):
    alone = built.initialize(rules, jax.random.wrap_key_data(keys[j]))
    np.testing.assert_array_equal(drawn[j], _flat(alone), err_msg=f"model {j}: {rules}")


def test_batched_draw_equals_initialize_for_rule_sets_and_own_functions():
  factory, kwargs, shape = BUILDS["builtin_mlp"]
  built = kinds.build(factory, kwargs, np.zeros((1,) + shape, np.float32))

  def own(key, shape, dtype=jnp.float32):
    return 0.1 * jax.random.rademacher(key, shape, dtype)

  rules = jaxinit.rules.RuleSet.of([("input/kernel", jaxinit.orthogonal()),
                                    ("*kernel", jaxinit.he_uniform()),
                                    ("*bias", jaxinit.constant(0.01))])
  rule_sets = [params_lib.cell_rules(rules), params_lib.cell_rules(rules, 3.0),
               params_lib.cell_rules(own, 1.0, 0.1)]
  keys = np.asarray(jax.random.key_data(jax.random.split(jax.random.key(3), 3)))
  drawn = params_lib.draw_population(built, rule_sets, keys)
  for j, r in enumerate(rule_sets):
    np.testing.assert_array_equal(
        drawn[j], _flat(built.initialize(r, jax.random.wrap_key_data(keys[j]))))


def test_presets_shapes_and_fans_over_one_sampler_share_one_compiled_draw():
  """He, LeCun and Glorot (truncated normal), at every layer shape and fan and every weight
  variance, are one compiled draw; the rows are still ``jaxinit.initialize``'s bit for bit."""
  factory, kwargs, shape = BUILDS["builtin_mlp"]
  built = kinds.build(factory, kwargs, np.zeros((1,) + shape, np.float32))
  rule_sets = [params_lib.cell_rules(i, v) for i in ("he_normal", "lecun_normal",
                                                     "glorot_normal") for v in (1.0, 2.0)]
  keys = np.asarray(jax.random.key_data(jax.random.split(jax.random.key(4), len(rule_sets))))
  params_lib._flat_draw.cache_clear()
  drawn = params_lib.draw_population(built, rule_sets, keys)
  assert params_lib._flat_draw.cache_info().currsize == 1
  # (He and LeCun rows: test_batched_draw_equals_initialize_of_each_model_alone.)
  np.testing.assert_array_equal(
      drawn[-1], _flat(built.initialize(rule_sets[-1], jax.random.wrap_key_data(keys[-1]))))


@pytest.mark.parametrize("init", [{"name": "normal", "stddev": 0.05}, "he_uniform",
                                  {"name": "variance_scaling", "scale": 2.0,
                                   "mode": "fan_out", "sampler": "rademacher"},
                                  {"name": "variance_scaling", "scale": 1.0, "mode": "fan_in",
                                   "sampler": {"name": "truncated_normal",
                                                    "lower": 1.5, "upper": 3.0}}])
def test_a_flat_draw_is_the_initializers_draw_of_each_shape(init):
  """A row of a flat draw (one length for every shape) equals the initializer's compiled
  draw, scaled or not, at shapes whose sizes are not powers of two, bit for bit."""
  init = jaxinit.get(init)
  key = jax.random.key(2)
  for shape in [(5, 7), (3, 2, 6)]:
    program, multiplier = params_lib._flat_parts(init, shape, np.dtype(np.float32))
    for factor in (1.0, 0.5**0.5):
      row = params_lib._flat_draw(*program)(
          jax.random.key_data(key)[None], np.asarray([multiplier], np.float32),
          np.asarray([factor], np.float32))[0]
      expected = jax.jit(  # compiled, as jaxinit.initialize draws
          lambda k, f=factor: jaxinit.initializers.Scaled(init, f)(k, shape, jnp.float32))(key)
      np.testing.assert_array_equal(row[:expected.size].reshape(shape), expected,
                                    err_msg=f"{shape}, factor {factor}")


def test_builtin_sweep_model_is_the_jaxinit_models_network():
  """The sweep's ``mlp`` and ``resmlp`` are jaxinit.models' MLP/ResMLP: same params
  under the same rules and key."""
  for name, cls, extra in (("mlp", MLP, {}), ("resmlp", ResMLP, {"branch_scale": 0.5})):
    kw = dict(in_features=4, out_features=2, width=6, depth=3, activation="tanh",
              use_bias=True)
    model = MODELS[name].factory(**kw, **extra, rngs=nnx.Rngs(0))
    assert type(model) is cls
    rules = params_lib.cell_rules("glorot_normal", 1.5, 0.1)
    mine = cls(4, 2, 6, 3, activation="tanh", rules=rules, rngs=5, **extra)
    built = kinds.build(MODELS[name].factory, {**kw, **extra}, np.zeros((1, 4), np.float32))
    np.testing.assert_array_equal(_flat(built.initialize(rules, jax.random.key(5))),
                                  _flat(nnx.to_pure_dict(nnx.state(mine, nnx.Param))))


@pytest.mark.parametrize("kind", ["nnx_cnn", "pure"] + [
    pytest.param(k, marks=pytest.mark.slow) for k in ("linen", "equinox")])
def test_a_partial_rule_set_leaves_other_params_at_each_models_own_draw(kind):
  """Parameters no rule serves get the model's own initializers with each model's own
  key (so seeds differ everywhere), as ``jaxinit.initialize`` of the model built with
  that key gives them, bit for bit."""
  if kind == "equinox":
    pytest.importorskip("equinox")
  factory, kwargs, shape = BUILDS[kind]
  built = kinds.build(factory, kwargs, np.zeros((1,) + shape, np.float32))
  partial = jaxinit.rules.RuleSet.of([(p, jaxinit.zeros) for p in built.paths[-1:]])
  rule_sets = [partial, partial]
  keys = np.asarray(jax.random.key_data(jax.random.split(jax.random.key(1), 4)))
  init_keys, model_keys = keys[:2], keys[2:]
  drawn = params_lib.draw_population(built, rule_sets, init_keys, model_keys)
  for j, rules in enumerate(rule_sets):
    alone = built.initialize(rules, jax.random.wrap_key_data(init_keys[j]),
                             jax.random.wrap_key_data(model_keys[j]))
    np.testing.assert_array_equal(drawn[j], _flat(alone), err_msg=f"model {j}")
  kept = params_lib.plan(built, partial).kept
  lo = 0
  for path, leaf in zip(built.paths, jax.tree.leaves(built.params)):
    if path in kept and np.size(leaf) > 1 and np.std(leaf) > 0:
      part = slice(lo, lo + np.size(leaf))
      assert not np.array_equal(drawn[0, part], drawn[1, part]), path  # seeds differ
    lo += np.size(leaf)
