"""Walking a model: its parameters as :class:`Site` s, and writing values back.

One adapter per kind of target, each with ``sites`` (path, shape, dtype, the
modules that own the parameter, its fans, its sharding, its current value)
and ``write(values) -> result``:

* Flax NNX module (concrete, or from ``nnx.eval_shape``): ``nnx.Param``
  variables, updated in place; shardings from the value or from the
  variable's sharding metadata (``nnx.with_partitioning``) and a mesh.
* Flax linen module plus sample inputs: module classes found by intercepting
  ``init`` (``nn.intercept_methods``); the variables are built by one jitted
  program, ``module.init`` with the matched leaves replaced (XLA drops the
  draws they replace), with linen's logical partitioning and a mesh.
* Flax linen variables (a dict with ``"params"``): paths inside ``"params"``.
* Equinox module: inexact array leaves; module classes from the tree.
* A plain pytree: inexact array leaves (and ``jax.ShapeDtypeStruct`` s).

Paths join the keys of the tree with ``"/"``: dict keys, attribute names,
sequence indices (``"blocks/0/mlp/kernel"``; Equinox ``layers[0].weight`` is
``"layers/0/weight"``).

Flax and Equinox are imported only when a target of theirs is given.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from jaxinit import checks
from jaxinit.rules.fans import _DEFAULT_WEIGHTS, Fans, module_spec, param_fans
from jaxinit.rules.patterns import class_path, glob_match

__all__ = ["Owner", "Site", "StateSite", "Target", "adapt_target", "path_of", "target_kind"]


@dataclasses.dataclass(frozen=True)
class Owner:
  """A module that holds a parameter.

  Attributes:
    classes: the import paths of the module's class and its bases (its MRO).
    name: the parameter's path relative to the module.
    weights: the module's weights (relative paths).
  """
  classes: tuple[str, ...]
  name: str
  weights: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Site:
  """One parameter of a target.

  Attributes:
    path: ``"/"``-joined path.
    shape: its full shape (stacked layers included).
    dtype: its dtype.
    owners: the modules holding it, innermost first.
    fans: what its module says about its fans, or None.
    sharding: where its value should live (None: where jax puts it).
    has_value: whether the target holds a value for it (not only a shape).
    stack_ndim: leading axes that stack independent layers.
  """
  path: str
  shape: tuple[int, ...]
  dtype: np.dtype
  owners: tuple[Owner, ...] = ()
  fans: Fans | None = None
  sharding: Any = None
  has_value: bool = True
  stack_ndim: int = 0

  @property
  def stack(self) -> tuple[int, ...]:
    """The leading stacked-layer dims."""
    return self.shape[:self.stack_ndim]

  @property
  def layer_shape(self) -> tuple[int, ...]:
    """One layer's shape."""
    return self.shape[len(self.stack):]


@dataclasses.dataclass(frozen=True)
class StateSite:
  """One leaf of a target that is not a parameter: NNX ``BatchStat`` / ``Cache`` / RNG
  state / other ``nnx.Variable`` types, linen collections other than ``params``, integer
  leaves of a pytree.

  Rules never draw these. A leaf with only a shape (``nnx.eval_shape``) gets the
  value its module's constructor gives it (``init``, called at the leaf's path
  key); with no known ``init`` it is an error naming the path.

  Attributes:
    collection: ``"batch_stats"``, ``"cache"``, ``"rng"``... (linen's collection,
      or the Flax name of the NNX variable type); ``""`` for pytree leaves.
    path: ``"/"``-joined path inside the collection (NNX: the module path).
    shape: its shape.
    dtype: its dtype.
    has_value: whether the target holds a value (not only a shape).
    init: ``init(key, shape, dtype)``: the constructor's value, or None
      where it is not known.
  """
  collection: str
  path: str
  shape: tuple[int, ...]
  dtype: Any
  has_value: bool = True
  init: Callable[..., Any] | None = None


