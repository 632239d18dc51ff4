"""Plots of probe results (per-layer curves with seed bands, per-layer
histograms, Jacobian spectra) and of the theory (phase diagrams).

matplotlib is imported inside each function, so ``import jaxinit`` needs jax
alone (install the ``plot`` extra for these). Every function draws on ``ax``
when given one, else on a new figure, and returns the axes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _axes(ax: Any) -> Any:
  if ax is not None:
    return ax
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  return plt.subplots()[1]


def layer_curves(values: Any, *, ax: Any = None, label: str | None = None,
                 log: bool = False, band: tuple[float, float] = (0.1, 0.9),
                 color: Any = None) -> Any:
  """A per-layer statistic: median over seeds, with a quantile band.

  Args:
    values: ``(layers,)`` or ``(seeds, layers)``, e.g. vmapped
      ``layer_moments(...)["second_moment"]``.
    ax: matplotlib axes to draw on.
    label: legend label of the curve.
    log: logarithmic y axis (for variances that grow or decay geometrically).
    band: the seeds' quantiles that bound the shaded band.
    color: matplotlib color.

  Returns:
    The axes. Layers are numbered from 1, as ``h^1 ... h^L``.

  Examples:
    >>> import numpy as np
    >>> ax = layer_curves(np.array([[1., 2., 4.], [1., 3., 5.]]), log=True)
    >>> ax.lines[0].get_ydata().tolist()
    [1.0, 2.5, 4.5]
    >>> import matplotlib.pyplot as plt; plt.close(ax.figure)
  """
  ax = _axes(ax)
  values = np.atleast_2d(np.asarray(values, np.float64))
  layers = np.arange(1, values.shape[1] + 1)
  line, = ax.plot(layers, np.median(values, axis=0), label=label, color=color)
  if values.shape[0] > 1:
    low, high = np.quantile(values, band, axis=0)
    ax.fill_between(layers, low, high, color=line.get_color(), alpha=0.25, linewidth=0)
  if log:
    ax.set_yscale("log")
  ax.set_xlabel("layer")
  if label is not None:
    ax.legend()
  return ax


def layer_histograms(h: Any, *, layers: Sequence[int] | None = None, bins: int = 50,
                     ax: Any = None, cmap: str = "viridis") -> Any:
  """Histograms of a per-layer signal, one outline per chosen layer.

  Args:
    h: ``(layers, ...)``, e.g. ``apply(..., capture=True)[1]["preactivations"]``.
    layers: 0-based layer indices to draw; by default up to 5, evenly spaced.
    bins: histogram bins (shared by all layers).
    ax: matplotlib axes to draw on.
    cmap: colormap running from the first to the last drawn layer.

  Returns:
    The axes, with a legend naming layers from 1.

  Examples:
    >>> import numpy as np
    >>> ax = layer_histograms(np.random.default_rng(0).normal(size=(3, 100)))
    >>> len(ax.patches)
    3
    >>> import matplotlib.pyplot as plt; plt.close(ax.figure)
  """
  import matplotlib  # pylint: disable=import-outside-toplevel
  ax = _axes(ax)
  h = np.asarray(h, np.float64).reshape(np.shape(h)[0], -1)
  if layers is None:
    layers = sorted(set(np.linspace(0, h.shape[0] - 1, min(5, h.shape[0])).round().astype(int)))
  edges = np.histogram_bin_edges(h[list(layers)], bins=bins)
  colors = matplotlib.colormaps[cmap](np.linspace(0, 1, len(layers)))
  for layer, color in zip(layers, colors):
    ax.hist(h[layer], bins=edges, density=True, histtype="step", color=color,
            label=f"layer {layer + 1}")
  ax.set_ylabel("density")
  ax.legend()
  return ax


def jacobian_spectrum(singular_values: Any, *, ax: Any = None, squared: bool = True,
                      bins: int = 50, log: bool = False) -> Any:
  """Density of the Jacobian's squared singular values (or singular values).

  Args:
    singular_values: an array (any shape, pooled, e.g. over seeds) or a mapping
      from label to array, one outline each (e.g. one per depth).
    ax: matplotlib axes to draw on.
    squared: histogram ``s^2`` (the eigenvalues of ``J^T J``), as in the
      dynamical-isometry literature; else ``s``.
    bins: histogram bins (shared).
    log: logarithmic x axis, for spectra spread over decades.

  Returns:
    The axes.

  Examples:
    >>> import numpy as np
    >>> ax = jacobian_spectrum({"L=1": np.ones(8), "L=4": np.linspace(0.1, 2, 8)})
    >>> len(ax.patches)
    2
    >>> import matplotlib.pyplot as plt; plt.close(ax.figure)
  """
  ax = _axes(ax)
  spectra = (dict(singular_values) if isinstance(singular_values, Mapping)
             else {None: singular_values})
  spectra = {k: np.ravel(np.asarray(v, np.float64)) ** (2 if squared else 1)
             for k, v in spectra.items()}
  pooled = np.concatenate(list(spectra.values()))
  if log:
    positive = pooled[pooled > 0]
    edges = np.geomspace(positive.min(), positive.max(), bins + 1)
    ax.set_xscale("log")
  else:
    edges = np.histogram_bin_edges(pooled, bins=bins)
    if edges[0] == edges[-1]:  # a single value (an isometry): give it width
      edges = np.linspace(edges[0] - 0.5, edges[0] + 0.5, bins + 1)
  for label, values in spectra.items():
    ax.hist(values, bins=edges, density=True, histtype="step", label=label)
  ax.set_xlabel("squared singular value" if squared else "singular value")
  ax.set_ylabel("density")
  if any(label is not None for label in spectra):
    ax.legend()
  return ax


def plot_phase_diagram(diagram: Any, path: str | os.PathLike | None = None, *,
                       title: str | None = None, point: tuple[float, float] | None = None,
                       ax: Any = None) -> Any:
  """Draws ``xi_c`` over ``(weight variance, bias variance)`` with the critical line.

  Every cell has a colour and a legend entry: finite ``xi_c`` on a log
  scale; grey where ``q*`` is unbounded (no fixed point, so no
  depth scale); the critical line ``chi1 = 1`` in white; where ``chi1``
  jumps across 1 instead (``q*`` jumping to infinity, GELU/SiLU at small
  ``sb``) a dashed red line; anything else undefined in black.

  Args:
    diagram: a :class:`jaxinit.theory.PhaseDiagram`.
    path: where to save a PNG; ``None`` to only return the figure.
    title: figure title.
    point: an ``(sw, sb)`` to mark.
    ax: matplotlib axes to draw on (default: a new figure).

  Returns:
    The matplotlib ``Figure``.

  Examples:
    >>> from jaxinit import theory
    >>> fig = plot_phase_diagram(theory.phase_diagram("relu", [1.0, 3.0], [0.0, 0.1]))
    >>> sorted(t.get_text() for t in fig.axes[0].get_legend().get_texts())[:2]
    ['critical line chi1 = 1', 'q* unbounded: lengths grow without limit, no depth scale']
    >>> import matplotlib.pyplot as plt; plt.close(fig)
  """
  import matplotlib  # pylint: disable=import-outside-toplevel
  if path is not None:
    matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  from matplotlib.colors import ListedColormap, LogNorm  # pylint: disable=import-outside-toplevel
  from matplotlib.patches import Patch  # pylint: disable=import-outside-toplevel

  sws, sbs = diagram.weight_variances, diagram.bias_variances
  xi = np.asarray(diagram.xi_c, np.float64)
  unbounded = np.asarray(diagram.unbounded, bool)
  finite = np.isfinite(xi) & (xi > 0)
  if ax is None:
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
  else:
    fig = ax.figure
  handles = []
  values = xi[finite]
  norm = None
  if values.size:
    norm = LogNorm(vmin=max(values.min(), 1e-2), vmax=max(values.max(), 1e-2) * 1.0001)
  mesh = ax.pcolormesh(sws, sbs, np.where(finite, xi, np.nan), shading="nearest", norm=norm,
                       cmap="viridis")
  fig.colorbar(mesh, ax=ax, label=r"correlation depth scale $\xi_c$ (layers)")
  undefined = ~finite & ~unbounded & ~np.isinf(xi)
  for mask, color, label in (
      (unbounded, "0.75", "q* unbounded: lengths grow without limit, no depth scale"),
      (undefined, "black", "xi_c undefined")):
    if mask.any():
      ax.pcolormesh(sws, sbs, np.where(mask, 1.0, np.nan), shading="nearest",
                    cmap=ListedColormap([color]))
      handles.append(Patch(facecolor=color, label=label))
  crit = np.asarray(diagram.critical_weight_variances, np.float64)
  jump = np.asarray(diagram.transition_weight_variances, np.float64)
  if np.isfinite(crit).any():
    handles += ax.plot(crit, sbs, "w-", lw=2, label="critical line chi1 = 1")
  jumps = np.where(np.isnan(crit), jump, np.nan)
  if np.isfinite(jumps).any():
    handles += ax.plot(jumps, sbs, "r--", lw=2,
                       label="no critical point: chi1 jumps past 1 as q* jumps to infinity")
  if point is not None:
    handles += ax.plot(*point, "r*", ms=12, label="chosen")
  ax.set_xlim(sws.min(), sws.max())
  ax.set_ylim(sbs.min(), sbs.max())
  ax.set_xlabel(r"weight variance $\sigma_w^2$")
  ax.set_ylabel(r"bias variance $\sigma_b^2$")
  ax.set_title(title or "mean-field phase diagram (ordered: left, chaotic: right)")
  ax.legend(handles=handles, loc="upper left", fontsize=7, framealpha=0.9)
  fig.tight_layout()
  if path is not None:
    fig.savefig(path, dpi=120)
    plt.close(fig)
  return fig
