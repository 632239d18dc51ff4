"""What every network of :mod:`jaxinit.models` is: the conventions a model follows.

A model is a Flax NNX module (subclass :class:`Model`) that

* **initializes through the model level.** Its constructor turns its
  per-role initializers and an optional ``rules=`` rule set into one
  :class:`~jaxinit.rules.RuleSet` (:func:`model_rules`: the caller's rules
  first, then one rule per role, labelled with the role), builds its layers
  from shapes alone (:func:`from_shapes`: nothing is drawn) and draws every
  parameter once with ``jaxinit.initialize(self, rules, key)``
  (:meth:`Model.initialize`). A parameter's value is therefore
  :func:`jaxinit.rules.draw` at its path: the value ``jaxinit.initialize``
  gives any model with that path and rule. The rule set is kept as
  ``model.rules``: ``jaxinit.reinit(model, model.rules, key)`` redraws the
  model, ``jaxinit.rules.labels(model, model.rules)`` labels each parameter
  with its role (``"input"``, ``"hidden"``, ``"readout"``, ``"bias"``, ...).
* **stacks equal layers.** Layers of equal shape are built with
  :func:`stack` (``nnx.vmap``: a leading depth axis, each layer drawn alone
  at its own shape) and run with :func:`scan` (``jax.lax.scan``), so compile
  time does not grow with depth.
* **captures its signal.** ``model(x, capture=True)`` returns ``(y,
  intermediates)`` where ``intermediates["preactivations"]`` stacks the
  probed per-layer signal on a leading layer axis; ``perturbations`` (an
  array of that shape) is added to that signal, so its gradient is the
  gradient with respect to the signal (:func:`add`, :func:`perturbation`).
* **declares its layers' forward order** as :attr:`Model.layer_order`: module
  paths (a module's weight is its registered weight, ``kernel`` for Linear
  and Conv, and its ``bias``), a tuple of paths for stacked modules applied
  in turn inside one scanned block.

:func:`functional` turns any NNX module whose state is all ``nnx.Param``
into pure functions, the :class:`Network` protocol the probes and the sweep
use: ``net, params = functional(model)``; ``net.apply(params, x,
capture=..., perturbations=...)`` runs the module's own ``__call__``,
``net.layers(params)`` lists its kernels and biases in forward order and
``net.init(key)`` draws a fresh ``params`` by the model's rules (pure:
``jax.vmap(net.init)(keys)`` is a population). ``net`` is hashable: a
static argument of :func:`jax.jit`.

Params (``nnx.to_pure_dict`` of the model's ``nnx.Param`` state) are plain
nested dicts of arrays: ``"input"``, stacked hidden layers, ``"readout"``,
kernels with the output feature or channel axis last.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import jax
import jax.numpy as jnp
from flax import nnx

from jaxinit import gains, presets
from jaxinit.base import Initializer
from jaxinit.rules import api as rules_api
from jaxinit.rules.keys import as_key
from jaxinit.rules.patterns import Rule, RuleSet, as_rule_set
from jaxinit.rules.targets import adapt_target

Params = dict[str, Any]
"""A network's parameters: a nested dict of arrays."""

Layer = tuple[jax.Array, jax.Array | None]
"""``(kernels, biases)`` of a group of layers stacked on a leading axis."""

Activation = Callable[[jax.Array], jax.Array]

M = TypeVar("M")


@runtime_checkable
class Network(Protocol):
  """What the probes need from a network (:func:`functional` gives one).

  ``apply(params, x, capture=True)`` returns ``(output, intermediates)`` where
  ``intermediates["preactivations"]`` stacks the probed per-layer signal on a
  leading layer axis; ``perturbations`` (an array of that shape) is added to
  that signal, so its gradient is the gradient with respect to the signal.
  ``layers(params)`` (or of a gradient with the params' structure) lists the
  kernels in forward order, the readout last.
  """

  def apply(self, params: Params, x: jax.Array, *, capture: bool = False,
            perturbations: jax.Array | None = None) -> Any:
    ...

  def layers(self, params: Params) -> tuple[Layer, ...]:
    ...


# ---------------------------------------------------------------------------
# Defaults and small helpers of the forward pass


