"""Fused additive grid attention gate (Attention U-Net): PyTorch reference and the Triton tail.

The op ``attention_gate`` computes, for the skip ``x`` ``[B, C, *S]`` and the gating signal ``g``
``[B, C_g, *S_g]`` (2D or 3D)::

    theta = W_theta * x                         conv, kernel = stride = s, no bias   [B, F, *S/s]
    h     = theta + resample(W_phi * g + b_phi, S/s)                                  [B, F, *S/s]
    a     = sigmoid(psi^T relu(h) + b_psi)                                            [B, 1, *S/s]
    alpha = resample(a, S)                                                            [B, 1, *S]
    y     = alpha * x                                                                 [B, C, *S]

and returns ``(y, alpha)``; the gate's output projection ``W_o`` and its norm stay in
:class:`gatelab.core.AttentionGate`. ``resample`` is ``F.interpolate`` with the gate's mode.

One custom autograd function serves every backend and saves the minimum: the inputs it needs
anyway (``x``, ``g``, the weights), ``h`` and ``a`` (both on the coarse grid ``S/s``); ``alpha``
is re-interpolated from ``a`` in the backward, ``relu(h)``, its mask and the psi logits are never
stored. The backward is written out: ``dalpha = sum_c dy * x``, the resample's adjoint, the
sigmoid/psi/ReLU chain, then ``aten.convolution_backward`` for ``W_theta`` and ``W_phi``.

The element-wise tail on the coarse grid (``h -> a`` forward; ``(h, a, da) -> dh, dpsi, db_psi``
backward: the add, ReLU, the psi reduction over ``F`` and the sigmoid) runs in PyTorch for the
reference and in Triton (:mod:`.attention_gate_triton`) for backend ``"triton"``: one kernel per
direction, each voxel's ``F`` channels in one tile, float32 arithmetic.

Values equal the module's unfused eager code (``AttentionGate`` before this op) up to float32
rounding: tested at relative 1e-5 for values and gradients. Backend ``"triton"`` runs when triton
can run (CUDA, or the CPU under ``TRITON_INTERPRET=1``), every tensor is float32 of one device,
and ``F <= 4096``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ._common import check_tensors, triton_available, triton_interpreted
from .dispatch import register_backend, register_op

__all__ = ["AttentionGateFunction", "attention_gate", "tail_backward_torch", "tail_forward_torch", "verify_attention_gate"]

#: most channels ``F`` the Triton tail holds in one tile
MAX_INTER_CHANNELS = 4096

_CONV = {2: F.conv2d, 3: F.conv3d}


def tail_forward_torch(
    theta: torch.Tensor, phi: torch.Tensor, psi_weight: torch.Tensor, psi_bias: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``h = theta + phi``, ``a = sigmoid(psi^T relu(h) + b)``: ``theta``, ``phi`` ``[B, F, *V]``,
    ``psi_weight`` ``[F]``; returns ``(h [B, F, *V], a [B, 1, *V])``."""
    h = theta + phi
    q = torch.einsum("bf...,f->b...", torch.relu(h), psi_weight).unsqueeze(1)  # one GEMV over F
    if psi_bias is not None:
        q = q + psi_bias.reshape(())
    return h, torch.sigmoid(q)


