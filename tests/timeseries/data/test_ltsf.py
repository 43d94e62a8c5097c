"""LTSF data: split borders against hand-computed values, scaler fit on train only, window counts,
calendar features, feature modes, .csv.gz, the LSTNet layout, every bad input, the dataset registry
and the embedded ETTh1 copy. Fixtures are small files in the real formats under tmp_path."""

from __future__ import annotations

import gzip
import hashlib
import logging

import numpy as np
import pandas as pd
import pytest
import torch
from ltsf_fixtures import write_csv

from gatelab.core.harness.data import get_dataset, list_datasets
from gatelab.core.harness.errors import ChecksumError, DatasetNotFoundError
from gatelab.timeseries.data.datamodule import ltsf_datamodule
from gatelab.timeseries.data.ltsf import (
    LTSFDataError,
    calendar_feature_names,
    load_ltsf,
    read_ltsf_file,
    split_borders,
    time_features,
)
from gatelab.timeseries.data.ltsf_datasets import EMBEDDED_DIR, EMBEDDED_FILES, LTSF_DATASETS

ETTH1_SHA256 = "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066"


@pytest.fixture(autouse=True)
def _private_hash_cache(tmp_path, monkeypatch):
    """Digests of large files are cached; keep the tests out of the user's cache."""
    monkeypatch.setenv("GATELAB_CACHE", str(tmp_path / "cache"))


# --------------------------------------------------------------------------- split arithmetic


def test_split_borders_hand_computed():
    # ETTh1, lookback 96: 12/4/4 months of 30 days x 24 h
    assert split_borders(17420, 96, "ett_h") == {
        "train": (0, 8640),
        "val": (8640 - 96, 11520),
        "test": (11520 - 96, 14400),
    }
    # ETTm: the same in 15-minute rows (x4)
    assert split_borders(69680, 96, "ett_m") == {
        "train": (0, 34560),
        "val": (34464, 46080),
        "test": (45984, 57600),
    }
    # custom 70/10/20, Exchange (7588 rows): int(5311.6) = 5311, int(1517.6) = 1517, val = 7588 - 5311 - 1517 = 760
    assert split_borders(7588, 96, "custom") == {
        "train": (0, 5311),
        "val": (5215, 6071),
        "test": (5975, 7588),
    }
    # ILI (966 rows) lookback 36: 676 / 193 / 97
    assert split_borders(966, 36, "custom") == {"train": (0, 676), "val": (640, 773), "test": (737, 966)}
    # Weather (52696 rows): 36887 / 10539 / 5270
    assert split_borders(52696, 96, "custom") == {
        "train": (0, 36887),
        "val": (36791, 42157),
        "test": (42061, 52696),
    }
    # Solar: val is int(0.1 n), so a gap may remain before the test split: n = 101 -> 70 / 10 / 20
    assert split_borders(101, 8, "solar") == {"train": (0, 70), "val": (62, 80), "test": (73, 101)}
    assert split_borders(52560, 96, "solar") == {
        "train": (0, 36792),
        "val": (36696, 42048),
        "test": (41952, 52560),
    }


def test_split_errors():
    with pytest.raises(LTSFDataError, match="uses the first 14400 rows"):
        split_borders(14399, 96, "ett_h")
    with pytest.raises(LTSFDataError, match="57600"):
        split_borders(20000, 96, "ett_m")
    with pytest.raises(LTSFDataError, match="longer than the training split"):
        split_borders(100, 80, "custom")
    with pytest.raises(LTSFDataError, match="unknown split rule"):
        split_borders(100, 8, "random")


# --------------------------------------------------------------------------- windows and scaling


def test_window_counts_and_contents(tmp_path):
    f = tmp_path / "toy.csv"
    write_csv(f, 100)
    d = load_ltsf(None, file=f, freq="h", lookback=10, horizon=5)
    # custom split of 100 rows, L = 10: train [0, 70), val [60, 80), test [70, 100); windows n - L - H + 1
    assert d.borders == {"train": (0, 70), "val": (60, 80), "test": (70, 100)}
    assert [len(d.windows(s)) for s in ("train", "val", "test")] == [56, 6, 16]
    w = d.windows("val")[3]
    torch.testing.assert_close(w["x"], d.data[63:73])
    torch.testing.assert_close(w["target"], d.data[73:78])
    torch.testing.assert_close(w["x_mark"], d.marks[63:73])
    # the first test target is the first row after the val/test edge (row 80? no: test starts at 70 + L = 80)
    torch.testing.assert_close(d.windows("test")[0]["target"][0], d.data[80])
    with pytest.raises(IndexError):
        d.windows("test")[16]


