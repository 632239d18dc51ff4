"""Zero and constant initialization: the symmetry problem.

Claim (the folklore every introduction to initialization starts from): if
every weight of a layer starts equal (all zeros, or any constant), all hidden
units of the layer compute the same function and receive the same gradient,
so gradient descent never makes them different; the network then does no
better than a linear model, whereas a random init trains to well above it.

What happens exactly, for a ``tanh`` or ``relu`` MLP (``phi(0) = 0``) with
biases initialized to zero:

* zeros: every hidden pre-activation is 0, so every hidden output
  ``phi(0) = 0``; the readout kernel's gradient ``phi(h^L)^T dL/dy`` is 0 and,
  because the readout kernel is 0, so is every back-propagated gradient. Only
  the readout bias moves: the network learns the class prior and predicts one
  class for every input;
* a nonzero constant ``c``: every unit of a layer has the same incoming
  weights, hence the same output and, because its outgoing weights are equal
  too, the same gradient. Elementwise optimizers (SGD, momentum, Adam) keep
  equal weights equal in exact arithmetic, so each hidden layer stays one unit
  repeated ``width`` times: the network trains, but as a width-1 chain
  ``x -> w.x -> phi -> ... -> 10 logits`` with a one-dimensional bottleneck,
  which cannot beat a linear classifier. In float32 the units can still drift
  apart: the matrix product may round some of its output columns differently
  from the others, and the training dynamics may grow that 1e-7 difference.

Method: the sweep engine trains depth-2 MLPs (the MNIST-1D MLP of Greydanus
2020: width 100, batch 100, learning rate 1e-2) from zeros, ``constant(0.1)``
and two random inits (He and Glorot normal), for relu and tanh, with SGD +
momentum and with Adam, several seeds; a logistic regression is trained the
same way (optimizer, learning rate, batch, steps) as the linear baseline. The
initial and final params give the number of distinct units of every hidden
layer (:func:`jaxinit.probes.distinct_units_per_layer`) and the size of every
weight. A control run repeats Adam + tanh + ``constant(0.1)`` at width 96,
where XLA:CPU happens to round every column alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit import probes
from jaxinit.models import MLP, functional
from jaxinit.sweep import load_dataset, run_sweep
from jaxinit.sweep.config import optimizer_factory
from jaxinit_experiments.study import (Report, Study, pick, pyplot, save_figure, verdict_of,
                                       write_csv)

TITLE = "Zero and constant initialization: the symmetry problem"

INITS: dict[str, Any] = {
    "zeros": "zeros",
    "constant(0.1)": {"name": "constant", "value": 0.1},
    "he_normal": "he_normal",
    "glorot_normal": "glorot_normal",
}
RANDOM = ("he_normal", "glorot_normal")
OPTIMIZERS = ("momentum", "adam")
LEARNING_RATE, BATCH, DEPTH = 1e-2, 100, 2
CONTROL_WIDTH = 96
# Greydanus 2020 (MNIST-1D): test accuracy of logistic regression and of the MLP.
PAPER_LINEAR, PAPER_MLP = 0.32, 0.68


def _settings(scale: str) -> dict[str, Any]:
  return {
      "dataset": pick(scale, "digits", "mnist1d", "mnist1d"),
      "activations": pick(scale, ["tanh"], ["relu", "tanh"], ["relu", "tanh"]),
      "optimizers": pick(scale, ["adam"], list(OPTIMIZERS), list(OPTIMIZERS)),
      "width": pick(scale, 8, 100, 100),
      "steps": pick(scale, 20, 3000, 6000),
      "eval_every": pick(scale, 10, 250, 250),
      "seeds": pick(scale, 1, 2, 5),
      "control": scale != "tiny",
  }


def _train_linear(dataset: Any, optimizer: str, steps: int, eval_every: int,
                  seeds: int) -> np.ndarray:
  """Logistic regression, one per seed (vmapped): mean test accuracy at each evaluation."""
  x, y = jnp.asarray(dataset.x_train), jnp.asarray(dataset.y_train)
  x_test, y_test = jnp.asarray(dataset.x_test), jnp.asarray(dataset.y_test)
  factory, options = optimizer_factory(optimizer)
  opt = factory(learning_rate=LEARNING_RATE, **options)

  def loss(p, xb, yb):
    logits = xb @ p["w"] + p["b"]
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), yb[:, None], 1))

  def accuracy(p):
    return jnp.mean(jnp.argmax(x_test @ p["w"] + p["b"], -1) == y_test)

  def train(key):
    params = {"w": jnp.zeros((x.shape[1], dataset.num_outputs)),
              "b": jnp.zeros(dataset.num_outputs)}

    def step(carry, k):
      p, state = carry
      idx = jax.random.randint(k, (BATCH,), 0, x.shape[0])
      updates, state = opt.update(jax.grad(loss)(p, x[idx], y[idx]), state)
      return (jax.tree.map(jnp.add, p, updates), state), None

    def block(carry, k):
      carry, _ = jax.lax.scan(step, carry, jax.random.split(k, eval_every))
      return carry, accuracy(carry[0])

    keys = jax.random.split(key, steps // eval_every)
    _, accs = jax.lax.scan(block, (params, opt.init(params)), keys)
    return jnp.concatenate([accuracy(params)[None], accs])

  keys = jax.random.split(jax.random.key(1000), seeds)
  return np.asarray(jax.jit(jax.vmap(train))(keys)).mean(axis=0)


def _split_units(params: Any) -> tuple[float, list[int]]:
  """Largest relative difference of a hidden unit's incoming weights from unit 0's, and
  the units that differ from unit 0 by more than 1e-3 of the layer's largest weight."""
  spread, split = 0.0, set()
  for kernel in [params["input"]["kernel"], *params["hidden"]["kernel"]]:
    kernel = np.asarray(kernel)
    scale = max(float(np.max(np.abs(kernel))), 1e-30)
    diff = np.max(np.abs(kernel - kernel[:, :1]), axis=0) / scale
    spread = max(spread, float(diff.max()))
    split |= set(np.nonzero(diff > 1e-3)[0].tolist())
  return spread, sorted(split)


