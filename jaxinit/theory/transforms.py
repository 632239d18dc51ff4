r"""Deep Kernel Shaping and Tailored Activation Transformations: activations shaped for a network.

A transformed activation ``phi_hat(x) = output_scale * (phi(input_scale * x + input_shift) +
output_shift)`` (for leaky ReLU also its ``negative_slope``) is chosen so that a
given network, with weights of variance ``1 / fan_in`` (orthogonal or Gaussian)
and zero biases, has a C-map close to the identity however deep it is: then a
plain network (no skips, no normalization) trains like a residual one.

Every nonlinear layer's *local* maps are taken at ``q = 1`` over ``z ~ N(0, 1)``:
``Q(1) = E[phi_hat(z)^2]``, ``Q'(1) = E[phi_hat(z) phi_hat'(z) z]``,
``C(0) = E[phi_hat(z)]^2 / Q(1)``, ``C'(1) = E[phi_hat'(z)^2] / Q(1)`` and
``C''(1) = E[phi_hat''(z)^2] / Q(1)``. The network's C-map composes them
(:mod:`jaxinit.theory.network`), and the conditions hold for the maximum over
its :func:`~jaxinit.theory.subnetworks`:

* **DKS** (Martens et al. 2021, "Rapid training of deep neural networks
  without skip connections or normalization layers using Deep Kernel
  Shaping"): ``Q(1) = 1``, ``C(0) = 0`` (``output_shift = -E[phi]``),
  ``Q'(1) = q_slope_1`` (1 in the paper) and the network's ``C_f'(1) =
  c_slope_1`` (``zeta``; local slope solved from the maximal slope
  function). Unknowns: ``input_scale`` and ``input_shift``; ReLU, positively
  homogeneous, keeps ``input_shift = +-1`` (``+1`` while the local slope
  target is below ``1 / (1 - 1/pi)`` = 1.4669..., the supremum reachable with
  a positive shift) and solves the slope alone; leaky ReLU solves
  ``negative_slope`` and ``input_shift`` (its ``input_scale`` is redundant).
* **TAT** (Zhang et al. 2022, "Deep learning without shortcuts: shaping the
  kernel with tailored rectifiers"): for leaky ReLU, ``negative_slope`` with
  the network's ``C_f(0) = c_val_0`` (``eta``) and ``output_scale =
  sqrt(2 / (1 + negative_slope^2))``; for smooth activations ``Q(1) = 1``,
  ``Q'(1) = 1``, ``C'(1) = 1`` and the network's ``C_f''(1) = c_curve``
  (``tau``), solving ``input_scale``, ``input_shift``, ``output_shift``.
  Plain ReLU cannot meet them (use leaky ReLU).

The defaults (``zeta = 1.5``, ``eta = 0.9``, ``tau = 0.3``, ``q_slope_1 = 1``)
are those of DeepMind's reference implementation (the ``dks`` package). Where
the local conditions have several roots, the one with ``input_scale > 0`` and
the smallest ``input_scale * output_scale`` (the gentlest slope of
``phi_hat``) is returned, ``input_shift >= 0`` between the mirror images of an
odd activation; for TAT, roots with ``input_scale * output_scale >= 2`` are
excluded (the reference implementation found their Q-maps unstable). That is
the root dks's tests hold: its golden parameters are reproduced to 6e-7 (the
reference's own searches stop at ``|f - target| < 1e-8``; these roots are
solved to rounding), except ReLU's, where dks's single Gauss-Legendre rule
over the step function ``relu'`` is off by 5e-5 and ours match the closed
form to 1e-12.

Use with :class:`jaxinit.models.MLP` (weights ``variance_scaling(1, "fan_in",
...)`` or ``orthogonal()``, zero biases, inputs with ``x . x / n = 1``)::

    phi = theory.tat("leaky_relu", theory.mlp(depth))
    net = jaxinit.models.MLP(in_features, out_features, width, depth, activation=phi,
                             kernel_init=jaxinit.orthogonal(), bias_init=jaxinit.zeros, rngs=0)

A :class:`TransformedActivation` is a frozen, hashable callable (a static
argument under ``jit``; Flax modules take it as their activation) with a JSON
form (:meth:`TransformedActivation.to_dict`).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit import _quadrature as quad
from jaxinit import checks
from jaxinit.gains import ACTIVATIONS
from jaxinit.theory import _engine as eng
from jaxinit.theory.kernels import elementwise
from jaxinit.theory.network import (Block, _block, c_map_derivatives, composed_c_map,
                                    subnetworks)

Array = jax.Array

FAMILIES = tuple(sorted(name for name in ACTIVATIONS if name != "linear"))
"""Activation families that can be transformed: the names of :data:`jaxinit.gains.ACTIVATIONS`
but ``"linear"``."""

_NODES = 64               # split Gauss-Legendre nodes per side (1-D local maps)
_NODES_2D = 32            # polar nodes for local C-map values
_RELU_SLOPE_LIMIT = 1 / (1 - 1 / math.pi)   # sup of C'(1) for relu(a z + 1)
_TAT_MAX_GAIN = 2.0       # TAT roots with input_scale * output_scale >= 2 are excluded
_TOL = 1e-10              # residual of an accepted root


# ----------------------------------------------------------------------------
# The transformed activation.

def _base(activation: str, negative_slope: Any = None) -> Callable[[Array], Array]:
  if activation == "leaky_relu":
    return lambda x: jnp.where(x >= 0, x, negative_slope * x)
  return ACTIVATIONS[activation]


@dataclasses.dataclass(frozen=True)
class TransformedActivation:
  """``output_scale * (phi(input_scale * x + input_shift) + output_shift)``.

  Attributes:
    activation: the family, a name of :data:`jaxinit.gains.ACTIVATIONS`.
    input_scale: multiplies the input.
    input_shift: added to the scaled input.
    output_shift: added to ``phi``'s output.
    output_scale: multiplies the shifted output.
    negative_slope: leaky ReLU's slope below 0 (``None`` for other families).

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxinit import theory
    >>> phi = theory.TransformedActivation("leaky_relu", negative_slope=0.5, output_scale=2.0)
    >>> phi(jnp.array([-1.0, 1.0])).tolist()
    [-1.0, 2.0]
    >>> theory.TransformedActivation.from_dict(phi.to_dict()) == phi
    True
  """
  activation: str
  input_scale: float = 1.0
  input_shift: float = 0.0
  output_shift: float = 0.0
  output_scale: float = 1.0
  negative_slope: float | None = None

  def __post_init__(self) -> None:
    checks.choice("activation", self.activation, FAMILIES)
    for name in ("input_scale", "input_shift", "output_shift", "output_scale"):
      object.__setattr__(self, name, checks.real(name, getattr(self, name)))
    if self.activation == "leaky_relu":
      slope = 0.01 if self.negative_slope is None else self.negative_slope
      object.__setattr__(self, "negative_slope", checks.real("negative_slope", slope))
    elif self.negative_slope is not None:
      raise ValueError(f"negative_slope is only accepted for 'leaky_relu', not for "
                       f"{self.activation!r}")

  def __call__(self, x: Array) -> Array:
    phi = _base(self.activation, self.negative_slope)
    return self.output_scale * (phi(self.input_scale * x + self.input_shift) + self.output_shift)

  @property
  def __name__(self) -> str:  # how errors and the theory name it
    return f"transformed {self.activation}"

  def to_dict(self) -> dict[str, Any]:
    """A JSON-able dict (:meth:`from_dict` rebuilds it)."""
    return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

  @classmethod
  def from_dict(cls, spec: dict[str, Any]) -> TransformedActivation:
    """The activation :meth:`to_dict` described."""
    return cls(**spec)


# ----------------------------------------------------------------------------
# Local maps at q = 1.

class LocalMaps(NamedTuple):
  """One nonlinear layer's maps at ``q = 1`` (see the module docstring)."""
  q_value_1: Array
  """``Q(1) = E[phi(z)^2]``."""
  q_slope_1: Array
  """``Q'(1) = E[phi(z) phi'(z) z]``."""
  c_value_0: Array
  """``C(0) = E[phi(z)]^2 / Q(1)``."""
  c_slope_1: Array
  """``C'(1) = E[phi'(z)^2] / Q(1)``."""
  c_curve_1: Array
  """``C''(1) = E[phi''(z)^2] / Q(1)``."""


