"""What a time-series model needs to run on new data, as plain JSON (``preprocessing.json``).

A trained forecaster is useless without the data side that fed it: the categorical encoders
(which code each series id, store or month got), the scalers of the real inputs, the target
normaliser (a centre and scale per series), the column roles, the window lengths and how the
integer time index maps to dates. The data modules' ``preprocessing()`` return it through the
functions here, ``gatelab export`` / ``save_pretrained`` write it next to the weights, and
:mod:`gatelab.timeseries.predict` reads it back, so forecasting new data needs neither the
training frame nor a pickled ``TimeSeriesDataSet``.

Two kinds:

* ``"tft"`` (:func:`tft_preprocessing`, TFT and its baselines): the fitted pytorch-forecasting
  ``TimeSeriesDataSet`` parameters (``get_parameters()``), every fitted object written as its
  numbers: ``NaNLabelEncoder`` -> ``{"type", "add_nan", "classes": [[label, code], ...]}`` (codes
  in order), sklearn ``StandardScaler`` -> mean / var / scale, ``GroupNormalizer`` -> one
  ``(center, scale)`` row per series (keyed by the series' encoded ids), ``TorchNormalizer`` ->
  its centre and scale; plus ``time`` (the time index column, and when the frame has dates: the
  date column, its pandas frequency and the date of time index 0). :func:`tft_parameters`
  rebuilds the fitted objects (same classes, same numbers), so a new dataset built with
  ``TimeSeriesDataSet.from_parameters`` encodes new data exactly as the training split did.
* ``"ltsf"`` (:func:`ltsf_preprocessing`, Gateformer / iTransformer): column names in model
  order (target last), the scaler's training mean and standard deviation, feature mode,
  lookback, horizon, the date column, its frequency and the calendar features' frequency.

Unsupported fitted objects (an ``EncoderNormalizer``, a per-group scaler of a covariate, a
callable transformation) raise :class:`~gatelab.core.config.ConfigError` naming the variable:
nothing is dropped from the file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from gatelab.core.config import ConfigError
from gatelab.core.harness.errors import DataError

__all__ = [
    "LTSF_KIND",
    "TFT_KIND",
    "date_origin",
    "dates_of",
    "ltsf_preprocessing",
    "tft_parameters",
    "tft_preprocessing",
    "tft_spec",
    "time_index_of",
]

TFT_KIND = "tft"
LTSF_KIND = "ltsf"
#: the layout version of the ``tft`` / ``ltsf`` preprocessing objects
FORMAT = 1


# --------------------------------------------------------------------------- plain values


def _plain(value: Any, where: str) -> Any:
    """``value`` as JSON (numpy scalars and arrays unwrapped); anything else is a ConfigError."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not math.isfinite(v):
            raise ConfigError(f"preprocessing: {where} = {v} is not a finite number")
        return v
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return _plain(value.item(), where)
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value.tolist())]
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    raise ConfigError(f"preprocessing: {where} is a {type(value).__name__}, which has no JSON form here")


def _label(value: Any, where: str) -> Any:
    """A category label as JSON (NaN -> ``None``)."""
    if isinstance(value, (float, np.floating)) and math.isnan(float(value)):
        return None
    if isinstance(value, (str, bool, int, float, np.integer, np.floating, np.bool_)):
        return _plain(value.item() if isinstance(value, np.generic) else value, where)
    raise ConfigError(
        f"preprocessing: {where}: category label {value!r} ({type(value).__name__}) has no JSON form"
    )


# --------------------------------------------------------------------------- TFT: encoders


def _encoder_to_json(enc: Any, where: str) -> dict[str, Any]:
    from pytorch_forecasting.data.encoders import NaNLabelEncoder

    if type(enc) is not NaNLabelEncoder:
        raise ConfigError(f"preprocessing: {where} is a {type(enc).__name__}; only NaNLabelEncoder is saved")
    classes = [[_label(k, where), int(v)] for k, v in enc.classes_.items()]
    return {
        "type": "NaNLabelEncoder",
        "add_nan": bool(enc.add_nan),
        "warn": bool(enc.warn),
        "classes": classes,
    }


