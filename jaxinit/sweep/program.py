"""What is static about a shape group: the :class:`Program` every compiled function takes.

Models that agree on every static axis (model, dataset, activation, depth,
width, use_bias, optimizer, batch_size and the model axes) form a *shape
group*; its :class:`Program` is hashable (a ``jit`` static argument) and holds
what the compiled code depends on: the model factory and its keyword
arguments (:func:`network` builds the model once, :mod:`jaxinit.sweep.kinds`),
the loss and metrics, the optimizer, the probes, the block length and how
many models one device trains at once (``lanes``). Functions and classes are
held themselves (compared by identity), so a class redefined in a notebook
compiles anew.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from jaxinit.sweep import convolutions, kinds, optimizers

PyTree = Any

TRAIN_EVAL_SIZE = 1000
"""Training examples (the first ones) on which ``train_loss`` is evaluated."""


def frozen(options: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
  """A dict as sorted ``(key, value)`` pairs, lists as tuples (hashable)."""
  def freeze(v: Any) -> Any:
    if isinstance(v, list | tuple):
      return tuple(freeze(x) for x in v)
    if isinstance(v, Mapping):
      return frozen(v)
    return v
  return tuple(sorted((k, freeze(v)) for k, v in options.items()))


def thawed(pairs: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
  """The keyword arguments :func:`frozen` stored (tuples stay tuples)."""
  return dict(pairs)


@dataclasses.dataclass(frozen=True)
class Program:
  """Everything static about a shape group (hashable: a ``jit`` static argument).

  Attributes:
    model: the model's canonical name (for messages).
    factory: the model factory.
    model_kwargs: what the factory is called with, as sorted pairs.
    inputs: the dataset's inputs as the model takes them (host function).
    input_shape: one input's shape as the model takes it.
    num_outputs: classes or regression targets.
    task: ``"classification"`` or ``"regression"``.
    loss: ``loss(outputs, targets) -> scalar``.
    metrics: ``(name, metric)`` pairs (accuracy first).
    optimizer: the optimizer's canonical name.
    optimizer_factory: the optax factory.
    optimizer_options: its defaults and options, as sorted pairs.
    batch_size: minibatch size.
    block_steps: training steps per compiled block.
    probes: probe names (:data:`jaxinit.sweep.probes.PROBES`).
    lanes: models one device trains at once, ``vmap``-ed together.
    base: the factory's keyword arguments at the base size (the config's
      ``base``), for parametrizations (:func:`base_network`).
    parametrized: whether the grid has a parametrization other than SP: the
      optimizer then takes per-parameter factors per model
      (:func:`jaxinit.sweep.optimizers.build_parametrized`).
  """
  model: str
  factory: Callable[..., Any]
  model_kwargs: tuple[tuple[str, Any], ...]
  inputs: Callable[[np.ndarray], np.ndarray]
  input_shape: tuple[int, ...]
  num_outputs: int
  task: str
  loss: Callable[..., Any]
  metrics: tuple[tuple[str, Callable[..., Any]], ...]
  optimizer: str
  optimizer_factory: Callable[..., Any]
  optimizer_options: tuple[tuple[str, Any], ...]
  batch_size: int
  block_steps: int
  probes: tuple[str, ...]
  lanes: int = 1
  base: tuple[tuple[str, Any], ...] = ()
  parametrized: bool = False

  @property
  def layerwise(self) -> bool:
    """Whether the optimizer updates the params tree (per-layer norms), not a flat vector."""
    return self.optimizer not in optimizers.FLAT


@functools.lru_cache(maxsize=64)
def _build(factory: Any, kwargs: tuple[tuple[str, Any], ...],
           input_shape: tuple[int, ...]) -> kinds.Built:
  return kinds.build(factory, thawed(kwargs), np.zeros((1,) + input_shape, np.float32))


def network(program: Program) -> kinds.Built:
  """The group's model, built once per process (:func:`jaxinit.sweep.kinds.build`)."""
  return _build(program.factory, program.model_kwargs, program.input_shape)


@functools.lru_cache(maxsize=64)
def _convolutional(factory: Any, kwargs: tuple[tuple[str, Any], ...],
                   input_shape: tuple[int, ...]) -> bool:
  net = _build(factory, kwargs, input_shape)
  x = jax.ShapeDtypeStruct((1,) + input_shape, np.float32)
  return convolutions.has_convolution(jax.make_jaxpr(net.run)(net.shapes, net.state, x).jaxpr)


def convolutional(program: Program) -> bool:
  """Whether the group's model computes a convolution (traced once per process)."""
  return _convolutional(program.factory, program.model_kwargs, program.input_shape)


def base_network(program: Program) -> kinds.Built:
  """The group's model at the base size: its factory with ``program.base`` in place."""
  return _build(program.factory, frozen({**thawed(program.model_kwargs), **thawed(program.base)}),
                program.input_shape)


def optimizer(program: Program) -> Any:
  """The optax optimizer, its learning rate (and a parametrized group's factors) state
  entries, set per model by the engine."""
  if program.parametrized:
    return optimizers.build_parametrized(optimizers.TABLE[program.optimizer][0],
                                         thawed(program.optimizer_options), param_count(program))
  return optimizers.build(program.optimizer_factory, {}, thawed(program.optimizer_options))


def param_shapes(program: Program) -> PyTree:
  """The model's params as ``jax.ShapeDtypeStruct`` leaves (one model)."""
  return network(program).shapes


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
  prep = program.inputs
  n_eval = min(train_eval_size, len(dataset.x_train))
  n_probe = min(probe_batch, len(dataset.x_train))
  return {"x_train": prep(dataset.x_train), "y_train": np.asarray(dataset.y_train),
          "x_train_eval": prep(dataset.x_train[:n_eval]),
          "y_train_eval": np.asarray(dataset.y_train[:n_eval]),
          "x_test_eval": prep(dataset.x_test), "y_test_eval": np.asarray(dataset.y_test),
          "x_probe": prep(dataset.x_train[:n_probe]),
          "y_probe": np.asarray(dataset.y_train[:n_probe])}


__all__ = ["Program", "TRAIN_EVAL_SIZE", "base_network", "device_data", "frozen", "network",
           "optimizer",
           "param_count", "param_shapes", "thawed"]
