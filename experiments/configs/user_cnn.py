"""Your own model and data for a sweep: a Flax NNX CNN and a 1-D signal task as arrays.

``user_cnn.toml`` beside this file names them by import path
(``"user_cnn:CNN"``, ``"user_cnn:signals"``: the config's folder is searched
first); ``jaxinit_experiments.user_model`` sweeps the same model from Python.
Nothing here knows about jaxinit: the sweep calls ``CNN`` with the grid's
static values it accepts (``channels``, ``depth``) and the dataset's
``in_shape`` and ``out_features``, and draws its params by the grid's ``init``
rules (``jaxinit.initialize``).
"""

from __future__ import annotations

import numpy as np
from flax import nnx


class CNN(nnx.Module):
  """Conv (+ReLU) layers with 'SAME' padding, global average pooling, a dense head.

  Inputs ``(batch, length, in_channels)``; ``depth`` conv layers of ``channels``.
  """

  def __init__(self, *, in_shape: tuple[int, ...], out_features: int, channels: int = 16,
               depth: int = 2, kernel_size: int = 5, rngs: nnx.Rngs) -> None:
    if channels < 1 or depth < 1:
      raise ValueError(f"channels and depth must be >= 1, got {channels} and {depth}")
    sizes = [in_shape[-1]] + [channels] * depth
    self.convs = nnx.List([nnx.Conv(a, b, (kernel_size,), padding="SAME", rngs=rngs)
                           for a, b in zip(sizes[:-1], sizes[1:])])
    self.head = nnx.Linear(channels, out_features, rngs=rngs)

  def __call__(self, x):
    for conv in self.convs:
      x = nnx.relu(conv(x))
    return self.head(x.mean(axis=-2))


WAVES = ("sine", "square", "triangle", "sawtooth")


def signals(n_train: int = 2000, n_test: int = 1000, length: int = 40, noise: float = 0.5,
            seed: int = 0) -> dict[str, np.ndarray]:
  """Four classes of noisy waveforms (sine, square, triangle, sawtooth) of random
  frequency, phase and amplitude: ``x`` float32 ``(n, length, 1)``, ``y`` int labels."""
  rng = np.random.default_rng(seed)
  n = n_train + n_test
  y = rng.integers(0, len(WAVES), n)
  t = np.arange(length) / length
  cycles = rng.uniform(1.0, 4.0, (n, 1))
  phase = rng.uniform(0.0, 1.0, (n, 1))
  u = (cycles * t + phase) % 1.0
  waves = np.stack([np.sin(2 * np.pi * u), np.sign(np.sin(2 * np.pi * u)),
                    4 * np.abs(u - 0.5) - 1, 2 * u - 1])
  x = waves[y, np.arange(n)] * rng.uniform(0.5, 1.5, (n, 1))
  x = (x + noise * rng.standard_normal(x.shape)).astype(np.float32)[..., None]
  return {"x_train": x[:n_train], "y_train": y[:n_train], "x_test": x[n_train:],
          "y_test": y[n_train:]}
