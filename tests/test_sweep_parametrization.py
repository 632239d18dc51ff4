"""The ``parametrization`` axis (jaxinit.sweep.inits): SP and muP models in one vmapped program.

sweep_tiny.toml's teacher-student MLP at width 32 against a base of width
16, SP and muP side by side, one Adam step: a muP model's initial params are
``jaxinit.initialize`` with the Scaling's rules and its first update is
``jaxinit.parametrizations.optimizer("adam", ...)``'s on that model alone;
SP rows are bit for bit those of a sweep without the axis (SP models run the
very program of a sweep without the axis; every other parametrization of a
shape shares one program whose optimizer takes per-model factors).
"""

import re
import tomllib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from sweep_cases import TEACHER, pure_pair

import jaxinit
from jaxinit import parametrizations as P
from jaxinit import sweep
from jaxinit.sweep import inits, keys as keys_lib
from jaxinit.rules.targets import path_of
from jaxinit.sweep.step import batch_indices

TINY = Path(__file__).parent / "sweep_tiny.toml"


def _config(parametrization=("sp", "mup"), **grid) -> dict:
  with open(TINY, "rb") as f:
    data = tomllib.load(f)
  data.update(seeds=1, lanes=1, eval_every=1, probes=[])
  data["grid"].update({"width": 32, "steps": 1, "init": "he_normal", "optimizer": "adam",
                       "learning_rate": 0.01, "parametrization": list(parametrization), **grid})
  if list(parametrization) != ["sp"]:
    data["base"] = {"width": 16}
  return data


@pytest.fixture(scope="module")
def swept():
  return sweep.run_sweep(_config(), progress=False, keep_params=True)


def test_sp_and_mup_models_train_in_one_run(swept):
  # Two programs: SP runs a sweep's plain one, muP (and any other parametrization of
  # these shapes) one whose optimizer takes per-model factors.
  assert len(swept.models) == 2 and len(swept.groups) == 2
  assert [m["parametrization"] for m in swept.models] == ["sp", "mup"]
  # The parametrization is part of a model's identity (and of its init key).
  assert swept.models[0].model_id != swept.models[1].model_id
  assert swept.rows[0]["init_fingerprint"] != swept.rows[1]["init_fingerprint"]


@pytest.mark.slow  # ~9 s: jaxinit.initialize, the model's gradient and Adam compile anew
def test_a_mup_models_init_and_first_update_are_the_parametrizations_alone(swept):
  model, result = swept.models[1], swept
  initial, final = result.initial_params[1], result.final_params[1]
  mlp = jaxinit.models.MLP(16, 1, 32, 2, activation="tanh", rngs=0)
  base = jaxinit.models.MLP(16, 1, 16, 2, activation="tanh", rngs=0)
  scaling = P.mup().scale(mlp, base=base, rules=inits.rules_of(
      {**model.cell, "parametrization": "sp"}))
  # Init: jaxinit.initialize with the Scaling's rules and the model's init key.
  layout = keys_lib.param_layout(jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), initial))
  (key,) = keys_lib.derive_keys(0, keys_lib.INIT_TAG,
                                [inits.identity(layout, model.cell, model.seed)])
  drawn = jaxinit.initialize(mlp, scaling.rules, jax.random.wrap_key_data(key))
  for a, b in zip(jax.tree.leaves(jaxinit.models.params_of(drawn)), jax.tree.leaves(initial)):
    # Within 2 ulp of the tensor's largest entry, not bit for bit: XLA fuses the sweep's
    # flat update (p + lr * factor * adam) differently (measured: <= 2 ulp of the entry).
    np.testing.assert_allclose(a, b, rtol=0, atol=2 * np.finfo(np.float32).eps * np.abs(a).max())
  # The first step: the model's first minibatch, its loss, optax's update.
  dataset = sweep.load_dataset(model["dataset"])
  (data_key,) = keys_lib.derive_keys(0, keys_lib.DATA_TAG, [keys_lib.data_identity(
      model["dataset"], model["batch_size"], model.seed)])
  rows = batch_indices(model["batch_size"], len(dataset.x_train), data_key, jnp.arange(1))[0]
  x, y = jnp.asarray(dataset.x_train)[rows], jnp.asarray(dataset.y_train)[rows]
  graphdef, _, rest = nnx.split(drawn, nnx.Param, ...)
  params = jax.tree.map(jnp.asarray, initial)

  def loss(p):
    out = nnx.merge(graphdef, p, rest)(x)
    return jnp.mean(jnp.square(out - y.reshape(out.shape)))

  grads = jax.grad(loss)(params)
  trees = {f: jax.tree_util.tree_map_with_path(
      lambda kp, _, f=f: getattr(scaling[path_of(kp)].factors, f), params)
      for f in ("lr_adam", "eps", "weight_decay")}
  tx = P.optimizer("adam", 0.01, trees)
  updates, _ = tx.update(grads, tx.init(params), params)
  expected = optax.apply_updates(params, updates)
  assert scaling["hidden/kernel"].factors.lr_adam == 0.5  # width 32 over base 16
  for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(final)):
    # Within 2 ulp of the tensor's largest entry, not bit for bit: XLA fuses the sweep's
    # flat update (p + lr * factor * adam) differently (measured: <= 2 ulp of the entry).
    np.testing.assert_allclose(a, b, rtol=0, atol=2 * np.finfo(np.float32).eps * np.abs(a).max())


