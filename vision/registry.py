"""Every registration of gatelab.vision: models, datasets, data modules, tasks, paper tables.

Imported by :mod:`gatelab.vision` (and by :func:`gatelab.core.registry.load_registrations`). It
imports neither torch nor Lightning: every entry names its ``"module:attr"``, imported on first use.

* models: ``attention-unet-2d`` / ``attention-unet-3d``
  (:class:`~gatelab.vision.models.unet.AttentionUNet2d` / ``AttentionUNet3d``: the
  :class:`~gatelab.vision.models.unet.UNet` with attention gates and ``spatial_dims`` fixed;
  ``attention=False`` is the U-Net baseline), ``maxim`` and its official
  sizes ``maxim-1s`` / ``maxim-2s`` / ``maxim-3s``; ``dncnn`` (restoration baseline, no gates);
* datasets: ``isbi2012-membrane``, ``drive`` (segmentation), ``coco_mini_images``,
  ``denoise_testsets`` (restoration);
* data modules: ``membrane``, ``drive``, ``seg-folder``, ``seg-nifti``, ``denoise``,
  ``paired_restoration``; tasks: ``segmentation``, ``restoration``;
* paper tables: ``attention-unet`` (below) and ``maxim`` (built in :mod:`.recipes.maxim`).
"""

from __future__ import annotations

from gatelab.core.harness.repro import Option, ReproTable, register_table
from gatelab.core.harness.stats import Comparison
from gatelab.core.registry import DATAMODULES, DATASETS, TABLES, TASKS, register_model

DOMAIN = "vision"
_UNET = "gatelab.vision.models.unet"
_MAXIM = "gatelab.vision.models.maxim"

# --------------------------------------------------------------------------- models

for _nd in (2, 3):
    register_model(
        f"attention-unet-{_nd}d",
        f"{_UNET}:AttentionUNet{_nd}d",
        preset=f"attention-unet-{_nd}d",  # AttentionUNet{2,3}dConfig.presets; spatial_dims fixed by the config
        domain=DOMAIN,
        paper="Oktay et al. 2018, Attention U-Net: Learning Where to Look for the Pancreas (MIDL)",
        gates=("AttentionGate",),
        description=f"Attention U-Net {_nd}D (multi-gate, deep supervision); attention=False gives the paper's U-Net baseline",
        tiny=f"{_UNET}:_TINY",
        example_inputs=f"{_UNET}:_example_{_nd}d",
        tags=("segmentation", f"{_nd}d"),
    )

_MAXIM_PAPER = "Tu et al., MAXIM: Multi-Axis MLP for Image Processing, CVPR 2022"
_MAXIM_GATES = ("MultiAxisGatedMLP", "CrossGatingBlock", "SqueezeExcite")
register_model(
    "maxim",
    f"{_MAXIM}:Maxim",
    domain=DOMAIN,
    paper=_MAXIM_PAPER,
    gates=_MAXIM_GATES,
    description="MAXIM restoration model, any config (defaults: MAXIM-2S, 3 supervision scales; 14,176,178 parameters)",
    tiny=f"{_MAXIM}:_TINY",
    example_inputs=f"{_MAXIM}:_example_inputs",
)
for _k, _desc in (  # counts as built (3 supervision scales, as run_eval.py); tests/vision/models/test_maxim.py checks them
    (1, "MAXIM-1S (official S-1: features 32, depth 3, 2 groups, 3 supervision scales; 6,139,561 parameters)"),
    (2, "MAXIM-2S (official S-2: deraining/dehazing/enhancement, 3 supervision scales; 14,176,178 parameters)"),
    (3, "MAXIM-3S (official S-3: denoising/deblurring, 3 supervision scales; 22,212,795 parameters)"),
):
    register_model(
        f"maxim-{_k}s",
        f"{_MAXIM}:Maxim",
        preset=f"S-{_k}",  # MaximConfig.presets
        domain=DOMAIN,
        paper=_MAXIM_PAPER,
        gates=_MAXIM_GATES,
        description=_desc,
        # the generic test builds the preset with its widths reduced; the full size is built and
        # counted in tests/vision/models/test_maxim.py
        tiny=f"{_MAXIM}:_TINY",
        example_inputs=f"{_MAXIM}:_example_inputs",
    )

# the restoration baseline MAXIM is compared with: no gates; its factory checks that the data
# module's num_outputs equals in_channels
_RESTORATION = "gatelab.vision.tasks.restoration"
register_model(
    "dncnn",
    f"{_RESTORATION}:dncnn",
    domain=DOMAIN,
    paper="Zhang et al., Beyond a Gaussian Denoiser: Residual Learning of Deep CNN for Image Denoising, IEEE TIP 2017",
    gates=(),
    description="DnCNN denoiser (residual conv/BN/ReLU stack; baseline, no gates; defaults: 17 layers, width 64, colour: 558,403 parameters)",
    tiny=f"{_RESTORATION}:_TINY_DNCNN",
    example_inputs=f"{_RESTORATION}:_dncnn_example",
    tags=("baseline", "restoration"),
)

# --------------------------------------------------------------------------- datasets

DATASETS.register("isbi2012-membrane", "gatelab.vision.data.segmentation_specs:MEMBRANE", domain=DOMAIN)
DATASETS.register("drive", "gatelab.vision.data.segmentation_specs:DRIVE", domain=DOMAIN)
DATASETS.register("coco_mini_images", "gatelab.vision.data.restoration:COCO_MINI", domain=DOMAIN)
DATASETS.register("denoise_testsets", "gatelab.vision.data.restoration:DENOISE_TESTSETS", domain=DOMAIN)

# --------------------------------------------------------------------------- data modules and tasks

_DM = "gatelab.vision.data.datamodule"
DATAMODULES.register("membrane", f"{_DM}:membrane_datamodule", domain=DOMAIN)
DATAMODULES.register("drive", f"{_DM}:drive_datamodule", domain=DOMAIN)
DATAMODULES.register("seg-folder", f"{_DM}:folder_datamodule", domain=DOMAIN)
DATAMODULES.register("seg-nifti", f"{_DM}:nifti_datamodule", domain=DOMAIN)
TASKS.register("segmentation", "gatelab.vision.tasks.segmentation:SegmentationTask", domain=DOMAIN)
DATAMODULES.register("denoise", f"{_DM}:denoise_datamodule", domain=DOMAIN)
DATAMODULES.register("paired_restoration", f"{_DM}:paired_datamodule", domain=DOMAIN)
TASKS.register("restoration", "gatelab.vision.tasks.restoration:RestorationTask", domain=DOMAIN)

# --------------------------------------------------------------------------- paper tables

# the ``maxim`` table's options need the test-set list of .data.restoration (torch): built in its recipe
TABLES.register("maxim", "gatelab.vision.recipes.maxim:MAXIM_TABLE", domain=DOMAIN)

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
            "pancreas (3D CT), a different dataset. Paired comparisons: Attention U-Net − U-Net per dataset, "
            "paired by seed, with the 95% paired t-interval"
        ),
        paper="Oktay et al. 2018, Attention U-Net, Table 1 (CT-150: +2.6 Dice points over U-Net)",
        run="gatelab.vision.recipes.attention_unet:run",
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
        quick_table="attention-unet-quick",
        metrics=["dice", "iou", "auc", "dice_gain", "params"],
        default_seeds=(0, 1, 2),
        not_in_hash=("datasets", "models", "output_dir", "overlays"),
        comparisons=[
            Comparison(m, "attention-unet", "unet", lower_is_better=False, label=f"Attention U-Net − U-Net ({m})")
            for m in ("dice", "iou", "auc")
        ],
    )
)