def test_scaler_is_fit_on_train_rows_only(tmp_path):
    f1, f2 = tmp_path / "one.csv", tmp_path / "two.csv"
    vals = write_csv(f1, 100)
    df = pd.read_csv(f1)
    df.loc[80:, ["a", "b", "OT"]] *= 1000.0  # only test rows differ
    df.to_csv(f2, index=False)
    d1 = load_ltsf(None, file=f1, freq="h", lookback=10, horizon=5)
    d2 = load_ltsf(None, file=f2, freq="h", lookback=10, horizon=5)
    np.testing.assert_allclose(d1.mean, vals[:70].mean(axis=0))
    np.testing.assert_allclose(d1.std, vals[:70].std(axis=0))  # population std, like sklearn
    np.testing.assert_allclose(d1.mean, d2.mean)
    np.testing.assert_allclose(d1.std, d2.std)
    torch.testing.assert_close(d1.data[:80], d2.data[:80])
    expected = torch.tensor(((vals - vals[:70].mean(0)) / vals[:70].std(0)).astype(np.float32))
    torch.testing.assert_close(d1.data, expected)
    np.testing.assert_allclose(d1.inverse_transform(d1.data[:5]), vals[:5], atol=1e-4)


def test_constant_training_column_gets_unit_std(tmp_path):
    f = tmp_path / "c.csv"
    write_csv(f, 60)
    df = pd.read_csv(f)
    df["a"] = 3.0
    df.to_csv(f, index=False)
    d = load_ltsf(None, file=f, freq="h", lookback=4, horizon=2)
    assert d.std[0] == 1.0 and torch.all(d.data[:, 0] == 0)


# --------------------------------------------------------------------------- calendar features


def test_calendar_features_hand_computed():
    dates = pd.to_datetime(["2016-07-01 00:00", "2016-07-03 23:45", "2017-12-31 13:30"])
    f = time_features(dates, "h")
    assert calendar_feature_names("h") == ["hourofday", "dayofweek", "dayofmonth", "dayofyear"]
    # 2016-07-01 is a Friday (dayofweek 4), day 183 of the leap year 2016
    np.testing.assert_allclose(f[0], [0 / 23 - 0.5, 4 / 6 - 0.5, 0 / 30 - 0.5, 182 / 365 - 0.5], rtol=1e-6)
    # 2016-07-03 23:45 is a Sunday (6), day 185
    np.testing.assert_allclose(f[1], [23 / 23 - 0.5, 6 / 6 - 0.5, 2 / 30 - 0.5, 184 / 365 - 0.5], rtol=1e-6)
    m = time_features(dates, "15min")
    assert calendar_feature_names("15min")[0] == "minuteofhour" and m.shape == (3, 5)
    np.testing.assert_allclose(m[1, 0], 45 / 59 - 0.5, rtol=1e-6)
    assert calendar_feature_names("t") == calendar_feature_names("min")  # the official 't' alias
    d = time_features(dates, "D")
    np.testing.assert_allclose(
        d[2], [6 / 6 - 0.5, 30 / 30 - 0.5, 364 / 365 - 0.5], rtol=1e-6
    )  # Sunday 31 Dec
    w = time_features(dates, "W")
    np.testing.assert_allclose(w[2], [30 / 30 - 0.5, (52 - 1) / 52 - 0.5], rtol=1e-6)  # ISO week 52
    assert time_features(dates, "YE").shape == (3, 0)
    assert f.dtype == np.float32 and (np.abs(f) <= 0.5 + 1e-6).all()


def test_data_uses_calendar_freq(tmp_path):
    f = tmp_path / "m.csv"
    write_csv(f, 80, freq="15min")
    d = load_ltsf(None, file=f, freq="15min", lookback=8, horizon=4)
    assert d.num_marks == 5 and d.calendar[0] == "minuteofhour"
    d_h = load_ltsf(None, file=f, freq="15min", lookback=8, horizon=4, calendar_freq="h")
    assert d_h.num_marks == 4  # what the official scripts use for every dataset


# --------------------------------------------------------------------------- feature modes, gz, layouts


