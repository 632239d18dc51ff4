"""The probe registry: every per-layer probe a sweep's ``probes`` list names.

A probe maps one model's network, params and probe batch to a ``(depth,)``
array (one value per probed layer), measured at every evaluation. Forward
probes read the per-layer signal of one capturing forward pass
(``net.apply(params, x, capture=True)["preactivations"]``), shared by all of
them; the others get the network and compute what they need. They run inside
the compiled evaluation, ``vmap``-ed over models. Adding a probe touches
:data:`PROBES` only.

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


__all__ = ["NAMES", "PROBES", "ProbeEntry", "measure"]
