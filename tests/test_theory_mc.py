"""Monte Carlo: sampled wide networks against the mean-field predictions of jaxinit.theory.

Weights are ``jaxinit.variance_scaling(1.0, "fan_in", "normal")`` (or
``jaxinit.orthogonal(1.0)``) draws times ``sqrt(sw)``, which is exactly
``variance_scaling(sw, ...)`` for the same key (checked below); biases are
``jaxinit.normal(1.0)`` draws times ``sqrt(sb)``. Each seed is one
independent network; its statistics (averaged over a few mutually orthogonal
input pairs that share the network) are compared with the prediction through
``t = (mean - prediction) / SE``, ``SE`` = spread over seeds / sqrt(seeds).
The tolerance is the Student-t quantile with the same per-check
false-failure rate as ``stats.Z`` (two-sided 5.7e-7): with few seeds the
spread is itself uncertain, so it is wider than ``Z`` (10.3 for 12 seeds,
6.8 for 24). Every comparison also runs against a deliberately wrong
prediction, which must fail: the tests have power. Keys are fixed, so runs
are deterministic.

Finite width biases the moments by O(depth / width) relative; the slow runs
(48 seeds, tolerance 5.8) bound it: max |t| 3.8 forward (width 1500, 30
layers) and 3.4 for the Jacobian (width 400, 10 layers).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import stats
from scipy import stats as sps

import jaxinit
from jaxinit import theory
from jaxinit.gains import ACTIVATIONS


def t_tolerance(num_seeds: int) -> float:
  return float(sps.t.isf(sps.norm.sf(stats.Z), num_seeds - 1))


def t_scores(samples: np.ndarray, prediction: np.ndarray) -> np.ndarray:
  """``(mean - prediction) / SE`` over axis 0 (seeds)."""
  samples = np.asarray(samples, np.float64)
  se = samples.std(axis=0, ddof=1) / np.sqrt(samples.shape[0])
  return (samples.mean(axis=0) - np.asarray(prediction)) / se


def orthogonal_pairs(width: int, num_pairs: int, q11: float, q22: float, c: float,
                     seed: int = 0) -> np.ndarray:
  """``(2 * num_pairs, width)`` inputs: pairs with ``x.x/n = q11, q22`` and cosine ``c``,
  every pair orthogonal to every other."""
  basis, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((width, 2 * num_pairs)))
  e1, e2 = basis.T[0::2], basis.T[1::2]
  x1 = np.sqrt(width * q11) * e1
  x2 = np.sqrt(width * q22) * (c * e1 + np.sqrt(1 - c * c) * e2)
  return np.stack([x1, x2], axis=1).reshape(2 * num_pairs, width)


# Optimized code even when the suite compiles at --xla_backend_optimization_level=0:
# the samplers run hundreds of times, and level 0 makes the normal draws ~6x
# slower (260 vs 44 ms for 1000 x 1000); level 1 compiles as fast as level 0.
_OPTIMIZED = {"xla_backend_optimization_level": 1}


@functools.partial(jax.jit, static_argnums=(3, 4), compiler_options=_OPTIMIZED)
def draw(key, seed, layer, shape, orthogonal=False):
  """One layer's unit-scale weights and biases, from jaxinit's initializers.

  ``variance_scaling(sw)`` is ``sqrt(sw)`` times ``variance_scaling(1)`` for
  the same key (checked in :func:`test_weights_scale_with_the_variance`), so
  every setting scales one shared draw. Jitted alone and called per layer:
  compiling the sampler inside ``vmap``/``scan`` takes several times longer
  than running it here.
  """
  kw, kb = jax.random.split(jax.random.fold_in(jax.random.fold_in(key, seed), layer))
  init = jaxinit.orthogonal(1.0) if orthogonal else jaxinit.variance_scaling(1.0, "fan_in",
                                                                             "normal")
  return init(kw, shape, jnp.float32), jaxinit.normal(1.0)(kb, shape[-1:], jnp.float32)


@functools.partial(jax.jit, static_argnames="activations")
def forward_layer(acts, w, b, sws, sbs, activations):
  """``h = x W + b`` per setting; returns ``phi(h)`` and ``(q1, q2, c)`` averaged over pairs."""
  new_acts, out = [], []
  for act, name, sw, sb in zip(acts, activations, sws, sbs):
    h = act @ (jnp.sqrt(sw) * w) + jnp.sqrt(sb) * b         # (2 * pairs, width)
    h1, h2 = h[0::2], h[1::2]
    q1, q2 = jnp.mean(h1 * h1, -1), jnp.mean(h2 * h2, -1)
    c = jnp.mean(h1 * h2, -1) / jnp.sqrt(q1 * q2)
    out.append(jnp.stack([q1.mean(), q2.mean(), c.mean()]))
    new_acts.append(ACTIVATIONS[name](h))
  return tuple(new_acts), jnp.stack(out)


def simulate(key, num_seeds, sws, sbs, x, activations, depth):
  """``(seeds, depth, settings, 3)`` layer statistics of independent networks."""
  width = x.shape[-1]
  runs = []
  for seed in range(num_seeds):
    acts, layers = tuple(x for _ in activations), []
    for layer in range(depth):
      w, b = draw(key, seed, layer, (width, width))
      acts, stats_ = forward_layer(acts, w, b, sws, sbs, activations)
      layers.append(stats_)
    runs.append(np.asarray(jnp.stack(layers)))
  return np.stack(runs)


def check_forward(width, depth, num_seeds, num_pairs, key):
  crit = float(theory.critical_weight_variance("tanh", 0.05))
  settings = [("tanh", 1.0, 0.05), ("tanh", crit, 0.05), ("tanh", 4.0, 0.05), ("relu", 2.0, 0.0)]
  assert [theory.phase(a, sw, sb) for a, sw, sb in settings] == [
      "ordered", "critical", "chaotic", "critical"]
  q11, q22, c0 = 1.0, 1.5, 0.3
  x = orthogonal_pairs(width, num_pairs, q11, q22, c0)
  out = simulate(key, num_seeds, tuple(s[1] for s in settings),
                 tuple(s[2] for s in settings), jnp.asarray(x, jnp.float32),
                 tuple(s[0] for s in settings), depth)
  tol = t_tolerance(num_seeds)
  report = {}
  for i, (act, sw, sb) in enumerate(settings):
    def predicted(sw, sb, act=act):
      p = theory.predict_layers_from_inputs(act, sw, sb, depth, x[0], x[1])
      return np.stack([p.q1[1:], p.q2[1:], p.c[1:]], axis=-1)   # layers 1..depth
    t = t_scores(out[:, :, i], predicted(sw, sb))
    wrong = t_scores(out[:, :, i], predicted(1.1 * sw, sb))     # a 10% error in sw
    report[act, round(sw, 3)] = (round(float(np.abs(t).max()), 2),
                                 round(float(np.abs(wrong).max()), 1))
    assert np.all(np.abs(t) < tol), (act, sw, sb, tol, np.round(t, 1))
    assert np.abs(wrong).max() > tol, (act, sw, "a wrong prediction passed")
  return tol, report


@functools.partial(jax.jit, static_argnames="activations")
def jacobian_layer(carry, weights, biases, sws, sbs, activations):
  """One layer per setting: ``a -> phi(a W + b)`` and ``J -> J W diag(phi'(h))``."""
  out = []
  for (a, jac), w, b, name, sw, sb in zip(carry, weights, biases, activations, sws, sbs):
    phi = ACTIVATIONS[name]
    h = a @ (jnp.sqrt(sw) * w) + jnp.sqrt(sb) * b
    out.append((phi(h), (jac @ (jnp.sqrt(sw) * w)) * jax.vmap(jax.grad(phi))(h)[None, :]))
  return tuple(out)


@jax.jit
def spectrum_moments(jac):
  """Mean and variance of the eigenvalues of ``J^T J`` (squared singular values)."""
  jtj = jac.T @ jac
  n = jac.shape[0]
  m1 = jnp.trace(jtj) / n
  return jnp.stack([m1, jnp.sum(jtj * jtj) / n - m1**2])


def jacobian_spectra(key, num_seeds, sws, sbs, x, activations, orthogonal, depth):
  """``(seeds, settings, 2)``: the input-output Jacobian's spectrum moments per network."""
  n = x.shape[-1]
  eye = np.eye(n, dtype=np.float32)
  runs = []
  for seed in range(num_seeds):
    carry = tuple((x, eye) for _ in activations)
    for layer in range(depth):
      gauss = draw(key, seed, layer, (n, n))
      orth = draw(key, seed, layer, (n, n), True) if any(orthogonal) else gauss
      pick = [orth if o else gauss for o in orthogonal]
      carry = jacobian_layer(carry, tuple(p[0] for p in pick), tuple(p[1] for p in pick),
                             sws, sbs, activations)
    runs.append(np.stack([np.asarray(spectrum_moments(jac)) for _, jac in carry]))
  return np.stack(runs)


def check_jacobian(width, depth, num_seeds, key):
  crit = float(theory.critical_weight_variance("tanh", 0.05))
  settings = [("tanh", crit, 0.05, "gaussian"), ("tanh", crit, 0.05, "orthogonal"),
              ("relu", 2.0, 0.0, "gaussian"), ("tanh", 1.2, 0.05, "gaussian")]
  x = np.random.default_rng(1).standard_normal(width)
  x *= np.sqrt(0.5 / np.mean(x * x))
  q0 = float(np.mean(x * x))
  out = jacobian_spectra(
      key, num_seeds, tuple(s[1] for s in settings),
      tuple(s[2] for s in settings), jnp.asarray(x, jnp.float32),
      tuple(s[0] for s in settings), tuple(s[3] == "orthogonal" for s in settings), depth)
  tol = t_tolerance(num_seeds)
  report = {}
  for i, (act, sw, sb, weights) in enumerate(settings):
    def predicted(weights, act=act, sw=sw, sb=sb):
      m = theory.jacobian_spectrum_moments(act, sw, sb, depth, weights=weights, q0=q0)
      return np.array([m.mean, m.variance])
    t = t_scores(out[:, i], predicted(weights))
    # Power: a 25% error in sw must fail, and for tanh so must the other
    # weights' formula (s_W = 0 instead of -1 or back; the ReLU spectra's
    # heavy tails leave too wide a spread for that at this size: |t| ~ 5).
    wrong_sw = t_scores(out[:, i], predicted(weights, sw=1.25 * sw))
    other = {"gaussian": "orthogonal", "orthogonal": "gaussian"}[weights]
    wrong_w = t_scores(out[:, i, 1], predicted(other)[1])
    report[act, round(sw, 3), weights] = (np.round(t, 2).tolist(),
                                          round(float(np.abs(wrong_sw).max()), 1),
                                          round(float(abs(wrong_w)), 1))
    assert np.all(np.abs(t) < tol), (act, sw, weights, tol, t)
    assert np.abs(wrong_sw).max() > tol, (act, sw, weights, "a 25% error in sw passed")
    if act == "tanh":
      assert abs(wrong_w) > tol, (act, sw, weights, "the other weights' formula passed")
  return tol, report


def test_weights_scale_with_the_variance():
  """What lets the settings share one draw per layer in :func:`draw`."""
  key = jax.random.key(3)
  unit = jaxinit.variance_scaling(1.0, "fan_in", "normal")(key, (1000, 1000), jnp.float32)
  w = jaxinit.variance_scaling(1.7609, "fan_in", "normal")(key, (1000, 1000), jnp.float32)
  np.testing.assert_allclose(w, np.sqrt(np.float32(1.7609)) * unit, rtol=2e-7, atol=1e-9)
  np.testing.assert_allclose(jaxinit.normal(0.3)(key, (5,)), 0.3 * jaxinit.normal(1.0)(key, (5,)),
                             rtol=2e-7)


def test_forward_statistics_match_sampled_networks():
  check_forward(width=1000, depth=20, num_seeds=12, num_pairs=4, key=jax.random.key(0))


def test_jacobian_spectrum_moments_match_sampled_networks():
  check_jacobian(width=128, depth=6, num_seeds=24, key=jax.random.key(1))


@pytest.mark.slow
def test_forward_statistics_match_sampled_networks_slow():
  tol, report = check_forward(width=1500, depth=30, num_seeds=48, num_pairs=4,
                              key=jax.random.key(10))
  print("forward: tolerance", round(tol, 2), "max |t| per setting (right, 1.1 sw)", report)


@pytest.mark.slow
def test_jacobian_spectrum_moments_match_sampled_networks_slow():
  tol, report = check_jacobian(width=400, depth=10, num_seeds=48, key=jax.random.key(11))
  print("jacobian: tolerance", round(tol, 2),
        "t (mean, variance), max |t| at 1.25 sw, |t| of the other weights' formula", report)
