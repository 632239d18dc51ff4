"""The ``jaxinit`` command line: one subcommand per layer of the library.

Each subcommand's module is imported only when it runs, so ``jaxinit --help``
is instant and a subcommand's heavier dependencies stay optional.
"""

from __future__ import annotations

import importlib
import sys

# name -> (module with main(argv) -> int, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("jaxinit.demo", "per-layer signal variance of a deep network under several inits"),
    "theory": ("jaxinit.theory.cli", "mean-field quantities (q*, chi1, xi_c, critical line) "
                                 "and a phase diagram"),
    "sweep": ("jaxinit.sweep.cli", "train every network of a grid (TOML) in parallel"),
    "plot": ("jaxinit.sweep.plot", "heatmaps and learning curves of a sweep's results"),
    "experiments": ("jaxinit_experiments.cli", "reproduce the literature's studies (figures, "
                                               "CSV, report.md)"),
}


def _usage() -> str:
  lines = ["usage: jaxinit COMMAND [ARGS...]", "", "commands:"]
  lines += [f"  {name:10s} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
  lines += ["", "Run 'jaxinit COMMAND --help' for a command's options; 'jaxinit --version' "
                "prints the version."]
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
  """Entry point of the ``jaxinit`` script."""
  argv = list(sys.argv[1:] if argv is None else argv)
  if not argv or argv[0] in ("-h", "--help"):
    print(_usage())
    return 0
  if argv[0] in ("-V", "--version"):
    import jaxinit  # pylint: disable=import-outside-toplevel
    print(f"jaxinit {jaxinit.__version__}")
    return 0
  name, rest = argv[0], argv[1:]
  if name not in SUBCOMMANDS:
    print(f"jaxinit: unknown command {name!r}; commands are {sorted(SUBCOMMANDS)}",
          file=sys.stderr)
    return 2
  try:
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return int(module.main(rest) or 0)
  except KeyboardInterrupt:  # before a subcommand handles it (e.g. while importing)
    print(f"\njaxinit {name}: interrupted", file=sys.stderr)
    return 130


if __name__ == "__main__":
  raise SystemExit(main())
