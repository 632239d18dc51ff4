"""Networks: params layout and depth convention, stacked-layer init, the math
against plain loops, vmap over models, and the NNX twins."""

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
import jaxinit.models.nnx as jnnx
from jaxinit.models import CNN1D, MLP, ResMLP, base

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
NETS = {
    "mlp": (MLP(in_features=3, out_features=2, width=8, depth=3, activation="tanh"),
            (4, 3)),
    "resmlp": (ResMLP(in_features=3, out_features=2, width=8, depth=3, branch_scale=0.7),
               (4, 3)),
    "cnn": (CNN1D(in_channels=1, out_features=2, channels=8, depth=3, kernel_size=3,
                  activation="gelu"), (2, 3, 10, 1)),
}


def random_params(net):
  """Gaussian params of ``net``'s structure, from numpy (no XLA compile)."""
  shapes = jax.eval_shape(net.init, jax.random.key(0))
  return jax.tree.map(
      lambda s: jnp.asarray(RNG.standard_normal(s.shape) / math.sqrt(max(s.shape[-2:])),
                            jnp.float32), shapes)


def shapes_of(tree):
  return jax.tree.map(lambda a: a.shape, tree)


# ---------------------------------------------------------------------------
# Layout and depth convention


@pytest.mark.parametrize("depth", [1, 4])
def test_depth_counts_hidden_layers(depth):
  mlp = MLP(in_features=3, out_features=2, width=8, depth=depth)
  assert shapes_of(jax.eval_shape(mlp.init, jax.random.key(0))) == {
      "input": {"kernel": (3, 8), "bias": (8,)},
      "hidden": {"kernel": (depth - 1, 8, 8), "bias": (depth - 1, 8)},
      "readout": {"kernel": (8, 2), "bias": (2,)},
  }
  res = ResMLP(in_features=3, out_features=2, width=8, depth=depth, use_bias=False)
  assert shapes_of(jax.eval_shape(res.init, jax.random.key(0))) == {
      "input": {"kernel": (3, 8)},
      "blocks": {"hidden": {"kernel": (depth, 8, 8)}, "branch": {"kernel": (depth, 8, 8)}},
      "readout": {"kernel": (8, 2)},
  }
  cnn = CNN1D(in_channels=1, out_features=10, channels=4, depth=depth, kernel_size=3)
  assert shapes_of(jax.eval_shape(cnn.init, jax.random.key(0)))["hidden"] == {
      "kernel": (depth - 1, 3, 4, 4), "bias": (depth - 1, 4)}
  # One pre-activation per hidden layer (per block for ResMLP).
  for net, x in [(mlp, (5, 3)), (res, (5, 3)), (cnn, (5, 40, 1))]:
    _, inter = jax.eval_shape(lambda p, x, net=net: net.apply(p, x, capture=True),
                              jax.eval_shape(net.init, jax.random.key(0)),
                              jax.ShapeDtypeStruct(x, jnp.float32))
    assert inter["preactivations"].shape[0] == depth
    layers = jax.eval_shape(net.layers, jax.eval_shape(net.init, jax.random.key(0)))
    assert sum(k.shape[0] for k, _ in layers) == (2 * depth + 2 if net is res else depth + 1)


def test_invalid_configs_raise():
  with pytest.raises(ValueError, match="depth"):
    MLP(in_features=3, out_features=2, width=8, depth=0)
  with pytest.raises(ValueError, match="width"):
    ResMLP(in_features=3, out_features=2, width=-1, depth=2)
  with pytest.raises(ValueError, match="activation"):
    CNN1D(in_channels=1, out_features=2, channels=4, depth=2, activation="nope")


def test_configs_are_hashable_static_arguments():
  net = MLP(in_features=3, out_features=2, width=8, depth=2)
  assert hash(net) == hash(MLP(in_features=3, out_features=2, width=8, depth=2))
  f = fast_jit(lambda net, x: net.apply(random_params(net), x), static_argnums=0)
  assert f(net, jnp.ones(3)).shape == (2,)


