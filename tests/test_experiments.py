"""Every study runs end to end at its tiny scale and writes a complete report."""

import re

import pytest

import jaxinit_experiments as ex
from jaxinit_experiments import study as study_lib
from jaxinit_experiments.cli import main as cli_main


@pytest.mark.parametrize("name", ex.names())
def test_study_runs_tiny_and_writes_report(name, tmp_path):
  report = study_lib.run_study(ex.get(name), "tiny", tmp_path)
  text = (tmp_path / "report.md").read_text()
  assert "**Claim.**" in text and "| quantity | paper | measured | held |" in text
  assert report.verdict in study_lib.VERDICTS
  assert report.comparisons, "a report compares at least one number with the paper"
  assert report.figures and report.data
  for file, _ in report.figures:
    assert (tmp_path / file).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"]({file})" in text
  for file in report.data:
    header = (tmp_path / file).read_text().splitlines()[0]
    assert header and "," in header


def test_unknown_study_and_scale_are_named(tmp_path, capsys):
  with pytest.raises(ValueError, match="unknown study 'nope'; studies are zero_init"):
    ex.get("nope")
  with pytest.raises(ValueError, match=re.escape("scale must be one of ('tiny', 'quick', 'full')")):
    study_lib.run_study(ex.get("zero_init"), "huge", tmp_path)
  assert cli_main(["run", "nope", "--out", str(tmp_path)]) == 2
  assert "unknown study 'nope'" in capsys.readouterr().err
  assert cli_main(["run", "--out", str(tmp_path)]) == 2


def test_dynamic_init_committed_verdict_follows_from_its_data():
  import csv
  from pathlib import Path
  from jaxinit_experiments import dynamic_init
  folder = Path(__file__).parents[1] / "experiments" / "results" / "dynamic_init"
  rows = {name: list(csv.DictReader(open(folder / f"{name}.csv")))
          for name in ("training", "methods")}
  lines = dynamic_init.judge(rows["training"], rows["methods"])
  held = [line[3] for line in lines if line[3] is not None]
  text = (folder / "report.md").read_text()
  assert f"**Verdict: {study_lib.verdict_of(held)}.**" in text
  for quantity, _, measured, _ in lines:
    assert f"| {quantity} |" in text and measured in text