def _max_abs(tree: Any) -> float:
  return float(max(np.max(np.abs(np.asarray(v))) for v in jax.tree.leaves(tree)))


def _init_name(spec: Any) -> str:
  for name, value in INITS.items():
    if value == spec:
      return name
  raise KeyError(spec)


def _model_rows(result: Any, dataset: Any, width: int) -> tuple[list[dict[str, Any]], dict]:
  """One row per trained model (distinct units, weight sizes, accuracy) and test curves."""
  rows, curves = [], {}
  count = jax.jit(probes.distinct_units_per_layer, static_argnums=0)
  x = jnp.asarray(dataset.x_train)
  dead = jax.jit(lambda net, p: probes.dead_fraction(net.apply(p, x, capture=True)[1][
      "preactivations"]), static_argnums=0)
  nets = {act: functional(MLP.abstract(in_features=dataset.in_features,
                                       out_features=dataset.num_outputs, width=width,
                                       depth=DEPTH, activation=act))[0]
          for act in {model["activation"] for model in result.models}}
  for i, (model, row) in enumerate(zip(result.models, result.rows)):
    name = _init_name(model["init"])
    net = nets[model["activation"]]
    first, last = result.initial_params[i], result.final_params[i]
    units_init = np.asarray(count(net, first)).tolist()
    units_final = np.asarray(count(net, last)).tolist()
    spread, split = _split_units(last)
    rows.append({
        "optimizer": model["optimizer"], "activation": model["activation"], "init": name,
        "width": width, "seed": model.seed, "test_accuracy": row["final_test_accuracy"],
        "train_loss": row["final_train_loss"],
        "distinct_units_init": " ".join(map(str, units_init)),
        "distinct_units_final": " ".join(map(str, units_final)),
        "min_distinct_final": min(units_final), "max_distinct_final": max(units_final),
        "unit_spread_final": spread,
        "split_units": " ".join(map(str, split)) if len(split) < 20 else f"{len(split)} units",
        "max_abs_hidden_final": _max_abs({k: last[k] for k in ("input", "hidden")}),
        "max_abs_readout_kernel_final": _max_abs(last["readout"]["kernel"]),
        "max_abs_readout_bias_final": _max_abs(last["readout"]["bias"]),
        # Largest fraction of units of a layer that are negative on every training input.
        "dead_fraction_final": (float(np.max(dead(net, last)))
                                if model["activation"] == "relu" else None),
    })
    key = (model["optimizer"], model["activation"], name)
    curves.setdefault(key, []).append(result.curves["test_accuracy"][i])
  return rows, curves


