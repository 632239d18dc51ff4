"""The sweep engine: a model trains bit for bit the same alone or among 256,
cells that differ only in learning rate share their initial weights and
batches, divergence is recorded, results land on disk, and the CLI runs end
to end.

Every test uses the tiny teacher-student shapes of ``sweep_tiny.toml`` and the
process-wide program cache: one compiled program serves them all (a group's
programs do not depend on how many models it has).
"""

import csv
import json
import math
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import jax
import numpy as np
import pytest

import jaxinit
from jaxinit import cli, sweep
from jaxinit.sweep import params as params_lib

TINY = Path(__file__).parent / "sweep_tiny.toml"
DIVERGENT_LR = 1e3


def _tiny() -> dict:
  with open(TINY, "rb") as f:
    return tomllib.load(f)


def _group_config() -> dict:
  data = _tiny()
  data["seeds"] = 4
  data["grid"].update(
      init=["he_normal", "orthogonal", {"name": "normal", "stddev": 0.1}, "glorot_uniform"],
      learning_rate=[0.01, 0.05, 0.1, DIVERGENT_LR],
      weight_variance=[0.5, 1.0, 2.0, 4.0])
  return data


@pytest.fixture(scope="module")
def group(tmp_path_factory):
  """256 models in one shape group, written to disk."""
  out = tmp_path_factory.mktemp("group")
  result = sweep.run_sweep(_group_config(), out_dir=out, progress=False, keep_params=True)
  return result, out


@pytest.fixture(scope="module")
def alone():
  """The model of sweep_tiny.toml, trained by itself."""
  return sweep.run_sweep(sweep.load_config(TINY), progress=False, keep_params=True)


def test_one_shape_group_of_256(group):
  result, _ = group
  assert len(result.models) == 256
  assert len(result.groups) == 1 and result.groups[0]["num_models"] == 256


def test_alone_equals_in_group(group, alone):
  result, _ = group
  (model,) = alone.models
  index = [m.model_id for m in result.models].index(model.model_id)
  assert result.models[index] == model
  # Initialization and training: bit for bit.
  for name in ("initial_params", "final_params"):
    leaves_alone = jax.tree.leaves(getattr(alone, name)[0])
    leaves_group = jax.tree.leaves(getattr(result, name)[index])
    assert len(leaves_alone) == len(leaves_group) > 0
    for a, b in zip(leaves_alone, leaves_group):
      np.testing.assert_array_equal(a, b)
  row_alone, row_group = alone.rows[0], result.rows[index]
  for key, value in row_alone.items():
    if key != "group":
      assert value == row_group[key] or (value != value and row_group[key] != row_group[key]), key
  for name in ("step_loss", "test_loss", "probe_second_moment"):
    np.testing.assert_array_equal(alone.curves[name][0], result.curves[name][index])
  # It did train: the loss moved.
  assert row_group["final_train_loss"] < result.curves["train_loss"][index][0]


def test_cells_differing_in_learning_rate_share_weights_and_batches(group):
  """Common random numbers: the init key depends on architecture, init, variances and
  seed only; the batch order on data, batch size and seed only."""
  result, _ = group
  rows = result.rows
  same = lambda i, j, *axes: all(rows[i][a] == rows[j][a] for a in axes)  # noqa: E731
  init_axes = ("init", "weight_variance", "bias_variance", "seed")
  pairs = [(i, j) for i in range(len(rows)) for j in range(i)
           if same(i, j, *init_axes) and rows[i]["learning_rate"] != rows[j]["learning_rate"]]
  assert len(pairs) == 64 * 6
  for i, j in pairs:
    assert rows[i]["init_fingerprint"] == rows[j]["init_fingerprint"]
  # Another weight variance or seed: other weights.
  fingerprints = {(r["init"], r["weight_variance"], r["seed"]): r["init_fingerprint"]
                  for r in rows}
  assert len(set(fingerprints.values())) == len(fingerprints) == 64
  # The same batches: two learning rates small enough not to diverge, on the same
  # weights, take their first step on the same minibatch, so their first losses agree.
  for i, j in pairs:
    if rows[i]["learning_rate"] < 1 and rows[j]["learning_rate"] < 1:
      assert result.curves["step_loss"][i][0] == result.curves["step_loss"][j][0]


