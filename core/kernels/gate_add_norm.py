"""GateAddNorm, TFT's gated skip connection: PyTorch reference and the fused Triton backend.

``gate_add_norm(h, skip, weight, bias, eps) = LayerNorm(v * sigmoid(g) + skip)`` with
``[v, g] = h`` split in halves along the last dimension (the GLU projection's output: value first,
gate second, ``F.glu``'s layout) and the LayerNorm over the last dimension with ``weight``,
``bias`` and ``eps`` (Lim et al. 2021, eq. (2): ``LayerNorm(a + GLU(eta))``).

Shapes: ``h`` ``[..., 2D]``, ``skip`` ``[..., D]`` (same leading dims), ``weight``, ``bias``
``[D]``; returns ``[..., D]``. The reference is the layer's eager code in the input dtype
(:class:`gatelab.core.GateAddNorm` calls this op; its skip resampling and trainable skip scale
happen before the op, in PyTorch). The Triton kernels (:mod:`.gate_add_norm_triton`) do the GLU,
the residual add and the LayerNorm in one pass over each row in float32 (one rounding, on store);
the backward recomputes ``v * sigmoid(g) + skip`` from the saved inputs and the per-row mean and
reciprocal standard deviation, and writes ``dh`` as one ``[..., 2D]`` tensor.

Backend ``"triton"`` runs when triton can run (CUDA, or the CPU under ``TRITON_INTERPRET=1``) and:
all tensors float16/bfloat16/float32 of one dtype on one device; ``h`` ``[..., 2D]`` and ``skip``
``[..., D]`` with the same leading shape (no broadcasting) and unit stride along the last dim;
``weight`` and ``bias`` both given, ``[D]``; ``D <= 16384`` (a row is normalised by one program).
Anything else runs the reference.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ._common import check_tensors, reference_only, triton_available, triton_interpreted
from .dispatch import register_backend, register_op
from .glu import glu_product

__all__ = ["MAX_COLS", "gate_add_norm", "verify_gate_add_norm"]

#: largest normalised width ``D`` of the Triton kernels (one program holds a whole row)
MAX_COLS = 16384


@register_op("gate_add_norm", doc="LayerNorm(v * sigmoid(g) + skip), [v, g] = h (TFT GateAddNorm)")
def gate_add_norm(
    h: torch.Tensor,
    skip: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float = 1e-5,
    *,
    gate_act: Callable[[torch.Tensor], torch.Tensor] | None = None,
    return_gate: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``LayerNorm(v * sigmoid(g) + skip)`` with ``[v, g] = h.chunk(2, -1)``, in the input dtype.

    ``gate_act`` replaces the sigmoid; ``return_gate=True`` also returns ``gate_act(g)``
    ``[..., D]`` (both served by this reference only). The GLU is :func:`.glu.glu_product`.
    """
    value, gate = h.chunk(2, dim=-1)
    y, g = glu_product(gate, value, torch.sigmoid if gate_act is None else gate_act, return_gate=True)
    x = y + skip
    out = F.layer_norm(x, (x.shape[-1],), weight, bias, eps)
    return (out, g) if return_gate else out


def verify_gate_add_norm(
    h: torch.Tensor,
    skip: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float = 1e-5,
    **options: Any,
) -> str | None:
    """``None`` when the fused Triton kernels accept the inputs, else the reason."""
    why = reference_only(**options) or check_tensors(
        (("h", h), ("skip", skip), ("weight", weight), ("bias", bias))
    )
    if why is not None:
        return why
    if weight is None or bias is None:
        return "LayerNorm without weight and bias (elementwise_affine=False) is not fused"
    if h.dim() == 0 or h.shape[-1] % 2:
        return f"h must be [..., 2D] with an even last dimension, got {tuple(h.shape)}"
    D = h.shape[-1] // 2
    if tuple(skip.shape) != (*h.shape[:-1], D):
        return f"skip shape {tuple(skip.shape)} is not h's leading shape + ({D},) (broadcasting is not fused)"
    if tuple(weight.shape) != (D,) or tuple(bias.shape) != (D,):
        return f"weight/bias shapes {tuple(weight.shape)}/{tuple(bias.shape)} are not ({D},)"
    if D > MAX_COLS:
        return f"normalised width {D} > {MAX_COLS}"
    for name, t in (("h", h), ("skip", skip), ("weight", weight), ("bias", bias)):
        if t.shape[-1] > 1 and t.stride(-1) != 1:
            return f"{name} has stride {t.stride(-1)} along its last dimension (need 1)"
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        return f"eps must be a Python number, got {type(eps).__name__}"
    return None


@register_backend(
    "gate_add_norm",
    "triton",
    priority=10,
    devices=("cuda",),
    available=triton_available,
    verifier=verify_gate_add_norm,
    interpreted=triton_interpreted,
)
def gate_add_norm_triton(
    h: torch.Tensor,
    skip: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float = 1e-5,
    **options: Any,
) -> torch.Tensor:
    """Fused Triton forward/backward of :func:`gate_add_norm` (``options`` at their defaults: the verifier checks)."""
    from .gate_add_norm_triton import gate_add_norm_triton as fn  # importing triton is slow: on first use

    return fn(h, skip, weight, bias, float(eps))
