"""Triton kernels for the fused GLU-family pointwise op (SwiGLU, GEGLU), forward and backward.

Forward, per element of a ``[rows, cols]`` view of the inputs::

    out = act(g) * v

Backward, given ``dout`` (nothing but ``g`` and ``v`` is saved; ``act(g)`` and ``act'(g)`` are
recomputed in registers, as in Liger-Kernel's SwiGLU, which saves one ``[rows, cols]`` buffer
compared with eager PyTorch)::

    dv = dout * act(g)
    dg = dout * v * act'(g)

with

* SwiGLU: ``act(g) = g * s``, ``s = sigmoid(g)``; ``act'(g) = s * (1 + g * (1 - s))``
* GEGLU (exact erf GELU): ``act(g) = g * Phi(g)``, ``Phi(g) = (1 + erf(g / sqrt(2))) / 2``;
  ``act'(g) = Phi(g) + g * phi(g)``, ``phi(g) = exp(-g^2 / 2) / sqrt(2 pi)``

Inputs may be any ``[..., H]`` tensors with unit stride along the last dimension; the leading
dimensions are flattened into rows (a view when the strides allow it, e.g. ``chunk`` halves of a
fused ``[N, 2H]`` projection, else a copy) and each operand keeps its own row stride. Outputs and
gradients are new contiguous tensors in the input dtype. The kernels compute in fp32 and round once
on store. Both gradients are always computed (the op is memory-bound; masking one store saves little).

``GluTritonFunction`` launches the kernels directly in eager mode; while ``torch.compile`` traces,
it calls them through the opaque custom ops ``gatelab::glu_triton_fwd``/``glu_triton_bwd``, so an
explicitly requested triton backend also compiles with ``fullgraph=True`` (``auto`` picks the
reference inside ``torch.compile`` anyway, letting Inductor fuse it).

This module imports without triton; calling :func:`glu_triton` then raises ``RuntimeError``. Use it
through :func:`gatelab.core.kernels.dispatch`, which checks availability and the inputs first.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # the module must import without triton; glu_triton() raises instead
    triton = None
    tl = None

ACTS: dict[str, int] = {"swiglu": 0, "geglu": 1}

# A program handles a BLOCK_M x BLOCK_N tile of about _TILE elements (memory-bound op: large
# enough to amortise index arithmetic, small enough to keep three fp32 operands in registers).
_TILE = 2048
_MAX_BLOCK_N = 1024


if triton is not None:

    @triton.jit
    def _glu_fwd_kernel(
        gate_ptr,
        value_ptr,
        out_ptr,
        n_rows,
        n_cols,
        stride_gate,
        stride_value,
        stride_out,
        ACT: tl.constexpr,
        BLOCK_M: tl.constexpr,
        BLOCK_N: tl.constexpr,
    ):
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
        # int64 rows: row * stride overflows int32 for activations above 2**31 elements.
        rows = pid_m.to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
        cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        mask = (rows[:, None] < n_rows) & (cols[None, :] < n_cols)
        r = rows[:, None]
        c = cols[None, :]
        # fp32 upcast: sigmoid/erf evaluated in half precision lose several bits, and the
        # product act(g) * v would round twice; in fp32 registers it rounds once, on store.
        g = tl.load(gate_ptr + r * stride_gate + c, mask=mask, other=0.0).to(tl.float32)
        v = tl.load(value_ptr + r * stride_value + c, mask=mask, other=0.0).to(tl.float32)
        if ACT == 0:
            a = g * tl.sigmoid(g)
        else:
            # exact GELU: 0.70710678... = 1 / sqrt(2)
            a = 0.5 * g * (1.0 + tl.math.erf(g * 0.7071067811865476))
        tl.store(out_ptr + r * stride_out + c, (a * v).to(out_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def _glu_bwd_kernel(
        dout_ptr,
        gate_ptr,
        value_ptr,
        dgate_ptr,
        dvalue_ptr,
        n_rows,
        n_cols,
        stride_dout,
        stride_gate,
        stride_value,
        stride_dgate,
        stride_dvalue,
        ACT: tl.constexpr,
        BLOCK_M: tl.constexpr,
        BLOCK_N: tl.constexpr,
    ):
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
        rows = pid_m.to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)  # int64: see forward
        cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        mask = (rows[:, None] < n_rows) & (cols[None, :] < n_cols)
        r = rows[:, None]
        c = cols[None, :]
        # fp32 upcast: act'(g) subtracts nearly equal terms (silu' near g = -1.28, gelu' near
        # g = -0.75); in half precision that cancellation would leave few correct bits.
        do = tl.load(dout_ptr + r * stride_dout + c, mask=mask, other=0.0).to(tl.float32)
        g = tl.load(gate_ptr + r * stride_gate + c, mask=mask, other=0.0).to(tl.float32)
        v = tl.load(value_ptr + r * stride_value + c, mask=mask, other=0.0).to(tl.float32)
        # Recompute act(g) and act'(g) from the saved gate instead of saving act(g) in forward.
        if ACT == 0:
            s = tl.sigmoid(g)
            a = g * s
            da = s * (1.0 + g * (1.0 - s))
        else:
            # Phi(g) with 1/sqrt(2) = 0.70710678...; phi(g) with 1/sqrt(2 pi) = 0.39894228...
            cdf = 0.5 * (1.0 + tl.math.erf(g * 0.7071067811865476))
            pdf = 0.3989422804014327 * tl.exp(-0.5 * g * g)
            a = g * cdf
            da = cdf + g * pdf
        tl.store(dvalue_ptr + r * stride_dvalue + c, (do * a).to(dvalue_ptr.dtype.element_ty), mask=mask)
        tl.store(dgate_ptr + r * stride_dgate + c, (do * v * da).to(dgate_ptr.dtype.element_ty), mask=mask)


def _require_triton() -> None:
    if triton is None:
        raise RuntimeError("gatelab.core.kernels.glu_triton needs triton, which is not installed")


def _rows(t: torch.Tensor) -> torch.Tensor:
    """``[..., H]`` -> ``[rows, H]`` with unit column stride (a view when possible)."""
    if t.size(-1) > 1 and t.stride(-1) != 1:
        t = t.contiguous()  # e.g. the expanded (stride 0) gradient of a .sum()
    return t.reshape(-1, t.size(-1))


def _blocks(n_rows: int, n_cols: int) -> tuple[int, int, tuple[int, int]]:
    block_n = min(triton.next_power_of_2(n_cols), _MAX_BLOCK_N)
    block_m = min(max(1, _TILE // block_n), triton.next_power_of_2(n_rows))
    return block_m, block_n, (triton.cdiv(n_rows, block_m), triton.cdiv(n_cols, block_n))


def _device_ctx(t: torch.Tensor) -> Any:
    # Triton launches on the current CUDA device; make it the inputs' device.
    return torch.cuda.device(t.device) if t.device.type == "cuda" else contextlib.nullcontext()


def glu_forward(gate: torch.Tensor, value: torch.Tensor, act: str) -> torch.Tensor:
    """``act(gate) * value`` by the Triton forward kernel (no autograd)."""
    _require_triton()
    out = torch.empty(gate.shape, dtype=gate.dtype, device=gate.device)
    if out.numel() == 0:
        return out
    g, v, o = _rows(gate), _rows(value), out.view(-1, out.size(-1))
    n_rows, n_cols = g.shape
    block_m, block_n, grid = _blocks(n_rows, n_cols)
    with _device_ctx(gate):
        _glu_fwd_kernel[grid](
            g,
            v,
            o,
            n_rows,
            n_cols,
            g.stride(0),
            v.stride(0),
            o.stride(0),
            ACT=ACTS[act],
            BLOCK_M=block_m,
            BLOCK_N=block_n,
        )
    return out


def glu_backward(
    dout: torch.Tensor, gate: torch.Tensor, value: torch.Tensor, act: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dgate, dvalue)`` by the Triton backward kernel, recomputing ``act(gate)``."""
    _require_triton()
    dgate = torch.empty(gate.shape, dtype=gate.dtype, device=gate.device)
    dvalue = torch.empty(value.shape, dtype=value.dtype, device=value.device)
    if dgate.numel() == 0:
        return dgate, dvalue
    d, g, v = _rows(dout.to(gate.dtype)), _rows(gate), _rows(value)
    dg, dv = dgate.view(-1, dgate.size(-1)), dvalue.view(-1, dvalue.size(-1))
    n_rows, n_cols = g.shape
    block_m, block_n, grid = _blocks(n_rows, n_cols)
    with _device_ctx(gate):
        _glu_bwd_kernel[grid](
            d,
            g,
            v,
            dg,
            dv,
            n_rows,
            n_cols,
            d.stride(0),
            g.stride(0),
            v.stride(0),
            dg.stride(0),
            dv.stride(0),
            ACT=ACTS[act],
            BLOCK_M=block_m,
            BLOCK_N=block_n,
        )
    return dgate, dvalue


