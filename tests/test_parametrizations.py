"""Parametrizations: muP's factors against microsoft/mup's, the optimizer side, base shapes."""

import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen as nn
from flax import nnx

import jaxinit
from jaxinit import parametrizations as P
from jaxinit.initializers import Constant, VarianceScaling
from jaxinit.parametrizations.nnx import Readout
from jaxinit.rules import RuleSet, schemes


def _variances(model, scaling):
  """Each drawn parameter's variance under ``scaling.rules`` (exact, from the initializer)."""
  out = {}
  for a in jaxinit.rules.plan(model, scaling.rules).assignments:
    init = a.init
    factor = 1.0
    while isinstance(init, jaxinit.Scaled):
      factor *= init.factor
      init = init.init
    if isinstance(init, Constant):
      out[a.path] = 0.0 if init.value == 0 else math.nan
    else:
      assert isinstance(init, VarianceScaling), (a.path, init)
      out[a.path] = init.scale / init.fan(a.shape) * factor ** 2
  return out


# ---------------------------------------------------------------------------
# muP's factors equal microsoft/mup's (read from its source, commit 1981497:
# mup/optim.py MuAdam / MuSGD, mup/layer.py MuReadout, mup/shape.py set_base_shapes with
# rescale_params=True, mup/infshape.py InfShape.width_mult / fanin_fanout_mult_ratio).

class MupTestMLP(nnx.Module):
  """mup/test/models.py ``_generate_MLP``: Linear(3072, w), Linear(w, w), MuReadout(w, 10)."""

  def __init__(self, width, rngs):
    self.input = nnx.Linear(3072, width, rngs=rngs)
    self.hidden = nnx.Linear(width, width, rngs=rngs)
    self.readout = Readout(width, 10, multiplier=256 / width, rngs=rngs)


def test_mup_factors_equal_microsoft_mups_for_its_mlp():
  # base width 256 (generate_MLP's base_width), target 1024: width_mult 4. torch's default
  # Linear init U(+-1/sqrt(fan_in)) (variance 1/(3 fan_in)) for weights and biases, then
  # set_base_shapes rescales: rescale_linear_bias multiplies a Linear's bias by
  # sqrt(fanin_mult); MuReadout._rescale_parameters multiplies weight and bias by
  # sqrt(width_mult). MuAdam: ninf == 2 -> lr / width_mult (width_mult = the fan-in's),
  # else lr. MuSGD: ninf == 1 -> lr * width_mult; ninf == 2 -> lr / (fanin_mult /
  # fanout_mult); ninf == 0 -> lr. MuReadout.forward: output_mult * x / width_mult.
  expected = {  # path: (variance, lr_adam, lr_sgd, multiplier)
      "input/kernel": (1 / (3 * 3072), 1.0, 4.0, 1.0),
      "input/bias": (1 / (3 * 3072), 1.0, 4.0, 1.0),
      "hidden/kernel": (1 / (3 * 1024), 0.25, 1.0, 1.0),
      "hidden/bias": (1 / (3 * 1024) * 4, 1.0, 4.0, 1.0),
      "readout/kernel": (1 / (3 * 1024) * 4, 1.0, 4.0, 0.25),
      "readout/bias": (1 / (3 * 1024) * 4, 1.0, 1.0, 1.0),
  }
  base = nnx.eval_shape(lambda: MupTestMLP(256, nnx.Rngs(0)))
  model = nnx.eval_shape(lambda: MupTestMLP(1024, nnx.Rngs(0)))
  scaling = P.mup(readout="multiplier").scale(model, base=base, rules=schemes.pytorch())
  variances = _variances(model, scaling)
  for path, (var, adam, sgd, mult) in expected.items():
    f = scaling[path].factors
    assert variances[path] == pytest.approx(var, rel=1e-6), path
    assert (f.lr_adam, f.lr_sgd, f.multiplier) == pytest.approx((adam, sgd, mult)), path
  assert [scaling[p].role for p in expected] == ["input", "vector", "hidden", "vector",
                                                 "output", "fixed"]


