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

from typing import Any

import torch

from ._common import cdiv, device_ctx, next_power_of_2
from ._triton_common import rows2d, tuned_rows

try:
    import triton
    import triton.language as tl

    from ._triton_common import load_rows_f32, store_rows, tile2d
except ImportError:  # the module must import without triton; glu_triton() raises instead
    triton = None
    tl = None

ACTS: dict[str, int] = {"swiglu": 0, "geglu": 1}

# A program handles a BLOCK_M x BLOCK_N tile, at most _MAX_BLOCK_N columns wide; BLOCK_M and the
# warps are autotuned (_triton_common.tuned_rows: tiles of 256 to 8192 elements).
_MAX_BLOCK_N = 1024


if triton is not None:

    @triton.jit
    def _act(g, ACT: tl.constexpr):
        """``(act(g), act'(g))`` of float32 ``g``; the forward uses the first only (the compiler
        drops the other)."""
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
        return a, da

    @triton.jit
    def _glu_fwd_kernel(
        gate_ptr, value_ptr, out_ptr,
        n_rows, n_cols, stride_gate, stride_value, stride_out,
        ACT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    ):  # fmt: skip
        rows, cols, mask = tile2d(n_rows, n_cols, BLOCK_M, BLOCK_N)
        # fp32 upcast: sigmoid/erf evaluated in half precision lose several bits, and the
        # product act(g) * v would round twice; in fp32 registers it rounds once, on store.
        g = load_rows_f32(gate_ptr, rows, cols, stride_gate, mask)
        v = load_rows_f32(value_ptr, rows, cols, stride_value, mask)
        a, _ = _act(g, ACT)
        store_rows(out_ptr, rows, cols, stride_out, a * v, mask)

    @triton.jit
    def _glu_bwd_kernel(
        dout_ptr, gate_ptr, value_ptr, dgate_ptr, dvalue_ptr,
        n_rows, n_cols, stride_dout, stride_gate, stride_value, stride_dgate, stride_dvalue,
        ACT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    ):  # fmt: skip
        rows, cols, mask = tile2d(n_rows, n_cols, BLOCK_M, BLOCK_N)
        # fp32 upcast: act'(g) subtracts nearly equal terms (silu' near g = -1.28, gelu' near
        # g = -0.75); in half precision that cancellation would leave few correct bits.
        do = load_rows_f32(dout_ptr, rows, cols, stride_dout, mask)
        g = load_rows_f32(gate_ptr, rows, cols, stride_gate, mask)
        v = load_rows_f32(value_ptr, rows, cols, stride_value, mask)
        # Recompute act(g) and act'(g) from the saved gate instead of saving act(g) in forward.
        a, da = _act(g, ACT)
        store_rows(dvalue_ptr, rows, cols, stride_dvalue, do * a, mask)
        store_rows(dgate_ptr, rows, cols, stride_dgate, do * v * da, mask)


if triton is not None:
    # autotuned: rows per program and warps, keyed on the columns (only the first candidate under
    # the interpreter); BLOCK_N covers up to _MAX_BLOCK_N columns of a row
    _glu_fwd_kernel = tuned_rows(_glu_fwd_kernel, cols="n_cols")
    _glu_bwd_kernel = tuned_rows(_glu_bwd_kernel, cols="n_cols")


def _blocks(n_rows: int, n_cols: int) -> tuple[int, Any]:
    """``(BLOCK_N, grid)`` of a GLU launch; ``BLOCK_M`` is the autotuner's."""
    block_n = min(next_power_of_2(n_cols), _MAX_BLOCK_N)
    n_col_blocks = cdiv(n_cols, block_n)
    return block_n, lambda meta: (cdiv(n_rows, meta["BLOCK_M"]), n_col_blocks)


def _require_triton() -> None:
    if triton is None:
        raise RuntimeError("gatelab.core.kernels.glu_triton needs triton, which is not installed")


