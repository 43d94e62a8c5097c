"""TFT losses and metrics against hand-written formulas and pytorch-forecasting's QuantileLoss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gatelab.timeseries.tasks.metrics import QRisk, evaluate_forecasts, quantile_loss, valid_mask

QS = [0.1, 0.5, 0.9]


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    pred = torch.randn(4, 5, 3, generator=g).sort(-1).values * 10
    y = torch.randn(4, 5, generator=g) * 10
    lengths = torch.tensor([5, 3, 1, 5])
    return pred, y, lengths


def test_quantile_loss_by_hand():
    pred, y, lengths = _data()
    mask = valid_mask(lengths, y.shape)
    total, n = 0.0, 0
    for b in range(4):
        for t in range(int(lengths[b])):
            for i, q in enumerate(QS):
                e = float(y[b, t] - pred[b, t, i])
                total += 2 * max(q * e, (q - 1) * e) / len(QS)
            n += 1
    assert float(quantile_loss(pred, y, QS, mask)) == pytest.approx(total / n, rel=1e-6)
    w = torch.tensor([1.0, 2.0, 0.5, 0.0])
    cells = [
        float(w[b])
        * sum(
            2 * max(q * float(y[b, t] - pred[b, t, i]), (q - 1) * float(y[b, t] - pred[b, t, i])) / len(QS)
            for i, q in enumerate(QS)
        )
        for b in range(4)
        for t in range(int(lengths[b]))
    ]
    assert float(quantile_loss(pred, y, QS, mask, w)) == pytest.approx(sum(cells) / n, rel=1e-6)


def test_quantile_loss_equals_pytorch_forecasting():
    pytest.importorskip("pytorch_forecasting")
    from pytorch_forecasting.metrics import QuantileLoss
    from torch.nn.utils import rnn

    pred, y, lengths = _data(1)
    packed = rnn.pack_padded_sequence(y, lengths, batch_first=True, enforce_sorted=False)
    theirs = QuantileLoss(QS)(pred, (packed, None))
    ours = quantile_loss(pred, y, QS, valid_mask(lengths, y.shape))
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)


def test_qrisk_is_the_papers_normalised_quantile_loss():
    """The official code: 2 * mean(q max(y - p, 0) + (1 - q) max(p - y, 0)) / mean(|y|)."""
    pred, y, lengths = _data(2)
    mask = valid_mask(lengths, y.shape)
    for i, q in enumerate(QS):
        yy, pp = y[mask].numpy().astype(np.float64), pred[..., i][mask].numpy().astype(np.float64)
        under = yy - pp
        ref = 2 * np.mean(q * np.maximum(under, 0) + (1 - q) * np.maximum(-under, 0)) / np.mean(np.abs(yy))
        m = QRisk(q, index=i)
        m.update(pred[:2][mask[:2]], y[:2][mask[:2]])  # accumulated over batches
        m.update(pred[2:][mask[2:]], y[2:][mask[2:]])
        assert float(m.compute()) == pytest.approx(ref, rel=1e-9)
    with pytest.raises(ValueError, match="give index"):
        QRisk(0.5).update(pred, y)


def test_evaluate_forecasts():
    pred, y, lengths = _data(3)
    mask = valid_mask(lengths, y.shape)
    out = evaluate_forecasts(pred, y, QS, mask)
    assert out["mae"] == pytest.approx(float((pred[..., 1] - y)[mask].abs().mean()), rel=1e-6)
    assert set(out) == {"mae", "q50", "q90"}
    # q-risk at P50 of the median is MAE / mean |y|
    assert out["q50"] == pytest.approx(out["mae"] / float(y[mask].abs().mean()), rel=1e-5)
    with pytest.raises(ValueError, match=r"0\.9 among the quantiles"):
        evaluate_forecasts(pred[..., :2], y, [0.1, 0.5], mask)
