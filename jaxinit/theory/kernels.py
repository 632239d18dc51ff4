r"""Kernels: the length map, the covariance and correlation (C-) maps, and their derivatives.

With ``z, z1, z2`` independent standard normals (Poole et al. 2016; Schoenholz
et al. 2017):

* length map ``q' = sw E[phi(sqrt(q) z)^2] + sb``;
* covariance map ``q12' = sw E[phi(u1) phi(u2)] + sb``,
  ``(u1, u2) ~ N(0, [[q11, q12], [q12, q22]])``;
* correlation map ``c' = (sw E[phi(u1) phi(u2)] + sb) / q`` for two inputs of
  length ``q`` and correlation ``c``.

Every expectation goes through two primitives, :func:`gauss1` and
:func:`gauss2`, each a :func:`jax.custom_jvp` whose derivative is again an
expectation, so every map is differentiable in forward and reverse mode, to
any order, at every point of its domain, the boundaries included:

* ``d/dq E[f(sqrt(q) z)] = E[f'(u) u] / (2 q)`` (Stein's lemma; at ``q = 0``
  the one-sided limit, taken at ``q = 1e-30``);
* ``d/dq12 E[f(u1) g(u2)] = E[f'(u1) g'(u2)]`` (Price's theorem), finite at
  ``c = +-1`` where differentiating the quadrature rule gives ``-inf`` or
  NaN: the ReLU C-map's slope is ``(pi - arccos c) / pi``, 1 at ``c = 1`` and
  0 at ``c = -1`` (Cho & Saul 2009's arc-cosine kernel), tanh's is ``chi1``;
* ``d/dq11 E[f(u1) g(u2)] = (E[f'(u1) u1 g(u2)] - q12 E[f'(u1) g'(u2)]) / (2 q11)``.

Price's theorem needs ``f`` and ``g`` continuous. Where one jumps at 0 (the
derivative of a ReLU, needed for second derivatives of its maps), the
``c``-derivative is taken through the quadrature rule with its sectors'
kink rays moving (Leibniz's rule adds the jump terms) for ``|c| < 1`` and is
``+-inf`` at ``|c| = 1`` (e.g. the ReLU C-map's curvature
``1 / (pi sqrt(1 - c^2))``). Kinks and jumps are assumed at 0 only, as in the
quadrature rules (:mod:`jaxinit._quadrature`).

Activations whose Gaussian moments are not finite (``jnp.log``,
``exp(x^2)``, ``1 / x``) are refused with an error naming them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit import _quadrature as quad
from jaxinit import checks
from jaxinit.gains import ACTIVATIONS, resolve_activation, second_moment
from jaxinit.theory import _engine as eng
from jaxinit.theory._engine import DEFAULT_NODES, DEFAULT_NODES_2D, Q_MAX, Q_MIN

Array = jax.Array
ActivationLike = eng.ActivationLike
Elementwise = Callable[[Array], Array]


# ----------------------------------------------------------------------------
# Elementwise functions and their derivatives.

def elementwise(f: Callable[[Array], Array]) -> Elementwise:
  """A scalar function applied to every entry (``jax.vmap`` over the flattened array)."""
  def apply(x: Array) -> Array:
    return jax.vmap(f)(x.ravel()).reshape(x.shape)
  return apply


def derivative(f: Elementwise) -> Elementwise:
  """The elementwise derivative of an elementwise function (:func:`jax.grad` per entry)."""
  return elementwise(jax.grad(lambda x: f(x)))


def _times_u(f: Elementwise) -> Elementwise:
  return lambda u: f(u) * u


def jump_at_zero(f: Elementwise) -> float:
  """``f(0+) - f(0-)``, measured at ``+-1e-6`` (0 for a continuous ``f``).

  Evaluated eagerly (also while a caller traces), in the default float dtype.
  """
  with jax.ensure_compile_time_eval():
    h = 1e-6
    left, right = (float(v) for v in np.asarray(f(jnp.asarray([-h, h], eng.float_dtype()))))
  if not np.isfinite(left + right):
    return 0.0
  jump = right - left
  return jump if abs(jump) > 1e-3 * (1.0 + abs(left) + abs(right)) else 0.0


# ----------------------------------------------------------------------------
# The two expectation primitives.

@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def gauss1(f: Elementwise, num_nodes: int, q: Array) -> Array:
  """``E[f(sqrt(q) z)]``, ``z ~ N(0, 1)``; differentiable in ``q`` (Stein's lemma) at ``q >= 0``."""
  x, w = quad.standard_normal_rule(num_nodes)
  return jnp.sum(jnp.asarray(w, q.dtype) * f(jnp.sqrt(q) * jnp.asarray(x, q.dtype)))


@gauss1.defjvp
def _gauss1_jvp(f: Elementwise, num_nodes: int, primals: tuple[Array], tangents: tuple[Array]):
  (q,), (t,) = primals, tangents
  qc = jnp.clip(q, Q_MIN, Q_MAX)
  slope = gauss1(_times_u(derivative(f)), num_nodes, qc) / (2 * qc)
  return gauss1(f, num_nodes, q), slope * t


def _polar(f: Elementwise, g: Elementwise, num_nodes: int, q11: Array, q22: Array, q12: Array,
           moving_split: bool = False) -> Array:
  return quad.polar_gaussian_expectation(lambda a, b: f(a) * g(b), q11, q22, q12, num_nodes,
                                         num_nodes, moving_split=moving_split)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1, 2))
