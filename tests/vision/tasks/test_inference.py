"""Sliding-window inference: window placement, exactness on pointwise predictors, the Gaussian
blend vs explicit loops, errors."""

from __future__ import annotations

import itertools

import pytest
import torch
from tolerances import assert_close

from gatelab.vision.tasks.inference import importance_map, sliding_window_inference, window_starts


def test_window_starts():
    assert window_starts(10, 4, 0.5) == [0, 2, 4, 6]
    assert window_starts(11, 4, 0.5) == [0, 2, 4, 6, 7]
    assert window_starts(4, 8, 0.5) == [0]
    assert window_starts(9, 4, 0.0) == [0, 4, 5]


def test_sliding_window_pointwise_predictor_is_exact():
    x = torch.randn(2, 3, 19, 23)
    w = torch.randn(4, 3, 1, 1)

    def f(t):
        return torch.nn.functional.conv2d(t, w)

    for mode in ("gaussian", "constant"):
        out = sliding_window_inference(x, (8, 6), f, overlap=0.5, mode=mode, sw_batch_size=3)
        assert_close(out, f(x), kind="reduction")
    small = torch.randn(1, 3, 5, 4)  # smaller than the window: padded, then cropped
    assert_close(sliding_window_inference(small, 8, f), f(small), kind="reduction")
    vol = torch.randn(1, 3, 9, 7, 8)
    assert_close(
        sliding_window_inference(vol, 4, lambda t: torch.nn.functional.conv3d(t, w[..., None])),
        torch.nn.functional.conv3d(vol, w[..., None]),
        kind="reduction",
    )


def test_sliding_window_blending_by_hand():
    """A predictor that outputs a window-dependent constant: the blend is the weighted mean of the
    windows covering each pixel, computed here by explicit loops."""
    x = torch.zeros(1, 1, 7, 5)
    calls = []

    def f(t):
        out = torch.empty(t.shape[0], 1, *t.shape[2:])
        for i in range(t.shape[0]):
            calls.append(len(calls))
            out[i] = float(len(calls))  # window number 1, 2, 3 ...
        return out

    roi, overlap = (4, 3), 0.5
    got = sliding_window_inference(x, roi, f, overlap=overlap, mode="gaussian", sw_batch_size=2)
    w = importance_map(roi, "gaussian")
    starts = list(itertools.product(window_starts(7, 4, overlap), window_starts(5, 3, overlap)))
    num = torch.zeros(7, 5)
    den = torch.zeros(7, 5)
    for n, (a, b) in enumerate(starts, start=1):
        for i in range(4):
            for j in range(3):
                num[a + i, b + j] += n * w[i, j]
                den[a + i, b + j] += w[i, j]
    assert_close(got[0, 0], num / den)
    # the Gaussian map: peak 1 at the centre of an odd axis, symmetric, floored at 1e-3
    wm = importance_map((5, 4))
    assert float(wm[2].max()) < 1.0 and float(wm.min()) > 0
    assert_close(wm, wm.flip(0))
    assert_close(wm, wm.flip(1))
    assert float(importance_map((5, 7)).max()) == 1.0
    wide = importance_map((64,), sigma_scale=0.05)  # exp(-31.5^2 / (2 * 3.2^2)) << 1e-3 at the edge
    assert float(wide.min()) == pytest.approx(1e-3) and float(wide[0]) == float(wide.min())


def test_sliding_window_errors():
    with pytest.raises(ValueError, match="overlap"):
        sliding_window_inference(torch.zeros(1, 1, 8, 8), 4, lambda t: t, overlap=1.0)
    with pytest.raises(ValueError, match="predictor must map"):
        sliding_window_inference(torch.zeros(1, 1, 8, 8), 4, lambda t: t[:, :, :2])
    with pytest.raises(ValueError, match="logits, maps"):
        sliding_window_inference(torch.zeros(1, 1, 8, 8), 4, lambda t: (t, t, t))
    with pytest.raises(ValueError, match="attention map 'a'"):
        sliding_window_inference(torch.zeros(1, 1, 8, 8), 4, lambda t: (t, {"a": t[0]}))


