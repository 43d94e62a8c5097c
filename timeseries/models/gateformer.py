r"""Gateformer (Lan & Oermann 2025) and iTransformer (Liu et al. 2024): one code path, two flags.

Gateformer embeds every variate twice, fuses the two embeddings with a gate, lets the variates
attend to each other, and gates that result against its input. iTransformer is the same path with
the temporal branch and both gates switched off (plus its own encoder-layer style and calendar
tokens), so the effect of the gates is one flag away.

Notation: ``B`` batch, ``L`` lookback (``seq_len``), ``H`` horizon (``pred_len``), ``N`` variates
(``n_vars``), ``F`` calendar features (``n_marks``), ``d`` model width, ``P``/``S`` patch
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
:class:`gatelab.core.OutputGatedAttention` with ``gate=None`` (plain multi-head attention;
``attn_gate="headwise"`` turns on Qiu et al.'s output gate as an option).

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
for ``MS`` the model returns only the last ``n_targets`` variates (the official code slices them
outside the model). Nothing else.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import nn

from gatelab.core import OutputGatedAttention, TokenwiseGate, create_act
from gatelab.core.config import Dropout, NonNegativeInt, PositiveInt

__all__ = [
    "MODELS",
    "PRESETS",
    "Gateformer",
    "GateformerEncoderLayer",
    "PatchEmbedding",
    "Preset",
    "gateformer",
    "get_preset",
    "itransformer",
]


def sinusoidal_table(n: int, d: int) -> torch.Tensor:
    """Transformer position table ``[n, d]``: ``sin`` on even, ``cos`` on odd features,
    frequencies ``10000^(-2i/d)`` (Vaswani et al. 2017; the official ``PositionalEmbedding``)."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * -(math.log(10000.0) / d))
    pe = torch.zeros(n, d)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)[:, : d // 2]
    return pe


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
        seq_len: int,
        *,
        dropout: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if patch_len < 1 or stride < 1:
            raise ValueError(f"PatchEmbedding: patch_len and stride must be >= 1, got {patch_len}, {stride}")
        if seq_len + stride < patch_len:
            raise ValueError(f"PatchEmbedding: seq_len {seq_len} + stride {stride} < patch_len {patch_len}")
        self.patch_len, self.stride = patch_len, stride
        self.num_patches = (seq_len + stride - patch_len) // stride + 1
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
        return self.dropout(out.reshape(B * N, self.num_patches, -1))


class GateformerEncoderLayer(nn.Module):
    r"""Transformer encoder layer, pre-norm or post-norm, on :class:`gatelab.core.OutputGatedAttention`.

    ``norm_first=True``: ``x = x + Drop(A(LN_1 x))``, ``x = x + FFN(LN_2 x)``;
    ``norm_first=False``: ``x = LN_1(x + Drop(A x))``, ``x = LN_2(x + FFN x)``;
    ``FFN(x) = Drop(W_2 Drop(act(W_1 x + b_1)) + b_2)``. ``A`` is multi-head self-attention with
    dropout on its probabilities and an optional output gate (``attn_gate``).

    ``attn_init="xavier"`` initialises the query/key/value projections as ``torch.nn.MultiheadAttention``
    (Xavier-uniform over the stacked ``[3d, d]`` matrix, zero biases, zero output bias), the layer the
    official Gateformer uses; ``"default"`` keeps ``nn.Linear``'s init (iTransformer's ``AttentionLayer``).

    Shapes: ``x [B, T, d] -> [B, T, d]``.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
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
        self.attn = OutputGatedAttention(d_model, n_heads, gate=attn_gate, dropout=dropout, **fk)
        self.linear1 = nn.Linear(d_model, d_ff, **fk)
        self.linear2 = nn.Linear(d_ff, d_model, **fk)
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
        return self.drop_out(self.linear2(self.drop_ff(self.act(self.linear1(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm_first:
            x = x + self.drop_attn(self.attn(self.norm1(x)))
            return x + self._ff(self.norm2(x))
        x = self.norm1(x + self.drop_attn(self.attn(x)))
        return self.norm2(x + self._ff(x))


class Gateformer(nn.Module):
    r"""Gateformer / iTransformer forecaster (equations, shapes and papers in the module docstring).

    Args (config keys):
        n_vars: variates ``N`` in the input (set by the data module).
        seq_len: lookback ``L``. pred_len: horizon ``H``.
        d_model: width ``d``. n_heads: attention heads. e_layers: layers of each encoder
            (temporal and variate-wise, as the official code). d_ff: feed-forward width.
        dropout: dropout everywhere (embeddings, attention probabilities, feed-forward, head).
        patch_len, stride: patching of the temporal branch (official: 8 and 8).
        temporal_branch: build the patch/temporal-encoder branch (Gateformer: True).
        gates: fuse with the two :class:`~gatelab.core.TokenwiseGate` gates (Gateformer: True);
            ``False`` fuses by addition (``u = g + t``) and uses the variate encoder's output directly
            (``h = c``), the no-gate ablation.
        norm_first: pre-norm encoder layers (Gateformer) or post-norm (iTransformer).
        act: feed-forward activation (Gateformer ``relu``, iTransformer ``gelu``).
        final_norm: a ``LayerNorm`` after the variate encoder (iTransformer).
        use_marks: embed the ``F`` calendar features as extra tokens (iTransformer); Gateformer
            ignores ``x_mark``, as its official code does.
        n_marks: ``F`` (set by the data module; needed when ``use_marks``).
        n_targets: output only the last ``n_targets`` variates (``MS`` mode: 1); default ``N``.
        use_norm: instance normalisation and its inverse.
        attn_gate: ``None`` (plain attention, both papers), ``"headwise"`` or ``"elementwise"``.
        attn_init: ``"xavier"`` (``torch.nn.MultiheadAttention``, Gateformer) or ``"default"``.

    Inputs: ``x [B, L, N]``, optional ``x_mark [B, L, F]``. Output ``[B, H, n_targets]``.
    Captured gates (:func:`gatelab.core.capture_gates`): ``temporal_gate`` (weight of the global
    embedding against the temporal one) and ``variate_gate`` (weight of the embedding before
    variate attention against after it), each ``[B, N, d]``.
    """

    def __init__(
        self,
        n_vars: PositiveInt,
        seq_len: PositiveInt,
        pred_len: PositiveInt,
        *,
        d_model: PositiveInt = 512,
        n_heads: PositiveInt = 8,
        e_layers: NonNegativeInt = 2,
        d_ff: PositiveInt = 2048,
        dropout: Dropout = 0.1,
        patch_len: PositiveInt = 8,
        stride: PositiveInt = 8,
        temporal_branch: bool = True,
        gates: bool = True,
        norm_first: bool = True,
        act: str = "relu",
        final_norm: bool = False,
        use_marks: bool = False,
        n_marks: NonNegativeInt = 0,
        n_targets: PositiveInt | None = None,
        use_norm: bool = True,
        attn_gate: str | None = None,
        attn_init: str = "xavier",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        fk = {"device": device, "dtype": dtype}
        for key, val in (("n_vars", n_vars), ("seq_len", seq_len), ("pred_len", pred_len), ("d_model", d_model),
                         ("n_heads", n_heads), ("e_layers", e_layers), ("d_ff", d_ff)):  # fmt: skip
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"Gateformer: {key} must be a positive int, got {val!r}")
        if d_model % n_heads:
            raise ValueError(f"Gateformer: d_model={d_model} must be divisible by n_heads={n_heads}")
        if use_marks and n_marks < 0:
            raise ValueError(f"Gateformer: n_marks must be >= 0, got {n_marks}")
        n_targets = n_vars if n_targets is None else n_targets
        if not 1 <= n_targets <= n_vars:
            raise ValueError(f"Gateformer: n_targets must be in [1, n_vars={n_vars}], got {n_targets}")
        self.n_vars, self.seq_len, self.pred_len = n_vars, seq_len, pred_len
        self.n_targets, self.n_marks = n_targets, n_marks if use_marks else 0
        self.use_norm, self.use_marks = use_norm, use_marks
        self.temporal_branch, self.gates = temporal_branch, gates

        def layer() -> GateformerEncoderLayer:
            return GateformerEncoderLayer(
                d_model, n_heads, d_ff, act=act, dropout=dropout, norm_first=norm_first,
                attn_gate=attn_gate, attn_init=attn_init, **fk,
            )  # fmt: skip

        # global (inverted) embedding of each whole series (+ calendar tokens for iTransformer)
        self.global_embedding = nn.Linear(seq_len, d_model, **fk)
        self.embed_dropout = nn.Dropout(dropout)
        if temporal_branch:
            self.patch_embedding = PatchEmbedding(d_model, patch_len, stride, seq_len, dropout=dropout, **fk)
            self.temporal_encoder = nn.Sequential(*[layer() for _ in range(e_layers)])
            self.temporal_head = nn.Linear(d_model * self.patch_embedding.num_patches, d_model, **fk)
            self.head_dropout = nn.Dropout(dropout)
        if gates and temporal_branch:
            self.temporal_gate = TokenwiseGate(d_model, mode="vector", **fk)
        self.variate_encoder = nn.Sequential(*[layer() for _ in range(e_layers)])
        self.final_norm = nn.LayerNorm(d_model, **fk) if final_norm else nn.Identity()
        if gates:
            self.variate_gate = TokenwiseGate(d_model, mode="vector", **fk)
        self.projection = nn.Linear(d_model, pred_len, **fk)
        self._init_gates()

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
            f"n_vars={self.n_vars}, seq_len={self.seq_len}, pred_len={self.pred_len}, "
            f"temporal_branch={self.temporal_branch}, gates={self.gates}, use_marks={self.use_marks}"
        )

    def forward(self, x: torch.Tensor, x_mark: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != self.seq_len or x.shape[2] != self.n_vars:
            raise ValueError(
                f"Gateformer: expected x [B, seq_len={self.seq_len}, n_vars={self.n_vars}], got {tuple(x.shape)}"
            )
        B, _, N = x.shape
        if self.use_norm:
            mean = x.mean(dim=1, keepdim=True).detach()
            z = x - mean
            std = torch.sqrt(torch.var(z, dim=1, keepdim=True, unbiased=False) + 1e-5)
            z = z / std
        else:
            z = x
        tokens = z.transpose(1, 2)  # [B, N, L]
        if self.use_marks and self.n_marks:
            if x_mark is None or x_mark.shape != (B, self.seq_len, self.n_marks):
                got = None if x_mark is None else tuple(x_mark.shape)
                raise ValueError(
                    f"Gateformer(use_marks=True): expected x_mark [B, {self.seq_len}, {self.n_marks}], got {got}"
                )
            tokens = torch.cat([tokens, x_mark.transpose(1, 2).to(z.dtype)], dim=1)  # [B, N + F, L]
        u = self.embed_dropout(self.global_embedding(tokens))  # [B, N (+F), d]

        if self.temporal_branch:
            p = self.temporal_encoder(self.patch_embedding(z.transpose(1, 2)))  # [B*N, K, d]
            p = p.reshape(B, N, p.shape[1], p.shape[2]).transpose(2, 3).flatten(2)  # [B, N, d*K], d-major
            t = self.head_dropout(self.temporal_head(p))  # [B, N, d]
            g = u[:, :N]
            fused = self.temporal_gate(g, t) if self.gates else g + t
            u = torch.cat([fused, u[:, N:]], dim=1) if u.shape[1] > N else fused

        c = self.final_norm(self.variate_encoder(u))
        h = self.variate_gate(u, c) if self.gates else c
        y = self.projection(h).transpose(1, 2)[:, :, :N]  # [B, H, N]
        if self.use_norm:
            y = y * std + mean
        return y[:, :, N - self.n_targets :].contiguous()


# --------------------------------------------------------------------------- factories (registered in gatelab.timeseries.registry)


def _example(model: nn.Module, batch: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    m: Gateformer = model  # type: ignore[assignment]
    x = torch.randn(batch, m.seq_len, m.n_vars)
    kwargs = {"x_mark": torch.rand(batch, m.seq_len, m.n_marks) - 0.5} if m.use_marks else {}
    return (x,), kwargs


_TINY = dict(
    n_vars=3, seq_len=16, pred_len=4, d_model=8, n_heads=2, e_layers=1, d_ff=16, patch_len=4, stride=4
)
_TINY_ITRANSFORMER = {**_TINY, "n_marks": 2}

#: iTransformer's architecture flags on the shared code path
ITRANSFORMER_FLAGS: dict[str, Any] = dict(
    temporal_branch=False, gates=False, norm_first=False, act="gelu", final_norm=True, use_marks=True,
    attn_init="default",
)  # fmt: skip


def gateformer(**cfg: Any) -> Gateformer:
    """Gateformer with the official defaults (override any :class:`Gateformer` key)."""
    return Gateformer(**cfg)


def itransformer(**cfg: Any) -> Gateformer:
    """iTransformer = :class:`Gateformer` with :data:`ITRANSFORMER_FLAGS` (keys may still be overridden)."""
    return Gateformer(**{**ITRANSFORMER_FLAGS, **cfg})


# --------------------------------------------------------------------------- named presets (official runs)

# Hyperparameter presets of Gateformer and iTransformer for every LTSF dataset x horizon.
#
# Taken from the official scripts:
#
# * Gateformer: ``nyuolab/Gateformer`` ``scripts/multivariate_forecasting/*/Gateformer*.sh`` (commit
#   f209962): per dataset x horizon ``e_layers``, ``d_model``, ``d_ff``, ``learning_rate``,
#   ``n_heads``; ``batch_size 8`` everywhere; ``run.py`` defaults: 10 epochs, patience 3, dropout
#   0.1, patch length = stride = 8, Adam, ``lradj type1``, seed 2021.
# * iTransformer: ``thuml/iTransformer`` ``scripts/multivariate_forecasting/*/iTransformer*.sh``:
#   ``e_layers``, ``d_model``, ``d_ff`` per dataset (``learning_rate`` / ``batch_size`` where the
#   script sets them, else the ``run.py`` defaults 1e-4 / 32), ``n_heads`` 8, GELU, 10 epochs,
#   patience 3, dropout 0.1, Adam, ``lradj type1``. The Exchange-336 script trains 1 epoch.
#
# ILI has no official script for either model (neither paper reports it); its presets are ours
# (``source == "ours"``), the same for both models. Lookback is 96 for every dataset but ILI (36).
#
# ``lradj type1`` sets the learning rate to ``lr * 0.5 ** (epoch - 1)`` *after* epoch ``epoch``
# (1-based), so epochs 1 and 2 run at ``lr``, epoch 3 at ``lr / 2``, ...: in the harness this is
# ``scheduler: {name: exponential, gamma: 0.5, warmup: 1, warmup_start_factor: 1.0}``.

MODELS = ("gateformer", "itransformer")


@dataclasses.dataclass(frozen=True)
class Preset:
    """One official run: model size, optimiser settings and where they come from."""

    e_layers: int
    d_model: int
    d_ff: int
    lr: float
    n_heads: int
    batch_size: int
    epochs: int = 10
    source: str = "official"

    def model_kwargs(self) -> dict[str, int]:
        return {
            "e_layers": self.e_layers,
            "d_model": self.d_model,
            "d_ff": self.d_ff,
            "n_heads": self.n_heads,
        }


def _g(e: int, d: int, ff: int, lr: float, heads: int) -> Preset:
    return Preset(e, d, ff, lr, heads, batch_size=8)


def _i(e: int, d: int, ff: int, lr: float = 1e-4, batch: int = 32, epochs: int = 10) -> Preset:
    return Preset(e, d, ff, lr, 8, batch_size=batch, epochs=epochs)


_ILI = Preset(2, 128, 128, 5e-4, 8, batch_size=8, source="ours")

#: (model, dataset, horizon) -> Preset
PRESETS: dict[tuple[str, str, int], Preset] = {}

_GATEFORMER = {
    "etth1": {96: _g(1, 64, 64, 1e-4, 4), 192: _g(2, 64, 64, 5e-4, 4), 336: _g(2, 128, 128, 5e-4, 4), 720: _g(2, 64, 64, 5e-4, 4)},
    "etth2": {96: _g(2, 128, 128, 5e-4, 4), 192: _g(1, 64, 64, 5e-4, 4), 336: _g(2, 64, 64, 1e-4, 4), 720: _g(1, 128, 128, 1e-4, 4)},
    "ettm1": {96: _g(1, 64, 64, 5e-4, 4), 192: _g(1, 128, 128, 5e-4, 4), 336: _g(1, 128, 128, 1e-4, 4), 720: _g(1, 64, 64, 5e-4, 4)},
    "ettm2": {96: _g(1, 64, 64, 5e-4, 4), 192: _g(1, 64, 64, 1e-4, 4), 336: _g(2, 64, 64, 5e-4, 4), 720: _g(2, 64, 64, 5e-4, 4)},
    "weather": {96: _g(2, 512, 1024, 1e-4, 8), 192: _g(2, 512, 1024, 1e-4, 8), 336: _g(2, 256, 256, 5e-4, 8), 720: _g(2, 256, 512, 1e-4, 8)},
    "exchange": {96: _g(1, 64, 64, 1e-4, 4), 192: _g(1, 64, 64, 1e-3, 4), 336: _g(1, 64, 64, 1e-4, 4), 720: _g(2, 128, 128, 1e-3, 4)},
    "ecl": {96: _g(2, 512, 512, 5e-4, 8), 192: _g(4, 512, 1024, 5e-4, 8), 336: _g(2, 512, 1024, 5e-4, 8), 720: _g(2, 512, 1024, 5e-4, 8)},
    "traffic": {96: _g(2, 512, 1024, 5e-4, 8), 192: _g(2, 512, 1024, 5e-4, 8), 336: _g(3, 512, 1024, 5e-4, 8), 720: _g(3, 512, 512, 5e-4, 8)},
    "solar": {96: _g(3, 512, 512, 1e-4, 8), 192: _g(2, 512, 512, 1e-4, 8), 336: _g(2, 512, 512, 1e-4, 8), 720: _g(2, 512, 512, 1e-4, 8)},
}  # fmt: skip

_ITRANSFORMER = {
    "etth1": {96: _i(2, 256, 256), 192: _i(2, 256, 256), 336: _i(2, 512, 512), 720: _i(2, 512, 512)},
    "etth2": dict.fromkeys((96, 192, 336, 720), _i(2, 128, 128)),
    "ettm1": dict.fromkeys((96, 192, 336, 720), _i(2, 128, 128)),
    "ettm2": dict.fromkeys((96, 192, 336, 720), _i(2, 128, 128)),
    "weather": dict.fromkeys((96, 192, 336, 720), _i(3, 512, 512)),
    "exchange": {
        96: _i(2, 128, 128),
        192: _i(2, 128, 128),
        336: _i(2, 128, 128, epochs=1),
        720: _i(2, 128, 128),
    },
    "ecl": dict.fromkeys((96, 192, 336, 720), _i(3, 512, 512, lr=5e-4, batch=16)),
    "traffic": dict.fromkeys((96, 192, 336, 720), _i(4, 512, 512, lr=1e-3, batch=16)),
    "solar": dict.fromkeys((96, 192, 336, 720), _i(2, 512, 512, lr=5e-4)),
}

for _model, _table in (("gateformer", _GATEFORMER), ("itransformer", _ITRANSFORMER)):
    for _ds, _by_h in _table.items():
        for _h, _p in _by_h.items():
            PRESETS[(_model, _ds, _h)] = _p
    for _h in (24, 36, 48, 60):
        PRESETS[(_model, "ili", _h)] = _ILI


def get_preset(model: str, dataset: str, horizon: int) -> Preset:
    """The preset of ``model`` on ``dataset`` at ``horizon``; a clear error for unknown triples."""
    key = (model, dataset.lower(), int(horizon))
    if key not in PRESETS:
        known = sorted({h for (m, d, h) in PRESETS if m == key[0] and d == key[1]})
        raise KeyError(
            f"no preset for {model} on {dataset} at horizon {horizon}"
            + (f"; presets exist for horizons {known}" if known else f"; models: {MODELS}")
        )
    return PRESETS[key]
