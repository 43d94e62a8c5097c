"""Image-restoration data: paired benchmark folders, synthetic Gaussian noise, dataset specs (no Lightning).

* :func:`list_images` / :func:`load_image` -- image files of a folder, decoded to float tensors
  ``[C, H, W]`` in ``[0, 1]``; a non-image file or an undecodable image is an error naming it.
* :class:`PairedImageDataset` -- degraded/clean pairs in a benchmark's standard folder layout
  (:data:`LAYOUTS`: MAXIM/MPRNet ``input``/``target``, SIDD, GoPro ``blur``/``sharp`` per scene,
  Rain13k, LOL ``low``/``high``); unpaired files and size-mismatched pairs are errors naming them.
* :class:`NoisyImageDataset` -- clean images plus additive white Gaussian noise of a fixed
  ``sigma`` or, for blind training, ``sigma ~ U[lo, hi]`` per sample (on the 0-255 scale), with
  random crops, flips and 90-degree rotations. Every sample is a pure function of
  ``(seed, index)``, so training is reproducible and resumable (:class:`EpochSampler`).

The dataset specs ``coco_mini_images`` (:data:`COCO_MINI`) and ``denoise_testsets``
(:data:`DENOISE_TESTSETS`) are declared here; the Lightning data modules ``denoise`` and
``paired_restoration`` that use them are in :mod:`.datamodule`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from gatelab.core.harness.data import DatasetSpec

from .decode import decode_png_jpeg, pil_luminance

__all__ = [
    "DENOISE_TESTSETS",
    "IMAGE_EXTENSIONS",
    "LAYOUTS",
    "EpochSampler",
    "ImageFolderDataset",
    "NoisyImageDataset",
    "PairedImageDataset",
    "PairedLayout",
    "RestorationDataError",
    "assert_disjoint",
    "list_images",
    "load_image",
    "verify_images",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".webp")
# files that may sit beside images in a dataset folder without being an error
_IGNORED = {"SOURCE.txt", "README", "README.md", "README.txt", "LICENSE", "Thumbs.db", "desc.ion"}


class RestorationDataError(ValueError):
    """Bad restoration data: unpaired or size-mismatched pairs, non-image or unreadable files."""


# --------------------------------------------------------------------------- files


def list_images(folder: str | os.PathLike[str], *, recursive: bool = False) -> list[Path]:
    """Image files of ``folder`` (sorted by relative path).

    Hidden files and :data:`_IGNORED` names (``SOURCE.txt``, ``README``...) are skipped; any
    other file without an image extension (:data:`IMAGE_EXTENSIONS`) is an error naming it.
    """
    root = Path(folder)
    if not root.is_dir():
        raise RestorationDataError(f"image folder not found: {root}")
    files = sorted(p for p in (root.rglob("*") if recursive else root.iterdir()) if p.is_file())
    images, bad = [], []
    for p in files:
        if p.name.startswith(".") or p.name in _IGNORED:
            continue
        (images if p.suffix.lower() in IMAGE_EXTENSIONS else bad).append(p)
    if bad:
        shown = ", ".join(str(p) for p in bad[:5]) + (f" (+{len(bad) - 5} more)" if len(bad) > 5 else "")
        raise RestorationDataError(
            f"non-image files in {root}: {shown}; expected only {', '.join(IMAGE_EXTENSIONS)} files"
        )
    if not images:
        raise RestorationDataError(f"no image files in {root}")
    return images


def _open(path: Path) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path)
    except (UnidentifiedImageError, OSError) as e:
        raise RestorationDataError(f"cannot read image {path}: {e}") from None


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(height, width)`` of an image file, from its header (no decoding)."""
    with _open(Path(path)) as im:
        w, h = im.size
    return h, w


