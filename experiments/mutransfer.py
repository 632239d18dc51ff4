"""muTransfer: the best learning rate of a small model is the best of a wide (or deep) one.

Claim (Yang et al. 2022, "Tensor Programs V: Tuning Large Neural Networks via
Zero-Shot Hyperparameter Transfer", arXiv 2203.03466, Fig. 1 and sec. 5): in
the standard parametrization (SP) the learning rate that minimizes the
training loss moves as the width grows (for Adam, down, roughly like
``1 / width``), while under muP it stays put, so it can be tuned on a small
proxy. Depth-muP (Yang et al. 2023, "Tensor Programs VI"; Bordelon et al.
2023) does the same for the depth of residual networks, with branches
scaled by ``L^-1/2`` (``alpha = 1/2``; CompleteP, Dey et al. 2025, ``alpha =
1``).

Method: three model families, each trained with Adam over a log2 grid of
learning rates and several seeds, every (seed, learning rate) of one model
size in one jitted ``vmap`` over the population:

* MLPs on MNIST-1D (two hidden ReLU layers), widths 64 -> 1024 (base 64);
* a pre-LN transformer on a synthetic sequence task (reverse a sequence of
  random tokens; learned token and position embeddings, 4 heads), widths
  32 -> 128/256 (base 32), muP with ``1/d`` attention;
* a pre-LN residual MLP on MNIST-1D at width 64, depths 4 -> 32 (base 4):
  SP (branch multiplier 1, no learning-rate scaling) vs depth-muP
  (``alpha = 1/2``) and CompleteP (``alpha = 1``).

The parametrizations come from :mod:`jaxinit.parametrizations` (init rules
from the base model's rules, per-parameter Adam factors, epsilon scaling);
the base model's init is Flax's default (LeCun normal, zero biases). Measured:
the final training loss (on the whole training set) against the learning
rate, one curve per size (the muTransfer figure), and the shift of the best
learning rate between the smallest and the largest size, in steps of the
log2 grid.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxinit import parametrizations as P
from jaxinit.sweep import load_dataset
from jaxinit_experiments.study import (Report, Study, pick, pyplot, save_figure, verdict_of,
                                       write_csv)

TITLE = "muTransfer: learning rates that transfer across width and depth (muP, depth-muP)"


# ---------------------------------------------------------------------------
# Models (Flax NNX; plain modules, nothing parametrization-specific but the
# forward multipliers the parametrization asks for).

class MLP(nnx.Module):
  """``in -> width -> width -> out``, ReLU."""

  def __init__(self, width: int, in_features: int, out_features: int, rngs: nnx.Rngs):
    self.input = nnx.Linear(in_features, width, rngs=rngs)
    self.hidden = nnx.Linear(width, width, rngs=rngs)
    self.readout = nnx.Linear(width, out_features, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    h = nnx.relu(self.input(x))
    return self.readout(nnx.relu(self.hidden(h)))


class Block(nnx.Module):
  """Pre-LN residual MLP block: ``x + a * W2 relu(W1 LN(x))``."""

  def __init__(self, width: int, rngs: nnx.Rngs):
    self.norm = nnx.LayerNorm(width, rngs=rngs)
    self.fc1 = nnx.Linear(width, width, rngs=rngs)
    self.fc2 = nnx.Linear(width, width, rngs=rngs)

  def __call__(self, x: jax.Array, branch: float) -> jax.Array:
    return x + branch * self.fc2(nnx.relu(self.fc1(self.norm(x))))


class ResMLP(nnx.Module):
  """``in -> width``, ``depth`` pre-LN residual blocks (stacked, run by ``nnx.scan``), LN,
  readout; every branch is multiplied by ``branch`` (state, not a parameter: models that
  differ only in it share one compiled program)."""

  def __init__(self, width: int, depth: int, in_features: int, out_features: int,
               branch: float, rngs: nnx.Rngs):
    self.input = nnx.Linear(in_features, width, rngs=rngs)

    @nnx.split_rngs(splits=depth)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def blocks(r: nnx.Rngs) -> Block:
      return Block(width, r)

    self.blocks = blocks(rngs)
    self.norm = nnx.LayerNorm(width, rngs=rngs)
    self.readout = nnx.Linear(width, out_features, rngs=rngs)
    self.branch = nnx.Variable(jnp.asarray(branch, jnp.float32))

  def __call__(self, x: jax.Array) -> jax.Array:
    branch = self.branch[...]

    @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
    def run(h: jax.Array, block: Block) -> jax.Array:
      return block(h, branch)

    return self.readout(self.norm(run(self.input(x), self.blocks)))


class Attention(nnx.Module):
  """Multi-head self-attention from Flax's ``LinearGeneral`` layers, logits ``scale * q.k``.

  ``scale`` is state (not a parameter): SP's ``1/sqrt(d)`` and muP's ``sqrt(d_base)/d``
  models share one compiled program (:func:`jaxinit.parametrizations.scaled_attention`
  does the same for ``nnx.MultiHeadAttention``, as a static function).
  """

  def __init__(self, width: int, heads: int, scale: float, rngs: nnx.Rngs):
    self.heads = heads
    self.qkv = nnx.LinearGeneral(width, (3, heads, width // heads), rngs=rngs)
    self.out = nnx.LinearGeneral((heads, width // heads), width, axis=(-2, -1), rngs=rngs)
    self.scale = nnx.Variable(jnp.asarray(scale, jnp.float32))

  def __call__(self, x: jax.Array) -> jax.Array:
    q, k, v = jnp.moveaxis(self.qkv(x), -3, 0)
    logits = jnp.einsum("...qhd,...khd->...hqk", q, k) * self.scale[...]
    return self.out(jnp.einsum("...hqk,...khd->...qhd", jax.nn.softmax(logits), v))


class TransformerBlock(nnx.Module):
  """Pre-LN: ``x + attn(LN(x))``, ``x + MLP(LN(x))`` (MLP ``d -> 2d -> d``, GELU)."""

  def __init__(self, width: int, heads: int, scale: float, rngs: nnx.Rngs):
    self.norm1 = nnx.LayerNorm(width, rngs=rngs)
    self.attn = Attention(width, heads, scale, rngs)
    self.norm2 = nnx.LayerNorm(width, rngs=rngs)
    self.fc1 = nnx.Linear(width, 2 * width, rngs=rngs)
    self.fc2 = nnx.Linear(2 * width, width, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = x + self.attn(self.norm1(x))
    return x + self.fc2(nnx.gelu(self.fc1(self.norm2(x))))


class Transformer(nnx.Module):
  """Token and position embeddings, pre-LN blocks, LN, readout to the vocabulary."""

  def __init__(self, width: int, vocab: int, length: int, layers: int, heads: int,
               attention_scale: float, rngs: nnx.Rngs):
    self.embed = nnx.Embed(vocab, width, rngs=rngs)
    self.position = nnx.Embed(length, width, rngs=rngs)
    self.blocks = nnx.List([TransformerBlock(width, heads, attention_scale, rngs)
                            for _ in range(layers)])
    self.norm = nnx.LayerNorm(width, rngs=rngs)
    self.readout = nnx.Linear(width, vocab, rngs=rngs)

  def __call__(self, tokens: jax.Array) -> jax.Array:
    h = self.embed(tokens) + self.position(jnp.arange(tokens.shape[-1]))
    for block in self.blocks:
      h = block(h)
    return self.readout(self.norm(h))


# ---------------------------------------------------------------------------
# Training a population: every (seed, learning rate) of one model size at once.

def _cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def train_population(models: list[Any], scalings: list[P.Scaling],
                     learning_rates: np.ndarray, seeds: int, x: np.ndarray, y: np.ndarray,
                     steps: int, batch: int, eval_size: int = 2048,
                     eval_chunk: int = 256) -> np.ndarray:
  """Final training loss ``[model, seed, learning rate]`` of Adam runs.

  ``models`` share one graph (the same shapes; they may differ in non-parameter state
  such as a branch multiplier), each with its parametrization's ``scaling``. The seeds
  draw the initial parameters (``scaling.rules``) and the minibatches; every model and
  learning rate of a seed sees the same minibatches. One jitted program trains the whole
  population: ``vmap`` over models (their factor trees, :meth:`Scaling.trees`, are
  arguments) of ``vmap`` over seeds of ``vmap`` over learning rates of a ``lax.scan`` over
  steps. The final loss is over the first ``eval_size`` training examples (in chunks of
  ``eval_chunk``, to bound the memory of the whole population); a diverged run gives inf.
  """
  graphdef = nnx.split(models[0], nnx.Param, ...)[0]
  keys = jax.random.split(jax.random.key(0), seeds)
  stack = lambda *a: jnp.stack([jnp.asarray(v, jnp.float32) for v in a])  # noqa: E731
  drawers = [jax.vmap(P.param_drawer(m, sc.rules)) for m, sc in zip(models, scalings)]
  rest = jax.tree.map(stack, *[nnx.split(m, nnx.Param, ...)[2] for m in models])
  factors = jax.tree.map(stack, *[sc.trees(("lr_adam", "eps", "weight_decay"))
                                  for sc in scalings])
  rng = np.random.default_rng(0)
  idx = jnp.asarray(rng.integers(0, len(x), (seeds, steps, batch)), jnp.int32)

  def loss(p, r, xb, yb):
    return _cross_entropy(nnx.merge(graphdef, p, r)(xb), yb)

  def train(p, r, f, lr, batches, x, y):
    tx = P.optimizer("adam", lr, f)

    def step(carry, i):
      p, state = carry
      grads = jax.grad(loss)(p, r, x[i], y[i])
      updates, state = tx.update(grads, state, p)
      return (optax.apply_updates(p, updates), state), None

    (p, _), _ = jax.lax.scan(step, (p, tx.init(p)), batches)
    n = min(eval_size, len(x)) // eval_chunk * eval_chunk or len(x)
    chunk = min(eval_chunk, n)
    xs = x[:n].reshape((n // chunk, chunk) + x.shape[1:])
    ys = y[:n].reshape((n // chunk, chunk) + y.shape[1:])
    # (p, r) ride in the carry: nnx.scan (ResMLP) refuses parameters closed over from an
    # outer trace level.
    _, losses = jax.lax.scan(lambda pr, c: (pr, loss(*pr, *c)), (p, r), (xs, ys))
    final = jnp.mean(losses)
    return jnp.where(jnp.isfinite(final), final, jnp.inf)

  over_lr = jax.vmap(train, (None, None, None, 0, None, None, None))
  over_seeds = jax.vmap(over_lr, (0, None, None, None, 0, None, None))
  over_models = jax.vmap(over_seeds, (0, 0, 0, None, None, None, None))

  @jax.jit
  def run(keys, *args):
    params = jax.tree.map(stack, *[draw(keys) for draw in drawers])
    return over_models(params, *args)

  return np.asarray(run(keys, rest, factors, jnp.asarray(learning_rates, jnp.float32), idx,
                        jnp.asarray(x), jnp.asarray(y)))


# ---------------------------------------------------------------------------
# The study.

FAMILIES = ("mlp", "transformer", "resmlp")
LABELS = {"sp": "SP", "mup": "muP", "mup+depth(alpha=0.5)": "depth-muP (alpha=1/2)",
          "mup+depth(alpha=1)": "CompleteP (alpha=1)", "sp+depth": "SP"}
VOCAB, LENGTH, HEADS = 16, 12, 4


def _settings(scale: str) -> dict[str, Any]:
  return {
      "dataset": pick(scale, "digits", "mnist1d", "mnist1d"),
      "seeds": pick(scale, 1, 3, 5),
      "mlp_widths": pick(scale, (16, 64), (64, 128, 256, 512, 1024),
                         (64, 128, 256, 512, 1024, 2048, 4096)),
      "mlp_lr": pick(scale, (-8, -4), (-12, -4), (-15, -2)),
      "mlp_steps": pick(scale, 10, 250, 2000),
      "tr_widths": pick(scale, (16, 32), (32, 64, 128), (32, 64, 128, 256, 512)),
      "tr_lr": pick(scale, (-8, -4), (-11, -4), (-14, -2)),
      "tr_steps": pick(scale, 10, 250, 2000),
      "tr_layers": pick(scale, 1, 2, 2),
      "res_width": pick(scale, 16, 64, 128),
      "res_depths": pick(scale, (2, 4), (4, 8, 16, 32), (4, 8, 16, 32, 64)),
      "res_lr": pick(scale, (-8, -4), (-13, -5), (-15, -3)),
      "res_steps": pick(scale, 10, 250, 2000),
      "batch": pick(scale, 16, 32, 128),
      "tr_batch": pick(scale, 8, 16, 64),
  }


def _grid(bounds: tuple[int, int]) -> np.ndarray:
  return np.arange(bounds[0], bounds[1] + 1)


def _sequences(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """The synthetic task: reverse a sequence of ``LENGTH`` random tokens."""
  x = np.random.default_rng(seed).integers(0, VOCAB, (n, LENGTH)).astype(np.int32)
  return x, x[:, ::-1].copy()


def _family(family: str, s: dict[str, Any], data: Any, p: P.Parametrization):
  """``(sizes, base size, make(size) -> abstract model, x, y, log2 grid, steps, batch)``."""
  if family == "mlp":
    def make(w):
      return nnx.eval_shape(lambda: MLP(w, data.in_features, data.num_outputs, nnx.Rngs(0)))
    return (s["mlp_widths"], s["mlp_widths"][0], make, data.x_train, data.y_train,
            _grid(s["mlp_lr"]), s["mlp_steps"], s["batch"])
  if family == "transformer":
    base = s["tr_widths"][0]

    def make(w):
      model = nnx.eval_shape(lambda: Transformer(w, VOCAB, LENGTH, s["tr_layers"], HEADS, 1.0,
                                                 nnx.Rngs(0)))
      for block in model.blocks:
        block.attn.scale.set_value(jnp.asarray(p.attention_scale(w // HEADS, base // HEADS),
                                               jnp.float32))
      return model
    x, y = _sequences(4096, 0)
    return (s["tr_widths"], base, make, x, y, _grid(s["tr_lr"]), s["tr_steps"], s["tr_batch"])
  base = s["res_depths"][0]

  def make(depth):
    model = nnx.eval_shape(lambda: ResMLP(s["res_width"], depth, data.in_features,
                                          data.num_outputs, 1.0, nnx.Rngs(0)))
    model.branch.set_value(jnp.asarray(p.branch_multiplier(depth, base), jnp.float32))
    return model
  return (s["res_depths"], base, make, data.x_train, data.y_train, _grid(s["res_lr"]),
          s["res_steps"], s["batch"])


PARAMETRIZATIONS = {"mlp": (P.sp(), P.mup()), "transformer": (P.sp(), P.mup()),
                    "resmlp": (P.Parametrization("sp", None), P.depth_mup(0.5), P.completep())}


def _label(p: P.Parametrization) -> str:
  return LABELS.get(p.name, p.name)


def _means(rows: list[dict[str, Any]], family: str, name: str, size: int) -> dict[int, float]:
  """``{log2 lr: final loss}`` of one model size, the mean over seeds, in grid order."""
  cells: dict[int, list[float]] = {}
  for r in rows:
    if r["family"] == family and r["parametrization"] == name and r["size"] == size:
      cells.setdefault(r["log2_lr"], []).append(r["final_loss"])
  return {k: float(np.mean(cells[k])) for k in sorted(cells)}


def _best(rows: list[dict[str, Any]], family: str, name: str, size: int) -> tuple[int, float]:
  """The log2 learning rate of the lowest mean final loss over seeds, and that loss."""
  means = _means(rows, family, name, size)
  best = min(means, key=lambda k: (means[k], k))
  return best, means[best]


def family_rows(family: str, scale: str, out: Path) -> list[dict[str, Any]]:
  """Trains one family at every size, parametrization, learning rate and seed.

  The rows are saved to ``out/runs_<family>.json`` with the settings they were trained
  with; a later call with the same settings reads them back, so an interrupted study
  resumes at the family it was at (and families may be trained by separate processes).
  """
  s = _settings(scale)
  path = Path(out) / f"runs_{family}.json"
  key = {"family": family, "scale": scale, "settings": repr(sorted(s.items()))}
  if path.exists():
    saved = json.loads(path.read_text())
    if saved.get("key") == key:
      return saved["rows"]
  data = load_dataset(s["dataset"])
  group = PARAMETRIZATIONS[family]  # models differ in state only: one program
  sizes, base_size, _, x, y, grid, steps, batch = _family(family, s, data, group[0])
  bases = [_family(family, s, data, p)[2](base_size) for p in group]
  rows = []
  for size in sizes:
    models = [_family(family, s, data, p)[2](size) for p in group]
    scalings = [p.scale(m, base=b) for p, m, b in zip(group, models, bases)]
    final = train_population(models, scalings, 2.0 ** grid, s["seeds"], x, y, steps, batch)
    for k, p in enumerate(group):
      for seed in range(s["seeds"]):
        for j, g in enumerate(grid):
          rows.append({"family": family, "parametrization": _label(p), "size": size,
                       "seed": seed, "log2_lr": int(g), "steps": steps,
                       "final_loss": float(final[k, seed, j])})
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps({"key": key, "rows": rows}))
  return rows


def run(scale: str, out: Path) -> Report:
  """Trains every family at every size, parametrization, learning rate and seed."""
  s = _settings(scale)
  data = load_dataset(s["dataset"])
  rows = [r for family in FAMILIES for r in family_rows(family, scale, out)]
  best_rows = []
  for family in FAMILIES:
    sizes = _family(family, s, data, P.sp())[0]
    for name in dict.fromkeys(r["parametrization"] for r in rows if r["family"] == family):
      for size in sizes:
        g, loss = _best(rows, family, name, size)
        best_rows.append({"family": family, "parametrization": name, "size": size,
                          "best_log2_lr": g, "best_loss": loss})
  files = [write_csv(out / "runs.csv", rows), write_csv(out / "best.csv", best_rows)]
  figures = [
      (save_figure(_figure(rows, best_rows, "mlp"), out / "mlp_width.png"),
       f"MLPs on {s['dataset']}: final training loss against the Adam learning rate, one "
       f"curve per width (mean over {s['seeds']} seeds; the star marks each curve's minimum). "
       "Left SP, right muP (the muTransfer figure)."),
      (save_figure(_figure(rows, best_rows, "transformer"), out / "transformer_width.png"),
       "Pre-LN transformers on sequence reversal: final training loss against the Adam "
       "learning rate, one curve per width. Left SP, right muP."),
      (save_figure(_figure(rows, best_rows, "resmlp"), out / "resmlp_depth.png"),
       f"Pre-LN residual MLPs (width {s['res_width']}) on {s['dataset']}: final training loss "
       "against the Adam learning rate, one curve per depth. SP, depth-muP, CompleteP."),
  ]
  report = Report(title=TITLE, scale=scale, claim=(
      "Under muP the learning rate that minimizes the training loss of a small model is the "
      "best of a wide one (Yang et al. 2022, Tensor Programs V, Fig. 1), while under SP it "
      "moves; depth-muP (branches x L^-1/2; Yang et al. 2023; Bordelon et al. 2023) and "
      "CompleteP (x L^-1; Dey et al. 2025) do the same across the depth of residual "
      "networks."), setup=_setup(s))
  checks = _compare(report, best_rows, s)
  edges = _edges(rows, "transformer")
  for name, cells in edges.items():
    report.compare(f"transformer, {name}: largest log2 learning rate whose mean loss is below "
                   f"1 (the edge of stability)", "",
                   ", ".join(f"{size}: 2^{g}" for size, g in cells))
  report.verdict = verdict_of(checks)
  report.discussion = _discussion(best_rows, s, scale, checks) + _transformer_note(
      best_rows, edges)
  report.figures = figures
  report.data = files
  return report


def _setup(s: dict[str, Any]) -> str:
  return (
      f"Adam (b1 0.9, b2 0.999, eps 1e-8, scaled per parameter under muP), learning rates "
      f"2^k on a log2 grid, {s['seeds']} seeds (init and minibatches; every learning rate of a "
      "seed sees the same ones), each model size's population trained by one jitted vmap. "
      "Base models: the smallest size, Flax's default init (LeCun normal weights, zero "
      f"biases) via jaxinit rules. MLP: {s['dataset']}, 40 -> w -> w -> 10 ReLU, widths "
      f"{list(s['mlp_widths'])}, k in {list(s['mlp_lr'])}, {s['mlp_steps']} steps of batch "
      f"{s['batch']}. Transformer: reverse {LENGTH} tokens of a {VOCAB}-token vocabulary "
      f"(4096 training sequences), {s['tr_layers']} pre-LN blocks, {HEADS} heads, MLP ratio 2, "
      f"widths {list(s['tr_widths'])}, muP attention scale sqrt(d_base)/d, k in "
      f"{list(s['tr_lr'])}, {s['tr_steps']} steps of batch {s['tr_batch']}. ResMLP: width "
      f"{s['res_width']}, depths {list(s['res_depths'])} (base {s['res_depths'][0]}), blocks "
      "x + a W2 relu(W1 LN(x)); SP a = 1; depth-muP a = (L_base/L)^1/2 and Adam learning "
      "rate x (L/L_base)^-1/2 in the blocks; CompleteP a = L_base/L; k in "
      f"{list(s['res_lr'])}, {s['res_steps']} steps. Loss: cross-entropy on the first 2048 "
      "training examples after training; a diverged run counts as inf. Best learning rate: "
      "the grid point of the lowest mean loss over seeds; its shift is counted in grid "
      "steps (factors of 2) between the smallest and the largest size. Criteria: (1) MLP, "
      "muP: |shift| <= 1 over the widths; (2) MLP, SP: |shift| >= 2; (3) ResMLP, "
      "depth-muP: |shift| <= 1 over the depths; (4) transformer, muP: |shift| <= 1.")


def _shift(best_rows, family: str, name: str) -> tuple[int, list[tuple[int, int]]]:
  cells = [(r["size"], r["best_log2_lr"]) for r in best_rows
           if r["family"] == family and r["parametrization"] == name]
  cells.sort()
  return cells[-1][1] - cells[0][1], cells


def _compare(report: Report, best_rows, s) -> list[bool]:
  checks = []
  lines = [("mlp", "muP", "<= 1", lambda d: abs(d) <= 1),
           ("mlp", "SP", ">= 2", lambda d: abs(d) >= 2),
           ("resmlp", "depth-muP (alpha=1/2)", "<= 1", lambda d: abs(d) <= 1),
           ("transformer", "muP", "<= 1", lambda d: abs(d) <= 1)]
  for family, name, want, ok in lines:
    shift, cells = _shift(best_rows, family, name)
    held = bool(ok(shift))
    checks.append(held)
    span = cells[-1][0] // cells[0][0]
    report.compare(f"{family}, {name}: shift of the best log2 learning rate over "
                   f"{span}x {'depth' if family == 'resmlp' else 'width'}",
                   f"{want} grid steps", f"{shift:+d} ("
                   + ", ".join(f"{size}: 2^{g}" for size, g in cells) + ")", held)
  for family, name in (("transformer", "SP"), ("resmlp", "SP"),
                       ("resmlp", "CompleteP (alpha=1)")):
    shift, cells = _shift(best_rows, family, name)
    report.compare(f"{family}, {name}: shift of the best log2 learning rate", "",
                   f"{shift:+d} (" + ", ".join(f"{size}: 2^{g}" for size, g in cells) + ")")
  for family in FAMILIES:
    for name in dict.fromkeys(r["parametrization"] for r in best_rows if r["family"] == family):
      losses = [(r["size"], r["best_loss"]) for r in best_rows
                if r["family"] == family and r["parametrization"] == name]
      report.compare(f"{family}, {name}: best loss by size", "wider/deeper is better (muP)",
                     ", ".join(f"{size}: {loss:.3f}" for size, loss in losses))
  return checks


def _edges(rows, family: str) -> dict[str, list[tuple[int, int]]]:
  """Per parametrization, ``(size, largest log2 lr whose mean loss over seeds is < 1)``."""
  out: dict[str, list[tuple[int, int]]] = {}
  for name in dict.fromkeys(r["parametrization"] for r in rows if r["family"] == family):
    for size in sorted({r["size"] for r in rows if r["family"] == family}):
      stable = [g for g, m in _means(rows, family, name, size).items() if m < 1.0]
      if stable:
        out.setdefault(name, []).append((size, max(stable)))
  return out


def _transformer_note(best_rows, edges) -> str:
  losses = [r["best_loss"] for r in best_rows if r["family"] == "transformer"]
  if not losses or max(losses) >= 0.01:
    return ""
  text = (f" The transformer's task saturates: its best loss is {max(losses):.4f} or less at "
          "every width, so its minimum sits among losses that differ by 1e-3 and the best "
          "learning rate is not identified (criterion 4 says nothing either way); the edge of "
          "stability is the informative number")
  if "SP" in edges and "muP" in edges:
    sp, mup = edges["SP"], edges["muP"]
    text += (f": under SP it moves {sp[-1][1] - sp[0][1]:+d} grid steps over the widths, "
             f"under muP {mup[-1][1] - mup[0][1]:+d}")
  return text + "."


def _discussion(best_rows, s, scale, checks) -> str:
  mup, _ = _shift(best_rows, "mlp", "muP")
  sp, _ = _shift(best_rows, "mlp", "SP")
  text = (f"Across {s['mlp_widths'][-1] // s['mlp_widths'][0]}x width the MLP's best Adam "
          f"learning rate moved {sp:+d} grid steps under SP and {mup:+d} under muP. Under SP "
          "every hidden weight's Adam update changes its layer's output by about lr x width, "
          "so the stable learning rate falls as the width grows; muP divides the hidden and "
          "readout learning rates by the width ratio (and initializes the readout at "
          "variance 1/width^2), so the update's effect on every layer is the same at every "
          "width.")
  if not all(checks):
    text += " Not every criterion held at this scale; the table gives the numbers."
  if scale == "tiny":
    text += " At the tiny scale (a few steps, two sizes) the numbers say nothing."
  elif scale == "quick":
    text += (f" The quick run trains {s['mlp_steps']} steps with {s['seeds']} seeds on 2 CPU "
             "cores; `--full` trains longer, wider and deeper, with more seeds.")
  return text


def _figure(rows, best_rows, family: str):
  plt = pyplot()
  names = list(dict.fromkeys(r["parametrization"] for r in rows if r["family"] == family))
  fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), sharey=True,
                           squeeze=False)
  sizes = sorted({r["size"] for r in rows if r["family"] == family})
  cmap = plt.get_cmap("viridis")
  finite = [r["final_loss"] for r in rows if r["family"] == family
            and math.isfinite(r["final_loss"])]
  top = min(max(finite), 2.0 * float(np.median(finite))) if finite else 1.0
  for ax, name in zip(axes[0], names):
    for i, size in enumerate(sizes):
      curve = _means(rows, family, name, size)
      grid, means = list(curve), list(curve.values())
      color = cmap(i / max(len(sizes) - 1, 1))
      ax.plot(grid, [m if math.isfinite(m) else np.nan for m in means], marker=".",
              color=color, label=f"{'depth' if family == 'resmlp' else 'width'} {size}")
      best = next(r for r in best_rows if r["family"] == family and r["parametrization"] == name
                  and r["size"] == size)
      ax.plot([best["best_log2_lr"]], [best["best_loss"]], marker="*", ms=11, color=color,
              markeredgecolor="black")
    ax.set_title(name, fontsize=10)
    ax.set_xlabel("log2 learning rate")
    ax.set_ylim(top=top)
  axes[0][0].set_ylabel("training loss")
  axes[0][-1].legend(fontsize=7)
  fig.tight_layout()
  return fig


STUDY = Study(name="mutransfer", title=TITLE, run=run)
