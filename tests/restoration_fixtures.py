"""Helpers of the MAXIM / restoration tests (a module, not a conftest, so other vision tests
can keep their own tests/vision/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def _save(path: Path, h: int, w: int, seed: int, channels: int = 3) -> None:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (h, w, channels) if channels == 3 else (h, w), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def make_fake_restoration_data(root: Path) -> Path:
    """Every file the pinned coco_mini / denoise_testsets lists name, as tiny random images in
    the real layout under ``root`` (COCO 40x48 RGB; test sets 20x24, grey for Set12/BSD68)."""
    pinned = json.loads(
        (Path(__file__).resolve().parents[1] / "vision" / "data" / "restoration_files.json").read_text()
    )
    for i, rel in enumerate(pinned["coco_mini"]):
        _save(root / "coco_mini" / rel, 40, 48, seed=i)
    for i, rel in enumerate(pinned["denoise_testsets"]):
        grey = rel.split("/")[0] in ("Set12", "BSD68")
        _save(root / "denoise_testsets" / rel, 20, 24, seed=1000 + i, channels=1 if grey else 3)
    return root


def make_paired_restoration_data(root: Path) -> Path:
    """A paired folder set (``<split>/input`` noisy, ``<split>/target`` clean PNGs): 4 train
    24x24, 2 val 16x16 and 1 test 19x13 images, seeded; returns ``root``."""
    rng = np.random.default_rng(0)
    for split, n, size in (("train", 4, (24, 24)), ("val", 2, (16, 16)), ("test", 1, (19, 13))):
        for i in range(n):
            clean = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
            for d, a in (("input", noisy), ("target", clean)):
                (root / split / d).mkdir(parents=True, exist_ok=True)
                Image.fromarray(a).save(root / split / d / f"{i}.png")
    return root
