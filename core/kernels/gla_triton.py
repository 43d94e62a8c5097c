r"""Triton kernels for chunked gated linear attention (GLA), forward and backward.

Notation per batch and head: the sequence is cut into chunks of ``BT = 64`` steps, chunk ``n``
enters with state ``H_n`` (``[K, V]``); inside a chunk ``b_i = sum_{s <= i} g_s`` is the chunk-local
cumulative log gate (``<= 0``, non-increasing) and ``b_C`` its value at the chunk's last step::

    o_i     = scale * [ (q_i * e^{b_i}) H_n + sum_{j <= i} A'_ij v_j ],   A'_ij = sum_k q_ik k_jk e^{b_ik - b_jk}
    H_{n+1} = e^{b_C} * H_n + sum_j (k_j * e^{b_C - b_j})^T v_j

Stability: no exponent is ever positive. ``e^{b_i}``, ``e^{b_C - b_j}`` and ``e^{b_C}`` have
non-positive exponents by construction. The intra-chunk matrix ``A = scale * A'`` is computed per
``BC = 16``-step sub-chunk pair: a block strictly below the diagonal (rows in sub-chunk ``i``,
columns in an earlier sub-chunk ``j``) factors through the reference point ``r`` = the last step
before sub-chunk ``i``, ``e^{b_i - b_j} = e^{b_i - b_r} e^{b_r - b_j}``, both factors ``<= 1``, so
it is one ``tl.dot``; the diagonal blocks are summed explicitly element by element (``BC``
column updates), which needs no factorisation. (The factorisation ``(q e^{b}) (k e^{-b})^T`` over a
whole chunk would overflow for strongly negative gates.)

Forward kernels (grids over ``(K-block, V-block, B*H)`` or ``(chunk, B*H)``):

1. ``_cumsum``: ``b`` (float32) per chunk.
2. ``_fwd_h``: the chunk-level recurrence; stores every ``H_n`` (``n = 0..N``; float32) and the
   final state.
3. ``_fwd_A``: ``A`` per chunk (float32, ``[B*H, T, BT]``, zero above the diagonal).
4. ``_fwd_o``: ``o = (q * e^{b} * scale) H_n + A v``.

Backward, with ``dA_ij = scale * do_i . v_j`` (``j <= i``) and ``dH_n`` the gradient of the state
entering chunk ``n`` (``dH_N`` = gradient of the final state)::

    dH_n = e^{b_C} * dH_{n+1} + scale * (q * e^{b})^T do                   (reverse recurrence)
    dv   = A^T do + (k * e^{b_C - b}) dH_{n+1}
    dq   = scale * e^{b} * (do H_n^T) + sum_{j <= i} dA_ij k_j e^{b_i - b_j}
    dk   = e^{b_C - b} * (v dH_{n+1}^T) + sum_{i >= j} dA_ij q_i e^{b_i - b_j}
    dL/db_i = q_i dq_i - k_i dk_i  (+ sum_v H_{n+1} * dH_{n+1} at the chunk's last step)
    dg   = reverse cumulative sum of dL/db over the chunk

Kernels: ``_cumsum`` and ``_fwd_h`` again (the states are recomputed, not saved; ``A`` is saved),
``_bwd_dh`` (reverse recurrence), ``_bwd_dA``, ``_bwd_dv``, ``_bwd_intra`` (the ``dA`` terms of
``dq``/``dk``, sub-chunk blocks as in the forward) and ``_bwd_dqk`` (state terms, ``dg``).

Precision: the gates, states, ``A`` and all accumulations are float32. For float32 inputs every
``tl.dot`` is IEEE float32 (``input_precision="ieee"``; TF32 would be far from the float32
reference); for float16/bfloat16 inputs the ``tl.dot`` operands are rounded to the input dtype
(tensor cores, float32 accumulation), as in flash-linear-attention. While ``torch.compile`` traces,
:class:`GlaChunkFunction` calls the kernels through opaque custom ops (see :mod:`.glu_triton`).

Layouts: inputs ``[B, T, H, K|V]`` (made contiguous); ``T`` need not be a multiple of ``BT`` (the
tail is masked). This is an independent implementation of the algorithm of Yang et al. 2023
(Sec. 4, "secondary chunking"); flash-linear-attention's ``chunk_gla`` served as the reference
design, no code is copied.
"""

from __future__ import annotations

from typing import Any

import torch

from ._common import cdiv, device_ctx, dot_upcast, next_power_of_2

try:
    import triton
    import triton.language as tl

    from ._triton_common import dot, tuned_warps
except ImportError:  # the module must import without triton; the functions below raise instead
    triton = None
    tl = None

BT = 64  # chunk length
BC = 16  # sub-chunk length (tl.dot needs >= 16)
NC = BT // BC
# K/V tiles and warps: the largest that ptxas compiles for sm_90 without register spills
# (tools/check_kernels_compile.py); IEEE float32 dots need more registers than half-precision ones.
_BKV_HALF, _BKV_FP32 = 64, 32
_WARPS = 8  # the state/output kernels (64 x 64 fp32 tiles): the autotuner's first candidate
_WARPS_SUB = 4  # the sub-chunk kernels (_fwd_A, _bwd_intra) and the cumulative sum: ditto
_BK_CUMSUM = 16


