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

import torch
import torch.nn.functional as F

from ._common import TRITON_DTYPES, reference_only, triton_available, triton_interpreted
from .dispatch import register_backend, register_op

# Re-exported for the tests and callers that import them from here (the foundation's home of them).
__all__ = [
    "TRITON_DTYPES",
    "geglu",
    "glu_product",
    "swiglu",
    "triton_available",
    "triton_interpreted",
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
