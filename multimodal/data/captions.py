"""Image-caption readers: COCO caption JSON, the BabyLM multimodal layout, a JSONL manifest.

* **COCO** (``coco_mini``: 159 COCO 2017 images x 5 captions): ``annotations/captions_<split>2017.json``
  with ``images[{id, file_name, ...}]`` and ``annotations[{image_id, id, caption}]``; images under
  ``<split>2017/``. :func:`read_coco_captions` returns one record per image with its captions;
  :func:`load_image` reads an image as a square tensor (centre crop, resize).
* **BabyLM multimodal track** (as the paper's ``datasets/utils.py`` reads it): a JSON list of caption
  strings (``cc_3M_captions.json``, ``local_narr_captions.json``) and, row-aligned with it, one or
  more ``.npy`` shards of DINOv2 image embeddings ``[n_i, 768]`` (``cc_3M_dino_v2_states_1of2.npy``,
  ``..._2of2.npy``) concatenated in order: :func:`read_babylm`.
* **JSONL manifest** of (caption, embedding file) pairs: one JSON object per line,
  ``{"caption": str, "embedding": "path/to/file.npy", "index": int (optional)}``; the ``.npy`` holds
  one embedding (``[D]`` or patch tokens ``[N, D]``), or with ``index`` a row of a stacked array.
  Relative paths are resolved against the manifest's folder: :func:`read_caption_manifest`.

Every reader checks what it reads and names the file, line and key at fault.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gatelab.core.harness import DatasetSpec
from gatelab.multimodal.data.jsonl import jsonl_objects

__all__ = [
    "COCO_MINI",
    "CocoImage",
    "load_image",
    "read_babylm",
    "read_caption_manifest",
    "read_coco_captions",
]

COCO_MINI = DatasetSpec(
    name="coco-mini-captions",
    subdir="coco_mini",
    files={
        "annotations/captions_train2017.json": "42be98d9f3f07f9961ad33119b80b6582bbfd9bd0e13ed7485910342babf26a5",
        "annotations/captions_val2017.json": "1e7ca2a0d0ebe94d60ada0747bf9ba0accac281785dfdba771b2d47b0b11e135",
    },
    source=(
        "github.com/Obmutescence/COCO-MINI commit 644f29e7 (a 159-image subset of MS-COCO 2017 with the "
        "official captions); full COCO: https://cocodataset.org/#download (annotations_trainval2017.zip, "
        "train2017/val2017 images)"
    ),
    license=(
        "annotations CC BY 4.0 (COCO Consortium); images keep their Flickr licences (mostly "
        "non-commercial / no-derivatives): research use only, never redistributed"
    ),
    description="COCO 2017 captions of the 159 coco_mini images (80 train2017, 79 val2017), 5 per image",
    compressed=False,
)


@dataclasses.dataclass(frozen=True)
class CocoImage:
    """One COCO image: its id, file path and captions (in annotation order)."""

    image_id: int
    path: Path
    captions: tuple[str, ...]


def read_coco_captions(
    json_path: str | os.PathLike[str], image_dir: str | os.PathLike[str]
) -> list[CocoImage]:
    """Images with their captions from a COCO ``captions_*.json`` (sorted by image id).

    Raises ``ValueError`` naming the file and key for a malformed JSON, a caption whose
    ``image_id`` is not among ``images``, or an image without captions; ``FileNotFoundError``
    for a missing image file.
    """
    json_path, image_dir = Path(json_path), Path(image_dir)
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{json_path}: not valid JSON ({e})") from None
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise ValueError(
                f"{json_path}: missing list {key!r} (a COCO captions file has 'images' and 'annotations')"
            )
    files: dict[int, str] = {}
    for i, im in enumerate(data["images"]):
        if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
            raise ValueError(f"{json_path}: images[{i}] needs 'id' and 'file_name', got {im!r}")
        files[int(im["id"])] = str(im["file_name"])
    caps: dict[int, list[str]] = {i: [] for i in files}
    for j, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or "image_id" not in ann or "caption" not in ann:
            raise ValueError(f"{json_path}: annotations[{j}] needs 'image_id' and 'caption', got {ann!r}")
        iid = int(ann["image_id"])
        if iid not in caps:
            raise ValueError(
                f"{json_path}: annotations[{j}] refers to image_id {iid}, which is not in 'images'"
            )
        caps[iid].append(" ".join(str(ann["caption"]).split()))
    out = []
    for iid in sorted(files):
        if not caps[iid]:
            raise ValueError(f"{json_path}: image {iid} ({files[iid]}) has no caption")
        path = image_dir / files[iid]
        if not path.is_file():
            raise FileNotFoundError(f"{json_path}: image file of image_id {iid} not found: {path}")
        out.append(CocoImage(iid, path, tuple(caps[iid])))
    return out


def load_image(path: str | os.PathLike[str], size: int) -> torch.Tensor:
    """An RGB image as a ``[3, size, size]`` float tensor in [0, 1] (centre square crop, bicubic resize)."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        im = im.crop((left, top, left + s, top + s)).resize((size, size), Image.Resampling.BICUBIC)
        arr = np.asarray(im, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def _load_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"embedding file not found: {path}")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as e:
        raise ValueError(f"{path}: not a plain .npy array ({e})") from None