def test_feature_modes_and_target_moved_last(tmp_path):
    f = tmp_path / "m.csv"
    vals = write_csv(f, 60, cols=("a", "OT", "b"))  # target in the middle: the custom loader moves it last
    m = load_ltsf(None, file=f, freq="h", lookback=6, horizon=3)
    assert m.columns == ["a", "b", "OT"] and (m.num_vars, m.num_targets) == (3, 3)
    np.testing.assert_allclose(m.inverse_transform(m.data[:2]), vals[:2][:, [0, 2, 1]], atol=1e-4)
    s = load_ltsf(None, file=f, freq="h", lookback=6, horizon=3, features="S")
    assert s.columns == ["OT"] and (s.num_vars, s.num_targets) == (1, 1)
    np.testing.assert_allclose(s.mean, [vals[: s.borders["train"][1], 1].mean()])
    ms = load_ltsf(None, file=f, freq="h", lookback=6, horizon=3, features="MS")
    w = ms.windows("train")[0]
    assert w["x"].shape == (6, 3) and w["target"].shape == (3, 1)
    torch.testing.assert_close(w["target"][:, 0], ms.data[6:9, 2])
    assert ms.model_kwargs() == {"num_vars": 3, "lookback": 6, "horizon": 3, "num_targets": 1, "num_marks": 4}
    with pytest.raises(Exception, match="features='X'"):
        load_ltsf(None, file=f, freq="h", lookback=6, horizon=3, features="X")


def test_csv_gz_reads_the_same(tmp_path):
    write_csv(tmp_path / "p.csv", 50)
    write_csv(tmp_path / "p.csv.gz", 50, gz=True)
    a = read_ltsf_file(tmp_path / "p.csv", freq="h")
    b = read_ltsf_file(tmp_path / "p.csv.gz", freq="h")
    np.testing.assert_array_equal(a.values, b.values)
    assert a.columns == b.columns == ["a", "b", "OT"]


def test_lstnet_layout_solar_reader(tmp_path):
    rng = np.random.default_rng(0)
    vals = rng.random((120, 5))
    path = tmp_path / "Solar" / "solar_AL.txt"
    path.parent.mkdir()
    np.savetxt(path, vals, delimiter=",", fmt="%.6f")
    d = load_ltsf("solar", data_dir=tmp_path, lookback=8, horizon=4)  # registered: lstnet layout, solar split
    assert d.source == "data_dir" and d.columns == ["0", "1", "2", "3", "4"]
    assert d.borders == split_borders(120, 8, "solar")
    assert d.num_marks == 1 and torch.all(d.marks == 0)  # no dates: one zero column, as the official loader
    np.testing.assert_allclose(d.inverse_transform(d.data[:3]), vals[:3], atol=1e-5)
    # exchange in the LSTNet layout, gz-compressed, target = column 6 moved last
    ex = tmp_path / "ex.txt.gz"
    ex.write_bytes(gzip.compress("\n".join(",".join(f"{v:.4f}" for v in r) for r in vals).encode()))
    s = read_ltsf_file(ex, layout="lstnet", target="2")
    assert s.columns == ["0", "1", "3", "4", "2"] and s.dates is None
    np.testing.assert_allclose(s.values[:, -1], vals[:, 2], atol=1e-4)


def test_custom_bundle_file_in_registry_layout(tmp_path):
    # ECL has no digest here: a small electricity.csv in the same layout (date, 0..319, OT) loads
    cols = (*(str(i) for i in range(320)), "OT")
    write_csv(tmp_path / "electricity" / "electricity.csv", 64, cols=cols)
    d = load_ltsf("ecl", data_dir=tmp_path, lookback=8, horizon=4)
    assert d.num_vars == 321 and d.borders == split_borders(64, 8, "custom")
    write_csv(tmp_path / "traffic" / "traffic.csv", 64, cols=("0", "1", "OT"))
    with pytest.raises(LTSFDataError, match="expected 862 variables for Traffic, found 3"):
        load_ltsf("traffic", data_dir=tmp_path, lookback=8, horizon=4)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda df: df.drop(columns=["date"]), r"no 'date' column; the header is \['a', 'b', 'OT'\]"),
        (lambda df: df.drop(columns=["OT"]), r"target column 'OT' not found"),
        (lambda df: df.assign(b=df["b"].astype(object).where(df.index != 7, "abc")), r"column 'b' has a non-numeric value 'abc' at line 9"),
        (lambda df: df.assign(a=df["a"].where(df.index != 11)), r"column 'a' has 1 missing/NaN value\(s\), the first at line 13"),
        (lambda df: df.assign(date=df["date"].where(df.index != 4, "not a date")), r"unparseable or missing timestamp 'not a date' at line 6"),
        (lambda df: df.iloc[[*range(20), 25, *range(20, 25), *range(26, 60)]], r"goes backwards at line 23"),
    ],
)  # fmt: skip
def test_bad_input_names_file_and_problem(tmp_path, edit, match):
    f = tmp_path / "bad.csv"
    write_csv(f, 60)
    edit(pd.read_csv(f)).to_csv(f, index=False)
    with pytest.raises(LTSFDataError, match=match) as e:
        load_ltsf(None, file=f, freq="h", lookback=8, horizon=4)
    assert str(f) in str(e.value)