class _Moments(NamedTuple):
  """Moments of ``g(z) = phi(a z + b)``, ``z ~ N(0, 1)`` (derivatives in ``z``)."""
  mean: Array           # E[g]
  square: Array         # E[g^2]
  g_dg_z: Array         # E[g g' z]
  dg_z: Array           # E[g' z]
  dg2: Array            # E[g'^2]
  ddg2: Array           # E[g''^2]


def _moments(activation: str, a: Array, b: Array, alpha: Array,
             curvature: bool = True) -> _Moments:
  """One pass of split quadrature at the kink ``z = -b / a`` (``E[g''^2]`` only with ``curvature``)."""
  phi = _base(activation, alpha)
  g = lambda z: phi(a * z + b)  # noqa: E731
  dg = elementwise(jax.grad(g))
  ddg = elementwise(jax.grad(jax.grad(g))) if curvature else jnp.zeros_like

  def integrand(z):
    v, d1, d2 = g(z), dg(z), ddg(z)
    return _Moments(v, v * v, v * d1 * z, d1 * z, d1 * d1, d2 * d2)

  return quad.split_normal_expectation(integrand, -b / a, _NODES)


def _maps(m: _Moments, c: Array, s: Array) -> LocalMaps:
  """The local maps of ``s (g + c)`` from the moments of ``g``."""
  q1 = s * s * (m.square + 2 * c * m.mean + c * c)
  mean = s * (m.mean + c)
  return LocalMaps(q1, s * s * (m.g_dg_z + c * m.dg_z), mean * mean / q1,
                   s * s * m.dg2 / q1, s * s * m.ddg2 / q1)


