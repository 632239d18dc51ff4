"""Network kernel maps: closed forms, algebra, and Monte Carlo of wide random networks.

The Monte Carlo part samples any network description of :mod:`jaxinit.theory.network`
with independent Gaussian weights (a sampler written here, block by block) and
compares each step's ``q11``, ``q22`` and correlation, averaged over a few mutually
orthogonal input pairs per network, with :func:`jaxinit.theory.propagate`:
``z = (mean over seeds - prediction) / SE`` must stay within 5. Signal Propagation
Plot predictions are compared the same way with :func:`jaxinit.probes.signal_propagation`
on :class:`jaxinit.models.ResMLP`. Every comparison is also run against a wrong
prediction, which must fail (power). Keys are fixed: runs are deterministic.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxinit
from jaxinit import probes, theory
from jaxinit.gains import ACTIVATIONS
from jaxinit.theory import (Activation, Concatenate, Dense, Identity, Repeat, Residual, Scale,
                            Sequential, Sum)

Z = 5.0


def z_scores(samples, prediction):
  samples = np.asarray(samples, np.float64)
  se = samples.std(axis=0, ddof=1) / np.sqrt(samples.shape[0])
  return (samples.mean(axis=0) - np.asarray(prediction, np.float64)) / se


# ----------------------------------------------------------------------------
# Deterministic.

def test_plain_mlp_network_matches_predict_layers_and_closed_forms():
  with jax.enable_x64(True):
    k = theory.propagate(theory.mlp(4, 2.0, readout=False), "relu", 1.5, 1.5, 0.0)
    p = theory.predict_layers("relu", 2.0, 0.0, 4, q0=1.5, c0=0.0)
    np.testing.assert_allclose(k.q11, p.q1, rtol=1e-14)
    np.testing.assert_allclose(k.c, p.c, rtol=1e-12)
    # A linear network: q' = sw q + sb per Dense.
    net = Sequential(Dense(0.5, 0.1), Repeat(Sequential(Activation(), Dense(0.5, 0.1)), 2))
    k = theory.propagate(net, "linear", 2.0, 1.0, 0.5)
    np.testing.assert_allclose(k.q11, [2.0, 1.1, 0.65, 0.425], rtol=1e-14)
    np.testing.assert_allclose(k.q12, [0.5, 0.35, 0.275, 0.2375], rtol=1e-14)


def test_sums_and_concatenations_average_kernels():
  with jax.enable_x64(True):
    relu_layer = Sequential(Activation(), Dense(2.0))
    c = 0.3
    one = float(theory.network_c_map(relu_layer, "relu", c))
    # A normalized residual block around a q-preserving layer: ws^2 c + (1 - ws^2) C(c).
    block = Residual(relu_layer, shortcut_weight=0.6)
    assert float(theory.network_c_map(block, "relu", c)) == pytest.approx(
        0.36 * c + 0.64 * one, rel=1e-13)
    cat = Concatenate(relu_layer, Identity(), sizes=(1, 3))
    assert float(theory.network_c_map(cat, "relu", c)) == pytest.approx(
        0.25 * one + 0.75 * c, rel=1e-13)
    # ResMLP with He-initialized ReLU branches: q grows by (1 + alpha^2) per block.
    k = theory.propagate(theory.res_mlp(5, 0.4), "relu", 0.5, 0.5, 0.0)
    np.testing.assert_allclose(k.q11[1:], 1.16 ** np.arange(6), rtol=1e-13)
    # Q-map alone agrees with the kernel map's diagonal.
    assert float(theory.network_q_map(theory.res_mlp(5, 0.4), "relu", 0.5)) == pytest.approx(
        float(k.q11[-1]), rel=1e-13)
    # Brock et al.'s NF rule: 1 + l alpha^2, exactly for ReLU.
    k = theory.propagate(theory.nf_res_mlp(6, 0.3), "relu", 1.0, 1.0, 0.0)
    np.testing.assert_allclose(k.q11, theory.nf_variance(6, 0.3), rtol=1e-13)


def test_network_blocks_refuse_what_the_theory_cannot_describe():
  with pytest.raises(ValueError, match="do not end in a Dense layer"):
    Sum(Identity(), Sequential(Activation()), weights=(1.0, 1.0))
  with pytest.raises(ValueError, match="one entry per branch"):
    Sum(Identity(), Dense(), weights=(1.0,))
  with pytest.raises(ValueError, match="shortcut_weight must be <= 1"):
    Residual(Dense(), shortcut_weight=1.5)
  with pytest.raises(TypeError, match="must be a network block"):
    Sequential(Dense(), "relu")
  with pytest.raises(ValueError, match="weight_variance must be"):
    Dense(-1.0)
  with pytest.raises(ValueError, match="times must be an int >= 0"):
    Repeat(Dense(), -1)
  with pytest.raises(ValueError, match="no activation was given"):
    theory.network_q_map(theory.mlp(2), None, 1.0)


def test_subnetworks_and_composed_maps():
  net = theory.resnet((2, 2), shortcut_weight=0.5)
  subs = theory.subnetworks(net)
  assert subs[0] == net and len(subs) == 3
  # A linear local map composes to an affine network map with slope = c_map_derivatives.
  slope, curve = theory.c_map_derivatives(net, 1.1, 0.0)
  assert curve == 0.0
  value = theory.composed_c_map(net, lambda c: 1 + 1.1 * (c - 1), 0.0)
  assert value == pytest.approx(1 - slope, rel=1e-14)


# ----------------------------------------------------------------------------
# Monte Carlo of wide random networks.

def _forward(block, x, key, phi):
  """One draw of a network description: Gaussian weights N(0, sw / fan_in), biases N(0, sb)."""
  width = x.shape[-1]
  if isinstance(block, Dense):
    kw, kb = jax.random.split(key)
    w = jax.random.normal(kw, (width, width)) * math.sqrt(block.weight_variance / width)
    return x @ w + math.sqrt(block.bias_variance) * jax.random.normal(kb, (width,))
  if isinstance(block, Activation):
    return phi(x)
  if isinstance(block, Identity):
    return x
  if isinstance(block, Scale):
    return block.factor * x
  if isinstance(block, (Sequential, Repeat)):
    blocks = block.blocks if isinstance(block, Sequential) else (block.block,) * block.times
    for i, b in enumerate(blocks):
      x = _forward(b, x, jax.random.fold_in(key, i), phi)
    return x
  if isinstance(block, Sum):
    return sum(w * _forward(b, x, jax.random.fold_in(key, i), phi)
               for i, (b, w) in enumerate(zip(block.branches, block.weights)))
  if isinstance(block, Concatenate):
    edges = np.round(np.cumsum((0,) + block.fractions) * width).astype(int)
    return jnp.concatenate([_forward(b, x, jax.random.fold_in(key, i), phi)[:, lo:hi]
                            for i, (b, lo, hi) in enumerate(zip(block.branches, edges[:-1],
                                                                edges[1:]))], axis=-1)
  raise TypeError(block)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _steps_statistics(steps, activation, x, key):
  """Per step ``(q11, q22, c)`` averaged over the input pairs (rows 2i, 2i + 1)."""
  phi = ACTIVATIONS[activation]
  out = []
  for i, step in enumerate(steps):
    x = _forward(step, x, jax.random.fold_in(key, i), phi)
    h1, h2 = x[0::2], x[1::2]
    q1, q2 = jnp.mean(h1 * h1, -1), jnp.mean(h2 * h2, -1)
    out.append(jnp.stack([q1.mean(), q2.mean(), (jnp.mean(h1 * h2, -1) / jnp.sqrt(q1 * q2)).mean()]))
  return jnp.stack(out)


def orthogonal_pairs(width, num_pairs, q11, q22, c, seed=0):
  basis, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((width, 2 * num_pairs)))
  e1, e2 = basis.T[0::2], basis.T[1::2]
  x1 = np.sqrt(width * q11) * e1
  x2 = np.sqrt(width * q22) * (c * e1 + np.sqrt(1 - c * c) * e2)
  return np.stack([x1, x2], axis=1).reshape(2 * num_pairs, width)


RESIDUAL_NET = Sequential(
    Dense(1.0),
    Residual(Sequential(Activation(), Dense(1.5, 0.05), Activation(), Dense(1.5, 0.05)),
             shortcut_weight=0.8),
    Residual(Sequential(Activation(), Dense(2.0)), shortcut_weight=0.6,
             shortcut=Sequential(Activation(), Dense(1.0))),
    Concatenate(Sequential(Activation(), Dense(2.0)), Sequential(Activation(), Dense(1.0, 0.1)),
                sizes=(1, 3)),
    Repeat(Residual(Sequential(Activation(), Dense(1.2), Activation(), Dense(1.2)),
                    branch_weight=0.5), 3),
    Sequential(Activation(), Dense(1.0)))


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_residual_network_kernels_match_wide_random_networks(activation):
  """Weighted and projection shortcuts, a concatenation, repeated blocks: 8 steps, width 1024."""
  check_residual_network(activation, width=1024, pairs=4, seeds=24)


@pytest.mark.slow
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_residual_network_kernels_match_wide_random_networks_slow(activation):
  """Twice the width, 96 seeds: finite-width bias (O(depth / width)) stays below 5 SE."""
  check_residual_network(activation, width=2048, pairs=4, seeds=96)


def check_residual_network(activation, width, pairs, seeds):
  q11, q22, c0 = 1.0, 1.5, 0.3
  x = jnp.asarray(orthogonal_pairs(width, pairs, q11, q22, c0), jnp.float32)
  steps = tuple(theory.network.steps(RESIDUAL_NET))
  samples = np.stack([np.asarray(_steps_statistics(steps, activation, x, jax.random.key(s)))
                      for s in range(seeds)])
  k = theory.propagate(RESIDUAL_NET, activation, q11, q22, c0 * math.sqrt(q11 * q22))
  predicted = np.stack([k.q11[1:], k.q22[1:], k.c[1:]], axis=-1)
  z = z_scores(samples, predicted)
  print(activation, "max |z| per step (q11, q22, c):", np.abs(z).max(axis=1).round(2).tolist())
  assert np.all(np.abs(z) < Z), np.round(z, 1)
  # Power: the same network without its shortcuts' weights normalized must fail.
  wrong = theory.propagate(Sequential(*(s if not isinstance(s, Sum) else Sum(
      *s.branches, weights=(s.weights[0], 1.1 * s.weights[1])) for s in steps)),
                           activation, q11, q22, c0 * math.sqrt(q11 * q22))
  wrong = np.stack([wrong.q11[1:], wrong.q22[1:], wrong.c[1:]], axis=-1)
  assert np.abs(z_scores(samples, wrong)).max() > Z


@pytest.mark.parametrize("activation, alpha", [("relu", 0.5), ("tanh", 1.0)])
def test_signal_propagation_plots_match_probes_on_res_mlp(activation, alpha):
  """Predicted SPP statistics vs jaxinit.probes on jaxinit.models.ResMLP (He init, 8 blocks)."""
  width, depth, batch, seeds, q0, c0 = 512, 8, 8, 24, 1.0, 0.2
  net = jaxinit.models.functional(jaxinit.models.ResMLP.abstract(
      in_features=64, out_features=1, width=width, depth=depth, activation=activation,
      branch_scale=alpha))[0]
  basis, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((64, batch + 1)))
  x = np.sqrt(64 * q0) * (np.sqrt(c0) * basis[:, :1] + np.sqrt(1 - c0) * basis[:, 1:]).T

  @jax.jit
  def measure(key):
    _, inter = net.apply(net.init(key), jnp.asarray(x, jnp.float32), capture=True)
    spp = probes.signal_propagation(inter["preactivations"], inter["branch"])
    return jnp.stack([spp["avg_squared_mean"], spp["avg_variance"], spp["residual_variance"]])

  samples = np.stack([np.asarray(measure(jax.random.key(s))) for s in range(seeds)])
  spp = theory.res_mlp_signal_propagation(activation, depth, alpha, q0=q0, c0=c0,
                                          batch_size=batch)
  predicted = np.stack([spp.avg_squared_mean, spp.avg_variance, spp.residual_variance])
  z = z_scores(samples, predicted)
  print(activation, alpha, "max |z| (squared mean, variance, residual variance):",
        np.abs(z).max(axis=1).round(2).tolist())
  assert np.all(np.abs(z) < Z), np.round(z, 1)
  wrong = theory.res_mlp_signal_propagation(activation, depth, 1.15 * alpha, q0=q0, c0=c0,
                                            batch_size=batch)
  assert np.abs(z_scores(samples[:, 1], wrong.avg_variance)).max() > Z