def _find(result, **cell):
  seed = cell.pop("seed")
  (index,) = [i for i, m in enumerate(result.models)
              if m.seed == seed and all(m[k] == v for k, v in cell.items())]
  return index


def test_initialization_follows_the_grid(group):
  result, _ = group
  params = lambda **cell: result.initial_params[_find(result, **cell)]  # noqa: E731
  cell = dict(init="orthogonal", learning_rate=0.01, seed=0)
  # Orthogonal at weight variance 1: orthonormal columns of the square hidden kernel.
  w = params(weight_variance=1.0, **cell)["hidden"]["kernel"][0]
  np.testing.assert_allclose(w.T @ w, np.eye(16), atol=1e-5)
  # Weight variance multiplies the variance (another cell, so other keys).
  w4 = params(weight_variance=4.0, **cell)["hidden"]["kernel"][0]
  assert not np.allclose(w4, 2 * w)
  np.testing.assert_allclose(w4.T @ w4, 4 * np.eye(16), atol=1e-4)
  # He normal: variance 2 * weight_variance / fan_in.
  he = params(init="he_normal", weight_variance=2.0, learning_rate=0.01, seed=1)
  assert 0.6 < np.var(he["input"]["kernel"]) * 16 / (2 * 2.0) < 1.4
  # Zero bias variance: zero biases.
  assert not np.any(params(weight_variance=1.0, **cell)["hidden"]["bias"])


def test_initial_params_are_jaxinit_initialize_of_the_model_alone(group):
  """One init path: a sweep's initial params are ``jaxinit.initialize`` of the model (here
  ``jaxinit.models.MLP`` built by its rules) with the cell's rules and the model's init key."""
  from jaxinit.sweep import keys as keys_lib  # pylint: disable=import-outside-toplevel
  result, _ = group
  for cell in (dict(init="orthogonal", weight_variance=2.0, learning_rate=0.05, seed=1),
               dict(init="he_normal", weight_variance=0.5, learning_rate=0.01, seed=3)):
    model = result.models[_find(result, **cell)]
    shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                          result.initial_params[0])
    identity = keys_lib.init_identity(keys_lib.param_layout(shapes), model["init"],
                                      model["weight_variance"], model["bias_variance"],
                                      model.seed)
    (key,) = keys_lib.derive_keys(result.config.root_seed, keys_lib.INIT_TAG, [identity])
    rules = params_lib.cell_rules(model["init"], model["weight_variance"],
                                  model["bias_variance"])
    mlp = jaxinit.models.MLP(16, 1, 16, 2, activation="tanh", rules=rules,
                             rngs=jax.random.wrap_key_data(key))
    expected = jaxinit.models.params_of(mlp)
    for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(
        result.initial_params[_find(result, **cell)])):
      np.testing.assert_array_equal(a, b)


def test_divergence_is_recorded_and_contained(group):
  result, _ = group
  diverged = [r for r in result.rows if r["diverged"]]
  assert diverged and all(r["learning_rate"] == DIVERGENT_LR for r in diverged)
  assert all(not r["diverged"] for r in result.rows if r["learning_rate"] <= 0.05)
  for i, row in enumerate(result.rows):
    if not row["diverged"]:
      assert row["diverged_step"] is None and math.isfinite(row["final_test_loss"])
      continue
    step = row["diverged_step"]
    assert isinstance(step, int) and 0 <= step < row["steps"]
    losses = result.curves["step_loss"][i]
    # Finite until the diverging step, whose loss is recorded, then NaN.
    assert np.isfinite(losses[:step]).all() and not np.isfinite(losses[step])
    assert np.isnan(losses[step + 1:]).all()
    # Frozen at the last finite params.
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(result.final_params[i]))


