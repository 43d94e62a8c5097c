"""Output-gated multi-head attention (Qiu et al. 2025).

Family 8 of :mod:`gatelab.core`: multi-head attention whose per-head SDPA output is multiplied by a
sigmoid gate computed from the query input, before the output projection.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .kernels import dispatch, is_sigmoid
from .kernels.sigmoid_gate import sigmoid_gate
from .layers.activations import ActLike, get_act
from .layers.capture import is_capturing, record_gate
from .layers.fusion import is_plain

GATE_KINDS: tuple[str, ...] = ("headwise", "elementwise")


def _fusable_sigmoid(act: Callable[[torch.Tensor], torch.Tensor]) -> bool:
    """The gate is the sigmoid and, when given as a module, one without hooks (the kernel skips it)."""
    return is_sigmoid(act) and (not isinstance(act, nn.Module) or is_plain(act, nn.Sigmoid))


class OutputGatedAttention(nn.Module):
    r"""Multi-head attention with a gate on the SDPA output (G1 position of Qiu et al. 2025).

    For every head :math:`h` and query token :math:`t`

    .. math::

        o_{t,h} = \operatorname{SDPA}(q_h, k_h, v_h)_t \odot \sigma(x_t W_g + b_g)_h, \qquad
        y_t = [o_{t,1}; \dots; o_{t,H}] W_o + b_o

    with :math:`q = x W_q`, :math:`k = \mathrm{kv}\, W_k`, :math:`v = \mathrm{kv}\, W_v`
    (``kv = x`` for self-attention). The gate is computed from the same input as the queries.

    * ``gate="headwise"``: one scalar gate per head and token, :math:`\sigma(\cdot)_h \in (0,1)`.
    * ``gate="elementwise"``: one gate per head and head dimension, :math:`\sigma(\cdot)_h \in (0,1)^{d_h}`.
    * ``gate=None``: plain multi-head attention, no gate parameters.

    As in the official code (qiuzh20/gated_attention) the gate projection is fused into the query
    projection: ``q_proj`` maps ``dim -> num_heads * (head_dim + g)`` with ``g = 1`` (head-wise),
    ``g = head_dim`` (element-wise) or ``g = 0``, laid out head by head as
    ``[q_1 (head_dim), gate_1 (g), q_2, gate_2, ...]``, the layout of the official checkpoints.

    Args:
        dim: model width (query input and output size); must be divisible by ``num_heads``.
        num_heads: number of attention heads ``H``; ``head_dim = dim // num_heads``.
        gate: ``"headwise"``, ``"elementwise"`` or ``None``.
        gate_act: squashing function of the gate (default sigmoid, the paper's choice).
        bias: bias of the output projection.
        qkv_bias: bias of the query(+gate)/key/value projections (default: ``bias``).
        dropout: attention-probability dropout (active in training only).
        kv_dim: width of the key/value input for cross-attention (default ``dim``).

    Shapes:
        * ``x``: ``[B, Tq, dim]``; ``kv``: ``[B, Tk, kv_dim]`` (default ``x``).
        * ``attn_mask``: boolean, ``True`` = may attend, broadcastable to ``[B, H, Tq, Tk]``.
        * ``key_padding_mask``: boolean ``[B, Tk]``, ``True`` = padding (ignored key).
        * output: ``[B, Tq, dim]``; with ``need_weights=True`` the tuple ``(output, weights)`` with the
          attention probabilities ``[B, H, Tq, Tk]`` (before dropout), computed by an explicit float32
          softmax instead of ``scaled_dot_product_attention``.

    ``is_causal=True`` lets query ``i`` see keys ``j <= i`` (top-left aligned, as
    ``scaled_dot_product_attention``); it combines with the masks by logical AND. A query whose keys
    are all masked gets a zero attention output (finite, zero gradient) instead of NaN.

    Captured gate (``capture_gates``): the gate after ``gate_act``, ``[B, Tq, H]`` (head-wise) or
    ``[B, Tq, H, head_dim]`` (element-wise).

    Paper: Z. Qiu et al., "Gated Attention for Large Language Models: Non-linearity, Sparsity, and
    Attention-Sink-Free", 2025 (arXiv:2505.06708).

    Deviations: no rotary embedding, QK-norm or grouped-query attention (compose them outside; this is
    the gate in isolation); ``bias`` and ``qkv_bias`` are separate switches (the official code uses one
    flag for all four projections); fully masked query rows give zero output rather than NaN.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        gate: str | None = "headwise",
        gate_act: ActLike = "sigmoid",
        bias: bool = True,
        qkv_bias: bool | None = None,
        dropout: float = 0.0,
        kv_dim: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        if dim <= 0 or num_heads <= 0:
            raise ValueError(f"dim and num_heads must be positive, got dim={dim}, num_heads={num_heads}")
        if dim % num_heads != 0:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        if gate is not None and gate not in GATE_KINDS:
            raise ValueError(f"gate must be one of {GATE_KINDS} or None, got {gate!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.gate = gate
        self.gate_dim = {None: 0, "headwise": 1, "elementwise": self.head_dim}[gate]
        self.dropout = dropout
        self.kv_dim = dim if kv_dim is None else kv_dim
        qkv_bias = bias if qkv_bias is None else qkv_bias
        self.gate_act = get_act(gate_act)
        self.q_proj = nn.Linear(
            dim, num_heads * (self.head_dim + self.gate_dim), bias=qkv_bias, **factory_kwargs
        )
        self.k_proj = nn.Linear(self.kv_dim, dim, bias=qkv_bias, **factory_kwargs)
        self.v_proj = nn.Linear(self.kv_dim, dim, bias=qkv_bias, **factory_kwargs)
        self.out_proj = nn.Linear(dim, dim, bias=bias, **factory_kwargs)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_heads={self.num_heads}, gate={self.gate!r}, kv_dim={self.kv_dim}, dropout={self.dropout}"

    def _mask(
        self,
        attn_mask: torch.Tensor | None,
        key_padding_mask: torch.Tensor | None,
        is_causal: bool,
        B: int,
        Tq: int,
        Tk: int,
        device: torch.device,
    ) -> torch.Tensor | None:
        """Combine the masks into one boolean ``[B|1, H|1, Tq, Tk]`` mask (True = attend), or None."""
        target = (B, self.num_heads, Tq, Tk)
        mask = None
        if attn_mask is not None:
            if attn_mask.dtype != torch.bool:
                raise TypeError(f"attn_mask must be boolean (True = may attend), got dtype {attn_mask.dtype}")
            if attn_mask.dim() > 4:
                raise ValueError(f"attn_mask must have at most 4 dims, got shape {tuple(attn_mask.shape)}")
            try:
                shape = torch.broadcast_shapes(tuple(attn_mask.shape), target)
            except RuntimeError:
                shape = None
            if shape != target:
                raise ValueError(
                    f"attn_mask of shape {tuple(attn_mask.shape)} is not broadcastable to [B, H, Tq, Tk] = {target}"
                )
            mask = attn_mask
            while mask.dim() < 4:
                mask = mask.unsqueeze(0)
        if key_padding_mask is not None:
            if key_padding_mask.dtype != torch.bool:
                raise TypeError(
                    f"key_padding_mask must be boolean (True = padding), got dtype {key_padding_mask.dtype}"
                )
            if tuple(key_padding_mask.shape) != (B, Tk):
                raise ValueError(
                    f"key_padding_mask must have shape [B, Tk] = {(B, Tk)}, got {tuple(key_padding_mask.shape)}"
                )
            keep = (~key_padding_mask)[:, None, None, :]
            mask = keep if mask is None else mask & keep
        if is_causal and mask is not None:
            causal = torch.ones(Tq, Tk, dtype=torch.bool, device=device).tril()
            mask = mask & causal
        return mask

    def forward(
        self,
        x: torch.Tensor,
        kv: torch.Tensor | None = None,
        *,
        attn_mask: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        need_weights: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Attend from ``x`` to ``kv`` (``x`` itself when ``None``); see the class docstring for shapes."""
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"x must have shape [B, T, dim={self.dim}], got {tuple(x.shape)}")
        if kv is None:
            if self.kv_dim != self.dim:
                raise ValueError(
                    f"this layer has kv_dim={self.kv_dim} != dim={self.dim}: pass kv (cross-attention)"
                )
            kv = x
        elif kv.dim() != 3 or kv.shape[0] != x.shape[0] or kv.shape[-1] != self.kv_dim:
            raise ValueError(
                f"kv must have shape [B={x.shape[0]}, Tk, kv_dim={self.kv_dim}], got {tuple(kv.shape)}"
            )
        B, Tq, _ = x.shape
        Tk = kv.shape[1]
        H, Dh = self.num_heads, self.head_dim

        qg = self.q_proj(x).view(B, Tq, H, Dh + self.gate_dim)
        q = qg[..., :Dh].transpose(1, 2)  # [B, H, Tq, Dh]
        k = self.k_proj(kv).view(B, Tk, H, Dh).transpose(1, 2)
        v = self.v_proj(kv).view(B, Tk, H, Dh).transpose(1, 2)

        mask = self._mask(attn_mask, key_padding_mask, is_causal, B, Tq, Tk, x.device)
        has_key = None
        if mask is not None:
            # A query row with no visible key: let it see every key (finite softmax), zero its output below.
            has_key = mask.any(dim=-1, keepdim=True)
            mask = mask | ~has_key
        dropout_p = self.dropout if self.training else 0.0

        weights = None
        if need_weights:
            # fp32 scores and softmax: half-precision q.k overflows on large logits.
            scores = (q.float() @ k.float().transpose(-2, -1)) * (1.0 / math.sqrt(Dh))
            if mask is not None:
                scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
            elif is_causal:
                causal = torch.ones(Tq, Tk, dtype=torch.bool, device=x.device).tril()
                scores = scores.masked_fill(~causal, torch.finfo(scores.dtype).min)
            weights = torch.softmax(scores, dim=-1).to(q.dtype)
            if has_key is not None:
                weights = weights * has_key
            attn = F.dropout(weights, p=dropout_p, training=self.training) @ v
        else:
            attn = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal and mask is None
            )
            if has_key is not None:
                attn = attn * has_key
        attn = attn.transpose(1, 2)  # [B, Tq, H, Dh]

        if self.gate is not None:
            logits = qg[..., Dh:]  # [B, Tq, H, 1 | Dh]
            if not is_capturing() and _fusable_sigmoid(self.gate_act):
                # one op (Triton on CUDA; reads the strided views in place)
                attn = dispatch("sigmoid_gate", attn, logits)
            else:
                attn, g = sigmoid_gate(attn, logits, gate_act=self.gate_act, return_gate=True)
                record_gate(self, g.squeeze(-1) if self.gate == "headwise" else g)
        out = self.out_proj(attn.reshape(B, Tq, self.dim))
        if need_weights:
            return out, weights
        return out
