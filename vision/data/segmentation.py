"""Segmentation data: image/mask readers, 2D folder and 3D NIfTI datasets, patch sampling, augmentation.

Layers (no Lightning here; the Lightning data modules are in :mod:`.datamodule`):

* **Readers** turn files into arrays and fail with a :class:`SegmentationDataError` naming the file:
  :func:`read_image` (PNG, TIFF, GIF, JPEG, BMP -> ``[C, H, W]``), :func:`read_label`
  (``[H, W]`` integer values), :func:`read_tiff_stack` (multi-page TIFF -> ``[N, H, W(, C)]``),
  :func:`read_nifti` (NIfTI-1/2 via nibabel -> ``[C, D, H, W]`` or ``[D, H, W]``).
* **Cases**: a :class:`SegmentationCase` is one image or volume with its class-index label map
  and a validity mask (a field-of-view mask such as DRIVE's, else everywhere true).
  :func:`load_case`, :func:`load_folder`, :func:`load_tiff_stacks` and :func:`load_nifti_folder`
  build them, checking that image, label and mask sizes agree and that every label value is in
  the dataset's label set (``label_values``: raw value -> class index).
* **Sampling**: :class:`PatchDataset` draws random patches (optionally centred on a foreground
  voxel with probability ``fg_prob``: foreground-aware sampling for sparse 3D targets) and
  augments them (:class:`Augment`: flips, in-plane 90-degree rotations, small rotations and
  elastic deformation through one ``grid_sample``). :class:`CaseDataset` yields whole cases
  for sliding-window evaluation.

Axis conventions: 2D images are ``[C, H, W]``; NIfTI volumes, stored ``(X, Y, Z[, C])``, are
transposed to ``[C, Z, Y, X]`` (= ``[C, D, H, W]``), so the in-plane axes of axial slices are the
last two and in-plane augmentation acts on them.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from gatelab.core.harness.errors import DataError

from .decode import decode_png_jpeg

__all__ = [
    "IMAGE_SUFFIXES",
    "Augment",
    "CaseDataset",
    "NiftiGeometry",
    "PatchDataset",
    "SegmentationCase",
    "SegmentationDataError",
    "check_same_geometry",
    "load_case",
    "load_folder",
    "load_nifti_folder",
    "load_tiff_stacks",
    "map_labels",
    "normalize_image",
    "pair_files",
    "read_image",
    "read_label",
    "read_nifti",
    "read_nifti_geometry",
    "read_tiff_stack",
    "resample_case",
]

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".gif", ".jpg", ".jpeg", ".bmp")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
NORMALIZE = ("zscore", "unit", "none")

PathLike = str | os.PathLike[str]


class SegmentationDataError(DataError, ValueError):
    """A segmentation file is unreadable or inconsistent; the message names the file(s)."""


# --------------------------------------------------------------------------- readers


def _is_tiff(path: Path) -> bool:
    return path.suffix.lower() in (".tif", ".tiff")


def _grey_palette(frame) -> bool:
    """Whether every palette entry a palette image uses is grey (R = G = B)."""
    pal = frame.getpalette() or []
    used = np.unique(np.asarray(frame))
    rgb = np.asarray(pal, dtype=np.int64).reshape(-1, 3)
    used = used[used < len(rgb)]
    return bool(len(rgb)) and bool((rgb[used] == rgb[used][:, :1]).all())


def _pil_frame(frame, label: bool) -> np.ndarray:
    if frame.mode == "1":
        frame = frame.convert("L")
    elif frame.mode in ("P", "PA"):
        if _grey_palette(frame):
            frame = frame.convert("L")  # a grey palette shows its grey values (GIF masks: 0 / 255)
        elif not label:
            frame = frame.convert("RGB")
        # a colour-palette label map (PASCAL-VOC style): the palette indices are the classes
    return np.array(frame)


def _pil_pages(path: Path, first_only: bool, label: bool = False) -> np.ndarray:
    from PIL import Image, ImageSequence

    with Image.open(path) as im:
        pages = []
        for frame in ImageSequence.Iterator(im):
            pages.append(_pil_frame(frame, label))
            if first_only:
                break
    return pages[0] if first_only else np.stack(pages)


def _read_tiff(path: Path, first_only: bool) -> np.ndarray:
    """tifffile first (any dtype, stacks); Pillow when tifffile lacks a codec (LZW without imagecodecs)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            return tf.pages[0].asarray() if first_only else tf.asarray()
    except Exception as first:
        try:
            return _pil_pages(path, first_only)
        except Exception:
            raise first from None


def _read_array(path: PathLike, label: bool = False) -> np.ndarray:
    """Raw pixel array of a 2D image file (``[H, W]`` or ``[H, W, C]``).

    Palette images: grey palettes give their grey values; colour palettes give RGB for images and
    the palette indices for label maps (``label=True``). 8-bit non-palette PNGs and JPEGs are
    decoded by ``torchvision.io.decode_image`` (:func:`~gatelab.vision.data.decode.decode_png_jpeg`,
    the same pixels as Pillow), the rest by Pillow, TIFF by tifffile.
    """
    path = Path(path)
    if not path.is_file():
        raise SegmentationDataError(f"image file not found: {path}")
    try:
        if _is_tiff(path):
            arr = _read_tiff(path, True)
        elif (img := decode_png_jpeg(path)) is not None:  # 8-bit non-palette PNG, JPEG: torchvision
            arr = img[0].numpy() if img.shape[0] == 1 else img.permute(1, 2, 0).numpy()
        else:
            arr = _pil_pages(path, True, label)
    except Exception as e:  # PIL/tifffile raise many types for truncated or foreign files
        raise SegmentationDataError(f"cannot read image file {path}: {type(e).__name__}: {e}") from None
    return np.array(arr)


