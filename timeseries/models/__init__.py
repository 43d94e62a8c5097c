"""Models of gatelab.timeseries (each registered with gatelab.core.registry).

``gateformer`` / ``itransformer`` (:class:`Gateformer`, the latter with the temporal branch and
gates off) and ``tft`` (:class:`TemporalFusionTransformer`).
"""

from .gateformer import Gateformer
from .tft import InterpretableMultiHeadAttention, TemporalFusionTransformer, TFTOutput

__all__ = ["Gateformer", "InterpretableMultiHeadAttention", "TFTOutput", "TemporalFusionTransformer"]
