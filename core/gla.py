"""Gated Linear Attention (Yang et al. 2023): the layer.

Family 9 of :mod:`gatelab.core`. Tensor layout everywhere in this module: ``[B, T, H, D]`` (batch,
time, heads, head dim; fla's current layout); recurrent states are ``[B, H, K, V]``.

The op lives in :mod:`gatelab.core.kernels.gla`: :func:`~gatelab.core.kernels.gla.gla_recurrent` is
the definition (a loop over time), :func:`~gatelab.core.kernels.gla.gla_chunk` the chunk-parallel
form, the PyTorch reference of the Triton backend: both are pure functions without module state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .kernels import dispatch
from .kernels.gla import _compute_dtype, gla_recurrent
from .layers.activations import ActLike, get_act
from .layers.capture import record_gate

NORM_KINDS: tuple[str, ...] = ("rmsnorm", "layernorm")
MODES: tuple[str, ...] = ("chunk", "recurrent")


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
    :math:`d_v` with a learnable scale shared by the heads. ``GLA`` is :func:`~gatelab.core.kernels.gla.gla_chunk` or
    :func:`~gatelab.core.kernels.gla.gla_recurrent` (``mode``), with scale :math:`d_k^{-1/2}`.

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

    Precision: ``q``, ``k``, ``v`` enter the recurrence in the input dtype (bfloat16/float16 inputs
    use the Triton kernels' half-precision ``tl.dot`` with float32 accumulation on CUDA); the log
    forget gates and their cumulative sums, the states, the un-normalised output ``o`` and the head
    norm are float32. The PyTorch reference computes the same quantity in float32 from the
    half-precision ``q``, ``k``, ``v``.
    A bfloat16 layer agrees with its float32 twin to about 2e-2 relative (2-norm over the output;
    ``tests/core/kernels/test_gla_triton.py``).
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

        # q, k, v stay in the input dtype (bf16/fp16 reach the kernel's tensor-core dots, which
        # accumulate in float32); the log gates are float32 (their cumulative sums are float32 in the
        # kernel); o comes back in float32 (the un-normalised output can exceed float16's range) and
        # goes straight into the float32 head norm.
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
                output_dtype=ct,
            )
        else:
            o, state = gla_recurrent(
                q,
                k,
                v,
                gk,
                initial_state=initial_state,
                output_final_state=output_final_state,
                output_dtype=ct,
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