def read_image(path: PathLike) -> np.ndarray:
    """A 2D image as ``float32 [C, H, W]`` (raw intensities; grey images get ``C = 1``).

    PNG/JPEG through ``torchvision.io.decode_image`` (palette or non-8-bit PNGs: Pillow), GIF/BMP
    through Pillow, TIFF through tifffile (a single page; use
    :func:`read_tiff_stack` for stacks). An alpha channel is dropped.
    """
    arr = _read_array(path)
    if arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim == 3 and arr.shape[-1] in (1, 2, 3, 4):
        if arr.shape[-1] in (2, 4):  # grey+alpha / RGBA
            arr = arr[..., :-1]
        arr = np.moveaxis(arr, -1, 0)
    else:
        raise SegmentationDataError(
            f"image file {path}: expected a 2D image [H, W] or [H, W, C<=4], got array shape {arr.shape} "
            "(a multi-page TIFF? use read_tiff_stack)"
        )
    _check_finite_image(arr, f"image file {path}")
    return arr.astype(np.float32, copy=False)


def _check_finite_image(arr: np.ndarray, what: str) -> None:
    """Float images (TIFF, NIfTI) may hold NaN/inf: an error naming the file, the count and the first voxel."""
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise SegmentationDataError(
                f"{what}: {int(bad.sum())} non-finite intensity value(s) (NaN/inf), the first at index {first}"
                f" of array shape {arr.shape}"
            )


def read_label(path: PathLike) -> np.ndarray:
    """A 2D label image as its integer values ``[H, W]``.

    Grey-palette GIF/PNG masks give their grey values (DRIVE's ``{0, 255}``); colour-palette label
    maps give their palette indices.
    """
    arr = _read_array(path, label=True)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        rgb = arr[..., :3]
        if not ((rgb == rgb[..., :1]).all()):
            raise SegmentationDataError(
                f"label file {path}: colour label image (channels differ); expected one value per pixel"
            )
        arr = rgb[..., 0]
    if arr.ndim != 2:
        raise SegmentationDataError(
            f"label file {path}: expected a 2D label image, got array shape {arr.shape}"
        )
    if not np.issubdtype(arr.dtype, np.integer) and not np.issubdtype(arr.dtype, np.bool_):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise SegmentationDataError(f"label file {path}: non-integer label values (dtype {arr.dtype})")
    return arr.astype(np.int64)


def read_tiff_stack(path: PathLike) -> np.ndarray:
    """Every page of a multi-page TIFF (e.g. ISBI 2012 ``train-volume.tif``): ``[N, H, W(, C)]``."""
    path = Path(path)
    if not path.is_file():
        raise SegmentationDataError(f"TIFF stack not found: {path}")
    try:
        arr = np.asarray(_read_tiff(path, False))
    except Exception as e:
        raise SegmentationDataError(f"cannot read TIFF stack {path}: {type(e).__name__}: {e}") from None
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim not in (3, 4):
        raise SegmentationDataError(
            f"TIFF stack {path}: expected [N, H, W(, C)] pages, got shape {arr.shape}"
        )
    return arr


def read_nifti(path: PathLike, *, label: bool = False) -> np.ndarray:
    """A NIfTI volume through nibabel, axes reordered to ``[C, D, H, W]`` = ``[C, Z, Y, X]``.

    Images come back as ``float32 [C, D, H, W]`` (a 3D file gets ``C = 1``; a 4D file's last axis
    is the channel). With ``label=True`` a 3D integer map ``int64 [D, H, W]``; non-integer values
    raise. The affine is not applied (voxel grid as stored); image and label must share it.
    """
    path = Path(path)
    if not path.is_file():
        raise SegmentationDataError(f"NIfTI file not found: {path}")
    try:
        import nibabel as nib

        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except Exception as e:
        raise SegmentationDataError(f"cannot read NIfTI file {path}: {type(e).__name__}: {e}") from None
    if data.dtype.names is not None or not (
        np.issubdtype(data.dtype, np.integer)
        or np.issubdtype(data.dtype, np.floating)
        or np.issubdtype(data.dtype, np.bool_)
    ):
        raise SegmentationDataError(
            f"NIfTI file {path}: voxel dtype {data.dtype} is not a real number type (complex or RGB"
            " NIfTI data would lose information when converted); store real-valued volumes"
        )
    if label:
        if data.ndim == 4 and data.shape[-1] == 1:
            data = data[..., 0]
        if data.ndim != 3:
            raise SegmentationDataError(f"NIfTI label {path}: expected a 3D volume, got shape {data.shape}")
        if not np.issubdtype(data.dtype, np.integer):
            if not np.all(np.isfinite(data)) or not np.all(data == np.round(data)):
                raise SegmentationDataError(
                    f"NIfTI label {path}: non-integer label values (dtype {data.dtype})"
                )
        return np.ascontiguousarray(np.transpose(data, (2, 1, 0))).astype(np.int64)
    if data.ndim == 3:
        data = data[..., None]
    if data.ndim != 4:
        raise SegmentationDataError(f"NIfTI image {path}: expected a 3D or 4D volume, got shape {data.shape}")
    _check_finite_image(data, f"NIfTI image {path} (axes X, Y, Z, C)")
    return np.ascontiguousarray(np.transpose(data, (3, 2, 1, 0))).astype(np.float32)


