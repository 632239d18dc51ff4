"""The studies' training helper (train_population) and population init (transformer_depth)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxinit
from jaxinit.models import MLP, functional
from jaxinit_experiments import deep_plain_nets, transformer_depth
from jaxinit_experiments.study import train_population

RNG = np.random.default_rng(0)
CENTRES = RNG.normal(size=(3, 5)).astype(np.float32) * 3
LABELS = RNG.integers(0, 3, 300)
X = (CENTRES[LABELS] + RNG.normal(size=(300, 5))).astype(np.float32)
NET = functional(MLP.abstract(5, 3, 16, 2))[0]


def _train(learning_rate, optimizer=optax.sgd, steps=40):
  params = jax.vmap(NET.init)(jax.random.split(jax.random.key(0), len(learning_rate)))
  return params, train_population(
      NET.apply, params, (X[:200], LABELS[:200]),
      evaluate={"train": (X[:200], LABELS[:200]), "test": (X[200:], LABELS[200:])},
      optimizer=optimizer, learning_rate=np.asarray(learning_rate, np.float32), steps=steps,
      batch_size=32, eval_every=20)


def test_members_learn_with_their_own_rates_and_a_diverged_one_is_a_result():
  params, result = _train([0.0, 0.05, 1e30])
  assert result.eval_step.tolist() == [0, 20, 40]
  assert result.step_loss.shape == (3, 40) and result.accuracy["test"].shape == (3, 3)
  # Rate 0: nothing moves.
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(a[0], b[0]), result.params, params)
  np.testing.assert_allclose(result.loss["train"][0], result.loss["train"][0, 0], rtol=1e-6)
  # A sensible rate learns the blobs.
  assert result.accuracy["test"][1, -1] > 0.9 and result.diverged_step[1] == -1
  # A huge rate diverges: marked at its first non-finite step, NaN losses afterwards, and its
  # params stay finite (the last finite ones).
  first = int(result.diverged_step[2])
  assert 0 <= first < 40 and np.isnan(result.step_loss[2, first:]).all()
  assert np.isfinite(result.step_loss[2, :first]).all()
  assert all(bool(jnp.isfinite(v[2]).all()) for v in jax.tree.leaves(result.params))
  assert result.diverged_step[:2].tolist() == [-1, -1]


def test_steps_must_be_a_multiple_of_eval_every():
  with pytest.raises(ValueError, match=r"steps \(30\) must be a positive multiple of "
                                       r"eval_every \(20\)"):
    _train([0.1], steps=30)
  with pytest.raises(ValueError, match="steps must be a positive int"):
    _train([0.1], steps=0)


def test_population_draws_what_initialize_draws():
  s = transformer_depth._settings("tiny")
  model, rules = transformer_depth._variant("tfixup", 2, s)
  graphdef, params = transformer_depth.population(model, rules, np.array([3, 5]))
  alone = nnx.state(jaxinit.initialize(model, rules, 5), nnx.Param)
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(a[1], b), params, alone)
  tokens = jnp.zeros((2, s["length"]), jnp.int32)
  assert nnx.merge(graphdef, jax.tree.map(lambda v: v[0], params))(tokens).shape == (
      2, s["length"], s["vocab"])


def test_reverse_task_targets_are_the_reversed_inputs():
  x, y = transformer_depth.reverse_task(7, 5, 10, seed=0)
  assert x.dtype == np.int32 and x.shape == (10, 5) and x.max() < 7
  np.testing.assert_array_equal(y, x[:, ::-1])


def test_plain_net_inits_keep_the_signal_length_cnns_included():
  """Orthogonal weights with fan_in scaling keep x.x/n through every layer (1-D CNNs too)."""
  x = deep_plain_nets._normalized(RNG.normal(size=(64, 40)))
  np.testing.assert_allclose(np.mean(x * x, axis=1), 1.0, rtol=1e-5)
  for family in ("mlp", "cnn"):
    arm = deep_plain_nets._arm("eoc_relu", family, 16, 64, 40, 10)
    params = arm.net.init(jax.random.key(0))
    logits, inter = arm.apply(params, jnp.asarray(x), capture=True)
    assert logits.shape == (64, 10)
    q = np.mean(np.asarray(inter["preactivations"]) ** 2, axis=tuple(range(1, 3 + (
        family == "cnn"))))
    # h^1 = W x: exactly sw q0 = 2 (a scaled isometry, also for 40 -> 64 and 1 -> 64 channels);
    # EOC ReLU then keeps it, up to finite-width fluctuations.
    np.testing.assert_allclose(q[0], arm.weight_variance, rtol=1e-4)
    assert np.all((q > 0.5 * arm.weight_variance) & (q < 2 * arm.weight_variance)), q