class MupTransformer(nnx.Module):
  """mup's examples/Transformer/model.py at ffn_ratio 1, 2 heads, 2 layers: Embedding,
  self-attention (fused in_proj there, q/k/v here), out_proj, linear1/2, norm1/2, MuReadout."""

  def __init__(self, width, rngs, ntoken=50):
    self.encoder = nnx.Embed(ntoken, width, rngs=rngs)
    self.layers = nnx.List([nnx.Dict(
        self_attn=nnx.MultiHeadAttention(2, width, decode=False, rngs=rngs),
        linear1=nnx.Linear(width, width, rngs=rngs), linear2=nnx.Linear(width, width, rngs=rngs),
        norm1=nnx.LayerNorm(width, rngs=rngs), norm2=nnx.LayerNorm(width, rngs=rngs))
        for _ in range(2)])
    self.decoder = Readout(width, ntoken, multiplier=256 / width, rngs=rngs)


def test_mup_factors_equal_microsoft_mups_for_its_transformer():
  # width256.bsh: d_model 256 is the base; target 1024 (width_mult 4, head_dim 512). The
  # example initializes attention and linear weights N(0, encoder_var / d_model) (q zero),
  # biases 0, nn.Embedding N(0, 1), the readout 0 (TransformerModel.init_weights). Factors:
  # Embedding (ntoken, d) [null, 256]: ninf 1 -> MuAdam lr, MuSGD lr * 4; every (d, d)
  # weight [256, 256]: lr / 4 (Adam), lr / (4 / 4) (SGD); norms (d,): lr, lr * 4; MuReadout
  # [null, 256]: lr, lr * 4, forward x / 4.
  rules = RuleSet.of([
      ((nnx.MultiHeadAttention, "query/kernel"), jaxinit.zeros),
      ("decoder/*", jaxinit.zeros),
      (nnx.Embed, jaxinit.normal(1.0)),
      ("*bias", jaxinit.zeros),
      (nnx.LayerNorm, jaxinit.ones),
  ], default=jaxinit.variance_scaling(1.0, "fan_in", "normal"))
  base = nnx.eval_shape(lambda: MupTransformer(256, nnx.Rngs(0)))
  model = nnx.eval_shape(lambda: MupTransformer(1024, nnx.Rngs(0)))
  scaling = P.mup(readout="multiplier").scale(model, base=base, rules=rules)
  variances = _variances(model, scaling)
  hidden = [f"layers/{i}/{name}/kernel" for i in range(2)
            for name in ("self_attn/key", "self_attn/value", "self_attn/out", "linear1",
                         "linear2")]
  for path in hidden:
    f = scaling[path].factors
    assert scaling[path].role == "hidden"
    assert (f.lr_adam, f.lr_sgd, f.multiplier) == pytest.approx((0.25, 1.0, 1.0)), path
    assert variances[path] == pytest.approx(1 / 1024, rel=1e-6), path
  vectors = ["encoder/embedding"] + [f"layers/{i}/{name}" for i in range(2)
                                     for name in ("norm1/scale", "norm2/bias", "linear1/bias",
                                                  "self_attn/query/bias")]
  for path in vectors:
    f = scaling[path].factors
    assert (f.lr_adam, f.lr_sgd, f.multiplier) == pytest.approx((1.0, 4.0, 1.0)), path
  assert variances["encoder/embedding"] == 1.0
  assert variances["layers/0/self_attn/query/kernel"] == 0.0
  f = scaling["decoder/kernel"].factors
  assert (f.lr_adam, f.lr_sgd, f.multiplier) == pytest.approx((1.0, 4.0, 0.25))
  assert variances["decoder/kernel"] == 0.0
  # mup's multi_head_attention_forward: q * head_dim**-1 * sqrt(attn_mult) (muP),
  # q * head_dim**-0.5 * sqrt(attn_mult) (standparam); attn_mult 1 by default.
  assert P.mup().attention_scale(512, 128, attn_mult=1) == 1 / 512
  assert P.sp().attention_scale(512, 128) == 512 ** -0.5
  assert P.mup().attention_scale(128, 128) == 128 ** -0.5  # the base model is SP


