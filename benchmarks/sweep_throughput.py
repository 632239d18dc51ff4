"""The sweep engine against two loops over single models, on the same grids, in one process.

Grids (one shape group each): tanh MLPs of depth 8 on MNIST-1D, Adam, 4
initializers x 4 learning rates x seeds:

* ``width64``: 256 models, width 64, batch 128, 200 steps;
* ``width256``: 32 models, width 256, batch 128, 40 steps (16x the work per
  model-step);
* ``small``: 256 models, width 32, batch 32, 200 steps, and ``tiny``: width
  16, batch 16 (small networks, where a step's fixed costs matter).

Contenders, all running the engine's own single-model step (same batches,
optimizer and divergence mask):

* engine: the group's compiled block program (``jaxinit.sweep.step.train_block``),
  timed training only (a block minus an evaluation-only call of the same
  program); ``end_to_end_*`` in the JSON is ``train_models`` with its
  evaluations at step 0 and at the end;
* (a) a Python loop over steps calling a jitted single-model step;
* (b) a loop over models, each trained by one jitted ``lax.scan``.

(a) and (b) run on the first ``--baseline-models`` models (half as many at
width 256) and are extrapolated per model-step. Throughputs are model-steps
per second. The contenders take turns in ``--rounds`` rounds, so load from
other processes hits them alike; medians of rates and of per-round ratios
are reported.

Achieved FLOP/s counts ``6 x params x batch`` per model-step (forward and
backward matmuls only, so it understates) and is divided by the FLOP/s of a
2048 x 2048 float32 matmul measured just before and after the engine's turn
in each round. The machine may be shared: read the ratios measured side by side.

Your own model (``--user-model cnn``, on by default): the example's NNX CNN
(``experiments/configs/user_cnn.py:CNN``, a factory; channels 16, depth 2,
batch 32, 64 models x 200 steps) through the engine, beside the built-in
``cnn1d`` of the same architecture through the engine, (a') the loop a user
writes over models of a jitted optax step, and (c) the ensemble a user writes:
models made by ``nnx.vmap``, trained by ``jax.jit(jax.vmap(train))`` with
``lax.scan`` over steps; the engine here is ``train_models`` with its two
evaluations (compiled beforehand). ``--user-model mlp`` also measures the
built-in MLP grid (width 64) against (c) on ``jaxinit.models.MLP``. The
ratios are medians of per-round ratios.

Also: compile time of one shape group at depth 4 and 64 (layers are
scanned: nearly the same), peak memory (``ru_maxrss``; on a GPU the device's
``peak_bytes_in_use``) and the block program's ``memory_analysis``.

On a GPU the default grids are ``gpu_width64`` and ``gpu_width256``: 4096
MLPs each, against (a) extrapolated from ``--baseline-models`` models, and an
8192^2 matmul as the FLOP/s reference; ``--user-model cnn`` there measures
vmapped convolutions (the engine's lanes > 1 on accelerators).

Side by side with another checkout (``--compare-with DIR``, e.g. the engine of
``main`` unpacked with ``git archive main | tar -x -C /tmp/sweep-base``): both
engines train the same grids through ``jaxinit.sweep.train_models`` in
subprocesses taking turns (one round each, ``--rounds`` rounds), each timed on
the fastest of three more runs (programs cached, so compile time is excluded)
over the training and evaluation time it reports; the ratio of medians over
rounds is this checkout's throughput over the other's.

Usage:
  python benchmarks/sweep_throughput.py [--grids width64 width256 small] [--user-model cnn mlp]
      [--scale 1.0] [--rounds 3] [--baseline-models 8] [--compare-with DIR]
      [--out benchmarks/results/sweep_throughput.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import resource
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit.sweep import compile as compile_lib
from jaxinit.sweep import config as config_lib
from jaxinit.sweep import load_dataset, loop, program as program_lib, step

INITS = ["lecun_normal", "glorot_normal", "orthogonal", {"name": "normal", "stddev": 0.05}]
LEARNING_RATES = [3e-4, 1e-3, 3e-3, 1e-2]


def sweep_config(width: int, depth: int, models: int, steps: int, batch: int,
                 dataset: str) -> config_lib.SweepConfig:
  """One shape group of ``models`` models: 4 inits x 4 learning rates x seeds."""
  seeds = max(1, math.ceil(models / (len(INITS) * len(LEARNING_RATES))))
  config = config_lib.parse_config({
      "name": f"throughput_w{width}", "seeds": seeds, "eval_every": steps, "probes": [],
      "grid": {"dataset": dataset, "init": INITS, "activation": "tanh", "depth": depth,
               "width": width, "optimizer": "adam", "learning_rate": LEARNING_RATES,
               "batch_size": batch, "steps": steps}})
  return config


def matmul_flops(n: int | None = None, repeats: int = 5) -> float:
  """FLOP/s of an ``n x n`` float32 matmul (median of ``repeats``; ``n`` 2048 on CPU, 8192
  on accelerators)."""
  n = n or (2048 if jax.default_backend() == "cpu" else 8192)
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  f = jax.jit(lambda a: a @ a)
  f(a).block_until_ready()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    f(a).block_until_ready()
    times.append(time.perf_counter() - start)
  return 2 * n**3 / statistics.median(times)


def params_per_model(program: program_lib.Program) -> int:
  return sum(math.prod(x.shape) for x in jax.tree.leaves(program_lib.param_shapes(program)))


def _single_states(program, params: np.ndarray, learning_rate: np.ndarray) -> list[dict]:
  """Single-model states (no model axis) for the baselines."""
  opt_states = step.init_opt_state(program, jnp.asarray(params), jnp.asarray(learning_rate))
  net_state = jax.tree.map(jnp.asarray, program_lib.network(program).state)
  return [{"params": jnp.asarray(params[j]), "net_state": net_state,
           "opt_state": jax.tree.map(lambda x, j=j: x[j], opt_states),
           "alive": jnp.bool_(True), "diverged_step": jnp.int32(-1)}
          for j in range(len(learning_rate))]


def _seconds(fn) -> float:
  tick = time.perf_counter()
  fn()
  return time.perf_counter() - tick


def step_loop(program, data, states, data_keys, steps: int):
  """(a): a Python loop over steps calling a jitted single-model step.

  The step draws its own minibatch, as a single-model step would. Returns
  ``(run, compile seconds)``; ``run()`` trains every model from its state.
  """
  num_train = data["x_train"].shape[0]

  def one_step(data, data_key, state, t):
    index = step.batch_indices(program.batch_size, num_train, data_key, t[None])[0]
    return step.train_step(program, data, state, index, t)

  jitted = jax.jit(one_step, donate_argnums=2)
  compile_s = _seconds(lambda: jax.block_until_ready(jitted(
      data, data_keys[0], jax.tree.map(jnp.copy, states[0]), np.int32(0))))

  def run():
    for state, key in zip(states, data_keys):
      state = jax.tree.map(jnp.copy, state)
      for t in range(steps):
        state, _ = jitted(data, key, state, np.int32(t))
      jax.block_until_ready(state)
  return run, compile_s


def scan_loop(program, data, states, data_keys, steps: int):
  """(b): a loop over models, each trained by one jitted lax.scan over its steps."""
  num_train = data["x_train"].shape[0]

  def train(data, data_key, state):
    t = jnp.arange(steps, dtype=jnp.int32)
    index = step.batch_indices(program.batch_size, num_train, data_key, t)
    return jax.lax.scan(lambda s, xs: step.train_step(program, data, s, *xs), state,
                        (index, t))

  tick = time.perf_counter()
  compiled = jax.jit(train).lower(data, data_keys[0], states[0]).compile()
  compile_s = time.perf_counter() - tick

  def run():
    for state, key in zip(states, data_keys):
      jax.block_until_ready(compiled(data, key, state))
  return run, compile_s


def measure(width: int, batch: int, models: int, steps: int, baseline_models: int,
            dataset: str, rounds: int) -> dict:
  """Engine, (a) and (b) on one grid, in interleaved rounds (medians reported)."""
  config = sweep_config(width, 8, models, steps, batch, dataset)
  specs = config.models()[:models]
  ds = load_dataset(specs[0]["dataset"])
  devices = compile_lib.device_count()
  program = compile_lib.make_program(specs[0], ds, config)
  host_data = program_lib.device_data(program, ds, config.probe_batch)
  data = jax.device_put(host_data)  # the baselines' copy, on the default device
  num_params = params_per_model(program)
  flops_per_step = 6 * num_params * batch
  model_steps = len(specs) * steps
  print(f"\nwidth {width}, batch {batch}: {len(specs)} models x {steps} steps, "
        f"{num_params:,} params per model; {devices} devices, "
        f"{program.lanes} models per vmapped step",
        flush=True)

  # End to end, as `jaxinit sweep` runs it: compile, draw params, train, evaluate.
  cache = compile_lib.ProgramCache()
  tick = time.perf_counter()
  _, (report,) = loop.train_models(config, specs, progress=False, cache=cache)
  wall = time.perf_counter() - tick
  programs, _ = cache.get(program, host_data)
  call = programs.num_models  # one call: lanes models on every device
  block, _ = _block_call(programs, program, specs, host_data, config)

  # The baselines' own models: the grid's first n, drawn for them (one engine call can
  # hold fewer models than n: 2 at width 64 on 2 devices).
  n = baseline_models
  params, lr, data_keys = loop.initial_arrays(program, specs[:n], config.root_seed)
  states = _single_states(program, params, lr)
  assert len(states) == len(data_keys) == n, (len(states), n)
  run_a, compile_a = step_loop(program, data, states, data_keys, steps)
  run_b, compile_b = scan_loop(program, data, states, data_keys, steps)
  per_round = []
  for _ in range(rounds):
    # Side by side: every contender once per round, so load from other
    # processes hits them alike; the matmul brackets the engine.
    matmul_before = matmul_flops(repeats=3)
    eval_s, block_s = _seconds(lambda: block(False)), _seconds(lambda: block(True))
    matmul_after = matmul_flops(repeats=3)
    a_s, b_s = _seconds(run_a), _seconds(run_b)
    engine_rate = call * steps / (block_s - eval_s)
    per_round.append({
        "engine": engine_rate, "a": n * steps / a_s, "b": n * steps / b_s,
        "matmul_flops": (matmul_before + matmul_after) / 2, "eval_s": eval_s,
        "block_s": block_s})
  med = lambda key: statistics.median(r[key] for r in per_round)  # noqa: E731
  ratio = lambda key: statistics.median(r["engine"] / r[key] for r in per_round)  # noqa: E731
  fraction = statistics.median(flops_per_step * r["engine"] / r["matmul_flops"]
                               for r in per_round)
  rate = med("engine")
  memory = programs.block.memory_analysis()
  result = {
      "width": width, "depth": 8, "batch": batch, "models": len(specs), "steps": steps,
      "params_per_model": num_params, "flops_per_model_step": flops_per_step,
      "rounds": per_round,
      "engine": {
          "model_steps_per_s": rate, "vmap_models": program.lanes,
          "devices": devices,
          "end_to_end_model_steps_per_s": model_steps / report.run_s,
          "end_to_end_wall_s": wall, "compile_s": report.compile_s,
          "init_s": report.init_s, "eval_s": med("eval_s"),
          "achieved_flops": flops_per_step * rate, "matmul_flops": med("matmul_flops"),
          "flops_fraction_of_matmul": fraction,
          "block_program_bytes": {"arguments": int(memory.argument_size_in_bytes),
                                  "outputs": int(memory.output_size_in_bytes),
                                  "temporaries": int(memory.temp_size_in_bytes)}},
      "a_step_loop": {"model_steps_per_s": med("a"), "engine_speedup": ratio("a"),
                      "measured_on_models": n, "compile_s": compile_a},
      "b_scan_per_model": {"model_steps_per_s": med("b"), "engine_speedup": ratio("b"),
                           "measured_on_models": n, "compile_s": compile_b},
  }
  e = result["engine"]
  print(f"  engine: {rate:,.1f} model-steps/s training ({e['end_to_end_model_steps_per_s']:,.1f} "
        f"with its evaluations; whole run {wall:.1f} s, of which compile {e['compile_s']:.1f} s, "
        f"params {e['init_s']:.1f} s); {e['achieved_flops'] / 1e9:.1f} GFLOP/s = "
        f"{fraction:.0%} of a 2048^2 matmul ({e['matmul_flops'] / 1e9:.1f} GFLOP/s)", flush=True)
  for name, key in (("(a) step loop", "a_step_loop"), ("(b) scan per model", "b_scan_per_model")):
    r = result[key]
    print(f"  {name}: {r['model_steps_per_s']:,.1f} model-steps/s on {n} models "
          f"(extrapolated per model-step); engine is {r['engine_speedup']:.2f}x", flush=True)
  return result


def compile_times(depths: list[int], width: int, models: int, dataset: str) -> dict:
  """Seconds to compile one shape group's programs, per depth (nothing runs)."""
  out = {}
  for depth in depths:
    config = sweep_config(width, depth, models, 200, 128, dataset)
    spec = config.models()[0]
    ds = load_dataset(spec["dataset"])
    program = compile_lib.make_program(spec, ds, config)
    data = program_lib.device_data(program, ds, config.probe_batch)
    out[depth] = compile_lib.ProgramCache().get(program, data)[1]
    print(f"  compile, depth {depth:3d}: {out[depth]:.2f} s", flush=True)
  return out


