"""TFT data: readers of the official file formats (tiny files built here), the paper's / tutorial's
feature protocols, frame validation errors, prediction windows, and the real stallion data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tft_fixtures import stallion_raw, tiny_frame, tiny_spec, write_pems

from gatelab.timeseries.data import tft as td

# --------------------------------------------------------------------------------------- electricity


def _write_ld2011(path, values: dict[str, list[float]], start="2011-01-01 00:15:00") -> None:
    """LD2011_2014.txt format: quoted header, ';' separator, ',' decimal mark, 15-minute rows."""
    n = len(next(iter(values.values())))
    stamps = pd.date_range(start, periods=n, freq="15min")
    lines = [";".join(['""', *[f'"{c}"' for c in values]])]
    for i, t in enumerate(stamps):
        cells = [f'"{t:%Y-%m-%d %H:%M:%S}"'] + [str(v[i]).replace(".", ",") for v in values.values()]
        lines.append(";".join(cells))
    path.write_text("\n".join(lines) + "\n")


def test_electricity_reader_and_hourly_protocol(tmp_path):
    # 3 hours of 15-minute readings (12 rows starting 00:15 -> hours 00 (3 rows), 01, 02, 03 (1 row))
    a = [0, 0, 0, 0, 2.5, 3.5, 4.0, 0, 0, 0, 0, 0]  # zeros before and after: trimmed
    b = [1.0] * 12
    _write_ld2011(tmp_path / "LD2011_2014.txt", {"MT_001": a, "MT_002": b})
    raw = td.read_electricity(tmp_path / "LD2011_2014.txt")
    assert list(raw.columns) == ["MT_001", "MT_002"]
    assert raw["MT_001"].iloc[5] == pytest.approx(3.5)  # ',' decimals parsed
    frame = td.electricity_frame(raw, first_day=0, end_day=10)
    a_rows = frame[frame.id == "MT_001"]
    # hour 00:00 holds 00:15, 00:30, 00:45 (mean 0 -> inactive); 01:00 holds 01:00..01:45 = [0, 2.5, 3.5, 4.0]
    assert a_rows["hours_from_start"].tolist() == [1]
    assert a_rows["power_usage"].tolist() == pytest.approx([(0 + 2.5 + 3.5 + 4.0) / 4])
    b_rows = frame[frame.id == "MT_002"]
    assert b_rows["hours_from_start"].tolist() == [0, 1, 2, 3]
    assert b_rows["power_usage"].tolist() == pytest.approx([1.0] * 4)
    row = b_rows.iloc[2]
    assert (row.hour, row.day_of_week, row.days_from_start, row.categorical_id) == (2, 5, 0, "MT_002")  # Sat


def test_electricity_gap_inside_active_range_is_zero_and_day_filter(tmp_path):
    vals = [1.0] * 4 + [0.0] * 4 + [2.0] * 4  # hour 1 all zero, inside the active range -> 0
    _write_ld2011(tmp_path / "e.txt", {"MT_001": vals}, start="2011-01-01 00:00:00")
    frame = td.electricity_frame(td.read_electricity(tmp_path / "e.txt"), first_day=0, end_day=10)
    assert frame["power_usage"].tolist() == pytest.approx([1.0, 0.0, 2.0])
    assert td.electricity_frame(td.read_electricity(tmp_path / "e.txt"), first_day=1, end_day=10).empty


def test_electricity_reader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="electricity file not found"):
        td.read_electricity(tmp_path / "missing.txt")
    (tmp_path / "bad.txt").write_text('"";"MT_001"\n"2011-01-01 00:15:00";abc\n')
    with pytest.raises(td.FrameError, match="non-numeric"):
        td.read_electricity(tmp_path / "bad.txt")


# --------------------------------------------------------------------------------------- PEMS-SF




def test_pems_reader_restores_calendar_order(tmp_path):
    cal, dow = write_pems(tmp_path)
    raw = td.read_pems_sf(tmp_path)
    np.testing.assert_allclose(raw["values"], cal)
    np.testing.assert_array_equal(raw["day_of_week"], dow)
    assert raw["stations"] == [400000, 400001, 400002]


def test_traffic_protocol_hourly_means_and_neighbours(tmp_path):
    cal, dow = write_pems(tmp_path, n_days=2, n_st=2)
    frame = td.traffic_frame(td.read_pems_sf(tmp_path))
    st = frame[frame.id == 400001].reset_index(drop=True)
    hourly = cal[:, 1, :].reshape(2, 24, 6).mean(-1).reshape(-1)  # 48 hours of station 1
    # the first hour (no previous) and the last (no next) are dropped
    np.testing.assert_allclose(st["values"], hourly[1:-1])
    np.testing.assert_allclose(st["prev_values"], hourly[:-2])
    np.testing.assert_allclose(st["next_values"], hourly[2:])
    assert st["hours_from_start"].tolist() == list(range(1, 47))
    assert st.loc[st.sensor_day == 1, "day_of_week"].unique().tolist() == [dow[1]]
    assert (st["categorical_id"] == 400001).all()


def test_pems_reader_errors(tmp_path):
    write_pems(tmp_path)
    (tmp_path / "randperm").write_text("[1 2 3]\n")
    with pytest.raises(td.FrameError, match="randperm has 3 days"):
        td.read_pems_sf(tmp_path)
    (tmp_path / "randperm").unlink()
    with pytest.raises(FileNotFoundError, match="randperm"):
        td.read_pems_sf(tmp_path)


# --------------------------------------------------------------------------------------- stallion




def test_stallion_reader_and_tutorial_features(tmp_path):
    raw = stallion_raw()
    raw.to_parquet(tmp_path / "stallion.parquet")
    data = td.stallion_frame(td.read_stallion(tmp_path))
    assert data["time_idx"].min() == 0 and data["time_idx"].max() == 29
    np.testing.assert_allclose(data["log_volume"], np.log(raw["volume"] + 1e-8))
    by_sku = raw.groupby([raw.date, raw.sku], observed=True).volume.transform("mean")
    np.testing.assert_allclose(data["avg_volume_by_sku"], by_sku)
    assert data.loc[data.time_idx == 2, "new_year"].unique().tolist() == ["new_year"]
    assert data.loc[data.time_idx == 3, "new_year"].unique().tolist() == ["-"]
    assert data["month"].dtype == "category" and set(data["month"].astype(str)) <= {
        str(m) for m in range(1, 13)
    }
    spec = td.STALLION_SPEC
    td.check_frame(data, spec)
    _, validation = td.stallion_datasets(data)
    assert len(validation) == 4  # one window per series: its last 6 months


def test_stallion_reader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="stallion file not found"):
        td.read_stallion(tmp_path)
    stallion_raw().drop(columns=["volume"]).to_parquet(tmp_path / "stallion.parquet")
    with pytest.raises(td.FrameError, match="missing column"):
        td.read_stallion(tmp_path)


@pytest.mark.data
def test_real_stallion_naive_baseline_matches_the_tutorial(shared_data):
    """The tutorial protocol on the real file: the last-value baseline's validation MAE is 293.0."""
    import torch

    from gatelab.timeseries.models.tft_baselines import NaiveLastValue
    from gatelab.timeseries.tasks.metrics import evaluate_forecasts

    folder = shared_data / "stallion"
    if not (folder / "stallion.parquet").is_file():
        pytest.skip("stallion data not present")
    training, validation = td.stallion_datasets(td.stallion_frame(td.read_stallion(folder)))
    assert len(training) == 20650 and len(validation) == 350
    x, (y, _) = next(iter(validation.to_dataloader(train=False, batch_size=1000)))
    p = NaiveLastValue()(x).prediction
    m = torch.arange(y.shape[1])[None, :] < x["decoder_lengths"][:, None]
    metrics = evaluate_forecasts(p, y, [0.5], m, qrisk=(0.5,))
    assert metrics["mae"] == pytest.approx(293.0089, abs=1e-3)
    assert bool(m.all()) and p.shape == (350, 6, 1) and torch.isfinite(p).all()


