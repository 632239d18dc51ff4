"""The README's "Data-dependent initialization" example runs as written and says what it shows."""

import re
from pathlib import Path

import numpy as np


def test_data_dependent_readme_example_runs():
  text = (Path(__file__).parents[1] / "README.md").read_text()
  section = text.split("## Data-dependent initialization", 1)[1].split("\n## ", 1)[0]
  blocks = re.findall(r"```python\n(.*?)```", section, re.S)
  assert len(blocks) == 1
  namespace: dict = {}
  exec(compile(blocks[0], "README.md", "exec"), namespace)  # pylint: disable=exec-used
  report = namespace["report"]
  assert len(report.layers) == 30 and bool(np.all(report.converged))
  assert int(np.max(report.iterations)) == 1  # "one rescaling each"
  np.testing.assert_allclose(np.sqrt(report.variance_after), 1.0, atol=0.005)  # "std 1.00"
  assert np.all(np.asarray(namespace["moments"]["variance"]) > 0.9)