def test_absorbed_readout_equals_the_multiplier_readout_step_by_step():
  """TP5's abc-symmetry: W -> W/a with SGD lr / a^2 or Adam lr / a and eps / a. With
  power-of-two width ratios both forms are exactly the same function at every step."""

  class MLP(nnx.Module):
    def __init__(self, width, rngs, multiplier=None):
      self.input = nnx.Linear(8, width, rngs=rngs)
      self.hidden = nnx.Linear(width, width, rngs=rngs)
      self.readout = (nnx.Linear(width, 4, rngs=rngs) if multiplier is None
                      else Readout(width, 4, multiplier=multiplier, rngs=rngs))

    def __call__(self, x):
      return self.readout(nnx.relu(self.hidden(nnx.relu(self.input(x)))))

  x = jax.random.normal(jax.random.key(1), (16, 8))
  y = jax.random.randint(jax.random.key(2), (16,), 0, 4)
  base = nnx.eval_shape(lambda: MLP(16, nnx.Rngs(0)))
  for name, kwargs in (("sgd", {"momentum": 0.9}), ("adam", {}), ("adamw", {"weight_decay": 0.1})):
    runs = {}
    for form, multiplier in (("absorbed", None), ("multiplier", 16 / 128)):
      model = nnx.eval_shape(lambda: MLP(128, nnx.Rngs(0), multiplier))  # noqa: B023
      scaling = P.mup(readout=form).scale(model, base=base)
      model = jaxinit.initialize(model, scaling.rules, jax.random.key(0))
      tx = scaling.optimizer(name, 0.05, **kwargs)
      graphdef, params = nnx.split(model, nnx.Param)
      state = tx.init(params)
      loss = lambda p: optax.softmax_cross_entropy_with_integer_labels(  # noqa: E731
          nnx.merge(graphdef, p)(x), y).mean()  # noqa: B023
      for _ in range(4):
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        params = optax.apply_updates(params, updates)
      runs[form] = (nnx.merge(graphdef, params)(x), params)
    np.testing.assert_array_equal(runs["absorbed"][0], runs["multiplier"][0])
    np.testing.assert_array_equal(runs["absorbed"][1]["readout"]["kernel"][...],
                                  runs["multiplier"][1]["readout"]["kernel"][...] / 8)


# ---------------------------------------------------------------------------
# The optimizer side.

def _two_layer(width):
  return {"hidden": {"kernel": jax.ShapeDtypeStruct((width, width), jnp.float32)},
          "readout": {"kernel": jax.ShapeDtypeStruct((width, 3), jnp.float32)}}


def test_adam_epsilon_is_scaled_with_the_gradient():
  scaling = P.mup().scale(_two_layer(256), base=_two_layer(64))
  assert scaling["hidden/kernel"].factors.eps == 0.25
  grads = {"hidden": {"kernel": jnp.full((256, 256), 3e-8)},
           "readout": {"kernel": jnp.full((256, 3), 3e-8)}}
  params = jax.tree.map(jnp.zeros_like, grads)
  tx = scaling.optimizer("adam", 1.0, eps=1e-7)
  updates, _ = tx.update(grads, tx.init(params), params)
  for path, lr, eps in (("hidden", 0.25, 0.25e-7), ("readout", 0.25, 1e-7)):
    reference = optax.adam(lr, eps=eps)
    want, _ = reference.update(grads[path], reference.init(params[path]), params[path])
    np.testing.assert_allclose(updates[path]["kernel"], want["kernel"], rtol=1e-6)


