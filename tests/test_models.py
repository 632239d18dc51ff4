"""Networks: one NNX definition each, initialized by rules; params layout and depth
convention; the math against plain loops; the functional view (hashable, pure, vmaps over
models, runs the module's own code)."""

import functools
import math
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy import special

import jaxinit
from jaxinit.models import CNN1D, MLP, ResMLP, Functional, functional, params_of
from jaxinit.rules import UnusedRuleWarning, param_key

RNG = np.random.default_rng(20261124)


@pytest.fixture(autouse=True)
def _fresh_rng(request):
  """Each test draws its own data, whichever tests run before it (-k, -x)."""
  global RNG
  RNG = np.random.default_rng([20261124, zlib.crc32(request.node.name.encode())])


# These tests compile far more than they run: skip XLA's slow backend passes
# (per jit, so nothing else in the process is affected).
fast_jit = functools.partial(jax.jit, compiler_options={
    "xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True})

# Small networks: shapes matter here, sizes do not (XLA compiles per shape).
CONFIGS = {
    "mlp": (MLP, dict(in_features=3, out_features=2, width=8, depth=3, activation="tanh"),
            (4, 3)),
    "resmlp": (ResMLP, dict(in_features=3, out_features=2, width=8, depth=3, branch_scale=0.7),
               (4, 3)),
    "cnn": (CNN1D, dict(in_channels=1, out_features=2, channels=8, depth=3, kernel_size=3,
                        activation="gelu"), (2, 3, 10, 1)),
}


def network(cls, *args, **kwargs):
  """The functional view of a model built from shapes (nothing drawn)."""
  return functional(cls.abstract(*args, **kwargs))[0]


def random_params(net):
  """Gaussian params of ``net``'s structure, from numpy (no XLA compile)."""
  shapes = jax.eval_shape(net.init, jax.random.key(0))
  return jax.tree.map(
      lambda s: jnp.asarray(RNG.standard_normal(s.shape) / math.sqrt(max(s.shape[-2:])),
                            jnp.float32), shapes)


def shapes_of(tree):
  return jax.tree.map(lambda a: a.shape, tree)


def assert_trees_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  jax.tree.map(np.testing.assert_array_equal, a, b)


# ---------------------------------------------------------------------------
# Layout and depth convention


@pytest.mark.parametrize("depth", [1, 4])
def test_depth_counts_hidden_layers(depth):
  mlp = MLP.abstract(in_features=3, out_features=2, width=8, depth=depth)
  assert shapes_of(params_of(mlp)) == {
      "input": {"kernel": (3, 8), "bias": (8,)},
      "hidden": {"kernel": (depth - 1, 8, 8), "bias": (depth - 1, 8)},
      "readout": {"kernel": (8, 2), "bias": (2,)},
  }
  res = ResMLP.abstract(in_features=3, out_features=2, width=8, depth=depth, use_bias=False)
  assert shapes_of(params_of(res)) == {
      "input": {"kernel": (3, 8)},
      "blocks": {"hidden": {"kernel": (depth, 8, 8)}, "branch": {"kernel": (depth, 8, 8)}},
      "readout": {"kernel": (8, 2)},
  }
  cnn = CNN1D.abstract(in_channels=1, out_features=10, channels=4, depth=depth, kernel_size=3)
  assert shapes_of(params_of(cnn))["hidden"] == {"kernel": (depth - 1, 3, 4, 4),
                                                 "bias": (depth - 1, 4)}
  # One pre-activation per hidden layer (per block for ResMLP); layers in forward order.
  for model, x in [(mlp, (5, 3)), (res, (5, 3)), (cnn, (5, 40, 1))]:
    net, shapes = functional(model)
    _, inter = jax.eval_shape(lambda p, x, net=net: net.apply(p, x, capture=True), shapes,
                              jax.ShapeDtypeStruct(x, jnp.float32))
    assert inter["preactivations"].shape[0] == depth
    layers = jax.eval_shape(net.layers, shapes)
    assert sum(k.shape[0] for k, _ in layers) == (2 * depth + 2 if model is res else depth + 1)


def test_invalid_configs_raise_naming_the_argument():
  with pytest.raises(ValueError, match="depth"):
    MLP.abstract(in_features=3, out_features=2, width=8, depth=0)
  with pytest.raises(ValueError, match="width"):
    ResMLP.abstract(in_features=3, out_features=2, width=-1, depth=2)
  with pytest.raises(TypeError, match="channels"):
    CNN1D.abstract(in_channels=1, out_features=2, channels=4.0, depth=2)
  with pytest.raises(ValueError, match="activation"):
    CNN1D.abstract(in_channels=1, out_features=2, channels=4, depth=2, activation="nope")
  with pytest.raises(TypeError, match="rngs"):
    MLP(3, 2, 8, 2, rngs="seed")


def test_functional_views_are_hashable_static_arguments():
  a = network(MLP, in_features=3, out_features=2, width=8, depth=2)
  b, _ = functional(MLP(in_features=3, out_features=2, width=8, depth=2, rngs=5))
  # A view from shapes equals the view of a built model of the same config.
  assert a == b and hash(a) == hash(b)
  assert a != network(MLP, in_features=3, out_features=2, width=8, depth=3)
  f = fast_jit(lambda net, x: net.apply(random_params(net), x), static_argnums=0)
  assert f(a, jnp.ones(3)).shape == (2,)
  assert f._cache_size() == 1 and f(b, jnp.ones(3)).shape == (2,) and f._cache_size() == 1


# ---------------------------------------------------------------------------
# Initialization: through the rules


class Plain(nnx.Module):
  """The MLP's layout written as an ordinary NNX module, with Flax's own initializers."""

  def __init__(self, rngs):
    self.input = nnx.Linear(3, 8, rngs=rngs)

    @nnx.split_rngs(splits=2)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def hidden(rngs):
      return nnx.Linear(8, 8, rngs=rngs)

    self.hidden = hidden(rngs)
    self.readout = nnx.Linear(8, 2, rngs=rngs)

  def __call__(self, x):
    h = self.input(x)
    for i in range(2):
      h = h @ self.hidden.kernel[i] + self.hidden.bias[i]
    return self.readout(h)


def test_params_are_the_rules_draws_at_their_paths():
  key = jax.random.key(7)
  model = MLP(3, 2, width=8, depth=3, hidden_init=jaxinit.orthogonal(),
              bias_init=jaxinit.normal(1.0), rngs=key)
  # Any model with these paths, initialized by the same rules, gets the same bits.
  other = jaxinit.initialize(Plain(nnx.Rngs(3)), model.rules, key)
  assert_trees_equal(params_of(model), params_of(other))
  # An nnx.Rngs gives the key of its params stream.
  assert_trees_equal(params_of(MLP(3, 2, width=8, depth=3, rngs=nnx.Rngs(5))),
                     params_of(MLP(3, 2, width=8, depth=3, rngs=nnx.Rngs(5).params())))
  # Each stacked layer is one draw of one 8x8 matrix at its own key (fan_in 8, not
  # a slice of one (2, 8, 8) draw). The model's draw is compiled, the reference here eager:
  # orthogonal's pairwise column norms (bit for bit under vmap) may round 1 ulp apart
  # between the two (measured 1.2e-7 on entries ~0.3), the matrix's jit-vs-eager bound.
  kernels = np.asarray(model.hidden.kernel[...])
  for i in range(2):
    np.testing.assert_allclose(
        kernels[i], jaxinit.orthogonal()(param_key(key, "hidden/kernel", i), (8, 8)),
        rtol=0, atol=2 * np.finfo(np.float32).eps)
  np.testing.assert_allclose(np.asarray(model.input.kernel[...]),
                             jaxinit.he_normal()(param_key(key, "input/kernel"), (3, 8)),
                             rtol=1e-6)
  assert not np.allclose(kernels[0], kernels[1])


def test_stacked_layers_are_one_draw_whatever_the_depth():
  # The rules compile one draw program per (shape, stack, initializer), so a stack of
  # 40 layers is one program for its kernels and one for its biases (never one per layer).
  from jaxinit.rules import api  # pylint: disable=import-outside-toplevel
  MLP(3, 2, width=7, depth=3, kernel_init=jaxinit.orthogonal(), rngs=0)
  before = api._compiled.cache_info().misses  # pylint: disable=protected-access
  MLP(3, 2, width=7, depth=41, kernel_init=jaxinit.orthogonal(), rngs=0)
  assert api._compiled.cache_info().misses - before == 2  # pylint: disable=protected-access


def test_roles_get_their_initializers_and_labels():
  res = ResMLP(in_features=3, out_features=2, width=4, depth=2,
               kernel_init=jaxinit.constant(1.0), hidden_init=jaxinit.constant(2.0),
               branch_init=jaxinit.zeros, readout_init=jaxinit.constant(3.0),
               bias_init=jaxinit.constant(-1.0), rngs=0)
  p = params_of(res)
  for path, value in [(("input", "kernel"), 1.0), (("blocks", "hidden", "kernel"), 2.0),
                      (("blocks", "branch", "kernel"), 0.0), (("readout", "kernel"), 3.0),
                      (("blocks", "branch", "bias"), -1.0), (("readout", "bias"), -1.0)]:
    np.testing.assert_array_equal(functools.reduce(lambda t, k: t[k], path, p), value)
  # Each parameter's label is its role (optax.multi_transform, per-role learning rates).
  labels = nnx.to_pure_dict(jaxinit.rules.labels(res, res.rules))
  assert labels == {"input": {"kernel": "input", "bias": "bias"},
                    "blocks": {"hidden": {"kernel": "hidden", "bias": "bias"},
                               "branch": {"kernel": "branch", "bias": "bias"}},
                    "readout": {"kernel": "readout", "bias": "bias"}}
  # Unset roles fall back: hidden and readout to kernel_init; defaults He-normal, zeros.
  mlp = MLP(in_features=3, out_features=2, width=4, depth=3, kernel_init=jaxinit.ones, rngs=0)
  assert all(np.all(np.asarray(v["kernel"]) == 1.0) for v in params_of(mlp).values())
  default = MLP.abstract(3, 2, 8, 2).rules
  assert [(r.pattern.glob, r.init) for r in default] == [
      ("input/kernel", jaxinit.he_normal()), ("hidden/kernel", jaxinit.he_normal()),
      ("readout/kernel", jaxinit.he_normal()), ("*bias", jaxinit.zeros)]


def test_rules_take_precedence_over_roles_and_reinit_redraws_the_same():
  cnn = CNN1D(1, 2, channels=4, depth=3, kernel_size=3, rngs=3,
              rules=[(nnx.Conv, jaxinit.ones), ("readout/bias", jaxinit.constant(0.5))])
  p = params_of(cnn)
  np.testing.assert_array_equal(p["input"]["kernel"], 1.0)  # module-class rule
  np.testing.assert_array_equal(p["hidden"]["kernel"], 1.0)
  np.testing.assert_array_equal(p["hidden"]["bias"], 0.0)  # the bias role
  np.testing.assert_array_equal(p["readout"]["bias"], 0.5)
  assert np.std(p["readout"]["kernel"]) > 0  # the readout role: He-normal
  # model.rules is the whole recipe: reinit with the same key redraws the same bits.
  before = params_of(cnn)
  assert_trees_equal(params_of(jaxinit.reinit(cnn, cnn.rules, 3)), before)
  with pytest.warns(UnusedRuleWarning, match="nothing/kernel"):
    MLP(3, 2, 8, 2, rules=[("nothing/kernel", jaxinit.zeros)], rngs=0)


# ---------------------------------------------------------------------------
# The math, against plain float64 loops


# The activations in float64 numpy, independent of jaxinit.gains.
NUMPY_ACTIVATIONS = {"tanh": np.tanh, "relu": lambda a: np.maximum(a, 0.0),
                     "gelu": lambda a: 0.5 * a * (1 + special.erf(a / math.sqrt(2))),
                     "linear": lambda a: a}


def reference_mlp(cfg, p, x):
  f = NUMPY_ACTIVATIONS[cfg["activation"]]
  h = x @ p["input"]["kernel"] + p["input"]["bias"]
  hs = [h]
  for l in range(cfg["depth"] - 1):
    h = f(h) @ p["hidden"]["kernel"][l] + p["hidden"]["bias"][l]
    hs.append(h)
  return f(h) @ p["readout"]["kernel"] + p["readout"]["bias"], {"preactivations": hs}


def reference_resmlp(cfg, p, x):
  relu = NUMPY_ACTIVATIONS["relu"]
  stream = x @ p["input"]["kernel"] + p["input"]["bias"]
  streams, branches, inners = [], [], []
  for l in range(cfg["depth"]):
    blk = jax.tree.map(lambda a, l=l: a[l], p["blocks"])
    inner = relu(stream) @ blk["hidden"]["kernel"] + blk["hidden"]["bias"]
    branch = relu(inner) @ blk["branch"]["kernel"] + blk["branch"]["bias"]
    stream = stream + cfg["branch_scale"] * branch
    streams.append(stream), branches.append(branch), inners.append(inner)
  y = relu(stream) @ p["readout"]["kernel"] + p["readout"]["bias"]
  return y, {"preactivations": streams, "branch": branches, "inner": inners}


def reference_cnn(cfg, p, x):
  f = NUMPY_ACTIVATIONS[cfg["activation"]]

  def conv(x, kernel, bias):  # 'SAME', stride 1, odd kernel: zero-pad k // 2 each side
    k = kernel.shape[0]
    padded = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(k // 2, k // 2), (0, 0)])
    windows = np.stack([padded[..., i:i + x.shape[-2], :] for i in range(k)], axis=-2)
    return np.einsum("...wkc,kco->...wo", windows, kernel) + bias

  h = conv(x, p["input"]["kernel"], p["input"]["bias"])
  hs = [h]
  for l in range(cfg["depth"] - 1):
    h = conv(f(h), p["hidden"]["kernel"][l], p["hidden"]["bias"][l])
    hs.append(h)
  y = f(h).mean(axis=-2) @ p["readout"]["kernel"] + p["readout"]["bias"]
  return y, {"preactivations": hs}


REFERENCES = {"mlp": reference_mlp, "resmlp": reference_resmlp, "cnn": reference_cnn}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_apply_matches_plain_loop_and_vmaps_over_models(name):
  cls, cfg, x_shape = CONFIGS[name]
  net = network(cls, **cfg)
  population = [random_params(net) for _ in range(3)]
  params = population[0]
  x = RNG.standard_normal(x_shape).astype(np.float32)
  single = x[(0,) * (len(x_shape) - (2 if name == "cnn" else 1))]  # no batch axes

  @fast_jit
  def run(params, stacked, x, single):
    y, inter = net.apply(params, x, capture=True)
    # A perturbation of the last layer's signal changes only that layer's signal.
    eps = jnp.zeros_like(inter["preactivations"]).at[-1].set(1.0)
    return {"y": y, "inter": inter, "plain": net.apply(params, x),
            "single": net.apply(params, single),
            "module": net.module(params)(x),  # the module itself, called as NNX code
            "perturbed": net.apply(params, x, capture=True, perturbations=eps)[1],
            "eps": eps,
            "population": jax.vmap(net.apply, in_axes=(0, None))(stacked, x),
            "one_by_one": jnp.stack([net.apply(p, x) for p in population_arg(stacked)])}

  def population_arg(stacked):
    return [jax.tree.map(lambda a, i=i: a[i], stacked) for i in range(3)]

  out = run(params, jax.tree.map(lambda *a: jnp.stack(a), *population), x, single)
  p64 = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  y_ref, inter_ref = REFERENCES[name](cfg, p64, x.astype(np.float64))
  np.testing.assert_allclose(out["y"], y_ref, rtol=2e-5, atol=2e-5)
  assert sorted(out["inter"]) == sorted(inter_ref)
  for key in inter_ref:
    np.testing.assert_allclose(out["inter"][key], np.stack(inter_ref[key]), rtol=2e-5,
                               atol=2e-5)
  # capture=False gives the same output; an input without batch axes works too.
  np.testing.assert_allclose(out["plain"], y_ref, rtol=2e-5, atol=2e-5)
  np.testing.assert_array_equal(out["module"], out["plain"])
  np.testing.assert_allclose(out["single"], y_ref[(0,) * (y_ref.ndim - 1)], rtol=2e-5,
                             atol=2e-5)
  h = out["inter"]["preactivations"]
  np.testing.assert_allclose(out["perturbed"]["preactivations"], h + out["eps"], rtol=1e-6,
                             atol=1e-6)
  # vmap over a population of models equals the models one by one.
  np.testing.assert_allclose(out["population"], out["one_by_one"], rtol=1e-5, atol=1e-6)


def test_layers_are_in_forward_order():
  res = network(ResMLP, 3, 2, width=4, depth=2)
  params = random_params(res)
  (k_in, b_in), (k_blocks, b_blocks), (k_out, b_out) = res.layers(params)
  blocks = params["blocks"]
  order = [blocks["hidden"], blocks["branch"]]
  np.testing.assert_array_equal(k_in[0], params["input"]["kernel"])
  for i in range(4):  # hidden_1, branch_1, hidden_2, branch_2
    np.testing.assert_array_equal(k_blocks[i], order[i % 2]["kernel"][i // 2])
    np.testing.assert_array_equal(b_blocks[i], order[i % 2]["bias"][i // 2])
  np.testing.assert_array_equal(k_out[0], params["readout"]["kernel"])
  np.testing.assert_array_equal(b_out[0], params["readout"]["bias"])
  mlp = network(MLP, 3, 2, width=4, depth=3, use_bias=False)
  groups = mlp.layers(random_params(mlp))
  assert [k.shape for k, _ in groups] == [(1, 3, 4), (2, 4, 4), (1, 4, 2)]
  assert all(b is None for _, b in groups)


def test_activation_name_or_callable():
  a = network(MLP, in_features=3, out_features=2, width=8, depth=3, activation="tanh")
  b = network(MLP, in_features=3, out_features=2, width=8, depth=3, activation=jnp.tanh)
  params = random_params(a)
  ya, yb = fast_jit(lambda p, x: (a.apply(p, x), b.apply(p, x)))(params, jnp.ones(3))
  np.testing.assert_array_equal(ya, yb)


def test_delta_orthogonal_linear_cnn_preserves_norm_at_every_position():
  # A delta-orthogonal kernel is an orthogonal map at the centre tap only, so a
  # linear 'SAME' conv net keeps each position's channel norm: this pins the
  # kernel layout (k, in, out), the centre alignment and the padding.
  net = network(CNN1D, in_channels=1, out_features=2, channels=8, depth=3, kernel_size=3,
                activation="linear", use_bias=False, kernel_init=jaxinit.delta_orthogonal(),
                readout_init=jaxinit.zeros)
  x = RNG.standard_normal((2, 3, 10, 1)).astype(np.float32)
  h = fast_jit(lambda key, x: net.apply(net.init(key), x, capture=True)[1]["preactivations"])(
      jax.random.key(3), x)
  norms = jnp.linalg.norm(h, axis=-1)
  np.testing.assert_allclose(norms, np.broadcast_to(np.abs(x[..., 0]), norms.shape),
                             rtol=1e-5)


# ---------------------------------------------------------------------------
# The functional view


def test_functional_init_is_the_constructors_draw_and_vmaps_over_keys():
  model = MLP(3, 2, width=8, depth=3, kernel_init=jaxinit.glorot_uniform(),
              hidden_init=jaxinit.orthogonal(), rngs=11)
  net, params = functional(model)
  keys = jax.random.split(jax.random.key(4), 3)
  one, population = fast_jit(lambda k, ks: (net.init(k), jax.vmap(net.init)(ks)))(
      jax.random.key(11), keys)
  hidden = lambda p: p["hidden"]["kernel"]  # noqa: E731
  # Elementwise draws: the same bits jitted or eager; orthogonal's QR inside a larger
  # jitted program may round differently (the sweep draws it by initialize's own program).
  np.testing.assert_allclose(hidden(one), hidden(params), rtol=0, atol=2e-7)
  one["hidden"]["kernel"] = params["hidden"]["kernel"]
  assert_trees_equal(one, params)
  for i in range(3):
    alone = params_of(MLP(3, 2, width=8, depth=3, kernel_init=jaxinit.glorot_uniform(),
                          hidden_init=jaxinit.orthogonal(), rngs=keys[i]))
    drawn = jax.tree.map(lambda a, i=i: a[i], population)
    np.testing.assert_allclose(hidden(drawn), hidden(alone), rtol=0, atol=2e-7)
    drawn["hidden"]["kernel"] = alone["hidden"]["kernel"]
    assert_trees_equal(drawn, alone)


class Counter(nnx.Module):
  """A module with batch statistics: not all nnx.Param."""

  def __init__(self):
    self.dense = nnx.Linear(2, 2, rngs=nnx.Rngs(0))
    self.count = nnx.BatchStat(jnp.zeros(()))

  def __call__(self, x):
    return self.dense(x)


def test_functional_serves_any_module_of_params_and_explains_what_it_cannot():
  # A plain NNX module: apply runs its call (no capture keywords passed), init needs rules.
  plain = Plain(nnx.Rngs(0))
  net, params = functional(plain, rules=[("*", jaxinit.zeros)])
  np.testing.assert_array_equal(net.apply(params, jnp.ones(3)), plain(jnp.ones(3)))
  assert all(not np.any(leaf) for leaf in jax.tree.leaves(net.init(jax.random.key(0))))
  bare, _ = functional(plain)
  with pytest.raises(TypeError, match="no rules"):
    bare.init(jax.random.key(0))
  with pytest.raises(TypeError, match="layer_order"):
    bare.layers(params)
  with pytest.raises(ValueError, match="BatchStat"):
    functional(Counter())
  with pytest.raises(TypeError, match="NNX module"):
    functional({"kernel": jnp.ones(2)})
  assert isinstance(net, Functional)

