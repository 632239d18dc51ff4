"""Sweep your own model: the example of ``experiments/`` (a user's NNX CNN on a user's
arrays, init rules x learning rate x seeds) from Python and from TOML by import path,
with results, resume and plots; and bad input refused at load time, naming the key."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxinit import cli, sweep
from jaxinit_experiments import user_model

CONFIGS = Path(user_model.__file__).parent / "configs"
SMALL_DATA = {"n_train": 256, "n_test": 128, "length": 16}


@pytest.fixture(scope="module")
def from_python(tmp_path_factory):
  out = tmp_path_factory.mktemp("user_cnn")
  config = user_model.grid(steps=20, seeds=2, **SMALL_DATA)
  config["grid"].update(channels=4, batch_size=16)
  config["eval_every"] = 10
  return sweep.run_sweep(config, out_dir=out, progress=False), out, config


def test_python_sweep_of_a_user_cnn_trains_every_cell(from_python):
  result, out, _ = from_python
  assert len(result.rows) == 3 * 3 * 2 and len(result.groups) == 1
  inits = {str(row["init"]) for row in result.rows}
  assert len(inits) == 3 and {"he_normal", "lecun_normal"} < inits, inits
  for row, losses in zip(result.rows, result.curves["test_loss"]):
    assert not row["diverged"] and math.isfinite(row["final_test_loss"]), row
  # Learning happened: the mean test loss fell.
  losses = np.asarray(result.curves["test_loss"])
  assert losses[:, -1].mean() < losses[:, 0].mean()
  rows, curves, _ = sweep.read_results(out)
  assert [r["final_test_loss"] for r in rows] == [r["final_test_loss"] for r in result.rows]
  # The CNN takes no width and no activation: its rows leave them empty, not the defaults.
  for r in rows + result.rows:
    assert r["width"] is None and r["activation"] is None and r["use_bias"] is None, r
    assert r["depth"] == 2


def test_resume_reads_back_every_model_and_plots_draw(from_python, recwarn):
  result, out, config = from_python
  again = sweep.run_sweep(config, out_dir=out, progress=False, resume=True)
  assert again.resumed_models == len(result.rows)
  assert [r["final_fingerprint"] for r in again.rows] == [
      r["final_fingerprint"] for r in result.rows]
  pytest.importorskip("matplotlib")
  assert cli.main(["plot", str(out)]) == 0
  assert any(p.stat().st_size > 1000 for p in out.glob("*.png"))
  # The rule set's long label is shortened: every panel keeps its layout.
  assert not [w for w in recwarn if "tight" in str(w.message).lower()], [
      str(w.message) for w in recwarn]


def test_plots_of_a_sweep_of_arrays_draw_in_a_new_process(from_python, tmp_path):
  """``jaxinit plot OUT`` reads results.csv and curves.npz only: the arrays (and a model
  given from Python) need not exist in the plotting process (found by a user: it asked for
  the arrays again)."""
  pytest.importorskip("matplotlib")
  _, out, _ = from_python
  copy = tmp_path / "copy"
  shutil.copytree(out, copy)
  for png in copy.glob("*.png"):
    png.unlink()
  done = subprocess.run([sys.executable, "-m", "jaxinit", "plot", str(copy)], cwd=tmp_path,
                        capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  assert any(p.stat().st_size > 1000 for p in copy.glob("*.png"))


def _toml(tmp_path: Path, text: str, name: str = "sweep.toml") -> Path:
  path = tmp_path / name
  path.write_text(text)
  return path


SMALL_TOML = f"""
name = "user_cnn_small"
seeds = 1
eval_every = 10
probes = []
paths = [{str(CONFIGS)!r}]
[grid]
model = "user_cnn:CNN"
dataset = {{ name = "user_cnn:signals", n_train = 256, n_test = 128, length = 16 }}
channels = 4
init = ["he_normal", {{ name = "rules", rules = [{{ module = "flax.nnx.Conv", init = "he_normal" }},
                                               {{ path = "head/kernel", init = "zeros" }}] }}]
