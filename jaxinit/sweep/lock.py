"""One writer per sweep folder: an exclusive lock on ``DIR/.lock``.

The lock is an ``flock`` on the open file (released by the kernel when its
process ends, however it ends, so a killed sweep never leaves a stale lock);
the file holds the owner's pid, host and start time, for the message a
second sweep gets. Where ``fcntl`` is missing, the file is created with
``O_EXCL`` instead, and a lock whose process is gone (same host) is taken over.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

try:
  import fcntl
except ImportError:  # not POSIX
  fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"


class FolderInUseError(RuntimeError):
  """Another process holds the folder's lock."""


def _owner_text(path: Path) -> str:
  try:
    owner = json.loads(path.read_text())
    return (f"process {owner['pid']} on {owner['host']} (since "
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(owner['time']))}: "
            f"{owner['command']})")
  except (OSError, ValueError, KeyError, TypeError):
    return "another process"


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


class FolderLock:
  """An exclusive, non-blocking lock on a folder.

  Args:
    folder: the folder (it must exist).

  Examples:
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with FolderLock(folder):
    ...   FolderLock(folder).acquire()  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    jaxinit.sweep.lock.FolderInUseError: ... is in use by process ...
  """

  def __init__(self, folder: str | Path) -> None:
    self.path = Path(folder) / LOCK_NAME
    self._fd: int | None = None

  def acquire(self) -> FolderLock:
    """Takes the lock, or raises :class:`FolderInUseError` naming its holder."""
    owner = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "time": time.time(),
                        "command": " ".join(sys.argv)[:200]})
    if fcntl is not None:
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except OSError:
        os.close(fd)
        raise FolderInUseError(f"{self.path.parent} is in use by {_owner_text(self.path)}; "
                               f"wait for it to finish or stop it") from None
      os.ftruncate(fd, 0)
      os.write(fd, owner.encode())
      self._fd = fd
      return self
    for _ in range(2):
      try:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
      except FileExistsError:
        try:
          holder = json.loads(self.path.read_text())
          stale = holder["host"] == socket.gethostname() and not _alive(int(holder["pid"]))
        except (OSError, ValueError, KeyError, TypeError):
          stale = False
        if not stale:
          raise FolderInUseError(f"{self.path.parent} is in use by "
                                 f"{_owner_text(self.path)}; wait for it to finish or stop it "
                                 f"(or remove {self.path} if that process is gone)") from None
        with contextlib.suppress(FileNotFoundError):
          self.path.unlink()
        continue
      os.write(fd, owner.encode())
      self._fd = fd
      return self
    raise FolderInUseError(f"{self.path.parent}: could not take {self.path}")

  def release(self) -> None:
    """Releases the lock (no-op if not held)."""
    if self._fd is None:
      return
    fd, self._fd = self._fd, None
    if fcntl is None:
      with contextlib.suppress(FileNotFoundError):
        self.path.unlink()
    else:
      fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)

  def __enter__(self) -> FolderLock:
    return self.acquire()

  def __exit__(self, *exc: Any) -> None:
    self.release()


__all__ = ["FolderInUseError", "FolderLock", "LOCK_NAME"]
