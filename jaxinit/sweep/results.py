"""A sweep's results on disk: one CSV row per model, curves in one ``.npz``.

``DIR/results.csv``
  one row per model: ``model_id``, ``group`` (shape group index), ``seed``,
  every grid axis, model axes included (tables written as
  ``name(option=value)``), then ``final_*`` / ``best_*`` train and test loss,
  accuracy and every metric of the config's ``metrics`` (``train_*`` is
  measured on the first 1000 training examples; accuracy is empty for
  regression), ``best_test_loss_step``, ``init_fingerprint`` and
  ``final_fingerprint`` (checksums of the initial and the trained params'
  bits, see :func:`jaxinit.sweep.step.params_fingerprint`, written
  ``0x`` and 8 hex digits so that every reader keeps them text),
  ``diverged`` and ``diverged_step`` (the first step whose loss or update was
  not finite; empty when none), and per probe
  ``{initial,final}_{probe}_{first,last}_layer``: the probe at the first and
  the last probed layer, at step 0 and at the end.
``DIR/curves.npz``
  arrays over models in the CSV's order: ``model_id`` ``(M,)``,
  ``eval_step`` ``(M, E)`` (-1 pads models with fewer evaluations),
  ``train_loss``, ``train_accuracy``, ``test_loss``, ``test_accuracy`` (and
  ``{train,test}_{metric}``) ``(M, E)``, ``step_loss`` ``(M, S)`` (each step's minibatch loss; after
  the diverging step's, NaN), ``diverged_step`` ``(M,)`` and ``probe_{name}`` ``(M, E, L)``
  (NaN pads shallower models).
``DIR/config.toml``
  the resolved config: ``jaxinit sweep DIR/config.toml`` runs the sweep again.
``DIR/run.json``
  ``complete``, wall time, per group its lanes, models per call and per
  chunk, compile and run time; models taken from an earlier run
  (``--resume``), devices, processes, versions and the execution identity
  (:func:`jaxinit.sweep.identity.execution_identity`).
``DIR/chunks/``
  every finished program call's results (:mod:`jaxinit.sweep.store`), what
  ``--resume`` continues from.

Every file is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import platform
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxinit.sweep import config as config_lib
from jaxinit.sweep import config_file
from jaxinit.sweep.config import ModelSpec, SweepConfig

CURVE_METRICS: tuple[str, ...] = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")
"""Curves every sweep has; the config's ``metrics`` add ``train_{name}`` and ``test_{name}``."""


def metric_names(records: Sequence[Any]) -> list[str]:
  """The scores the records hold besides the loss: ``accuracy`` first, then the config's."""
  names: list[str] = []
  for r in records:
    for key in r.metrics:
      if key.startswith("test_") and key != "test_loss" and key[5:] not in names:
        names.append(key[5:])
  return sorted(names, key=lambda n: n != "accuracy")


@dataclasses.dataclass
class SweepResult:
  """Everything a sweep produced.

  Attributes:
    config: the sweep.
    models: the models trained, in the rows' order.
    rows: one dict per model (the columns of ``results.csv``).
    curves: the arrays of ``curves.npz``.
    groups: per shape group ``{"key", "num_models", "chunk_models", "compile_s", "run_s"}``.
    wall_s: seconds from start to the last result, compile included.
    initial_params: per model, with ``keep_params`` (else None).
    final_params: per model, with ``keep_params`` (else None).
    resumed_models: models whose results were read from a resumed folder
      (their params are not kept).
  """
  config: SweepConfig
  models: list[ModelSpec]
  rows: list[dict[str, Any]]
  curves: dict[str, np.ndarray]
  groups: list[dict[str, Any]]
  wall_s: float
  initial_params: list[Any] | None = None
  final_params: list[Any] | None = None
  resumed_models: int = 0

  def __repr__(self) -> str:
    healthy = sum(not r.get("diverged") for r in self.rows)
    return (f"SweepResult(name={self.config.name!r}, models={len(self.models)}, "
            f"groups={len(self.groups)}, varying={self.config.varying_axes()}, "
            f"trained={healthy}, diverged={len(self.rows) - healthy}, "
            f"resumed={self.resumed_models}, wall_s={self.wall_s:.1f})")

  def to_pandas(self) -> Any:
    """The rows as a ``pandas.DataFrame`` (one row per model, ``results.csv``'s columns).

    Needs pandas (``pip install -e ".[analysis]"``).
    """
    try:
      import pandas as pd  # pylint: disable=import-outside-toplevel
    except ImportError:
      raise ImportError("SweepResult.to_pandas needs pandas: pip install -e \".[analysis]\" "
                        "(or pip install pandas)") from None
    return pd.DataFrame(self.rows, columns=list(self.rows[0]) if self.rows else None)

  def row(self, model: ModelSpec) -> dict[str, Any]:
    """The results row of ``model`` (matched by its cell and seed)."""
    model_id = model.model_id
    for row in self.rows:
      if row["model_id"] == model_id:
        return row
    raise KeyError(f"model {model_id} is not part of this sweep")


