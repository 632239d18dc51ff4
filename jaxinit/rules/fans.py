"""Module-aware fans: which axes of a layer's parameters are inputs, outputs and batch.

Flax and Equinox lay their kernels out differently (Flax ``(in, out)``,
Equinox ``(out, in)``), and several of Flax's own layers give
``variance_scaling`` the wrong fans: ``ConvLocal`` counts its output
positions as receptive field (its default init is ``positions`` times too
small), ``Einsum`` takes fan-in from the last-but-one kernel axis whatever
the equation, ``ConvTranspose(transpose_kernel=True)`` swaps fan-in and
fan-out. Here each built-in layer says, for each of its parameters, how many
inputs feed one output (``fan_in``) and how many outputs one input feeds
(``fan_out``), and how many leading axes stack independent layers
(``nnx.vmap`` / ``nn.scan`` over layers).

Counts, for a layer with ``in`` input and ``out`` output features, spatial
kernel ``k``, strides ``s``, ``g`` groups:

* Linear / Dense: ``fan_in = in``, ``fan_out = out``; LinearGeneral /
  DenseGeneral: products over the input and output feature axes (batch axes
  excluded); Einsum: the kernel axes the equation contracts against the
  input (fan-in), those it carries to the output only (fan-out); axes in
  input, kernel and output are batch.
* Conv: ``fan_in = in/g * prod(k)``, ``fan_out = out/g * prod(k) / prod(s)``
  (an input feeds ``prod(k / s)`` output positions on average).
* ConvTranspose, the adjoint: ``fan_in = in/g * prod(k) / prod(s)``,
  ``fan_out = out/g * prod(k)``, whatever the kernel's layout
  (``transpose_kernel``).
* ConvLocal (unshared weights): ``fan_in = in/g * prod(k)``, its window; the
  leading output-position axes of the kernel index independent weights.
* Embed / Embedding ``(num, features)``: ``fan_in = features``,
  ``fan_out = num``: the table as the output projection it is tied to
  (``attend``), so LeCun gives rows of unit norm, ``E|e|^2 = 1``.
* MultiHeadAttention: its q/k/v/out projections are LinearGeneral / Dense
  layers and count as above.
* Biases take their layer's weight fans (PyTorch's ``U(+-1/sqrt(fan_in))``
  bias is ``variance_scaling(1/3, "fan_in", "uniform")``); norm scales and
  biases (LayerNorm, RMSNorm, BatchNorm, GroupNorm) have ``fan_in = fan_out = 1``.

Your own modules declare fans with :func:`register_module` (or a method
``jaxinit_fans(self, name, shapes) -> Fans | None``).

A variance-scaling initializer with an elementwise sampler (normal,
truncated normal, uniform, Rademacher) and jax's default axes gets these fans
(:func:`with_fans`); one whose axes you set, or with a structured sampler
(orthogonal, delta, identity, sparse), keeps its own.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jaxinit import checks, samplers
from jaxinit.base import Initializer
from jaxinit.initializers import Scaled, VarianceScaling, variance_scaling

__all__ = ["Fans", "ModuleSpec", "register_module", "module_spec", "param_fans", "with_fans",
           "einsum_fans"]


@dataclasses.dataclass(frozen=True)
class Fans:
  """The fans of one layer's parameter and its number of leading stacked-layer axes.

  Attributes:
    fan_in: inputs per output (may be fractional: strided transposed convolutions).
    fan_out: outputs per input.
    stack: leading axes that index independent layers (each drawn alone).
    defined: False for a parameter with no fans of its own (a norm's scale
      or bias): only ``stack`` holds, and a fan-scaled initializer
      (:func:`scales_by_fans`) cannot serve it.
  """
  fan_in: float
  fan_out: float
  stack: int = 0
  defined: bool = True

  def __post_init__(self):
    object.__setattr__(self, "fan_in", checks.real("fan_in", self.fan_in, minimum=0.0))
    object.__setattr__(self, "fan_out", checks.real("fan_out", self.fan_out, minimum=0.0))
    object.__setattr__(self, "stack", checks.non_negative_int("stack", self.stack))
    object.__setattr__(self, "defined", checks.boolean("defined", self.defined))

  def fan(self, mode: str) -> float:
    """The denominator ``n`` a variance-scaling ``mode`` picks."""
    return {"fan_in": self.fan_in, "fan_out": self.fan_out,
            "fan_avg": (self.fan_in + self.fan_out) / 2,
            "fan_geo_avg": math.sqrt(self.fan_in * self.fan_out),
            "fan_max": max(self.fan_in, self.fan_out), "unit": 1.0}[mode]


FansFn = Callable[[Any, str, Mapping[str, tuple[int, ...]]], "Fans | None"]


@dataclasses.dataclass(frozen=True)
class ModuleSpec:
  """What jaxinit knows about a module class.

  Attributes:
    weights: paths (relative to the module) of its weights: what a rule
      naming the class alone serves.
    fans: ``fans(module, name, shapes) -> Fans | None`` for the parameter at
      relative path ``name``; ``shapes`` maps every parameter's relative path
      to its full (stacked) shape.
    state: ``((relative path glob, initializer), ...)``: the values its
      constructor gives its non-parameter state (BatchNorm's running mean 0
      and variance 1, an attention cache 0), used for a model built with
      ``nnx.eval_shape`` (or abstract linen collections), where that state has
      only a shape.
  """
  weights: tuple[str, ...]
  fans: FansFn | None = None
  state: tuple[tuple[str, Any], ...] = ()


_REGISTRY: dict[str, ModuleSpec] = {}
_DEFAULT_WEIGHTS = ("kernel", "embedding", "weight")


def register_module(cls: type | str, *, weights: Sequence[str] = _DEFAULT_WEIGHTS,
                    fans: FansFn | None = None,
                    state: Mapping[str, Any] | None = None) -> None:
  """Declares a module class's weights, fans and state (your own layers, or overrides).

  Args:
    cls: the class or its import path; subclasses inherit the entry.
    weights: relative paths of its weights (what ``OfModule(cls)`` matches).
    fans: ``fans(module, name, shapes) -> Fans | None``.
    state: ``{relative path glob: initializer}``: the values the module's
      constructor gives its non-parameter variables (``nnx.BatchStat``,
      ``nnx.Cache``, your own ``nnx.Variable`` types; linen collections other
      than ``params``), so ``jaxinit.initialize`` can build them for a model
      from ``nnx.eval_shape``. Each initializer is called as ``init(key,
      shape, dtype)`` at the variable's path key.

  Raises:
    TypeError: a ``state`` that is not a mapping of str globs to callables.

  Examples:
    >>> import jaxinit
    >>> from jaxinit.rules import Fans, register_module
    >>> class Bilinear:  # y_k = x^T W_k z with W: (in1, in2, out)
    ...   pass
    >>> register_module(Bilinear, weights=("w",),
    ...                 fans=lambda m, name, shapes: Fans(shapes["w"][0] * shapes["w"][1],
    ...                                                   shapes["w"][2]))
  """
  from jaxinit.rules.patterns import class_path  # pylint: disable=import-outside-toplevel
  key = cls if isinstance(cls, str) else class_path(cls)
  if isinstance(weights, str):
    weights = (weights,)
  if state is None:
    state = {}
  if not isinstance(state, Mapping) or not all(
      isinstance(g, str) and g and callable(i) for g, i in state.items()):
    raise TypeError(f"state must be a mapping of relative path globs (str) to initializers, "
                    f"got {state!r}")
  _REGISTRY[key] = ModuleSpec(tuple(weights), fans, tuple(state.items()))


def is_known(path: str) -> bool:
  """Whether ``path`` is the canonical import path of a registered module class."""
  return path in _REGISTRY


def module_spec(module: Any) -> ModuleSpec | None:
  """The registry entry for ``type(module)`` or its nearest registered base class."""
  from jaxinit.rules.patterns import class_path  # pylint: disable=import-outside-toplevel
  own = getattr(module, "jaxinit_fans", None)
  for cls in type(module).__mro__:
    spec = _REGISTRY.get(class_path(cls))
    if spec is not None:
      if callable(own):
        return ModuleSpec(spec.weights, lambda m, name, shapes: own(name, shapes), spec.state)
      return spec
  if callable(own):
    return ModuleSpec(_DEFAULT_WEIGHTS, lambda m, name, shapes: own(name, shapes))
  return None


def param_fans(module: Any, name: str, shapes: Mapping[str, tuple[int, ...]]) -> Fans | None:
  """The fans of ``module``'s parameter ``name``, or None where nothing is known.

  Raises:
    ValueError: a parameter's shape contradicts the module's configuration.
  """
  spec = module_spec(module)
  if spec is None or spec.fans is None:
    return None
  return spec.fans(module, name, shapes)


# ---------------------------------------------------------------------------
# Adapting an initializer to a parameter's fans.

_ELEMENTWISE = (samplers.Normal, samplers.TruncatedNormal, samplers.Uniform,
                samplers.Rademacher)
_DEFAULT_AXES = (-2, -1, (), 1)


def scales_by_fans(init: Initializer) -> bool:
  """Whether ``init`` takes its variance from the fans (:func:`with_fans` adapts it): a
  variance scaling by ``fan_in`` / ``fan_out`` / ... over an elementwise sampler with the
  default axes, possibly ``Scaled``."""
  while isinstance(init, Scaled):
    init = init.init
  return (isinstance(init, VarianceScaling) and init.mode != "unit"
          and isinstance(init.sampler, _ELEMENTWISE)
          and (init.in_axis, init.out_axis, init.batch_axis, init.feature_group_count)
          == _DEFAULT_AXES)


def with_fans(init: Initializer, fans: Fans | None) -> Initializer:
  """``init`` with its variance computed from ``fans`` instead of the shape.

  A :class:`~jaxinit.VarianceScaling` over an elementwise sampler with the
  default axes (``in_axis=-2, out_axis=-1``, no batch axes, one group)
  becomes ``variance_scaling(scale / n, "unit", sampler)`` with ``n =
  fans.fan(mode)``: the same draws as the original on a shape whose fans
  were those (the variance is rounded once, from ``scale / n`` in float64).
  ``Scaled`` wrappers are looked through; anything else is returned as is.

  Raises:
    ValueError: the fans give ``n = 0``.
  """
  if fans is None:
    return init
  if isinstance(init, Scaled):
    inner = with_fans(init.init, fans)
    return init if inner is init else Scaled(inner, init.factor)
  if not isinstance(init, VarianceScaling) or init.mode == "unit":
    return init
  if not isinstance(init.sampler, _ELEMENTWISE):
    return init
  if (init.in_axis, init.out_axis, init.batch_axis, init.feature_group_count) != _DEFAULT_AXES:
    return init
  n = fans.fan(init.mode)
  if n == 0:
    raise ValueError(f"mode={init.mode!r} gives a zero fan ({fans}): a zero-size layer "
                     f"has no variance")
  return variance_scaling(init.scale / n, "unit", init.sampler)


# ---------------------------------------------------------------------------
# Built-in layers.

def _stack(shape: tuple[int, ...], ndim: int, module: Any, name: str) -> int:
  extra = len(shape) - ndim
  if extra < 0:
    raise ValueError(f"{type(module).__name__}.{name} has shape {shape}; the layer's "
                     f"configuration implies rank {ndim}")
  return extra


def _prod(xs: Any) -> int:
  return math.prod(int(x) for x in xs)


def _tuple(x: Any) -> tuple[int, ...]:
  return tuple(x) if isinstance(x, Sequence) else (x,)


def _derived(weight: Fans, shape: tuple[int, ...], ndim: int, module: Any,
             name: str) -> Fans:
  """A bias: its layer's weight fans, its own stack count."""
  return Fans(weight.fan_in, weight.fan_out, _stack(shape, ndim, module, name))