# ---------------------------------------------------------------------------
# Initialization


def test_each_stacked_layer_is_one_initializer_draw():
  init, bias_init = jaxinit.he_normal(), jaxinit.normal(1.0)
  net = MLP(in_features=3, out_features=2, width=8, depth=3, bias_init=bias_init)

  @fast_jit
  def draw(key):
    # The documented key derivation: split into (input, hidden, readout), one
    # key per stacked layer, each split into (kernel, bias) by init_layer.
    layer_keys = jax.random.split(jax.random.split(key, 3)[1], net.depth - 1)
    return net.init(key), [base.init_layer(k, (8, 8), init, bias_init, True, jnp.float32)
                           for k in layer_keys]

  # Bit for bit: each layer is one draw for one 8x8 matrix (fan_in 8), not a
  # slice of one (2, 8, 8) draw (whose fans the initializer computes as 16).
  params, expected = draw(jax.random.key(7))
  for i, layer in enumerate(expected):
    np.testing.assert_array_equal(params["hidden"]["kernel"][i], layer["kernel"])
    np.testing.assert_array_equal(params["hidden"]["bias"][i], layer["bias"])
  assert not np.allclose(params["hidden"]["kernel"][0], params["hidden"]["kernel"][1])


def test_roles_get_their_initializers():
  res = ResMLP(in_features=3, out_features=2, width=4, depth=2,
               kernel_init=jaxinit.constant(1.0), hidden_init=jaxinit.constant(2.0),
               branch_init=jaxinit.zeros, readout_init=jaxinit.constant(3.0),
               bias_init=jaxinit.constant(-1.0))
  p = fast_jit(res.init)(jax.random.key(0))
  for path, value in [(("input", "kernel"), 1.0), (("blocks", "hidden", "kernel"), 2.0),
                      (("blocks", "branch", "kernel"), 0.0), (("readout", "kernel"), 3.0),
                      (("blocks", "branch", "bias"), -1.0), (("readout", "bias"), -1.0)]:
    leaf = p
    for k in path:
      leaf = leaf[k]
    np.testing.assert_array_equal(leaf, value)
  # Unset roles fall back: hidden and readout to kernel_init.
  mlp = MLP(in_features=3, out_features=2, width=4, depth=3, kernel_init=jaxinit.ones)
  assert all(np.all(np.asarray(leaf) == 1.0)
             for leaf in jax.tree.leaves({k: v["kernel"] for k, v in fast_jit(mlp.init)(
                 jax.random.key(0)).items()}))


def test_default_initializers_are_jaxinit_presets():
  net = MLP(in_features=3, out_features=2, width=8, depth=2)
  assert net.kernel_init == jaxinit.he_normal()
  assert net.bias_init == jaxinit.zeros


# ---------------------------------------------------------------------------
# The math, against plain float64 loops


# The activations in float64 numpy, independent of jaxinit.gains.
NUMPY_ACTIVATIONS = {"tanh": np.tanh, "relu": lambda a: np.maximum(a, 0.0),
                     "gelu": lambda a: 0.5 * a * (1 + special.erf(a / math.sqrt(2))),
                     "linear": lambda a: a}


def reference_mlp(net, p, x):
  f = NUMPY_ACTIVATIONS[net.activation]
  h = x @ p["input"]["kernel"] + p["input"]["bias"]
  hs = [h]
  for l in range(net.depth - 1):
    h = f(h) @ p["hidden"]["kernel"][l] + p["hidden"]["bias"][l]
    hs.append(h)
  return f(h) @ p["readout"]["kernel"] + p["readout"]["bias"], {"preactivations": hs}


