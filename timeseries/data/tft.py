"""Data for the Temporal Fusion Transformer: the paper's datasets and pytorch-forecasting's stallion.

Three layers, each usable on its own:

1. **Readers** of the official files (never downloaded here; see :data:`ELECTRICITY`,
   :data:`TRAFFIC`, :data:`STALLION` for where to get them):

   * :func:`read_electricity` -- UCI ``LD2011_2014.txt`` (``;``-separated, ``,`` decimals, one
     15-minute kW column per customer ``MT_001`` ... ``MT_370``);
   * :func:`read_pems_sf` -- the UCI PEMS-SF folder (``PEMS_train``, ``PEMS_test``, ``randperm``,
     ``stations_list``, ``PEMS_trainlabels``, ``PEMS_testlabels``; one day per line, 963 stations x
     144 ten-minute occupancy rates);
   * :func:`read_stallion` -- pytorch-forecasting's ``stallion.parquet``.

2. **Protocols** turning those into long frames with the features of the paper's official code
   (google-research ``tft/script_download_data.py`` and ``tft/data_formatters``) or of
   pytorch-forecasting's stallion tutorial: :func:`electricity_frame`, :func:`traffic_frame`,
   :func:`stallion_frame`, with the splits of :func:`split_frame` and the variable roles in a
   :class:`TFTSpec` (:data:`ELECTRICITY_SPEC`, :data:`TRAFFIC_SPEC`, :data:`STALLION_SPEC`).

3. **Windows**: :func:`check_frame` validates a frame against a spec (clear errors for a missing
   group id, a gap in the time index, duplicate steps, missing values), :func:`build_dataset`
   makes a pytorch-forecasting ``TimeSeriesDataSet`` (the dataloaders both our TFT and
   pytorch-forecasting's train on), :func:`dataset_from` applies a fitted one to new data
   (unknown categories are an error), and :func:`prediction_dataset` builds the windows that
   forecast past the end of each series from future known inputs (a horizon longer than the
   known-future inputs is an error).

pytorch-forecasting is imported lazily (it pulls in Lightning and scikit-learn).
"""

from __future__ import annotations

import dataclasses
import os
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gatelab.core.harness.data import DatasetSpec

__all__ = [
    "ELECTRICITY",
    "ELECTRICITY_SPEC",
    "MISSING_POLICIES",
    "STALLION",
    "STALLION_SPEC",
    "STALLION_SPECIAL_DAYS",
    "TRAFFIC",
    "TRAFFIC_SPEC",
    "FrameError",
    "TFTSpec",
    "apply_missing_policy",
    "build_dataset",
    "check_categories",
    "check_frame",
    "dataset_from",
    "electricity_frame",
    "missing_counts",
    "observed_column",
    "prediction_dataset",
    "prediction_frame",
    "read_electricity",
    "read_pems_sf",
    "read_stallion",
    "split_frame",
    "stallion_frame",
    "traffic_frame",
]


class FrameError(ValueError):
    """A data frame does not fit its :class:`TFTSpec` (the message names the column/group at fault)."""


# --------------------------------------------------------------------------------------------
# dataset specs (files)
# --------------------------------------------------------------------------------------------
ELECTRICITY = DatasetSpec(
    name="uci-electricity",
    subdir="electricity",
    files={"LD2011_2014.txt": None},
    source="https://archive.ics.uci.edu/dataset/321/electricityloaddiagrams20112014 (LD2011_2014.txt.zip, unzip)",
    license="CC BY 4.0",
    description="UCI ElectricityLoadDiagrams20112014: 15-minute kW of 370 customers (TFT paper, hourly)",
)
TRAFFIC = DatasetSpec(
    name="pems-sf",
    subdir="PEMS-SF",
    files={
        "PEMS_train": None,
        "PEMS_test": None,
        "PEMS_trainlabels": None,
        "PEMS_testlabels": None,
        "randperm": None,
        "stations_list": None,
    },
    source="https://archive.ics.uci.edu/dataset/204/pems+sf (PEMS-SF.zip, unzip)",
    license="CC BY 4.0",
    description="UCI PEMS-SF: occupancy of 963 San Francisco freeway lanes, 10-minute, 440 days (TFT paper, hourly)",
)
STALLION = DatasetSpec(
    name="stallion",
    subdir="stallion",
    files={"stallion.parquet": "22397fe65d91eb4ac8ae05d307f64244a36649f58d6f3232da98ec1f13e3d0ba"},
    source="https://github.com/sktime/pytorch-forecasting (examples/data/stallion.parquet; "
    "pytorch_forecasting.data.examples.get_stallion_data())",
    license="MIT repository (pytorch-forecasting); original Kaggle terms unclear",
    description="Stallion beverage demand, 350 agency x SKU series, monthly 2013-2017",
)


