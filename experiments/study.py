"""What every study shares: its description, the three scales, and the report it writes.

A study is a function ``run(scale, out) -> Report`` plus its claim. Scales:

* ``"tiny"``: seconds, for the test suite (checks the code path, not the claim);
* ``"quick"``: the default, minutes on 2 CPU cores (what README's index shows);
* ``"full"``: the paper's scale, meant for a GPU.

The report puts the claim, the paper's numbers and the measured numbers side
by side, says whether the claim held, and lists the figures and CSV files
written next to it. Studies whose models the sweep cannot express (a
transformed activation, a transformer) train them with
:func:`train_population`: one compiled program per architecture, its members
(seeds, learning rates) vmapped.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

SCALES: tuple[str, ...] = ("tiny", "quick", "full")
VERDICTS: tuple[str, ...] = ("held", "partly held", "did not hold", "not tested at this scale")


@dataclasses.dataclass
class Comparison:
  """One line of a report's results table.

  Attributes:
    quantity: what is compared.
    paper: the paper's value or statement ("" when it gives none).
    measured: what this run measured.
    held: whether the claim held for this line (None: no verdict).
  """
  quantity: str
  paper: str
  measured: str
  held: bool | None = None


@dataclasses.dataclass
class Report:
  """A study's ``report.md``.

  Attributes:
    title: the study's title.
    claim: the claim tested, in one or two sentences, with its source.
    setup: networks, data, training and what is measured, in plain words.
    scale: ``"tiny"``, ``"quick"`` or ``"full"``.
    comparisons: the results table.
    verdict: one of :data:`VERDICTS`.
    discussion: what the numbers mean; why a claim did not reproduce at this
      scale and what ``--full`` runs.
    figures: ``(file name, caption)`` of the PNGs in the study's folder.
    data: file names of the CSVs in the study's folder.
    wall_s: seconds the study took.
  """
  title: str
  claim: str
  setup: str
  scale: str
  comparisons: list[Comparison] = dataclasses.field(default_factory=list)
  verdict: str = "not tested at this scale"
  discussion: str = ""
  figures: list[tuple[str, str]] = dataclasses.field(default_factory=list)
  data: list[str] = dataclasses.field(default_factory=list)
  wall_s: float = math.nan

  def compare(self, quantity: str, paper: str, measured: str, held: bool | None = None) -> None:
    """Adds a line to the results table."""
    self.comparisons.append(Comparison(quantity, paper, measured, held))

  def markdown(self, name: str) -> str:
    """The report as Markdown."""
    mark = {True: "yes", False: "**no**", None: ""}
    lines = [f"# {self.title}", "",
             f"**Claim.** {self.claim}", "",
             f"**Setup** (scale `{self.scale}`; `jaxinit experiments run {name}"
             f"{' --full' if self.scale == 'full' else ''} --out DIR`). {self.setup}", "",
             "## Results", "",
             "| quantity | paper | measured | held |", "|---|---|---|---|"]
    lines += [f"| {c.quantity} | {c.paper} | {c.measured} | {mark[c.held]} |"
              for c in self.comparisons]
    lines += ["", f"**Verdict: {self.verdict}.** {self.discussion}".rstrip(), ""]
    for file, caption in self.figures:
      lines += [f"![{caption}]({file})", "", f"*{caption}*", ""]
    if self.data:
      lines += ["Data: " + ", ".join(f"[{f}]({f})" for f in self.data) + ".", ""]
    if math.isfinite(self.wall_s):
      lines += [f"Run time: {self.wall_s:.0f} s.", ""]
    return "\n".join(lines)


RunFn = Callable[[str, Path], Report]


@dataclasses.dataclass(frozen=True)
class Study:
  """A study: its name, title, and ``run(scale, out_dir) -> Report``.

  Attributes:
    name: the name ``jaxinit experiments run`` takes.
    title: a one-line title.
    run: trains/measures at ``scale``, writes figures and CSVs into the
      folder and returns the report (:func:`run_study` writes it).
  """
  name: str
  title: str
  run: RunFn


def run_study(study: Study, scale: str, out_dir: str | Path) -> Report:
  """Runs ``study`` at ``scale`` into ``out_dir`` and writes ``report.md`` there.

  Raises:
    ValueError: an unknown scale.
  """
  if scale not in SCALES:
    raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
  out = Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  tick = time.perf_counter()
  report = study.run(scale, out)
  report.wall_s = time.perf_counter() - tick
  if report.verdict not in VERDICTS:
    raise ValueError(f"{study.name}: verdict must be one of {VERDICTS}, got {report.verdict!r}")
  (out / "report.md").write_text(report.markdown(study.name))
  return report


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> str:
  """Writes dict rows (columns: the union of keys, first-seen order); returns the file name."""
  path = Path(path)
  columns: dict[str, None] = {}
  for row in rows:
    columns.update(dict.fromkeys(row))
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(list(columns))
    for row in rows:
      writer.writerow(["" if row.get(c) is None else _cell(row.get(c)) for c in columns])
  return path.name


def _cell(value: Any) -> str:
  if isinstance(value, float):
    return "" if math.isnan(value) else f"{value:.6g}"
  return str(value)


def save_figure(fig: Any, path: str | Path) -> str:
  """Saves a matplotlib figure as PNG (dpi 110), closes it; returns the file name."""
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  path = Path(path)
  fig.savefig(path, dpi=110, bbox_inches="tight")
  plt.close(fig)
  return path.name


def pyplot() -> Any:
  """``matplotlib.pyplot`` with the non-interactive Agg backend."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  return plt