def test_results_on_disk(group):
  result, out = group
  with open(out / "results.csv", newline="") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 256
  for column in ("model_id", "seed", "init", "depth", "weight_variance", "learning_rate",
                 "final_test_loss", "best_test_loss", "final_test_accuracy", "diverged",
                 "diverged_step", "init_fingerprint", "final_fingerprint",
                 "initial_second_moment_first_layer", "final_second_moment_last_layer"):
    assert column in rows[0], column
  assert len({r["model_id"] for r in rows}) == 256
  assert {r["init"] for r in rows} == {"he_normal", "orthogonal", "normal(stddev=0.1)",
                                       "glorot_uniform"}
  assert {r["seed"] for r in rows} == {"0", "1", "2", "3"}
  assert all(r["final_test_accuracy"] == "" for r in rows)  # regression: no accuracy
  assert {r["diverged"] for r in rows} == {"True", "False"}
  # Second moment at init grows with the weight variance (same init and seed).
  moments = {(r["init"], float(r["weight_variance"]), r["seed"], r["learning_rate"]):
             float(r["initial_second_moment_last_layer"]) for r in rows}
  assert moments[("he_normal", 4.0, "0", "0.01")] > moments[("he_normal", 0.5, "0", "0.01")]

  rows_back, curves, config = sweep.read_results(out)
  assert config == sweep.parse_config(_group_config())
  assert sweep.read_results(out, check=False)[2] == config  # as written, nothing re-resolved
  assert rows_back[0]["model_id"] == result.rows[0]["model_id"]
  assert curves["test_loss"].shape == (256, 3)  # step 0, 10, 20
  assert curves["eval_step"][0].tolist() == [0, 10, 20]
  assert curves["step_loss"].shape == (256, 20)
  assert curves["probe_second_moment"].shape == (256, 3, 2)
  assert (out / "config.toml").exists() and (out / "run.json").exists()


def test_results_read_back_as_written(group):
  """Fingerprints stay text in every reader; the result prints short; pandas sees the rows."""
  pd = pytest.importorskip("pandas")
  result, out = group
  frame = pd.read_csv(out / "results.csv")
  assert frame["init_fingerprint"].tolist() == [r["init_fingerprint"] for r in result.rows]
  assert frame["final_fingerprint"].tolist() == [r["final_fingerprint"] for r in result.rows]
  assert all(len(f) == 10 and f.startswith("0x") for f in frame["init_fingerprint"])
  assert frame["model_id"].tolist() == [r["model_id"] for r in result.rows]
  rows_back, _, _ = sweep.read_results(out)
  assert [r["final_fingerprint"] for r in rows_back] == frame["final_fingerprint"].tolist()
  table = result.to_pandas()
  assert table.shape == (256, len(result.rows[0]))
  assert table["final_fingerprint"].tolist() == frame["final_fingerprint"].tolist()
  text = repr(result)
  assert len(text) < 300 and "models=256" in text and "name='tiny'" in text


def test_cli_end_to_end(alone, tmp_path, capsys):
  out = tmp_path / "tiny"
  assert cli.main(["sweep", str(TINY), "--out", str(out), "--no-progress",
                   "--cpu-devices", "1"]) == 0
  printed = capsys.readouterr().out
  assert "1 models" in printed and str(out) in printed
  with open(out / "results.csv", newline="") as f:
    (row,) = list(csv.DictReader(f))
  # The CLI trains the same model as the Python API, bit for bit.
  assert float(row["final_test_loss"]) == alone.rows[0]["final_test_loss"]
  assert row["final_fingerprint"] == alone.rows[0]["final_fingerprint"]
  assert cli.main(["plot", str(out)]) == 0
  for name in ("heatmap_final_test_loss.png", "curves_loss.png",
               "probe_second_moment.png"):
    assert (out / name).stat().st_size > 1000, name


