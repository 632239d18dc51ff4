"""DKS and TAT: every case of DeepMind's dks test file, and the conditions themselves.

Golden values: google-deepmind/dks, ``tests/test_activation_transform.py`` at commit
c9cf37b ("Improved handling of dks_params and tat_params arguments"):
``test_parameter_computation`` (ResNet-101-shaped subnetwork: blocks 3, 4, 23, 3,
shortcut weight 0.6; DKS ``c_slope_1_target`` 1.2, TAT ``c_val_0_target`` 0.75,
``c_curve_target`` 0.2) and ``_run_value_tests`` (DKS ``c_slope_1_target`` 12,
``local_q_slope_target`` 0.97; TAT ``c_val_0_target`` 0.95, ``c_curve_target`` 4.5;
transformed activations at x = 0.6 and -0.6). dks's ``"gelu"`` is the tanh
approximation (jaxinit's ``"gelu_tanh"``), its ``"gelu_exact"`` jaxinit's ``"gelu"``.

dks's searches stop at |f - target| < 1e-8 (local targets) and at hybr's relative
step 1.5e-8, so its values carry relative errors up to ~1.5e-8; ours are solved to
rounding, and agree to 1e-6 except for ReLU. There dks integrates ``relu'(a z + 1)^2``,
a step function, with one 100000-node Gauss-Legendre rule on [-10, 10], which is
first-order accurate: at dks's ``input_scale`` the closed form gives ``C'(1)`` 4.6e-7
below the target. The ReLU case is therefore checked against the closed form (to
1e-12) and against dks's values within that integration error.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize, stats

from jaxinit import theory

NAMES = {"softplus": "softplus", "tanh": "tanh", "relu": "relu", "leaky_relu": "leaky_relu",
         "gelu": "gelu_tanh", "gelu_exact": "gelu"}   # dks name -> jaxinit family

# test_parameter_computation
GOLDEN_PARAMS = {
    ("DKS", "softplus"): {"input_scale": 0.18761008168267976,
                          "input_shift": 0.40688063442262007,
                          "output_shift": -0.9213466151411376,
                          "output_scale": 8.878672543665223},
    ("DKS", "tanh"): {"input_scale": 0.07461073057540868,
                      "input_shift": 0.5566915199964182,
                      "output_shift": -0.5034378768692127,
                      "output_scale": 18.002635964442558},
    ("DKS", "relu"): {"input_shift": 1.0,
                      "input_scale": 0.3685360046708044,
                      "output_shift": -1.000373858553784,
                      "output_scale": 2.721729988761473},
    ("DKS", "leaky_relu"): {"negative_slope": 0.8761257073473065,
                            "input_shift": -6.372924855154692e-13,
                            "output_shift": -0.049418692997275034,
                            "output_scale": 1.0651832705682147},
    ("TAT", "softplus"): {"input_scale": 0.15011489794748328,
                          "input_shift": 0.5374599901127068,
                          "output_shift": -0.996481014465811,
                          "output_scale": 10.54880187880574},
    ("TAT", "tanh"): {"input_scale": 0.0580205218578313,
                      "input_shift": 0.5218639804099805,
                      "output_shift": -0.4796430704354356,
                      "output_scale": 22.36066261763117},
    ("TAT", "leaky_relu"): {"output_scale": 1.196996549778802,
                            "negative_slope": 0.6291800290346146},
    ("DKS", "gelu"): {"input_scale": 0.07036271496383567,
                      "input_shift": 0.2586837248593587,
                      "output_shift": -0.15758328114374964,
                      "output_scale": 20.249573305194307},
    ("DKS", "gelu_exact"): {"input_scale": 0.07043253126531114,
                            "input_shift": 0.259489297927707,
                            "output_shift": -0.15815378961903598,
                            "output_scale": 20.21158902315857},
}

# _run_value_tests: (phi(0.6), phi(-0.6))
GOLDEN_VALUES = {
    ("DKS", "softplus"): (0.5205088334781294, -0.6970897398761904),
    ("DKS", "tanh"): (0.6910746968773931, -0.5122335409369118),
    ("DKS", "relu"): (0.6053339463256114, -0.6486764456443863),
    ("DKS", "leaky_relu"): (0.5628988987673328, -0.6649764416535503),
    ("TAT", "softplus"): (0.6923574763139374, -0.4935166367766701),
    ("TAT", "tanh"): (0.6860178437500071, -0.49030275427738146),
    ("TAT", "leaky_relu"): (0.7954047194402861, -0.2955187511683813),
    ("TAT", "gelu"): (0.6922557817568101, -0.491992384704867),
    ("TAT", "gelu_exact"): (0.6922429517529013, -0.49198103131465193),
}
GOLDEN_UNTRANSFORMED = {"tanh": (0.5370495669980353, -0.5370495669980353),
                        "softplus": (1.0374879504858856, 0.4374879504858857),
                        "relu": (0.6, 0.0), "leaky_relu": (0.6, -0.006)}

NETWORK = theory.resnet((3, 4, 23, 3), shortcut_weight=0.6)


def dks_subnet_max(x, r, w=0.6):
  """dks's test function ``_subnet_max_func`` (its definition of the subnetworks), rewritten."""
  branch_alone = r(r(r(x)))
  for blocks in (3, 4, 23, 3):
    for j in range(blocks):
      x = w * w * (r(x) if j == 0 else x) + (1 - w * w) * r(r(r(x)))
  return max(r(x), branch_alone)


