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

Samplers whose elements are independent and identically distributed
(normal, truncated normal, uniform, Rademacher) say so with
``elementwise = True``: a slice of one of their draws is a draw of the
slice, so the combinator draws batched weights in one call. Every other
sampler (orthogonal, sparse, delta, identity, any user callable) is called
once per batch slice and convolution group, with independent keys.

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
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax, random
from jax.typing import DTypeLike

from jaxinit import checks
from jaxinit._reduce import pairwise_sum
from jaxinit.base import (OutSharding, Sampler, Shape, canonical_dtype, real_dtype, rng_sharding,
                          shard)

__all__ = [
    "normal", "truncated_normal", "uniform", "orthogonal", "rademacher",
    "sparse", "delta", "identity", "get", "SAMPLER_NAMES", "std_multiplier",
    "truncated_normal_moments", "complex_truncated_std", "haar_orthonormal",
]


def _is_complex(dtype: DTypeLike) -> bool:
  return jnp.issubdtype(dtype, jnp.complexfloating)


def std_multiplier(variance: Any, std: float, dtype: DTypeLike) -> Any:
  """``sqrt(variance) / std``: the factor that turns raw draws of std ``std`` into
  draws of variance ``variance``, in ``dtype``'s real precision.

  ``variance`` is one of

  * a JAX array (traced, e.g. a vmapped scale): computed in its precision;
  * a numpy scalar of the draw's real dtype: rounded step by step as
    ``jax.nn.initializers.variance_scaling`` does (its variance is rounded to
    the dtype first), so the fan-based presets equal jax's bit for bit;
  * a Python float (float64 on the host): the factor is computed in float64
    and rounded once, so fixed-stddev presets equal jax's ``normal(stddev)``
    bit for bit, and a variance that a float32 cannot hold (``1e-46``,
    ``1e40``) still gives the right factor.
  """
  if isinstance(variance, jax.Array):
    return jnp.sqrt(variance) / jnp.asarray(std, variance.dtype)
  if isinstance(variance, np.generic):
    return np.sqrt(variance) / variance.dtype.type(std)
  return np.asarray(math.sqrt(variance) / std, real_dtype(jnp.dtype(dtype)))[()]


class _Base:
  """Shared plumbing: ``__call__`` is ``scaled`` with unit variance."""

  elementwise: ClassVar[bool] = False

  def _raw(self, key: jax.Array, shape: Shape, dtype: DTypeLike,
           out_sharding: OutSharding) -> jax.Array:
    raise NotImplementedError

  def _raw_std(self, dtype: DTypeLike) -> float:
    """Exact standard deviation (root mean square for complex) of ``_raw``."""
    return 1.0

  def bound(self, dtype: DTypeLike) -> float:
    """The largest magnitude a unit-scale draw can take (inf: unbounded or shape-dependent)."""
    del dtype
    return math.inf

  def _multiplier(self, variance: Any, dtype: DTypeLike) -> Any:
    return std_multiplier(variance, self._raw_std(dtype), dtype)

  def scaled(self, key: jax.Array, shape: Shape, dtype: DTypeLike, variance: Any,
             out_sharding: OutSharding = None) -> jax.Array:
    """Draws with per-element variance ``variance`` (see :func:`std_multiplier`)."""
    raw = self._raw(key, shape, dtype, out_sharding)
    return raw * self._multiplier(variance, dtype)

  def __call__(self, key: jax.Array, shape: Shape, dtype: DTypeLike = jnp.float32,
               out_sharding: OutSharding = None) -> jax.Array:
    dtype = canonical_dtype(dtype)  # float64 is float32 where x64 is off, as in jax
    one = np.asarray(1.0, real_dtype(dtype))[()]
    return self.scaled(key, checks.shape("shape", shape), dtype, one, out_sharding)

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

  elementwise: ClassVar[bool] = True

  def _raw(self, key, shape, dtype, out_sharding):
    return random.normal(key, shape, dtype, out_sharding=rng_sharding(out_sharding))


_JAX_TRUNCATED_STD = 0.87962566103423978  # jax.nn.initializers' std of N(0, 1) on [-2, 2]