# --------------------------------------------------------------------------------------- validation


def test_missing_group_id_column_and_values():
    spec = tiny_spec()
    frame = tiny_frame()
    with pytest.raises(KeyError, match=r"missing group id column\(s\) \['series'\]"):
        td.check_frame(frame.drop(columns=["series"]), spec)
    bad = frame.copy()
    bad["series"] = bad["series"].astype(object)
    bad.loc[5, "series"] = None
    with pytest.raises(td.FrameError, match="group id column 'series' has 1 missing value"):
        td.check_frame(bad, spec)


def test_non_contiguous_and_duplicate_time_index():
    spec = tiny_spec()
    frame = tiny_frame()
    gap = frame[~((frame.series == "s2") & (frame.time_idx == 7))]
    with pytest.raises(
        td.FrameError, match=r"series \(series='s2'\) is not contiguous: 'time_idx' jumps from 6 to 8"
    ):
        td.check_frame(gap, spec)
    dup = pd.concat([frame, frame.iloc[[3]]])
    with pytest.raises(td.FrameError, match="has time_idx 3 twice"):
        td.check_frame(dup, spec)
    floats = frame.assign(time_idx=frame.time_idx.astype(float))
    with pytest.raises(td.FrameError, match="must be integers"):
        td.check_frame(floats, spec)
    nan = frame.copy()
    nan.loc[4, "price"] = np.nan
    with pytest.raises(td.FrameError, match="column 'price' has 1 missing value"):
        td.build_dataset(nan, spec)


