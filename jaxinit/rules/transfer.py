"""Transfer learning: a pretrained checkpoint into a model whose head or some layers differ.

``transfer(target, checkpoint, rules, key)`` restores every parameter whose
path and shape match the checkpoint, initializes the new and the
shape-changed ones by the rules (new layers initialized differently from the
pretrained ones), and returns the model with a :class:`TransferReport`
listing restored / initialized / dropped paths. ``report.labels()`` tags
each parameter ``"restored"`` or ``"initialized"`` for
``optax.multi_transform`` (freeze the restored layers, train the new ones,
or give them their own learning rates).

Checkpoints are real files, read by the libraries made for them: an orbax
checkpoint directory (``orbax.checkpoint.StandardCheckpointer``) or a
``flax.serialization`` msgpack file; an in-memory pytree works too. Paths
are the ``"/"``-joined keys (a linen ``{"params": ...}`` dict is read inside
``"params"``; NNX ``State`` leaves saved by orbax end in ``"value"``, which
is dropped).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxinit.rules.api import _check_unused, _draw_assignment, _make_plan, _traced_draw
from jaxinit.rules.keys import as_key
from jaxinit.rules.patterns import as_rule_set, class_path
from jaxinit.rules.targets import Target, _replace_params, adapt_target, path_of

__all__ = ["TransferReport", "load_params", "save_params", "transfer"]


def _flatten_checkpoint(tree: Any) -> dict[str, np.ndarray]:
  if isinstance(tree, Mapping) and "params" in tree and isinstance(tree["params"], Mapping):
    tree = tree["params"]
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


def load_params(checkpoint: Any) -> dict[str, Any]:
  """A checkpoint's parameters by path: an orbax directory, a msgpack file or a pytree.

  Raises:
    FileNotFoundError: no such file or directory.
    ValueError: a file that is neither an orbax checkpoint nor msgpack.
  """
  if isinstance(checkpoint, (str, os.PathLike)):
    path = Path(checkpoint)
    if not path.exists():
      raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    if path.is_dir():
      import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
      with ocp.StandardCheckpointer() as checkpointer:
        tree = checkpointer.restore(path.resolve())
    else:
      from flax import serialization  # pylint: disable=import-outside-toplevel
      try:
        tree = serialization.msgpack_restore(path.read_bytes())
      except Exception as err:  # msgpack raises its own error types
        raise ValueError(f"checkpoint {str(path)!r} is neither an orbax checkpoint directory "
                         f"nor a flax.serialization msgpack file: {err}") from err
    return _flatten_checkpoint(tree)
  return _flatten_checkpoint(checkpoint)


def save_params(path: str | os.PathLike, params: Any) -> Path:
  """Saves ``params`` (a pytree, NNX ``State`` or module) as an orbax directory, or as
  msgpack when ``path`` ends in ``.msgpack``; returns the path."""
  path = Path(path).resolve()
  if any(class_path(c).startswith("flax.nnx.") for c in type(params).__mro__):
    from flax import nnx  # pylint: disable=import-outside-toplevel
    params = nnx.to_pure_dict(nnx.state(params, nnx.Param) if isinstance(params, nnx.Module)
                              else params)
  if path.suffix == ".msgpack":
    from flax import serialization  # pylint: disable=import-outside-toplevel
    path.write_bytes(serialization.msgpack_serialize(jax.device_get(params)))
  else:
    import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
    with ocp.StandardCheckpointer() as checkpointer:
      checkpointer.save(path, params)
  return path


@dataclasses.dataclass(frozen=True)
class TransferReport:
  """What :func:`transfer` did, by path.

  Attributes:
    restored: taken from the checkpoint.
    initialized: drawn by the rules (new, or their shape changed).
    reshaped: ``(path, checkpoint shape, model shape)`` of the shape-changed ones.
    kept: new parameters no rule matched; they keep the model's own values.
    dropped: in the checkpoint but not in the model.
  """
  restored: tuple[str, ...]
  initialized: tuple[str, ...]
  reshaped: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]
  kept: tuple[str, ...]
  dropped: tuple[str, ...]
  label_tree: Callable[[Mapping[str, str]], Any] = dataclasses.field(
      default=lambda names: names, repr=False, compare=False)

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
    ``(model, report)``.

  Raises:
    ValueError: a parameter whose shape differs from the checkpoint's and
      that no rule serves (the message names each path with both shapes); a
      new parameter with only a shape and no rule.

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
  params = load_params(checkpoint)
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
    raise ValueError(f"new parameters with only shapes and no rule: {empty[:8]}; add rules "
                     f"or a default")
  sites = {s.path: s for s in adapted.sites}
  placed = {p: _place(v, sites[p]) for p, v in restored.items()}
  if adapted.program is not None:  # linen: the module's init for the rest
    model = _replace_params(adapted.program(plan.assignments, _traced_draw), placed)
  else:
    from jaxinit.rules.api import _out_sharding  # pylint: disable=import-outside-toplevel
    values = {a.path: _draw_assignment(key, a, _out_sharding(a.sharding, a.path, out_shardings))
              for a in plan.assignments}
    model = adapted.write({**placed, **values})
  report = TransferReport(tuple(restored), tuple(a.path for a in plan.assignments),
                          tuple(reshaped), tuple(kept),
                          tuple(sorted(set(params) - set(sites))), adapted.label_tree)
  return model, report


def _place(value: Any, site: Any) -> jax.Array:
  """A restored array in the parameter's dtype and sharding."""
  value = jax.numpy.asarray(value, site.dtype)
  return jax.device_put(value, site.sharding) if site.sharding is not None else value
