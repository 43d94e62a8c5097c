"""Segmentation data: readers on PNG/TIFF/GIF/NIfTI fixtures written here, error messages, patch
sampling (foreground-aware), augmentation geometry, the data modules; real data when present."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from gatelab.vision.data.datamodule import (
    folder_datamodule,
    membrane_datamodule,
    membrane_split,
    nifti_datamodule,
)
from gatelab.vision.data.segmentation import (
    Augment,
    CaseDataset,
    PatchDataset,
    SegmentationDataError,
    load_case,
    load_folder,
    load_nifti_folder,
    load_tiff_stacks,
    map_labels,
    normalize_image,
    pair_files,
    read_image,
    read_label,
    read_nifti,
    read_tiff_stack,
)

LABELS = {0: 0, 255: 1}


def _png(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode=mode).save(path)
    return path


def _gif(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format="GIF")
    return path


def _rng(seed=0):
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------- readers


def test_read_png_tiff_gif(tmp_path):
    grey = _rng().integers(0, 256, (7, 5), dtype=np.uint8)
    rgb = _rng(1).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(read_image(_png(tmp_path / "g.png", grey)), grey[None].astype(np.float32))
    np.testing.assert_array_equal(read_image(_png(tmp_path / "c.png", rgb)), np.moveaxis(rgb, -1, 0))
    tifffile.imwrite(tmp_path / "c.tif", rgb)
    np.testing.assert_array_equal(read_image(tmp_path / "c.tif"), np.moveaxis(rgb, -1, 0))
    # LZW-compressed TIFF (DRIVE's images): written by Pillow, read without imagecodecs
    Image.fromarray(rgb).save(tmp_path / "lzw.tif", compression="tiff_lzw")
    np.testing.assert_array_equal(read_image(tmp_path / "lzw.tif"), np.moveaxis(rgb, -1, 0))
    mask = np.where(grey > 128, 255, 0).astype(np.uint8)
    np.testing.assert_array_equal(read_label(_gif(tmp_path / "m.gif", mask)), mask)
    # RGBA: alpha dropped
    rgba = np.concatenate([rgb, np.full((7, 5, 1), 255, np.uint8)], axis=-1)
    assert read_image(_png(tmp_path / "a.png", rgba)).shape == (3, 7, 5)


def test_palette_labels(tmp_path):
    idx = np.array([[0, 1], [1, 2]], dtype=np.uint8)
    grey = Image.fromarray(idx, mode="P")
    grey.putpalette([0, 0, 0, 255, 255, 255, 128, 128, 128] + [0] * 759)
    grey.save(tmp_path / "grey.gif")  # a grey palette: the shown grey values are the labels
    np.testing.assert_array_equal(read_label(tmp_path / "grey.gif"), [[0, 255], [255, 128]])
    colour = Image.fromarray(idx, mode="P")
    colour.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 759)
    colour.save(tmp_path / "voc.png")  # a colour palette (PASCAL VOC style): the indices are the labels
    np.testing.assert_array_equal(read_label(tmp_path / "voc.png"), idx)
    assert read_image(tmp_path / "voc.png").shape == (3, 2, 2)


def test_tiff_stack_and_cases(tmp_path):
    imgs = _rng().integers(0, 256, (3, 6, 4), dtype=np.uint8)
    labs = np.where(_rng(2).random((3, 6, 4)) > 0.5, 255, 0).astype(np.uint8)
    tifffile.imwrite(tmp_path / "train-volume.tif", imgs)
    tifffile.imwrite(tmp_path / "train-labels.tif", labs)
    assert read_tiff_stack(tmp_path / "train-volume.tif").shape == (3, 6, 4)
    cases = load_tiff_stacks(
        tmp_path / "train-volume.tif", tmp_path / "train-labels.tif", label_values=LABELS
    )
    assert len(cases) == 3
    np.testing.assert_array_equal(cases[1].label.numpy(), labs[1] // 255)
    z = (imgs[1].astype(np.float64) - imgs[1].mean()) / imgs[1].std()
    np.testing.assert_allclose(cases[1].image[0].numpy(), z, rtol=1e-5, atol=1e-5)
    tifffile.imwrite(tmp_path / "short.tif", labs[:2])
    with pytest.raises(SegmentationDataError, match=r"train-volume\.tif has 3 pages.*short\.tif has 2"):
        load_tiff_stacks(tmp_path / "train-volume.tif", tmp_path / "short.tif", label_values=LABELS)


def test_map_labels_and_normalize():
    raw = np.array([[0, 255], [128, 0]])
    np.testing.assert_array_equal(map_labels(raw, {0: 1, 128: 2, 255: 0}, "x"), [[1, 0], [2, 1]])
    with pytest.raises(SegmentationDataError, match=r"label file lab\.png: values \[128\] are outside"):
        map_labels(raw, LABELS, "lab.png")
    img = np.array([[[1.0, 3.0], [100.0, 5.0]]])
    valid = np.array([[True, True], [False, False]])
    out = normalize_image(img, "zscore", valid)
    np.testing.assert_allclose(out[0, 0], [-1.0, 1.0])  # mean 2, std 1 over the valid pixels
    np.testing.assert_allclose(normalize_image(img, "unit"), img / 255.0)
    with pytest.raises(ValueError, match="normalize"):
        normalize_image(img, "minmax")


def test_bad_inputs_name_the_file(tmp_path):
    img = _png(tmp_path / "img" / "a.png", np.zeros((8, 8), np.uint8))
    lab_small = _png(tmp_path / "lab" / "a.png", np.zeros((8, 6), np.uint8))
    with pytest.raises(
        SegmentationDataError, match=r"size mismatch: image .*img/a\.png.*\(8, 8\).*lab/a\.png.*\(8, 6\)"
    ):
        load_case(img, lab_small, label_values=LABELS)
    lab_bad = _png(tmp_path / "lab2" / "a.png", np.full((8, 8), 7, np.uint8))
    with pytest.raises(
        SegmentationDataError, match=r"lab2/a\.png: values \[7\] are outside the label set \[0, 255\]"
    ):
        load_case(img, lab_bad, label_values=LABELS)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    with pytest.raises(SegmentationDataError, match=r"cannot read image file .*broken\.png"):
        read_image(broken)
    with pytest.raises(SegmentationDataError, match=r"not found: .*missing\.png"):
        read_image(tmp_path / "missing.png")
    fov = _png(tmp_path / "fov" / "a.png", np.zeros((4, 8), np.uint8))
    lab = _png(tmp_path / "lab3" / "a.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(SegmentationDataError, match=r"mask .*fov/a\.png has size \(4, 8\)"):
        load_case(img, lab, fov, label_values=LABELS)


def test_pairing_by_key(tmp_path):
    z = np.zeros((8, 8), np.uint8)
    (tmp_path / "images").mkdir()
    for k in (21, 22):
        tifffile.imwrite(tmp_path / "images" / f"{k}_training.tif", z)
        _gif(tmp_path / "manual" / f"{k}_manual1.gif", z)
        _gif(tmp_path / "mask" / f"{k}_training_mask.gif", np.full((8, 8), 255, np.uint8))
    pairs = pair_files(tmp_path / "images", tmp_path / "manual", tmp_path / "mask", key_pattern=r"^(\d+)_")
    assert [p[0] for p in pairs] == ["21", "22"]
    assert pairs[0][2].name == "21_manual1.gif" and pairs[0][3].name == "21_training_mask.gif"
    cases = load_folder(
        tmp_path / "images",
        tmp_path / "manual",
        tmp_path / "mask",
        label_values=LABELS,
        key_pattern=r"^(\d+)_",
    )
    assert cases[0].valid.all() and cases[0].name == "21"
    (tmp_path / "manual" / "22_manual1.gif").unlink()
    with pytest.raises(
        SegmentationDataError, match=r"no label file in .*manual for image\(s\) \[.*22_training\.tif"
    ):
        pair_files(tmp_path / "images", tmp_path / "manual", key_pattern=r"^(\d+)_")
    with pytest.raises(SegmentationDataError, match="folder not found"):
        pair_files(tmp_path / "nope", tmp_path / "manual")


# --------------------------------------------------------------------------- NIfTI (3D)


def _nifti(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(path))
    return path


def _volume_pair(root: Path, name: str, shape=(12, 10, 8), seed=0) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic CT-like volume (X, Y, Z) with a small bright 'organ' (label 1) and noise."""
    rng = _rng(seed)
    vol = rng.normal(0, 1, shape).astype(np.float32)
    lab = np.zeros(shape, np.uint8)
    lab[3:6, 4:7, 2:4] = 1
    vol[lab == 1] += 4.0
    _nifti(root / "images" / f"{name}.nii.gz", vol)
    _nifti(root / "labels" / f"{name}.nii.gz", lab)
    return vol, lab


