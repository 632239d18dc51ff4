"""What a callable accepts, read from its signature: its keywords, the required ones, its mode.

A model factory gets those of the grid's static values it accepts, as
keyword arguments (:func:`parameters`; :mod:`jaxinit.sweep.networks` checks
a grid against them and :func:`required`), and a linen model's call the
train/eval keyword it takes (:func:`mode_kwargs`, used by
:mod:`jaxinit.sweep.kinds`). A class is read by its ``__init__`` when its own
signature is a metaclass's ``(*args, **kwargs)``.
"""

from __future__ import annotations

import inspect
from typing import Any


def _signature_params(fn: Any) -> list[inspect.Parameter] | None:
  """The parameters of ``fn``'s signature (a class's ``__init__`` when its own signature is a
  metaclass's ``(*args, **kwargs)``; ``self`` left out), or None when it has none."""
  candidates = [fn]
  if isinstance(fn, type):
    candidates = [fn, fn.__init__]
  for candidate in candidates:
    try:
      sig = inspect.signature(candidate)
    except (TypeError, ValueError):
      continue
    params = [p for p in sig.parameters.values() if p.name != "self"]
    if params and all(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params) and (
        candidate is not candidates[-1]):
      continue  # a metaclass's (*args, **kwargs): look at __init__
    return params
  return None


def parameters(fn: Any) -> tuple[frozenset[str], bool]:
  """The keyword names ``fn`` accepts, and whether it takes ``**kwargs``."""
  params = _signature_params(fn)
  if params is None:
    return frozenset(), True
  names = frozenset(p.name for p in params
                    if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
  return names, any(p.kind == p.VAR_KEYWORD for p in params)


def required(fn: Any) -> dict[str, bool]:
  """The parameters ``fn`` cannot be called without (no default), in signature order, less
  ``rngs`` and ``key`` (:func:`jaxinit.sweep.kinds.construct` gives them): each name to
  whether a keyword can give it (False for a positional-only one)."""
  params = _signature_params(fn) or []
  return {p.name: p.kind != p.POSITIONAL_ONLY for p in params
          if p.default is p.empty and p.name not in ("rngs", "key")
          and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


TRAIN_FLAGS: tuple[tuple[str, bool], ...] = (
    ("train", True), ("training", True), ("is_training", True), ("deterministic", False),
    ("use_running_average", False), ("eval", False), ("inference", False))
"""A linen call's train/eval keyword and its value in train mode (the first the call takes)."""


def mode_kwargs(fn: Any, train: bool) -> dict[str, bool]:
  """The keyword argument that puts a linen call in train or eval mode (``{}`` if none).

  Examples:
    >>> def call(self, x, train: bool = False): ...
    >>> mode_kwargs(call, True), mode_kwargs(call, False), mode_kwargs(lambda x: x, True)
    ({'train': True}, {'train': False}, {})
  """
  names, _ = parameters(fn)
  for name, value in TRAIN_FLAGS:
    if name in names:
      return {name: value if train else not value}
  return {}


__all__ = ["TRAIN_FLAGS", "mode_kwargs", "parameters", "required"]
