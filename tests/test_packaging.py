"""The distribution ships every package and data file the code imports (a wheel, not only
an editable install)."""

import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
SETUP = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_jaxinit_package_is_listed():
  found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "jaxinit").rglob("__init__.py")}
  assert found <= set(SETUP["packages"]), sorted(found - set(SETUP["packages"]))


def test_every_study_config_file_is_package_data():
  patterns = SETUP["package-data"]["jaxinit_experiments"]
  for path in (ROOT / "experiments" / "configs").iterdir():
    if path.suffix in (".toml", ".py"):
      assert any(path.match(p) for p in patterns), path.name