def transform(method, name, *, values=False):
  family = NAMES[name]
  if method == "DKS":
    kwargs = dict(c_slope_1=12.0, q_slope_1=0.97) if values else dict(c_slope_1=1.2)
    return theory.dks(family, NETWORK, **kwargs)
  kwargs = dict(c_val_0=0.95, c_curve=4.5) if values else dict(c_val_0=0.75, c_curve=0.2)
  return theory.tat(family, NETWORK, **kwargs)


@pytest.fixture(scope="module")
def x64():
  with jax.enable_x64(True):
    yield


def test_network_description_matches_dks_subnetwork_function():
  """Our ResNet and subnetworks give dks's maximal slope, curvature and C(0) functions."""
  for s in (1.001, 1.01, 1.1):
    ours = max(theory.c_map_derivatives(n, s)[0] for n in theory.subnetworks(NETWORK))
    assert ours == pytest.approx(dks_subnet_max(1.0, lambda y, s=s: s * y), rel=1e-13)
  for k in (0.001, 0.1):
    ours = max(theory.c_map_derivatives(n, 1.0, k)[1] for n in theory.subnetworks(NETWORK))
    assert ours == pytest.approx(dks_subnet_max(0.0, lambda y, k=k: y + k), rel=1e-13)
  local = lambda c: 0.5 + 0.5 * c * c  # noqa: E731 - any map with C(1) = 1
  ours = max(theory.composed_c_map(n, local, 0.0) for n in theory.subnetworks(NETWORK))
  assert ours == pytest.approx(dks_subnet_max(0.0, local), rel=1e-13)


@pytest.mark.parametrize("method, name", list(GOLDEN_PARAMS))
def test_parameters_match_dks(method, name):
  phi = transform(method, name)
  golden = GOLDEN_PARAMS[method, name]
  tolerance = {"input_scale": 1e-5, "output_scale": 1e-4} if name == "relu" else {}
  errors = {}
  for key, value in golden.items():
    errors[key] = abs(getattr(phi, key) - value)
    assert errors[key] <= tolerance.get(key, 1e-6), (method, name, key, getattr(phi, key), value)
  print(method, name, "max |ours - dks|", max(errors.values()))


@pytest.mark.parametrize("values", [False, True])
def test_relu_parameters_are_exact_by_the_closed_form(values):
  """relu(a z + b), t = b / a: E = a (t Phi + phi), E[relu^2] = a^2 ((t^2 + 1) Phi + t phi)."""
  shift = 1.0      # while the local slope is below 1 / (1 - 1 / pi), its supremum for b > 0

  def moments(a):
    t = shift / a
    cdf, pdf = stats.norm.cdf(t), stats.norm.pdf(t)
    m1, m2 = a * (t * cdf + pdf), a * a * ((t * t + 1) * cdf + t * pdf)
    return a * a * cdf / (m2 - m1 * m1), m1, m2

  local = theory.local_c_slope_target(NETWORK, 12.0 if values else 1.2)
  assert local < 1 / (1 - 1 / math.pi)
  a = optimize.brentq(lambda a: moments(a)[0] - local, 0.01, 10, xtol=1e-16, rtol=1e-15)
  _, m1, m2 = moments(a)
  phi = transform("DKS", "relu", values=values)
  assert abs(phi.input_scale - a) < 1e-12 and phi.input_shift == shift
  assert abs(phi.output_shift + m1) < 1e-12
  assert abs(phi.output_scale - 1 / math.sqrt(m2 - m1**2)) < 1e-11
  if not values:   # dks's own input_scale misses the condition by its integration error
    assert abs(moments(GOLDEN_PARAMS["DKS", "relu"]["input_scale"])[0] - local) > 4e-7