#: tolerance of :func:`check_same_geometry`: ``|a - b| <= GEOMETRY_ATOL + GEOMETRY_RTOL * |b|``
#: per element of the spacing (mm), the origin (mm) and the direction cosines (unitless)
GEOMETRY_RTOL, GEOMETRY_ATOL = 1e-5, 1e-4


@dataclasses.dataclass(frozen=True)
class NiftiGeometry:
    """Where a NIfTI volume's voxels are, from its affine (nibabel: the sform, else the qform).

    ``shape``: the first three axes as stored ``(X, Y, Z)``; ``spacing``: voxel size per stored
    axis (mm, the norms of the affine's first three columns); ``origin``: world position (mm) of
    voxel ``(0, 0, 0)``; ``direction``: ``3 x 3``, column ``i`` the unit world direction of stored
    axis ``i``. :attr:`spacing_dhw` is the spacing in the ``[D, H, W]`` order of the arrays.
    """

    shape: tuple[int, ...]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[tuple[float, float, float], ...]

    @property
    def spacing_dhw(self) -> tuple[float, float, float]:
        x, y, z = self.spacing
        return (z, y, x)


def read_nifti_geometry(path: PathLike) -> NiftiGeometry:
    """The :class:`NiftiGeometry` of a NIfTI file, from its header alone (no voxel data is read)."""
    path = Path(path)
    if not path.is_file():
        raise SegmentationDataError(f"NIfTI file not found: {path}")
    try:
        import nibabel as nib

        img = nib.load(str(path))
        affine = np.asarray(img.affine, dtype=np.float64)
        shape = tuple(int(n) for n in img.shape)
    except Exception as e:
        raise SegmentationDataError(f"cannot read NIfTI header {path}: {type(e).__name__}: {e}") from None
    if affine.shape != (4, 4) or not np.isfinite(affine).all():
        raise SegmentationDataError(f"NIfTI file {path}: invalid affine {affine.tolist()}")
    cols = affine[:3, :3]
    spacing = np.linalg.norm(cols, axis=0)
    if (spacing <= 0).any():
        raise SegmentationDataError(f"NIfTI file {path}: degenerate affine (a zero voxel size) {affine.tolist()}")
    direction = cols / spacing
    return NiftiGeometry(
        shape=shape[:3],
        spacing=tuple(float(v) for v in spacing),  # type: ignore[arg-type]
        origin=tuple(float(v) for v in affine[:3, 3]),  # type: ignore[arg-type]
        direction=tuple(tuple(float(v) for v in row) for row in direction),
    )


def check_same_geometry(
    image: NiftiGeometry,
    label: NiftiGeometry,
    image_path: PathLike,
    label_path: PathLike,
    *,
    rtol: float = GEOMETRY_RTOL,
    atol: float = GEOMETRY_ATOL,
) -> None:
    """Raise :class:`SegmentationDataError` naming both files unless image and label share the voxel
    grid: shape, spacing, origin and direction equal within ``|a - b| <= atol + rtol * |b|``.

    Like nnU-Net's dataset integrity check (``np.allclose`` of spacing, origin and direction), with
    ``atol = 1e-4`` rather than ``1e-8`` so float32 header rounding passes; a label written with
    another affine (e.g. resampled or flipped) is an error, never silently aligned.
    """
    if tuple(image.shape) != tuple(label.shape):
        raise SegmentationDataError(
            f"size mismatch: image {image_path} has voxel grid {image.shape}, label {label_path} has"
            f" {label.shape} (NIfTI axes X, Y, Z)"
        )
    for what, a, b, unit in (
        ("spacing", image.spacing, label.spacing, " mm (axes X, Y, Z)"),
        ("origin", image.origin, label.origin, " mm"),
        ("direction", image.direction, label.direction, " (direction cosines, columns = axes X, Y, Z)"),
    ):
        if not np.allclose(np.asarray(b), np.asarray(a), rtol=rtol, atol=atol):
            diff = float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
            raise SegmentationDataError(
                f"geometry mismatch: NIfTI image {image_path} and label {label_path} differ in {what}:"
                f" {_fmt(a)} vs {_fmt(b)}{unit}; max difference {diff:.3g} > tolerance {atol} + {rtol} * |value|"
            )


def _fmt(v: Sequence[Any]) -> str:
    if v and isinstance(v[0], (tuple, list)):
        return "[" + ", ".join(_fmt(r) for r in v) + "]"
    return "(" + ", ".join(f"{float(x):.6g}" for x in v) + ")"


