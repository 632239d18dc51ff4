"""Any model, as the engine sees it: its params, a pure apply, and a target for the rules.

A model factory is called once per shape group with the group's static
values as keyword arguments (the ones its signature accepts) and what it
returns decides the kind:

* a Flax NNX module (the factory takes ``rngs``: it gets ``nnx.Rngs(0)``);
* a Flax linen module (a linen ``Module`` class is its own factory; its
  variables come from ``module.init(key(0), x)`` on one training input);
* an Equinox module (the factory takes ``key``: it gets ``key(0)``); it is
  called one example at a time (``jax.vmap`` over the batch), as Equinox
  models are;
* a pure pair: an object with ``init(key) -> params`` and ``apply(params, x)``,
  a tuple ``(init, apply)``, or :class:`Functional` (which can also say
  which leading axes stack layers).

:func:`build` returns a :class:`Built`: the model's params as built (a plain
pytree of host arrays: NNX ``nnx.Param`` s as a nested dict, linen
``params``, the Equinox module's inexact arrays, the pair's params), a pure
``apply(params, x)``, and the target (with its options) that
:func:`jaxinit.rules.plan` and :func:`jaxinit.initialize` take, so that
every model is initialized by the rules (:mod:`jaxinit.sweep.params`).

Models with state that is not a parameter (batch statistics of
``BatchNorm``, any other ``nnx.Variable`` or linen collection) and models
with randomness (``Dropout``) train too: :attr:`Built.state` is that state as
built, and :meth:`Built.run` is ``run(params, state, x, key, train) ->
(outputs, new_state)``, pure. The engine carries each model's state next to
its params (:mod:`jaxinit.sweep.step`): updated by every training step in
train mode, used as it is (running averages) in eval mode at evaluation.
Train and eval mode are

* NNX: ``model.train()`` / ``model.eval()`` (``deterministic`` and
  ``use_running_average`` of every submodule); the model's RNG streams are
  re-keyed from ``key`` at every step (stream ``i``: ``fold_in(key, i)``, its
  count 0), so its dropout masks depend on the model and the step only;
* linen: the call's ``train`` / ``training`` / ``is_training`` keyword
  (``True`` in train mode), or ``deterministic`` / ``use_running_average``
  / ``eval`` / ``inference`` (``False``), the first of these the call takes
  (:func:`jaxinit.sweep.signatures.mode_kwargs`);
  the state's collections are ``mutable`` in train mode and the ``"dropout"``
  RNG is ``key``;
* Equinox: ``eqx.nn.inference_mode(model, not train)``; in train mode a call
  that takes ``key`` gets one per example (``jax.random.split(key, batch)``),
  for its ``eqx.nn.Dropout`` s. A factory that returns
  ``eqx.nn.make_with_state(Model)(...)`` (the model and its ``eqx.nn.State``)
  is called ``model(x, state)``, the batch ``vmap``-ed over the axis name its
  ``BatchNorm`` s average over (probes cannot capture it);
* pure pairs: no state; the model is called as it is.

RNG counts and non-array fields stay as built.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit.rules.targets import path_of, target_kind
from jaxinit.sweep.signatures import mode_kwargs, parameters

PyTree = Any


@dataclasses.dataclass(frozen=True)
class Functional:
  """A pure model: ``init(key) -> params`` and ``apply(params, x) -> outputs``.

  Attributes:
    init: draws the params (only their structure, shapes and the values of
      parameters no init rule serves are used).
    apply: the forward pass over a batch; with ``capture=True`` (when it
      takes that keyword) it also returns ``{"preactivations": ...}`` for the
      probes, as :class:`jaxinit.models.Network` does.
    stack_axes: ``{path glob: n}``: the first ``n`` axes of these parameters
      stack independent layers (so their fans are one layer's).
  """
  init: Callable[[jax.Array], PyTree]
  apply: Callable[..., Any]
  stack_axes: Mapping[str, int] | None = None


@dataclasses.dataclass(frozen=True, eq=False)
class Built:
  """One shape group's model.

  Attributes:
    kind: ``"nnx"``, ``"linen"``, ``"equinox"`` or ``"functional"``.
    params: the params as built: a pytree of host numpy arrays.
    apply: ``apply(params, x, **kwargs) -> outputs``, pure and traceable
      (``kwargs`` go to the model's call: ``capture=True`` for the probes).
    takes: the keyword arguments the model's call accepts.
    target: what :func:`jaxinit.rules.plan` takes for this model.
    plan_args: its sample inputs (linen).
    plan_options: its keyword options (``module=``, ``stack_axes=``).
    unwrap: the params of a target that :func:`jaxinit.initialize` returned.
    state: the non-param state as built (host arrays; ``{}`` for none).
    runner: ``runner(params, state, x, key, train, **kwargs)``, see :meth:`run`
      (None: :attr:`apply`, stateless).
    rebuild: ``rebuild(key)``: the target built anew with ``key`` (:meth:`own_params`).
    forward: ``forward(params, state) -> (fwd, fwd_params, kwargs)``: the model in
      eval mode as :func:`jaxinit.capture.forward` makes it (``fwd.capture(fwd_params,
      x, **kwargs)``), for the probes; None for pure pairs.
  """
  kind: str
  params: PyTree
  apply: Callable[..., Any]
  takes: frozenset[str]
  target: Any
  plan_args: tuple[Any, ...] = ()
  plan_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  unwrap: Callable[[Any], PyTree] = lambda x: x
  state: PyTree = dataclasses.field(default_factory=dict)
  runner: Callable[..., Any] | None = None
  rebuild: Callable[[jax.Array], Any] | None = None
  forward: Callable[[PyTree, PyTree], tuple[Any, PyTree, dict[str, Any]]] | None = None

  def run(self, params: PyTree, state: PyTree, x: Any, key: jax.Array | None = None,
          train: bool = False, **kwargs: Any) -> tuple[Any, PyTree]:
    """``(outputs, new_state)`` of the model in train or eval mode (pure, traceable).

    Args:
      params: the params (a tree shaped as :attr:`params`).
      state: the non-param state (shaped as :attr:`state`; ``{}`` for none).
      x: a batch of inputs.
      key: train mode: the step's key for the model's randomness (dropout).
      train: train mode (state updated, dropout on) or eval mode.
      **kwargs: the model call's keyword arguments (``capture=True``).
    """
    if self.runner is None:
      return self.apply(params, x, **kwargs), state
    return self.runner(params, state, x, key, train, **kwargs)

  def own_params(self, key: jax.Array) -> PyTree:
    """The params of the model built with ``key`` (``rngs=nnx.Rngs(key)``, ``key=key``,
    ``module.init(key, x)``, ``init(key)``): its own initializers' draws (traceable)."""
    return self.unwrap(self.rebuild(key))

  @functools.cached_property
  def paths(self) -> tuple[str, ...]:
    """Each leaf's ``"/"``-joined path, in ``jax.tree.leaves`` order (the rules' paths)."""
    return tuple(path_of(kp) for kp, _ in jax.tree_util.tree_flatten_with_path(self.params)[0])

  @functools.cached_property
  def shapes(self) -> PyTree:
    """The params as ``jax.ShapeDtypeStruct`` leaves."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), self.params)

  def initialize(self, rules: Any, key: jax.Array, model_key: jax.Array | None = None
                 ) -> PyTree:
    """``jaxinit.initialize`` of this model alone (a fresh copy), as params: the reference
    the sweep's batched draws equal bit for bit.

    With ``model_key``, the model is first built with it (its own initializers'
    draws: :meth:`own_params`), as the sweep builds each model: parameters no
    rule serves then differ from seed to seed."""
    target = self.target if model_key is None else self.rebuild(model_key)
    if self.kind == "nnx":
      from flax import nnx  # pylint: disable=import-outside-toplevel
      target = nnx.clone(target)
    import jaxinit  # pylint: disable=import-outside-toplevel
    return jax.device_get(self.unwrap(jaxinit.initialize(
        target, rules, key, *self.plan_args, **self.plan_options)))


def _is_kind(obj: Any, base: str) -> bool:
  return any(f"{c.__module__}.{c.__qualname__}" == base for c in type(obj).__mro__)


def _host(tree: PyTree) -> PyTree:
  return jax.tree.map(np.asarray, jax.device_get(tree))


def construct(factory: Callable[..., Any], kwargs: Mapping[str, Any],
              key: jax.Array | None = None) -> Any:
  """``factory(**kwargs)``, with ``rngs=nnx.Rngs(key)`` or ``key=key`` if it takes them
  (``key`` defaults to ``jax.random.key(0)``)."""
  names, _ = parameters(factory)
  kwargs = dict(kwargs)
  key = jax.random.key(0) if key is None else key
  if "rngs" in names:
    from flax import nnx  # pylint: disable=import-outside-toplevel
    kwargs["rngs"] = nnx.Rngs(key)
  elif "key" in names and not _is_linen_class(factory):
    kwargs["key"] = key
  return factory(**kwargs)


def _is_linen_class(obj: Any) -> bool:
  return isinstance(obj, type) and any(
      f"{c.__module__}.{c.__qualname__}" == "flax.linen.module.Module" for c in obj.__mro__)


def build(factory: Callable[..., Any], kwargs: Mapping[str, Any], x: np.ndarray) -> Built:
  """The :class:`Built` model of ``factory(**kwargs)``.

  Args:
    factory: see the module docstring.
    kwargs: its keyword arguments (already limited to those it accepts).
    x: a batch of training inputs (a linen module is initialized on it).

  Raises:
    TypeError: the factory returned no model of a known kind.
    Exception: whatever the factory raises (the engine names the grid values).
  """
  model = construct(factory, kwargs)
  rebuild = functools.partial(_rebuild, factory, dict(kwargs))
  if (isinstance(model, tuple) and len(model) == 2 and target_kind(model[0]) == "equinox"
      and _is_kind(model[1], "equinox.nn._stateful.State")):
    # eqx.nn.make_with_state(Model)(...): the model and its state (BatchNorm statistics)
    return _equinox(model[0], lambda key: rebuild(key)[0], model[1])
  kind = target_kind(model)
  if kind == "nnx":
    return _nnx(model, rebuild)
  if kind == "linen":
    return _linen(model, x)
  if kind == "equinox":
    return _equinox(model, rebuild)
  if isinstance(model, Functional):
    return _functional(model)
  if isinstance(model, tuple) and len(model) == 2 and all(map(callable, model)):
    return _functional(Functional(*model))
  if callable(getattr(model, "init", None)) and callable(getattr(model, "apply", None)):
    return _functional(Functional(model.init, model.apply,
                                  getattr(model, "stack_axes", None)))
  raise TypeError(f"the factory returned {type(model).__name__}, not a model: expected a "
                  f"Flax NNX or linen module, an Equinox module, or an (init, apply) pair")


def _rebuild(factory: Callable[..., Any], kwargs: Mapping[str, Any], key: jax.Array) -> Any:
  return construct(factory, kwargs, key)


def _call_names(fn: Any) -> frozenset[str]:
  names, var = parameters(fn)
  return names | ({"capture", "perturbations"} if var else frozenset())


def _copy(tree: PyTree) -> PyTree:
  """New containers (new NNX Variables) of the same values: made inside a trace, they may
  be updated there."""
  return jax.tree.map(lambda v: v, tree)


def _nnx(module: Any, rebuild: Callable[[jax.Array], Any]) -> Built:
  from flax import nnx  # pylint: disable=import-outside-toplevel
  carried = nnx.All(nnx.Not(nnx.Param), nnx.Not(nnx.RngState), nnx.Not(nnx.Intermediate))
  graphdef, params, rngs, state, rest = nnx.split(module, nnx.Param, nnx.RngState, carried, ...)

  def merge(p, s, key):
    stream = _copy(rngs)
    if key is not None:  # every stream re-keyed from the step's key, its count 0
      leaves, tree = jax.tree.flatten(stream)
      leaves = [jax.random.fold_in(key, i) if jnp.issubdtype(v.dtype, jax.dtypes.prng_key)
                else jnp.zeros_like(v) for i, v in enumerate(leaves)]
      stream = jax.tree.unflatten(tree, leaves)
    fill = lambda template, pure: jax.tree.unflatten(  # noqa: E731
        jax.tree.structure(template), [jnp.asarray(v) for v in jax.tree.leaves(pure)])
    return nnx.merge(graphdef, fill(params, p), stream, fill(state, s), _copy(rest))

  def runner(p, s, x, key, train, **kwargs):
    model = merge(p, s, key)
    if train:
      model.train()
    else:
      model.eval()
    out = model(x, **kwargs)
    return out, nnx.to_pure_dict(nnx.state(model, carried))

  def apply(p, x, **kwargs):
    return runner(p, nnx.to_pure_dict(state), x, None, False, **kwargs)[0]

  def forward(p, s):
    from jaxinit import capture  # pylint: disable=import-outside-toplevel
    model = merge(p, s, None)
    model.eval()
    return capture.forward(model) + ({},)

  return Built("nnx", _host(nnx.to_pure_dict(params)), apply, _call_names(type(module).__call__),
               module, unwrap=lambda m: nnx.to_pure_dict(nnx.state(m, nnx.Param)),
               state=_host(nnx.to_pure_dict(state)), runner=runner, rebuild=rebuild,
               forward=forward)


def _linen(module: Any, x: np.ndarray) -> Built:
  from flax import linen as nn  # pylint: disable=import-outside-toplevel
  sample = np.asarray(x[:1])
  call = type(module).__call__
  train_kwargs, eval_kwargs = mode_kwargs(call, True), mode_kwargs(call, False)
  rebuild = lambda key: module.init(key, sample, **eval_kwargs)  # noqa: E731
  variables = nn.unbox(rebuild(jax.random.key(0)))
  state = {k: v for k, v in variables.items() if k != "params"}
  mutable = sorted(state)

  def apply(params, x, **kwargs):
    return module.apply({"params": params, **state}, x, **eval_kwargs, **kwargs)

  def runner(params, s, x, key, train, **kwargs):
    variables = {"params": params, **s}
    if not train:
      return module.apply(variables, x, **eval_kwargs, **kwargs), s
    rngs = {} if key is None else {"dropout": key}
    if not mutable:
      return module.apply(variables, x, rngs=rngs, **train_kwargs, **kwargs), s
    out, updates = module.apply(variables, x, rngs=rngs, mutable=mutable, **train_kwargs,
                                **kwargs)
    return out, {**s, **updates}

  def forward(params, s):
    from jaxinit import capture  # pylint: disable=import-outside-toplevel
    return capture.forward(module, {"params": params, **s}) + (eval_kwargs,)

  options = {"module": module, **({"init_kwargs": eval_kwargs} if eval_kwargs else {})}
  return Built("linen", _host(dict(variables["params"])), apply, _call_names(call),
               dict(variables), (sample,), options, unwrap=lambda v: nn.unbox(v)["params"],
               state=_host(state), runner=runner, rebuild=rebuild, forward=forward)


def _equinox(module: Any, rebuild: Callable[[jax.Array], Any], state: Any = None) -> Built:
  import equinox as eqx  # pylint: disable=import-outside-toplevel
  params, static = eqx.partition(module, eqx.is_inexact_array)
  takes_key = "key" in parameters(type(module).__call__)[0]
  axis = _batch_axis(module) if state is not None else None

  def runner(params, s, x, key, train, **kwargs):
    model = eqx.nn.inference_mode(eqx.combine(params, static), not train)
    keys = jax.random.split(key, len(x)) if train and key is not None and takes_key else None
    # Train mode: dropout on, each example its own key from the step's key.
    def one(example, k):
      extra = {} if k is None else {"key": k}
      return model(example, **extra, **kwargs) if state is None else model(
          example, s, **extra, **kwargs)
    if state is None:
      return jax.vmap(one)(x, keys), s
    leaves, tree = jax.tree.flatten(s)
    s = jax.tree.unflatten(tree, leaves)  # a fresh State: Equinox refuses one used before
    # eqx.nn.State: one state for the batch (its BatchNorm averages over the axis).
    out, new = jax.vmap(one, axis_name=axis, out_axes=(0, None))(x, keys)
    return out, (new if train else jax.tree.unflatten(tree, leaves))

  def apply(params, x, **kwargs):
    return runner(params, built_state, x, None, False, **kwargs)[0]

  def forward(params, s):
    del s
    from jaxinit import capture  # pylint: disable=import-outside-toplevel
    model = eqx.nn.inference_mode(eqx.combine(params, static), True)
    return capture.forward(model, batched=False) + ({},)

  built_state = {} if state is None else _host(state)
  return Built("equinox", _host(params), apply, _call_names(type(module).__call__), module,
               unwrap=lambda m: eqx.filter(m, eqx.is_inexact_array), rebuild=rebuild,
               state=built_state, runner=runner, forward=forward if state is None else None)


def _batch_axis(module: Any) -> Any:
  """The vmap axis name a stateful Equinox model's layers (``BatchNorm``) average over."""
  names = {m.axis_name for m in jax.tree.leaves(module, is_leaf=lambda m: hasattr(m, "axis_name"))
           if hasattr(m, "axis_name")}
  if len(names) > 1:
    raise ValueError(f"the model's layers average over different axis names {sorted(names)}; "
                     f"the sweep vmaps the batch over one")
  return names.pop() if names else "batch"


def _functional(model: Functional) -> Built:
  params = _host(model.init(jax.random.key(0)))
  options = {"stack_axes": dict(model.stack_axes)} if model.stack_axes else {}
  return Built("functional", params, model.apply, _call_names(model.apply), params,
               plan_options=options, rebuild=model.init)


__all__ = ["Built", "Functional", "build", "construct"]