def _unit_scale(m: _Moments, c: Array) -> Array:
  """The output scale giving ``Q(1) = 1``."""
  return 1 / jnp.sqrt(m.square + 2 * c * m.mean + c * c)


def _local(activation: str, a: Array, b: Array, c: Array, s: Array, alpha: Array) -> LocalMaps:
  return _maps(_moments(activation, a, b, alpha), c, s)


def local_maps(phi: TransformedActivation) -> LocalMaps:
  """The local maps of a transformed activation at ``q = 1`` (float64 on the host).

  Examples:
    >>> from jaxinit import theory
    >>> m = theory.local_maps(theory.TransformedActivation("relu", output_scale=2**0.5))
    >>> [round(float(v), 6) for v in m]        # He: Q(1) = 1, C(0) = 1 / pi
    [1.0, 1.0, 0.31831, 1.0, 0.0]
  """
  if not isinstance(phi, TransformedActivation):
    raise TypeError(f"phi must be a TransformedActivation, got {type(phi).__name__}")
  with jax.enable_x64(True):
    out = _jitted_local(phi.activation)(*(np.float64(v) for v in (
        phi.input_scale, phi.input_shift, phi.output_shift, phi.output_scale,
        0.0 if phi.negative_slope is None else phi.negative_slope)))
    return LocalMaps(*(float(v) for v in out))


@functools.lru_cache(maxsize=None)
def _jitted_local(activation: str) -> Callable[..., LocalMaps]:
  return jax.jit(functools.partial(_local, activation))


@functools.lru_cache(maxsize=None)
def _jitted_c_map(activation: str) -> Callable[..., Array]:
  """``C(c)`` of ``s (phi(a z + b) + c0)`` at ``q = 1`` (polar rule: exact for kinks at 0)."""
  def c_map(a, b, c0, s, alpha, c):
    phi = _base(activation, alpha)
    f = lambda u: s * (phi(a * u + b) + c0)  # noqa: E731
    cross = quad.polar_gaussian_expectation(lambda u1, u2: f(u1) * f(u2), 1.0, 1.0, c,
                                            _NODES_2D, _NODES_2D)
    return cross / _local(activation, a, b, c0, s, alpha).q_value_1
  return jax.jit(c_map)


def local_c_map(phi: TransformedActivation) -> Callable[[float], float]:
  """The C-map ``c -> E[phi(u1) phi(u2)] / Q(1)`` of one layer at ``q = 1``, as a host function.

  Polar quadrature split at the kink rays: exact (to 1e-13) for smooth
  families and for kinked ones without an input shift; with a shift (DKS's
  ReLU), whose kink is off the rays, it converges only algebraically.

  Examples:
    >>> from jaxinit import theory
    >>> r = theory.local_c_map(theory.TransformedActivation("relu"))
    >>> round(r(0.0), 6)           # the arc-cosine kernel: 1 / pi
    0.31831
  """
  fn = _jitted_c_map(phi.activation)
  args = (phi.input_scale, phi.input_shift, phi.output_shift, phi.output_scale,
          0.0 if phi.negative_slope is None else phi.negative_slope)

  def c_map(c: float) -> float:
    with jax.enable_x64(True):
      return float(fn(*args, c))
  return c_map


# ----------------------------------------------------------------------------
# Network targets.

def _max_over_subnetworks(network: Block, fn: Callable[[Block], float]) -> float:
  return max(fn(net) for net in subnetworks(network))