def resample_case(
    image: np.ndarray,
    label: np.ndarray,
    spacing: Sequence[float],
    target_spacing: Sequence[float],
    source: str = "volume",
) -> tuple[np.ndarray, np.ndarray]:
    """Resample ``image [C, *S]`` (trilinear/bilinear) and ``label [*S]`` (nearest) from voxel size
    ``spacing`` to ``target_spacing`` (both per spatial axis, ``[D, H, W]`` order).

    New size per axis: ``max(1, round(n * spacing / target_spacing))``; voxel centres are aligned
    as ``F.interpolate(align_corners=False)``. (nnU-Net resamples images with third-order splines
    and labels per class; linear / nearest here.)
    """
    nd = label.ndim
    if len(spacing) != nd or len(target_spacing) != nd:
        raise SegmentationDataError(
            f"{source}: spacing {tuple(spacing)} / target_spacing {tuple(target_spacing)} need {nd} values"
        )
    if any(t <= 0 for t in target_spacing):
        raise SegmentationDataError(f"{source}: target_spacing {tuple(target_spacing)} must be positive")
    size = tuple(max(1, round(n * s / t)) for n, s, t in zip(label.shape, spacing, target_spacing, strict=True))
    if size == tuple(label.shape):
        return image, label
    mode = "trilinear" if nd == 3 else "bilinear"
    img = F.interpolate(torch.from_numpy(np.ascontiguousarray(image))[None].float(), size=size, mode=mode, align_corners=False)
    lab = F.interpolate(torch.from_numpy(np.ascontiguousarray(label))[None, None].float(), size=size, mode="nearest")
    return img[0].numpy(), lab[0, 0].round().to(torch.int64).numpy()


def map_labels(raw: np.ndarray, label_values: Mapping[int, int], source: str) -> np.ndarray:
    """Map raw label values to class indices (``label_values[raw] -> class``).

    Raises :class:`SegmentationDataError` naming ``source`` and the values that are not in the
    label set (nothing is clipped or dropped silently).
    """
    values = np.unique(raw)
    unknown = [int(v) for v in values if int(v) not in label_values]
    if unknown:
        raise SegmentationDataError(
            f"label file {source}: values {unknown[:10]}{' ...' if len(unknown) > 10 else ''} are outside the "
            f"label set {sorted(label_values)} (mapping raw value -> class {dict(sorted(label_values.items()))})"
        )
    if min(label_values) < 0:
        return np.vectorize(lambda v: label_values[int(v)], otypes=[np.int64])(raw)
    lut = np.zeros(max(label_values) + 1, dtype=np.int64)
    for k, v in label_values.items():
        lut[k] = v
    return lut[raw]


def normalize_image(image: np.ndarray, mode: str = "zscore", valid: np.ndarray | None = None) -> np.ndarray:
    """Intensity normalisation of one image ``[C, *S]`` (per channel).

    * ``zscore``: ``(x - mean) / std`` over the pixels where ``valid`` (all pixels if ``None``);
    * ``unit``: divide by the dtype range of the stored values (255 for 8-bit data: values are
      taken as 8-bit when their maximum is <= 255, else 16-bit 65535);
    * ``none``: unchanged.
    """
    if mode not in NORMALIZE:
        raise ValueError(f"normalize={mode!r} is not one of {NORMALIZE}")
    image = image.astype(np.float32, copy=True)
    if mode == "none":
        return image
    if mode == "unit":
        scale = 255.0 if image.max(initial=0.0) <= 255 else 65535.0
        return image / scale
    sel = image[:, valid] if valid is not None else image.reshape(image.shape[0], -1)
    mean = sel.mean(axis=1).reshape(-1, *([1] * (image.ndim - 1)))
    std = sel.std(axis=1).reshape(-1, *([1] * (image.ndim - 1)))
    return (image - mean) / np.maximum(std, 1e-6)


# --------------------------------------------------------------------------- cases


@dataclasses.dataclass
class SegmentationCase:
    """One image (2D) or volume (3D) with its labels.

    ``image``: ``float32 [C, *S]``; ``label``: ``int64 [*S]`` class indices; ``valid``:
    ``bool [*S]`` where predictions are scored and the loss is taken (field of view; all true
    when the dataset has none); ``name``: an identifier (file stem).
    """

    name: str
    image: torch.Tensor
    label: torch.Tensor
    valid: torch.Tensor
    #: voxel size per spatial axis (``[D, H, W]`` order, mm) when known (NIfTI), else ``None``
    spacing: tuple[float, ...] | None = None

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(self.image.shape[1:])

    def foreground_index(self) -> torch.Tensor:
        """Flat indices of the voxels with a non-background class inside ``valid`` (cached)."""
        idx = getattr(self, "_fg", None)
        if idx is None:
            idx = torch.nonzero(((self.label > 0) & self.valid).reshape(-1)).reshape(-1)
            object.__setattr__(self, "_fg", idx)
        return idx


