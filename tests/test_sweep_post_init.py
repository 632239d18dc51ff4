"""Post-inits in sweeps: ``init = {lsuv = ...}`` and ``{metainit = ...}`` (jaxinit.sweep.inits).

One tiny sweep (sweep_tiny.toml's teacher-student MLP, 2 lanes, chunks of 4
models) with a plain and an LSUV init, written to disk once and shared: a
model's initial params are ``jaxinit.lsuv`` of that model alone on its
batch, bit for bit, and a resumed folder equals a fresh one. MetaInit the
same (slow: its program compiles in ~5 s).
"""

import re
import shutil
import tomllib
import warnings
from pathlib import Path

import jax
import numpy as np
import pytest

from sweep_cases import TEACHER, pure_pair

import jaxinit
from jaxinit import sweep
from jaxinit.sweep import inits, keys as keys_lib, post_inits

TINY = Path(__file__).parent / "sweep_tiny.toml"
LSUV = {"lsuv": "glorot_uniform", "batch_size": 32}
METAINIT = {"metainit": "he_normal", "steps": 3, "batch_size": 16}


def _config(*inits_) -> dict:
  with open(TINY, "rb") as f:
    data = tomllib.load(f)
  data.update(seeds=2, lanes=2, chunk_size=4)
  data["grid"].update(init=["he_normal", *(inits_ or [LSUV])], learning_rate=[0.05, 0.1])
  return data


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
  out = tmp_path_factory.mktemp("post_init")
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # MetaInit's 3 steps need not lower the quotient
    result = sweep.run_sweep(_config(), out_dir=out, progress=False, keep_params=True)
  return result, out


def _alone(result, index):
  """The model built by jaxinit.models with the cell's rules and init key, its post-init
  batch, and the dataset."""
  model = result.models[index]
  layout = keys_lib.param_layout(jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), result.initial_params[index]))
  (key,) = keys_lib.derive_keys(result.config.root_seed, keys_lib.INIT_TAG,
                                [inits.identity(layout, model.cell, model.seed)])
  mlp = jaxinit.models.MLP(16, 1, 16, 2, activation="tanh", rules=inits.rules_of(model.cell),
                           rngs=jax.random.wrap_key_data(key))
  dataset = sweep.load_dataset(model["dataset"])
  post = post_inits.post_init_of(model["init"])
  rows = jax.random.randint(jax.random.fold_in(jax.random.wrap_key_data(key),
                                               post_inits.POST_INIT_TAG),
                            (post.batch_size,), 0, len(dataset.x_train))
  return mlp, dataset.x_train[rows], dataset.y_train[rows]


def _find(result, init):
  return [i for i, m in enumerate(result.models)
          if inits.canonical_init(m["init"]) == inits.canonical_init(init)]


def test_post_inits_are_init_values_of_one_shape_group(swept):
  result, _ = swept
  assert len(result.models) == 8 and len(result.groups) == 1  # one training program
  labels = sorted({sweep.label(m["init"]) for m in result.models})
  assert labels == ["he_normal", "lsuv(init=glorot_uniform,batch_size=32)"]
  # Cells that differ only in learning rate share their post-init params.
  lsuv = _find(result, LSUV)
  by_seed = {}
  for i in lsuv:
    by_seed.setdefault(result.models[i].seed, []).append(i)
  for a, b in by_seed.values():
    for x, y in zip(jax.tree.leaves(result.initial_params[a]),
                    jax.tree.leaves(result.initial_params[b])):
      np.testing.assert_array_equal(x, y)


