"""torchvision decode/augment paths of the vision data against frozen copies of the Pillow/torch code they replaced.

The ``_old_*`` functions below are the pre-torchvision implementations (issue 16 point 6), kept
verbatim in spirit: the new path must give bit-identical tensors for decoding, normalisation,
crops, and -- drawing from the same seeded RNG -- the random flips/rotations.
"""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gatelab.vision.data import restoration as R
from gatelab.vision.data import segmentation as S
from gatelab.vision.data.decode import decode_png_jpeg, pil_luminance

# ----------------------------------------------------------------------------- frozen old code


def _old_load_image_uint8(path: Path, channels: int) -> torch.Tensor:
    with Image.open(path) as im:
        arr = np.array(im.convert("RGB" if channels == 3 else "L"), dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def _old_read_array(path: Path, label: bool) -> np.ndarray:
    return np.array(S._pil_pages(path, True, label))  # the Pillow reader every PNG/JPEG used before


def _old_augment(t: torch.Tensor, mode: int) -> torch.Tensor:
    if mode & 4:
        t = t.flip(-1)
    return torch.rot90(t, mode & 3, dims=(-2, -1))


def _old_center_crop(t: torch.Tensor, crop: int | None) -> torch.Tensor:
    if crop is None:
        return t
    h, w = t.shape[-2:]
    c = min(crop, h, w)
    y, x = (h - c) // 2, (w - c) // 2
    return t[..., y : y + c, x : x + c]


def _old_flip_rot(aug: S.Augment, image, label, valid):
    """The old first half of ``Augment.__call__`` (flips, rot90), same RNG draws."""
    nd = label.dim()
    if aug.flip:
        axes = [a for a in range(nd) if bool(torch.rand(()) < 0.5)]
        if axes:
            image = image.flip([a + 1 for a in axes])
            label, valid = label.flip(axes), valid.flip(axes)
    if aug.rot90 and label.shape[-1] == label.shape[-2]:
        k = int(torch.randint(0, 4, ()))
        if k:
            image = torch.rot90(image, k, (-2, -1))
            label, valid = torch.rot90(label, k, (-2, -1)), torch.rot90(valid, k, (-2, -1))
    return image, label, valid


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    """One tiny file per PNG/JPEG kind (odd sizes, random pixels)."""
    d = tmp_path_factory.mktemp("decode")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (13, 18, 3), dtype=np.uint8)
    rgba = rng.integers(0, 256, (13, 18, 4), dtype=np.uint8)
    grey = rng.integers(0, 256, (13, 18), dtype=np.uint8)
    la = rng.integers(0, 256, (13, 18, 2), dtype=np.uint8)
    smooth = np.clip(np.add.outer(np.arange(13) * 9, np.arange(18) * 7)[..., None] + rgb // 8, 0, 255)
    out: dict[str, Path] = {}

    def save(name: str, im: Image.Image, **kw) -> None:
        out[name] = d / name
        im.save(out[name], **kw)

    save("rgb.png", Image.fromarray(rgb))
    save("rgba.png", Image.fromarray(rgba, "RGBA"))
    save("grey.png", Image.fromarray(grey))
    save("la.png", Image.fromarray(la, "LA"))
    save("interlaced.png", Image.fromarray(rgb), interlace=1)
    pal = Image.fromarray(rgb).quantize(colors=16)
    save("palette.png", pal)
    save("palette_trns.png", pal, transparency=3)
    save("bits1.png", Image.fromarray(grey > 128))
    save("grey16.png", Image.fromarray(grey.astype(np.uint16) * 257))
    save("rgb.jpg", Image.fromarray(smooth.astype(np.uint8)), quality=80)
    save("rgb444.jpg", Image.fromarray(smooth.astype(np.uint8)), quality=95, subsampling=0)
    save("progressive.jpg", Image.fromarray(smooth.astype(np.uint8)), quality=70, progressive=True)
    save("grey.jpg", Image.fromarray(grey), quality=85)
    save("cmyk.jpg", Image.fromarray(smooth.astype(np.uint8)).convert("CMYK"), quality=90)
    save("rgb.bmp", Image.fromarray(rgb))
    save("label.png", Image.fromarray((grey % 3).astype(np.uint8)))
    return out


TORCHVISION_KINDS = {
    "rgb.png", "rgba.png", "grey.png", "la.png", "interlaced.png",
    "rgb.jpg", "rgb444.jpg", "progressive.jpg", "grey.jpg", "label.png",
}  # fmt: skip


def test_decode_path_taken_exactly_for_the_exact_kinds(images):
    for name, path in images.items():
        got = decode_png_jpeg(path)
        assert (got is not None) == (name in TORCHVISION_KINDS), name
        if got is not None:
            assert got.dtype == torch.uint8 and got.dim() == 3


@pytest.mark.parametrize("channels", [1, 3])
def test_load_image_equals_pillow(images, channels):
    for name, path in images.items():
        if name == "grey16.png":  # 16-bit: the restoration loaders refuse it (issue 18) instead of clipping
            with pytest.raises(R.RestorationDataError, match=r"grey16\.png has Pillow mode I;16"):
                R.load_image_uint8(path, channels)
            continue
        new, old = R.load_image_uint8(path, channels), _old_load_image_uint8(path, channels)
        assert new.shape == old.shape and new.dtype == old.dtype, name
        assert torch.equal(new, old), name
        assert new.is_contiguous()
        assert torch.equal(R.load_image(path, channels), old.float().div_(255.0)), name


def test_segmentation_readers_equal_pillow(images):
    for name, path in images.items():
        assert np.array_equal(S._read_array(path), _old_read_array(path, False)), name
        new, old = S._read_array(path, label=True), _old_read_array(path, True)
        assert new.dtype == old.dtype and np.array_equal(new, old), name
    lab = S.read_label(images["label.png"])
    assert lab.dtype == np.int64 and set(np.unique(lab)) <= {0, 1, 2}
    assert S.read_image(images["rgb.jpg"]).shape == (3, 13, 18)
    assert S.read_image(images["la.png"]).shape == (1, 13, 18)  # alpha dropped


def test_pil_luminance_is_pillows_formula():
    rgb = torch.randint(0, 256, (3, 7, 256), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    rgb[:, 0, :] = torch.arange(256, dtype=torch.uint8)  # every value on every channel
    pil = np.array(Image.fromarray(rgb.permute(1, 2, 0).numpy()).convert("L"))
    assert torch.equal(pil_luminance(rgb)[0], torch.from_numpy(pil))
    with pytest.raises(ValueError, match=r"uint8 \[3, H, W\].*float32 \(1, 2, 2\)"):
        pil_luminance(torch.zeros(1, 2, 2))


def test_undecodable_png_still_names_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    assert decode_png_jpeg(bad) is None
    with pytest.raises(R.RestorationDataError, match=r"broken\.png"):
        R.load_image_uint8(bad)
    with pytest.raises(S.SegmentationDataError, match=r"broken\.png"):
        S.read_image(bad)


def test_restoration_crops_and_dihedral_equal_old():
    t = torch.arange(2 * 7 * 10, dtype=torch.float32).view(2, 7, 10)
    for mode in range(8):
        new = R._augment(t, mode)
        assert type(new) is torch.Tensor and torch.equal(new, _old_augment(t, mode)), mode
    for crop in (None, 3, 4, 6, 7, 20):  # odd and even margins (v2.center_crop would round 1.5 to 2)
        assert torch.equal(R._center_crop(t, crop), _old_center_crop(t, crop)), crop
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(5):
        new = R._random_crop([t, t + 1], 4, rng_a, "x")
        y, x = int(rng_b.integers(0, 7 - 4 + 1)), int(rng_b.integers(0, 10 - 4 + 1))
        assert torch.equal(new[0], t[..., y : y + 4, x : x + 4])
        assert torch.equal(new[1], t[..., y : y + 4, x : x + 4] + 1)


@pytest.mark.parametrize("shape", [(8, 8), (6, 9), (4, 6, 6)])
@pytest.mark.parametrize("extra", [False, True])
def test_segmentation_augment_equals_old(shape, extra):
    aug = S.Augment(rotate_deg=20.0 if extra else 0.0, elastic_alpha=1.0 if extra else 0.0)
    g = torch.Generator().manual_seed(3)
    image = torch.randn(2, *shape, generator=g)
    label = torch.randint(0, 3, shape, generator=g)
    valid = torch.rand(shape, generator=g) > 0.2
    for seed in range(12):
        torch.manual_seed(seed)
        new = aug(image, label, valid)
        rest = torch.rand(())  # the RNG stream after the call
        torch.manual_seed(seed)
        old = _old_flip_rot(aug, image, label, valid)
        if extra:  # rotation/elastic (unchanged code) from the same RNG position
            angle = 0.0
            if bool(torch.rand(()) < aug.p_rotate):
                angle = float((torch.rand(()) * 2 - 1) * aug.rotate_deg)
            elastic = bool(torch.rand(()) < aug.p_elastic)
            if angle != 0.0 or elastic:
                old = S._resample(*old, aug._grid(tuple(old[1].shape), angle, elastic))
        assert torch.equal(torch.rand(()), rest), seed  # same number of draws
        for n, o in zip(new, old, strict=True):
            assert type(n) is torch.Tensor and n.dtype == o.dtype and torch.equal(n, o), seed


_REAL = sorted(glob.glob("/work/shared/data/denoise_testsets/*/*.png"))[:3] + sorted(
    glob.glob("/work/shared/data/coco_mini/val2017/*.jpg")
)[:3]


@pytest.mark.skipif(not _REAL, reason="shared data not present")
@pytest.mark.parametrize("path", _REAL, ids=[Path(p).name for p in _REAL])
def test_real_files_identical(path):
    assert decode_png_jpeg(path) is not None
    for channels in (1, 3):
        assert torch.equal(R.load_image_uint8(path, channels), _old_load_image_uint8(Path(path), channels))


def test_corrupt_png_never_reaches_torchvision(tmp_path):
    """A PNG with garbled pixel data (bad CRC, or a fixed-up CRC over a broken zlib stream) is left
    to Pillow (``None``): torchvision 0.29's libpng path crashes the process on such files."""
    import struct
    import zlib

    rng = np.random.default_rng(0)
    path = tmp_path / "ok.png"
    Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    assert decode_png_jpeg(path) is not None
    start = data.index(b"IDAT")
    (length,) = struct.unpack(">I", data[start - 4 : start])
    garbled = bytearray(data)
    garbled[start + 10 : start + 30] = rng.integers(0, 256, 20, dtype=np.uint8).tobytes()
    (tmp_path / "bad_crc.png").write_bytes(bytes(garbled))
    assert decode_png_jpeg(tmp_path / "bad_crc.png") is None
    end = start + 4 + length
    garbled[end : end + 4] = struct.pack(">I", zlib.crc32(bytes(garbled[start:end])))  # CRC made right again
    (tmp_path / "bad_zlib.png").write_bytes(bytes(garbled))
    assert decode_png_jpeg(tmp_path / "bad_zlib.png") is None
    with pytest.raises(S.SegmentationDataError, match=r"bad_zlib\.png"):
        S.read_label(tmp_path / "bad_zlib.png")