def tail_backward_torch(
    h: torch.Tensor, a: torch.Tensor, psi_weight: torch.Tensor, da: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of :func:`tail_forward_torch`'s ``a`` given ``da`` ``[B, 1, *V]``:
    ``(dh [B, F, *V], dpsi_weight [F], dpsi_bias [])``."""
    dq = da * a * (1 - a)
    dpsi = torch.einsum("bf...,b...->f", torch.relu(h), dq.squeeze(1))
    w = psi_weight.view(1, -1, *([1] * (h.dim() - 2)))
    dh = torch.ops.aten.threshold_backward(dq * w, h, 0)  # the ReLU's backward: 0 where h <= 0
    return dh, dpsi, dq.sum()


def _resample(t: torch.Tensor, size: Sequence[int], mode: str, align_corners: bool | None) -> torch.Tensor:
    if tuple(t.shape[2:]) == tuple(size):
        return t
    return F.interpolate(t, size=tuple(size), mode=mode, align_corners=align_corners)


_UPSAMPLE_BACKWARD = {
    "bilinear": torch.ops.aten.upsample_bilinear2d_backward,
    "trilinear": torch.ops.aten.upsample_trilinear3d_backward,
}
_NEAREST_BACKWARD = {4: torch.ops.aten.upsample_nearest2d_backward, 5: torch.ops.aten.upsample_nearest3d_backward}


def _resample_backward(
    grad: torch.Tensor, in_shape: torch.Size, mode: str, align_corners: bool | None
) -> torch.Tensor:
    """Adjoint of :func:`_resample` from ``in_shape`` to ``grad``'s grid (identity when equal).

    The (bi/tri)linear and nearest modes call the interpolation's own backward op (what autograd
    runs for ``F.interpolate(size=...)``, which passes no scales); other modes differentiate a
    probe interpolation (not traceable by ``torch.compile``).
    """
    if tuple(grad.shape[2:]) == tuple(in_shape[2:]):
        return grad
    out_size, in_size = list(grad.shape[2:]), list(in_shape)
    nd = len(out_size)
    if mode in _UPSAMPLE_BACKWARD:
        return _UPSAMPLE_BACKWARD[mode](grad, out_size, in_size, bool(align_corners), *([None] * nd))
    if mode == "nearest":
        return _NEAREST_BACKWARD[grad.dim()](grad, out_size, in_size, *([None] * nd))
    with torch.enable_grad():  # e.g. "area": the backward reads only the shapes
        probe = torch.zeros((), dtype=grad.dtype, device=grad.device).expand(in_shape).requires_grad_()
        out = F.interpolate(probe, size=tuple(grad.shape[2:]), mode=mode, align_corners=align_corners)
        (g,) = torch.autograd.grad(out, probe, grad)
    return g


class AttentionGateFunction(torch.autograd.Function):
    """``(y, alpha)`` of the module docstring with a hand-written backward (minimal saved state).

    ``tail`` is ``"torch"`` (reference) or ``"triton"``.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        g: torch.Tensor,
        theta_weight: torch.Tensor,
        phi_weight: torch.Tensor,
        phi_bias: torch.Tensor | None,
        psi_weight: torch.Tensor,
        psi_bias: torch.Tensor | None,
        stride: tuple[int, ...],
        mode: str,
        align_corners: bool | None,
        tail: str,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        nd = x.dim() - 2
        conv = _CONV[nd]
        theta = conv(x, theta_weight, None, stride=stride)
        phi_small = conv(g, phi_weight, phi_bias)
        phi = _resample(phi_small, theta.shape[2:], mode, align_corners)
        w = psi_weight.reshape(-1)
        if tail == "triton":
            from .attention_gate_triton import tail_forward

            h, a = tail_forward(theta, phi, w, psi_bias)
        else:
            h, a = tail_forward_torch(theta, phi, w, psi_bias)
        alpha = _resample(a, x.shape[2:], mode, align_corners)
        y = alpha * x
        ctx.save_for_backward(x, g, theta_weight, phi_weight, psi_weight, h, a)
        ctx.conf = (stride, mode, align_corners, tail, phi_small.shape, phi_bias is not None, psi_bias is not None)
        return y, alpha

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor | None, dalpha: torch.Tensor | None):
        x, g, theta_weight, phi_weight, psi_weight, h, a = ctx.saved_tensors
        stride, mode, align_corners, tail, phi_shape, has_phi_bias, has_psi_bias = ctx.conf
        nd = x.dim() - 2
        need = ctx.needs_input_grad
        alpha = _resample(a, x.shape[2:], mode, align_corners)
        dal = (dy * x).sum(1, keepdim=True)
        if dalpha is not None:
            dal = dal + dalpha
        da = _resample_backward(dal, a.shape, mode, align_corners)
        if tail == "triton":
            from .attention_gate_triton import tail_backward

            dh, dpsi, dpsi_b = tail_backward(h, a, psi_weight.reshape(-1), da)
        else:
            dh, dpsi, dpsi_b = tail_backward_torch(h, a, psi_weight.reshape(-1), da)
        zeros = [0] * nd
        ones = [1] * nd
        gx_theta, d_theta_w, _ = torch.ops.aten.convolution_backward(
            dh, x, theta_weight, None, list(stride), zeros, ones, False, zeros, 1, [need[0], need[2], False]
        )
        dx = gx_theta.addcmul_(dy, alpha) if need[0] else None
        dphi_small = _resample_backward(dh, phi_shape, mode, align_corners)
        dg, d_phi_w, _ = torch.ops.aten.convolution_backward(
            dphi_small, g, phi_weight, None, ones, zeros, ones, False, zeros, 1, [need[1], need[3], False]
        )
        d_phi_b = dphi_small.sum((0, *range(2, nd + 2))) if has_phi_bias and need[4] else None
        d_psi_w = dpsi.reshape(psi_weight.shape) if need[5] else None
        d_psi_b = dpsi_b.reshape(1) if has_psi_bias and need[6] else None
        return dx, dg, d_theta_w, d_phi_w, d_phi_b, d_psi_w, d_psi_b, None, None, None, None


