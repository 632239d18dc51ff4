"""Checks that need the data and the models: run before anything is written or compiled.

:func:`load_config` checks what a config says; :func:`preflight` checks what
it means, shape group by shape group, with shapes only (``jax.eval_shape``:
nothing is computed): every dataset loads and holds at least ``batch_size``
training examples, every model factory accepts its group's values and returns
a model of float32 params (at least one) that runs on the dataset's inputs,
the loss returns a scalar and the metrics scalars, the probes can see the
model, the optimizer initializes, and every cell's rules can draw every
parameter they serve, and every rule of a rule set matches some parameter
(as ``jaxinit.initialize(..., strict=True)``; a rule meant for other models of
the grid says ``required = false``). Each failure is one
:class:`~jaxinit.sweep.config.ConfigError` naming the grid value at fault.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit.sweep import probes as probes_lib
from jaxinit.sweep.compile import make_program
from jaxinit.sweep.config import ConfigError, ModelSpec, SweepConfig, label
from jaxinit.sweep.data import load_dataset
from jaxinit.sweep.loop import group_models
from jaxinit.sweep.inits import INIT_AXES, check_cell, static_part
from jaxinit.sweep.program import Program, device_data, network, thawed
from jaxinit.sweep.step import init_opt_state, noise_key


def _refused(where: str, err: BaseException) -> ConfigError:
  text = str(err).splitlines()[0] if str(err) else ""
  return ConfigError(f"{where}: {type(err).__name__}: {text}")


def _shape(where: str, fn: Callable[..., Any], *args: Any) -> Any:
  try:
    return jax.eval_shape(fn, *args)
  except ConfigError:
    raise
  except Exception as err:  # noqa: BLE001  (any failure of the user's code, named)
    raise _refused(where, err) from None


def preflight(config: SweepConfig, models: Sequence[ModelSpec]) -> None:
  """Checks ``models`` of ``config`` (see the module docstring).

  Raises:
    ConfigError: naming the grid value that cannot work. ImportError: a
      dataset's extra is missing.
  """
  datasets: dict[str, Any] = {}
  for m in models:
    key = json.dumps(m["dataset"], sort_keys=True)
    if key not in datasets:
      datasets[key] = load_dataset(m["dataset"], config.paths)
  _batch_sizes(models, datasets)
  checked: set[str] = set()
  for members in group_models(models).values():
    first = models[members[0]]
    dataset = datasets[json.dumps(first["dataset"], sort_keys=True)]
    program = _program(config, first, dataset)
    data = device_data(program, dataset, config.probe_batch)
    _run(config, first, program, data)
    batch = tuple(jax.ShapeDtypeStruct(data[k].shape, data[k].dtype)
                  for k in ("x_train", "y_train"))
    ignored = sorted(set(config.base) - set(dict(program.base)))
    if ignored and static_part(first.cell):
      raise ConfigError(f"base.{ignored[0]}: model {label(first['model'])} takes no keyword "
                        f"argument {ignored[0]!r}, so the base model would not differ there")
    for i in members:
      m = models[i]
      text = json.dumps([[m[a] for a in INIT_AXES], first.static_key()], sort_keys=True)
      if text not in checked:
        checked.add(text)
        _init(program, m, batch)


def _batch_sizes(models: Sequence[ModelSpec], datasets: dict[str, Any]) -> None:
  """Every ``batch_size`` fits its dataset's training set (minibatches are drawn from it)."""
  n_train = {label(m["dataset"]): len(datasets[json.dumps(m["dataset"], sort_keys=True)].x_train)
             for m in models}
  for m in models:
    name = label(m["dataset"])
    if m["batch_size"] > n_train[name]:
      per = ("; n_train per dataset: " + ", ".join(f"{k} {v}" for k, v in n_train.items())
             if len(n_train) > 1 else "")
      raise ConfigError(
          f"[grid] batch_size = {m['batch_size']} is larger than the training set of dataset "
          f"{name} (n_train = {n_train[name]}), which minibatches are drawn from: use "
          f"batch_size <= {n_train[name]}{per}")


def _program(config: SweepConfig, spec: ModelSpec, dataset: Any) -> Program:
  """The group's program, its model built (a factory's refusal named)."""
  program = None
  where = f"[grid] model = {label(spec['model'])}"
  try:
    program = make_program(spec, dataset, config, 1)
    built = network(program)
  except Exception as err:  # noqa: BLE001  (the factory's own refusal)
    args = _arguments(program, spec) if program is not None else ""
    raise _refused(f"{where} with {args or 'no arguments'}", err) from None
  if not sum(int(np.prod(x.shape)) for x in jax.tree.leaves(built.shapes)):
    args = _arguments(program, spec)
    raise ConfigError(f"{where}: the model built with {args or 'no arguments'} has no "
                      f"parameters to train ({len(built.paths)} param arrays, 0 values); give "
                      f"a model with at least one parameter")
  bad = [(p, x.dtype) for p, x in zip(built.paths, jax.tree.leaves(built.shapes))
         if x.dtype != jnp.float32]
  if bad:
    raise ConfigError(f"{where}: the sweep trains float32 params; {bad[0][0]} is "
                      f"{bad[0][1]} (build the model with param_dtype=float32)")
  return program