def test_decoupled_weight_decay_is_lr_times_wd_per_step_at_every_width():
  """mup's MuAdamW keeps lr * wd per step; decaying inside the scaled update (optax's adamw
  under a 1/width learning-rate factor) would shrink it with the width (mup PR #73)."""
  for width in (64, 512):
    scaling = P.mup().scale(_two_layer(width), base=_two_layer(64))
    params = {"hidden": {"kernel": jnp.ones((width, width))},
              "readout": {"kernel": jnp.ones((width, 3))}}
    zeros = jax.tree.map(jnp.zeros_like, params)
    tx = scaling.optimizer("adamw", 1e-2, weight_decay=0.5)
    updates, _ = tx.update(zeros, tx.init(params), params)
    for leaf in jax.tree.leaves(updates):
      np.testing.assert_allclose(leaf, -1e-2 * 0.5, rtol=1e-6)
    sgd = scaling.optimizer("sgd", 1e-2, weight_decay=0.5, momentum=0.9)
    updates, _ = sgd.update(zeros, sgd.init(params), params)
    for leaf in jax.tree.leaves(updates):
      np.testing.assert_allclose(leaf, -1e-2 * 0.5, rtol=1e-6)


def test_one_program_trains_several_parametrizations_and_learning_rates():
  """Factor trees are arguments of a vmapped step: SP and muP, three learning rates, one jit."""
  scalings = [p.scale(_two_layer(128), base=_two_layer(32)) for p in (P.sp(), P.mup())]
  factors = jax.tree.map(lambda *f: jnp.asarray(f), *[s.trees() for s in scalings])
  params = {"hidden": {"kernel": jnp.full((128, 128), 0.1)},
            "readout": {"kernel": jnp.full((128, 3), 0.1)}}
  grads = jax.tree.map(lambda p: jnp.linspace(-1.0, 1.0, p.size).reshape(p.shape), params)
  lrs = jnp.asarray([1e-3, 1e-2, 1e-1])

  def step(f, lr):
    tx = P.optimizer("adam", lr, f)
    return tx.update(grads, tx.init(params), params)[0]

  batched = jax.jit(jax.vmap(jax.vmap(step, (None, 0)), (0, None)))(factors, lrs)
  for i, scaling in enumerate(scalings):
    for j, lr in enumerate([1e-3, 1e-2, 1e-1]):
      tx = scaling.optimizer("adam", lr)
      want = tx.update(grads, tx.init(params), params)[0]
      for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(batched)):
        np.testing.assert_allclose(a, b[i, j], rtol=1e-5)


def test_unknown_optimizer_and_factor_are_named():
  scaling = P.mup().scale(_two_layer(128), base=_two_layer(32))
  with pytest.raises(ValueError, match="optimizer must be one of .* got 'adan'.*did you mean 'adam'"):
    scaling.optimizer("adan", 1e-3)
  with pytest.raises(ValueError, match="did you mean 'lr_adam'"):
    scaling.tree("lr_adma")


# ---------------------------------------------------------------------------
# Roles from base shapes, init rules, depth.

def test_roles_read_the_module_fans_in_every_layout():
  import equinox as eqx

  def flax_mlp(w):
    return nnx.eval_shape(lambda: nnx.Sequential(nnx.Linear(5, w, rngs=nnx.Rngs(0)),
                                                 nnx.Linear(w, w, rngs=nnx.Rngs(0)),
                                                 nnx.Linear(w, 3, rngs=nnx.Rngs(0))))

  def eqx_mlp(w):  # weights (out, in)
    keys = jax.random.split(jax.random.key(0), 3)
    return [eqx.nn.Linear(5, w, key=keys[0]), eqx.nn.Linear(w, w, key=keys[1]),
            eqx.nn.Linear(w, 3, key=keys[2])]

  flax_roles = [s.role for s in P.mup().scale(flax_mlp(64), base=flax_mlp(16)).params
                if s.path.endswith("kernel")]
  eqx_roles = [s.role for s in P.mup().scale(eqx.nn.Sequential(eqx_mlp(64)),
                                              base=eqx.nn.Sequential(eqx_mlp(16))).params
               if s.path.endswith("weight")]
  assert flax_roles == eqx_roles == ["input", "hidden", "output"]

  def convnet(c):
    return nnx.eval_shape(lambda: nnx.Sequential(
        nnx.Embed(20, c, rngs=nnx.Rngs(0)), nnx.Conv(c, 2 * c, (3,), rngs=nnx.Rngs(0)),
        nnx.Conv(2 * c, 4, (3,), rngs=nnx.Rngs(0))))

  scaling = P.mup().scale(convnet(32), base=convnet(8))
  assert [scaling[f"layers/{i}/{n}"].role for i, n in
          ((0, "embedding"), (1, "kernel"), (2, "kernel"), (1, "bias"), (2, "bias"))] == [
              "input", "hidden", "output", "vector", "fixed"]
  assert scaling["layers/1/kernel"].m_in == 4.0