def test_wrong_frequency_is_an_error(tmp_path):
    f = tmp_path / "daily.csv"
    write_csv(f, 60, freq="D")
    with pytest.raises(
        LTSFDataError, match=r"wrong frequency: timestamps are mostly 1 days .* sampled every 0 days 01:00:00"
    ) as e:
        load_ltsf(None, file=f, freq="h", lookback=8, horizon=4)
    assert str(f) in str(e.value)
    # through the registry: ETTh2 must be hourly (verify=False: the fixture is not the official file)
    write_csv(
        tmp_path / "ETT-small" / "ETTh2.csv",
        30,
        freq="15min",
        cols=("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"),
    )
    with pytest.raises(LTSFDataError, match=r"ETTh2\.csv: wrong frequency"):
        load_ltsf("etth2", data_dir=tmp_path, verify=False)


def test_irregular_steps_are_kept_and_warned(tmp_path, caplog):
    f = tmp_path / "gap.csv"
    write_csv(f, 60)
    df = pd.read_csv(f).drop(index=[30])  # one gap of 2 h (like Weather's upstream gaps)
    df.to_csv(f, index=False)
    # a file's default time-step policy is an error naming the line and the gap
    with pytest.raises(LTSFDataError, match=r"gap.csv: 1 of 58 .* a gap of 1 missing time step\(s\) at line 32"):
        load_ltsf(None, file=f, freq="h", lookback=8, horizon=4)
    with caplog.at_level(logging.WARNING, logger="gatelab.timeseries"):
        d = load_ltsf(None, file=f, freq="h", lookback=8, horizon=4, steps="keep")
    assert d.series.irregular_steps == 1 and d.series.n_rows == 59
    assert "1 of 58 timestamp steps differ" in caplog.text and "line 32" in caplog.text


