"""Probes: forward statistics against numpy, the acceptance experiments (He vs
Glorot through 30 ReLU layers, symmetry under zero init, Jacobian spectra of
deep linear networks), gradients and vmap over models, plots. Networks are the
functional views of jaxinit.models built from shapes (:func:`network`).

Statistical tolerances are Z standard errors estimated from the seeds
themselves (Z from tests/stats.py); keys are fixed, so runs are deterministic.
"""

import functools
import math
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import jaxinit
from jaxinit import probes
from jaxinit.models import MLP, ResMLP, functional
from stats import Z

RNG = np.random.default_rng(20261125)


@pytest.fixture(autouse=True)
def _fresh_rng(request):
  """Each test draws its own data, whichever tests run before it (-k, -x)."""
  global RNG
  RNG = np.random.default_rng([20261125, zlib.crc32(request.node.name.encode())])


F32_EPS = float(np.finfo(np.float32).eps)

# These tests compile far more than they run: skip XLA's slow backend passes
# (per jit, so nothing else in the process is affected). lean_jit keeps the
# cheap optimizations, for the one program that draws ~50M random numbers.
fast_jit = functools.partial(jax.jit, compiler_options={
    "xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True})
lean_jit = functools.partial(jax.jit, compiler_options={
    "xla_backend_optimization_level": 1, "xla_llvm_disable_expensive_passes": True})


def network(cls, *args, **kwargs):
  """The functional view of a jaxinit model built from shapes (nothing drawn)."""
  return functional(cls.abstract(*args, **kwargs))[0]


def numpy_params(net, scale=1.0):
  """Gaussian params of ``net``'s structure drawn by numpy (no XLA compile)."""
  shapes = jax.eval_shape(net.init, jax.random.key(0))
  return jax.tree.map(
      lambda s: jnp.asarray(scale * RNG.standard_normal(s.shape) / math.sqrt(s.shape[-2])
                            if len(s.shape) >= 2 else 0.1 * RNG.standard_normal(s.shape),
                            jnp.float32), shapes)


def stack(trees):
  return jax.tree.map(lambda *a: jnp.stack(a), *trees)


# ---------------------------------------------------------------------------
# Forward statistics against numpy


def test_forward_statistics_match_numpy():
  h = RNG.standard_normal((3, 5, 7)) * np.array([1.0, 2.0, 0.5])[:, None, None] + 0.3
  g = RNG.standard_normal(h.shape)
  # Unit 0 never positive, unit 1 positive once: 1 of 2 units dead in layer 0.
  dead = np.array([[[-1.0, -2.0], [0.0, 3.0]], [[1.0, 1.0], [1.0, 1.0]]])
  # Saturation thresholds: |tanh| > 0.99 <=> |h| > atanh(0.99); sigmoid outside
  # [0.01, 0.99] <=> |h| > logit(0.99).
  t, s = math.atanh(0.99), math.log(99.0)
  edge = np.array([[t - 1e-3, -t - 1e-3, t + 1e-3, 0.0], [s - 1e-3, s + 1e-3, -s - 1e-3, 0]])
  stream = RNG.standard_normal((2, 4, 6, 3)) + 1.0
  branch = RNG.standard_normal((2, 4, 6, 3)) * 2.0

  @fast_jit
  def run(h, g, dead, edge, stream, branch):
    return {"moments": probes.layer_moments(h), "c": probes.layer_correlation(h, g),
            "c_conv": probes.layer_correlation(h, h, axis=(-2, -1)),
            "dead": probes.dead_fraction(dead),
            "tanh": probes.saturated_fraction(edge[:1], "tanh"),
            "sigmoid": probes.saturated_fraction(edge[1:], "sigmoid"),
            "spp": probes.signal_propagation(stream, branch)}

  out = run(*(jnp.asarray(a, jnp.float32) for a in (h, g, dead, edge, stream, branch)))
  m = out["moments"]
  np.testing.assert_allclose(m["mean"], h.mean(axis=(1, 2)), rtol=1e-5)
  np.testing.assert_allclose(m["variance"], h.var(axis=(1, 2)), rtol=1e-5)
  np.testing.assert_allclose(m["second_moment"], (h**2).mean(axis=(1, 2)), rtol=1e-5)
  c = (h * g).mean(-1) / np.sqrt((h**2).mean(-1) * (g**2).mean(-1))
  np.testing.assert_allclose(out["c"], c, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out["c_conv"], np.ones(3), rtol=1e-6)  # positions too
  np.testing.assert_array_equal(out["dead"], [0.5, 0.0])
  np.testing.assert_allclose(out["tanh"], [0.5])
  np.testing.assert_allclose(out["sigmoid"], [0.5])
  with pytest.raises(ValueError):
    probes.saturated_fraction(edge, "relu")
  # Signal-propagation-plot statistics over (inputs, positions) per channel.
  spp = out["spp"]
  np.testing.assert_allclose(spp["avg_squared_mean"],
                             (stream.mean(axis=(1, 2))**2).mean(-1), rtol=1e-5)
  np.testing.assert_allclose(spp["avg_variance"], stream.var(axis=(1, 2)).mean(-1), rtol=1e-5)
  np.testing.assert_allclose(spp["residual_variance"], branch.var(axis=(1, 2)).mean(-1),
                             rtol=1e-5)


def test_correlation_of_opposite_inputs_through_an_odd_network():
  # tanh and no biases: h(-x) = -h(x) exactly, so c^l = -1 at every layer.
  net = network(MLP, in_features=3, out_features=2, width=8, depth=3, activation="tanh",
                use_bias=False)
  params = numpy_params(net)
  x = RNG.standard_normal((4, 3)).astype(np.float32)

  @fast_jit
  def correlation(params, x):
    _, inter = net.apply(params, jnp.stack([x, -x]), capture=True)
    h = inter["preactivations"]
    return probes.layer_correlation(h[:, 0], h[:, 1])

  np.testing.assert_allclose(correlation(params, x), -np.ones((3, 4)), rtol=1e-6)


# ---------------------------------------------------------------------------
# Acceptance: a 30-layer ReLU MLP of width 256, He vs Glorot

DEEP, WIDE, SEEDS = 30, 256, 24
DEEP_RELU = dict(in_features=WIDE, out_features=1, width=WIDE, depth=DEEP, activation="relu")


@fast_jit
def second_moments(params, x):
  """q^l of each model of a population (vmapped over the params' leading axis)."""
  net = network(MLP, **DEEP_RELU)

  def one(p):
    _, inter = net.apply(p, x, capture=True)
    return probes.layer_moments(inter["preactivations"])["second_moment"]
  return jax.vmap(one)(params)


def log2_slope(q):
  """Least-squares slope of log2 q^l against l."""
  layers = np.arange(1, q.shape[-1] + 1)
  return np.polyfit(layers, np.log2(q), 1)[0]


def ensemble_slope(q):
  """Slope of log2 E[q^l] (seed mean) and its jackknife standard error over seeds."""
  n = q.shape[0]
  leave_one_out = np.array([log2_slope(np.delete(q, i, axis=0).mean(0)) for i in range(n)])
  se = math.sqrt((n - 1) / n * np.sum((leave_one_out - leave_one_out.mean())**2))
  return log2_slope(q.mean(0)), se


@pytest.fixture(scope="module")
def relu_profiles():
  # Module scope: set up before the per-test generator, so it has its own.
  x = jnp.asarray(np.random.default_rng(30).standard_normal((32, WIDE)), jnp.float32)
  keys = jax.random.split(jax.random.key(30), SEEDS)
  nets = {name: network(MLP, **DEEP_RELU, kernel_init=init)
          for name, init in [("he", jaxinit.he_normal()), ("glorot", jaxinit.glorot_normal())]}
  populations = lean_jit(lambda keys: {name: jax.vmap(net.init)(keys)
                                       for name, net in nets.items()})(keys)
  return {name: np.asarray(second_moments(params, x), np.float64)
          for name, params in populations.items()}


def test_he_keeps_the_forward_variance_through_30_relu_layers(relu_profiles):
  q = relu_profiles["he"]
  # E[q^{l+1}] = 2 / fan_in * fan_in * E[relu(h)^2] = E[q^l]: the claim is about
  # the ensemble mean over draws. One draw's q^L / q^1 is log-normal with
  # log-variance ~ 5 L / N = 0.59 (Hanin & Rolnick 2018), a spread of ~2.2x;
  # the mean of 24 draws has relative SE sqrt(e^0.59 - 1) / sqrt(24) = 0.18, so
  # a factor 2 (log 0.69) is ~4 SE away.
  mean_q = q.mean(0)
  assert mean_q.max() / mean_q.min() <= 2.0, mean_q
  slope, se = ensemble_slope(q)
  assert abs(slope) <= Z * se, (slope, se)


def test_glorot_halves_the_forward_variance_per_relu_layer(relu_profiles):
  q = relu_profiles["glorot"]
  # fan_in = fan_out = N: Var[W] = 1 / N, so E[q^{l+1}] = E[q^l] / 2: slope -1.
  slope, se = ensemble_slope(q)
  assert abs(slope + 1.0) <= Z * se, (slope, se)


# ---------------------------------------------------------------------------
# Acceptance: symmetry under zero (and constant) init survives training

SYM_WIDTH, SYM_DEPTH = 16, 3
SYM = network(MLP, in_features=6, out_features=3, width=SYM_WIDTH, depth=SYM_DEPTH,
              activation="tanh")
STEPS = 12


@fast_jit
def train_population(params, x, y):
  """SGD on a population of models at once; distinct units tracked at every step."""
  opt = optax.sgd(0.05)

  def loss(p):
    return jnp.mean((SYM.apply(p, x) - y) ** 2)

  def step(carry, _):
    p, state = carry
    value, grads = jax.value_and_grad(loss)(p)
    updates, state = opt.update(grads, state, p)
    p = optax.apply_updates(p, updates)
    return (p, state), (value, probes.distinct_units_per_layer(SYM, p))

  def train(p):
    before = probes.distinct_units_per_layer(SYM, p)
    (p, _), (losses, counts) = jax.lax.scan(step, (p, opt.init(p)), length=STEPS)
    return p, losses, jnp.concatenate([before[None], counts])

  return jax.vmap(train)(params)


def test_zero_init_stays_one_unit_per_layer_through_training():
  inits = {
      "zeros": dict(kernel_init=jaxinit.zeros, bias_init=jaxinit.zeros),
      "constant": dict(kernel_init=jaxinit.constant(0.1), bias_init=jaxinit.constant(0.1)),
      "random": dict(),
  }
  key = jax.random.key(5)
  nets = [network(MLP, 6, 3, SYM_WIDTH, SYM_DEPTH, "tanh", **kw) for kw in inits.values()]
  start = fast_jit(lambda k: stack([net.init(k) for net in nets]))(key)
  x = jnp.asarray(RNG.standard_normal((32, 6)), jnp.float32)
  y = jnp.asarray(RNG.standard_normal((32, 3)), jnp.float32)
  trained, losses, counts = train_population(start, x, y)
  zeros, constant, random = 0, 1, 2
  # One distinct unit per hidden layer, before and after every SGD step.
  np.testing.assert_array_equal(counts[zeros], np.ones((STEPS + 1, SYM_DEPTH)))
  np.testing.assert_array_equal(counts[constant], np.ones((STEPS + 1, SYM_DEPTH)))
  np.testing.assert_array_equal(counts[random], np.full((STEPS + 1, SYM_DEPTH), SYM_WIDTH))
  # Training did happen: losses fell and the symmetric hidden weights moved.
  assert np.all(losses[:, -1] < losses[:, 0])
  moved = trained["hidden"]["kernel"][constant] - start["hidden"]["kernel"][constant]
  assert np.abs(moved).max() > 1e-3
  np.testing.assert_array_equal(trained["readout"]["bias"][zeros] != 0, True)


def test_distinct_units_counts_equal_columns_and_biases():
  w = jnp.array([[1.0, 1.0, 2.0, 1.0], [0.0, 0.0, 0.0, 1e-6]])
  conv = jnp.zeros((3, 2, 4)).at[1, 0, 2].set(1.0)
  v = RNG.standard_normal((8, 1)).astype(np.float32)
  copies = jnp.asarray(np.hstack([v, v * (1 + 1e-6), -v, v]))
  counts = fast_jit(lambda w, conv, copies: [
      probes.distinct_units(w, rtol=0.0),  # exact: the 1e-6 counts -> 3
      probes.distinct_units(w),  # within the default 1e-4 relative -> 2
      probes.distinct_units(w, jnp.array([0.0, 1.0, 0.0, 0.0])),  # a bias differs -> 3
      probes.distinct_units(jnp.zeros((5, 4))),  # zero init -> 1
      probes.distinct_units(conv),  # units are output channels over (k, in) -> 2
      probes.distinct_units(copies),  # a 1e-6-relative copy is the same unit -> 2
  ])(w, conv, copies)
  assert [int(c) for c in counts] == [3, 2, 3, 1, 2, 2]


# ---------------------------------------------------------------------------
# Acceptance: Jacobian spectra of deep linear networks

LINEAR_DEPTH = 7  # hidden layers: 8 weight matrices


def linear_net(width, kernel_init, depth=LINEAR_DEPTH):
  return network(MLP, width, width, width, depth, "linear", use_bias=False,
                 kernel_init=kernel_init)


def spectrum_moments(net):
  """Vmapped over models: mean of s^2 and of s^4 over the Jacobian's spectrum."""
  def one(p, x):
    s2 = probes.jacobian_singular_values(lambda x: net.apply(p, x), x) ** 2
    return jnp.mean(s2), jnp.mean(s2**2)
  return lean_jit(jax.vmap(one))


def test_orthogonal_deep_linear_network_is_isometric():
  width = 64
  net = linear_net(width, jaxinit.orthogonal())

  @fast_jit
  def run(key, x):
    params = net.init(key)
    fn = lambda z: net.apply(params, z)  # noqa: E731
    return (probes.jacobian_singular_values(fn, x),
            probes.jacobian_spectrum_estimate(fn, x, jax.random.key(0), num_iters=8),
            probes.gradient_norms(net, params, x[None], lambda y: jnp.sum(y * x)))

  x = jnp.asarray(RNG.standard_normal(width), jnp.float32)
  s, est, g = run(jax.random.key(11), x)
  # Round-off: each of the 8 products and the SVD cost O(n eps) relatively.
  tol = (LINEAR_DEPTH + 2) * width * F32_EPS
  np.testing.assert_allclose(s, np.ones(width), atol=tol)
  assert np.abs(np.asarray(s) - 1).max() > 0  # measured, not assumed
  # Matrix-free: every Rademacher probe has |J v|^2 = n; Lanczos restarts each
  # step (J^T J = I is invariant on any vector) and still finds only ones.
  for key in ("mean_squared", "max", "min"):
    np.testing.assert_allclose(est[key], 1.0, atol=tol)
  # Backward: orthogonal layers keep the gradient norm at every layer.
  np.testing.assert_allclose(g["activations"], np.full(LINEAR_DEPTH, np.linalg.norm(x)),
                             rtol=tol)


def exact_second_moment(width, num_matrices):
  """E[(1/N) tr (J J^T)^2] for J a product of Gaussian N x N matrices, Var = 1/N.

  Wick's theorem on one more factor W (given S = J^T J) gives
  E tr(W W^T S W W^T S) = (1 + 1/N) tr(S^2) + (1/N) (tr S)^2 and
  E (tr W W^T S)^2 = (tr S)^2 + (2/N) tr(S^2): a closed recursion for
  a = E tr(S^2), b = E (tr S)^2 from S = I. As N -> infinity the result is the
  Fuss-Catalan 1 + L (Pennington et al. 2017: Var[lambda] = L).
  """
  a, b = float(width), float(width) ** 2
  for _ in range(num_matrices):
    a, b = (1 + 1 / width) * a + b / width, b + 2 * a / width
  return a / width


def test_gaussian_deep_linear_jacobian_spreads_as_free_probability_says():
  width, seeds = 256, 12
  init = jaxinit.variance_scaling(1.0, "fan_in", "normal")
  net = linear_net(width, init)
  params = lean_jit(jax.vmap(net.init))(jax.random.split(jax.random.key(12), seeds))
  x = jnp.asarray(RNG.standard_normal((seeds, width)), jnp.float32)
  # Depth L = 8 matrices, and L = 4 from the same draws (3 of the 6 hidden).
  shallow = linear_net(width, init, depth=3)
  shallow_params = dict(params, hidden={"kernel": params["hidden"]["kernel"][:, :2]})
  for model, p, num_matrices in [(net, params, 8), (shallow, shallow_params, 4)]:
    m1, m2 = (np.asarray(m, np.float64) for m in spectrum_moments(model)(p, x))
    se1, se2 = m1.std(ddof=1) / math.sqrt(seeds), m2.std(ddof=1) / math.sqrt(seeds)
    assert abs(m1.mean() - 1.0) <= Z * se1, (num_matrices, m1.mean(), se1)
    expected = exact_second_moment(width, num_matrices)
    assert abs(m2.mean() - expected) <= Z * se2, (num_matrices, m2.mean(), expected, se2)
    # Free probability: Var[lambda] = L as N -> infinity (Pennington et al. 2017);
    # the recursion's first finite-N term adds L (L + 1) / (2 N).
    variance = m2.mean() - 1.0
    finite_n = num_matrices * (num_matrices + 1) / (2 * width)
    assert abs(variance - num_matrices - finite_n) <= Z * se2, (variance, num_matrices)


@pytest.mark.slow
def test_gaussian_jacobian_variance_grows_linearly_with_depth_at_width_512():
  # The same check over L = 2 .. 16 matrices at a larger width, where the
  # finite-N excess L (L + 1) / 2N stays below 0.27.
  width, seeds = 512, 16
  init = jaxinit.variance_scaling(1.0, "fan_in", "normal")
  x = jnp.asarray(RNG.standard_normal((seeds, width)), jnp.float32)
  for num_matrices in (2, 4, 8, 16):
    net = linear_net(width, init, depth=num_matrices - 1)
    params = lean_jit(jax.vmap(net.init))(jax.random.split(jax.random.key(num_matrices), seeds))
    m1, m2 = (np.asarray(m, np.float64) for m in spectrum_moments(net)(params, x))
    se1, se2 = m1.std(ddof=1) / math.sqrt(seeds), m2.std(ddof=1) / math.sqrt(seeds)
    assert abs(m1.mean() - 1.0) <= Z * se1, (num_matrices, m1.mean(), se1)
    expected = exact_second_moment(width, num_matrices)
    assert abs(m2.mean() - expected) <= Z * se2, (num_matrices, m2.mean(), expected, se2)


def test_matrix_free_estimates_match_the_exact_spectrum():
  # 16 inputs into width 48: J is 16 x 48 with singular values away from 0.
  n = 16
  net = network(MLP, n, 48, 48, 2, "linear", use_bias=False,
                kernel_init=jaxinit.variance_scaling(1.0, "fan_in", "normal"))

  @fast_jit
  def run(key, x):
    params = net.init(key)
    fn = lambda z: net.apply(params, z)  # noqa: E731
    return (probes.jacobian_singular_values(fn, x),
            probes.jacobian_spectrum_estimate(fn, x, jax.random.key(1), num_probes=64,
                                              num_iters=n),
            probes.jacobian_spectrum_estimate(fn, x, jax.random.key(1), num_iters=6))

  s, est, few = run(jax.random.key(13), jnp.asarray(RNG.standard_normal(n), jnp.float32))
  s = np.asarray(s, np.float64)
  # Hutchinson with K probes: Var|Jv|^2 <= 2 tr((J^T J)^2), so SE <= sqrt(2 sum s^4 / K) / n.
  se = math.sqrt(2 * np.sum(s**4) / 64) / n
  assert abs(float(est["mean_squared"]) - np.mean(s**2)) <= Z * se
  # num_iters = n: Lanczos with full reorthogonalization is exact.
  np.testing.assert_allclose(est["max"], s.max(), rtol=1e-3)
  np.testing.assert_allclose(est["min"], s.min(), rtol=1e-3)
  # Fewer steps (same start vector, so a sub-basis): Ritz values interlace,
  # lying inside [min, max] of the exact spectrum and of the longer run's.
  assert float(few["max"]) <= float(est["max"]) * (1 + 1e-5)
  assert float(few["min"]) >= float(est["min"]) * (1 - 1e-5)


def test_lanczos_restarts_on_invariant_subspaces():
  a = jnp.diag(jnp.array([1.0, 1.0, 1.0, 4.0, 4.0, 9.0]))
  ritz = fast_jit(lambda key: probes.lanczos_ritz_values(lambda v: a @ v, 6, key, 6))(
      jax.random.key(2))
  np.testing.assert_allclose(ritz, [1, 1, 1, 4, 4, 9], atol=1e-4)


# ---------------------------------------------------------------------------
# Backward


def test_gradient_norms_match_an_unrolled_reference():
  net = network(MLP, in_features=3, out_features=2, width=8, depth=3, activation="tanh")
  params = numpy_params(net)
  x = jnp.asarray(RNG.standard_normal((5, 3)), jnp.float32)
  target = jnp.asarray(RNG.standard_normal((5, 2)), jnp.float32)
  loss_fn = lambda y: jnp.mean((y - target) ** 2)  # noqa: E731

  def unrolled(p, eps):  # a plain Python-loop MLP with explicit per-layer offsets
    h = x @ p["input"]["kernel"] + p["input"]["bias"] + eps[0]
    for l in range(2):
      h = jnp.tanh(h) @ p["hidden"]["kernel"][l] + p["hidden"]["bias"][l] + eps[l + 1]
    return loss_fn(jnp.tanh(h) @ p["readout"]["kernel"] + p["readout"]["bias"])

  @fast_jit
  def run(params):
    eps = [jnp.zeros((5, 8))] * 3
    return (probes.gradient_norms(net, params, x, loss_fn),
            jax.value_and_grad(unrolled, argnums=(0, 1))(params, eps))

  g, (value, (gp, ge)) = run(params)
  np.testing.assert_allclose(g["loss"], value, rtol=1e-6)
  np.testing.assert_allclose(g["activations"], [jnp.linalg.norm(e) for e in ge], rtol=1e-5)
  kernels = [gp["input"]["kernel"], *gp["hidden"]["kernel"], gp["readout"]["kernel"]]
  np.testing.assert_allclose(g["weights"], [jnp.linalg.norm(k) for k in kernels], rtol=1e-5)


def test_probes_vmap_over_models():
  depth = 3
  net = network(ResMLP, in_features=3, out_features=2, width=8, depth=depth, branch_scale=0.5)
  population = [numpy_params(net) for _ in range(3)]
  x = jnp.asarray(RNG.standard_normal((5, 3)), jnp.float32)
  loss_fn = lambda y: jnp.mean(y**2)  # noqa: E731

  def probe(p):
    _, inter = net.apply(p, x, capture=True)
    return (probes.gradient_norms(net, p, x, loss_fn),
            probes.signal_propagation(inter["preactivations"], inter["branch"]),
            probes.distinct_units_per_layer(net, p))

  together = fast_jit(jax.vmap(probe))(stack(population))
  one_by_one = fast_jit(probe)
  for i, p in enumerate(population):
    jax.tree.map(lambda a, b, i=i: np.testing.assert_allclose(a[i], b, rtol=1e-5),
                 together, one_by_one(p))
  assert together[2].shape == (3, 2 * depth + 1)  # stem + 2 per block


# ---------------------------------------------------------------------------
# Plots (matplotlib imported lazily by jaxinit.plots)


def test_plots_draw_bands_histograms_and_spectra():
  matplotlib = pytest.importorskip("matplotlib")
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  from jaxinit import plots
  values = np.exp(RNG.standard_normal((4, 10)))
  ax = plots.layer_curves(values, label="q", log=True)
  assert len(ax.lines) == 1 and len(ax.collections) == 1  # median line + seed band
  np.testing.assert_allclose(ax.lines[0].get_ydata(), np.median(values, axis=0))
  ax = plots.layer_histograms(RNG.standard_normal((6, 50, 8)), layers=[0, 5])
  assert len(ax.patches) == 2 and ax.get_legend() is not None
  ax = plots.jacobian_spectrum({"L=2": np.ones(16), "L=8": RNG.random(16)})
  assert len(ax.patches) == 2
  plt.close("all")
