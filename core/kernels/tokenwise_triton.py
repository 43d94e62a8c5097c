"""Triton kernels for the token-wise gate ``g*a + (1-g)*b``, ``g = sigmoid(a W_a^T + b W_b^T + c)``.

``W = [W_a | W_b]`` is the gate projection's ``[E, 2D]`` weight (``E = 1``: scalar gate per
token, ``E = D``: vector gate); ``W_a``/``W_b`` are its column halves, used in place.

Forward:

* scalar (``E = 1``): one program holds ``BLOCK_M`` whole rows; the logit is the row's dot product
  ``sum(a * w_a + b * w_b) + c`` (float32), then ``out = g * a + (1 - g) * b``. One read of
  ``a`` and ``b``, one write of ``out`` and of the float32 logit.
* vector (``E = D``): a tiled matmul over ``[BLOCK_M, BLOCK_N]`` output tiles accumulating
  ``a W_a^T + b W_b^T`` in float32 (two K loops, no ``[a; b]`` buffer); the epilogue adds ``c``,
  applies the sigmoid and mixes with the ``a``/``b`` tile of the same columns. The float32 logits
  are written for the backward (instead of re-running the matmul).

Backward, per element (``g`` recomputed from the saved logits)::

    da_mix = dout * g;   db_mix = dout * (1 - g);   dlogit = dout * (a - b) * g * (1 - g)

summed over the row for a scalar gate; then ``da = da_mix + dlogit W_a``, ``db = db_mix + dlogit W_b``
(scalar: in the same kernel; vector: ``torch.addmm``), ``dW = dlogit^T [a, b]``, ``dc = sum(dlogit)``.

float32 inputs use IEEE float32 dot products (``input_precision="ieee"``: TF32 would round the
operands to 10 mantissa bits, far outside the float32 reference); half inputs use tensor cores with
float32 accumulation. While ``torch.compile`` traces, :class:`TokenwiseGateFunction` calls the
kernels through opaque custom ops (see :mod:`.glu_triton`).
"""

from __future__ import annotations

from typing import Any

import torch

from ._common import cdiv, device_ctx, dot_upcast
from ._triton_common import blocks2d, row_blocks, rows2d, tuned_warps

try:
    import triton
    import triton.language as tl

    from ._triton_common import dot, load_rows_f32, row_tile, store_rows, tile2d
except ImportError:  # the module must import without triton; the functions below raise instead
    triton = None
    tl = None

_TILE = 1024  # scalar mode: elements of a row block (whole rows)
_EW_TILE = 1024  # vector-mode backward (element-wise, at most 1024 columns a block)