def glu_forward(gate: torch.Tensor, value: torch.Tensor, act: str) -> torch.Tensor:
    """``act(gate) * value`` by the Triton forward kernel (no autograd)."""
    _require_triton()
    out = torch.empty(gate.shape, dtype=gate.dtype, device=gate.device)
    if out.numel() == 0:
        return out
    g, v, o = rows2d(gate), rows2d(value), out.view(-1, out.size(-1))
    n_rows, n_cols = g.shape
    block_n, grid = _blocks(n_rows, n_cols)
    with device_ctx(gate):
        _glu_fwd_kernel[grid](
            g, v, o, n_rows, n_cols, g.stride(0), v.stride(0), o.stride(0), ACT=ACTS[act], BLOCK_N=block_n
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
    _backward_into(dout, gate, value, dgate.view(-1, dgate.size(-1)), dvalue.view(-1, dvalue.size(-1)), act)
    return dgate, dvalue


def glu_packed_backward(dout: torch.Tensor, x: torch.Tensor, act: str) -> torch.Tensor:
    """``dx [..., 2H]`` of ``x = [value | gate]``: ONE buffer, the kernel writes both halves."""
    _require_triton()
    dx = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    if dx.numel() == 0:
        return dx
    value, gate = x.chunk(2, dim=-1)
    h = gate.size(-1)
    d2 = dx.view(-1, 2 * h)  # contiguous: both halves are [rows, H] views with row stride 2H
    _backward_into(dout, gate, value, d2[:, h:], d2[:, :h], act)
    return dx


def _backward_into(
    dout: torch.Tensor, gate: torch.Tensor, value: torch.Tensor, dg: torch.Tensor, dv: torch.Tensor, act: str
) -> None:
    """Launch the backward kernel writing ``[rows, H]`` views ``dg``, ``dv`` (unit column stride)."""
    d, g, v = rows2d(dout.to(gate.dtype)), rows2d(gate), rows2d(value)
    n_rows, n_cols = g.shape
    block_n, grid = _blocks(n_rows, n_cols)
    with device_ctx(gate):
        _glu_bwd_kernel[grid](
            d, g, v, dg, dv, n_rows, n_cols, d.stride(0), g.stride(0), v.stride(0), dg.stride(0), dv.stride(0),
            ACT=ACTS[act], BLOCK_N=block_n,
        )  # fmt: skip


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


@torch.library.custom_op("gatelab::glu_packed_triton_bwd", mutates_args=())
def _glu_packed_bwd_op(dout: torch.Tensor, x: torch.Tensor, act: str) -> torch.Tensor:
    return glu_packed_backward(dout, x, act)


@_glu_packed_bwd_op.register_fake
def _(dout: torch.Tensor, x: torch.Tensor, act: str) -> torch.Tensor:
    return torch.empty(x.shape, dtype=x.dtype, device=x.device)


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


class GluPackedTritonFunction(torch.autograd.Function):
    """Autograd wrapper of the packed op: saves ``x``; the backward returns ONE ``[..., 2H]`` gradient."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, act: str) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.act = act
        value, gate = x.chunk(2, dim=-1)
        if torch.compiler.is_compiling():
            return _glu_fwd_op(gate, value, act)
        return glu_forward(gate, value, act)

    @staticmethod
    def backward(ctx: Any, dout: torch.Tensor) -> tuple[torch.Tensor | None, None]:
        (x,) = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None
        if torch.compiler.is_compiling():
            return _glu_packed_bwd_op(dout, x, ctx.act), None
        return glu_packed_backward(dout, x, ctx.act), None


def glu_packed_triton(x: torch.Tensor, act: str) -> torch.Tensor:
    """``act(gate) * value`` of ``x [..., 2H] = [value | gate]`` with Triton forward and backward.

    Returns ``[..., H]`` in ``x``'s dtype; the gradient of ``x`` is one buffer written by the
    backward kernel (both halves), not two gradients concatenated by autograd. Call through
    ``dispatch("swiglu_packed" | "geglu_packed", x)``, which verifies the inputs.
    """
    if act not in ACTS:
        raise ValueError(f"unknown GLU kernel activation {act!r}; expected one of {sorted(ACTS)}")
    return GluPackedTritonFunction.apply(x, act)
