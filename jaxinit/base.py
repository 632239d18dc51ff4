"""The two function types of jaxinit, and the dtype rules they share.

An :class:`Initializer` is what Flax calls as ``kernel_init`` or ``bias_init``
and what ``jax.nn.initializers`` returns: ``init(key, shape, dtype=None,
out_sharding=None) -> Array``.

A :class:`Sampler` draws a unit-scale array for the variance-scaling
combinator: each element has mean 0 and variance 1 (``E|w|^2 = 1`` for complex
dtypes), or, for structured samplers such as orthogonal, the structure scaled
so the average per-element second moment is 1.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from jaxinit import checks

Shape = tuple[int, ...]
OutSharding = Any  # jax.sharding.Sharding | PartitionSpec | None


@runtime_checkable
class Initializer(Protocol):
  """``init(key, shape, dtype=None, out_sharding=None) -> Array``.

  ``dtype=None`` means the initializer's default dtype (its factory's
  ``dtype`` argument, as in ``jax.nn.initializers``), else float32 (float64
  where ``jax_enable_x64`` is on).
  """

  def __call__(self, key: jax.Array, shape: Shape, dtype: DTypeLike | None = None,
               out_sharding: OutSharding = None) -> jax.Array:
    ...


@runtime_checkable
class Sampler(Protocol):
  """``sample(key, shape, dtype, out_sharding=None) -> Array`` of unit scale.

  ``dtype`` is always a float32/float64/complex64/complex128 dtype here: the
  combinator samples low-precision dtypes in float32 and casts afterwards.
  """

  def __call__(self, key: jax.Array, shape: Shape, dtype: DTypeLike,
               out_sharding: OutSharding = None) -> jax.Array:
    ...


def canonical_dtype(dtype: DTypeLike | None, default: str | None = None) -> np.dtype:
  """The output dtype of a call: ``dtype``, else the initializer's ``default``, else
  float32 (float64 where ``jax_enable_x64`` is on), as in ``jax.nn.initializers``;
  64-bit dtypes are their 32-bit versions unless x64 is on.

  Raises:
    TypeError: an integer, bool or non-dtype value (:func:`jaxinit.checks.inexact_dtype`).
  """
  if dtype is None:
    dtype = default
  if dtype is None:
    return jnp.dtype(jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
  # float64 means float32 where x64 is off, as everywhere in jax.
  return jnp.dtype(jax.dtypes.canonicalize_dtype(checks.inexact_dtype("dtype", dtype)))


def default_dtype(dtype: DTypeLike | None) -> str | None:
  """A factory's ``dtype`` argument as stored on an initializer: a dtype name or None.

  A name keeps the initializer hashable, comparable and plain data.
  """
  return None if dtype is None else checks.inexact_dtype("dtype", dtype).name


def sampling_dtype(dtype: np.dtype) -> np.dtype:
  """The dtype random draws are made in: at least float32 (or complex64).

  bfloat16, float16 and float8 draws are made in float32 and cast, so every
  precision gets the same distribution and no NaN from a narrow dtype's
  inverse CDF (jax's float8 truncated normal).
  """
  if jnp.issubdtype(dtype, jnp.complexfloating):
    return jnp.dtype(jnp.complex128 if dtype == jnp.complex128 else jnp.complex64)
  return jnp.dtype(jnp.float64 if dtype == jnp.float64 else jnp.float32)


def real_dtype(dtype: np.dtype) -> np.dtype:
  """float32 for complex64, float64 for complex128, the dtype itself otherwise."""
  return jnp.dtype(np.finfo(dtype).dtype) if jnp.issubdtype(
      dtype, jnp.complexfloating) else dtype


def _is_explicit(out_sharding: OutSharding) -> bool:
  mesh = getattr(out_sharding, "mesh", None)
  return isinstance(out_sharding, jax.sharding.PartitionSpec) or (
      mesh is not None and any(t == jax.sharding.AxisType.Explicit for t in mesh.axis_types))


def rng_sharding(out_sharding: OutSharding) -> OutSharding:
  """What to hand ``jax.random``'s ``out_sharding``: it takes Explicit mesh axes only.

  On Auto meshes we draw unsharded and constrain afterwards (:func:`shard`);
  the partitionable threefry makes the values the same either way.
  """
  return out_sharding if out_sharding is not None and _is_explicit(out_sharding) else None


def shard(x: jax.Array, out_sharding: OutSharding) -> jax.Array:
  """Places ``x`` as ``out_sharding`` says (a no-op for None).

  Explicit mesh axes (jax's sharding-in-types) take ``reshard``; Auto axes a
  sharding constraint, which XLA propagates.
  """
  if out_sharding is None:
    return x
  if _is_explicit(out_sharding):
    return jax.sharding.reshard(x, out_sharding)
  return jax.lax.with_sharding_constraint(x, out_sharding)