def default_kernel_init() -> Initializer:
  """He-normal, matching the networks' default ReLU."""
  return presets.he_normal()


def default_bias_init() -> Initializer:
  """Zeros."""
  return presets.zeros


def resolve_activation(activation: str | Activation) -> Activation:
  """The elementwise function for an activation name or callable."""
  return gains.resolve_activation(activation)


def perturbation(perturbations: jax.Array | None, index: int | slice) -> jax.Array | None:
  """``perturbations[index]``, or None when there are none."""
  return None if perturbations is None else perturbations[index]


def add(x: jax.Array, eps: jax.Array | None) -> jax.Array:
  """``x + eps``; ``x`` itself when ``eps`` is None (no zeros traced in)."""
  return x if eps is None else x + eps


# ---------------------------------------------------------------------------
# Building: rules from roles, layers from shapes, stacks


def model_rules(rules: Any, roles: Iterable[tuple[str, Initializer, str]]) -> RuleSet:
  """A model's rule set: the caller's ``rules`` first, then one rule per role.

  Args:
    rules: the caller's rules (a :class:`~jaxinit.rules.RuleSet`, a list of
      ``(pattern, initializer)`` pairs, a config dict) or None.
    roles: ``(path glob, initializer, label)`` per role; the rules they make
      are not ``required`` (a role the caller's rules cover leaves its rule
      unused without a warning) and carry the role as their ``label``.

  Returns:
    ``as_rule_set(rules) + RuleSet(role rules)``: first match wins, so the
    caller's rules override the roles' initializers.

  Examples:
    >>> import jaxinit
    >>> rules = model_rules([("readout/kernel", jaxinit.zeros)],
    ...                     [("*kernel", jaxinit.he_normal(), "kernel")])
    >>> [(r.pattern.glob, r.label) for r in rules]
    [('readout/kernel', None), ('*kernel', 'kernel')]
  """
  own = RuleSet(tuple(Rule(glob, init, label=label, required=False)
                      for glob, init, label in roles))
  return own if rules is None else as_rule_set(rules) + own


def init_key(rngs: Any) -> jax.Array:
  """The key a model's parameters are drawn from.

  Args:
    rngs: an ``nnx.Rngs`` (its ``params`` stream gives the key, as Flax
      layers draw theirs), a ``jax.random.key``, raw ``uint32[2]`` key data or
      an int seed.

  Returns:
    A typed PRNG key.

  Raises:
    TypeError: anything else.
  """
  if isinstance(rngs, nnx.Rngs):
    return rngs.params()
  return as_key(rngs, "rngs")


def from_shapes(build: Callable[[nnx.Rngs], M]) -> M:
  """``build(rngs)`` from shapes alone: its params are ``jax.ShapeDtypeStruct`` s.

  ``nnx.eval_shape`` of the build with a placeholder ``nnx.Rngs``: the layers'
  own initializers are traced, never run, so a model's layers cost nothing
  until :meth:`Model.initialize` draws them.
  """
  return nnx.eval_shape(lambda: build(nnx.Rngs(0)))


def stack(num: int, make: Callable[[nnx.Rngs], M], rngs: nnx.Rngs) -> M:
  """``num`` modules built by ``make(rngs)``, stacked on a leading axis (``nnx.vmap``).

  Rules draw each layer of a stack alone at one layer's shape
  (:func:`jaxinit.rules.draw`); ``num = 0`` gives a stack of none.
  """

  @nnx.split_rngs(splits=num)
  @nnx.vmap(in_axes=(0,), out_axes=0)
  def build(rngs: nnx.Rngs) -> M:
    return make(rngs)

  return build(rngs)