def reference_resmlp(net, p, x):
  relu = NUMPY_ACTIVATIONS[net.activation]
  stream = x @ p["input"]["kernel"] + p["input"]["bias"]
  streams, branches, inners = [], [], []
  for l in range(net.depth):
    blk = jax.tree.map(lambda a, l=l: a[l], p["blocks"])
    inner = relu(stream) @ blk["hidden"]["kernel"] + blk["hidden"]["bias"]
    branch = relu(inner) @ blk["branch"]["kernel"] + blk["branch"]["bias"]
    stream = stream + net.branch_scale * branch
    streams.append(stream), branches.append(branch), inners.append(inner)
  y = relu(stream) @ p["readout"]["kernel"] + p["readout"]["bias"]
  return y, {"preactivations": streams, "branch": branches, "inner": inners}


def reference_cnn(net, p, x):
  f = NUMPY_ACTIVATIONS[net.activation]

  def conv(x, kernel, bias):  # 'SAME', stride 1, odd kernel: zero-pad k // 2 each side
    k = kernel.shape[0]
    padded = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(k // 2, k // 2), (0, 0)])
    windows = np.stack([padded[..., i:i + x.shape[-2], :] for i in range(k)], axis=-2)
    return np.einsum("...wkc,kco->...wo", windows, kernel) + bias

  h = conv(x, p["input"]["kernel"], p["input"]["bias"])
  hs = [h]
  for l in range(net.depth - 1):
    h = conv(f(h), p["hidden"]["kernel"][l], p["hidden"]["bias"][l])
    hs.append(h)
  y = f(h).mean(axis=-2) @ p["readout"]["kernel"] + p["readout"]["bias"]
  return y, {"preactivations": hs}


REFERENCES = {"mlp": reference_mlp, "resmlp": reference_resmlp, "cnn": reference_cnn}


@pytest.mark.parametrize("name", sorted(NETS))
def test_apply_matches_plain_loop_and_vmaps_over_models(name):
  net, x_shape = NETS[name]
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
            "perturbed": net.apply(params, x, capture=True, perturbations=eps)[1],
            "eps": eps,
            "population": jax.vmap(net.apply, in_axes=(0, None))(stacked, x),
            "one_by_one": jnp.stack([net.apply(p, x) for p in population_arg(stacked)])}

  def population_arg(stacked):
    return [jax.tree.map(lambda a, i=i: a[i], stacked) for i in range(3)]

  out = run(params, jax.tree.map(lambda *a: jnp.stack(a), *population), x, single)
  p64 = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  y_ref, inter_ref = REFERENCES[name](net, p64, x.astype(np.float64))
  np.testing.assert_allclose(out["y"], y_ref, rtol=2e-5, atol=2e-5)
  assert sorted(out["inter"]) == sorted(inter_ref)
  for key in inter_ref:
    np.testing.assert_allclose(out["inter"][key], np.stack(inter_ref[key]), rtol=2e-5,
                               atol=2e-5)
  # capture=False gives the same output; an input without batch axes works too.
  np.testing.assert_allclose(out["plain"], y_ref, rtol=2e-5, atol=2e-5)
  np.testing.assert_allclose(out["single"], y_ref[(0,) * (y_ref.ndim - 1)], rtol=2e-5,
                             atol=2e-5)
  h = out["inter"]["preactivations"]
  np.testing.assert_allclose(out["perturbed"]["preactivations"], h + out["eps"], rtol=1e-6,
                             atol=1e-6)
  # vmap over a population of models equals the models one by one.
  np.testing.assert_allclose(out["population"], out["one_by_one"], rtol=1e-5, atol=1e-6)


def test_activation_name_or_callable():
  a = MLP(in_features=3, out_features=2, width=8, depth=3, activation="tanh")
  b = MLP(in_features=3, out_features=2, width=8, depth=3, activation=jnp.tanh)
  params = random_params(a)
  ya, yb = fast_jit(lambda p, x: (a.apply(p, x), b.apply(p, x)))(params, jnp.ones(3))
  np.testing.assert_array_equal(ya, yb)