def _encoder_from_json(obj: Mapping[str, Any], where: str) -> Any:
    from pytorch_forecasting.data.encoders import NaNLabelEncoder

    _expect_type(obj, "NaNLabelEncoder", where)
    enc = NaNLabelEncoder(add_nan=bool(obj["add_nan"]), warn=bool(obj.get("warn", True)))
    enc.classes_ = {(np.nan if k is None else k): int(v) for k, v in obj["classes"]}
    enc.classes_vector_ = np.array(list(enc.classes_.keys()))
    return enc


def _scaler_to_json(scaler: Any, where: str) -> dict[str, Any] | None:
    from sklearn.preprocessing import StandardScaler

    if scaler is None:
        return None
    if type(scaler) is not StandardScaler:
        raise ConfigError(
            f"preprocessing: {where} is a {type(scaler).__name__}; only sklearn StandardScaler (or none) is saved"
        )
    out = {
        "type": "StandardScaler",
        "with_mean": bool(scaler.with_mean),
        "with_std": bool(scaler.with_std),
        "mean": _plain(scaler.mean_, where),
        "var": _plain(scaler.var_, where),
        "scale": _plain(scaler.scale_, where),
        "n_samples_seen": _plain(scaler.n_samples_seen_, where),
    }
    names = getattr(scaler, "feature_names_in_", None)
    if names is not None:
        out["feature_names"] = [str(n) for n in names]
    return out


def _scaler_from_json(obj: Mapping[str, Any] | None, where: str) -> Any:
    from sklearn.preprocessing import StandardScaler

    if obj is None:
        return None
    _expect_type(obj, "StandardScaler", where)
    s = StandardScaler(with_mean=bool(obj["with_mean"]), with_std=bool(obj["with_std"]))
    s.mean_ = None if obj["mean"] is None else np.asarray(obj["mean"], dtype=np.float64)
    s.var_ = None if obj["var"] is None else np.asarray(obj["var"], dtype=np.float64)
    s.scale_ = None if obj["scale"] is None else np.asarray(obj["scale"], dtype=np.float64)
    seen = obj["n_samples_seen"]
    s.n_samples_seen_ = np.asarray(seen) if isinstance(seen, list) else seen
    s.n_features_in_ = 1 if s.mean_ is None else len(s.mean_)
    if "feature_names" in obj:
        s.feature_names_in_ = np.asarray(obj["feature_names"], dtype=object)
    return s


def _normalizer_to_json(norm: Any, where: str) -> dict[str, Any]:
    from pytorch_forecasting.data.encoders import GroupNormalizer, TorchNormalizer

    transformation = getattr(norm, "transformation", None)
    if transformation is not None and not isinstance(transformation, str):
        raise ConfigError(f"preprocessing: {where}: transformation {transformation!r} is not a named one")
    common = {
        "method": norm.method,
        "center": bool(norm.center),
        "transformation": transformation,
        "method_kwargs": _plain(dict(norm.method_kwargs or {}), where),
    }
    if type(norm) is GroupNormalizer:
        if norm.scale_by_group:
            raise ConfigError(f"preprocessing: {where}: GroupNormalizer(scale_by_group=True) is not saved")
        table = norm.norm_
        if isinstance(table, Mapping):  # no groups: one centre and scale
            return {"type": "GroupNormalizer", **common, "groups": [], "norm": _plain(dict(table), where)}
        index = table.index
        keys = [list(index.get_level_values(i)) for i in range(index.nlevels)]
        return {
            "type": "GroupNormalizer",
            **common,
            "groups": list(norm.groups or []),
            "norm": {
                "names": [str(n) for n in index.names],
                "index": _plain(keys, where),
                "center": _plain(table["center"].to_numpy(), where),
                "scale": _plain(table["scale"].to_numpy(), where),
            },
            "missing": _plain(dict(norm.missing_), where),
        }
    if type(norm) is TorchNormalizer:
        return {
            "type": "TorchNormalizer",
            **common,
            "center_": _plain(np.asarray(norm.center_, dtype=np.float64), where),
            "scale_": _plain(np.asarray(norm.scale_, dtype=np.float64), where),
        }
    raise ConfigError(
        f"preprocessing: {where} is a {type(norm).__name__}; only GroupNormalizer and TorchNormalizer are saved"
    )


