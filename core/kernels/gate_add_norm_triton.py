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

from ._common import cdiv, device_ctx, next_power_of_2

try:
    import triton
    import triton.language as tl
except ImportError:  # the module must import without triton; the functions below raise instead
    triton = None
    tl = None

# elements of one row block (BLOCK_M rows x BLOCK_N >= D columns); with the warps of _blocks this
# keeps both kernels at <= ~72 registers per thread on sm_90 (tools/check_kernels_compile.py)
_TILE = 1024
_MAX_PROGRAMS_CUDA = 1024  # backward programs (partial dw/db rows) on CUDA
_MAX_PROGRAMS_CPU = 4  # under the interpreter


if triton is not None:

    @triton.jit
    def _gan_fwd_kernel(
        h_ptr,
        skip_ptr,
        w_ptr,
        b_ptr,
        y_ptr,
        mean_ptr,
        rstd_ptr,
        R,
        D,
        stride_h,
        stride_skip,
        eps,
        BLOCK_M: tl.constexpr,
        BLOCK_N: tl.constexpr,
    ):
        rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)  # int64: no overflow
        cols = tl.arange(0, BLOCK_N)
        rmask = rows < R
        cmask = cols < D
        mask = rmask[:, None] & cmask[None, :]
        r = rows[:, None]
        c = cols[None, :]
        # fp32 throughout: the statistics of a half-precision row would lose several bits
        v = tl.load(h_ptr + r * stride_h + c, mask=mask, other=0.0).to(tl.float32)
        g = tl.load(h_ptr + r * stride_h + D + c, mask=mask, other=0.0).to(tl.float32)
        sk = tl.load(skip_ptr + r * stride_skip + c, mask=mask, other=0.0).to(tl.float32)
        x = v * tl.sigmoid(g) + sk
        mean = tl.sum(x, axis=1) / D
        xc = tl.where(mask, x - mean[:, None], 0.0)
        rstd = 1.0 / tl.sqrt(tl.sum(xc * xc, axis=1) / D + eps)
        w = tl.load(w_ptr + cols, mask=cmask, other=0.0).to(tl.float32)
        b = tl.load(b_ptr + cols, mask=cmask, other=0.0).to(tl.float32)
        y = xc * rstd[:, None] * w[None, :] + b[None, :]
        tl.store(y_ptr + r * D + c, y.to(y_ptr.dtype.element_ty), mask=mask)
        tl.store(mean_ptr + rows, mean, mask=rmask)
        tl.store(rstd_ptr + rows, rstd, mask=rmask)

    @triton.jit
    def _gan_bwd_kernel(
        dy_ptr,
        h_ptr,
        skip_ptr,
        w_ptr,
        mean_ptr,
        rstd_ptr,
        dh_ptr,
        dskip_ptr,
        dw_part_ptr,
        db_part_ptr,
        R,
        D,
        stride_dy,
        stride_h,
        stride_skip,
        n_blocks,
        BLOCK_M: tl.constexpr,
        BLOCK_N: tl.constexpr,
    ):
        pid = tl.program_id(0)
        n_prog = tl.num_programs(0)
        cols = tl.arange(0, BLOCK_N)
        cmask = cols < D
        c = cols[None, :]
        w = tl.load(w_ptr + cols, mask=cmask, other=0.0).to(tl.float32)
        dw_acc = tl.zeros([BLOCK_N], dtype=tl.float32)
        db_acc = tl.zeros([BLOCK_N], dtype=tl.float32)
        for blk in range(pid, n_blocks, n_prog):
            rows = blk * BLOCK_M + tl.arange(0, BLOCK_M).to(tl.int64)  # int64: row * stride may overflow
            rmask = rows < R
            mask = rmask[:, None] & cmask[None, :]
            r = rows[:, None]
            dy = tl.load(dy_ptr + r * stride_dy + c, mask=mask, other=0.0).to(tl.float32)
            v = tl.load(h_ptr + r * stride_h + c, mask=mask, other=0.0).to(tl.float32)
            g = tl.load(h_ptr + r * stride_h + D + c, mask=mask, other=0.0).to(tl.float32)
            sk = tl.load(skip_ptr + r * stride_skip + c, mask=mask, other=0.0).to(tl.float32)
            mean = tl.load(mean_ptr + rows, mask=rmask, other=0.0)
            rstd = tl.load(rstd_ptr + rows, mask=rmask, other=0.0)
            # recompute x = v * s + skip and xhat instead of saving them in the forward
            s = tl.sigmoid(g)
            xhat = tl.where(mask, (v * s + sk - mean[:, None]) * rstd[:, None], 0.0)
            dxhat = dy * w[None, :]
            c1 = tl.sum(dxhat * xhat, axis=1) / D
            c2 = tl.sum(dxhat, axis=1) / D
            dx = (dxhat - (xhat * c1[:, None] + c2[:, None])) * rstd[:, None]
            tl.store(dskip_ptr + r * D + c, dx.to(dskip_ptr.dtype.element_ty), mask=mask)
            tl.store(dh_ptr + r * (2 * D) + c, (dx * s).to(dh_ptr.dtype.element_ty), mask=mask)
            dg = dx * v * s * (1.0 - s)
            tl.store(dh_ptr + r * (2 * D) + D + c, dg.to(dh_ptr.dtype.element_ty), mask=mask)
            dw_acc += tl.sum(dy * xhat, axis=0)
            db_acc += tl.sum(dy, axis=0)
        tl.store(dw_part_ptr + pid * D + cols, dw_acc, mask=cmask)
        tl.store(db_part_ptr + pid * D + cols, db_acc, mask=cmask)


