"""The ``maxim`` paper table (MAXIM vs DnCNN denoising), registered when this module is imported.

:mod:`gatelab.vision.registry` declares the table lazily (its options need the test-set list of
:mod:`.data.restoration`, which imports torch); the restoration datasets, data modules and the
``restoration`` task are declared there too.
"""

from __future__ import annotations

from gatelab.core.harness import Option, ReproTable, register_table

from .data.restoration import COLOUR_TESTSETS

register_table(
    ReproTable(
        name="maxim",
        description=(
            "MAXIM (reduced width) vs a DnCNN baseline trained the same way on COCO-mini crops, "
            "Gaussian colour denoising sigma=25, PSNR/SSIM (RGB, official run_eval protocol) on CBSD68, "
            "Kodak24 (500x500 crops), McMaster"
        ),
        paper=(
            "Tu et al., MAXIM, CVPR 2022. Published full-scale context (not comparable, not run here): "
            "MAXIM-3S on SIDD real-noise denoising 39.96 dB PSNR / 0.960 SSIM (SIDD is not available on "
            "this machine; the models here are reduced and trained for minutes on 80 images)"
        ),
        run="gatelab.vision.repro_maxim:run_maxim",
        options=[
            Option("--task", choices=["denoise"], default="denoise", help="restoration task (denoise)"),
            Option("--sigma", type=float, default=25.0, help="Gaussian noise level on the 0-255 scale"),
            Option("--steps", type=int, default=400, help="optimizer steps per model"),
            Option("--steps-per-epoch", type=int, default=100, help="steps per (virtual) epoch"),
            Option("--batch-size", type=int, default=8),
            Option("--crop", type=int, default=64, help="training crop size (multiple of 64 for MAXIM)"),
            Option("--lr", type=float, default=5e-4),
            Option("--weight-decay", type=float, default=1e-4),
            Option("--warmup", type=int, default=100, help="linear warm-up steps"),
            Option("--models", nargs="+", choices=["maxim", "dncnn"], default=["maxim", "dncnn"]),
            Option("--maxim-features", type=int, default=8),
            Option("--maxim-stages", type=int, default=1),
            Option("--dncnn-depth", type=int, default=17),
            Option("--dncnn-features", type=int, default=32),
            Option("--test-sets", nargs="+", choices=list(COLOUR_TESTSETS), default=list(COLOUR_TESTSETS)),
            Option("--run-dir", default="runs/repro-maxim", help="checkpoints and logs"),
            Option(
                "--resume-training",
                action="store_true",
                help="continue training from <run-dir>/.../last.ckpt when present (--resume skips recorded rows)",
            ),
            Option("--no-grid", dest="grid", action="store_false", help="skip the before/after PNG"),
            Option("--grid-crop", type=int, default=128),
            Option("--no-tile-check", dest="tile_check", action="store_false"),
            Option("--tile-check-images", type=int, default=4, help="Kodak24 images for the tiled check"),
            Option("--no-noisy", dest="noisy", action="store_false", help="skip the noisy-input rows"),
            Option("--no-progress", dest="progress", action="store_false"),
        ],
        domain="vision",
        metrics=["psnr", "ssim", "params", "train_wall_s", "eval_wall_s"],
        verify_metrics=["psnr", "ssim", "params"],
        default_seeds=(0,),
        not_in_hash=("models", "test_sets", "run_dir", "resume_training", "grid", "grid_crop", "progress"),
    )
)
