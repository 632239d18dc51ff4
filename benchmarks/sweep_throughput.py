"""The sweep engine against two loops over single models, on the same grids, in one process.

Grids (one shape group each): tanh MLPs of depth 8 on MNIST-1D, Adam, 4
initializers x 4 learning rates x seeds:

* ``width64``: 256 models, width 64, batch 128, 200 steps;
* ``width256``: 32 models, width 256, batch 128, 40 steps (16x the work per
  model-step);
* ``small``: 256 models, width 32, batch 32, 200 steps (small networks,
  where a step's fixed costs matter).

Contenders, all running the engine's own single-model step (same batches,
optimizer and divergence mask):

* engine: the group's compiled block program (``jaxinit.sweep.engine``),
  timed training only (a block minus an evaluation-only call of the same
  program); ``end_to_end_*`` in the JSON is ``train_models`` with its
  evaluations at step 0 and at the end;
* (a) a Python loop over steps calling a jitted single-model step;
* (b) a loop over models, each trained by one jitted ``lax.scan``.

(a) and (b) run on the first ``--baseline-models`` models (half as many at
width 256) and are extrapolated per model-step. Throughputs are model-steps
per second; timed sections are the best of ``--repeats``.

Achieved FLOP/s counts ``6 x params x batch`` per model-step (forward and
backward matmuls only, so it understates) and is divided by the FLOP/s of a
2048 x 2048 float32 matmul measured just before and after the engine's timed
section. The machine may be shared: read the ratios measured side by side.

Also: compile time of one shape group at depth 4 and 64 (layers are
scanned: nearly the same), peak memory (``ru_maxrss``) and the block
program's ``memory_analysis``.

Usage:
  python benchmarks/sweep_throughput.py [--grids width64 width256 small]
      [--scale 1.0] [--baseline-models 8] [--out benchmarks/results/sweep_throughput.json]
"""

from __future__ import annotations

import argparse
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

from jaxinit.sweep import config as config_lib
from jaxinit.sweep import engine, load_dataset

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


