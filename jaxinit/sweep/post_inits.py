"""Post-inits: data-dependent steps after the rules' draw (LSUV, MetaInit), per model.

An init value may name one (:mod:`jaxinit.sweep.init_values`): ``{lsuv =
"orthogonal", tol = 0.05}``, ``{metainit = "he_normal"}`` or ``"lsuv"``;
canonical as ``{name = "lsuv", init = "orthogonal", tol = 0.05}``. A model's
post-init runs after its rules' draw on ``batch_size`` training examples
drawn with replacement by ``randint(fold_in(init_key, POST_INIT_TAG))``,
inside one compiled program per shape group and method that runs
``lanes`` models at once (``vmap``), as training does, so a model's bits
never depend on its company. Adding a method is one entry of
:data:`POST_INITS`.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxinit
from jaxinit import checks

PyTree = Any

_FLOAT32_MAX = float(np.finfo(np.float32).max)

POST_INIT_TAG = 3
"""Folded into a model's init key to draw its post-init batch."""


@dataclasses.dataclass(frozen=True)
class PostInit:
  """A data-dependent step after the rules' draw (an entry of :data:`POST_INITS`).

  Attributes:
    init: the pre-init when the value names none.
    options: ``{option: (default, check)}``; ``batch_size`` (training
      examples the step sees, drawn with replacement) is every method's.
    run: ``run(fwd, params, x, y, loss, **options) -> (params, converged)``,
      traceable: one model (``jaxinit.capture.Forward`` and its params), its
      batch, the sweep's loss; ``converged`` a bool scalar.
    doc: one line for messages.
  """
  init: str
  options: Mapping[str, tuple[Any, Callable[[str, Any], Any]]]
  run: Callable[..., tuple[PyTree, jax.Array]]
  doc: str


def _positive(where: str, value: Any) -> float:
  return checks.real(where, value, minimum=0.0, exclusive_minimum=True, maximum=_FLOAT32_MAX)


def _non_negative(where: str, value: Any) -> float:
  return checks.real(where, value, minimum=0.0, maximum=_FLOAT32_MAX)


def _run_lsuv(fwd: Any, params: PyTree, x: jax.Array, y: jax.Array, loss: Any, *,
              batch_size: int, target: float, tol: float, max_iters: int, centre: bool
              ) -> tuple[PyTree, jax.Array]:
  del y, loss, batch_size
  new, report = jaxinit.lsuv(fwd, x, params=params, target=target, tol=tol,
                             max_iters=max_iters, centre=centre, check=False)
  return new, jnp.all(report.converged)


def _run_metainit(fwd: Any, params: PyTree, x: jax.Array, y: jax.Array, loss: Any, *,
                  batch_size: int, steps: int, learning_rate: float, momentum: float,
                  eps: float) -> tuple[PyTree, jax.Array]:
  del batch_size
  new, report = jaxinit.metainit(fwd, x, y, params=params, loss_fn=loss, steps=steps,
                                 learning_rate=learning_rate, momentum=momentum, eps=eps)
  return new, report.quotient[-1] <= report.quotient[0]


_BATCH = (256, checks.positive_int)

POST_INITS: dict[str, PostInit] = {
    "lsuv": PostInit(
        init="orthogonal",
        options={"batch_size": _BATCH, "target": (1.0, _positive), "tol": (0.1, _positive),
                 "max_iters": (10, checks.positive_int), "centre": (False, checks.boolean)},
        run=_run_lsuv,
        doc="jaxinit.lsuv (Mishkin & Matas 2016): every Linear/Conv-like layer rescaled to "
            "output variance target +- tol, at most max_iters times each"),
    "metainit": PostInit(
        init="lecun_normal",
        options={"batch_size": _BATCH, "steps": (100, checks.positive_int),
                 "learning_rate": (0.1, _positive), "momentum": (0.9, _non_negative),
                 "eps": (1e-5, _positive)},
        run=_run_metainit,
        doc="jaxinit.metainit (Dauphin & Schoenholz 2019): every Linear/Conv-like weight's "
            "norm learned by sign-SGD on the gradient quotient, with the sweep's loss"),
}
"""The post-init methods an init value can name, their default pre-init and options.

``lsuv``: ``batch_size = 256``, ``target = 1.0``, ``tol = 0.1``,
``max_iters = 10``, ``centre = false`` (as :func:`jaxinit.lsuv`; no pre-init
of its own: the rules' draw is the pre-init, orthogonal unless named).
``metainit``: ``batch_size = 256``, ``steps = 100``, ``learning_rate = 0.1``,
``momentum = 0.9``, ``eps = 1e-5`` (as :func:`jaxinit.metainit`; the targets
are the batch's labels, the loss the sweep's)."""


