"""The model level's core: rules as data, path keys, initialize / reinit on pytrees and NNX."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxinit
from jaxinit.rules import (Glob, OfModule, Rule, RuleSet, UnusedRuleWarning, draw, param_key,
                           path_hash, plan)


def _leaves(tree):
  return {jax.tree_util.keystr(kp): np.asarray(v)
          for kp, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _nnx_params(model):
  return {"/".join(map(str, p)): np.asarray(v.get_value())
          for p, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}


# ---------------------------------------------------------------------------
# Rules as data

def test_rule_set_is_printable_comparable_hashable_and_round_trips_through_get():
  rules = RuleSet.of([(nnx.Conv, jaxinit.he_normal()), ((nnx.Conv, "bias"), jaxinit.zeros),
                      Rule("*/head/*", jaxinit.zeros, ndim=(1, 2), label="head"),
                      Rule("*emb*", jaxinit.normal(0.02), shape=(None, 16))],
                     default=jaxinit.lecun_normal())
  again = jaxinit.get(rules.to_config())
  assert again == rules and hash(again) == hash(rules)
  assert "OfModule('flax.nnx.nn.linear.Conv', 'bias')" in repr(rules)
  # A class, its public import path and its canonical path are the same pattern.
  assert OfModule(nnx.Conv) == OfModule("flax.nnx.Conv") == OfModule("flax.nnx.nn.linear.Conv")
  # Configs are plain data (what a sweep TOML holds).
  config = rules.to_config()
  assert config["rules"][1] == {"module": "flax.nnx.nn.linear.Conv", "param": "bias",
                                "init": {"name": "constant", "value": 0.0}}
  assert jaxinit.get({"name": "rules", "rules": [{"path": "*bias", "init": "zeros"}]}) == \
      RuleSet.of([("*bias", jaxinit.zeros)])


def test_rule_sets_concatenate_first_rules_first():
  a = RuleSet.of([("*bias", jaxinit.zeros)])
  b = RuleSet.of([("*", jaxinit.ones)], default=jaxinit.zeros)
  assert (a + b).rules == a.rules + b.rules and (a + b).default == jaxinit.zeros
  assert ([("x", jaxinit.ones)] + a).rules[0].pattern == Glob("x")


@pytest.mark.parametrize("config, error", [
    ({"path": "*", "module": "flax.nnx.Conv", "init": "zeros"}, "exactly one"),
    ({"path": "*"}, "needs an 'init'"),
    ({"path": "*", "init": "zeros", "parm": "bias"}, "did you mean 'param'"),
    ({"module": "flax.nnx.Cnov", "init": "zeros"}, "cannot be imported"),
    ({"path": "*", "param": "bias", "init": "zeros"}, "refines a 'module'"),
])
def test_bad_rule_configs_name_the_problem(config, error):
  with pytest.raises((ValueError, TypeError), match=error):
    RuleSet.from_config([config])


def test_globs_cross_slashes_and_ndim_shape_refine():
  params = {"a": {"bias": jnp.ones(3), "kernel": jnp.ones((3, 3))},
            "b": {"c": {"bias": jnp.ones(3)}}}
  p = plan(params, [Rule("*", jaxinit.zeros, ndim=1)])
  assert [a.path for a in p.assignments] == ["a/bias", "b/c/bias"] and p.kept == ("a/kernel",)
  p = plan(params, [Rule("*", jaxinit.zeros, shape=(None, 3))])
  assert [a.path for a in p.assignments] == ["a/kernel"]


# ---------------------------------------------------------------------------
# Path keys

def test_param_key_is_fold_in_of_the_stable_path_hash():
  hi, lo = path_hash("blocks/0/kernel")
  # The hash is BLAKE2b: fixed across processes, Python versions and hosts.
  import hashlib
  digest = hashlib.blake2b(b"blocks/0/kernel", digest_size=8).digest()
  assert (hi, lo) == (int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:], "little"))
  key = jax.random.key(3)
  expect = jax.random.fold_in(jax.random.fold_in(key, hi), lo)
  np.testing.assert_array_equal(jax.random.key_data(param_key(key, "blocks/0/kernel")),
                                jax.random.key_data(expect))


def test_draw_is_the_same_eager_jitted_and_vmapped_over_keys():
  init = jaxinit.he_normal()
  keys = jax.random.split(jax.random.key(0), 5)
  one = [draw(k, "x/kernel", (6, 4), jnp.float32, init) for k in keys]
  batched = jax.jit(jax.vmap(lambda k: draw(k, "x/kernel", (6, 4), jnp.float32, init)))(keys)
  for i in range(5):
    np.testing.assert_array_equal(one[i], batched[i])
  stacked = jax.vmap(lambda k: draw(k, "x/kernel", (6, 4), jnp.float32, init, (3,)))(keys)
  layer = init(jax.random.fold_in(param_key(keys[1], "x/kernel"), 2), (6, 4))
  np.testing.assert_array_equal(stacked[1, 2], layer)


# ---------------------------------------------------------------------------
# Pytrees

def test_pytree_initialize_draws_matched_leaves_at_their_path_keys():
  params = {"hidden": {"kernel": jnp.zeros((8, 4)), "bias": jnp.ones(4)}}
  out = jaxinit.initialize(params, [("*/kernel", jaxinit.he_normal())], jax.random.key(7))
  expect = jaxinit.he_normal()(param_key(jax.random.key(7), "hidden/kernel"), (8, 4))
  np.testing.assert_array_equal(out["hidden"]["kernel"], expect)
  assert out["hidden"]["bias"] is params["hidden"]["bias"]


def test_initialize_from_shapes_needs_a_rule_for_every_parameter():
  shapes = {"k": jax.ShapeDtypeStruct((3, 3), jnp.float32),
            "b": jax.ShapeDtypeStruct((3,), jnp.bfloat16)}
  with pytest.raises(ValueError, match=r"only shapes .* \['b'\]"):
    jaxinit.initialize(shapes, [("k", jaxinit.zeros)], 0)
  out = jaxinit.initialize(shapes, RuleSet.of([("k", jaxinit.zeros)], default=jaxinit.ones), 0)
  assert out["b"].dtype == jnp.bfloat16 and float(out["b"].sum()) == 3.0
  with pytest.raises(ValueError, match="reinit needs a model with values"):
    jaxinit.reinit(shapes, [("k", jaxinit.zeros)], 0)


def test_unused_rules_warn_and_strict_raises():
  params = {"w": jnp.ones((2, 2))}
  with pytest.warns(UnusedRuleWarning, match="nothing"):
    jaxinit.initialize(params, [("w", jaxinit.zeros), ("nothing", jaxinit.ones)], 0)
  with pytest.raises(ValueError, match=r"strict=True\): rule 1 Glob\('nothing'\)"):
    jaxinit.initialize(params, [("w", jaxinit.zeros), ("nothing", jaxinit.ones)], 0,
                       strict=True)


def test_an_initializer_that_cannot_serve_a_parameter_names_its_path():
  params = {"layer": {"bias": jnp.ones(4), "kernel": jnp.ones((4, 4))}}
  with pytest.raises(ValueError, match=r"layer/bias \(shape \(4,\), dtype float32\).*rank >= 2"):
    jaxinit.initialize(params, [("*", jaxinit.orthogonal())], 0)


# ---------------------------------------------------------------------------
# Flax NNX

class _Net(nnx.Module):
  def __init__(self, rngs: nnx.Rngs, extra: bool = False, head: int = 3):
    if extra:  # created first: changes the order of every RNG draw in Flax's own init
      self.adapter = nnx.Linear(8, 8, rngs=rngs)
    self.conv = nnx.Conv(2, 8, (3, 3), rngs=rngs)
    self.norm = nnx.LayerNorm(8, rngs=rngs)
    self.head = nnx.Linear(8, head, rngs=rngs)


_RULES = RuleSet.of([(nnx.Conv, jaxinit.he_normal()), ("*bias", jaxinit.zeros),
                     (nnx.LayerNorm, jaxinit.ones)], default=jaxinit.lecun_normal())


def test_nnx_initialize_updates_the_module_in_place_and_matches_eval_shape_route():
  model = _Net(nnx.Rngs(0))
  out = jaxinit.initialize(model, _RULES, jax.random.key(1))
  assert out is model
  abstract = jaxinit.initialize(nnx.eval_shape(lambda: _Net(nnx.Rngs(0))), _RULES,
                                jax.random.key(1))
  a, b = _nnx_params(model), _nnx_params(abstract)
  assert a.keys() == b.keys()
  for path in a:
    np.testing.assert_array_equal(a[path], b[path])
  # Module-aware fans: the conv kernel is he_normal at fan_in 3 * 3 * 2.
  expect = jaxinit.variance_scaling(2.0 / 18, "unit", "truncated_normal")(
      param_key(jax.random.key(1), "conv/kernel"), (3, 3, 2, 8))
  np.testing.assert_array_equal(a["conv/kernel"], expect)


def test_adding_a_module_leaves_every_other_parameter_bit_identical():
  plain = jaxinit.initialize(nnx.eval_shape(lambda: _Net(nnx.Rngs(0))), _RULES, 5)
  extra = jaxinit.initialize(nnx.eval_shape(lambda: _Net(nnx.Rngs(0), extra=True)), _RULES, 5)
  a, b = _nnx_params(plain), _nnx_params(extra)
  assert set(b) - set(a) == {"adapter/kernel", "adapter/bias"}
  for path in a:
    np.testing.assert_array_equal(a[path], b[path], err_msg=path)


def test_nnx_reinit_of_the_head_changes_nothing_else():
  model = _Net(nnx.Rngs(0))
  before = _nnx_params(model)
  jaxinit.reinit(model, [("head/*", jaxinit.zeros)], 0)
  after = _nnx_params(model)
  changed = [p for p in before if not np.array_equal(before[p], after[p])]
  assert changed == ["head/kernel"]  # the head's bias was zeros already
  assert not after["head/kernel"].any()


def test_stacked_nnx_layers_draw_each_layer_alone():
  class Block(nnx.Module):
    def __init__(self, rngs):
      self.linear = nnx.Linear(8, 8, rngs=rngs)

  class Stack(nnx.Module):
    def __init__(self, rngs):
      @nnx.split_rngs(splits=3)
      @nnx.vmap(in_axes=(0,), out_axes=0)
      def make(rngs):
        return Block(rngs)
      self.blocks = make(rngs)

  model = jaxinit.initialize(Stack(nnx.Rngs(0)), [(nnx.Linear, jaxinit.he_normal())], 2)
  kernel = model.blocks.linear.kernel[...]
  base = param_key(jax.random.key(2), "blocks/linear/kernel")
  for i in range(3):
    np.testing.assert_array_equal(kernel[i], jaxinit.he_normal()(jax.random.fold_in(base, i),
                                                                 (8, 8)))


def test_values_are_identical_jitted_and_on_1_2_4_8_devices():
  """One process per device count (fake CPU devices); each prints a digest of the params."""
  script = textwrap.dedent("""
      import hashlib, sys, jax, numpy as np
      from flax import nnx
      import jaxinit
      class Net(nnx.Module):
        def __init__(self, rngs):
          part = lambda init: nnx.with_partitioning(init, (None, "model"))
          self.a = nnx.Linear(16, 64, kernel_init=part(nnx.initializers.lecun_normal()),
                              rngs=rngs)
          self.b = nnx.Linear(64, 32, kernel_init=part(nnx.initializers.lecun_normal()),
                              rngs=rngs)
      def run(mesh, n):
        with jax.set_mesh(mesh):
          abstract = nnx.eval_shape(lambda: Net(nnx.Rngs(0)))
        rules = jaxinit.RuleSet.of([(nnx.Linear, jaxinit.he_normal()),
                                    ("*/bias", jaxinit.normal(0.1))])
        model = jaxinit.initialize(abstract, rules, 11, mesh=mesh)
        kernel = model.a.kernel[...]
        assert len(kernel.sharding.device_set) == n, kernel.sharding
        digest = hashlib.sha256()
        for path, var in sorted(nnx.to_flat_state(nnx.state(model, nnx.Param))):
          digest.update(np.asarray(var.get_value()).tobytes())
        return digest.hexdigest()
      n = int(sys.argv[1])
      digests = []
      for kind in (jax.sharding.AxisType.Explicit, jax.sharding.AxisType.Auto):
        digests.append(run(jax.make_mesh((n,), ("model",), axis_types=(kind,)), n))
      assert len(set(digests)) == 1, digests
      print(digests[0])
  """)
  procs = [subprocess.Popen([sys.executable, "-c", script, str(n)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={"XLA_FLAGS": os.environ.get("XLA_FLAGS", "")
                                 + f" --xla_force_host_platform_device_count={n}",
                                 "JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"})
           for n in (1, 2, 4, 8)]
  digests = set()
  for proc in procs:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    digests.add(out.strip().splitlines()[-1])
  assert len(digests) == 1, digests


def test_initialize_inside_jit_equals_eager():
  params = {"w": jnp.zeros((5, 7)), "b": jnp.zeros(7)}
  rules = [("w", jaxinit.he_uniform()), ("b", jaxinit.normal(0.5))]
  eager = jaxinit.initialize(params, rules, jax.random.key(4))
  jitted = jax.jit(lambda k: jaxinit.initialize(params, rules, k))(jax.random.key(4))
  for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted)):
    np.testing.assert_array_equal(a, b)


def test_import_jaxinit_needs_jax_alone():
  code = ("import sys, jaxinit; jaxinit.initialize; jaxinit.RuleSet; "
          "print(sorted(m for m in ('flax', 'equinox', 'orbax', 'optax') if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "[]"


def test_no_warning_when_every_rule_is_used():
  with warnings.catch_warnings():
    warnings.simplefilter("error", UnusedRuleWarning)
    jaxinit.initialize({"w": jnp.ones(2)}, [("w", jaxinit.zeros)], 0)


def test_rule_sets_load_from_toml():
  import tomllib
  config = tomllib.loads("""
      [rules]
      name = "rules"
      default = "lecun_normal"
      rules = [
        {module = "flax.nnx.Conv", init = "he_normal"},
        {module = "flax.nnx.LayerNorm", param = "bias", init = "zeros"},
        {path = "*/head/*", init = {name = "normal", stddev = 0.01}, ndim = [1, 2]},
      ]
  """)["rules"]
  rules = jaxinit.get(config)
  assert rules == RuleSet.of([(nnx.Conv, jaxinit.he_normal()),
                              ((nnx.LayerNorm, "bias"), jaxinit.zeros),
                              Rule("*/head/*", jaxinit.normal(0.01), ndim=(1, 2))],
                             default=jaxinit.lecun_normal())


def test_stack_axes_make_pytree_layers_draw_alone():
  params = {"w": jax.ShapeDtypeStruct((3, 8, 4), jnp.float32)}
  out = jaxinit.initialize(params, [("w", jaxinit.he_normal())], 1, stack_axes={"w": 1})
  base = param_key(jax.random.key(1), "w")
  for i in range(3):
    np.testing.assert_array_equal(out["w"][i],
                                  jaxinit.he_normal()(jax.random.fold_in(base, i), (8, 4)))
  p = plan(params, [("w", jaxinit.he_normal())], stack_axes={"w": 1})
  assert p.assignments[0].stack == (3,) and p.assignments[0].shape == (8, 4)


class _Deep(nnx.Module):
  """Same-shaped layers in a list, a stacked layer, a structured draw and constants."""

  def __init__(self, rngs):
    self.layers = nnx.List([nnx.Linear(6, 6, rngs=rngs) for _ in range(5)])
    self.stack = nnx.vmap(lambda r: nnx.Linear(6, 6, rngs=r))(rngs.split(3))
    self.norm = nnx.LayerNorm(6, rngs=rngs)
    self.head = nnx.Linear(6, 3, rngs=rngs)


def test_plan_draw_under_jit_and_vmap_equals_each_parameter_drawn_alone():
  """``Plan.draw`` (one kernel per distinct elementwise initializer and shape) and
  ``initialize`` inside the caller's jit/vmap give every parameter, of every key, the
  bits of its own eager draw."""
  model = nnx.eval_shape(lambda: _Deep(nnx.Rngs(0)))
  rules = [("layers/*/kernel", jaxinit.he_normal()), ("stack/kernel", jaxinit.truncated_normal(0.1)),
           ("head/kernel", jaxinit.orthogonal()), ("*bias", jaxinit.normal(0.5)),
           ("norm/*", jaxinit.ones)]
  plan = jaxinit.rules.plan(model, rules, stack_axes={"stack": 1})
  keys = jax.random.split(jax.random.key(3), 3)
  batched = jax.jit(jax.vmap(plan.draw))(keys)
  for i in range(3):
    for a in plan.assignments:
      alone = np.asarray(a.draw(keys[i]))
      got = np.asarray(batched[a.path][i])
      if a.path == "head/kernel":  # a batched QR: equal to rounding only
        np.testing.assert_allclose(got, alone, rtol=0, atol=1e-6)
      else:
        np.testing.assert_array_equal(got, alone, err_msg=a.path)


# ---------------------------------------------------------------------------
# Non-parameter state of a model from shapes (nnx.eval_shape, abstract linen collections)

class _Stateful(nnx.Module):
  def __init__(self, rngs):
    self.lin = nnx.Linear(3, 4, rngs=rngs)
    self.bn = nnx.BatchNorm(4, rngs=rngs)
    self.drop = nnx.Dropout(0.5, rngs=rngs)

  def __call__(self, x):
    return self.drop(self.bn(self.lin(x)))


def _abstract_paths(tree):
  return [jax.tree_util.keystr(kp) for kp, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
          if isinstance(leaf, jax.ShapeDtypeStruct)]


def test_eval_shape_models_get_the_state_their_constructors_give():
  rules = RuleSet(default=jaxinit.zeros)
  model = jaxinit.initialize(nnx.eval_shape(lambda: _Stateful(nnx.Rngs(0, dropout=1))), rules, 3)
  assert not _abstract_paths(nnx.state(model))
  built = _Stateful(nnx.Rngs(0, dropout=1))
  for name in ("mean", "var"):  # BatchNorm's running statistics: 0 and 1, as its constructor
    np.testing.assert_array_equal(getattr(model.bn, name).get_value(),
                                  getattr(built.bn, name).get_value())
  # The dropout stream: the path key of drop/rngs/key, count 0 (reproducible).
  stream = model.drop.rngs
  want = param_key(jax.random.key(3), "drop/rngs/key")
  np.testing.assert_array_equal(jax.random.key_data(stream.key.get_value()),
                                jax.random.key_data(want))
  assert int(stream.count.get_value()) == 0
  model.train()
  y = model(jnp.ones((2, 3)))  # the model runs: batch statistics update, dropout draws
  assert y.shape == (2, 4) and np.isfinite(np.asarray(y)).all()


class _Ema(nnx.Variable):
  pass


class _WithEma(nnx.Module):
  def __init__(self, rngs):
    self.lin = nnx.Linear(2, 2, rngs=rngs)
    self.ema = _Ema(jnp.full((2,), 5.0))
    self.step = _Ema(jnp.zeros((), jnp.int32))


def test_unknown_abstract_state_is_an_error_naming_every_path_until_declared():
  rules = RuleSet(default=jaxinit.zeros)
  with pytest.raises(ValueError, match=r"'ema' \(\(2,\), float32\), .*'step' \(\(\), int32\)"
                                       r".*register_module"):
    jaxinit.initialize(nnx.eval_shape(lambda: _WithEma(nnx.Rngs(0))), rules, 0)
  jaxinit.rules.register_module(_WithEma, weights=(), state={"ema": jaxinit.rules.fans.Fill(5),
                                                             "step": jaxinit.rules.fans.Fill(0)})
  try:
    model = jaxinit.initialize(nnx.eval_shape(lambda: _WithEma(nnx.Rngs(0))), rules, 0)
  finally:
    jaxinit.rules.fans._REGISTRY.pop(jaxinit.rules.patterns.class_path(_WithEma))
  assert model.ema.get_value().tolist() == [5.0, 5.0] and model.step.get_value().dtype == jnp.int32
  # An abstract integer leaf of a pytree has no constructor: named, never returned abstract.
  with pytest.raises(ValueError, match=r"'step' \(\(\), int32\)"):
    jaxinit.initialize({"w": jax.ShapeDtypeStruct((2, 2), jnp.float32),
                        "step": jax.ShapeDtypeStruct((), jnp.int32)}, [("w", jaxinit.zeros)], 0)
  # One error names every abstract leaf: parameters no rule serves (all 12) and state.
  shapes = {f"p{i:02d}": jax.ShapeDtypeStruct((2,), jnp.float32) for i in range(12)}
  shapes["step"] = jax.ShapeDtypeStruct((), jnp.int32)
  with pytest.raises(ValueError, match=r"\['p00', .*'p11'\]; .*'step'"):
    jaxinit.initialize(shapes, [("nothing", jaxinit.zeros)], 0)


def test_abstract_linen_batch_stats_are_built_from_the_module():
  import flax.linen as nn  # pylint: disable=import-outside-toplevel

  class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
      return nn.BatchNorm(use_running_average=True)(nn.Dense(3)(x))

  x = jnp.ones((2, 4))
  shapes = jax.eval_shape(lambda: Net().init(jax.random.key(0), x))
  rules = RuleSet(default=jaxinit.zeros)
  with pytest.raises(ValueError, match=r"batch_stats 'BatchNorm_0/mean'.*'BatchNorm_0/var'"):
    jaxinit.initialize(shapes, rules, 0)
  out = jaxinit.initialize(shapes, rules, 0, x, module=Net())
  assert not _abstract_paths(out)
  want = Net().init(jax.random.key(0), x)["batch_stats"]
  jax.tree.map(np.testing.assert_array_equal, out["batch_stats"], want)


# ---------------------------------------------------------------------------
# Bad arguments get clear errors early

def test_an_uncalled_initializer_factory_is_refused_naming_the_rule():
  for factory in (jaxinit.he_normal, jaxinit.lecun_normal, jax.nn.initializers.he_normal,
                  jaxinit.VarianceScaling):
    with pytest.raises(TypeError, match=r"init of rule OfModule\('flax.nnx.nn.linear.Conv'\) is "
                                        r"the initializer factory .*call it"):
      Rule(nnx.Conv, factory)
  with pytest.raises(TypeError, match=r"default is the initializer factory .*he_normal\(\)"):
    RuleSet(default=jaxinit.he_normal)
  Rule("*", jax.nn.initializers.zeros)  # a function initializer (key, shape, dtype) is fine


def test_a_pattern_to_initializer_dict_is_an_ordered_rule_list():
  params = {"head": {"kernel": jnp.ones((2, 2))}, "body": {"kernel": jnp.ones((2, 2))}}
  out = jaxinit.initialize(params, {"head/*": jaxinit.zeros, "*": jaxinit.ones}, 0)
  assert not out["head"]["kernel"].any() and out["body"]["kernel"].all()
  assert jaxinit.rules.as_rule_set({"head/*": jaxinit.zeros}) == RuleSet.of(
      [("head/*", jaxinit.zeros)]) == RuleSet.of({"head/*": jaxinit.zeros})
  with pytest.raises(ValueError, match=r"unknown \['rulez'\] \(did you mean 'rules'\?\)"):
    jaxinit.rules.as_rule_set({"name": "rules", "rulez": []})


@pytest.mark.parametrize("target", ["notamodel", None, 3, ["a", "b"]])
def test_a_target_of_no_known_kind_is_a_type_error_naming_the_kinds(target):
  for verb in (jaxinit.reinit, jaxinit.initialize):
    with pytest.raises(TypeError, match=r"target must be a Flax NNX module, .* Equinox module, "
                                        r"or a pytree of arrays"):
      verb(target, [("*", jaxinit.zeros)], 0)


def test_traced_int_seeds_draw_as_the_same_seed_eagerly():
  params = {"w": jnp.ones((3, 3))}
  rules = [("w", jaxinit.he_normal())]
  batched = jax.vmap(lambda s: jaxinit.initialize(params, rules, s)["w"])(jnp.arange(3))
  for seed in range(3):
    np.testing.assert_array_equal(batched[seed], jaxinit.initialize(params, rules, seed)["w"])
  with pytest.raises(ValueError, match="single int seed"):
    jaxinit.initialize(params, rules, jnp.arange(3))


def test_a_linen_module_without_its_sample_inputs_names_them():
  import flax.linen as nn  # pylint: disable=import-outside-toplevel

  class Net(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
      return nn.Dense(2)(x)

  variables = Net().init(jax.random.key(0), jnp.ones((1, 3)))
  with pytest.raises(TypeError, match=r"module= \(Net\) needs sample inputs for \['x'\]"):
    jaxinit.reinit(variables, [(nn.Dense, jaxinit.zeros)], 0, module=Net())
  with pytest.raises(TypeError, match=r"target \(Net\) needs sample inputs for \['x'\]"):
    jaxinit.initialize(Net(), [(nn.Dense, jaxinit.zeros)], 0)


def test_a_fan_scaled_default_never_reaches_parameters_without_fans():
  model = nnx.eval_shape(lambda: _Net(nnx.Rngs(0)))
  with pytest.raises(ValueError, match=r"the default .* serves only weights .*\['conv/bias', "
                                       r"'head/bias', 'norm/bias', 'norm/scale'\]"):
    jaxinit.initialize(model, RuleSet(default=jaxinit.he_normal()), 0)
  # A rule naming norm scales with a fan-scaled init: norms have no fans.
  with pytest.raises(ValueError, match=r"rule 0 OfModule.*none .*\['norm/scale'\]"):
    jaxinit.initialize(model, RuleSet.of([(nnx.LayerNorm, jaxinit.he_normal())],
                                         default=jaxinit.zeros), 0)
  # Biases and norms first: the default serves the weights.
  served = plan(model, RuleSet.of([("*bias", jaxinit.zeros), ("*scale", jaxinit.ones)],
                                  default=jaxinit.he_normal()))
  assert {a.path for a in served.assignments if a.rule is None} == {"conv/kernel", "head/kernel"}


@pytest.mark.parametrize("bad", [lambda k, s, d=None: jnp.ones((2, 2)),
                                 lambda k, s, d=None: jnp.full(s, 3.0, jnp.float16)],
                         ids=["shape", "dtype"])
def test_an_initializer_returning_the_wrong_shape_or_dtype_is_refused_naming_the_path(bad):
  """A user's function is never written into a model unchecked (found by a user: a (2, 2)
  head kernel in place of (4, 3), then an unrelated fans error on the next call)."""
  model = nnx.Linear(4, 3, rngs=nnx.Rngs(0))
  before = np.asarray(model.kernel[...])
  for call in (lambda: jaxinit.reinit(model, [("kernel", bad)], 0),
               lambda: jax.jit(lambda k: jaxinit.initialize(
                   {"kernel": jnp.zeros((4, 3))}, [("kernel", bad)], k))(jax.random.key(0))):
    with pytest.raises(ValueError, match=r"kernel .*returned shape .*needs shape \(4, 3\), "
                                         r"dtype float32"):
      call()
  np.testing.assert_array_equal(model.kernel[...], before)
