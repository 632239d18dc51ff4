"""A sweep's folder cannot be corrupted: one writer, damaged and foreign chunks, other
configs and execution settings, umask and leftovers, full disks and Ctrl-C.

The sweep is ``sweep_scale.toml`` (18 tiny models, 2 per call) in chunks of one
call: 9 chunk files. Runs in this process share the compiled programs;
the full-disk and Ctrl-C runs are subprocesses of ``jaxinit sweep``.
"""

import csv
import json
import os
import signal
import stat
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

from jaxinit import sweep
from jaxinit.sweep import cli as sweep_cli
from jaxinit.sweep import store
from jaxinit.sweep.lock import FolderLock

CONFIG = Path(__file__).with_name("sweep_scale.toml")


def _config(**top):
  data = tomllib.loads(CONFIG.read_text())
  data.update(chunk_size=1, **top)
  return sweep.parse_config(data)


def _rows(out):
  with open(Path(out) / "results.csv", newline="") as f:
    return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def reference_dir(tmp_path_factory):
  out = tmp_path_factory.mktemp("reference")
  sweep.run_sweep(_config(), out_dir=out, progress=False)
  return out


@pytest.fixture(scope="module")
def reference(reference_dir):
  return _rows(reference_dir)


def _chunks(out):
  return sorted((Path(out) / "chunks").glob("chunk-*.npz"))


def _files(out):
  return {p.relative_to(out): (p.read_bytes(), p.stat().st_mtime_ns)
          for p in sorted(Path(out).rglob("*")) if p.is_file() and p.name != ".lock"}


def test_a_rerun_of_a_finished_sweep_keeps_it_and_trains_nothing(reference_dir, reference,
                                                                  monkeypatch, capsys):
  from jaxinit.sweep import loop  # pylint: disable=import-outside-toplevel
  (reference_dir / "heatmap_final_test_loss.png").write_bytes(b"a plot")
  before = _files(reference_dir)
  trained = []
  train = loop.train_models
  monkeypatch.setattr(loop, "train_models",
                      lambda config, todo, **kw: trained.extend(todo) or train(config, todo, **kw))
  capsys.readouterr()
  # No flags, the same config from its folder's own config.toml, through the command line.
  assert sweep_cli.main([str(reference_dir / "config.toml"), "--out", str(reference_dir),
                         "--no-progress", "--cpu-devices", "1"]) == 0
  assert trained == []
  assert "finished already: the 18 models" in capsys.readouterr().out
  assert _files(reference_dir) == before  # tables, run.json, config.toml, plots: byte for byte
  # A damaged chunk: only its models are trained again, then the tables are rewritten.
  chunk = _chunks(reference_dir)[0]
  os.truncate(chunk, 100)
  result = sweep.run_sweep(_config(), out_dir=reference_dir, progress=False)
  assert len(trained) == 2 and result.resumed_models == 16
  assert _rows(reference_dir) == reference
  (reference_dir / "chunks" / "damaged" / chunk.name).unlink()
  (reference_dir / "heatmap_final_test_loss.png").unlink()


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
  with FolderLock(tmp_path):
    for flags in ({}, {"overwrite": True}, {"resume": True}):
      with pytest.raises(sweep.SweepDirError, match=f"in use by process {os.getpid()} "):
        sweep.run_sweep(_config(), out_dir=tmp_path, progress=False, **flags)
  assert not _chunks(tmp_path)


def test_the_lock_of_a_killed_process_does_not_block(tmp_path):
  code = ("import sys, time; from jaxinit.sweep.lock import FolderLock; "
          f"FolderLock({str(tmp_path)!r}).acquire(); print('locked', flush=True); "
          "time.sleep(120)")
  holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
  assert holder.stdout.readline().strip() == "locked"
  with pytest.raises(Exception, match=f"process {holder.pid}"):
    FolderLock(tmp_path).acquire()
  holder.send_signal(signal.SIGKILL)
  holder.wait()
  FolderLock(tmp_path).acquire().release()


def _damage(chunks):
  truncated, flipped, foreign, short = chunks[:4]
  os.truncate(truncated, 1000)
  data = bytearray(flipped.read_bytes())
  middle = len(data) // 2
  data[middle:middle + 64] = bytes(64)  # a CRC error (or an unreadable member)
  flipped.write_bytes(bytes(data))
  np.savez(foreign, weights=np.ones(3))
  with np.load(short) as z:
    arrays = {k: z[k] for k in z.files}
  arrays["step_loss"] = arrays["step_loss"][:1]
  store.atomic_write(short, store.npz_bytes(arrays))


