"""``run_sweep``: a sweep from its config to its results folder."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jaxinit.sweep.compile import ProgramCache
from jaxinit.sweep.config import ConfigError, ModelSpec, SweepConfig, parse_config
from jaxinit.sweep.config_file import load_config
from jaxinit.sweep.results import SweepResult, summarize, write_results


def run_sweep(config: SweepConfig | Mapping[str, Any] | str | Path, *,
              out_dir: str | Path | None = None, models: Sequence[ModelSpec] | None = None,
              progress: bool = True, keep_params: bool = False,
              cache: ProgramCache | None = None, memory_budget: int | str | None = None,
              resume: bool = False, overwrite: bool = False) -> SweepResult:
  """Trains every model of a sweep and collects (and optionally writes) the results.

  A model's metrics, curves, probes and final params are bitwise the same
  whatever the chunk size, the number of devices or processes, the other
  models of the sweep, and however the sweep was interrupted and resumed (on
  one machine and software stack; see :mod:`jaxinit.sweep.compile` and
  :func:`jaxinit.sweep.identity.execution_identity`).

  Args:
    config: a :class:`SweepConfig`, the dict :func:`parse_config` takes, or
      the path of a TOML file.
    out_dir: write ``results.csv``, ``curves.npz``, ``config.toml`` and
      ``run.json`` here, and every finished chunk as it finishes
      (:mod:`jaxinit.sweep.store`); the folder is locked while the sweep runs.
    models: train only these models of the config (e.g. one cell of the grid).
    progress: print models done, model-steps/s and ETA on stderr.
    keep_params: keep every model's initial and final params in the result.
    cache: where compiled programs are kept (default: one per process).
    memory_budget: bytes (or ``"4GiB"``) this process's programs may use
      (default: half the accelerators' memory, or 2 GiB on CPU); a model too
      big for it trains with fewer lanes.
    resume: continue the sweep saved in ``out_dir``: train only the models
      it does not hold (refused if it was written by another config or under
      other execution settings).
    overwrite: clear whatever sweep ``out_dir`` holds and start over.
      Without either flag, a finished sweep of the same config in ``out_dir``
      is kept: its models are read back, not trained again (only those no
      valid chunk holds are), and when none was missing its files (tables,
      ``run.json``, plots) are left untouched (:mod:`jaxinit.sweep.store`);
      with ``keep_params`` it is trained again (chunks hold no params).

  Returns:
    The :class:`SweepResult`.

  Raises:
    ConfigError: a bad config or ``models`` list, before anything is written.
    SweepDirError: ``out_dir`` is in use, or holds a sweep the flags do not
      allow to continue or replace.
    MemoryBudgetError: a group does not fit ``memory_budget``.
    OSError: ``out_dir`` cannot be written (permissions, disk full); the
      chunks saved so far stay, for ``resume``.
  """
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel

  from jaxinit.sweep import distributed, loop, networks, registry  # pylint: disable=C0415
  from jaxinit.sweep.preflight import preflight  # pylint: disable=import-outside-toplevel
  from jaxinit.sweep.store import RunStore  # pylint: disable=import-outside-toplevel
  start = time.perf_counter()
  if isinstance(config, (str, Path)):
    config = load_config(config)
  elif not isinstance(config, SweepConfig):
    config = parse_config(config)
  models = _check_models(config, models)
  preflight(config, models)  # data, models, loss, optimizer and rules: before any folder
  store, done, lanes = None, {}, {}
  if out_dir is not None:
    store = RunStore(out_dir, config, writer=jax.process_index() == 0)
    store.prepare(resume=resume, overwrite=overwrite, keep_finished=not keep_params)
  try:
    # A finished sweep of this config is kept, not trained again (store.RunStore.prepare);
    # process 0's view decides.
    kept = store is not None and bool(distributed.broadcast(np.array(store.kept)))
    if store is not None:
      store.kept = kept
    if store is not None and (resume or kept):
      done, lanes = store.load(models)
      # Process 0's view decides, so every process trains the same models.
      mask = distributed.broadcast(np.array([m.model_id in done for m in models]))
      done = {m.model_id: done.get(m.model_id) for m, d in zip(models, mask) if d}
    todo = [m for m in models if m.model_id not in done]
    new_records, reports = loop.train_models(
        config, todo, progress=progress, keep_params=keep_params, cache=cache,
        memory_budget=memory_budget, on_chunk=None if store is None else store.save_chunk,
        lanes=lanes)
    by_id = {**done, **{m.model_id: r for m, r in zip(todo, new_records)}}
    records = [by_id[m.model_id] for m in models]
    if any(r is None for r in records):
      raise RuntimeError(f"{out_dir}: saved chunks this process cannot read; resuming on "
                         "several hosts needs the folder on a filesystem they share")
    group_index = {}
    for g, members in enumerate(loop.group_models(models).values()):
      for i in members:
        group_index[i] = g
    ignored = {name: networks.ignored_axes(name, config.paths)
               for name in {registry.split(m["model"])[0] for m in models}}
    rows, curves = summarize(models, records, [group_index[i] for i in range(len(models))],
                             config.probes,
                             [ignored[registry.split(m["model"])[0]] for m in models])
    result = SweepResult(
        config=config, models=models, rows=rows, curves=curves,
        groups=[vars(r) for r in reports], wall_s=time.perf_counter() - start,
        initial_params=[r.initial_params for r in records] if keep_params else None,
        final_params=[r.final_params for r in records] if keep_params else None,
        resumed_models=len(done))
    if store is not None and store.writer and not (kept and not todo
                                                   and store.outputs_complete()):
      write_results(result, out_dir)
    return result
  finally:
    if store is not None:
      store.close()


def _check_models(config: SweepConfig, models: Sequence[ModelSpec] | None) -> list[ModelSpec]:
  """``models`` (default: all of the config's), checked: a non-empty list of its models."""
  if models is None:
    return config.models()
  models = list(models)
  if not models:
    raise ConfigError("models is an empty list: give at least one model of the config "
                      "(or None for all of them)")
  known = {m.model_id for m in config.models()}
  seen: set[int] = set()
  for i, m in enumerate(models):
    if not isinstance(m, ModelSpec) or m.model_id not in known:
      raise ConfigError(f"models[{i}] is not a model of this config: {m!r}")
    if m.model_id in seen:
      raise ConfigError(f"models[{i}] lists a model twice: {m!r}")
    seen.add(m.model_id)
  return models


__all__ = ["run_sweep"]
