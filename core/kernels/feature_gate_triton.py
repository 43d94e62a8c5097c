"""Triton kernels for FinalMLP's feature gate and GDCN's gated cross step, forward and backward.

Feature gate, per element (``m = 2 sigmoid(mask)`` or 1 without a mask)::

    out = x * f,          f = scale * s * m,   s = sigmoid(z)
    dx  = dout * f
    dz  = dout * x * scale * m * s * (1 - s)
    dmask = dout * x * scale * s * 2 * sm * (1 - sm),   sm = sigmoid(mask)

Gated cross step, per element::

    out = c0 * c * s + cl,   c = xw + bias,   s = sigmoid(g)
    dc0 = dout * c * s;  dxw = dout * c0 * s;  dg = dout * c0 * c * s * (1 - s);  dcl = dout
    dbias = sum over rows of dxw

Every operand is read through its own strides (:mod:`._pointwise`); gradients of operands that
broadcast (a learned context ``z`` of shape ``[F]``, the mask, the bias) are written over the full
shape in float32 and summed afterwards. Only the inputs are saved; the backward recomputes the
sigmoids. Computation in float32, rounded once on store. While ``torch.compile`` traces, the
autograd Functions call the kernels through opaque custom ops (see :mod:`.glu_triton`).
"""

from __future__ import annotations

from typing import Any

import torch

from ._pointwise import GradBuffer, layout
from ._triton_common import launch_pointwise, tuned_rows

try:
    import triton
    import triton.language as tl

    from ._triton_common import load_f32, pointwise_tile
except ImportError:  # the module must import without triton; the functions below raise instead
    triton = None
    tl = None


