"""The time-series bad-input census (issue 18 point 6): every malformed input is built in its real
format (an LTSF CSV / ``.csv.gz``, a TFT long frame, the UCI ``LD2011_2014.txt``) and must either
raise an error naming the file (or frame) and the fault (line, column, value), or be handled by the
declared policy with its counts right. Recorded through ``tools/census.py`` when present."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest
from census import check_error, check_policy
from ltsf_fixtures import write_csv
from tft_fixtures import tiny_frame, tiny_spec

from gatelab.core.config import ConfigError
from gatelab.timeseries.data import tft as td
from gatelab.timeseries.data.ltsf import LTSFDataError, load_ltsf

LTSF = "timeseries.ltsf"
TFT = "timeseries.tft.frame"
ELEC = "timeseries.tft.electricity"
KW = dict(freq="h", lookback=8, horizon=4)


@pytest.fixture(autouse=True)
def _private_hash_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GATELAB_CACHE", str(tmp_path / "cache"))


def _edited(tmp_path, edit, n=60, name="bad.csv"):
    f = tmp_path / name
    write_csv(f, n)
    df = pd.read_csv(f).astype({"a": object, "b": object, "OT": object})
    edit(df).to_csv(f, index=False)
    return f


def _cell(r, c, v):
    def edit(df):
        df.loc[r, c] = v
        return df

    return edit


# case id, fault, edit of a 60-row hourly file (date, a, b, OT), strings the error must hold
LTSF_ERRORS = [
    ("missing-date-column", "no date column", lambda df: df.drop(columns=["date"]), ["no 'date' column"]),
    ("missing-target-column", "no target column", lambda df: df.drop(columns=["OT"]), ["target column 'OT' not found"]),
    ("nan-cell", "an empty cell", _cell(11, "a", ""), ["column 'a'", "missing/NaN", "line 13"]),
    ("nan-literal", "a 'nan' cell", _cell(20, "b", "nan"), ["column 'b'", "missing/NaN", "line 22"]),
    ("inf-cell", "an 'inf' cell", _cell(7, "OT", "inf"), ["column 'OT'", "infinite", "line 9"]),
    ("wrong-type", "a word in a numeric column", _cell(7, "b", "abc"), ["column 'b'", "'abc'", "line 9"]),
    ("bad-timestamp", "an unparseable date", _cell(4, "date", "yesterday"), ["column 'date'", "'yesterday'", "line 6"]),
    ("duplicate-timestamp", "a repeated timestamp", lambda df: pd.concat([df.iloc[:10], df.iloc[9:]]).reset_index(drop=True), ["a repeated timestamp", "line 12"]),
    ("gap", "missing time steps", lambda df: df.drop(index=[30, 31]), ["a gap of 2 missing time step(s)", "line 32"]),
    ("backwards", "timestamps going backwards", lambda df: df.iloc[[*range(20), 25, *range(20, 25), *range(26, 60)]], ["goes backwards", "line 23"]),
    ("off-grid-step", "a step off the hourly grid", _cell(10, "date", "2016-07-01 10:30:00"), ["off-grid step", "line 12"]),
]  # fmt: skip


@pytest.mark.parametrize(("case", "fault", "edit", "names"), LTSF_ERRORS, ids=[c[0] for c in LTSF_ERRORS])
def test_ltsf_csv_errors(tmp_path, case, fault, edit, names):
    f = _edited(tmp_path, edit)
    check_error(LTSF, case, fault, lambda: load_ltsf(None, file=f, **KW), names=[f.name, *names], exc=LTSFDataError)


def test_ltsf_file_level_errors(tmp_path):
    f = tmp_path / "empty.csv"
    f.write_text("")
    check_error(LTSF, "empty-file", "a 0-byte file", lambda: load_ltsf(None, file=f, **KW), names=["empty.csv", "empty"])
    f = tmp_path / "header.csv"
    f.write_text("date,a,b,OT\n")
    check_error(LTSF, "header-only", "a header and no rows", lambda: load_ltsf(None, file=f, **KW), names=["header.csv", "no data rows"])
    f = tmp_path / "cut.csv.gz"
    write_csv(tmp_path / "full.csv", 200)
    f.write_bytes(gzip.compress((tmp_path / "full.csv").read_bytes())[:-40])
    check_error(LTSF, "truncated-gzip", "a .gz cut short", lambda: load_ltsf(None, file=f, **KW), names=["cut.csv.gz", "cannot be parsed"])
    f = tmp_path / "garbled.csv.gz"
    blob = bytearray(gzip.compress((tmp_path / "full.csv").read_bytes()))
    blob[30:60] = bytes(range(30))
    f.write_bytes(bytes(blob))
    check_error(LTSF, "garbled-gzip", "corrupt compressed bytes", lambda: load_ltsf(None, file=f, **KW), names=["garbled.csv.gz", "cannot be parsed"])
    f = tmp_path / "latin.csv"
    write_csv(f, 60, cols=("a", "b", "OT"))
    f.write_bytes(f.read_bytes().replace(b"date,a", b"date,\xe9\xff"))
    check_error(LTSF, "invalid-utf8", "a header byte that is not UTF-8", lambda: load_ltsf(None, file=f, **KW), names=["latin.csv", "UnicodeDecodeError"])
    f = _edited(tmp_path, _cell(5, "a", "1e300"), name="huge.csv")
    check_error(LTSF, "huge-value", "a finite value whose variance overflows", lambda: load_ltsf(None, file=f, **KW), names=["huge.csv", "column 'a'", "1e+300", "line 7"])
    f = tmp_path / "dup.csv"
    write_csv(f, 60, cols=("a", "b", "OT"))
    f.write_text(f.read_text().replace("date,a,b,OT", "date,a,a,OT", 1))
    check_error(LTSF, "duplicate-column", "a header naming 'a' twice", lambda: load_ltsf(None, file=f, **KW), names=["dup.csv", "line 1", "'a' twice"])
    f.write_text(f.read_text().replace("date,a,a,OT", "date,a,,OT", 1))
    check_error(LTSF, "unnamed-column", "an empty header cell", lambda: load_ltsf(None, file=f, **KW), names=["dup.csv", "line 1", "column 3 has no name"])
    f = tmp_path / "daily.csv"
    write_csv(f, 60, freq="D")
    check_error(LTSF, "wrong-frequency", "daily rows for an hourly dataset", lambda: load_ltsf(None, file=f, **KW), names=["daily.csv", "wrong frequency"])
    # a registered dataset with an extra / a missing variable column
    cols = ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "extra", "OT")
    write_csv(tmp_path / "ETT-small" / "ETTh2.csv", 300, cols=cols)
    check_error(
        LTSF, "extra-column", "an 8th variable in ETTh2", lambda: load_ltsf("etth2", data_dir=tmp_path, verify=False),
        names=["ETTh2.csv", "expected 7 variables", "found 8"],
    )  # fmt: skip
    write_csv(tmp_path / "ETT-small" / "ETTh2.csv", 300, cols=(*cols[:5], "OT"))
    check_error(
        LTSF, "missing-column", "5 variables in ETTh2", lambda: load_ltsf("etth2", data_dir=tmp_path, verify=False),
        names=["ETTh2.csv", "expected 7 variables", "found 6"],
    )  # fmt: skip
    f = tmp_path / "ok.csv"
    write_csv(f, 60)
    check_error(LTSF, "unknown-policy", "missing: zero", lambda: load_ltsf(None, file=f, missing="zero", **KW), names=["missing='zero'", "ffill"], exc=ConfigError)


def test_ltsf_policies_are_applied_and_counted(tmp_path):
    def damage(df):
        df.loc[11, "a"] = ""
        df.loc[15, "OT"] = "inf"
        return df.drop(index=[30])

    f = _edited(tmp_path, damage, n=80)
    for policy in ("ffill", "fill_na", "mask"):
        d = load_ltsf(None, file=f, missing=policy, steps="insert", **KW)
        counts = d.missing_counts()
        ok = (
            counts["train"] == {"missing": 1, "infinite": 1, "inserted_rows": 1}
            and d.series.inserted_steps == 1
            and bool(np.isfinite(d.data.numpy()).all())
            and (d.observed is not None) == (policy == "mask")
        )
        check_policy(LTSF, f"nan-inf-gap-{policy}", f"a NaN, an inf and a missing step with missing: {policy}", ok, str(counts))
    d = load_ltsf(None, file=f, missing="mask", steps="keep", **KW)
    ok = d.series.irregular_steps == 1 and d.series.n_rows == 79 and d.missing_counts()["train"]["inserted_rows"] == 0
    check_policy(LTSF, "gap-keep", "a missing step with steps: keep (rows as they are, warned)", ok, str(d.summary()["irregular_steps"]))


# --------------------------------------------------------------------------- TFT frames


def _frame_case(edit):
    frame = tiny_frame()
    return edit(frame)


TFT_ERRORS = [
    ("missing-group-column", "no series id column", lambda f: f.drop(columns=["series"]), ["frame", "missing group id column(s) ['series']"], KeyError),
    ("missing-column", "no price column", lambda f: f.drop(columns=["price"]), ["frame", "missing column(s) ['price']"], KeyError),
    ("nan-target", "a NaN target", lambda f: f.assign(y=f.y.where(f.index != 45)), ["frame", "column 'y'", "row 45", "series='s2'", "time_idx=5"], td.FrameError),
    ("inf-real", "an inf real input", lambda f: f.assign(price=f.price.where(f.index != 69, np.inf)), ["column 'price'", "infinite", "row 69"], td.FrameError),
    ("wrong-type", "a word in a real column", lambda f: f.assign(price=f.price.astype(object).where(f.index != 3, "n/a")), ["real column 'price'", "'n/a'", "row 3"], td.FrameError),
    ("duplicate-step", "a repeated time step", lambda f: pd.concat([f, f.iloc[[3]]]), ["series='s0'", "time_idx 3 twice"], td.FrameError),
    ("gap", "missing time steps", lambda f: f[~((f.series == "s2") & (f.time_idx == 7))], ["series='s2'", "not contiguous", "jumps from 6 to 8"], td.FrameError),
    ("float-time-index", "a float time index", lambda f: f.assign(time_idx=f.time_idx.astype(float)), ["'time_idx' must be integers"], td.FrameError),
]  # fmt: skip


@pytest.mark.parametrize(("case", "fault", "edit", "names", "exc"), TFT_ERRORS, ids=[c[0] for c in TFT_ERRORS])
def test_tft_frame_errors(case, fault, edit, names, exc):
    frame = _frame_case(edit)
    check_error(TFT, case, fault, lambda: td.build_dataset(frame, tiny_spec()), names=names, exc=exc)


def test_tft_unknown_category_and_policies():
    spec = tiny_spec()
    frame = tiny_frame()
    training = td.build_dataset(frame, spec)
    new = frame.assign(promo=frame.promo.astype(str))
    new.loc[new.time_idx == 19, "promo"] = "9"
    check_error(
        TFT, "unseen-category", "a category unknown at training time",
        lambda: td.dataset_from(training, new, spec, name="test split"),
        names=["test split", "categorical column 'promo'", "['9']"], exc=td.FrameError,
    )  # fmt: skip
    gappy = frame[~((frame.series == "s1") & frame.time_idx.isin([7, 8]))].copy()
    gappy.loc[gappy.index[(gappy.series == "s2") & (gappy.time_idx == 5)], "y"] = np.nan
    for policy in ("ffill", "fill_na", "mask"):
        data, pspec = td.apply_missing_policy(gappy, spec, policy)
        counts = td.missing_counts(data)
        ok = counts == {"inserted_rows": 2, "filled_cells": 1, "infinite_cells": 0} and len(data) == 120
        ok = ok and (pspec.weight == "y_observed") == (policy == "mask")
        td.build_dataset(data, pspec)
        check_policy(TFT, f"gap-nan-{policy}", f"2 missing steps and a NaN target with missing: {policy}", ok, str(counts))


def _ld2011(path, rows):
    lines = ['"";"MT_001";"MT_002"'] + [f'"2011-01-01 00:{15 * (i + 1) % 60:02d}:00";{a};{b}' for i, (a, b) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_electricity_file_errors(tmp_path):
    f = _ld2011(tmp_path / "nan.txt", [("1,5", "2"), ("", "3"), ("2", "1")])
    check_error(ELEC, "empty-cell", "an empty kW cell", lambda: td.read_electricity(f), names=["nan.txt", "line 3", "'MT_001'"], exc=td.FrameError)
    f = _ld2011(tmp_path / "word.txt", [("1,5", "2"), ("x", "3")])
    check_error(ELEC, "wrong-type", "a word in a kW column", lambda: td.read_electricity(f), names=["word.txt", "non-numeric", "'x'", "line 3"], exc=td.FrameError)
    f = _ld2011(tmp_path / "dup.txt", [("1,5", "2")])
    f.write_text(f.read_text().replace('"MT_002"', '"MT_001"'))
    check_error(ELEC, "duplicate-column", "a customer named twice", lambda: td.read_electricity(f), names=["dup.txt", "line 1", "MT_001"], exc=td.FrameError)
    f = tmp_path / "empty.txt"
    f.write_text("")
    check_error(ELEC, "empty-file", "a 0-byte file", lambda: td.read_electricity(f), names=["empty.txt", "empty"], exc=td.FrameError)
    f = _ld2011(tmp_path / "bytes.txt", [("1,5", "2")])
    f.write_bytes(f.read_bytes().replace(b"MT_002", b"MT_\xff\xfe2"))
    check_error(ELEC, "invalid-utf8", "a header byte that is not UTF-8", lambda: td.read_electricity(f), names=["bytes.txt", "UnicodeDecodeError"], exc=td.FrameError)