def _sweep(s: dict[str, Any], inits: list[Any], activations: list[str], optimizers: list[str],
           width: int, seeds: int) -> Any:
  return run_sweep({
      "name": "zero_init", "seeds": seeds, "eval_every": s["eval_every"], "probes": [],
      "grid": {"dataset": s["dataset"], "model": "mlp", "init": inits,
               "activation": activations, "depth": DEPTH, "width": width,
               "optimizer": optimizers, "learning_rate": LEARNING_RATE, "batch_size": BATCH,
               "steps": s["steps"]}}, progress=False, keep_params=True)


def run(scale: str, out: Path) -> Report:
  """Trains symmetric and random inits and a linear baseline; counts distinct units."""
  s = _settings(scale)
  dataset = load_dataset(s["dataset"])
  result = _sweep(s, list(INITS.values()), s["activations"], s["optimizers"], s["width"],
                  s["seeds"])
  rows, curves = _model_rows(result, dataset, s["width"])
  steps_axis = np.asarray(result.curves["eval_step"][0])
  if s["control"]:
    control = _sweep(s, [INITS["constant(0.1)"]], ["tanh"], ["adam"], CONTROL_WIDTH, 1)
    rows += _model_rows(control, dataset, CONTROL_WIDTH)[0]

  linear = {opt: _train_linear(dataset, opt, s["steps"], s["eval_every"], s["seeds"])
            for opt in s["optimizers"]}
  # The best a constant prediction can do on the test set.
  best_constant = float(np.bincount(dataset.y_test).max() / len(dataset.y_test))

  data = [write_csv(out / "models.csv", rows)]
  curve_rows = [{"step": int(t), "optimizer": opt, "activation": act, "init": name,
                 "test_accuracy": float(np.mean(acc, axis=0)[j])}
                for (opt, act, name), acc in curves.items() for j, t in enumerate(steps_axis)]
  curve_rows += [{"step": int(t), "optimizer": opt, "activation": "none",
                  "init": "logistic_regression", "test_accuracy": float(acc[j])}
                 for opt, acc in linear.items() for j, t in enumerate(steps_axis)]
  data.append(write_csv(out / "curves.csv", curve_rows))
  fig_name = save_figure(_figure(s, steps_axis, curves, linear, best_constant, rows),
                         out / "zero_init.png")

  report = Report(title=TITLE, scale=scale, claim=(
      "With all-zero or constant weights the hidden units of a layer stay identical through "
      "training (gradient descent never breaks the symmetry), so the network does no better "
      "than a linear model; a random init breaks the symmetry and trains well above it "
      "(the folklore of every introduction to initialization; MNIST-1D accuracies of "
      "logistic regression and MLP from Greydanus 2020)."), setup=(
      f"Depth-{DEPTH} MLPs ({s['width']} units per hidden layer, biases 0) on "
      f"{s['dataset']}; activations {', '.join(s['activations'])}; inits "
      f"{', '.join(INITS)}; optimizers {', '.join(s['optimizers'])} (SGD with momentum 0.9 "
      f"/ Adam), learning rate {LEARNING_RATE}, batch {BATCH}, {s['steps']} steps, "
      f"{s['seeds']} seed(s); trained by the sweep engine. Linear baseline: logistic "
      "regression (from zeros) trained the same way with each optimizer. Distinct units: "
      "`jaxinit.probes.distinct_units_per_layer` (units equal to within rtol 1e-4) on the "
      "initial and final params. "
      + (f"Control: Adam + tanh + constant(0.1) at width {CONTROL_WIDTH}. "
         if s["control"] else "")
      + "Criteria: zeros keep 1 distinct unit per layer and every weight but the readout "
      "bias exactly 0, and reach at most the best constant prediction's accuracy (the test "
      "set's largest class frequency) + 0.01; constant(0.1) keeps 1 distinct unit per "
      "layer (checked per optimizer) and stays below the linear baseline's accuracy; random "
      "inits keep every unit distinct and beat the linear baseline by >= 0.05."))
  main_rows = [r for r in rows if r["width"] == s["width"]]
  checks = _compare(report, main_rows, s["width"],
                    {opt: float(acc[-1]) for opt, acc in linear.items()}, best_constant)
  report.verdict = verdict_of(checks)
  report.discussion = _discussion(rows, s, linear, best_constant, scale)
  report.figures = [(fig_name, "Test accuracy during training (mean over seeds) per "
                               "optimizer, activation and init, with the logistic-regression "
                               "baseline and the best constant prediction; last panel: "
                               "distinct units in the hidden layers before and after "
                               "training (fewest over layers, mean over seeds).")]
  report.data = data
  return report


