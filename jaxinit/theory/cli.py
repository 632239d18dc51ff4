"""``jaxinit theory``: mean-field summary and phase diagram of one activation, in words.

Every quantity is printed as a number only where it is one: an unbounded
``q*`` says why (e.g. ``q* unbounded: sigma_w^2 = 2 is at the limit 2 for
relu with sigma_b^2 > 0``), quantities defined at ``q*`` say they are
undefined, and an activation without a critical point (GELU, SiLU at small
``sigma_b^2``) says where ``chi1`` jumps instead.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import jax
import numpy as np

from jaxinit.gains import ACTIVATIONS
from jaxinit.theory import _engine as eng
from jaxinit.theory import fixed_points as fp


def _parse_param(text: str) -> tuple[str, float]:
  name, sep, value = text.partition("=")
  if not sep or not name.isidentifier():
    raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
  try:
    return name, float(value)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected a number after '=', got {text!r}") from None


def _g(x: float) -> str:
  return f"{x:.6g}"


def _unbounded_reason(activation: str, sw: float, sb: float, limit: float) -> str:
  """Why the length map has no fixed point (reached from q0 = 1) at (sw, sb)."""
  if math.isfinite(limit) and abs(sw - limit) <= 1e-9 * limit:
    cause = (f"sigma_w^2 = {_g(sw)} is at the limit {_g(limit)} for {activation} with "
             f"sigma_b^2 = {_g(sb)} > 0: q grows by about sigma_b^2 per layer")
  elif math.isfinite(limit) and sw > limit:
    cause = (f"sigma_w^2 = {_g(sw)} is above {_g(limit)} for {activation}: at large q the "
             f"length map grows like q sigma_w^2 / {_g(limit)} > q, so q grows without limit")
  else:
    cause = f"q grows without limit from q0 = 1 at sigma_w^2 = {_g(sw)}"
  return f"unbounded: {cause}"


def _transition_text(t: fp.Transition) -> str:
  crit = float(t.critical_weight_variance)
  where = float(t.weight_variance)
  if math.isfinite(crit):
    return _g(crit)
  if not math.isfinite(where):
    return (f"none: chi1 stays below 1 (no order-to-chaos transition) up to sigma_w^2 = "
            f"2^{int(fp._CRIT_LOG2_RANGE)}")  # pylint: disable=protected-access
  return (f"none: chi1 stays below 1 ({_g(float(t.chi1_below))} at q* = "
          f"{_g(float(t.q_star_below))}) up to sigma_w^2 = {_g(where)}, where q* (from q0 = 1)"
          f" jumps to infinity and chi1 jumps to {_g(float(t.chi1_above))} (its large-q "
          "limit): no critical point")


def summary_rows(activation: str, sb: float, sw: float | None,
                 params: dict[str, float]) -> tuple[list[tuple[str, str]], float | None]:
  """The rows ``jaxinit theory`` prints, and the weight variance they describe.

  ``sw=None`` means the critical weight variance; where there is none, the
  rows say why and the weight variance returned is ``None``.
  """
  t = fp.transition(activation, sb, **params)
  crit = float(t.critical_weight_variance)
  label = activation + "".join(f" {k}={v:g}" for k, v in params.items())
  rows = [("activation", label), ("bias variance", _g(sb))]
  if sw is None and not math.isfinite(crit):
    return rows + [("critical weight variance", _transition_text(t)),
                   ("weight variance", "none chosen: pass --weight-variance")], None
  given = sw is not None
  sw = crit if sw is None else sw
  mf = fp.mean_field(activation, sw, sb, **params)
  q, c, chi1, xi_c = (float(v) for v in (mf.q_star, mf.c_star, mf.chi1, mf.xi_c))
  rows.append(("weight variance", _g(sw) + ("" if given else " (critical)")))
  if math.isinf(q):
    reason = _unbounded_reason(label, sw, sb, float(t.unbounded_weight_variance))
    undefined = "undefined (q* unbounded: no fixed point to linearize about)"
    rows += [("q*", reason), ("c*", undefined),
             ("chi1", f"{_g(chi1)} (its large-q limit)"), ("xi_c", undefined)]
    depth = undefined
  else:
    rows += [("q*", _g(q)), ("c*", _g(c)), ("chi1", _g(chi1)),
             ("xi_c", "inf (critical: correlations decay slower than exponentially)"
              if math.isinf(xi_c) else _g(xi_c))]
    depth = "unbounded (critical)" if math.isinf(xi_c) else _g(6 * xi_c)
  rows += [("critical weight variance", _transition_text(t)), ("max trainable depth", depth),
           ("phase", str(fp.phase(activation, sw, sb, **params)))]
  return rows, sw


def main(argv: list[str] | None = None) -> int:
  """``jaxinit theory``: mean-field summary and phase diagram for one activation.

  Prints ``q*``, ``c*``, ``chi1``, ``xi_c``, the critical weight variance and
  the phase at ``(--weight-variance, --bias-variance)`` (the weight variance
  defaults to the critical one), and writes ``phase_diagram_<activation>.png``
  into ``--out``. Runs in float64.

  Args:
    argv: command-line arguments (without the program name); ``None`` for ``sys.argv``.

  Returns:
    The exit status: 0, or 2 for invalid arguments.

  Examples:
    >>> from jaxinit.theory import cli
    >>> cli.main(["--activation", "relu", "--bias-variance", "0", "--no-plot"])
    activation                relu
    bias variance             0
    weight variance           2 (critical)
    q*                        1
    c*                        1
    chi1                      1
    xi_c                      inf (critical: correlations decay slower than exponentially)
    critical weight variance  2
    max trainable depth       unbounded (critical)
    phase                     critical
    0
  """
  parser = argparse.ArgumentParser(
      prog="jaxinit theory",
      description="Mean-field signal propagation (Poole et al. 2016, Schoenholz et al. 2017).")
  parser.add_argument("--activation", default="tanh",
                      help=f"one of {', '.join(sorted(ACTIVATIONS))} (default tanh)")
  parser.add_argument("--param", action="append", type=_parse_param, default=[],
                      metavar="NAME=VALUE", help="activation parameter, e.g. negative_slope=0.1")
  parser.add_argument("--bias-variance", type=float, default=0.05)
  parser.add_argument("--weight-variance", type=float, default=None,
                      help="default: the critical weight variance")
  parser.add_argument("--out", default=".", help="directory for the phase-diagram PNG")
  parser.add_argument("--grid", type=int, default=31, help="grid points per axis")
  parser.add_argument("--max-weight-variance", type=float, default=4.0)
  parser.add_argument("--max-bias-variance", type=float, default=None,
                      help="default: max(0.5, 2 x --bias-variance)")
  parser.add_argument("--no-plot", action="store_true", help="skip the phase diagram")
  args = parser.parse_args(argv)
  params = dict(args.param)
  try:
    with jax.enable_x64(True):
      sb = float(eng.nonnegative("--bias-variance", args.bias_variance))
      sw = args.weight_variance
      if sw is not None:
        sw = float(eng.nonnegative("--weight-variance", sw))
      rows, sw = summary_rows(args.activation, sb, sw, params)
      if not args.no_plot:
        if args.grid < 2:
          raise ValueError(f"--grid must be >= 2, got {args.grid}")
        from jaxinit import plots  # pylint: disable=import-outside-toplevel
        from jaxinit.theory.phase_diagram import phase_diagram  # pylint: disable=import-outside-toplevel
        max_sb = args.max_bias_variance or max(0.5, 2 * sb)
        sws = np.linspace(args.max_weight_variance / args.grid, args.max_weight_variance,
                          args.grid)
        sbs = np.linspace(0.0, max_sb, args.grid)
        diagram = phase_diagram(args.activation, sws, sbs, **params)
        os.makedirs(args.out, exist_ok=True)
        path = os.path.join(args.out, f"phase_diagram_{args.activation}.png")
        plots.plot_phase_diagram(diagram, path, point=None if sw is None else (sw, sb),
                                 title=f"{args.activation}: correlation depth scale")
        rows.append(("phase diagram", path))
  except (ValueError, TypeError) as err:
    print(f"jaxinit theory: error: {err}", file=sys.stderr)
    return 2
  width = max(len(name) for name, _ in rows) + 2
  for name, value in rows:
    print(f"{name:<{width}}{value}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
