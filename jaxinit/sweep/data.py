"""A sweep's data: the built-in datasets or your own, checked once, kept on device whole.

A grid's ``dataset`` value is

* a name of :data:`jaxinit.sweep.datasets.DATASETS` (``"mnist1d"``,
  ``"digits"``, ``"teacher_student"``, ``"npz"``), or a table with its
  options (``{name = "npz", path = "data.npz"}``);
* an import path ``"package.module:load"`` of a function returning data,
  called with the table's other keys as keyword arguments;
* from Python: the data itself (a :class:`Dataset`, a dict with
  ``x_train``, ``y_train``, ``x_test``, ``y_test`` and optionally ``task``,
  or the four arrays as a tuple), recorded as ``"arrays:<digest>"``.

Data a function returns takes the same forms. Every dataset is checked when
the config is read (:func:`from_arrays`): train and test inputs of one shape,
as many targets as inputs, every value finite, class labels ``0..C-1``. The
task is inferred (integer labels of rank 1: classification; anything else:
regression; whole-number float labels with few values are regression with a
warning, see :func:`from_arrays`) or given (``task``).

Examples:
  >>> import numpy as np
  >>> ds = from_arrays({"x_train": np.ones((8, 3)), "y_train": np.arange(8) % 2,
  ...                   "x_test": np.ones((4, 3)), "y_test": np.arange(4) % 2})
  >>> ds.task, ds.num_outputs, ds.in_shape
  ('classification', 2, (3,))
  >>> from_arrays((np.ones((8, 3)), np.ones(7), np.ones((4, 3)), np.ones(4)))
  Traceback (most recent call last):
  ...
  ValueError: x_train has 8 examples but y_train has 7
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jaxinit import checks
from jaxinit.sweep import refs

Spec = str | dict[str, Any]
"""A name or reference, or a dict ``{"name": ..., **options}``."""

TASKS: tuple[str, ...] = ("auto", "classification", "regression")
"""Accepted values of a dataset's ``task``."""

_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
  """Train and test arrays (host numpy) and what kind of task they pose.

  Attributes:
    name: the dataset's name.
    x_train: float32 ``(n_train, ...)``.
    y_train: int32 labels ``(n_train,)`` (classification) or float32 targets
      ``(n_train, outputs)`` (regression).
    x_test: float32 ``(n_test, ...)`` (the same shape per example).
    y_test: as ``y_train``.
    task: ``"classification"`` or ``"regression"``.
    num_outputs: classes, or target dimensions.
  """
  name: str
  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  task: str
  num_outputs: int

  @property
  def in_shape(self) -> tuple[int, ...]:
    """One input's shape."""
    return tuple(int(d) for d in self.x_train.shape[1:])

  @property
  def in_features(self) -> int:
    """Features of one input, flattened (the signal length, for MNIST-1D)."""
    return math.prod(self.in_shape)


def _array(name: str, value: Any) -> np.ndarray:
  try:
    array = np.asarray(value)
  except Exception as err:  # noqa: BLE001  (anything numpy cannot take)
    raise TypeError(f"{name} is not an array: {type(value).__name__} ({err})") from None
  if array.dtype.kind not in "biuf":
    raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
  if array.ndim == 0 or len(array) == 0:
    raise ValueError(f"{name} is empty (shape {array.shape}); give at least one example")
  return array


def _finite(name: str, array: np.ndarray) -> None:
  if array.dtype.kind == "f" and not np.isfinite(array).all():
    bad = np.argwhere(~np.isfinite(array))[0]
    raise ValueError(f"{name} holds {array[tuple(bad)]} at index {tuple(int(i) for i in bad)}; "
                     f"every value must be finite")


CLASS_LIKE_MAX = 100
"""Most distinct values float labels may hold for :func:`from_arrays` to warn that they look
like classes."""


