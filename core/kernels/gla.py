"""Chunked gated linear attention: the op ``gla_chunk`` with its PyTorch reference and Triton backend.

``gla_chunk(q, k, v, gk, scale=None, initial_state=None, output_final_state=False, chunk_size=16)``
computes gated linear attention (Yang et al. 2023)::

    S_t = diag(exp(gk_t)) S_{t-1} + k_t^T v_t,      o_t = scale * q_t S_t

over ``[B, T, H, K]`` queries, keys and log forget gates (``gk <= 0``) and ``[B, T, H, V]`` values,
returning ``(o [B, T, H, V] in q's dtype (or ``output_dtype``), final state [B, H, K, V] (float32) or None)``.

The reference is :func:`gla_chunk` here, the chunk-parallel PyTorch form that matches the recurrent
definition :func:`gla_recurrent` (also here; both compute in at least float32). The layer
:class:`gatelab.core.gla.GatedLinearAttention` calls them; this module never imports the layer.
The Triton backend (:mod:`.gla_triton`) computes the same quantity with its own chunk length (64,
sub-chunks of 16); ``chunk_size`` only affects the reference, the results agree to rounding.

Backend ``"triton"`` runs when triton can run (CUDA, or the CPU under ``TRITON_INTERPRET=1``) and:
``q``, ``k``, ``v`` float16/bfloat16/float32 of one dtype, ``gk`` and ``initial_state`` any of those
dtypes, all on one device, with the shapes above and ``T >= 1``; ``scale`` a number or ``None``.
"""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F

from ._common import TRITON_DTYPES, check_tensors, triton_available, triton_interpreted
from .dispatch import register_backend, register_op

__all__ = ["gla_chunk", "gla_recurrent", "verify_gla_chunk"]


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
    output_dtype: torch.dtype | None = None,
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
        output_dtype: dtype of ``o`` (default: that of ``q``). ``torch.float32`` keeps the
            un-normalised output of half-precision inputs out of float16's range limit (65504);
            :class:`gatelab.core.GatedLinearAttention` asks for it before its float32 head norm.

    Returns:
        ``(o, final_state)``: ``o`` is ``[B, T, H, V]`` in ``output_dtype`` (default the dtype of ``q``); ``final_state`` is
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
    return o.to(output_dtype or dtype), (S if output_final_state else None)


@register_op("gla_chunk", doc="chunked gated linear attention (GLA), output and optional final state")
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
    output_dtype: torch.dtype | None = None,
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
        output_dtype: dtype of ``o`` (default: that of ``q``; see :func:`gla_recurrent`).

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
    return o.to(output_dtype or dtype), (S if output_final_state else None)


def verify_gla_chunk(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    gk: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 16,
    output_dtype: torch.dtype | None = None,
) -> str | None:
    """``None`` when the Triton GLA kernels accept the inputs, else the reason."""
    why = check_tensors((("q", q), ("k", k), ("v", v)))
    if why is None:
        why = check_tensors(
            (("q", q), ("gk", gk), ("initial_state", initial_state)), dtypes=TRITON_DTYPES, same_dtype=False
        )
    if why is not None:
        return why
    if q.dim() != 4:
        return f"q must be [B, T, H, K], got {tuple(q.shape)}"
    B, T, H, K = q.shape
    if tuple(k.shape) != (B, T, H, K) or tuple(gk.shape) != (B, T, H, K):
        return f"k {tuple(k.shape)} and gk {tuple(gk.shape)} must have q's shape {(B, T, H, K)}"
    if v.dim() != 4 or tuple(v.shape[:3]) != (B, T, H):
        return f"v must be [B={B}, T={T}, H={H}, V], got {tuple(v.shape)}"
    V = v.shape[-1]
    if initial_state is not None and tuple(initial_state.shape) != (B, H, K, V):
        return f"initial_state must be [B, H, K, V] = {(B, H, K, V)}, got {tuple(initial_state.shape)}"
    if T == 0 or B * H * K * V == 0:
        return "empty input (T, B, H, K or V is 0)"
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, numbers.Real)):
        return f"scale must be a number or None, got {type(scale).__name__}"
    if output_dtype not in (None, q.dtype, torch.float32):
        return f"output_dtype {output_dtype} is neither q's dtype {q.dtype} nor float32"
    return None


@register_backend(
    "gla_chunk",
    "triton",
    priority=10,
    devices=("cuda",),
    available=triton_available,
    verifier=verify_gla_chunk,
    interpreted=triton_interpreted,
)
def gla_chunk_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    gk: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 16,
    output_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Triton chunked GLA, forward and backward (``chunk_size`` is the reference's; see module doc)."""
    from .gla_triton import gla_chunk_triton as fn  # importing triton is slow: on first use

    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    out_f32 = output_dtype == torch.float32 and q.dtype != torch.float32
    return fn(q, k, v, gk, scale, initial_state, bool(output_final_state), out_f32)