def _rng_key(key: jax.Array, shape: tuple[int, ...], dtype: Any) -> jax.Array:
  """A stream's key: the path key itself (split to ``shape`` for a stacked stream), in the
  key implementation ``dtype`` names."""
  if dtype != key.dtype:
    impl = getattr(dtype, "_impl", None)
    if impl is None:
      raise TypeError(f"cannot make an RNG key of dtype {dtype}")
    words = jax.random.bits(key, impl.key_shape, np.uint32)
    key = jax.random.wrap_key_data(words, impl=impl)
  return jax.random.split(key, shape) if shape else key


def _rng_count(key: jax.Array, shape: tuple[int, ...], dtype: Any) -> jax.Array:
  del key
  return jax.numpy.zeros(shape, dtype)


def state_init(path: tuple[str, ...], modules: Mapping[tuple[str, ...], Any]) -> Any:
  """The value the nearest owning module's constructor gives the state at ``path``
  (:func:`~jaxinit.rules.register_module` ``state=``), or None."""
  for cut in range(len(path) - 1, -1, -1):
    module = modules.get(path[:cut])
    if module is None:
      continue
    spec = module_spec(module)
    name = "/".join(path[cut:])
    for glob, init in (spec.state if spec is not None else ()):
      if glob_match(name, glob):
        return init
  return None


def _key_name(entry: Any) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(entry, attr):
      return str(getattr(entry, attr))
  return str(entry)


def path_of(keypath: tuple[Any, ...]) -> str:
  """A jax key path (``DictKey``, ``GetAttrKey``, ``SequenceKey``, ...) as ``"a/b/0"``."""
  return "/".join(_key_name(k) for k in keypath)


def _classes(module: Any) -> tuple[str, ...]:
  return tuple(class_path(c) for c in type(module).__mro__)


def _is_kind(obj: Any, base: str) -> bool:
  return any(class_path(c) == base for c in type(obj).__mro__)


def target_kind(target: Any) -> str:
  """``"nnx"``, ``"linen"``, ``"linen_variables"``, ``"equinox"`` or ``"pytree"``."""
  if _is_kind(target, "flax.nnx.module.Module"):
    return "nnx"
  if _is_kind(target, "flax.linen.module.Module"):
    return "linen"
  if _is_kind(target, "equinox._module._module.Module"):
    return "equinox"
  if isinstance(target, Mapping) and "params" in target and isinstance(target["params"], Mapping):
    return "linen_variables"
  return "pytree"


def _owners_and_fans(path: tuple[str, ...], modules: Mapping[tuple[str, ...], Any],
                     shapes_under: Callable[[tuple[str, ...]], Mapping[str, tuple[int, ...]]]
                     ) -> tuple[tuple[Owner, ...], Fans | None]:
  owners = []
  fans = None
  for cut in range(len(path) - 1, -1, -1):
    prefix = path[:cut]
    module = modules.get(prefix)
    if module is None:
      continue
    name = "/".join(path[cut:])
    spec = module_spec(module)
    owners.append(Owner(_classes(module), name, spec.weights if spec else _DEFAULT_WEIGHTS))
    if cut == len(path) - 1 and spec is not None:  # the parameter's own module
      try:
        fans = param_fans(module, name, shapes_under(prefix))
      except (ValueError, TypeError, AttributeError, KeyError) as err:
        raise ValueError(f"{'/'.join(path)}: cannot compute the fans of "
                         f"{type(module).__name__}.{name}: {err}") from err
  return tuple(owners), fans


