r"""Signal propagation in residual networks: per-block variances and Signal Propagation Plots.

Brock, De & Smith 2021 ("Characterizing signal propagation to close the
performance gap in unnormalized ResNets") plot, block by block, the average
squared channel mean and the average channel variance of the residual stream
(and of each branch's output): :func:`jaxinit.probes.signal_propagation`
measures them. In the infinite-width limit they follow from the kernel of the
stream: for a batch of ``B`` inputs of equal length ``q`` and pairwise
covariance ``q12`` (channel statistics over the batch, as the probe takes them)

    avg_squared_mean = q12 + (q - q12) / B,     avg_variance = (1 - 1 / B) (q - q12),

and the stream's kernel follows the network's kernel map
(:func:`jaxinit.theory.propagate`). For :class:`jaxinit.models.ResMLP`,
``x_l = x_{l-1} + alpha f(x_{l-1})``, that gives ``q_l = q_{l-1} + alpha^2
q_f(q_{l-1})``: with He-initialized ReLU branches ``q_f(q) = q``, so the
variance grows like ``(1 + alpha^2)^l``. Normalizer-free ResNets divide each
branch's input by its expected standard deviation ``beta_l`` and keep the
branch variance-preserving, so the variance grows linearly instead:
``Var(x_l) = 1 + l alpha^2`` (Brock et al. 2021, section 3;
:func:`nf_variance`, and :func:`nf_res_mlp` builds that network, whose kernel
map reproduces the rule exactly for ReLU).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxinit import checks
from jaxinit.theory import _engine as eng
from jaxinit.theory.kernels import ActivationLike
from jaxinit.theory.network import (Activation, Block, Dense, Residual, Scale, Sequential,
                                    Sum, _block, _propagate, res_mlp, steps)

Array = jax.Array


class SignalPropagation(NamedTuple):
  """Predicted Signal Propagation Plot statistics per residual block (as the probe names them)."""
  avg_squared_mean: Array
  """Average over channels of the squared channel mean over the batch."""
  avg_variance: Array
  """Average over channels of the channel variance over the batch."""
  residual_variance: Array
  """The same variance of each block's branch output (before its weight)."""


def signal_propagation(network: Block, activation: ActivationLike, *, q0: float = 1.0,
                       c0: float = 0.0, batch_size: int | None = None,
                       skip_steps: int = 1, **params: Any) -> SignalPropagation:
  """Predicted SPP statistics after each residual step of ``network``.

  The steps are the network's top-level steps (:func:`~jaxinit.theory.propagate`)
  from ``skip_steps`` on (1 skips a stem); each must be a residual block (a
  :class:`~jaxinit.theory.Sum` whose first branch is the shortcut and whose last
  is the residual branch) for ``residual_variance``, else that entry is ``nan``.

  Args:
    network: e.g. :func:`~jaxinit.theory.res_mlp` or :func:`nf_res_mlp`.
    activation: its activation.
    q0: the inputs' second moment ``x . x / n``.
    c0: the correlation of every pair of inputs.
    batch_size: ``B``, the inputs the probe's channel statistics run over
      (``None``: infinitely many).
    skip_steps: leading steps before the first block.
    **params: bound to the activation.

  Returns:
    A :class:`SignalPropagation` of arrays ``(blocks,)``.

  Examples:
    >>> from jaxinit import theory
    >>> spp = theory.signal_propagation(theory.res_mlp(3, 0.5), "relu", q0=0.5)
    >>> q = spp.avg_squared_mean + spp.avg_variance    # the second moment: (1 + alpha^2)^l
    >>> [round(float(v), 4) for v in q]
    [1.25, 1.5625, 1.9531]
    >>> [round(float(v), 4) for v in spp.avg_variance]  # ReLU branches correlate the inputs
    [1.1266, 1.275, 1.4492]
  """
  _block("network", network)
  q0 = checks.real("q0", q0, minimum=0.0)
  c0 = checks.real("c0", c0, minimum=-1.0, maximum=1.0)
  inv_batch = 0.0 if batch_size is None else 1.0 / checks.positive_int("batch_size", batch_size)
  skip = checks.non_negative_int("skip_steps", skip_steps)
  k = _propagate(network, activation, q0, q0, c0 * q0, eng.DEFAULT_NODES, eng.DEFAULT_NODES_2D,
                 params)
  q, q12 = k.q11[1 + skip:], k.q12[1 + skip:]
  inputs = zip(k.q11[skip:-1], k.q12[skip:-1])
  branch = []
  for step, (qi, q12i) in zip(list(steps(network))[skip:], inputs):
    if isinstance(step, Sum) and len(step.branches) == 2:
      out = _propagate(step.branches[-1], activation, qi, qi, q12i, eng.DEFAULT_NODES,
                       eng.DEFAULT_NODES_2D, params)
      branch.append((float(out.q11[-1]), float(out.q12[-1])))
    else:
      branch.append((math.nan, math.nan))
  qb, q12b = (np.array(v) for v in zip(*branch)) if branch else (np.zeros(0), np.zeros(0))
  return SignalPropagation(*(eng.output(v) for v in (
      q12 + (q - q12) * inv_batch, (1 - inv_batch) * (q - q12), (1 - inv_batch) * (qb - q12b))))


