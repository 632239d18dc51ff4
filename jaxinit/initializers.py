"""The variance-scaling combinator and the few initializers outside it.

Every random preset in jaxinit is ``variance_scaling(scale, mode, sampler)``:
a unit-scale base sampler times ``sqrt(scale / n)``, where ``n`` is a fan of
the weight shape chosen by ``mode``. Deterministic initializers
(:class:`Constant`, :class:`Dirac`), jax's ``[0, scale)`` :class:`Uniform`
and the wrapper :class:`Scaled` complete the algebra. All are frozen
dataclasses: hashable, comparable, printable, and round-trip through
``to_config`` / :func:`jaxinit.get`. Each takes a default ``dtype`` (the
factory's ``dtype`` argument in ``jax.nn.initializers``), used when a call
passes none.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import random
from jax.typing import DTypeLike

from jaxinit import checks
from jaxinit import samplers as samplers_lib
from jaxinit.base import (Initializer, OutSharding, Sampler, Shape, canonical_dtype,
                          default_dtype, real_dtype, rng_sharding, sampling_dtype, shard)

MODES: tuple[str, ...] = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg", "fan_max", "unit")

Axes = int | tuple[int, ...] | None


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


def _resolve_axes(shape: Shape, in_axis: Axes, out_axis: Axes, batch_axis: Axes
                  ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
  """In, out and batch axes of ``shape`` as non-negative tuples, checked against its rank."""
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
  return ins, outs, batch


def _fans(shape: Shape, ins: tuple[int, ...], outs: tuple[int, ...], batch: tuple[int, ...],
          feature_group_count: int) -> tuple[int, int]:
  named = set(ins) | set(outs) | set(batch)
  receptive = math.prod(shape[a] for a in range(len(shape)) if a not in named)
  fan_in = receptive * math.prod(shape[a] for a in ins)
  out_size = math.prod(shape[a] for a in outs)
  if out_size % feature_group_count:
    raise ValueError(f"feature_group_count={feature_group_count} must divide the "
                     f"output size {out_size} of shape {shape}")
  return fan_in, receptive * out_size // feature_group_count


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
  ``out / groups`` outputs, hence the division of fan-out. Fans of a batched
  weight are those of one slice. A pure host computation: usable inside
  ``jit``, ``vmap`` and ``eval_shape``.

  Args:
    shape: the weight shape.
    in_axis: input axis or axes.
    out_axis: output axis or axes.
    batch_axis: axes that index independent weights (ignored by the fans).
    feature_group_count: convolution groups (``in`` for depthwise).

  Returns:
    ``(fan_in, fan_out)`` as Python ints (0 for a zero-size axis among them).

  Raises:
    TypeError: a shape or axis that is not made of ints, a group count that
    is not an int. ValueError: axes out of range or overlapping, a group
    count that does not divide the output size.

  Examples:
    >>> import jaxinit
    >>> jaxinit.compute_fans((3, 3, 16, 32))
    (144, 288)
    >>> jaxinit.compute_fans((3, 3, 1, 32), feature_group_count=32)  # depthwise
    (9, 9)
  """
  shape = checks.shape("shape", shape)
  in_axis = checks.axes("in_axis", in_axis, allow_none=True)
  out_axis = checks.axes("out_axis", out_axis, allow_none=True)
  batch_axis = checks.axes("batch_axis", batch_axis)
  groups = checks.positive_int("feature_group_count", feature_group_count)
  return _fans(shape, *_resolve_axes(shape, in_axis, out_axis, batch_axis), groups)


def _denominator(mode: str, fan_in: int, fan_out: int) -> float:
  return {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2,
          "fan_geo_avg": math.sqrt(fan_in * fan_out), "fan_max": max(fan_in, fan_out),
          "unit": 1.0}[mode]


