"""Which initializer for which activation: the rules of thumb, measured.

Claim (the rules of thumb every introduction to initialization ends with):
Glorot/Xavier init for tanh and sigmoid (Glorot & Bengio 2010), He/Kaiming
init for ReLU and its relatives (He et al. 2015), LeCun normal for SELU
(Klambauer et al. 2017); an init that is not scaled by the fan-in (zeros, a
small fixed ``N(0, 0.01^2)``) trains no deep network.

Why they should hold: each rule picks the weight variance ``sw / fan_in``
that keeps the second moment of the pre-activations the same from layer to
layer, ``q^{l+1} = sw E[phi(h^l)^2]``. For relu ``E[relu(h)^2] = q / 2``, so
``sw = 2`` (He); tanh is linear near 0, so ``sw = 1`` (Glorot or LeCun: on a
square layer they coincide); SELU's constants are chosen so that ``sw = 1``
(LeCun) has the fixed point mean 0, variance 1. The wrong variance makes
``q`` shrink or grow geometrically with depth, and the gradients with it.

Method: the sweep engine trains MLPs on MNIST-1D for every (initializer,
activation, depth) with SGD + momentum at one learning rate and a few seeds;
all initializers and seeds of one (activation, depth) share one compiled
program. Measured per model: final test accuracy; the first step at which
the running mean of the minibatch loss reaches a target loss; and at
initialization the forward signal ratio (second moment of the last hidden
layer's pre-activations over the first's, the ``second_moment`` probe) and
the backward ratio (gradient norm at the first hidden layer over the last,
the ``grad_norm`` probe), the forward ratio also predicted by mean-field
theory (:func:`jaxinit.theory.length_map` iterated from the measured first
layer). A rule holds for an (activation, depth) when its initializer's mean
test accuracy is within :data:`TOLERANCE` of the best initializer's; it is
not tested there when no initializer learned (beat the best constant
prediction by :data:`LEARNED`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from jaxinit import gains, theory
from jaxinit.sweep import load_dataset, run_sweep
from jaxinit_experiments.study import Report, Study, pick, pyplot, save_figure, write_csv

TITLE = "Which initializer for which activation: the rules of thumb, measured"

INITS: dict[str, Any] = {
    "zeros": "zeros",
    "normal(0.01)": {"name": "normal", "stddev": 0.01},
    "glorot": "glorot_normal",
    "he": "he_normal",
    "lecun": "lecun_normal",
    "orthogonal": "orthogonal",
}
NOT_FAN_SCALED = ("zeros", "normal(0.01)")
# The rule of thumb for each activation, with its source.
RULES: dict[str, tuple[str, str]] = {
    "tanh": ("glorot", "Glorot & Bengio 2010"),
    "sigmoid": ("glorot", "Glorot & Bengio 2010"),
    "relu": ("he", "He et al. 2015"),
    "leaky_relu": ("he", "He et al. 2015 (ReLU family)"),
    "gelu": ("he", "folklore: ReLU family"),
    "selu": ("lecun", "Klambauer et al. 2017"),
}
TOLERANCE = 0.03  # test accuracy: a rule "holds" within this of the best init
LEARNED = 0.05  # an init "learned" when it beat the best constant prediction by this
SIGNAL_FLOOR = 1e-30  # ratios below this (float32 underflow) are shown as this
SIGNAL_CLIP = 8.0  # colour scale of the signal heatmaps: +-8 decades


def _settings(scale: str) -> dict[str, Any]:
  return {
      "dataset": pick(scale, "digits", "mnist1d", "mnist1d"),
      # Tiny: one compiled program, and no orthogonal draws (a QR compile per shape).
      "inits": pick(scale, ["zeros", "normal(0.01)", "glorot", "he"], list(INITS),
                    list(INITS)),
      "activations": pick(scale, ["relu"], list(RULES), list(RULES)),
      "depths": pick(scale, [3], [4, 16], [4, 16, 32, 64]),
      "width": pick(scale, 8, 64, 256),
      "steps": pick(scale, 20, 300, 3000),
      "eval_every": pick(scale, 10, 100, 250),
      "batch_size": pick(scale, 32, 64, 128),
      "seeds": pick(scale, 1, 2, 5),
      "learning_rates": pick(scale, [0.01], [0.01], [0.003, 0.01, 0.03]),
      # Running mean of the minibatch loss (steps) and the loss it must reach.
      "window": pick(scale, 5, 20, 50),
      "target_loss": pick(scale, 2.0, 1.7, 1.2),
  }


def _steps_to_target(step_loss: np.ndarray, window: int, target: float) -> float:
  """First step at which the running mean of the minibatch loss is <= target (NaN: never)."""
  loss = np.asarray(step_loss, np.float64)
  finite = np.isfinite(loss)
  if not finite.all():  # a diverged model: only the steps before divergence count
    loss = loss[:int(np.argmin(finite))]
  if len(loss) < window:
    return math.nan
  cums = np.concatenate([[0.0], np.cumsum(loss)])
  smooth = (cums[window:] - cums[:-window]) / window
  hit = np.nonzero(smooth <= target)[0]
  return float(hit[0] + window) if len(hit) else math.nan


def _ratio(num: float, den: float) -> float:
  """num / den, floored at SIGNAL_FLOOR; NaN when both are 0 (no signal at all)."""
  if not (math.isfinite(num) and math.isfinite(den)) or den == 0.0:
    return math.nan
  return max(num / den, SIGNAL_FLOOR)


def _init_name(spec: Any) -> str:
  for name, value in INITS.items():
    if value == spec:
      return name
  raise KeyError(spec)


def _train(s: dict[str, Any]) -> list[dict[str, Any]]:
  """One sweep: a compiled program per (activation, depth), every init/seed/lr inside it."""
  result = run_sweep({
      "name": "init_vs_activation", "seeds": s["seeds"], "eval_every": s["eval_every"],
      "probes": ["second_moment", "grad_norm"],
      "grid": {"dataset": s["dataset"], "model": "mlp", "init": [INITS[n] for n in s["inits"]],
               "activation": s["activations"], "depth": s["depths"], "width": s["width"],
               "optimizer": "momentum", "learning_rate": s["learning_rates"],
               "batch_size": s["batch_size"], "steps": s["steps"]}}, progress=False)
  rows = []
  for i, (model, row) in enumerate(zip(result.models, result.rows)):
    grads = np.asarray(result.curves["probe_grad_norm"][i, 0], np.float64)
    grads = grads[np.isfinite(grads)]
    rows.append({
        "activation": model["activation"], "depth": model["depth"],
        "init": _init_name(model["init"]), "learning_rate": model["learning_rate"],
        "seed": model.seed, "test_accuracy": row["final_test_accuracy"],
        "train_loss": row["final_train_loss"], "diverged": row["diverged"],
        "steps_to_target": _steps_to_target(result.curves["step_loss"][i], s["window"],
                                            s["target_loss"]),
        "second_moment_first": row["initial_second_moment_first_layer"],
        "second_moment_last": row["initial_second_moment_last_layer"],
        "forward_ratio": _ratio(row["initial_second_moment_last_layer"],
                                row["initial_second_moment_first_layer"]),
        "grad_norm_first": float(grads[0]) if len(grads) else math.nan,
        "grad_norm_last": float(grads[-1]) if len(grads) else math.nan,
        "backward_ratio": _ratio(float(grads[0]), float(grads[-1])) if len(grads) else math.nan,
    })
  return rows


def _nanmean(values: list[float]) -> float:
  values = [v for v in values if math.isfinite(v)]
  return float(np.mean(values)) if values else math.nan


def _log_geomean(values: list[float]) -> float:
  """Mean of log10 (ratios span decades: average them on a log scale)."""
  return _nanmean([math.log10(v) if v > 0 else math.nan for v in values])


def _cells(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
  """One row per (activation, depth, init): seeds averaged, at the best learning rate
  (lowest mean final train loss; a diverged model counts as infinite loss)."""
  cells = []
  keys = sorted({(r["activation"], r["depth"], r["init"]) for r in rows},
                key=lambda k: (list(RULES).index(k[0]), k[1], list(INITS).index(k[2])))
  for act, depth, init in keys:
    mine = [r for r in rows if (r["activation"], r["depth"], r["init"]) == (act, depth, init)]
    by_lr: dict[float, list[dict[str, Any]]] = {}
    for r in mine:
      by_lr.setdefault(r["learning_rate"], []).append(r)

    def badness(group: list[dict[str, Any]]) -> float:
      losses = [r["train_loss"] if not r["diverged"] and math.isfinite(r["train_loss"])
                else math.inf for r in group]
      return float(np.mean(losses))

    lr, group = min(by_lr.items(), key=lambda item: badness(item[1]))
    acc = [r["test_accuracy"] for r in group]
    reach = [r["steps_to_target"] for r in group]
    cells.append({
        "activation": act, "depth": depth, "init": init, "learning_rate": lr,
        "seeds": len(group), "test_accuracy": float(np.mean(acc)),
        "test_accuracy_std": float(np.std(acc)),
        "train_loss": _nanmean([r["train_loss"] for r in group]),
        "diverged": sum(bool(r["diverged"]) for r in group),
        # Mean over the seeds that reached the target; how many did.
        "steps_to_target": _nanmean(reach),
        "reached_target": sum(math.isfinite(v) for v in reach),
        "second_moment_first": _nanmean([r["second_moment_first"] for r in group]),
        "log10_forward_ratio": _log_geomean([r["forward_ratio"] for r in group]),
        "log10_backward_ratio": _log_geomean([r["backward_ratio"] for r in group]),
    })
  return cells


def _cell(cells: list[dict[str, Any]], act: str, depth: int, init: str) -> dict[str, Any]:
  return next(c for c in cells if (c["activation"], c["depth"], c["init"]) == (act, depth, init))


def _best(cells: list[dict[str, Any]], act: str, depth: int) -> dict[str, Any]:
  mine = [c for c in cells if (c["activation"], c["depth"]) == (act, depth)]
  return max(mine, key=lambda c: c["test_accuracy"])


def _fmt_signal(log10: float) -> str:
  if not math.isfinite(log10):
    return "n/a"
  return f"1e{log10:+.1f}"


def _hidden_variance(init: str, width: int) -> float:
  """``sw`` of the (square) hidden layers: weights ~ sw / fan_in (NaN: no theory)."""
  return {"glorot": 1.0, "lecun": 1.0, "orthogonal": 1.0, "he": 2.0,
          "normal(0.01)": width * 1e-4}.get(init, math.nan)


def _add_theory(cells: list[dict[str, Any]], width: int) -> None:
  """Mean-field forward ratio: iterate the length map from the measured first layer."""
  for act in {c["activation"] for c in cells}:
    for depth in {c["depth"] for c in cells}:
      mine = [c for c in cells if (c["activation"], c["depth"]) == (act, depth)
              and math.isfinite(_hidden_variance(c["init"], width))
              and c["second_moment_first"] > 0]
      if not mine:
        continue
      sw = np.array([_hidden_variance(c["init"], width) for c in mine])
      q = q1 = np.array([c["second_moment_first"] for c in mine])
      for _ in range(depth - 1):
        q = np.asarray(theory.length_map(act, sw, 0.0, q), np.float64)
      for c, ratio in zip(mine, np.maximum(q / q1, SIGNAL_FLOOR)):
        c["log10_forward_theory"] = math.log10(float(ratio))
  for c in cells:
    c.setdefault("log10_forward_theory", math.nan)


def _learned(cells: list[dict[str, Any]], act: str, depth: int, chance: float) -> bool:
  """Whether any init got clearly above the best constant prediction."""
  return _best(cells, act, depth)["test_accuracy"] >= chance + LEARNED


def _rule_checks(cells: list[dict[str, Any]], s: dict[str, Any], chance: float
                 ) -> dict[str, list[bool | None]]:
  """Per activation and depth: rule within TOLERANCE of the best (None: nothing learned)."""
  out: dict[str, list[bool | None]] = {}
  for act in s["activations"]:
    rule = RULES[act][0]
    out[act] = [None if not _learned(cells, act, d, chance) else
                _cell(cells, act, d, rule)["test_accuracy"]
                >= _best(cells, act, d)["test_accuracy"] - TOLERANCE for d in s["depths"]]
  return out


def _compare(report: Report, cells: list[dict[str, Any]], s: dict[str, Any],
             checks: dict[str, list[bool | None]], chance: float) -> list[bool]:
  """One line per activation (its rule, at every depth) and one for the controls;
  returns the controls' checks."""
  for act in s["activations"]:
    rule, source = RULES[act]
    parts = []
    for depth, ok in zip(s["depths"], checks[act]):
      mine, best = _cell(cells, act, depth, rule), _best(cells, act, depth)
      if ok is None:
        verdict = f"no init learned, best {best['test_accuracy']:.3f}: not tested"
      else:
        verdict = ("best" if best["init"] == rule else
                   f"best {best['init']} {best['test_accuracy']:.3f}")
      parts.append(f"depth {depth}: {rule} {mine['test_accuracy']:.3f} "
                   f"+- {mine['test_accuracy_std']:.3f} ({verdict}); signal last/first "
                   f"{_fmt_signal(mine['log10_forward_ratio'])} (mean field "
                   f"{_fmt_signal(mine['log10_forward_theory'])}), gradient first/last "
                   f"{_fmt_signal(mine['log10_backward_ratio'])}")
    decided = [ok for ok in checks[act] if ok is not None]
    report.compare(f"{act}: test accuracy of the rule's init ({rule}) vs the best of "
                   f"{len(s['inits'])} inits", f"{rule} is the init to use ({source})",
                   "; ".join(parts), all(decided) if decided else None)
  oks, parts = [], []
  for act in s["activations"]:
    for depth, ok in zip(s["depths"], checks[act]):
      if ok is None:
        continue  # the rule's init did not learn either: nothing to compare with
      rule_acc = _cell(cells, act, depth, RULES[act][0])["test_accuracy"]
      worst = max(_cell(cells, act, depth, n)["test_accuracy"] for n in NOT_FAN_SCALED)
      oks.append(worst < rule_acc - TOLERANCE)
  deepest = max(s["depths"])
  for name in NOT_FAN_SCALED:
    accs = [_cell(cells, a, d, name)["test_accuracy"] for a in s["activations"]
            for d in s["depths"]]
    parts.append(f"{name} accuracy {min(accs):.3f}-{max(accs):.3f}")
  fwd = [_cell(cells, a, deepest, "normal(0.01)")["log10_forward_ratio"]
         for a in s["activations"]]
  parts.append(f"normal(0.01) signal last/first at depth {deepest}: "
               f"{_fmt_signal(min(fwd))} to {_fmt_signal(max(fwd))}")
  report.compare("zeros and normal(0.01) (not fan-scaled) vs the rule's init, every "
                 "activation and depth where the rule's init learned",
                 "no learning: symmetry (zeros), vanishing signal (small fixed std)",
                 "; ".join(parts) + f"; best constant prediction {chance:.3f} ({sum(oks)}/"
                 f"{len(oks)} cells below the rule's init by > {TOLERANCE})",
                 all(oks) if oks else None)
  return oks


