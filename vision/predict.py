"""``gatelab predict`` for vision models: segmentation masks (+ attention maps) and restored images.

Called by :func:`gatelab.core.harness.predict.predict` with a model loaded by
:func:`~gatelab.core.pretrained.from_pretrained`; ``--output`` is always a folder (created).
What to do comes from the model's ``preprocessing.json`` (``model.preprocessing``, written by
the data modules' ``preprocessing()``:
:func:`~gatelab.vision.data.datamodule.segmentation_preprocessing` /
:func:`~gatelab.vision.data.datamodule.restoration_preprocessing`).

**Segmentation** (``attention-unet-2d`` / ``attention-unet-3d``, ``"kind": "segmentation"``):

* input: one image file or a folder of them (not recursive), PNG / TIFF / GIF / JPEG / BMP for a
  2D model, NIfTI (``.nii`` / ``.nii.gz``) for a 3D model. When the model was normalised over a
  field of view (``normalize_over: fov``, e.g. DRIVE), the input is a folder with ``images/``
  and ``masks/`` or ``mask/`` (the FOV masks, nonzero = inside, paired by ``key_pattern`` or file
  name: a DRIVE ``test`` folder is such an input);
* each image is read, its ``channels`` selected, normalised on its own statistics exactly as in
  training, and predicted with Gaussian sliding-window inference over ``roi_size`` windows (the
  training patch; :func:`~gatelab.vision.tasks.inference.sliding_window_inference`; mirror
  test-time augmentation when ``sliding_window.mirror_axes`` is set). ``--batch-size`` is the
  number of windows per forward pass (lower it for large 3D windows);
* output ``<output>/<name>.png`` (2D, same height and width; 8-bit, or 16-bit when a mask value
  exceeds 255) or ``<output>/<name>.nii[.gz]`` (3D, the input's voxel grid with its affine and
  header copied, integer data): the argmax class of every pixel written as its raw label value
  (``mask_values``: e.g. DRIVE's 0 / 255, membrane 0 = membrane). Pixels outside a field-of-view
  mask are written as class 0;
* attention maps (Attention U-Net): ``<output>/attention/<name>_att<L>_gate<g>.png`` (2D: the
  gate coefficient ``alpha`` of gate ``g`` of gated level ``L``, stitched over the windows and
  resampled to the image grid, written as ``round(255 * alpha)`` 8-bit) or ``...nii.gz`` (3D:
  ``float32`` alpha with the input's affine). One file per gate and level.

**Restoration** (``dncnn``, ``maxim``, ``maxim-1s/2s/3s``, ``"kind": "restoration"``): image file(s)
-> ``<output>/<name>.png``: 8-bit images read as RGB (``channels: 3``) or grey (1) divided by 255,
restored (the last output of the last stage for MAXIM), clipped to ``[0, 1]``, times 255 and
rounded. Whole images in one pass (MAXIM pads to its size multiple internally), or tiled when
``tile`` is set. A restoration model saved without ``preprocessing.json`` is run with that
convention (the only one gatelab's restoration data modules use: it loses nothing); a segmentation
model without one is an error (its normalisation is unknown).

Errors (:class:`~gatelab.core.harness.errors.DataError`, naming the file): an unreadable file, a
wrong channel count (a grey file for an RGB model and vice versa: nothing is converted), a 2D model
given a NIfTI volume or a multi-page TIFF, a 3D model given a 2D image, 16-bit images for a
restoration model trained on 8-bit data, two inputs writing the same output name, a missing mask.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gatelab.core.harness.errors import DataError
from gatelab.core.harness.predict import PredictOptions, progress

__all__ = ["UNIT", "predict_path", "predict_restoration", "predict_segmentation"]

#: what one predicted item is
UNIT = "images"

_IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".gif", ".jpg", ".jpeg", ".bmp")
_NIFTI_SUFFIXES = (".nii.gz", ".nii")


def _kind_of(model: nn.Module) -> str:
    prep = getattr(model, "preprocessing", None)
    if isinstance(prep, Mapping):
        return str(prep.get("kind"))
    from gatelab.vision.models.unet import UNet

    return "segmentation" if isinstance(model, UNet) else "restoration"


def predict_path(model: nn.Module, input: Path, output: Path, options: PredictOptions) -> int:
    """Predict every image under ``input`` into the folder ``output``; returns the number of images.

    Dispatches on ``model.preprocessing["kind"]`` (``segmentation`` / ``restoration``; a model
    without preprocessing: a U-Net is segmentation, anything else restoration). See the module
    docstring for the formats.
    """
    kind = _kind_of(model)
    if kind == "segmentation":
        return predict_segmentation(model, input, output, options)
    if kind == "restoration":
        return predict_restoration(model, input, output, options)
    raise DataError(
        f"predict: the model's preprocessing has kind={kind!r}; gatelab.vision.predict reads "
        "'segmentation' and 'restoration'"
    )


# --------------------------------------------------------------------------- file listing


def _stem(path: Path) -> str:
    low = path.name.lower()
    for suf in (*_NIFTI_SUFFIXES, *_IMAGE_SUFFIXES):
        if low.endswith(suf):
            return path.name[: -len(suf)]
    return path.stem


def _suffix(path: Path) -> str:
    low = path.name.lower()
    for suf in (*_NIFTI_SUFFIXES, *_IMAGE_SUFFIXES):
        if low.endswith(suf):
            return suf
    return path.suffix.lower()


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(_NIFTI_SUFFIXES)


def _files(input: Path) -> list[Path]:
    """``input`` itself, or the files of the folder ``input`` (sorted; hidden files skipped;
    sub-folders are not searched)."""
    if input.is_file():
        return [input]
    if not input.is_dir():
        raise DataError(f"predict: input {input}: no such file or folder")
    files = sorted(p for p in input.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise DataError(f"predict: input folder {input} holds no files")
    return files


def _check_suffixes(files: Sequence[Path], allowed: Sequence[str], what: str) -> None:
    bad = [f for f in files if not f.name.lower().endswith(tuple(allowed))]
    if bad:
        shown = ", ".join(str(p) for p in bad[:5]) + (f" (+{len(bad) - 5} more)" if len(bad) > 5 else "")
        raise DataError(f"predict: {shown}: not {what} (expected files ending in {', '.join(allowed)})")


def _unique_names(files: Sequence[Path]) -> None:
    seen: dict[str, Path] = {}
    for f in files:
        s = _stem(f)
        if s in seen:
            raise DataError(f"predict: {seen[s]} and {f} would both write the output {s!r}; rename one")
        seen[s] = f


# --------------------------------------------------------------------------- segmentation


def _seg_prep(model: nn.Module) -> dict[str, Any]:
    prep = getattr(model, "preprocessing", None)
    name = getattr(model, "registry_name", type(model).__name__)
    if not isinstance(prep, Mapping):
        raise DataError(
            f"predict: the segmentation model {name} has no preprocessing.json: how its training images "
            "were normalised is unknown. Export it from a training checkpoint (gatelab export CKPT DIR) or "
            "save it with save_pretrained(model, dir, preprocessing=segmentation_preprocessing(...)) "
            "(gatelab.vision.data.datamodule)"
        )
    required = ("spatial_dims", "in_channels", "num_classes", "normalize", "normalize_over", "mask_values")
    missing = [k for k in required if k not in prep]
    if missing:
        raise DataError(f"predict: the model's preprocessing.json lacks {missing} (kind segmentation)")
    cfg = getattr(model, "config", None)
    for key in ("spatial_dims", "in_channels", "num_classes"):
        if cfg is not None and hasattr(cfg, key) and int(getattr(cfg, key)) != int(prep[key]):
            raise DataError(
                f"predict: preprocessing.json {key}={prep[key]} disagrees with the model's config "
                f"{key}={getattr(cfg, key)}"
            )
    return dict(prep)


def _seg_inputs(input: Path, prep: Mapping[str, Any]) -> list[tuple[Path, Path | None]]:
    """``[(image, fov mask or None)]`` of the input (see the module docstring)."""
    nd = int(prep["spatial_dims"])
    if prep["normalize_over"] == "fov":
        images = input / "images"
        found = [input / m for m in ("masks", "mask") if (input / m).is_dir()]
        if not images.is_dir() or len(found) != 1:
            raise DataError(
                f"predict: the model normalises each image over its field-of-view mask (normalize_over: fov), "
                f"so the input must be a folder with images/ and masks/ (or mask/, DRIVE's name); {input} "
                + ("has both masks/ and mask/" if len(found) == 2 else "is not")
            )
        masks = found[0]
        img_files, mask_files = _files(images), _files(masks)
        pattern = re.compile(prep["key_pattern"]) if prep.get("key_pattern") else None

        def key(p: Path) -> str:
            if pattern is None:
                return _stem(p)
            m = pattern.search(p.name)
            if m is None:
                raise DataError(f"predict: {p} does not match key_pattern {prep['key_pattern']!r}")
            return m.group(1) if m.groups() else m.group(0)

        by_key: dict[str, Path] = {}
        for f in mask_files:
            k = key(f)
            if k in by_key:
                raise DataError(f"predict: masks {by_key[k]} and {f} have the same key {k!r}")
            by_key[k] = f
        pairs = []
        for f in img_files:
            k = key(f)
            if k not in by_key:
                raise DataError(f"predict: no mask in {masks} for image {f} (key {k!r})")
            pairs.append((f, by_key.pop(k)))
        if by_key:
            raise DataError(f"predict: mask(s) {sorted(str(p) for p in by_key.values())[:5]} have no image in {images}")
    else:
        pairs = [(f, None) for f in _files(input)]
    files = [p for p, _ in pairs]
    if nd == 2:
        vols = [f for f in files if _is_nifti(f)]
        if vols:
            raise DataError(
                f"predict: {vols[0]} is a NIfTI volume but the model is 2D (spatial_dims=2); "
                "segment 3D volumes with a 3D model (attention-unet-3d) or give 2D image files"
            )
        _check_suffixes(files, _IMAGE_SUFFIXES, "a 2D image file")
    else:
        flat = [f for f in files if f.name.lower().endswith(_IMAGE_SUFFIXES)]
        if flat:
            raise DataError(
                f"predict: {flat[0]} is a 2D image but the model is 3D (spatial_dims=3); give NIfTI volumes "
                "(.nii / .nii.gz)"
            )
        _check_suffixes(files, _NIFTI_SUFFIXES, "a NIfTI volume")
    _unique_names(files)
    return pairs


def _read_seg_image(path: Path, mask: Path | None, prep: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray | None, Any]:
    """``(normalised image [C, *S], FOV mask [*S] or None, NIfTI image or None)``."""
    from gatelab.vision.data.segmentation import normalize_image, read_image, read_label, read_nifti

    nifti = None
    try:
        if int(prep["spatial_dims"]) == 2:
            if path.suffix.lower() in (".tif", ".tiff"):
                _single_page(path)
            image = read_image(path)
        else:
            import nibabel as nib

            image = read_nifti(path)
            nifti = nib.load(str(path))
            _check_spacing(path, prep)
        valid = read_label(mask) > 0 if mask is not None else None
    except DataError as e:
        raise DataError(f"predict: {e}") from None
    channels = prep.get("channels")
    if channels is not None:
        if max(channels) >= image.shape[0]:
            raise DataError(
                f"predict: {path} has {image.shape[0]} channel(s); the model reads channel(s) {list(channels)} "
                f"of each file (e.g. the green channel of RGB images)"
            )
        image = image[list(channels)]
    want = int(prep["in_channels"])
    if image.shape[0] != want:
        raise DataError(
            f"predict: {path} has {image.shape[0]} channel(s), the model expects {want} "
            f"({'grey' if want == 1 else 'RGB' if want == 3 else f'{want}-channel'} images); nothing is converted"
        )
    if valid is not None and tuple(valid.shape) != tuple(image.shape[1:]):
        raise DataError(f"predict: mask {mask} has size {tuple(valid.shape)}, image {path} has {tuple(image.shape[1:])}")
    if valid is not None and not valid.any():
        raise DataError(f"predict: mask {mask} is empty (no pixel inside the field of view)")
    return normalize_image(image, str(prep["normalize"]), valid), valid, nifti


def _check_spacing(path: Path, prep: Mapping[str, Any]) -> None:
    """A model trained on volumes resampled to ``prep["spacing"]`` (``target_spacing``) takes
    volumes of that spacing only: predict does not resample (the masks keep the input's grid)."""
    want = prep.get("spacing")
    if want is None:
        return
    from gatelab.vision.data.segmentation import GEOMETRY_ATOL, GEOMETRY_RTOL, read_nifti_geometry

    have = read_nifti_geometry(path).spacing_dhw
    if any(abs(a - b) > GEOMETRY_ATOL + GEOMETRY_RTOL * abs(b) for a, b in zip(have, want, strict=True)):
        raise DataError(
            f"predict: {path} has spacing {tuple(round(v, 6) for v in have)} mm; the model was trained on volumes "
            f"resampled to {tuple(want)} mm and predict does not resample: resample the volume first"
        )


def _single_page(path: Path) -> None:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            pages = len(tf.pages)
    except Exception as e:  # tifffile raises many types for foreign files
        raise DataError(f"predict: cannot read TIFF file {path}: {type(e).__name__}: {e}") from None
    if pages > 1:
        raise DataError(
            f"predict: {path} is a multi-page TIFF ({pages} pages) but the model is 2D; give one image per file"
        )


def predict_segmentation(model: nn.Module, input: Path, output: Path, options: PredictOptions) -> int:
    """Masks (+ attention maps) of every image under ``input`` in ``output`` (module docstring)."""
    from gatelab.vision.tasks.inference import sliding_window_inference

    prep = _seg_prep(model)
    pairs = _seg_inputs(input, prep)
    sw = dict(prep.get("sliding_window") or {})
    roi = sw.get("roi_size") or prep.get("patch_size")
    if roi is None:
        raise DataError("predict: the model's preprocessing.json has neither sliding_window.roi_size nor patch_size")
    mask_values = [int(v) for v in prep["mask_values"]]
    if len(mask_values) != int(prep["num_classes"]):
        raise DataError(f"predict: preprocessing.json mask_values={mask_values} must give one value per class")
    attention = bool(getattr(model, "attention", False))
    device = torch.device(options.device)
    output.mkdir(parents=True, exist_ok=True)
    if attention:
        (output / "attention").mkdir(exist_ok=True)

    def predictor(t: torch.Tensor) -> Any:
        return model(t, return_attention=True) if attention else model(t)

    for path, mask in progress(pairs, total=len(pairs), desc="segment", options=options):
        image, valid, nifti = _read_seg_image(path, mask, prep)
        x = torch.from_numpy(np.ascontiguousarray(image))[None].to(device)
        out = sliding_window_inference(
            x,
            [int(r) for r in roi],
            predictor,
            overlap=float(sw.get("overlap", 0.5)),
            mode=str(sw.get("mode", "gaussian")),
            sw_batch_size=options.batch_size,
            mirror_axes=sw.get("mirror_axes"),
        )
        logits, maps = out if isinstance(out, tuple) else (out, {})
        classes = logits[0].argmax(0).cpu().numpy()
        if valid is not None:
            classes = np.where(valid, classes, 0)
        raw = np.asarray(mask_values, dtype=np.int64)[classes]
        stem = _stem(path)
        if nifti is None:
            _write_png(output / f"{stem}.png", raw)
            for name, m in maps.items():
                for g in range(m.shape[1]):
                    alpha = m[0, g].clamp(0, 1).cpu().numpy()
                    _write_png(output / "attention" / f"{stem}_{name}_gate{g}.png", np.rint(alpha * 255))
        else:
            _write_nifti(output / f"{stem}{_suffix(path)}", raw, nifti, integer=True)
            for name, m in maps.items():
                for g in range(m.shape[1]):
                    _write_nifti(
                        output / "attention" / f"{stem}_{name}_gate{g}.nii.gz", m[0, g].cpu().numpy(), nifti, integer=False
                    )
    return len(pairs)


def _write_png(path: Path, arr: np.ndarray) -> None:
    from PIL import Image

    if arr.min() < 0 or arr.max() > 65535:
        raise DataError(f"predict: values of {path} outside 0..65535 (mask_values?)")
    dtype = np.uint8 if arr.max() <= 255 else np.uint16
    Image.fromarray(np.ascontiguousarray(arr.astype(dtype))).save(path)


def _write_nifti(path: Path, arr: np.ndarray, like: Any, *, integer: bool) -> None:
    """``arr [Z, Y, X]`` as a NIfTI of ``like``'s grid: its affine and header (dtype, shape and
    scaling set for ``arr``; a 4D input's channel axis dropped)."""
    import nibabel as nib

    data = np.ascontiguousarray(np.transpose(arr, (2, 1, 0)))
    if integer:
        data = data.astype(np.uint8 if data.max() <= 255 and data.min() >= 0 else np.int32)
    else:
        data = data.astype(np.float32)
    header = like.header.copy()
    header.set_data_dtype(data.dtype)
    header.set_data_shape(data.shape)
    img = type(like)(data, like.affine, header=header)
    img.header.set_slope_inter(1.0, 0.0)
    nib.save(img, str(path))


# --------------------------------------------------------------------------- restoration


def _restoration_prep(model: nn.Module) -> dict[str, Any]:
    from gatelab.vision.data.datamodule import restoration_preprocessing

    cfg = getattr(model, "config", None)
    channels = int(getattr(cfg, "in_channels", 3))
    prep = getattr(model, "preprocessing", None)
    if prep is None:
        return restoration_preprocessing(channels=channels)  # the one convention: 8-bit / 255
    if int(prep.get("channels", -1)) != channels:
        raise DataError(
            f"predict: preprocessing.json channels={prep.get('channels')!r} disagrees with the model's "
            f"in_channels={channels}"
        )
    if float(prep.get("scale", 0)) != 255.0:
        raise DataError(f"predict: preprocessing.json scale={prep.get('scale')!r}: this reader handles 255 (8-bit)")
    return dict(prep)


_ONE_BAND = {"1", "L", "LA", "La"}
_THREE_BANDS = {"RGB", "RGBA", "RGBa", "RGBX", "P", "PA", "YCbCr", "CMYK", "LAB", "HSV"}


def _read_restoration_image(path: Path, channels: int) -> torch.Tensor:
    """``float32 [C, H, W]`` in ``[0, 1]``; a file of the other channel count or not 8-bit raises."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode in _ONE_BAND:
                have = 1
            elif mode in _THREE_BANDS:
                have = 3
            else:
                raise DataError(
                    f"predict: {path} has pixel mode {mode} (16-bit or float); the model was trained on 8-bit "
                    "images (values / 255)"
                )
            if have != channels:
                raise DataError(
                    f"predict: {path} has {have} channel(s) ({mode}), the model expects {channels} "
                    f"({'grey' if channels == 1 else 'RGB'}); nothing is converted"
                )
            arr = np.array(im.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"predict: cannot read image {path}: {type(e).__name__}: {e}") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).float().div_(255.0)


def _same_size_batches(files: Sequence[Path], images: Iterator[torch.Tensor], size: int) -> Iterator[tuple[list[Path], torch.Tensor]]:
    """Consecutive images of one size stacked into batches of at most ``size``."""
    names: list[Path] = []
    batch: list[torch.Tensor] = []
    for f, img in zip(files, images, strict=True):
        if batch and (len(batch) == size or img.shape != batch[0].shape):
            yield names, torch.stack(batch)
            names, batch = [], []
        names.append(f)
        batch.append(img)
    if batch:
        yield names, torch.stack(batch)


def predict_restoration(model: nn.Module, input: Path, output: Path, options: PredictOptions) -> int:
    """Restored 8-bit PNGs of every image under ``input`` in ``output`` (module docstring)."""
    from gatelab.vision.tasks.metrics import final_output

    prep = _restoration_prep(model)
    channels = int(prep["channels"])
    files = _files(input)
    vols = [f for f in files if _is_nifti(f)]
    if vols:
        raise DataError(f"predict: {vols[0]} is a NIfTI volume; restoration models take 2D images")
    _check_suffixes(files, _IMAGE_SUFFIXES, "an image file")
    _unique_names(files)
    device = torch.device(options.device)
    tile = prep.get("tile")
    output.mkdir(parents=True, exist_ok=True)

    def run(x: torch.Tensor) -> torch.Tensor:
        if tile is None:
            return final_output(model(x))
        from gatelab.vision.models.maxim import tiled_forward

        return tiled_forward(lambda t: final_output(model(t)), x, tile=int(tile), overlap=int(prep.get("tile_overlap", 32)))

    images = (_read_restoration_image(f, channels) for f in files)
    batches = _same_size_batches(files, images, options.batch_size)
    count = 0
    for names, x in progress(batches, total=None, desc="restore", options=options):
        y = run(x.to(device)).float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
        for f, arr in zip(names, y, strict=True):
            _write_png(output / f"{_stem(f)}.png", arr[0] if channels == 1 else arr.transpose(1, 2, 0))
            count += 1
    return count