def matmul_flops(n: int = 2048, repeats: int = 5) -> float:
  """FLOP/s of an ``n x n`` float32 matmul (median of ``repeats``)."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  f = jax.jit(lambda a: a @ a)
  f(a).block_until_ready()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    f(a).block_until_ready()
    times.append(time.perf_counter() - start)
  return 2 * n**3 / statistics.median(times)


def params_per_model(program: engine.Program) -> int:
  return sum(math.prod(x.shape) for x in jax.tree.leaves(engine.param_shapes(program)))


def _single_states(program, params: np.ndarray, learning_rate: np.ndarray) -> list[dict]:
  """Single-model states (no model axis) for the baselines."""
  opt_states = engine.init_opt_state(program, jnp.asarray(params), jnp.asarray(learning_rate))
  return [{"params": jnp.asarray(params[j]),
           "opt_state": jax.tree.map(lambda x, j=j: x[j], opt_states),
           "alive": jnp.bool_(True), "diverged_step": jnp.int32(-1)}
          for j in range(len(learning_rate))]


def _best_of(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    tick = time.perf_counter()
    fn()
    times.append(time.perf_counter() - tick)
  return min(times)


def baseline_step_loop(program, data, states, data_keys, steps: int, repeats: int) -> dict:
  """(a): a Python loop over steps calling a jitted single-model step.

  The step draws its own minibatch, as a single-model step would.
  """
  num_train = data["x_train"].shape[0]

  def one_step(data, data_key, state, t):
    index = engine.batch_indices(program, num_train, data_key, t[None])[0]
    return engine.train_step(program, data, state, index, t)

  step = jax.jit(one_step, donate_argnums=2)
  tick = time.perf_counter()
  jax.block_until_ready(step(data, data_keys[0], jax.tree.map(jnp.copy, states[0]),
                             np.int32(0)))
  compile_s = time.perf_counter() - tick

  def run():
    for state, key in zip(states, data_keys):
      state = jax.tree.map(jnp.copy, state)
      for t in range(steps):
        state, _ = step(data, key, state, np.int32(t))
      jax.block_until_ready(state)

  seconds = _best_of(run, repeats)
  return {"model_steps": len(states) * steps, "seconds": seconds,
          "model_steps_per_s": len(states) * steps / seconds, "compile_s": compile_s}


def baseline_scan_loop(program, data, states, data_keys, steps: int, repeats: int) -> dict:
  """(b): a loop over models, each trained by one jitted lax.scan over its steps."""
  num_train = data["x_train"].shape[0]

  def train(data, data_key, state):
    t = jnp.arange(steps, dtype=jnp.int32)
    index = engine.batch_indices(program, num_train, data_key, t)
    return jax.lax.scan(lambda s, xs: engine.train_step(program, data, s, *xs), state,
                        (index, t))

  tick = time.perf_counter()
  compiled = jax.jit(train).lower(data, data_keys[0], states[0]).compile()
  compile_s = time.perf_counter() - tick

  def run():
    for state, key in zip(states, data_keys):
      jax.block_until_ready(compiled(data, key, state))

  seconds = _best_of(run, repeats)
  return {"model_steps": len(states) * steps, "seconds": seconds,
          "model_steps_per_s": len(states) * steps / seconds, "compile_s": compile_s}


def measure(width: int, batch: int, models: int, steps: int, baseline_models: int,
            dataset: str, repeats: int) -> dict:
  """Engine, (a) and (b) on one grid; matmul FLOP/s around the engine run."""
  config = sweep_config(width, 8, models, steps, batch, dataset)
  specs = config.models()[:models]
  ds = load_dataset(specs[0]["dataset"])
  program = engine.make_program(specs[0], ds, config, len(specs))
  data = engine.device_data(program, ds, config.probe_batch)
  num_params = params_per_model(program)
  flops_per_step = 6 * num_params * batch
  print(f"\nwidth {width}, batch {batch}: {len(specs)} models x {steps} steps, "
        f"{num_params:,} params per model, {program.vmap_models} models per vmapped step",
        flush=True)

  # End to end, as `jaxinit sweep` runs it (evaluations at step 0 and at the end).
  cache = engine.ProgramCache()
  tick = time.perf_counter()
  _, (report,) = engine.train_models(config, specs, progress=False, cache=cache)
  wall = time.perf_counter() - tick
  model_steps = len(specs) * steps

  # Training alone: the block program minus its evaluation, timed directly.
  params, lr, data_keys = engine.initial_arrays(program, specs, config.root_seed)
  opt_init_fn, block_fn, _ = cache.get(program, data, params, lr)

  def block(train: bool):
    state = engine.start_state(opt_init_fn, params, lr)
    jax.block_until_ready(block_fn(data, data_keys, state, np.int32(0), np.bool_(train)))

  matmul_before = matmul_flops()
  eval_s = _best_of(lambda: block(False), repeats)
  block_s = _best_of(lambda: block(True), repeats)
  matmul_after = matmul_flops()
  train_s = block_s - eval_s
  rate = model_steps / train_s
  flops = flops_per_step * rate
  matmul = (matmul_before + matmul_after) / 2
  memory = block_fn.memory_analysis()
  engine_result = {
      "model_steps": model_steps, "train_s": train_s, "model_steps_per_s": rate,
      "end_to_end_s": report.run_s, "end_to_end_model_steps_per_s": model_steps / report.run_s,
      "eval_s": eval_s, "compile_s": report.compile_s, "init_s": report.init_s,
      "wall_s": wall, "vmap_models": program.vmap_models,
      "achieved_flops": flops, "matmul_flops": matmul,
      "matmul_flops_before_after": [matmul_before, matmul_after],
      "flops_fraction_of_matmul": flops / matmul,
      "block_program_bytes": {"arguments": int(memory.argument_size_in_bytes),
                              "outputs": int(memory.output_size_in_bytes),
                              "temporaries": int(memory.temp_size_in_bytes)}}
  print(f"  engine: {rate:,.1f} model-steps/s training ({model_steps / report.run_s:,.1f} end "
        f"to end with 2 evaluations; compile {report.compile_s:.1f} s, params "
        f"{report.init_s:.1f} s); {flops / 1e9:.1f} GFLOP/s = {flops / matmul:.0%} of a "
        f"2048^2 matmul ({matmul / 1e9:.1f} GFLOP/s)", flush=True)

  n = baseline_models
  states = _single_states(program, params[:n], lr[:n])
  a = baseline_step_loop(program, data, states, data_keys[:n], steps, repeats)
  b = baseline_scan_loop(program, data, states, data_keys[:n], steps, repeats)
  for name, res in (("(a) step loop", a), ("(b) scan per model", b)):
    res["measured_on_models"] = n
    res["engine_speedup"] = rate / res["model_steps_per_s"]
    print(f"  {name}: {res['model_steps_per_s']:,.1f} model-steps/s on {n} models "
          f"(extrapolated per model-step); engine is {res['engine_speedup']:.2f}x", flush=True)
  return {"width": width, "depth": 8, "batch": batch, "models": len(specs), "steps": steps,
          "params_per_model": num_params, "flops_per_model_step": flops_per_step,
          "engine": engine_result, "a_step_loop": a, "b_scan_per_model": b}


def compile_times(depths: list[int], width: int, models: int, dataset: str) -> dict:
  """Seconds to compile one shape group's programs, per depth (nothing runs)."""
  out = {}
  for depth in depths:
    config = sweep_config(width, depth, models, 200, 128, dataset)
    spec = config.models()[0]
    ds = load_dataset(spec["dataset"])
    program = engine.make_program(spec, ds, config, models)
    data = engine.device_data(program, ds, config.probe_batch)
    flat = jax.ShapeDtypeStruct((models, params_per_model(program)), jnp.float32)
    lr = jax.ShapeDtypeStruct((models,), jnp.float32)
    out[depth] = engine.ProgramCache().get(program, data, flat, lr)[2]
    print(f"  compile, depth {depth:3d}: {out[depth]:.2f} s", flush=True)
  return out