def _normalizer_from_json(obj: Mapping[str, Any], where: str) -> Any:
    from pytorch_forecasting.data.encoders import GroupNormalizer, TorchNormalizer

    kind = obj.get("type")
    common = {
        "method": obj["method"],
        "center": bool(obj["center"]),
        "transformation": obj["transformation"],
        "method_kwargs": dict(obj.get("method_kwargs") or {}),
    }
    if kind == "GroupNormalizer":
        norm = GroupNormalizer(groups=list(obj["groups"]), **common)
        table = obj["norm"]
        if not obj["groups"]:
            norm.norm_ = dict(table)
            return norm
        names = list(table["names"])
        arrays = [np.asarray(level) for level in table["index"]]
        index = (
            pd.Index(arrays[0], name=names[0])
            if len(names) == 1
            else pd.MultiIndex.from_arrays(arrays, names=names)
        )
        norm.norm_ = pd.DataFrame(
            {
                "center": np.asarray(table["center"], dtype=np.float64),
                "scale": np.asarray(table["scale"], dtype=np.float64),
            },
            index=index,
        )
        norm.missing_ = dict(obj["missing"])
        return norm
    if kind == "TorchNormalizer":
        norm = TorchNormalizer(**common)
        norm.center_ = _scalar_or_array(obj["center_"])
        norm.scale_ = _scalar_or_array(obj["scale_"])
        return norm
    raise ConfigError(f"preprocessing: {where}: unknown normaliser type {kind!r}")


def _scalar_or_array(value: Any) -> Any:
    arr = np.asarray(value, dtype=np.float64)
    return np.float64(arr) if arr.ndim == 0 else arr  # numpy scalars, as fitted (torch keeps float64)


def _expect_type(obj: Any, kind: str, where: str) -> None:
    if not isinstance(obj, Mapping) or obj.get("type") != kind:
        got = obj.get("type") if isinstance(obj, Mapping) else type(obj).__name__
        raise ConfigError(f"preprocessing: {where}: expected a {kind}, got {got!r}")


# --------------------------------------------------------------------------- TFT


_OBJECTS = ("target_normalizer", "categorical_encoders", "scalers")


def tft_preprocessing(
    dataset: Any,
    *,
    date: str | None = None,
    freq: str | None = None,
    origin: str | None = None,
) -> dict[str, Any]:
    """The ``"tft"`` preprocessing of a fitted (training) ``TimeSeriesDataSet``.

    Args:
        dataset: the training split (its encoders, scalers and normaliser are the fitted ones).
        date: the frame's date column, if it has one (forecasts then carry dates).
        freq: the pandas frequency of ``date`` (``"MS"``, ``"h"`` ...).
        origin: the date of time index 0 (:func:`date_origin` computes it from a frame).

    Raises:
        ConfigError: a fitted object with no JSON form here (named), or ``date`` without
            ``freq`` / ``origin``.
    """
    if date is not None and (freq is None or origin is None):
        raise ConfigError(f"preprocessing: date column {date!r} needs freq and origin")
    params = dataset.get_parameters()
    if params.get("lags"):
        raise ConfigError(f"preprocessing: lagged variables {params['lags']} are not supported")
    plain = {k: _plain(v, f"dataset.{k}") for k, v in params.items() if k not in _OBJECTS}
    plain["target_normalizer"] = _normalizer_to_json(params["target_normalizer"], "target_normalizer")
    plain["categorical_encoders"] = {
        str(k): _encoder_to_json(v, f"categorical_encoders.{k}")
        for k, v in params["categorical_encoders"].items()
    }
    plain["scalers"] = {str(k): _scaler_to_json(v, f"scalers.{k}") for k, v in params["scalers"].items()}
    plain["predict_mode"] = False
    return {
        "kind": TFT_KIND,
        "format": FORMAT,
        "dataset": plain,
        "time": {"time_idx": params["time_idx"], "date": date, "freq": freq, "origin": origin},
    }