def load_image_uint8(path: str | os.PathLike[str], channels: int = 3) -> torch.Tensor:
    """Decode ``path`` to a ``uint8`` tensor ``[channels, H, W]`` (RGB for 3, luminance ``L`` for 1).

    PNG (8-bit, non-palette) and JPEG go through ``torchvision.io.decode_image``
    (:func:`~gatelab.vision.data.decode.decode_png_jpeg`), other files through Pillow; both give
    the same pixels: an alpha channel is dropped, grey becomes RGB by repetition and RGB becomes
    grey by Pillow's ``L`` formula (:func:`~gatelab.vision.data.decode.pil_luminance`).
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    path = Path(path)
    img = decode_png_jpeg(path) if path.is_file() else None
    if img is not None:
        if img.shape[0] in (2, 4):  # grey+alpha / RGBA: Pillow's convert drops the alpha
            img = img[:-1]
        if channels == 3:
            return (img.expand(3, -1, -1) if img.shape[0] == 1 else img).contiguous()
        return img.contiguous() if img.shape[0] == 1 else pil_luminance(img)
    with _open(path) as im:
        _check_8bit(im.mode, path)
        try:
            im = im.convert("RGB" if channels == 3 else "L")
            arr = np.array(im, dtype=np.uint8)  # a writable copy
        except OSError as e:
            raise RestorationDataError(f"cannot decode image {path}: {e}") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


#: Pillow modes of more than 8 bits per channel: converting them to RGB / L clips at 255
_WIDE_MODES = ("I", "F", "I;16", "I;16B", "I;16L", "I;16N", "I;32", "RGB;16", "RGBA;16")


def _check_8bit(mode: str, path: Path) -> None:
    if mode in _WIDE_MODES or mode.startswith("I;"):
        raise RestorationDataError(
            f"image {path} has Pillow mode {mode} (16/32-bit or float pixels): the restoration loaders read"
            " 8-bit images, and converting this one would clip every value above 255; convert it to 8-bit first"
        )


def load_image(path: str | os.PathLike[str], channels: int = 3) -> torch.Tensor:
    """Decode ``path`` to a float tensor ``[channels, H, W]`` in ``[0, 1]`` (``uint8 / 255``)."""
    return load_image_uint8(path, channels).float().div_(255.0)


#: file of :func:`verify_images` results in the gatelab cache directory (never in the data folder)
VERIFY_CACHE = "verified_images.json"


def _verify_one(path: Path) -> dict[str, Any]:
    """Header and a full decode of one image (JPEG: a reduced-size draft decode, which still reads
    every byte); ``{"height", "width", "mode"}`` or an error naming the file."""
    with _open(path) as im:
        w, h = im.size
        mode = im.mode
        _check_8bit(mode, path)
        try:
            if im.format == "JPEG":
                im.draft("RGB" if mode not in ("L", "1") else "L", (max(w // 8, 1), max(h // 8, 1)))
            im.load()
        except (OSError, ValueError, SyntaxError) as e:  # truncated or garbled data
            raise RestorationDataError(f"cannot decode image {path}: {type(e).__name__}: {e}") from None
    if w < 1 or h < 1:
        raise RestorationDataError(f"image {path} has no pixels ({w}x{h})")
    return {"height": int(h), "width": int(w), "mode": str(mode)}


def verify_images(files: Sequence[str | os.PathLike[str]], *, use_cache: bool = True) -> dict[Path, dict[str, Any]]:
    """Check that every file decodes (header and pixel data); ``{path: {"height", "width", "mode"}}``.

    A truncated, garbled or non-image file raises :class:`RestorationDataError` naming it. Results
    are cached in ``$GATELAB_CACHE/verified_images.json`` (default ``~/.cache/gatelab``) keyed by
    absolute path, size and modification time, so a file is decoded again only when it changes;
    nothing is written next to the data (which may be read-only).
    """
    from gatelab.core.harness.data import cache_dir

    cache_file = cache_dir() / VERIFY_CACHE
    cache = _read_cache(cache_file) if use_cache else {}
    out: dict[Path, dict[str, Any]] = {}
    new = 0
    for f in files:
        p = Path(f)
        try:
            st = p.stat()
        except OSError as e:
            raise RestorationDataError(f"cannot read image {p}: {e}") from None
        key = str(p.resolve())
        hit = cache.get(key)
        if hit and hit.get("size") == st.st_size and hit.get("mtime_ns") == st.st_mtime_ns:
            out[p] = {k: hit[k] for k in ("height", "width", "mode")}
            continue
        info = _verify_one(p)
        out[p] = info
        cache[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, **info}
        new += 1
    if use_cache and new:
        merged = _read_cache(cache_file)  # another process may have added entries
        merged.update({str(Path(f).resolve()): cache[str(Path(f).resolve())] for f in files})
        _write_cache(cache_file, merged)
    return out


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, data: dict[str, Any]) -> None:
    """Atomic replace; a read-only or full cache location only costs decoding again next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".verified.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=0, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass


def _colour(mode: str) -> bool:
    return mode not in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F", "P;L")


def _pixel_digest(img: torch.Tensor) -> str:
    return hashlib.sha256(img.numpy().tobytes() + str(tuple(img.shape)).encode()).hexdigest()


def assert_disjoint(train: Sequence[Path], test: Sequence[Path], channels: int = 3) -> None:
    """Raise if any training image equals a test image (same file bytes or same decoded pixels)."""

    def digests(files: Sequence[Path]) -> dict[str, Path]:
        out = {}
        for p in files:
            out[hashlib.sha256(Path(p).read_bytes()).hexdigest()] = p
            out[_pixel_digest(load_image_uint8(p, channels))] = p
        return out

    tr, te = digests(train), digests(test)
    common = sorted(set(tr) & set(te))
    if common:
        pairs = ", ".join(f"{tr[d]} == {te[d]}" for d in common[:5])
        raise RestorationDataError(f"training images overlap the test images: {pairs}")


# --------------------------------------------------------------------------- augmentation


def _augment(t: torch.Tensor, mode: int) -> torch.Tensor:
    """One of the 8 dihedral transforms of ``[..., H, W]`` (``mode`` 0 = identity).

    ``mode & 4``: horizontal flip; then a rotation by ``90 * (mode & 3)`` degrees
    counter-clockwise, both as ``torchvision.transforms.v2.functional`` ops on a
    ``tv_tensors.Image`` (for multiples of 90 degrees ``rotate`` is an exact ``rot90``).
    """
    from torchvision import tv_tensors
    from torchvision.transforms.v2 import functional as TF

    img = tv_tensors.Image(t)
    if mode & 4:
        img = TF.horizontal_flip(img)
    if mode & 3:
        img = TF.rotate(img, 90.0 * (mode & 3), expand=True)
    return img.as_subclass(torch.Tensor)


def _random_crop(
    imgs: Sequence[torch.Tensor], crop: int | None, rng: np.random.Generator, name: str
) -> list[torch.Tensor]:
    """The same random ``crop x crop`` window of every image (``v2.functional.crop``); corner from ``rng``."""
    if crop is None:
        return list(imgs)
    from torchvision.transforms.v2 import functional as TF

    h, w = imgs[0].shape[-2:]
    if h < crop or w < crop:
        raise RestorationDataError(f"image {name} ({h}x{w}) is smaller than the crop size {crop}")
    y = int(rng.integers(0, h - crop + 1))
    x = int(rng.integers(0, w - crop + 1))
    return [TF.crop(t, y, x, crop, crop) for t in imgs]


def _center_crop(t: torch.Tensor, crop: int | None) -> torch.Tensor:
    """A centred ``min(crop, H, W)`` square; the corner is ``((H - c) // 2, (W - c) // 2)``.

    Deviation from ``v2.functional.center_crop``: that rounds an odd margin half to even
    (``round(1.5) = 2``), a one-pixel shift from this module's floor; the window is therefore
    computed here and cut with ``v2.functional.crop``.
    """
    if crop is None:
        return t
    from torchvision.transforms.v2 import functional as TF

    h, w = t.shape[-2:]
    c = min(crop, h, w)
    return TF.crop(t, (h - c) // 2, (w - c) // 2, c, c)


class EpochSampler(Sampler[int]):
    """Indices ``epoch * n + i`` for ``i < n`` (in order): each epoch sees new, reproducible samples.

    Lightning calls :meth:`set_epoch` at every epoch start (also after resuming from a
    checkpoint), so a dataset whose item ``k`` is a pure function of ``k`` gives a resumed run
    exactly the samples of an uninterrupted one.
    """

    def __init__(self, n: int) -> None:
        self.n = int(n)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        start = self.epoch * self.n
        return iter(range(start, start + self.n))

    def __len__(self) -> int:
        return self.n


# --------------------------------------------------------------------------- datasets


class ImageFolderDataset(Dataset):
    """Clean images of one or more folders, decoded once and kept as ``uint8`` in memory."""

    def __init__(self, files: Sequence[str | os.PathLike[str]], channels: int = 3) -> None:
        if not files:
            raise RestorationDataError("ImageFolderDataset: no image files given")
        self.files = [Path(f) for f in files]
        self.channels = channels
        self.images = [load_image_uint8(f, channels) for f in self.files]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i].float().div(255.0)


