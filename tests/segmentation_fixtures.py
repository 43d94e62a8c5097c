"""Shared fixtures of the segmentation tests (``from segmentation_fixtures import ...``).

Used by tests/vision/tasks/test_segmentation.py, tests/core/harness/resume_cases.py and
tools/reliability/ddp.py: tiny image/label folders in the real on-disk formats read by the
``seg-folder`` (PNG) and ``seg-nifti`` (NIfTI) data modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

#: the folder arguments of ``seg-folder`` / ``seg-nifti`` for the layout written below
FOLDERS: dict[str, str] = {
    "train_images": "train/img",
    "train_labels": "train/lab",
    "test_images": "test/img",
    "test_labels": "test/lab",
}


def write_pngs(root: Path, counts: Mapping[str, int], seed: int) -> None:
    """Grey 24x20 images with a bright rectangle and 0/255 label PNGs under ``root/<split>/{img,lab}/<k>.png``.

    ``counts``: split -> number of cases, written in that order from one ``default_rng(seed)``.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, n in counts.items():
        for k in range(n):
            lab = np.zeros((24, 20), np.uint8)
            lab[5:15, 4:12] = 255
            img = (rng.normal(100, 10, (24, 20)) + (lab > 0) * 60).clip(0, 255).astype(np.uint8)
            _save(root, split, k, img, lab, lambda path, arr: Image.fromarray(arr).save(path), ".png")


def write_nifti(
    root: Path, counts: Mapping[str, int], shape: tuple[int, int, int], box: tuple[slice, ...], seed: int
) -> None:
    """N(0, 1) float volumes of ``shape`` with label 1 (and +3 intensity) inside ``box``, saved as
    ``root/<split>/{img,lab}/v<k>.nii.gz`` (identity affine); ``counts`` as in :func:`write_pngs`."""
    import nibabel as nib

    rng = np.random.default_rng(seed)
    for split, n in counts.items():
        for k in range(n):
            vol = rng.normal(0, 1, shape).astype(np.float32)
            lab = np.zeros(vol.shape, np.uint8)
            lab[box] = 1
            vol[lab == 1] += 3
            _save(
                root,
                split,
                f"v{k}",
                vol,
                lab,
                lambda path, arr: nib.save(nib.Nifti1Image(arr, np.eye(4)), str(path)),
                ".nii.gz",
            )


def _save(root: Path, split: str, key: Any, img: np.ndarray, lab: np.ndarray, save: Any, ext: str) -> None:
    for sub, arr in (("img", img), ("lab", lab)):
        (root / split / sub).mkdir(parents=True, exist_ok=True)
        save(root / split / sub / f"{key}{ext}", arr)