def _check_shapes(
    image: np.ndarray, label: np.ndarray, valid: np.ndarray | None, names: Sequence[str]
) -> None:
    if tuple(image.shape[1:]) != tuple(label.shape):
        raise SegmentationDataError(
            f"size mismatch: image {names[0]} has spatial size {tuple(image.shape[1:])}, "
            f"label {names[1]} has {tuple(label.shape)}"
        )
    if valid is not None and tuple(valid.shape) != tuple(label.shape):
        raise SegmentationDataError(
            f"size mismatch: mask {names[2]} has size {tuple(valid.shape)}, "
            f"image {names[0]} has {tuple(image.shape[1:])}"
        )


def make_case(
    name: str,
    image: np.ndarray,
    raw_label: np.ndarray,
    *,
    label_values: Mapping[int, int],
    valid: np.ndarray | None = None,
    normalize: str = "zscore",
    sources: Sequence[str] = ("image", "label", "mask"),
    spacing: Sequence[float] | None = None,
) -> SegmentationCase:
    """Build a :class:`SegmentationCase` from arrays (checks sizes and label values)."""
    _check_shapes(image, raw_label, valid, sources)
    label = map_labels(raw_label, label_values, sources[1])
    valid_b = np.ones(label.shape, dtype=bool) if valid is None else valid.astype(bool)
    img = normalize_image(image, normalize, valid_b if valid is not None else None)
    return SegmentationCase(
        name=name,
        image=torch.from_numpy(np.ascontiguousarray(img)),
        label=torch.from_numpy(np.ascontiguousarray(label)),
        valid=torch.from_numpy(np.ascontiguousarray(valid_b)),
        spacing=tuple(float(v) for v in spacing) if spacing is not None else None,
    )


def load_case(
    image_path: PathLike,
    label_path: PathLike,
    valid_path: PathLike | None = None,
    *,
    label_values: Mapping[int, int],
    normalize: str = "zscore",
    name: str | None = None,
) -> SegmentationCase:
    """One 2D case from files (image; label image; optional field-of-view mask, nonzero = inside)."""
    image = read_image(image_path)
    raw = read_label(label_path)
    valid = read_label(valid_path) > 0 if valid_path is not None else None
    return make_case(
        name or Path(image_path).stem,
        image,
        raw,
        label_values=label_values,
        valid=valid,
        normalize=normalize,
        sources=(str(image_path), str(label_path), str(valid_path)),
    )


def _strip_suffix(name: str) -> str:
    low = name.lower()
    for suf in (*NIFTI_SUFFIXES, *IMAGE_SUFFIXES):
        if low.endswith(suf):
            return name[: -len(suf)]
    return Path(name).stem


def _key(path: Path, pattern: re.Pattern[str] | None) -> str | None:
    stem = _strip_suffix(path.name)
    if pattern is None:
        return stem
    m = pattern.search(path.name)
    if m is None:
        return None
    return m.group(1) if m.groups() else m.group(0)