def gauss2(f: Elementwise, g: Elementwise, num_nodes: int, q11: Array, q22: Array,
           q12: Array) -> Array:
  """``E[f(u1) g(u2)]``, ``(u1, u2) ~ N(0, [[q11, q12], [q12, q22]])``, differentiable everywhere.

  Polar quadrature split at the kink rays (``num_nodes`` radial and angular
  nodes per sector). Derivatives: Price's theorem in ``q12`` (the kink-ray
  rule's own derivative where ``f`` or ``g`` jumps), Stein's lemma in
  ``q11``/``q22`` at fixed correlation; see the module docstring.
  """
  return _polar(f, g, num_nodes, q11, q22, q12)


@gauss2.defjvp
def _gauss2_jvp(f: Elementwise, g: Elementwise, num_nodes: int, primals: tuple[Array, ...],
                tangents: tuple[Array, ...]):
  q11, q22, q12 = primals
  t11, t22, t12 = tangents
  value = gauss2(f, g, num_nodes, q11, q22, q12)
  q11c, q22c = jnp.maximum(q11, Q_MIN), jnp.maximum(q22, Q_MIN)
  root = jnp.sqrt(q11c * q22c)
  c = jnp.clip(q12 / root, -1.0, 1.0)
  df, dg = derivative(f), derivative(g)
  # At fixed correlation (kink rays fixed): Stein's lemma in each length.
  d11 = gauss2(_times_u(df), g, num_nodes, q11, q22, q12) / (2 * q11c)
  d22 = gauss2(f, _times_u(dg), num_nodes, q11, q22, q12) / (2 * q22c)
  jump_f, jump_g = jump_at_zero(f), jump_at_zero(g)
  price = root * gauss2(df, dg, num_nodes, q11, q22, q12)         # Price's theorem
  if not (jump_f or jump_g):
    d_c = price
  else:
    # Jumps make f' or g' contain a delta at 0: differentiate the rule with its
    # kink rays moving for |c| < 1; at |c| = 1 add the delta's 1-D term (the
    # density of u1 or u2 at 0 times the other derivative at 0), or, for two
    # deltas, the divergent E[delta(u1) delta(u2)].
    interior = jnp.abs(c) < 1
    c_in = jnp.where(interior, c, 0.0)
    _, d_in = jax.jvp(lambda cc: _polar(f, g, num_nodes, q11c, q22c, cc * root, True),
                      (c_in,), (jnp.ones_like(c_in),))
    if jump_f and jump_g:
      edge = jnp.full_like(c, np.sign(jump_f * jump_g) * np.inf)
    else:
      zero = jnp.zeros((), c.dtype)
      edge = price + root * (jump_f * dg(zero[None])[0] / jnp.sqrt(2 * np.pi * q11c)
                             + jump_g * df(zero[None])[0] / jnp.sqrt(2 * np.pi * q22c))
    d_c = jnp.where(interior, d_in, edge)
  dc = t12 / root - c * (t11 / (2 * q11c) + t22 / (2 * q22c))
  return value, d11 * t11 + d22 * t22 + d_c * dc


# ----------------------------------------------------------------------------
# Activation checks.

def activation_name(activation: ActivationLike, params: dict[str, Any] | None = None) -> str:
  """How errors name an activation: its name, or the callable's ``__name__`` (``jax.numpy.`` kept)."""
  if isinstance(activation, str):
    name = activation
  else:
    name = getattr(activation, "__name__", None) or repr(activation)
    if getattr(activation, "__module__", None) == "jax.numpy":
      name = f"jax.numpy.{name}"
  if params:
    name += "(" + ", ".join(f"{k}={v!r}" for k, v in params.items()) + ")"
  return name


