"""Sweeps of models with state that is not a parameter (BatchNorm's batch statistics) and
with randomness (Dropout): the state is carried per model, updated in train mode, used in
eval mode; dropout masks come from each model's own key, per step. The same sweeps probe
these user models through jaxinit.capture."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from flax import nnx

from jaxinit import sweep
from jaxinit.sweep import kinds, step as step_lib


def _data(n_train=128, n_test=64, features=6, classes=3):
  rng = np.random.default_rng(0)
  teacher = rng.normal(size=(features, classes))
  x = rng.normal(size=(n_train + n_test, features)).astype(np.float32) * 2.0 + 0.5
  y = (x @ teacher).argmax(-1)
  return {"x_train": x[:n_train], "y_train": y[:n_train], "x_test": x[n_train:],
          "y_test": y[n_train:]}


DATA = _data()


class NormDropMLP(nnx.Module):
  """Linear -> BatchNorm -> relu -> Dropout -> Linear."""

  def __init__(self, in_features, out_features, width=8, *, rngs):
    self.hidden = nnx.Linear(in_features, width, rngs=rngs)
    self.norm = nnx.BatchNorm(width, rngs=rngs)
    self.drop = nnx.Dropout(0.25, rngs=rngs)
    self.head = nnx.Linear(width, out_features, rngs=rngs)

  def __call__(self, x):
    return self.head(self.drop(jax.nn.relu(self.norm(self.hidden(x)))))


class LinenNormMLP(nn.Module):
  """linen: Dense -> BatchNorm (``train`` keyword) -> relu -> Dense."""
  out_features: int
  width: int = 8

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.Dense(self.width)(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
    return nn.Dense(self.out_features)(jax.nn.relu(x))


KWARGS = {"nnx": {"in_features": 6, "out_features": 3, "width": 64},
          "linen": {"out_features": 3, "width": 64}}
PROBES = ["second_moment", "dead_fraction", "grad_norm"]


def _config(model):
  return {"seeds": 2, "eval_every": 20, "probes": PROBES,
          "grid": {"model": model, "dataset": DATA, "init": "he_normal", "optimizer": "adam",
                   "learning_rate": [0.01, 0.03], "batch_size": 32, "steps": 40}}


# The linen sweep runs with the slow tests (its parts are checked below by default).
@pytest.fixture(scope="module", params=["nnx", pytest.param("linen", marks=pytest.mark.slow)])
def swept(request, tmp_path_factory):
  model = NormDropMLP if request.param == "nnx" else LinenNormMLP
  out = tmp_path_factory.mktemp(f"stateful_{request.param}")
  config = _config(model)
  return request.param, sweep.run_sweep(config, out_dir=out, progress=False,
                                        keep_params=True), out, config


def test_models_with_batch_norm_and_dropout_learn(swept):
  _, result, _, _ = swept
  assert len(result.rows) == 4
  losses = np.asarray(result.curves["test_loss"])
  assert np.isfinite(losses).all() and not any(r["diverged"] for r in result.rows)
  assert (losses[:, -1] < losses[:, 0]).all(), losses
  # Each seed its own draw.
  assert len({r["init_fingerprint"] for r in result.rows}) == 2


def test_resume_and_a_rerun_are_bit_identical(swept):
  _, result, out, config = swept
  again = sweep.run_sweep(config, out_dir=out, progress=False, resume=True)
  assert again.resumed_models == len(result.rows)
  fresh = sweep.run_sweep(config, progress=False)
  for rows in (again.rows, fresh.rows):
    assert [r["final_fingerprint"] for r in rows] == [
        r["final_fingerprint"] for r in result.rows]
    assert [r["final_test_loss"] for r in rows] == [r["final_test_loss"] for r in result.rows]


@pytest.mark.parametrize("kind", ["nnx", "linen"])
def test_batch_statistics_are_carried_per_model_and_used_in_eval_mode(kind):
  model = NormDropMLP if kind == "nnx" else LinenNormMLP
  kwargs = {"in_features": 6, "out_features": 3} if kind == "nnx" else {"out_features": 3}
  built = kinds.build(model, kwargs, DATA["x_train"][:4])
  leaves = jax.tree.leaves(built.state)
  assert len(leaves) == 2, built.state  # running mean and variance
  x = jnp.asarray(DATA["x_train"][:32])
  key = step_lib.noise_key(jax.random.key_data(jax.random.key(0)), 0)
  params = jax.tree.map(jnp.asarray, built.params)
  _, state = built.run(params, built.state, x, key, train=True)
  mean = jax.tree.leaves(state)[0]
  assert not np.allclose(mean, jax.tree.leaves(built.state)[0])  # updated in train mode
  # Eval mode normalizes with the running statistics it is given, not the batch's.
  a, kept = built.run(params, state, x)
  b, _ = built.run(params, built.state, x)
  assert not np.allclose(a, b) and jax.tree.all(jax.tree.map(np.array_equal, kept, state))


def test_dropout_masks_depend_on_the_step_key_only():
  built = kinds.build(NormDropMLP, {"in_features": 6, "out_features": 3},
                      DATA["x_train"][:4])
  params = jax.tree.map(jnp.asarray, built.params)
  x = jnp.asarray(DATA["x_train"][:8])
  raw = jax.random.key_data(jax.random.key(3))
  run = jax.jit(lambda k: built.run(params, built.state, x, k, train=True)[0])
  a, b = run(step_lib.noise_key(raw, 0)), run(step_lib.noise_key(raw, 1))
  assert np.array_equal(a, run(step_lib.noise_key(raw, 0))) and not np.allclose(a, b)
  # Eval mode: no dropout, deterministic.
  assert np.array_equal(built.run(params, built.state, x)[0],
                        built.run(params, built.state, x)[0])


def test_user_models_are_probed_through_capture(swept):
  """Each probe per captured dense layer (hidden, readout): finite, and the forward probes
  equal jaxinit.capture's outputs of the model in eval mode."""
  kind, result, _, _ = swept
  for name in PROBES:
    values = np.asarray(result.curves[f"probe_{name}"])
    assert values.shape == (4, 3, 2) and np.isfinite(values).all(), (name, values.shape)
  assert (np.asarray(result.curves["probe_grad_norm"]) > 0).all()
  from jaxinit import capture, probes  # pylint: disable=import-outside-toplevel
  model = NormDropMLP if kind == "nnx" else LinenNormMLP
  kwargs = KWARGS[kind]  # as the sweep builds it (the grid's default width 64)
  built = kinds.build(model, kwargs, DATA["x_train"][:4])
  params = result.initial_params[0]
  x = jnp.asarray(DATA["x_train"][:128])
  if kind == "nnx":
    module = model(**kwargs, rngs=nnx.Rngs(0))
    state = nnx.state(module, nnx.Param)
    nnx.replace_by_pure_dict(state, jax.tree.map(jnp.asarray, params))
    nnx.update(module, state)
    module.eval()
    _, captured = capture.capture(module, x)
  else:
    _, captured = capture.capture(model(**kwargs), x, variables={"params": params,
                                                                  **built.state})
  layers = [k for k in captured if "norm" not in k.lower() and "drop" not in k.lower()]
  expected = [probes.layer_moments(captured[k][None])["second_moment"][0] for k in layers]
  np.testing.assert_allclose(result.curves["probe_second_moment"][0, 0], expected, rtol=1e-5)


