"""``gatelab predict`` for time series (:mod:`gatelab.timeseries.predict`): forecasts are keyed by
the saved encoders (ids and dates survive any row or series order), quantiles never cross, and
inputs that do not fit the saved preprocessing fail naming the file and the fault."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from ltsf_fixtures import write_csv
from tft_fixtures import tiny_spec

from gatelab.core.config import ConfigError
from gatelab.core.harness.errors import DataError
from gatelab.core.harness.predict import PredictOptions
from gatelab.timeseries.predict import forecast_frame, predict_path

SERIES = ["b", "a", "10", "9", "c"]  # codes follow sorted labels: any positional decoding breaks


def _frame(n_steps: int = 14) -> pd.DataFrame:
    """Series ``SERIES[i]`` has target ``100 i + t`` (its last value names it); monthly dates."""
    rng = np.random.default_rng(0)
    rows = []
    for i, s in enumerate(SERIES):
        for t in range(n_steps):
            rows.append(
                {
                    "series": s,
                    "store": f"st{i % 2}",
                    "time_idx": t,
                    "date": pd.Timestamp("2020-01-01") + pd.DateOffset(months=t),
                    "y": 100.0 * i + t + 1.0,
                    "price": float(rng.normal()),
                    "promo": str(t % 3),
                    "hol_a": "-",
                    "hol_b": "b" if t % 4 == 0 else "-",
                    "size": float(i),
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def tft_prep():
    from gatelab.timeseries.data.preprocessing import date_origin, tft_preprocessing
    from gatelab.timeseries.data.tft import build_dataset

    frame, spec = _frame(), tiny_spec()
    training = build_dataset(frame, spec)
    return tft_preprocessing(training, date="date", freq="MS", origin=date_origin(frame, "time_idx", "date", "MS"))


def _new_data(cut: int = 10, future: int = 3) -> pd.DataFrame:
    """History up to ``cut`` (exclusive), then ``future`` steps with the target empty."""
    f = _frame(cut + future)
    f.loc[f.time_idx >= cut, "y"] = np.nan
    return f


def test_ids_and_dates_round_trip_on_shuffled_series_order(tft_prep):
    from gatelab.timeseries.models.tft_baselines import NaiveLastValue

    model = NaiveLastValue()
    model.preprocessing = tft_prep
    new = _new_data().drop(columns=["time_idx"])  # dates only: the time index comes from the saved origin
    new = new.sample(frac=1.0, random_state=3).reset_index(drop=True)  # rows and series in any order
    out = forecast_frame(model, new)
    assert list(out.columns) == ["series", "time_idx", "date", "q0.5"]
    assert len(out) == len(SERIES) * 3
    for s, part in out.groupby("series"):
        i = SERIES.index(s)
        assert part["q0.5"].tolist() == [100.0 * i + 10.0] * 3  # that series' own last value
        assert part["time_idx"].tolist() == [10, 11, 12]
        assert list(part["date"]) == list(pd.to_datetime(["2020-11-01", "2020-12-01", "2021-01-01"]))


def test_tft_quantile_columns_never_cross(tft_prep):
    from gatelab.timeseries.models.tft import TemporalFusionTransformer

    torch.manual_seed(0)
    cfg = {**_tiny_tft_config(tft_prep), "quantiles": [0.1, 0.5, 0.9]}
    for head in ("independent", "monotone"):
        model = TemporalFusionTransformer(**cfg, quantile_head=head)
        with torch.no_grad():  # large random output weights: the raw outputs cross
            model.output_layer.weight.normal_(0, 5.0)
        model.preprocessing = tft_prep
        out = forecast_frame(model, _new_data())
        q = out[["q0.1", "q0.5", "q0.9"]].to_numpy()
        assert (np.diff(q, axis=1) >= 0).all(), head


def _tiny_tft_config(prep):
    from pytorch_forecasting import TimeSeriesDataSet

    from gatelab.timeseries.data.preprocessing import tft_parameters, tft_spec
    from gatelab.timeseries.data.tft import _as_categories
    from gatelab.timeseries.models.tft import config_from_dataset

    data = _as_categories(_frame(), tft_spec(prep))
    ds = TimeSeriesDataSet.from_parameters(tft_parameters(prep), data)
    return config_from_dataset(ds, d_model=8, num_heads=2, continuous_dim=4)


def _write(frame: pd.DataFrame, path):
    frame.to_csv(path, index=False)
    return path


def test_tft_inputs_that_do_not_fit_are_named(tft_prep, tmp_path):
    from gatelab.timeseries.models.tft_baselines import NaiveLastValue

    model = NaiveLastValue()
    model.preprocessing = tft_prep
    opts = PredictOptions(progress=False)
    out = tmp_path / "f.csv"

    def run(frame, name="in.csv"):
        return predict_path(model, _write(frame, tmp_path / name), out, opts)

    assert run(_new_data()) == 15 and pd.read_csv(out).shape == (15, 4)
    with pytest.raises(DataError, match=r"in\.csv: missing column\(s\) \['price'\]"):
        run(_new_data().drop(columns=["price"]))
    bad = _new_data()
    bad.loc[3, "promo"] = "7"
    with pytest.raises(DataError, match=r"categorical column 'promo' has 1 value\(s\) unseen in training: \['7'\]"):
        run(bad)
    stray = _new_data()
    stray.loc[stray.series == "c", "series"] = "zz"
    with pytest.raises(DataError, match=r"series id column 'series' has 1 value\(s\) unseen in training: \['zz'\]"):
        run(stray)
    short = _new_data()
    short = short[(short.series != "10") | (short.time_idx >= 9)]  # one step of history; min_lookback is 2
    with pytest.raises(DataError, match=r"series \(series='10'\) has 1 step\(s\) of history; the model needs at least 2"):
        run(short)
    few = _new_data()
    few = few[(few.series != "a") | (few.time_idx < 12)]  # two future steps; horizon is 3
    with pytest.raises(DataError, match=r"series \(series='a'\) has known-future inputs for 2 step"):
        run(few)
    dates = _new_data().drop(columns=["time_idx"])
    dates["date"] = dates["date"].astype(str)
    dates.loc[4, "date"] = "2020-13-45"
    with pytest.raises(DataError, match=r"in\.csv:6:date: cannot parse '2020-13-45' as a date"):
        run(dates)
    hole = _new_data()
    hole.loc[(hole.series == "b") & (hole.time_idx == 5), "y"] = np.nan
    with pytest.raises(DataError, match=r"series \(series='b'\) has no target at time_idx=5, inside its history"):
        run(hole)


def test_a_model_without_preprocessing_says_what_is_missing():
    from gatelab.timeseries.models.tft_baselines import NaiveLastValue

    with pytest.raises(ConfigError, match=r"NaiveLastValue has no preprocessing .*gatelab export CKPT DIR"):
        forecast_frame(NaiveLastValue(), _new_data())


# --------------------------------------------------------------------------- LTSF


@pytest.fixture()
def ltsf_model(tmp_path):
    from gatelab.core.pretrained import save_pretrained
    from gatelab.timeseries.data.ltsf import load_ltsf
    from gatelab.timeseries.data.preprocessing import ltsf_preprocessing
    from gatelab.timeseries.models.gateformer import Gateformer

    write_csv(tmp_path / "train.csv", 300, cols=("a", "b", "OT"))
    data = load_ltsf(None, file=tmp_path / "train.csv", freq="h", lookback=16, horizon=4)
    torch.manual_seed(0)
    model = Gateformer(**data.model_kwargs(), d_model=8, hidden_dim=8, num_heads=2, num_layers=1, patch_len=8, stride=8)
    save_pretrained(model.eval(), tmp_path / "model", preprocessing=ltsf_preprocessing(data))
    return model, data, tmp_path


def test_ltsf_cli_forecasts_continue_the_input(ltsf_model, tmp_path):
    from gatelab.core.harness.cli import main

    model, data, _ = ltsf_model
    write_csv(tmp_path / "recent.csv", 40, cols=("a", "b", "OT"), start="2016-08-01")
    assert main(["predict", "--model", str(tmp_path / "model"), "--input", str(tmp_path / "recent.csv"),
                 "--output", str(tmp_path / "out.parquet"), "--no-progress", "--num-threads", "1"]) == 0  # fmt: skip
    out = pd.read_parquet(tmp_path / "out.parquet")
    recent = pd.read_csv(tmp_path / "recent.csv")
    assert list(out.columns) == ["date", "a", "b", "OT"]
    assert list(out["date"]) == list(pd.date_range("2016-08-02 16:00", periods=4, freq="h"))
    x = torch.tensor(((recent[["a", "b", "OT"]].to_numpy()[-16:] - data.mean) / data.std), dtype=torch.float32)
    from gatelab.timeseries.data.ltsf import time_features

    marks = torch.from_numpy(time_features(pd.to_datetime(recent["date"])[-16:], "h"))
    with torch.no_grad():
        want = model(x[None], marks[None])[0].numpy() * data.std + data.mean
    np.testing.assert_allclose(out[["a", "b", "OT"]].to_numpy(), want, rtol=1e-5, atol=1e-4)


def test_ltsf_inputs_that_do_not_fit_are_named(ltsf_model, tmp_path):
    from gatelab.core.pretrained import from_pretrained

    model = from_pretrained(tmp_path / "model")
    write_csv(tmp_path / "recent.csv", 20, cols=("a", "b", "OT"), start="2016-08-01")
    recent = pd.read_csv(tmp_path / "recent.csv")
    opts = PredictOptions(progress=False)

    def run(frame):
        frame.to_csv(tmp_path / "in.csv", index=False)
        return predict_path(model, tmp_path / "in.csv", tmp_path / "out.csv", opts)

    assert run(recent) == 4
    with pytest.raises(DataError, match=r"in\.csv: missing column\(s\) \['b'\]"):
        run(recent.drop(columns=["b"]))
    with pytest.raises(DataError, match=r"in\.csv: 10 row\(s\) of history; the model needs lookback=16"):
        run(recent.iloc[:10])
    bad = recent.copy()
    bad["a"] = bad["a"].astype(object)
    bad.loc[18, "a"] = "abc"
    with pytest.raises(DataError, match=r"in\.csv:20:a: value 'abc' is not a finite number"):
        run(bad)
    bad = recent.copy()
    bad.loc[17, "b"] = np.nan
    with pytest.raises(DataError, match=r"in\.csv:19:b: empty cell \(1 such cell"):
        run(bad)
    bad = recent.copy()
    bad.loc[15, "date"] = "2016-08-01 15:30:00"
    with pytest.raises(DataError, match=r"in\.csv:17:date: date 2016-08-01 15:30:00 is not one step of 'h' after"):
        run(bad)
    bad = recent.copy()
    bad.loc[2, "date"] = "yesterday"
    with pytest.raises(DataError, match=r"in\.csv:4:date: cannot parse 'yesterday' as a date"):
        run(bad)


def test_ltsf_lstnet_layout_has_no_header_and_no_dates(tmp_path):
    from gatelab.core.pretrained import from_pretrained, save_pretrained
    from gatelab.timeseries.data.ltsf import load_ltsf
    from gatelab.timeseries.data.preprocessing import ltsf_preprocessing
    from gatelab.timeseries.models.gateformer import Gateformer

    rng = np.random.default_rng(0)
    values = rng.normal(size=(120, 3)).cumsum(0)
    np.savetxt(tmp_path / "solar.txt", values, delimiter=",", fmt="%.5f")
    data = load_ltsf(None, file=tmp_path / "solar.txt", layout="lstnet", target="0", freq=None,
                     lookback=16, horizon=4, calendar_freq="h")  # fmt: skip
    model = Gateformer(**data.model_kwargs(), d_model=8, hidden_dim=8, num_heads=2, num_layers=1, patch_len=8, stride=8)
    save_pretrained(model.eval(), tmp_path / "m", preprocessing=ltsf_preprocessing(data))
    np.savetxt(tmp_path / "recent.txt", values[-20:], delimiter=",", fmt="%.5f")
    loaded = from_pretrained(tmp_path / "m")
    assert predict_path(loaded, tmp_path / "recent.txt", tmp_path / "f.csv", PredictOptions(progress=False)) == 4
    out = pd.read_csv(tmp_path / "f.csv")
    assert list(out.columns) == ["step", "1", "2", "0"] and out["step"].tolist() == [1, 2, 3, 4]  # target last
    x = (np.loadtxt(tmp_path / "recent.txt", delimiter=",")[-16:, [1, 2, 0]] - data.mean) / data.std
    with torch.no_grad():
        want = model(torch.tensor(x, dtype=torch.float32)[None], torch.zeros(1, 16, 1))[0].numpy()
    np.testing.assert_allclose(out[["1", "2", "0"]].to_numpy(), want * data.std + data.mean, rtol=1e-4, atol=1e-4)
