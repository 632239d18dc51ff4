"""Capture: every layer's output in a forward pass of any model, without editing it.

``capture(model, x)`` runs a Flax NNX or linen model, or an Equinox model,
on a batch and returns its output together with a :class:`Captured`: the
output of every module call, keyed by the module's path (``"blocks/0/mlp"``,
``"layers/3"``), in the order the calls finished (forward order). The model's
code is not touched: module calls are intercepted while the forward pass is
traced.

:func:`forward` turns a model into a pure function of its parameters, a
:class:`Forward` (hashable, a static argument of ``jax.jit``), and its
params; ``fwd.capture(params, x)`` is pure in ``params`` and ``x``, so it
runs under ``jit``, ``vmap`` (over seeds or models) and ``grad``. Gradients
with respect to layer outputs come from zero ``perturbations`` added at the
captured points (:func:`output_gradients`).

How the calls are intercepted:

* Flax NNX: each module class of the model gets, for the duration of the
  trace, a ``__call__`` that records the output in a variable of the module
  (a :class:`CapturedOutput`, an ``nnx.Intermediate``). Values computed
  inside ``nnx.scan`` / ``nnx.vmap`` therefore leave the transform as the
  module's state does: stacked on a leading axis, one entry per layer of a
  scanned stack. (A transform must map that state, as the default
  ``in_axes=0`` does; ``nnx.StateAxes`` that broadcast ``...`` drop it.)
* Flax linen: ``flax.linen.intercept_methods`` sows each output into the
  collection ``"jaxinit_capture"``. Inside ``nn.scan`` / ``nn.vmap`` the
  values come out only if the transform maps that collection
  (``variable_axes={"params": 0, "jaxinit_capture": 0,
  "jaxinit_perturbations": 0}``); otherwise the enclosing module's output is
  what is captured.
* Equinox: the module classes' ``__call__`` record outputs by the module's
  position in the model. Models act on one example, so the batch is
  ``jax.vmap``-ed over (``batched=True`` for a model that takes batches).
  Calls inside the model's own JAX transforms (``lax.scan`` over stacked
  layers) cannot leave them and are not captured.

Naming: a module's output is keyed by its path; its second, third... call by
``"path#1"``, ``"path#2"``; an output that is a pytree of several arrays by
``"path:0"``, ``"path:1"`` (its inexact array leaves in order). The model's
own output (the root module) is the returned ``y``, not an entry. Leading
axes that a value gains leaving a transform (a scanned stack of ``n`` layers
gives ``(n, batch, ...)``) are its *stack axes*
(:meth:`Captured.stack_ndim`); :meth:`Captured.layers` expands them into one
name per layer (``"hidden[0]"``).

Pre-activations are the outputs of the layers that compute them: the
Linear / Conv / Einsum modules (``captured.select(flax.nnx.Linear)``); the
activation functions between them are plain functions, not modules.

Examples:
  >>> import jax, jax.numpy as jnp
  >>> from flax import nnx
  >>> from jaxinit.capture import capture
  >>> class MLP(nnx.Module):
  ...   def __init__(self, rngs):
  ...     self.hidden = nnx.Linear(3, 8, rngs=rngs)
  ...     self.out = nnx.Linear(8, 2, rngs=rngs)
  ...   def __call__(self, x):
  ...     return self.out(jax.nn.relu(self.hidden(x)))
  >>> y, captured = capture(MLP(nnx.Rngs(0)), jnp.ones((4, 3)))
  >>> {path: h.shape for path, h in captured.items()}
  {'hidden': (4, 8), 'out': (4, 2)}
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit.rules.fans import _DEFAULT_WEIGHTS, module_spec
from jaxinit.rules.patterns import OfModule, class_path, glob_match
from jaxinit.rules.targets import path_of, target_kind

__all__ = ["Captured", "Forward", "LayerInfo", "capture", "forward", "output_gradients",
           "params_by_path",
           "LINEN_COLLECTION", "LINEN_PERTURBATIONS"]

LINEN_COLLECTION = "jaxinit_capture"
"""The linen collection the captured outputs are sown into."""
LINEN_PERTURBATIONS = "jaxinit_perturbations"
"""The linen collection perturbations are read from."""


# ---------------------------------------------------------------------------
# What comes back


@dataclasses.dataclass(frozen=True)
class LayerInfo:
  """Static facts about one captured entry.

  Attributes:
    module: the module's path (``"blocks/0/mlp"``).
    call: which call of the module (0 for the first).
    leaf: which inexact array leaf of the output, or None for an array output.
    classes: import paths of the module's class and its bases (its MRO).
    weights: the module's weights, relative to it (``("kernel",)``; see
      :mod:`jaxinit.rules.fans`).
    stack_ndim: leading axes the value gained leaving a transform (stacked
      layers of ``nnx.scan`` / ``nn.scan``).
  """
  module: str
  call: int
  leaf: int | None
  classes: tuple[str, ...]
  weights: tuple[str, ...]
  stack_ndim: int = 0


def _key(module: str, call: int, leaf: int | None) -> str:
  key = module if call == 0 else f"{module}#{call}"
  return key if leaf is None else f"{key}:{leaf}"


@jax.tree_util.register_pytree_with_keys_class
class Captured(Mapping[str, jax.Array]):
  """Captured layer outputs: a read-only mapping ``key -> array`` in forward order.

  A pytree (its arrays are the leaves; the keys and :class:`LayerInfo` are
  static), so it leaves ``jit`` and ``vmap`` whole.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jaxinit.capture import Captured, LayerInfo
    >>> c = Captured({"a": jnp.zeros((3, 2, 4)), "b": jnp.ones((2, 4))},
    ...              {"a": LayerInfo("a", 0, None, (), (), stack_ndim=1),
    ...               "b": LayerInfo("b", 0, None, (), ())})
    >>> c.layers()
    ['a[0]', 'a[1]', 'a[2]', 'b']
    >>> c.per_layer("a").shape
    (3, 2, 4)
  """

  def __init__(self, values: Mapping[str, jax.Array],
               info: Mapping[str, LayerInfo] | None = None):
    self._values = dict(values)
    info = dict(info or {})
    self._info = {k: info.get(k) or LayerInfo(k, 0, None, (), ()) for k in self._values}

  # Mapping
  def __getitem__(self, key: str) -> jax.Array:
    try:
      return self._values[key]
    except KeyError:
      raise KeyError(f"{key!r} was not captured; captured: {list(self._values)}") from None

  def __iter__(self) -> Iterator[str]:
    return iter(self._values)

  def __len__(self) -> int:
    return len(self._values)

  def __repr__(self) -> str:
    shapes = ", ".join(f"{k!r}: {getattr(v, 'shape', v)}" for k, v in self._values.items())
    return f"Captured({{{shapes}}})"

  # pytree
  def tree_flatten_with_keys(self):
    keys = tuple(self._values)
    children = [(jax.tree_util.DictKey(k), self._values[k]) for k in keys]
    return children, (keys, tuple(self._info[k] for k in keys))

  @classmethod
  def tree_unflatten(cls, aux, children):
    keys, infos = aux
    out = cls.__new__(cls)
    out._values = dict(zip(keys, children))
    out._info = dict(zip(keys, infos))
    return out

  # queries
  def info(self, key: str) -> LayerInfo:
    """The static facts of entry ``key``."""
    self[key]  # pylint: disable=pointless-statement
    return self._info[key]

  def stack_ndim(self, key: str) -> int:
    """The number of leading stacked-layer axes of entry ``key``."""
    return self.info(key).stack_ndim

  def select(self, *where: Any) -> Captured:
    """The entries that match any of ``where`` (in forward order).

    Args:
      *where: path globs over the keys (``"blocks/*/mlp"``; ``*`` crosses
        ``"/"``), module classes (or their import paths, or
        :class:`~jaxinit.rules.OfModule`): subclasses match.

    Raises:
      ValueError: a pattern matches nothing.
    """
    patterns = [_as_selector(w) for w in where]
    keep = {}
    for pattern in patterns:
      hits = [k for k in self._values if _selects(pattern, k, self._info[k])]
      if not hits:
        raise ValueError(f"{pattern!r} matches no captured entry; captured: "
                         f"{list(self._values)}")
      keep.update(dict.fromkeys(hits))
    return Captured({k: self._values[k] for k in self._values if k in keep},
                    {k: self._info[k] for k in self._values if k in keep})

  def per_layer(self, key: str) -> jax.Array:
    """Entry ``key`` with one leading layer axis (its stack axes flattened; 1 when unstacked)."""
    value = self[key]
    n = self._info[key].stack_ndim
    return value.reshape((int(np.prod(value.shape[:n], dtype=int)),) + value.shape[n:])

  def layers(self) -> list[str]:
    """One name per layer in forward order: stacked entries expanded (``"hidden[2]"``)."""
    names = []
    for key, value in self._values.items():
      n = self._info[key].stack_ndim
      if n == 0:
        names.append(key)
      else:
        names += [f"{key}[{','.join(map(str, i))}]" if n > 1 else f"{key}[{i[0]}]"
                  for i in np.ndindex(*value.shape[:n])]
    return names


def _as_selector(where: Any) -> Any:
  if isinstance(where, str) and "." in where and "/" not in where and "*" not in where:
    try:
      return OfModule(where)
    except ValueError:
      return where
  if isinstance(where, (str, OfModule)):
    return where
  if isinstance(where, type):
    return OfModule(where)
  raise TypeError(f"select takes path globs (str), module classes or OfModule, got {where!r}")


def _selects(pattern: Any, key: str, info: LayerInfo) -> bool:
  if isinstance(pattern, str):
    return glob_match(key, pattern) or glob_match(info.module, pattern)
  return pattern.cls in info.classes


# ---------------------------------------------------------------------------
# Interception: one session per traced forward pass


@dataclasses.dataclass
class _Session:
  kind: str
  order: list[str] = dataclasses.field(default_factory=list)
  info: dict[str, LayerInfo] = dataclasses.field(default_factory=dict)
  inner_ndim: dict[str, int] = dataclasses.field(default_factory=dict)
  # Equinox: modules by id, outputs and perturbations by key.
  paths: dict[int, str] = dataclasses.field(default_factory=dict)
  calls: dict[str, int] = dataclasses.field(default_factory=dict)
  records: dict[str, jax.Array] = dataclasses.field(default_factory=dict)
  perturbations: Mapping[str, jax.Array] = dataclasses.field(default_factory=dict)
  trace: Any = None


_SESSION: contextvars.ContextVar[_Session | None] = contextvars.ContextVar(
    "jaxinit_capture_session", default=None)
_PATCH_LOCK = threading.Lock()
_PATCHED: dict[type, tuple[int, Any, Any]] = {}  # cls -> (users, own __call__ or None, wrapper)
_MISSING = object()


def _facts(module: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
  """The module's classes (MRO import paths) and weights (:mod:`jaxinit.rules.fans`)."""
  spec = module_spec(module)
  return (tuple(class_path(c) for c in type(module).__mro__),
          spec.weights if spec is not None else _DEFAULT_WEIGHTS)


