"""The variance-scaling combinator and the few initializers outside it.

Every random preset in jaxinit is ``variance_scaling(scale, mode, sampler)``:
a unit-scale base sampler times ``sqrt(scale / n)``, where ``n`` is a fan of
the weight shape chosen by ``mode``. Deterministic initializers
(:class:`Constant`, :class:`Dirac`) and the wrapper :class:`Scaled` complete
the algebra. All are frozen dataclasses: hashable, comparable, printable,
and round-trip through ``to_config`` / :func:`jaxinit.get`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from jaxinit import samplers as samplers_lib
from jaxinit.base import (Initializer, OutSharding, Sampler, Shape, canonical_dtype,
                          canonical_shape, real_dtype, sampling_dtype, shard)

MODES: tuple[str, ...] = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg", "fan_max", "unit")

Axes = int | tuple[int, ...] | None


def _canonical_axes(name: str, axes: Any, allow_none: bool) -> Axes:
  if axes is None and allow_none:
    return None
  if isinstance(axes, (int, np.integer)) and not isinstance(axes, bool):
    return int(axes)
  if isinstance(axes, Sequence) and not isinstance(axes, str) and all(
      isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axes):
    return tuple(int(a) for a in axes)
  what = "an int, a sequence of ints" + (" or None" if allow_none else "")
  raise TypeError(f"{name} must be {what}, got {axes!r}")


def _as_tuple(axes: Axes) -> tuple[int, ...]:
  return () if axes is None else (axes,) if isinstance(axes, int) else axes


def _check_disjoint_static(in_axis: Axes, out_axis: Axes, batch_axis: Axes) -> None:
  """Overlap that is visible without a rank: the same literal axis twice."""
  named = {"in_axis": _as_tuple(in_axis), "out_axis": _as_tuple(out_axis),
           "batch_axis": _as_tuple(batch_axis)}
  for name, axes in named.items():
    if len(set(axes)) != len(axes):
      raise ValueError(f"{name}={axes} names an axis twice")
  names = list(named)
  for i, a in enumerate(names):
    for b in names[i + 1:]:
      shared = set(named[a]) & set(named[b])
      if shared:
        raise ValueError(f"{a} and {b} overlap on axes {sorted(shared)}; "
                         f"in, out and batch axes must be disjoint")


def compute_fans(shape: Sequence[int], in_axis: Axes = -2, out_axis: Axes = -1,
                 batch_axis: Axes = (), feature_group_count: int = 1) -> tuple[int, int]:
  """Fan-in and fan-out of a dense or convolution kernel.

  Axes not named in ``in_axis``, ``out_axis`` or ``batch_axis`` form the
  receptive field ``r`` (a convolution's spatial axes):
  ``fan_in = r * prod(shape[in_axis])`` and
  ``fan_out = r * prod(shape[out_axis]) / feature_group_count``. ``in_axis``
  or ``out_axis`` may be None: every axis not named elsewhere. For a grouped
  convolution Flax's kernel is ``spatial + (in / groups, out)``: its last-but-one
  axis already counts the inputs of one group, while each input feeds only
  ``out / groups`` outputs, hence the division of fan-out.

  Args:
    shape: the weight shape.
    in_axis: input axis or axes.
    out_axis: output axis or axes.
    batch_axis: axes that index independent weights (ignored by the fans).
    feature_group_count: convolution groups (``in`` for depthwise).

  Returns:
    ``(fan_in, fan_out)`` as Python ints.

  Examples:
    >>> import jaxinit
    >>> jaxinit.compute_fans((3, 3, 16, 32))
    (144, 288)
    >>> jaxinit.compute_fans((3, 3, 1, 32), feature_group_count=32)  # depthwise
    (9, 9)
  """
  shape = canonical_shape(shape)
  rank = len(shape)

  def resolve(name: str, axes: Axes) -> tuple[int, ...]:
    out = []
    for a in _as_tuple(axes):
      if not -rank <= a < rank:
        raise ValueError(f"{name}={axes} is out of range for shape {shape} of rank "
                         f"{rank}; the shape's rank is too small for these axes")
      out.append(a % rank)
    return tuple(out)

  batch = resolve("batch_axis", batch_axis)
  if in_axis is None and out_axis is None:
    raise ValueError("in_axis and out_axis cannot both be None")
  ins = resolve("in_axis", in_axis) if in_axis is not None else None
  outs = resolve("out_axis", out_axis) if out_axis is not None else None
  if ins is None:
    ins = tuple(a for a in range(rank) if a not in set(outs) | set(batch))
  if outs is None:
    outs = tuple(a for a in range(rank) if a not in set(ins) | set(batch))
  for x_name, x, y_name, y in (("in_axis", ins, "out_axis", outs),
                               ("in_axis", ins, "batch_axis", batch),
                               ("out_axis", outs, "batch_axis", batch)):
    if len(set(x)) != len(x):
      raise ValueError(f"{x_name}={x} names an axis twice for shape {shape}")
    if set(x) & set(y):
      raise ValueError(f"{x_name} and {y_name} overlap on axes {sorted(set(x) & set(y))} "
                       f"of shape {shape}; in, out and batch axes must be disjoint")
  named = set(ins) | set(outs) | set(batch)
  receptive = math.prod(shape[a] for a in range(rank) if a not in named)
  fan_in = receptive * math.prod(shape[a] for a in ins)
  out_size = math.prod(shape[a] for a in outs)
  if out_size % feature_group_count:
    raise ValueError(f"feature_group_count={feature_group_count} must divide the "
                     f"output size {out_size} of shape {shape}")
  fan_out = receptive * out_size // feature_group_count
  return fan_in, fan_out


def _check_scale(scale: Any) -> Any:
  if isinstance(scale, jax.core.Tracer):
    return scale  # checked by whoever traces it; shapes are all we need here
  if isinstance(scale, bool):
    raise TypeError(f"scale must be a real number, got {scale!r}")
  if isinstance(scale, (jax.Array, np.ndarray)):
    if scale.ndim:
      raise ValueError(f"scale must be a scalar, got shape {scale.shape}")
    value = float(scale)
  elif isinstance(scale, (int, float, np.integer, np.floating)):
    value = scale = float(scale)
  else:
    raise TypeError(f"scale must be a real number, got {type(scale).__name__}")
  if not math.isfinite(value) or value < 0.0:
    raise ValueError(f"scale must be finite and >= 0, got {value}")
  return scale


@dataclasses.dataclass(frozen=True)
class VarianceScaling:
  """``sampler`` draws times ``sqrt(scale / n)``; see :func:`variance_scaling`."""
  scale: float
  mode: str
  sampler: Sampler
  in_axis: Axes = -2
  out_axis: Axes = -1
  batch_axis: Axes = ()
  feature_group_count: int = 1

  def __post_init__(self):
    set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
    set_("scale", _check_scale(self.scale))
    if self.mode not in MODES:
      raise ValueError(f"mode must be one of {list(MODES)}, got {self.mode!r}")
    set_("sampler", samplers_lib.get(self.sampler))
    set_("in_axis", _canonical_axes("in_axis", self.in_axis, allow_none=True))
    set_("out_axis", _canonical_axes("out_axis", self.out_axis, allow_none=True))
    batch = _canonical_axes("batch_axis", self.batch_axis, allow_none=False)
    set_("batch_axis", _as_tuple(batch))
    if self.in_axis is None and self.out_axis is None:
      raise ValueError("in_axis and out_axis cannot both be None")
    _check_disjoint_static(self.in_axis, self.out_axis, self.batch_axis)
    groups = self.feature_group_count
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
      raise ValueError(f"feature_group_count must be a positive int, got {groups!r}")
    set_("feature_group_count", int(groups))

  def fan(self, shape: Sequence[int]) -> float:
    """The denominator ``n`` that ``mode`` picks for ``shape``."""
    if self.mode == "unit":
      return 1.0
    fan_in, fan_out = compute_fans(shape, self.in_axis, self.out_axis, self.batch_axis,
                                   self.feature_group_count)
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2,
         "fan_geo_avg": math.sqrt(fan_in * fan_out),
         "fan_max": max(fan_in, fan_out)}[self.mode]
    if n == 0:
      raise ValueError(f"mode={self.mode!r} gives a zero fan for shape {tuple(shape)} "
                       f"(fan_in={fan_in}, fan_out={fan_out}): a zero-size axis has no variance")
    return n

  def __call__(self, key: jax.Array, shape: Shape, dtype: DTypeLike | None = None,
               out_sharding: OutSharding = None) -> jax.Array:
    shape = canonical_shape(shape)
    dtype = canonical_dtype(dtype)
    draw_dtype = sampling_dtype(dtype)
    n = self.fan(shape)
    if isinstance(self.scale, jax.Array):
      variance = (self.scale / n).astype(real_dtype(draw_dtype))
    else:
      # Rounded to the draw precision first, as jax.nn.initializers does.
      variance = np.asarray(self.scale / n, real_dtype(draw_dtype))[()]
    if hasattr(self.sampler, "scaled"):
      out = self.sampler.scaled(key, shape, draw_dtype, variance, out_sharding)
    else:
      out = self.sampler(key, shape, draw_dtype, out_sharding) * jnp.sqrt(variance)
    return shard(out.astype(dtype), out_sharding)

  def to_config(self) -> dict[str, Any]:
    """Plain-data description; ``jaxinit.get(init.to_config()) == init``."""
    if not hasattr(self.sampler, "to_config"):
      raise TypeError(f"sampler {self.sampler!r} has no to_config(); only built-in "
                      f"samplers can be described as data")
    listify = lambda a: list(a) if isinstance(a, tuple) else a  # noqa: E731
    return {"name": "variance_scaling", "scale": float(self.scale), "mode": self.mode,
            "sampler": self.sampler.to_config(), "in_axis": listify(self.in_axis),
            "out_axis": listify(self.out_axis), "batch_axis": listify(self.batch_axis),
            "feature_group_count": self.feature_group_count}


def variance_scaling(scale: float, mode: str, sampler: Sampler | str | dict[str, Any],
                     *, in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (),
                     feature_group_count: int = 1) -> VarianceScaling:
  r"""The combinator: ``W = sqrt(scale / n) * S`` with ``S`` a unit-scale sample.

  ``n`` is chosen by ``mode`` from the fans of :func:`compute_fans`:

  * ``"fan_in"``: ``fan_in`` (LeCun, He); ``"fan_out"``: ``fan_out``;
  * ``"fan_avg"``: ``(fan_in + fan_out) / 2`` (Glorot & Bengio 2010);
  * ``"fan_geo_avg"``: ``sqrt(fan_in * fan_out)``;
  * ``"fan_max"``: ``max(fan_in, fan_out)``, the natural scale of orthogonal
    structure (an orthonormal ``m x n`` matrix has entries of variance
    ``1 / max(m, n)``);
  * ``"unit"``: 1, so the variance is ``scale`` whatever the shape (biases,
    fixed-stddev presets).

  So ``Var[W] = scale / n`` per element (``E|W|^2`` for complex dtypes) for
  every sampler. Draws are made in float32 (float64 for float64, complex64 /
  complex128 for complex) and cast to ``dtype``, so bfloat16, float16 and
  float8 weights follow the same distribution as float32 ones.

  Args:
    scale: non-negative variance multiplier (e.g. ``2.0`` for He, or
      ``gain(activation) ** 2``). May be a traced scalar, for vmapping over
      scales inside a jitted sweep.
    mode: one of :data:`MODES`.
    sampler: a sampler object or one of ``"normal"``, ``"truncated_normal"``,
      ``"uniform"``, ``"orthogonal"``, ``"rademacher"``, ``"sparse"``,
      ``"delta"``, ``"identity"`` (see :mod:`jaxinit.samplers`).
    in_axis: input axis or axes of the weight (None: all axes not named by
      ``out_axis`` / ``batch_axis``).
    out_axis: output axis or axes (None: all not named elsewhere).
    batch_axis: axes of independent weights, ignored by the fans.
    feature_group_count: groups of a grouped or depthwise convolution.

  Returns:
    An :class:`~jaxinit.Initializer`.

  Raises:
    ValueError / TypeError at construction for a negative, non-finite or
    non-numeric scale, an unknown mode or sampler, or overlapping axes; at
    call time for axes out of the shape's range, a zero fan, or an integer
    or bool dtype.

  Examples:
    >>> import jax, jaxinit
    >>> init = jaxinit.variance_scaling(2.0, "fan_in", "normal")
    >>> w = init(jax.random.key(0), (512, 256))
    >>> round(float(w.var() * 512), 1)
    2.0
  """
  return VarianceScaling(scale, mode, sampler, in_axis, out_axis, batch_axis,
                         feature_group_count)


@dataclasses.dataclass(frozen=True)
class Constant:
  """Every element equal to ``value``: ``zeros`` and ``ones`` are instances."""
  value: float | complex = 0.0

  def __post_init__(self):
    value = self.value
    if isinstance(value, bool) or not isinstance(value, (int, float, complex, np.number)):
      raise TypeError(f"value must be a number, got {value!r}")
    if not np.isfinite(value):
      raise ValueError(f"value must be finite, got {value}")
    object.__setattr__(self, "value", complex(value) if np.iscomplexobj(value) else float(value))

  def __call__(self, key: jax.Array, shape: Shape, dtype: DTypeLike | None = None,
               out_sharding: OutSharding = None) -> jax.Array:
    del key
    shape = canonical_shape(shape)
    dtype = canonical_dtype(dtype)
    if isinstance(self.value, complex) and not jnp.issubdtype(dtype, jnp.complexfloating):
      raise TypeError(f"a complex value {self.value} needs a complex dtype, got {dtype.name}")
    return shard(jnp.full(shape, self.value, dtype), out_sharding)

  def to_config(self) -> dict[str, Any]:
    return {"name": "constant", "value": self.value}


@dataclasses.dataclass(frozen=True)
class Dirac:
  """``scale`` times the identity map: ``eye`` for 2-D, a centre-tap delta for kernels.

  For a convolution kernel ``spatial + (in, out)`` the tap at
  ``(k - 1) // 2`` on each spatial axis holds ``scale * eye(in, out)`` and
  every other tap is 0, so a 'SAME'-padded convolution copies its first
  ``min(in, out)`` channels (torch's dirac_ uses ``k // 2``; the two agree
  for odd ``k``).
  """
  scale: float = 1.0

  def __post_init__(self):
    object.__setattr__(self, "scale", _check_number_finite("scale", self.scale))

  def __call__(self, key: jax.Array, shape: Shape, dtype: DTypeLike | None = None,
               out_sharding: OutSharding = None) -> jax.Array:
    del key
    shape = canonical_shape(shape)
    dtype = canonical_dtype(dtype)
    if len(shape) < 2:
      raise ValueError(f"dirac/identity needs a shape of rank >= 2 ((in, out) or a "
                       f"convolution kernel (*spatial, in, out)), got {shape}")
    eye = jnp.eye(shape[-2], shape[-1], dtype=dtype) * jnp.asarray(self.scale, dtype)
    if len(shape) == 2:
      return shard(eye, out_sharding)
    index = tuple((k - 1) // 2 for k in shape[:-2])
    return shard(jnp.zeros(shape, dtype).at[index].set(eye), out_sharding)

  def to_config(self) -> dict[str, Any]:
    return {"name": "dirac", "scale": self.scale}


def _check_number_finite(name: str, value: Any) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
    raise TypeError(f"{name} must be a real number, got {value!r}")
  if not math.isfinite(value):
    raise ValueError(f"{name} must be finite, got {value}")
  return float(value)


@dataclasses.dataclass(frozen=True)
class Scaled:
  """``factor * init(...)``, for initializers outside the combinator."""
  init: Initializer
  factor: float

  def __post_init__(self):
    object.__setattr__(self, "factor", _check_number_finite("factor", self.factor))
    if not callable(self.init):
      raise TypeError(f"init must be an initializer, got {self.init!r}")

  def __call__(self, key: jax.Array, shape: Shape, dtype: DTypeLike | None = None,
               out_sharding: OutSharding = None) -> jax.Array:
    dtype = canonical_dtype(dtype)
    out = self.init(key, shape, sampling_dtype(dtype), out_sharding)
    return (out * jnp.asarray(self.factor, real_dtype(out.dtype))).astype(dtype)

  def to_config(self) -> dict[str, Any]:
    if not hasattr(self.init, "to_config"):
      raise TypeError(f"{self.init!r} has no to_config()")
    return {"name": "scaled", "init": self.init.to_config(), "factor": self.factor}


def scaled(init: Initializer, factor: float) -> Initializer:
  """``factor * init``, folded into the scale where ``init`` allows it.

  A :class:`VarianceScaling` gets ``scale * factor^2`` (for ``factor >= 0``),
  a :class:`Constant` or :class:`Dirac` its value times ``factor``, a
  :class:`Scaled` its factor times ``factor``; anything else is wrapped.

  Examples:
    >>> import jaxinit
    >>> jaxinit.scaled(jaxinit.he_normal(), 0.5).scale
    0.5
  """
  factor = _check_number_finite("factor", factor)
  if factor == 0.0:
    return Constant(0.0)
  if isinstance(init, VarianceScaling) and factor > 0 and not isinstance(init.scale, jax.Array):
    return dataclasses.replace(init, scale=init.scale * factor * factor)
  if isinstance(init, Constant):
    return Constant(init.value * factor)
  if isinstance(init, Dirac):
    return Dirac(init.scale * factor)
  if isinstance(init, Scaled):
    return Scaled(init.init, init.factor * factor)
  return Scaled(init, factor)