@functools.lru_cache(maxsize=None)
def truncated_normal_moments(lower: float, upper: float) -> tuple[float, float]:
  """Mean and standard deviation of ``N(0, 1)`` truncated to ``[lower, upper]``.

  Computed on the host in float64 by Gauss-Legendre quadrature of the density
  relative to its highest point ``x0`` (0, or the bound nearest 0):
  ``exp(-(t^2 + 2 x0 t) / 2)`` with ``t = x - x0``, on 64 panels of 20 nodes
  over the region where it exceeds ``e^-60``. No normal mass is ever formed,
  so far tails (``[30, inf]``, mass 5e-198) and narrow intervals keep full
  precision where the closed forms ``(phi(a) - phi(b)) / Z`` cancel. For
  ``[-2, 2]`` the standard deviation is jax's constant 0.87962566103423978
  (the correctly rounded value; the quadrature is 1 ulp off), so that the
  variance-scaling presets equal jax's bit for bit in float64 too.

  Examples:
    >>> from jaxinit import samplers
    >>> round(samplers.truncated_normal_moments(-2.0, 2.0)[1], 12)
    0.879625661034
    >>> mean, std = samplers.truncated_normal_moments(30.0, float("inf"))
    >>> round(mean, 6), round(std, 6)  # about a + 1/a and 1/a
    (30.03326, 0.033223)
  """
  lower, upper = float(lower), float(upper)
  if (lower, upper) == (-2.0, 2.0):
    return 0.0, _JAX_TRUNCATED_STD
  x0 = min(max(0.0, lower), upper)
  cut = 60.0

  def reach(c: float) -> float:  # the t >= 0 where t^2 / 2 + c t = cut, without cancellation
    root = math.sqrt(c * c + 2.0 * cut)
    return 2.0 * cut / (c + root) if c >= 0 else root - c

  lo, hi = max(lower - x0, -reach(-x0)), min(upper - x0, reach(x0))
  t, w = np.polynomial.legendre.leggauss(20)
  edges = np.linspace(lo, hi, 65)
  half = np.diff(edges)[:, None] / 2.0
  nodes = (edges[:-1, None] + half * (t[None, :] + 1.0)).ravel()
  weights = (half * w[None, :]).ravel() * np.exp(-(nodes * nodes / 2.0 + x0 * nodes))
  mass = weights.sum()
  mean = float((weights * nodes).sum() / mass)
  var = float((weights * (nodes - mean) ** 2).sum() / mass)
  return x0 + mean, math.sqrt(var)


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


# ------------------------------------------------------------ the normal's tails
# Below 1 standard deviation from 0, jax's inverse-erf sampler is exact to the
# dtype. In a tail [a, b], 1 <= a, erf(a / sqrt 2) rounds towards 1 and the
# inverse CDF breaks down (infinite values beyond 4 sd in float32, a constant
# at 6). There we invert the survival function Q relative to the bound: with
# x = a + y and the Mills ratio R(x) = Q(x) / phi(x),
#   F(y) = log Q(a + y) - log Q(a) = -y (a + y / 2) + log R(a + y) - log R(a),
# which has no cancellation at any distance from 0, and F'(y) = -1 / R(a + y).

_TAIL_START = 1.0        # tails begin here; closer to 0 jax's sampler is used
_MILLS_SWITCH = 4.0      # erfc form below, continued fraction above
_TAIL_NEWTON_STEPS = 4   # from the right of the root: monotone, quadratic (3 reach float32)


