"""Multi-process sweeps through JAX's own distributed runtime.

Every process runs the same command; :func:`initialize` connects them
(``jax.distributed.initialize``) and the engine's model mesh then spans the
devices of all of them (:func:`jaxinit.sweep.compile.model_mesh`): each
process draws and trains the models on its own devices, metrics are gathered
to every process after each block (``process_allgather``), and only process
0 writes the results folder.

Where the coordinates come from, first found wins:

1. flags ``--coordinator HOST:PORT --num-processes N --process-id I``
   (arguments of :func:`initialize`);
2. environment variables ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``,
   ``JAX_PROCESS_ID``;
3. with ``--distributed`` (``auto=True``) and none of the above, JAX's own
   cluster detection (Slurm, Open MPI, Cloud TPU, Kubernetes/GKE).

On CPU, processes exchange metrics over gloo collectives (set here).

Running it:

* one multi-GPU node: nothing to do — one process sees every GPU, and each
  group's models are sharded over them;
* several GPU hosts (one process per host, or per GPU with
  ``CUDA_VISIBLE_DEVICES``): on each host, ``jaxinit sweep CONFIG --out
  SHARED_DIR --coordinator host0:1234 --num-processes N --process-id I``,
  or under Slurm ``srun jaxinit sweep CONFIG --out SHARED_DIR --distributed``;
* a Cloud TPU pod slice: ``gcloud compute tpus tpu-vm ssh NAME --worker=all
  --command="jaxinit sweep CONFIG --out SHARED_DIR --distributed"``.

``--resume`` across hosts needs ``SHARED_DIR`` on a filesystem every
process reads.
"""

from __future__ import annotations

import os
from typing import Any

import jax

ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "JAX_PROCESS_ID"


def _int_env(name: str) -> int | None:
  value = os.environ.get(name)
  if value in (None, ""):
    return None
  try:
    return int(value)
  except ValueError:
    raise ValueError(f"environment variable {name} must be an integer, got {value!r}") from None


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, auto: bool = False,
               cpu_devices: int | None = None) -> bool:
  """Connects this process to the others of a multi-process sweep.

  Must run before jax computes anything.

  Args:
    coordinator: ``HOST:PORT`` of process 0's coordination service.
    num_processes: how many processes take part.
    process_id: this process's index, ``0 <= process_id < num_processes``.
    auto: with no coordinates given, let JAX detect the cluster.
    cpu_devices: on CPU, devices per process (``jax_num_cpu_devices``).

  Returns:
    Whether a multi-process runtime was started.

  Raises:
    ValueError: incomplete or inconsistent coordinates, naming what is missing.
  """
  coordinator = coordinator or os.environ.get(ENV_COORDINATOR) or None
  num_processes = num_processes if num_processes is not None else _int_env(ENV_NUM_PROCESSES)
  process_id = process_id if process_id is not None else _int_env(ENV_PROCESS_ID)
  given = {"coordinator": coordinator, "num_processes": num_processes,
           "process_id": process_id}
  if cpu_devices:
    jax.config.update("jax_num_cpu_devices", cpu_devices)
  if all(v is None for v in given.values()):
    if not auto:
      return False
    _use_cpu_collectives()
    jax.distributed.initialize()
    return True
  missing = [k for k, v in given.items() if v is None]
  if missing:
    raise ValueError(f"a multi-process sweep needs coordinator, num_processes and process_id "
                     f"(flags --coordinator/--num-processes/--process-id or {ENV_COORDINATOR}/"
                     f"{ENV_NUM_PROCESSES}/{ENV_PROCESS_ID}); missing: {', '.join(missing)}")
  if num_processes < 1 or not 0 <= process_id < num_processes:
    raise ValueError(f"process_id must be in [0, num_processes); got process_id={process_id}, "
                     f"num_processes={num_processes}")
  if ":" not in coordinator:
    raise ValueError(f"coordinator must be HOST:PORT, got {coordinator!r}")
  if num_processes == 1:
    return False
  _use_cpu_collectives()
  jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                             process_id=process_id)
  return True


def _use_cpu_collectives() -> None:
  # CPU devices of different processes talk through gloo; harmless on GPU/TPU.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")


def broadcast(value: Any) -> Any:
  """Process 0's ``value`` (a numpy array or pytree of them) on every process."""
  if jax.process_count() == 1:
    return value
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
  return multihost_utils.broadcast_one_to_all(value)


__all__ = ["ENV_COORDINATOR", "ENV_NUM_PROCESSES", "ENV_PROCESS_ID", "broadcast", "initialize"]
