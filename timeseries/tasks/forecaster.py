"""Forecasting in a few lines: fit on a frame, forecast a frame, save, load, backtest.

::

    from gatelab.timeseries import Forecaster, TFTForecaster, TFTSpec

    spec = TFTSpec(time_idx="time_idx", target="sales", group_ids=("store",), lookback=24, horizon=6,
                   static_categoricals=("store",), known_reals=("time_idx", "price"), observed_reals=("sales",))
    fc = TFTForecaster(max_epochs=20).fit(train_df, spec, date="month", freq="MS")
    forecasts = fc.predict(recent_df)          # store, time_idx, month, q0.1, q0.5, q0.9
    fc.save("my-forecaster")                   # a save_pretrained folder (weights, config, encoders)
    same = Forecaster.load("my-forecaster")    # TFTForecaster or LTSFForecaster, by what the folder holds
    scores = fc.backtest(df, windows=3)        # one row of metrics per rolling origin

Two forecasters share this protocol (:class:`Forecaster`):

* :class:`TFTForecaster`: the Temporal Fusion Transformer (or ``pytorch-forecasting-tft`` /
  ``naive-last-value``) on a long frame of many series described by a
  :class:`~gatelab.timeseries.data.tft.TFTSpec`; quantile forecasts.
* :class:`LTSFForecaster`: Gateformer / iTransformer on one multivariate series (a frame with a
  date column and the variables, :class:`LTSFSpec`); point forecasts per target variable.

``fit`` trains through the harness (:func:`gatelab.core.harness.run_experiment` with the
registered data modules ``tft-frame`` / ``ltsf`` and tasks ``tft`` / ``regression``: the same
Lightning task, checkpoints and logs as ``gatelab train``; the run folder is ``work_dir``) and
then loads the best checkpoint through ``gatelab export``'s path, so the fitted forecaster is
exactly what a saved folder gives back. ``predict`` is :func:`gatelab.timeseries.predict.forecast_frame`
(the same code as ``gatelab predict``), so ids and dates are decoded from the saved encoders, never
from positions. Quantiles never cross: :class:`TFTForecaster` builds the TFT with the monotone
quantile head (``quantile_head="monotone"``) unless told otherwise, and ``predict`` sorts the
quantiles of models without it.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from gatelab.core.config import ConfigError
from gatelab.core.harness.errors import DataError

__all__ = ["Forecaster", "LTSFForecaster", "LTSFSpec", "TFTForecaster"]


@dataclasses.dataclass(frozen=True)
class LTSFSpec:
    """Columns and windows of one multivariate series for :class:`LTSFForecaster`.

    Args:
        target: the target variable (moved last; ``features="MS"`` forecasts only it).
        lookback, horizon: window lengths.
        date: the date column (renamed ``date`` in the LTSF layout).
        freq: its pandas frequency (``"h"``, ``"15min"``, ``"D"`` ...); every step is checked.
        features: ``"M"`` (all variables in and out), ``"S"`` (the target only), ``"MS"``.
        columns: the variables to use (default: every column but ``date``).
    """

    target: str
    lookback: int
    horizon: int
    date: str = "date"
    freq: str = "h"
    features: str = "M"
    columns: tuple[str, ...] | None = None


class Forecaster:
    """The protocol of :class:`TFTForecaster` and :class:`LTSFForecaster` (see the module doc).

    Attributes:
        model: the fitted (or loaded) model, in eval mode, with ``model.preprocessing``.
        result: the harness's :class:`~gatelab.core.harness.experiment.ExperimentResult` of the last ``fit``.
    """

    kind: str = ""

    def __init__(self, model: nn.Module | None = None) -> None:
        self.model = model
        self.result: Any = None

    # ------------------------------------------------------------------ shared
    def _fitted(self) -> nn.Module:
        if self.model is None:
            raise ConfigError(
                f"{type(self).__name__}: not fitted; call fit(df, spec) or Forecaster.load(dir)"
            )
        return self.model

    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        """Forecasts past the end of ``df`` (:func:`gatelab.timeseries.predict.forecast_frame`)."""
        from gatelab.timeseries.predict import forecast_frame

        return forecast_frame(self._fitted(), df, source="predict(df)")

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write a :func:`gatelab.save_pretrained` folder: weights, config and ``preprocessing.json``
        (encoders, scalers, roles, dates); ``gatelab predict --model DIR`` and :meth:`load` read it."""
        from gatelab.core.pretrained import save_pretrained

        return save_pretrained(self._fitted(), directory)

    @classmethod
    def load(cls, directory: str | os.PathLike[str], *, device: str = "cpu") -> Forecaster:
        """The forecaster saved in ``directory`` (a :class:`TFTForecaster` or an
        :class:`LTSFForecaster`, by its preprocessing kind)."""
        from gatelab.core.pretrained import from_pretrained

        model = from_pretrained(directory, device=device)
        prep = getattr(model, "preprocessing", None)
        kind = prep.get("kind") if isinstance(prep, Mapping) else None
        by_kind: dict[str, type[Forecaster]] = {"tft": TFTForecaster, "ltsf": LTSFForecaster}
        if kind not in by_kind:
            raise ConfigError(
                f"{directory}: no time-series preprocessing.json (kind {kind!r}); a Forecaster needs the "
                "encoders and scalers saved with the model"
            )
        target = by_kind[kind]
        if cls is not Forecaster and not issubclass(target, cls):
            raise ConfigError(f"{directory}: holds a {target.__name__}, not a {cls.__name__}")
        out = target.__new__(target)
        Forecaster.__init__(out, model)
        return out

    def _train(self, experiment: dict[str, Any]) -> nn.Module:
        """Run ``experiment`` with the harness and load its best (else last) checkpoint as a
        saved model would be (``gatelab export``)."""
        from gatelab.core.harness import run_experiment
        from gatelab.core.pretrained import export_checkpoint, from_pretrained, save_pretrained

        result = run_experiment(experiment)
        ckpt = result.best_checkpoint or result.last_checkpoint
        if ckpt:
            folder = export_checkpoint(ckpt, Path(result.run_dir) / "model")
        else:  # nothing trained (naive-last-value, max_epochs 0): the model as built, with its data's preprocessing
            folder = save_pretrained(
                result.task.model,
                Path(result.run_dir) / "model",
                preprocessing=result.datamodule.preprocessing(),
            )
        self.result = result
        self.model = from_pretrained(folder)
        return self.model

    def _backtest_windows(self, n: int, windows: int, step: int | None, horizon: int) -> list[int]:
        if not isinstance(windows, int) or windows < 1:
            raise ConfigError(f"backtest: windows={windows!r}: expected an integer >= 1")
        step = horizon if step is None else int(step)
        if step < 1:
            raise ConfigError(f"backtest: step={step}: expected an integer >= 1")
        # the last origin leaves exactly one horizon of actuals after it
        return [n - horizon - (windows - 1 - k) * step for k in range(windows)]