def _mills_ratio(x: Any, xp: Any, terms: int) -> Any:
  """``R(x) = Q(x) / phi(x)`` for ``x >= 1``, with ``xp`` numpy (host) or jax.numpy.

  Below 4: ``sqrt(pi / 2) erfc(x / sqrt 2) exp(x^2 / 2)``. From 4 on: Laplace's
  continued fraction ``1 / (x + 1 / (x + 2 / (x + 3 / ...)))``, whose
  ``terms`` (10 for float32, 30 for float64) reach the dtype's precision
  there. (jax's float32 ``erfcx`` returns 0 on [9.19, 9.42].)
  """
  erfc = jax.scipy.special.erfc if xp is jnp else np.vectorize(math.erfc, otypes=[np.float64])
  near = xp.minimum(x, _MILLS_SWITCH)
  small = math.sqrt(math.pi / 2.0) * erfc(near / math.sqrt(2.0)) * xp.exp(near * near / 2.0)
  far = xp.maximum(x, _MILLS_SWITCH)
  t = far
  for k in range(terms, 0, -1):
    t = far + k / t
  return xp.where(x < _MILLS_SWITCH, small, 1.0 / t)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _right_tail(u: jax.Array, a: float, b: float) -> jax.Array:
  """``N(0, 1)`` truncated to ``[a, b]``, ``1 <= a < b <= inf``, from uniforms ``u`` in [0, 1).

  Solves ``F(y) = log(1 - u (1 - rho))`` (``rho = Q(b) / Q(a)``, a host
  constant) by Newton from the quadratic approximation's root, which lies to
  the right of the solution, so every step moves left and none overshoots.
  Jitted: one compiled program of ~200 elementwise operations, also when
  called eagerly (or eagerly inside ``shard_map``).
  """
  dtype = u.dtype
  terms = 30 if dtype == jnp.float64 else 10
  width = b - a
  r_a = float(_mills_ratio(np.float64(a), np, 30))
  rho = 0.0 if math.isinf(b) else float(
      _mills_ratio(np.float64(b), np, 30)) / r_a * math.exp(-width * (a + b) / 2.0)
  # log(1 - u + u rho), without cancellation at either end of [0, 1).
  d = jnp.where(u < 0.5, jnp.log1p(-u * jnp.asarray(1.0 - rho, dtype)),
                jnp.log((1.0 - u) + u * jnp.asarray(rho, dtype)))
  a_ = jnp.asarray(a, dtype)
  y = -2.0 * d / (a_ + jnp.sqrt(a_ * a_ - 2.0 * d))
  log_r_a = jnp.log(_mills_ratio(a_, jnp, terms))
  for _ in range(_TAIL_NEWTON_STEPS):
    r = _mills_ratio(a_ + y, jnp, terms)
    f = -y * (a_ + y / 2.0) + (jnp.log(r) - log_r_a)
    y = y + (f - d) * r
  return a_ + jnp.clip(y, 0.0, width)


_RESOLUTION_ULPS = 64


def _check_resolvable(lower: float, upper: float, dtype: DTypeLike) -> None:
  """Refuses bounds whose truncated normal ``dtype`` cannot resolve.

  Far from 0 the distribution is narrow (std ~ 1 / a at ``[a, inf]``): its
  standard deviation must span at least 64 ulps of its mean, or every draw
  would be one of a few numbers.
  """
  mean, std = truncated_normal_moments(lower, upper)
  dtype = jnp.dtype(dtype)
  eps = float(jnp.finfo(dtype).eps)
  if std < _RESOLUTION_ULPS * eps * (abs(mean) + std):
    raise ValueError(
        f"truncated normal bounds [lower, upper] = [{lower:g}, {upper:g}] cannot be sampled in "
        f"{dtype.name}: the distribution's standard deviation ({std:.3g}) spans fewer than "
        f"{_RESOLUTION_ULPS} {dtype.name} ulps of its mean ({mean:.6g}); use bounds nearer 0, "
        f"a wider interval or float64")


@dataclasses.dataclass(frozen=True)
class TruncatedNormal(_Base):
  """``N(0, 1)`` truncated to ``[lower, upper]``, divided by its exact std.

  Bounds are in standard deviations of the normal before truncation. For
  asymmetric bounds the draws have variance 1 and mean ``mu / sigma`` (they
  are not shifted, so they stay within ``[lower, upper] / sigma``). Complex
  dtypes truncate the modulus at ``upper`` and need ``lower == -upper``.

  Exact for any bounds: an interval that reaches within 1 sd of 0 uses
  ``jax.random.truncated_normal`` (so ``[-2, 2]`` draws equal jax's bit for
  bit); a tail interval (``lower >= 1`` or ``upper <= -1``) inverts the
  survival function relative to its near bound, stable at 30 sd and beyond.
  Bounds whose distribution float64 cannot resolve (its std under 64 ulps of
  its mean, e.g. ``[1e14, inf]``) are refused here, and those float32 cannot
  resolve (``[1000, inf]``) when drawn in float32.
  """
  lower: float = -2.0
  upper: float = 2.0

  elementwise: ClassVar[bool] = True

  def __post_init__(self):
    lower = checks.real("lower", self.lower, finite=False)
    upper = checks.real("upper", self.upper, finite=False)
    if not lower < upper:
      raise ValueError(f"lower must be < upper, got lower={lower}, upper={upper}")
    _check_resolvable(lower, upper, jnp.float64)
    object.__setattr__(self, "lower", lower)
    object.__setattr__(self, "upper", upper)

  def _raw_std(self, dtype):
    if _is_complex(dtype):
      return complex_truncated_std(self.upper)
    return truncated_normal_moments(self.lower, self.upper)[1]

  def bound(self, dtype):
    if _is_complex(dtype):
      return self.upper / complex_truncated_std(self.upper)
    return max(abs(self.lower), abs(self.upper)) / self._raw_std(dtype)

  def _raw(self, key, shape, dtype, out_sharding):
    if not _is_complex(dtype):
      _check_resolvable(self.lower, self.upper, dtype)
      if self.lower < _TAIL_START and self.upper > -_TAIL_START:
        return random.truncated_normal(key, self.lower, self.upper, shape, dtype,
                                       out_sharding=rng_sharding(out_sharding))
      u = random.uniform(key, shape, dtype, out_sharding=rng_sharding(out_sharding))
      if self.lower >= _TAIL_START:
        return _right_tail(u, self.lower, self.upper)
      return -_right_tail(u, -self.upper, -self.lower)
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

  elementwise: ClassVar[bool] = True

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

  def bound(self, dtype):
    return math.sqrt(2.0) if _is_complex(dtype) else math.sqrt(3.0)

  def _multiplier(self, variance, dtype):
    if _is_complex(dtype):
      return std_multiplier(variance, 1.0, dtype)
    # sqrt(3 variance), rounded as jax.nn.initializers.variance_scaling does.
    if isinstance(variance, jax.Array):
      return jnp.sqrt(3 * variance)
    if isinstance(variance, np.generic):
      return np.sqrt(variance.dtype.type(3) * variance)
    return np.asarray(math.sqrt(3.0 * variance), real_dtype(jnp.dtype(dtype)))[()]


