"""Feature gating ops of the CTR models: PyTorch references and the Triton backends.

* ``feature_gate(x, z, scale=2.0, mask=None) = x * (sigmoid(z) * scale [* 2 sigmoid(mask)])``:
  FinalMLP's context gate (:class:`gatelab.core.FeatureGate`; Mao et al. 2023) with its optional
  learnable per-feature factor. ``z`` is the gate MLP's output (``[..., F]``, or ``[F]`` for a
  learned context, broadcast over the batch); ``mask`` is ``[F]``.
* ``gated_cross(c0, xw, g, cl, bias=None) = c0 * (xw + bias) * sigmoid(g) + cl``: the element-wise
  step of GDCN's gated cross layer (:class:`gatelab.core.GatedCrossLayer`; Wang et al. 2023), with
  ``xw = W_c c_l`` and ``g = W_g c_l`` from the layer's two matmuls and ``bias`` ``[D]``.

Shapes: every operand broadcasts to the output shape ``[..., D]``, which is the shape of ``x``
(``xw`` for the cross step). The references are plain PyTorch in the input dtype, the layers'
eager code. The Triton kernels (:mod:`.feature_gate_triton`) read every operand in place through
its strides, compute in float32 and round once; the backward recomputes the sigmoids and reduces
the gradients of broadcast operands (learned context, mask, bias) in float32.

Backend ``"triton"`` runs when triton can run (CUDA, or the CPU under ``TRITON_INTERPRET=1``) and
the tensors are float16/bfloat16/float32 of one dtype on one device whose broadcast shape is the
output's shape; ``scale`` must be a Python number.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable
from typing import Any

import torch

from ._common import check_tensors, reference_only, triton_available, triton_interpreted
from ._pointwise import broadcast_shape
from .dispatch import register_backend, register_op

__all__ = ["feature_gate", "gated_cross", "verify_feature_gate", "verify_gated_cross"]


@register_op("feature_gate", doc="x * sigmoid(z) * scale [* 2 sigmoid(mask)] (FinalMLP feature gating)")
def feature_gate(
    x: torch.Tensor,
    z: torch.Tensor,
    scale: float = 2.0,
    mask: torch.Tensor | None = None,
    *,
    gate_act: Callable[[torch.Tensor], torch.Tensor] | None = None,
    return_gate: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """FinalMLP feature gating ``x * (sigmoid(z) * scale [* 2 sigmoid(mask)])`` in the input dtype.

    ``gate_act`` replaces the sigmoid; ``return_gate=True`` returns ``(out, gate, mask_factor)``
    with ``gate = gate_act(z)`` (before ``scale``) and ``mask_factor = 2 sigmoid(mask)`` (``None``
    without a mask). Both options are served by this reference only.
    """
    gate = torch.sigmoid(z) if gate_act is None else gate_act(z)
    factor = gate * scale
    mask_factor = None
    if mask is not None:
        mask_factor = 2.0 * torch.sigmoid(mask)
        factor = factor * mask_factor
    out = x * factor
    return (out, gate, mask_factor) if return_gate else out


@register_op("gated_cross", doc="c0 * (xw + bias) * sigmoid(g) + cl (GDCN gated cross step)")
def gated_cross(
    c0: torch.Tensor,
    xw: torch.Tensor,
    g: torch.Tensor,
    cl: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    gate_act: Callable[[torch.Tensor], torch.Tensor] | None = None,
    return_gate: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """GDCN's element-wise step ``c0 * (xw + bias) * sigmoid(g) + cl`` in the input dtype.

    ``gate_act`` replaces the sigmoid; ``return_gate=True`` also returns ``gate_act(g)``; both
    are served by this reference only.
    """
    cross = xw if bias is None else xw + bias
    gate = torch.sigmoid(g) if gate_act is None else gate_act(g)
    out = c0 * cross * gate + cl
    return (out, gate) if return_gate else out


def verify_feature_gate(
    x: torch.Tensor, z: torch.Tensor, scale: float = 2.0, mask: torch.Tensor | None = None, **options: Any
) -> str | None:
    """``None`` when the Triton feature-gate kernels accept the inputs, else the reason."""
    why = reference_only(**options) or check_tensors((("x", x), ("z", z), ("mask", mask)))
    if why is not None:
        return why
    if x.dim() == 0:
        return "x is 0-dimensional (need [..., F])"
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        return f"scale must be a Python number, got {type(scale).__name__}"
    if broadcast_shape(x, z, mask) != tuple(x.shape):
        shapes = ", ".join(str(tuple(t.shape)) for t in (z, mask) if t is not None)
        return f"z/mask shapes {shapes} do not broadcast to x's shape {tuple(x.shape)}"
    return None


def verify_gated_cross(
    c0: torch.Tensor,
    xw: torch.Tensor,
    g: torch.Tensor,
    cl: torch.Tensor,
    bias: torch.Tensor | None = None,
    **options: Any,
) -> str | None:
    """``None`` when the Triton gated-cross kernels accept the inputs, else the reason."""
    why = reference_only(**options) or check_tensors(
        (("c0", c0), ("xw", xw), ("g", g), ("cl", cl), ("bias", bias))
    )
    if why is not None:
        return why
    if xw.dim() == 0:
        return "xw is 0-dimensional (need [..., D])"
    if broadcast_shape(c0, xw, g, cl, bias) != tuple(xw.shape):
        shapes = ", ".join(str(tuple(t.shape)) for t in (c0, g, cl, bias) if t is not None)
        return f"c0/g/cl/bias shapes {shapes} do not broadcast to xw's shape {tuple(xw.shape)}"
    return None


_triton_backend = functools.partial(
    register_backend,
    name="triton",
    priority=10,
    devices=("cuda",),
    available=triton_available,
    interpreted=triton_interpreted,
)


@_triton_backend("feature_gate", verifier=verify_feature_gate)
def feature_gate_triton(
    x: torch.Tensor, z: torch.Tensor, scale: float = 2.0, mask: torch.Tensor | None = None, **options: Any
) -> torch.Tensor:
    """Triton forward/backward of :func:`feature_gate` (backward recomputes the sigmoids)."""
    from .feature_gate_triton import feature_gate_triton as fn  # importing triton is slow: on first use

    return fn(x, z, float(scale), mask)


@_triton_backend("gated_cross", verifier=verify_gated_cross)
def gated_cross_triton(
    c0: torch.Tensor,
    xw: torch.Tensor,
    g: torch.Tensor,
    cl: torch.Tensor,
    bias: torch.Tensor | None = None,
    **options: Any,
) -> torch.Tensor:
    """Triton forward/backward of :func:`gated_cross` (backward recomputes the sigmoid)."""
    from .feature_gate_triton import gated_cross_triton as fn

    return fn(c0, xw, g, cl, bias)