@pytest.mark.parametrize("roi", [(8, 6), (5, 7, 4), (64,)])
@pytest.mark.parametrize("sigma_scale", [0.125, 0.05])
def test_importance_map_matches_monai(roi, sigma_scale):
    """The Gaussian weights equal MONAI's compute_importance_map (anchors group; skipped without it)."""
    monai_utils = pytest.importorskip("monai.data.utils")
    ref = monai_utils.compute_importance_map(roi, mode="gaussian", sigma_scale=sigma_scale, device="cpu")
    ours = importance_map(roi, "gaussian", sigma_scale)
    assert ours.shape == ref.shape and ours.dtype == ref.dtype
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-7)
    const = monai_utils.compute_importance_map(roi, mode="constant", device="cpu")
    torch.testing.assert_close(importance_map(roi, "constant"), const)


def _pointwise_with_maps(w: torch.Tensor):
    """A pointwise predictor with two 'attention maps': one at the window's resolution, one at
    half resolution (a pooled sigmoid), as the U-Net's gated levels give them."""

    def f(t):
        logits = torch.nn.functional.conv2d(t, w)
        full = torch.sigmoid(t[:, :1])
        return logits, {"att1": full, "att2": torch.nn.functional.avg_pool2d(full, 2)}

    return f


def test_sliding_window_stitches_attention_maps():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 19, 23)
    w = torch.randn(4, 3, 1, 1)
    f = _pointwise_with_maps(w)
    logits, maps = sliding_window_inference(x, (8, 6), f, overlap=0.5, sw_batch_size=3)
    assert_close(logits, torch.nn.functional.conv2d(x, w), kind="reduction")
    assert sorted(maps) == ["att1", "att2"]
    # a full-resolution pointwise map is stitched exactly
    assert_close(maps["att1"], torch.sigmoid(x[:, :1]), kind="reduction")
    # a half-resolution map comes back at the input's size, values inside the map's range
    assert maps["att2"].shape == (2, 1, 19, 23)
    assert float(maps["att2"].min()) > 0 and float(maps["att2"].max()) < 1
    # one window over the whole image: the half-res map is just upsampled (bilinear)
    y = torch.randn(1, 3, 8, 6)
    _, one = sliding_window_inference(y, (8, 6), f)
    ref = torch.nn.functional.interpolate(
        torch.nn.functional.avg_pool2d(torch.sigmoid(y[:, :1]), 2), size=(8, 6), mode="bilinear", align_corners=False
    )
    assert_close(one["att2"], ref)


def test_sliding_window_with_a_unet_returns_its_gate_maps():
    from gatelab.vision.models.unet import AttentionUNet2d

    torch.manual_seed(0)
    model = AttentionUNet2d(in_channels=1, num_classes=2, filters=(4, 8, 16, 32), feature_scale=1).eval()
    x = torch.randn(1, 1, 20, 18)
    with torch.no_grad():
        logits, maps = sliding_window_inference(x, 16, lambda t: model(t, return_attention=True), overlap=0.25)
        plain = sliding_window_inference(x, 16, model, overlap=0.25)
    assert_close(logits, plain)
    names = [f"att{i + 1}" for i in model.gated_levels]
    assert len(names) == 2 and sorted(maps) == names
    assert all(m.shape == (1, 2, 20, 18) for m in maps.values())
    assert all(0 <= float(m.min()) and float(m.max()) <= 1 for m in maps.values())
    assert not torch.allclose(maps[names[0]], maps[names[1]])


def test_mirror_tta_averages_flipped_predictions():
    torch.manual_seed(0)
    x = torch.randn(1, 1, 9, 8)

    def f(t):  # not flip-equivariant: a ramp along the last axis
        ramp = torch.arange(t.shape[-1], dtype=t.dtype)
        return t + ramp

    got = sliding_window_inference(x, (9, 8), f, mirror_axes=[1])
    ramp = torch.arange(8.0)
    expected = ((x + ramp) + (x.flip(-1) + ramp).flip(-1)) / 2  # = x + mean ramp (3.5)
    assert_close(got, expected)
    assert_close(got, x + 3.5)
    # two axes: 4 passes; an equivariant predictor is unchanged, maps flipped back too
    w = torch.randn(2, 1, 1, 1)
    g = _pointwise_with_maps(w)
    y = torch.randn(1, 1, 12, 10)
    logits, maps = sliding_window_inference(y, (8, 8), g, mirror_axes=(0, 1))
    plain, plain_maps = sliding_window_inference(y, (8, 8), g)
    assert_close(logits, plain, kind="reduction")
    assert_close(maps["att1"], plain_maps["att1"], kind="reduction")
    with pytest.raises(ValueError, match="mirror_axes"):
        sliding_window_inference(y, 8, g, mirror_axes=[2])
