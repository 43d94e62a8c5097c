"""Models of gatelab.vision (each registered with gatelab.core.registry)."""

from . import (
    maxim,
    unet,  # registers attention-unet-2d / attention-unet-3d
)
