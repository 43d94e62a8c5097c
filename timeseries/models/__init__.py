"""Models of gatelab.timeseries (each registered with gatelab.core.registry)."""

from . import tft  # Temporal Fusion Transformer (registers "tft")
