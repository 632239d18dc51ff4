"""Convolutions in canonical layout: the values of the original, and XLA:CPU's fast path inside loops."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinit.sweep import compile as compile_lib
from jaxinit.sweep import config as config_lib
from jaxinit.sweep import data as data_lib
from jaxinit.sweep.convolutions import canonical_convolutions, has_convolution

LAYOUTS = [("NWC", "WIO", "NWC"), ("NCW", "OIW", "NCW"), ("NHWC", "HWIO", "NHWC"),
           ("NCHW", "OIHW", "NCHW"), ("NHWC", "OIHW", "NCHW")]


def _conv(layout, strides, dilation, groups):
  def conv(x, w):
    return jax.lax.conv_general_dilated(x, w, strides, "SAME", rhs_dilation=dilation,
                                        dimension_numbers=layout, feature_group_count=groups)
  return conv


def _operands(layout, spatial, groups, key):
  ndim = len(layout[0])
  sizes = {"N": 3, "C": 4, "I": 4 // groups, "O": 6}
  x_shape = tuple(sizes.get(c, 7) for c in layout[0])
  w_shape = tuple(sizes.get(c, 3) for c in layout[1])
  kx, kw = jax.random.split(key)
  assert len(x_shape) == ndim == len(spatial) + 2
  return jax.random.normal(kx, x_shape), jax.random.normal(kw, w_shape)


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda l: ",".join(l))
@pytest.mark.parametrize("strides_dilation_groups", [(1, 1, 1), (2, 1, 2), (1, 2, 1)],
                         ids=["plain", "strided-grouped", "dilated"])
def test_rewritten_convolutions_and_their_gradients_equal_the_originals(layout,
                                                                        strides_dilation_groups):
  stride, dilation, groups = strides_dilation_groups
  spatial = (1,) * (len(layout[0]) - 2)
  conv = _conv(layout, tuple(stride * s for s in spatial), tuple(dilation * s for s in spatial),
               groups)
  x, w = _operands(layout, spatial, groups, jax.random.key(0))

  def loss(x, w):
    return jnp.sum(jnp.sin(conv(x, w)))

  fast = canonical_convolutions(jax.value_and_grad(loss, argnums=(0, 1)))
  want = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(x, w)
  got = jax.jit(fast)(x, w)
  # The same products summed in a different order: float32 rounding apart at most.
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def _dim_labels(fn, *args):
  text = jax.jit(fn).lower(*args).compile().as_text()
  return re.findall(r"convolution\(.*?dim_labels=(\S+?)[,\s]", text)


def test_gradients_inside_a_scan_compile_to_canonical_convolutions():
  layout = ("NWC", "WIO", "NWC")  # Flax's: the forward convolutions are canonical already
  conv = _conv(layout, (1,), (1,), 1)
  x, w1 = _operands(layout, (1,), 1, jax.random.key(1))
  w2 = jax.random.normal(jax.random.key(2), (3, 6, 6))

  def loss(ws):
    return jnp.sum(jnp.tanh(conv(jax.nn.relu(conv(x, ws[0])), ws[1])))

  def sgd(grad):
    def train(ws):
      def body(ws, _):
        return jax.tree.map(lambda w, g: w - 0.01 * g, ws, grad(ws)), None
      return jax.lax.scan(body, ws, None, length=3)[0]
    return train

  plain = _dim_labels(sgd(jax.grad(loss)), (w1, w2))
  fast = _dim_labels(sgd(canonical_convolutions(jax.grad(loss))), (w1, w2))
  # Without the rewrite the gradients keep JAX's transposed layouts inside the loop (XLA:CPU
  # canonicalizes the entry computation only); with it, every convolution is NWC/WIO.
  assert len(plain) == len(fast) == 5
  assert sum(label != "b0f_0io->b0f" for label in plain) >= 2
  assert fast == ["b0f_0io->b0f"] * 5


def test_convolutions_in_nested_calls_are_rewritten():
  conv = _conv(("NCW", "OIW", "NCW"), (1,), (1,), 1)
  x, w = _operands(("NCW", "OIW", "NCW"), (1,), 1, jax.random.key(2))
  inner = jax.checkpoint(jax.jit(lambda x, w: jnp.sum(conv(x, w) ** 2)))
  fn = canonical_convolutions(jax.grad(inner, argnums=1))
  assert _dim_labels(fn, x, w) == ["b0f_0io->b0f"] * 2
  np.testing.assert_allclose(jax.jit(fn)(x, w), jax.jit(jax.grad(inner, argnums=1))(x, w),
                             rtol=1e-5, atol=1e-5)


def test_convolutions_inside_shard_map_are_left_as_they_are():
  mesh = jax.make_mesh((jax.device_count(),), ("d",),
                       axis_types=(jax.sharding.AxisType.Auto,))
  conv = _conv(("NCW", "OIW", "NCW"), (1,), (1,), 1)
  x, w = _operands(("NCW", "OIW", "NCW"), (1,), 1, jax.random.key(3))
  x = jnp.tile(x, (jax.device_count(), 1, 1))
  mapped = jax.shard_map(lambda x, w: jax.lax.psum(conv(x, w), "d"), mesh=mesh,
                         in_specs=(jax.sharding.PartitionSpec("d"), jax.sharding.PartitionSpec()),
                         out_specs=jax.sharding.PartitionSpec())
  fn = lambda x, w: jnp.sum(conv(x, w)) + jnp.sum(mapped(x, w))  # noqa: E731
  # The axis name lives in the shard_map call: its body is not traced again on its own.
  np.testing.assert_allclose(jax.jit(canonical_convolutions(jax.grad(fn, 1)))(x, w),
                             jax.jit(jax.grad(fn, 1))(x, w), rtol=1e-5, atol=1e-5)


def test_a_function_without_convolutions_is_called_as_it_is():
  fn = lambda a: jnp.tanh(a @ a.T)  # noqa: E731
  a = jnp.ones((3, 3))
  assert not has_convolution(jax.make_jaxpr(fn)(a).jaxpr)
  assert (jax.jit(canonical_convolutions(fn)).lower(a).as_text()
          == jax.jit(fn).lower(a).as_text())


@pytest.mark.parametrize("model, lanes", [("cnn1d", 1), ("mlp", 64)])
def test_a_convolutional_model_trains_one_model_per_device_on_cpu(model, lanes):
  config = config_lib.parse_config({"grid": {"model": model, "dataset": "teacher_student",
                                             "width": 4, "depth": 2, "batch_size": 8}})
  spec = config.models()[0]
  program = compile_lib.make_program(spec, data_lib.load_dataset("teacher_student"), config)
  assert program.lanes == lanes