def _unit(shape: tuple[int, ...], ndim: int, module: Any, name: str) -> Fans:
  """A norm's scale or bias: no fans of its own, only its stack count."""
  return Fans(1, 1, _stack(shape, ndim, module, name), defined=False)


def _dense_like(in_size: int, out_size: int, kernel: str, bias_ndim: Callable[[], int],
                kernel_ndim: int) -> FansFn:
  def fans(module: Any, name: str, shapes: Mapping[str, tuple[int, ...]]) -> Fans | None:
    weight = Fans(in_size, out_size, _stack(shapes[kernel], kernel_ndim, module, kernel))
    if name == kernel:
      return weight
    if name == "bias":
      return _derived(weight, shapes[name], bias_ndim(), module, name)
    return None
  return fans


def _nnx_linear(m, name, shapes):
  return _dense_like(m.in_features, m.out_features, "kernel", lambda: 1, 2)(m, name, shapes)


def _linen_dense(m, name, shapes):
  kernel = shapes["kernel"]
  return _dense_like(kernel[-2], m.features, "kernel", lambda: 1, 2)(m, name, shapes)


def _general(module, name, shapes, n_batch, n_in, n_out):
  kernel = shapes["kernel"]
  stack = _stack(kernel, n_batch + n_in + n_out, module, "kernel")
  layer = kernel[stack:]
  weight = Fans(_prod(layer[n_batch:n_batch + n_in]), _prod(layer[n_batch + n_in:]), stack)
  if name == "kernel":
    return weight
  if name == "bias":
    return _derived(weight, shapes[name], n_batch + n_out, module, name)
  return None


