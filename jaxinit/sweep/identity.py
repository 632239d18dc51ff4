"""A run's execution identity: what, besides the config and a group's lanes, its bits depend on.

Every chunk of a sweep folder records it (:mod:`jaxinit.sweep.store`), and
``--resume`` refuses to mix chunks computed under different ones: their
results would agree statistically, not bitwise.
"""

from __future__ import annotations

import contextlib
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


def _cpu_model() -> str:
  with contextlib.suppress(OSError):
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  return platform.processor()


__all__ = ["execution_identity"]
