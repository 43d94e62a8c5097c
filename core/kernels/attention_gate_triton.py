"""Triton kernels for the coarse-grid tail of the attention gate (:mod:`.attention_gate`).

Per voxel ``v`` of the coarse grid and batch ``b``, over the ``F`` inter channels (one tile holds
all ``F`` channels of ``BLOCK_V`` voxels)::

    forward:   h = theta + phi,  a = sigmoid(sum_f w_f relu(h_f) + b_psi)        writes h, a
    backward:  dq = da a (1 - a),  dh_f = dq w_f [h_f > 0],
               dw_f = sum_{b,v} dq relu(h_f),  db_psi = sum_{b,v} dq              writes dh, partial sums

The partial sums of ``dw`` and ``db_psi`` are written per program and added by PyTorch (no
atomics: the result does not depend on the launch order). Operands are float32, contiguous
``[B, F, V]`` (``V`` = the flattened coarse grid); arithmetic is float32.
"""

from __future__ import annotations

import torch

from ._common import cdiv, device_ctx, next_power_of_2

try:
    import triton
    import triton.language as tl
except ImportError:  # the module must import without triton; the functions below raise instead
    triton = None
    tl = None

#: elements of one ``[BLOCK_F, BLOCK_V]`` tile
TILE = 4096

if triton is not None:

    @triton.jit
    def _tail_fwd_kernel(
        theta_ptr, phi_ptr, w_ptr, b_ptr,  # inputs: [B, F, V], [B, F, V], [F], [1]
        h_ptr, a_ptr,  # outputs: [B, F, V], [B, V]
        F, V,
        HAS_BIAS: tl.constexpr, BLOCK_F: tl.constexpr, BLOCK_V: tl.constexpr,
    ):  # fmt: skip
        b = tl.program_id(0).to(tl.int64)
        v = tl.program_id(1).to(tl.int64) * BLOCK_V + tl.arange(0, BLOCK_V)
        f = tl.arange(0, BLOCK_F)
        fmask = f < F
        vmask = v < V
        mask = fmask[:, None] & vmask[None, :]
        offs = b * F * V + f[:, None].to(tl.int64) * V + v[None, :]
        h = tl.load(theta_ptr + offs, mask=mask, other=0.0) + tl.load(phi_ptr + offs, mask=mask, other=0.0)
        tl.store(h_ptr + offs, h, mask=mask)
        w = tl.load(w_ptr + f, mask=fmask, other=0.0)
        q = tl.sum(tl.maximum(h, 0.0) * w[:, None], axis=0)
        if HAS_BIAS:
            q += tl.load(b_ptr)
        tl.store(a_ptr + b * V + v, tl.sigmoid(q), mask=vmask)

    @triton.jit
    def _tail_bwd_kernel(
        h_ptr, a_ptr, w_ptr, da_ptr,  # inputs: [B, F, V], [B, V], [F], [B, V]
        dh_ptr, pw_ptr, pb_ptr,  # outputs: [B, F, V], [programs, F], [programs]
        F, V, NVB,
        BLOCK_F: tl.constexpr, BLOCK_V: tl.constexpr,
    ):  # fmt: skip
        b = tl.program_id(0).to(tl.int64)
        vb = tl.program_id(1)
        v = vb.to(tl.int64) * BLOCK_V + tl.arange(0, BLOCK_V)
        f = tl.arange(0, BLOCK_F)
        fmask = f < F
        vmask = v < V
        mask = fmask[:, None] & vmask[None, :]
        a = tl.load(a_ptr + b * V + v, mask=vmask, other=0.0)
        da = tl.load(da_ptr + b * V + v, mask=vmask, other=0.0)
        dq = da * a * (1.0 - a)
        offs = b * F * V + f[:, None].to(tl.int64) * V + v[None, :]
        h = tl.load(h_ptr + offs, mask=mask, other=0.0)
        w = tl.load(w_ptr + f, mask=fmask, other=0.0)
        dh = tl.where(h > 0.0, dq[None, :] * w[:, None], 0.0)
        tl.store(dh_ptr + offs, dh, mask=mask)
        pid = b * NVB + vb
        tl.store(pw_ptr + pid * F + f, tl.sum(tl.maximum(h, 0.0) * dq[None, :], axis=1), mask=fmask)
        tl.store(pb_ptr + pid, tl.sum(dq, axis=0))


def _blocks(f: int, v: int) -> tuple[int, int]:
    block_f = next_power_of_2(f)
    block_v = max(1, min(next_power_of_2(v), TILE // block_f))
    return block_f, block_v


def _need_triton() -> None:
    if triton is None:
        raise RuntimeError("attention_gate_triton: triton is not installed")


def tail_forward(
    theta: torch.Tensor, phi: torch.Tensor, psi_weight: torch.Tensor, psi_bias: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton twin of :func:`.attention_gate.tail_forward_torch`: ``theta``, ``phi`` ``[B, F, *V]``
    float32, ``psi_weight`` ``[F]``; returns ``(h [B, F, *V], a [B, 1, *V])``, contiguous."""
    _need_triton()
    theta, phi = theta.contiguous(), phi.contiguous()
    bsz, f = theta.shape[:2]
    v = theta[0, 0].numel()
    h = torch.empty_like(theta)
    a = torch.empty((bsz, 1, *theta.shape[2:]), dtype=theta.dtype, device=theta.device)
    w = psi_weight.contiguous()
    block_f, block_v = _blocks(f, v)
    with device_ctx(theta):
        _tail_fwd_kernel[(bsz, cdiv(v, block_v))](
            theta, phi, w, psi_bias if psi_bias is not None else w, h, a, f, v,
            HAS_BIAS=psi_bias is not None, BLOCK_F=block_f, BLOCK_V=block_v,
        )  # fmt: skip
    return h, a


def tail_backward(
    h: torch.Tensor, a: torch.Tensor, psi_weight: torch.Tensor, da: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Triton twin of :func:`.attention_gate.tail_backward_torch`: ``(dh, dpsi_weight [F], dpsi_bias [])``."""
    _need_triton()
    h, a, da = h.contiguous(), a.contiguous(), da.contiguous()
    bsz, f = h.shape[:2]
    v = h[0, 0].numel()
    block_f, block_v = _blocks(f, v)
    nvb = cdiv(v, block_v)
    dh = torch.empty_like(h)
    pw = torch.empty((bsz * nvb, f), dtype=torch.float32, device=h.device)
    pb = torch.empty((bsz * nvb,), dtype=torch.float32, device=h.device)
    with device_ctx(h):
        _tail_bwd_kernel[(bsz, nvb)](
            h, a, psi_weight.contiguous(), da, dh, pw, pb, f, v, nvb, BLOCK_F=block_f, BLOCK_V=block_v,
        )  # fmt: skip
    return dh, pw.sum(0), pb.sum()
