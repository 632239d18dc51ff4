"""Forward-pass pieces of a parametrization that a model applies itself.

* :func:`scaled_attention`: an ``attention_fn`` for Flax's attention layers
  (``nnx.MultiHeadAttention``, ``nn.MultiHeadDotProductAttention``) whose
  logits are ``scale * q.k`` instead of ``q.k / sqrt(d)``: muP's ``1/d``
  with ``scale = Parametrization.attention_scale(d, d_base)``.
* :func:`readout_multiplier` and the ``Readout`` layers of
  :mod:`jaxinit.parametrizations.nnx` / :mod:`~jaxinit.parametrizations.linen`:
  microsoft/mup's ``MuReadout`` (a Linear whose input is multiplied by
  ``1 / m_in``), for ``Parametrization(readout="multiplier")``. The default
  ``readout="absorbed"`` needs neither.
* Residual branches: multiply each branch by
  :meth:`Parametrization.branch_multiplier` (depth-muP, CompleteP).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from jaxinit import checks

__all__ = ["scaled_attention", "readout_multiplier"]


def scaled_attention(scale: float, attention_fn: Callable[..., Any] | None = None
                     ) -> Callable[..., Any]:
  """``attention_fn`` with logits ``scale * q.k`` (Flax's divide by ``sqrt(d)``).

  Args:
    scale: the logit scale, e.g. ``mup().attention_scale(head_dim, base_head_dim)``.
    attention_fn: the attention to wrap (default ``flax.nnx.dot_product_attention``;
      pass ``flax.linen.dot_product_attention`` for linen).

  Returns:
    ``fn(query, key, value, *args, **kwargs)``: ``attention_fn`` on
    ``query * scale * sqrt(d)``, ``d = query.shape[-1]``.
  """
  scale = checks.real("scale", scale, minimum=0.0, exclusive_minimum=True)
  if attention_fn is None:
    from flax import nnx  # pylint: disable=import-outside-toplevel
    attention_fn = nnx.dot_product_attention

  def attention(query, key, value, *args, **kwargs):
    factor = scale * math.sqrt(query.shape[-1])
    return attention_fn(query * factor, key, value, *args, **kwargs)

  return attention


def readout_multiplier(width: float, base_width: float) -> float:
  """mup's ``MuReadout`` multiplier ``base_width / width`` (``1 / m_in``).

  Examples:
    >>> readout_multiplier(1024, 256)
    0.25
  """
  width = checks.real("width", width, minimum=0.0, exclusive_minimum=True)
  base_width = checks.real("base_width", base_width, minimum=0.0, exclusive_minimum=True)
  return base_width / width
