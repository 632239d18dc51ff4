"""Compiling a shape group's programs: lanes, the model mesh, the cache (the budget: :mod:`~jaxinit.sweep.memory`).

A group compiles two programs, whatever its size and however many
initializers, variances, learning rates and seeds it holds (those are
arrays): ``block`` (:func:`jaxinit.sweep.step.train_block`) and ``opt_init``
(:func:`jaxinit.sweep.step.init_opt_state`). Each trains exactly ``lanes``
models per device, ``vmap``-ed together; a call spans every device
(``jax_num_cpu_devices`` on CPU, as ``jaxinit sweep`` sets it; GPUs; the
devices of several processes, see :mod:`jaxinit.sweep.distributed`) through a
``shard_map`` over a mesh axis ``"models"`` (:func:`model_mesh`), so it trains
``lanes x devices`` models; a group runs in as many calls as it needs, the
last one padded with copies.

Why fixed lanes: XLA compiles a ``vmap`` over 8 models differently from one
over 4 (on CPU it vectorizes across models once there are enough of them),
and the floating-point result of a model then differs in its last bits,
differences that training amplifies. So the number of models a device trains
at once depends only on the shape group (:func:`default_lanes`) and, if the
program would not fit, on the memory budget (:func:`plan_group`), never on
the number of models, the chunk size, the devices or an interruption: every
model of a group runs the same compiled code, alone or in any company.
Programs are lowered and compiled ahead of time, so compile time is measured
apart from run time, and sized against XLA's memory analysis.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit.sweep import inits, losses, networks, optimizers, registry
from jaxinit.sweep.config import AXES, ModelSpec, SweepConfig
from jaxinit.sweep.data import Dataset
from jaxinit.sweep.memory import MemoryBudgetError
from jaxinit.sweep.program import Program, convolutional, frozen, network, param_count
from jaxinit.sweep.step import init_opt_state, train_block

VMAP_FLOPS = 16e6
"""Matmul FLOPs one vmapped training step aims at on CPU (see :func:`default_lanes`)."""

MAX_LANES_CPU = 64
"""Most models one CPU device trains at once."""

ACCELERATOR_FLOPS = 2.0**33
"""Matmul FLOPs one vmapped training step aims at on GPUs and TPUs."""

MAX_LANES_ACCELERATOR = 4096
"""Most models one GPU or TPU trains at once."""


def default_lanes(flops_per_model_step: float, backend: str | None = None,
                  convolutional: bool = False) -> int:
  """Models one device trains at once (``vmap``-ed): a power of two set by the model's size.

  On CPU a step over many models at once streams all their activations
  through memory at every op, and a model whose step already keeps both cores
  busy (width 64, batch 128: 25 MFLOP) trains ~25% faster one at a time;
  small models need company to amortize each op's fixed cost (width 32,
  batch 32: ~1.5x faster 8 or more at a time). So: the largest power of two
  whose step does at most :data:`VMAP_FLOPS` (at most
  :data:`MAX_LANES_CPU`); on accelerators, at most :data:`ACCELERATOR_FLOPS`
  (at most :data:`MAX_LANES_ACCELERATOR`). It depends on nothing but the
  model, so a model's compiled code never depends on its company.

  Args:
    flops_per_model_step: ``6 x params x batch``.
    backend: ``"cpu"``, ``"gpu"``, ... (default: jax's default backend).

  Returns:
    A power of two.

  Examples:
    >>> default_lanes(25e6, "cpu"), default_lanes(1.7e6, "cpu"), default_lanes(2e4, "cpu")
    (1, 8, 64)
    >>> default_lanes(2e4, "cpu", convolutional=True), default_lanes(2e4, "gpu", convolutional=True)
    (1, 4096)
  """
  backend = jax.default_backend() if backend is None else backend
  if convolutional and backend == "cpu":
    return 1
  target, most = ((VMAP_FLOPS, MAX_LANES_CPU) if backend == "cpu" else
                  (ACCELERATOR_FLOPS, MAX_LANES_ACCELERATOR))
  fit = max(1, int(target // max(flops_per_model_step, 1.0)))
  return min(most, 1 << (fit.bit_length() - 1))


def make_program(spec: ModelSpec, dataset: Dataset, config: SweepConfig,
                 lanes: int | None = None) -> Program:
  """The :class:`Program` of ``spec``'s shape group.

  Args:
    spec: any model of the group.
    dataset: its dataset.
    config: the sweep (block length, probes).
    lanes: models per device in a call (default: the config's, or
      :func:`default_lanes`).

  Returns:
    The program.
  """
  model, model_options = registry.split(spec["model"])
  entry = networks.entry(model, config.paths)
  offered = {"in_features": dataset.in_features, "in_shape": dataset.in_shape,
             "out_features": dataset.num_outputs,
             **{a: spec[a] for a in networks.OFFERED_AXES},
             **{a: v for a, v in spec.cell.items() if a not in AXES}, **model_options}
  kwargs = {k: offered[k] for k in networks.accepted(entry, offered)}
  opt, opt_options = registry.split(spec["optimizer"])
  factory, defaults = optimizers.optimizer_factory(opt, config.paths)
  loss = losses.DEFAULT_LOSS[dataset.task] if config.loss == "auto" else config.loss
  metrics = (("accuracy", losses.accuracy),) + tuple(
      (losses.metric_name(m), losses.resolve(m, config.paths)) for m in config.metrics
      if m != "accuracy")
  program = Program(
      model=model, factory=entry.factory, model_kwargs=frozen(kwargs), inputs=entry.inputs,
      input_shape=tuple(entry.inputs(dataset.x_train[:1]).shape[1:]),
      num_outputs=dataset.num_outputs, task=dataset.task,
      loss=losses.resolve(loss, config.paths), metrics=metrics, optimizer=opt,
      optimizer_factory=factory, optimizer_options=frozen({**defaults, **opt_options}),
      batch_size=spec["batch_size"], block_steps=config.eval_every, probes=config.probes,
      base=frozen({k: v for k, v in config.base.items() if k in kwargs}),
      parametrized=bool(inits.static_part(spec.cell)))
  if lanes is None:
    lanes = config.lanes if isinstance(config.lanes, int) else default_lanes(
        6 * program.batch_size * param_count(program), convolutional=convolutional(program))
  return dataclasses.replace(program, lanes=lanes)


def model_mesh() -> jax.sharding.Mesh | None:
  """One mesh axis ``"models"`` over every device of every process (None with one device).

  A group's models are sharded over it (padded to a multiple of its size):
  each device trains its share, with no communication until metrics are
  fetched. With several processes (:mod:`jaxinit.sweep.distributed`) it
  spans all of them. On CPU, XLA runs a small model's matmuls on one thread,
  so set ``jax.config.update("jax_num_cpu_devices", os.cpu_count())`` before
  any computation (``jaxinit sweep`` does) to use every core.
  """
  devices = jax.devices()
  return None if len(devices) == 1 else jax.sharding.Mesh(np.array(devices), ("models",))


def device_count() -> int:
  """Devices a group's models are spread over: all of them, in every process.

  Examples:
    >>> device_count() == len(jax.devices())
    True
  """
  return jax.device_count()


@dataclasses.dataclass
class GroupPrograms:
  """A shape group's compiled programs.

  Attributes:
    program: the group (its ``lanes``: models per device).
    num_models: models per call, ``lanes x devices``.
    mesh: the model mesh (None on one device).
    opt_init: compiled :func:`~jaxinit.sweep.step.init_opt_state` ``(params, learning_rate)``.
    block: compiled :func:`~jaxinit.sweep.step.train_block`.
    memory_bytes: the block's memory per device (arguments, outputs and
      temporaries, less donated buffers), from XLA's memory analysis.
    model_bytes: of which are not the (replicated) data: params, optimizer
      state, metrics and temporaries, which grow with the lanes.
  """
  program: Program
  num_models: int
  mesh: jax.sharding.Mesh | None
  opt_init: Any
  block: Any
  memory_bytes: int
  model_bytes: int

  def sharding(self, split: bool) -> jax.sharding.Sharding:
    """Where arrays go: split over the model axis, or replicated."""
    if self.mesh is None:
      return jax.sharding.SingleDeviceSharding(jax.devices()[0])
    spec = jax.sharding.PartitionSpec("models") if split else jax.sharding.PartitionSpec()
    return jax.sharding.NamedSharding(self.mesh, spec)

  def local_rows(self) -> list[int]:
    """The rows (models of a call) that live on this process's devices, in order."""
    if self.mesh is None:
      return list(range(self.num_models))
    rows: set[int] = set()
    for index in self.sharding(True).addressable_devices_indices_map(
        (self.num_models,)).values():
      rows.update(range(self.num_models)[index[0]])
    return sorted(rows)

  def put(self, local: Any, rows: Sequence[int] | None = None) -> Any:
    """Host arrays as global device arrays: split over models (``rows`` given) or replicated.

    Args:
      local: a pytree of numpy arrays: with ``rows``, the rows
        :meth:`local_rows` lists (leading axis), else the whole value.
      rows: the local rows ``local`` holds.

    Returns:
      The same pytree of ``jax.Array`` on the mesh.
    """
    if rows is None:
      sharding = self.sharding(False)
      return jax.tree.map(lambda x: jax.make_array_from_callback(
          np.shape(x), sharding, lambda index: np.asarray(x)[index]), local)
    sharding = self.sharding(True)
    position = {r: i for i, r in enumerate(rows)}

    def one(x: np.ndarray) -> jax.Array:
      def part(index: tuple[slice, ...]) -> np.ndarray:
        lo, hi, _ = index[0].indices(self.num_models)
        return x[position[lo]:position[lo] + hi - lo]
      return jax.make_array_from_callback((self.num_models,) + x.shape[1:], sharding, part)

    return jax.tree.map(one, local)


