"""``gatelab predict`` for time series: a CSV/parquet frame in, forecasts out (CSV/parquet).

``gatelab predict --model DIR --input history.csv --output forecasts.csv`` loads a saved
forecaster (:func:`gatelab.from_pretrained`; its ``preprocessing.json`` says how to read new
data) and forecasts past the end of the input:

* **TFT** (``tft``, ``pytorch-forecasting-tft``, ``naive-last-value``; preprocessing kind
  ``"tft"``): the input is a long frame with the training columns (series ids, the time index
  or the date column, static, known and observed inputs). Rows with a target are the history;
  rows after a series' last target value whose target is empty are its future: they must give
  the known inputs of at least ``horizon`` steps. Output: one row per series and forecast step,
  ``<series ids>, <time index>, [<date>], q0.1, q0.5, ...`` (one column per saved quantile,
  in the target's scale). A frame with dates but no time index gets it from the saved origin and
  frequency.
* **Gateformer / iTransformer** (preprocessing kind ``"ltsf"``): the input is the LTSF layout
  (``date`` and the variable columns); the last ``lookback`` rows are scaled with the saved
  training mean/std and the next ``horizon`` steps forecast. Output: ``date`` (continuing the
  input at the saved frequency), one column per target variable, in the data's units.

Quantiles never cross in the output: the ``monotone`` quantile head of the TFT
(``quantile_head="monotone"``, the default of :class:`gatelab.timeseries.Forecaster`) makes
them increasing by construction; for models with independent quantile outputs (the paper's
head, pytorch-forecasting's) the values of each forecast step are sorted (rearrangement,
Chernozhukov et al. 2010), which leaves already ordered quantiles unchanged.

Inputs that do not fit raise :class:`~gatelab.core.harness.errors.DataError` naming the file
and the fault: a missing column, a category or series unseen in training, a series with less
history than the shortest encoder window (named by its ids), too few future rows, an
unparseable date (``file:line:column``), non-numeric or missing values.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from gatelab.core.config import ConfigError
from gatelab.core.harness.errors import DataError
from gatelab.core.harness.predict import PredictOptions, progress

__all__ = ["UNIT", "forecast_frame", "predict_path", "quantile_column", "read_frame", "write_frame"]

#: what one predicted item is: a forecast row (one series, one step)
UNIT = "rows"


def quantile_column(q: float) -> str:
    """The output column of quantile ``q``: ``q0.1``, ``q0.5``, ``q0.98`` ..."""
    return f"q{float(q):g}"


# --------------------------------------------------------------------------- files


def read_frame(path: str | os.PathLike[str], *, header: bool = True) -> pd.DataFrame:
    """A CSV (``.csv``, ``.csv.gz``) or parquet file as a frame (dates are parsed later, where
    the saved preprocessing names the column). ``header=False``: a CSV without a header line
    (LSTNet's layout), its columns named ``"0"``, ``"1"``, ...

    Raises:
        DataError: no such file, an unknown suffix, an empty or unreadable file.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"predict: input {p}: no such file")
    name = p.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            return pd.read_parquet(p)
        if name.endswith((".csv", ".csv.gz", ".txt")):
            if not header:
                frame = pd.read_csv(p, header=None)
                return frame.set_axis([str(c) for c in range(frame.shape[1])], axis=1)
            return pd.read_csv(p)
    except pd.errors.EmptyDataError:
        raise DataError(f"{p}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as e:
        raise DataError(f"{p}: cannot be read ({type(e).__name__}: {e})") from None
    raise DataError(f"predict: input {p}: expected a .csv, .csv.gz or .parquet file")


def write_frame(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``frame`` as CSV or parquet by the suffix of ``path`` (parent folders created)."""
    p = Path(path)
    name = p.name.lower()
    if not name.endswith((".csv", ".csv.gz", ".parquet", ".pq")):
        raise ConfigError(f"predict: output {p}: expected a .csv, .csv.gz or .parquet file")
    p.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith((".parquet", ".pq")):
        frame.to_parquet(p, index=False)
    else:
        frame.to_csv(p, index=False)
    return p


def _line(source: str, row: int) -> str:
    """Where data row ``row`` (0-based) is: ``file:line`` for CSV files (header on line 1)."""
    if source.lower().endswith((".csv", ".csv.gz", ".txt")):
        return f"{source}:{row + 2}"
    return f"{source}: row {row}"


def _parse_dates(frame: pd.DataFrame, column: str, source: str) -> pd.DatetimeIndex:
    raw = frame[column]
    parsed = pd.to_datetime(raw, errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{_line(source, r)}:{column}: cannot parse {raw.iloc[r]!r} as a date "
            f"({int(bad.sum())} unparseable or missing date(s) in column {column!r})"
        )
    return pd.DatetimeIndex(parsed)


def _need_columns(frame: pd.DataFrame, columns: Sequence[str], source: str, what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {missing}; the model needs {list(columns)} ({what}); "
            f"the file has {[str(c) for c in frame.columns]}"
        )


# --------------------------------------------------------------------------- entry points


def predict_path(model: nn.Module, input: Path, output: Path, options: PredictOptions) -> int:
    """Forecast from the frame in ``input`` and write the forecasts to ``output`` (CSV/parquet,
    by suffix); returns the number of forecast rows written (``gatelab predict``'s contract)."""
    prep = getattr(model, "preprocessing", None) or {}
    frame = read_frame(input, header=not (prep.get("kind") == "ltsf" and prep.get("layout") == "lstnet"))
    forecasts = forecast_frame(model, frame, options=options, source=str(input))
    write_frame(forecasts, output)
    return len(forecasts)


def forecast_frame(
    model: nn.Module,
    frame: pd.DataFrame,
    *,
    preprocessing: Mapping[str, Any] | None = None,
    options: PredictOptions | None = None,
    source: str = "frame",
) -> pd.DataFrame:
    """Forecasts of ``model`` for ``frame`` (see the module docstring for both layouts).

    Args:
        model: a saved forecaster (``model.preprocessing`` set by ``from_pretrained``), or any
            time-series model with ``preprocessing`` given.
        frame: the new data.
        preprocessing: overrides ``model.preprocessing``.
        options: batch size, device and progress bar (default :class:`PredictOptions` without bar).
        source: the file name used in error messages.

    Raises:
        ConfigError: the model has no preprocessing (it was saved without its data module's).
        DataError: ``frame`` does not fit the preprocessing.
    """
    prep = preprocessing if preprocessing is not None else getattr(model, "preprocessing", None)
    opts = options if options is not None else PredictOptions(progress=False)
    if prep is None:
        raise ConfigError(
            f"predict: {type(model).__name__} has no preprocessing (no preprocessing.json next to its weights): "
            "the column names, encoders and scalers of its training data are unknown. Export a training "
            "checkpoint (gatelab export CKPT DIR) or save a Forecaster, which both write it"
        )
    kind = prep.get("kind")
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            if kind == "tft":
                return _forecast_tft(model, frame, prep, opts, source)
            if kind == "ltsf":
                return _forecast_ltsf(model, frame, prep, opts, source)
    finally:
        model.train(was_training)
    raise ConfigError(f"predict: preprocessing kind {kind!r} is not a time-series one ('tft' or 'ltsf')")


# --------------------------------------------------------------------------- TFT


def _series_label(key: Any, group_ids: Sequence[str]) -> str:
    key = key if isinstance(key, tuple) else (key,)
    return ", ".join(f"{g}={k!r}" for g, k in zip(group_ids, key))


def _tft_time_index(frame: pd.DataFrame, time: Mapping[str, Any], source: str) -> pd.DataFrame:
    """Add the integer time index from the date column when the frame has dates only; check the
    two agree when it has both."""
    t_col, d_col = time["time_idx"], time.get("date")
    has_dates = d_col is not None and d_col in frame.columns and time.get("origin") is not None
    if not has_dates:
        return frame
    from gatelab.timeseries.data.preprocessing import time_index_of

    dates = _parse_dates(frame, d_col, source)
    idx = time_index_of(dates, time["origin"], time["freq"])
    off = np.flatnonzero(idx < 0)
    if off.size:
        r = int(off[0])
        raise DataError(
            f"{_line(source, r)}:{d_col}: date {dates[r]} is not on the model's time grid "
            f"(steps of {time['freq']!r} from {time['origin']})"
        )
    if t_col in frame.columns:
        given = pd.to_numeric(frame[t_col], errors="coerce").to_numpy()
        wrong = np.flatnonzero(given != idx)
        if wrong.size:
            r = int(wrong[0])
            raise DataError(
                f"{_line(source, r)}:{t_col}: time index {frame[t_col].iloc[r]!r} does not match the date "
                f"{dates[r]} (index {int(idx[r])} from the saved origin {time['origin']}, freq {time['freq']!r})"
            )
        return frame
    out = frame.copy()
    out[t_col] = idx
    return out


def _check_known(prep: Mapping[str, Any], frame: pd.DataFrame, spec: Any, source: str) -> None:
    """Categories and series the training data never saw are errors (named)."""
    encoders = prep["dataset"]["categorical_encoders"]
    for var, enc in encoders.items():
        if enc["add_nan"]:
            continue
        if var.startswith("__group_id__"):
            columns = [var[len("__group_id__") :]]
            what = "series id column"
        else:
            columns = list(spec.categorical_groups.get(var, (var,)))
            what = "categorical column"
        classes = {str(k) for k, _ in enc["classes"]}
        for col in columns:
            if col not in frame.columns:
                continue
            values = pd.unique(frame[col].astype(str))
            unseen = [v for v in values if v not in classes]
            if unseen:
                raise DataError(
                    f"{source}: {what} {col!r} has {len(unseen)} value(s) unseen in training: "
                    f"{unseen[:5]}{' ...' if len(unseen) > 5 else ''} (known: {sorted(classes)[:10]}"
                    f"{' ...' if len(classes) > 10 else ''})"
                )


def _split_history(frame: pd.DataFrame, spec: Any, source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(history, future)``: rows with a target, then the rows after each series' last target."""
    keys, t = list(spec.group_ids), spec.time_idx
    has_y = frame[spec.target].notna().to_numpy()
    last = frame[has_y].groupby(keys, observed=True, sort=False)[t].max()
    key_index = pd.MultiIndex.from_frame(frame[keys].astype(str))
    last_index = pd.MultiIndex.from_frame(last.index.to_frame(index=False).astype(str))
    pos = last_index.get_indexer(key_index)
    no_history = np.flatnonzero(pos < 0)
    if no_history.size:
        r = int(no_history[0])
        key = tuple(frame[k].iloc[r] for k in keys)
        raise DataError(
            f"{source}: series ({_series_label(key, keys)}) has no history: every {spec.target!r} value is empty"
        )
    last_t = last.to_numpy()[pos]
    tt = frame[t].to_numpy()
    gap = np.flatnonzero(~has_y & (tt <= last_t))
    if gap.size:
        r = int(gap[0])
        key = tuple(frame[k].iloc[r] for k in keys)
        raise DataError(
            f"{_line(source, int(frame.index[r]))}:{spec.target}: series ({_series_label(key, keys)}) has no target "
            f"at {t}={int(tt[r])}, inside its history (future rows come after the last observed value; "
            "nothing is imputed)"
        )
    return frame[has_y], frame[~has_y]


def _forecast_tft(
    model: nn.Module, frame: pd.DataFrame, prep: Mapping[str, Any], opts: PredictOptions, source: str
) -> pd.DataFrame:
    from pytorch_forecasting import TimeSeriesDataSet

    from gatelab.timeseries.data.preprocessing import dates_of, tft_parameters, tft_spec
    from gatelab.timeseries.data.tft import FrameError, _as_categories, check_frame, prediction_frame

    spec = tft_spec(prep)
    time = prep["time"]
    frame = _tft_time_index(frame.reset_index(drop=True), time, source)
    keys = list(spec.group_ids)
    static = [
        c
        for n in (*spec.static_categoricals, *spec.static_reals)
        for c in spec.categorical_groups.get(n, (n,))
    ]
    _need_columns(
        frame,
        list(dict.fromkeys([*keys, spec.time_idx, spec.target, *static, *spec.known_columns])),
        source,
        "series ids, time index, target, static and known inputs",
    )
    observed = [
        c
        for n in (*spec.observed_categoricals, *spec.observed_reals)
        for c in spec.categorical_groups.get(n, (n,))
    ]
    _need_columns(frame, observed, source, "inputs observed in the history")
    if not pd.api.types.is_integer_dtype(frame[spec.time_idx]):
        raise DataError(
            f"{source}: time index {spec.time_idx!r} must hold integers, got dtype {frame[spec.time_idx].dtype}"
        )
    _check_known(prep, frame, spec, source)
    history, future = _split_history(frame, spec, source)
    sizes = history.groupby(keys, observed=True, sort=False).size()
    short = sizes[sizes < (spec.min_lookback or spec.lookback)]
    if len(short):
        key = short.index[0]
        raise DataError(
            f"{source}: series ({_series_label(key, keys)}) has {int(short.iloc[0])} step(s) of history; the model "
            f"needs at least {spec.min_lookback or spec.lookback} (lookback {spec.lookback})"
            + (f"; {len(short)} series are too short" if len(short) > 1 else "")
        )
    try:
        check_frame(history, spec, name=source)
        full = prediction_frame(history, future, spec)
        check_frame(full, spec, name=source)
    except (FrameError, KeyError) as e:
        raise DataError(str(e.args[0]) if e.args else str(e)) from None
    params = tft_parameters(prep)
    data = _as_categories(full, spec)
    H = spec.horizon
    dataset = TimeSeriesDataSet.from_parameters(
        params, data, predict=True, stop_randomization=True, min_prediction_length=H, max_prediction_length=H
    )
    quantiles = [float(q) for q in getattr(model, "quantiles", (0.5,))]
    monotone = getattr(model, "quantile_head", "independent") == "monotone"
    parts = []
    for x in _tft_batches(dataset, opts):
        index = dataset.x_to_index(x)
        x = {k: v.to(opts.device) if isinstance(v, torch.Tensor) else v for k, v in x.items()}
        pred = model(x).prediction.float().cpu()  # [B, H, Q]
        if not monotone:
            pred = pred.sort(dim=-1).values
        B, steps, Q = pred.shape
        if Q != len(quantiles):
            raise ConfigError(f"predict: the model returns {Q} quantiles but lists {quantiles}")
        part = index.drop(columns=[spec.time_idx]).loc[np.repeat(np.arange(B), steps)].reset_index(drop=True)
        part[spec.time_idx] = x["decoder_time_idx"].cpu().numpy().reshape(-1)
        values = pred.reshape(B * steps, Q).numpy()
        for j, q in enumerate(quantiles):
            part[quantile_column(q)] = values[:, j]
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    if time.get("date") is not None and time.get("origin") is not None:
        out.insert(
            len(keys) + 1, time["date"], dates_of(out[spec.time_idx].to_numpy(), time["origin"], time["freq"])
        )
    return out[[*keys, *[c for c in out.columns if c not in keys]]]


def _tft_batches(dataset: Any, opts: PredictOptions) -> Iterator[dict[str, torch.Tensor]]:
    from gatelab.timeseries.data.tft_loader import WindowBatches

    try:
        batches = WindowBatches(dataset)
    except NotImplementedError:
        loader = dataset.to_dataloader(train=False, batch_size=opts.batch_size)
        for x, _ in progress(loader, total=len(loader), desc="forecast", options=opts):
            yield x
        return
    n = len(batches)
    starts = range(0, n, opts.batch_size)
    for s in progress(starts, total=len(starts), desc="forecast", options=opts):
        x, _ = batches.__getitems__(list(range(s, min(s + opts.batch_size, n))))
        yield x


# --------------------------------------------------------------------------- LTSF


def _ltsf_values(frame: pd.DataFrame, columns: Sequence[str], source: str, first_row: int) -> np.ndarray:
    out = np.empty((len(frame), len(columns)), dtype=np.float64)
    for j, col in enumerate(columns):
        s = frame[col]
        num = pd.to_numeric(s, errors="coerce")
        bad = num.isna().to_numpy() | ~np.isfinite(num.to_numpy(dtype=np.float64, na_value=np.nan))
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{_line(source, first_row + r)}:{col}: "
                + ("empty cell" if pd.isna(s.iloc[r]) else f"value {s.iloc[r]!r} is not a finite number")
                + " "
                f"({int(bad.sum())} such cell(s) in column {col!r}; nothing is imputed)"
            )
        out[:, j] = num.to_numpy(dtype=np.float64)
    return out


def _forecast_ltsf(
    model: nn.Module, frame: pd.DataFrame, prep: Mapping[str, Any], opts: PredictOptions, source: str
) -> pd.DataFrame:
    from gatelab.timeseries.data.ltsf import time_features

    inputs, L, H = list(prep["inputs"]), int(prep["lookback"]), int(prep["horizon"])
    d_col = prep.get("date")
    frame = frame.reset_index(drop=True)
    if d_col is None:  # LSTNet layout: no header, columns by position ("0", "1", ...)
        frame = frame.set_axis([str(c) for c in frame.columns], axis=1)
    _need_columns(frame, [*([d_col] if d_col else []), *inputs], source, "date and variables")
    if len(frame) < L:
        raise DataError(f"{source}: {len(frame)} row(s) of history; the model needs lookback={L} rows")
    values = _ltsf_values(frame.iloc[len(frame) - L :], inputs, source, len(frame) - L)
    mean, std = np.asarray(prep["mean"]), np.asarray(prep["std"])
    x = torch.from_numpy(((values - mean) / std).astype(np.float32))[None]  # [1, L, C]
    dates = None
    if d_col is not None:
        dates = _parse_dates(frame, d_col, source)
        steps = np.diff(dates.to_numpy())
        back = np.flatnonzero(steps <= np.timedelta64(0))
        if back.size:
            r = int(back[0]) + 1
            raise DataError(f"{_line(source, r)}:{d_col}: date {dates[r]} does not come after {dates[r - 1]}")
        freq = prep.get("freq")
        if freq:  # the window the model sees must be sampled as the training data was
            from pandas.tseries.frequencies import to_offset

            window = dates[len(dates) - L :]
            off = np.flatnonzero(window[:-1] + to_offset(freq) != window[1:])
            if off.size:
                r = len(dates) - L + int(off[0]) + 1
                raise DataError(
                    f"{_line(source, r)}:{d_col}: date {dates[r]} is not one step of {freq!r} after {dates[r - 1]} "
                    f"(the model was trained on {freq!r} data; its last {L} rows must be evenly spaced)"
                )
        marks = torch.from_numpy(time_features(dates[len(dates) - L :], prep["calendar_freq"]))[None]
    else:
        marks = torch.zeros(1, L, 1)
    y = model(x.to(opts.device), marks.to(opts.device)).float().cpu().numpy()[0]  # [H, C_out] (one window)
    n_out = int(prep["num_targets"])
    if y.shape != (H, n_out):
        raise ConfigError(f"predict: the model returns {y.shape}, the preprocessing expects [{H}, {n_out}]")
    targets = list(prep["columns"])[-n_out:]
    y = y * std[-n_out:] + mean[-n_out:]
    out = pd.DataFrame(y, columns=targets)
    if dates is not None:
        from pandas.tseries.frequencies import to_offset

        freq = prep.get("freq") or prep["calendar_freq"]
        off = to_offset(freq)
        out.insert(0, d_col, pd.date_range(dates[-1] + off, periods=H, freq=off))
    else:  # no dates: the steps after the input's last row
        out.insert(0, "step", np.arange(1, H + 1))
    return out
