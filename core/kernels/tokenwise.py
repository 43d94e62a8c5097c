"""Token-wise gated fusion with its gate projection: PyTorch reference and the Triton backend.

``tokenwise_gate(a, b, weight, bias) = g * a + (1 - g) * b`` with
``g = sigmoid([a; b] W^T + bias)``: the gate of :class:`gatelab.core.TokenwiseGate` (the gated
multimodal unit's gate, Arevalo et al. 2017, applied per token), including its two-input linear.

* scalar mode: ``weight`` ``[1, 2D]``, one gate per token (``g`` ``[..., 1]``);
* vector mode: ``weight`` ``[D, 2D]``, one gate per feature (``g`` ``[..., D]``).

Shapes: ``a``, ``b`` ``[..., D]`` (same shape), ``bias`` ``[1]``/``[D]`` or ``None``; returns
``[..., D]`` in ``a``'s dtype. For float16/bfloat16 inputs the gate and the mix are computed in
float32 (the layer's precision rule: the gate's gradient ``a - b`` overflows half precision).

The reference is the layer's eager code: ``torch.cat`` + ``F.linear`` in the input dtype, then the
float32 gate and mix. The Triton kernels (:mod:`.tokenwise_triton`) never build ``[a; b]``: they
split ``W = [W_a | W_b]`` (views) and compute ``a W_a^T + b W_b^T`` themselves, with the sigmoid
and the mix as the epilogue (scalar mode: one pass over each row, the projection being a dot
product; vector mode: a tiled matmul with float32 accumulation whose epilogue reads the matching
``a``/``b`` tile). The logits are kept in float32 for the backward, which runs one element-wise
kernel (gate gradient and the mix's input gradients) and, in vector mode, cuBLAS matmuls for the
projection's gradients.

Backend ``"triton"`` runs when triton can run (CUDA, or the CPU under ``TRITON_INTERPRET=1``) and:
all tensors float16/bfloat16/float32 of one dtype on one device; ``a`` and ``b`` of one shape with
unit stride along the last dim; ``weight`` ``[1, 2D]`` or ``[D, 2D]`` and ``bias`` of its output
size or ``None``; in scalar mode ``D <= 16384``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ._common import check_tensors, reference_only, triton_available, triton_interpreted
from .dispatch import register_backend, register_op

__all__ = ["MAX_SCALAR_COLS", "tokenwise_gate", "tokenwise_mix", "verify_tokenwise_gate"]

#: largest ``D`` of the scalar-mode kernel (one program holds whole rows)
MAX_SCALAR_COLS = 16384


def tokenwise_mix(
    a: torch.Tensor,
    b: torch.Tensor,
    logits: torch.Tensor,
    *,
    gate_act: Callable[[torch.Tensor], torch.Tensor] | None = None,
    return_gate: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The gate and mix of the token-wise gate: ``g * a + (1 - g) * b``, ``g = gate_act(logits)``.

    The one PyTorch formula of the mix: the ``tokenwise_gate`` reference calls it with
    ``F.linear([a; b], weight, bias)``, :class:`gatelab.core.TokenwiseGate`'s plain path with its
    ``proj`` sub-module's output, :class:`gatelab.core.HighwayGate` with ``a = H(x)``, ``b = x``. ``gate_act`` defaults to the sigmoid. The gate and the mix are
    computed in (at least) float32 and cast back to ``a``'s dtype: ``dL/dg = a - b`` overflows
    float16/bfloat16 otherwise, and ``g*a + (1-g)*b`` rather than ``b + g*(a-b)`` for the same
    reason in the forward pass. ``return_gate=True`` also returns ``g`` in ``a``'s dtype.
    """
    ct = torch.promote_types(a.dtype, torch.float32)
    lt = logits.to(ct)
    g = torch.sigmoid(lt) if gate_act is None else gate_act(lt)
    out = (g * a.to(ct) + (1.0 - g) * b.to(ct)).to(a.dtype)
    return (out, g.to(a.dtype)) if return_gate else out


@register_op("tokenwise_gate", doc="g*a + (1-g)*b, g = sigmoid([a; b] W^T + c) (token-wise fusion)")
def tokenwise_gate(
    a: torch.Tensor,
    b: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    gate_act: Callable[[torch.Tensor], torch.Tensor] | None = None,
    return_gate: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``g * a + (1 - g) * b``, ``g = sigmoid(linear([a; b], weight, bias))``; float32 gate/mix for half inputs.

    ``gate_act`` / ``return_gate``: as :func:`tokenwise_mix` (served by this reference only).
    """
    logits = F.linear(torch.cat([a, b], dim=-1), weight, bias)
    return tokenwise_mix(a, b, logits, gate_act=gate_act, return_gate=return_gate)


def verify_tokenwise_gate(
    a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, **options: Any
) -> str | None:
    """``None`` when the Triton token-wise gate kernels accept the inputs, else the reason."""
    why = reference_only(**options) or check_tensors((("a", a), ("b", b), ("weight", weight), ("bias", bias)))
    if why is not None:
        return why
    if a.dim() == 0 or a.shape != b.shape:
        return f"a and b must have one shape [..., D], got {tuple(a.shape)} and {tuple(b.shape)}"
    D = a.shape[-1]
    if weight.dim() != 2 or weight.shape[1] != 2 * D or weight.shape[0] not in (1, D):
        return f"weight must be [1, 2D] or [D, 2D] with D={D}, got {tuple(weight.shape)}"
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        return f"bias must be [{weight.shape[0]}], got {tuple(bias.shape)}"
    for name, t in (("a", a), ("b", b)):
        if D > 1 and t.stride(-1) != 1:
            return f"{name} has stride {t.stride(-1)} along its last dimension (need 1)"
    if weight.shape[0] == 1 and D > 1 and D > MAX_SCALAR_COLS:
        return f"scalar gate over D={D} > {MAX_SCALAR_COLS} features"
    return None


@register_backend(
    "tokenwise_gate",
    "triton",
    priority=10,
    devices=("cuda",),
    available=triton_available,
    verifier=verify_tokenwise_gate,
    interpreted=triton_interpreted,
)
def tokenwise_gate_triton(
    a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, **options: Any
) -> torch.Tensor:
    """Triton forward/backward of :func:`tokenwise_gate` (projection fused with the mix)."""
    from .tokenwise_triton import tokenwise_gate_triton as fn  # importing triton is slow: on first use

    return fn(a, b, weight, bias)
