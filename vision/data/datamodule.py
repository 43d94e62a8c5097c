"""The Lightning data modules of gatelab.vision: segmentation and restoration.

The readers, datasets and dataset specs they use live beside them without Lightning
(:mod:`.segmentation`, :mod:`.segmentation_specs`, :mod:`.restoration`). Every factory is called as
``factory(data_dir, **data.kwargs)`` (``data.name`` in experiment configs).

Segmentation: ISBI 2012 membrane, DRIVE, any 2D folder, any NIfTI folder, registered as
``membrane``, ``drive``, ``seg-folder`` (2D images + masks) and ``seg-nifti`` (3D volumes); all
share these keys:

``patch_size`` (int or one per axis), ``batch_size``, ``samples_per_epoch`` (random patches per
training "epoch"), ``fg_prob`` (foreground-aware sampling probability), ``augment`` (keyword
arguments of :class:`~gatelab.vision.data.segmentation.Augment`, or ``null`` for none),
``normalize`` (``zscore`` | ``unit`` | ``none``), ``val_cases`` (how many training cases to hold
out for validation; 0 = no validation loop), ``num_workers``.

Training batches are random patches (``{"image", "target", "valid"}``), patch ``k`` a pure function
of the experiment seed and ``k`` (epoch ``e`` draws ``k = e * samples_per_epoch + i``); under DDP
Lightning shards those indices over the ranks (a ``DistributedSampler``, padded to equal length; the
last incomplete per-rank batch is dropped), so every rank draws different patches. Validation and test batches
are whole cases (batch size 1, any size), which :class:`~gatelab.vision.tasks.segmentation.SegmentationTask`
scores with sliding-window inference. ``model_kwargs()`` gives ``in_channels`` and ``num_classes``.

Restoration: :func:`denoise_datamodule` (registered as ``denoise``: train on the clean images of
COCO-mini ``train2017``, validate on ``val2017`` centre crops, test on the classic denoising sets)
and :func:`paired_datamodule` (registered as ``paired_restoration``). Batches are
``(degraded, clean)`` pairs of ``[B, C, H, W]`` float tensors in ``[0, 1]`` (the noisy input is not
clipped, as in DnCNN/FFDNet's evaluation protocol). DDP: ``batch_size`` is per rank; Lightning
wraps the :class:`~.restoration.EpochSampler` (and the evaluation loaders' samplers) in a
distributed sampler that shuffles the epoch's training indices by seed and epoch and pads every
split to a multiple of the number of ranks (equal batch counts; training drops the last incomplete
batch). Samples are pure functions of ``(seed, index)``, so ranks draw different crops and noise.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
from torch.utils.data import DataLoader, Dataset, Sampler

from gatelab.core.config import (
    ConfigError,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    UnitInterval,
)
from gatelab.core.harness.data import locate
from gatelab.core.harness.errors import DatasetNotFoundError
from gatelab.core.harness.sampling import default_seed

from .restoration import (
    COCO_MINI,
    COLOUR_TESTSETS,
    DENOISE_TESTSETS,
    GREY_TESTSETS,
    LAYOUTS,
    EpochSampler,
    ImageFolderDataset,
    NoisyImageDataset,
    PairedImageDataset,
    _sigma_of,
    assert_disjoint,
    list_images,
)
from .segmentation import (
    GEOMETRY_ATOL,
    Augment,
    CaseDataset,
    PatchDataset,
    SegmentationCase,
    load_folder,
    load_nifti_folder,
    load_tiff_stacks,
)

__all__ = [
    "MEMBRANE_LABELS",
    "PREPROCESSING_FORMAT",
    "SegmentationDataModule",
    "denoise_datamodule",
    "drive_datamodule",
    "folder_datamodule",
    "membrane_datamodule",
    "membrane_split",
    "nifti_datamodule",
    "paired_datamodule",
    "restoration_preprocessing",
    "segmentation_preprocessing",
]

#: ISBI 2012 labels (zhixuhao PNGs / challenge TIFF): 0 = membrane, 255 = cell interior
MEMBRANE_LABELS = {"membrane": {0: 1, 255: 0}, "cell": {0: 0, 255: 1}}
DRIVE_LABELS = {0: 0, 255: 1}


class SegmentationDataModule(L.LightningDataModule):
    """Patches for training, whole cases for validation and test (see the module docstring)."""

    def __init__(
        self,
        train_cases: Sequence[SegmentationCase],
        test_cases: Sequence[SegmentationCase],
        *,
        num_classes: int,
        patch_size: int | Sequence[int] = 96,
        batch_size: int = 8,
        samples_per_epoch: int = 800,
        fg_prob: float = 0.0,
        augment: Mapping[str, Any] | None = None,
        val_cases: int = 0,
        num_workers: int = 0,
        reader: Mapping[str, Any] | None = None,
        target_spacing: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if not train_cases:
            raise ConfigError("segmentation data module: no training cases")
        nd = train_cases[0].label.dim()
        patch = (patch_size,) * nd if isinstance(patch_size, int) else tuple(patch_size)
        if len(patch) != nd:
            raise ConfigError(f"data.kwargs.patch_size={patch_size!r}: need {nd} sizes for {nd}D data")
        if not 0 <= val_cases < len(train_cases):
            raise ConfigError(
                f"data.kwargs.val_cases={val_cases} must be in [0, {len(train_cases) - 1}] "
                f"({len(train_cases)} training cases)"
            )
        try:
            self.augment = Augment(**dict(augment)) if augment is not None else None
        except TypeError as e:
            raise ConfigError(f"data.kwargs.augment: {e}") from None
        cases = list(train_cases)
        self.val = cases[len(cases) - val_cases :] if val_cases else []
        self.train = cases[: len(cases) - val_cases]
        self.test = list(test_cases)
        self.patch_size = patch
        self.batch_size = int(batch_size)
        self.samples_per_epoch = int(samples_per_epoch)
        self.fg_prob = float(fg_prob)
        self.num_workers = int(num_workers)
        self.num_classes = int(num_classes)
        self.in_channels = int(train_cases[0].image.shape[0])
        self.reader = dict(reader) if reader is not None else None
        self.target_spacing = tuple(float(v) for v in target_spacing) if target_spacing is not None else None

    def model_kwargs(self) -> dict[str, int]:
        """``in_channels`` and ``num_classes`` for the model."""
        return {"in_channels": self.in_channels, "num_classes": self.num_classes}

    def preprocessing(self) -> dict[str, Any] | None:
        """What a trained model needs to segment new files (saved as ``preprocessing.json``).

        ``None`` when the module was built without ``reader`` (how its cases were read and
        normalised is then unknown). Otherwise :func:`segmentation_preprocessing` of this module's
        sizes and its ``reader`` (normalisation, channel selection, classes, label values ...),
        read by :mod:`gatelab.vision.predict`.
        """
        if self.reader is None:
            return None
        prep = segmentation_preprocessing(
            spatial_dims=len(self.patch_size),
            in_channels=self.in_channels,
            num_classes=self.num_classes,
            patch_size=self.patch_size,
            **self.reader,
        )
        if self.target_spacing is not None:  # the cases were resampled: new volumes must match
            prep["spacing"] = list(self.target_spacing)
        return prep
    def data_spec(self) -> dict[str, Any]:
        """The voxel grid the model is trained on: ``spacing`` (mm per ``[D, H, W]`` axis: the
        ``target_spacing`` the cases were resampled to, or their common spacing; ``None`` when
        unknown or when the cases differ), ``target_spacing`` and each case's ``case_spacings``.
        Inference on new volumes must resample them to ``spacing`` first."""
        cases = [*self.train, *self.val, *self.test]
        spacings = {c.name: c.spacing for c in cases}
        known = {s for s in spacings.values()}
        common = next(iter(known)) if len(known) == 1 else None
        return {
            "spacing": list(self.target_spacing or common) if (self.target_spacing or common) else None,
            "target_spacing": list(self.target_spacing) if self.target_spacing else None,
            "case_spacings": {k: list(v) if v else None for k, v in spacings.items()},
        }

    def train_dataloader(self) -> DataLoader:
        # item k is a pure function of (experiment seed, k) and the sampler gives epoch * n + i, so
        # every epoch and every DDP rank (Lightning shards the sampler) draws its own patches
        ds = PatchDataset(
            self.train,
            self.patch_size,
            self.samples_per_epoch,
            fg_prob=self.fg_prob,
            augment=self.augment,
            seed=default_seed(),
        )
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            sampler=EpochSampler(len(ds)),
            num_workers=self.num_workers,
            drop_last=True,
            persistent_workers=self.num_workers > 0,
        )

    def _cases_loader(self, cases: Sequence[SegmentationCase]) -> DataLoader:
        return DataLoader(CaseDataset(cases), batch_size=1, shuffle=False, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader | list:
        return self._cases_loader(self.val) if self.val else []

    def test_dataloader(self) -> DataLoader:
        if not self.test:
            raise ConfigError("segmentation data module: no test cases")
        return self._cases_loader(self.test)


def _resolve(data_dir: Path, path: str | os.PathLike[str]) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else Path(data_dir) / p


#: layout version of the segmentation / restoration ``preprocessing.json``
PREPROCESSING_FORMAT = 1


def _mask_values(label_values: Mapping[int, int], num_classes: int) -> list[int]:
    """Raw label value written for each class: the smallest raw value mapped to it."""
    out: list[int] = []
    for k in range(num_classes):
        raws = sorted(int(r) for r, c in label_values.items() if int(c) == k)
        if not raws:
            raise ConfigError(f"label_values {dict(label_values)!r} map no raw value to class {k}")
        out.append(raws[0])
    return out


def segmentation_preprocessing(
    *,
    spatial_dims: int,
    in_channels: int,
    num_classes: int,
    patch_size: Sequence[int],
    normalize: str,
    normalize_over: str = "image",
    label_values: Mapping[int, int] | None = None,
    classes: Sequence[str] | None = None,
    channels: Sequence[int] | None = None,
    key_pattern: str | None = None,
    overlap: float = 0.5,
    mode: str = "gaussian",
    mirror_axes: Sequence[int] | None = None,
) -> dict[str, Any]:
    """The JSON ``preprocessing`` of a segmentation model (``"kind": "segmentation"``).

    Keys: ``spatial_dims`` (2: PNG/TIFF/... images, 3: NIfTI volumes read as ``[C, Z, Y, X]``),
    ``in_channels``, ``num_classes``, ``classes`` (names, default ``class_0 ..``), ``channels``
    (indices of the file's channels fed to the model, e.g. DRIVE ``green`` = ``[1]``; ``null``:
    all), ``normalize`` (``zscore`` | ``unit`` | ``none``, per image as
    :func:`~gatelab.vision.data.segmentation.normalize_image`: the statistics are the image's
    own), ``normalize_over`` (``image``: every pixel; ``fov``: the field-of-view mask's pixels,
    so new images need their masks), ``key_pattern`` (pairs images and masks as
    :func:`~gatelab.vision.data.segmentation.pair_files`), ``mask_values`` (the raw label value
    written for each class: the smallest raw value of ``label_values`` mapped to it; default the
    class index), ``label_values``, ``patch_size`` and ``sliding_window`` (``roi_size`` = the
    training patch, ``overlap``, ``mode``, ``mirror_axes``: how whole images are predicted, see
    :func:`~gatelab.vision.tasks.inference.sliding_window_inference`), ``spacing``
    (``null``: no resampling, voxels as stored).
    """
    if normalize not in ("zscore", "unit", "none"):
        raise ConfigError(f"segmentation preprocessing: normalize={normalize!r} is not one of zscore, unit, none")
    if normalize_over not in ("image", "fov"):
        raise ConfigError(f"segmentation preprocessing: normalize_over={normalize_over!r} is not one of image, fov")
    patch = [int(p) for p in patch_size]
    if len(patch) != spatial_dims:
        raise ConfigError(f"segmentation preprocessing: patch_size={patch} must give {spatial_dims} sizes")
    names = [str(c) for c in classes] if classes is not None else [f"class_{k}" for k in range(num_classes)]
    if len(names) != num_classes:
        raise ConfigError(f"segmentation preprocessing: classes={names} must name {num_classes} classes")
    values = {int(k): int(v) for k, v in (label_values or {k: k for k in range(num_classes)}).items()}
    return {
        "kind": "segmentation",
        "format": PREPROCESSING_FORMAT,
        "spatial_dims": int(spatial_dims),
        "in_channels": int(in_channels),
        "num_classes": int(num_classes),
        "classes": names,
        "channels": [int(c) for c in channels] if channels is not None else None,
        "normalize": normalize,
        "normalize_over": normalize_over,
        "key_pattern": key_pattern,
        "label_values": {str(k): v for k, v in sorted(values.items())},
        "mask_values": _mask_values(values, num_classes),
        "patch_size": patch,
        "sliding_window": {
            "roi_size": patch,
            "overlap": float(overlap),
            "mode": mode,
            "mirror_axes": [int(a) for a in mirror_axes] if mirror_axes is not None else None,
        },
        "spacing": None,
    }


def restoration_preprocessing(*, channels: int, tile: int | None = None, tile_overlap: int = 32, **trained_on: Any) -> dict[str, Any]:
    """The JSON ``preprocessing`` of a restoration model (``"kind": "restoration"``).

    Keys: ``channels`` (1: images read as luminance ``L``, 3: as RGB), ``scale`` (255: 8-bit
    pixel values divided by 255 into ``[0, 1]``, the output clipped to ``[0, 1]`` and written
    back as 8-bit), ``tile`` / ``tile_overlap`` (``null``: whole images in one pass; else tiled
    inference as :func:`~gatelab.vision.models.maxim.tiled_forward`), ``trained_on`` (what the
    data module degraded, for the record: e.g. the noise ``sigma``).
    """
    if channels not in (1, 3):
        raise ConfigError(f"restoration preprocessing: channels={channels!r} must be 1 or 3")
    return {
        "kind": "restoration",
        "format": PREPROCESSING_FORMAT,
        "channels": int(channels),
        "scale": 255.0,
        "bit_depth": 8,
        "tile": int(tile) if tile is not None else None,
        "tile_overlap": int(tile_overlap),
        "trained_on": {k: v for k, v in trained_on.items()},
    }


# --------------------------------------------------------------------------- ISBI 2012 membrane


def membrane_split(n_cases: int, fold: int, n_folds: int) -> tuple[list[int], list[int]]:
    """Contiguous-block K-fold split of an EM stack: ``(train indices, test indices)``.

    Fold ``f`` holds out slices ``[f * n / K, (f + 1) * n / K)`` (30 slices, K = 5: six
    consecutive slices), so no test slice has both neighbours in the training set except at the
    block's two edges (adjacent serial sections are strongly correlated).
    """
    if n_folds < 2 or not 0 <= fold < n_folds:
        raise ConfigError(f"membrane split: fold={fold} must be in [0, n_folds={n_folds}) with n_folds >= 2")
    lo, hi = fold * n_cases // n_folds, (fold + 1) * n_cases // n_folds
    test = list(range(lo, hi))
    return [i for i in range(n_cases) if not lo <= i < hi], test


def membrane_datamodule(
    data_dir: Path,
    *,
    fold: NonNegativeInt = 4,
    n_folds: PositiveInt = 5,
    foreground: str = "membrane",
    patch_size: PositiveInt | Sequence[PositiveInt] = 96,
    batch_size: PositiveInt = 8,
    samples_per_epoch: PositiveInt = 800,
    fg_prob: UnitInterval = 0.0,
    augment: Mapping[str, Any] | None = None,
    normalize: str = "zscore",
    val_cases: NonNegativeInt = 0,
    num_workers: NonNegativeInt = 0,
) -> SegmentationDataModule:
    """ISBI 2012 EM membrane segmentation (30 labelled 512x512 slices).

    Reads the zhixuhao/unet PNG layout ``isbi2012_membrane/train/{image,label}/<k>.png`` (checked
    against the registered sha256 digests) or, when present, the challenge's multi-page TIFFs
    ``isbi2012_membrane/train-volume.tif`` + ``train-labels.tif``. The 30 challenge test slices
    have no public labels, so the held-out set is fold ``fold`` of a contiguous-block
    ``n_folds``-fold split (:func:`membrane_split`; default: slices 24-29 held out, 0-23 train).
    ``foreground``: ``membrane`` (class 1 = membrane, label value 0) or ``cell`` (value 255).
    """
    if foreground not in MEMBRANE_LABELS:
        raise ConfigError(f"data.kwargs.foreground={foreground!r} is not one of {sorted(MEMBRANE_LABELS)}")
    labels = MEMBRANE_LABELS[foreground]
    stack_root = Path(data_dir) / "isbi2012_membrane"
    if (stack_root / "train-volume.tif").is_file() and (stack_root / "train-labels.tif").is_file():
        cases = load_tiff_stacks(
            stack_root / "train-volume.tif",
            stack_root / "train-labels.tif",
            label_values=labels,
            normalize=normalize,
        )
    else:
        root = locate("isbi2012-membrane", data_dir)
        cases = load_folder(
            root / "train/image", root / "train/label", label_values=labels, normalize=normalize
        )
    train_idx, test_idx = membrane_split(len(cases), fold, n_folds)
    return SegmentationDataModule(
        [cases[i] for i in train_idx],
        [cases[i] for i in test_idx],
        num_classes=2,
        patch_size=patch_size,
        batch_size=batch_size,
        samples_per_epoch=samples_per_epoch,
        fg_prob=fg_prob,
        augment=augment,
        val_cases=val_cases,
        num_workers=num_workers,
        reader={
            "normalize": normalize,
            "label_values": labels,
            "classes": ["cell", "membrane"] if foreground == "membrane" else ["membrane", "cell"],
        },
    )


# --------------------------------------------------------------------------- DRIVE


def drive_datamodule(
    data_dir: Path,
    *,
    channels: str = "rgb",
    patch_size: PositiveInt | Sequence[PositiveInt] = 96,
    batch_size: PositiveInt = 8,
    samples_per_epoch: PositiveInt = 800,
    fg_prob: UnitInterval = 0.0,
    augment: Mapping[str, Any] | None = None,
    normalize: str = "zscore",
    val_cases: NonNegativeInt = 0,
    num_workers: NonNegativeInt = 0,
) -> SegmentationDataModule:
    """DRIVE retinal vessels: train on the 20 training images, test on the 20 official test images.

    Ground truth is ``1st_manual`` (vessel = 255); the field-of-view masks (``mask/*.gif``) define
    ``valid``: the loss and every metric only count pixels inside the FOV, and z-score
    normalisation uses FOV pixels only. ``channels``: ``rgb`` (3 channels) or ``green`` (the
    usual single high-contrast channel).
    """
    if channels not in ("rgb", "green"):
        raise ConfigError(f"data.kwargs.channels={channels!r} is not one of rgb, green")
    root = locate("drive", data_dir)
    kw = dict(label_values=DRIVE_LABELS, key_pattern=r"^(\d+)_", normalize=normalize)
    train = load_folder(root / "training/images", root / "training/1st_manual", root / "training/mask", **kw)
    test = load_folder(root / "test/images", root / "test/1st_manual", root / "test/mask", **kw)
    if channels == "green":
        for c in (*train, *test):
            if c.image.shape[0] != 3:
                raise ConfigError(f"DRIVE image {c.name} has {c.image.shape[0]} channels; green needs RGB")
            c.image = c.image[1:2].contiguous()
    return SegmentationDataModule(
        train,
        test,
        num_classes=2,
        patch_size=patch_size,
        batch_size=batch_size,
        samples_per_epoch=samples_per_epoch,
        fg_prob=fg_prob,
        augment=augment,
        val_cases=val_cases,
        num_workers=num_workers,
        reader={
            "normalize": normalize,
            "normalize_over": "fov",
            "label_values": DRIVE_LABELS,
            "classes": ["background", "vessel"],
            "channels": [1] if channels == "green" else None,
            "key_pattern": kw["key_pattern"],
        },
    )


# --------------------------------------------------------------------------- generic folders


def _label_values(label_values: Mapping[Any, Any]) -> dict[int, int]:
    try:
        out = {int(k): int(v) for k, v in dict(label_values).items()}
    except (TypeError, ValueError):
        raise ConfigError(
            f"data.kwargs.label_values must map integer raw values to classes, got {label_values!r}"
        ) from None
    classes = sorted(set(out.values()))
    if not out or classes != list(range(len(classes))):
        raise ConfigError(f"data.kwargs.label_values classes must be 0..K-1, got {sorted(set(out.values()))}")
    return out


def folder_datamodule(
    data_dir: Path,
    *,
    train_images: str,
    train_labels: str,
    test_images: str,
    test_labels: str,
    label_values: Mapping[Any, Any],
    train_masks: str | None = None,
    test_masks: str | None = None,
    key_pattern: str | None = None,
    patch_size: PositiveInt | Sequence[PositiveInt] = 96,
    batch_size: PositiveInt = 8,
    samples_per_epoch: PositiveInt = 800,
    fg_prob: UnitInterval = 0.0,
    augment: Mapping[str, Any] | None = None,
    normalize: str = "zscore",
    val_cases: NonNegativeInt = 0,
    num_workers: NonNegativeInt = 0,
) -> SegmentationDataModule:
    """Any 2D dataset laid out as image / label (/ field-of-view mask) folders (PNG, TIFF, GIF ...).

    Folder paths are relative to ``data_dir`` unless absolute; files are paired by name (or
    ``key_pattern``, see :func:`~gatelab.vision.data.segmentation.pair_files`); ``label_values``
    maps raw label values to classes ``0..K-1`` (``{0: 0, 255: 1}``).
    """
    labels = _label_values(label_values)
    d = Path(data_dir)

    def load(images: str, lab: str, masks: str | None) -> list[SegmentationCase]:
        return load_folder(
            _resolve(d, images),
            _resolve(d, lab),
            _resolve(d, masks) if masks else None,
            label_values=labels,
            key_pattern=key_pattern,
            normalize=normalize,
        )

    return SegmentationDataModule(
        load(train_images, train_labels, train_masks),
        load(test_images, test_labels, test_masks),
        num_classes=max(labels.values()) + 1,
        patch_size=patch_size,
        batch_size=batch_size,
        samples_per_epoch=samples_per_epoch,
        fg_prob=fg_prob,
        augment=augment,
        val_cases=val_cases,
        num_workers=num_workers,
        reader={
            "normalize": normalize,
            # z-score statistics come from the mask's pixels when there are masks (load_case)
            "normalize_over": "fov" if train_masks else "image",
            "label_values": labels,
            "key_pattern": key_pattern,
        },
    )


def nifti_datamodule(
    data_dir: Path,
    *,
    train_images: str,
    train_labels: str,
    test_images: str,
    test_labels: str,
    label_values: Mapping[Any, Any],
    key_pattern: str | None = None,
    patch_size: PositiveInt | Sequence[PositiveInt] = 64,
    batch_size: PositiveInt = 2,
    samples_per_epoch: PositiveInt = 200,
    fg_prob: UnitInterval = 0.5,
    augment: Mapping[str, Any] | None = None,
    normalize: str = "zscore",
    val_cases: NonNegativeInt = 0,
    num_workers: NonNegativeInt = 0,
    target_spacing: Sequence[PositiveFloat] | None = None,
    geometry_atol: NonNegativeFloat = GEOMETRY_ATOL,
) -> SegmentationDataModule:
    """3D volumes from folders of NIfTI images and labels (``.nii`` / ``.nii.gz``).

    Patches are centred on a foreground voxel with probability ``fg_prob`` (default 0.5: the
    organs of abdominal CT fill a tiny fraction of the volume). Axes: ``[C, Z, Y, X]``.

    Every image/label pair must share shape, spacing, origin and direction (within
    ``geometry_atol + 1e-5 |value|``; see
    :func:`~gatelab.vision.data.segmentation.check_same_geometry`). ``target_spacing`` (mm per
    ``[Z, Y, X]`` axis) resamples every case to that voxel size; the data module's
    ``data_spec()`` records the spacing the model is trained on.
    """
    labels = _label_values(label_values)
    d = Path(data_dir)
    if target_spacing is not None and len(target_spacing) != 3:
        raise ConfigError(f"data.kwargs.target_spacing={list(target_spacing)!r}: need 3 values (z, y, x) in mm")

    def load(images: str, lab: str) -> list[SegmentationCase]:
        return load_nifti_folder(
            _resolve(d, images),
            _resolve(d, lab),
            label_values=labels,
            key_pattern=key_pattern,
            normalize=normalize,
            target_spacing=target_spacing,
            geometry_atol=geometry_atol,
        )

    return SegmentationDataModule(
        load(train_images, train_labels),
        load(test_images, test_labels),
        num_classes=max(labels.values()) + 1,
        patch_size=patch_size,
        batch_size=batch_size,
        samples_per_epoch=samples_per_epoch,
        fg_prob=fg_prob,
        augment=augment,
        val_cases=val_cases,
        num_workers=num_workers,
        reader={"normalize": normalize, "label_values": labels, "key_pattern": key_pattern},
        target_spacing=target_spacing,
    )


# --------------------------------------------------------------------------- restoration


def _loader(ds: Dataset, batch_size: int, sampler: Sampler | None = None, workers: int = 0) -> Any:
    return DataLoader(
        ds,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=workers,
        drop_last=sampler is not None,
        persistent_workers=workers > 0,
    )


def denoise_datamodule(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    sigma: NonNegativeFloat | Sequence[NonNegativeFloat] = 25.0,
    test_sigma: NonNegativeFloat | None = None,
    channels: PositiveInt = 3,
    crop: PositiveInt = 64,
    batch_size: PositiveInt = 8,
    samples_per_epoch: PositiveInt = 800,
    val_images: NonNegativeInt = 8,
    val_crop: PositiveInt = 128,
    test_sets: Sequence[str] | None = None,
    train_folders: Sequence[str] = ("train2017",),
    seed: int = 0,
    num_workers: NonNegativeInt = 0,
    check_disjoint: bool = True,
    verify: bool = True,
) -> Any:
    """Synthetic Gaussian denoising: COCO-mini clean images in, classic test sets out.

    * train: random ``crop`` patches (flips/rotations) of COCO-mini ``train_folders`` images,
      ``samples_per_epoch`` per epoch, noise ``sigma`` (a number, or ``[low, high]`` for blind);
    * val: centre ``val_crop`` crops of the first ``val_images`` COCO-mini ``val2017`` images,
      fixed noise ``test_sigma`` (default: ``sigma``, or the middle of a blind range);
    * test: full images of ``test_sets`` (default colour: CBSD68, Kodak24, McMaster; grey:
      Set12, BSD68) from ``denoise_testsets``, fixed noise, batch size 1.

    With ``check_disjoint`` the training images are checked not to equal any test image; with
    ``verify`` every file is checked against its pinned sha256 (cached).
    """
    lo, hi = _sigma_of(sigma)
    tsigma = float(test_sigma) if test_sigma is not None else (lo + hi) / 2
    sets = (
        list(test_sets)
        if test_sets is not None
        else list(COLOUR_TESTSETS if channels == 3 else GREY_TESTSETS)
    )
    for s in sets:
        if s not in GREY_TESTSETS + COLOUR_TESTSETS:
            raise ValueError(
                f"unknown test set {s!r}; expected one of {', '.join(GREY_TESTSETS + COLOUR_TESTSETS)}"
            )

    class DenoiseDataModule(L.LightningDataModule):
        def __init__(self) -> None:
            super().__init__()
            self.test_names = sets

        def setup(self, stage: str | None = None) -> None:
            if getattr(self, "_ready", False):
                return
            coco = locate(COCO_MINI, data_dir, verify=verify)
            train_files = [f for d in train_folders for f in list_images(coco / d)]
            val_files = list_images(coco / "val2017")[:val_images]
            self.test_files = {}
            if sets:
                tests = locate(DENOISE_TESTSETS, data_dir, verify=verify)
                self.test_files = {s: list_images(tests / s) for s in sets}
                if check_disjoint:
                    assert_disjoint(
                        train_files + val_files, [f for fs in self.test_files.values() for f in fs], channels
                    )
            self.train_ds = NoisyImageDataset(
                ImageFolderDataset(train_files, channels),
                (lo, hi),
                crop=crop,
                train=True,
                length=samples_per_epoch,
                seed=seed,
            )
            self.val_ds = NoisyImageDataset(
                ImageFolderDataset(val_files, channels), tsigma, crop=val_crop, seed=seed + 1
            )
            self.test_ds = {
                s: NoisyImageDataset(ImageFolderDataset(fs, channels), tsigma, seed=seed + 2)
                for s, fs in self.test_files.items()
            }
            self._ready = True

        def train_dataloader(self) -> Any:
            return _loader(self.train_ds, batch_size, EpochSampler(len(self.train_ds)), num_workers)

        def val_dataloader(self) -> Any:
            return _loader(self.val_ds, batch_size)

        def test_dataloader(self) -> Any:
            return [_loader(self.test_ds[s], 1) for s in sets]

        def model_kwargs(self) -> dict[str, Any]:
            return {"in_channels": channels, "num_outputs": channels}

        def preprocessing(self) -> dict[str, Any]:
            """:func:`restoration_preprocessing` (the model restores noisy ``channels`` images)."""
            return restoration_preprocessing(
                channels=channels, task="denoise", sigma=[lo, hi], test_sigma=tsigma
            )

    return DenoiseDataModule()


def paired_datamodule(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    train_root: str,
    val_root: str | None = None,
    test_root: str | None = None,
    layout: str = "input_target",
    channels: PositiveInt = 3,
    crop: PositiveInt = 256,
    val_crop: PositiveInt | None = 256,
    batch_size: PositiveInt = 4,
    samples_per_epoch: PositiveInt | None = None,
    seed: int = 0,
    num_workers: NonNegativeInt = 0,
) -> Any:
    """Paired benchmark (SIDD, GoPro, Rain13k, LOL, ...): folders relative to ``data_dir``
    (or absolute), in the :data:`LAYOUTS` ``layout``. Test images are full size, batch size 1."""
    root = Path(data_dir) if data_dir is not None else Path(".")

    def resolve(p: str) -> Path:
        q = Path(p)
        q = q if q.is_absolute() else root / q
        if not q.is_dir():
            raise DatasetNotFoundError(
                f"paired restoration data not found: {q} (layout {layout}: {LAYOUTS[layout].description if layout in LAYOUTS else layout})"
            )
        return q

    class PairedDataModule(L.LightningDataModule):
        def setup(self, stage: str | None = None) -> None:
            if getattr(self, "_ready", False):
                return
            tr = PairedImageDataset(resolve(train_root), layout, channels=channels)
            self.train_ds = PairedImageDataset(
                tr.root, layout, crop=crop, train=True, channels=channels, length=samples_per_epoch, seed=seed
            )
            self.val_ds = (
                PairedImageDataset(resolve(val_root), layout, crop=val_crop, channels=channels)
                if val_root
                else None
            )
            self.test_ds = (
                PairedImageDataset(resolve(test_root), layout, channels=channels) if test_root else None
            )
            self._ready = True

        def train_dataloader(self) -> Any:
            return _loader(self.train_ds, batch_size, EpochSampler(len(self.train_ds)), num_workers)

        def val_dataloader(self) -> Any:
            return _loader(self.val_ds, batch_size) if self.val_ds is not None else []

        def test_dataloader(self) -> Any:
            return _loader(self.test_ds, 1) if self.test_ds is not None else []

        def model_kwargs(self) -> dict[str, Any]:
            return {"in_channels": channels, "num_outputs": channels}

        def preprocessing(self) -> dict[str, Any]:
            """:func:`restoration_preprocessing` (paired ``layout`` data)."""
            return restoration_preprocessing(channels=channels, task="paired", layout=layout)

    return PairedDataModule()