optimizer = "adam"
learning_rate = [0.003, 0.03]
batch_size = 16
steps = 20
"""


def test_toml_sweep_by_import_path_runs_from_the_cli(tmp_path, capsys):
  config = _toml(tmp_path, SMALL_TOML)
  out = tmp_path / "out"
  assert cli.main(["sweep", str(config), "--out", str(out), "--no-progress",
                   "--cpu-devices", "1"]) == 0
  rows, _, _ = sweep.read_results(out)
  assert len(rows) == 4 and not any(r["diverged"] for r in rows)


def test_the_shipped_toml_loads(tmp_path):
  config = sweep.load_config(CONFIGS / "user_cnn.toml")
  assert len(config.models()) == 36 and len(sweep.group_models(config.models())) == 1


BAD = """
import numpy as np

def data(n=32, nan=False, short=False, unseen=False):
  x = np.random.default_rng(0).normal(size=(n, 16, 1)).astype(np.float32)
  y = np.arange(n) % 4
  if unseen:
    y[0] = 5  # the first 8 examples are also the test set: its label 5 is not in train
  if nan:
    x[3, 2, 0] = np.nan
  if unseen:
    return {"x_train": x[8:], "y_train": y[8:], "x_test": x[:8], "y_test": y[:8]}
  return {"x_train": x, "y_train": y[:-1] if short else y, "x_test": x[:8], "y_test": y[:8]}

def per_example_loss(outputs, targets):
  return (outputs.mean(-1) - targets) ** 2

def count_loss(outputs, targets):
  return (outputs.argmax(-1) != targets).sum()
