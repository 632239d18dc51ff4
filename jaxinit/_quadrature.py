"""Gaussian expectations by quadrature (host-side nodes, JAX-side sums).

``E[f(z)]``, ``z ~ N(0, 1)``, is split at 0 and each half-line is integrated
with the Gauss rule of the half-normal weight ``exp(-x^2 / 2)`` on [0, inf):

    E[f(z)] = sum_i w_i [f(x_i) + f(-x_i)],   sum_i w_i = 1/2.

An ``n``-node rule is exact for any ``f`` that is a polynomial of degree
``< 2n`` on each half-line, so activations with a kink at 0 (ReLU, leaky ReLU,
ELU, SELU) converge as fast as smooth ones, where Gauss-Hermite converges
only algebraically. The half-normal weight has no closed-form recurrence: its
Jacobi matrix comes from Lanczos (with full re-orthogonalization) on a fine
composite Gauss-Legendre discretization of [0, 40], then Golub-Welsch.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax.numpy as jnp
import numpy as np

DEFAULT_NODES = 64

_PANELS = 200           # composite Gauss-Legendre panels on [0, _UPPER]
_PANEL_ORDER = 24       # nodes per panel
_UPPER = 40.0           # exp(-800) underflows: the tail beyond is exactly 0


@functools.lru_cache(maxsize=1)
def _half_normal_discretization() -> tuple[np.ndarray, np.ndarray]:
  t, v = np.polynomial.legendre.leggauss(_PANEL_ORDER)
  edges = np.linspace(0.0, _UPPER, _PANELS + 1)
  half = np.diff(edges)[:, None] / 2.0
  x = (edges[:-1, None] + half * (t[None, :] + 1.0)).ravel()
  w = (half * v[None, :]).ravel() * np.exp(-x * x / 2.0) / math.sqrt(2.0 * math.pi)
  return x, w


@functools.lru_cache(maxsize=32)
def half_normal_rule(num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
  """Gauss rule for the weight ``exp(-x^2/2) / sqrt(2 pi)`` on [0, inf).

  Returns nodes ``x > 0`` and weights summing to 1/2.
  """
  if num_nodes < 1 or num_nodes > 200:
    raise ValueError(f"num_nodes must be an integer in [1, 200], got {num_nodes}")
  x, w = _half_normal_discretization()
  # Lanczos on diag(x) started from sqrt(w): the tridiagonal it builds is the
  # Jacobi matrix of the (discretized) weight.
  basis = np.zeros((num_nodes, x.size))
  alpha = np.zeros(num_nodes)
  beta = np.zeros(num_nodes)
  q = np.sqrt(w) / math.sqrt(w.sum())
  for k in range(num_nodes):
    basis[k] = q
    r = x * q
    alpha[k] = q @ r
    r -= alpha[k] * q
    if k > 0:
      r -= beta[k - 1] * basis[k - 1]
    r -= basis[: k + 1].T @ (basis[: k + 1] @ r)  # full re-orthogonalization
    if k + 1 < num_nodes:
      beta[k] = np.linalg.norm(r)
      q = r / beta[k]
  jacobi = np.diag(alpha) + np.diag(beta[:-1], 1) + np.diag(beta[:-1], -1)
  nodes, vectors = np.linalg.eigh(jacobi)
  weights = w.sum() * vectors[0] ** 2
  return nodes, weights


@functools.lru_cache(maxsize=32)
def standard_normal_rule(num_nodes: int = DEFAULT_NODES) -> tuple[np.ndarray, np.ndarray]:
  """Nodes ``x`` and weights ``w`` (summing to 1) with ``E[f(z)] ~ sum w f(x)``.

  Returns ``2 * num_nodes`` symmetric nodes, none at 0, so a kink at 0 falls
  between two nodes and each half-line is integrated separately.
  """
  x, w = half_normal_rule(num_nodes)
  nodes = np.concatenate([-x[::-1], x])
  weights = np.concatenate([w[::-1], w])
  return nodes, weights


def gaussian_expectation(f: Callable[[jnp.ndarray], jnp.ndarray],
                         num_nodes: int = DEFAULT_NODES) -> jnp.ndarray:
  """``E[f(z)]`` for ``z ~ N(0, 1)``; ``f`` must be elementwise and traceable."""
  x, w = standard_normal_rule(num_nodes)
  return jnp.sum(jnp.asarray(w) * f(jnp.asarray(x)))


def bivariate_gaussian_expectation(
    f: Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray],
    q11: jnp.ndarray, q22: jnp.ndarray, q12: jnp.ndarray,
    num_nodes: int = DEFAULT_NODES) -> jnp.ndarray:
  """``E[f(u1, u2)]`` for ``(u1, u2) ~ N(0, [[q11, q12], [q12, q22]])``.

  Tensor-product rule over ``u1 = sqrt(q11) z1`` and
  ``u2 = sqrt(q22) (c z1 + sqrt(1 - c^2) z2)`` with ``c = q12 / sqrt(q11 q22)``.
  Traceable in the covariance entries, so it can be vmapped over them.
  """
  x, w = standard_normal_rule(num_nodes)
  x = jnp.asarray(x)
  w = jnp.asarray(w)
  z1 = x[:, None]
  z2 = x[None, :]
  c = q12 / jnp.sqrt(q11 * q22)
  s = jnp.sqrt(jnp.clip(1.0 - c * c, 0.0, None))
  u1 = jnp.sqrt(q11) * z1
  u2 = jnp.sqrt(q22) * (c * z1 + s * z2)
  return jnp.sum(w[:, None] * w[None, :] * f(u1, u2))
