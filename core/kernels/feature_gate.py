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

import torch

from ._common import check_tensors, triton_available, triton_interpreted
from ._pointwise import broadcast_shape
from .dispatch import register_backend, register_op

__all__ = ["feature_gate", "gated_cross", "verify_feature_gate", "verify_gated_cross"]


@register_op("feature_gate", doc="x * sigmoid(z) * scale [* 2 sigmoid(mask)] (FinalMLP feature gating)")
def feature_gate(
    x: torch.Tensor, z: torch.Tensor, scale: float = 2.0, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """FinalMLP feature gating ``x * (sigmoid(z) * scale [* 2 sigmoid(mask)])`` in the input dtype."""
    factor = torch.sigmoid(z) * scale
    if mask is not None:
        factor = factor * (2.0 * torch.sigmoid(mask))
    return x * factor


@register_op("gated_cross", doc="c0 * (xw + bias) * sigmoid(g) + cl (GDCN gated cross step)")
def gated_cross(
    c0: torch.Tensor,
    xw: torch.Tensor,
    g: torch.Tensor,
    cl: torch.Tensor,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """GDCN's element-wise step ``c0 * (xw + bias) * sigmoid(g) + cl`` in the input dtype."""
    cross = xw if bias is None else xw + bias
    return c0 * cross * torch.sigmoid(g) + cl


def verify_feature_gate(
    x: torch.Tensor, z: torch.Tensor, scale: float = 2.0, mask: torch.Tensor | None = None
) -> str | None:
    """``None`` when the Triton feature-gate kernels accept the inputs, else the reason."""
    why = check_tensors((("x", x), ("z", z), ("mask", mask)))
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
) -> str | None:
    """``None`` when the Triton gated-cross kernels accept the inputs, else the reason."""
    why = check_tensors((("c0", c0), ("xw", xw), ("g", g), ("cl", cl), ("bias", bias)))
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
    x: torch.Tensor, z: torch.Tensor, scale: float = 2.0, mask: torch.Tensor | None = None
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
) -> torch.Tensor:
    """Triton forward/backward of :func:`gated_cross` (backward recomputes the sigmoid)."""
    from .feature_gate_triton import gated_cross_triton as fn

    return fn(c0, xw, g, cl, bias)
