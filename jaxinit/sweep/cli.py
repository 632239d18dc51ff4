"""``jaxinit sweep CONFIG.toml --out DIR``: train every network of a grid, write the results.

Each group's models are spread over one CPU device per core (``--cpu-devices``),
or over every GPU/TPU, in chunks that fit ``--memory-budget``. Every finished
chunk is saved at once: ``--resume`` continues a killed sweep where it
stopped. ``--coordinator/--num-processes/--process-id`` (or ``--distributed``
on a Slurm/TPU cluster) run one sweep over several processes and hosts
(:mod:`jaxinit.sweep.distributed`). The config is validated before anything compiles; a bad key or value exits
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

from jaxinit.sweep.config import ConfigError
from jaxinit.sweep.config_file import load_config


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
  if count == 1 and xla_flags_device_count() is None:
    return False
  try:
    jax.config.update("jax_num_cpu_devices", count)
  except RuntimeError:  # jax already computed something: keep its devices
    return False
  return True


def _positive_int(text: str) -> int:
  try:
    value = int(text)
  except ValueError:
    value = 0
  if value < 1:
    raise argparse.ArgumentTypeError(f"must be a positive int, got {text!r}")
  return value


def xla_flags_device_count() -> int | None:
  """The CPU device count ``XLA_FLAGS`` asks for (``--xla_force_host_platform_device_count``)."""
  for flag in os.environ.get("XLA_FLAGS", "").split():
    if flag.startswith("--xla_force_host_platform_device_count="):
      try:
        return int(flag.split("=", 1)[1])
      except ValueError:
        return None
  return None


def _settle() -> None:
  """Waits for the computations still in flight (at most a block each), so that the
  interpreter does not tear XLA down under them on the way out."""
  if "jax" not in sys.modules:
    return
  import jax  # pylint: disable=import-outside-toplevel
  try:
    for array in jax.live_arrays():
      try:
        array.block_until_ready()
      except RuntimeError:  # donated or deleted
        pass
  except KeyboardInterrupt:  # a second Ctrl-C: stop waiting
    pass


def _saved(out: Path, config: Any, total: int) -> str:
  """``"N of M models saved in DIR"``, read back from the folder's chunks."""
  from jaxinit.sweep.store import RunStore  # pylint: disable=import-outside-toplevel
  try:
    ids = RunStore(out, config, writer=False).saved_ids()
  except Exception:  # noqa: BLE001  (a report, never a second failure)
    ids = set()
  known = {m.model_id for m in config.models()}
  return f"{len(ids & known)} of {total} models saved in {out}"


