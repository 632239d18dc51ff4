"""out_sharding on 8 fake CPU devices (in a subprocess: the device count is fixed at jax import)."""

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import sys
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    import jaxinit

    assert jax.device_count() == 8, jax.devices()
    key = jax.random.key(0)
    inits = [jaxinit.he_normal(), jaxinit.glorot_uniform(), jaxinit.lecun_normal(),
             jaxinit.normal(0.02), jaxinit.truncated_normal(0.02), jaxinit.uniform(0.1),
             jaxinit.orthogonal(), jaxinit.zeros, jaxinit.constant(0.5), jaxinit.dirac(),
             jaxinit.variance_scaling(1.0, "fan_in", "rademacher"),
             jaxinit.variance_scaling(1.0, "fan_in", jaxinit.samplers.sparse(0.5)),
             jaxinit.depth_scaled(jaxinit.he_normal(), 8)]
    E, A = jax.sharding.AxisType.Explicit, jax.sharding.AxisType.Auto
    meshes = [(E, (2, 4), P("a", "b")), (A, (4, 2), P("b", "a")),
              (E, (8, 1), P("a", None)), (A, (1, 8), P(None, "b"))]
    if sys.argv[1] != "full":  # an explicit and an auto mesh, each 2-D sharded
      meshes = meshes[:2]
    cases = [(init, (64, 128)) for init in inits] + [(jaxinit.orthogonal(), (128, 64))]
    for init, shape in cases:
      ref = np.asarray(init(key, shape))
      # jit may fuse constant multiplies differently from eager op-by-op
      # execution (1 ulp); the claim is mesh independence within each mode.
      ref_jit = np.asarray(jax.jit(lambda k: init(k, shape))(key))
      for i, (axis_type, mesh_shape, spec) in enumerate(meshes):
        mesh = jax.make_mesh(mesh_shape, ("a", "b"), axis_types=(axis_type,) * 2)
        sharding = NamedSharding(mesh, spec)
        # Created sharded inside jit: never whole on one device as the output.
        out = jax.jit(lambda k: init(k, shape, jnp.float32, sharding),
                      out_shardings=sharding)(key)
        assert out.sharding.is_equivalent_to(sharding, 2), (init, out.sharding)
        np.testing.assert_array_equal(np.asarray(out), ref_jit, err_msg=repr(init))
        if i in (0, 1):  # eagerly, under the mesh, out_sharding alone places it
          with jax.set_mesh(mesh):
            eager = init(key, shape, jnp.float32, sharding)
          assert eager.sharding.is_equivalent_to(sharding, 2), (init, eager.sharding)
          np.testing.assert_array_equal(np.asarray(eager), ref, err_msg=repr(init))
    # A delta-orthogonal kernel sharded over its output channels.
    mesh = jax.make_mesh((8,), ("c",))
    sharding = NamedSharding(mesh, P(None, None, "c"))
    init = jaxinit.delta_orthogonal()
    out = jax.jit(lambda k: init(k, (3, 16, 32), jnp.float32, sharding), out_shardings=sharding)(key)
    ref_jit = jax.jit(lambda k: init(k, (3, 16, 32)))(key)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(ref_jit))
    print("sharding ok")
