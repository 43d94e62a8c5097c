"""``ExperimentResult.stopped_early`` when the best checkpoint comes before the stop.

``trainer.test(ckpt_path=best)`` restores the callbacks' state from the best checkpoint, so
``EarlyStopping.stopped_epoch`` read after the test is the value saved with the best epoch (0
when the best epoch precedes the stop). The harness reads it right after ``fit``; the maxim table
once recorded ``stopped_early=0`` for a run the plateau rule had stopped, for this reason.
"""

from __future__ import annotations

import json

import torch
from lightning.pytorch.callbacks import Callback

from gatelab.core.harness.experiment import run_experiment


class _SpoilAfterFirstEpoch(Callback):
    """Adds 50 to every weight at the start of each epoch after the first: validation loss gets
    worse from epoch 1 on, so epoch 0 is the best and the plateau rule (patience 1) stops at 1."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch >= 1:
            with torch.no_grad():
                for p in pl_module.parameters():
                    p.add_(50.0)


def _cfg(tmp_path, tiny, patience: int, max_epochs: int) -> dict:
    return {
        "name": "es",
        "seed": 0,
        "output_dir": str(tmp_path / "runs"),
        "model": {"name": tiny.MODEL, "kwargs": {"hidden": 8}},
        "data": {"name": tiny.DATA, "kwargs": {"n": 32, "batch_size": 8}},
        "trainer": {
            "max_epochs": max_epochs,
            "accelerator": "cpu",
            "devices": 1,
            "progress_bar": False,
            "enable_model_summary": False,
            "num_sanity_val_steps": 0,
            "loggers": [],
            "early_stopping": {"monitor": "val/loss", "patience": patience},
        },
        "task": {"name": "regression", "lr": "1e-3"},
    }


def test_stop_after_the_best_epoch_is_recorded(tmp_path, tiny):
    res = run_experiment(_cfg(tmp_path, tiny, patience=1, max_epochs=6), callbacks=[_SpoilAfterFirstEpoch()])
    assert "epoch=0" in str(res.best_checkpoint)  # the best checkpoint precedes the stop
    assert res.trainer.current_epoch == 2  # epochs 0 and 1 ran, then the rule stopped the fit
    assert res.trainer.early_stopping_callback.stopped_epoch == 0  # reloaded from the best checkpoint
    assert res.stopped_early is True
    assert json.loads((res.run_dir / "run.json").read_text())["stopped_early"] is True
    assert "test/mse" in res.metrics


def test_run_to_the_cap_is_not_stopped_early(tmp_path, tiny):
    res = run_experiment(_cfg(tmp_path, tiny, patience=5, max_epochs=2))
    assert res.trainer.current_epoch == 2 and res.stopped_early is False
    assert json.loads((res.run_dir / "run.json").read_text())["stopped_early"] is False