def _nnx_linear_general(m, name, shapes):
  return _general(m, name, shapes, len(m.batch_axis), len(_tuple(m.in_features)),
                  len(_tuple(m.out_features)))


def _linen_dense_general(m, name, shapes):
  return _general(m, name, shapes, len(_tuple(m.batch_dims)), len(_tuple(m.axis)),
                  len(_tuple(m.features)))


def einsum_fans(equation: str, kernel_shape: Sequence[int]) -> tuple[int, int]:
  """``(fan_in, fan_out)`` of the kernel of ``einsum(equation, x, kernel)``.

  Kernel axes whose label appears in the input but not the output are
  contracted (fan-in), in the output but not the input carried (fan-out),
  in both batch (neither); a label in the kernel alone is summed (fan-in).

  Examples:
    >>> einsum_fans("bti,ihd->bthd", (8, 4, 16))  # Flax's default takes fan_in 4 * 8
    (8, 64)
  """
  equation = equation.replace(" ", "")
  try:
    operands, output = equation.split("->")
    lhs, rhs = operands.split(",")
  except ValueError:
    raise ValueError(f"an Einsum equation 'input,kernel->output' is expected, "
                     f"got {equation!r}") from None
  lhs, rhs, output = (s.replace("...", "") for s in (lhs, rhs, output))
  if len(rhs) != len(kernel_shape):
    raise ValueError(f"Einsum equation {equation!r} names {len(rhs)} kernel axes, the "
                     f"kernel has shape {tuple(kernel_shape)}")
  fan_in = fan_out = 1
  for label, size in zip(rhs, kernel_shape):
    if label in lhs and label in output:
      continue
    if label in output:
      fan_out *= int(size)
    else:
      fan_in *= int(size)
  return fan_in, fan_out