def local_c_slope_target(network: Block, c_slope_1: float) -> float:
  """DKS: the local ``C'(1)`` whose network maximum over subnetworks is ``c_slope_1``.

  The maximal slope function ``s -> max_f C_f'(1)`` is increasing in the
  local slope ``s``; its root is found by bisection to the last bit.

  Examples:
    >>> from jaxinit import theory
    >>> round(theory.local_c_slope_target(theory.mlp(10), 1.5), 12) == round(1.5 ** 0.1, 12)
    True
  """
  network = _block("network", network)
  target = checks.real("c_slope_1", c_slope_1, minimum=1.0, exclusive_minimum=True)
  return eng.bisect(lambda s: _max_over_subnetworks(
      network, lambda net: c_map_derivatives(net, s, 0.0)[0]) - target, 1.0, 2.0)


def local_c_curve_target(network: Block, c_curve: float) -> float:
  """TAT (smooth activations): the local ``C''(1)`` giving the network maximum ``c_curve``.

  With every local ``C'(1) = 1`` the network's ``C_f''(1)`` is increasing
  (additive) in the local curvature; bisection to the last bit.

  Examples:
    >>> from jaxinit import theory
    >>> round(theory.local_c_curve_target(theory.mlp(10), 0.3), 6)    # 0.3 / 10
    0.03
  """
  network = _block("network", network)
  target = checks.real("c_curve", c_curve, minimum=0.0, exclusive_minimum=True)
  return eng.bisect(lambda k: _max_over_subnetworks(
      network, lambda net: c_map_derivatives(net, 1.0, k)[1]) - target, 0.0, 1.0)


def _leaky_c_map(alpha: float) -> Callable[[float], float]:
  return local_c_map(TransformedActivation("leaky_relu", negative_slope=alpha,
                                           output_scale=math.sqrt(2 / (1 + alpha * alpha))))


def leaky_relu_negative_slope(network: Block, c_val_0: float) -> float:
  """TAT (leaky ReLU): the ``negative_slope`` with network maximum ``C_f(0) = c_val_0``.

  ``C_f(0)`` falls from its ReLU value (slope 0) to 0 (slope 1, linear);
  bisection on the slope to 1e-15.

  Raises:
    ValueError: the network is too shallow to reach ``c_val_0`` even with ReLUs.

  Examples:
    >>> import math
    >>> from jaxinit import theory
    >>> a = theory.leaky_relu_negative_slope(theory.mlp(1), 0.2)
    >>> round(a, 6), round((1 - a)**2 / math.pi / (1 + a * a), 12)   # one layer's C(0)
    (0.192745, 0.2)
  """
  network = _block("network", network)
  target = checks.real("c_val_0", c_val_0, minimum=0.0, maximum=1.0)

  def shortfall(alpha: float) -> float:
    local = _leaky_c_map(alpha)
    return target - _max_over_subnetworks(network, lambda net: composed_c_map(net, local, 0.0))

  if shortfall(0.0) > 0:
    raise ValueError(f"c_val_0 = {target} is out of reach: even ReLUs (negative_slope 0) give "
                     f"C_f(0) = {target - shortfall(0.0):.6g} for this network; use a smaller "
                     "c_val_0 or a deeper network")
  lo, hi = 0.0, 1.0
  while hi - lo > 1e-15:
    mid = 0.5 * (lo + hi)
    lo, hi = (mid, hi) if shortfall(mid) < 0 else (lo, mid)
  return 0.5 * (lo + hi)


# ----------------------------------------------------------------------------
# Solving the local conditions.

