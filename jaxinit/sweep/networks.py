"""The model registry: every network a grid's ``model`` axis names, and how it is built.

An entry builds a network (an object with ``init(key) -> params`` and
``apply(params, x, capture=False)``, the :class:`jaxinit.models.Network`
protocol the probes rely on) from the dataset's shapes and the group's static
values (``width``, ``depth``, ``activation``, ``use_bias`` and the entry's own
options), checks those options, and says how the dataset's inputs are laid
out for it. The built-in networks of :mod:`jaxinit.models` are ordinary
entries: adding a model touches :data:`MODELS` only.

Examples:
  >>> net = build("resmlp", in_features=3, out_features=2,
  ...             kwargs={"width": 8, "depth": 2, "activation": "tanh", "use_bias": True,
  ...                     "branch_scale": 0.5})
  >>> type(net.module()).__name__, net.module().branch_scale
  ('ResMLP', 0.5)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from jaxinit import checks
from jaxinit.sweep import registry


def _identity(x: np.ndarray) -> np.ndarray:
  return x


def _one_channel(x: np.ndarray) -> np.ndarray:
  return np.asarray(x)[..., None]


def _mlp(in_features: int, out_features: int, **kwargs: Any) -> Any:
  from jaxinit.models import MLP, functional  # pylint: disable=import-outside-toplevel
  return functional(MLP.abstract(in_features=in_features, out_features=out_features,
                                 **kwargs))[0]


def _resmlp(in_features: int, out_features: int, **kwargs: Any) -> Any:
  from jaxinit.models import ResMLP, functional  # pylint: disable=import-outside-toplevel
  return functional(ResMLP.abstract(in_features=in_features, out_features=out_features,
                                    **kwargs))[0]


def _cnn1d(in_features: int, out_features: int, *, width: int, **kwargs: Any) -> Any:
  del in_features  # a signal of any length: the conv slides, the readout pools
  from jaxinit.models import CNN1D, functional  # pylint: disable=import-outside-toplevel
  return functional(CNN1D.abstract(in_channels=1, out_features=out_features, channels=width,
                                   **kwargs))[0]


@dataclasses.dataclass(frozen=True)
class ModelEntry:
  """One network a grid can name.

  Attributes:
    build: ``build(in_features, out_features, **kwargs) -> network``, where
      ``kwargs`` are the group's ``width``, ``depth``, ``activation``,
      ``use_bias`` and the entry's options.
    checks: each option's check ``check(where, value) -> canonical value``.
    inputs: the dataset's inputs ``(n, features)`` as the network takes them.
  """
  build: Callable[..., Any]
  checks: Mapping[str, Callable[[str, Any], Any]] = dataclasses.field(default_factory=dict)
  inputs: Callable[[np.ndarray], np.ndarray] = _identity


MODELS: dict[str, ModelEntry] = {
    "mlp": ModelEntry(_mlp),
    "resmlp": ModelEntry(_resmlp, {"branch_scale": checks.real}),
    "cnn1d": ModelEntry(_cnn1d, {"kernel_size": checks.positive_int}, _one_channel),
}
"""Model names and how each is built, its options checked and its inputs laid out."""


def check_model(where: str, value: Any) -> Any:
  """A grid's model value, canonical (see :func:`jaxinit.sweep.registry.check_entry`).

  Examples:
    >>> check_model("[grid] model", {"name": "cnn1d", "kernel_size": 0})
    Traceback (most recent call last):
    ...
    ValueError: [grid] model: option 'kernel_size' of model 'cnn1d' must be a positive int, got 0
  """
  return registry.check_entry(where, value, "model",
                              {name: (lambda e=e: e.checks) for name, e in MODELS.items()})


def build(name: str, *, in_features: int, out_features: int, kwargs: Mapping[str, Any]) -> Any:
  """The network of entry ``name`` for the dataset's shapes and the group's static values."""
  return MODELS[name].build(in_features, out_features, **dict(kwargs))


def inputs(name: str, x: np.ndarray) -> np.ndarray:
  """The dataset's inputs as entry ``name``'s network takes them."""
  return MODELS[name].inputs(np.asarray(x))


__all__ = ["MODELS", "ModelEntry", "build", "check_model", "inputs"]
