r"""Network kernel maps: the Q-map and C-map of a whole network, composed from its blocks.

A network is described by blocks (frozen, hashable dataclasses) acting on the
kernel ``K = (q11, q22, q12)`` of two inputs' signals, in the infinite-width
limit with independent Gaussian weights (Poole et al. 2016; Martens et al.
2021, "Rapid training of deep neural networks without skip connections or
normalization layers using Deep Kernel Shaping", section 4):

* :class:`Dense` ``(sw, sb)``: ``K -> sw K + sb`` (weights ``N(0, sw / fan_in)``,
  biases ``N(0, sb)``);
* :class:`Activation`: ``K -> (E[phi(u1)^2], E[phi(u2)^2], E[phi(u1) phi(u2)])``
  (the covariance map with ``sw = 1, sb = 0``);
* :class:`Sum` of branches with weights ``w_i`` (and :class:`Residual`, a
  shortcut plus a branch): ``K -> sum_i w_i^2 K_i``. The branches must be
  uncorrelated: all but one must end in a :class:`Dense` layer (whose
  zero-mean weights are independent of everything else);
* :class:`Concatenate` of branches with ``n_i`` units each: ``K -> sum_i (n_i / n) K_i``;
* :class:`Sequential`, :class:`Repeat`, :class:`Identity` and :class:`Scale`.

The same description is evaluated in several ways:

* :func:`propagate` (kernels layer by layer, any activation and variances),
  :func:`network_kernel_map`, :func:`network_q_map` and
  :func:`network_c_map`;
* :func:`composed_c_map`: DKS's C-map of a normalized network (every layer
  keeps ``q = 1``), with each :class:`Activation` replaced by a local C-map
  and :class:`Dense` layers acting as the identity;
* :func:`c_map_derivatives`: slope and curvature of that C-map at ``c = 1``
  from the local ones (the chain rule through the composition);
* :func:`subnetworks`: the network and, recursively, every branch of its
  sums, residual blocks and concatenations taken alone (TAT's subnetwork
  maximizing function, Zhang et al. 2022, appendix B, as dks's tests define
  it for a ResNet).

Builders: :func:`mlp` and :func:`res_mlp` describe :class:`jaxinit.models.MLP`
and :class:`jaxinit.models.ResMLP`; :func:`resnet` the normalization-free
ResNet of DKS/TAT (pre-activation bottleneck blocks, weighted shortcuts).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit import checks
from jaxinit.theory import _engine as eng
from jaxinit.theory import kernels as kern
from jaxinit.theory._engine import DEFAULT_NODES, DEFAULT_NODES_2D
from jaxinit.theory.kernels import ActivationLike

Array = jax.Array


# ----------------------------------------------------------------------------
# Blocks.

def _weight(name: str, value: Any) -> Any:
  """A non-negative weight or variance as a float; a tracer passes (under ``jit``/``grad``)."""
  if eng.is_traced(value):
    return value
  return checks.real(name, value, minimum=0.0)


@dataclasses.dataclass(frozen=True)
class Dense:
  """A dense (or convolutional) layer: ``K -> sw K + sb``.

  Attributes:
    weight_variance: ``sw``; weights are ``N(0, sw / fan_in)`` (or orthogonal
      scaled by ``sqrt(sw)``: the same kernel map).
    bias_variance: ``sb``; biases are ``N(0, sb)``.
  """
  weight_variance: float = 1.0
  bias_variance: float = 0.0

  def __post_init__(self) -> None:
    object.__setattr__(self, "weight_variance", _weight("weight_variance", self.weight_variance))
    object.__setattr__(self, "bias_variance", _weight("bias_variance", self.bias_variance))


@dataclasses.dataclass(frozen=True)
class Activation:
  """The activation applied elementwise: ``K -> E[phi(u) phi(u')]`` entrywise.

  Attributes:
    activation: ``None`` for the activation the network is evaluated with,
      or a fixed one (name or callable; hashable).
  """
  activation: ActivationLike | None = None


@dataclasses.dataclass(frozen=True)
class Identity:
  """``K -> K`` (an identity shortcut)."""


@dataclasses.dataclass(frozen=True)
class Scale:
  """Multiplies the signal by a constant: ``K -> factor^2 K``.

  Attributes:
    factor: the constant (e.g. NF-ResNets' ``1 / beta`` on a branch's input).
  """
  factor: float

  def __post_init__(self) -> None:
    object.__setattr__(self, "factor", checks.real("factor", self.factor))


@dataclasses.dataclass(frozen=True, init=False)
class Sequential:
  """Blocks applied one after the other."""
  blocks: tuple[Block, ...]

  def __init__(self, *blocks: Block):
    object.__setattr__(self, "blocks", tuple(_block(f"blocks[{i}]", b)
                                             for i, b in enumerate(blocks)))


@dataclasses.dataclass(frozen=True)
class Repeat:
  """``block`` applied ``times`` times (equal blocks with independent weights).

  Attributes:
    block: the repeated block.
    times: how many (``>= 0``).
  """
  block: Block
  times: int

  def __post_init__(self) -> None:
    _block("block", self.block)
    object.__setattr__(self, "times", checks.non_negative_int("times", self.times))


@dataclasses.dataclass(frozen=True, init=False)
class Sum:
  """``sum_i w_i B_i(x)`` of uncorrelated branches: ``K -> sum_i w_i^2 K_i``.

  All branches but at most one must end in a :class:`Dense` layer (or in a
  sum or concatenation of such): the zero-mean weights make them
  uncorrelated with each other.

  Attributes:
    branches: the branches (blocks).
    weights: one non-negative weight per branch.
  """
  branches: tuple[Block, ...]
  weights: tuple[float, ...]

  def __init__(self, *branches: Block, weights: Any):
    branches = tuple(_block(f"branches[{i}]", b) for i, b in enumerate(branches))
    if not branches:
      raise ValueError("Sum needs at least one branch")
    weights = tuple(_weight(f"weights[{i}]", w) for i, w in enumerate(np.ravel(weights)))
    if len(weights) != len(branches):
      raise ValueError(f"weights must have one entry per branch ({len(branches)}), got "
                       f"{len(weights)}")
    correlated = [i for i, b in enumerate(branches) if not _ends_in_dense(b)]
    if len(correlated) > 1:
      raise ValueError(f"branches {correlated} of a Sum do not end in a Dense layer, so their "
                       "outputs are correlated and the kernel map of their sum is not "
                       "the weighted sum of theirs; end all but one branch with Dense")
    object.__setattr__(self, "branches", branches)
    object.__setattr__(self, "weights", weights)


def Residual(branch: Block, *, shortcut_weight: float = 1.0,  # noqa: N802 - a block constructor
             branch_weight: float | None = None, shortcut: Block | None = None) -> Sum:
  """A residual block ``ws * shortcut(x) + wb * branch(x)``: a :class:`Sum` of two branches.

  ``K -> ws^2 S(K) + wb^2 B(K)``. With ``branch_weight=None``,
  ``wb = sqrt(1 - ws^2)``, which keeps ``q`` when both paths keep it (the
  weighted shortcuts of DKS/TAT). ``jaxinit.models.ResMLP``'s
  ``x + alpha f(x)`` is ``shortcut_weight=1, branch_weight=alpha``.

  Args:
    branch: the residual branch; must end in a :class:`Dense` layer unless
      the shortcut does.
    shortcut_weight: ``ws``.
    branch_weight: ``wb``; ``None`` for ``sqrt(1 - ws^2)`` (then ``ws <= 1``).
    shortcut: the shortcut path; ``None`` for the identity.

  Returns:
    The block.
  """
  ws = _weight("shortcut_weight", shortcut_weight)
  if branch_weight is None:
    if ws > 1:
      raise ValueError(f"shortcut_weight must be <= 1 when branch_weight is None (the "
                       f"normalized sqrt(1 - ws^2)), got {ws}")
    branch_weight = math.sqrt(1 - ws * ws)
  return Sum(Identity() if shortcut is None else shortcut, branch,
             weights=(ws, branch_weight))


@dataclasses.dataclass(frozen=True, init=False)
class Concatenate:
  """Branches concatenated along the unit axis: ``K -> sum_i (n_i / n) K_i``.

  Attributes:
    branches: the branches.
    sizes: units per branch (relative sizes suffice); equal by default.
  """
  branches: tuple[Block, ...]
  sizes: tuple[float, ...]

  def __init__(self, *branches: Block, sizes: Any = None):
    branches = tuple(_block(f"branches[{i}]", b) for i, b in enumerate(branches))
    if not branches:
      raise ValueError("Concatenate needs at least one branch")
    sizes = (1.0,) * len(branches) if sizes is None else tuple(
        checks.real(f"sizes[{i}]", s, minimum=0.0, exclusive_minimum=True)
        for i, s in enumerate(np.ravel(sizes)))
    if len(sizes) != len(branches):
      raise ValueError(f"sizes must have one entry per branch ({len(branches)}), got "
                       f"{len(sizes)}")
    object.__setattr__(self, "branches", branches)
    object.__setattr__(self, "sizes", sizes)

  @property
  def fractions(self) -> tuple[float, ...]:
    total = sum(self.sizes)
    return tuple(s / total for s in self.sizes)


Block = Union[Dense, Activation, Identity, Scale, Sequential, Repeat, Sum, Concatenate]
_BLOCKS = (Dense, Activation, Identity, Scale, Sequential, Repeat, Sum, Concatenate)


def _block(name: str, value: Any) -> Block:
  if not isinstance(value, _BLOCKS):
    raise TypeError(f"{name} must be a network block ({', '.join(b.__name__ for b in _BLOCKS)}),"
                    f" got {type(value).__name__}")
  return value


def _ends_in_dense(block: Block) -> bool:
  if isinstance(block, Dense):
    return True
  if isinstance(block, Sequential):
    return bool(block.blocks) and _ends_in_dense(block.blocks[-1])
  if isinstance(block, Repeat):
    return block.times > 0 and _ends_in_dense(block.block)
  if isinstance(block, Scale):
    return False
  if isinstance(block, Sum):
    return all(_ends_in_dense(b) or w == 0 for b, w in zip(block.branches, block.weights))
  if isinstance(block, Concatenate):
    return all(_ends_in_dense(b) for b in block.branches)
  return False


# ----------------------------------------------------------------------------
# Builders.

def mlp(depth: int, weight_variance: float = 1.0, bias_variance: float = 0.0, *,
        readout: bool = True) -> Sequential:
  """The kernel-map shape of :class:`jaxinit.models.MLP` with ``depth`` hidden layers.

  ``Dense``, then ``depth - 1`` times ``(Activation, Dense)`` (the hidden
  pre-activations ``h^1 .. h^L``), then with ``readout`` one more
  ``(Activation, Dense)``: ``depth`` activations in all, the network a DKS
  or TAT transform is solved for.

  Args:
    depth: hidden layers ``L >= 1``.
    weight_variance: ``sw`` of every layer (1 for DKS/TAT).
    bias_variance: ``sb`` of every layer (0 for DKS/TAT).
    readout: include the readout layer.

  Returns:
    A :class:`Sequential` whose top-level steps are the layers.

  Examples:
    >>> from jaxinit import theory
    >>> float(theory.network_q_map(theory.mlp(10, 2.0), "relu", 1.5))    # He: q kept after h^1
    3.0
  """
  depth = checks.positive_int("depth", depth)
  dense = Dense(weight_variance, bias_variance)
  layer = Sequential(Activation(), dense)
  return Sequential(dense, Repeat(layer, depth - 1 + int(readout)))


def res_mlp(depth: int, branch_scale: float, weight_variance: float = 2.0,
            bias_variance: float = 0.0, *, readout: bool = False) -> Sequential:
  """The kernel-map shape of :class:`jaxinit.models.ResMLP`.

  Stem ``Dense``; ``depth`` blocks ``x + alpha f(x)`` with
  ``f = (Activation, Dense, Activation, Dense)``; with ``readout``,
  ``(Activation, Dense)``. The top-level steps of :func:`propagate` are the
  stem and then the stream after each block (what ResMLP's ``capture``
  returns as ``"preactivations"``).

  Args:
    depth: residual blocks.
    branch_scale: ``alpha``.
    weight_variance: ``sw`` of every layer (2: He init, ResMLP's default).
    bias_variance: ``sb`` of every layer (0: ResMLP's default zeros).
    readout: include the readout layer.

  Returns:
    A :class:`Sequential`.
  """
  depth = checks.positive_int("depth", depth)
  dense = Dense(weight_variance, bias_variance)
  branch = Sequential(Activation(), dense, Activation(), dense)
  blocks: list[Block] = [dense, Repeat(Residual(branch, shortcut_weight=1.0,
                                                branch_weight=branch_scale), depth)]
  if readout:
    blocks.append(Sequential(Activation(), dense))
  return Sequential(*blocks)


def resnet(blocks_per_group: tuple[int, ...] = (3, 4, 23, 3), shortcut_weight: float = 0.6,
           branch_depth: int = 3) -> Sequential:
  """The normalization-free ResNet of DKS/TAT, as a kernel-map shape (q-preserving layers).

  Per block: ``ws * shortcut(x) + sqrt(1 - ws^2) * branch(x)`` with
  ``branch_depth`` layers ``(Activation, Dense)`` in the branch, and a
  projection shortcut ``(Activation, Dense)`` in each group's first block;
  a final ``(Activation, Dense)`` readout. The defaults are ResNet-101's
  groups and the shortcut weight of dks's tests (Martens et al. 2021;
  Zhang et al. 2022).

  Args:
    blocks_per_group: blocks in each group.
    shortcut_weight: ``ws``.
    branch_depth: nonlinear layers per residual branch (3 in bottleneck blocks).

  Returns:
    A :class:`Sequential`.
  """
  layer = Sequential(Activation(), Dense())
  branch = Repeat(layer, checks.positive_int("branch_depth", branch_depth))
  blocks: list[Block] = []
  for i, count in enumerate(blocks_per_group):
    count = checks.positive_int(f"blocks_per_group[{i}]", count)
    blocks.append(Residual(branch, shortcut_weight=shortcut_weight, shortcut=layer))
    if count > 1:
      blocks.append(Repeat(Residual(branch, shortcut_weight=shortcut_weight), count - 1))
  return Sequential(*blocks, layer)


# ----------------------------------------------------------------------------
# Evaluation: one composition, several spaces.

class _Space:
  """How blocks act on a value: kernels, lengths, local C-maps or jets."""

  def activation(self, x: Any, block: Activation) -> Any:
    raise NotImplementedError

  def dense(self, x: Any, block: Dense) -> Any:
    raise NotImplementedError

  def scale(self, x: Any, factor2: float) -> Any:
    return jax.tree.map(lambda v: factor2 * v, x)

  def combine(self, weights2: tuple[float, ...], xs: list[Any]) -> Any:
    return jax.tree.map(lambda *vs: sum(w * v for w, v in zip(weights2, vs)), *xs)


def _apply(block: Block, x: Any, space: _Space) -> Any:
  if isinstance(block, Dense):
    return space.dense(x, block)
  if isinstance(block, Activation):
    return space.activation(x, block)
  if isinstance(block, Identity):
    return x
  if isinstance(block, Scale):
    return space.scale(x, block.factor ** 2)
  if isinstance(block, Sequential):
    for b in block.blocks:
      x = _apply(b, x, space)
    return x
  if isinstance(block, Repeat):
    for _ in range(block.times):
      x = _apply(block.block, x, space)
    return x
  if isinstance(block, Sum):
    return space.combine(tuple(w * w for w in block.weights),
                         [_apply(b, x, space) for b in block.branches])
  if isinstance(block, Concatenate):
    return space.combine(block.fractions, [_apply(b, x, space) for b in block.branches])
  raise TypeError(f"not a network block: {block!r}")


def steps(network: Block) -> Iterator[Block]:
  """The top-level steps of :func:`propagate`: a Sequential's blocks, a Repeat's repetitions."""
  for b in network.blocks if isinstance(network, Sequential) else (network,):
    if isinstance(b, Repeat):
      yield from (b.block for _ in range(b.times))
    else:
      yield b


class _KernelSpace(_Space):
  """``(q11, q22, q12)`` under the mean-field maps of real activations."""

  def __init__(self, activation: ActivationLike | None, params: dict[str, Any], num_nodes: int,
               num_nodes_2d: int, lengths_only: bool):
    self.default = activation
    self.params = params
    self.nodes = (num_nodes, num_nodes_2d)
    self.lengths_only = lengths_only

  def _kernels(self, block: Activation) -> kern.Kernels:
    if block.activation is None:
      if self.default is None:
        raise ValueError("the network has an Activation() without one and no activation "
                         "was given")
      return kern.kernels(self.default, self.params, *self.nodes)
    return kern.kernels(block.activation, {}, *self.nodes)

  def activation(self, x: Any, block: Activation) -> Any:
    k = self._kernels(block)
    if self.lengths_only:
      return k.vstats.numpy(1.0, 0.0, x)[0]
    return k.vcovariance.numpy(1.0, 0.0, *x)

  def dense(self, x: Any, block: Dense) -> Any:
    return jax.tree.map(lambda v: block.weight_variance * v + block.bias_variance, x)


class NetworkKernel(NamedTuple):
  """Kernels of two inputs at the input and after each top-level step (index 0: the input)."""
  q11: Array
  """Second moment of the first input's signal."""
  q22: Array
  """Second moment of the second input's signal."""
  q12: Array
  """Their covariance."""

  @property
  def c(self) -> Array:
    """Correlation ``q12 / sqrt(q11 q22)``."""
    return self.q12 / jnp.sqrt(self.q11 * self.q22)


def propagate(network: Block, activation: ActivationLike | None, q11: Any, q22: Any,
              q12: Any, *, num_nodes: int = DEFAULT_NODES, num_nodes_2d: int = DEFAULT_NODES_2D,
              **params: Any) -> NetworkKernel:
  """Kernels of two inputs through a network, step by step (mean-field, infinite width).

  The steps are the blocks of a top-level :class:`Sequential`, a top-level
  :class:`Repeat` counting once per repetition. Differentiable in the input
  kernel (every map is; under ``jit`` the composition unrolls).

  Args:
    network: a block (e.g. from :func:`mlp`, :func:`res_mlp`, :func:`resnet`).
    activation: the activation of its :class:`Activation` blocks (name or
      callable; ``None`` if every block names its own).
    q11, q22: the inputs' second moments ``x . x / n`` (scalars).
    q12: their inner product ``x1 . x2 / n``.
    num_nodes: 1-D quadrature nodes per half-line.
    num_nodes_2d: 2-D radial and angular (per sector) nodes.
    **params: bound to ``activation``.

  Returns:
    A :class:`NetworkKernel` of arrays of length ``steps + 1``.

  Examples:
    >>> from jaxinit import theory
    >>> k = theory.propagate(theory.res_mlp(3, 0.5), "relu", 1.0, 1.0, 0.0)
    >>> [round(float(v), 4) for v in k.q11]      # He init: (1 + alpha^2) per block
    [1.0, 2.0, 2.5, 3.125, 3.9062]
  """
  _block("network", network)
  q11 = eng.nonnegative("q11", q11)
  q22 = eng.nonnegative("q22", q22)
  q12 = eng.finite("q12", q12)
  if any(np.ndim(v) for v in (q11, q22, q12)):
    raise ValueError("propagate takes scalar input moments; use jax.vmap for many")
  if not eng.is_traced(q11, q22, q12) and abs(q12) > math.sqrt(q11 * q22) * (1 + 1e-6):
    raise ValueError(f"q12 must satisfy |q12| <= sqrt(q11 q22), got q11={q11}, q22={q22}, "
                     f"q12={q12}")
  k = _propagate(network, activation, q11, q22, q12, num_nodes, num_nodes_2d, params)
  return NetworkKernel(*(eng.output(v) for v in k))


def _propagate(network: Block, activation: ActivationLike | None, q11: Any, q22: Any, q12: Any,
               num_nodes: int, num_nodes_2d: int, params: dict[str, Any]) -> NetworkKernel:
  """:func:`propagate` with float64 numpy results for concrete inputs (for host glue)."""
  space = _KernelSpace(activation, params, num_nodes, num_nodes_2d, lengths_only=False)
  x = (q11, q22, q12)
  out = [x]
  for step in steps(network):
    x = _apply(step, x, space)
    out.append(x)
  xp = jnp if eng.is_traced(out) else np
  return NetworkKernel(*(xp.stack([xp.asarray(a) for a in v]) for v in zip(*out)))


def network_kernel_map(network: Block, activation: ActivationLike | None, q11: Any, q22: Any,
                       q12: Any, **kwargs: Any) -> tuple[Array, Array, Array]:
  """The network's output kernel ``(q11', q22', q12')`` for an input kernel (see :func:`propagate`).

  Examples:
    >>> from jaxinit import theory
    >>> [round(float(v), 5) for v in theory.network_kernel_map(theory.mlp(1, 2.0), "relu",
    ...                                                         0.5, 0.5, 0.0)]
    [1.0, 1.0, 0.31831]
  """
  k = propagate(network, activation, q11, q22, q12, **kwargs)
  return k.q11[-1], k.q22[-1], k.q12[-1]


def network_c_map(network: Block, activation: ActivationLike | None, c: Any, q: Any = 1.0,
                  **kwargs: Any) -> Array:
  """The network's C-map: output correlation of two inputs of length ``q`` and correlation ``c``.

  Args:
    network: a block.
    activation: its activation.
    c: input correlation (scalar).
    q: input length ``x . x / n``.
    **kwargs: as :func:`propagate`.

  Returns:
    ``q12' / sqrt(q11' q22')`` at the output.

  Examples:
    >>> from jaxinit import theory
    >>> round(float(theory.network_c_map(theory.mlp(1, 2.0), "relu", 0.0)), 6)    # 1 / pi
    0.31831
  """
  c = eng.correlation("c", c)
  q = eng.nonnegative("q", q)
  q11, q22, q12 = network_kernel_map(network, activation, q, q, c * q, **kwargs)
  return q12 / jnp.sqrt(q11 * q22)


def network_q_map(network: Block, activation: ActivationLike | None, q: Any, *,
                  num_nodes: int = DEFAULT_NODES, **params: Any) -> Array:
  """The network's Q-map: the output second moment for input second moment ``q`` (1-D maps only).

  Examples:
    >>> from jaxinit import theory
    >>> round(float(theory.network_q_map(theory.res_mlp(2, 1.0), "relu", 1.0)), 4)  # 2 (1 + 1)^2
    8.0
  """
  _block("network", network)
  q = eng.nonnegative("q", q)
  space = _KernelSpace(activation, params, num_nodes, DEFAULT_NODES_2D, lengths_only=True)
  return eng.output(_apply(network, q, space))


class _LocalCMapSpace(_Space):
  """Correlations in a q-preserving network: Activation -> a local C-map, Dense -> identity."""

  def __init__(self, local_c_map: Callable[[Any], Any]):
    self.local = local_c_map

  def activation(self, x: Any, block: Activation) -> Any:
    return self.local(x)

  def dense(self, x: Any, block: Dense) -> Any:
    return x

  def combine(self, weights2: tuple[float, ...], xs: list[Any]) -> Any:
    return sum(w * v for w, v in zip(weights2, xs))


def _check_normalized(network: Block) -> None:
  """ValueError unless every Dense is (1, 0), Sum weights' squares sum to 1, no Scale."""
  def visit(block: Block) -> None:
    if isinstance(block, Dense) and (block.weight_variance != 1 or block.bias_variance != 0):
      raise ValueError("composed C-maps need q-preserving layers: Dense(weight_variance=1, "
                       f"bias_variance=0), got {block}")
    if isinstance(block, Scale):
      raise ValueError("composed C-maps need q-preserving layers, got a Scale block")
    if isinstance(block, Sum) and abs(sum(w * w for w in block.weights) - 1) > 1e-12:
      raise ValueError("composed C-maps need q-preserving sums: the squared weights must sum "
                       f"to 1, got {block.weights}")
    for child in _children(block):
      visit(child)
  visit(network)


def _children(block: Block) -> tuple[Block, ...]:
  if isinstance(block, Sequential):
    return block.blocks
  if isinstance(block, Repeat):
    return (block.block,)
  if isinstance(block, (Sum, Concatenate)):
    return block.branches
  return ()


def composed_c_map(network: Block, local_c_map: Callable[[Any], Any], c: Any) -> Any:
  """The C-map of a q-preserving network whose nonlinear layers have the local C-map given.

  Each :class:`Activation` applies ``local_c_map`` (the C-map of one
  activation at ``q = 1``, with ``Q(1) = 1``), :class:`Dense` layers
  (``sw = 1, sb = 0``) leave correlations alone, sums and concatenations
  average their branches' (Martens et al. 2021, section 4). ``c`` may be a
  float or an array (or anything ``local_c_map`` accepts).

  Raises:
    ValueError: a layer that does not keep ``q``.

  Examples:
    >>> from jaxinit import theory
    >>> theory.composed_c_map(theory.mlp(3), lambda c: 0.5 + 0.5 * c, 0.0)
    0.875
  """
  _check_normalized(network)
  return _apply(network, c, _LocalCMapSpace(local_c_map))


class _Jet(NamedTuple):
  value: float
  slope: float
  curvature: float


class _JetSpace(_LocalCMapSpace):
  """Value, slope and curvature at ``c = 1`` through the composition (chain rule)."""

  def __init__(self, slope: float, curvature: float):
    super().__init__(self._local)
    self.s, self.k = slope, curvature

  def _local(self, x: _Jet) -> _Jet:
    return _Jet(1.0, self.s * x.slope, self.k * x.slope**2 + self.s * x.curvature)

  def combine(self, weights2: tuple[float, ...], xs: list[Any]) -> Any:
    return _Jet(*(sum(w * v[i] for w, v in zip(weights2, xs)) for i in range(3)))


def c_map_derivatives(network: Block, slope: float, curvature: float = 0.0) -> tuple[float, float]:
  """``(C_f'(1), C_f''(1))`` of a q-preserving network from its local C-maps' ``C'(1), C''(1)``.

  Every local C-map has ``C(1) = 1``, so the chain rule gives
  ``(r o g)'(1) = r'(1) g'(1)`` and ``(r o g)''(1) = r''(1) g'(1)^2 + r'(1)
  g''(1)``, and sums average. DKS's maximal slope function and TAT's maximal
  curvature function (Martens et al. 2021, section 5; Zhang et al. 2022,
  section 4) are this over :func:`subnetworks`.

  Examples:
    >>> from jaxinit import theory
    >>> theory.c_map_derivatives(theory.mlp(3), 1.1, 0.2)
    (1.3310000000000004, 0.8010200000000002)
  """
  _check_normalized(network)
  jet = _apply(network, _Jet(1.0, 1.0, 0.0), _JetSpace(float(slope), float(curvature)))
  return jet.slope, jet.curvature


def subnetworks(network: Block) -> tuple[Block, ...]:
  """The network and, recursively, each non-identity branch of its sums and concatenations.

  A branch is taken alone, as a network fed the input (for a ResNet: the
  whole network and one residual branch; TAT's subnetwork maximizing
  function, as dks's tests define it). Equal branches (e.g. those of a
  :class:`Repeat`) appear once.

  Examples:
    >>> from jaxinit import theory
    >>> len(theory.subnetworks(theory.resnet()))   # the network, the branch, the projection
    3
  """
  found: dict[Block, None] = {network: None}

  def visit(block: Block) -> None:
    if isinstance(block, (Sum, Concatenate)):
      for branch in block.branches:
        if not isinstance(branch, Identity) and branch not in found:
          found[branch] = None
    for child in _children(block):
      visit(child)

  visit(network)
  return tuple(found)


# ----------------------------------------------------------------------------
# Plain networks layer by layer.

class LayerPrediction(NamedTuple):
  """Mean-field second moments layer by layer; index ``l`` is layer ``l`` (0: the input)."""
  q1: Array
  """``q^l`` of the first input (``|x1|^2 / n`` at ``l = 0``)."""
  q2: Array
  """``q^l`` of the second input."""
  c: Array
  """Correlation ``q12^l / sqrt(q1^l q2^l)``."""


def predict_layers(activation: ActivationLike, weight_variance: Any, bias_variance: Any,
                   depth: int, q0: Any = 1.0, c0: Any = 1.0, *,
                   num_nodes: int = DEFAULT_NODES, num_nodes_2d: int = DEFAULT_NODES_2D,
                   **params: Any) -> LayerPrediction:
  r"""Predicted ``q^l``, ``c^l`` (``l = 0..depth``) for two inputs of length ``q0``, cosine ``c0``.

  ``h^1 = W^1 x + b^1`` gives ``q^1 = sw q^0 + sb`` and
  ``q12^1 = sw q12^0 + sb``; deeper layers apply :func:`covariance_map`
  (:func:`propagate` through :func:`mlp` without readout; under ``jit`` it
  unrolls). Compare with measured ``mean_i (h^l_i)^2`` and the cosine of two
  inputs' pre-activations.

  Args:
    activation: name or traceable elementwise callable.
    weight_variance: ``sw`` (scalar).
    bias_variance: ``sb`` (scalar).
    depth: number of layers ``L >= 1``.
    q0: ``x . x / n`` of the inputs.
    c0: their cosine similarity.
    num_nodes: 1-D nodes per half-line.
    num_nodes_2d: 2-D radial and angular (per sector) nodes.
    **params: bound to the activation.

  Returns:
    A :class:`LayerPrediction` of arrays of length ``depth + 1``.

  Examples:
    >>> from jaxinit import theory
    >>> p = theory.predict_layers("relu", 2.0, 0.0, 3, q0=1.0, c0=0.0)
    >>> [round(float(v), 4) for v in p.c]
    [0.0, 0.0, 0.3183, 0.4937]
  """
  q0 = eng.nonnegative("q0", q0)
  c0 = eng.correlation("c0", c0)
  return _predict(activation, weight_variance, bias_variance, depth, q0, q0, c0 * q0,
                  num_nodes, num_nodes_2d, params)


def predict_layers_from_inputs(activation: ActivationLike, weight_variance: Any,
                               bias_variance: Any, depth: int, x1: Any, x2: Any, *,
                               num_nodes: int = DEFAULT_NODES,
                               num_nodes_2d: int = DEFAULT_NODES_2D,
                               **params: Any) -> LayerPrediction:
  r"""As :func:`predict_layers`, from two input vectors (``q^0_ab = x_a . x_b / n``).

  Args:
    activation: name or traceable elementwise callable.
    weight_variance: ``sw`` (scalar).
    bias_variance: ``sb`` (scalar).
    depth: number of layers ``L >= 1``.
    x1, x2: input vectors of the same length ``n``.
    num_nodes: 1-D nodes per half-line.
    num_nodes_2d: 2-D radial and angular (per sector) nodes.
    **params: bound to the activation.

  Returns:
    A :class:`LayerPrediction` of arrays of length ``depth + 1``.

  Examples:
    >>> import numpy as np
    >>> from jaxinit import theory
    >>> p = theory.predict_layers_from_inputs("relu", 2.0, 0.0, 2, np.ones(4), -np.ones(4))
    >>> [round(float(v), 5) for v in p.c]     # relu(u) relu(-u) = 0
    [-1.0, -1.0, 0.0]
  """
  x1 = eng.finite("x1", x1)
  x2 = eng.finite("x2", x2)
  if x1.ndim != 1 or x1.shape != x2.shape or x1.size == 0:
    raise ValueError(f"x1 and x2 must be non-empty vectors of one length, got shapes "
                     f"{x1.shape} and {x2.shape}")
  n = x1.size
  return _predict(activation, weight_variance, bias_variance, depth, x1 @ x1 / n,
                  x2 @ x2 / n, x1 @ x2 / n, num_nodes, num_nodes_2d, params)


def _predict(activation: ActivationLike, weight_variance: Any, bias_variance: Any,
             depth: int, q11: Any, q22: Any, q12: Any, num_nodes: int,
             num_nodes_2d: int, params: dict[str, Any]) -> LayerPrediction:
  sw, sb = kern.variances(weight_variance, bias_variance)
  depth = checks.positive_int("depth", depth)
  if any(np.ndim(v) for v in (sw, sb, q11, q22, q12)):
    raise ValueError("predict_layers takes scalar variances and input moments; "
                     "use jax.vmap for many")
  net = mlp(depth, sw, sb, readout=False)
  k = propagate(net, activation, q11, q22, q12, num_nodes=num_nodes, num_nodes_2d=num_nodes_2d,
                **params)
  return LayerPrediction(k.q11, k.q22, k.c)
