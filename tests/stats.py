"""Sampling-error helpers shared by the statistical tests.

Every tolerance is a number of standard errors estimated from the sample
itself; ``Z`` = 5 gives a false-failure rate below 1e-6 per check, and the
keys are fixed, so a run is deterministic.
"""

import numpy as np

Z = 5.0


def moments(x) -> tuple[float, float, float, float]:
  """Mean, its standard error, second moment ``E|x|^2``, and its standard error."""
  x = np.asarray(x, np.complex128 if np.iscomplexobj(x) else np.float64).ravel()
  n = x.size
  sq = np.abs(x) ** 2
  return (float(np.abs(x.mean())), float(np.sqrt(sq.mean() / n)),
          float(sq.mean()), float(sq.std() / np.sqrt(n)))


def assert_mean_and_variance(x, variance: float, label: str = "") -> None:
  """Mean 0 and ``E|x|^2 = variance``, each within Z standard errors."""
  mean, mean_se, second, second_se = moments(x)
  assert mean <= Z * mean_se, f"{label}: |mean| {mean:.3g} > {Z} SE ({mean_se:.3g})"
  assert abs(second - variance) <= Z * second_se, (
      f"{label}: E|x|^2 {second:.6g} vs {variance:.6g}, tolerance {Z} SE = {Z * second_se:.3g}")