# --------------------------------------------------------------------------------------------
# variable roles
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TFTSpec:
    """Columns of a long frame and their roles, and the window lengths.

    Args:
        time_idx: integer time step, contiguous (step 1) within each series.
        target: the forecast variable.
        group_ids: columns identifying a series.
        static_categoricals, static_reals: constant per series.
        known_categoricals, known_reals: known in advance (past and future).
        observed_categoricals, observed_reals: observed in the past only (include the target
            when it should be an input).
        categorical_groups: ``{name: [columns]}``, categorical columns embedded together as one
            variable (listed under ``known_categoricals`` etc. by ``name``).
        lookback, horizon: window lengths (pytorch-forecasting's ``max_encoder_length`` and
            ``max_prediction_length``).
        min_lookback, min_horizon: shortest windows (default: the maxima; its
            ``min_encoder_length``, ``min_prediction_length``).
        target_normalizer: ``"group"`` (centre/scale per series), ``"global"`` or ``"none"``.
        target_method: ``"standard"`` (mean/std) or ``"robust"`` (median/IQR).
        target_transform: applied before normalising (``"softplus"``, ``"log1p"``, ...).
        add_relative_time_idx, add_target_scales, add_encoder_length: pytorch-forecasting's
            extra inputs (a relative time index known input; the series' centre/scale and the
            encoder length as static reals).
        weight: a column of per-step loss weights (pytorch-forecasting's ``weight``); the
            ``missing="mask"`` policy (:func:`apply_missing_policy`) sets it to the target's
            availability column.
    """

    time_idx: str
    target: str
    group_ids: tuple[str, ...]
    lookback: int
    horizon: int
    static_categoricals: tuple[str, ...] = ()
    static_reals: tuple[str, ...] = ()
    known_categoricals: tuple[str, ...] = ()
    known_reals: tuple[str, ...] = ()
    observed_categoricals: tuple[str, ...] = ()
    observed_reals: tuple[str, ...] = ()
    categorical_groups: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    min_lookback: int | None = None
    min_horizon: int | None = None
    target_normalizer: str = "group"
    target_method: str = "standard"
    target_transform: str | None = None
    add_relative_time_idx: bool = False
    add_target_scales: bool = False
    add_encoder_length: bool = False
    weight: str | None = None

    def __post_init__(self) -> None:
        if self.target_normalizer not in ("group", "global", "none"):
            raise ValueError(
                f"TFTSpec.target_normalizer must be group, global or none, got {self.target_normalizer!r}"
            )
        if self.target_method not in ("standard", "robust"):
            raise ValueError(f"TFTSpec.target_method must be standard or robust, got {self.target_method!r}")
        for name in ("lookback", "horizon"):
            if getattr(self, name) < 1:
                raise ValueError(f"TFTSpec.{name} must be >= 1, got {getattr(self, name)}")

    @property
    def categoricals(self) -> list[str]:
        """Every categorical variable (groups by their name)."""
        return [*self.static_categoricals, *self.known_categoricals, *self.observed_categoricals]

    @property
    def categorical_columns(self) -> list[str]:
        """Every categorical frame column (group members expanded)."""
        out = []
        for n in self.categoricals:
            out.extend(self.categorical_groups.get(n, (n,)))
        return out

    @property
    def reals(self) -> list[str]:
        return list(dict.fromkeys([*self.static_reals, *self.known_reals, *self.observed_reals]))

    @property
    def known_columns(self) -> list[str]:
        out = []
        for n in self.known_categoricals:
            out.extend(self.categorical_groups.get(n, (n,)))
        return [*out, *self.known_reals]

    def columns(self) -> list[str]:
        """Every column the spec reads."""
        extra = [self.weight] if self.weight else []
        return list(
            dict.fromkeys(
                [*self.group_ids, self.time_idx, self.target, *self.categorical_columns, *self.reals, *extra]
            )
        )


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------
def _group_label(key: Any, group_ids: Sequence[str]) -> str:
    key = key if isinstance(key, tuple) else (key,)
    return ", ".join(f"{g}={k!r}" for g, k in zip(group_ids, key))


