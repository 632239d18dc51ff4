"""What every study shares: its description, the three scales, and the report it writes.

A study is a function ``run(scale, out) -> Report`` plus its claim. Scales:

* ``"tiny"``: seconds, for the test suite (checks the code path, not the claim);
* ``"quick"``: the default, minutes on 2 CPU cores (what README's index shows);
* ``"full"``: the paper's scale, meant for a GPU.

The report puts the claim, the paper's numbers and the measured numbers side
by side, says whether the claim held, and lists the figures and CSV files
written next to it.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

SCALES: tuple[str, ...] = ("tiny", "quick", "full")
VERDICTS: tuple[str, ...] = ("held", "partly held", "did not hold", "not tested at this scale")


@dataclasses.dataclass
class Comparison:
  """One line of a report's results table.

  Attributes:
    quantity: what is compared.
    paper: the paper's value or statement ("" when it gives none).
    measured: what this run measured.
    held: whether the claim held for this line (None: no verdict).
  """
  quantity: str
  paper: str
  measured: str
  held: bool | None = None


@dataclasses.dataclass
class Report:
  """A study's ``report.md``.

  Attributes:
    title: the study's title.
    claim: the claim tested, in one or two sentences, with its source.
    setup: networks, data, training and what is measured, in plain words.
    scale: ``"tiny"``, ``"quick"`` or ``"full"``.
    comparisons: the results table.
    verdict: one of :data:`VERDICTS`.
    discussion: what the numbers mean; why a claim did not reproduce at this
      scale and what ``--full`` runs.
    figures: ``(file name, caption)`` of the PNGs in the study's folder.
    data: file names of the CSVs in the study's folder.
    wall_s: seconds the study took.
  """
  title: str
  claim: str
  setup: str
  scale: str
  comparisons: list[Comparison] = dataclasses.field(default_factory=list)
  verdict: str = "not tested at this scale"
  discussion: str = ""
  figures: list[tuple[str, str]] = dataclasses.field(default_factory=list)
  data: list[str] = dataclasses.field(default_factory=list)
  wall_s: float = math.nan

  def compare(self, quantity: str, paper: str, measured: str, held: bool | None = None) -> None:
    """Adds a line to the results table."""
    self.comparisons.append(Comparison(quantity, paper, measured, held))

  def markdown(self, name: str) -> str:
    """The report as Markdown."""
    mark = {True: "yes", False: "**no**", None: ""}
    lines = [f"# {self.title}", "",
             f"**Claim.** {self.claim}", "",
             f"**Setup** (scale `{self.scale}`; `jaxinit experiments run {name}"
             f"{' --full' if self.scale == 'full' else ''} --out DIR`). {self.setup}", "",
             "## Results", "",
             "| quantity | paper | measured | held |", "|---|---|---|---|"]
    lines += [f"| {c.quantity} | {c.paper} | {c.measured} | {mark[c.held]} |"
              for c in self.comparisons]
    lines += ["", f"**Verdict: {self.verdict}.** {self.discussion}".rstrip(), ""]
    for file, caption in self.figures:
      lines += [f"![{caption}]({file})", "", f"*{caption}*", ""]
    if self.data:
      lines += ["Data: " + ", ".join(f"[{f}]({f})" for f in self.data) + ".", ""]
    if math.isfinite(self.wall_s):
      lines += [f"Run time: {self.wall_s:.0f} s.", ""]
    return "\n".join(lines)


RunFn = Callable[[str, Path], Report]


@dataclasses.dataclass(frozen=True)
class Study:
  """A study: its name, title, and ``run(scale, out_dir) -> Report``.

  Attributes:
    name: the name ``jaxinit experiments run`` takes.
    title: a one-line title.
    run: trains/measures at ``scale``, writes figures and CSVs into the
      folder and returns the report (:func:`run_study` writes it).
  """
  name: str
  title: str
  run: RunFn


def run_study(study: Study, scale: str, out_dir: str | Path) -> Report:
  """Runs ``study`` at ``scale`` into ``out_dir`` and writes ``report.md`` there.

  Raises:
    ValueError: an unknown scale.
  """
  if scale not in SCALES:
    raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
  out = Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  tick = time.perf_counter()
  report = study.run(scale, out)
  report.wall_s = time.perf_counter() - tick
  if report.verdict not in VERDICTS:
    raise ValueError(f"{study.name}: verdict must be one of {VERDICTS}, got {report.verdict!r}")
  (out / "report.md").write_text(report.markdown(study.name))
  return report


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> str:
  """Writes dict rows (columns: the union of keys, first-seen order); returns the file name."""
  path = Path(path)
  columns: dict[str, None] = {}
  for row in rows:
    columns.update(dict.fromkeys(row))
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(list(columns))
    for row in rows:
      writer.writerow(["" if row.get(c) is None else _cell(row.get(c)) for c in columns])
  return path.name


def _cell(value: Any) -> str:
  if isinstance(value, float):
    return "" if math.isnan(value) else f"{value:.6g}"
  return str(value)


def save_figure(fig: Any, path: str | Path) -> str:
  """Saves a matplotlib figure as PNG (dpi 110), closes it; returns the file name."""
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  path = Path(path)
  fig.savefig(path, dpi=110, bbox_inches="tight")
  plt.close(fig)
  return path.name


def pyplot() -> Any:
  """``matplotlib.pyplot`` with the non-interactive Agg backend."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  return plt


def verdict_of(checks: Sequence[bool]) -> str:
  """The verdict of a list of per-criterion outcomes: all, some or none held.

  Examples:
    >>> verdict_of([True, True]), verdict_of([True, False]), verdict_of([False])
    ('held', 'partly held', 'did not hold')
  """
  return "held" if all(checks) else "partly held" if any(checks) else "did not hold"


def pick(scale: str, tiny: Any, quick: Any, full: Any) -> Any:
  """The value for ``scale``.

  Examples:
    >>> pick("quick", 1, 2, 3)
    2
  """
  return {"tiny": tiny, "quick": quick, "full": full}[scale]


__all__ = ["Comparison", "Report", "SCALES", "Study", "VERDICTS", "pick", "pyplot",
           "run_study", "save_figure", "verdict_of", "write_csv"]