def test_damaged_chunks_are_set_aside_and_retrained(reference, tmp_path, capsys):
  config = _config()
  sweep.run_sweep(config, out_dir=tmp_path, progress=False)
  chunks = _chunks(tmp_path)
  assert len(chunks) == 9
  _damage(chunks)
  result = sweep.run_sweep(config, out_dir=tmp_path, progress=False, resume=True)
  err = capsys.readouterr().err
  assert err.count("will be trained again") == 4, err
  assert result.resumed_models == 18 - 4 * 2
  assert len(list((tmp_path / "chunks" / "damaged").iterdir())) == 4
  assert _rows(tmp_path) == reference


def test_other_configs_are_refused_even_without_config_toml(reference, tmp_path):
  a, b = _config(), _config(root_seed=1)
  sweep.run_sweep(a, out_dir=tmp_path, progress=False)
  with pytest.raises(sweep.SweepDirError, match="different config.*root_seed"):
    sweep.run_sweep(b, out_dir=tmp_path, progress=False, resume=True)
  (tmp_path / "config.toml").unlink()
  with pytest.raises(sweep.SweepDirError, match="9 chunk file.*different config"):
    sweep.run_sweep(b, out_dir=tmp_path, progress=False, resume=True)
  assert not (tmp_path / "config.toml").exists()  # a refused run writes nothing
  # A finished folder is not silently replaced by another config...
  with pytest.raises(sweep.SweepDirError, match="finished sweep of a different config"):
    sweep.run_sweep(b, out_dir=tmp_path, progress=False)
  (tmp_path / "heatmap_final_test_loss.png").write_bytes(b"old plot")
  # ...but --overwrite clears its outputs, old plots included.
  sweep.run_sweep(b, out_dir=tmp_path, progress=False, overwrite=True)
  assert not (tmp_path / "heatmap_final_test_loss.png").exists()
  rows = _rows(tmp_path)
  assert [r["model_id"] for r in rows] == [r["model_id"] for r in reference]
  assert all(r["init_fingerprint"] != ref["init_fingerprint"]
             for r, ref in zip(rows, reference))


def test_a_corrupt_config_toml_leaves_the_folder_resumable(reference, tmp_path, capsys):
  config = _config()
  sweep.run_sweep(config, out_dir=tmp_path, progress=False)
  (tmp_path / "results.csv").unlink()
  (tmp_path / "run.json").unlink()
  (tmp_path / "config.toml").write_bytes(b"\xff\xfe not toml [[[")
  sweep.run_sweep(config, out_dir=tmp_path, progress=False, resume=True)
  assert "config.toml is unreadable" in capsys.readouterr().err
  assert _rows(tmp_path) == reference
  # A damaged results folder: jaxinit plot says so in one line.
  from jaxinit import cli  # pylint: disable=import-outside-toplevel
  os.truncate(tmp_path / "curves.npz", 100)
  assert cli.main(["plot", str(tmp_path)]) == 2
  err = capsys.readouterr().err.strip()
  assert "damaged" in err and len(err.splitlines()) == 1, err


def test_chunks_of_other_execution_settings_are_refused(tmp_path, monkeypatch):
  config = _config()
  sweep.run_sweep(config, out_dir=tmp_path, progress=False)
  real = store.execution_identity()
  monkeypatch.setattr(store, "execution_identity", lambda: {**real, "jax": "0.0.1"})
  with pytest.raises(sweep.SweepDirError, match="other execution settings.*jax"):
    sweep.run_sweep(config, out_dir=tmp_path, progress=False, resume=True)


def test_files_honour_the_umask_and_leftovers_go(tmp_path):
  (tmp_path / "chunks").mkdir()
  leftovers = [tmp_path / ".results.csv.abc.tmp", tmp_path / "chunks" / ".chunk-1.npz.x.tmp"]
  for path in leftovers:
    path.write_bytes(b"torn")
  old = os.umask(0o027)
  try:
    sweep.run_sweep(_config(), out_dir=tmp_path, progress=False)
  finally:
    os.umask(old)
  for path in [tmp_path / "results.csv", tmp_path / "config.toml", _chunks(tmp_path)[0]]:
    assert stat.S_IMODE(path.stat().st_mode) == 0o640, path
  assert not any(path.exists() for path in leftovers)


