"""Triton kernels for the fused GLU + residual add + LayerNorm (TFT's GateAddNorm), fwd and bwd.

Forward, per row (``D`` columns, one program holds whole rows)::

    x    = v * sigmoid(g) + skip            [v, g] = h (halves of the GLU projection)
    mean = sum(x) / D;  rstd = 1 / sqrt(sum((x - mean)^2) / D + eps)
    y    = (x - mean) * rstd * w + b

Only ``mean`` and ``rstd`` (float32, one each per row) are stored besides ``y``. Backward, per row,
with ``xhat = (x - mean) * rstd`` recomputed from ``h`` and ``skip``::

    dxhat = dy * w
    dx    = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
    dskip = dx;   dv = dx * s;   dg = dx * v * s * (1 - s)        (s = sigmoid(g))
    dw    = sum over rows of dy * xhat;   db = sum over rows of dy

The row sums for ``dw``/``db`` are accumulated in float32 per program (each program loops over a
strided set of row blocks), written as ``[programs, D]`` partials and summed afterwards (no atomics:
the result is deterministic). Everything is computed in float32 and rounded once on store.
While ``torch.compile`` traces, :class:`GateAddNormFunction` calls the kernels through opaque
custom ops (see :mod:`.glu_triton`).
"""

from __future__ import annotations

from typing import Any

import torch

from ._common import cdiv, device_ctx
from ._triton_common import row_blocks, rows2d, stride_programs, tuned_warps

try:
    import triton
    import triton.language as tl

    from ._triton_common import load_rows_f32, row_tile, store_rows
except ImportError:  # the module must import without triton; the functions below raise instead
    triton = None
    tl = None

# elements of one row block (BLOCK_M rows x BLOCK_N >= D columns); with the warps of row_blocks
# this keeps both kernels at <= ~72 registers per thread on sm_90 (tools/check_kernels_compile.py)
_TILE = 1024


