"""Each scheme on a model that has the parts it names; constants against the papers."""

from __future__ import annotations

import math

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxinit
from jaxinit.rules import schemes


def _flat(model):
  return {"/".join(map(str, p)): np.asarray(v.get_value())
          for p, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}


def _std_ok(x, want, rel=0.08):
  """Sample std within a few standard errors of ``want`` (rel >= 4 / sqrt(2 n))."""
  assert rel >= 4 / math.sqrt(2 * x.size) or x.size > 20000
  assert abs(float(np.std(x)) / want - 1.0) < rel, (float(np.std(x)), want)


class Tower(nnx.Module):
  """Every layer type PyTorch's defaults name."""

  def __init__(self, rngs):
    self.embed = nnx.Embed(300, 64, rngs=rngs)
    self.conv = nnx.Conv(16, 32, (3, 3), rngs=rngs)
    self.deconv = nnx.ConvTranspose(32, 16, (3, 3), rngs=rngs)
    self.attn = nnx.MultiHeadAttention(4, 64, decode=False, rngs=rngs)
    self.norm = nnx.LayerNorm(64, rngs=rngs)
    self.fc = nnx.Linear(64, 128, rngs=rngs)


def test_pytorch_defaults():
  model = jaxinit.initialize(nnx.eval_shape(lambda: Tower(nnx.Rngs(0))), schemes.pytorch(), 0,
                             strict=False)
  p = _flat(model)
  assert not jaxinit.rules.plan(model, schemes.pytorch()).kept
  # U(+-1/sqrt(fan_in)) weights and biases, bounds reached.
  for name, fan_in in (("fc", 64), ("conv", 9 * 16)):
    for leaf in ("kernel", "bias"):
      bound = 1 / math.sqrt(fan_in)
      x = p[f"{name}/{leaf}"]
      assert np.abs(x).max() <= bound and np.abs(x).max() > 0.9 * bound, (name, leaf)
  # ConvTranspose: torch's fan_in is out * prod(k) = 16 * 9.
  assert 0.9 / 12 < np.abs(p["deconv/kernel"]).max() <= 1 / 12
  _std_ok(p["embed/embedding"], 1.0)
  assert (p["norm/scale"] == 1).all() and (p["norm/bias"] == 0).all()
  # Attention: xavier_uniform of the fused (3E, E) in-projection: Var = 1 / (2E).
  _std_ok(p["attn/query/kernel"], math.sqrt(1 / 128))
  assert np.abs(p["attn/out/kernel"]).max() <= 1 / 8 and not p["attn/query/bias"].any()


def test_pytorch_defaults_on_equinox_match_torch_layout():
  model = jaxinit.initialize(eqx.nn.Linear(100, 400, key=jax.random.key(0)), schemes.pytorch(), 1)
  assert model.weight.shape == (400, 100)
  assert 0.09 < float(jnp.abs(model.weight).max()) <= 0.1  # 1/sqrt(in=100)
  assert 0.09 < float(jnp.abs(model.bias).max()) <= 0.1


class Block(nnx.Module):
  def __init__(self, width, rngs):
    self.ln1 = nnx.LayerNorm(width, rngs=rngs)
    self.attn = nnx.MultiHeadAttention(4, width, decode=False, rngs=rngs)
    self.ln2 = nnx.LayerNorm(width, rngs=rngs)
    self.mlp = nnx.Dict(fc=nnx.Linear(width, 4 * width, rngs=rngs),
                        proj=nnx.Linear(4 * width, width, rngs=rngs))


class GPT(nnx.Module):
  def __init__(self, depth=4, width=64, rngs=None):
    self.tok = nnx.Embed(500, width, rngs=rngs)
    self.pos = nnx.Embed(64, width, rngs=rngs)
    self.blocks = nnx.List([Block(width, rngs) for _ in range(depth)])
    self.ln_f = nnx.LayerNorm(width, rngs=rngs)


def test_gpt2():
  rules = schemes.gpt2(num_layers=4)
  model = jaxinit.initialize(nnx.eval_shape(lambda: GPT(rngs=nnx.Rngs(0))), rules, 0,
                             strict=True)
  assert not jaxinit.rules.plan(model, rules).kept
  p = _flat(model)
  _std_ok(p["tok/embedding"], 0.02)
  _std_ok(p["pos/embedding"], 0.01)
  _std_ok(p["blocks/0/mlp/fc/kernel"], 0.02)
  _std_ok(p["blocks/0/attn/query/kernel"], 0.02)
  residual = np.concatenate([p[f"blocks/{i}/{n}"].ravel() for i in range(4)
                             for n in ("attn/out/kernel", "mlp/proj/kernel")])
  _std_ok(residual, 0.02 / math.sqrt(2 * 4))
  assert not any(p[k].any() for k in p if k.endswith("bias"))