if triton is not None:

    @triton.jit
    def _w_halves(w_ptr, cols, cmask, D):
        """The scalar gate's weight row ``[w_a | w_b]`` (``[2D]``) as two float32 ``[BLOCK_N]`` halves."""
        wa = tl.load(w_ptr + cols, mask=cmask, other=0.0).to(tl.float32)
        wb = tl.load(w_ptr + D + cols, mask=cmask, other=0.0).to(tl.float32)
        return wa, wb

    @triton.jit
    def _tw_scalar_fwd_kernel(
        a_ptr, b_ptr, w_ptr, c_ptr,  # inputs
        out_ptr, logit_ptr,  # outputs: [R, D], float32 [R]
        R, D, stride_a, stride_b,
        HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    ):  # fmt: skip
        row0 = tl.program_id(0).to(tl.int64) * BLOCK_M
        rows, cols, rmask, cmask, mask = row_tile(row0, R, D, BLOCK_M, BLOCK_N)
        a = load_rows_f32(a_ptr, rows, cols, stride_a, mask)
        b = load_rows_f32(b_ptr, rows, cols, stride_b, mask)
        wa, wb = _w_halves(w_ptr, cols, cmask, D)
        logit = tl.sum(a * wa[None, :] + b * wb[None, :], axis=1)
        if HAS_BIAS:
            logit += tl.load(c_ptr).to(tl.float32)
        g = tl.sigmoid(logit)[:, None]
        # g*a + (1-g)*b, not b + g*(a-b): a - b can overflow half ranges (here it is fp32 anyway)
        store_rows(out_ptr, rows, cols, D, g * a + (1.0 - g) * b, mask)
        tl.store(logit_ptr + rows, logit, mask=rmask)

    @triton.jit
    def _tw_scalar_bwd_kernel(
        dout_ptr, a_ptr, b_ptr, w_ptr, logit_ptr,  # inputs
        da_ptr, db_ptr, dlogit_ptr,  # outputs: [R, D], [R, D], float32 [R]
        R, D, stride_dout, stride_a, stride_b,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    ):  # fmt: skip
        row0 = tl.program_id(0).to(tl.int64) * BLOCK_M
        rows, cols, rmask, cmask, mask = row_tile(row0, R, D, BLOCK_M, BLOCK_N)
        dout = load_rows_f32(dout_ptr, rows, cols, stride_dout, mask)
        a = load_rows_f32(a_ptr, rows, cols, stride_a, mask)
        b = load_rows_f32(b_ptr, rows, cols, stride_b, mask)
        wa, wb = _w_halves(w_ptr, cols, cmask, D)
        g = tl.sigmoid(tl.load(logit_ptr + rows, mask=rmask, other=0.0))
        dlogit = tl.sum(dout * (a - b), axis=1) * g * (1.0 - g)
        g = g[:, None]
        da = dout * g + dlogit[:, None] * wa[None, :]
        db = dout * (1.0 - g) + dlogit[:, None] * wb[None, :]
        store_rows(da_ptr, rows, cols, D, da, mask)
        store_rows(db_ptr, rows, cols, D, db, mask)
        tl.store(dlogit_ptr + rows, dlogit, mask=rmask)

    @triton.jit
    def _tw_vector_fwd_kernel(
        a_ptr, b_ptr, w_ptr, c_ptr,  # inputs
        out_ptr, logit_ptr,  # outputs: [R, D], float32 [R, D]
        R, D, stride_a, stride_b, stride_w,
        HAS_BIAS: tl.constexpr, DOT_PRECISION: tl.constexpr, DOT_UPCAST: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    ):  # fmt: skip
        rows, cols, mask = tile2d(R, D, BLOCK_M, BLOCK_N)  # cols: output features
        rmask = rows < R
        cmask = cols < D
        DT = a_ptr.dtype.element_ty
        acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
        for k0 in range(0, D, BLOCK_K):
            ks = k0 + tl.arange(0, BLOCK_K)
            kmask = ks < D
            amask = rmask[:, None] & kmask[None, :]
            wmask = kmask[:, None] & cmask[None, :]
            # W_a^T tile [BLOCK_K, BLOCK_N]: W[n, k] at n * stride_w + k; W_b is offset by D columns
            wa = tl.load(w_ptr + cols[None, :] * stride_w + ks[:, None], mask=wmask, other=0.0)
            wb = tl.load(w_ptr + cols[None, :] * stride_w + D + ks[:, None], mask=wmask, other=0.0)
            a = tl.load(a_ptr + rows[:, None] * stride_a + ks[None, :], mask=amask, other=0.0)
            b = tl.load(b_ptr + rows[:, None] * stride_b + ks[None, :], mask=amask, other=0.0)
            acc = dot(a, wa, acc, DT, DOT_PRECISION, DOT_UPCAST)
            acc = dot(b, wb, acc, DT, DOT_PRECISION, DOT_UPCAST)
        if HAS_BIAS:
            acc += tl.load(c_ptr + cols, mask=cmask, other=0.0).to(tl.float32)[None, :]
        # epilogue: the mix reads the a/b tile of the output's columns (a, b and out share features)
        a = load_rows_f32(a_ptr, rows, cols, stride_a, mask)
        b = load_rows_f32(b_ptr, rows, cols, stride_b, mask)
        g = tl.sigmoid(acc)
        store_rows(out_ptr, rows, cols, D, g * a + (1.0 - g) * b, mask)
        store_rows(logit_ptr, rows, cols, D, acc, mask)

    @triton.jit
    def _tw_vector_bwd_kernel(
        dout_ptr, a_ptr, b_ptr, logit_ptr,  # inputs
        da_ptr, db_ptr, dlogit_ptr,  # outputs, [R, D] each
        R, D, stride_dout, stride_a, stride_b,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    ):  # fmt: skip
        rows, cols, mask = tile2d(R, D, BLOCK_M, BLOCK_N)
        dout = load_rows_f32(dout_ptr, rows, cols, stride_dout, mask)
        a = load_rows_f32(a_ptr, rows, cols, stride_a, mask)
        b = load_rows_f32(b_ptr, rows, cols, stride_b, mask)
        g = tl.sigmoid(tl.load(logit_ptr + rows[:, None] * D + cols[None, :], mask=mask, other=0.0))
        store_rows(da_ptr, rows, cols, D, dout * g, mask)
        store_rows(db_ptr, rows, cols, D, dout * (1.0 - g), mask)
        store_rows(dlogit_ptr, rows, cols, D, dout * (a - b) * g * (1.0 - g), mask)


