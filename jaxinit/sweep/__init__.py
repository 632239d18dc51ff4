"""Sweeps: declare a grid, train every network in it in parallel.

A grid (Python dict or TOML file, schema in :mod:`jaxinit.sweep.config`)
names values for initializer, activation, depth, width, weight and bias
variance, optimizer, learning rate, batch size, steps, dataset and model, and
a number of seeds. Models that share static shapes compile once and train
together, ``vmap``-ed, in one ``lax.scan`` per block of steps
(:mod:`jaxinit.sweep.loop`); results land in a folder
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
from jaxinit.sweep.compile import ProgramCache
from jaxinit.sweep.loop import group_models, train_models
from jaxinit.sweep.program import Program
from jaxinit.sweep.results import SweepResult, read_results, summarize, write_results
from jaxinit.sweep.store import SweepDirError


def run_sweep(config: SweepConfig | Mapping[str, Any] | str | Path, *,
              out_dir: str | Path | None = None, models: Sequence[ModelSpec] | None = None,
              progress: bool = True, keep_params: bool = False,
              cache: ProgramCache | None = None, memory_budget: int | str | None = None,
              resume: bool = False, overwrite: bool = False) -> SweepResult:
  """Trains every model of a sweep and collects (and optionally writes) the results.

  Args:
    config: a :class:`SweepConfig`, the dict :func:`parse_config` takes, or
      the path of a TOML file.
    out_dir: write ``results.csv``, ``curves.npz``, ``config.toml`` and
      ``run.json`` here, and every finished chunk as it finishes
      (:mod:`jaxinit.sweep.store`).
    models: train only these models (e.g. one cell of the grid); each trains
      exactly as it does among all the others.
    progress: print models done, model-steps/s and ETA on stderr.
    keep_params: keep every model's initial and final params in the result.
    cache: where compiled programs are kept (default: one per process).
    memory_budget: bytes (or e.g. ``"4GiB"``) this process's programs may
      use; chunks are sized to fit (default: half the accelerators' memory,
      or 2 GiB on CPU).
    resume: continue the sweep saved in ``out_dir``: train only the models
      it does not hold (refused if it was written by another config).
    overwrite: discard an interrupted sweep saved in ``out_dir``.

  Returns:
    The :class:`SweepResult`.

  Raises:
    ConfigError: a bad config, before anything compiles.
    SweepDirError: ``out_dir`` holds another config's sweep (with
      ``resume``) or an interrupted one (without ``resume`` or ``overwrite``).
  """
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel

  from jaxinit.sweep import distributed  # pylint: disable=import-outside-toplevel
  from jaxinit.sweep.store import RunStore  # pylint: disable=import-outside-toplevel
  start = time.perf_counter()
  if isinstance(config, (str, Path)):
    config = load_config(config)
  elif not isinstance(config, SweepConfig):
    config = parse_config(config)
  models = list(config.models() if models is None else models)
  store, done = None, {}
  if out_dir is not None:
    store = RunStore(out_dir, config, writer=jax.process_index() == 0)
    store.prepare(resume=resume, overwrite=overwrite)
    if resume:
      done = store.load()
      # Process 0's view decides, so every process trains the same models.
      mask = distributed.broadcast(np.array([m.model_id in done for m in models]))
      done = {m.model_id: done.get(m.model_id) for m, d in zip(models, mask) if d}
  todo = [m for m in models if m.model_id not in done]
  new_records, reports = train_models(config, todo, progress=progress, keep_params=keep_params,
                                      cache=cache, memory_budget=memory_budget,
                                      on_chunk=None if store is None else store.save_chunk)
  by_id = {**done, **{m.model_id: r for m, r in zip(todo, new_records)}}
  records = [by_id[m.model_id] for m in models]
  if any(r is None for r in records):
    raise RuntimeError(f"{out_dir}: saved chunks this process cannot read; resuming on several "
                       "hosts needs the folder on a filesystem they share")
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
      final_params=[r.final_params for r in records] if keep_params else None,
      resumed_models=len(done))
  if store is not None and store.writer:
    write_results(result, out_dir)
  return result


__all__ = ["AXES", "ConfigError", "Dataset", "ModelSpec", "Program", "ProgramCache",
           "SweepConfig", "SweepDirError", "SweepResult", "group_models", "label", "load_config",
           "load_dataset", "parse_config", "read_results", "run_sweep", "summarize",
           "to_toml", "train_models", "write_results"]