@pytest.mark.slow
def test_two_devices_train_the_same(swept):
  """Batch statistics and dropout keys are per model: sharding models over 2 devices
  changes no bit."""
  import json  # pylint: disable=import-outside-toplevel
  import os  # pylint: disable=import-outside-toplevel
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  from pathlib import Path  # pylint: disable=import-outside-toplevel
  kind, result, _, _ = swept
  here = Path(__file__).parent
  code = ("import jax, json; jax.config.update('jax_num_cpu_devices', 2); "
          "from jaxinit import sweep; import test_sweep_stateful as t; "
          f"m = t.NormDropMLP if {kind!r} == 'nnx' else t.LinenNormMLP; "
          "c = t._config(m); c['lanes'] = 1; "  # 4 models: 2 calls of one per device
          "r = sweep.run_sweep(c, progress=False); "
          "print(json.dumps([jax.device_count()] + [x['final_fingerprint'] for x in r.rows]))")
  env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here.parent), str(here)])}
  out = subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True,
                       text=True).stdout
  devices, *prints = json.loads(out.strip().splitlines()[-1])
  one = sweep.run_sweep({**_config(NormDropMLP if kind == "nnx" else LinenNormMLP),
                         "lanes": 1}, progress=False)
  assert devices == 2 and prints == [r["final_fingerprint"] for r in one.rows]


