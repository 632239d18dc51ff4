"""A run's execution identity: what, besides the config and a group's lanes, its bits depend on.

Every chunk of a sweep folder records it (:mod:`jaxinit.sweep.store`), and
``--resume`` refuses to mix chunks computed under different ones: their
results would agree statistically, not bitwise.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np


def execution_identity() -> dict[str, Any]:
  """What, besides the config and a group's lanes, a result's bits may depend on.

  The versions of jaxinit, jax, jaxlib and numpy; the backend and device
  kind; on CPU the machine and its processor (XLA compiles for the host's
  instruction set); jax's PRNG and precision settings; and ``XLA_FLAGS``
  (less the CPU device count, which does not change results). Not the
  number of devices, processes or the chunk size: results are bitwise the
  same whatever they are.
  """
  import jax  # pylint: disable=import-outside-toplevel
  import jaxlib  # pylint: disable=import-outside-toplevel

  import jaxinit  # pylint: disable=import-outside-toplevel
  device = jax.devices()[0]
  flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
           if not f.startswith("--xla_force_host_platform_device_count")]
  out = {"jaxinit": jaxinit.__version__, "jax": jax.__version__,
         "jaxlib": jaxlib.__version__, "numpy": np.__version__,
         "backend": jax.default_backend(), "device_kind": device.device_kind,
         "x64": bool(jax.config.jax_enable_x64),
         "prng": str(jax.config.jax_default_prng_impl),
         "threefry_partitionable": bool(jax.config.jax_threefry_partitionable),
         "matmul_precision": str(jax.config.jax_default_matmul_precision),
         "xla_flags": " ".join(sorted(flags))}
  if out["backend"] == "cpu":
    out["machine"] = platform.machine()
    out["processor"] = _cpu_model()
  return out


def code_identity(config: Any) -> str:
  """16 hex digits of the SHA-256 of the user code a sweep names: for every reference of the
  config (``"module:factory"``, an object given from Python), its text and the source file of
  its module (or the object's own source where the module has no file).

  A changed model, dataset, loss or optimizer factory changes results without changing the
  config: chunks record this digest beside :func:`execution_identity`, so ``--resume``
  refuses to mix chunks of two versions of the code. Built-in names and jaxinit itself
  are covered by the config and jaxinit's version.
  """
  from jaxinit.sweep import refs  # pylint: disable=import-outside-toplevel
  found: set[str] = set()

  def walk(value: Any) -> None:
    if refs.is_reference(value):
      found.add(value)
    elif isinstance(value, dict):
      for v in value.values():
        walk(v)
    elif isinstance(value, (list, tuple)):
      for v in value:
        walk(v)

  for cell in config.cells():
    walk(dict(cell))
  walk([config.loss, list(config.metrics)])
  h = hashlib.sha256()
  for ref in sorted(found):
    h.update(ref.encode())
    try:
      obj = refs.resolve(ref, "reference", config.paths)
    except Exception:  # noqa: BLE001  (not code: an activation spec such as "tat:relu")
      continue
    h.update(_source(obj))
  return h.hexdigest()[:16]


def _source(obj: Any) -> bytes:
  with contextlib.suppress(TypeError, OSError):
    return Path(inspect.getsourcefile(inspect.getmodule(obj))).read_bytes()
  with contextlib.suppress(TypeError, OSError):
    return inspect.getsource(obj).encode()
  return b""


def _cpu_model() -> str:
  with contextlib.suppress(OSError):
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  return platform.processor()


__all__ = ["code_identity", "execution_identity"]
