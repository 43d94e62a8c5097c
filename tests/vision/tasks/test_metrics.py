"""Losses and PSNR/SSIM against hand-written computations on small images."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gatelab.vision.tasks.metrics import (
    MetricOptions,
    charbonnier_loss,
    frequency_loss,
    prepare_for_metrics,
    psnr_ssim_metrics,
    restoration_loss,
    rgb_to_y,
)


def test_charbonnier_and_frequency_loss_by_hand():
    p, t = torch.rand(2, 3, 4, 5), torch.rand(2, 3, 4, 5)
    d = (p - t).double().numpy()
    char = np.mean(np.sqrt(d**2 + 1e-6))
    assert charbonnier_loss(p, t).item() == pytest.approx(char, rel=1e-5)
    # explicit 2-D DFT: F[u, v] = sum_{y, x} d[y, x] exp(-2 pi i (u y / H + v x / W))
    h, w = 4, 5
    total = 0.0
    for b in range(2):
        for c in range(3):
            for u in range(h):
                for v in range(w):
                    f = sum(
                        d[b, c, y, x]
                        * complex(math.cos(a := -2 * math.pi * (u * y / h + v * x / w)), math.sin(a))
                        for y in range(h)
                        for x in range(w)
                    )
                    total += abs(f.real) + abs(f.imag)
    assert frequency_loss(p, t).item() == pytest.approx(total / (2 * 3 * h * w * 2), rel=1e-5)


def test_restoration_loss_sums_every_stage_and_scale():
    t = torch.rand(1, 3, 8, 8)
    outs = [
        [torch.rand(1, 3, 4, 4), torch.rand(1, 3, 8, 8)],
        [torch.rand(1, 3, 4, 4), torch.rand(1, 3, 8, 8)],
    ]
    t_small = t[..., 1::2, 1::2]  # nearest-exact halving = the model's input pyramid
    ref = sum(
        charbonnier_loss(o, tt) + 0.1 * frequency_loss(o, tt)
        for row in outs
        for o, tt in zip(row, (t_small, t))
    )
    torch.testing.assert_close(restoration_loss(outs, t), ref)
    torch.testing.assert_close(
        restoration_loss(outs[1][1], t, freq_weight=0.0), charbonnier_loss(outs[1][1], t)
    )


def _np_y(img: np.ndarray) -> np.ndarray:
    """Official run_eval.to_y_channel on HWC images in [0, 255]."""
    x = img.astype(np.float32) / 255.0
    return (np.dot(x, [65.481, 128.553, 24.966]) + 16.0)[..., None]


def _np_psnr(a: np.ndarray, b: np.ndarray, crop: int, y: bool) -> float:
    """Official run_eval.calculate_psnr (HWC, 0-255)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    if crop:
        a, b = a[crop:-crop, crop:-crop], b[crop:-crop, crop:-crop]
    if y:
        a, b = _np_y(a).astype(np.float64), _np_y(b).astype(np.float64)
    mse = np.mean((a - b) ** 2)
    return 20.0 * math.log10(255.0 / math.sqrt(mse))


def _np_ssim_channel(a: np.ndarray, b: np.ndarray) -> float:
    """BasicSR's _ssim: 11x11 Gaussian window (sigma 1.5), valid region only, explicit loops."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = np.array([math.exp(-((i - 5) ** 2) / (2 * 1.5**2)) for i in range(11)])
    win = np.outer(g, g) / np.outer(g, g).sum()
    h, w = a.shape
    vals = []
    for y in range(h - 10):
        for x in range(w - 10):
            pa, pb = a[y : y + 11, x : x + 11], b[y : y + 11, x : x + 11]
            mu_a, mu_b = (win * pa).sum(), (win * pb).sum()
            va = (win * pa * pa).sum() - mu_a**2
            vb = (win * pb * pb).sum() - mu_b**2
            cov = (win * pa * pb).sum() - mu_a * mu_b
            vals.append(
                ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2))
            )
    return float(np.mean(vals))


@pytest.mark.parametrize(("y_channel", "crop"), [(False, 0), (True, 0), (False, 2), (True, 3)])
def test_psnr_ssim_match_official_protocol(y_channel, crop):
    rng = np.random.default_rng(0)
    clean = [rng.integers(0, 256, (18, 17, 3)).astype(np.uint8) for _ in range(2)]
    noisy = [np.clip(c + rng.normal(0, 20, c.shape), 0, 255) for c in clean]  # float predictions
    metrics = psnr_ssim_metrics()
    opts = MetricOptions(y_channel=y_channel, crop_border=crop)
    for c, n in zip(clean, noisy):
        pred = torch.from_numpy(n / 255.0).permute(2, 0, 1)[None]
        tgt = torch.from_numpy(c / 255.0).permute(2, 0, 1)[None]
        p, t = prepare_for_metrics(pred, tgt, opts)
        for m in metrics.values():
            m.update(p, t)
    ref_psnr = np.mean([_np_psnr(n, c, crop, y_channel) for c, n in zip(clean, noisy)])
    ssims = []
    for c, n in zip(clean, noisy):
        a, b = n.astype(np.float64), c.astype(np.float64)
        if crop:
            a, b = a[crop:-crop, crop:-crop], b[crop:-crop, crop:-crop]
        if y_channel:
            a, b = _np_y(a), _np_y(b)
        ssims.append(np.mean([_np_ssim_channel(a[..., k], b[..., k]) for k in range(a.shape[-1])]))
    assert metrics["psnr"].compute().item() == pytest.approx(ref_psnr, abs=1e-4)  # torchmetrics: fp32 state
    assert metrics["ssim"].compute().item() == pytest.approx(float(np.mean(ssims)), abs=1e-5)


def test_prepare_options():
    pred = torch.tensor([[[[-0.1, 0.5004, 1.2]]]])
    tgt = torch.zeros_like(pred)
    p, _ = prepare_for_metrics(pred, tgt, MetricOptions(clip=True, quantize=True))
    assert p.flatten().tolist() == [0.0, 128 / 255, 1.0]
    p, _ = prepare_for_metrics(pred, tgt)  # official: neither clipped nor rounded
    assert p.flatten().tolist() == pytest.approx([-0.1, 0.5004, 1.2])
    white = torch.ones(1, 3, 1, 1)
    assert rgb_to_y(white).item() == pytest.approx(235.0 / 255.0)  # 16 + 219
    assert rgb_to_y(torch.zeros(1, 3, 1, 1)).item() == pytest.approx(16.0 / 255.0)
    with pytest.raises(ValueError, match="prediction shape"):
        prepare_for_metrics(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 3))
