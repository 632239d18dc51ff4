"""Initializing a model too big for one device directly into its shards.

A Flax NNX model of ``--layers`` Linear layers ``width x width`` (default 32 x
4096^2 float32 = 2 GiB), each kernel partitioned over a mesh of 8 CPU
devices (``nnx.with_partitioning(init, (None, "model"))``), is initialized
four ways, each in a fresh process (peak RSS is a per-process maximum):

* ``baseline``: the interpreter with jax, flax and jaxinit imported and the
  mesh made: what every route pays before any parameter exists;
* ``jaxinit``: ``jaxinit.initialize(nnx.eval_shape(...), rules, key)``: each
  kernel drawn by a jitted program whose output is already sharded;
* ``naive``: the model built unsharded on one device, then ``jax.device_put``
  into the same shardings (the route users take without help);
* ``flax``: Flax's own ``nnx.Rngs``-driven construction of the partitioned
  model under ``jax.set_mesh`` (its eager sharding), the same parameters;
* ``flax_jit``: the same construction inside ``nnx.jit`` (one compiled
  program, the route Flax's sharding guide recommends). A route whose RSS
  passes 5x the parameters is stopped and reported as failed (at 2 GiB this
  one reached 22 GiB and was killed by the kernel when uncapped).

Reported: peak RSS above the baseline divided by the parameter bytes (aim:
``jaxinit`` <= 1.25), and wall times of the first call (compiles included)
and of a second call (warm), ``jaxinit / flax`` (aim: <= 1.1).

``jaxinit`` holds the parameters plus the draw buffers of the parameter being
drawn, so its overhead is about one parameter's size: 8 kernels of 8192^2
(256 MiB each) measure ~1.36x, 32 of 4096^2 ~1.14x. On CPU the 8 "devices"
share host memory, so the naive route's real cost on accelerators (the whole
model on device 0) shows here only as its 2x peak.

Usage:
  python benchmarks/model_init.py [--width 4096] [--layers 32]
                                  [--out benchmarks/results/model_init.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

DEVICES = 8

CHILD = r"""
import json, os, resource, sys, time
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=%(devices)d"
import jax, jax.numpy as jnp
from flax import nnx
import jaxinit

route, width, layers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
mesh = jax.make_mesh((%(devices)d,), ("model",), axis_types=(jax.sharding.AxisType.Explicit,))


class Model(nnx.Module):
  def __init__(self, rngs, sharded=True):
    init = nnx.initializers.lecun_normal()
    if sharded:
      init = nnx.with_partitioning(init, (None, "model"))
    self.layers = nnx.List([nnx.Linear(width, width, kernel_init=init, use_bias=False,
                                       rngs=rngs) for _ in range(layers)])


def peak_mib():
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def done(model):
  leaves = [v.get_value() for _, v in nnx.to_flat_state(nnx.state(model, nnx.Param))]
  jax.block_until_ready(leaves)
  shards = {len(x.sharding.device_set) for x in leaves}
  return leaves, shards


rules = jaxinit.RuleSet.of([(nnx.Linear, jaxinit.lecun_normal())])
out = {"route": route}
if route == "baseline":
  jnp.zeros(1).block_until_ready()
  out["peak_mib"] = peak_mib()
else:
  times = []
  for attempt in range(2):
    tick = time.perf_counter()
    if route == "jaxinit":
      with jax.set_mesh(mesh):
        abstract = nnx.eval_shape(lambda: Model(nnx.Rngs(0)))
      model = jaxinit.initialize(abstract, rules, 0, mesh=mesh)
    elif route == "flax":
      with jax.set_mesh(mesh):
        model = Model(nnx.Rngs(0))
    elif route == "flax_jit":
      with jax.set_mesh(mesh):
        model = nnx.jit(lambda: Model(nnx.Rngs(0)))()
    else:  # naive: the whole model unsharded on one device, then device_put into the shards
      model = Model(nnx.Rngs(0), sharded=False)
      sharding = jax.NamedSharding(mesh, jax.sharding.PartitionSpec(None, "model"))
      state = nnx.state(model, nnx.Param)
      nnx.update(model, jax.device_put(state, jax.tree.map(lambda _: sharding, state)))
      del state
    leaves, shards = done(model)
    times.append(time.perf_counter() - tick)
    if attempt == 0:
      out["peak_mib"] = peak_mib()
      out["param_bytes"] = int(sum(x.nbytes for x in leaves))
      out["shards"] = sorted(shards)
    del model, leaves
  out["first_s"], out["warm_s"] = times
