"""The README's "Parametrizations" example runs as written and its coordinate check passes."""

import re
from pathlib import Path


def test_parametrizations_readme_example_runs(tmp_path, monkeypatch):
  text = (Path(__file__).parents[1] / "README.md").read_text()
  section = text.split("## Parametrizations: muP, NTK, depth-muP", 1)[1].split("\n## ", 1)[0]
  blocks = re.findall(r"```python\n(.*?)```", section, re.S)
  assert len(blocks) == 1
  monkeypatch.chdir(tmp_path)
  namespace: dict = {}
  exec(compile(blocks[0], "README.md", "exec"), namespace)  # pylint: disable=exec-used
  assert namespace["check"].passed
  assert namespace["scaling"]["hidden/kernel"].factors.lr_adam == 1 / 16
  assert (tmp_path / "coord_check.png").exists()