def _resolve_call(cls: type) -> Any:
  """The ``__call__`` instances of ``cls`` run, or None (containers such as ``nnx.List``)."""
  for c in cls.__mro__:
    if "__call__" in c.__dict__:
      return c.__dict__["__call__"]
  return None


def _make_wrapper(cls: type, original: Any) -> Any:
  @functools.wraps(original)
  def __call__(self, *args, **kwargs):  # pylint: disable=invalid-name
    session = _SESSION.get()
    if session is None or type(self) is not cls:  # not capturing, or a super() call
      return original(self, *args, **kwargs)
    if session.kind == "nnx":
      return _nnx_call(session, self, original, args, kwargs)
    return _eqx_call(session, self, original, args, kwargs)
  __call__._jaxinit_capture = True  # pylint: disable=protected-access
  return __call__


@contextlib.contextmanager
def _patched(classes: Sequence[type]) -> Iterator[None]:
  """Installs the recording ``__call__`` on ``classes`` (reference-counted, thread-safe)."""
  mine = []
  with _PATCH_LOCK:
    originals = {cls: _resolve_call(cls) for cls in classes if cls not in _PATCHED}
    for cls in classes:
      if cls not in _PATCHED and originals[cls] is None:
        continue
      if cls in _PATCHED:
        users, own, wrapper = _PATCHED[cls]
        _PATCHED[cls] = (users + 1, own, wrapper)
      else:
        original = originals[cls]
        if getattr(original, "_jaxinit_capture", False):  # a base's wrapper: unwrap it
          original = original.__wrapped__
        own = cls.__dict__.get("__call__", _MISSING)
        wrapper = _make_wrapper(cls, original)
        setattr(cls, "__call__", wrapper)
        _PATCHED[cls] = (1, own, wrapper)
      mine.append(cls)
  try:
    yield
  finally:
    with _PATCH_LOCK:
      for cls in mine:
        users, own, wrapper = _PATCHED[cls]
        if users > 1:
          _PATCHED[cls] = (users - 1, own, wrapper)
          continue
        del _PATCHED[cls]
        if own is _MISSING:
          delattr(cls, "__call__")
        else:
          setattr(cls, "__call__", own)


