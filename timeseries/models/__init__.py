"""Models of gatelab.timeseries (registered in :mod:`gatelab.timeseries.registry`).

``gateformer`` / ``itransformer`` (:class:`Gateformer`, the latter with the temporal branch and
gates off) and ``tft`` (:class:`TemporalFusionTransformer`).

Names are exported lazily (PEP 562): importing one model imports only its own module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gatelab.core.layers.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "Gateformer": "gateformer",
    "InterpretableMultiHeadAttention": "tft",
    "TFTOutput": "tft",
    "TemporalFusionTransformer": "tft",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from .gateformer import Gateformer
    from .tft import InterpretableMultiHeadAttention, TemporalFusionTransformer, TFTOutput
