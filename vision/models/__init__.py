"""Models of gatelab.vision (each registered with gatelab.core.registry).

``attention-unet-2d`` / ``attention-unet-3d`` (:class:`AttentionUNet`, :class:`UNet` with the gates
off) and ``maxim`` / ``maxim-1s`` / ``maxim-2s`` / ``maxim-3s`` (:class:`Maxim`).
"""

from .maxim import Maxim, MaximConfig
from .unet import AttentionUNet, UNet

__all__ = ["AttentionUNet", "Maxim", "MaximConfig", "UNet"]