def test_vit_jax_on_a_linen_vit():
  class MlpBlock(nn.Module):
    @nn.compact
    def __call__(self, x):
      return nn.Dense(64)(nn.gelu(nn.Dense(256)(x)))

  class ViT(nn.Module):
    @nn.compact
    def __call__(self, img):
      x = nn.Conv(64, (4, 4), strides=4, padding="VALID", name="embedding")(img)
      x = x.reshape(x.shape[0], -1, 64)
      x = x + self.param("pos_embedding", nn.initializers.normal(0.02), (1, x.shape[1], 64))
      cls = self.param("cls", nn.initializers.zeros, (1, 1, 64))
      x = jnp.concatenate([jnp.tile(cls, (x.shape[0], 1, 1)), x], axis=1)
      x = x + nn.MultiHeadDotProductAttention(num_heads=4)(nn.LayerNorm()(x))
      x = x + MlpBlock()(nn.LayerNorm()(x))
      return nn.Dense(10, name="head")(x[:, 0])

  img = jnp.ones((1, 32, 32, 3))
  v = jaxinit.initialize(ViT(), schemes.vit_jax(), 0, img)
  p = v["params"]
  assert not p["head"]["kernel"].any() and not p["head"]["bias"].any()
  _std_ok(np.asarray(p["MlpBlock_0"]["Dense_0"]["bias"]), 1e-6, rel=0.4)  # 256 samples
  q = np.asarray(p["MultiHeadDotProductAttention_0"]["query"]["kernel"])
  _std_ok(q, math.sqrt(2 / 128))  # xavier over (64 in, 64 out)
  _std_ok(np.asarray(p["embedding"]["kernel"]), math.sqrt(1 / 48), rel=0.1)  # lecun
  _std_ok(np.asarray(p["pos_embedding"]), 1 / 8)  # N(0, 1/width)
  assert not np.asarray(p["cls"]).any()
  assert not jaxinit.rules.plan(v, schemes.vit_jax(), img, module=ViT()).kept


class ResBlock(nnx.Module):
  def __init__(self, c, rngs):
    self.fixup_bias = nnx.Param(jnp.ones(()))
    self.conv1 = nnx.Conv(c, c, (3, 3), use_bias=False, rngs=rngs)
    self.conv2 = nnx.Conv(c, c, (3, 3), use_bias=False, rngs=rngs)
    self.fixup_scale = nnx.Param(jnp.zeros(()))


class ResNet(nnx.Module):
  def __init__(self, blocks=16, c=32, rngs=None):
    self.blocks = nnx.List([ResBlock(c, rngs) for _ in range(blocks)])
    self.head = nnx.Linear(c, 10, rngs=rngs)


def test_fixup_and_skipinit():
  rules = schemes.fixup(16, 2, branch="*/conv1/kernel", last="*/conv2/kernel")
  model = jaxinit.reinit(ResNet(rngs=nnx.Rngs(0)), rules, 0, strict=True)
  p = _flat(model)
  # L^(-1/(2m-2)) = 16^(-1/2) on He's std sqrt(2 / 288).
  first = np.concatenate([p[f"blocks/{i}/conv1/kernel"].ravel() for i in range(16)])
  _std_ok(first, math.sqrt(2 / 288) / 4)
  assert not any(p[f"blocks/{i}/conv2/kernel"].any() for i in range(16))
  assert not p["head/kernel"].any() and not p["head/bias"].any()
  assert all(p[f"blocks/{i}/fixup_bias"] == 0 and p[f"blocks/{i}/fixup_scale"] == 1
             for i in range(16))
  skip = jaxinit.reinit(ResNet(rngs=nnx.Rngs(0)), schemes.skipinit("*fixup_scale"), 0)
  assert all(_flat(skip)[f"blocks/{i}/fixup_scale"] == 0 for i in range(16))


