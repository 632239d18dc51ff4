"""Model keys: where a model's initial params and its minibatches come from.

Researchers compare hyperparameters with common random numbers: two cells
that differ only in learning rate (or optimizer, or number of steps, or
activation) should start from the same weights and see the same batches, so
that their difference is the hyperparameter's and not the seed's. So a model
has two keys, each derived from exactly what determines what it draws:

* its **init key** ``fold_in(fold_in(fold_in(key(root_seed), 1), a), b)``,
  ``(a, b)`` the first 64 bits of the SHA-256 of :func:`init_identity`: the
  network's parameter shapes (its architecture as far as the params go:
  model, depth, width, use_bias, the dataset's input and output sizes), the
  initializer (canonical: ``"he_normal"`` and ``{name = "kaiming_normal"}``
  are one), the weight and bias variances and the seed;
* its **model key** ``fold_in(fold_in(fold_in(key(root_seed), 3), e), f)`` from
  :func:`model_identity`: the parameter shapes and the seed. The model is
  built with it, so parameters no init rule serves get the model's own
  initializers, drawn anew for every seed (:mod:`jaxinit.sweep.params`);
  cells that differ only in their rules share them;
* its **data key** ``fold_in(fold_in(fold_in(key(root_seed), 2), c), d)`` from
  :func:`data_identity`: the dataset (canonical spec), the batch size and the
  seed. Its step-``t`` minibatch (drawn with replacement) is
  ``randint(fold_in(data_key, t))``.

Neither depends on the other models, on the block length or on how the sweep
runs, so a model trains the same alone or in any group; the activation,
optimizer, learning rate and steps change neither key.

Examples:
  >>> a = init_identity({"hidden": [4, 4]}, "he_normal", 1.0, 0.0, seed=3)
  >>> a == init_identity({"hidden": [4, 4]}, {"name": "kaiming_normal"}, 1.0, 0.0, seed=3)
  True
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

INIT_TAG = 1
"""Folded into the root key before an init identity."""

DATA_TAG = 2
"""Folded into the root key before a data identity."""

MODEL_TAG = 3
"""Folded into the root key before a model identity."""


def _canonical(value: Any) -> str:
  return json.dumps(value, sort_keys=True, separators=(",", ":"))


def canonical_init(spec: Any) -> Any:
  """An init value in one spelling per meaning (:func:`jaxinit.sweep.init_values.canonical_init`:
  post-inits too)."""
  from jaxinit.sweep import init_values  # pylint: disable=import-outside-toplevel
  return init_values.canonical_init(spec)


def canonical_initializer(spec: Any) -> Any:
  """An initializer spec in one spelling per initializer (its ``to_config()``, when it has one)."""
  return json.loads(_canonical_init_text(_canonical(spec)))


@functools.lru_cache(maxsize=1024)  # a grid has few initializers and many models
def _canonical_init_text(text: str) -> str:
  import jaxinit  # pylint: disable=import-outside-toplevel
  spec = json.loads(text)
  init = jaxinit.get(spec)
  if hasattr(init, "to_config"):
    try:
      return _canonical(init.to_config())
    except TypeError:
      pass
  return text


def param_layout(param_shapes: Any) -> Any:
  """The params' shapes as plain data (the tree with every leaf its shape as a list).

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> param_layout({"input": {"kernel": jax.ShapeDtypeStruct((3, 4), jnp.float32)}})
    {'input': {'kernel': [3, 4]}}

  A tree of objects (an Equinox module) becomes its leaves keyed by path.
  """
  is_leaf = lambda x: hasattr(x, "shape") or isinstance(x, tuple)  # noqa: E731
  try:
    layout = jax.tree.map(lambda x: list(getattr(x, "shape", x)), param_shapes, is_leaf=is_leaf)
    _canonical(layout)
    return layout
  except TypeError:  # a pytree of objects (an Equinox module): its arrays' shapes by path
    flat, _ = jax.tree_util.tree_flatten_with_path(param_shapes)
    return {jax.tree_util.keystr(path): list(x.shape) for path, x in flat if hasattr(x, "shape")}


def init_identity(layout: Any, init: Any, weight_variance: float, bias_variance: float,
                  seed: int, extra: Mapping[str, Any] | None = None) -> str:
  """What determines a model's initial params, as canonical text.

  Args:
    layout: the params' shapes (:func:`param_layout`, or any plain data
      that tells architectures apart).
    init: the init value (an initializer spec, or a post-init).
    weight_variance: the grid's weight variance.
    bias_variance: the grid's bias variance.
    seed: the model's seed.
    extra: other init axes' canonical values (:func:`jaxinit.sweep.inits.identity`:
      those away from their defaults).
  """
  return _canonical({"params": layout, "init": canonical_init(init),
                     "weight_variance": float(weight_variance),
                     "bias_variance": float(bias_variance), "seed": int(seed),
                     **dict(extra or {})})


def model_identity(layout: Any, seed: int) -> str:
  """What determines the key a model is built with (its own initializers' draws)."""
  return _canonical({"params": layout, "seed": int(seed)})


def data_identity(dataset: Any, batch_size: int, seed: int) -> str:
  """What determines a model's minibatches, as canonical text."""
  return _canonical({"dataset": dataset, "batch_size": int(batch_size), "seed": int(seed)})


def digest_words(text: str) -> tuple[int, int]:
  """The first 64 bits of ``sha256(text)`` as two uint32 words."""
  digest = hashlib.sha256(text.encode()).digest()
  return int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:8], "little")


def _derive(root: jax.Array, tag: jax.Array, words: jax.Array) -> jax.Array:
  key = jax.random.fold_in(jax.random.wrap_key_data(root), tag)
  key = jax.random.fold_in(jax.random.fold_in(key, words[0]), words[1])
  return jax.random.key_data(key)


_derive_batch = jax.jit(jax.vmap(_derive, (None, None, 0)))


def derive_keys(root_seed: int, tag: int, identities: Sequence[str]) -> np.ndarray:
  """Raw keys ``(n, 2)`` uint32 of ``identities`` under ``key(root_seed)`` and ``tag``.

  Examples:
    >>> import jax
    >>> (raw,) = derive_keys(0, DATA_TAG, ["x"])
    >>> a, b = digest_words("x")
    >>> expected = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(
    ...     jax.random.key(0), DATA_TAG), a), b)
    >>> bool((raw == jax.random.key_data(expected)).all())
    True
  """
  words = np.array([digest_words(text) for text in identities], np.uint32).reshape(-1, 2)
  # Padded to a power of two: few compiles.
  padded = np.resize(words, (max(8, 1 << (len(words) - 1).bit_length()), 2))
  root = jax.random.key_data(jax.random.key(root_seed))
  return np.asarray(_derive_batch(root, jnp.uint32(tag), padded))[:len(words)]


__all__ = ["DATA_TAG", "INIT_TAG", "MODEL_TAG", "canonical_init", "canonical_initializer",
           "data_identity", "derive_keys", "digest_words", "init_identity", "model_identity",
           "param_layout"]
