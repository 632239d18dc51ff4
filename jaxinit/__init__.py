"""jaxinit: weight initialization and signal propagation for JAX and Flax.

Initializers are pure functions ``init(key, shape, dtype=None) -> Array``
built by one combinator, :func:`variance_scaling`, over unit-scale samplers
(:mod:`jaxinit.samplers`). They drop in wherever ``jax.nn.initializers`` or
Flax's ``kernel_init`` / ``bias_init`` go: every name shared with
``jax.nn.initializers`` takes the same arguments with the same meaning.
Whole models (Flax NNX / linen, Equinox, pytrees) are initialized by rules:
:func:`initialize`, :func:`reinit` and :mod:`jaxinit.rules`; parametrizations
(muP, NTK, depth-muP) and the coordinate check are in :mod:`jaxinit.parametrizations`.

Examples:
  >>> import jax, jaxinit
  >>> init = jaxinit.he_normal()
  >>> init
  VarianceScaling(scale=2.0, mode='fan_in', sampler=TruncatedNormal(lower=-2.0, upper=2.0), in_axis=-2, out_axis=-1, batch_axis=(), feature_group_count=1, dtype=None)
  >>> init(jax.random.key(0), (3, 4)).shape
  (3, 4)
"""

from __future__ import annotations

import importlib
from typing import Any

from jaxinit import samplers
from jaxinit.base import Initializer, Sampler
from jaxinit.gains import gain, torch_gain
from jaxinit.initializers import (MODES, Constant, Dirac, Scaled, Uniform, VarianceScaling,
                                  compute_fans, scaled, variance_scaling)
from jaxinit.presets import (constant, delta_orthogonal, depth_scaled, dirac, embedding,
                             glorot_normal, glorot_uniform, he_normal, he_uniform, identity,
                             kaiming_normal, kaiming_uniform, lecun_normal, lecun_uniform,
                             normal, ones, ones_init, orthogonal, torch_linear_bias,
                             torch_linear_default, truncated_normal, uniform, xavier_normal,
                             xavier_uniform, zeros, zeros_init)
from jaxinit.specs import get, register
from jaxinit import rules
from jaxinit.rules import Glob, OfModule, Rule, RuleSet, initialize, reinit
from jaxinit import parametrizations
from jaxinit.parametrizations import Parametrization, coord_check

__version__ = "0.1.0"

# Heavier layers load on first use: `import jaxinit` needs jax alone.
_LAZY_SUBMODULES = ("theory", "models", "probes", "plots", "sweep", "capture", "dynamic",
                    "meta_init")
# Data-dependent initialization (LSUV, MetaInit): functions, loaded on first use.
_LAZY_FUNCTIONS = {"lsuv": "jaxinit.dynamic", "metainit": "jaxinit.meta_init"}


def __getattr__(name: str) -> Any:
  if name in _LAZY_FUNCTIONS:
    return getattr(importlib.import_module(_LAZY_FUNCTIONS[name]), name)
  if name in _LAZY_SUBMODULES:
    return importlib.import_module(f"jaxinit.{name}")
  raise AttributeError(f"module 'jaxinit' has no attribute {name!r}")


__all__ = [
    # types and the combinator
    "Initializer", "Sampler", "samplers", "variance_scaling", "VarianceScaling", "MODES",
    "compute_fans", "Constant", "Dirac", "Scaled", "Uniform", "scaled",
    # gains
    "gain", "torch_gain",
    # presets
    "zeros", "ones", "zeros_init", "ones_init", "constant", "normal", "uniform",
    "truncated_normal",
    "glorot_normal", "glorot_uniform", "xavier_normal", "xavier_uniform",
    "he_normal", "he_uniform", "kaiming_normal", "kaiming_uniform",
    "lecun_normal", "lecun_uniform", "orthogonal", "delta_orthogonal", "dirac",
    "identity", "embedding", "torch_linear_default", "torch_linear_bias", "depth_scaled",
    # specs
    "get", "register",
    # the model level
    "rules", "initialize", "reinit", "Rule", "RuleSet", "Glob", "OfModule",
    # parametrizations
    "parametrizations", "Parametrization", "coord_check",
    # data-dependent initialization
    "lsuv", "metainit",
]