def test_delta_orthogonal_linear_cnn_preserves_norm_at_every_position():
  # A delta-orthogonal kernel is an orthogonal map at the centre tap only, so a
  # linear 'SAME' conv net keeps each position's channel norm: this pins the
  # kernel layout (k, in, out), the centre alignment and the padding.
  net = CNN1D(in_channels=1, out_features=2, channels=8, depth=3, kernel_size=3,
              activation="linear", use_bias=False, kernel_init=jaxinit.delta_orthogonal(),
              readout_init=jaxinit.zeros)
  x = RNG.standard_normal((2, 3, 10, 1)).astype(np.float32)
  h = fast_jit(lambda key, x: net.apply(net.init(key), x, capture=True)[1]["preactivations"])(
      jax.random.key(3), x)
  norms = jnp.linalg.norm(h, axis=-1)
  np.testing.assert_allclose(norms, np.broadcast_to(np.abs(x[..., 0]), norms.shape),
                             rtol=1e-5)


# ---------------------------------------------------------------------------
# Flax NNX twins

NNX_NETS = {
    "mlp": lambda rngs: jnnx.MLP(3, 2, width=8, depth=3, activation="tanh", rngs=rngs),
    "resmlp": lambda rngs: jnnx.ResMLP(3, 2, width=8, depth=3, branch_scale=0.7, rngs=rngs),
    "cnn": lambda rngs: jnnx.CNN1D(1, 2, channels=8, depth=3, kernel_size=3,
                                   activation="gelu", rngs=rngs),
}


@pytest.mark.parametrize("name", sorted(NNX_NETS))
def test_nnx_module_equals_functional_twin(name):
  net, x_shape = NETS[name]
  params = random_params(net)
  # The NNX twin holding the same params: built abstractly (nothing drawn), then filled.
  graphdef, abstract = nnx.split(nnx.eval_shape(lambda: NNX_NETS[name](nnx.Rngs(0))))
  assert nnx.merge(graphdef, abstract).spec == net
  # Same layout: the module's params are the functional params.
  assert shapes_of(nnx.to_pure_dict(abstract)) == shapes_of(params)
  module = nnx.merge(graphdef, params)
  jax.tree.map(np.testing.assert_array_equal, jnnx.params_of(module), params)
  adapter, adapter_params = jnnx.as_network(module)
  x = RNG.standard_normal(x_shape).astype(np.float32)

  @fast_jit
  def both(params, x):
    module = nnx.merge(graphdef, params)  # idiomatic NNX call, traced
    return (module(x, capture=True), net.apply(params, x, capture=True),
            adapter.apply(adapter_params, x))

  (y, inter), (y_f, inter_f), y_adapter = both(params, x)
  np.testing.assert_allclose(y, y_f, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(y_adapter, y_f, rtol=1e-6, atol=1e-6)
  assert sorted(inter) == sorted(inter_f)
  for key in inter_f:
    np.testing.assert_allclose(inter[key], inter_f[key], rtol=1e-6, atol=1e-6)


def test_nnx_takes_jaxinit_initializers():
  build = lambda: jnnx.MLP(3, 2, width=8, depth=3, kernel_init=jaxinit.zeros,  # noqa: E731
                           hidden_init=jaxinit.orthogonal(),
                           readout_init=jaxinit.constant(0.5), bias_init=jaxinit.ones,
                           rngs=nnx.Rngs(0))
  p = fast_jit(lambda: jnnx.params_of(build()))()
  np.testing.assert_array_equal(p["input"]["kernel"], 0.0)
  np.testing.assert_array_equal(p["readout"]["kernel"], 0.5)
  np.testing.assert_array_equal(p["hidden"]["bias"], 1.0)
  kernels = p["hidden"]["kernel"]  # one orthogonal 8x8 draw per stacked layer
  np.testing.assert_allclose(jnp.einsum("lij,lik->ljk", kernels, kernels),
                             jnp.broadcast_to(jnp.eye(8), (2, 8, 8)), atol=1e-5)
  assert not np.allclose(kernels[0], kernels[1])
  # Defaults: He-normal kernels and zero biases, as the functional networks.
  default = nnx.eval_shape(lambda: jnnx.MLP(3, 2, width=8, depth=3, rngs=nnx.Rngs(0)))
  assert default.spec == MLP(3, 2, 8, 3)
