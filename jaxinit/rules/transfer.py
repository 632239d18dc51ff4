"""Transfer learning: a pretrained checkpoint into a model whose head or some layers differ.

``transfer(target, checkpoint, rules, key)`` restores every parameter whose
path and shape match the checkpoint, initializes the new and the
shape-changed ones by the rules (new layers initialized differently from the
pretrained ones), and returns the model with a :class:`TransferReport`
listing restored / initialized / dropped paths. ``report.labels()`` tags
each parameter ``"restored"`` or ``"initialized"`` for
``optax.multi_transform`` (freeze the restored layers, train the new ones,
or give them their own learning rates).

State that is not a parameter (BatchNorm's running statistics, any other
collection but RNG streams) transfers too: each leaf whose collection, path
and shape match the checkpoint is restored; the others keep the model's
values (or, from ``nnx.eval_shape``, get their constructors' values);
``report.collections`` says what happened per collection. RNG streams are
never restored: a fine-tuning run draws its own (from the rules' key).

Checkpoints are real files, read by the libraries made for them: an orbax
checkpoint directory (``orbax.checkpoint.StandardCheckpointer``) or a
``flax.serialization`` msgpack file; an in-memory pytree works too. A
checkpoint with a ``"params"`` key is a dict of collections (linen
variables; what :func:`save_params` writes): parameters inside
``"params"``, other state in its collection (``"batch_stats"``...).
Without one, every leaf is looked up by path alone (a parameter, or state
of any collection at that path). Paths are the ``"/"``-joined keys (NNX
``State`` leaves saved by orbax end in ``"value"``, which is dropped).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax

from jaxinit.rules.api import _check_unused, _draw_assignment, _make_plan, _traced_draw
from jaxinit.rules.keys import as_key
from jaxinit.rules.patterns import as_rule_set, class_path
from jaxinit.rules.targets import Target, _replace_params, adapt_target, path_of

__all__ = ["CollectionReport", "TransferReport", "load_params", "save_params", "transfer"]


def _flat(tree: Any) -> dict[str, Any]:
  out = {}
  for kp, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    if not hasattr(leaf, "shape"):
      continue
    path = path_of(kp)
    for suffix in ("/value", "/raw_value"):
      if path.endswith(suffix):
        path = path[:-len(suffix)]
    out[path] = leaf
  return out


def _is_collections(tree: Any) -> bool:
  return isinstance(tree, Mapping) and "params" in tree and isinstance(tree["params"], Mapping)


def _split_checkpoint(tree: Any) -> tuple[dict[str, Any], dict[tuple[str | None, str], Any]]:
  """``(params by path, state by (collection, path))``; state of a checkpoint without
  collections is keyed ``(None, path)`` and holds every leaf."""
  if _is_collections(tree):
    state = {(str(c), p): v for c, sub in tree.items() if c != "params"
             for p, v in _flat(sub).items()}
    return _flat(tree["params"]), state
  flat = _flat(tree)
  return flat, {(None, p): v for p, v in flat.items()}


def _read(checkpoint: Any) -> Any:
  if not isinstance(checkpoint, (str, os.PathLike)):
    return checkpoint
  path = Path(checkpoint)
  if not path.exists():
    raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
  if path.is_dir():
    import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
    with ocp.StandardCheckpointer() as checkpointer:
      return checkpointer.restore(path.resolve())
  from flax import serialization  # pylint: disable=import-outside-toplevel
  try:
    return serialization.msgpack_restore(path.read_bytes())
  except Exception as err:  # msgpack raises its own error types
    raise ValueError(f"checkpoint {str(path)!r} is neither an orbax checkpoint directory "
                     f"nor a flax.serialization msgpack file: {err}") from err


def load_params(checkpoint: Any) -> dict[str, Any]:
  """A checkpoint's parameters by path: an orbax directory, a msgpack file or a pytree
  (inside ``"params"`` where the checkpoint has collections).

  Raises:
    FileNotFoundError: no such file or directory.
    ValueError: a file that is neither an orbax checkpoint nor msgpack.
  """
  return _split_checkpoint(_read(checkpoint))[0]


def save_params(path: str | os.PathLike, params: Any) -> Path:
  """Saves ``params`` (a pytree, linen variables, NNX ``State`` or module) as an orbax
  directory, or as msgpack when ``path`` ends in ``.msgpack``; returns the path.

  An NNX module or ``State`` is saved as a dict of collections, as linen's
  variables: ``{"params": ..., "batch_stats": ..., ...}`` (each collection
  named by Flax, ``nnx.variablelib.variable_name_from_type``), without RNG
  streams. An Equinox module is saved as its arrays by path (a nested dict:
  fields that are not arrays are left out), which :func:`transfer` reads.
  """
  path = Path(path).resolve()
  if any(class_path(c).startswith("flax.nnx.") for c in type(params).__mro__):
    params = _nnx_collections(params)
  elif any(class_path(c).startswith("equinox.") for c in type(params).__mro__):
    params = _nested(_flat(params))  # its arrays by path (fields that are not arrays dropped)
  if path.suffix == ".msgpack":
    from flax import serialization  # pylint: disable=import-outside-toplevel
    path.write_bytes(serialization.msgpack_serialize(jax.device_get(params)))
  else:
    import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
    with ocp.StandardCheckpointer() as checkpointer:
      checkpointer.save(path, params)
  return path


def _nested(flat: Mapping[str, Any]) -> dict[str, Any]:
  """``{"a/b": x}`` as ``{"a": {"b": x}}`` (what :func:`_flat` reads back)."""
  out: dict[str, Any] = {}
  for path, leaf in flat.items():
    *parents, name = path.split("/")
    node = out
    for part in parents:
      node = node.setdefault(part, {})
    node[name] = leaf
  return out


def _nnx_collections(obj: Any) -> dict[str, Any]:
  """An NNX module's (or State's) variables as ``{collection: pure dict}``, RNG streams left
  out."""
  from flax import nnx  # pylint: disable=import-outside-toplevel
  from jaxinit.rules.targets import _nnx_collection  # pylint: disable=import-outside-toplevel
  state = nnx.state(obj) if isinstance(obj, nnx.Module) else obj
  state = state.filter(nnx.Not(nnx.RngState))
  types: dict[str, set[type]] = {"params": set()}
  for _, var in nnx.to_flat_state(state):
    types.setdefault(_nnx_collection(type(var)), set()).add(type(var))
  return {name: nnx.to_pure_dict(state.filter(*kinds)) if kinds else {}
          for name, kinds in types.items()}


@dataclasses.dataclass(frozen=True)
class CollectionReport:
  """What :func:`transfer` did to one collection of non-parameter state, by path.

  Attributes:
    restored: taken from the checkpoint.
    initialized: given the value their module's constructor gives (the model
      had only shapes, and the checkpoint had nothing that fits).
    reshaped: ``(path, checkpoint shape, model shape)``: not restored.
    kept: the model's own values.
    dropped: in the checkpoint's collection but not in the model.
  """
  restored: tuple[str, ...] = ()
  initialized: tuple[str, ...] = ()
  reshaped: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = ()
  kept: tuple[str, ...] = ()
  dropped: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class TransferReport:
  """What :func:`transfer` did, by path.

  Attributes:
    restored: taken from the checkpoint.
    initialized: drawn by the rules (new, or their shape changed).
    reshaped: ``(path, checkpoint shape, model shape)`` of the shape-changed ones.
    kept: new parameters no rule matched; they keep the model's own values.
    dropped: in the checkpoint but not in the model.
    collections: ``{collection: CollectionReport}`` for the state that is not
      a parameter (``"batch_stats"``, ``"cache"``, ``"rng"``...).
  """
  restored: tuple[str, ...]
  initialized: tuple[str, ...]
  reshaped: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]
  kept: tuple[str, ...]
  dropped: tuple[str, ...]
  label_tree: Callable[[Mapping[str, str]], Any] = dataclasses.field(
      default=lambda names: names, repr=False, compare=False)
  collections: Mapping[str, CollectionReport] = dataclasses.field(default_factory=dict,
                                                                  hash=False)

  def labels(self, restored: str = "restored", initialized: str = "initialized") -> Any:
    """Labels shaped as the model's parameters, for ``optax.multi_transform``
    (parameters kept from the model count as initialized)."""
    names = {p: restored for p in self.restored}
    names.update({p: initialized for p in self.initialized + self.kept})
    return self.label_tree(names)

  def __str__(self) -> str:
    lines = [f"restored ({len(self.restored)}): {', '.join(self.restored)}",
             f"initialized ({len(self.initialized)}): {', '.join(self.initialized)}"]
    lines += [f"  {p}: checkpoint {a} -> model {b}" for p, a, b in self.reshaped]
    if self.kept:
      lines.append(f"kept from the model ({len(self.kept)}): {', '.join(self.kept)}")
    lines.append(f"dropped ({len(self.dropped)}): {', '.join(self.dropped)}")
    for name, c in self.collections.items():
      parts = [f"{what} ({len(paths)}): {', '.join(paths)}"
               for what, paths in (("restored", c.restored), ("initialized", c.initialized),
                                   ("kept", c.kept), ("dropped", c.dropped)) if paths]
      parts += [f"{p}: checkpoint {a} -> model {b} (not restored)" for p, a, b in c.reshaped]
      lines.append(f"{name}: " + "; ".join(parts))
    return "\n".join(lines)


def transfer(target: Any, checkpoint: Any, rules: Any, key: Any, *inputs: Any,
             strict: bool = False, **options: Any) -> tuple[Any, TransferReport]:
  """Restores what matches ``checkpoint`` by path and shape; the rules draw the rest.

  Args:
    target: as :func:`jaxinit.initialize` (an NNX module, concrete or from
      ``nnx.eval_shape``; a linen module with sample ``inputs``; linen
      variables; an Equinox module; a pytree).
    checkpoint: an orbax checkpoint directory, a ``flax.serialization``
      msgpack file, or a pytree of arrays.
    rules: the rules for the new and shape-changed parameters (rules never
      touch restored ones).
    key: the rules' key.
    *inputs: sample inputs of a linen module.
    strict: raise when a rule matches nothing.
    **options: ``mesh``, ``logical_axis_rules``, ``stack_axes``,
      ``init_kwargs``, ``module``, ``out_shardings`` as for ``initialize``.

  Returns:
    ``(model, report)``; ``report.collections`` for the non-parameter state.

  Raises:
    ValueError: a parameter whose shape differs from the checkpoint's and
      that no rule serves (the message names each path with both shapes); a
      new parameter with only a shape and no rule; state with only a shape
      that neither the checkpoint nor a known constructor gives a value.
    FileNotFoundError: no such checkpoint.

  Examples:
    >>> import jax, jax.numpy as jnp, jaxinit
    >>> pretrained = {"body": {"kernel": jnp.ones((4, 4))}, "head": {"kernel": jnp.ones((4, 10))}}
    >>> model = {"body": {"kernel": jnp.zeros((4, 4))}, "head": {"kernel": jnp.zeros((4, 3))}}
    >>> new, report = transfer(model, pretrained, [("head/*", jaxinit.zeros)], 0)
    >>> print(report)
    restored (1): body/kernel
    initialized (1): head/kernel
      head/kernel: checkpoint (4, 10) -> model (4, 3)
    dropped (0): 
    >>> float(new["body"]["kernel"].sum()), new["head"]["kernel"].shape
    (16.0, (4, 3))
  """
  out_shardings = options.pop("out_shardings", None)
  rule_set = as_rule_set(rules)
  key = as_key(key)
  params, checkpoint_state = _split_checkpoint(_read(checkpoint))
  adapted = adapt_target(target, key=key, inputs=inputs, **options)
  restored: dict[str, Any] = {}
  fresh, reshaped = [], []
  for site in adapted.sites:
    value = params.get(site.path)
    if value is None:
      fresh.append(site)
    elif tuple(value.shape) != site.shape:
      fresh.append(site)
      reshaped.append((site.path, tuple(value.shape), site.shape))
    else:
      restored[site.path] = value
  sub = Target(adapted.kind, fresh, adapted.write, adapted.label_tree)
  plan = _make_plan(sub, rule_set)
  _check_unused(plan, strict, stacklevel=3)
  drawn = {a.path for a in plan.assignments}
  bad = [f"{p}: checkpoint {a} vs model {b}" for p, a, b in reshaped if p not in drawn]
  if bad:
    raise ValueError("the checkpoint's shapes disagree with the model's and no rule "
                     "initializes these parameters: " + "; ".join(bad))
  kept = [s.path for s in fresh if s.path not in drawn]
  empty = [s.path for s in fresh if s.path not in drawn and not s.has_value]
  if empty and adapted.program is None:
    raise ValueError(f"new parameters with only shapes and no rule: {empty}; add rules "
                     f"or a default")
  sites = {s.path: s for s in adapted.sites}
  placed = {p: _place(v, sites[p]) for p, v in restored.items()}
  state, collections, used = _transfer_state(adapted, checkpoint_state, key)
  if adapted.program is not None:  # linen: the module's init for the rest
    model = _replace_params(adapted.program(plan.assignments, _traced_draw), placed, state)
  else:
    from jaxinit.rules.api import _out_sharding  # pylint: disable=import-outside-toplevel
    values = {a.path: _draw_assignment(key, a, _out_sharding(a.sharding, a.path, out_shardings))
              for a in plan.assignments}
    model = adapted.write({**placed, **values}, state)
  untagged_state = {p for c, p in used if c is None}
  report = TransferReport(tuple(restored), tuple(a.path for a in plan.assignments),
                          tuple(reshaped), tuple(kept),
                          tuple(sorted(set(params) - set(sites) - untagged_state)),
                          adapted.label_tree, collections)
  return model, report


def _transfer_state(adapted: Target, checkpoint: Mapping[tuple[str | None, str], Any],
                    key: jax.Array) -> tuple[dict[tuple[str, str], Any],
                                             dict[str, CollectionReport], set[Any]]:
  """The values of the target's non-parameter state: restored where the checkpoint has the
  same collection (or, untagged, the same path) and shape; the constructors' values for the
  rest that has only shapes. Returns ``(values, reports, checkpoint keys used)``."""
  from jaxinit.rules.api import state_values  # pylint: disable=import-outside-toplevel
  values: dict[tuple[str, str], Any] = {}
  found: dict[str, dict[str, list[Any]]] = {}
  used: set[Any] = set()
  for s in adapted.state:
    book = found.setdefault(s.collection, {"restored": [], "reshaped": [], "kept": []})
    hit = None if s.collection == "rng" else next(
        (k for k in ((s.collection, s.path), (None, s.path)) if k in checkpoint), None)
    if hit is not None:
      used.add(hit)
      value = checkpoint[hit]
      if tuple(value.shape) == s.shape:
        values[(s.collection, s.path)] = jax.numpy.asarray(value, s.dtype)
        book["restored"].append(s.path)
        continue
      book["reshaped"].append((s.path, tuple(value.shape), s.shape))
    if s.has_value:
      book["kept"].append(s.path)
  initialized = state_values(adapted, key, skip=set(values))
  values.update(initialized)
  reports = {}
  for name, book in found.items():
    dropped = tuple(sorted(p for c, p in checkpoint if c == name and (c, p) not in used))
    reports[name] = CollectionReport(
        tuple(book["restored"]), tuple(p for c, p in initialized if c == name),
        tuple(book["reshaped"]), tuple(book["kept"]), dropped)
  for name in sorted({c for c, _ in checkpoint if c is not None} - set(found)):
    reports[name] = CollectionReport(
        dropped=tuple(sorted(p for c, p in checkpoint if c == name)))
  return values, reports, used


def _place(value: Any, site: Any) -> jax.Array:
  """A restored array in the parameter's dtype and sharding."""
  value = jax.numpy.asarray(value, site.dtype)
  return jax.device_put(value, site.sharding) if site.sharding is not None else value
