"""Flax linen layers for parametrizations applied in the forward pass (imports Flax)."""

from __future__ import annotations

import jax
from flax import linen as nn

__all__ = ["Readout"]


class Readout(nn.Dense):
  """A ``nn.Dense`` whose input is multiplied by ``multiplier`` (mup's ``MuReadout``).

  ``y = (multiplier * x) W + b``, ``multiplier = base_width / width``; see
  :class:`jaxinit.parametrizations.nnx.Readout`.
  """
  multiplier: float = 1.0

  @nn.compact
  def __call__(self, inputs: jax.Array) -> jax.Array:
    return super().__call__(inputs * self.multiplier)
