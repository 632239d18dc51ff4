"""``jaxinit experiments``: run the studies that reproduce the literature.

  jaxinit experiments list
  jaxinit experiments run NAME [NAME...] [--full | --tiny] --out DIR
  jaxinit experiments run --all [--full] --out DIR

Each study writes its figures, CSVs and ``report.md`` into ``DIR/NAME/``;
with several, ``DIR/index.md`` links their reports.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
  """Runs the ``experiments`` subcommand; returns the exit status."""
  import jaxinit_experiments as ex  # pylint: disable=import-outside-toplevel
  parser = argparse.ArgumentParser(prog="jaxinit experiments",
                                   description=__doc__.splitlines()[0])
  sub = parser.add_subparsers(dest="command", required=True)
  sub.add_parser("list", help="the studies and their titles")
  run = sub.add_parser("run", help="run studies")
  run.add_argument("names", nargs="*", metavar="NAME", help=f"studies: {', '.join(ex.names())}")
  run.add_argument("--all", action="store_true", help="run every study")
  scale = run.add_mutually_exclusive_group()
  scale.add_argument("--full", action="store_true", help="the paper's scale (for a GPU)")
  scale.add_argument("--tiny", action="store_true", help="seconds; checks the code path only")
  run.add_argument("--out", required=True, help="results folder; each study writes DIR/NAME/")
  run.add_argument("--cpu-devices", type=int, default=os.cpu_count() or 1,
                   help="on CPU, spread sweeps over this many devices (default: CPU count)")
  args = parser.parse_args(argv)
  if args.command == "list":
    for name in ex.names():
      print(f"{name:22s} {ex.get(name).title}")
    return 0
  if args.all == bool(args.names):
    print("jaxinit experiments run: give study names or --all (not both); studies are "
          f"{', '.join(ex.names())}", file=sys.stderr)
    return 2
  names = ex.names() if args.all else args.names
  unknown = [n for n in names if n not in ex.STUDIES]
  if unknown:
    print(f"jaxinit experiments run: unknown study {unknown[0]!r}; studies are "
          f"{', '.join(ex.names())}", file=sys.stderr)
    return 2
  from jaxinit.sweep.cli import use_cpu_devices  # pylint: disable=import-outside-toplevel
  use_cpu_devices(args.cpu_devices)
  from jaxinit_experiments.study import run_study  # pylint: disable=import-outside-toplevel
  chosen = "full" if args.full else "tiny" if args.tiny else "quick"
  out = Path(args.out)
  index = ["# Experiments", "", "| study | verdict | time |", "|---|---|---|"]
  for name in names:
    tick = time.perf_counter()
    print(f"[experiments] {name} ({chosen}) ...", file=sys.stderr, flush=True)
    report = run_study(ex.get(name), chosen, out / name)
    print(f"[experiments] {name}: {report.verdict} ({time.perf_counter() - tick:.0f} s) -> "
          f"{out / name / 'report.md'}", file=sys.stderr, flush=True)
    index.append(f"| [{report.title}]({name}/report.md) | {report.verdict} | "
                 f"{report.wall_s:.0f} s |")
  if len(names) > 1:
    (out / "index.md").write_text("\n".join(index) + "\n")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
