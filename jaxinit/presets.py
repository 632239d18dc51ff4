"""Named initializers, each one line over :func:`~jaxinit.variance_scaling`.

Names follow ``jax.nn.initializers``. Where jaxinit runs the same algorithm
(normal, truncated normal and uniform draws with jax's rounding of the
constant), a preset equals its jax namesake bit for bit in float32 and
float64 for the same key; each docstring says whether it does.
"""

from __future__ import annotations

import math

from jaxinit import samplers
from jaxinit.initializers import (Axes, Constant, Dirac, Scaled, VarianceScaling, scaled,
                                  variance_scaling)

zeros = Constant(0.0)
"""All zeros (bit-identical to ``jax.nn.initializers.zeros``). The symmetry
problem: with zero weights every hidden unit of a layer computes the same
function and receives the same gradient, so they stay identical."""

ones = Constant(1.0)
"""All ones (bit-identical to ``jax.nn.initializers.ones``)."""


def constant(value: float | complex) -> Constant:
  """Every element equal to ``value`` (as ``jax.nn.initializers.constant``)."""
  return Constant(value)


def normal(stddev: float = 1e-2) -> VarianceScaling:
  """``N(0, stddev^2)``, whatever the shape.

  Same distribution as ``jax.nn.initializers.normal(stddev)``; values agree
  to within one float32 ulp (the constant is rounded as ``sqrt(stddev^2)``).

  Examples:
    >>> import jax, jaxinit
    >>> jaxinit.normal(0.02)(jax.random.key(0), (2,)).shape
    (2,)
  """
  return variance_scaling(stddev**2, "unit", "normal")


def uniform(scale: float = 1e-2) -> VarianceScaling:
  """``U(-scale, scale)``, whatever the shape (variance ``scale^2 / 3``).

  Unlike ``jax.nn.initializers.uniform(scale)``, which draws from
  ``[0, scale)`` (mean ``scale / 2``), the interval is symmetric: a weight
  init with a non-zero mean shifts every pre-activation.
  """
  return variance_scaling(scale**2 / 3.0, "unit", "uniform")


def truncated_normal(stddev: float = 1e-2, lower: float = -2.0,
                     upper: float = 2.0) -> VarianceScaling:
  """``stddev * z`` with ``z ~ N(0, 1)`` truncated to ``[lower, upper]``.

  As in ``jax.nn.initializers.truncated_normal``, ``stddev`` is that of the
  normal *before* truncation, so the samples' standard deviation is
  ``stddev * sigma(lower, upper)`` (0.8796 ``stddev`` for the default bounds).
  Same distribution as jax's; values agree to within one float32 ulp.
  """
  sigma = samplers.truncated_normal_moments(lower, upper)[1]
  return variance_scaling((stddev * sigma) ** 2, "unit",
                          samplers.truncated_normal(lower, upper))


def glorot_normal(in_axis: Axes = -2, out_axis: Axes = -1,
                  batch_axis: Axes = ()) -> VarianceScaling:
  """Glorot & Bengio 2010: ``Var = 2 / (fan_in + fan_out)``, truncated normal.

  The variance that balances forward and backward signals of a linear (or
  tanh near 0) layer. Bit-identical to ``jax.nn.initializers.glorot_normal``.
  """
  return variance_scaling(1.0, "fan_avg", "truncated_normal", in_axis=in_axis,
                          out_axis=out_axis, batch_axis=batch_axis)


def glorot_uniform(in_axis: Axes = -2, out_axis: Axes = -1,
                   batch_axis: Axes = ()) -> VarianceScaling:
  """Glorot & Bengio 2010: ``U(+-sqrt(6 / (fan_in + fan_out)))``.

  Bit-identical to ``jax.nn.initializers.glorot_uniform``.
  """
  return variance_scaling(1.0, "fan_avg", "uniform", in_axis=in_axis,
                          out_axis=out_axis, batch_axis=batch_axis)


def _rectifier_scale(negative_slope: float) -> float:
  slope = float(negative_slope)
  if not math.isfinite(slope):
    raise ValueError(f"negative_slope must be finite, got {negative_slope}")
  return 2.0 / (1.0 + slope * slope)