def _einsum(m, name, shapes, equation, kernel_ndim):
  kernel = shapes["kernel"]
  stack = _stack(kernel, kernel_ndim, m, "kernel")
  weight = Fans(*einsum_fans(equation, kernel[stack:]), stack)
  if name == "kernel":
    return weight
  if name == "bias":
    return Fans(weight.fan_in, weight.fan_out, stack)
  return None


def _nnx_einsum(m, name, shapes):
  return _einsum(m, name, shapes, m.einsum_str, len(m.kernel_shape))


def _linen_einsum(m, name, shapes):
  return _einsum(m, name, shapes, m.einsum_str, len(m.shape))


def _conv(m, name, shapes, *, kernel_size, in_features, out_features, groups, strides,
          transpose, kernel_ndim, bias_ndim):
  kernel = shapes["kernel" if "kernel" in shapes else "weight"]
  k = _prod(kernel_size)
  s = _prod(strides) if strides is not None else 1
  in_per_group, out_per_group = in_features / groups, out_features / groups
  if transpose:
    fans = (in_per_group * k / s, out_per_group * k)
  else:
    fans = (in_per_group * k, out_per_group * k / s)
  weight_name = "kernel" if "kernel" in shapes else "weight"
  weight = Fans(*fans, _stack(kernel, kernel_ndim, m, weight_name))
  if name == weight_name:
    return weight
  if name == "bias":
    return _derived(weight, shapes[name], bias_ndim, m, name)
  return None


def _spatial(value: Any, n: int) -> tuple[int, ...]:
  if value is None:
    return (1,) * n
  return tuple(value) if isinstance(value, Sequence) else (value,) * n