def run(scale: str, out: Path) -> Report:
  """Trains every (init, activation, depth); writes heatmaps, CSVs and the comparison."""
  s = _settings(scale)
  y_test = load_dataset(s["dataset"]).y_test
  # The best constant prediction: what "learned nothing" scores on this test set.
  chance = float(np.bincount(y_test).max() / len(y_test))
  rows = _train(s)
  cells = _cells(rows)
  _add_theory(cells, s["width"])
  data = [write_csv(out / "models.csv", rows), write_csv(out / "cells.csv", cells)]
  figures = [
      (save_figure(_heatmaps(cells, s, "accuracy"), out / "accuracy.png"),
       "Final test accuracy (mean over seeds) per initializer and activation, one panel per "
       "depth; boxed: the rule of thumb's init."),
      (save_figure(_heatmaps(cells, s, "signal"), out / "signal.png"),
       "Signal propagation at init, log10 of: top, the second moment of the last hidden "
       "layer's pre-activations over the first's (forward); bottom, the gradient norm at "
       "the first hidden layer over the last (backward). 0 = preserved; blank: no signal "
       "(zeros); boxed: the rule of thumb's init."),
      (save_figure(_heatmaps(cells, s, "steps"), out / "steps_to_target.png"),
       f"Steps until the running mean ({s['window']} steps) of the minibatch loss reaches "
       f"{s['target_loss']} (mean over the seeds that reached it; '-': none did within "
       f"{s['steps']} steps)."),
  ]
  report = Report(title=TITLE, scale=scale, claim=(
      "Glorot init for tanh and sigmoid (Glorot & Bengio 2010), He init for ReLU and its "
      "relatives (He et al. 2015), LeCun normal for SELU (Klambauer et al. 2017): the init "
      "whose variance matches the activation keeps the signal's scale through depth and "
      "trains best; an init not scaled by the fan-in (zeros, N(0, 0.01^2)) does not train "
      "a deep network."), setup=(
      f"MLPs of width {s['width']} and depth {' and '.join(map(str, s['depths']))} (hidden "
      f"layers) on {s['dataset']}, biases 0; inits {', '.join(s['inits'])} (glorot, he, "
      "lecun: truncated normal as in jax/Keras; orthogonal: scale 1); activations "
      f"{', '.join(s['activations'])} (leaky_relu: slope 0.01; gelu: exact erf form); SGD "
      "with momentum 0.9, learning rate"
      f"{'s ' if len(s['learning_rates']) > 1 else ' '}"
      f"{', '.join(map(str, s['learning_rates']))}, batch {s['batch_size']}, "
      f"{s['steps']} steps, {s['seeds']} seed(s); one compiled program per (activation, "
      "depth) holding every init and seed. "
      + ("Each cell is reported at its best learning rate (lowest mean final train loss). "
         if len(s["learning_rates"]) > 1 else "")
      + "Signal summary at init (on 128 training inputs): forward, second moment of the "
      "last hidden layer's pre-activations over the first's, next to the mean-field "
      "prediction (`jaxinit.theory.length_map` iterated from the measured first layer); "
      "backward, norm of the loss gradient at the first hidden layer over the last (both "
      "averaged over seeds in log space). Criteria: a rule holds at a depth when its "
      f"init's mean test accuracy is within {TOLERANCE} of the best init's; it is not "
      f"tested there when no init beat the best constant prediction by {LEARNED}; the "
      "controls hold when both non-fan-scaled inits are more than "
      f"{TOLERANCE} below the rule's init wherever that init learned. Verdict: held if "
      "every tested rule and the controls held, partly held if some tested rule held."))
  checks = _rule_checks(cells, s, chance)
  controls = _compare(report, cells, s, checks, chance)
  tested = [ok for oks in checks.values() for ok in oks if ok is not None]
  if not tested:
    report.verdict = "not tested at this scale"
  elif all(tested) and all(controls):
    report.verdict = "held"
  else:
    report.verdict = "partly held" if any(tested) else "did not hold"
  report.discussion = _discussion(cells, s, checks, scale)
  report.figures = figures
  report.data = data
  return report


