"""Unit-scale base samplers for :func:`jaxinit.variance_scaling`.

Each sampler draws an array whose elements have mean 0 and variance 1
(``E|w|^2 = 1`` for complex dtypes); structured samplers (orthogonal, delta,
identity) are scaled so the average per-element second moment is 1. The
combinator multiplies by ``sqrt(scale / fan)``; a sampler never sees fans.

Any callable ``sample(key, shape, dtype, out_sharding=None) -> Array`` with
that property plugs in. Built-in samplers also expose ``scaled(key, shape,
dtype, variance, out_sharding)``, which folds their normalizing constant into
the single multiply ``jax.nn.initializers`` uses, so the common presets equal
jax's bit for bit in float32 and float64.

Examples:
  >>> import jax, jaxinit
  >>> w = jaxinit.samplers.truncated_normal()(jax.random.key(0), (1000,), jax.numpy.float32)
  >>> bool(abs(w.var() - 1.0) < 0.1)
  True
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax, random
from jax.typing import DTypeLike

from jaxinit.base import OutSharding, Sampler, Shape, real_dtype, rng_sharding, shard

__all__ = [
    "normal", "truncated_normal", "uniform", "orthogonal", "rademacher",
    "sparse", "delta", "identity", "get", "SAMPLER_NAMES",
]


def _is_complex(dtype: DTypeLike) -> bool:
  return jnp.issubdtype(dtype, jnp.complexfloating)


def _std_multiplier(variance: Any, std: float) -> Any:
  """``sqrt(variance) / std`` in ``variance``'s precision (jax's rounding)."""
  if isinstance(variance, jax.Array):
    return jnp.sqrt(variance) / jnp.asarray(std, variance.dtype)
  return np.sqrt(variance) / variance.dtype.type(std)


class _Base:
  """Shared plumbing: ``__call__`` is ``scaled`` with unit variance."""

  def _raw(self, key: jax.Array, shape: Shape, dtype: DTypeLike,
           out_sharding: OutSharding) -> jax.Array:
    raise NotImplementedError

  def _raw_std(self, dtype: DTypeLike) -> float:
    """Exact standard deviation (root mean square for complex) of ``_raw``."""
    return 1.0

  def _multiplier(self, variance: Any, dtype: DTypeLike) -> Any:
    return _std_multiplier(variance, self._raw_std(dtype))

  def scaled(self, key: jax.Array, shape: Shape, dtype: DTypeLike, variance: Any,
             out_sharding: OutSharding = None) -> jax.Array:
    """Draws with per-element variance ``variance`` (a scalar of ``dtype``'s real type)."""
    raw = self._raw(key, shape, dtype, out_sharding)
    return raw * self._multiplier(variance, dtype)

  def __call__(self, key: jax.Array, shape: Shape, dtype: DTypeLike = jnp.float32,
               out_sharding: OutSharding = None) -> jax.Array:
    one = np.asarray(1.0, real_dtype(jnp.dtype(dtype)))[()]
    return self.scaled(key, tuple(shape), dtype, one, out_sharding)

  def to_config(self) -> dict[str, Any]:
    """A plain dict that :func:`get` turns back into an equal sampler."""
    config: dict[str, Any] = {"name": _NAME_OF[type(self)]}
    for field in dataclasses.fields(self):  # type: ignore[arg-type]
      value = getattr(self, field.name)
      config[field.name] = value.to_config() if hasattr(value, "to_config") else value
    return config


@dataclasses.dataclass(frozen=True)
class Normal(_Base):
  """Standard normal ``N(0, 1)``; complex: real and imaginary parts ``N(0, 1/2)``."""

  def _raw(self, key, shape, dtype, out_sharding):
    return random.normal(key, shape, dtype, out_sharding=rng_sharding(out_sharding))


def _phi(x: float) -> float:
  return 0.0 if math.isinf(x) else math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def _x_phi(x: float) -> float:
  return 0.0 if math.isinf(x) else x * _phi(x)


def _normal_mass(lower: float, upper: float) -> float:
  """``P(lower < z < upper)`` without cancellation in either tail."""
  if lower >= 0.0:
    return 0.5 * (math.erfc(lower / math.sqrt(2.0)) - math.erfc(upper / math.sqrt(2.0)))
  if upper <= 0.0:
    return 0.5 * (math.erfc(-upper / math.sqrt(2.0)) - math.erfc(-lower / math.sqrt(2.0)))
  return 1.0 - 0.5 * (math.erfc(upper / math.sqrt(2.0)) + math.erfc(-lower / math.sqrt(2.0)))


def truncated_normal_moments(lower: float, upper: float) -> tuple[float, float]:
  """Mean and standard deviation of ``N(0, 1)`` truncated to ``[lower, upper]``.

  With ``Z = Phi(b) - Phi(a)``: mean ``(phi(a) - phi(b)) / Z`` and variance
  ``1 + (a phi(a) - b phi(b)) / Z - mean^2``. For ``[-2, 2]`` the standard
  deviation is 0.87962566103423978.
  """
  mass = _normal_mass(lower, upper)
  mean = (_phi(lower) - _phi(upper)) / mass
  var = 1.0 + (_x_phi(lower) - _x_phi(upper)) / mass - mean * mean
  return mean, math.sqrt(var)


def complex_truncated_std(upper: float) -> float:
  """Root mean square of a complex ``N(0, 1)`` (``E|z|^2 = 1``) with ``|z| <= upper``.

  ``|z|^2`` is Exp(1); truncated at ``u^2`` its mean is
  ``1 - u^2 exp(-u^2) / (1 - exp(-u^2))``, so for ``u = 2`` the RMS is
  0.96196... (jax uses 0.95311..., which makes its samples 1.86% too wide).
  """
  if math.isinf(upper):
    return 1.0
  u2 = upper * upper
  return math.sqrt(1.0 - u2 * math.exp(-u2) / -math.expm1(-u2))


def _check_number(name: str, value: Any) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
    raise TypeError(f"{name} must be a real number, got {value!r}")
  value = float(value)
  if math.isnan(value):
    raise ValueError(f"{name} must not be NaN")
  return value


@dataclasses.dataclass(frozen=True)
class TruncatedNormal(_Base):
  """``N(0, 1)`` truncated to ``[lower, upper]``, divided by its exact std.

  Bounds are in standard deviations of the normal before truncation. For
  asymmetric bounds the draws have variance 1 and mean ``mu / sigma`` (they
  are not shifted, so they stay within ``[lower, upper] / sigma``). Complex
  dtypes truncate the modulus at ``upper`` and need ``lower == -upper``.
  """
  lower: float = -2.0
  upper: float = 2.0

  def __post_init__(self):
    lower = _check_number("lower", self.lower)
    upper = _check_number("upper", self.upper)
    if not lower < upper:
      raise ValueError(f"lower must be < upper, got lower={lower}, upper={upper}")
    if _normal_mass(lower, upper) <= 1e-300:
      raise ValueError(f"[lower, upper] = [{lower}, {upper}] holds no probability "
                       f"mass of N(0, 1) in float64")
    object.__setattr__(self, "lower", lower)
    object.__setattr__(self, "upper", upper)

  def _raw_std(self, dtype):
    if _is_complex(dtype):
      return complex_truncated_std(self.upper)
    return truncated_normal_moments(self.lower, self.upper)[1]

  def _raw(self, key, shape, dtype, out_sharding):
    if not _is_complex(dtype):
      return random.truncated_normal(key, self.lower, self.upper, shape, dtype,
                                     out_sharding=rng_sharding(out_sharding))
    if self.lower != -self.upper:
      raise ValueError(
          "a complex truncated normal truncates the modulus |z| <= upper, so it "
          f"needs lower == -upper; got lower={self.lower}, upper={self.upper}")
    rdtype = real_dtype(jnp.dtype(dtype))
    key_r, key_theta = random.split(key)
    # Inverse CDF of |z|^2 ~ Exp(1) restricted to [0, upper^2].
    mass = -math.expm1(-self.upper**2) if math.isfinite(self.upper) else 1.0
    u = random.uniform(key_r, shape, rdtype, out_sharding=rng_sharding(out_sharding))
    r = jnp.sqrt(-jnp.log1p(-mass * u))
    theta = random.uniform(key_theta, shape, rdtype, 0.0, 2.0 * math.pi,
                           out_sharding=rng_sharding(out_sharding))
    return lax.complex(r * jnp.cos(theta), r * jnp.sin(theta)).astype(dtype)


@dataclasses.dataclass(frozen=True)
class Uniform(_Base):
  """``U(-sqrt 3, sqrt 3)``; complex: uniform on the disk of radius ``sqrt 2``."""

  def _raw(self, key, shape, dtype, out_sharding):
    if not _is_complex(dtype):
      return random.uniform(key, shape, dtype, -1.0, 1.0,
                            out_sharding=rng_sharding(out_sharding))
    rdtype = real_dtype(jnp.dtype(dtype))
    key_r, key_theta = random.split(key)
    r = jnp.sqrt(2.0 * random.uniform(key_r, shape, rdtype, out_sharding=rng_sharding(out_sharding)))
    theta = random.uniform(key_theta, shape, rdtype, 0.0, 2.0 * math.pi,
                           out_sharding=rng_sharding(out_sharding))
    return lax.complex(r * jnp.cos(theta), r * jnp.sin(theta)).astype(dtype)

  def _raw_std(self, dtype):
    return 1.0 if _is_complex(dtype) else 1.0 / math.sqrt(3.0)

  def _multiplier(self, variance, dtype):
    if _is_complex(dtype):
      return _std_multiplier(variance, 1.0)
    # sqrt(3 variance), rounded as jax.nn.initializers.variance_scaling does.
    if isinstance(variance, jax.Array):
      return jnp.sqrt(3 * variance)
    return np.sqrt(variance.dtype.type(3) * variance)


@dataclasses.dataclass(frozen=True)
class Rademacher(_Base):
  """``+-1`` with equal probability; complex: ``(+-1 +- i) / sqrt 2``."""

  def _raw(self, key, shape, dtype, out_sharding):
    rdtype = real_dtype(jnp.dtype(dtype))
    if not _is_complex(dtype):
      signs = random.rademacher(key, shape, jnp.int8, out_sharding=rng_sharding(out_sharding))
      return signs.astype(dtype)
    signs = random.rademacher(key, (2, *shape), jnp.int8).astype(rdtype) / math.sqrt(2.0)
    return shard(lax.complex(signs[0], signs[1]), out_sharding)


@dataclasses.dataclass(frozen=True)
class Sparse(_Base):
  """Normal draws with exactly ``ceil(fraction * rows)`` zeros in each column.

  The array is viewed as a matrix whose columns run along the last axis
  (rows are all other axes; a vector is one column), so every output unit has
  the same number of non-zero incoming weights (Martens 2010's sparse init;
  torch.nn.init.sparse_ counts zeros along the other axis of its (out, in)
  layout). Non-zeros are ``N(0, rows / (rows - zeros))`` so the per-element
  variance is exactly 1.
  """
  fraction: float = 0.9

  def __post_init__(self):
    fraction = _check_number("fraction", self.fraction)
    if not 0.0 <= fraction < 1.0:
      raise ValueError(f"fraction (of zeros per column) must be in [0, 1), got {fraction}")
    object.__setattr__(self, "fraction", fraction)

  def _raw(self, key, shape, dtype, out_sharding):
    if len(shape) == 0:
      raise ValueError("sparse sampler needs a shape of rank >= 1, got ()")
    cols = shape[-1] if len(shape) >= 2 else 1
    rows = math.prod(shape) // cols if cols else 0
    zeros = math.ceil(self.fraction * rows)
    if rows and zeros >= rows:
      raise ValueError(
          f"fraction={self.fraction} zeroes all {rows} rows of each column of "
          f"shape {shape}; use a smaller fraction or a larger shape")
    key_values, key_mask = random.split(key)
    values = random.normal(key_values, (rows, cols), dtype)
    # Rank each column's uniforms (double argsort: exact counts even with ties).
    ranks = jnp.argsort(jnp.argsort(random.uniform(key_mask, (rows, cols)), axis=0), axis=0)
    boost = math.sqrt(rows / (rows - zeros)) if rows else 1.0
    out = jnp.where(ranks < zeros, jnp.zeros((), dtype), values * boost)
    return shard(out.reshape(shape), out_sharding)


def _replicated_call(fn, key: jax.Array, out_sharding: OutSharding) -> jax.Array:
  """``fn(key)`` computed whole on every device of ``out_sharding``'s mesh.

  Inside ``shard_map`` no sharding propagates, so XLA cannot partition a
  reduction differently on different meshes: the values are the same on
  every mesh, to the bit, and only the final placement depends on it.
  """
  mesh = getattr(out_sharding, "mesh", None)
  if mesh is None:
    mesh = jax.sharding.get_abstract_mesh()
  if mesh is None or mesh.empty:
    return fn(key)
  spec = jax.sharding.PartitionSpec()
  return jax.shard_map(fn, mesh=mesh, in_specs=spec, out_specs=spec)(key)


def _gaussian_lower_trapezoid(key: jax.Array, rows: int, cols: int,
                              dtype: DTypeLike) -> jax.Array:
  """A ``rows x cols`` matrix, iid N(0, 1) on and below the diagonal, 0 above.

  Draws only the ~rows*cols - cols^2/2 numbers it needs (half of a square):
  with ``a = ceil(cols / 2)``, ``b = cols - a``, the two triangles of the
  leading ``cols x cols`` block, ``L11`` (a x a) and ``L22`` (b x b), share one
  ``(a + 1) x a`` rectangle (its strictly lower part is L11, its upper part
  transposed is L22, as in LAPACK's rectangular full packed format).
  """
  a = (cols + 1) // 2
  b = cols - a
  key_tri, key_left, key_right = random.split(key, 3)
  packed = random.normal(key_tri, (a + 1, a), dtype)
  l11 = jnp.tril(packed[1:, :])
  l22 = jnp.tril(packed[:a, :].T)[:b, :b]
  left = random.normal(key_left, (rows - a, a), dtype)            # below L11
  right = random.normal(key_right, (rows - cols, b), dtype)       # below L22
  top = jnp.concatenate([l11, jnp.zeros((a, b), dtype)], axis=1)
  bottom = jnp.concatenate([left, jnp.concatenate([l22, right], axis=0)], axis=1)
  return jnp.concatenate([top, bottom], axis=0)


def haar_orthonormal(key: jax.Array, rows: int, cols: int, dtype: DTypeLike) -> jax.Array:
  """A Haar-distributed ``rows x cols`` matrix with orthonormal columns (rows >= cols).

  Stewart (1980): Householder QR of a Gaussian matrix, with the signs of R's
  diagonal moved into Q, is Haar; and the k-th Householder vector of that QR
  is itself just an independent Gaussian vector of length ``rows - k``. So we
  draw the vectors directly and only form the product of reflectors
  (LAPACK's orgqr via ``lax.linalg.householder_product``), skipping the
  factorization jax.random.orthogonal pays for (about half the flops of QR)
  and half of its random numbers.
  """
  x = _gaussian_lower_trapezoid(key, rows, cols, dtype)
  alpha = jnp.diagonal(x)
  norm = jnp.sqrt(jnp.sum(jnp.real(x * jnp.conj(x)), axis=0))
  # beta = -sign(Re alpha) |x_k|: reflecting x_k onto beta e_1 never cancels.
  sign = jnp.where(jnp.real(alpha) >= 0, 1.0, -1.0).astype(norm.dtype)
  beta = -sign * norm
  vectors = x / (alpha - beta)[None, :]
  taus = (beta - alpha) / beta
  q = lax.linalg.householder_product(vectors, taus.astype(dtype))
  # R's diagonal is beta; multiplying column k by sign(beta_k) makes it positive.
  return q * (-sign).astype(dtype)[None, :]


@dataclasses.dataclass(frozen=True)
class Orthogonal(_Base):
  """Haar-random orthogonal (unitary for complex) structure times ``sqrt(max(rows, cols))``.

  The array is viewed as a matrix with ``shape[column_axis]`` columns and all
  other axes flattened into rows; it has orthonormal columns if rows >= cols,
  orthonormal rows otherwise, and every element has second moment
  ``1 / max(rows, cols)`` before the rescale to 1. Sampling uses
  :func:`haar_orthonormal` (Householder product, no QR).
  """
  column_axis: int = -1

  def __post_init__(self):
    if isinstance(self.column_axis, bool) or not isinstance(self.column_axis, (int, np.integer)):
      raise TypeError(f"column_axis must be an int, got {self.column_axis!r}")
    object.__setattr__(self, "column_axis", int(self.column_axis))

  def matrix_shape(self, shape: Shape) -> tuple[int, int]:
    if len(shape) < 2:
      raise ValueError(f"orthogonal sampler needs a shape of rank >= 2 to fill "
                       f"with orthonormal rows or columns, got {shape}")
    if not -len(shape) <= self.column_axis < len(shape):
      raise ValueError(f"column_axis={self.column_axis} is out of range for shape {shape}")
    cols = shape[self.column_axis]
    rows = math.prod(shape) // cols if cols else 0
    return rows, cols

  def scaled(self, key, shape, dtype, variance, out_sharding=None):
    rows, cols = self.matrix_shape(shape)
    if rows == 0 or cols == 0:
      return shard(jnp.zeros(shape, dtype), out_sharding)
    big, small = max(rows, cols), min(rows, cols)
    # One multiply by one host-side constant: the same rounding on every mesh.
    factor = _std_multiplier(variance, 1.0 / math.sqrt(big))
    q = _replicated_call(functools.partial(haar_orthonormal, rows=big, cols=small, dtype=dtype),
                         key, out_sharding) * factor
    if rows < cols:
      q = q.T
    axis = self.column_axis % len(shape)
    q = q.reshape(shape[:axis] + shape[axis + 1:] + (cols,))
    return shard(jnp.moveaxis(q, -1, axis), out_sharding)


@dataclasses.dataclass(frozen=True)
class Identity(_Base):
  """``eye(rows, cols) * sqrt(max(rows, cols))`` for 2-D shapes (deterministic)."""

  def _raw(self, key, shape, dtype, out_sharding):
    if len(shape) != 2:
      raise ValueError(f"identity sampler needs a 2-D shape, got {shape}; wrap it "
                       f"in delta() for convolution kernels")
    scale = math.sqrt(max(shape)) if min(shape) else 1.0
    return shard(jnp.eye(*shape, dtype=dtype) * scale, out_sharding)


@dataclasses.dataclass(frozen=True)
class Delta(_Base):
  """A convolution kernel that is ``base`` at the centre tap and 0 elsewhere.

  For a kernel of shape ``spatial + (in, out)`` the centre tap is index
  ``(k - 1) // 2`` along each spatial axis, the tap that 'SAME'-padded
  ``lax.conv`` aligns with the output (jax's delta_orthogonal; torch's dirac_
  uses ``k // 2``, which differs for even k). The centre holds
  ``base(key, (in, out))`` times ``sqrt(prod(spatial))`` so the average
  per-element second moment of the whole kernel is 1. With an orthogonal
  base this is Xiao et al. 2018's delta-orthogonal kernel.
  """
  base: Sampler = dataclasses.field(default_factory=Orthogonal)

  def __post_init__(self):
    object.__setattr__(self, "base", get(self.base))

  def _raw(self, key, shape, dtype, out_sharding):
    if len(shape) < 3:
      raise ValueError(f"delta sampler needs a convolution kernel shape "
                       f"(*spatial, in, out) of rank >= 3, got {shape}")
    spatial = shape[:-2]
    centre = self.base(key, shape[-2:], dtype) * math.sqrt(math.prod(spatial))
    index = tuple((k - 1) // 2 for k in spatial)
    kernel = jnp.zeros(shape, dtype).at[index].set(centre)
    return shard(kernel, out_sharding)


_FACTORIES: dict[str, type] = {
    "normal": Normal, "truncated_normal": TruncatedNormal, "uniform": Uniform,
    "orthogonal": Orthogonal, "rademacher": Rademacher, "sparse": Sparse,
    "delta": Delta, "identity": Identity,
}
_NAME_OF = {cls: name for name, cls in _FACTORIES.items()}
SAMPLER_NAMES: tuple[str, ...] = tuple(_FACTORIES)


def normal() -> Normal:
  """Standard normal sampler."""
  return Normal()


def truncated_normal(lower: float = -2.0, upper: float = 2.0) -> TruncatedNormal:
  """Normal truncated to ``[lower, upper]`` standard deviations, rescaled to variance 1."""
  return TruncatedNormal(lower, upper)


def uniform() -> Uniform:
  """Symmetric uniform sampler ``U(-sqrt 3, sqrt 3)``."""
  return Uniform()


def orthogonal(column_axis: int = -1) -> Orthogonal:
  """Haar orthogonal sampler; ``column_axis`` holds the orthonormal columns."""
  return Orthogonal(column_axis)


def rademacher() -> Rademacher:
  """Random signs."""
  return Rademacher()


def sparse(fraction: float = 0.9) -> Sparse:
  """Normal with a fixed fraction of zeros in every column."""
  return Sparse(fraction)


def delta(base: Sampler | str | dict = "orthogonal") -> Delta:
  """``base`` at a convolution kernel's centre tap, zeros elsewhere."""
  return Delta(base)


def identity() -> Identity:
  """Scaled identity matrix."""
  return Identity()


def get(spec: Sampler | str | dict[str, Any]) -> Sampler:
  """A sampler from a name, a config dict (``{"name": ..., **params}``) or itself.

  Examples:
    >>> import jaxinit
    >>> jaxinit.samplers.get({"name": "truncated_normal", "lower": -3.0, "upper": 3.0})
    TruncatedNormal(lower=-3.0, upper=3.0)
  """
  if isinstance(spec, str):
    spec = {"name": spec}
  if isinstance(spec, dict):
    params = dict(spec)
    name = params.pop("name", None)
    if name not in _FACTORIES:
      raise ValueError(f"sampler must be a sampler object or one of "
                       f"{list(SAMPLER_NAMES)}, got {name!r}")
    cls = _FACTORIES[name]
    accepted = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
      raise TypeError(f"sampler {name!r} takes parameters {accepted}, got unknown {unknown}")
    return cls(**params)
  if callable(spec):
    return spec
  raise TypeError(f"sampler must be a callable sampler, a name in "
                  f"{list(SAMPLER_NAMES)} or a config dict, got {type(spec).__name__}")
