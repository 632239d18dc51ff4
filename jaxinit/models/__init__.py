"""Networks for looking at signal propagation: Flax NNX modules, each defined once.

:class:`MLP`, :class:`ResMLP` and :class:`CNN1D` are ``nnx.Module`` s whose
parameters are drawn by rules (``jaxinit.initialize``; per-role
initializers ``kernel_init``, ``hidden_init``, ``readout_init``,
``bias_init``, and ``rules=`` before them), with hidden layers stacked on a
leading depth axis and scanned. ``model(x, capture=True)`` also returns the
per-layer pre-activations. ``depth`` is always the number of hidden layers
(residual blocks for :class:`ResMLP`).

For pure functions (probes, sweeps, populations), :func:`functional` splits a
module into a hashable :class:`Functional` (``init(key)``, ``apply(params, x,
capture=..., perturbations=...)``, ``layers(params)``: the :class:`Network`
protocol) and its params, a plain nested dict. The conventions a model
follows are in :mod:`jaxinit.models.base`. :class:`Transformer` (pre-LN,
post-LN/DeepNorm or LayerNorm-free) is in :mod:`jaxinit.models.transformer`.

Examples:
  >>> import jax.numpy as jnp, jaxinit
  >>> from jaxinit.models import MLP, functional
  >>> model = MLP(3, 2, width=8, depth=4, kernel_init=jaxinit.orthogonal(), rngs=0)
  >>> net, params = functional(model)
  >>> sorted(params), params["hidden"]["kernel"].shape
  (['hidden', 'input', 'readout'], (3, 8, 8))
  >>> bool(jnp.allclose(net.apply(params, jnp.ones(3)), model(jnp.ones(3))))
  True
"""

from jaxinit.models.base import (Functional, Layer, Model, Network, Params, functional,
                                 params_of)
from jaxinit.models.cnn import CNN1D
from jaxinit.models.mlp import MLP, ResMLP
from jaxinit.models.transformer import Transformer


__all__ = ["CNN1D", "Functional", "Layer", "MLP", "Model", "Network", "Params", "ResMLP",
           "Transformer", "functional", "params_of"]