""")


def _run_out_sharding(which: str) -> None:
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=os.environ.get("XLA_FLAGS", "")
             + " --xla_force_host_platform_device_count=8")
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
  result = subprocess.run([sys.executable, "-c", SCRIPT, which], env=env, capture_output=True,
                          text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-4000:]
  assert "sharding ok" in result.stdout


def test_out_sharding_values_do_not_depend_on_mesh():
  """Every initializer drawn into an explicit and an auto 2-D mesh equals the unsharded draw."""
  _run_out_sharding("two")


@pytest.mark.slow
def test_out_sharding_values_do_not_depend_on_mesh_on_four_meshes():
  """The same on four meshes (2-D, and sharded along one axis only), explicit and auto."""
  _run_out_sharding("full")


SHARD_MAP_SCRIPT = textwrap.dedent("""
    import sys
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    import jaxinit
    from matrix_cases import CASES, combos, outputs, tolerance
    FULL = sys.argv[1] == "full"

    assert jax.device_count() == 4, jax.devices()
    mesh = jax.make_mesh((4,), ("x",))
    key = jax.random.key(0)

    def close(a, b, dtype):
      wide = np.complex64 if dtype == jnp.complex64 else np.float32
      a, b = np.asarray(a).astype(wide), np.asarray(b).astype(wide)
      scale = max(float(np.abs(b).max()), 1e-30) if b.size else 1.0
      np.testing.assert_allclose(a, b, rtol=0, atol=tolerance(dtype) * scale)

    EAGER_ROWS = {"orthogonal", "orthogonal_batched", "delta_orthogonal", "truncated_normal_tail",
                  "sparse", "constant_array", "user_sampler", "dirac"}
    for name, init, shapes, dtypes in CASES:
      if not FULL:
        # Every row, in its first dtype (float32 where it has it: bfloat16 and float16
        # are float32 draws cast); a shape and an empty shape (eagerly: the shape).
        shapes, dtypes = [shapes[0]] + [s for s in shapes if 0 in s][:1], dtypes[:1]
      # Eagerly (op by op, one compile per op inside shard_map): the rows whose draws take
      # their own code paths (the field report's orthogonal among them); the full run: all.
      modes = ("eager", "jit") if FULL or name in EAGER_ROWS else ("jit",)
      for mode in modes:
        sub_shapes, sub_dtypes = (shapes, dtypes) if FULL or mode == "jit" else (
            shapes[:1], dtypes)
        draw_all = outputs(init, sub_shapes, sub_dtypes)
        outside = draw_all(key)
        # Inside the user's own shard_map, every device draws the whole weight: the same
        # values as outside (the field report: orthogonal failed here, eagerly).
        mapped = jax.shard_map(lambda k: [w[None] for w in draw_all(k)], mesh=mesh,
                               in_specs=P(), out_specs=P("x"))
        inside = (mapped if mode == "eager" else jax.jit(mapped))(key)
        for i, (shape, dtype) in enumerate(combos(sub_shapes, sub_dtypes)):
          assert inside[i].shape == (4,) + shape and inside[i].dtype == dtype, (name, mode)
          if 0 in shape:  # jax cannot bring an empty shard_map output to the host (jax 0.10.2)
            continue
          for d in range(4):
            close(np.asarray(inside[i])[d], outside[i], dtype)
    # vmap inside shard_map (a per-device population of models).
    init = jaxinit.orthogonal()
    keys = jax.random.split(key, 8)
    mapped = jax.shard_map(jax.vmap(lambda k: init(k, (6, 6))), mesh=mesh, in_specs=P("x"),
                           out_specs=P("x"))
    inside = np.asarray(mapped(jax.device_put(keys, NamedSharding(mesh, P("x")))))
    for i in range(8):
      close(inside[i], init(keys[i], (6, 6)), jnp.float32)
    print("shard_map ok")
""")


def _run_shard_map_matrix(which: str) -> None:
  here = os.path.dirname(os.path.abspath(__file__))
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=os.environ.get("XLA_FLAGS", "")
             + " --xla_force_host_platform_device_count=4")
  env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(here), here, env.get("PYTHONPATH", "")])
  result = subprocess.run([sys.executable, "-c", SHARD_MAP_SCRIPT, which], env=env,
                          capture_output=True, text=True, timeout=1800)
  assert result.returncode == 0, result.stderr[-4000:]
  assert "shard_map ok" in result.stdout


def test_every_initializer_inside_shard_map_eager_and_jitted():
  """Point 5 of issue 11: the property matrix's shard_map column on 4 CPU devices: every
  initializer, a shape and an empty shape, in a jitted shard_map; eagerly too for the rows
  with their own draw code (the slow test below runs every row in both modes)."""
  _run_shard_map_matrix("rows")


@pytest.mark.slow
def test_shard_map_column_of_the_full_matrix():
  """Every shape and dtype of every row of the matrix inside shard_map (minutes)."""
  _run_shard_map_matrix("full")