def scan(fn: Callable[[Any, Any, Any], tuple[Any, Any]], carry: Any, layers: nnx.Module,
         xs: Any = None) -> tuple[Any, Any]:
  """``jax.lax.scan`` of ``fn(carry, layer, x) -> (carry, y)`` over a :func:`stack`.

  Each step merges one layer's slice of the stacked state into the module,
  so the compiled loop is the plain ``lax.scan`` of the layer's math. Params
  are read only; what a step records in ``nnx.Intermediate`` variables (sown
  values, :mod:`jaxinit.capture`'s records) is written back stacked on a
  leading layer axis, as ``nnx.scan`` does.

  Args:
    fn: the step; ``layer`` is one layer of ``layers``.
    carry: the initial carry.
    layers: a stacked module (leading layer axis).
    xs: per-layer inputs stacked on a leading axis (or None).

  Returns:
    ``(final carry, stacked ys)``, as :func:`jax.lax.scan`.
  """
  graphdef, state = nnx.split(layers)

  def step(carry: Any, inputs: Any) -> tuple[Any, Any]:
    layer_state, x = inputs
    layer = nnx.merge(graphdef, layer_state)
    carry, y = fn(carry, layer, x)
    return carry, (y, nnx.state(layer, nnx.Intermediate))

  carry, (ys, recorded) = jax.lax.scan(step, carry, (state, xs))
  if jax.tree.leaves(recorded):
    nnx.update(layers, recorded)
  return carry, ys


def chain(first: Callable[[Any], Any], hidden: nnx.Module, readout: Callable[[Any], Any],
          phi: Activation, x: jax.Array, *, capture: bool, perturbations: jax.Array | None,
          pool: Callable[[jax.Array], jax.Array] | None = None) -> Any:
  """The plain deep network ``h^1 = first(x)``, ``h^{l+1} = layer_l(phi(h^l))`` over a
  :func:`stack` ``hidden`` (scanned), ``y = readout(pool(phi(h^L)))``.

  ``perturbations`` (``(depth, ...)``, the pre-activations' shape) are added to
  each ``h^l``; with ``capture`` returns ``(y, {"preactivations": h^1..h^L})``.
  """
  h = add(first(x), perturbation(perturbations, 0))

  def layer(h, module, eps):
    h = add(module(phi(h)), eps)
    return h, h if capture else None

  h_last, hs = scan(layer, h, hidden, perturbation(perturbations, slice(1, None)))
  features = phi(h_last) if pool is None else pool(phi(h_last))
  y = readout(features)
  return (y, {"preactivations": jnp.concatenate([h[None], hs])}) if capture else y


class Model(nnx.Module):
  """Base of :mod:`jaxinit.models`' networks (see the module docstring's conventions).

  Attributes:
    rules: the rule set the model's params were drawn with.
    layer_order: class attribute: the module paths of its layers in forward
      order; a tuple of paths for stacked modules applied in turn inside one
      scanned block (``("blocks/hidden", "blocks/branch")``: hidden_1,
      branch_1, hidden_2, ...). :meth:`Functional.layers` reads it.
  """

  layer_order: ClassVar[tuple[str | tuple[str, ...], ...] | None] = None
  rules: RuleSet

  def initialize(self, rules: RuleSet, rngs: Any) -> None:
    """Keeps ``rules`` and draws every parameter: ``jaxinit.initialize(self, rules, key)``.

    Args:
      rules: the model's rule set; it must serve every parameter.
      rngs: see :func:`init_key`.
    """
    self.rules = rules
    rules_api.initialize(self, rules, init_key(rngs))

  @classmethod
  def abstract(cls: type[M], *args: Any, **kwargs: Any) -> M:
    """The model from shapes alone (``nnx.eval_shape``): its params are
    ``jax.ShapeDtypeStruct`` s and nothing is drawn.

    Takes the constructor's arguments (``rngs`` defaults to 0). For pure
    functions without a first draw: ``net, shapes = functional(MLP.abstract(...))``,
    then ``net.init(key)``.

    Examples:
      >>> from jaxinit.models import MLP
      >>> MLP.abstract(3, 2, width=8, depth=4).hidden.kernel.shape
      (3, 8, 8)
    """
    kwargs.setdefault("rngs", 0)
    return nnx.eval_shape(lambda: cls(*args, **kwargs))


# ---------------------------------------------------------------------------
# The functional view


@dataclasses.dataclass(frozen=True)
class LayerGroup:
  """Kernels (and biases) read by :meth:`Functional.layers` as one stacked group.

  Attributes:
    kernels: params paths of the kernels, ``"/"``-joined.
    biases: the biases' paths (None: the layers have none).
    stacked: whether the kernels carry a leading stacked-layer axis (several
      kernels are then interleaved: layer ``i`` of each in turn).
  """
  kernels: tuple[str, ...]
  biases: tuple[str, ...] | None
  stacked: bool


