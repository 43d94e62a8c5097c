"""Channel and spatial gates: Squeeze-and-Excitation (Hu et al. 2018) and CBAM (Woo et al. 2018)."""

from __future__ import annotations

import torch
from torch import nn

from .layers import nd
from .layers.activations import ActLike, create_act
from .layers.capture import record_gate
from .layers.checks import check_positive_int

__all__ = ["CBAM", "SqueezeExcite"]


def _make_divisible(
    v: float, divisor: int = 1, min_value: int | None = None, round_limit: float = 0.0
) -> int:
    """Round ``v`` to the nearest multiple of ``divisor`` (at least ``min_value``; timm's habit)."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


def _reduced_channels(
    channels: int, rd_channels: int | None, rd_ratio: float, rd_divisor: int, who: str
) -> int:
    check_positive_int(who, "channels", channels, allow_bool=True)
    if rd_channels is None:
        if not rd_ratio > 0:
            raise ValueError(f"{who}: rd_ratio must be > 0, got {rd_ratio!r}")
        return _make_divisible(channels * rd_ratio, rd_divisor)
    check_positive_int(who, "rd_channels", rd_channels, allow_bool=True)
    return rd_channels


def _check_input(x: torch.Tensor, channels: int, who: str, ndim: int | None = None) -> None:
    if (x.dim() < 3 if ndim is None else x.dim() != ndim) or x.shape[1] != channels:
        want = "[B, C, *spatial]" if ndim is None else f"[B, C, *{ndim - 2} spatial dims]"
        raise ValueError(f"{who}: input must be {want} with C={channels}, got shape {tuple(x.shape)}")


class SqueezeExcite(nn.Module):
    r"""Squeeze-and-Excitation channel gate, for any number of spatial dims (1D, 2D, 3D, ...).

    .. code-block:: text

        z = mean_{spatial}(x)                                   [B, C]      squeeze
        s = gate_act(W_2 act(W_1 z + b_1) + b_2)                [B, C]      excitation
        y = s[:, :, None, ...] * x                              [B, C, *S]  scale

    with ``W_1 in R^{r x C}``, ``W_2 in R^{C x r}``, ``act = ReLU``, ``gate_act = sigmoid``.

    Args:
        channels: ``C``.
        rd_channels: the bottleneck width ``r``; default ``round(C * rd_ratio)`` to a multiple of
            ``rd_divisor``, at least ``rd_divisor`` (and so at least 1).
        act: bottleneck activation (default ReLU).
        gate_act: squashing of the channel gate (default sigmoid).
        bias: biases of ``W_1`` and ``W_2``.
        rd_ratio: ``1 / reduction``; default ``1/16`` (the paper's ``r = 16``).
        rd_divisor: round ``r`` to a multiple of this (1 = nearest integer; timm's default is 8).

    Shapes: input ``[B, C, *spatial]`` (any number >= 1 of spatial dims), output the same. The
    gate ``s`` ``[B, C]`` is recorded with :func:`gatelab.core.record_gate`.

    Paper: Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018.

    Deviations: the paper's bottleneck width is ``C / r`` for channel counts divisible by ``r``;
    here it is rounded to the nearest multiple of ``rd_divisor`` and never 0, so small ``C``
    works. The FC layers are ``nn.Linear`` on the pooled ``[B, C]`` vector (timm stores them as
    1x1 convolutions; the weights are the same numbers reshaped).
    """

    def __init__(
        self,
        channels: int,
        rd_channels: int | None = None,
        *,
        act: ActLike = "relu",
        gate_act: ActLike = "sigmoid",
        bias: bool = True,
        rd_ratio: float = 1.0 / 16,
        rd_divisor: int = 1,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        self.channels = channels
        self.rd_channels = _reduced_channels(channels, rd_channels, rd_ratio, rd_divisor, "SqueezeExcite")
        self.fc1 = nn.Linear(channels, self.rd_channels, bias=bias, **factory_kwargs)
        self.act = create_act(act)
        self.fc2 = nn.Linear(self.rd_channels, channels, bias=bias, **factory_kwargs)
        self.gate_act = create_act(gate_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, C, *spatial]`` -> ``[B, C, *spatial]``."""
        _check_input(x, self.channels, "SqueezeExcite")
        z = x.mean(dim=tuple(range(2, x.dim())))
        s = self.gate_act(self.fc2(self.act(self.fc1(z))))
        record_gate(self, s)
        return x * s.view(*s.shape, *([1] * (x.dim() - 2)))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, rd_channels={self.rd_channels}"


class CBAM(nn.Module):
    r"""Convolutional Block Attention Module: a channel gate, then a spatial gate (2D and 3D).

    .. code-block:: text

        M_c = gate_act(MLP(avgpool_S(x)) + MLP(maxpool_S(x)))          [B, C]      shared MLP
        x'  = M_c[:, :, None, ...] * x                                  [B, C, *S]
        M_s = gate_act(Norm(conv_k([mean_C(x'); max_C(x')])))          [B, 1, *S]  k x k (x k) conv
        y   = M_s * x'                                                  [B, C, *S]

    with ``MLP(z) = W_2 act(W_1 z + b_1) + b_2`` (so ``b_2`` is counted twice, as in the official
    code, which calls the MLP once per pooled descriptor), ``act = ReLU``, ``gate_act = sigmoid``,
    ``k = 7``.

    Args:
        spatial_dims: 2 (``[B, C, H, W]``) or 3 (``[B, C, D, H, W]``).
        channels: ``C``.
        rd_channels: MLP bottleneck width; default ``round(C * rd_ratio)`` to a multiple of
            ``rd_divisor``, at least 1.
        act: MLP activation (default ReLU).
        gate_act: squashing of both gates (default sigmoid).
        bias: biases of the channel MLP. The spatial conv has a bias only when ``spatial_norm``
            is ``None`` (the official conv has none; BatchNorm's shift plays that role).
        rd_ratio: ``1 / reduction``, default ``1/16``.
        rd_divisor: round the bottleneck to a multiple of this (default 1).
        kernel_size: ``k`` of the spatial conv (odd; "same" padding), default 7.
        spatial_norm: normalisation after the spatial conv: ``"batch"`` (the official code:
            BatchNorm with momentum 0.01), ``"instance"`` or ``None`` (the paper's equation).

    Shapes: input ``[B, C, *S]``, output the same. Recorded gates (with
    :func:`gatelab.core.record_gate`): suffix ``"channel"`` ``[B, C]`` and suffix ``"spatial"``
    ``[B, 1, *S]``.

    Paper: Woo, Park, Lee, Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018;
    official code ``Jongchan/attention-module`` (``MODELS/cbam.py``). Initialisation as the
    official ResNet does it: spatial-conv weight He-normal (fan-out), spatial BatchNorm weight 0
    and bias 0 (so ``M_s`` starts at 0.5 everywhere; the same for ``"instance"``), MLP biases 0,
    MLP weights PyTorch default.

    Deviations: the pooled channel descriptors are concatenated as ``[mean; max]`` (the paper's
    order; the official code uses ``[max; mean]``, which permutes the conv's input channels).
    The bottleneck is rounded and at least 1 (the official ``C // 16`` is 0 below 16 channels).
    3D is an extension of the paper's 2D module.
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        rd_channels: int | None = None,
        *,
        act: ActLike = "relu",
        gate_act: ActLike = "sigmoid",
        bias: bool = True,
        rd_ratio: float = 1.0 / 16,
        rd_divisor: int = 1,
        kernel_size: int = 7,
        spatial_norm: str | None = "batch",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        self.spatial_dims = nd.check_spatial_dims(spatial_dims, (2, 3), "CBAM")
        self.channels = channels
        self.rd_channels = _reduced_channels(channels, rd_channels, rd_ratio, rd_divisor, "CBAM")
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"CBAM: kernel_size must be a positive odd int, got {kernel_size!r}")
        self.kernel_size = kernel_size
        self.fc1 = nn.Linear(channels, self.rd_channels, bias=bias, **factory_kwargs)
        self.act = create_act(act)
        self.fc2 = nn.Linear(self.rd_channels, channels, bias=bias, **factory_kwargs)
        self.gate_act = create_act(gate_act)
        self.spatial_conv = nd.conv(spatial_dims)(
            2, 1, kernel_size, padding=kernel_size // 2, bias=spatial_norm is None, **factory_kwargs
        )
        norm_options = {"momentum": 0.01} if spatial_norm == "batch" else {}
        self.spatial_norm = nd.norm(spatial_norm, spatial_dims, 1, **norm_options, **factory_kwargs)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The official initialisation (see the class docstring)."""
        nn.init.kaiming_normal_(self.spatial_conv.weight, mode="fan_out")
        for fc in (self.fc1, self.fc2):
            if fc.bias is not None:
                nn.init.zeros_(fc.bias)
        if isinstance(self.spatial_norm, nn.modules.batchnorm._NormBase) and self.spatial_norm.affine:
            nn.init.zeros_(self.spatial_norm.weight)
            nn.init.zeros_(self.spatial_norm.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, C, *S]`` -> ``[B, C, *S]``."""
        _check_input(x, self.channels, "CBAM", self.spatial_dims + 2)
        spatial = tuple(range(2, x.dim()))
        pooled = torch.stack((x.mean(dim=spatial), x.amax(dim=spatial)))  # [2, B, C], one MLP call
        m_c = self.gate_act(self.fc2(self.act(self.fc1(pooled))).sum(dim=0))
        record_gate(self, m_c, "channel")
        x = x * m_c.view(*m_c.shape, *([1] * self.spatial_dims))
        desc = torch.cat((x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)), dim=1)
        m_s = self.gate_act(self.spatial_norm(self.spatial_conv(desc)))
        record_gate(self, m_s, "spatial")
        return x * m_s

    def extra_repr(self) -> str:
        return (
            f"spatial_dims={self.spatial_dims}, channels={self.channels}, rd_channels={self.rd_channels}, "
            f"kernel_size={self.kernel_size}"
        )
