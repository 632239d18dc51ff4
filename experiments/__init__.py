"""Studies that reproduce the literature's claims about initialization with jaxinit.

Each study is a module of this package (installed as ``jaxinit_experiments``,
its source in the repository's ``experiments/`` folder) with a ``STUDY``
(:class:`~jaxinit_experiments.study.Study`). ``jaxinit experiments run NAME
--out DIR`` runs one at its quick default (minutes on 2 CPU cores),
``--full`` at the paper's scale (a GPU), ``--all`` every one; each writes
figures (PNG), the data behind them (CSV) and ``report.md`` into
``DIR/NAME/``.

Examples:
  >>> import jaxinit_experiments as ex
  >>> ex.names()[:2]
  ['zero_init', 'vanishing_exploding']
"""

from __future__ import annotations

import importlib

from jaxinit_experiments.study import SCALES, Report, Study

# name -> module, in the order of the index in README.md.
STUDIES: dict[str, str] = {
    "zero_init": "zero_init",
    "vanishing_exploding": "vanishing_exploding",
    "glorot_bengio": "glorot_bengio",
    "he_relu": "he_relu",
    "edge_of_chaos": "edge_of_chaos",
    "dynamical_isometry": "dynamical_isometry",
    "init_vs_activation": "init_vs_activation",
    "mnist1d_baselines": "mnist1d_baselines",
    "transfer_learning": "transfer_learning",
    "deep_plain_nets": "deep_plain_nets",
    "transformer_depth": "transformer_depth",
    "mutransfer": "mutransfer",
    "dynamic_init": "dynamic_init",
}


def names() -> list[str]:
  """The studies' names, in index order."""
  return list(STUDIES)


def get(name: str) -> Study:
  """The study called ``name`` (imports its module).

  Raises:
    ValueError: an unknown name, listing the known ones.
  """
  if name not in STUDIES:
    raise ValueError(f"unknown study {name!r}; studies are {', '.join(STUDIES)}")
  return importlib.import_module(f"jaxinit_experiments.{STUDIES[name]}").STUDY


__all__ = ["SCALES", "STUDIES", "Report", "Study", "get", "names"]