def _shapes_under(paths: Mapping[tuple[str, ...], tuple[int, ...]]):
  def under(prefix: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    n = len(prefix)
    return {"/".join(p[n:]): s for p, s in paths.items() if p[:n] == prefix and len(p) > n}
  return under


def _stack_ndim(fans: Fans | None, path: str, shape: tuple[int, ...],
                stack_axes: Mapping[str, int] | None) -> int:
  """The module's stack count, unless a ``stack_axes`` glob names the path."""
  for glob, count in (stack_axes or {}).items():
    if glob_match(path, glob):
      if count > len(shape):
        raise ValueError(f"stack_axes[{glob!r}] = {count} exceeds the rank of {path} "
                         f"(shape {shape})")
      return count
  return fans.stack if fans is not None else 0


def _is_array_leaf(x: Any) -> bool:
  dtype = getattr(x, "dtype", None)
  if dtype is None or not hasattr(x, "shape"):
    return False
  try:
    return bool(np.issubdtype(dtype, np.inexact)) or jax.numpy.issubdtype(dtype, jax.numpy.inexact)
  except TypeError:
    return False


def _value_sharding(value: Any, mesh: Any = None) -> Any:
  """The sharding a value (or a ShapeDtypeStruct) carries, on a concrete mesh; else None."""
  if not isinstance(value, (jax.ShapeDtypeStruct, jax.Array)) or isinstance(
      value, jax.core.Tracer):
    return None
  sharding = getattr(value, "sharding", None)
  if isinstance(sharding, jax.sharding.NamedSharding) and isinstance(
      sharding.mesh, jax.sharding.AbstractMesh):
    return jax.sharding.NamedSharding(mesh, sharding.spec) if mesh is not None else None
  return sharding


@dataclasses.dataclass
class Target:
  """A target's parameters and how to write values back.

  Attributes:
    kind: see :func:`target_kind`.
    sites: the parameters.
    write: ``write(values, drawn_fn) -> result``; ``values`` maps paths to
      new arrays.
    label_tree: ``label_tree(labels) -> pytree`` of labels shaped as the
      target's parameter tree (for optax ``multi_transform``).
    program: linen: ``program(assignments, draw_one, state) -> variables``.
    state: the leaves that are not parameters; ``write`` and ``program``
      take ``state``, ``{(collection, path): value}``, to set them.
  """
  kind: str
  sites: list[Site]
  write: Callable[..., Any]
  label_tree: Callable[[Mapping[str, str]], Any]
  program: Callable[..., Any] | None = None
  state: list[StateSite] = dataclasses.field(default_factory=list)


# ---------------------------------------------------------------------------
# Flax NNX

def _nnx_mesh_sharding(variable: Any, mesh: Any) -> Any:
  meta = variable.get_metadata()
  names = None
  for key in ("out_sharding", "sharding_names", "sharding"):
    if meta.get(key) is not None:
      names = meta[key]
      break
  if names is None:
    return None
  if isinstance(names, jax.sharding.Sharding):
    return names
  mesh = meta.get("mesh") or mesh
  if mesh is None or isinstance(mesh, jax.sharding.AbstractMesh):
    raise ValueError(f"parameter has sharding names {names} but no mesh is given: pass "
                     f"mesh=... or initialize inside `with jax.set_mesh(mesh)`")
  spec = names if isinstance(names, jax.sharding.PartitionSpec) else (
      jax.sharding.PartitionSpec(*names))
  return jax.sharding.NamedSharding(mesh, spec)


def context_mesh(mesh: Any) -> Any:
  """``mesh``, or the concrete mesh of the context (``jax.set_mesh``), or None."""
  if mesh is not None:
    return mesh
  try:
    current = jax.sharding.get_mesh()
  except ValueError:  # inside jit: leave the placement to the caller's program
    return None
  return None if current is None or current.empty else current


def _nnx_target(module: Any, mesh: Any, stack_axes: Mapping[str, int] | None) -> Target:
  from flax import nnx  # pylint: disable=import-outside-toplevel
  modules = {tuple(str(p) for p in path): m for path, m in nnx.iter_modules(module)}
  flat = list(nnx.to_flat_state(nnx.state(module, nnx.Param)))
  variables = {tuple(str(p) for p in path): var for path, var in flat}
  shapes = {p: tuple(v.get_value().shape) for p, v in variables.items()}
  under = _shapes_under(shapes)
  sites = []
  for p, var in variables.items():
    value = var.get_value()
    owners, fans = _owners_and_fans(p, modules, under)
    path = "/".join(p)
    abstract = isinstance(value, jax.ShapeDtypeStruct)
    sharding = _nnx_mesh_sharding(var, mesh)
    if sharding is None:
      sharding = _value_sharding(value, mesh)
    sites.append(Site(path, shapes[p], np.dtype(value.dtype), owners, fans, sharding,
                      not abstract, _stack_ndim(fans, path, shapes[p], stack_axes)))
  others = {tuple(str(q) for q in path): var for path, var in
            nnx.to_flat_state(nnx.state(module, nnx.Not(nnx.Param)))}
  state = []
  for p, var in others.items():
    value = var.get_value()
    if isinstance(var, nnx.RngKey):
      init, collection = _rng_key, "rng"
    elif isinstance(var, nnx.RngCount):
      init, collection = _rng_count, "rng"
    else:
      init, collection = state_init(p, modules), _nnx_collection(type(var))
    state.append(StateSite(collection, "/".join(p), tuple(np.shape(value)), value.dtype,
                           not isinstance(value, jax.ShapeDtypeStruct), init))

  def write(values: Mapping[str, jax.Array],
            state_values: Mapping[tuple[str, str], Any] | None = None) -> Any:
    for p, var in variables.items():
      path = "/".join(p)
      if path in values:
        var.set_value(values[path])
    by_path = {path: v for (_, path), v in (state_values or {}).items()}
    for p, var in others.items():
      path = "/".join(p)
      if path in by_path:
        var.set_value(by_path[path])
    return module

  def label_tree(labels: Mapping[str, str]) -> Any:
    state = nnx.state(module, nnx.Param)
    return jax.tree_util.tree_map_with_path(
        lambda kp, _: labels[path_of(kp)], state,
        is_leaf=lambda x: isinstance(x, nnx.Variable))

  return Target("nnx", sites, write, label_tree, state=state)


def _nnx_collection(var_type: type) -> str:
  """Flax's collection name of an NNX variable type (``"batch_stats"``, ``"cache"``)."""
  from flax.nnx import variablelib  # pylint: disable=import-outside-toplevel
  try:
    return variablelib.variable_name_from_type(var_type)
  except ValueError:  # an unregistered user type
    return var_type.__name__


# ---------------------------------------------------------------------------
# Flax linen

_LINEN_PROGRAMS: dict[Any, tuple[Any, Callable[..., Any]]] = {}


def _linen_target(module: Any, key: jax.Array, inputs: tuple[Any, ...],
                  init_kwargs: Mapping[str, Any], mesh: Any, logical_axis_rules: Any,
                  stack_axes: Mapping[str, int] | None) -> Target:
  from flax import linen as nn  # pylint: disable=import-outside-toplevel
  seen, abstract = _linen_modules(module, key, inputs, init_kwargs)
  params = abstract.get("params", {})
  flat = _flatten(params, boxed=True)
  shapes = {p: tuple(_unbox(v).shape) for p, v in flat.items()}
  under = _shapes_under(shapes)
  specs = None
  if mesh is not None:
    specs = nn.get_partition_spec(abstract)
    if logical_axis_rules is not None:
      shardings = nn.logical_to_mesh_sharding(specs, mesh, logical_axis_rules)
    else:
      shardings = jax.tree_util.tree_map(
          lambda s: jax.sharding.NamedSharding(mesh, s), specs,
          is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))
  sites = []
  for p, leaf in flat.items():
    owners, fans = _owners_and_fans(p, seen, under)
    path = "/".join(p)
    sharding = _get_in(shardings["params"], p) if specs is not None else None
    sites.append(Site(path, shapes[p], np.dtype(_unbox(leaf).dtype), owners, fans, sharding,
                      False, _stack_ndim(fans, path, shapes[p], stack_axes)))
  out_shardings = shardings if specs is not None else None

  def program(assignments: tuple[Any, ...], draw_one: Callable[[jax.Array, Any], jax.Array]
              ) -> Any:
    """``module.init`` with the assigned leaves drawn instead, as one jitted program
    (compiled once per module, rules and input shapes)."""
    def build(k, args):
      variables = module.init(k, *args, **init_kwargs)
      return _replace_params(variables, {a.path: draw_one(k, a) for a in assignments})
    shardings, treedef = jax.tree_util.tree_flatten(out_shardings)
    avals = tuple((np.shape(x), np.dtype(x.dtype) if hasattr(x, "dtype") else np.result_type(x))
                  for x in jax.tree_util.tree_leaves(inputs))
    try:
      cache_key = (id(module), assignments, avals, tuple(sorted(init_kwargs.items())),
                   tuple(shardings), treedef)
      hash(cache_key)
    except TypeError:
      return jax.jit(build, out_shardings=out_shardings)(key, inputs)
    hit = _LINEN_PROGRAMS.get(cache_key)
    if hit is None or hit[0] is not module:
      hit = (module, jax.jit(build, out_shardings=out_shardings))
      _LINEN_PROGRAMS[cache_key] = hit
      while len(_LINEN_PROGRAMS) > 64:
        _LINEN_PROGRAMS.pop(next(iter(_LINEN_PROGRAMS)))
    return hit[1](key, inputs)

  def write(values: Mapping[str, jax.Array], state_values: Any = None) -> Any:
    raise AssertionError("linen modules are built by their program")

  # The program builds every collection with the module's own init.
  return Target("linen", sites, write, _tree_labels(params, boxed=True), program,
                _collection_state(abstract, seen, has_value=True))


