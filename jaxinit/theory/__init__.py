r"""Signal propagation through deep random networks at initialization (mean-field theory).

A fully connected network ``h^{l+1} = W^{l+1} phi(h^l) + b^{l+1}`` with
``W_ij ~ N(0, sw / fan_in)`` and ``b_i ~ N(0, sb)`` has, as the width grows,
Gaussian pre-activations whose second moments follow deterministic maps
(Poole et al. 2016, "Exponential expressivity in deep neural networks through
transient chaos"; Schoenholz et al. 2017, "Deep information propagation").
The package, one job per module:

* :mod:`~jaxinit.theory.kernels`: the length map, the covariance and
  correlation (C-) maps and their derivatives (differentiable everywhere,
  ``c = +-1`` included), on the quadrature rules of :mod:`jaxinit._quadrature`;
* :mod:`~jaxinit.theory.fixed_points`: ``q*``, ``c*``, ``chi1``, ``chi_c``,
  the depth scales ``xi_q``, ``xi_c``, ``xi_grad``, the critical line and
  the phase (fixed points differentiable by implicit differentiation; an
  unbounded ``q*`` or a missing critical point is reported as such);
* :mod:`~jaxinit.theory.spectra`: moments of the input-output Jacobian's
  spectrum (free probability);
* :mod:`~jaxinit.theory.phase_diagram`: the quantities on a grid
  (:func:`jaxinit.plots.plot_phase_diagram` draws them);
* :mod:`~jaxinit.theory.network`: kernel maps of whole networks composed from
  blocks (dense layers, activations, residual blocks with shortcut weights,
  sums, concatenations), their Q- and C-maps, and per-layer predictions;
* :mod:`~jaxinit.theory.transforms`: Deep Kernel Shaping and Tailored
  Activation Transformations (activations transformed so that a given network
  keeps its C-map close to the identity);
* :mod:`~jaxinit.theory.residual`: signal propagation in residual networks
  (per-block variances, Brock et al.'s NF rule, Signal Propagation Plots);
* :mod:`~jaxinit.theory.cli`: the ``jaxinit theory`` command.

Bad Python inputs (negative or non-finite variances, an activation that is
not traceable or has no finite Gaussian moments) raise eagerly; traced
inputs are not checked (NaN out). Concrete inputs are solved in float64 on
the host and returned in the default float dtype.

Examples:
  >>> from jaxinit import theory
  >>> round(float(theory.critical_weight_variance("relu", 0.0)), 4)
  2.0
  >>> theory.phase("tanh", 1.0, 0.05)
  'ordered'
"""

from __future__ import annotations

import importlib
from typing import Any

from jaxinit.theory._engine import DEFAULT_NODES, DEFAULT_NODES_2D
from jaxinit.theory.fixed_points import (PHASES, MeanField, Transition, chi1, chi_c,
                                         correlation_depth_scale, critical_line,
                                         critical_weight_variance, fixed_point_correlation,
                                         fixed_point_length, gradient_depth_scale,
                                         length_depth_scale, max_trainable_depth, mean_field,
                                         phase, transition)
from jaxinit.theory.kernels import correlation_map, covariance_map, length_map, length_slope
from jaxinit.theory.network import (Activation, Concatenate, Dense, Identity, LayerPrediction,
                                    NetworkKernel, Repeat, Residual, Scale, Sequential, Sum,
                                    c_map_derivatives, composed_c_map, mlp, network_c_map,
                                    network_kernel_map, network_q_map, predict_layers,
                                    predict_layers_from_inputs, propagate, res_mlp, resnet,
                                    subnetworks)
from jaxinit.theory.phase_diagram import PhaseDiagram, phase_diagram
from jaxinit.theory.residual import (SignalPropagation, nf_res_mlp, nf_variance,
                                     res_mlp_signal_propagation, signal_propagation)
from jaxinit.theory.spectra import JacobianMoments, jacobian_spectrum_moments
from jaxinit.theory.transforms import (FAMILIES, LocalMaps, TransformedActivation, dks,
                                       leaky_relu_negative_slope, local_c_curve_target,
                                       local_c_map, local_c_slope_target, local_maps, tat,
                                       transform)

# Loaded on first use: the command line (argparse) and plotting stay out of `import`.
_LAZY = {"main": ("jaxinit.theory.cli", "main"),
         "plot_phase_diagram": ("jaxinit.plots", "plot_phase_diagram")}


def __getattr__(name: str) -> Any:
  if name in _LAZY:
    module, attr = _LAZY[name]
    return getattr(importlib.import_module(module), attr)
  raise AttributeError(f"module 'jaxinit.theory' has no attribute {name!r}")


__all__ = [
    "DEFAULT_NODES", "DEFAULT_NODES_2D", "PHASES",
    # kernels
    "length_map", "length_slope", "covariance_map", "correlation_map",
    # fixed points and depth scales
    "MeanField", "Transition", "mean_field", "fixed_point_length", "fixed_point_correlation",
    "chi1", "chi_c", "length_depth_scale", "correlation_depth_scale", "gradient_depth_scale",
    "max_trainable_depth", "phase", "critical_weight_variance", "critical_line", "transition",
    # spectra and phase diagrams
    "JacobianMoments", "jacobian_spectrum_moments", "PhaseDiagram", "phase_diagram",
    "plot_phase_diagram",
    # networks
    "Dense", "Activation", "Identity", "Scale", "Sequential", "Repeat", "Sum", "Residual",
    "Concatenate", "NetworkKernel", "LayerPrediction", "mlp", "res_mlp", "resnet", "propagate",
    "network_kernel_map", "network_q_map", "network_c_map", "composed_c_map",
    "c_map_derivatives", "subnetworks", "predict_layers", "predict_layers_from_inputs",
    # residual networks
    "SignalPropagation", "signal_propagation", "res_mlp_signal_propagation", "nf_variance",
    "nf_res_mlp",
    # activation transforms
    "FAMILIES", "TransformedActivation", "LocalMaps", "dks", "tat", "transform", "local_maps",
    "local_c_map",
    "local_c_slope_target", "local_c_curve_target", "leaky_relu_negative_slope",
    # command line
    "main",
]