def test_roles_can_be_named_when_the_shapes_cannot_tell():
  tied = {"embed": jax.ShapeDtypeStruct((100, 64), jnp.float32)}
  base = {"embed": jax.ShapeDtypeStruct((100, 16), jnp.float32)}
  assert P.mup().scale(tied, base=base)["embed"].role == "input"  # (in, out) by jax's axes
  assert P.mup().scale(tied, base=base, roles={"embed": "output"})["embed"].role == "output"


def test_a_parameter_missing_from_the_base_is_named():
  with pytest.raises(ValueError, match="extra/kernel has no counterpart in the base model"):
    P.mup().scale({**_two_layer(32), "extra": {"kernel": jnp.zeros((2, 2))}}, base=_two_layer(8))
  with pytest.raises(ValueError, match="rank 2 in the target, 1 in the base"):
    P.mup().scale({"w": jnp.zeros((4, 4))}, base={"w": jnp.zeros(4)})


def test_init_rules_scale_the_base_models_variance():
  """A constant-std rule (GPT-2's 0.02) and a fan-in rule both scale as muP asks: hidden
  variance / m, absorbed readout / m^2, input and vectors unchanged (mup.init.normal_ and
  set_base_shapes' rescaling); orthogonal is taken to scale as 1 / fan_in."""
  def mlp(w):
    return {"input": {"kernel": jax.ShapeDtypeStruct((10, w), jnp.float32)},
            "hidden": {"kernel": jax.ShapeDtypeStruct((w, w), jnp.float32),
                       "bias": jax.ShapeDtypeStruct((w,), jnp.float32)},
            "readout": {"kernel": jax.ShapeDtypeStruct((w, 4), jnp.float32)}}
  for rule, base_var in ((jaxinit.normal(0.02), lambda fan_in: 0.02 ** 2),
                         (jaxinit.lecun_normal(), lambda fan_in: 1 / fan_in)):
    scaling = P.mup().scale(mlp(256), base=mlp(64),
                            rules=[("*kernel", rule), ("*bias", jaxinit.normal(0.1))])
    var = _variances(mlp(256), scaling)
    assert var["input/kernel"] == pytest.approx(base_var(10))
    assert var["hidden/kernel"] == pytest.approx(base_var(64) / 4)
    assert var["readout/kernel"] == pytest.approx(base_var(64) / 16)
    assert var["hidden/bias"] == pytest.approx(0.01)
  scaling = P.mup().scale(mlp(256), base=mlp(64),
                          rules=[("*kernel", jaxinit.orthogonal()), ("*bias", jaxinit.zeros)])
  model = jaxinit.initialize(mlp(256), scaling.rules, jax.random.key(0))
  assert float(jnp.var(model["hidden"]["kernel"])) == pytest.approx(1 / 256, rel=0.01)
  assert float(jnp.var(model["readout"]["kernel"])) == pytest.approx(1 / 256 / 4, rel=0.1)
  sp = P.sp().scale(mlp(256), base=mlp(64), rules=[("*kernel", jaxinit.lecun_normal())])
  assert _variances(mlp(256), sp)["hidden/kernel"] == pytest.approx(1 / 256)


