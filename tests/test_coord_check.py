"""The coordinate check: flat under muP, growing under SP (MLP, transformer), and its rule."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from flax import nnx

import jaxinit
from jaxinit import parametrizations as P


class MLP(nnx.Module):
  def __init__(self, width, rngs):
    self.input = nnx.Linear(40, width, rngs=rngs)
    self.hidden1 = nnx.Linear(width, width, rngs=rngs)
    self.hidden2 = nnx.Linear(width, width, rngs=rngs)
    self.readout = nnx.Linear(width, 10, rngs=rngs)

  def __call__(self, x):
    h = nnx.relu(self.input(x))
    h = nnx.relu(self.hidden1(h))
    return self.readout(nnx.relu(self.hidden2(h)))


class Transformer(nnx.Module):
  """Token + position embeddings, one pre-LN block with Flax's MultiHeadAttention (4 heads,
  logits scaled by the parametrization), LayerNorm, readout."""

  def __init__(self, width, base, p, rngs, vocab=16, length=8):
    scale = p.attention_scale(width // 4, base // 4)
    self.embed = nnx.Embed(vocab, width, rngs=rngs)
    self.position = nnx.Embed(length, width, rngs=rngs)
    self.norm1 = nnx.LayerNorm(width, rngs=rngs)
    self.attn = nnx.MultiHeadAttention(4, width, attention_fn=P.scaled_attention(scale),
                                       decode=False, rngs=rngs)
    self.norm2 = nnx.LayerNorm(width, rngs=rngs)
    self.fc1 = nnx.Linear(width, width, rngs=rngs)
    self.fc2 = nnx.Linear(width, width, rngs=rngs)
    self.norm = nnx.LayerNorm(width, rngs=rngs)
    self.readout = nnx.Linear(width, vocab, rngs=rngs)

  def __call__(self, tokens):
    h = self.embed(tokens) + self.position(jnp.arange(tokens.shape[-1]))
    h = h + self.attn(self.norm1(h), deterministic=True)
    h = h + self.fc2(nnx.relu(self.fc1(self.norm2(h))))
    return self.readout(self.norm(h))


def _mlp_batch():
  x = jax.random.normal(jax.random.key(1), (64, 40))
  return x, jax.random.randint(jax.random.key(2), (64,), 0, 10)


def _tokens():
  x = jax.random.randint(jax.random.key(3), (16, 8), 0, 16)
  return x, x[:, ::-1]


def _mlp_check(p, widths, steps, seeds, optimizer="adam", lr=1e-2):
  return jaxinit.coord_check(lambda w: nnx.eval_shape(lambda: MLP(w, nnx.Rngs(0))), widths,
                             base=widths[0], batch=_mlp_batch(), parametrization=p,
                             optimizer=optimizer, learning_rate=lr, steps=steps, seeds=seeds)


# TP5 (appendix D.2) and mup's Transformer example zero the query at init: with
# independent q and k, logits q.k / d shrink as d^-1/2 at init, so attention would drift
# from near one-hot (base) to uniform (wide) and its output's size with it.
QUERY_ZERO = [("*attn/query/kernel", jaxinit.zeros)] + P.default_rules()


def _transformer_check(p, widths, steps, seeds, lr=1e-2):
  p = P.get(p)
  return jaxinit.coord_check(
      lambda w: nnx.eval_shape(lambda: Transformer(w, widths[0], p, nnx.Rngs(0))), widths,
      base=widths[0], batch=_tokens(), parametrization=p, learning_rate=lr, steps=steps,
      seeds=seeds, rules=QUERY_ZERO)


def _judge(check, sp_check, max_mup=0.1, min_sp=0.25):
  assert check.passed, str(check)
  assert check.max_slope() < max_mup
  assert not sp_check.passed
  # under SP some layer's slope exceeds 0.25 by step 2 (the first step after an update)
  assert max(sp_check.max_slope(step=2, hidden=True), sp_check.max_slope(step=2, hidden=False)
             ) > min_sp, str(sp_check)


def test_coord_check_mlp_is_flat_under_mup_and_grows_under_sp():
  widths = (64, 512)
  _judge(_mlp_check("mup", widths, 2, 1), _mlp_check("sp", widths, 2, 1))


def test_coord_check_transformer_is_flat_under_mup_and_grows_under_sp():
  # One seed at widths (32, 256) (head_dim 8) measured attention slopes 0.14 (step 2), one
  # seed at (64, 512) 0.11 (step 1): sampling noise of a 16-sequence batch; 3 seeds average
  # it down (widths 64-2048, 3 seeds: 0.025 at step 1).
  widths = (64, 512)
  check = _transformer_check("mup", widths, 2, 3)
  assert {"attn", "attn/query", "fc1", "embed", "norm1"} <= set(check.layers(hidden=True))
  _judge(check, _transformer_check("sp", widths, 2, 3))


@pytest.mark.slow
@pytest.mark.parametrize("optimizer,lr", [("adam", 1e-2), ("sgd", 0.5)])
def test_coord_check_mlp_acceptance(optimizer, lr, capsys):
  """The issue's acceptance: widths 64-2048, steps 1-5, 3 seeds."""
  widths = (64, 128, 256, 512, 1024, 2048)
  mup = _mlp_check("mup", widths, 5, 3, optimizer, lr)
  sp = _mlp_check("sp", widths, 5, 3, optimizer, lr)
  with capsys.disabled():
    print(f"\n{optimizer}\n{mup}\n{sp}")
  _judge(mup, sp)


