"""out_sharding on 8 fake CPU devices (in a subprocess: the device count is fixed at jax import)."""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
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
    meshes = [(E, (2, 4), P("a", "b")), (E, (8, 1), P("a", None)),
              (A, (1, 8), P(None, "b")), (A, (4, 2), P("b", "a"))]
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
        if i in (0, 3):  # eagerly, under the mesh, out_sharding alone places it
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


def test_out_sharding_values_do_not_depend_on_mesh():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
  result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-4000:]
  assert "sharding ok" in result.stdout
