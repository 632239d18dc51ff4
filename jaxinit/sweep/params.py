"""Each model's initial params, drawn layer by layer on the host.

A model's params never depend on the other models: every layer is drawn by
its own call of a small compiled function, the same call alone or in any
sweep, so a model's initialization is identical bit for bit in any company.
The draws are compiled once and shared by every shape group, depth and
initializer of the sweep (XLA:CPU spends up to seconds on each random-number
kernel, so drawing inside each group's training program would cost compiles
per initializer per group).

Keys: a model's init key comes from :mod:`jaxinit.sweep.keys`. Its layers are
numbered in params order: ``"input"`` first, then the stacked groups in
key order (each layer of a stack in turn), ``"readout"`` last. Layer ``i``
draws its kernel from ``fold_in(fold_in(init_key, i), 0)`` and its bias from
``fold_in(fold_in(init_key, i), 1)``.

Scales: a variance-scaling initializer ``variance_scaling(s, mode,
sampler)`` is drawn as ``sampler`` at per-element variance
``s * weight_variance / fan`` (the fans depend only on the shape), so presets
that share a sampler (He, LeCun and Glorot normal all draw truncated normals)
share compiled draws. Elementwise samplers (normal, truncated normal,
uniform, Rademacher) draw flat at a power-of-two length and keep the first
elements: jax's threefry is counter based, so these are the values a draw at
the layer's shape gives, and one program per length serves every shape. With
``weight_variance = 1`` a kernel is ``init(kernel_key, shape)`` up to the
rounding of its scale (the variance is an argument of the compiled draw).
Any other initializer (orthogonal, constants, identity, ``scaled``, your own)
is called at the layer's shape and multiplied by ``sqrt(weight_variance)``.
Biases are ``N(0, bias_variance)``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

import jaxinit
from jaxinit import samplers
from jaxinit.base import Initializer
from jaxinit.initializers import VarianceScaling

Path = tuple[str, ...]

_SINGLE = ("input", "readout")


def layer_slots(shapes: Mapping[str, Any]) -> list[tuple[Path, int | None]]:
  """The layers of a params tree in key order: ``(path, stack size or None)``.

  A layer is a dict with a ``"kernel"``; ``"input"`` and ``"readout"`` are
  single layers, every other layer dict is a stack along its leading axis
  (the layout of :mod:`jaxinit.models`).

  Args:
    shapes: params (or their ``jax.eval_shape``) of a :mod:`jaxinit.models` network.

  Returns:
    ``"input"`` first, the stacks in key order, ``"readout"`` last.

  Examples:
    >>> import jax
    >>> from jaxinit.models import MLP, functional
    >>> net = functional(MLP.abstract(in_features=3, out_features=2, width=4, depth=3))[0]
    >>> layer_slots(jax.eval_shape(net.init, jax.random.key(0)))
    [(('input',), None), (('hidden',), 2), (('readout',), None)]
  """
  found: list[tuple[Path, int | None]] = []

  def walk(tree: Mapping[str, Any], path: Path) -> None:
    if "kernel" in tree:
      stacked = path not in [(name,) for name in _SINGLE]
      found.append((path, tree["kernel"].shape[0] if stacked else None))
      return
    for key in sorted(tree):
      walk(tree[key], path + (key,))

  walk(shapes, ())
  rank = lambda slot: (0 if slot[0] == ("input",) else 2 if slot[0] == ("readout",)  # noqa: E731
                       else 1)
  return sorted(found, key=rank)


def kernel_shapes(shapes: Mapping[str, Any]) -> list[tuple[tuple[int, ...], Any]]:
  """The distinct ``(shape, dtype)`` of one layer's kernel, over every layer of a params tree.

  Examples:
    >>> import jax
    >>> from jaxinit.models import MLP, functional
    >>> net = functional(MLP.abstract(in_features=3, out_features=2, width=4, depth=3))[0]
    >>> [s for s, _ in kernel_shapes(jax.eval_shape(net.init, jax.random.key(0)))]
    [(3, 4), (4, 4), (4, 2)]
  """
  out = []
  for path, stack in layer_slots(shapes):
    leaf = functools.reduce(lambda tree, k: tree[k], path, shapes)["kernel"]
    item = (tuple(leaf.shape[1:] if stack is not None else leaf.shape), leaf.dtype)
    if item not in out and (stack is None or stack > 0):
      out.append(item)
  return out


_ELEMENTWISE = (samplers.Normal, samplers.TruncatedNormal, samplers.Uniform, samplers.Rademacher)


def _bucket(size: int) -> int:
  """The flat length an elementwise draw of ``size`` elements is made at."""
  return max(1024, 1 << (size - 1).bit_length())


def _layer_key_impl(init_key: jax.Array, index: jax.Array, which: jax.Array) -> jax.Array:
  key = jax.random.wrap_key_data(init_key)
  return jax.random.key_data(jax.random.fold_in(jax.random.fold_in(key, index), which))


def _draw_flat_impl(key: jax.Array, variance: jax.Array, *, sampler: Any, size: int,
                    dtype: Any) -> jax.Array:
  key = jax.random.wrap_key_data(key)
  return jaxinit.variance_scaling(variance, "unit", sampler)(key, (size,), dtype)


def _draw_shaped_impl(key: jax.Array, scale: jax.Array, *, init: Initializer,
                      shape: tuple[int, ...], dtype: Any, variance_scaling: bool) -> jax.Array:
  key = jax.random.wrap_key_data(key)
  if variance_scaling:
    # `init` is variance_scaling(1, "unit", sampler): `scale` is the variance itself.
    return jaxinit.variance_scaling(scale, "unit", init.sampler)(key, shape, dtype)
  w = init(key, shape, dtype)
  return w * scale.astype(w.dtype)


# Each compiles once per (sampler or initializer, size or shape) for the whole process.
_layer_key = jax.jit(_layer_key_impl)
_draw_flat = jax.jit(_draw_flat_impl, static_argnames=("sampler", "size", "dtype"))
_draw_shaped = jax.jit(_draw_shaped_impl,
                       static_argnames=("init", "shape", "dtype", "variance_scaling"))


@functools.lru_cache(maxsize=4096)  # the same few (init, shape, variance) for many models
def kernel_draw(init: Initializer, shape: tuple[int, ...],
                weight_variance: float) -> tuple[Initializer, float, bool]:
  """What to compile and what to pass for one kernel: ``(static init, scale, is_vs)``.

  Args:
    init: the grid's initializer.
    shape: the kernel's shape.
    weight_variance: the grid's variance multiplier.

  Returns:
    For a :class:`~jaxinit.VarianceScaling`, its sampler at unit mode and the
    per-element variance ``scale * weight_variance / fan``; otherwise ``init``
    and the factor ``sqrt(weight_variance)``.

  Examples:
    >>> import jaxinit
    >>> static, variance, _ = kernel_draw(jaxinit.he_normal(), (50, 10), 0.5)
    >>> static.mode, variance
    ('unit', 0.02)
  """
  if isinstance(init, VarianceScaling) and not isinstance(init.scale, jax.core.Tracer):
    variance = float(init.scale) * weight_variance / init.fan(shape)
    return jaxinit.variance_scaling(1.0, "unit", init.sampler), variance, True
  return init, math.sqrt(weight_variance), False


def _batch_bucket(n: int) -> int:
  """Models per vmapped draw: a power of two >= 8, so few batch sizes ever compile."""
  return max(8, 1 << (n - 1).bit_length())


# Layer keys of many models at once: (models, 2) raw keys, (L,) indices, (2,) which.
_layer_keys = jax.jit(jax.vmap(jax.vmap(jax.vmap(
    _layer_key_impl, (None, None, 0)), (None, 0, None)), (0, None, None)))


def _draw_flat_batch_impl(keys: jax.Array, variances: jax.Array, *, sampler: Any, size: int,
                          dtype: Any) -> jax.Array:
  draw = functools.partial(_draw_flat_impl, sampler=sampler, size=size, dtype=dtype)
  return jax.vmap(draw)(keys, variances)


_draw_flat_batch = jax.jit(_draw_flat_batch_impl, static_argnames=("sampler", "size", "dtype"))


def _pad_rows(x: np.ndarray, n: int) -> np.ndarray:
  return np.concatenate([x, np.repeat(x[:1], n - len(x), axis=0)]) if n > len(x) else x


def draw_population(shapes: Mapping[str, Any], inits: list[Initializer],
                    init_keys: list[jax.Array] | np.ndarray, weight_variances: list[float],
                    bias_variances: list[float]) -> dict[str, Any]:
  """Every model's params, stacked on a leading model axis (host numpy).

  Elementwise draws (normal, truncated normal, uniform, Rademacher) of the
  same layer are made for all models at once, ``vmap``-ed over their keys
  and variances (random bits are counter based, so a model's values are
  the same in a batch of any size); other initializers draw model by model.

  Args:
    shapes: ``jax.eval_shape`` of the network's ``init``: the layout to fill.
    inits: per model, its kernel initializer.
    init_keys: per model, its init key: typed PRNG keys, or their raw key
      data stacked ``(models, 2)``.
    weight_variances: per model, the multiplier of every kernel's variance.
    bias_variances: per model, the variance of every bias.

  Returns:
    Params with ``shapes``' structure and a leading model axis.

  Examples:
    >>> import jax, jaxinit
    >>> from jaxinit.models import MLP, functional
    >>> net = functional(MLP.abstract(in_features=3, out_features=2, width=4, depth=3,
    ...                               activation="tanh"))[0]
    >>> p = draw_population(jax.eval_shape(net.init, jax.random.key(0)),
    ...                     [jaxinit.zeros, jaxinit.he_normal()],
    ...                     list(jax.random.split(jax.random.key(1))), [1.0, 1.0], [0.0, 0.0])
    >>> p["hidden"]["kernel"].shape, float(abs(p["hidden"]["kernel"][0]).max())
    ((2, 2, 4, 4), 0.0)
  """
  num = len(inits)
  padded = _batch_bucket(num)
  raw = init_keys if isinstance(init_keys, np.ndarray) else np.stack(
      [np.asarray(jax.random.key_data(k)) for k in init_keys])
  slots = layer_slots(shapes)
  num_layers = sum(1 if stack is None else stack for _, stack in slots)
  # One call for every layer key of every model: (models, layers, kernel|bias, key).
  keys = np.asarray(_layer_keys(_pad_rows(raw, padded), np.arange(num_layers, dtype=np.int32),
                                np.arange(2, dtype=np.uint32)))
  bias_init = jaxinit.variance_scaling(1.0, "unit", "normal")
  # Per leaf: a list over stack positions of (per-model pending draws).
  pending: list[tuple[Path, str, Any, list[list[Any]]]] = []
  index = 0
  for path, stack in slots:
    layer_shapes = functools.reduce(lambda tree, k: tree[k], path, shapes)
    single = lambda x: tuple(x.shape[1:] if stack is not None else x.shape)  # noqa: E731
    drawn: dict[str, list[list[Any]]] = {name: [] for name in layer_shapes}
    for _ in range(1 if stack is None else stack):
      for which, name in enumerate(("kernel", "bias")):
        if name not in layer_shapes:
          continue
        shape, dtype = single(layer_shapes[name]), layer_shapes[name].dtype
        plans = [kernel_draw(init, shape, wv) if name == "kernel" else (bias_init, bv, True)
                 for init, wv, bv in zip(inits, weight_variances, bias_variances)]
        drawn[name].append(_dispatch_layer(keys[:, index, which], plans, shape, dtype))
      index += 1
    pending += [(path, name, layer_shapes[name], per_stack) for name, per_stack in drawn.items()]
  # One transfer, after every draw is dispatched.
  hosts = jax.device_get([[[d for d, _, _ in per_model] for per_model in per_stack]
                          for _, _, _, per_stack in pending])
  params: dict[str, Any] = {}
  for (path, name, leaf, per_stack), host in zip(pending, hosts):
    if per_stack:
      layers = [np.stack([cut(np.asarray(h) if row is None else np.asarray(h)[row])
                          for h, (_, row, cut) in zip(host_layer, layer)])
                for host_layer, layer in zip(host, per_stack)]
      value = np.stack(layers, axis=1) if len(leaf.shape) == layers[0].ndim else layers[0]
    else:  # an empty stack (an MLP of depth 1)
      value = np.zeros((num,) + leaf.shape, leaf.dtype)
    node = params
    for key in path:
      node = node.setdefault(key, {})
    node[name] = value
  return params


def _dispatch_layer(keys: jax.Array, plans: list[tuple[Initializer, float, bool]],
                    shape: tuple[int, ...], dtype: Any) -> list[tuple[Any, Any, Any]]:
  """Starts one layer's draws for every model.

  Returns:
    Per model ``(device array, its row in it or None, cut to shape)``.
  """
  size = math.prod(shape)
  out: list[Any] = [None] * len(plans)
  batches: dict[Any, list[int]] = {}
  for j, (static, scale, is_vs) in enumerate(plans):
    if is_vs and isinstance(static.sampler, _ELEMENTWISE):
      batches.setdefault(static.sampler, []).append(j)
    else:
      draw = _draw_shaped(keys[j], np.float32(scale), init=static, shape=shape, dtype=dtype,
                          variance_scaling=is_vs)
      out[j] = (draw, None, lambda h: h)
  cut = lambda h: h[:size].reshape(shape)  # noqa: E731
  for sampler, members in batches.items():
    n = _batch_bucket(len(members))
    index = np.array(members + [members[0]] * (n - len(members)))
    scales = np.array([plans[j][1] for j in index], np.float32)
    # Elementwise samplers draw the same values flat (counter-based bits), and a
    # longer draw starts with the shorter one: one small program per size
    # bucket and batch bucket instead of one per shape and model.
    flat = _draw_flat_batch(keys[index], scales, sampler=sampler, size=_bucket(size), dtype=dtype)
    for row, j in enumerate(members):
      out[j] = (flat, row, cut)
  return out


__all__ = ["draw_population", "kernel_draw", "kernel_shapes", "layer_slots"]
