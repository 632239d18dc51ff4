"""Sweep your own model from Python: an NNX CNN on your arrays, init rules x learning rate x seeds.

The same sweep as ``configs/user_cnn.toml`` (which names the model and the data
by import path), given as objects: the ``CNN`` class and the arrays
themselves. Run it with ``python -m jaxinit_experiments.user_model OUT``
(``--steps N`` for a shorter run), then ``jaxinit plot OUT``; ``--resume``
continues an interrupted run.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

from flax import nnx

import jaxinit
from jaxinit import sweep

CONFIGS = Path(__file__).parent / "configs"


def user_cnn() -> Any:
  """``configs/user_cnn.py``: the model and data of the example (a user's own file)."""
  spec = importlib.util.spec_from_file_location("user_cnn", CONFIGS / "user_cnn.py")
  module = importlib.util.module_from_spec(spec)
  sys.modules.setdefault("user_cnn", module)
  spec.loader.exec_module(sys.modules["user_cnn"])
  return sys.modules["user_cnn"]


def grid(steps: int = 600, seeds: int = 4, **data_options: Any) -> dict[str, Any]:
  """The sweep as a Python dict: the model class and the arrays given as objects."""
  mine = user_cnn()
  rules = jaxinit.rules.RuleSet.of([(nnx.Conv, jaxinit.he_normal()),
                                    ("head/kernel", jaxinit.zeros)])
  return {
      "name": "user_cnn", "seeds": seeds, "eval_every": min(100, steps), "probes": [],
      "grid": {"model": mine.CNN, "dataset": mine.signals(**data_options), "channels": 16,
               "depth": 2, "init": ["he_normal", "lecun_normal", rules],
               "optimizer": "adam", "learning_rate": [0.003, 0.01, 0.03],
               "batch_size": 64, "steps": steps}}


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("out", type=Path)
  parser.add_argument("--steps", type=int, default=600)
  parser.add_argument("--resume", action="store_true")
  args = parser.parse_args(argv)
  result = sweep.run_sweep(grid(args.steps), out_dir=args.out, resume=args.resume)
  best = min(result.rows, key=lambda row: row["final_test_loss"])
  print(f"{result}; best: init {best['init']}, learning rate {best['learning_rate']}, "
        f"test accuracy {best['final_test_accuracy']:.3f}")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