def _check_kind(prep: Any, kind: str) -> Mapping[str, Any]:
    if not isinstance(prep, Mapping) or prep.get("kind") != kind:
        got = prep.get("kind") if isinstance(prep, Mapping) else type(prep).__name__
        raise ConfigError(f"preprocessing: expected kind {kind!r}, got {got!r}")
    if prep.get("format") != FORMAT:
        raise ConfigError(
            f"preprocessing: {kind} format {prep.get('format')!r}; this gatelab reads format {FORMAT}"
        )
    return prep


def tft_parameters(prep: Mapping[str, Any]) -> dict[str, Any]:
    """``TimeSeriesDataSet.from_parameters`` parameters from a ``"tft"`` preprocessing object,
    with the fitted encoders, scalers and target normaliser rebuilt."""
    ds = dict(_check_kind(prep, TFT_KIND)["dataset"])
    try:
        ds["target_normalizer"] = _normalizer_from_json(ds["target_normalizer"], "target_normalizer")
        ds["categorical_encoders"] = {
            k: _encoder_from_json(v, f"categorical_encoders.{k}")
            for k, v in ds["categorical_encoders"].items()
        }
        ds["scalers"] = {k: _scaler_from_json(v, f"scalers.{k}") for k, v in ds["scalers"].items()}
    except KeyError as e:
        raise ConfigError(f"preprocessing: tft: key {e.args[0]!r} missing") from None
    return ds


def tft_spec(prep: Mapping[str, Any]) -> Any:
    """The :class:`~gatelab.timeseries.data.tft.TFTSpec` (column roles and window lengths) of a
    ``"tft"`` preprocessing object; the columns pytorch-forecasting adds itself (target scales,
    encoder length, relative time index) are left out."""
    from .tft import TFTSpec

    ds = _check_kind(prep, TFT_KIND)["dataset"]
    target = ds["target"]
    derived = {f"{target}_center", f"{target}_scale", "encoder_length", "relative_time_idx"}
    norm = ds["target_normalizer"]
    kind = {"GroupNormalizer": "group", "TorchNormalizer": "global"}[norm["type"]]
    if norm["type"] == "TorchNormalizer" and norm["method"] == "identity":
        kind = "none"

    def keep(names: Sequence[str]) -> tuple[str, ...]:
        return tuple(n for n in names if n not in derived)

    return TFTSpec(
        time_idx=ds["time_idx"],
        target=target,
        group_ids=tuple(ds["group_ids"]),
        lookback=int(ds["max_encoder_length"]),
        horizon=int(ds["max_prediction_length"]),
        min_lookback=int(ds["min_encoder_length"]),
        min_horizon=int(ds["min_prediction_length"]),
        static_categoricals=tuple(ds["static_categoricals"]),
        static_reals=keep(ds["static_reals"]),
        known_categoricals=tuple(ds["time_varying_known_categoricals"]),
        known_reals=keep(ds["time_varying_known_reals"]),
        observed_categoricals=tuple(ds["time_varying_unknown_categoricals"]),
        observed_reals=keep(ds["time_varying_unknown_reals"]),
        categorical_groups={k: tuple(v) for k, v in (ds.get("variable_groups") or {}).items()},
        target_normalizer=kind,
        target_method="standard" if norm["method"] == "identity" else norm["method"],
        target_transform=norm["transformation"],
        add_relative_time_idx=bool(ds["add_relative_time_idx"]),
        add_target_scales=bool(ds["add_target_scales"]),
        add_encoder_length=bool(ds["add_encoder_length"]),
    )


# --------------------------------------------------------------------------- time index <-> dates