@contextlib.contextmanager
def _session(kind: str, **fields: Any) -> Iterator[_Session]:
  session = _Session(kind, **fields)
  token = _SESSION.set(session)
  try:
    yield session
  finally:
    _SESSION.reset(token)


def _leaves(out: Any) -> tuple[list[Any], Any, list[int]]:
  leaves, treedef = jax.tree_util.tree_flatten(out)
  arrays = [i for i, leaf in enumerate(leaves)
            if hasattr(leaf, "dtype") and hasattr(leaf, "shape")
            and jnp.issubdtype(leaf.dtype, jnp.inexact)]
  return leaves, treedef, arrays


def _perturb_and_record(session: _Session, module: Any, path: str, call: int, out: Any,
                        eps: Sequence[Any] | None) -> tuple[Any, list[Any]]:
  """Adds the perturbations of this call to ``out``; records keys, facts and inner ranks."""
  leaves, treedef, arrays = _leaves(out)
  single = isinstance(out, jax.Array) or (len(leaves) == 1 and arrays == [0]
                                           and not isinstance(out, (tuple, list, dict)))
  classes, weights = _facts(module)
  recorded = []
  for j, index in enumerate(arrays):
    leaf_id = None if single else j
    key = _key(path, call, leaf_id)
    if eps is not None and j < len(eps) and eps[j] is not None:
      leaves[index] = leaves[index] + eps[j].astype(leaves[index].dtype)
    recorded.append(leaves[index])
    if key not in session.info:
      session.order.append(key)
      session.info[key] = LayerInfo(path, call, leaf_id, classes, weights)
      session.inner_ndim[key] = leaves[index].ndim
  return jax.tree_util.tree_unflatten(treedef, leaves), recorded


