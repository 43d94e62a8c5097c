r"""Long-horizon forecasting (LTSF) data: the Informer / Autoformer / iTransformer / Gateformer layout.

Three layers, from file to batches:

1. :func:`read_ltsf_file` reads one file into float64 values ``[T, C]`` (target moved last) and
   its timestamps, with clear errors for bad input (missing ``date`` or target column,
   non-numeric cells, NaNs, timestamps going backwards or spaced at another frequency than the
   dataset's), naming the file, the column and the line.
2. :class:`LTSFData` splits the rows the way the literature does (:func:`split_borders`), fits a
   standard scaler on the training rows only, selects the feature mode (``M``, ``S``, ``MS``),
   computes calendar features (:func:`time_features`) and hands out :class:`LTSFWindows`.
3. :class:`gatelab.timeseries.data.datamodule.LTSFDataModule` (Lightning) batches the windows;
   :func:`gatelab.timeseries.data.datamodule.ltsf_datamodule` is the factory registered with the
   harness as data module ``ltsf``.

A window ``i`` of a split ``[s, e)`` with lookback ``L`` and horizon ``H`` is::

    x       = data[s + i      : s + i + L,     inputs]     [L, C_in]
    x_mark  = marks[s + i     : s + i + L]                 [L, F]
    target  = data[s + i + L  : s + i + L + H, outputs]    [H, C_out]

for ``i = 0 .. (e - s) - L - H``; a split of ``n`` rows has ``n - L - H + 1`` windows.

Feature modes: ``M`` inputs and outputs every variable; ``S`` only the target; ``MS`` every
variable in, the target out (``C_out = 1``). The target is always the last column (the custom
loader's ``[date, others..., target]`` order; ETT files already end with ``OT``).

Scaling: ``z = (v - mean_train) / std_train`` per column, with the mean and the population
standard deviation (``ddof = 0``, as ``sklearn.preprocessing.StandardScaler``) of the training
rows only; a constant training column gets ``std = 1``. Inputs and targets are both scaled and
metrics are computed on the scaled values (the convention of the LTSF papers).

Calendar features (``timeF`` in the official code, after GluonTS): per row, each in
``[-0.5, 0.5]``, chosen by the frequency: hourly ``[hour/23, dayofweek/6, (day-1)/30,
(dayofyear-1)/365] - 0.5``; minutely adds ``minute/59`` in front; daily drops the hour; weekly
``[(day-1)/30, (week-1)/52]``; monthly ``[(month-1)/11]``. Files without dates (LSTNet layout)
get one all-zero mark column, as the official Solar loader.

Deviations from the official loaders: the target is moved last in every layout (a no-op for the
ETT files); timestamps are validated (the official code does not look at them); nothing else.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from gatelab.core.config import ConfigError
from gatelab.core.harness.data import dataset_file, file_sha256, locate
from gatelab.core.harness.errors import DataError, DatasetNotFoundError

from .ltsf_datasets import EMBEDDED_FILES, LTSFDataset, get_ltsf_dataset

__all__ = [
    "FEATURE_MODES",
    "MISSING_POLICIES",
    "STEP_POLICIES",
    "LTSFData",
    "LTSFDataError",
    "LTSFSeries",
    "LTSFWindows",
    "calendar_feature_names",
    "load_ltsf",
    "read_ltsf_file",
    "resolve_ltsf_file",
    "split_borders",
    "time_features",
]

log = logging.getLogger("gatelab.timeseries")

FEATURE_MODES = ("M", "S", "MS")
STAGES = ("train", "val", "test")
#: what to do with empty, NaN or infinite cells (see :func:`read_ltsf_file`)
MISSING_POLICIES = ("error", "ffill", "fill_na", "mask")
#: what to do with gaps, duplicates and off-grid steps of the date column (see :func:`read_ltsf_file`)
STEP_POLICIES = ("error", "keep", "insert")
#: cell codes of :attr:`LTSFSeries.status`
OBSERVED, MISSING_CELL, INFINITE_CELL, INSERTED_ROW = 0, 1, 2, 3

# rows of the ETT splits: 12/4/4 months of 30 days
_ETT_H = (12 * 30 * 24, 4 * 30 * 24, 4 * 30 * 24)


class LTSFDataError(DataError, ValueError):
    """Bad LTSF input (a file, a column, a setting); the message names the file and the problem."""


# --------------------------------------------------------------------------- splits


def split_borders(n_rows: int, lookback: int, rule: str) -> dict[str, tuple[int, int]]:
    """Row ranges ``[start, end)`` of the train / val / test splits of a file of ``n_rows`` rows.

    ``rule`` is ``ett_h``, ``ett_m``, ``custom`` or ``solar`` (see
    :mod:`gatelab.timeseries.data.ltsf_datasets`). Validation and test start ``lookback`` rows
    before their edge, so their first target row is the first row after the edge.

    Raises :class:`LTSFDataError` when the file is too short for the rule or the lookback.
    """
    if lookback < 1:
        raise LTSFDataError(f"lookback must be >= 1, got {lookback}")
    if rule in ("ett_h", "ett_m"):
        k = 1 if rule == "ett_h" else 4
        n_train, n_val, n_test = (k * n for n in _ETT_H)
        need = n_train + n_val + n_test
        if n_rows < need:
            raise LTSFDataError(
                f"the {rule} split uses the first {need} rows (12/4/4 months), but the file has {n_rows}"
            )
        a, b = n_train, n_train + n_val
        borders = {"train": (0, a), "val": (a - lookback, b), "test": (b - lookback, need)}
    elif rule in ("custom", "solar"):
        n_train = int(n_rows * 0.7)
        n_test = int(n_rows * 0.2)
        n_val = n_rows - n_train - n_test if rule == "custom" else int(n_rows * 0.1)
        borders = {
            "train": (0, n_train),
            "val": (n_train - lookback, n_train + n_val),
            "test": (n_rows - n_test - lookback, n_rows),
        }
    else:
        raise LTSFDataError(f"unknown split rule {rule!r}; expected ett_h, ett_m, custom or solar")
    if borders["val"][0] < 0:
        raise LTSFDataError(
            f"lookback {lookback} is longer than the training split ({borders['train'][1]} rows of {n_rows})"
        )
    return borders


# --------------------------------------------------------------------------- calendar features

_FREQ_ALIASES = {"t": "min", "T": "min", "H": "h", "S": "s", "M": "ME", "A": "YE", "Y": "YE", "Q": "QE"}


def _offset(freq: str) -> Any:
    from pandas.tseries.frequencies import to_offset

    try:
        return to_offset(_FREQ_ALIASES.get(freq, freq))
    except ValueError as e:
        raise LTSFDataError(f"unknown frequency {freq!r} ({e})") from None


def calendar_feature_names(freq: str) -> list[str]:
    """Names of the :func:`time_features` columns for ``freq`` (GluonTS's choice by offset type)."""
    from pandas.tseries import offsets as o

    off = _offset(freq)
    day = ["dayofweek", "dayofmonth", "dayofyear"]
    table: list[tuple[type, list[str]]] = [
        (o.YearEnd, []),
        (o.QuarterEnd, ["monthofyear"]),
        (o.MonthEnd, ["monthofyear"]),
        (o.Week, ["dayofmonth", "weekofyear"]),
        (o.Day, day),
        (o.BusinessDay, day),
        (o.Hour, ["hourofday", *day]),
        (o.Minute, ["minuteofhour", "hourofday", *day]),
        (o.Second, ["secondofminute", "minuteofhour", "hourofday", *day]),
    ]
    for cls, names in table:
        if isinstance(off, cls):
            return names
    raise LTSFDataError(
        f"no calendar features for frequency {freq!r}; use one of h, min (or t), s, D, B, W, ME, QE, YE"
    )


def time_features(dates: pd.DatetimeIndex | Sequence[Any], freq: str) -> np.ndarray:
    """Calendar features ``[T, F]`` (float32, each in ``[-0.5, 0.5]``) of ``dates`` for ``freq``.

    The official ``timeF`` encoding (``utils/timefeatures.py`` of Autoformer/iTransformer, after
    GluonTS): ``secondofminute = s/59``, ``minuteofhour = m/59``, ``hourofday = h/23``,
    ``dayofweek = dow/6`` (Monday = 0), ``dayofmonth = (d-1)/30``, ``dayofyear = (doy-1)/365``,
    ``monthofyear = (month-1)/11``, ``weekofyear = (isoweek-1)/52``, each minus 0.5.
    """
    idx = pd.DatetimeIndex(dates)
    feats = {
        "secondofminute": lambda: idx.second / 59.0,
        "minuteofhour": lambda: idx.minute / 59.0,
        "hourofday": lambda: idx.hour / 23.0,
        "dayofweek": lambda: idx.dayofweek / 6.0,
        "dayofmonth": lambda: (idx.day - 1) / 30.0,
        "dayofyear": lambda: (idx.dayofyear - 1) / 365.0,
        "monthofyear": lambda: (idx.month - 1) / 11.0,
        "weekofyear": lambda: (idx.isocalendar().week.to_numpy(dtype=np.float64) - 1) / 52.0,
    }
    names = calendar_feature_names(freq)
    if not names:
        return np.zeros((len(idx), 0), dtype=np.float32)
    cols = [np.asarray(feats[n](), dtype=np.float64) - 0.5 for n in names]
    return np.stack(cols, axis=1).astype(np.float32)


# --------------------------------------------------------------------------- reading


@dataclasses.dataclass
class LTSFSeries:
    """One file as read: ``values [T, C]`` (float64, target last), column names, timestamps.

    ``dates`` is ``None`` for the LSTNet layout. ``irregular_steps`` counts timestamp steps that
    differ from the declared frequency (with ``steps="keep"``: kept as they are, with a warning).

    Missing data (only with a ``missing`` policy other than ``"error"``): ``values`` holds NaN in
    every cell that was not observed, and ``status [T, C]`` (int8) says why: :data:`OBSERVED` (0),
    :data:`MISSING_CELL` (1: an empty or NaN cell), :data:`INFINITE_CELL` (2: ``inf``/``-inf``) or
    :data:`INSERTED_ROW` (3: a time step absent from the file, inserted by ``steps="insert"``).
    ``lines [T]`` is the 1-based file line of each row (0 for inserted rows). ``missing`` is the
    policy the reader was given; :class:`LTSFData` applies it.
    """

    path: Path
    values: np.ndarray
    columns: list[str]
    dates: pd.DatetimeIndex | None
    freq: str | None
    irregular_steps: int = 0
    missing: str = "error"
    status: np.ndarray | None = None
    lines: np.ndarray | None = None
    inserted_steps: int = 0

    @property
    def n_rows(self) -> int:
        return int(self.values.shape[0])


def _freq_delta(freq: str) -> np.timedelta64:
    text = freq if freq[:1].isdigit() else f"1{freq}"
    try:
        return np.timedelta64(pd.Timedelta(text))
    except ValueError:
        raise LTSFDataError(
            f"frequency {freq!r} is not a fixed interval (use e.g. 'h', '15min', '10min', 'D', '7D')"
        ) from None


def _line(row: int, header: bool) -> int:
    """1-based line number of 0-based data row ``row``."""
    return row + (2 if header else 1)


def _numeric(
    df: pd.DataFrame, path: Path, header: bool, missing: str = "error", lines: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Every column of ``df`` as float64, and the :attr:`LTSFSeries.status` codes of its cells.

    A non-numeric cell is always an error naming the file, column and line. Empty/NaN and
    infinite cells are an error under ``missing="error"``; under a policy they become NaN and are
    marked in the status array. ``lines`` maps rows to file lines (default: row + header).
    """

    def line(r: int) -> int:
        return int(lines[r]) if lines is not None else _line(r, header)

    out = np.empty(df.shape, dtype=np.float64)
    status = np.zeros(df.shape, dtype=np.int8)
    for j, col in enumerate(df.columns):
        s = df[col]
        if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
            num = pd.to_numeric(s, errors="coerce")
            bad = num.isna() & s.notna()
            if bad.any():
                r = int(np.flatnonzero(bad.to_numpy())[0])
                raise LTSFDataError(
                    f"{path}: column {col!r} has a non-numeric value {s.iloc[r]!r} at line {line(r)}"
                    f" ({int(bad.sum())} non-numeric cell(s) in that column)"
                )
            s = num
        v = s.to_numpy(dtype=np.float64, na_value=np.nan)
        nan, inf = np.isnan(v), np.isinf(v)
        if missing == "error":
            if nan.any():
                r = int(np.flatnonzero(nan)[0])
                raise LTSFDataError(
                    f"{path}: column {col!r} has {int(nan.sum())} missing/NaN value(s), the first at line"
                    f" {line(r)}; fill or drop them, or choose a missing-value policy (missing: ffill,"
                    " fill_na or mask); nothing is imputed silently"
                )
            if inf.any():
                r = int(np.flatnonzero(inf)[0])
                raise LTSFDataError(
                    f"{path}: column {col!r} has {int(inf.sum())} infinite value(s), the first ({v[r]}) at"
                    f" line {line(r)}"
                )
        status[nan, j] = MISSING_CELL
        status[inf, j] = INFINITE_CELL
        out[:, j] = np.where(inf, np.nan, v)
    return out, status


def _check_dates(
    dates: pd.DatetimeIndex, path: Path, freq: str | None, steps: str = "keep"
) -> tuple[int, np.ndarray | None]:
    """Check the date column; return ``(irregular steps, grid)``.

    Backwards steps and a wrong sampling frequency (most common step) are always errors. Other
    irregular steps (a gap, a repeated timestamp, an off-grid step) follow ``steps``: ``error``
    names the first; ``keep`` warns and keeps the rows; ``insert`` returns the complete grid
    ``first, first + freq, ..., last`` into which the rows are placed (gaps must then be whole
    multiples of ``freq``; repeated or off-grid timestamps are errors).
    """
    if len(dates) < 2:
        return 0, None
    steps_ = np.diff(dates.to_numpy())
    back = np.flatnonzero(steps_ < np.timedelta64(0))
    if back.size:
        r = int(back[0]) + 1
        raise LTSFDataError(
            f"{path}: the date column goes backwards at line {_line(r, True)} ({dates[r - 1]} -> {dates[r]});"
            " the rows must be in time order"
        )
    if freq is None:
        if steps == "insert":
            raise LTSFDataError(f"{path}: steps='insert' needs the sampling frequency (freq)")
        return 0, None
    expected = _freq_delta(freq)
    values, counts = np.unique(steps_, return_counts=True)
    mode = values[int(np.argmax(counts))]
    if mode != expected:
        raise LTSFDataError(
            f"{path}: wrong frequency: timestamps are mostly {pd.Timedelta(mode)} apart"
            f" ({int(counts.max())} of {len(steps_)} steps), but this dataset is sampled every"
            f" {pd.Timedelta(expected)} (freq={freq!r})"
        )
    irregular = np.flatnonzero(steps_ != expected)
    if not irregular.size:
        return 0, None
    r = int(irregular[0]) + 1
    step = steps_[r - 1]
    gap = step > expected and step % expected == np.timedelta64(0)
    kind = (
        f"a gap of {int(step // expected) - 1} missing time step(s)"
        if gap
        else ("a repeated timestamp" if step == np.timedelta64(0) else f"an off-grid step of {pd.Timedelta(step)}")
    )
    where = f"line {_line(r, True)} ({dates[r - 1]} -> {dates[r]})"
    if steps == "error":
        raise LTSFDataError(
            f"{path}: {irregular.size} of {len(steps_)} timestamp steps differ from {pd.Timedelta(expected)};"
            f" the first is {kind} at {where}. Choose steps: insert (missing steps become missing rows,"
            " handled by the missing policy) or steps: keep (rows used as they are, as the official loaders)"
        )
    if steps == "insert":
        bad = [int(i) for i in irregular if not (steps_[i] > expected and steps_[i] % expected == np.timedelta64(0))]
        if bad:
            i = bad[0] + 1
            raise LTSFDataError(
                f"{path}: steps='insert' can only fill gaps that are whole multiples of {pd.Timedelta(expected)};"
                f" line {_line(i, True)} has {dates[i - 1]} -> {dates[i]} ({pd.Timedelta(steps_[i - 1])})"
            )
        grid = np.arange(dates[0].to_datetime64(), dates[-1].to_datetime64() + expected, expected)
        return int(irregular.size), grid
    log.warning(
        "%s: %d of %d timestamp steps differ from %s (first at %s: %s); the rows are used"
        " as they are, as in the official loaders",
        path,
        irregular.size,
        len(steps_),
        pd.Timedelta(expected),
        where,
        kind,
    )
    return int(irregular.size), None


def _check_header(path: Path) -> None:
    """pandas renames a repeated header name (``a``, ``a.1``) and names an empty one ``Unnamed: k``:
    both are errors here, naming the file, line 1 and the column."""
    header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False, compression="infer")
    names = [str(v).strip() for v in header.iloc[0].tolist()]
    for j, n in enumerate(names):
        if not n:
            raise LTSFDataError(f"{path}: line 1 (the header), column {j + 1} has no name; the header is {names}")
    seen: dict[str, int] = {}
    for j, n in enumerate(names):
        if n in seen:
            raise LTSFDataError(
                f"{path}: line 1 (the header) names column {n!r} twice (columns {seen[n] + 1} and {j + 1})"
            )
        seen[n] = j


def read_ltsf_file(
    path: str | os.PathLike[str],
    *,
    layout: str = "csv",
    target: str | None = "OT",
    freq: str | None = None,
    missing: str = "error",
    steps: str = "error",
) -> LTSFSeries:
    """Read one LTSF file (``.csv``, ``.txt`` or either ``.gz``-compressed).

    Args:
        path: the file.
        layout: ``"csv"``: a header with a ``date`` column, the variables and the target
            (Autoformer's ``custom`` layout, also ETT's); ``"lstnet"``: no header, no dates,
            comma-separated floats, one row per time step (LSTNet's Solar/Exchange files).
        target: the target column (csv layout; must exist). For ``lstnet`` a column index as a
            string, or ``None`` for the last column.
        freq: sampling interval the ``date`` column must follow (most common step); ``None``
            skips the check (and the ``steps`` policy).
        missing: empty, NaN and infinite cells: ``"error"`` (default: an error naming the file,
            column and line), or a policy applied by :class:`LTSFData` -- ``"ffill"`` (the last
            observed value of the column; a column starting with a missing cell is an error),
            ``"fill_na"`` (the column's training mean, i.e. 0 after scaling), ``"mask"`` (as
            ``fill_na``, plus an availability mask handed to the model and to the loss). The cells
            are counted per split (:meth:`LTSFData.missing_counts`) and a warning gives the totals.
        steps: timestamp steps other than ``freq`` (a gap, a repeated timestamp, an off-grid
            step): ``"error"`` (default, naming the line), ``"keep"`` (rows used as they are with a
            warning, as the official loaders; the registered datasets' protocol) or ``"insert"``
            (gaps become rows of missing cells, handled by ``missing``, which must then not be
            ``"error"``). A backwards step or a wrong frequency is always an error.

    Returns the values with the target moved to the last column (other columns keep their order).
    """
    p = Path(path)
    if layout not in ("csv", "lstnet"):
        raise LTSFDataError(f"layout must be 'csv' or 'lstnet', got {layout!r}")
    if missing not in MISSING_POLICIES:
        raise ConfigError(f"missing={missing!r} is not one of {', '.join(MISSING_POLICIES)}")
    if steps not in STEP_POLICIES:
        raise ConfigError(f"steps={steps!r} is not one of {', '.join(STEP_POLICIES)}")
    if steps == "insert" and missing == "error":
        raise ConfigError(
            "steps='insert' turns missing time steps into rows of missing values: choose a missing-value"
            " policy too (missing: ffill, fill_na or mask)"
        )
    if not p.is_file():
        raise LTSFDataError(f"{p}: no such file")
    try:
        df = pd.read_csv(p, header=0 if layout == "csv" else None, compression="infer")
    except pd.errors.EmptyDataError:
        raise LTSFDataError(f"{p}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError, zlib.error) as e:
        raise LTSFDataError(f"{p}: cannot be parsed as {layout} ({type(e).__name__}: {e})") from None
    if len(df) == 0:
        raise LTSFDataError(f"{p}: the file has a header but no data rows")

    dates: pd.DatetimeIndex | None = None
    irregular = inserted = 0
    if layout == "csv":
        _check_header(p)
        cols = [str(c) for c in df.columns]
        df.columns = cols
        if "date" not in cols:
            raise LTSFDataError(
                f"{p}: no 'date' column; the header is {cols} (the LTSF layout is date, variables..., target)"
            )
        if target is None or target not in cols or target == "date":
            raise LTSFDataError(f"{p}: target column {target!r} not found; the header is {cols}")
        raw = df["date"]
        parsed = pd.to_datetime(raw, errors="coerce")
        bad = parsed.isna().to_numpy()
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise LTSFDataError(
                f"{p}: column 'date' has an unparseable or missing timestamp {raw.iloc[r]!r} at line {_line(r, True)}"
            )
        dates = pd.DatetimeIndex(parsed)
        irregular, grid = _check_dates(dates, p, freq, steps if layout == "csv" else "keep")
        order = [c for c in cols if c not in ("date", target)] + [target]
        lines = np.arange(len(df), dtype=np.int64) + 2
        values, status = _numeric(df[order], p, header=True, missing=missing, lines=lines)
        if grid is not None:  # steps="insert": place the rows on the complete time grid
            pos = np.searchsorted(grid, dates.to_numpy())
            full = np.full((len(grid), values.shape[1]), np.nan)
            full[pos] = values
            full_status = np.full(full.shape, INSERTED_ROW, dtype=np.int8)
            full_status[pos] = status
            full_lines = np.zeros(len(grid), dtype=np.int64)
            full_lines[pos] = lines
            inserted = len(grid) - len(dates)
            values, status, lines, dates = full, full_status, full_lines, pd.DatetimeIndex(grid)
        columns = order
    else:
        lines = np.arange(len(df), dtype=np.int64) + 1
        values, status = _numeric(df, p, header=False, missing=missing, lines=lines)
        n = values.shape[1]
        if target is None:
            t = n - 1
        else:
            try:
                t = int(target)
            except ValueError:
                raise LTSFDataError(
                    f"{p}: lstnet files have no header; target must be a column index, got {target!r}"
                ) from None
            if not -n <= t < n:
                raise LTSFDataError(f"{p}: target column {t} out of range for {n} columns")
            t %= n
        order_idx = [j for j in range(n) if j != t] + [t]
        values, status = values[:, order_idx], status[:, order_idx]
        columns = [str(j) for j in order_idx]
    any_missing = bool(status.any())
    return LTSFSeries(
        path=p,
        values=values,
        columns=columns,
        dates=dates,
        freq=freq,
        irregular_steps=irregular,
        missing=missing,
        status=status if any_missing else None,
        lines=lines,
        inserted_steps=inserted,
    )


def resolve_ltsf_file(
    dataset: LTSFDataset,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    verify: bool = True,
    allow_embedded: bool = True,
) -> tuple[Path, str]:
    """The file of a registered dataset and where it came from (``"data_dir"`` or ``"embedded"``).

    The data directory wins; when it lacks the dataset and a copy ships inside the package
    (ETTh1), that copy is used after checking its sha256, and a warning says so. A present
    but corrupt file is an error (never silently replaced by the embedded copy).
    """
    try:
        locate(dataset.spec, data_dir, verify=verify)
        return dataset_file(dataset.spec, dataset.file, data_dir), "data_dir"
    except DatasetNotFoundError:
        emb = dataset.embedded
        if not allow_embedded or emb is None:
            raise
        expected = EMBEDDED_FILES[dataset.name][1]
        actual = file_sha256(emb)
        if actual != expected:
            raise LTSFDataError(
                f"the embedded copy {emb} has sha256 {actual}, expected {expected}: the package is damaged"
            ) from None
        log.warning(
            "%s not found in %s; using the embedded copy %s (unmodified, CC BY-ND 4.0, sha256 %s...)",
            dataset.title,
            dataset.spec.root(data_dir),
            emb,
            expected[:12],
        )
        return emb, "embedded"


# --------------------------------------------------------------------------- windows


class LTSFWindows(Dataset):
    """Sliding windows over one split (see the module docstring for the indexing).

    Items are dicts ``{"x": [L, C_in], "x_mark": [L, F], "target": [H, C_out]}`` (float32
    views into the split's tensors; nothing is copied until batching). With availability masks
    (``x_observed [T, C_in]``, ``y_observed [T, C_out]``, bool; the ``missing="mask"`` policy)
    items also hold ``"observed": [L, C_in]`` (the model's input mask) and
    ``"target_observed": [H, C_out]`` (the loss mask).
    """

    def __init__(
        self,
        x: torch.Tensor,
        marks: torch.Tensor,
        y: torch.Tensor,
        lookback: int,
        horizon: int,
        x_observed: torch.Tensor | None = None,
        y_observed: torch.Tensor | None = None,
    ) -> None:
        if not (x.shape[0] == marks.shape[0] == y.shape[0]):
            raise ValueError(
                f"LTSFWindows: x, marks, y have {x.shape[0]}, {marks.shape[0]}, {y.shape[0]} rows"
            )
        if (x_observed is None) != (y_observed is None):
            raise ValueError("LTSFWindows: give both x_observed and y_observed, or neither")
        if x_observed is not None and y_observed is not None:
            if x_observed.shape != x.shape or y_observed.shape != y.shape:
                raise ValueError(
                    f"LTSFWindows: masks {tuple(x_observed.shape)}, {tuple(y_observed.shape)} do not match"
                    f" x {tuple(x.shape)}, y {tuple(y.shape)}"
                )
        self.x_observed, self.y_observed = x_observed, y_observed
        self.x, self.marks, self.y = x, marks, y
        self.lookback, self.horizon = int(lookback), int(horizon)
        self._n = x.shape[0] - self.lookback - self.horizon + 1

    def __len__(self) -> int:
        return max(self._n, 0)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not 0 <= i < self._n:
            raise IndexError(f"window {i} out of range [0, {self._n})")
        s, m = i, i + self.lookback
        item = {"x": self.x[s:m], "x_mark": self.marks[s:m], "target": self.y[m : m + self.horizon]}
        if self.x_observed is not None and self.y_observed is not None:
            item["observed"] = self.x_observed[s:m]
            item["target_observed"] = self.y_observed[m : m + self.horizon]
        return item


class LTSFData:
    """A file read, split, scaled and ready to hand out windows (see the module docstring).

    Args:
        series: the file as read by :func:`read_ltsf_file`.
        lookback, horizon: window lengths ``L`` and ``H``.
        split: split rule (:func:`split_borders`).
        features: ``"M"``, ``"S"`` or ``"MS"``.
        calendar_freq: frequency of the calendar features (default: the series' own); the
            official scripts use ``"h"`` for every dataset.
        scale: standardise with training statistics (``False`` keeps raw values).
        name: a label for messages (the dataset name).
        source: where the file came from (``"data_dir"``, ``"embedded"``, ``"file"``).

    Attributes: ``borders`` (split row ranges), ``mean``/``std`` (``[C]`` scaler statistics of
    the columns in use), ``data`` (``[T, C]`` float32 scaled), ``marks`` (``[T, F]``),
    ``columns``, ``num_vars``, ``num_targets``, ``num_marks``.
    """

    def __init__(
        self,
        series: LTSFSeries,
        *,
        lookback: int,
        horizon: int,
        split: str,
        features: str = "M",
        calendar_freq: str | None = None,
        scale: bool = True,
        name: str | None = None,
        source: str = "file",
    ) -> None:
        if features not in FEATURE_MODES:
            raise ConfigError(f"features={features!r} must be one of {FEATURE_MODES}")
        if horizon < 1:
            raise ConfigError(f"horizon must be >= 1, got {horizon}")
        self.series = series
        self.name = name or series.path.name
        self.source = source
        self.lookback, self.horizon = int(lookback), int(horizon)
        self.features = features
        self.split = split
        try:
            self.borders = split_borders(series.n_rows, self.lookback, split)
        except LTSFDataError as e:
            raise LTSFDataError(f"{series.path}: {e}") from None
        need = self.lookback + self.horizon
        for stage, (a, b) in self.borders.items():
            if b - a < need:
                raise LTSFDataError(
                    f"{series.path}: the {stage} split has {b - a} rows (rows {a}..{b - 1} of {series.n_rows}),"
                    f" shorter than lookback + horizon = {self.lookback} + {self.horizon} = {need}"
                )
        values = series.values if features != "S" else series.values[:, -1:]
        self.columns = list(series.columns) if features != "S" else [series.columns[-1]]
        status = series.status
        if status is not None and features == "S":
            status = status[:, -1:]
        self.status = status if status is not None and status.any() else None
        self.missing = series.missing
        self._scale(values, scale)
        if series.dates is not None:
            freq = calendar_freq or series.freq
            if freq is None:
                raise ConfigError(f"{series.path}: give calendar_freq (the file's frequency is unknown)")
            self.marks = torch.from_numpy(time_features(series.dates, freq))
            self.calendar = calendar_feature_names(freq)
            self.calendar_freq: str | None = freq
        else:  # no timestamps: one all-zero mark column, like the official Solar loader
            self.calendar_freq = None
            self.marks = torch.zeros(series.n_rows, 1)
            self.calendar = ["none"]
        self.num_vars = self.data.shape[1]
        self.num_targets = self.num_vars if features == "M" else 1
        self.num_marks = self.marks.shape[1]

    def _scale(self, values: np.ndarray, scale: bool) -> None:
        """Scaler statistics (observed training cells), the missing-value policy, ``data`` and ``observed``."""
        a, b = self.borders["train"]
        if self.status is not None:
            self._check_observed(values, a, b)
        if scale:
            # two-pass mean and population std over the observed training cells (numerically
            # stable: no E[x^2] - mean^2 cancellation; NaN marks the unobserved cells)
            train = values[a:b]
            with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported just below
                mean = np.nanmean(train, axis=0) if self.status is not None else train.mean(axis=0)
                std = np.nanstd(train, axis=0) if self.status is not None else train.std(axis=0)
            std = np.where(std > 0, std, 1.0)
        else:
            mean = np.zeros(values.shape[1])
            std = np.ones(values.shape[1])
        self._check_scale(values, mean, std)
        self.mean, self.std = mean, std
        filled = self._fill(values, mean) if self.status is not None else values
        with np.errstate(over="ignore", invalid="ignore"):  # reported by _check_scaled
            scaled = ((filled - mean) / std).astype(np.float32)
        self._check_scaled(scaled, filled)
        self.data = torch.from_numpy(scaled)
        #: availability mask ``[T, C]`` (bool) under ``missing="mask"``, else ``None``
        self.observed: torch.Tensor | None = None
        if self.missing == "mask":
            obs = self.status == OBSERVED if self.status is not None else np.ones(values.shape, dtype=bool)
            self.observed = torch.from_numpy(np.ascontiguousarray(obs))
        if self.status is not None:
            counts = self.missing_counts()
            log.warning(
                "%s: missing=%r applied to %s cells (per split: %s)",
                self.series.path,
                self.missing,
                int((self.status != OBSERVED).sum()),
                counts,
            )

    def _line(self, row: int) -> str:
        lines = self.series.lines
        if lines is None:
            return f"row {row}"
        return f"line {int(lines[row])}" if lines[row] > 0 else f"inserted row {row}"

    def _check_observed(self, values: np.ndarray, a: int, b: int) -> None:
        """Columns need observed training cells; ``ffill`` needs an observed first cell."""
        obs = self.status == OBSERVED
        none = np.flatnonzero(~obs[a:b].any(axis=0))
        if none.size:
            raise LTSFDataError(
                f"{self.series.path}: column {self.columns[int(none[0])]!r} has no observed value in the"
                f" training split (rows {a}..{b - 1}); its scaling statistics are undefined"
            )
        if self.missing == "ffill":
            first = np.flatnonzero(~obs[0])
            if first.size:
                raise LTSFDataError(
                    f"{self.series.path}: missing='ffill' has no earlier value for column"
                    f" {self.columns[int(first[0])]!r} at {self._line(0)} (the first row); use fill_na or mask"
                )

    def _fill(self, values: np.ndarray, mean: np.ndarray) -> np.ndarray:
        """Missing cells: the last observed value (``ffill``) or the training mean (``fill_na``, ``mask``)."""
        missing = self.status != OBSERVED
        if self.missing == "ffill":
            return pd.DataFrame(np.where(missing, np.nan, values)).ffill().to_numpy()
        return np.where(missing, mean[None, :], values)

    def _check_scale(self, values: np.ndarray, mean: np.ndarray, std: np.ndarray) -> None:
        bad = np.flatnonzero(~(np.isfinite(mean) & np.isfinite(std)))
        if bad.size:
            j = int(bad[0])
            col = values[:, j]
            r = int(np.nanargmax(np.abs(col)))
            raise LTSFDataError(
                f"{self.series.path}: column {self.columns[j]!r}: the training mean/std overflow float64"
                f" (mean {mean[j]}, std {std[j]}); the largest value is {float(col[r])!r} at {self._line(r)}"
            )

    def _check_scaled(self, scaled: np.ndarray, values: np.ndarray) -> None:
        bad = ~np.isfinite(scaled)
        if bad.any():
            r, j = (int(v) for v in np.argwhere(bad)[0])
            raise LTSFDataError(
                f"{self.series.path}: column {self.columns[j]!r}: the value {float(values[r, j])!r} at"
                f" {self._line(r)} does not fit float32 after scaling (|z| > 3.4e38): a huge or corrupt value"
            )

    def missing_counts(self) -> dict[str, dict[str, int]]:
        """Per split: ``missing`` (empty/NaN cells), ``infinite`` cells and ``inserted_rows`` (time
        steps absent from the file), over the columns in use; the ``missing`` policy replaced them."""
        out = {}
        for stage in STAGES:
            a, b = self.borders[stage]
            st = self.status[a:b] if self.status is not None else np.zeros((0, 0), dtype=np.int8)
            out[stage] = {
                "missing": int((st == MISSING_CELL).sum()),
                "infinite": int((st == INFINITE_CELL).sum()),
                "inserted_rows": int((st == INSERTED_ROW).all(axis=1).sum()) if st.size else 0,
            }
        return out

    def windows(self, stage: str) -> LTSFWindows:
        """The sliding windows of ``stage`` (``train``, ``val`` or ``test``)."""
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        a, b = self.borders[stage]
        t0 = self.num_vars - self.num_targets
        y = self.data[a:b, t0:]
        obs = self.observed
        return LTSFWindows(
            self.data[a:b],
            self.marks[a:b],
            y,
            self.lookback,
            self.horizon,
            obs[a:b] if obs is not None else None,
            obs[a:b, t0:] if obs is not None else None,
        )

    def inverse_transform(self, z: np.ndarray | torch.Tensor, columns: slice | None = None) -> np.ndarray:
        """Undo the scaling of ``z [..., C']`` (``columns`` picks the scaler columns; default: the
        last ``C'`` columns, i.e. the targets for ``MS``)."""
        z = z.detach().cpu().numpy() if isinstance(z, torch.Tensor) else np.asarray(z)
        sl = columns if columns is not None else slice(self.num_vars - z.shape[-1], self.num_vars)
        return z * self.std[sl] + self.mean[sl]

    def model_kwargs(self) -> dict[str, int]:
        """Sizes for the forecasters (:class:`~gatelab.timeseries.models.gateformer.GateformerConfig`
        keys): ``num_vars``, ``lookback``, ``horizon``, ``num_targets``, ``num_marks``."""
        return {
            "num_vars": self.num_vars,
            "lookback": self.lookback,
            "horizon": self.horizon,
            "num_targets": self.num_targets,
            "num_marks": self.num_marks,
        }

    def summary(self) -> dict[str, Any]:
        """Rows, split borders and window counts, for logs and ledger configs."""
        return {
            "dataset": self.name,
            "file": str(self.series.path),
            "source": self.source,
            "rows": self.series.n_rows,
            "columns": len(self.columns),
            "features": self.features,
            "borders": {k: list(v) for k, v in self.borders.items()},
            "windows": {k: len(self.windows(k)) for k in STAGES},
            "calendar": self.calendar,
            "irregular_steps": self.series.irregular_steps,
            "missing": self.missing,
            "inserted_steps": self.series.inserted_steps,
            "missing_counts": self.missing_counts(),
        }


def load_ltsf(
    dataset: str | None = "etth1",
    *,
    data_dir: str | os.PathLike[str] | None = None,
    file: str | os.PathLike[str] | None = None,
    layout: str = "csv",
    freq: str | None = None,
    split: str = "custom",
    target: str | None = None,
    lookback: int | None = None,
    horizon: int | None = None,
    features: str = "M",
    calendar_freq: str | None = None,
    scale: bool = True,
    verify: bool = True,
    allow_embedded: bool = True,
    missing: str = "error",
    steps: str | None = None,
) -> LTSFData:
    """Read and prepare a registered dataset (``dataset``) or any file in the same layout (``file``).

    For a registered dataset, the file, layout, frequency, split rule, target and default
    lookback/horizon come from its registry entry (:data:`~.ltsf_datasets.LTSF_DATASETS`);
    ``target``, ``lookback`` and ``horizon`` may override them. For ``file=...`` give ``layout``,
    ``freq`` (or ``None`` to skip the check), ``split`` and ``target``.

    ``missing`` and ``steps``: the missing-value and time-step policies of :func:`read_ltsf_file`;
    ``steps`` defaults to ``"error"`` for a file and to the registry entry's ``steps`` (``"keep"``:
    the published protocol uses the rows as they are) for a registered dataset.
    """
    if file is not None:
        if dataset not in (None, ""):
            raise ConfigError("give either dataset or file, not both")
        if lookback is None or horizon is None:
            raise ConfigError("file=...: give lookback and horizon")
        path = Path(file)
        tgt = target if target is not None else ("OT" if layout == "csv" else None)
        series = read_ltsf_file(
            path, layout=layout, target=tgt, freq=freq, missing=missing, steps=steps or "error"
        )
        return LTSFData(
            series,
            lookback=lookback,
            horizon=horizon,
            split=split,
            features=features,
            calendar_freq=calendar_freq,
            scale=scale,
            name=path.name,
            source="file",
        )
    if not dataset:
        raise ConfigError("give dataset (a registered name) or file")
    try:
        info = get_ltsf_dataset(dataset)
    except KeyError as e:
        raise ConfigError(str(e.args[0])) from None
    path, source = resolve_ltsf_file(info, data_dir, verify=verify, allow_embedded=allow_embedded)
    series = read_ltsf_file(
        path,
        layout=info.layout,
        target=target or info.target,
        freq=info.freq,
        missing=missing,
        steps=steps or info.steps,
    )
    if info.layout == "csv" and series.values.shape[1] != info.num_vars:
        raise LTSFDataError(
            f"{path}: expected {info.num_vars} variables for {info.title}, found {series.values.shape[1]}"
        )
    return LTSFData(
        series,
        lookback=lookback if lookback is not None else info.lookback,
        horizon=horizon if horizon is not None else info.horizons[0],
        split=info.split,
        features=features,
        calendar_freq=calendar_freq,
        scale=scale,
        name=info.name,
        source=source,
    )