def test_depth_factors_follow_depth_mup_and_completep():
  class Res(nnx.Module):
    def __init__(self, depth, rngs):
      self.input = nnx.Linear(4, 8, rngs=rngs)

      @nnx.split_rngs(splits=depth)
      @nnx.vmap(in_axes=(0,), out_axes=0)
      def blocks(r):
        return nnx.Linear(8, 8, rngs=r)
      self.blocks = blocks(rngs)
      self.unrolled = nnx.List([nnx.Linear(8, 8, rngs=rngs) for _ in range(depth)])

  base = nnx.eval_shape(lambda: Res(4, nnx.Rngs(0)))
  model = nnx.eval_shape(lambda: Res(16, nnx.Rngs(0)))
  for p, adam, sgd, eps in ((P.depth_mup(0.5), 0.5, 1.0, 0.5), (P.completep(), 1.0, 4.0, 0.25)):
    scaling = p.scale(model, base=base)
    for path in ("blocks/kernel", "blocks/bias", "unrolled/0/kernel", "unrolled/15/bias"):
      f = scaling[path].factors
      assert scaling[path].depth_mult == 4.0, path
      assert (f.lr_adam, f.lr_sgd, f.eps, f.weight_decay) == pytest.approx(
          (adam, sgd, eps, adam)), path
    assert scaling["input/kernel"].depth_mult == 1.0
    assert scaling["input/kernel"].factors.lr_adam == 1.0
  assert P.depth_mup(0.5).branch_multiplier(16, 4) == 0.5
  assert P.completep().branch_multiplier(16, 4) == 0.25
  assert P.mup().branch_multiplier(16, 4) == 1.0


def test_ntk_factors():
  scaling = P.ntk().scale(_two_layer(256), base=_two_layer(64))
  f = scaling["hidden/kernel"].factors
  assert (f.init, f.lr_sgd, f.lr_adam) == pytest.approx((0.5, 0.25, 0.5))
  f = scaling["readout/kernel"].factors
  assert (f.init, f.lr_sgd, f.lr_adam) == pytest.approx((0.5, 0.25, 0.5))


def test_parametrizations_are_plain_data():
  for p in (P.sp(), P.ntk(), P.mup(), P.mup("multiplier"), P.depth_mup(), P.completep()):
    assert P.get(p.to_config()) == p
    assert hash(p) == hash(P.get(p.to_config()))
  assert P.get("completep") == P.Parametrization("mup", 1.0)
  assert len({P.mup(), P.mup(), P.sp()}) == 2
  with pytest.raises(ValueError, match="did you mean 'mup'"):
    P.get("mpu")
  with pytest.raises(ValueError, match="width must be one of"):
    P.Parametrization("ntp")
  with pytest.raises(ValueError, match="depth_alpha must be"):
    P.depth_mup(alpha=1.5)
  with pytest.raises(ValueError, match="did you mean 'readout'"):
    P.get({"name": "parametrization", "readuot": "absorbed"})


def test_param_drawer_draws_what_initialize_draws():
  model = nnx.eval_shape(lambda: nnx.Sequential(nnx.Linear(3, 8, rngs=nnx.Rngs(0)),
                                                nnx.Linear(8, 2, rngs=nnx.Rngs(0))))
  base = nnx.eval_shape(lambda: nnx.Sequential(nnx.Linear(3, 4, rngs=nnx.Rngs(0)),
                                               nnx.Linear(4, 2, rngs=nnx.Rngs(0))))
  scaling = P.mup().scale(model, base=base)
  drawn = jax.jit(jax.vmap(P.param_drawer(model, scaling.rules)))(
      jax.random.split(jax.random.key(3), 2))
  eager = nnx.state(jaxinit.initialize(model, scaling.rules, jax.random.split(
      jax.random.key(3), 2)[1]), nnx.Param)
  for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(drawn)):
    np.testing.assert_array_equal(a, b[1])


