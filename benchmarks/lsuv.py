"""LSUV over many seeds: one vmapped jit against a Python loop over seeds.

A depth-``--depth`` ReLU MLP (width ``--width``, Flax NNX, every layer drawn
from normal(0.01)) is fitted by :func:`jaxinit.lsuv` with orthogonal pre-init
for ``--seeds`` seeds two ways, side by side in one run:

* ``vmapped``: ``jax.jit(jax.vmap(lsuv))`` over stacked params and keys: one
  compiled program for every seed;
* ``loop``: a Python loop calling ``jaxinit.lsuv`` once per seed (the same
  compiled program reused: only the first call compiles).

Reported: wall time of each (first call with compiles, then warm),
``loop / vmapped`` (warm), the largest difference between a seed's vmapped
result and its own call (in units of float32 eps times the tensor's largest
entry) and LSUV's iterations per layer.

Usage:
  python benchmarks/lsuv.py [--seeds 256] [--depth 30] [--width 64]
                            [--out benchmarks/results/lsuv.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import jaxinit
from jaxinit.capture import forward


class MLP(nnx.Module):

  def __init__(self, depth: int, width: int, rngs: nnx.Rngs):
    self.layers = nnx.List([nnx.Linear(width, width, kernel_init=jaxinit.normal(0.01),
                                       rngs=rngs) for _ in range(depth)])

  def __call__(self, x):
    for layer in self.layers:
      x = jax.nn.relu(layer(x))
    return x


def _timed(fn):
  tick = time.perf_counter()
  out = jax.block_until_ready(fn())
  return out, time.perf_counter() - tick


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--seeds", type=int, default=256)
  parser.add_argument("--depth", type=int, default=30)
  parser.add_argument("--width", type=int, default=64)
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                    "lsuv.json"))
  args = parser.parse_args()
  fwd, _ = forward(MLP(args.depth, args.width, nnx.Rngs(0)))
  params = [forward(MLP(args.depth, args.width, nnx.Rngs(s)))[1] for s in range(args.seeds)]
  stacked = jax.tree.map(lambda *p: jnp.stack(p), *params)
  keys = jax.random.split(jax.random.key(1), args.seeds)
  x = jax.random.normal(jax.random.key(2), (args.batch, args.width))

  vmapped = jax.jit(jax.vmap(lambda p, k: jaxinit.lsuv(fwd, x, params=p, key=k, pre_init=True,
                                                       check=False)))
  (new, report), vmap_first = _timed(lambda: vmapped(stacked, keys))
  _, vmap_warm = _timed(lambda: vmapped(stacked, keys))

  def loop():
    return [jaxinit.lsuv(fwd, x, params=p, key=k, pre_init=True) for p, k in zip(params, keys)]

  singles, loop_first = _timed(loop)
  _, loop_warm = _timed(loop)
  eps = float(np.finfo(np.float32).eps)
  worst, identical, total = 0.0, 0, 0
  for s, (single, _) in enumerate(singles):
    for a, b in zip(jax.tree.leaves(single), jax.tree.leaves(jax.tree.map(lambda v: v[s], new))):
      a, b = np.asarray(a), np.asarray(b)
      scale = float(np.max(np.abs(a))) or 1.0
      worst = max(worst, float(np.max(np.abs(a - b))) / (eps * scale))
      identical += int(np.array_equal(a, b))
      total += 1
  iters = np.asarray(report.iterations)
  result = {
      "benchmark": "lsuv", "seeds": args.seeds, "depth": args.depth, "width": args.width,
      "batch": args.batch, "backend": jax.default_backend(), "devices": jax.device_count(),
      "cpu": platform.processor() or platform.machine(),
      "vmapped_first_s": vmap_first, "vmapped_warm_s": vmap_warm,
      "loop_first_s": loop_first, "loop_warm_s": loop_warm,
      "loop_over_vmapped_warm": loop_warm / vmap_warm,
      "loop_over_vmapped_first": loop_first / vmap_first,
      "max_diff_vs_unbatched_eps_of_tensor_max": worst,
      "identical_tensors": f"{identical}/{total}",
      "all_converged": bool(np.all(report.converged)),
      "iterations_max": int(iters.max()), "iterations_mean": float(iters.mean()),
      "std_after_range": [float(np.sqrt(np.min(report.variance_after))),
                          float(np.sqrt(np.max(report.variance_after)))],
  }
  os.makedirs(os.path.dirname(args.out), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(result, f, indent=2)
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  main()