def _draw_slices(draw: Callable[[jax.Array, Shape], jax.Array], key: jax.Array, shape: Shape,
                 batch: tuple[int, ...], group_axis: int | None, groups: int) -> jax.Array:
  """``draw(key, slice_shape)`` for every batch index and convolution group, independently.

  The batch axes and (for ``groups > 1``) the split of ``group_axis`` into
  ``(groups, size / groups)`` index the slices; each gets its own key from
  ``random.split`` and one vmapped draw, so a slice is distributed exactly as
  a single draw of its shape.
  """
  rest = [a for a in range(len(shape)) if a not in batch]
  lead = [shape[a] for a in batch]
  slice_shape = [shape[a] for a in rest]
  if groups > 1:
    j = rest.index(group_axis)
    slice_shape[j] //= groups
    lead.append(groups)
  keys = random.split(key, math.prod(lead))
  out = jax.vmap(lambda k: draw(k, tuple(slice_shape)))(keys)
  out = out.reshape(tuple(lead) + tuple(slice_shape))
  if groups > 1:  # (batch..., g, s_0, ..., s_j / g, ...) -> (batch..., s_0, ..., s_j, ...)
    out = jnp.moveaxis(out, len(batch), len(batch) + j)
    out = out.reshape(tuple(shape[a] for a in batch) + tuple(shape[a] for a in rest))
  return jnp.transpose(out, np.argsort(list(batch) + rest))


def _with_dtype(config: dict[str, Any], dtype: str | None) -> dict[str, Any]:
  """``config`` plus the default dtype, when one is set (absent otherwise: TOML has no null)."""
  return config if dtype is None else {**config, "dtype": dtype}


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
  dtype: str | None = None

  def __post_init__(self):
    set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
    set_("scale", checks.real("scale", self.scale, minimum=0.0, traced_ok=True))
    set_("mode", checks.choice("mode", self.mode, MODES))
    set_("sampler", samplers_lib.get(self.sampler, "distribution"))
    set_("in_axis", checks.axes("in_axis", self.in_axis, allow_none=True))
    set_("out_axis", checks.axes("out_axis", self.out_axis, allow_none=True))
    set_("batch_axis", _as_tuple(checks.axes("batch_axis", self.batch_axis)))
    if self.in_axis is None and self.out_axis is None:
      raise ValueError("in_axis and out_axis cannot both be None")
    _check_disjoint_static(self.in_axis, self.out_axis, self.batch_axis)
    set_("feature_group_count",
         checks.positive_int("feature_group_count", self.feature_group_count))
    set_("dtype", default_dtype(self.dtype))

  def fan(self, shape: Sequence[int]) -> float:
    """The denominator ``n`` that ``mode`` picks for ``shape`` (axes are checked in every mode)."""
    shape = checks.shape("shape", shape)
    n = _denominator(self.mode, *_fans(shape, *self._axes(shape), self.feature_group_count))
    if n == 0:
      raise ValueError(f"mode={self.mode!r} gives a zero fan for shape {shape}: a zero-size "
                       f"axis has no variance")
    return n

  def _axes(self, shape: Shape) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    if (self.mode == "unit" and len(shape) < 2 and (self.in_axis, self.out_axis) == (-2, -1)
        and not self.batch_axis):
      # A fixed-variance init of a bias or a scalar: the default axes of a
      # kernel do not apply (any axes given explicitly are checked).
      return (), (), ()
    return _resolve_axes(shape, self.in_axis, self.out_axis, self.batch_axis)

  def _variance(self, n: float, shape: Shape, dtype: np.dtype, draw_dtype: np.dtype) -> Any:
    """The per-element variance as :func:`~jaxinit.samplers.std_multiplier` takes it."""
    if checks.is_traced(self.scale):
      return (self.scale / n).astype(real_dtype(draw_dtype))
    variance = self.scale / n
    std = math.sqrt(variance)
    what = f"the standard deviation for scale={self.scale:g}, mode={self.mode!r}, shape {shape}"
    checks.representable("sqrt(scale / fan)", std, dtype, what=what)
    bound = self.sampler.bound(draw_dtype) if hasattr(self.sampler, "bound") else math.inf
    if math.isfinite(bound):
      checks.representable("sqrt(scale / fan) * bound", std * bound, dtype,
                           what=f"the largest draw of {type(self.sampler).__name__}; {what}")
    if self.mode != "unit":
      # jax.nn.initializers rounds the variance to the draw dtype first: so do
      # we, for bit-identical presets, wherever that loses nothing.
      with np.errstate(over="ignore", under="ignore"):
        rounded = np.asarray(variance, real_dtype(draw_dtype))[()]
      if variance == 0.0 or (np.isfinite(rounded) and rounded >= np.finfo(rounded.dtype).tiny):
        return rounded
    return variance

  def __call__(self, key: jax.Array, shape: Shape, dtype: DTypeLike | None = None,
               out_sharding: OutSharding = None) -> jax.Array:
    shape = checks.shape("shape", shape)
    dtype = canonical_dtype(dtype, self.dtype)
    ins, outs, batch = self._axes(shape)
    groups = self.feature_group_count
    fan_in, fan_out = _fans(shape, ins, outs, batch, groups)
    structured = not getattr(self.sampler, "elementwise", False)
    if structured and groups > 1 and len(outs) != 1:
      raise ValueError(f"feature_group_count={groups} with the structured sampler "
                       f"{self.sampler!r} needs a single out axis to split into groups, "
                       f"got out_axis={self.out_axis} for shape {shape}")
    if math.prod(shape) == 0:
      return shard(jnp.zeros(shape, dtype), out_sharding)
    draw_dtype = sampling_dtype(dtype)
    variance = self._variance(_denominator(self.mode, fan_in, fan_out), shape, dtype, draw_dtype)

    def draw(k: jax.Array, s: Shape, sharding: OutSharding = None) -> jax.Array:
      if hasattr(self.sampler, "scaled"):
        return self.sampler.scaled(k, s, draw_dtype, variance, sharding)
      return self.sampler(k, s, draw_dtype, sharding) * samplers_lib.std_multiplier(
          variance, 1.0, draw_dtype)

    if structured and (batch or groups > 1):
      out = _draw_slices(draw, key, shape, batch, outs[0], groups)
    else:
      out = draw(key, shape, out_sharding)
    return shard(out.astype(dtype), out_sharding)

  def to_config(self) -> dict[str, Any]:
    """Plain-data description; ``jaxinit.get(init.to_config()) == init``."""
    if not hasattr(self.sampler, "to_config"):
      raise TypeError(f"sampler {self.sampler!r} has no to_config(); only built-in "
                      f"samplers can be described as data")
    listify = lambda a: list(a) if isinstance(a, tuple) else a  # noqa: E731
    return _with_dtype(
        {"name": "variance_scaling", "scale": float(self.scale), "mode": self.mode,
         "sampler": self.sampler.to_config(), "in_axis": listify(self.in_axis),
         "out_axis": listify(self.out_axis), "batch_axis": listify(self.batch_axis),
         "feature_group_count": self.feature_group_count}, self.dtype)


