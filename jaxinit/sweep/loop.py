"""The host loop: a sweep's models trained group by group, chunk by chunk.

Each shape group compiles its programs once (:mod:`jaxinit.sweep.compile`);
its models' params are drawn on the host (:mod:`jaxinit.sweep.params`) from
their keys (:mod:`jaxinit.sweep.keys`), placed on the model mesh, and trained
block by block: every block runs the same program (its first step is an
argument), so the host syncs once per block, fetching the previous block's
metrics while the current one runs. Groups that differ only in ``steps``
share the programs too.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

import jaxinit
from jaxinit.sweep import keys as keys_lib
from jaxinit.sweep import params as params_lib
from jaxinit.sweep.compile import (SHARED_CACHE, GroupPrograms, ProgramCache,
                                   default_memory_budget, device_data, make_program,
                                   parse_bytes, plan_group)
from jaxinit.sweep.config import ModelSpec, SweepConfig
from jaxinit.sweep.data import load_dataset
from jaxinit.sweep.program import Program, param_shapes
from jaxinit.sweep.progress import Progress
from jaxinit.sweep.step import ravel, unravel

PyTree = Any


@dataclasses.dataclass
class GroupReport:
  """Timing and size of one shape group.

  Attributes:
    key: the static axes shared by the group (JSON text).
    num_models: models in the group.
    chunk_models: models per program call (the last chunk is padded).
    init_s: seconds drawing params (the draws' first compiles included).
    compile_s: seconds lowering and compiling the group's programs (0 when reused).
    run_s: seconds of training and evaluation, compile excluded.
  """
  key: str
  num_models: int
  chunk_models: int
  init_s: float = 0.0
  compile_s: float = 0.0
  run_s: float = 0.0


@dataclasses.dataclass
class ModelRecord:
  """What one model's training produced (host numpy).

  Attributes:
    eval_step: ``(evals,)`` steps of the evaluations (0 first).
    metrics: per :func:`~jaxinit.sweep.step.evaluate` entry, ``(evals, ...)``.
    step_loss: ``(steps,)`` minibatch losses: the diverging step's (not finite), then NaN.
    diverged_step: the step that diverged, or -1.
    initial_params: with ``keep_params``, else None.
    final_params: with ``keep_params``, else None.
  """
  eval_step: np.ndarray
  metrics: dict[str, np.ndarray]
  step_loss: np.ndarray
  diverged_step: int
  initial_params: PyTree = None
  final_params: PyTree = None


def fetch(tree: PyTree) -> PyTree:
  """Device arrays split over models as whole host arrays, from every process.

  With several processes this is a collective (every process must call it).
  """
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    return multihost_utils.process_allgather(tree, tiled=True)
  return jax.device_get(tree)


def initial_arrays(program: Program, models: Sequence[ModelSpec], root_seed: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """What a group's programs start from: flat params, learning rates, data keys.

  Args:
    program: the models' shape group.
    models: the models (one program call).
    root_seed: the sweep's root seed.

  Returns:
    ``params`` ``(models, size)`` (see :mod:`jaxinit.sweep.params` and
    :func:`~jaxinit.sweep.step.ravel`), ``learning_rate`` ``(models,)`` and
    raw ``data_keys`` ``(models, 2)``, as numpy arrays.
  """
  init_keys, data_keys = keys_lib.raw_keys(root_seed, [m.model_id for m in models])
  inits: dict[str, Any] = {}  # one initializer object per distinct spec
  for m in models:
    spec = json.dumps(m["init"], sort_keys=True)
    if spec not in inits:
      inits[spec] = jaxinit.get(m["init"])
  params = params_lib.draw_population(
      param_shapes(program), [inits[json.dumps(m["init"], sort_keys=True)] for m in models],
      init_keys, [m["weight_variance"] for m in models], [m["bias_variance"] for m in models])
  learning_rate = np.asarray([m["learning_rate"] for m in models], np.float32)
  return ravel(params, batch_dims=1), learning_rate, data_keys


def start_state(programs: GroupPrograms, params: np.ndarray, learning_rate: np.ndarray,
                rows: Sequence[int]) -> dict[str, Any]:
  """The state a group's first block takes, on the model mesh.

  Args:
    programs: the group's compiled programs.
    params: flat params of this process's ``rows`` of the call.
    learning_rate: their learning rates.
    rows: :meth:`~jaxinit.sweep.compile.GroupPrograms.local_rows`.

  Returns:
    ``{"params", "opt_state", "alive", "diverged_step"}``, each split over models.
  """
  n = len(rows)
  params_, lr = programs.put(params, rows), programs.put(learning_rate, rows)
  return {"params": params_, "opt_state": programs.opt_init(params_, lr),
          "alive": programs.put(np.ones(n, bool), rows),
          "diverged_step": programs.put(np.full(n, -1, np.int32), rows)}


def group_models(models: Sequence[ModelSpec]) -> dict[str, list[int]]:
  """Indices of ``models`` by shape group, groups and members in first-seen order.

  Examples:
    >>> from jaxinit.sweep.config import parse_config
    >>> models = parse_config({"grid": {"depth": [2, 3], "learning_rate": [0.1, 0.2]}}).models()
    >>> [len(v) for v in group_models(models).values()]
    [2, 2]
  """
  groups: dict[str, list[int]] = {}
  for i, m in enumerate(models):
    groups.setdefault(m.static_key(), []).append(i)
  return groups


def _dataset_key(spec: Any) -> str:
  return json.dumps(spec, sort_keys=True)


ChunkCallback = Callable[[Sequence[ModelSpec], Sequence[ModelRecord]], None]


def train_models(config: SweepConfig, models: Sequence[ModelSpec] | None = None, *,
                 progress: bool | Progress = True, keep_params: bool = False,
                 cache: ProgramCache | None = None,
                 memory_budget: int | str | None = None,
                 on_chunk: ChunkCallback | None = None
                 ) -> tuple[list[ModelRecord], list[GroupReport]]:
  """Trains ``models`` (default: all of ``config``'s) group by group, chunk by chunk.

  Each group's models go through program calls of at most ``chunk_size``
  models, as many as fit ``memory_budget`` (:func:`~jaxinit.sweep.compile.plan_group`),
  split over every device of every process. With several processes, every
  process calls this with the same arguments: each trains the models on its
  devices, and all of them get every record.

  Args:
    config: the sweep (root seed, block length, probes, chunk size).
    models: the models to train, any subset of a grid; each is trained as it
      would be in any other company.
    progress: print a progress line on stderr (or a :class:`Progress` to use).
    keep_params: also return every model's initial and final params.
    cache: where compiled programs are kept (default: one shared by the
      process, so a later sweep with the same shapes compiles nothing).
    memory_budget: bytes (or ``"4GiB"``) this process's programs may use
      (default :func:`~jaxinit.sweep.compile.default_memory_budget`); shared by
      its local devices.
    on_chunk: called with each finished chunk's models and records (e.g. to
      save them, see :mod:`jaxinit.sweep.store`).

  Returns:
    One :class:`ModelRecord` per model (in the order given) and one
    :class:`GroupReport` per shape group.

  Raises:
    MemoryBudgetError: a group does not fit the budget even one model per device.
  """
  models = list(config.models() if models is None else models)
  ids = [m.model_id for m in models]
  if len(set(ids)) != len(ids):
    raise ValueError("two models of the sweep have the same cell and seed")
  budget = default_memory_budget() if memory_budget is None else parse_bytes(memory_budget)
  budget_per_device = budget // jax.local_device_count()
  # Every dataset is loaded before anything compiles: a missing extra fails fast.
  datasets = {_dataset_key(m["dataset"]): None for m in models}
  for key in datasets:
    datasets[key] = load_dataset(json.loads(key))
  cache = SHARED_CACHE if cache is None else cache
  reporter = progress if isinstance(progress, Progress) else Progress(
      len(models), sum(m["steps"] for m in models),
      enabled=bool(progress) and jax.process_index() == 0)
  records: list[Any] = [None] * len(models)
  reports = []
  for key, members in group_models(models).items():
    first = models[members[0]]
    dataset = datasets[_dataset_key(first["dataset"])]
    host_data = device_data(make_program(first, dataset, config, 1), dataset,
                            config.probe_batch)
    programs, compile_s = plan_group(first, dataset, config, len(members), host_data,
                                     budget_per_device, cache)
    program, chunk = programs.program, programs.num_models
    data = programs.put(host_data)
    rows = programs.local_rows()
    report = GroupReport(key=key, num_models=len(members), chunk_models=chunk,
                         compile_s=compile_s)
    for lo in range(0, len(members), chunk):
      part = [models[i] for i in members[lo:lo + chunk]]
      # Pad the last chunk with copies of its last model so it reuses the program.
      padded = part + [part[-1]] * (chunk - len(part))
      tick = time.perf_counter()
      # Each process draws only the models on its own devices.
      params, learning_rate, data_keys = initial_arrays(program, [padded[r] for r in rows],
                                                        config.root_seed)
      report.init_s += time.perf_counter() - tick
      chunk_records = _run_chunk(programs, data, rows, params, learning_rate, data_keys,
                                 first["steps"], len(part), reporter, report, keep_params)
      for i, record in zip(members[lo:lo + chunk], chunk_records):
        records[i] = record
      if on_chunk is not None:
        on_chunk(part, chunk_records)
    reports.append(report)
  reporter.update(0, 0.0, final=True)
  return records, reports


def _run_chunk(programs: GroupPrograms, data: Any, rows: Sequence[int], params: np.ndarray,
               learning_rate: np.ndarray, data_keys: np.ndarray, steps: int, n: int,
               reporter: Progress, report: GroupReport,
               keep_params: bool) -> list[ModelRecord]:
  tick = time.perf_counter()
  program, num = programs.program, programs.num_models
  state = start_state(programs, params, learning_rate, rows)
  keys = programs.put(data_keys, rows)
  initial = fetch(state["params"]) if keep_params else None
  num_blocks = steps // program.block_steps
  pending = []
  fetched = []
  last = time.perf_counter()
  for b in range(num_blocks + 1):
    # Block 0 only evaluates the initial params; block b trains steps [b-1, b) * block_steps.
    start = programs.put(np.int32(max(b - 1, 0) * program.block_steps))
    state, metrics = programs.block(data, keys, state, start, programs.put(np.bool_(b > 0)))
    pending.append(metrics)
    # Fetch the previous block's metrics while this one runs: the device never waits.
    if len(pending) > 1:
      fetched.append(fetch(pending.pop(0)))
      now = time.perf_counter()
      if b > 1:
        reporter.update(n * program.block_steps, now - last)
      last = now
  fetched.append(fetch(pending.pop(0)))
  now = time.perf_counter()
  reporter.update(n * program.block_steps if num_blocks else 0, now - last, models_done=n)
  final = fetch(state["params"]) if keep_params else None
  report.run_s += time.perf_counter() - tick

  skip = ("step_loss", "alive", "diverged_step")
  stacked = {k: np.stack([h[k] for h in fetched], axis=1)  # (models, evals, ...)
             for k in fetched[0] if k not in skip}
  step_loss = np.concatenate([h["step_loss"] for h in fetched[1:]], axis=1) \
      if num_blocks else np.zeros((num, 0), np.float32)
  eval_step = np.arange(num_blocks + 1) * program.block_steps
  shapes = param_shapes(program)
  pick = lambda flat, j: None if flat is None else jax.tree.map(  # noqa: E731
      np.asarray, unravel(shapes, flat[j]))
  return [ModelRecord(eval_step=eval_step, metrics={k: v[j] for k, v in stacked.items()},
                      step_loss=step_loss[j], diverged_step=int(fetched[-1]["diverged_step"][j]),
                      initial_params=pick(initial, j), final_params=pick(final, j))
          for j in range(n)]


__all__ = ["ChunkCallback", "GroupReport", "ModelRecord", "fetch", "group_models",
           "initial_arrays", "start_state", "train_models"]
