"""Deep transformers: Post-LN without warmup vs Pre-LN vs DeepNorm vs T-Fixup.

Claim (Wang et al. 2022, "DeepNet: Scaling Transformers to 1,000 Layers";
Huang et al. 2020, "Improving Transformer Optimization Through Better
Initialization" (T-Fixup); Xiong et al. 2020, "On Layer Normalization in the
Transformer Architecture"): a Post-LN transformer trained without
learning-rate warmup diverges or stalls as it gets deep, while DeepNorm
(Post-LN with the shortcut up-weighted by ``alpha = (2N)^(1/4)`` and the
value, output and MLP weights down-scaled by ``beta = (8N)^(-1/4)``) and
T-Fixup (no LayerNorm at all; Xavier weights and embeddings scaled by
``(9N)^(-1/4)`` or ``0.67 N^(-1/4)``) train stably at hundreds of layers
(DeepNet: 1,000). Pre-LN trains without warmup too (Xiong et al.). At init,
deep stacks of attention tend to *rank collapse*: every token's
representation turns towards the same direction (Noci et al. 2022, "Signal
Propagation in Transformers: Theoretical Perspectives and the Role of Rank
Collapse").

Method: :class:`jaxinit.models.Transformer` (a bidirectional encoder,
learned token and position embeddings, GELU MLPs of width ``4 d``, a linear
head per position) on a synthetic task: map a random sequence of tokens to
its reverse. The four variants differ only in ``norm``, ``shortcut_scale``
and ``embedding_scale`` and in their rule set, drawn by the model level
(:mod:`jaxinit.rules.schemes`): Post-LN and Pre-LN ``deepnorm(beta=1)``
(Xavier normal everywhere: DeepNet's Post-LN baseline) with ``N(0, 1)``
embeddings; DeepNorm ``deepnorm(beta)`` and ``alpha`` from
``deepnorm_constants(encoder_layers=N)``; T-Fixup ``tfixup(N,
kind="encoder")`` without LayerNorms, its ``N(0, 1/d)``-based embeddings
multiplied by ``sqrt(d)`` in the forward pass as in its fairseq code. Every
model trains with Adam at one fixed learning rate and **no warmup**, several
seeds as one vmapped program per variant and depth
(:func:`jaxinit_experiments.study.train_population`).
Measured: the training loss after the fixed budget, the step of the first
non-finite loss (divergence), and at init the mean token-token correlation
of every layer's output (:func:`jaxinit.probes.token_correlation`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import jaxinit
from jaxinit import probes
from jaxinit.models import Transformer
from jaxinit.rules import RuleSet, schemes
from jaxinit_experiments.study import (Report, Study, pick, pyplot, save_figure,
                                       train_population, verdict_of, write_csv)

TITLE = "Deep transformers: Post-LN without warmup vs Pre-LN vs DeepNorm vs T-Fixup"

ARMS = ("post_ln", "pre_ln", "deepnorm", "tfixup")
LABELS = {"post_ln": "Post-LN (no warmup)", "pre_ln": "Pre-LN", "deepnorm": "DeepNorm",
          "tfixup": "T-Fixup (no LN)"}
COLORS = {"post_ln": "tab:red", "pre_ln": "tab:orange", "deepnorm": "tab:blue",
          "tfixup": "tab:green"}
LEARNING_RATE = 5e-4    # DeepNet's and T-Fixup's machine-translation rate; no warmup
STALL = 0.9             # "stalled": final training loss >= STALL * ln(vocab) (chance)


def _settings(scale: str) -> dict[str, Any]:
  return {
      "depths": pick(scale, (2,), (12, 48, 192), (12, 48, 192, 1000)),
      "width": pick(scale, 8, 32, 64),
      "heads": pick(scale, 2, 4, 4),
      "vocab": pick(scale, 5, 8, 16),
      "length": pick(scale, 4, 6, 16),
      "batch": pick(scale, 8, 32, 32),
      "steps": pick(scale, 4, 200, 2000),
      "eval_every": pick(scale, 2, 50, 100),
      "seeds": pick(scale, 1, 2, 3),
      "n_train": pick(scale, 256, 8192, 65536),
      "n_test": pick(scale, 64, 128, 2048),
      "probe_batch": pick(scale, 8, 32, 64),
  }


def reverse_task(vocab: int, length: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """``n`` uniform random token sequences and their reverses (the targets), int32."""
  x = np.random.default_rng(seed).integers(0, vocab, (n, length), dtype=np.int32)
  return x, np.ascontiguousarray(x[:, ::-1])


def _variant(arm: str, depth: int, s: dict[str, Any]) -> tuple[Transformer, RuleSet]:
  """The abstract model (shapes only) and the rule set that draws all its parameters."""
  embeddings = RuleSet.of([(nnx.Embed, jaxinit.normal(1.0))])
  norm, alpha, scale = "post", 1.0, 1.0
  if arm == "post_ln":
    rules = schemes.deepnorm(1.0) + embeddings
  elif arm == "pre_ln":
    norm, rules = "pre", schemes.deepnorm(1.0) + embeddings
  elif arm == "deepnorm":
    constants = schemes.deepnorm_constants(encoder_layers=depth)
    alpha = constants.encoder_alpha
    rules = schemes.deepnorm(constants.encoder_beta) + embeddings
  else:
    # T-Fixup's N(0, 1/d) embeddings are multiplied by sqrt(d) in its (fairseq) forward pass.
    norm, rules = "none", schemes.tfixup(depth, kind="encoder")
    scale = math.sqrt(s["width"])
  model = nnx.eval_shape(lambda: Transformer(
      s["vocab"], s["width"], depth, s["heads"], max_length=s["length"], norm=norm,
      shortcut_scale=alpha, embedding_scale=scale, rngs=nnx.Rngs(0)))
  return model, rules


def population(model: nnx.Module, rules: Any, seeds: Any) -> tuple[Any, Any]:
  """Every seed's parameters, drawn as ``jaxinit.initialize(model, rules, seed)`` would.

  One jitted, vmapped :meth:`jaxinit.rules.Plan.draw` (pure in the key, one
  random-number kernel per distinct initializer and shape) instead of one
  :func:`jaxinit.initialize` per seed.

  Returns:
    ``(graphdef, params)``: the params (``nnx.Param`` state) stacked on a leading seed axis.

  Raises:
    ValueError: a parameter no rule serves.
  """
  plan = jaxinit.rules.plan(model, rules)
  if plan.kept:
    raise ValueError(f"no rule serves {list(plan.kept)}")

  def draw(seed):
    key = jax.random.key(seed)
    return plan.draw(key)

  values = jax.jit(jax.vmap(draw))(jnp.asarray(seeds))
  graphdef, state = nnx.split(model, nnx.Param)
  pure = jax.tree_util.tree_map_with_path(
      lambda path, _: values["/".join(str(k.key) for k in path)], nnx.to_pure_dict(state))
  nnx.replace_by_pure_dict(state, pure)
  return graphdef, state


def run(scale: str, out: Path) -> Report:
  """Trains every variant at every depth; probes rank collapse at init; writes the report."""
  s = _settings(scale)
  train = reverse_task(s["vocab"], s["length"], s["n_train"], seed=0)
  test = reverse_task(s["vocab"], s["length"], s["n_test"], seed=1)
  chance = math.log(s["vocab"])
  seeds = np.arange(s["seeds"])
  rows, curve_rows, corr_rows = [], [], []
  results: dict[tuple[str, int], dict[str, Any]] = {}
  for depth in s["depths"]:
    for arm in ARMS:
      model, rules = _variant(arm, depth, s)
      graphdef, params = population(model, rules, seeds)

      def apply(p, x, graphdef=graphdef, **kwargs):
        return nnx.merge(graphdef, p)(x, **kwargs)

      corr = _init_correlation(apply, params, jnp.asarray(test[0][:s["probe_batch"]]))
      corr_rows += [{"depth": depth, "arm": arm, "layer": layer, "token_correlation": float(c)}
                    for layer, c in enumerate(corr)]
      result = train_population(apply, params, train,
                                evaluate={"train": (train[0][:s["n_test"]],
                                                    train[1][:s["n_test"]]), "test": test},
                                optimizer=optax.adam, learning_rate=LEARNING_RATE,
                                steps=s["steps"], batch_size=s["batch"],
                                eval_every=s["eval_every"], seed=depth)
      final = result.loss["train"][:, -1]
      diverged = result.diverged_step >= 0
      results[(arm, depth)] = {"loss": np.where(diverged, np.nan, final),
                               "diverged": result.diverged_step, "curve": result.loss["train"],
                               "accuracy": result.accuracy["test"][:, -1],
                               "correlation": corr}
      for m, seed in enumerate(seeds):
        rows.append({"depth": depth, "arm": arm, "seed": int(seed),
                     "diverged_step": int(result.diverged_step[m]),
                     "initial_train_loss": float(result.loss["train"][m, 0]),
                     "final_train_loss": float(final[m]),
                     "final_test_accuracy": float(result.accuracy["test"][m, -1]),
                     "stalled": bool(final[m] >= STALL * chance),
                     "init_token_correlation_last": float(corr[-1])})
        curve_rows += [{"depth": depth, "arm": arm, "seed": int(seed), "step": int(t),
                        "train_loss": float(result.loss["train"][m, e]),
                        "test_accuracy": float(result.accuracy["test"][m, e])}
                       for e, t in enumerate(result.eval_step)]
  steps = np.arange(0, s["steps"] + 1, s["eval_every"])
  data = [write_csv(out / "runs.csv", rows), write_csv(out / "curves.csv", curve_rows),
          write_csv(out / "init_token_correlation.csv", corr_rows)]
  figures = [
      (save_figure(_loss_figure(s, steps, results, chance), out / "loss_curves.png"),
       "Training loss (on held-fixed training examples; thin: seeds, thick: their mean) of "
       f"each variant at each depth; Adam at {LEARNING_RATE:g} without warmup. Dashed: "
       f"chance (ln {s['vocab']}); a curve that stops has diverged (non-finite loss)."),
      (save_figure(_correlation_figure(s, corr_rows), out / "init_token_correlation.png"),
       "Rank-collapse probe at init: mean correlation (cosine) between the tokens of a "
       "sequence after each block (layer 0: the embeddings), mean over "
       f"{s['probe_batch']} sequences and the seeds; 1 is complete rank collapse."),
  ]
  report = Report(title=TITLE, scale=scale, claim=(
      "Without learning-rate warmup a deep Post-LN transformer diverges or stalls, while "
      "DeepNorm (Wang et al. 2022, \"DeepNet: Scaling Transformers to 1,000 Layers\") and "
      "T-Fixup (Huang et al. 2020, no LayerNorm) train stably at hundreds of layers; Pre-LN "
      "trains without warmup (Xiong et al. 2020). Deep attention stacks drift towards rank "
      "collapse at init (Noci et al. 2022)."), setup=(
      f"jaxinit.models.Transformer encoders (width {s['width']}, {s['heads']} heads, MLP "
      f"width {4 * s['width']}, GELU, learned token and position embeddings) of depths "
      f"{', '.join(map(str, s['depths']))} on reversing random sequences of {s['length']} "
      f"tokens over {s['vocab']} symbols ({s['n_train']} training sequences; per-token "
      "cross-entropy). Post-LN and Pre-LN: Xavier-normal weights (schemes.deepnorm(1)), "
      "N(0, 1) embeddings; DeepNorm: Post-LN with shortcut alpha = (2N)^(1/4) and "
      "schemes.deepnorm(beta = (8N)^(-1/4)); T-Fixup: no LayerNorm, "
      "schemes.tfixup(N, kind='encoder'), embeddings times sqrt(d) in the forward pass (as "
      "fairseq, T-Fixup's code base, does). Every parameter is drawn by these rule sets "
      "through the model level. Adam at a fixed learning rate "
      f"{LEARNING_RATE:g}, no warmup, batch {s['batch']}, {s['steps']} steps, "
      f"{s['seeds']} seed(s) per variant and depth, each variant-depth one vmapped program. "
      "'Diverged': a non-finite loss or update; 'stalled': the final training loss (on "
      f"{s['n_test']} training sequences) is still >= {STALL} ln {s['vocab']} "
      f"(chance = {chance:.3f}). Rank-collapse probe: probes.token_correlation of each "
      "block's output at init. Criteria, at the deepest depth "
      f"({s['depths'][-1]}): (1) no DeepNorm or T-Fixup seed diverges or stalls; (2) every "
      "Post-LN seed diverges or stalls."))
  checks = _compare(report, s, results, chance)
  report.verdict = verdict_of(checks)
  report.discussion = _discussion(s, results, checks, chance, scale)
  report.figures = figures
  report.data = data
  return report


def _init_correlation(apply: Any, params: Any, tokens: jax.Array) -> np.ndarray:
  """Token correlation of the embeddings and every block's output, mean over seeds."""
  def one(p):
    _, inter = apply(p, tokens, capture=True)
    stack = jnp.concatenate([inter["embedding"][None], inter["preactivations"]])
    return probes.token_correlation(stack)
  return np.asarray(jax.jit(jax.vmap(one))(params)).mean(axis=0)


