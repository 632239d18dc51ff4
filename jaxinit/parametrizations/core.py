"""Parametrizations as data: SP, NTK, muP and depth-muP / CompleteP.

A parametrization says how each parameter's initialization, learning rate
and forward multiplier change when a model grows from a *base* model (the
one whose hyperparameters were tuned) to a wider or deeper *target*. It is a
frozen, hashable dataclass (:class:`Parametrization`) with a
``to_config()`` / :func:`get` round trip; :meth:`Parametrization.scale`
applies it to one model (:class:`~jaxinit.parametrizations.Scaling`).

Roles (Yang & Hu 2021, "Tensor Programs IV", and Yang et al. 2022, "Tensor
Programs V", arXiv 2203.03466, Table 3), found by comparing a parameter's
fans with the base model's (``m_in``, ``m_out``: the ratios of fan-in and
fan-out; ``m``: the ratio of a vector's size):

* ``input``: a weight whose fan-in is fixed and fan-out grows (first layer,
  embeddings);
* ``hidden``: a weight whose fan-in and fan-out grow;
* ``output``: a weight whose fan-in grows and fan-out is fixed (readout);
* ``vector``: a bias, norm scale or other parameter of rank <= 1 (or a
  non-weight of a layer) that grows;
* ``fixed``: nothing grows (a readout bias, a scalar gain).

Factors, relative to the base model (:class:`Factors`). ``init`` multiplies
the *standard deviation* the base model's rule gives at the base shape;
``multiplier`` is a forward multiplier; ``lr_sgd`` / ``lr_adam`` multiply the
learning rate; ``eps`` multiplies Adam's epsilon; ``weight_decay`` multiplies
the decoupled decay per step ``lr * wd``.

muP, as microsoft/mup implements it (``readout="multiplier"``: ``MuReadout``
divides the readout's input by ``m_in``; ``MuSGD``, ``MuAdam``; init via
``set_base_shapes`` rescaling):

========  ============  ==========  ===========  =========  ==========
role      init (std)    multiplier  lr_sgd       lr_adam    eps
========  ============  ==========  ===========  =========  ==========
input     1             1           m_out        1          1 / m_out
hidden    m_in^-1/2     1           m_out/m_in   1 / m_in   1 / m_in
output    1             1 / m_in    m_in         1          1 / m_in
vector    1             1           m            1          1 / m
fixed     1             1           1            1          1
========  ============  ==========  ===========  =========  ==========

With ``readout="absorbed"`` (the default) the readout multiplier is folded
into the readout's init and learning rate by the abc-symmetry of Tensor
Programs V (sec. 3.1: ``W -> W / a`` with multiplier ``a``, SGD learning rate
``/ a^2``, Adam ``/ a``): output ``init m_in^-1``, ``lr_sgd m_in^-1``,
``lr_adam m_in^-1``, ``eps 1`` and no multiplier. Trajectories are the same
as the multiplier form (tested); the model needs no change.

``eps`` follows the size of each parameter's gradient, so that Adam's
epsilon keeps its relative size at every width (microsoft/mup leaves
epsilon unscaled; Everett et al. 2024, "Scaling Exponents Across
Parameterizations and Optimizers", sec. 4.3, show it must shrink with width).
Decoupled weight decay is applied at ``lr * wd`` per step whatever the
learning-rate multiplier (mup's ``MuAdamW``, which multiplies ``wd`` by the
width where it divides ``lr``; the pitfall of mup PR #73 is applying
optax's ``adamw`` decay inside the scaled update).

NTK (Jacot et al. 2018; TP4 Table 1: forward multiplier ``fan_in^-1/2`` on
every weight, learning rate constant), in absorbed form: input as the base;
hidden and output ``init m_in^-1/2``, ``lr_sgd 1/m_in``, ``lr_adam
m_in^-1/2``; vectors as the base. SP: every factor 1 (the rules act at the
target's own fans).

Depth (``depth_alpha``; Bordelon et al. 2023, Yang et al. 2023 "Tensor
Programs VI" (alpha = 1/2); Dey et al. 2025 "CompleteP" (alpha = 1)): each
residual branch is multiplied by ``(L_base / L)^alpha`` in the forward pass
(:meth:`Parametrization.branch_multiplier`), and each parameter inside the
repeated blocks (``k = L / L_base``) gets ``lr_adam k^(alpha-1)``, ``lr_sgd
k^(2 alpha-1)``, ``eps k^-alpha`` and ``weight_decay k^(alpha-1)`` (CompleteP
Table 1; EleutherAI nanoGPT-mup ``completep`` param groups).

Examples:
  >>> from jaxinit import parametrizations as P
  >>> P.mup()
  Parametrization(width='mup', depth_alpha=None, readout='absorbed')
  >>> P.get(P.completep().to_config()) == P.completep()
  True
  >>> P.mup().factors("hidden", m_in=4.0, m_out=4.0).lr_adam
  0.25
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

from jaxinit import checks

__all__ = ["Factors", "Parametrization", "ROLES", "WIDTHS", "READOUTS", "sp", "ntk", "mup",
           "depth_mup", "completep", "get"]

ROLES = ("input", "hidden", "output", "vector", "fixed")
WIDTHS = ("sp", "ntk", "mup")
READOUTS = ("absorbed", "multiplier")


class Factors(NamedTuple):
  """One parameter's factors, relative to the base model.

  Attributes:
    init: multiplies the standard deviation of the base model's init.
    multiplier: forward multiplier of the layer (1: none).
    lr_sgd: learning-rate multiplier for SGD-like optimizers.
    lr_adam: learning-rate multiplier for Adam-like optimizers.
    eps: Adam epsilon multiplier.
    weight_decay: multiplier of the decoupled decay ``lr * wd`` per step.
  """
  init: float = 1.0
  multiplier: float = 1.0
  lr_sgd: float = 1.0
  lr_adam: float = 1.0
  eps: float = 1.0
  weight_decay: float = 1.0

  def times(self, other: Factors) -> Factors:
    """The elementwise product (width factors times depth factors)."""
    return Factors(*(a * b for a, b in zip(self, other)))


def _mup(role: str, m_in: float, m_out: float, m: float, readout: str) -> Factors:
  if role == "input":
    return Factors(lr_sgd=m_out, eps=1 / m_out)
  if role == "hidden":
    return Factors(init=m_in ** -0.5, lr_sgd=m_out / m_in, lr_adam=1 / m_in, eps=1 / m_in)
  if role == "output":
    if readout == "multiplier":
      return Factors(multiplier=1 / m_in, lr_sgd=m_in, eps=1 / m_in)
    return Factors(init=1 / m_in, lr_sgd=1 / m_in, lr_adam=1 / m_in)
  if role == "vector":
    return Factors(lr_sgd=m, eps=1 / m)
  return Factors()


def _ntk(role: str, m_in: float, m_out: float, m: float, readout: str) -> Factors:
  del readout
  if role == "input":
    return Factors(eps=m_out ** -0.5)
  if role == "hidden":
    return Factors(init=m_in ** -0.5, lr_sgd=1 / m_in, lr_adam=m_in ** -0.5, eps=m_in ** -0.5)
  if role == "output":
    return Factors(init=m_in ** -0.5, lr_sgd=1 / m_in, lr_adam=m_in ** -0.5)
  if role == "vector":
    return Factors(eps=m ** -0.5)
  return Factors()


@dataclasses.dataclass(frozen=True)
class Parametrization:
  """How a model's init, learning rates and multipliers scale from a base model.

  Attributes:
    width: ``"sp"`` (standard: nothing changes), ``"ntk"`` or ``"mup"``.
    depth_alpha: the residual-branch exponent: None (no depth scaling), 0.5
      (depth-muP), 1.0 (CompleteP), or any value in ``[0, 1]``.
    readout: muP's readout multiplier ``1 / m_in``: ``"absorbed"`` into the
      readout's init and learning rate (any model, unchanged), or
      ``"multiplier"`` (as microsoft/mup's ``MuReadout``: the model must
      apply :attr:`Factors.multiplier`, e.g. with
      :class:`jaxinit.parametrizations.nnx.Readout`).

  Raises:
    ValueError: an unknown width scheme or readout, or ``depth_alpha``
      outside ``[0, 1]``.
  """
  width: str = "mup"
  depth_alpha: float | None = None
  readout: str = "absorbed"

  def __post_init__(self):
    object.__setattr__(self, "width", checks.choice("width", self.width, WIDTHS))
    object.__setattr__(self, "readout", checks.choice("readout", self.readout, READOUTS))
    if self.depth_alpha is not None:
      object.__setattr__(self, "depth_alpha",
                         checks.real("depth_alpha", self.depth_alpha, minimum=0.0, maximum=1.0))

  @property
  def name(self) -> str:
    """A short name: ``"sp"``, ``"mup"``, ``"mup+depth(alpha=0.5)"``, ..."""
    depth = "" if self.depth_alpha is None else f"+depth(alpha={self.depth_alpha:g})"
    return self.width + depth

  def factors(self, role: str, *, m_in: float = 1.0, m_out: float = 1.0, m: float = 1.0,
              depth_mult: float = 1.0) -> Factors:
    """The :class:`Factors` of a parameter with ``role`` (see the module docstring).

    Args:
      role: one of :data:`ROLES`.
      m_in: fan-in ratio target / base (weights).
      m_out: fan-out ratio target / base (weights).
      m: size ratio target / base (vectors).
      depth_mult: ``L / L_base`` for a parameter inside the repeated blocks, else 1.
    """
    role = checks.choice("role", role, ROLES)
    if self.width == "sp":
      width = Factors()
    else:
      width = (_mup if self.width == "mup" else _ntk)(role, m_in, m_out, m, self.readout)
    if self.depth_alpha is None or depth_mult == 1.0:
      return width
    a, k = self.depth_alpha, depth_mult
    return width.times(Factors(lr_sgd=k ** (2 * a - 1), lr_adam=k ** (a - 1), eps=k ** -a,
                               weight_decay=k ** (a - 1)))

  def branch_multiplier(self, depth: int, base_depth: int) -> float:
    """The residual-branch multiplier ``(base_depth / depth)^alpha`` (1 without depth scaling).

    ``x_{l+1} = x_l + branch_multiplier * f_l(x_l)``; multiply it into the
    base model's own branch multiplier, if it has one.

    Examples:
      >>> depth_mup(alpha=0.5).branch_multiplier(16, 4)
      0.5
    """
    depth = checks.positive_int("depth", depth)
    base_depth = checks.positive_int("base_depth", base_depth)
    if self.depth_alpha is None:
      return 1.0
    return (base_depth / depth) ** self.depth_alpha

  def attention_scale(self, head_dim: int, base_head_dim: int,
                      attn_mult: float | None = None) -> float:
    """The attention-logit scale: ``sqrt(attn_mult / d)`` (SP, NTK), ``sqrt(attn_mult) / d`` (muP).

    muP's ``q.k / d`` (TP5 sec. 4: attention logits scale as ``1/d``, not
    ``1/sqrt(d)``); microsoft/mup's Transformer example multiplies ``q`` by
    ``sqrt(attn_mult) / head_dim`` (``head_dim^-1/2 sqrt(attn_mult)`` in SP).
    ``attn_mult`` defaults to ``base_head_dim`` for muP (so the base model
    keeps ``1 / sqrt(d)``) and to 1 otherwise.

    Examples:
      >>> mup().attention_scale(64, 16), sp().attention_scale(64, 16)
      (0.0625, 0.125)
    """
    head_dim = checks.positive_int("head_dim", head_dim)
    base_head_dim = checks.positive_int("base_head_dim", base_head_dim)
    if self.width == "mup":
      mult = base_head_dim if attn_mult is None else checks.real(
          "attn_mult", attn_mult, minimum=0.0, exclusive_minimum=True)
      return math.sqrt(mult) / head_dim
    mult = 1.0 if attn_mult is None else checks.real("attn_mult", attn_mult, minimum=0.0,
                                                      exclusive_minimum=True)
    return math.sqrt(mult / head_dim)

  def scale(self, target: Any, *inputs: Any, base: Any, rules: Any = None,
            roles: Any = None, base_inputs: tuple[Any, ...] | None = None,
            stack_axes: Any = None, module: Any = None) -> Any:
    """Applies the parametrization to ``target`` against ``base``:
    :func:`jaxinit.parametrizations.scale`."""
    from jaxinit.parametrizations.scaling import scale  # pylint: disable=import-outside-toplevel
    return scale(self, target, *inputs, base=base, rules=rules, roles=roles,
                 base_inputs=base_inputs, stack_axes=stack_axes, module=module)

  def to_config(self) -> dict[str, Any]:
    """``{"name": "parametrization", "width": ..., "depth_alpha": ..., "readout": ...}``."""
    return {"name": "parametrization", "width": self.width, "depth_alpha": self.depth_alpha,
            "readout": self.readout}

  @classmethod
  def from_config(cls, config: dict[str, Any]) -> Parametrization:
    """The parametrization a :meth:`to_config` dict describes."""
    return get(config)


def sp() -> Parametrization:
  """The standard parametrization: the rules act at each model's own fans (e.g. LeCun
  ``Var = 1 / fan_in``); every learning rate, epsilon and multiplier as the base's.

  In SP the hidden activations' update after one Adam step grows like the width
  (Yang & Hu 2021, "Tensor Programs IV", Table 1): the coordinate check fails.
  """
  return Parametrization("sp")


def ntk() -> Parametrization:
  """The NTK parametrization (Jacot et al. 2018; Yang & Hu 2021, Table 1), in absorbed form.

  Hidden and output weights: init std ``x m_in^-1/2``, SGD learning rate ``x 1 / m_in``,
  Adam ``x m_in^-1/2``; inputs and vectors as the base. Features stop learning as the width
  grows (the kernel regime).
  """
  return Parametrization("ntk")


def mup(readout: str = "absorbed") -> Parametrization:
  """muP, the maximal-update parametrization (Yang & Hu 2021, "Tensor Programs IV"; Yang et
  al. 2022, "Tensor Programs V", arXiv 2203.03466, Table 3).

  Hidden weights: init std ``x m_in^-1/2``, Adam learning rate ``x 1 / m_in`` (SGD
  ``x m_out / m_in``); the readout's ``1 / m_in`` multiplier ``"absorbed"`` into its init
  (std ``x 1 / m_in``) and learning rate (``x 1 / m_in``), or kept as a forward
  ``"multiplier"`` (microsoft/mup's ``MuReadout``). The full table is in the module
  docstring.

  Examples:
    >>> f = mup().factors("hidden", m_in=16.0, m_out=16.0)
    >>> f.init, f.lr_adam, f.lr_sgd
    (0.25, 0.0625, 1.0)
  """
  return Parametrization("mup", None, readout)


def depth_mup(alpha: float = 0.5, width: str = "mup", readout: str = "absorbed"
              ) -> Parametrization:
  """Depth-muP: muP in width, and residual branches ``x_{l+1} = x_l + (L_base / L)^alpha
  f_l(x_l)`` (Yang et al. 2023, "Tensor Programs VI: Feature Learning in Infinite-Depth
  Neural Networks", arXiv 2310.02244; Bordelon et al. 2023, "Depthwise Hyperparameter
  Transfer in Residual Networks", arXiv 2309.16620; both alpha = 1/2).

  Inside the repeated blocks (``k = L / L_base``): Adam learning rate ``x k^(alpha-1)``,
  SGD ``x k^(2 alpha - 1)``, epsilon ``x k^-alpha``; the model multiplies each branch by
  :meth:`Parametrization.branch_multiplier`.

  Examples:
    >>> p = depth_mup()
    >>> p.branch_multiplier(16, 4), p.factors("hidden", depth_mult=4.0).lr_adam
    (0.5, 0.5)
  """
  return Parametrization(width, alpha, readout)


def completep(width: str = "mup", readout: str = "absorbed") -> Parametrization:
  """CompleteP (Dey et al. 2025, "Don't be lazy: CompleteP enables compute-efficient deep
  transformers", arXiv 2505.01618): :func:`depth_mup` with alpha = 1 (branches ``x L_base /
  L``, Adam learning rate in the blocks unchanged, epsilon ``x 1 / k``)."""
  return Parametrization(width, 1.0, readout)


_NAMED = {"sp": sp, "ntk": ntk, "mup": mup, "depth_mup": depth_mup, "completep": completep}


def get(spec: Any) -> Parametrization:
  """A parametrization from a name (``"sp"``, ``"ntk"``, ``"mup"``, ``"depth_mup"``,
  ``"completep"``), a :meth:`Parametrization.to_config` dict, or a parametrization.

  Raises:
    ValueError: an unknown name or config key.
  """
  if isinstance(spec, Parametrization):
    return spec
  if isinstance(spec, str):
    return _NAMED[checks.choice("parametrization", spec, tuple(_NAMED))]()
  if not isinstance(spec, dict):
    raise TypeError(f"a parametrization is a name, a config dict or a Parametrization, "
                    f"got {spec!r}")
  config = dict(spec)
  name = config.pop("name", "parametrization")
  if name != "parametrization":
    return _NAMED[checks.choice("parametrization", name, tuple(_NAMED))](**config)
  keys = ("width", "depth_alpha", "readout")
  unknown = sorted(set(config) - set(keys))
  if unknown:
    raise ValueError(f"a parametrization config takes keys {list(keys)}, got unknown "
                     f"{unknown}{checks.did_you_mean(unknown[0], keys)}")
  return Parametrization(**config)