_WEIGHTS = ("kernel", "embedding", "weight")


def _layer_groups(module: nnx.Module, order: Sequence[Any]) -> tuple[LayerGroup, ...]:
  sites = {s.path: s for s in adapt_target(module, key=jax.random.key(0)).sites}
  groups = []
  for entry in order:
    members = (entry,) if isinstance(entry, str) else tuple(entry)
    kernels, biases, stacks = [], [], set()
    for path in members:
      kernel = next((f"{path}/{w}" for w in _WEIGHTS if f"{path}/{w}" in sites), None)
      if kernel is None:
        raise ValueError(f"{type(module).__name__}.layer_order names {path!r}, which has no "
                         f"parameter named {' or '.join(_WEIGHTS)}")
      kernels.append(kernel)
      biases.append(f"{path}/bias" if f"{path}/bias" in sites else None)
      stacks.add(sites[kernel].stack_ndim > 0)
      if sites[kernel].layer_shape != sites[kernels[0]].layer_shape or len(stacks) > 1:
        raise ValueError(f"{type(module).__name__}.layer_order groups {members}, whose "
                         f"kernels differ in shape or stacking; list them apart")
    stacked = stacks.pop()
    if not stacked and len(members) > 1:
      raise ValueError(f"{type(module).__name__}.layer_order groups {members}: only stacked "
                       f"modules (a leading layer axis) are grouped")
    groups.append(LayerGroup(tuple(kernels), None if None in biases else tuple(biases),
                             stacked))
  return tuple(groups)


def _get(params: Any, path: str) -> Any:
  node = params
  for part in path.split("/"):
    node = node[int(part) if part not in node and part.isdigit() else part]
  return node


def _interleave(arrays: Sequence[jax.Array]) -> jax.Array:
  """``a_0, b_0, a_1, b_1, ...`` along the leading axis."""
  if len(arrays) == 1:
    return arrays[0]
  return jnp.stack(arrays, axis=1).reshape((-1,) + arrays[0].shape[1:])


@dataclasses.dataclass(frozen=True)
class Functional:
  """An NNX module as pure functions over its params: a :class:`Network`.

  Built by :func:`functional`. Hashable (a static argument of ``jax.jit``):
  two views of equal modules are equal.

  Attributes:
    graphdef: the module's static structure (``nnx.split``).
    treedef: the structure of its params dict.
    shapes: its params' leaves as ``jax.ShapeDtypeStruct`` s.
    rules: the rule set :meth:`init` draws by (the module's ``rules``), or None.
    groups: its layers in forward order (from ``layer_order``), or None.
  """
  graphdef: Any
  treedef: Any
  shapes: tuple[jax.ShapeDtypeStruct, ...]
  rules: RuleSet | None
  groups: tuple[LayerGroup, ...] | None

  def module(self, params: Params | None = None) -> nnx.Module:
    """The module holding ``params`` (default: shapes only, as ``nnx.eval_shape`` gives)."""
    if params is None:
      params = jax.tree.unflatten(self.treedef, self.shapes)
    return nnx.merge(self.graphdef, params)

  def init(self, key: Any) -> Params:
    """Fresh params: ``jaxinit.initialize(module, rules, key)`` on the module from shapes.

    Pure in ``key``: ``jax.vmap(net.init)(keys)`` draws a population, each
    model the params the module's constructor draws from that key (bit for
    bit for elementwise initializers; structured ones such as orthogonal run a
    batched QR under ``vmap``, equal to float rounding. The sweep's batched
    draw, :func:`jaxinit.sweep.params.draw_population`, is bit for bit).

    Raises:
      TypeError: the view has no rules (pass ``rules=`` to :func:`functional`).
    """
    if self.rules is None:
      raise TypeError("this functional view has no rules to initialize with: the module has "
                      "no `rules` attribute; pass functional(module, rules=...)")
    module = self.module()
    rules_api.initialize(module, self.rules, key)
    return params_of(module)

  def apply(self, params: Params, x: Any, *, capture: bool = False,
            perturbations: jax.Array | None = None) -> Any:
    """``module(x)`` with ``params`` in place of the module's own (its own code, traced).

    ``capture`` and ``perturbations`` are passed on when set (see the
    :class:`Network` protocol), so modules without them work too.
    """
    kwargs: dict[str, Any] = {}
    if capture:
      kwargs["capture"] = True
    if perturbations is not None:
      kwargs["perturbations"] = perturbations
    return self.module(params)(x, **kwargs)

  def layers(self, params: Params) -> tuple[Layer, ...]:
    """Kernels and biases in forward order, each group stacked on a leading layer axis.

    Args:
      params: params, or a gradient of the same structure.

    Returns:
      ``(kernels, biases)`` per group of :attr:`Model.layer_order`: a single
      layer as a stack of one, a stacked module as its stack, stacked modules
      of one block interleaved (biases None where the layers have none).

    Raises:
      TypeError: the module declares no ``layer_order``.
    """
    if self.groups is None:
      raise TypeError("the module declares no layer_order (module paths of its layers in "
                      "forward order), so its layers cannot be listed")
    out = []
    for group in self.groups:
      kernels = [_get(params, p) for p in group.kernels]
      biases = None if group.biases is None else [_get(params, p) for p in group.biases]
      if group.stacked:
        out.append((_interleave(kernels), None if biases is None else _interleave(biases)))
      else:
        out.append((kernels[0][None], None if biases is None else biases[0][None]))
    return tuple(out)


