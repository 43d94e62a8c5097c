"""Models of gatelab.timeseries (each registered with gatelab.core.registry)."""

from . import gateformer  # registers gateformer, itransformer
from . import tft  # Temporal Fusion Transformer (registers "tft")
