"""A sweep's progress line on stderr: groups compiled, models done, model-steps/s, ETA.

While a shape group compiles, the line says so (``compiling group 2/3``); the
ETA counts what is left to train at the rate measured so far and what is left
to compile at the mean compile time so far (groups whose programs are cached
compile in no time, so it errs long).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Iterator
from typing import Any


def _clock(seconds: float) -> str:
  return time.strftime("%H:%M:%S", time.gmtime(seconds)) if math.isfinite(seconds) else \
      "--:--:--"


class Progress:
  """A one-line progress report on stderr.

  Args:
    total_models: models in the sweep.
    total_model_steps: the sum of their steps.
    groups: shape groups to compile.
    enabled: print anything at all.
    stream: where to print (default stderr).

  Examples:
    >>> import io
    >>> p = Progress(4, 400, groups=2, stream=io.StringIO())
    >>> p.update(100, 1.0, models_done=1)
    >>> p.line()
    '[sweep] models 1/4 | 100 model-steps/s | ETA 00:00:03'
  """

  def __init__(self, total_models: int, total_model_steps: int, groups: int = 1,
               enabled: bool = True, stream: Any = None) -> None:
    self.total_models, self.total_steps, self.groups = total_models, total_model_steps, groups
    self.models_done = self.steps_done = self.groups_compiled = 0
    self.train_s = self.compile_s = 0.0
    self.enabled = enabled
    self.stream = sys.stderr if stream is None else stream
    self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
    self._last = -math.inf
    self._printed = ""
    self._compiling: str | None = None

  def eta(self) -> float:
    """Seconds left: training at the measured rate, plus the groups left to compile."""
    rate = self.steps_done / self.train_s if self.train_s > 0 else 0.0
    if rate <= 0:
      return math.nan
    left = (self.total_steps - self.steps_done) / rate
    if self.groups_compiled:
      left += self.compile_s / self.groups_compiled * (self.groups - self.groups_compiled)
    return left

  def line(self) -> str:
    """The current report."""
    rate = self.steps_done / self.train_s if self.train_s > 0 else 0.0
    head = f"[sweep] models {self.models_done}/{self.total_models}"
    if self._compiling:
      head += f" | {self._compiling}"
    return f"{head} | {rate:,.0f} model-steps/s | ETA {_clock(self.eta())}"

  @contextlib.contextmanager
  def compiling(self, group: int, model_steps: int) -> Iterator[Any]:
    """Reports group ``group`` (from 0) compiling; set ``.seconds`` on the yielded
    object to the time compiling took (0 when the programs were cached)."""
    del model_steps  # the rate is measured, not predicted
    timer = type("Timer", (), {"seconds": None})()
    self._compiling = f"compiling group {group + 1}/{self.groups}"
    self._show(force=True)
    tick = time.perf_counter()
    try:
      yield timer
    finally:
      self._compiling = None
      self.groups_compiled += 1
      self.compile_s += time.perf_counter() - tick if timer.seconds is None else timer.seconds

  def update(self, model_steps: int, seconds: float, models_done: int = 0,
             final: bool = False) -> None:
    """Records ``model_steps`` trained in ``seconds`` and ``models_done`` finished."""
    self.steps_done += model_steps
    self.train_s += seconds
    self.models_done += models_done
    self._show(final=final)

  def _show(self, final: bool = False, force: bool = False) -> None:
    now = time.monotonic()
    # On a terminal, redraw often; in a log file, a line every 10 s.
    if not self.enabled or (not (final or force)
                            and now - self._last < (0.5 if self._tty else 10.0)):
      return
    line = self.line()
    if line == self._printed:
      return
    pad = " " * max(0, len(self._printed) - len(line)) if self._tty else ""
    self._last, self._printed = now, line
    end = "\n" if final or not self._tty else ""
    print(("\r" if self._tty else "") + line + pad, end=end, file=self.stream, flush=True)


__all__ = ["Progress"]