# ---------------------------------------------------------------------------
# Your own model, and the loops a user would write instead of the engine.

USER_CNN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "experiments", "configs")


def user_cnn_factory():
  """``experiments/configs/user_cnn.py:CNN``: the example's NNX CNN, a user's own factory."""
  import sys  # pylint: disable=import-outside-toplevel
  if USER_CNN not in sys.path:
    sys.path.insert(0, USER_CNN)
  import user_cnn  # pylint: disable=import-outside-toplevel
  return user_cnn.CNN


def cnn_config(model, channels: int, depth: int, models: int, steps: int, batch: int,
               dataset: str) -> config_lib.SweepConfig:
  """One shape group of CNNs (``model``: ``"cnn1d"`` or the user's factory), Adam, 4 x 4 x seeds."""
  seeds = max(1, math.ceil(models / (len(INITS) * len(LEARNING_RATES))))
  own = model != "cnn1d"
  if own:  # the user's CNN takes (length, channels) signals: give it the arrays so
    ds = load_dataset(dataset)
    dataset = {"x_train": ds.x_train[..., None], "y_train": ds.y_train,
               "x_test": ds.x_test[..., None], "y_test": ds.y_test}
  grid = {"model": model, "dataset": dataset, "init": INITS, "depth": depth,
          "optimizer": "adam", "learning_rate": LEARNING_RATES, "batch_size": batch,
          "steps": steps, **({"channels": channels} if own else {"width": channels})}
  return config_lib.parse_config({"name": "throughput_cnn", "seeds": seeds,
                                  "eval_every": steps, "probes": [], "grid": grid})


