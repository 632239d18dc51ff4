"""Sweeps: declare a grid, train every network in it in parallel.

A grid (Python dict or TOML file, schema in :mod:`jaxinit.sweep.config`)
names values for initializer, activation, depth, width, weight and bias
variance, optimizer, learning rate, batch size, steps, dataset and model, and
a number of seeds. Models that share static shapes compile once and train
together, ``vmap``-ed, in one ``lax.scan`` per block of steps
(:mod:`jaxinit.sweep.engine`); results land in a folder
(:mod:`jaxinit.sweep.results`) that ``jaxinit plot`` draws.

Examples:
  >>> from jaxinit import sweep
  >>> config = sweep.parse_config({
  ...     "seeds": 2, "eval_every": 50,
  ...     "grid": {"dataset": "teacher_student", "init": ["zeros", "he_normal"],
  ...              "depth": [2, 8], "learning_rate": [0.1, 0.01], "steps": 200}})
  >>> len(config.models()), len(sweep.group_models(config.models()))
  (16, 2)

  ``sweep.run_sweep(config, out_dir="runs/demo")`` trains the 16 models: two
  compiled programs, one per depth, each training 8 models at once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jaxinit.sweep.config import (AXES, ConfigError, ModelSpec, SweepConfig, label,
                                  load_config, parse_config, to_toml)
from jaxinit.sweep.data import Dataset, load_dataset
from jaxinit.sweep.engine import Program, ProgramCache, group_models, train_models
from jaxinit.sweep.results import SweepResult, read_results, summarize, write_results


def run_sweep(config: SweepConfig | Mapping[str, Any] | str | Path, *,
              out_dir: str | Path | None = None, models: Sequence[ModelSpec] | None = None,
              progress: bool = True, keep_params: bool = False,
              cache: ProgramCache | None = None) -> SweepResult:
  """Trains every model of a sweep and collects (and optionally writes) the results.

  Args:
    config: a :class:`SweepConfig`, the dict :func:`parse_config` takes, or
      the path of a TOML file.
    out_dir: write ``results.csv``, ``curves.npz``, ``config.toml`` and
      ``run.json`` here.
    models: train only these models (e.g. one cell of the grid); each trains
      exactly as it does among all the others.
    progress: print models done, model-steps/s and ETA on stderr.
    keep_params: keep every model's initial and final params in the result.
    cache: where compiled programs are kept (default: one per process).

  Returns:
    The :class:`SweepResult`.

  Raises:
    ConfigError: a bad config, before anything compiles.
  """
  start = time.perf_counter()
  if isinstance(config, (str, Path)):
    config = load_config(config)
  elif not isinstance(config, SweepConfig):
    config = parse_config(config)
  models = list(config.models() if models is None else models)
  records, reports = train_models(config, models, progress=progress, keep_params=keep_params,
                                  cache=cache)
  group_index = {}
  for g, members in enumerate(group_models(models).values()):
    for i in members:
      group_index[i] = g
  rows, curves = summarize(models, records, [group_index[i] for i in range(len(models))],
                           config.probes)
  result = SweepResult(
      config=config, models=models, rows=rows, curves=curves,
      groups=[vars(r) for r in reports], wall_s=time.perf_counter() - start,
      initial_params=[r.initial_params for r in records] if keep_params else None,
      final_params=[r.final_params for r in records] if keep_params else None)
  if out_dir is not None:
    write_results(result, out_dir)
  return result


__all__ = ["AXES", "ConfigError", "Dataset", "ModelSpec", "Program", "ProgramCache",
           "SweepConfig", "SweepResult", "group_models", "label", "load_config",
           "load_dataset", "parse_config", "read_results", "run_sweep", "summarize",
           "to_toml", "train_models", "write_results"]
