"""DnCNN-style denoising baseline (Zhang et al., IEEE TIP 2017) for the MAXIM reproduction.

.. code-block:: text

    r = Conv3x3(ReLU(BN(Conv3x3( ... ReLU(Conv3x3(y)) ...))))     num_layers conv layers, width F
    x_hat = y - r                                                   residual learning: r ~ the noise

Layer 1: Conv(C -> F) + ReLU; layers 2..L-1: Conv(F -> F) + BatchNorm + ReLU; last layer:
Conv(F -> C), ``L = num_layers`` (the paper's "depth"). Input and output ``[B, C, H, W]`` of any
size (zero padding keeps the size). Receptive field ``(2 L + 1)`` pixels square.

A plain convolutional baseline with no gate: registered as ``dncnn`` with the tag ``baseline``
(its factory :func:`gatelab.vision.tasks.restoration.dncnn` checks the data's channels), the
rival of MAXIM in the ``maxim`` table.

Paper: Zhang, Zuo, Chen, Meng, Zhang, "Beyond a Gaussian Denoiser: Residual Learning of Deep CNN
for Image Denoising", IEEE TIP 2017 (DnCNN-S depth 17, CDnCNN-B depth 20, width 64: the presets
``DnCNN-S`` and ``CDnCNN-B`` of :class:`DnCNNConfig`).

Deviations: in our repro it is trained with MAXIM's loss, optimizer and cosine schedule, without
MAXIM's warm-up (the paper uses an MSE loss on the residual and Adam with a step schedule); He-normal init (the official
MatConvNet code uses an orthogonal-like init); the convolutions before BatchNorm have no bias.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from gatelab.core.config import ConfigError, ModelConfig, PositiveInt
from gatelab.core.layers.checks import check_float_input
from gatelab.core.pretrained import PretrainedMixin

__all__ = ["DnCNN", "DnCNNConfig"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class DnCNNConfig(ModelConfig):
    """Hyper-parameters of :class:`DnCNN`.

    Fields:
        in_channels: image channels ``C`` (3 colour, 1 grey); the output has as many.
        features: ``F``, the width of the hidden convolutions (paper: 64).
        num_layers: conv layers ``L``, at least 2 (the paper's "depth": 17 for DnCNN-S, 20 for
            CDnCNN-B).
        zero_init_last: zero-initialise the last conv so the untrained model is the identity
            (ours; default off = He-normal init everywhere).
        check_finite: (ours, default off) raise on NaN/inf input values, naming the first
            (a full pass over the input per call); non-float input is always an error.

    Presets: ``DnCNN-S`` (grey, 17 layers: the paper's known-noise-level model) and ``CDnCNN-B``
    (colour, 20 layers: its blind colour model), both of width 64.
    """

    in_channels: PositiveInt = 3
    features: PositiveInt = 64
    num_layers: PositiveInt = 17
    zero_init_last: bool = False
    check_finite: bool = False

    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "DnCNN-S": {"in_channels": 1, "features": 64, "num_layers": 17},
        "CDnCNN-B": {"in_channels": 3, "features": 64, "num_layers": 20},
    }

    def check(self) -> None:
        if self.num_layers < 2:
            raise ConfigError(
                f"DnCNNConfig.num_layers={self.num_layers}: expected an integer >= 2 (first and last conv)"
            )


class DnCNN(PretrainedMixin, nn.Module):
    """DnCNN: ``x_hat = y - f(y)`` with ``f`` a ``num_layers``-layer conv/BN/ReLU stack of width ``features``.

    Args:
        config: a :class:`DnCNNConfig` (or a mapping of its fields); ``None``: the defaults.
        **overrides: config fields replacing ``config``'s (``DnCNN(in_channels=1, num_layers=5)``).
    """

    config_class = DnCNNConfig

    def __init__(self, config: DnCNNConfig | Mapping[str, Any] | None = None, /, **overrides: Any) -> None:
        super().__init__()
        self.config = cfg = DnCNNConfig.build(config, **overrides)
        self.in_channels = c_in = cfg.in_channels
        f = cfg.features
        layers: list[nn.Module] = [nn.Conv2d(c_in, f, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(cfg.num_layers - 2):
            layers += [nn.Conv2d(f, f, 3, padding=1, bias=False), nn.BatchNorm2d(f), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(f, c_in, 3, padding=1))
        self.body = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if cfg.zero_init_last:  # start as the identity x_hat = y (residual r = 0)
            nn.init.zeros_(self.body[-1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, C, H, W]`` (noisy) -> ``[B, C, H, W]`` (denoised)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"DnCNN: input must be [B, C={self.in_channels}, H, W], got {tuple(x.shape)}")
        check_float_input("DnCNN", "x", x, check_finite=self.config.check_finite)
        return x - self.body(x)