def he_normal(negative_slope: float = 0.0, mode: str = "fan_in", in_axis: Axes = -2,
              out_axis: Axes = -1, batch_axis: Axes = ()) -> VarianceScaling:
  """He et al. 2015: ``Var = 2 / ((1 + a^2) fan_in)``, truncated normal.

  ``a`` is the negative slope of a leaky ReLU (torch's ``a``; 0 for ReLU):
  ``E[phi(z)^2] = (1 + a^2) / 2``, so this keeps the second moment of the
  signal fixed through depth. With ``a = 0`` and ``mode="fan_in"``
  bit-identical to ``jax.nn.initializers.he_normal``; note torch's
  ``kaiming_normal_`` uses an untruncated normal
  (``variance_scaling(2.0, "fan_in", "normal")``).
  """
  return variance_scaling(_rectifier_scale(negative_slope), mode, "truncated_normal",
                          in_axis=in_axis, out_axis=out_axis, batch_axis=batch_axis)


def he_uniform(negative_slope: float = 0.0, mode: str = "fan_in", in_axis: Axes = -2,
               out_axis: Axes = -1, batch_axis: Axes = ()) -> VarianceScaling:
  """He et al. 2015: ``U(+-sqrt(6 / ((1 + a^2) fan_in)))``.

  With ``a = 0`` bit-identical to ``jax.nn.initializers.he_uniform``.
  """
  return variance_scaling(_rectifier_scale(negative_slope), mode, "uniform",
                          in_axis=in_axis, out_axis=out_axis, batch_axis=batch_axis)


def lecun_normal(in_axis: Axes = -2, out_axis: Axes = -1,
                 batch_axis: Axes = ()) -> VarianceScaling:
  """LeCun et al. 1998: ``Var = 1 / fan_in``, truncated normal.

  With SELU it gives the self-normalizing fixed point (mean 0, variance 1) of
  Klambauer et al. 2017. Bit-identical to ``jax.nn.initializers.lecun_normal``.
  """
  return variance_scaling(1.0, "fan_in", "truncated_normal", in_axis=in_axis,
                          out_axis=out_axis, batch_axis=batch_axis)


def lecun_uniform(in_axis: Axes = -2, out_axis: Axes = -1,
                  batch_axis: Axes = ()) -> VarianceScaling:
  """LeCun et al. 1998: ``U(+-sqrt(3 / fan_in))``.

  Bit-identical to ``jax.nn.initializers.lecun_uniform``.
  """
  return variance_scaling(1.0, "fan_in", "uniform", in_axis=in_axis,
                          out_axis=out_axis, batch_axis=batch_axis)


def orthogonal(scale: float = 1.0, column_axis: int = -1) -> VarianceScaling:
  """Saxe et al. 2013: ``scale * Q``, ``Q`` Haar-random with orthonormal columns or rows.

  The shape is viewed as a matrix with ``shape[column_axis]`` columns and the
  other axes flattened into rows; ``Q`` has orthonormal columns when rows >=
  columns and orthonormal rows otherwise. Same distribution as
  ``jax.nn.initializers.orthogonal`` but a different algorithm (a product of
  Householder reflectors with Gaussian vectors, no QR), so not the same
  values; it also works in bfloat16 and under ``out_sharding``.
  """
  return variance_scaling(scale**2, "fan_max", samplers.orthogonal(column_axis),
                          in_axis=None, out_axis=column_axis)


def delta_orthogonal(scale: float = 1.0, column_axis: int = -1) -> VarianceScaling:
  """Xiao et al. 2018: a kernel that is ``scale * Q`` at the centre tap, 0 elsewhere.

  For a kernel ``spatial + (in, out)`` with ``in <= out``, ``Q`` is an
  ``in x out`` Haar matrix with orthonormal rows, so the 'SAME' convolution
  is an isometry at initialization (dynamical isometry for CNNs). The centre
  is ``(k - 1) // 2`` on each spatial axis, as in jax. ``column_axis`` is -1
  or -2 of the centre matrix. Same distribution as
  ``jax.nn.initializers.delta_orthogonal``, not the same values.
  """
  if column_axis not in (-1, -2):
    raise ValueError(f"column_axis must be -1 or -2 (an axis of the (in, out) centre "
                     f"matrix), got {column_axis!r}")
  return variance_scaling(scale**2, "fan_max",
                          samplers.delta(samplers.orthogonal(column_axis)))