def _discussion(cells: list[dict[str, Any]], s: dict[str, Any],
                checks: dict[str, list[bool | None]], scale: str) -> str:
  acts, depths = s["activations"], s["depths"]
  deepest = max(depths)
  c = lambda a, d, i: _cell(cells, a, d, i)  # noqa: E731
  sig = lambda cell, key="log10_forward_ratio": _fmt_signal(cell[key])  # noqa: E731
  decided = {a: [ok for ok in checks[a] if ok is not None] for a in acts}
  good = [a for a in acts if decided[a] and all(decided[a])]
  bad = [a for a in acts if decided[a] and not any(decided[a])]
  mixed = [a for a in acts if decided[a] and a not in good and a not in bad]
  untested = [a for a in acts if not decided[a]]
  text = [
      "In plain words: "
      + (f"the rule of thumb held wherever it could be tested for {', '.join(good)}" if good
         else "no rule of thumb held everywhere it could be tested")
      + (f"; it held at some depths only for {', '.join(mixed)}" if mixed else "")
      + (f"; it did not hold for {', '.join(bad)}" if bad else "")
      + (f"; no init trained {', '.join(untested)} at this scale, so its rule could not be "
         "judged" if untested else "") + "."]
  losses = []
  for act in acts:
    rule = RULES[act][0]
    for depth, ok in zip(depths, checks[act]):
      if ok is False:
        best, mine = _best(cells, act, depth), c(act, depth, rule)
        losses.append(f"{act} at depth {depth}: {best['init']} {best['test_accuracy']:.3f} "
                      f"vs {rule} {mine['test_accuracy']:.3f} (forward signal "
                      f"{sig(best)} vs {sig(mine)})")
  if losses:
    text.append("Where the rule's init lost: " + "; ".join(losses) + ".")
  relu_like = [a for a in acts if RULES[a][0] == "he"]
  if relu_like and "glorot" in s["inits"]:
    parts = [f"{a} {sig(c(a, deepest, 'he'))} with he vs {sig(c(a, deepest, 'glorot'))} "
             f"with glorot (mean field {sig(c(a, deepest, 'glorot'), 'log10_forward_theory')}"
             f"), accuracy {c(a, deepest, 'he')['test_accuracy']:.3f} vs "
             f"{c(a, deepest, 'glorot')['test_accuracy']:.3f}" for a in relu_like]
    text.append(
        f"The ReLU family is where the rule matters most. At depth {deepest} the forward "
        "ratio (last hidden layer's second moment over the first's) was " + "; ".join(parts)
        + ". A relu passes half of a centred signal's second moment, so variance 1/fan_in "
        f"(Glorot, LeCun or orthogonal on these square layers) loses 2^-{deepest - 1} = "
        f"1e{-(deepest - 1) * math.log10(2):.1f} over {deepest - 1} layers, and He's "
        "2/fan_in keeps it.")
    if "gelu" in relu_like:
      keep = 2.0 * gains.second_moment("gelu")
      text.append(
          f"gelu passes a bit less than half (2 E[gelu(z)^2] = {keep:.2f} for z ~ N(0, 1), "
          "less for smaller signals), so even He lets its signal shrink with depth "
          f"({sig(c('gelu', deepest, 'he'))} at depth {deepest}, mean field "
          f"{sig(c('gelu', deepest, 'he'), 'log10_forward_theory')}); still by far the "
          "best of the six.")
  for act in [a for a in ("tanh", "selu") if a in acts and "he" in s["inits"]]:
    he, rule = c(act, deepest, "he"), c(act, deepest, RULES[act][0])
    worse = he["test_accuracy"] < rule["test_accuracy"] - TOLERANCE
    text.append(
        f"{act} with He's doubled variance at depth {deepest}: accuracy "
        f"{he['test_accuracy']:.3f} vs {rule['test_accuracy']:.3f} with {rule['init']}, "
        f"forward signal {sig(he)} vs {sig(rule)}"
        + ((". tanh saturates instead of exploding, so the too-large variance keeps the "
            "signal bounded and" + (" cost accuracy here." if worse else
                                    " did not cost accuracy at this depth and training "
                                    "length."))
           if act == "tanh" else
           (". SELU does not saturate for positive inputs: with sw = 2 its second moment "
            "grows layer after layer" + (", and it trained worse." if worse
                                         else ", yet it trained about as well here."))))
  if "sigmoid" in acts and "sigmoid" in untested:
    parts = [f"{sig(c('sigmoid', d, 'glorot'), 'log10_backward_ratio')} at depth {d}"
             for d in depths]
    back = c("sigmoid", deepest, "glorot")["log10_backward_ratio"]
    text.append(
        "No init trained the sigmoid nets in "
        f"{s['steps']} steps at learning rate {', '.join(map(str, s['learning_rates']))}. "
        "The backward ratio shows why: with Glorot the gradient at the first hidden layer "
        "was " + ", ".join(parts) + " of the last one's, a factor "
        f"{10 ** (-back / (deepest - 1)):.1f} lost per layer at depth {deepest}: sigmoid's "
        "slope is at most 1/4, so a variance that keeps the forward second moment (which "
        "sigmoid's mean of 1/2 props up anyway) shrinks the gradients. This is the difficulty "
        "Glorot & Bengio reported for sigmoid nets; Glorot's init does not cure it, and the "
        "quick run cannot say which init trains them best.")
  if "lecun" in s["inits"] and "glorot" in s["inits"]:
    pairs = [(c(a, d, "lecun"), c(a, d, "glorot")) for a in acts for d in depths]
    kept = [abs(x["test_accuracy"] - y["test_accuracy"]) for x, y in pairs
            if abs(y["log10_forward_ratio"]) <= 1.0]
    lost = [abs(x["test_accuracy"] - y["test_accuracy"]) for x, y in pairs
            if abs(y["log10_forward_ratio"]) > 1.0]
    text.append(
        "Glorot and LeCun differ only where fan-in and fan-out differ: every hidden layer "
        f"here is {s['width']} x {s['width']}, so they draw hidden weights of the same "
        "variance and differ in the input and readout layers alone"
        + (f"; where the forward signal stayed within a decade their accuracies differed "
           f"by at most {max(kept):.3f}" if kept else "")
        + (f", where it was lost by more (the ReLU family at depth {deepest}) by up to "
           f"{max(lost):.3f}, both below He and with seed std up to "
           f"{max(max(x['test_accuracy_std'], y['test_accuracy_std']) for x, y in pairs):.3f}"
           if lost else "")
        + ". 'LeCun for SELU' vs 'Glorot for tanh' is a distinction these networks cannot "
        "test.")
  if "orthogonal" in s["inits"]:
    parts = []
    for act in [a for a in ("tanh", "selu") if a in acts]:
      o, r = c(act, deepest, "orthogonal"), c(act, deepest, RULES[act][0])
      parts.append(f"{act} {o['test_accuracy']:.3f} vs {r['init']} {r['test_accuracy']:.3f}")
    text.append(
        "Orthogonal (scale 1) has the variance 1/fan_in on square layers, so in the ReLU "
        "family it loses the forward signal like LeCun does"
        + (f"; where that variance is right it has the same scale as the rule's init but "
           f"no spread of singular values (at depth {deepest}: " + "; ".join(parts) + ")"
           if parts else "") + ".")
  fast, slow = [], []
  for act in acts:
    for depth, ok in zip(depths, checks[act]):
      if ok is None:
        continue
      reach = {i: c(act, depth, i)["steps_to_target"] for i in s["inits"]}
      reach = {i: v for i, v in reach.items() if math.isfinite(v)}
      rule = RULES[act][0]
      if rule in reach and reach[rule] <= min(reach.values()) * 1.1:
        fast.append(f"{act}/{depth}")
      else:
        first = min(reach, key=reach.get) if reach else None
        slow.append(f"{act}/{depth} ({rule} "
                    + (f"{reach[rule]:.0f}" if rule in reach else "never")
                    + (f", {first} {reach[first]:.0f}" if first else "") + ")")
  if fast or slow:
    text.append(
        f"Speed (steps until the running loss reached {s['target_loss']}): the rule's init "
        "was the fastest, or within 10% of it, for activation/depth "
        + (", ".join(fast) if fast else "none")
        + (f"; not for {'; '.join(slow)}" if slow else "") + ".")
  text.append(
      f"zeros never leaves the symmetric point, and normal(0.01) at width {s['width']} has "
      f"variance {s['width'] * 1e-4:.4f}/fan_in: its signal dies within a few layers (for "
      "sigmoid the forward second moment does not vanish, because sigmoid(0) = 1/2 feeds "
      "every layer the same input-independent value, but the gradient does).")
  if scale == "quick":
    text.append(
        f"Limits of the quick scale: {s['steps']} steps of batch {s['batch_size']}, "
        f"{s['seeds']} seeds and one learning rate ({s['learning_rates'][0]}); the "
        "accuracies are early-training values (MNIST-1D MLPs reach ~0.6-0.7 after thousands "
        f"of steps) and differences below ~{TOLERANCE} are within seed noise, so a rule "
        "'losing' by a few points to an init of the same variance (glorot, lecun, "
        "orthogonal) is weak evidence against it. A single learning rate also favours "
        "inits whose effective step size it happens to suit. `--full` trains width 256, "
        "depths 4, 16, 32 and 64, 3000 steps of batch 128, 5 seeds and learning rates "
        "0.003, 0.01 and 0.03 (each cell at its best), 24 compiled programs, on a GPU.")
  elif scale == "tiny":
    text.append("At the tiny scale (width 8, 20 steps, digits) the numbers say nothing; "
                "the run only checks the code path.")
  return " ".join(text)


