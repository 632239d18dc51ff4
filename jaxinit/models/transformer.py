r"""A small transformer, defined once as a Flax NNX module: pre-LN, post-LN (DeepNorm) or no LN.

:class:`Transformer` embeds tokens (``tok``) and positions (``pos``) (their
sum times ``embedding_scale``), runs ``depth`` blocks of multi-head
self-attention (``attn``) and a GELU MLP (``mlp``: ``fc``, then ``proj``) and
reads out with a linear ``head`` at every position. The blocks are
created with ``nnx.vmap`` over split RNG streams (each block one initializer
draw) and run with ``nnx.scan``, so compile time does not grow with depth.
With ``a`` the shortcut multiplier and ``b`` the branch multiplier, a
sub-layer ``G`` (attention, then the MLP) updates the residual stream ``x`` as

* ``norm="pre"`` (GPT-2, Xiong et al. 2020): ``x <- a x + b G(LN(x))``,
  and a final ``ln_f`` before the head;
* ``norm="post"`` (Vaswani et al. 2017): ``x <- LN(a x + b G(x))``; with
  ``a = (2N)^(1/4)`` this is DeepNorm (Wang et al. 2022, "DeepNet: Scaling
  Transformers to 1,000 Layers"; :func:`jaxinit.rules.schemes.deepnorm_constants`);
* ``norm="none"`` (T-Fixup, Huang et al. 2020, "Improving Transformer
  Optimization Through Better Initialization"): ``x <- a x + b G(x)``.

Initialization is the model level's job: the module is built with Flax's
defaults and a rule set draws the parameters::

  model = jaxinit.initialize(nnx.eval_shape(lambda: Transformer(..., rngs=nnx.Rngs(0))),
                             schemes.deepnorm(beta), key)

Parameter paths (what the schemes' globs address): ``tok/embedding``,
``pos/embedding``, ``ln_embed/*`` (with ``embedding_norm``),
``blocks/{ln1,ln2}/{scale,bias}``, ``blocks/attn/{query,key,value,out}/{kernel,bias}``,
``blocks/mlp/{fc,proj}/{kernel,bias}``, ``ln_f/*`` (pre-LN) and
``head/{kernel,bias}``; the ``blocks/...`` ones stacked on a leading depth
axis. :func:`~jaxinit.rules.schemes.gpt2`, :func:`~jaxinit.rules.schemes.tfixup`,
:func:`~jaxinit.rules.schemes.deepnorm`, :func:`~jaxinit.rules.schemes.small_embedding`
and :func:`~jaxinit.rules.schemes.zero_head` reach them with their default globs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import DTypeLike

from jaxinit import checks, gains

Activation = Callable[[jax.Array], jax.Array]

NORMS: tuple[str, ...] = ("pre", "post", "none")
"""Where a :class:`Transformer` puts its LayerNorms."""


class FeedForward(nnx.Module):
  """The MLP sub-layer: ``proj(phi(fc(x)))``."""

  def __init__(self, width: int, hidden: int, *, use_bias: bool, param_dtype: DTypeLike,
               rngs: nnx.Rngs) -> None:
    self.fc = nnx.Linear(width, hidden, use_bias=use_bias, param_dtype=param_dtype, rngs=rngs)
    self.proj = nnx.Linear(hidden, width, use_bias=use_bias, param_dtype=param_dtype,
                           rngs=rngs)

  def __call__(self, x: jax.Array, phi: Activation) -> jax.Array:
    return self.proj(phi(self.fc(x)))


class Block(nnx.Module):
  """One block: ``ln1``, ``attn``, ``ln2``, ``mlp`` (no LayerNorms with ``norm="none"``)."""

  def __init__(self, width: int, heads: int, mlp_width: int, *, norm: str, use_bias: bool,
               param_dtype: DTypeLike, rngs: nnx.Rngs) -> None:
    def layer_norm() -> nnx.LayerNorm | None:
      return (None if norm == "none" else
              nnx.LayerNorm(width, param_dtype=param_dtype, rngs=rngs))

    self.ln1 = layer_norm()
    self.attn = nnx.MultiHeadAttention(heads, width, use_bias=use_bias, decode=False,
                                       param_dtype=param_dtype, keep_rngs=False, rngs=rngs)
    self.ln2 = layer_norm()
    self.mlp = FeedForward(width, mlp_width, use_bias=use_bias, param_dtype=param_dtype,
                           rngs=rngs)


class Transformer(nnx.Module):
  """A transformer encoder (or, ``causal=True``, decoder-only LM) over token sequences.

  Args:
    vocab_size: tokens are ints in ``[0, vocab_size)``.
    width: ``d``, the residual stream's width.
    depth: ``N``, the number of blocks (``>= 1``).
    heads: attention heads (``width`` must be a multiple).
    max_length: the longest sequence (rows of the position embedding).
    out_features: the head's outputs per position (default ``vocab_size``).
    mlp_width: the MLP's hidden width (default ``4 * width``).
    norm: ``"pre"``, ``"post"`` or ``"none"`` (see the module docstring).
    shortcut_scale: ``a``, the shortcut's multiplier (DeepNorm's ``alpha``).
    branch_scale: ``b``, each sub-layer's output multiplier.
    causal: mask attention to earlier positions (a decoder-only LM).
    embedding_scale: multiplies the summed token and position embeddings
      (fairseq's ``sqrt(d)``, which T-Fixup's and DeepNet's ``N(0, 1/d)``
      embeddings assume).
    embedding_norm: a LayerNorm (``ln_embed``) right after the embeddings
      (BERT; what small-init embeddings assume).
    activation: the MLP's activation, a name or an elementwise callable.
    use_bias: whether the linear layers have biases.
    param_dtype: dtype of the parameters.
    rngs: Flax RNG streams (``params``).

  Raises:
    ValueError: a bad size, ``norm`` or scale (naming the argument).

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from jaxinit.models import Transformer
    >>> model = Transformer(vocab_size=11, width=16, depth=3, heads=2, max_length=8,
    ...                     norm="post", rngs=nnx.Rngs(0))
    >>> model.blocks.attn.value.kernel.shape      # stacked: (depth, width, heads, head_dim)
    (3, 16, 2, 8)
    >>> logits, inter = model(jnp.zeros((4, 8), jnp.int32), capture=True)
    >>> logits.shape, inter["preactivations"].shape, inter["embedding"].shape
    ((4, 8, 11), (3, 4, 8, 16), (4, 8, 16))
  """

  def __init__(self, vocab_size: int, width: int, depth: int, heads: int, *, max_length: int,
               out_features: int | None = None, mlp_width: int | None = None,
               norm: str = "pre", shortcut_scale: float = 1.0, branch_scale: float = 1.0,
               causal: bool = False, embedding_scale: float = 1.0,
               embedding_norm: bool = False,
               activation: str | Activation = "gelu", use_bias: bool = True,
               param_dtype: DTypeLike = jnp.float32, rngs: nnx.Rngs) -> None:
    vocab_size = checks.positive_int("vocab_size", vocab_size)
    width = checks.positive_int("width", width)
    depth = checks.positive_int("depth", depth)
    heads = checks.positive_int("heads", heads)
    if width % heads:
      raise ValueError(f"width ({width}) must be a multiple of heads ({heads})")
    self.max_length = checks.positive_int("max_length", max_length)
    out_features = vocab_size if out_features is None else checks.positive_int(
        "out_features", out_features)
    mlp_width = 4 * width if mlp_width is None else checks.positive_int("mlp_width", mlp_width)
    self.norm = checks.choice("norm", norm, NORMS)
    self.shortcut_scale = checks.real("shortcut_scale", shortcut_scale)
    self.branch_scale = checks.real("branch_scale", branch_scale)
    self.causal = checks.boolean("causal", causal)
    self.embedding_scale = checks.real("embedding_scale", embedding_scale)
    gains.resolve_activation(activation)  # an unknown name fails here
    self.activation = activation
    self.depth = depth
    common = dict(param_dtype=param_dtype, rngs=rngs)
    self.tok = nnx.Embed(vocab_size, width, **common)
    self.pos = nnx.Embed(self.max_length, width, **common)
    self.ln_embed = (nnx.LayerNorm(width, **common)
                     if checks.boolean("embedding_norm", embedding_norm) else None)

    # One Block per split RNG stream, stacked on a leading depth axis: each block is its
    # own initializer draw (never one draw for a (depth, ...) tensor).
    @nnx.split_rngs(splits=depth)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def blocks(r: nnx.Rngs) -> Block:
      return Block(width, heads, mlp_width, norm=self.norm, use_bias=use_bias,
                   param_dtype=param_dtype, rngs=r)

    self.blocks = blocks(rngs)
    self.ln_f = nnx.LayerNorm(width, **common) if self.norm == "pre" else None
    self.head = nnx.Linear(width, out_features, use_bias=use_bias, **common)

  def __call__(self, tokens: jax.Array, *, capture: bool = False,
               perturbations: jax.Array | None = None) -> Any:
    """Runs the model on ``tokens`` of shape ``(..., length)``.

    Args:
      tokens: int tokens, ``length <= max_length``; any leading batch shape.
      capture: also return the per-layer token representations.
      perturbations: optional ``(depth, ..., length, width)`` array added to
        each block's output (its gradient is the gradient with respect to
        the residual stream, as the probes take it).

    Returns:
      Logits ``(..., length, out_features)``; with ``capture``, ``(logits,
      {"embedding": (..., length, width), "preactivations": (depth, ...,
      length, width)})``: the stream entering the first block and leaving
      each block (for :func:`jaxinit.probes.token_correlation`).

    Raises:
      ValueError: a sequence longer than ``max_length``.
    """
    length = tokens.shape[-1]
    if length > self.max_length:
      raise ValueError(f"tokens have length {length} > max_length {self.max_length}")
    phi = gains.resolve_activation(self.activation)
    x = self.embedding_scale * (self.tok(tokens) + self.pos(jnp.arange(length)))
    if self.ln_embed is not None:
      x = self.ln_embed(x)
    mask = nnx.make_causal_mask(tokens) if self.causal else None
    a, b, norm = self.shortcut_scale, self.branch_scale, self.norm

    def sublayer(x: jax.Array, ln: nnx.LayerNorm | None, fn: Any) -> jax.Array:
      if norm == "pre":
        return a * x + b * fn(ln(x))
      y = a * x + b * fn(x)
      return ln(y) if norm == "post" else y

    def block(x: jax.Array, blk: Block, eps: jax.Array | None) -> tuple[jax.Array, Any]:
      x = sublayer(x, blk.ln1, lambda h: blk.attn(h, mask=mask))
      x = sublayer(x, blk.ln2, lambda h: blk.mlp(h, phi))
      x = x if eps is None else x + eps
      return x, x if capture else None

    embedding = x
    scan = nnx.scan(block, in_axes=(nnx.Carry, 0, 0), out_axes=(nnx.Carry, 0))
    x, streams = scan(x, self.blocks, perturbations)
    if self.ln_f is not None:
      x = self.ln_f(x)
    logits = self.head(x)
    if not capture:
      return logits
    return logits, {"embedding": embedding, "preactivations": streams}


__all__ = ["NORMS", "Block", "FeedForward", "Transformer"]
