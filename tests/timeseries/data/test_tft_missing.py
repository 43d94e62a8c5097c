"""TFT frames with missing time steps and missing values: the default error names the column, the
row and its series; the ffill / fill_na / mask policies fill, count and (mask) feed an availability
input and the loss weight to the TFT, tested on series with gaps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from tft_fixtures import tiny_frame, tiny_spec

from gatelab.timeseries.data import tft as td


def gappy(frame: pd.DataFrame) -> pd.DataFrame:
    """Series s1 loses steps 7, 8 (a gap), s2 has a NaN target at 5 and 11, s3 an inf target at 9."""
    out = frame[~((frame.series == "s1") & frame.time_idx.isin([7, 8]))].copy()
    out.loc[(out.series == "s2") & out.time_idx.isin([5, 11]), "y"] = np.nan
    out.loc[(out.series == "s3") & (out.time_idx == 9), "y"] = np.inf
    return out


def test_default_policy_names_column_row_and_series():
    spec = tiny_spec()
    frame = tiny_frame()
    bad = frame.copy()
    bad.loc[45, "y"] = np.nan  # series s2, time_idx 5
    with pytest.raises(td.FrameError, match=r"column 'y' has 1 missing value\(s\), the first at row 45 \(series series='s2', time_idx=5\)"):
        td.apply_missing_policy(bad, spec, "error")
    bad = frame.copy()
    bad.loc[69, "price"] = -np.inf
    with pytest.raises(td.FrameError, match=r"column 'price' has 1 infinite value\(s\), the first at row 69 \(series series='s3'"):
        td.build_dataset(bad, spec)
    bad = frame.assign(price=frame.price.astype(object))
    bad.loc[3, "price"] = "n/a"
    with pytest.raises(td.FrameError, match=r"real column 'price' is not numeric .*'n/a' at row 3"):
        td.check_frame(bad, spec)
    with pytest.raises(td.FrameError, match=r"series \(series='s1'\) is not contiguous"):
        td.apply_missing_policy(gappy(frame), spec)
    with pytest.raises(td.FrameError, match="missing='zero' is not one of error, ffill, fill_na, mask"):
        td.apply_missing_policy(frame, spec, "zero")


def test_mask_policy_inserts_fills_counts_and_weights():
    spec = tiny_spec()
    frame = gappy(tiny_frame())
    data, mspec = td.apply_missing_policy(frame, spec, "mask", name="gappy")
    assert len(data) == 120 and td.missing_counts(data) == {"inserted_rows": 2, "filled_cells": 3, "infinite_cells": 1}
    assert td.missing_counts(data[data.time_idx < 6]) == {"inserted_rows": 0, "filled_cells": 1, "infinite_cells": 0}
    assert mspec.weight == "y_observed" and mspec.observed_reals == ("y", "y_observed")
    s1 = data[data.series == "s1"].set_index("time_idx")
    assert s1.loc[7, "__inserted__"] and s1.loc[7, "y_observed"] == 0 and s1.loc[6, "y_observed"] == 1
    assert s1.loc[7, "size"] == 1.0 and s1.loc[7, "store"] == "st1"  # statics from the series
    assert s1.loc[7, "price"] == s1.loc[6, "price"]  # a known input of an inserted step: forward-filled
    s2 = data[data.series == "s2"].set_index("time_idx")
    observed_mean = frame[(frame.series == "s2")].y.mean()  # pandas skips the NaN
    assert s2.loc[5, "y"] == pytest.approx(observed_mean) and s2.loc[5, "y_observed"] == 0
    s3 = data[data.series == "s3"].set_index("time_idx")
    assert np.isfinite(s3.loc[9, "y"]) and s3.loc[9, "y_observed"] == 0
    # the dataset, the model and the loss see the mask
    from gatelab.timeseries.data.tft_loader import WindowBatches
    from gatelab.timeseries.models.tft import TemporalFusionTransformer, config_from_dataset
    from gatelab.timeseries.tasks.tft import TFTTask

    ds = td.build_dataset(data, mspec)
    assert "y_observed" in ds.reals and ds.weight == "y_observed"
    x, (target, weight) = WindowBatches(ds).__getitems__(list(range(len(ds))))
    assert weight is not None and int((weight == 0).sum()) > 0 and set(weight.unique().tolist()) <= {0.0, 1.0}
    torch.manual_seed(0)
    cfg = config_from_dataset(ds, d_model=8, num_heads=1, continuous_dim=4, dropout=0.0)
    model = TemporalFusionTransformer(**cfg)
    task = TFTTask(model=model, task={"name": "tft"})
    loss, _, _ = task.shared_step((x, (target, weight)), "train")
    assert torch.isfinite(loss)
    loss.backward()
    # garbage in the unobserved targets changes nothing
    junk = torch.where(weight > 0, target, torch.full_like(target, 1e6))
    x2 = dict(x, decoder_target=junk)
    loss2, _, _ = task.shared_step((x2, (junk, weight)), "train")
    assert loss2.item() == pytest.approx(loss.item(), rel=1e-6)


def test_ffill_and_fill_na_policies():
    spec = tiny_spec()
    frame = gappy(tiny_frame())
    data, fspec = td.apply_missing_policy(frame, spec, "ffill")
    assert fspec == spec and "y_observed" not in data.columns
    s1 = data[data.series == "s1"].set_index("time_idx")
    s2 = data[data.series == "s2"].set_index("time_idx")
    assert s1.loc[8, "y"] == s1.loc[6, "y"] and s2.loc[5, "y"] == s2.loc[4, "y"]
    data, _ = td.apply_missing_policy(frame, spec, "fill_na")
    s2 = data[data.series == "s2"].set_index("time_idx")
    assert s2.loc[11, "y"] == pytest.approx(frame[frame.series == "s2"].y.mean())
    td.build_dataset(data, spec)  # a complete frame now
    # ffill needs an earlier value; a missing known input of a given step stays an error
    first = tiny_frame()
    first.loc[first.index[(first.series == "s4") & (first.time_idx == 0)], "y"] = np.nan
    with pytest.raises(td.FrameError, match=r"ffill' has no earlier value for column 'y' at row .*series='s4', time_idx=0"):
        td.apply_missing_policy(first, spec, "ffill")
    known = tiny_frame()
    known.loc[10, "price"] = np.nan
    with pytest.raises(td.FrameError, match=r"column 'price' has 1 missing value\(s\)"):
        td.apply_missing_policy(known, spec, "mask")
    dup = pd.concat([tiny_frame(), tiny_frame().iloc[[3]]])
    with pytest.raises(td.FrameError, match="repeats a time step"):
        td.apply_missing_policy(dup, spec, "mask")


def test_data_module_splits_report_counts_per_split():
    from gatelab.timeseries.data.datamodule import _paper_splits

    spec = tiny_spec()
    frame = gappy(tiny_frame())
    split = {"column": "time_idx", "valid_boundary": 12, "test_boundary": 16, "lookback": 6}
    training, validation, test, counts = _paper_splits(frame, spec, split, "mask", "gappy")
    # s1 lost steps 7, 8 (train [0, 12) and val [6, 16)); s2's NaN targets at 5 (train) and 11
    # (train, val, test [10, 20)); s3's inf at 9 (train, val)
    assert counts == {
        "train": {"inserted_rows": 2, "filled_cells": 3, "infinite_cells": 1},
        "val": {"inserted_rows": 2, "filled_cells": 2, "infinite_cells": 1},
        "test": {"inserted_rows": 0, "filled_cells": 1, "infinite_cells": 0},
    }
    assert training.weight == validation.weight == test.weight == "y_observed"
    with pytest.raises(td.FrameError, match=r"training split: series \(series='s1'\) is not contiguous"):
        _paper_splits(frame, spec, split)
