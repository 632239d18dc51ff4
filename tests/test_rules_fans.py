"""Module-aware fans: a forward pass through each built-in layer keeps E[y^2] / E[x^2] at theory.

For ``y = W x`` with independent zero-mean weights, ``E[y^2] = fan_in Var[w] E[x^2]``
for any input: LeCun (``Var = 1 / fan_in``) gives ratio 1 on any input, He
(``2 / fan_in``) ratio 2 (on a ReLU's output, the pre-activations of the next
layer keep the second moment of the previous ones). Each case averages the
ratio over seeds; the test also checks the standard error over seeds is
below 1.25% so that the 5% tolerance is at least 4 standard errors. Flax's
own defaults miss the theory on ConvLocal, Einsum and
ConvTranspose(transpose_kernel=True): shown at the end.
"""

from __future__ import annotations

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxinit

SEEDS = 8
B = 128  # samples per seed (dense layers)
BC = 12  # images per seed (convolutions: every position is a sample too)


def _moment(x):
  return float(jnp.mean(jnp.square(x)))


def _inputs(seed, shape, relu):
  x = jax.random.normal(jax.random.key(1000 + seed), shape)
  return jax.nn.relu(x) if relu else x


def _check(ratios, theory):
  ratios = np.asarray(ratios)
  mean, se = ratios.mean(), ratios.std(ddof=1) / np.sqrt(len(ratios))
  assert se < 0.0125 * theory, f"sampling error {se:.4f} too large for a 5% test"
  assert abs(mean - theory) < 0.05 * theory, f"ratio {mean:.4f} vs theory {theory}"
  return mean


def _crop(y, k):
  """The interior of a transposed convolution's output (every position gets all taps)."""
  return y[:, k - 1:y.shape[1] - (k - 1), k - 1:y.shape[2] - (k - 1)]


# Each case: (build(seed, rules) -> apply(x), input shape, He (ReLU input) or LeCun).
def _nnx(make, call=None):
  def build(seed, rules):
    model = jaxinit.initialize(nnx.eval_shape(lambda: make(nnx.Rngs(0))), rules, seed)
    return (lambda x: call(model, x)) if call else model
  return build


def _linen(module, x_shape, capture=None, post=lambda y: y):
  def build(seed, rules):
    variables = jaxinit.initialize(module, rules, seed, jnp.zeros(x_shape))
    if capture is None:
      return lambda x: post(module.apply(variables, x))
    return lambda x: _captured(module, variables, x, capture)
  return build