def _require_triton() -> None:
    if triton is None:
        raise RuntimeError("gatelab.core.kernels.gate_add_norm_triton needs triton, which is not installed")


def _rows(t: torch.Tensor) -> torch.Tensor:
    """``[..., C]`` -> ``[rows, C]`` with unit column stride (a view when the strides allow it)."""
    if t.size(-1) > 1 and t.stride(-1) != 1:
        t = t.contiguous()
    return t.reshape(-1, t.size(-1))


def _blocks(rows: int, D: int) -> tuple[int, int, dict[str, int]]:
    """``(BLOCK_M, BLOCK_N, launch options)``: whole rows, about 8 elements per thread and tensor."""
    block_n = next_power_of_2(D)
    block_m = min(max(1, _TILE // block_n), next_power_of_2(rows))
    return block_m, block_n, {"num_warps": min(16, max(4, block_m * block_n // 256))}


def gate_add_norm_forward(
    h: torch.Tensor, skip: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(y, mean, rstd)`` by the Triton forward kernel (no autograd); ``mean``/``rstd`` are fp32 ``[rows]``."""
    _require_triton()
    D = h.shape[-1] // 2
    y = torch.empty(skip.shape, dtype=h.dtype, device=h.device)
    h2, s2 = _rows(h), _rows(skip)
    R = h2.shape[0]
    mean = torch.empty(R, dtype=torch.float32, device=h.device)
    rstd = torch.empty(R, dtype=torch.float32, device=h.device)
    if y.numel() == 0:
        return y, mean, rstd
    block_m, block_n, opts = _blocks(R, D)
    with device_ctx(h):
        _gan_fwd_kernel[(cdiv(R, block_m),)](
            h2,
            s2,
            weight,
            bias,
            y,
            mean,
            rstd,
            R,
            D,
            h2.stride(0),
            s2.stride(0),
            eps,
            BLOCK_M=block_m,
            BLOCK_N=block_n,
            **opts,
        )
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
    h2, s2, dy2 = _rows(h), _rows(skip), _rows(dy.to(h.dtype))
    R = h2.shape[0]
    block_m, block_n, opts = _blocks(R, D)
    n_blocks = cdiv(R, block_m)
    n_prog = min(n_blocks, _MAX_PROGRAMS_CUDA if h.device.type == "cuda" else _MAX_PROGRAMS_CPU)
    dw_part = torch.empty(n_prog, D, dtype=torch.float32, device=h.device)
    db_part = torch.empty(n_prog, D, dtype=torch.float32, device=h.device)
    with device_ctx(h):
        _gan_bwd_kernel[(n_prog,)](
            dy2,
            h2,
            s2,
            weight,
            mean,
            rstd,
            dh,
            dskip,
            dw_part,
            db_part,
            R,
            D,
            dy2.stride(0),
            h2.stride(0),
            s2.stride(0),
            n_blocks,
            BLOCK_M=block_m,
            BLOCK_N=block_n,
            **opts,
        )
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
