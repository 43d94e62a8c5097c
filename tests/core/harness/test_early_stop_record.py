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
from trainer_fixtures import quiet_trainer

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
        "trainer": quiet_trainer(
            max_epochs=max_epochs,
            num_sanity_val_steps=0,
            loggers=[],
            early_stopping={"monitor": "val/loss", "patience": patience},
        ),
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


class _Killed(Exception):
    pass


class _KillInEpoch(Callback):
    """Raises in the second batch of ``epoch``: a run killed after the previous epoch's checkpoint."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == 1:
            raise _Killed


def _cut_and_resume(tmp_path, tiny, steps: bool, early_stopping: bool = True) -> tuple:
    """(uninterrupted, resumed) runs of 2-batch epochs (4 epochs, or 16 steps), the cut one killed in epoch 2's
    second batch and resumed from ``last.ckpt`` (saved at epoch 1's end)."""
    import pytest

    tag = f"{'steps' if steps else 'epochs'}-{int(early_stopping)}"

    def cfg(folder: str) -> dict:
        c = _cfg(tmp_path / f"{folder}-{tag}", tiny, patience=3, max_epochs=4)
        if steps:  # step-capped, as the maxim table: Lightning restarts *on* the saved epoch's end
            c["trainer"].update(max_epochs=None, max_steps=16)
        if not early_stopping:
            c["trainer"]["early_stopping"] = None
        return c

    whole = run_experiment(cfg("whole"))
    with pytest.raises(_Killed):
        run_experiment(cfg("cut"), callbacks=[_KillInEpoch(2)])
    last = next((tmp_path / f"cut-{tag}").rglob("last.ckpt"))
    return whole, run_experiment(cfg("cut"), ckpt_path=str(last))


def test_resume_from_an_epoch_end_checkpoint_with_early_stopping(tmp_path, tiny):
    """A run with the plateau rule, killed during an epoch and resumed from the checkpoint saved at
    the previous epoch's end (what a killed ``gatelab repro maxim --resume-training`` finds),
    ends as the uninterrupted run, early-stopping state included.

    A step-capped run restarts *on* the saved epoch's end: Lightning re-runs its end hooks without
    its validation, so ``EarlyStopping`` found no ``val/loss`` and raised; the epoch's check had
    already run before the checkpoint was saved (:class:`ResumableEarlyStopping` skips it)."""
    for steps in (True, False):
        whole, resumed = _cut_and_resume(tmp_path, tiny, steps)
        assert resumed.trainer.global_step == whole.trainer.global_step == (16 if steps else 8), steps
        es, es_whole = resumed.trainer.early_stopping_callback, whole.trainer.early_stopping_callback
        assert es.patience == es_whole.patience and es.wait_count <= es.patience, steps
        assert resumed.metrics["test/mse"] == whole.metrics["test/mse"], steps  # exact, as test_resume.py checks
        assert (es.wait_count, float(es.best_score)) == (es_whole.wait_count, float(es_whole.best_score)), steps


def test_a_step_capped_run_resumed_at_an_epoch_end_is_exact(tmp_path, tiny):
    """A ``max_steps`` run resumed from its epoch-end ``last.ckpt`` ends bit for bit as the
    uninterrupted run. Lightning counts the restarted epoch as processed twice, so the exact-resume
    hook once took the data order of epoch ``processed`` (one ahead): the first resumed epoch got
    the next epoch's batches (test MSE 6.563573 instead of 6.563132 here)."""
    whole, resumed = _cut_and_resume(tmp_path, tiny, steps=True, early_stopping=False)
    assert resumed.trainer.global_step == whole.trainer.global_step == 16
    assert resumed.metrics["test/mse"] == whole.metrics["test/mse"]
