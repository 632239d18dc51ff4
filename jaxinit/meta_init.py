"""MetaInit: choose each weight's norm by minimizing the gradient quotient (Dauphin & Schoenholz 2019).

"MetaInit: Initializing learning by learning to initialize" (NeurIPS 2019).
Each chosen weight is written ``W = n * W0 / ||W0||`` and only its norm
``n`` is learned, by sign-SGD with momentum on the *gradient quotient*

    GQ(theta) = 1/N sum_i | (g_i - (H g)_i) / (g_i + eps sign(g_i)) - 1 |,

``g = grad L(theta)``, ``H`` the Hessian of the loss ``L`` on one batch,
``N`` the number of parameters. GQ is 0 when one gradient step would not
change the gradient (the loss is locally linear, neither curving away nor
exploding); a badly scaled network (vanishing or exploding signal) has GQ
far from 0. Sign-SGD makes each step size independent of the gradient's
magnitude, so a network whose gradients vanish still moves. The paper's
defaults: learning rate 0.1, momentum 0.9, ``eps = 1e-5``; Hessian-vector
products by forward-over-reverse differentiation (``jax.jvp`` of
``jax.grad``), so a step costs about two backward passes.

:func:`metainit` is one jittable function (a ``lax.scan`` over steps) and
vmaps over seeds; the weights are chosen by rules as for :func:`jaxinit.lsuv`
(default: every Linear / Conv-like layer). A stacked weight (``nnx.scan``)
has one norm per layer of the stack.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxinit import checks
from jaxinit.capture import Forward, params_by_path
from jaxinit.rules.targets import path_of

__all__ = ["MetaInitReport", "MetaInitResult", "gradient_quotient", "metainit"]


def gradient_quotient(loss: Callable[[Any], jax.Array], params: Any,
                      eps: float = 1e-5) -> jax.Array:
  """The gradient quotient of ``loss`` at ``params`` (Dauphin & Schoenholz 2019, eq. 3).

  ``GQ = mean_i |(g_i - (Hg)_i) / (g_i + eps sign(g_i)) - 1|`` over every
  inexact parameter entry, ``g`` the gradient and ``Hg`` the Hessian-vector
  product (``jax.jvp`` of ``jax.grad``). Differentiable (MetaInit takes its
  gradient with respect to the weight norms).

  Args:
    loss: scalar function of ``params``.
    params: a pytree of arrays.
    eps: the smoothing of the denominator (``sign(0)`` counts as +1).

  Returns:
    A scalar.

  Examples:
    >>> import jax.numpy as jnp
    >>> # A quadratic 0.5 a x^2: g = a x, Hg = a^2 x, GQ = |a| (for |g| >> eps).
    >>> round(float(gradient_quotient(lambda x: jnp.sum(1.5 * x ** 2), jnp.ones(4))), 4)
    3.0
  """
  grad = jax.grad(loss)
  g, hg = jax.jvp(grad, (params,), (grad(params),))
  terms = jax.tree.map(
      lambda g, hg: jnp.abs((g - hg) / (g + eps * jnp.where(g >= 0, 1.0, -1.0)) - 1.0).ravel(),
      g, hg)
  return jnp.mean(jnp.concatenate(jax.tree.leaves(terms)))


@functools.partial(jax.tree_util.register_dataclass,
                   data_fields=["quotient", "norms_before", "norms_after"],
                   meta_fields=["weights"])
@dataclasses.dataclass(frozen=True)
class MetaInitReport:
  """What :func:`metainit` did (a pytree: vmaps with it).

  Attributes:
    weights: the paths of the weights whose norms were learned (a stacked
      weight once; its norms have one entry per layer of the stack).
    quotient: GQ before each step, ``(steps,)``; ``quotient[-1]`` the last.
    norms_before: ``{path: Frobenius norm(s)}`` as given.
    norms_after: ``{path: Frobenius norm(s)}`` learned.
  """
  weights: tuple[str, ...]
  quotient: jax.Array
  norms_before: dict[str, jax.Array]
  norms_after: dict[str, jax.Array]


class MetaInitResult(NamedTuple):
  """``(model, report)``: the model as :func:`jaxinit.lsuv` returns it, and the report."""
  model: Any
  report: MetaInitReport


def _norms(w: jax.Array, stack: int) -> jax.Array:
  return jnp.sqrt(jnp.sum(jnp.square(w.astype(jnp.float32)), axis=tuple(range(stack, w.ndim))))


def _scaled(w: jax.Array, norm: jax.Array, stack: int) -> jax.Array:
  unit = w / _norms(w, stack).reshape(norm.shape + (1,) * (w.ndim - stack)).astype(w.dtype)
  return unit * norm.reshape(norm.shape + (1,) * (w.ndim - stack)).astype(w.dtype)


def _run(fwd: Forward, chosen: tuple[tuple[str, int], ...], loss_fn: Any, steps: int, lr: float,
         momentum: float, eps: float, params: Any, batch: Any, targets: Any
         ) -> tuple[Any, MetaInitReport]:
  flat = params_by_path(params)
  leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
  paths = [path_of(kp) for kp, _ in leaves]

  def with_norms(norms):
    values = [_scaled(flat[p], norms[p], dict(chosen)[p]) if p in norms else flat[p]
              for p in paths]
    return jax.tree_util.tree_unflatten(treedef, values)

  def quotient(norms):
    return gradient_quotient(lambda p: loss_fn(fwd(p, batch), targets), with_norms(norms), eps)

  opt = optax.sgd(lr, momentum=momentum)
  norms0 = {p: _norms(flat[p], stack) for p, stack in chosen}

  def step(carry, _):
    norms, state = carry
    gq, grads = jax.value_and_grad(quotient)(norms)
    updates, state = opt.update(jax.tree.map(jnp.sign, grads), state)
    return (optax.apply_updates(norms, updates), state), gq

  (norms, _), gq = jax.lax.scan(step, (norms0, opt.init(norms0)), None, length=steps)
  return with_norms(norms), MetaInitReport(tuple(p for p, _ in chosen), gq, norms0, norms)


_JITTED = jax.jit(_run, static_argnums=(0, 1, 2, 3, 4, 5, 6))


def _cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def metainit(model: Any, batch: Any, targets: Any, *, params: Any = None, rules: Any = None,
             loss_fn: Callable[[Any, Any], jax.Array] | None = None, steps: int = 100,
             learning_rate: float = 0.1, momentum: float = 0.9, eps: float = 1e-5
             ) -> MetaInitResult:
  """MetaInit (Dauphin & Schoenholz 2019): learn each chosen weight's norm by minimizing GQ.

  ``W = n W0/||W0||``; ``n <- n - lr * momentum-trace(sign(dGQ/dn))`` for
  ``steps`` steps on one batch (see :func:`gradient_quotient` and the module
  docstring). The directions ``W0/||W0||`` are kept: draw them first (for
  example with :func:`jaxinit.reinit`).

  Args:
    model: a Flax NNX module (updated in place and returned), an Equinox
      module, a linen module (pass ``params=`` its variables) or a
      :class:`~jaxinit.capture.Forward` (pass ``params=``).
    batch: the inputs.
    targets: what ``loss_fn`` compares the output with (integer labels for
      the default loss; random labels work: GQ measures curvature, not fit).
    params: params of a Forward, or variables of a linen module.
    rules: which weights (as :func:`jaxinit.lsuv`; default every Linear /
      Conv-like layer's weight).
    loss_fn: ``loss_fn(output, targets) -> scalar``; default softmax cross
      entropy with integer labels.
    steps: sign-SGD steps (the paper uses 100-1000).
    learning_rate: the step of the norms (0.1 in the paper). It is absolute, and
      momentum makes a run of equal signs step up to ``lr / (1 - momentum)``: on
      norms of a few units it can oscillate and raise GQ (a 10-layer ReLU MLP of
      width 16, norms ~5.5, cross entropy: GQ 25.7 -> ~2400 at 0.1, 25.7 -> 0.54
      at 0.01 after 60 steps). Check ``report.quotient``.
    momentum: sign-SGD momentum (0.9 in the paper).
    eps: GQ's smoothing (1e-5 in the paper).

  Returns:
    ``MetaInitResult(model, report)``.

  Raises:
    ValueError: bad arguments; no weight matched the rules.
    TypeError: a model of no supported kind; params missing or misplaced.

  Examples:
    >>> import jax, jaxinit
    >>> from flax import nnx
    >>> model = nnx.Sequential(nnx.Linear(8, 16, rngs=nnx.Rngs(0)), jax.nn.relu,
    ...                        nnx.Linear(16, 4, rngs=nnx.Rngs(1)))
    >>> x = jax.random.normal(jax.random.key(0), (32, 8))
    >>> y = jax.random.randint(jax.random.key(1), (32,), 0, 4)
    >>> model, report = jaxinit.metainit(model, x, y, steps=20)
    >>> report.quotient.shape, bool(report.quotient[-1] < report.quotient[0])
    ((20,), True)
  """
  steps = checks.positive_int("steps", steps)
  learning_rate = checks.real("learning_rate", learning_rate, minimum=0.0, exclusive_minimum=True)
  momentum = checks.real("momentum", momentum, minimum=0.0)
  eps = checks.real("eps", eps, minimum=0.0, exclusive_minimum=True)
  from jaxinit.dynamic import _as_rules, _resolve  # pylint: disable=import-outside-toplevel
  kind, fwd, params = _resolve("metainit", model, params)
  from jaxinit.rules.api import plan  # pylint: disable=import-outside-toplevel
  template = fwd.template(params)
  the_plan = (plan(template, _as_rules(rules), batch, module=fwd.definition)
              if fwd.kind == "linen" else plan(template, _as_rules(rules)))
  chosen = tuple((fwd.param_path("", a.path).removeprefix("/") if fwd.kind == "linen"
                  else a.path, len(a.stack)) for a in the_plan.assignments)
  if not chosen:
    raise ValueError(f"metainit: no weight matched the rules {rules}; params: "
                     f"{list(params_by_path(params))}")
  new, report = _JITTED(fwd, chosen, loss_fn or _cross_entropy, steps, learning_rate, momentum,
                        eps, params, batch, targets)
  from jaxinit.dynamic import _finish  # pylint: disable=import-outside-toplevel
  return MetaInitResult(_finish(kind, model, fwd, new), report)