def _nnx_conv(m, name, shapes):
  n = len(m.kernel_size)
  return _conv(m, name, shapes, kernel_size=m.kernel_size, in_features=m.in_features,
               out_features=m.out_features, groups=m.feature_group_count,
               strides=_spatial(m.strides, n), transpose=False, kernel_ndim=n + 2, bias_ndim=1)


def _nnx_conv_transpose(m, name, shapes):
  n = len(m.kernel_size)
  return _conv(m, name, shapes, kernel_size=m.kernel_size, in_features=m.in_features,
               out_features=m.out_features, groups=1, strides=_spatial(m.strides, n),
               transpose=True, kernel_ndim=n + 2, bias_ndim=1)


def _linen_conv(m, name, shapes):
  kernel_size = _tuple(m.kernel_size)
  n = len(kernel_size)
  kernel = shapes["kernel"]
  groups = m.feature_group_count
  return _conv(m, name, shapes, kernel_size=kernel_size, in_features=kernel[-2] * groups,
               out_features=kernel[-1], groups=groups, strides=_spatial(m.strides, n),
               transpose=False, kernel_ndim=n + 2, bias_ndim=1)


def _linen_conv_transpose(m, name, shapes):
  kernel_size = _tuple(m.kernel_size)
  n = len(kernel_size)
  kernel = shapes["kernel"]
  in_features, out_features = (kernel[-1], kernel[-2]) if m.transpose_kernel else (
      kernel[-2], kernel[-1])
  return _conv(m, name, shapes, kernel_size=kernel_size, in_features=in_features,
               out_features=out_features, groups=1, strides=_spatial(m.strides, n),
               transpose=True, kernel_ndim=n + 2, bias_ndim=1)


def _linen_conv_local(m, name, shapes):
  # kernel: output positions + (prod(kernel_size) * in / groups, out); bias: positions + (out,)
  n = len(_tuple(m.kernel_size))
  kernel = shapes["kernel"]
  stack = _stack(kernel, n + 2, m, "kernel")
  weight = Fans(kernel[-2], kernel[-1] * _prod(_tuple(m.kernel_size)) / m.feature_group_count,
                stack)
  if name == "kernel":
    return weight
  if name == "bias":
    return _derived(weight, shapes[name], n + 1, m, name)
  return None


def _embed(name_of_table: str):
  def fans(m, name, shapes):
    if name != name_of_table:
      return None
    table = shapes[name]
    stack = _stack(table, 2, m, name)
    return Fans(table[-1], table[-2], stack)
  return fans


def _norm(ndim_of: Callable[[Any, str, tuple[int, ...]], int]) -> FansFn:
  def fans(m, name, shapes):
    return _unit(shapes[name], ndim_of(m, name, shapes[name]), m, name)
  return fans


def _eqx_linear(m, name, shapes):
  weight = shapes["weight"]
  in_size = 1 if m.in_features == "scalar" else m.in_features
  out_size = 1 if m.out_features == "scalar" else m.out_features
  w = Fans(in_size, out_size, _stack(weight, 2, m, "weight"))
  if name == "weight":
    return w
  if name == "bias":
    return _derived(w, shapes[name], 0 if m.out_features == "scalar" else 1, m, name)
  return None


def _eqx_conv(transpose: bool):
  def fans(m, name, shapes):
    n = m.num_spatial_dims
    return _conv(m, name, shapes, kernel_size=m.kernel_size, in_features=m.in_channels,
                 out_features=m.out_channels, groups=m.groups, strides=_spatial(m.stride, n),
                 transpose=transpose, kernel_ndim=n + 2, bias_ndim=n + 1)
  return fans


_MHA_NNX = ("query/kernel", "key/kernel", "value/kernel", "out/kernel")
_MHA_EQX = ("query_proj/weight", "key_proj/weight", "value_proj/weight", "output_proj/weight")

@dataclasses.dataclass(frozen=True)
class Fill:
  """``init(key, shape, dtype) = full(shape, value, dtype)`` for state of any dtype
  (integer counters and cache indices included); the key is not used."""
  value: float

  def __call__(self, key: Any, shape: Sequence[int], dtype: Any = None) -> Any:
    import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
    return jnp.full(tuple(shape), self.value, dtype)