if triton is not None:

    @triton.jit
    def _gan_x(h_ptr, skip_ptr, rows, cols, D, stride_h, stride_skip, mask):
        """``(v, s, x)`` of a row block in float32: ``s = sigmoid(g)``, ``x = v * s + skip``.

        ``[v, g]`` are the two halves of ``h``'s rows. The forward and the backward (which
        recomputes ``x`` instead of saving it) both call this.
        """
        v = load_rows_f32(h_ptr, rows, cols, stride_h, mask)
        g = tl.load(h_ptr + rows[:, None] * stride_h + D + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        sk = load_rows_f32(skip_ptr, rows, cols, stride_skip, mask)
        s = tl.sigmoid(g)
        return v, s, v * s + sk

    @triton.jit
    def _gan_fwd_kernel(
        h_ptr, skip_ptr, w_ptr, b_ptr,  # inputs
        y_ptr, mean_ptr, rstd_ptr,  # outputs
        R, D, stride_h, stride_skip, eps,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    ):  # fmt: skip
        row0 = tl.program_id(0).to(tl.int64) * BLOCK_M
        rows, cols, rmask, cmask, mask = row_tile(row0, R, D, BLOCK_M, BLOCK_N)
        # fp32 throughout: the statistics of a half-precision row would lose several bits
        _, _, x = _gan_x(h_ptr, skip_ptr, rows, cols, D, stride_h, stride_skip, mask)
        mean = tl.sum(x, axis=1) / D
        xc = tl.where(mask, x - mean[:, None], 0.0)
        rstd = 1.0 / tl.sqrt(tl.sum(xc * xc, axis=1) / D + eps)
        w = tl.load(w_ptr + cols, mask=cmask, other=0.0).to(tl.float32)
        b = tl.load(b_ptr + cols, mask=cmask, other=0.0).to(tl.float32)
        store_rows(y_ptr, rows, cols, D, xc * rstd[:, None] * w[None, :] + b[None, :], mask)
        tl.store(mean_ptr + rows, mean, mask=rmask)
        tl.store(rstd_ptr + rows, rstd, mask=rmask)

    @triton.jit
    def _gan_bwd_kernel(
        dy_ptr, h_ptr, skip_ptr, w_ptr, mean_ptr, rstd_ptr,  # inputs
        dh_ptr, dskip_ptr, dw_part_ptr, db_part_ptr,  # outputs
        R, D, stride_dy, stride_h, stride_skip, n_blocks,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    ):  # fmt: skip
        pid = tl.program_id(0)
        n_prog = tl.num_programs(0)
        cols = tl.arange(0, BLOCK_N)
        cmask = cols < D
        w = tl.load(w_ptr + cols, mask=cmask, other=0.0).to(tl.float32)
        dw_acc = tl.zeros([BLOCK_N], dtype=tl.float32)
        db_acc = tl.zeros([BLOCK_N], dtype=tl.float32)
        for blk in range(pid, n_blocks, n_prog):
            rows = blk * BLOCK_M + tl.arange(0, BLOCK_M).to(tl.int64)  # int64: row * stride may overflow
            rmask = rows < R
            mask = rmask[:, None] & cmask[None, :]
            dy = load_rows_f32(dy_ptr, rows, cols, stride_dy, mask)
            mean = tl.load(mean_ptr + rows, mask=rmask, other=0.0)
            rstd = tl.load(rstd_ptr + rows, mask=rmask, other=0.0)
            # recompute x = v * s + skip and xhat instead of saving them in the forward
            v, s, x = _gan_x(h_ptr, skip_ptr, rows, cols, D, stride_h, stride_skip, mask)
            xhat = tl.where(mask, (x - mean[:, None]) * rstd[:, None], 0.0)
            dxhat = dy * w[None, :]
            c1 = tl.sum(dxhat * xhat, axis=1) / D
            c2 = tl.sum(dxhat, axis=1) / D
            dx = (dxhat - (xhat * c1[:, None] + c2[:, None])) * rstd[:, None]
            store_rows(dskip_ptr, rows, cols, D, dx, mask)
            store_rows(dh_ptr, rows, cols, 2 * D, dx * s, mask)
            dg = dx * v * s * (1.0 - s)
            tl.store(dh_ptr + rows[:, None] * (2 * D) + D + cols[None, :], dg.to(dh_ptr.dtype.element_ty), mask=mask)
            dw_acc += tl.sum(dy * xhat, axis=0)
            db_acc += tl.sum(dy, axis=0)
        tl.store(dw_part_ptr + pid * D + cols, dw_acc, mask=cmask)
        tl.store(db_part_ptr + pid * D + cols, db_acc, mask=cmask)


if triton is not None:
    # autotuned: warps (tiles: whole rows, BLOCK_M rows of about _TILE elements; only the first
    # candidate under the interpreter)
    _gan_fwd_kernel = tuned_warps(_gan_fwd_kernel, ("D", "BLOCK_M", "BLOCK_N"), warps=(4, 8, 16, 2))
    _gan_bwd_kernel = tuned_warps(_gan_bwd_kernel, ("D", "BLOCK_M", "BLOCK_N"), warps=(4, 8, 16, 2))


def _require_triton() -> None:
    if triton is None:
        raise RuntimeError("gatelab.core.kernels.gate_add_norm_triton needs triton, which is not installed")


def gate_add_norm_forward(
    h: torch.Tensor, skip: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(y, mean, rstd)`` by the Triton forward kernel (no autograd); ``mean``/``rstd`` are fp32 ``[rows]``."""
    _require_triton()
    D = h.shape[-1] // 2
    y = torch.empty(skip.shape, dtype=h.dtype, device=h.device)
    h2, s2 = rows2d(h), rows2d(skip)
    R = h2.shape[0]
    mean = torch.empty(R, dtype=torch.float32, device=h.device)
    rstd = torch.empty(R, dtype=torch.float32, device=h.device)
    if y.numel() == 0:
        return y, mean, rstd
    block_m, block_n, _ = row_blocks(R, D, _TILE)
    with device_ctx(h):
        _gan_fwd_kernel[(cdiv(R, block_m),)](
            h2, s2, weight, bias, y, mean, rstd, R, D, h2.stride(0), s2.stride(0), eps,
            BLOCK_M=block_m, BLOCK_N=block_n,
        )  # fmt: skip
    return y, mean, rstd


def gate_add_norm_backward(
    dy: torch.Tensor,
    h: torch.Tensor,
    skip: torch.Tensor,
    weight: torch.Tensor,
    mean: torch.Tensor,
    rstd: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(dh, dskip, dweight, dbias)`` by the Triton backward kernel."""
    _require_triton()
    D = h.shape[-1] // 2
    dh = torch.empty(h.shape, dtype=h.dtype, device=h.device)
    dskip = torch.empty(skip.shape, dtype=skip.dtype, device=skip.device)
    if dskip.numel() == 0:
        return dh, dskip, torch.zeros_like(weight), torch.zeros_like(weight)
    h2, s2, dy2 = rows2d(h), rows2d(skip), rows2d(dy.to(h.dtype))
    R = h2.shape[0]
    block_m, block_n, _ = row_blocks(R, D, _TILE)
    n_blocks = cdiv(R, block_m)
    n_prog = stride_programs(n_blocks, h.device)
    dw_part = torch.empty(n_prog, D, dtype=torch.float32, device=h.device)
    db_part = torch.empty(n_prog, D, dtype=torch.float32, device=h.device)
    with device_ctx(h):
        _gan_bwd_kernel[(n_prog,)](
            dy2, h2, s2, weight, mean, rstd, dh, dskip, dw_part, db_part,
            R, D, dy2.stride(0), h2.stride(0), s2.stride(0), n_blocks,
            BLOCK_M=block_m, BLOCK_N=block_n,
        )  # fmt: skip
    return dh, dskip, dw_part.sum(0).to(weight.dtype), db_part.sum(0).to(weight.dtype)


@torch.library.custom_op("gatelab::gate_add_norm_fwd", mutates_args=())
def _fwd_op(
    h: torch.Tensor, skip: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return gate_add_norm_forward(h, skip, weight, bias, eps)


@_fwd_op.register_fake
def _(
    h: torch.Tensor, skip: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    R = skip.numel() // max(skip.shape[-1], 1) if skip.dim() else 1
    stats = torch.empty(R, dtype=torch.float32, device=h.device)
    return torch.empty(skip.shape, dtype=h.dtype, device=h.device), stats, torch.empty_like(stats)


@torch.library.custom_op("gatelab::gate_add_norm_bwd", mutates_args=())
def _bwd_op(
    dy: torch.Tensor,
    h: torch.Tensor,
    skip: torch.Tensor,
    weight: torch.Tensor,
    mean: torch.Tensor,
    rstd: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return gate_add_norm_backward(dy, h, skip, weight, mean, rstd)


@_bwd_op.register_fake
def _(
    dy: torch.Tensor,
    h: torch.Tensor,
    skip: torch.Tensor,
    weight: torch.Tensor,
    mean: torch.Tensor,
    rstd: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return torch.empty_like(h), torch.empty_like(skip), torch.empty_like(weight), torch.empty_like(weight)


class GateAddNormFunction(torch.autograd.Function):
    """Autograd wrapper: saves ``h``, ``skip``, ``weight`` and the row statistics; recomputes ``x``."""

    @staticmethod
    def forward(
        ctx: Any,
        h: torch.Tensor,
        skip: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        eps: float,
    ) -> torch.Tensor:
        if torch.compiler.is_compiling():
            y, mean, rstd = _fwd_op(h, skip, weight, bias, eps)
        else:
            y, mean, rstd = gate_add_norm_forward(h, skip, weight, bias, eps)
        ctx.save_for_backward(h, skip, weight, mean, rstd)
        return y

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        h, skip, weight, mean, rstd = ctx.saved_tensors
        if torch.compiler.is_compiling():
            dh, dskip, dw, db = _bwd_op(dy, h, skip, weight, mean, rstd)
        else:
            dh, dskip, dw, db = gate_add_norm_backward(dy, h, skip, weight, mean, rstd)
        need = ctx.needs_input_grad
        return (
            dh if need[0] else None,
            dskip if need[1] else None,
            dw if need[2] else None,
            db if need[3] else None,
            None,
        )


def gate_add_norm_triton(
    h: torch.Tensor, skip: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
) -> torch.Tensor:
    """Fused ``LayerNorm(v * sigmoid(g) + skip)`` with Triton forward and backward (see module doc)."""
    return GateAddNormFunction.apply(h, skip, weight, bias, eps)