def dirac(scale: float = 1.0) -> Dirac:
  """The identity map: ``scale * eye`` for dense, a centre-tap identity for kernels.

  For a convolution kernel, torch's ``dirac_`` (centre ``(k - 1) // 2`` here,
  ``k // 2`` there); for a matrix, Keras' ``Identity`` / torch's ``eye_``.
  """
  return Dirac(scale)


identity = dirac


def torch_linear_default() -> VarianceScaling:
  """PyTorch ``nn.Linear`` / ``nn.Conv*`` weight init: ``U(+-1 / sqrt(fan_in))``.

  torch calls ``kaiming_uniform_(a=sqrt(5))``: gain ``sqrt(2 / (1 + 5))``,
  bound ``gain * sqrt(3 / fan_in) = 1 / sqrt(fan_in)``, i.e. variance
  ``1 / (3 fan_in)``. Pair with :func:`torch_linear_bias` for the bias.
  """
  return variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_linear_bias(fan_in: int) -> VarianceScaling:
  """PyTorch ``nn.Linear`` bias init: ``U(+-1 / sqrt(fan_in))``.

  A bias has shape ``(out,)`` and cannot see its layer's fan-in, so it is
  given here.

  Examples:
    >>> import jax, jaxinit
    >>> b = jaxinit.torch_linear_bias(fan_in=100)(jax.random.key(0), (1000,))
    >>> bool(abs(b).max() <= 0.1)
    True
  """
  if isinstance(fan_in, bool) or not isinstance(fan_in, int) or fan_in < 1:
    raise ValueError(f"fan_in must be a positive int, got {fan_in!r}")
  return variance_scaling(1.0 / (3.0 * fan_in), "unit", "uniform")


DEPTH_RULES: tuple[str, ...] = ("gpt2", "fixup", "sqrt_depth", "zero")


def depth_factor(depth: int, rule: str = "gpt2", branch_layers: int = 2) -> float:
  """The multiplier :func:`depth_scaled` applies; see there."""
  if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
    raise ValueError(f"depth must be a positive int (number of residual blocks), got {depth!r}")
  if rule not in DEPTH_RULES:
    raise ValueError(f"rule must be one of {list(DEPTH_RULES)}, got {rule!r}")
  if rule == "gpt2":
    return 1.0 / math.sqrt(2.0 * depth)
  if rule == "sqrt_depth":
    return 1.0 / math.sqrt(depth)
  if rule == "fixup":
    if isinstance(branch_layers, bool) or not isinstance(branch_layers, int) or branch_layers < 2:
      raise ValueError(f"branch_layers must be an int >= 2 for rule='fixup', got {branch_layers!r}")
    return depth ** (-1.0 / (2 * branch_layers - 2))
  return 0.0


def depth_scaled(init: VarianceScaling | Constant | Dirac | Scaled, depth: int,
                 rule: str = "gpt2", *, branch_layers: int = 2
                 ) -> VarianceScaling | Constant | Dirac | Scaled:
  """Scales a residual branch's init down with the number of blocks ``depth``.

  * ``"gpt2"``: ``1 / sqrt(2 L)`` (Radford et al. 2019: residual projections
    at ``0.02 / sqrt(2 n_layer)``, two residual adds per block);
  * ``"fixup"``: ``L^(-1 / (2m - 2))`` with ``m = branch_layers`` (Zhang et
    al. 2019; zero the last layer of each branch with ``"zero"``);
  * ``"sqrt_depth"``: ``1 / sqrt(L)``, so the sum of ``L`` branches keeps
    unit variance;
  * ``"zero"``: all zeros (Fixup's last branch layer, SkipInit, ReZero).

  A variance-scaling init stays one, with ``scale * factor^2``.

  Examples:
    >>> import jaxinit
    >>> init = jaxinit.depth_scaled(jaxinit.normal(0.02), depth=12)
    >>> round(init.scale ** 0.5, 6)  # 0.02 / sqrt(24)
    0.004082
  """
  return scaled(init, depth_factor(depth, rule, branch_layers))


# Aliases under the other common names.
xavier_normal = glorot_normal
xavier_uniform = glorot_uniform
kaiming_normal = he_normal
kaiming_uniform = he_uniform