print(json.dumps(out))
"""


def _rss_mib(pid: int) -> float:
  try:
    with open(f"/proc/{pid}/status") as f:
      for line in f:
        if line.startswith("VmRSS:"):
          return int(line.split()[1]) / 1024.0
  except OSError:
    pass
  return 0.0


def run_route(route: str, width: int, layers: int, cap_mib: float) -> dict:
  """One route in a fresh process; stopped (and reported) if its RSS passes ``cap_mib``."""
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  code = CHILD % {"devices": DEVICES}
  proc = subprocess.Popen([sys.executable, "-W", "ignore", "-c", code, route, str(width),
                           str(layers)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env)
  peak = 0.0
  while proc.poll() is None:
    peak = max(peak, _rss_mib(proc.pid))
    if peak > cap_mib:
      proc.kill()
      proc.wait()
      return {"route": route, "failed": f"stopped at {peak:.0f} MiB RSS (cap {cap_mib:.0f} MiB)"}
    time.sleep(0.1)
  out, err = proc.communicate()
  if proc.returncode != 0:
    return {"route": route, "failed": f"exit {proc.returncode}: {err[-500:]}"}
  return json.loads(out.strip().splitlines()[-1])


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--width", type=int, default=4096)
  parser.add_argument("--layers", type=int, default=32)
  parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                    "model_init.json"))
  args = parser.parse_args()
  param_mib = args.width**2 * args.layers * 4 / 2**20
  cap = 500 + 5 * param_mib  # beyond 5x the params a route has failed; spare the machine
  rows = {route: run_route(route, args.width, args.layers, cap)
          for route in ("baseline", "jaxinit", "naive", "flax", "flax_jit")}
  base = rows["baseline"]["peak_mib"]
  param_mib = rows["jaxinit"]["param_bytes"] / 2**20
  summary: dict = {}
  for route in ("jaxinit", "naive", "flax", "flax_jit"):
    r = rows[route]
    if "failed" in r:
      summary[route] = {"failed": r["failed"]}
      continue
    assert r["shards"] == [DEVICES], (route, r["shards"])
    summary[route] = {"peak_over_baseline_mib": r["peak_mib"] - base,
                      "peak_over_params": (r["peak_mib"] - base) / param_mib,
                      "first_s": r["first_s"], "warm_s": r["warm_s"]}
  summary["time_ratio_jaxinit_over_flax"] = {
      f"{when}_vs_{route}": rows["jaxinit"][f"{when}_s"] / rows[route][f"{when}_s"]
      for route in ("flax", "flax_jit") for when in ("first", "warm")
      if "failed" not in rows[route]}
  result = {"benchmark": "model_init", "devices": DEVICES, "width": args.width,
            "layers": args.layers, "param_mib": param_mib, "baseline_peak_mib": base,
            "routes": rows, "summary": summary, "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "time": time.strftime("%Y-%m-%d %H:%M:%S")}
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(result, f, indent=2)
  print(f"params: {param_mib:.0f} MiB over {DEVICES} devices; baseline RSS {base:.0f} MiB")
  print(f"{'route':10s} {'peak-base MiB':>14s} {'x params':>9s} {'first s':>8s} {'warm s':>8s}")
  for route in ("jaxinit", "naive", "flax", "flax_jit"):
    s = summary[route]
    if "failed" in s:
      print(f"{route:10s} failed: {s['failed']}")
      continue
    print(f"{route:10s} {s['peak_over_baseline_mib']:14.0f} {s['peak_over_params']:9.2f} "
          f"{s['first_s']:8.2f} {s['warm_s']:8.2f}")
  ratio = summary["time_ratio_jaxinit_over_flax"]
  print("time jaxinit / flax: " + ", ".join(f"{k} {v:.2f}" for k, v in ratio.items()))
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
