"""Too small and too large random initialization: vanishing and exploding signals.

Claim (the second lesson of every introduction to initialization): drawing the
weights from ``N(0, sigma^2)`` with a fixed ``sigma`` that ignores the layer's
fan-in makes a deep network's signals vanish (``sigma`` too small: the
activations and the back-propagated gradients shrink geometrically with depth)
or explode (``sigma`` too large: relu activations and gradients grow
geometrically; tanh saturates), and training stalls or diverges; a
fan-scaled ``sigma ~ 1 / sqrt(fan_in)`` (LeCun for tanh, He ``sqrt(2 / fan_in)``
for relu) keeps them of order one.

Mean-field theory says by how much. With ``sw = width * sigma^2`` the
pre-activations' second moment obeys ``q^{l+1} = sw E[phi(sqrt(q^l) z)^2]``
(:func:`jaxinit.theory.predict_layers`): per layer ``sw / 2`` for relu, ``sw``
for tanh while the signal is small. Gradients with respect to the
pre-activations go back by ``||dL/dh^l||^2 = sw E[phi'(h^l)^2]
||dL/dh^{l+1}||^2``: ``sw / 2`` per layer for relu, ``sw`` for tanh at small
``q``, and for a saturated tanh ``sw E[phi'^2]``, which exceeds 1 (the chaotic
phase), so the gradients of a too-large tanh net grow toward the input even
though its activations stay bounded.

Method: one sweep (two compiled programs, one per activation) of deep MLPs on
MNIST-1D with ``normal(sigma)`` for several ``sigma`` and the fan-scaled
``variance_scaling(1 or 2, "fan_in", normal)``; per-layer second moment and
gradient norm at initialization (the sweep's ``second_moment`` and
``grad_norm`` probes), tanh saturation (:func:`jaxinit.probes.saturated_fraction`)
from the initial params, all against the theory; then the same networks
trained with SGD + momentum.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxinit import probes, theory
from jaxinit.models import MLP, functional
from jaxinit.sweep import load_dataset, run_sweep
from jaxinit_experiments.study import (Report, Study, pick, pyplot, save_figure, verdict_of,
                                       write_csv)

TITLE = "Too small and too large random init: vanishing and exploding signals"

SIGMAS = (0.01, 0.05, 0.1, 0.5, 1.0)
SMALL, LARGE = (0.01, 0.05), (0.5, 1.0)
# Fan-scaled normals: label -> variance_scaling scale (variance scale / fan_in).
FAN_SCALED = {"lecun": 1.0, "he": 2.0}
MATCHED = {"relu": "he", "tanh": "lecun"}
FLOAT32_TINY = 1e-37
SATURATION = math.atanh(0.99)  # |tanh(h)| > 0.99 <=> |h| > 2.647


def _settings(scale: str) -> dict[str, Any]:
  return {
      "dataset": pick(scale, "digits", "mnist1d", "mnist1d"),
      "activations": pick(scale, ["tanh"], ["relu", "tanh"], ["relu", "tanh"]),
      "depth": pick(scale, 4, 20, 50),
      "width": pick(scale, 8, 64, 256),
      "steps": pick(scale, 20, 1000, 5000),
      "eval_every": pick(scale, 10, 100, 250),
      "seeds": pick(scale, 1, 1, 3),
      "learning_rate": 0.01,
  }


def _inits() -> dict[str, Any]:
  specs: dict[str, Any] = {f"normal({s:g})": {"name": "normal", "stddev": s} for s in SIGMAS}
  for label, scale in FAN_SCALED.items():
    specs[label] = {"name": "variance_scaling", "scale": scale, "mode": "fan_in",
                    "sampler": "normal"}
  return specs


def _weight_variance(label: str, spec: Any, fan_in: int) -> float:
  """Per-element variance of a kernel with this fan-in."""
  if label in FAN_SCALED:
    return spec["scale"] / fan_in
  return spec["stddev"] ** 2


def _expect_dphi2(activation: str, q: float) -> float:
  """``E[phi'(sqrt(q) z)^2]``, z standard normal (a fine grid: tanh' is narrow when q is big)."""
  if activation == "relu":
    return 0.5
  z = np.linspace(-12.0, 12.0, 48001)
  weight = np.exp(-z**2 / 2) / math.sqrt(2 * math.pi)
  dphi = 1.0 / np.cosh(math.sqrt(max(q, 0.0)) * z) ** 2
  return float(np.sum(weight * dphi**2) * (z[1] - z[0]))


def _predicted_saturation(q: float) -> float:
  """``P(|tanh(h)| > 0.99)`` for ``h ~ N(0, q)``."""
  if q <= 0:
    return 0.0
  return math.erfc(SATURATION / math.sqrt(2 * q))


def _predict(activation: str, sw: float, q1: float, depth: int) -> dict[str, np.ndarray]:
  """Mean-field ``q^l`` (l = 1..depth), gradient norms relative to layer ``depth``."""
  with np.errstate(all="ignore"):  # q underflows for tiny sw: c = 0/0 is not used
    q = np.asarray(theory.predict_layers(activation, sw, 0.0, depth, q0=q1 / sw).q1,
                   np.float64)[1:]
  # log10 ||dL/dh^l|| - log10 ||dL/dh^L||, summed from the top down.
  steps = [0.5 * math.log10(max(sw * _expect_dphi2(activation, ql), 1e-300)) for ql in q[:-1]]
  log_grad = np.concatenate([np.cumsum(steps[::-1])[::-1], [0.0]])
  return {"q": q, "log_grad": log_grad}


def _log10(x: float) -> float:
  """log10, with -inf for float32 underflow (and 0), +inf for overflow, nan for nan."""
  if math.isnan(x) or math.isinf(x):
    return x
  return math.log10(x) if x > FLOAT32_TINY else -math.inf


def _fmt_log(x: float) -> str:
  if x == -math.inf:
    return "underflow"
  if x == math.inf:
    return "overflow"
  if math.isnan(x):
    return "nan (overflow)"
  return f"{x:+.1f}"


def run(scale: str, out: Path) -> Report:
  """Probes signals across depth at init for several init scales, then trains."""
  s = _settings(scale)
  dataset = load_dataset(s["dataset"])
  inits = _inits()
  depth, width = s["depth"], s["width"]
  result = run_sweep({
      "name": "vanishing_exploding", "seeds": s["seeds"], "eval_every": s["eval_every"],
      "probes": ["second_moment", "grad_norm"], "probe_batch": 128,
      "grid": {"dataset": s["dataset"], "model": "mlp", "init": list(inits.values()),
               "activation": s["activations"], "depth": depth, "width": width,
               "optimizer": "momentum", "learning_rate": s["learning_rate"],
               "batch_size": 128, "steps": s["steps"]}}, progress=False, keep_params=True)
  x_probe = np.asarray(dataset.x_train[:128])
  q0 = float(np.mean(x_probe**2))
  saturation = _saturation(result, dataset, s, x_probe)

  layer_rows, summary = [], []
  measured: dict[tuple[str, str], dict[str, np.ndarray]] = {}
  predicted: dict[tuple[str, str], dict[str, np.ndarray]] = {}
  for i, model in enumerate(result.models):
    label = next(k for k, v in inits.items() if v == model["init"])
    act = model["activation"]
    q = np.asarray(result.curves["probe_second_moment"][i, 0], np.float64)
    g = np.asarray(result.curves["probe_grad_norm"][i, 0], np.float64)
    measured.setdefault((act, label), {"q": [], "g": [], "loss": [], "sat": []})
    m = measured[(act, label)]
    m["q"].append(q)
    m["g"].append(g)
    loss = np.asarray(result.curves["train_loss"][i], np.float64)
    diverged = result.rows[i]["diverged_step"]
    if diverged is not None:  # the params froze at the last finite step: hide the rest
      loss = np.where(result.curves["eval_step"][i] >= diverged, np.nan, loss)
    m["loss"].append(loss)
    m["sat"].append(saturation[i])
    row = result.rows[i]
    summary.append({"activation": act, "init": label, "seed": model.seed,
                    "q_first": q[0], "q_last": q[-1], "grad_first": g[0], "grad_last": g[-1],
                    "saturated_last": saturation[i][-1],
                    "init_train_loss": float(result.curves["train_loss"][i, 0]),
                    "final_train_loss": row["final_train_loss"],
                    "final_test_accuracy": row["final_test_accuracy"],
                    "diverged_step": row["diverged_step"]})
  for (act, label), m in measured.items():
    spec = inits[label]
    v_in = _weight_variance(label, spec, dataset.in_features)
    sw = width * _weight_variance(label, spec, width)
    p = _predict(act, sw, dataset.in_features * v_in * q0, depth)
    predicted[(act, label)] = p
    q_med, g_med = np.median(m["q"], axis=0), np.median(m["g"], axis=0)
    sat = np.median(m["sat"], axis=0)
    for layer in range(depth):
      pred_g = (10 ** (p["log_grad"][layer]) * g_med[-1]) if g_med[-1] > 0 else math.nan
      layer_rows.append({
          "activation": act, "init": label, "layer": layer + 1, "sw": sw,
          "q_measured": q_med[layer], "q_predicted": p["q"][layer],
          "grad_measured": g_med[layer], "grad_predicted": pred_g,
          "saturated_measured": sat[layer] if act == "tanh" else None,
          "saturated_predicted": _predicted_saturation(p["q"][layer]) if act == "tanh"
          else None})
  data = [write_csv(out / "layers.csv", layer_rows), write_csv(out / "training.csv", summary)]
  fig = _figure(s, inits, measured, predicted, result)
  figures = [(save_figure(fig, out / "vanishing_exploding.png"),
              "Per activation (rows): second moment of the pre-activations across depth at "
              "initialization (solid: measured, median over seeds; dashed: mean-field "
              "prediction), norm of the loss gradient with respect to each layer's "
              "pre-activations (dashed: prediction anchored at the last layer), and the "
              "training loss (diverged runs are marked in the legend; their curve ends).")]

  report = Report(title=TITLE, scale=scale, claim=(
      "Weights drawn from N(0, sigma^2) with sigma fixed regardless of fan-in make signals "
      "vanish geometrically with depth when sigma is too small, and explode (relu) or "
      "saturate (tanh) when it is too large, so training stalls or diverges; the fan-scaled "
      "sigma (LeCun 1/sqrt(fan_in) for tanh, He sqrt(2/fan_in) for relu) keeps activations "
      "and gradients of order one (the standard lesson of introductions to initialization; "
      "the per-layer factors are the mean-field ones of Poole et al. 2016 and Schoenholz et "
      "al. 2017)."), setup=(
      f"MLPs of depth {depth}, width {width}, biases 0, activations "
      f"{', '.join(s['activations'])}, on {s['dataset']}; inits "
      f"{', '.join(inits)} (lecun/he: normal with variance 1 or 2 over fan-in), the same "
      f"init for every layer; {s['seeds']} seed(s). At init: per-layer second moment "
      "q^l of the pre-activations and gradient norm with respect to them (sweep probes, 128 "
      "training inputs), tanh saturation (fraction of |tanh| > 0.99); theory: "
      "`jaxinit.theory.predict_layers` for q^l (first layer from the input's second moment "
      "and fan-in), gradient ratios from the per-layer factor sw E[phi'(h^l)^2]. Training: "
      f"SGD + momentum 0.9, learning rate {s['learning_rate']}, batch 128, {s['steps']} "
      "steps. Criteria (log10 ratios of the last to the first hidden layer): sigma in "
      f"{SMALL} vanishes (q ratio < 1e-6 and gradient ratio g^1/g^L < 1e-3, or "
      "underflow) and stalls (final train loss >= 0.9 ln 10) for both activations; "
      f"sigma in {LARGE} with relu explodes (q ratio > 1e6, g^1/g^L > 1e3) and diverges or "
      "stalls; with tanh it saturates (the last layer's rms pre-activation sqrt(q^L) lies in "
      "the flat tail, beyond atanh(0.99) = 2.65) and stalls; the "
      "matched fan-scaled init (he for relu, lecun for tanh) changes q and the gradient norm "
      "by less than a factor 4L over the L layers (at most polynomially, as the 1/(2l) "
      "decay of critical tanh) and trains (final train loss < 0.6 ln 10); theory and "
      "measurement agree within one decade on every log10 ratio that does not underflow."))
  checks = _compare(report, s, summary, measured, predicted)
  report.verdict = verdict_of(checks)
  report.discussion = _discussion(s, summary, measured, scale)
  report.figures = figures
  report.data = data
  return report


def _saturation(result: Any, dataset: Any, s: dict[str, Any], x: np.ndarray) -> list[np.ndarray]:
  """Per model, the per-layer fraction of saturated tanh units at init (zeros for relu)."""
  fns = {}
  out = []
  for i, model in enumerate(result.models):
    act = model["activation"]
    if act not in fns:
      net = functional(MLP.abstract(in_features=dataset.in_features,
                                    out_features=dataset.num_outputs, width=s["width"],
                                    depth=s["depth"], activation=act))[0]
      fns[act] = jax.jit(lambda p, net=net: probes.saturated_fraction(
          net.apply(p, x, capture=True)[1]["preactivations"], "tanh"))
    out.append(np.asarray(fns[act](result.initial_params[i])) if act == "tanh"
               else np.zeros(s["depth"]))
  return out


def _ratios(m: dict[str, list[np.ndarray]]) -> tuple[float, float]:
  """Median log10 q^L / q^1 and log10 g^1 / g^L over seeds (-inf: underflow)."""
  q = np.median(m["q"], axis=0)
  g = np.median(m["g"], axis=0)
  log_q = _log10(q[-1]) - _log10(q[0]) if q[0] > FLOAT32_TINY else math.nan
  if g[-1] <= FLOAT32_TINY:
    log_g = -math.inf  # nothing reaches even the last layer
  elif not np.isfinite(g).all():
    log_g = math.nan  # inf or nan: the backward pass overflowed
  else:
    log_g = _log10(g[0]) - _log10(g[-1])
  return log_q, log_g


def _stalled(rows: list[dict[str, Any]]) -> bool:
  return all(r["diverged_step"] is None and r["final_train_loss"] >= 0.9 * math.log(10)
             for r in rows)


def _compare(report: Report, s: dict[str, Any], summary: list[dict[str, Any]],
             measured: dict, predicted: dict) -> list[bool]:
  checks = []
  depth = s["depth"]
  bound = math.log10(4 * depth)

  def rows_of(act: str, label: str) -> list[dict[str, Any]]:
    return [r for r in summary if r["activation"] == act and r["init"] == label]

  def pred_ratios(act: str, label: str) -> tuple[float, float]:
    p = predicted[(act, label)]
    return _log10(p["q"][-1]) - _log10(p["q"][0]), p["log_grad"][0]

  def line(act: str, label: str) -> str:
    log_q, log_g = _ratios(measured[(act, label)])
    pq, pg = pred_ratios(act, label)
    return (f"log10 q^L/q^1 {_fmt_log(log_q)} (theory {_fmt_log(pq)}), log10 g^1/g^L "
            f"{_fmt_log(log_g)} (theory {_fmt_log(pg)})")

  for act in s["activations"]:
    # Too small.
    for sigma in SMALL:
      label = f"normal({sigma:g})"
      log_q, log_g = _ratios(measured[(act, label)])
      rows = rows_of(act, label)
      ok = (log_q < -6 or log_q == -math.inf) and (log_g < -3) and _stalled(rows)
      report.compare(f"{act}, {label}: signals across {depth} layers at init; training",
                     "vanish geometrically; training stalls",
                     line(act, label) + f"; final train loss "
                     f"{np.mean([r['final_train_loss'] for r in rows]):.2f}", ok)
      checks.append(ok)
    # Too large.
    for sigma in LARGE:
      label = f"normal({sigma:g})"
      log_q, log_g = _ratios(measured[(act, label)])
      rows = rows_of(act, label)
      diverged = all(r["diverged_step"] is not None for r in rows)
      outcome = ("diverged at step " + ", ".join(str(r["diverged_step"]) for r in rows)
                 if diverged else f"final train loss "
                 f"{np.mean([r['final_train_loss'] for r in rows]):.2f}")
      if act == "relu":
        # A forward pass that overflows float32 (q = inf, gradients nan) exploded too.
        overflow = log_q == math.inf and not math.isfinite(log_g)
        ok = log_q > 6 and (log_g > 3 or overflow) and (diverged or _stalled(rows))
        paper = "explode geometrically; training diverges or stalls"
        text = line(act, label) + f"; {outcome}"
      else:
        sat = float(np.median([r["saturated_last"] for r in rows]))
        rms = math.sqrt(float(np.median([r["q_last"] for r in rows])))
        pq = predicted[(act, label)]["q"][-1]
        ok = rms > SATURATION and (diverged or _stalled(rows))
        paper = "tanh saturates; training stalls"
        text = (f"last layer: rms pre-activation {rms:.1f} (theory {math.sqrt(pq):.1f}), "
                f"{100 * sat:.0f}% of units saturated (theory "
                f"{100 * _predicted_saturation(pq):.0f}%); " + line(act, label)
                + f"; {outcome}")
      report.compare(f"{act}, {label}: signals across {depth} layers at init; training",
                     paper, text, ok)
      checks.append(ok)
    # Matched fan-scaled.
    label = MATCHED[act]
    log_q, log_g = _ratios(measured[(act, label)])
    rows = rows_of(act, label)
    loss = float(np.mean([r["final_train_loss"] for r in rows]))
    acc = float(np.mean([r["final_test_accuracy"] for r in rows]))
    ok = (abs(log_q) <= bound and abs(log_g) <= bound and loss < 0.6 * math.log(10)
          and not any(r["diverged_step"] is not None for r in rows))
    report.compare(f"{act}, {label} (fan-scaled, matched): signals across {depth} layers; "
                   "training", "O(1) across depth; trains",
                   line(act, label) + f"; final train loss {loss:.2f}, test accuracy "
                   f"{acc:.3f}", ok)
    checks.append(ok)
  # Theory vs measurement.
  worst, where = 0.0, ""
  for key, m in measured.items():
    log_q, log_g = _ratios(m)
    pq, pg = pred_ratios(*key)
    for a, b in ((log_q, pq), (log_g, pg)):
      if math.isfinite(a) and math.isfinite(b) and abs(a - b) > worst:
        worst, where = abs(a - b), f"{key[0]}, {key[1]}"
  ok = worst <= 1.0
  report.compare("mean-field theory vs measurement: largest gap between log10 ratios "
                 "(all inits, both signals)", "agree (within one decade)",
                 f"{worst:.2f} decades ({where})", ok)
  checks.append(ok)
  return checks


def _discussion(s: dict[str, Any], summary: list[dict[str, Any]], measured: dict,
                scale: str) -> str:
  width, depth = s["width"], s["depth"]
  acts = s["activations"]

  def decades(act: str, label: str) -> str:
    log_q, log_g = _ratios(measured[(act, label)])
    return f"{_fmt_log(log_q)} decades of q and {_fmt_log(log_g)} of gradient norm"

  parts = [
      f"Per layer a fixed sigma multiplies q by sw / 2 (relu) or about sw (tanh, small "
      f"signals), sw = width sigma^2 = {width} sigma^2, and the squared gradient norm by "
      "the same factor on the way back; theory and measurement agree to a fraction of a "
      "decade wherever float32 can represent the numbers."]
  for act in acts:
    parts.append(f"{act}: sigma = 0.05 changes them by {decades(act, 'normal(0.05)')} over "
                 f"{depth} layers, sigma = 1 by {decades(act, 'normal(1)')}, the matched "
                 f"fan-scaled init by {decades(act, MATCHED[act])}.")
  relu_large = [r for r in summary if r["activation"] == "relu"
                and r["init"] in {f"normal({x:g})" for x in LARGE}]
  if relu_large and all(r["diverged_step"] is not None for r in relu_large):
    parts.append("The exploding relu nets diverge within the first steps (the loss or an "
                 "update overflows).")
  if "tanh" in acts:
    spread = max(abs(_ratios(measured[("tanh", f"normal({x:g})")])[0]) for x in LARGE)
    parts.append(
        "A too-large tanh net is different: its activations saturate and stop growing at "
        "the fixed point of the length map (q^L/q^1 within a factor "
        f"{10 ** spread:.1f}), but its gradients grow toward the input, because "
        "sw E[phi'^2] > 1 there (the chaotic phase of Poole et al. 2016): saturation does not "
        "make the gradients vanish, it makes the input-output map chaotic, and training "
        "stalls all the same.")
  if set(acts) == {"relu", "tanh"}:
    parts.append(
        "The fan-scaled init must match the activation: LeCun (variance 1/fan_in) keeps "
        "tanh at the critical point, where q decays only like 1/(2l) and gradients stay "
        f"O(1), but halves relu's q at every layer ({decades('relu', 'lecun')}); He "
        "(2/fan_in) is relu's fixed point.")
  parts.append("Gradient norms reported as 'underflow' are float32 zeros: the probe sums "
               "squared entries, which underflow below about 1e-19 even where the entries "
               "themselves are representable (relu: pre-activations that underflow to 0 "
               "also zero the derivative).")
  if scale == "tiny":
    parts.append("At the tiny scale (depth 4, width 8, 20 steps on digits) the factors "
                 "compound over too few layers and training is too short for the criteria "
                 "to mean anything; the run checks the code path.")
  elif scale == "quick":
    parts.append("The quick run uses one seed, depth 20, width 64 and 1000 steps; `--full` "
                 "runs depth 50, width 256, 5000 steps and 3 seeds, where the geometric "
                 "factors compound over more layers and the finite-width scatter around "
                 "the theory shrinks.")
  return " ".join(parts)


def _figure(s: dict[str, Any], inits: dict[str, Any], measured: dict, predicted: dict,
            result: Any) -> Any:
  plt = pyplot()
  acts = s["activations"]
  fig, axes = plt.subplots(len(acts), 3, figsize=(14, 3.8 * len(acts)), squeeze=False)
  cmap = plt.get_cmap("viridis")
  colors = {label: cmap(i / max(1, len(SIGMAS) - 1)) for i, label in
            enumerate(f"normal({x:g})" for x in SIGMAS)}
  colors.update({"lecun": "tab:red", "he": "black"})
  layers = np.arange(1, s["depth"] + 1)
  steps = np.asarray(result.curves["eval_step"][0])
  for row, act in enumerate(acts):
    ax_q, ax_g, ax_l = axes[row]
    for label in inits:
      m, p = measured[(act, label)], predicted[(act, label)]
      q = np.maximum(np.median(m["q"], axis=0), 1e-45)
      g = np.maximum(np.median(m["g"], axis=0), 1e-45)
      c = colors[label]
      ax_q.plot(layers, q, color=c, label=label)
      ax_q.plot(layers, np.maximum(p["q"], 1e-45), color=c, ls="--", lw=0.8)
      ax_g.plot(layers, g, color=c, label=label)
      if g[-1] > 1e-40:
        ax_g.plot(layers, np.maximum(g[-1] * 10 ** p["log_grad"], 1e-45), color=c, ls="--",
                  lw=0.8)
      loss = np.mean(m["loss"], axis=0)
      ended = np.isnan(loss[1:]).any() if len(loss) > 1 else False
      ax_l.plot(steps, loss, color=c, label=label + (" (diverged)" if ended else ""))
    ax_q.set_yscale("log")
    ax_q.set_ylim(1e-40, 1e35)
    ax_q.set_title(f"{act}: second moment q^l at init", fontsize=10)
    ax_q.set_xlabel("layer")
    ax_g.set_yscale("log")
    ax_g.set_ylim(1e-30, 1e20)
    ax_g.set_title(f"{act}: gradient norm wrt h^l at init", fontsize=10)
    ax_g.set_xlabel("layer")
    ax_l.axhline(math.log(10), color="gray", ls=":", lw=0.8)
    ax_l.set_ylim(0, 3)
    ax_l.set_title(f"{act}: training loss", fontsize=10)
    ax_l.set_xlabel("step")
    ax_l.legend(fontsize=7, ncol=2)
  axes[0][0].legend(fontsize=7, ncol=2)
  fig.tight_layout()
  return fig


STUDY = Study(name="vanishing_exploding", title=TITLE, run=run)