def test_tfixup_factors():
  n = 4
  model = jaxinit.initialize(nnx.eval_shape(lambda: GPT(depth=n, rngs=nnx.Rngs(0))),
                             schemes.tfixup(n), 0)
  p = _flat(model)
  factor = (9 * n) ** -0.25
  _std_ok(p["tok/embedding"], 64 ** -0.5 * factor)  # N(0, d^-1) times (9N)^-1/4
  value = np.concatenate([p[f"blocks/{i}/attn/value/kernel"].ravel() for i in range(n)])
  _std_ok(value, math.sqrt(2 / 128) * factor)  # xavier (uniform) times the factor
  query = np.concatenate([p[f"blocks/{i}/attn/query/kernel"].ravel() for i in range(n)])
  _std_ok(query, math.sqrt(2 / 128))
  enc = schemes.tfixup(n, kind="encoder")
  assert enc.rules[-1] == schemes.tfixup(n).rules[-1]
  value_rule = next(r for r in enc.rules if r.pattern == jaxinit.Glob("*value/kernel"))
  np.testing.assert_allclose(math.sqrt(value_rule.init.scale), 0.67 * n**-0.25, rtol=1e-12)


@pytest.mark.parametrize("n, m, expect", [
    (6, 0, ((12) ** 0.25, 48 ** -0.25, None, None)),
    (0, 12, (None, None, 24 ** 0.25, 96 ** -0.25)),
    # Encoder-decoder, 18L-18L: alpha_e = 0.81 (N^4 M)^(1/16), beta_e = 0.87 (N^4 M)^(-1/16).
    (18, 18, (0.81 * 18 ** (5 / 16), 0.87 * 18 ** (-5 / 16), 54 ** 0.25, 216 ** -0.25)),
])
def test_deepnorm_constants(n, m, expect):
  got = schemes.deepnorm_constants(n, m)
  for g, e in zip(got, expect):
    assert math.isnan(g) if e is None else math.isclose(g, e, rel_tol=1e-12)


def test_deepnorm_beta_on_value_out_and_mlp_only():
  beta = schemes.deepnorm_constants(decoder_layers=4).decoder_beta
  model = jaxinit.initialize(nnx.eval_shape(lambda: GPT(rngs=nnx.Rngs(0))),
                             schemes.deepnorm(beta) + schemes.small_embedding(), 0)
  p = _flat(model)
  value = np.concatenate([p[f"blocks/{i}/attn/value/kernel"].ravel() for i in range(4)])
  key = np.concatenate([p[f"blocks/{i}/attn/key/kernel"].ravel() for i in range(4)])
  _std_ok(value, math.sqrt(2 / 128) * beta)
  _std_ok(key, math.sqrt(2 / 128))
  emb = p["tok/embedding"]
  assert np.abs(emb).max() <= 1e-4 and emb.max() > 0.99e-4 and emb.min() < -0.99e-4  # symmetric


def test_zero_head_composes_before_another_scheme():
  rules = schemes.zero_head() + schemes.pytorch()
  model = jaxinit.reinit(ResNet(blocks=1, rngs=nnx.Rngs(0)), rules, 0)
  assert not _flat(model)["head/kernel"].any()
  assert jaxinit.get(rules.to_config()) == rules


class _LM(nnx.Module):
  def __init__(self, rngs):
    self.tok = nnx.Embed(50, 16, rngs=rngs)
    self.lm_head = nnx.Linear(16, 50, rngs=rngs)


def test_a_scheme_whose_essential_part_is_missing_names_the_nearest_paths():
  model = _LM(nnx.Rngs(0))
  with pytest.warns(jaxinit.rules.UnusedRuleWarning,
                    match=r"zero_head: head \(rule 0 Glob\('head/\*'\) or rule 1 "
                          r"Glob\('\*/head/\*'\)\) \[nearest paths: 'lm_head/\w+', 'lm_head/\w+'\]"):
    jaxinit.reinit(model, schemes.zero_head(), 0)
  with pytest.raises(ValueError, match="strict=True.*zero_head: head.*lm_head/kernel"):
    jaxinit.reinit(model, schemes.zero_head(), 0, strict=True)
  zeroed = jaxinit.reinit(model, schemes.zero_head("lm_head/*"), 0, strict=True)
  assert not _flat(zeroed)["lm_head/kernel"].any()
  # Every scheme: what it is about must be found; a pytree has no layer pytorch() knows.
  params = {"w": jnp.ones((3, 3))}
  for scheme, group in ((schemes.pytorch(), "pytorch"), (schemes.gpt2(2), "gpt2: residual"),
                        (schemes.fixup(2, 2, branch="b*", last="l*"), "fixup: head"),
                        (schemes.skipinit(), "skipinit"), (schemes.tfixup(2), "tfixup: value"),
                        (schemes.deepnorm(0.5), "deepnorm: value"), (schemes.vit_jax(), "vit_jax"),
                        (schemes.small_embedding(), "small_embedding")):
    with pytest.raises(ValueError, match=f"strict=True.*{group}"):
      jaxinit.initialize(params, scheme, 0, strict=True)