def _arguments(program: Program, spec: ModelSpec) -> str:
  """The factory's keyword arguments as the grid writes them (``activation=tat(family=...)``)."""
  return ", ".join(f"{k}={label(spec.cell[k]) if k in spec.cell else repr(v)}"
                   for k, v in thawed(program.model_kwargs).items())


def _run(config: SweepConfig, spec: ModelSpec, program: Program, data: dict[str, Any]) -> None:
  """The model on a batch, the loss, metrics, probes and optimizer, by their shapes."""
  built = network(program)
  where = f"[grid] model = {label(spec['model'])}"
  x = jax.ShapeDtypeStruct((program.batch_size,) + data["x_train"].shape[1:], jnp.float32)
  y = jax.ShapeDtypeStruct((program.batch_size,) + data["y_train"].shape[1:],
                           data["y_train"].dtype)
  state = jax.tree.map(lambda v: jax.ShapeDtypeStruct(v.shape, v.dtype), built.state)
  key = jax.random.key_data(jax.random.key(0))
  train = lambda p, s, x: built.run(p, s, x, noise_key(key, 0), train=True)  # noqa: E731
  out, new_state = _shape(f"{where} on {label(spec['dataset'])}'s inputs {x.shape} (train "
                          f"mode)", train, built.shapes, state, x)
  if jax.tree.structure(new_state) != jax.tree.structure(state) or any(
      (a.shape, a.dtype) != (b.shape, b.dtype)
      for a, b in zip(jax.tree.leaves(new_state), jax.tree.leaves(state))):
    raise ConfigError(f"{where}: a training step changes the shapes of the model's state "
                      f"(not params): {jax.tree.map(lambda v: v.shape, state)} -> "
                      f"{jax.tree.map(lambda v: v.shape, new_state)}")
  _shape(f"{where} on {label(spec['dataset'])}'s inputs {x.shape} (eval mode)",
         lambda p, s, x: built.run(p, s, x)[0], built.shapes, state, x)
  if not isinstance(out, jax.ShapeDtypeStruct):
    raise ConfigError(f"{where} returns {type(out).__name__}, not one array of outputs")
  # A classifier needs one output per class whatever its loss: accuracy is its argmax.
  if config.loss == "auto" or program.task == "classification":
    expected = ((program.batch_size, program.num_outputs) if program.task == "classification"
                else y.shape)
    if out.shape != expected:
      raise ConfigError(f"{where} returns outputs of shape {out.shape} but [grid] dataset = "
                        f"{label(spec['dataset'])} needs {expected} ({program.task}, "
                        f"{program.num_outputs} {'classes' if program.task == 'classification' else 'targets'})")
  for name, fn in (("loss", program.loss),) + tuple(
      (f"metrics: {n}", f) for n, f in program.metrics):
    value = _shape(name, fn, out, y)
    if getattr(value, "shape", None) != ():
      raise ConfigError(f"{name} returns {getattr(value, 'shape', type(value).__name__)} for "
                        f"a batch, not a scalar: average over the batch")
    if name == "loss" and not jnp.issubdtype(value.dtype, jnp.floating):
      raise ConfigError(f"loss returns {value.dtype}, not a float: gradients need a real-valued "
                        f"loss (return e.g. jnp.mean(...) of floats)")
  if config.probes:
    if probes_lib.probed_network(built, config.probes) is None:
      needs = sorted(frozenset().union(*(probes_lib.NEEDS[p] for p in config.probes)))
      raise ConfigError(
          f"probes = {list(config.probes)}: {where}'s call does not take "
          f"{', '.join(needs)} (returning its pre-activations as jaxinit.models' networks "
          f"do), and it cannot be captured (jaxinit.capture takes Flax models and stateless "
          f"Equinox models, not pure (init, apply) pairs); set probes = [] for this model")
    names = config.probes
    y_probe = jax.ShapeDtypeStruct((config.probe_batch,) + y.shape[1:], y.dtype)
    x_probe = jax.ShapeDtypeStruct((config.probe_batch,) + x.shape[1:], x.dtype)
    _shape(f"probes = {list(names)} on {where}", lambda p, s, xb, yb: probes_lib.measure(
        names, probes_lib.probed_network(built, names, s), p, xb,
        lambda out: program.loss(out, yb)), built.shapes, state, x_probe, y_probe)
  size = sum(int(np.prod(s.shape)) for s in jax.tree.leaves(built.shapes))
  _shape(f"[grid] optimizer = {label(spec['optimizer'])}",
         lambda p, lr: init_opt_state(program, p, lr),
         jax.ShapeDtypeStruct((1, size), jnp.float32), jax.ShapeDtypeStruct((1,), jnp.float32))


def _init(program: Program, spec: ModelSpec, batch: Any) -> None:
  """A cell's init axes can make the model's initial params
  (:func:`jaxinit.sweep.inits.check_cell`)."""
  others = ", ".join(f"{a} = {label(spec[a])}" for a in INIT_AXES if a != "init")
  shown = f"init = {label(spec['init'])} ({others})"
  try:
    check_cell(program, spec.cell, batch)
  except (TypeError, ValueError) as err:
    raise ConfigError(f"[grid] {shown}: {err}") from None


__all__ = ["preflight"]