"""


@pytest.mark.parametrize("change, key, words", [
    ('model = "no_such_module:CNN"', "model", "no_such_module"),
    ('channels = [4, 0]', "model", "channels"),
    ('activation = ["relu", "tanh"]', "activation", "change nothing"),
    ('dataset = { name = "bad:data", short = true }', "dataset", "y_train"),
    ('dataset = { name = "bad:data", nan = true }', "dataset", "nan"),
    ('dataset = { name = "bad:data", unseen = true }', "dataset", "label(s) [5]"),
    ('loss = "bad:per_example_loss"', "loss", "scalar"),
    ('loss = "bad:count_loss"', "loss", "not a float"),
    ('init = { name = "rules", rules = [{ path = "head/kernl", init = "zeros" }] }', "init",
     "head/kernl') [nearest paths"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, change, key, words):
  (tmp_path / "bad.py").write_text(BAD)
  lines, dropping = [], False
  for line in SMALL_TOML.splitlines():  # the changed key's line and its continuations
    dropping = line.startswith(change.split(" ")[0] + " ") or (dropping and line[:1] == " ")
    if not dropping:
      lines.append(line)
  where = lines.index("[grid]") if not change.startswith("loss") else lines.index("[grid]") - 1
  lines.insert(where + 1, change)
  text = "\n".join(lines).replace(f"paths = [{str(CONFIGS)!r}]",
                                  f"paths = [{str(tmp_path)!r}, {str(CONFIGS)!r}]")
  if change.startswith("dataset"):
    text = text.replace('dataset = { name = "user_cnn:signals", n_train = 256, n_test = 128, '
                        'length = 16 }\n', "")
  config = _toml(tmp_path, text)
  with pytest.raises(sweep.ConfigError) as err:
    sweep.run_sweep(sweep.load_config(config), progress=False)
  message = str(err.value)
  assert key in message and words.lower() in message.lower(), message
  assert cli.main(["sweep", str(config), "--out", str(tmp_path / "o"), "--no-progress",
                   "--cpu-devices", "1"]) == 2
  printed = capsys.readouterr().err.strip().splitlines()
  assert len(printed) == 1 and key in printed[0] and "Traceback" not in printed[0], printed
  assert not (tmp_path / "o").exists() or not any((tmp_path / "o").glob("results.csv"))


def _equinox_mlp(*, in_features, out_features, key):
  import equinox as eqx  # pylint: disable=import-outside-toplevel
  return eqx.nn.MLP(in_features, out_features, 8, 2, key=key)


def test_an_equinox_factory_sweeps_end_to_end(tmp_path):
  pytest.importorskip("equinox")
  mine = user_model.user_cnn()
  data = mine.signals(**SMALL_DATA)
  flat = {k: np.asarray(v).reshape(len(v), -1) if k.startswith("x") else v
          for k, v in data.items()}
  config = {"seeds": 2, "eval_every": 10, "probes": [],
            "grid": {"model": _equinox_mlp, "dataset": flat, "init": ["he_normal", "zeros"],
                     "learning_rate": 0.01, "batch_size": 16, "steps": 20}}
  result = sweep.run_sweep(config, out_dir=tmp_path / "eqx", progress=False)
  assert len(result.rows) == 4
  assert all(math.isfinite(r["final_test_loss"]) for r in result.rows)
  he = {r["init_fingerprint"] for r in result.rows if r["init"] == "he_normal"}
  zeros = {r["init_fingerprint"] for r in result.rows if r["init"] == "zeros"}
  assert len(he) == 2 and len(zeros) == 1  # each seed its own He draw; zeros are zeros


def _ten_way(*, in_features, rngs):
  from flax import nnx  # pylint: disable=import-outside-toplevel
  return nnx.Linear(in_features, 10, rngs=rngs)


def test_a_classifier_of_the_wrong_width_is_refused_whatever_the_loss():
  data = {"x_train": np.ones((16, 3), np.float32), "y_train": np.arange(16) % 4,
          "x_test": np.ones((4, 3), np.float32), "y_test": np.arange(4)}
  for loss in ("auto", "cross_entropy"):
    config = {"loss": loss, "probes": [], "eval_every": 1,
              "grid": {"model": _ten_way, "dataset": data, "batch_size": 4, "steps": 1}}
    with pytest.raises(sweep.ConfigError, match=r"dataset .* needs \(4, 4\)"):
      sweep.run_sweep(config, progress=False)


def _pure_pair(*, in_features, out_features):
  import jax  # pylint: disable=import-outside-toplevel
  return (lambda key: {"w": jax.random.normal(key, (in_features, out_features))},
          lambda params, x: x @ params["w"])


def test_probes_of_a_pure_pair_that_cannot_be_captured_are_refused_at_load_time():
  data = {"x_train": np.ones((16, 3), np.float32), "y_train": np.arange(16) % 2,
          "x_test": np.ones((4, 3), np.float32), "y_test": np.arange(4) % 2}
  config = {"probes": ["mean"], "eval_every": 1,
            "grid": {"model": _pure_pair, "dataset": data, "batch_size": 4, "steps": 1}}
  with pytest.raises(sweep.ConfigError, match="probes = \\['mean'\\].*cannot be captured"):
    sweep.run_sweep(config, progress=False)


def _arrays(n_train):
  x = np.random.default_rng(0).normal(size=(n_train + 4, 3)).astype(np.float32)
  y = np.arange(n_train + 4) % 2
  return {"x_train": x[:n_train], "y_train": y[:n_train], "x_test": x[n_train:],
          "y_test": y[n_train:]}


def _preflight(config):
  from jaxinit.sweep.preflight import preflight  # pylint: disable=import-outside-toplevel
  config = sweep.parse_config(config)
  preflight(config, config.models())


def test_a_batch_larger_than_the_training_set_is_refused_per_dataset():
  teacher = {"name": "teacher_student", "n_train": 64, "n_test": 8, "in_features": 3}
  grid = {"dataset": [teacher, _arrays(16)], "width": 4, "steps": 1}
  base = {"probes": [], "eval_every": 1}
  _preflight({**base, "grid": {**grid, "batch_size": 16}})  # a full batch of each: fine
  for sizes, words in (([17], "dataset arrays:"), ([8, 65], "dataset teacher_student(")):
    with pytest.raises(sweep.ConfigError) as err:
      _preflight({**base, "grid": {**grid, "batch_size": sizes}})
    message = str(err.value)
    assert f"batch_size = {sizes[-1]} is larger than the training set of {words}" in message
    assert "n_train per dataset: teacher_student(" in message and " 64, arrays:" in message
    assert message.endswith(" 16"), message


def _no_params(*, in_features, out_features, rngs):
  from flax import nnx  # pylint: disable=import-outside-toplevel

  class Head(nnx.Module):
    def __call__(self, x):
      return x[:, :out_features]
  del rngs, in_features
  return Head()


def _empty_pair(*, out_features):
  return (lambda key: {}), (lambda params, x: x[:, :out_features])


def _zero_size_pair(*, in_features, out_features):
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  return (lambda key: {"w": jnp.zeros((in_features, 0))}), (
      lambda params, x: jnp.zeros((len(x), out_features)) + (x @ params["w"]).sum())


@pytest.mark.parametrize("factory", [_no_params, _empty_pair, _zero_size_pair])
def test_a_model_without_parameters_is_refused_naming_it(factory):
  config = {"probes": [], "eval_every": 1,
            "grid": {"model": factory, "dataset": _arrays(8), "batch_size": 4, "steps": 1}}
  with pytest.raises(sweep.ConfigError, match=rf"model = .*:{factory.__name__}: .* has no "
                                              r"parameters to train"):
    _preflight(config)


def _needs(*, in_features, out_features, channels, kernel=3, rngs):
  from flax import nnx  # pylint: disable=import-outside-toplevel
  return nnx.Linear(in_features * channels // channels, out_features, rngs=rngs)


def _needs_positional(in_features, hidden, /, *, out_features, rngs):
  from flax import nnx  # pylint: disable=import-outside-toplevel
  return nnx.Linear(in_features, out_features + 0 * hidden, rngs=rngs)


def test_a_factorys_missing_arguments_are_named_with_what_the_sweep_offers():
  data = _arrays(8)
  with pytest.raises(sweep.ConfigError) as err:
    sweep.parse_config({"grid": {"model": _needs, "dataset": data}})
  message = str(err.value)
  assert f"[grid] model: the factory {_needs.__module__}:_needs requires 'channels', which " \
         f"the sweep does not give" in message, message  # not kernel: it has a default
  assert "in_features, in_shape, out_features" in message and "width, depth" in message
  with pytest.raises(sweep.ConfigError, match=r"requires 'in_features', 'hidden' as "
                                              r"positional-only .* make them keyword"):
    sweep.parse_config({"grid": {"model": _needs_positional, "dataset": data}})
  # Given as a grid axis or a table option, it is offered.
  sweep.parse_config({"grid": {"model": _needs, "dataset": data, "channels": [2, 4]}})
  sweep.parse_config({"grid": {"model": {"name": _needs, "channels": 2}, "dataset": data}})
  # In a list of models, the one at fault is named.
  with pytest.raises(sweep.ConfigError, match=r"\[grid\] model\[1\]: the factory .*_needs "):
    sweep.parse_config({"grid": {"model": [{"name": _needs, "channels": 2}, _needs],
                                 "dataset": data}})


def test_import_paths_resolve_from_the_working_folder_and_say_where_they_looked(
    tmp_path, monkeypatch):
  """``jaxinit sweep configs/x.toml`` run from a project's root finds ``models.py`` there (the
  console script's sys.path holds its own folder, not the working one)."""
  work, configs = tmp_path / "project", tmp_path / "project" / "configs"
  configs.mkdir(parents=True)
  (work / "cwd_models_14.py").write_text(
      "from flax import nnx\n"
      "def linear(*, in_features, out_features, rngs):\n"
      "  return nnx.Linear(in_features, out_features, rngs=rngs)\n")
  monkeypatch.chdir(work)
  monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(work))])
  config = configs / "sweep.toml"
  config.write_text('[grid]\nmodel = "cwd_models_14:linear"\n'
                    'dataset = { name = "teacher_student", n_train = 16 }\n')
  assert sweep.load_config(config).grid["model"] == ("cwd_models_14:linear",)
  config.write_text('[grid]\nmodel = "not_here_14.models:linear"\n')
  with pytest.raises(sweep.ConfigError) as err:
    sweep.load_config(config)
  message = str(err.value)
  assert "[grid] model: model 'not_here_14.models:linear': no module 'not_here_14.models' in " \
         f"{configs}, {work} (the config's folder, its paths, the working folder) or the " \
         "installed packages; add the folder that holds it to the config's paths = [...]" \
         in message, message


def test_a_model_instance_is_refused_in_one_short_line():
  from flax import nnx  # pylint: disable=import-outside-toplevel
  from jaxinit.sweep import refs  # pylint: disable=import-outside-toplevel
  model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
  with pytest.raises(TypeError, match=r"^an instance of Linear \(.*\) has no import path.*"
                                      r"\(not an instance\)") as err:
    refs.reference(model)
  assert len(str(err.value)) < 300 and "\n" not in str(err.value)
