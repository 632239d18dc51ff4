"""The sweep engine: many small networks trained at once, one compiled program per shape.

Models that agree on every static axis (model, dataset, activation, depth,
width, use_bias, optimizer, batch_size) form a *shape group*. A group
compiles two programs, whatever its size and however many initializers,
variances, learning rates and seeds it holds (those are arrays):

* ``block`` (:func:`train_block`): ``eval_every`` optimizer steps of every
  model, then an evaluation reduced on device; the same program with
  ``train=False`` evaluates the initial params. Inside, ``lax.map`` runs over
  chunks of :attr:`Program.vmap_models` models, each chunk a ``lax.scan``
  over the block's steps of the ``vmap``-ed single-model :func:`train_step`;
* ``opt_init`` (:func:`init_opt_state`): every model's optimizer state, its
  learning rate a state entry.

With several devices (``jax_num_cpu_devices`` on CPU, as ``jaxinit sweep``
sets it; GPUs; the devices of several processes, see
:mod:`jaxinit.sweep.distributed`) the block is a ``shard_map`` over a mesh
axis ``"models"`` spanning all of them (:func:`model_mesh`): each device
trains its share, the model count padded to a multiple of the device count.
A group runs in program calls ("chunks") sized by ``chunk_size`` and by a
memory budget checked against XLA's memory analysis (:func:`plan_group`).

Every block runs the same program (its first step is an argument), so the
host syncs once per block, and groups that differ only in ``steps`` share the
programs too. Params are drawn before, model by model, by
:mod:`jaxinit.sweep.params`; on device they are one flat vector per model.

Keys: a model's key is ``fold_in(key(root_seed), model_id)``; its params come
from ``fold_in(model_key, 0)`` and its step-``t`` minibatch (drawn with
replacement) from ``fold_in(fold_in(model_key, 1), t)``. Neither depends on
the other models or on the block length, so a model trains the same alone or
in any group.

Divergence: a step whose loss or new params are not finite marks its model
diverged at that step; from then on its params and optimizer state stay as
they were (``jnp.where``) and its step losses are NaN; the sweep goes on.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxinit
from jaxinit import probes as probes_lib
from jaxinit.models import CNN1D, MLP, ResMLP
from jaxinit.sweep import config as config_lib
from jaxinit.sweep import params as params_lib
from jaxinit.sweep.config import ModelSpec, SweepConfig
from jaxinit.sweep.data import Dataset, load_dataset

PyTree = Any
TRAIN_EVAL_SIZE = 1000
"""Training examples (the first ones) on which ``train_loss`` is evaluated."""

_FORWARD_PROBES = {"second_moment", "mean", "variance", "dead_fraction"}


# ---------------------------------------------------------------------------
# What is static about a shape group.


def _frozen(options: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
  return tuple(sorted(options.items()))


def _split_spec(spec: config_lib.Spec) -> tuple[str, dict[str, Any]]:
  if isinstance(spec, str):
    return spec, {}
  options = dict(spec)
  return options.pop("name"), options


@dataclasses.dataclass(frozen=True)
class Program:
  """Everything static about a shape group (hashable: a ``jit`` static argument).

  Attributes:
    model: ``"mlp"``, ``"resmlp"`` or ``"cnn1d"``.
    model_options: extra network options, as sorted pairs.
    in_features: input features (the signal length for ``"cnn1d"``).
    num_outputs: classes or regression targets.
    width: hidden width (channels for ``"cnn1d"``).
    depth: hidden layers (residual blocks for ``"resmlp"``).
    activation: an activation name.
    use_bias: whether layers have biases.
    optimizer: an optimizer name of :data:`jaxinit.sweep.config.OPTIMIZERS`.
    optimizer_options: its options, as sorted pairs.
    task: ``"classification"`` or ``"regression"``.
    batch_size: minibatch size.
    block_steps: training steps per compiled block.
    probes: probe names.
    vmap_models: models ``vmap``-ed together; a program ``lax.map``-s over such
      chunks (see :func:`vmap_width`).
  """
  model: str
  model_options: tuple[tuple[str, Any], ...]
  in_features: int
  num_outputs: int
  width: int
  depth: int
  activation: str
  use_bias: bool
  optimizer: str
  optimizer_options: tuple[tuple[str, Any], ...]
  task: str
  batch_size: int
  block_steps: int
  probes: tuple[str, ...]
  vmap_models: int = 1


def network(program: Program) -> MLP | ResMLP | CNN1D:
  """The group's network; its initializers go unused (see :mod:`jaxinit.sweep.params`).

  Args:
    program: the shape group.

  Returns:
    An :class:`~jaxinit.models.MLP`, :class:`~jaxinit.models.ResMLP` or
    :class:`~jaxinit.models.CNN1D`.
  """
  common = dict(out_features=program.num_outputs, depth=program.depth,
                activation=program.activation, use_bias=program.use_bias,
                **dict(program.model_options))
  if program.model == "cnn1d":
    return CNN1D(in_channels=1, channels=program.width, **common)
  cls = ResMLP if program.model == "resmlp" else MLP
  return cls(in_features=program.in_features, width=program.width, **common)


def optimizer(program: Program) -> optax.GradientTransformation:
  """The optax optimizer, its learning rate a state entry (set per model by the engine)."""
  factory, defaults = config_lib.optimizer_factory(program.optimizer)
  options = {**defaults, **dict(program.optimizer_options)}
  return optax.inject_hyperparams(factory)(learning_rate=1.0, **options)


def prepare_inputs(program: Program, x: jax.Array) -> jax.Array:
  """Inputs as the network takes them: 1-channel signals ``(n, length, 1)`` for a CNN."""
  return x[..., None] if program.model == "cnn1d" else x


# ---------------------------------------------------------------------------
# Traced functions of one model (vmapped or mapped over models by the callers).


def loss_and_accuracy(task: str, outputs: jax.Array,
                      targets: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Mean softmax cross-entropy and accuracy, or mean squared error and NaN.

  Examples:
    >>> import jax.numpy as jnp
    >>> loss, acc = loss_and_accuracy("classification", jnp.array([[0., 9.]]), jnp.array([1]))
    >>> round(float(loss), 4), float(acc)
    (0.0001, 1.0)
  """
  if task == "classification":
    loss = optax.softmax_cross_entropy_with_integer_labels(outputs, targets).mean()
    return loss, jnp.mean(jnp.argmax(outputs, axis=-1) == targets)
  return jnp.mean(jnp.square(outputs - targets)), jnp.asarray(jnp.nan, outputs.dtype)


