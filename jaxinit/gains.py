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

from jaxinit import _quadrature

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
    try:
      fn = ACTIVATIONS[activation]
    except KeyError:
      raise ValueError(
          f"activation must be a callable or one of {sorted(ACTIVATIONS)}, "
          f"got {activation!r}") from None
  elif callable(activation):
    fn = activation
  else:
    raise TypeError(
        f"activation must be a callable or one of {sorted(ACTIVATIONS)}, "
        f"got {type(activation).__name__}")
  return functools.partial(fn, **params) if params else fn


def second_moment(activation: str | Activation, *, num_nodes: int = 64,
                  **params: Any) -> float:
  """``E[phi(z)^2]`` for ``z ~ N(0, 1)``, by quadrature in float64 on the host."""
  fn = resolve_activation(activation, **params)
  x, w = _quadrature.standard_normal_rule(num_nodes)
  try:
    # float64 whatever the global setting: a gain is a host-side constant.
    with jax.enable_x64(True):
      values = np.asarray(fn(jnp.asarray(x, jnp.float64)), np.float64)
  except Exception as err:  # noqa: BLE001 - re-raised with the argument named
    raise TypeError(
        f"activation must be a JAX-traceable elementwise function; calling it "
        f"on an array failed with {type(err).__name__}: {err}") from err
  if values.shape != x.shape:
    raise TypeError(
        f"activation must be elementwise: it mapped shape {x.shape} to "
        f"{values.shape}")
  return float(np.sum(w * values**2))


def gain(activation: str | Activation, *, num_nodes: int = 64, **params: Any) -> float:
  r"""Second-moment gain ``1 / sqrt(E[phi(z)^2])``, ``z ~ N(0, 1)``.

  With weights of variance ``gain^2 / fan_in`` a unit-variance pre-activation
  stays unit-variance in the next layer (ignoring biases). Computed by
  Gauss-Hermite-type quadrature folded at 0, exact to ~1e-12 for smooth
  activations and for those with a kink at 0 (ReLU family).

  Reference values: relu 1.414214 (= sqrt 2, He et al. 2015), tanh 1.592537,
  sigmoid 1.846229, silu 1.676532, gelu 1.533530, elu 1.245191,
  softplus 1.041867, selu ~1 (Klambauer et al. 2017's fixed point).

  Note this differs from :func:`torch_gain`, a table of conventions (e.g.
  tanh 5/3, selu 3/4) rather than a computed moment.

  Args:
    activation: a name in :data:`ACTIVATIONS` or a traceable elementwise function.
    num_nodes: quadrature nodes per half-line.
    **params: bound to the activation (e.g. ``negative_slope=0.2``).

  Returns:
    The gain as a Python float.

  Examples:
    >>> import jaxinit
    >>> round(jaxinit.gain("relu"), 6)
    1.414214
    >>> round(jaxinit.gain("leaky_relu", negative_slope=0.2), 6)
    1.38675
  """
  moment = second_moment(activation, num_nodes=num_nodes, **params)
  if not math.isfinite(moment) or moment <= 0.0:
    raise ValueError(
        f"activation has E[phi(z)^2] = {moment}; a gain needs a finite, "
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
  if name == "leaky_relu":
    slope = 0.01 if param is None else param
    if isinstance(slope, bool) or not isinstance(slope, (int, float)) or not math.isfinite(slope):
      raise ValueError(f"param must be a finite number (the negative slope), got {param!r}")
    return math.sqrt(2.0 / (1.0 + slope**2))
  if name not in _TORCH_GAINS_FIXED:
    raise ValueError(f"name must be one of {_TORCH_GAIN_NAMES}, got {name!r}")
  if param is not None:
    raise ValueError(f"param is only accepted for 'leaky_relu', not for {name!r}")
  return _TORCH_GAINS_FIXED[name]
