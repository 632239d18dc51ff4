"""The transformer of jaxinit.models (defined once, NNX) and the rank-collapse probe."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxinit
from jaxinit import probes
from jaxinit.models import Transformer
from jaxinit.rules import schemes

VOCAB, WIDTH, HEADS, LENGTH = 11, 16, 2, 6


def _model(depth=2, **kwargs):
  return Transformer(VOCAB, WIDTH, depth, HEADS, max_length=LENGTH, rngs=nnx.Rngs(0), **kwargs)


def _tokens(batch=3, seed=0):
  return jax.random.randint(jax.random.key(seed), (batch, LENGTH), 0, VOCAB)


def _block(model, index):
  """Block ``index`` of the stack as a module of its own."""
  graphdef, state = nnx.split(model.blocks)
  return nnx.merge(graphdef, jax.tree.map(lambda v: v[index], state))


@pytest.mark.parametrize("norm", ["pre", "post", "none"])
def test_forward_is_the_stated_residual_update(norm):
  """x <- a x + b G(LN(x)) (pre), LN(a x + b G(x)) (post), a x + b G(x) (none), then the head."""
  a, b, e = 1.3, 0.7, 2.5
  model = _model(depth=2, norm=norm, shortcut_scale=a, branch_scale=b, embedding_scale=e)
  tokens = _tokens()
  x = e * (model.tok(tokens) + model.pos(jnp.arange(LENGTH)))
  for i in range(2):
    blk = _block(model, i)
    gelu = jaxinit.gains.resolve_activation("gelu")          # the erf GELU
    for ln, fn in ((blk.ln1, blk.attn), (blk.ln2, lambda h: blk.mlp(h, gelu))):
      if norm == "pre":
        x = a * x + b * fn(ln(x))
      elif norm == "post":
        x = ln(a * x + b * fn(x))
      else:
        x = a * x + b * fn(x)
  if norm == "pre":
    x = model.ln_f(x)
  np.testing.assert_allclose(model(tokens), model.head(x), rtol=1e-5, atol=1e-5)


def test_layer_norms_exist_only_where_the_variant_puts_them():
  names = {norm: {"/".join(map(str, p)) for p, _ in nnx.to_flat_state(
      nnx.state(_model(norm=norm), nnx.Param))} for norm in ("pre", "post", "none")}
  assert "ln_f/scale" in names["pre"] and "ln_f/scale" not in names["post"]
  assert "blocks/ln1/scale" in names["post"] and not any("ln" in n for n in names["none"])
  assert "ln_embed/scale" in {"/".join(map(str, p)) for p, _ in nnx.to_flat_state(
      nnx.state(_model(embedding_norm=True), nnx.Param))}


def test_program_size_does_not_grow_with_depth():
  """Blocks are stacked (nnx.vmap) and scanned (nnx.scan): one block's ops whatever the depth."""
  def ops(depth):
    graphdef, state = nnx.split(_model(depth=depth))
    jaxpr = jax.make_jaxpr(lambda s, t: nnx.merge(graphdef, s)(t))(state, _tokens())
    return len(jaxpr.jaxpr.eqns)
  assert ops(2) == ops(12)
  assert _model(depth=12).blocks.attn.query.kernel.shape == (12, WIDTH, HEADS, WIDTH // HEADS)


def test_capture_returns_the_stream_and_perturbations_enter_it():
  model = _model(depth=3)
  tokens = _tokens()
  logits, inter = model(tokens, capture=True)
  assert inter["embedding"].shape == (3, LENGTH, WIDTH)
  assert inter["preactivations"].shape == (3, 3, LENGTH, WIDTH)
  np.testing.assert_allclose(logits, model(tokens), rtol=1e-6)
  # A zero perturbation changes nothing; the gradient through it is the stream's gradient.
  eps = jnp.zeros_like(inter["preactivations"])
  np.testing.assert_allclose(model(tokens, perturbations=eps), logits, rtol=1e-6)
  graphdef, state = nnx.split(model)
  # (with respect to the params too: NNX's scan refuses module state from an outer trace)
  grad = jax.grad(lambda e, s: jnp.sum(nnx.merge(graphdef, s)(tokens, perturbations=e) ** 2),
                  argnums=(0, 1))(eps, state)[0]
  assert grad.shape == eps.shape and bool(jnp.all(jnp.any(grad != 0, axis=(1, 2, 3))))
  # The last block's output feeds the head alone (post-LN: no final norm).
  post = _model(depth=3, norm="post")
  _, inter = post(tokens, capture=True)
  np.testing.assert_allclose(post.head(inter["preactivations"][-1]), post(tokens), rtol=1e-5,
                             atol=1e-6)


def test_causal_model_does_not_look_ahead():
  tokens = _tokens(batch=1)
  changed = tokens.at[0, -1].set((tokens[0, -1] + 1) % VOCAB)
  causal, full = _model(causal=True), _model()
  np.testing.assert_allclose(causal(tokens)[0, :-1], causal(changed)[0, :-1], rtol=1e-6,
                             atol=1e-6)
  assert not np.allclose(full(tokens)[0, :-1], full(changed)[0, :-1])


def test_bad_arguments_are_named():
  with pytest.raises(ValueError, match="did you mean 'post'"):
    _model(norm="psot")
  with pytest.raises(ValueError, match=r"width \(16\) must be a multiple of heads \(3\)"):
    Transformer(VOCAB, WIDTH, 2, 3, max_length=LENGTH, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="depth"):
    _model(depth=0)
  with pytest.raises(ValueError, match="max_length 6"):
    _model()(jnp.zeros((1, LENGTH + 1), jnp.int32))
  with pytest.raises(ValueError, match="activation"):
    _model(activation="relu6x")


def test_models_export_the_transformer_and_jaxinit_alone_needs_no_flax():
  import subprocess
  import sys
  out = subprocess.run([sys.executable, "-c",
                        "import sys, jaxinit; before = 'flax' in sys.modules; "
                        "from jaxinit.models import Transformer; print(before, Transformer.__name__)"],
                       capture_output=True, text=True, check=True)
  assert out.stdout.split() == ["False", "Transformer"]


# ---------------------------------------------------------------------------
# The published schemes reach the right parameters (their default globs).

DEPTH = 8
D = 64


def _abstract(norm="post"):
  return nnx.eval_shape(lambda: Transformer(VOCAB, D, DEPTH, 4, max_length=LENGTH, norm=norm,
                                            rngs=nnx.Rngs(0)))


def _served(model, rules):
  """``{path: the pattern of the rule serving it}`` (``None``: kept)."""
  plan = jaxinit.rules.plan(model, rules)
  served = {a.path: rules.rules[a.rule].pattern for a in plan.assignments}
  served.update({path: None for path in plan.kept})
  return served


def _glob(pattern):
  return getattr(pattern, "glob", None)


def test_gpt2_scales_the_residual_projections_and_the_position_embedding():
  rules = schemes.gpt2(DEPTH)
  served = _served(_abstract("pre"), rules)
  assert _glob(served["blocks/attn/out/kernel"]) == "*attn/out/kernel"
  assert _glob(served["blocks/mlp/proj/kernel"]) == "*mlp/proj/kernel"
  assert _glob(served["pos/embedding"]) == "*pos*"
  assert None not in served.values()
  model = jaxinit.initialize(_abstract("pre"), rules, 0, strict=True)
  out = np.asarray(model.blocks.attn.out.kernel[...])
  np.testing.assert_allclose(out.std(), 0.02 / math.sqrt(2 * DEPTH), rtol=0.05)
  np.testing.assert_allclose(np.asarray(model.blocks.mlp.fc.kernel[...]).std(), 0.02, rtol=0.05)
  np.testing.assert_allclose(np.asarray(model.pos.embedding[...]).std(), 0.01, rtol=0.1)


def _var(param):
  return float(np.var(np.asarray(param[...])))


def test_deepnorm_scales_value_output_and_mlp_by_beta_only():
  beta = schemes.deepnorm_constants(encoder_layers=DEPTH).encoder_beta
  rules = schemes.deepnorm(beta) + jaxinit.RuleSet.of([(nnx.Embed, jaxinit.normal(1.0))])
  served = _served(_abstract(), rules)
  assert {path: _glob(served[path]) for path in (
      "blocks/attn/value/kernel", "blocks/attn/out/kernel", "blocks/mlp/fc/kernel",
      "blocks/mlp/proj/kernel", "blocks/attn/query/kernel")} == {
          "blocks/attn/value/kernel": "*value/kernel",
          "blocks/attn/out/kernel": "*attn/out/kernel",
          "blocks/mlp/fc/kernel": "*mlp/*kernel", "blocks/mlp/proj/kernel": "*mlp/*kernel",
          "blocks/attn/query/kernel": None}     # a module rule: Xavier with gain 1
  model = jaxinit.initialize(_abstract(), rules, 1, strict=True)
  xavier = 2 / (D + D)            # q, k, v, out: fan_in = fan_out = d
  # Relative standard error of a variance from n normal samples: sqrt(2 / n); 5 of them.
  for path, var in (("query", xavier), ("key", xavier), ("value", beta**2 * xavier),
                    ("out", beta**2 * xavier)):
    param = getattr(model.blocks.attn, path).kernel
    np.testing.assert_allclose(_var(param), var, rtol=5 * math.sqrt(2 / param[...].size))
  fc = model.blocks.mlp.fc.kernel
  np.testing.assert_allclose(_var(fc), beta**2 * 2 / (D + 4 * D),
                             rtol=5 * math.sqrt(2 / fc[...].size))
  assert float(np.abs(np.asarray(model.blocks.ln1.scale[...]) - 1).max()) == 0


def test_tfixup_scales_embeddings_value_output_and_mlp():
  rules = schemes.tfixup(DEPTH, kind="encoder")
  model = jaxinit.initialize(_abstract("none"), rules, 2, strict=True)
  assert None not in _served(_abstract("none"), rules).values()
  layer = 0.67 * DEPTH ** -0.25
  embed = (9 * DEPTH) ** -0.25
  for param, var in ((model.tok.embedding, embed**2 / D), (model.pos.embedding, embed**2 / D),
                     (model.blocks.attn.value.kernel, layer**2 * 2 / (2 * D)),
                     (model.blocks.mlp.proj.kernel, layer**2 * 2 / (5 * D)),
                     (model.blocks.attn.query.kernel, 2 / (2 * D))):
    np.testing.assert_allclose(_var(param), var, rtol=5 * math.sqrt(2 / param[...].size))


def test_small_embedding_and_zero_head_reach_their_parameters():
  model = jaxinit.reinit(_model(embedding_norm=True),
                         schemes.small_embedding() + schemes.zero_head(), 0, strict=True)
  assert float(jnp.abs(model.tok.embedding[...]).max()) <= 1e-4
  assert float(jnp.abs(model.pos.embedding[...]).max()) <= 1e-4
  assert not np.asarray(model.head.kernel[...]).any() and not np.asarray(
      model.head.bias[...]).any()
  np.testing.assert_allclose(model(_tokens()), 0.0)


# ---------------------------------------------------------------------------
# Rank collapse


def test_token_correlation_is_the_mean_off_diagonal_cosine():
  h = np.array(jax.random.normal(jax.random.key(0), (3, 4, 5, 7)))   # 3 layers, 4 sequences
  h[1, 2, 3] = 0.0                                                     # a zero token
  unit = h / np.maximum(np.linalg.norm(h, axis=-1, keepdims=True), 1e-30)
  cos = np.einsum("lbid,lbjd->lbij", unit, unit)
  off = ~np.eye(5, dtype=bool)
  expected = np.stack([cos[l][:, off].mean() for l in range(3)])
  np.testing.assert_allclose(probes.token_correlation(jnp.asarray(h)), expected, rtol=1e-5,
                             atol=1e-6)
  scaled = h * np.arange(1, 6)[None, None, :, None]                    # per-token scale
  np.testing.assert_allclose(probes.token_correlation(jnp.asarray(scaled)), expected,
                             rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="at least 2 tokens"):
    probes.token_correlation(jnp.ones((2, 1, 4)))


def test_uniform_attention_without_a_shortcut_collapses_every_token():
  """Zero queries and keys attend uniformly: with no shortcut every token becomes the same."""
  model = _model(depth=2, norm="none", shortcut_scale=0.0)
  rules = [("*attn/query/*", jaxinit.zeros), ("*attn/key/*", jaxinit.zeros)]
  model = jaxinit.reinit(model, rules, 0, strict=True)
  _, inter = model(_tokens(batch=4), capture=True)
  stack = jnp.concatenate([inter["embedding"][None], inter["preactivations"]])
  corr = probes.token_correlation(stack)
  assert float(corr[0]) < 0.5
  np.testing.assert_allclose(corr[1:], 1.0, atol=1e-5)


def test_readme_transformer_example_runs():
  """The README's transformer snippet as written: DeepNorm by the model level, then the probe."""
  import pathlib
  readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
  snippet = next(block.split("```")[0] for block in readme.split("```python\n")[1:]
                 if "Transformer(" in block)
  scope: dict = {}
  exec(snippet, scope)  # noqa: S102 - our own README
  model, c = scope["model"], scope["c"]
  assert scope["logits"].shape == (8, 32, 16) and scope["collapse"].shape == (12,)
  assert model.shortcut_scale == c.encoder_alpha == 24 ** 0.25
  value = np.asarray(model.blocks.attn.value.kernel[...])
  np.testing.assert_allclose(value.var(), c.encoder_beta**2 * 2 / 128,
                             rtol=5 * math.sqrt(2 / value.size))
