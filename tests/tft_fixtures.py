"""Shared fixtures of the Temporal Fusion Transformer tests (``from tft_fixtures import ...``)."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


@functools.cache
def pf_sub_modules():
    """pytorch-forecasting's ``temporal_fusion_transformer/sub_modules.py`` alone (torch only, fast)."""
    spec = importlib.util.find_spec("pytorch_forecasting")
    if spec is None or spec.origin is None:
        pytest.skip("pytorch-forecasting is not installed")
    path = Path(spec.origin).parent / "models" / "temporal_fusion_transformer" / "sub_modules.py"
    name = "pytorch_forecasting.models.temporal_fusion_transformer.sub_modules"
    mod_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module


def tiny_frame(n_series: int = 6, n_steps: int = 20, seed: int = 0) -> pd.DataFrame:
    """A long frame with static/known/observed, categorical (one group) and real columns."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(n_series):
        for t in range(n_steps):
            rows.append(
                dict(
                    series=f"s{g}",
                    store=f"st{g % 3}",
                    time_idx=t,
                    y=float(rng.gamma(2.0, 3.0) + g),
                    price=float(rng.normal()),
                    promo=str(int(rng.integers(0, 3))),
                    hol_a=str(rng.choice(["-", "a"])),
                    hol_b=str(rng.choice(["-", "b"])),
                    size=float(g),
                )
            )
    df = pd.DataFrame(rows)
    for c in ["series", "store", "promo", "hol_a", "hol_b"]:
        df[c] = df[c].astype("category")
    return df


def tiny_spec(**kw):
    from gatelab.timeseries.data.tft import TFTSpec

    base = dict(
        time_idx="time_idx",
        target="y",
        group_ids=("series",),
        lookback=6,
        min_lookback=2,
        horizon=3,
        min_horizon=1,
        static_categoricals=("series", "store"),
        static_reals=("size",),
        known_categoricals=("promo", "hols"),
        categorical_groups={"hols": ("hol_a", "hol_b")},
        known_reals=("time_idx", "price"),
        observed_reals=("y",),
        target_normalizer="group",
        target_transform="softplus",
        add_relative_time_idx=True,
        add_target_scales=True,
        add_encoder_length=True,
    )
    base.update(kw)
    return TFTSpec(**base)


def write_pems(folder, n_days=4, n_st=3, n_samples=144, seed=0):
    """PEMS-SF files (PEMS_train/test, labels, randperm, stations_list) in the UCI layout; returns
    the calendar-ordered values ``[days, stations, samples]`` and the day-of-week labels."""
    rng = np.random.default_rng(seed)
    cal = rng.random((n_days, n_st, n_samples)).round(4)  # calendar-ordered days
    order = rng.permutation(n_days)  # file line i holds calendar day order[i]
    dow = (np.arange(n_days) % 7) + 1
    n_train = n_days // 2

    def day_line(d):
        return "[" + ";".join(" ".join(f"{v:.4f}" for v in cal[d, s]) for s in range(n_st)) + "]"

    (folder / "PEMS_train").write_text("\n".join(day_line(d) for d in order[:n_train]) + "\n")
    (folder / "PEMS_test").write_text("\n".join(day_line(d) for d in order[n_train:]) + "\n")
    (folder / "PEMS_trainlabels").write_text("[" + " ".join(str(dow[d]) for d in order[:n_train]) + "]\n")
    (folder / "PEMS_testlabels").write_text("[" + " ".join(str(dow[d]) for d in order[n_train:]) + "]\n")
    (folder / "randperm").write_text("[" + " ".join(str(o + 1) for o in order) + "]\n")
    (folder / "stations_list").write_text("[" + " ".join(str(400000 + s) for s in range(n_st)) + "]\n")
    return cal, dow


def stallion_raw(n_agency=2, n_sku=2, months=30, seed=0) -> pd.DataFrame:
    """A Stallion-like frame (the Kaggle columns) of ``n_agency x n_sku`` monthly series."""
    from gatelab.timeseries.data.tft import STALLION_SPECIAL_DAYS

    rng = np.random.default_rng(seed)
    rows = []
    for a in range(n_agency):
        for s in range(n_sku):
            for t, d in enumerate(pd.date_range("2013-01-01", periods=months, freq="MS")):
                r = dict(
                    agency=f"Agency_{a:02d}",
                    sku=f"SKU_{s:02d}",
                    volume=float(rng.gamma(2, 50)),
                    date=d,
                    industry_volume=int(5e8),
                    soda_volume=int(8e8),
                    avg_max_temp=float(rng.normal(25, 3)),
                    price_regular=float(rng.normal(1500, 50)),
                    price_actual=1400.0,
                    discount=100.0,
                    avg_population_2017=1000 * (a + 1),
                    avg_yearly_household_income_2017=200000,
                    discount_in_percent=float(rng.uniform(0, 10)),
                    timeseries=a * n_sku + s,
                )
                r.update({c: int(t % 12 == i) for i, c in enumerate(STALLION_SPECIAL_DAYS)})
                rows.append(r)
    df = pd.DataFrame(rows)
    df["agency"] = df["agency"].astype("category")
    df["sku"] = df["sku"].astype("category")
    return df
