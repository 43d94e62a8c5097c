"""Lightning ``Trainer`` factory and seeding.

:func:`build_trainer` turns a :class:`~gatelab.core.harness.configs.TrainerConfig` into a
``lightning.Trainer`` with the callbacks every gatelab run uses:

* ``ModelCheckpoint`` in ``<run dir>/checkpoints`` (best ``save_top_k`` by ``monitor`` and
  ``last.ckpt``), unless ``checkpoint.enabled`` is false, plus a
  :class:`~gatelab.core.harness.resume.StepCheckpoint` when ``checkpoint.every_n_train_steps``
  or ``checkpoint.train_time_interval`` is set;
* ``EarlyStopping`` when ``early_stopping`` is set;
* a ``TQDMProgressBar`` when ``progress_bar`` is true;
* ``LearningRateMonitor`` when a logger is configured;
* loggers: ``CSVLogger`` writing ``<run dir>/csv/metrics.csv`` and ``TensorBoardLogger`` writing
  ``<run dir>/tensorboard``.

Multi-GPU and multi-node training is Lightning's DDP: ``strategy: ddp`` with ``devices`` and
``num_nodes`` (``accelerator: cpu`` uses the gloo backend). Under DDP only rank 0 writes logs and
checkpoints; the checkpoint directory is broadcast from rank 0 (Lightning's ``ModelCheckpoint``
does that), so every rank loads the same "best" checkpoint for testing. ``sync_batchnorm: true``
computes BatchNorm statistics over all ranks (``SyncBatchNorm``; PyTorch runs it on GPUs only).
``strategy: fsdp`` (or ``fsdp`` with Lightning's other strategy names) shards parameters,
gradients and optimizer states over the GPUs; see ``docs/harness.md``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateMonitor,
    TQDMProgressBar,
)
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger

from gatelab.core.config import ConfigError

from .configs import TrainerConfig, max_time_timedelta

__all__ = ["ResumableEarlyStopping", "TrainerConfig", "build_trainer", "seed_everything"]


class ResumableEarlyStopping(EarlyStopping):
    """Lightning's ``EarlyStopping`` that survives a resume from an epoch-end checkpoint.

    A step-capped run (``max_steps``, no ``max_epochs``) resumed from the checkpoint saved at an
    epoch's end (``last.ckpt``: checkpoints are saved in ``on_train_epoch_end``) restarts *on*
    that epoch's end: Lightning runs its ``on_train_epoch_end`` hooks again without running its
    validation, so the monitored ``val/*`` metric is absent and ``EarlyStopping`` (strict) raised
    "conditioned on metric ... which is not available" (a killed ``gatelab repro maxim
    --resume-training`` could not continue). That epoch's check already ran before the checkpoint
    was saved (this callback runs before the checkpoint callback, and its ``wait_count`` and
    ``best_score`` are in the checkpoint), so it is skipped, not repeated; every other missing
    metric is still an error.
    """

    def _run_early_stopping_check(self, trainer: Any) -> None:
        if getattr(trainer.fit_loop, "restarted_on_epoch_end", False) and self.monitor not in trainer.callback_metrics:
            return
        super()._run_early_stopping_check(trainer)


def seed_everything(seed: int, deterministic: bool | str = False) -> int:
    """Seed Python, NumPy and torch (all devices) and dataloader workers; set determinism.

    Calls Lightning's ``seed_everything(seed, workers=True)`` (which also exports
    ``PL_GLOBAL_SEED`` so DDP child processes use the same seed), then
    ``torch.use_deterministic_algorithms(bool(deterministic), warn_only=deterministic == "warn")``.
    Deterministic mode also disables cuDNN benchmarking and sets ``CUBLAS_WORKSPACE_CONFIG``
    (required by cuBLAS for reproducible matmuls). ``deterministic=False`` switches
    deterministic algorithms off again, like Lightning's ``Trainer(deterministic=False)``.
    """
    if deterministic not in (True, False, "warn"):
        raise ConfigError(f"deterministic={deterministic!r} must be True, False or 'warn'")
    from lightning.fabric.utilities.seed import seed_everything as _seed

    _seed(int(seed), workers=True, verbose=False)
    if deterministic:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(bool(deterministic), warn_only=deterministic == "warn")
    return int(seed)


def build_loggers(cfg: TrainerConfig, run_dir: str | Path) -> list[Logger]:
    """CSV (``<run dir>/csv/metrics.csv``) and/or TensorBoard (``<run dir>/tensorboard``) loggers."""
    out: list[Logger] = []
    for name in cfg.loggers:
        if name == "csv":
            out.append(CSVLogger(save_dir=str(run_dir), name="csv", version=""))
        elif name == "tensorboard":
            out.append(
                TensorBoardLogger(
                    save_dir=str(run_dir), name="tensorboard", version="", default_hp_metric=False
                )
            )
        else:  # TrainerConfig validates; keep the factory honest if it is bypassed
            raise ConfigError(f"trainer.loggers: unknown logger {name!r}; expected csv or tensorboard")
    return out


def build_callbacks(cfg: TrainerConfig, run_dir: str | Path) -> list[Callback]:
    """The checkpoint, early-stopping, progress-bar and learning-rate callbacks ``cfg`` asks for."""
    callbacks: list[Callback] = []
    ck = cfg.checkpoint
    if ck.enabled:
        from .resume import EpochCheckpoint  # ModelCheckpoint whose last.ckpt is every epoch's end

        callbacks.append(
            EpochCheckpoint(
                dirpath=str(Path(run_dir) / "checkpoints"),
                filename=ck.filename,
                monitor=ck.monitor,
                mode=ck.mode,
                save_top_k=ck.save_top_k,
                save_last=ck.save_last,
                every_n_epochs=ck.every_n_epochs,
            )
        )
        if ck.every_n_train_steps is not None or ck.train_time_interval is not None:
            from .resume import StepCheckpoint

            callbacks.append(
                StepCheckpoint(
                    Path(run_dir) / "checkpoints",
                    every_n_train_steps=ck.every_n_train_steps,
                    train_time_interval=ck.train_time_interval,
                )
            )
    es = cfg.early_stopping
    if es is not None:
        callbacks.append(
            ResumableEarlyStopping(
                monitor=es.monitor,
                mode=es.mode,
                patience=es.patience,
                min_delta=es.min_delta,
                check_finite=es.check_finite,
            )
        )
    if cfg.progress_bar:
        callbacks.append(TQDMProgressBar())
    if cfg.loggers:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    return callbacks


def build_extra_callbacks(cfg: TrainerConfig) -> list[Callback]:
    """``trainer.callbacks``: each ``class_path`` imported and built with its ``init_args``."""
    from .validation import import_callback

    out: list[Callback] = []
    for i, cb in enumerate(cfg.callbacks):
        cls = import_callback(cb.class_path, f"trainer.callbacks[{i}].class_path")
        try:
            out.append(cls(**cb.init_args))
        except (TypeError, ValueError) as e:
            raise ConfigError(f"trainer.callbacks[{i}] ({cb.class_path}): {e}") from None
    return out


def build_trainer(
    cfg: TrainerConfig,
    *,
    run_dir: str | Path | None = None,
    callbacks: Sequence[Callback] = (),
    **overrides: Any,
) -> L.Trainer:
    """Build a ``lightning.Trainer`` from ``cfg``.

    Args:
        cfg: trainer config.
        run_dir: where checkpoints and logs go; defaults to ``cfg.log_dir``, else ``runs/default``.
        callbacks: extra callbacks (run before the checkpoint callback).
        overrides: further ``Trainer`` keyword arguments (e.g. ``enable_checkpointing=False``);
            they win over ``cfg`` and ``cfg.extra`` (any other ``Trainer`` argument, passed as
            given). ``cfg.callbacks`` are imported and built after the built-in callbacks.

    Raises:
        ConfigError: Lightning rejected a setting (bad accelerator, precision, strategy ...).
    """
    if isinstance(cfg, dict):
        from gatelab.core.config import from_dict

        cfg = from_dict(TrainerConfig, cfg, "trainer")
    run_dir = Path(run_dir or cfg.log_dir or "runs/default")
    loggers = build_loggers(cfg, run_dir)
    kwargs: dict[str, Any] = dict(
        default_root_dir=str(run_dir),
        max_epochs=cfg.max_epochs,
        max_steps=cfg.max_steps,
        min_epochs=cfg.min_epochs,
        max_time=max_time_timedelta(cfg.max_time),
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        strategy=cfg.strategy,
        num_nodes=cfg.num_nodes,
        precision=cfg.precision,
        gradient_clip_val=cfg.gradient_clip_val,
        gradient_clip_algorithm=cfg.gradient_clip_algorithm if cfg.gradient_clip_val else None,
        accumulate_grad_batches=cfg.accumulate_grad_batches,
        deterministic=cfg.deterministic,
        benchmark=cfg.benchmark,
        logger=loggers if loggers else False,
        callbacks=[*callbacks, *build_callbacks(cfg, run_dir)],
        enable_checkpointing=cfg.checkpoint.enabled,
        enable_progress_bar=cfg.progress_bar,
        enable_model_summary=cfg.enable_model_summary,
        limit_train_batches=cfg.limit_train_batches,
        limit_val_batches=cfg.limit_val_batches,
        limit_test_batches=cfg.limit_test_batches,
        limit_predict_batches=cfg.limit_predict_batches,
        val_check_interval=cfg.val_check_interval,
        check_val_every_n_epoch=cfg.check_val_every_n_epoch,
        num_sanity_val_steps=cfg.num_sanity_val_steps,
        log_every_n_steps=cfg.log_every_n_steps,
        sync_batchnorm=cfg.sync_batchnorm,
    )
    kwargs["callbacks"] += build_extra_callbacks(cfg)
    kwargs.update(cfg.extra)
    kwargs.update(overrides)
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        return L.Trainer(**kwargs)
    except (MisconfigurationException, ValueError) as e:
        raise ConfigError(f"trainer: {e}") from None