def _captured(module, variables, x, name):
  """(input, output) of the submodule ``name`` during ``module.apply``."""
  found = {}

  def spy(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if context.module.name == name and context.method_name == "__call__":
      found["io"] = (args[0], out)
    return out

  with nn.intercept_methods(spy):
    module.apply(variables, x)
  return found["io"]


@eqx.filter_jit
def _eqx_apply(call, model, x):
  return call(model, x)


def _eqx(make, call):
  template = []

  def build(seed, rules):
    if not template:  # Equinox's own init runs once; the rules redraw every seed
      template.append(make(jax.random.key(0)))
    model = jaxinit.initialize(template[0], rules, seed)
    return lambda x: _eqx_apply(call, model, x)
  return build


LECUN = ("lecun", jaxinit.lecun_normal(), 1.0, False)
# A ReLU input has mean E[x] = 1/sqrt(2 pi): the sums of each unit's weights add
# (sum_i w_ij)^2 E[x]^2 to E[y_j^2], zero on average but noisy; more seeds then.
HE = ("he", jaxinit.he_normal(), 2.0, True)
HE_SEEDS = 16

CASES = {
    "nnx.Linear": (_nnx(lambda r: nnx.Linear(64, 48, rngs=r)), (B, 64), LECUN, nnx.Linear),
    "nnx.LinearGeneral": (_nnx(lambda r: nnx.LinearGeneral((4, 16), (16, 16), axis=(-2, -1),
                                                           rngs=r)), (B, 4, 16), HE,
                          nnx.LinearGeneral),
    "nnx.Einsum": (_nnx(lambda r: nnx.Einsum("bti,ihd->bthd", (64, 4, 16), rngs=r)),
                   (B, 8, 64), LECUN, nnx.Einsum),
    "nnx.Conv(groups=4)": (_nnx(lambda r: nnx.Conv(16, 256, (3, 3), feature_group_count=4,
                                                   padding="VALID", rngs=r)),
                           (BC, 10, 10, 16), HE, nnx.Conv),
    "nnx.ConvTranspose": (_nnx(lambda r: nnx.ConvTranspose(8, 256, (3, 3), padding="VALID",
                                                           rngs=r), lambda m, x: _crop(m(x), 3)),
                          (BC, 10, 10, 8), HE, nnx.ConvTranspose),
    "nnx.ConvTranspose(transpose_kernel)": (
        _nnx(lambda r: nnx.ConvTranspose(8, 32, (3, 3), padding="VALID", transpose_kernel=True,
                                         rngs=r), lambda m, x: _crop(m(x), 3)),
        (BC, 10, 10, 8), LECUN, nnx.ConvTranspose),
    "nnx.ConvTranspose(stride=2)": (
        _nnx(lambda r: nnx.ConvTranspose(16, 256, (4, 4), strides=2, padding="VALID", rngs=r),
             lambda m, x: _crop(m(x), 4)), (BC, 8, 8, 16), HE, nnx.ConvTranspose),
    "nnx.MultiHeadAttention.query": (
        _nnx(lambda r: nnx.MultiHeadAttention(4, 64, qkv_features=256, decode=False, rngs=r),
             lambda m, x: m.query(x)), (B, 64), HE, nnx.MultiHeadAttention),
    "nnx.MultiHeadAttention.out": (
        _nnx(lambda r: nnx.MultiHeadAttention(4, 64, decode=False, rngs=r),
             lambda m, x: m.out(x)), (B, 4, 16), LECUN, nnx.MultiHeadAttention),
    "linen.Dense": (_linen(nn.Dense(256), (1, 64)), (B, 64), HE, nn.Dense),
    "linen.DenseGeneral": (_linen(nn.DenseGeneral((6, 8), axis=(-2, -1)), (1, 4, 16)),
                           (B, 4, 16), LECUN, nn.DenseGeneral),
    "linen.Einsum": (_linen(nn.Einsum((64, 16, 16), "bti,ihd->bthd"), (1, 8, 64)), (B, 8, 64),
                     HE, nn.Einsum),
    "linen.Conv": (_linen(nn.Conv(32, (3, 3), padding="VALID"), (1, 10, 10, 16)),
                   (BC, 10, 10, 16), LECUN, nn.Conv),
    "linen.ConvTranspose(transpose_kernel)": (
        _linen(nn.ConvTranspose(256, (3, 3), padding="VALID", transpose_kernel=True),
               (1, 10, 10, 8), post=lambda y: _crop(y, 3)), (BC, 10, 10, 8), HE, nn.ConvTranspose),
    "linen.ConvLocal": (_linen(nn.ConvLocal(32, (3, 3), padding="VALID"), (1, 10, 10, 16)),
                        (BC, 10, 10, 16), LECUN, nn.ConvLocal),
    "linen.MultiHeadDotProductAttention.value": (
        _linen(nn.MultiHeadDotProductAttention(num_heads=4), (1, 8, 64), capture="value"),
        (B, 8, 64), LECUN, nn.MultiHeadDotProductAttention),
    "linen.MultiHeadDotProductAttention.out": (
        _linen(nn.MultiHeadDotProductAttention(num_heads=4), (1, 8, 64), capture="out"),
        (B, 8, 64), LECUN, nn.MultiHeadDotProductAttention),
    "eqx.Linear": (_eqx(lambda k: eqx.nn.Linear(64, 256, key=k),
                        lambda m, x: jax.vmap(m)(x)), (B, 64), HE, eqx.nn.Linear),
    "eqx.Conv2d(groups=2)": (_eqx(lambda k: eqx.nn.Conv2d(16, 64, 3, groups=2, key=k),
                                 lambda m, x: jax.vmap(m)(x)), (BC, 16, 10, 10), LECUN,
                             eqx.nn.Conv),
    "eqx.ConvTranspose2d": (
        _eqx(lambda k: eqx.nn.ConvTranspose2d(8, 256, 3, key=k),
             lambda m, x: jax.vmap(m)(x)[:, :, 2:-2, 2:-2]), (BC, 8, 10, 10), HE,
        eqx.nn.ConvTranspose),
    "eqx.MultiheadAttention.query_proj": (
        _eqx(lambda k: eqx.nn.MultiheadAttention(4, 64, key=k),
             lambda m, x: jax.vmap(m.query_proj)(x)), (B, 64), LECUN, eqx.nn.MultiheadAttention),
}


@pytest.mark.parametrize("name", list(CASES))
def test_forward_second_moment_ratio_is_at_theory(name):
  build, x_shape, (_, init, theory, relu), cls = CASES[name]
  rules = jaxinit.RuleSet.of([(cls, init)], default=jaxinit.zeros)
  ratios = []
  for seed in range(HE_SEEDS if relu else SEEDS):
    apply = build(seed, rules)
    x = _inputs(seed, x_shape, relu)
    out = apply(x)
    x, y = out if isinstance(out, tuple) else (x, out)
    ratios.append(_moment(y) / _moment(x))
  _check(ratios, theory)


@pytest.mark.parametrize("framework", ["nnx", "linen", "eqx"])
def test_embedding_rows_have_unit_norm_with_lecun(framework):
  """Embed's fan-in is its feature axis: LeCun gives E|e|^2 = 1 = |one-hot|^2."""
  norms = []
  for seed in range(SEEDS):
    rules = [({"nnx": nnx.Embed, "linen": nn.Embed, "eqx": eqx.nn.Embedding}[framework],
              jaxinit.lecun_normal())]
    if framework == "nnx":
      table = jaxinit.initialize(nnx.eval_shape(lambda: nnx.Embed(500, 64, rngs=nnx.Rngs(0))),
                                 rules, seed).embedding[...]
    elif framework == "linen":
      table = jaxinit.initialize(nn.Embed(500, 64), rules, seed,
                                 jnp.zeros((1,), jnp.int32))["params"]["embedding"]
    else:
      table = jaxinit.initialize(eqx.nn.Embedding(500, 64, key=jax.random.key(0)), rules,
                                 seed).weight
    norms.append(float(jnp.mean(jnp.sum(table**2, axis=-1))))
  _check(norms, 1.0)


@pytest.mark.filterwarnings("ignore:rules that serve no parameter.*RMSNorm', 'bias'")
@pytest.mark.parametrize("cls", [nnx.LayerNorm, nnx.RMSNorm])
def test_norm_scale_is_the_module_weight_and_bias_its_other_param(cls):
  model = jaxinit.initialize(nnx.eval_shape(lambda: cls(32, rngs=nnx.Rngs(0))),
                             [(cls, jaxinit.ones), ((cls, "bias"), jaxinit.zeros)], 0,
                             strict=cls is nnx.LayerNorm)
  x = 3.0 * jax.random.normal(jax.random.key(0), (64, 32))
  assert abs(_moment(model(x)) - 1.0) < 1e-3


def test_flax_defaults_are_wrong_where_the_issue_says():
  """Flax's own kernel_init on ConvLocal, Einsum and ConvTranspose(transpose_kernel=True)."""
  x = jax.random.normal(jax.random.key(0), (BC, 10, 10, 16))
  # ConvLocal: 8x8 output positions counted as receptive field -> 64x too small.
  local = nn.ConvLocal(32, (3, 3), padding="VALID")
  flax_ratio = _moment(local.apply(local.init(jax.random.key(1), x), x)) / _moment(x)
  ours = local.apply(jaxinit.initialize(local, [(nn.ConvLocal, jaxinit.lecun_normal())], 1, x),
                     x)
  assert 0.5 / 64 < flax_ratio < 2.0 / 64
  assert abs(_moment(ours) / _moment(x) - 1.0) < 0.1
  # Einsum 'bti,ihd->bthd', kernel (8, 4, 16): Flax's fan_in 4 * 8 = 32, the true one 8.
  assert jaxinit.rules.einsum_fans("bti,ihd->bthd", (8, 4, 16)) == (8, 64)
  xe = jax.random.normal(jax.random.key(0), (64, 8, 8))
  flax_einsum = [nn.Einsum((8, 4, 16), "bti,ihd->bthd"),
                 nnx.Einsum("bti,ihd->bthd", (8, 4, 16), rngs=nnx.Rngs(0))]
  v = flax_einsum[0].init(jax.random.key(2), xe)
  assert abs(_moment(flax_einsum[0].apply(v, xe)) / _moment(xe) - 0.25) < 0.08
  assert abs(_moment(flax_einsum[1](xe)) / _moment(xe) - 0.25) < 0.08
  # ConvTranspose(transpose_kernel=True), 8 -> 32 channels: Flax's fan_in counts the 32
  # outputs instead of the 8 inputs -> 4x too small.
  xt = jax.random.normal(jax.random.key(0), (BC, 10, 10, 8))
  ct = nnx.ConvTranspose(8, 32, (3, 3), padding="VALID", transpose_kernel=True, rngs=nnx.Rngs(0))
  assert abs(_moment(_crop(ct(xt), 3)) / _moment(xt) - 0.25) < 0.05


def test_user_modules_declare_their_fans():
  class Bilinear(nnx.Module):
    """y_k = sum_ij x_i z_j W_ijk: fan_in = n1 * n2."""

    def __init__(self, n1, n2, out, rngs):
      self.w = nnx.Param(jnp.zeros((n1, n2, out)))

    def jaxinit_fans(self, name, shapes):
      n1, n2, out = shapes["w"][-3:]
      return jaxinit.rules.Fans(n1 * n2, out, stack=len(shapes["w"]) - 3) if name == "w" else None

    def __call__(self, x, z):
      return jnp.einsum("bi,bj,ijk->bk", x, z, self.w[...])

  ratios = []
  for seed in range(SEEDS):
    model = jaxinit.initialize(Bilinear(16, 16, 64, nnx.Rngs(0)), [("w", jaxinit.lecun_normal())],
                               seed)
    x, z = _inputs(seed, (B, 16), False), _inputs(seed + 50, (B, 16), False)
    ratios.append(_moment(model(x, z)) / (_moment(x) * _moment(z)))
  _check(ratios, 1.0)
