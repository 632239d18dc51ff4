"""The committed results of deep_plain_nets and transformer_depth (issue 17): every verdict is
recomputed from the study's own CSV data by the criteria its report states, and the numbers the
README quotes are the committed ones. Re-running the studies is behind ``-m slow``."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from jaxinit_experiments import deep_plain_nets, transformer_depth
from jaxinit_experiments import study as study_lib

ROOT = Path(__file__).parents[1]
RESULTS = ROOT / "experiments" / "results"


def _rows(name: str, file: str) -> list[dict[str, str]]:
  with open(RESULTS / name / file, newline="") as f:
    return list(csv.DictReader(f))


def _float(text: str) -> float:
  return math.nan if text == "" else float(text)


def _readme_row(readme: Path, name: str) -> str:
  prefix = (f"| [`{name}`](experiments/results/{name}/report.md)" if readme.parent == ROOT
            else f"| [`{name}`](results/{name}/report.md)")
  rows = [line for line in readme.read_text().splitlines() if line.startswith(prefix)]
  assert len(rows) == 1, f"{readme} has no row for {name}"
  return rows[0]


def _verdict_is_reported(name: str, verdict: str) -> None:
  assert f"**Verdict: {verdict}.**" in (RESULTS / name / "report.md").read_text()
  for readme in (ROOT / "README.md", ROOT / "experiments" / "README.md"):
    assert _readme_row(readme, name).endswith(f"| {verdict} |"), readme


# ---------------------------------------------------------------------------
# deep_plain_nets


def _plain_nets_means() -> tuple[dict[tuple[int, str], float], tuple[int, int]]:
  """Mean final test accuracy at the chosen learning rate per (depth, arm), re-derived."""
  rows = [r for r in _rows("deep_plain_nets", "models.csv") if r["family"] == "mlp"]
  depths = sorted({int(r["depth"]) for r in rows})
  assert len(depths) == 2
  means = {}
  for depth in depths:
    for arm in deep_plain_nets.ARMS:
      group = [r for r in rows if int(r["depth"]) == depth and r["arm"] == arm]
      assert group, (depth, arm)

      def score(r: dict[str, str], column: str) -> float:
        return 0.0 if int(r["diverged_step"]) >= 0 else float(r[column])

      # The learning rate kept is the one with the best mean final validation accuracy (a
      # diverged seed scores 0), the first of equals.
      by_rate = {lr: np.mean([score(r, "final_validation_accuracy") for r in group
                              if math.isclose(float(r["learning_rate"]), lr, rel_tol=1e-6)])
                 for lr in deep_plain_nets.LEARNING_RATES}
      best = max(by_rate, key=lambda lr: (by_rate[lr], -deep_plain_nets.LEARNING_RATES.index(lr)))
      chosen = [r for r in group if r["chosen"] == "True"]
      assert chosen and all(math.isclose(float(r["learning_rate"]), best, rel_tol=1e-6)
                            for r in chosen), (depth, arm)
      means[(depth, arm)] = float(np.mean([score(r, "final_test_accuracy") for r in chosen]))
  return means, (depths[0], depths[1])


def test_deep_plain_nets_verdict_follows_from_its_data():
  means, (shallow, deep) = _plain_nets_means()
  margin = deep_plain_nets.MARGIN
  tat, res, relu = (means[(deep, a)] for a in ("tat", "resmlp", "eoc_relu"))
  criteria = [tat >= res - margin, relu < res - margin,
              tat >= means[(shallow, "tat")] - margin]
  verdict = study_lib.verdict_of(criteria)
  _verdict_is_reported("deep_plain_nets", verdict)
  report = (RESULTS / "deep_plain_nets" / "report.md").read_text()
  assert f"| {tat - res:+.3f} |" in report and f"| {relu - res:+.3f} |" in report
  row = _readme_row(ROOT / "README.md", "deep_plain_nets")
  for arm in deep_plain_nets.ARMS:
    assert f"{deep_plain_nets.LABELS[arm]} {means[(deep, arm)]:.3f}" in row, arm
  assert f"TAT at depth {shallow}: {means[(shallow, 'tat')]:.3f}" in row


def test_deep_plain_nets_init_correlation_is_compared_with_theory():
  """At init every arm's per-layer correlation of two orthogonal inputs has its prediction."""
  rows = _rows("deep_plain_nets", "init_correlation.csv")
  for depth in {int(r["depth"]) for r in rows}:
    for arm in deep_plain_nets.ARMS:
      group = [r for r in rows if int(r["depth"]) == depth and r["arm"] == arm]
      assert group and all(-1 <= float(r[c]) <= 1 for r in group for c in ("measured", "theory"))
  deep = max(int(r["depth"]) for r in rows)
  last = {r["arm"]: r for r in rows if int(r["depth"]) == deep}
  # The theory side of the claim: TAT's network C-map (the L activations, the last one feeding
  # the readout) sends 0 to eta; the last hidden pre-activation has passed L - 1 of them, so it
  # sits just below eta. EOC ReLU's goes to 1.
  assert 0.99 * deep_plain_nets.TAT_C_VAL_0 < float(last["tat"]["theory"]) < (
      deep_plain_nets.TAT_C_VAL_0)
  assert float(last["eoc_relu"]["theory"]) > 0.99


