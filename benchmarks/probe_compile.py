"""Compile time of a full probe at depth 64 against depth 4.

Hidden layers are stacked and run with ``lax.scan``, so the compiled program
should not grow with depth. This script lowers and compiles one jitted probe
(forward moments, dead units, gradient norms, distinct units, a matrix-free
Jacobian estimate) for each depth, with caches cleared before every
measurement, and reports the median over repeats and the ratio.

Usage:
  PYTHONPATH=. python benchmarks/probe_compile.py [--out PATH] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from typing import Any

import jax
import jax.numpy as jnp

from jaxinit import probes
from jaxinit.models import CNN1D, MLP, ResMLP, functional

DEFAULT_OUT = os.path.join("benchmarks", "results", "probe_compile.json")


def make_net(family: str, depth: int, width: int) -> tuple[Any, tuple[int, ...]]:
  """A network of the family (its functional view, from shapes) and its input shape (batch 16)."""
  if family == "mlp":
    return functional(MLP.abstract(width, 10, width, depth, "relu"))[0], (16, width)
  if family == "resmlp":
    return functional(ResMLP.abstract(width, 10, width, depth, "relu",
                                      branch_scale=0.2))[0], (16, width)
  if family == "cnn":
    return functional(CNN1D.abstract(1, 10, width, depth, kernel_size=5,
                                     activation="relu"))[0], (16, 40, 1)
  raise ValueError(f"unknown family {family!r}")


def full_probe(net: Any, params: Any, x: jax.Array, key: jax.Array) -> dict[str, Any]:
  """Every probe of jaxinit.probes on one network, as one program."""
  _, inter = net.apply(params, x, capture=True)
  h = inter["preactivations"]
  return {
      "moments": probes.layer_moments(h),
      "dead": probes.dead_fraction(h),
      "gradients": probes.gradient_norms(net, params, x, lambda y: jnp.mean(y**2)),
      "symmetry": probes.distinct_units_per_layer(net, params),
      "jacobian": probes.jacobian_spectrum_estimate(lambda z: net.apply(params, z), x[0],
                                                    key, num_probes=8, num_iters=16),
  }


def compile_seconds(family: str, depth: int, width: int) -> dict[str, float]:
  """Seconds to trace + lower and to compile the probe, caches cleared first."""
  net, x_shape = make_net(family, depth, width)
  params = jax.eval_shape(net.init, jax.random.key(0))
  x = jax.ShapeDtypeStruct(x_shape, jnp.float32)
  key = jax.eval_shape(lambda: jax.random.key(0))
  jax.clear_caches()
  start = time.perf_counter()
  lowered = jax.jit(full_probe, static_argnums=0).lower(net, params, x, key)
  lowered_at = time.perf_counter()
  lowered.compile()
  done = time.perf_counter()
  return {"lower_s": lowered_at - start, "compile_s": done - lowered_at,
          "total_s": done - start}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default=DEFAULT_OUT, help="JSON output path")
  parser.add_argument("--depths", type=int, nargs=2, default=(4, 64),
                      metavar=("SHALLOW", "DEEP"))
  parser.add_argument("--width", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--families", nargs="+", default=["mlp", "resmlp", "cnn"])
  args = parser.parse_args()

  shallow, deep = args.depths
  results: dict[str, Any] = {}
  print(f"{'family':8s} {'depth':>5s} {'lower s':>8s} {'compile s':>9s} {'total s':>8s}")
  for family in args.families:
    medians = {}
    for depth in (shallow, deep):
      runs = [compile_seconds(family, depth, args.width) for _ in range(args.repeats)]
      medians[depth] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
      medians[depth]["runs_total_s"] = [r["total_s"] for r in runs]
      m = medians[depth]
      print(f"{family:8s} {depth:5d} {m['lower_s']:8.3f} {m['compile_s']:9.3f} "
            f"{m['total_s']:8.3f}")
    ratio = medians[deep]["total_s"] / medians[shallow]["total_s"]
    print(f"{family:8s} ratio {deep} / {shallow} layers: {ratio:.3f} "
          f"({'within' if ratio <= 1.5 else 'OVER'} 1.5x)")
    results[family] = {"shallow": {"depth": shallow, **medians[shallow]},
                       "deep": {"depth": deep, **medians[deep]}, "ratio": ratio}

  report = {
      "benchmark": "probe_compile", "width": args.width, "repeats": args.repeats,
      "jax": jax.__version__, "backend": jax.default_backend(),
      "device": str(jax.devices()[0]), "machine": platform.machine(),
      "cpu_count": os.cpu_count(), "results": results,
  }
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(report, f, indent=2)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
