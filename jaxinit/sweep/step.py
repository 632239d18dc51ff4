"""The traced functions of a sweep: one model's training step and evaluation, and the block.

Everything here runs inside a compiled program (no host syncs, no Python
loops over models). A model's params are one flat float32 vector
(:func:`ravel`); the functions of one model are ``vmap``-ed (or ``lax.map``-ed)
over the models of a device by :func:`train_block` and :func:`init_opt_state`.

A model's non-param state (batch statistics: :attr:`jaxinit.sweep.kinds.Built.state`)
is carried next to its params as ``state["net_state"]``: the training step
runs the model in train mode and keeps the state it returns, evaluation runs
it in eval mode on the state as it is. Randomness inside the model (dropout)
draws from :func:`noise_key`: per model and step, so a model trains the same
alone or in any company, resumed or not.

Divergence: a step whose loss or new params are not finite marks its model
diverged at that step; from then on its params and optimizer state stay as
they were (``jnp.where``) and its step losses are NaN; the sweep goes on.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit.sweep import convolutions
from jaxinit.sweep import probes as probes_lib
from jaxinit.sweep.program import Program, convolutional, network, optimizer, param_shapes

PyTree = Any


def ravel(tree: PyTree, batch_dims: int = 0) -> jax.Array:
  """Leaves flattened and concatenated in ``jax.tree.leaves`` order.

  Args:
    tree: params (or a gradient), jax or numpy arrays.
    batch_dims: leading axes to keep (1 for a population of models).

  Returns:
    ``batch_shape + (size,)``; numpy in, numpy out.

  Examples:
    >>> import numpy as np
    >>> ravel({"a": np.ones((2, 3)), "b": np.zeros((2, 2, 2))}, batch_dims=1).shape
    (2, 7)
  """
  leaves = jax.tree.leaves(tree)
  xp = np if all(isinstance(x, np.ndarray) for x in leaves) else jnp
  return xp.concatenate([xp.reshape(x, x.shape[:batch_dims] + (-1,)) for x in leaves],
                        axis=batch_dims)


def unravel(shapes: PyTree, flat: jax.Array) -> PyTree:
  """Inverse of :func:`ravel` for one model: slices of ``flat`` shaped as ``shapes``.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> shapes = {"a": jax.ShapeDtypeStruct((3,), jnp.float32),
    ...           "b": jax.ShapeDtypeStruct((2, 2), jnp.float32)}
    >>> unravel(shapes, jnp.arange(7.))["b"].tolist()
    [[3.0, 4.0], [5.0, 6.0]]
  """
  leaves, treedef = jax.tree.flatten(shapes)
  out, offset = [], 0
  for leaf in leaves:
    size = math.prod(leaf.shape)
    out.append(flat[offset:offset + size].reshape(leaf.shape))
    offset += size
  return jax.tree.unflatten(treedef, out)


def _optimizer_params(program: Program, flat: jax.Array) -> PyTree:
  """What the optimizer sees: the flat vector, or the tree for layer-wise optimizers."""
  return unravel(param_shapes(program), flat) if program.layerwise else flat


def batch_indices(batch_size: int, num_train: int, data_key: jax.Array,
                  steps: jax.Array) -> jax.Array:
  """The minibatches of ``steps``: row ``t`` is ``randint(fold_in(data_key, t))``.

  Drawn for a whole block at once (one vectorized draw instead of a few tiny
  ones per step); ``vmap`` does not change random values, so step ``t`` gets
  the same batch whatever the block length.

  Args:
    batch_size: examples per minibatch.
    num_train: training examples to draw from (with replacement).
    data_key: the model's data key (:mod:`jaxinit.sweep.keys`), as raw key data.
    steps: ``(n,)`` global step indices.

  Returns:
    int32 ``(n, batch_size)``.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> key = jax.random.key_data(jax.random.key(0))
    >>> both = batch_indices(5, 100, key, jnp.arange(2))
    >>> bool((both[1] == batch_indices(5, 100, key, jnp.arange(1, 2))[0]).all())
    True
  """
  key = jax.random.wrap_key_data(data_key)
  draw = lambda t: jax.random.randint(jax.random.fold_in(key, t),  # noqa: E731
                                      (batch_size,), 0, num_train)
  return jax.vmap(draw)(steps)


NOISE_TAG = 1
"""Folded into a step's data key to give the model's own randomness (:func:`noise_key`)."""


def noise_key(data_key: jax.Array, step: jax.Array) -> jax.Array:
  """The key of a model's randomness (dropout) at step ``t``: ``fold_in(fold_in(data_key, t),
  NOISE_TAG)`` (its minibatch draws from ``fold_in(data_key, t)`` itself).

  Args:
    data_key: the model's raw data key (:mod:`jaxinit.sweep.keys`).
    step: the global step index.
  """
  key = jax.random.fold_in(jax.random.wrap_key_data(data_key), step)
  return jax.random.fold_in(key, NOISE_TAG)


def train_step(program: Program, data: Mapping[str, jax.Array], state: Mapping[str, Any],
               index: jax.Array, step: jax.Array, data_key: jax.Array | None = None
               ) -> tuple[dict[str, Any], jax.Array]:
  """One optimizer step of one model, skipped once the model has diverged.

  Args:
    program: the shape group.
    data: device arrays ``x_train``, ``y_train`` (and others, unused here).
    state: the model's ``params`` (flat, see :func:`ravel`), ``net_state``
      (its non-param state), ``opt_state``, ``alive`` and ``diverged_step``.
    index: this step's minibatch, ``(batch_size,)`` rows of the training set
      (see :func:`batch_indices`).
    step: the global step index ``t`` (traced int32), recorded on divergence.
    data_key: the model's raw data key, for its randomness (:func:`noise_key`).

  Returns:
    The new state and the minibatch loss (NaN if the model had diverged before).
  """
  net, opt, shapes = network(program), optimizer(program), param_shapes(program)
  x, y = data["x_train"][index], data["y_train"][index]

  key = None if data_key is None else noise_key(data_key, step)

  def loss_fn(params):
    outputs, net_state = net.run(params, state["net_state"], x, key, train=True)
    return program.loss(outputs, y), net_state

  flat = state["params"]
  # Differentiate the tree, not the flat vector: the transpose of slicing is
  # padding every leaf's gradient to the full length (slow on CPU).
  (loss, net_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(unravel(shapes, flat))
  layerwise = program.layerwise
  updates, opt_state = opt.update(grads if layerwise else ravel(grads), state["opt_state"],
                                  _optimizer_params(program, flat))
  new_flat = flat + (ravel(updates) if layerwise else updates)
  alive = state["alive"]
  ok = alive & jnp.isfinite(loss) & jnp.all(jnp.isfinite(new_flat))
  # A diverged model keeps its last finite params: NaNs never spread, and it
  # costs the same as the others, so the group stays one program.
  keep = functools.partial(jax.tree.map, lambda new, old: jnp.where(ok, new, old))
  new_state = {"params": keep(new_flat, flat),
               "net_state": keep(net_state, state["net_state"]),
               "opt_state": keep(opt_state, state["opt_state"]),
               "alive": ok,
               "diverged_step": jnp.where(alive & ~ok, step, state["diverged_step"])}
  return new_state, jnp.where(alive, loss, jnp.nan)


_FINGERPRINT_MULTIPLIER = 2654435761  # Knuth's multiplicative hash constant (odd)


def params_fingerprint(flat: jax.Array) -> jax.Array:
  """A uint32 checksum of a model's params, equal only for (almost surely) equal bits.

  ``sum_i bits(p_i) * (2654435761 i + 1 | 1) mod 2^32``: integer sums wrap
  exactly, so the value does not depend on how XLA orders the reduction or
  on the device a model runs on.

  Args:
    flat: one model's params, float32 ``(size,)``.

  Returns:
    A uint32 scalar.

  Examples:
    >>> import jax.numpy as jnp
    >>> a = params_fingerprint(jnp.array([1.0, 2.0]))
    >>> bool(a == params_fingerprint(jnp.array([1.0, 2.0]))), bool(
    ...     a == params_fingerprint(jnp.array([2.0, 1.0])))
    (True, False)
  """
  bits = jax.lax.bitcast_convert_type(flat.astype(jnp.float32), jnp.uint32)
  index = jnp.arange(flat.shape[-1], dtype=jnp.uint32)
  weights = (index * jnp.uint32(_FINGERPRINT_MULTIPLIER) + jnp.uint32(1)) | jnp.uint32(1)
  return jnp.sum(bits * weights, axis=-1, dtype=jnp.uint32)


def evaluate(program: Program, data: Mapping[str, jax.Array],
             params: PyTree, net_state: PyTree) -> dict[str, jax.Array]:
  """Train and test loss and accuracy and the probes of one model.

  Args:
    program: the shape group.
    data: device arrays ``x_train_eval``, ``y_train_eval`` (the first
      training examples), ``x_test_eval``, ``y_test_eval``, ``x_probe``,
      ``y_probe``.
    params: the model's params, flat (see :func:`ravel`).
    net_state: its non-param state (eval mode uses it as it is).

  Returns:
    Scalars ``{split}_loss`` and ``{split}_{metric}`` for ``split`` in train
    and test and every metric of the program (accuracy first),
    ``params_fingerprint`` (:func:`params_fingerprint`) and one ``(depth,)``
    array per probe (:mod:`jaxinit.sweep.probes`).
  """
  net = network(program)
  out = {"params_fingerprint": params_fingerprint(params)}
  params = unravel(param_shapes(program), params)
  for split in ("train", "test"):
    y = data[f"y_{split}_eval"]
    outputs, _ = net.run(params, net_state, data[f"x_{split}_eval"])
    out[f"{split}_loss"] = program.loss(outputs, y)
    for name, metric in program.metrics:
      out[f"{split}_{name}"] = jnp.asarray(metric(outputs, y), jnp.float32)
  if program.probes:
    probed = probes_lib.probed_network(net, program.probes, net_state)
    loss_fn = lambda y_hat: program.loss(y_hat, data["y_probe"])  # noqa: E731
    out.update(probes_lib.measure(program.probes, probed, params, data["x_probe"], loss_fn))
  return out


def _map_models(fn: Callable[[Any], Any], xs: Any, lanes: int) -> Any:
  """``fn`` over the leading (model) axis: a loop over chunks of ``lanes`` vmapped models."""
  # One model at a time is a plain loop: vmap over a chunk of one would add a
  # unit axis to every op (XLA:CPU then gathers minibatches ~2x slower).
  return jax.lax.map(fn, xs, batch_size=None if lanes == 1 else lanes)


def init_opt_state(program: Program, params: jax.Array, learning_rate: jax.Array) -> PyTree:
  """Every model's optimizer state, its learning rate a state entry.

  Args:
    program: the shape group.
    params: every model's initial params, flat: ``(models, size)``.
    learning_rate: ``(models,)``.

  Returns:
    The optimizer states, stacked on a leading model axis.
  """
  opt = optimizer(program)

  def one(p, lr):
    state = opt.init(_optimizer_params(program, p))
    return state._replace(hyperparams={**state.hyperparams, "learning_rate": lr})

  return jax.vmap(one)(params, learning_rate)


def train_block(program: Program, data: Mapping[str, jax.Array], data_keys: jax.Array,
                state: Mapping[str, Any], start: jax.Array, train: jax.Array
                ) -> tuple[dict[str, Any], dict[str, jax.Array]]:
  """``program.block_steps`` steps of every model from step ``start``, then an evaluation.

  Args:
    program: the shape group.
    data: the group's device arrays.
    data_keys: ``(models, 2)`` raw data keys.
    state: per-model ``params`` (flat), ``net_state``, ``opt_state``, ``alive``,
      ``diverged_step``.
    start: the first step's index (traced, so every block runs one program).
    train: False to only evaluate (step 0), so one program serves both.

  Returns:
    ``(state, metrics)``: metrics has :func:`evaluate`'s entries per model,
    ``step_loss`` ``(models, block_steps)``, ``alive`` and ``diverged_step``.
  """
  steps = start + jnp.arange(program.block_steps, dtype=jnp.int32)
  num_train = data["x_train"].shape[0]

  # Inside the loops below XLA:CPU leaves a convolution's gradient off its fast path
  # unless it is written in canonical layout (:mod:`jaxinit.sweep.convolutions`).
  fast = convolutions.for_backend if convolutional(program) else (lambda fn: fn)
  step_fn = fast(functools.partial(train_step, program))
  evaluate_fn = fast(functools.partial(evaluate, program))

  def train_one(args):  # one model's block; lax.map vmaps it over a chunk of models
    state, data_key = args
    index = batch_indices(program.batch_size, num_train, data_key, steps)
    return jax.lax.scan(lambda s, xs: step_fn(data, s, *xs, data_key), state, (index, steps))

  def run(state):
    return _map_models(train_one, (state, data_keys), program.lanes)

  def skip(state):
    return state, jnp.full(state["alive"].shape + (program.block_steps,), jnp.nan)

  # A real branch (the predicate is not batched): evaluating at step 0 trains nothing.
  state, losses = jax.lax.cond(train, run, skip, dict(state))
  # In chunks of models: a whole group's activations on the test set at once
  # could need gigabytes.
  metrics = _map_models(lambda args: evaluate_fn(data, *args),
                        (state["params"], state["net_state"]), program.lanes)
  metrics.update(step_loss=losses, alive=state["alive"],
                 diverged_step=state["diverged_step"])
  return state, metrics


__all__ = ["NOISE_TAG", "batch_indices", "evaluate", "init_opt_state", "noise_key",
           "params_fingerprint", "ravel",
           "train_block", "train_step", "unravel"]