@pytest.mark.slow
def test_coord_check_transformer_acceptance(capsys):
  widths = (64, 128, 256, 512, 1024, 2048)
  mup = _transformer_check("mup", widths, 5, 3)
  sp = _transformer_check("sp", widths, 5, 3)
  with capsys.disabled():
    print(f"\n{mup}\n{sp}")
  _judge(mup, sp)


@pytest.fixture(scope="module")
def small_check():
  return _mlp_check("mup", (32, 128), 2, 1)


def test_coord_check_table_slopes_and_plot(small_check, tmp_path):
  check = small_check
  assert {r.layer for r in check.records} == {"input", "hidden1", "hidden2", "readout",
                                              "output"}
  assert check.layers(hidden=False) == ["output", "readout"]
  row = next(r for r in check.records if r.layer == "hidden1" and r.size == 128 and r.step == 1)
  assert 0 < row.mean_abs < row.rms  # mean |x| <= RMS for any x
  slope = check.slope("hidden1", 1)
  rows = {r.size: r.mean_abs for r in check.records if r.layer == "hidden1" and r.step == 1}
  assert slope == pytest.approx(np.log(rows[128] / rows[32]) / np.log(4))
  fig = check.plot(tmp_path / "coord.png")
  assert (tmp_path / "coord.png").stat().st_size > 0
  assert len(fig.axes) == 2


def test_coord_check_table_as_pandas(small_check):
  pytest.importorskip("pandas")
  frame = small_check.to_pandas()
  assert list(frame.columns) == list(jaxinit.parametrizations.CoordRecord._fields)
  assert len(frame) == len(small_check.records)


def test_coord_check_on_linen_and_bad_arguments():
  class Net(nn.Module):
    width: int

    @nn.compact
    def __call__(self, x):
      h = nn.relu(nn.Dense(self.width, name="inp")(x))
      return nn.Dense(10, name="head")(nn.relu(nn.Dense(self.width, name="hid")(h)))

  check = jaxinit.coord_check(Net, (32, 128), base=32, batch=_mlp_batch(), steps=2, seeds=1,
                              learning_rate=1e-2)
  assert set(check.layers(hidden=True)) == {"inp", "hid"}
  with pytest.raises(ValueError, match="at least two different sizes"):
    jaxinit.coord_check(Net, (32,), base=32, batch=_mlp_batch())
  with pytest.raises(ValueError, match="optimizer must be one of .*did you mean 'sgd'"):
    jaxinit.coord_check(Net, (32, 64), base=32, batch=_mlp_batch(), optimizer="sdg")


class ResMLP(nnx.Module):
  """Pre-LN residual blocks (unrolled), the stream read out without a final norm."""

  def __init__(self, depth, branch, rngs):
    self.input = nnx.Linear(40, 32, rngs=rngs)
    self.blocks = nnx.List([nnx.Dict(norm=nnx.LayerNorm(32, rngs=rngs),
                                     fc1=nnx.Linear(32, 32, rngs=rngs),
                                     fc2=nnx.Linear(32, 32, rngs=rngs)) for _ in range(depth)])
    self.readout = nnx.Linear(32, 10, rngs=rngs)
    self.branch = branch

  def __call__(self, x):
    h = self.input(x)
    for b in self.blocks:
      h = h + self.branch * b["fc2"](nnx.relu(b["fc1"](b["norm"](h))))
    return self.readout(h)


def test_coord_check_across_depth_passes_under_depth_mup_only():
  """Branches x L^-1/2 keep the stream's size at every depth; unscaled branches grow it."""
  checks = {}
  for p in (P.Parametrization("sp"), P.depth_mup(0.5)):
    checks[p.name] = jaxinit.coord_check(
        lambda L: nnx.eval_shape(lambda: ResMLP(L, p.branch_multiplier(L, 2),  # noqa: B023
                                                nnx.Rngs(0))),
        (2, 8), base=2, batch=_mlp_batch(), parametrization=p, dimension="depth", steps=2,
        seeds=1, learning_rate=1e-2)
  assert checks["mup+depth(alpha=0.5)"].passed, str(checks["mup+depth(alpha=0.5)"])
  assert not checks["sp"].passed
  assert checks["sp"].slope("readout", 1) > 0.25  # the stream's variance grows ~ L at init
  assert "blocks/5/fc1" not in checks["sp"].layers()  # only blocks every depth has
