"""Losses and metrics: what a sweep trains on and what it reports.

``loss`` (top level of a config) is ``"auto"`` (softmax cross-entropy for
classification, mean squared error for regression), a name of
:data:`LOSSES`, an import path ``"package.module:loss"`` or, from Python, the
function; ``loss(outputs, targets)`` returns the batch's mean loss, a scalar.
``metrics`` lists more scores ``metric(outputs, targets) -> scalar`` (names of
:data:`METRICS`, import paths or functions), evaluated like the loss on the
training subset and the test set; higher is better (``best_*`` is the
largest). Accuracy is always reported (NaN for regression). All of them run
inside the compiled evaluation, ``vmap``-ed over models, so they must be
traceable.

Examples:
  >>> import jax.numpy as jnp
  >>> float(LOSSES["mse"](jnp.array([[1.0], [3.0]]), jnp.array([[0.0], [0.0]])))
  5.0
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxinit import checks
from jaxinit.sweep import refs


def cross_entropy(outputs: jax.Array, targets: jax.Array) -> jax.Array:
  """Mean softmax cross-entropy of logits ``(n, classes)`` and integer labels ``(n,)``."""
  return optax.softmax_cross_entropy_with_integer_labels(outputs, targets).mean()


def mse(outputs: jax.Array, targets: jax.Array) -> jax.Array:
  """Mean squared error over examples and target dimensions."""
  return jnp.mean(jnp.square(outputs - targets))


def accuracy(outputs: jax.Array, targets: jax.Array) -> jax.Array:
  """Fraction of examples whose largest logit is the label; NaN for non-integer targets."""
  if not jnp.issubdtype(targets.dtype, jnp.integer):
    return jnp.asarray(jnp.nan, outputs.dtype)
  return jnp.mean(jnp.argmax(outputs, axis=-1) == targets)


LOSSES: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "cross_entropy": cross_entropy, "mse": mse}
"""Losses by name."""

METRICS: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {"accuracy": accuracy}
"""Metrics by name."""

DEFAULT_LOSS = {"classification": "cross_entropy", "regression": "mse"}
"""The loss ``"auto"`` means, by task."""


def _one(where: str, value: Any, table: dict[str, Any], what: str) -> str:
  if callable(value) and not isinstance(value, str):
    return refs.reference(value)
  if not isinstance(value, str) or not value:
    raise ValueError(f"{where} must be a {what} name ({', '.join(table)}), an import path "
                     f"'package.module:function' or a function; got {value!r}")
  if value not in table and not refs.is_reference(value):
    raise ValueError(f"{where}: unknown {what} {value!r}; accepted: {', '.join(table)} or an "
                     f"import path{checks.did_you_mean(value, table)}")
  return value


def check_loss(where: str, value: Any, paths: Sequence[str] = ()) -> str:
  """The canonical ``loss``: ``"auto"``, a name or a reference (resolved now)."""
  if value == "auto":
    return value
  value = _one(where, value, LOSSES, "loss")
  resolve(value, paths)
  return value


def check_metrics(where: str, value: Any, paths: Sequence[str] = ()) -> list[str]:
  """The canonical ``metrics``: a list of names or references (resolved now), each once."""
  if not isinstance(value, (list, tuple)):
    raise ValueError(f"{where} must be a list of metrics, got {value!r}")
  out = [_one(f"{where}[{i}]", v, METRICS, "metric") for i, v in enumerate(value)]
  names = [metric_name(v) for v in out]
  for v in out:
    resolve(v, paths)
  if len(set(names)) != len(names):
    raise ValueError(f"{where} names a metric twice: {names}")
  return out


def resolve(name: str, paths: Sequence[str] = ()) -> Callable[..., Any]:
  """The function a loss or metric name (or reference) names."""
  table = {**LOSSES, **METRICS}
  if name in table:
    return table[name]
  fn = refs.resolve(name, "loss or metric", paths)
  if not callable(fn):
    raise ValueError(f"{name!r} is {type(fn).__name__}, not a function")
  return fn


def metric_name(name: str) -> str:
  """A metric's column name: its registry name, or the function's name (``"pkg.m:f1"`` is
  ``"f1"``)."""
  return name.rpartition(":")[2].rpartition(".")[2]


__all__ = ["DEFAULT_LOSS", "LOSSES", "METRICS", "accuracy", "check_loss", "check_metrics",
           "cross_entropy", "metric_name", "mse", "resolve"]
