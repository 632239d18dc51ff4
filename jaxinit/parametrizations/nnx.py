"""Flax NNX layers for parametrizations applied in the forward pass (imports Flax)."""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from jaxinit import checks

__all__ = ["Readout"]


class Readout(nnx.Linear):
  """A ``nnx.Linear`` whose input is multiplied by ``multiplier`` (mup's ``MuReadout``).

  ``y = (multiplier * x) W + b``, ``multiplier = base_width / width``
  (:func:`~jaxinit.parametrizations.layers.readout_multiplier`; the bias is not
  multiplied). For ``Parametrization(readout="multiplier")``; module-class rules and fans
  treat it as an ``nnx.Linear``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> head = Readout(4, 2, multiplier=0.5, rngs=nnx.Rngs(0))
    >>> bool(jnp.allclose(head(jnp.ones((1, 4))), nnx.Linear.__call__(head, 0.5 * jnp.ones((1, 4)))))
    True
  """

  def __init__(self, in_features: int, out_features: int, *, multiplier: float = 1.0,
               **kwargs: Any):
    super().__init__(in_features, out_features, **kwargs)
    self.multiplier = checks.real("multiplier", multiplier)

  def __call__(self, inputs: jax.Array) -> jax.Array:
    return super().__call__(inputs * self.multiplier)