def variance_scaling(scale: float, mode: str, distribution: Sampler | str | dict[str, Any],
                     in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (),
                     dtype: DTypeLike | None = None, *,
                     feature_group_count: int = 1) -> VarianceScaling:
  r"""The combinator: ``W = sqrt(scale / n) * S`` with ``S`` a unit-scale sample.

  Takes ``jax.nn.initializers.variance_scaling``'s arguments in its order, with
  its meaning (same values, bit for bit, for its modes and distributions in
  float32 and float64), and more. ``n`` is chosen by ``mode`` from the fans of
  :func:`compute_fans`:

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
  float8 weights follow the same distribution as float32 ones. The scale
  ``sqrt(scale / n)`` is computed on the host in float64 (rounded as jax does
  where that is exact) and applied in the draw's precision; a standard
  deviation, or a bounded sampler's largest draw, that the output dtype
  cannot hold is an error, not inf or 0.

  Batch axes index independent weights: the fans are those of one slice, and
  a structured sampler (orthogonal, sparse, delta, identity, any callable)
  draws every slice, and every group of a grouped convolution, as its own
  sample with its own key (elementwise samplers draw the whole array at
  once, which is the same thing). A sampler sees the slice's shape: the shape
  without its batch axes, with the out axis divided by the group count.

  Args:
    scale: non-negative variance multiplier (e.g. ``2.0`` for He, or
      ``gain(activation) ** 2``). May be a traced scalar, for vmapping over
      scales inside a jitted sweep.
    mode: one of :data:`MODES`.
    distribution: jax's ``"truncated_normal"`` (truncated at 2 sd and
      rescaled to unit variance), ``"normal"`` or ``"uniform"``; or any
      jaxinit sampler: an object, a name among ``"orthogonal"``,
      ``"rademacher"``, ``"sparse"``, ``"delta"``, ``"identity"``, or a config
      dict (see :mod:`jaxinit.samplers`).
    in_axis: input axis or axes of the weight (None: all axes not named by
      ``out_axis`` / ``batch_axis``).
    out_axis: output axis or axes (None: all not named elsewhere).
    batch_axis: axes of independent weights, ignored by the fans.
    dtype: the default dtype of a call that passes none.
    feature_group_count: groups of a grouped or depthwise convolution.

  Returns:
    An :class:`~jaxinit.Initializer`.

  Raises:
    ValueError / TypeError at construction for a negative, non-finite or
    non-numeric scale, an unknown mode or sampler, or overlapping axes; at
    call time for axes out of the shape's range (in every mode; only the
    default axes of a ``"unit"`` initializer are not required of a bias of
    rank < 2), a scale the dtype cannot represent, or an integer or bool
    dtype. A zero-size shape gives an empty array.

  Examples:
    >>> import jax, jaxinit
    >>> init = jaxinit.variance_scaling(2.0, "fan_in", "normal")
    >>> w = init(jax.random.key(0), (512, 256))
    >>> round(float(w.var() * 512), 1)
    2.0
  """
  return VarianceScaling(scale, mode, distribution, in_axis, out_axis, batch_axis,
                         feature_group_count, dtype)


