"""PNG/JPEG decoding through ``torchvision.io.decode_image``, bit-identical to the Pillow path it replaces.

The vision data readers (:func:`gatelab.vision.data.segmentation.read_image`,
:func:`gatelab.vision.data.restoration.load_image`) decode PNG and JPEG files with
:func:`torchvision.io.decode_image` (libpng / libjpeg-turbo straight into a ``uint8`` tensor, no
Pillow image object in between) and keep Pillow / tifffile for everything else. Only the files
whose torchvision decoding equals Pillow's pixel for pixel take this path
(``tests/vision/data/test_decode.py`` compares both on every PNG/JPEG kind):

* PNG with 8 bits per sample and colour type grey, grey+alpha, RGB or RGBA (read from the IHDR
  header). Palette PNGs stay on Pillow (segmentation label maps need the palette *indices*, which
  torchvision expands away), as do 1/2/4/16-bit PNGs (Pillow's modes ``1``, ``I;16`` convert
  differently).
* JPEG with one (grey) or three (YCbCr/RGB) components; CMYK JPEGs stay on Pillow.

A file torchvision cannot decode (truncated, foreign) goes to the Pillow reader, which raises the
caller's error naming the file.

:func:`pil_luminance` is Pillow's RGB -> ``L`` conversion (ITU-R 601-2 luma in 16-bit fixed
point, ``(19595 R + 38470 G + 7471 B + 2^15) >> 16``), which torchvision's ``ImageReadMode.GRAY``
does not reproduce (libpng uses other weights), so grey images are made from the decoded RGB.

torchvision 0.29 deprecates its image codecs in favour of TorchCodec (not a gatelab dependency)
and warns on every call; :func:`decode_png_jpeg` silences that one ``DeprecationWarning`` and, once
a torchvision release drops ``decode_image``, sends every file to Pillow (same pixels).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

__all__ = ["decode_png_jpeg", "pil_luminance"]

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
# PNG IHDR colour types decoded by torchvision: grey, RGB, grey+alpha, RGBA (3 = palette is not)
_PNG_COLOUR_TYPES = {0: 1, 2: 3, 4: 2, 6: 4}


def decode_png_jpeg(path: str | os.PathLike[str]) -> torch.Tensor | None:
    """``uint8 [C, H, W]`` of an 8-bit non-palette PNG or a grey/colour JPEG, else ``None``.

    ``C`` is the file's own channel count (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA), as Pillow's
    ``numpy.array(Image.open(path))`` gives it (channels first). ``None`` means "not a file this
    path decodes exactly" (other formats, palette or non-8-bit PNGs, CMYK JPEGs, undecodable
    bytes): the caller reads it with Pillow.
    """
    try:
        from torchvision.io import ImageReadMode, decode_image
    except ImportError:  # a torchvision without its image codecs: Pillow decodes everything
        return None

    data = Path(path).read_bytes()
    if data.startswith(_PNG_MAGIC):
        # IHDR is the first chunk: length (4) + "IHDR" (4) + width (4) + height (4) + depth, colour type
        if len(data) < 33 or data[12:16] != b"IHDR":
            return None
        depth, colour = data[24], data[25]
        if depth != 8 or colour not in _PNG_COLOUR_TYPES:
            return None
        channels = _PNG_COLOUR_TYPES[colour]
        if not _png_intact(data, channels):  # torchvision's libpng path crashes on some corrupt files:
            return None  # Pillow reads it and raises the error naming the file
    elif data.startswith(_JPEG_MAGIC):
        channels = None
    else:
        return None
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The image decoding", category=DeprecationWarning)
            img = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), ImageReadMode.UNCHANGED)
    except RuntimeError:
        return None
    if img.dtype != torch.uint8 or img.dim() != 3:
        return None
    if channels is None:  # JPEG: grey or YCbCr/RGB only (CMYK/YCCK come back with 4 channels)
        return img if img.shape[0] in (1, 3) else None
    return img if img.shape[0] == channels else None


def _png_intact(data: bytes, channels: int) -> bool:
    """Every chunk of the PNG ``data`` within the file with its CRC right, ``IEND`` reached, not
    interlaced, and the ``IDAT`` stream a complete zlib stream of exactly the non-interlaced
    8-bit image's size (``height * (1 + width * channels)`` bytes). A file that fails any of these
    goes to Pillow, whose errors name it; libpng inside torchvision can crash the process on
    corrupt pixel data (a segmentation fault on a garbled ``IDAT``, seen with torchvision 0.29)."""
    import struct
    import zlib

    width, height = struct.unpack(">II", data[16:24])
    if data[28] != 0:  # interlaced (Adam7)
        return False
    pos, idat = 8, []
    while True:
        if pos + 12 > len(data):
            return False
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        end = pos + 8 + length
        if end + 4 > len(data):
            return False
        kind = data[pos + 4 : pos + 8]
        if zlib.crc32(data[pos + 4 : end]) != struct.unpack(">I", data[end : end + 4])[0]:
            return False
        if kind == b"IDAT":
            idat.append(data[pos + 8 : end])
        if kind == b"IEND":
            break
        pos = end + 4
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(b"".join(idat), height * (1 + width * channels) + 1)
    except zlib.error:
        return False
    return inflate.eof and len(raw) == height * (1 + width * channels)


def pil_luminance(rgb: torch.Tensor) -> torch.Tensor:
    """Pillow's ``convert("L")`` of ``uint8 [3, H, W]`` RGB: ``uint8 [1, H, W]``, bit-identical."""
    if rgb.dtype != torch.uint8 or rgb.dim() != 3 or rgb.shape[0] != 3:
        raise ValueError(f"pil_luminance: expected uint8 [3, H, W], got {rgb.dtype} {tuple(rgb.shape)}")
    r, g, b = rgb.to(torch.int32).unbind(0)
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).to(torch.uint8).unsqueeze(0)