@functools.lru_cache(maxsize=None)
def _solver(activation: str, method: str) -> Callable[..., Any]:
  """A jitted Levenberg-Marquardt solve, vmapped over starting points.

  ``method`` picks the unknowns ``p`` and how the rest follows from them:

  * ``"dks"``: ``p = (input_scale, input_shift)``; ``output_shift = -E[phi]``;
  * ``"dks_relu"``: ``p = (input_scale,)``, ``input_shift`` given;
  * ``"dks_leaky"``: ``p = (negative_slope, input_shift)``, ``input_scale = 1``;
  * ``"tat"``: ``p = (input_scale, input_shift, output_shift)``;

  ``output_scale`` always gives ``Q(1) = 1``. Targets: ``(Q'(1), C'(1))``
  for DKS (``C'(1)`` alone for ReLU), ``(Q'(1), C'(1), C''(1))`` for TAT.
  """
  def unknowns(p, shift):
    """``(a, b, alpha)`` and, for TAT, the output shift, from the unknowns ``p``."""
    if method == "dks_relu":
      return p[0], shift, 0.0, None
    if method == "dks_leaky":
      return 1.0, p[1], p[0], None
    return p[0], p[1], 0.0, (p[2] if method == "tat" else None)

  def evaluate(p, shift):
    a, b, alpha, c = unknowns(p, shift)
    m = _moments(activation, a, b, alpha, curvature=method == "tat")
    c = -m.mean if c is None else c               # DKS: C(0) = 0
    s = _unit_scale(m, c)                         # Q(1) = 1
    return _maps(m, c, s), jnp.stack([a, b, c, s, alpha])

  def residual(p, shift, targets):
    m = evaluate(p, shift)[0]
    if method == "dks_relu":
      return jnp.stack([m.c_slope_1 - targets[1]])
    values = [m.q_slope_1, m.c_slope_1] + ([m.c_curve_1] if method == "tat" else [])
    return jnp.stack(values) - targets[:len(values)]

  def solve(p0, shift, targets):
    def loss(r):
      return jnp.where(jnp.all(jnp.isfinite(r)), jnp.sum(r * r), jnp.inf)

    def step(_, state):
      p, lam, r = state
      jac = jax.jacfwd(residual)(p, shift, targets)
      normal = jac.T @ jac
      damped = normal + lam * jnp.diag(jnp.diag(normal) + 1e-30)
      new = p - jnp.linalg.solve(damped, jac.T @ r)
      r_new = residual(new, shift, targets)
      better = loss(r_new) < loss(r)
      return (jnp.where(better, new, p), jnp.where(better, lam / 4, lam * 8),
              jnp.where(better, r_new, r))

    r0 = residual(p0, shift, targets)
    p, _, r = jax.lax.fori_loop(0, 200, step, (p0, jnp.asarray(1e-3), r0))
    return p, r, evaluate(p, shift)[1]

  return jax.jit(jax.vmap(solve, in_axes=(0, None, None)))


_STARTS = {
    "dks": [(1.0, 0.1, 0.3, 0.03), (0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0)],
    "dks_relu": [(1.0, 0.3, 0.1, 3.0, 0.03)],
    "dks_leaky": [(0.0, 0.5, 0.9), (0.0, 1.0, -1.0, 0.5, -0.5)],
    "tat": [(1.0, 0.1, 0.3), (0.0, 1.0, -1.0, 0.5, -0.5), (0.0, 1.0, -1.0)],
}


def _solve(activation: str, method: str, targets: tuple[float, ...],
           shift: float = 0.0) -> TransformedActivation:
  """The canonical root (see the module docstring) of the local conditions."""
  starts = np.array(list(itertools.product(*_STARTS[method])), np.float64)
  with jax.enable_x64(True):
    p, r, full = (np.asarray(v) for v in _solver(activation, method)(
        starts, np.float64(shift), np.asarray(targets + (0.0,) * (3 - len(targets)),
                                              np.float64)))
  a, b, c, s, alpha = full.T
  ok = (np.all(np.abs(r) < _TOL, axis=1) & np.all(np.isfinite(full), axis=1) & (a > 0)
        & (s > 0))
  if method == "dks_leaky":
    ok &= (alpha >= 0) & (alpha < 1)
  if method == "tat":
    ok &= a * s < _TAT_MAX_GAIN
  if not ok.any():
    raise ValueError(f"no transformation of {activation} meets the {method.split('_')[0].upper()}"
                     f" conditions {targets} from {len(starts)} starting points; the targets "
                     "may be out of reach for this activation")
  gain = np.where(ok, a * s, np.inf)
  # Smallest gain; between mirror images (equal gains), the non-negative input shift.
  near = ok & (gain <= gain.min() * (1 + 1e-8))
  best = np.flatnonzero(near)[np.argmax(b[near])]
  kwargs = dict(input_scale=float(a[best]), input_shift=float(b[best]),
                output_shift=float(c[best]), output_scale=float(s[best]))
  if method == "dks_leaky":
    kwargs["negative_slope"] = float(alpha[best])
    del kwargs["input_scale"]
  return TransformedActivation(activation, **kwargs)


def _family(activation: Any) -> str:
  return checks.choice("activation", activation, FAMILIES)