LAYERWISE_OPTIMIZERS: frozenset[str] = frozenset({"lars", "lamb"})
"""Optimizers that use per-layer norms: they update the params tree, the others
one flat vector per model (fewer, larger kernels: faster to compile and run)."""


def param_shapes(program: Program) -> PyTree:
  """The network's params as ``jax.ShapeDtypeStruct`` leaves (one model)."""
  return jax.eval_shape(network(program).init, jax.random.key(0))


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
  return unravel(param_shapes(program), flat) if program.optimizer in LAYERWISE_OPTIMIZERS \
      else flat


def _all_finite(tree: PyTree) -> jax.Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def batch_indices(program: Program, num_train: int, data_key: jax.Array,
                  steps: jax.Array) -> jax.Array:
  """The minibatches of ``steps``: row ``t`` is ``randint(fold_in(data_key, t))``.

  Drawn for a whole block at once (one vectorized draw instead of a few tiny
  ones per step); ``vmap`` does not change random values, so step ``t`` gets
  the same batch whatever the block length.

  Args:
    program: the shape group (its batch size).
    num_train: training examples to draw from (with replacement).
    data_key: the model's data key ``fold_in(model_key, 1)``, as raw key data.
    steps: ``(n,)`` global step indices.

  Returns:
    int32 ``(n, batch_size)``.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> p = Program("mlp", (), 3, 2, 4, 2, "relu", True, "sgd", (), "regression", 5, 10, ())
    >>> key = jax.random.key_data(jax.random.key(0))
    >>> both = batch_indices(p, 100, key, jnp.arange(2))
    >>> bool((both[1] == batch_indices(p, 100, key, jnp.arange(1, 2))[0]).all())
    True
  """
  key = jax.random.wrap_key_data(data_key)
  draw = lambda t: jax.random.randint(jax.random.fold_in(key, t),  # noqa: E731
                                      (program.batch_size,), 0, num_train)
  return jax.vmap(draw)(steps)


def train_step(program: Program, data: Mapping[str, jax.Array], state: Mapping[str, Any],
               index: jax.Array, step: jax.Array) -> tuple[dict[str, Any], jax.Array]:
  """One optimizer step of one model, skipped once the model has diverged.

  Args:
    program: the shape group.
    data: device arrays ``x_train``, ``y_train`` (and others, unused here).
    state: the model's ``params`` (flat, see :func:`ravel`), ``opt_state``,
      ``alive`` and ``diverged_step``.
    index: this step's minibatch, ``(batch_size,)`` rows of the training set
      (see :func:`batch_indices`).
    step: the global step index ``t`` (traced int32), recorded on divergence.

  Returns:
    The new state and the minibatch loss (NaN if the model had diverged before).
  """
  net, opt, shapes = network(program), optimizer(program), param_shapes(program)
  x, y = data["x_train"][index], data["y_train"][index]

  def loss_fn(params):
    return loss_and_accuracy(program.task, net.apply(params, x), y)[0]

  flat = state["params"]
  # Differentiate the tree, not the flat vector: the transpose of slicing is
  # padding every leaf's gradient to the full length (slow on CPU).
  loss, grads = jax.value_and_grad(loss_fn)(unravel(shapes, flat))
  layerwise = program.optimizer in LAYERWISE_OPTIMIZERS
  updates, opt_state = opt.update(grads if layerwise else ravel(grads), state["opt_state"],
                                  _optimizer_params(program, flat))
  new_flat = flat + (ravel(updates) if layerwise else updates)
  alive = state["alive"]
  ok = alive & jnp.isfinite(loss) & jnp.all(jnp.isfinite(new_flat))
  # A diverged model keeps its last finite params: NaNs never spread, and it
  # costs the same as the others, so the group stays one program.
  keep = functools.partial(jax.tree.map, lambda new, old: jnp.where(ok, new, old))
  new_state = {"params": keep(new_flat, flat),
               "opt_state": keep(opt_state, state["opt_state"]),
               "alive": ok,
               "diverged_step": jnp.where(alive & ~ok, step, state["diverged_step"])}
  return new_state, jnp.where(alive, loss, jnp.nan)


_FINGERPRINT_MULTIPLIER = 2654435761  # Knuth's multiplicative hash constant (odd)


