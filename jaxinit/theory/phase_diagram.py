"""Phase diagrams: mean-field quantities on a grid of weight and bias variances."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from jaxinit.theory import _engine as eng
from jaxinit.theory._engine import DEFAULT_NODES, DEFAULT_NODES_2D
from jaxinit.theory.fixed_points import _solver, transition
from jaxinit.theory.kernels import ActivationLike


class PhaseDiagram(NamedTuple):
  """Mean-field quantities on a grid; 2-D arrays are indexed ``[bias, weight]``.

  ``xi_c`` has no finite value where ``q*`` is unbounded (``unbounded``; ``nan``)
  or on the critical line (``inf``); :func:`jaxinit.plots.plot_phase_diagram`
  draws those regions in their own colours and says so in its legend.
  """
  weight_variances: np.ndarray
  bias_variances: np.ndarray
  q_star: np.ndarray
  chi1: np.ndarray
  xi_c: np.ndarray
  critical_weight_variances: np.ndarray
  """``sw_c`` per bias variance (``nan``: no continuous transition)."""
  unbounded: np.ndarray
  """Where ``q* = inf`` (the length map has no fixed point reachable from ``q0 = 1``)."""
  transition_weight_variances: np.ndarray
  """Per bias variance, where ``chi1`` first exceeds 1: the critical line, or where
  ``q*`` jumps to infinity when there is no critical point (GELU, SiLU)."""


def phase_diagram(activation: ActivationLike, weight_variances: Any, bias_variances: Any, *,
                  num_nodes: int = DEFAULT_NODES, num_nodes_2d: int = DEFAULT_NODES_2D,
                  **params: Any) -> PhaseDiagram:
  r"""``q*``, ``chi1`` and ``xi_c`` on the grid ``bias_variances x weight_variances``, and ``sw_c``.

  Vectorized: the 1-D quantities on the whole grid, ``c*`` only on its
  chaotic part, and one :func:`~jaxinit.theory.transition` call.

  Args:
    activation: name or traceable elementwise callable.
    weight_variances: 1-D array of ``sw``.
    bias_variances: 1-D array of ``sb``.
    num_nodes: 1-D nodes per half-line.
    num_nodes_2d: 2-D radial and angular (per sector) nodes.
    **params: bound to the activation.

  Returns:
    A :class:`PhaseDiagram` of numpy arrays.

  Examples:
    >>> from jaxinit import theory
    >>> d = theory.phase_diagram("relu", [1.0, 1.5, 2.5], [0.0, 0.1, 0.2])
    >>> d.xi_c.shape, d.critical_weight_variances.round(4).tolist()
    ((3, 3), [2.0, 2.0, 2.0])
    >>> d.unbounded[:, 2].tolist()     # sw = 2.5 > 2: q grows without limit
    [True, True, True]
  """
  sw = eng.nonnegative("weight_variances", weight_variances)
  sb = eng.nonnegative("bias_variances", bias_variances)
  if np.ndim(sw) != 1 or np.ndim(sb) != 1:
    raise ValueError("weight_variances and bias_variances must be 1-D")
  s = _solver(activation, params, num_nodes, num_nodes_2d)
  grid_sw, grid_sb = (g.ravel() for g in np.meshgrid(sw, sb))
  # The 1-D quantities everywhere, then c* where chaotic, ordered by chi1 so
  # that the slow lanes near the line share batches.
  q, chi1_, _, xi_grad = (np.array(v) for v in s.vlengths.numpy(grid_sw, grid_sb, eng.one()))
  # Ordered or critical: c* = 1 and chi_c = chi1, so xi_c = xi_grad; unbounded: undefined.
  xi_c = np.where(np.isinf(q), np.nan, np.where(chi1_ > 1 + 4 * np.finfo(float).eps, np.nan,
                                                xi_grad))
  chaotic = np.flatnonzero(np.isnan(xi_c) & np.isfinite(q))
  chaotic = chaotic[np.argsort(chi1_[chaotic])]
  if chaotic.size:
    xi_c[chaotic] = np.asarray(s.vsummary.numpy(grid_sw[chaotic], grid_sb[chaotic],
                                                eng.one())[5])
  t = transition(activation, sb, num_nodes=num_nodes, **params)
  shape = (sb.size, sw.size)
  return PhaseDiagram(sw, sb, q.reshape(shape), chi1_.reshape(shape), xi_c.reshape(shape),
                      np.asarray(t.critical_weight_variance, np.float64), np.isinf(q).reshape(shape),
                      np.asarray(t.weight_variance, np.float64))
