"""A sweep's folder while it runs: finished chunks saved atomically, resume, final tables.

``DIR/config.toml`` is written first; every program call ("chunk") that
finishes is saved at once as ``DIR/chunks/chunk-<hash>.npz`` (its models'
evaluations, step losses and divergence), written to a temporary file and
renamed into place, so a killed sweep leaves only whole files. At the end
the tables of :mod:`jaxinit.sweep.results` are written the same way.

``jaxinit sweep CONFIG --out DIR --resume`` trains only the models no chunk
file holds (a model's results do not depend on its company, so the chunks
may be cut differently, e.g. on other devices or with another
``chunk_size``), and refuses a folder written by a different config. Without
``--resume``, a folder holding an interrupted sweep is refused (pass
``--overwrite`` to start over); a finished sweep is simply run again.

With several processes only process 0 writes; resuming on several hosts
needs ``DIR`` on a filesystem they share.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxinit.sweep import config as config_lib
from jaxinit.sweep.config import ModelSpec, SweepConfig

EXECUTION_KEYS: tuple[str, ...] = ("chunk_size",)
"""Config keys that change how a sweep runs, not what it computes: they may
differ between a sweep and its resumption."""


class SweepDirError(ValueError):
  """The output folder cannot be used as asked (another config, an unfinished sweep)."""


def atomic_write(path: str | Path, data: bytes | str) -> None:
  """Writes ``path`` whole or not at all: a temporary file in the same folder, fsync, rename."""
  path = Path(path)
  payload = data.encode() if isinstance(data, str) else data
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(payload)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.unlink(tmp)
    raise


def npz_bytes(arrays: Mapping[str, np.ndarray], compress: bool = True) -> bytes:
  """``arrays`` as the bytes of an ``.npz`` file."""
  buffer = io.BytesIO()
  (np.savez_compressed if compress else np.savez)(buffer, **arrays)
  return buffer.getvalue()


def identity(config: SweepConfig) -> str:
  """What must match to resume: the config's TOML less :data:`EXECUTION_KEYS`."""
  lines = config_lib.to_toml(config).splitlines()
  return "\n".join(line for line in lines
                   if line.split(" = ", 1)[0] not in EXECUTION_KEYS) + "\n"


class RunStore:
  """The output folder of one sweep.

  Args:
    out_dir: the folder.
    config: the sweep.
    writer: whether this process writes (process 0 of a multi-process run).
  """

  def __init__(self, out_dir: str | Path, config: SweepConfig, *, writer: bool = True) -> None:
    self.out = Path(out_dir)
    self.chunks = self.out / "chunks"
    self.config = config
    self.writer = writer

  def chunk_files(self) -> list[Path]:
    """The saved chunks, in name order."""
    return sorted(self.chunks.glob("chunk-*.npz")) if self.chunks.is_dir() else []

  def prepare(self, *, resume: bool = False, overwrite: bool = False) -> None:
    """Checks the folder against the config and readies it.

    Args:
      resume: keep the saved chunks of the same config.
      overwrite: discard whatever sweep the folder holds.

    Raises:
      SweepDirError: ``resume`` into a folder of another config; or neither
        flag and the folder holds an interrupted sweep.
      ValueError: both flags.
    """
    if resume and overwrite:
      raise ValueError("resume and overwrite exclude each other: pass one of them")
    old_config = self.out / "config.toml"
    saved = self.chunk_files()
    if old_config.exists() and (saved or (self.out / "results.csv").exists()):
      old = config_lib.load_config(old_config)
      if resume and identity(old) != identity(self.config):
        diff = [line for line in difflib.unified_diff(
            identity(old).splitlines(), identity(self.config).splitlines(), "in DIR",
            "given", lineterm="", n=0) if line[:1] in "+-" and line[:3] not in ("+++", "---")]
        raise SweepDirError(
            f"--resume: {self.out} was written by a different config; differences "
            f"(- in the folder, + given): {'; '.join(diff[:6])}. Resume with the folder's own "
            f"config ({old_config}), or choose another --out")
      finished = (self.out / "run.json").exists() and self._complete()
      if not resume and not overwrite and saved and not finished:
        raise SweepDirError(
            f"{self.out} holds an interrupted sweep ({len(saved)} chunk file(s) saved): pass "
            f"--resume to continue it, or --overwrite to start over")
      if not resume and self.writer:
        self._clear()
    if self.writer:
      self.chunks.mkdir(parents=True, exist_ok=True)
      for leftover in self.chunks.glob(".*.tmp"):  # from a process killed mid-write
        leftover.unlink()
      atomic_write(old_config, config_lib.to_toml(self.config))
      with contextlib.suppress(FileNotFoundError):
        (self.out / "run.json").unlink()  # written again when the sweep completes

  def _complete(self) -> bool:
    try:
      return bool(json.loads((self.out / "run.json").read_text()).get("complete"))
    except (OSError, ValueError):
      return False

  def _clear(self) -> None:
    if self.chunks.is_dir():
      shutil.rmtree(self.chunks)
    for name in ("results.csv", "curves.npz", "run.json"):
      with contextlib.suppress(FileNotFoundError):
        (self.out / name).unlink()

  def load(self) -> dict[int, Any]:
    """Every saved model's record, by model id (a file that fails to load is skipped)."""
    from jaxinit.sweep.loop import ModelRecord  # pylint: disable=import-outside-toplevel
    records: dict[int, Any] = {}
    for path in self.chunk_files():
      try:
        with np.load(path) as z:
          arrays = {k: z[k] for k in z.files}
      except (OSError, ValueError, EOFError):
        continue  # only a rename makes a chunk file, so this is foreign or damaged
      metrics = {k[len("metric_"):]: v for k, v in arrays.items() if k.startswith("metric_")}
      for j, model_id in enumerate(arrays["model_id"].tolist()):
        records[model_id] = ModelRecord(
            eval_step=arrays["eval_step"], metrics={k: v[j] for k, v in metrics.items()},
            step_loss=arrays["step_loss"][j], diverged_step=int(arrays["diverged_step"][j]))
    return records

  def save_chunk(self, models: Sequence[ModelSpec], records: Sequence[Any]) -> None:
    """Saves one finished chunk atomically (no-op unless this process writes)."""
    if not self.writer:
      return
    ids = np.array([m.model_id for m in models], np.int64)
    arrays = {"model_id": ids, "eval_step": records[0].eval_step,
              "step_loss": np.stack([r.step_loss for r in records]),
              "diverged_step": np.array([r.diverged_step for r in records], np.int64)}
    for name in records[0].metrics:
      arrays[f"metric_{name}"] = np.stack([r.metrics[name] for r in records])
    digest = hashlib.sha1(ids.tobytes()).hexdigest()[:16]
    atomic_write(self.chunks / f"chunk-{digest}.npz", npz_bytes(arrays))


def split_done(models: Iterable[ModelSpec], done: Mapping[int, Any]) -> list[ModelSpec]:
  """The models no saved chunk holds, in order."""
  return [m for m in models if m.model_id not in done]


__all__ = ["EXECUTION_KEYS", "RunStore", "SweepDirError", "atomic_write", "identity",
           "npz_bytes", "split_done"]
