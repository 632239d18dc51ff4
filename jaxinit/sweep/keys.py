"""Model keys: where a model's initial params and minibatches come from.

A model's key is ``fold_in(key(root_seed), model_id)``; its params come from
``fold_in(model_key, 0)`` and its step-``t`` minibatch (drawn with
replacement) from ``fold_in(fold_in(model_key, 1), t)``. Neither depends on
the other models or on the block length, so a model trains the same alone or
in any group.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

_model_key = jax.jit(lambda root, model_id, which: jax.random.fold_in(
    jax.random.fold_in(jax.random.wrap_key_data(root), model_id), which))

_model_keys_batch = jax.jit(jax.vmap(lambda root, model_id: jax.vmap(
    lambda which: jax.random.key_data(_model_key(root, model_id, which)))(
        jnp.arange(2, dtype=jnp.uint32)), (None, 0)))


def model_keys(root_seed: int, model_id: int) -> tuple[jax.Array, jax.Array]:
  """A model's ``(init key, data key)``: ``fold_in(fold_in(key(root_seed), model_id), 0 | 1)``.

  Args:
    root_seed: the sweep's root seed.
    model_id: the model's :attr:`~jaxinit.sweep.config.ModelSpec.model_id`.

  Returns:
    Two typed PRNG keys.

  Examples:
    >>> import jax
    >>> init_key, _ = model_keys(0, 12345)
    >>> bool((jax.random.key_data(init_key) == jax.random.key_data(jax.random.fold_in(
    ...     jax.random.fold_in(jax.random.key(0), 12345), 0))).all())
    True
  """
  root = jax.random.key_data(jax.random.key(root_seed))
  model_id = np.uint32(model_id)
  return _model_key(root, model_id, np.uint32(0)), _model_key(root, model_id, np.uint32(1))


def raw_keys(root_seed: int, model_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
  """Every model's raw ``(init keys, data keys)``, each ``(models, 2)`` uint32, in one call."""
  ids = np.array(list(model_ids), np.uint32)
  # Ids padded to a power of two: few compiles.
  padded = np.resize(ids, max(8, 1 << (len(ids) - 1).bit_length()))
  root = jax.random.key_data(jax.random.key(root_seed))
  raw = np.asarray(_model_keys_batch(root, padded))[:len(ids)]  # (models, 2, key)
  return raw[:, 0], raw[:, 1]


__all__ = ["model_keys", "raw_keys"]