def _linen_modules(module: Any, key: jax.Array, inputs: tuple[Any, ...],
                   init_kwargs: Mapping[str, Any]) -> tuple[dict[tuple[str, ...], Any], Any]:
  """The linen modules ``module.init`` creates, by path (found by interception), and the
  abstract variables."""
  from flax import linen as nn  # pylint: disable=import-outside-toplevel
  seen: dict[tuple[str, ...], Any] = {}

  def record(next_fun, args, kwargs, context):
    m = context.module
    seen.setdefault(tuple(str(p) for p in m.path), m)
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(record):
    abstract = jax.eval_shape(lambda k: module.init(k, *inputs, **init_kwargs), key)
  return seen, abstract


def _unbox(x: Any) -> Any:
  return x.unbox() if hasattr(x, "unbox") and not isinstance(x, (jax.Array, np.ndarray)) else x


def _is_box(x: Any) -> bool:
  return _is_kind(x, "flax.core.meta.AxisMetadata")


def _flatten(tree: Any, boxed: bool) -> dict[tuple[str, ...], Any]:
  leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_box if boxed else None)[0]
  return {tuple(_key_name(k) for k in kp): leaf for kp, leaf in leaves
          if _is_array_leaf(_unbox(leaf))}


def _get_in(tree: Any, path: tuple[str, ...]) -> Any:
  for p in path:
    tree = tree[p]
  return tree