@dataclasses.dataclass(frozen=True)
class PostSpec:
  """An init value's post-init: the method, its pre-init and its options (defaults filled)."""
  name: str
  init: Any
  options: tuple[tuple[str, Any], ...]

  @property
  def batch_size(self) -> int:
    return dict(self.options)["batch_size"]


def parts(value: Any) -> tuple[str, Any, dict[str, Any]] | None:
  """``(method, pre-init or None, options)`` of an init value naming a post-init, else None."""
  if isinstance(value, str):
    return (value, None, {}) if value in POST_INITS else None
  if not isinstance(value, Mapping):
    return None
  named = [k for k in value if k in POST_INITS]
  if named:
    extra = [k for k in ("name", "init") if k in value] + named[1:]
    if extra:
      raise ValueError(f"{{{named[0]} = ...}} names its method by its key: drop {extra[0]!r}")
    options = {k: v for k, v in value.items() if k != named[0]}
    return named[0], value[named[0]], options
  if value.get("name") in POST_INITS:
    options = {k: v for k, v in value.items() if k not in ("name", "init")}
    return value["name"], value.get("init"), options
  return None


def check(where: str, value: Any, check_initializer: Callable[[str, Any], Any]) -> Any:
  """A post-init value, canonical (``"lsuv"`` or ``{name, init?, options...}`` as written);
  None when ``value`` names no post-init. ``check_initializer`` checks its pre-init.

  Raises:
    ValueError: an unknown option (with "did you mean"), a bad option value,
      a post-init of a post-init, two methods in one table.
  """
  try:
    found = parts(value)
  except ValueError as err:
    raise ValueError(f"{where}: {err}") from None
  if found is None:
    return None
  name, inner, options = found
  method = POST_INITS[name]
  out: dict[str, Any] = {"name": name}
  if inner is not None:
    if parts(inner) is not None:
      raise ValueError(f"{where}: {name}'s pre-init {inner!r} is itself a post-init; name an "
                       f"initializer or a rule set")
    out["init"] = check_initializer(f"{where}: {name}'s init", inner)
  for key, option in options.items():
    if key not in method.options:
      raise ValueError(f"{where}: {name} has no option {key!r}"
                       f"{checks.did_you_mean(key, method.options)}; accepted: "
                       f"{', '.join(sorted(method.options))}")
    out[key] = method.options[key][1](f"{where}: {name} option {key!r}", option)
  return name if len(out) == 1 else out


def post_init_of(value: Any) -> PostSpec | None:
  """The :class:`PostSpec` of a canonical init value (defaults filled), or None."""
  found = parts(value)
  if found is None:
    return None
  name, inner, options = found
  method = POST_INITS[name]
  filled = {k: options.get(k, default) for k, (default, _) in sorted(method.options.items())}
  return PostSpec(name, method.init if inner is None else inner, tuple(filled.items()))


def run_post_init(program: Any, post: PostSpec, params: np.ndarray, init_keys: np.ndarray,
                  data: Mapping[str, np.ndarray]) -> np.ndarray:
  """``post`` on models' flat ``params`` ``(n, size)``: calls of exactly ``program.lanes``
  models (the last one padded with copies), so that a model's bits never depend on its
  company; warns when a model's post-init did not converge."""
  run = post_init_program(program, post)
  lanes = program.lanes
  x, y = jnp.asarray(data["x_train"]), jnp.asarray(data["y_train"])
  n = len(params)
  pad = -n % lanes
  params = np.concatenate([params, np.repeat(params[-1:], pad, axis=0)])
  init_keys = np.concatenate([init_keys, np.repeat(init_keys[-1:], pad, axis=0)])
  parts = [run(params[lo:lo + lanes], init_keys[lo:lo + lanes], x, y)
           for lo in range(0, n + pad, lanes)]
  out, converged = (np.concatenate(p)[:n] for p in zip(*jax.device_get(parts)))
  if not converged.all():
    warnings.warn(f"{post.name}: {int((~converged).sum())} of {n} model(s) of "
                  f"{program.model} did not converge ({dict(post.options)}); their params "
                  f"are used as they are", stacklevel=3)
  return out.astype(np.float32)


