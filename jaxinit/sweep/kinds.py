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
Other state (batch statistics, RNG counts, non-array fields) stays as built.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from jaxinit.rules.targets import path_of, target_kind

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
  """
  kind: str
  params: PyTree
  apply: Callable[..., Any]
  takes: frozenset[str]
  target: Any
  plan_args: tuple[Any, ...] = ()
  plan_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  unwrap: Callable[[Any], PyTree] = lambda x: x

  @functools.cached_property
  def paths(self) -> tuple[str, ...]:
    """Each leaf's ``"/"``-joined path, in ``jax.tree.leaves`` order (the rules' paths)."""
    return tuple(path_of(kp) for kp, _ in jax.tree_util.tree_flatten_with_path(self.params)[0])

  @functools.cached_property
  def shapes(self) -> PyTree:
    """The params as ``jax.ShapeDtypeStruct`` leaves."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), self.params)

  def initialize(self, rules: Any, key: jax.Array) -> PyTree:
    """``jaxinit.initialize`` of this model alone (a fresh copy), as params: the reference
    the sweep's batched draws equal bit for bit."""
    target = self.target
    if self.kind == "nnx":
      from flax import nnx  # pylint: disable=import-outside-toplevel
      target = nnx.clone(target)
    import jaxinit  # pylint: disable=import-outside-toplevel
    return jax.device_get(self.unwrap(jaxinit.initialize(
        target, rules, key, *self.plan_args, **self.plan_options)))


def parameters(fn: Any) -> tuple[frozenset[str], bool]:
  """The keyword names ``fn`` accepts, and whether it takes ``**kwargs``."""
  candidates = [fn]
  if isinstance(fn, type):
    candidates = [fn, fn.__init__]
  for candidate in candidates:
    try:
      sig = inspect.signature(candidate)
    except (TypeError, ValueError):
      continue
    params = [p for p in sig.parameters.values() if p.name != "self"]
    if params and all(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params) and (
        candidate is not candidates[-1]):
      continue  # a metaclass's (*args, **kwargs): look at __init__
    names = frozenset(p.name for p in params
                      if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    return names, any(p.kind == p.VAR_KEYWORD for p in params)
  return frozenset(), True


def _is_kind(obj: Any, base: str) -> bool:
  return any(f"{c.__module__}.{c.__qualname__}" == base for c in type(obj).__mro__)


def _host(tree: PyTree) -> PyTree:
  return jax.tree.map(np.asarray, jax.device_get(tree))


def construct(factory: Callable[..., Any], kwargs: Mapping[str, Any]) -> Any:
  """``factory(**kwargs)``, with ``rngs=nnx.Rngs(0)`` or ``key=key(0)`` if it takes them."""
  names, _ = parameters(factory)
  kwargs = dict(kwargs)
  if "rngs" in names:
    from flax import nnx  # pylint: disable=import-outside-toplevel
    kwargs["rngs"] = nnx.Rngs(0)
  elif "key" in names and not _is_linen_class(factory):
    kwargs["key"] = jax.random.key(0)
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
  kind = target_kind(model)
  if kind == "nnx":
    return _nnx(model)
  if kind == "linen":
    return _linen(model, x)
  if kind == "equinox":
    return _equinox(model)
  if isinstance(model, Functional):
    return _functional(model)
  if isinstance(model, tuple) and len(model) == 2 and all(map(callable, model)):
    return _functional(Functional(*model))
  if callable(getattr(model, "init", None)) and callable(getattr(model, "apply", None)):
    return _functional(Functional(model.init, model.apply,
                                  getattr(model, "stack_axes", None)))
  raise TypeError(f"the factory returned {type(model).__name__}, not a model: expected a "
                  f"Flax NNX or linen module, an Equinox module, or an (init, apply) pair")


def _call_names(fn: Any) -> frozenset[str]:
  names, var = parameters(fn)
  return names | ({"capture", "perturbations"} if var else frozenset())


def _nnx(module: Any) -> Built:
  from flax import nnx  # pylint: disable=import-outside-toplevel
  graphdef, state, rest = nnx.split(module, nnx.Param, ...)

  def apply(params, x, **kwargs):
    return nnx.merge(graphdef, params, rest)(x, **kwargs)

  return Built("nnx", _host(nnx.to_pure_dict(state)), apply,
               _call_names(type(module).__call__), module,
               unwrap=lambda m: nnx.to_pure_dict(nnx.state(m, nnx.Param)))


def _linen(module: Any, x: np.ndarray) -> Built:
  from flax import linen as nn  # pylint: disable=import-outside-toplevel
  sample = np.asarray(x[:1])
  variables = nn.unbox(module.init(jax.random.key(0), sample))
  rest = {k: v for k, v in variables.items() if k != "params"}

  def apply(params, x, **kwargs):
    return module.apply({"params": params, **rest}, x, **kwargs)

  return Built("linen", _host(dict(variables["params"])), apply,
               _call_names(type(module).__call__), dict(variables), (sample,),
               {"module": module}, unwrap=lambda v: nn.unbox(v)["params"])


def _equinox(module: Any) -> Built:
  import equinox as eqx  # pylint: disable=import-outside-toplevel
  params, static = eqx.partition(module, eqx.is_inexact_array)

  def apply(params, x, **kwargs):
    model = eqx.combine(params, static)
    return jax.vmap(lambda example: model(example, **kwargs))(x)

  return Built("equinox", _host(params), apply, _call_names(type(module).__call__), module,
               unwrap=lambda m: eqx.filter(m, eqx.is_inexact_array))


def _functional(model: Functional) -> Built:
  params = _host(model.init(jax.random.key(0)))
  options = {"stack_axes": dict(model.stack_axes)} if model.stack_axes else {}
  return Built("functional", params, model.apply, _call_names(model.apply), params,
               plan_options=options)


__all__ = ["Built", "Functional", "build", "construct", "parameters"]
