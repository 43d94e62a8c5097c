"""GLU-family pointwise ops ``swiglu`` and ``geglu``: PyTorch references and the Triton backend.

Both ops take the two halves of a gated linear unit and return ``act(gate) * value``:

* ``swiglu(gate, value) = silu(gate) * value = gate * sigmoid(gate) * value``
* ``geglu(gate, value)  = gelu(gate) * value = gate * Phi(gate) * value`` with the exact (erf)
  GELU, ``Phi(x) = (1 + erf(x / sqrt(2))) / 2`` (``F.gelu``'s default, not the tanh approximation)

Shapes: ``gate`` and ``value`` have the same shape ``[..., H]``; the output has that shape and dtype.

The references are plain PyTorch and run on any device; they compute in the input dtype exactly
as PyTorch eager does (``F.silu``/``F.gelu`` evaluate in fp32 internally for half inputs and round
once, then the product rounds again). The Triton backend computes ``act(gate) * value`` in fp32 and
rounds once, so in half precision it is at least as accurate as the reference.

Packed ops ``swiglu_packed`` and ``geglu_packed`` take ONE tensor ``x [..., 2H]`` holding
``[value | gate]`` along the last dimension (``F.glu``'s half convention; the output of a fused
``[dim, 2H]`` projection) and return ``act(gate) * value`` ``[..., H]``. Their backward writes the
gradient of ``x`` into one ``[..., 2H]`` buffer (both halves written in place), where the unpacked
ops on ``x.chunk(2, -1)`` views leave autograd to concatenate two ``[..., H]`` gradients (one more
``[..., 2H]`` write and read). The packed references compute exactly what eager autograd of the
unpacked formula computes (``aten.silu_backward`` / ``aten.gelu_backward`` on ``dout * value``); they
are first-order only (no double backward). Inside ``torch.compile`` they are the plain chunk formula,
which Inductor fuses anyway.

Backend ``"triton"`` (see :mod:`gatelab.core.kernels.glu_triton`) runs when

* triton imports and either CUDA is available or ``TRITON_INTERPRET=1`` (the interpreter runs the
  kernels on the CPU; it is for tests, so ``auto`` never picks it, see :mod:`.dispatch`);
* the inputs are float16/bfloat16/float32 tensors of the same shape, dtype and device, on CUDA
  (or on the CPU under the interpreter), with unit stride along the last dimension. Row strides may
  differ, so the two ``chunk`` halves of a fused ``[N, 2H]`` projection are used without a copy.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from ._common import TRITON_DTYPES, check_tensors, reference_only, triton_available, triton_interpreted
from .dispatch import register_backend, register_op

# Re-exported for the tests and callers that import them from here (the foundation's home of them).
__all__ = [
    "TRITON_DTYPES",
    "geglu",
    "geglu_packed",
    "glu_product",
    "swiglu",
    "swiglu_packed",
    "triton_available",
    "triton_interpreted",
    "verify_packed_inputs",
    "verify_triton_inputs",
]


def verify_triton_inputs(gate: torch.Tensor, value: torch.Tensor, *, return_gate: bool = False) -> str | None:
    """``None`` when the Triton GLU kernels accept ``(gate, value)``, else the reason they do not."""
    why = reference_only(return_gate=return_gate)
    if why is not None:
        return why
    for name, t in (("gate", gate), ("value", value)):
        if not isinstance(t, torch.Tensor):
            return f"{name} is a {type(t).__name__}, not a tensor"
    if gate.dtype not in TRITON_DTYPES:
        return f"dtype {gate.dtype} is not supported (float16, bfloat16, float32)"
    if value.dtype != gate.dtype:
        return f"gate dtype {gate.dtype} differs from value dtype {value.dtype}"
    if gate.shape != value.shape:
        return f"gate shape {tuple(gate.shape)} differs from value shape {tuple(value.shape)}"
    if gate.dim() == 0:
        return "inputs are 0-dimensional (need at least one dimension)"
    if gate.device != value.device:
        return f"gate is on {gate.device} but value is on {value.device}"
    dev = gate.device.type
    if dev == "cpu":
        if not triton_interpreted():
            return "CPU tensors need the Triton interpreter (TRITON_INTERPRET=1)"
    elif dev != "cuda":
        return f"device type {dev!r} is not supported (cuda, or cpu under TRITON_INTERPRET=1)"
    for name, t in (("gate", gate), ("value", value)):
        if t.size(-1) > 1 and t.stride(-1) != 1:
            return f"{name} has stride {t.stride(-1)} along its last dimension (need 1)"
    return None


def glu_product(
    gate: torch.Tensor,
    value: torch.Tensor,
    act: Callable[[torch.Tensor], torch.Tensor],
    *,
    return_gate: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The gated product ``act(gate) * value`` of every GLU in gatelab, in the input dtype.

    The one PyTorch formula of a GLU: the ``swiglu``/``geglu`` references, the other GLU kinds of
    :func:`gatelab.core.glu_pair`, :class:`gatelab.core.GatedLinearUnit` and the GLU inside the
    ``gate_add_norm`` reference all call it. With ``return_gate`` returns ``(out, act(gate))``.
    """
    g = act(gate)
    out = g * value
    return (out, g) if return_gate else out