def _sigma_of(sigma: float | Sequence[float]) -> tuple[float, float]:
    if isinstance(sigma, (int, float)):
        lo = hi = float(sigma)
    else:
        vals = [float(s) for s in sigma]
        if len(vals) != 2:
            raise ValueError(f"sigma must be a number or a [low, high] pair, got {sigma!r}")
        lo, hi = vals
    if not 0 <= lo <= hi:
        raise ValueError(f"sigma range must satisfy 0 <= low <= high, got {sigma!r}")
    return lo, hi


class NoisyImageDataset(Dataset):
    """``(clean + n, clean)`` pairs, ``n ~ N(0, (sigma/255)^2)`` i.i.d. per pixel and channel.

    Args:
        images: a :class:`ImageFolderDataset` (clean images).
        sigma: noise level on the 0-255 scale, or ``(low, high)`` for blind training
            (``sigma ~ U[low, high]`` per sample).
        crop: random ``crop x crop`` patches (training) or, with ``train=False``, a centre crop
            (``None``: the full image).
        train: random crops, the 8 flips/rotations, and a virtual length of ``length``
            samples per epoch (item ``k`` uses image ``k mod N``... drawn at random); else one
            item per image with fixed noise.
        length: samples per epoch when training (default: the number of images).
        seed: every item ``k`` draws from ``numpy.random.default_rng([seed, k])``.

    Items: ``(noisy [C, h, w], clean [C, h, w])`` floats; noisy is not clipped.
    """

    def __init__(
        self,
        images: ImageFolderDataset,
        sigma: float | Sequence[float] = 25.0,
        *,
        crop: int | None = None,
        train: bool = False,
        length: int | None = None,
        seed: int = 0,
    ) -> None:
        self.images = images
        self.sigma = _sigma_of(sigma)
        self.crop = crop
        self.train = train
        self.length = int(length) if length is not None else len(images)
        self.seed = int(seed)

    def __len__(self) -> int:
        return self.length if self.train else len(self.images)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, int(k)])
        if self.train:
            i = int(rng.integers(0, len(self.images)))
            clean = self.images[i]
            (clean,) = _random_crop([clean], self.crop, rng, str(self.images.files[i]))
            clean = _augment(clean, int(rng.integers(0, 8))).contiguous()
        else:
            clean = _center_crop(self.images[int(k)], self.crop).contiguous()
        lo, hi = self.sigma
        sigma = lo if lo == hi else float(rng.uniform(lo, hi))
        gen = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
        noise = torch.randn(clean.shape, generator=gen) * (sigma / 255.0)
        return clean + noise, clean


@dataclasses.dataclass(frozen=True)
class PairedLayout:
    """Where a benchmark keeps its degraded and clean images.

    ``input_dir``/``target_dir``: folder names (alternatives tried in order). With ``scenes``,
    the root holds one folder per scene, each with its own input/target folders (GoPro). With
    ``prefixes``, input and target files share one folder and pair by the rest of the name
    (SIDD-Medium: ``NOISY_SRGB_010.PNG`` / ``GT_SRGB_010.PNG``).
    """

    input_dir: tuple[str, ...]
    target_dir: tuple[str, ...]
    scenes: bool = False
    prefixes: tuple[str, str] | None = None
    description: str = ""


