"""Sweeps at scale: devices, processes, chunk sizes, memory budgets, and resuming a
killed sweep.

The reference is a run in this process on one device. Other runs go through
``jaxinit sweep`` in subprocesses (8 fake CPU devices; 2 processes on
localhost talking over gloo; a run killed with SIGKILL and resumed). Every
model's row (losses, accuracies, probes, initial and final fingerprints) must
match bit for bit.
"""

import csv
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

from jaxinit import sweep
from jaxinit.sweep import cli as sweep_cli
from jaxinit.sweep import compile as compile_lib
from jaxinit.sweep import distributed
from jaxinit.sweep import program as program_lib
from jaxinit.sweep import store

CONFIG = Path(__file__).with_name("sweep_scale.toml")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  out = tmp_path_factory.mktemp("reference")
  sweep.run_sweep(CONFIG, out_dir=out, progress=False)
  return _rows(out)


def _csv(value):
  """A row value as results.csv writes it."""
  from jaxinit.sweep.results import _csv_value  # pylint: disable=import-outside-toplevel
  return _csv_value(value)


def _rows(out):
  with open(Path(out) / "results.csv", newline="") as f:
    return list(csv.DictReader(f))


def _assert_same_table(rows, reference):
  assert [r["model_id"] for r in rows] == [r["model_id"] for r in reference]
  assert len({r["model_id"] for r in rows}) == len(rows) == 18
  for row, ref in zip(rows, reference):
    assert row == ref, row["model_id"]  # every column, as written: bit for bit