# ---------------------------------------------------------------------------
# Flax NNX


def _nnx_types() -> tuple[type, type]:
  global _NNX_TYPES  # pylint: disable=global-statement
  if _NNX_TYPES is None:
    from flax import nnx  # pylint: disable=import-outside-toplevel

    class CapturedOutput(nnx.Intermediate):
      """A module's captured outputs during one forward pass (one tuple of leaves per call)."""

    class CapturedPerturbation(nnx.Perturbation):
      """Perturbations added to a module's outputs during one forward pass."""

    _NNX_TYPES = (CapturedOutput, CapturedPerturbation)
  return _NNX_TYPES


_NNX_TYPES: tuple[type, type] | None = None
_PATH_ATTR, _OUT_ATTR, _EPS_ATTR = "_jaxinit_path", "_jaxinit_outputs", "_jaxinit_perturbations"


def _nnx_call(session: _Session, module: Any, original: Any, args: Any, kwargs: Any) -> Any:
  out = original(module, *args, **kwargs)
  if not hasattr(module, _OUT_ATTR):  # created during the call: not part of the model
    return out
  path = getattr(module, _PATH_ATTR)
  outs_var, eps_var = getattr(module, _OUT_ATTR), getattr(module, _EPS_ATTR)
  outs = outs_var.get_value()
  call = len(outs)
  eps_all = eps_var.get_value()
  eps = eps_all[call] if call < len(eps_all) else None
  out, recorded = _perturb_and_record(session, module, path, call, out, eps)
  outs_var.set_value(outs + (tuple(recorded),))
  return out