def params_of(module: nnx.Module) -> Params:
  """The module's ``nnx.Param`` state as a plain nested dict (``nnx.to_pure_dict``)."""
  return nnx.to_pure_dict(nnx.state(module, nnx.Param))


def functional(module: nnx.Module, rules: Any = None) -> tuple[Functional, Params]:
  """A module as pure functions and its params: ``(net, params)``.

  Args:
    module: an NNX module whose state is all ``nnx.Param`` (concrete, or
      from ``nnx.eval_shape``: then ``params`` holds shapes).
    rules: the rules :meth:`Functional.init` draws by; default: the module's
      ``rules`` attribute (every :class:`Model` has one), else none.

  Returns:
    ``(net, params)``: ``net.apply(params, x)`` equals ``module(x)``.

  Raises:
    ValueError: the module has state other than ``nnx.Param`` (batch
      statistics, RNG streams), which pure ``apply`` cannot carry.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jaxinit.models import MLP, functional
    >>> net, params = functional(MLP(3, 2, width=8, depth=4, rngs=0))
    >>> net.apply(params, jnp.ones(3)).shape
    (2,)
    >>> population = jax.vmap(net.init)(jax.random.split(jax.random.key(1), 5))
    >>> population["hidden"]["kernel"].shape
    (5, 3, 8, 8)
  """
  if not isinstance(module, nnx.Module):
    raise TypeError(f"functional() takes a Flax NNX module, got {type(module).__name__}")
  graphdef, state = nnx.split(module)
  everything = nnx.to_flat_state(state)
  params = nnx.to_flat_state(nnx.state(module, nnx.Param))
  if len(everything) != len(params):
    others = sorted({"/".join(map(str, p)) + f" ({type(v).__name__})" for p, v in everything
                     if not isinstance(v, nnx.Param)})
    raise ValueError(f"functional() needs a module whose state is all nnx.Param; "
                     f"{type(module).__name__} also has {others[:8]}")
  pure = nnx.to_pure_dict(state)
  leaves, treedef = jax.tree.flatten(pure)
  shapes = tuple(jax.ShapeDtypeStruct(leaf.shape, leaf.dtype) for leaf in leaves)
  if rules is None:
    rules = getattr(module, "rules", None)
  order = getattr(type(module), "layer_order", None)
  groups = None if order is None else _layer_groups(module, order)
  rule_set = None if rules is None else as_rule_set(rules)
  return Functional(graphdef, treedef, shapes, rule_set, groups), pure


__all__ = ["Activation", "Functional", "Layer", "LayerGroup", "Model", "Network", "Params",
           "add", "chain", "from_shapes", "functional", "init_key", "model_rules", "params_of",
           "perturbation", "resolve_activation", "scan", "stack"]
