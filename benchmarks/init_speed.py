"""jaxinit presets vs their jax.nn.initializers namesakes, timed side by side.

Each initializer is jitted for a fixed shape, warmed up, then the two sides are
timed alternately (A B A B ...) so machine noise hits both; the table reports
medians and the ratio jaxinit / jax (below 1 is faster). Absolute times on a
shared machine lie; the ratios measured in one run are what to read.

Usage:
  python benchmarks/init_speed.py [--sizes 512 1024 2048 4096] [--repeats 7]
                                  [--out benchmarks/results/init_speed.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp

import jaxinit

J = jax.nn.initializers

PAIRS = {
    "glorot_normal": (jaxinit.glorot_normal(), J.glorot_normal()),
    "glorot_uniform": (jaxinit.glorot_uniform(), J.glorot_uniform()),
    "he_normal": (jaxinit.he_normal(), J.he_normal()),
    "he_uniform": (jaxinit.he_uniform(), J.he_uniform()),
    "lecun_normal": (jaxinit.lecun_normal(), J.lecun_normal()),
    "lecun_uniform": (jaxinit.lecun_uniform(), J.lecun_uniform()),
    "variance_scaling(normal)": (jaxinit.variance_scaling(2.0, "fan_avg", "normal"),
                                 J.variance_scaling(2.0, "fan_avg", "normal")),
    "normal": (jaxinit.normal(0.02), J.normal(0.02)),
    "truncated_normal": (jaxinit.truncated_normal(0.02), J.truncated_normal(0.02)),
    "uniform": (jaxinit.uniform(0.02), J.uniform(0.02)),
    "zeros": (jaxinit.zeros, J.zeros),
    "orthogonal": (jaxinit.orthogonal(), J.orthogonal()),
    "delta_orthogonal (3x3 kernel)": (jaxinit.delta_orthogonal(), J.delta_orthogonal()),
}
VARIANCE_SCALING = {"glorot_normal", "glorot_uniform", "he_normal", "he_uniform", "lecun_normal",
                    "lecun_uniform", "variance_scaling(normal)", "normal", "truncated_normal",
                    "uniform"}


def _timer(init, shape):
  fn = jax.jit(lambda key: init(key, shape, jnp.float32))
  key = jax.random.key(0)
  fn(key).block_until_ready()  # compile and warm up
  fn(key).block_until_ready()

  def once() -> float:
    start = time.perf_counter()
    fn(key).block_until_ready()
    return time.perf_counter() - start
  return once


def measure(name: str, size: int, repeats: int) -> dict:
  ours, theirs = PAIRS[name]
  shape = (3, 3, size // 8, size // 8) if name.startswith("delta") else (size, size)
  time_ours, time_theirs = _timer(ours, shape), _timer(theirs, shape)
  a, b = [], []
  for _ in range(repeats):
    a.append(time_ours())
    b.append(time_theirs())
  ratios = [x / y for x, y in zip(a, b)]
  return {"name": name, "shape": list(shape), "jaxinit_ms": 1e3 * statistics.median(a),
          "jax_ms": 1e3 * statistics.median(b), "ratio": statistics.median(ratios),
          "ratio_min": min(ratios), "ratio_max": max(ratios), "repeats": repeats}


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048, 4096])
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--names", nargs="+", default=list(PAIRS))
  parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                    "init_speed.json"))
  args = parser.parse_args(argv)
  rows = []
  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}")
  print(f"{'initializer':34s} {'shape':>18s} {'jaxinit ms':>11s} {'jax ms':>10s} {'ratio':>7s}")
  for name in args.names:
    for size in args.sizes:
      repeats = args.repeats if (size < 4096 or name in VARIANCE_SCALING) else 3
      row = measure(name, size, repeats)
      rows.append(row)
      print(f"{name:34s} {str(tuple(row['shape'])):>18s} {row['jaxinit_ms']:11.2f} "
            f"{row['jax_ms']:10.2f} {row['ratio']:7.3f}", flush=True)
  vs = [r["ratio"] for r in rows if r["name"] in VARIANCE_SCALING]
  summary = {"variance_scaling_max_ratio": max(vs) if vs else None,
             "variance_scaling_median_ratio": statistics.median(vs) if vs else None}
  ortho = {r["shape"][0]: r["ratio"] for r in rows if r["name"] == "orthogonal"}
  if ortho:
    summary["orthogonal_speedup"] = {str(k): 1.0 / v for k, v in sorted(ortho.items())}
  print(json.dumps(summary, indent=1))
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump({"device": jax.devices()[0].device_kind, "backend": jax.default_backend(),
               "jax": jax.__version__, "machine": platform.machine(),
               "cpu_count": os.cpu_count(), "rows": rows, "summary": summary}, f, indent=1)
  print(f"wrote {args.out}")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