if triton is not None:

    @triton.jit
    def _head_row(i_bh, T, H):
        """Row of step 0 of head ``i_bh`` (``= b * H + h``, int64) among the ``B * T * H`` rows of a
        contiguous ``[B, T, H, D]`` tensor: the head's offset is this times ``D``."""
        return (i_bh // H) * T * H + i_bh % H

    @triton.jit
    def _steps(row0, T, N: tl.constexpr):
        """Steps ``row0 + [0, N)``: ``(sub, rows, rmask)`` with ``sub = arange(N)``, int64 ``rows``."""
        sub = tl.arange(0, N)
        rows = row0 + sub.to(tl.int64)
        return sub, rows, rows < T

    @triton.jit
    def _tile(ptr, base, rows, cols, HD, mask):
        """The ``[rows, cols]`` tile of one head of a contiguous ``[B, T, H, D]`` tensor (``HD = H * D``;
        0 where masked, dtype of ``ptr``)."""
        return tl.load(ptr + base + rows[:, None] * HD + cols[None, :], mask=mask, other=0.0)

    @triton.jit
    def _step(ptr, base, row, cols, HD, mask):
        """Step ``row`` of one head (a ``[BK]`` vector; 0 where masked)."""
        return tl.load(ptr + base + row * HD + cols, mask=mask, other=0.0)

    @triton.jit
    def _state_prologue(init_ptr, T, H, K, V, NT, HAS_INIT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
        """Set-up of a program of the chunk recurrences (``_fwd_h``: states, ``_bwd_dh``: their gradients).

        The program owns the ``[BK, BV]`` tile ``(program_id(0), program_id(1))`` of the ``[K, V]``
        state of head ``i_bh = program_id(2)``. Returns ``(i_bh, ks, vs, kmask, vmask, hmask, hoffs,
        kbase, vbase, hbase, S)``: the tile's rows/columns, masks and offsets, the head's offsets in
        ``[B, T, H, K|V]`` tensors and in the ``[B*H, NT+1, K, V]`` states, and the initial float32
        tile ``S`` (read from ``init_ptr`` ``[B*H, K, V]`` with ``HAS_INIT``, else 0).
        """
        i_k = tl.program_id(0)
        i_v = tl.program_id(1)
        i_bh = tl.program_id(2).to(tl.int64)
        ks = i_k * BK + tl.arange(0, BK)
        vs = i_v * BV + tl.arange(0, BV)
        kmask = ks < K
        vmask = vs < V
        hmask = kmask[:, None] & vmask[None, :]
        hoffs = ks[:, None] * V + vs[None, :]
        head = _head_row(i_bh, T, H)
        hbase = i_bh * (NT + 1) * K * V
        S = tl.zeros([BK, BV], dtype=tl.float32)
        if HAS_INIT:
            S += tl.load(init_ptr + i_bh * K * V + hoffs, mask=hmask, other=0.0).to(tl.float32)
        return i_bh, ks, vs, kmask, vmask, hmask, hoffs, head * K, head * V, hbase, S

    @triton.jit
    def _chunk_prologue(T, H, K, V, D, BT: tl.constexpr, BD: tl.constexpr):
        """Set-up of a program over (feature block ``program_id(0)``, chunk ``program_id(1)``, head
        ``program_id(2)``); the feature block is ``BD`` columns of ``D`` (``K`` or ``V``).

        Returns ``(i_t, i_bh, sub, rows, rmask, ds, dmask, kbase, vbase)``: the chunk's steps, the
        block's columns and mask, the head's offsets in ``[B, T, H, K|V]`` tensors.
        """
        i_d = tl.program_id(0)
        i_t = tl.program_id(1)
        i_bh = tl.program_id(2).to(tl.int64)
        head = _head_row(i_bh, T, H)
        sub, rows, rmask = _steps(i_t * BT, T, BT)
        ds = i_d * BD + tl.arange(0, BD)
        return i_t, i_bh, sub, rows, rmask, ds, ds < D, head * K, head * V

    @triton.jit
    def _last_step(i_t, T, BT: tl.constexpr):
        """The last real step of chunk ``i_t`` (where ``b_C`` is read)."""
        return tl.minimum(i_t * BT + BT, T) - 1

    @triton.jit
    def _k_to_end(kk, gc, glast, mk):
        """``k_j * e^{b_C - b_j}`` (float32): exponent <= 0 (masked rows: 0, their k is 0 anyway).

        The state recurrence (forward) and ``dv`` (backward) both need it.
        """
        return kk.to(tl.float32) * tl.exp(tl.where(mk, glast[None, :] - gc, 0.0))

    @triton.jit
    def _q_from_start(q_ptr, gc_ptr, kbase, rows, ks, mq, HK, scale):
        """``scale * q_i * e^{b_i}`` (float32): the output (forward) and ``dH`` (backward) terms."""
        q = _tile(q_ptr, kbase, rows, ks, HK, mq)
        gc = _tile(gc_ptr, kbase, rows, ks, HK, mq)
        return q.to(tl.float32) * tl.exp(gc) * scale

    @triton.jit
    def _k_to_ref(kj, gj, gr):
        """``k_j * e^{b_r - b_j}`` (float32) for the steps of an earlier sub-chunk (all real steps,
        before the reference step ``r``): ``A`` (forward) and ``dq`` (backward) use it."""
        return kj.to(tl.float32) * tl.exp(gr[None, :] - gj)

    @triton.jit
    def _sub_chunk(i_tc, T, NC: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr):
        """``(i_t, i_i, row0)``: chunk, sub-chunk and first step of the program's sub-chunk ``i_tc``."""
        i_t = i_tc // NC
        i_i = i_tc % NC
        return i_t, i_i, i_t * BT + i_i * BC

    @triton.jit
    def _cumsum_kernel(g_ptr, gc_ptr, T, H, K, BT: tl.constexpr, BK: tl.constexpr):
        i_t = tl.program_id(0)
        i_bh = tl.program_id(1)
        i_b = (i_bh // H).to(tl.int64)
        i_h = i_bh % H
        base = (i_b * T * H + i_h) * K
        rows = i_t * BT + tl.arange(0, BT).to(tl.int64)
        rmask = rows < T
        for k0 in range(0, K, BK):
            ks = k0 + tl.arange(0, BK)
            mask = rmask[:, None] & (ks < K)[None, :]
            offs = base + rows[:, None] * (H * K) + ks[None, :]
            g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            tl.store(gc_ptr + offs, tl.cumsum(g, axis=0), mask=mask)

    @triton.jit
    def _fwd_h_kernel(
        k_ptr, v_ptr, gc_ptr, h0_ptr,  # inputs
        h_ptr, ht_ptr,  # outputs: every chunk's state [B*H, NT+1, K, V], the final state
        T, H, K, V, NT,
        HAS_H0: tl.constexpr, STORE_HT: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr,
        BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    ):  # fmt: skip
        DT = k_ptr.dtype.element_ty
        i_bh, ks, vs, kmask, vmask, hmask, hoffs, kbase, vbase, hbase, S = _state_prologue(
            h0_ptr, T, H, K, V, NT, HAS_H0, BK, BV
        )
        for i_t in range(0, NT):
            tl.store(h_ptr + hbase + i_t * K * V + hoffs, S, mask=hmask)
            _, rows, rmask = _steps(i_t * BT, T, BT)
            mk = rmask[:, None] & kmask[None, :]
            kk = _tile(k_ptr, kbase, rows, ks, H * K, mk)
            gc = _tile(gc_ptr, kbase, rows, ks, H * K, mk)
            vv = _tile(v_ptr, vbase, rows, vs, H * V, rmask[:, None] & vmask[None, :])
            glast = _step(gc_ptr, kbase, _last_step(i_t, T, BT), ks, H * K, kmask)
            kd = _k_to_end(kk, gc, glast, mk)
            S = S * tl.exp(glast)[:, None]
            S = dot(tl.trans(kd), vv, S, DT, PRECISION, UPCAST)
        tl.store(h_ptr + hbase + NT * K * V + hoffs, S, mask=hmask)
        if STORE_HT:
            tl.store(ht_ptr + i_bh * K * V + hoffs, S, mask=hmask)

    @triton.jit
    def _fwd_A_kernel(
        q_ptr, k_ptr, gc_ptr,  # inputs
        A_ptr,  # output [B*H, T, BT]
        scale, T, H, K,
        PRECISION: tl.constexpr, UPCAST: tl.constexpr,
        BT: tl.constexpr, BC: tl.constexpr, NC: tl.constexpr, BK: tl.constexpr,
    ):  # fmt: skip
        i_bh = tl.program_id(1).to(tl.int64)
        i_t, i_i, row0 = _sub_chunk(tl.program_id(0), T, NC, BT, BC)
        head = _head_row(i_bh, T, H)
        DT = q_ptr.dtype.element_ty
        if row0 >= T:
            return
        sub, rows_i, mi = _steps(row0, T, BC)
        base = head * K
        a_rows = A_ptr + i_bh * T * BT + rows_i[:, None] * BT
        for i_j in tl.static_range(NC):
            acc = tl.zeros([BC, BC], dtype=tl.float32)
            if i_j < i_i:
                # strictly below the diagonal: e^{b_i - b_j} = e^{b_i - b_r} e^{b_r - b_j}, r = row0 - 1
                rows_j = i_t * BT + i_j * BC + sub.to(tl.int64)  # all < row0 <= T - 1
                for k0 in range(0, K, BK):
                    ks = k0 + tl.arange(0, BK)
                    kmask = ks < K
                    mq = mi[:, None] & kmask[None, :]
                    qi = _tile(q_ptr, base, rows_i, ks, H * K, mq)
                    gi = _tile(gc_ptr, base, rows_i, ks, H * K, mq)
                    kj = _tile(k_ptr, base, rows_j, ks, H * K, kmask[None, :])
                    gj = _tile(gc_ptr, base, rows_j, ks, H * K, kmask[None, :])
                    gr = _step(gc_ptr, base, row0 - 1, ks, H * K, kmask)
                    qs = qi.to(tl.float32) * tl.exp(tl.where(mq, gi - gr[None, :], 0.0))
                    kr = _k_to_ref(kj, gj, gr)
                    acc = dot(qs, tl.trans(kr), acc, DT, PRECISION, UPCAST)
            elif i_j == i_i:
                # diagonal block: A'_ij = sum_k q_ik k_jk e^{b_ik - b_jk} for j <= i, column by column
                for k0 in range(0, K, BK):
                    ks = k0 + tl.arange(0, BK)
                    kmask = ks < K
                    mq = mi[:, None] & kmask[None, :]
                    qi = _tile(q_ptr, base, rows_i, ks, H * K, mq).to(tl.float32)
                    gi = _tile(gc_ptr, base, rows_i, ks, H * K, mq)
                    for j in range(0, BC):
                        mj = kmask & (row0 + j < T)
                        kj = _step(k_ptr, base, row0 + j, ks, H * K, mj).to(tl.float32)
                        gj = _step(gc_ptr, base, row0 + j, ks, H * K, mj)
                        m = (sub >= j) & mi
                        e = tl.exp(tl.where(m[:, None], gi - gj[None, :], 0.0))
                        col = tl.where(m, tl.sum(qi * kj[None, :] * e, axis=1), 0.0)
                        acc += tl.where(sub[None, :] == j, col[:, None], 0.0)
            # blocks above the diagonal stay zero (stored so that A is a full lower-triangular tile)
            tl.store(a_rows + i_j * BC + sub[None, :], acc * scale, mask=mi[:, None])

    @triton.jit
    def _fwd_o_kernel(
        q_ptr, v_ptr, gc_ptr, h_ptr, A_ptr,  # inputs
        o_ptr,  # output [B, T, H, V]
        scale, T, H, K, V, NT,
        PRECISION: tl.constexpr, UPCAST: tl.constexpr,
        BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    ):  # fmt: skip
        DT = q_ptr.dtype.element_ty
        i_t, i_bh, cols, rows, rmask, vs, vmask, kbase, vbase = _chunk_prologue(T, H, K, V, V, BT, BV)
        hbase = (i_bh * (NT + 1) + i_t) * K * V
        acc = tl.zeros([BT, BV], dtype=tl.float32)
        for k0 in range(0, K, BK):
            ks = k0 + tl.arange(0, BK)
            kmask = ks < K
            qs = _q_from_start(q_ptr, gc_ptr, kbase, rows, ks, rmask[:, None] & kmask[None, :], H * K, scale)
            h = tl.load(
                h_ptr + hbase + ks[:, None] * V + vs[None, :], mask=kmask[:, None] & vmask[None, :], other=0.0
            )
            acc = dot(qs, h, acc, DT, PRECISION, UPCAST)
        A = tl.load(
            A_ptr + i_bh * T * BT + rows[:, None] * BT + cols[None, :], mask=rmask[:, None], other=0.0
        )
        rows_v = rmask[:, None] & vmask[None, :]
        acc = dot(A, _tile(v_ptr, vbase, rows, vs, H * V, rows_v), acc, DT, PRECISION, UPCAST)
        tl.store(
            o_ptr + vbase + rows[:, None] * (H * V) + vs[None, :], acc.to(o_ptr.dtype.element_ty), mask=rows_v
        )

    @triton.jit
    def _bwd_dh_kernel(
        q_ptr, do_ptr, gc_ptr, dht_ptr,  # inputs
        dh_ptr, dh0_ptr,  # outputs: every chunk's dH [B*H, NT+1, K, V], dH_0
        scale, T, H, K, V, NT,
        HAS_DHT: tl.constexpr, STORE_DH0: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr,
        BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    ):  # fmt: skip
        DT = q_ptr.dtype.element_ty
        i_bh, ks, vs, kmask, vmask, hmask, hoffs, kbase, vbase, hbase, dS = _state_prologue(
            dht_ptr, T, H, K, V, NT, HAS_DHT, BK, BV
        )
        tl.store(dh_ptr + hbase + NT * K * V + hoffs, dS, mask=hmask)
        for i in range(0, NT):
            i_t = NT - 1 - i
            _, rows, rmask = _steps(i_t * BT, T, BT)
            qs = _q_from_start(q_ptr, gc_ptr, kbase, rows, ks, rmask[:, None] & kmask[None, :], H * K, scale)
            do = _tile(do_ptr, vbase, rows, vs, H * V, rmask[:, None] & vmask[None, :])
            glast = _step(gc_ptr, kbase, _last_step(i_t, T, BT), ks, H * K, kmask)
            dS = dS * tl.exp(glast)[:, None]
            dS = dot(tl.trans(qs), do, dS, DT, PRECISION, UPCAST)
            tl.store(dh_ptr + hbase + i_t * K * V + hoffs, dS, mask=hmask)
        if STORE_DH0:
            tl.store(dh0_ptr + i_bh * K * V + hoffs, dS, mask=hmask)

    @triton.jit
    def _bwd_dA_kernel(
        do_ptr, v_ptr,  # inputs
        dA_ptr,  # output [B*H, T, BT]
        scale, T, H, V,
        PRECISION: tl.constexpr, UPCAST: tl.constexpr, BT: tl.constexpr, BV: tl.constexpr,
    ):  # fmt: skip
        i_t = tl.program_id(0)
        i_bh = tl.program_id(1).to(tl.int64)
        head = _head_row(i_bh, T, H)
        DT = v_ptr.dtype.element_ty
        sub, rows, rmask = _steps(i_t * BT, T, BT)
        vbase = head * V
        acc = tl.zeros([BT, BT], dtype=tl.float32)
        for v0 in range(0, V, BV):
            vs = v0 + tl.arange(0, BV)
            m = rmask[:, None] & (vs < V)[None, :]
            do = _tile(do_ptr, vbase, rows, vs, H * V, m)
            vv = _tile(v_ptr, vbase, rows, vs, H * V, m)
            acc = dot(do, tl.trans(vv), acc, DT, PRECISION, UPCAST)
        acc = tl.where(sub[:, None] >= sub[None, :], acc * scale, 0.0)
        tl.store(dA_ptr + i_bh * T * BT + rows[:, None] * BT + sub[None, :], acc, mask=rmask[:, None])

    @triton.jit
    def _bwd_dv_kernel(
        k_ptr, gc_ptr, A_ptr, do_ptr, dh_ptr,  # inputs
        dv_ptr,  # output [B, T, H, V]
        T, H, K, V, NT,
        PRECISION: tl.constexpr, UPCAST: tl.constexpr,
        BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    ):  # fmt: skip
        DT = k_ptr.dtype.element_ty
        i_t, i_bh, sub, rows, rmask, vs, vmask, kbase, vbase = _chunk_prologue(T, H, K, V, V, BT, BV)
        rows_v = rmask[:, None] & vmask[None, :]
        hbase = (i_bh * (NT + 1) + i_t + 1) * K * V  # dH_{n+1}
        do = _tile(do_ptr, vbase, rows, vs, H * V, rows_v)
        A = tl.load(A_ptr + i_bh * T * BT + rows[:, None] * BT + sub[None, :], mask=rmask[:, None], other=0.0)
        acc = tl.zeros([BT, BV], dtype=tl.float32)
        acc = dot(tl.trans(A), do, acc, DT, PRECISION, UPCAST)  # dv_j += sum_i A_ij do_i
        last = _last_step(i_t, T, BT)
        for k0 in range(0, K, BK):
            ks = k0 + tl.arange(0, BK)
            kmask = ks < K
            mk = rmask[:, None] & kmask[None, :]
            kk = _tile(k_ptr, kbase, rows, ks, H * K, mk)
            gc = _tile(gc_ptr, kbase, rows, ks, H * K, mk)
            glast = _step(gc_ptr, kbase, last, ks, H * K, kmask)
            kd = _k_to_end(kk, gc, glast, mk)
            dh = tl.load(
                dh_ptr + hbase + ks[:, None] * V + vs[None, :],
                mask=kmask[:, None] & vmask[None, :],
                other=0.0,
            )
            acc = dot(kd, dh, acc, DT, PRECISION, UPCAST)
        tl.store(
            dv_ptr + vbase + rows[:, None] * (H * V) + vs[None, :],
            acc.to(dv_ptr.dtype.element_ty),
            mask=rows_v,
        )

    @triton.jit
    def _bwd_intra_kernel(
        q_ptr, k_ptr, gc_ptr, dA_ptr,  # inputs
        dq_ptr, dk_ptr,  # outputs: the dA terms of dq and dk (float32)
        T, H, K,
        PRECISION: tl.constexpr, UPCAST: tl.constexpr,
        BT: tl.constexpr, BC: tl.constexpr, NC: tl.constexpr, BK: tl.constexpr,
    ):  # fmt: skip
        i_k = tl.program_id(0)
        i_bh = tl.program_id(2).to(tl.int64)
        i_t, i_i, row0 = _sub_chunk(tl.program_id(1), T, NC, BT, BC)
        DT = q_ptr.dtype.element_ty
        if row0 >= T:
            return
        sub, rows_i, mi = _steps(row0, T, BC)
        ks = i_k * BK + tl.arange(0, BK)
        kmask = ks < K
        mik = mi[:, None] & kmask[None, :]
        base = _head_row(i_bh, T, H) * K
        dA_base = dA_ptr + i_bh * T * BT
        offs_i = base + rows_i[:, None] * (H * K) + ks[None, :]
        gi = tl.load(gc_ptr + offs_i, mask=mik, other=0.0)

        # dq_i = sum_{j <= i} dA_ij k_j e^{b_i - b_j}
        dq = tl.zeros([BC, BK], dtype=tl.float32)
        if i_i > 0:
            # earlier sub-chunks through r = row0 - 1: e^{b_i - b_r} (e^{b_r - b_j} k_j)
            gr = _step(gc_ptr, base, row0 - 1, ks, H * K, kmask)
            for i_j in tl.static_range(NC):
                if i_j < i_i:
                    rows_j = i_t * BT + i_j * BC + sub.to(tl.int64)
                    offs_j = base + rows_j[:, None] * (H * K) + ks[None, :]
                    kj = tl.load(k_ptr + offs_j, mask=kmask[None, :], other=0.0)
                    gj = tl.load(gc_ptr + offs_j, mask=kmask[None, :], other=0.0)
                    kr = _k_to_ref(kj, gj, gr)
                    dA = tl.load(
                        dA_base + rows_i[:, None] * BT + i_j * BC + sub[None, :], mask=mi[:, None], other=0.0
                    )
                    dq = dot(dA, kr, dq, DT, PRECISION, UPCAST)
            dq *= tl.exp(tl.where(mik, gi - gr[None, :], 0.0))
        for j in range(0, BC):  # diagonal block
            rj = row0 + j
            mj = kmask & (rj < T)
            kj = _step(k_ptr, base, rj, ks, H * K, mj).to(tl.float32)
            gj = _step(gc_ptr, base, rj, ks, H * K, mj)
            dA = tl.load(dA_base + rows_i * BT + i_i * BC + j, mask=mi, other=0.0)
            m = ((sub >= j) & mi)[:, None]
            dq += tl.where(m, dA[:, None] * kj[None, :] * tl.exp(tl.where(m, gi - gj[None, :], 0.0)), 0.0)

        # dk_j = sum_{i >= j} dA_ij q_i e^{b_i - b_j}
        dk = tl.zeros([BC, BK], dtype=tl.float32)
        last_i = tl.minimum(row0 + BC, T) - 1
        if last_i < tl.minimum(i_t * BT + BT, T) - 1:  # some later sub-chunk of this chunk has rows
            # later sub-chunks through r = the last row of this one: (q_i e^{b_i - b_r}) e^{b_r - b_j}
            gr = _step(gc_ptr, base, last_i, ks, H * K, kmask)
            for i_j in tl.static_range(NC):
                if i_j > i_i:
                    _, rows_l, ml = _steps(i_t * BT + i_j * BC, T, BC)
                    mlk = ml[:, None] & kmask[None, :]
                    offs_l = base + rows_l[:, None] * (H * K) + ks[None, :]
                    ql = tl.load(q_ptr + offs_l, mask=mlk, other=0.0)
                    gl = tl.load(gc_ptr + offs_l, mask=mlk, other=0.0)
                    qr = ql.to(tl.float32) * tl.exp(tl.where(mlk, gl - gr[None, :], 0.0))
                    dA = tl.load(
                        dA_base + rows_l[:, None] * BT + i_i * BC + sub[None, :], mask=ml[:, None], other=0.0
                    )
                    dk = dot(tl.trans(dA), qr, dk, DT, PRECISION, UPCAST)
            dk *= tl.exp(tl.where(mik, gr[None, :] - gi, 0.0))
        for i in range(0, BC):  # diagonal block
            ri = row0 + i
            mr = kmask & (ri < T)
            qi = _step(q_ptr, base, ri, ks, H * K, mr).to(tl.float32)
            gq = _step(gc_ptr, base, ri, ks, H * K, mr)
            dA = tl.load(dA_base + ri * BT + i_i * BC + sub, mask=mi & (ri < T), other=0.0)
            m = ((sub <= i) & mi & (ri < T))[:, None]  # row ri past T: its gq is a fill, not a gate
            dk += tl.where(m, dA[:, None] * qi[None, :] * tl.exp(tl.where(m, gq[None, :] - gi, 0.0)), 0.0)

        tl.store(dq_ptr + offs_i, dq, mask=mik)
        tl.store(dk_ptr + offs_i, dk, mask=mik)

    @triton.jit
    def _bwd_dqk_kernel(
        q_ptr, k_ptr, v_ptr, gc_ptr, h_ptr, do_ptr, dh_ptr, dq2_ptr, dk2_ptr,  # inputs
        dq_ptr, dk_ptr, dg_ptr,  # outputs [B, T, H, K]
        scale, T, H, K, V, NT,
        PRECISION: tl.constexpr, UPCAST: tl.constexpr,
        BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    ):  # fmt: skip
        DT = q_ptr.dtype.element_ty
        i_t, i_bh, sub, rows, rmask, ks, kmask, kbase, vbase = _chunk_prologue(T, H, K, V, K, BT, BK)
        mk = rmask[:, None] & kmask[None, :]
        h_n = h_ptr + (i_bh * (NT + 1) + i_t) * K * V  # H_n
        h_next = h_n + K * V  # H_{n+1}
        dh_next = dh_ptr + (i_bh * (NT + 1) + i_t + 1) * K * V  # dH_{n+1}
        dq = tl.zeros([BT, BK], dtype=tl.float32)
        dk = tl.zeros([BT, BK], dtype=tl.float32)
        hterm = tl.zeros([BK], dtype=tl.float32)
        for v0 in range(0, V, BV):
            vs = v0 + tl.arange(0, BV)
            vmask = vs < V
            mv = rmask[:, None] & vmask[None, :]
            hm = kmask[:, None] & vmask[None, :]
            hoffs = ks[:, None] * V + vs[None, :]
            do = _tile(do_ptr, vbase, rows, vs, H * V, mv)
            vv = _tile(v_ptr, vbase, rows, vs, H * V, mv)
            h = tl.load(h_n + hoffs, mask=hm, other=0.0)
            dh = tl.load(dh_next + hoffs, mask=hm, other=0.0)
            hn = tl.load(h_next + hoffs, mask=hm, other=0.0)
            dq = dot(do, tl.trans(h), dq, DT, PRECISION, UPCAST)
            dk = dot(vv, tl.trans(dh), dk, DT, PRECISION, UPCAST)
            hterm += tl.sum(hn * dh, axis=1)
        offs = kbase + rows[:, None] * (H * K) + ks[None, :]
        q = tl.load(q_ptr + offs, mask=mk, other=0.0).to(tl.float32)
        k = tl.load(k_ptr + offs, mask=mk, other=0.0).to(tl.float32)
        gc = tl.load(gc_ptr + offs, mask=mk, other=0.0)
        glast = _step(gc_ptr, kbase, _last_step(i_t, T, BT), ks, H * K, kmask)
        dq = dq * scale * tl.exp(gc) + tl.load(dq2_ptr + offs, mask=mk, other=0.0)
        dk = dk * tl.exp(tl.where(mk, glast[None, :] - gc, 0.0)) + tl.load(dk2_ptr + offs, mask=mk, other=0.0)
        # dL/db; the state term (derivative through b_C) sits on the chunk's last row (a padded row
        # for a partial last chunk: the reverse cumulative sum carries it to every real row)
        db = q * dq - k * dk + tl.where(sub[:, None] == BT - 1, hterm[None, :], 0.0)
        dg = tl.cumsum(db, axis=0, reverse=True)
        tl.store(dq_ptr + offs, dq.to(dq_ptr.dtype.element_ty), mask=mk)
        tl.store(dk_ptr + offs, dk.to(dk_ptr.dtype.element_ty), mask=mk)
        tl.store(dg_ptr + offs, dg.to(dg_ptr.dtype.element_ty), mask=mk)


if triton is not None:
    # autotuned: warps and pipeline stages (the tiles BK/BV are fixed by the launch: the largest
    # that compile without spills); the first candidate is the former fixed choice and the only
    # one under the interpreter. The state kernels keep 8 warps: with 4, ptxas spills their 64 x 64
    # float32 tiles (tools/check_kernels_compile.py).
    _STATE = ("K", "V", "BK", "BV")
    _SUB = ("K", "BK")
    _STAGES = (2, 3, 1)
    _cumsum_kernel = tuned_warps(_cumsum_kernel, ("K",), warps=(_WARPS_SUB, 2, 8))
    _fwd_h_kernel = tuned_warps(_fwd_h_kernel, _STATE, warps=(_WARPS,), stages=_STAGES)
    _fwd_A_kernel = tuned_warps(_fwd_A_kernel, _SUB, warps=(_WARPS_SUB, 8), stages=_STAGES)
    _fwd_o_kernel = tuned_warps(_fwd_o_kernel, _STATE, warps=(_WARPS,), stages=_STAGES)
    _bwd_dh_kernel = tuned_warps(_bwd_dh_kernel, _STATE, warps=(_WARPS,), stages=_STAGES)
    _bwd_dA_kernel = tuned_warps(_bwd_dA_kernel, ("V", "BV"), warps=(_WARPS,), stages=_STAGES)
    _bwd_dv_kernel = tuned_warps(_bwd_dv_kernel, _STATE, warps=(_WARPS,), stages=_STAGES)
    _bwd_intra_kernel = tuned_warps(_bwd_intra_kernel, _SUB, warps=(_WARPS_SUB, 8), stages=_STAGES)
    _bwd_dqk_kernel = tuned_warps(_bwd_dqk_kernel, _STATE, warps=(_WARPS,), stages=_STAGES)


def _require_triton() -> None:
    if triton is None:
        raise RuntimeError("gatelab.core.kernels.gla_triton needs triton, which is not installed")


class _Cfg:
    """Launch configuration for one call (shapes, blocks, dot precision)."""

    def __init__(self, q: torch.Tensor, v: torch.Tensor) -> None:
        self.B, self.T, self.H, self.K = q.shape
        self.V = v.shape[-1]
        self.NT = cdiv(self.T, BT)
        bkv = _BKV_FP32 if q.dtype == torch.float32 else _BKV_HALF
        self.BK = min(bkv, max(16, next_power_of_2(self.K)))
        self.BV = min(bkv, max(16, next_power_of_2(self.V)))
        self.NK = cdiv(self.K, self.BK)
        self.NV = cdiv(self.V, self.BV)
        upcast = dot_upcast(q.dtype, q.device)
        self.dot = {
            "PRECISION": "ieee" if q.dtype == torch.float32 or upcast else "tf32",
            "UPCAST": upcast,
        }
        self.cuda = q.device.type == "cuda"

    def chunk_launch(self, kernel: Any, grid: tuple[int, ...], *args: Any, **constexprs: Any) -> None:
        """Launch a state/chunk kernel: ``kernel(*args, T, H, K, V, NT, <constexprs>, <dot>, BT, BK, BV)``."""
        kernel[grid](
            *args, self.T, self.H, self.K, self.V, self.NT,
            **constexprs, **self.dot, BT=BT, BK=self.BK, BV=self.BV,
        )  # fmt: skip

    def sub_chunk_launch(self, kernel: Any, grid: tuple[int, ...], *args: Any) -> None:
        """Launch a sub-chunk kernel: ``kernel(*args, T, H, K, <dot>, BT, BC, NC, BK)``."""
        kernel[grid](
            *args, self.T, self.H, self.K, **self.dot, BT=BT, BC=BC, NC=NC, BK=self.BK
        )  # fmt: skip


def _cumsum(gk: torch.Tensor, c: _Cfg) -> torch.Tensor:
    gc = torch.empty(gk.shape, dtype=torch.float32, device=gk.device)
    _cumsum_kernel[(c.NT, c.B * c.H)](gk, gc, c.T, c.H, c.K, BT=BT, BK=_BK_CUMSUM)
    return gc


def _states(
    k: torch.Tensor,
    v: torch.Tensor,
    gc: torch.Tensor,
    h0: torch.Tensor | None,
    c: _Cfg,
    store_ht: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Every chunk's entering state ``[B*H, NT+1, K, V]`` (float32) and the final state if asked."""
    h = torch.empty(c.B * c.H, c.NT + 1, c.K, c.V, dtype=torch.float32, device=k.device)
    ht = torch.empty(c.B, c.H, c.K, c.V, dtype=torch.float32, device=k.device) if store_ht else None
    c.chunk_launch(
        _fwd_h_kernel, (c.NK, c.NV, c.B * c.H),
        k, v, gc, h0 if h0 is not None else k, h, ht if ht is not None else h,
        HAS_H0=h0 is not None, STORE_HT=store_ht,
    )  # fmt: skip
    return h, ht


def gla_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    gk: torch.Tensor,
    scale: float,
    h0: torch.Tensor | None,
    output_final_state: bool,
    out_f32: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """``(o, final state or None, A)`` by the Triton forward kernels (no autograd); contiguous inputs.

    ``o`` is in ``q``'s dtype, or float32 with ``out_f32`` (the kernel rounds its float32
    accumulator once, to either)."""
    _require_triton()
    c = _Cfg(q, v)
    with device_ctx(q):
        gc = _cumsum(gk, c)
        h, ht = _states(k, v, gc, h0, c, output_final_state)
        A = torch.empty(c.B * c.H, c.T, BT, dtype=torch.float32, device=q.device)
        c.sub_chunk_launch(_fwd_A_kernel, (c.NT * NC, c.B * c.H), q, k, gc, A, scale)
        o = torch.empty(v.shape, dtype=torch.float32 if out_f32 else q.dtype, device=q.device)
        c.chunk_launch(_fwd_o_kernel, (c.NV, c.NT, c.B * c.H), q, v, gc, h, A, o, scale)
    return o, ht, A


def gla_backward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    gk: torch.Tensor,
    scale: float,
    h0: torch.Tensor | None,
    A: torch.Tensor,
    do: torch.Tensor,
    dht: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(dq, dk, dv, dgk, dh0 or None)`` by the Triton backward kernels (states recomputed)."""
    _require_triton()
    c = _Cfg(q, v)
    do = do.to(q.dtype).contiguous()
    dht = dht.contiguous() if dht is not None else None
    f32 = {"dtype": torch.float32, "device": q.device}
    with device_ctx(q):
        gc = _cumsum(gk, c)
        h, _ = _states(k, v, gc, h0, c, False)
        dh = torch.empty(c.B * c.H, c.NT + 1, c.K, c.V, **f32)
        dh0 = torch.empty(c.B, c.H, c.K, c.V, **f32) if h0 is not None else None
        c.chunk_launch(
            _bwd_dh_kernel, (c.NK, c.NV, c.B * c.H),
            q, do, gc, dht if dht is not None else q, dh, dh0 if dh0 is not None else dh, scale,
            HAS_DHT=dht is not None, STORE_DH0=dh0 is not None,
        )  # fmt: skip
        dA = torch.empty(c.B * c.H, c.T, BT, **f32)
        _bwd_dA_kernel[(c.NT, c.B * c.H)](do, v, dA, scale, c.T, c.H, c.V, BT=BT, BV=c.BV, **c.dot)
        dv = torch.empty(v.shape, dtype=v.dtype, device=v.device)
        c.chunk_launch(_bwd_dv_kernel, (c.NV, c.NT, c.B * c.H), k, gc, A, do, dh, dv)
        dq2 = torch.empty(q.shape, **f32)
        dk2 = torch.empty(k.shape, **f32)
        c.sub_chunk_launch(_bwd_intra_kernel, (c.NK, c.NT * NC, c.B * c.H), q, k, gc, dA, dq2, dk2)
        dq = torch.empty(q.shape, dtype=q.dtype, device=q.device)
        dk = torch.empty(k.shape, dtype=k.dtype, device=k.device)
        dg = torch.empty(gk.shape, dtype=gk.dtype, device=gk.device)
        c.chunk_launch(
            _bwd_dqk_kernel, (c.NK, c.NT, c.B * c.H), q, k, v, gc, h, do, dh, dq2, dk2, dq, dk, dg, scale
        )
    if dh0 is not None and h0 is not None:
        dh0 = dh0.to(h0.dtype)
    return dq, dk, dv, dg, dh0


@torch.library.custom_op("gatelab::gla_chunk_fwd", mutates_args=())
def _fwd_op(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    gk: torch.Tensor,
    scale: float,
    h0: torch.Tensor | None,
    output_final_state: bool,
    out_f32: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    o, ht, A = gla_forward(q, k, v, gk, scale, h0, output_final_state, out_f32)
    return o, (ht if ht is not None else q.new_empty(0, dtype=torch.float32)), A


@_fwd_op.register_fake
def _(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    gk: torch.Tensor,
    scale: float,
    h0: torch.Tensor | None,
    output_final_state: bool,
    out_f32: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    B, T, H, K = q.shape
    V = v.shape[-1]
    f32 = {"dtype": torch.float32, "device": q.device}
    ht = torch.empty(B, H, K, V, **f32) if output_final_state else torch.empty(0, **f32)
    o = torch.empty(v.shape, dtype=torch.float32 if out_f32 else q.dtype, device=q.device)
    return o, ht, torch.empty(B * H, T, BT, **f32)


@torch.library.custom_op("gatelab::gla_chunk_bwd", mutates_args=())
def _bwd_op(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gk: torch.Tensor, scale: float, h0: torch.Tensor | None,
    A: torch.Tensor, do: torch.Tensor, dht: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    dq, dk, dv, dg, dh0 = gla_backward(q, k, v, gk, scale, h0, A, do, dht)
    return dq, dk, dv, dg, (dh0 if dh0 is not None else q.new_empty(0, dtype=torch.float32))


@_bwd_op.register_fake
def _(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    gk: torch.Tensor,
    scale: float,
    h0: torch.Tensor | None,
    *_: Any,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    # A, do and dht do not shape the gradients
    dh0 = torch.empty_like(h0) if h0 is not None else q.new_empty(0, dtype=torch.float32)
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v), torch.empty_like(gk), dh0


class GlaChunkFunction(torch.autograd.Function):
    """Autograd wrapper: saves the inputs and ``A``; the backward recomputes gates and states."""

    @staticmethod
    def forward(
        ctx: Any,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        gk: torch.Tensor,
        scale: float,
        h0: torch.Tensor | None,
        output_final_state: bool,
        out_f32: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        q, k, v, gk = (t.contiguous() for t in (q, k, v, gk))
        h0 = h0.contiguous() if h0 is not None else None
        if torch.compiler.is_compiling():
            o, ht, A = _fwd_op(q, k, v, gk, scale, h0, output_final_state, out_f32)
        else:
            o, ht, A = gla_forward(q, k, v, gk, scale, h0, output_final_state, out_f32)
        ctx.save_for_backward(q, k, v, gk, h0, A)
        ctx.scale = scale
        ctx.has_ht = output_final_state
        if not output_final_state:
            return o, None
        return o, ht

    @staticmethod
    def backward(ctx: Any, do: torch.Tensor, dht: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        q, k, v, gk, h0, A = ctx.saved_tensors
        dht = dht if ctx.has_ht else None
        if torch.compiler.is_compiling():
            dq, dk, dv, dg, dh0 = _bwd_op(q, k, v, gk, ctx.scale, h0, A, do, dht)
        else:
            dq, dk, dv, dg, dh0 = gla_backward(q, k, v, gk, ctx.scale, h0, A, do, dht)
        need = ctx.needs_input_grad
        return (
            dq if need[0] else None,
            dk if need[1] else None,
            dv if need[2] else None,
            dg if need[3] else None,
            None,
            dh0 if h0 is not None and need[5] else None,
            None,
            None,
        )


def gla_chunk_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    gk: torch.Tensor,
    scale: float,
    initial_state: torch.Tensor | None,
    output_final_state: bool,
    out_f32: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Chunked GLA with Triton forward and backward: ``(o, final state or None)``; see the module doc.

    ``o`` is in ``q``'s dtype, or float32 with ``out_f32``."""
    return GlaChunkFunction.apply(q, k, v, gk, scale, initial_state, output_final_state, out_f32)
