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
        max_encoder_length=6,
        min_encoder_length=2,
        max_prediction_length=3,
        min_prediction_length=1,
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
