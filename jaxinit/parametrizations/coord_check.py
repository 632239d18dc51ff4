"""The coordinate check: does every layer's activation keep its size as the model grows?

Yang et al. 2022 (Tensor Programs V, sec. 6 and Fig. 5; microsoft/mup's
``get_coord_data``): train a family of models at several widths for a few
steps on a fixed batch and record, at each step, the typical size of every
layer's output coordinates. Under a correct muP each hidden layer's curve
against width is flat at every step; under SP the activations of trained
layers grow with width from the first update on.

:func:`coord_check` trains each width's seeds together (one ``jit`` of a
``vmap`` over seeds, a ``lax.scan`` over steps) and records, at step ``t =
1..steps``, the forward pass *before* the ``t``-th update (``t = 1`` is the
initialization, as in mup): ``mean |x|`` (mup's ``l1``) and the RMS
``sqrt(mean x^2)`` of every layer's output, over the batch and features.
Layers are found by interception (:mod:`jaxinit.parametrizations.capture`).

The slope of ``log stat`` against ``log size`` (least squares over the
sizes, stats averaged over seeds) summarizes each curve: 0 is flat, 1 grows
like the width. The rule: **the check passes when every hidden layer's
|slope| is below ``tolerance`` (0.1) at every step, for both statistics**;
a hidden layer is one whose output features grow with the size (the
logits, with a fixed number of classes, are reported but not judged).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit import checks
from jaxinit.parametrizations.core import get as get_parametrization
from jaxinit.parametrizations.scaling import param_drawer

__all__ = ["CoordCheck", "CoordRecord", "CoordSlope", "coord_check", "LOSSES", "STATS"]

LOSSES = ("cross_entropy", "mse")
STATS = ("mean_abs", "rms")


class CoordRecord(NamedTuple):
  """One layer at one size and step (statistics averaged over seeds).

  Attributes:
    size: the width (or depth).
    step: ``t``: the forward pass before the ``t``-th update (1: at init).
    layer: the layer's name (its module path; ``"output"``: the model's output).
    hidden: whether its features grow with the size.
    mean_abs: ``mean |x|`` (mean over seeds).
    rms: ``sqrt(mean x^2)`` (mean over seeds).
    mean_abs_std: standard deviation of ``mean_abs`` over seeds.
    rms_std: standard deviation of ``rms`` over seeds.
    loss: the minibatch loss at that step (mean over seeds).
  """
  size: int
  step: int
  layer: str
  hidden: bool
  mean_abs: float
  rms: float
  mean_abs_std: float
  rms_std: float
  loss: float


class CoordSlope(NamedTuple):
  """The log-log slope of one layer's statistics against the size, at one step.

  Attributes:
    layer: the layer's name.
    step: the step.
    hidden: whether it is judged.
    mean_abs: slope of ``log mean |x|`` against ``log size`` (0 if the layer is exactly
      zero at every size, as a zero-initialized layer at step 1; NaN if some value is 0
      or not finite).
    rms: slope of ``log rms``.
  """
  layer: str
  step: int
  hidden: bool
  mean_abs: float
  rms: float


@dataclasses.dataclass(frozen=True)
class CoordCheck:
  """A coordinate check's table, slopes and verdict.

  Attributes:
    parametrization: the parametrization's name.
    dimension: ``"width"`` or ``"depth"``.
    sizes: the sizes trained.
    steps: the number of steps recorded.
    records: every layer at every size and step.
    slopes: every layer's slopes at every step.
    tolerance: the largest |slope| a hidden layer may have.
    passed: whether every hidden layer's |slope| is below ``tolerance`` at
      every step, for both statistics (a NaN slope fails).
    rule: the rule in words.
  """
  parametrization: str
  dimension: str
  sizes: tuple[int, ...]
  steps: int
  records: tuple[CoordRecord, ...]
  slopes: tuple[CoordSlope, ...]
  tolerance: float
  passed: bool
  rule: str

  def slope(self, layer: str, step: int, stat: str = "mean_abs") -> float:
    """The slope of ``layer``'s ``stat`` at ``step``."""
    stat = checks.choice("stat", stat, STATS)
    for s in self.slopes:
      if s.layer == layer and s.step == step:
        return getattr(s, stat)
    raise KeyError(f"no layer {layer!r} at step {step}; layers: {self.layers()}")

  def layers(self, hidden: bool | None = None) -> list[str]:
    """The layers' names (only the hidden ones, or the others, if ``hidden`` is given)."""
    names = dict.fromkeys(s.layer for s in self.slopes
                          if hidden is None or s.hidden == hidden)
    return list(names)

  def max_slope(self, step: int | None = None, hidden: bool = True) -> float:
    """The largest |slope| (both statistics) over the (hidden) layers, at ``step`` or any."""
    values = [abs(v) for s in self.slopes if s.hidden == hidden and (step is None or
                                                                      s.step == step)
              for v in (s.mean_abs, s.rms)]
    return max(values) if values else math.nan

  def to_pandas(self) -> Any:
    """The records as a ``pandas.DataFrame`` (pandas imported here)."""
    import pandas as pd  # pylint: disable=import-outside-toplevel
    return pd.DataFrame(self.records, columns=CoordRecord._fields)

  def plot(self, path: Any = None, stat: str = "mean_abs") -> Any:
    """mup's coord-check figure: one panel per step, ``stat`` against the size (log-log),
    one line per layer. Saves to ``path`` if given; returns the matplotlib figure."""
    stat = checks.choice("stat", stat, STATS)
    import matplotlib  # pylint: disable=import-outside-toplevel
    if path is not None:
      matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    fig, axes = plt.subplots(1, self.steps, figsize=(2.6 * self.steps, 2.8), sharey=True,
                             squeeze=False)
    cmap = plt.get_cmap("viridis")
    layers = self.layers()
    for t, ax in enumerate(axes[0], start=1):
      for i, layer in enumerate(layers):
        rows = sorted((r for r in self.records if r.layer == layer and r.step == t),
                      key=lambda r: r.size)
        ax.plot([r.size for r in rows], [getattr(r, stat) for r in rows], marker=".",
                color=cmap(i / max(len(layers) - 1, 1)), ls="-" if rows[0].hidden else ":",
                label=layer)
      ax.set_xscale("log", base=2)
      ax.set_yscale("log")
      ax.set_title(f"t = {t}", fontsize=9)
      ax.set_xlabel(self.dimension)
    axes[0][0].set_ylabel("mean |x|" if stat == "mean_abs" else "RMS")
    axes[0][-1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    verdict = "passed" if self.passed else "failed"
    fig.suptitle(f"{self.parametrization}: coordinate check {verdict} (max |slope| of hidden "
                 f"layers {self.max_slope():.2f}, tolerance {self.tolerance:g})", fontsize=10)
    fig.tight_layout()
    if path is not None:
      fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig

  def __str__(self) -> str:
    lines = [f"coordinate check ({self.parametrization}, {self.dimension} "
             f"{list(self.sizes)}): {'passed' if self.passed else 'FAILED'}; {self.rule}",
             "layer, hidden, max |slope| per step (mean |x|)"]
    for layer in self.layers():
      per_step = [abs(s.mean_abs) for s in self.slopes if s.layer == layer]
      lines.append(f"  {layer}: {'hidden' if per_step and self._hidden(layer) else 'other'} "
                   + " ".join(f"{v:.3f}" for v in per_step))
    return "\n".join(lines)

  def _hidden(self, layer: str) -> bool:
    return any(s.hidden for s in self.slopes if s.layer == layer)


def _loss_fn(loss: Any) -> Callable[[jax.Array, jax.Array], jax.Array]:
  if callable(loss):
    return loss
  loss = checks.choice("loss", loss, LOSSES)
  if loss == "cross_entropy":
    def cross_entropy(logits, labels):
      logp = jax.nn.log_softmax(logits.astype(jnp.float32))
      return -jnp.mean(jnp.take_along_axis(logp, labels[..., None].astype(jnp.int32), -1))
    return cross_entropy
  return lambda y, t: jnp.mean((y.astype(jnp.float32) - t) ** 2)


def _stats(acts: dict[str, jax.Array]) -> dict[str, jax.Array]:
  out = {}
  for name, a in acts.items():
    a = a.astype(jnp.float32)
    out[name] = jnp.stack([jnp.mean(jnp.abs(a)), jnp.sqrt(jnp.mean(a * a))])
  return out


def _slope(sizes: Sequence[int], values: Sequence[float]) -> float:
  v = np.asarray(values, np.float64)
  if len(v) >= 2 and np.all(v == 0):  # exactly zero at every size (a zero-init layer): flat
    return 0.0
  if len(v) < 2 or not np.all(np.isfinite(v)) or np.any(v <= 0):
    return math.nan
  x = np.log(np.asarray(sizes, np.float64))
  return float(np.polyfit(x, np.log(v), 1)[0])


def _program(kind: str, model: Any, scaling: Any, inputs: tuple[Any, ...], loss: Callable,
             optimizer: str, learning_rate: float, optimizer_kwargs: dict[str, Any],
             steps: int, apply: Callable | None):
  """``(init_states(key) -> (params, rest), run(params, rest, x, y) -> (losses, stats)
  batched over seeds, call(params, rest, x) -> (y, activations))``."""
  import optax  # pylint: disable=import-outside-toplevel
  from jaxinit.parametrizations import capture  # pylint: disable=import-outside-toplevel
  from jaxinit.rules.api import initialize  # pylint: disable=import-outside-toplevel
  if kind == "nnx":
    from flax import nnx  # pylint: disable=import-outside-toplevel
    graphdef, _, rest0 = nnx.split(model, nnx.Param, ...)
    forward = capture.nnx_forward(graphdef, apply)
    draw_all = jax.jit(param_drawer(model, scaling.rules))

    def init_states(key):
      return draw_all(key), rest0

    def call(params, rest, x):
      return forward((params, rest), x)
  elif kind == "linen":
    forward = capture.linen_forward(model)

    def init_states(key):
      variables = dict(initialize(model, scaling.rules, key, *inputs))
      params = variables.pop("params")
      return params, variables

    def call(params, rest, x):
      return forward({"params": params, **rest}, x)
  else:
    raise TypeError(f"coord_check trains Flax NNX or linen models; model_fn gave a {kind}")

  def run(params, rest, x, y):
    tx = scaling.optimizer(optimizer, learning_rate, **optimizer_kwargs)

    def loss_of(p):
      out, acts = call(p, rest, x)
      return loss(out, y), _stats(acts)

    def step(carry, _):
      p, state = carry
      (value, stats), grads = jax.value_and_grad(loss_of, has_aux=True)(p)
      updates, state = tx.update(grads, state, p)
      return (optax.apply_updates(p, updates), state), (value, stats)

    _, (losses, stats) = jax.lax.scan(step, (params, tx.init(params)), None, length=steps)
    return losses, stats

  return init_states, jax.jit(jax.vmap(run, (0, 0, None, None))), call


def coord_check(model_fn: Callable[[int], Any], sizes: Sequence[int], *, base: Any,
                batch: tuple[Any, Any], parametrization: Any = "mup",
                loss: Any = "cross_entropy", optimizer: str = "adam",
                learning_rate: float | None = None, steps: int = 5, seeds: int = 3,
                rules: Any = None, roles: Any = None, key: Any = 0, tolerance: float = 0.1,
                dimension: str = "width", optimizer_kwargs: dict[str, Any] | None = None,
                apply: Callable[..., Any] | None = None) -> CoordCheck:
  """Trains ``model_fn(size)`` for each size a few steps and checks that activations keep
  their size (the rule is in the module docstring).

  Args:
    model_fn: ``model_fn(size) -> model``: a Flax NNX module (concrete or from
      ``nnx.eval_shape``) or a linen module. For
      ``Parametrization(readout="multiplier")`` it must apply the readout
      multiplier itself (``base / size``, e.g. with
      :class:`jaxinit.parametrizations.nnx.Readout`).
    sizes: the widths (or depths), at least two.
    base: the base size (``model_fn(base)`` is the base model) or the base model.
    batch: ``(x, y)``, trained on at every step (mup's ``fix_data``).
    parametrization: a :class:`~jaxinit.parametrizations.Parametrization`,
      name or config.
    loss: ``"cross_entropy"`` (integer labels), ``"mse"`` or ``fn(y_pred, y)``.
    optimizer: ``"adam"``, ``"adamw"`` or ``"sgd"`` (with the parametrization's factors).
    learning_rate: the base learning rate (default: mup's, 1e-3 for Adam, 0.1 for SGD).
    steps: steps recorded (``t = 1`` is the initialization).
    seeds: models per size, trained together (``vmap``).
    rules: the base model's init rules (default
      :func:`~jaxinit.parametrizations.default_rules`).
    roles: role overrides, as :func:`~jaxinit.parametrizations.scale` takes.
    key: the base key (an int seed or a ``jax.random.key``); seed ``s`` uses
      ``fold_in(key, s)`` at every size.
    tolerance: the largest |slope| a hidden layer may have.
    dimension: ``"width"`` or ``"depth"`` (names the axis; for depth, layers
      indexed beyond the smallest model's blocks are left out).
    optimizer_kwargs: more arguments of the optimizer (``momentum``, ``eps``, ...).
    apply: ``apply(model, x) -> y`` for an NNX model (default ``model(x)``).

  Returns:
    A :class:`CoordCheck`.

  Raises:
    ValueError: fewer than two sizes; bad arguments (named).

  Examples:
    >>> import jax, jaxinit
    >>> from flax import nnx
    >>> class MLP(nnx.Module):
    ...   def __init__(self, width, rngs):
    ...     self.input = nnx.Linear(8, width, rngs=rngs)
    ...     self.hidden = nnx.Linear(width, width, rngs=rngs)
    ...     self.readout = nnx.Linear(width, 4, rngs=rngs)
    ...   def __call__(self, x):
    ...     return self.readout(nnx.relu(self.hidden(nnx.relu(self.input(x)))))
    >>> x = jax.random.normal(jax.random.key(1), (32, 8))
    >>> y = jax.random.randint(jax.random.key(2), (32,), 0, 4)
    >>> check = jaxinit.coord_check(lambda w: MLP(w, nnx.Rngs(0)), [64, 256], base=64,
    ...                             batch=(x, y), steps=3, seeds=1, learning_rate=0.01)
    >>> check.passed, check.layers(hidden=True)
    (True, ['hidden', 'input'])
  """
  from jaxinit.rules.targets import target_kind  # pylint: disable=import-outside-toplevel
  p = get_parametrization(parametrization)
  sizes = tuple(checks.positive_int(f"sizes[{i}]", s) for i, s in enumerate(sizes))
  if len(set(sizes)) < 2:
    raise ValueError(f"sizes must hold at least two different sizes, got {list(sizes)}")
  steps = checks.positive_int("steps", steps)
  seeds = checks.positive_int("seeds", seeds)
  tolerance = checks.real("tolerance", tolerance, minimum=0.0, exclusive_minimum=True)
  dimension = checks.choice("dimension", dimension, ("width", "depth"))
  optimizer = checks.choice("optimizer", optimizer, ("adam", "adamw", "sgd"))
  if learning_rate is None:
    learning_rate = 0.1 if optimizer == "sgd" else 1e-3
  learning_rate = checks.real("learning_rate", learning_rate, minimum=0.0, exclusive_minimum=True)
  loss_fn = _loss_fn(loss)
  x, y = (jnp.asarray(a) for a in batch)
  base_model = model_fn(checks.positive_int("base", base)) if isinstance(base, int) else base
  from jaxinit.rules.keys import as_key  # pylint: disable=import-outside-toplevel
  root = as_key(key)
  per_size: dict[int, tuple[np.ndarray, dict[str, np.ndarray], dict[str, tuple]]] = {}
  for size in sizes:
    model = model_fn(size)
    kind = target_kind(model)
    inputs = (x,) if kind == "linen" else ()
    scaling = p.scale(model, *inputs, base=base_model, rules=rules, roles=roles)
    init_states, run, call = _program(kind, model, scaling, inputs, loss_fn, optimizer,
                                      learning_rate, dict(optimizer_kwargs or {}), steps, apply)
    states = [init_states(jax.random.fold_in(root, s)) for s in range(seeds)]
    params, rest = (jax.tree.map(lambda *a: jnp.stack(a), *[st[i] for st in states])
                    for i in range(2))
    losses, stats = jax.device_get(run(params, rest, x, y))
    acts = jax.eval_shape(lambda p, r: call(p, r, x)[1], *states[0])
    shapes = {name: tuple(a.shape) for name, a in acts.items()}
    per_size[size] = (np.asarray(losses), {k: np.asarray(v) for k, v in stats.items()}, shapes)
  return _summarize(p.name, dimension, sizes, steps, per_size, tolerance)


def _max_index(name: str) -> int:
  digits = [int(part) for part in name.replace("[", "/").replace("]", "").split("/")
            if part.isdigit()]
  return max(digits) if digits else -1


def _summarize(name: str, dimension: str, sizes: tuple[int, ...], steps: int,
               per_size: dict[int, Any], tolerance: float) -> CoordCheck:
  common = set.intersection(*(set(stats) for _, stats, _ in per_size.values()))
  smallest = min(sizes)
  if dimension == "depth":
    common = {n for n in common if _max_index(n) < smallest}
  layers = sorted(common)
  hidden = {}
  for layer in layers:
    last = {per_size[s][2][layer][-1] if per_size[s][2][layer] else 1 for s in sizes}
    hidden[layer] = len(last) > 1 if dimension == "width" else layer != "output"
  records = []
  for size in sizes:
    losses, stats, _ = per_size[size]
    for t in range(steps):
      for layer in layers:
        values = stats[layer][:, t]  # (seeds, 2)
        records.append(CoordRecord(size, t + 1, layer, hidden[layer],
                                   float(values[:, 0].mean()), float(values[:, 1].mean()),
                                   float(values[:, 0].std()), float(values[:, 1].std()),
                                   float(losses[:, t].mean())))
  slopes = []
  for t in range(1, steps + 1):
    for layer in layers:
      rows = sorted((r for r in records if r.layer == layer and r.step == t),
                    key=lambda r: r.size)
      xs = [r.size for r in rows]
      slopes.append(CoordSlope(layer, t, hidden[layer], _slope(xs, [r.mean_abs for r in rows]),
                               _slope(xs, [r.rms for r in rows])))
  judged = [v for s in slopes if s.hidden for v in (s.mean_abs, s.rms)]
  passed = bool(judged) and all(abs(v) < tolerance for v in judged)
  rule = (f"every hidden layer's |log-log slope| of mean |x| and RMS against {dimension} "
          f"< {tolerance:g} at every step 1..{steps}")
  return CoordCheck(name, dimension, sizes, steps, tuple(records), tuple(slopes), tolerance,
                    passed, rule)