def verdict_of(checks: Sequence[bool]) -> str:
  """The verdict of a list of per-criterion outcomes: all, some or none held.

  Examples:
    >>> verdict_of([True, True]), verdict_of([True, False]), verdict_of([False])
    ('held', 'partly held', 'did not hold')
  """
  return "held" if all(checks) else "partly held" if any(checks) else "did not hold"


def pick(scale: str, tiny: Any, quick: Any, full: Any) -> Any:
  """The value for ``scale``.

  Examples:
    >>> pick("quick", 1, 2, 3)
    2
  """
  return {"tiny": tiny, "quick": quick, "full": full}[scale]


@dataclasses.dataclass(frozen=True)
class Training:
  """What :func:`train_population` measured (numpy arrays, members on the leading axis).

  Attributes:
    params: every member's final params (the last finite ones of a diverged member).
    step_loss: ``(members, steps)`` minibatch loss of every step (NaN from divergence on).
    eval_step: ``(evals,)`` the steps evaluated, 0 (init) first.
    loss: ``{set name: (members, evals)}`` loss on each evaluation set.
    accuracy: ``{set name: (members, evals)}`` accuracy on each evaluation set.
    diverged_step: ``(members,)`` the first step whose loss or update was not finite (-1: none).
  """
  params: Any
  step_loss: Any
  eval_step: Any
  loss: dict[str, Any]
  accuracy: dict[str, Any]
  diverged_step: Any


