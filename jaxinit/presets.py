"""Named initializers, each one line over :func:`~jaxinit.variance_scaling`.

Every name shared with ``jax.nn.initializers`` takes jax's positional and
keyword arguments with jax's meaning, ``dtype`` (the default dtype of a call)
included, so replacing ``jax.nn.initializers.X(...)`` by ``jaxinit.X(...)``
never changes a value or fails; jaxinit's own extras (``negative_slope``,
``mode``, ``feature_group_count``, ...) are keyword-only. Where jaxinit runs
the same algorithm (normal, truncated normal and uniform draws, with jax's
rounding of the constant), a preset equals its jax namesake bit for bit in
float32 and float64 for the same key; each docstring says whether it does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from jax.typing import DTypeLike

from jaxinit import checks, samplers
from jaxinit.initializers import (Axes, Constant, Dirac, Scaled, Uniform, VarianceScaling,
                                  scaled, variance_scaling)

Preset = VarianceScaling | Scaled

zeros = Constant(0.0)
"""All zeros (bit-identical to ``jax.nn.initializers.zeros``). The symmetry
problem: with zero weights every hidden unit of a layer computes the same
function and receives the same gradient, so they stay identical. ``zeros`` is
already an initializer: pass it as is (``bias_init=jaxinit.zeros``)."""

ones = Constant(1.0)
"""All ones (bit-identical to ``jax.nn.initializers.ones``)."""


def zeros_init() -> Constant:
  """:data:`zeros`, for code written against Flax's ``nn.initializers.zeros_init()``."""
  return zeros


def ones_init() -> Constant:
  """:data:`ones`, for code written against Flax's ``nn.initializers.ones_init()``."""
  return ones


def constant(value: Any, dtype: DTypeLike | None = None) -> Constant:
  """Every element equal to ``value``, broadcast to the shape (``jax.nn.initializers.constant``).

  ``value`` is a real or complex number or an array of them; a complex value
  needs a complex dtype. Bit-identical to jax's.
  """
  return Constant(value, dtype)


def _signed(name: str, value: Any, make: Callable[[float], Preset]) -> Preset:
  """``make(value)`` for a scale ``value >= 0``; jax multiplies by the signed value, so a
  negative one gives ``-1 * make(-value)`` and a traced one ``value * make(1)``."""
  value = checks.real(name, value, traced_ok=True)
  if checks.is_traced(value):
    return Scaled(make(1.0), value)
  if math.isinf(value * value):
    raise ValueError(f"{name}={value:g} is too large: its square (the variance) "
                     f"overflows float64")
  init = make(abs(value))
  return init if value >= 0 else Scaled(init, -1.0)


def normal(stddev: float = 1e-2, dtype: DTypeLike | None = None) -> Preset:
  """``N(0, stddev^2)``, whatever the shape (``jax.nn.initializers.normal``).

  Bit-identical to jax's in float32 and float64: the factor ``stddev`` is
  rounded once from float64 (``normal(1e20)`` and ``normal(1e-23)`` are exact
  in float32, where jax's variance-based rounding would give inf or 0). A
  negative ``stddev`` multiplies by it, as jax does.

  Examples:
    >>> import jax, jaxinit
    >>> jaxinit.normal(0.02)(jax.random.key(0), (2,)).shape
    (2,)
  """
  return _signed("stddev", stddev,
                 lambda s: variance_scaling(s * s, "unit", "normal", dtype=dtype))


def uniform(scale: float = 1e-2, dtype: DTypeLike | None = None, *,
            symmetric: bool = False) -> Uniform | Preset:
  """``U[0, scale)``, as ``jax.nn.initializers.uniform(scale)``; ``symmetric=True``: ``U(-scale, scale)``.

  The default is jax's interval, bit for bit in float32 and float64, so that
  ``jaxinit.uniform`` can replace ``jax.nn.initializers.uniform`` anywhere;
  note its mean ``scale / 2`` shifts every pre-activation. For weights,
  ``symmetric=True`` draws ``U(-scale, scale)`` (variance ``scale^2 / 3``;
  complex dtypes: the disk of the same second moment), which is
  ``variance_scaling(scale**2 / 3, "unit", "uniform")`` (jaxinit's
  ``uniform(scale)`` meant this interval before it took jax's meaning).

  Examples:
    >>> import jax, jaxinit
    >>> w = jaxinit.uniform(0.1)(jax.random.key(0), (1000,))
    >>> bool(w.min() >= 0.0 and w.max() < 0.1)
    True
    >>> w = jaxinit.uniform(0.1, symmetric=True)(jax.random.key(0), (1000,))
    >>> bool(w.min() < 0.0 and abs(w).max() <= 0.1)
    True
  """
  if not checks.boolean("symmetric", symmetric):
    return Uniform(scale, dtype)
  return _signed("scale", scale,
                 lambda s: variance_scaling(s * s / 3.0, "unit", "uniform", dtype=dtype))


