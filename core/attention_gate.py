"""Attention U-Net additive grid attention gate (Oktay et al. 2018), 2D and 3D."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .kernels import dispatch, is_sigmoid
from .layers import conv as _conv
from .layers import nd
from .layers.activations import ActLike, create_act
from .layers.capture import record_gate
from .layers.checks import check_positive_int, check_positive_ints

__all__ = ["AttentionGate", "SameGridAttentionGate"]


def _plain_conv(m: nn.Module) -> bool:
    """``m`` is an unwrapped conv / activation module whose forward no hook observes or alters."""
    from torch.nn.modules import module as _module

    if type(m) not in (nn.Conv2d, nn.Conv3d, nn.ReLU, nn.Sigmoid):
        return False
    return not (
        m._forward_hooks
        or m._forward_pre_hooks
        or m._backward_hooks
        or m._backward_pre_hooks
        or _module._global_forward_hooks
        or _module._global_forward_pre_hooks
        or _module._global_backward_hooks
        or _module._global_backward_pre_hooks
    )


class AttentionGate(nn.Module):
    r"""Additive grid attention gate of Attention U-Net, for 2D images and 3D volumes.

    The skip feature ``x`` is gated by a gating signal ``g`` taken from the *coarser* scale (the
    decoder input before it is upsampled)::

        theta_x = W_theta * x                       conv, kernel = stride = s, no bias    [B, F_int, *S/s]
        phi_g   = resample(W_phi * g + b_phi, size(theta_x))   1x1 conv                   [B, F_int, *S/s]
        q       = psi^T act(theta_x + phi_g) + b_psi            1x1 conv to one channel   [B, 1, *S/s]
        alpha   = resample(gate_act(q), size(x))                 gate_act = sigmoid       [B, 1, *S]
        y       = Norm(W_o * (alpha . x) + b_o)                  1x1 conv + norm          [B, C_x, *S]

    with ``act = ReLU``; ``resample`` is (bi/tri)linear interpolation by default, as in the
    official code (``_GridAttentionBlockND``, mode ``"concatenation"``). Since linear interpolation
    is a convex combination, ``alpha`` stays in ``[0, 1]``.

    Args:
        spatial_dims: 2 (images, ``[B, C, H, W]``) or 3 (volumes, ``[B, C, D, H, W]``).
        in_channels: channels ``C_x`` of the gated skip feature ``x``.
        gating_channels: channels ``C_g`` of the gating signal ``g``.
        inter_channels: ``F_int``; default ``in_channels // 2`` (at least 1), as the official code.
        act: activation of the additive attention (default ReLU).
        gate_act: squashing of the attention logits (default sigmoid).
        bias: bias of ``W_phi``, ``psi`` and ``W_o`` (``W_theta`` never has one, as in the paper).
        sub_sample_factor: ``s``, kernel size and stride of ``W_theta`` (int or one per axis);
            ``x``'s grid is downsampled by ``s`` to meet the coarser gating grid.
        norm: normalisation after the output projection: ``"batch"`` (official), ``"instance"``
            or ``None``.
        upsample_mode: ``"linear"`` (bilinear in 2D, trilinear in 3D, the official choice),
            ``"bilinear"``/``"trilinear"`` (must match ``spatial_dims``), ``"nearest"`` or ``"area"``.
        align_corners: passed to ``F.interpolate`` for the linear modes (default ``False``, which
            is what the official ``F.upsample`` call does on PyTorch >= 0.4).
        fuse: with ``act="relu"`` and ``gate_act="sigmoid"`` (the defaults), compute everything
            up to ``alpha * x`` with the fused op ``attention_gate``
            (:mod:`gatelab.core.kernels.attention_gate`: one autograd node saving only the
            coarse-grid pre-activation and map, Triton tail on CUDA); same values and gradients
            as the unfused modules up to float32 rounding. ``False``: the unfused modules.

    Shapes:
        ``x``: ``[B, C_x, *S]``; ``g``: ``[B, C_g, *S_g]`` (any spatial size; usually ``S / s``).
        Returns ``(y, alpha)``: ``y`` is ``[B, C_x, *S]``, ``alpha`` is ``[B, 1, *S]`` in
        ``[0, 1]`` (also recorded with :func:`gatelab.core.record_gate`).

    Paper: Oktay et al., "Attention U-Net: Learning Where to Look for the Pancreas", MIDL 2018;
    official code ``ozan-oktay/Attention-Gated-Networks``,
    ``models/layers/grid_attention_layer.py`` (``_GridAttentionBlockND``, ``"concatenation"``).
    Initialisation as there: He-normal (fan-in) conv weights, BatchNorm weight ``N(1, 0.02)``,
    BatchNorm bias 0, conv biases at PyTorch's default.

    Deviations: none from the official "concatenation" mode. ``norm``, ``act``, ``gate_act``,
    ``upsample_mode`` and ``align_corners`` are options. Unlike MONAI's ``AttentionBlock``,
    which takes the gating signal *after* the decoder upsampling (same grid as ``x``), has no
    strided ``W_theta``, no output projection and does not return the map, this gate takes ``g``
    from the coarser scale, computes the attention on the subsampled grid, upsamples ``alpha``
    and returns it.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        gating_channels: int,
        inter_channels: int | None = None,
        *,
        act: ActLike = "relu",
        gate_act: ActLike = "sigmoid",
        bias: bool = True,
        sub_sample_factor: int | Sequence[int] = 2,
        norm: str | None = "batch",
        upsample_mode: str = "linear",
        align_corners: bool = False,
        fuse: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        self.spatial_dims = nd.check_spatial_dims(spatial_dims, (2, 3), "AttentionGate")
        check_positive_ints(
            "AttentionGate",
            ("in_channels", in_channels),
            ("gating_channels", gating_channels),
            allow_bool=True,
        )
        if inter_channels is None:
            inter_channels = max(in_channels // 2, 1)
        check_positive_int("AttentionGate", "inter_channels", inter_channels, allow_bool=True)
        self.in_channels = in_channels
        self.gating_channels = gating_channels
        self.inter_channels = inter_channels
        self.sub_sample_factor = nd.as_tuple(sub_sample_factor, spatial_dims, "sub_sample_factor")
        self.upsample_mode = nd.interp_mode(upsample_mode, spatial_dims)
        self.align_corners = nd.align_corners_for(self.upsample_mode, align_corners)
        self.fuse = bool(fuse)

        conv = nd.conv(spatial_dims)
        s = self.sub_sample_factor
        self.theta = conv(in_channels, inter_channels, kernel_size=s, stride=s, bias=False, **factory_kwargs)
        self.phi = conv(gating_channels, inter_channels, kernel_size=1, bias=bias, **factory_kwargs)
        self.psi = conv(inter_channels, 1, kernel_size=1, bias=bias, **factory_kwargs)
        self.act = create_act(act)
        self.gate_act = create_act(gate_act)
        self.W = nn.Sequential(
            conv(in_channels, in_channels, kernel_size=1, bias=bias, **factory_kwargs),
            nd.norm(norm, spatial_dims, in_channels, **factory_kwargs),
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Official initialisation: He-normal conv weights, BatchNorm weight ~ N(1, 0.02), bias 0."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d)):
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def _check(self, x: torch.Tensor, g: torch.Tensor) -> None:
        n = self.spatial_dims + 2
        if x.dim() != n or x.shape[1] != self.in_channels:
            raise ValueError(
                f"AttentionGate: x must be [B, in_channels={self.in_channels}, *{self.spatial_dims} spatial dims], "
                f"got x.shape={tuple(x.shape)}"
            )
        if g.dim() != n or g.shape[1] != self.gating_channels:
            raise ValueError(
                f"AttentionGate: g must be [B, gating_channels={self.gating_channels}, "
                f"*{self.spatial_dims} spatial dims], got g.shape={tuple(g.shape)}"
            )
        if x.shape[0] != g.shape[0]:
            raise ValueError(
                f"AttentionGate: x and g must have the same batch size, got x.shape={tuple(x.shape)} "
                f"and g.shape={tuple(g.shape)}"
            )
        if any(d < s for d, s in zip(x.shape[2:], self.sub_sample_factor)):
            raise ValueError(
                f"AttentionGate: x's spatial size {tuple(x.shape[2:])} is smaller than "
                f"sub_sample_factor={self.sub_sample_factor}"
            )

    def _resample(self, t: torch.Tensor, size: torch.Size) -> torch.Tensor:
        if t.shape[2:] == size:
            return t
        return F.interpolate(t, size=size, mode=self.upsample_mode, align_corners=self.align_corners)

    @property
    def fused(self) -> bool:
        """Whether :meth:`forward` runs the fused op ``attention_gate`` of :mod:`gatelab.core.kernels`:
        ``fuse`` is on, ``act`` is ReLU, ``gate_act`` the sigmoid, and ``theta``, ``phi``, ``psi``
        are plain convolutions without hooks (a wrapped, parametrized or hooked projection, e.g.
        LoRA or a capture hook, runs the unfused modules so that it takes effect)."""
        return (
            self.fuse
            and type(self.act) is nn.ReLU
            and is_sigmoid(self.gate_act)
            and all(_plain_conv(m) for m in (self.theta, self.phi, self.psi, self.act, self.gate_act))
        )

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gate ``x`` ``[B, C_x, *S]`` with ``g`` ``[B, C_g, *S_g]``; returns ``(y, alpha)``."""
        self._check(x, g)
        if self.fused:
            gated, alpha = dispatch(
                "attention_gate",
                x,
                g,
                self.theta.weight,
                self.phi.weight,
                self.phi.bias,
                self.psi.weight,
                self.psi.bias,
                stride=self.sub_sample_factor,
                mode=self.upsample_mode,
                align_corners=self.align_corners,
            )
            record_gate(self, alpha)
            return self.W(gated), alpha
        theta_x = self.theta(x)
        phi_g = self._resample(self.phi(g), theta_x.shape[2:])
        alpha = self.gate_act(self.psi(self.act(theta_x + phi_g)))
        alpha = self._resample(alpha, x.shape[2:])
        record_gate(self, alpha)
        y = self.W(alpha * x)
        return y, alpha

    def extra_repr(self) -> str:
        return (
            f"spatial_dims={self.spatial_dims}, in_channels={self.in_channels}, "
            f"gating_channels={self.gating_channels}, inter_channels={self.inter_channels}, "
            f"sub_sample_factor={self.sub_sample_factor}, upsample_mode={self.upsample_mode!r}"
        )


class SameGridAttentionGate(nn.Module):
    r"""Additive attention gate with the gating signal on the skip's grid (MONAI ``AttentionBlock``
    topology), 2D and 3D.

    ::

        alpha = sigmoid(BN(psi^T relu(BN(W_g g + b_g) + BN(W_x x + b_x)) + b_psi))   [B, 1, *S]
        y     = alpha * x                                                           [B, C_x, *S]

    every projection a 1x1 convolution with bias, ``BN`` batch norm. Unlike :class:`AttentionGate`
    (the official Attention U-Net gate) ``g`` is already on ``x``'s grid (the decoder feature after
    upsampling), ``W_x`` is not strided, ``alpha`` is normalised before the sigmoid, and there is
    no output projection.

    Args:
        spatial_dims: 2 or 3.
        in_channels: channels ``C_x`` of ``x``.
        gating_channels: channels ``C_g`` of ``g``.
        inter_channels: ``F_int`` (MONAI: ``in_channels // 2``).

    Shapes: ``x`` ``[B, C_x, *S]``, ``g`` ``[B, C_g, *S]``; returns ``(y, alpha)`` (``alpha`` also
    recorded with :func:`gatelab.core.record_gate`). Parameters and their order match MONAI's
    ``AttentionBlock`` (``W_g``, ``W_x``, ``psi``), initialised as PyTorch's defaults (as MONAI).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        gating_channels: int,
        inter_channels: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        fk = {"device": device, "dtype": dtype}
        self.spatial_dims = nd.check_spatial_dims(spatial_dims, (2, 3), "SameGridAttentionGate")
        check_positive_ints(
            "SameGridAttentionGate",
            ("in_channels", in_channels),
            ("gating_channels", gating_channels),
            ("inter_channels", inter_channels),
            allow_bool=True,
        )
        self.in_channels, self.gating_channels, self.inter_channels = in_channels, gating_channels, inter_channels
        conv = _conv.conv(spatial_dims)  # nn.Conv{2,3}d; one GEMM on channels_last input (core.layers.conv)
        self.W_g = nn.Sequential(conv(gating_channels, inter_channels, 1, **fk), nd.norm("batch", spatial_dims, inter_channels, **fk))
        self.W_x = nn.Sequential(conv(in_channels, inter_channels, 1, **fk), nd.norm("batch", spatial_dims, inter_channels, **fk))
        self.psi = nn.Sequential(conv(inter_channels, 1, 1, **fk), nd.norm("batch", spatial_dims, 1, **fk))

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gate ``x`` ``[B, C_x, *S]`` with ``g`` ``[B, C_g, *S]``; returns ``(y, alpha)``."""
        n = self.spatial_dims + 2
        if x.dim() != n or g.dim() != n or x.shape[1] != self.in_channels or g.shape[1] != self.gating_channels:
            raise ValueError(
                f"SameGridAttentionGate: x must be [B, {self.in_channels}, *S] and g [B, {self.gating_channels}, *S], "
                f"got x.shape={tuple(x.shape)}, g.shape={tuple(g.shape)}"
            )
        if x.shape[0] != g.shape[0] or x.shape[2:] != g.shape[2:]:
            raise ValueError(
                f"SameGridAttentionGate: x and g must share batch and grid, got x.shape={tuple(x.shape)}, "
                f"g.shape={tuple(g.shape)}"
            )
        alpha = torch.sigmoid(self.psi(F.relu(self.W_g(g) + self.W_x(x))))
        record_gate(self, alpha)
        return alpha * x, alpha

    def extra_repr(self) -> str:
        return (
            f"spatial_dims={self.spatial_dims}, in_channels={self.in_channels}, "
            f"gating_channels={self.gating_channels}, inter_channels={self.inter_channels}"
        )