def _replace_params(variables: Any, values: Mapping[str, jax.Array],
                    state: Mapping[tuple[str, str], Any] | None = None) -> Any:
  """``variables`` with ``params`` leaves replaced by ``values`` (by path) and leaves of other
  collections by ``state`` (by ``(collection, path)``); boxes (partitioning metadata) kept."""
  by_collection: dict[str, dict[str, Any]] = {"params": dict(values)}
  for (collection, path), value in (state or {}).items():
    by_collection.setdefault(collection, {})[path] = value
  out = dict(variables)
  for collection, new in by_collection.items():
    if not new or collection not in out:
      continue
    def swap(kp, leaf, new=new):
      path = path_of(kp)
      if path not in new:
        return leaf
      return leaf.replace_boxed(new[path]) if _is_box(leaf) else new[path]
    out[collection] = jax.tree_util.tree_map_with_path(swap, variables[collection],
                                                       is_leaf=_is_box)
  return type(variables)(out) if not isinstance(variables, dict) else out


def _collection_state(variables: Any, modules: Mapping[tuple[str, ...], Any],
                      has_value: bool | None = None) -> list[StateSite]:
  """The leaves of every collection other than ``params``, as :class:`StateSite` s."""
  state = []
  for collection, tree in variables.items():
    if collection == "params":
      continue
    leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_box)[0]
    for kp, leaf in leaves:
      value = _unbox(leaf)
      if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        continue
      p = tuple(_key_name(k) for k in kp)
      abstract = isinstance(value, jax.ShapeDtypeStruct)
      state.append(StateSite(str(collection), "/".join(p), tuple(value.shape), value.dtype,
                             (not abstract) if has_value is None else has_value,
                             state_init(p, modules)))
  return state


