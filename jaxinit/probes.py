"""Probes: what a network does to signals, at initialization and in training.

Every probe is a pure, jittable function of arrays (or of a network, its params
and inputs), so it runs inside a jitted training step and vmaps over a
population of models. Per-layer results are arrays with a leading layer axis.

* forward: :func:`layer_moments`, :func:`layer_correlation`,
  :func:`dead_fraction`, :func:`saturated_fraction` and
  :func:`signal_propagation` take the stacked per-layer signal that
  ``net.apply(params, x, capture=True)`` returns; :func:`token_correlation`
  (rank collapse) the per-layer token representations of a transformer;
* backward: :func:`gradient_norms`;
* Jacobian: :func:`jacobian_singular_values` (exact) and
  :func:`jacobian_spectrum_estimate` (matrix-free, for wide networks, on
  :func:`lanczos_ritz_values`);
* symmetry: :func:`distinct_units` and :func:`distinct_units_per_layer`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxinit.models.base import Network, Params


def _centered_sigmoid(h: jax.Array) -> jax.Array:
  return 2 * jax.nn.sigmoid(h) - 1


# "Saturated": |tanh(h)| > 0.99, and sigmoid(h) outside [0.01, 0.99], which is
# |2 sigmoid(h) - 1| > 0.98: one symmetric test for both.
_SATURATION = {"tanh": (jnp.tanh, 0.99), "sigmoid": (_centered_sigmoid, 0.98)}


def _inner_axes(h: jax.Array) -> tuple[int, ...]:
  """All axes but the leading layer axis and the trailing unit axis."""
  return tuple(range(1, h.ndim - 1))


# ---------------------------------------------------------------------------
# Forward


def layer_moments(h: jax.Array) -> dict[str, jax.Array]:
  """Per-layer mean, variance and second moment ``q^l`` of a signal.

  Args:
    h: per-layer signal ``(layers, ..., units)``, e.g.
      ``net.apply(params, x, capture=True)[1]["preactivations"]``.

  Returns:
    ``{"mean", "variance", "second_moment"}``, each ``(layers,)``: moments over
    units and inputs; ``second_moment`` is the mean-field ``q^l = E[h_i^2]``.

  Examples:
    >>> import jax.numpy as jnp
    >>> h = jnp.stack([jnp.array([[1., -1.], [1., -1.]]), jnp.full((2, 2), 2.)])
    >>> {k: v.tolist() for k, v in layer_moments(h).items()}
    {'mean': [0.0, 2.0], 'variance': [1.0, 0.0], 'second_moment': [1.0, 4.0]}
  """
  axes = tuple(range(1, h.ndim))
  mean = jnp.mean(h, axis=axes)
  centered = h - mean.reshape((-1,) + (1,) * (h.ndim - 1))
  return {"mean": mean, "variance": jnp.mean(centered**2, axis=axes),
          "second_moment": jnp.mean(h**2, axis=axes)}


def layer_correlation(h_a: jax.Array, h_b: jax.Array,
                      axis: int | tuple[int, ...] = -1) -> jax.Array:
  """Per-layer correlation ``c^l = q_ab / sqrt(q_aa q_bb)`` of two inputs' signals.

  ``q_ab = mean_i h_a,i h_b,i`` over units (the mean-field overlap, not the
  centered Pearson correlation).

  Args:
    h_a: signal of the first inputs ``(layers, ..., units)``.
    h_b: signal of the second inputs, same shape.
    axis: the unit axes to average over (``(-2, -1)`` for conv signals, to
      include positions).

  Returns:
    ``c`` of shape ``h_a.shape`` without ``axis``.

  Examples:
    >>> import jax.numpy as jnp
    >>> h = jnp.array([[[1., 0.]], [[1., 1.]]])  # 2 layers, 1 input, 2 units
    >>> layer_correlation(h, jnp.array([[[0., 1.]], [[2., 2.]]]))[:, 0].tolist()
    [0.0, 1.0]
  """
  q_ab = jnp.mean(h_a * h_b, axis=axis)
  q_aa = jnp.mean(h_a**2, axis=axis)
  q_bb = jnp.mean(h_b**2, axis=axis)
  return q_ab / jnp.sqrt(q_aa * q_bb)


def dead_fraction(h: jax.Array) -> jax.Array:
  """Per-layer fraction of units whose pre-activation is never positive.

  Such a unit is dead for ReLU-family activations: its output (and gradient,
  for ReLU) is zero on every input of the batch (and position, for convs).

  Args:
    h: per-layer pre-activations ``(layers, ..., units)``.

  Returns:
    ``(layers,)`` fractions in [0, 1].

  Examples:
    >>> import jax.numpy as jnp
    >>> h = jnp.array([[[-1., 2.], [-3., -1.]]])  # 1 layer, 2 inputs, 2 units
    >>> dead_fraction(h).tolist()
    [0.5]
  """
  dead = jnp.all(h <= 0, axis=_inner_axes(h))
  return jnp.mean(dead, axis=-1)


def saturated_fraction(h: jax.Array, activation: str = "tanh") -> jax.Array:
  """Per-layer fraction of unit activations in the flat tails of tanh or sigmoid.

  Saturated means ``|tanh(h)| > 0.99`` or ``sigmoid(h)`` outside
  ``[0.01, 0.99]``; counted per (unit, input) entry.

  Args:
    h: per-layer pre-activations ``(layers, ..., units)``.
    activation: ``"tanh"`` or ``"sigmoid"``.

  Returns:
    ``(layers,)`` fractions in [0, 1].

  Raises:
    ValueError: for another activation.

  Examples:
    >>> import jax.numpy as jnp
    >>> saturated_fraction(jnp.array([[0.1, 3.0, -4.0, 1.0]])).tolist()
    [0.5]
  """
  if activation not in _SATURATION:
    raise ValueError(f"activation must be one of {sorted(_SATURATION)}, got {activation!r}")
  fn, threshold = _SATURATION[activation]
  return jnp.mean(jnp.abs(fn(h)) > threshold, axis=tuple(range(1, h.ndim)))


def signal_propagation(stream: jax.Array,
                       branch: jax.Array | None = None) -> dict[str, jax.Array]:
  """Signal Propagation Plot statistics per block (Brock et al., 2021).

  Channel statistics are over inputs (and positions); the averages are over
  channels (the last axis).

  Args:
    stream: the residual stream after each block ``(blocks, ..., channels)``.
    branch: optionally each block's residual-branch output, same shape.

  Returns:
    ``{"avg_squared_mean", "avg_variance"}`` of the stream and, with
    ``branch``, ``"residual_variance"`` (the branch's average channel
    variance); each ``(blocks,)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> x = jnp.array([[[1., 0.], [3., 0.]]])  # 1 block, 2 inputs, 2 channels
    >>> {k: v.tolist() for k, v in signal_propagation(x).items()}
    {'avg_squared_mean': [2.0], 'avg_variance': [0.5]}
  """
  axes = _inner_axes(stream)
  stats = {"avg_squared_mean": jnp.mean(jnp.mean(stream, axis=axes)**2, axis=-1),
           "avg_variance": jnp.mean(jnp.var(stream, axis=axes), axis=-1)}
  if branch is not None:
    stats["residual_variance"] = jnp.mean(jnp.var(branch, axis=_inner_axes(branch)),
                                          axis=-1)
  return stats


def token_correlation(h: jax.Array) -> jax.Array:
  """Per-layer mean correlation between the tokens of a sequence: the rank-collapse probe.

  For one sequence's representations ``x_1 .. x_T`` (rows of a ``(T, d)``
  matrix) the correlation of tokens ``i != j`` is the cosine
  ``<x_i, x_j> / (|x_i| |x_j|)``; its mean over the ``T (T - 1)`` ordered
  pairs is ``(|sum_i u_i|^2 - T) / (T (T - 1))`` with ``u_i = x_i / |x_i|``
  (linear in ``T``). It is 1 when every token has the same direction: rank
  collapse, where attention maps all tokens to one and gradients through
  the queries and keys vanish (Noci et al. 2022, "Signal Propagation in
  Transformers: Theoretical Perspectives and the Role of Rank Collapse";
  Dong et al. 2021, "Attention is not all you need"). A zero token counts
  as uncorrelated with every other.

  Args:
    h: per-layer token representations ``(layers, ..., tokens, units)``,
      e.g. ``model(tokens, capture=True)[1]["preactivations"]`` of
      :class:`jaxinit.models.Transformer`; the middle axes are sequences.

  Returns:
    ``(layers,)``: the mean over sequences of the mean pairwise correlation.

  Raises:
    ValueError: fewer than 3 axes or fewer than 2 tokens.

  Examples:
    >>> import jax.numpy as jnp
    >>> same = jnp.ones((1, 3, 3))              # 1 layer, 3 equal tokens: collapsed
    >>> orthogonal = 2 * jnp.eye(3)[None]       # 3 orthogonal tokens
    >>> token_correlation(jnp.concatenate([same, orthogonal])).round(6).tolist()
    [1.0, 0.0]
  """
  if h.ndim < 3 or h.shape[-2] < 2:
    raise ValueError(f"h must be (layers, ..., tokens, units) with at least 2 tokens, got "
                     f"shape {h.shape}")
  tokens = h.shape[-2]
  norm = jnp.linalg.norm(h, axis=-1, keepdims=True)
  u = h / jnp.where(norm > 0, norm, 1)
  pairs = (jnp.sum(jnp.sum(u, axis=-2) ** 2, axis=-1) - jnp.sum(u * u, axis=(-2, -1)))
  return jnp.mean(pairs.reshape(h.shape[0], -1), axis=-1) / (tokens * (tokens - 1))


# ---------------------------------------------------------------------------
# Backward


def gradient_norms(net: Network, params: Params, x: jax.Array,
                   loss_fn: Callable[[jax.Array], jax.Array]) -> dict[str, jax.Array]:
  """Per-layer gradient norms with respect to weights and to the probed signal.

  The signal's gradient is taken through zero perturbations added to it (see
  :class:`jaxinit.models.Network`), so it is exact and costs one backward pass.

  Args:
    net: a network (:class:`jaxinit.models.MLP`, an NNX adapter, ...).
    params: its params.
    x: a batch of inputs.
    loss_fn: maps the network's output to a scalar (close over targets).

  Returns:
    ``{"loss": (), "weights": (num_layers,), "activations": (depth,)}``:
    Frobenius norms of each kernel's gradient (biases left out) in the order
    of ``net.layers``, and of the gradient with respect to each layer's
    signal (over the batch and units).

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jaxinit.models import MLP, functional
    >>> net = functional(MLP.abstract(in_features=3, out_features=2, width=8, depth=4))[0]
    >>> params = net.init(jax.random.key(0))
    >>> probe = jax.jit(gradient_norms, static_argnums=(0, 3))
    >>> g = probe(net, params, jnp.ones((5, 3)), lambda y: jnp.mean(y**2))
    >>> g["weights"].shape, g["activations"].shape
    ((5,), (4,))
  """
  apply_captured = lambda p, x: net.apply(p, x, capture=True)  # noqa: E731
  signal = jax.eval_shape(apply_captured, params, x)[1]["preactivations"]

  def loss(p, eps):
    return loss_fn(net.apply(p, x, perturbations=eps))

  eps = jnp.zeros(signal.shape, signal.dtype)
  value, (g_params, g_signal) = jax.value_and_grad(loss, argnums=(0, 1))(params, eps)
  weights = jnp.concatenate([_frobenius(kernels) for kernels, _ in net.layers(g_params)])
  return {"loss": value, "weights": weights, "activations": _frobenius(g_signal)}


def _frobenius(stack: jax.Array) -> jax.Array:
  """Frobenius norm of each slice along the leading axis.

  Scaled by each slice's largest magnitude first, so vanishing gradients
  (entries below ~1e-19 in float32, whose squares underflow) keep their norm.

  Examples:
    >>> import jax.numpy as jnp
    >>> round(float(_frobenius(jnp.full((1, 4), 1e-25))[0]) / 2e-25, 6)
    1.0
  """
  axes = tuple(range(1, stack.ndim))
  scale = jnp.max(jnp.abs(stack), axis=axes, keepdims=True)
  safe = jnp.where(scale > 0, scale, 1.0)
  norm = jnp.sqrt(jnp.sum(jnp.square(stack / safe), axis=axes))
  return norm * jnp.reshape(safe, norm.shape)


# ---------------------------------------------------------------------------
# Jacobian


def jacobian_singular_values(fn: Callable[[jax.Array], jax.Array],
                             x: jax.Array) -> jax.Array:
  """All singular values of the input-output Jacobian of ``fn`` at ``x``.

  Builds the dense Jacobian (forward mode when the input is the smaller side)
  and takes its SVD: for small widths. See :func:`jacobian_spectrum_estimate`
  for wide networks.

  Args:
    fn: maps one input (any shape) to one output (any shape), e.g.
      ``lambda x: net.apply(params, x)``.
    x: the input.

  Returns:
    ``min(x.size, fn(x).size)`` singular values, descending.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> fn = lambda x: jnp.array([3 * x[0], -2 * x[1]])
    >>> jax.jit(lambda x: jacobian_singular_values(fn, x))(jnp.ones(2)).tolist()
    [3.0, 2.0]
  """
  out = jax.eval_shape(fn, x)
  jac_fn = jax.jacfwd if x.size <= out.size else jax.jacrev
  jac = jac_fn(fn)(x).reshape(out.size, x.size)
  return jnp.linalg.svd(jac, compute_uv=False)


def jacobian_spectrum_estimate(fn: Callable[[jax.Array], jax.Array], x: jax.Array,
                               key: jax.Array, *, num_probes: int = 16,
                               num_iters: int = 32) -> dict[str, jax.Array]:
  """Matrix-free estimates of the Jacobian's squared-singular-value spectrum.

  Only Jacobian-vector and vector-Jacobian products are used (one
  linearization of ``fn``), never the dense Jacobian.

  * ``mean_squared``: Hutchinson's estimate of the mean squared singular value
    ``tr(J^T J) / n`` (``n = min(n_in, n_out)`` singular values) from
    ``num_probes`` Rademacher vectors, with its standard error.
  * ``max`` and ``min`` singular values: extreme Ritz values of ``num_iters``
    Lanczos steps (full reorthogonalization) on ``J^T J`` or ``J J^T``,
    whichever is ``n x n``. Ritz values lie inside the spectrum, so both are
    conservative; the largest converges first, the smallest slowly unless
    ``num_iters`` approaches ``n`` (where they are exact).

  Args:
    fn: maps one input to one output, e.g. ``lambda x: net.apply(params, x)``.
    x: the input.
    key: PRNG key for the probe and starting vectors.
    num_probes: Hutchinson probe count.
    num_iters: Lanczos steps (at most ``n`` are taken).

  Returns:
    ``{"mean_squared", "mean_squared_stderr", "max", "min"}`` scalars.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> fn = lambda x: jnp.array([3., 2.]) * x
    >>> est = jax.jit(lambda x, key: jacobian_spectrum_estimate(fn, x, key))(
    ...     jnp.ones(2), jax.random.key(0))
    >>> round(float(est["mean_squared"]), 4), round(float(est["max"]), 4)
    (6.5, 3.0)
  """
  if num_probes < 2:
    raise ValueError(f"num_probes must be >= 2 (for a standard error), got {num_probes}")
  out, jvp = jax.linearize(fn, x)
  vjp = jax.linear_transpose(jvp, x)
  n_in, n_out = x.size, out.size
  k_probe, k_lanczos = jax.random.split(key)

  # Hutchinson: E|J v|^2 = tr(J^T J) for v with E[v v^T] = I.
  probes = jax.random.rademacher(k_probe, (num_probes,) + x.shape, x.dtype)
  sq_norms = jax.vmap(lambda v: jnp.sum(jnp.square(jvp(v))))(probes)
  n = min(n_in, n_out)
  mean_squared = jnp.mean(sq_norms) / n
  stderr = jnp.std(sq_norms, ddof=1) / jnp.sqrt(num_probes) / n

  if n_in <= n_out:  # J^T J is n x n
    gram = lambda v: vjp(jvp(v.reshape(x.shape)))[0].ravel()  # noqa: E731
  else:  # J J^T is n x n
    gram = lambda u: jvp(vjp(u.reshape(out.shape))[0]).ravel()  # noqa: E731
  ritz = lanczos_ritz_values(gram, n, k_lanczos, min(num_iters, n), x.dtype)
  return {"mean_squared": mean_squared, "mean_squared_stderr": stderr,
          "max": jnp.sqrt(jnp.max(ritz)), "min": jnp.sqrt(jnp.maximum(jnp.min(ritz), 0))}


def lanczos_ritz_values(matvec: Callable[[jax.Array], jax.Array], dim: int,
                        key: jax.Array, num_iters: int,
                        dtype: jax.typing.DTypeLike = jnp.float32) -> jax.Array:
  """Ritz values of a symmetric operator from Lanczos with full reorthogonalization.

  Jittable: a fixed number of steps in :func:`jax.lax.fori_loop` with a
  ``(num_iters, dim)`` basis. When the Krylov space closes early (an
  invariant subspace), the next vector is a fresh random one orthogonal to the
  basis and the tridiagonal matrix decouples there, so every Ritz value is
  still a Rayleigh quotient of the operator.

  Args:
    matvec: ``v -> A v`` for a symmetric ``A`` on vectors of length ``dim``.
    dim: the vector length.
    key: PRNG key for the starting (and restart) vectors.
    num_iters: number of steps, at most ``dim``.
    dtype: the vectors' dtype.

  Returns:
    ``(num_iters,)`` Ritz values, ascending.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> a = jnp.diag(jnp.array([1., 2., 5.]))
    >>> ritz = jax.jit(lambda key: lanczos_ritz_values(lambda v: a @ v, 3, key, 3))
    >>> ritz(jax.random.key(0)).round(4).tolist()
    [1.0, 2.0, 5.0]
  """
  if not 1 <= num_iters <= dim:
    raise ValueError(f"num_iters must be in [1, {dim}], got {num_iters}")
  starts = jax.random.normal(key, (num_iters, dim), dtype)
  basis = jnp.zeros((num_iters, dim), dtype).at[0].set(starts[0] / jnp.linalg.norm(starts[0]))

  def orthogonalize(w, basis):
    # Twice is enough (Kahan-Parlett): one pass loses orthogonality in float32.
    for _ in range(2):
      w = w - basis.T @ (basis @ w)
    return w

  def step(i, carry):
    basis, alphas, betas = carry
    v = basis[i]
    w = matvec(v)
    alpha = jnp.vdot(v, w)
    w = orthogonalize(w, basis)
    beta = jnp.linalg.norm(w)
    # Breakdown: the Krylov space is invariant. Restart from a random vector.
    scale = jnp.maximum(jnp.abs(alpha), jnp.max(jnp.abs(alphas)))
    broke = beta <= 1e3 * jnp.finfo(dtype).eps * jnp.maximum(scale, jnp.finfo(dtype).tiny)
    restart = orthogonalize(starts[(i + 1) % num_iters], basis)
    w = jnp.where(broke, restart, w)
    beta = jnp.where(broke, 0.0, beta)
    nxt = w / jnp.linalg.norm(w)
    basis = jnp.where(i + 1 < num_iters, basis.at[(i + 1) % num_iters].set(nxt), basis)
    return basis, alphas.at[i].set(alpha), betas.at[i].set(beta)

  alphas = jnp.zeros(num_iters, dtype)
  betas = jnp.zeros(num_iters, dtype)
  _, alphas, betas = jax.lax.fori_loop(0, num_iters, step, (basis, alphas, betas))
  tridiagonal = (jnp.diag(alphas) + jnp.diag(betas[:-1], 1) + jnp.diag(betas[:-1], -1))
  return jnp.linalg.eigvalsh(tridiagonal)


# ---------------------------------------------------------------------------
# Symmetry


def distinct_units(kernel: jax.Array, bias: jax.Array | None = None, *,
                   rtol: float = 1e-4, atol: float = 0.0) -> jax.Array:
  """Number of distinct units of one layer, by their incoming weights and bias.

  Units ``i, j`` are equal when ``max |w_i - w_j| <= atol + rtol * max(|w_i|_inf,
  |w_j|_inf)`` (``w`` the incoming weights, with the bias appended). A unit
  counts when no earlier unit equals it: a fixed-size, jittable rule that is
  the number of classes when equality is transitive, as it is for exact
  copies (zero or constant init, and what training keeps of them).

  Args:
    kernel: ``(..., units)`` (dense ``(in, units)``, conv ``(k, in, units)``).
    bias: optional ``(units,)``.
    rtol: relative tolerance.
    atol: absolute tolerance.

  Returns:
    int32 scalar in ``[1, units]``.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> count = jax.jit(distinct_units)
    >>> int(count(jnp.zeros((3, 5)))), int(count(jnp.array([[1., 1., 2.], [0., 0., 0.]])))
    (1, 2)
  """
  units = kernel.shape[-1]
  vectors = kernel.reshape(-1, units).T
  if bias is not None:
    vectors = jnp.concatenate([vectors, bias[:, None]], axis=1)
  scale = jnp.max(jnp.abs(vectors), axis=1)

  def equal_to(row):
    vector, row_scale = row
    distance = jnp.max(jnp.abs(vectors - vector), axis=1)
    return distance <= atol + rtol * jnp.maximum(scale, row_scale)

  # One row at a time: O(units * fan_in) memory instead of units^2 * fan_in.
  equal = jax.lax.map(equal_to, (vectors, scale), batch_size=min(units, 32))
  earlier = jnp.tril(equal, k=-1)
  return jnp.sum(~jnp.any(earlier, axis=1), dtype=jnp.int32)


def distinct_units_per_layer(net: Network, params: Params, *, rtol: float = 1e-4,
                             atol: float = 0.0) -> jax.Array:
  """:func:`distinct_units` of every hidden layer of a network (all but the readout).

  Args:
    net: a network with ``layers`` (see :class:`jaxinit.models.Network`).
    params: its params.
    rtol: relative tolerance.
    atol: absolute tolerance.

  Returns:
    int32 ``(num_layers - 1,)``; ``depth`` entries for an MLP.

  Examples:
    >>> import jax
    >>> from jaxinit.models import MLP, functional
    >>> net = functional(MLP.abstract(in_features=3, out_features=2, width=8, depth=4))[0]
    >>> count = jax.jit(distinct_units_per_layer, static_argnums=0)
    >>> count(net, net.init(jax.random.key(0))).tolist()
    [8, 8, 8, 8]
  """
  count = jax.vmap(lambda k, b: distinct_units(k, b, rtol=rtol, atol=atol))
  *hidden, (readout_kernels, readout_biases) = net.layers(params)
  # The readout is the last layer of the last group; the rest of it is hidden.
  hidden.append((readout_kernels[:-1],
                 None if readout_biases is None else readout_biases[:-1]))
  return jnp.concatenate([count(kernels, biases) for kernels, biases in hidden])


# ---------------------------------------------------------------------------
# Any model, through capture (jaxinit.capture)


def captured_layers(captured: Any, *where: Any) -> jax.Array:
  """Captured layer outputs stacked into the per-layer signal the probes above take.

  Every probe of this module then works on any Flax NNX / linen or Equinox
  model: ``layer_moments(captured_layers(captured, nnx.Linear))``.

  Args:
    captured: a :class:`jaxinit.capture.Captured` (from
      :func:`jaxinit.capture.capture` or ``Forward.capture``).
    *where: optional selection (path globs, module classes; see
      :meth:`~jaxinit.capture.Captured.select`); default every entry.

  Returns:
    ``(layers, ..., units)``: the selected entries in forward order, stacked
    layers of a scanned stack expanded (:meth:`~jaxinit.capture.Captured.layers`).

  Raises:
    ValueError: the selected layers' outputs differ in shape (select layers
      of one width), or the selection is empty.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from flax import nnx
    >>> from jaxinit.capture import capture
    >>> model = nnx.Sequential(nnx.Linear(3, 8, rngs=nnx.Rngs(0)), jax.nn.relu,
    ...                        nnx.Linear(8, 8, rngs=nnx.Rngs(1)))
    >>> _, captured = capture(model, jnp.ones((5, 3)))
    >>> layer_moments(captured_layers(captured, nnx.Linear))["variance"].shape
    (2,)
  """
  selected = captured.select(*where) if where else captured
  stacks = [selected.per_layer(k) for k in selected]
  if not stacks:
    raise ValueError("captured_layers: nothing selected")
  shapes = {k: tuple(s.shape[1:]) for k, s in zip(selected, stacks)}
  if len(set(shapes.values())) > 1:
    raise ValueError(f"captured_layers: the selected outputs differ in shape ({shapes}); "
                     f"select layers of one shape (where=...)")
  return jnp.concatenate(stacks)


def output_gradient_norms(fwd: Any, params: Any, x: jax.Array,
                          loss_fn: Callable[[Any], jax.Array], *where: Any
                          ) -> dict[str, jax.Array]:
  """Per-layer Frobenius norm of the loss gradient with respect to each layer's output.

  The capture counterpart of :func:`gradient_norms`' ``"activations"``: zero
  perturbations at the captured outputs are differentiated
  (:func:`jaxinit.capture.output_gradients`), for any model.

  Args:
    fwd: a :class:`jaxinit.capture.Forward` (from :func:`jaxinit.capture.forward`).
    params: its params.
    x: a batch.
    loss_fn: maps the model's output to a scalar.
    *where: which outputs (see :func:`captured_layers`).

  Returns:
    ``{"loss": (), "activations": (layers,)}``.
  """
  from jaxinit.capture import output_gradients  # pylint: disable=import-outside-toplevel
  value, grads, _ = output_gradients(fwd, params, loss_fn, x, where=where)
  return {"loss": value, "activations": _frobenius(captured_layers(grads))}
