"""Token-wise gated fusion of two streams (gated multimodal unit style)."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from .kernels import dispatch
from .kernels.tokenwise import tokenwise_mix
from .layers.activations import ActLike, create_act
from .layers.capture import is_capturing, record_gate
from .layers.checks import check_positive_int
from .layers.fusion import is_plain

__all__ = ["TokenwiseGate"]


class TokenwiseGate(nn.Module):
    r"""Per-token gated fusion ``out = g * a + (1 - g) * b``, ``g = sigmoid(W [a; b] + c)``.

    ``mode="scalar"`` gives one gate per token (``W`` maps ``2 * dim -> 1``, ``g`` is
    ``[..., 1]``), ``mode="vector"`` one gate per feature (``2 * dim -> dim``, ``g`` is
    ``[..., dim]``). Used to mix a text and an image stream token by token in a vision-language
    decoder, or two feature streams in a forecaster.

    Args:
        dim: features of ``a`` and ``b``.
        mode: ``"scalar"`` or ``"vector"``.
        gate_act: squashing of the gate (default sigmoid; must map into ``[0, 1]`` for a convex mix).
        bias: the gate bias ``c``.
        init_gate: if given, ``c`` starts at ``logit(init_gate)`` so the gate starts near that
            value (exactly at it for zero inputs), e.g. ``0.9`` to favour ``a`` at the start.
            Needs ``bias=True`` and a value in ``(0, 1)``; assumes a sigmoid ``gate_act``.

    Shapes: ``a``, ``b`` ``[..., dim]`` -> ``[..., dim]``. The gate ``g`` (``[..., 1]`` or
    ``[..., dim]``) is recorded with :func:`gatelab.core.record_gate`.

    Paths: one math, op ``tokenwise_gate`` (:mod:`gatelab.core.kernels.tokenwise`). The fused op
    (projection inside the kernel) runs when ``gate_act`` is a plain ``nn.Sigmoid``, ``proj`` a plain
    ``nn.Linear`` (:func:`gatelab.core.layers.fusion.is_plain`: no hooks, not replaced) and nothing
    is captured; otherwise ``proj`` is called and the op's mix
    (:func:`gatelab.core.kernels.tokenwise.tokenwise_mix`) returns the gate.

    Precision: for float16/bfloat16 inputs the gate and the mix are computed in float32 and the
    result cast back (the gradient ``a - b`` of the gate overflows half precision otherwise).

    Paper: the gate of the Gated Multimodal Unit, Arevalo et al., "Gated Multimodal Units for
    Information Fusion", ICLR workshop 2017 (``z = sigmoid(W_z [x_v; x_t])``,
    ``h = z * h_v + (1 - z) * h_t``), applied per token.

    Deviations: the GMU also passes each stream through its own ``tanh(W x)`` before mixing; here
    the streams arrive already projected (``a``, ``b`` are mixed as given). The scalar mode and
    ``init_gate`` are extensions.
    """

    def __init__(
        self,
        dim: int,
        *,
        mode: Literal["scalar", "vector"] = "scalar",
        gate_act: ActLike = "sigmoid",
        bias: bool = True,
        init_gate: float | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        check_positive_int("TokenwiseGate", "dim", dim)
        if mode not in ("scalar", "vector"):
            raise ValueError(f"TokenwiseGate: mode must be 'scalar' or 'vector', got {mode!r}")
        if init_gate is not None:
            if not bias:
                raise ValueError("TokenwiseGate: init_gate needs bias=True")
            if not 0.0 < init_gate < 1.0:
                raise ValueError(f"TokenwiseGate: init_gate must be in (0, 1), got {init_gate!r}")
        self.dim = dim
        self.mode = mode
        self.init_gate = init_gate
        self.proj = nn.Linear(2 * dim, 1 if mode == "scalar" else dim, bias=bias, **factory_kwargs)
        self.gate_act = create_act(gate_act)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.proj.reset_parameters()
        if self.init_gate is not None:
            nn.init.constant_(self.proj.bias, math.log(self.init_gate / (1.0 - self.init_gate)))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape[-1] != self.dim or b.shape[-1] != self.dim:
            raise ValueError(
                f"TokenwiseGate: expected a, b [..., {self.dim}], got {tuple(a.shape)} and {tuple(b.shape)}"
            )
        if not is_capturing() and is_plain(self.gate_act, nn.Sigmoid) and is_plain(self.proj, nn.Linear):
            # projection + gate + mix in one op (Triton on CUDA, the reference elsewhere)
            return dispatch("tokenwise_gate", a, b, self.proj.weight, self.proj.bias)
        # plain path (capture, another gate_act, hooks on / a replacement of proj): the same math,
        # with the projection by the proj sub-module
        logits = self.proj(torch.cat([a, b], dim=-1))
        out, g = tokenwise_mix(a, b, logits, gate_act=self.gate_act, return_gate=True)
        record_gate(self, g)
        return out

    def extra_repr(self) -> str:
        return f"dim={self.dim}, mode={self.mode!r}, init_gate={self.init_gate}"