# What the built-in layers' constructors give their non-parameter state.
_BATCH_STATS = (("mean", Fill(0)), ("var", Fill(1)))
_CACHE = (("cached_key", Fill(0)), ("cached_value", Fill(0)), ("cache_index", Fill(0)))

_BUILTIN: dict[str, ModuleSpec] = {
    # Flax NNX
    "flax.nnx.nn.linear.Linear": ModuleSpec(("kernel",), _nnx_linear),
    "flax.nnx.nn.linear.LinearGeneral": ModuleSpec(("kernel",), _nnx_linear_general),
    "flax.nnx.nn.linear.Einsum": ModuleSpec(("kernel",), _nnx_einsum),
    "flax.nnx.nn.linear.Conv": ModuleSpec(("kernel",), _nnx_conv),
    "flax.nnx.nn.linear.ConvTranspose": ModuleSpec(("kernel",), _nnx_conv_transpose),
    "flax.nnx.nn.linear.Embed": ModuleSpec(("embedding",), _embed("embedding")),
    "flax.nnx.nn.attention.MultiHeadAttention": ModuleSpec(_MHA_NNX, None, _CACHE),
    "flax.nnx.nn.normalization.LayerNorm": ModuleSpec(("scale",), _norm(lambda m, n, s: 1)),
    "flax.nnx.nn.normalization.RMSNorm": ModuleSpec(("scale",), _norm(lambda m, n, s: 1)),
    "flax.nnx.nn.normalization.BatchNorm": ModuleSpec(("scale",), _norm(lambda m, n, s: 1),
                                                      _BATCH_STATS),
    "flax.nnx.nn.normalization.GroupNorm": ModuleSpec(("scale",), _norm(lambda m, n, s: 1)),
    # Flax linen
    "flax.linen.linear.Dense": ModuleSpec(("kernel",), _linen_dense),
    "flax.linen.linear.DenseGeneral": ModuleSpec(("kernel",), _linen_dense_general),
    "flax.linen.linear.Einsum": ModuleSpec(("kernel",), _linen_einsum),
    "flax.linen.linear.ConvLocal": ModuleSpec(("kernel",), _linen_conv_local),
    "flax.linen.linear.Conv": ModuleSpec(("kernel",), _linen_conv),
    "flax.linen.linear.ConvTranspose": ModuleSpec(("kernel",), _linen_conv_transpose),
    "flax.linen.linear.Embed": ModuleSpec(("embedding",), _embed("embedding")),
    "flax.linen.attention.MultiHeadDotProductAttention": ModuleSpec(_MHA_NNX, None, _CACHE),
    # linen norms: scale/bias have the reduced feature shape; no stacking inside.
    "flax.linen.normalization.LayerNorm": ModuleSpec(("scale",), _norm(lambda m, n, s: len(s))),
    "flax.linen.normalization.RMSNorm": ModuleSpec(("scale",), _norm(lambda m, n, s: len(s))),
    "flax.linen.normalization.BatchNorm": ModuleSpec(("scale",), _norm(lambda m, n, s: len(s)),
                                                     _BATCH_STATS),
    "flax.linen.normalization.GroupNorm": ModuleSpec(("scale",), _norm(lambda m, n, s: len(s))),
    # Equinox
    "equinox.nn._linear.Linear": ModuleSpec(("weight",), _eqx_linear),
    "equinox.nn._conv.Conv": ModuleSpec(("weight",), _eqx_conv(False)),
    "equinox.nn._conv.ConvTranspose": ModuleSpec(("weight",), _eqx_conv(True)),
    "equinox.nn._embedding.Embedding": ModuleSpec(("weight",), _embed("weight")),
    "equinox.nn._attention.MultiheadAttention": ModuleSpec(_MHA_EQX),
    "equinox.nn._normalisation.LayerNorm": ModuleSpec(("weight",), _norm(lambda m, n, s: len(s))),
    "equinox.nn._normalisation.RMSNorm": ModuleSpec(("weight",), _norm(lambda m, n, s: len(s))),
    "equinox.nn._normalisation.GroupNorm": ModuleSpec(("weight",), _norm(lambda m, n, s: len(s))),
    "equinox.nn._batch_norm.BatchNorm": ModuleSpec(("weight",), _norm(lambda m, n, s: len(s))),
}
_REGISTRY.update(_BUILTIN)
