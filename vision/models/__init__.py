"""Models of gatelab.vision (registered in :mod:`gatelab.vision.registry`).

``attention-unet-2d`` / ``attention-unet-3d`` (:class:`AttentionUNet2d` / :class:`AttentionUNet3d`:
:class:`UNet` with ``spatial_dims`` fixed, gates on by default, ``attention=False`` the baseline;
:class:`AttentionUNet` always has the gates) and ``maxim`` / ``maxim-1s`` / ``maxim-2s`` /
``maxim-3s`` (:class:`Maxim`); ``dncnn`` (:class:`DnCNN`) is the restoration baseline (no gate).
Each model is built from its frozen config (``<Model>Config``, with named presets).

Names are exported lazily (PEP 562): importing one model imports only its own module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gatelab.core.layers.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "DnCNN": "dncnn",
    "DnCNNConfig": "dncnn",
    "Maxim": "maxim",
    "MaximConfig": "maxim",
    "AttentionUNet": "unet",
    "AttentionUNet2d": "unet",
    "AttentionUNet2dConfig": "unet",
    "AttentionUNet3d": "unet",
    "AttentionUNet3dConfig": "unet",
    "UNet": "unet",
    "UNetConfig": "unet",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from .dncnn import DnCNN, DnCNNConfig
    from .maxim import Maxim, MaximConfig
    from .unet import (
        AttentionUNet,
        AttentionUNet2d,
        AttentionUNet2dConfig,
        AttentionUNet3d,
        AttentionUNet3dConfig,
        UNet,
        UNetConfig,
    )
