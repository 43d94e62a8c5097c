"""Spatial gating: gMLP's spatial gating unit (Liu et al. 2021) and MAXIM's multi-axis gated MLP and
cross-gating blocks (Tu et al. 2022).

MAXIM layers use the official code's NHWC layout ``[B, H, W, C]``. Blocks and grids are formed
with reshape/permute (the official ``block_images_einops`` pattern), never a Python loop:

* block partition with block size ``(fh, fw)``: ``[B, (gh fh), (gw fw), C] -> [B, gh*gw, fh*fw, C]``;
  a gMLP over axis -2 mixes the ``fh*fw`` pixels *inside* each block (local mixing);
* grid partition with grid size ``(gh, gw)``: ``[B, (gh fh), (gw fw), C] -> [B, fh*fw, gh*gw, C]``;
  a gMLP over axis -2 mixes the ``gh*gw`` pixels that share an offset inside their cell, one per
  cell of a fixed ``gh x gw`` grid (dilated global mixing). The official code partitions into
  ``[B, gh*gw, fh*fw, C]`` and mixes over axis -3; the token order (row-major over ``gh, gw``)
  and so the token-mixing weight matrix are the same.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .layers import nd
from .layers.activations import ActLike, create_act
from .layers.capture import record_gate
from .layers.checks import check_positive_int, check_positive_ints
from .layers.fusion import is_plain

__all__ = ["CrossGatingBlock", "MultiAxisGatedMLP", "SpatialGatingUnit"]

# MAXIM's Dense kernel initialiser in the gMLP layers (``nn.initializers.normal(stddev=2e-2)``)
_MAXIM_STD = 2e-2


def _lecun_normal_(weight: torch.Tensor, fan_in: int) -> None:
    """Flax's default kernel init: truncated normal (+-2 std) with variance ``1 / fan_in``."""
    std = math.sqrt(1.0 / fan_in) / 0.87962566103423978  # std of a unit normal truncated at +-2
    nn.init.trunc_normal_(weight, 0.0, std, -2.0 * std, 2.0 * std)


def _maxim_dense(dim: int, out_dim: int, bias: bool, factory_kwargs: dict) -> nn.Linear:
    lin = nn.Linear(dim, out_dim, bias=bias, **factory_kwargs)
    nn.init.normal_(lin.weight, 0.0, _MAXIM_STD)
    if lin.bias is not None:
        nn.init.zeros_(lin.bias)
    return lin


def _flax_dense(dim: int, out_dim: int, bias: bool, factory_kwargs: dict) -> nn.Linear:
    lin = nn.Linear(dim, out_dim, bias=bias, **factory_kwargs)
    _lecun_normal_(lin.weight, dim)
    if lin.bias is not None:
        nn.init.zeros_(lin.bias)
    return lin


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    h, w = nd.as_tuple(value, 2, name)
    return h, w


def _block_partition(x: torch.Tensor, fh: int, fw: int) -> torch.Tensor:
    """``[B, H, W, C] -> [B, (H/fh)(W/fw), fh*fw, C]``: tokens of one block on axis -2."""
    b, h, w, c = x.shape
    gh, gw = h // fh, w // fw
    return x.view(b, gh, fh, gw, fw, c).permute(0, 1, 3, 2, 4, 5).reshape(b, gh * gw, fh * fw, c)


def _block_merge(x: torch.Tensor, h: int, w: int, fh: int, fw: int) -> torch.Tensor:
    """Inverse of :func:`_block_partition`."""
    b, c = x.shape[0], x.shape[-1]
    gh, gw = h // fh, w // fw
    return x.view(b, gh, gw, fh, fw, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)


