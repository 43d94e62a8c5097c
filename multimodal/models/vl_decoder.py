r"""A small causal decoder LM that decides per token how much visual context to use.

Follows Ganescu et al., "Looking to Learn: Token-wise Dynamic Gating for Low-Resource
Vision-Language Modelling" (BabyLM 2025; official code ``biancaganescu/looking-to-learn``,
``models/model_gate_soft_per_token.py``, ``model_film_on_text.py``, ``model_channel_attention.py``,
``model_with_clip.py``, ``model_gate_none.py``).

Equations (one decoder layer, pre-norm; ``x`` text states ``[B, T, d]``, ``M`` encoded image
tokens ``[B, N, d]``, ``c = mean_N(M)`` ``[B, d]``):

.. code-block:: text

    h  = x + Drop(SelfAttn(LN_1(x)))                                   causal
    q  = LN_2(h)
    v  = Drop(CrossAttn(q, M))                                         visual context per token
    t  = q * (1 + W_g c) + W_b c                                       FiLM of the text stream by the image
    g  = sigmoid(W [v; t] + b)                                         token-wise gate, [B, T, 1] or [B, T, d]
    h' = h + LN_f(Drop(g * v + (1 - g) * t))                           fusion="gate"
         h + LN_f(Drop(v))                                             fusion="visual" (g == 1: always visual)
         h + v                                                         fusion="add"    (no gate, the paper's gate_none)
    y  = h' + Drop(GluMlp(LN_3(h')))

``g`` is the share of the *visual* stream: ``g -> 1`` means the token looks at the image. A batch
without an image (``image=None``) skips the whole visual block (``h' = h``), so one model trains on
text-only batches and on captions; ``image_mask`` switches the block off per row.

Audio stream (issue 16; ``audio_mels`` set): spoken input, e.g. the caption read aloud, as log-mel
/ fbank frames ``[B, F, audio_mels]`` (:class:`gatelab.multimodal.data.audio.AudioFeatures`)
through the :class:`~gatelab.multimodal.models.audio_encoder.AudioEncoder` (conv subsampling +
GAU blocks) to an audio memory ``S`` ``[B, F', d]``. Every layer cross-attends to it as to ``M``,
and the gate mixes three streams with a softmax per token (:class:`~gatelab.core.TokenwiseGate`,
``num_streams=3``):

.. code-block:: text

    v  = Drop(CrossAttn(q, M)),  a = Drop(AudioAttn(q, S))        padded audio frames masked
    [w_v, w_a, w_t] = softmax(W [v; a; t] + b)                     [B, T, 3] (scalar) / [B, T, 3, d]
    h' = h + LN_f(Drop(w_v v + w_a a + w_t t))                     fusion="gate"
         h + v + a                                                 fusion="add"

A missing stream (``image=None`` / ``audio=None``, or ``image_mask`` / ``audio_mask`` False for a
row) is removed from the softmax (the others renormalise); a row with neither skips the block.
``gate_init`` ``g`` starts the weights at ``(g/2, g/2, 1-g)``. With ``contrastive=True`` an
``audio_proj`` head gives ``z_a = norm(W_a mean(S))`` and ``audio_image_logits = z_a z_i^T / tau``
(audio-image retrieval). ``fusion="visual"`` has no audio variant. Without ``audio_mels`` the
model, its parameters and outputs are exactly the paper's.

Image side: precomputed features (a global vector ``[B, D]`` as the BabyLM track's DINOv2 CLS
embeddings, or patch tokens ``[B, N, D]``) or raw images ``[B, 3, H, W]`` through a timm encoder
created with ``pretrained=False`` (``image_backbone="resnet10t"``, trained from scratch). Tokens
are projected to ``d``, get a learned position embedding, pass ``num_image_layers`` bidirectional
Transformer blocks and a squeeze-excite channel gate over the ``d`` channels (squeezing over the
image tokens), ``M = SE(Enc(W_p f + P))``.

Auxiliary contrastive loss (InfoNCE / CLIP): ``z_t = norm(W_t mean_T(E))`` (masked mean of the
token embeddings, as the official code pools the unimodal text), ``z_i = norm(W_i c)``,
``S = z_t z_i^T / tau`` (``tau = exp(log_tau)``, learned, initialised at 0.07), loss
``(CE(S, I) + CE(S^T, I)) / 2`` (:func:`contrastive_loss`; the task weights it, 1.0 by default as
in the official trainer).

Deviations from the paper (official code):
  * ``g`` weights the visual stream (the official ``gate`` weights the text stream: ``g = 1 - g_paper``
    with the concatenation order swapped, an equivalent re-parametrisation).
  * Pre-norm image encoder with a final LayerNorm (the official uses post-norm
    ``nn.TransformerEncoderLayer``); a final LayerNorm before the output layer (none in the official).
  * FFN is a SwiGLU :class:`~gatelab.core.GluMlp` (the official: GELU MLP). Attention is
    :class:`~gatelab.core.OutputGatedAttention` (plain with ``attn_gate=None``, the default).
  * FiLM is ``x (1 + gamma) + beta`` with zero-initialised ``gamma``/``beta`` layers (identity at
    start; the official multiplies by a randomly initialised ``gamma``) and is conditioned on the
    mean image token; it exists only with ``fusion="gate"`` (it modulates the text stream of the mix).
  * The text pooled for the contrastive loss excludes padding (the official mean includes it).
  * Squeeze-excite sits on the image tokens (as the official ``Encoder``): on the text it would
    average over future tokens and break causality.
  * Sizes: the paper's model is d=768, 8 heads, 8 decoder + 5 encoder layers; the defaults here are
    small enough for CPU (``d_model=128``, 4 layers).

Config: :class:`GatedVLDecoderConfig` (frozen; presets ``gate-scalar``, ``gate-vector``, ``no-gate``,
``always-visual``: the fusion variants of the paper's comparison); :class:`ImageEncoderConfig` for
the image side alone. The registry entries ``vl-gated-decoder`` / ``vl-nogate-decoder`` /
``vl-visual-decoder`` are :class:`VLGatedDecoder` / :class:`VLNoGateDecoder` /
:class:`VLVisualDecoder`: :class:`GatedVLDecoder` with a config subclass whose ``fusion`` is fixed
(``"gate"`` / ``"add"`` / ``"visual"``), starting from preset ``gate-scalar`` / ``no-gate`` /
``always-visual``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from gatelab.core import GluMlp, OutputGatedAttention, SqueezeExcite, TokenwiseGate
from gatelab.core.config import (
    Allowed,
    ConfigError,
    Dropout,
    Float,
    ModelConfig,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
)
from gatelab.core.kernels.sigmoid_gate import sigmoid_gate
from gatelab.core.pretrained import PretrainedMixin

from .audio_encoder import AudioEncoder, AudioEncoderConfig

__all__ = [
    "FUSIONS",
    "FiLM",
    "GatedVLDecoder",
    "GatedVLDecoderConfig",
    "GenerateOutput",
    "ImageEncoder",
    "ImageEncoderConfig",
    "LayerCache",
    "VLDecoderLayer",
    "VLGatedDecoder",
    "VLGatedDecoderConfig",
    "VLNoGateDecoder",
    "VLNoGateDecoderConfig",
    "VLOutput",
    "VLVisualDecoder",
    "VLVisualDecoderConfig",
    "contrastive_loss",
]

FUSIONS = ("gate", "add", "visual")
#: an initial gate value, strictly inside (0, 1) (``TokenwiseGate(init_gate=...)``)
GateInit = Annotated[Float, Field(gt=0, lt=1), Allowed("a number in (0, 1)")]


class FiLM(nn.Module):
    r"""Feature-wise linear modulation of token states by a condition vector.

    ``y = x * (1 + gamma) + beta`` with ``[gamma, beta] = W c + b`` (``W``, ``b`` zero-initialised,
    so the layer starts as the identity).

    Shapes: ``x`` ``[B, T, dim]``, ``cond`` ``[B, cond_dim]`` -> ``[B, T, dim]``.

    Paper: Perez et al., "FiLM: Visual Reasoning with a General Conditioning Layer", AAAI 2018;
    applied to the text stream as in the official ``model_film_on_text.py``.

    Deviations: ``1 + gamma`` and zero initialisation (the official uses ``x * gamma + beta`` with
    default initialisation); one fused ``Linear`` for ``gamma`` and ``beta``.
    """

    def __init__(
        self,
        dim: int,
        cond_dim: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.proj = nn.Linear(cond_dim, 2 * dim, device=device, dtype=dtype)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.proj(cond).unsqueeze(1).chunk(2, dim=-1)
        return x * (1.0 + gamma) + beta


class _EncoderBlock(nn.Module):
    """Pre-norm bidirectional Transformer block: ``x + Attn(LN(x))``, then ``x + GluMlp(LN(x))``."""

    def __init__(self, d_model: int, num_heads: int, hidden_dim: int, dropout: float, **fk: Any) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model, **fk)
        self.attn = OutputGatedAttention(d_model, num_heads, gate=None, dropout=dropout, **fk)
        self.norm2 = nn.LayerNorm(d_model, **fk)
        self.mlp = GluMlp(d_model, hidden_dim, act="silu", dropout=dropout, **fk)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x)))
        return x + self.mlp(self.norm2(x))


def _check_heads(name: str, d_model: int, num_heads: int) -> None:
    if d_model % num_heads:
        raise ConfigError(f"{name}.d_model={d_model}: must be divisible by num_heads={num_heads}")


#: timm.create_model keywords ImageEncoder sets itself (no download, no head, no pooling, channels)
_FIXED_BACKBONE_KWARGS = ("pretrained", "num_classes", "global_pool", "in_chans")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ImageEncoderConfig(ModelConfig):
    """Hyper-parameters of :class:`ImageEncoder`.

    Fields:
        d_model: output width ``d``.
        image_dim: ``D``, the width of precomputed features (ignored with a backbone).
        num_layers: Transformer blocks (0 = projection only).
        num_heads: attention heads of the blocks (``d_model`` divisible by it).
        hidden_dim: SwiGLU width of the blocks (``None``: ``8 d / 3`` rounded up to 8).
        max_tokens: maximum number of image tokens ``N`` (size of the position table).
        backbone: any timm model name (``timm.list_models()``), created with
            ``timm.create_model(backbone, pretrained=False, num_classes=0, global_pool="")`` and
            trained from scratch (nothing is downloaded), e.g. ``"resnet10t"``,
            ``"vit_tiny_patch16_224"``, ``"convnext_atto"``, ``"swin_tiny_patch4_window7_224"``. Its
            ``forward_features`` output is the token sequence: ViT-style ``[B, N, C]`` as is, CNN
            feature maps ``[B, C, h, w]`` (or ``[B, h, w, C]`` for models whose timm ``output_fmt``
            is ``"NHWC"``, e.g. Swin) flattened row-major to ``h * w`` tokens; ``D = num_features``.
        backbone_kwargs: further keywords of ``timm.create_model`` (the model's own constructor
            arguments), e.g. ``{"img_size": 32, "patch_size": 8, "embed_dim": 64, "depth": 2}``
            for a ViT on 32-pixel images or ``{"channels": [16, 32, 64, 128]}`` for a narrow
            ResNet. ``pretrained``, ``num_classes``, ``global_pool``, ``in_chans`` are set here
            and may not appear.
        prefix_tokens: ``"keep"`` the backbone's prefix tokens (class and register tokens: the
            first timm ``num_prefix_tokens`` of a ViT's sequence) in the image memory, or
            ``"drop"`` them (patch tokens only). CNNs have none.
        in_channels: image channels for the backbone (timm's ``in_chans``).
        channel_attention: apply the squeeze-excite channel gate.
        se_ratio: bottleneck ratio of the squeeze-excite (1/16 as the official ``d // 16``).
        dropout: dropout of the blocks.
    """

    d_model: PositiveInt = 128
    image_dim: PositiveInt = 768
    num_layers: NonNegativeInt = 1
    num_heads: PositiveInt = 4
    hidden_dim: PositiveInt | None = None
    max_tokens: PositiveInt = 64
    backbone: str | None = None
    backbone_kwargs: dict[str, Any] | None = None
    prefix_tokens: Literal["keep", "drop"] = "keep"
    in_channels: PositiveInt = 3
    channel_attention: bool = True
    se_ratio: PositiveFloat = 1.0 / 16
    dropout: Dropout = 0.0

    def check(self) -> None:
        name = type(self).__name__
        _check_heads(name, self.d_model, self.num_heads)
        if self.backbone_kwargs:
            if self.backbone is None:
                raise ConfigError(
                    f"{name}.backbone_kwargs={self.backbone_kwargs!r}: given without a backbone (backbone=None)"
                )
            fixed = sorted(set(self.backbone_kwargs) & set(_FIXED_BACKBONE_KWARGS))
            if fixed:
                raise ConfigError(
                    f"{name}.backbone_kwargs: {', '.join(fixed)} may not be set "
                    f"({_FIXED_BACKBONE_KWARGS}; use in_channels for in_chans)"
                )


class ImageEncoder(nn.Module):
    r"""Image features -> image memory ``M`` ``[B, N, d]`` for the decoder's cross-attention.

    ``M = SE(LN(Blocks(W_p f + P_{1..N})))`` where ``f`` are the image tokens: a precomputed global
    vector ``[B, D]`` (one token), precomputed patch tokens ``[B, N, D]`` (features read from a
    file, e.g. the BabyLM ``.npy`` shards or a caption manifest: :mod:`gatelab.multimodal.data.captions`),
    or, with a timm ``backbone``, the backbone's ``forward_features`` of raw images
    ``[B, C, H, W]``: ViT tokens ``[B, N, D]`` (prefix tokens kept or dropped, ``prefix_tokens``)
    or a CNN feature map flattened to ``h * w`` tokens (see :class:`ImageEncoderConfig`). The
    backbone is created with ``pretrained=False`` and trains with the rest of the model.
    ``SE`` is :class:`~gatelab.core.SqueezeExcite` over the ``d`` channels, squeezing over the
    tokens (the official code's channel attention on the image encoder output).

    Args:
        config: an :class:`ImageEncoderConfig` (or a mapping of its fields); ``None``: the defaults.
        **overrides: config fields replacing ``config``'s.
        device, dtype: where and in what precision the parameters are created.
    """

    config_class = ImageEncoderConfig

    def __init__(
        self,
        config: ImageEncoderConfig | Mapping[str, Any] | None = None,
        /,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__()
        self.config = cfg = ImageEncoderConfig.build(config, **overrides)
        fk = {"device": device, "dtype": dtype}
        self.backbone_name = cfg.backbone
        self.backbone = self._create_backbone(cfg, fk)
        d = cfg.d_model
        self.image_dim = image_dim = (
            cfg.image_dim if self.backbone is None else int(self.backbone.num_features)
        )
        self.max_tokens = cfg.max_tokens
        self.proj = nn.Linear(image_dim, d, **fk)
        self.pos = nn.Parameter(torch.zeros(cfg.max_tokens, d, **fk))
        nn.init.normal_(self.pos, std=0.02)
        hidden = cfg.hidden_dim or _default_hidden(d)
        self.blocks = nn.ModuleList(
            [_EncoderBlock(d, cfg.num_heads, hidden, cfg.dropout, **fk) for _ in range(cfg.num_layers)]
        )
        self.norm = nn.LayerNorm(d, **fk)
        self.se = (
            SqueezeExcite(d, rd_ratio=cfg.se_ratio, rd_divisor=1, **fk) if cfg.channel_attention else None
        )

    @staticmethod
    def _create_backbone(cfg: ImageEncoderConfig, fk: dict[str, Any]) -> nn.Module | None:
        """The timm backbone of ``cfg.backbone`` (``pretrained=False``), or ``None``."""
        if cfg.backbone is None:
            return None
        import timm

        if not timm.is_model(cfg.backbone):
            raise ConfigError(
                f"ImageEncoderConfig.backbone={cfg.backbone!r}: not a timm model name (see timm.list_models())"
            )
        extra = dict(cfg.backbone_kwargs or {})
        try:
            backbone = timm.create_model(
                cfg.backbone, pretrained=False, num_classes=0, global_pool="", in_chans=cfg.in_channels, **extra
            )
        except (RuntimeError, TypeError, ValueError, AssertionError) as e:  # bad keywords for this model
            raise ConfigError(
                f"ImageEncoderConfig.backbone_kwargs={extra!r}: cannot create timm model {cfg.backbone!r}: "
                f"{type(e).__name__}: {e}"
            ) from None
        return backbone.to(**{k: v for k, v in fk.items() if v is not None})

    def tokens(self, image: torch.Tensor) -> torch.Tensor:
        """The raw token sequence ``[B, N, D]`` of an image batch (before projection)."""
        if self.backbone is not None:
            if image.dim() != 4:
                raise ValueError(
                    f"ImageEncoder({self.backbone_name}): expected raw images [B, C, H, W], got {tuple(image.shape)}"
                )
            feats = self.backbone.forward_features(image)
            if not isinstance(feats, torch.Tensor):
                raise ValueError(
                    f"ImageEncoder({self.backbone_name}): forward_features returned {type(feats).__name__}, "
                    "expected one tensor [B, N, C] or [B, C, h, w]"
                )
            if feats.dim() == 4:  # feature map: [B, C, h, w], or [B, h, w, C] (timm output_fmt NHWC)
                fmt = getattr(self.backbone, "output_fmt", "NCHW")
                if str(getattr(fmt, "value", fmt)) == "NHWC":
                    return feats.flatten(1, 2)
                return feats.flatten(2).transpose(1, 2)
            if feats.dim() == 3:  # ViT-style tokens [B, prefix + N, C]
                if self.config.prefix_tokens == "drop":
                    feats = feats[:, int(getattr(self.backbone, "num_prefix_tokens", 0)) :]
                return feats
            raise ValueError(
                f"ImageEncoder({self.backbone_name}): backbone features of unexpected shape {tuple(feats.shape)}"
            )
        if image.dim() == 2:
            image = image.unsqueeze(1)
        if image.dim() != 3 or image.shape[-1] != self.image_dim:
            raise ValueError(
                f"ImageEncoder: expected image features [B, {self.image_dim}] or [B, N, {self.image_dim}], "
                f"got {tuple(image.shape)}"
            )
        return image

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        f = self.tokens(image)
        n = f.shape[1]
        if n > self.max_tokens:
            raise ValueError(
                f"ImageEncoder: {n} image tokens > max_image_tokens={self.max_tokens} "
                f"(input {tuple(image.shape)}; raise max_image_tokens or shrink the feature map)"
            )
        x = self.proj(f) + self.pos[:n]
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        if self.se is not None:
            x = self.se(x.transpose(1, 2)).transpose(1, 2)
        return x


def _fusion_gate(
    d_model: int, gate_mode: str, gate_init: float | None, audio: bool, fk: dict[str, Any]
) -> TokenwiseGate:
    """The layer's token-wise gate: 2 streams ``(v, t)``, or 3 ``(v, a, t)`` with audio (softmax
    over the streams; ``gate_init`` split evenly between the visual and audio streams)."""
    if not audio:
        return TokenwiseGate(d_model, mode=gate_mode, init_gate=gate_init, **fk)
    init = None if gate_init is None else (gate_init / 2, gate_init / 2, 1.0 - gate_init)
    return TokenwiseGate(d_model, num_streams=3, weighting="softmax", mode=gate_mode, init_gate=init, **fk)


class VLDecoderLayer(nn.Module):
    """One decoder layer: causal self-attention, gated visual fusion, GLU feed-forward (module docstring)."""

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        hidden_dim: int,
        *,
        fusion: str = "gate",
        gate_mode: Literal["scalar", "vector"] = "scalar",
        gate_init: float | None = None,
        film: bool = True,
        attn_gate: str | None = None,
        dropout: float = 0.1,
        audio: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        fk = {"device": device, "dtype": dtype}
        if audio and fusion == "visual":
            raise ValueError("VLDecoderLayer: an audio stream needs fusion='gate' or 'add', got 'visual'")
        self.fusion = fusion
        self.norm1 = nn.LayerNorm(d_model, **fk)
        self.self_attn = OutputGatedAttention(d_model, num_heads, gate=attn_gate, dropout=dropout, **fk)
        self.norm2 = nn.LayerNorm(d_model, **fk)
        self.cross_attn = OutputGatedAttention(d_model, num_heads, gate=attn_gate, dropout=dropout, **fk)
        self.film = FiLM(d_model, d_model, **fk) if (film and fusion == "gate") else None
        self.gate = (
            _fusion_gate(d_model, gate_mode, gate_init, audio, fk) if fusion == "gate" else None
        )
        self.fuse_norm = nn.LayerNorm(d_model, **fk) if fusion in ("gate", "visual") else None
        self.norm3 = nn.LayerNorm(d_model, **fk)
        self.ffn = GluMlp(d_model, hidden_dim, act="silu", dropout=dropout, **fk)
        self.drop = nn.Dropout(dropout)
        # the audio stream (issue 16): its own cross-attention, mixed by the 3-stream gate
        self.audio_attn = (
            OutputGatedAttention(d_model, num_heads, gate=attn_gate, dropout=dropout, **fk) if audio else None
        )

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor | None,
        image_pool: torch.Tensor | None,
        *,
        key_padding_mask: torch.Tensor | None = None,
        image_mask: torch.Tensor | None = None,
        cache: LayerCache | None = None,
        audio_memory: torch.Tensor | None = None,
        audio_padding_mask: torch.Tensor | None = None,
        audio_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``x`` ``[B, T, d]`` -> ``[B, T, d]``.

        With ``cache`` (a :class:`LayerCache`, used by :meth:`GatedVLDecoder.generate`), ``x`` holds
        only the new tokens, which follow the ``cache.length`` tokens already cached: their
        self-attention keys/values are appended to the cache and the queries see every cached key
        plus the new ones causally; the cross-attention keys/values of ``memory`` are computed on
        the first call and reused, and so are those of ``audio_memory`` (its padding mask applied
        as in the uncached path). Same math as without a cache (no text padding mask then).
        """
        if cache is None:
            h = x + self.drop(
                self.self_attn(self.norm1(x), key_padding_mask=key_padding_mask, is_causal=True)
            )
        else:
            if key_padding_mask is not None:
                raise ValueError("VLDecoderLayer: key_padding_mask is not supported with a cache")
            h = x + self.drop(cache.self_attend(self.self_attn, self.norm1(x)))
        if self.audio_attn is not None and (memory is not None or audio_memory is not None):
            h = h + self._fuse_streams(
                h, memory, image_pool, audio_memory, audio_padding_mask, image_mask, audio_mask, cache
            )
        elif audio_memory is not None:
            raise ValueError("VLDecoderLayer: audio_memory given to a layer built without audio=True")
        elif memory is not None:
            q = self.norm2(h)
            v = self.drop(
                self.cross_attn(q, memory)
                if cache is None
                else cache.cross_attend(self.cross_attn, q, memory)
            )
            if self.fusion == "gate":
                t = self.film(q, image_pool) if self.film is not None else q
                fused = self.fuse_norm(self.drop(self.gate(v, t)))
            elif self.fusion == "visual":
                fused = self.fuse_norm(self.drop(v))
            else:  # "add"
                fused = v
            if image_mask is not None:
                fused = fused * image_mask[:, None, None].to(fused.dtype)
            h = h + fused
        return h + self.drop(self.ffn(self.norm3(h)))

    def _fuse_streams(
        self,
        h: torch.Tensor,
        memory: torch.Tensor | None,
        image_pool: torch.Tensor | None,
        audio_memory: torch.Tensor | None,
        audio_padding_mask: torch.Tensor | None,
        image_mask: torch.Tensor | None,
        audio_mask: torch.Tensor | None,
        cache: LayerCache | None = None,
    ) -> torch.Tensor:
        """Visual, audio and text streams mixed per token (module docstring, "Audio stream");
        with ``cache`` both memories' cross-attention keys/values are computed once and reused."""
        q = self.norm2(h)
        B = q.shape[0]
        absent = torch.zeros(B, dtype=torch.bool, device=q.device)
        if memory is not None:
            v = self.drop(
                self.cross_attn(q, memory) if cache is None else cache.cross_attend(self.cross_attn, q, memory)
            )
            has_image = absent.logical_not() if image_mask is None else image_mask
        else:
            v, has_image = torch.zeros_like(q), absent
        if audio_memory is not None:
            a = self.drop(
                self.audio_attn(q, audio_memory, key_padding_mask=audio_padding_mask)
                if cache is None
                else cache.audio_attend(self.audio_attn, q, audio_memory, audio_padding_mask)
            )
            has_audio = absent.logical_not() if audio_mask is None else audio_mask
        else:
            a, has_audio = torch.zeros_like(q), absent
        if self.fusion == "gate":
            t = self.film(q, image_pool) if (self.film is not None and image_pool is not None) else q
            present = torch.stack([has_image, has_audio, ~absent], dim=-1)[:, None, :, None]
            fused = self.fuse_norm(self.drop(self.gate(v, a, t, stream_mask=present)))
        else:  # "add": h + v + a over the present streams
            fused = v * has_image[:, None, None].to(v.dtype) + a * has_audio[:, None, None].to(a.dtype)
        return fused * (has_image | has_audio)[:, None, None].to(fused.dtype)


def _split_heads(attn: OutputGatedAttention, x: torch.Tensor, proj: nn.Linear) -> torch.Tensor:
    """``proj(x)`` ``[B, T, dim]`` as heads ``[B, H, T, Dh]``."""
    B, T, _ = x.shape
    return proj(x).view(B, T, attn.num_heads, attn.head_dim).transpose(1, 2)


def _attend(
    attn: OutputGatedAttention,
    x: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    offset: int | None,
    key_padding_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """:class:`~gatelab.core.OutputGatedAttention`'s forward (eval mode) from queries ``x``
    ``[B, Tq, dim]`` to precomputed keys/values ``k``, ``v`` ``[B, H, Tk, Dh]``: the same
    projections, scaled dot-product attention, output gate and output projection. ``offset``:
    causal, query ``i`` stands at position ``offset + i`` and sees keys ``j <= offset + i``;
    ``None``: every key. ``key_padding_mask`` ``[B, Tk]`` (``True`` = padding, non-causal only):
    ignored keys, and a row with no key left gets a zero attention output, as in the module."""
    B, Tq, _ = x.shape
    H, Dh = attn.num_heads, attn.head_dim
    qg = attn.q_proj(x).view(B, Tq, H, Dh + attn.gate_dim)
    q = qg[..., :Dh].transpose(1, 2)
    mask = has_key = None
    if offset is not None:
        if key_padding_mask is not None:
            raise ValueError("_attend: key_padding_mask is for the (non-causal) memory attention")
        Tk = k.shape[2]
        mask = (
            torch.arange(Tk, device=x.device)[None, :] <= offset + torch.arange(Tq, device=x.device)[:, None]
        )
    elif key_padding_mask is not None:
        mask = (~key_padding_mask)[:, None, None, :]  # [B, 1, 1, Tk]
        has_key = mask.any(dim=-1, keepdim=True)
        mask = mask | ~has_key
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if has_key is not None:
        out = out * has_key
    out = out.transpose(1, 2)  # [B, Tq, H, Dh]
    if attn.gate is not None:
        out = sigmoid_gate(out, qg[..., Dh:], gate_act=attn.gate_act)
    return attn.out_proj(out.reshape(B, Tq, attn.dim))


@dataclasses.dataclass
class LayerCache:
    """Key/value cache of one :class:`VLDecoderLayer` for incremental decoding.

    Attributes:
        key, value: self-attention keys/values of the tokens so far, ``[B, H, T, Dh]`` (``None``
            before the first call).
        memory_key, memory_value: cross-attention keys/values of the image memory
            ``[B, H, N, Dh]``, computed once (``None`` until then, or without an image).
        audio_key, audio_value: the same for the audio memory ``[B, H, F', Dh]`` (the audio
            stream's own cross-attention), ``None`` until then or without audio.
    """

    key: torch.Tensor | None = None
    value: torch.Tensor | None = None
    memory_key: torch.Tensor | None = None
    memory_value: torch.Tensor | None = None
    audio_key: torch.Tensor | None = None
    audio_value: torch.Tensor | None = None

    @property
    def length(self) -> int:
        """Tokens cached."""
        return 0 if self.key is None else int(self.key.shape[2])

    def self_attend(self, attn: OutputGatedAttention, x: torch.Tensor) -> torch.Tensor:
        """Causal self-attention of the new tokens ``x`` ``[B, T, d]`` over the cache and
        themselves; appends their keys/values."""
        offset = self.length
        k, v = _split_heads(attn, x, attn.k_proj), _split_heads(attn, x, attn.v_proj)
        if self.key is not None:
            k, v = torch.cat([self.key, k], dim=2), torch.cat([self.value, v], dim=2)
        self.key, self.value = k, v
        return _attend(attn, x, k, v, offset)

    def cross_attend(self, attn: OutputGatedAttention, q: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """Cross-attention of ``q`` ``[B, T, d]`` to ``memory`` ``[B, N, d]`` (its keys/values
        computed on the first call, then reused)."""
        if self.memory_key is None:
            self.memory_key = _split_heads(attn, memory, attn.k_proj)
            self.memory_value = _split_heads(attn, memory, attn.v_proj)
        return _attend(attn, q, self.memory_key, self.memory_value, None)

    def audio_attend(
        self,
        attn: OutputGatedAttention,
        q: torch.Tensor,
        memory: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Cross-attention of ``q`` ``[B, T, d]`` to the audio memory ``[B, F', d]`` (padded frames
        ``key_padding_mask`` ``[B, F']`` ignored); its keys/values computed on the first call,
        then reused, as :meth:`cross_attend` does for the image memory."""
        if self.audio_key is None:
            self.audio_key = _split_heads(attn, memory, attn.k_proj)
            self.audio_value = _split_heads(attn, memory, attn.v_proj)
        return _attend(attn, q, self.audio_key, self.audio_value, None, key_padding_mask)


@dataclasses.dataclass
class GenerateOutput:
    """Result of :meth:`GatedVLDecoder.generate` for ``B`` prompts and ``S`` decoding steps.

    Attributes:
        sequences: generated token ids ``[B, S]`` (the prompt excluded); a row that produced
            ``[EOS]`` stops there (the ``[EOS]`` included) and is padded with ``[PAD]`` (0).
        lengths: generated tokens per row ``[B]`` (its ``[EOS]`` included).
        finished: ``[B]`` bool, the row ended with ``[EOS]`` (else it hit ``max_new_tokens``).
        texts: the generated tokens decoded without special tokens, when the model has a tokenizer.
        logits: with ``return_logits``: ``[B, S, V]``, the next-token logits each token was chosen
            from (before temperature and top-k).
        gates: with ``return_gates``: ``[B, S, num_layers, G]`` (``G`` = 1 for ``gate_mode="scalar"``,
            ``d_model`` for ``"vector"``): the token-wise gate (the visual share) of every layer at
            the position whose output chose the token (the preceding token's position). With an
            audio stream the gate's weights of the three streams instead: ``[B, S, num_layers, 3]``
            (image, audio, text; scalar) or ``[B, S, num_layers, 3, d_model]`` (vector).

    Entries of a row past its ``lengths`` are padding (``0``).
    """

    sequences: torch.Tensor
    lengths: torch.Tensor
    finished: torch.Tensor
    texts: list[str] | None = None
    logits: torch.Tensor | None = None
    gates: torch.Tensor | None = None


@dataclasses.dataclass
class VLOutput:
    """Output of :class:`GatedVLDecoder`.

    ``logits`` ``[B, T, V]`` (next-token logits at every position); with an image and
    ``contrastive=True`` also ``text_embed``/``image_embed`` ``[B, E]`` (unit vectors) and
    ``contrastive_logits`` ``[B, B]`` (``text_embed @ image_embed.T / tau``), else ``None``;
    with audio and ``contrastive=True`` also ``audio_embed`` ``[B, E]`` and, with an image too,
    ``audio_image_logits`` ``[B, B]`` (``audio_embed @ image_embed.T / tau``).
    """

    logits: torch.Tensor
    text_embed: torch.Tensor | None = None
    image_embed: torch.Tensor | None = None
    contrastive_logits: torch.Tensor | None = None
    audio_embed: torch.Tensor | None = None
    audio_image_logits: torch.Tensor | None = None


def contrastive_loss(logits: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    r"""Symmetric InfoNCE: ``(CE(S, I) + CE(S^T, I)) / 2`` over the ``[B, B]`` similarity ``S``.

    ``valid`` (``[B]`` bool) restricts the loss to rows/columns that have an image; the others
    are removed from both directions (no silent negatives from text-only rows).
    """
    if logits.dim() != 2 or logits.shape[0] != logits.shape[1]:
        raise ValueError(f"contrastive_loss: expected a square [B, B] matrix, got {tuple(logits.shape)}")
    if valid is not None:
        keep = valid.to(torch.bool)
        logits = logits[keep][:, keep]
    labels = torch.arange(logits.shape[0], device=logits.device)
    lf = logits.float()
    return 0.5 * (F.cross_entropy(lf, labels) + F.cross_entropy(lf.t(), labels))


def _default_hidden(d_model: int) -> int:
    """SwiGLU width matching a ``4 d`` GELU MLP's parameter count, rounded up to a multiple of 8."""
    h = int(8 * d_model / 3)
    return (h + 7) // 8 * 8


@dataclasses.dataclass(frozen=True, kw_only=True)
class GatedVLDecoderConfig(ModelConfig):
    """Hyper-parameters of :class:`GatedVLDecoder`.

    Fields:
        vocab_size: tokenizer vocabulary size ``V`` (required; a data module's ``model_kwargs``
            gives it).
        d_model: decoder (and image memory) width ``d``.
        num_layers: decoder layers.
        num_heads: attention heads (``d_model`` divisible by it).
        hidden_dim: SwiGLU width of every FFN (``None``: ``8 d / 3`` rounded up to 8, the width of
            a ``4 d`` GELU MLP's parameter count).
        max_len: longest token sequence (learned absolute positions, as the paper).
        image_dim: width ``D`` of precomputed image features (768 for DINOv2-base).
        num_image_layers: Transformer blocks of the image encoder.
        max_image_tokens: longest image token sequence.
        image_backbone: timm model name for raw images (``pretrained=False``); ``None`` =
            precomputed features (:class:`ImageEncoderConfig` ``backbone``).
        image_backbone_kwargs: ``timm.create_model`` keywords of that backbone
            (:class:`ImageEncoderConfig` ``backbone_kwargs``).
        image_prefix_tokens: keep or drop a ViT backbone's class/register tokens
            (:class:`ImageEncoderConfig` ``prefix_tokens``).
        in_channels: image channels for the backbone.
        fusion: ``"gate"`` (token-wise gate), ``"add"`` (no gate: ``h + CrossAttn``) or
            ``"visual"`` (gate fixed at 1: always the visual stream).
        gate_mode: ``"scalar"`` (one gate per token, the paper's best "soft per token") or
            ``"vector"`` (one per channel, "soft per feature").
        gate_init: initial gate value in (0, 1) (``TokenwiseGate(init_gate=...)``); ``None`` =
            default init.
        film: FiLM of the text stream by the mean image token (``fusion="gate"`` only).
        channel_attention: squeeze-excite over the image memory's channels.
        se_ratio: squeeze-excite bottleneck ratio.
        attn_gate: output gate of every attention layer (``None``, ``"headwise"``, ``"elementwise"``).
        contrastive: build the InfoNCE heads (``text_proj``, ``image_proj``, ``log_tau``).
        contrastive_dim: width of the contrastive embedding (``None``: ``d_model``).
        tau_init: initial temperature.
        dropout: dropout everywhere (the paper: 0.1; the image encoder's blocks too).
        audio_mels: mel bins of the audio features (``AudioFeatures(num_mels=...)``); ``None`` =
            no audio stream (the paper's model). Set, every layer cross-attends to the audio
            memory too and the gate mixes three streams (module docstring, "Audio stream").
        num_audio_layers: GAU blocks of the audio encoder.

    Presets: the fusion variants of the paper's comparison: ``gate-scalar`` (soft gate per token,
    the paper's best), ``gate-vector`` (soft gate per feature), ``no-gate`` (``fusion="add"``, the
    official ``gate_none``) and ``always-visual`` (``fusion="visual"``).
    """

    vocab_size: PositiveInt
    d_model: PositiveInt = 128
    num_layers: PositiveInt = 4
    num_heads: PositiveInt = 4
    hidden_dim: PositiveInt | None = None
    max_len: PositiveInt = 128
    image_dim: PositiveInt = 768
    num_image_layers: NonNegativeInt = 1
    max_image_tokens: PositiveInt = 64
    image_backbone: str | None = None
    image_backbone_kwargs: dict[str, Any] | None = None
    image_prefix_tokens: Literal["keep", "drop"] = "keep"
    in_channels: PositiveInt = 3
    fusion: Literal["gate", "add", "visual"] = "gate"
    gate_mode: Literal["scalar", "vector"] = "scalar"
    gate_init: GateInit | None = None
    film: bool = True
    channel_attention: bool = True
    se_ratio: PositiveFloat = 1.0 / 16
    attn_gate: Literal["headwise", "elementwise"] | None = None
    contrastive: bool = True
    contrastive_dim: PositiveInt | None = None
    tau_init: PositiveFloat = 0.07
    dropout: Dropout = 0.1
    audio_mels: PositiveInt | None = None
    num_audio_layers: NonNegativeInt = 2

    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "gate-scalar": {"fusion": "gate", "gate_mode": "scalar"},
        "gate-vector": {"fusion": "gate", "gate_mode": "vector"},
        "no-gate": {"fusion": "add"},
        "always-visual": {"fusion": "visual"},
    }

    def check(self) -> None:
        _check_heads(type(self).__name__, self.d_model, self.num_heads)
        if self.audio_mels is not None and self.fusion == "visual":
            raise ConfigError(
                f"{type(self).__name__}.audio_mels={self.audio_mels}: an audio stream needs fusion='gate' or "
                "'add', got fusion='visual'"
            )

    def audio_encoder(self) -> AudioEncoderConfig:
        """The config of the decoder's :class:`~gatelab.multimodal.models.audio_encoder.AudioEncoder`
        (needs ``audio_mels``): width ``d_model``, ``num_audio_layers`` GAU blocks, ``qk_dim =
        min(64, d_model)``, the decoder's dropout."""
        if self.audio_mels is None:
            raise ConfigError(f"{type(self).__name__}.audio_mels is None: this decoder has no audio stream")
        return AudioEncoderConfig(
            num_mels=self.audio_mels,
            d_model=self.d_model,
            num_layers=self.num_audio_layers,
            qk_dim=min(64, self.d_model),
            dropout=self.dropout,
        )

    def image_encoder(self) -> ImageEncoderConfig:
        """The config of the decoder's :class:`ImageEncoder` (same width, heads, FFN width, dropout)."""
        return ImageEncoderConfig(
            d_model=self.d_model,
            image_dim=self.image_dim,
            num_layers=self.num_image_layers,
            num_heads=self.num_heads,
            hidden_dim=self.hidden_dim or _default_hidden(self.d_model),
            max_tokens=self.max_image_tokens,
            backbone=self.image_backbone,
            backbone_kwargs=self.image_backbone_kwargs,
            prefix_tokens=self.image_prefix_tokens,
            in_channels=self.in_channels,
            channel_attention=self.channel_attention,
            se_ratio=self.se_ratio,
            dropout=self.dropout,
        )


class GatedVLDecoder(PretrainedMixin, nn.Module):
    r"""Causal decoder LM with per-layer cross-attention to an image and a token-wise visual gate.

    See the module docstring for the equations and the deviations from the paper.

    Args:
        config: a :class:`GatedVLDecoderConfig` (or a mapping of its fields); ``None``: the
            defaults (``vocab_size`` must then be given).
        **overrides: config fields replacing ``config``'s (``GatedVLDecoder(vocab_size=4096,
            num_layers=2)``); unknown keys and bad values raise
            :class:`~gatelab.core.config.ConfigError`.
        device, dtype: where and in what precision the parameters are created.

    Forward: ``model(input_ids [B, T], image=None, *, attention_mask=None [B, T] bool (True =
    token), image_mask=None [B] bool)`` -> :class:`VLOutput`. ``image`` is ``[B, D]``/``[B, N, D]``
    features or ``[B, C, H, W]`` pixels (with ``image_backbone``). The tokenizer is kept with the
    model (:meth:`set_tokenizer`, saved in the ``state_dict``).
    """

    config_class: ClassVar[type[GatedVLDecoderConfig]] = GatedVLDecoderConfig

    def __init__(
        self,
        config: GatedVLDecoderConfig | Mapping[str, Any] | None = None,
        /,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__()
        self.config = cfg = self.config_class.build(config, **overrides)
        self.vocab_size = cfg.vocab_size
        self.d_model = d = cfg.d_model
        self.max_len = cfg.max_len
        self.fusion = cfg.fusion
        self.gate_mode = cfg.gate_mode
        fk = {"device": device, "dtype": dtype}
        # the build order is the parameter order, in which the random init is drawn
        self.tok_emb = nn.Embedding(cfg.vocab_size, d, **fk)
        self.pos_emb = nn.Embedding(cfg.max_len, d, **fk)
        self.emb_norm = nn.LayerNorm(d, **fk)
        self.drop = nn.Dropout(cfg.dropout)
        self.image_encoder = ImageEncoder(cfg.image_encoder(), **fk)
        self.layers = nn.ModuleList([self._layer(cfg, fk) for _ in range(cfg.num_layers)])
        self.final_norm = nn.LayerNorm(d, **fk)
        self.head = nn.Linear(d, cfg.vocab_size, **fk)
        self.contrastive = cfg.contrastive
        if cfg.contrastive:
            e = cfg.contrastive_dim or d
            self.text_proj = nn.Linear(d, e, **fk)
            self.image_proj = nn.Linear(d, e, **fk)
            self.log_tau = nn.Parameter(torch.tensor(math.log(cfg.tau_init), **fk))
        # the audio stream (issue 16), built last: without it the parameters are as before
        self.audio_encoder = AudioEncoder(cfg.audio_encoder(), **fk) if cfg.audio_mels is not None else None
        self.audio_proj = (
            nn.Linear(d, cfg.contrastive_dim or d, **fk) if cfg.audio_mels is not None and cfg.contrastive else None
        )
        self._tokenizer_json: str | None = None
        self._tokenizer: Any = None

    @staticmethod
    def _layer(cfg: GatedVLDecoderConfig, fk: dict[str, Any]) -> VLDecoderLayer:
        return VLDecoderLayer(
            cfg.d_model,
            cfg.num_heads,
            cfg.hidden_dim or _default_hidden(cfg.d_model),
            fusion=cfg.fusion,
            gate_mode=cfg.gate_mode,
            gate_init=cfg.gate_init,
            film=cfg.film,
            attn_gate=cfg.attn_gate,
            dropout=cfg.dropout,
            audio=cfg.audio_mels is not None,
            **fk,
        )

    # ---- tokenizer kept with the model -------------------------------------------------------

    def set_tokenizer(self, tokenizer: Any) -> None:
        """Attach a ``tokenizers.Tokenizer`` (saved in the ``state_dict`` as its JSON string)."""
        vocab = tokenizer.get_vocab_size()
        if vocab > self.vocab_size:
            raise ValueError(f"tokenizer has {vocab} tokens > model vocab_size={self.vocab_size}")
        self._tokenizer = tokenizer
        self._tokenizer_json = tokenizer.to_str()

    @property
    def tokenizer(self) -> Any:
        """The attached tokenizer (``None`` if none was set or loaded)."""
        if self._tokenizer is None and self._tokenizer_json is not None:
            from gatelab.multimodal.data.tokenizer import tokenizer_from_json

            self._tokenizer = tokenizer_from_json(self._tokenizer_json)
        return self._tokenizer

    def get_extra_state(self) -> dict[str, Any]:
        return {"tokenizer_json": self._tokenizer_json}

    def set_extra_state(self, state: Any) -> None:
        if not isinstance(state, dict) or "tokenizer_json" not in state:
            raise ValueError("GatedVLDecoder: extra state must be a dict with key 'tokenizer_json'")
        self._tokenizer_json = state["tokenizer_json"]
        self._tokenizer = None

    # ---- forward -------------------------------------------------------------------------------

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """Image memory ``[B, N, d]`` (see :class:`ImageEncoder`)."""
        return self.image_encoder(image)

    def embed(self, input_ids: torch.Tensor, start: int = 0) -> torch.Tensor:
        """``LN(Drop(E[ids] sqrt(d) + P[pos]))`` ``[B, T, d]`` (the official ``SimpleTextEmbedding``);
        the tokens stand at positions ``start .. start + T - 1``."""
        T = input_ids.shape[1]
        pos = torch.arange(start, start + T, device=input_ids.device)
        x = self.tok_emb(input_ids) * math.sqrt(self.d_model) + self.pos_emb(pos)
        return self.emb_norm(self.drop(x))

    def forward(
        self,
        input_ids: torch.Tensor,
        image: torch.Tensor | None = None,
        *,
        attention_mask: torch.Tensor | None = None,
        image_mask: torch.Tensor | None = None,
        audio: torch.Tensor | None = None,
        audio_lengths: torch.Tensor | None = None,
        audio_mask: torch.Tensor | None = None,
    ) -> VLOutput:
        if input_ids.dim() != 2 or input_ids.dtype not in (torch.long, torch.int32, torch.int64):
            raise ValueError(
                f"input_ids must be an integer tensor [B, T], got {tuple(input_ids.shape)} {input_ids.dtype}"
            )
        B, T = input_ids.shape
        if T > self.max_len:
            raise ValueError(f"sequence of {T} tokens > max_len={self.max_len}")
        if attention_mask is not None:
            if attention_mask.shape != (B, T) or attention_mask.dtype != torch.bool:
                raise ValueError(
                    f"attention_mask must be bool [B, T] = {(B, T)}, got {tuple(attention_mask.shape)} {attention_mask.dtype}"
                )
        if image is not None and image.shape[0] != B:
            raise ValueError(f"image batch {image.shape[0]} != text batch {B}")
        if image_mask is not None:
            if image is None:
                raise ValueError("image_mask given without an image")
            if image_mask.shape != (B,) or image_mask.dtype != torch.bool:
                raise ValueError(
                    f"image_mask must be bool [B] = ({B},), got {tuple(image_mask.shape)} {image_mask.dtype}"
                )

        x0 = self.embed(input_ids)
        memory = pool = None
        if image is not None:
            memory = self.encode_image(image)
            pool = memory.mean(dim=1)
        audio_kw = self._audio_memory(B, audio, audio_lengths, audio_mask)
        kpm = None if attention_mask is None else ~attention_mask
        x = x0
        for layer in self.layers:
            x = layer(x, memory, pool, key_padding_mask=kpm, image_mask=image_mask, **audio_kw)
        logits = self.head(self.final_norm(x))
        if audio_kw and self.contrastive:
            return self._audio_output(logits, x0, attention_mask, pool, audio_kw)
        if not self.contrastive or image is None:
            return VLOutput(logits)
        zt = self._text_embed(x0, attention_mask)
        zi = F.normalize(self.image_proj(pool), dim=-1)
        return VLOutput(logits, zt, zi, (zt @ zi.t()) * self.logit_scale())

    # ---- audio stream (issue 16) ---------------------------------------------------------------

    def encode_audio(
        self, audio: torch.Tensor, audio_lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio memory ``[B, F', d]`` and its padding mask ``[B, F']`` (``True`` = padding) of
        feature frames ``[B, F, audio_mels]`` (see :class:`~gatelab.multimodal.models.audio_encoder.AudioEncoder`)."""
        if self.audio_encoder is None:
            raise ValueError("this decoder has no audio stream (built with audio_mels=None)")
        return self.audio_encoder(audio, audio_lengths)

    def _audio_memory(
        self,
        B: int,
        audio: torch.Tensor | None,
        audio_lengths: torch.Tensor | None,
        audio_mask: torch.Tensor | None,
    ) -> dict[str, torch.Tensor | None]:
        """The layers' audio keywords (empty without audio: the layers run as before)."""
        if audio is None:
            if audio_lengths is not None or audio_mask is not None:
                raise ValueError("audio_lengths / audio_mask given without audio")
            return {}
        if audio.shape[0] != B:
            raise ValueError(f"audio batch {audio.shape[0]} != text batch {B}")
        if audio_mask is not None and (audio_mask.shape != (B,) or audio_mask.dtype != torch.bool):
            raise ValueError(
                f"audio_mask must be bool [B] = ({B},), got {tuple(audio_mask.shape)} {audio_mask.dtype}"
            )
        memory, padding = self.encode_audio(audio, audio_lengths)
        return {"audio_memory": memory, "audio_padding_mask": padding, "audio_mask": audio_mask}

    def _audio_pool(self, memory: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        keep = (~padding).to(memory.dtype).unsqueeze(-1)
        return (memory * keep).sum(dim=1) / keep.sum(dim=1).clamp_min(1.0)

    def _audio_output(
        self,
        logits: torch.Tensor,
        x0: torch.Tensor,
        attention_mask: torch.Tensor | None,
        pool: torch.Tensor | None,
        audio_kw: Mapping[str, Any],
    ) -> VLOutput:
        za = F.normalize(self.audio_proj(self._audio_pool(audio_kw["audio_memory"], audio_kw["audio_padding_mask"])), dim=-1)
        if pool is None:
            return VLOutput(logits, audio_embed=za)
        zt = self._text_embed(x0, attention_mask)
        zi = F.normalize(self.image_proj(pool), dim=-1)
        scale = self.logit_scale()
        return VLOutput(logits, zt, zi, (zt @ zi.t()) * scale, za, (za @ zi.t()) * scale)

    def audio_embedding(self, audio: torch.Tensor, audio_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Unit contrastive embedding ``[B, E]`` of an audio batch (masked mean of its memory)."""
        if not self.contrastive or self.audio_proj is None:
            raise RuntimeError("this model was built without an audio stream or with contrastive=False")
        return F.normalize(self.audio_proj(self._audio_pool(*self.encode_audio(audio, audio_lengths))), dim=-1)

    def _text_embed(self, x0: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        if attention_mask is None:
            text = x0.mean(dim=1)
        else:
            w = attention_mask.to(x0.dtype).unsqueeze(-1)
            text = (x0 * w).sum(dim=1) / w.sum(dim=1).clamp_min(1.0)
        return F.normalize(self.text_proj(text), dim=-1)

    def logit_scale(self) -> torch.Tensor:
        """``1 / tau`` of the contrastive similarity (``tau`` bounded below at 0.01, as CLIP bounds its scale at 100)."""
        if not self.contrastive:
            raise RuntimeError("this model was built with contrastive=False")
        return torch.exp(-self.log_tau.clamp(min=math.log(0.01)))

    def text_embedding(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Unit contrastive embedding ``[B, E]`` of a caption batch (no image needed)."""
        if not self.contrastive:
            raise RuntimeError("this model was built with contrastive=False")
        return self._text_embed(self.embed(input_ids), attention_mask)

    def image_embedding(self, image: torch.Tensor) -> torch.Tensor:
        """Unit contrastive embedding ``[B, E]`` of an image batch."""
        if not self.contrastive:
            raise RuntimeError("this model was built with contrastive=False")
        return F.normalize(self.image_proj(self.encode_image(image).mean(dim=1)), dim=-1)

    # ---- generation ----------------------------------------------------------------------------

    @torch.no_grad()
    def generate(
        self,
        image: torch.Tensor | None = None,
        prompt: str | list[str] | torch.Tensor | None = None,
        *,
        max_new_tokens: int = 32,
        temperature: float = 0.0,
        top_k: int | None = None,
        return_gates: bool = False,
        return_logits: bool = False,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
        audio: torch.Tensor | None = None,
        audio_lengths: torch.Tensor | None = None,
    ) -> GenerateOutput:
        r"""Continue ``prompt`` token by token, conditioned on ``image`` (and ``audio``).

        Args:
            image: ``[B, D]`` / ``[B, N, D]`` image features or ``[B, C, H, W]`` pixels (with
                ``image_backbone``), as in :meth:`forward`; ``None``: no image.
            prompt: ``None`` (every row starts from ``[BOS]``), a string or ``B`` strings (encoded
                with the model's tokenizer as ``[BOS] tokens``, without ``[EOS]``), or token ids
                used as given: a tensor ``[B, T]`` or ``B`` lists of ints. Prompts of different lengths are decoded in groups of
                equal length (no padding enters the attention).
            max_new_tokens: decoding steps at most; the prompt plus the generated tokens must fit
                ``max_len`` (the last generated token is never fed back, so
                ``T + max_new_tokens - 1 <= max_len``).
            temperature: ``0``: greedy (argmax); ``> 0``: sampling from ``softmax(logits / temperature)``.
            top_k: sample among the ``top_k`` most likely tokens only (``temperature > 0``).
            return_gates: also return the token-wise gate per generated token and layer
                (``fusion="gate"`` only: the other fusions have no gate; needs an image or audio).
            return_logits: also return the logits each token was chosen from.
            use_cache: decode with the key/value cache (self-attention keys/values cached per
                layer, the image memory and its cross-attention keys/values computed once).
                ``False`` recomputes the whole sequence at every step (the reference the cache is
                tested against: same tokens, logits within 1e-5).
            generator: the random generator of sampling.
            audio: audio feature frames ``[B, F, audio_mels]`` (a decoder built with
                ``audio_mels``), as in :meth:`forward`; encoded once, and with ``use_cache`` the
                audio cross-attention keys/values of every layer are computed once, like the
                image memory's. ``None``: no audio stream.
            audio_lengths: real frames per row ``[B]`` (default: all ``F``).

        Returns:
            a :class:`GenerateOutput`. Rows stop at ``[EOS]``; decoding ends when every row has.

        Runs in eval mode (no dropout); the model's train/eval mode is restored afterwards.
        """
        from gatelab.multimodal.data.tokenizer import BOS_ID, EOS_ID, PAD_ID

        if audio is not None and self.audio_encoder is None:
            raise ValueError("generate: audio given, but this decoder has no audio stream (audio_mels=None)")
        if audio is None and audio_lengths is not None:
            raise ValueError("generate: audio_lengths given without audio")
        if audio is not None and image is not None and audio.shape[0] != image.shape[0]:
            raise ValueError(f"generate: audio batch {audio.shape[0]} != image batch {image.shape[0]}")
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ValueError(f"generate: max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0):
            raise ValueError(f"generate: temperature must be a finite number >= 0, got {temperature!r}")
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"generate: top_k must be an int >= 1 or None, got {top_k!r}")
        if return_gates and self.fusion != "gate":
            raise ValueError(
                f"generate: return_gates needs fusion='gate'; this model has fusion={self.fusion!r} (no gate)"
            )
        if return_gates and image is None and audio is None:
            raise ValueError(
                "generate: return_gates needs an image or audio (without either the fusion block and its gate "
                "are skipped)"
            )
        device = self.tok_emb.weight.device
        B = image.shape[0] if image is not None else (audio.shape[0] if audio is not None else None)
        rows: list[list[int]]
        if prompt is None:
            rows = [[BOS_ID]] * (B or 1)
        elif isinstance(prompt, torch.Tensor):
            if (
                prompt.dim() != 2
                or prompt.dtype not in (torch.long, torch.int32, torch.int64)
                or prompt.shape[1] < 1
            ):
                raise ValueError(
                    f"generate: prompt ids must be an integer tensor [B, T >= 1], got {tuple(prompt.shape)} {prompt.dtype}"
                )
            rows = prompt.tolist()
        elif isinstance(prompt, list) and prompt and all(isinstance(r, (list, tuple)) for r in prompt):
            if not all(r and all(isinstance(t, int) and not isinstance(t, bool) for t in r) for r in prompt):
                raise ValueError("generate: token id prompts must be non-empty lists of ints")
            rows = [list(r) for r in prompt]
        else:
            texts = [prompt] if isinstance(prompt, str) else list(prompt)
            if self.tokenizer is None:
                raise ValueError(
                    "generate: a text prompt needs the model's tokenizer (set_tokenizer); pass token ids instead"
                )
            rows = [
                [BOS_ID, *[t for t in e.ids if t not in (BOS_ID, EOS_ID)]]
                for e in self.tokenizer.encode_batch(texts)
            ]
        if B is None:
            B = len(rows)
        elif len(rows) == 1 and B > 1:
            rows = rows * B
        if len(rows) != B:
            raise ValueError(f"generate: {len(rows)} prompts for {B} images")
        longest = max(len(r) for r in rows)
        if longest + max_new_tokens - 1 > self.max_len:
            raise ValueError(
                f"generate: prompt of {longest} tokens + max_new_tokens={max_new_tokens} - 1 > max_len={self.max_len}"
            )
        if image is not None:
            image = image.to(device)
        if audio is not None:
            audio = audio.to(device)
            if audio_lengths is not None:
                audio_lengths = audio_lengths.to(device)
        was_training = self.training
        self.eval()
        try:
            groups: dict[int, list[int]] = {}
            for i, r in enumerate(rows):
                groups.setdefault(len(r), []).append(i)
            parts = []
            for idx in groups.values():
                ids = torch.tensor([rows[i] for i in idx], dtype=torch.long, device=device)
                sel = torch.tensor(idx, device=device)
                img = None if image is None else image[sel]
                aud = None if audio is None else (audio[sel], None if audio_lengths is None else audio_lengths[sel])
                parts.append(
                    (
                        idx,
                        self._decode(
                            ids,
                            img,
                            max_new_tokens,
                            temperature,
                            top_k,
                            return_gates,
                            return_logits,
                            use_cache,
                            generator,
                            EOS_ID,
                            PAD_ID,
                            aud,
                        ),
                    )
                )
        finally:
            self.train(was_training)
        S = max(p[1][0].shape[1] for p in parts)
        seqs = torch.full((B, S), PAD_ID, dtype=torch.long, device=device)
        lengths = torch.zeros(B, dtype=torch.long, device=device)
        finished = torch.zeros(B, dtype=torch.bool, device=device)
        logits = torch.zeros(B, S, self.vocab_size, device=device) if return_logits else None
        gates = None
        for idx, (sq, ln, fin, lg, gt) in parts:
            t = torch.tensor(idx, device=device)
            seqs[t, : sq.shape[1]] = sq
            lengths[t], finished[t] = ln, fin
            if logits is not None:
                logits[t, : lg.shape[1]] = lg.to(logits.dtype)
            if gt is not None:
                if gates is None:
                    gates = torch.zeros(B, S, *gt.shape[2:], device=device, dtype=gt.dtype)
                gates[t, : gt.shape[1]] = gt
        tok = self.tokenizer
        texts_out = None
        if tok is not None:
            texts_out = tok.decode_batch(
                [seqs[i, : int(lengths[i])].tolist() for i in range(B)], skip_special_tokens=True
            )
        return GenerateOutput(seqs, lengths, finished, texts_out, logits, gates)

    def _decode(
        self,
        ids: torch.Tensor,
        image: torch.Tensor | None,
        max_new_tokens: int,
        temperature: float,
        top_k: int | None,
        return_gates: bool,
        return_logits: bool,
        use_cache: bool,
        generator: torch.Generator | None,
        eos_id: int,
        pad_id: int,
        audio: tuple[torch.Tensor, torch.Tensor | None] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Decode rows whose prompts ``ids`` ``[B, T]`` have one length; ``(sequences, lengths,
        finished, logits, gates)`` as in :class:`GenerateOutput`. ``audio``: ``(features,
        lengths)`` of these rows, encoded once here."""
        from gatelab.core import capture_gates

        B = ids.shape[0]
        caches = [LayerCache() for _ in self.layers] if use_cache else None
        memory = pool = None
        if image is not None:
            if image.shape[0] != B:
                raise ValueError(f"generate: image batch {image.shape[0]} != prompt batch {B}")
            memory = self.encode_image(image)
            pool = memory.mean(dim=1)
        audio_kw = self._audio_memory(B, *audio, None) if audio is not None else {}
        out_tokens: list[torch.Tensor] = []
        out_logits: list[torch.Tensor] = []
        out_gates: list[torch.Tensor] = []
        done = torch.zeros(B, dtype=torch.bool, device=ids.device)
        lengths = torch.zeros(B, dtype=torch.long, device=ids.device)
        seq = ids
        new = ids  # tokens not yet fed
        for _ in range(max_new_tokens):
            with contextlib.ExitStack() as stack:
                gates = stack.enter_context(capture_gates(self, "layers.*.gate")) if return_gates else None
                if caches is None:
                    x = self.embed(seq)
                    for layer in self.layers:
                        x = layer(x, memory, pool, **audio_kw)
                else:
                    x = self.embed(new, start=caches[0].length)
                    for layer, cache in zip(self.layers, caches):
                        x = layer(x, memory, pool, cache=cache, **audio_kw)
                step = self.head(self.final_norm(x[:, -1]))  # [B, V]
            if gates is not None:
                g = [gates[f"layers.{i}.gate"][:, -1] for i in range(len(self.layers))]  # [B, G] each
                out_gates.append(torch.stack(g, dim=1))  # [B, L, G]
            if return_logits:
                out_logits.append(step)
            token = self._choose(step, temperature, top_k, generator)
            token = torch.where(done, torch.full_like(token, pad_id), token)
            lengths += (~done).long()
            out_tokens.append(token)
            done = done | (token == eos_id)
            if bool(done.all()):
                break
            new = token[:, None]
            seq = torch.cat([seq, new], dim=1)
        sequences = torch.stack(out_tokens, dim=1)
        logits = torch.stack(out_logits, dim=1) if return_logits else None
        gate_t = torch.stack(out_gates, dim=1) if return_gates else None
        if gate_t is not None or logits is not None:
            pad = torch.arange(sequences.shape[1], device=ids.device)[None, :] >= lengths[:, None]  # [B, S]
            if gate_t is not None:
                gate_t = gate_t.masked_fill(pad.view(*pad.shape, *[1] * (gate_t.dim() - 2)), 0.0)
            if logits is not None:
                logits = logits.masked_fill(pad[:, :, None], 0.0)
        return sequences, lengths, done, logits, gate_t

    @staticmethod
    def _choose(
        logits: torch.Tensor, temperature: float, top_k: int | None, generator: torch.Generator | None
    ) -> torch.Tensor:
        """The next token ``[B]`` from ``logits`` ``[B, V]``: argmax at temperature 0, else a sample."""
        if temperature == 0:
            return logits.argmax(dim=-1)
        scaled = logits.float() / temperature
        if top_k is not None and top_k < scaled.shape[-1]:
            kth = scaled.topk(top_k, dim=-1).values[:, -1:]
            scaled = scaled.masked_fill(scaled < kth, float("-inf"))
        probs = torch.softmax(scaled, dim=-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)


# --------------------------------------------------------------------------- registry entries (gatelab.multimodal.registry)


def _example_inputs(model: nn.Module, batch: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, model.vocab_size, (batch, 7), generator=g)
    mask = torch.ones(batch, 7, dtype=torch.bool)
    mask[0, 5:] = False
    image = torch.randn(batch, 4, model.image_encoder.image_dim, generator=g)
    return (ids, image), {"attention_mask": mask}


_TINY = dict(
    vocab_size=50, d_model=16, num_layers=2, num_heads=2, image_dim=12, max_len=16, max_image_tokens=8
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class VLGatedDecoderConfig(GatedVLDecoderConfig):
    """:class:`GatedVLDecoderConfig` of registry entry ``vl-gated-decoder`` (:class:`VLGatedDecoder`):
    ``fusion`` is ``"gate"`` (the token-wise gate). Presets: ``gate-scalar`` (the entry's) and
    ``gate-vector``, as in :class:`GatedVLDecoderConfig`."""

    fusion: Literal["gate"] = "gate"

    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "gate-scalar": {"fusion": "gate", "gate_mode": "scalar"},
        "gate-vector": {"fusion": "gate", "gate_mode": "vector"},
    }


@dataclasses.dataclass(frozen=True, kw_only=True)
class VLNoGateDecoderConfig(GatedVLDecoderConfig):
    """:class:`GatedVLDecoderConfig` of registry entry ``vl-nogate-decoder`` (:class:`VLNoGateDecoder`):
    ``fusion`` is ``"add"`` (no gate, the paper's ``gate_none``; ``gate_mode``, ``gate_init`` and
    ``film`` are unused). Preset: ``no-gate``."""

    fusion: Literal["add"] = "add"

    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {"no-gate": {"fusion": "add"}}


@dataclasses.dataclass(frozen=True, kw_only=True)
class VLVisualDecoderConfig(GatedVLDecoderConfig):
    """:class:`GatedVLDecoderConfig` of registry entry ``vl-visual-decoder`` (:class:`VLVisualDecoder`):
    ``fusion`` is ``"visual"`` (gate fixed at 1; ``gate_mode``, ``gate_init`` and ``film`` are
    unused). Preset: ``always-visual``."""

    fusion: Literal["visual"] = "visual"

    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {"always-visual": {"fusion": "visual"}}


class VLGatedDecoder(GatedVLDecoder):
    """Registry ``vl-gated-decoder``: vision-language decoder with a token-wise gate between text
    and visual context (FiLM, SE, InfoNCE). :class:`GatedVLDecoder` with config
    :class:`VLGatedDecoderConfig` (``fusion="gate"``); same modules and state dict."""

    config_class: ClassVar[type[GatedVLDecoderConfig]] = VLGatedDecoderConfig


class VLNoGateDecoder(GatedVLDecoder):
    """Registry ``vl-nogate-decoder``: baseline without the gate, the cross-attention output added
    to the residual (the paper's ``gate_none``). :class:`GatedVLDecoder` with config
    :class:`VLNoGateDecoderConfig` (``fusion="add"``); same modules and state dict."""

    config_class: ClassVar[type[GatedVLDecoderConfig]] = VLNoGateDecoderConfig


class VLVisualDecoder(GatedVLDecoder):
    """Registry ``vl-visual-decoder``: baseline with the gate fixed fully open, every token takes
    the (normalised) visual stream. :class:`GatedVLDecoder` with config
    :class:`VLVisualDecoderConfig` (``fusion="visual"``); same modules and state dict."""

    config_class: ClassVar[type[GatedVLDecoderConfig]] = VLVisualDecoderConfig