def _equinox_norm_drop_mlp(*, in_features, out_features, key):
  """Equinox: Linear -> BatchNorm -> relu -> Dropout -> Linear, made with its state."""
  import equinox as eqx  # pylint: disable=import-outside-toplevel

  class NormDropMLP(eqx.Module):  # pylint: disable=redefined-outer-name
    hidden: eqx.nn.Linear
    norm: eqx.nn.BatchNorm
    drop: eqx.nn.Dropout
    head: eqx.nn.Linear

    def __init__(self, key):
      k1, k2 = jax.random.split(key)
      self.hidden = eqx.nn.Linear(in_features, 16, key=k1)
      self.norm = eqx.nn.BatchNorm(16, axis_name="examples", momentum=0.9)
      self.drop = eqx.nn.Dropout(0.25)
      self.head = eqx.nn.Linear(16, out_features, key=k2)

    def __call__(self, x, state, *, key=None):
      h, state = self.norm(self.hidden(x), state)
      return self.head(self.drop(jax.nn.relu(h), key=key)), state

  return eqx.nn.make_with_state(NormDropMLP)(key)


def test_equinox_state_and_dropout_train_and_evaluate_in_inference_mode():
  pytest.importorskip("equinox")
  built = kinds.build(_equinox_norm_drop_mlp, {"in_features": 6, "out_features": 3},
                      DATA["x_train"][:4])
  params = jax.tree.map(jnp.asarray, built.params)
  x = jnp.asarray(DATA["x_train"][:8])
  raw = jax.random.key_data(jax.random.key(0))
  train = jax.jit(lambda t: built.run(params, built.state, x, step_lib.noise_key(raw, t), True))
  evaluate = jax.jit(lambda s: built.run(params, s, x)[0])
  (a, state), (b, _) = train(0), train(1)
  assert not np.allclose(a, b) and np.array_equal(a, train(0)[0])  # dropout, per key
  before, after = jax.tree.leaves(built.state), jax.tree.leaves(state)
  assert any(not np.allclose(u, v) for u, v in zip(before, after))  # statistics updated
  assert not np.allclose(evaluate(state), evaluate(built.state))  # eval uses them
  np.testing.assert_array_equal(evaluate(state), evaluate(state))  # no dropout in eval


@pytest.mark.slow
def test_an_equinox_model_with_state_and_dropout_sweeps_reproducibly():
  pytest.importorskip("equinox")
  config = {**_config(_equinox_norm_drop_mlp), "seeds": 1, "probes": []}
  first = sweep.run_sweep(config, progress=False)
  losses = np.asarray(first.curves["test_loss"])
  assert np.isfinite(losses).all() and (losses[:, -1] < losses[:, 0]).all(), losses
  again = sweep.run_sweep(config, progress=False)
  assert [r["final_fingerprint"] for r in again.rows] == [
      r["final_fingerprint"] for r in first.rows]


def test_a_linen_model_is_probed_through_capture_in_eval_mode():
  from jaxinit import capture, probes  # pylint: disable=import-outside-toplevel
  from jaxinit.sweep import probes as sweep_probes  # pylint: disable=import-outside-toplevel
  built = kinds.build(LinenNormMLP, {"out_features": 3}, DATA["x_train"][:4])
  params = jax.tree.map(jnp.asarray, built.params)
  x, y = jnp.asarray(DATA["x_train"][:16]), jnp.asarray(DATA["y_train"][:16])
  net = sweep_probes.probed_network(built, PROBES, built.state)
  assert isinstance(net, sweep_probes.CapturedNetwork)
  loss = lambda out: jnp.mean((out - jax.nn.one_hot(y, 3)) ** 2)  # noqa: E731
  got = jax.jit(lambda p: sweep_probes.measure(PROBES, net, p, x, loss))(params)
  assert all(got[n].shape == (2,) and np.isfinite(got[n]).all() for n in PROBES), got
  _, captured = capture.capture(LinenNormMLP(3), x, variables={"params": params,
                                                               **built.state})
  dense = [k for k in captured if k.startswith("Dense")]
  np.testing.assert_allclose(got["second_moment"], [
      probes.layer_moments(captured[k][None])["second_moment"][0] for k in dense], rtol=1e-5)