def _state_struct(program: Program, num: int, size: int,
                  split: jax.sharding.Sharding | None) -> dict[str, Any]:
  struct = lambda shape, dtype: jax.ShapeDtypeStruct(shape, dtype, sharding=split)  # noqa: E731
  params, lr = struct((num, size), jnp.float32), struct((num,), jnp.float32)
  opt_state = jax.eval_shape(functools.partial(init_opt_state, program), params, lr)
  if split is not None:
    opt_state = jax.tree.map(lambda x: struct(x.shape, x.dtype), opt_state)
  net_state = jax.tree.map(lambda x: struct((num,) + x.shape, x.dtype),
                           network(program).state)
  return {"params": params, "net_state": net_state, "opt_state": opt_state,
          "alive": struct((num,), jnp.bool_),
          "diverged_step": struct((num,), jnp.int32)}


_opt_init_jit = jax.jit(init_opt_state, static_argnums=0)
_block_jit = jax.jit(train_block, static_argnums=0, donate_argnums=3)


def compile_group(program: Program, data: Mapping[str, np.ndarray]) -> GroupPrograms:
  """Lowers and compiles a group's two programs: ``program.lanes`` models on every device.

  Args:
    program: the group.
    data: the host data (:func:`~jaxinit.sweep.program.device_data`): only shapes are used.

  Returns:
    The :class:`GroupPrograms`.
  """
  mesh = model_mesh()
  num_models = program.lanes * device_count()
  size = param_count(program)
  spec = jax.sharding.PartitionSpec
  split = None if mesh is None else jax.sharding.NamedSharding(mesh, spec("models"))
  whole = None if mesh is None else jax.sharding.NamedSharding(mesh, spec())
  struct = lambda shape, dtype, sharding: jax.ShapeDtypeStruct(  # noqa: E731
      shape, dtype, sharding=sharding)
  state = _state_struct(program, num_models, size, split)
  data_structs = {k: struct(v.shape, v.dtype, whole) for k, v in data.items()}
  args = (data_structs, struct((num_models, 2), jnp.uint32, split), state,
          struct((), jnp.int32, whole), struct((), jnp.bool_, whole))
  lr = struct((num_models,), jnp.float32, split)
  if mesh is None:
    opt_init = _opt_init_jit.lower(program, state["params"], lr).compile()
    block = _block_jit.lower(program, *args).compile()
  else:
    opt_init = jax.jit(functools.partial(init_opt_state, program), out_shardings=split).lower(
        state["params"], lr).compile()
    fn = jax.shard_map(functools.partial(train_block, program), mesh=mesh,
                       in_specs=(spec(), spec("models"), spec("models"), spec(), spec()),
                       out_specs=spec("models"), check_vma=False)
    block = jax.jit(fn, out_shardings=split, donate_argnums=2).lower(*args).compile()
  stats = block.memory_analysis()
  data_bytes = sum(v.nbytes for v in data.values())
  if stats is None:  # backends without an analysis: count the arguments only
    devices = 1 if mesh is None else mesh.size
    per_device = data_bytes + sum(x.size * x.dtype.itemsize
                                  for x in jax.tree.leaves(state)) // devices
  else:
    per_device = int(stats.argument_size_in_bytes + stats.output_size_in_bytes
                     + stats.temp_size_in_bytes - stats.alias_size_in_bytes)
  return GroupPrograms(program=program, num_models=num_models, mesh=mesh, opt_init=opt_init,
                       block=block, memory_bytes=per_device,
                       model_bytes=max(0, per_device - data_bytes))