def dks(activation: str, network: Block, *, c_slope_1: float = 1.5,
        q_slope_1: float = 1.0) -> TransformedActivation:
  """The DKS transformation of an activation family for a network.

  Conditions (Martens et al. 2021, section 5): ``Q(1) = 1``, ``C(0) = 0``,
  ``Q'(1) = q_slope_1`` per layer (not for ReLU, which lacks the freedom),
  and ``max_f C_f'(1) = c_slope_1`` over the network's subnetworks.

  Args:
    activation: a family in :data:`FAMILIES` (ReLU works but is discouraged
      by the paper: use leaky ReLU).
    network: the network's shape (e.g. :func:`~jaxinit.theory.mlp`,
      :func:`~jaxinit.theory.resnet`), with q-preserving layers.
    c_slope_1: ``zeta > 1``, the network C-map's slope at 1.
    q_slope_1: the local Q-map's slope at 1.

  Returns:
    A :class:`TransformedActivation`.

  Raises:
    ValueError: bad targets, a network that does not keep ``q``, or no root.

  Examples:
    >>> from jaxinit import theory
    >>> phi = theory.dks("softplus", theory.mlp(20))
    >>> m = theory.local_maps(phi)
    >>> [round(v, 9) for v in (m.q_value_1, m.c_value_0, m.q_slope_1)]
    [1.0, 0.0, 1.0]
    >>> round(m.c_slope_1 ** 20, 9)      # the 20-layer network's C-map slope at 1
    1.5
  """
  activation = _family(activation)
  q_slope_1 = checks.real("q_slope_1", q_slope_1, minimum=0.0, exclusive_minimum=True)
  local = local_c_slope_target(network, c_slope_1)
  if activation == "relu":
    shift = 1.0 if local < _RELU_SLOPE_LIMIT else -1.0
    return _solve(activation, "dks_relu", (q_slope_1, local), shift)
  method = "dks_leaky" if activation == "leaky_relu" else "dks"
  return _solve(activation, method, (q_slope_1, local))


def tat(activation: str, network: Block, *, c_val_0: float = 0.9,
        c_curve: float = 0.3) -> TransformedActivation:
  """The TAT transformation of an activation family for a network.

  Leaky ReLU (Zhang et al. 2022, section 4): ``max_f C_f(0) = c_val_0``
  over the network's subnetworks sets ``negative_slope``, and
  ``output_scale = sqrt(2 / (1 + negative_slope^2))`` gives ``Q(1) = 1``.
  Smooth families: ``Q(1) = 1``, ``Q'(1) = 1``, ``C'(1) = 1`` per layer and
  ``max_f C_f''(1) = c_curve``.

  Args:
    activation: a family in :data:`FAMILIES` other than ``"relu"``.
    network: the network's shape, with q-preserving layers.
    c_val_0: ``eta`` in ``[0, 1]`` (leaky ReLU only).
    c_curve: ``tau > 0`` (smooth families only).

  Returns:
    A :class:`TransformedActivation`.

  Raises:
    ValueError: ReLU, bad targets, a network too shallow for ``c_val_0``, no root.

  Examples:
    >>> from jaxinit import theory
    >>> phi = theory.tat("leaky_relu", theory.mlp(50))
    >>> round(phi.negative_slope, 4), round(phi.output_scale, 4)
    (0.4305, 1.2989)
  """
  activation = _family(activation)
  if activation == "relu":
    raise ValueError("TAT cannot shape a plain ReLU (its C-map has no free parameter); use "
                     "'leaky_relu'")
  if activation == "leaky_relu":
    alpha = leaky_relu_negative_slope(network, c_val_0)
    return TransformedActivation("leaky_relu", negative_slope=alpha,
                                 output_scale=math.sqrt(2 / (1 + alpha * alpha)))
  return _solve(activation, "tat", (1.0, 1.0, local_c_curve_target(network, c_curve)))


def transform(method: str, activation: str, network: Block, **targets: float) -> TransformedActivation:
  """:func:`dks` or :func:`tat` by name, for configurations (a sweep's TOML, a study's table).

  Args:
    method: ``"dks"`` or ``"tat"``.
    activation: the family.
    network: the network's shape.
    **targets: the method's keyword targets (``c_slope_1``, ``q_slope_1``;
      ``c_val_0``, ``c_curve``).

  Returns:
    A :class:`TransformedActivation`.

  Examples:
    >>> from jaxinit import theory
    >>> theory.transform("tat", "leaky_relu", theory.mlp(50)) == theory.tat("leaky_relu",
    ...                                                                   theory.mlp(50))
    True
  """
  return {"dks": dks, "tat": tat}[checks.choice("method", method, ("dks", "tat"))](
      activation, network, **targets)
