"""Memory budgets of a sweep's programs: sizes as text, the default budget, the error.

:func:`jaxinit.sweep.compile.plan_group` sizes a group's programs by XLA's
memory analysis against the budget of a device (``--memory-budget``).
"""

from __future__ import annotations

import jax


def parse_bytes(value: int | float | str) -> int:
  """A memory size: bytes, or text such as ``"4GiB"``, ``"512MB"``, ``"1.5G"``.

  Raises:
    ValueError: anything else, naming the accepted forms.

  Examples:
    >>> parse_bytes("4GiB"), parse_bytes("512MB"), parse_bytes(1024)
    (4294967296, 512000000, 1024)
  """
  units = {"": 1, "b": 1, "k": 2**10, "kb": 10**3, "kib": 2**10, "m": 2**20, "mb": 10**6,
           "mib": 2**20, "g": 2**30, "gb": 10**9, "gib": 2**30, "t": 2**40, "tb": 10**12,
           "tib": 2**40}
  if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
    return int(value)
  if isinstance(value, str):
    text = value.strip().lower().replace(" ", "")
    number = text.rstrip("kmgtib")
    try:
      size = float(number) * units[text[len(number):]]
    except (ValueError, KeyError):
      size = -1.0
    if size > 0:
      return int(size)
  raise ValueError(f"memory_budget must be a positive number of bytes or a size such as "
                   f"'4GiB', '512MB' or '1.5G' (units B, K/KiB, M/MiB, G/GiB, T/TiB, KB, MB, "
                   f"GB, TB); got {value!r}")


DEFAULT_CPU_BUDGET = 2 * 2**30
"""Default memory budget of a process on CPU (its devices share the host's RAM)."""


def default_memory_budget() -> int:
  """Bytes the programs of one process may use: half its devices' memory on accelerators,
  :data:`DEFAULT_CPU_BUDGET` on CPU."""
  devices = jax.local_devices()
  if devices[0].platform == "cpu":
    return DEFAULT_CPU_BUDGET
  total = 0
  for device in devices:
    stats = device.memory_stats() or {}
    total += int(stats.get("bytes_limit", DEFAULT_CPU_BUDGET))
  return total // 2


class MemoryBudgetError(ValueError):
  """The memory budget cannot hold even one model per device of a group."""


__all__ = ["DEFAULT_CPU_BUDGET", "MemoryBudgetError", "default_memory_budget", "parse_bytes"]