@pytest.mark.parametrize("method, name", list(GOLDEN_VALUES))
def test_transformed_values_match_dks_to_5_decimals(method, name):
  """5 decimals (|diff| < 5e-6), except where dks's own error is larger (ReLU, see above).

  tanh is odd: ``-phi(-x)`` (input and output shifts negated) meets the same
  conditions with the same kernel maps. We return the root with ``input_shift
  >= 0``, as dks's parameter test holds; its value test holds the mirror image
  (``phi(0.6)`` and ``-phi(-0.6)`` swapped), so for tanh both are accepted.
  """
  phi = transform(method, name, values=True)
  golden = np.array(GOLDEN_VALUES[method, name])
  got = np.asarray(phi(jnp.array([0.6, -0.6], jnp.float32)), np.float64)
  if name == "tanh" and abs(got[0] - golden[0]) > 1e-3:
    golden = -golden[::-1]
  np.testing.assert_allclose(got, golden, atol=2e-5 if name == "relu" else 5e-6)
  with jax.enable_x64(True):   # the float64 values, closer still
    exact = np.asarray(phi(jnp.array([0.6, -0.6], jnp.float64)))
  print(method, name, "max |ours - dks|", np.abs(exact - golden).max())


@pytest.mark.parametrize("name", list(GOLDEN_UNTRANSFORMED))
def test_untransformed_values_match_dks(name):
  phi = theory.TransformedActivation(NAMES[name])   # the identity transformation
  got = np.asarray(phi(jnp.array([0.6, -0.6], jnp.float32)), np.float64)
  np.testing.assert_allclose(got, GOLDEN_UNTRANSFORMED[name], atol=5e-7)


@pytest.mark.parametrize("method, name", [("DKS", "softplus"), ("DKS", "leaky_relu"),
                                          ("TAT", "tanh"), ("TAT", "gelu")])
def test_solutions_meet_their_conditions(method, name):
  phi = transform(method, name)
  m = theory.local_maps(phi)
  assert abs(m.q_value_1 - 1) < 1e-12
  if method == "DKS":
    assert abs(m.c_value_0) < 1e-12 and abs(m.q_slope_1 - 1) < 1e-10
    network_slope = max(theory.c_map_derivatives(n, m.c_slope_1)[0]
                        for n in theory.subnetworks(NETWORK))
    assert abs(network_slope - 1.2) < 1e-10
  else:
    assert abs(m.q_slope_1 - 1) < 1e-10 and abs(m.c_slope_1 - 1) < 1e-10
    curve = max(theory.c_map_derivatives(n, 1.0, m.c_curve_1)[1]
                for n in theory.subnetworks(NETWORK))
    assert abs(curve - 0.2) < 1e-10


def test_dks_network_c_map_slope_through_the_kernel_engine(x64):
  """An independent check: the general network kernel map with the transformed activation."""
  net = theory.mlp(8)
  phi = theory.dks("tanh", net, c_slope_1=1.5)
  slope = jax.grad(lambda c: theory.network_c_map(net, phi, c))(1.0)
  assert abs(slope - 1.5) < 1e-9
  assert abs(theory.network_q_map(net, phi, 1.0) - 1) < 1e-12         # q is preserved
  assert abs(theory.network_c_map(net, phi, 0.0)) < 1e-12              # C(0) = 0 per layer


