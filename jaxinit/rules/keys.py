"""Path-keyed randomness: each parameter's key from the rules' key and its path.

``param_key(key, path)`` folds a stable 64-bit hash of the ``"/"``-joined
path (BLAKE2b, the same in every process and Python version) into ``key``, in
two 32-bit halves. A parameter's value therefore depends on the key, its path,
its shape, its dtype and its initializer, and on nothing else: not on which
other modules exist or their order, not on jit vs eager, not on the mesh
(jax's partitionable threefry draws the same bits on any sharding).

Stacked layers (a leading layer axis: ``nnx.vmap``, ``nn.scan``) draw layer
``i`` (row-major over the stack axes) from ``fold_in(param_key(key, path), i)``
at one layer's shape, so fans are one layer's and a stack of ``L`` equals
``L`` layers drawn alone.

:func:`draw` is the whole recipe as one pure function of ``(key, path,
shape, dtype, init, stack)``: it may be jitted and vmapped over keys (a sweep
drawing thousands of models at once gets, per model, the values
``jaxinit.initialize`` gives that model alone).
"""

from __future__ import annotations

import functools
import hashlib
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit import checks
from jaxinit.base import Initializer

__all__ = ["path_hash", "param_key", "draw", "draw_hashed", "draw_many", "elementwise",
           "as_key"]


@functools.lru_cache(maxsize=65536)
def path_hash(path: str) -> tuple[int, int]:
  """Two uint32 words of ``blake2b(path, digest_size=8)``: stable across runs and hosts.

  Examples:
    >>> path_hash("blocks/0/mlp/kernel") == path_hash("blocks/0/mlp/kernel")
    True
  """
  if not isinstance(path, str):
    raise TypeError(f"path must be a str, got {path!r}")
  digest = hashlib.blake2b(path.encode("utf-8"), digest_size=8).digest()
  return int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:], "little")


def as_key(key: Any, argname: str = "key") -> jax.Array:
  """A typed PRNG key from a typed key, raw ``uint32[2]`` key data, or an int seed
  (a Python / numpy int, or a traced integer scalar: a seed under ``jax.vmap`` or ``jit``).

  Raises:
    TypeError: anything else. ValueError: an array of keys or of seeds.
  """
  if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    if key.shape:
      raise ValueError(f"{argname} must be a single key, got a key array of shape {key.shape}")
    return key
  if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
    return jax.random.key(checks.integer(argname, key))
  if (checks.is_traced(key) or isinstance(key, jax.Array)) and jnp.issubdtype(
      key.dtype, jnp.integer) and key.shape != (2,):
    if key.shape:
      raise ValueError(f"{argname} must be a single int seed, got an integer array of shape "
                       f"{key.shape} (vmap over the seeds instead)")
    return jax.random.key(key)
  if hasattr(key, "dtype") and getattr(key, "shape", None) == (2,) and key.dtype == np.uint32:
    return jax.random.wrap_key_data(key)
  raise TypeError(f"{argname} must be a jax.random.key, raw uint32[2] key data or an int "
                  f"seed, got {type(key).__name__}")


def _fold_hash(key: jax.Array, words: Any) -> jax.Array:
  """``key`` with the two hash words folded in (Python ints or traced uint32s)."""
  hi, lo = words
  return jax.random.fold_in(jax.random.fold_in(key, jnp.asarray(hi, jnp.uint32)),
                            jnp.asarray(lo, jnp.uint32))


def param_key(key: jax.Array, path: str, index: int | None = None) -> jax.Array:
  """The key of the parameter at ``path`` (layer ``index`` of a stack, if given).

  Examples:
    >>> import jax
    >>> k = jax.random.key(0)
    >>> bool((jax.random.key_data(param_key(k, "a/kernel"))
    ...       == jax.random.key_data(param_key(k, "a/kernel"))).all())
    True
  """
  out = _fold_hash(key, path_hash(path))
  return out if index is None else jax.random.fold_in(out, index)


def draw(key: jax.Array, path: str, shape: tuple[int, ...], dtype: Any, init: Initializer,
         stack: tuple[int, ...] = ()) -> jax.Array:
  """The value the rules give the parameter at ``path``: ``init`` at its path key.

  Pure and traceable in ``key`` (jit it, vmap it over keys).

  Args:
    key: the rules' key (typed).
    path: the parameter's ``"/"``-joined path.
    shape: one layer's shape.
    dtype: the parameter's dtype.
    init: the initializer, already adapted to the parameter's fans
      (:func:`jaxinit.rules.fans.with_fans`).
    stack: the leading stacked-layer dims (``()`` for a single layer).

  Returns:
    An array of shape ``stack + shape``: without a stack
    ``init(param_key(key, path), shape, dtype)``; with one, layer ``i``
    (row-major) is ``init(fold_in(param_key(key, path), i), shape, dtype)``.
  """
  return draw_hashed(key, path_hash(path), tuple(shape), dtype, init, tuple(stack))