def truncated_normal(stddev: float = 1e-2, dtype: DTypeLike | None = None,
                     lower: float = -2.0, upper: float = 2.0) -> Preset:
  """``stddev * z`` with ``z ~ N(0, 1)`` truncated to ``[lower, upper]``.

  As in ``jax.nn.initializers.truncated_normal`` (same arguments), ``stddev``
  is that of the normal *before* truncation, so the samples' standard
  deviation is ``stddev * sigma(lower, upper)`` (0.8796 ``stddev`` for the
  default bounds), and the draws lie in ``stddev * [lower, upper]``. Exact for
  any bounds (see :class:`jaxinit.samplers.TruncatedNormal`): bit-identical to
  jax's where the interval reaches within 1 sd of 0, correct in the tails
  where jax's are not (``lower=4``: infinite values; ``[6, 7]``: a constant).
  """
  sampler = samplers.truncated_normal(lower, upper)
  sigma = samplers.truncated_normal_moments(sampler.lower, sampler.upper)[1]
  return _signed("stddev", stddev, lambda s: variance_scaling(
      (s * sigma) ** 2, "unit", sampler, dtype=dtype))


def glorot_normal(in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (),
                  dtype: DTypeLike | None = None, *,
                  feature_group_count: int = 1) -> VarianceScaling:
  """Glorot & Bengio 2010: ``Var = 2 / (fan_in + fan_out)``, truncated normal.

  The variance that balances forward and backward signals of a linear (or
  tanh near 0) layer. Bit-identical to ``jax.nn.initializers.glorot_normal``.
  """
  return variance_scaling(1.0, "fan_avg", "truncated_normal", in_axis, out_axis, batch_axis,
                          dtype, feature_group_count=feature_group_count)


def glorot_uniform(in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (),
                   dtype: DTypeLike | None = None, *,
                   feature_group_count: int = 1) -> VarianceScaling:
  """Glorot & Bengio 2010: ``U(+-sqrt(6 / (fan_in + fan_out)))``.

  Bit-identical to ``jax.nn.initializers.glorot_uniform``.
  """
  return variance_scaling(1.0, "fan_avg", "uniform", in_axis, out_axis, batch_axis, dtype,
                          feature_group_count=feature_group_count)


def _rectifier_scale(negative_slope: float) -> float:
  slope = checks.real("negative_slope", negative_slope)
  return 2.0 / (1.0 + slope * slope)


def he_normal(in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (),
              dtype: DTypeLike | None = None, *, negative_slope: float = 0.0,
              mode: str = "fan_in", feature_group_count: int = 1) -> VarianceScaling:
  """He et al. 2015: ``Var = 2 / ((1 + a^2) fan_in)``, truncated normal.

  ``a = negative_slope`` is the negative slope of a leaky ReLU (torch's
  ``a``; 0 for ReLU): ``E[phi(z)^2] = (1 + a^2) / 2``, so this keeps the
  second moment of the signal fixed through depth. With the defaults
  bit-identical to ``jax.nn.initializers.he_normal`` (same positional
  arguments); note torch's ``kaiming_normal_`` uses an untruncated normal
  (``variance_scaling(2.0, "fan_in", "normal")``).
  """
  return variance_scaling(_rectifier_scale(negative_slope), mode, "truncated_normal", in_axis,
                          out_axis, batch_axis, dtype, feature_group_count=feature_group_count)


