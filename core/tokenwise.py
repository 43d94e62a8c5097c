"""Token-wise gated fusion of two or more streams (gated multimodal unit style)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from .kernels import dispatch
from .kernels.tokenwise import tokenwise_mix
from .layers.activations import ActLike, create_act
from .layers.capture import is_capturing, record_gate
from .layers.checks import check_positive_int
from .layers.fusion import is_plain

__all__ = ["WEIGHTINGS", "TokenwiseGate", "stream_mix"]

#: how the gate turns its logits into stream weights (see :class:`TokenwiseGate`)
WEIGHTINGS = ("complement", "softmax", "sigmoid")


def stream_mix(
    streams: Sequence[torch.Tensor],
    logits: torch.Tensor,
    *,
    weighting: Literal["softmax", "sigmoid"] = "softmax",
    gate_act: nn.Module | None = None,
    stream_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The N-stream mix ``out = sum_s w_s * x_s`` and its weights ``w`` (the N-stream gate's math).

    Shapes: ``streams`` ``N`` tensors ``[..., D]`` of one shape; ``logits`` ``[..., N, 1]``
    (one weight per stream and token) or ``[..., N, D]`` (one per stream and feature);
    ``stream_mask`` bool, broadcastable to ``logits``' ``[..., N, 1]``, ``True`` = the stream is
    present. Returns ``(out [..., D] in the streams' dtype, w)`` with ``w`` shaped like ``logits``.

    ``weighting="softmax"``: ``w = softmax_s(logits)`` over the present streams (absent ones get
    ``w = 0``, the others renormalise; a token with no present stream gets all-zero weights and
    ``out = 0``). ``weighting="sigmoid"``: ``w_s = gate_act(logits_s)`` (sigmoid by default), each
    stream on its own, absent ones ``0``. The weights and the mix are computed in (at least)
    float32 and the output cast back: in half precision the logits may reach ``+-inf`` (mapped to
    the largest finite float32 first) and ``dL/dw_s = x_s`` products overflow otherwise.
    """
    if weighting not in ("softmax", "sigmoid"):
        raise ValueError(f"stream_mix: weighting must be 'softmax' or 'sigmoid', got {weighting!r}")
    x = torch.stack(list(streams), dim=-2)  # [..., N, D]
    ct = torch.promote_types(x.dtype, torch.float32)
    lt = torch.nan_to_num(logits.to(ct), nan=float("nan"))
    mask = None if stream_mask is None else stream_mask.to(torch.bool)
    if weighting == "softmax":
        if mask is not None:
            lt = lt.masked_fill(~mask, float("-inf"))
        # a token with every stream masked: a row of -inf -> all-zero weights (not NaN)
        peak = lt.amax(dim=-2, keepdim=True)
        peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
        e = torch.exp(lt - peak)
        w = e / e.sum(dim=-2, keepdim=True).clamp_min(torch.finfo(ct).tiny)
    else:
        w = torch.sigmoid(lt) if gate_act is None else gate_act(lt)
        if mask is not None:
            w = w.masked_fill(~mask, 0.0)
    out = (w * x.to(ct)).sum(dim=-2).to(x.dtype)
    return out, w


