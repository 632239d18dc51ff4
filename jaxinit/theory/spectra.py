"""Spectra: moments of the input-output Jacobian's squared singular values (free probability)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np

from jaxinit import checks
from jaxinit.theory import _engine as eng
from jaxinit.theory import kernels as kern
from jaxinit.theory._engine import DEFAULT_NODES
from jaxinit.theory.fixed_points import solver
from jaxinit.theory.kernels import ActivationLike

Array = jax.Array


class JacobianMoments(NamedTuple):
  """Moments of the eigenvalues ``lambda`` of ``J J^T`` (squared singular values of ``J``)."""
  mean: Array
  """``m1 = E[lambda]``."""
  second_moment: Array
  """``m2 = E[lambda^2]``."""
  variance: Array
  """``m2 - m1^2``."""


_S1 = {"gaussian": -1.0, "orthogonal": 0.0}


def jacobian_spectrum_moments(activation: ActivationLike, weight_variance: Any,
                              bias_variance: Any, depth: int, *, weights: str = "gaussian",
                              q0: Any = None, num_nodes: int = DEFAULT_NODES,
                              **params: Any) -> JacobianMoments:
  r"""Mean and variance of the squared singular values of the input-output Jacobian.

  For ``J = D^L W^L ... D^1 W^1`` (``D^l = diag phi'(h^l)``), free
  probability (Pennington, Schoenholz & Ganguli 2017, "Resurrecting the
  sigmoid"; 2018, "The emergence of spectral universality") gives the
  S-transform of ``J J^T`` as the product of those of the ``W^l W^l^T`` and
  ``(D^l)^2``. Writing each as ``S(z) = (1 + s1 z + O(z^2)) / m1``, which
  inverts the moment series with ``s1 = -(m2 - m1^2) / m1^2``, the product
  gives

      mean      m1 = prod_l sw mu1_l                      (= chi^L at q*)
      variance  m2 - m1^2 = m1^2 sum_l (mu2_l / mu1_l^2 - 1 - s_W)

  with ``mu_k,l = E[phi'(h^l)^(2k)]``, ``h^l ~ N(0, q^l)``, and ``s_W`` the
  ``s1`` of ``W W^T / sw``: ``-1`` for Gaussian weights (Marchenko-Pastur,
  ``m2 = 2 m1^2``) and ``0`` for (scaled) orthogonal ones (all eigenvalues
  ``sw``). At the fixed point this is ``m1 = chi^L``,
  ``var = chi^(2L) L (mu2 / mu1^2 - 1 - s_W)``: Gaussian weights add ``L``
  to the relative variance; orthogonal weights with ``mu2 = mu1^2`` (linear
  networks) give an exactly isometric ``J``. Finite width adds ``O(L / N)``
  relative corrections.

  Args:
    activation: name or traceable elementwise callable.
    weight_variance: ``sw`` (scalar).
    bias_variance: ``sb`` (scalar).
    depth: number of layers ``L``.
    weights: ``"gaussian"`` (``N(0, sw / N)`` entries) or ``"orthogonal"``
      (``sqrt(sw)`` times a Haar orthogonal matrix).
    q0: input length ``x . x / n``; ``None`` puts every layer at ``q*``.
      Otherwise ``q^l`` follows the length map from ``q^1 = sw q0 + sb``.
    num_nodes: quadrature nodes per half-line.
    **params: bound to the activation.

  Returns:
    :class:`JacobianMoments` ``(mean, second_moment, variance)``.

  Examples:
    >>> from jaxinit import theory
    >>> m = theory.jacobian_spectrum_moments("relu", 2.0, 0.0, 4)   # mu2 / mu1^2 = 2
    >>> round(float(m.mean), 4), round(float(m.variance), 4)         # 1, 4 (2 - 1 + 1)
    (1.0, 8.0)
    >>> m = theory.jacobian_spectrum_moments("relu", 2.0, 0.0, 4, weights="orthogonal")
    >>> round(float(m.variance), 4)                                  # 4 (2 - 1 - 0)
    4.0
  """
  checks.choice("weights", weights, sorted(_S1))
  sw, sb = kern.variances(weight_variance, bias_variance)
  depth = checks.positive_int("depth", depth)
  if np.ndim(sw) or np.ndim(sb):
    raise ValueError("jacobian_spectrum_moments takes scalar variances; use jax.vmap for many")
  k = kern.kernels(activation, params, num_nodes)
  if q0 is None:
    qs = [solver(k).vlengths.numpy(sw, sb, eng.one())[0]] * depth
  else:
    qs = [sw * eng.nonnegative("q0", q0) + sb]
    for _ in range(depth - 1):
      qs.append(k.vstats(sw, sb, qs[-1])[0])
  xp, (sw, *qs) = eng.host(sw, *qs)
  _, _, mu1, mu2 = (xp.asarray(v) for v in k.vstats(sw, 0 * sw, xp.stack(qs)))
  mean = xp.prod(sw * mu1)
  relative_variance = xp.sum(mu2 / mu1**2 - 1 - _S1[weights])
  return JacobianMoments(*(eng.output(v) for v in (
      mean, mean**2 * (1 + relative_variance), mean**2 * relative_variance)))
