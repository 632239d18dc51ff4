"""Trainable depth of tanh networks and the correlation depth scale xi_c.

Claim (Schoenholz, Gilmer, Ganguli, Sohl-Dickstein 2017, "Deep Information
Propagation"): in a random tanh network with weights ``N(0, sw / N)`` and
biases ``N(0, sb)``, the correlation between two inputs' signals relaxes to
its fixed point over ``xi_c = -1 / ln chi_c`` layers; ``xi_c`` diverges on the
order-to-chaos line (``sw ~ 1.76`` at ``sb = 0.05``). Networks train only
where information survives the depth: in their MNIST and CIFAR-10 heatmaps of
training accuracy over ``sw`` x depth (``sb = 0.05``, width ~300, depths up to
300, ``sw`` in [1, 4]) the trainable region lies under ``L ~ 6 xi_c``, and it
widens with training time toward that curve.

Method: the sweep engine trains tanh MLPs on MNIST-1D with SGD at a fixed
learning rate over a grid of weight variances ``sw`` (the sweep's
``weight_variance`` axis, multiplying a unit-variance ``fan_in`` normal
initializer, so every kernel, the first layer's and the readout's included, is
``N(0, sw / fan_in)``) and depths, biases ``N(0, 0.05)`` (the
``bias_variance`` axis). All ``sw`` values and seeds of one depth train in
one compiled program. :func:`jaxinit.theory.max_trainable_depth` (``6 xi_c``)
is overlaid on the heatmap of final training accuracy, and a cell counts as
trained when the seeds' mean training accuracy reaches a stated threshold;
the report gives how often "trained" agrees with ``L < 6 xi_c`` and, per
``sw``, the deepest trained depth next to ``6 xi_c``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from jaxinit import theory
from jaxinit.sweep import run_sweep
from jaxinit_experiments.study import Report, Study, pick, pyplot, save_figure, write_csv

TITLE = "Edge of chaos: trainable depth of tanh networks vs 6 xi_c (Schoenholz et al. 2017)"

BIAS_VARIANCE = 0.05
# W ~ N(0, 1 / fan_in); the sweep's weight_variance axis multiplies that variance by sw.
UNIT_FAN_IN = {"name": "variance_scaling", "scale": 1.0, "mode": "fan_in", "sampler": "normal"}
LEARNING_RATE = 0.02
# A cell is "trained" when its seeds' mean final training accuracy reaches this (chance: 0.1).
TRAINED_ACCURACY = 0.2
# Verdict thresholds: cells beyond 6 xi_c that fail, and overall agreement with L < 6 xi_c.
UPPER_BOUND_FRACTION, AGREEMENT_FRACTION = 0.9, 0.8


def _settings(scale: str) -> dict[str, Any]:
  return {
      "dataset": pick(scale, "digits", "mnist1d", "mnist1d"),
      "depths": pick(scale, [4], [10, 20, 30, 45, 60],
                     [10, 20, 30, 40, 50, 60, 80, 100, 150, 200, 250, 300]),
      "weight_variances": pick(scale, [1.0, 1.76, 4.0],
                               [1.0, 1.15, 1.3, 1.5, 1.76, 2.0, 2.5, 3.0, 3.5, 4.0],
                               [round(float(v), 2) for v in np.arange(1.0, 4.01, 0.2)]),
      "width": pick(scale, 8, 64, 300),
      "batch": pick(scale, 32, 32, 128),
      "steps": pick(scale, 20, 400, 3000),
      "seeds": pick(scale, 1, 2, 2),
  }


def run(scale: str, out: Path) -> Report:
  """Trains tanh MLPs over weight variance x depth and compares with 6 xi_c."""
  s = _settings(scale)
  sws, depths = s["weight_variances"], s["depths"]
  result = run_sweep({
      "name": "edge_of_chaos", "seeds": s["seeds"], "eval_every": s["steps"], "probes": [],
      "grid": {"dataset": s["dataset"], "model": "mlp", "init": UNIT_FAN_IN,
               "activation": "tanh", "depth": depths, "width": s["width"],
               "weight_variance": sws, "bias_variance": BIAS_VARIANCE, "optimizer": "sgd",
               "learning_rate": LEARNING_RATE, "batch_size": s["batch"],
               "steps": s["steps"]}}, progress=False)
  bound = np.asarray(theory.max_trainable_depth("tanh", np.asarray(sws), BIAS_VARIANCE),
                     np.float64)
  critical = float(theory.critical_weight_variance("tanh", BIAS_VARIANCE))

  # (depth, sw) -> final training accuracies of the seeds (NaN: diverged).
  acc: dict[tuple[int, float], list[float]] = {}
  model_rows = []
  for model, row in zip(result.models, result.rows):
    a = row["final_train_accuracy"]
    a = float("nan") if row["diverged"] or a is None else float(a)
    acc.setdefault((model["depth"], model["weight_variance"]), []).append(a)
    model_rows.append({"depth": model["depth"], "weight_variance": model["weight_variance"],
                       "seed": model.seed, "final_train_accuracy": a,
                       "final_train_loss": row["final_train_loss"],
                       "final_test_accuracy": row["final_test_accuracy"],
                       "diverged": row["diverged"], "diverged_step": row["diverged_step"]})
  # Diverged seeds count as chance (0.1) in the cell's mean: they did not train.
  grid = np.array([[np.mean(np.nan_to_num(acc[(d, w)], nan=0.1)) for w in sws]
                   for d in depths])
  trained = grid >= TRAINED_ACCURACY
  predicted = np.asarray(depths)[:, None] < bound[None, :]
  cell_rows = [{"depth": d, "weight_variance": w, "six_xi_c": float(bound[j]),
                "mean_train_accuracy": float(grid[i, j]), "trained": bool(trained[i, j]),
                "theory_trainable": bool(predicted[i, j])}
               for i, d in enumerate(depths) for j, w in enumerate(sws)]
  deepest = [max([d for i, d in enumerate(depths) if trained[i, j]], default=0)
             for j in range(len(sws))]
  boundary_rows = [{"weight_variance": w, "six_xi_c": float(bound[j]),
                    "xi_c": float(bound[j] / 6), "deepest_trained_depth": deepest[j],
                    "first_untrained_depth": next(
                        (d for i, d in enumerate(depths) if not trained[i, j]), None)}
                   for j, w in enumerate(sws)]
  data = [write_csv(out / "models.csv", model_rows), write_csv(out / "cells.csv", cell_rows),
          write_csv(out / "boundary.csv", boundary_rows)]
  figures = [
      (save_figure(_heatmap(s, grid, trained, critical), out / "heatmap.png"),
       f"Final training accuracy (mean over {s['seeds']} seed(s)) of tanh MLPs over weight "
       f"variance and depth, sb = {BIAS_VARIANCE}; dots: cells counted as trained "
       f"(accuracy >= {TRAINED_ACCURACY}); dashed: the theory's 6 xi_c; dotted: the "
       f"critical sw = {critical:.3f}."),
      (save_figure(_theory_figure(s, deepest, critical), out / "xi_c.png"),
       "The theory's correlation depth scale xi_c and 6 xi_c (jaxinit.theory) over the "
       "weight variance, diverging at the critical point; markers: the deepest depth that "
       "trained at each sw in this run (grey lines: the depths trained; at the deepest one "
       "the marker is only a lower bound)."),
  ]
  report = Report(title=TITLE, scale=scale, claim=(
      "Random tanh networks (biases N(0, 0.05)) are trainable only up to a depth of about "
      "6 xi_c, where xi_c is the mean-field correlation depth scale; xi_c diverges at the "
      "order-to-chaos transition (sw ~ 1.76), so only near it do very deep networks train "
      "(Schoenholz et al. 2017, \"Deep Information Propagation\")."), setup=(
      f"Tanh MLPs of width {s['width']} on {s['dataset']} with depths "
      f"{', '.join(map(str, depths))} (hidden layers) and weight variances "
      f"{', '.join(map(str, sws))}: every kernel N(0, sw / fan_in) (first layer and readout "
      f"included), biases N(0, {BIAS_VARIANCE}); SGD, learning rate {LEARNING_RATE}, batch "
      f"{s['batch']}, {s['steps']} steps, {s['seeds']} seed(s) per cell, trained by the "
      "sweep engine (one compiled program per depth). Trained: the seeds' mean final "
      f"accuracy on 1000 training examples >= {TRAINED_ACCURACY} (chance 0.1; a diverged "
      "seed counts as 0.1). Theory: jaxinit.theory.max_trainable_depth = 6 xi_c at each sw. "
      f"Criteria: (1) at least {UPPER_BOUND_FRACTION:.0%} of the cells deeper than 6 xi_c "
      f"fail to train (6 xi_c bounds the trainable depth); (2) 'trained' agrees with "
      f"'L < 6 xi_c' in at least {AGREEMENT_FRACTION:.0%} of all cells."))
  checks = _compare(report, s, grid, trained, predicted, bound, deepest, critical)
  tested = [c for c in checks if c is not None]
  report.verdict = ("not tested at this scale" if len(tested) < len(checks) else "held"
                    if all(tested) else "partly held" if any(tested) else "did not hold")
  report.discussion = _discussion(s, grid, trained, predicted, bound, critical, model_rows,
                                  checks, scale)
  report.figures = figures
  report.data = data
  return report


def _fraction(mask: np.ndarray) -> str:
  return f"{int(mask.sum())}/{mask.size}" if mask.size else "0/0"


def _compare(report: Report, s: dict[str, Any], grid: np.ndarray, trained: np.ndarray,
             predicted: np.ndarray, bound: np.ndarray, deepest: list[int],
             critical: float) -> list[bool | None]:
  sws, depths = s["weight_variances"], s["depths"]
  report.compare("critical weight variance at sb = 0.05 (xi_c diverges)", "~1.76",
                 f"{critical:.3f} (jaxinit.theory)")
  beyond = ~predicted
  failed_beyond = ~trained[beyond]
  # None (untested) when no cell of the grid lies beyond 6 xi_c.
  ok_bound = bool(failed_beyond.mean() >= UPPER_BOUND_FRACTION) if beyond.any() else None
  report.compare("cells deeper than 6 xi_c that did not train",
                 "all (none train beyond ~6 xi_c)",
                 f"{_fraction(failed_beyond)}"
                 + ("" if beyond.any() else " (no cell of this grid lies beyond 6 xi_c)"),
                 ok_bound)
  within = trained[predicted]
  report.compare("cells shallower than 6 xi_c that trained",
                 "all, given enough training steps", _fraction(within))
  agree = trained == predicted
  ok_agree = agree.mean() >= AGREEMENT_FRACTION
  report.compare("cells where 'trained' agrees with 'L < 6 xi_c'", "",
                 f"{_fraction(agree)} ({agree.mean():.0%})", ok_agree)
  # Robustness of the agreement to the accuracy threshold.
  others = [f"{th:.2f}: {((grid >= th) == predicted).mean():.0%}"
            for th in (TRAINED_ACCURACY - 0.05, TRAINED_ACCURACY + 0.05)]
  report.compare("the same agreement at other accuracy thresholds", "", "; ".join(others))
  ratios = [f"{w}: {d} vs {b:.0f}" for w, d, b in zip(sws, deepest, bound)
            if b < max(depths) * 2]
  report.compare("deepest trained depth vs 6 xi_c, per sw where 6 xi_c < 2x the deepest "
                 "depth", "the trainable depth ~ 6 xi_c", "; ".join(ratios) or "none")
  # Where the boundary is resolved (a trained and an untrained depth at that sw), is 6 xi_c
  # between the deepest trained depth and the first untrained depth above it?
  place = {"bracketed": 0, "boundary below 6 xi_c": 0, "boundary above 6 xi_c": 0}
  for j in range(len(sws)):
    if 0 < deepest[j] and not trained[:, j].all():
      above = min((d for i, d in enumerate(depths) if d > deepest[j] and not trained[i, j]),
                  default=None)
      if above is None:
        continue
      key = ("boundary above 6 xi_c" if deepest[j] >= bound[j] else "bracketed"
             if above > bound[j] else "boundary below 6 xi_c")
      place[key] += 1
  report.compare("per sw with a resolved boundary: where 6 xi_c sits relative to (deepest "
                 "trained depth, next untrained depth)", "inside (the boundary is ~6 xi_c)",
                 ", ".join(f"{k} {v}" for k, v in place.items()))
  at_deepest = grid[-1]
  best = sws[int(np.argmax(at_deepest))]
  report.compare(f"sw with the best accuracy at depth {depths[-1]}",
                 "near the critical point (only there is xi_c large)",
                 f"{best} (accuracy {at_deepest.max():.3f}; 6 xi_c = "
                 f"{bound[int(np.argmax(at_deepest))]:.0f})")
  return [ok_bound, ok_agree]


def _discussion(s: dict[str, Any], grid: np.ndarray, trained: np.ndarray,
                predicted: np.ndarray, bound: np.ndarray, critical: float,
                rows: list[dict[str, Any]], checks: list[bool | None], scale: str) -> str:
  sws, depths = np.asarray(s["weight_variances"]), np.asarray(s["depths"])
  missed = int((predicted & ~trained).sum())
  extra = int((~predicted & trained).sum())
  text = (f"Of the {trained.size} cells, {missed} lie within 6 xi_c but did not reach the "
          f"accuracy threshold and {extra} trained beyond 6 xi_c.")
  deepest = np.array([depths[trained[:, j]].max(initial=0) for j in range(len(sws))])
  # Only where the grid resolves the boundary: some depth trained and a deeper one did not.
  resolved = (deepest > 0) & (deepest < depths.max())
  ratio = {}
  for side, mask in (("ordered", resolved & (sws < critical)),
                     ("chaotic", resolved & (sws > critical))):
    if mask.any():
      ratio[side] = float(np.median(deepest[mask] / bound[mask]))
      text += (f" Where the grid resolves the boundary on the {side} side "
               f"(sw {', '.join(map(str, sws[mask]))}), the deepest trained depth of the grid "
               f"is {ratio[side]:.2f} x 6 xi_c (median).")
  text += (
      " 6 xi_c is the paper's limit after long training; their heatmaps at several "
      "training times show the trainable region growing with training, so a short run is "
      "expected to fall short of the curve (cells within 6 xi_c that have not trained yet) "
      "while still respecting it as an upper bound.")
  if len(ratio) == 2 and ratio["chaotic"] < ratio["ordered"]:
    chi1_max = float(theory.chi1("tanh", float(sws.max()), BIAS_VARIANCE))
    text += (
        " The run falls shorter on the chaotic side: there the back-propagated gradient "
        f"also grows as chi1^L (chi1 = {chi1_max:.2f} at sw = {sws.max()}), which at a fixed "
        "SGD learning rate hampers deep networks that the correlation scale alone would "
        "allow.")
  cell = {(r["depth"], r["weight_variance"]): trained[list(depths).index(r["depth"]),
                                                      list(sws).index(r["weight_variance"])]
          for r in rows}
  failed = [r["final_train_loss"] for r in rows
            if not cell[(r["depth"], r["weight_variance"])] and not r["diverged"]]
  diverged = sum(bool(r["diverged"]) for r in rows)
  text += f" {diverged} of {len(rows)} models diverged"
  if failed:
    text += (f"; the models of untrained cells ended at a mean training loss of "
             f"{np.mean(failed):.3f} (chance: ln 10 = 2.303)")
  text += "."
  if s["seeds"] > 1:
    per_cell: dict[tuple[int, float], list[bool]] = {}
    for r in rows:
      per_cell.setdefault((r["depth"], r["weight_variance"]), []).append(
          np.nan_to_num(r["final_train_accuracy"], nan=0.1) >= TRAINED_ACCURACY)
    split = sum(len(set(v)) > 1 for v in per_cell.values())
    text += (f" In {split} of {len(per_cell)} cells the seeds disagree (one reaches the "
             "threshold, another does not): single cells near the boundary are noisy.")
  if checks[0] is None:
    text += " No cell of this grid lies beyond 6 xi_c, so the bound is untested."
  elif not checks[0]:
    text += (f" Criterion (1) failed: {extra} cell(s) trained beyond 6 xi_c. At width "
             f"{s['width']} the mean-field depth scales are only approximate (the theory "
             "is exact as the width grows).")
  text += (
      " How this differs from the paper: Schoenholz et al. trained width-300 networks of up "
      "to 300 layers on MNIST and CIFAR-10 for many thousands of steps; this run uses "
      f"width {s['width']}, depths up to {depths.max()}, {s['steps']} SGD steps and "
      f"{s['dataset']}, where the best cell reaches {np.nanmax(grid):.2f} training accuracy "
      f"in that time, hence the low threshold ({TRAINED_ACCURACY}, twice chance).")
  if scale == "tiny":
    text += (" At the tiny scale (one depth, 8 units, 20 steps on digits) the numbers say "
             "nothing; the run only checks the code path.")
  elif scale == "quick":
    text += (" `--full` (a GPU run) trains width 300, depths 10 to 300 (12 depths), sw from "
             "1 to 4 in steps of 0.2, batch 128, 3000 steps, 2 seeds: the paper's grid, "
             "where the boundary should approach 6 xi_c on both sides of the critical "
             "point.")
  return text


def _edges(values: list[float]) -> np.ndarray:
  """Cell edges halfway between grid values (the outer ones mirrored)."""
  v = np.asarray(values, np.float64)
  if len(v) == 1:
    return np.array([v[0] - 0.5, v[0] + 0.5])
  mid = (v[1:] + v[:-1]) / 2
  return np.concatenate([[2 * v[0] - mid[0]], mid, [2 * v[-1] - mid[-1]]])


def _fine_bound(sws: list[float], critical: float) -> tuple[np.ndarray, np.ndarray]:
  """6 xi_c on a fine sw grid spanning the run's (NaN-free, capped for plotting)."""
  fine = np.union1d(np.linspace(min(sws), max(sws), 301),
                    critical * (1 + np.array([-1e-3, -3e-4, 3e-4, 1e-3])))
  fine = fine[(fine >= min(sws)) & (fine <= max(sws))]
  return fine, np.asarray(theory.max_trainable_depth("tanh", fine, BIAS_VARIANCE), np.float64)


