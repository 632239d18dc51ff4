"""``jaxinit plot DIR``: heatmaps, learning curves and probe profiles of a sweep, as PNGs in DIR.

Nothing is aggregated but seeds. Every axis that varies in the grid is drawn:
``x`` across each heatmap (and as the line colour of the curves), ``y`` down
each heatmap (and as rows of curve panels), and every other varying axis as
*facets*, one panel per combination of its values. Each value drawn is the
median over the cell's seeds, each band spans them, and every figure says so.
When the facets would need more than :data:`MAX_PANELS` panels, ``--where
AXIS=VALUE`` picks a slice (the figure names it).

* ``heatmap_{metric}.png``: a metric (final test loss, and accuracy for
  classification) over ``(y, x)``, a panel per facet; a cell whose seeds all
  diverged is marked ``x``;
* ``curves_loss.png``: train (dashed) and test (solid) loss against step;
* ``probe_{name}.png``: a probe per layer at initialization (solid) and at
  the end (dashed).

Loss and probe axes are logarithmic where the values span decades, with a
linear stretch around zero (``symlog``), so that zero init's all-zero
signals stay visible; layer and step ticks are integers. The axes default to
``weight_variance`` (or ``init``, ``learning_rate``, the first varying axis)
across and ``depth`` (or the next varying axis) down. matplotlib is imported
only here (the ``plot`` extra).
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxinit.sweep import config as config_lib
from jaxinit.sweep.config import SweepConfig

MAX_PANELS = 24
"""Most panels in one figure; more facets need ``--where``."""

SEEDS_NOTE = "median over seeds, band: min-max over seeds"


def default_axes(config: SweepConfig) -> tuple[str | None, str | None]:
  """``(x, y)``: weight_variance, init or learning_rate (or the first varying axis), then
  depth or the next.

  Examples:
    >>> from jaxinit.sweep.config import parse_config
    >>> default_axes(parse_config({"grid": {"init": ["zeros", "he_normal"], "depth": [2, 4]}}))
    ('init', 'depth')
  """
  varying = config.varying_axes()
  preferred_x = [a for a in ("weight_variance", "init", "learning_rate") if a in varying]
  x = preferred_x[0] if preferred_x else (varying[0] if varying else None)
  rest = [a for a in varying if a != x]
  y = "depth" if "depth" in rest else (rest[0] if rest else None)
  return x, y


def axis_labels(config: SweepConfig, axis: str | None) -> list[Any]:
  """The values of ``axis`` as ``results.csv`` writes them, in grid order."""
  if axis is None:
    return [None]
  return [config_lib.label(v) if isinstance(v, (dict, list)) else v for v in config.grid[axis]]


def _matches(row: Mapping[str, Any], axis: str | None, value: Any) -> bool:
  if axis is None:
    return True
  cell = row[axis]
  if isinstance(value, float) or isinstance(cell, float):
    try:
      return cell is not None and math.isclose(float(cell), float(value))
    except (TypeError, ValueError):
      return False
  return str(cell) == str(value)


def facets(config: SweepConfig, x: str | None, y: str | None,
           where: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
  """Every combination of the varying axes other than ``x``, ``y`` and those ``where`` fixes.

  Examples:
    >>> from jaxinit.sweep.config import parse_config
    >>> c = parse_config({"grid": {"init": ["zeros", "he_normal"], "depth": [2, 4],
    ...                            "learning_rate": [0.1, 0.01]}})
    >>> facets(c, "init", "depth")
    [{'learning_rate': 0.1}, {'learning_rate': 0.01}]
  """
  where = dict(where or {})
  free = [a for a in config.varying_axes() if a not in (x, y) and a not in where]
  combos = itertools.product(*(axis_labels(config, a) for a in free))
  return [{**where, **dict(zip(free, values))} for values in combos]


def select(rows: Sequence[Mapping[str, Any]], fixed: Mapping[str, Any]) -> list[int]:
  """Indices of the rows whose axes take the values ``fixed`` gives."""
  return [i for i, r in enumerate(rows) if all(_matches(r, a, v) for a, v in fixed.items())]


def grid_values(rows: Sequence[Mapping[str, Any]], config: SweepConfig, metric: str,
                x: str | None, y: str | None, fixed: Mapping[str, Any] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
  """Median over seeds of ``metric`` per ``(y, x)`` cell, and whether all its models diverged.

  Args:
    rows: result rows (as :func:`jaxinit.sweep.read_results` returns them).
    config: the sweep.
    metric: a numeric column, e.g. ``"final_test_loss"``.
    x: the axis across (None for one column).
    y: the axis down (None for one row).
    fixed: a value for every other varying axis (a facet).

  Returns:
    ``(values, diverged)``, both ``(len(y values), len(x values))``; NaN where
    no finite value exists.

  Raises:
    ValueError: a varying axis is neither ``x``, ``y`` nor fixed (the median
      would silently pool its values).
  """
  fixed = dict(fixed or {})
  loose = [a for a in config.varying_axes() if a not in (x, y) and a not in fixed]
  if loose:
    raise ValueError(f"{', '.join(loose)} vary: draw them (x, y) or fix them (a facet), "
                     f"never pool them")
  xs, ys = axis_labels(config, x), axis_labels(config, y)
  values = np.full((len(ys), len(xs)), np.nan)
  diverged = np.zeros((len(ys), len(xs)), bool)
  subset = [rows[i] for i in select(rows, fixed)]
  for i, yv in enumerate(ys):
    for j, xv in enumerate(xs):
      cell = [r for r in subset if _matches(r, x, xv) and _matches(r, y, yv)]
      finite = [float(r[metric]) for r in cell
                if r[metric] is not None and math.isfinite(float(r[metric]))]
      if finite:
        values[i, j] = float(np.median(finite))
      diverged[i, j] = bool(cell) and all(bool(r["diverged"]) for r in cell)
  return values, diverged


LABEL_CHARS = 26
"""Longest tick, legend or title value label drawn (longer ones are shortened)."""


def _compact(text: str) -> str:
  import re  # pylint: disable=import-outside-toplevel
  text = re.sub(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", text)  # a.b.C -> C
  text = re.sub(r"\b(?:module|path|init|param)=", "", text)
  return text.replace("rules(rules=[", "rules[").replace("])", "]")


def short_labels(values: Sequence[Any], limit: int = LABEL_CHARS) -> list[str]:
  """Readable labels of axis values: each at most ``limit`` characters, still distinct.

  A long label (a rule set's, ``rules(rules=[(module=flax.nnx.Conv,init=he_normal)])``)
  is first written compactly (import paths by their last name, no ``module=`` /
  ``path=`` / ``init=`` keys: ``rules[(Conv,he_normal)]``), then, if still too long,
  keeps its start and ends with ``...``; labels shortened alike are numbered (``#1``).

  Examples:
    >>> short_labels(["he_normal", "rules(rules=[(module=flax.nnx.Conv,init=he_normal)])"])
    ['he_normal', 'rules[(Conv,he_normal)]']
    >>> short_labels(["rules(rules=[(path=head/kernel,init=zeros)])",
    ...               "rules(rules=[(path=head/kernel,init=ones)])"], limit=16)
    ['rules[(head...#1', 'rules[(head...#2']
  """
  texts = [_compact(str(v)) if v is not None and len(str(v)) > limit else
           ("" if v is None else str(v)) for v in values]
  cut = [t if len(t) <= limit else t[:limit - 3] + "..." for t in texts]
  clashes = {c for c in cut if cut.count(c) > 1}
  seen: dict[str, int] = {}
  out = []
  for text, short in zip(texts, cut):
    if short in clashes and short != text:
      seen[short] = seen.get(short, 0) + 1
      short = f"{short[:limit - 4 - len(str(seen[short]))]}...#{seen[short]}"
    out.append(short)
  return out


def _title(fixed: Mapping[str, Any]) -> str:
  return ", ".join(f"{a} = {short_labels([v])[0]}" for a, v in fixed.items())


def _panels(n: int, columns: int = 4) -> tuple[Any, np.ndarray]:
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  cols = min(columns, n)
  rows = -(-n // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
  for ax in axes.flat[n:]:
    ax.set_visible(False)
  return fig, axes.flat[:n]


def heatmap_figure(rows: Sequence[Mapping[str, Any]], config: SweepConfig, metric: str,
                   x: str | None, y: str | None, panels: Sequence[Mapping[str, Any]]) -> Any:
  """A heatmap of ``metric`` over ``(y, x)`` per facet; the figure."""
  fig, axes = _panels(len(panels), columns=3)
  xs, ys = axis_labels(config, x), axis_labels(config, y)
  for ax, fixed in zip(axes, panels):
    values, diverged = grid_values(rows, config, metric, x, y, fixed)
    image = ax.imshow(values, aspect="auto", cmap="viridis_r" if "loss" in metric else "viridis")
    fig.colorbar(image, ax=ax)
    ax.set_xticks(range(len(xs)), short_labels(xs), rotation=30, ha="right")
    ax.set_yticks(range(len(ys)), short_labels(ys))
    ax.set_xlabel(x or "")
    ax.set_ylabel(y or "")
    ax.set_title(_title(fixed), fontsize=8)
    finite = values[np.isfinite(values)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    if values.size <= 400:
      for (i, j), v in np.ndenumerate(values):
        text = "x" if diverged[i, j] else ("" if not np.isfinite(v) else f"{v:.3g}")
        dark = np.isfinite(v) and ((v > middle) == ("loss" in metric))
        ax.text(j, i, text, ha="center", va="center", fontsize=7,
                color="white" if dark else "black")
  fig.suptitle(f"{config.name}: {metric} ({SEEDS_NOTE.split(',')[0]}; x: every seed "
               f"diverged)", fontsize=9)
  fig.tight_layout()
  return fig


def _log_if_spread(ax: Any, values: np.ndarray) -> None:
  """A log axis (symlog: zeros stay visible) when positive values span over two decades."""
  finite = values[np.isfinite(values)]
  positive = finite[finite > 0]
  if positive.size and positive.max() / positive.min() > 100 and (finite >= 0).all():
    ax.set_yscale("symlog", linthresh=float(positive.min()))
    ax.set_ylim(bottom=0)


def _band(ax: Any, steps: np.ndarray, values: np.ndarray, style: str, color: Any,
          label: str | None) -> Any:
  import warnings  # pylint: disable=import-outside-toplevel
  with warnings.catch_warnings():  # cells whose seeds all diverged
    warnings.simplefilter("ignore", RuntimeWarning)
    median = np.nanmedian(values, axis=0)
    line, = ax.plot(steps, median, style, color=color, label=label)
    if len(values) > 1:
      ax.fill_between(steps, np.nanmin(values, axis=0), np.nanmax(values, axis=0),
                      color=line.get_color(), alpha=0.15, linewidth=0)
  return line


def line_figure(rows: Sequence[Mapping[str, Any]], curves: Mapping[str, np.ndarray],
                config: SweepConfig, x: str | None, y: str | None,
                panels: Sequence[Mapping[str, Any]], kind: str) -> Any:
  """Curves (``kind="loss"``) or a probe's profile (``kind="probe_NAME"``): a panel per
  (``y`` value, facet), a colour per ``x`` value; the figure."""
  from matplotlib.ticker import MaxNLocator  # pylint: disable=import-outside-toplevel
  ys = axis_labels(config, y)
  cells = [({y: yv} if y else {}) | dict(fixed) for yv in ys for fixed in panels]
  fig, axes = _panels(len(cells))
  xs = axis_labels(config, x)
  colors = {xv: f"C{i % 10}" for i, xv in enumerate(xs)}
  names = dict(zip(xs, short_labels(xs)))
  for ax, fixed in zip(axes, cells):
    drawn = []
    for xv, color in colors.items():
      index = select(rows, {**fixed, **({x: xv} if x else {})})
      if not index:
        continue
      label = names[xv] if x else None
      if kind == "loss":
        steps = curves["eval_step"][index[0]]
        keep = steps >= 0
        for name, style in (("test_loss", "-"), ("train_loss", "--")):
          values = curves[name][index][:, keep]
          _band(ax, steps[keep], values, style, color, label if name == "test_loss" else None)
          drawn.append(values)
      else:
        data = curves[kind]
        last = int(np.max(np.sum(curves["eval_step"][index] >= 0, axis=1))) - 1
        layers = np.arange(1, data.shape[-1] + 1)
        for when, style in ((0, "-"), (last, "--")):
          values = data[index, when]
          _band(ax, layers, values, style, color, label if when == 0 else None)
          drawn.append(values)
    if drawn:
      _log_if_spread(ax, np.concatenate([d.ravel() for d in drawn]))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("step" if kind == "loss" else "layer")
    ax.set_title(_title(fixed), fontsize=8)
  if x:  # one legend for every panel, outside them: it hides no curve
    handles = {h.get_label(): h for ax in axes for h in ax.get_legend_handles_labels()[0]}
    fig.legend(list(handles.values()), list(handles), title=x, fontsize=7, title_fontsize=8,
               loc="upper left", bbox_to_anchor=(1.0, 0.95), frameon=False)
  what = ("loss (solid: test, dashed: train)" if kind == "loss" else
          f"{kind[len('probe_'):]} per layer (solid: step 0, dashed: end)")
  fig.suptitle(f"{config.name}: {what}; {SEEDS_NOTE}", fontsize=9)
  fig.tight_layout()
  return fig


def plot_results(out_dir: str | Path, *, x: str | None = None, y: str | None = None,
                 metrics: Sequence[str] | None = None,
                 where: Mapping[str, Any] | None = None) -> list[Path]:
  """Writes the PNGs of the module docstring into ``out_dir``.

  Args:
    out_dir: a results folder of ``jaxinit sweep``.
    x: the axis across (default: :func:`default_axes`).
    y: the axis down.
    metrics: heatmap columns (default: final test loss, and final test
      accuracy for classification).
    where: ``{axis: value}``: draw only that slice (its values as
      ``results.csv`` writes them).

  Returns:
    The files written.

  Raises:
    ValueError: an unknown axis or value, or more than :data:`MAX_PANELS` panels.
  """
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  from jaxinit.sweep.results import read_results  # pylint: disable=import-outside-toplevel
  out = Path(out_dir)
  rows, curves, config = read_results(out, check=False)  # plots import nothing the run named
  where = dict(where or {})
  default_x, default_y = default_axes(config)
  x = default_x if x is None else x
  y = default_y if y is None or y == x else y
  for axis in (x, y, *where):
    if axis is not None and axis not in config.grid:
      raise ValueError(f"axis must be one of {list(config.grid)}, got {axis!r}")
  for axis, value in where.items():
    if not select(rows, {axis: value}):
      raise ValueError(f"--where {axis}={value}: no model has it; values: "
                       f"{', '.join(map(str, axis_labels(config, axis)))}")
  panels = facets(config, x, y, where)
  rows_of_panels = len(axis_labels(config, y)) * len(panels)
  if rows_of_panels > MAX_PANELS:
    loose = [a for a in config.varying_axes() if a not in (x, y) and a not in where]
    raise ValueError(f"{rows_of_panels} panels would be needed to draw every varying axis "
                     f"({', '.join(loose)} besides x = {x}, y = {y}); pick a slice with "
                     f"--where AXIS=VALUE, or other --x/--y")
  if metrics is None:
    has_accuracy = any(r["final_test_accuracy"] is not None for r in rows)
    metrics = ["final_test_loss"] + (["final_test_accuracy"] if has_accuracy else [])
  figures = [(f"heatmap_{m}.png", heatmap_figure(rows, config, m, x, y, panels))
             for m in metrics]
  figures.append(("curves_loss.png", line_figure(rows, curves, config, x, y, panels, "loss")))
  figures += [(f"probe_{p}.png", line_figure(rows, curves, config, x, y, panels, f"probe_{p}"))
              for p in config.probes]
  written = []
  for name, fig in figures:
    written.append(out / name)
    fig.savefig(written[-1], dpi=110, bbox_inches="tight")  # legends outside the panels
    plt.close(fig)
  return written


def _where(text: str) -> tuple[str, str]:
  axis, sep, value = text.partition("=")
  if not sep or not axis:
    raise argparse.ArgumentTypeError(f"must be AXIS=VALUE, got {text!r}")
  return axis.strip(), value.strip()


def main(argv: list[str] | None = None) -> int:
  """Draws a results folder's PNGs; returns the exit status."""
  parser = argparse.ArgumentParser(prog="jaxinit plot", description=__doc__.splitlines()[0])
  parser.add_argument("dir", help="a results folder written by 'jaxinit sweep'")
  parser.add_argument("--x", help="axis across: a grid axis (default: chosen from the varying ones)")
  parser.add_argument("--y", help="axis down")
  parser.add_argument("--metric", action="append",
                      help="a results.csv column to draw as a heatmap (repeatable)")
  parser.add_argument("--where", action="append", type=_where, default=[],
                      help="AXIS=VALUE: draw only that slice (repeatable)")
  args = parser.parse_args(argv)
  if not (Path(args.dir) / "results.csv").exists():
    print(f"jaxinit plot: {args.dir} has no results.csv (run 'jaxinit sweep' first)",
          file=sys.stderr)
    return 2
  try:
    import matplotlib  # pylint: disable=import-outside-toplevel
  except ImportError:
    print("jaxinit plot: needs matplotlib; pip install -e \".[plot]\"", file=sys.stderr)
    return 2
  matplotlib.use("Agg")
  try:
    written = plot_results(args.dir, x=args.x, y=args.y, metrics=args.metric,
                           where=dict(args.where))
  except (ValueError, KeyError, OSError) as err:  # ConfigError is a ValueError
    print(f"jaxinit plot: {err}", file=sys.stderr)
    return 2
  for path in written:
    print(path)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
