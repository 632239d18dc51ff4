"""``jaxinit plot DIR``: heatmaps and learning curves of a sweep's results, as PNGs in DIR.

* ``heatmap_{metric}.png``: a metric (final test loss, and accuracy for
  classification) over two axes, the median over seeds and every other axis;
  cells whose models all diverged are marked ``x``;
* ``curves_test_loss.png``: test loss against step, one panel per value of
  the heatmap's y axis, one line per value of its x axis (medians over seeds
  and other axes, the band spans them);
* ``probe_{name}.png``: a probe per layer at initialization and at the end.

The axes default to ``weight_variance`` (or the first varying axis) across
and ``depth`` (or the next varying axis) down. matplotlib is imported only
here (the ``plot`` extra).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxinit.sweep import config as config_lib
from jaxinit.sweep.config import AXES, SweepConfig


def default_axes(config: SweepConfig) -> tuple[str | None, str | None]:
  """``(x, y)``: weight_variance or the first varying axis, then depth or the next.

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


def _matches(row: dict[str, Any], axis: str | None, value: Any) -> bool:
  if axis is None:
    return True
  cell = row[axis]
  if isinstance(value, float) or isinstance(cell, float):
    return cell is not None and math.isclose(float(cell), float(value))
  return str(cell) == str(value)


def grid_values(rows: Sequence[dict[str, Any]], config: SweepConfig, metric: str,
                x: str | None, y: str | None) -> tuple[np.ndarray, np.ndarray]:
  """Median of ``metric`` per ``(y, x)`` cell, and whether all of a cell's models diverged.

  Args:
    rows: result rows (as :func:`jaxinit.sweep.read_results` returns them).
    config: the sweep.
    metric: a numeric column, e.g. ``"final_test_loss"``.
    x: the axis across (None for one column).
    y: the axis down (None for one row).

  Returns:
    ``(values, diverged)``, both ``(len(y values), len(x values))``; NaN where
    no finite value exists.
  """
  xs, ys = axis_labels(config, x), axis_labels(config, y)
  values = np.full((len(ys), len(xs)), np.nan)
  diverged = np.zeros((len(ys), len(xs)), bool)
  for i, yv in enumerate(ys):
    for j, xv in enumerate(xs):
      cell = [r for r in rows if _matches(r, x, xv) and _matches(r, y, yv)]
      finite = [float(r[metric]) for r in cell
                if r[metric] is not None and math.isfinite(float(r[metric]))]
      if finite:
        values[i, j] = float(np.median(finite))
      diverged[i, j] = bool(cell) and all(bool(r["diverged"]) for r in cell)
  return values, diverged