class TokenwiseGate(nn.Module):
    r"""Per-token gated fusion of ``N >= 2`` streams; for two ``out = g * a + (1 - g) * b``.

    Two streams (the default, ``weighting="complement"``): ``g = sigmoid(W [a; b] + c)``,
    ``out = g * a + (1 - g) * b``. ``mode="scalar"`` gives one gate per token (``W`` maps
    ``2 * dim -> 1``, ``g`` is ``[..., 1]``), ``mode="vector"`` one gate per feature
    (``2 * dim -> dim``, ``g`` is ``[..., dim]``). Used to mix a text and an image stream token by
    token in a vision-language decoder, or two feature streams in a forecaster.

    ``N`` streams ``x_1 .. x_N`` (``num_streams=N``): logits ``l = W [x_1; ...; x_N] + c`` with
    ``W`` mapping ``N * dim -> N`` (scalar: one weight per stream and token) or ``N * dim -> N * dim``
    (vector: one weight per stream and feature, the output read stream-major as ``[N, dim]``),
    then ``out = sum_s w_s * x_s`` with

    * ``weighting="softmax"`` (the default for ``N > 2``): ``w = softmax_s(l)``, a convex mix;
    * ``weighting="sigmoid"``: ``w_s = gate_act(l_s)`` for each stream on its own (not convex:
      several streams can be fully open, or all closed).

    ``stream_mask`` (bool, broadcastable to ``[..., N, 1]``, ``True`` = present) removes absent
    streams from a token's mix: softmax renormalises over the present ones, sigmoid weights of
    absent streams are 0, a token with no present stream gets ``out = 0``. Absent streams still
    enter ``W [x_1; ...; x_N]`` as given (pass zeros for them).

    Args:
        dim: features of every stream.
        num_streams: ``N``.
        weighting: ``"complement"`` (two streams only, the original gate), ``"softmax"`` or
            ``"sigmoid"``; ``None``: ``"complement"`` for two streams, ``"softmax"`` for more.
        mode: ``"scalar"`` or ``"vector"``.
        gate_act: squashing of the gate in the ``"complement"`` and ``"sigmoid"`` weightings
            (default sigmoid; must map into ``[0, 1]``); must stay ``"sigmoid"`` with
            ``"softmax"`` (unused there).
        bias: the gate bias ``c``.
        init_gate: starting gate values, set through ``c`` (exact for zero inputs). Needs
            ``bias=True``. ``"complement"``: a value in ``(0, 1)``, the weight of ``a`` (``0.9``
            favours ``a``; assumes a sigmoid ``gate_act``). ``"softmax"``: ``N`` weights in
            ``(0, 1)`` summing to 1 (``c_s = log w_s``). ``"sigmoid"``: one value in ``(0, 1)``
            for every stream or ``N`` values (``c_s = logit(w_s)``).

    Shapes: streams ``[..., dim]`` (one shape) -> ``[..., dim]``. The gate is recorded with
    :func:`gatelab.core.record_gate`: ``g`` ``[..., 1]`` / ``[..., dim]`` (``"complement"``,
    the weight of ``a``), the weights ``w`` ``[..., N]`` (scalar) / ``[..., N, dim]`` (vector)
    otherwise.

    Paths: two streams, one math, op ``tokenwise_gate`` (:mod:`gatelab.core.kernels.tokenwise`).
    The fused op (projection inside the kernel) runs when ``gate_act`` is a plain ``nn.Sigmoid``,
    ``proj`` a plain ``nn.Linear`` (:func:`gatelab.core.layers.fusion.is_plain`: no hooks, not
    replaced) and nothing is captured; otherwise ``proj`` is called and the op's mix
    (:func:`gatelab.core.kernels.tokenwise.tokenwise_mix`) returns the gate. ``"softmax"`` /
    ``"sigmoid"``: ``proj`` then :func:`stream_mix` (PyTorch only).

    Precision: for float16/bfloat16 inputs the gate and the mix are computed in float32 and the
    result cast back (the gradient ``a - b`` of the gate overflows half precision otherwise).

    Paper: the gate of the Gated Multimodal Unit, Arevalo et al., "Gated Multimodal Units for
    Information Fusion", ICLR workshop 2017 (``z = sigmoid(W_z [x_v; x_t])``,
    ``h = z * h_v + (1 - z) * h_t``), applied per token; the paper's N-modality GMU uses one
    sigmoid gate per modality, ``weighting="sigmoid"`` here.

    Deviations: the GMU also passes each stream through its own ``tanh(W x)`` before mixing; here
    the streams arrive already projected (mixed as given). The scalar mode, ``init_gate``, the
    softmax weighting and ``stream_mask`` are extensions.
    """

    def __init__(
        self,
        dim: int,
        *,
        num_streams: int = 2,
        weighting: Literal["complement", "softmax", "sigmoid"] | None = None,
        mode: Literal["scalar", "vector"] = "scalar",
        gate_act: ActLike = "sigmoid",
        bias: bool = True,
        init_gate: float | Sequence[float] | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        check_positive_int("TokenwiseGate", "dim", dim)
        check_positive_int("TokenwiseGate", "num_streams", num_streams)
        if num_streams < 2:
            raise ValueError(f"TokenwiseGate: num_streams must be >= 2, got {num_streams}")
        if mode not in ("scalar", "vector"):
            raise ValueError(f"TokenwiseGate: mode must be 'scalar' or 'vector', got {mode!r}")
        if weighting is None:
            weighting = "complement" if num_streams == 2 else "softmax"
        if weighting not in WEIGHTINGS:
            raise ValueError(f"TokenwiseGate: weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        if weighting == "complement" and num_streams != 2:
            raise ValueError(
                f"TokenwiseGate: weighting='complement' mixes exactly 2 streams, got num_streams={num_streams}"
            )
        if weighting == "softmax" and gate_act != "sigmoid":
            raise ValueError(f"TokenwiseGate: gate_act={gate_act!r} is unused with weighting='softmax'")
        self.dim = dim
        self.num_streams = num_streams
        self.weighting = weighting
        self.mode = mode
        self._init_bias = self._check_init(init_gate, bias, weighting, num_streams)
        self.init_gate = init_gate
        if weighting == "complement":
            out = 1 if mode == "scalar" else dim
        else:
            out = num_streams if mode == "scalar" else num_streams * dim
        self.proj = nn.Linear(num_streams * dim, out, bias=bias, **factory_kwargs)
        # the softmax weighting has no squashing of its own (no module whose hooks would never fire)
        self.gate_act = None if weighting == "softmax" else create_act(gate_act)
        self.reset_parameters()

    @staticmethod
    def _check_init(
        init_gate: float | Sequence[float] | None, bias: bool, weighting: str, n: int
    ) -> list[float] | None:
        """The starting bias per stream (``None``: default init); errors name the bad value."""
        if init_gate is None:
            return None
        if not bias:
            raise ValueError("TokenwiseGate: init_gate needs bias=True")
        values = [init_gate] if isinstance(init_gate, (int, float)) else list(init_gate)
        for v in values:
            if not isinstance(v, (int, float)) or not 0.0 < v < 1.0:
                raise ValueError(f"TokenwiseGate: init_gate must be in (0, 1), got {init_gate!r}")
        if weighting == "complement":
            if len(values) != 1 or not isinstance(init_gate, (int, float)):
                raise ValueError(f"TokenwiseGate: init_gate must be one number in (0, 1), got {init_gate!r}")
            return [math.log(values[0] / (1.0 - values[0]))]
        if weighting == "softmax":
            if len(values) != n or abs(sum(values) - 1.0) > 1e-6:
                raise ValueError(
                    f"TokenwiseGate: with weighting='softmax' init_gate must be {n} weights in (0, 1) "
                    f"summing to 1, got {init_gate!r}"
                )
            return [math.log(v) for v in values]
        if len(values) == 1:
            values = values * n
        if len(values) != n:
            raise ValueError(f"TokenwiseGate: init_gate must be one value or {n} values, got {init_gate!r}")
        return [math.log(v / (1.0 - v)) for v in values]

    def reset_parameters(self) -> None:
        self.proj.reset_parameters()
        if self._init_bias is not None:
            with torch.no_grad():
                if self.weighting == "complement":
                    self.proj.bias.fill_(self._init_bias[0])
                else:
                    per = 1 if self.mode == "scalar" else self.dim
                    start = torch.tensor(self._init_bias, dtype=torch.float64).repeat_interleave(per)
                    self.proj.bias.copy_(start.to(self.proj.bias.dtype))

    def forward(
        self, a: torch.Tensor, b: torch.Tensor, *more: torch.Tensor, stream_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mix the streams ``a, b, *more`` (``num_streams`` tensors ``[..., dim]``) -> ``[..., dim]``."""
        if 2 + len(more) != self.num_streams:
            raise ValueError(f"TokenwiseGate: expected {self.num_streams} streams, got {2 + len(more)}")
        if self.weighting == "complement":
            if stream_mask is not None:
                raise ValueError("TokenwiseGate: stream_mask needs weighting='softmax' or 'sigmoid'")
            return self._forward_pair(a, b)
        streams = (a, b, *more)
        for i, x in enumerate(streams):
            if x.shape[-1] != self.dim or x.shape != a.shape:
                shapes = [tuple(s.shape) for s in streams]
                raise ValueError(
                    f"TokenwiseGate: expected {self.num_streams} streams of one shape [..., {self.dim}], "
                    f"stream {i} is {tuple(x.shape)} (all: {shapes})"
                )
        if stream_mask is not None:
            want = (*a.shape[:-1], self.num_streams, 1)
            if stream_mask.dtype != torch.bool:
                raise TypeError(f"TokenwiseGate: stream_mask must be bool, got {stream_mask.dtype}")
            try:
                torch.broadcast_shapes(tuple(stream_mask.shape), want)
            except RuntimeError:
                raise ValueError(
                    f"TokenwiseGate: stream_mask of shape {tuple(stream_mask.shape)} does not broadcast to "
                    f"[..., num_streams, 1] = {want}"
                ) from None
        logits = self.proj(torch.cat(streams, dim=-1))
        logits = logits.unflatten(-1, (self.num_streams, 1 if self.mode == "scalar" else self.dim))
        out, w = stream_mix(
            streams, logits, weighting=self.weighting, gate_act=self.gate_act, stream_mask=stream_mask
        )
        if is_capturing():
            record_gate(self, (w.squeeze(-1) if self.mode == "scalar" else w).to(a.dtype))
        return out

    def _forward_pair(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
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
        extra = (
            ""
            if self.num_streams == 2 and self.weighting == "complement"
            else (f", num_streams={self.num_streams}, weighting={self.weighting!r}")
        )
        return f"dim={self.dim}{extra}, mode={self.mode!r}, init_gate={self.init_gate}"
