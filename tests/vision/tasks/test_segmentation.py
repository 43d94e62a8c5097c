"""Segmentation task: loss vs hand-written Dice/CE, metrics vs hand counts, end-to-end training of
the 2D and 3D models through the harness on fixture files."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from segmentation_fixtures import FOLDERS, write_nifti, write_pngs
from trainer_fixtures import quiet_trainer

from gatelab.core.harness import ExperimentConfig, run_experiment
from gatelab.vision.tasks.segmentation import SegmentationTask, dice_ce_loss, soft_dice_loss

# --------------------------------------------------------------------------- loss


def _hand_loss(logits, target, valid, smooth=0.01, include_bg=True):
    b, k = logits.shape[:2]
    pix = list(itertools.product(*(range(n) for n in target.shape[1:])))
    ce_sum, n_valid, scores = 0.0, 0, []
    for bi in range(b):
        inter = [0.0] * k
        psum = [0.0] * k
        ysum = [0.0] * k
        for p in pix:
            if not valid[(bi, *p)]:
                continue
            z = [float(logits[(bi, c, *p)]) for c in range(k)]
            m = max(z)
            e = [math.exp(v - m) for v in z]
            prob = [v / sum(e) for v in e]
            y = int(target[(bi, *p)])
            ce_sum += -math.log(prob[y])
            n_valid += 1
            for c in range(k):
                psum[c] += prob[c]
                ysum[c] += 1.0 if c == y else 0.0
                inter[c] += prob[c] * (1.0 if c == y else 0.0)
        for c in range(0 if include_bg else 1, k):
            scores.append((2 * inter[c] + smooth) / (psum[c] + ysum[c] + smooth))
    dice = 1 - sum(scores) / len(scores)
    return ce_sum / n_valid, dice


@pytest.mark.parametrize("include_bg", [True, False])
def test_dice_ce_loss_matches_hand_computation(include_bg):
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    target = torch.randint(0, 3, (2, 4, 5))
    valid = torch.rand(2, 4, 5) > 0.3
    ce, dice = _hand_loss(logits, target, valid, include_bg=include_bg)
    got = dice_ce_loss(logits, target, valid, dice_weight=0.7, ce_weight=1.3, include_background=include_bg)
    assert math.isclose(float(got), 1.3 * ce + 0.7 * dice, rel_tol=1e-5)
    assert math.isclose(
        float(soft_dice_loss(logits, target, valid, include_background=include_bg)), dice, rel_tol=1e-5
    )
    # invalid pixels do not matter
    logits2 = logits.clone()
    logits2[0][:, ~valid[0]] = 100.0
    logits2[1][:, ~valid[1]] = -50.0
    same = float(dice_ce_loss(logits2, target, valid))
    assert math.isclose(same, float(dice_ce_loss(logits, target, valid)), rel_tol=1e-6)
    with pytest.raises(ValueError, match="target classes"):
        dice_ce_loss(logits, target + 3, valid)
    with pytest.raises(ValueError, match="logits"):
        dice_ce_loss(logits, target[0], valid)


def test_loss_gradient_is_finite_on_extreme_logits():
    logits = torch.tensor([[[[80.0, -80.0]], [[-80.0, 80.0]]]], requires_grad=True)
    target = torch.tensor([[[1, 0]]])
    loss = dice_ce_loss(logits, target)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


# --------------------------------------------------------------------------- metrics


class _Fixed(torch.nn.Module):
    """A 'model' returning stored logits (for metric tests)."""

    def __init__(self, num_classes):
        super().__init__()
        self.num_classes = num_classes
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.logits: torch.Tensor | None = None

    def forward(self, x):
        return self.logits + 0 * self.w


def _auc_hand(scores, labels):
    pos = [s for s, y in zip(scores, labels) if y == 1]
    neg = [s for s, y in zip(scores, labels) if y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_binary_metrics_pool_valid_pixels():
    torch.manual_seed(1)
    task = SegmentationTask(model=_Fixed(2), task={"name": "segmentation", "kwargs": {"auc": True}})
    metrics = task.metrics_for("test")
    allp, ally = [], []
    for _ in range(2):
        logits = torch.randn(1, 2, 6, 7)
        target = torch.randint(0, 2, (1, 6, 7))
        valid = torch.rand(1, 6, 7) > 0.25
        p, t = task.metric_inputs((logits, valid), target)
        metrics.update(p, t)
        prob = torch.softmax(logits, 1)[:, 1]
        allp += prob[valid].tolist()
        ally += target[valid].tolist()
    out = {k.split("/")[1]: float(v) for k, v in metrics.compute().items()}
    pred = [1 if p > 0.5 else 0 for p in allp]
    tp = sum(1 for a, y in zip(pred, ally) if a == 1 and y == 1)
    fp = sum(1 for a, y in zip(pred, ally) if a == 1 and y == 0)
    fn = sum(1 for a, y in zip(pred, ally) if a == 0 and y == 1)
    assert math.isclose(out["dice"], 2 * tp / (2 * tp + fp + fn), rel_tol=1e-5)
    assert math.isclose(out["iou"], tp / (tp + fp + fn), rel_tol=1e-5)
    assert math.isclose(out["auc"], _auc_hand(allp, ally), rel_tol=1e-5)
    assert len(task.metrics_for("train")) == 0  # not scored unless train_metrics


def test_multiclass_metrics_mean_over_foreground():
    task = SegmentationTask(model=_Fixed(3), task={"name": "segmentation"})
    logits = torch.randn(2, 3, 5, 5)
    target = torch.randint(0, 3, (2, 5, 5))
    valid = torch.ones(2, 5, 5, dtype=torch.bool)
    m = task.metrics_for("val")
    m.update(*task.metric_inputs((logits, valid), target))
    out = {k.split("/")[1]: float(v) for k, v in m.compute().items()}
    pred = logits.argmax(1)
    dices, ious = [], []
    for c in (1, 2):
        tp = int(((pred == c) & (target == c)).sum())
        fp = int(((pred == c) & (target != c)).sum())
        fn = int(((pred != c) & (target == c)).sum())
        dices.append(2 * tp / (2 * tp + fp + fn))
        ious.append(tp / (tp + fp + fn))
    assert math.isclose(out["dice"], sum(dices) / 2, rel_tol=1e-5)
    assert math.isclose(out["iou"], sum(ious) / 2, rel_tol=1e-5)
    from gatelab.core import ConfigError

    with pytest.raises(ConfigError, match="two classes"):
        SegmentationTask(model=_Fixed(3), task={"name": "segmentation", "kwargs": {"auc": True}})
    with pytest.raises(ConfigError, match="sw_mode"):
        SegmentationTask(model=_Fixed(2), task={"name": "segmentation", "kwargs": {"sw_mode": "hann"}})
    with pytest.raises(ConfigError, match="sw_mirror_axes"):
        SegmentationTask(model=_Fixed(2), task={"name": "segmentation", "kwargs": {"sw_mirror_axes": [0, 0]}})


# --------------------------------------------------------------------------- end to end


def _trainer_cfg(steps):
    return quiet_trainer(
        max_epochs=1,
        max_steps=steps,
        checkpoint={"monitor": None, "save_last": False},
        early_stopping=None,
        loggers=[],
        num_sanity_val_steps=0,
    )


def _end_to_end_config(
    tmp_path, nd: int, data_name: str, data_kwargs: dict, task_kwargs: dict, trainer: dict
) -> ExperimentConfig:
    """A tiny ``attention-unet-<nd>d`` experiment on the fixture folders (batch 2, lr 1e-2)."""
    return ExperimentConfig.from_dict(
        {
            "name": f"seg{nd}d",
            "output_dir": str(tmp_path / "runs"),
            "model": {"name": f"attention-unet-{nd}d", "kwargs": {"filters": [4, 8, 16], "feature_scale": 1}},
            "data": {"name": data_name, "kwargs": {**FOLDERS, "batch_size": 2, **data_kwargs}},
            "task": {"name": "segmentation", "kwargs": task_kwargs, "lr": 1e-2},
            "trainer": trainer,
        }
    )


def test_end_to_end_3d_on_synthetic_nifti(tmp_path):
    """The 3D path: synthetic NIfTI volumes with a bright cube, foreground-aware patches, the 3D
    Attention U-Net, sliding-window testing."""
    write_nifti(tmp_path, {"train": 2, "test": 1}, (20, 18, 16), np.s_[5:10, 6:11, 4:8], seed=0)
    data = {"label_values": {0: 0, 1: 1}, "patch_size": 8, "samples_per_epoch": 4, "val_cases": 1}
    data["augment"] = {"rotate_deg": 10, "elastic_alpha": 1.0}
    cfg = _end_to_end_config(tmp_path, 3, "seg-nifti", data, {"roi_size": [8, 8, 8], "auc": True}, _trainer_cfg(2))
    res = run_experiment(cfg, data_dir=tmp_path)
    assert res.model_kwargs["in_channels"] == 1 and res.model_kwargs["num_classes"] == 2
    for k in ("test/dice", "test/iou", "test/auc", "test/loss", "val/loss"):
        assert math.isfinite(res.metrics[k]), k
    assert 0.0 <= res.metrics["test/dice"] <= 1.0


def test_end_to_end_2d_folder(tmp_path):
    write_pngs(tmp_path, {"train": 2, "test": 2}, seed=1)
    data = {"label_values": {0: 0, 255: 1}, "patch_size": 16, "samples_per_epoch": 6}
    trainer = {**_trainer_cfg(3), "limit_val_batches": 0}
    cfg = _end_to_end_config(tmp_path, 2, "seg-folder", data, {"roi_size": [16, 16]}, trainer)
    res = run_experiment(cfg, data_dir=tmp_path)
    assert res.trainer.global_step == 3
    assert math.isfinite(res.metrics["test/dice"]) and "test/auc" not in res.metrics