def _failed(result: dict[str, Any], chance: float) -> np.ndarray:
  """Per seed: diverged, or stalled at >= STALL * chance."""
  return (result["diverged"] >= 0) | ~(result["loss"] < STALL * chance)


def _loss_text(result: dict[str, Any]) -> str:
  parts = []
  for loss, step in zip(result["loss"], result["diverged"]):
    parts.append(f"NaN at step {step}" if step >= 0 else f"{loss:.3f}")
  return ", ".join(parts)


def _compare(report: Report, s: dict[str, Any], results: dict[tuple[str, int], dict[str, Any]],
             chance: float) -> list[bool]:
  for depth in s["depths"]:
    report.compare(f"depth {depth}: final training loss per seed (chance {chance:.3f})",
                   "Post-LN diverges when deep; the others train",
                   "; ".join(f"{LABELS[a]} {_loss_text(results[(a, depth)])}" for a in ARMS))
  deep = s["depths"][-1]
  stable = all(not _failed(results[(a, deep)], chance).any() for a in ("deepnorm", "tfixup"))
  report.compare(f"depth {deep}: DeepNorm and T-Fixup seeds that diverged or stalled",
                 "none (DeepNet: 1,000 layers train)",
                 ", ".join(f"{LABELS[a]} {int(_failed(results[(a, deep)], chance).sum())} of "
                           f"{s['seeds']}" for a in ("deepnorm", "tfixup")), stable)
  post = _failed(results[("post_ln", deep)], chance)
  report.compare(f"depth {deep}: Post-LN (no warmup) seeds that diverged or stalled",
                 "all (diverges without warmup)", f"{int(post.sum())} of {s['seeds']}",
                 bool(post.all()))
  report.compare(f"depth {deep}: Pre-LN seeds that diverged or stalled", "none (Xiong et al.)",
                 f"{int(_failed(results[('pre_ln', deep)], chance).sum())} of {s['seeds']}")
  report.compare(f"init: token correlation after the last block (depths "
                 f"{', '.join(map(str, s['depths']))})", "rank collapse: -> 1 with depth",
                 "; ".join(f"{LABELS[a]} " + ", ".join(
                     f"{results[(a, d)]['correlation'][-1]:.2f}" for d in s["depths"])
                     for a in ARMS))
  return [stable, bool(post.all())]


