"""DnCNN-style denoising baseline (Zhang et al., IEEE TIP 2017) for the MAXIM reproduction.

.. code-block:: text

    r = Conv3x3(ReLU(BN(Conv3x3( ... ReLU(Conv3x3(y)) ...))))     depth conv layers, width F
    x_hat = y - r                                                   residual learning: r ~ the noise

Layer 1: Conv(C -> F) + ReLU; layers 2..depth-1: Conv(F -> F) + BatchNorm + ReLU; last layer:
Conv(F -> C). Input and output ``[B, C, H, W]`` of any size (zero padding keeps the size).
Receptive field ``(2 depth + 1)`` pixels square.

This is a plain convolutional baseline with no gate, so it is deliberately *not* registered in
:mod:`gatelab.core.registry` (every registered model is assembled from core gates); the
restoration task builds it by name (``model_name="dncnn"``, see
:mod:`gatelab.vision.tasks.restoration`).

Paper: Zhang, Zuo, Chen, Meng, Zhang, "Beyond a Gaussian Denoiser: Residual Learning of Deep CNN
for Image Denoising", IEEE TIP 2017 (DnCNN-S depth 17, CDnCNN-B depth 20, width 64).

Deviations: in our repro it is trained with MAXIM's loss, optimizer and schedule (the paper
uses an MSE loss on the residual and Adam with a step schedule); He-normal init (the official
MatConvNet code uses an orthogonal-like init); the convolutions before BatchNorm have no bias.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DnCNN"]


class DnCNN(nn.Module):
    """DnCNN: ``x_hat = y - f(y)`` with ``f`` a ``depth``-layer conv/BN/ReLU stack of width ``features``.

    Args:
        in_channels: image channels ``C`` (3 colour, 1 grey).
        features: ``F`` (paper: 64).
        depth: number of conv layers (paper: 17 for DnCNN-S, 20 for CDnCNN-B); at least 2.
        zero_init_last: zero-initialise the last conv so the untrained model is the identity
            (ours; default off = He-normal init everywhere).
    """

    def __init__(
        self, in_channels: int = 3, features: int = 64, depth: int = 17, *, zero_init_last: bool = False
    ) -> None:
        super().__init__()
        if depth < 2 or features < 1 or in_channels < 1:
            raise ValueError(
                f"DnCNN: need depth >= 2, features >= 1, in_channels >= 1, got {depth}, {features}, {in_channels}"
            )
        self.in_channels = in_channels
        layers: list[nn.Module] = [nn.Conv2d(in_channels, features, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [
                nn.Conv2d(features, features, 3, padding=1, bias=False),
                nn.BatchNorm2d(features),
                nn.ReLU(inplace=True),
            ]
        layers.append(nn.Conv2d(features, in_channels, 3, padding=1))
        self.body = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if zero_init_last:  # start as the identity x_hat = y (residual r = 0)
            nn.init.zeros_(self.body[-1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, C, H, W]`` (noisy) -> ``[B, C, H, W]`` (denoised)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"DnCNN: input must be [B, C={self.in_channels}, H, W], got {tuple(x.shape)}")
        return x - self.body(x)
