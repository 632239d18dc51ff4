"""What is static about a shape group: the :class:`Program` every compiled function takes.

Models that agree on every static axis (model, dataset, activation, depth,
width, use_bias, optimizer, batch_size) form a *shape group*; its
:class:`Program` is hashable (a ``jit`` static argument) and names the
network (through :mod:`jaxinit.sweep.networks`), the optimizer (through
:mod:`jaxinit.sweep.optimizers`), the probes, the block length and how many
models one device trains at once (``lanes``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from jaxinit.sweep import networks, optimizers

PyTree = Any

TRAIN_EVAL_SIZE = 1000
"""Training examples (the first ones) on which ``train_loss`` is evaluated."""


def frozen(options: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
  """A dict as sorted ``(key, value)`` pairs (hashable)."""
  return tuple(sorted(options.items()))


@dataclasses.dataclass(frozen=True)
class Program:
  """Everything static about a shape group (hashable: a ``jit`` static argument).

  Attributes:
    model: a name of :data:`jaxinit.sweep.networks.MODELS`.
    model_kwargs: what builds the network besides the dataset's shapes
      (``width``, ``depth``, ``activation``, ``use_bias`` and the model's
      options), as sorted pairs.
    in_features: input features (the signal length for ``"cnn1d"``).
    num_outputs: classes or regression targets.
    task: ``"classification"`` or ``"regression"``.
    optimizer: a name of :data:`jaxinit.sweep.optimizers.OPTIMIZERS`.
    optimizer_options: its options, as sorted pairs.
    batch_size: minibatch size.
    block_steps: training steps per compiled block.
    probes: probe names (:data:`jaxinit.sweep.probes.PROBES`).
    lanes: models one device trains at once, ``vmap``-ed together.
  """
  model: str
  model_kwargs: tuple[tuple[str, Any], ...]
  in_features: int
  num_outputs: int
  task: str
  optimizer: str
  optimizer_options: tuple[tuple[str, Any], ...]
  batch_size: int
  block_steps: int
  probes: tuple[str, ...]
  lanes: int = 1

  @property
  def layerwise(self) -> bool:
    """Whether the optimizer updates the params tree (per-layer norms), not a flat vector."""
    return self.optimizer in optimizers.LAYERWISE_OPTIMIZERS


def network(program: Program) -> Any:
  """The group's network; its initializers go unused (see :mod:`jaxinit.sweep.params`)."""
  return networks.build(program.model, in_features=program.in_features,
                        out_features=program.num_outputs, kwargs=dict(program.model_kwargs))


def optimizer(program: Program) -> Any:
  """The optax optimizer, its learning rate a state entry (set per model by the engine)."""
  return optimizers.build(program.optimizer, dict(program.optimizer_options))


def param_shapes(program: Program) -> PyTree:
  """The network's params as ``jax.ShapeDtypeStruct`` leaves (one model)."""
  return jax.eval_shape(network(program).init, jax.random.key(0))


def param_count(program: Program) -> int:
  """Parameters of one model."""
  return sum(math.prod(x.shape) for x in jax.tree.leaves(param_shapes(program)))


def device_data(program: Program, dataset: Any, probe_batch: int,
                train_eval_size: int = TRAIN_EVAL_SIZE) -> dict[str, np.ndarray]:
  """The dataset as a group's programs take it (host arrays; :meth:`GroupPrograms.put` places them).

  Args:
    program: the shape group (its model lays out the inputs).
    dataset: the dataset.
    probe_batch: how many training inputs the probes see.
    train_eval_size: training examples (the first ones) ``train_loss`` is measured on.

  Returns:
    ``x_train``, ``y_train`` (all of it, minibatches are drawn on device),
    ``x_train_eval``, ``y_train_eval``, ``x_test_eval``, ``y_test_eval``,
    ``x_probe``, ``y_probe``.
  """
  prep = functools.partial(networks.inputs, program.model)
  n_eval = min(train_eval_size, len(dataset.x_train))
  n_probe = min(probe_batch, len(dataset.x_train))
  return {"x_train": prep(dataset.x_train), "y_train": np.asarray(dataset.y_train),
          "x_train_eval": prep(dataset.x_train[:n_eval]),
          "y_train_eval": np.asarray(dataset.y_train[:n_eval]),
          "x_test_eval": prep(dataset.x_test), "y_test_eval": np.asarray(dataset.y_test),
          "x_probe": prep(dataset.x_train[:n_probe]),
          "y_probe": np.asarray(dataset.y_train[:n_probe])}


__all__ = ["Program", "TRAIN_EVAL_SIZE", "device_data", "frozen", "network", "optimizer",
           "param_count", "param_shapes"]