def _select(rows: list[dict[str, Any]], **where: Any) -> list[dict[str, Any]]:
  return [r for r in rows if all(r[k] == v for k, v in where.items())]


def _accuracies(rows: list[dict[str, Any]], init: str) -> str:
  """'opt/act acc' for every optimizer and activation, seeds averaged."""
  keys = sorted({(r["optimizer"], r["activation"]) for r in rows})
  return ", ".join(f"{o}/{a} {_mean_acc(rows, init=init, optimizer=o, activation=a):.3f}"
                   for o, a in keys)


def _compare(report: Report, rows: list[dict[str, Any]], width: int, linear: dict[str, float],
             best_constant: float) -> list[bool]:
  checks = []
  lin = ", ".join(f"{o} {v:.3f}" for o, v in linear.items())
  zero = _select(rows, init="zeros")
  ok = all(r["max_distinct_final"] == 1 and r["max_abs_hidden_final"] == 0.0
           and r["max_abs_readout_kernel_final"] == 0.0 for r in zero)
  report.compare("zeros: distinct units per hidden layer after training; largest abs "
                 "weight of the hidden layers and of the readout kernel",
                 "1; all stay 0 (only the readout bias learns)",
                 f"{max(r['max_distinct_final'] for r in zero)}; "
                 f"{max(r['max_abs_hidden_final'] for r in zero):.3g} and "
                 f"{max(r['max_abs_readout_kernel_final'] for r in zero):.3g} (readout bias "
                 f"up to {max(r['max_abs_readout_bias_final'] for r in zero):.3g})", ok)
  checks.append(ok)
  ok = all(r["test_accuracy"] <= best_constant + 0.01 for r in zero)
  report.compare("zeros: test accuracy", "the class prior only (~0.10, one class predicted)",
                 _accuracies(rows, "zeros") + f" (best constant prediction "
                 f"{best_constant:.3f})", ok)
  checks.append(ok)
  for opt in linear:
    const = _select(rows, init="constant(0.1)", optimizer=opt)
    ok = all(r["max_distinct_final"] == 1 for r in const)
    split = sorted({r["split_units"] for r in const if r["split_units"]})
    report.compare(f"constant(0.1), {opt}: distinct units per hidden layer after training "
                   "(largest relative spread of a unit's weights)", "1 (units stay identical)",
                   f"{max(r['max_distinct_final'] for r in const)} "
                   f"({max(r['unit_spread_final'] for r in const):.1e})"
                   + (f"; units split off: {'; '.join(split)}" if split else ""), ok)
    checks.append(ok)
  const = _select(rows, init="constant(0.1)")
  ok = all(r["test_accuracy"] < linear[r["optimizer"]] for r in const)
  report.compare("constant(0.1): test accuracy vs the linear baseline",
                 f"no better than linear (logistic regression ~{PAPER_LINEAR:.2f})",
                 _accuracies(rows, "constant(0.1)") + f"; linear {lin}", ok)
  checks.append(ok)
  rand = [r for r in rows if r["init"] in RANDOM]
  ok = all(r["min_distinct_final"] == width for r in rand)
  report.compare("random inits: distinct units per hidden layer after training",
                 f"all {width}", f"min {min(r['min_distinct_final'] for r in rand)}", ok)
  checks.append(ok)
  ok = all(r["test_accuracy"] >= linear[r["optimizer"]] + 0.05 for r in rand)
  report.compare("random inits (he_normal, glorot_normal): test accuracy",
                 f"MLP ~{PAPER_MLP:.2f} vs logistic regression ~{PAPER_LINEAR:.2f} (MNIST-1D)",
                 "he " + _accuracies(rows, "he_normal") + "; glorot "
                 + _accuracies(rows, "glorot_normal") + f"; linear {lin}", ok)
  checks.append(ok)
  return checks


