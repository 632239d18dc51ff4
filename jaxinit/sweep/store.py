"""A sweep's folder while it runs: one writer, finished chunks saved atomically, resume.

``DIR/config.toml`` is written first; every chunk of models that finishes is
saved at once as ``DIR/chunks/chunk-<hash>.npz`` (its models' evaluations,
step losses and divergence, with the digest of the config and the execution
identity it was computed under), written to a temporary file and renamed
into place, so a killed sweep leaves only whole files. At the end the tables
of :mod:`jaxinit.sweep.results` are written the same way.

* One writer: a sweep holds ``DIR/.lock`` (:mod:`jaxinit.sweep.lock`) while it
  runs; a second sweep on the folder, whatever its flags, is refused and told
  which process holds it. A lock left by a killed process does not block.
* ``--resume`` trains only the models no chunk file holds. It refuses a folder
  written by a different config (compared with ``DIR/config.toml``, and with
  every chunk's config digest, so it holds even when ``config.toml`` was
  deleted) and chunks computed under another execution identity
  (:func:`execution_identity`: what could change a result's bits; with
  :func:`~jaxinit.sweep.identity.code_identity`, the source of the user's
  models, data and losses the config names), and keeps
  each group's lanes as saved. A damaged file (truncated, bad CRC, not a
  chunk, arrays of the wrong lengths) is reported, moved to
  ``DIR/chunks/damaged/``, and its models are trained again.
* Without ``--resume``: a folder holding an interrupted sweep is refused, and
  so is a finished sweep of a different config; ``--overwrite`` clears the
  folder's outputs (chunks, tables, plots) and starts over. A finished sweep
  of the same config is kept (:attr:`RunStore.kept`): its chunks are read back
  as ``--resume`` reads them (checked, damaged ones set aside), nothing is
  trained again but the models no valid chunk holds, and when none is missing
  its tables, ``config.toml``, ``run.json`` and plots stay as they are, byte
  for byte.

Files honour the umask; temporary files a killed sweep left are removed.
With several processes only process 0 writes (and locks); resuming on
several hosts needs ``DIR`` on a filesystem they share.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxinit.sweep import config_file
from jaxinit.sweep.config import ConfigError, ModelSpec, SweepConfig
from jaxinit.sweep.identity import code_identity, execution_identity
from jaxinit.sweep.lock import FolderInUseError, FolderLock

EXECUTION_KEYS: tuple[str, ...] = ("chunk_size", "paths")
"""Config keys that change how a sweep runs, not what it computes: they may
differ between a sweep and its resumption."""

CHUNK_FORMAT = 5
"""Version of the chunk files' layout (3: params drawn by the model-level rules; 4: parameters
no rule serves drawn with each model's own model key; 5: convolutions on CPU in canonical
layout, :mod:`jaxinit.sweep.convolutions`, which moves convolutional models' last bits; chunks
of earlier versions hold other numbers and are trained again)."""

OUTPUTS: tuple[str, ...] = ("results.csv", "curves.npz", "run.json", "config.toml",
                            "heatmap_*.png", "curves_*.png", "probe_*.png")
"""What a sweep and ``jaxinit plot`` write in ``DIR`` (``--overwrite`` clears these and
``chunks/``)."""


class SweepDirError(ValueError):
  """The output folder cannot be used as asked (in use, another config, an unfinished sweep)."""


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


def atomic_write(path: str | Path, data: bytes | str) -> None:
  """Writes ``path`` whole or not at all: a temporary file in the same folder, fsync, rename.

  The file gets the permissions of an ordinary new file (``0o666`` less the umask).
  """
  path = Path(path)
  payload = data.encode() if isinstance(data, str) else data
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      os.fchmod(f.fileno(), 0o666 & ~_umask())
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
  lines = config_file.to_toml(config).splitlines()
  return "\n".join(line for line in lines
                   if line.split(" = ", 1)[0] not in EXECUTION_KEYS) + "\n"


def config_digest(config: SweepConfig) -> str:
  """SHA-256 (hex, 16 digits) of :func:`identity`: what a chunk says it was computed for."""
  return hashlib.sha256(identity(config).encode()).hexdigest()[:16]


def _describe(differences: dict[str, tuple[Any, Any]]) -> str:
  return ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in differences.items())


class DamagedChunk(ValueError):
  """A chunk file that cannot be read as a chunk."""


_CHUNK_KEYS = ("format", "config_digest", "execution", "group", "lanes", "model_id",
               "eval_step", "step_loss", "diverged_step")


def read_chunk(path: str | Path) -> dict[str, Any]:
  """A chunk file's arrays, checked for shape; raises :class:`DamagedChunk` naming the fault."""
  try:
    with np.load(path, allow_pickle=False) as z:
      arrays = {k: z[k] for k in z.files}
  except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error,
          NotImplementedError) as err:
    raise DamagedChunk(f"cannot be read ({type(err).__name__}: {err})") from None
  missing = [k for k in _CHUNK_KEYS if k not in arrays]
  if missing:
    raise DamagedChunk(f"is not a sweep chunk (no {', '.join(missing)})")
  n = arrays["model_id"].shape[0] if arrays["model_id"].ndim == 1 else -1
  evals = arrays["eval_step"].shape[0] if arrays["eval_step"].ndim == 1 else -1
  bad = [k for k, v in arrays.items() if k.startswith("metric_") and v.shape[:2] != (n, evals)]
  if (n < 1 or evals < 1 or arrays["step_loss"].ndim != 2 or arrays["step_loss"].shape[0] != n
      or arrays["diverged_step"].shape != (n,) or bad
      or int(arrays["format"]) != CHUNK_FORMAT):
    raise DamagedChunk("holds arrays of inconsistent lengths or an unknown format")
  return arrays