@register_op("swiglu", doc="silu(gate) * value")
def swiglu(
    gate: torch.Tensor, value: torch.Tensor, *, return_gate: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """SwiGLU pointwise part, ``silu(gate) * value`` (Shazeer 2020), in the input dtype.

    ``return_gate=True`` (reference only) also returns ``silu(gate)``.
    """
    return glu_product(gate, value, F.silu, return_gate=return_gate)


@register_op("geglu", doc="gelu(gate) * value (exact erf GELU)")
def geglu(
    gate: torch.Tensor, value: torch.Tensor, *, return_gate: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """GEGLU pointwise part, ``gelu(gate) * value`` with the exact erf GELU (Shazeer 2020).

    ``return_gate=True`` (reference only) also returns ``gelu(gate)``.
    """
    return glu_product(gate, value, F.gelu, return_gate=return_gate)


# kind -> (forward activation, aten backward of the activation: (grad_out, gate, out=) -> grad_gate)
def _silu_backward_into(grad: torch.Tensor, gate: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    return torch.ops.aten.silu_backward.grad_input(grad, gate, grad_input=out)


def _gelu_backward_into(grad: torch.Tensor, gate: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    return torch.ops.aten.gelu_backward.grad_input(grad, gate, approximate="none", grad_input=out)


_PACKED_ACTS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], Callable[..., torch.Tensor]]] = {
    "swiglu": (F.silu, _silu_backward_into),
    "geglu": (F.gelu, _gelu_backward_into),
}


def _check_packed(x: torch.Tensor, op: str) -> int:
    """Half width ``H`` of ``x [..., 2H]``; a clear error for anything else."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{op}: x must be a tensor, got {type(x).__name__}")
    if x.dim() == 0 or x.shape[-1] % 2:
        raise ValueError(f"{op}: x must have shape [..., 2H] (even last dimension), got {tuple(x.shape)}")
    return x.shape[-1] // 2


class _PackedGluReference(torch.autograd.Function):
    """``act(gate) * value`` of ``x = [value | gate]`` with a one-buffer backward (see module doc)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, kind: str) -> torch.Tensor:
        value, gate = x.chunk(2, dim=-1)
        ctx.save_for_backward(x)
        ctx.kind = kind
        return _PACKED_ACTS[kind][0](gate) * value

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, dout: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        act, act_backward_into = _PACKED_ACTS[ctx.kind]
        value, gate = x.chunk(2, dim=-1)
        h = gate.shape[-1]
        dx = torch.empty(x.shape, dtype=x.dtype, device=x.device)
        torch.mul(dout, act(gate), out=dx[..., :h])  # d value = dout * act(gate)
        act_backward_into(dout * value, gate, dx[..., h:])  # d gate = act'(gate) * dout * value
        return dx, None


