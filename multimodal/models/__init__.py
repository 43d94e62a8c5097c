"""Models of gatelab.multimodal (each registered with gatelab.core.registry)."""

from .decoder import FUSIONS, FiLM, GatedVLDecoder, ImageEncoder, VLDecoderLayer, VLOutput, contrastive_loss

__all__ = [
    "FUSIONS",
    "FiLM",
    "GatedVLDecoder",
    "ImageEncoder",
    "VLDecoderLayer",
    "VLOutput",
    "contrastive_loss",
]