def read_babylm(
    captions_json: str | os.PathLike[str], embedding_files: Sequence[str | os.PathLike[str]]
) -> tuple[list[str], torch.Tensor]:
    """Captions and their row-aligned image embeddings in the BabyLM multimodal layout.

    Args:
        captions_json: JSON list of caption strings.
        embedding_files: ``.npy`` shards ``[n_i, D]`` concatenated in the given order.

    Returns ``(captions, embeddings [N, D] float32)``. A count or width mismatch is an error.
    """
    cpath = Path(captions_json)
    try:
        captions = json.loads(cpath.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{cpath}: not valid JSON ({e})") from None
    if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
        raise ValueError(f"{cpath}: expected a JSON list of caption strings")
    if not embedding_files:
        raise ValueError("read_babylm: no embedding files given")
    shards = []
    for f in embedding_files:
        arr = _load_npy(Path(f))
        if arr.ndim != 2:
            raise ValueError(f"{f}: expected embeddings [n, D], got shape {arr.shape}")
        if shards and arr.shape[1] != shards[0].shape[1]:
            raise ValueError(
                f"{f}: embedding width {arr.shape[1]} != {shards[0].shape[1]} of {embedding_files[0]}"
            )
        shards.append(arr)
    n = sum(len(a) for a in shards)
    if n != len(captions):
        raise ValueError(
            f"{cpath}: {len(captions)} captions but {n} embeddings in {', '.join(map(str, embedding_files))}"
        )
    emb = torch.from_numpy(np.concatenate([np.asarray(a, dtype=np.float32) for a in shards], axis=0))
    return [" ".join(c.split()) for c in captions], emb


def read_caption_manifest(path: str | os.PathLike[str]) -> tuple[list[str], torch.Tensor]:
    """Captions and embeddings from a JSONL manifest of (caption, embedding file) pairs.

    Returns ``(captions, embeddings [N, D] or [N, T, D] float32)``; all embeddings must share
    one shape.
    """
    path = Path(path)
    captions: list[str] = []
    vectors: list[np.ndarray] = []
    cache: dict[Path, np.ndarray] = {}
    for lineno, rec in jsonl_objects(path, {"caption", "embedding", "index"}):
        for key in ("caption", "embedding"):
            if not isinstance(rec.get(key), str):
                raise ValueError(f"{path}:{lineno}: missing string key {key!r}")
        file = Path(rec["embedding"])
        file = file if file.is_absolute() else path.parent / file
        if file not in cache:
            cache[file] = _load_npy(file)
        arr = cache[file]
        if "index" in rec:
            idx = rec["index"]
            if not isinstance(idx, int) or not 0 <= idx < len(arr):
                raise ValueError(
                    f"{path}:{lineno}: index {idx!r} out of range for {file} with {len(arr)} rows"
                )
            arr = arr[idx]
        vec = np.asarray(arr, dtype=np.float32)
        if vec.ndim not in (1, 2):
            raise ValueError(
                f"{path}:{lineno}: embedding in {file} has shape {vec.shape}; expected [D] or [N, D]"
            )
        if vectors and vec.shape != vectors[0].shape:
            raise ValueError(
                f"{path}:{lineno}: embedding shape {vec.shape} != {vectors[0].shape} of the first line"
            )
        captions.append(" ".join(rec["caption"].split()))
        vectors.append(vec)
    if not captions:
        raise ValueError(f"{path}: no records")
    return captions, torch.from_numpy(np.stack(vectors))