def _check_values_representable(name: str, value: Any, dtype: np.dtype) -> None:
  """Every number of a host scalar or nested tuple must survive the cast to ``dtype``."""
  array = np.asarray(value)
  for part in ((array.real, array.imag) if np.iscomplexobj(array) else (array,)):
    magnitude = np.abs(part)
    nonzero = magnitude[magnitude > 0]
    for extreme in ((magnitude.max(), nonzero.min()) if nonzero.size else ()):
      checks.representable(name, float(extreme), dtype,
                           what="" if array.ndim == 0 else "an element of value")


def _encode(value: Any) -> Any:
  """A number or nested tuple as JSON/TOML data; complex values as ``{"real", "imag"}``."""
  array = np.asarray(value)
  if np.iscomplexobj(array):
    return {"real": array.real.tolist(), "imag": array.imag.tolist()}
  return array.tolist()


def _decode(value: Any) -> Any:
  if isinstance(value, dict):
    if set(value) != {"real", "imag"}:
      raise TypeError(f"value must be a number, an array or {{'real': ..., 'imag': ...}}, "
                      f"got {value!r}")
    return np.asarray(value["real"]) + 1j * np.asarray(value["imag"])
  return value


@dataclasses.dataclass(frozen=True)
class Constant:
  """Every element equal to ``value`` (an array ``value`` is broadcast to the shape).

  ``zeros`` and ``ones`` are instances. ``value`` is kept as a Python number
  or, for an array, as nested tuples of them: hashable and plain data.
  """
  value: Any = 0.0
  dtype: str | None = None

  def __post_init__(self):
    object.__setattr__(self, "value", checks.numeric("value", _decode(self.value),
                                                     traced_ok=True))
    object.__setattr__(self, "dtype", default_dtype(self.dtype))

  def _name(self) -> str:
    return {0.0: "zeros", 1.0: "ones"}.get(self.value, "constant") if isinstance(
        self.value, float) and self.dtype is None else "constant"

  def __call__(self, key: jax.Array | None = None, shape: Shape | None = None,
               dtype: DTypeLike | None = None, out_sharding: OutSharding = None) -> jax.Array:
    del key
    if shape is None:
      name = self._name()
      raise TypeError(
          f"{name} is already an initializer, called as init(key, shape, dtype): pass "
          f"jaxinit.{name} itself (kernel_init=jaxinit.{name}, not jaxinit.{name}())"
          + (f", or jaxinit.{name}_init() as with Flax's nn.initializers.{name}_init()"
             if name != "constant" else ""))
    shape = checks.shape("shape", shape)
    dtype = canonical_dtype(dtype, self.dtype)
    if checks.is_traced(self.value):
      value = self.value
    else:
      if np.iscomplexobj(self.value) and not jnp.issubdtype(dtype, jnp.complexfloating):
        raise TypeError(f"a complex value {self.value} needs a complex dtype, "
                        f"got {dtype.name}")
      _check_values_representable("value", self.value, dtype)
      value = self.value if isinstance(self.value, (float, complex)) else np.asarray(self.value)
    try:
      out = jnp.full(shape, value, dtype)
    except (ValueError, TypeError):
      raise ValueError(f"value of shape {np.shape(value)} does not broadcast to "
                       f"shape {shape}") from None
    return shard(out, out_sharding)

  def to_config(self) -> dict[str, Any]:
    return _with_dtype({"name": "constant", "value": _encode(self.value)}, self.dtype)