def test_short_file_and_empty_file(tmp_path):
    f = tmp_path / "short.csv"
    write_csv(f, 30)
    # custom split of 30 rows: val = [21 - 8, 24) has 11 rows < lookback + horizon = 8 + 4
    with pytest.raises(
        LTSFDataError,
        match=r"short.csv: the val split has 11 rows .* shorter than lookback \+ horizon = 8 \+ 4 = 12",
    ):
        load_ltsf(None, file=f, freq="h", lookback=8, horizon=4)
    write_csv(
        tmp_path / "ETT-small" / "ETTh2.csv", 500, cols=("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT")
    )
    with pytest.raises(
        LTSFDataError, match=r"ETTh2.csv: the ett_h split uses the first 14400 rows .* the file has 500"
    ):
        load_ltsf("etth2", data_dir=tmp_path, verify=False)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(LTSFDataError, match=r"empty\.csv: the file is empty"):
        read_ltsf_file(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("date,a,OT\n")
    with pytest.raises(LTSFDataError, match="header but no data rows"):
        read_ltsf_file(tmp_path / "header.csv")
    (tmp_path / "s.txt").write_text("1,2\n3,x\n")
    with pytest.raises(LTSFDataError, match=r"s.txt: column 1 has a non-numeric value 'x' at line 2"):
        read_ltsf_file(tmp_path / "s.txt", layout="lstnet")


def test_unknown_dataset_and_missing_file(tmp_path):
    from gatelab.core.config import ConfigError

    with pytest.raises(ConfigError, match=r"unknown LTSF dataset 'ettx1'.*did you mean"):
        load_ltsf("ettx1", data_dir=tmp_path)
    with pytest.raises(DatasetNotFoundError, match=r"(?s)dataset 'weather' not found.*MISSING.*weather.csv"):
        load_ltsf("weather", data_dir=tmp_path)
    with pytest.raises(ConfigError, match="exactly one of dataset"):
        ltsf_datamodule(tmp_path, dataset="etth1", file="x.csv")


# --------------------------------------------------------------------------- registry and embedded copy


def test_registry_lists_every_benchmark_with_its_file_and_digest():
    expected = {
        "etth1": ("ETT-small", "ETTh1.csv", 1, "h", "ett_h"),
        "etth2": ("ETT-small", "ETTh2.csv", 1, "h", "ett_h"),
        "ettm1": ("ETT-small", "ETTm1.csv", 2, "15min", "ett_m"),
        "ettm2": ("ETT-small", "ETTm2.csv", 2, "15min", "ett_m"),
        "weather": ("weather", "weather.csv", 2, "10min", "custom"),
        "exchange": ("exchange_rate", "exchange_rate.csv", 1, "D", "custom"),
        "exchange-lstnet": ("exchange_rate", "exchange_rate.txt", 2, "D", "custom"),
        "ili": ("illness", "national_illness.csv", 1, "7D", "custom"),
        "ecl": ("electricity", "electricity.csv", 0, "h", "custom"),
        "traffic": ("traffic", "traffic.csv", 0, "h", "custom"),
        "solar": ("Solar", "solar_AL.txt", 0, "10min", "solar"),
    }
    assert set(LTSF_DATASETS) == set(expected)
    harness = list_datasets(domain="timeseries")
    for name, (subdir, file, n_digests, freq, split) in expected.items():
        info = LTSF_DATASETS[name]
        assert name in harness and get_dataset(name) is info.spec and info.spec.subdir == subdir
        digests = info.spec.files[file]
        assert (0 if digests is None else len(digests)) == n_digests, name
        assert (info.freq, info.split) == (freq, split)
    assert LTSF_DATASETS["ili"].lookback == 36 and LTSF_DATASETS["ili"].horizons == (24, 36, 48, 60)
    assert LTSF_DATASETS["solar"].layout == "lstnet" and LTSF_DATASETS["solar"].target is None


@pytest.mark.data
def test_real_files_match_registered_digests(shared_data):
    from gatelab.core.harness.data import dataset_status, locate

    checked = 0
    for info in LTSF_DATASETS.values():
        if dataset_status(info.spec, shared_data) == "present":
            locate(info.spec, shared_data, verify=True)  # raises ChecksumError on a mismatch
            checked += 1
    assert checked >= 8  # ETT x4, weather, exchange (csv and LSTNet), illness


def test_embedded_etth1_is_unmodified_and_attributed():
    path = EMBEDDED_DIR / "ETTh1.csv"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == ETTH1_SHA256 == EMBEDDED_FILES["etth1"][1]
    assert LTSF_DATASETS["etth1"].spec.files["ETTh1.csv"] == (ETTH1_SHA256,)
    assert path.stat().st_size == 2589657
    lic = (EMBEDDED_DIR / "LICENSE").read_text()
    assert lic.startswith("Creative Commons Attribution-NoDerivatives 4.0 International")
    readme = (EMBEDDED_DIR / "README.md").read_text()
    for needle in (
        "CC BY-ND 4.0",
        "zhouhaoyi/ETDataset",
        ETTH1_SHA256,
        "haoyietal-informer-2021",
        "unmodified",
    ):
        assert needle in readme


def test_embedded_fallback_says_so(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="gatelab.timeseries"):
        d = load_ltsf("etth1", data_dir=tmp_path / "empty")
    assert d.source == "embedded" and d.series.path == EMBEDDED_DIR / "ETTh1.csv"
    assert "using the embedded copy" in caplog.text and "CC BY-ND 4.0" in caplog.text
    assert [len(d.windows(s)) for s in ("train", "val", "test")] == [8449, 2785, 2785]
    with pytest.raises(DatasetNotFoundError):
        load_ltsf("etth1", data_dir=tmp_path / "empty", allow_embedded=False)
    # a present but different file is an error, never silently replaced by the embedded copy
    write_csv(tmp_path / "ETT-small" / "ETTh1.csv", 20)
    with pytest.raises(ChecksumError, match=r"ETTh1\.csv"):
        load_ltsf("etth1", data_dir=tmp_path)
