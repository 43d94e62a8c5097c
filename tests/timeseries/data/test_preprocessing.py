"""``preprocessing.json`` of the time-series data: the TFT's fitted encoders, scalers and target
normaliser survive JSON exactly (a dataset rebuilt from the JSON encodes new data as the
original does), the LTSF scaler statistics are the training split's, dates map to time indices."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from ltsf_fixtures import write_csv
from tft_fixtures import tiny_frame, tiny_spec

from gatelab.core.config import ConfigError
from gatelab.core.harness.errors import DataError
from gatelab.timeseries.data.preprocessing import (
    date_origin,
    dates_of,
    ltsf_preprocessing,
    tft_parameters,
    tft_preprocessing,
    tft_spec,
    time_index_of,
)


def _batches(dataset):
    from gatelab.timeseries.data.tft_loader import WindowBatches

    x, (y, _) = WindowBatches(dataset).__getitems__(list(range(len(dataset))))
    return x, y


@pytest.mark.parametrize("normalizer", ["group", "global"])
def test_tft_json_rebuilds_the_fitted_dataset(normalizer):
    from pytorch_forecasting import TimeSeriesDataSet

    from gatelab.timeseries.data.tft import _as_categories, build_dataset

    frame, spec = tiny_frame(), tiny_spec(target_normalizer=normalizer)
    training = build_dataset(frame[frame.time_idx < 15], spec)
    prep = json.loads(json.dumps(tft_preprocessing(training)))  # plain JSON, nothing pickled
    assert prep["kind"] == "tft" and prep["time"]["date"] is None
    enc = prep["dataset"]["categorical_encoders"]["series"]
    assert enc["classes"] == [[f"s{i}", i] for i in range(6)]  # labels with their codes, in order
    assert tft_spec(prep) == spec  # the column roles and windows
    data = _as_categories(frame, spec)
    want = TimeSeriesDataSet.from_dataset(training, data, predict=True, stop_randomization=True)
    got = TimeSeriesDataSet.from_parameters(tft_parameters(prep), data, predict=True, stop_randomization=True)
    (xa, ya), (xb, yb) = _batches(want), _batches(got)
    assert sorted(xa) == sorted(xb) and torch.equal(ya, yb)
    for k in xa:
        assert torch.equal(xa[k], xb[k]), k


def test_tft_unsupported_objects_are_named():
    from pytorch_forecasting.data import EncoderNormalizer

    from gatelab.timeseries.data.tft import build_dataset

    training = build_dataset(tiny_frame(), tiny_spec(), scalers={"price": EncoderNormalizer()})
    with pytest.raises(ConfigError, match=r"scalers\.price is a EncoderNormalizer; only sklearn StandardScaler"):
        tft_preprocessing(training)
    with pytest.raises(ConfigError, match="needs freq and origin"):
        tft_preprocessing(training, date="date")


def test_dates_and_time_index_round_trip():
    frame = pd.DataFrame({"t": [3, 0, 1, 14], "d": pd.to_datetime(["2013-04-01", "2013-01-01", "2013-02-01", "2014-03-01"])})
    origin = date_origin(frame, "t", "d", "MS")
    assert pd.Timestamp(origin) == pd.Timestamp("2013-01-01")
    assert list(dates_of([0, 1, 14], origin, "MS")) == list(pd.to_datetime(["2013-01-01", "2013-02-01", "2014-03-01"]))
    dates = pd.DatetimeIndex(pd.to_datetime(["2012-11-01", "2013-03-01", "2013-03-15"]))
    assert time_index_of(dates, origin, "MS").tolist() == [-2, 2, -1]  # -1: off the monthly grid
    frame.loc[3, "t"] = 13
    with pytest.raises(DataError, match=r"row 3 has t=13 and d=2014-03-01.*expected 2014-02-01"):
        date_origin(frame, "t", "d", "MS")


def test_ltsf_preprocessing_is_the_training_split(tmp_path):
    from gatelab.timeseries.data.ltsf import load_ltsf

    write_csv(tmp_path / "x.csv", 200, cols=("a", "OT", "b"))
    data = load_ltsf(None, file=tmp_path / "x.csv", freq="h", lookback=16, horizon=4, target="OT")
    prep = json.loads(json.dumps(ltsf_preprocessing(data)))
    a, b = data.borders["train"]
    assert prep["columns"] == ["a", "b", "OT"] == prep["inputs"] and prep["target"] == "OT"
    np.testing.assert_allclose(prep["mean"], data.series.values[a:b].mean(0))
    np.testing.assert_allclose(prep["std"], data.series.values[a:b].std(0))
    assert (prep["lookback"], prep["horizon"], prep["num_targets"]) == (16, 4, 3)
    assert (prep["date"], prep["freq"], prep["calendar_freq"]) == ("date", "h", "h")
    ms = ltsf_preprocessing(load_ltsf(None, file=tmp_path / "x.csv", freq="h", lookback=16, horizon=4, features="MS"))
    assert ms["num_targets"] == 1 and ms["columns"][-1] == "OT"


def test_data_modules_return_their_preprocessing(tmp_path):
    """``tft-frame`` (the stallion tutorial's roles and split on a stallion-like frame) records the
    dates; ``ltsf`` the training statistics; both plain JSON."""
    import dataclasses

    from tft_fixtures import stallion_raw

    from gatelab.timeseries.data.datamodule import frame_datamodule, ltsf_datamodule
    from gatelab.timeseries.data.tft import STALLION_SPEC, stallion_frame

    frame = stallion_frame(stallion_raw(months=30))
    frame.to_parquet(tmp_path / "s.parquet")
    spec = {f.name: getattr(STALLION_SPEC, f.name) for f in dataclasses.fields(STALLION_SPEC)}
    spec = json.loads(json.dumps(spec))  # as a YAML config gives it: lists, not tuples
    dm = frame_datamodule(file=str(tmp_path / "s.parquet"), spec=spec, date="date", freq="MS")
    prep = json.loads(json.dumps(dm.preprocessing()))
    assert prep["time"] == {"time_idx": "time_idx", "date": "date", "freq": "MS", "origin": "2013-01-01T00:00:00"}
    assert tft_spec(prep) == STALLION_SPEC
    with pytest.raises(ConfigError, match="date needs freq"):
        frame_datamodule(file=str(tmp_path / "s.parquet"), spec=spec, date="date")

    write_csv(tmp_path / "x.csv", 200)
    ltsf = ltsf_datamodule(file=str(tmp_path / "x.csv"), freq="h", lookback=16, horizon=4)
    assert ltsf.preprocessing() == ltsf_preprocessing(ltsf.data)
