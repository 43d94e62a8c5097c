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
    # the Gaussian map: peak 1 at the centre, symmetric, positive everywhere
    wm = importance_map((5, 4))
    assert float(wm.max()) == 1.0 and float(wm.min()) > 0
    assert_close(wm, wm.flip(0))


def test_sliding_window_errors():
    with pytest.raises(ValueError, match="overlap"):
        sliding_window_inference(torch.zeros(1, 1, 8, 8), 4, lambda t: t, overlap=1.0)
    with pytest.raises(ValueError, match="predictor must map"):
        sliding_window_inference(torch.zeros(1, 1, 8, 8), 4, lambda t: t[:, :, :2])
