"""Every layer's output during a forward pass, without editing the model.

The coordinate check's one need from a model: ``forward(params, x) -> (y,
{layer: activation})``, traceable (it runs inside ``jit``, ``vmap`` and
``grad``). This module is the only place that knows how to get it; a general
"capture from any model" facility can replace it.

* Flax NNX: ``nnx.capture(fn, nnx.Intermediate, method_outputs=nnx.Intermediate)``
  sows the output of every module's ``__call__`` (and other public
  methods); layers are named by their module path (``"blocks/0/mlp"``).
* Flax linen: ``nn.intercept_methods`` records the output of every
  module's ``__call__``, named by the module's path.

A layer called several times gets ``name[i]`` for its i-th call; the whole
model's output is ``"output"``. Only array outputs are recorded (for a tuple
output, its first array).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

__all__ = ["nnx_forward", "linen_forward", "OUTPUT"]

OUTPUT = "output"


def _first_array(value: Any) -> Any:
  if isinstance(value, jax.Array) or hasattr(value, "shape") and hasattr(value, "dtype"):
    return value
  if isinstance(value, (tuple, list)):
    for v in value:
      found = _first_array(v)
      if found is not None:
        return found
  return None


def _add(found: dict[str, Any], name: str, values: tuple[Any, ...]) -> None:
  arrays = [a for a in (_first_array(v) for v in values) if a is not None]
  for i, a in enumerate(arrays):
    found[name if len(arrays) == 1 else f"{name}[{i}]"] = a


def nnx_forward(graphdef: Any, apply: Callable[..., Any] | None = None
                ) -> Callable[..., tuple[Any, dict[str, Any]]]:
  """``forward(states, *args) -> (y, {layer: output})`` for an NNX model split as
  ``graphdef, *states = nnx.split(model, ...)`` (``states``: a tuple of them).

  Args:
    graphdef: the model's graph definition.
    apply: ``apply(model, *args) -> y`` (default: ``model(*args)``).
  """
  from flax import nnx  # pylint: disable=import-outside-toplevel
  call = apply if apply is not None else (lambda model, *args: model(*args))
  traced = nnx.capture(call, nnx.Intermediate, method_outputs=nnx.Intermediate)

  def forward(states: tuple[Any, ...], *args: Any) -> tuple[Any, dict[str, Any]]:
    model = nnx.merge(graphdef, *states)
    y, inter = traced(model, *args)
    found: dict[str, Any] = {}
    for path, value in nnx.to_flat_state(inter):
      names = [str(p) for p in path]
      method = names[-1]
      module = "/".join(names[:-1])
      name = (module or OUTPUT) if method == "__call__" else f"{module}:{method}"
      _add(found, name, tuple(value.get_value()))
    return y, found

  return forward


def linen_forward(module: Any, method: Any = None
                  ) -> Callable[..., tuple[Any, dict[str, Any]]]:
  """``forward(variables, *args) -> (y, {layer: output})`` for a linen module.

  Args:
    module: the linen module.
    method: the method to apply (default ``__call__``).
  """
  from flax import linen as nn  # pylint: disable=import-outside-toplevel

  def forward(variables: Any, *args: Any) -> tuple[Any, dict[str, Any]]:
    calls: dict[str, list[Any]] = {}

    def record(next_fun, fargs, kwargs, context):
      out = next_fun(*fargs, **kwargs)
      if context.method_name == "__call__":
        name = "/".join(str(p) for p in context.module.path) or OUTPUT
        calls.setdefault(name, []).append(out)
      return out

    with nn.intercept_methods(record):
      y = module.apply(variables, *args, method=method)
    found: dict[str, Any] = {}
    for name, outs in calls.items():
      _add(found, name, tuple(outs))
    return y, found

  return forward