def _nnx_capture(graphdef: Any, params: Any, args: Any, kwargs: Any, method: str | None,
                 perturbations: Mapping[str, jax.Array] | None) -> tuple[Any, Captured]:
  from flax import nnx  # pylint: disable=import-outside-toplevel
  out_type, eps_type = _nnx_types()
  model = nnx.merge(graphdef, params)
  modules = [(path_of(p), m) for p, m in nnx.iter_modules(model)]
  eps_by_module = _group_perturbations(perturbations)
  for path, m in modules:
    setattr(m, _PATH_ATTR, path)
    setattr(m, _OUT_ATTR, out_type(()))
    setattr(m, _EPS_ATTR, eps_type(eps_by_module.get(path, ())))
  classes = list(dict.fromkeys(type(m) for path, m in modules if path))
  with _session("nnx") as session, _patched(classes):
    fn = model if method is None else getattr(model, method)
    y = fn(*args, **kwargs)
  values = {}
  for path, m in modules:
    if path:
      values.update(_entries(session, path, getattr(m, _OUT_ATTR).get_value()))
  return y, _finish(session, values)


def _entries(session: _Session, path: str, calls: Sequence[Sequence[jax.Array]]
             ) -> dict[str, jax.Array]:
  """``{key: value}`` of one module's recorded calls (each a tuple of output leaves)."""
  values = {}
  for call, leaves in enumerate(calls):
    single = _key(path, call, None) in session.info
    for j, leaf in enumerate(leaves):
      values[_key(path, call, None if single else j)] = leaf
  return values


def _group_perturbations(perturbations: Mapping[str, Any] | None
                         ) -> dict[str, tuple[tuple[Any, ...], ...]]:
  """``{key: eps}`` as ``{module: ((eps of call 0 leaves), (call 1), ...)}``."""
  grouped: dict[str, dict[int, dict[int, Any]]] = {}
  for key, eps in (perturbations or {}).items():
    module, call, leaf = _parse_key(key)
    grouped.setdefault(module, {}).setdefault(call, {})[leaf or 0] = eps
  out = {}
  for module, calls in grouped.items():
    out[module] = tuple(
        tuple(calls.get(c, {}).get(j) for j in range(max(calls.get(c, {0: 0})) + 1))
        for c in range(max(calls) + 1))
  return out


def _parse_key(key: str) -> tuple[str, int, int | None]:
  leaf = None
  if ":" in key:
    key, _, text = key.rpartition(":")
    leaf = int(text)
  call = 0
  if "#" in key:
    key, _, text = key.rpartition("#")
    call = int(text)
  return key, call, leaf


def _finish(session: _Session, values: Mapping[str, jax.Array]) -> Captured:
  ordered = [k for k in session.order if k in values]
  info = {}
  for k in ordered:
    stack = values[k].ndim - session.inner_ndim[k]
    info[k] = dataclasses.replace(session.info[k], stack_ndim=max(stack, 0))
  return Captured({k: values[k] for k in ordered}, info)


# ---------------------------------------------------------------------------
# Flax linen