def params_fingerprint(flat: jax.Array) -> jax.Array:
  """A uint32 checksum of a model's params, equal only for (almost surely) equal bits.

  ``sum_i bits(p_i) * (2654435761 i + 1 | 1) mod 2^32``: integer sums wrap
  exactly, so the value does not depend on how XLA orders the reduction or
  on the device a model runs on. Used to check that a model starts from the
  same params bit for bit in any company, on any number of devices.

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
             params: PyTree) -> dict[str, jax.Array]:
  """Train and test loss and accuracy and the probes of one model.

  Args:
    program: the shape group.
    data: device arrays ``x_train_eval``, ``y_train_eval`` (the first
      :data:`TRAIN_EVAL_SIZE` training examples), ``x_test``, ``y_test``,
      ``x_probe``, ``y_probe``.
    params: the model's params, flat (see :func:`ravel`).

  Returns:
    Scalars ``train_loss``, ``train_accuracy``, ``test_loss``,
    ``test_accuracy``, ``params_fingerprint`` (:func:`params_fingerprint`) and one ``(depth,)`` array per probe: ``second_moment``,
    ``mean``, ``variance`` (of the pre-activations, as
    :func:`jaxinit.probes.layer_moments`), ``dead_fraction`` and
    ``grad_norm`` (the norm of the loss gradient with respect to each
    layer's pre-activations, :func:`jaxinit.probes.gradient_norms`).
  """
  net = network(program)
  out = {"params_fingerprint": params_fingerprint(params)}
  params = unravel(param_shapes(program), params)
  for split in ("train", "test"):
    x, y = data[f"x_{split}_eval"], data[f"y_{split}_eval"]
    out[f"{split}_loss"], out[f"{split}_accuracy"] = loss_and_accuracy(
        program.task, net.apply(params, x), y)
  if _FORWARD_PROBES & set(program.probes):
    _, captured = net.apply(params, data["x_probe"], capture=True)
    h = captured["preactivations"]
    moments = probes_lib.layer_moments(h)
    for name in ("second_moment", "mean", "variance"):
      if name in program.probes:
        out[name] = moments[name]
    if "dead_fraction" in program.probes:
      out["dead_fraction"] = probes_lib.dead_fraction(h)
  if "grad_norm" in program.probes:
    loss_fn = lambda y_hat: loss_and_accuracy(program.task, y_hat, data["y_probe"])[0]  # noqa: E731
    out["grad_norm"] = probes_lib.gradient_norms(net, params, data["x_probe"],
                                                 loss_fn)["activations"]
  return out


# ---------------------------------------------------------------------------
# The two compiled programs of a group. Leading axis of every argument but data: models.


def _map_models(fn: Callable[[Any], Any], xs: Any, vmap_models: int) -> Any:
  """``fn`` over the leading (model) axis: a loop over chunks of ``vmap_models`` vmapped models."""
  # One model at a time is a plain loop: vmap over a chunk of one would add a
  # unit axis to every op (XLA:CPU then gathers minibatches ~2x slower).
  return jax.lax.map(fn, xs, batch_size=None if vmap_models == 1 else vmap_models)


def _evaluate_models(program: Program, data: Mapping[str, jax.Array],
                     params: PyTree) -> dict[str, jax.Array]:
  # In chunks of models: a whole group's activations on the test set at once
  # could need gigabytes.
  return _map_models(functools.partial(evaluate, program, data), params, program.vmap_models)


def init_opt_state(program: Program, params: jax.Array,
                   learning_rate: jax.Array) -> PyTree:
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
    state: per-model ``params`` (flat), ``opt_state``, ``alive``, ``diverged_step``.
    start: the first step's index (traced, so every block runs one program).
    train: False to only evaluate (step 0), so one program serves both.

  Returns:
    ``(state, metrics)``: metrics has :func:`evaluate`'s entries per model,
    ``step_loss`` ``(models, block_steps)``, ``alive`` and ``diverged_step``.
  """
  steps = start + jnp.arange(program.block_steps, dtype=jnp.int32)
  num_train = data["x_train"].shape[0]

  def train_one(args):  # one model's block; lax.map vmaps it over a chunk of models
    state, data_key = args
    index = batch_indices(program, num_train, data_key, steps)
    return jax.lax.scan(lambda s, xs: train_step(program, data, s, *xs), state,
                        (index, steps))

  def run(state):
    return _map_models(train_one, (state, data_keys), program.vmap_models)

  def skip(state):
    return state, jnp.full(state["alive"].shape + (program.block_steps,), jnp.nan)

  # A real branch (the predicate is not batched): evaluating at step 0 trains nothing.
  state, losses = jax.lax.cond(train, run, skip, dict(state))
  metrics = _evaluate_models(program, data, state["params"])
  metrics.update(step_loss=losses, alive=state["alive"],
                 diverged_step=state["diverged_step"])
  return state, metrics


# ---------------------------------------------------------------------------
# Host side.


@dataclasses.dataclass
class GroupReport:
  """Timing and size of one shape group.

  Attributes:
    key: the static axes shared by the group (JSON text).
    num_models: models in the group.
    chunk_models: models per program call (the last chunk is padded).
    init_s: seconds drawing params (the draws' first compiles included).
    compile_s: seconds lowering and compiling the group's programs (0 when reused).
    run_s: seconds of training and evaluation, compile excluded.
  """
  key: str
  num_models: int
  chunk_models: int
  init_s: float = 0.0
  compile_s: float = 0.0
  run_s: float = 0.0


@dataclasses.dataclass
class ModelRecord:
  """What one model's training produced (host numpy).

  Attributes:
    eval_step: ``(evals,)`` steps of the evaluations (0 first).
    metrics: per :func:`evaluate` entry, ``(evals, ...)``.
    step_loss: ``(steps,)`` minibatch losses: the diverging step's (not finite), then NaN.
    diverged_step: the step that diverged, or -1.
    initial_params: with ``keep_params``, else None.
    final_params: with ``keep_params``, else None.
  """
  eval_step: np.ndarray
  metrics: dict[str, np.ndarray]
  step_loss: np.ndarray
  diverged_step: int
  initial_params: PyTree = None
  final_params: PyTree = None


class Progress:
  """A one-line progress report on stderr: models done, model-steps/s, ETA.

  Args:
    total_models: models in the sweep.
    total_model_steps: the sum of their steps.
    enabled: print anything at all.
    stream: where to print (default stderr).
  """

  def __init__(self, total_models: int, total_model_steps: int, enabled: bool = True,
               stream: Any = None) -> None:
    self.total_models, self.total_steps = total_models, total_model_steps
    self.models_done = self.steps_done = 0
    self.train_s = 0.0
    self.enabled = enabled
    self.stream = sys.stderr if stream is None else stream
    self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
    self._last = -math.inf
    self._printed = ""

  def line(self) -> str:
    """The current report."""
    rate = self.steps_done / self.train_s if self.train_s > 0 else 0.0
    left = (self.total_steps - self.steps_done) / rate if rate > 0 else math.nan
    eta = time.strftime("%H:%M:%S", time.gmtime(left)) if math.isfinite(left) else "--:--:--"
    return (f"[sweep] models {self.models_done}/{self.total_models} | "
            f"{rate:,.0f} model-steps/s | ETA {eta} (training only)")

  def update(self, model_steps: int, seconds: float, models_done: int = 0,
             final: bool = False) -> None:
    """Records ``model_steps`` trained in ``seconds`` and ``models_done`` finished."""
    self.steps_done += model_steps
    self.train_s += seconds
    self.models_done += models_done
    now = time.monotonic()
    # On a terminal, redraw often; in a log file, a line every 10 s.
    if not self.enabled or (not final and now - self._last < (0.5 if self._tty else 10.0)):
      return
    line = self.line()
    if line == self._printed:
      return
    self._last, self._printed = now, line
    end = "\n" if final or not self._tty else ""
    print(("\r" if self._tty else "") + line, end=end, file=self.stream, flush=True)


def device_data(program: Program, dataset: Dataset, probe_batch: int) -> dict[str, np.ndarray]:
  """The dataset as a group's programs take it (host arrays; :meth:`GroupPrograms.put` places them).

  Args:
    program: the shape group (CNNs take 1-channel signals).
    dataset: the dataset.
    probe_batch: how many training inputs the probes see.

  Returns:
    ``x_train``, ``y_train`` (all of it, minibatches are drawn on device),
    ``x_train_eval``, ``y_train_eval`` (the first :data:`TRAIN_EVAL_SIZE`),
    ``x_test_eval``, ``y_test_eval``, ``x_probe``, ``y_probe``.
  """
  def prep(x: Any) -> np.ndarray:
    return np.asarray(x)[..., None] if program.model == "cnn1d" else np.asarray(x)

  n_eval = min(TRAIN_EVAL_SIZE, len(dataset.x_train))
  n_probe = min(probe_batch, len(dataset.x_train))
  return {"x_train": prep(dataset.x_train), "y_train": np.asarray(dataset.y_train),
          "x_train_eval": prep(dataset.x_train[:n_eval]),
          "y_train_eval": np.asarray(dataset.y_train[:n_eval]),
          "x_test_eval": prep(dataset.x_test), "y_test_eval": np.asarray(dataset.y_test),
          "x_probe": prep(dataset.x_train[:n_probe]),
          "y_probe": np.asarray(dataset.y_train[:n_probe])}


VMAP_FLOPS = 16e6
"""Matmul FLOPs one vmapped training step aims at on CPU (see :func:`vmap_width`)."""


def vmap_width(flops_per_model_step: float, num_models: int) -> int:
  """How many models to ``vmap`` together: the rest of a group is ``lax.map``-ped over.

  On CPU a step over every model at once streams all their activations
  through memory at every op, and a model whose step already keeps both cores
  busy (width 64, batch 128: 25 MFLOP) trains ~25% faster one at a time. Small
  models need company to amortize each op's fixed cost (width 32, batch 32:
  ~1.5x faster 8 or more at a time). So: the largest divisor of
  ``num_models`` whose step does at most :data:`VMAP_FLOPS`; on accelerators,
  every model.

  Args:
    flops_per_model_step: ``6 x params x batch``.
    num_models: models in the program.

  Returns:
    A divisor of ``num_models``.

  Examples:
    >>> vmap_width(25e6, 12), vmap_width(1.7e6, 12), vmap_width(2e4, 256)
    (1, 6, 256)
  """
  if jax.default_backend() != "cpu":
    return num_models
  target = max(1, int(VMAP_FLOPS // max(flops_per_model_step, 1.0)))
  return max(d for d in range(1, num_models + 1) if num_models % d == 0 and d <= target)


def make_program(spec: ModelSpec, dataset: Dataset, config: SweepConfig,
                 num_models: int) -> Program:
  """The :class:`Program` of ``spec``'s shape group.

  Args:
    spec: any model of the group.
    dataset: its dataset.
    config: the sweep (block length, probes).
    num_models: models per device in a program call (see :func:`device_count`).

  Returns:
    The program.
  """
  model, model_options = _split_spec(spec["model"])
  opt, opt_options = _split_spec(spec["optimizer"])
  program = Program(model=model, model_options=_frozen(model_options),
                    in_features=dataset.in_features, num_outputs=dataset.num_outputs,
                    width=spec["width"], depth=spec["depth"], activation=spec["activation"],
                    use_bias=spec["use_bias"], optimizer=opt,
                    optimizer_options=_frozen(opt_options), task=dataset.task,
                    batch_size=spec["batch_size"], block_steps=config.eval_every,
                    probes=config.probes)
  flops = 6 * program.batch_size * sum(
      math.prod(x.shape) for x in jax.tree.leaves(param_shapes(program)))
  return dataclasses.replace(program, vmap_models=vmap_width(flops, num_models))


_opt_init_jit = jax.jit(init_opt_state, static_argnums=0)
_block_jit = jax.jit(train_block, static_argnums=0, donate_argnums=3)


def model_mesh() -> jax.sharding.Mesh | None:
  """One mesh axis ``"models"`` over every device of every process (None with one device).

  A group's models are sharded over it (padded to a multiple of its size):
  each device trains its share, with no communication until metrics are
  fetched. With several processes (:mod:`jaxinit.sweep.distributed`) it
  spans all of them. On CPU, XLA runs a small model's matmuls on one thread,
  so set ``jax.config.update("jax_num_cpu_devices", os.cpu_count())`` before
  any computation (``jaxinit sweep`` does) to use every core.
  """
  devices = jax.devices()
  return None if len(devices) == 1 else jax.sharding.Mesh(np.array(devices), ("models",))


def device_count() -> int:
  """Devices a group's models are spread over: all of them, in every process.

  Examples:
    >>> device_count() == len(jax.devices())
    True
  """
  return jax.device_count()


def parse_bytes(value: int | float | str) -> int:
  """A memory size: bytes, or text such as ``"4GiB"``, ``"512MB"``, ``"1.5G"``.

  Raises:
    ValueError: anything else, naming the accepted forms.

  Examples:
    >>> parse_bytes("4GiB"), parse_bytes("512MB"), parse_bytes(1024)
    (4294967296, 512000000, 1024)
  """
  units = {"": 1, "b": 1, "k": 2**10, "kb": 10**3, "kib": 2**10, "m": 2**20, "mb": 10**6,
           "mib": 2**20, "g": 2**30, "gb": 10**9, "gib": 2**30, "t": 2**40, "tb": 10**12,
           "tib": 2**40}
  if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
    return int(value)
  if isinstance(value, str):
    text = value.strip().lower().replace(" ", "")
    number = text.rstrip("kmgtib")
    try:
      size = float(number) * units[text[len(number):]]
    except (ValueError, KeyError):
      size = -1.0
    if size > 0:
      return int(size)
  raise ValueError(f"memory_budget must be a positive number of bytes or a size such as "
                   f"'4GiB', '512MB' or '1.5G' (units B, K/KiB, M/MiB, G/GiB, T/TiB, KB, MB, "
                   f"GB, TB); got {value!r}")


DEFAULT_CPU_BUDGET = 2 * 2**30
"""Default memory budget of a process on CPU (its devices share the host's RAM)."""


def default_memory_budget() -> int:
  """Bytes the programs of one process may use: half its devices' memory on accelerators,
  :data:`DEFAULT_CPU_BUDGET` on CPU."""
  devices = jax.local_devices()
  if devices[0].platform == "cpu":
    return DEFAULT_CPU_BUDGET
  total = 0
  for device in devices:
    stats = device.memory_stats() or {}
    total += int(stats.get("bytes_limit", DEFAULT_CPU_BUDGET))
  return total // 2


def models_per_device(num_models: int, num_devices: int, most_per_device: int) -> int:
  """Models per device per program call: the fewest calls, balanced.

  Args:
    num_models: models in the shape group.
    num_devices: devices they are spread over.
    most_per_device: the cap (from ``chunk_size`` and the memory budget).

  Returns:
    ``m``: each call trains ``m * num_devices`` models, the last one padded.

  Examples:
    >>> models_per_device(1000, 8, 64)  # two calls of 8 x 63 (8 padded)
    63
    >>> models_per_device(3, 8, 64)
    1
  """
  calls = -(-num_models // (num_devices * most_per_device))
  return max(1, -(-num_models // (num_devices * calls)))


@dataclasses.dataclass
class GroupPrograms:
  """A shape group's compiled programs for ``num_models`` models per call.

  Attributes:
    program: the group.
    num_models: models per call (a multiple of the device count).
    mesh: the model mesh (None on one device).
    opt_init: compiled :func:`init_opt_state` ``(params, learning_rate)``.
    block: compiled :func:`train_block`.
    memory_bytes: the block's memory per device (arguments, outputs and
      temporaries, less donated buffers), from XLA's memory analysis.
    model_bytes: of which are not the (replicated) data: params, optimizer
      state, metrics and temporaries, which grow with the models per device.
  """
  program: Program
  num_models: int
  mesh: jax.sharding.Mesh | None
  opt_init: Any
  block: Any
  memory_bytes: int
  model_bytes: int

  def sharding(self, split: bool) -> jax.sharding.Sharding:
    """Where arrays go: split over the model axis, or replicated."""
    if self.mesh is None:
      return jax.sharding.SingleDeviceSharding(jax.devices()[0])
    spec = jax.sharding.PartitionSpec("models") if split else jax.sharding.PartitionSpec()
    return jax.sharding.NamedSharding(self.mesh, spec)

  def local_rows(self) -> list[int]:
    """The rows (models of a call) that live on this process's devices, in order."""
    if self.mesh is None:
      return list(range(self.num_models))
    rows: set[int] = set()
    for index in self.sharding(True).addressable_devices_indices_map(
        (self.num_models,)).values():
      rows.update(range(self.num_models)[index[0]])
    return sorted(rows)

  def put(self, local: Any, rows: Sequence[int] | None = None) -> Any:
    """Host arrays as global device arrays: split over models (``rows`` given) or replicated.

    Args:
      local: a pytree of numpy arrays: with ``rows``, the rows
        :meth:`local_rows` lists (leading axis), else the whole value.
      rows: the local rows ``local`` holds.

    Returns:
      The same pytree of ``jax.Array`` on the mesh.
    """
    if rows is None:
      sharding = self.sharding(False)
      return jax.tree.map(lambda x: jax.make_array_from_callback(
          np.shape(x), sharding, lambda index: np.asarray(x)[index]), local)
    sharding = self.sharding(True)
    position = {r: i for i, r in enumerate(rows)}

    def one(x: np.ndarray) -> jax.Array:
      def part(index: tuple[slice, ...]) -> np.ndarray:
        lo, hi, _ = index[0].indices(self.num_models)
        return x[position[lo]:position[lo] + hi - lo]
      return jax.make_array_from_callback((self.num_models,) + x.shape[1:], sharding, part)

    return jax.tree.map(one, local)


def fetch(tree: PyTree) -> PyTree:
  """Device arrays split over models as whole host arrays, from every process.

  With several processes this is a collective (every process must call it).
  """
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    return multihost_utils.process_allgather(tree, tiled=True)
  return jax.device_get(tree)


def _state_struct(program: Program, num: int, size: int,
                  split: jax.sharding.Sharding | None) -> dict[str, Any]:
  struct = lambda shape, dtype: jax.ShapeDtypeStruct(shape, dtype, sharding=split)  # noqa: E731
  params, lr = struct((num, size), jnp.float32), struct((num,), jnp.float32)
  opt_state = jax.eval_shape(functools.partial(init_opt_state, program), params, lr)
  if split is not None:
    opt_state = jax.tree.map(lambda x: struct(x.shape, x.dtype), opt_state)
  return {"params": params, "opt_state": opt_state, "alive": struct((num,), jnp.bool_),
          "diverged_step": struct((num,), jnp.int32)}


def compile_group(program: Program, data: Mapping[str, np.ndarray],
                  num_models: int) -> GroupPrograms:
  """Lowers and compiles a group's two programs for ``num_models`` models per call.

  Args:
    program: the group (``vmap_models`` divides ``num_models`` / devices).
    data: the host data (:func:`device_data`): only shapes are used.
    num_models: models per call, a multiple of :func:`device_count`.

  Returns:
    The :class:`GroupPrograms`.
  """
  mesh = model_mesh()
  size = sum(math.prod(x.shape) for x in jax.tree.leaves(param_shapes(program)))
  spec = jax.sharding.PartitionSpec
  split = None if mesh is None else jax.sharding.NamedSharding(mesh, spec("models"))
  whole = None if mesh is None else jax.sharding.NamedSharding(mesh, spec())
  struct = lambda shape, dtype, sharding: jax.ShapeDtypeStruct(  # noqa: E731
      shape, dtype, sharding=sharding)
  state = _state_struct(program, num_models, size, split)
  data_structs = {k: struct(v.shape, v.dtype, whole) for k, v in data.items()}
  args = (data_structs, struct((num_models, 2), jnp.uint32, split), state,
          struct((), jnp.int32, whole), struct((), jnp.bool_, whole))
  lr = struct((num_models,), jnp.float32, split)
  if mesh is None:
    opt_init = _opt_init_jit.lower(program, state["params"], lr).compile()
    block = _block_jit.lower(program, *args).compile()
  else:
    opt_init = jax.jit(functools.partial(init_opt_state, program), out_shardings=split).lower(
        state["params"], lr).compile()
    fn = jax.shard_map(functools.partial(train_block, program), mesh=mesh,
                       in_specs=(spec(), spec("models"), spec("models"), spec(), spec()),
                       out_specs=spec("models"), check_vma=False)
    block = jax.jit(fn, out_shardings=split, donate_argnums=2).lower(*args).compile()
  stats = block.memory_analysis()
  data_bytes = sum(v.nbytes for v in data.values())
  if stats is None:  # backends without an analysis: count the arguments only
    devices = 1 if mesh is None else mesh.size
    per_device = data_bytes + sum(x.size * x.dtype.itemsize
                                  for x in jax.tree.leaves(state)) // devices
  else:
    per_device = int(stats.argument_size_in_bytes + stats.output_size_in_bytes
                     + stats.temp_size_in_bytes - stats.alias_size_in_bytes)
  return GroupPrograms(program=program, num_models=num_models, mesh=mesh, opt_init=opt_init,
                       block=block, memory_bytes=per_device,
                       model_bytes=max(0, per_device - data_bytes))


class ProgramCache:
  """Compiled group programs by (program, models per call, devices, data shapes).

  Programs are lowered and compiled ahead of time, so compile time is
  measured apart from run time; one cache serves every sweep of a process
  (see :func:`train_models`), so the same shapes never compile twice.
  """

  def __init__(self) -> None:
    self._compiled: dict[Any, GroupPrograms] = {}

  def get(self, program: Program, data: Mapping[str, np.ndarray],
          num_models: int) -> tuple[GroupPrograms, float]:
    """``(programs, seconds spent compiling now)`` for ``num_models`` models per call."""
    # Data are arguments, not constants: two datasets of one shape share programs.
    key = (program, num_models, jax.device_count(),
           tuple((k, v.shape, str(v.dtype)) for k, v in sorted(data.items())))
    if key in self._compiled:
      return self._compiled[key], 0.0
    tick = time.perf_counter()
    self._compiled[key] = compile_group(program, data, num_models)
    return self._compiled[key], time.perf_counter() - tick


_SHARED_CACHE = ProgramCache()


class MemoryBudgetError(ValueError):
  """The memory budget cannot hold even one model per device of a group."""


def plan_group(spec: ModelSpec, dataset: Dataset, config: SweepConfig, num_models: int,
               data: Mapping[str, np.ndarray], budget_per_device: int, cache: ProgramCache
               ) -> tuple[GroupPrograms, float]:
  """The largest balanced program call of a group within ``chunk_size`` and the budget.

  The call's size comes from XLA's memory analysis of the compiled block:
  if it needs more than the budget, the per-model bytes it reports give the
  size that fits, and that is compiled instead (a model's results do not
  depend on its chunk).

  Args:
    spec: any model of the group.
    dataset: its dataset.
    config: the sweep (``chunk_size``).
    num_models: models in the group.
    data: the group's host data.
    budget_per_device: bytes one device's programs may use.
    cache: the program cache.

  Returns:
    ``(programs, seconds compiling)``.

  Raises:
    MemoryBudgetError: one model per device does not fit.
  """
  devices = device_count()
  most = max(1, config.chunk_size // devices)
  compile_s = 0.0
  for _ in range(4):
    per_device = models_per_device(num_models, devices, most)
    program = make_program(spec, dataset, config, per_device)
    programs, seconds = cache.get(program, data, per_device * devices)
    compile_s += seconds
    if programs.memory_bytes <= budget_per_device:
      return programs, compile_s
    if per_device == 1:
      break
    # Temporaries grow with the models vmapped together, so count everything
    # but the data as per-model: conservative where part of it is fixed.
    data_bytes = programs.memory_bytes - programs.model_bytes
    per_model = max(1, programs.model_bytes // per_device)
    most = min(per_device - 1, max(1, (budget_per_device - data_bytes) // per_model))
  if programs.memory_bytes <= budget_per_device:
    return programs, compile_s
  raise MemoryBudgetError(
      f"memory_budget: {programs.memory_bytes:,} bytes per device are needed for "
      f"{programs.num_models // devices} model(s) per device of shape group "
      f"{spec.static_key()}, but the budget allows {budget_per_device:,}; raise "
      f"memory_budget or lower chunk_size")


_model_key = jax.jit(lambda root, model_id, which: jax.random.fold_in(
    jax.random.fold_in(jax.random.wrap_key_data(root), model_id), which))


_model_keys_batch = jax.jit(jax.vmap(lambda root, model_id: jax.vmap(
    lambda which: jax.random.key_data(_model_key(root, model_id, which)))(
        jnp.arange(2, dtype=jnp.uint32)), (None, 0)))


def model_keys(root_seed: int, model_id: int) -> tuple[jax.Array, jax.Array]:
  """A model's ``(init key, data key)``: ``fold_in(fold_in(key(root_seed), model_id), 0 | 1)``.

  Args:
    root_seed: the sweep's root seed.
    model_id: the model's :attr:`~jaxinit.sweep.config.ModelSpec.model_id`.

  Returns:
    Two typed PRNG keys.

  Examples:
    >>> import jax
    >>> init_key, _ = model_keys(0, 12345)
    >>> bool((jax.random.key_data(init_key) == jax.random.key_data(jax.random.fold_in(
    ...     jax.random.fold_in(jax.random.key(0), 12345), 0))).all())
    True
  """
  root = jax.random.key_data(jax.random.key(root_seed))
  model_id = np.uint32(model_id)
  return _model_key(root, model_id, np.uint32(0)), _model_key(root, model_id, np.uint32(1))


def initial_arrays(program: Program, models: Sequence[ModelSpec], root_seed: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """What a group's programs start from: flat params, learning rates, data keys.

  Args:
    program: the models' shape group.
    models: the models (one program call).
    root_seed: the sweep's root seed.

  Returns:
    ``params`` ``(models, size)`` (see :mod:`jaxinit.sweep.params` and
    :func:`ravel`), ``learning_rate`` ``(models,)`` and raw ``data_keys``
    ``(models, 2)``, as numpy arrays.
  """
  # Every model's keys in one call (ids padded to a power of two: few compiles).
  ids = np.array([m.model_id for m in models], np.uint32)
  padded = np.resize(ids, max(8, 1 << (len(ids) - 1).bit_length()))
  root = jax.random.key_data(jax.random.key(root_seed))
  raw = np.asarray(_model_keys_batch(root, padded))[:len(ids)]  # (models, 2, key)
  inits: dict[str, Any] = {}  # one initializer object per distinct spec
  for m in models:
    spec = json.dumps(m["init"], sort_keys=True)
    if spec not in inits:
      inits[spec] = jaxinit.get(m["init"])
  params = params_lib.draw_population(
      param_shapes(program), [inits[json.dumps(m["init"], sort_keys=True)] for m in models],
      raw[:, 0],
      [m["weight_variance"] for m in models], [m["bias_variance"] for m in models])
  data_keys = raw[:, 1]
  learning_rate = np.asarray([m["learning_rate"] for m in models], np.float32)
  return ravel(params, batch_dims=1), learning_rate, data_keys


def start_state(programs: GroupPrograms, params: np.ndarray, learning_rate: np.ndarray,
                rows: Sequence[int]) -> dict[str, Any]:
  """The state a group's first block takes, on the model mesh.

  Args:
    programs: the group's compiled programs.
    params: flat params of this process's ``rows`` of the call.
    learning_rate: their learning rates.
    rows: :meth:`GroupPrograms.local_rows`.

  Returns:
    ``{"params", "opt_state", "alive", "diverged_step"}``, each split over models.
  """
  n = len(rows)
  params_, lr = programs.put(params, rows), programs.put(learning_rate, rows)
  return {"params": params_, "opt_state": programs.opt_init(params_, lr),
          "alive": programs.put(np.ones(n, bool), rows),
          "diverged_step": programs.put(np.full(n, -1, np.int32), rows)}


def group_models(models: Sequence[ModelSpec]) -> dict[str, list[int]]:
  """Indices of ``models`` by shape group, groups and members in first-seen order.

  Examples:
    >>> from jaxinit.sweep.config import parse_config
    >>> models = parse_config({"grid": {"depth": [2, 3], "learning_rate": [0.1, 0.2]}}).models()
    >>> [len(v) for v in group_models(models).values()]
    [2, 2]
  """
  groups: dict[str, list[int]] = {}
  for i, m in enumerate(models):
    groups.setdefault(m.static_key(), []).append(i)
  return groups


def _dataset_key(spec: Any) -> str:
  return json.dumps(spec, sort_keys=True)


ChunkCallback = Callable[[Sequence[ModelSpec], Sequence["ModelRecord"]], None]


def train_models(config: SweepConfig, models: Sequence[ModelSpec] | None = None, *,
                 progress: bool | Progress = True, keep_params: bool = False,
                 cache: ProgramCache | None = None,
                 memory_budget: int | str | None = None,
                 on_chunk: ChunkCallback | None = None
                 ) -> tuple[list[ModelRecord], list[GroupReport]]:
  """Trains ``models`` (default: all of ``config``'s) group by group, chunk by chunk.

  Each group's models go through program calls of at most ``chunk_size``
  models, as many as fit ``memory_budget`` (:func:`plan_group`), split
  over every device of every process (:func:`model_mesh`). With several
  processes, every process calls this with the same arguments: each trains
  the models on its devices, and all of them get every record.

  Args:
    config: the sweep (root seed, block length, probes, chunk size).
    models: the models to train, any subset of a grid; each is trained as it
      would be in any other company.
    progress: print a progress line on stderr (or a :class:`Progress` to use).
    keep_params: also return every model's initial and final params.
    cache: where compiled programs are kept (default: one shared by the
      process, so a later sweep with the same shapes compiles nothing).
    memory_budget: bytes (or ``"4GiB"``) this process's programs may use
      (default :func:`default_memory_budget`); shared by its local devices.
    on_chunk: called with each finished chunk's models and records (e.g. to
      save them, see :mod:`jaxinit.sweep.store`).

  Returns:
    One :class:`ModelRecord` per model (in the order given) and one
    :class:`GroupReport` per shape group.

  Raises:
    MemoryBudgetError: a group does not fit the budget even one model per device.
  """
  models = list(config.models() if models is None else models)
  ids = [m.model_id for m in models]
  if len(set(ids)) != len(ids):
    raise ValueError("two models of the sweep have the same cell and seed")
  budget = default_memory_budget() if memory_budget is None else parse_bytes(memory_budget)
  budget_per_device = budget // jax.local_device_count()
  # Every dataset is loaded before anything compiles: a missing extra fails fast.
  datasets = {_dataset_key(m["dataset"]): None for m in models}
  for key in datasets:
    datasets[key] = load_dataset(json.loads(key))
  cache = _SHARED_CACHE if cache is None else cache
  reporter = progress if isinstance(progress, Progress) else Progress(
      len(models), sum(m["steps"] for m in models),
      enabled=bool(progress) and jax.process_index() == 0)
  records: list[Any] = [None] * len(models)
  reports = []
  for key, members in group_models(models).items():
    first = models[members[0]]
    dataset = datasets[_dataset_key(first["dataset"])]
    host_data = device_data(make_program(first, dataset, config, 1), dataset,
                            config.probe_batch)
    programs, compile_s = plan_group(first, dataset, config, len(members), host_data,
                                     budget_per_device, cache)
    program, chunk = programs.program, programs.num_models
    data = programs.put(host_data)
    rows = programs.local_rows()
    report = GroupReport(key=key, num_models=len(members), chunk_models=chunk,
                         compile_s=compile_s)
    for lo in range(0, len(members), chunk):
      part = [models[i] for i in members[lo:lo + chunk]]
      # Pad the last chunk with copies of its last model so it reuses the program.
      padded = part + [part[-1]] * (chunk - len(part))
      tick = time.perf_counter()
      # Each process draws only the models on its own devices.
      params, learning_rate, data_keys = initial_arrays(program, [padded[r] for r in rows],
                                                        config.root_seed)
      report.init_s += time.perf_counter() - tick
      chunk_records = _run_chunk(programs, data, rows, params, learning_rate, data_keys,
                                 first["steps"], len(part), reporter, report, keep_params)
      for i, record in zip(members[lo:lo + chunk], chunk_records):
        records[i] = record
      if on_chunk is not None:
        on_chunk(part, chunk_records)
    reports.append(report)
  reporter.update(0, 0.0, final=True)
  return records, reports


def _run_chunk(programs: GroupPrograms, data: Any, rows: Sequence[int], params: np.ndarray,
               learning_rate: np.ndarray, data_keys: np.ndarray, steps: int, n: int,
               reporter: Progress, report: GroupReport,
               keep_params: bool) -> list[ModelRecord]:
  tick = time.perf_counter()
  program, num = programs.program, programs.num_models
  state = start_state(programs, params, learning_rate, rows)
  keys = programs.put(data_keys, rows)
  initial = fetch(state["params"]) if keep_params else None
  num_blocks = steps // program.block_steps
  pending = []
  fetched = []
  last = time.perf_counter()
  for b in range(num_blocks + 1):
    # Block 0 only evaluates the initial params; block b trains steps [b-1, b) * block_steps.
    start = programs.put(np.int32(max(b - 1, 0) * program.block_steps))
    state, metrics = programs.block(data, keys, state, start, programs.put(np.bool_(b > 0)))
    pending.append(metrics)
    # Fetch the previous block's metrics while this one runs: the device never waits.
    if len(pending) > 1:
      fetched.append(fetch(pending.pop(0)))
      now = time.perf_counter()
      if b > 1:
        reporter.update(n * program.block_steps, now - last)
      last = now
  fetched.append(fetch(pending.pop(0)))
  now = time.perf_counter()
  reporter.update(n * program.block_steps if num_blocks else 0, now - last, models_done=n)
  final = fetch(state["params"]) if keep_params else None
  report.run_s += time.perf_counter() - tick

  skip = ("step_loss", "alive", "diverged_step")
  stacked = {k: np.stack([h[k] for h in fetched], axis=1)  # (models, evals, ...)
             for k in fetched[0] if k not in skip}
  step_loss = np.concatenate([h["step_loss"] for h in fetched[1:]], axis=1) \
      if num_blocks else np.zeros((num, 0), np.float32)
  eval_step = np.arange(num_blocks + 1) * program.block_steps
  shapes = param_shapes(program)
  pick = lambda flat, j: None if flat is None else jax.tree.map(  # noqa: E731
      np.asarray, unravel(shapes, flat[j]))
  return [ModelRecord(eval_step=eval_step, metrics={k: v[j] for k, v in stacked.items()},
                      step_loss=step_loss[j], diverged_step=int(fetched[-1]["diverged_step"][j]),
                      initial_params=pick(initial, j), final_params=pick(final, j))
          for j in range(n)]


__all__ = ["DEFAULT_CPU_BUDGET", "GroupPrograms", "GroupReport", "LAYERWISE_OPTIMIZERS",
           "MemoryBudgetError", "ModelRecord", "Program", "ProgramCache", "Progress",
           "TRAIN_EVAL_SIZE", "VMAP_FLOPS", "batch_indices", "compile_group",
           "default_memory_budget", "device_count", "device_data", "evaluate", "fetch",
           "group_models", "init_opt_state", "initial_arrays", "loss_and_accuracy",
           "make_program", "model_keys", "model_mesh", "models_per_device", "network",
           "optimizer", "param_shapes", "params_fingerprint", "parse_bytes", "plan_group",
           "prepare_inputs", "ravel", "start_state", "train_block", "train_models",
           "train_step", "unravel", "vmap_width"]
