"""Gated Linear Attention (Yang et al. 2023): recurrent and chunk-parallel forms, and the layer.

Family 9 of :mod:`gatelab.core`. Tensor layout everywhere in this module: ``[B, T, H, D]`` (batch,
time, heads, head dim; fla's current layout); recurrent states are ``[B, H, K, V]``.

:func:`gla_recurrent` is the definition (a loop over time); :func:`gla_chunk` is the chunk-parallel
form and the PyTorch reference for a later Triton kernel: both are pure functions without module state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .activations import ActLike, get_act
from .capture import record_gate
from .kernels import dispatch

NORM_KINDS: tuple[str, ...] = ("rmsnorm", "layernorm")
MODES: tuple[str, ...] = ("chunk", "recurrent")


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half-precision inputs, the input dtype otherwise (float64 stays float64)."""
    return torch.promote_types(dtype, torch.float32)


def _check_inputs(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    gk: torch.Tensor,
    initial_state: torch.Tensor | None,
) -> tuple[int, int, int, int, int]:
    if q.dim() != 4:
        raise ValueError(f"q must have shape [B, T, H, K], got {tuple(q.shape)}")
    B, T, H, K = q.shape
    if tuple(k.shape) != (B, T, H, K):
        raise ValueError(f"k must have the shape of q {(B, T, H, K)}, got {tuple(k.shape)}")
    if tuple(gk.shape) != (B, T, H, K):
        raise ValueError(f"gk must have the shape of q {(B, T, H, K)}, got {tuple(gk.shape)}")
    if v.dim() != 4 or tuple(v.shape[:3]) != (B, T, H):
        raise ValueError(f"v must have shape [B={B}, T={T}, H={H}, V], got {tuple(v.shape)}")
    V = v.shape[-1]
    if initial_state is not None and tuple(initial_state.shape) != (B, H, K, V):
        raise ValueError(
            f"initial_state must have shape [B, H, K, V] = {(B, H, K, V)}, got {tuple(initial_state.shape)}"
        )
    return B, T, H, K, V