def _packed_reference(x: torch.Tensor, kind: str, return_gate: bool) -> Any:
    op = f"{kind}_packed"
    _check_packed(x, op)
    if return_gate or torch.compiler.is_compiling() or not (torch.is_grad_enabled() and x.requires_grad):
        value, gate = x.chunk(2, dim=-1)
        return glu_product(gate, value, _PACKED_ACTS[kind][0], return_gate=return_gate)
    return _PackedGluReference.apply(x, kind)


@register_op(
    "swiglu_packed", doc="silu(gate) * value of x = [value | gate], one-buffer backward", family="swiglu"
)
def swiglu_packed(
    x: torch.Tensor, *, return_gate: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """SwiGLU of a packed ``x [..., 2H] = [value | gate]``: ``silu(gate) * value`` ``[..., H]``.

    The gradient of ``x`` is one ``[..., 2H]`` buffer (see the module docstring); values and
    gradients equal those of :func:`swiglu` on ``x.chunk(2, -1)``. ``return_gate=True`` (reference
    only) also returns ``silu(gate)`` (plain autograd then).
    """
    return _packed_reference(x, "swiglu", return_gate)


@register_op(
    "geglu_packed", doc="gelu(gate) * value of x = [value | gate], one-buffer backward", family="geglu"
)
def geglu_packed(
    x: torch.Tensor, *, return_gate: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """GEGLU (exact erf GELU) of a packed ``x [..., 2H] = [value | gate]``: ``gelu(gate) * value``.

    As :func:`swiglu_packed` with the GELU.
    """
    return _packed_reference(x, "geglu", return_gate)


def verify_packed_inputs(x: torch.Tensor, *, return_gate: bool = False) -> str | None:
    """``None`` when the Triton packed GLU kernels accept ``x [..., 2H]``, else the reason."""
    why = reference_only(return_gate=return_gate)
    if why is not None:
        return why
    why = check_tensors((("x", x),))
    if why is not None:
        return why
    if x.dim() == 0 or x.shape[-1] % 2:
        return f"x must have shape [..., 2H] (even last dimension), got {tuple(x.shape)}"
    if x.size(-1) > 1 and x.stride(-1) != 1:
        return f"x has stride {x.stride(-1)} along its last dimension (need 1)"
    return None


_triton_backend = functools.partial(
    register_backend,
    name="triton",
    priority=10,
    devices=("cuda",),
    available=triton_available,
    verifier=verify_triton_inputs,
    interpreted=triton_interpreted,
)


@_triton_backend("swiglu")
def swiglu_triton(gate: torch.Tensor, value: torch.Tensor, *, return_gate: bool = False) -> torch.Tensor:
    """Triton SwiGLU forward/backward (backward recomputes silu from the saved inputs)."""
    from .glu_triton import glu_triton  # imported on first use: importing triton is slow

    return glu_triton(gate, value, "swiglu")


@_triton_backend("geglu")
def geglu_triton(gate: torch.Tensor, value: torch.Tensor, *, return_gate: bool = False) -> torch.Tensor:
    """Triton GEGLU forward/backward (backward recomputes the erf GELU and its derivative)."""
    from .glu_triton import glu_triton

    return glu_triton(gate, value, "geglu")


_triton_packed_backend = functools.partial(
    register_backend,
    name="triton",
    priority=10,
    devices=("cuda",),
    available=triton_available,
    verifier=verify_packed_inputs,
    interpreted=triton_interpreted,
)


@_triton_packed_backend("swiglu_packed")
def swiglu_packed_triton(x: torch.Tensor, *, return_gate: bool = False) -> torch.Tensor:
    """Triton SwiGLU of a packed ``x``; the backward kernel writes ``dx`` into one buffer."""
    from .glu_triton import glu_packed_triton

    return glu_packed_triton(x, "swiglu")


@_triton_packed_backend("geglu_packed")
def geglu_packed_triton(x: torch.Tensor, *, return_gate: bool = False) -> torch.Tensor:
    """Triton GEGLU of a packed ``x``; the backward kernel writes ``dx`` into one buffer."""
    from .glu_triton import glu_packed_triton

    return glu_packed_triton(x, "geglu")