@dataclasses.dataclass(frozen=True)
class Uniform:
  """``U[0, scale)``, as ``jax.nn.initializers.uniform(scale)`` (bit for bit in float32 and
  float64); see :func:`jaxinit.uniform`. A negative scale gives ``(scale, 0]``, as in jax."""
  scale: float = 1e-2
  dtype: str | None = None

  def __post_init__(self):
    object.__setattr__(self, "scale", checks.real("scale", self.scale, traced_ok=True))
    object.__setattr__(self, "dtype", default_dtype(self.dtype))

  def __call__(self, key: jax.Array, shape: Shape, dtype: DTypeLike | None = None,
               out_sharding: OutSharding = None) -> jax.Array:
    shape = checks.shape("shape", shape)
    dtype = canonical_dtype(dtype, self.dtype)
    if jnp.issubdtype(dtype, jnp.complexfloating):
      raise TypeError(f"uniform(scale) draws from [0, scale) on the real line (as "
                      f"jax.nn.initializers.uniform), so dtype must be real, got {dtype.name}; "
                      f"uniform(scale, symmetric=True) draws complex weights on a disk")
    draw_dtype = sampling_dtype(dtype)
    if checks.is_traced(self.scale):
      scale = jnp.asarray(self.scale, draw_dtype)
    else:
      checks.representable("scale", self.scale, dtype)
      scale = np.asarray(self.scale, draw_dtype)[()]
    out = random.uniform(key, shape, draw_dtype, out_sharding=rng_sharding(out_sharding))
    return shard((out * scale).astype(dtype), out_sharding)

  def to_config(self) -> dict[str, Any]:
    return _with_dtype({"name": "uniform", "scale": float(self.scale)}, self.dtype)