def test_out_that_cannot_be_a_folder_is_one_line(tmp_path, capsys):
  config = tmp_path / "c.toml"
  config.write_text(sweep.to_toml(_config()))
  a_file = tmp_path / "file"
  a_file.write_text("x")
  for out, fragment in ((a_file, "is not a folder"), (a_file / "sub", "Not a directory")):
    assert sweep_cli.main([str(config), "--out", str(out), "--no-progress",
                           "--cpu-devices", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1, err


def _sweep_process(config, out, *extra, limit=None):
  """``jaxinit sweep`` in a subprocess, with a file-size limit (``ulimit -f``) if given."""
  args = ["sweep", str(config), "--out", str(out), "--no-progress", "--cpu-devices", "1",
          *extra]
  code = ("import resource, sys; from jaxinit import cli; "
          + (f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
             if limit is not None else "")
          + f"sys.exit(cli.main({args!r}))")
  # As from a terminal: SIGINT at its default (pytest-xdist workers ignore it, and a child
  # started with SIGINT ignored never turns Ctrl-C into KeyboardInterrupt).
  # Killed or limited mid-run: its possibly truncated writes stay out of the tests' shared
  # XLA compilation cache (conftest.py).
  env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
  return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def test_a_full_disk_is_one_line_and_resumable(reference, tmp_path):
  config = tmp_path / "c.toml"
  config.write_text(sweep.to_toml(_config()))
  out = tmp_path / "run"
  # Chunk files are ~4 KB: a 5 KB file-size limit fails a write partway (EFBIG).
  proc = _sweep_process(config, out, limit=5000)
  _, err = proc.communicate(timeout=300)
  assert proc.returncode == 2, err
  assert "File too large" in err and "models saved in" in err and "--resume" in err, err
  assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
  proc = _sweep_process(config, out, "--resume")
  _, err = proc.communicate(timeout=300)
  assert proc.returncode == 0, err
  assert _rows(out) == reference


def test_ctrl_c_exits_130_and_says_what_was_saved(reference, tmp_path):
  data = tomllib.loads(CONFIG.read_text())
  data.update(chunk_size=1)
  # Slow enough to interrupt: after the first of 9 chunks, 8 more (seconds each), so that a
  # test process starved by a loaded machine still signals a running sweep.
  data["grid"]["steps"] = 6000
  data["eval_every"] = 600
  config = tmp_path / "c.toml"
  config.write_text(sweep.to_toml(sweep.parse_config(data)))
  out = tmp_path / "run"
  proc = _sweep_process(config, out)
  deadline = time.monotonic() + 300
  while not _chunks(out):
    assert proc.poll() is None and time.monotonic() < deadline
    time.sleep(0.02)
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 130, err
  saved = 2 * len(_chunks(out))
  assert f"interrupted; {saved} of 18 models saved in {out}; rerun with --resume" in err, err
  assert "Traceback" not in err
  proc = _sweep_process(config, out, "--resume")
  out_text, err = proc.communicate(timeout=300)
  assert proc.returncode == 0, err
  assert f"resumed: {saved} models" in out_text
  assert json.loads((out / "run.json").read_text())["complete"]


USER_CODE = """
from flax import nnx


def make(*, in_features, out_features, rngs):
  return nnx.Linear(in_features, out_features, rngs=rngs)
"""


def test_resume_refuses_chunks_of_another_version_of_the_users_code(tmp_path):
  (tmp_path / "user_code_21.py").write_text(USER_CODE)
  config = {"name": "code", "seeds": 2, "chunk_size": 1, "eval_every": 10, "lanes": 1,
            "paths": [str(tmp_path)],
            "grid": {"model": "user_code_21:make", "dataset": "teacher_student", "steps": 10,
                     "batch_size": 16, "learning_rate": [0.1, 0.01]}}
  out = tmp_path / "out"
  sweep.run_sweep(config, out_dir=out, progress=False)
  _chunks(out)[0].unlink()
  # The model's module changes (the config does not): its chunks are another code's.
  (tmp_path / "user_code_21.py").write_text(USER_CODE + "# edited\n")
  with pytest.raises(sweep.SweepDirError, match="other execution settings .*user_code"):
    sweep.run_sweep(config, out_dir=out, progress=False, resume=True)
  (tmp_path / "user_code_21.py").write_text(USER_CODE)
  result = sweep.run_sweep(config, out_dir=out, progress=False, resume=True)
  assert result.resumed_models == 3  # the same code again: its chunks are this run's