def he_uniform(in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (),
               dtype: DTypeLike | None = None, *, negative_slope: float = 0.0,
               mode: str = "fan_in", feature_group_count: int = 1) -> VarianceScaling:
  """He et al. 2015: ``U(+-sqrt(6 / ((1 + a^2) fan_in)))``.

  With the defaults bit-identical to ``jax.nn.initializers.he_uniform``.
  """
  return variance_scaling(_rectifier_scale(negative_slope), mode, "uniform", in_axis,
                          out_axis, batch_axis, dtype, feature_group_count=feature_group_count)


def lecun_normal(in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (),
                 dtype: DTypeLike | None = None, *,
                 feature_group_count: int = 1) -> VarianceScaling:
  """LeCun et al. 1998: ``Var = 1 / fan_in``, truncated normal.

  With SELU it gives the self-normalizing fixed point (mean 0, variance 1) of
  Klambauer et al. 2017. Bit-identical to ``jax.nn.initializers.lecun_normal``.
  """
  return variance_scaling(1.0, "fan_in", "truncated_normal", in_axis, out_axis, batch_axis,
                          dtype, feature_group_count=feature_group_count)


def lecun_uniform(in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (),
                  dtype: DTypeLike | None = None, *,
                  feature_group_count: int = 1) -> VarianceScaling:
  """LeCun et al. 1998: ``U(+-sqrt(3 / fan_in))``.

  Bit-identical to ``jax.nn.initializers.lecun_uniform``.
  """
  return variance_scaling(1.0, "fan_in", "uniform", in_axis, out_axis, batch_axis, dtype,
                          feature_group_count=feature_group_count)


def orthogonal(scale: float = 1.0, column_axis: int = -1, dtype: DTypeLike | None = None, *,
               feature_group_count: int = 1) -> Preset:
  """Saxe et al. 2013: ``scale * Q``, ``Q`` Haar-random with orthonormal columns or rows.

  The shape is viewed as a matrix with ``shape[column_axis]`` columns and the
  other axes flattened into rows; ``Q`` has orthonormal columns when rows >=
  columns and orthonormal rows otherwise. Same arguments and distribution as
  ``jax.nn.initializers.orthogonal`` but a different algorithm (a product of
  Householder reflectors with Gaussian vectors, no QR), so not the same
  values; it also works in bfloat16 and under ``out_sharding``. With
  ``feature_group_count`` groups, the columns split into that many blocks,
  each an independent Haar matrix (a grouped convolution's groups).
  """
  column_axis = checks.integer("column_axis", column_axis)
  return _signed("scale", scale, lambda s: variance_scaling(
      s * s, "fan_max", samplers.orthogonal(column_axis), None, column_axis, (), dtype,
      feature_group_count=feature_group_count))


def delta_orthogonal(scale: float = 1.0, column_axis: int = -1, dtype: DTypeLike | None = None,
                     *, feature_group_count: int = 1) -> Preset:
  """Xiao et al. 2018: a kernel that is ``scale * Q`` at the centre tap, 0 elsewhere.

  For a kernel ``spatial + (in, out)`` with ``in <= out``, ``Q`` is an
  ``in x out`` Haar matrix with orthonormal rows, so the 'SAME' convolution
  is an isometry at initialization (dynamical isometry for CNNs). The centre
  is ``(k - 1) // 2`` on each spatial axis, as in jax. ``column_axis`` is an
  axis of the ``(in, out)`` centre matrix (-1 or 1, -2 or 0). For a grouped
  convolution (kernel ``spatial + (in / groups, out)``) each group's centre
  block is its own Haar matrix, so the grouped convolution is an isometry
  too. Where jax refuses ``in > out``, this gives ``Q`` orthonormal columns:
  the convolution is then a co-isometry (its transpose, the backward pass,
  keeps norms), the best a narrowing layer can do. Same arguments and
  distribution as ``jax.nn.initializers.delta_orthogonal``, not the same values.
  """
  axis = checks.integer("column_axis", column_axis)
  if axis not in (-2, -1, 0, 1):
    raise ValueError(f"column_axis must be -1 or -2 (or 1, 0: an axis of the (in, out) "
                     f"centre matrix), got {column_axis!r}")
  axis = axis - 2 if axis >= 0 else axis
  return _signed("scale", scale, lambda s: variance_scaling(
      s * s, "fan_max", samplers.delta(samplers.orthogonal(axis)), dtype=dtype,
      feature_group_count=feature_group_count))


