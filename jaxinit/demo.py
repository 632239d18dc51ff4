"""``jaxinit demo``: how the signal's variance evolves through a deep network.

For each initializer, one random MLP of the given depth and width is applied
to a batch of unit-variance inputs and the second moment ``q^l`` of the
pre-activations is printed at a few depths. He keeps ReLU signals at O(1),
Glorot halves them every layer, a small normal init makes them vanish and a
large one explode: the whole story of initialization in one table.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp

import jaxinit
from jaxinit.models import MLP


def _initializers(activation: str) -> dict[str, jaxinit.Initializer]:
  gain = jaxinit.gain(activation)
  return {
      "normal(0.01)": jaxinit.normal(0.01),
      "normal(0.1)": jaxinit.normal(0.1),
      "lecun_normal": jaxinit.lecun_normal(),
      "glorot_normal": jaxinit.glorot_normal(),
      "he_normal": jaxinit.he_normal(),
      "orthogonal(gain)": jaxinit.orthogonal(gain),
      f"variance_scaling(gain^2={gain**2:.3f})":
          jaxinit.variance_scaling(gain**2, "fan_in", "normal"),
  }


def signal_variances(init: jaxinit.Initializer, activation: str, depth: int, width: int,
                     batch: int, key: jax.Array) -> jax.Array:
  """``q^l = E[(h^l)^2]`` for ``l = 1..depth`` of one random MLP on N(0, 1) inputs."""
  key_params, key_x = jax.random.split(key)
  model = MLP(in_features=width, out_features=1, width=width, depth=depth,
              activation=activation, use_bias=False, kernel_init=init, rngs=key_params)
  x = jax.random.normal(key_x, (batch, width))
  _, captured = model(x, capture=True)
  return jnp.mean(captured["preactivations"] ** 2, axis=(1, 2))


def main(argv: list[str] | None = None) -> int:
  """Prints the per-layer signal variance of a deep network under several initializers."""
  parser = argparse.ArgumentParser(prog="jaxinit demo", description=__doc__.splitlines()[0])
  parser.add_argument("--activation", default="relu", help="an activation name (default relu)")
  parser.add_argument("--depth", type=int, default=50)
  parser.add_argument("--width", type=int, default=256)
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  if args.depth < 1 or args.width < 1 or args.batch < 1:
    parser.error("--depth, --width and --batch must be positive")
  from jaxinit import checks, gains  # pylint: disable=import-outside-toplevel
  try:
    checks.choice("--activation", args.activation, sorted(gains.ACTIVATIONS))
  except ValueError as err:
    parser.error(str(err))

  shown = sorted({1, 2, 5, 10, 20, 50, 100, args.depth} & set(range(1, args.depth + 1)))
  print(f"Second moment q^l of pre-activations, {args.activation} MLP, width {args.width}, "
        f"inputs N(0, 1), no biases, seed {args.seed}")
  header = f"{'initializer':32s}" + "".join(f"{'l=' + str(l):>11s}" for l in shown)
  print(header)
  print("-" * len(header))
  key = jax.random.key(args.seed)
  for name, init in _initializers(args.activation).items():
    q = jax.device_get(signal_variances(init, args.activation, args.depth, args.width,
                                        args.batch, key))
    cells = "".join(f"{q[l - 1]:11.3g}" for l in shown)
    print(f"{name:32s}{cells}")
  gain = jaxinit.gain(args.activation)
  print(f"\njaxinit.gain({args.activation!r}) = {gain:.6f}: weights of variance gain^2 / fan_in "
        f"make q = 1 a fixed point of the layer map (He et al. 2015's 2 / fan_in for ReLU).")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
