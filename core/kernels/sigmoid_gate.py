"""Sigmoid output gate ``o * sigmoid(logits)``: PyTorch reference and the Triton backend.

The gate of :class:`gatelab.core.OutputGatedAttention` (Qiu et al. 2025): the SDPA output of every
head is multiplied by a sigmoid gate computed from the query input,

* head-wise: ``o [B, T, H, Dh] * sigmoid(logits [B, T, H, 1])`` (one gate per head, broadcast over
  the head dimension),
* element-wise: ``o [B, T, H, Dh] * sigmoid(logits [B, T, H, Dh])``.

Shapes: ``logits`` broadcasts to ``o``'s shape ``[..., D]``; the output has ``o``'s shape. The
reference is plain PyTorch in the input dtype (exactly the layer's eager code). The Triton kernels
(:mod:`.sigmoid_gate_triton`) read ``o`` and ``logits`` through their strides (the transposed
attention output and the gate slice of the fused query projection are used in place), compute in
float32, round once and write a contiguous output; the backward recomputes the sigmoid and, for
the head-wise gate, sums its gradient over the head dimension inside the kernel.

Backend ``"triton"`` runs when triton can run (CUDA, or the CPU under ``TRITON_INTERPRET=1``) and
both inputs are float16/bfloat16/float32 of one dtype on one device, ``logits`` broadcasts to
``o``'s shape, and (head-wise) the last dimension is at most 8192.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ._common import check_tensors, reference_only, triton_available, triton_interpreted
from ._pointwise import MAX_REDUCE_COLS, broadcast_shape
from .dispatch import register_backend, register_op

__all__ = ["sigmoid_gate", "verify_sigmoid_gate"]


@register_op("sigmoid_gate", doc="o * sigmoid(logits) (attention output gate, head-wise or element-wise)")
def sigmoid_gate(
    o: torch.Tensor,
    logits: torch.Tensor,
    *,
    gate_act: Callable[[torch.Tensor], torch.Tensor] | None = None,
    return_gate: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``o * sigmoid(logits)`` in the input dtype; ``logits`` broadcasts to ``o`` (``[..., 1]``: head-wise).

    ``gate_act`` replaces the sigmoid; ``return_gate=True`` also returns the gate (the shape of
    ``logits``); both are served by this reference only.
    """
    g = torch.sigmoid(logits) if gate_act is None else gate_act(logits)
    out = o * g
    return (out, g) if return_gate else out


def verify_sigmoid_gate(o: torch.Tensor, logits: torch.Tensor, **options: Any) -> str | None:
    """``None`` when the Triton sigmoid-gate kernels accept ``(o, logits)``, else the reason."""
    why = reference_only(**options) or check_tensors((("o", o), ("logits", logits)))
    if why is not None:
        return why
    if o.dim() == 0:
        return "o is 0-dimensional (need [..., D])"
    if broadcast_shape(o, logits) != tuple(o.shape):
        return f"logits of shape {tuple(logits.shape)} do not broadcast to o's shape {tuple(o.shape)}"
    if logits.dim() and logits.shape[-1] == 1 < o.shape[-1] and o.shape[-1] > MAX_REDUCE_COLS:
        return f"head-wise gate over a last dimension of {o.shape[-1]} > {MAX_REDUCE_COLS}"
    return None


@register_backend(
    "sigmoid_gate",
    "triton",
    priority=10,
    devices=("cuda",),
    available=triton_available,
    verifier=verify_sigmoid_gate,
    interpreted=triton_interpreted,
)
def sigmoid_gate_triton(o: torch.Tensor, logits: torch.Tensor, **options: Any) -> torch.Tensor:
    """Triton forward/backward of ``o * sigmoid(logits)`` (backward recomputes the sigmoid)."""
    from .sigmoid_gate_triton import sigmoid_gate_triton as fn  # importing triton is slow: on first use

    return fn(o, logits)
