"""Networks for looking at signal propagation: pure functions over pytrees, and a transformer.

:class:`MLP`, :class:`ResMLP` and :class:`CNN1D` are frozen dataclasses with
``init(key) -> params``, ``apply(params, x, *, capture=False,
perturbations=None)`` and ``layers(params)``; params are plain nested dicts
with the hidden layers stacked on a leading depth axis. ``depth`` is always the
number of hidden layers (residual blocks for :class:`ResMLP`).

The same networks as Flax NNX modules are in :mod:`jaxinit.models.nnx`, and
:class:`Transformer` (pre-LN, post-LN/DeepNorm or LayerNorm-free, a Flax NNX
module defined once) is in :mod:`jaxinit.models.transformer`; both are
imported on demand, so ``import jaxinit.models`` does not pull in Flax.
"""

from __future__ import annotations

import importlib
from typing import Any

from jaxinit.models.base import Layer, Network, Params
from jaxinit.models.cnn import CNN1D
from jaxinit.models.mlp import MLP, ResMLP

# Flax modules load on first use.
_LAZY = {"Transformer": "jaxinit.models.transformer"}


def __getattr__(name: str) -> Any:
  if name in _LAZY:
    return getattr(importlib.import_module(_LAZY[name]), name)
  raise AttributeError(f"module 'jaxinit.models' has no attribute {name!r}")


__all__ = ["CNN1D", "Layer", "MLP", "Network", "Params", "ResMLP", "Transformer"]
