"""Models of gatelab.timeseries (each registered with gatelab.core.registry)."""

from . import (
    gateformer,  # registers gateformer, itransformer
    tft,  # Temporal Fusion Transformer (registers "tft")
)