def train_population(apply: Callable[[Any, Any], Any], params: Any, train: tuple[Any, Any], *,
                     evaluate: Mapping[str, tuple[Any, Any]], optimizer: Callable[..., Any],
                     learning_rate: Any, steps: int, batch_size: int, eval_every: int,
                     seed: int = 0) -> Training:
  """Trains a population of one architecture at once: ``jit`` of ``vmap`` over its members.

  Every member is a classifier ``apply(params, x) -> logits`` (softmax
  cross-entropy over the last axis; leading axes beyond the batch, e.g.
  sequence positions, are averaged) trained with its own minibatches (drawn
  with replacement: member ``i``'s step-``t`` batch from
  ``fold_in(fold_in(key(seed), i), t)``), optimizer state and learning rate.
  The whole run is one compiled program: a scan over blocks of
  ``eval_every`` steps, each followed by an evaluation on every set of
  ``evaluate``. A member whose loss or update is not finite is marked
  diverged at that step and keeps its last finite params (NaN never spreads;
  its later step losses are NaN), as the sweep engine does.

  Args:
    apply: one member's forward pass, traceable.
    params: the members' initial params, stacked on a leading axis.
    train: ``(x, y)`` training arrays; labels are integer classes.
    evaluate: ``{name: (x, y)}`` sets evaluated at step 0 and every ``eval_every`` steps.
    optimizer: an optax factory taking ``learning_rate`` (``optax.adam``).
    learning_rate: a scalar, or ``(members,)``.
    steps: optimizer steps, a multiple of ``eval_every``.
    batch_size: examples per step.
    eval_every: steps between evaluations.
    seed: the root of the minibatch keys.

  Returns:
    A :class:`Training`.

  Raises:
    ValueError: ``steps``, ``eval_every`` or ``batch_size`` not a positive int, or ``steps``
      not a multiple of ``eval_every`` (naming the argument).
  """
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  import optax  # pylint: disable=import-outside-toplevel

  from jaxinit import checks  # pylint: disable=import-outside-toplevel

  steps = checks.positive_int("steps", steps)
  eval_every = checks.positive_int("eval_every", eval_every)
  batch_size = checks.positive_int("batch_size", batch_size)
  if steps % eval_every:
    raise ValueError(f"steps ({steps}) must be a positive multiple of eval_every ({eval_every})")
  members = jax.tree.leaves(params)[0].shape[0]
  rates = jnp.broadcast_to(jnp.asarray(learning_rate, jnp.float32), (members,))
  tx = optax.inject_hyperparams(optimizer)(learning_rate=1.0)
  x_train, y_train = (jnp.asarray(v) for v in train)
  # Every evaluation set in one forward pass (one traced graph, however many sets).
  names = list(evaluate)
  x_eval = jnp.concatenate([jnp.asarray(evaluate[n][0]) for n in names])
  y_eval = jnp.concatenate([jnp.asarray(evaluate[n][1]) for n in names])
  bounds = np.cumsum([0] + [len(evaluate[n][0]) for n in names])

  def metrics(logits, y):
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    return loss, jnp.argmax(logits, axis=-1) == y

  def evaluations(p):
    loss, correct = metrics(apply(p, x_eval), y_eval)
    return {n: (jnp.mean(loss[lo:hi]), jnp.mean(correct[lo:hi]))
            for n, lo, hi in zip(names, bounds[:-1], bounds[1:])}

  def finite(tree):
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in jax.tree.leaves(tree)]))

  def member(p, rate, key):
    opt_state = tx.init(p)
    opt_state = opt_state._replace(hyperparams={**opt_state.hyperparams, "learning_rate": rate})

    def step(state, t):
      p, opt_state, alive, diverged = state
      index = jax.random.randint(jax.random.fold_in(key, t), (batch_size,), 0,
                                 x_train.shape[0])
      loss, grads = jax.value_and_grad(lambda q: jnp.mean(metrics(
          apply(q, x_train[index]), y_train[index])[0]))(p)
      updates, new_opt = tx.update(grads, opt_state, p)
      new_p = optax.apply_updates(p, updates)
      ok = alive & jnp.isfinite(loss) & finite(new_p)
      keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)  # noqa: E731
      state = (keep(new_p, p), keep(new_opt, opt_state), ok,
               jnp.where(alive & ~ok, t, diverged))
      return state, jnp.where(alive, loss, jnp.nan)

    def block(state, ts):
      state, losses = jax.lax.scan(step, state, ts)
      return state, (losses, evaluations(state[0]))

    start = (p, opt_state, jnp.bool_(True), jnp.int32(-1))
    ts = jnp.arange(steps, dtype=jnp.int32).reshape(-1, eval_every)
    (p, _, _, diverged), (losses, evals) = jax.lax.scan(block, start, ts)
    evals = jax.tree.map(lambda first, rest: jnp.concatenate([first[None], rest]),
                         evaluations(start[0]), evals)
    return p, losses.reshape(-1), evals, diverged

  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(seed), i))(jnp.arange(members))
  p, losses, evals, diverged = jax.jit(jax.vmap(member))(params, rates, keys)
  evals = jax.device_get(evals)
  return Training(params=p, step_loss=np.asarray(losses),
                  eval_step=np.arange(0, steps + 1, eval_every),
                  loss={name: np.asarray(v[0]) for name, v in evals.items()},
                  accuracy={name: np.asarray(v[1]) for name, v in evals.items()},
                  diverged_step=np.asarray(diverged))


__all__ = ["Comparison", "Report", "SCALES", "Study", "Training", "VERDICTS", "pick", "pyplot",
           "run_study", "save_figure", "train_population", "verdict_of", "write_csv"]