def test_linen_models_and_readouts():
  class MLP(nn.Module):
    width: int

    @nn.compact
    def __call__(self, x):
      h = nn.relu(nn.Dense(self.width, name="hidden")(nn.relu(nn.Dense(self.width)(x))))
      return P.linen.Readout(3, multiplier=16 / self.width, name="head")(h)

  x = jnp.ones((2, 5))
  scaling = P.mup("multiplier").scale(MLP(64), x, base=MLP(16))
  assert [scaling[p].role for p in ("Dense_0/kernel", "hidden/kernel", "head/kernel")] == [
      "input", "hidden", "output"]
  variables = jaxinit.initialize(MLP(64), scaling.rules, jax.random.key(0), x)
  params = variables["params"]
  expected = P.linen.Readout(3).apply({"params": params["head"]},
                                      0.25 * jnp.ones((2, 64)))
  head_in = jnp.ones((2, 64))
  got = P.linen.Readout(3, multiplier=0.25).apply({"params": params["head"]}, head_in)
  np.testing.assert_allclose(got, expected, rtol=1e-6)
  tx = scaling.optimizer("sgd", 0.1)
  updates, _ = tx.update(jax.tree.map(jnp.ones_like, params), tx.init(params), params)
  assert float(updates["hidden"]["kernel"][0, 0]) == pytest.approx(-0.1)
  assert float(updates["head"]["kernel"][0, 0]) == pytest.approx(-0.1 * 4)


def test_scaled_attention_sets_the_logit_scale():
  q = jax.random.normal(jax.random.key(0), (1, 4, 2, 8))
  k = jax.random.normal(jax.random.key(1), (1, 4, 2, 8))
  v = jax.random.normal(jax.random.key(2), (1, 4, 2, 8))
  mup = P.scaled_attention(1 / 8)(q, k, v)
  logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / 8
  want = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(logits), v)
  np.testing.assert_allclose(mup, want, rtol=1e-5, atol=1e-6)


def test_import_jaxinit_and_parametrizations_need_jax_alone():
  code = ("import sys, jaxinit; from jaxinit import parametrizations as P; "
          "jaxinit.coord_check; P.mup().factors('hidden', m_in=2.0, m_out=2.0); "
          "print(sorted(m for m in ('flax', 'optax', 'matplotlib', 'pandas') "
          "if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "[]"


def test_completep_factors_equal_the_reference_implementation():
  """Hidden weights of a residual stack grown 4x in width and 4x in depth: learning rate, Adam
  epsilon and decoupled decay per step equal CompleteP's reference code (EleutherAI
  nanoGPT-mup, ``completep`` branch as published by its authors, clairez-cerebras/nanoGPT-mup
  model.py ``configure_optimizers`` at 95aa846): hidden weights get ``lr_scale = (1/m) *
  k^(alpha-1)`` and AdamW ``weight_decay = wd * m`` (torch decays ``lr * lr_scale * wd_group``
  per step, i.e. ``lr * wd * k^(alpha-1)``), and ``eps *= (1/m) * k^-alpha``. Numbers for
  m = k = 4 written out from those lines."""
  class Res(nnx.Module):
    def __init__(self, width, depth, rngs):
      self.input = nnx.Linear(4, width, rngs=rngs)
      self.blocks = nnx.List([nnx.Linear(width, width, rngs=rngs) for _ in range(depth)])

  base = nnx.eval_shape(lambda: Res(8, 4, nnx.Rngs(0)))
  model = nnx.eval_shape(lambda: Res(32, 16, nnx.Rngs(0)))
  # alpha: (lr_scale, decay per step / (lr * wd), eps scale) of the reference at m = k = 4.
  reference = {1.0: (0.25, 1.0, 1 / 16), 0.5: (0.125, 0.5, 1 / 8)}
  for p in (P.completep(), P.depth_mup(0.5)):
    lr_scale, decay, eps = reference[p.depth_alpha]
    f = p.scale(model, base=base)["blocks/3/kernel"].factors
    assert f.lr_adam == pytest.approx(lr_scale, rel=1e-12), p
    assert f.weight_decay == pytest.approx(decay, rel=1e-12), p  # jaxinit: lr * wd * factor
    assert f.eps == pytest.approx(eps, rel=1e-12), p
