"""The sweep engine's public API, gathered from the modules that implement it.

* :mod:`jaxinit.sweep.program`: what is static about a shape group;
* :mod:`jaxinit.sweep.step`: the traced train step, evaluation and block;
* :mod:`jaxinit.sweep.compile`: the model mesh, memory budget and program cache;
* :mod:`jaxinit.sweep.keys`: where a model's params and minibatches come from;
* :mod:`jaxinit.sweep.loop`: the host loop over groups and chunks.
"""

from jaxinit.sweep.compile import (DEFAULT_CPU_BUDGET, TRAIN_EVAL_SIZE, GroupPrograms,
                                   MemoryBudgetError, ProgramCache, compile_group,
                                   default_memory_budget, device_count, device_data,
                                   make_program, model_mesh, parse_bytes, plan_group)
from jaxinit.sweep.loop import (GroupReport, ModelRecord, fetch, group_models, initial_arrays,
                                start_state, train_models)
from jaxinit.sweep.program import Program, network, optimizer, param_shapes
from jaxinit.sweep.step import (batch_indices, evaluate, init_opt_state, loss_and_accuracy,
                                params_fingerprint, ravel, train_block, train_step, unravel)

__all__ = ["DEFAULT_CPU_BUDGET", "GroupPrograms", "GroupReport", "MemoryBudgetError",
           "ModelRecord", "Program", "ProgramCache", "TRAIN_EVAL_SIZE", "batch_indices",
           "compile_group", "default_memory_budget", "device_count", "device_data", "evaluate",
           "fetch", "group_models", "init_opt_state", "initial_arrays", "loss_and_accuracy",
           "make_program", "model_mesh", "network", "optimizer", "param_shapes",
           "params_fingerprint", "parse_bytes", "plan_group", "ravel", "start_state",
           "train_block", "train_models", "train_step", "unravel"]
