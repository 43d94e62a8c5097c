"""The restoration task: training through the harness, checkpoint resume, per-set / input / tiled test
metrics, the DnCNN baseline."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from restoration_fixtures import make_fake_restoration_data, make_paired_restoration_data
from trainer_fixtures import quiet_trainer

from gatelab.core.harness import ExperimentConfig, run_experiment
from gatelab.vision.models.maxim import _TINY
from gatelab.vision.tasks.metrics import prepare_for_metrics, psnr_ssim_metrics
from gatelab.vision.tasks.restoration import RestorationTask


def _config(tmp_path: Path, epochs: int, test: bool = False) -> ExperimentConfig:
    return ExperimentConfig.from_dict(
        {
            "name": "maxim-tiny",
            "seed": 3,
            "output_dir": str(tmp_path / "runs"),
            "test": test,
            "model": {"name": "maxim", "kwargs": {**_TINY, "num_stages": 2}},
            "data": {
                "name": "paired_restoration",
                "kwargs": {
                    "train_root": "train",
                    "val_root": "val",
                    "test_root": "test",
                    "crop": 16,
                    "val_crop": 16,
                    "batch_size": 2,
                    "samples_per_epoch": 4,
                },
            },
            "task": {
                "name": "restoration",
                "optimizer": "adamw",
                "lr": 1e-3,
                "weight_decay": 1e-4,
                "scheduler": {"name": "cosine", "interval": "step", "t_max": 4},
            },
            "trainer": quiet_trainer(
                max_epochs=epochs,
                num_sanity_val_steps=0,
                log_every_n_steps=1,
                checkpoint={"monitor": None, "save_top_k": 1, "save_last": True},
            ),
        }
    )


def test_train_resume_equals_uninterrupted(tmp_path):
    """2 epochs x 2 steps straight vs 1 epoch, stop, resume from last.ckpt for the 2nd epoch:
    identical weights, optimizer moments, step counters and learning rate."""
    data = make_paired_restoration_data(tmp_path / "data")
    straight = run_experiment(_config(tmp_path / "a", 2), data_dir=data)
    first = run_experiment(_config(tmp_path / "b", 1), data_dir=data)
    assert first.trainer.global_step == 2
    resumed = run_experiment(
        _config(tmp_path / "b", 2, test=True), data_dir=data, ckpt_path=first.last_checkpoint
    )
    assert straight.trainer.global_step == resumed.trainer.global_step == 4
    a, b = straight.task.model.state_dict(), resumed.task.model.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    oa, ob = straight.trainer.optimizers[0], resumed.trainer.optimizers[0]
    pa, pb = next(iter(oa.state.values())), next(iter(ob.state.values()))
    assert float(pa["step"]) == float(pb["step"]) == 4
    torch.testing.assert_close(pa["exp_avg_sq"], pb["exp_avg_sq"], rtol=1e-5, atol=1e-9)
    assert oa.param_groups[0]["lr"] == pytest.approx(ob.param_groups[0]["lr"])
    assert {"test/psnr", "test/ssim", "test/loss"} <= set(resumed.metrics)
    assert torch.isfinite(torch.tensor(resumed.metrics["test/psnr"]))


def test_several_test_sets_are_reported_separately(tmp_path):
    data = make_fake_restoration_data(tmp_path / "data")
    cfg = _config(tmp_path, 1, test=True).to_dict()
    cfg["model"]["kwargs"].update(num_stages=1, zero_init_heads=True)
    cfg["data"] = {
        "name": "denoise",
        "kwargs": {
            "crop": 16,
            "batch_size": 2,
            "samples_per_epoch": 2,
            "val_images": 2,
            "val_crop": 16,
            "verify": False,
            "test_sets": ["Kodak24", "McMaster"],
        },
    }
    cfg["trainer"].update(limit_test_batches=2, limit_val_batches=1)
    res = run_experiment(ExperimentConfig.from_dict(cfg), data_dir=data)
    for name in ("Kodak24", "McMaster"):
        assert 5.0 < res.metrics[f"test/{name}/psnr"] < 40.0
        assert 0.0 < res.metrics[f"test/{name}/ssim"] <= 1.0
    assert res.metrics["test/Kodak24/psnr"] != res.metrics["test/McMaster/psnr"]
    assert 5.0 < res.metrics["test/McMaster/input_psnr"] < 40.0  # the noisy input's own score
    assert "test/psnr" not in res.metrics  # named sets only


def test_dncnn_baseline_through_run_experiment(tmp_path):
    """DnCNN is a registered baseline: trained by ``run_experiment`` like MAXIM, reloaded from
    its checkpoint; the test step scores the model, the noisy input (recomputed here with the
    same metrics) and tiled inference (exact for a conv net whose receptive field fits the margin)."""
    data = make_paired_restoration_data(tmp_path / "data")
    cfg = _config(tmp_path, 1, test=True).to_dict()
    cfg["model"] = {"name": "dncnn", "kwargs": {"num_layers": 3, "features": 4}}
    # tiles of 16 overlapping by 12 (blend margin 3 = DnCNN-3's receptive radius) on a 19x13 image
    cfg["task"]["kwargs"] = {"tile": 16, "tile_overlap": 12}
    cfg["trainer"]["max_epochs"] = None
    cfg["trainer"]["max_steps"] = 3
    res = run_experiment(ExperimentConfig.from_dict(cfg), data_dir=data)
    assert res.trainer.global_step == 3
    loaded = RestorationTask.load_from_checkpoint(res.last_checkpoint, map_location="cpu", weights_only=True)
    x = torch.rand(1, 3, 9, 11)
    res.task.model.eval(), loaded.model.eval()
    torch.testing.assert_close(loaded.model(x), res.task.model(x))
    assert {"test/psnr", "test/ssim", "test/input_psnr", "test/input_ssim", "test/tiled_psnr"} <= set(res.metrics)
    res.datamodule.setup("test")
    metrics = psnr_ssim_metrics()
    for i in range(len(res.datamodule.test_ds)):
        noisy, clean = res.datamodule.test_ds[i]
        p, t = prepare_for_metrics(noisy.unsqueeze(0), clean.unsqueeze(0))
        for m in metrics.values():
            m.update(p, t)
    assert res.metrics["test/input_psnr"] == pytest.approx(float(metrics["psnr"].compute()), abs=1e-9)
    assert res.metrics["test/input_ssim"] == pytest.approx(float(metrics["ssim"].compute()), abs=1e-9)
    assert res.metrics["test/psnr"] != res.metrics["test/input_psnr"]
    assert res.metrics["test/tiled_psnr"] == pytest.approx(res.metrics["test/psnr"], abs=1e-5)
    with pytest.raises(Exception, match="num_outputs=1 must equal in_channels=3"):
        from gatelab.core.registry import create_model

        create_model("dncnn", num_outputs=1)


def test_task_options_are_strict():
    from gatelab.core.config import ConfigError

    with pytest.raises(ConfigError, match="freq_wieght"):
        RestorationTask("maxim", _TINY, {"name": "restoration", "kwargs": {"freq_wieght": 0.1}})