@register_op("attention_gate", doc="alpha * x of the additive grid attention gate (Attention U-Net), and alpha")
def attention_gate(
    x: torch.Tensor,
    g: torch.Tensor,
    theta_weight: torch.Tensor,
    phi_weight: torch.Tensor,
    phi_bias: torch.Tensor | None,
    psi_weight: torch.Tensor,
    psi_bias: torch.Tensor | None,
    *,
    stride: Sequence[int],
    mode: str = "trilinear",
    align_corners: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(alpha * x, alpha)`` of the module docstring, PyTorch tail (runs on any device).

    Shapes: ``x`` ``[B, C, *S]``, ``g`` ``[B, C_g, *S_g]``, ``theta_weight`` ``[F, C, *s]``
    (``stride = s``), ``phi_weight`` ``[F, C_g, 1, ...]``, ``phi_bias`` ``[F]``, ``psi_weight``
    ``[1, F, 1, ...]``, ``psi_bias`` ``[1]``; returns ``y`` ``[B, C, *S]`` and ``alpha`` ``[B, 1, *S]``.
    """
    return AttentionGateFunction.apply(
        x, g, theta_weight, phi_weight, phi_bias, psi_weight, psi_bias, tuple(stride), mode, align_corners, "torch"
    )


def verify_attention_gate(
    x: torch.Tensor,
    g: torch.Tensor,
    theta_weight: torch.Tensor,
    phi_weight: torch.Tensor,
    phi_bias: torch.Tensor | None,
    psi_weight: torch.Tensor,
    psi_bias: torch.Tensor | None,
    **options: Any,
) -> str | None:
    """``None`` when the Triton tail accepts these inputs, else the reason."""
    why = check_tensors(
        (
            ("x", x),
            ("g", g),
            ("theta_weight", theta_weight),
            ("phi_weight", phi_weight),
            ("phi_bias", phi_bias),
            ("psi_weight", psi_weight),
            ("psi_bias", psi_bias),
        ),
        dtypes=(torch.float32,),
    )
    if why is not None:
        return why
    if theta_weight.shape[0] > MAX_INTER_CHANNELS:
        return f"inter_channels {theta_weight.shape[0]} > {MAX_INTER_CHANNELS}"
    return None


@register_backend(
    "attention_gate",
    "triton",
    priority=10,
    devices=("cuda",),
    available=triton_available,
    verifier=verify_attention_gate,
    interpreted=triton_interpreted,
)
def attention_gate_triton(
    x: torch.Tensor,
    g: torch.Tensor,
    theta_weight: torch.Tensor,
    phi_weight: torch.Tensor,
    phi_bias: torch.Tensor | None,
    psi_weight: torch.Tensor,
    psi_bias: torch.Tensor | None,
    *,
    stride: Sequence[int],
    mode: str = "trilinear",
    align_corners: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`attention_gate` with the coarse-grid tail in Triton (forward and backward)."""
    return AttentionGateFunction.apply(
        x, g, theta_weight, phi_weight, phi_bias, psi_weight, psi_bias, tuple(stride), mode, align_corners, "triton"
    )
