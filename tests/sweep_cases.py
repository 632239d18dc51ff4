"""Small sweep inputs shared by the sweep tests."""

import jax

TEACHER = {"name": "teacher_student", "n_train": 64, "n_test": 32, "in_features": 4}
"""A teacher-student dataset of 64 examples: loads in milliseconds."""


def pure_pair(*, in_features, out_features):
  """A pure ``(init, apply)`` linear model: no modules for a capture to see."""
  def init(key):
    return {"kernel": jax.random.normal(key, (in_features, out_features))}
  return init, lambda params, x: x @ params["kernel"]
