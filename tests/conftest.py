import hashlib
import os
import tempfile

import hypothesis

# XLA compiles each new shape on first use: wall-clock deadlines would be noise.
hypothesis.settings.register_profile("jaxinit", deadline=None, max_examples=40,
                                     derandomize=True, print_blob=True)
hypothesis.settings.load_profile("jaxinit")

# One persistent compilation cache for the test run's processes (xdist workers and the
# subprocesses of the multi-process, resume and sharding tests compile many of the same
# programs): JAX keys each entry by the program, its compile options, devices and jax
# version, so a hit is the program it would have compiled.
_CACHE = os.path.join(tempfile.gettempdir(), "jaxinit-tests-xla-" + hashlib.sha1(
    os.path.dirname(os.path.abspath(__file__)).encode()).hexdigest()[:12])
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _CACHE)
# Programs compiling in over 0.05 s are kept (at backend level 1 many take 0.05-0.3 s; a full
# cold run: 18m22s of CPU at 0.05 vs 19m20s at 0.3, ~2,000 entries, 59 MB).
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.05")

# The tests compile far more than they run: XLA:CPU's backend level 1 (the default is 3) takes
# about a third less CPU to compile and gives the same bits (IEEE semantics, no fast-math at
# either level: the property matrix's draws and three studies' training CSVs compared byte for
# byte with the default).
# Not level 0: it miscompiles batched while loops (jaxinit/theory/_engine.py). Subprocesses
# inherit it through the environment; set XLA_FLAGS yourself to test at another level.
if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                             + " --xla_backend_optimization_level=1").strip()

import jax  # noqa: E402  (after the environment: also when a plugin imported jax first)

jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs",
                  float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))