# ---------------------------------------------------------------------------
# transformer_depth


def _transformer_failures() -> tuple[int, dict[str, np.ndarray], dict[str, float]]:
  rows = _rows("transformer_depth", "runs.csv")
  deep = max(int(r["depth"]) for r in rows)
  chance = math.log(transformer_depth._settings("quick")["vocab"])
  failed, loss = {}, {}
  for arm in transformer_depth.ARMS:
    group = [r for r in rows if int(r["depth"]) == deep and r["arm"] == arm]
    assert group, arm
    diverged = np.array([int(r["diverged_step"]) >= 0 for r in group])
    raw = np.array([_float(r["final_train_loss"]) for r in group])
    assert [r["stalled"] == "True" for r in group] == list(
        raw >= transformer_depth.STALL * chance), arm
    final = np.where(diverged, np.nan, raw)
    failed[arm] = diverged | ~(final < transformer_depth.STALL * chance)
    loss[arm] = float(np.nanmean(final)) if np.isfinite(final).any() else math.nan
  return deep, failed, loss


def test_transformer_depth_verdict_follows_from_its_data():
  deep, failed, loss = _transformer_failures()
  criteria = [not failed["deepnorm"].any() and not failed["tfixup"].any(),
              bool(failed["post_ln"].all())]
  verdict = study_lib.verdict_of(criteria)
  _verdict_is_reported("transformer_depth", verdict)
  row = _readme_row(ROOT / "README.md", "transformer_depth")
  assert f"depth {deep}" in row
  for arm in transformer_depth.ARMS:
    assert f"{transformer_depth.LABELS[arm]} {loss[arm]:.2f}" in row, arm
    assert f"{transformer_depth.LABELS[arm]} {int(failed[arm].sum())}/{len(failed[arm])}" in row


def _last_block_correlation(depth: int) -> dict[str, float]:
  rows = _rows("transformer_depth", "init_token_correlation.csv")
  return {r["arm"]: float(r["token_correlation"]) for r in rows
          if int(r["depth"]) == depth and int(r["layer"]) == depth}


def test_transformer_depth_probes_rank_collapse_at_every_block():
  rows = _rows("transformer_depth", "init_token_correlation.csv")
  runs = _rows("transformer_depth", "runs.csv")
  for depth in {int(r["depth"]) for r in runs}:
    for arm in transformer_depth.ARMS:
      group = [r for r in rows if int(r["depth"]) == depth and r["arm"] == arm]
      # The embeddings (layer 0) and every block's output.
      assert [int(r["layer"]) for r in group] == list(range(depth + 1)), (depth, arm)
      assert all(-1 <= float(r["token_correlation"]) <= 1 for r in group)
  deep = max(int(r["depth"]) for r in runs)
  row = _readme_row(ROOT / "README.md", "transformer_depth")
  for arm, value in _last_block_correlation(deep).items():
    assert f"{transformer_depth.LABELS[arm]} {value:.2f}" in row.split("rank-collapse")[1], arm


# ---------------------------------------------------------------------------
# Re-running (minutes to tens of minutes on 2 CPU cores).


@pytest.mark.slow
@pytest.mark.parametrize("name", ["deep_plain_nets", "transformer_depth"])
def test_quick_run_reproduces_the_committed_verdict(name, tmp_path):
  import jaxinit_experiments as ex
  report = study_lib.run_study(ex.get(name), "quick", tmp_path)
  assert f"**Verdict: {report.verdict}.**" in (RESULTS / name / "report.md").read_text()
