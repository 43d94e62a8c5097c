"""The forecasting API end to end on tiny frames: a real (tiny) training run through the harness,
``gatelab export`` of its checkpoint, forecasts from the API and from ``gatelab predict`` that
agree, save/load, and rolling-origin backtests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from ltsf_fixtures import write_csv
from tft_fixtures import tiny_frame, tiny_spec

from gatelab.core.config import ConfigError
from gatelab.core.harness.cli import main
from gatelab.timeseries import Forecaster, LTSFForecaster, LTSFSpec, TFTForecaster

TRAINER = {"limit_train_batches": 2, "limit_val_batches": 1}


def _stallion_like() -> pd.DataFrame:
    f = tiny_frame(n_series=4, n_steps=24)
    f["date"] = pd.Timestamp("2019-01-01") + pd.to_timedelta(f["time_idx"] * 7, unit="D")  # weekly
    return f


def test_tft_forecaster_fit_export_predict_save_load_backtest(tmp_path):
    frame = _stallion_like()
    train = frame[frame.time_idx < 21].drop(columns=["time_idx"])  # dates only: fit makes the time index
    fc = TFTForecaster(
        max_epochs=1, trainer=TRAINER, work_dir=tmp_path / "work",
        model_kwargs={"d_model": 8, "num_heads": 2, "continuous_dim": 4},
    ).fit(train, tiny_spec(), date="date", freq="W-TUE")  # fmt: skip
    assert fc.model.config.quantile_head == "monotone" and fc.model.preprocessing["kind"] == "tft"
    new = frame.copy()
    new.loc[new.time_idx >= 21, "y"] = np.nan
    new = new.sample(frac=1.0, random_state=0)
    out = fc.predict(new)
    assert list(out.columns) == ["series", "time_idx", "date", "q0.1", "q0.5", "q0.9"]
    assert sorted(out["series"].unique()) == ["s0", "s1", "s2", "s3"] and sorted(out["time_idx"].unique()) == [21, 22, 23]
    assert (out["date"] == pd.Timestamp("2019-01-01") + pd.to_timedelta(out["time_idx"] * 7, unit="D")).all()
    q = out[["q0.1", "q0.5", "q0.9"]].to_numpy()
    assert np.isfinite(q).all() and (q[:, 1:] >= q[:, :-1]).all()

    # the training checkpoint through the CLI: export, then predict from a CSV
    ckpt = fc.result.best_checkpoint or fc.result.last_checkpoint
    assert main(["export", ckpt, str(tmp_path / "exported")]) == 0
    new.to_csv(tmp_path / "recent.csv", index=False)
    assert main(["predict", "--model", str(tmp_path / "exported"), "--input", str(tmp_path / "recent.csv"),
                 "--output", str(tmp_path / "forecasts.csv"), "--no-progress", "--batch-size", "3"]) == 0  # fmt: skip
    cli = pd.read_csv(tmp_path / "forecasts.csv", parse_dates=["date"])
    pd.testing.assert_frame_equal(cli, out, check_dtype=False, check_categorical=False)

    fc.save(tmp_path / "saved")
    loaded = Forecaster.load(tmp_path / "saved")
    assert isinstance(loaded, TFTForecaster)
    pd.testing.assert_frame_equal(loaded.predict(new), out)
    with pytest.raises(ConfigError, match="holds a TFTForecaster, not a LTSFForecaster"):
        LTSFForecaster.load(tmp_path / "saved")

    scores = loaded.backtest(frame, windows=2, step=2)
    assert list(scores.columns) == ["window", "origin", "n", "mae", "rmse", "pinball", "coverage"]
    assert scores["origin"].tolist() == [18, 20] and (scores["n"] == 4 * 3).all()
    assert np.isfinite(scores[["mae", "rmse", "pinball", "coverage"]].to_numpy()).all()


def test_naive_forecaster_is_evaluated_without_training(tmp_path):
    frame = tiny_frame(n_series=3, n_steps=16)
    fc = TFTForecaster("naive-last-value", work_dir=tmp_path).fit(frame, tiny_spec())
    scores = fc.backtest(frame, windows=2)
    last = frame[frame.time_idx == 12].set_index("series")["y"]  # the history's last value, origin 1
    future = frame[frame.time_idx.between(13, 15)]
    mae = (future["y"] - future["series"].map(last).astype(float)).abs().mean()
    assert scores["origin"].tolist() == [9, 12] and scores["mae"].iloc[1] == pytest.approx(mae)
    assert np.isnan(scores["coverage"]).all()  # one quantile: no interval


def test_ltsf_forecaster_fit_predict_backtest(tmp_path):
    write_csv(tmp_path / "x.csv", 240, cols=("load", "temp", "OT"))
    df = pd.read_csv(tmp_path / "x.csv").rename(columns={"date": "ts"})
    fc = LTSFForecaster(
        max_epochs=1, trainer=TRAINER, work_dir=tmp_path / "work",
        model_kwargs={"d_model": 8, "hidden_dim": 8, "num_heads": 2, "num_layers": 1, "patch_len": 8, "stride": 8},
    ).fit(df, LTSFSpec(target="OT", lookback=16, horizon=4, date="ts", freq="h"))  # fmt: skip
    out = fc.predict(df.rename(columns={"ts": "date"}))
    assert list(out.columns) == ["date", "load", "temp", "OT"] and len(out) == 4
    assert out["date"].iloc[0] == pd.Timestamp(df["ts"].iloc[-1]) + pd.Timedelta(hours=1)
    scores = fc.backtest(df.rename(columns={"ts": "date"}), windows=3)
    assert len(scores) == 3 and np.isfinite(scores[["mae", "rmse", "mae_scaled", "mse_scaled"]].to_numpy()).all()
    fc.save(tmp_path / "saved")
    pd.testing.assert_frame_equal(Forecaster.load(tmp_path / "saved").predict(df.rename(columns={"ts": "date"})), out)