class RunStore:
  """The output folder of one sweep.

  Args:
    out_dir: the folder.
    config: the sweep.
    writer: whether this process writes (process 0 of a multi-process run).
    report: where notes go (a damaged chunk set aside); default stderr.
  """

  def __init__(self, out_dir: str | Path, config: SweepConfig, *, writer: bool = True,
               report: Any = None) -> None:
    self.out = Path(out_dir)
    self.chunks = self.out / "chunks"
    self.config = config
    self.writer = writer
    self.digest = config_digest(config)
    self.execution = {**execution_identity(), "user_code": code_identity(config)}
    self.report = report or (lambda text: print(f"jaxinit sweep: {text}", file=sys.stderr))
    self.kept = False
    """Whether :meth:`prepare` found a finished sweep of this config and kept it."""
    self._lock: FolderLock | None = None

  def chunk_files(self) -> list[Path]:
    """The saved chunks, in name order."""
    return sorted(self.chunks.glob("chunk-*.npz")) if self.chunks.is_dir() else []

  def prepare(self, *, resume: bool = False, overwrite: bool = False,
              keep_finished: bool = True) -> None:
    """Locks the folder, checks it against the config and readies it.

    Args:
      resume: keep the saved chunks of the same config.
      overwrite: clear whatever sweep the folder holds.
      keep_finished: keep a finished sweep of the same config (:attr:`kept`); False
        trains it again (chunks hold no params: a caller that wants them).

    Raises:
      SweepDirError: the folder is in use, is a file, or holds a sweep the
        flags do not allow to continue or replace (naming what to do).
      ValueError: both flags.
      OSError: the folder cannot be created or written.
    """
    if resume and overwrite:
      raise ValueError("resume and overwrite exclude each other: pass one of them")
    if self.out.exists() and not self.out.is_dir():
      raise SweepDirError(f"{self.out} exists and is not a folder; choose another --out")
    if not self.writer:
      return
    self.out.mkdir(parents=True, exist_ok=True)
    try:
      self._lock = FolderLock(self.out).acquire()
    except FolderInUseError as err:
      raise SweepDirError(str(err)) from None
    try:
      self._check(resume, overwrite, keep_finished)
    except BaseException:
      self.close()
      raise
    self.chunks.mkdir(exist_ok=True)
    for folder in (self.out, self.chunks):  # temporary files of a process killed mid-write
      for leftover in folder.glob(".*.tmp"):
        leftover.unlink()
    if self.kept:  # a finished sweep of this config: its files stay as they are
      return
    atomic_write(self.out / "config.toml", config_file.to_toml(self.config))
    with contextlib.suppress(FileNotFoundError):
      (self.out / "run.json").unlink()  # written again when the sweep completes

  def _check(self, resume: bool, overwrite: bool, keep_finished: bool = True) -> None:
    saved = self.chunk_files()
    old_path = self.out / "config.toml"
    finished = self._complete()
    if overwrite:
      self._clear()
      return
    old: str | None = None
    if old_path.exists():
      try:
        old = identity(config_file.load_config(old_path))
      except (ConfigError, OSError):
        self.report(f"{old_path} is unreadable; the chunks' own config digests decide")
    if resume:
      if old is not None and old != identity(self.config) and (saved or finished):
        diff = [line for line in difflib.unified_diff(
            old.splitlines(), identity(self.config).splitlines(), "in DIR", "given",
            lineterm="", n=0) if line[:1] in "+-" and line[:3] not in ("+++", "---")]
        raise SweepDirError(
            f"--resume: {self.out} was written by a different config; differences "
            f"(- in the folder, + given): {'; '.join(diff[:6])}. Resume with the folder's own "
            f"config ({old_path}), or choose another --out")
      self._refuse_mixing()
      return
    if saved and not finished:
      raise SweepDirError(
          f"{self.out} holds an interrupted sweep ({len(saved)} chunk file(s) saved): pass "
          f"--resume to continue it, or --overwrite to start over")
    if finished and old != identity(self.config):
      raise SweepDirError(
          f"{self.out} holds a finished sweep of a different config; pass --overwrite to "
          f"replace it (its results and plots are deleted), or choose another --out")
    if finished and keep_finished:
      self.kept = True  # the same config, finished: read back, not trained again
      return
    self._clear()

  def outputs_complete(self) -> bool:
    """Whether the folder holds a finished sweep's tables (``results.csv``, ``curves.npz``,
    ``run.json``): what a kept sweep leaves alone when no model was missing."""
    return self._complete() and all(
        (self.out / name).is_file() for name in ("results.csv", "curves.npz", "run.json"))

  def _complete(self) -> bool:
    try:
      return bool(json.loads((self.out / "run.json").read_text()).get("complete"))
    except (OSError, ValueError, AttributeError):
      return (self.out / "results.csv").exists()

  def _clear(self) -> None:
    if self.chunks.is_dir():
      shutil.rmtree(self.chunks)
    for pattern in OUTPUTS:
      for path in self.out.glob(pattern):
        with contextlib.suppress(FileNotFoundError):
          path.unlink()

  def close(self) -> None:
    """Releases the folder's lock."""
    if self._lock is not None:
      self._lock.release()
      self._lock = None

  def load(self, models: Sequence[ModelSpec]) -> tuple[dict[int, Any], dict[str, int]]:
    """The saved records of ``models``, and the lanes of each group they came from.

    Damaged files are reported, moved to ``chunks/damaged/`` and skipped.

    Returns:
      ``(records by model id, lanes by group key)``.

    Raises:
      SweepDirError: a chunk of another config or execution identity, or
        chunks of one group with different lanes.
    """
    from jaxinit.sweep.loop import ModelRecord  # pylint: disable=import-outside-toplevel
    wanted = {m.model_id: m for m in models}
    records: dict[int, Any] = {}
    lanes: dict[str, int] = {}
    if not self.kept:
      self._refuse_mixing()
    for path in self.chunk_files():
      try:
        arrays = read_chunk(path)
        ids = arrays["model_id"].tolist()
        group = str(arrays["group"])
        if any(i not in wanted or wanted[i].static_key() != group for i in ids):
          raise DamagedChunk("holds models that are not this config's")
      except DamagedChunk as err:
        self._set_aside(path, str(err))
        continue
      if lanes.setdefault(group, int(arrays["lanes"])) != int(arrays["lanes"]):
        raise SweepDirError(f"{self.chunks} holds chunks of one shape group computed with "
                            f"different lanes; --overwrite to start over")
      metrics = {k[len("metric_"):]: v for k, v in arrays.items() if k.startswith("metric_")}
      for j, model_id in enumerate(ids):
        records[model_id] = ModelRecord(
            eval_step=arrays["eval_step"], metrics={k: v[j] for k, v in metrics.items()},
            step_loss=arrays["step_loss"][j], diverged_step=int(arrays["diverged_step"][j]),
            lanes=int(arrays["lanes"]))
    if self.kept and set(wanted) - set(records):
      # A kept sweep (complete, one execution) is read as it is; training the models it lacks
      # must not mix other configs' or other execution settings' chunks in.
      self._refuse_mixing()
    return records, lanes

  def _refuse_mixing(self) -> None:
    """Raises :class:`SweepDirError` if a readable chunk is another config's or was computed
    under other execution settings (damaged ones are :meth:`load`'s to set aside)."""
    foreign, other_execution = [], []
    for path in self.chunk_files():
      try:
        with np.load(path, allow_pickle=False) as z:
          digest, execution = str(z["config_digest"]), json.loads(str(z["execution"]))
      except Exception:  # noqa: BLE001  (damaged: load() reports and sets it aside)
        continue
      if digest != self.digest:
        foreign.append(path.name)
      elif execution != self.execution:
        other_execution.append((path.name, execution))
    flag = "rerun of a finished sweep" if self.kept else "--resume"
    if foreign:
      raise SweepDirError(
          f"{flag}: {len(foreign)} chunk file(s) in {self.chunks} were computed for a "
          f"different config (e.g. {foreign[0]}); refusing to mix them in: resume with that "
          f"config, or --overwrite to start over")
    if other_execution:
      name, execution = other_execution[0]
      differences = {k: (execution.get(k), v) for k, v in self.execution.items()
                     if execution.get(k) != v}
      raise SweepDirError(
          f"{flag}: {len(other_execution)} chunk file(s) in {self.chunks} were computed "
          f"under other execution settings ({_describe(differences)}, in {name}); their "
          f"results would not be bitwise this run's: resume with the same settings, or "
          f"--overwrite to start over")

  def _set_aside(self, path: Path, why: str) -> None:
    if not self.writer:
      return
    damaged = self.chunks / "damaged"
    damaged.mkdir(exist_ok=True)
    os.replace(path, damaged / path.name)
    self.report(f"{path} {why}: moved to {damaged}/; its models will be trained again")

  def saved_ids(self) -> set[int]:
    """Ids of the models whose chunks are on disk (readable ones of this config)."""
    ids: set[int] = set()
    for path in self.chunk_files():
      with contextlib.suppress(DamagedChunk):
        arrays = read_chunk(path)
        if str(arrays["config_digest"]) == self.digest:
          ids.update(arrays["model_id"].tolist())
    return ids

  def save_chunk(self, models: Sequence[ModelSpec], records: Sequence[Any]) -> None:
    """Saves one finished chunk atomically (no-op unless this process writes)."""
    if not self.writer:
      return
    ids = np.array([m.model_id for m in models], np.int64)
    arrays = {"format": np.int64(CHUNK_FORMAT), "config_digest": np.str_(self.digest),
              "execution": np.str_(json.dumps(self.execution, sort_keys=True)),
              "group": np.str_(models[0].static_key()), "lanes": np.int64(records[0].lanes),
              "model_id": ids, "eval_step": records[0].eval_step,
              "step_loss": np.stack([r.step_loss for r in records]),
              "diverged_step": np.array([r.diverged_step for r in records], np.int64)}
    for name in records[0].metrics:
      arrays[f"metric_{name}"] = np.stack([r.metrics[name] for r in records])
    digest = hashlib.sha1(ids.tobytes()).hexdigest()[:16]
    atomic_write(self.chunks / f"chunk-{digest}.npz", npz_bytes(arrays))


__all__ = ["CHUNK_FORMAT", "EXECUTION_KEYS", "OUTPUTS", "DamagedChunk", "RunStore",
           "SweepDirError", "atomic_write", "config_digest", "identity",
           "npz_bytes", "read_chunk"]
