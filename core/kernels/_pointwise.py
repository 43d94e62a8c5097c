"""Strided, broadcasting layouts for the pointwise Triton kernels (sigmoid gate, feature gates).

A pointwise op writes an output of shape ``[..., D]``; each operand is broadcastable to it. The
kernels see the leading dimensions as ``rows`` (``R = prod(shape[:-1])``) and index every operand
through its own strides over (at most) three coalesced leading dimensions plus a column stride:

    offset(operand, row, col) = i0 * s0 + i1 * s1 + i2 * s2 + col * sc,   row = (i0 * S1 + i1) * S2 + i2

so permuted views (the ``[B, T, H, Dh]`` transpose of an attention output), slices of a fused
projection and broadcast operands (a ``[D]`` bias, a ``[..., 1]`` head-wise gate: ``sc = 0``) are
read in place without a copy. Leading dimensions of size 1 are dropped and adjacent dimensions that
are contiguous with each other in *every* operand are merged; a layout that still needs more than
three leading dimensions (rare) is made contiguous first. A column stride other than 0 or 1 is
made contiguous too.

Gradients of broadcast operands need a reduction: :class:`GradBuffer` gives the kernel a
contiguous buffer over the full leading shape (float32 when a further sum follows) and reduces it to
the operand's shape afterwards. A reduction over the last dimension (a head-wise gate shared by the
``D`` columns of a row) happens inside the kernel, which then covers a whole row per program.
"""

from __future__ import annotations

import dataclasses
import math

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # the module must import without triton
    triton = None
    tl = None

from ._common import cdiv, next_power_of_2

# A program handles about _TILE elements (memory-bound ops: enough to amortise index arithmetic,
# few enough to keep several fp32 operands in registers).
_TILE = 1024
_MAX_BLOCK_N = 1024
#: largest last dimension for which a kernel reduces over the columns of a row (one block per row)
MAX_REDUCE_COLS = 8192


@dataclasses.dataclass
class Layout:
    """Index layout of a pointwise launch (see the module docstring)."""

    shape: tuple[int, ...]
    rows: int
    cols: int
    s1: int
    s2: int
    tensors: list[torch.Tensor | None]
    strides: list[tuple[int, int, int, int]]

    def args(self, i: int) -> tuple[int, int, int, int]:
        """``(s0, s1, s2, sc)`` of operand ``i``."""
        return self.strides[i]


def _coalesce(sizes: list[int], strides: list[list[int]]) -> tuple[list[int], list[list[int]]]:
    """Drop size-1 dims and merge adjacent dims that are contiguous with each other in every operand."""
    keep = [j for j, n in enumerate(sizes) if n != 1]
    sizes = [sizes[j] for j in keep]
    strides = [[st[j] for j in keep] for st in strides]
    j = len(sizes) - 2
    while j >= 0:
        if all(st[j] == st[j + 1] * sizes[j + 1] for st in strides):
            sizes[j : j + 2] = [sizes[j] * sizes[j + 1]]
            for st in strides:
                st[j : j + 2] = [st[j + 1]]
        j -= 1
    return sizes, strides


def layout(shape: tuple[int, ...] | torch.Size, *tensors: torch.Tensor | None) -> Layout:
    """Layout of ``tensors`` (``None`` = absent optional operand) broadcast to ``shape`` ``[..., D]``."""
    shape = tuple(shape)
    lead, cols = shape[:-1], shape[-1]
    views: list[torch.Tensor | None] = []
    for t in tensors:
        if t is None:
            views.append(None)
            continue
        v = t.expand(shape)
        if cols > 1 and v.stride(-1) not in (0, 1):
            v = t.contiguous().expand(shape)
        views.append(v)
    present = [v for v in views if v is not None]
    sizes, strides = _coalesce(list(lead), [list(v.stride()[:-1]) for v in present])
    if len(sizes) > 3:
        views = [None if v is None else v.contiguous() for v in views]
        present = [v for v in views if v is not None]
        sizes, strides = _coalesce(list(lead), [list(v.stride()[:-1]) for v in present])
    pad = 3 - len(sizes)
    sizes = [1] * pad + sizes
    full: list[tuple[int, int, int, int]] = []
    it = iter(strides)
    for v in views:
        if v is None:
            full.append((0, 0, 0, 0))
            continue
        st = [0] * pad + next(it)
        full.append((st[0], st[1], st[2], v.stride(-1) if cols > 1 else 0))
    return Layout(shape, math.prod(lead), cols, sizes[1], sizes[2], views, full)


def blocks(rows: int, cols: int, reduce_cols: bool = False) -> tuple[int, int, tuple[int, int]]:
    """``(BLOCK_M, BLOCK_N, grid)``; with ``reduce_cols`` one block spans a whole row."""
    block_n = next_power_of_2(cols) if reduce_cols else min(next_power_of_2(cols), _MAX_BLOCK_N)
    block_m = min(max(1, _TILE // block_n), next_power_of_2(rows))
    return block_m, block_n, (cdiv(rows, block_m), cdiv(cols, block_n))


class GradBuffer:
    """Where a kernel writes the gradient of one operand, and its reduction to the operand's shape.

    ``reduce_cols``: the kernel sums over the columns (operand broadcast along the last dim) and
    writes one value per row. The buffer is contiguous over the full leading shape; it is float32
    when a further sum over broadcast leading dims follows (:meth:`result` does it), else it has
    the operand's dtype and is returned as is.
    """

    def __init__(self, operand: torch.Tensor, lay: Layout, reduce_cols: bool = False) -> None:
        self.operand_shape = operand.shape
        self.dtype = operand.dtype
        self.shape = (*lay.shape[:-1], 1 if reduce_cols else lay.cols)
        self.needs_sum = tuple(self.shape) != tuple(operand.shape)
        self.buf = torch.empty(
            self.shape, dtype=torch.float32 if self.needs_sum else operand.dtype, device=operand.device
        )

    def result(self) -> torch.Tensor:
        if not self.needs_sum:
            return self.buf
        return self.buf.sum_to_size(self.operand_shape).to(self.dtype)


def broadcast_shape(*tensors: torch.Tensor | None) -> tuple[int, ...] | None:
    """The broadcast shape of the present tensors, or ``None`` when they do not broadcast."""
    try:
        return tuple(torch.broadcast_shapes(*(t.shape for t in tensors if t is not None)))
    except RuntimeError:
        return None


if triton is not None:

    @triton.jit
    def lead_index(rows, S1, S2):
        """``row -> (i0, i1, i2)`` over the coalesced leading dims ``[S0, S1, S2]``."""
        i2 = rows % S2
        t = rows // S2
        return t // S1, t % S1, i2

    @triton.jit
    def offsets(i0, i1, i2, cols, s0, s1, s2, sc):
        """Element offsets ``[BLOCK_M, BLOCK_N]`` of one operand."""
        return (i0 * s0 + i1 * s1 + i2 * s2)[:, None] + cols[None, :] * sc
