"""Activation gains: the factor that keeps the second moment of a signal fixed.

A layer ``x_{l+1} = phi(W x_l)`` with ``Var[W_ij] = g^2 / fan_in`` keeps
``E[x^2]`` constant through depth when ``g = 1 / sqrt(E[phi(z)^2])``,
``z ~ N(0, 1)`` (the fixed point of the length map for unit pre-activations,
He et al. 2015 generalized to any activation). :func:`gain` computes this
number by quadrature for any traceable activation; :func:`torch_gain`
reproduces ``torch.nn.init.calculate_gain`` for people porting PyTorch models.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit import _quadrature, checks

Activation = Callable[..., jax.Array]


def _linear(x: jax.Array) -> jax.Array:
  return x


def _gelu_erf(x: jax.Array) -> jax.Array:
  return jax.nn.gelu(x, approximate=False)


def _gelu_tanh(x: jax.Array) -> jax.Array:
  return jax.nn.gelu(x, approximate=True)


ACTIVATIONS: dict[str, Activation] = {
    "linear": _linear,
    "relu": jax.nn.relu,
    "leaky_relu": jax.nn.leaky_relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "gelu": _gelu_erf,
    "gelu_tanh": _gelu_tanh,
    "elu": jax.nn.elu,
    "selu": jax.nn.selu,
    "softplus": jax.nn.softplus,
    "erf": jax.scipy.special.erf,
}
"""Activations known by name. ``"gelu"`` is the exact (erf) GELU, as in
PyTorch; ``"gelu_tanh"`` is the tanh approximation (``jax.nn.gelu``'s default)."""


def resolve_activation(activation: str | Activation, **params: Any) -> Activation:
  """Returns the elementwise function for a name or callable, with ``params`` bound.

  Args:
    activation: a name in :data:`ACTIVATIONS` or any JAX-traceable elementwise
      callable.
    **params: keyword arguments bound to the activation, e.g.
      ``negative_slope=0.2`` for ``"leaky_relu"``.

  Returns:
    A one-argument callable.

  Raises:
    ValueError: for an unknown name. TypeError: for anything not callable.
  """
  if isinstance(activation, str):
    if activation not in ACTIVATIONS:
      raise ValueError(f"activation must be a callable or one of {sorted(ACTIVATIONS)}, got "
                       f"{activation!r}{checks.did_you_mean(activation, ACTIVATIONS)}")
    fn = ACTIVATIONS[activation]
  elif callable(activation):
    fn = activation
  else:
    raise TypeError(
        f"activation must be a callable or one of {sorted(ACTIVATIONS)}, "
        f"got {type(activation).__name__}")
  return functools.partial(fn, **params) if params else fn


# Composite Gauss-Legendre rules on [-40, 40] (panel edges at 0: a kink there is
# exact), 16 nodes per panel: they cross-check the Gauss rule and, where it is
# off (kinks or jumps away from 0), replace it. exp(-40^2 / 2) underflows.
_PANELS = (200, 400)
_PANEL_ORDER = 16
_UPPER = 40.0
_TAIL = 35.0             # the integrand beyond must be negligible
_CONVERGED = 1e-4        # composite rules at panel widths 0.2 and 0.1 must agree to this
_GAUSS_AGREES = 1e-12    # else the Gauss value is replaced by the finer composite one


@functools.lru_cache(maxsize=None)
def _composite_rule(panels: int) -> tuple[np.ndarray, np.ndarray]:
  t, v = np.polynomial.legendre.leggauss(_PANEL_ORDER)
  edges = np.linspace(0.0, _UPPER, panels + 1)
  half = np.diff(edges)[:, None] / 2.0
  x = (edges[:-1, None] + half * (t[None, :] + 1.0)).ravel()
  w = (half * v[None, :]).ravel() * np.exp(-x * x / 2.0) / math.sqrt(2.0 * math.pi)
  return np.concatenate([-x[::-1], x]), np.concatenate([w[::-1], w])


def _describe(activation: Any) -> str:
  return repr(activation) if isinstance(activation, str) else getattr(
      activation, "__name__", repr(activation))


def _evaluate(fn: Activation, x: np.ndarray) -> np.ndarray:
  """``fn(x)`` in float64 on the host, even when called inside jit, vmap or scan."""
  try:
    # float64 whatever the global setting, evaluated now even under a trace:
    # a gain is a host-side constant of the activation.
    # (jit: a custom_jvp activation such as jax.nn.relu called inside vmap
    # binds to the batch trace even under ensure_compile_time_eval.)
    with jax.enable_x64(True), jax.ensure_compile_time_eval():
      values = np.asarray(jax.jit(fn)(jnp.asarray(x, jnp.float64)), np.float64)
  except Exception as err:  # noqa: BLE001 - re-raised with the argument named
    raise TypeError(
        f"activation must be a JAX-traceable elementwise function; calling it "
        f"on an array failed with {type(err).__name__}: {err}") from err
  if values.shape != x.shape:
    raise TypeError(
        f"activation must be elementwise: it mapped shape {x.shape} to "
        f"{values.shape}")
  return values


def _second_moment(activation: str | Activation, num_nodes: int,
                   params: tuple[tuple[str, Any], ...]) -> float:
  fn = resolve_activation(activation, **dict(params))
  name = _describe(activation)
  rules = [_quadrature.standard_normal_rule(num_nodes)] + [_composite_rule(p) for p in _PANELS]
  values = _evaluate(fn, np.concatenate([x for x, _ in rules]))
  with np.errstate(over="ignore", invalid="ignore"):
    terms = np.concatenate([w for _, w in rules]) * values**2
  if not np.all(np.isfinite(terms)):
    bad = np.concatenate([x for x, _ in rules])[~np.isfinite(terms)]
    raise ValueError(
        f"activation {name} has no finite E[phi(z)^2], z ~ N(0, 1): phi(z)^2 is not finite "
        f"at z = {bad[np.argmin(np.abs(bad))]:.4g}")
  sums, start = [], 0
  for x, w in rules:
    sums.append(float(np.sum(terms[start:start + x.size])))
    start += x.size
  gauss, coarse, fine = sums
  fine_x = rules[-1][0]
  tail = float(np.sum(terms[start - fine_x.size:][np.abs(fine_x) > _TAIL]))
  if tail > 1e-12 * abs(fine) or abs(coarse - fine) > _CONVERGED * abs(fine):
    raise ValueError(
        f"activation {name} has no finite E[phi(z)^2] (or one too singular to integrate): "
        f"quadrature does not converge (panel widths 0.2 and 0.1 give {coarse:.6g} and "
        f"{fine:.6g}; beyond |z| = {_TAIL:g}: {tail:.3g}), as for a pole like 1/x, growth "
        f"like exp(z^2), or a jump away from 0")
  return gauss if abs(gauss - fine) <= _GAUSS_AGREES * abs(fine) else fine


@functools.lru_cache(maxsize=256)
def _second_moment_cached(activation: str | Activation, num_nodes: int,
                          params: tuple[tuple[str, Any], ...]) -> float:
  return _second_moment(activation, num_nodes, params)


def second_moment(activation: str | Activation, *, num_nodes: int = 64,
                  **params: Any) -> float:
  """``E[phi(z)^2]`` for ``z ~ N(0, 1)``, by quadrature in float64 on the host.

  Two computations: an ``num_nodes``-node Gauss rule folded at 0
  (exponentially convergent for activations smooth away from 0, kink at 0
  included), and composite Gauss-Legendre rules with panels of width 0.2 and
  0.1 on [-40, 40]. If the composite rules disagree (by over 1e-4) or the
  integrand does not vanish beyond 35 standard deviations, the expectation
  is infinite or too singular to integrate (``1/x``, ``exp(x^2)``, a jump
  away from 0): ValueError. Otherwise the Gauss value is returned where it
  agrees with the finer composite one to 1e-12, the composite value where it
  does not (kinks away from 0: ``relu6``, ``hard_tanh``). Cached for
  hashable arguments; usable inside ``jit``, ``vmap``, ``eval_shape`` and
  ``scan`` (evaluated at trace time).

  Raises:
    ValueError: unknown name, or no finite second moment (the message names
    the activation). TypeError: an activation that is not an elementwise
    traceable function.
  """
  num_nodes = checks.integer("num_nodes", num_nodes, minimum=1, maximum=200)
  items = tuple(sorted(params.items()))
  try:
    hash((activation, items))
  except TypeError:
    return _second_moment(activation, num_nodes, items)
  return _second_moment_cached(activation, num_nodes, items)


def gain(activation: str | Activation, *, num_nodes: int = 64, **params: Any) -> float:
  r"""Second-moment gain ``1 / sqrt(E[phi(z)^2])``, ``z ~ N(0, 1)``.

  With weights of variance ``gain^2 / fan_in`` a unit-variance pre-activation
  stays unit-variance in the next layer (ignoring biases). Computed by
  Gauss-type quadrature folded at 0, exact to ~1e-12 for smooth
  activations and for those with a kink at 0 (ReLU family), and checked
  against composite rules (see :func:`second_moment`). A gain is a constant
  of the activation: it is computed on the host in float64 (and cached for
  names), so it works inside ``jax.jit``, ``vmap``, ``eval_shape``, ``scan``,
  ``nnx.jit`` and a Flax ``init`` under ``jit``.

  Reference values: relu 1.414214 (= sqrt 2, He et al. 2015), tanh 1.592537,
  sigmoid 1.846229, silu 1.676532, gelu 1.533530, elu 1.245198,
  softplus 1.041867, selu ~1 (Klambauer et al. 2017's fixed point).

  Note this differs from :func:`torch_gain`, a table of conventions (e.g.
  tanh 5/3, selu 3/4) rather than a computed moment.

  Args:
    activation: a name in :data:`ACTIVATIONS` or a traceable elementwise function.
    num_nodes: quadrature nodes per half-line (1 to 200).
    **params: bound to the activation (e.g. ``negative_slope=0.2``).

  Returns:
    The gain as a Python float.

  Raises:
    ValueError: an unknown name, or an activation whose ``E[phi(z)^2]`` is
    infinite, undefined or zero (e.g. ``exp(x^2)``, ``1/x``, ``log``), named
    in the message. TypeError: not an elementwise traceable function.

  Examples:
    >>> import jaxinit
    >>> round(jaxinit.gain("relu"), 6)
    1.414214
    >>> round(jaxinit.gain("leaky_relu", negative_slope=0.2), 6)
    1.38675
  """
  moment = second_moment(activation, num_nodes=num_nodes, **params)
  if moment <= 0.0:
    raise ValueError(
        f"activation {_describe(activation)} has E[phi(z)^2] = {moment}; a gain needs a "
        f"positive second moment")
  return 1.0 / math.sqrt(moment)


_TORCH_GAINS_FIXED = {
    "linear": 1.0, "identity": 1.0, "conv1d": 1.0, "conv2d": 1.0,
    "conv3d": 1.0, "conv_transpose1d": 1.0, "conv_transpose2d": 1.0,
    "conv_transpose3d": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3.0,
    "relu": math.sqrt(2.0), "selu": 3.0 / 4.0,
}
_TORCH_GAIN_NAMES = sorted([*_TORCH_GAINS_FIXED, "leaky_relu"])


def torch_gain(name: str, param: float | None = None) -> float:
  """``torch.nn.init.calculate_gain``'s table, for porting PyTorch models.

  linear, identity, conv*/conv_transpose*, sigmoid: 1; tanh: 5/3;
  relu: sqrt(2); leaky_relu: sqrt(2 / (1 + slope^2)) with slope ``param``
  (default 0.01); selu: 3/4.

  Args:
    name: the non-linearity's name as PyTorch spells it.
    param: the negative slope for ``"leaky_relu"``; not accepted otherwise.

  Returns:
    The recommended gain.

  Examples:
    >>> import jaxinit
    >>> jaxinit.torch_gain("tanh")
    1.6666666666666667
  """
  name = checks.choice("name", name, _TORCH_GAIN_NAMES)
  if name == "leaky_relu":
    slope = 0.01 if param is None else checks.real("param (the negative slope)", param)
    return math.sqrt(2.0 / (1.0 + slope**2))
  if param is not None:
    raise ValueError(f"param is only accepted for 'leaky_relu', not for {name!r}")
  return _TORCH_GAINS_FIXED[name]
