"""MAXIM inference as the official run_eval.py: padding and the x8 self-ensemble, against a numpy
re-statement of run_eval's steps (np.pad / np.rot90 / np.fliplr on one HWC image)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gatelab.vision.models.maxim import _TINY, Maxim
from gatelab.vision.tasks.maxim_inference import (
    geometric_views,
    make_shape_even,
    merge_geometric_views,
    mod_padding_symmetric,
    reflect_pad,
    restore,
)

# ----------------------------------------------------------------------------- numpy reference


def np_make_shape_even(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    return np.pad(img, [(0, h % 2), (0, w % 2), (0, 0)], mode="reflect")


def np_mod_padding_symmetric(img: np.ndarray, factor: int) -> np.ndarray:
    h, w = img.shape[:2]
    ph = ((h + factor) // factor) * factor - h if h % factor else 0
    pw = ((w + factor) // factor) * factor - w if w % factor else 0
    return np.pad(img, [(ph // 2, ph // 2), (pw // 2, pw // 2), (0, 0)], mode="reflect")


def np_run_eval(model_hwc, img: np.ndarray, factor: int, ensemble: bool) -> np.ndarray:
    """run_eval._process_file for one [H, W, C] image (views run one by one: same numbers as its
    stacked batch, which needs a square image)."""
    h, w = img.shape[:2]
    x = np_make_shape_even(img)
    he, we = x.shape[:2]
    x = np_mod_padding_symmetric(x, factor)
    if ensemble:
        views = [np.rot90(x, k) for k in range(4)] + [np.rot90(np.fliplr(x), k) for k in range(4)]
        preds = [model_hwc(v) for v in views]
        back = [np.rot90(preds[k], 4 - k) for k in range(4)]
        back += [np.fliplr(np.rot90(preds[4 + k], 4 - k)) for k in range(4)]
        pred = np.mean(back, axis=0)
    else:
        pred = model_hwc(x)
    nh, nw = pred.shape[:2]
    hs, ws = nh // 2 - he // 2, nw // 2 - we // 2
    return pred[hs : hs + h, ws : ws + w]


# a model that is neither rotation- nor flip-equivariant (position terms, channel mixing)


def fake_hwc(x: np.ndarray) -> np.ndarray:
    h, w, c = x.shape
    rows = np.arange(h)[:, None, None] * 0.01
    cols = np.arange(w)[None, :, None] * 0.002 * (np.arange(c)[None, None, :] + 1)
    return 0.5 * x + 0.1 * np.roll(x, -1, axis=2) + rows + cols


def fake_nchw(x: torch.Tensor):
    _, c, h, w = x.shape
    rows = torch.arange(h, dtype=x.dtype)[:, None] * 0.01
    cols = torch.arange(w, dtype=x.dtype)[None, :] * 0.002 * (torch.arange(c, dtype=x.dtype)[:, None, None] + 1)
    y = 0.5 * x + 0.1 * torch.roll(x, -1, dims=1) + rows + cols
    return [[y[:, :, ::2, ::2], y]]  # MAXIM-like nested outputs: restore takes the last of the last


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("n", [1, 2, 3, 5])
@pytest.mark.parametrize("lo, hi", [(0, 1), (2, 2), (4, 9), (11, 3)])
def test_reflect_pad_is_numpys_for_any_width(n, lo, hi):
    a = np.arange(n * 4, dtype=np.float64).reshape(1, n, 4)
    got = reflect_pad(torch.from_numpy(a), (lo, hi, hi, lo)).numpy()
    assert np.array_equal(got, np.pad(a, [(0, 0), (lo, hi), (hi, lo)], mode="reflect"))


def test_padding_steps_match_run_eval():
    img = np.random.default_rng(0).random((13, 10, 3))
    x = torch.from_numpy(img.transpose(2, 0, 1)[None].copy())
    even = make_shape_even(x)
    assert even.shape[-2:] == (14, 10)
    assert np.array_equal(even[0].numpy().transpose(1, 2, 0), np_make_shape_even(img))
    for factor in (8, 64):  # 64: the pad (27 per side of 10) is wider than the image
        got = mod_padding_symmetric(even, factor)[0].numpy().transpose(1, 2, 0)
        assert np.array_equal(got, np_mod_padding_symmetric(np_make_shape_even(img), factor))
    assert mod_padding_symmetric(even, 64).shape[-2:] == (64, 64)
    # already a multiple: untouched; an odd pad loses a pixel, as in the official formula
    assert mod_padding_symmetric(torch.zeros(1, 1, 16, 24), 8).shape[-2:] == (16, 24)
    assert mod_padding_symmetric(torch.zeros(1, 1, 5, 8), 8).shape[-2:] == (7, 8)


@pytest.mark.parametrize("hw", [(13, 10), (8, 8), (1, 6), (17, 17)])
@pytest.mark.parametrize("ensemble", [False, True])
def test_restore_matches_run_eval(hw, ensemble):
    rng = np.random.default_rng(hw[0] * 100 + hw[1])
    imgs = rng.random((2, *hw, 3))
    x = torch.from_numpy(imgs.transpose(0, 3, 1, 2).copy())
    got = restore(fake_nchw, x, geometric_ensemble=ensemble, factor=8).numpy()
    assert got.shape == (2, 3, *hw)
    for b in range(2):
        want = np_run_eval(fake_hwc, imgs[b], factor=8, ensemble=ensemble)
        np.testing.assert_allclose(got[b].transpose(1, 2, 0), want, rtol=0, atol=1e-12)


def test_geometric_views_invert():
    x = torch.randn(2, 3, 4, 6, dtype=torch.float64)
    views = geometric_views(x)
    assert len(views) == 8 and len({v.data_ptr() for v in views}) == 8
    assert [tuple(v.shape[-2:]) for v in views] == [(4, 6), (6, 4)] * 4
    # identity model: the input back (up to the rounding of the mean of 8 equal numbers)
    torch.testing.assert_close(merge_geometric_views(views), x, rtol=0, atol=1e-15)
    torch.testing.assert_close(merge_geometric_views(geometric_views(x, 4), 4), x, rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="times must be 4 or 8"):
        geometric_views(x, 2)
    with pytest.raises(ValueError, match="need times in"):
        merge_geometric_views(views[:7])


def test_maxim_restore_hook():
    torch.manual_seed(0)
    model = Maxim(**_TINY, num_stages=2).eval().double()
    x = torch.rand(1, 3, 7, 10, dtype=torch.float64)
    plain = model.restore(x)
    assert plain.shape == (1, 3, 7, 10)
    with torch.no_grad():
        assert torch.equal(model.restore(x), plain.detach())
        ens = model.restore(x, padding="run_eval", geometric_ensemble=True)
        ref = restore(model, x, padding="run_eval", geometric_ensemble=True)
    assert torch.equal(ens, ref)
    assert ens.shape == (1, 3, 7, 10)
    assert not torch.allclose(ens, plain)  # the options change the computation
    with pytest.raises(ValueError, match="padding='edge'"):
        restore(model, x, padding="edge")  # type: ignore[arg-type]