GRIDS = {
    # name: (width, batch, models, steps); --scale multiplies models and steps
    "width64": (64, 128, 256, 200),
    "width256": (256, 128, 32, 40),
    "small": (32, 32, 256, 200),
}


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--grids", nargs="+", default=list(GRIDS), choices=list(GRIDS))
  parser.add_argument("--scale", type=float, default=1.0,
                      help="multiply every grid's models and steps (0.25 for a quick look)")
  parser.add_argument("--baseline-models", type=int, default=8)
  parser.add_argument("--repeats", type=int, default=2, help="best of, for timed sections")
  parser.add_argument("--dataset", default="mnist1d")
  parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                    "sweep_throughput.json"))
  args = parser.parse_args(argv)
  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax "
        f"{jax.__version__}, {os.cpu_count()} CPUs")
  runs = []
  for name in args.grids:
    width, batch, models, steps = GRIDS[name]
    models, steps = max(1, int(models * args.scale)), max(1, int(steps * args.scale))
    baseline = min(models, args.baseline_models if width < 256 else
                   max(2, args.baseline_models // 2))
    runs.append({"grid": name, **measure(width, batch, models, steps, baseline, args.dataset,
                                          args.repeats)})
  print("\ncompile time of one shape group (256 models, width 64, batch 128):")
  compiles = compile_times([4, 64], 64, 256, args.dataset)
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
         "jax": jax.__version__, "machine": platform.machine(), "cpu_count": os.cpu_count(),
         "note": ("model-steps/s of training (the engine's block program minus its "
                  "evaluation; end_to_end_* includes evaluations); (a) and (b) are measured "
                  "on the first models of the grid and extrapolated per model-step; FLOP/s "
                  "counts 6 x params x batch per model-step"),
         "runs": runs, "compile_s_by_depth": {str(k): v for k, v in compiles.items()},
         "compile_ratio_depth64_over_depth4": ratio, "peak_rss_mib": peak}
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(out, f, indent=1)
  print(f"wrote {args.out}")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