def fingerprint_text(value: Any) -> str:
  """A uint32 params fingerprint as text: ``0x`` and 8 hex digits (never read as a number).

  Examples:
    >>> fingerprint_text(2**31)
    '0x80000000'
  """
  return f"0x{int(value):08x}"


def _nan_best(values: np.ndarray, fn: Any) -> float:
  values = np.asarray(values, np.float64)
  return float(fn(values[np.isfinite(values)])) if np.isfinite(values).any() else math.nan


def summarize(models: Sequence[ModelSpec], records: Sequence[Any], group_of: Sequence[int],
              probes: Sequence[str], ignored: Sequence[Sequence[str]] | None = None
              ) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
  """Rows and padded curve arrays from the engine's per-model records.

  Args:
    models: the models.
    records: their :class:`jaxinit.sweep.loop.ModelRecord`.
    group_of: each model's shape-group index.
    probes: the probe names.
    ignored: per model, the axes its model does not take
      (:func:`jaxinit.sweep.networks.ignored_axes`): left empty (None) in its row.

  Returns:
    ``(rows, curves)`` as described in the module docstring.
  """
  num = len(models)
  scores = metric_names(records)
  curve_names = ["train_loss", "test_loss"] + [f"{s}_{m}" for m in scores
                                               for s in ("train", "test")]
  evals = max(len(r.eval_step) for r in records)
  steps = max(len(r.step_loss) for r in records)
  layers = max((r.metrics[p].shape[-1] for r in records for p in probes), default=0)
  curves: dict[str, np.ndarray] = {
      "model_id": np.array([m.model_id for m in models], np.int64),
      "eval_step": np.full((num, evals), -1, np.int64),
      "step_loss": np.full((num, steps), np.nan, np.float32),
      "diverged_step": np.array([r.diverged_step for r in records], np.int64)}
  for name in sorted(curve_names, key=lambda n: (n.split("_", 1)[1] != "loss", n)):
    curves[name] = np.full((num, evals), np.nan, np.float32)
  for p in probes:
    curves[f"probe_{p}"] = np.full((num, evals, layers), np.nan, np.float32)
  rows = []
  for i, (model, record, group) in enumerate(zip(models, records, group_of)):
    e = len(record.eval_step)
    curves["eval_step"][i, :e] = record.eval_step
    curves["step_loss"][i, :len(record.step_loss)] = record.step_loss
    for name in curve_names:
      if name in record.metrics:
        curves[name][i, :e] = record.metrics[name]
    row: dict[str, Any] = {"model_id": model.model_id, "group": group, "seed": model.seed}
    for axis, value in model.cell.items():
      row[axis] = config_lib.label(value) if isinstance(value, (dict, list)) else value
    for axis in (() if ignored is None else ignored[i]):
      row[axis] = None
    m = record.metrics
    nan = np.full(e, np.nan)
    for split in ("train", "test"):
      row[f"final_{split}_loss"] = float(m[f"{split}_loss"][-1])
      row[f"best_{split}_loss"] = _nan_best(m[f"{split}_loss"], np.min)
      for score in scores:
        values = m.get(f"{split}_{score}", nan)
        row[f"final_{split}_{score}"] = float(values[-1])
        row[f"best_{split}_{score}"] = _nan_best(values, np.max)
    test = np.asarray(m["test_loss"], np.float64)
    row["best_test_loss_step"] = (int(record.eval_step[int(np.nanargmin(test))])
                                  if np.isfinite(test).any() else None)
    if "params_fingerprint" in m:
      row["init_fingerprint"] = fingerprint_text(m["params_fingerprint"][0])
      row["final_fingerprint"] = fingerprint_text(m["params_fingerprint"][-1])
    row["diverged"] = record.diverged_step >= 0
    row["diverged_step"] = record.diverged_step if record.diverged_step >= 0 else None
    for p in probes:
      values = np.asarray(m[p])  # (evals, layers)
      curves[f"probe_{p}"][i, :e, :values.shape[1]] = values
      for when, index in (("initial", 0), ("final", -1)):
        row[f"{when}_{p}_first_layer"] = float(values[index, 0])
        row[f"{when}_{p}_last_layer"] = float(values[index, -1])
    rows.append(row)
  return rows, curves


