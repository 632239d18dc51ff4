"""Glorot & Bengio 2010: activations and back-propagated gradients across layers.

Claim (Glorot & Bengio 2010, "Understanding the difficulty of training deep
feedforward neural networks", Sections 4.2-4.3, Figures 6-8, Table 1): in a
tanh network of 5 hidden layers of 1000 units, the then-standard
initialization ``W ~ U(-1/sqrt(n_in), 1/sqrt(n_in))`` has ``n Var[W] = 1/3``,
so in the linear regime of tanh the activation variance shrinks by about 3
per layer going up, and the back-propagated gradient variance
``Var[dC/ds^l]`` shrinks by about 3 per layer going down (toward the input),
while the weight gradients stay about the same across layers; the
"normalized" initialization ``U(+-sqrt(6 / (n_in + n_out)))`` (``n Var[W] = 1``
for square layers) keeps both about constant across layers. The average
singular value of a layer's Jacobian ``dz^{l+1} / dz^l`` is about 0.5 with
the standard and 0.8 with the normalized init, and normalized init trains
tanh networks to lower test error (Table 1: Shapeset-3x2 27.15% vs 15.60%,
MNIST 1.76% vs 1.64%).

The standard init is :func:`jaxinit.torch_linear_default` (``U(+-1/sqrt(fan_in))``,
variance ``1 / (3 fan_in)``, what PyTorch's ``nn.Linear`` still draws), the
normalized one :func:`jaxinit.glorot_uniform`; biases start at 0.

Method: at the paper's architecture (5 x 1000 tanh, MNIST-1D inputs: 40
features instead of Shapeset's 1024 pixels), the per-layer standard
deviation of activations ``z^l = tanh(s^l)``, back-propagated gradients
``dC/ds^l`` (per example) and weight gradients at initialization, against
mean-field theory (:func:`jaxinit.theory.predict_layers` with ``sw = n Var[W]``,
and the backward factor ``sw E[tanh'(s^l)^2]``), and the layer Jacobians'
singular values (:func:`jaxinit.probes.jacobian_singular_values`). Then both
inits are trained by the sweep engine with plain SGD (batch 10, as in the
paper) at a width the CPU can train quickly (1000 with ``--full``), with the
per-layer probes recorded along the way, and the histograms of Figures 6-7
are drawn at initialization and after training.
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
from jaxinit import probes, theory
from jaxinit.models import MLP, Functional, functional
from jaxinit.sweep import load_dataset, run_sweep
from jaxinit_experiments.study import (Report, Study, pick, pyplot, save_figure, verdict_of,
                                       write_csv)

TITLE = "Glorot & Bengio 2010: standard vs normalized init of a deep tanh network"

INITS = {"standard": "torch_linear_default", "normalized": "glorot_uniform"}
DEPTH = 5
# Glorot & Bengio 2010, Section 4.2.2: average singular value of dz^{l+1}/dz^l.
PAPER_JACOBIAN = {"standard": 0.5, "normalized": 0.8}
# Table 1, tanh networks, test error (%): Shapeset-3x2 and MNIST.
PAPER_ERRORS = {"standard": (27.15, 1.76), "normalized": (15.60, 1.64)}
QUARTER_CIRCLE_MEAN = 8 / (3 * math.pi)  # mean singular value of a square Gaussian / sqrt(n v)


def _settings(scale: str) -> dict[str, Any]:
  return {
      "dataset": pick(scale, "digits", "mnist1d", "mnist1d"),
      "probe_width": pick(scale, 16, 1000, 1000),
      "train_width": pick(scale, 16, 256, 1000),
      "steps": pick(scale, 20, 2000, 20000),
      "eval_every": pick(scale, 10, 200, 1000),
      "learning_rates": pick(scale, [0.1], [0.01, 0.1], [0.003, 0.01, 0.03, 0.1]),
      "seeds": pick(scale, 1, 1, 3),
      "batch": 10,
      "num_inputs": pick(scale, 64, 500, 1000),
  }


# ---------------------------------------------------------------------------
# Theory.


def _gauss(f: Any, q: float) -> float:
  """``E[f(sqrt(q) z)]`` for a standard normal z (a fine grid)."""
  z = np.linspace(-12.0, 12.0, 24001)
  weight = np.exp(-z**2 / 2) / math.sqrt(2 * math.pi)
  return float(np.sum(weight * f(math.sqrt(max(q, 0.0)) * z)) * (z[1] - z[0]))


def _weight_variances(init: str, n_in: int, width: int) -> tuple[float, float, float]:
  """``Var[W]`` of the first layer, of a hidden layer, and ``n Var[W]`` of a hidden layer."""
  if init == "standard":  # U(+-1/sqrt(fan_in)): variance 1 / (3 fan_in)
    return 1 / (3 * n_in), 1 / (3 * width), 1 / 3
  return 2 / (n_in + width), 1 / width, 1.0  # U(+-sqrt(6 / (fan_in + fan_out)))


def _theory(init: str, n_in: int, width: int, q0: float) -> dict[str, np.ndarray]:
  """Mean-field per-layer std of activations, back-propagated and weight gradients.

  Gradients are relative to the last hidden layer (only ratios are predicted).
  """
  v1, _, sw = _weight_variances(init, n_in, width)
  q1 = n_in * v1 * q0
  q = np.asarray(theory.predict_layers("tanh", sw, 0.0, DEPTH, q0=q1 / sw).q1, np.float64)[1:]
  act_var = np.array([_gauss(lambda u: np.tanh(u)**2, ql) for ql in q])
  dphi2 = np.array([_gauss(lambda u: np.cosh(u)**-4, ql) for ql in q])
  grad_var = np.ones(DEPTH)
  for layer in range(DEPTH - 2, -1, -1):  # dC/ds^l = tanh'(s^l) W^{l+1} dC/ds^{l+1}
    grad_var[layer] = grad_var[layer + 1] * sw * dphi2[layer]
  inputs = np.concatenate([[q0], act_var[:-1]])  # what each kernel multiplies
  jac = math.sqrt(sw) * QUARTER_CIRCLE_MEAN * np.sqrt(dphi2[1:])  # rough: rms tanh'
  return {"pre_std": np.sqrt(q), "act_std": np.sqrt(act_var), "grad_std": np.sqrt(grad_var),
          "wgrad_std": np.sqrt(inputs * grad_var), "jacobian_mean_sv": jac}


# ---------------------------------------------------------------------------
# Measurement.


def _network(dataset: Any, width: int, init: str | None = None) -> Functional:
  kwargs = {} if init is None else {"kernel_init": jaxinit.get(INITS[init])}
  return functional(MLP.abstract(in_features=dataset.in_features,
                                 out_features=dataset.num_outputs, width=width, depth=DEPTH,
                                 activation="tanh", bias_init=jaxinit.zeros, **kwargs))[0]


def _signals(net: Functional, params: Any, x: jax.Array, y: jax.Array) -> dict[str, jax.Array]:
  """Per-layer pre-activations, activations, per-example dC/ds, weight gradients."""
  _, captured = net.apply(params, x, capture=True)
  pre = captured["preactivations"]

  def total_loss(p, eps):  # summed over examples: dC/ds is each example's own gradient
    logits = net.apply(p, x, perturbations=eps)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).sum()

  g_params, g_pre = jax.grad(total_loss, argnums=(0, 1))(params, jnp.zeros_like(pre))
  kernels = [k for stack, _ in net.layers(g_params) for k in stack][:DEPTH]
  wgrad_std = jnp.stack([jnp.std(k / x.shape[0]) for k in kernels])
  return {"pre": pre, "act": jnp.tanh(pre), "grad": g_pre, "wgrad_std": wgrad_std}


def _jacobian_means(params: Any, act: jax.Array) -> jax.Array:
  """Mean singular value of ``dz^{l+1} / dz^l`` (l = 1..4) at the first input."""
  kernels, biases = params["hidden"]["kernel"], params["hidden"]["bias"]

  def one(kernel, bias, z):
    return jnp.mean(probes.jacobian_singular_values(lambda v: jnp.tanh(v @ kernel + bias), z))

  return jax.vmap(one)(kernels, biases, act[:-1, 0])


def _measure(net: Functional, params: Any, x: np.ndarray, y: np.ndarray,
             jacobians: bool) -> dict[str, np.ndarray]:
  sig = jax.jit(_signals, static_argnums=0)(net, params, jnp.asarray(x), jnp.asarray(y))
  out = {k: np.asarray(v) for k, v in sig.items()}
  out["pre_std"] = out["pre"].reshape(DEPTH, -1).std(axis=1)
  out["act_std"] = out["act"].reshape(DEPTH, -1).std(axis=1)
  out["grad_std"] = out["grad"].reshape(DEPTH, -1).std(axis=1)
  if jacobians:
    out["jacobian_mean_sv"] = np.asarray(jax.jit(_jacobian_means)(params, sig["act"]))
  return out


# ---------------------------------------------------------------------------
# The study.


def run(scale: str, out: Path) -> Report:
  """Per-layer statistics at init (paper's width) and during training (sweep engine)."""
  s = _settings(scale)
  dataset = load_dataset(s["dataset"])
  x = np.asarray(dataset.x_train[:s["num_inputs"]])
  y = np.asarray(dataset.y_train[:s["num_inputs"]])
  q0 = float(np.mean(x**2))

  # At init, at the paper's width: measurement and theory.
  at_init, predicted, layer_rows = {}, {}, []
  probe_net = _network(dataset, s["probe_width"])  # one compiled probe for every init
  for name in INITS:
    params = _network(dataset, s["probe_width"], name).init(jax.random.key(0))
    at_init[name] = _measure(probe_net, params, x, y, jacobians=True)
    predicted[name] = _theory(name, dataset.in_features, s["probe_width"], q0)
    layer_rows += _layer_rows(name, s["probe_width"], "init", at_init[name], predicted[name])

  # Training (sweep engine): both inits, a few learning rates.
  result = run_sweep({
      "name": "glorot_bengio", "seeds": s["seeds"], "eval_every": s["eval_every"],
      "probes": ["second_moment", "grad_norm"], "probe_batch": 128,
      "grid": {"dataset": s["dataset"], "model": "mlp", "init": list(INITS.values()),
               "activation": "tanh", "depth": DEPTH, "width": s["train_width"],
               "optimizer": "sgd", "learning_rate": s["learning_rates"],
               "batch_size": s["batch"], "steps": s["steps"]}},
      progress=False, keep_params=True)
  names = {v: k for k, v in INITS.items()}
  train_rows = [{"init": names[m["init"]], "learning_rate": m["learning_rate"], "seed": m.seed,
                 "final_train_loss": r["final_train_loss"],
                 "final_test_accuracy": r["final_test_accuracy"],
                 "best_test_accuracy": r["best_test_accuracy"], "diverged": r["diverged"]}
                for m, r in zip(result.models, result.rows)]
  best_lr = {}
  for name in INITS:
    rows = [r for r in train_rows if r["init"] == name]
    by_lr = {lr: np.mean([r["final_train_loss"] for r in rows if r["learning_rate"] == lr])
             for lr in s["learning_rates"]}
    best_lr[name] = min(by_lr, key=lambda lr: (np.nan_to_num(by_lr[lr], nan=np.inf), lr))
  # Histograms and stds of the trained nets (best learning rate, first seed).
  trained: dict[str, dict[str, dict[str, np.ndarray]]] = {}
  net = _network(dataset, s["train_width"])
  for i, m in enumerate(result.models):
    name = names[m["init"]]
    if m["learning_rate"] != best_lr[name] or m.seed != result.config.seeds[0]:
      continue
    trained[name] = {
        "init": _measure(net, result.initial_params[i], x, y, jacobians=False),
        "trained": _measure(net, result.final_params[i], x, y, jacobians=False)}
    for when in ("init", "trained"):
      layer_rows += _layer_rows(name, s["train_width"], when, trained[name][when], None)

  data = [write_csv(out / "layers.csv", layer_rows), write_csv(out / "training.csv", train_rows)]
  curve_rows = []
  for i, m in enumerate(result.models):
    for j, step in enumerate(result.curves["eval_step"][i]):
      row = {"init": names[m["init"]], "learning_rate": m["learning_rate"], "seed": m.seed,
             "step": int(step), "train_loss": float(result.curves["train_loss"][i, j]),
             "test_accuracy": float(result.curves["test_accuracy"][i, j])}
      for layer in range(DEPTH):
        row[f"rms_pre_{layer + 1}"] = math.sqrt(
            float(result.curves["probe_second_moment"][i, j, layer]))
        row[f"grad_norm_{layer + 1}"] = float(result.curves["probe_grad_norm"][i, j, layer])
      curve_rows.append(row)
  data.append(write_csv(out / "curves.csv", curve_rows))

  figures = [
      (save_figure(_histograms(trained), out / "histograms.png"),
       f"Per-layer histograms (as the paper's Figures 6-7) of activations tanh(s^l) and "
       f"back-propagated gradients dC/ds^l over {len(x)} training inputs, at initialization "
       f"and after {s['steps']} SGD steps, width {s['train_width']}; the paper's standard "
       "init (left) and normalized init (right)."),
      (save_figure(_profiles(s, at_init, predicted), out / "layer_std.png"),
       f"Width {s['probe_width']} at initialization: per-layer std of activations, "
       "back-propagated gradients and weight gradients (markers: measured; lines: mean-field "
       "theory, gradients scaled to the measured last layer), and the mean singular value "
       "of each layer's Jacobian (dashed: the paper's 0.5 and 0.8)."),
      (save_figure(_training(s, result, names, best_lr), out / "training.png"),
       f"Training (width {s['train_width']}, SGD, batch {s['batch']}, best learning rate "
       "per init): training loss, and per-layer rms pre-activation and gradient norm (sweep "
       "probes on 128 training inputs) along the way."),
  ]

  report = Report(title=TITLE, scale=scale, claim=(
      "Glorot & Bengio 2010 (Sections 4.2-4.3, Figures 6-8, Table 1): in a 5 x 1000 tanh "
      "network, the standard init U(+-1/sqrt(n_in)) (n Var[W] = 1/3) makes activations "
      "shrink going up and back-propagated gradients shrink going down toward the input "
      "(weight gradients stay about level), while the normalized init "
      "U(+-sqrt(6/(n_in + n_out))) keeps both about the same across layers; the average "
      "singular value of a layer's Jacobian is about 0.5 vs 0.8; normalized init gives "
      "lower test error."), setup=(
      f"Tanh MLP, {DEPTH} hidden layers, biases 0, the same init for every layer; inputs: "
      f"{s['dataset']} ({dataset.in_features} features; the paper's Shapeset-3x2 has 1024). "
      f"At init: width {s['probe_width']}, {len(x)} training inputs, std over inputs and "
      "units of each layer's activations tanh(s^l), per-example gradients dC/ds^l "
      "(cross-entropy) and weight gradients; mean singular value of dz^{l+1}/dz^l at one "
      "input. Theory: `jaxinit.theory.predict_layers` (sw = n Var[W] = 1/3 or 1; the first "
      "layer from the inputs' second moment and fan-in) with the backward factor "
      "sw E[tanh'(s^l)^2], and the quarter-circle law for the Jacobian (sqrt(sw) 8/(3 pi) "
      f"times rms tanh'). Training: width {s['train_width']}, plain SGD, batch "
      f"{s['batch']}, learning rates {s['learning_rates']}, {s['steps']} steps, "
      f"{s['seeds']} seed(s), best learning rate per init by final train loss. Criteria: "
      "standard init: layer-5/layer-1 std ratio of activations < 0.5 and of back-propagated "
      "gradients > 2; normalized: both ratios in [0.5, 2]; weight-gradient ratio in [0.5, "
      "2] for the standard init; every measured ratio within a factor 1.5 of the theory's; "
      "mean Jacobian singular value within 0.1 of the paper's; normalized reaches a lower "
      "final train loss than standard at the best learning rate of each."))
  checks = _compare(report, at_init, predicted, train_rows, best_lr)
  report.verdict = verdict_of(checks)
  report.discussion = _discussion(s, at_init, predicted, train_rows, best_lr, scale)
  report.figures = figures
  report.data = data
  return report


def _layer_rows(init: str, width: int, when: str, m: dict[str, np.ndarray],
                p: dict[str, np.ndarray] | None) -> list[dict[str, Any]]:
  rows = []
  for layer in range(DEPTH):
    row = {"init": init, "width": width, "when": when, "layer": layer + 1}
    for key in ("pre_std", "act_std", "grad_std", "wgrad_std"):
      row[f"{key}_measured"] = float(m[key][layer])
      if p is not None:
        row[f"{key}_theory"] = float(p[key][layer])
    if "jacobian_mean_sv" in m and layer < DEPTH - 1:
      row["jacobian_mean_sv_measured"] = float(m["jacobian_mean_sv"][layer])
      if p is not None:
        row["jacobian_mean_sv_theory"] = float(p["jacobian_mean_sv"][layer])
    rows.append(row)
  return rows


def _ratio(values: np.ndarray) -> float:
  return float(values[-1] / values[0])


def _theory_ratio(p: dict[str, np.ndarray], key: str) -> float:
  return float(p[key][-1] / p[key][0])


def _compare(report: Report, at_init: dict, predicted: dict, train_rows: list[dict[str, Any]],
             best_lr: dict[str, float]) -> list[bool]:
  checks = []

  def close(measured: float, theory_value: float) -> bool:
    return 1 / 1.5 <= measured / theory_value <= 1.5

  paper = {
      ("standard", "act_std"): "shrinks going up (n Var[W] = 1/3 per layer: linear regime "
                               "(1/3)^2 = 0.11)",
      ("standard", "grad_std"): "shrinks going down toward the input (linear regime 3^2 = 9)",
      ("standard", "wgrad_std"): "about the same across layers (Figure 8)",
      ("normalized", "act_std"): "about the same across layers (1)",
      ("normalized", "grad_std"): "about the same across layers (1)",
  }
  labels = {"act_std": "activations tanh(s)", "grad_std": "back-propagated gradients dC/ds",
            "wgrad_std": "weight gradients"}
  for (name, key), text in paper.items():
    m, p = _ratio(at_init[name][key]), _theory_ratio(predicted[name], key)
    if name == "standard" and key == "act_std":
      ok = m < 0.5
    elif name == "standard" and key == "grad_std":
      ok = m > 2
    else:
      ok = 0.5 <= m <= 2
    ok = ok and close(m, p)
    report.compare(f"{name} init: std of {labels[key]}, layer 5 / layer 1", text,
                   f"{m:.3f} (theory {p:.3f})", ok)
    checks.append(ok)
  for name in INITS:
    m = float(np.mean(at_init[name]["jacobian_mean_sv"]))
    p = float(np.mean(predicted[name]["jacobian_mean_sv"]))
    ok = abs(m - PAPER_JACOBIAN[name]) <= 0.1
    report.compare(f"{name} init: mean singular value of dz^(l+1)/dz^l (layers 1-4)",
                   f"~{PAPER_JACOBIAN[name]}", f"{m:.3f} (theory {p:.3f})", ok)
    checks.append(ok)
  best = {}
  for name in INITS:
    rows = [r for r in train_rows if r["init"] == name and r["learning_rate"] == best_lr[name]]
    best[name] = (float(np.mean([r["final_train_loss"] for r in rows])),
                  float(np.mean([r["final_test_accuracy"] for r in rows])))
  ok = best["normalized"][0] < best["standard"][0]
  report.compare(
      "training: final train loss and test error at each init's best learning rate",
      "normalized lower test error: Shapeset-3x2 "
      f"{PAPER_ERRORS['standard'][0]}% vs {PAPER_ERRORS['normalized'][0]}%, MNIST "
      f"{PAPER_ERRORS['standard'][1]}% vs {PAPER_ERRORS['normalized'][1]}% (standard vs "
      "normalized)",
      f"standard: loss {best['standard'][0]:.3f}, test error "
      f"{100 * (1 - best['standard'][1]):.1f}% (lr {best_lr['standard']}); normalized: loss "
      f"{best['normalized'][0]:.3f}, test error {100 * (1 - best['normalized'][1]):.1f}% "
      f"(lr {best_lr['normalized']})", ok)
  checks.append(ok)
  return checks


def _discussion(s: dict[str, Any], at_init: dict, predicted: dict,
                train_rows: list[dict[str, Any]], best_lr: dict[str, float],
                scale: str) -> str:
  std, norm = at_init["standard"], at_init["normalized"]
  text = (
      "At initialization the paper's analysis holds quantitatively: with the standard "
      f"init the activations' std falls from {std['act_std'][0]:.3f} in layer 1 to "
      f"{std['act_std'][-1]:.3f} in layer 5 and the back-propagated gradients' std rises "
      f"from {std['grad_std'][0]:.2e} to {std['grad_std'][-1]:.2e} going up (so it shrinks "
      "toward the input), while the weight gradients, the product of the two, stay "
      f"level (ratio {_ratio(std['wgrad_std']):.2f}): that is why the paper's Figure 8 "
      "finds them similar across layers even though the back-propagated gradients are not. "
      "The mean-field theory (n Var[W] = 1/3 per layer, with tanh's compression) predicts "
      "each ratio. With the normalized init the gradients are level (ratio "
      f"{_ratio(norm['grad_std']):.2f}) and the activations decay only slowly (ratio "
      f"{_ratio(norm['act_std']):.2f}): tanh at n Var[W] = 1 is critical and q^l decays like "
      "1/(2l), not geometrically. With MNIST-1D's 40 inputs the normalized first layer "
      "(40 -> width) has n_in Var[W] = 80/(40 + width) < 1, so layer 1 starts smaller than "
      "in the paper's 1024 -> 1000 layer; the theory accounts for it.")
  best = {}
  for name in INITS:
    rows = [r for r in train_rows if r["init"] == name and r["learning_rate"] == best_lr[name]]
    best[name] = (float(np.mean([r["final_train_loss"] for r in rows])),
                  1 - float(np.mean([r["final_test_accuracy"] for r in rows])))
  text += (
      f" Training after {s['steps']} steps: train loss {best['standard'][0]:.3f} (standard) "
      f"vs {best['normalized'][0]:.3f} (normalized), test error "
      f"{100 * best['standard'][1]:.1f}% vs {100 * best['normalized'][1]:.1f}%. This is the "
      "weakest part of the comparison: MNIST-1D is not Shapeset-3x2, the paper trained to "
      "convergence while this is a fixed, short budget, and a 5-layer tanh net is "
      "trainable from either init, so only the direction of the difference is compared, "
      "not its size.")
  edge = [n for n in INITS if best_lr[n] == max(s["learning_rates"])]
  if edge:
    text += (f" The best learning rate of {' and '.join(edge)} is the largest of the grid "
             f"({max(s['learning_rates'])}); a larger one might train faster still.")
  if scale == "tiny":
    text += (" At the tiny scale (width 16, 20 steps on digits) the ratios are noisy and "
             "the training meaningless; the run only checks the code path.")
  elif scale == "quick":
    text += (f" The quick run measures at init at the paper's width ({s['probe_width']}) "
             f"but trains at width {s['train_width']} for {s['steps']} steps with one seed "
             "(CPU time); `--full` trains width 1000 for 20000 steps at four learning rates "
             "and three seeds.")
  return text


# ---------------------------------------------------------------------------
# Figures.


def _histograms(trained: dict) -> Any:
  plt = pyplot()
  fig, axes = plt.subplots(4, 2, figsize=(10, 12))
  colors = plt.get_cmap("viridis")(np.linspace(0, 1, DEPTH))
  for col, name in enumerate(INITS):
    for row, (key, when) in enumerate([("act", "init"), ("act", "trained"),
                                       ("grad", "init"), ("grad", "trained")]):
      ax = axes[row, col]
      values = trained[name][when][key].reshape(DEPTH, -1)
      if key == "act":
        edges = np.linspace(-1, 1, 61)
      else:  # gradients have long tails: bin the central 99.8% of all layers' values
        edges = np.linspace(*np.quantile(values, [0.001, 0.999]), 61)
      for layer in range(DEPTH):
        inside = values[layer][(values[layer] >= edges[0]) & (values[layer] <= edges[-1])]
        ax.hist(inside, bins=edges, density=True, histtype="step", color=colors[layer],
                label=f"layer {layer + 1}")
      what = "activation tanh(s)" if key == "act" else "back-propagated gradient dC/ds"
      ax.set_title(f"{name} init, {'at init' if when == 'init' else 'trained'}: {what}",
                   fontsize=9)
      ax.set_ylabel("density")
      ax.legend(fontsize=7)
  fig.tight_layout()
  return fig


def _profiles(s: dict[str, Any], at_init: dict, predicted: dict) -> Any:
  plt = pyplot()
  fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
  layers = np.arange(1, DEPTH + 1)
  colors = {"standard": "tab:red", "normalized": "tab:blue"}
  for key, ax, title in (("act_std", axes[0], "activations tanh(s^l)"),
                         ("grad_std", axes[1], "back-propagated dC/ds^l"),
                         ("wgrad_std", axes[2], "weight gradients dC/dW^l")):
    for name in INITS:
      m, p = at_init[name][key], predicted[name][key]
      if key != "act_std":  # theory predicts ratios: anchor it at the last layer
        p = p * m[-1] / p[-1]
      ax.plot(layers, m, "o", color=colors[name], label=f"{name} (measured)")
      ax.plot(layers, p, "-", color=colors[name], label=f"{name} (theory)")
    ax.set_yscale("log")
    ax.set_xlabel("layer")
    ax.set_title(f"std of {title}", fontsize=10)
  axes[0].legend(fontsize=7)
  ax = axes[3]
  for name in INITS:
    ax.plot(layers[:-1] + 0.5, at_init[name]["jacobian_mean_sv"], "o-", color=colors[name],
            label=name)
    ax.axhline(PAPER_JACOBIAN[name], color=colors[name], ls="--", lw=0.8)
  ax.set_ylim(0, 1.2)
  ax.set_xlabel("layer l -> l+1")
  ax.set_title("mean singular value of dz^(l+1)/dz^l", fontsize=10)
  ax.legend(fontsize=7)
  fig.suptitle(f"tanh MLP, {DEPTH} x {s['probe_width']}, at initialization", fontsize=10)
  fig.tight_layout()
  return fig


def _training(s: dict[str, Any], result: Any, names: dict[str, str],
              best_lr: dict[str, float]) -> Any:
  plt = pyplot()
  fig, axes = plt.subplots(1, 5, figsize=(19, 3.6))
  colors = {"standard": "tab:red", "normalized": "tab:blue"}
  cmap = plt.get_cmap("viridis")
  seed0 = result.config.seeds[0]
  for i, m in enumerate(result.models):
    name = names[m["init"]]
    steps = result.curves["eval_step"][i]
    style = "-" if m["learning_rate"] == best_lr[name] else ":"
    if m.seed == seed0:
      axes[0].plot(steps, result.curves["train_loss"][i], style, color=colors[name],
                   label=f"{name}, lr {m['learning_rate']}")
    if m["learning_rate"] != best_lr[name] or m.seed != seed0:
      continue
    col = 1 if name == "standard" else 3
    for layer in range(DEPTH):
      c = cmap(layer / (DEPTH - 1))
      axes[col].plot(steps, np.sqrt(result.curves["probe_second_moment"][i, :, layer]),
                     color=c, label=f"layer {layer + 1}")
      axes[col + 1].plot(steps, result.curves["probe_grad_norm"][i, :, layer], color=c,
                         label=f"layer {layer + 1}")
    axes[col].set_title(f"{name}: rms pre-activation", fontsize=10)
    axes[col + 1].set_title(f"{name}: gradient norm wrt s^l", fontsize=10)
    axes[col + 1].set_yscale("log")
  axes[0].set_title("training loss", fontsize=10)
  axes[0].legend(fontsize=7)
  for ax in axes:
    ax.set_xlabel("step")
  axes[1].legend(fontsize=7)
  fig.tight_layout()
  return fig


STUDY = Study(name="glorot_bengio", title=TITLE, run=run)