def check_activation(phi: Callable[..., Array], name: str) -> None:
  """TypeError unless ``phi`` traces elementwise to floats and can be differentiated."""
  accepted = f"a JAX-traceable elementwise function or one of {sorted(ACTIVATIONS)}"
  try:
    out = jax.eval_shape(phi, jax.ShapeDtypeStruct((3,), jnp.float32))
    jax.eval_shape(jax.grad(phi), jax.ShapeDtypeStruct((), jnp.float32))
  except Exception as err:  # noqa: BLE001 - re-raised with the argument named
    raise TypeError(f"activation must be {accepted}; tracing {name} failed with "
                    f"{type(err).__name__}: {err}") from err
  if getattr(out, "shape", None) != (3,):
    raise TypeError(f"activation must be {accepted}: {name} mapped shape (3,) to "
                    f"{getattr(out, 'shape', type(out).__name__)}")


# ----------------------------------------------------------------------------
# The kernels of one activation.

class Kernels:
  """Scalar, traceable mean-field maps of one activation, and their vectorized versions.

  ``stats`` and ``covariance`` are the scalar functions; ``vstats`` and
  ``vcovariance`` broadcast them (:class:`jaxinit.theory._engine.Vectorized`:
  compiled once per batch size, float64 on the host for concrete inputs).
  """

  def __init__(self, phi: Callable[[Array], Array], name: str, num_nodes: int,
               num_nodes_2d: int):
    self.phi = phi
    self.name = name
    self.dphi = derivative(phi)
    self.num_nodes = num_nodes
    self.num_nodes_2d = num_nodes_2d
    self.vstats = eng.Vectorized(self.stats)
    self.vcovariance = eng.Vectorized(self.covariance)

  def moment(self, f: Elementwise, q: Array) -> Array:
    """``E[f(sqrt(q) z)]``."""
    return gauss1(f, self.num_nodes, q)

  def length(self, sw: Array, sb: Array, q: Array) -> Array:
    """``L(q) = sw E[phi(sqrt(q) z)^2] + sb``."""
    return sw * self.moment(lambda u: self.phi(u) ** 2, q) + sb

  def stats(self, sw: Array, sb: Array, q: Array) -> tuple[Array, Array, Array, Array]:
    """``(L(q), dL/dq, E[phi'(u)^2], E[phi'(u)^4])``, ``u = sqrt(q) z``.

    The slope is ``sw E[phi(u) phi'(u) u] / q`` (Stein's lemma; equal to the
    ``sw E[phi'^2 + phi phi'']`` of Schoenholz et al. without a second
    derivative, so kinks are harmless). Derivative terms use ``q`` clipped to
    ``[1e-30, 1e30]``: the one-sided limits at ``q = 0`` and ``q = inf``.
    """
    qc = jnp.clip(q, Q_MIN, Q_MAX)
    phi, dphi = self.phi, self.dphi
    slope = sw * self.moment(lambda u: phi(u) * dphi(u) * u, qc) / qc
    return (self.length(sw, sb, q), slope, self.moment(lambda u: dphi(u) ** 2, qc),
            self.moment(lambda u: dphi(u) ** 4, qc))

  def cross(self, q11: Array, q22: Array, q12: Array) -> Array:
    """``E[phi(u1) phi(u2)]``."""
    return gauss2(self.phi, self.phi, self.num_nodes_2d, q11, q22, q12)

  def cross_slope(self, q11: Array, q22: Array, q12: Array) -> Array:
    """``E[phi'(u1) phi'(u2)]`` (the ``q12``-derivative of :meth:`cross`)."""
    return gauss2(self.dphi, self.dphi, self.num_nodes_2d, q11, q22, q12)

  def covariance(self, sw: Array, sb: Array, q11: Array, q22: Array,
                 q12: Array) -> tuple[Array, Array, Array]:
    """One layer of the covariance map, ``(L(q11), L(q22), sw E[phi(u1) phi(u2)] + sb)``."""
    return (self.length(sw, sb, q11), self.length(sw, sb, q22),
            sw * self.cross(q11, q22, q12) + sb)


@functools.lru_cache(maxsize=64)
def _cached(activation: ActivationLike, params: tuple[tuple[str, Any], ...], num_nodes: int,
            num_nodes_2d: int) -> Kernels:
  return _new(activation, dict(params), num_nodes, num_nodes_2d)


def _new(activation: ActivationLike, params: dict[str, Any], num_nodes: int,
         num_nodes_2d: int) -> Kernels:
  phi = resolve_activation(activation, **params)
  name = activation_name(activation, params)
  check_activation(phi, name)
  # No finite E[phi(z)^2] (1/x, exp(x^2), log): ValueError naming the activation,
  # by the same check as jaxinit.gain's.
  second_moment(activation, **params)
  return Kernels(phi, name, num_nodes, num_nodes_2d)