def _csv_value(value: Any) -> str:
  if value is None:
    return ""
  if isinstance(value, float):
    return "" if math.isnan(value) else repr(value)
  return str(value)


def write_results(result: SweepResult, out_dir: str | Path) -> Path:
  """Writes ``results.csv``, ``curves.npz``, ``config.toml`` and ``run.json``.

  Args:
    result: the sweep's results.
    out_dir: the folder (created if missing).

  Returns:
    The folder's path.
  """
  from jaxinit.sweep.store import (  # pylint: disable=import-outside-toplevel
      atomic_write, execution_identity, npz_bytes)
  out = Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  columns = list(result.rows[0]) if result.rows else ["model_id"]
  text = io.StringIO(newline="")
  writer = csv.writer(text)
  writer.writerow(columns)
  for row in result.rows:
    writer.writerow([_csv_value(row.get(c)) for c in columns])
  # Each file whole or not at all: a sweep killed while writing leaves no torn table.
  atomic_write(out / "results.csv", text.getvalue())
  atomic_write(out / "curves.npz", npz_bytes(result.curves))
  atomic_write(out / "config.toml", config_file.to_toml(result.config))
  import jax  # pylint: disable=import-outside-toplevel
  meta = {"name": result.config.name, "num_models": len(result.models), "complete": True,
          "wall_s": result.wall_s, "resumed_models": result.resumed_models,
          "groups": result.groups,
          "versions": {"jax": jax.__version__, "python": platform.python_version()},
          "device": str(jax.devices()[0].device_kind), "devices": len(jax.devices()),
          "processes": jax.process_count(), "platform": platform.platform(),
          "execution": execution_identity()}
  atomic_write(out / "run.json", json.dumps(meta, indent=2) + "\n")
  return out


def _parse_cell(text: str) -> Any:
  if text == "":
    return None
  for cast in (int, float):
    try:
      return cast(text)
    except ValueError:
      pass
  return {"True": True, "False": False}.get(text, text)


def read_results(out_dir: str | Path, *, check: bool = True
                 ) -> tuple[list[dict[str, Any]], dict[str, np.ndarray], SweepConfig]:
  """Reads a results folder back.

  Args:
    out_dir: a folder :func:`write_results` wrote.
    check: validate ``config.toml`` again (:func:`~jaxinit.sweep.config_file.load_config`:
      its models and datasets must resolve); False reads it as written
      (:func:`~jaxinit.sweep.config_file.saved_config`), as plots do, so a sweep of
      arrays or a model given from Python reads back without them.

  Returns:
    ``(rows, curves, config)``: rows with numbers parsed (empty cells None,
    axis tables as their text labels, fingerprints as text), the curve
    arrays, the config.

  Raises:
    ValueError: a damaged file. OSError: a missing one. ConfigError: a bad
      ``config.toml``.
  """
  out = Path(out_dir)
  try:
    with open(out / "results.csv", newline="") as f:
      rows = [{k: _parse_cell(v) for k, v in row.items()} for row in csv.DictReader(f)]
    with np.load(out / "curves.npz") as arrays:
      curves = {k: arrays[k] for k in arrays.files}
  except (zipfile.BadZipFile, zlib.error, EOFError, UnicodeDecodeError, csv.Error) as err:
    raise ValueError(f"{out} holds a damaged results file ({type(err).__name__}: {err}); "
                     f"rerun the sweep with --overwrite") from None
  read = config_file.load_config if check else config_file.saved_config
  return rows, curves, read(out / "config.toml")


__all__ = ["CURVE_METRICS", "SweepResult", "metric_names", "read_results", "summarize",
           "write_results"]
