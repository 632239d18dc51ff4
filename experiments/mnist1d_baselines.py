"""MNIST-1D baselines (Greydanus 2020): a sanity check of the training stack.

Claim (Greydanus 2020, "Scaling down deep learning", the MNIST-1D paper and
its notebook): on MNIST-1D (4000 training and 1000 test signals of length 40,
10 classes) logistic regression reaches about 32% test accuracy and an MLP
40-100-100-10 with ReLU about 68% (the notebook prints ~65%), both trained
with Adam at learning rate 1e-2, batch 100, about 6000 steps, from PyTorch's
default ``nn.Linear`` init.

If jaxinit's sweep engine trains what it claims to, it should land on those
numbers. PyTorch initializes each ``nn.Linear`` weight and bias from
``U(+-1 / sqrt(fan_in))``: the weights are the preset
:func:`jaxinit.torch_linear_default` (``variance_scaling(1/3, "fan_in",
"uniform")``), which a sweep grid takes by name. A grid's biases, though, are
``N(0, bias_variance)`` with one variance for every layer, while PyTorch's
bias variance ``1 / (3 fan_in)`` is 1/120 in the first layer and 1/300 in
the other two. The engine runs therefore use ``bias_variance = 1/300`` (the
right variance in two of three layers, 2.5x too small in the first; a normal
instead of a uniform) and, as a bracket, zero biases.

Method: the sweep engine trains the MLP (depth 2, width 100) with both bias
inits and a few seeds in one compiled program. A short independent training
loop (plain jax + optax, the same minibatch sampling: with replacement) trains
the exact PyTorch init, weights and biases from
:func:`jaxinit.torch_linear_default` and :func:`jaxinit.torch_linear_bias`,
for the MLP and for logistic regression (a single linear layer 40-10: the
sweep's MLP has at least one hidden layer, so depth 0 is this loop's job).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxinit
from jaxinit.sweep import load_dataset, run_sweep
from jaxinit_experiments.study import (Report, Study, pick, pyplot, save_figure, verdict_of,
                                       write_csv)

TITLE = "MNIST-1D baselines (Greydanus 2020): logistic regression and MLP"

# Greydanus 2020: test accuracy of logistic regression, of the MLP in the paper's
# table and in the notebook's run.
PAPER_LINEAR, PAPER_MLP, NOTEBOOK_MLP = 0.32, 0.68, 0.65
LEARNING_RATE, BATCH, DEPTH = 1e-2, 100, 2
TOLERANCE = 0.05  # a measured mean within this of the paper's number "reproduces" it
AGREEMENT = 0.03  # engine and reference loop agree when their means differ by less
TRAIN_EVAL = 1000  # train accuracy on the first examples, as the engine measures it


def _settings(scale: str) -> dict[str, Any]:
  return {
      "dataset": pick(scale, "digits", "mnist1d", "mnist1d"),
      "width": pick(scale, 8, 100, 100),
      "steps": pick(scale, 20, 6000, 6000),
      "eval_every": pick(scale, 10, 250, 250),
      "seeds": pick(scale, 1, 6, 20),
  }


def _bias_variances(width: int) -> dict[str, float]:
  """Label -> the sweep's bias_variance: PyTorch's variance of a layer of fan-in ``width``."""
  return {f"N(0, 1/{3 * width})": 1.0 / (3 * width), "zeros": 0.0}


def _engine(s: dict[str, Any]) -> dict[str, np.ndarray]:
  """The MLP through the sweep engine: label -> (seeds, evals) test and train accuracy."""
  variances = _bias_variances(s["width"])
  result = run_sweep({
      "name": "mnist1d_baselines", "seeds": s["seeds"], "eval_every": s["eval_every"],
      "probes": [],
      "grid": {"dataset": s["dataset"], "model": "mlp", "init": "torch_linear_default",
               "bias_variance": list(variances.values()), "activation": "relu",
               "depth": DEPTH, "width": s["width"], "optimizer": "adam",
               "learning_rate": LEARNING_RATE, "batch_size": BATCH,
               "steps": s["steps"]}}, progress=False)
  out: dict[str, Any] = {"eval_step": np.asarray(result.curves["eval_step"][0])}
  for label, variance in variances.items():
    picked = [i for i, m in enumerate(result.models) if m["bias_variance"] == variance]
    out[f"mlp, engine, bias {label}"] = {
        "test": np.asarray(result.curves["test_accuracy"][picked], np.float64),
        "train": np.asarray(result.curves["train_accuracy"][picked], np.float64)}
  return out


def _reference(dataset: Any, sizes: list[int], steps: int, eval_every: int,
               seeds: int) -> dict[str, np.ndarray]:
  """A plain training loop with PyTorch's exact init (one vmapped program over seeds).

  Args:
    dataset: the data.
    sizes: layer widths, input first (``[40, 10]``: logistic regression).
    steps, eval_every, seeds: as the engine's.

  Returns:
    ``{"test", "train"}`` accuracies, ``(seeds, steps // eval_every + 1)``.
  """
  x, y = jnp.asarray(dataset.x_train), jnp.asarray(dataset.y_train)
  x_test, y_test = jnp.asarray(dataset.x_test), jnp.asarray(dataset.y_test)
  x_eval, y_eval = x[:TRAIN_EVAL], y[:TRAIN_EVAL]
  opt = optax.adam(LEARNING_RATE)

  def init(keys):
    """PyTorch's nn.Linear init of every layer, for each seed's key (leading axis)."""
    params = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
      layer = jax.vmap(lambda k: jax.random.split(jax.random.fold_in(k, i)))(keys)
      weight, bias = jaxinit.torch_linear_default(), jaxinit.torch_linear_bias(fan_in)
      params.append({"w": jax.vmap(lambda k: weight(k, (fan_in, fan_out)))(layer[:, 0]),
                     "b": jax.vmap(lambda k: bias(k, (fan_out,)))(layer[:, 1])})
    return params

  def apply(params, xb):
    for layer in params[:-1]:
      xb = jax.nn.relu(xb @ layer["w"] + layer["b"])
    return xb @ params[-1]["w"] + params[-1]["b"]

  def loss(params, xb, yb):
    return optax.softmax_cross_entropy_with_integer_labels(apply(params, xb), yb).mean()

  def accuracies(params):
    return jnp.stack([jnp.mean(jnp.argmax(apply(params, xe), -1) == ye)
                      for xe, ye in ((x_test, y_test), (x_eval, y_eval))])

  def train(params, batches):
    def step(carry, idx):
      p, state = carry
      updates, state = opt.update(jax.grad(loss)(p, x[idx], y[idx]), state)
      return (optax.apply_updates(p, updates), state), None

    def block(carry, idx):
      carry, _ = jax.lax.scan(step, carry, idx)
      return carry, accuracies(carry[0])

    _, accs = jax.lax.scan(block, (params, opt.init(params)), batches)
    return jnp.concatenate([accuracies(params)[None], accs])

  # Params drawn by the presets, every seed at once; minibatches (with replacement)
  # from numpy, so the training program holds no random-number kernels (slow to
  # compile on CPU).
  keys = jax.random.split(jax.random.key(2020), seeds)
  params = jax.jit(init)(keys)
  rng = np.random.default_rng(2020)
  batches = rng.integers(0, x.shape[0], (seeds, steps // eval_every, eval_every, BATCH),
                         dtype=np.int32)
  accs = np.asarray(jax.jit(jax.vmap(train))(params, batches), np.float64)
  return {"test": accs[..., 0], "train": accs[..., 1]}  # accs: (seeds, evals, 2)


def _stats(acc: np.ndarray) -> tuple[float, float]:
  """Mean and std over seeds of the final test accuracy."""
  final = acc[:, -1]
  return float(np.mean(final)), float(np.std(final))


def run(scale: str, out: Path) -> Report:
  """Trains the two baselines; writes curves, the summary and the comparison."""
  s = _settings(scale)
  dataset = load_dataset(s["dataset"])
  s["in_features"] = dataset.in_features
  runs = _engine(s)
  steps_axis = runs.pop("eval_step")
  n_in, n_out = dataset.in_features, dataset.num_outputs
  runs["mlp, reference loop, exact PyTorch init"] = _reference(
      dataset, [n_in, s["width"], s["width"], n_out], s["steps"], s["eval_every"], s["seeds"])
  runs["logistic regression, reference loop, exact PyTorch init"] = _reference(
      dataset, [n_in, n_out], s["steps"], s["eval_every"], s["seeds"])

  summary, curve_rows = [], []
  for label, acc in runs.items():
    mean, std = _stats(acc["test"])
    best = acc["test"].max(axis=1)
    summary.append({"run": label, "seeds": acc["test"].shape[0], "steps": s["steps"],
                    "final_test_accuracy": mean, "final_test_accuracy_std": std,
                    "best_test_accuracy": float(best.mean()),
                    "final_train_accuracy": float(acc["train"][:, -1].mean()),
                    "seed_values": " ".join(f"{v:.3f}" for v in acc["test"][:, -1])})
    for j, step in enumerate(steps_axis):
      curve_rows.append({"run": label, "step": int(step),
                         "test_accuracy": float(acc["test"][:, j].mean()),
                         "test_accuracy_std": float(acc["test"][:, j].std()),
                         "train_accuracy": float(acc["train"][:, j].mean())})
  data = [write_csv(out / "summary.csv", summary), write_csv(out / "curves.csv", curve_rows)]
  fig = save_figure(_figure(runs, steps_axis, s), out / "mnist1d_baselines.png")

  report = Report(title=TITLE, scale=scale, claim=(
      "On MNIST-1D, logistic regression reaches ~32% test accuracy and an MLP 40-100-100-10 "
      "(ReLU) ~68% (notebook: ~65%), trained with Adam 1e-2, batch 100, ~6000 steps from "
      "PyTorch's default init (Greydanus 2020). Reproducing them checks jaxinit's training "
      "stack end to end."), setup=(
      f"{s['dataset']} ({len(dataset.x_train)} train / {len(dataset.x_test)} test; "
      "`mnist1d.data.make_dataset(get_dataset_args())`, the paper's frozen defaults). "
      f"MLP {n_in}-{s['width']}-{s['width']}-{n_out}, ReLU; Adam, learning rate "
      f"{LEARNING_RATE}, batch {BATCH} drawn with replacement, {s['steps']} steps, "
      f"{s['seeds']} seeds, test accuracy every {s['eval_every']} steps. Engine runs (sweep "
      "grid, one compiled program): weights `torch_linear_default` = U(+-1/sqrt(fan_in)); "
      "biases N(0, bias_variance) with one variance for all layers, since a grid cannot "
      f"give each layer its own: 1/{3 * s['width']} (PyTorch's variance in the layers of "
      f"fan-in {s['width']}; 2.5x below it in the first layer of fan-in 40) and, as a "
      "bracket, 0. Reference loop (plain jax + optax, same sampling, seeds of its own): "
      "exact PyTorch init, `torch_linear_default` weights and `torch_linear_bias(fan_in)` "
      "biases in every layer; logistic regression is this loop with one linear layer "
      f"{n_in}-{n_out} (the sweep's MLP has depth >= 1). Criteria: a final test accuracy "
      f"(mean over seeds) reproduces the paper when within {TOLERANCE} of its number (for "
      f"the MLP: of {PAPER_MLP} or the notebook's {NOTEBOOK_MLP}); the engine agrees with "
      f"the reference loop when their means differ by less than {AGREEMENT}."))
  checks = _compare(report, summary)
  report.verdict = verdict_of(checks)
  report.discussion = _discussion(summary, runs, steps_axis, s, scale)
  report.figures = [(fig, "Test accuracy (mean over seeds, band: +-1 std) during training; "
                          "dotted: train accuracy on the first 1000 training examples; "
                          "horizontal lines: the paper's numbers.")]
  report.data = data
  return report


def _row(summary: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
  return next(r for r in summary if r["run"].startswith(prefix))


def _measured(row: dict[str, Any]) -> str:
  return (f"{row['final_test_accuracy']:.3f} +- {row['final_test_accuracy_std']:.3f} "
          f"({row['seeds']} seed(s); best during training {row['best_test_accuracy']:.3f})")


def _difference(a: dict[str, Any], b: dict[str, Any]) -> tuple[float, float]:
  """Difference of two runs' mean final test accuracy and its standard error."""
  se = math.sqrt(a["final_test_accuracy_std"] ** 2 / a["seeds"]
                 + b["final_test_accuracy_std"] ** 2 / b["seeds"])
  return a["final_test_accuracy"] - b["final_test_accuracy"], se


def _compare(report: Report, summary: list[dict[str, Any]]) -> list[bool]:
  checks = []
  lin = _row(summary, "logistic regression")
  ok = abs(lin["final_test_accuracy"] - PAPER_LINEAR) <= TOLERANCE
  report.compare("logistic regression: test accuracy (reference loop, exact PyTorch init)",
                 f"~{PAPER_LINEAR:.2f}", _measured(lin), ok)
  checks.append(ok)
  for row in [r for r in summary if r["run"].startswith("mlp")]:
    m = row["final_test_accuracy"]
    ok = min(abs(m - PAPER_MLP), abs(m - NOTEBOOK_MLP)) <= TOLERANCE
    report.compare(f"MLP: test accuracy ({row['run'][5:]})",
                   f"~{PAPER_MLP:.2f} (notebook ~{NOTEBOOK_MLP:.2f})", _measured(row), ok)
    checks.append(ok)
  ref = _row(summary, "mlp, reference")
  for row in [r for r in summary if r["run"].startswith("mlp, engine")]:
    diff, se = _difference(row, ref)
    ok = abs(diff) < AGREEMENT
    report.compare(f"engine ({row['run'][13:]}) minus reference loop (exact init): MLP "
                   "test accuracy", "0 (same model, same training)",
                   f"{diff:+.3f} +- {se:.3f} (standard error)", ok)
    checks.append(ok)
  return checks


def _discussion(summary: list[dict[str, Any]], runs: dict[str, Any], steps: np.ndarray,
                s: dict[str, Any], scale: str) -> str:
  lin, ref = _row(summary, "logistic regression"), _row(summary, "mlp, reference")
  engine = [r for r in summary if r["run"].startswith("mlp, engine")]
  peak = runs[ref["run"]]["test"].mean(axis=0)
  text = [
      f"Logistic regression reached {lin['final_test_accuracy']:.3f} (paper "
      f"{PAPER_LINEAR:.2f}) and the MLP {ref['final_test_accuracy']:.3f} with the exact "
      "PyTorch init, "
      + " and ".join(f"{r['final_test_accuracy']:.3f} through the engine with biases "
                     f"{r['run'].split('bias ')[1]}" for r in engine)
      + f" (paper {PAPER_MLP:.2f}, notebook {NOTEBOOK_MLP:.2f}).",
      f"The MLP's train accuracy ended at {ref['final_train_accuracy']:.3f}"
      + (" (it overfits the 4000 training signals)"
         if ref["final_train_accuracy"] > ref["final_test_accuracy"] + 0.1 else "")
      + (f"; its mean test accuracy peaked at {peak.max():.3f} (step "
         f"{int(steps[int(np.argmax(peak))])}) and ended at {peak[-1]:.3f}, so which step a "
         f"paper reports moves its number by up to {peak.max() - peak[-1]:.3f}."
         if peak.max() - peak[-1] >= 0.005 else
         f"; its mean test accuracy ended within 0.005 of its peak ({peak.max():.3f})."),
  ]
  gaps = [(r["run"][13:], *_difference(r, ref)) for r in engine]
  noise = all(abs(d) <= 2 * se for _, d, se in gaps)
  text.append(
      "Engine minus the exact-init loop: "
      + "; ".join(f"{label} {d:+.3f} +- {se:.3f}" for label, d, se in gaps)
      + " (standard error over seeds). "
      + ("Both are within two standard errors of 0: the engine trains this model as a "
         "plain jax + optax loop does, and its approximation of PyTorch's bias init costs "
         "nothing measurable (PyTorch's biases start small, at most "
         f"{1 / math.sqrt(s['in_features']):.2f} in size, and Adam moves every parameter by "
         "up to the learning rate per step from the first step on)." if noise else
         "At least one gap exceeds two standard errors, so it is probably not seed noise; "
         "the runs differ in the biases (one variance for all layers, normal instead of "
         "uniform, or zeros) and in their random streams (init and minibatch order), and "
         "this study cannot tell those apart. "
         + ("It stays below the agreement criterion of "
            f"{AGREEMENT}, i.e. below the paper-vs-notebook spread of "
            f"{PAPER_MLP - NOTEBOOK_MLP:.2f}." if all(abs(d) < AGREEMENT for _, d, _ in gaps)
            else f"It exceeds the agreement criterion of {AGREEMENT}.")))
  if scale == "quick":
    text.append(
        f"The quick run is the paper's training length ({s['steps']} steps) with "
        f"{s['seeds']} seeds; `--full` repeats it with 20 seeds (a GPU is not needed: these "
        "models are tiny), which shrinks the standard errors above by ~1.8x.")
  elif scale == "tiny":
    text.append("At the tiny scale (digits, width 8, 20 steps) the numbers say nothing "
                "about MNIST-1D; the run only checks the code path.")
  return " ".join(text)


def _figure(runs: dict[str, Any], steps: np.ndarray, s: dict[str, Any]) -> Any:
  plt = pyplot()
  fig, ax = plt.subplots(figsize=(8.0, 4.6))
  colors = ["tab:blue", "tab:cyan", "tab:green", "tab:red"]
  for color, (label, acc) in zip(colors, runs.items()):
    mean, std = acc["test"].mean(axis=0), acc["test"].std(axis=0)
    ax.plot(steps, mean, color=color, label=label)
    ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.2, lw=0)
    ax.plot(steps, acc["train"].mean(axis=0), color=color, ls=":", lw=1)
  for value, label, style in ((PAPER_MLP, f"paper: MLP {PAPER_MLP:.2f}", "--"),
                              (NOTEBOOK_MLP, f"notebook: MLP {NOTEBOOK_MLP:.2f}", "-."),
                              (PAPER_LINEAR, f"paper: logistic regression {PAPER_LINEAR:.2f}",
                               "--")):
    ax.axhline(value, color="black", ls=style, lw=1, alpha=0.7)
    below = value == NOTEBOOK_MLP  # the two MLP lines are close: label one below
    ax.annotate(label, (steps[-1], value), xytext=(-4, -3 if below else 3),
                textcoords="offset points", ha="right", va="top" if below else "bottom",
                fontsize=7)
  ax.set_xlabel("step")
  ax.set_ylabel(f"test accuracy ({s['dataset']})")
  ax.set_ylim(0, 1)
  ax.set_title(f"MNIST-1D baselines, Adam {LEARNING_RATE}, batch {BATCH}", fontsize=10)
  ax.legend(fontsize=7, loc="center right")
  fig.tight_layout()
  return fig


STUDY = Study(name="mnist1d_baselines", title=TITLE, run=run)
