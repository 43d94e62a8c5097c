"""Gated convolution (GCNN, Dauphin et al. 2017) over sequences ``[B, C, T]``."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .layers.activations import ActLike, create_act
from .layers.capture import record_gate
from .layers.checks import check_dropout, check_positive_ints

__all__ = ["GatedConv1d"]


class GatedConv1d(nn.Module):
    r"""Gated 1-D convolution ``h = act(X * W + b) ⊗ sigmoid(X * V + c)``.

    One ``Conv1d(in_channels, 2 * out_channels)`` produces both halves (first ``out_channels``
    the value ``X * W + b``, then the gate ``X * V + c``, the ``F.glu`` layout). Padding:

    * ``"causal"``: ``(kernel_size - 1) * dilation`` zeros on the left only, so output ``t``
      sees inputs ``<= t`` (the paper's language model);
    * ``"same"``: the same total split between both sides (left ``total // 2``).

    With ``residual=True`` the output is ``x + dropout(h)`` (needs ``in_channels == out_channels``).

    Args:
        in_channels: ``C`` of the input.
        out_channels: channels of ``h`` (default ``in_channels``).
        kernel_size: ``k`` (default 3).
        act: activation of the value half (default none: the linear path of the GLU; ``"tanh"``
            gives the LSTM/WaveNet-style gated tanh unit).
        gate_act: squashing of the gate half (default sigmoid).
        bias: conv biases ``b, c``.
        dropout: dropout on ``h``.
        dilation: dilation of the convolution.
        padding: ``"causal"`` or ``"same"``.
        residual: add the input to the output.

    Shapes: ``x`` ``[B, in_channels, T]`` -> ``[B, out_channels, T]``. The gate
    ``sigmoid(X * V + c)``, ``[B, out_channels, T]``, is recorded with
    :func:`gatelab.core.record_gate`.

    Paper: Dauphin, Fan, Auli, Grangier, "Language Modeling with Gated Convolutional Networks",
    ICML 2017, eq. (1) (GLU) and Sec. 2 (left zero-padding by ``k - 1`` for causality).

    Deviations: the paper wraps convolutions in weight normalisation and stacks them in
    bottleneck residual blocks; this is one gated convolution with an optional identity
    residual (wrap with ``torch.nn.utils.parametrizations.weight_norm`` if wanted).
    PyTorch's default Conv1d initialisation.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        kernel_size: int = 3,
        *,
        act: ActLike = None,
        gate_act: ActLike = "sigmoid",
        bias: bool = True,
        dropout: float = 0.0,
        dilation: int = 1,
        padding: Literal["causal", "same"] = "causal",
        residual: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        out_channels = out_channels or in_channels
        check_positive_ints(
            "GatedConv1d",
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("kernel_size", kernel_size),
            ("dilation", dilation),
        )
        if padding not in ("causal", "same"):
            raise ValueError(f"GatedConv1d: padding must be 'causal' or 'same', got {padding!r}")
        if residual and in_channels != out_channels:
            raise ValueError(
                f"GatedConv1d: residual=True needs in_channels == out_channels, got {in_channels} and {out_channels}"
            )
        check_dropout("GatedConv1d", dropout)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.padding = padding
        self.residual = residual
        total = (kernel_size - 1) * dilation
        self._pad = (total, 0) if padding == "causal" else (total // 2, total - total // 2)
        self.conv = nn.Conv1d(
            in_channels, 2 * out_channels, kernel_size, dilation=dilation, bias=bias, **factory_kwargs
        )
        self.act = create_act(act)
        self.gate_act = create_act(gate_act)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"GatedConv1d: expected x [B, {self.in_channels}, T], got shape {tuple(x.shape)}"
            )
        value, gate = self.conv(F.pad(x, self._pad)).chunk(2, dim=1)
        gate = self.gate_act(gate)
        record_gate(self, gate)
        h = self.dropout(self.act(value) * gate)
        return x + h if self.residual else h

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, dilation={self.dilation}, "
            f"padding={self.padding!r}, residual={self.residual}"
        )
