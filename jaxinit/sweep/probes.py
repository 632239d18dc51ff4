"""The probe registry: every per-layer probe a sweep's ``probes`` list names.

A probe maps one model's network, params and probe batch to a ``(depth,)``
array (one value per probed layer), measured at every evaluation. Forward
probes read the per-layer signal of one capturing forward pass
(``net.apply(params, x, capture=True)["preactivations"]``), shared by all of
them; the others get the network and compute what they need. They run inside
the compiled evaluation, ``vmap``-ed over models. Adding a probe touches
:data:`PROBES` only.

Which models can be probed is decided in one place, :func:`probed_network`:
models whose call takes ``capture=True`` and returns
``(outputs, {"preactivations": (depth, ...)})`` (and, for ``grad_norm``,
``perturbations=`` added to that signal), as :mod:`jaxinit.models`' networks
do, serve the probes themselves (any kind of model); every other Flax NNX,
linen or Equinox model is probed through :mod:`jaxinit.capture`
(:class:`CapturedNetwork`): its layers are the outputs of its
:data:`LAYER_CLASSES` module calls (dense, convolution and einsum layers:
the pre-activations, the readout included), in forward order, each probe
value per layer (layers of any widths). Pure ``(init, apply)`` pairs without
``capture`` cannot be probed.

* ``second_moment``, ``mean``, ``variance``: of each layer's pre-activations
  (:func:`jaxinit.probes.layer_moments`);
* ``dead_fraction``: units that never fire on the batch
  (:func:`jaxinit.probes.dead_fraction`);
* ``grad_norm``: the norm of the loss gradient with respect to each layer's
  pre-activations (:func:`jaxinit.probes.gradient_norms`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp


def _moment(name: str) -> Callable[[Any], Any]:
  def probe(h: Any) -> Any:
    from jaxinit import probes  # pylint: disable=import-outside-toplevel
    return probes.layer_moments(h)[name]
  return probe


def _dead_fraction(h: Any) -> Any:
  from jaxinit import probes  # pylint: disable=import-outside-toplevel
  return probes.dead_fraction(h)


def _grad_norm(net: Any, params: Any, x: Any, loss_fn: Callable[[Any], Any]) -> Any:
  from jaxinit import probes  # pylint: disable=import-outside-toplevel
  return probes.gradient_norms(net, params, x, loss_fn)["activations"]


def _captured_grad_norm(fwd: Any, params: Any, x: Any, loss_fn: Callable[[Any], Any],
                        layers: Sequence[str], kwargs: dict[str, Any]) -> Any:
  # The gradient with respect to zero perturbations of the layers' outputs only (the
  # params of a captured NNX model hold integer RNG state: not differentiated).
  from jaxinit import probes  # pylint: disable=import-outside-toplevel
  shapes = jax.eval_shape(lambda p: fwd.capture(p, x, **kwargs)[1], params)
  zeros = {k: jnp.zeros(shapes[k].shape, shapes[k].dtype) for k in layers}
  grads = jax.grad(lambda eps: loss_fn(fwd.capture(params, x, perturbations=eps,
                                                   **kwargs)[0]))(zeros)
  stack = lambda k: grads[k].reshape((-1,) + shapes[k].shape[shapes.stack_ndim(k):])  # noqa
  # pylint: disable-next=protected-access
  return jnp.concatenate([probes._frobenius(stack(k)) for k in layers])


@dataclasses.dataclass(frozen=True)
class ProbeEntry:
  """One probe.

  Attributes:
    forward: ``forward(h) -> (depth,)`` of the stacked per-layer signal, or None.
    network: ``network(net, params, x, loss_fn) -> (depth,)``, for probes that
      need more than one forward pass (``loss_fn`` maps outputs to the loss).
    captured: the same for a :class:`CapturedNetwork`: ``captured(fwd, params, x,
      loss_fn, layers, kwargs) -> (layers,)`` (:mod:`jaxinit.capture`'s ``Forward``,
      the captured keys of its layers, the call's keyword arguments).
  """
  forward: Callable[[Any], Any] | None = None
  network: Callable[..., Any] | None = None
  captured: Callable[..., Any] | None = None


PROBES: dict[str, ProbeEntry] = {
    "second_moment": ProbeEntry(forward=_moment("second_moment")),
    "mean": ProbeEntry(forward=_moment("mean")),
    "variance": ProbeEntry(forward=_moment("variance")),
    "dead_fraction": ProbeEntry(forward=_dead_fraction),
    "grad_norm": ProbeEntry(network=_grad_norm, captured=_captured_grad_norm),
}
"""Probe names and how each is measured."""

NAMES: tuple[str, ...] = tuple(PROBES)
"""The probe names, in the registry's order."""


NEEDS: dict[str, frozenset[str]] = {
    name: frozenset({"capture"} if entry.network is None else {"capture", "perturbations"})
    for name, entry in PROBES.items()}
"""The keyword arguments of the model's call each probe needs."""


@dataclasses.dataclass(frozen=True, eq=False)
class ProbedNetwork:
  """A sweep's model as :class:`jaxinit.models.Network` (what :mod:`jaxinit.probes` takes).

  Attributes:
    built: the model (:class:`jaxinit.sweep.kinds.Built`).
    state: its non-param state (eval mode).
  """
  built: Any
  state: Any = None

  def apply(self, params: Any, x: Any, *, capture: bool = False,
            perturbations: Any = None) -> Any:
    kwargs: dict[str, Any] = {"capture": True} if capture else {}
    if perturbations is not None:
      kwargs["perturbations"] = perturbations
    state = self.built.state if self.state is None else self.state
    return self.built.run(params, state, x, **kwargs)[0]

  def layers(self, params: Any) -> tuple[Any, ...]:
    """Every weight (rank >= 2) as a stack of one layer, in params order."""
    return tuple((w[None], None) for w in jax.tree.leaves(params) if w.ndim >= 2)


LAYER_CLASSES: tuple[str, ...] = (
    "flax.nnx.Linear", "flax.nnx.LinearGeneral", "flax.nnx.Conv", "flax.nnx.ConvTranspose",
    "flax.nnx.Einsum", "flax.linen.Dense", "flax.linen.DenseGeneral", "flax.linen.Conv",
    "flax.linen.ConvTranspose", "flax.linen.Einsum", "equinox.nn.Linear", "equinox.nn.Conv")
"""Module classes whose outputs are a captured model's probed layers (subclasses too)."""


@functools.lru_cache(maxsize=1)
def _layer_classes() -> frozenset[str]:
  from jaxinit.rules.patterns import OfModule  # pylint: disable=import-outside-toplevel
  found = set()
  for path in LAYER_CLASSES:
    try:
      found.add(OfModule(path).cls)
    except (ImportError, ValueError, TypeError, AttributeError):
      continue  # an extra that is not installed (equinox)
  return frozenset(found)


@dataclasses.dataclass(frozen=True, eq=False)
class CapturedNetwork:
  """A Flax or Equinox model probed through :mod:`jaxinit.capture`.

  Attributes:
    built: the model (:class:`jaxinit.sweep.kinds.Built`, with ``forward``).
    state: its non-param state (eval mode).
  """
  built: Any
  state: Any = None

  def capture(self, params: Any, x: Any) -> tuple[Any, Any, dict[str, Any], Any, list[str]]:
    """``(fwd, fwd_params, kwargs, captured, layers)``: the eval-mode forward pass of
    ``x`` captured, and the keys of its :data:`LAYER_CLASSES` outputs."""
    state = self.built.state if self.state is None else self.state
    fwd, fwd_params, kwargs = self.built.forward(params, state)
    _, captured = fwd.capture(fwd_params, x, **kwargs)
    classes = _layer_classes()
    layers = [k for k in captured if classes & set(captured.info(k).classes)]
    if not layers:
      raise ValueError(f"the model calls no layer of {', '.join(LAYER_CLASSES)}; captured: "
                       f"{list(captured)}")
    return fwd, fwd_params, kwargs, captured, layers


def probed_network(built: Any, names: Sequence[str], state: Any = None
                   ) -> ProbedNetwork | CapturedNetwork | None:
  """The model as the probes ``names`` see it, or None if it cannot serve them.

  A model's call that takes ``capture`` (and ``perturbations`` for the
  backward probes) serves them itself; any other Flax or Equinox model is
  captured (:class:`CapturedNetwork`).
  """
  needs = frozenset().union(*(NEEDS[n] for n in names)) if names else frozenset()
  if needs <= built.takes:
    return ProbedNetwork(built, state)
  return CapturedNetwork(built, state) if built.forward is not None else None


def measure(names: Sequence[str], net: Any, params: Any, x: Any,
            loss_fn: Callable[[Any], Any]) -> dict[str, Any]:
  """The probes ``names`` of one model on the probe batch ``x`` (traceable).

  Args:
    names: probe names of :data:`PROBES`.
    net: the network.
    params: its params (a tree).
    x: the probe inputs.
    loss_fn: outputs -> the loss on the probe batch's targets.

  Returns:
    ``{name: (depth,) array}``.
  """
  out: dict[str, Any] = {}
  forward = [n for n in names if PROBES[n].forward is not None]
  if isinstance(net, CapturedNetwork):
    fwd, fwd_params, kwargs, captured, layers = net.capture(params, x)
    for name in names:
      entry = PROBES[name]
      if entry.forward is not None:
        out[name] = jnp.concatenate([entry.forward(captured.per_layer(k)) for k in layers])
      else:
        out[name] = entry.captured(fwd, fwd_params, x, loss_fn, layers, kwargs)
    return out
  if forward:
    _, captured = net.apply(params, x, capture=True)
    h = captured["preactivations"]
    for name in forward:
      out[name] = PROBES[name].forward(h)
  for name in names:
    if PROBES[name].network is not None:
      out[name] = PROBES[name].network(net, params, x, loss_fn)
  return out


__all__ = ["CapturedNetwork", "LAYER_CLASSES", "NAMES", "NEEDS", "PROBES", "ProbeEntry",
           "ProbedNetwork", "measure",
           "probed_network"]
