"""Sweeps: declare a grid, train every network in it in parallel.

A grid (Python dict or TOML file, schema in :mod:`jaxinit.sweep.config`)
names values for initializer (or rule set), activation, depth, width, weight
and bias variance, optimizer, learning rate, batch size, steps, dataset and
model, the model's own keyword arguments, and a number of seeds. The model is
a built-in network or your own (a Flax NNX or linen module, an Equinox
module, a pure ``(init, apply)`` pair: :mod:`jaxinit.sweep.kinds`), the data
built-in or your own arrays (:mod:`jaxinit.sweep.data`). Models that share
static shapes compile once and train together, ``vmap``-ed, in one
``lax.scan`` per block of steps (:mod:`jaxinit.sweep.loop`); each model's
initial params are ``jaxinit.initialize(model, rules, key)`` of its cell's
rules (:mod:`jaxinit.sweep.params`); results land in a folder
(:mod:`jaxinit.sweep.results`) that ``jaxinit plot`` draws.

The engine's modules, one job each: :mod:`~jaxinit.sweep.config` and
:mod:`~jaxinit.sweep.axes` (the schema; :mod:`~jaxinit.sweep.config_file` its
files), :mod:`~jaxinit.sweep.refs` (names and import paths), the registries
:mod:`~jaxinit.sweep.networks`, :mod:`~jaxinit.sweep.activations` (names and
DKS/TAT transforms), :mod:`~jaxinit.sweep.datasets`,
:mod:`~jaxinit.sweep.optimizers`, :mod:`~jaxinit.sweep.losses` and
:mod:`~jaxinit.sweep.probes` (what a grid can name;
:mod:`~jaxinit.sweep.registry` what they share), :mod:`~jaxinit.sweep.kinds`
(any model as the engine sees it; :mod:`~jaxinit.sweep.signatures` what a
factory or call accepts), :mod:`~jaxinit.sweep.data` (any data, checked),
:mod:`~jaxinit.sweep.program` (a shape group), :mod:`~jaxinit.sweep.preflight`
(checks before anything runs), :mod:`~jaxinit.sweep.step` (the traced train
step, evaluation and block; :mod:`~jaxinit.sweep.convolutions` keeps
convolutions on XLA:CPU's fast path inside it), :mod:`~jaxinit.sweep.compile`
(lanes, mesh, cache; :mod:`~jaxinit.sweep.memory` the memory budget),
:mod:`~jaxinit.sweep.inits` (what a model's initial state is made from: the
init axes, rules, draw and post-init; :mod:`~jaxinit.sweep.init_values` an
``init`` value checked and spelled canonically;
:mod:`~jaxinit.sweep.post_inits` the post-inits), :mod:`~jaxinit.sweep.keys`
and :mod:`~jaxinit.sweep.params` (where a model's params and batches come
from), :mod:`~jaxinit.sweep.loop` (the host loop;
:mod:`~jaxinit.sweep.progress` its progress line), :mod:`~jaxinit.sweep.run`
(a sweep from its config to its folder), :mod:`~jaxinit.sweep.store`,
:mod:`~jaxinit.sweep.lock` and :mod:`~jaxinit.sweep.identity` (the folder, and
what a run's bits depend on), :mod:`~jaxinit.sweep.results`,
:mod:`~jaxinit.sweep.plot`, :mod:`~jaxinit.sweep.cli`,
:mod:`~jaxinit.sweep.distributed`. Everything outside the package uses the
names below.

Examples:
  >>> from jaxinit import sweep
  >>> config = sweep.parse_config({
  ...     "seeds": 2, "eval_every": 50,
  ...     "grid": {"dataset": "teacher_student", "init": ["zeros", "he_normal"],
  ...              "depth": [2, 8], "learning_rate": [0.1, 0.01], "steps": 200}})
  >>> len(config.models()), len(sweep.group_models(config.models()))
  (16, 2)

  ``sweep.run_sweep(config, out_dir="runs/demo")`` trains the 16 models: two
  compiled programs, one per depth, each training ``lanes`` models per device
  at once; every model's results are bitwise the same in any company.
"""

from __future__ import annotations

from jaxinit.sweep.axes import ConfigError
from jaxinit.sweep.compile import ProgramCache, default_lanes
from jaxinit.sweep.config import (AXES, STATIC_AXES, VMAPPED_AXES, ModelSpec, SweepConfig, label,
                                  parse_config)
from jaxinit.sweep.config_file import load_config, saved_config, to_toml
from jaxinit.sweep.data import Dataset, from_arrays, load_dataset
from jaxinit.sweep.datasets import DATASETS
from jaxinit.sweep.identity import execution_identity
from jaxinit.sweep.memory import MemoryBudgetError, default_memory_budget, parse_bytes
from jaxinit.sweep.inits import INIT_AXES
from jaxinit.sweep.kinds import Built, Functional
from jaxinit.sweep.losses import LOSSES, METRICS
from jaxinit.sweep.loop import GroupReport, ModelRecord, group_models, train_models
from jaxinit.sweep.networks import MODELS
from jaxinit.sweep.optimizers import OPTIMIZERS
from jaxinit.sweep.post_inits import POST_INITS
from jaxinit.sweep.params import cell_rules
from jaxinit.sweep.probes import PROBES
from jaxinit.sweep.program import Program, network
from jaxinit.sweep.progress import Progress
from jaxinit.sweep.results import SweepResult, read_results, summarize, write_results
from jaxinit.sweep.run import run_sweep
from jaxinit.sweep.store import SweepDirError

__all__ = [
    # configs
    "AXES", "STATIC_AXES", "VMAPPED_AXES", "ConfigError", "ModelSpec", "SweepConfig", "label",
    "load_config", "parse_config", "saved_config", "to_toml",
    # registries: what a grid can name
    "DATASETS", "INIT_AXES", "LOSSES", "METRICS", "MODELS", "OPTIMIZERS", "POST_INITS", "PROBES",
    # your own models and data
    "Built", "Dataset", "Functional", "cell_rules", "from_arrays", "load_dataset", "network",
    # running
    "run_sweep", "train_models", "group_models", "Program", "ProgramCache", "Progress",
    "GroupReport", "ModelRecord", "MemoryBudgetError", "default_lanes", "default_memory_budget",
    "parse_bytes", "execution_identity",
    # results and folders
    "SweepResult", "SweepDirError", "read_results", "summarize", "write_results",
]