def _grid_partition(x: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
    """``[B, H, W, C] -> [B, (H/gh)(W/gw), gh*gw, C]``: the ``gh x gw`` grid's tokens on axis -2."""
    b, h, w, c = x.shape
    fh, fw = h // gh, w // gw
    return x.view(b, gh, fh, gw, fw, c).permute(0, 2, 4, 1, 3, 5).reshape(b, fh * fw, gh * gw, c)


def _grid_merge(x: torch.Tensor, h: int, w: int, gh: int, gw: int) -> torch.Tensor:
    """Inverse of :func:`_grid_partition`."""
    b, c = x.shape[0], x.shape[-1]
    fh, fw = h // gh, w // gw
    return x.view(b, fh, fw, gh, gw, c).permute(0, 3, 1, 4, 2, 5).reshape(b, h, w, c)


def _check_nhwc(x: torch.Tensor, channels: int, name: str, who: str) -> None:
    if x.dim() != 4 or x.shape[-1] != channels:
        raise ValueError(
            f"{who}: {name} must be NHWC [B, H, W, C={channels}], got {name}.shape={tuple(x.shape)}"
        )


def _check_divisible(x: torch.Tensor, size: tuple[int, int], what: str, name: str, who: str) -> None:
    h, w = x.shape[1], x.shape[2]
    if h % size[0] or w % size[1]:
        raise ValueError(
            f"{who}: H and W of {name}.shape={tuple(x.shape)} must be divisible by {what}={size} "
            "(pad the input, as the MAXIM model does)"
        )


def _token_mix(x: torch.Tensor, proj: nn.Module) -> torch.Tensor:
    """``proj`` applied along the token axis -2 of ``x`` ``[..., N, d]``: ``W x + b`` for ``W`` ``[N, N]``.

    A plain ``nn.Linear`` is applied as ``W @ x`` (no transposes); hooks on it or a replacement
    (LoRA, quantised) make it a call of ``proj`` on the transposed tokens.
    """
    if not is_plain(proj, nn.Linear):
        return proj(x.transpose(-1, -2)).transpose(-1, -2)
    out = torch.matmul(proj.weight, x)
    if proj.bias is not None:
        out = out + proj.bias.unsqueeze(-1)
    return out


class SpatialGatingUnit(nn.Module):
    r"""gMLP's spatial gating unit: a linear token-mixing gate on half of the channels.

    .. code-block:: text

        u, v = split(x, 2, dim=-1)                       each [..., N, d]
        g    = gate_act(W LayerNorm(v) + b)              W in R^{N x N} mixes tokens, b in R^N
        out  = u * g                                     [..., N, d]

    ``W`` starts near zero (``N(0, init_std^2)``) and ``b`` at one, so the unit starts as
    ``out ~= u``. With ``causal=True`` ``W`` is lower-triangular (token ``i`` sees tokens
    ``j <= i``), as in the paper's autoregressive models. With ``bias=False`` there is no
    learnable ``b`` and the gate is ``W LayerNorm(v) + 1`` (MAXIM's ``u * (v + 1)``).

    Args:
        dim: channels ``2d`` of the input (even); the output has ``d = dim // 2``.
        num_tokens: the number of tokens ``N`` (fixed: ``W`` is ``N x N``).
        gate_act: optional squashing of the gate (default ``None``: the paper's linear gate).
        bias: learnable per-token bias ``b`` (initialised to 1).
        causal: mask ``W`` to its lower triangle.
        norm_eps: LayerNorm epsilon.
        init_std: standard deviation of ``W``'s initialisation (1e-6: "near zero", as timm).

    Shapes: input ``[*, N, dim]`` (tokens on axis -2), output ``[*, N, dim // 2]``. The gate
    ``g`` ``[*, N, dim // 2]`` is recorded with :func:`gatelab.core.record_gate`.

    Paths: a plain ``nn.Linear`` ``proj`` is applied as ``W @ v`` along the token axis; hooks on
    it or a replacement (LoRA, quantised) make it a call ``proj(v^T)^T``. The causal unit masks
    ``W`` itself, so it reads ``proj.weight`` (hooks on ``proj`` do not fire) and needs an
    ``nn.Linear``.

    Paper: Liu, Dai, So, Le, "Pay Attention to MLPs", NeurIPS 2021 (the ``spatial_gating_unit``
    pseudo-code: split, norm on ``v``, token projection with bias initialised to 1, ``u * v``).

    Deviations: ``gate_act`` is an option (identity by default, as the paper). The bias-free
    variant keeps the constant 1 (MAXIM's ``GridGatingUnit``/``BlockGatingUnit`` add it as a
    constant and initialise their bias at 0: the same function with ``b_ours = b_maxim + 1``).
    """

    def __init__(
        self,
        dim: int,
        num_tokens: int,
        *,
        gate_act: ActLike = None,
        bias: bool = True,
        causal: bool = False,
        norm_eps: float = 1e-5,
        init_std: float = 1e-6,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        if not isinstance(dim, int) or dim < 2 or dim % 2:
            raise ValueError(
                f"SpatialGatingUnit: dim must be a positive even int (split in two), got {dim!r}"
            )
        check_positive_int("SpatialGatingUnit", "num_tokens", num_tokens, allow_bool=True)
        self.dim = dim
        self.num_tokens = num_tokens
        self.causal = causal
        self.bias = bias
        self.init_std = init_std
        self.norm = nn.LayerNorm(dim // 2, eps=norm_eps, **factory_kwargs)
        self.proj = nn.Linear(num_tokens, num_tokens, bias=bias, **factory_kwargs)  # weight [N_out, N_in]
        self.gate_act = create_act(gate_act)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``W ~ N(0, init_std^2)``, ``b = 1``, LayerNorm at identity."""
        self.norm.reset_parameters()
        nn.init.normal_(self.proj.weight, 0.0, self.init_std)
        if self.proj.bias is not None:
            nn.init.ones_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[*, N, dim]`` -> ``[*, N, dim // 2]``."""
        if x.dim() < 2 or x.shape[-2] != self.num_tokens or x.shape[-1] != self.dim:
            raise ValueError(
                f"SpatialGatingUnit: input must be [*, N={self.num_tokens}, dim={self.dim}], got shape {tuple(x.shape)}"
            )
        u, v = x.chunk(2, dim=-1)
        v = self.norm(v)
        if self.causal:  # the mask applies to W itself, so W is read (see the class docstring)
            if type(self.proj) is not nn.Linear:
                raise TypeError(
                    f"SpatialGatingUnit(causal=True) masks proj.weight and needs proj to be an nn.Linear, "
                    f"got {type(self.proj).__name__}"
                )
            g = torch.matmul(self.proj.weight.tril(), v)
            if self.proj.bias is not None:
                g = g + self.proj.bias.unsqueeze(-1)
        else:
            g = _token_mix(v, self.proj)
        if not self.bias:
            g = g + 1.0
        g = self.gate_act(g)
        record_gate(self, g)
        return u * g

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_tokens={self.num_tokens}, causal={self.causal}"


class _GmlpLayer(nn.Module):
    """MAXIM's ``BlockGmlpLayer`` (``axis="block"``) / ``GridGmlpLayer`` (``axis="grid"``) on NHWC.

    ``x + Dropout(W_out SGU(act(W_in LayerNorm(x))))`` on the block/grid partition, where the SGU
    mixes the ``prod(size)`` tokens of a block (``size`` = block size) or of the grid
    (``size`` = grid size).
    """

    def __init__(
        self,
        channels: int,
        size: tuple[int, int],
        axis: str,
        *,
        act: ActLike,
        bias: bool,
        dropout: float,
        factor: int,
        norm_eps: float,
        factory_kwargs: dict,
    ) -> None:
        super().__init__()
        if (channels * factor) % 2:
            raise ValueError(
                f"MultiAxisGatedMLP: {axis} branch width {channels} * {axis}_gmlp_factor {factor} must be even"
            )
        self.axis = axis
        self.size = size
        hidden = channels * factor
        self.norm = nn.LayerNorm(channels, eps=norm_eps, **factory_kwargs)
        self.in_project = _maxim_dense(channels, hidden, bias, factory_kwargs)
        self.act = create_act(act)
        self.gating = SpatialGatingUnit(
            hidden, size[0] * size[1], bias=bias, norm_eps=norm_eps, init_std=_MAXIM_STD, **factory_kwargs
        )
        self.out_project = _maxim_dense(hidden // 2, channels, bias, factory_kwargs)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[1], x.shape[2]
        if self.axis == "block":
            x = _block_partition(x, *self.size)
        else:
            x = _grid_partition(x, *self.size)
        y = self.act(self.in_project(self.norm(x)))
        y = self.dropout(self.out_project(self.gating(y)))
        x = x + y
        if self.axis == "block":
            return _block_merge(x, h, w, *self.size)
        return _grid_merge(x, h, w, *self.size)


class MultiAxisGatedMLP(nn.Module):
    r"""MAXIM's multi-axis gated MLP block (``ResidualSplitHeadMultiAxisGmlpLayer``), NHWC layout.

    .. code-block:: text

        z    = act(W_in LayerNorm(x))                         [B, H, W, p*C],  p = input_proj_factor
        u, v = split(z, 2, dim=-1)                            each [B, H, W, p*C/2]
        u    = GridGmlp(u)      global: gMLP over the gh x gw grid (dilated), grid_gmlp_factor
        v    = BlockGmlp(v)     local:  gMLP inside each fh x fw block,       block_gmlp_factor
        y    = x + Dropout(W_out [u; v])                      [B, H, W, C]

    where ``Gmlp(t) = t + Dropout(W_o SGU(act(W_i LayerNorm(t))))`` on the block/grid partition,
    ``W_i`` expands ``t``'s channels by the branch factor and :class:`SpatialGatingUnit` mixes the
    ``gh*gw`` (grid) or ``fh*fw`` (block) tokens with an ``N x N`` matrix (bias-1 gate, no
    ``gate_act``). The token-mixing matrices are sized by ``grid_size`` / ``block_size``, not by
    the image, so any ``H, W`` divisible by both sizes works.

    Args:
        channels: ``C``.
        block_size: ``(fh, fw)`` (or an int): the local branch mixes within these blocks.
        grid_size: ``(gh, gw)`` (or an int): the global branch mixes across this fixed grid.
        act: activation after each input projection (default ``"gelu_tanh"``: Flax's
            ``nn.gelu`` is the tanh approximation; pass ``"gelu"`` for the exact one).
        bias: ``use_bias`` of every Dense layer and of the token-mixing layers.
        dropout: ``dropout_rate`` after the branch and block output projections.
        input_proj_factor: channel expansion ``p`` before the split (official default 2).
        block_gmlp_factor / grid_gmlp_factor: channel expansion inside each branch (default 2).
        norm_eps: LayerNorm epsilon (Flax's default 1e-6).

    Shapes: ``x`` ``[B, H, W, C]`` (NHWC, as the official code) with ``H, W`` divisible by
    ``block_size`` and by ``grid_size`` (the MAXIM model pads its input; this layer raises).
    Output ``[B, H, W, C]``. The two gates are recorded by the branch SGUs, under
    ``<name>.grid.gating`` with layout ``[B, (H/gh)(W/gw), gh*gw, p*C/2 * grid_factor / 2]`` and
    ``<name>.block.gating`` with layout ``[B, (H/fh)(W/fw), fh*fw, ...]`` (tokens on axis -2).

    Parameters: the official shapes (names differ: ``norm`` = ``LayerNorm_in``, ``grid`` =
    ``GridGmlpLayer``, ``gating.norm`` = ``intermediate_layernorm``, ``gating.proj`` = the
    token Dense); Linear weights are the transposed Flax kernels, and the token biases are the
    official ones plus 1 (see :class:`SpatialGatingUnit`). Initialisation as the official code:
    Dense kernels ``N(0, 0.02^2)``, biases 0 (token biases 1), LayerNorm at identity.

    Paper: Tu, Talebi, Zhang, Yang, Milanfar, Bovik, Li, "MAXIM: Multi-Axis MLP for Image
    Processing", CVPR 2022; official code ``google-research/maxim``, ``maxim/models/maxim.py``.

    Deviations: none in the function. Input sizes that are not multiples of the block/grid size
    raise instead of being padded (padding belongs to the model).
    """

    def __init__(
        self,
        channels: int,
        block_size: int | Sequence[int],
        grid_size: int | Sequence[int],
        *,
        act: ActLike = "gelu_tanh",
        bias: bool = True,
        dropout: float = 0.0,
        input_proj_factor: int = 2,
        block_gmlp_factor: int = 2,
        grid_gmlp_factor: int = 2,
        norm_eps: float = 1e-6,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        check_positive_ints(
            "MultiAxisGatedMLP",
            ("channels", channels),
            ("input_proj_factor", input_proj_factor),
            ("block_gmlp_factor", block_gmlp_factor),
            ("grid_gmlp_factor", grid_gmlp_factor),
            allow_bool=True,
        )
        if (channels * input_proj_factor) % 2:
            raise ValueError(
                f"MultiAxisGatedMLP: channels {channels} * input_proj_factor {input_proj_factor} must be even"
            )
        self.channels = channels
        self.block_size = _pair(block_size, "block_size")
        self.grid_size = _pair(grid_size, "grid_size")
        hidden = channels * input_proj_factor
        branch = dict(act=act, bias=bias, dropout=dropout, norm_eps=norm_eps, factory_kwargs=factory_kwargs)
        self.norm = nn.LayerNorm(channels, eps=norm_eps, **factory_kwargs)
        self.in_project = _maxim_dense(channels, hidden, bias, factory_kwargs)
        self.act = create_act(act)
        self.grid = _GmlpLayer(hidden // 2, self.grid_size, "grid", factor=grid_gmlp_factor, **branch)
        self.block = _GmlpLayer(hidden // 2, self.block_size, "block", factor=block_gmlp_factor, **branch)
        self.out_project = _maxim_dense(hidden, channels, bias, factory_kwargs)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, H, W, C]`` -> ``[B, H, W, C]``."""
        who = "MultiAxisGatedMLP"
        _check_nhwc(x, self.channels, "x", who)
        _check_divisible(x, self.block_size, "block_size", "x", who)
        _check_divisible(x, self.grid_size, "grid_size", "x", who)
        shortcut = x
        u, v = self.act(self.in_project(self.norm(x))).chunk(2, dim=-1)
        y = torch.cat((self.grid(u), self.block(v)), dim=-1)
        return self.dropout(self.out_project(y)) + shortcut

    def extra_repr(self) -> str:
        return f"channels={self.channels}, block_size={self.block_size}, grid_size={self.grid_size}"


class _SpatialGatingWeights(nn.Module):
    """MAXIM's ``GetSpatialGatingWeights``: ``W_out [grid_mix(u); block_mix(v)]`` with
    ``u, v = split(act(W_in LayerNorm(x)))``; token-mixing weights ``N(0, 0.02^2)``, biases 1."""

    def __init__(
        self,
        channels: int,
        block_size: tuple[int, int],
        grid_size: tuple[int, int],
        *,
        act: ActLike,
        bias: bool,
        dropout: float,
        input_proj_factor: int,
        norm_eps: float,
        factory_kwargs: dict,
    ) -> None:
        super().__init__()
        hidden = channels * input_proj_factor
        self.block_size = block_size
        self.grid_size = grid_size
        self.norm = nn.LayerNorm(channels, eps=norm_eps, **factory_kwargs)
        self.in_project = _flax_dense(channels, hidden, bias, factory_kwargs)
        self.act = create_act(act)
        self.grid_proj = nn.Linear(
            grid_size[0] * grid_size[1], grid_size[0] * grid_size[1], bias=bias, **factory_kwargs
        )
        self.block_proj = nn.Linear(
            block_size[0] * block_size[1], block_size[0] * block_size[1], bias=bias, **factory_kwargs
        )
        for proj in (self.grid_proj, self.block_proj):
            nn.init.normal_(proj.weight, 0.0, _MAXIM_STD)
            if proj.bias is not None:
                nn.init.ones_(proj.bias)
        self.out_project = _flax_dense(hidden, channels, bias, factory_kwargs)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[1], x.shape[2]
        u, v = self.act(self.in_project(self.norm(x))).chunk(2, dim=-1)
        u = _grid_merge(
            _token_mix(_grid_partition(u, *self.grid_size), self.grid_proj), h, w, *self.grid_size
        )
        v = _block_merge(
            _token_mix(_block_partition(v, *self.block_size), self.block_proj), h, w, *self.block_size
        )
        return self.dropout(self.out_project(torch.cat((u, v), dim=-1)))


def _check_cross_gating_args(
    in_channels: int, gating_channels: int, out_channels: int, input_proj_factor: int
) -> None:
    """The argument checks of :class:`CrossGatingBlock` (positive widths, even gating width)."""
    check_positive_ints(
        "CrossGatingBlock",
        ("in_channels", in_channels),
        ("gating_channels", gating_channels),
        ("out_channels", out_channels),
        allow_bool=True,
    )
    if (
        not isinstance(input_proj_factor, int)
        or input_proj_factor < 1
        or (out_channels * input_proj_factor) % 2
    ):
        raise ValueError(
            "CrossGatingBlock: out_channels * input_proj_factor must be even, "
            f"got {out_channels} * {input_proj_factor!r}"
        )


def _flax_conv_transpose_2x2(
    in_channels: int, out_channels: int, bias: bool, factory_kwargs: dict
) -> nn.ConvTranspose2d:
    """Stride-2 2x2 transposed conv initialised like Flax's ``ConvTranspose`` (LeCun-normal, zero bias)."""
    conv = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2, bias=bias, **factory_kwargs)
    _lecun_normal_(conv.weight, in_channels * 4)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


class CrossGatingBlock(nn.Module):
    r"""MAXIM's cross-gating MLP block: two feature maps gate each other (NHWC layout).

    .. code-block:: text

        y  = ConvT_2x2,s2(y)                      if upsample_y (y from the coarser scale)
        x  = W_x x,  y = W_y y                    1x1 convs to F = out_channels    [B, H, W, F]
        x0, y0 = x, y
        x  = act(W_ix LayerNorm(x));  g_x = SGW_x(x)       spatial gating weights of x
        y  = act(W_iy LayerNorm(y));  g_y = SGW_y(y)       spatial gating weights of y
        y' = y0 + Dropout(W_oy (y * g_x))                   y gated by x
        x' = x0 + y' + Dropout(W_ox (x * g_y))              x gated by y, plus all signals
        return x', y'

    ``SGW(t) = Dropout(W_o [grid_mix(a); block_mix(b)])`` with ``a, b = split(act(W_i
    LayerNorm(t)))``, ``grid_mix``/``block_mix`` an ``N x N`` token-mixing Dense over the grid /
    block partition (weights ``N(0, 0.02^2)``, biases initialised to 1). The gating weights are
    linear (no sigmoid), exactly as the official code.

    Args:
        in_channels: channels of ``x``.
        gating_channels: channels of ``y``.
        out_channels: ``F``, the working width (official ``features``).
        block_size: ``(fh, fw)`` (or an int) of the local token mixing.
        grid_size: ``(gh, gw)`` (or an int) of the global token mixing.
        act: activation after the input projections (default ``"gelu_tanh"``, Flax's ``nn.gelu``).
        bias: ``use_bias`` of every conv/Dense/token-mixing layer.
        dropout: ``dropout_rate`` after the output projections (and inside ``SGW``).
        upsample_y: upsample ``y`` by a stride-2 2x2 transposed conv first (official default
            ``True``: ``y`` is the gating signal from the coarser scale).
        input_proj_factor: channel expansion inside ``SGW`` (default 2; see Deviations).
        norm_eps: LayerNorm epsilon (Flax's default 1e-6).

    Shapes: ``x`` ``[B, H, W, C_x]``; ``y`` ``[B, H/2, W/2, C_y]`` if ``upsample_y`` else
    ``[B, H, W, C_y]``; ``H, W`` divisible by ``block_size`` and ``grid_size``. Returns
    ``(x', y')``, each ``[B, H, W, F]``. Recorded gates (:func:`gatelab.core.record_gate`):
    suffix ``"gate_x"`` (``g_x``, computed from ``x``, applied to ``y``) and ``"gate_y"``,
    each ``[B, H, W, F]``.

    Parameters: the official shapes (1x1 convs are ``nn.Linear`` on NHWC, same numbers; the
    transposed conv is ``nn.ConvTranspose2d``), initialised like Flax's defaults (LeCun-normal
    kernels, zero biases) except the token-mixing layers (``N(0, 0.02^2)``, bias 1).

    Paper: Tu et al., "MAXIM: Multi-Axis MLP for Image Processing", CVPR 2022; official code
    ``google-research/maxim``, ``maxim/models/maxim.py`` (``CrossGatingBlock``,
    ``GetSpatialGatingWeights``).

    Deviations: the official ``CrossGatingBlock`` accepts ``input_proj_factor`` but does not pass
    it to ``GetSpatialGatingWeights``, which always expands by 2; here it is passed on (identical
    at the default 2). Flax's SAME-padded 2x2 stride-2 ``ConvTranspose`` and PyTorch's
    ``ConvTranspose2d(2, stride=2)`` give the same output size, but Flax applies the kernel
    without flipping it: ported kernels must be flipped in both spatial axes, as
    :func:`gatelab.vision.models.maxim_port.convert_flax_params` does (its fixture test, made by
    the official code, fails by more than 1e-2 without the flip).
    """

    def __init__(
        self,
        in_channels: int,
        gating_channels: int,
        out_channels: int,
        block_size: int | Sequence[int],
        grid_size: int | Sequence[int],
        *,
        act: ActLike = "gelu_tanh",
        bias: bool = True,
        dropout: float = 0.0,
        upsample_y: bool = True,
        input_proj_factor: int = 2,
        norm_eps: float = 1e-6,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        _check_cross_gating_args(in_channels, gating_channels, out_channels, input_proj_factor)
        self.in_channels = in_channels
        self.gating_channels = gating_channels
        self.out_channels = out_channels
        self.block_size = _pair(block_size, "block_size")
        self.grid_size = _pair(grid_size, "grid_size")
        self.upsample_y = upsample_y
        self.up_y = (
            _flax_conv_transpose_2x2(gating_channels, out_channels, bias, factory_kwargs)
            if upsample_y
            else None
        )
        y_channels = out_channels if upsample_y else gating_channels
        self.proj_x = _flax_dense(in_channels, out_channels, bias, factory_kwargs)
        self.proj_y = _flax_dense(y_channels, out_channels, bias, factory_kwargs)
        self.norm_x = nn.LayerNorm(out_channels, eps=norm_eps, **factory_kwargs)
        self.norm_y = nn.LayerNorm(out_channels, eps=norm_eps, **factory_kwargs)
        self.in_project_x = _flax_dense(out_channels, out_channels, bias, factory_kwargs)
        self.in_project_y = _flax_dense(out_channels, out_channels, bias, factory_kwargs)
        self.act = create_act(act)
        sgw = dict(
            act=act,
            bias=bias,
            dropout=dropout,
            input_proj_factor=input_proj_factor,
            norm_eps=norm_eps,
            factory_kwargs=factory_kwargs,
        )
        self.gating_x = _SpatialGatingWeights(out_channels, self.block_size, self.grid_size, **sgw)
        self.gating_y = _SpatialGatingWeights(out_channels, self.block_size, self.grid_size, **sgw)
        self.out_project_y = _flax_dense(out_channels, out_channels, bias, factory_kwargs)
        self.out_project_x = _flax_dense(out_channels, out_channels, bias, factory_kwargs)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``[B, H, W, C_x]``, ``y`` ``[B, H/2, W/2, C_y]`` (or ``[B, H, W, C_y]``) -> ``(x', y')``."""
        who = "CrossGatingBlock"
        _check_nhwc(x, self.in_channels, "x", who)
        _check_nhwc(y, self.gating_channels, "y", who)
        y_shape = tuple(y.shape)
        if self.up_y is not None:
            y = self.up_y(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        if x.shape[:3] != y.shape[:3]:
            got = (
                f"y.shape={y_shape} (upsampled to {tuple(y.shape)})"
                if self.upsample_y
                else f"y.shape={y_shape}"
            )
            want = "y upsampled by 2 (upsample_y=True)" if self.upsample_y else "y"
            raise ValueError(
                f"{who}: x and {want} must share [B, H, W]; got x.shape={tuple(x.shape)} and {got}"
            )
        _check_divisible(x, self.block_size, "block_size", "x", who)
        _check_divisible(x, self.grid_size, "grid_size", "x", who)
        x = self.proj_x(x)
        y = self.proj_y(y)
        shortcut_x, shortcut_y = x, y
        x = self.act(self.in_project_x(self.norm_x(x)))
        gx = self.gating_x(x)
        y = self.act(self.in_project_y(self.norm_y(y)))
        gy = self.gating_y(y)
        record_gate(self, gx, "gate_x")
        record_gate(self, gy, "gate_y")
        y = self.dropout(self.out_project_y(y * gx)) + shortcut_y
        x = self.dropout(self.out_project_x(x * gy)) + y + shortcut_x
        return x, y

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, gating_channels={self.gating_channels}, out_channels={self.out_channels}, "
            f"block_size={self.block_size}, grid_size={self.grid_size}, upsample_y={self.upsample_y}"
        )
