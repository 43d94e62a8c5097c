"""The vectorised window loader gives exactly pytorch-forecasting's batches."""

from __future__ import annotations

import pytest
import torch
from tft_fixtures import tiny_frame, tiny_spec

pytest.importorskip("pytorch_forecasting")

from gatelab.timeseries.data.tft import build_dataset, dataset_from
from gatelab.timeseries.data.tft_loader import WindowBatches, window_dataloader


def _assert_same(theirs, ours):
    (x1, (y1, w1)), (x2, (y2, w2)) = theirs, ours
    assert set(x1) == set(x2)
    for k in x1:
        assert x1[k].dtype == x2[k].dtype, k
        torch.testing.assert_close(x2[k], x1[k], rtol=0, atol=0, msg=k)
    torch.testing.assert_close(y2, y1, rtol=0, atol=0)
    assert (w1 is None) == (w2 is None)


@pytest.mark.parametrize(
    "spec_kw",
    [{}, {"add_relative_time_idx": False, "add_encoder_length": False, "target_normalizer": "global"}],
)
def test_batches_equal_pytorch_forecasting_collate(spec_kw):
    ds = build_dataset(tiny_frame(), tiny_spec(**spec_kw))
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:40].tolist()
    _assert_same(ds._collate_fn([ds[i] for i in idx]), WindowBatches(ds).__getitems__(idx))


def test_predict_mode_and_dataloader_order():
    frame = tiny_frame()
    train = build_dataset(frame, tiny_spec())
    pred = dataset_from(train, frame, tiny_spec(), predict=True)
    theirs = list(pred.to_dataloader(train=False, batch_size=4))
    ours = list(window_dataloader(pred, train=False, batch_size=4))
    assert len(theirs) == len(ours) == 2
    for a, b in zip(theirs, ours):
        _assert_same(a, b)
    assert len(window_dataloader(train, train=True, batch_size=16)) == len(
        train.to_dataloader(train=True, batch_size=16)
    )


def test_unsupported_features_are_named():
    from pytorch_forecasting.data import EncoderNormalizer

    frame = tiny_frame()
    spec = tiny_spec(target_transform=None)
    from pytorch_forecasting import TimeSeriesDataSet

    ds = TimeSeriesDataSet(
        frame.assign(
            **{
                c: frame[c].astype(str).astype("category")
                for c in ["series", "store", "promo", "hol_a", "hol_b"]
            }
        ),
        time_idx="time_idx",
        target="y",
        group_ids=["series"],
        max_encoder_length=spec.lookback,
        max_prediction_length=spec.horizon,
        time_varying_unknown_reals=["y"],
        target_normalizer=EncoderNormalizer(),
    )
    with pytest.raises(NotImplementedError, match="EncoderNormalizer"):
        WindowBatches(ds)