def test_sp_rows_are_those_of_a_sweep_without_the_axis(swept):
  alone = sweep.run_sweep(_config(["sp"]), progress=False)
  assert alone.models[0].model_id == swept.models[0].model_id
  for name in ("init_fingerprint", "final_fingerprint", "final_test_loss"):
    assert alone.rows[0][name] == swept.rows[0][name]


def test_parametrization_values_and_base_are_checked():
  with pytest.raises(sweep.ConfigError, match=r"did you mean 'mup'"):
    sweep.parse_config(_config(["sp", "mpu"]))
  data = _config()
  del data["base"]
  with pytest.raises(sweep.ConfigError, match=r"set base = \{width"):
    sweep.parse_config(data)
  with pytest.raises(sweep.ConfigError, match=r"base has no key 'widht' \(did you mean 'width'"):
    sweep.parse_config({**_config(), "base": {"widht": 16}})
  with pytest.raises(sweep.ConfigError, match=r"optimizer = 'lamb' with parametrization"):
    sweep.parse_config(_config(optimizer="lamb"))
  config = sweep.parse_config(_config())
  assert sweep.parse_config(tomllib.loads(sweep.to_toml(config))) == config
  assert config.base == {"width": 16}


def test_a_base_value_the_model_does_not_take_is_refused_before_anything_runs(tmp_path):
  with pytest.raises(sweep.ConfigError, match=r"base.width: model .* takes no keyword argument"):
    sweep.run_sweep({"base": {"width": 8}, "grid": {
        "model": pure_pair, "parametrization": "mup", "steps": 100, "dataset": TEACHER,
        "batch_size": 16}},
        out_dir=tmp_path, progress=False)
  assert not any(tmp_path.iterdir())


def test_a_depth_parametrization_deeper_than_its_base_is_refused_before_anything_runs(tmp_path):
  """Depth-muP multiplies residual branches in the forward pass, which the sweep's models do
  not take: its factors alone would train another model, silently."""
  config = _config(("depth_mup",), model="resmlp", depth=4)
  config["base"] = {"width": 32, "depth": 2}
  with pytest.raises(sweep.ConfigError, match=r"depth_mup.*scales residual branches"):
    sweep.run_sweep(config, out_dir=tmp_path, progress=False)
  assert not any(tmp_path.iterdir())


def test_the_readmes_parametrization_grid_is_a_valid_config():
  text = (Path(__file__).parents[1] / "README.md").read_text()
  section = text.split("## Parametrizations: muP, NTK, depth-muP", 1)[1].split("\n## ", 1)[0]
  (block,) = re.findall(r"```toml\n(.*?)```", section, re.S)
  config = sweep.parse_config(tomllib.loads(block.replace("\n  ", "\n")))
  assert config.base == {"width": 64} and config.grid["parametrization"] == ("sp", "mup")


@pytest.mark.slow  # 3 widths x 2 parametrizations: 6 programs
def test_a_width_by_learning_rate_grid_compares_sp_and_mup_in_one_run():
  data = _config(width=[16, 32, 64], learning_rate=[0.003, 0.03], steps=20)
  data.update(eval_every=10, seeds=2, lanes="auto")
  result = sweep.run_sweep(data, progress=False)
  assert len(result.models) == 24 and len(result.groups) == 6
  assert all(np.isfinite(r["final_test_loss"]) for r in result.rows)
  assert {r["width"] for r in result.rows if r["parametrization"] == "mup"} == {16, 32, 64}