def _infer_task(y_train: np.ndarray, y_test: np.ndarray) -> str:
  """``task = "auto"``: integer (or bool) labels of shape ``(n,)`` are classes, anything else
  regression targets; float labels that look like classes get a warning."""
  if y_train.dtype.kind in "biu" and y_train.ndim == 1:
    return "classification"
  if y_train.dtype.kind in "biu" and y_train.shape[1:] == (1,):
    raise ValueError(f"y_train: integer labels of shape {y_train.shape}: give class labels as "
                     f"shape (n,) (y.ravel()), or task = \"regression\" for integer targets")
  y = np.concatenate([y_train.ravel(), y_test.ravel()])
  if y_train.ndim == 1 and y.dtype.kind == "f" and np.all(y == np.round(y)) and y.min() >= 0:
    classes = np.unique(y)
    if 2 <= len(classes) <= min(CLASS_LIKE_MAX, len(y_train) // 2):
      shown = ", ".join(f"{c:g}" for c in classes[:8]) + (", ..." if len(classes) > 8 else "")
      warnings.warn(
          f"y_train holds floats that are whole numbers >= 0 with {len(classes)} distinct "
          f"values ({shown}): task = \"auto\" treats float labels as regression targets; if "
          f"they are classes, give task = \"classification\" (the dataset's task option, a "
          f"data dict's \"task\" key, or from_arrays(..., task=\"classification\")) or "
          f"integer labels (y.astype(int)); give task = \"regression\" to silence this",
          UserWarning, stacklevel=3)
  return "regression"


def from_arrays(data: Any, *, task: str = "auto", name: str = "arrays") -> Dataset:
  """A checked :class:`Dataset` from arrays.

  Args:
    data: a :class:`Dataset`, a dict with ``x_train``, ``y_train``,
      ``x_test``, ``y_test`` (and optionally ``task``, ``name``), or a
      4-tuple of those arrays.
    task: ``"auto"``, ``"classification"`` or ``"regression"``. ``"auto"``
      infers it from the labels' dtype: integer or bool labels of shape
      ``(n,)`` are classes, float labels regression targets (the dtype says
      what the data's author meant: scikit-learn's ``type_of_target`` calls
      whole-number floats classes, but counts and ratings are whole numbers
      too). Float labels of shape ``(n,)`` that are all whole numbers >= 0
      with 2 to ``min(100, n_train // 2)`` distinct values look like classes
      stored as floats (read from a CSV, say): they stay regression targets,
      with a ``UserWarning`` naming ``task`` and how to give ``task =
      "classification"``; giving ``task`` explicitly silences it.
    name: the dataset's name.

  Warns:
    UserWarning: float labels that look like classes under ``task = "auto"``.

  Raises:
    TypeError, ValueError: naming the array at fault: missing, not numbers,
      empty, of mismatched lengths or shapes, not finite, labels that are not
      integers >= 0, test labels that no training example has.
  """
  if isinstance(data, Dataset):
    data = {**{k: getattr(data, k) for k in _ARRAYS}, "name": data.name, "task": data.task}
  if isinstance(data, (tuple, list)):
    if len(data) != 4:
      raise TypeError(f"data as a tuple must be (x_train, y_train, x_test, y_test), got "
                      f"{len(data)} items")
    data = dict(zip(_ARRAYS, data))
  if not isinstance(data, Mapping):
    raise TypeError(f"data must be a Dataset, a dict with {', '.join(_ARRAYS)}, or those "
                    f"four arrays as a tuple; got {type(data).__name__}")
  unknown = sorted(set(data) - set(_ARRAYS) - {"task", "name"})
  missing = [k for k in _ARRAYS if k not in data]
  if unknown or missing:
    raise ValueError(f"data needs {', '.join(_ARRAYS)} (and may give task, name); "
                     f"missing: {missing or 'none'}, unknown: {unknown or 'none'}")
  task = checks.choice("task", data.get("task", task), TASKS)
  name = str(data.get("name", name))
  x_train, y_train, x_test, y_test = (_array(k, data[k]) for k in _ARRAYS)
  for x, y, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
    if len(x) != len(y):
      raise ValueError(f"x_{split} has {len(x)} examples but y_{split} has {len(y)}")
  if x_train.shape[1:] != x_test.shape[1:]:
    raise ValueError(f"x_train's examples have shape {x_train.shape[1:]} but x_test's "
                     f"{x_test.shape[1:]}")
  if y_train.shape[1:] != y_test.shape[1:]:
    raise ValueError(f"y_train's targets have shape {y_train.shape[1:]} but y_test's "
                     f"{y_test.shape[1:]}")
  for key, array in zip(_ARRAYS, (x_train, y_train, x_test, y_test)):
    _finite(key, array)
  if task == "auto":
    task = _infer_task(y_train, y_test)
  if task == "classification":
    for key, y in (("y_train", y_train), ("y_test", y_test)):
      if y.ndim != 1 or np.any(y != np.round(y)) or np.any(y < 0):
        raise ValueError(f"{key}: class labels must be integers >= 0 of shape (n,), got "
                         f"dtype {y.dtype}, shape {y.shape}")
    unseen = np.setdiff1d(y_test, y_train)
    if unseen.size:
      raise ValueError(f"y_test holds label(s) {unseen[:10].tolist()} that y_train never has "
                       f"(train labels: {np.unique(y_train)[:20].tolist()}): a model cannot "
                       f"learn a class it never sees; split the data so that train holds "
                       f"every class")
    classes = int(y_train.max()) + 1
    y_train, y_test = y_train.astype(np.int32), y_test.astype(np.int32)
  else:
    y_train, y_test = (y.astype(np.float32).reshape(len(y), -1) for y in (y_train, y_test))
    classes = y_train.shape[1]
  return Dataset(name, x_train.astype(np.float32), y_train, x_test.astype(np.float32), y_test,
                 task, classes)


def _plain(value: Any, where: str) -> Any:
  from jaxinit.sweep.axes import plain  # pylint: disable=import-outside-toplevel
  return plain(value, where)


def check_dataset(where: str, value: Any, paths: Sequence[str] = ()) -> Spec:
  """A grid's dataset value, canonical; arrays and functions are checked here, once.

  Raises:
    TypeError, ValueError: naming ``where`` and what is wrong.

  Examples:
    >>> check_dataset("[grid] dataset", {"name": "teacher_student", "noise": 1})
    {'name': 'teacher_student', 'noise': 1.0}
  """
  from jaxinit.sweep.datasets import DATASETS  # pylint: disable=import-outside-toplevel
  options: dict[str, Any] = {}
  if isinstance(value, Mapping) and not set(_ARRAYS) <= set(value):
    value, options = refs.named(value)
  try:
    if isinstance(value, (Dataset, Mapping, tuple, list)):
      dataset = from_arrays(value)
      ref = "arrays:" + refs.digest_of(*(getattr(dataset, k) for k in _ARRAYS))
      _LOADED[json.dumps(ref)] = dataset
      return refs.remember(ref, dataset)
    value, _ = refs.named(value)
    if not isinstance(value, str):
      raise TypeError(f"must be a dataset name ({', '.join(DATASETS)}), an import path "
                      f"'package.module:load', data (arrays), or a table with a 'name' key; "
                      f"got {value!r}")
    if value in DATASETS:
      entry = DATASETS[value]
      for key in options:
        if key not in entry.checks:
          accepted = ", ".join(sorted(entry.checks)) or "none"
          raise ValueError(f"dataset {value!r} has no option {key!r}; accepted: {accepted}"
                           f"{checks.did_you_mean(key, entry.checks)}")
      options = {k: entry.checks[k](f"{where}: option {k!r} of dataset {value!r}", v)
                 for k, v in options.items()}
      if entry.prepare is not None:
        options = entry.prepare(where, options, paths)
      return {"name": value, **options} if options else value
    if not refs.is_reference(value):
      raise ValueError(f"unknown dataset {value!r}; built-in: {', '.join(DATASETS)}, or an "
                       f"import path 'package.module:load'{checks.did_you_mean(value, DATASETS)}")
    spec = {"name": value, **_plain(options, where)} if options else value
    load_dataset(spec, paths)  # a function's data are checked now, at load time
    return spec
  except (TypeError, ValueError) as err:
    text = str(err)
    raise type(err)(text if text.startswith(where) else f"{where}: {text}") from None


_LOADED: dict[str, Dataset] = {}


def load_dataset(spec: Spec, paths: Sequence[str] = ()) -> Dataset:
  """Loads (or generates) a dataset; repeated calls return the same object.

  Args:
    spec: a canonical dataset value (:func:`check_dataset`): a name of
      :data:`~jaxinit.sweep.datasets.DATASETS` or a reference, or a dict
      ``{"name": ..., **options}`` (teacher_student: ``n_train``, ``n_test``,
      ``in_features``, ``out_features``, ``teacher_width``,
      ``teacher_depth``, ``teacher_activation``, ``noise``, ``seed``;
      digits: ``test_fraction``, ``split_seed``; npz: ``path``, ``task``).
    paths: folders to import a function's module from.

  Returns:
    The :class:`Dataset`.

  Raises:
    ImportError: naming the extra to install when mnist1d or scikit-learn is
      missing. ValueError, TypeError: an unknown name, a bad option, data
      that fail :func:`from_arrays`.
  """
  from jaxinit.sweep.datasets import DATASETS  # pylint: disable=import-outside-toplevel
  name = spec.get("name") if isinstance(spec, Mapping) else spec
  if name in DATASETS:
    spec = check_dataset("dataset", spec, paths)  # canonical options (loads nothing)
  key = json.dumps(spec, sort_keys=True)
  if key not in _LOADED:
    options = dict(spec) if isinstance(spec, Mapping) else {}
    options.pop("name", None)
    if name in DATASETS:
      entry = DATASETS[name]
      _LOADED[key] = entry.load(**{**entry.defaults, **options})
    else:
      source = refs.resolve(name, "dataset", paths)
      if callable(source) and not isinstance(source, Dataset):
        try:
          source = source(**options)
        except Exception as err:  # noqa: BLE001  (any failure of the user's loader, named)
          text = str(err).splitlines()[0] if str(err) else ""
          raise ValueError(f"dataset {name!r} with options {options}: "
                           f"{type(err).__name__}: {text}") from None
      _LOADED[key] = from_arrays(source, name=name.rpartition(":")[2])
  return _LOADED[key]


__all__ = ["Dataset", "Spec", "TASKS", "check_dataset", "from_arrays", "load_dataset"]