def test_optional_scheme_rules_are_not_reported_and_shadowed_ones_are():
  # pytorch(): rules for the other frameworks' layers and for norms this model lacks are
  # optional: no report.
  assert not jaxinit.rules.plan(_LM(nnx.Rngs(0)), schemes.pytorch()).unmatched
  # A scheme's head after zero_head's: fixup's head group serves nothing (zero_head took the
  # head); its branches still serve theirs. Reported as shadowed, naming the earlier rule.
  model = nnx.eval_shape(lambda: ResNet(blocks=1, rngs=nnx.Rngs(0)))
  rules = schemes.zero_head() + schemes.fixup(1, 2, branch="*/conv1/kernel", last="*/conv2/kernel")
  (u,) = jaxinit.rules.plan(model, rules).unmatched
  assert u.group == "fixup: head" and u.shadowed_by == (0,), u


def test_a_rule_shadowed_by_an_earlier_one_is_reported_and_strict_raises():
  """``scheme + zero_head(...)`` in that order: the scheme's Linear rule serves the head first,
  so zero_head would do nothing (found by a user: a non-zero head under strict=True)."""
  model = nnx.eval_shape(lambda: _LM(nnx.Rngs(0)))
  with pytest.raises(ValueError, match=r"strict=True.*zero_head: head.*is shadowed.*lm_head/kernel"
                                       r".*put it first"):
    jaxinit.initialize(model, schemes.pytorch() + schemes.zero_head("lm_head/*"), 0, strict=True)
  plain = [(nnx.Linear, jaxinit.he_normal()), ("lm_head/kernel", jaxinit.zeros)]
  with pytest.warns(jaxinit.rules.UnusedRuleWarning, match=r"rule 1 Glob\('lm_head/kernel'\) is "
                                                         r"shadowed.*rule 0"):
    jaxinit.rules.initialize(nnx.eval_shape(lambda: _LM(nnx.Rngs(0))), plain + [
        ("*", jaxinit.zeros)], 0)
  # First, it serves: no report, and the head is zero.
  zeroed = jaxinit.initialize(nnx.eval_shape(lambda: _LM(nnx.Rngs(0))),
                              schemes.zero_head("lm_head/*") + schemes.pytorch(), 0, strict=True)
  assert not _flat(zeroed)["lm_head/kernel"].any()


def test_gpt2_finds_gpt2s_own_names():
  """``c_proj`` (both residual projections) and ``wpe`` get GPT-2's scales by default (found by a
  user: only the attention's ``out`` was scaled, silently). Tolerances: 4 standard errors of
  a sample std (relative 1/sqrt(2n))."""
  class Block(nnx.Module):
    def __init__(self, rngs):
      self.attn = nnx.MultiHeadAttention(4, 16, rngs=rngs, decode=False)
      self.c_fc, self.c_proj = nnx.Linear(16, 64, rngs=rngs), nnx.Linear(64, 16, rngs=rngs)

  class GPT(nnx.Module):
    def __init__(self, rngs):
      self.wte, self.wpe = nnx.Embed(50, 16, rngs=rngs), nnx.Embed(8, 16, rngs=rngs)
      self.h = nnx.List([Block(rngs) for _ in range(2)])

  model = jaxinit.initialize(nnx.eval_shape(lambda: GPT(nnx.Rngs(0))), schemes.gpt2(2), 0,
                             strict=True)
  for w, std in ((model.h[0].c_proj.kernel, 0.01), (model.h[1].attn.out.kernel, 0.01),
                 (model.wpe.embedding, 0.01), (model.h[0].c_fc.kernel, 0.02)):
    w = np.asarray(w[...])
    np.testing.assert_allclose(w.std(), std, rtol=4 / np.sqrt(2 * w.size))