def heatmap(rows: Sequence[dict[str, Any]], config: SweepConfig, metric: str,
            x: str | None, y: str | None, ax: Any = None) -> Any:
  """Draws :func:`grid_values` as an annotated heatmap; returns the axes."""
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  values, diverged = grid_values(rows, config, metric, x, y)
  xs, ys = axis_labels(config, x), axis_labels(config, y)
  if ax is None:
    ax = plt.subplots(figsize=(1.2 * len(xs) + 3, 0.6 * len(ys) + 2))[1]
  image = ax.imshow(values, aspect="auto", cmap="viridis_r" if "loss" in metric else "viridis")
  ax.figure.colorbar(image, ax=ax, label=metric)
  ax.set_xticks(range(len(xs)), [str(v) for v in xs], rotation=30, ha="right")
  ax.set_yticks(range(len(ys)), [str(v) for v in ys])
  ax.set_xlabel(x or "")
  ax.set_ylabel(y or "")
  if values.size <= 400:
    finite = values[np.isfinite(values)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    for (i, j), v in np.ndenumerate(values):
      text = "x" if diverged[i, j] else ("" if not np.isfinite(v) else f"{v:.3g}")
      dark = np.isfinite(v) and ((v > middle) == ("loss" in metric))
      ax.text(j, i, text, ha="center", va="center", fontsize=8,
              color="white" if dark else "black")
  ax.set_title(f"{config.name}: {metric} (median over seeds and other axes; x: all diverged)",
               fontsize=9)
  return ax


def _cell_rows(rows: Sequence[dict[str, Any]], x: str | None, xv: Any, y: str | None,
               yv: Any) -> list[int]:
  return [i for i, r in enumerate(rows) if _matches(r, x, xv) and _matches(r, y, yv)]


def learning_curves(rows: Sequence[dict[str, Any]], curves: dict[str, np.ndarray],
                    config: SweepConfig, x: str | None, y: str | None,
                    metric: str = "test_loss") -> Any:
  """Test loss against step: a panel per ``y`` value, a line per ``x`` value; the figure."""
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  xs, ys = axis_labels(config, x), axis_labels(config, y)[:8]
  fig, axes = plt.subplots(1, len(ys), figsize=(4 * len(ys), 3.4), squeeze=False,
                           sharey=True)
  for ax, yv in zip(axes[0], ys):
    for xv in xs:
      index = _cell_rows(rows, x, xv, y, yv)
      if not index:
        continue
      steps = curves["eval_step"][index[0]]
      keep = steps >= 0
      values = curves[metric][index][:, keep]
      with np.errstate(all="ignore"), _quiet():
        median = np.nanmedian(values, axis=0)
      line, = ax.plot(steps[keep], median, label=str(xv))
      if len(index) > 1:
        with _quiet():
          ax.fill_between(steps[keep], np.nanmin(values, axis=0), np.nanmax(values, axis=0),
                          color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_title(f"{y} = {yv}" if y else config.name, fontsize=9)
    ax.set_xlabel("step")
    if "loss" in metric:
      ax.set_yscale("log")
  axes[0][0].set_ylabel(metric)
  axes[0][-1].legend(title=x, fontsize=7, title_fontsize=8)
  fig.tight_layout()
  return fig


def probe_profiles(rows: Sequence[dict[str, Any]], curves: dict[str, np.ndarray],
                   config: SweepConfig, probe: str, x: str | None, y: str | None) -> Any:
  """A probe per layer, at step 0 (solid) and at the end (dashed); the figure."""
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  xs, ys = axis_labels(config, x), axis_labels(config, y)[:8]
  data = curves[f"probe_{probe}"]
  fig, axes = plt.subplots(1, len(ys), figsize=(4 * len(ys), 3.4), squeeze=False)
  for ax, yv in zip(axes[0], ys):
    for xv in xs:
      index = _cell_rows(rows, x, xv, y, yv)
      if not index:
        continue
      last = int(np.max(np.sum(curves["eval_step"][index] >= 0, axis=1))) - 1
      with _quiet():
        at_init = np.nanmedian(data[index, 0], axis=0)
        at_end = np.nanmedian(data[index, last], axis=0)
      layers = np.arange(1, len(at_init) + 1)
      line, = ax.plot(layers, at_init, label=str(xv))
      ax.plot(layers, at_end, linestyle="--", color=line.get_color())
    ax.set_title(f"{y} = {yv}" if y else config.name, fontsize=9)
    ax.set_xlabel("layer")
    ax.xaxis.get_major_locator().set_params(integer=True)
    if probe in ("second_moment", "variance", "grad_norm"):
      ax.set_yscale("log")
  axes[0][0].set_ylabel(f"{probe} (solid: init, dashed: end)")
  axes[0][-1].legend(title=x, fontsize=7, title_fontsize=8)
  fig.tight_layout()
  return fig


class _quiet:
  """Silences numpy's all-NaN warnings (cells where every model diverged)."""

  def __enter__(self) -> None:
    import warnings  # pylint: disable=import-outside-toplevel
    self._context = warnings.catch_warnings()
    self._context.__enter__()
    warnings.simplefilter("ignore", RuntimeWarning)

  def __exit__(self, *exc: Any) -> None:
    self._context.__exit__(*exc)


def plot_results(out_dir: str | Path, *, x: str | None = None, y: str | None = None,
                 metrics: Sequence[str] | None = None) -> list[Path]:
  """Writes the PNGs of the module docstring into ``out_dir``.

  Args:
    out_dir: a results folder of ``jaxinit sweep``.
    x: the axis across (default: :func:`default_axes`).
    y: the axis down.
    metrics: heatmap columns (default: final test loss, and final test
      accuracy for classification).

  Returns:
    The files written.
  """
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  from jaxinit.sweep.results import read_results  # pylint: disable=import-outside-toplevel
  out = Path(out_dir)
  rows, curves, config = read_results(out)
  default_x, default_y = default_axes(config)
  x = default_x if x is None else x
  y = default_y if y is None or y == x else y
  for axis in (x, y):
    if axis is not None and axis not in AXES:
      raise ValueError(f"axis must be one of {list(AXES)}, got {axis!r}")
  if metrics is None:
    has_accuracy = any(r["final_test_accuracy"] is not None for r in rows)
    metrics = ["final_test_loss"] + (["final_test_accuracy"] if has_accuracy else [])
  written = []
  for metric in metrics:
    ax = heatmap(rows, config, metric, x, y)
    ax.figure.tight_layout()
    written.append(out / f"heatmap_{metric}.png")
    ax.figure.savefig(written[-1], dpi=120)
    plt.close(ax.figure)
  fig = learning_curves(rows, curves, config, x, y)
  written.append(out / "curves_test_loss.png")
  fig.savefig(written[-1], dpi=120)
  plt.close(fig)
  for probe in config.probes:
    fig = probe_profiles(rows, curves, config, probe, x, y)
    written.append(out / f"probe_{probe}.png")
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)
  return written


def main(argv: list[str] | None = None) -> int:
  """Draws a results folder's PNGs; returns the exit status."""
  parser = argparse.ArgumentParser(prog="jaxinit plot", description=__doc__.splitlines()[0])
  parser.add_argument("dir", help="a results folder written by 'jaxinit sweep'")
  parser.add_argument("--x", help=f"axis across, one of {', '.join(AXES)}")
  parser.add_argument("--y", help="axis down")
  parser.add_argument("--metric", action="append",
                      help="a results.csv column to draw as a heatmap (repeatable)")
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
    written = plot_results(args.dir, x=args.x, y=args.y, metrics=args.metric)
  except (ValueError, KeyError) as err:
    print(f"jaxinit plot: {err}", file=sys.stderr)
    return 2
  for path in written:
    print(path)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