def _linen_capture(module: Any, variables: Any, args: Any, kwargs: Any, method: Any,
                   perturbations: Mapping[str, jax.Array] | None) -> tuple[Any, Captured]:
  from flax import linen as nn  # pylint: disable=import-outside-toplevel
  session = _Session("linen")

  def intercept(next_fun, fargs, fkwargs, context):
    out = next_fun(*fargs, **fkwargs)
    m = context.module
    if context.method_name != "__call__" or not m.path or not m.is_mutable_collection(
        LINEN_COLLECTION):
      return out
    path = "/".join(str(p) for p in m.path)
    existing = m.get_variable(LINEN_COLLECTION, "outputs", ())
    call = len(existing)
    eps = (m.get_variable(LINEN_PERTURBATIONS, str(call))
           if m.has_variable(LINEN_PERTURBATIONS, str(call)) else None)
    out, recorded = _perturb_and_record(session, m, path, call, out, eps)
    m.put_variable(LINEN_COLLECTION, "outputs", existing + (tuple(recorded),))
    return out

  variables = dict(variables)
  if perturbations:
    tree: dict[str, Any] = {}
    for module_path, calls in _group_perturbations(perturbations).items():
      node = tree
      for part in module_path.split("/"):
        node = node.setdefault(part, {})
      for call, leaves in enumerate(calls):
        node[str(call)] = leaves
    variables[LINEN_PERTURBATIONS] = tree
  with nn.intercept_methods(intercept):
    y, state = module.apply(variables, *args, method=method, mutable=[LINEN_COLLECTION],
                            **kwargs)
  values = {}
  flat = jax.tree_util.tree_flatten_with_path(
      state.get(LINEN_COLLECTION, {}), is_leaf=lambda x: isinstance(x, tuple))[0]
  for kp, calls in flat:
    values.update(_entries(session, path_of(kp[:-1]), calls))
  return y, _finish(session, values)


# ---------------------------------------------------------------------------
# Equinox


def _eqx_call(session: _Session, module: Any, original: Any, args: Any, kwargs: Any) -> Any:
  out = original(module, *args, **kwargs)
  path = session.paths.get(id(module))
  if path is None:
    return out
  from jax.extend.core import get_opaque_trace_state  # pylint: disable=import-outside-toplevel
  if get_opaque_trace_state() != session.trace:  # inside the model's own transform
    return out
  call = session.calls.get(path, 0)
  session.calls[path] = call + 1
  eps = _group_perturbations(session.perturbations).get(path, ())
  out, recorded = _perturb_and_record(session, module, path, call, out,
                                      eps[call] if call < len(eps) else None)
  session.records.update(_entries(session, path, [()] * call + [tuple(recorded)]))
  return out


def _eqx_modules(model: Any) -> list[tuple[str, Any]]:
  from jaxinit.rules.targets import _collect_modules  # pylint: disable=import-outside-toplevel
  found: dict[tuple[str, ...], Any] = {}
  _collect_modules(model, (), found)
  return [("/".join(p), m) for p, m in found.items()]


def _eqx_capture(static: Any, params: Any, args: Any, kwargs: Any, vmap_batch: bool,
                 perturbations: Mapping[str, jax.Array] | None) -> tuple[Any, Captured]:
  import equinox as eqx  # pylint: disable=import-outside-toplevel
  holder: dict[str, _Session] = {}

  def one(params, args, eps):
    from jax.extend.core import get_opaque_trace_state  # pylint: disable=import-outside-toplevel
    model = eqx.combine(params, static)
    modules = _eqx_modules(model)
    classes = list(dict.fromkeys(type(m) for path, m in modules if path))
    with _session("equinox", paths={id(m): p for p, m in modules if p},
                  perturbations=eps, trace=get_opaque_trace_state()) as session, \
        _patched(classes):
      y = model(*args, **kwargs)
    holder["session"] = session
    return y, dict(session.records)

  eps = dict(perturbations or {})
  if vmap_batch:
    y, records = jax.vmap(one, in_axes=(None, 0, 0))(params, args, eps)
  else:
    y, records = one(params, args, eps)
  session = holder["session"]
  for key in session.inner_ndim:  # the vmapped batch axis is data, not a stack
    session.inner_ndim[key] += int(vmap_batch)
  return y, _finish(session, records)