def draw_hashed(key: jax.Array, words: Any, shape: tuple[int, ...], dtype: Any,
                init: Initializer, stack: tuple[int, ...] = ()) -> jax.Array:
  """:func:`draw` with the path given by its hash words (``path_hash(path)``).

  The words may be traced uint32 scalars, so one compiled program serves
  every parameter of the same shape, dtype and initializer.
  """
  base = _fold_hash(key, words)
  if not stack:
    return _checked(init(base, shape, dtype), shape, dtype)
  count = math.prod(stack)
  keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(count, dtype=jnp.uint32))
  values = jax.vmap(lambda k: _checked(init(k, shape, dtype), shape, dtype))(keys)
  return values.reshape(stack + shape)


def _checked(value: Any, shape: tuple[int, ...], dtype: Any) -> Any:
  """``value`` if it has the parameter's shape and dtype (a user's function may not)."""
  got_shape, got_dtype = tuple(getattr(value, "shape", ())), getattr(value, "dtype", None)
  if got_shape != tuple(shape) or got_dtype != np.dtype(dtype):
    raise ValueError(f"the initializer returned shape {got_shape}, dtype "
                     f"{getattr(got_dtype, 'name', got_dtype)}; the parameter needs shape "
                     f"{tuple(shape)}, dtype {np.dtype(dtype).name}")
  return value


def elementwise(init: Any) -> bool:
  """Whether ``vmap`` over keys draws exactly what each key alone draws.

  True for a variance-scaling initializer over an elementwise sampler
  (normal, truncated normal, uniform, Rademacher: every fan-based preset) and
  for ``Scaled`` of one by a Python float: counter-based random bits and
  elementwise transforms give each row of a batched draw the bits of the
  row drawn alone. Structured draws (orthogonal: a QR) are not: a batched
  QR may round differently.
  """
  from jaxinit.initializers import Scaled, VarianceScaling  # pylint: disable=import-outside-toplevel
  if isinstance(init, Scaled) and isinstance(init.factor, float):
    return elementwise(init.init)
  return isinstance(init, VarianceScaling) and getattr(init.sampler, "elementwise", False)


def draw_many(key: jax.Array, requests: Any) -> list[jax.Array]:
  """Many parameters' :func:`draw_hashed` values in one trace, each bit for bit.

  For use inside ``jit``/``vmap`` (a whole model's draw as one program):
  parameters whose initializer is :func:`elementwise` and that share
  ``(init, shape, dtype)`` are drawn by ONE ``vmap``-ed draw over their
  layers' keys, so a program holds one random-number kernel per distinct
  initializer and shape instead of one per parameter (its compile time stops
  growing with the number of layers); the others are drawn one by one.

  Args:
    key: the rules' key (typed; may be traced).
    requests: ``(words, shape, dtype, init, stack)`` per parameter
      (``words = path_hash(path)``).

  Returns:
    The values, in the order of ``requests``.
  """
  requests = list(requests)
  out: list[Any] = [None] * len(requests)
  groups: dict[tuple[Any, ...], list[int]] = {}
  for i, (words, shape, dtype, init, stack) in enumerate(requests):
    try:
      groupable = elementwise(init) and hash(init) is not None
    except TypeError:  # an unhashable initializer
      groupable = False
    if groupable:
      groups.setdefault((init, tuple(shape), np.dtype(dtype)), []).append(i)
    else:
      out[i] = draw_hashed(key, words, tuple(shape), dtype, init, tuple(stack))
  for (init, shape, dtype), members in groups.items():
    if len(members) == 1:
      words, _, _, _, stack = requests[members[0]]
      out[members[0]] = draw_hashed(key, words, shape, dtype, init, tuple(stack))
      continue
    words = jnp.asarray(np.array([requests[i][0] for i in members], np.uint32))
    bases = jax.vmap(lambda w: _fold_hash(key, (w[0], w[1])))(words)
    counts = [math.prod(requests[i][4]) for i in members]
    # Row r of a stacked parameter: fold_in(its base, r); an unstacked one is its base.
    rows = []
    for m, i in enumerate(members):
      if requests[i][4]:
        rows.append(jax.vmap(lambda r, b=bases[m]: jax.random.fold_in(b, r))(
            jnp.arange(counts[m], dtype=jnp.uint32)))
      else:
        rows.append(bases[m][None])
    values = jax.vmap(lambda k: init(k, shape, dtype))(jnp.concatenate(rows))
    start = 0
    for m, i in enumerate(members):
      out[i] = values[start:start + counts[m]].reshape(tuple(requests[i][4]) + shape)
      start += counts[m]
  return out