def _listing(folder: Path, suffixes: Sequence[str], what: str) -> list[Path]:
    if not folder.is_dir():
        raise SegmentationDataError(f"{what} folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(tuple(suffixes)))
    if not files:
        raise SegmentationDataError(f"{what} folder {folder} holds no files ending in {', '.join(suffixes)}")
    return files


def pair_files(
    image_dir: PathLike,
    label_dir: PathLike,
    valid_dir: PathLike | None = None,
    *,
    key_pattern: str | None = None,
    suffixes: Sequence[str] = IMAGE_SUFFIXES,
) -> list[tuple[str, Path, Path, Path | None]]:
    """Match images to labels (and masks) by a key: ``[(key, image, label, mask | None)]``.

    The key is the file name without its suffix, or, with ``key_pattern`` (a regex searched in
    the file name), its first group (DRIVE: ``r"^(\\d+)_"`` pairs ``21_training.tif``,
    ``21_manual1.gif`` and ``21_training_mask.gif``). An image without a label (or mask), a label
    without an image, or two files with one key raise, naming the files.
    """
    pattern = re.compile(key_pattern) if key_pattern else None
    folders = {"image": Path(image_dir), "label": Path(label_dir)}
    if valid_dir is not None:
        folders["mask"] = Path(valid_dir)
    by_kind: dict[str, dict[str, Path]] = {}
    for kind, folder in folders.items():
        table: dict[str, Path] = {}
        for f in _listing(folder, suffixes, kind):
            k = _key(f, pattern)
            if k is None:
                raise SegmentationDataError(f"{kind} file {f} does not match key_pattern {key_pattern!r}")
            if k in table:
                raise SegmentationDataError(f"{kind} files {table[k]} and {f} have the same key {k!r}")
            table[k] = f
        by_kind[kind] = table
    images = by_kind["image"]
    for kind, table in by_kind.items():
        if kind == "image":
            continue
        missing = sorted(set(images) - set(table))
        extra = sorted(set(table) - set(images))
        if missing:
            raise SegmentationDataError(
                f"no {kind} file in {folders[kind]} for image(s) {[str(images[k]) for k in missing[:5]]}"
            )
        if extra:
            raise SegmentationDataError(
                f"{kind} file(s) {[str(table[k]) for k in extra[:5]]} have no image in {folders['image']}"
            )
    keys = sorted(images, key=lambda k: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", k)])
    return [(k, images[k], by_kind["label"][k], by_kind.get("mask", {}).get(k)) for k in keys]


def load_folder(
    image_dir: PathLike,
    label_dir: PathLike,
    valid_dir: PathLike | None = None,
    *,
    label_values: Mapping[int, int],
    key_pattern: str | None = None,
    normalize: str = "zscore",
) -> list[SegmentationCase]:
    """Every 2D case of an image folder + label folder (+ field-of-view folder), see :func:`pair_files`."""
    return [
        load_case(img, lab, val, label_values=label_values, normalize=normalize, name=key)
        for key, img, lab, val in pair_files(image_dir, label_dir, valid_dir, key_pattern=key_pattern)
    ]


def load_tiff_stacks(
    image_stack: PathLike,
    label_stack: PathLike,
    *,
    label_values: Mapping[int, int],
    normalize: str = "zscore",
) -> list[SegmentationCase]:
    """2D cases from a pair of multi-page TIFFs (page ``k`` of the labels labels page ``k``)."""
    images = read_tiff_stack(image_stack)
    labels = read_tiff_stack(label_stack)
    if labels.ndim != 3:
        raise SegmentationDataError(
            f"label stack {label_stack}: expected [N, H, W] pages, got {labels.shape}"
        )
    if images.shape[0] != labels.shape[0]:
        raise SegmentationDataError(
            f"size mismatch: image stack {image_stack} has {images.shape[0]} pages, "
            f"label stack {label_stack} has {labels.shape[0]}"
        )
    cases = []
    for k in range(images.shape[0]):
        page = images[k]
        img = page[None] if page.ndim == 2 else np.moveaxis(page, -1, 0)
        cases.append(
            make_case(
                str(k),
                img.astype(np.float32),
                labels[k].astype(np.int64),
                label_values=label_values,
                normalize=normalize,
                sources=(f"{image_stack}[page {k}]", f"{label_stack}[page {k}]", ""),
            )
        )
    return cases


def load_nifti_folder(
    image_dir: PathLike,
    label_dir: PathLike,
    *,
    label_values: Mapping[int, int],
    key_pattern: str | None = None,
    normalize: str = "zscore",
    target_spacing: Sequence[float] | None = None,
    geometry_atol: float = GEOMETRY_ATOL,
) -> list[SegmentationCase]:
    """3D cases from a folder of NIfTI images and one of NIfTI labels (paired as :func:`pair_files`).

    Image and label must share the voxel grid: shape, spacing, origin and direction are compared
    (:func:`check_same_geometry`, tolerance ``geometry_atol + 1e-5 |value|``) before any voxel is
    read. With ``target_spacing`` (mm per axis, ``[D, H, W]`` = ``(z, y, x)`` order) every case is
    resampled to it (:func:`resample_case`) before normalisation; each case records its
    ``spacing``. See :func:`read_nifti` for axes.
    """
    cases = []
    for key, img_path, lab_path, _ in pair_files(
        image_dir, label_dir, key_pattern=key_pattern, suffixes=NIFTI_SUFFIXES
    ):
        geom = read_nifti_geometry(img_path)
        check_same_geometry(geom, read_nifti_geometry(lab_path), img_path, lab_path, atol=geometry_atol)
        image = read_nifti(img_path)
        raw = read_nifti(lab_path, label=True)
        spacing: Sequence[float] = geom.spacing_dhw
        if target_spacing is not None:
            _check_shapes(image, raw, None, (str(img_path), str(lab_path), ""))
            image, raw = resample_case(image, raw, spacing, target_spacing, source=str(img_path))
            spacing = tuple(float(t) for t in target_spacing)
        cases.append(
            make_case(
                key,
                image,
                raw,
                label_values=label_values,
                normalize=normalize,
                sources=(str(img_path), str(lab_path), ""),
                spacing=spacing,
            )
        )
    return cases


# --------------------------------------------------------------------------- augmentation


@dataclasses.dataclass
class Augment:
    """Random spatial augmentation of a patch (image, label and mask move together).

    Args:
        flip: flip each spatial axis with probability 1/2.
        rot90: rotate the in-plane axes (the last two) by ``k * 90`` degrees, ``k`` uniform in
            0..3 (only when they have equal size).
        rotate_deg: with probability ``p_rotate``, rotate in-plane by an angle uniform in
            ``[-rotate_deg, rotate_deg]`` degrees.
        elastic_alpha: with probability ``p_elastic``, displace every pixel by a smooth random
            field: control-point displacements ``~ N(0, elastic_alpha^2)`` pixels per axis on a
            ``elastic_grid``-point grid, (bi/tri)linearly upsampled to the patch.
        elastic_grid: control points per axis of the elastic field.
        p_rotate, p_elastic: probabilities of the two resampling transforms.

    Flips and 90-degree rotations are ``torchvision.transforms.v2`` kernels on
    ``tv_tensors.Image`` / ``tv_tensors.Mask`` (:func:`_flip_rot90`; exact pixel moves). Rotation
    by any angle and elastic deformation share one ``grid_sample``: bilinear for the image,
    nearest for the label and the mask, reflection at the border (so no empty corners appear).
    Deviation: these two stay hand-written, since ``v2.RandomRotation`` / ``v2.ElasticTransform``
    fill the border with a constant (no reflection) and work in 2D only.

    Random parameters are drawn from torch's global RNG in a fixed order (a flip bit per axis,
    ``k``, rotation, elastic), so a seeded draw (``PatchDataset(seed=...)``) gives the same patch
    every time; v2's ``Random*`` transforms are not used because they draw in their own order.
    """

    flip: bool = True
    rot90: bool = True
    rotate_deg: float = 0.0
    elastic_alpha: float = 0.0
    elastic_grid: int = 4
    p_rotate: float = 0.5
    p_elastic: float = 0.5

    def __post_init__(self) -> None:
        for name in ("rotate_deg", "elastic_alpha"):
            if getattr(self, name) < 0:
                raise ValueError(f"Augment.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("p_rotate", "p_elastic"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"Augment.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.elastic_grid < 2:
            raise ValueError(f"Augment.elastic_grid must be >= 2, got {self.elastic_grid}")

    def __call__(
        self, image: torch.Tensor, label: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Augment ``image [C, *S]``, ``label [*S]``, ``valid [*S]`` (torch's global RNG)."""
        nd = label.dim()
        axes: list[int] = []
        k = 0
        if self.flip:
            axes = [a for a in range(nd) if bool(torch.rand(()) < 0.5)]
        if self.rot90 and label.shape[-1] == label.shape[-2]:
            k = int(torch.randint(0, 4, ()))
        if axes or k:
            image, label, valid = _flip_rot90(image, label, valid, axes, k)
        angle = 0.0
        if self.rotate_deg > 0 and bool(torch.rand(()) < self.p_rotate):
            angle = float((torch.rand(()) * 2 - 1) * self.rotate_deg)
        elastic = self.elastic_alpha > 0 and bool(torch.rand(()) < self.p_elastic)
        if angle != 0.0 or elastic:
            grid = self._grid(tuple(label.shape), angle, elastic)
            image, label, valid = _resample(image, label, valid, grid)
        return image.contiguous(), label.contiguous(), valid.contiguous()

    def _grid(self, shape: tuple[int, ...], angle_deg: float, elastic: bool) -> torch.Tensor:
        """Sampling grid ``[1, *S, nd]`` (x, y[, z] order, align_corners=True normalisation)."""
        nd = len(shape)
        axes = [torch.arange(n, dtype=torch.float32) - (n - 1) / 2 for n in shape]
        coords = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=0)  # [nd, *S] in (D,) H, W order
        if angle_deg != 0.0:
            a = math.radians(angle_deg)
            h, w = coords[-2], coords[-1]
            coords = coords.clone()
            coords[-2] = math.cos(a) * h - math.sin(a) * w
            coords[-1] = math.sin(a) * h + math.cos(a) * w
        if elastic:
            g = self.elastic_grid
            ctrl = torch.randn(1, nd, *([g] * nd)) * self.elastic_alpha
            mode = "bilinear" if nd == 2 else "trilinear"
            coords = coords + F.interpolate(ctrl, size=shape, mode=mode, align_corners=True)[0]
        half = torch.tensor([max((n - 1) / 2, 1e-6) for n in shape]).view(nd, *([1] * nd))
        norm = coords / half  # in [-1, 1] for in-range points
        return norm.flip(0).movedim(0, -1).unsqueeze(0)  # grid_sample wants (x, y[, z]) = reversed axes


def _flip_rot90(
    image: torch.Tensor, label: torch.Tensor, valid: torch.Tensor, axes: Sequence[int], k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flip the spatial ``axes`` of ``image [C, *S]``, ``label [*S]``, ``valid [*S]``, then rotate by ``k * 90`` deg.

    The image is a ``tv_tensors.Image``, label and valid mask are ``tv_tensors.Mask``; each op is
    the ``torchvision.transforms.v2.functional`` kernel for its type: ``horizontal_flip`` (last
    axis), ``vertical_flip`` (second to last) and ``rotate(90 k)`` (exact, ``rot90`` of the last
    two axes). The depth axis of a 3D patch has no v2 op and flips with ``torch.flip``.
    """
    from torchvision import tv_tensors
    from torchvision.transforms.v2 import functional as TF

    nd = label.dim()
    items: list[torch.Tensor] = [tv_tensors.Image(image), tv_tensors.Mask(label), tv_tensors.Mask(valid)]
    for a in axes:
        if a == nd - 1:
            items = [TF.horizontal_flip(t) for t in items]
        elif a == nd - 2:
            items = [TF.vertical_flip(t) for t in items]
        else:  # depth (3D patches): items are [C, D, H, W] / [D, H, W]
            items = [t.flip(a - nd) for t in items]
    if k:
        items = [TF.rotate(t, 90.0 * k, expand=True) for t in items]
    img, lab, val = (t.as_subclass(torch.Tensor) for t in items)
    return img, lab, val


def _resample(
    image: torch.Tensor, label: torch.Tensor, valid: torch.Tensor, grid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    kw = dict(padding_mode="reflection", align_corners=True)
    img = F.grid_sample(image[None].float(), grid, mode="bilinear", **kw)[0]
    both = torch.stack([label.float(), valid.float()])[None]
    lv = F.grid_sample(both, grid, mode="nearest", **kw)[0]
    return img, lv[0].round().long(), lv[1] > 0.5


# --------------------------------------------------------------------------- datasets


def _pad_to(case: SegmentationCase, size: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The case padded (image 0, label 0, valid false) at the far end to at least ``size``."""
    image, label, valid = case.image, case.label, case.valid
    need = [max(s - n, 0) for s, n in zip(size, label.shape, strict=True)]
    if not any(need):
        return image, label, valid
    pad: list[int] = []
    for n in reversed(need):
        pad += [0, n]
    return F.pad(image, pad), F.pad(label, pad), F.pad(valid.to(torch.uint8), pad).bool()


class PatchDataset(Dataset):
    """Random patches of a list of cases, for training.

    Item ``i`` (any ``i < samples_per_epoch``) is a fresh random patch: a case uniformly at random,
    then a window of ``patch_size`` placed uniformly, or -- with probability ``fg_prob`` and when the
    case has foreground -- containing a foreground voxel chosen uniformly at random (the window is
    shifted by a uniform offset so that voxel is not always centred, then clipped to the image).
    Cases smaller than the patch are padded (``valid`` false there). Then ``augment`` is applied.

    ``seed=None`` draws from torch's global RNG (seeded by the harness; Lightning seeds dataloader
    workers). With a ``seed``, item ``k`` (any ``k >= 0``: pair it with an epoch sampler giving
    ``epoch * samples_per_epoch + i``) is a pure function of ``(seed, k)``, drawn from a forked
    RNG seeded with both, and the global RNG is left untouched: DDP ranks, which share the global
    seed, then draw different patches for their different indices.

    Items: ``{"image": [C, *P] float32, "target": [*P] int64, "valid": [*P] bool}``.
    """

    def __init__(
        self,
        cases: Sequence[SegmentationCase],
        patch_size: Sequence[int],
        samples_per_epoch: int,
        *,
        fg_prob: float = 0.0,
        augment: Augment | None = None,
        seed: int | None = None,
    ) -> None:
        if not cases:
            raise ValueError("PatchDataset: no cases")
        if seed is not None and seed < 0:
            raise ValueError(f"PatchDataset: seed must be >= 0, got {seed}")
        nd = cases[0].label.dim()
        patch = tuple(int(p) for p in patch_size)
        if len(patch) != nd or any(p < 1 for p in patch):
            raise ValueError(f"PatchDataset: patch_size {patch_size} must have {nd} positive sizes")
        if not 0.0 <= fg_prob <= 1.0:
            raise ValueError(f"PatchDataset: fg_prob must be in [0, 1], got {fg_prob}")
        if samples_per_epoch < 1:
            raise ValueError(f"PatchDataset: samples_per_epoch must be >= 1, got {samples_per_epoch}")
        self.cases = list(cases)
        self.patch_size = patch
        self.samples_per_epoch = int(samples_per_epoch)
        self.fg_prob = float(fg_prob)
        self.augment = augment
        self.seed = seed

    def __len__(self) -> int:
        return self.samples_per_epoch

    def _start(self, case: SegmentationCase, shape: Sequence[int]) -> list[int]:
        p = self.patch_size
        fg = case.foreground_index() if self.fg_prob > 0 else None
        if fg is not None and fg.numel() and bool(torch.rand(()) < self.fg_prob):
            flat = int(fg[int(torch.randint(0, fg.numel(), ()))])
            center = np.unravel_index(flat, case.spatial_shape)
            starts = []
            for c, n, s in zip(center, shape, p, strict=True):
                off = int(torch.randint(0, s, ()))  # voxel lands anywhere inside the window
                starts.append(min(max(int(c) - off, 0), n - s))
            return starts
        return [int(torch.randint(0, n - s + 1, ())) for n, s in zip(shape, p, strict=True)]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self.seed is None:
            if not 0 <= index < self.samples_per_epoch:
                raise IndexError(index)
            return self._draw()
        if index < 0:
            raise IndexError(index)
        item_seed = int(np.random.SeedSequence([self.seed, int(index)]).generate_state(1, np.uint64)[0] >> 1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(item_seed)
            return self._draw()

    def _draw(self) -> dict[str, torch.Tensor]:
        case = self.cases[int(torch.randint(0, len(self.cases), ()))]
        image, label, valid = _pad_to(case, self.patch_size)
        starts = self._start(case, label.shape)
        sl = tuple(slice(s, s + n) for s, n in zip(starts, self.patch_size, strict=True))
        image, label, valid = image[(slice(None), *sl)], label[sl], valid[sl]
        if self.augment is not None:
            image, label, valid = self.augment(image, label, valid)
        return {"image": image.contiguous(), "target": label.contiguous(), "valid": valid.contiguous()}


class CaseDataset(Dataset):
    """Whole cases, for evaluation (batch size 1 unless all cases share a size).

    Items: ``{"image": [C, *S], "target": [*S], "valid": [*S]}``.
    """

    def __init__(self, cases: Sequence[SegmentationCase]) -> None:
        if not cases:
            raise ValueError("CaseDataset: no cases")
        self.cases = list(cases)

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        c = self.cases[index]
        return {"image": c.image, "target": c.label, "valid": c.valid}