def _offset(freq: str) -> Any:
    from pandas.tseries.frequencies import to_offset

    try:
        return to_offset(freq)
    except ValueError as e:
        raise ConfigError(f"preprocessing: unknown pandas frequency {freq!r} ({e})") from None


def dates_of(time_idx: np.ndarray | Sequence[int], origin: str, freq: str) -> pd.DatetimeIndex:
    """The dates of integer time indices (``origin`` is the date of index 0, steps of ``freq``)."""
    t = np.asarray(time_idx, dtype=np.int64)
    if t.size == 0:
        return pd.DatetimeIndex([])
    lo, hi = int(t.min()), int(t.max())
    start = pd.Timestamp(origin) + lo * _offset(freq)
    grid = pd.date_range(start, periods=hi - lo + 1, freq=freq)
    return pd.DatetimeIndex(grid[t - lo])


def date_origin(frame: pd.DataFrame, time_idx: str, date: str, freq: str) -> str:
    """The date of time index 0 in ``frame`` (ISO text), checked on every row.

    Raises:
        DataError: the dates are not ``origin + time_idx * freq`` (naming the first row off the grid).
    """
    dates = pd.DatetimeIndex(pd.to_datetime(frame[date]))
    t = frame[time_idx].to_numpy(dtype=np.int64)
    if len(t) == 0:
        raise DataError("preprocessing: an empty frame has no date origin")
    origin = dates[0] - int(t[0]) * _offset(freq)
    expected = dates_of(t, str(origin), freq)
    off = np.flatnonzero(expected != dates)
    if off.size:
        i = int(off[0])
        raise DataError(
            f"preprocessing: {date!r} is not {time_idx!r} steps of {freq!r}: row {i} has {time_idx}={int(t[i])} "
            f"and {date}={dates[i]}, expected {expected[i]}"
        )
    return origin.isoformat()


def time_index_of(dates: pd.DatetimeIndex, origin: str, freq: str) -> np.ndarray:
    """Integer time indices of ``dates`` (steps of ``freq`` from ``origin``); ``-1`` where a date
    is not on that grid (the caller names it)."""
    if len(dates) == 0:
        return np.zeros(0, dtype=np.int64)
    off = _offset(freq)
    first, last = dates.min(), dates.max()
    start = pd.Timestamp(origin)
    lo = 0
    while start + lo * off > first:  # dates before the origin: extend the grid backwards
        lo -= max(1, -lo)
    grid = pd.date_range(start + lo * off, last if last >= start else start, freq=freq)
    pos = grid.get_indexer(dates)
    return np.where(pos >= 0, pos + lo, -1).astype(np.int64)


# --------------------------------------------------------------------------- LTSF


def ltsf_preprocessing(data: Any) -> dict[str, Any]:
    """The ``"ltsf"`` preprocessing of :class:`~gatelab.timeseries.data.ltsf.LTSFData`: columns
    in model order (target last), the training mean/std, windows, feature mode and dates."""
    series = data.series
    has_dates = series.dates is not None
    calendar_freq = None
    if has_dates:
        calendar_freq = _calendar_freq(data)
    return {
        "kind": LTSF_KIND,
        "format": FORMAT,
        "columns": [str(c) for c in data.columns],
        "inputs": [str(c) for c in series.columns] if data.features != "S" else [str(series.columns[-1])],
        "target": str(series.columns[-1]),
        "features": data.features,
        "num_targets": int(data.num_targets),
        "mean": _plain(np.asarray(data.mean, dtype=np.float64), "mean"),
        "std": _plain(np.asarray(data.std, dtype=np.float64), "std"),
        "lookback": int(data.lookback),
        "horizon": int(data.horizon),
        "layout": "csv" if has_dates else "lstnet",
        "date": "date" if has_dates else None,
        "freq": series.freq,
        "calendar_freq": calendar_freq,
        "calendar": list(data.calendar),
    }


def _calendar_freq(data: Any) -> str:
    freq = getattr(data, "calendar_freq", None) or data.series.freq
    if freq is None:
        raise ConfigError(f"preprocessing: {data.name}: the calendar features' frequency is unknown")
    return str(freq)
