"""What a grid names by text, and the Python objects behind the names.

A grid's model, dataset, loss, metrics and optimizer are plain data (so a
sweep's config can be written to TOML, compared on ``--resume`` and hashed
into keys). Each names what it uses by

* a registry name: ``"mlp"``, ``"mnist1d"``, ``"adam"``, ``"cross_entropy"``;
* an import path ``"package.module:attribute"`` (the attribute may be
  dotted, ``"module:Outer.factory"``), the folders of the config's ``paths``
  (by default the config file's own folder) searched first, so a
  ``models.py`` beside the config is ``"models:CNN"``; or a file
  ``"path/to/file.py:attribute"`` (relative to those folders); then the
  installed packages, then the working folder (last, so that it shadows
  none of them);
* from Python, the object itself: a function or class is recorded as its
  import path ``"module:qualname"`` (and that object is used, so classes
  defined in a notebook work in the process that defined them), arrays as
  ``"arrays:<digest>"`` (:func:`digest_of` their bytes).

Examples:
  >>> import optax
  >>> reference(optax.adam)
  'optax:adam'
  >>> resolve("optax:adam", "optimizer") is optax.adam
  True
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jaxinit import checks

_OBJECTS: dict[str, Any] = {}
"""Objects given from Python, by their reference text (the latest one wins: a class
redefined in a notebook replaces the old one)."""


def is_reference(text: Any) -> bool:
  """Whether ``text`` is an import path or a registered reference (it holds a ``":"``)."""
  return isinstance(text, str) and ":" in text


def _importable_as(obj: Any) -> str | None:
  """The shortest public ``module:name`` under which ``obj`` imports (``optax:adam``)."""
  module = getattr(obj, "__module__", None)
  qualname = getattr(obj, "__qualname__", None)
  if not isinstance(module, str) or not isinstance(qualname, str):
    return None
  parts = module.split(".")
  for cut in range(1, len(parts) + 1):  # "optax._src.alias" is also "optax"
    name = ".".join(parts[:cut])
    loaded = sys.modules.get(name)
    if loaded is not None and _get_attr(loaded, qualname) is obj:
      return f"{name}:{qualname}"
  return f"{module}:{qualname}"


def _get_attr(obj: Any, dotted: str) -> Any:
  for name in dotted.split("."):
    obj = getattr(obj, name, None)
  return obj


def reference(obj: Any) -> str:
  """The reference text of a Python object given in a grid (and remembers the object).

  Raises:
    TypeError: an object without a module and qualified name (use a ``def``
      or a class, not an instance).
  """
  ref = _importable_as(obj)
  if ref is None:
    shown = repr(obj).splitlines()[0]
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    what = (shown if isinstance(obj, type) else
            f"an instance of {type(obj).__qualname__} ({shown})")
    raise TypeError(f"{what} has no import path (__module__ and __qualname__); give a "
                    f"function or class (not an instance), or name it by "
                    f"'package.module:attribute'")
  _OBJECTS[ref] = obj
  return ref


def named(value: Any) -> tuple[Any, dict[str, Any]]:
  """A grid value as ``(name, options)``: a table ``{"name": ..., **options}`` split, a
  function or class replaced by its reference (:func:`reference`), anything else as given.

  Examples:
    >>> named({"name": "momentum", "momentum": 0.9})
    ('momentum', {'momentum': 0.9})
  """
  options: dict[str, Any] = {}
  if isinstance(value, Mapping):
    options = dict(value)
    value = options.pop("name", None)
  if callable(value) and not isinstance(value, str):
    value = reference(value)
  return value, options


def digest_of(*arrays: Any) -> str:
  """16 hex digits of the SHA-256 of arrays' dtypes, shapes and bytes."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  h = hashlib.sha256()
  for a in arrays:
    a = np.ascontiguousarray(a)
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
  return h.hexdigest()[:16]


def remember(ref: str, obj: Any) -> str:
  """Keeps ``obj`` under ``ref`` (e.g. a dataset under ``"arrays:<digest>"``)."""
  _OBJECTS[ref] = obj
  return ref


def _with_paths(paths: Sequence[str]) -> None:
  for folder in reversed([str(Path(p)) for p in paths]):
    if folder not in sys.path:
      sys.path.insert(0, folder)


def _load_file(file: str, paths: Sequence[str]) -> Any:
  candidates = [Path(file)] if Path(file).is_absolute() else (
      [Path(p) / file for p in paths] + [Path(file)])
  for path in candidates:
    if path.is_file():
      path = path.resolve()
      name = f"_jaxinit_sweep_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
      if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        _with_paths([str(path.parent)])
        sys.modules[name] = module
        try:
          spec.loader.exec_module(module)
        except BaseException:
          del sys.modules[name]
          raise
      return sys.modules[name]
  raise ModuleNotFoundError(f"no file {file!r} (looked in {[str(c) for c in candidates]})")


def resolve(ref: str, what: str, paths: Sequence[str] = ()) -> Any:
  """The object ``ref`` names (an import path or a reference of :func:`reference`).

  Args:
    ref: ``"package.module:attribute"`` or ``"file.py:attribute"``.
    what: ``"model"``, ``"dataset"``, ... (for messages).
    paths: folders searched first (added to ``sys.path``, so the module's own
      imports of its neighbours work), then the installed packages, then the
      working folder.

  Raises:
    ValueError: the module cannot be imported (with the reason) or has no
      such attribute (with "did you mean").
  """
  if ref in _OBJECTS:
    return _OBJECTS[ref]
  module_name, _, attr = ref.partition(":")
  if not module_name or not attr:
    raise ValueError(f"{what} {ref!r} is not an import path 'package.module:attribute'")
  if ref.startswith("arrays:"):
    raise ValueError(f"{what} {ref!r} was given as arrays from Python; pass the arrays again "
                     f"(a config written to a folder cannot hold them)")
  _with_paths(paths)
  cwd = os.getcwd()
  if cwd not in sys.path and "" not in sys.path:
    sys.path.append(cwd)  # after the installed packages: it shadows none of them
  folders = ", ".join(dict.fromkeys([*map(str, paths), cwd]))
  file = module_name.endswith(".py")
  try:
    module = _load_file(module_name, paths) if file else importlib.import_module(module_name)
  except Exception as err:  # noqa: BLE001  (any error of the user's module, named)
    if isinstance(err, ModuleNotFoundError) and (file or err.name is None or (
        f"{module_name}.".startswith(f"{err.name}."))):  # the named module, not one it imports
      kind, installed = ("file", "") if file else ("module", " or the installed packages")
      raise ValueError(
          f"{what} {ref!r}: no {kind} {module_name!r} in {folders} (the config's folder, its "
          f"paths, the working folder){installed}; add the folder that holds it to the "
          f"config's paths = [...] (relative to the config's folder)"
          f"{'' if file else ', or install it'}") from None
    raise ValueError(f"{what} {ref!r}: cannot import {module_name!r} (searched {folders} "
                     f"first): {type(err).__name__}: {err}") from None
  obj = _get_attr(module, attr)
  if obj is None:
    names = [n for n in dir(module) if not n.startswith("_")]
    raise ValueError(f"{what} {ref!r}: module {module_name!r} has no attribute {attr!r}"
                     f"{checks.did_you_mean(attr.split('.')[-1], names)}")
  return obj


__all__ = ["digest_of", "is_reference", "named", "reference", "remember", "resolve"]