class ProgramCache:
  """Compiled group programs by (program, devices, data shapes).

  One cache serves every sweep of a process (see
  :func:`jaxinit.sweep.loop.train_models`), so the same shapes never compile twice.
  """

  def __init__(self) -> None:
    self._compiled: dict[Any, GroupPrograms] = {}

  def get(self, program: Program,
          data: Mapping[str, np.ndarray]) -> tuple[GroupPrograms, float]:
    """``(programs, seconds spent compiling now)``."""
    # Data are arguments, not constants: two datasets of one shape share programs.
    key = (program, jax.device_count(),
           tuple((k, v.shape, str(v.dtype)) for k, v in sorted(data.items())))
    if key in self._compiled:
      return self._compiled[key], 0.0
    tick = time.perf_counter()
    self._compiled[key] = compile_group(program, data)
    return self._compiled[key], time.perf_counter() - tick


SHARED_CACHE = ProgramCache()
"""The process's default cache."""


def plan_group(spec: ModelSpec, dataset: Dataset, config: SweepConfig,
               data: Mapping[str, np.ndarray], budget_per_device: int, cache: ProgramCache,
               lanes: int | None = None) -> tuple[GroupPrograms, float]:
  """A group's compiled programs: :func:`default_lanes`, halved until they fit the budget.

  The memory comes from XLA's memory analysis of the compiled block. Lanes
  that the budget lowered change the compiled code, hence the last bits of
  the results: they are part of the run's identity (``--resume`` keeps a
  folder's lanes, see :mod:`jaxinit.sweep.store`).

  Args:
    spec: any model of the group.
    dataset: its dataset.
    config: the sweep.
    data: the group's host data.
    budget_per_device: bytes one device's programs may use.
    cache: the program cache.
    lanes: use exactly these lanes (a resumed folder's) instead.

  Returns:
    ``(programs, seconds compiling)``.

  Raises:
    MemoryBudgetError: the lanes asked for, or one model per device, do not fit.
  """
  program = make_program(spec, dataset, config, lanes)
  compile_s = 0.0
  while True:
    programs, seconds = cache.get(program, data)
    compile_s += seconds
    if programs.memory_bytes <= budget_per_device:
      return programs, compile_s
    if lanes is not None or isinstance(config.lanes, int) or program.lanes == 1:
      break
    program = dataclasses.replace(program, lanes=program.lanes // 2)
  fixed = (" (the lanes this folder was computed with)" if lanes is not None else
           " (the config's lanes)" if isinstance(config.lanes, int) else "")
  raise MemoryBudgetError(
      f"memory_budget: {programs.memory_bytes:,} bytes per device are needed for "
      f"{program.lanes} model(s) per device{fixed} of shape group {spec.static_key()}, but "
      f"the budget allows {budget_per_device:,}; raise --memory-budget")


__all__ = ["ACCELERATOR_FLOPS", "GroupPrograms", "MAX_LANES_ACCELERATOR", "MAX_LANES_CPU",
           "ProgramCache", "SHARED_CACHE", "VMAP_FLOPS", "compile_group", "default_lanes",
           "device_count", "make_program", "model_mesh", "plan_group"]