# Opaque custom ops for torch.compile: Dynamo cannot trace a Triton launch (and not at all under
# the interpreter), but it traces GluTritonFunction when its forward/backward call these ops, so an
# explicitly requested triton backend also works inside torch.compile(fullgraph=True). Eager calls
# skip the custom-op layer (a few microseconds of Python per call) and launch directly.
@torch.library.custom_op("gatelab::glu_triton_fwd", mutates_args=())
def _glu_fwd_op(gate: torch.Tensor, value: torch.Tensor, act: str) -> torch.Tensor:
    return glu_forward(gate, value, act)


@_glu_fwd_op.register_fake
def _(gate: torch.Tensor, value: torch.Tensor, act: str) -> torch.Tensor:
    return torch.empty(gate.shape, dtype=gate.dtype, device=gate.device)


@torch.library.custom_op("gatelab::glu_triton_bwd", mutates_args=())
def _glu_bwd_op(
    dout: torch.Tensor, gate: torch.Tensor, value: torch.Tensor, act: str
) -> tuple[torch.Tensor, torch.Tensor]:
    return glu_backward(dout, gate, value, act)


@_glu_bwd_op.register_fake
def _(
    dout: torch.Tensor, gate: torch.Tensor, value: torch.Tensor, act: str
) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.empty(gate.shape, dtype=gate.dtype, device=gate.device),
        torch.empty(value.shape, dtype=value.dtype, device=value.device),
    )