def kernels(activation: ActivationLike, params: dict[str, Any],
            num_nodes: int = DEFAULT_NODES, num_nodes_2d: int = DEFAULT_NODES_2D) -> Kernels:
  """The (cached) :class:`Kernels` of an activation with ``params`` bound.

  Raises:
    ValueError: unknown name, non-finite moments, bad node counts. TypeError:
    not an activation.
  """
  num_nodes = checks.integer("num_nodes", num_nodes, minimum=1, maximum=200)
  num_nodes_2d = checks.integer("num_nodes_2d", num_nodes_2d, minimum=1, maximum=200)
  if not isinstance(activation, str) and not callable(activation):
    resolve_activation(activation)  # raises the TypeError naming what is accepted
  key = tuple(sorted(params.items()))
  try:
    hash((activation, key))
  except TypeError:
    return _new(activation, params, num_nodes, num_nodes_2d)
  return _cached(activation, key, num_nodes, num_nodes_2d)


def variances(weight_variance: Any, bias_variance: Any) -> tuple[Any, Any]:
  """The checked ``(sw, sb)``."""
  return (eng.nonnegative("weight_variance", weight_variance),
          eng.nonnegative("bias_variance", bias_variance))


# ----------------------------------------------------------------------------
# Public maps.

def length_map(activation: ActivationLike, weight_variance: Any, bias_variance: Any,
               q: Any, *, num_nodes: int = DEFAULT_NODES, **params: Any) -> Array:
  r"""One step of the length map, ``q' = sw E[phi(sqrt(q) z)^2] + sb``.

  Poole et al. 2016, eq. (3): the second moment of the next layer's
  pre-activations given this layer's, ``z ~ N(0, 1)``. Differentiable in
  every argument (``q = 0`` included, as the one-sided derivative).

  Args:
    activation: a name in :data:`jaxinit.gains.ACTIVATIONS` or a traceable
      elementwise callable.
    weight_variance: ``sw``; weights are ``N(0, sw / fan_in)``.
    bias_variance: ``sb``; biases are ``N(0, sb)``.
    q: pre-activation second moment of this layer (``>= 0``).
    num_nodes: quadrature nodes per half-line.
    **params: bound to the activation (e.g. ``negative_slope=0.1``).

  Returns:
    ``q'``, broadcast over the array arguments.

  Raises:
    ValueError: negative or non-finite arguments; an activation without
    finite Gaussian moments.

  Examples:
    >>> from jaxinit import theory
    >>> float(theory.length_map("relu", 2.0, 0.0, 3.0))
    3.0
    >>> round(float(theory.length_map("leaky_relu", 2.0, 0.1, 1.0, negative_slope=0.5)), 4)
    1.35
  """
  sw, sb = variances(weight_variance, bias_variance)
  q = eng.nonnegative("q", q)
  return kernels(activation, params, num_nodes).vstats(sw, sb, q)[0]


def length_slope(activation: ActivationLike, weight_variance: Any, q: Any, *,
                 num_nodes: int = DEFAULT_NODES, **params: Any) -> Array:
  r"""Slope of the length map, ``dq'/dq = sw E[phi'(u)^2 + phi(u) phi''(u)]``, ``u = sqrt(q) z``.

  Schoenholz et al. 2017, eq. (5) (Price's theorem, ``d/dq E[f(u)] = E[f''(u)]
  / 2`` with ``f = phi^2``); at ``q*`` it is the rate at which lengths
  approach the fixed point. Computed as ``sw E[phi(u) phi'(u) u] / q``
  (equal by Stein's lemma, and free of ``phi''``). ``q = 0`` means the limit
  ``q -> 0+``.

  Args:
    activation: name or traceable elementwise callable.
    weight_variance: ``sw``.
    q: pre-activation second moment.
    num_nodes: quadrature nodes per half-line.
    **params: bound to the activation.

  Returns:
    The slope, broadcast over the arguments.

  Examples:
    >>> from jaxinit import theory
    >>> round(float(theory.length_slope("relu", 1.5, 2.0)), 6)
    0.75
  """
  sw = eng.nonnegative("weight_variance", weight_variance)
  q = eng.nonnegative("q", q)
  return kernels(activation, params, num_nodes).vstats(sw, 0 * sw, q)[1]


