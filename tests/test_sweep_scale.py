"""Sweeps at scale: devices, processes, memory budgets, and resuming a killed sweep.

The reference is a run in this process on one device. Other runs go through
``jaxinit sweep`` in subprocesses (8 fake CPU devices; 2 processes on
localhost talking over gloo; a run killed with SIGKILL and resumed). A
model's initialization must match bit for bit (its ``init_fingerprint``),
its final losses within 1e-5.
"""

import csv
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jaxinit import sweep
from jaxinit.sweep import cli as sweep_cli
from jaxinit.sweep import engine, store

CONFIG = Path(__file__).with_name("sweep_scale.toml")
LOSSES = ("final_train_loss", "final_test_loss", "best_test_loss")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  out = tmp_path_factory.mktemp("reference")
  sweep.run_sweep(CONFIG, out_dir=out, progress=False)
  return _rows(out)


def _rows(out):
  with open(Path(out) / "results.csv", newline="") as f:
    return list(csv.DictReader(f))


def _assert_same_table(rows, reference):
  assert [r["model_id"] for r in rows] == [r["model_id"] for r in reference]
  assert len({r["model_id"] for r in rows}) == len(rows) == 18
  for row, ref in zip(rows, reference):
    assert row["init_fingerprint"] == ref["init_fingerprint"], row["model_id"]
    for column in LOSSES:
      assert math.isclose(float(row[column]), float(ref[column]), rel_tol=0, abs_tol=1e-5), (
          row["model_id"], column, row[column], ref[column])


def _jaxinit(*args, env=None, **kwargs):
  return subprocess.Popen([sys.executable, "-m", "jaxinit", "sweep", *map(str, args)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env, **kwargs)


def _finish(proc, timeout=300):
  out, err = proc.communicate(timeout=timeout)
  assert proc.returncode == 0, err[-3000:]
  return out, err


def test_eight_devices_equal_one(reference, tmp_path):
  # 18 models in chunks of 8 over 8 devices: three calls, the last padded with 6 copies.
  _finish(_jaxinit(CONFIG, "--out", tmp_path, "--cpu-devices", 8, "--no-progress"))
  rows = _rows(tmp_path)
  _assert_same_table(rows, reference)
  assert len(list((tmp_path / "chunks").glob("chunk-*.npz"))) == 3


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
  # One model per chunk: 18 chunk files, saved as they finish.
  config = tmp_path / "config.toml"
  config.write_text(CONFIG.read_text().replace("chunk_size = 8", "chunk_size = 1"))
  out = tmp_path / "run"
  proc = _jaxinit(config, "--out", out, "--cpu-devices", 1, "--no-progress")
  deadline = time.monotonic() + 300
  while len(list((out / "chunks").glob("chunk-*.npz"))) < 3:
    assert proc.poll() is None, "the sweep ended before it could be killed"
    assert time.monotonic() < deadline
    time.sleep(0.01)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  saved = list((out / "chunks").glob("chunk-*.npz"))
  assert 3 <= len(saved) < 18 and not (out / "results.csv").exists()
  for path in saved:  # every file the kill left is whole
    with np.load(path) as z:
      assert z["model_id"].shape == (1,)

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
  assert f"resumed: {len(saved)} models" in out_text
  _assert_same_table(_rows(out), reference)
  assert not list((out / "chunks").glob(".*.tmp"))


def test_memory_budget_sizes_chunks(reference):
  config = sweep.load_config(CONFIG)
  models = config.models()
  spec = models[0]
  dataset = sweep.load_dataset(spec["dataset"])
  data = engine.device_data(engine.make_program(spec, dataset, config, 1), dataset,
                            config.probe_batch)
  cache = engine.ProgramCache()
  whole, _ = engine.plan_group(spec, dataset, config, 18, data, 2**30, cache)
  assert whole.num_models == 6  # 18 models in chunks of <= 8: three balanced calls
  one, _ = engine.plan_group(spec, dataset, config, 18, data, whole.memory_bytes - 1, cache)
  assert one.num_models < whole.num_models
  assert one.memory_bytes <= whole.memory_bytes - 1
  with pytest.raises(engine.MemoryBudgetError, match="memory_budget: .* raise memory_budget"):
    engine.plan_group(spec, dataset, config, 18, data, 1000, cache)
  result = sweep.run_sweep(config, progress=False, memory_budget=one.memory_bytes, cache=cache)
  assert result.groups[0]["chunk_models"] == one.num_models
  _assert_same_table([{k: str(v) for k, v in r.items()} for r in result.rows], reference)


def test_bad_budget_and_flags_are_named(tmp_path):
  with pytest.raises(ValueError, match="memory_budget must be .* got '4 parsecs'"):
    engine.parse_bytes("4 parsecs")
  with pytest.raises(ValueError, match="missing: num_processes, process_id"):
    sweep.distributed.initialize("localhost:1234")
  with pytest.raises(ValueError, match="process_id must be in"):
    sweep.distributed.initialize("localhost:1234", 2, 2)
  with pytest.raises(ValueError, match="resume and overwrite exclude"):
    store.RunStore(tmp_path, sweep.load_config(CONFIG)).prepare(resume=True, overwrite=True)


@pytest.mark.slow
def test_twenty_thousand_models_within_four_gib(tmp_path):
  import resource  # pylint: disable=import-outside-toplevel
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