if triton is not None:
    # autotuned: warps (and stages for the matmul, whose 64 x 64 tiles spill with 4 warps: ptxas,
    # tools/check_kernels_compile.py), the tiles fixed by the launch; only the first candidate
    # under the interpreter
    _ROW_KEY = ("D", "BLOCK_M", "BLOCK_N")
    _tw_scalar_fwd_kernel = tuned_warps(_tw_scalar_fwd_kernel, _ROW_KEY, warps=(4, 8, 16, 2))
    _tw_scalar_bwd_kernel = tuned_warps(_tw_scalar_bwd_kernel, _ROW_KEY, warps=(4, 8, 16, 2))
    _tw_vector_fwd_kernel = tuned_warps(
        _tw_vector_fwd_kernel, ("D", "BLOCK_M", "BLOCK_N", "BLOCK_K"), warps=(8,), stages=(3, 2, 4)
    )
    _tw_vector_bwd_kernel = tuned_warps(_tw_vector_bwd_kernel, _ROW_KEY, warps=(4, 8, 2))


def _require_triton() -> None:
    if triton is None:
        raise RuntimeError("gatelab.core.kernels.tokenwise_triton needs triton, which is not installed")


def _matmul_blocks(dtype: torch.dtype, on_cuda: bool) -> tuple[int, int, int, int, int]:
    """``(BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages)`` of the vector-mode matmul (the warps and
    stages are the autotuner's first candidate; the launch passes the blocks only)."""
    if not on_cuda:  # the interpreter: small tiles keep it quick (tl.dot needs >= 16)
        return 16, 16, 16, 4, 1
    # the largest tiles ptxas compiles for sm_90 without register spills with the mix epilogue
    # (tools/check_kernels_compile.py); IEEE fp32 FMA path: smaller K tiles
    if dtype == torch.float32:
        return 64, 64, 16, 8, 2
    return 64, 64, 32, 8, 3