LAYOUTS: dict[str, PairedLayout] = {
    "input_target": PairedLayout(
        ("input",), ("target",), description="MAXIM run_eval / MPRNet: <root>/input, <root>/target"
    ),
    "sidd": PairedLayout(
        ("input", "noisy"),
        ("target", "groundtruth", "gt"),
        description="SIDD patches as prepared by MPRNet/MAXIM: <root>/input, <root>/groundtruth (or target)",
    ),
    "sidd_medium": PairedLayout(
        (".",),
        (".",),
        scenes=True,
        prefixes=("NOISY_", "GT_"),
        description="SIDD-Medium sRGB: <root>/<scene>/NOISY_SRGB_010.PNG + GT_SRGB_010.PNG",
    ),
    "gopro": PairedLayout(
        ("blur", "blur_gamma"),
        ("sharp",),
        scenes=True,
        description="GoPro (GOPRO_Large): <root>/<scene>/blur/*.png, <root>/<scene>/sharp/*.png",
    ),
    "rain13k": PairedLayout(
        ("input", "rain"),
        ("target", "norain"),
        description="Rain13k / Test100 / Rain100H (MPRNet): <root>/input, <root>/target",
    ),
    "lol": PairedLayout(("low",), ("high",), description="LOL: <root>/low, <root>/high (our485, eval15)"),
}


def _pick_dir(folder: Path, names: tuple[str, ...], what: str) -> Path:
    for n in names:
        if (folder / n).is_dir():
            return folder / n
    raise RestorationDataError(f"no {what} folder in {folder}: expected one of {', '.join(names)}")


def _pairs_in(folder: Path, layout: PairedLayout) -> list[tuple[Path, Path]]:
    if layout.prefixes is not None:
        pin, ptg = layout.prefixes
        files = list_images(folder)
        ins = {p.name[len(pin) :]: p for p in files if p.name.startswith(pin)}
        tgs = {p.name[len(ptg) :]: p for p in files if p.name.startswith(ptg)}
        other = [p for p in files if not (p.name.startswith(pin) or p.name.startswith(ptg))]
        if other:
            raise RestorationDataError(
                f"files in {folder} that are neither {pin}* nor {ptg}*: {', '.join(p.name for p in other[:5])}"
            )
        where_in, where_tg = f"{folder}/{pin}*", f"{folder}/{ptg}*"
    else:
        din = _pick_dir(folder, layout.input_dir, "input")
        dtg = _pick_dir(folder, layout.target_dir, "target")
        ins = {p.name: p for p in list_images(din)}
        tgs = {p.name: p for p in list_images(dtg)}
        where_in, where_tg = str(din), str(dtg)
    only_in, only_tg = sorted(set(ins) - set(tgs)), sorted(set(tgs) - set(ins))
    if only_in or only_tg:
        msg = []
        if only_in:
            msg.append(f"{len(only_in)} in {where_in} without a target ({', '.join(only_in[:5])})")
        if only_tg:
            msg.append(f"{len(only_tg)} in {where_tg} without an input ({', '.join(only_tg[:5])})")
        raise RestorationDataError("unpaired images: " + "; ".join(msg))
    return [(ins[k], tgs[k]) for k in sorted(ins)]


