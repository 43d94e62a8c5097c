"""``gatelab predict`` for the vision-language decoders: images (+ prompts) -> captions as JSONL.

Input (``--input``), one of:

* an image file (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``, ``.gif``, ``.tif``, ``.tiff``, ``.webp``);
* a folder: every file with such a suffix below it, in sorted order of the relative path;
* a ``.jsonl`` manifest, one JSON object per line: ``{"image": PATH, "prompt": TEXT}`` for a
  pixel model, ``{"features": PATH.npy, "prompt": TEXT}`` for a model trained on precomputed
  image features (``"prompt"`` optional, an ``"id"`` optional; relative paths are relative to
  the manifest's folder);
* for a features model, a ``.npy`` array ``[M, D]`` (or ``[M, N, D]``): one image per row.

The image is turned into the model's input as the training data did (``preprocessing.json``,
:meth:`gatelab.multimodal.data.datamodule.VLDataModule.preprocessing`): for pixels an RGB image,
centre square crop and bicubic resize to the training size (a grey or RGBA file is converted to
RGB, as training converted its images), ``(x - mean) / std`` and patch tokens when the model
was trained on patches; features are used as they are, their width checked.

Output (``--output``): JSONL, one line per image in input order::

    {"id": ..., "prompt": ..., "caption": "a red circle at the top",
     "token_ids": [...], "tokens": [" a", " red", ..., "[EOS]"], "finished": true,
     "gates": [[g_layer0, g_layer1, ...], ...]}

``id`` is the image path relative to the input folder (the file name for one image), the
manifest's ``"id"`` (else its line number) or the ``.npy`` row index. Decoding is greedy
(:meth:`~gatelab.multimodal.models.GatedVLDecoder.generate` with the KV cache, temperature 0) until
``[EOS]`` or the model's ``max_len`` (``max_new_tokens = max_len - prompt tokens + 1`` per image,
so a caption does not depend on the batch it is in). ``caption`` is the generated
text without special tokens, ``tokens`` each generated token decoded alone (``[EOS]`` included
when reached). ``gates[k]`` holds, per decoder layer, the token-wise gate (the share of the
visual stream) at the position that chose token ``k``; with ``gate_mode="vector"`` it is the
mean over the ``d_model`` channels (``"gate_reduce": "mean"`` is then set on the line); models
without a gate (``fusion="add"``/``"visual"``) write ``"gates": null``.

Errors (:class:`~gatelab.core.harness.errors.DataError`, naming the file and the fault): an
unreadable image, features of the wrong width, a bad manifest line, a prompt longer than the
model's ``max_len``. A model without preprocessing (built in code) or without a tokenizer
raises :class:`~gatelab.core.config.ConfigError` saying what is missing.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gatelab.core.config import ConfigError
from gatelab.core.harness.errors import DataError
from gatelab.core.harness.predict import PredictOptions, progress
from gatelab.multimodal.data.jsonl import jsonl_objects

__all__ = ["IMAGE_SUFFIXES", "UNIT", "VLItem", "image_input", "predict_path", "read_items"]

UNIT = "images"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclasses.dataclass
class VLItem:
    """One image to caption: ``id`` (as written), the image or feature file ``path`` (``row``: the
    row of a ``.npy`` array, else ``None``) and the optional ``prompt``."""

    id: str | int
    path: Path
    row: int | None = None
    prompt: str | None = None


def _image_prep(model: nn.Module, where: str) -> dict[str, Any]:
    """The ``image`` entry of the model's VL preprocessing, checked against the model."""
    prep = getattr(model, "preprocessing", None)
    if prep is None:
        raise ConfigError(
            f"{where}: no preprocessing.json: how images become the model's input (size, normalisation, "
            "patches or features) is unknown; export a training checkpoint (gatelab export CKPT DIR) or "
            "save with save_pretrained(model, dir, preprocessing=data_module.preprocessing())"
        )
    if prep.get("kind") != "vl":
        raise ConfigError(f"{where}: preprocessing kind={prep.get('kind')!r}, expected 'vl'")
    image = prep.get("image")
    if not isinstance(image, dict) or image.get("source") not in ("pixels", "features"):
        raise ConfigError(
            f"{where}: preprocessing.json 'image' must be an object with source pixels or features"
        )
    enc = model.image_encoder
    if image["source"] == "features":
        if enc.backbone is not None or int(image.get("image_dim", -1)) != enc.image_dim:
            raise ConfigError(
                f"{where}: preprocessing image_dim={image.get('image_dim')!r} does not fit the model "
                f"(image_dim={enc.image_dim}, backbone={enc.backbone_name!r})"
            )
        return image
    for key in ("size", "channels", "mean", "std", "layout", "patch"):
        if key not in image:
            raise ConfigError(f"{where}: preprocessing.json image.{key} missing")
    c, size, patch = int(image["channels"]), int(image["size"]), int(image["patch"])
    if len(image["mean"]) != c or len(image["std"]) != c or c != 3:
        raise ConfigError(
            f"{where}: preprocessing image: channels={c} with mean/std {image['mean']}/{image['std']}"
        )
    if image["layout"] == "patches":
        if size % patch or enc.backbone is not None or enc.image_dim != c * patch * patch:
            raise ConfigError(
                f"{where}: {patch}x{patch} patches of {size}x{size} images do not fit the model's image_dim={enc.image_dim}"
            )
        if (size // patch) ** 2 > enc.max_tokens:
            raise ConfigError(
                f"{where}: {(size // patch) ** 2} patches > the model's max_image_tokens={enc.max_tokens}"
            )
    elif image["layout"] != "pixels" or enc.backbone is None:
        raise ConfigError(
            f"{where}: preprocessing layout={image['layout']!r} does not fit the model (backbone={enc.backbone_name!r})"
        )
    return image


def read_items(path: Path, source: str) -> list[VLItem]:
    """The images of ``path`` (file, folder, ``.jsonl`` manifest or ``.npy`` features; module docstring)."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{path}: no image files (suffixes {', '.join(IMAGE_SUFFIXES)})")
        if source != "pixels":
            raise DataError(
                f"{path}: this model reads precomputed image features (.npy or a .jsonl manifest), not image files"
            )
        return [VLItem(p.relative_to(path).as_posix(), p) for p in files]
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _read_manifest(path, source)
    if suffix == ".npy":
        if source != "features":
            raise DataError(
                f"{path}: this model captions images (files, a folder or a .jsonl manifest), not .npy features"
            )
        arr = _load_npy(path)
        return [VLItem(i, path, row=i) for i in range(arr.shape[0])]
    if suffix in IMAGE_SUFFIXES:
        if source != "pixels":
            raise DataError(
                f"{path}: this model reads precomputed image features (.npy or a .jsonl manifest), not image files"
            )
        return [VLItem(path.name, path)]
    raise DataError(
        f"{path}: expected an image ({', '.join(IMAGE_SUFFIXES)}), a folder, a .jsonl manifest or a .npy array"
    )


def _read_manifest(path: Path, source: str) -> list[VLItem]:
    key = "image" if source == "pixels" else "features"
    items: list[VLItem] = []
    for lineno, rec in jsonl_objects(path, {key, "prompt", "id"}, error=DataError):
        if not isinstance(rec.get(key), str):
            raise DataError(f"{path}:{lineno}: key {key!r} missing or not a path")
        prompt = rec.get("prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise DataError(f"{path}:{lineno}: 'prompt' must be a string, got {type(prompt).__name__}")
        file = Path(rec[key])
        file = file if file.is_absolute() else path.parent / file
        if not file.is_file():
            raise DataError(f"{path}:{lineno}: {key} file {file} not found")
        items.append(VLItem(rec.get("id", lineno), file, prompt=prompt))
    if not items:
        raise DataError(f"{path}: no manifest lines")
    return items


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as e:
        raise DataError(f"{path}: not a plain .npy array ({e})") from None


def image_input(item: VLItem, image: dict[str, Any]) -> torch.Tensor:
    """The model's image input of one item: pixels ``[C, S, S]``, patch tokens ``[N, C p p]``
    or features ``[D]`` / ``[N, D]`` (see the module docstring)."""
    if image["source"] == "features":
        arr = _load_npy(item.path)
        x = arr[item.row] if item.row is not None else arr
        where = f"{item.path}" + (f" row {item.row}" if item.row is not None else "")
        D = int(image["image_dim"])
        if x.ndim not in (1, 2) or x.shape[-1] != D:
            raise DataError(f"{where}: features of shape {tuple(x.shape)}, expected [{D}] or [N, {D}]")
        t = torch.from_numpy(np.array(x, dtype=np.float32))
        if not torch.isfinite(t).all():
            raise DataError(f"{where}: features contain NaN or infinite values")
        return t
    from PIL import UnidentifiedImageError

    from gatelab.multimodal.data.captions import load_image
    from gatelab.multimodal.data.shapes import patchify

    try:
        x = load_image(item.path, int(image["size"]))
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{item.path}: cannot read as an image ({e})") from None
    mean = torch.tensor(image["mean"], dtype=x.dtype)[:, None, None]
    std = torch.tensor(image["std"], dtype=x.dtype)[:, None, None]
    x = (x - mean) / std
    if image["layout"] == "patches":
        return patchify(x[None], int(image["patch"]))[0]
    return x


def _prompt_ids(tok: Any, prompt: str | None) -> list[int]:
    from gatelab.multimodal.data.tokenizer import BOS_ID, EOS_ID

    if not prompt:
        return [BOS_ID]
    return [BOS_ID, *[t for t in tok.encode(prompt).ids if t not in (BOS_ID, EOS_ID)]]


def _batches(items: list[VLItem], size: int) -> Iterator[list[VLItem]]:
    for lo in range(0, len(items), size):
        yield items[lo : lo + size]


def predict_path(model: nn.Module, input: Path, output: Path, options: PredictOptions) -> int:
    """The ``gatelab predict`` entry of the multimodal domain: caption every image of ``input``
    into the JSONL ``output`` (see the module docstring); returns the images captioned."""
    input, output = Path(input), Path(output)
    image = _image_prep(model, str(input))
    tok = model.tokenizer
    if tok is None:
        raise ConfigError(f"{input}: the model has no tokenizer (extra_state.json); it cannot write captions")
    items = read_items(input, image["source"])
    prompts = [_prompt_ids(tok, it.prompt) for it in items]
    for it, ids in zip(items, prompts):
        if len(ids) > model.max_len:
            raise DataError(
                f"{input}: the prompt of item {it.id!r} has {len(ids)} tokens > the model's max_len={model.max_len}"
            )
    device = torch.device(options.device)
    vector = getattr(model, "gate_mode", "scalar") == "vector"
    gated = getattr(model, "fusion", None) == "gate"
    model.eval()
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".part")
    done = 0
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            total = -(-len(items) // options.batch_size)
            for batch in progress(
                _batches(items, options.batch_size), total=total, desc="vl captions", options=options
            ):
                x = [image_input(it, image) for it in batch]
                for it, t in zip(batch, x):
                    if (
                        image["source"] == "features"
                        and t.dim() == 2
                        and t.shape[0] > model.image_encoder.max_tokens
                    ):
                        raise DataError(
                            f"{it.path}: {t.shape[0]} feature tokens > the model's max_image_tokens="
                            f"{model.image_encoder.max_tokens} (item {it.id!r})"
                        )
                shapes = {tuple(t.shape) for t in x}
                if len(shapes) > 1:
                    raise DataError(f"{input}: images of different token shapes {sorted(shapes)} in one run")
                rows = _generate(model, torch.stack(x).to(device), prompts[done : done + len(batch)], gated)
                for it, (tokens, caption, finished, gates) in zip(batch, rows):
                    rec: dict[str, Any] = {
                        "id": it.id,
                        "prompt": it.prompt,
                        "caption": caption,
                        "token_ids": tokens,
                        "tokens": [tok.decode([t], skip_special_tokens=False) for t in tokens],
                        "finished": finished,
                        "gates": None,
                    }
                    if gates is not None:
                        g = gates.float().mean(-1) if vector else gates[..., 0].float()  # [n, layers]
                        rec["gates"] = [[round(float(v), 6) for v in row] for row in g]
                        if vector:
                            rec["gate_reduce"] = "mean"
                    fh.write(json.dumps(rec) + "\n")
                done += len(batch)
        os.replace(tmp, output)
    finally:
        if tmp.exists():
            tmp.unlink()
    return done


def _generate(
    model: nn.Module, image: torch.Tensor, prompts: list[list[int]], gated: bool
) -> list[tuple[list[int], str, bool, torch.Tensor | None]]:
    """Greedy generation of one batch: ``(token ids, caption, finished, gates [n, layers, G] or
    None)`` per row. Rows are decoded in groups of one prompt length ``L``, each with all the room
    left, ``max_len - L + 1`` new tokens (so a row's caption does not depend on its batch)."""
    groups: dict[int, list[int]] = {}
    for k, ids in enumerate(prompts):
        groups.setdefault(len(ids), []).append(k)
    rows: list[Any] = [None] * len(prompts)
    for length, idx in groups.items():
        sel = torch.tensor(idx, device=image.device)
        out = model.generate(
            image[sel],
            [prompts[k] for k in idx],
            max_new_tokens=model.max_len - length + 1,
            return_gates=gated,
        )
        for j, k in enumerate(idx):
            n = int(out.lengths[j])
            gates = out.gates[j, :n] if out.gates is not None else None
            rows[k] = (out.sequences[j, :n].tolist(), out.texts[j], bool(out.finished[j]), gates)
    return rows
