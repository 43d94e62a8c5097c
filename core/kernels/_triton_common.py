"""Pieces shared by the Triton kernels of several ops: ``@triton.jit`` helpers and launch helpers.

Triton inlines a ``@triton.jit`` function called from a kernel, so a helper here costs nothing at
run time: the compiled kernel is the one the helper's body written out in place would give (no
extra loads or stores). Helpers of one op only stay in its ``*_triton`` module.

Jit helpers (defined only when triton is importable):

* :func:`pointwise_tile`, :func:`load_f32`: the tile and the strided operand loads of the pointwise
  kernels (layouts of :mod:`._pointwise`).
* :func:`tile2d`, :func:`row_tile`: a tile of a 2-d grid, a block of whole rows (kernels that
  reduce over a row); :func:`load_rows_f32`, :func:`store_rows`: row-strided operands (unit
  column stride).
* :func:`dot`: ``acc + a @ b`` with the operands rounded to a dtype (see :func:`._common.dot_upcast`).

Launch helpers (plain Python):

* :func:`tuned`, :func:`configs`: autotuned kernels (one configuration under the interpreter).
* :func:`launch_pointwise`: grid, blocks and the layout arguments of a pointwise kernel.
* :func:`blocks2d`, :func:`row_blocks`: blocks of an element-wise kernel, of a whole-row kernel.
* :func:`stride_programs`: how many programs a kernel that loops over strided row blocks gets.
* :func:`rows2d`: ``[..., D]`` -> ``[rows, D]`` with unit column stride.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ._common import cdiv, device_ctx, next_power_of_2, tuning_configs
from ._pointwise import Layout, blocks

try:
    import triton
    import triton.language as tl

    from ._pointwise import lead_index, offsets
except ImportError:  # the module must import without triton
    triton = None
    tl = None

# programs of a kernel that loops over a strided set of row blocks and writes per-program partial
# sums (a [programs, D] buffer reduced afterwards): enough to fill a GPU, few under the interpreter
MAX_PROGRAMS_CUDA = 1024
MAX_PROGRAMS_CPU = 4


if triton is not None:

    @triton.jit
    def pointwise_tile(R, D, S1, S2, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
        """The program's ``[BLOCK_M, BLOCK_N]`` tile of a pointwise launch.

        Returns ``(rows, cols, mask, lead)``: ``rows`` are int64 (``row * stride`` overflows int32
        above 2**31 elements), ``lead = (i0, i1, i2)`` the rows' coalesced leading indices.
        """
        rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
        cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        mask = (rows[:, None] < R) & (cols[None, :] < D)
        return rows, cols, mask, lead_index(rows, S1, S2)

    @triton.jit
    def load_f32(ptr, st, lead, cols, mask):
        """One operand's tile through its strides ``st = (s0, s1, s2, sc)``, as float32 (0 where masked)."""
        offs = offsets(lead[0], lead[1], lead[2], cols, st[0], st[1], st[2], st[3])
        return tl.load(ptr + offs, mask=mask, other=0.0).to(tl.float32)

    @triton.jit
    def tile2d(n_rows, n_cols, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
        """The program's ``[BLOCK_M, BLOCK_N]`` tile of an ``[n_rows, n_cols]`` grid: ``(rows, cols, mask)``.

        ``rows`` are int64: ``row * stride`` overflows int32 above 2**31 elements.
        """
        rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
        cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        return rows, cols, (rows[:, None] < n_rows) & (cols[None, :] < n_cols)

    @triton.jit
    def row_tile(row0, R, D, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
        """Rows ``row0 + [0, BLOCK_M)`` of a block of whole rows: ``(rows, cols, rmask, cmask, mask)``.

        ``rows`` are int64 (``row * stride`` overflows int32 above 2**31 elements).
        """
        rows = row0 + tl.arange(0, BLOCK_M).to(tl.int64)
        cols = tl.arange(0, BLOCK_N)
        rmask = rows < R
        cmask = cols < D
        return rows, cols, rmask, cmask, rmask[:, None] & cmask[None, :]

    @triton.jit
    def load_rows_f32(ptr, rows, cols, stride, mask):
        """``ptr[rows, cols]`` of a row-strided operand (unit column stride), as float32 (0 where masked)."""
        return tl.load(ptr + rows[:, None] * stride + cols[None, :], mask=mask, other=0.0).to(tl.float32)

    @triton.jit
    def store_rows(ptr, rows, cols, stride, value, mask):
        """``ptr[rows, cols] = value`` rounded to ``ptr``'s dtype (row-strided, unit column stride)."""
        tl.store(ptr + rows[:, None] * stride + cols[None, :], value.to(ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def dot(a, b, acc, DT: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr):
        """``acc + a @ b`` with the operands rounded to ``DT``.

        ``UPCAST`` (interpreter, bfloat16; see ``_common.dot_upcast``): the operands are rounded to
        ``DT`` and handed to ``tl.dot`` as float32, which computes what the tensor cores compute.
        """
        if UPCAST:
            a = a.to(DT).to(tl.float32)
            b = b.to(DT).to(tl.float32)
            out = tl.dot(a, b, acc, input_precision=PRECISION)
        else:
            out = tl.dot(a.to(DT), b.to(DT), acc, input_precision=PRECISION)
        return out


# ------------------------------------------------------------------------------------------------
# autotuning
# ------------------------------------------------------------------------------------------------
#: warp counts tried for a kernel whose tiles are fixed by its launch (the first is the default)
WARPS = (4, 8, 2, 16)
#: rows per program tried for the row-block kernels (GLU, pointwise gates); the first is the default
ROW_BLOCKS = (4, 1, 2, 8, 16, 32, 64)
#: elements per program kept when pruning row-block candidates (memory-bound: enough to amortise
#: index arithmetic, few enough to keep several float32 operands in registers)
MIN_TILE, MAX_TILE = 256, 8192
#: most tile elements per thread of a row-block candidate (more: register spills in the backward)
MAX_PER_THREAD = 16


def configs(
    blocks: Sequence[dict[str, int]] = ({},), warps: Sequence[int] = WARPS, stages: Sequence[int] = (2,)
) -> list[Any]:
    """``triton.Config`` candidates: every ``blocks`` x ``warps`` x ``stages`` combination, in
    order (the first is the default, and the only one under the interpreter)."""
    return [triton.Config(dict(b), num_warps=w, num_stages=s) for b in blocks for w in warps for s in stages]


def prune_row_blocks(cfgs: list[Any], named_args: dict[str, Any], **kwargs: Any) -> list[Any]:
    """Keep the row-block candidates whose tile ``BLOCK_M x BLOCK_N`` (``BLOCK_N`` passed at launch)
    lies in ``[MIN_TILE, MAX_TILE]``, gives each thread 1 to :data:`MAX_PER_THREAD` elements (more
    spills registers: ptxas, ``tools/check_kernels_compile.py``) and whose ``BLOCK_M`` does not
    exceed the rows; else the candidates of the smallest ``BLOCK_M`` with the most warps (a launch
    always has one)."""
    block_n = kwargs.get("BLOCK_N", named_args.get("BLOCK_N", 1))
    rows = next((named_args[k] for k in ("n_rows", "R") if k in named_args), None)
    cap = next_power_of_2(rows) if isinstance(rows, int) else 1 << 30

    def ok(c: Any) -> bool:
        tile = c.kwargs["BLOCK_M"] * block_n
        per_thread = tile / (32 * c.num_warps)
        return (
            MIN_TILE <= tile <= MAX_TILE and 1 <= per_thread <= MAX_PER_THREAD and c.kwargs["BLOCK_M"] <= cap
        )

    keep = [c for c in cfgs if ok(c)]
    if keep:
        return keep
    smallest = min(c.kwargs["BLOCK_M"] for c in cfgs)
    most = max(c.num_warps for c in cfgs if c.kwargs["BLOCK_M"] == smallest)
    return [c for c in cfgs if c.kwargs["BLOCK_M"] == smallest and c.num_warps == most]


def tuned(fn: Any, key: Sequence[str], cfgs: Sequence[Any], *, row_blocks: bool = False) -> Any:
    """``fn`` autotuned over ``cfgs`` (``tuning_configs``: the first only under the interpreter),
    keyed on the named arguments ``key`` (Triton adds the dtypes of the tensor arguments).

    ``row_blocks``: the candidates tune ``BLOCK_M`` and are pruned per launch by
    :func:`prune_row_blocks`; the launch passes ``BLOCK_N`` and a grid function of ``BLOCK_M``.
    Launches of a tuned kernel must not pass the tuned meta-parameters (``num_warps``,
    ``num_stages``, the tuned blocks). Every tuned kernel writes its outputs with plain stores (no
    accumulation into an output), so benchmarking candidates on live buffers is safe.
    """
    prune = {"early_config_prune": prune_row_blocks} if row_blocks else None
    tuner = triton.autotune(configs=tuning_configs(cfgs), key=list(key), prune_configs_by=prune)(fn)
    tuner.all_configs = list(cfgs)  # every candidate, also under the interpreter (tests, tools)
    return tuner


def tuned_rows(fn: Any, cols: str = "D") -> Any:
    """A row-block kernel (``BLOCK_N`` passed at launch, grid over ``BLOCK_M``) autotuned over
    :data:`ROW_BLOCKS` x warps (4, 8, 2), keyed on the column count ``cols`` and ``BLOCK_N``."""
    cands = configs(blocks=[{"BLOCK_M": m} for m in ROW_BLOCKS], warps=(4, 8, 2))
    return tuned(fn, (cols, "BLOCK_N"), cands, row_blocks=True)


def tuned_warps(
    fn: Any, key: Sequence[str], warps: Sequence[int] = WARPS, stages: Sequence[int] = (2,)
) -> Any:
    """A kernel whose tiles its launch fixes, autotuned over ``warps`` x ``stages`` (the first pair
    is the default, the only one under the interpreter), keyed on the named arguments ``key``."""
    return tuned(fn, key, configs(warps=warps, stages=stages))


def launch_pointwise(
    kernel: Any,
    lay: Layout,
    outputs: Sequence[torch.Tensor | None],
    *scalars: Any,
    reduce_cols: bool = False,
    **constexprs: Any,
) -> None:
    """Launch a pointwise kernel over ``lay`` (see :mod:`._pointwise`).

    The kernel's parameters are, in order: one pointer per operand of ``lay``, then ``outputs``,
    ``scalars``, ``R, D, S1, S2``, one tuple of strides ``(s0, s1, s2, sc)`` per operand of ``lay``,
    ``constexprs`` and ``BLOCK_M, BLOCK_N`` (one block spans a whole row with ``reduce_cols``). The
    kernel is autotuned over ``BLOCK_M`` and warps (:func:`tuned` with ``row_blocks``); ``BLOCK_N``
    comes from the layout. An
    absent operand (``None``, guarded by a constexpr flag in the kernel) is passed as the first
    operand, an absent output as the first output: a pointer the kernel never dereferences.
    """
    _, block_n, _ = blocks(lay.rows, lay.cols, reduce_cols=reduce_cols)
    first = next(t for t in lay.tensors if t is not None)
    ins = [t if t is not None else first for t in lay.tensors]
    outs = [t if t is not None else outputs[0] for t in outputs]
    rows, n_col_blocks = lay.rows, cdiv(lay.cols, block_n)
    with device_ctx(first):
        kernel[lambda meta: (cdiv(rows, meta["BLOCK_M"]), n_col_blocks)](
            *ins, *outs, *scalars, lay.rows, lay.cols, lay.s1, lay.s2, *lay.strides,
            **constexprs, BLOCK_N=block_n,
        )  # fmt: skip


def blocks2d(rows: int, cols: int, tile: int, max_block_n: int = 1024) -> tuple[int, int, tuple[int, int]]:
    """``(BLOCK_M, BLOCK_N, grid)`` of an element-wise kernel over ``[rows, cols]``: tiles of about
    ``tile`` elements, at most ``max_block_n`` columns wide."""
    block_n = min(next_power_of_2(cols), max_block_n)
    block_m = min(max(1, tile // block_n), next_power_of_2(rows))
    return block_m, block_n, (cdiv(rows, block_m), cdiv(cols, block_n))


def row_blocks(rows: int, cols: int, tile: int) -> tuple[int, int, int]:
    """``(BLOCK_M, BLOCK_N, num_warps)`` of a kernel holding whole rows of ``cols`` elements.

    ``BLOCK_N`` covers the row, ``BLOCK_M`` rows make about ``tile`` elements, and there is one
    warp per 256 elements of the block (4 to 16 warps).
    """
    block_n = next_power_of_2(cols)
    block_m = min(max(1, tile // block_n), next_power_of_2(rows))
    return block_m, block_n, min(16, max(4, block_m * block_n // 256))


def stride_programs(n_blocks: int, device: torch.device) -> int:
    """Programs of a kernel that loops over a strided set of ``n_blocks`` row blocks."""
    return min(n_blocks, MAX_PROGRAMS_CUDA if device.type == "cuda" else MAX_PROGRAMS_CPU)


def rows2d(t: torch.Tensor) -> torch.Tensor:
    """``[..., D]`` -> ``[rows, D]`` with unit column stride (a view when the strides allow it)."""
    if t.size(-1) > 1 and t.stride(-1) != 1:
        t = t.contiguous()  # e.g. the expanded (stride 0) gradient of a .sum()
    return t.reshape(-1, t.size(-1))