def _jaxinit(*args, env=None, **kwargs):
  return subprocess.Popen([sys.executable, "-m", "jaxinit", "sweep", *map(str, args)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env, **kwargs)


def _finish(proc, timeout=300):
  out, err = proc.communicate(timeout=timeout)
  assert proc.returncode == 0, err[-3000:]
  return out, err


def test_eight_devices_equal_one(reference, tmp_path):
  # 18 models, 2 per device per call over 8 devices: two calls of 16 (the last padded
  # with 14 copies), a chunk each.
  _finish(_jaxinit(CONFIG, "--out", tmp_path, "--cpu-devices", 8, "--no-progress"))
  rows = _rows(tmp_path)
  _assert_same_table(rows, reference)
  assert len(list((tmp_path / "chunks").glob("chunk-*.npz"))) == 2


def test_chunk_sizes_do_not_change_results(reference):
  for chunk_size in (2, 48):
    data = tomllib.loads(CONFIG.read_text())
    data["chunk_size"] = chunk_size
    result = sweep.run_sweep(data, progress=False)
    _assert_same_table([{k: _csv(v) for k, v in r.items()} for r in result.rows], reference)


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def test_two_processes_equal_one(reference, tmp_path):
  port = _free_port()
  procs = [_jaxinit(CONFIG, "--out", tmp_path, "--cpu-devices", 2, "--no-progress",
                    "--coordinator", f"localhost:{port}", "--num-processes", 2,
                    "--process-id", i) for i in range(2)]
  outs = [_finish(p) for p in procs]
  assert "process 1 of 2: 2 of 4 devices" in outs[1][1]
  assert "models in" in outs[0][0] and "models in" not in outs[1][0]  # process 0 reports
  _assert_same_table(_rows(tmp_path), reference)


def test_sigkill_then_resume_equals_uninterrupted(reference, tmp_path, capsys):
  # One call (two models) per chunk: 9 chunk files, saved as they finish.
  config = tmp_path / "config.toml"
  config.write_text(CONFIG.read_text().replace("chunk_size = 8", "chunk_size = 1"))
  out = tmp_path / "run"
  # Killed mid-run: its writes stay out of the tests' shared XLA cache (conftest.py).
  env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
  proc = _jaxinit(config, "--out", out, "--cpu-devices", 1, "--no-progress", env=env)
  deadline = time.monotonic() + 300
  while len(list((out / "chunks").glob("chunk-*.npz"))) < 2:
    assert proc.poll() is None, "the sweep ended before it could be killed"
    assert time.monotonic() < deadline
    time.sleep(0.01)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  saved = list((out / "chunks").glob("chunk-*.npz"))
  assert 2 <= len(saved) < 9 and not (out / "results.csv").exists()
  for path in saved:  # every file the kill left is whole
    with np.load(path) as z:
      assert z["model_id"].shape == (2,)

  # Not resuming into an interrupted sweep is refused; so is another config
  # (in this process: both are refused before anything trains).
  assert sweep_cli.main([str(config), "--out", str(out), "--no-progress"]) == 2
  assert "pass --resume to continue it" in capsys.readouterr().err
  other = tmp_path / "other.toml"
  other.write_text(config.read_text().replace("[0.01, 0.03]", "[0.01, 0.05]"))
  assert sweep_cli.main([str(other), "--out", str(out), "--resume", "--no-progress"]) == 2
  err = capsys.readouterr().err
  assert "different config" in err and "learning_rate" in err
  assert len(list((out / "chunks").glob("chunk-*.npz"))) == len(saved)  # nothing touched

  # Resume (in chunks of 8 this time: chunking does not change results).
  out_text, _ = _finish(_jaxinit(CONFIG, "--out", out, "--resume", "--cpu-devices", 2,
                                 "--no-progress"))
  assert f"resumed: {2 * len(saved)} models" in out_text
  _assert_same_table(_rows(out), reference)
  assert not list((out / "chunks").glob(".*.tmp"))


def test_memory_budget_sets_lanes(reference):
  data = tomllib.loads(CONFIG.read_text())
  data["lanes"] = "auto"
  config = sweep.parse_config(data)
  spec = config.models()[0]
  dataset = sweep.load_dataset(spec["dataset"])
  host = program_lib.device_data(compile_lib.make_program(spec, dataset, config, 1), dataset,
                                 config.probe_batch)
  cache = compile_lib.ProgramCache()
  whole, _ = compile_lib.plan_group(spec, dataset, config, host, 2**30, cache)
  assert whole.program.lanes == 64  # a tiny model: the most lanes
  fit, _ = compile_lib.plan_group(spec, dataset, config, host, whole.memory_bytes - 1, cache)
  assert fit.program.lanes < 64 and fit.memory_bytes <= whole.memory_bytes - 1
  with pytest.raises(sweep.MemoryBudgetError, match="memory_budget: .* raise"):
    compile_lib.plan_group(spec, dataset, config, host, 1000, cache, lanes=fit.program.lanes)
  result = sweep.run_sweep(config, progress=False, memory_budget=fit.memory_bytes, cache=cache)
  assert result.groups[0]["lanes"] == fit.program.lanes
  # The same lanes asked for explicitly: the same bits.
  data["lanes"] = fit.program.lanes
  again = sweep.run_sweep(data, progress=False, cache=cache)
  as_text = lambda rows: [{k: _csv(v) for k, v in r.items()} for r in rows]  # noqa: E731
  assert as_text(again.rows) == as_text(result.rows)


def test_bad_budget_and_flags_are_named(tmp_path):
  with pytest.raises(ValueError, match="memory_budget must be .* got '4 parsecs'"):
    sweep.parse_bytes("4 parsecs")
  with pytest.raises(ValueError, match="missing: num_processes, process_id"):
    distributed.initialize("localhost:1234")
  with pytest.raises(ValueError, match="process_id must be in"):
    distributed.initialize("localhost:1234", 2, 2)
  with pytest.raises(ValueError, match="resume and overwrite exclude"):
    store.RunStore(tmp_path, sweep.load_config(CONFIG)).prepare(resume=True, overwrite=True)


@pytest.mark.slow
def test_twenty_thousand_models_within_four_gib(tmp_path):
  config = Path(__file__).parents[1] / "experiments" / "configs" / "scale_20k.toml"
  # A fresh process, so RUSAGE_CHILDREN's peak is this sweep's.
  probe = (f"import resource, subprocess, sys; subprocess.run([sys.executable, '-m', "
           f"'jaxinit', 'sweep', {str(config)!r}, '--out', {str(tmp_path)!r}, '--no-progress', "
           f"'--memory-budget', '4GiB'], check=True); "
           f"print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
  out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                       check=True, timeout=3000).stdout
  peak_kib = int(out.strip().splitlines()[-1])
  assert len(_rows(tmp_path)) == 20000
  assert peak_kib * 1024 < 4 * 2**30, f"peak RSS {peak_kib / 2**20:.2f} GiB"