def _mean_acc(rows: list[dict[str, Any]], **where: Any) -> float:
  return float(np.mean([r["test_accuracy"] for r in _select(rows, **where)]))


def _discussion(rows: list[dict[str, Any]], s: dict[str, Any], linear: dict[str, np.ndarray],
                best_constant: float, scale: str) -> str:
  width = s["width"]
  main = [r for r in rows if r["width"] == width]
  lin = ", ".join(f"{o} {v[-1]:.3f}" for o, v in linear.items())
  const = _select(main, init="constant(0.1)")
  keys = sorted({(r["optimizer"], r["activation"]) for r in const})
  text = (
      "Zeros and a nonzero constant fail differently. With exact zeros nothing but the "
      "readout bias ever receives a gradient (phi(0) = 0 for relu and tanh, and the readout "
      "kernel is 0, so every back-propagated signal is 0): every weight stays exactly 0, the "
      "network learns the class prior and predicts one class for every input (at best the "
      f"largest class frequency, {best_constant:.3f}, on this test set). With constant(0.1) "
      "the network does train, but as one unit per hidden layer copied "
      f"{width} times: a width-1 chain whose first layer learns a single projection of the "
      "input. Its test accuracy ("
      + ", ".join(f"{a}/{o} {_mean_acc(const, optimizer=o, activation=a):.3f}"
                  for o, a in keys)
      + f") stays below the logistic regression's ({lin}) and far below the random inits' "
      f"({np.mean([_mean_acc(main, init=n) for n in RANDOM]):.3f} on average).")
  dead = [r for r in const if r["activation"] == "relu"]
  if dead and all(r["dead_fraction_final"] == 1.0 for r in dead):
    text += (" With relu the single effective unit dies: after training every hidden unit "
             "of some layer is negative on all training inputs (dead fraction 1), so "
             "nothing below the readout learns and the accuracy stays at the class prior.")
  adam = _select(main, init="constant(0.1)", optimizer="adam", activation="tanh")
  sgd = _select(main, init="constant(0.1)", optimizer="momentum")
  if adam and max(r["max_distinct_final"] for r in adam) > 1:
    split = sorted({r["split_units"] for r in adam if r["split_units"]})
    text += " Symmetry in floating point: "
    if sgd:
      text += (
          "with SGD + momentum the copies stay equal to round-off (largest relative spread "
          f"{max(r['unit_spread_final'] for r in sgd):.0e}, "
          f"{max(r['max_distinct_final'] for r in sgd)} distinct unit), as the exact "
          "argument says; ")
    text += (
        f"with Adam and tanh they did not: units {'; '.join(split)} of the {width}-wide "
        "layers split off from the rest. XLA:CPU's matrix product evidently rounds some "
        "output columns (here the last few) differently from the others, which seeds a "
        "~1e-7 difference that training then grows to O(1) under Adam (presumably because "
        "its per-coordinate normalization turns tiny gradient differences into steps of "
        "the size of the learning rate) but not under momentum SGD.")
    control = _select(rows, width=CONTROL_WIDTH)
    if control:
      text += (f" The control at width {CONTROL_WIDTH} (same seed, optimizer and init) kept "
               f"{control[0]['max_distinct_final']} distinct unit(s) per layer (relative "
               f"spread {control[0]['unit_spread_final']:.1e}).")
    text += (" Even split in two groups the network stays below the linear baseline: "
             "round-off is no substitute for a random init. The 'held' column of that row "
             "is nevertheless 'no': the units did not stay identical, if only by accident "
             "of the arithmetic.")
  if scale == "tiny":
    text += (" At the tiny scale (8 units, 20 steps on digits) the accuracies say nothing; "
             "the run only checks the code path.")
  elif scale == "quick":
    text += (" The quick run trains 3000 steps with 2 seeds (Greydanus: ~6000 steps); "
             "`--full` trains 6000 steps with 5 seeds.")
  return text