def _heatmaps(cells: list[dict[str, Any]], s: dict[str, Any], what: str) -> Any:
  plt = pyplot()
  acts, depths, inits = s["activations"], s["depths"], s["inits"]
  panels = ([("log10_forward_ratio", d) for d in depths]
            + [("log10_backward_ratio", d) for d in depths]) if what == "signal" else [
                ("test_accuracy" if what == "accuracy" else "steps_to_target", d)
                for d in depths]
  ncols, nrows = len(depths), (2 if what == "signal" else 1)
  fig, axes = plt.subplots(nrows, ncols, squeeze=False,
                           figsize=((0.62 * len(acts) + 2.0) * ncols,
                                    (0.5 * len(inits) + 1.3) * nrows))
  for ax, (key, depth) in zip(axes.flat, panels):
    grid = np.array([[_cell(cells, a, depth, i)[key] for a in acts] for i in inits])
    if what == "accuracy":
      im = ax.imshow(grid, cmap="viridis", vmin=0.0, vmax=max(0.5, float(np.nanmax(grid))))
      text = [[f"{v:.2f}" for v in row] for row in grid]
    elif what == "signal":
      shown = np.clip(grid, -SIGNAL_CLIP, SIGNAL_CLIP)
      im = ax.imshow(np.ma.masked_invalid(shown), cmap="RdBu_r", vmin=-SIGNAL_CLIP,
                     vmax=SIGNAL_CLIP)
      text = [["" if not np.isfinite(v) else f"{v:.0f}" if abs(v) >= 10 else f"{v:.1f}"
               for v in row] for row in grid]
    else:
      im = ax.imshow(np.ma.masked_invalid(grid), cmap="magma_r", vmin=0, vmax=s["steps"])
      text = [["-" if not np.isfinite(v) else f"{v:.0f}" for v in row] for row in grid]
    for r, row in enumerate(text):
      for c, label in enumerate(row):
        value = grid[r, c]
        dark = np.isfinite(value) and (value < 0.35 if what == "accuracy" else
                                       abs(value) > 0.6 * SIGNAL_CLIP if what == "signal"
                                       else value > 0.7 * s["steps"])
        ax.text(c, r, label, ha="center", va="center", fontsize=7,
                color="white" if dark else "black")
    for c, act in enumerate(acts):  # box the rule of thumb's init
      ax.add_patch(plt.Rectangle((c - 0.5, inits.index(RULES[act][0]) - 0.5), 1, 1,
                                 fill=False, edgecolor="black", lw=1.8))
    ax.set_xticks(range(len(acts)), acts, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(len(inits)), inits, fontsize=8)
    title = {"test_accuracy": "test accuracy", "steps_to_target": "steps to target loss",
             "log10_forward_ratio": "log10 forward signal last/first",
             "log10_backward_ratio": "log10 gradient first/last"}[key]
    ax.set_title(f"{title}, depth {depth}", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
  fig.tight_layout()
  return fig


STUDY = Study(name="init_vs_activation", title=TITLE, run=run)