def _forward(built: Any) -> tuple[Any, PyTree, tuple[int, ...]]:
  """``(fwd, template, where)``: the model as a :class:`jaxinit.capture.Forward`, its
  params as the Forward takes them (host arrays), and where each of ``built``'s params
  sits among the template's leaves.

  Raises:
    ValueError: a pure ``(init, apply)`` model (no modules to capture).
  """
  from jaxinit.capture import (  # pylint: disable=import-outside-toplevel
      Forward, forward, params_by_path)
  if built.kind == "nnx":
    fwd, template = forward(built.target)
    prefix = ""
  elif built.kind == "linen":
    fwd, template, prefix = Forward("linen", built.plan_options["module"]), built.target, "params/"
  elif built.kind == "equinox":
    fwd, template = forward(built.target, batched=False)
    prefix = ""
  else:
    raise ValueError("a post-init captures the model's layers: it needs a Flax NNX or linen "
                     "module or an Equinox module, not a pure (init, apply) pair")
  order = {p: i for i, p in enumerate(params_by_path(template))}
  missing = [p for p in built.paths if prefix + p not in order]
  if missing:
    raise ValueError(f"a post-init cannot find parameter {missing[0]!r} in the model's state")
  return fwd, jax.device_get(template), tuple(order[prefix + p] for p in built.paths)


@functools.lru_cache(maxsize=64)
def post_init_program(program: Any, post: PostSpec) -> Callable[..., Any]:
  """Compiled: ``(params (lanes, size), init_keys (lanes, 2), x_train, y_train) ->
  (params, converged)``, ``post`` of ``program.lanes`` models ``vmap``-ed (traced once per
  shape group and post-init)."""
  from jaxinit.sweep.program import network  # pylint: disable=import-outside-toplevel
  from jaxinit.sweep.step import ravel, unravel  # pylint: disable=import-outside-toplevel
  built = network(program)
  fwd, template, where = _forward(built)
  leaves, treedef = jax.tree_util.tree_flatten(template)
  options = {k: v for k, v in post.options}
  method = POST_INITS[post.name]

  def one(flat, key_data, x_train, y_train):
    key = jax.random.fold_in(jax.random.wrap_key_data(key_data), POST_INIT_TAG)
    index = jax.random.randint(key, (post.batch_size,), 0, x_train.shape[0])
    values = list(leaves)
    for i, leaf in zip(where, jax.tree.leaves(unravel(built.shapes, flat))):
      values[i] = leaf
    new, converged = method.run(fwd, jax.tree_util.tree_unflatten(treedef, values),
                                x_train[index], y_train[index], program.loss, **options)
    new_leaves = jax.tree_util.tree_leaves(new)
    return ravel([new_leaves[i] for i in where]).astype(jnp.float32), converged

  if program.lanes == 1:  # one model: no vmap (it would add a unit axis to every op)
    return jax.jit(lambda p, k, x, y: jax.tree.map(lambda a: a[None], one(p[0], k[0], x, y)))
  return jax.jit(jax.vmap(one, in_axes=(0, 0, None, None)))


def check_program(program: Any, post: PostSpec, batch: Any) -> None:
  """``post`` traces on the group's model (shapes only; ``batch``: ``(x_train, y_train)``).

  Raises:
    ValueError: naming the method and what refused.
  """
  from jaxinit.sweep.program import param_count  # pylint: disable=import-outside-toplevel
  try:
    jax.eval_shape(post_init_program(program, post),
                   jax.ShapeDtypeStruct((program.lanes, param_count(program)), jnp.float32),
                   jax.ShapeDtypeStruct((program.lanes, 2), jnp.uint32), *batch)
  except Exception as err:  # noqa: BLE001  (lsuv/metainit's refusal, named)
    text = str(err).splitlines()[0] if str(err) else ""
    raise ValueError(f"{post.name} cannot run on this model: {type(err).__name__}: "
                     f"{text}") from None


__all__ = ["POST_INITS", "POST_INIT_TAG", "PostInit", "PostSpec", "check", "check_program",
           "parts", "post_init_of", "post_init_program", "run_post_init"]