@dataclasses.dataclass(frozen=True)
class Dirac:
  """``scale`` times the identity map: ``eye`` for 2-D, a centre-tap delta for kernels.

  For a convolution kernel ``spatial + (in / groups, out)`` the tap at
  ``(k - 1) // 2`` on each spatial axis holds ``scale * eye(in / groups,
  out / groups)`` repeated for each of the ``feature_group_count`` groups
  along the out axis, and every other tap is 0, so a 'SAME'-padded (grouped
  or depthwise) convolution copies its channels: exactly the identity when
  each group has as many outputs as inputs, else the first
  ``min(in, out) / groups`` channels of each group (torch's
  ``dirac_(w, groups)``, whose centre is ``k // 2``: the two agree for odd
  ``k``).
  """
  scale: float = 1.0
  dtype: str | None = None
  feature_group_count: int = 1

  def __post_init__(self):
    object.__setattr__(self, "scale", checks.real("scale", self.scale, traced_ok=True))
    object.__setattr__(self, "dtype", default_dtype(self.dtype))
    object.__setattr__(self, "feature_group_count",
                       checks.positive_int("feature_group_count", self.feature_group_count))

  def __call__(self, key: jax.Array, shape: Shape, dtype: DTypeLike | None = None,
               out_sharding: OutSharding = None) -> jax.Array:
    del key
    shape = checks.shape("shape", shape)
    dtype = canonical_dtype(dtype, self.dtype)
    if len(shape) < 2:
      raise ValueError(f"dirac/identity needs a shape of rank >= 2 ((in, out) or a "
                       f"convolution kernel (*spatial, in, out)), got {shape}")
    groups, (n_in, n_out) = self.feature_group_count, shape[-2:]
    if n_out % groups:
      raise ValueError(f"feature_group_count={groups} must divide the output size {n_out} "
                       f"of shape {shape}")
    if not checks.is_traced(self.scale):
      checks.representable("scale", self.scale, dtype)
    block = jnp.tile(jnp.eye(n_in, n_out // groups, dtype=dtype), (1, groups))
    block = block * jnp.asarray(self.scale, dtype)
    if len(shape) == 2:
      return shard(block, out_sharding)
    index = tuple((k - 1) // 2 for k in shape[:-2])
    if 0 in shape:
      return shard(jnp.zeros(shape, dtype), out_sharding)
    return shard(jnp.zeros(shape, dtype).at[index].set(block), out_sharding)

  def to_config(self) -> dict[str, Any]:
    config = {"name": "dirac", "scale": float(self.scale)}
    if self.feature_group_count != 1:
      config["feature_group_count"] = self.feature_group_count
    return _with_dtype(config, self.dtype)


def _default_dtype_of(init: Initializer) -> str | None:
  """A jaxinit initializer's default dtype (None for others: their own default applies)."""
  dtype = getattr(init, "dtype", None)
  return dtype if isinstance(dtype, str) else None


@dataclasses.dataclass(frozen=True)
class Scaled:
  """``factor * init(...)``, for initializers outside the combinator.

  The product is taken in the draw precision (float32 for low-precision
  dtypes) and cast, as the combinator does.
  """
  init: Initializer
  factor: float

  def __post_init__(self):
    object.__setattr__(self, "factor", checks.real("factor", self.factor, traced_ok=True))
    if not callable(self.init):
      raise TypeError(f"init must be an initializer, got {self.init!r}")

  def __call__(self, key: jax.Array, shape: Shape, dtype: DTypeLike | None = None,
               out_sharding: OutSharding = None) -> jax.Array:
    dtype = canonical_dtype(dtype, _default_dtype_of(self.init))
    out = self.init(key, shape, sampling_dtype(dtype), out_sharding)
    product = out * jnp.asarray(self.factor, real_dtype(out.dtype))
    return shard(product.astype(dtype), out_sharding)

  def to_config(self) -> dict[str, Any]:
    if not hasattr(self.init, "to_config"):
      raise TypeError(f"{self.init!r} has no to_config()")
    return {"name": "scaled", "init": self.init.to_config(), "factor": float(self.factor)}


def scaled(init: Initializer, factor: float) -> Initializer:
  """``factor * init``, folded into the scale where ``init`` allows it.

  A :class:`VarianceScaling` gets ``scale * factor^2`` (for ``factor >= 0``),
  a :class:`Constant`, :class:`Dirac` or :class:`Uniform` its value times
  ``factor``, a :class:`Scaled` its factor times ``factor``; anything else
  (and a traced factor) is wrapped.

  Examples:
    >>> import jaxinit
    >>> jaxinit.scaled(jaxinit.he_normal(), 0.5).scale
    0.5
  """
  factor = checks.real("factor", factor, traced_ok=True)
  if checks.is_traced(factor):
    return Scaled(init, factor)
  if factor == 0.0:
    return Constant(0.0, _default_dtype_of(init))
  if isinstance(init, VarianceScaling) and factor > 0 and not checks.is_traced(init.scale):
    return dataclasses.replace(init, scale=init.scale * factor * factor)
  if isinstance(init, Constant) and not checks.is_traced(init.value):
    return dataclasses.replace(init, value=np.asarray(init.value) * factor)
  if isinstance(init, (Dirac, Uniform)) and not checks.is_traced(init.scale):
    return dataclasses.replace(init, scale=init.scale * factor)
  if isinstance(init, Scaled) and not checks.is_traced(init.factor):
    return Scaled(init.init, init.factor * factor)
  return Scaled(init, factor)
