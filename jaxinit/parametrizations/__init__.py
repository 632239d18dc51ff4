"""Parametrizations: SP, NTK, muP and depth-muP / CompleteP, the coordinate check.

Initialization is half of a parametrization; the other half is per-layer
learning rates and multipliers. A :class:`Parametrization` is plain data
(:mod:`~jaxinit.parametrizations.core`); :func:`scale` applies it to a
model against a base model (:mod:`~jaxinit.parametrizations.scaling`),
giving init rules for :func:`jaxinit.initialize` and per-parameter factor
trees; :func:`optimizer` makes optax's ``adam``, ``adamw`` and ``sgd`` use
them (:mod:`~jaxinit.parametrizations.optim`); :func:`coord_check` checks
that activations keep their size as the model grows
(:mod:`~jaxinit.parametrizations.coord_check`). Layers a model applies itself
(the readout multiplier, muP's attention scale) are in
:mod:`~jaxinit.parametrizations.layers`, :mod:`~jaxinit.parametrizations.nnx`
and :mod:`~jaxinit.parametrizations.linen`.

Only jax is imported here; optax and Flax load when used.

Examples:
  >>> import jax, optax, jaxinit
  >>> from flax import nnx
  >>> from jaxinit import parametrizations as P
  >>> class MLP(nnx.Module):
  ...   def __init__(self, width, rngs):
  ...     self.input = nnx.Linear(8, width, rngs=rngs)
  ...     self.hidden = nnx.Linear(width, width, rngs=rngs)
  ...     self.readout = nnx.Linear(width, 4, rngs=rngs)
  ...   def __call__(self, x):
  ...     return self.readout(nnx.relu(self.hidden(nnx.relu(self.input(x)))))
  >>> base = nnx.eval_shape(lambda: MLP(64, nnx.Rngs(0)))
  >>> model = nnx.eval_shape(lambda: MLP(1024, nnx.Rngs(0)))
  >>> scaling = P.mup().scale(model, base=base)
  >>> model = jaxinit.initialize(model, scaling.rules, jax.random.key(0))
  >>> tx = scaling.optimizer("adamw", learning_rate=1e-2, weight_decay=0.1)
  >>> optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
  >>> scaling["hidden/kernel"].factors.lr_adam
  0.0625
"""

from __future__ import annotations

import importlib
from typing import Any

from jaxinit.parametrizations.core import (READOUTS, ROLES, WIDTHS, Factors, Parametrization,
                                           completep, depth_mup, get, mup, ntk, sp)
from jaxinit.parametrizations.layers import readout_multiplier, scaled_attention
from jaxinit.parametrizations.scaling import (ParamScale, Scaling, default_rules, param_drawer,
                                              scale)
from jaxinit.parametrizations.coord_check import (CoordCheck, CoordRecord, CoordSlope,
                                                  coord_check)

# optax / Flax load on first use.
_LAZY = {"optimizer": "optim", "scale_by_multipliers": "optim",
         "add_decayed_weights": "optim", "adam": "optim", "adamw": "optim", "sgd": "optim"}
_SUBMODULES = ("optim", "nnx", "linen", "capture")


def __getattr__(name: str) -> Any:
  if name in _LAZY:
    return getattr(importlib.import_module(f"jaxinit.parametrizations.{_LAZY[name]}"), name)
  if name in _SUBMODULES:
    return importlib.import_module(f"jaxinit.parametrizations.{name}")
  raise AttributeError(f"module 'jaxinit.parametrizations' has no attribute {name!r}")


__all__ = [
    "Parametrization", "Factors", "ROLES", "WIDTHS", "READOUTS", "sp", "ntk", "mup",
    "depth_mup", "completep", "get",
    "scale", "Scaling", "ParamScale", "default_rules", "param_drawer",
    "optimizer", "adam", "adamw", "sgd", "scale_by_multipliers", "add_decayed_weights",
    "scaled_attention", "readout_multiplier",
    "coord_check", "CoordCheck", "CoordRecord", "CoordSlope",
]
