"""Dynamical isometry: Jacobian spectra of deep networks and the learning speed of deep linear nets.

Claims:

* Pennington, Schoenholz & Ganguli 2017 ("Resurrecting the sigmoid in deep
  learning through dynamical isometry"): at the critical point (``chi1 = 1``,
  so the mean squared singular value of the input-output Jacobian ``J`` is 1
  at every depth) the *spread* of the spectrum of ``J J^T`` depends on the
  weights. Free probability gives its variance as
  ``L (mu2 / mu1^2 - 1 - s1)``, with ``s1 = -1`` for Gaussian and ``0`` for
  orthogonal weights and ``mu_k = E[phi'(h)^(2k)]`` at ``q*``. So Gaussian
  spectra widen at least linearly in depth ``L`` whatever the activation;
  orthogonal linear networks are exactly isometric (every singular value 1);
  orthogonal tanh networks approach isometry as ``q* -> 0`` (tanh is nearly
  linear there).
* Saxe, McClelland & Ganguli 2013 ("Exact solutions to the nonlinear dynamics
  of learning in deep linear neural networks"): with orthogonal (isometric)
  initial weights, a deep linear network trained at its best learning rate
  (which falls like 1 / number of layers) learns in a time that stays finite
  as depth grows, only a bounded delay over a shallow one; scaled random
  Gaussian initializations do not have this property and learn more and more
  slowly as depth grows.

Method:

(a) Spectra. MLPs of width ``N`` (input size ``N``, so ``J`` is square) with
    weights ``N(0, sw / N)`` or ``sqrt(sw)`` times a Haar orthogonal matrix,
    for a linear network (``sw = 1``) and tanh networks on the critical line
    (``sw = sw_c(sb)`` from :func:`jaxinit.theory.critical_weight_variance`)
    at a small and a large ``q*``. The input is scaled so that the first
    layer already sits at ``q*``. The Jacobian of ``x -> phi(h^L)`` (that is
    ``D^L W^L ... D^1 W^1``) is measured by
    :func:`jaxinit.probes.jacobian_singular_values` at every depth of a list,
    the shallower networks being the first layers of the deepest one; the
    mean and variance of the squared singular values over each network's
    spectrum are averaged over seeds (with standard errors) and set beside
    :func:`jaxinit.theory.jacobian_spectrum_moments` (the ``N -> inf`` limit).
(b) Learning speed. The sweep engine trains bias-free deep linear MLPs
    (``depth`` hidden layers, ``depth + 1`` weight matrices, all ``N x N``)
    with plain SGD on a linear teacher-student regression (the
    ``teacher_student`` dataset with a linear teacher), from orthogonal and
    from scaled Gaussian (``N(0, 1 / fan_in)``) weights, at learning rates
    ``c / (depth + 1)`` for a grid of ``c``. Steps to target: the first step
    at which the running mean of the last 5 minibatch losses is below the
    target. For each depth and init the best ``c`` of the grid is taken (as
    the paper trains each depth at its optimal learning rate).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxinit
from jaxinit import gains, probes, theory
from jaxinit.models import MLP, functional
from jaxinit.sweep import load_dataset, run_sweep
from jaxinit_experiments.study import (Report, Study, pick, pyplot, save_figure, verdict_of,
                                       write_csv)

TITLE = "Dynamical isometry: Jacobian spectra and deep linear learning speed"

# (key, activation, bias variance): the linear net, and tanh on the critical line at a
# small q* (nearly linear units) and a large one (sb = 0.05, as in Schoenholz et al.).
SETTINGS: tuple[tuple[str, str, float], ...] = (
    ("linear", "linear", 0.0),
    ("tanh_small_q", "tanh", 1e-5),
    ("tanh_large_q", "tanh", 0.05),
)
WEIGHTS = ("gaussian", "orthogonal")
GAUSSIAN_INIT = {"name": "variance_scaling", "scale": 1.0, "mode": "fan_in", "sampler": "normal"}
INITS = {"orthogonal": "orthogonal", "gaussian": GAUSSIAN_INIT}
LOSS_WINDOW = 5
# Mean-field theory is the N -> inf limit; finite width adds O(L / N) relative corrections,
# so the theory is checked where L <= N / 8.
MEAN_FIELD_RATIO = 8


def _settings(scale: str) -> dict[str, Any]:
  return {
      "width": pick(scale, 8, 128, 1000),
      "depths": pick(scale, (1, 2), (1, 2, 4, 8, 16, 32, 64),
                     (1, 2, 4, 8, 16, 32, 64, 128, 256)),
      "seeds": pick(scale, 2, 8, 16),
      "settings": pick(scale, SETTINGS[1:], SETTINGS, SETTINGS),
      "lin_width": pick(scale, 4, 16, 64),
      "lin_depths": pick(scale, (1, 2), (1, 4, 16, 64), (1, 2, 4, 8, 16, 32, 64, 128)),
      "lr_factors": pick(scale, (1.0, 2.0), (0.25, 0.5, 1.0, 2.0, 4.0, 6.0),
                         tuple(2.0 ** (k / 2) for k in range(-6, 7))),
      "lin_seeds": pick(scale, 1, 2, 5),
      "steps": pick(scale, 20, 1000, 5000),
      "batch": pick(scale, 16, 64, 128),
      "n_train": pick(scale, 64, 512, 4096),
      "target": 0.05,
  }


# ---------------------------------------------------------------------------
# (a) Jacobian spectra.


def _critical(activation: str, bias_variance: float) -> tuple[float, float]:
  """``(sw, q*)`` on the critical line; the linear net at ``sw = 1`` keeps any length (1)."""
  if activation == "linear":
    return 1.0, 1.0
  sw = float(theory.critical_weight_variance(activation, bias_variance))
  return sw, float(theory.fixed_point_length(activation, sw, bias_variance))


@functools.cache
def _spectrum_program(activation: str, width: int, depths: tuple[int, ...]) -> Any:
  """Jitted ``(params, x) -> (depths, width)`` singular values, vmapped over networks."""
  phi = gains.resolve_activation(activation)
  nets = {depth: functional(MLP.abstract(width, 1, width, depth, activation))[0]
          for depth in depths}

  def one(params, x):
    out = []
    for depth in depths:
      # The depth-d network is the first d layers of the deepest one.
      net = nets[depth]
      sub = dict(params, hidden=jax.tree.map(lambda a, d=depth: a[:d - 1], params["hidden"]))

      def fn(v, net=net, sub=sub):
        return phi(net.apply(sub, v, capture=True)[1]["preactivations"][-1])

      out.append(probes.jacobian_singular_values(fn, x))
    return jnp.stack(out)

  return jax.jit(jax.vmap(one))


@functools.cache
def _unit_params(width: int, depth: int, seeds: int) -> dict[str, Any]:
  """Params of ``seeds`` MLPs per weight distribution at ``sw = sb = 1``, stacked.

  Kernels and biases scale with ``sqrt(sw)`` and ``sqrt(sb)``, so every setting rescales
  these draws. The kernels are drawn by one vmapped initializer call per distribution
  (one ``width x width`` matrix per draw, as the MLP's rules draw them, but one compiled
  program instead of several); the readout is unused by the Jacobian, so it is zero.
  """
  kernels = {"gaussian": jaxinit.variance_scaling(1.0, "fan_in", "normal"),
             "orthogonal": jaxinit.orthogonal(1.0)}
  draws = []
  for i, kind in enumerate(WEIGHTS):
    keys = jax.random.split(jax.random.key(100 + i), seeds * depth)
    draw = jax.jit(jax.vmap(lambda k, init=kernels[kind]: init(k, (width, width))))
    draws.append(np.asarray(draw(keys)))
  kernel = np.concatenate(draws).reshape(len(WEIGHTS) * seeds, depth, width, width)
  bias = np.asarray(jax.random.normal(jax.random.key(99), kernel.shape[:3]))
  return {"input": {"kernel": jnp.asarray(kernel[:, 0]), "bias": jnp.asarray(bias[:, 0])},
          "hidden": {"kernel": jnp.asarray(kernel[:, 1:]), "bias": jnp.asarray(bias[:, 1:])},
          "readout": {"kernel": jnp.zeros((len(kernel), width, 1)),
                      "bias": jnp.zeros((len(kernel), 1))}}


def _spectra(activation: str, sw: float, sb: float, q_star: float, width: int,
             depths: tuple[int, ...], seeds: int, key: jax.Array) -> dict[str, np.ndarray]:
  """Singular values ``(seeds, len(depths), width)`` per weight distribution.

  The same weight draws serve every setting (rescaled); the inputs differ per setting.
  """
  unit = _unit_params(width, max(depths), seeds)
  params = {name: {"kernel": layer["kernel"] * math.sqrt(sw),
                   "bias": layer["bias"] * math.sqrt(sb)} for name, layer in unit.items()}
  # Inputs of length exactly q0 = (q* - sb) / sw, so that the first layer is at q*.
  z = jax.random.normal(key, (seeds, width))
  z = z / jnp.linalg.norm(z, axis=1, keepdims=True) * math.sqrt(width * (q_star - sb) / sw)
  sv = np.asarray(_spectrum_program(activation, width, tuple(depths))(
      params, jnp.concatenate([z, z])), np.float64)
  return {kind: sv[i * seeds:(i + 1) * seeds] for i, kind in enumerate(WEIGHTS)}


def _moment_rows(s: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[Any, np.ndarray]]:
  rows, spectra = [], {}
  for index, (key, activation, sb) in enumerate(s["settings"]):
    sw, q_star = _critical(activation, sb)
    sv = _spectra(activation, sw, sb, q_star, s["width"], s["depths"], s["seeds"],
                  jax.random.key(index))
    for kind in WEIGHTS:
      lam = sv[kind] ** 2
      m1, var = lam.mean(-1), lam.var(-1)  # (seeds, depths): over each spectrum
      for j, depth in enumerate(s["depths"]):
        spectra[(key, kind, depth)] = sv[kind][:, j]
        pred = theory.jacobian_spectrum_moments(activation, sw, sb, depth, weights=kind)
        n = s["seeds"]
        rows.append({
            "setting": key, "activation": activation, "weight_variance": sw,
            "bias_variance": sb, "q_star": q_star, "weights": kind, "depth": depth,
            "width": s["width"], "seeds": n,
            "mean_sq_sv": m1[:, j].mean(), "mean_sq_sv_se": m1[:, j].std(ddof=1) / math.sqrt(n),
            "mean_sq_sv_theory": float(pred.mean),
            "var_sq_sv": var[:, j].mean(), "var_sq_sv_se": var[:, j].std(ddof=1) / math.sqrt(n),
            "var_sq_sv_theory": float(pred.variance),
            "sv_max_median": float(np.median(sv[kind][:, j].max(-1))),
            "sv_min_median": float(np.median(sv[kind][:, j].min(-1))),
            "max_abs_sv_minus_1": float(np.abs(sv[kind][:, j] - 1).max()),
            "mean_field_regime": depth * MEAN_FIELD_RATIO <= s["width"],
        })
  for row in rows:
    row["mean_within_tol"] = _within(row, "mean_sq_sv")
    row["var_within_tol"] = _within(row, "var_sq_sv")
  return rows, spectra


def _within(row: dict[str, Any], name: str) -> bool:
  """|measured - predicted| <= 3 SE + 10% of the prediction + 0.01."""
  pred = row[f"{name}_theory"]
  return abs(row[name] - pred) <= 3 * row[f"{name}_se"] + 0.1 * abs(pred) + 0.01


# ---------------------------------------------------------------------------
# (b) Learning speed of deep linear networks.


def _dataset_spec(s: dict[str, Any]) -> dict[str, Any]:
  n = s["lin_width"]
  return {"name": "teacher_student", "n_train": s["n_train"], "n_test": 128,
          "in_features": n, "out_features": n, "teacher_width": n, "teacher_depth": 1,
          "teacher_activation": "linear"}


def _steps_to_target(step_loss: np.ndarray, target: float) -> float:
  """First step whose trailing mean of ``LOSS_WINDOW`` minibatch losses is <= target."""
  loss = np.asarray(step_loss, np.float64)
  csum = np.concatenate([[0.0], np.cumsum(np.where(np.isfinite(loss), loss, np.inf))])
  idx = np.arange(1, len(loss) + 1)
  lo = np.maximum(idx - LOSS_WINDOW, 0)
  window = (csum[idx] - csum[lo]) / (idx - lo)
  hit = np.nonzero(window <= target)[0]
  return float(hit[0]) if len(hit) else math.inf


def _learning(s: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[Any, np.ndarray]]:
  """One sweep per depth (one compiled program each); rows per model and loss curves."""
  rows, curves = [], {}
  for depth in s["lin_depths"]:
    result = run_sweep({
        "name": "dynamical_isometry", "seeds": s["lin_seeds"], "eval_every": s["steps"],
        "probes": [],
        "grid": {"dataset": _dataset_spec(s), "model": "mlp", "init": list(INITS.values()),
                 "activation": "linear", "depth": depth, "width": s["lin_width"],
                 "use_bias": False, "optimizer": "sgd",
                 "learning_rate": [c / (depth + 1) for c in s["lr_factors"]],
                 "batch_size": s["batch"], "steps": s["steps"]}}, progress=False)
    for i, (model, row) in enumerate(zip(result.models, result.rows)):
      init = "orthogonal" if model["init"] == "orthogonal" else "gaussian"
      loss = result.curves["step_loss"][i]
      factor = model["learning_rate"] * (depth + 1)
      steps = math.inf if row["diverged"] else _steps_to_target(loss, s["target"])
      rows.append({"init": init, "depth": depth, "layers": depth + 1,
                   "lr_factor": round(factor, 6), "learning_rate": model["learning_rate"],
                   "seed": model.seed, "steps_to_target": steps,
                   "final_train_loss": row["final_train_loss"], "diverged": row["diverged"]})
      curves[(init, depth, round(factor, 6), model.seed)] = np.asarray(loss)
  return rows, curves


def _best(rows: list[dict[str, Any]], init: str, depth: int) -> dict[str, Any]:
  """The learning-rate factor with the fewest steps (median over seeds) and its steps."""
  best = None
  for factor in sorted({r["lr_factor"] for r in rows}):
    steps = np.array([r["steps_to_target"] for r in rows
                      if r["init"] == init and r["depth"] == depth and r["lr_factor"] == factor])
    key = (np.median(steps), np.mean(steps))
    if best is None or key < best[0]:
      best = (key, factor, steps)
  _, factor, steps = best
  finite = np.all(np.isfinite(steps))
  return {"init": init, "depth": depth, "best_lr_factor": factor,
          "steps_mean": float(steps.mean()) if finite else math.inf,
          "steps_se": float(steps.std(ddof=1) / math.sqrt(len(steps)))
          if finite and len(steps) > 1 else math.nan,
          "seeds_reached": int(np.isfinite(steps).sum()), "seeds": len(steps)}


def _loss_floor(s: dict[str, Any]) -> float:
  """The least-squares (bias-free) training loss: the best a linear network can do."""
  ds = load_dataset(_dataset_spec(s))
  x, y = ds.x_train.astype(np.float64), ds.y_train.astype(np.float64)
  w = np.linalg.lstsq(x, y, rcond=None)[0]
  return float(np.mean((x @ w - y) ** 2))


# ---------------------------------------------------------------------------
# The study.


def run(scale: str, out: Path) -> Report:
  """Measures Jacobian spectra against theory, then deep linear learning speed vs depth."""
  s = _settings(scale)
  moments, spectra = _moment_rows(s)
  lin_rows, lin_curves = _learning(s)
  best = [_best(lin_rows, init, d) for init in INITS for d in s["lin_depths"]]
  floor = _loss_floor(s)

  data = [write_csv(out / "spectrum_moments.csv", moments),
          write_csv(out / "spectrum_histograms.csv", _histogram_rows(s, spectra)),
          write_csv(out / "learning_models.csv", lin_rows),
          write_csv(out / "learning_best.csv", best)]
  figures = [
      (save_figure(_spectra_figure(s, spectra, moments), out / "spectra.png"),
       "Densities of log10 singular values of the input-output Jacobian (all seeds pooled) "
       "per depth, Gaussian (left) vs orthogonal (right) weights, for a linear network and "
       "critical tanh networks at small and large q*. Values below the axis are piled into "
       "the first bin."),
      (save_figure(_moments_figure(s, moments), out / "moments.png"),
       "Mean (top) and variance (bottom) of the squared singular values vs depth: markers "
       "measured (mean over seeds, error bars 1 SE), lines free-probability theory "
       "(N -> inf). The dotted line marks L = N/8, the end of the range where theory is "
       "checked. Orthogonal linear variances are ~0 and fall below the axis."),
      (save_figure(_learning_figure(s, best, lin_curves, floor), out / "learning.png"),
       f"Left: steps to reach training loss {s['target']} (deep linear nets, SGD at the "
       "best learning rate c/(depth+1) of the grid; mean over seeds, error bars 1 SE; open "
       "markers at the step budget: not reached). Right: minibatch loss (running mean) at "
       "each depth's best learning rate, first seed."),
  ]
  report = Report(title=TITLE, scale=scale, claim=(
      "At the critical point the input-output Jacobian of a deep network with orthogonal "
      "weights can be well conditioned (exactly isometric for linear nets, nearly so for "
      "tanh nets as q* -> 0), while with Gaussian weights the spread of its squared singular "
      "values grows at least linearly with depth (Pennington, Schoenholz & Ganguli 2017: "
      "variance L (mu2/mu1^2 - 1 - s1), s1 = -1 Gaussian, 0 orthogonal). For deep linear "
      "nets, orthogonal init gives a learning time that stays bounded as depth grows (at the "
      "best learning rate, which falls like 1/depth), while scaled Gaussian init learns "
      "ever more slowly (Saxe, McClelland & Ganguli 2013)."), setup=_setup(s, floor))
  checks = _compare_spectra(report, s, moments)
  checks += _compare_learning(report, s, best)
  report.verdict = verdict_of(checks)
  report.discussion = _discussion(s, moments, best, scale)
  report.figures = figures
  report.data = data
  return report


def _setup(s: dict[str, Any], floor: float) -> str:
  settings = ", ".join(_label(key, act, sb) for key, act, sb in s["settings"])
  return (
      f"(a) MLPs of width N = {s['width']} (input size N), depths {list(s['depths'])} "
      f"(shallower nets are the first layers of the deepest), {s['seeds']} seeds per weight "
      f"distribution; {settings}. Weights N(0, sw/N) ('gaussian') or sqrt(sw) times a Haar "
      "orthogonal matrix ('orthogonal'); biases N(0, sb); one input per network scaled so "
      "the first layer sits at q*. Singular values of d phi(h^L)/dx by "
      "`jaxinit.probes.jacobian_singular_values`; mean and variance of the squared "
      "singular values over each spectrum, then mean +- SE over seeds, against "
      "`jaxinit.theory.jacobian_spectrum_moments`. "
      f"(b) Bias-free deep linear MLPs, width {s['lin_width']}, depths "
      f"{list(s['lin_depths'])} (depth + 1 weight matrices), on a linear teacher-student "
      f"regression ({s['n_train']} training points, {s['lin_width']} inputs and outputs, "
      f"targets of unit variance, initial loss ~2, best bias-free loss {floor:.4f}); plain "
      f"SGD, batch {s['batch']}, {s['steps']} steps, learning rates c/(depth+1) for c in "
      f"{[round(c, 3) for c in s['lr_factors']]}, {s['lin_seeds']} seed(s); trained by the "
      f"sweep engine, one compiled program per depth. Steps to target: first step at which "
      f"the mean of the last {LOSS_WINDOW} minibatch losses is <= {s['target']}; per depth "
      "and init the c with the fewest steps (median over seeds). Criteria: orthogonal "
      "linear nets have every |sigma - 1| <= 1e-3; measured mean and variance agree with "
      "theory (|diff| <= 3 SE + 10% of the prediction + 0.01) at every depth L <= N/8; "
      "Gaussian variances grow with depth for every setting; orthogonal tanh at small q* "
      "has variance <= 1 at the deepest depth and at most 1/10 of the Gaussian one; "
      "deep linear learning: orthogonal steps-to-target change by at most 1.5x over the "
      "last 4x (or more) in depth, Gaussian steps grow with depth, and the "
      "deepest/shallowest ratio of Gaussian is >= 3x that of orthogonal.")


def _label(key: str, activation: str, sb: float) -> str:
  if activation == "linear":
    return "linear (sw = 1, sb = 0)"
  sw, q_star = _critical(activation, sb)
  return f"tanh (sb = {sb:g}, sw = {sw:.4f}, q* = {q_star:.3f})"


def _select(rows: list[dict[str, Any]], **where: Any) -> list[dict[str, Any]]:
  return [r for r in rows if all(r[k] == v for k, v in where.items())]


def _pm(row: dict[str, Any], name: str) -> str:
  return f"{row[name]:.3g} +- {row[name + '_se']:.2g}"


def _compare_spectra(report: Report, s: dict[str, Any], moments: list[dict[str, Any]]
                     ) -> list[bool]:
  checks = []
  deepest = max(s["depths"])
  orth_lin = _select(moments, setting="linear", weights="orthogonal")
  if orth_lin:
    dev = max(r["max_abs_sv_minus_1"] for r in orth_lin)
    ok = dev <= 1e-3
    report.compare(f"orthogonal linear: largest |sigma - 1| over depths 1..{deepest}, all seeds",
                   "0 (exactly isometric)", f"{dev:.1e} (float32 round-off)", ok)
    checks.append(ok)
  regime = [r for r in moments if r["mean_field_regime"]]
  check_depth = max([r["depth"] for r in regime], default=min(s["depths"]))
  for key, activation, sb in s["settings"]:
    for kind in WEIGHTS:
      rows = _select(moments, setting=key, weights=kind)
      at = _select(rows, depth=check_depth)[0]
      inside = [r for r in rows if r["mean_field_regime"]] or [at]
      ok = all(r["mean_within_tol"] and r["var_within_tol"] for r in inside)
      report.compare(
          f"{_label(key, activation, sb)}, {kind}: mean / variance of sigma^2 at "
          f"L = {check_depth}",
          f"{at['mean_sq_sv_theory']:.3g} / {at['var_sq_sv_theory']:.3g}",
          f"{_pm(at, 'mean_sq_sv')} / {_pm(at, 'var_sq_sv')}; within tolerance at "
          f"{sum(r['mean_within_tol'] and r['var_within_tol'] for r in inside)} of "
          f"{len(inside)} depths <= N/8", ok)
      checks.append(ok)
  grows, text = True, []
  for key, _, _ in s["settings"]:
    var = [r["var_sq_sv"] for r in _select(moments, setting=key, weights="gaussian")]
    grows &= bool(np.all(np.diff(var) > 0))
    text.append(f"{key}: " + ", ".join(f"{v:.3g}" for v in var))
  report.compare(f"Gaussian weights: variance of sigma^2 at depths {list(s['depths'])}",
                 "grows with depth: >= L (= L for linear)", "; ".join(text), grows)
  checks.append(grows)
  small = _select(moments, setting="tanh_small_q", depth=deepest)
  if small:
    orth = _select(small, weights="orthogonal")[0]
    gauss = _select(small, weights="gaussian")[0]
    ok = orth["var_sq_sv"] <= 1 and orth["var_sq_sv"] * 10 <= gauss["var_sq_sv"]
    report.compare(
        f"tanh at q* = {orth['q_star']:.3f}, L = {deepest}: variance of sigma^2 and median "
        "sigma_max / sigma_min, orthogonal vs Gaussian",
        f"concentrated for orthogonal (theory var {orth['var_sq_sv_theory']:.3g}), wide for "
        f"Gaussian (theory {gauss['var_sq_sv_theory']:.3g})",
        f"orthogonal {orth['var_sq_sv']:.3g}, sigma {orth['sv_max_median']:.3g} / "
        f"{orth['sv_min_median']:.3g}; Gaussian {gauss['var_sq_sv']:.3g}, sigma "
        f"{gauss['sv_max_median']:.3g} / {gauss['sv_min_median']:.2g}", ok)
    checks.append(ok)
  large = _select(moments, setting="tanh_large_q", weights="orthogonal", depth=deepest)
  if large and small:
    row = large[0]
    report.compare(f"orthogonal tanh at q* = {row['q_star']:.3f}, L = {deepest}: variance of "
                   "sigma^2 (larger q*: the units leave tanh's linear range)",
                   f"widens with q*: {row['var_sq_sv_theory']:.3g}",
                   f"{_pm(row, 'var_sq_sv')}", None)
  return checks


def _steps_text(row: dict[str, Any], budget: int) -> str:
  if math.isfinite(row["steps_mean"]):
    se = f" +- {row['steps_se']:.2g}" if math.isfinite(row["steps_se"]) else ""
    return f"{row['steps_mean']:.0f}{se}"
  return f"> {budget} ({row['seeds_reached']}/{row['seeds']} seeds reached)"


def _compare_learning(report: Report, s: dict[str, Any], best: list[dict[str, Any]]
                      ) -> list[bool]:
  depths = list(s["lin_depths"])
  budget = s["steps"]
  ratios, checks = {}, []
  for init in INITS:
    rows = [_select(best, init=init, depth=d)[0] for d in depths]
    steps = [r["steps_mean"] if math.isfinite(r["steps_mean"]) else math.inf for r in rows]
    # Unreached: at least the budget (a lower bound on the ratio).
    lower = [st if math.isfinite(st) else budget for st in steps]
    ratios[init] = (lower[-1] / max(lower[0], 1), not math.isfinite(steps[-1]))
    text = "; ".join(f"depth {d}: {_steps_text(r, budget)} (c = {r['best_lr_factor']:g})"
                     for d, r in zip(depths, rows))
    if init == "orthogonal":
      last = lower[-1] / max(lower[-2], 1) if len(depths) > 1 else 1.0
      ok = math.isfinite(steps[-1]) and last <= 1.5
      paper = "depth-independent: bounded, saturating in depth"
      text += f"; last {depths[-1] // max(depths[-2], 1)}x in depth: x{last:.2f}" if len(
          depths) > 1 else ""
    else:
      # An unreached target is a lower bound (the budget): it agrees with growth
      # after any depth; a reached one must exceed the depth before it.
      ok = all(b > a or not math.isfinite(st) for a, b, st in zip(lower, lower[1:], steps[1:]))
      paper = "grows with depth"
    report.compare(f"{init} init: steps to loss {s['target']} at the best learning rate",
                   paper, text, ok)
    checks.append(ok)
  (g, g_cens), (o, _) = ratios["gaussian"], ratios["orthogonal"]
  ok = g >= 3 * o
  report.compare(f"steps-to-target ratio, depth {depths[-1]} / depth {depths[0]}",
                 "orthogonal ~1 (a finite delay); Gaussian large",
                 f"orthogonal {o:.2f}; Gaussian {'>= ' if g_cens else ''}{g:.1f}", ok)
  checks.append(ok)
  return checks


def _factors(rows: list[dict[str, Any]]) -> str:
  return ", ".join(f"{r['best_lr_factor']:g}" for r in rows)


def _discussion(s: dict[str, Any], moments: list[dict[str, Any]], best: list[dict[str, Any]],
                scale: str) -> str:
  n, deepest = s["width"], max(s["depths"])
  text = (
      "Mean squared singular values stay at 1 (the critical point) for every setting, so "
      "only the spread tells the initializations apart. Orthogonal linear nets are "
      "isometric to float32 round-off at every depth. Gaussian spectra widen roughly like "
      "L (plus mu2/mu1^2 - 1 per layer for tanh): most singular values fall towards 0 "
      "while a few grow, so the condition number explodes. Orthogonal tanh nets only "
      "pay mu2/mu1^2 - 1 per layer, which vanishes as q* -> 0: at the small q* the "
      "spectrum stays close to 1 at every depth, at the large q* it widens too (the "
      "units leave tanh's linear range), as the theory predicts. ")
  outside = [r for r in moments if not r["mean_field_regime"] and r["weights"] == "gaussian"
             and not r["var_within_tol"]]
  if outside:
    worst = max(outside, key=lambda r: r["depth"])
    text += (
        f"Beyond L = N/8 the measured Gaussian variances depart from the N -> inf formula "
        f"(e.g. {worst['setting']} at L = {worst['depth']}: {_pm(worst, 'var_sq_sv')} vs "
        f"{worst['var_sq_sv_theory']:.3g}): finite-width corrections of relative size "
        "O(L/N), and a heavy-tailed sample (a few large singular values dominate the "
        "variance, so the standard error is itself unreliable); the theory is checked "
        "only for L <= N/8. ")
  orth = [r for r in best if r["init"] == "orthogonal"]
  gauss = [r for r in best if r["init"] == "gaussian"]
  text += (
      "Deep linear learning: with orthogonal weights and learning rate c/(depth+1) every "
      "layer's update adds up to the same change of the end-to-end map at any depth (the "
      "Jacobians above and below each layer are isometries), so the best c and the steps "
      f"it needs barely move with depth (best c: "
      f"{_factors(orth)}); what delay remains comes "
      "from modes whose target strength is below 1, which a deep product learns more "
      "slowly, and it saturates with depth. With Gaussian weights the end-to-end map and "
      "the per-layer Jacobians are ill conditioned: the largest singular values force a "
      "small learning rate (best c: "
      f"{_factors(gauss)}) and the smallest leave "
      "directions that learn slowly, increasingly so with depth. Saxe et al. show this on "
      "MNIST with depths up to ~100 at each depth's optimal learning rate; here the task is "
      "a linear teacher of the same size as the network.")
  if scale == "tiny":
    text += " At the tiny scale the numbers say nothing; the run only checks the code path."
  elif scale == "quick":
    text += (
        f" Quick scale: N = {n} and depths up to {deepest} for the spectra (Pennington et "
        "al. use widths of ~1000), width 16 and depths up to 64 for learning with a coarse "
        "learning-rate grid and 2 seeds. `--full` measures spectra at N = 1000, depths "
        "1..256 (256 <= N/4), 16 seeds, and trains width-64 linear nets at depths "
        "1..128 with a sqrt(2)-spaced learning-rate grid, 5 seeds and 5000 steps (a GPU).")
  return text


# ---------------------------------------------------------------------------
# Figures and histogram data.

_BINS = np.linspace(-4.0, 1.5, 56)


def _hist_depths(depths: tuple[int, ...]) -> list[int]:
  return sorted(set(depths[1::2]) | {max(depths)})


def _histogram(sv: np.ndarray) -> np.ndarray:
  logs = np.clip(np.log10(np.maximum(sv.ravel(), 1e-30)), _BINS[0], _BINS[-1] - 1e-9)
  return np.histogram(logs, _BINS, density=True)[0]


def _histogram_rows(s: dict[str, Any], spectra: dict[Any, np.ndarray]) -> list[dict[str, Any]]:
  rows = []
  for key, _, _ in s["settings"]:
    for kind in WEIGHTS:
      for depth in _hist_depths(s["depths"]):
        density = _histogram(spectra[(key, kind, depth)])
        rows += [{"setting": key, "weights": kind, "depth": depth,
                  "log10_sv_lo": round(float(lo), 3), "log10_sv_hi": round(float(hi), 3),
                  "density": float(d)}
                 for lo, hi, d in zip(_BINS[:-1], _BINS[1:], density) if d > 0]
  return rows


def _spectra_figure(s: dict[str, Any], spectra: dict[Any, np.ndarray],
                    moments: list[dict[str, Any]]) -> Any:
  plt = pyplot()
  settings = s["settings"]
  fig, axes = plt.subplots(len(settings), 2, figsize=(9, 2.4 * len(settings) + 0.4),
                           squeeze=False, sharex=True)
  depths = _hist_depths(s["depths"])
  colors = plt.cm.viridis(np.linspace(0, 0.9, len(depths)))
  centers = (_BINS[:-1] + _BINS[1:]) / 2
  for i, (key, activation, sb) in enumerate(settings):
    for j, kind in enumerate(WEIGHTS):
      ax = axes[i][j]
      for color, depth in zip(colors, depths):
        ax.plot(centers, _histogram(spectra[(key, kind, depth)]), color=color,
                label=f"L = {depth}", drawstyle="steps-mid")
      ax.set_yscale("log")
      ax.set_ylim(1e-3, None)
      ax.axvline(0, color="gray", lw=0.6, ls=":")
      ax.set_title(f"{_label(key, activation, sb)}, {kind}", fontsize=8)
      ax.set_ylabel("density", fontsize=8)
      if i == len(settings) - 1:
        ax.set_xlabel("log10 singular value of J")
  axes[0][0].legend(fontsize=7)
  fig.tight_layout()
  return fig


def _moments_figure(s: dict[str, Any], moments: list[dict[str, Any]]) -> Any:
  plt = pyplot()
  settings = s["settings"]
  fig, axes = plt.subplots(2, len(settings), figsize=(3.6 * len(settings), 6.0), squeeze=False)
  style = {"gaussian": ("tab:red", "o"), "orthogonal": ("tab:blue", "s")}
  for j, (key, activation, sb) in enumerate(settings):
    for kind in WEIGHTS:
      rows = _select(moments, setting=key, weights=kind)
      d = np.array([r["depth"] for r in rows])
      color, marker = style[kind]
      for i, name in enumerate(("mean_sq_sv", "var_sq_sv")):
        ax = axes[i][j]
        ax.errorbar(d, [r[name] for r in rows], yerr=[r[name + "_se"] for r in rows],
                    fmt=marker, color=color, ms=4, capsize=2, label=f"{kind} measured")
        ax.plot(d, [r[name + "_theory"] for r in rows], color=color, lw=1,
                label=f"{kind} theory")
    for i, name in enumerate(("mean of sigma^2", "variance of sigma^2")):
      ax = axes[i][j]
      ax.set_xscale("log", base=2)
      ax.axvline(s["width"] / MEAN_FIELD_RATIO, color="gray", ls=":", lw=0.8)
      ax.set_ylabel(name, fontsize=8)
      ax.set_xlabel("depth L")
      if i == 1:
        ax.set_yscale("log")
        ax.set_ylim(1e-4, None)
      else:
        ax.set_ylim(0, 2)
      ax.set_title(_label(key, activation, sb), fontsize=8)
  axes[1][0].legend(fontsize=7)
  fig.tight_layout()
  return fig


def _learning_figure(s: dict[str, Any], best: list[dict[str, Any]],
                     curves: dict[Any, np.ndarray], floor: float) -> Any:
  plt = pyplot()
  fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
  style = {"gaussian": ("tab:red", "o"), "orthogonal": ("tab:blue", "s")}
  depths = list(s["lin_depths"])
  for init in INITS:
    color, marker = style[init]
    rows = [_select(best, init=init, depth=d)[0] for d in depths]
    reached = [(d, r) for d, r in zip(depths, rows) if math.isfinite(r["steps_mean"])]
    if reached:
      ax.errorbar([d + 1 for d, _ in reached], [r["steps_mean"] for _, r in reached],
                  yerr=[0 if math.isnan(r["steps_se"]) else r["steps_se"] for _, r in reached],
                  fmt=marker + "-", color=color, capsize=3, label=init)
    missed = [d for d, r in zip(depths, rows) if not math.isfinite(r["steps_mean"])]
    if missed:
      ax.plot([d + 1 for d in missed], [s["steps"]] * len(missed), marker, color=color,
              mfc="none", ms=9, label=f"{init}: not reached")
    window = np.ones(LOSS_WINDOW) / LOSS_WINDOW
    for k, (d, r) in enumerate(zip(depths, rows)):
      loss = curves[(init, d, r["best_lr_factor"], 0)]
      smooth = np.convolve(np.nan_to_num(loss, nan=np.nan), window, mode="valid")
      ax2.plot(np.arange(len(smooth)) + LOSS_WINDOW - 1, smooth, color=color,
               alpha=0.35 + 0.65 * (k + 1) / len(depths),
               ls="-" if init == "orthogonal" else "--",
               label=f"{init}, depth {d} (c = {r['best_lr_factor']:g})")
  ax.set_xscale("log", base=2)
  ax.set_yscale("log")
  ax.set_xlabel("weight matrices (depth + 1)")
  ax.set_ylabel(f"steps to training loss {s['target']}")
  ax.set_title("deep linear nets: learning time vs depth", fontsize=10)
  ax.legend(fontsize=8)
  ax2.axhline(s["target"], color="k", lw=0.8, ls=":", label="target")
  ax2.axhline(floor, color="gray", lw=0.8, ls="-.", label="least-squares floor")
  ax2.set_xscale("symlog", linthresh=10)
  ax2.set_yscale("log")
  ax2.set_xlabel("step")
  ax2.set_ylabel(f"minibatch loss (mean of {LOSS_WINDOW})")
  ax2.set_title("training at each depth's best learning rate (seed 0)", fontsize=10)
  ax2.legend(fontsize=6, ncol=2)
  fig.tight_layout()
  return fig


STUDY = Study(name="dynamical_isometry", title=TITLE, run=run)