def test_unknown_category_at_predict_time():
    spec = tiny_spec()
    frame = tiny_frame()
    training = td.build_dataset(frame, spec)
    new = frame.copy()
    new["promo"] = new["promo"].astype(str)
    new.loc[new.time_idx == 19, "promo"] = "9"
    with pytest.raises(
        td.FrameError, match=r"categorical column 'promo' has 1 category unknown at training time: \['9'\]"
    ):
        td.dataset_from(training, new, spec, predict=True)
    new = frame.copy()
    new["hol_b"] = new["hol_b"].astype(str)
    new.loc[0, "hol_b"] = "zz"  # a member of the categorical group 'hols'
    with pytest.raises(td.FrameError, match="'hol_b'"):
        td.dataset_from(training, new, spec)


def _future(frame: pd.DataFrame, steps: int, start: int = 20) -> pd.DataFrame:
    rows = []
    for s in frame.series.unique():
        last = frame[frame.series == s].iloc[-1]
        for t in range(start, start + steps):
            r = last.copy()
            r["time_idx"], r["price"], r["y"] = t, 0.5, np.nan
            rows.append(r)
    out = pd.DataFrame(rows).reset_index(drop=True)
    for c in ["series", "store", "promo", "hol_a", "hol_b"]:
        out[c] = out[c].astype(str)
    return out


def test_prediction_windows_from_future_known_inputs():
    spec = tiny_spec()
    frame = tiny_frame()
    training = td.build_dataset(frame, spec)
    pred = td.prediction_dataset(training, frame, _future(frame, 3), spec)
    x, _ = next(iter(pred.to_dataloader(train=False, batch_size=16)))
    assert len(pred) == 6
    assert (x["decoder_lengths"] == 3).all() and (x["encoder_lengths"] == 6).all()
    assert (x["decoder_time_idx"][:, 0] == 20).all()


def test_horizon_longer_than_known_future_inputs():
    spec = tiny_spec()
    frame = tiny_frame()
    training = td.build_dataset(frame, spec)
    short = _future(frame, 2)
    with pytest.raises(
        td.FrameError,
        match=r"horizon 3 is longer than the known-future inputs: series \(series='s0'\) has known-future inputs for 2 step",
    ):
        td.prediction_dataset(training, frame, short, spec)
    gap = _future(frame, 4)
    gap = gap[gap.time_idx != 21]
    with pytest.raises(td.FrameError, match="not continuing its history"):
        td.prediction_dataset(training, frame, gap, spec)
    missing = _future(frame, 3)
    missing.loc[missing.index[0], "price"] = np.nan
    with pytest.raises(td.FrameError, match="known input 'price' has 1 missing value"):
        td.prediction_dataset(training, frame, missing, spec)
    with pytest.raises(td.FrameError, match="exceeds the dataset's horizon"):
        td.prediction_dataset(training, frame, _future(frame, 5), spec, horizon=5)
