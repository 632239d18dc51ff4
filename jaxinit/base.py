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

Shape = tuple[int, ...]
OutSharding = Any  # jax.sharding.Sharding | PartitionSpec | None


@runtime_checkable
class Initializer(Protocol):
  """``init(key, shape, dtype=None, out_sharding=None) -> Array``.

  ``dtype=None`` means float32 (float64 where ``jax_enable_x64`` is on, as in
  ``jax.nn.initializers``).
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


_ACCEPTED_DTYPES = ("float16", "bfloat16", "float32", "float64", "complex64",
                    "complex128", "float8_* (sampled in float32)")


def canonical_dtype(dtype: DTypeLike | None) -> np.dtype:
  """The requested output dtype; raises TypeError for integer, bool and others."""
  if dtype is None:
    return jnp.dtype(jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
  try:
    dt = jnp.dtype(dtype)
  except TypeError as err:
    raise TypeError(f"dtype must be a floating or complex dtype "
                    f"({', '.join(_ACCEPTED_DTYPES)}), got {dtype!r}") from err
  if not (jnp.issubdtype(dt, jnp.floating) or jnp.issubdtype(dt, jnp.complexfloating)):
    raise TypeError(f"dtype must be a floating or complex dtype "
                    f"({', '.join(_ACCEPTED_DTYPES)}), got {dt.name}: weights of "
                    f"an integer or bool dtype cannot carry a variance")
  return dt


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


def canonical_shape(shape: Any, argname: str = "shape") -> Shape:
  """A tuple of non-negative Python ints, or a TypeError/ValueError."""
  if isinstance(shape, (int, np.integer)):
    shape = (shape,)
  if isinstance(shape, str):
    raise TypeError(f"{argname} must be a sequence of ints, got {shape!r}")
  try:
    dims = tuple(int(d) for d in shape)
    if any(d != s for d, s in zip(dims, shape)):
      raise TypeError
  except (TypeError, ValueError):
    raise TypeError(f"{argname} must be a sequence of ints, got {shape!r}") from None
  if any(d < 0 for d in dims):
    raise ValueError(f"{argname} must have non-negative dimensions, got {dims}")
  return dims


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
