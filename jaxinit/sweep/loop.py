"""The host loop: a sweep's models trained group by group, chunk by chunk, call by call.

Each shape group compiles its programs once (:mod:`jaxinit.sweep.compile`):
a call trains ``lanes`` models on every device. The group's models go in
chunks of about ``chunk_size`` models (whole calls; a chunk is what
:mod:`jaxinit.sweep.store` saves and ``--resume`` keeps). A chunk's params are
made by :mod:`jaxinit.sweep.inits` from the models' keys
(:mod:`jaxinit.sweep.keys`); then call after call is placed on the model mesh
and trained block by block: every block runs the same program (its first
step is an argument), and the host fetches each block's metrics while the
next one runs. Groups that differ only in ``steps`` share the programs too.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from jaxinit.sweep import inits
from jaxinit.sweep import keys as keys_lib
from jaxinit.sweep.compile import SHARED_CACHE, GroupPrograms, ProgramCache, make_program, plan_group
from jaxinit.sweep.config import ModelSpec, SweepConfig
from jaxinit.sweep.data import load_dataset
from jaxinit.sweep.memory import default_memory_budget, parse_bytes
from jaxinit.sweep.program import Program, device_data, network, param_shapes
from jaxinit.sweep.progress import Progress
from jaxinit.sweep.step import unravel

PyTree = Any


@dataclasses.dataclass
class GroupReport:
  """Timing and size of one shape group.

  Attributes:
    key: the static axes shared by the group (JSON text).
    num_models: models in the group (trained now).
    lanes: models per device per call (:func:`~jaxinit.sweep.compile.default_lanes`).
    call_models: models per call, ``lanes x devices`` (the last call is padded).
    chunk_models: models per saved chunk (whole calls).
    init_s: seconds drawing params (the draws' first compiles included).
    compile_s: seconds lowering and compiling the group's programs (0 when reused).
    run_s: seconds of training and evaluation, compile excluded.
  """
  key: str
  num_models: int
  lanes: int
  call_models: int
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
    lanes: the lanes of the program that trained it (part of what its bits depend on).
    initial_params: with ``keep_params``, else None.
    final_params: with ``keep_params``, else None.
  """
  eval_step: np.ndarray
  metrics: dict[str, np.ndarray]
  step_loss: np.ndarray
  diverged_step: int
  lanes: int = 0
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


def initial_arrays(program: Program, models: Sequence[ModelSpec], root_seed: int,
                   data: Mapping[str, np.ndarray] | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """What a group's programs start from: flat params, learning rates, data keys.

  Args:
    program: the models' shape group.
    models: the models.
    root_seed: the sweep's root seed.
    data: the group's host data (:func:`~jaxinit.sweep.program.device_data`);
      needed by a post-init (:mod:`jaxinit.sweep.inits`).

  Returns:
    ``params`` ``(models, size)`` (each model's initial params,
    :func:`jaxinit.sweep.inits.initial_params`, raveled by
    :func:`~jaxinit.sweep.step.ravel`), ``learning_rate`` ``(models,)`` and raw
    ``data_keys`` ``(models, 2)``, as numpy arrays; the keys as
    :mod:`jaxinit.sweep.keys` derives them.
  """
  params = inits.initial_params(program, [m.cell for m in models], [m.seed for m in models],
                                root_seed, data)
  data_keys = keys_lib.derive_keys(root_seed, keys_lib.DATA_TAG, [keys_lib.data_identity(
      m["dataset"], m["batch_size"], m.seed) for m in models])
  learning_rate = np.asarray([m["learning_rate"] for m in models], np.float32)
  return params, learning_rate, data_keys


def start_state(programs: GroupPrograms, params: np.ndarray, learning_rate: np.ndarray,
                rows: Sequence[int], factors: Mapping[str, np.ndarray] | None = None
                ) -> dict[str, Any]:
  """The state a group's first block takes, on the model mesh.

  Args:
    programs: the group's compiled programs.
    params: flat params of this process's ``rows`` of the call.
    learning_rate: their learning rates.
    rows: :meth:`~jaxinit.sweep.compile.GroupPrograms.local_rows`.
    factors: a parametrized group's optimizer factors of these models
      (:func:`jaxinit.sweep.inits.optimizer_factors`), set in the optimizer state.

  Returns:
    ``{"params", "net_state", "opt_state", "alive", "diverged_step"}``, each split
    over models (``net_state``: the model's non-param state as built, for every model).
  """
  n = len(rows)
  params_, lr = programs.put(params, rows), programs.put(learning_rate, rows)
  net_state = jax.tree.map(lambda x: np.broadcast_to(x, (n,) + x.shape).copy(),
                           network(programs.program).state)
  opt_state = programs.opt_init(params_, lr)
  if factors is not None:
    opt_state = opt_state._replace(hyperparams={**opt_state.hyperparams,
                                                **programs.put(dict(factors), rows)})
  return {"params": params_, "net_state": programs.put(net_state, rows),
          "opt_state": opt_state,
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
                 on_chunk: ChunkCallback | None = None,
                 lanes: Mapping[str, int] | None = None
                 ) -> tuple[list[ModelRecord], list[GroupReport]]:
  """Trains ``models`` (default: all of ``config``'s) group by group, chunk by chunk.

  Each group's programs train ``lanes`` models per device
  (:func:`~jaxinit.sweep.compile.plan_group`) on every device of every
  process; its models go in chunks of whole calls, about ``chunk_size``
  models each. With several processes, every process calls this with the
  same arguments: each trains the models on its devices, and all of them get
  every record.

  Args:
    config: the sweep (root seed, block length, probes, chunk size).
    models: the models to train, any subset of a grid; each is trained bit
      for bit as it would be in any other company.
    progress: print a progress line on stderr (or a :class:`Progress` to use).
    keep_params: also return every model's initial and final params.
    cache: where compiled programs are kept (default: one shared by the
      process, so a later sweep with the same shapes compiles nothing).
    memory_budget: bytes (or ``"4GiB"``) this process's programs may use
      (default :func:`~jaxinit.sweep.compile.default_memory_budget`); shared by
      its local devices.
    on_chunk: called with each finished chunk's models and records (e.g. to
      save them, see :mod:`jaxinit.sweep.store`).
    lanes: by group key (:meth:`~jaxinit.sweep.config.ModelSpec.static_key`),
      lanes to use instead of the planned ones (a resumed folder's).

  Returns:
    One :class:`ModelRecord` per model (in the order given) and one
    :class:`GroupReport` per shape group.

  Raises:
    MemoryBudgetError: a group does not fit the budget even one model per device.
  """
  models = list(config.models() if models is None else models)
  ids = [m.model_id for m in models]
  if len(set(ids)) != len(ids):
    raise ValueError("models lists a model twice (the same cell and seed)")
  budget = default_memory_budget() if memory_budget is None else parse_bytes(memory_budget)
  budget_per_device = budget // jax.local_device_count()
  # Every dataset is loaded before anything compiles: a missing extra fails fast.
  datasets = {_dataset_key(m["dataset"]): None for m in models}
  for key in datasets:
    datasets[key] = load_dataset(json.loads(key), config.paths)
  cache = SHARED_CACHE if cache is None else cache
  groups = group_models(models)
  reporter = progress if isinstance(progress, Progress) else Progress(
      len(models), sum(m["steps"] for m in models), groups=len(groups),
      enabled=bool(progress) and jax.process_index() == 0)
  records: list[Any] = [None] * len(models)
  reports = []
  for g, (key, members) in enumerate(groups.items()):
    first = models[members[0]]
    dataset = datasets[_dataset_key(first["dataset"])]
    host_data = device_data(make_program(first, dataset, config, 1), dataset,
                            config.probe_batch)
    with reporter.compiling(g, len(members) * first["steps"]) as timer:
      programs, compile_s = plan_group(first, dataset, config, host_data, budget_per_device,
                                       cache, None if lanes is None else lanes.get(key))
    timer.seconds = compile_s
    program, call = programs.program, programs.num_models
    data = programs.put(host_data)
    rows = programs.local_rows()
    chunk = call * max(1, -(-config.chunk_size // call))
    report = GroupReport(key=key, num_models=len(members), lanes=program.lanes,
                         call_models=call, chunk_models=chunk, compile_s=compile_s)
    for lo in range(0, len(members), chunk):
      part = members[lo:lo + chunk]
      sizes = [min(call, len(part) - c) for c in range(0, len(part), call)]
      # Pad the last call with copies of the chunk's last model: same program, same bits.
      padded = part + [part[-1]] * (len(sizes) * call - len(part))
      tick = time.perf_counter()
      # Each process draws only the models on its own devices.
      local = [models[padded[c * call + r]] for c in range(len(sizes)) for r in rows]
      arrays = initial_arrays(program, local, config.root_seed, host_data)
      factors = inits.optimizer_factors(program, [m.cell for m in local])
      report.init_s += time.perf_counter() - tick
      chunk_records = _run_chunk(programs, data, rows, arrays, first["steps"], sizes,
                                 reporter, report, keep_params, factors)
      for i, record in zip(part, chunk_records):
        records[i] = record
      if on_chunk is not None:
        on_chunk([models[i] for i in part], chunk_records)
    reports.append(report)
  reporter.update(0, 0.0, final=True)
  return records, reports


def _run_chunk(programs: GroupPrograms, data: Any, rows: Sequence[int],
               arrays: tuple[np.ndarray, np.ndarray, np.ndarray], steps: int,
               sizes: Sequence[int], reporter: Progress, report: GroupReport,
               keep_params: bool, factors: Mapping[str, np.ndarray] | None = None
               ) -> list[ModelRecord]:
  """Trains a chunk's calls (``sizes``: real models of each), each block fetched while the
  next one runs; the records of the real models, in order."""
  tick = time.perf_counter()
  program = programs.program
  params, learning_rate, data_keys = arrays
  num_blocks = steps // program.block_steps
  fetched: list[list[dict[str, np.ndarray]]] = [[] for _ in sizes]
  initial: list[Any] = [None] * len(sizes)
  final: list[Any] = [None] * len(sizes)
  pending: collections.deque = collections.deque()
  last = [time.perf_counter()]

  def drain(keep: int) -> None:
    while len(pending) > keep:
      c, b, metrics = pending.popleft()
      fetched[c].append(fetch(metrics))
      now = time.perf_counter()
      done = sizes[c] if b == num_blocks else 0
      reporter.update(sizes[c] * program.block_steps if b else 0, now - last[0],
                      models_done=done)
      last[0] = now

  local = len(rows)
  # Block 0 only evaluates the initial params; block b trains steps [b-1, b) * block_steps.
  blocks = [(programs.put(np.int32(max(b - 1, 0) * program.block_steps)),
             programs.put(np.bool_(b > 0))) for b in range(num_blocks + 1)]
  for c in range(len(sizes)):
    part = slice(c * local, (c + 1) * local)
    state = start_state(programs, params[part], learning_rate[part], rows,
                        None if factors is None else {k: v[part] for k, v in factors.items()})
    keys = programs.put(data_keys[part], rows)
    if keep_params:
      initial[c] = fetch(state["params"])
    for b, (start, train) in enumerate(blocks):
      state, metrics = programs.block(data, keys, state, start, train)
      pending.append((c, b, metrics))
      drain(1)  # the previous block's metrics, while this one runs
    if keep_params:
      final[c] = fetch(state["params"])
  drain(0)
  report.run_s += time.perf_counter() - tick

  shapes = param_shapes(program)
  pick = lambda flat, j: None if flat is None else jax.tree.map(  # noqa: E731
      np.asarray, unravel(shapes, flat[j]))
  eval_step = np.arange(num_blocks + 1) * program.block_steps
  skip = ("step_loss", "alive", "diverged_step")
  out = []
  for c, n in enumerate(sizes):
    blocks = fetched[c]
    stacked = {k: np.stack([h[k] for h in blocks], axis=1)  # (models, evals, ...)
               for k in blocks[0] if k not in skip}
    step_loss = np.concatenate([h["step_loss"] for h in blocks[1:]], axis=1) \
        if num_blocks else np.zeros((programs.num_models, 0), np.float32)
    out += [ModelRecord(eval_step=eval_step, metrics={k: v[j] for k, v in stacked.items()},
                        step_loss=step_loss[j], diverged_step=int(blocks[-1]["diverged_step"][j]),
                        lanes=program.lanes, initial_params=pick(initial[c], j),
                        final_params=pick(final[c], j))
            for j in range(n)]
  return out


__all__ = ["ChunkCallback", "GroupReport", "ModelRecord", "fetch", "group_models",
           "initial_arrays", "start_state", "train_models"]
