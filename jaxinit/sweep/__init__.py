"""Sweeps: declare a grid, train every network in it in parallel.

A grid (Python dict or TOML file, schema in :mod:`jaxinit.sweep.config`)
names values for initializer, activation, depth, width, weight and bias
variance, optimizer, learning rate, batch size, steps, dataset and model, and
a number of seeds. Models that share static shapes compile once and train
together, ``vmap``-ed, in one ``lax.scan`` per block of steps
(:mod:`jaxinit.sweep.loop`); results land in a folder
(:mod:`jaxinit.sweep.results`) that ``jaxinit plot`` draws.

Examples:
  >>> from jaxinit import sweep
  >>> config = sweep.parse_config({
  ...     "seeds": 2, "eval_every": 50,
  ...     "grid": {"dataset": "teacher_student", "init": ["zeros", "he_normal"],
  ...              "depth": [2, 8], "learning_rate": [0.1, 0.01], "steps": 200}})
  >>> len(config.models()), len(sweep.group_models(config.models()))
  (16, 2)

  ``sweep.run_sweep(config, out_dir="runs/demo")`` trains the 16 models: two
  compiled programs, one per depth, each training 8 models at once.
"""

from __future__ import annotations

from jaxinit.sweep.config import (AXES, ConfigError, ModelSpec, SweepConfig, label,
                                  load_config, parse_config, to_toml)
from jaxinit.sweep.data import Dataset, load_dataset
from jaxinit.sweep.compile import ProgramCache
from jaxinit.sweep.loop import group_models, train_models
from jaxinit.sweep.program import Program
from jaxinit.sweep.results import SweepResult, read_results, summarize, write_results
from jaxinit.sweep.run import run_sweep
from jaxinit.sweep.store import SweepDirError


__all__ = ["AXES", "ConfigError", "Dataset", "ModelSpec", "Program", "ProgramCache",
           "SweepConfig", "SweepDirError", "SweepResult", "group_models", "label", "load_config",
           "load_dataset", "parse_config", "read_results", "run_sweep", "summarize",
           "to_toml", "train_models", "write_results"]
