r"""Gateformer (Lan & Oermann 2025) and iTransformer (Liu et al. 2024): one code path, two flags.

Gateformer embeds every variate twice, fuses the two embeddings with a gate, lets the variates
attend to each other, and gates that result against its input. iTransformer is the same path with
the temporal branch and both gates switched off (plus its own encoder-layer style and calendar
tokens), so the effect of the gates is one flag away.

Notation: ``B`` batch, ``L`` lookback (``lookback``), ``H`` horizon (``horizon``), ``N`` variates
(``num_vars``), ``F`` calendar features (``num_marks``), ``d`` model width, ``P``/``S`` patch
length/stride, ``K = floor((L - P) / S) + 2`` patches (the series is padded by ``S`` copies of its
last value first).

Forward (Gateformer, ``x [B, L, N] -> y [B, H, N]``)::

    mu, sigma = mean_t x, sqrt(var_t x + 1e-5)           instance normalisation (per window, variate)
    z = (x - mu) / sigma                                 [B, L, N]
    g_v = Dropout(W_e z_v)                               global (inverted) embedding     [B, N, d]
    p_{v,k} = W_p z_v[kS : kS + P] + PE_k                patch embedding (no bias)      [B*N, K, d]
    t_v = Dropout(W_h flatten(TemporalEncoder(p_v)))     temporal embedding              [B, N, d]
    u = sigmoid(W_1 g + W_2 t + b) * g + (1 - sigmoid(...)) * t          gate 1          [B, N, d]
    c = VariateEncoder(u)                                attention across the N variates [B, N, d]
    h = sigmoid(W_3 u + W_4 c + b') * u + (1 - sigmoid(...)) * c         gate 2          [B, N, d]
    y = (W_o h)^T * sigma + mu                           projection to H, de-normalised  [B, H, N]

Both gates are :class:`gatelab.core.TokenwiseGate` in ``mode="vector"``:
``sigmoid(W [a; b] + c)`` with ``W = [W_1 W_2]`` is exactly the official
``sigmoid(W_1 a + b_1 + W_2 b + b_2)`` (one fused matrix, one bias ``c = b_1 + b_2``); the
weights are initialised as the official two ``nn.Linear(d, d)``. Attention is
:class:`SelfAttention` (plain multi-head attention with one packed ``[3d, d]`` projection,
``nn.MultiheadAttention``'s layout; ``attn_gate="headwise"`` switches to
:class:`gatelab.core.OutputGatedAttention` with Qiu et al.'s output gate, an option).

iTransformer (``x [B, L, N], x_mark [B, L, F] -> y [B, H, N]``): ``u = Dropout(W_e [z; x_mark]^T)``
(``N + F`` tokens: the calendar features are extra tokens), ``h = LayerNorm(VariateEncoder(u))``
with post-norm GELU layers, ``y = (W_o h)^T[:, :, :N] * sigma + mu``.

Encoder layers (``norm_first``): pre-norm ``x + Drop(MHA(LN x))``, ``x + Drop(FFN(LN x))`` (the
official Gateformer uses ``nn.TransformerEncoderLayer(norm_first=True)``, ReLU); post-norm
``LN(x + Drop(MHA x))``, ``LN(x + FFN x)`` (iTransformer's ``EncoderLayer``, GELU, plus a final
``LayerNorm``). ``FFN = Drop(W_2 Drop(act(W_1 x)))``; attention dropout on the probabilities.

Papers: Y.-H. Lan, E. K. Oermann, "Gateformer: Advancing Multivariate Time Series Forecasting
through Temporal and Variate-Wise Attention with Gated Representations", 2025 (arXiv:2505.00307;
code nyuolab/Gateformer). Y. Liu et al., "iTransformer: Inverted Transformers Are Effective for
Time Series Forecasting", ICLR 2024 (code thuml/iTransformer).

Deviations from the official code: the two gate matrices are one fused ``Linear(2d, d)`` (same
function, same initial distribution); the sinusoidal position table is a non-persistent buffer;
for ``MS`` the model returns only the last ``num_targets`` variates (the official code slices them
outside the model); on the CPU the dropout masks are drawn by
:func:`gatelab.core.layers.dropout.dropout_mask` (the Bernoulli distribution with the drop
probability rounded to a multiple of ``2^-16``, error at most ``2^-17``, kept values scaled so the
expectation is exact; another random stream than ``bernoulli_``: the same seed gives other masks
than the official code). Nothing else.

Speed (``benchmarks/gateformer_speed.py``, against the official code imported from a checkout):
packed attention projection; in CPU training the attention as one autograd function from the
packed ``[B, T, 3d]`` projection to the merged heads (softmax over the short key axis written out,
the query/key/value gradients written into one buffer), the feed-forward ReLU and dropout as one
in-place op (:func:`~gatelab.core.layers.dropout.relu_dropout`), cheaper dropout masks;
``docs/results/gateformer-speed.md``.

Config: :class:`GateformerConfig` / :class:`ITransformerConfig` (keys, official names, named presets
``"etth1-96"`` ...); ``create_model("gateformer", preset="etth1-96")``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from gatelab.core import OutputGatedAttention, TokenwiseGate, create_act
from gatelab.core.config import ConfigError, Dropout, ModelConfig, NonNegativeInt, PositiveInt
from gatelab.core.layers.dropout import dropout_mask, fast_dropout, relu_dropout
from gatelab.core.layers.fusion import is_plain
from gatelab.core.pretrained import PretrainedMixin

__all__ = [
    "MODELS",
    "Gateformer",
    "GateformerConfig",
    "GateformerEncoderLayer",
    "ITransformer",
    "ITransformerConfig",
    "PatchEmbedding",
    "SelfAttention",
]

#: the registered models of this module
MODELS = ("gateformer", "itransformer")


def sinusoidal_table(n: int, d: int) -> torch.Tensor:
    """Transformer position table ``[n, d]``: ``sin`` on even, ``cos`` on odd features,
    frequencies ``10000^(-2i/d)`` (Vaswani et al. 2017; the official ``PositionalEmbedding``)."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * -(math.log(10000.0) / d))
    pe = torch.zeros(n, d)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)[:, : d // 2]
    return pe


class _DropoutAttention(torch.autograd.Function):
    """``softmax(q k^T * scale) * noise @ v`` from the packed projection, with its backward
    written out (CPU training path of :class:`SelfAttention`).

    Input ``qkv [B, T, 3 d]`` (the ``in_proj`` output, ``[q; k; v]`` then heads), ``noise``
    ``[B, H, T, T]`` (:func:`~gatelab.core.layers.dropout.dropout_mask`, no gradient) -> the head
    outputs concatenated, ``[B, T, d]`` (the ``out_proj`` input). One autograd node instead of the
    head split, seven attention ops and the merge; the softmax over the short key axis (``T`` =
    patches or variates) is ``exp(s - max) / sum`` (PyTorch's CPU softmax kernel is several times
    slower on rows of a dozen elements). The backward writes the query/key/value gradients into one
    head-major ``[3, B, H, T, d_h]`` buffer and returns it in ``qkv``'s layout with one copy
    (autograd's unbind/permute backward would stack the three and copy twice).
    """

    @staticmethod
    def forward(ctx: Any, qkv: torch.Tensor, noise: torch.Tensor, num_heads: int, scale: float) -> torch.Tensor:
        B, T, d3 = qkv.shape
        H, Dh = num_heads, d3 // (3 * num_heads)
        x = qkv.view(B, T, 3, H, Dh).permute(2, 0, 3, 1, 4).contiguous()  # [3, B, H, T, Dh]
        q, k, v = x.unbind(0)
        probs = torch.matmul(q, k.transpose(-2, -1)).mul_(scale)
        probs = probs.sub_(probs.amax(dim=-1, keepdim=True)).exp_()
        probs = probs.div_(probs.sum(dim=-1, keepdim=True))
        dropped = probs * noise
        ctx.scale = scale
        ctx.save_for_backward(x, probs, noise, dropped)
        return torch.matmul(dropped, v).transpose(1, 2).reshape(B, T, H * Dh)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, probs, noise, dropped = ctx.saved_tensors
        _, B, H, T, Dh = x.shape
        q, k, v = x.unbind(0)
        g = grad.reshape(B, T, H, Dh).transpose(1, 2).contiguous()  # [B, H, T, Dh]
        gx = torch.empty_like(x)
        torch.matmul(dropped.transpose(-2, -1), g, out=gx[2])
        d = torch.matmul(g, v.transpose(-2, -1)).mul_(noise)  # dL/dprobs
        d = d.sub_((d * probs).sum(dim=-1, keepdim=True)).mul_(probs).mul_(ctx.scale)  # dL/dscores * scale
        torch.matmul(d, k, out=gx[0])
        torch.matmul(d.transpose(-2, -1), q, out=gx[1])
        return gx.permute(1, 3, 0, 2, 4).reshape(B, T, 3 * H * Dh), None, None, None


def _drop_add(module: nn.Dropout, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The residual ``x + module(y)``; in CPU training one ``addcmul`` with the noise (one pass and
    one autograd node instead of two)."""
    if (
        module.training
        and 0.0 < module.p < 1.0
        and y.device.type == "cpu"
        and y.is_floating_point()
        and not torch.compiler.is_compiling()
        and is_plain(module, nn.Dropout)
    ):
        return torch.addcmul(x, y, dropout_mask(y, module.p))
    return x + _drop(module, y)


def _drop(module: nn.Dropout, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` through :func:`~gatelab.core.layers.dropout.fast_dropout` (``module.p`` and ``module.training``); a module
    that is not a plain ``nn.Dropout`` (a subclass, hooks) is called as it is."""
    if not is_plain(module, nn.Dropout):
        return module(x)
    return fast_dropout(x, module.p, module.training)


class PatchEmbedding(nn.Module):
    r"""Patches of one series: pad the end with ``stride`` copies of the last value, cut patches
    of ``patch_len`` every ``stride`` steps, embed each linearly (no bias), add the sinusoidal
    position, dropout.

    Shapes: ``z [B, N, L] -> [B * N, K, d]`` with ``K = (L + stride - patch_len) // stride + 1``.
    """

    def __init__(
        self,
        d_model: int,
        patch_len: int,
        stride: int,
        lookback: int,
        *,
        dropout: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if patch_len < 1 or stride < 1:
            raise ValueError(f"PatchEmbedding: patch_len and stride must be >= 1, got {patch_len}, {stride}")
        if lookback + stride < patch_len:
            raise ValueError(f"PatchEmbedding: lookback {lookback} + stride {stride} < patch_len {patch_len}")
        self.patch_len, self.stride = patch_len, stride
        self.num_patches = (lookback + stride - patch_len) // stride + 1
        self.value = nn.Linear(patch_len, d_model, bias=False, device=device, dtype=dtype)
        self.register_buffer(
            "pe", sinusoidal_table(self.num_patches, d_model).to(dtype or torch.float32), persistent=False
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        B, N, _ = z.shape
        z = torch.cat([z, z[..., -1:].expand(B, N, self.stride)], dim=-1)  # replication pad (end)
        patches = z.unfold(-1, self.patch_len, self.stride)  # [B, N, K, P]
        out = self.value(patches) + self.pe
        return _drop(self.dropout, out.reshape(B * N, self.num_patches, -1))


class SelfAttention(nn.Module):
    r"""Plain multi-head self-attention with one packed query/key/value projection.

    ``[q; k; v] = x W_in^T + b_in`` (``W_in`` ``[3d, d]``: the query, key and value matrices
    stacked, ``nn.MultiheadAttention``'s ``in_proj`` layout), ``o_h = softmax(q_h k_h^T / sqrt(d_h))
    v_h`` per head with dropout ``dropout`` on the probabilities (training only), ``y = [o_1; ...;
    o_H] W_o^T + b_o``: the function of :class:`gatelab.core.OutputGatedAttention` with
    ``gate=None`` in one ``[3d, d]`` matrix product instead of three (one parameter pair instead of
    three for the optimizer too). The projections are one copy away from the head-major
    ``[3, B, H, T, d_h]`` layout; then ``F.scaled_dot_product_attention`` (evaluation, or off the
    CPU) or, in CPU training, the explicit softmax with :func:`~gatelab.core.layers.dropout.dropout_mask` on the probabilities
    (PyTorch's SDPA falls back to its math path with ``bernoulli_`` dropout and a masked softmax
    there).

    A state dict with the separate ``q_proj``/``k_proj``/``v_proj`` of earlier versions (the
    :class:`~gatelab.core.OutputGatedAttention` layout) loads: the three are stacked into ``in_proj``.

    Shapes: ``x [B, T, dim] -> [B, T, dim]``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        dropout: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if dim <= 0 or num_heads <= 0 or dim % num_heads:
            raise ValueError(f"SelfAttention: dim={dim} must be a positive multiple of num_heads={num_heads}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"SelfAttention: dropout must be in [0, 1), got {dropout}")
        self.dim, self.num_heads, self.head_dim, self.dropout = dim, num_heads, dim // num_heads, dropout
        self.in_proj = nn.Linear(dim, 3 * dim, device=device, dtype=dtype)
        self.out_proj = nn.Linear(dim, dim, device=device, dtype=dtype)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_heads={self.num_heads}, dropout={self.dropout}"

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        legacy = [f"{prefix}{n}_proj.{t}" for t in ("weight", "bias") for n in "qkv"]
        if f"{prefix}in_proj.weight" not in state_dict and all(k in state_dict for k in legacy):
            for t in ("weight", "bias"):
                state_dict[f"{prefix}in_proj.{t}"] = torch.cat([state_dict.pop(f"{prefix}{n}_proj.{t}") for n in "qkv"])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"SelfAttention: x must have shape [B, T, dim={self.dim}], got {tuple(x.shape)}")
        B, T, d = x.shape
        H, Dh = self.num_heads, self.head_dim
        qkv = self.in_proj(x)  # [B, T, 3d]
        p = self.dropout if self.training else 0.0
        if p > 0.0 and x.device.type == "cpu" and not torch.compiler.is_compiling():
            noise = dropout_mask(qkv.new_empty(B, H, T, T), p)
            return self.out_proj(_DropoutAttention.apply(qkv, noise, H, 1.0 / math.sqrt(Dh)))
        q, k, v = qkv.view(B, T, 3, H, Dh).permute(2, 0, 3, 1, 4).unbind(0)  # [B, H, T, Dh] each
        o = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        return self.out_proj(o.transpose(1, 2).reshape(B, T, d))


class GateformerEncoderLayer(nn.Module):
    r"""Transformer encoder layer, pre-norm or post-norm.

    ``norm_first=True``: ``x = x + Drop(A(LN_1 x))``, ``x = x + FFN(LN_2 x)``;
    ``norm_first=False``: ``x = LN_1(x + Drop(A x))``, ``x = LN_2(x + FFN x)``;
    ``FFN(x) = Drop(W_2 Drop(act(W_1 x + b_1)) + b_2)``. ``A`` is multi-head self-attention with
    dropout on its probabilities: :class:`SelfAttention` (one packed ``[3d, d]`` projection) or,
    with an output gate (``attn_gate="headwise"``/``"elementwise"``),
    :class:`gatelab.core.OutputGatedAttention`. Dropout: :func:`~gatelab.core.layers.dropout.fast_dropout`.

    ``attn_init="xavier"`` initialises the query/key/value projections as ``torch.nn.MultiheadAttention``
    (Xavier-uniform over the stacked ``[3d, d]`` matrix, zero biases, zero output bias), the layer the
    official Gateformer uses; ``"default"`` keeps ``nn.Linear``'s init (iTransformer's ``AttentionLayer``).

    Shapes: ``x [B, T, d] -> [B, T, d]``.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        hidden_dim: int,
        *,
        act: str = "relu",
        dropout: float = 0.0,
        norm_first: bool = True,
        attn_gate: str | None = None,
        attn_init: str = "xavier",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        fk = {"device": device, "dtype": dtype}
        if attn_init not in ("xavier", "default"):
            raise ValueError(f"attn_init must be 'xavier' or 'default', got {attn_init!r}")
        self.norm_first = norm_first
        self.attn_init = attn_init
        self.attn: nn.Module = (
            SelfAttention(d_model, num_heads, dropout=dropout, **fk)
            if attn_gate is None
            else OutputGatedAttention(d_model, num_heads, gate=attn_gate, dropout=dropout, **fk)
        )
        self.linear1 = nn.Linear(d_model, hidden_dim, **fk)
        self.linear2 = nn.Linear(hidden_dim, d_model, **fk)
        self.norm1 = nn.LayerNorm(d_model, eps=1e-5, **fk)
        self.norm2 = nn.LayerNorm(d_model, eps=1e-5, **fk)
        self.act = create_act(act)
        self.drop_attn = nn.Dropout(dropout)
        self.drop_ff = nn.Dropout(dropout)
        self.drop_out = nn.Dropout(dropout)
        self._init_attention()

    def _init_attention(self) -> None:
        if self.attn_init != "xavier":
            return
        a = self.attn
        d = a.dim
        bound = math.sqrt(6.0 / (d + 3 * d))  # xavier_uniform_ of the stacked [3d, d] in-projection
        with torch.no_grad():
            if isinstance(a, SelfAttention):
                a.in_proj.weight.uniform_(-bound, bound)
                a.in_proj.bias.zero_()
                a.out_proj.bias.zero_()
                return
            for proj in (a.k_proj, a.v_proj):
                proj.weight.uniform_(-bound, bound)
                if proj.bias is not None:
                    proj.bias.zero_()
            a.q_proj.weight.uniform_(-bound, bound)
            if a.q_proj.bias is not None:
                a.q_proj.bias.zero_()
            if a.out_proj.bias is not None:
                a.out_proj.bias.zero_()

    def _ff(self, x: torch.Tensor) -> torch.Tensor:
        """``W_2 Drop(act(W_1 x + b_1)) + b_2`` (the last dropout is taken with the residual).
        A plain ReLU and plain dropout in training: :func:`~gatelab.core.layers.dropout.relu_dropout`
        in place of the ``W_1`` output (one pass and one autograd node instead of two; the mask is
        :func:`~gatelab.core.layers.dropout.fast_dropout`'s, same draws)."""
        if is_plain(self.act, nn.ReLU) and is_plain(self.drop_ff, nn.Dropout) and is_plain(self.linear1, nn.Linear):
            # on the 2-D rows: a 3-D Linear output is a view of its matrix product, and an in-place
            # op on a view would make autograd copy the whole gradient back (CopySlices)
            h = self.linear1(x.reshape(-1, x.shape[-1]))
            h = relu_dropout(h, self.drop_ff.p, self.drop_ff.training, inplace=True)
            return self.linear2(h).view(*x.shape[:-1], -1)
        return self.linear2(_drop(self.drop_ff, self.act(self.linear1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm_first:
            x = _drop_add(self.drop_attn, x, self.attn(self.norm1(x)))
            return _drop_add(self.drop_out, x, self._ff(self.norm2(x)))
        x = self.norm1(_drop_add(self.drop_attn, x, self.attn(x)))
        return self.norm2(_drop_add(self.drop_out, x, self._ff(x)))


@dataclasses.dataclass(frozen=True, kw_only=True)
class GateformerConfig(ModelConfig):
    r"""Hyper-parameters of :class:`Gateformer` (Gateformer's defaults: the official ``run.py``).

    Fields (official script names in brackets where they differ):

    * ``num_vars`` (``enc_in``): variates ``N`` of the input; ``lookback`` (``seq_len``): ``L``;
      ``horizon`` (``pred_len``): ``H``. Set by the data module (``model_kwargs()``).
    * ``d_model``: width ``d`` of every token. ``num_heads`` (``n_heads``): attention heads
      (``d_model % num_heads == 0``). ``num_layers`` (``e_layers``): layers of *each* encoder
      (temporal and variate-wise, as the official code). ``hidden_dim`` (``d_ff``): feed-forward width.
    * ``dropout``: dropout everywhere (embeddings, attention probabilities, feed-forward, head).
    * ``patch_len``, ``stride``: patching of the temporal branch (official: 8 and 8; needs
      ``lookback + stride >= patch_len``).
    * ``temporal_branch``: build the patch / temporal-encoder branch (Gateformer: ``True``).
    * ``gates``: fuse with the two :class:`~gatelab.core.TokenwiseGate` gates (Gateformer:
      ``True``); ``False`` fuses by addition (``u = g + t``) and uses the variate encoder's output
      directly (``h = c``), the no-gate ablation.
    * ``norm_first``: pre-norm encoder layers (Gateformer) or post-norm (iTransformer).
    * ``act``: feed-forward activation (Gateformer ``relu``, iTransformer ``gelu``).
    * ``final_norm``: a ``LayerNorm`` after the variate encoder (iTransformer).
    * ``use_marks``: embed the ``F`` calendar features as extra tokens (iTransformer);
      Gateformer ignores ``x_mark``, as its official code does. ``num_marks``: ``F`` (set by the
      data module; used when ``use_marks``).
    * ``num_targets``: output only the last ``num_targets`` variates (``MS`` mode: 1); ``None``:
      all ``N`` (``1 <= num_targets <= num_vars``).
    * ``use_norm``: instance normalisation and its inverse.
    * ``attn_gate``: ``None`` (plain attention, both papers), ``"headwise"`` or ``"elementwise"``
      (Qiu et al.'s output gate). ``attn_init``: ``"xavier"`` (``torch.nn.MultiheadAttention``,
      Gateformer) or ``"default"`` (``nn.Linear``, iTransformer).

    Presets ``"<dataset>-<horizon>"`` (``"etth1-96"`` ...) are the model part of the official
    runs: ``nyuolab/Gateformer`` ``scripts/multivariate_forecasting/*/Gateformer*.sh`` (commit
    f209962) set ``e_layers``, ``d_model``, ``d_ff`` and ``n_heads`` per dataset x horizon; dropout
    0.1 and patch length = stride = 8 are the ``run.py`` defaults (the class defaults here). ILI has
    no official script (the paper does not report it): its presets are ours. Lookback is 96 for
    every dataset but ILI (36); ``num_vars`` is the dataset's variate count. The training part of
    each run (learning rate, batch size, epochs) lives in :mod:`gatelab.timeseries.recipes.gateformer`.
    """

    num_vars: PositiveInt
    lookback: PositiveInt
    horizon: PositiveInt
    d_model: PositiveInt = 512
    num_heads: PositiveInt = 8
    num_layers: PositiveInt = 2
    hidden_dim: PositiveInt = 2048
    dropout: Dropout = 0.1
    patch_len: PositiveInt = 8
    stride: PositiveInt = 8
    temporal_branch: bool = True
    gates: bool = True
    norm_first: bool = True
    act: str = "relu"
    final_norm: bool = False
    use_marks: bool = False
    num_marks: NonNegativeInt = 0
    num_targets: PositiveInt | None = None
    use_norm: bool = True
    attn_gate: Literal["headwise", "elementwise"] | None = None
    attn_init: Literal["xavier", "default"] = "xavier"

    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "etth1-96": {"num_vars": 7, "lookback": 96, "horizon": 96, "num_layers": 1, "d_model": 64, "hidden_dim": 64, "num_heads": 4},
        "etth1-192": {"num_vars": 7, "lookback": 96, "horizon": 192, "num_layers": 2, "d_model": 64, "hidden_dim": 64, "num_heads": 4},
        "etth1-336": {"num_vars": 7, "lookback": 96, "horizon": 336, "num_layers": 2, "d_model": 128, "hidden_dim": 128, "num_heads": 4},
        "etth1-720": {"num_vars": 7, "lookback": 96, "horizon": 720, "num_layers": 2, "d_model": 64, "hidden_dim": 64, "num_heads": 4},
        "etth2-96": {"num_vars": 7, "lookback": 96, "horizon": 96, "num_layers": 2, "d_model": 128, "hidden_dim": 128, "num_heads": 4},
        "etth2-192": {"num_vars": 7, "lookback": 96, "horizon": 192, "num_layers": 1, "d_model": 64, "hidden_dim": 64, "num_heads": 4},
        "etth2-336": {"num_vars": 7, "lookback": 96, "horizon": 336, "num_layers": 2, "d_model": 64, "hidden_dim": 64, "num_heads": 4},
        "etth2-720": {"num_vars": 7, "lookback": 96, "horizon": 720, "num_layers": 1, "d_model": 128, "hidden_dim": 128, "num_heads": 4},
        "ettm1-96": {"num_vars": 7, "lookback": 96, "horizon": 96, "num_layers": 1, "d_model": 64, "hidden_dim": 64, "num_heads": 4},
        "ettm1-192": {"num_vars": 7, "lookback": 96, "horizon": 192, "num_layers": 1, "d_model": 128, "hidden_dim": 128, "num_heads": 4},
        "ettm1-336": {"num_vars": 7, "lookback": 96, "horizon": 336, "num_layers": 1, "d_model": 128, "hidden_dim": 128, "num_heads": 4},
        "ettm1-720": {"num_vars": 7, "lookback": 96, "horizon": 720, "num_layers": 1, "d_model": 64, "hidden_dim": 64, "num_heads": 4},
        "ettm2-96": {"num_vars": 7, "lookback": 96, "horizon": 96, "num_layers": 1, "d_model": 64, "hidden_dim": 64, "num_heads": 4},
        "ettm2-192": {"num_vars": 7, "lookback": 96, "horizon": 192, "num_layers": 1, "d_model": 64, "hidden_dim": 64, "num_heads": 4},
        "ettm2-336": {"num_vars": 7, "lookback": 96, "horizon": 336, "num_layers": 2, "d_model": 64, "hidden_dim": 64, "num_heads": 4},
        "ettm2-720": {"num_vars": 7, "lookback": 96, "horizon": 720, "num_layers": 2, "d_model": 64, "hidden_dim": 64, "num_heads": 4},
        "weather-96": {"num_vars": 21, "lookback": 96, "horizon": 96, "num_layers": 2, "d_model": 512, "hidden_dim": 1024, "num_heads": 8},
        "weather-192": {"num_vars": 21, "lookback": 96, "horizon": 192, "num_layers": 2, "d_model": 512, "hidden_dim": 1024, "num_heads": 8},
        "weather-336": {"num_vars": 21, "lookback": 96, "horizon": 336, "num_layers": 2, "d_model": 256, "hidden_dim": 256, "num_heads": 8},
        "weather-720": {"num_vars": 21, "lookback": 96, "horizon": 720, "num_layers": 2, "d_model": 256, "hidden_dim": 512, "num_heads": 8},
        "exchange-96": {"num_vars": 8, "lookback": 96, "horizon": 96, "num_layers": 1, "d_model": 64, "hidden_dim": 64, "num_heads": 4},
        "exchange-192": {"num_vars": 8, "lookback": 96, "horizon": 192, "num_layers": 1, "d_model": 64, "hidden_dim": 64, "num_heads": 4},
        "exchange-336": {"num_vars": 8, "lookback": 96, "horizon": 336, "num_layers": 1, "d_model": 64, "hidden_dim": 64, "num_heads": 4},
        "exchange-720": {"num_vars": 8, "lookback": 96, "horizon": 720, "num_layers": 2, "d_model": 128, "hidden_dim": 128, "num_heads": 4},
        "ecl-96": {"num_vars": 321, "lookback": 96, "horizon": 96, "num_layers": 2, "d_model": 512, "hidden_dim": 512, "num_heads": 8},
        "ecl-192": {"num_vars": 321, "lookback": 96, "horizon": 192, "num_layers": 4, "d_model": 512, "hidden_dim": 1024, "num_heads": 8},
        "ecl-336": {"num_vars": 321, "lookback": 96, "horizon": 336, "num_layers": 2, "d_model": 512, "hidden_dim": 1024, "num_heads": 8},
        "ecl-720": {"num_vars": 321, "lookback": 96, "horizon": 720, "num_layers": 2, "d_model": 512, "hidden_dim": 1024, "num_heads": 8},
        "traffic-96": {"num_vars": 862, "lookback": 96, "horizon": 96, "num_layers": 2, "d_model": 512, "hidden_dim": 1024, "num_heads": 8},
        "traffic-192": {"num_vars": 862, "lookback": 96, "horizon": 192, "num_layers": 2, "d_model": 512, "hidden_dim": 1024, "num_heads": 8},
        "traffic-336": {"num_vars": 862, "lookback": 96, "horizon": 336, "num_layers": 3, "d_model": 512, "hidden_dim": 1024, "num_heads": 8},
        "traffic-720": {"num_vars": 862, "lookback": 96, "horizon": 720, "num_layers": 3, "d_model": 512, "hidden_dim": 512, "num_heads": 8},
        "solar-96": {"num_vars": 137, "lookback": 96, "horizon": 96, "num_layers": 3, "d_model": 512, "hidden_dim": 512, "num_heads": 8},
        "solar-192": {"num_vars": 137, "lookback": 96, "horizon": 192, "num_layers": 2, "d_model": 512, "hidden_dim": 512, "num_heads": 8},
        "solar-336": {"num_vars": 137, "lookback": 96, "horizon": 336, "num_layers": 2, "d_model": 512, "hidden_dim": 512, "num_heads": 8},
        "solar-720": {"num_vars": 137, "lookback": 96, "horizon": 720, "num_layers": 2, "d_model": 512, "hidden_dim": 512, "num_heads": 8},
        "ili-24": {"num_vars": 7, "lookback": 36, "horizon": 24, "num_layers": 2, "d_model": 128, "hidden_dim": 128, "num_heads": 8},
        "ili-36": {"num_vars": 7, "lookback": 36, "horizon": 36, "num_layers": 2, "d_model": 128, "hidden_dim": 128, "num_heads": 8},
        "ili-48": {"num_vars": 7, "lookback": 36, "horizon": 48, "num_layers": 2, "d_model": 128, "hidden_dim": 128, "num_heads": 8},
        "ili-60": {"num_vars": 7, "lookback": 36, "horizon": 60, "num_layers": 2, "d_model": 128, "hidden_dim": 128, "num_heads": 8},
    }  # fmt: skip

    def check(self) -> None:
        name = type(self).__name__
        if self.d_model % self.num_heads:
            raise ConfigError(f"{name}: d_model={self.d_model} must be divisible by num_heads={self.num_heads}")
        if self.num_targets is not None and self.num_targets > self.num_vars:
            raise ConfigError(
                f"{name}: num_targets={self.num_targets} must be in [1, num_vars={self.num_vars}]"
            )
        if self.temporal_branch and self.lookback + self.stride < self.patch_len:
            raise ConfigError(
                f"{name}: patch_len={self.patch_len} exceeds lookback={self.lookback} + stride={self.stride}"
            )
        try:
            create_act(self.act)
        except ValueError as e:
            raise ConfigError(f"{name}.act={self.act!r}: {e}") from None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ITransformerConfig(GateformerConfig):
    """:class:`GateformerConfig` with iTransformer's architecture as defaults: no temporal branch
    and no gates, post-norm GELU layers, a final ``LayerNorm``, calendar tokens, ``nn.Linear``
    attention init (every key may still be overridden).

    Presets ``"<dataset>-<horizon>"``: ``thuml/iTransformer``
    ``scripts/multivariate_forecasting/*/iTransformer*.sh`` (``e_layers``, ``d_model``, ``d_ff``
    per dataset; ``n_heads`` 8, dropout 0.1: the ``run.py`` defaults); ILI's are ours.
    """

    temporal_branch: bool = False
    gates: bool = False
    norm_first: bool = False
    act: str = "gelu"
    final_norm: bool = True
    use_marks: bool = True
    attn_init: Literal["xavier", "default"] = "default"

    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "etth1-96": {"num_vars": 7, "lookback": 96, "horizon": 96, "num_layers": 2, "d_model": 256, "hidden_dim": 256, "num_heads": 8},
        "etth1-192": {"num_vars": 7, "lookback": 96, "horizon": 192, "num_layers": 2, "d_model": 256, "hidden_dim": 256, "num_heads": 8},
        "etth1-336": {"num_vars": 7, "lookback": 96, "horizon": 336, "num_layers": 2, "d_model": 512, "hidden_dim": 512, "num_heads": 8},
        "etth1-720": {"num_vars": 7, "lookback": 96, "horizon": 720, "num_layers": 2, "d_model": 512, "hidden_dim": 512, "num_heads": 8},
        "etth2-96": {"num_vars": 7, "lookback": 96, "horizon": 96, "num_layers": 2, "d_model": 128, "hidden_dim": 128, "num_heads": 8},
        "etth2-192": {"num_vars": 7, "lookback": 96, "horizon": 192, "num_layers": 2, "d_model": 128, "hidden_dim": 128, "num_heads": 8},
        "etth2-336": {"num_vars": 7, "lookback": 96, "horizon": 336, "num_layers": 2, "d_model": 128, "hidden_dim": 128, "num_heads": 8},
        "etth2-720": {"num_vars": 7, "lookback": 96, "horizon": 720, "num_layers": 2, "d_model": 128, "hidden_dim": 128, "num_heads": 8},
        "ettm1-96": {"num_vars": 7, "lookback": 96, "horizon": 96, "num_layers": 2, "d_model": 128, "hidden_dim": 128, "num_heads": 8},
        "ettm1-192": {"num_vars": 7, "lookback": 96, "horizon": 192, "num_layers": 2, "d_model": 128, "hidden_dim": 128, "num_heads": 8},
        "ettm1-336": {"num_vars": 7, "lookback": 96, "horizon": 336, "num_layers": 2, "d_model": 128, "hidden_dim": 128, "num_heads": 8},
        "ettm1-720": {"num_vars": 7, "lookback": 96, "horizon": 720, "num_layers": 2, "d_model": 128, "hidden_dim": 128, "num_heads": 8},
        "ettm2-96": {"num_vars": 7, "lookback": 96, "horizon": 96, "num_layers": 2, "d_model": 128, "hidden_dim": 128, "num_heads": 8},
        "ettm2-192": {"num_vars": 7, "lookback": 96, "horizon": 192, "num_layers": 2, "d_model": 128, "hidden_dim": 128, "num_heads": 8},
        "ettm2-336": {"num_vars": 7, "lookback": 96, "horizon": 336, "num_layers": 2, "d_model": 128, "hidden_dim": 128, "num_heads": 8},
        "ettm2-720": {"num_vars": 7, "lookback": 96, "horizon": 720, "num_layers": 2, "d_model": 128, "hidden_dim": 128, "num_heads": 8},
        "weather-96": {"num_vars": 21, "lookback": 96, "horizon": 96, "num_layers": 3, "d_model": 512, "hidden_dim": 512, "num_heads": 8},
        "weather-192": {"num_vars": 21, "lookback": 96, "horizon": 192, "num_layers": 3, "d_model": 512, "hidden_dim": 512, "num_heads": 8},
        "weather-336": {"num_vars": 21, "lookback": 96, "horizon": 336, "num_layers": 3, "d_model": 512, "hidden_dim": 512, "num_heads": 8},
        "weather-720": {"num_vars": 21, "lookback": 96, "horizon": 720, "num_layers": 3, "d_model": 512, "hidden_dim": 512, "num_heads": 8},
        "exchange-96": {"num_vars": 8, "lookback": 96, "horizon": 96, "num_layers": 2, "d_model": 128, "hidden_dim": 128, "num_heads": 8},
        "exchange-192": {"num_vars": 8, "lookback": 96, "horizon": 192, "num_layers": 2, "d_model": 128, "hidden_dim": 128, "num_heads": 8},
        "exchange-336": {"num_vars": 8, "lookback": 96, "horizon": 336, "num_layers": 2, "d_model": 128, "hidden_dim": 128, "num_heads": 8},
        "exchange-720": {"num_vars": 8, "lookback": 96, "horizon": 720, "num_layers": 2, "d_model": 128, "hidden_dim": 128, "num_heads": 8},
        "ecl-96": {"num_vars": 321, "lookback": 96, "horizon": 96, "num_layers": 3, "d_model": 512, "hidden_dim": 512, "num_heads": 8},
        "ecl-192": {"num_vars": 321, "lookback": 96, "horizon": 192, "num_layers": 3, "d_model": 512, "hidden_dim": 512, "num_heads": 8},
        "ecl-336": {"num_vars": 321, "lookback": 96, "horizon": 336, "num_layers": 3, "d_model": 512, "hidden_dim": 512, "num_heads": 8},
        "ecl-720": {"num_vars": 321, "lookback": 96, "horizon": 720, "num_layers": 3, "d_model": 512, "hidden_dim": 512, "num_heads": 8},
        "traffic-96": {"num_vars": 862, "lookback": 96, "horizon": 96, "num_layers": 4, "d_model": 512, "hidden_dim": 512, "num_heads": 8},
        "traffic-192": {"num_vars": 862, "lookback": 96, "horizon": 192, "num_layers": 4, "d_model": 512, "hidden_dim": 512, "num_heads": 8},
        "traffic-336": {"num_vars": 862, "lookback": 96, "horizon": 336, "num_layers": 4, "d_model": 512, "hidden_dim": 512, "num_heads": 8},
        "traffic-720": {"num_vars": 862, "lookback": 96, "horizon": 720, "num_layers": 4, "d_model": 512, "hidden_dim": 512, "num_heads": 8},
        "solar-96": {"num_vars": 137, "lookback": 96, "horizon": 96, "num_layers": 2, "d_model": 512, "hidden_dim": 512, "num_heads": 8},
        "solar-192": {"num_vars": 137, "lookback": 96, "horizon": 192, "num_layers": 2, "d_model": 512, "hidden_dim": 512, "num_heads": 8},
        "solar-336": {"num_vars": 137, "lookback": 96, "horizon": 336, "num_layers": 2, "d_model": 512, "hidden_dim": 512, "num_heads": 8},
        "solar-720": {"num_vars": 137, "lookback": 96, "horizon": 720, "num_layers": 2, "d_model": 512, "hidden_dim": 512, "num_heads": 8},
        "ili-24": {"num_vars": 7, "lookback": 36, "horizon": 24, "num_layers": 2, "d_model": 128, "hidden_dim": 128, "num_heads": 8},
        "ili-36": {"num_vars": 7, "lookback": 36, "horizon": 36, "num_layers": 2, "d_model": 128, "hidden_dim": 128, "num_heads": 8},
        "ili-48": {"num_vars": 7, "lookback": 36, "horizon": 48, "num_layers": 2, "d_model": 128, "hidden_dim": 128, "num_heads": 8},
        "ili-60": {"num_vars": 7, "lookback": 36, "horizon": 60, "num_layers": 2, "d_model": 128, "hidden_dim": 128, "num_heads": 8},
    }  # fmt: skip


class Gateformer(PretrainedMixin, nn.Module):
    r"""Gateformer / iTransformer forecaster (equations, shapes and papers in the module docstring).

    Built from a :class:`GateformerConfig` (or a mapping, or its keys as keywords:
    ``Gateformer(num_vars=7, lookback=96, horizon=96)``; a config plus keyword overrides also
    works); ``device``/``dtype`` place the parameters and are not config keys.

    Inputs: ``x [B, L, N]``, optional ``x_mark [B, L, F]`` and ``observed [B, L, N]`` (bool or
    0/1: the availability mask of the ``missing: mask`` data policy). Output ``[B, H, num_targets]``.
    With ``observed``, unobserved cells are zeroed after normalisation, and with ``use_norm`` the
    per-series mean and std are taken over the observed steps only (a series with no observed
    step gets mean 0, std 1); without it every cell counts as observed.
    Captured gates (:func:`gatelab.core.capture_gates`): ``temporal_gate`` (weight of the global
    embedding against the temporal one) and ``variate_gate`` (weight of the embedding before
    variate attention against after it), each ``[B, N, d]``.
    """

    config_class = GateformerConfig

    def __init__(
        self,
        config: GateformerConfig | Mapping[str, Any] | None = None,
        /,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__()
        self.config = cfg = self.config_class.build(config, **overrides)
        fk = {"device": device, "dtype": dtype}
        self.num_vars, self.lookback, self.horizon = cfg.num_vars, cfg.lookback, cfg.horizon
        self.num_targets = cfg.num_vars if cfg.num_targets is None else cfg.num_targets
        self.num_marks = cfg.num_marks if cfg.use_marks else 0
        self.use_norm, self.use_marks = cfg.use_norm, cfg.use_marks
        self.temporal_branch, self.gates = cfg.temporal_branch, cfg.gates

        # global (inverted) embedding of each whole series (+ calendar tokens for iTransformer)
        self.global_embedding = nn.Linear(cfg.lookback, cfg.d_model, **fk)
        self.embed_dropout = nn.Dropout(cfg.dropout)
        if cfg.temporal_branch:
            self._build_temporal_branch(cfg, fk)
        if cfg.gates and cfg.temporal_branch:
            self.temporal_gate = TokenwiseGate(cfg.d_model, mode="vector", **fk)
        self.variate_encoder = self._encoder(cfg, fk)
        self.final_norm = nn.LayerNorm(cfg.d_model, **fk) if cfg.final_norm else nn.Identity()
        if cfg.gates:
            self.variate_gate = TokenwiseGate(cfg.d_model, mode="vector", **fk)
        self.projection = nn.Linear(cfg.d_model, cfg.horizon, **fk)
        self._init_gates()

    @staticmethod
    def _encoder(cfg: GateformerConfig, fk: dict[str, Any]) -> nn.Sequential:
        """``num_layers`` :class:`GateformerEncoderLayer` of the config's style."""
        layer = {
            "act": cfg.act, "dropout": cfg.dropout, "norm_first": cfg.norm_first, "attn_gate": cfg.attn_gate,
            "attn_init": cfg.attn_init, **fk,
        }  # fmt: skip
        return nn.Sequential(
            *[GateformerEncoderLayer(cfg.d_model, cfg.num_heads, cfg.hidden_dim, **layer) for _ in range(cfg.num_layers)]
        )

    def _build_temporal_branch(self, cfg: GateformerConfig, fk: dict[str, Any]) -> None:
        """Patch embedding, temporal encoder and the head flattening its ``K`` patches to ``d``."""
        self.patch_embedding = PatchEmbedding(
            cfg.d_model, cfg.patch_len, cfg.stride, cfg.lookback, dropout=cfg.dropout, **fk
        )
        self.temporal_encoder = self._encoder(cfg, fk)
        self.temporal_head = nn.Linear(cfg.d_model * self.patch_embedding.num_patches, cfg.d_model, **fk)
        self.head_dropout = nn.Dropout(cfg.dropout)

    def _init_gates(self) -> None:
        """Initialise each fused gate as the official two ``nn.Linear(d, d)``: both weight halves
        ``U(-1/sqrt(d), 1/sqrt(d))``, bias the sum of two such draws."""
        for gate in (getattr(self, "temporal_gate", None), getattr(self, "variate_gate", None)):
            if gate is None:
                continue
            d = gate.dim
            bound = 1.0 / math.sqrt(d)
            with torch.no_grad():
                gate.proj.weight.uniform_(-bound, bound)
                gate.proj.bias.uniform_(-bound, bound).add_(
                    torch.empty_like(gate.proj.bias).uniform_(-bound, bound)
                )

    def extra_repr(self) -> str:
        return (
            f"num_vars={self.num_vars}, lookback={self.lookback}, horizon={self.horizon}, "
            f"temporal_branch={self.temporal_branch}, gates={self.gates}, use_marks={self.use_marks}"
        )

    def forward(
        self, x: torch.Tensor, x_mark: torch.Tensor | None = None, observed: torch.Tensor | None = None
    ) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != self.lookback or x.shape[2] != self.num_vars:
            raise ValueError(
                f"Gateformer: expected x [B, lookback={self.lookback}, num_vars={self.num_vars}], got {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise TypeError(f"Gateformer: x must be a floating-point tensor, got dtype {x.dtype}")
        B, _, N = x.shape
        m = None
        if observed is not None:
            if tuple(observed.shape) != tuple(x.shape):
                raise ValueError(
                    f"Gateformer: observed must have the shape of x {tuple(x.shape)}, got {tuple(observed.shape)}"
                )
            m = observed.to(x.dtype)
            x = x * m  # unobserved cells carry no value
        if self.use_norm:
            if m is None:
                mean = x.mean(dim=1, keepdim=True).detach()
                z = x - mean
                std = torch.sqrt(torch.var(z, dim=1, keepdim=True, unbiased=False) + 1e-5)
            else:  # statistics over the observed steps only
                n = m.sum(dim=1, keepdim=True)
                mean = (x.sum(dim=1, keepdim=True) / n.clamp_min(1.0)).detach()
                z = (x - mean) * m
                var = (z * z).sum(dim=1, keepdim=True) / n.clamp_min(1.0)
                std = torch.where(n > 0, torch.sqrt(var + 1e-5), torch.ones_like(var))
            z = z / std
        else:
            z = x
        tokens = z.transpose(1, 2)  # [B, N, L]
        if self.use_marks and self.num_marks:
            if x_mark is None or x_mark.shape != (B, self.lookback, self.num_marks):
                got = None if x_mark is None else tuple(x_mark.shape)
                raise ValueError(
                    f"Gateformer(use_marks=True): expected x_mark [B, {self.lookback}, {self.num_marks}], got {got}"
                )
            tokens = torch.cat([tokens, x_mark.transpose(1, 2).to(z.dtype)], dim=1)  # [B, N + F, L]
        u = _drop(self.embed_dropout, self.global_embedding(tokens))  # [B, N (+F), d]

        if self.temporal_branch:
            p = self.temporal_encoder(self.patch_embedding(z.transpose(1, 2)))  # [B*N, K, d]
            p = p.reshape(B, N, p.shape[1], p.shape[2]).transpose(2, 3).flatten(2)  # [B, N, d*K], d-major
            t = _drop(self.head_dropout, self.temporal_head(p))  # [B, N, d]
            g = u[:, :N]
            fused = self.temporal_gate(g, t) if self.gates else g + t
            u = torch.cat([fused, u[:, N:]], dim=1) if u.shape[1] > N else fused

        c = self.final_norm(self.variate_encoder(u))
        h = self.variate_gate(u, c) if self.gates else c
        y = self.projection(h).transpose(1, 2)[:, :, :N]  # [B, H, N]
        if self.use_norm:
            y = y * std + mean
        return y[:, :, N - self.num_targets :].contiguous()


class ITransformer(Gateformer):
    """iTransformer (Liu et al. 2024): :class:`Gateformer`'s code path built from an
    :class:`ITransformerConfig` (no temporal branch, no gates, post-norm GELU layers, final
    ``LayerNorm``, calendar tokens)."""

    config_class = ITransformerConfig


# --------------------------------------------------------------------------- tiny configs and example inputs (registered in gatelab.timeseries.registry)


def _example(model: nn.Module, batch: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    m: Gateformer = model  # type: ignore[assignment]
    x = torch.randn(batch, m.lookback, m.num_vars)
    kwargs = {"x_mark": torch.rand(batch, m.lookback, m.num_marks) - 0.5} if m.use_marks else {}
    return (x,), kwargs


_TINY = dict(
    num_vars=3, lookback=16, horizon=4, d_model=8, num_heads=2, num_layers=1, hidden_dim=16, patch_len=4, stride=4
)
_TINY_ITRANSFORMER = {**_TINY, "num_marks": 2}