def _figure(s: dict[str, Any], steps: np.ndarray, curves: dict[Any, list[np.ndarray]],
            linear: dict[str, np.ndarray], best_constant: float,
            rows: list[dict[str, Any]]) -> Any:
  plt = pyplot()
  panels = [(o, a) for o in s["optimizers"] for a in s["activations"]]
  nrows, ncols = len(s["optimizers"]), len(s["activations"])
  fig = plt.figure(figsize=(3.4 * ncols + 4.2, 3.0 * nrows + 0.4))
  grid = fig.add_gridspec(nrows, ncols + 1, width_ratios=[1] * ncols + [1.3])
  axes = [fig.add_subplot(grid[i // ncols, i % ncols]) for i in range(len(panels))]
  axes.append(fig.add_subplot(grid[:, ncols]))
  colors = {"zeros": "tab:red", "constant(0.1)": "tab:orange", "he_normal": "tab:blue",
            "glorot_normal": "tab:green"}
  for ax, (opt, act) in zip(axes, panels):
    for name in INITS:
      ax.plot(steps, np.mean(curves[(opt, act, name)], axis=0), label=name,
              color=colors[name])
    ax.plot(steps, linear[opt], "k--", label="logistic regression")
    ax.axhline(best_constant, color="gray", ls=":", label="best constant")
    ax.set_title(f"{act}, {opt}", fontsize=10)
    ax.set_xlabel("step")
    ax.set_ylabel(f"test accuracy ({s['dataset']})", fontsize=8)
    ax.set_ylim(0, 1)
  axes[0].legend(fontsize=7)
  ax = axes[-1]
  labels, before, after = [], [], []
  main = [r for r in rows if r["width"] == s["width"]]
  for opt, act in panels:
    for name in INITS:
      picked = _select(main, optimizer=opt, activation=act, init=name)
      labels.append(f"{name} {act} {opt}")
      before.append(np.mean([min(map(int, r["distinct_units_init"].split())) for r in picked]))
      after.append(np.mean([r["min_distinct_final"] for r in picked]))
  pos = np.arange(len(labels))
  ax.barh(pos - 0.2, before, 0.4, label="at init")
  ax.barh(pos + 0.2, after, 0.4, label="after training")
  ax.set_xscale("log")
  ticks = sorted({v for v in (1, 2, 10, s["width"]) if v <= s["width"]})
  ax.set_xticks(ticks, [str(v) for v in ticks])
  ax.minorticks_off()
  ax.set_yticks(pos, labels, fontsize=7)
  ax.invert_yaxis()
  ax.set_xlabel("distinct hidden units")
  ax.set_title("symmetry of hidden units", fontsize=10)
  ax.legend(fontsize=7)
  fig.tight_layout()
  return fig


STUDY = Study(name="zero_init", title=TITLE, run=run)