def gla_recurrent(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    gk: torch.Tensor,
    *,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    r"""Gated linear attention, recurrent form (a loop over time; the definition).

    .. math::

        S_t = \operatorname{diag}(\exp(g_t))\, S_{t-1} + k_t^\top v_t, \qquad
        o_t = \text{scale} \cdot q_t S_t

    per batch and head, with :math:`S_t \in \mathbb{R}^{K \times V}` and the log forget gate
    :math:`g_t = \text{gk}_t \le 0` (so :math:`\exp(g_t) \in (0, 1]` decays each key row of the state).

    Args:
        q, k, gk: ``[B, T, H, K]``; ``gk`` is the log forget gate, expected ``<= 0``.
        v: ``[B, T, H, V]``.
        scale: query scale, default ``K ** -0.5``.
        initial_state: ``[B, H, K, V]`` state :math:`S_0` (zeros when ``None``).
        output_final_state: also return :math:`S_T`.

    Returns:
        ``(o, final_state)``: ``o`` is ``[B, T, H, V]`` in the dtype of ``q``; ``final_state`` is
        ``[B, H, K, V]`` in the compute dtype (float32, or float64 for float64 inputs), or ``None``
        unless ``output_final_state``.

    The computation runs in at least float32 whatever the input dtype (as fla's naive reference).

    Paper: S. Yang, B. Wang, Y. Shen, R. Panda, Y. Kim, "Gated Linear Attention Transformers with
    Hardware-Efficient Training", ICML 2024 (arXiv:2312.06635), Eq. for the GLA recurrence.
    """
    B, T, H, K, V = _check_inputs(q, k, v, gk, initial_state)
    scale = K**-0.5 if scale is None else scale
    dtype = q.dtype
    ct = _compute_dtype(dtype)
    q, k, v, gk = (t.to(ct) for t in (q, k, v, gk))
    S = q.new_zeros(B, H, K, V) if initial_state is None else initial_state.to(ct)
    outs = []
    for t in range(T):
        S = S * gk[:, t].exp().unsqueeze(-1) + k[:, t].unsqueeze(-1) * v[:, t].unsqueeze(-2)
        outs.append(torch.einsum("bhk,bhkv->bhv", q[:, t] * scale, S))
    o = torch.stack(outs, dim=1) if outs else v.new_zeros(B, 0, H, V)
    return o.to(dtype), (S if output_final_state else None)


def gla_chunk(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    gk: torch.Tensor,
    *,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 16,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    r"""Gated linear attention, chunk-parallel form (same result as :func:`gla_recurrent`).

    The sequence is cut into chunks of ``C = chunk_size`` steps. Within chunk :math:`n` write
    :math:`g_{(a, b]} = \sum_{a < s \le b} g_s` for the summed log gate between two positions of the
    chunk (:math:`\le 0`) and :math:`S_{[n]}` for the state entering the chunk. For position
    :math:`i = 1..C` of the chunk

    .. math::

        o_i = \text{scale}\Big[(q_i \odot e^{g_{(0, i]}})\, S_{[n]}
              + \sum_{j \le i} \big(\textstyle\sum_k q_{ik} k_{jk} e^{g_{(j, i],k}}\big) v_j\Big]

        S_{[n+1]} = \operatorname{diag}(e^{g_{(0, C]}})\, S_{[n]} + \sum_j (k_j \odot e^{g_{(j, C]}})^\top v_j

    Numerics: every exponent is a segment sum of log gates, :math:`\le 0`, so nothing overflows for
    strongly negative gates (no :math:`\exp(-\text{cumsum})`). The segment sums are accumulated
    directly (a cumulative sum of the gates masked to the segment) rather than as differences of
    prefix sums :math:`b_i - b_j`, which lose all precision once :math:`|b|` is large; the result then
    matches the recurrent form to float32 round-off. The intra-chunk term is computed for all chunks at
    once (memory ``B*H*T*C*K``); only the state recurrence :math:`S_{[n]} \to S_{[n+1]}` loops over
    the ``ceil(T / C)`` chunks. ``T`` need not be a multiple of ``C``: the tail is padded with
    ``k = v = 0, gk = 0`` (which leaves the state unchanged).

    Args:
        q, k, gk: ``[B, T, H, K]``; ``gk`` is the log forget gate, expected ``<= 0`` (not checked:
            a positive gate makes the state grow, in both forms alike).
        v: ``[B, T, H, V]``.
        scale: query scale, default ``K ** -0.5``.
        initial_state: ``[B, H, K, V]`` (zeros when ``None``).
        output_final_state: also return the final state.
        chunk_size: chunk length ``C`` (typically 16 to 64; any positive integer works).

    Returns:
        ``(o, final_state)`` as in :func:`gla_recurrent` (``o`` in the dtype of ``q``, state in the
        compute dtype, at least float32).

    Paper: Yang et al. 2023 (arXiv:2312.06635), Sec. 4 (chunkwise parallel form).

    Deviations: the paper's secondary-chunk tiling (half-precision matmuls inside sub-chunks) is a
    kernel-level optimisation and not reproduced; this reference computes the gated intra-chunk
    attention matrix directly in (at least) float32.
    """
    B, T, H, K, V = _check_inputs(q, k, v, gk, initial_state)
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    scale = K**-0.5 if scale is None else scale
    dtype = q.dtype
    C = chunk_size
    N = -(-T // C)
    pad = N * C - T

    ct = _compute_dtype(dtype)

    def prep(t: torch.Tensor) -> torch.Tensor:
        t = t.to(ct).transpose(1, 2)  # [B, H, T, D]
        if pad:
            t = F.pad(t, (0, 0, 0, pad))
        return t.reshape(B, H, N, C, t.shape[-1])

    q, k, v, gk = prep(q) * scale, prep(k), prep(v), prep(gk)
    # Every exponent below is a sum of log gates over a segment, summed directly (never a difference
    # of two cumulative sums: b_i - b_j cancels catastrophically once |b| is large) and <= 0.
    b = gk.cumsum(dim=-2)  # [B, H, N, C, K], b_i = sum_{s <= i} g_s
    b_last = b[..., -1:, :]  # [B, H, N, 1, K], log decay across the whole chunk
    # suffix sums sum_{s > j} g_s (decay from step j to the chunk end)
    b_rest = F.pad(gk[..., 1:, :], (0, 0, 0, 1)).flip(-2).cumsum(dim=-2).flip(-2)

    # intra-chunk: A[i, j] = sum_k q_ik k_jk exp(sum_{j < s <= i} g_sk) for j <= i
    causal = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
    strict = causal.logical_not().transpose(0, 1)  # strict[i, j] = i > j
    # seg[i, j] = sum_{s <= i, s > j} g_s: cumulative over i of the gates masked to s > j (0 for j >= i)
    seg = torch.where(strict.unsqueeze(-1), gk.unsqueeze(-2), torch.zeros((), dtype=ct, device=q.device))
    decay = seg.cumsum(dim=-3).exp()  # [B, H, N, C(i), C(j), K]
    A = torch.einsum("...ik,...jk,...ijk->...ij", q, k, decay)
    A = torch.where(causal, A, torch.zeros((), dtype=ct, device=q.device))
    o = A @ v  # [B, H, N, C, V]

    # inter-chunk: the state entering each chunk, through the chunk-level recurrence
    U = (k * b_rest.exp()).transpose(-1, -2) @ v  # [B, H, N, K, V], chunk's own contribution
    D = b_last.squeeze(-2).exp().unsqueeze(-1)  # [B, H, N, K, 1], decay across a whole chunk
    S = q.new_zeros(B, H, K, V) if initial_state is None else initial_state.to(ct)
    entering = []
    for n in range(N):
        entering.append(S)
        S = D[:, :, n] * S + U[:, :, n]
    if N:
        o = o + (q * b.exp()) @ torch.stack(entering, dim=2)
    o = o.reshape(B, H, N * C, V)[:, :, :T].transpose(1, 2)
    return o.to(dtype), (S if output_final_state else None)


class GatedLinearAttention(nn.Module):
    r"""Gated linear attention layer (GLA, Yang et al. 2023) with a swish output gate and a head norm.

    .. math::

        q, k = x W_q, x W_k \in \mathbb{R}^{T \times H \times d_k}, \quad
        v = x W_v \in \mathbb{R}^{T \times H \times d_v}

        g_t = \operatorname{logsigmoid}(x_t W_{\alpha,1} W_{\alpha,2} + b_\alpha) / \tau
        \quad (\alpha_t = e^{g_t} \in (0, 1):\ \text{forget gate})

        o = \operatorname{GLA}(q, k, v, g), \qquad
        y = \big(\operatorname{Norm}(o) \odot \operatorname{swish}(x W_r)\big) W_o

    where :math:`W_{\alpha,1} W_{\alpha,2}` is a rank-``gate_low_rank_dim`` projection,
    :math:`\tau` = ``gate_logit_normalizer`` and Norm is a per-head RMSNorm (or LayerNorm) over
    :math:`d_v` with a learnable scale shared by the heads. ``GLA`` is :func:`gla_chunk` or
    :func:`gla_recurrent` (``mode``), with scale :math:`d_k^{-1/2}`.

    Args:
        dim: model width.
        num_heads: heads ``H``; ``key_dim = int(dim * expand_k)`` and ``value_dim = int(dim * expand_v)``
            must be divisible by it.
        expand_k, expand_v: key and value widths relative to ``dim`` (paper: 0.5 and 1).
        gate_low_rank_dim: rank of the forget-gate projection (paper: 16).
        gate_logit_normalizer: :math:`\tau` (paper/fla: 16), slows the forget gate's decay.
        gate_act: output-gate activation (default swish/SiLU).
        bias: bias of the q/k/v/output-gate/output projections (the low-rank gate's second map always
            has a bias, as in fla).
        mode: ``"chunk"`` (chunk-parallel, default) or ``"recurrent"``; both give the same result.
        norm: ``"rmsnorm"`` (fla, default) or ``"layernorm"`` (the paper's LN).
        norm_eps: epsilon of the norm.
        chunk_size: chunk length of the chunk form.

    Shapes:
        ``forward(x [B, T, dim], *, initial_state [B, H, d_k, d_v] | None, output_final_state)`` returns
        ``y [B, T, dim]``, or ``(y, final_state [B, H, d_k, d_v])`` (float32 for half inputs) when ``output_final_state``.

    Captured gates: ``"<name>:forget"`` = :math:`\alpha = e^{g}` ``[B, T, H, d_k]`` and
    ``"<name>:output"`` = :math:`\operatorname{swish}(x W_r)` ``[B, T, H, d_v]``.

    Paper: S. Yang et al., "Gated Linear Attention Transformers with Hardware-Efficient Training",
    ICML 2024 (arXiv:2312.06635); layer layout as fla's ``fla/layers/gla.py``.

    Deviations: no short convolution, feature map, grouped KV heads, padding-mask unpadding or
    inference cache (pass states explicitly); default PyTorch ``nn.Linear`` initialisation; the
    recurrence and the norm run in (at least) float32 and the result is cast back to the input dtype.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        gate_act: ActLike = "swish",
        bias: bool = False,
        expand_k: float = 0.5,
        expand_v: float = 1.0,
        gate_low_rank_dim: int = 16,
        gate_logit_normalizer: float = 16.0,
        mode: str = "chunk",
        norm: str = "rmsnorm",
        norm_eps: float = 1e-5,
        chunk_size: int = 16,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if norm not in NORM_KINDS:
            raise ValueError(f"norm must be one of {NORM_KINDS}, got {norm!r}")
        if num_heads <= 0:
            raise ValueError(f"num_heads must be positive, got {num_heads}")
        key_dim, value_dim = int(dim * expand_k), int(dim * expand_v)
        if key_dim <= 0 or key_dim % num_heads:
            raise ValueError(
                f"key_dim = int(dim * expand_k) = {key_dim} must be a positive multiple of num_heads={num_heads}"
            )
        if value_dim <= 0 or value_dim % num_heads:
            raise ValueError(
                f"value_dim = int(dim * expand_v) = {value_dim} must be a positive multiple of num_heads={num_heads}"
            )
        if gate_logit_normalizer <= 0:
            raise ValueError(f"gate_logit_normalizer must be positive, got {gate_logit_normalizer}")
        if not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        self.dim, self.num_heads = dim, num_heads
        self.key_dim, self.value_dim = key_dim, value_dim
        self.head_k_dim, self.head_v_dim = key_dim // num_heads, value_dim // num_heads
        self.gate_logit_normalizer = float(gate_logit_normalizer)
        self.mode, self.norm, self.norm_eps, self.chunk_size = mode, norm, norm_eps, chunk_size
        self.gate_act = get_act(gate_act)

        self.q_proj = nn.Linear(dim, key_dim, bias=bias, **factory_kwargs)
        self.k_proj = nn.Linear(dim, key_dim, bias=bias, **factory_kwargs)
        self.v_proj = nn.Linear(dim, value_dim, bias=bias, **factory_kwargs)
        self.g_proj = nn.Linear(dim, value_dim, bias=bias, **factory_kwargs)
        self.gk_proj = nn.Sequential(
            nn.Linear(dim, gate_low_rank_dim, bias=False, **factory_kwargs),
            nn.Linear(gate_low_rank_dim, key_dim, bias=True, **factory_kwargs),
        )
        self.norm_weight = nn.Parameter(torch.ones(self.head_v_dim, **factory_kwargs))
        self.norm_bias = (
            nn.Parameter(torch.zeros(self.head_v_dim, **factory_kwargs)) if norm == "layernorm" else None
        )
        self.o_proj = nn.Linear(value_dim, dim, bias=bias, **factory_kwargs)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, num_heads={self.num_heads}, key_dim={self.key_dim}, value_dim={self.value_dim}, "
            f"mode={self.mode!r}, norm={self.norm!r}, gate_logit_normalizer={self.gate_logit_normalizer}"
        )

    def _head_norm(self, o: torch.Tensor) -> torch.Tensor:
        # float32 statistics: the un-normalised GLA output can exceed the half-precision range
        o = o.to(_compute_dtype(o.dtype))
        if self.norm == "layernorm":
            o = o - o.mean(dim=-1, keepdim=True)
        return o * torch.rsqrt(o.pow(2).mean(dim=-1, keepdim=True) + self.norm_eps)

    def forward(
        self,
        x: torch.Tensor,
        *,
        initial_state: torch.Tensor | None = None,
        output_final_state: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Run the layer on ``x [B, T, dim]``; see the class docstring."""
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"x must have shape [B, T, dim={self.dim}], got {tuple(x.shape)}")
        B, T, _ = x.shape
        H, Dk, Dv = self.num_heads, self.head_k_dim, self.head_v_dim
        q = self.q_proj(x).view(B, T, H, Dk)
        k = self.k_proj(x).view(B, T, H, Dk)
        v = self.v_proj(x).view(B, T, H, Dv)
        ct = _compute_dtype(x.dtype)
        gk = F.logsigmoid(self.gk_proj(x).to(ct)).view(B, T, H, Dk) / self.gate_logit_normalizer
        record_gate(self, gk.exp(), "forget")

        # the recurrence runs in float32 for half-precision inputs (the gate already is)
        q, k, v = q.to(ct), k.to(ct), v.to(ct)
        if self.mode == "chunk":  # gla_chunk, or the Triton chunk kernels on CUDA
            o, state = dispatch(
                "gla_chunk",
                q,
                k,
                v,
                gk,
                initial_state=initial_state,
                output_final_state=output_final_state,
                chunk_size=self.chunk_size,
            )
        else:
            o, state = gla_recurrent(
                q, k, v, gk, initial_state=initial_state, output_final_state=output_final_state
            )
        o = self._head_norm(o).to(x.dtype) * self.norm_weight
        if self.norm_bias is not None:
            o = o + self.norm_bias
        g = self.gate_act(self.g_proj(x)).view(B, T, H, Dv)
        record_gate(self, g, "output")
        y = self.o_proj((o * g).reshape(B, T, self.value_dim))
        if output_final_state:
            return y, state
        return y
