"""The property-test matrix's rows: every public initializer with the shapes it takes.

Shared by tests/test_matrix.py (eager, jit, vmap, eval_shape) and the shard_map
column in tests/test_sharding.py (a subprocess with 4 CPU devices). Each shape
list holds batch axes where the initializer has them and zero-size axes.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

import jaxinit
from jaxinit import samplers

DTYPES = (jnp.float32, jnp.bfloat16, jnp.float16, jnp.complex64)
REAL = DTYPES[:3]

# Few distinct non-empty shapes, shared by the rows: eager execution compiles per shape.
KERNEL = ((4, 6), (3, 4, 6), (0, 6), (3, 0, 6))
BATCHED = ((2, 4, 6), (0, 4, 6), (2, 0, 6))
ANY = ((6,), (4, 6), (0, 6))
CONV = ((3, 4, 6), (3, 0, 6), (0, 4, 6))
GROUPED = CONV


def laplace(key, shape, dtype, out_sharding=None):
  """A user sampler (unit variance), drawn per batch slice by the combinator."""
  del out_sharding
  real = jnp.finfo(dtype).dtype
  return (jax.random.laplace(key, shape, real) / math.sqrt(2.0)).astype(dtype)


# (id, initializer, shapes, dtypes)
CASES = [
    ("zeros", jaxinit.zeros, ANY, DTYPES),
    ("ones", jaxinit.ones, ANY, DTYPES),
    ("constant", jaxinit.constant(0.5), ANY, DTYPES),
    ("constant_array", jaxinit.constant(np.arange(6.0)), ((4, 6), (0, 6), (2, 3, 6)), DTYPES),
    ("constant_complex", jaxinit.constant(1 - 2j), ANY, (jnp.complex64,)),
    ("normal", jaxinit.normal(0.02), ANY, DTYPES),
    ("normal_negative", jaxinit.normal(-0.5), ANY, DTYPES),
    ("uniform", jaxinit.uniform(0.1), ANY, REAL),
    ("uniform_symmetric", jaxinit.uniform(0.1, symmetric=True), ANY, DTYPES),
    ("truncated_normal", jaxinit.truncated_normal(0.02), ANY, DTYPES),
    ("truncated_normal_tail", jaxinit.truncated_normal(0.5, lower=4.0, upper=math.inf), ANY, REAL),
    ("glorot_normal", jaxinit.glorot_normal(), KERNEL, DTYPES),
    ("glorot_uniform", jaxinit.glorot_uniform(batch_axis=0), BATCHED, DTYPES),
    ("he_normal", jaxinit.he_normal(batch_axis=0), BATCHED, DTYPES),
    ("he_uniform", jaxinit.he_uniform(negative_slope=0.1), KERNEL, DTYPES),
    ("lecun_normal", jaxinit.lecun_normal(feature_group_count=2), GROUPED, DTYPES),
    ("lecun_uniform", jaxinit.lecun_uniform(), KERNEL, DTYPES),
    ("orthogonal", jaxinit.orthogonal(), KERNEL + ((6, 4),), DTYPES),
    ("orthogonal_grouped", jaxinit.orthogonal(2.0, feature_group_count=2), GROUPED, DTYPES),
    ("orthogonal_batched", jaxinit.variance_scaling(1.0, "fan_max", "orthogonal", in_axis=None,
                                                    batch_axis=0), BATCHED, DTYPES),
    ("delta_orthogonal", jaxinit.delta_orthogonal(), CONV, DTYPES),
    ("delta_orthogonal_grouped", jaxinit.delta_orthogonal(feature_group_count=2), GROUPED, DTYPES),
    ("dirac", jaxinit.dirac(0.5), KERNEL, DTYPES),
    ("dirac_depthwise", jaxinit.dirac(feature_group_count=6), ((3, 1, 6), (0, 1, 6)), DTYPES),
    ("embedding", jaxinit.embedding(), KERNEL, DTYPES),
    ("torch_linear_default", jaxinit.torch_linear_default(), KERNEL, DTYPES),
    ("torch_linear_bias", jaxinit.torch_linear_bias(7), ANY, DTYPES),
    ("depth_scaled", jaxinit.depth_scaled(jaxinit.he_normal(), 4), KERNEL, DTYPES),
    ("scaled_dirac", jaxinit.scaled(jaxinit.dirac(), -2.0), KERNEL, DTYPES),
    ("rademacher", jaxinit.variance_scaling(1.0, "fan_in", "rademacher", batch_axis=0), BATCHED,
     DTYPES),
    ("sparse", jaxinit.variance_scaling(1.0, "fan_in", samplers.sparse(0.5), batch_axis=0),
     BATCHED, DTYPES),
    ("delta_normal", jaxinit.variance_scaling(1.0, "fan_max", samplers.delta("normal"),
                                              batch_axis=0), ((2, 3, 4, 6), (0, 3, 4, 6)), DTYPES),
    ("identity", jaxinit.variance_scaling(1.0, "fan_max", "identity", batch_axis=0),
     ((2, 4, 6), (0, 4, 6), (2, 0, 6)), DTYPES),
    ("user_sampler", jaxinit.variance_scaling(2.0, "fan_in", laplace, batch_axis=0), BATCHED,
     DTYPES),
]
IDS = [case[0] for case in CASES]


def outputs(init, shapes, dtypes):
  """``key -> [init(key, shape, dtype) for every shape and dtype]``: one program per row."""
  def draw_all(key):
    return [init(key, shape, dtype) for shape in shapes for dtype in dtypes]
  return draw_all


def combos(shapes, dtypes):
  return [(shape, jnp.dtype(dtype)) for shape in shapes for dtype in dtypes]


def tolerance(dtype) -> float:
  """jit, vmap and shard_map may fuse a multiply differently from eager execution: a few ulps."""
  return 4 * float(jnp.finfo(dtype).eps)