def test_plot_draws_every_varying_axis(group):
  """init, learning_rate and weight_variance vary: none is pooled, only seeds are."""
  pytest.importorskip("matplotlib")
  _, out = group
  from jaxinit.sweep import plot
  rows, _, config = sweep.read_results(out)
  with pytest.raises(ValueError, match="init vary: .* never pool"):
    plot.grid_values(rows, config, "final_test_loss", "weight_variance", "learning_rate")
  values, diverged = plot.grid_values(rows, config, "final_test_loss", "weight_variance",
                                      "learning_rate", {"init": "he_normal"})
  assert values.shape == (4, 4) and diverged[-1].all() and not diverged[:-1].any()
  # One heatmap panel per init (the facet), one curve panel per (init, learning rate).
  assert plot.facets(config, "weight_variance", "learning_rate") == [
      {"init": v} for v in ("he_normal", "orthogonal", "normal(stddev=0.1)", "glorot_uniform")]
  # A slice (one init: no facet left) draws every figure; too many panels are refused.
  written = plot.plot_results(out, x="weight_variance", y="learning_rate",
                              where={"init": "orthogonal"})
  assert [p.name for p in written] == ["heatmap_final_test_loss.png", "curves_loss.png",
                                       "probe_second_moment.png"]
  with pytest.raises(ValueError, match="panels would be needed"):
    plot.plot_results(out, x="depth", y="width")


def test_seeds_differ(group):
  result, _ = group
  cell = dict(init="he_normal", learning_rate=0.01, weight_variance=1.0)
  a, b = (result.curves["step_loss"][_find(result, seed=s, **cell)] for s in (0, 1))
  assert not np.allclose(a, b)


def test_models_spread_over_devices_train_the_same(group, tmp_path):
  """The CLI's default: models sharded over one CPU device per core (here 2)."""
  data = _tiny()
  data["seeds"] = [2, 3]  # two models, one per device; both also in the group
  config = tmp_path / "two.toml"
  config.write_text(sweep.to_toml(sweep.parse_config(data)))
  out = tmp_path / "two_devices"
  code = ("import sys; from jaxinit import cli; "
          f"sys.exit(cli.main(['sweep', {str(config)!r}, '--out', {str(out)!r}, "
          "'--no-progress', '--cpu-devices', '2']))")
  # A fresh process: the device count is fixed once jax has computed anything.
  env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
  subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)
  rows, _, _ = sweep.read_results(out)
  run = json.loads((out / "run.json").read_text())
  assert run["devices"] == 2 and len(rows) == 2
  result, _ = group
  ids = [m.model_id for m in result.models]
  for row in rows:
    expected = result.rows[ids.index(row["model_id"])]
    assert row["final_test_loss"] == expected["final_test_loss"]
    assert row["final_fingerprint"] == expected["final_fingerprint"]


@pytest.mark.slow
@pytest.mark.parametrize("grid", [
    {"model": ["mlp", {"name": "resmlp", "branch_scale": 0.5}, {"name": "cnn1d", "kernel_size": 3}],
     "optimizer": "adam"},
    {"optimizer": ["lars", "lamb", {"name": "momentum", "momentum": 0.5}, "nesterov", "lion"]},
    {"dataset": ["digits", "mnist1d"], "activation": ["relu", "gelu"]},
])
def test_every_kind_of_axis_trains(grid):
  """Models, optimizers (layer-wise ones included) and datasets: all run, all learn."""
  pytest.importorskip("sklearn")
  pytest.importorskip("mnist1d")
  data = _tiny()
  data["probes"] = ["second_moment", "mean", "variance", "dead_fraction", "grad_norm"]
  data["grid"].update(init="he_normal", learning_rate=0.01, steps=40, batch_size=16, **grid)
  result = sweep.run_sweep(data, progress=False)
  for row, losses in zip(result.rows, result.curves["test_loss"]):
    assert not row["diverged"], row
    assert losses[-1] < losses[0], (row, losses)
    for probe in data["probes"]:
      assert math.isfinite(row[f"initial_{probe}_last_layer"]), (probe, row)
