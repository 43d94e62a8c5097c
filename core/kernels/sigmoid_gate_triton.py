"""Triton kernels for the sigmoid output gate ``out = o * sigmoid(g)``, forward and backward.

Per element of the ``[rows, D]`` index space (:mod:`._pointwise` layouts, each operand read through
its own strides)::

    out = o * s,          s = sigmoid(g)
    do  = dout * s
    dg  = dout * o * s * (1 - s)          (summed over the D columns for a head-wise gate [..., 1])

Only ``o`` and ``g`` are saved; the backward recomputes ``s``. Everything is computed in float32
and rounded once on store. While ``torch.compile`` traces, :class:`SigmoidGateFunction` calls the
kernels through the opaque custom ops ``gatelab::sigmoid_gate_fwd``/``_bwd`` (see
:mod:`.glu_triton` for why).
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
    def _sigmoid_gate_fwd_kernel(
        o_ptr, g_ptr,  # inputs, read through their strides
        out_ptr,  # contiguous [R, D]
        R, D, S1, S2,
        o_st, g_st,  # strides (s0, s1, s2, sc) of the inputs
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    ):  # fmt: skip
        rows, cols, mask, lead = pointwise_tile(R, D, S1, S2, BLOCK_M, BLOCK_N)
        # fp32 upcast: the sigmoid in half precision loses bits and o * s would round twice
        o = load_f32(o_ptr, o_st, lead, cols, mask)
        g = load_f32(g_ptr, g_st, lead, cols, mask)
        out = o * tl.sigmoid(g)
        tl.store(out_ptr + rows[:, None] * D + cols[None, :], out.to(out_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def _sigmoid_gate_bwd_kernel(
        dout_ptr, o_ptr, g_ptr,  # inputs, read through their strides
        do_ptr, dg_ptr,  # contiguous [R, D] ([R] with REDUCE_G)
        R, D, S1, S2,
        d_st, o_st, g_st,  # strides (s0, s1, s2, sc) of the inputs
        REDUCE_G: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    ):  # fmt: skip
        rows, cols, mask, lead = pointwise_tile(R, D, S1, S2, BLOCK_M, BLOCK_N)
        dout = load_f32(dout_ptr, d_st, lead, cols, mask)
        o = load_f32(o_ptr, o_st, lead, cols, mask)
        # recompute s = sigmoid(g); s * (1 - s) in fp32 (in half precision 1 - s cancels near s = 1)
        s = tl.sigmoid(load_f32(g_ptr, g_st, lead, cols, mask))
        dg = dout * o * s * (1.0 - s)
        tl.store(
            do_ptr + rows[:, None] * D + cols[None, :], (dout * s).to(do_ptr.dtype.element_ty), mask=mask
        )
        if REDUCE_G:  # head-wise gate: one logit per row, shared by its D columns (masked cols are 0)
            tl.store(dg_ptr + rows, tl.sum(dg, axis=1).to(dg_ptr.dtype.element_ty), mask=rows < R)
        else:
            tl.store(dg_ptr + rows[:, None] * D + cols[None, :], dg.to(dg_ptr.dtype.element_ty), mask=mask)


if triton is not None:
    # autotuned: rows per program and warps (only the first candidate under the interpreter)
    _sigmoid_gate_fwd_kernel = tuned_rows(_sigmoid_gate_fwd_kernel)
    _sigmoid_gate_bwd_kernel = tuned_rows(_sigmoid_gate_bwd_kernel)


def _require_triton() -> None:
    if triton is None:
        raise RuntimeError("gatelab.core.kernels.sigmoid_gate_triton needs triton, which is not installed")


def _reduces_cols(o: torch.Tensor, g: torch.Tensor) -> bool:
    return g.dim() > 0 and g.shape[-1] == 1 and o.shape[-1] > 1


def sigmoid_gate_forward(o: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``o * sigmoid(g)`` by the Triton forward kernel (no autograd); contiguous output."""
    _require_triton()
    out = torch.empty(o.shape, dtype=o.dtype, device=o.device)
    if out.numel() == 0:
        return out
    lay = layout(o.shape, o, g)
    launch_pointwise(_sigmoid_gate_fwd_kernel, lay, [out])
    return out


def sigmoid_gate_backward(
    dout: torch.Tensor, o: torch.Tensor, g: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(do, dg)`` by the Triton backward kernel; ``dg`` is reduced to ``g``'s (broadcast) shape."""
    _require_triton()
    do = torch.empty(o.shape, dtype=o.dtype, device=o.device)
    if o.numel() == 0:
        return do, torch.zeros(g.shape, dtype=g.dtype, device=g.device)
    reduce = _reduces_cols(o, g)
    lay = layout(o.shape, dout.to(o.dtype), o, g)
    dg = GradBuffer(g, lay, reduce_cols=reduce)
    launch_pointwise(_sigmoid_gate_bwd_kernel, lay, [do, dg.buf], reduce_cols=reduce, REDUCE_G=reduce)
    return do, dg.result()


@torch.library.custom_op("gatelab::sigmoid_gate_fwd", mutates_args=())
def _fwd_op(o: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return sigmoid_gate_forward(o, g)


@_fwd_op.register_fake
def _(o: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return torch.empty(o.shape, dtype=o.dtype, device=o.device)


@torch.library.custom_op("gatelab::sigmoid_gate_bwd", mutates_args=())
def _bwd_op(dout: torch.Tensor, o: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return sigmoid_gate_backward(dout, o, g)


@_bwd_op.register_fake
def _(dout: torch.Tensor, o: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.empty(o.shape, dtype=o.dtype, device=o.device),
        torch.empty(g.shape, dtype=g.dtype, device=g.device),
    )


class SigmoidGateFunction(torch.autograd.Function):
    """Autograd wrapper: saves ``o`` and the logits; the backward recomputes the sigmoid."""

    @staticmethod
    def forward(ctx: Any, o: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(o, g)
        if torch.compiler.is_compiling():
            return _fwd_op(o, g)
        return sigmoid_gate_forward(o, g)

    @staticmethod
    def backward(ctx: Any, dout: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        o, g = ctx.saved_tensors
        if torch.compiler.is_compiling():
            do, dg = _bwd_op(dout, o, g)
        else:
            do, dg = sigmoid_gate_backward(dout, o, g)
        return (do if ctx.needs_input_grad[0] else None, dg if ctx.needs_input_grad[1] else None)


def sigmoid_gate_triton(o: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``o * sigmoid(g)`` with Triton forward and backward; call through ``dispatch`` (it verifies)."""
    return SigmoidGateFunction.apply(o, g)
