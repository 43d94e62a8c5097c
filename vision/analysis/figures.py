"""Figures the vision recipes save: attention-map overlays of Attention U-Net and image grids.

* :func:`attention_overlay` / :func:`save_overlay` -- every attention gate's map blended over the
  input image, beside the foreground probability (``gatelab repro attention-unet``);
* :func:`save_image_grid` -- rows of images side by side, e.g. clean / noisy / restored crops
  (``gatelab repro maxim``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["attention_overlay", "save_image_grid", "save_overlay"]


def attention_overlay(image: torch.Tensor, maps: dict[str, torch.Tensor], probs: torch.Tensor) -> np.ndarray:
    """A panel ``[input | att2 | att3 | ... | P(foreground)]`` as ``uint8 [H, W * n, 3]``.

    ``image``: ``[C, H, W]`` (z-scored; shown grey or RGB, contrast-stretched to the 1st-99th
    percentile); ``maps[name]``: ``[gates, h, w]`` attention maps in ``[0, 1]`` (the mean over a
    level's gates, bilinearly resized to ``H x W``, is blended over the grey input with the
    ``jet`` colour map, opacity 0.5); ``probs``: ``[H, W]`` foreground probability (``gray``).
    """
    from matplotlib import colormaps

    img = image.float()
    lo, hi = torch.quantile(img.flatten(), torch.tensor([0.01, 0.99]))
    img = ((img - lo) / (hi - lo).clamp(min=1e-6)).clamp(0, 1)
    rgb = img.repeat(3, 1, 1) if img.shape[0] == 1 else img[:3]
    base = rgb.permute(1, 2, 0).numpy()
    grey = base.mean(axis=-1, keepdims=True).repeat(3, axis=-1)
    panels = [base]
    jet = colormaps["jet"]
    size = tuple(image.shape[1:])
    for name in sorted(maps, key=lambda n: int(n.removeprefix("att"))):
        a = maps[name].float().mean(dim=0, keepdim=True)[None]
        a = torch.nn.functional.interpolate(a, size=size, mode="bilinear", align_corners=False)[0, 0]
        heat = jet(a.clamp(0, 1).numpy())[..., :3]
        panels.append(0.5 * grey + 0.5 * heat)
    panels.append(probs.float().clamp(0, 1).numpy()[..., None].repeat(3, axis=-1))
    return (np.concatenate(panels, axis=1) * 255).round().astype(np.uint8)


@torch.no_grad()
def save_overlay(model: torch.nn.Module, case: Any, path: Path, *, max_side: int = 256) -> Path:
    """Run ``model`` (eval mode, whole image) on ``case`` and save :func:`attention_overlay` as PNG.

    Each tile is downscaled so that its longer side is at most ``max_side`` pixels, captioned
    (``input``, ``att2 (1/2)`` ..., ``P(fg)``) and the panel is stored with a 256-colour palette
    (small files).
    """
    from PIL import Image, ImageDraw

    was_training = model.training
    model.eval()
    try:
        logits, maps = model(case.image[None], return_attention=True)
    finally:
        model.train(was_training)
    probs = torch.softmax(logits.float(), dim=1)[0, 1]
    panel = attention_overlay(case.image, {k: v[0] for k, v in maps.items()}, probs)
    names = sorted(maps, key=lambda n: int(n.removeprefix("att")))
    captions = ["input", *(f"{n} (1/{2 ** (int(n.removeprefix('att')) - 1)})" for n in names), "P(fg)"]
    h, w = case.image.shape[1:]
    scale = min(1.0, max_side / max(h, w))
    tw, th = round(w * scale), round(h * scale)
    out = Image.fromarray(panel)
    if scale < 1.0:
        out = out.resize((tw * len(captions), th), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(out)
    for k, text in enumerate(captions):
        draw.text((k * tw + 4, 3), text, fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    out.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path


def save_image_grid(rows: list[list[torch.Tensor]], path: Path, pad: int = 2) -> None:
    """Save a grid of ``[3, h, w]`` images (rows x columns) as PNG, values clipped to [0, 1]."""
    from PIL import Image

    h, w = rows[0][0].shape[-2:]
    nr, nc = len(rows), len(rows[0])
    canvas = np.full((nr * (h + pad) + pad, nc * (w + pad) + pad, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            a = (img.clamp(0, 1) * 255.0).round().byte().permute(1, 2, 0).numpy()
            y, x = pad + r * (h + pad), pad + c * (w + pad)
            canvas[y : y + h, x : x + w] = a
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).save(path, optimize=True)
