"""UNet(topology="monai"): MONAI 1.6 AttentionUnet's topology -- same parameter count, FLOPs and,
with MONAI's weights copied (gatelab.vision.models.unet_port.monai_state_dict), the same logits
(float32, relative 1e-4 of the largest: oneDNN vs native convolutions through train-mode norms)
and gradients (float64, relative 1e-9). Runs when monai is installed (the ``anchors`` group)."""

from __future__ import annotations

import copy

import pytest
import torch

from gatelab.core.config import ConfigError
from gatelab.vision.models.unet import UNet, UNetConfig, unet_param_count
from gatelab.vision.models.unet_port import monai_state_dict


def _ours(nd: int, fs: float, **kw) -> UNet:
    cfg = UNetConfig.from_preset(f"attention-unet-{nd}d-monai", in_channels=1, num_classes=2, feature_scale=fs, **kw)
    return UNet(cfg)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


@pytest.mark.parametrize(("nd", "size"), [(3, (16, 32, 16)), (2, (32, 48))])
def test_equal_to_monai_with_copied_weights(nd, size):
    nets = pytest.importorskip("monai.networks.nets")
    fs = 16
    widths = [int(c / fs) for c in (64, 128, 256, 512, 1024)]
    torch.manual_seed(0)
    monai = nets.AttentionUnet(nd, 1, 2, channels=widths, strides=(2, 2, 2, 2)).train()
    ours = _ours(nd, fs).train()
    ours.load_state_dict(monai_state_dict(monai.state_dict(), 4), strict=True)
    assert unet_param_count(ours) == sum(p.numel() for p in monai.parameters())
    x = torch.randn(1, 1, *size)
    m64, o64 = copy.deepcopy(monai).double(), copy.deepcopy(ours).double()
    with torch.no_grad():
        assert _rel(ours(x), monai(x)) < 1e-4
    ya, yb = m64(x.double()), o64(x.double())
    assert _rel(yb, ya) < 1e-9
    ya.square().mean().backward()
    yb.square().mean().backward()
    got = dict(o64.named_parameters())
    pairs = monai_state_dict({k: p.grad for k, p in m64.named_parameters()}, 4)
    for key, g in pairs.items():
        if g.abs().max() < 1e-12:  # conv biases under train-mode batch norm: zero up to rounding
            continue
        assert _rel(got[key].grad, g) < 1e-9, key


def test_same_flops_as_monai():
    nets = pytest.importorskip("monai.networks.nets")
    from torch.utils.flop_counter import FlopCounterMode

    monai = nets.AttentionUnet(3, 1, 2, channels=[4, 8, 16, 32, 64], strides=(2, 2, 2, 2))
    ours = _ours(3, 16)
    x = torch.randn(1, 1, 32, 16, 16)
    flops = []
    for m in (monai, ours):
        # oneDNN off: the counter sees aten.convolution (our oneDNN path is the same multiply-adds)
        with FlopCounterMode(display=False) as c, torch.backends.mkldnn.flags(enabled=False):
            m(x).mean().backward()
        flops.append(c.get_total_flops())
    assert flops[0] == flops[1] > 0


def test_maps_and_errors():
    m = _ours(2, 16)
    logits, maps = m(torch.randn(2, 1, 32, 16), return_attention=True)
    assert logits.shape == (2, 2, 32, 16)
    assert list(maps) == ["att1", "att2", "att3", "att4"]  # every level, the finest included
    assert maps["att1"].shape == (2, 1, 32, 16) and maps["att4"].shape == (2, 1, 4, 2)
    with pytest.raises(ValueError, match=r"divisible by 2\^depth = 16, got \(24, 16\)"):
        m(torch.randn(1, 1, 24, 16))
    with pytest.raises(ConfigError, match=r"topology='monai' fixes these fields: deep_supervision=True"):
        UNet(spatial_dims=2, attention=True, topology="monai", gates_per_level=1)
    with pytest.raises(KeyError, match=r"no gatelab parameter for MONAI key 'model\.3\.weight'"):
        monai_state_dict({"model.3.weight": torch.zeros(1)}, 4)


@pytest.mark.parametrize("batch", [1, 3])
def test_channels_last_memory_format_keeps_the_values(batch):
    """``memory_format="auto"`` runs the 2D MONAI topology in channels_last (pointwise GEMMs for the
    1x1 convolutions): logits and every gradient equal the contiguous model's (float64, relative
    1e-9; batch 1 catches instance norm's wrong backward for a channels_last gradient, which the
    layout conversion must avoid), logits come back contiguous, and float32 agrees to 1e-4."""
    cl = _ours(2, 16).train()
    assert cl.config.channels_last and not _ours(3, 16).config.channels_last
    ref = _ours(2, 16, memory_format="contiguous").train()
    assert not ref.config.channels_last
    ref.load_state_dict(cl.state_dict())
    x = torch.randn(batch, 1, 32, 48)
    with torch.no_grad():
        y32 = cl(x)
        assert y32.is_contiguous() and _rel(y32, ref(x)) < 1e-4
    cl, ref = cl.double(), ref.double()
    y_cl, y_ref = cl(x.double()), ref(x.double())
    assert _rel(y_cl, y_ref) < 1e-9
    y_cl.square().mean().backward()
    y_ref.square().mean().backward()
    grads = dict(ref.named_parameters())
    for name, p in cl.named_parameters():
        if grads[name].grad.abs().max() < 1e-12:  # conv biases under train-mode batch norm
            continue
        assert _rel(p.grad, grads[name].grad) < 1e-9, name
