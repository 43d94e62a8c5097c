"""The generated "shapes" dataset: coloured shapes in a 2x2 grid with templated captions.

Each image (``size x size`` RGB, rendered with PIL) holds one or two objects, each a
``colour`` x ``shape`` in one of the four cells (``top left`` ... ``bottom right``), with random
size, offset and a slight colour jitter. Every caption is built from a template whose colour,
shape and position words are drawn from the image's objects, so those words can only be predicted
by looking at the image; the rest of the caption (``there is a``, ``in the``, ``and``, ``.``) is
predictable from the text alone. The dataset is therefore a test of *grounding*: a model whose
token-wise gate is useful should open it towards the image where the next word is a colour, shape
or position word.

Everything is deterministic given the seed (:func:`make_shapes`).
"""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import torch
from PIL import Image, ImageDraw

__all__ = ["COLOURS", "POSITIONS", "SHAPES", "ShapesData", "caption_for", "make_shapes", "patchify", "render"]

#: colour name -> RGB
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 90, 230),
    "yellow": (235, 215, 40),
    "purple": (150, 60, 200),
    "orange": (245, 140, 30),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond")
#: position words -> grid cell (row, col)
POSITIONS: dict[str, tuple[int, int]] = {
    "top left": (0, 0),
    "top right": (0, 1),
    "bottom left": (1, 0),
    "bottom right": (1, 1),
}

_ONE = (
    "there is a {c} {s} in the {p}.",
    "a {c} {s} in the {p}.",
    "in the {p} there is a {c} {s}.",
    "the {s} is {c}.",
    "i see a {c} {s}.",
)
_TWO = (
    "a {c} {s} and a {c2} {s2}.",
    "there is a {c} {s} in the {p} and a {c2} {s2} in the {p2}.",
    "the {s} is {c} and the {s2} is {c2}.",
    "in the {p} there is a {c} {s} and in the {p2} there is a {c2} {s2}.",
)

Obj = tuple[str, str, str]  # colour, shape, position


def render(objects: list[Obj], size: int = 32, rng: random.Random | None = None) -> Image.Image:
    """Draw ``objects`` (colour, shape, position) on a dark background; ``size`` must be even."""
    rng = rng or random.Random(0)
    if size % 2 or size < 8:
        raise ValueError(f"render: size must be an even number >= 8, got {size}")
    img = Image.new("RGB", (size, size), (25, 25, 25))
    draw = ImageDraw.Draw(img)
    cell = size // 2
    for colour, shape, pos in objects:
        r, c = POSITIONS[pos]
        s = rng.randint(int(cell * 0.55), int(cell * 0.85))
        x0 = c * cell + rng.randint(0, cell - s)
        y0 = r * cell + rng.randint(0, cell - s)
        x1, y1 = x0 + s - 1, y0 + s - 1
        fill = tuple(max(0, min(255, v + rng.randint(-20, 20))) for v in COLOURS[colour])
        if shape == "circle":
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        elif shape == "square":
            draw.rectangle((x0, y0, x1, y1), fill=fill)
        elif shape == "triangle":
            draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=fill)
        elif shape == "diamond":
            mx, my = (x0 + x1) / 2, (y0 + y1) / 2
            draw.polygon([(mx, y0), (x1, my), (mx, y1), (x0, my)], fill=fill)
        else:
            raise ValueError(f"render: unknown shape {shape!r}; known: {SHAPES}")
    return img


def caption_for(objects: list[Obj], rng: random.Random) -> str:
    """A templated caption of ``objects`` (one or two)."""
    if len(objects) == 1:
        ((c, s, p),) = objects
        return rng.choice(_ONE).format(c=c, s=s, p=p)
    if len(objects) == 2:
        (c, s, p), (c2, s2, p2) = objects
        return rng.choice(_TWO).format(c=c, s=s, p=p, c2=c2, s2=s2, p2=p2)
    raise ValueError(f"caption_for: 1 or 2 objects, got {len(objects)}")


@dataclasses.dataclass
class ShapesData:
    """Rendered images ``[N, 3, size, size]`` (float in [0, 1]), ``captions[i]`` (``captions_per_image``
    per image, flattened) and ``caption_image[i]``: the image index of caption ``i``."""

    images: torch.Tensor
    captions: list[str]
    caption_image: list[int]
    objects: list[list[Obj]]


def make_shapes(
    n_images: int,
    *,
    size: int = 32,
    captions_per_image: int = 1,
    two_object_prob: float = 0.5,
    seed: int = 0,
) -> ShapesData:
    """Generate ``n_images`` shapes images with their captions (deterministic in ``seed``)."""
    if n_images < 1 or captions_per_image < 1:
        raise ValueError(
            f"make_shapes: n_images and captions_per_image must be >= 1, got {n_images}, {captions_per_image}"
        )
    rng = random.Random(seed)
    colours, positions = list(COLOURS), list(POSITIONS)
    images = np.empty((n_images, size, size, 3), dtype=np.uint8)
    captions: list[str] = []
    owner: list[int] = []
    all_objects: list[list[Obj]] = []
    for i in range(n_images):
        k = 2 if rng.random() < two_object_prob else 1
        pos = rng.sample(positions, k)
        pos.sort(key=lambda p: POSITIONS[p])  # reading order: top before bottom, left before right
        objs: list[Obj] = []
        for p in pos:
            c = rng.choice(colours)
            s = rng.choice(SHAPES)
            while any(o[0] == c and o[1] == s for o in objs):  # two identical objects would be ambiguous
                c, s = rng.choice(colours), rng.choice(SHAPES)
            objs.append((c, s, p))
        images[i] = np.asarray(render(objs, size, rng))
        for _ in range(captions_per_image):
            captions.append(caption_for(objs, rng))
            owner.append(i)
        all_objects.append(objs)
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    return ShapesData(tensor, captions, owner, all_objects)


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """Non-overlapping ``patch x patch`` patches as tokens: ``[N, C, H, W]`` -> ``[N, (H/p)(W/p), C p p]``,
    row-major over the grid (ViT's patch order), each token ``(C, p, p)`` flattened."""
    if images.dim() != 4:
        raise ValueError(f"patchify: expected images [N, C, H, W], got {tuple(images.shape)}")
    N, C, H, W = images.shape
    if H % patch or W % patch:
        raise ValueError(f"patchify: image size {H}x{W} is not divisible by patch={patch}")
    x = images.reshape(N, C, H // patch, patch, W // patch, patch)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(N, (H // patch) * (W // patch), C * patch * patch)
