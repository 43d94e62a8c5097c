"""MAXIM: multi-axis MLP for image restoration (Tu et al., CVPR 2022), in PyTorch.

A faithful re-implementation of the official Flax model (``google-research/maxim``,
``maxim/models/maxim.py``), built from the shared gates of :mod:`gatelab.core`:

* :class:`gatelab.core.MultiAxisGatedMLP` -- the multi-axis gated MLP block (official
  ``ResidualSplitHeadMultiAxisGmlpLayer``: a local *block* gMLP branch and a global dilated *grid*
  gMLP branch, each a spatial gating unit);
* :class:`gatelab.core.CrossGatingBlock` -- the cross-gating MLP block (with its two
  ``GetSpatialGatingWeights``) in the skip connections and between stages;
* :class:`gatelab.core.SqueezeExcite` -- the channel attention ("CALayer") of the residual channel
  attention blocks (RCAB) and the bottleneck's residual dense channel attention blocks (RDCAB).

Architecture (``S`` stages; each stage a 3-level UNet; ``F`` = ``features``; level ``i`` has
``2^i F`` channels at resolution ``H / 2^i``)::

    inputs  I_0 = x,  I_s = nearest_resize(x, H/2^s)                 multi-scale inputs, s < n_scales
    stage k:
      f_s  = Conv3x3(I_s)                                                   (2^s F channels)
      k>0: f_s = CGB(f_s, SAM feature of stage k-1 at scale s)              fuse previous stage
      encoder i = 0..depth-1:   (x, bridge_i) = Enc_i([x; f_i])             f_i only if i < n_scales
          Enc = Conv1x1 -> num_groups x [MAB, RCAB] -> + long skip
                -> (k>0) CGB(., enc_i^{k-1} + dec_i^{k-1}) -> Conv4x4/2 down
      bottleneck: num_bottleneck_blocks x (Conv1x1 -> num_groups x [MAB, RDCAB] -> + long skip)
      cross-gated skips i = depth-1..0:
          signal_i = [UpSampleRatio(bridge_j) for all j]                    multi-scale fusion
          (skip_i, g) = CGB(signal_i, g)                                    g upsampled by ConvT 2x2/2
      decoder i = depth-1..0:
          x = ConvT_up(x);  x = Dec_i([x; UpSampleRatio(skip_j) for all j])  (Enc without down/CGB)
          i < n_scales: (not last stage) feat, out = SAM(x, I_i) else out = Conv3x3(x) + I_i
    returns outputs[stage][scale], scales ordered coarse -> fine (``outputs[-1][-1]`` is the image)

with MAB = :class:`~gatelab.core.MultiAxisGatedMLP`, CGB = :class:`~gatelab.core.CrossGatingBlock`,
``RCAB(x) = x + CA(Conv3x3(lrelu(Conv3x3(LN(x)))))``, ``RDCAB(x) = x + CA(MLP(LN(x)))``,
``CA(x) = x * sigmoid(W_2 relu(W_1 mean_hw(x)))`` (:class:`~gatelab.core.SqueezeExcite`, reduction 4),
``SAM(x, I) = (Conv(x) * sigmoid(Conv(out)) + x, out)`` with ``out = Conv(x) + I`` (MPRNet's
supervised attention module) and ``UpSampleRatio(t, r) = Conv1x1(bilinear_resize(t, r))``.

Tensors: the public API takes and returns ``NCHW`` images ``[B, C, H, W]``; internally the model
works in the official code's ``NHWC`` layout (what the core MAXIM gates take), convolutions see
``NCHW`` views of the same memory.

**Any input size.** The block/grid partitions need ``H`` and ``W`` divisible by
:attr:`Maxim.size_multiple` (64 for the official configuration: grid/block 16 at levels 0-1,
8 at level 2 and in the bottleneck at ``H/8``). :meth:`Maxim.forward` reflect-pads the input
symmetrically to that multiple (like the official ``run_eval.mod_padding_symmetric``) and crops
every output back; ``restore(x, padding="run_eval", geometric_ensemble=True)`` reproduces
``run_eval``'s exact two-step padding and its x8 self-ensemble
(:mod:`gatelab.vision.tasks.maxim_inference`). :func:`tiled_forward` restores large images tile by tile with overlap blending.

**Parameter counts** (3 input / 3 output channels; ``tests/vision/models/test_maxim.py`` builds
every preset and registered variant and checks these numbers against the built models):

=======  ===================================  ==============================================
preset   presets as built (``run_eval.py``:    ``num_supervision_scales=1`` (the counts quoted
         ``num_supervision_scales=3``)         in the official code's comments)
=======  ===================================  ==============================================
S-1      6,139,561                            6,108,515
S-2      14,176,178                           13,353,830
S-3      22,212,795                           20,599,145
M-1      19,464,265                           19,361,219
M-2      43,227,986                           40,839,110
M-3      66,991,707                           62,317,001
=======  ===================================  ==============================================

The official code's comments ("S-2 params: 13.35383 M", "S-3: 20.599145 M") count the class
defaults with one supervision scale; ``run_eval.py`` builds every released model with three
(multi-scale inputs and outputs), which gives the README's "14.1M" (S-2) and "22.2M" (S-3).
``lrelu_slope``, ``dropout``, ``zero_init_heads`` and ``use_global_mlp=True`` do not change the count.

Paper: Tu, Talebi, Zhang, Yang, Milanfar, Bovik, Li, "MAXIM: Multi-Axis MLP for Image Processing",
CVPR 2022 (arXiv 2201.02973).

Deviations from the official code (none changes the function at the official settings):

* low-resolution levels use ``grid_size_lr`` for the grid branch (the official code passes
  ``block_size_lr`` there; both are ``(8, 8)`` in every released configuration);
* ``lrelu_slope`` reaches the RCABs (the official encoder block drops it and always uses 0.2);
* the decoder passes ``input_proj_factor`` on (the official one uses the default 2);
* the residual to the input image in SAM and the output convs is added whenever
  ``num_outputs == in_channels`` (official: SAM adds it only for 3 channels, the output conv always);
* initialisation follows Flax's defaults and the official ``normal(0.02)`` where it sets one
  (LeCun-normal for every convolution and Dense, zero biases; the SE layers too); the released
  Flax checkpoints load through :mod:`gatelab.vision.models.maxim_port`;
* the resizes are PyTorch's ``nearest-exact`` (= ``jax.image.resize(..., "nearest")``: source
  index ``floor((o + 0.5) * in / out)``) and bilinear with ``antialias`` when shrinking (JAX's
  default), which by our reading of both implementations compute the same weights.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from gatelab.core import CrossGatingBlock, MultiAxisGatedMLP, SqueezeExcite, record_gate
from gatelab.core.config import (
    Allowed,
    ConfigError,
    Dropout,
    ModelConfig,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
)
from gatelab.core.layers.checks import check_float_input
from gatelab.core.pretrained import PretrainedMixin

__all__ = [
    "MAXIM_OFFICIAL_PARAMS",
    "Maxim",
    "MaximConfig",
    "pad_to_multiple",
    "tiled_forward",
]

_LN_EPS = 1e-6  # Flax LayerNorm default
_DENSE_STD = 2e-2  # official ``weight_initializer`` of the MLP blocks


# --------------------------------------------------------------------------- init helpers


def _lecun_normal_(weight: torch.Tensor, fan_in: int) -> None:
    """Flax's default kernel init: truncated normal (+-2 std) with variance ``1 / fan_in``."""
    std = math.sqrt(1.0 / fan_in) / 0.87962566103423978  # std of a unit normal truncated at +-2
    nn.init.trunc_normal_(weight, 0.0, std, -2.0 * std, 2.0 * std)