def engine_rate(config: config_lib.SweepConfig, models: int) -> tuple[float, dict]:
  """Model-steps/s of the engine's training on ``models`` models of ``config``'s one group:
  its block program minus an evaluation-only call of it (as :func:`measure` times it)."""
  specs = config.models()[:models]
  ds = load_dataset(specs[0]["dataset"])
  program = compile_lib.make_program(specs[0], ds, config)
  host_data = program_lib.device_data(program, ds, config.probe_batch)
  tick = time.perf_counter()
  programs, _ = _CACHE.get(program, host_data)
  compile_s = time.perf_counter() - tick
  call = programs.num_models
  block, _ = _block_call(programs, program, specs, host_data, config)

  block(True)  # warm
  train_s = _seconds(lambda: block(True)) - _seconds(lambda: block(False))
  return call * program.block_steps / train_s, {"compile_s": compile_s, "lanes": program.lanes,
                                                "models_per_call": call}


def _block_call(programs, program, specs, host_data, config):
  """``block(train)``: one call of the engine's block program on one call's worth of models
  (``lanes`` per device, ``specs`` repeated to fill it), waited for; and the models'
  ``(params, learning_rate, data_keys)``."""
  call = programs.num_models  # one call: lanes models on every device
  padded = (specs * -(-call // len(specs)))[:call]
  params, lr, data_keys = loop.initial_arrays(program, padded, config.root_seed)
  rows = programs.local_rows()
  placed, keys = programs.put(host_data), programs.put(data_keys[rows], rows)

  def block(train: bool) -> None:
    state = loop.start_state(programs, params[rows], lr[rows], rows)
    jax.block_until_ready(programs.block(placed, keys, state, programs.put(np.int32(0)),
                                         programs.put(np.bool_(train))))

  return block, (params, lr, data_keys)


_CACHE = compile_lib.ProgramCache()


def _user_pieces(make, data, batch: int):
  """What a user writes: the model split into (graphdef, params), a loss, an optax step."""
  import optax  # pylint: disable=import-outside-toplevel
  from flax import nnx  # pylint: disable=import-outside-toplevel
  x, y = jnp.asarray(data["x_train"]), jnp.asarray(data["y_train"])
  graphdef, _ = nnx.split(make(nnx.Rngs(0)))

  def loss_fn(params, xb, yb):
    logits = nnx.merge(graphdef, params)(xb)
    return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

  def step(params, opt_state, key, tx):
    index = jax.random.randint(key, (batch,), 0, x.shape[0])
    grads = jax.grad(loss_fn)(params, x[index], y[index])
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  return graphdef, step


def handwritten_ensemble(make, data, models: int, steps: int, batch: int,
                         learning_rates: list[float]):
  """(c): the ensemble a user would write: models made by ``nnx.vmap``, trained by
  ``jax.jit(jax.vmap(train))`` with ``lax.scan`` over steps and a plain optax Adam.

  Returns ``(run, compile seconds)``.
  """
  import optax  # pylint: disable=import-outside-toplevel
  from flax import nnx  # pylint: disable=import-outside-toplevel
  _, step = _user_pieces(make, data, batch)

  @nnx.split_rngs(splits=models)
  @nnx.vmap(in_axes=(0,))
  def ensemble(rngs):
    return make(rngs)

  _, params = nnx.split(ensemble(nnx.Rngs(0)), nnx.Param)
  lrs = jnp.asarray((learning_rates * models)[:models], jnp.float32)
  keys = jax.random.split(jax.random.key(1), models)

  def train(params, lr, key):
    tx = optax.adam(lr)
    carry = (params, tx.init(params))
    def body(carry, k):
      return step(*carry, k, tx), None
    (params, _), _ = jax.lax.scan(body, carry, jax.random.split(key, steps))
    return params

  tick = time.perf_counter()
  compiled = jax.jit(jax.vmap(train)).lower(params, lrs, keys).compile()
  compile_s = time.perf_counter() - tick
  return lambda: jax.block_until_ready(compiled(params, lrs, keys)), compile_s


def handwritten_step_loop(make, data, models: int, steps: int, batch: int,
                          learning_rates: list[float]):
  """(a'): a user's per-model loop of a jitted optax step (one model at a time).

  Returns ``(run, compile seconds)``; ``run()`` trains ``models`` models.
  """
  import optax  # pylint: disable=import-outside-toplevel
  from flax import nnx  # pylint: disable=import-outside-toplevel
  _, step = _user_pieces(make, data, batch)
  jitted = jax.jit(step, static_argnums=3, donate_argnums=(0, 1))
  # One optimizer per learning rate, each compiled here (static), not in the timed run.
  optimizers = {lr: optax.adam(lr) for lr in learning_rates}
  starts = []
  for j in range(models):
    _, params = nnx.split(make(nnx.Rngs(j)), nnx.Param)
    starts.append((params, optimizers[learning_rates[j % len(learning_rates)]]))
  tick = time.perf_counter()
  for tx in optimizers.values():
    params = starts[0][0]
    jax.block_until_ready(jitted(jax.tree.map(jnp.copy, params), tx.init(params),
                                 jax.random.key(0), tx))
  compile_s = time.perf_counter() - tick

  def run():
    for params, tx in starts:
      params = jax.tree.map(jnp.copy, params)
      opt_state = tx.init(params)
      for key in jax.random.split(jax.random.key(1), steps):
        params, opt_state = jitted(params, opt_state, key, tx)
      jax.block_until_ready(params)
  return run, compile_s


def measure_user_model(channels: int, depth: int, batch: int, models: int, steps: int,
                       baseline_models: int, dataset: str, rounds: int) -> dict:
  """The user's NNX CNN through the engine, beside the built-in ``cnn1d`` (same
  architecture), (a') a per-step jitted loop and (c) a hand-written vmap ensemble."""
  from flax import nnx  # pylint: disable=import-outside-toplevel
  cnn = user_cnn_factory()
  ds = load_dataset(dataset)
  data = {"x_train": ds.x_train[..., None], "y_train": ds.y_train}
  make = lambda rngs: cnn(in_shape=data["x_train"].shape[1:], out_features=ds.num_outputs,  # noqa: E731
                          channels=channels, depth=depth, rngs=rngs)
  params = sum(x.size for x in jax.tree.leaves(nnx.state(make(nnx.Rngs(0)), nnx.Param)))
  print(f"\nuser NNX CNN (channels {channels}, depth {depth}, batch {batch}): {models} models "
        f"x {steps} steps, {params:,} params per model", flush=True)
  user_cfg = cnn_config(cnn, channels, depth, models, steps, batch, dataset)
  builtin_cfg = cnn_config("cnn1d", channels, depth, models, steps, batch, dataset)
  # The same user model with its convolutions vmapped (grouped-conv lowering), as the
  # engine trained it before convolutional models went one per device on CPU.
  vmapped_cfg = dataclasses.replace(user_cfg, lanes=min(32, models))
  n = baseline_models
  run_a, compile_a = handwritten_step_loop(make, data, n, steps, batch, LEARNING_RATES)
  run_c, compile_c = handwritten_ensemble(make, data, models, steps, batch, LEARNING_RATES)
  run_a()  # warm: its eager ops (key splits, copies, optimizer inits) compile on first use
  per_round = []
  for _ in range(rounds):
    user, user_info = engine_rate(user_cfg, models)
    builtin, builtin_info = engine_rate(builtin_cfg, models)
    vmapped, vmapped_info = engine_rate(vmapped_cfg, models)
    a = n * steps / _seconds(run_a)
    c = models * steps / _seconds(run_c)
    per_round.append({"user_engine": user, "builtin_engine": builtin, "a_step_loop": a,
                      "c_handwritten_vmap": c, "user_engine_vmapped_convolutions": vmapped})
  med = lambda key: statistics.median(r[key] for r in per_round)  # noqa: E731
  ratio = lambda k1, k2: statistics.median(r[k1] / r[k2] for r in per_round)  # noqa: E731
  result = {
      "channels": channels, "depth": depth, "batch": batch, "models": models, "steps": steps,
      "params_per_model": params, "rounds": per_round,
      "user_engine": {"model_steps_per_s": med("user_engine"), **user_info},
      "builtin_engine": {"model_steps_per_s": med("builtin_engine"), **builtin_info},
      "user_engine_vmapped_convolutions": {
          "model_steps_per_s": med("user_engine_vmapped_convolutions"), **vmapped_info},
      "a_step_loop": {"model_steps_per_s": med("a_step_loop"), "measured_on_models": n,
                      "compile_s": compile_a},
      "c_handwritten_vmap": {"model_steps_per_s": med("c_handwritten_vmap"),
                             "compile_s": compile_c},
      "ratios": {"user_engine_over_step_loop": ratio("user_engine", "a_step_loop"),
                 "user_engine_over_handwritten_vmap": ratio("user_engine",
                                                            "c_handwritten_vmap"),
                 "user_engine_over_builtin_engine": ratio("user_engine", "builtin_engine"),
                 "user_engine_over_its_vmapped_convolutions": ratio(
                     "user_engine", "user_engine_vmapped_convolutions"),
                 "builtin_engine_over_handwritten_vmap": ratio("builtin_engine",
                                                               "c_handwritten_vmap")}}
  for key, value in result["ratios"].items():
    print(f"  {key}: {value:.2f}x", flush=True)
  return result


def measure_builtin_vs_handwritten(width: int, batch: int, models: int, steps: int,
                                   dataset: str, rounds: int) -> dict:
  """The built-in MLP grid's engine against (c), the hand-written vmap ensemble of the
  same network (``jaxinit.models.MLP``, tanh, depth 8)."""
  from jaxinit.models import MLP  # pylint: disable=import-outside-toplevel
  ds = load_dataset(dataset)
  data = {"x_train": ds.x_train, "y_train": ds.y_train}
  make = lambda rngs: MLP(ds.in_features, ds.num_outputs, width, 8, activation="tanh",  # noqa: E731
                          rngs=rngs)
  config = sweep_config(width, 8, models, steps, batch, dataset)
  run_c, compile_c = handwritten_ensemble(make, data, models, steps, batch, LEARNING_RATES)
  per_round = []
  for _ in range(rounds):
    engine, info = engine_rate(config, models)
    per_round.append({"engine": engine, "c_handwritten_vmap": models * steps / _seconds(run_c)})
  ratio = statistics.median(r["engine"] / r["c_handwritten_vmap"] for r in per_round)
  print(f"\nMLP width {width}: engine over hand-written vmap ensemble {ratio:.2f}x", flush=True)
  return {"width": width, "batch": batch, "models": models, "steps": steps, "rounds": per_round,
          "engine": info, "c_compile_s": compile_c, "engine_over_handwritten_vmap": ratio}


GRIDS = {
    # name: (width, batch, models, steps); --scale multiplies models and steps
    "width64": (64, 128, 256, 200),
    "width256": (256, 128, 32, 40),
    "small": (32, 32, 256, 200),
    "tiny": (16, 16, 256, 200),
    # On a GPU: 4096 MNIST-1D MLPs (the default grids there).
    "gpu_width64": (64, 128, 4096, 200),
    "gpu_width256": (256, 128, 4096, 200),
}
CPU_GRIDS = ["width64", "width256", "small", "tiny"]
ACCELERATOR_GRIDS = ["gpu_width64", "gpu_width256"]


def peak_device_bytes() -> int | None:
  """Peak bytes in use on the first device so far (None where the backend does not say)."""
  stats = jax.devices()[0].memory_stats() or {}
  return stats.get("peak_bytes_in_use")


_WORKER = """
import json, sys, time
import jax
if {devices} > 1:
  jax.config.update("jax_num_cpu_devices", {devices})
from jaxinit import sweep
config = sweep.parse_config(json.loads({config!r}))
sweep.train_models(config, progress=False)  # compile
runs = []
for _ in range({repeats}):  # the fastest of a few: the least disturbed by other load
  _, reports = sweep.train_models(config, progress=False)
  runs.append(sum(r.run_s for r in reports))
steps = sum(m["steps"] for m in config.models())
print(json.dumps({{"run_s": min(runs), "runs_s": runs, "model_steps": steps}}))
"""


def compare(other: str, grids: list[str], scale: float, rounds: int, dataset: str,
            devices: int) -> dict:
  """This checkout's engine against the one in ``other``, side by side (see the docstring)."""
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  out = {}
  for name in grids:
    width, batch, models, steps = GRIDS[name]
    models, steps = max(1, int(models * scale)), max(1, int(steps * scale))
    config = sweep_config(width, 8, models, steps, batch, dataset).to_dict()
    config.pop("lanes", None)  # keys the other engine may not know, at their defaults
    for key, default in (("loss", "auto"), ("metrics", []), ("paths", [])):
      if config.get(key) == default:
        config.pop(key)
    if config["grid"].get("parametrization") == ["sp"]:
      del config["grid"]["parametrization"]
    code = _WORKER.format(devices=devices, config=json.dumps(config), repeats=3)
    rates: dict[str, list[float]] = {"this": [], "other": []}
    for _ in range(rounds):
      for who, path in (("other", other), ("this", here)):
        env = {**os.environ, "PYTHONPATH": path}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, check=True, cwd=path)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        rates[who].append(result["model_steps"] / result["run_s"])
    ratio = statistics.median(rates["this"]) / statistics.median(rates["other"])
    out[name] = {"this_model_steps_per_s": rates["this"],
                 "other_model_steps_per_s": rates["other"], "ratio_of_medians": ratio}
    print(f"  {name}: this {statistics.median(rates['this']):,.0f} vs other "
          f"{statistics.median(rates['other']):,.0f} model-steps/s: {ratio:.3f}x", flush=True)
  return out


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--grids", nargs="*", default=None, choices=list(GRIDS),
                      help="default: the CPU grids on CPU, the 4096-model grids on a GPU")
  parser.add_argument("--scale", type=float, default=1.0,
                      help="multiply every grid's models and steps (0.25 for a quick look)")
  parser.add_argument("--baseline-models", type=int, default=8)
  parser.add_argument("--rounds", type=int, default=3,
                      help="interleaved rounds of engine, (a) and (b); medians reported")
  parser.add_argument("--dataset", default="mnist1d")
  parser.add_argument("--user-model", nargs="*", default=["cnn"], choices=["cnn", "mlp"],
                      help="also: the user-model grid (the example's NNX CNN as a factory, "
                           "beside the built-in cnn1d, a per-step jitted loop and a "
                           "hand-written vmap ensemble) and the MLP grid against the "
                           "hand-written ensemble")
  parser.add_argument("--cpu-devices", type=int, default=os.cpu_count() or 1,
                      help="CPU devices the engine spreads models over (1: one device)")
  parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                    "sweep_throughput.json"))
  parser.add_argument("--compare-with", default=None,
                      help="another checkout's root: compare its engine with this one, side "
                           "by side, and nothing else")
  args = parser.parse_args(argv)
  if args.compare_with:
    print(f"this checkout vs {args.compare_with}: train_models, {args.rounds} rounds each, "
          f"{args.cpu_devices} CPU devices")
    result = compare(args.compare_with, args.grids, args.scale, args.rounds, args.dataset,
                     args.cpu_devices)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
      json.dump({"compare_with": args.compare_with, "rounds": args.rounds,
                 "cpu_devices": args.cpu_devices, "grids": result}, f, indent=1)
    print(f"wrote {args.out}")
    return 0
  if args.cpu_devices > 1:
    # Before any computation: the engine spreads models over devices, one per core.
    jax.config.update("jax_num_cpu_devices", args.cpu_devices)
  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax "
        f"{jax.__version__}, {os.cpu_count()} CPUs, {len(jax.devices())} devices")
  if args.grids is None:
    args.grids = CPU_GRIDS if jax.default_backend() == "cpu" else ACCELERATOR_GRIDS
  runs = []
  for name in args.grids:
    width, batch, models, steps = GRIDS[name]
    models, steps = max(1, int(models * args.scale)), max(1, int(steps * args.scale))
    baseline = min(models, args.baseline_models if width < 256 else
                   max(2, args.baseline_models // 2))
    runs.append({"grid": name, **measure(width, batch, models, steps, baseline, args.dataset,
                                          args.rounds)})
  user_runs = {}
  if "cnn" in args.user_model:
    user_runs["cnn"] = measure_user_model(
        16, 2, 32, max(1, int(64 * args.scale)), max(1, int(200 * args.scale)),
        args.baseline_models, args.dataset, args.rounds)
  if "mlp" in args.user_model:
    user_runs["mlp"] = measure_builtin_vs_handwritten(
        64, 128, max(1, int(256 * args.scale)), max(1, int(200 * args.scale)), args.dataset,
        args.rounds)
  print("\ncompile time of one shape group (256 models, width 64, batch 128):")
  compiles = compile_times([4, 64], 64, 256, args.dataset) if runs else {4: 1.0, 64: 1.0}
  ratio = compiles[64] / compiles[4]
  print(f"  depth 64 / depth 4: {ratio:.2f}x")
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
  print(f"peak resident memory of this process: {peak:,.0f} MiB")

  print(f"\n{'grid':9s} {'W':>4s} {'B':>4s} {'models':>6s} {'engine':>9s} {'(a)':>8s} "
        f"{'(b)':>8s} {'vs (a)':>7s} {'vs (b)':>7s} {'compile':>8s} {'FLOP/s':>7s}")
  for r in runs:
    e = r["engine"]
    print(f"{r['grid']:9s} {r['width']:4d} {r['batch']:4d} {r['models']:6d} "
          f"{e['model_steps_per_s']:9.1f} {r['a_step_loop']['model_steps_per_s']:8.1f} "
          f"{r['b_scan_per_model']['model_steps_per_s']:8.1f} "
          f"{r['a_step_loop']['engine_speedup']:6.2f}x "
          f"{r['b_scan_per_model']['engine_speedup']:6.2f}x {e['compile_s']:7.1f}s "
          f"{e['flops_fraction_of_matmul']:6.0%}")
  print("model-steps/s of training; (a) and (b) measured on the first models of each grid, "
        "extrapolated per model-step; FLOP/s = 6 x params x batch per model-step over a "
        "2048^2 matmul's")
  out = {"device": jax.devices()[0].device_kind, "backend": jax.default_backend(),
         "devices": len(jax.devices()),
         "jax": jax.__version__, "machine": platform.machine(), "cpu_count": os.cpu_count(),
         "note": ("model-steps/s of training (the engine's block program minus its "
                  "evaluation; end_to_end_* includes evaluations); (a) and (b) are measured "
                  "on the first models of the grid and extrapolated per model-step; FLOP/s "
                  "counts 6 x params x batch per model-step"),
         "runs": runs, "user_model": user_runs, "compile_s_by_depth": {str(k): v for k, v in compiles.items()},
         "compile_ratio_depth64_over_depth4": ratio, "peak_rss_mib": peak,
         "peak_device_bytes": peak_device_bytes()}
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(out, f, indent=1)
  print(f"wrote {args.out}")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
