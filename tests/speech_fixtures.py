"""A stand-in for espeak-ng in the tests (tests never need espeak-ng)."""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import torch

from gatelab.multimodal.data.audio import save_wav


def fake_tts(text: str, voice: str, speed: int, path: Path) -> None:
    """A stand-in for espeak-ng: one 80 ms tone per word (pitch from the word), 22050 Hz like espeak."""
    sr, parts = 22050, []
    for w in text.split():
        f = 200.0 + (zlib.crc32(w.encode()) % 40) * 50.0 + (speed - 160)
        t = torch.arange(int(0.08 * sr * 160 / speed), dtype=torch.float64) / sr
        parts.append(0.4 * torch.sin(2 * math.pi * f * t))
    save_wav(path, torch.cat(parts).float(), sr)