def _dense(cin: int, cout: int, bias: bool, std: float | None = None) -> nn.Linear:
    """A Dense / 1x1 conv on NHWC: LeCun-normal (``std=None``) or ``N(0, std^2)``, bias 0."""
    lin = nn.Linear(cin, cout, bias=bias)
    if std is None:
        _lecun_normal_(lin.weight, cin)
    else:
        nn.init.normal_(lin.weight, 0.0, std)
    if lin.bias is not None:
        nn.init.zeros_(lin.bias)
    return lin


class _Conv(nn.Conv2d):
    """A ``k x k`` convolution with Flax ``SAME`` padding applied to NHWC tensors."""

    def __init__(self, cin: int, cout: int, kernel: int, *, stride: int = 1, bias: bool = True) -> None:
        # SAME padding for odd kernels (stride 1) and for the 4x4 stride-2 down-sampling conv
        # on even sizes: total (k - s), split evenly -> (k - s) // 2 on each side.
        super().__init__(cin, cout, kernel, stride=stride, padding=(kernel - stride) // 2, bias=bias)
        _lecun_normal_(self.weight, cin * kernel * kernel)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, H, W, C] -> [B, H', W', C']
        return super().forward(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class _ConvUp(nn.ConvTranspose2d):
    """Official ``ConvT_up``: 2x2 transposed convolution, stride 2, on NHWC tensors."""

    def __init__(self, cin: int, cout: int, *, bias: bool = True) -> None:
        super().__init__(cin, cout, 2, stride=2, bias=bias)
        _lecun_normal_(self.weight, cin * 4)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


def _nhwc_resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """``jax.image.resize`` on NHWC: ``nearest`` or ``bilinear`` (antialiased when shrinking)."""
    if tuple(x.shape[1:3]) == tuple(size):
        return x
    y = x.permute(0, 3, 1, 2)
    if mode == "nearest":
        y = F.interpolate(y, size=size, mode="nearest-exact")
    else:
        shrink = size[0] < x.shape[1] or size[1] < x.shape[2]
        y = F.interpolate(y, size=size, mode="bilinear", align_corners=False, antialias=shrink)
    return y.permute(0, 2, 3, 1)


# --------------------------------------------------------------------------- building blocks


class ChannelAttention(nn.Module):
    """Official ``CALayer``: squeeze-and-excitation on NHWC via :class:`gatelab.core.SqueezeExcite`.

    ``y = x * sigmoid(W_2 relu(W_1 mean_hw(x) + b_1) + b_2)``, ``W_1`` ``[C/r, C]``. The official
    1x1 convs on the pooled ``[B, 1, 1, C]`` vector are the SE's ``fc1``/``fc2`` (same numbers).
    """

    def __init__(self, channels: int, reduction: int = 4, *, bias: bool = True) -> None:
        super().__init__()
        if channels // reduction < 1:
            raise ConfigError(f"ChannelAttention: channels {channels} // reduction {reduction} is 0")
        self.se = SqueezeExcite(channels, channels // reduction, act="relu", gate_act="sigmoid", bias=bias)
        for fc in (self.se.fc1, self.se.fc2):  # Flax Conv1x1 init
            _lecun_normal_(fc.weight, fc.in_features)
            if fc.bias is not None:
                nn.init.zeros_(fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.se(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class RCAB(nn.Module):
    """Residual channel attention block: ``x + CA(Conv3x3(lrelu(Conv3x3(LN(x)))))`` (NHWC)."""

    def __init__(self, channels: int, reduction: int, lrelu_slope: float, *, bias: bool = True) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=_LN_EPS)
        self.conv1 = _Conv(channels, channels, 3, bias=bias)
        self.act = nn.LeakyReLU(lrelu_slope)
        self.conv2 = _Conv(channels, channels, 3, bias=bias)
        self.channel_attention = ChannelAttention(channels, reduction, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.act(self.conv1(self.norm(x))))
        return self.channel_attention(y) + x


class RDCAB(nn.Module):
    """Residual dense channel attention block: ``x + CA(MLP(LN(x)))`` (NHWC), MLP width ``C``."""

    def __init__(self, channels: int, reduction: int, *, bias: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=_LN_EPS)
        self.fc1 = _dense(channels, channels, bias, _DENSE_STD)
        self.act = nn.GELU(approximate="tanh")
        self.drop = nn.Dropout(dropout)
        self.fc2 = _dense(channels, channels, bias, _DENSE_STD)
        self.channel_attention = ChannelAttention(channels, reduction, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc2(self.drop(self.act(self.fc1(self.norm(x)))))
        return self.channel_attention(y) + x


@dataclasses.dataclass(frozen=True)
class _Level:
    """Per-level settings shared by the blocks of one resolution."""

    channels: int
    block: tuple[int, int]
    grid: tuple[int, int]


class _Groups(nn.Module):
    """``num_groups x [MAB (optional), RCAB | RDCAB]`` plus the long skip, after a 1x1 conv in."""

    def __init__(self, cin: int, level: _Level, cfg: MaximConfig, *, dense: bool, use_mab: bool) -> None:
        super().__init__()
        c = level.channels
        self.conv_in = _dense(cin, c, cfg.bias)
        self.mab = nn.ModuleList()
        self.cab = nn.ModuleList()
        for _ in range(cfg.num_groups):
            if use_mab:
                self.mab.append(
                    MultiAxisGatedMLP(
                        c,
                        level.block,
                        level.grid,
                        act="gelu_tanh",
                        bias=cfg.bias,
                        dropout=cfg.dropout,
                        input_proj_factor=cfg.input_proj_factor,
                        block_gmlp_factor=cfg.block_gmlp_factor,
                        grid_gmlp_factor=cfg.grid_gmlp_factor,
                        norm_eps=_LN_EPS,
                    )
                )
            if dense:
                self.cab.append(RDCAB(c, cfg.channels_reduction, bias=cfg.bias, dropout=cfg.dropout))
            else:
                self.cab.append(RCAB(c, cfg.channels_reduction, cfg.lrelu_slope, bias=cfg.bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(x)
        shortcut = x
        for g, cab in enumerate(self.cab):
            if len(self.mab):
                x = self.mab[g](x)
            x = cab(x)
        return x + shortcut


def _cgb(cin: int, cgate: int, level: _Level, cfg: MaximConfig, upsample_y: bool) -> CrossGatingBlock:
    return CrossGatingBlock(
        cin,
        cgate,
        level.channels,
        level.block,
        level.grid,
        act="gelu_tanh",
        bias=cfg.bias,
        dropout=cfg.dropout,
        upsample_y=upsample_y,
        input_proj_factor=cfg.input_proj_factor,
        norm_eps=_LN_EPS,
    )


class EncoderBlock(nn.Module):
    """Official ``UNetEncoderBlock`` (NHWC): ``[x; skip]`` -> groups -> (CGB with enc+dec) -> down.

    Returns ``(down, bridge)`` with ``down`` the 4x4 stride-2 conv of ``bridge`` (or ``bridge``
    alone when ``downsample=False``, as inside the decoder block).
    """

    def __init__(
        self, cin: int, level: _Level, cfg: MaximConfig, *, downsample: bool, cross_gating: bool
    ) -> None:
        super().__init__()
        self.groups = _Groups(cin, level, cfg, dense=False, use_mab=cfg.use_global_mlp)
        c = level.channels
        self.cross_gating = _cgb(c, c, level, cfg, upsample_y=False) if cross_gating else None
        self.down = _Conv(c, c, 4, stride=2, bias=cfg.bias) if downsample else None

    def forward(
        self,
        x: torch.Tensor,
        skip: torch.Tensor | None = None,
        enc: torch.Tensor | None = None,
        dec: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if skip is not None:
            x = torch.cat((x, skip), dim=-1)
        x = self.groups(x)
        if self.cross_gating is not None:
            if enc is None or dec is None:
                raise ValueError("EncoderBlock: a cross-gating encoder block needs enc and dec features")
            x, _ = self.cross_gating(x, enc + dec)
        if self.down is None:
            return x, x
        return self.down(x), x


class DecoderBlock(nn.Module):
    """Official ``UNetDecoderBlock``: ``ConvT_up(x)``, then an encoder block (no down) on ``[x; bridge]``."""

    def __init__(self, cin: int, cbridge: int, level: _Level, cfg: MaximConfig) -> None:
        super().__init__()
        self.up = _ConvUp(cin, level.channels, bias=cfg.bias)
        self.block = EncoderBlock(level.channels + cbridge, level, cfg, downsample=False, cross_gating=False)

    def forward(self, x: torch.Tensor, bridge: torch.Tensor) -> torch.Tensor:
        return self.block(self.up(x), skip=bridge)[0]


class BottleneckBlock(nn.Module):
    """Official ``BottleneckBlock``: 1x1 conv in, ``num_groups x [MAB, RDCAB]``, long skip."""

    def __init__(self, cin: int, level: _Level, cfg: MaximConfig) -> None:
        super().__init__()
        self.groups = _Groups(cin, level, cfg, dense=True, use_mab=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.groups(x)


class UpSampleRatio(nn.Module):
    """Official ``UpSampleRatio``: bilinear resize by ``ratio`` (a power of 2), then a 1x1 conv."""

    def __init__(self, cin: int, cout: int, ratio: float, *, bias: bool = True) -> None:
        super().__init__()
        self.ratio = ratio
        self.proj = _dense(cin, cout, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[1], x.shape[2]
        x = _nhwc_resize(x, (int(h * self.ratio), int(w * self.ratio)), "bilinear")
        return self.proj(x)

    def extra_repr(self) -> str:
        return f"ratio={self.ratio}"


class SAM(nn.Module):
    r"""Supervised attention module (MPRNet, Zamir et al. 2021) between stages (NHWC).

    .. code-block:: text

        out = Conv3x3(x) (+ image if residual)          the stage's restored image   [B, H, W, C_out]
        g   = sigmoid(Conv3x3(out))                     attention from the image     [B, H, W, F]
        feat = Conv3x3(x) * g + x                       features for the next stage  [B, H, W, F]

    The gate ``g`` is recorded with :func:`gatelab.core.record_gate`.
    """

    def __init__(self, channels: int, out_channels: int, *, residual: bool, bias: bool = True) -> None:
        super().__init__()
        self.residual = residual
        self.conv_feat = _Conv(channels, channels, 3, bias=bias)
        self.conv_out = _Conv(channels, out_channels, 3, bias=bias)
        self.conv_gate = _Conv(out_channels, channels, 3, bias=bias)

    def forward(self, x: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.conv_feat(x)
        out = self.conv_out(x)
        if self.residual:
            out = out + image
        g = torch.sigmoid(self.conv_gate(out))
        record_gate(self, g)
        return feat * g + x, out


# --------------------------------------------------------------------------- config and model


#: a block / grid size: ``(h, w)``, or one int for a square
Pair = Annotated[
    PositiveInt | tuple[PositiveInt, PositiveInt], Allowed("a positive integer or a pair [h, w] of them")
]
_PAIRS = ("block_size_hr", "block_size_lr", "grid_size_hr", "grid_size_lr")
_S = dict(features=32, depth=3, num_groups=2, num_bottleneck_blocks=2)
_M = dict(features=64, depth=3, num_groups=2, num_bottleneck_blocks=2)


@dataclasses.dataclass(frozen=True, kw_only=True)
class MaximConfig(ModelConfig):
    """Hyper-parameters of :class:`Maxim`, named as the official ``MAXIM`` Flax module except
    ``bias`` (official ``use_bias``) and ``dropout`` (official ``dropout_rate``).

    The official class defaults (``features=64, num_stages=2, num_groups=1, num_supervision_scales=1,
    num_bottleneck_blocks=1``) are overridden by its named variants (``S-1..3``, ``M-1..3``) and by
    ``run_eval.py`` (``num_supervision_scales=3``); here the defaults are MAXIM-2S as evaluated.

    Fields:
        features: ``F``, the channels of UNet level 0 (level ``i`` has ``2^i F``).
        depth: UNet levels per stage (down-samplings by 2).
        num_stages: stages ``S`` (each a full UNet; 1-3 in the paper).
        num_groups: ``[MAB, RCAB | RDCAB]`` groups per encoder/decoder/bottleneck block.
        bias: additive biases of every convolution and Dense (official ``use_bias``).
        num_supervision_scales: multi-scale inputs/outputs (``<= depth``; ``run_eval.py``: 3).
        lrelu_slope: negative slope of the RCABs' leaky ReLU.
        use_global_mlp: MABs in the encoder/decoder blocks (the bottleneck always has them).
        use_cross_gating: cross-gating blocks in the skips and between stages (else 1x1 convs).
        high_res_stages: levels ``i < high_res_stages`` use the ``*_hr`` block/grid sizes.
        block_size_hr, block_size_lr, grid_size_hr, grid_size_lr: ``(h, w)`` of the MAB's local
            blocks and global grid at high / low resolution (an int means a square).
        num_bottleneck_blocks: bottleneck blocks at ``H / 2^depth``.
        block_gmlp_factor, grid_gmlp_factor: width factors of the block / grid gMLP branches.
        input_proj_factor: width factor of the MAB's / CGB's input projection.
        channels_reduction: squeeze-excite reduction ``r`` of the channel attention.
        in_channels: image channels (ours; 3 RGB, 1 grey).
        num_outputs: channels of every output image (official default 3).
        dropout: dropout of the gMLP and RDCAB MLPs (official ``dropout_rate``).
        zero_init_heads: (ours, default off = the official init) zero-initialise the convolutions
            that produce the output images, so a model with the input residual starts as the
            identity: the official LeCun init makes the untrained outputs large (|values| ~ 10),
            which costs a short training run many steps to undo.
        check_finite: (ours, default off) raise on NaN/inf input values, naming the first
            (a full pass over the input per call); non-float input is always an error.

    Presets: the official variants (``Model(variant=...)`` in ``maxim/models/maxim.py``) with the
    ``run_eval.py`` settings (``num_supervision_scales=3``, 3 outputs): ``S-1``, ``S-2``, ``S-3``,
    ``M-1``, ``M-2``, ``M-3``; their parameter counts are in the module docstring's table (S-2
    14,176,178, S-3 22,212,795). With ``num_supervision_scales=1`` instead they have exactly the
    counts quoted in the official code (:data:`MAXIM_OFFICIAL_PARAMS`, e.g. S-3 20,599,145).
    """

    features: PositiveInt = 32
    depth: PositiveInt = 3
    num_stages: PositiveInt = 2
    num_groups: PositiveInt = 2
    bias: bool = True
    num_supervision_scales: PositiveInt = 3
    lrelu_slope: NonNegativeFloat = 0.2
    use_global_mlp: bool = True
    use_cross_gating: bool = True
    high_res_stages: NonNegativeInt = 2
    block_size_hr: Pair = (16, 16)
    block_size_lr: Pair = (8, 8)
    grid_size_hr: Pair = (16, 16)
    grid_size_lr: Pair = (8, 8)
    num_bottleneck_blocks: NonNegativeInt = 2
    block_gmlp_factor: PositiveInt = 2
    grid_gmlp_factor: PositiveInt = 2
    input_proj_factor: PositiveInt = 2
    channels_reduction: PositiveInt = 4
    in_channels: PositiveInt = 3
    num_outputs: PositiveInt = 3
    dropout: Dropout = 0.0
    zero_init_heads: bool = False
    check_finite: bool = False

    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        # parameters as built (3 supervision scales): see the module docstring's table
        "S-1": dict(_S, num_stages=1),  # 6,139,561
        "S-2": dict(_S, num_stages=2),  # 14,176,178 (deraining, dehazing, enhancement)
        "S-3": dict(_S, num_stages=3),  # 22,212,795 (denoising, deblurring)
        "M-1": dict(_M, num_stages=1),  # 19,464,265
        "M-2": dict(_M, num_stages=2),  # 43,227,986
        "M-3": dict(_M, num_stages=3),  # 66,991,707
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in _PAIRS:  # a square size given as one int
            v = getattr(self, name)
            if isinstance(v, int):
                object.__setattr__(self, name, (v, v))

    def check(self) -> None:
        if self.num_supervision_scales > self.depth:
            raise ConfigError(
                f"MaximConfig.num_supervision_scales={self.num_supervision_scales}: must be <= "
                f"depth={self.depth} (one input/output scale per UNet level)"
            )

    def level(self, i: int) -> _Level:
        """Channels, block and grid size of UNet level ``i`` (resolution ``H / 2^i``)."""
        hr = i < self.high_res_stages
        return _Level(
            channels=(2**i) * self.features,
            block=self.block_size_hr if hr else self.block_size_lr,  # type: ignore[arg-type]
            grid=self.grid_size_hr if hr else self.grid_size_lr,  # type: ignore[arg-type]
        )

    @property
    def size_multiple(self) -> int:
        """Smallest ``m`` such that every ``H, W`` divisible by ``m`` is a valid input size."""
        m = 2**self.depth  # the down-sampling convs need even sizes at every level
        for i in range(self.depth):
            lv = self.level(i)
            for a in (*lv.block, *lv.grid):
                m = math.lcm(m, (2**i) * a)
        for a in (*self.block_size_lr, *self.grid_size_lr):  # type: ignore[misc]  # bottleneck at H / 2^depth
            m = math.lcm(m, (2**self.depth) * a)
        return m


# Parameter counts quoted in the official maxim/models/maxim.py: the presets with num_supervision_scales=1
# (tests check ours equal them; the presets themselves, with 3 scales, are larger: module docstring).
MAXIM_OFFICIAL_PARAMS: dict[str, int] = {
    "S-1": 6_108_515,
    "S-2": 13_353_830,
    "S-3": 20_599_145,
    "M-1": 19_361_219,
    "M-2": 40_839_110,
    "M-3": 62_317_001,
}


class _Stage(nn.Module):
    """One MAXIM stage: input convs (+ SAM fusion), encoder, bottleneck, cross-gated skips, decoder."""

    def __init__(self, cfg: MaximConfig, index: int) -> None:
        super().__init__()
        self.index = index
        self.last = index == cfg.num_stages - 1
        n, d = cfg.num_supervision_scales, cfg.depth
        lv = [cfg.level(i) for i in range(d)]
        # the build order is the parameter order, in which the random init is drawn
        self._build_inputs(cfg, lv)
        self._build_encoder(cfg, lv)
        self._build_skips(cfg, lv)
        self._build_decoder(cfg, lv)
        self.residual = cfg.num_outputs == cfg.in_channels
        self.n_scales = n
        self.depth = d
        self.use_cross_gating = cfg.use_cross_gating

    def _build_inputs(self, cfg: MaximConfig, lv: list[_Level]) -> None:
        """Per input scale: a 3x3 conv of the image, fused (stages > 0) with the previous SAM features."""
        n, b = cfg.num_supervision_scales, cfg.bias
        self.input_conv = nn.ModuleList(_Conv(cfg.in_channels, lv[i].channels, 3, bias=b) for i in range(n))
        self.input_fuse: nn.ModuleList | None = None
        if self.index > 0 and cfg.use_cross_gating:
            self.input_fuse = nn.ModuleList(
                _cgb(lv[i].channels, lv[i].channels, lv[i], cfg, upsample_y=False) for i in range(n)
            )
        elif self.index > 0:
            self.input_fuse = nn.ModuleList(_dense(2 * lv[i].channels, lv[i].channels, b) for i in range(n))

    def _build_encoder(self, cfg: MaximConfig, lv: list[_Level]) -> None:
        """Encoder blocks (level ``i`` takes ``[x; input features of scale i]``) and the bottleneck."""
        d = cfg.depth
        self.encoders = nn.ModuleList()
        for i in range(d):
            cin = cfg.features if i == 0 else lv[i - 1].channels
            if i < cfg.num_supervision_scales:
                cin += lv[i].channels
            self.encoders.append(EncoderBlock(cin, lv[i], cfg, downsample=True, cross_gating=self.index > 0))
        bott = _Level(lv[d - 1].channels, cfg.block_size_lr, cfg.grid_size_lr)  # type: ignore[arg-type]
        self.bottleneck = nn.ModuleList(
            BottleneckBlock(lv[d - 1].channels, bott, cfg) for _ in range(cfg.num_bottleneck_blocks)
        )

    def _build_skips(self, cfg: MaximConfig, lv: list[_Level]) -> None:
        """Cross-gated skips, built for ``i = depth-1 .. 0`` (stored in that order)."""
        d, b = cfg.depth, cfg.bias
        self.skip_resize = nn.ModuleList()
        self.skip_fuse = nn.ModuleList()
        g = lv[d - 1].channels
        for i in reversed(range(d)):
            c = lv[i].channels
            self.skip_resize.append(
                nn.ModuleList(UpSampleRatio(lv[j].channels, c, 2.0 ** (j - i), bias=b) for j in range(d))
            )
            if cfg.use_cross_gating:
                self.skip_fuse.append(_cgb(d * c, g, lv[i], cfg, upsample_y=True))
                g = c
            else:
                self.skip_fuse.append(nn.Sequential(_dense(d * c, c, b), _Conv(c, c, 3, bias=b)))

    def _build_decoder(self, cfg: MaximConfig, lv: list[_Level]) -> None:
        """Decoder blocks for ``i = depth-1 .. 0`` (skip ``j``, ordered ``depth-1 .. 0``, sits at
        level ``depth-1-j``) and the output heads (SAM, or a 3x3 conv in the last stage)."""
        d, b = cfg.depth, cfg.bias
        self.dec_resize = nn.ModuleList()
        self.decoders = nn.ModuleList()
        self.heads = nn.ModuleList()
        residual = cfg.num_outputs == cfg.in_channels
        for i in reversed(range(d)):
            c = lv[i].channels
            self.dec_resize.append(
                nn.ModuleList(
                    UpSampleRatio(lv[d - 1 - j].channels, c, 2.0 ** (d - j - 1 - i), bias=b) for j in range(d)
                )
            )
            cin = lv[d - 1].channels if i == d - 1 else lv[i + 1].channels
            self.decoders.append(DecoderBlock(cin, d * c, lv[i], cfg))
            if i < cfg.num_supervision_scales:
                if self.last:
                    self.heads.append(_Conv(c, cfg.num_outputs, 3, bias=b))
                else:
                    self.heads.append(SAM(c, cfg.num_outputs, residual=residual, bias=b))
        if cfg.zero_init_heads:
            for head in self.heads:
                conv = head if isinstance(head, _Conv) else head.conv_out
                nn.init.zeros_(conv.weight)
                if conv.bias is not None:
                    nn.init.zeros_(conv.bias)

    def forward(
        self,
        images: list[torch.Tensor],
        sam_feats: list[torch.Tensor],
        encs_prev: list[torch.Tensor],
        decs_prev: list[torch.Tensor],
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """``images[s]`` NHWC inputs per scale; previous stage's SAM features (per scale, fine
        first), encoder bridges and decoder features (per level, fine first). Returns
        ``(outputs coarse->fine, sam features fine-first, encoder bridges, decoder features)``."""
        n, d = self.n_scales, self.depth
        x_scales = []
        for i in range(n):
            xs = self.input_conv[i](images[i])
            if self.input_fuse is not None:
                if self.use_cross_gating:
                    xs = self.input_fuse[i](xs, sam_feats[i])[0]
                else:
                    xs = self.input_fuse[i](torch.cat((xs, sam_feats[i]), dim=-1))
            x_scales.append(xs)
        x = x_scales[0]
        encs = []
        for i in range(d):
            skip = x_scales[i] if i < n else None
            enc_p = encs_prev[i] if self.index > 0 else None
            dec_p = decs_prev[i] if self.index > 0 else None
            x, bridge = self.encoders[i](x, skip=skip, enc=enc_p, dec=dec_p)
            encs.append(bridge)
        for block in self.bottleneck:
            x = block(x)
        g = x
        skips = []  # ordered depth-1 .. 0
        for k in range(d):
            signal = torch.cat([up(e) for up, e in zip(self.skip_resize[k], encs)], dim=-1)
            if self.use_cross_gating:
                s, g = self.skip_fuse[k](signal, g)
            else:
                s = self.skip_fuse[k](signal)
            skips.append(s)
        outputs, decs, sams = [], [], []
        h = 0
        for k in range(d):
            i = d - 1 - k
            signal = torch.cat([up(s) for up, s in zip(self.dec_resize[k], skips)], dim=-1)
            x = self.decoders[k](x, signal)
            decs.append(x)
            if i < n:
                head = self.heads[h]
                h += 1
                if self.last:
                    out = head(x)
                    if self.residual:
                        out = out + images[i]
                else:
                    feat, out = head(x, images[i])
                    sams.append(feat)
                outputs.append(out)
        return outputs, sams[::-1], encs, decs[::-1]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Pad ``x`` ``[B, C, H, W]`` symmetrically to ``H, W`` divisible by ``multiple``.

    Reflect padding (the official ``mod_padding_symmetric``), falling back to edge replication
    when the image is too small to reflect. Returns the padded tensor and ``(top, bottom, left,
    right)``.
    """
    h, w = x.shape[-2], x.shape[-1]
    ph, pw = (-h) % multiple, (-w) % multiple
    top, left = ph // 2, pw // 2
    pads = (top, ph - top, left, pw - left)
    if ph == 0 and pw == 0:
        return x, pads
    mode = "reflect" if max(top, ph - top) < h and max(left, pw - left) < w else "replicate"
    return F.pad(x, (left, pw - left, top, ph - top), mode=mode), pads


class Maxim(PretrainedMixin, nn.Module):
    """MAXIM multi-stage, multi-scale restoration model (see the module docstring).

    Args:
        config: a :class:`MaximConfig` (or a mapping of its fields); ``None``: the defaults.
        **overrides: config fields replacing ``config``'s (``Maxim(features=16)``, or
            ``Maxim(MaximConfig.from_preset("S-3"), dropout=0.1)``); unknown keys and bad values
            raise :class:`~gatelab.core.config.ConfigError`.

    Shapes: ``x`` ``[B, in_channels, H, W]`` of any ``H, W >= 1`` (padded internally to
    :attr:`size_multiple`). Returns ``outputs[stage][scale]``, a list of ``num_stages`` lists
    of ``num_supervision_scales`` tensors ``[B, num_outputs, ceil(H/2^s), ceil(W/2^s)]``, scales
    ordered coarse to fine: ``outputs[-1][-1]`` is the restored image (also :meth:`restore`).
    Gates recorded (:func:`gatelab.core.capture_gates`): every MAB's block/grid gates, every
    CGB's ``gate_x``/``gate_y``, every SE channel gate and the SAM attention maps.
    """

    config_class = MaximConfig

    def __init__(self, config: MaximConfig | Mapping[str, Any] | None = None, /, **overrides: Any) -> None:
        super().__init__()
        self.config = cfg = MaximConfig.build(config, **overrides)
        self.size_multiple = cfg.size_multiple
        self.stages = nn.ModuleList(_Stage(cfg, k) for k in range(cfg.num_stages))

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        cfg = self.config
        if x.dim() != 4 or x.shape[1] != cfg.in_channels:
            raise ValueError(
                f"Maxim: input must be [B, C={cfg.in_channels}, H, W], got shape {tuple(x.shape)}"
            )
        check_float_input("Maxim", "x", x, check_finite=cfg.check_finite)
        h, w = x.shape[-2], x.shape[-1]
        xp, (top, _, left, _) = pad_to_multiple(x, self.size_multiple)
        hp, wp = xp.shape[-2], xp.shape[-1]
        img = xp.permute(0, 2, 3, 1)
        images = [img] + [
            _nhwc_resize(img, (hp // 2**s, wp // 2**s), "nearest")
            for s in range(1, cfg.num_supervision_scales)
        ]
        sams: list[torch.Tensor] = []
        encs: list[torch.Tensor] = []
        decs: list[torch.Tensor] = []
        outputs = []
        for stage in self.stages:
            outs, sams, encs, decs = stage(images, sams, encs, decs)
            outputs.append(outs)
        n = cfg.num_supervision_scales
        result = []
        for outs in outputs:
            row = []
            for k, o in enumerate(outs):
                s = n - 1 - k  # scale of this output
                f = 2**s
                t0, l0 = top // f, left // f
                row.append(o[:, t0 : t0 + -(-h // f), l0 : l0 + -(-w // f)].permute(0, 3, 1, 2))
            result.append(row)
        return result

    def restore(
        self,
        x: torch.Tensor,
        *,
        padding: Literal["model", "run_eval"] = "model",
        geometric_ensemble: bool = False,
    ) -> torch.Tensor:
        """The final restored image ``[B, num_outputs, H, W]`` (last stage, full scale).

        Defaults: one forward pass, padded as :meth:`forward` does. ``padding="run_eval"`` pads
        odd sizes exactly as the official ``run_eval.py`` (make even, then symmetric reflect to
        64) and ``geometric_ensemble=True`` averages its x8 rotated / flipped views; both go
        through :func:`gatelab.vision.tasks.maxim_inference.restore` (no gradients).
        """
        if padding == "model" and not geometric_ensemble:
            return self(x)[-1][-1]
        from gatelab.vision.tasks.maxim_inference import restore

        return restore(self, x, padding=padding, geometric_ensemble=geometric_ensemble)


# --------------------------------------------------------------------------- tiled inference


def _ramp(n: int, lo_overlap: int, hi_overlap: int, margin: int, dtype: torch.dtype) -> torch.Tensor:
    """1-D blend weights of a tile of length ``n``: 0 within ``margin`` of an overlapped edge,
    rising linearly to 1 across the rest of the overlap; 1 at image borders."""
    w = torch.ones(n, dtype=dtype)
    pos = torch.arange(n, dtype=dtype) + 0.5
    if lo_overlap > 0:
        w = torch.minimum(w, ((pos - margin) / max(lo_overlap - 2 * margin, 1)).clamp(0, 1))
    if hi_overlap > 0:
        w = torch.minimum(w, (((n - pos) - margin) / max(hi_overlap - 2 * margin, 1)).clamp(0, 1))
    return w


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)
    return starts


def tiled_forward(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    tile: int = 256,
    overlap: int = 32,
    margin: int | None = None,
) -> torch.Tensor:
    """Apply an image-to-image ``fn`` to ``x`` ``[B, C, H, W]`` tile by tile, blending overlaps.

    Tiles of ``tile x tile`` pixels (smaller images: one tile) start every ``tile - overlap``
    pixels (the last tile flush with the border). Each tile's output is weighted by a separable
    ramp that is 0 within ``margin`` pixels of an edge shared with a neighbour tile and rises
    linearly to 1 across the rest of the overlap (1 at the image border); the result is the
    weighted mean. Default ``margin = overlap // 4``.

    Exactness: for an ``fn`` whose receptive field has radius ``r <= margin`` (e.g. a conv net
    without global operations) and that treats every pixel alike, the result equals ``fn(x)``
    up to float rounding, because only tile pixels at least ``margin`` away from a cut get
    weight. MAXIM's grid branch mixes the whole image, so for MAXIM this is an approximation
    (how close is measured in ``docs/results``).

    Returns ``[B, C_out, H, W]``; ``fn`` must preserve the spatial size.
    """
    if overlap < 0 or tile < 1 or overlap >= tile:
        raise ValueError(f"tiled_forward: need 0 <= overlap < tile, got tile={tile}, overlap={overlap}")
    margin = overlap // 4 if margin is None else margin
    if margin < 0 or (overlap > 0 and 2 * margin >= overlap) or (overlap == 0 and margin != 0):
        raise ValueError(
            f"tiled_forward: need 0 <= 2 * margin < overlap, got margin={margin}, overlap={overlap}"
        )
    b, _, h, w = x.shape
    hs, ws = _starts(h, tile, overlap), _starts(w, tile, overlap)
    out: torch.Tensor | None = None
    weight = torch.zeros(1, 1, h, w, dtype=x.dtype, device=x.device)
    for iy, y0 in enumerate(hs):
        th = min(tile, h)
        lo_y = (hs[iy - 1] + th - y0) if iy > 0 else 0
        hi_y = (y0 + th - hs[iy + 1]) if iy + 1 < len(hs) else 0
        wy = _ramp(th, lo_y, hi_y, margin, x.dtype)
        for ix, x0 in enumerate(ws):
            tw = min(tile, w)
            lo_x = (ws[ix - 1] + tw - x0) if ix > 0 else 0
            hi_x = (x0 + tw - ws[ix + 1]) if ix + 1 < len(ws) else 0
            wx = _ramp(tw, lo_x, hi_x, margin, x.dtype)
            y = fn(x[:, :, y0 : y0 + th, x0 : x0 + tw])
            if y.shape[-2:] != (th, tw):
                raise ValueError(
                    f"tiled_forward: fn changed the tile size {(th, tw)} to {tuple(y.shape[-2:])}"
                )
            if out is None:
                out = torch.zeros(b, y.shape[1], h, w, dtype=y.dtype, device=y.device)
            wt = (wy[:, None] * wx[None, :]).to(y.device)
            out[:, :, y0 : y0 + th, x0 : x0 + tw] += y * wt
            weight[:, :, y0 : y0 + th, x0 : x0 + tw] += wt
    assert out is not None
    return out / weight


# --------------------------------------------------------------------------- factories (registered in gatelab.vision.registry)


def _example_inputs(model: nn.Module, batch: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    cfg: MaximConfig = model.config  # type: ignore[assignment]
    m = model.size_multiple  # type: ignore[attr-defined]
    return (torch.rand(batch, cfg.in_channels, m, m),), {}


# a small config with every component (with >= 2 stages: SAM and stage fusion; 2 scales, cross gating);
# the stage count comes from the registry entry's preset (MAXIM-2S by default)
_TINY = dict(
    features=4,
    depth=2,
    num_groups=1,
    num_supervision_scales=2,
    num_bottleneck_blocks=1,
    high_res_stages=1,
    block_size_hr=(2, 2),
    block_size_lr=(2, 2),
    grid_size_hr=(2, 2),
    grid_size_lr=(2, 2),
)

