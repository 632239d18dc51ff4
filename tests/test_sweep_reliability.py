"""Reliability at experiment scale (slow: ``pytest -m slow tests/test_sweep_reliability.py -s``).

Every scenario ends with the folder's ``results.csv`` and ``curves.npz`` compared
bit for bit with an uninterrupted run's:

* SIGKILL at 10 random moments, for chunk sizes that do and do not divide the
  group, each followed by ``--resume``;
* chunk sizes 2 and 48 on the issue's grid (48 teacher-student models, 4000
  Adam steps), and 1, 2 and 4 devices;
* damaged chunks, a foreign chunk, two writers at once, a full disk (a small
  file-size limit) and Ctrl-C at random moments.
"""

import csv
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jaxinit import sweep

pytestmark = pytest.mark.slow

# 20 models in one group (5 inits x 2 learning rates x 2 seeds), one or two per call.
RESUME = {
    "name": "resume", "seeds": 2, "eval_every": 50, "probes": ["second_moment", "grad_norm"],
    "grid": {"dataset": {"name": "teacher_student", "n_train": 512, "n_test": 128},
             "init": ["he_normal", "orthogonal", "glorot_uniform", "lecun_normal",
                      {"name": "normal", "stddev": 0.1}],
             "depth": 3, "width": 64, "optimizer": "adam", "learning_rate": [0.01, 0.003],
             "batch_size": 128, "steps": 1000}}

# The issue's grid: 4 inits x depth 2/4 x 2 learning rates x 3 seeds, 4000 Adam steps.
ISSUE = {
    "name": "issue", "seeds": 3, "eval_every": 500, "probes": ["second_moment"],
    "grid": {"dataset": "teacher_student",
             "init": ["he_normal", "orthogonal", "glorot_uniform", "lecun_normal"],
             "depth": [2, 4], "optimizer": "adam", "learning_rate": [0.01, 0.001],
             "steps": 4000}}


def _write(tmp_path, data, **top):
  config = sweep.parse_config({**data, **top})
  path = tmp_path / f"{config.name}-{len(list(tmp_path.glob('*.toml')))}.toml"
  path.write_text(sweep.to_toml(config))
  return path


def _start(config, out, *extra, devices=1, limit=None):
  args = ["sweep", str(config), "--out", str(out), "--no-progress", "--cpu-devices",
          str(devices), *extra]
  code = ("import resource, sys; from jaxinit import cli; "
          + (f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
             if limit else "") + f"sys.exit(cli.main({args!r}))")
  # Killed or limited mid-run: its possibly truncated writes stay out of the tests' shared
  # XLA compilation cache (conftest.py).
  env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
  return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env)


def _interrupted(config, out, seconds, sig):
  """A sweep started, then sent ``sig`` after ``seconds``; the process, not yet waited for."""
  proc = _start(config, out)
  time.sleep(seconds)
  proc.send_signal(sig)
  return proc


def _finish(proc, expect=0):
  out, err = proc.communicate(timeout=1800)
  assert proc.returncode == expect, err[-3000:]
  return out, err


def _text(path):
  try:
    return path.read_text()
  except OSError:
    return ""


def _table(out):
  with open(Path(out) / "results.csv", newline="") as f:
    rows = list(csv.DictReader(f))
  with np.load(Path(out) / "curves.npz") as z:
    curves = {k: z[k] for k in z.files}
  return rows, curves


def _same(a, b):
  rows_a, curves_a = a
  rows_b, curves_b = b
  return rows_a == rows_b and curves_a.keys() == curves_b.keys() and all(
      np.array_equal(curves_a[k], curves_b[k], equal_nan=True) for k in curves_a)