def res_mlp_signal_propagation(activation: ActivationLike, depth: int, branch_scale: float, *,
                               weight_variance: float = 2.0, bias_variance: float = 0.0,
                               q0: float = 1.0, c0: float = 0.0, batch_size: int | None = None,
                               **params: Any) -> SignalPropagation:
  """:func:`signal_propagation` of :class:`jaxinit.models.ResMLP` (stem, ``depth`` blocks).

  ``q0`` is the raw inputs' ``x . x / n``; the stem maps it to ``sw q0 + sb``.
  Compare with ``probes.signal_propagation(inter["preactivations"],
  inter["branch"])`` of ``ResMLP.apply(..., capture=True)``.

  Examples:
    >>> from jaxinit import theory
    >>> spp = theory.res_mlp_signal_propagation("relu", 2, 1.0, q0=0.5, batch_size=8)
    >>> [round(float(v), 4) for v in spp.avg_variance]
    [1.318, 2.0581]
  """
  return signal_propagation(res_mlp(depth, branch_scale, weight_variance, bias_variance),
                            activation, q0=q0, c0=c0, batch_size=batch_size, **params)


def nf_variance(depth: int, alpha: float, initial: float = 1.0) -> np.ndarray:
  """Brock et al.'s rule ``Var(x_l) = Var(x_0) + l alpha^2``, ``l = 0..depth``.

  Examples:
    >>> from jaxinit import theory
    >>> theory.nf_variance(3, 0.2).round(4).tolist()
    [1.0, 1.04, 1.08, 1.12]
  """
  depth = checks.non_negative_int("depth", depth)
  alpha = checks.real("alpha", alpha, minimum=0.0)
  initial = checks.real("initial", initial, minimum=0.0, exclusive_minimum=True)
  return initial + alpha**2 * np.arange(depth + 1, dtype=np.float64)


def nf_res_mlp(depth: int, alpha: float, weight_variance: float = 2.0) -> Sequential:
  """A normalizer-free residual MLP: ``x_l = x_{l-1} + alpha f_l(x_{l-1} / beta_l)``.

  ``beta_l = sqrt(1 + (l - 1) alpha^2)``, the expected standard deviation of
  the stream by :func:`nf_variance` (inputs of unit variance), and ``f_l =
  (Activation, Dense, Activation, Dense)`` with ``weight_variance`` (2 keeps
  a ReLU branch's output variance at its input's). No stem.

  Examples:
    >>> from jaxinit import theory
    >>> k = theory.propagate(theory.nf_res_mlp(3, 0.5), "relu", 1.0, 1.0, 0.0)
    >>> [round(float(v), 6) for v in k.q11]             # 1 + l alpha^2
    [1.0, 1.25, 1.5, 1.75]
  """
  depth = checks.positive_int("depth", depth)
  alpha = checks.real("alpha", alpha, minimum=0.0)
  dense = Dense(weight_variance)
  blocks = [Residual(Sequential(Scale(1 / math.sqrt(v)), Activation(), dense, Activation(),
                                dense), shortcut_weight=1.0, branch_weight=alpha)
            for v in nf_variance(depth - 1, alpha)]
  return Sequential(*blocks)


__all__ = ["SignalPropagation", "signal_propagation", "res_mlp_signal_propagation",
           "nf_variance", "nf_res_mlp"]
