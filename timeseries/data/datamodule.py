"""The Lightning data modules of gatelab.timeseries: ``ltsf`` (Gateformer / iTransformer) and ``tft-*``.

``ltsf``: :class:`LTSFDataModule` batches the windows of :class:`gatelab.timeseries.data.ltsf.LTSFData`;
:func:`ltsf_datamodule` is the factory registered with the harness.

Temporal Fusion Transformer (registered ``tft-*``):

Each wraps pytorch-forecasting ``TimeSeriesDataSet`` splits built by
:mod:`gatelab.timeseries.data.tft` and serves their batches ``(x, (target, weight))``:
through :func:`gatelab.timeseries.data.tft_loader.window_dataloader` (``fast=True``, the default:
the same batches as the dataset's own ``to_dataloader``, built vectorised) or the dataset's own
``to_dataloader`` (``fast=False``, or a dataset the fast path does not support). ``model_kwargs()`` sizes the model from the training split
(:func:`gatelab.timeseries.models.tft.config_from_dataset`), so ``gatelab train`` needs only
the model's hyperparameters.

* ``tft-stallion``: pytorch-forecasting's tutorial: encoder 24 (min 12), horizon 6; training on
  all but the last 6 months, validation = the last 6 months of every series (``predict=True``);
  the test split *is* the validation split (the tutorial reports its validation MAE).
* ``tft-electricity``: the paper's protocol: hourly, encoder 168, horizon 24, train
  ``days_from_start < 1315``, validation ``[1308, 1339)``, test ``>= 1332`` (7 days of history
  before each boundary), per-customer z-scored target, every window of the validation and test
  periods (stride 1).
* ``tft-traffic``: as electricity, on ``sensor_day`` with boundaries 151 and 166, global z-scores.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from gatelab.core.config import ConfigError, NonNegativeInt, PositiveInt
from gatelab.core.harness.data import dataset_file, locate

from . import tft as td
from .ltsf import LTSFData, load_ltsf

__all__ = [
    "LTSFDataModule",
    "TFTDataModule",
    "electricity_datamodule",
    "frame_datamodule",
    "ltsf_datamodule",
    "stallion_datamodule",
    "traffic_datamodule",
]

# --------------------------------------------------------------------------- LTSF


class LTSFDataModule(L.LightningDataModule):
    """Batches of :class:`LTSFWindows` for training (shuffled), validation and test (in order).

    Batches are dicts ``{"x": [B, L, C_in], "x_mark": [B, L, F], "target": [B, H, C_out]}``: the
    harness passes ``x`` and ``x_mark`` to the model and compares its output with ``target``.
    ``eval_batch_size`` only changes speed (metrics are averaged over all windows).
    ``drop_last`` defaults to ``False`` as in the official Gateformer loader. ``val_stride = k``
    validates on every ``k``-th window only (a speed knob for early stopping on large datasets:
    neighbouring windows overlap in all but one row); the test split always uses every window.

    ``num_train_batches = S`` makes every training epoch exactly ``S`` batches (optimizer steps)
    of ``batch_size`` windows, whatever the number of training windows ``n``: the epoch draws
    ``S * batch_size`` windows as successive random permutations of all ``n`` (a window repeats
    within the epoch only when ``S * batch_size > n``; with ``S * batch_size <= n`` the draw equals
    the first ``S`` batches of a plain shuffled pass, i.e. ``limit_train_batches=S``). Equal
    optimizer steps per epoch for models with different batch sizes (the ``gateformer`` table's
    ``equal steps`` budget); single-process training only. ``None``: one pass over all windows.

    DDP: ``batch_size`` is per rank; Lightning gives every loader a ``DistributedSampler`` (training
    shuffled by seed and epoch), which pads each split to a multiple of the number of ranks with
    windows from the start of its order (equal batch counts; ``drop_last`` drops the last
    incomplete batch instead). See "Distributed training" in ``docs/harness.md``.
    """

    def __init__(
        self,
        data: LTSFData,
        *,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        drop_last: bool = False,
        val_stride: int = 1,
        num_train_batches: int | None = None,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if val_stride < 1:
            raise ConfigError(f"val_stride must be >= 1, got {val_stride}")
        if num_train_batches is not None and (isinstance(num_train_batches, bool) or num_train_batches < 1):
            raise ConfigError(f"num_train_batches must be >= 1 (or None), got {num_train_batches!r}")
        self.val_stride = val_stride
        self.num_train_batches = num_train_batches
        self.data = data
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.drop_last = drop_last

    def model_kwargs(self) -> dict[str, int]:
        return self.data.model_kwargs()

    def preprocessing(self) -> dict[str, Any]:
        """What the model needs to forecast new data (``preprocessing.json``, kind ``"ltsf"``):
        column names, the training mean/std, lookback, horizon, date column and frequency
        (:func:`gatelab.timeseries.data.preprocessing.ltsf_preprocessing`)."""
        from .preprocessing import ltsf_preprocessing

        return ltsf_preprocessing(self.data)

    def _loader(
        self, stage: str, batch_size: int, shuffle: bool, drop_last: bool, stride: int = 1
    ) -> DataLoader:
        ds: Dataset = self.data.windows(stage)
        if stride > 1:
            ds = torch.utils.data.Subset(ds, range(0, len(ds), stride))
        return DataLoader(
            ds,
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        if self.num_train_batches is None:
            return self._loader("train", self.batch_size, True, self.drop_last)
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.world_size > 1:
            raise ConfigError(
                f"num_train_batches={self.num_train_batches} is single-process only; this run has "
                f"{trainer.world_size} ranks (use limit_train_batches under DDP)"
            )
        ds = self.data.windows("train")
        # successive permutations of all windows, S * batch_size of them: exactly S full batches
        sampler = torch.utils.data.RandomSampler(ds, num_samples=self.num_train_batches * self.batch_size)
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=False,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size, False, False, self.val_stride)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, False, False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()


def ltsf_datamodule(
    data_dir: str | os.PathLike[str] | None = None,
    dataset: str | None = None,
    *,
    file: str | None = None,
    layout: str = "csv",
    freq: str | None = None,
    split: str = "custom",
    target: str | None = None,
    lookback: PositiveInt | None = None,
    horizon: PositiveInt | None = None,
    features: str = "M",
    calendar_freq: str | None = None,
    scale: bool = True,
    batch_size: PositiveInt = 8,
    eval_batch_size: PositiveInt | None = None,
    num_workers: NonNegativeInt = 0,
    drop_last: bool = False,
    val_stride: PositiveInt = 1,
    num_train_batches: PositiveInt | None = None,
    verify: bool = True,
    allow_embedded: bool = True,
    missing: Literal["error", "ffill", "fill_na", "mask"] = "error",
    steps: Literal["error", "keep", "insert"] | None = None,
) -> LTSFDataModule:
    """Data module ``ltsf`` for experiment configs (``data: {name: ltsf, kwargs: {...}}``).

    The keyword arguments are those of :func:`load_ltsf` and :class:`LTSFDataModule`; a relative
    ``file`` is looked up under the data directory. ``missing: mask`` adds ``observed`` (the
    model's input mask) and ``target_observed`` (the loss mask, used by the ``regression`` task)
    to every batch.
    """
    if (dataset is None) == (file is None):
        raise ConfigError("data module ltsf: give exactly one of dataset (a registered name) and file")
    if file is not None and not Path(file).is_absolute() and data_dir is not None:
        cand = Path(data_dir) / file
        file = str(cand) if cand.exists() else file
    data = load_ltsf(
        dataset,
        data_dir=data_dir,
        file=file,
        layout=layout,
        freq=freq,
        split=split,
        target=target,
        lookback=lookback,
        horizon=horizon,
        features=features,
        calendar_freq=calendar_freq,
        scale=scale,
        verify=verify,
        allow_embedded=allow_embedded,
        missing=missing,
        steps=steps,
    )
    return LTSFDataModule(
        data,
        batch_size=batch_size,
        eval_batch_size=eval_batch_size,
        num_workers=num_workers,
        drop_last=drop_last,
        val_stride=val_stride,
        num_train_batches=num_train_batches,
    )


# --------------------------------------------------------------------------- TFT


class TFTDataModule(L.LightningDataModule):
    """Dataloaders of fitted ``TimeSeriesDataSet`` splits; ``test`` defaults to ``validation``.

    DDP: ``batch_size`` is per rank; Lightning puts a ``DistributedSampler`` inside the batch
    sampler, padding each split to a multiple of the number of ranks (equal batch counts; training
    drops the last incomplete batch). See "Distributed training" in ``docs/harness.md``.
    """

    def __init__(
        self,
        training: Any,
        validation: Any,
        test: Any | None = None,
        *,
        batch_size: int = 128,
        val_batch_size: int | None = None,
        num_workers: int = 0,
        fast: bool = True,
        missing_counts: dict[str, dict[str, int]] | None = None,
        time: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        #: per split, what the missing-value policy inserted and filled (:func:`.tft.missing_counts`)
        self.missing_counts = dict(missing_counts or {})
        self.fast = fast
        #: ``{"date", "freq", "origin"}`` of the frame's dates (``None``: integer time index only)
        self.time = dict(time) if time else None
        self.training = training
        self.validation = validation
        self.test = test if test is not None else validation
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.num_workers = num_workers

    def _loader(self, dataset: Any, train: bool) -> Any:
        bs = self.batch_size if train else self.val_batch_size
        if self.fast:
            from .tft_loader import window_dataloader

            try:
                return window_dataloader(dataset, train=train, batch_size=bs, num_workers=self.num_workers)
            except NotImplementedError as e:
                import warnings

                warnings.warn(f"{e}; using the dataset's own (slower) dataloader", stacklevel=2)
        return dataset.to_dataloader(train=train, batch_size=bs, num_workers=self.num_workers)

    def train_dataloader(self) -> Any:
        return self._loader(self.training, True)

    def val_dataloader(self) -> Any:
        return self._loader(self.validation, False)

    def test_dataloader(self) -> Any:
        return self._loader(self.test, False)

    def model_kwargs(self) -> dict[str, Any]:
        from gatelab.timeseries.models.tft import config_from_dataset

        return config_from_dataset(self.training)

    def preprocessing(self) -> dict[str, Any]:
        """What the model needs to forecast new data (``preprocessing.json``, kind ``"tft"``):
        the training split's fitted encoders, scalers and target normaliser, the column roles,
        the window lengths and the time index's dates
        (:func:`gatelab.timeseries.data.preprocessing.tft_preprocessing`)."""
        from .preprocessing import tft_preprocessing

        return tft_preprocessing(self.training, **(self.time or {}))


def _report_missing(name: str, missing: str, counts: dict[str, dict[str, int]]) -> None:
    if missing != "error":
        import logging

        logging.getLogger("gatelab.timeseries").warning("%s: missing=%r applied: %s", name, missing, counts)


def stallion_datamodule(
    data_dir: Path,
    batch_size: PositiveInt = 128,
    val_batch_size: PositiveInt = 1280,
    num_workers: NonNegativeInt = 0,
    fast: bool = True,
    missing: Literal["error", "ffill", "fill_na", "mask"] = "error",
) -> TFTDataModule:
    """The stallion tutorial's data (``../shared/data/stallion/stallion.parquet``).

    ``missing``: the missing-value policy (``error`` | ``ffill`` | ``fill_na`` | ``mask``, see
    :func:`gatelab.timeseries.data.tft.apply_missing_policy`) applied to the whole frame before the
    splits; what it inserted and filled is logged and kept in ``missing_counts`` per split.
    """
    folder = locate(td.STALLION, data_dir)
    frame = td.stallion_frame(td.read_stallion(folder))
    spec = td.STALLION_SPEC
    if missing != "error":  # "error": the datasets' own frame checks refuse any gap or NaN
        frame, spec = td.apply_missing_policy(frame, spec, missing, name="stallion")
    training, validation = td.stallion_datasets(frame, spec)
    cutoff = int(frame[spec.time_idx].max()) - spec.horizon
    counts = {
        "train": td.missing_counts(frame[frame[spec.time_idx] <= cutoff]),
        "val": td.missing_counts(frame),
    }
    _report_missing("stallion", missing, counts)
    return TFTDataModule(
        training,
        validation,
        time=_time_reference(frame, td.STALLION_SPEC.time_idx, "date", "MS"),
        batch_size=batch_size,
        val_batch_size=val_batch_size,
        num_workers=num_workers,
        fast=fast,
        missing_counts=counts,
    )


def _time_reference(frame: Any, time_idx: str, date: str, freq: str) -> dict[str, Any]:
    """``{"date", "freq", "origin"}`` of ``frame`` (the origin checked on every row)."""
    from .preprocessing import date_origin

    return {"date": date, "freq": freq, "origin": date_origin(frame, time_idx, date, freq)}


def _paper_splits(
    frame: Any, spec: td.TFTSpec, split: dict[str, Any], missing: str = "error", name: str = "frame"
) -> tuple[Any, Any, Any, dict[str, dict[str, int]]]:
    if missing != "error":  # "error": build_dataset / dataset_from check every split
        frame, spec = td.apply_missing_policy(frame, spec, missing, name=name)
    train_f, valid_f, test_f = td.split_frame(frame, **split)
    # the official code drops series shorter than one window in each split
    window = spec.lookback + spec.horizon
    parts = []
    for f in (train_f, valid_f, test_f):
        n = f.groupby(list(spec.group_ids))[spec.time_idx].transform("size")
        parts.append(f[n >= window])
    train_f, valid_f, test_f = parts
    training = td.build_dataset(train_f, spec, name="training split")
    validation = td.dataset_from(training, valid_f, spec, name="validation split", stop_randomization=True)
    test = td.dataset_from(training, test_f, spec, name="test split", stop_randomization=True)
    counts = {k: td.missing_counts(f) for k, f in zip(("train", "val", "test"), parts, strict=True)}
    _report_missing(name, missing, counts)
    return training, validation, test, counts


def electricity_datamodule(
    data_dir: Path,
    batch_size: PositiveInt = 64,
    val_batch_size: PositiveInt = 512,
    num_workers: NonNegativeInt = 0,
    fast: bool = True,
    missing: Literal["error", "ffill", "fill_na", "mask"] = "error",
) -> TFTDataModule:
    """UCI electricity with the TFT paper's protocol (``<data dir>/electricity/LD2011_2014.txt``).

    ``missing``: the missing-value policy (``error`` | ``ffill`` | ``fill_na`` | ``mask``, see
    :func:`gatelab.timeseries.data.tft.apply_missing_policy`) applied to the whole frame before the
    splits; what it inserted and filled is logged and kept in ``missing_counts`` per split.
    """
    locate(td.ELECTRICITY, data_dir)
    raw = td.read_electricity(dataset_file(td.ELECTRICITY, "LD2011_2014.txt", data_dir))
    frame = td.electricity_frame(raw)
    training, validation, test, counts = _paper_splits(frame, td.ELECTRICITY_SPEC, td.ELECTRICITY_SPLIT, missing, "electricity")
    return TFTDataModule(
        training,
        validation,
        test,
        time=_time_reference(frame, td.ELECTRICITY_SPEC.time_idx, "date", "h"),
        batch_size=batch_size,
        val_batch_size=val_batch_size,
        num_workers=num_workers,
        fast=fast,
        missing_counts=counts,
    )


def traffic_datamodule(
    data_dir: Path,
    batch_size: PositiveInt = 128,
    val_batch_size: PositiveInt = 512,
    num_workers: NonNegativeInt = 0,
    fast: bool = True,
    missing: Literal["error", "ffill", "fill_na", "mask"] = "error",
) -> TFTDataModule:
    """UCI PEMS-SF with the TFT paper's protocol (``<data dir>/PEMS-SF/``).

    ``missing``: the missing-value policy (``error`` | ``ffill`` | ``fill_na`` | ``mask``, see
    :func:`gatelab.timeseries.data.tft.apply_missing_policy`) applied to the whole frame before the
    splits; what it inserted and filled is logged and kept in ``missing_counts`` per split.
    """
    folder = locate(td.TRAFFIC, data_dir)
    frame = td.traffic_frame(td.read_pems_sf(folder))
    training, validation, test, counts = _paper_splits(frame, td.TRAFFIC_SPEC, td.TRAFFIC_SPLIT, missing, "traffic")
    return TFTDataModule(
        training,
        validation,
        test,
        batch_size=batch_size,
        val_batch_size=val_batch_size,
        num_workers=num_workers,
        fast=fast,
        missing_counts=counts,
    )


def frame_datamodule(
    data_dir: Path | None = None,
    *,
    file: str,
    spec: dict[str, Any],
    date: str | None = None,
    freq: str | None = None,
    batch_size: PositiveInt = 64,
    val_batch_size: PositiveInt | None = None,
    num_workers: NonNegativeInt = 0,
    fast: bool = True,
    missing: Literal["error", "ffill", "fill_na", "mask"] = "error",
) -> TFTDataModule:
    """Data module ``tft-frame``: any long frame (a parquet or CSV ``file``) with the column roles
    of ``spec`` (the fields of :class:`~gatelab.timeseries.data.tft.TFTSpec` as plain values).

    Split as pytorch-forecasting's stallion tutorial (:func:`~gatelab.timeseries.data.tft.stallion_datasets`):
    training on ``time_idx <= max - horizon``, validation (= test) on the last ``horizon`` steps
    of every series. ``date`` / ``freq`` name the date column and its pandas frequency, so the
    saved preprocessing maps the time index to dates. A relative ``file`` is looked up under
    the data directory. :class:`gatelab.timeseries.Forecaster` trains through this module.
    ``missing``: the missing-value policy, as for ``tft-stallion``.
    """
    import pandas as pd

    path = Path(file)
    if not path.is_absolute() and data_dir is not None and (Path(data_dir) / path).exists():
        path = Path(data_dir) / path
    if not path.is_file():
        raise ConfigError(f"data module tft-frame: file {str(path)!r} not found")
    try:
        frame = pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path)
    except Exception as e:  # pandas/pyarrow raise many types for malformed files
        raise ConfigError(f"data module tft-frame: {path}: cannot read ({type(e).__name__}: {e})") from None
    try:
        spec_obj = td.TFTSpec(
            **{
                k: (
                    {g: tuple(m) for g, m in v.items()}
                    if isinstance(v, dict)
                    else tuple(v)
                    if isinstance(v, list)
                    else v
                )
                for k, v in spec.items()
            }
        )
    except (TypeError, ValueError) as e:
        raise ConfigError(f"data module tft-frame: spec: {e}") from None
    for c in spec_obj.categorical_columns:
        frame[c] = frame[c].astype(str)
    time = None
    if date is not None:
        if freq is None:
            raise ConfigError(
                "data module tft-frame: date needs freq (a pandas frequency, e.g. 'MS', 'h', 'D')"
            )
        time = _time_reference(frame, spec_obj.time_idx, date, freq)
    if missing != "error":  # "error": the datasets' own frame checks refuse any gap or NaN
        frame, spec_obj = td.apply_missing_policy(frame, spec_obj, missing, name=path.name)
    training, validation = td.stallion_datasets(frame, spec_obj)
    cutoff = int(frame[spec_obj.time_idx].max()) - spec_obj.horizon
    counts = {
        "train": td.missing_counts(frame[frame[spec_obj.time_idx] <= cutoff]),
        "val": td.missing_counts(frame),
    }
    _report_missing(path.name, missing, counts)
    return TFTDataModule(
        training,
        validation,
        batch_size=batch_size,
        val_batch_size=val_batch_size or batch_size,
        num_workers=num_workers,
        fast=fast,
        time=time,
        missing_counts=counts,
    )