def _discussion(s: dict[str, Any], results: dict[tuple[str, int], dict[str, Any]],
                checks: list[bool], chance: float, scale: str) -> str:
  deep = s["depths"][-1]
  mean = {a: float(np.nanmean(results[(a, deep)]["loss"]))
          if np.isfinite(results[(a, deep)]["loss"]).any() else math.nan for a in ARMS}
  text = (f"At depth {deep}, after {s['steps']} steps the mean final training losses are "
          + ", ".join(f"{LABELS[a]} {mean[a]:.3f}" for a in ARMS)
          + f" (chance {chance:.3f}; NaN: every seed diverged). ")
  text += ("DeepNorm and T-Fixup trained at the deepest depth without divergence or stall"
           if checks[0] else "DeepNorm or T-Fixup diverged or stalled at the deepest depth")
  text += ("; every Post-LN seed diverged or stalled without warmup." if checks[1] else
           "; Post-LN without warmup did not fail on every seed at this depth and budget.")
  text += (
      " Rank collapse at init: the probe reads the cosine between the tokens of a sequence "
      "block by block; attention at init averages nearly uniformly over positions, which "
      "pulls the tokens together, and only the shortcut (and, in Post-LN, nothing else) "
      "keeps them apart, so variants with a weaker shortcut-to-branch ratio per block "
      "collapse faster with depth. How this differs from the papers: DeepNet and T-Fixup "
      "trained machine-translation models (width 512-1024, 8-16 heads, Adam with their "
      "learning rates, and DeepNet with warmup for all but the Post-LN ablation) on real "
      "corpora; here the models are narrow, the task is synthetic, and the budget is a few "
      "hundred steps, so 'stall' and 'diverge' are judged within that budget.")
  if scale == "tiny":
    text += (" At the tiny scale (depth 2, width 8, 4 steps) the numbers say "
             "nothing; the run only checks the code path.")
  elif scale == "quick":
    text += (f" The quick run trains width {s['width']} for {s['steps']} steps; `--full` "
             "runs depths 12, 48, 192 and 1,000 (DeepNet's claim) at width 64 for 2000 "
             "steps with 3 seeds, a GPU run.")
  return text