class GluTritonFunction(torch.autograd.Function):
    """Autograd wrapper: saves only ``gate`` and ``value``; backward recomputes the activation."""

    @staticmethod
    def forward(ctx: Any, gate: torch.Tensor, value: torch.Tensor, act: str) -> torch.Tensor:
        ctx.save_for_backward(gate, value)
        ctx.act = act
        if torch.compiler.is_compiling():
            return _glu_fwd_op(gate, value, act)
        return glu_forward(gate, value, act)

    @staticmethod
    def backward(ctx: Any, dout: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        gate, value = ctx.saved_tensors
        if torch.compiler.is_compiling():
            dgate, dvalue = _glu_bwd_op(dout, gate, value, ctx.act)
        else:
            dgate, dvalue = glu_backward(dout, gate, value, ctx.act)
        return (
            dgate if ctx.needs_input_grad[0] else None,
            dvalue if ctx.needs_input_grad[1] else None,
            None,
        )


def glu_triton(gate: torch.Tensor, value: torch.Tensor, act: str) -> torch.Tensor:
    """``act(gate) * value`` with Triton forward and backward; ``act`` is ``"swiglu"`` or ``"geglu"``.

    Shapes: ``gate``, ``value``: ``[..., H]`` (same shape, dtype and device, last-dim stride 1);
    returns ``[..., H]`` in the input dtype. Call through ``dispatch``, which verifies the inputs.
    """
    if act not in ACTS:
        raise ValueError(f"unknown GLU kernel activation {act!r}; expected one of {sorted(ACTS)}")
    return GluTritonFunction.apply(gate, value, act)
