"""A sweep's progress line on stderr: models done, model-steps/s, ETA."""

from __future__ import annotations

import math
import sys
import time
from typing import Any


class Progress:
  """A one-line progress report on stderr: models done, model-steps/s, ETA.

  Args:
    total_models: models in the sweep.
    total_model_steps: the sum of their steps.
    enabled: print anything at all.
    stream: where to print (default stderr).
  """

  def __init__(self, total_models: int, total_model_steps: int, enabled: bool = True,
               stream: Any = None) -> None:
    self.total_models, self.total_steps = total_models, total_model_steps
    self.models_done = self.steps_done = 0
    self.train_s = 0.0
    self.enabled = enabled
    self.stream = sys.stderr if stream is None else stream
    self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
    self._last = -math.inf
    self._printed = ""

  def line(self) -> str:
    """The current report."""
    rate = self.steps_done / self.train_s if self.train_s > 0 else 0.0
    left = (self.total_steps - self.steps_done) / rate if rate > 0 else math.nan
    eta = time.strftime("%H:%M:%S", time.gmtime(left)) if math.isfinite(left) else "--:--:--"
    return (f"[sweep] models {self.models_done}/{self.total_models} | "
            f"{rate:,.0f} model-steps/s | ETA {eta} (training only)")

  def update(self, model_steps: int, seconds: float, models_done: int = 0,
             final: bool = False) -> None:
    """Records ``model_steps`` trained in ``seconds`` and ``models_done`` finished."""
    self.steps_done += model_steps
    self.train_s += seconds
    self.models_done += models_done
    now = time.monotonic()
    # On a terminal, redraw often; in a log file, a line every 10 s.
    if not self.enabled or (not final and now - self._last < (0.5 if self._tty else 10.0)):
      return
    line = self.line()
    if line == self._printed:
      return
    self._last, self._printed = now, line
    end = "\n" if final or not self._tty else ""
    print(("\r" if self._tty else "") + line, end=end, file=self.stream, flush=True)


__all__ = ["Progress"]