def test_nifti_reader_axes(tmp_path):
    vol, lab = _volume_pair(tmp_path, "case0")
    img = read_nifti(tmp_path / "images/case0.nii.gz")
    assert img.shape == (1, 8, 10, 12)  # [C, Z, Y, X]
    np.testing.assert_allclose(img[0], np.transpose(vol, (2, 1, 0)))
    lab_read = read_nifti(tmp_path / "labels/case0.nii.gz", label=True)
    assert lab_read.dtype == np.int64 and lab_read.shape == (8, 10, 12)
    np.testing.assert_array_equal(lab_read, np.transpose(lab, (2, 1, 0)))
    _nifti(tmp_path / "frac.nii.gz", np.full((2, 2, 2), 0.5, np.float32))
    with pytest.raises(SegmentationDataError, match=r"frac\.nii\.gz: non-integer label values"):
        read_nifti(tmp_path / "frac.nii.gz", label=True)
    (tmp_path / "junk.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(SegmentationDataError, match=r"cannot read NIfTI file .*junk\.nii\.gz"):
        read_nifti(tmp_path / "junk.nii.gz")


def test_nifti_folder_and_mismatch(tmp_path):
    _volume_pair(tmp_path, "a")
    _volume_pair(tmp_path, "b", seed=1)
    cases = load_nifti_folder(tmp_path / "images", tmp_path / "labels", label_values={0: 0, 1: 1})
    assert [c.name for c in cases] == ["a", "b"]
    assert cases[0].image.shape == (1, 8, 10, 12) and int(cases[0].label.sum()) == 3 * 3 * 2
    _nifti(tmp_path / "labels" / "b.nii.gz", np.zeros((12, 10, 7), np.uint8))
    with pytest.raises(
        SegmentationDataError, match=r"size mismatch: image .*images/b\.nii\.gz.*labels/b\.nii\.gz"
    ):
        load_nifti_folder(tmp_path / "images", tmp_path / "labels", label_values={0: 0, 1: 1})
    _nifti(tmp_path / "labels" / "b.nii.gz", np.full((12, 10, 8), 3, np.uint8))
    with pytest.raises(SegmentationDataError, match=r"labels/b\.nii\.gz: values \[3\] are outside"):
        load_nifti_folder(tmp_path / "images", tmp_path / "labels", label_values={0: 0, 1: 1})


# --------------------------------------------------------------------------- sampling / augmentation


def _case_3d(tmp_path):
    _volume_pair(tmp_path, "a", shape=(24, 20, 16))
    return load_nifti_folder(tmp_path / "images", tmp_path / "labels", label_values={0: 0, 1: 1})


def test_foreground_aware_sampling(tmp_path):
    cases = _case_3d(tmp_path)  # 18 foreground voxels out of 7680
    ds = PatchDataset(cases, (8, 8, 8), 40, fg_prob=1.0)
    for i in range(40):
        item = ds[i]
        assert item["image"].shape == (1, 8, 8, 8) and item["target"].shape == (8, 8, 8)
        assert item["target"].sum() > 0, "fg_prob=1 must always include foreground"
    uniform = PatchDataset(cases, (8, 8, 8), 200, fg_prob=0.0)
    hits = sum(int(uniform[i]["target"].sum() > 0) for i in range(200))
    assert hits < 150  # far from always (about 1 in 4 windows overlaps the 3x3x2 object)


def test_patch_padding_marks_invalid():
    from gatelab.vision.data.segmentation import SegmentationCase

    case = SegmentationCase(
        "x", torch.ones(1, 5, 6), torch.ones(5, 6, dtype=torch.long), torch.ones(5, 6, dtype=torch.bool)
    )
    item = PatchDataset([case], (8, 8), 1)[0]
    assert item["image"].shape == (1, 8, 8)
    assert item["valid"].sum() == 30 and not item["valid"][5:].any() and not item["valid"][:, 6:].any()
    assert item["image"][0, 6, 7] == 0 and item["target"][6, 7] == 0


def test_augment_geometry():
    aug = Augment(flip=False, rot90=False)
    label = torch.arange(25).reshape(5, 5) % 3
    image = label[None].float()
    valid = torch.ones(5, 5, dtype=torch.bool)
    # identity grid reproduces the input exactly
    grid = aug._grid((5, 5), 0.0, False)
    from gatelab.vision.data.segmentation import _resample

    img, lab, val = _resample(image, label, valid, grid)
    torch.testing.assert_close(img, image)
    assert torch.equal(lab, label) and val.all()
    # a 90-degree rotation through the grid equals torch.rot90 (square, odd size: exact pixel centres)
    img, lab, _ = _resample(image, label, valid, aug._grid((5, 5), 90.0, False))
    rot = torch.rot90(label, 1, (0, 1))
    assert torch.equal(lab, rot) or torch.equal(lab, torch.rot90(label, -1, (0, 1)))
    torch.testing.assert_close(img[0], lab.float())


def test_augment_keeps_image_and_label_aligned():
    torch.manual_seed(3)
    aug = Augment(flip=True, rot90=True, rotate_deg=20.0, elastic_alpha=2.0, p_rotate=1.0, p_elastic=1.0)
    for shape in ((16, 16), (8, 12, 12)):
        label = (torch.rand(shape) > 0.7).long()
        image = label[None].float() * 10
        valid = torch.ones(shape, dtype=torch.bool)
        for _ in range(3):
            img, lab, val = aug(image, label, valid)
            assert img.shape == image.shape and lab.shape == label.shape and val.dtype == torch.bool
            assert set(lab.unique().tolist()) <= {0, 1}
            # where the bilinear image is (nearly) pure 0 or 10, the nearest label agrees
            sure = (img[0] < 0.5) | (img[0] > 9.5)
            assert torch.equal((img[0][sure] > 5).long(), lab[sure])
    # flips and 90-degree rotations alone are exact permutations
    aug = Augment(flip=True, rot90=True)
    label = torch.arange(36).reshape(6, 6)
    img, lab, _ = aug(label[None].float(), label, torch.ones(6, 6, dtype=torch.bool))
    assert torch.equal(img[0].long(), lab) and sorted(lab.flatten().tolist()) == list(range(36))
    with pytest.raises(ValueError, match="p_rotate"):
        Augment(p_rotate=2.0)


# --------------------------------------------------------------------------- data modules


def test_folder_and_nifti_datamodules(tmp_path):
    rng = _rng()
    for split, n in (("train", 3), ("test", 2)):
        for k in range(n):
            _png(tmp_path / split / "img" / f"{k}.png", rng.integers(0, 256, (20, 18), dtype=np.uint8))
            _png(
                tmp_path / split / "lab" / f"{k}.png",
                np.where(rng.random((20, 18)) > 0.5, 255, 0).astype(np.uint8),
            )
    dm = folder_datamodule(
        tmp_path,
        train_images="train/img",
        train_labels="train/lab",
        test_images="test/img",
        test_labels="test/lab",
        label_values={"0": 0, "255": 1},
        patch_size=16,
        batch_size=2,
        samples_per_epoch=4,
        augment={"rotate_deg": 10},
        val_cases=1,
    )
    assert dm.model_kwargs() == {"in_channels": 1, "num_classes": 2}
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 1, 16, 16) and batch["target"].dtype == torch.int64
    assert len(dm.val_dataloader()) == 1 and len(dm.test_dataloader()) == 2
    assert next(iter(dm.test_dataloader()))["image"].shape == (1, 1, 20, 18)

    vol_root = tmp_path / "vols"
    for split in ("train", "test"):
        _volume_pair(vol_root / split, "a", shape=(16, 16, 12))
    dm3 = nifti_datamodule(
        vol_root,
        train_images="train/images",
        train_labels="train/labels",
        test_images="test/images",
        test_labels="test/labels",
        label_values={0: 0, 1: 1},
        patch_size=(8, 8, 8),
        batch_size=2,
        samples_per_epoch=2,
    )
    b3 = next(iter(dm3.train_dataloader()))
    assert b3["image"].shape == (2, 1, 8, 8, 8)
    assert len(dm3.val_dataloader()) == 0
    from gatelab.core import ConfigError

    with pytest.raises(ConfigError, match=r"label_values classes must be 0\.\.K-1"):
        folder_datamodule(
            tmp_path, train_images="train/img", train_labels="train/lab", test_images="test/img",
            test_labels="test/lab", label_values={0: 0, 255: 2},
        )  # fmt: skip
    with pytest.raises(ConfigError, match="augment"):
        folder_datamodule(
            tmp_path, train_images="train/img", train_labels="train/lab", test_images="test/img",
            test_labels="test/lab", label_values=LABELS, augment={"rotate": 3},
        )  # fmt: skip