def test_tat_leaky_relu_c_map_against_the_arc_cosine_closed_form():
  alpha = 0.3
  r = theory.local_c_map(theory.TransformedActivation(
      "leaky_relu", negative_slope=alpha, output_scale=math.sqrt(2 / (1 + alpha**2))))
  for c in (-1.0, -0.5, 0.0, 0.7, 1.0):
    t = math.acos(c)
    exact = ((1 - alpha)**2 * (math.sqrt(1 - c * c) + (math.pi - t) * c) / math.pi
             + 2 * alpha * c) / (1 + alpha**2)
    assert abs(r(c) - exact) < 1e-13


def test_transformed_activation_in_a_model_under_jit():
  phi = theory.tat("leaky_relu", theory.mlp(4), c_val_0=0.5)
  hash(phi)
  import jaxinit  # pylint: disable=import-outside-toplevel
  net, _ = jaxinit.models.functional(jaxinit.models.MLP.abstract(
      in_features=3, out_features=2, width=8, depth=4, activation=phi,
      kernel_init=jaxinit.variance_scaling(1.0, "fan_in", "normal"), bias_init=jaxinit.zeros))
  params = net.init(jax.random.key(0))
  y = jax.jit(net.apply)(params, jnp.ones((5, 3)))
  assert y.shape == (5, 2) and bool(jnp.all(jnp.isfinite(y)))
  assert theory.TransformedActivation.from_dict(phi.to_dict()) == phi
  # The Flax NNX module, under nnx.jit.
  from flax import nnx  # pylint: disable=import-outside-toplevel
  from jaxinit.models import MLP  # pylint: disable=import-outside-toplevel
  model = MLP(3, 2, width=8, depth=4, activation=phi, rngs=nnx.Rngs(0),
                   kernel_init=jaxinit.variance_scaling(1.0, "fan_in", "normal"),
                   bias_init=jaxinit.zeros)
  y = nnx.jit(lambda m, x: m(x))(model, jnp.ones((5, 3)))
  assert y.shape == (5, 2) and bool(jnp.all(jnp.isfinite(y)))


def test_dks_relu_beyond_the_positive_shift_limit():
  """A local slope above 1 / (1 - 1/pi) needs input_shift = -1 (one layer, zeta = 1.6)."""
  phi = theory.dks("relu", theory.mlp(1), c_slope_1=1.6)
  m = theory.local_maps(phi)
  assert phi.input_shift == -1.0 and phi.input_scale > 0
  assert abs(m.c_slope_1 - 1.6) < 1e-10 and abs(m.q_value_1 - 1) < 1e-12 and abs(m.c_value_0) < 1e-12


def test_bad_requests_are_refused():
  with pytest.raises(ValueError, match="TAT cannot shape a plain ReLU"):
    theory.tat("relu", NETWORK)
  with pytest.raises(ValueError, match="c_slope_1 must be a finite number > 1"):
    theory.dks("tanh", NETWORK, c_slope_1=1.0)
  with pytest.raises(ValueError, match="did you mean 'softplus'"):
    theory.dks("softplsu", NETWORK)
  with pytest.raises(ValueError, match="out of reach"):
    theory.tat("leaky_relu", theory.mlp(1), c_val_0=0.99)
  with pytest.raises(ValueError, match="q-preserving"):
    theory.dks("tanh", theory.mlp(3, weight_variance=2.0))
  with pytest.raises(ValueError, match="negative_slope is only accepted"):
    theory.TransformedActivation("tanh", negative_slope=0.1)


def test_readme_example_runs_and_shapes_the_network():
  """The README's DKS/TAT snippet, as written, then the C-map it promises (TAT: C_f(0) = 0.9).

  (Initializing its 100 orthogonal layers takes long; a small model with the
  transformed activation is run under jit above.)
  """
  import pathlib  # pylint: disable=import-outside-toplevel
  import jaxinit  # pylint: disable=import-outside-toplevel
  readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
  snippet = next(block.split("```")[0] for block in readme.split("```python\n")[1:]
                 if "theory.tat(" in block)
  scope = {"jaxinit": jaxinit}
  exec(snippet, scope)  # noqa: S102 - our own README
  phi, net = scope["phi"], scope["net"]
  assert net.activation is phi and net.depth == 100
  with jax.enable_x64(True):
    assert abs(float(theory.network_c_map(theory.mlp(100), phi, 0.0)) - 0.9) < 1e-9