def covariance_map(activation: ActivationLike, weight_variance: Any, bias_variance: Any,
                   q11: Any, q22: Any, q12: Any, *, num_nodes: int = DEFAULT_NODES,
                   num_nodes_2d: int = DEFAULT_NODES_2D,
                   **params: Any) -> tuple[Array, Array, Array]:
  r"""One layer of the covariance map of two inputs.

  ``(q11', q22', q12') = (L(q11), L(q22), sw E[phi(u1) phi(u2)] + sb)`` with
  ``(u1, u2) ~ N(0, [[q11, q12], [q12, q22]])`` (Poole et al. 2016, eq. (5)).
  Differentiable everywhere with ``q11, q22 > 0``, including ``|q12| =
  sqrt(q11 q22)``, where ``dq12'/dq12 = sw E[phi'(u1) phi'(u2)]`` (Price's
  theorem).

  Args:
    activation: name or traceable elementwise callable.
    weight_variance: ``sw``.
    bias_variance: ``sb``.
    q11, q22: second moments of the two inputs' pre-activations (``>= 0``).
    q12: their covariance (``|q12| <= sqrt(q11 q22)``).
    num_nodes: 1-D nodes per half-line.
    num_nodes_2d: 2-D radial and angular (per sector) nodes.
    **params: bound to the activation.

  Returns:
    ``(q11', q22', q12')``.

  Examples:
    >>> from jaxinit import theory
    >>> [round(float(v), 6) for v in theory.covariance_map("relu", 2.0, 0.0, 1.0, 1.0, 0.0)]
    [1.0, 1.0, 0.31831]
  """
  sw, sb = variances(weight_variance, bias_variance)
  q11 = eng.nonnegative("q11", q11)
  q22 = eng.nonnegative("q22", q22)
  q12 = eng.finite("q12", q12)
  if not eng.is_traced(q11, q22, q12) and np.any(np.abs(q12) > np.sqrt(q11 * q22) * (1 + 1e-6)):
    raise ValueError("q12 must satisfy |q12| <= sqrt(q11 q22) (a covariance), got "
                     f"q11={q11}, q22={q22}, q12={q12}")
  return kernels(activation, params, num_nodes, num_nodes_2d).vcovariance(sw, sb, q11, q22, q12)


def correlation_map(activation: ActivationLike, weight_variance: Any, bias_variance: Any,
                    c: Any, q: Any = None, *, num_nodes: int = DEFAULT_NODES,
                    num_nodes_2d: int = DEFAULT_NODES_2D, **params: Any) -> Array:
  r"""One step of the correlation map, ``c' = (sw E[phi(u1) phi(u2)] + sb) / q``.

  ``u1 = sqrt(q) z1``, ``u2 = sqrt(q) (c z1 + sqrt(1 - c^2) z2)``; ``q``
  defaults to ``q*`` (Poole et al. 2016, eq. (6)), where ``C(1) = 1``. At
  ``q* = 0`` (``sb = 0`` and ``phi(0) = 0``) the ratio is taken at
  ``q = 1e-30``; at ``q* = inf`` it is not defined (``nan``).
  Differentiable in ``c`` on all of ``[-1, 1]``: ``dc'/dc = sw E[phi'(u1)
  phi'(u2)]`` (``chi1`` at ``c = 1``; for ReLU with ``sw = 2`` the arc-cosine
  slope ``(pi - arccos c) / pi``, 1 at ``c = 1`` and 0 at ``c = -1``).

  Args:
    activation: name or traceable elementwise callable.
    weight_variance: ``sw``.
    bias_variance: ``sb``.
    c: input correlation in ``[-1, 1]``.
    q: the length both inputs have; ``None`` for ``q*``.
    num_nodes: 1-D nodes per half-line (for ``q*``).
    num_nodes_2d: 2-D radial and angular (per sector) nodes.
    **params: bound to the activation.

  Returns:
    ``c'``, broadcast over the arguments.

  Examples:
    >>> from jaxinit import theory
    >>> round(float(theory.correlation_map("relu", 2.0, 0.0, 0.0, q=1.0)), 6)   # 1/pi
    0.31831
  """
  from jaxinit.theory import fixed_points  # pylint: disable=import-outside-toplevel
  sw, sb = variances(weight_variance, bias_variance)
  c = eng.correlation("c", c)
  field = kernels(activation, params, num_nodes, num_nodes_2d)
  if q is None:
    q = fixed_points.solver(field).vlengths.numpy(sw, sb, eng.one())[0]
  else:
    q = eng.nonnegative("q", q)
  xp, (sw, sb, c, q) = eng.host(sw, sb, c, q)
  q = xp.where(xp.isfinite(q), xp.clip(q, Q_MIN, Q_MAX), xp.nan)
  _, _, q12 = field.vcovariance(sw, sb, q, q, q * c)
  return eng.output(xp.asarray(q12) / q)
