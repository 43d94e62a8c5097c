r"""Audio encoder: convolutional subsampling of log-mel / fbank frames, then GAU blocks.

Equations (features ``f`` ``[B, F, M]`` from :class:`gatelab.multimodal.data.audio.AudioFeatures`,
frame lengths ``L`` ``[B]``):

.. code-block:: text

    c1 = SiLU(Conv2d_{3x3, stride 2}(f))          [B, C, F/2, M/2]   (frames past L zeroed first)
    c2 = SiLU(Conv2d_{3x3, stride 2}(c1))         [B, C, F/4, M/4]   (frames past L/2 zeroed first)
    x  = W_in flatten_{C, M/4}(c2) + b            [B, F/4, d]
    x  = x + Drop(GAU(LN(x)))                     num_layers times (GAU: gatelab.core.GatedAttentionUnit)
    A  = LN(x)                                    the audio memory, padding mask past L/4

``F/2`` is ``(F - 1) // 2 + 1`` (kernel 3, padding 1). Frames past a row's length are zeroed
before each convolution (as its zero padding), and the GAU masks them as keys: a row's memory
does not depend on how much padding the batch adds (the GAU's position bias is relative).

Paper: the subsampling front end of Conformer / ESPnet (Gulati et al. 2020: two stride-2 3x3
convolutions, 4x fewer frames); the blocks are FLASH's GAU stack (Hua et al. 2022: GAU layers
only, no separate FFN), as in MossFormer's GAU-based encoder.

Deviations: SiLU instead of ReLU after the convolutions; no positional encoding other than the
GAU's relative bias; pre-norm blocks with a final LayerNorm.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from gatelab.core import GatedAttentionUnit
from gatelab.core.config import Dropout, ModelConfig, NonNegativeInt, PositiveInt

__all__ = ["AudioEncoder", "AudioEncoderConfig", "subsampled_lengths"]


def subsampled_lengths(lengths: torch.Tensor, times: int = 2) -> torch.Tensor:
    """Frame counts after ``times`` stride-2 convolutions (kernel 3, padding 1): ``(L - 1) // 2 + 1``."""
    for _ in range(times):
        lengths = torch.div(lengths - 1, 2, rounding_mode="floor") + 1
    return lengths


@dataclasses.dataclass(frozen=True, kw_only=True)
class AudioEncoderConfig(ModelConfig):
    """Hyper-parameters of :class:`AudioEncoder`.

    Fields:
        num_mels: ``M``, mel bins of the input features.
        d_model: output width ``d`` (the memory the decoder attends to).
        num_layers: GAU blocks.
        conv_channels: ``C``, channels of the two subsampling convolutions.
        hidden_dim: the GAU's ``e`` (width of ``u``, ``v``; ``None``: ``2 d``, the paper's).
        qk_dim: the GAU's ``s`` (shared query/key width; paper 128).
        attention: the GAU's kernel, ``"relu2"`` (paper) or ``"softmax"``.
        max_rel_pos: clipping distance of the GAU's relative position bias (in subsampled frames).
        dropout: dropout of the blocks' outputs and of the attention weights.

    Preset ``small``: the size of the audio recipe (d=64, 2 blocks).
    """

    num_mels: PositiveInt = 40
    d_model: PositiveInt = 128
    num_layers: NonNegativeInt = 2
    conv_channels: PositiveInt = 32
    hidden_dim: PositiveInt | None = None
    qk_dim: PositiveInt = 64
    attention: Literal["relu2", "softmax"] = "relu2"
    max_rel_pos: PositiveInt = 32
    dropout: Dropout = 0.1

    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "small": {"d_model": 64, "num_layers": 2, "conv_channels": 16, "qk_dim": 32},
    }


class _GAUBlock(nn.Module):
    """``x + Drop(GAU(LN(x)))`` with the padded frames masked as keys."""

    def __init__(self, cfg: AudioEncoderConfig, **fk: Any) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(cfg.d_model, **fk)
        self.gau = GatedAttentionUnit(
            cfg.d_model,
            cfg.hidden_dim,
            cfg.qk_dim,
            attention=cfg.attention,
            max_rel_pos=cfg.max_rel_pos,
            dropout=cfg.dropout,
            **fk,
        )
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None) -> torch.Tensor:
        return x + self.drop(self.gau(self.norm(x), key_padding_mask=padding_mask))


class AudioEncoder(nn.Module):
    """Feature frames -> audio memory ``[B, F', d]`` and its padding mask (module docstring).

    Args:
        config: an :class:`AudioEncoderConfig` (or a mapping of its fields); ``None``: defaults.
        **overrides: config fields replacing ``config``'s.
        device, dtype: where and in what precision the parameters are created.

    Forward: ``features`` ``[B, F, num_mels]``, ``lengths`` ``[B]`` (valid frames; ``None``: all
    ``F``) -> ``(memory [B, F', d], padding_mask [B, F'] bool, True = padding)`` with
    ``F' = ((F - 1) // 2 + 1 - 1) // 2 + 1``.
    """

    config_class = AudioEncoderConfig

    def __init__(
        self,
        config: AudioEncoderConfig | Mapping[str, Any] | None = None,
        /,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__()
        self.config = cfg = AudioEncoderConfig.build(config, **overrides)
        fk = {"device": device, "dtype": dtype}
        c = cfg.conv_channels
        self.num_mels = cfg.num_mels
        self.conv1 = nn.Conv2d(1, c, 3, stride=2, padding=1, **fk)
        self.conv2 = nn.Conv2d(c, c, 3, stride=2, padding=1, **fk)
        self.act = nn.SiLU()
        mels_out = int(subsampled_lengths(torch.tensor(cfg.num_mels)))
        self.proj = nn.Linear(c * mels_out, cfg.d_model, **fk)
        self.blocks = nn.ModuleList([_GAUBlock(cfg, **fk) for _ in range(cfg.num_layers)])
        self.norm = nn.LayerNorm(cfg.d_model, **fk)

    @staticmethod
    def _zero_past(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Zero the frames (dim 2 of ``[B, C, F, M]``) at or past each row's length."""
        keep = torch.arange(x.shape[2], device=x.device)[None, :] < lengths[:, None]
        return x * keep[:, None, :, None].to(x.dtype)

    def forward(
        self, features: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if features.dim() != 3 or features.shape[-1] != self.num_mels:
            raise ValueError(
                f"AudioEncoder: expected features [B, F, num_mels={self.num_mels}], got {tuple(features.shape)}"
            )
        B, F, _ = features.shape
        if lengths is None:
            lengths = torch.full((B,), F, dtype=torch.long, device=features.device)
        if lengths.shape != (B,) or lengths.dtype not in (torch.int32, torch.int64):
            raise ValueError(
                f"AudioEncoder: lengths must be integer [B] = ({B},), got {tuple(lengths.shape)} {lengths.dtype}"
            )
        if B and (int(lengths.min()) < 1 or int(lengths.max()) > F):
            raise ValueError(f"AudioEncoder: lengths must lie in [1, {F}], got {lengths.tolist()}")
        lengths = lengths.to(features.device)
        x = self._zero_past(features[:, None], lengths)
        x = self.act(self.conv1(x))
        l1 = subsampled_lengths(lengths, 1)
        x = self.act(self.conv2(self._zero_past(x, l1)))
        out_lengths = subsampled_lengths(lengths, 2)
        x = self.proj(x.permute(0, 2, 1, 3).flatten(2))  # [B, F', C * M']
        padding = torch.arange(x.shape[1], device=x.device)[None, :] >= out_lengths[:, None]
        for blk in self.blocks:
            x = blk(x, padding)
        return self.norm(x), padding
