"""The ``attention-unet`` recipe: its configs match the shipped example, and the overlay it saves."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from gatelab.core.harness import ExperimentConfig


def test_example_config_is_the_repro_protocol(repo_root):
    from gatelab.core.config import to_dict
    from gatelab.vision.recipes.attention_unet import experiment_config

    cfg = ExperimentConfig.load(repo_root / "docs/vision/attention_unet_drive.yaml")
    want = experiment_config(
        "drive",
        "attention-unet",
        0,
        iters=2000,
        batch_size=8,
        patch=96,
        feature_scale=8,
        lr=1e-3,
        output_dir="runs",
    )
    want["name"] = "attention-unet-drive"
    assert to_dict(cfg) == to_dict(ExperimentConfig.from_dict(want))


def test_repro_configs_and_overlay(tmp_path):
    from gatelab.vision.analysis.figures import attention_overlay, save_overlay
    from gatelab.vision.models.unet import UNet
    from gatelab.vision.recipes.attention_unet import experiment_config

    for ds in ("membrane", "drive"):
        for model in ("unet", "attention-unet"):
            cfg = ExperimentConfig.from_dict(
                experiment_config(
                    ds, model, 0, iters=10, batch_size=2, patch=32, feature_scale=16, lr=1e-3, output_dir="x"
                )
            )
            assert cfg.model.kwargs["attention"] == (model == "attention-unet")
            assert cfg.task.kwargs["auc"] == (ds == "drive")
    net = UNet(spatial_dims=2, in_channels=3, num_classes=2, feature_scale=16, attention=True)
    from gatelab.vision.data.segmentation import SegmentationCase

    case = SegmentationCase(
        "c",
        torch.randn(3, 40, 36),
        torch.zeros(40, 36, dtype=torch.long),
        torch.ones(40, 36, dtype=torch.bool),
    )
    path = save_overlay(net, case, tmp_path / "ov.png", max_side=20)
    im = Image.open(path)
    assert im.size == (18 * 5, 20) and im.mode == "P"  # input + 3 gated levels + prediction, 256 colours
    panel = attention_overlay(case.image, {"att2": torch.rand(2, 20, 18)}, torch.rand(40, 36))
    assert panel.shape == (40, 36 * 3, 3) and panel.dtype == np.uint8