# ---------------------------------------------------------------------------
# Forward: a model as a pure function of its params


@dataclasses.dataclass(frozen=True)
class Forward:
  """A model as a pure function of its params: ``fwd(params, *args, **kwargs) -> y``.

  Made by :func:`forward`; hashable, so it can be a static argument of
  ``jax.jit`` (a compiled program is reused for equal Forwards).

  Attributes:
    kind: ``"nnx"``, ``"linen"`` or ``"equinox"``.
    definition: the NNX ``GraphDef``, the linen module, or the Equinox
      model's static part (``eqx.partition``).
    method: the method to call (None: ``__call__``).
    batched: Equinox only: whether the model takes a batch (False: it acts
      on one example and the batch is vmapped over).
  """
  kind: str
  definition: Any
  method: Any = None
  batched: bool = True

  def __call__(self, params: Any, *args: Any, **kwargs: Any) -> Any:
    """The model's output for ``params``."""
    if self.kind == "nnx":
      from flax import nnx  # pylint: disable=import-outside-toplevel
      model = nnx.merge(self.definition, params)
      return (model if self.method is None else getattr(model, self.method))(*args, **kwargs)
    if self.kind == "linen":
      return self.definition.apply(params, *args, method=self.method, **kwargs)
    import equinox as eqx  # pylint: disable=import-outside-toplevel
    model = eqx.combine(params, self.definition)
    if self.batched:
      return model(*args, **kwargs)
    return jax.vmap(lambda *a: model(*a, **kwargs))(*args)

  def capture(self, params: Any, *args: Any,
              perturbations: Mapping[str, jax.Array] | None = None,
              **kwargs: Any) -> tuple[Any, Captured]:
    """``(y, captured)``: the output and every module call's output.

    Pure in ``params``, ``args`` and ``perturbations``: jit, vmap and grad
    freely.

    Args:
      params: the params (as :func:`forward` returned them).
      *args: the model's inputs.
      perturbations: ``{key: array}`` added to the captured outputs of those
        keys (zeros: the gradient with respect to them is the gradient with
        respect to the layer outputs); shapes as captured.
      **kwargs: the model's keyword arguments.

    Raises:
      KeyError: a perturbation key names no captured output.
    """
    if self.kind == "nnx":
      y, captured = _nnx_capture(self.definition, params, args, kwargs, self.method,
                                 perturbations)
    elif self.kind == "linen":
      y, captured = _linen_capture(self.definition, params, args, kwargs, self.method,
                                   perturbations)
    else:
      y, captured = _eqx_capture(self.definition, params, args, kwargs,
                                 not self.batched, perturbations)
    unknown = sorted(set(perturbations or {}) - set(captured))
    if unknown:
      raise KeyError(f"perturbations for {unknown}, which were not captured; captured: "
                     f"{list(captured)}")
    return y, captured

  def param_path(self, module: str, name: str) -> str:
    """The path, in this Forward's params, of parameter ``name`` of module ``module``."""
    path = f"{module}/{name}" if module else name
    return f"params/{path}" if self.kind == "linen" else path

  def template(self, params: Any) -> Any:
    """An abstract model (shapes only) for the rules (:func:`jaxinit.rules.plan`)."""
    abstract = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype) if hasattr(x, "dtype") else x,
        params)
    if self.kind == "nnx":
      from flax import nnx  # pylint: disable=import-outside-toplevel
      return nnx.merge(self.definition, abstract)
    if self.kind == "linen":
      return abstract
    import equinox as eqx  # pylint: disable=import-outside-toplevel
    return eqx.combine(abstract, self.definition)