def main(argv: list[str] | None = None) -> int:
  """Runs a sweep from a TOML file; returns the exit status.

  Expected failures (a bad config, a folder in use or of another sweep, a
  memory budget too small, a full disk, Ctrl-C) print one line on stderr and
  exit with status 2 (130 for Ctrl-C); a folder interrupted by any of them
  stays resumable.
  """
  import signal  # pylint: disable=import-outside-toplevel
  parser = argparse.ArgumentParser(prog="jaxinit sweep", description=__doc__.splitlines()[0])
  parser.add_argument("config", help="the sweep's TOML file (schema: jaxinit.sweep.config)")
  parser.add_argument("--out", help="results folder (default: runs/NAME)")
  parser.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
  parser.add_argument("--dry-run", action="store_true",
                      help="validate the config, list the shape groups and check each one's "
                           "data, model, loss, optimizer and init as a run would before it "
                           "starts (shapes only); train and write nothing")
  parser.add_argument("--cpu-devices", type=_positive_int, default=None,
                      help="on CPU, spread each group's models over this many devices, one "
                           "per core (default: the count XLA_FLAGS' "
                           "--xla_force_host_platform_device_count gives, else the CPU count; "
                           "this flag wins over XLA_FLAGS). Results do not depend on it")
  parser.add_argument("--memory-budget", default=None,
                      help="bytes this process's programs may use, e.g. 4GiB (default: half of "
                           "the accelerators' memory, 2GiB on CPU)")
  parser.add_argument("--resume", action="store_true",
                      help="continue the sweep saved in --out: train only the models it lacks "
                           "(refused if --out holds another config's sweep)")
  parser.add_argument("--overwrite", action="store_true",
                      help="clear the sweep saved in --out (chunks, results, plots) and start "
                           "over (without it, a finished sweep of the same config in --out is "
                           "kept: nothing is trained again)")
  parser.add_argument("--coordinator", help="multi-process: HOST:PORT of process 0")
  parser.add_argument("--num-processes", type=int, help="multi-process: number of processes")
  parser.add_argument("--process-id", type=int, help="multi-process: this process's index")
  parser.add_argument("--distributed", action="store_true",
                      help="multi-process with coordinates detected by JAX (Slurm, Open MPI, "
                           "Cloud TPU, Kubernetes)")
  parser.add_argument("--version", action="version", version=_version())
  args = parser.parse_args(argv)
  if args.resume and args.overwrite:
    parser.error("--resume and --overwrite exclude each other")
  if args.memory_budget is not None:
    from jaxinit.sweep.memory import parse_bytes  # pylint: disable=import-outside-toplevel
    try:
      parse_bytes(args.memory_budget)
    except ValueError as err:
      parser.error(f"--memory-budget: {err}")
  try:
    config = load_config(args.config)
  except (ConfigError, FileNotFoundError) as err:
    print(f"jaxinit sweep: {err}", file=sys.stderr)
    return 2

  from jaxinit.sweep.loop import group_models  # pylint: disable=import-outside-toplevel
  models = config.models()
  groups = group_models(models)
  varying = config.varying_axes()
  print(f"{config.name}: {len(models)} models ({len(config.cells())} cells x "
        f"{len(config.seeds)} seeds) in {len(groups)} shape groups; varying: "
        f"{', '.join(varying) or 'nothing'}")
  if args.dry_run:
    for key, members in groups.items():
      print(f"  {len(members):5d} models  {key}")
    from jaxinit.sweep.preflight import preflight  # pylint: disable=import-outside-toplevel
    try:  # what a run checks before it writes anything: data, models, losses, inits
      preflight(config, models)
    except (ConfigError, ImportError) as err:  # ImportError: a dataset's extra is missing
      print(f"jaxinit sweep: {err}", file=sys.stderr)
      return 2
    print("checked: every group's data, model, loss, optimizer and init (nothing trained)")
    return 0
  out = Path(args.out) if args.out else Path("runs") / config.name
  # A file-size limit (ulimit -f) then fails a write with EFBIG instead of killing us.
  if hasattr(signal, "SIGXFSZ"):
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
  try:
    return _run(args, config, models, out)
  except KeyboardInterrupt:
    _settle()
    print(f"\njaxinit sweep: interrupted; {_saved(out, config, len(models))}; rerun with "
          f"--resume to continue", file=sys.stderr)
    if "jax" in sys.modules:
      # An interrupt inside jax's tracing or compiling can leave its C++ runtime in a state
      # the interpreter's teardown crashes on (SIGSEGV): every file is whole (atomic
      # writes) and the folder's lock goes with the process, so leave without teardown.
      sys.stdout.flush()
      sys.stderr.flush()
      os._exit(130)
    return 130
  except OSError as err:
    where = f" ({err.filename})" if err.filename else ""
    print(f"jaxinit sweep: {err.strerror or err}{where}; {_saved(out, config, len(models))}; "
          f"fix that and rerun with --resume to continue", file=sys.stderr)
    return 2


def _run(args: argparse.Namespace, config: Any, models: list[Any], out: Path) -> int:
  from jaxinit.sweep import distributed  # pylint: disable=import-outside-toplevel
  try:
    multi = distributed.initialize(args.coordinator, args.num_processes, args.process_id,
                                   auto=args.distributed)
  except ValueError as err:
    print(f"jaxinit sweep: {err}", file=sys.stderr)
    return 2
  count = args.cpu_devices or xla_flags_device_count() or os.cpu_count() or 1
  use_cpu_devices(count)
  import jax  # pylint: disable=import-outside-toplevel
  from jaxinit.sweep import SweepDirError, run_sweep  # pylint: disable=import-outside-toplevel
  from jaxinit.sweep.memory import MemoryBudgetError  # pylint: disable=import-outside-toplevel
  if multi:
    print(f"process {jax.process_index()} of {jax.process_count()}: "
          f"{jax.local_device_count()} of {jax.device_count()} devices", file=sys.stderr)
  try:
    result = run_sweep(config, out_dir=out, progress=not args.no_progress,
                       memory_budget=args.memory_budget, resume=args.resume,
                       overwrite=args.overwrite)
  except (ImportError, ConfigError, SweepDirError, MemoryBudgetError) as err:
    # ImportError: a dataset's extra is missing.
    print(f"jaxinit sweep: {err}", file=sys.stderr)
    return 2
  if jax.process_index() != 0:
    return 0
  if result.resumed_models == len(models) and not args.resume:
    print(f"finished already: the {len(models)} models of this config are saved in {out} "
          f"(kept, none trained again; --overwrite trains them again)")
  elif result.resumed_models:
    print(f"resumed: {result.resumed_models} models read from {out}/chunks, "
          f"{len(models) - result.resumed_models} trained now")
  compile_s = sum(g["compile_s"] + g["init_s"] for g in result.groups)
  print(summary_table(result.rows, config.varying_axes()))
  print(f"{len(models)} models in {result.wall_s:.1f} s ({compile_s:.1f} s compiling and "
        f"drawing params); results in {out}/ (plot them: jaxinit plot {out})")
  return 0


def _version() -> str:
  import jaxinit  # pylint: disable=import-outside-toplevel
  return f"jaxinit {jaxinit.__version__}"


if __name__ == "__main__":
  raise SystemExit(main())
