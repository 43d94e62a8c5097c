"""Lightning data modules for the Temporal Fusion Transformer (registered ``tft-*``).

Each wraps pytorch-forecasting ``TimeSeriesDataSet`` splits built by
:mod:`gatelab.timeseries.data.tft_data` and serves their batches ``(x, (target, weight))``:
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

from pathlib import Path
from typing import Any

import lightning as L

from gatelab.core.config import NonNegativeInt, PositiveInt
from gatelab.core.harness.data import dataset_file, locate

from . import tft_data as td

__all__ = ["TFTDataModule", "electricity_datamodule", "stallion_datamodule", "traffic_datamodule"]


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
    ) -> None:
        super().__init__()
        self.fast = fast
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


def stallion_datamodule(
    data_dir: Path,
    batch_size: PositiveInt = 128,
    val_batch_size: PositiveInt = 1280,
    num_workers: NonNegativeInt = 0,
    fast: bool = True,
) -> TFTDataModule:
    """The stallion tutorial's data (``../shared/data/stallion/stallion.parquet``)."""
    folder = locate(td.STALLION, data_dir)
    frame = td.stallion_frame(td.read_stallion(folder))
    training, validation = td.stallion_datasets(frame)
    return TFTDataModule(
        training,
        validation,
        batch_size=batch_size,
        val_batch_size=val_batch_size,
        num_workers=num_workers,
        fast=fast,
    )


def _paper_splits(frame: Any, spec: td.TFTSpec, split: dict[str, Any]) -> tuple[Any, Any, Any]:
    train_f, valid_f, test_f = td.split_frame(frame, **split)
    # the official code drops series shorter than one window in each split
    window = spec.max_encoder_length + spec.max_prediction_length
    parts = []
    for f in (train_f, valid_f, test_f):
        n = f.groupby(list(spec.group_ids))[spec.time_idx].transform("size")
        parts.append(f[n >= window])
    train_f, valid_f, test_f = parts
    training = td.build_dataset(train_f, spec, name="training split")
    validation = td.dataset_from(training, valid_f, spec, name="validation split", stop_randomization=True)
    test = td.dataset_from(training, test_f, spec, name="test split", stop_randomization=True)
    return training, validation, test


def electricity_datamodule(
    data_dir: Path,
    batch_size: PositiveInt = 64,
    val_batch_size: PositiveInt = 512,
    num_workers: NonNegativeInt = 0,
    fast: bool = True,
) -> TFTDataModule:
    """UCI electricity with the TFT paper's protocol (``<data dir>/electricity/LD2011_2014.txt``)."""
    locate(td.ELECTRICITY, data_dir)
    raw = td.read_electricity(dataset_file(td.ELECTRICITY, "LD2011_2014.txt", data_dir))
    frame = td.electricity_frame(raw)
    training, validation, test = _paper_splits(frame, td.ELECTRICITY_SPEC, td.ELECTRICITY_SPLIT)
    return TFTDataModule(
        training,
        validation,
        test,
        batch_size=batch_size,
        val_batch_size=val_batch_size,
        num_workers=num_workers,
        fast=fast,
    )


def traffic_datamodule(
    data_dir: Path,
    batch_size: PositiveInt = 128,
    val_batch_size: PositiveInt = 512,
    num_workers: NonNegativeInt = 0,
    fast: bool = True,
) -> TFTDataModule:
    """UCI PEMS-SF with the TFT paper's protocol (``<data dir>/PEMS-SF/``)."""
    folder = locate(td.TRAFFIC, data_dir)
    frame = td.traffic_frame(td.read_pems_sf(folder))
    training, validation, test = _paper_splits(frame, td.TRAFFIC_SPEC, td.TRAFFIC_SPLIT)
    return TFTDataModule(
        training,
        validation,
        test,
        batch_size=batch_size,
        val_batch_size=val_batch_size,
        num_workers=num_workers,
        fast=fast,
    )