def forward(model: Any, variables: Any = None, *, method: Any = None,
            batched: bool | None = None) -> tuple[Forward, Any]:
  """A model as ``(fwd, params)`` with ``fwd(params, x) == model(x)``.

  Args:
    model: a Flax NNX module (its whole state becomes the params: a plain
      nested dict, ``nnx.to_pure_dict``), a Flax linen module (with its
      ``variables``) or an Equinox module (its inexact arrays are the params).
    variables: a linen module's variables (``module.init(...)``).
    method: the method to run instead of ``__call__`` (a name; linen also
      takes the function).
    batched: Equinox: whether the model takes a batch (default False: the
      model acts on one example and the batch is vmapped over).

  Returns:
    ``(Forward, params)``.

  Raises:
    TypeError: a model of no supported kind, or linen without variables.
  """
  kind = target_kind(model)
  if kind == "nnx":
    from flax import nnx  # pylint: disable=import-outside-toplevel
    graphdef, state = nnx.split(model)
    return Forward("nnx", graphdef, method), nnx.to_pure_dict(state)
  if kind == "linen":
    if variables is None:
      raise TypeError("a linen module needs its variables: forward(module, variables)")
    return Forward("linen", model, method), variables
  if kind == "equinox":
    import equinox as eqx  # pylint: disable=import-outside-toplevel
    params, static = eqx.partition(model, eqx.is_inexact_array)
    return Forward("equinox", static, method, bool(batched)), params
  raise TypeError(f"capture needs a Flax NNX or linen module or an Equinox module, got "
                  f"{type(model).__name__}")


def capture(model: Any, *args: Any, variables: Any = None,
            perturbations: Mapping[str, jax.Array] | None = None,
            batched: bool | None = None, **kwargs: Any) -> tuple[Any, Captured]:
  """Runs ``model`` on ``args``; returns ``(y, captured)`` (see the module docstring).

  A shortcut for ``fwd, params = forward(model, variables); fwd.capture(params, *args)``.

  Args:
    model: a Flax NNX module, a linen module (pass ``variables``) or an
      Equinox module.
    *args: the inputs.
    variables: a linen module's variables.
    perturbations: see :meth:`Forward.capture`.
    batched: Equinox: see :func:`forward`.
    **kwargs: the model's keyword arguments.
  """
  fwd, params = forward(model, variables, batched=batched)
  return fwd.capture(params, *args, perturbations=perturbations, **kwargs)


def output_gradients(fwd: Forward, params: Any, loss_fn: Callable[[Any], jax.Array], *args: Any,
                     where: Sequence[Any] = (), **kwargs: Any
                     ) -> tuple[jax.Array, Captured, Any]:
  """The loss and its gradients with respect to the captured layer outputs and the params.

  Zero perturbations are added at every captured output (or those
  ``where`` selects) and differentiated, so the gradient with respect to a
  layer's output is exact and costs one backward pass for all layers.

  Args:
    fwd: the model (:func:`forward`).
    params: its params.
    loss_fn: maps the model's output to a scalar (close over targets).
    *args: the inputs.
    where: optional selection (see :meth:`Captured.select`).
    **kwargs: the model's keyword arguments.

  Returns:
    ``(loss, output_grads, param_grads)``: ``output_grads`` a
    :class:`Captured` shaped as the selected outputs.
  """
  shapes = jax.eval_shape(lambda p, *a: fwd.capture(p, *a, **kwargs)[1], params, *args)
  if where:
    shapes = shapes.select(*where)
  zeros = {k: jnp.zeros(v.shape, v.dtype) for k, v in shapes.items()}

  def loss(p, eps):
    return loss_fn(fwd.capture(p, *args, perturbations=eps, **kwargs)[0])

  value, (g_params, g_eps) = jax.value_and_grad(loss, argnums=(0, 1))(params, zeros)
  return value, Captured({k: g_eps[k] for k in shapes},
                         {k: shapes.info(k) for k in shapes}), g_params


def params_by_path(params: Any) -> dict[str, Any]:
  """``{path: leaf}`` of a params pytree (paths as :meth:`Forward.param_path` writes them)."""
  leaves = jax.tree_util.tree_flatten_with_path(params)[0]
  return {path_of(kp): leaf for kp, leaf in leaves}
