"""Trainer factory (callbacks, loggers), seeding, optimizer/scheduler from config, task metrics."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from gatelab.core.config import ConfigError
from gatelab.core.harness.configs import SchedulerConfig, TaskConfig, TrainerConfig
from gatelab.core.harness.task import (
    ClassificationTask,
    LogLoss,
    RegressionTask,
    build_optimizer,
    build_scheduler,
)
from gatelab.core.harness.trainer import build_trainer, seed_everything


def _cb(trainer, cls):
    return [c for c in trainer.callbacks if isinstance(c, cls)]


def test_build_trainer_callbacks_and_loggers(tmp_path):
    cfg = TrainerConfig(
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        early_stopping={"monitor": "val/auc", "mode": "max", "patience": 4, "min_delta": 0.01},
        checkpoint={"monitor": "val/auc", "mode": "max", "save_top_k": 2, "save_last": True},
        loggers=["csv", "tensorboard"],
        gradient_clip_val=1.0,
        accumulate_grad_batches=2,
        limit_train_batches=3,
    )
    tr = build_trainer(cfg, run_dir=tmp_path / "run")
    (ck,) = _cb(tr, ModelCheckpoint)
    assert ck.dirpath == str(tmp_path / "run" / "checkpoints")
    assert (ck.monitor, ck.mode, ck.save_top_k, ck.save_last) == ("val/auc", "max", 2, True)
    (es,) = _cb(tr, EarlyStopping)
    assert (es.monitor, es.mode, es.patience) == ("val/auc", "max", 4)
    assert es.min_delta == pytest.approx(0.01)  # Lightning stores it signed by mode
    assert len(_cb(tr, TQDMProgressBar)) == 1 and len(_cb(tr, LearningRateMonitor)) == 1
    csv, tb = tr.loggers
    assert isinstance(csv, CSVLogger) and isinstance(tb, TensorBoardLogger)
    assert Path(csv.log_dir) == tmp_path / "run" / "csv"
    assert Path(tb.log_dir) == tmp_path / "run" / "tensorboard"
    assert tr.max_epochs == 2 and tr.gradient_clip_val == 1.0 and tr.accumulate_grad_batches == 2
    assert tr.limit_train_batches == 3


def test_build_trainer_minimal(tmp_path):
    cfg = TrainerConfig(accelerator="cpu", checkpoint={"enabled": False}, loggers=[], progress_bar=False)
    tr = build_trainer(cfg, run_dir=tmp_path)
    assert not _cb(tr, ModelCheckpoint) and not _cb(tr, EarlyStopping) and not _cb(tr, TQDMProgressBar)
    assert tr.loggers == []
    with pytest.raises(ConfigError, match="trainer:"):
        build_trainer(TrainerConfig(accelerator="no-such-accelerator"), run_dir=tmp_path)


def test_seed_everything_and_determinism():
    try:
        seed_everything(3, deterministic="warn")
        a = torch.rand(3)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        seed_everything(3, deterministic=True)
        assert torch.equal(torch.rand(3), a)
        assert not torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        seed_everything(0, deterministic=False)
    assert not torch.are_deterministic_algorithms_enabled()
    with pytest.raises(ConfigError):
        seed_everything(0, deterministic="always")


def test_build_optimizer():
    p = [torch.nn.Parameter(torch.zeros(2))]
    opt = build_optimizer(
        p, TaskConfig(optimizer="adamw", lr=0.01, weight_decay=0.1, betas=(0.8, 0.9), eps=1e-6)
    )
    assert type(opt) is torch.optim.AdamW
    g = opt.param_groups[0]
    assert (g["lr"], g["weight_decay"], g["betas"], g["eps"]) == (0.01, 0.1, (0.8, 0.9), 1e-6)
    opt = build_optimizer(p, TaskConfig(optimizer="sgd", lr=0.5, momentum=0.7, nesterov=True))
    assert type(opt) is torch.optim.SGD
    assert (opt.param_groups[0]["momentum"], opt.param_groups[0]["nesterov"]) == (0.7, True)
    assert type(build_optimizer(p, TaskConfig(optimizer="adam"))) is torch.optim.Adam


@pytest.mark.parametrize("impl", ["auto", "fused", "foreach", "for-loop"])
def test_optimizer_impl_same_update(impl):
    """Every implementation makes the Adam update of the hand-written formula (fp32 rounding)."""
    torch.manual_seed(0)
    w0 = torch.randn(3, 4)
    grads = [torch.randn(3, 4) for _ in range(5)]
    p = torch.nn.Parameter(w0.clone())
    opt = build_optimizer([p], TaskConfig(optimizer="adam", lr=0.01, weight_decay=0.1, optimizer_impl=impl))
    g0 = opt.param_groups[0]
    assert g0["fused"] is (True if impl in ("auto", "fused") else None)
    assert g0["foreach"] is {"foreach": True, "for-loop": False}.get(impl)
    w, m, v = w0.double().clone(), torch.zeros(3, 4).double(), torch.zeros(3, 4).double()
    for t, g in enumerate(grads, start=1):
        p.grad = g.clone()
        opt.step()
        g = g.double() + 0.1 * w  # Adam's L2 penalty
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w = w - 0.01 * (m / (1 - 0.9**t)) / ((v / (1 - 0.999**t)).sqrt() + 1e-8)
    torch.testing.assert_close(p.detach().double(), w, rtol=1e-5, atol=1e-6)


def test_optimizer_impl_rejects_unknown():
    with pytest.raises(ConfigError, match="optimizer_impl"):
        TaskConfig(optimizer_impl="cuda-graph")


def _lrs(cfg: SchedulerConfig, total: int | None, n: int, lr: float = 1.0) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sch = build_scheduler(opt, cfg, total)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    return out


def test_cosine_with_warmup_matches_formula():
    # warmup w=2 from f0=0.1, then cosine over T = total - w = 4 with eta_min 0.1
    lrs = _lrs(SchedulerConfig(name="cosine", warmup=2, warmup_start_factor=0.1, eta_min=0.1), total=6, n=7)
    f0, w, t_max, eta = 0.1, 2, 4, 0.1
    expected = [f0 + (1 - f0) * i / w for i in range(w)]
    expected += [eta + (1 - eta) * (1 + math.cos(math.pi * t / t_max)) / 2 for t in range(5)]
    assert lrs == pytest.approx(expected, abs=1e-6)


def test_step_exponential_plateau_none():
    assert _lrs(SchedulerConfig(name="step", step_size=2, gamma=0.5), None, 5) == pytest.approx(
        [1, 1, 0.5, 0.5, 0.25]
    )
    assert _lrs(SchedulerConfig(name="exponential", gamma=0.9), None, 3) == pytest.approx([1, 0.9, 0.81])
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sch = build_scheduler(opt, SchedulerConfig(name="plateau", patience=0, factor=0.5), None)
    sch.step(1.0)
    sch.step(2.0)  # no improvement, patience 0 -> halve
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)
    assert build_scheduler(opt, SchedulerConfig(), None) is None
    with pytest.raises(ConfigError, match="t_max"):
        build_scheduler(opt, SchedulerConfig(name="cosine"), None)


def test_logloss_matches_hand_computation():
    p = torch.tensor([0.9, 0.2, 0.0, 1.0, 0.5])
    y = torch.tensor([1, 0, 0, 0, 1])
    m = LogLoss()
    m.update(p[:2], y[:2])
    m.update(p[2:], y[2:])
    eps = 1e-7
    total = 0.0
    for pi, yi in zip(p.tolist(), y.tolist()):
        pi = min(max(pi, eps), 1 - eps)
        total += -(yi * math.log(pi) + (1 - yi) * math.log(1 - pi))
    assert m.compute().item() == pytest.approx(total / 5, rel=1e-12)
    with pytest.raises(ValueError, match="shape"):
        LogLoss().update(p, y[:2])


def test_regression_task(tiny):
    task = RegressionTask(
        model_name=tiny.MODEL, model_kwargs={"in_features": 3}, task={"kwargs": {"loss": "mae"}}
    )
    assert task.options.loss == "mae"
    assert sorted(task.val_metrics.keys()) == ["val/mae", "val/mse"]
    assert task.hparams["model_name"] == tiny.MODEL and task.hparams["task"]["kwargs"] == {"loss": "mae"}
    x, y = torch.randn(4, 3), torch.randn(4, 1)
    loss, preds, target = task.shared_step((x, y), "train")
    assert preds.shape == (4, 1) and target is y
    assert loss.item() == pytest.approx((task.model(x) - y).abs().mean().item(), rel=1e-6)
    with pytest.raises(ValueError, match=r"prediction shape \(4, 1\) != target shape \(4,\)"):
        task.shared_step((x, y[:, 0]), "train")
    with pytest.raises(ConfigError, match="'lose'"):
        RegressionTask(model_name=tiny.MODEL, task={"kwargs": {"lose": "mae"}})
    with pytest.raises(ValueError, match="'target'"):
        task.split_batch({"x": x})


def test_classification_task_binary(tiny):
    task = ClassificationTask(
        model_name=tiny.MODEL, model_kwargs={"in_features": 3}, task={"name": "classification"}
    )
    assert sorted(task.test_metrics.keys()) == ["test/accuracy", "test/auc", "test/logloss"]
    z = torch.tensor([[2.0], [-1.0], [0.5], [-3.0]])
    y = torch.tensor([1.0, 0.0, 0.0, 1.0])
    loss = task.compute_loss(z, y)
    p = [1 / (1 + math.exp(-v)) for v in z[:, 0].tolist()]
    hand = -sum(yi * math.log(pi) + (1 - yi) * math.log(1 - pi) for pi, yi in zip(p, y.tolist())) / 4
    assert loss.item() == pytest.approx(hand, rel=1e-6)
    probs, t = task.metric_inputs(z, y)
    assert probs.tolist() == pytest.approx(p) and t.dtype == torch.long
    with pytest.raises(ValueError, match="logits shape"):
        task.compute_loss(torch.zeros(4, 2), y)
    with pytest.raises(ConfigError, match="num_classes"):
        ClassificationTask(model_name=tiny.MODEL, task={"kwargs": {"mode": "multiclass"}})


def test_test_split_detection():
    import lightning as L
    from torch.utils.data import TensorDataset

    from gatelab.core.harness.experiment import _has_hook

    ds = TensorDataset(torch.zeros(4, 1))

    class WithTest(L.LightningDataModule):
        def test_dataloader(self):
            return None

    assert _has_hook(WithTest(), "test_dataloader")
    assert not _has_hook(L.LightningDataModule(), "test_dataloader")
    assert _has_hook(
        L.LightningDataModule.from_datasets(train_dataset=ds, test_dataset=ds), "test_dataloader"
    )
    assert not _has_hook(L.LightningDataModule.from_datasets(train_dataset=ds), "test_dataloader")
