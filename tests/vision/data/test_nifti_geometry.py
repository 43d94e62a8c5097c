"""NIfTI image/label geometry (shape, spacing, origin, direction within the stated tolerance),
resampling to a target spacing recorded in the data module's spec, and non-finite intensities.
Fixtures are small NIfTI files written with nibabel."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from gatelab.vision.data.datamodule import nifti_datamodule
from gatelab.vision.data.segmentation import (
    GEOMETRY_ATOL,
    SegmentationDataError,
    load_nifti_folder,
    read_nifti,
    read_nifti_geometry,
    resample_case,
)

SHAPE = (12, 10, 8)  # X, Y, Z as stored


def affine(spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0), flip_x=False) -> np.ndarray:
    a = np.diag([*spacing, 1.0])
    if flip_x:
        a[0, 0] = -a[0, 0]
    a[:3, 3] = origin
    return a


def write(path: Path, arr: np.ndarray, aff: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(arr, aff), str(path))
    return path


def pair(root: Path, name: str = "a", image_affine=None, label_affine=None, seed=0):
    rng = np.random.default_rng(seed)
    vol = rng.normal(0, 1, SHAPE).astype(np.float32)
    lab = np.zeros(SHAPE, np.uint8)
    lab[3:7, 4:8, 2:6] = 1
    write(root / "images" / f"{name}.nii.gz", vol, affine() if image_affine is None else image_affine)
    write(root / "labels" / f"{name}.nii.gz", lab, affine() if label_affine is None else label_affine)
    return vol, lab


def load(root: Path, **kw):
    return load_nifti_folder(root / "images", root / "labels", label_values={0: 0, 1: 1}, **kw)


def test_geometry_from_the_header(tmp_path):
    f = write(tmp_path / "v.nii.gz", np.zeros(SHAPE, np.float32), affine((0.8, 0.8, 2.5), (-100, 20, 3), flip_x=True))
    g = read_nifti_geometry(f)
    assert g.shape == SHAPE and g.spacing == pytest.approx((0.8, 0.8, 2.5)) and g.spacing_dhw == pytest.approx((2.5, 0.8, 0.8))
    assert g.origin == pytest.approx((-100, 20, 3)) and g.direction[0][0] == -1.0


@pytest.mark.parametrize(
    ("label_affine", "fault"),
    [
        (affine(spacing=(1.0, 1.0, 2.5)), r"differ in spacing: \(1, 1, 2\) vs \(1, 1, 2.5\) mm"),
        (affine(origin=(0.0, 0.0, 4.0)), r"differ in origin: \(0, 0, 0\) vs \(0, 0, 4\) mm"),
        (affine(flip_x=True), r"differ in direction: \[\(1, 0, 0\).*\] vs \[\(-1, 0, 0\)"),
    ],
)
def test_label_with_another_affine_is_an_error_naming_both_files(tmp_path, label_affine, fault):
    pair(tmp_path, label_affine=label_affine)
    with pytest.raises(SegmentationDataError, match=fault) as e:
        load(tmp_path)
    assert "images/a.nii.gz" in str(e.value) and "labels/a.nii.gz" in str(e.value)
    assert f"tolerance {GEOMETRY_ATOL}" in str(e.value)


def test_geometry_within_tolerance_loads(tmp_path):
    near = affine(spacing=(1.0, 1.0, 2.0 + 5e-5), origin=(3e-5, 0.0, 0.0))  # float32 header rounding
    pair(tmp_path, label_affine=near)
    (case,) = load(tmp_path)
    assert case.spacing == pytest.approx((2.0, 1.0, 1.0))  # [D, H, W] = (z, y, x)
    pair(tmp_path, label_affine=affine(origin=(0.0, 0.0, 0.01)))  # 10 micrometres: out by default...
    with pytest.raises(SegmentationDataError, match="differ in origin"):
        load(tmp_path)
    assert len(load(tmp_path, geometry_atol=0.05)) == 1  # ...accepted with a stated looser tolerance


def test_resampling_to_a_target_spacing(tmp_path):
    pair(tmp_path)  # spacing (z, y, x) = (2, 1, 1), array [D, H, W] = (8, 10, 12)
    (case,) = load(tmp_path, target_spacing=(1.0, 2.0, 2.0))
    assert case.image.shape == (1, 16, 5, 6) and case.label.shape == (16, 5, 6)
    assert case.spacing == (1.0, 2.0, 2.0)
    assert set(case.label.unique().tolist()) == {0, 1}  # nearest neighbour: no new label values
    # the foreground is the same physical volume: 4 x 4 x 4 voxels of 2 mm^3 = 128 mm^3
    assert int(case.label.sum()) * 1.0 * 2.0 * 2.0 == pytest.approx(4 * 4 * 4 * 2.0, rel=0.3)
    img, lab = resample_case(np.ones((1, 4, 4, 4), np.float32), np.ones((4, 4, 4), np.int64), (1, 1, 1), (1, 1, 1))
    assert img.shape == (1, 4, 4, 4)  # same spacing: untouched
    with pytest.raises(SegmentationDataError, match=r"target_spacing \(0.0, 1.0, 1.0\) must be positive"):
        resample_case(img, lab, (1, 1, 1), (0.0, 1.0, 1.0), source="x")
    dm = nifti_datamodule(
        tmp_path, train_images="images", train_labels="labels", test_images="images", test_labels="labels",
        label_values={0: 0, 1: 1}, patch_size=4, target_spacing=(1.0, 2.0, 2.0),
    )  # fmt: skip
    spec = dm.data_spec()
    assert spec["spacing"] == [1.0, 2.0, 2.0] and spec["target_spacing"] == [1.0, 2.0, 2.0]
    dm = nifti_datamodule(
        tmp_path, train_images="images", train_labels="labels", test_images="images", test_labels="labels",
        label_values={0: 0, 1: 1}, patch_size=4,
    )  # fmt: skip
    assert dm.data_spec()["spacing"] == [2.0, 1.0, 1.0] and dm.data_spec()["target_spacing"] is None


def test_non_finite_intensities_are_named(tmp_path):
    vol = np.zeros(SHAPE, np.float32)
    vol[2, 3, 4] = np.nan
    f = write(tmp_path / "nan.nii.gz", vol, affine())
    with pytest.raises(SegmentationDataError, match=r"nan\.nii\.gz .*1 non-finite intensity value\(s\) .*index \(2, 3, 4, 0\)"):
        read_nifti(f)
