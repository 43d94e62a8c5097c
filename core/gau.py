r"""Gated attention unit (GAU, Hua et al. 2022): single-head attention gated by a parallel branch.

Family 15 of :mod:`gatelab.core`. The layer of FLASH ("Transformer Quality in Linear Time"), also
the attention block of Mega and MossFormer.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from .layers.activations import ActLike, create_act
from .layers.capture import is_capturing, record_gate
from .layers.checks import check_dropout, check_positive_int

__all__ = ["GAU_ATTENTIONS", "GatedAttentionUnit"]

#: the attention kernels of :class:`GatedAttentionUnit`
GAU_ATTENTIONS = ("relu2", "softmax")


class GatedAttentionUnit(nn.Module):
    r"""Gated attention unit: ``O = (u * (A v)) W_o`` with one shared attention head.

    For an input ``X`` ``[B, n, dim]`` (already normalised by the caller):

    .. code-block:: text

        [u, v, z] = act(X W_uvz + b)         u, v: [B, n, e] (e = hidden_dim), z: [B, n, s] (s = qk_dim)
        q = z * gamma_q + beta_q              per-dimension scale and offset of the shared z
        k = z * gamma_k + beta_k
        A = relu(q k^T / n_k + r_{j-i})^2     attention="relu2" (the paper's squared ReLU)
        A = softmax_j(q k^T / sqrt(s) + r_{j-i})   attention="softmax"
        O = (u * (A v)) W_o + b_o             u gates the attended values element-wise

    ``n_k`` is the number of keys a query may see before the causal mask: the sequence length
    ``n``, or the number of non-padded keys of the row with ``key_padding_mask``. ``r`` is a learned
    relative position bias over the clipped distance ``clip(j - i, -max_rel_pos, max_rel_pos)``
    (``max_rel_pos=None``: no bias). Masked keys (``key_padding_mask``, ``is_causal``) get
    ``A = 0``; a query with no visible key gets ``O = (u * 0) W_o + b_o``.

    Args:
        dim: model width (input and output).
        hidden_dim: ``e``, the width of ``u`` and ``v`` (default ``2 * dim``, the paper's expansion).
        qk_dim: ``s``, the width of the shared query/key base ``z`` (paper: 128).
        act: activation of ``u``, ``v``, ``z`` (paper: SiLU / swish).
        attention: ``"relu2"`` (paper) or ``"softmax"``.
        max_rel_pos: largest relative distance with its own bias (``None``: no position bias).
        dropout: dropout on the attention weights ``A`` (training only).
        bias: biases of the two projections.

    Shapes: ``x`` ``[B, n, dim]``; ``key_padding_mask`` bool ``[B, n]`` (``True`` = padding);
    output ``[B, n, dim]``. ``is_causal=True``: query ``i`` sees keys ``j <= i``.

    Captured gate (``capture_gates``): ``u`` ``[B, n, e]``, the gating branch.

    Precision: ``q``, ``k``, ``A`` and ``u * (A v)`` are computed in (at least) float32 and cast
    back before ``W_o`` (``(q k^T)^2`` and its gradient overflow half precision).

    Paper: W. Hua, Z. Dai, H. Liu, Q. V. Le, "Transformer Quality in Linear Time", ICML 2022
    (Sec. 2, the GAU; its pseudo-code computes ``relu(q k^T / n + bias)^2`` with ``n`` the
    sequence length). Used by Mega (Ma et al. 2023) and MossFormer (Zhao et al. 2023).

    Deviations: no normalisation and no residual inside (the caller's pre-norm block adds them, as
    for the other attention layers here; the paper's GAU includes both); the relative position
    bias is a clipped table (the paper uses T5's log-bucketed bias); ``n_k`` counts only
    non-padded keys; no linear-time chunked form (FLASH's mixed-chunk attention): the quadratic
    form, exact for the short audio sequences it is used on here; the softmax variant and
    attention dropout are options.
    """

    def __init__(
        self,
        dim: int,
        hidden_dim: int | None = None,
        qk_dim: int = 128,
        *,
        act: ActLike = "silu",
        attention: Literal["relu2", "softmax"] = "relu2",
        max_rel_pos: int | None = 64,
        dropout: float = 0.0,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        fk = {"device": device, "dtype": dtype}
        hidden_dim = 2 * dim if hidden_dim is None else hidden_dim
        check_positive_int("GatedAttentionUnit", "dim", dim)
        check_positive_int("GatedAttentionUnit", "hidden_dim", hidden_dim)
        check_positive_int("GatedAttentionUnit", "qk_dim", qk_dim)
        check_positive_int("GatedAttentionUnit", "max_rel_pos", max_rel_pos, allow_none=True)
        check_dropout("GatedAttentionUnit", dropout)
        if attention not in GAU_ATTENTIONS:
            raise ValueError(f"GatedAttentionUnit: attention must be one of {GAU_ATTENTIONS}, got {attention!r}")
        self.dim, self.hidden_dim, self.qk_dim = dim, hidden_dim, qk_dim
        self.attention = attention
        self.max_rel_pos = max_rel_pos
        self.to_uvz = nn.Linear(dim, 2 * hidden_dim + qk_dim, bias=bias, **fk)
        self.act = create_act(act)
        self.gamma = nn.Parameter(torch.empty(2, qk_dim, **fk))  # rows: query, key
        self.beta = nn.Parameter(torch.empty(2, qk_dim, **fk))
        self.rel_pos = None if max_rel_pos is None else nn.Parameter(torch.empty(2 * max_rel_pos + 1, **fk))
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_dim, dim, bias=bias, **fk)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Projections: PyTorch's default; ``gamma ~ N(0, 0.02)``, ``beta = 0`` (paper); ``r = 0``."""
        self.to_uvz.reset_parameters()
        self.out.reset_parameters()
        nn.init.normal_(self.gamma, std=0.02)
        nn.init.zeros_(self.beta)
        if self.rel_pos is not None:
            nn.init.zeros_(self.rel_pos)

    def position_bias(self, n: int) -> torch.Tensor:
        """The relative position bias ``r_{j-i}`` ``[n, n]`` (zeros without ``max_rel_pos``)."""
        if self.rel_pos is None:
            return torch.zeros(n, n, device=self.gamma.device, dtype=self.gamma.dtype)
        pos = torch.arange(n, device=self.rel_pos.device)
        rel = (pos[None, :] - pos[:, None]).clamp(-self.max_rel_pos, self.max_rel_pos) + self.max_rel_pos
        return self.rel_pos[rel]

    def forward(
        self,
        x: torch.Tensor,
        *,
        key_padding_mask: torch.Tensor | None = None,
        is_causal: bool = False,
    ) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"GatedAttentionUnit: expected x [B, n, {self.dim}], got {tuple(x.shape)}")
        B, n, _ = x.shape
        if key_padding_mask is not None:
            if key_padding_mask.dtype != torch.bool or tuple(key_padding_mask.shape) != (B, n):
                raise ValueError(
                    f"GatedAttentionUnit: key_padding_mask must be bool [B, n] = {(B, n)}, "
                    f"got {tuple(key_padding_mask.shape)} {key_padding_mask.dtype}"
                )
        e, s = self.hidden_dim, self.qk_dim
        u, v, z = self.act(self.to_uvz(x)).split([e, e, s], dim=-1)
        ct = torch.promote_types(x.dtype, torch.float32)
        gamma, beta = self.gamma.to(ct), self.beta.to(ct)
        zc = z.to(ct)
        q = zc * gamma[0] + beta[0]
        k = zc * gamma[1] + beta[1]
        visible = torch.ones(1, n, n, dtype=torch.bool, device=x.device)
        if is_causal:
            visible = torch.tril(visible)
        if key_padding_mask is not None:
            visible = visible & ~key_padding_mask[:, None, :]
        scores = q @ k.transpose(-1, -2)
        bias = self.position_bias(n).to(ct)
        if self.attention == "relu2":
            if key_padding_mask is None:
                n_k = torch.full((1, 1, 1), float(n), dtype=ct, device=x.device)
            else:
                n_k = (~key_padding_mask).sum(dim=-1).to(ct).clamp_min(1.0)[:, None, None]
            a = torch.relu(scores / n_k + bias).square()
            a = a.masked_fill(~visible, 0.0)
        else:
            logits = (scores / math.sqrt(s) + bias).masked_fill(~visible, float("-inf"))
            peak = logits.amax(dim=-1, keepdim=True)
            peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
            ex = torch.exp(logits - peak)
            a = ex / ex.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(ct).tiny)
        a = self.drop(a)
        if is_capturing():
            record_gate(self, u)
        o = u.to(ct) * (a @ v.to(ct))
        return self.out(o.to(x.dtype))

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, hidden_dim={self.hidden_dim}, qk_dim={self.qk_dim}, "
            f"attention={self.attention!r}, max_rel_pos={self.max_rel_pos}"
        )
