"""Registers the segmentation data modules, task and paper table with the harness (no Lightning import)."""

from __future__ import annotations

from gatelab.core.harness import Option, ReproTable, register_datamodule, register_table, register_task

_DM = "gatelab.vision.data.segmentation_datamodule"
register_datamodule("membrane", f"{_DM}:membrane_datamodule")
register_datamodule("drive", f"{_DM}:drive_datamodule")
register_datamodule("seg-folder", f"{_DM}:folder_datamodule")
register_datamodule("seg-nifti", f"{_DM}:nifti_datamodule")
register_task("segmentation", "gatelab.vision.segmentation_task:SegmentationTask")

#: the paper's claim: Attention U-Net +2.6 Dice points over U-Net (Oktay et al. 2018, Table 1, CT-150)
PAPER_DICE_GAIN = 0.026

register_table(
    ReproTable(
        name="attention-unet",
        description=(
            "U-Net vs Attention U-Net (2D, same code path, deep supervision) on ISBI 2012 membranes "
            "(held-out fold: slices 24-29 of a contiguous 5-fold split) and DRIVE (official 20 test images, "
            "inside the FOV); reduced CPU protocol, see config and docs/vision/attention_unet.md. "
            "dice_gain = Attention U-Net dice - U-Net dice of the same seed; the paper's +0.026 is on CT-150 "
            "pancreas (3D CT), a different dataset"
        ),
        paper="Oktay et al. 2018, Attention U-Net, Table 1 (CT-150: +2.6 Dice points over U-Net)",
        run="gatelab.vision.repro_attention_unet:run",
        references=[
            {"model": "attention-unet", "dataset": ds, "split": split, "dice_gain": PAPER_DICE_GAIN}
            for ds, split in (("isbi2012-membrane", "fold4-of-5"), ("drive", "test"))
        ],
        options=[
            Option("--datasets", nargs="+", choices=["membrane", "drive"], default=["membrane", "drive"]),
            Option(
                "--models", nargs="+", choices=["unet", "attention-unet"], default=["unet", "attention-unet"]
            ),
            Option("--iters", type=int, default=2000, help="optimizer steps per run"),
            Option("--batch-size", type=int, default=8),
            Option("--patch", type=int, default=96, help="square training patch / sliding-window size"),
            Option("--feature-scale", type=float, default=8, help="widths (64..1024) / feature_scale"),
            Option("--lr", type=float, default=1e-3),
            Option("--output-dir", default="runs/attention-unet", help="run directories (checkpoints, logs)"),
            Option(
                "--overlays",
                default=None,
                help="folder for attention overlays (default docs/results/attention-unet)",
            ),
        ],
        domain="vision",
        metrics=["dice", "iou", "auc", "dice_gain", "params"],
        default_seeds=(0, 1, 2),
        not_in_hash=("datasets", "models", "output_dir", "overlays"),
    )
)