def _tree_labels(tree: Any, boxed: bool) -> Callable[[Mapping[str, str]], Any]:
  def label_tree(labels: Mapping[str, str]) -> Any:
    return jax.tree_util.tree_map_with_path(
        lambda kp, leaf: labels.get(path_of(kp)), tree, is_leaf=_is_box if boxed else None)
  return label_tree


def _variables_target(variables: Any, stack_axes: Mapping[str, int] | None,
                      modules: Mapping[tuple[str, ...], Any]) -> Target:
  params = variables["params"]
  flat = _flatten(params, boxed=True)
  shapes = {p: tuple(_unbox(v).shape) for p, v in flat.items()}
  under = _shapes_under(shapes)
  sites = []
  for p, leaf in flat.items():
    value = _unbox(leaf)
    path = "/".join(p)
    owners, fans = _owners_and_fans(p, modules, under) if modules else ((), None)
    sites.append(Site(path, shapes[p], np.dtype(value.dtype), owners, fans,
                      _value_sharding(value), not isinstance(value, jax.ShapeDtypeStruct),
                      _stack_ndim(fans, path, shapes[p], stack_axes)))

  def write(values: Mapping[str, jax.Array],
            state_values: Mapping[tuple[str, str], Any] | None = None) -> Any:
    return _replace_params(variables, values, state_values)

  return Target("linen_variables", sites, write, _tree_labels(params, boxed=True),
                state=_collection_state(variables, modules))


# ---------------------------------------------------------------------------
# Equinox and plain pytrees

def _tree_target(tree: Any, kind: str, stack_axes: Mapping[str, int] | None) -> Target:
  leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
  modules: dict[tuple[str, ...], Any] = {}
  if kind == "equinox":
    _collect_modules(tree, (), modules)
  flat = {tuple(_key_name(k) for k in kp): (i, leaf) for i, (kp, leaf) in enumerate(leaves)
          if _is_array_leaf(leaf)}
  shapes = {p: tuple(leaf.shape) for p, (_, leaf) in flat.items()}
  under = _shapes_under(shapes)
  sites = []
  for p, (_, leaf) in flat.items():
    owners, fans = _owners_and_fans(p, modules, under) if modules else ((), None)
    path = "/".join(p)
    sites.append(Site(path, shapes[p], np.dtype(leaf.dtype), owners, fans,
                      _value_sharding(leaf), not isinstance(leaf, jax.ShapeDtypeStruct),
                      _stack_ndim(fans, path, shapes[p], stack_axes)))
  index = {"/".join(p): i for p, (i, _) in flat.items()}
  # Abstract leaves that are not parameters (integer counters...): nothing knows their value.
  state = [StateSite("", path_of(kp), tuple(leaf.shape), leaf.dtype, False)
           for kp, leaf in leaves
           if isinstance(leaf, jax.ShapeDtypeStruct) and not _is_array_leaf(leaf)]

  def write(values: Mapping[str, jax.Array], state_values: Any = None) -> Any:
    new = [leaf for _, leaf in leaves]
    for path, value in values.items():
      new[index[path]] = value
    return jax.tree_util.tree_unflatten(treedef, new)

  def label_tree(labels: Mapping[str, str]) -> Any:
    return jax.tree_util.tree_map_with_path(
        lambda kp, leaf: labels.get(path_of(kp)) if _is_array_leaf(leaf) else None, tree)

  return Target(kind, sites, write, label_tree, state=state)