def _work_dir(work_dir: str | os.PathLike[str] | None) -> Path:
    return Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="gatelab-forecaster-"))


def _trainer(max_epochs: int, extra: Mapping[str, Any]) -> dict[str, Any]:
    base = {
        "max_epochs": max_epochs,
        "accelerator": "cpu",
        "loggers": ["csv"],
        "progress_bar": False,
        "checkpoint": {
            "enabled": True,
            "monitor": "val/loss",
            "mode": "min",
            "save_top_k": 1,
            "save_last": True,
        },
    }
    base.update(extra)
    return base


# --------------------------------------------------------------------------- TFT


class TFTForecaster(Forecaster):
    """Quantile forecasts of many series with the Temporal Fusion Transformer.

    Args:
        model: registry name: ``"tft"`` (default), ``"pytorch-forecasting-tft"`` or ``"naive-last-value"``.
        quantiles: the forecast quantiles (``q0.1``, ``q0.5`` ... columns).
        quantile_head: the TFT's head; ``"monotone"`` (default here) makes quantiles non-crossing
            by construction (:class:`~gatelab.timeseries.models.tft.TFTConfig`).
        model_kwargs: further model config keys (``d_model``, ``num_heads``, ``dropout``, ``preset`` ...).
        max_epochs, lr, batch_size, seed: training (Adam; early stopping is not used).
        trainer: further ``trainer`` keys of the experiment (``limit_train_batches`` ...).
        work_dir: where runs, checkpoints and the exported model go (default: a new temp folder).
    """

    kind = "tft"

    def __init__(
        self,
        model: str = "tft",
        *,
        quantiles: Sequence[float] = (0.1, 0.5, 0.9),
        quantile_head: str = "monotone",
        model_kwargs: Mapping[str, Any] | None = None,
        max_epochs: int = 10,
        lr: float = 0.01,
        batch_size: int = 64,
        seed: int = 0,
        trainer: Mapping[str, Any] | None = None,
        work_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(None)
        self.model_name = model
        kwargs = dict(model_kwargs or {})
        if model == "tft":
            kwargs.setdefault("quantiles", [float(q) for q in quantiles])
            kwargs.setdefault("quantile_head", quantile_head)
        elif model == "pytorch-forecasting-tft":
            kwargs.setdefault("quantiles", [float(q) for q in quantiles])
        self.model_kwargs = kwargs
        self.max_epochs, self.lr, self.batch_size, self.seed = max_epochs, lr, batch_size, seed
        self.trainer = dict(trainer or {})
        self.work_dir = work_dir

    def fit(
        self, df: pd.DataFrame, spec: Any, *, date: str | None = None, freq: str | None = None
    ) -> TFTForecaster:
        """Train on ``df`` (a long frame with the columns of ``spec``, a
        :class:`~gatelab.timeseries.data.tft.TFTSpec`): the last ``horizon`` steps of every series
        validate, the rest trains. ``date`` / ``freq``: the date column and its pandas frequency,
        so forecasts carry dates (if ``spec.time_idx`` is not a column, it is made from the dates:
        steps of ``freq`` from the earliest date). Returns ``self``."""
        from gatelab.timeseries.data.preprocessing import time_index_of

        frame = df.copy()
        if date is not None:
            if freq is None:
                raise ConfigError("fit: date needs freq (a pandas frequency, e.g. 'MS', 'h', 'D')")
            if spec.time_idx not in frame.columns:
                dates = pd.DatetimeIndex(pd.to_datetime(frame[date]))
                idx = time_index_of(dates, str(dates.min()), freq)
                if (idx < 0).any():
                    r = int(np.flatnonzero(idx < 0)[0])
                    raise DataError(f"fit: {date}={dates[r]} (row {r}) is not on a {freq!r} grid")
                frame[spec.time_idx] = idx
        work = _work_dir(self.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        path = work / "train.parquet"
        for c in spec.categorical_columns:
            frame[c] = frame[c].astype(str)
        frame.to_parquet(path, index=False)
        spec_dict = {
            f.name: (
                list(v)
                if isinstance(v, tuple)
                else {k: list(m) for k, m in v.items()}
                if isinstance(v, Mapping)
                else v
            )
            for f in dataclasses.fields(spec)
            for v in [getattr(spec, f.name)]
        }
        data_kwargs: dict[str, Any] = {"file": str(path), "spec": spec_dict, "batch_size": self.batch_size}
        if date is not None:
            data_kwargs.update(date=date, freq=freq)
        trains = self.model_name != "naive-last-value"
        experiment = {
            "name": "forecaster",
            "seed": self.seed,
            "output_dir": str(work / "runs"),
            "test": False,
            "model": {"name": self.model_name, "kwargs": self.model_kwargs},
            "data": {"name": "tft-frame", "kwargs": data_kwargs},
            "task": {"name": "tft", "optimizer": "adam", "lr": self.lr, "kwargs": {"qrisk": self._qrisk()}},
            "trainer": _trainer(self.max_epochs if trains else 0, self.trainer),
        }
        self._train(experiment)
        return self

    def _qrisk(self) -> list[float]:
        """The paper's q-risk levels (0.5, 0.9) the model forecasts (logged by the task)."""
        qs = (
            [0.5]
            if self.model_name == "naive-last-value"
            else [float(q) for q in self.model_kwargs.get("quantiles", [])]
        )
        return [q for q in (0.5, 0.9) if q in qs]

    def backtest(self, df: pd.DataFrame, windows: int = 3, *, step: int | None = None) -> pd.DataFrame:
        """Rolling-origin evaluation on ``df`` (history and actuals, all with targets).

        With ``T`` the last time index and ``H`` the horizon, origin ``k`` (``k = 1..windows``)
        is ``T - H - (windows - k) * step`` (``step`` default ``H``): the rows up to the origin
        are the history, the next ``H`` rows (their known inputs, target hidden) the future, and
        their targets the actuals. Returns one row per window: ``window``, ``origin`` (time
        index), ``n`` (forecast cells), ``mae`` and ``rmse`` of the median (the quantile nearest
        0.5), ``pinball`` (mean quantile loss over the quantiles), ``coverage`` (share of actuals
        inside the outermost quantiles; ``NaN`` for one quantile).
        """
        from gatelab.timeseries.data.preprocessing import tft_spec
        from gatelab.timeseries.predict import _tft_time_index, quantile_column

        model = self._fitted()
        prep = model.preprocessing
        spec = tft_spec(prep)
        frame = _tft_time_index(df.reset_index(drop=True), prep["time"], "backtest(df)")
        keys, t, H = list(spec.group_ids), spec.time_idx, spec.horizon
        missing = int(frame[spec.target].isna().sum())
        if missing:
            raise DataError(f"backtest: {missing} empty {spec.target!r} value(s); every row needs its actual")
        T = int(frame[t].max())
        quantiles = [float(q) for q in model.quantiles]
        median = quantile_column(min(quantiles, key=lambda q: abs(q - 0.5)))
        rows = []
        for k, origin in enumerate(self._backtest_windows(T + 1, windows, step, H)):
            cut = origin - 1  # the last history step
            window = frame[frame[t] <= cut + H].copy()
            actual = window.loc[window[t] > cut, [*keys, t, spec.target]]
            window.loc[window[t] > cut, spec.target] = np.nan
            fc = self.predict(window)
            for c in keys:
                fc[c] = fc[c].astype(str)
                actual[c] = actual[c].astype(str)
            merged = fc.merge(actual, on=[*keys, t], how="inner", validate="one_to_one")
            if len(merged) != len(fc):
                raise DataError(
                    f"backtest: window {k + 1}: {len(fc) - len(merged)} forecast(s) have no actual"
                )
            y = merged[spec.target].to_numpy(dtype=np.float64)
            err = merged[median].to_numpy(dtype=np.float64) - y
            pin = []
            for q in quantiles:
                d = y - merged[quantile_column(q)].to_numpy(dtype=np.float64)
                pin.append(np.maximum(q * d, (q - 1) * d).mean())
            lo, hi = quantile_column(quantiles[0]), quantile_column(quantiles[-1])
            inside = (merged[lo] <= y) & (y <= merged[hi])
            rows.append(
                {
                    "window": k + 1,
                    "origin": cut,
                    "n": len(merged),
                    "mae": float(np.abs(err).mean()),
                    "rmse": float(np.sqrt((err**2).mean())),
                    "pinball": float(np.mean(pin)),
                    "coverage": float(inside.mean()) if len(quantiles) > 1 else float("nan"),
                }
            )
        return pd.DataFrame(rows)


# --------------------------------------------------------------------------- LTSF


class LTSFForecaster(Forecaster):
    """Point forecasts of one multivariate series with Gateformer or iTransformer.

    Args:
        model: registry name: ``"gateformer"`` (default) or ``"itransformer"``.
        model_kwargs: model config keys (``d_model``, ``num_layers``, ``preset`` ...); the sizes
            (``num_vars``, ``lookback``, ``horizon`` ...) come from the data.
        max_epochs, lr, batch_size, seed, trainer, work_dir: as :class:`TFTForecaster`.

    ``fit`` uses the LTSF convention: the first 70 % of the rows train, the next 10 % validate
    (the scaler's mean/std come from the training rows only).
    """

    kind = "ltsf"

    def __init__(
        self,
        model: str = "gateformer",
        *,
        model_kwargs: Mapping[str, Any] | None = None,
        max_epochs: int = 10,
        lr: float = 1e-3,
        batch_size: int = 32,
        seed: int = 0,
        trainer: Mapping[str, Any] | None = None,
        work_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(None)
        self.model_name = model
        self.model_kwargs = dict(model_kwargs or {})
        self.max_epochs, self.lr, self.batch_size, self.seed = max_epochs, lr, batch_size, seed
        self.trainer = dict(trainer or {})
        self.work_dir = work_dir

    def fit(self, df: pd.DataFrame, spec: LTSFSpec) -> LTSFForecaster:
        """Train on ``df`` (rows in time order; ``spec.date`` and the variables). Returns ``self``."""
        cols = list(spec.columns) if spec.columns is not None else [c for c in df.columns if c != spec.date]
        missing = [c for c in [spec.date, *cols, spec.target] if c not in df.columns]
        if missing:
            raise DataError(f"fit: missing column(s) {missing}; the frame has {list(df.columns)}")
        frame = df[[spec.date, *dict.fromkeys(cols)]].rename(columns={spec.date: "date"})
        work = _work_dir(self.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        path = work / "train.csv"
        frame.to_csv(path, index=False)
        experiment = {
            "name": "forecaster",
            "seed": self.seed,
            "output_dir": str(work / "runs"),
            "test": False,
            "model": {"name": self.model_name, "kwargs": self.model_kwargs},
            "data": {
                "name": "ltsf",
                "kwargs": {
                    "file": str(path),
                    "layout": "csv",
                    "freq": spec.freq,
                    "split": "custom",
                    "target": spec.target,
                    "lookback": spec.lookback,
                    "horizon": spec.horizon,
                    "features": spec.features,
                    "batch_size": self.batch_size,
                },
            },
            "task": {"name": "regression", "optimizer": "adam", "lr": self.lr},
            "trainer": _trainer(self.max_epochs, self.trainer),
        }
        self._train(experiment)
        return self

    def backtest(self, df: pd.DataFrame, windows: int = 3, *, step: int | None = None) -> pd.DataFrame:
        """Rolling-origin evaluation on ``df`` (rows in time order). Origin ``k`` is row
        ``n - H - (windows - k) * step``: the ``lookback`` rows before it are the history, the
        next ``H`` rows the actuals. Returns one row per window: ``window``, ``origin`` (the
        first forecast date), ``n`` (cells), ``mae``, ``rmse`` (data units) and ``mae_scaled``,
        ``mse_scaled`` (on the training-scaled values, the LTSF papers' metrics)."""
        model = self._fitted()
        prep = model.preprocessing
        H, L = int(prep["horizon"]), int(prep["lookback"])
        frame = df.reset_index(drop=True)
        n_out = int(prep["num_targets"])
        targets = list(prep["columns"])[-n_out:]
        std = np.asarray(prep["std"])[-n_out:]
        d_col = prep.get("date") or "date"
        rows = []
        for k, origin in enumerate(self._backtest_windows(len(frame), windows, step, H)):
            if origin < L:
                raise DataError(
                    f"backtest: window {k + 1} starts at row {origin}, before lookback={L} rows of history"
                )
            fc = self.predict(frame.iloc[:origin])
            actual = frame.iloc[origin : origin + H]
            y = actual[targets].to_numpy(dtype=np.float64)
            err = fc[targets].to_numpy(dtype=np.float64) - y
            rows.append(
                {
                    "window": k + 1,
                    "origin": str(actual[d_col].iloc[0]) if d_col in actual.columns else origin,
                    "n": int(err.size),
                    "mae": float(np.abs(err).mean()),
                    "rmse": float(np.sqrt((err**2).mean())),
                    "mae_scaled": float(np.abs(err / std).mean()),
                    "mse_scaled": float(((err / std) ** 2).mean()),
                }
            )
        return pd.DataFrame(rows)