def test_lsuv_init_is_jaxinit_lsuv_of_the_model_alone_bit_for_bit(swept):
  result, _ = swept
  for i in _find(result, LSUV)[:2]:
    mlp, x, _ = _alone(result, i)
    before = jaxinit.models.params_of(mlp)
    mlp, report = jaxinit.lsuv(mlp, x)
    assert bool(report.converged.all())
    expected = jaxinit.models.params_of(mlp)
    assert int(report.iterations.sum()) > 0 and not all(
        np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(expected)))
    for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(result.initial_params[i])):
      np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_metainit_init_is_jaxinit_metainit_of_the_model_alone():
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # MetaInit's 3 steps need not lower the quotient
    result = sweep.run_sweep(_config(METAINIT), progress=False, keep_params=True)
  loss = sweep.losses.resolve(sweep.losses.DEFAULT_LOSS["regression"])
  for i in _find(result, METAINIT):
    mlp, x, y = _alone(result, i)
    mlp, _ = jaxinit.metainit(mlp, x, y, loss_fn=loss, steps=3)
    for a, b in zip(jax.tree.leaves(jaxinit.models.params_of(mlp)),
                    jax.tree.leaves(result.initial_params[i])):
      np.testing.assert_array_equal(a, b)


def test_a_resumed_post_init_sweep_equals_the_fresh_one(swept, tmp_path):
  result, out = swept
  folder = tmp_path / "run"
  shutil.copytree(out, folder)
  chunks = sorted((folder / "chunks").glob("*.npz"))
  assert len(chunks) == 2
  chunks[1].unlink()
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    resumed = sweep.run_sweep(_config(), out_dir=folder, progress=False, resume=True)
  assert resumed.resumed_models == 4
  assert [r["init_fingerprint"] for r in resumed.rows] == [
      r["init_fingerprint"] for r in result.rows]
  with open(folder / "results.csv") as a, open(out / "results.csv") as b:
    assert a.read() == b.read()


def test_post_init_values_are_checked_and_round_trip_through_toml():
  with pytest.raises(sweep.ConfigError, match=r"and 'lsuv', the same value"):
    sweep.parse_config({"grid": {"dataset": "teacher_student", "init": [
        "lsuv", {"lsuv": "orthogonal", "tol": 0.1}]}})
  with pytest.raises(sweep.ConfigError, match=r"did you mean 'max_iters'"):
    sweep.parse_config({"grid": {"init": {"lsuv": "orthogonal", "max_iter": 3}}})
  with pytest.raises(sweep.ConfigError, match=r"\[grid\] init: metainit option 'steps'"):
    sweep.parse_config({"grid": {"init": {"metainit": "he_normal", "steps": 0}}})
  with pytest.raises(sweep.ConfigError, match=r"itself a post-init"):
    sweep.parse_config({"grid": {"init": {"lsuv": {"metainit": "he_normal"}}}})
  with pytest.raises(sweep.ConfigError, match=r"lsuv's init"):
    sweep.parse_config({"grid": {"init": {"lsuv": "he_nromal"}}})
  config = sweep.parse_config(_config())
  assert sweep.parse_config(tomllib.loads(sweep.to_toml(config))) == config


def test_a_post_init_of_a_pure_model_is_refused_before_anything_runs(tmp_path):
  with pytest.raises(sweep.ConfigError, match=r"init = lsuv.*pure \(init, apply\) pair"):
    sweep.run_sweep({"grid": {"model": pure_pair, "init": "lsuv", "steps": 100,
                              "dataset": TEACHER, "batch_size": 16}},
                    out_dir=tmp_path, progress=False)
  assert not any(tmp_path.iterdir())


def test_the_readmes_post_init_grid_is_a_valid_config():
  text = (Path(__file__).parents[1] / "README.md").read_text()
  section = text.split("## Data-dependent initialization", 1)[1].split("\n## ", 1)[0]
  (block,) = re.findall(r"```toml\n(.*?)```", section, re.S)
  config = sweep.parse_config(tomllib.loads(block))
  assert [sweep.label(v) for v in config.grid["init"]] == [
      "he_normal", "lsuv(init=orthogonal)", "lsuv(init=normal(stddev=0.01),tol=0.05)",
      "metainit(init=he_normal,steps=100)"]
