"""Restoration data: benchmark folder layouts, bad input, synthetic noise, data modules (tiny fixtures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from restoration_fixtures import make_fake_restoration_data

from gatelab.vision.data.datamodule import denoise_datamodule, paired_datamodule
from gatelab.vision.data.restoration import (
    COLOUR_TESTSETS,
    EpochSampler,
    ImageFolderDataset,
    NoisyImageDataset,
    PairedImageDataset,
    RestorationDataError,
    assert_disjoint,
    list_images,
    load_image,
)


def _save(path: Path, h: int, w: int, seed: int, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (h, w, channels) if channels == 3 else (h, w), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return arr


def _pairs(root: Path, din: str, dtg: str, names=("a.png", "b.png"), size=(12, 10)) -> None:
    for i, n in enumerate(names):
        _save(root / din / n, *size, seed=i)
        _save(root / dtg / n, *size, seed=100 + i)


@pytest.mark.parametrize(
    ("layout", "din", "dtg"),
    [
        ("input_target", "input", "target"),
        ("sidd", "input", "groundtruth"),
        ("rain13k", "rain", "norain"),
        ("lol", "low", "high"),
    ],
)
def test_paired_layouts(tmp_path, layout, din, dtg):
    _pairs(tmp_path, din, dtg)
    ds = PairedImageDataset(tmp_path, layout)
    assert len(ds) == 2
    x, y = ds[1]
    assert x.shape == y.shape == (3, 12, 10)
    torch.testing.assert_close(x, load_image(tmp_path / din / "b.png"))
    torch.testing.assert_close(y, load_image(tmp_path / dtg / "b.png"))


def test_gopro_scenes_and_sidd_medium(tmp_path):
    for scene in ("GOPR0372_07_00", "GOPR0374_11_00"):
        _pairs(tmp_path / "gopro" / scene, "blur", "sharp", names=("000047.png",))
    ds = PairedImageDataset(tmp_path / "gopro", "gopro")
    assert [p[0].parent.parent.name for p in ds.pairs] == ["GOPR0372_07_00", "GOPR0374_11_00"]
    scene = tmp_path / "sidd" / "0001_001_S6_00100_00060_3200_L"
    _save(scene / "NOISY_SRGB_010.PNG", 8, 8, 1)
    _save(scene / "GT_SRGB_010.PNG", 8, 8, 2)
    _save(scene / "NOISY_SRGB_011.PNG", 8, 8, 3)
    _save(scene / "GT_SRGB_011.PNG", 8, 8, 4)
    ds = PairedImageDataset(tmp_path / "sidd", "sidd_medium")
    assert [(a.name, b.name) for a, b in ds.pairs] == [
        ("NOISY_SRGB_010.PNG", "GT_SRGB_010.PNG"),
        ("NOISY_SRGB_011.PNG", "GT_SRGB_011.PNG"),
    ]


def test_bad_input_is_named(tmp_path):
    _pairs(tmp_path / "unpaired", "input", "target")
    _save(tmp_path / "unpaired" / "input" / "c.png", 12, 10, 7)
    with pytest.raises(RestorationDataError, match=r"without a target \(c\.png\)"):
        PairedImageDataset(tmp_path / "unpaired")

    _pairs(tmp_path / "sizes", "input", "target")
    _save(tmp_path / "sizes" / "target" / "b.png", 12, 11, 7)
    with pytest.raises(RestorationDataError, match=r"size-mismatched.*b\.png 12x10 vs .*b\.png 12x11"):
        PairedImageDataset(tmp_path / "sizes")

    _pairs(tmp_path / "junk", "input", "target")
    (tmp_path / "junk" / "input" / "notes.csv").write_text("x\n")
    (tmp_path / "junk" / "input" / "SOURCE.txt").write_text("allowed\n")
    with pytest.raises(RestorationDataError, match=r"non-image files in .*input: .*notes\.csv"):
        PairedImageDataset(tmp_path / "junk")

    _pairs(tmp_path / "corrupt", "input", "target")
    (tmp_path / "corrupt" / "target" / "a.png").write_bytes(b"not a png at all")
    with pytest.raises(RestorationDataError, match=r"cannot read image .*target/a\.png"):
        PairedImageDataset(tmp_path / "corrupt")

    with pytest.raises(RestorationDataError, match="no target folder"):
        (tmp_path / "nofolder" / "input").mkdir(parents=True)
        PairedImageDataset(tmp_path / "nofolder")
    with pytest.raises(ValueError, match="unknown paired layout"):
        PairedImageDataset(tmp_path / "sizes", "gopr0")


def test_paired_training_crops_stay_aligned(tmp_path):
    for n in ("a.png", "b.png"):
        arr = _save(tmp_path / "target" / n, 20, 18, seed=len(n) + ord(n[0]))
        Image.fromarray(255 - arr).save(tmp_path / "input" / n) if (tmp_path / "input").is_dir() else None
        (tmp_path / "input").mkdir(exist_ok=True)
        Image.fromarray(255 - arr).save(tmp_path / "input" / n)
    ds = PairedImageDataset(tmp_path, crop=8, train=True, length=50, seed=3)
    assert len(ds) == 50
    for k in range(20):
        x, y = ds[k]
        assert x.shape == (3, 8, 8)
        torch.testing.assert_close(x, 1.0 - y)  # same crop and same flip/rotation on both
    torch.testing.assert_close(ds[5][0], ds[5][0])  # item k is a function of (seed, k)


def test_noisy_dataset_statistics_and_determinism(tmp_path):
    files = [tmp_path / f"{i}.png" for i in range(3)]
    for i, f in enumerate(files):
        _save(f, 96, 80, seed=i)
    imgs = ImageFolderDataset(files)
    test = NoisyImageDataset(imgs, 25.0, seed=1)
    x, y = test[2]
    assert x.shape == y.shape == (3, 96, 80)
    torch.testing.assert_close(y, load_image(files[2]))
    noise = (x - y) * 255.0
    assert abs(noise.std().item() - 25.0) < 1.0 and abs(noise.mean().item()) < 0.6
    torch.testing.assert_close(test[2][0], x)  # fixed noise for evaluation
    assert not torch.equal(NoisyImageDataset(imgs, 25.0, seed=2)[2][0], x)

    train = NoisyImageDataset(imgs, (5.0, 50.0), crop=32, train=True, length=7, seed=0)
    assert len(train) == 7
    stds = [((a - b) * 255).std().item() for a, b in (train[k] for k in range(40))]
    assert min(stds) > 4.0 and max(stds) < 53.0 and max(stds) - min(stds) > 15.0  # blind: sigma varies
    assert train[3][0].shape == (3, 32, 32)
    torch.testing.assert_close(train[3][0], train[3][0])
    with pytest.raises(ValueError, match="sigma range"):
        NoisyImageDataset(imgs, (30.0, 10.0))
    with pytest.raises(RestorationDataError, match="smaller than the crop"):
        NoisyImageDataset(imgs, 25, crop=100, train=True)[0]


def test_epoch_sampler_and_disjointness(tmp_path):
    s = EpochSampler(3)
    assert list(s) == [0, 1, 2]
    s.set_epoch(2)
    assert list(s) == [6, 7, 8] and len(s) == 3
    a = _save(tmp_path / "train" / "x.png", 8, 8, 1)
    _save(tmp_path / "test" / "y.png", 8, 8, 2)
    assert_disjoint(list_images(tmp_path / "train"), list_images(tmp_path / "test"))
    Image.fromarray(a).save(tmp_path / "test" / "copy.bmp")  # same pixels, other file format
    with pytest.raises(RestorationDataError, match=r"overlap the test images: .*x\.png == .*copy\.bmp"):
        assert_disjoint(list_images(tmp_path / "train"), list_images(tmp_path / "test"))


def test_denoise_datamodule(tmp_path):
    make_fake_restoration_data(tmp_path)
    dm = denoise_datamodule(
        tmp_path, crop=16, batch_size=4, samples_per_epoch=8, val_images=3, val_crop=16, verify=False
    )
    dm.setup("fit")
    assert dm.model_kwargs() == {"in_channels": 3, "num_outputs": 3}
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == y.shape == (4, 3, 16, 16)
    assert len(dm.train_dataloader()) == 2
    xv, _ = next(iter(dm.val_dataloader()))
    assert xv.shape == (3, 3, 16, 16)
    tests = dm.test_dataloader()
    assert len(tests) == len(COLOUR_TESTSETS) == 3
    assert [len(t.dataset) for t in tests] == [68, 24, 18]
    xt, _ = next(iter(tests[0]))
    assert xt.shape == (1, 3, 20, 24)

    grey = denoise_datamodule(tmp_path, channels=1, crop=16, verify=False, test_sets=["Set12"])
    grey.setup()
    assert next(iter(grey.test_dataloader()[0]))[0].shape == (1, 1, 20, 24)
    with pytest.raises(ValueError, match="unknown test set 'Set13'"):
        denoise_datamodule(tmp_path, test_sets=["Set13"])


def test_denoise_datamodule_refuses_training_on_a_test_image(tmp_path):
    make_fake_restoration_data(tmp_path)
    leak = tmp_path / "coco_mini" / "train2017" / "000000000790.jpg"
    Image.open(tmp_path / "denoise_testsets" / "Kodak24" / "kodim01.png").save(leak.with_suffix(".png"))
    leak.unlink()
    leak.with_suffix(".png").rename(leak)  # a PNG under the .jpg name: same pixels as kodim01
    dm = denoise_datamodule(tmp_path, crop=16, verify=False, check_disjoint=True)
    with pytest.raises(RestorationDataError, match="kodim01"):
        dm.setup("fit")


def test_paired_datamodule(tmp_path):
    _pairs(tmp_path / "train", "input", "target", names=("a.png", "b.png", "c.png"), size=(24, 20))
    _pairs(tmp_path / "test", "input", "target", names=("d.png",), size=(21, 17))
    dm = paired_datamodule(
        tmp_path, train_root="train", test_root="test", crop=16, batch_size=2, samples_per_epoch=4
    )
    dm.setup()
    x, _ = next(iter(dm.train_dataloader()))
    assert x.shape == (2, 3, 16, 16)
    assert next(iter(dm.test_dataloader()))[0].shape == (1, 3, 21, 17)
    from gatelab.core.harness.errors import DatasetNotFoundError

    with pytest.raises(DatasetNotFoundError, match="paired restoration data not found"):
        paired_datamodule(tmp_path, train_root="nope").setup()


@pytest.mark.data
def test_real_denoise_data(shared_data):
    dm = denoise_datamodule(shared_data, crop=64, batch_size=2, val_images=2)
    dm.setup("fit")  # verifies every pinned sha256 and that no training image is a test image
    assert [len(dm.test_ds[s]) for s in COLOUR_TESTSETS] == [68, 24, 18]
    assert len(dm.train_ds.images) == 80
    x, y = dm.test_ds["McMaster"][0]
    assert x.shape == y.shape == (3, 500, 500)
