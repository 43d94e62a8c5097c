"""Triton kernels for the noisy top-k router: softmax, top-k and balance statistics in one pass.

Forward, per token row ``x`` (``E`` logits, held whole by one program, float32 in registers)::

    probs   = softmax(x)
    top     = the k (k + 1 for the smooth load) largest logits, by repeated arg-max (lowest index on ties)
    weights = softmax(top[:k]);  gates = weights scattered to their experts
    and, summed over the program's rows (float32 partials, added afterwards):
    importance += gates;  counts += selected;  load += Phi((clean - thr) / std)
    with thr = top[k] for a selected expert, top[k - 1] otherwise (Shazeer et al. 2017, App. A)

Backward, per row (selection and softmaxes recomputed from the saved logits)::

    dG      = dgates + dimportance (+ dweights scattered to the chosen experts)
    dx     += w * (dG - sum(w * dG))                    over the chosen experts (weights' softmax)
    dx     += p * (dprobs - sum(p * dprobs))            (probs' softmax)
    dz      = dload * phi(z),  z = (clean - thr) / std: dclean = dz / std, dstd = -dz * z / std,
    dx[thr] -= sum of dz / std over the experts using that threshold (the logit at top[k] or top[k-1])

Rows are processed in blocks of ``BLOCK_M``; in the forward each program loops over a strided set of
row blocks so the number of partial statistics rows stays small. While ``torch.compile`` traces,
:class:`TopKRouterFunction` calls the kernels through opaque custom ops (see :mod:`.glu_triton`).
"""

from __future__ import annotations

from typing import Any

import torch

from ._common import cdiv, device_ctx, next_power_of_2
from ._triton_common import row_blocks, stride_programs, tuned_warps

try:
    import triton
    import triton.language as tl
except ImportError:  # the module must import without triton; the functions below raise instead
    triton = None
    tl = None

_TILE = 256  # elements of a row block: 4 rows of 64 experts (no register spills on sm_90)


