"""Models of gatelab.multimodal (registered in :mod:`gatelab.multimodal.registry`).

Names are exported lazily (PEP 562): importing one model imports only its own module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gatelab.core.layers.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "AudioEncoder": "audio_encoder",
    "AudioEncoderConfig": "audio_encoder",
    "FUSIONS": "vl_decoder",
    "FiLM": "vl_decoder",
    "GatedVLDecoder": "vl_decoder",
    "GatedVLDecoderConfig": "vl_decoder",
    "ImageEncoder": "vl_decoder",
    "ImageEncoderConfig": "vl_decoder",
    "VLDecoderLayer": "vl_decoder",
    "VLGatedDecoder": "vl_decoder",
    "VLGatedDecoderConfig": "vl_decoder",
    "VLNoGateDecoder": "vl_decoder",
    "VLNoGateDecoderConfig": "vl_decoder",
    "VLOutput": "vl_decoder",
    "VLVisualDecoder": "vl_decoder",
    "VLVisualDecoderConfig": "vl_decoder",
    "contrastive_loss": "vl_decoder",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from .audio_encoder import AudioEncoder, AudioEncoderConfig
    from .vl_decoder import (
        FUSIONS,
        FiLM,
        GatedVLDecoder,
        GatedVLDecoderConfig,
        ImageEncoder,
        ImageEncoderConfig,
        VLDecoderLayer,
        VLGatedDecoder,
        VLGatedDecoderConfig,
        VLNoGateDecoder,
        VLNoGateDecoderConfig,
        VLOutput,
        VLVisualDecoder,
        VLVisualDecoderConfig,
        contrastive_loss,
    )