class PairedImageDataset(Dataset):
    """Degraded/clean image pairs of a restoration benchmark in its standard folder layout.

    Args:
        root: the benchmark (split) folder, e.g. ``GoPro/train`` or ``SIDD/val``.
        layout: a :data:`LAYOUTS` name or a :class:`PairedLayout`.
        crop: random ``crop x crop`` patches (same place in both images) when ``train``, else a
            centre crop (``None``: full images).
        train: random crops and the 8 flips/rotations.
        channels: 3 (RGB) or 1 (grey).
        verify: decode every file once at construction (:func:`verify_images`, cached by size
            and modification time), so a truncated or garbled image fails here, naming the file,
            rather than mid-epoch; ``False`` reads the headers only.
        seed: item ``k`` draws from ``numpy.random.default_rng([seed, k])``; with ``train`` the
            virtual epoch has ``length`` items (default: the number of pairs), item ``k`` using
            pair ``k mod N`` (use :class:`EpochSampler`).

    Pairs are matched by file name (within each scene); unpaired files, pairs of different
    sizes and pairs of a grey and a colour image raise :class:`RestorationDataError` naming them
    (checked when the dataset is built).

    Items: ``(degraded [C, h, w], clean [C, h, w])`` floats in ``[0, 1]``.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        layout: str | PairedLayout = "input_target",
        *,
        crop: int | None = None,
        train: bool = False,
        channels: int = 3,
        length: int | None = None,
        seed: int = 0,
        verify: bool = True,
    ) -> None:
        if isinstance(layout, str):
            if layout not in LAYOUTS:
                raise ValueError(f"unknown paired layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
            layout = LAYOUTS[layout]
        self.root = Path(root)
        if not self.root.is_dir():
            raise RestorationDataError(f"dataset folder not found: {self.root}")
        self.layout = layout
        if layout.scenes:
            scenes = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
            if not scenes:
                raise RestorationDataError(f"no scene folders in {self.root} (layout {layout.description})")
            self.pairs = [pair for s in scenes for pair in _pairs_in(s, layout)]
        else:
            self.pairs = _pairs_in(self.root, layout)
        bad = []
        info = verify_images([f for pair in self.pairs for f in pair]) if verify else {}
        for a, b in self.pairs:
            if verify:
                ia, ib = info[a], info[b]
                sa, sb = (ia["height"], ia["width"]), (ib["height"], ib["width"])
                if _colour(ia["mode"]) != _colour(ib["mode"]):
                    raise RestorationDataError(
                        f"mismatched pair: {a} is {'colour' if _colour(ia['mode']) else 'grey'} (mode {ia['mode']}),"
                        f" {b} is {'colour' if _colour(ib['mode']) else 'grey'} (mode {ib['mode']})"
                    )
            else:
                sa, sb = image_size(a), image_size(b)
            if sa != sb:
                bad.append(f"{a} {sa[0]}x{sa[1]} vs {b} {sb[0]}x{sb[1]}")
        if bad:
            raise RestorationDataError(
                f"size-mismatched pairs ({len(bad)}): "
                + "; ".join(bad[:5])
                + (" ..." if len(bad) > 5 else "")
            )
        self.crop = crop
        self.train = train
        self.channels = channels
        self.length = int(length) if length is not None else len(self.pairs)
        self.seed = int(seed)

    def __len__(self) -> int:
        return self.length if self.train else len(self.pairs)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self.pairs[int(k) % len(self.pairs)]
        x, y = load_image(a, self.channels), load_image(b, self.channels)
        if self.train:
            rng = np.random.default_rng([self.seed, int(k)])
            x, y = _random_crop([x, y], self.crop, rng, str(a))
            mode = int(rng.integers(0, 8))
            x, y = _augment(x, mode), _augment(y, mode)
        else:
            x, y = _center_crop(x, self.crop), _center_crop(y, self.crop)
        return x.contiguous(), y.contiguous()


# --------------------------------------------------------------------------- registered data


def _pinned(name: str) -> dict[str, str]:
    """File -> sha256 of a dataset as staged (``restoration_files.json``, from its SOURCE.txt)."""
    import json

    with open(Path(__file__).with_name("restoration_files.json")) as f:
        return dict(json.load(f)[name])


COCO_MINI = DatasetSpec(
    name="coco_mini_images",
    subdir="coco_mini",
    files=_pinned("coco_mini"),
    source="https://github.com/Obmutescence/COCO-MINI (159 MS-COCO 2017 images); COCO: https://cocodataset.org",
    license="COCO annotations CC BY 4.0; images under their Flickr licences (mostly non-commercial)",
    description="clean training images for synthetic denoising (train2017: 80, val2017: 79)",
)

DENOISE_TESTSETS = DatasetSpec(
    name="denoise_testsets",
    subdir="denoise_testsets",
    files=_pinned("denoise_testsets"),
    source="https://github.com/cszn/FFDNet (testsets/); Kodak24 are FFDNet's 500x500 centre crops",
    license="research-use test images (BSDS300, Kodak PhotoCD, McMaster); no redistribution licence",
    description="Gaussian-denoising test sets: Set12, BSD68 (grey); CBSD68, Kodak24, McMaster (colour)",
)

GREY_TESTSETS = ("Set12", "BSD68")
COLOUR_TESTSETS = ("CBSD68", "Kodak24", "McMaster")