if triton is not None:

    @triton.jit
    def _feature_gate_fwd_kernel(
        x_ptr, z_ptr, m_ptr,  # inputs, read through their strides
        out_ptr,  # contiguous [R, D]
        scale, R, D, S1, S2,
        x_st, z_st, m_st,  # strides (s0, s1, s2, sc) of the inputs
        HAS_MASK: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    ):  # fmt: skip
        rows, cols, mask, lead = pointwise_tile(R, D, S1, S2, BLOCK_M, BLOCK_N)
        # fp32 upcast: one rounding of x * f instead of one per factor in half precision
        x = load_f32(x_ptr, x_st, lead, cols, mask)
        f = tl.sigmoid(load_f32(z_ptr, z_st, lead, cols, mask)) * scale
        if HAS_MASK:
            f = f * (2.0 * tl.sigmoid(load_f32(m_ptr, m_st, lead, cols, mask)))
        out = x * f
        tl.store(out_ptr + rows[:, None] * D + cols[None, :], out.to(out_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def _feature_gate_bwd_kernel(
        dout_ptr, x_ptr, z_ptr, m_ptr,  # inputs, read through their strides
        dx_ptr, dz_ptr, dm_ptr,  # contiguous [R, D]
        scale, R, D, S1, S2,
        d_st, x_st, z_st, m_st,  # strides (s0, s1, s2, sc) of the inputs
        HAS_MASK: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    ):  # fmt: skip
        rows, cols, mask, lead = pointwise_tile(R, D, S1, S2, BLOCK_M, BLOCK_N)
        out_offs = rows[:, None] * D + cols[None, :]  # gradient buffers are contiguous [R, D]
        dout = load_f32(dout_ptr, d_st, lead, cols, mask)
        x = load_f32(x_ptr, x_st, lead, cols, mask)
        # recompute the sigmoids in fp32 (s * (1 - s) cancels in half precision near s = 1)
        s = tl.sigmoid(load_f32(z_ptr, z_st, lead, cols, mask))
        m = tl.full(s.shape, 1.0, tl.float32)
        if HAS_MASK:
            sm = tl.sigmoid(load_f32(m_ptr, m_st, lead, cols, mask))
            m = 2.0 * sm
            dm = dout * x * scale * s * 2.0 * sm * (1.0 - sm)
            tl.store(dm_ptr + out_offs, dm.to(dm_ptr.dtype.element_ty), mask=mask)
        tl.store(dx_ptr + out_offs, (dout * s * scale * m).to(dx_ptr.dtype.element_ty), mask=mask)
        dz = dout * x * scale * m * s * (1.0 - s)
        tl.store(dz_ptr + out_offs, dz.to(dz_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def _gated_cross_fwd_kernel(
        c0_ptr, xw_ptr, g_ptr, cl_ptr, b_ptr,  # inputs, read through their strides
        out_ptr,  # contiguous [R, D]
        R, D, S1, S2,
        c0_st, xw_st, g_st, cl_st, b_st,  # strides (s0, s1, s2, sc) of the inputs
        HAS_BIAS: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    ):  # fmt: skip
        rows, cols, mask, lead = pointwise_tile(R, D, S1, S2, BLOCK_M, BLOCK_N)
        c0 = load_f32(c0_ptr, c0_st, lead, cols, mask)
        c = load_f32(xw_ptr, xw_st, lead, cols, mask)
        g = load_f32(g_ptr, g_st, lead, cols, mask)
        cl = load_f32(cl_ptr, cl_st, lead, cols, mask)
        if HAS_BIAS:
            c = c + load_f32(b_ptr, b_st, lead, cols, mask)
        # fp32: the product of three factors plus the residual rounds once instead of four times
        out = c0 * c * tl.sigmoid(g) + cl
        tl.store(out_ptr + rows[:, None] * D + cols[None, :], out.to(out_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def _gated_cross_bwd_kernel(
        dout_ptr, c0_ptr, xw_ptr, g_ptr, b_ptr,  # inputs, read through their strides
        dc0_ptr, dxw_ptr, dg_ptr,  # contiguous [R, D]
        R, D, S1, S2,
        d_st, c0_st, xw_st, g_st, b_st,  # strides (s0, s1, s2, sc) of the inputs
        HAS_BIAS: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    ):  # fmt: skip
        rows, cols, mask, lead = pointwise_tile(R, D, S1, S2, BLOCK_M, BLOCK_N)
        out_offs = rows[:, None] * D + cols[None, :]
        dout = load_f32(dout_ptr, d_st, lead, cols, mask)
        c0 = load_f32(c0_ptr, c0_st, lead, cols, mask)
        c = load_f32(xw_ptr, xw_st, lead, cols, mask)
        s = tl.sigmoid(load_f32(g_ptr, g_st, lead, cols, mask))  # recomputed, fp32
        if HAS_BIAS:
            c = c + load_f32(b_ptr, b_st, lead, cols, mask)
        tl.store(dc0_ptr + out_offs, (dout * c * s).to(dc0_ptr.dtype.element_ty), mask=mask)
        tl.store(dxw_ptr + out_offs, (dout * c0 * s).to(dxw_ptr.dtype.element_ty), mask=mask)
        dg = dout * c0 * c * s * (1.0 - s)
        tl.store(dg_ptr + out_offs, dg.to(dg_ptr.dtype.element_ty), mask=mask)


if triton is not None:
    # autotuned: rows per program and warps (only the first candidate under the interpreter)
    _feature_gate_fwd_kernel = tuned_rows(_feature_gate_fwd_kernel)
    _feature_gate_bwd_kernel = tuned_rows(_feature_gate_bwd_kernel)
    _gated_cross_fwd_kernel = tuned_rows(_gated_cross_fwd_kernel)
    _gated_cross_bwd_kernel = tuned_rows(_gated_cross_bwd_kernel)


def _require_triton() -> None:
    if triton is None:
        raise RuntimeError("gatelab.core.kernels.feature_gate_triton needs triton, which is not installed")


# ------------------------------------------------------------------------------------------------
# feature gate
# ------------------------------------------------------------------------------------------------
def feature_gate_forward(
    x: torch.Tensor, z: torch.Tensor, scale: float, mask: torch.Tensor | None
) -> torch.Tensor:
    """``x * sigmoid(z) * scale [* 2 sigmoid(mask)]`` by the Triton forward kernel (no autograd)."""
    _require_triton()
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    if out.numel() == 0:
        return out
    lay = layout(x.shape, x, z, mask)
    launch_pointwise(_feature_gate_fwd_kernel, lay, [out], scale, HAS_MASK=mask is not None)
    return out


def feature_gate_backward(
    dout: torch.Tensor, x: torch.Tensor, z: torch.Tensor, scale: float, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(dx, dz, dmask)`` by the Triton backward kernel (``dmask`` is ``None`` without a mask)."""
    _require_triton()
    if x.numel() == 0:
        zeros = [None if t is None else torch.zeros_like(t) for t in (x, z, mask)]
        return zeros[0], zeros[1], zeros[2]
    lay = layout(x.shape, dout.to(x.dtype), x, z, mask)
    dx = GradBuffer(x, lay)
    dz = GradBuffer(z, lay)
    dm = GradBuffer(mask, lay) if mask is not None else None
    outs = [dx.buf, dz.buf, dm.buf if dm is not None else None]
    launch_pointwise(_feature_gate_bwd_kernel, lay, outs, scale, HAS_MASK=mask is not None)
    return dx.result(), dz.result(), (dm.result() if dm is not None else None)


@torch.library.custom_op("gatelab::feature_gate_fwd", mutates_args=())
def _fg_fwd_op(x: torch.Tensor, z: torch.Tensor, scale: float, mask: torch.Tensor | None) -> torch.Tensor:
    return feature_gate_forward(x, z, scale, mask)


@_fg_fwd_op.register_fake
def _(x: torch.Tensor, z: torch.Tensor, scale: float, mask: torch.Tensor | None) -> torch.Tensor:
    return torch.empty(x.shape, dtype=x.dtype, device=x.device)


@torch.library.custom_op("gatelab::feature_gate_bwd", mutates_args=())
def _fg_bwd_op(
    dout: torch.Tensor, x: torch.Tensor, z: torch.Tensor, scale: float, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    dx, dz, dm = feature_gate_backward(dout, x, z, scale, mask)
    # custom ops return tensors, not None: an empty placeholder stands for the absent mask gradient
    return dx, dz, dm if dm is not None else x.new_empty(0)


@_fg_bwd_op.register_fake
def _(
    dout: torch.Tensor, x: torch.Tensor, z: torch.Tensor, scale: float, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (
        torch.empty_like(x),
        torch.empty_like(z),
        (torch.empty_like(mask) if mask is not None else x.new_empty(0)),
    )


class FeatureGateFunction(torch.autograd.Function):
    """Autograd wrapper of the feature gate: saves the inputs, recomputes the sigmoids in backward."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, z: torch.Tensor, scale: float, mask: torch.Tensor | None
    ) -> torch.Tensor:
        ctx.save_for_backward(x, z, mask)
        ctx.scale = scale
        if torch.compiler.is_compiling():
            return _fg_fwd_op(x, z, scale, mask)
        return feature_gate_forward(x, z, scale, mask)

    @staticmethod
    def backward(ctx: Any, dout: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, z, mask = ctx.saved_tensors
        if torch.compiler.is_compiling():
            dx, dz, dm = _fg_bwd_op(dout, x, z, ctx.scale, mask)
        else:
            dx, dz, dm = feature_gate_backward(dout, x, z, ctx.scale, mask)
        need = ctx.needs_input_grad
        return (
            dx if need[0] else None,
            dz if need[1] else None,
            None,
            dm if mask is not None and need[3] else None,
        )


def feature_gate_triton(
    x: torch.Tensor, z: torch.Tensor, scale: float, mask: torch.Tensor | None
) -> torch.Tensor:
    """Feature gate with Triton forward and backward; call through ``dispatch`` (it verifies)."""
    return FeatureGateFunction.apply(x, z, scale, mask)


# ------------------------------------------------------------------------------------------------
# gated cross step
# ------------------------------------------------------------------------------------------------
def gated_cross_forward(
    c0: torch.Tensor, xw: torch.Tensor, g: torch.Tensor, cl: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """``c0 * (xw + bias) * sigmoid(g) + cl`` by the Triton forward kernel (no autograd)."""
    _require_triton()
    out = torch.empty(xw.shape, dtype=xw.dtype, device=xw.device)
    if out.numel() == 0:
        return out
    lay = layout(xw.shape, c0, xw, g, cl, bias)
    launch_pointwise(_gated_cross_fwd_kernel, lay, [out], HAS_BIAS=bias is not None)
    return out


def gated_cross_backward(
    dout: torch.Tensor,
    c0: torch.Tensor,
    xw: torch.Tensor,
    g: torch.Tensor,
    bias: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(dc0, dxw, dg, dbias)`` by the Triton backward kernel (``dcl`` is ``dout`` itself)."""
    _require_triton()
    if xw.numel() == 0:
        return (
            torch.zeros_like(c0),
            torch.zeros_like(xw),
            torch.zeros_like(g),
            None if bias is None else torch.zeros_like(bias),
        )
    lay = layout(xw.shape, dout.to(xw.dtype), c0, xw, g, bias)
    dc0 = GradBuffer(c0, lay)
    dxw = GradBuffer(xw, lay)
    dg = GradBuffer(g, lay)
    launch_pointwise(_gated_cross_bwd_kernel, lay, [dc0.buf, dxw.buf, dg.buf], HAS_BIAS=bias is not None)
    dxw_full = dxw.buf
    dbias = None
    if bias is not None:
        # the bias gradient sums dxw over the rows, accumulated in fp32
        dbias = dxw_full.float().sum_to_size(bias.shape).to(bias.dtype)
    return dc0.result(), dxw.result(), dg.result(), dbias


@torch.library.custom_op("gatelab::gated_cross_fwd", mutates_args=())
def _gc_fwd_op(
    c0: torch.Tensor, xw: torch.Tensor, g: torch.Tensor, cl: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    return gated_cross_forward(c0, xw, g, cl, bias)


@_gc_fwd_op.register_fake
def _(
    c0: torch.Tensor, xw: torch.Tensor, g: torch.Tensor, cl: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    return torch.empty(xw.shape, dtype=xw.dtype, device=xw.device)


@torch.library.custom_op("gatelab::gated_cross_bwd", mutates_args=())
def _gc_bwd_op(
    dout: torch.Tensor, c0: torch.Tensor, xw: torch.Tensor, g: torch.Tensor, bias: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    dc0, dxw, dg, db = gated_cross_backward(dout, c0, xw, g, bias)
    return dc0, dxw, dg, db if db is not None else xw.new_empty(0)


@_gc_bwd_op.register_fake
def _(
    dout: torch.Tensor, c0: torch.Tensor, xw: torch.Tensor, g: torch.Tensor, bias: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return (
        torch.empty_like(c0),
        torch.empty_like(xw),
        torch.empty_like(g),
        torch.empty_like(bias) if bias is not None else xw.new_empty(0),
    )


class GatedCrossFunction(torch.autograd.Function):
    """Autograd wrapper of the gated cross step: saves the inputs, recomputes the sigmoid."""

    @staticmethod
    def forward(
        ctx: Any,
        c0: torch.Tensor,
        xw: torch.Tensor,
        g: torch.Tensor,
        cl: torch.Tensor,
        bias: torch.Tensor | None,
    ) -> torch.Tensor:
        ctx.save_for_backward(c0, xw, g, bias)
        ctx.cl_shape = cl.shape
        if torch.compiler.is_compiling():
            return _gc_fwd_op(c0, xw, g, cl, bias)
        return gated_cross_forward(c0, xw, g, cl, bias)

    @staticmethod
    def backward(ctx: Any, dout: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        c0, xw, g, bias = ctx.saved_tensors
        if torch.compiler.is_compiling():
            dc0, dxw, dg, db = _gc_bwd_op(dout, c0, xw, g, bias)
        else:
            dc0, dxw, dg, db = gated_cross_backward(dout, c0, xw, g, bias)
        need = ctx.needs_input_grad
        dcl = dout.sum_to_size(ctx.cl_shape) if need[3] else None  # d(out)/d(cl) is the identity
        return (
            dc0 if need[0] else None,
            dxw if need[1] else None,
            dg if need[2] else None,
            dcl,
            db if bias is not None and need[4] else None,
        )


def gated_cross_triton(
    c0: torch.Tensor, xw: torch.Tensor, g: torch.Tensor, cl: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """Gated cross step with Triton forward and backward; call through ``dispatch`` (it verifies)."""
    return GatedCrossFunction.apply(c0, xw, g, cl, bias)