@pytest.fixture(scope="module")
def resume_reference(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("reference")
  out = tmp / "run"
  start = time.monotonic()
  _finish(_start(_write(tmp, RESUME), out))
  return _table(out), time.monotonic() - start


@pytest.mark.parametrize("chunk_size", [2, 8])  # 20 models: 2 divides them, 8 does not
def test_sigkill_at_random_moments_then_resume(resume_reference, tmp_path, chunk_size):
  reference, seconds = resume_reference
  config = _write(tmp_path, RESUME, chunk_size=chunk_size)
  rng = random.Random(chunk_size)
  same = 0
  for trial in range(10):
    out = tmp_path / f"run{trial}"
    _interrupted(config, out, rng.uniform(0.1, seconds), signal.SIGKILL).wait()
    saved = len(list((out / "chunks").glob("chunk-*.npz"))) if (out / "chunks").exists() else 0
    _finish(_start(config, out, "--resume"))
    same += _same(_table(out), reference)
    print(f"chunk_size {chunk_size}, kill {trial}: {saved} chunk(s) saved before the kill")
  print(f"chunk_size {chunk_size}: {same}/10 resumed runs bitwise identical")
  assert same == 10


def test_chunk_sizes_and_devices_on_the_issue_grid(tmp_path):
  tables = {}
  for chunk_size, devices in ((2, 1), (48, 1), (2, 2), (5, 4)):
    out = tmp_path / f"chunk{chunk_size}-devices{devices}"
    _finish(_start(_write(tmp_path, ISSUE, chunk_size=chunk_size), out, devices=devices))
    tables[(chunk_size, devices)] = _table(out)
  first = tables[(2, 1)]
  equal = {key: _same(table, first) for key, table in tables.items()}
  print(f"issue grid (48 models, 4000 Adam steps): bitwise equal to chunk 2 / 1 device: "
        f"{equal}")
  assert all(equal.values())


def test_damaged_and_foreign_chunks(resume_reference, tmp_path):
  reference, _ = resume_reference
  config = _write(tmp_path, RESUME, chunk_size=2)
  out = tmp_path / "run"
  _finish(_start(config, out))
  chunks = sorted((out / "chunks").glob("chunk-*.npz"))
  os.truncate(chunks[0], 1000)
  chunks[1].write_bytes(chunks[1].read_bytes()[:-200] + bytes(200))
  np.savez(chunks[2], foo=np.zeros(2))
  (out / "results.csv").unlink()
  _, err = _finish(_start(config, out, "--resume"))
  assert err.count("will be trained again") == 3, err
  assert _same(_table(out), reference)
  # A chunk of another config (another root seed): refused, the folder untouched.
  other = tmp_path / "other"
  _finish(_start(_write(tmp_path, RESUME, chunk_size=2, root_seed=5), other))
  foreign = sorted((other / "chunks").glob("chunk-*.npz"))[0]
  (out / "chunks" / "chunk-foreign.npz").write_bytes(foreign.read_bytes())
  _, err = _finish(_start(config, out, "--resume"), expect=2)
  assert "different config" in err and len(err.strip().splitlines()) == 1, err
  print("damaged (3 kinds) set aside and retrained: bitwise; foreign chunk refused")


def test_concurrent_writers(resume_reference, tmp_path):
  reference, _ = resume_reference
  config = _write(tmp_path, RESUME, chunk_size=2)
  out = tmp_path / "run"
  refused = 0
  for flags in ((), ("--overwrite",), ("--resume",)):
    first = _start(config, out, "--overwrite")
    deadline = time.monotonic() + 120
    while f'"pid": {first.pid},' not in _text(out / ".lock"):  # the first holds the lock
      assert time.monotonic() < deadline and first.poll() is None
      time.sleep(0.05)
    second = _start(config, out, *flags)
    _, err = _finish(second, expect=2)
    refused += f"in use by process {first.pid}" in err
    _finish(first)
    assert _same(_table(out), reference)
  print(f"concurrent writers: {refused}/3 second writers refused naming the first")
  assert refused == 3


def test_disk_full_then_resume(resume_reference, tmp_path):
  reference, _ = resume_reference
  config = _write(tmp_path, RESUME, chunk_size=2)
  ok = 0
  for limit in (4000, 20000, 60000):
    out = tmp_path / f"run{limit}"
    _, err = _finish(_start(config, out, limit=limit), expect=2)
    assert "File too large" in err and "Traceback" not in err, err
    _finish(_start(config, out, "--resume"))
    ok += _same(_table(out), reference)
  print(f"file-size limits 4/20/60 kB: {ok}/3 resumed bitwise")
  assert ok == 3


def test_ctrl_c_at_random_moments_then_resume(resume_reference, tmp_path):
  reference, seconds = resume_reference
  config = _write(tmp_path, RESUME, chunk_size=2)
  rng = random.Random(0)
  ok = 0
  for trial in range(5):
    out = tmp_path / f"run{trial}"
    proc = _interrupted(config, out, rng.uniform(1.0, seconds), signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    if proc.returncode == 0:  # finished before the signal
      ok += _same(_table(out), reference)
      continue
    assert proc.returncode == 130 and "rerun with --resume" in err, err
    assert "Traceback" not in err, err
    _finish(_start(config, out, "--resume"))
    ok += _same(_table(out), reference)
  print(f"Ctrl-C: {ok}/5 resumed bitwise")
  assert ok == 5


def test_the_issue_grid_config_is_valid():
  # Guards the constants above against schema changes (fast, but in this file for context).
  assert len(sweep.parse_config(ISSUE).models()) == 48
  assert len(sweep.parse_config(RESUME).models()) == 20
