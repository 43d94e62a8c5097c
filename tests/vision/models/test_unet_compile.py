"""torch.compile of the attention U-Net (the benchmark's ``compile`` preset): fused gates and the
oneDNN convolution path compile (the oneDNN routing steps aside while tracing) and agree with eager
(float32, relative 1e-4 of the largest logit / gradient). Slow: compilation takes minutes on a
busy 2-core CPU."""

from __future__ import annotations

import copy

import pytest
import torch

from gatelab.vision.models.unet import UNet


@pytest.mark.slow
@pytest.mark.parametrize("topology", ["official", "monai"])
def test_compiled_matches_eager(topology):
    kw = {"gates_per_level": 1, "deep_supervision": False} if topology == "monai" else {}
    eager = UNet(
        spatial_dims=3, in_channels=1, num_classes=2, filters=(4, 8, 16), feature_scale=1, attention=True,
        topology=topology, **kw,
    ).train()  # fmt: skip
    compiled = torch.compile(copy.deepcopy(eager))
    x = torch.randn(1, 1, 8, 8, 8)
    ya, yb = eager(x), compiled(x)
    assert ((ya - yb).abs().max() / ya.abs().max()).item() < 1e-4
    ya.square().mean().backward()
    yb.square().mean().backward()
    top = max(p.grad.abs().max() for p in eager.parameters())
    for (name, p), q in zip(eager.named_parameters(), compiled.parameters(), strict=True):
        scale = p.grad.abs().max()
        if scale < 1e-5 * top:
            continue  # conv biases under train-mode batch norm: zero up to rounding
        assert ((p.grad - q.grad).abs().max() / scale).item() < 1e-4, name