if triton is not None:

    @triton.jit
    def _column(t, kc, j):
        """Column ``j`` of a ``[BLOCK_M, BLOCK_K]`` tile as a ``[BLOCK_M]`` vector."""
        return tl.sum(tl.where(kc[None, :] == j, t, 0), axis=1)

    @triton.jit
    def _select(x, cols, kc, K1: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_E: tl.constexpr):
        """Top ``K1`` values and indices (``[BLOCK_M, BLOCK_K]``) by repeated arg-max, lowest index on ties."""
        cur = x
        tv = tl.zeros([x.shape[0], BLOCK_K], dtype=tl.float32)
        ti = tl.zeros([x.shape[0], BLOCK_K], dtype=tl.int32)
        for j in tl.static_range(K1):
            v = tl.max(cur, axis=1)
            i = tl.min(tl.where(cur == v[:, None], cols[None, :], BLOCK_E), axis=1)
            tv = tl.where(kc[None, :] == j, v[:, None], tv)
            ti = tl.where(kc[None, :] == j, i[:, None], ti)
            cur = tl.where(cols[None, :] == i[:, None], float("-inf"), cur)
        return tv, ti

    @triton.jit
    def _chosen(ti, cols, kc, K: tl.constexpr):
        """Boolean ``[BLOCK_M, BLOCK_E]`` mask of the first ``K`` selected experts."""
        sel = cols[None, :] < 0
        for j in tl.static_range(K):
            sel = sel | (cols[None, :] == _column(ti, kc, j)[:, None])
        return sel

    @triton.jit
    def _route(x, mask, cols, kc, K: tl.constexpr, SMOOTH: tl.constexpr, BLOCK_K: tl.constexpr,
               BLOCK_E: tl.constexpr):  # fmt: skip
        """The selection of a row block of float32 logits ``x`` (padded experts ``-inf``).

        Returns ``(tv, ti, sel)``: the top ``K`` (``K + 1`` with ``SMOOTH``: the smooth load needs
        the next one) values and indices, and the ``[BLOCK_M, BLOCK_E]`` mask of the chosen experts.
        The forward and the backward (which recomputes the selection) both call this.
        """
        if SMOOTH:
            tv, ti = _select(x, cols, kc, K + 1, BLOCK_K, BLOCK_E)
        else:
            tv, ti = _select(x, cols, kc, K, BLOCK_K, BLOCK_E)
        return tv, ti, _chosen(ti, cols, kc, K) & mask

    @triton.jit
    def _softmax(x):
        """Row softmax of a ``[BLOCK_M, BLOCK_E]`` float32 tile (``-inf`` entries get 0)."""
        mx = tl.max(x, axis=1)
        e = tl.exp(x - mx[:, None])
        return e / tl.sum(e, axis=1)[:, None]

    @triton.jit
    def _chosen_exp(x, tv, kc, sel, rmask):
        """``(top, ew, ssum)``: ``ew = e^{x - top}`` on the chosen experts (0 elsewhere), ``top`` the
        largest logit and ``ssum`` the row sum of ``ew`` (1 on padded rows, which choose nothing:
        no 0 / 0). The weights' softmax is ``ew / ssum``."""
        top = _column(tv, kc, 0)
        ew = tl.where(sel, tl.exp(x - top[:, None]), 0.0)
        return top, ew, tl.where(rmask, tl.sum(ew, axis=1), 1.0)

    @triton.jit
    def _load_z(clean_ptr, std_ptr, offs, mask, tv, kc, sel, K: tl.constexpr):
        """``(z, std)``: ``z = (clean - thr) / std`` with ``thr`` = the logit at ``top[K]`` for a chosen
        expert, at ``top[K - 1]`` for the others (float32)."""
        thr = tl.where(sel, _column(tv, kc, K)[:, None], _column(tv, kc, K - 1)[:, None])
        cl = tl.load(clean_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        sd = tl.load(std_ptr + offs, mask=mask, other=1.0).to(tl.float32)
        return (cl - thr) / sd, sd

    @triton.jit
    def _router_fwd_kernel(
        x_ptr, clean_ptr, std_ptr,  # inputs [N, E]
        gates_ptr, idx_ptr, w_ptr, probs_ptr,  # outputs: [N, E], [N, K], [N, K], [N, E]
        imp_part_ptr, load_part_ptr, cnt_part_ptr,  # per-program partial sums [programs, E]
        N, E, n_blocks,
        K: tl.constexpr, SMOOTH: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_K: tl.constexpr,
    ):  # fmt: skip
        pid = tl.program_id(0)
        n_prog = tl.num_programs(0)
        cols = tl.arange(0, BLOCK_E)
        cmask = cols < E
        kc = tl.arange(0, BLOCK_K)
        imp = tl.zeros([BLOCK_E], dtype=tl.float32)
        load = tl.zeros([BLOCK_E], dtype=tl.float32)
        cnt = tl.zeros([BLOCK_E], dtype=tl.int32)
        for blk in range(pid, n_blocks, n_prog):
            rows = blk * BLOCK_M + tl.arange(0, BLOCK_M).to(tl.int64)  # int64: row * E may overflow
            rmask = rows < N
            mask = rmask[:, None] & cmask[None, :]
            offs = rows[:, None] * E + cols[None, :]
            x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            # padded experts (cols >= E) never win and get probability 0: the block's fill, not a mask
            # applied to real logits (those are never replaced)
            x = tl.where(cmask[None, :], x, float("-inf"))
            tl.store(probs_ptr + offs, _softmax(x).to(probs_ptr.dtype.element_ty), mask=mask)

            tv, ti, sel = _route(x, mask, cols, kc, K, SMOOTH, BLOCK_K, BLOCK_E)
            # weights = softmax over the chosen logits (max = the first one); gates = same values scattered
            top, ew, ssum = _chosen_exp(x, tv, kc, sel, rmask)
            g = (ew / ssum[:, None]).to(gates_ptr.dtype.element_ty)
            tl.store(gates_ptr + offs, g, mask=mask)
            kmask = rmask[:, None] & (kc[None, :] < K)
            wk = tl.where(kc[None, :] < K, tl.exp(tv - top[:, None]), 0.0) / ssum[:, None]
            tl.store(w_ptr + rows[:, None] * K + kc[None, :], wk.to(w_ptr.dtype.element_ty), mask=kmask)
            tl.store(idx_ptr + rows[:, None] * K + kc[None, :], ti.to(tl.int64), mask=kmask)

            imp += tl.sum(g.to(tl.float32), axis=0)  # of the rounded gates, as the reference sums them
            cnt += tl.sum(sel.to(tl.int32), axis=0)
            if SMOOTH:
                z, _ = _load_z(clean_ptr, std_ptr, offs, mask, tv, kc, sel, K)
                # Phi(z) = (1 + erf(z / sqrt(2))) / 2, 1/sqrt(2) = 0.70710678...
                phi = 0.5 * (1.0 + tl.math.erf(z * 0.7071067811865476))
                load += tl.sum(tl.where(mask, phi, 0.0), axis=0)
        tl.store(imp_part_ptr + pid * E + cols, imp, mask=cmask)
        tl.store(cnt_part_ptr + pid * E + cols, cnt, mask=cmask)
        if SMOOTH:
            tl.store(load_part_ptr + pid * E + cols, load, mask=cmask)

    @triton.jit
    def _router_bwd_kernel(
        x_ptr, clean_ptr, std_ptr,  # inputs [N, E]
        dgates_ptr, dw_ptr, dprobs_ptr, dimp_ptr, dload_ptr,  # gradients: [N, E], [N, K], [N, E], [E], [E]
        dx_ptr, dclean_ptr, dstd_ptr,  # outputs [N, E]
        N, E,
        K: tl.constexpr, SMOOTH: tl.constexpr, HAS_DG: tl.constexpr, HAS_DW: tl.constexpr,
        HAS_DP: tl.constexpr, HAS_DIMP: tl.constexpr, HAS_DLOAD: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_K: tl.constexpr,
    ):  # fmt: skip
        rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
        rmask = rows < N
        cols = tl.arange(0, BLOCK_E)
        cmask = cols < E
        kc = tl.arange(0, BLOCK_K)
        mask = rmask[:, None] & cmask[None, :]
        offs = rows[:, None] * E + cols[None, :]
        x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        x = tl.where(cmask[None, :], x, float("-inf"))
        tv, ti, sel = _route(x, mask, cols, kc, K, SMOOTH, BLOCK_K, BLOCK_E)
        dx = tl.zeros([BLOCK_M, BLOCK_E], dtype=tl.float32)

        # gradient of the chosen weights, gathered per expert column (gates, importance, weights)
        dG = tl.zeros([BLOCK_M, BLOCK_E], dtype=tl.float32)
        if HAS_DG:
            dG += tl.load(dgates_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        if HAS_DIMP:
            dG += tl.load(dimp_ptr + cols, mask=cmask, other=0.0).to(tl.float32)[None, :]
        if HAS_DW:
            dw = tl.load(
                dw_ptr + rows[:, None] * K + kc[None, :], mask=rmask[:, None] & (kc[None, :] < K), other=0.0
            ).to(tl.float32)
            for j in tl.static_range(K):
                dG += tl.where(cols[None, :] == _column(ti, kc, j)[:, None], _column(dw, kc, j)[:, None], 0.0)
        _, ew, ssum = _chosen_exp(x, tv, kc, sel, rmask)
        w = ew / ssum[:, None]
        dx += tl.where(sel, w * (dG - tl.sum(w * dG, axis=1)[:, None]), 0.0)

        if HAS_DP:
            p = _softmax(x)
            dp = tl.load(dprobs_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            dx += p * (dp - tl.sum(p * dp, axis=1)[:, None])

        if SMOOTH:
            dcl = tl.zeros([BLOCK_M, BLOCK_E], dtype=tl.float32)
            dsd = tl.zeros([BLOCK_M, BLOCK_E], dtype=tl.float32)
            if HAS_DLOAD:
                dl = tl.load(dload_ptr + cols, mask=cmask, other=0.0).to(tl.float32)
                z, sd = _load_z(clean_ptr, std_ptr, offs, mask, tv, kc, sel, K)
                # phi(z) = exp(-z^2 / 2) / sqrt(2 pi), 1/sqrt(2 pi) = 0.39894228...
                dz = tl.where(mask, dl[None, :] * 0.3989422804014327 * tl.exp(-0.5 * z * z), 0.0)
                dcl = dz / sd
                dsd = -dz * z / sd
                # the threshold is the logit at top[K] (chosen experts) or top[K-1] (the others)
                t_in = tl.sum(tl.where(sel, dcl, 0.0), axis=1)
                t_out = tl.sum(tl.where(sel, 0.0, dcl), axis=1)
                dx -= tl.where(cols[None, :] == _column(ti, kc, K)[:, None], t_in[:, None], 0.0)
                dx -= tl.where(cols[None, :] == _column(ti, kc, K - 1)[:, None], t_out[:, None], 0.0)
            tl.store(dclean_ptr + offs, dcl.to(dclean_ptr.dtype.element_ty), mask=mask)
            tl.store(dstd_ptr + offs, dsd.to(dstd_ptr.dtype.element_ty), mask=mask)
        tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)


if triton is not None:
    # autotuned: warps (tiles: whole rows of E experts; only the first candidate under the interpreter)
    _router_fwd_kernel = tuned_warps(_router_fwd_kernel, ("E", "K", "BLOCK_M", "BLOCK_E"), warps=(4, 8, 16, 2))
    _router_bwd_kernel = tuned_warps(_router_bwd_kernel, ("E", "K", "BLOCK_M", "BLOCK_E"), warps=(4, 8, 16, 2))


def _require_triton() -> None:
    if triton is None:
        raise RuntimeError("gatelab.core.kernels.router_triton needs triton, which is not installed")


def _blocks(N: int, E: int, k1: int) -> tuple[int, int, int, dict[str, int]]:
    """``(BLOCK_M, BLOCK_E, BLOCK_K, launch options)``: whole rows of ``E`` experts, about 2 tile
    elements per thread and tensor."""
    block_m, block_e, _ = row_blocks(N, E, _TILE)
    return block_m, block_e, next_power_of_2(k1), {}  # warps: autotuned


def router_forward(
    logits: torch.Tensor, k: int, clean: torch.Tensor | None, std: torch.Tensor | None
) -> tuple[torch.Tensor, ...]:
    """``(gates, indices, weights, probs, importance, load, counts)`` by the Triton forward kernel."""
    _require_triton()
    x = logits.contiguous()
    N, E = x.shape
    smooth = clean is not None
    dev = x.device
    gates = torch.empty_like(x)
    probs = torch.empty_like(x)
    idx = torch.empty(N, k, dtype=torch.int64, device=dev)
    w = torch.empty(N, k, dtype=x.dtype, device=dev)
    block_m, block_e, block_k, opts = _blocks(N, E, k + 1 if smooth else k)
    n_blocks = cdiv(N, block_m)
    n_prog = stride_programs(n_blocks, dev)
    imp = torch.empty(n_prog, E, dtype=torch.float32, device=dev)
    load = torch.empty(n_prog, E, dtype=torch.float32, device=dev) if smooth else imp
    cnt = torch.empty(n_prog, E, dtype=torch.int32, device=dev)
    with device_ctx(x):
        _router_fwd_kernel[(n_prog,)](
            x, clean.contiguous() if smooth else x, std.contiguous() if smooth else x,
            gates, idx, w, probs, imp, load, cnt, N, E, n_blocks,
            K=k, SMOOTH=smooth, BLOCK_M=block_m, BLOCK_E=block_e, BLOCK_K=block_k, **opts,
        )  # fmt: skip
    counts = cnt.sum(0, dtype=torch.int64)
    importance = imp.sum(0)
    load_out = load.sum(0) if smooth else counts.float()
    return gates, idx, w, probs, importance, load_out, counts


def router_backward(
    logits: torch.Tensor,
    k: int,
    clean: torch.Tensor | None,
    std: torch.Tensor | None,
    dgates: torch.Tensor | None,
    dweights: torch.Tensor | None,
    dprobs: torch.Tensor | None,
    dimportance: torch.Tensor | None,
    dload: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """``(dlogits, dclean, dstd)`` by the Triton backward kernel (``None`` for absent inputs)."""
    _require_triton()
    x = logits.contiguous()
    N, E = x.shape
    smooth = clean is not None
    dx = torch.empty_like(x)
    dclean = torch.empty_like(clean) if smooth else None
    dstd = torch.empty_like(std) if smooth else None
    block_m, block_e, block_k, opts = _blocks(N, E, k + 1 if smooth else k)

    def c(t: torch.Tensor | None) -> torch.Tensor:
        return t.contiguous() if t is not None else x

    with device_ctx(x):
        _router_bwd_kernel[(cdiv(N, block_m),)](
            x, c(clean), c(std), c(dgates), c(dweights), c(dprobs), c(dimportance), c(dload),
            dx, dclean if smooth else dx, dstd if smooth else dx, N, E,
            K=k, SMOOTH=smooth, HAS_DG=dgates is not None, HAS_DW=dweights is not None,
            HAS_DP=dprobs is not None, HAS_DIMP=dimportance is not None,
            HAS_DLOAD=smooth and dload is not None,
            BLOCK_M=block_m, BLOCK_E=block_e, BLOCK_K=block_k, **opts,
        )  # fmt: skip
    return dx, dclean, dstd


@torch.library.custom_op("gatelab::topk_router_fwd", mutates_args=())
def _fwd_op(
    logits: torch.Tensor, k: int, clean: torch.Tensor | None, std: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return router_forward(logits, k, clean, std)


@_fwd_op.register_fake
def _(
    logits: torch.Tensor, k: int, clean: torch.Tensor | None, std: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    N, E = logits.shape
    dev = logits.device
    return (
        torch.empty_like(logits),
        torch.empty(N, k, dtype=torch.int64, device=dev),
        torch.empty(N, k, dtype=logits.dtype, device=dev),
        torch.empty_like(logits),
        torch.empty(E, dtype=torch.float32, device=dev),
        torch.empty(E, dtype=torch.float32, device=dev),
        torch.empty(E, dtype=torch.int64, device=dev),
    )


@torch.library.custom_op("gatelab::topk_router_bwd", mutates_args=())
def _bwd_op(
    logits: torch.Tensor, k: int, clean: torch.Tensor | None, std: torch.Tensor | None,
    dgates: torch.Tensor | None, dweights: torch.Tensor | None, dprobs: torch.Tensor | None,
    dimportance: torch.Tensor | None, dload: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    dx, dc, ds = router_backward(logits, k, clean, std, dgates, dweights, dprobs, dimportance, dload)
    empty = logits.new_empty(0)
    return dx, dc if dc is not None else empty, ds if ds is not None else empty


@_bwd_op.register_fake
def _(
    logits: torch.Tensor, k: int, clean: torch.Tensor | None, std: torch.Tensor | None, *grads: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # the output gradients (dgates .. dload) do not shape the result
    empty = logits.new_empty(0)
    return (
        torch.empty_like(logits),
        torch.empty_like(clean) if clean is not None else empty,
        torch.empty_like(std) if std is not None else empty,
    )


class TopKRouterFunction(torch.autograd.Function):
    """Autograd wrapper: saves the logits (and ``clean``/``std``); the backward recomputes the rest."""

    @staticmethod
    def forward(
        ctx: Any, logits: torch.Tensor, k: int, clean: torch.Tensor | None, std: torch.Tensor | None
    ) -> tuple[torch.Tensor, ...]:
        if torch.compiler.is_compiling():
            outs = _fwd_op(logits, k, clean, std)
        else:
            outs = router_forward(logits, k, clean, std)
        ctx.save_for_backward(logits, clean, std)
        ctx.k = k
        ctx.set_materialize_grads(False)
        ctx.mark_non_differentiable(outs[1], outs[6])  # indices, counts
        if clean is None:
            ctx.mark_non_differentiable(outs[5])  # assignment counts: no gradient, as in the reference
        return outs

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        logits, clean, std = ctx.saved_tensors
        dgates, _, dw, dprobs, dimp, dload, _ = grads
        if clean is None:
            dload = None
        if torch.compiler.is_compiling():
            dx, dc, ds = _bwd_op(logits, ctx.k, clean, std, dgates, dw, dprobs, dimp, dload)
            if clean is None:
                dc = ds = None
        else:
            dx, dc, ds = router_backward(logits, ctx.k, clean, std, dgates, dw, dprobs, dimp, dload)
        need = ctx.needs_input_grad
        return (
            dx if need[0] else None,
            None,
            dc if clean is not None and need[2] else None,
            ds if std is not None and need[3] else None,
        )


def topk_router_triton(
    logits: torch.Tensor, k: int, clean: torch.Tensor | None, std: torch.Tensor | None
) -> tuple[torch.Tensor, ...]:
    """One-pass router with Triton forward and backward; call through ``dispatch`` (it verifies)."""
    return TopKRouterFunction.apply(logits, k, clean, std)
