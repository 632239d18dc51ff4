"""The built-in datasets of a sweep, each an entry of :data:`DATASETS`.

* ``"mnist1d"``: MNIST-1D (Greydanus 2020), 4000 train / 1000 test signals of
  length 40 in 10 classes, generated offline by the ``mnist1d`` package with
  its default arguments and cached as ``.npz`` (generation takes seconds);
* ``"digits"``: scikit-learn's 8x8 digits, 1797 images as 64 features in 10
  classes, split 80/20 by a fixed permutation;
* ``"teacher_student"``: regression onto a random MLP teacher on Gaussian
  inputs (no dependencies), targets standardized to unit variance;
* ``"npz"``: arrays from a ``.npz`` file (option ``path``, relative to the
  config's folder; ``task``): ``x_train``, ``y_train``, ``x_test``, ``y_test``.

Each entry is a loader, its options with their defaults and checks: adding a
dataset touches :data:`DATASETS` only. Your own data needs no entry: see
:mod:`jaxinit.sweep.data`.

mnist1d and scikit-learn are imported only when their dataset is asked for
(``pip install -e ".[data]"``). The cache folder is ``$JAXINIT_CACHE_DIR``,
else ``$XDG_CACHE_HOME/jaxinit``, else ``~/.cache/jaxinit``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxinit import checks
from jaxinit.sweep import refs
from jaxinit.sweep.data import TASKS, Dataset, from_arrays


def cache_dir() -> Path:
  """Where generated datasets are cached (created on first use)."""
  if os.environ.get("JAXINIT_CACHE_DIR"):
    return Path(os.environ["JAXINIT_CACHE_DIR"])
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return Path(base) / "jaxinit"


def _missing_extra(package: str, dataset: str) -> ImportError:
  return ImportError(f"dataset {dataset!r} needs the {package!r} package; install the data "
                     f"extra: pip install -e \".[data]\" (or pip install {package})")


def _save_atomic(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
  """Writes ``path`` whole or not at all (other processes may be reading it)."""
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
  os.close(fd)
  try:
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def _mnist1d() -> Dataset:
  try:
    import mnist1d.data  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise _missing_extra("mnist1d", "mnist1d") from None
  args = mnist1d.data.get_dataset_args(as_dict=True)
  args.pop("url", None)
  digest = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:12]
  path = cache_dir() / f"mnist1d-{digest}.npz"
  if not path.exists():
    # make_dataset seeds numpy's global generator: leave the caller's state as it was.
    state = np.random.get_state()
    try:
      raw = mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())
    finally:
      np.random.set_state(state)
    _save_atomic(path, {"x": raw["x"], "y": raw["y"], "x_test": raw["x_test"],
                        "y_test": raw["y_test"]})
  with np.load(path) as arrays:
    return Dataset("mnist1d", arrays["x"].astype(np.float32), arrays["y"].astype(np.int32),
                   arrays["x_test"].astype(np.float32), arrays["y_test"].astype(np.int32),
                   "classification", 10)


def _npz(path: str, task: str, digest: str) -> Dataset:
  del digest  # checked when the config was read (_npz_options)
  return from_arrays(_read_npz(path), task=task, name=Path(path).name)


def _npz_options(where: str, options: dict[str, Any], paths: Sequence[str]) -> dict[str, Any]:
  """``path`` made absolute (relative ones from the config's folders) and the file's digest
  recorded, so that a resumed sweep notices a changed file."""
  if "path" not in options:
    raise ValueError(f"{where}: dataset 'npz' needs a path, e.g. "
                     f"{{name = \"npz\", path = \"data.npz\"}}")
  given = Path(options["path"])
  found = [given] if given.is_absolute() else [Path(p) / given for p in paths] + [given]
  path = next((f.resolve() for f in found if f.is_file()), None)
  if path is None:
    raise ValueError(f"{where}: no file {str(given)!r} (looked in "
                     f"{', '.join(str(f.parent) for f in found)})")
  try:
    arrays = _read_npz(str(path))
  except ValueError as err:
    raise ValueError(f"{where}: {err}") from None
  digest = refs.digest_of(*(arrays[k] for k in sorted(arrays)))
  if options.get("digest") not in (None, "", digest):
    raise ValueError(f"{where}: {path} has changed since this config recorded it (digest "
                     f"{options['digest']} -> {digest}); start a new sweep (--overwrite or "
                     f"another --out)")
  return {**options, "path": str(path), "digest": digest}


def _read_npz(path: str) -> dict[str, np.ndarray]:
  try:
    with np.load(path, allow_pickle=False) as arrays:
      return {k: arrays[k] for k in arrays.files}
  except (OSError, ValueError) as err:
    raise ValueError(f"cannot read {path} as .npz: {err}") from None


DIGITS_SIZE = 1797
"""Images in scikit-learn's digits."""


def _digits(test_fraction: float, split_seed: int) -> Dataset:
  try:
    from sklearn.datasets import load_digits  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise _missing_extra("scikit-learn", "digits") from None
  x, y = load_digits(return_X_y=True)
  order = np.random.default_rng(split_seed).permutation(len(y))
  n_test = int(round(test_fraction * len(y)))
  test, train = order[:n_test], order[n_test:]
  # Pixels are 0..16: standardize with the training set's statistics.
  mean, std = x[train].mean(), x[train].std()
  x = ((x - mean) / std).astype(np.float32)
  y = y.astype(np.int32)
  return Dataset("digits", x[train], y[train], x[test], y[test], "classification", 10)


def _teacher_student(n_train: int, n_test: int, in_features: int, out_features: int,
                     teacher_width: int, teacher_depth: int, teacher_activation: str,
                     noise: float, seed: int) -> Dataset:
  from jaxinit import gains  # pylint: disable=import-outside-toplevel
  phi = gains.ACTIVATIONS[teacher_activation]
  # numpy draws: the teacher does not depend on jax's PRNG settings.
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((n_train + n_test, in_features))
  gain = gains.gain(teacher_activation)
  h, fan_in = x, in_features
  for _ in range(teacher_depth):
    w = rng.standard_normal((fan_in, teacher_width)) * gain / np.sqrt(fan_in)
    h = np.asarray(phi(h @ w), np.float64)
    fan_in = teacher_width
  y = h @ rng.standard_normal((fan_in, out_features)) / np.sqrt(fan_in)
  y = (y - y[:n_train].mean(0)) / y[:n_train].std(0)
  y = y + noise * rng.standard_normal(y.shape)
  x, y = x.astype(np.float32), y.astype(np.float32)
  return Dataset("teacher_student", x[:n_train], y[:n_train], x[n_train:], y[n_train:],
                 "regression", out_features)


def _test_fraction(name: str, value: Any) -> float:
  value = checks.real(name, value, minimum=0.0, maximum=1.0, exclusive_minimum=True)
  n_test = int(round(value * DIGITS_SIZE))
  if not 1 <= n_test < DIGITS_SIZE:
    raise ValueError(f"{name} must leave at least one of the {DIGITS_SIZE} images on each "
                     f"side of the split, got {value!r} ({n_test} test images)")
  return value


def _activation(name: str, value: Any) -> str:
  from jaxinit import gains  # pylint: disable=import-outside-toplevel
  return checks.choice(name, value, sorted(gains.ACTIVATIONS))


@dataclasses.dataclass(frozen=True)
class DatasetEntry:
  """One dataset a grid can name.

  Attributes:
    load: ``load(**options) -> Dataset``, every option given.
    defaults: each option's default value.
    checks: each option's check ``check(where, value) -> canonical value``
      (raising TypeError/ValueError naming ``where``).
    prepare: ``prepare(where, options, paths) -> options``: the checked
      options completed from the filesystem (paths made absolute, digests).
  """
  load: Callable[..., Dataset]
  defaults: Mapping[str, Any]
  checks: Mapping[str, Callable[[str, Any], Any]]
  prepare: Callable[[str, dict[str, Any], Sequence[str]], dict[str, Any]] | None = None


_non_negative = checks.non_negative_int
_positive = checks.positive_int

DATASETS: dict[str, DatasetEntry] = {
    "mnist1d": DatasetEntry(_mnist1d, {}, {}),
    "digits": DatasetEntry(_digits, {"test_fraction": 0.2, "split_seed": 0},
                           {"test_fraction": _test_fraction, "split_seed": _non_negative}),
    "teacher_student": DatasetEntry(
        _teacher_student,
        {"n_train": 1024, "n_test": 256, "in_features": 16, "out_features": 1,
         "teacher_width": 32, "teacher_depth": 2, "teacher_activation": "tanh", "noise": 0.0,
         "seed": 0},
        {"n_train": _positive, "n_test": _positive, "in_features": _positive,
         "out_features": _positive, "teacher_width": _positive, "teacher_depth": _positive,
         "teacher_activation": _activation,
         "noise": lambda name, v: checks.real(name, v, minimum=0.0), "seed": _non_negative}),
}
"""Dataset names and how each is loaded and its options checked."""


def _text(name: str, value: Any) -> str:
  if not isinstance(value, str) or not value:
    raise TypeError(f"{name} must be a non-empty string, got {value!r}")
  return value


DATASETS["npz"] = DatasetEntry(
    _npz, {"task": "auto", "digest": ""},
    {"path": _text, "task": lambda name, v: checks.choice(name, v, TASKS), "digest": _text},
    _npz_options)

__all__ = ["DATASETS", "DatasetEntry", "cache_dir"]