def _loss_figure(s: dict[str, Any], steps: np.ndarray,
                 results: dict[tuple[str, int], dict[str, Any]], chance: float) -> Any:
  plt = pyplot()
  depths = s["depths"]
  fig, axes = plt.subplots(1, len(depths), figsize=(4.2 * len(depths), 3.5), sharey=True)
  for ax, depth in zip(np.atleast_1d(axes), depths):
    for arm in ARMS:
      curve = results[(arm, depth)]["curve"]
      for c in curve:
        ax.plot(steps, c, color=COLORS[arm], lw=0.6, alpha=0.4)
      ax.plot(steps, np.mean(curve, axis=0), color=COLORS[arm], lw=2, label=LABELS[arm])
    ax.axhline(chance, color="gray", ls="--", lw=1)
    ax.set_title(f"{depth} blocks", fontsize=10)
    ax.set_xlabel("step")
    ax.set_ylim(0, 1.5 * chance)
  np.atleast_1d(axes)[0].set_ylabel("training loss")
  np.atleast_1d(axes)[0].legend(fontsize=8)
  fig.tight_layout()
  return fig


def _correlation_figure(s: dict[str, Any], corr_rows: list[dict[str, Any]]) -> Any:
  plt = pyplot()
  depths = s["depths"]
  fig, axes = plt.subplots(1, len(depths), figsize=(4.2 * len(depths), 3.5), sharey=True)
  for ax, depth in zip(np.atleast_1d(axes), depths):
    for arm in ARMS:
      rows = [r for r in corr_rows if r["depth"] == depth and r["arm"] == arm]
      ax.plot([r["layer"] for r in rows], [r["token_correlation"] for r in rows],
              color=COLORS[arm], lw=1.5, label=LABELS[arm])
    ax.set_title(f"{depth} blocks", fontsize=10)
    ax.set_xlabel("block")
    ax.set_ylim(-0.05, 1.05)
  np.atleast_1d(axes)[0].set_ylabel("mean token-token correlation")
  np.atleast_1d(axes)[0].legend(fontsize=8)
  fig.tight_layout()
  return fig


STUDY = Study(name="transformer_depth", title=TITLE, run=run)