def _heatmap(s: dict[str, Any], grid: np.ndarray, trained: np.ndarray, critical: float) -> Any:
  plt = pyplot()
  sws, depths = s["weight_variances"], s["depths"]
  fig, ax = plt.subplots(figsize=(7, 4.6))
  mesh = ax.pcolormesh(_edges(sws), _edges(depths), grid, cmap="viridis", vmin=0.1,
                       vmax=max(0.2, float(np.nanmax(grid))), shading="flat")
  fig.colorbar(mesh, ax=ax, label="final training accuracy")
  ys, xs = np.nonzero(trained)
  ax.plot(np.asarray(sws)[xs], np.asarray(depths)[ys], "w.", ms=5, label="trained")
  fine, bound = _fine_bound(sws, critical)
  ax.plot(fine, bound, "w--", lw=2, label="6 xi_c (theory)")
  ax.axvline(critical, color="w", ls=":", lw=1)
  ax.set_ylim(_edges(depths)[0], _edges(depths)[-1])
  ax.set_xlabel("weight variance sw")
  ax.set_ylabel("depth L (hidden layers)")
  ax.set_title(f"tanh, sb = {BIAS_VARIANCE}, width {s['width']}, {s['steps']} SGD steps",
               fontsize=10)
  ax.legend(loc="upper right", fontsize=8, facecolor="gray", framealpha=0.5)
  fig.tight_layout()
  return fig


def _theory_figure(s: dict[str, Any], deepest: list[int], critical: float) -> Any:
  plt = pyplot()
  sws = s["weight_variances"]
  fig, ax = plt.subplots(figsize=(7, 4))
  fine, bound = _fine_bound(sws, critical)
  ax.plot(fine, bound / 6, label="xi_c")
  ax.plot(fine, bound, "--", label="6 xi_c")
  for d in s["depths"]:
    ax.axhline(d, color="gray", lw=0.5, alpha=0.5)
  ax.plot(sws, np.maximum(deepest, 0.5), "ko", ms=5, label="deepest trained (this run)")
  ax.axvline(critical, color="k", ls=":", lw=1, label=f"critical sw = {critical:.3f}")
  ax.set_yscale("log")
  ax.set_ylim(1, max(1e3, 3 * max(s["depths"])))
  ax.set_xlabel("weight variance sw")
  ax.set_ylabel("layers")
  ax.set_title(f"tanh, sb = {BIAS_VARIANCE}: correlation depth scale", fontsize=10)
  ax.legend(fontsize=8)
  fig.tight_layout()
  return fig


STUDY = Study(name="edge_of_chaos", title=TITLE, run=run)
