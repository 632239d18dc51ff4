"""Sums whose rounding does not depend on ``jax.vmap``: pairwise, by elementwise adds.

XLA orders a reduction by the shape it sees, so ``jnp.sum`` over one array and
over the same array as a slice of a vmapped batch can differ in the last bit
(measured on CPU: a column norm of an 8 x 8 matrix under a vmap over 256 keys;
the variance of 512 layer outputs under a vmap over 8 models). A sum made of
elementwise adds of halves has one rounding order, whatever the batching,
device count or lanes, and is more accurate (error O(log n) ulp).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def pairwise_sum(x: jax.Array, axes: tuple[int, ...], keepdims: bool = False) -> jax.Array:
  """``jnp.sum(x, axes)`` in a fixed order: zero-padded to a power of two, halves added.

  Args:
    x: an array.
    axes: the axes summed (non-negative, distinct).
    keepdims: keep the summed axes with size 1.

  Returns:
    The sum, in ``x``'s dtype; bit for bit the same alone and under ``jax.vmap``.

  Examples:
    >>> import jax, jax.numpy as jnp, numpy as np
    >>> x = jax.random.normal(jax.random.key(0), (33, 9))
    >>> one = pairwise_sum(x, (0,))
    >>> batched = jax.vmap(lambda a: pairwise_sum(a, (0,)))(x[None].repeat(4, 0))
    >>> bool((batched == one).all()), bool(jnp.allclose(one, x.sum(0), atol=1e-5))
    (True, True)
  """
  keep = [a for a in range(x.ndim) if a not in axes]
  count = math.prod(x.shape[a] for a in axes)
  flat = jnp.transpose(x, keep + list(axes)).reshape([x.shape[a] for a in keep] + [count])
  size = 1 << max(0, (count - 1).bit_length())
  flat = jnp.pad(flat, [(0, 0)] * len(keep) + [(0, size - count)])
  while flat.shape[-1] > 1:
    half = flat.shape[-1] // 2
    flat = flat[..., :half] + flat[..., half:]
  out = flat[..., 0]
  if keepdims:
    out = out.reshape([1 if a in axes else x.shape[a] for a in range(x.ndim)])
  return out