def dirac(scale: float = 1.0, *, feature_group_count: int = 1,
          dtype: DTypeLike | None = None) -> Dirac:
  """The identity map: ``scale * eye`` for dense, a centre-tap identity for kernels.

  For a convolution kernel, torch's ``dirac_(w, groups)`` (centre
  ``(k - 1) // 2`` here, ``k // 2`` there): with ``feature_group_count``
  groups, each group's block is the identity, so a grouped or depthwise
  convolution is the identity map. For a matrix, Keras' ``Identity`` /
  torch's ``eye_``.
  """
  return Dirac(scale, dtype, feature_group_count)


identity = dirac


def embedding(scale: float = 1.0, distribution: Any = "normal", *,
              dtype: DTypeLike | None = None) -> VarianceScaling:
  """An embedding table ``(vocabulary, features)``: ``Var = scale / features``.

  An embedding lookup is a one-hot input times the table, so the fan that
  sets the scale is the feature axis, not the vocabulary size that
  ``he_normal()`` or ``lecun_normal()`` would use for Flax's
  ``nn.Embed``/``nnx.Embed`` (a 50 000-word table would get weights ~200x
  too small). With the defaults each row has expected squared norm 1, the
  same distribution as Flax's default embedding init
  (``variance_scaling(1.0, 'fan_in', 'normal', out_axis=0)``).

  Examples:
    >>> import jax, jaxinit
    >>> table = jaxinit.embedding()(jax.random.key(0), (50_000, 64))
    >>> round(float((table ** 2).sum(axis=1).mean()), 1)
    1.0
  """
  return variance_scaling(scale, "fan_in", distribution, -1, -2, (), dtype)


def torch_linear_default(*, in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (),
                         feature_group_count: int = 1,
                         dtype: DTypeLike | None = None) -> VarianceScaling:
  """PyTorch ``nn.Linear`` / ``nn.Conv*`` weight init: ``U(+-1 / sqrt(fan_in))``.

  torch calls ``kaiming_uniform_(a=sqrt(5))``: gain ``sqrt(2 / (1 + 5))``,
  bound ``gain * sqrt(3 / fan_in) = 1 / sqrt(fan_in)``, i.e. variance
  ``1 / (3 fan_in)``. Pair with :func:`torch_linear_bias` for the bias. A
  grouped convolution's kernel ``spatial + (in / groups, out)`` already has
  torch's fan-in ``k * in / groups``.
  """
  return variance_scaling(1.0 / 3.0, "fan_in", "uniform", in_axis, out_axis, batch_axis, dtype,
                          feature_group_count=feature_group_count)


def torch_linear_bias(fan_in: int, *, dtype: DTypeLike | None = None) -> VarianceScaling:
  """PyTorch ``nn.Linear`` bias init: ``U(+-1 / sqrt(fan_in))``.

  A bias has shape ``(out,)`` and cannot see its layer's fan-in, so it is
  given here.

  Examples:
    >>> import jax, jaxinit
    >>> b = jaxinit.torch_linear_bias(fan_in=100)(jax.random.key(0), (1000,))
    >>> bool(abs(b).max() <= 0.1)
    True
  """
  fan_in = checks.positive_int("fan_in", fan_in)
  return variance_scaling(1.0 / (3.0 * fan_in), "unit", "uniform", dtype=dtype)


DEPTH_RULES: tuple[str, ...] = ("gpt2", "fixup", "sqrt_depth", "zero")


def depth_factor(depth: int, rule: str = "gpt2", branch_layers: int = 2) -> float:
  """The multiplier :func:`depth_scaled` applies; see there."""
  depth = checks.positive_int("depth", depth)
  rule = checks.choice("rule", rule, DEPTH_RULES)
  if rule == "gpt2":
    return 1.0 / math.sqrt(2.0 * depth)
  if rule == "sqrt_depth":
    return 1.0 / math.sqrt(depth)
  if rule == "fixup":
    branch_layers = checks.integer("branch_layers", branch_layers, minimum=2)
    return depth ** (-1.0 / (2 * branch_layers - 2))
  return 0.0


def depth_scaled(init: Any, depth: int, rule: str = "gpt2", *, branch_layers: int = 2) -> Any:
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
