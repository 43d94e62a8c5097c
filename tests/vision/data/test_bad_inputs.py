"""The vision bad-input census (issue 18 point 6): every malformed input is built in its real format
(PNG / JPEG / TIFF / NIfTI files in the folder layouts the loaders read, tensors for the models)
and must raise an error naming the file (or the model and input) and the fault. Recorded through
``tools/census.py`` when present."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile
import torch
from census import check_error
from PIL import Image

from gatelab.vision.data.restoration import PairedImageDataset, RestorationDataError, verify_images
from gatelab.vision.data.segmentation import (
    SegmentationDataError,
    load_folder,
    load_nifti_folder,
    load_tiff_stacks,
)

FOLDER = "vision.segmentation.folder"
STACK = "vision.segmentation.tiff_stack"
NIFTI = "vision.segmentation.nifti"
PAIRED = "vision.restoration.paired"
MODELS = "vision.models"
LABELS = {0: 0, 255: 1}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GATELAB_CACHE", str(tmp_path / "cache"))


def png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def garble(path: Path, middle: bool = False) -> Path:
    """Random bytes after the 16-byte signature/header start, or (``middle``) over 200 bytes in the
    middle of the pixel data (JPEG has no checksum there, so only PNG/TIFF/NIfTI-gz can notice)."""
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    a, b = (len(data) // 2, len(data) // 2 + 200) if middle else (16, len(data))
    data[a:b] = rng.integers(0, 256, b - a, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def seg_folder(root: Path, n: int = 2, size=(16, 16)) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    for i in range(n):
        png(root / "images" / f"{i}.png", rng.integers(0, 256, size, dtype=np.uint8))
        lab = np.zeros(size, np.uint8)
        lab[4:9, 4:9] = 255
        png(root / "labels" / f"{i}.png", lab)
    return root / "images", root / "labels"


def load_seg(root: Path) -> list:
    return load_folder(root / "images", root / "labels", label_values=LABELS)


# --------------------------------------------------------------------------- 2D segmentation folders


def _seg_truncated(root):
    return truncate(root / "images" / "1.png", 0.4)


def _seg_garbled(root):
    return garble(root / "images" / "1.png")


def _seg_garbled_data(root):
    return garble(root / "labels" / "0.png", middle=True)


def _seg_empty(root):
    p = root / "labels" / "0.png"
    p.write_bytes(b"")
    return p


def _seg_colour_label(root):
    lab = np.zeros((16, 16, 3), np.uint8)
    lab[2:5, 2:5] = (255, 0, 0)
    return png(root / "labels" / "1.png", lab)


def _seg_size_mismatch(root):
    return png(root / "labels" / "1.png", np.zeros((16, 12), np.uint8))


def _seg_value_outside(root):
    return png(root / "labels" / "0.png", np.full((16, 16), 7, np.uint8))


def _seg_missing_label(root):
    (root / "labels" / "1.png").unlink()
    return root / "images" / "1.png"


def _seg_nan_tiff(root):
    (root / "images" / "1.png").unlink()
    img = np.ones((16, 16), np.float32)
    img[3, 5] = np.nan
    p = root / "images" / "1.tif"
    tifffile.imwrite(p, img)
    return p


def _seg_float_label(root):
    (root / "labels" / "1.png").unlink()
    p = root / "labels" / "1.tif"
    tifffile.imwrite(p, np.full((16, 16), 0.5, np.float32))
    return p


def _seg_five_channels(root):
    (root / "images" / "1.png").unlink()
    p = root / "images" / "1.tif"
    tifffile.imwrite(p, np.ones((16, 16, 5), np.uint8), photometric="minisblack", planarconfig="contig")
    return p


SEG_CASES = [
    ("truncated-png", "an image PNG cut short", _seg_truncated, ["cannot read image file", "truncated"]),
    ("garbled-png", "an image PNG with random bytes after the signature", _seg_garbled, ["cannot read image file"]),
    ("garbled-png-data", "a label PNG with 200 random bytes in its pixel data", _seg_garbled_data, ["cannot read image file"]),
    ("empty-file", "a 0-byte label PNG", _seg_empty, ["cannot read image file"]),
    ("wrong-channels-label", "a colour (RGB) label image", _seg_colour_label, ["colour label image"]),
    ("mismatched-pair", "a label of another size", _seg_size_mismatch, ["size mismatch", "(16, 16)", "(16, 12)"]),
    ("label-outside-set", "label value 7 not in {0, 255}", _seg_value_outside, ["values [7] are outside the label set"]),
    ("missing-label", "an image without a label", _seg_missing_label, ["no label file"]),
    ("nan-image", "a float TIFF image with a NaN", _seg_nan_tiff, ["non-finite intensity", "index (0, 3, 5)"]),
    ("non-integer-label", "a float label TIFF of 0.5", _seg_float_label, ["non-integer label values"]),
    ("wrong-channels-image", "a 5-channel image", _seg_five_channels, ["expected a 2D image", "(16, 16, 5)"]),
]  # fmt: skip


@pytest.mark.parametrize(("case", "fault", "damage", "names"), SEG_CASES, ids=[c[0] for c in SEG_CASES])
def test_segmentation_folder(tmp_path, case, fault, damage, names):
    seg_folder(tmp_path)
    bad = damage(tmp_path)
    check_error(FOLDER, case, fault, lambda: load_seg(tmp_path), names=[bad.name, *names], exc=SegmentationDataError)


def test_tiff_stacks(tmp_path):
    rng = np.random.default_rng(0)
    tifffile.imwrite(tmp_path / "vol.tif", rng.integers(0, 256, (4, 16, 16), dtype=np.uint8), photometric="minisblack")
    tifffile.imwrite(tmp_path / "lab.tif", np.zeros((3, 16, 16), np.uint8), photometric="minisblack")
    check_error(
        STACK, "page-count-mismatch", "3 label pages for 4 image pages",
        lambda: load_tiff_stacks(tmp_path / "vol.tif", tmp_path / "lab.tif", label_values=LABELS),
        names=["vol.tif", "lab.tif", "4 pages", "has 3"], exc=SegmentationDataError,
    )  # fmt: skip
    tifffile.imwrite(tmp_path / "lab.tif", np.zeros((4, 16, 16), np.uint8), photometric="minisblack")
    truncate(tmp_path / "vol.tif", 0.3)
    check_error(
        STACK, "truncated-tiff", "a TIFF stack cut short",
        lambda: load_tiff_stacks(tmp_path / "vol.tif", tmp_path / "lab.tif", label_values=LABELS),
        names=["vol.tif", "cannot read TIFF stack"], exc=SegmentationDataError,
    )  # fmt: skip


# --------------------------------------------------------------------------- NIfTI volumes


def nii(path: Path, arr: np.ndarray, aff: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(arr, np.eye(4) if aff is None else aff), str(path))
    return path


def nifti_pair(root: Path, shape=(10, 8, 6)) -> None:
    rng = np.random.default_rng(0)
    nii(root / "images" / "a.nii.gz", rng.normal(0, 1, shape).astype(np.float32))
    lab = np.zeros(shape, np.uint8)
    lab[2:5, 2:5, 1:3] = 1
    nii(root / "labels" / "a.nii.gz", lab)


def _aff(**kw) -> np.ndarray:
    a = np.eye(4)
    if "spacing" in kw:
        a[:3, :3] = np.diag(kw["spacing"])
    if "origin" in kw:
        a[:3, 3] = kw["origin"]
    if kw.get("flip"):
        a[1, 1] = -1
    return a


def _lab(aff=None, arr=None):
    def damage(root):
        lab = np.zeros((10, 8, 6), np.uint8) if arr is None else arr
        return nii(root / "labels" / "a.nii.gz", lab, aff)

    return damage


def _nii_truncated(root):
    return truncate(root / "images" / "a.nii.gz", 0.5)


def _nii_garbled(root):
    return garble(root / "images" / "a.nii.gz")


def _nii_nan(root):
    vol = np.zeros((10, 8, 6), np.float32)
    vol[1, 2, 3] = np.inf
    return nii(root / "images" / "a.nii.gz", vol)


def _nii_complex(root):
    vol = (np.ones((10, 8, 6)) + 1j).astype(np.complex64)
    return nii(root / "images" / "a.nii.gz", vol)


NIFTI_CASES = [
    ("truncated-nii-gz", "an image .nii.gz cut short", _nii_truncated, ["cannot read NIfTI file"]),
    ("garbled-nii-gz", "an image .nii.gz with random bytes", _nii_garbled, ["cannot read NIfTI"]),
    ("wrong-affine-spacing", "a label with 2 mm voxels for a 1 mm image", _lab(_aff(spacing=(2, 1, 1))), ["images/a.nii.gz", "differ in spacing"]),
    ("wrong-affine-origin", "a label shifted by 5 mm", _lab(_aff(origin=(0, 5, 0))), ["images/a.nii.gz", "differ in origin"]),
    ("wrong-affine-direction", "a label with a flipped axis", _lab(_aff(flip=True)), ["images/a.nii.gz", "differ in direction"]),
    ("mismatched-pair", "a label of another voxel grid", _lab(arr=np.zeros((10, 8, 5), np.uint8)), ["size mismatch", "(10, 8, 6)", "(10, 8, 5)"]),
    ("non-integer-label", "a float label of 0.5", _lab(arr=np.full((10, 8, 6), 0.5, np.float32)), ["non-integer label values"]),
    ("inf-image", "an image with an inf voxel", _nii_nan, ["non-finite intensity", "(1, 2, 3, 0)"]),
    ("wrong-dtype", "a complex64 image volume", _nii_complex, ["voxel dtype complex64", "not a real number type"]),
    ("label-4d", "a label with 2 channels", _lab(arr=np.zeros((10, 8, 6, 2), np.uint8)), ["expected a 3D volume"]),
]  # fmt: skip


@pytest.mark.parametrize(("case", "fault", "damage", "names"), NIFTI_CASES, ids=[c[0] for c in NIFTI_CASES])
def test_nifti_folder(tmp_path, case, fault, damage, names):
    nifti_pair(tmp_path)
    bad = damage(tmp_path)
    check_error(
        NIFTI, case, fault,
        lambda: load_nifti_folder(tmp_path / "images", tmp_path / "labels", label_values={0: 0, 1: 1}),
        names=[str(bad.relative_to(tmp_path)), *names], exc=SegmentationDataError,
    )  # fmt: skip


# --------------------------------------------------------------------------- paired restoration


def paired(root: Path, n: int = 3, size=(12, 10), grey_target: bool = False) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        png(root / "input" / f"{i}.png", rng.integers(0, 256, (*size, 3), dtype=np.uint8))
        shape = size if grey_target and i == 1 else (*size, 3)
        png(root / "target" / f"{i}.png", rng.integers(0, 256, shape, dtype=np.uint8))


def _p_truncated(root):
    return truncate(root / "target" / "2.png", 0.5)


def _p_garbled_jpeg(root):
    p = root / "input" / "1.png"
    q = root / "input" / "1.jpg"
    Image.open(p).save(q, quality=90)
    p.unlink()
    (root / "target" / "1.png").rename(root / "target" / "1.jpg")
    return garble(q)


def _p_garbled_png(root):
    return garble(root / "input" / "0.png", middle=True)


def _p_non_image(root):
    p = root / "input" / "notes.csv"
    p.write_text("a,b\n")
    return p


def _p_unpaired(root):
    (root / "target" / "1.png").unlink()
    return root / "input"


def _p_size(root):
    return png(root / "target" / "0.png", np.zeros((12, 9, 3), np.uint8))


def _p_grey(root):
    return png(root / "target" / "1.png", np.zeros((12, 10), np.uint8))


def _p_empty(root):
    p = root / "input" / "2.png"
    p.write_bytes(b"")
    return p


def _p_16bit(root):
    return png(root / "target" / "2.png", np.full((12, 10), 4000, np.uint16))


PAIRED_CASES = [
    ("truncated-png", "a target PNG cut short (fails at construction, not mid-epoch)", _p_truncated, ["cannot decode image", "truncated"]),
    ("garbled-jpeg-header", "a JPEG with random bytes after its first 16", _p_garbled_jpeg, ["cannot read image", "cannot identify"]),
    ("garbled-png-data", "an input PNG with 200 random bytes in its pixel data", _p_garbled_png, ["cannot decode image"]),
    ("non-image-file", "a CSV in the input folder", _p_non_image, ["non-image files"]),
    ("unpaired", "an input without a target", _p_unpaired, ["unpaired images", "1.png"]),
    ("mismatched-pair", "a target of another size", _p_size, ["size-mismatched pairs", "12x10 vs", "12x9"]),
    ("wrong-channels", "a grey target for a colour input", _p_grey, ["mismatched pair", "grey", "colour"]),
    ("empty-file", "a 0-byte input PNG", _p_empty, ["cannot read image"]),
    ("wrong-dtype", "a 16-bit target PNG (would clip at 255)", _p_16bit, ["mode I;16", "8-bit"]),
]  # fmt: skip


@pytest.mark.parametrize(("case", "fault", "damage", "names"), PAIRED_CASES, ids=[c[0] for c in PAIRED_CASES])
def test_paired_restoration(tmp_path, case, fault, damage, names):
    paired(tmp_path)
    bad = damage(tmp_path)
    check_error(PAIRED, case, fault, lambda: PairedImageDataset(tmp_path), names=[bad.name, *names], exc=RestorationDataError)


def test_verification_is_cached_by_size_and_mtime(tmp_path, monkeypatch):
    import gatelab.vision.data.restoration as r

    paired(tmp_path / "data")
    calls: list[Path] = []
    real = r._verify_one
    monkeypatch.setattr(r, "_verify_one", lambda p: calls.append(p) or real(p))
    PairedImageDataset(tmp_path / "data")
    assert len(calls) == 6 and (tmp_path / "cache" / r.VERIFY_CACHE).is_file()
    assert not list((tmp_path / "data").rglob("*.json"))  # nothing written beside the data
    calls.clear()
    PairedImageDataset(tmp_path / "data")
    assert calls == []  # every file verified before, unchanged
    truncate(tmp_path / "data" / "target" / "0.png", 0.5)  # a new size: decoded again, and fails
    with pytest.raises(RestorationDataError, match=r"cannot decode image .*target/0\.png"):
        PairedImageDataset(tmp_path / "data")
    assert calls == [tmp_path / "data" / "target" / "0.png"]
    info = verify_images([tmp_path / "data" / "input" / "0.png"])
    assert info[tmp_path / "data" / "input" / "0.png"] == {"height": 12, "width": 10, "mode": "RGB"}


# --------------------------------------------------------------------------- models


def _models():
    from gatelab.vision.models.dncnn import DnCNN
    from gatelab.vision.models.maxim import Maxim
    from gatelab.vision.models.unet import AttentionUNet

    tiny_maxim = dict(features=8, depth=1, num_stages=1, num_groups=1, num_bottleneck_blocks=1, block_size_hr=2,
                      block_size_lr=2, grid_size_hr=2, grid_size_lr=2, num_supervision_scales=1)  # fmt: skip
    return {
        "Maxim": lambda **kw: Maxim(**tiny_maxim, **kw),
        "AttentionUNet": lambda **kw: AttentionUNet(spatial_dims=2, in_channels=3, filters=(8, 16, 32), feature_scale=1, **kw),
        "DnCNN": lambda **kw: DnCNN(in_channels=3, features=8, num_layers=3, **kw),
    }


@pytest.mark.parametrize("name", ["Maxim", "AttentionUNet", "DnCNN"])
def test_models_reject_non_float_and_non_finite_input(name):
    build = _models()[name]
    x = torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8)
    check_error(MODELS, f"{name}-uint8", "a uint8 image tensor", lambda: build()(x), names=[name, "floating-point", "torch.uint8"], exc=TypeError)
    y = torch.rand(1, 3, 16, 16)
    y[0, 1, 2, 3] = float("nan")
    model = build(check_finite=True).eval()
    check_error(MODELS, f"{name}-nan", "a NaN pixel with check_finite", lambda: model(y), names=[name, "1 non-finite", "(0, 1, 2, 3)"], exc=ValueError)
    with torch.no_grad():
        build().eval()(torch.rand(1, 3, 16, 16))  # float input passes
