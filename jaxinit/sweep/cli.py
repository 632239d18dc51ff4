"""``jaxinit sweep CONFIG.toml --out DIR``: train every network of a grid, write the results.

Each group's models are spread over one CPU device per core (``--cpu-devices``).
The config is validated before anything compiles; a bad key or value exits
with status 2 and a message naming it. While training, a line on stderr shows
the models done, model-steps per second and the ETA. At the end a table gives
the median final test loss and accuracy per cell, and ``DIR`` holds
``results.csv``, ``curves.npz``, ``config.toml`` and ``run.json`` (see
:mod:`jaxinit.sweep.results`); ``jaxinit plot DIR`` draws them.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jaxinit.sweep.config import AXES, ConfigError, load_config


def summary_table(rows: Sequence[dict[str, Any]], axes: Sequence[str], limit: int = 40) -> str:
  """Median final test loss and accuracy per cell over seeds, as text.

  Args:
    rows: result rows.
    axes: the axes that tell cells apart (the grid's varying axes).
    limit: most lines shown.

  Returns:
    The table.

  Examples:
    >>> rows = [{"depth": 2, "final_test_loss": 1.0, "final_test_accuracy": 0.5,
    ...          "diverged": False}] * 2
    >>> print(summary_table(rows, ["depth"]))
    depth  test_loss  test_acc  diverged
    2          1.000     0.500       0/2
  """
  cells: dict[tuple, list[dict[str, Any]]] = {}
  for row in rows:
    cells.setdefault(tuple(row[a] for a in axes), []).append(row)
  widths = [max(len(a), *(len(str(k[i])) for k in cells)) for i, a in enumerate(axes)]
  lines = ["  ".join(a.ljust(w) for a, w in zip(axes, widths)) +
           ("  " if axes else "") + "test_loss  test_acc  diverged"]

  def median(values: list[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(finite) if finite else math.nan

  for key, members in list(cells.items())[:limit]:
    loss = median([r["final_test_loss"] for r in members])
    acc = median([r["final_test_accuracy"] for r in members])
    diverged = sum(bool(r["diverged"]) for r in members)
    lines.append("  ".join(str(k).ljust(w) for k, w in zip(key, widths)) +
                 ("  " if axes else "") +
                 f"{loss:9.3f}  {acc:8.3f}  {f'{diverged}/{len(members)}':>8s}")
  if len(cells) > limit:
    lines.append(f"... {len(cells) - limit} more cells in results.csv")
  return "\n".join(lines)


def use_cpu_devices(count: int) -> bool:
  """Asks jax for ``count`` CPU devices, so the engine can use every core.

  XLA runs a small network's matmuls on one thread; the engine spreads a
  group's models over devices instead. Only possible before jax computes
  anything: afterwards (e.g. when called from a notebook) this does nothing.

  Returns:
    Whether the setting took.
  """
  import jax  # pylint: disable=import-outside-toplevel
  if count <= 1:
    return False
  try:
    jax.config.update("jax_num_cpu_devices", count)
  except RuntimeError:  # jax already computed something: keep its devices
    return False
  return True


def main(argv: list[str] | None = None) -> int:
  """Runs a sweep from a TOML file; returns the exit status."""
  parser = argparse.ArgumentParser(prog="jaxinit sweep", description=__doc__.splitlines()[0])
  parser.add_argument("config", help="the sweep's TOML file (schema: jaxinit.sweep.config)")
  parser.add_argument("--out", help="results folder (default: runs/NAME)")
  parser.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
  parser.add_argument("--dry-run", action="store_true",
                      help="validate the config, list the shape groups, train nothing")
  parser.add_argument("--cpu-devices", type=int, default=os.cpu_count() or 1,
                      help="on CPU, spread each group's models over this many devices, one "
                           "per core (default: the CPU count)")
  args = parser.parse_args(argv)
  try:
    config = load_config(args.config)
  except (ConfigError, FileNotFoundError) as err:
    print(f"jaxinit sweep: {err}", file=sys.stderr)
    return 2

  from jaxinit.sweep import engine  # pylint: disable=import-outside-toplevel
  models = config.models()
  groups = engine.group_models(models)
  varying = config.varying_axes()
  print(f"{config.name}: {len(models)} models ({len(config.cells())} cells x "
        f"{len(config.seeds)} seeds) in {len(groups)} shape groups; varying: "
        f"{', '.join(varying) or 'nothing'}")
  if args.dry_run:
    for key, members in groups.items():
      print(f"  {len(members):5d} models  {key}")
    return 0
  use_cpu_devices(args.cpu_devices)
  from jaxinit.sweep import run_sweep  # pylint: disable=import-outside-toplevel
  out = Path(args.out) if args.out else Path("runs") / config.name
  try:
    result = run_sweep(config, out_dir=out, progress=not args.no_progress)
  except ImportError as err:  # a dataset's optional package
    print(f"jaxinit sweep: {err}", file=sys.stderr)
    return 2
  compile_s = sum(g["compile_s"] + g["init_s"] for g in result.groups)
  print(summary_table(result.rows, [a for a in AXES if a in varying]))
  print(f"{len(models)} models in {result.wall_s:.1f} s ({compile_s:.1f} s compiling and "
        f"drawing params); results in {out}/ (plot them: jaxinit plot {out})")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