def test_membrane_split_and_tiff_layout(tmp_path):
    train, test = membrane_split(30, 4, 5)
    assert test == [24, 25, 26, 27, 28, 29] and train == list(range(24))
    assert membrane_split(30, 0, 5)[1] == [0, 1, 2, 3, 4, 5]
    root = tmp_path / "isbi2012_membrane"
    root.mkdir()
    imgs = _rng().integers(0, 256, (10, 16, 16), dtype=np.uint8)
    labs = np.where(_rng(1).random((10, 16, 16)) > 0.2, 255, 0).astype(np.uint8)
    tifffile.imwrite(root / "train-volume.tif", imgs)
    tifffile.imwrite(root / "train-labels.tif", labs)
    dm = membrane_datamodule(tmp_path, fold=1, n_folds=5, patch_size=8, batch_size=2, samples_per_epoch=2)
    assert [c.name for c in dm.test] == ["2", "3"]
    # membrane (value 0) is class 1
    np.testing.assert_array_equal(dm.test[0].label.numpy(), (labs[2] == 0).astype(np.int64))


@pytest.mark.data
def test_real_membrane_and_drive(shared_data):
    from gatelab.vision.data.datamodule import drive_datamodule

    if not (shared_data / "DRIVE").is_dir() or not (shared_data / "isbi2012_membrane").is_dir():
        pytest.skip("DRIVE / isbi2012_membrane not in the data directory")
    dm = membrane_datamodule(shared_data)
    assert len(dm.train) == 24 and [c.name for c in dm.test] == ["24", "25", "26", "27", "28", "29"]
    assert dm.train[0].image.shape == (1, 512, 512)
    frac = float(torch.cat([c.label.flatten() for c in dm.train]).float().mean())
    assert 0.1 < frac < 0.4  # membranes are the minority class
    dd = drive_datamodule(shared_data)
    assert len(dd.train) == 20 and len(dd.test) == 20
    c = dd.test[0]
    assert c.name == "01" and c.image.shape == (3, 584, 565) and c.label.shape == (584, 565)
    assert 0.6 < float(c.valid.float().mean()) < 0.8  # the circular field of view
    assert (
        not bool((c.label.bool() & ~c.valid).any())
        or float((c.label.bool() & ~c.valid).float().mean()) < 1e-3
    )
    assert len(CaseDataset(dd.test)) == 20
