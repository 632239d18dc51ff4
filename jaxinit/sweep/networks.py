"""The model registry: what a grid's ``model`` axis names, and the keyword arguments it gets.

A model value is a name of :data:`MODELS` (the built-in networks), an import
path ``"package.module:factory"`` (:mod:`jaxinit.sweep.refs`), or from Python
the factory itself; a table adds keyword arguments
(``{name = "resmlp", branch_scale = 0.5}``). The factory is called once per
shape group with the keyword arguments its signature accepts among

* the dataset's ``in_features`` (features of one flattened input),
  ``in_shape`` (one input's shape) and ``out_features`` (classes or targets);
* the static axes ``width``, ``depth``, ``activation`` and ``use_bias``;
* the grid's own axes for it (any other key of ``[grid]`` is a keyword
  argument of the model factory: ``channels = [16, 32]``) and the table's
  options;

plus ``rngs`` or ``key`` (:func:`jaxinit.sweep.kinds.construct`); it returns
any kind of model (:mod:`jaxinit.sweep.kinds`). An axis set in the grid that
the factory does not take is an error, not silently ignored.

The built-in networks are ordinary entries, NNX factories (each a few lines:
keep them so), with checks of their options and their inputs' layout.

Examples:
  >>> e = entry("resmlp")
  >>> sorted(accepted(e, ["width", "branch_scale", "channels"]))
  ['branch_scale', 'width']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from jaxinit import checks
from jaxinit.sweep import activations, refs
from jaxinit.sweep.signatures import parameters, required

Check = Callable[[str, Any], Any]

OFFERED_AXES: tuple[str, ...] = ("width", "depth", "activation", "use_bias")
"""Static axes offered to every model factory (each gets those it accepts)."""

DATA_KWARGS: tuple[str, ...] = ("in_features", "in_shape", "out_features")
"""What a factory may take from the dataset."""


def _identity(x: np.ndarray) -> np.ndarray:
  return x


def _one_channel(x: np.ndarray) -> np.ndarray:
  return np.asarray(x)[..., None]


# The built-in networks (jaxinit.models), as NNX factories.

# A transformed activation ("tat:leaky_relu") is solved for the plain network of the
# model's depth (jaxinit.sweep.activations).

def _mlp(*, in_features: int, out_features: int, width: int, depth: int, activation: Any,
         use_bias: bool, rngs: Any) -> Any:
  import jaxinit.models as models  # pylint: disable=import-outside-toplevel
  return models.MLP(in_features, out_features, width, depth,
                    activation=activations.resolve(activation, depth), use_bias=use_bias,
                    rngs=rngs)


def _resmlp(*, in_features: int, out_features: int, width: int, depth: int, activation: str,
            use_bias: bool, branch_scale: float = 1.0, rngs: Any) -> Any:
  import jaxinit.models as models  # pylint: disable=import-outside-toplevel
  if activations.is_transformed(activation):
    raise ValueError(f"activation {activation!r}: transformed activations are solved for plain "
                     f"networks (mlp, cnn1d); a residual network has another C-map")
  return models.ResMLP(in_features, out_features, width, depth, activation=activation,
                       use_bias=use_bias, branch_scale=branch_scale, rngs=rngs)


def _cnn1d(*, out_features: int, width: int, depth: int, activation: Any, use_bias: bool,
           kernel_size: int = 5, rngs: Any) -> Any:
  # A signal of any length: the convolutions slide, the readout pools.
  import jaxinit.models as models  # pylint: disable=import-outside-toplevel
  return models.CNN1D(1, out_features, width, depth, kernel_size=kernel_size,
                      activation=activations.resolve(activation, depth), use_bias=use_bias,
                      rngs=rngs)


@dataclasses.dataclass(frozen=True)
class ModelEntry:
  """One model a grid can name.

  Attributes:
    factory: builds the model (see the module docstring).
    checks: checks of some keyword arguments ``check(where, value) -> value``;
      the others are passed as given (plain data) and the factory judges them.
    inputs: the dataset's inputs as the model takes them.
  """
  factory: Callable[..., Any]
  checks: Mapping[str, Check] = dataclasses.field(default_factory=dict)
  inputs: Callable[[np.ndarray], np.ndarray] = _identity


MODELS: dict[str, ModelEntry] = {
    "mlp": ModelEntry(_mlp),
    "resmlp": ModelEntry(_resmlp, {"branch_scale": checks.real}),
    "cnn1d": ModelEntry(_cnn1d, {"kernel_size": checks.positive_int}, _one_channel),
}
"""The built-in networks by name (``cnn1d``'s inputs become 1-channel signals)."""


def entry(name: str, paths: Sequence[str] = ()) -> ModelEntry:
  """The entry of a canonical model name: built-in, or a factory by reference."""
  if name in MODELS:
    return MODELS[name]
  factory = refs.resolve(name, "model", paths)
  if not callable(factory):
    raise ValueError(f"model {name!r} is {type(factory).__name__}, not a model factory")
  return ModelEntry(factory)


def accepted(model: ModelEntry, names: Iterable[str]) -> list[str]:
  """Those of ``names`` that the entry's factory takes as keyword arguments."""
  taken, var = parameters(model.factory)
  return [n for n in names if var or n in taken]


def missing(model: ModelEntry, offered: Iterable[str]) -> list[str]:
  """The parameters ``model``'s factory requires (no default) that ``offered`` lacks.

  Examples:
    >>> def cnn(*, in_features, channels, rngs): ...
    >>> missing(ModelEntry(cnn), DATA_KWARGS + OFFERED_AXES)
    ['channels']
  """
  given = set(offered)
  return [name for name, keyword in required(model.factory).items()
          if not keyword or name not in given]


def check_offered(where: str, value: Any, grid_keys: Iterable[str], paths: Sequence[str] = ()
                  ) -> None:
  """Refuses a model value whose factory requires keyword arguments the sweep does not give.

  The sweep offers :data:`DATA_KWARGS`, :data:`OFFERED_AXES`, the grid's own keys
  (``grid_keys``: its model axes) and the value's table options (plus ``rngs`` / ``key``).

  Raises:
    ValueError: naming the factory, its missing parameters and what the sweep offers.
  """
  name, options = (value["name"], set(value) - {"name"}) if isinstance(value, Mapping) else (
      value, set())
  model = entry(name, paths)
  grid_keys = list(grid_keys)
  lacking = missing(model, [*DATA_KWARGS, *OFFERED_AXES, *grid_keys, *options])
  if lacking:
    positional = [n for n in lacking if not required(model.factory)[n]]
    if positional:
      raise ValueError(f"{where}: the factory {name} requires {', '.join(map(repr, positional))} "
                       f"as positional-only parameter(s), which the sweep cannot give: it "
                       f"calls factories with keyword arguments; make them keyword parameters "
                       f"(drop the '/')")
    raise ValueError(
        f"{where}: the factory {name} requires {', '.join(map(repr, lacking))}, which the "
        f"sweep does not give; it offers {', '.join(DATA_KWARGS)} (from the dataset), "
        f"{', '.join(OFFERED_AXES)} (static axes), the grid's keys for the model "
        f"({', '.join(grid_keys) or 'none set'}) and the model table's options "
        f"({', '.join(sorted(options)) or 'none set'}), plus rngs or key: set "
        f"{lacking[0]} = [...] under [grid], or {{name = \"{name}\", {lacking[0]} = ...}} as "
        f"the model, or give it a default")


def ignored_axes(name: str, paths: Sequence[str] = ()) -> tuple[str, ...]:
  """The :data:`OFFERED_AXES` model ``name``'s factory does not take: the grid's values
  of these axes say nothing about the model (its result rows leave them empty).

  Examples:
    >>> ignored_axes("cnn1d"), ignored_axes("mlp")
    ((), ())
  """
  model = entry(name, paths)
  return tuple(a for a in OFFERED_AXES if not accepted(model, [a]))


def check_kwarg(model: ModelEntry, where: str, key: str, value: Any) -> Any:
  """A keyword argument's value, canonical: its entry's check, else plain data."""
  if key in model.checks:
    return model.checks[key](where, value)
  from jaxinit.sweep.axes import plain  # pylint: disable=import-outside-toplevel
  return plain(value, where)


def check_model(where: str, value: Any, paths: Sequence[str] = ()) -> Any:
  """A grid's model value, canonical: a name, or ``{"name": ..., **options}``.

  Raises:
    TypeError, ValueError: naming ``where``: not a name, table or factory; an
      unknown name or an import path that does not resolve; an option the
      factory does not take, or one its check refuses.

  Examples:
    >>> check_model("[grid] model", {"name": "cnn1d", "kernel_size": 0})
    Traceback (most recent call last):
    ...
    ValueError: [grid] model: option 'kernel_size' of model 'cnn1d' must be a positive int, got 0
  """
  value, options = refs.named(value)
  if not isinstance(value, str):
    raise TypeError(f"{where} must be a model name ({', '.join(MODELS)}), an import path "
                    f"'package.module:factory', a factory, or a table with a 'name' key; "
                    f"got {value!r}")
  if value not in MODELS and not refs.is_reference(value):
    raise ValueError(f"{where}: unknown model {value!r}; built-in: {', '.join(MODELS)}, or "
                     f"an import path 'package.module:factory'"
                     f"{checks.did_you_mean(value, MODELS)}")
  try:
    model = entry(value, paths)
  except ValueError as err:
    raise ValueError(f"{where}: {err}") from None
  out = {}
  for key, option in options.items():
    if not accepted(model, [key]):
      taken = sorted(parameters(model.factory)[0] - {"rngs", "key"})
      raise ValueError(f"{where}: model {value!r} has no option {key!r}; it takes "
                       f"{', '.join(taken) or 'none'}{checks.did_you_mean(key, taken)}")
    out[key] = check_kwarg(model, f"{where}: option {key!r} of model {value!r}", key, option)
  return {"name": value, **out} if out else value


__all__ = ["DATA_KWARGS", "MODELS", "ModelEntry", "OFFERED_AXES", "accepted", "check_kwarg",
           "check_model", "check_offered", "entry", "ignored_axes", "missing"]
