r"""U-Net and Attention U-Net for 2D images and 3D volumes, from one code path.

Follows the official code of Oktay et al., "Attention U-Net: Learning Where to Look for the
Pancreas" (MIDL 2018), ``ozan-oktay/Attention-Gated-Networks``: the paper's CT models
``unet_CT_multi_att_dsv_3D`` (Attention U-Net) and ``unet_CT_dsv_3D`` (its U-Net baseline).
Layers are looked up by ``spatial_dims`` (MONAI-style factories in :mod:`gatelab.core.layers.nd`), so
the 2D and the 3D network are the same class.

Architecture (``L = len(filters)`` levels, ``f_i = int(filters[i] / feature_scale)``; the
paper's configuration has ``filters = (64, 128, 256, 512, 1024)``, ``feature_scale = 4``)::

    e_0 = Block(x)                               Block = 2 x [conv k^d pad 1 -> norm -> act]
    e_i = Block(maxpool_2(e_{i-1}))    i = 1 .. L-2        [B, f_i, *S / 2^i]
    c   = Block(maxpool_2(e_{L-2}))                        [B, f_{L-1}, *S / 2^(L-1)]   centre
    g   = act(norm(conv_1(c)))                             gating signal from the centre
    for i = L-2 .. 0 (coarse to fine):
        gating_i = g if i = L-2 else d_{i+1}               from the *coarser* scale
        s_i = AttGates(e_i, gating_i)   if attention and i >= 1, else e_i
        d_i = Block(concat[s_i, up(d_{i+1} or c)])         up = (bi/tri)linear resize to e_i's grid
    AttGates(e, g) = act(norm(conv_1(concat_k[y_k])))      y_k, alpha_k = AttentionGate_k(e, g),
                                                           k = 1 .. gates_per_level
    deep supervision: z_i = up(conv_1(d_i)) to S, logits = conv_1(concat[z_0, ..., z_{L-2}])
    without deep supervision: logits = conv_1(d_0)

Each :class:`gatelab.core.AttentionGate` is the additive grid gate
``alpha = sigmoid(psi^T relu(W_theta x + W_phi g + b_phi) + b_psi)`` computed on ``x``'s grid
sub-sampled by ``attention_dsample`` (``W_theta``: kernel = stride = 2), resampled back to ``x``'s
grid, then ``y = norm(W_o (alpha * x))``; ``F_int = f_i`` as in the official multi-attention block.
The finest skip (``i = 0``) is not gated, as in the official code.

Shapes: input ``[B, in_channels, *S]`` (``S`` = ``(H, W)`` or ``(D, H, W)``, each side at least
``2^(L-1)``; it need not be divisible by it), logits ``[B, num_classes, *S]``. With
``return_attention=True`` the forward returns ``(logits, maps)``, ``maps[f"att{i+1}"]`` being
``[B, gates_per_level, *S / 2^i]`` in ``[0, 1]`` for every gated level ``i`` (names as the
official ``att2``, ``att3``, ``att4``).

Config keys (:class:`UNetConfig`, frozen, with presets): ``spatial_dims``, ``in_channels``, ``num_classes``,
``feature_scale``, ``filters``, ``attention``, ``gates_per_level``, ``deep_supervision``,
``norm``, ``act``, ``gate_act``, ``attention_dsample``, ``upsample_mode``, ``kernel_size``.

Deviations from the official code:

* The 2D network is the same architecture with 2D layers (the repository's 2D ``unet_2D`` is an
  older variant with transposed convolutions and no normalisation in the decoder).
* The decoder upsamples to the skip's exact size (``F.interpolate(size=...)``) and deep
  supervision outputs to the input's size, instead of ``scale_factor=2`` plus zero-padding of the
  skip; for sizes divisible by ``2^(L-1)`` this is identical, other sizes then also work.
* One ``norm`` option is used everywhere; the official ``is_batchnorm=False`` still keeps
  batch norm inside the gates and the gate-combining convolution.
* ``align_corners=False`` for every linear resampling (what the official ``nn.Upsample`` /
  ``F.upsample`` calls do on PyTorch >= 0.4).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from gatelab.core import AttentionGate, SameGridAttentionGate
from gatelab.core.config import ConfigError, ModelConfig, PositiveFloat, PositiveInt
from gatelab.core.layers import conv as _conv
from gatelab.core.layers import nd as _nd
from gatelab.core.layers.activations import ActLike, create_act
from gatelab.core.layers.checks import check_float_input
from gatelab.core.pretrained import PretrainedMixin

__all__ = [
    "PAPER_FILTERS",
    "AttentionUNet",
    "AttentionUNet2d",
    "AttentionUNet2dConfig",
    "AttentionUNet3d",
    "AttentionUNet3dConfig",
    "UNet",
    "UNetConfig",
    "unet_param_count",
]

#: base widths of the official networks, divided by ``feature_scale``
PAPER_FILTERS: tuple[int, ...] = (64, 128, 256, 512, 1024)


def _act(act: ActLike) -> nn.Module:
    a = create_act(act)
    if type(a) is nn.ReLU:  # safe after conv/norm (their backward does not read their output)
        a.inplace = True
    return a


def _instance_norm(spatial_dims: int, channels: int, **fk: Any) -> nn.Module:
    """Instance norm without affine parameters or running statistics (MONAI's default norm)."""
    return (nn.InstanceNorm2d, nn.InstanceNorm3d)[spatial_dims - 2](channels, **fk)


class _ChannelsLast(torch.autograd.Function):
    """``x.contiguous(memory_format=channels_last(_3d))`` whose backward returns a contiguous gradient.

    The plain ``contiguous`` passes the gradient back in ``channels_last`` layout, and PyTorch
    2.14's instance norm computes a wrong input gradient from a ``channels_last`` output gradient
    at batch 1 (relative error ~1; batch > 1 is right), so the layout goes back with the gradient.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last if x.dim() == 4 else torch.channels_last_3d)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous()


def _to_channels_last(module: nn.Module, args: Any, out: torch.Tensor) -> torch.Tensor:
    """Forward hook: ``out`` in ``channels_last`` (4-D) / ``channels_last_3d`` (5-D) memory format."""
    return _ChannelsLast.apply(out)


class ConvBlock(nn.Sequential):
    """``2 x [conv (kernel k, padding k//2) -> norm -> act]`` (the official ``UnetConv3``)."""

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        *,
        act: ActLike = "relu",
        norm: str | None = "batch",
        kernel_size: int = 3,
        onednn_conv: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        conv = _conv.conv(spatial_dims, fast=onednn_conv)
        layers: list[nn.Module] = []
        for c_in in (in_channels, out_channels):
            layers += [
                conv(c_in, out_channels, kernel_size, padding=kernel_size // 2, **factory_kwargs),
                _nd.norm(norm, spatial_dims, out_channels, **factory_kwargs),
                _act(act),
            ]
        super().__init__(*layers)


class ConvNormAct(nn.Sequential):
    """``act(norm(conv_1x1(x)))``: the gating-signal and gate-combining layers."""

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        *,
        act: ActLike = "relu",
        norm: str | None = "batch",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__(
            _nd.conv(spatial_dims)(in_channels, out_channels, 1, **factory_kwargs),
            _nd.norm(norm, spatial_dims, out_channels, **factory_kwargs),
            _act(act),
        )


class GatedSkip(nn.Module):
    """``gates_per_level`` attention gates on one skip connection, combined by a 1x1 conv.

    ``y = act(norm(conv_1(concat_k[y_k])))`` with ``(y_k, alpha_k) = gate_k(x, g)``; returns
    ``(y, alpha)`` with ``alpha = concat_k[alpha_k]`` ``[B, gates_per_level, *S]`` (the official
    ``MultiAttentionBlock``; one gate is its single-attention variant).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        gating_channels: int,
        inter_channels: int,
        *,
        gates_per_level: int = 2,
        act: ActLike = "relu",
        gate_act: ActLike = "sigmoid",
        norm: str | None = "batch",
        sub_sample_factor: int | Sequence[int] = 2,
        upsample_mode: str = "linear",
        fuse: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        self.gates = nn.ModuleList(
            AttentionGate(
                spatial_dims,
                in_channels,
                gating_channels,
                inter_channels,
                act=act,
                gate_act=gate_act,
                norm=norm,
                sub_sample_factor=sub_sample_factor,
                upsample_mode=upsample_mode,
                fuse=fuse,
                **factory_kwargs,
            )
            for _ in range(gates_per_level)
        )
        self.combine = ConvNormAct(
            spatial_dims, gates_per_level * in_channels, in_channels, act=act, norm=norm, **factory_kwargs
        )

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ys, alphas = zip(*(gate(x, g) for gate in self.gates), strict=True)
        y = ys[0] if len(ys) == 1 else torch.cat(ys, dim=1)
        alpha = alphas[0] if len(alphas) == 1 else torch.cat(alphas, dim=1)
        return self.combine(y), alpha


@dataclasses.dataclass(frozen=True, kw_only=True)
class UNetConfig(ModelConfig):
    """Hyper-parameters of :class:`UNet` / :class:`AttentionUNet` (the official names, but
    ``num_classes`` for the official ``n_classes``).

    Fields:
        spatial_dims: 2 (``[B, C, H, W]``) or 3 (``[B, C, D, H, W]``).
        in_channels: input channels.
        num_classes: output channels (class logits; use softmax over dim 1).
        feature_scale: widths are ``int(filters[i] / feature_scale)`` (official default 4).
        filters: base widths per level, finest first (default ``(64, 128, 256, 512, 1024)``);
            ``len(filters) - 1`` poolings, at least 2 levels.
        attention: gate the skips of levels ``1 .. L-2`` with attention gates.
        gates_per_level: attention gates per gated skip (2 = the paper's multi-attention model,
            1 = the single-attention variant).
        deep_supervision: fuse per-level 1x1-conv predictions (``dsv``) into the logits, as the
            paper's CT models; ``False`` predicts from the finest decoder level only.
        norm: ``"batch"`` (official), ``"instance"`` or ``None``.
        act: activation of the convolution blocks and of the gates' additive attention (a name
            of :func:`gatelab.core.layers.activations.create_act`).
        gate_act: squashing of the attention logits (sigmoid).
        attention_dsample: sub-sampling of ``W_theta`` in the gates (official ``(2, 2, 2)``; an
            int, or one per spatial axis).
        upsample_mode: decoder / gate / deep-supervision resampling: ``"linear"`` (bi/trilinear,
            official), ``"nearest"`` ... (:func:`gatelab.core.layers.nd.interp_mode`).
        kernel_size: convolution kernel of the blocks (odd; official 3).
        onednn_conv: (ours, speed only) run the blocks' convolutions on oneDNN at batch 1 on the
            CPU, forward and backward (:mod:`gatelab.core.layers.conv`; PyTorch's heuristic
            sends them to its 5-10x slower im2col path there); same values up to float32
            summation order; ``False``: plain ``nn.Conv{2,3}d``. Same parameters either way.
        topology: ``"official"`` (the paper's network, above) or ``"monai"``: the topology of
            MONAI 1.6 ``AttentionUnet(spatial_dims, in_channels, num_classes, channels=widths,
            strides=(2,) * depth)`` (see :meth:`UNet._build_monai`): stride-2 convolution
            blocks instead of max-pooling, a stride-2 3x3 transposed convolution + BN + ReLU
            up, one :class:`gatelab.core.SameGridAttentionGate` per level (the finest
            included) with the gating signal after upsampling, a 3x3 merge convolution +
            instance norm + PReLU, a 1x1 head. Same parameter count, FLOPs and (with copied
            weights, :func:`gatelab.vision.models.unet_port.monai_state_dict`) outputs as
            MONAI's. Needs ``attention=True``, ``gates_per_level=1``, ``deep_supervision=False``
            and the defaults of ``norm``, ``act``, ``gate_act``, ``attention_dsample``,
            ``upsample_mode`` and ``kernel_size`` (preset ``attention-unet-3d-monai``); sides
            divisible by ``2^depth``.
        memory_format: (ours, speed only) memory layout of the activations: ``"channels_last"``
            converts the input (and so every activation) to ``channels_last(_3d)``, where the
            CPU convolutions run faster and 1x1 convolutions are one GEMM
            (:func:`gatelab.core.layers.conv.pointwise_conv`); the logits come back contiguous.
            ``"auto"``: ``channels_last`` for ``topology="monai"`` in 2D (measured faster there,
            see ``benchmarks/attention_unet_speed.py``), else ``"contiguous"``. Same parameters and
            values up to float32 summation order either way.
        fuse_gates: (ours, speed only) the gates run the fused op ``attention_gate``
            (:mod:`gatelab.core.kernels.attention_gate`; Triton tail on CUDA); same values up to
            float32 rounding; ``False``: the unfused modules.
        check_finite: (ours, default off) raise on NaN/inf input values, naming the first
            (a full pass over the input per call); non-float input is always an error.

    Presets: ``unet-2d``, ``unet-3d`` (the U-Net baseline ``unet_CT_dsv_3D``) and
    ``attention-unet-2d``, ``attention-unet-3d`` (``unet_CT_multi_att_dsv_3D``), all at the
    paper's widths (``filters / 4`` = 16 .. 256); the registry's ``attention-unet-2d`` /
    ``attention-unet-3d`` (:class:`AttentionUNet2d` / :class:`AttentionUNet3d`, whose configs fix
    ``spatial_dims``) start from the attention presets.
    """

    spatial_dims: Literal[2, 3] = 2
    in_channels: PositiveInt = 1
    num_classes: PositiveInt = 2
    feature_scale: PositiveFloat = 4
    filters: tuple[PositiveInt, ...] = PAPER_FILTERS
    attention: bool = False
    gates_per_level: PositiveInt = 2
    deep_supervision: bool = True
    norm: Literal["batch", "instance"] | None = "batch"
    act: str = "relu"
    gate_act: str = "sigmoid"
    attention_dsample: PositiveInt | tuple[PositiveInt, ...] = 2
    upsample_mode: str = "linear"
    kernel_size: PositiveInt = 3
    onednn_conv: bool = True
    fuse_gates: bool = True
    topology: Literal["official", "monai"] = "official"
    memory_format: Literal["auto", "contiguous", "channels_last"] = "auto"
    check_finite: bool = False

    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "unet-2d": {"spatial_dims": 2, "attention": False},
        "unet-3d": {"spatial_dims": 3, "attention": False},
        "attention-unet-2d": {"spatial_dims": 2, "attention": True},
        "attention-unet-3d": {"spatial_dims": 3, "attention": True},
        "attention-unet-2d-monai": {
            "spatial_dims": 2,
            "attention": True,
            "topology": "monai",
            "gates_per_level": 1,
            "deep_supervision": False,
        },
        "attention-unet-3d-monai": {
            "spatial_dims": 3,
            "attention": True,
            "topology": "monai",
            "gates_per_level": 1,
            "deep_supervision": False,
        },
    }

    def check(self) -> None:
        name = type(self).__name__
        if self.topology == "monai":
            need = {
                "attention": True,
                "gates_per_level": 1,
                "deep_supervision": False,
                "norm": "batch",
                "act": "relu",
                "gate_act": "sigmoid",
                "attention_dsample": 2,
                "upsample_mode": "linear",
                "kernel_size": 3,
            }
            bad = [f"{k}={getattr(self, k)!r} (needs {v!r})" for k, v in need.items() if getattr(self, k) != v]
            if bad:
                raise ConfigError(f"{name}.topology='monai' fixes these fields: " + ", ".join(bad))
        if len(self.filters) < 2:
            raise ConfigError(f"{name}.filters={list(self.filters)}: expected at least 2 levels")
        if any(w < 1 for w in self.widths):
            raise ConfigError(
                f"{name}.filters={list(self.filters)} / feature_scale={self.feature_scale} gives widths "
                f"{list(self.widths)}; every width must be >= 1"
            )
        if self.kernel_size % 2 == 0:
            raise ConfigError(f"{name}.kernel_size={self.kernel_size}: expected an odd integer")
        try:
            _nd.interp_mode(self.upsample_mode, self.spatial_dims)
        except ValueError as e:
            raise ConfigError(f"{name}.upsample_mode={self.upsample_mode!r}: {e}") from None

    @property
    def widths(self) -> tuple[int, ...]:
        """Channels per level, finest first: ``int(filters[i] / feature_scale)``."""
        return tuple(int(f / self.feature_scale) for f in self.filters)

    @property
    def channels_last(self) -> bool:
        """Whether the activations run in ``channels_last(_3d)`` (``memory_format``, ``"auto"`` resolved)."""
        if self.memory_format == "auto":
            return self.topology == "monai" and self.spatial_dims == 2
        return self.memory_format == "channels_last"


class UNet(PretrainedMixin, nn.Module):
    """U-Net / Attention U-Net (2D or 3D); see the module docstring for equations and deviations.

    Args:
        config: a :class:`UNetConfig` (the class's ``config_class``; a subclass's own config
            for :class:`AttentionUNet2d` / :class:`AttentionUNet3d`) or a mapping of its fields;
            ``None``: the defaults (2D U-Net without gates).
        **overrides: config fields replacing ``config``'s (``UNet(spatial_dims=3, attention=True)``).
        device, dtype: where and in what precision the parameters are created.
    """

    config_class: ClassVar[type[UNetConfig]] = UNetConfig

    def __init__(
        self,
        config: UNetConfig | Mapping[str, Any] | None = None,
        /,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__()
        self.config = cfg = self.config_class.build(config, **overrides)
        self.spatial_dims = cfg.spatial_dims
        self.in_channels = cfg.in_channels
        self.num_classes = cfg.num_classes
        self.widths = widths = cfg.widths
        self.attention = cfg.attention
        self.gates_per_level = cfg.gates_per_level
        self.deep_supervision = cfg.deep_supervision
        self.upsample_mode = _nd.interp_mode(cfg.upsample_mode, cfg.spatial_dims)
        self.align_corners = _nd.align_corners_for(self.upsample_mode, False)
        self.depth = len(widths) - 1  # number of poolings
        self.gated_levels: tuple[int, ...] = tuple(range(1, self.depth)) if self.attention else ()
        fk = {"device": device, "dtype": dtype}
        self.topology = cfg.topology
        if cfg.topology == "monai":
            self.gated_levels = tuple(range(self.depth))
            self._build_monai(cfg, fk)
        else:
            # the build order is the parameter order, in which the random init is drawn
            self._build_encoder_decoder(cfg, fk)
            if self.attention:
                self._build_gates(cfg, fk)
            self._build_head(cfg, fk)
        self.reset_parameters()
        if cfg.channels_last:
            # a 1-channel input is contiguous in both formats (and convolutions follow their
            # input's format), so the first convolution's output is converted as well
            self.encoder[0][0].register_forward_hook(_to_channels_last)
            for m in self.modules():  # instance norm returns contiguous output whatever its input
                if isinstance(m, nn.modules.instancenorm._InstanceNorm):
                    m.register_forward_hook(_to_channels_last)

    def _build_encoder_decoder(self, cfg: UNetConfig, fk: dict[str, Any]) -> None:
        """``encoder[i]`` (level ``i``), ``center`` and ``decoder[i]`` = Block(concat[skip f_i,
        up(f_{i+1})]) -> f_i."""
        nd, widths, depth = cfg.spatial_dims, self.widths, self.depth
        block = dict(act=cfg.act, norm=cfg.norm, kernel_size=cfg.kernel_size, onednn_conv=cfg.onednn_conv, **fk)
        self.pool = _nd.max_pool(nd)(kernel_size=2)
        chans = (cfg.in_channels, *widths)
        self.encoder = nn.ModuleList(ConvBlock(nd, chans[i], chans[i + 1], **block) for i in range(depth))
        self.center = ConvBlock(nd, widths[-2], widths[-1], **block)
        self.decoder = nn.ModuleList(
            ConvBlock(nd, widths[i] + widths[i + 1], widths[i], **block) for i in range(depth)
        )

    def _build_monai(self, cfg: UNetConfig, fk: dict[str, Any]) -> None:
        """MONAI ``AttentionUnet`` topology (``w`` = widths, ``L`` = depth)::

            encoder[0] = Block_1(x);  encoder[i] = Block_2(encoder[i-1])  i = 1 .. L   (first conv stride 2)
            Block_s    = conv3 (stride s) -> BN -> ReLU -> conv3 -> BN -> ReLU
            for i = L-1 .. 0:  u = ReLU(BN(convT3_stride2(h)))   (h = encoder[L] first)
                               s, alpha_i = gates[i](encoder[i], g=u)
                               h = PReLU(InstanceNorm(conv3(concat[s, u])))    merge[i]
            logits = final(h)                                   1x1 convolution
        """
        nd, w, depth = cfg.spatial_dims, self.widths, self.depth
        conv, conv_t = _conv.conv(nd, fast=cfg.onednn_conv), _nd.conv_transpose(nd)

        def block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
            return nn.Sequential(
                conv(c_in, c_out, 3, stride=stride, padding=1, **fk),
                _nd.norm("batch", nd, c_out, **fk),
                nn.ReLU(inplace=True),
                conv(c_out, c_out, 3, padding=1, **fk),
                _nd.norm("batch", nd, c_out, **fk),
                nn.ReLU(inplace=True),
            )

        chans = (cfg.in_channels, *w)
        self.encoder = nn.ModuleList(block(chans[i], chans[i + 1], 1 if i == 0 else 2) for i in range(depth + 1))
        self.up = nn.ModuleList(
            nn.Sequential(
                conv_t(w[i + 1], w[i], 3, stride=2, padding=1, output_padding=1, **fk),
                _nd.norm("batch", nd, w[i], **fk),
                nn.ReLU(inplace=True),
            )
            for i in range(depth)
        )
        self.gates = nn.ModuleList(
            SameGridAttentionGate(nd, w[i], w[i], max(w[i] // 2, 1), **fk) for i in range(depth)
        )
        self.merge = nn.ModuleList(
            nn.Sequential(
                conv(2 * w[i], w[i], 3, padding=1, **fk),
                _instance_norm(nd, w[i], **fk),
                nn.PReLU(**fk),
            )
            for i in range(depth)
        )
        self.final = conv(w[0], cfg.num_classes, 1, **fk)

    def _forward_monai(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if any(s % self.min_size for s in x.shape[2:]):
            raise ValueError(
                f"{type(self).__name__}(topology='monai'): every spatial side must be divisible by "
                f"2^depth = {self.min_size}, got {tuple(x.shape[2:])}"
            )
        feats: list[torch.Tensor] = []
        h = x
        for enc in self.encoder:
            h = enc(h)
            feats.append(h)
        maps: dict[str, torch.Tensor] = {}
        for i in reversed(range(self.depth)):
            u = self.up[i](h)
            skip, maps[f"att{i + 1}"] = self.gates[i](feats[i], u)
            h = self.merge[i](torch.cat([skip, u], dim=1))
        return self.final(h), dict(sorted(maps.items()))

    def _build_gates(self, cfg: UNetConfig, fk: dict[str, Any]) -> None:
        """The gating signal from the centre and one :class:`GatedSkip` per gated level."""
        nd, widths = cfg.spatial_dims, self.widths
        self.gating = ConvNormAct(nd, widths[-1], widths[-1], act=cfg.act, norm=cfg.norm, **fk)
        self.gates = nn.ModuleDict(
            {
                f"att{i + 1}": GatedSkip(
                    nd,
                    widths[i],
                    widths[i + 1],
                    widths[i],
                    gates_per_level=cfg.gates_per_level,
                    act=cfg.act,
                    gate_act=cfg.gate_act,
                    norm=cfg.norm,
                    sub_sample_factor=cfg.attention_dsample,
                    upsample_mode=cfg.upsample_mode,
                    fuse=cfg.fuse_gates,
                    **fk,
                )
                for i in self.gated_levels
            }
        )

    def _build_head(self, cfg: UNetConfig, fk: dict[str, Any]) -> None:
        """Deep supervision (``dsv[i]`` per level, fused by ``final``) or ``final`` on level 0."""
        conv, k, depth = _nd.conv(cfg.spatial_dims), cfg.num_classes, self.depth
        if self.deep_supervision:
            self.dsv = nn.ModuleList(conv(self.widths[i], k, 1, **fk) for i in range(depth))
            self.final = conv(k * depth, k, 1, **fk)
        else:
            self.final = conv(self.widths[0], k, 1, **fk)

    def reset_parameters(self) -> None:
        """Official initialisation (``init_weights(..., 'kaiming')``): He-normal (fan-in) conv
        weights, norm weights ``N(1, 0.02)`` and biases 0; conv biases at PyTorch's default."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d)):
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            elif isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)):
                if m.affine:
                    nn.init.normal_(m.weight, 1.0, 0.02)
                    nn.init.zeros_(m.bias)
                if m.track_running_stats:
                    m.reset_running_stats()

    @property
    def min_size(self) -> int:
        """Smallest spatial side the network accepts (``2^depth``)."""
        return 2**self.depth

    def _resize(self, t: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        if tuple(t.shape[2:]) == tuple(size):
            return t
        return F.interpolate(t, size=size, mode=self.upsample_mode, align_corners=self.align_corners)

    def forward(
        self, x: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits ``[B, num_classes, *S]``; with ``return_attention`` also ``{name: alpha}``."""
        n = self.spatial_dims + 2
        if x.dim() != n or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__}: input must be [B, {self.in_channels}, *{self.spatial_dims} spatial dims], "
                f"got {tuple(x.shape)}"
            )
        if min(x.shape[2:]) < self.min_size:
            raise ValueError(
                f"{type(self).__name__}: every spatial side must be >= 2^depth = {self.min_size}, "
                f"got {tuple(x.shape[2:])}"
            )
        check_float_input(type(self).__name__, "x", x, check_finite=self.config.check_finite)
        channels_last = self.config.channels_last
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last if self.spatial_dims == 2 else torch.channels_last_3d)
        if self.topology == "monai":
            logits, maps = self._forward_monai(x)
            if channels_last:
                logits, maps = logits.contiguous(), {k: v.contiguous() for k, v in maps.items()}
            return (logits, maps) if return_attention else logits
        skips: list[torch.Tensor] = []
        h = x
        for i, enc in enumerate(self.encoder):
            h = enc(h if i == 0 else self.pool(h))
            skips.append(h)
        h = self.center(self.pool(h))
        gating = self.gating(h) if self.attention else h
        maps: dict[str, torch.Tensor] = {}
        dec_out: list[torch.Tensor] = [h] * self.depth
        for i in reversed(range(self.depth)):
            skip = skips[i]
            if i in self.gated_levels:
                name = f"att{i + 1}"
                skip, maps[name] = self.gates[name](skip, gating if i == self.depth - 1 else h)
            h = self.decoder[i](torch.cat([skip, self._resize(h, skip.shape[2:])], dim=1))
            dec_out[i] = h
        if self.deep_supervision:
            size = x.shape[2:]
            z = [self._resize(head(d), size) for head, d in zip(self.dsv, dec_out, strict=True)]
            logits = self.final(torch.cat(z, dim=1))
        else:
            logits = self.final(h)
        if channels_last:
            logits, maps = logits.contiguous(), {k: v.contiguous() for k, v in maps.items()}
        if return_attention:
            return logits, dict(sorted(maps.items()))
        return logits

    def extra_repr(self) -> str:
        return (
            f"spatial_dims={self.spatial_dims}, widths={self.widths}, attention={self.attention}, "
            f"gates_per_level={self.gates_per_level}, deep_supervision={self.deep_supervision}"
        )


class AttentionUNet(UNet):
    """:class:`UNet` with ``attention=True`` (the paper's multi-attention, deep-supervised model).

    Takes the same config as :class:`UNet`; ``attention`` is always true (passing ``attention``
    is an error, as is a config with ``attention=False``).
    """

    def __init__(
        self,
        config: UNetConfig | Mapping[str, Any] | None = None,
        /,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **overrides: Any,
    ) -> None:
        if "attention" in overrides or (isinstance(config, Mapping) and "attention" in config):
            raise ConfigError(
                "AttentionUNet: unexpected key 'attention' (always true; UNet(attention=...) chooses)"
            )
        if isinstance(config, UNetConfig) and not config.attention:
            raise ConfigError(
                "AttentionUNet: the config has attention=False; UNet(config) builds the baseline"
            )
        super().__init__(UNetConfig.build(config, attention=True, **overrides), device=device, dtype=dtype)


@dataclasses.dataclass(frozen=True, kw_only=True)
class AttentionUNet2dConfig(UNetConfig):
    """:class:`UNetConfig` of the registry entry ``attention-unet-2d`` (:class:`AttentionUNet2d`):
    ``spatial_dims`` is 2; ``attention`` defaults to true (``attention=False`` is the U-Net
    baseline). Presets: the 2D ones of :class:`UNetConfig`, ``unet-2d``, ``attention-unet-2d`` and
    ``attention-unet-2d-monai``."""

    spatial_dims: Literal[2] = 2
    attention: bool = True

    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "unet-2d": {"spatial_dims": 2, "attention": False},
        "attention-unet-2d": {"spatial_dims": 2, "attention": True},
        "attention-unet-2d-monai": {
            "spatial_dims": 2,
            "attention": True,
            "topology": "monai",
            "gates_per_level": 1,
            "deep_supervision": False,
        },
    }


@dataclasses.dataclass(frozen=True, kw_only=True)
class AttentionUNet3dConfig(UNetConfig):
    """:class:`UNetConfig` of the registry entry ``attention-unet-3d`` (:class:`AttentionUNet3d`):
    ``spatial_dims`` is 3; ``attention`` defaults to true (``attention=False`` is the paper's
    U-Net baseline ``unet_CT_dsv_3D``). Presets: the 3D ones of :class:`UNetConfig`, ``unet-3d``,
    ``attention-unet-3d`` and ``attention-unet-3d-monai``."""

    spatial_dims: Literal[3] = 3
    attention: bool = True

    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "unet-3d": {"spatial_dims": 3, "attention": False},
        "attention-unet-3d": {"spatial_dims": 3, "attention": True},
        "attention-unet-3d-monai": {
            "spatial_dims": 3,
            "attention": True,
            "topology": "monai",
            "gates_per_level": 1,
            "deep_supervision": False,
        },
    }


class AttentionUNet2d(UNet):
    """Attention U-Net 2D (multi-gate, deep supervision), registry ``attention-unet-2d``: a
    :class:`UNet` whose config (:class:`AttentionUNet2dConfig`) fixes ``spatial_dims=2``;
    ``attention=False`` gives the paper's U-Net baseline. Same modules and state dict as
    ``UNet(spatial_dims=2, ...)``."""

    config_class: ClassVar[type[UNetConfig]] = AttentionUNet2dConfig


class AttentionUNet3d(UNet):
    """Attention U-Net 3D (multi-gate, deep supervision, the paper's ``unet_CT_multi_att_dsv_3D``),
    registry ``attention-unet-3d``: a :class:`UNet` whose config (:class:`AttentionUNet3dConfig`)
    fixes ``spatial_dims=3``; ``attention=False`` gives the paper's U-Net baseline. Same modules
    and state dict as ``UNet(spatial_dims=3, ...)``."""

    config_class: ClassVar[type[UNetConfig]] = AttentionUNet3dConfig


def unet_param_count(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --------------------------------------------------------------------------- registry helpers (gatelab.vision.registry)

_TINY = dict(in_channels=1, num_classes=2, filters=(8, 16, 32), feature_scale=1)


def _example(spatial: tuple[int, ...]):
    def make(model: nn.Module, batch: int):
        return (torch.randn(batch, model.in_channels, *spatial),), {"return_attention": model.attention}

    return make


_example_2d = _example((12, 10))
_example_3d = _example((8, 8, 6))
