"""Published whole-model initialization schemes as rule sets.

Each function returns a :class:`~jaxinit.rules.RuleSet` over the built-in
layers of Flax NNX, Flax linen and Equinox (named by import path, so nothing
is imported until a model is given) plus path globs for the parts only names
identify (residual projections, heads). Schemes compose with ``+``: the left
one's rules come first (``zero_head() + pytorch()``).

What a scheme is about is required, in named groups (:class:`~jaxinit.rules.Rule`
``group``): the head of ``zero_head``, the residual projections of ``gpt2``,
the branches of ``fixup``, at least one layer a whole-model scheme such as
``pytorch`` knows. A group none of whose rules matches is reported (a
warning; an error with ``strict=True``) with the model's nearest paths, so
``zero_head()`` on a model whose head is ``lm_head`` says so instead of doing
nothing. The rest (biases, norms, layers of the other frameworks, parts a
variant of the architecture may lack, such as a learned position embedding)
is optional.

Every scheme's docstring gives the formula and its source. Parameters a
scheme does not name keep the model's values unless you add a ``default``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import NamedTuple

from jaxinit import checks, presets
from jaxinit.base import Initializer
from jaxinit.initializers import scaled, variance_scaling
from jaxinit.rules.patterns import OfModule, Rule, RuleSet

__all__ = ["pytorch", "gpt2", "vit_jax", "fixup", "skipinit", "tfixup", "deepnorm",
           "DeepNormConstants", "deepnorm_constants", "small_embedding", "zero_head",
           "LINEAR", "CONV", "CONV_TRANSPOSE", "EMBED", "NORM", "ATTENTION"]

# The built-in layers by role (canonical import paths).
LINEAR = ("flax.nnx.nn.linear.Linear", "flax.nnx.nn.linear.LinearGeneral",
          "flax.nnx.nn.linear.Einsum", "flax.linen.linear.Dense",
          "flax.linen.linear.DenseGeneral", "flax.linen.linear.Einsum",
          "equinox.nn._linear.Linear")
CONV = ("flax.nnx.nn.linear.Conv", "flax.linen.linear.Conv", "flax.linen.linear.ConvLocal",
        "equinox.nn._conv.Conv")
CONV_TRANSPOSE = ("flax.nnx.nn.linear.ConvTranspose", "flax.linen.linear.ConvTranspose",
                  "equinox.nn._conv.ConvTranspose")
EMBED = ("flax.nnx.nn.linear.Embed", "flax.linen.linear.Embed",
         "equinox.nn._embedding.Embedding")
NORM = tuple(f"flax.{api}.normalization.{name}" for api in ("nnx.nn", "linen")
             for name in ("LayerNorm", "RMSNorm", "BatchNorm", "GroupNorm")) + (
                 "equinox.nn._normalisation.LayerNorm", "equinox.nn._normalisation.RMSNorm",
                 "equinox.nn._normalisation.GroupNorm", "equinox.nn._batch_norm.BatchNorm")
ATTENTION = {"flax.nnx.nn.attention.MultiHeadAttention": ("query", "key", "value", "out"),
             "flax.linen.attention.MultiHeadDotProductAttention": ("query", "key", "value", "out"),
             "equinox.nn._attention.MultiheadAttention": ("query_proj", "key_proj", "value_proj",
                                                          "output_proj")}


def _weights(classes: Sequence[str], init: Initializer, group: str | None = None) -> list[Rule]:
  return [Rule(OfModule(c), init, required=group is not None, group=group) for c in classes]


def _params(classes: Sequence[str], param: str, init: Initializer) -> list[Rule]:
  return [Rule(OfModule(c, param), init, required=False) for c in classes]


def _require(rules: Sequence[Rule], group: str) -> list[Rule]:
  """``rules`` made one required group: at least one of them must match."""
  return [dataclasses.replace(r, required=True, group=group) for r in rules]


def _norms() -> list[Rule]:
  """Norm scales 1, biases 0 (every framework's default)."""
  return _weights(NORM, presets.ones) + _params(NORM, "bias", presets.zeros)


def _globs(globs: str | Sequence[str], init: Initializer, label: str | None = None,
           group: str | None = None) -> list[Rule]:
  """One rule per glob; with a ``group``, the globs are alternatives and one must match."""
  globs = (globs,) if isinstance(globs, str) else tuple(globs)
  return [Rule(g, init, label=label, required=group is not None, group=group) for g in globs]


def _attention(weights: dict[str, Initializer], bias: Initializer) -> list[Rule]:
  """Per-projection rules for every attention layer; ``weights`` keyed by q/k/v/out."""
  rules = []
  for cls, names in ATTENTION.items():
    suffix = "weight" if cls.startswith("equinox") else "kernel"
    for role, name in zip(("query", "key", "value", "out"), names):
      rules.append(Rule(OfModule(cls, f"{name}/{suffix}"), weights[role], required=False))
    rules.append(Rule(OfModule(cls, "*bias"), bias, required=False))
  return rules


def pytorch() -> RuleSet:
  """PyTorch's default initialization of every layer, on a Flax or Equinox model.

  * Linear / Conv weights: ``kaiming_uniform_(a=sqrt(5))``, i.e.
    ``U(+-1/sqrt(fan_in))`` (variance ``1 / (3 fan_in)``); biases
    ``U(+-1/sqrt(fan_in))`` with the weight's ``fan_in``
    (``torch.nn.Linear.reset_parameters``, ``_ConvNd.reset_parameters``).
  * ConvTranspose: the same formulas, but torch computes its "fan_in" from
    dimension 1 of its ``(in, out/groups, *k)`` weight: ``out/groups *
    prod(k)``, the layer's fan-out.
  * Embedding: ``N(0, 1)`` (``torch.nn.Embedding.reset_parameters``).
  * LayerNorm / RMSNorm / BatchNorm / GroupNorm: weight 1, bias 0.
  * MultiheadAttention: torch's fused ``in_proj_weight`` ``(3E, E)`` is
    ``xavier_uniform_``: ``Var = 2 / (E + 3E) = 1 / (2E)`` for each of q, k,
    v (``0.5 / fan_in`` here); ``in_proj_bias`` and ``out_proj.bias`` 0;
    ``out_proj.weight`` keeps ``nn.Linear``'s default
    (``torch.nn.MultiheadAttention._reset_parameters``).

  The fans are the layer's own (module-aware), so a Flax ``(in, out)`` and
  an Equinox ``(out, in)`` kernel get the same distribution.
  """
  fan_in_uniform = variance_scaling(1.0 / 3.0, "fan_in", "uniform")
  fan_out_uniform = variance_scaling(1.0 / 3.0, "fan_out", "uniform")
  in_proj = variance_scaling(0.5, "fan_in", "uniform")
  rules = _attention({"query": in_proj, "key": in_proj, "value": in_proj,
                      "out": fan_in_uniform}, presets.zeros)
  rules += _weights(LINEAR + CONV, fan_in_uniform) + _params(LINEAR + CONV, "bias",
                                                            fan_in_uniform)
  rules += _weights(CONV_TRANSPOSE, fan_out_uniform) + _params(CONV_TRANSPOSE, "bias",
                                                              fan_out_uniform)
  rules += _weights(EMBED, presets.normal(1.0)) + _norms()
  return RuleSet(tuple(_require(rules, "pytorch: a layer it initializes")))


def gpt2(num_layers: int,
         residual: str | Sequence[str] = ("*attn/out/kernel", "*mlp/proj/kernel", "*c_proj/kernel"),
         position: str | Sequence[str] = ("*pos*", "*wpe*"), stddev: float = 0.02) -> RuleSet:
  """GPT-2 (Radford et al. 2019): ``N(0, 0.02)`` weights, residual projections at
  ``0.02 / sqrt(2 L)``.

  * every Linear / Conv / attention weight and the token embedding:
    ``N(0, stddev^2)``, ``stddev = 0.02`` (openai/gpt-2 ``model.py``:
    ``conv1d`` and ``wte``);
  * the position embedding: ``N(0, 0.01^2)`` (``wpe`` in ``model.py``);
  * the output projections of each residual branch (attention ``c_proj``,
    MLP ``c_proj``): ``N(0, (stddev / sqrt(2 L))^2)``, ``L`` the number of
    blocks, two residual adds per block (paper sec. 2.3: "scale the weights
    of residual layers at initialization by a factor of 1/sqrt(N) where N
    is the number of residual layers"; the ``2 L`` and the use of 0.02 are
    those of HuggingFace's ``GPT2PreTrainedModel._init_weights``);
  * biases 0, LayerNorm 1 / 0.

  Args:
    num_layers: ``L``, the number of transformer blocks.
    residual: path globs of the residual output projections' kernels (default:
      Flax's MultiHeadAttention ``out``, an MLP's ``proj`` and GPT-2's own
      ``c_proj``). The group is satisfied when one glob serves: name every
      projection your model has.
    position: path globs of the position embedding (``pos*``, GPT-2's ``wpe``).
    stddev: the base standard deviation.
  """
  num_layers = checks.positive_int("num_layers", num_layers)
  stddev = checks.real("stddev", stddev, minimum=0.0)
  base = presets.normal(stddev)
  rules = _globs(residual, presets.depth_scaled(base, num_layers, "gpt2"),
                 group="gpt2: residual projections")
  rules += _globs(position, presets.normal(0.01))
  rules += _weights(LINEAR + CONV + EMBED + tuple(ATTENTION), base, group="gpt2: weights")
  rules += _norms() + _globs("*bias", presets.zeros)
  return RuleSet(tuple(rules))


def vit_jax(head: str | Sequence[str] = ("head/*", "*/head/*"),
            mlp: str | Sequence[str] = ("*mlp*", "*Mlp*"),
            position: str | Sequence[str] = ("*pos_embedding*", "*pos_embed*"),
            cls_token: str | Sequence[str] = ("*cls*",)) -> RuleSet:
  """The ViT "jax" scheme of big_vision (and timm's ``init_weights_vit_jax``).

  * head kernel and bias: 0 (big_vision ``vit.py``, ``head_zeroinit=True``);
  * MLP block Dense kernels: ``xavier_uniform``, biases ``N(0, 1e-6^2)``
    (``MlpBlock``);
  * attention q/k/v/out kernels: ``xavier_uniform``, biases 0;
  * the patch-embedding convolution: ``lecun_normal`` (Flax's default),
    bias 0;
  * learned position embedding: ``N(0, 1/width)`` (big_vision
    ``get_posemb``: ``normal(stddev=1/sqrt(width))``; the fan-out of
    a ``(1, tokens, width)`` table); class token 0;
  * other Dense kernels ``xavier_uniform``, biases 0; LayerNorm 1 / 0.

  timm differs in two places: position embeddings ``trunc_normal(0.02)``
  and a class token ``N(0, 1e-6)``.
  """
  xavier = presets.glorot_uniform()
  rules = _globs(head, presets.zeros, label="head", group="vit_jax: head")
  mlps = (mlp,) if isinstance(mlp, str) else tuple(mlp)
  rules += _globs([g + "/kernel" for g in mlps], xavier, group="vit_jax: MLP kernels")
  rules += [Rule(g + "/bias", presets.normal(1e-6), required=False) for g in mlps]
  rules += _attention({k: xavier for k in ("query", "key", "value", "out")}, presets.zeros)
  rules += _globs(position, variance_scaling(1.0, "fan_out", "normal"))
  rules += _globs(cls_token, presets.zeros)
  rules += _weights(CONV, presets.lecun_normal()) + _weights(LINEAR, xavier)
  rules += _norms() + _globs("*bias", presets.zeros)
  return RuleSet(tuple(rules))


def fixup(num_branches: int, branch_layers: int, *, branch: str | Sequence[str],
          last: str | Sequence[str], head: str | Sequence[str] = ("head/*", "*/head/*"),
          scalar_biases: str | Sequence[str] = ("*fixup_bias*",),
          multipliers: str | Sequence[str] = ("*fixup_scale*",),
          base: Initializer | None = None) -> RuleSet:
  """Fixup (Zhang, Dauphin, Ma 2019, "Fixup Initialization", sec. 3).

  For a residual network of ``L`` branches of ``m`` layers each:

  1. the classification layer and the last layer of each residual branch: 0;
  2. every other layer of a branch: the standard (He) init times
     ``L^(-1 / (2m - 2))``;
  3. scalar biases (before each layer and activation) 0, one scalar
     multiplier per branch 1.

  Args:
    num_branches: ``L``.
    branch_layers: ``m >= 2``.
    branch: path globs of the kernels of the branch layers except the last.
    last: path globs of the last layer of each branch (kernel and bias).
    head: path globs of the classifier (kernel and bias).
    scalar_biases: globs of the scalar biases.
    multipliers: globs of the scalar multipliers.
    base: the "standard" init (default ``he_normal()``; the paper's code
      uses ``N(0, 2 / (out * prod(k)))``, i.e. ``he_normal(mode="fan_out")``).
  """
  num_branches = checks.positive_int("num_branches", num_branches)
  branch_layers = checks.integer("branch_layers", branch_layers, minimum=2)
  base = presets.he_normal() if base is None else base
  rules = _globs(head, presets.zeros, label="head", group="fixup: head")
  rules += _globs(last, presets.zeros, group="fixup: last layer of each branch")
  rules += _globs(branch, presets.depth_scaled(base, num_branches, "fixup",
                                               branch_layers=branch_layers),
                  group="fixup: branch layers")
  rules += _globs(scalar_biases, presets.zeros) + _globs(multipliers, presets.ones)
  return RuleSet(tuple(rules))


def skipinit(alphas: str | Sequence[str] = ("*skip*",), value: float = 0.0) -> RuleSet:
  """SkipInit (De & Smith 2020, "Batch Normalization Biases Residual Blocks Towards the
  Identity Function"): each residual branch ends in a learnable scalar ``alpha``
  initialized to 0 (or a small constant), so every block is the identity at init.

  Args:
    alphas: path globs of the scalar multipliers.
    value: their initial value.
  """
  return RuleSet(tuple(_globs(alphas, presets.constant(checks.real("value", value)),
                              group="skipinit: branch scalars")))


def tfixup(num_layers: int, *, kind: str = "decoder",
           embeddings: str | Sequence[str] | None = None,
           value: str | Sequence[str] = ("*value/kernel", "*v_proj/kernel"),
           out: str | Sequence[str] = ("*attn/out/kernel", "*out_proj/kernel"),
           mlp: str | Sequence[str] = ("*mlp/*kernel", "*fc*/kernel", "*proj/kernel")) -> RuleSet:
  """T-Fixup (Huang, Perez, Ba, Volkovs 2020, "Improving Transformer Optimization
  Through Better Initialization", Algorithm 1), for a stack without LayerNorm or warmup.

  1. Xavier (uniform) for every weight except the input embeddings, which are
     ``N(0, d^-1)`` (standard deviation ``d^-1/2``, ``d`` the embedding width);
  2. decoder: the attention value and output projections ``v_d, w_d``, the MLP
     weights and the input embeddings are scaled by ``(9N)^(-1/4)``;
  3. encoder: ``v_e, w_e`` and the MLP weights by ``0.67 N^(-1/4)`` (the
     embeddings by ``(9N)^(-1/4)``, as in step 2);

  ``N`` is the number of layers of the stack. Biases 0.

  Args:
    num_layers: ``N``.
    kind: ``"decoder"`` (also decoder-only LMs) or ``"encoder"``.
    embeddings: path globs of the input embeddings (default: every Embed layer).
    value, out, mlp: path globs of the scaled kernels.
  """
  n = checks.positive_int("num_layers", num_layers)
  kind = checks.choice("kind", kind, ("decoder", "encoder"))
  embed_factor = (9.0 * n) ** -0.25
  layer_factor = embed_factor if kind == "decoder" else 0.67 * n ** -0.25
  xavier = presets.glorot_uniform()
  embed = scaled(variance_scaling(1.0, "fan_in", "normal"), embed_factor)
  rules = (_globs(embeddings, embed, group="tfixup: embeddings") if embeddings is not None
           else _weights(EMBED, embed))
  for globs, part in ((value, "value"), (out, "output"), (mlp, "MLP")):
    rules += _globs(globs, scaled(xavier, layer_factor), group=f"tfixup: {part} projections")
  rules += _weights(LINEAR + CONV + tuple(ATTENTION), xavier)
  rules += _norms() + _globs("*bias", presets.zeros)
  return RuleSet(tuple(rules))


class DeepNormConstants(NamedTuple):
  """DeepNorm's residual weight ``alpha`` and init gain ``beta`` per stack (NaN: no such stack)."""
  encoder_alpha: float
  encoder_beta: float
  decoder_alpha: float
  decoder_beta: float


def deepnorm_constants(encoder_layers: int = 0, decoder_layers: int = 0) -> DeepNormConstants:
  """DeepNet's constants (Wang et al. 2022, "DeepNet: Scaling Transformers to 1,000
  Layers", Table 1), for ``x_{l+1} = LN(alpha x_l + G(x_l))``:

  * encoder-only (``N`` layers): ``alpha = (2N)^(1/4)``, ``beta = (8N)^(-1/4)``;
  * decoder-only (``M`` layers): ``alpha = (2M)^(1/4)``, ``beta = (8M)^(-1/4)``;
  * encoder-decoder: encoder ``alpha = 0.81 (N^4 M)^(1/16)``,
    ``beta = 0.87 (N^4 M)^(-1/16)``; decoder ``alpha = (3M)^(1/4)``,
    ``beta = (12M)^(-1/4)``.

  Examples:
    >>> c = deepnorm_constants(encoder_layers=6)
    >>> round(c.encoder_alpha, 4), round(c.encoder_beta, 4)
    (1.8612, 0.3799)
  """
  n = checks.non_negative_int("encoder_layers", encoder_layers)
  m = checks.non_negative_int("decoder_layers", decoder_layers)
  if n == 0 and m == 0:
    raise ValueError("give encoder_layers and/or decoder_layers (positive ints)")
  nan = math.nan
  if m == 0:
    return DeepNormConstants((2 * n) ** 0.25, (8 * n) ** -0.25, nan, nan)
  if n == 0:
    return DeepNormConstants(nan, nan, (2 * m) ** 0.25, (8 * m) ** -0.25)
  return DeepNormConstants(0.81 * (n**4 * m) ** (1 / 16), 0.87 * (n**4 * m) ** (-1 / 16),
                           (3 * m) ** 0.25, (12 * m) ** -0.25)


def deepnorm(beta: float, *, value: str | Sequence[str] = ("*value/kernel", "*v_proj/kernel"),
             out: str | Sequence[str] = ("*attn/out/kernel", "*out_proj/kernel"),
             mlp: str | Sequence[str] = ("*mlp/*kernel", "*fc*/kernel", "*proj/kernel")
             ) -> RuleSet:
  """DeepNorm's initialization (Wang et al. 2022, Algorithm / Figure 2): Xavier normal
  with gain ``beta`` for the MLP weights and the attention value and output projections,
  gain 1 for queries and keys (and every other weight); biases 0.

  ``beta`` comes from :func:`deepnorm_constants` (the residual weight ``alpha``
  belongs in the forward pass).
  """
  beta = checks.real("beta", beta, minimum=0.0, exclusive_minimum=True)
  xavier = variance_scaling(1.0, "fan_avg", "normal")  # torch's xavier_normal_: untruncated
  rules = []
  for globs, part in ((value, "value"), (out, "output"), (mlp, "MLP")):
    rules += _globs(globs, scaled(xavier, beta), group=f"deepnorm: {part} projections")
  rules += _weights(LINEAR + CONV + tuple(ATTENTION), xavier)
  rules += _norms() + _globs("*bias", presets.zeros)
  return RuleSet(tuple(rules))


def small_embedding(bound: float = 1e-4) -> RuleSet:
  """Small-init embeddings: ``U(-bound, bound)``, ``bound = 1e-4``, followed by a LayerNorm
  (Peng et al. 2023, RWKV, sec. 3.4 "Small Init Embedding": the embeddings move
  away from their tiny start fast and training converges faster)."""
  bound = checks.real("bound", bound, minimum=0.0, exclusive_minimum=True)
  return RuleSet(tuple(_weights(EMBED, presets.uniform(bound, symmetric=True),
                                group="small_embedding: embeddings")))


def zero_head(head: str | Sequence[str] = ("head/*", "*/head/*")) -> RuleSet:
  """A zero classifier: every logit 0 at init, so the first loss is ``log(classes)``
  and the first gradients reach only the head (big_vision's ``head_zeroinit``;
  Fixup's classifier; Goyal et al. 2017 zero the last BN of each block likewise).

  Args:
    head: path globs of the head's parameters (kernel and bias); one of them
      must match (group ``"zero_head: head"``).

  Warns / raises:
    :class:`~jaxinit.rules.UnusedRuleWarning` (``ValueError`` with
    ``strict=True``) when no glob matches, naming the model's nearest paths:
    pass ``head=`` (``zero_head("lm_head/*")``).
  """
  return RuleSet(tuple(_globs(head, presets.zeros, label="head", group="zero_head: head")))