@dataclasses.dataclass(frozen=True)
class Rademacher(_Base):
  """``+-1`` with equal probability; complex: ``(+-1 +- i) / sqrt 2``."""

  elementwise: ClassVar[bool] = True

  def bound(self, dtype):
    return 1.0

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
    fraction = checks.real("fraction", self.fraction, minimum=0.0, maximum=1.0,
                           exclusive_maximum=True,
                           what="a number in [0, 1) (the fraction of zeros per column)")
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
  every mesh, to the bit, and only the final placement depends on it. Mesh
  axes that are already manual (the caller is inside its own ``shard_map``)
  compute per device anyway: only the others are mapped over, and with none
  left ``fn`` is simply called.
  """
  context = jax.sharding.get_abstract_mesh()
  mesh = getattr(out_sharding, "mesh", None)
  if mesh is None:
    mesh = context
  if mesh is None or mesh.empty:
    return fn(key)
  manual = set(getattr(context, "manual_axes", ()))
  free = frozenset(name for name, kind in zip(mesh.axis_names, mesh.axis_types)
                   if name not in manual and kind != jax.sharding.AxisType.Manual)
  if not free:
    return fn(key)
  spec = jax.sharding.PartitionSpec()
  if len(free) == len(mesh.axis_names):
    return jax.shard_map(fn, mesh=mesh, in_specs=spec, out_specs=spec)(key)
  return jax.shard_map(fn, mesh=mesh, in_specs=spec, out_specs=spec, axis_names=free)(key)


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
  # Summed in a fixed order: the same bits alone and under jax.vmap (jaxinit._reduce).
  norm = jnp.sqrt(pairwise_sum(jnp.real(x * jnp.conj(x)), (0,)))
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
  :func:`haar_orthonormal` (Householder product, no QR). Under
  :func:`~jaxinit.variance_scaling` with batch axes or groups the sampler
  draws one slice at a time, so ``column_axis`` counts axes of the slice (a
  negative axis means the same in both).
  """
  column_axis: int = -1

  def __post_init__(self):
    object.__setattr__(self, "column_axis", checks.integer("column_axis", self.column_axis))

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
    factor = std_multiplier(variance, 1.0 / math.sqrt(big), dtype)
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


def get(spec: Sampler | str | dict[str, Any], argname: str = "sampler") -> Sampler:
  """A sampler from a name, a config dict (``{"name": ..., **params}``) or itself.

  ``argname`` names the argument in error messages.

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
    try:
      checks.choice(argname, name, SAMPLER_NAMES)
    except (TypeError, ValueError) as err:
      raise type(err)(f"{err} (or a sampler object)") from None
    cls = _FACTORIES[name]
    accepted = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
      raise TypeError(f"sampler {name!r} takes parameters {accepted}, got unknown {unknown}")
    return cls(**params)
  if callable(spec):
    return spec
  raise TypeError(f"{argname} must be a sampler (a callable), one of {list(SAMPLER_NAMES)} "
                  f"or a config dict, got {type(spec).__name__}")
