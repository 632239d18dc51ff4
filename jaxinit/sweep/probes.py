"""The probe registry: every per-layer probe a sweep's ``probes`` list names.

A probe maps one model's network, params and probe batch to a ``(depth,)``
array (one value per probed layer), measured at every evaluation. Forward
probes read the per-layer signal of one capturing forward pass
(``net.apply(params, x, capture=True)["preactivations"]``), shared by all of
them; the others get the network and compute what they need. They run inside
the compiled evaluation, ``vmap``-ed over models. Adding a probe touches
:data:`PROBES` only.

Which models can be probed is decided in one place, :func:`probed_network`:
today, models whose call takes ``capture=True`` and returns
``(outputs, {"preactivations": (depth, ...)})`` (and, for ``grad_norm``,
``perturbations=`` added to that signal), as :mod:`jaxinit.models`' networks
do, any kind of model (NNX, linen, Equinox, pure). A generic capture of
any Flax or Equinox model's layer outputs plugs in there.

* ``second_moment``, ``mean``, ``variance``: of each layer's pre-activations
  (:func:`jaxinit.probes.layer_moments`);
* ``dead_fraction``: units that never fire on the batch
  (:func:`jaxinit.probes.dead_fraction`);
* ``grad_norm``: the norm of the loss gradient with respect to each layer's
  pre-activations (:func:`jaxinit.probes.gradient_norms`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax


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


@dataclasses.dataclass(frozen=True)
class ProbeEntry:
  """One probe.

  Attributes:
    forward: ``forward(h) -> (depth,)`` of the stacked per-layer signal, or None.
    network: ``network(net, params, x, loss_fn) -> (depth,)``, for probes that
      need more than one forward pass (``loss_fn`` maps outputs to the loss).
  """
  forward: Callable[[Any], Any] | None = None
  network: Callable[..., Any] | None = None


PROBES: dict[str, ProbeEntry] = {
    "second_moment": ProbeEntry(forward=_moment("second_moment")),
    "mean": ProbeEntry(forward=_moment("mean")),
    "variance": ProbeEntry(forward=_moment("variance")),
    "dead_fraction": ProbeEntry(forward=_dead_fraction),
    "grad_norm": ProbeEntry(network=_grad_norm),
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


def probed_network(built: Any, names: Sequence[str], state: Any = None) -> ProbedNetwork | None:
  """The model as the probes ``names`` see it, or None if it cannot serve them.

  The hook for capture: a model's call that takes ``capture`` (and
  ``perturbations`` for the backward probes) serves them itself.
  """
  needs = frozenset().union(*(NEEDS[n] for n in names)) if names else frozenset()
  return ProbedNetwork(built, state) if needs <= built.takes else None


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
  if forward:
    _, captured = net.apply(params, x, capture=True)
    h = captured["preactivations"]
    for name in forward:
      out[name] = PROBES[name].forward(h)
  for name in names:
    if PROBES[name].network is not None:
      out[name] = PROBES[name].network(net, params, x, loss_fn)
  return out


__all__ = ["NAMES", "NEEDS", "PROBES", "ProbeEntry", "ProbedNetwork", "measure",
           "probed_network"]
