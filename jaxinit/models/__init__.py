"""Networks for looking at signal propagation: pure functions over pytrees.

:class:`MLP`, :class:`ResMLP` and :class:`CNN1D` are frozen dataclasses with
``init(key) -> params``, ``apply(params, x, *, capture=False,
perturbations=None)`` and ``layers(params)``; params are plain nested dicts
with the hidden layers stacked on a leading depth axis. ``depth`` is always the
number of hidden layers (residual blocks for :class:`ResMLP`).

The same networks as Flax NNX modules are in :mod:`jaxinit.models.nnx`
(imported on demand, so ``import jaxinit`` does not pull in Flax).
"""

from jaxinit.models.base import Layer, Network, Params
from jaxinit.models.cnn import CNN1D
from jaxinit.models.mlp import MLP, ResMLP

__all__ = ["CNN1D", "Layer", "MLP", "Network", "Params", "ResMLP"]