def tokenwise_forward(
    a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(out, logits_fp32)`` by the Triton forward kernels (no autograd)."""
    _require_triton()
    D = a.shape[-1]
    E = weight.shape[0]
    a2, b2 = rows2d(a), rows2d(b)
    R = a2.shape[0]
    out = torch.empty(a.shape, dtype=a.dtype, device=a.device)
    scalar = E == 1
    logits = torch.empty((R,) if scalar else (R, D), dtype=torch.float32, device=a.device)
    if out.numel() == 0:
        return out, logits
    w = weight if weight.stride(-1) == 1 else weight.contiguous()
    c = bias if bias is not None else w
    with device_ctx(a):
        if scalar:
            block_m, block_n, _ = row_blocks(R, D, _TILE)
            _tw_scalar_fwd_kernel[(cdiv(R, block_m),)](
                a2, b2, w, c, out, logits, R, D, a2.stride(0), b2.stride(0),
                HAS_BIAS=bias is not None, BLOCK_M=block_m, BLOCK_N=block_n,
            )  # fmt: skip
        else:
            bm, bn, bk, _, _ = _matmul_blocks(a.dtype, a.device.type == "cuda")
            _tw_vector_fwd_kernel[(cdiv(R, bm), cdiv(D, bn))](
                a2, b2, w, c, out, logits, R, D, a2.stride(0), b2.stride(0), w.stride(0),
                HAS_BIAS=bias is not None,
                DOT_PRECISION="ieee" if a.dtype == torch.float32 else "tf32",
                DOT_UPCAST=dot_upcast(a.dtype, a.device),
                BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk,
            )  # fmt: skip
    return out, logits


def tokenwise_backward(
    dout: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    weight: torch.Tensor,
    logits: torch.Tensor,
    has_bias: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(da, db, dweight, dbias)`` (``dbias`` is ``None`` without a bias)."""
    _require_triton()
    D = a.shape[-1]
    E = weight.shape[0]
    a2, b2, d2 = rows2d(a), rows2d(b), rows2d(dout.to(a.dtype))
    R = a2.shape[0]
    da = torch.empty(a.shape, dtype=a.dtype, device=a.device)
    db = torch.empty(b.shape, dtype=b.dtype, device=b.device)
    if da.numel() == 0:
        dw = torch.zeros_like(weight)
        return da, db, dw, (torch.zeros(E, dtype=weight.dtype, device=weight.device) if has_bias else None)
    w = weight if weight.stride(-1) == 1 else weight.contiguous()
    da2, db2 = da.view(R, D), db.view(R, D)
    with device_ctx(a):
        if E == 1:
            dlogit = torch.empty(R, dtype=torch.float32, device=a.device)
            block_m, block_n, _ = row_blocks(R, D, _TILE)
            _tw_scalar_bwd_kernel[(cdiv(R, block_m),)](
                d2, a2, b2, w, logits, da2, db2, dlogit, R, D, d2.stride(0), a2.stride(0), b2.stride(0),
                BLOCK_M=block_m, BLOCK_N=block_n,
            )  # fmt: skip
            # dW = dlogit^T [a, b] (a GEMV each half); the reference does this in the input dtype too
            dl = dlogit.to(a.dtype)
            dweight = torch.cat([dl @ a2, dl @ b2]).unsqueeze(0).to(weight.dtype)
            dbias = dlogit.sum().reshape(1).to(weight.dtype) if has_bias else None
        else:
            # dlogit in the input dtype: it feeds cuBLAS matmuls with a, b and W (as in the reference)
            dlogit = torch.empty(R, D, dtype=a.dtype, device=a.device)
            block_m, block_n, grid = blocks2d(R, D, _EW_TILE)
            _tw_vector_bwd_kernel[grid](
                d2, a2, b2, logits, da2, db2, dlogit, R, D, d2.stride(0), a2.stride(0), b2.stride(0),
                BLOCK_M=block_m, BLOCK_N=block_n,
            )  # fmt: skip
            # da += dlogit W_a, db += dlogit W_b (in place on the mix gradients), dW = dlogit^T [a, b]
            da2.addmm_(dlogit, w[:, :D])
            db2.addmm_(dlogit, w[:, D:])
            dweight = torch.cat([dlogit.t() @ a2, dlogit.t() @ b2], dim=1).to(weight.dtype)
            dbias = dlogit.float().sum(0).to(weight.dtype) if has_bias else None
    return da, db, dweight, dbias


@torch.library.custom_op("gatelab::tokenwise_gate_fwd", mutates_args=())
def _fwd_op(
    a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    return tokenwise_forward(a, b, weight, bias)


@_fwd_op.register_fake
def _(
    a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    R = a.numel() // max(a.shape[-1], 1)
    shape = (R,) if weight.shape[0] == 1 else (R, a.shape[-1])
    return torch.empty_like(a), torch.empty(shape, dtype=torch.float32, device=a.device)


@torch.library.custom_op("gatelab::tokenwise_gate_bwd", mutates_args=())
def _bwd_op(
    dout: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    weight: torch.Tensor,
    logits: torch.Tensor,
    has_bias: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    da, db, dw, dc = tokenwise_backward(dout, a, b, weight, logits, has_bias)
    return da, db, dw, dc if dc is not None else weight.new_empty(0)


@_bwd_op.register_fake
def _(
    dout: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    weight: torch.Tensor,
    logits: torch.Tensor,
    has_bias: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    dc = weight.new_empty(weight.shape[0] if has_bias else 0)
    return torch.empty_like(a), torch.empty_like(b), torch.empty_like(weight), dc


class TokenwiseGateFunction(torch.autograd.Function):
    """Autograd wrapper: saves ``a``, ``b``, ``weight`` and the float32 logits."""

    @staticmethod
    def forward(
        ctx: Any, a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        if torch.compiler.is_compiling():
            out, logits = _fwd_op(a, b, weight, bias)
        else:
            out, logits = tokenwise_forward(a, b, weight, bias)
        ctx.save_for_backward(a, b, weight, logits)
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(ctx: Any, dout: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        a, b, weight, logits = ctx.saved_tensors
        if torch.compiler.is_compiling():
            da, db, dw, dc = _bwd_op(dout, a, b, weight, logits, ctx.has_bias)
        else:
            da, db, dw, dc = tokenwise_backward(dout, a, b, weight, logits, ctx.has_bias)
        need = ctx.needs_input_grad
        return (
            da if need[0] else None,
            db if need[1] else None,
            dw if need[2] else None,
            dc if ctx.has_bias and need[3] else None,
        )


def tokenwise_gate_triton(
    a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """Token-wise gate with Triton forward and backward; call through ``dispatch`` (it verifies)."""
    return TokenwiseGateFunction.apply(a, b, weight, bias)
