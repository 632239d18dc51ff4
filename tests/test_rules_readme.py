"""The README's "Whole models" examples run as written."""

import re
from pathlib import Path


def test_whole_models_readme_examples_run(tmp_path, monkeypatch):
  text = (Path(__file__).parents[1] / "README.md").read_text()
  section = text.split("## Whole models", 1)[1].split("\n## ", 1)[0]
  blocks = re.findall(r"```python\n(.*?)```", section, re.S)
  assert len(blocks) == 2
  monkeypatch.chdir(tmp_path)
  namespace: dict = {}
  for block in blocks:
    exec(compile(block, "README.md", "exec"), namespace)  # pylint: disable=exec-used
  report = namespace["report"]
  assert report.restored == ("body/bias", "body/kernel")
  assert set(report.initialized) == {"head/bias", "head/kernel"}