def _collect_modules(node: Any, prefix: tuple[str, ...], out: dict[tuple[str, ...], Any]) -> None:
  """Every Equinox module in ``node`` by its path."""
  if _is_kind(node, "equinox._module._module.Module"):
    out[prefix] = node
  children = jax.tree_util.tree_flatten_with_path(
      node, is_leaf=lambda x: x is not node and _is_kind(x, "equinox._module._module.Module"))[0]
  for kp, child in children:
    if child is not node and _is_kind(child, "equinox._module._module.Module"):
      _collect_modules(child, prefix + tuple(_key_name(k) for k in kp), out)


TARGET_KINDS = ("a Flax NNX module, a Flax linen module (with sample inputs), linen variables "
                "(a dict with 'params'), an Equinox module, or a pytree of arrays / "
                "jax.ShapeDtypeStruct")


def _check_tree_target(target: Any) -> None:
  """A pytree target must be a container whose leaves include arrays (or be empty)."""
  leaves = jax.tree_util.tree_leaves(target)
  if target is None or (leaves and not any(
      hasattr(x, "shape") and hasattr(x, "dtype") for x in leaves)):
    raise checks.refuse("target", target, TARGET_KINDS)


def _check_linen_inputs(module: Any, inputs: tuple[Any, ...],
                        init_kwargs: Mapping[str, Any], argname: str) -> None:
  """Sample inputs must fill the linen module's call (named before any tracing)."""
  import inspect  # pylint: disable=import-outside-toplevel
  call_kwargs = {k: v for k, v in init_kwargs.items()
                 if k not in ("method", "mutable", "capture_intermediates", "rngs")}
  method = init_kwargs.get("method") or module.__call__
  if isinstance(method, str):
    method = getattr(module, method)
  try:
    signature = inspect.signature(method)
  except (TypeError, ValueError):
    return
  try:
    signature.bind(*inputs, **call_kwargs)
  except TypeError as err:
    required = [p.name for p in signature.parameters.values()
                if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY,
                                                       p.POSITIONAL_OR_KEYWORD)]
    missing = [n for n in required[len(inputs):] if n not in call_kwargs]
    what = (f"needs sample inputs for {missing}" if missing
            else f"does not accept the sample inputs given ({err})")
    raise TypeError(
        f"the linen module {argname} ({type(module).__name__}) {what}: pass them after the "
        f"key, e.g. jaxinit.initialize(module, rules, key, x) or jaxinit.reinit(variables, "
        f"rules, key, x, module=module)") from None


def adapt_target(target: Any, *, key: jax.Array, inputs: tuple[Any, ...] = (),
                 init_kwargs: Mapping[str, Any] | None = None, mesh: Any = None,
                 logical_axis_rules: Any = None,
                 stack_axes: Mapping[str, int] | None = None, module: Any = None) -> Target:
  """The :class:`Target` for ``target`` (see the module docstring for the kinds).

  Raises:
    TypeError: a target of no kind above (naming ``target`` and the kinds);
      sample inputs given for a target that is not a linen module; ``module``
      given for a target that is not linen variables; a linen module whose
      call the sample inputs do not fill (naming the missing inputs).
  """
  kind = target_kind(target)
  if kind == "pytree":
    _check_tree_target(target)
  mesh = context_mesh(mesh)
  if module is not None and kind != "linen_variables":
    raise TypeError(f"module= describes linen variables; a {kind} target takes none")
  if inputs and kind != "linen" and module is None:
    raise TypeError(f"sample inputs are for a Flax linen module; a {kind} target takes none")
  if kind == "nnx":
    return _nnx_target(target, mesh, stack_axes)
  if kind == "linen":
    _check_linen_inputs(target, inputs, init_kwargs or {}, "target")
    return _linen_target(target, key, inputs, init_kwargs or {}, mesh, logical_axis_rules,
                         stack_axes)
  if kind == "linen_variables":
    if module is not None:
      if target_kind(module) != "linen":
        raise checks.refuse("module", module, "a Flax linen module (the module of the linen "
                            "variables)")
      _check_linen_inputs(module, inputs, init_kwargs or {}, "module=")
    modules = _linen_modules(module, key, inputs, init_kwargs or {})[0] if module else {}
    return _variables_target(target, stack_axes, modules)
  return _tree_target(target, kind, stack_axes)