def check_frame(
    frame: pd.DataFrame, spec: TFTSpec, *, name: str = "frame", target_required: bool = True
) -> None:
    """Raise :class:`FrameError` (or ``KeyError`` for absent columns) when ``frame`` does not fit ``spec``.

    Checks, each with a message naming the column or series at fault:

    * every column the spec reads is present (a missing group id column says so);
    * group id columns have no missing values;
    * ``time_idx`` is an integer column, unique and contiguous (step 1) within each series;
    * no missing values in real inputs (nor in the target when ``target_required``) or in
      categorical inputs.
    """
    cols = spec.columns()
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        gid = [c for c in missing if c in spec.group_ids]
        what = f"missing group id column(s) {gid}" if gid else f"missing column(s) {missing}"
        raise KeyError(f"{name}: {what}; the spec needs {cols}; the frame has {list(frame.columns)}")
    for g in spec.group_ids:
        n = int(frame[g].isna().sum())
        if n:
            rows = frame.index[frame[g].isna()][:5].tolist()
            raise FrameError(f"{name}: group id column {g!r} has {n} missing value(s) (rows {rows} ...)")
    t = frame[spec.time_idx]
    if not pd.api.types.is_integer_dtype(t):
        raise FrameError(f"{name}: time index {spec.time_idx!r} must be integers, got dtype {t.dtype}")
    keys = list(spec.group_ids)
    order = frame[[*keys, spec.time_idx]].sort_values([*keys, spec.time_idx], kind="stable")
    same = np.ones(len(order), dtype=bool)
    for g in keys:
        v = order[g].to_numpy()
        same[1:] &= v[1:] == v[:-1]
    same[0] = False
    step = np.diff(order[spec.time_idx].to_numpy(), prepend=0)
    bad = same & (step != 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        row = order.iloc[i]
        prev = int(order[spec.time_idx].iloc[i - 1])
        key = tuple(row[g] for g in keys)
        label = _group_label(key if len(keys) > 1 else key[0], keys)
        if step[i] == 0:
            raise FrameError(
                f"{name}: series ({label}) has time_idx {prev} twice ({spec.time_idx!r} must be unique)"
            )
        raise FrameError(
            f"{name}: series ({label}) is not contiguous: {spec.time_idx!r} jumps from {prev} to "
            f"{int(row[spec.time_idx])} (fill the missing steps {prev + 1}..{int(row[spec.time_idx]) - 1})"
        )
    check_values = [*spec.reals, *spec.categorical_columns]
    if target_required:
        check_values.append(spec.target)
    reals = set(spec.reals) | ({spec.target} if target_required else set())
    for c in dict.fromkeys(check_values):
        col = frame[c]
        bad = col.isna().to_numpy()
        what = "missing value(s)"
        if not bad.any() and c in reals:
            if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
                num = pd.to_numeric(col, errors="coerce")
                r = int(np.flatnonzero(num.isna().to_numpy())[0]) if num.isna().any() else 0
                raise FrameError(
                    f"{name}: real column {c!r} is not numeric (dtype {col.dtype}; e.g. {col.iloc[r]!r} at "
                    f"{_row_label(frame, r, spec)})"
                )
            bad = ~np.isfinite(col.to_numpy(dtype=np.float64))
            what = "infinite value(s)"
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise FrameError(
                f"{name}: column {c!r} has {int(bad.sum())} {what}, the first at {_row_label(frame, r, spec)};"
                " fill them, or choose a missing-value policy (missing: ffill, fill_na or mask)"
            )


def _row_label(frame: pd.DataFrame, r: int, spec: TFTSpec) -> str:
    """``row <index label> (series g=..., time_idx=...)`` of positional row ``r``."""
    row = frame.iloc[r]
    key = tuple(row[g] for g in spec.group_ids)
    label = _group_label(key if len(key) > 1 else key[0], spec.group_ids)
    t = row[spec.time_idx] if spec.time_idx in frame.columns else "?"
    return f"row {frame.index[r]!r} (series {label}, {spec.time_idx}={t})"


#: missing-value policies of :func:`apply_missing_policy`
MISSING_POLICIES = ("error", "ffill", "fill_na", "mask")
#: bookkeeping columns :func:`apply_missing_policy` adds (ignored by the datasets)
INSERTED_COLUMN, FILLED_COLUMN, INFINITE_COLUMN = "__inserted__", "__filled__", "__infinite__"


def observed_column(column: str) -> str:
    """The availability column the ``mask`` policy adds for ``column`` (``<column>_observed``)."""
    return f"{column}_observed"


def apply_missing_policy(
    frame: pd.DataFrame, spec: TFTSpec, missing: str = "error", *, name: str = "frame"
) -> tuple[pd.DataFrame, TFTSpec]:
    """Missing time steps and missing values of a long frame, by an explicit policy.

    ``missing="error"`` (default): :func:`check_frame` (a gap, a NaN or an ``inf`` is an error
    naming the column, the row and its series); the frame and spec come back unchanged.

    Otherwise, per series (``group_ids``):

    1. **Missing time steps** (gaps in ``time_idx`` between a series' first and last step) become
       rows: group ids and ``time_idx`` set, static columns copied from the series, known inputs
       forward-filled (as pytorch-forecasting's ``allow_missing_timesteps``: give the known
       inputs of every step if that is wrong for them), every other value missing.
    2. **Missing values** (NaN, and ``inf`` in real columns) of the target and the observed reals:
       ``ffill`` -- the last observed value of the series (a series starting with a missing value
       is an error); ``fill_na`` -- the series' mean of its observed values; ``mask`` -- as
       ``fill_na`` (about 0 after the per-series normalisation, so the input is masked out) plus an
       availability column ``<column>_observed`` (1.0 observed / 0.0 not) for the target and each
       observed real that had a missing value, added to the observed reals (an input the variable
       selection sees) and, for the target, used as the dataset's ``weight`` (the loss ignores the
       unobserved targets). Missing observed categorical cells are forward-filled under every
       policy. A repeated ``time_idx``, or a missing known input of a step in the input frame,
       remains an error.

    Bookkeeping columns per row (for :func:`missing_counts`): ``__inserted__`` (the step was
    absent), ``__filled__`` (cells filled in a row of the input), ``__infinite__`` (of which
    ``inf``). Returns ``(frame, spec)``: the filled frame (sorted by series and time) and the spec
    with the availability columns and the weight.
    """
    if missing not in MISSING_POLICIES:
        raise FrameError(f"{name}: missing={missing!r} is not one of {', '.join(MISSING_POLICIES)}")
    if missing == "error":
        check_frame(frame, spec, name=name)
        return frame, spec
    cols = spec.columns()
    absent = [c for c in cols if c not in frame.columns]
    if absent:
        raise KeyError(f"{name}: missing column(s) {absent}; the spec needs {cols}; the frame has {list(frame.columns)}")
    keys = list(spec.group_ids)
    for g in keys:
        if frame[g].isna().any():
            r = int(np.flatnonzero(frame[g].isna().to_numpy())[0])
            raise FrameError(f"{name}: group id column {g!r} is missing at row {frame.index[r]!r}")
    t = spec.time_idx
    if not pd.api.types.is_integer_dtype(frame[t]):
        raise FrameError(f"{name}: time index {t!r} must be integers, got dtype {frame[t].dtype}")
    dup = frame.duplicated([*keys, t]).to_numpy()
    if dup.any():
        r = int(np.flatnonzero(dup)[0])
        raise FrameError(f"{name}: {_row_label(frame, r, spec)} repeats a time step ({t!r} must be unique per series)")
    data = frame.sort_values([*keys, t], kind="stable").reset_index(drop=True)
    data[INSERTED_COLUMN] = False
    # 1. the complete time grid of every series
    span = data.groupby(keys, observed=True, sort=False)[t].agg(["min", "max"])
    grid = pd.concat(
        [
            pd.DataFrame({**dict(zip(keys, k if isinstance(k, tuple) else (k,))), t: np.arange(lo, hi + 1)})
            for k, (lo, hi) in span.iterrows()
        ],
        ignore_index=True,
    )
    for g in keys:
        grid[g] = grid[g].astype(data[g].dtype)
    data = grid.merge(data, on=[*keys, t], how="left", sort=False)
    inserted = data[INSERTED_COLUMN].isna().to_numpy()
    data[INSERTED_COLUMN] = inserted
    by = data.groupby(keys, observed=True, sort=False)
    statics = [c for n in spec.static_categoricals for c in spec.categorical_groups.get(n, (n,))]
    for c in [*statics, *spec.static_reals]:
        data[c] = by[c].transform("first")
    for c in spec.known_columns:  # only the inserted steps: a missing known input of a given step stays an error
        if c != t and inserted.any():
            data.loc[inserted, c] = by[c].ffill()[inserted]
    # 2. values
    reals = list(dict.fromkeys([spec.target, *spec.observed_reals]))
    filled = np.zeros(len(data), dtype=np.int64)
    infinite = np.zeros(len(data), dtype=np.int64)
    observed_reals = list(spec.observed_reals)
    for c in reals:
        v = pd.to_numeric(data[c], errors="coerce").astype(np.float64)
        nonnum = v.isna().to_numpy() & data[c].notna().to_numpy()
        if nonnum.any():
            r = int(np.flatnonzero(nonnum)[0])
            raise FrameError(f"{name}: real column {c!r} has a non-numeric value {data[c].iloc[r]!r} at {_row_label(data, r, spec)}")
        inf = np.isinf(v.to_numpy())
        v = v.where(~inf)
        miss = v.isna().to_numpy()
        filled += miss & ~inserted
        infinite += inf
        if missing == "ffill":
            v = v.groupby([data[g] for g in keys], observed=True).ffill()
            lead = v.isna().to_numpy()
            if lead.any():
                r = int(np.flatnonzero(lead)[0])
                raise FrameError(
                    f"{name}: missing='ffill' has no earlier value for column {c!r} at {_row_label(data, r, spec)}"
                    " (the series starts with a missing value); use fill_na or mask"
                )
        else:
            mean = v.groupby([data[g] for g in keys], observed=True).transform("mean")
            none = mean.isna().to_numpy()
            if none.any():
                r = int(np.flatnonzero(none)[0])
                raise FrameError(f"{name}: column {c!r} has no observed value in the series of {_row_label(data, r, spec)}")
            v = v.fillna(mean)
            if missing == "mask" and (c == spec.target or miss.any()):
                data[observed_column(c)] = (~miss).astype(np.float64)
                observed_reals.append(observed_column(c))
        data[c] = v
    observed_cats = [c for n in spec.observed_categoricals for c in spec.categorical_groups.get(n, (n,))]
    for c in observed_cats:
        if data[c].isna().any():
            filled += data[c].isna().to_numpy() & ~inserted
            data[c] = by[c].ffill()
            lead = data[c].isna().to_numpy()
            if lead.any():
                r = int(np.flatnonzero(lead)[0])
                raise FrameError(f"{name}: categorical column {c!r} has no earlier value at {_row_label(data, r, spec)}")
    data[FILLED_COLUMN] = filled
    data[INFINITE_COLUMN] = infinite
    new_spec = spec
    if missing == "mask":
        new_spec = dataclasses.replace(
            spec, observed_reals=tuple(dict.fromkeys(observed_reals)), weight=observed_column(spec.target)
        )
    check_frame(data, new_spec, name=name)
    return data, new_spec


def missing_counts(frame: pd.DataFrame) -> dict[str, int]:
    """``{"inserted_rows", "filled_cells", "infinite_cells"}`` of a frame from
    :func:`apply_missing_policy` (or of any part of it, e.g. one split; zeros for other frames)."""
    if INSERTED_COLUMN not in frame.columns:
        return {"inserted_rows": 0, "filled_cells": 0, "infinite_cells": 0}
    return {
        "inserted_rows": int(frame[INSERTED_COLUMN].sum()),
        "filled_cells": int(frame[FILLED_COLUMN].sum()),
        "infinite_cells": int(frame[INFINITE_COLUMN].sum()),
    }


def check_categories(dataset: Any, frame: pd.DataFrame, *, name: str = "frame") -> None:
    """Raise :class:`FrameError` when ``frame`` holds categories that ``dataset`` (fitted) never saw.

    ``dataset`` is a fitted pytorch-forecasting ``TimeSeriesDataSet``; encoders fitted with
    ``add_nan=True`` accept unknown categories (mapped to the "nan" class) and are skipped.
    """
    groups = dict(dataset._variable_groups)
    for var, enc in dataset._categorical_encoders.items():
        if var.startswith("__") or getattr(enc, "add_nan", False):
            continue
        classes = set(enc.classes_)
        for col in groups.get(var, [var]):
            if col not in frame.columns:
                continue
            values = pd.unique(frame[col].astype(str))
            unknown = [v for v in values if v not in classes]
            if unknown:
                raise FrameError(
                    f"{name}: categorical column {col!r} has {len(unknown)} categor{'y' if len(unknown) == 1 else 'ies'} "
                    f"unknown at training time: {unknown[:5]}{' ...' if len(unknown) > 5 else ''} "
                    f"(known: {sorted(classes)[:10]}{' ...' if len(classes) > 10 else ''})"
                )


def _as_categories(frame: pd.DataFrame, spec: TFTSpec) -> pd.DataFrame:
    """Categorical columns as string categories (pytorch-forecasting's requirement)."""
    out = frame.copy()
    for c in spec.categorical_columns:
        if not isinstance(out[c].dtype, pd.CategoricalDtype) or not all(
            isinstance(v, str) for v in out[c].cat.categories
        ):
            out[c] = out[c].astype(str).astype("category")
    for g in spec.group_ids:  # group ids are encoded by pytorch-forecasting too
        if not isinstance(out[g].dtype, pd.CategoricalDtype) and not pd.api.types.is_string_dtype(out[g]):
            out[g] = out[g].astype(str)
    return out


def _target_normalizer(spec: TFTSpec) -> Any:
    from pytorch_forecasting.data import GroupNormalizer, TorchNormalizer

    if spec.target_normalizer == "group":
        return GroupNormalizer(
            groups=list(spec.group_ids), method=spec.target_method, transformation=spec.target_transform
        )
    if spec.target_normalizer == "global":
        return TorchNormalizer(method=spec.target_method, transformation=spec.target_transform)
    return TorchNormalizer(method="identity", transformation=spec.target_transform)


def build_dataset(frame: pd.DataFrame, spec: TFTSpec, *, name: str = "frame", **kwargs: Any) -> Any:
    """A pytorch-forecasting ``TimeSeriesDataSet`` for ``frame`` after :func:`check_frame`.

    ``kwargs`` go to ``TimeSeriesDataSet`` (e.g. ``scalers``). Known inputs map to
    ``time_varying_known_*``, observed ones to ``time_varying_unknown_*``.
    """
    from pytorch_forecasting import TimeSeriesDataSet

    check_frame(frame, spec, name=name)
    data = _as_categories(frame, spec)
    return TimeSeriesDataSet(
        data,
        time_idx=spec.time_idx,
        target=spec.target,
        group_ids=list(spec.group_ids),
        max_encoder_length=spec.lookback,
        min_encoder_length=spec.min_lookback or spec.lookback,
        max_prediction_length=spec.horizon,
        min_prediction_length=spec.min_horizon or spec.horizon,
        static_categoricals=list(spec.static_categoricals),
        static_reals=list(spec.static_reals),
        time_varying_known_categoricals=list(spec.known_categoricals),
        time_varying_known_reals=list(spec.known_reals),
        time_varying_unknown_categoricals=list(spec.observed_categoricals),
        time_varying_unknown_reals=list(spec.observed_reals),
        variable_groups={k: list(v) for k, v in spec.categorical_groups.items()},
        target_normalizer=_target_normalizer(spec),
        add_relative_time_idx=spec.add_relative_time_idx,
        add_target_scales=spec.add_target_scales,
        add_encoder_length=spec.add_encoder_length,
        **({"weight": spec.weight} if spec.weight else {}),
        **kwargs,
    )


def dataset_from(
    dataset: Any, frame: pd.DataFrame, spec: TFTSpec, *, name: str = "frame", **kwargs: Any
) -> Any:
    """``TimeSeriesDataSet.from_dataset(dataset, frame, **kwargs)`` after checking ``frame``.

    Besides :func:`check_frame`, every category must be known to the fitted ``dataset``
    (:func:`check_categories`).
    """
    from pytorch_forecasting import TimeSeriesDataSet

    check_frame(frame, spec, name=name)
    data = _as_categories(frame, spec)
    check_categories(dataset, data, name=name)
    return TimeSeriesDataSet.from_dataset(dataset, data, **kwargs)


def prediction_dataset(
    dataset: Any, history: pd.DataFrame, future: pd.DataFrame, spec: TFTSpec, *, horizon: int | None = None
) -> Any:
    """Windows forecasting ``horizon`` steps past the end of every series in ``history``.

    ``future`` holds the known inputs (and static columns) of the steps after each series' last
    ``time_idx`` in ``history``; its target and observed inputs may be missing (they are not
    model inputs there: they are filled with the last observed value). Raises
    :class:`FrameError` when a series has fewer than ``horizon`` future steps of known inputs
    (default ``spec.horizon``), when future steps do not continue the history
    contiguously, when a known input is missing, or when a category is unknown.
    """
    horizon = spec.horizon if horizon is None else int(horizon)
    frame = prediction_frame(history, future, spec, horizon=horizon)
    return dataset_from(
        dataset,
        frame,
        spec,
        name="history+future",
        predict=True,
        stop_randomization=True,
        min_prediction_length=horizon,
        max_prediction_length=horizon,
    )


def prediction_frame(
    history: pd.DataFrame, future: pd.DataFrame, spec: TFTSpec, *, horizon: int | None = None
) -> pd.DataFrame:
    """The frame :func:`prediction_dataset` builds its windows from: ``history`` then the first
    ``horizon`` rows of ``future`` of every series (checked as :func:`prediction_dataset`
    describes), observed inputs forward-filled into the future rows and static columns taken
    from each series' first row; sorted by series and time."""
    horizon = spec.horizon if horizon is None else int(horizon)
    if horizon > spec.horizon:
        raise FrameError(
            f"horizon {horizon} exceeds the dataset's horizon {spec.horizon}"
        )
    keys = list(spec.group_ids)
    for c in [*keys, spec.time_idx, *spec.known_columns]:
        if c not in future.columns:
            raise KeyError(f"future: missing column {c!r} (known inputs: {spec.known_columns})")
    for c in spec.known_columns:
        n = int(future[c].isna().sum())
        if n:
            raise FrameError(f"future: known input {c!r} has {n} missing value(s)")
    last = history.groupby(keys, observed=True)[spec.time_idx].max()
    fut = future.sort_values([*keys, spec.time_idx])
    known = pd.MultiIndex.from_frame(history[keys].astype(str).drop_duplicates())
    fut_keys = pd.MultiIndex.from_frame(fut[keys].astype(str))
    stray = ~fut_keys.isin(known)
    if stray.any():
        key = fut_keys[np.flatnonzero(stray)[0]]
        raise FrameError(
            f"future: series ({_group_label(key if len(keys) > 1 else key[0], keys)}) does not occur in the history"
        )
    # per future row: its series' last observed step and its rank within the series (vectorised)
    last_keys = pd.MultiIndex.from_frame(last.index.to_frame(index=False)[keys].astype(str))
    t_last_of = last.to_numpy()[last_keys.get_indexer(fut_keys)]
    tt = fut[spec.time_idx].to_numpy()
    codes = pd.Series(last_keys.get_indexer(fut_keys), index=fut.index)
    rank = codes.groupby(codes.to_numpy()).cumcount().to_numpy()
    ok = tt == t_last_of + 1 + rank
    leading = pd.Series(ok.astype(np.int64)).groupby(codes.to_numpy()).cumprod().to_numpy()  # 1 until the first gap
    n_ok = np.bincount(codes.to_numpy()[leading == 1], minlength=len(last))
    n_rows = np.bincount(codes.to_numpy(), minlength=len(last))
    short = np.flatnonzero(n_ok < horizon)
    if short.size:
        i = int(short[0])
        key, t_last = last.index[i], int(last.iloc[i])
        t = tt[codes.to_numpy() == i]
        what = (
            f"has known-future inputs for {int(n_ok[i])} step(s) after its last observed time_idx {t_last}"
            if n_ok[i] == n_rows[i]
            else f"has future steps {t[: int(n_ok[i]) + 1].tolist()} not continuing its history at {t_last}"
        )
        raise FrameError(
            f"horizon {horizon} is longer than the known-future inputs: series ({_group_label(key, keys)}) {what}"
        )
    future_rows = fut[rank < horizon]
    frame = pd.concat([history, future_rows], ignore_index=True)
    fill = [spec.target, *[c for c in spec.observed_reals if c != spec.target]]
    fill += [c for n in spec.observed_categoricals for c in spec.categorical_groups.get(n, (n,))]
    frame = frame.sort_values([*keys, spec.time_idx])
    frame[fill] = frame.groupby(keys, observed=True)[fill].ffill()
    for c in [*spec.static_categoricals, *spec.static_reals]:  # static columns: from the history
        cols = spec.categorical_groups.get(c, (c,))
        for cc in cols:
            frame[cc] = frame.groupby(keys, observed=True)[cc].transform("first")
    return frame.reset_index(drop=True)


def split_frame(
    frame: pd.DataFrame, column: str, valid_boundary: float, test_boundary: float, lookback: float
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The official code's splits: train ``< valid_boundary``; valid ``[valid_boundary - lookback,
    test_boundary)``; test ``>= test_boundary - lookback`` (``lookback`` in ``column`` units, so
    the first validation/test window's encoder reaches back before the boundary)."""
    c = frame[column]
    return (
        frame[c < valid_boundary].copy(),
        frame[(c >= valid_boundary - lookback) & (c < test_boundary)].copy(),
        frame[c >= test_boundary - lookback].copy(),
    )


# --------------------------------------------------------------------------------------------
# electricity (UCI LD2011_2014)
# --------------------------------------------------------------------------------------------
def read_electricity(path: str | os.PathLike[str]) -> pd.DataFrame:
    """``LD2011_2014.txt`` as a ``[time, customer]`` frame of 15-minute kW (DatetimeIndex, sorted).

    The file: a header ``"";"MT_001";...;"MT_370"`` then one line per 15 minutes,
    ``"2011-01-01 00:15:00";0;...;2,53807106598985`` (``;`` separator, ``,`` decimal mark).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"electricity file not found: {path}")
    try:
        df = pd.read_csv(path, sep=";", decimal=",", index_col=0)
    except pd.errors.EmptyDataError:
        raise FrameError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError, zlib.error) as e:
        raise FrameError(f"{path}: cannot be parsed ({type(e).__name__}: {e})") from None
    if df.shape[1] == 0:
        raise FrameError(f"{path}: no customer columns (expected ';'-separated MT_xxx columns)")
    header = pd.read_csv(path, sep=";", header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0].tolist()
    repeated = sorted({h for h in header[1:] if header[1:].count(h) > 1})
    if repeated or any(not str(h).strip() for h in header[1:]):
        raise FrameError(
            f"{path}: line 1 (the header) has repeated or empty customer names {repeated or ['']}"
            " (pandas would rename them silently)"
        )
    try:
        df.index = pd.to_datetime(df.index)
    except (ValueError, TypeError) as e:
        raise FrameError(f"{path}: first column must hold timestamps: {e}") from None
    bad = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        c = bad[0]
        num = pd.to_numeric(df[c].astype(str).str.replace(",", ".", regex=False), errors="coerce")
        rows = np.flatnonzero((num.isna() & df[c].notna()).to_numpy())
        where = f"; the first, {df[c].iloc[int(rows[0])]!r}, at line {int(rows[0]) + 2}" if rows.size else ""
        raise FrameError(f"{path}: non-numeric values in column(s) {bad[:5]} (expected ',' decimals){where}")
    values = df.to_numpy(dtype=np.float64)
    nonfinite = ~np.isfinite(values)
    if nonfinite.any():
        r, j = (int(v) for v in np.argwhere(nonfinite)[0])
        raise FrameError(
            f"{path}: {int(nonfinite.sum())} empty, NaN or infinite cell(s); the first at line {r + 2}, column"
            f" {df.columns[j]!r} ({values[r, j]}); the official file has none"
        )
    return df.sort_index()


def electricity_frame(raw: pd.DataFrame, *, first_day: int = 1096, end_day: int = 1346) -> pd.DataFrame:
    """The TFT paper's hourly electricity frame (official ``download_electricity``).

    15-minute kW are averaged per hour (``resample("1h").mean()``); zeros count as missing when
    finding each customer's active range (first to last non-zero hour, leading/trailing zeros
    dropped); gaps inside it are 0. Columns: ``power_usage`` (target), ``t`` =
    ``hours_from_start`` (hours since the earliest timestamp), ``days_from_start``, ``id`` =
    ``categorical_id`` (the customer), ``date``, ``hour``, ``day``, ``day_of_week``, ``month``,
    ``categorical_day_of_week``, ``categorical_hour``; rows with ``first_day <= days_from_start <
    end_day`` (the range of the paper and earlier work).
    """
    hourly = raw.resample("1h").mean()
    earliest = hourly.index.min()
    nonzero = hourly.replace(0.0, np.nan)
    frames = []
    for label in hourly.columns:
        s = nonzero[label]
        valid = s.notna().to_numpy()
        if not valid.any():
            continue
        first, last = int(np.argmax(valid)), len(valid) - 1 - int(np.argmax(valid[::-1]))
        srs = s.iloc[first : last + 1].fillna(0.0)
        date = srs.index
        delta = date - earliest
        frames.append(
            pd.DataFrame(
                {
                    "power_usage": srs.to_numpy(),
                    "t": (delta.days * 24 + delta.seconds // 3600).astype(np.int64),
                    "days_from_start": delta.days.astype(np.int64),
                    "categorical_id": label,
                    "date": date,
                    "id": label,
                    "hour": date.hour,
                    "day": date.day,
                    "day_of_week": date.dayofweek,
                    "month": date.month,
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    out["hours_from_start"] = out["t"]
    out["categorical_day_of_week"] = out["day_of_week"].copy()
    out["categorical_hour"] = out["hour"].copy()
    out = out[(out["days_from_start"] >= first_day) & (out["days_from_start"] < end_day)]
    return out.reset_index(drop=True)


#: Electricity as in the TFT paper: one week of history, one day ahead, per-customer z-scores.
ELECTRICITY_SPEC = TFTSpec(
    time_idx="hours_from_start",
    target="power_usage",
    group_ids=("id",),
    lookback=7 * 24,
    horizon=24,
    static_categoricals=("categorical_id",),
    known_reals=("hour", "day_of_week", "hours_from_start"),
    observed_reals=("power_usage",),
    target_normalizer="group",
)
#: official split boundaries (days_from_start) and the encoder lookback in days
ELECTRICITY_SPLIT = {
    "column": "days_from_start",
    "valid_boundary": 1315,
    "test_boundary": 1339,
    "lookback": 7,
}


# --------------------------------------------------------------------------------------------
# traffic (UCI PEMS-SF)
# --------------------------------------------------------------------------------------------
def _pems_list(text: str, kind: type = int) -> list[Any]:
    return [kind(v) for v in text.replace("[", " ").replace("]", " ").split()]


def _pems_single(path: Path) -> list[int]:
    if not path.is_file():
        raise FileNotFoundError(f"PEMS-SF file not found: {path}")
    with open(path) as f:
        line = f.readline()
    try:
        return _pems_list(line, int)
    except ValueError as e:
        raise FrameError(f"{path}: expected one line '[i j k ...]' of integers: {e}") from None


def _pems_days(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"PEMS-SF file not found: {path}")
    days = []
    with open(path) as f:
        for i, line in enumerate(f):
            if not line.strip():
                continue
            try:
                rows = [np.array(_pems_list(r, float)) for r in line.split(";")]
            except ValueError as e:
                raise FrameError(f"{path}: line {i + 1}: not numbers: {e}") from None
            lengths = {len(r) for r in rows}
            if len(lengths) != 1:
                raise FrameError(f"{path}: line {i + 1}: stations have different lengths {sorted(lengths)}")
            days.append(np.stack(rows))
    if not days:
        raise FrameError(f"{path}: no days")
    shapes = {d.shape for d in days}
    if len(shapes) != 1:
        raise FrameError(f"{path}: days have different shapes {sorted(shapes)}")
    return np.stack(days)  # [days, stations, samples]


def read_pems_sf(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Read the UCI PEMS-SF folder into arrays, days restored to calendar order.

    Returns ``{"values": [days, stations, 144], "day_of_week": [days], "stations": [...]}``.
    ``PEMS_train``/``PEMS_test`` hold one day per line, ``[v v ...; v v ...; ...]`` (a row of 144
    ten-minute samples per station, rows separated by ``;``); ``PEMS_trainlabels`` /
    ``PEMS_testlabels`` the day of week of each line; ``randperm`` the (1-based) permutation that
    shuffled the days into train then test; ``stations_list`` the station ids.
    """
    folder = Path(folder)
    order = np.array(_pems_single(folder / "randperm")) - 1
    dow = np.array(_pems_single(folder / "PEMS_trainlabels") + _pems_single(folder / "PEMS_testlabels"))
    values = np.concatenate([_pems_days(folder / "PEMS_train"), _pems_days(folder / "PEMS_test")])
    stations = _pems_single(folder / "stations_list")
    if len(values) != len(order) or len(dow) != len(order):
        raise FrameError(
            f"{folder}: randperm has {len(order)} days but PEMS_train+PEMS_test hold {len(values)} "
            f"and the label files {len(dow)}"
        )
    if sorted(order.tolist()) != list(range(len(order))):
        raise FrameError(f"{folder}/randperm is not a permutation of 1..{len(order)}")
    if values.shape[1] != len(stations):
        raise FrameError(
            f"{folder}: {values.shape[1]} stations per day but stations_list names {len(stations)}"
        )
    inverse = np.argsort(order)  # file line i holds calendar day order[i]
    return {"values": values[inverse], "day_of_week": dow[inverse], "stations": stations}


def traffic_frame(raw: Mapping[str, Any], *, max_day: int = 173) -> pd.DataFrame:
    """The TFT paper's hourly traffic frame (official ``download_traffic``).

    Ten-minute samples are averaged per hour; per station the series is ordered by
    (``sensor_day``, ``time_on_day``), missing values forward-filled, ``prev_values`` /
    ``next_values`` added (the first and last hour, lacking one of them, are dropped), and days
    ``sensor_day < max_day`` kept. Columns: ``values`` (target), ``prev_values``, ``next_values``,
    ``sensor_day``, ``time_on_day``, ``day_of_week``, ``id`` = ``categorical_id`` (station id),
    ``hours_from_start`` = ``time_on_day + 24 sensor_day``, ``categorical_day_of_week``,
    ``categorical_time_on_day``.
    """
    values = np.asarray(raw["values"], dtype=np.float64)
    n_days, n_st, n_s = values.shape
    if n_s % 24:
        raise FrameError(f"traffic: {n_s} samples per day do not split into 24 hours")
    hourly = values.reshape(n_days, n_st, 24, n_s // 24).mean(-1)  # [days, stations, 24]
    dow = np.asarray(raw["day_of_week"])
    day = np.repeat(np.arange(n_days), 24)
    hour = np.tile(np.arange(24), n_days)
    frames = []
    for j, st in enumerate(raw["stations"]):
        v = pd.Series(hourly[:, j, :].reshape(-1)).ffill()
        f = pd.DataFrame(
            {
                "values": v.to_numpy(),
                "prev_values": v.shift(1).to_numpy(),
                "next_values": v.shift(-1).to_numpy(),
                "sensor_day": day,
                "time_on_day": hour,
                "day_of_week": np.repeat(dow, 24),
                "id": int(st),
            }
        )
        frames.append(f.dropna())
    out = pd.concat(frames, ignore_index=True)
    out = out[out["sensor_day"] < max_day].copy()
    out["categorical_id"] = out["id"].copy()
    out["hours_from_start"] = (out["time_on_day"] + out["sensor_day"] * 24).astype(np.int64)
    out["categorical_day_of_week"] = out["day_of_week"].copy()
    out["categorical_time_on_day"] = out["time_on_day"].copy()
    return out.reset_index(drop=True)


#: Traffic as in the TFT paper: one week of history, one day ahead, global z-scores.
TRAFFIC_SPEC = TFTSpec(
    time_idx="hours_from_start",
    target="values",
    group_ids=("id",),
    lookback=7 * 24,
    horizon=24,
    static_categoricals=("categorical_id",),
    known_reals=("time_on_day", "day_of_week", "hours_from_start"),
    observed_reals=("values",),
    target_normalizer="global",
)
TRAFFIC_SPLIT = {"column": "sensor_day", "valid_boundary": 151, "test_boundary": 166, "lookback": 7}


# --------------------------------------------------------------------------------------------
# stallion (pytorch-forecasting's TFT tutorial)
# --------------------------------------------------------------------------------------------
STALLION_SPECIAL_DAYS = (
    "easter_day",
    "good_friday",
    "new_year",
    "christmas",
    "labor_day",
    "independence_day",
    "revolution_day_memorial",
    "regional_games",
    "fifa_u_17_world_cup",
    "football_gold_cup",
    "beer_capital",
    "music_fest",
)


def read_stallion(path: str | os.PathLike[str]) -> pd.DataFrame:
    """``stallion.parquet`` (or a folder holding it) as a frame (21000 rows x 26 columns)."""
    path = Path(path)
    if path.is_dir():
        path = path / "stallion.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"stallion file not found: {path}")
    df = pd.read_parquet(path)
    need = ["agency", "sku", "volume", "date", *STALLION_SPECIAL_DAYS]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise FrameError(f"{path}: missing column(s) {missing}")
    return df


def stallion_frame(raw: pd.DataFrame) -> pd.DataFrame:
    """The features of pytorch-forecasting's stallion tutorial.

    ``time_idx`` = months since the first month; ``month`` as a string category;
    ``log_volume = log(volume + 1e-8)``; ``avg_volume_by_sku`` / ``avg_volume_by_agency``: mean
    volume per (month, sku) / (month, agency); the 12 special-day flags as categories ``"-"`` or
    their own name (embedded together as ``special_days``).
    """
    data = raw.copy()
    data["date"] = pd.to_datetime(data["date"])
    data["time_idx"] = data["date"].dt.year * 12 + data["date"].dt.month
    data["time_idx"] -= data["time_idx"].min()
    data["time_idx"] = data["time_idx"].astype(np.int64)
    data["month"] = data["date"].dt.month.astype(str).astype("category")
    data["log_volume"] = np.log(data["volume"] + 1e-8)
    data["avg_volume_by_sku"] = data.groupby(["time_idx", "sku"], observed=True)["volume"].transform("mean")
    data["avg_volume_by_agency"] = data.groupby(["time_idx", "agency"], observed=True)["volume"].transform(
        "mean"
    )
    for c in STALLION_SPECIAL_DAYS:
        data[c] = data[c].map({0: "-", 1: c}).astype("category")
    return data


#: The stallion tutorial's dataset: 24 months of history, 6 ahead, softplus + per-series scaling.
STALLION_SPEC = TFTSpec(
    time_idx="time_idx",
    target="volume",
    group_ids=("agency", "sku"),
    lookback=24,
    min_lookback=12,
    horizon=6,
    min_horizon=1,
    static_categoricals=("agency", "sku"),
    static_reals=("avg_population_2017", "avg_yearly_household_income_2017"),
    known_categoricals=("special_days", "month"),
    categorical_groups={"special_days": STALLION_SPECIAL_DAYS},
    known_reals=("time_idx", "price_regular", "discount_in_percent"),
    observed_reals=(
        "volume",
        "log_volume",
        "industry_volume",
        "soda_volume",
        "avg_max_temp",
        "avg_volume_by_agency",
        "avg_volume_by_sku",
    ),
    target_normalizer="group",
    target_transform="softplus",
    add_relative_time_idx=True,
    add_target_scales=True,
    add_encoder_length=True,
)


def stallion_datasets(frame: pd.DataFrame, spec: TFTSpec = STALLION_SPEC) -> tuple[Any, Any]:
    """The tutorial's ``(training, validation)``: training on ``time_idx <= max - horizon``,
    validation = the last ``horizon`` months of every series (``predict=True``)."""
    cutoff = int(frame[spec.time_idx].max()) - spec.horizon
    training = build_dataset(frame[frame[spec.time_idx] <= cutoff], spec, name="stallion training")
    validation = dataset_from(training, frame, spec, name="stallion", predict=True, stop_randomization=True)
    return training, validation
