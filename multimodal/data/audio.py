r"""Audio front end on torchaudio: WAV reading/writing, resampling, log-mel / Kaldi fbank features
and SpecAugment masking.

* :func:`load_audio` reads a waveform ``[C, T]`` (float32 in ``[-1, 1]``) and resamples it with
  ``torchaudio.functional.resample``. Decoding: ``torchaudio.load`` when its TorchCodec/FFmpeg
  backend is installed, else ``soundfile`` when installed, else Python's ``wave`` module (PCM
  WAV, 8/16/24/32-bit: what espeak-ng and :func:`save_wav` write). This environment has no
  FFmpeg, so the ``wave`` path is the one exercised here.
* :func:`save_wav` writes 16-bit PCM WAV (stdlib ``wave``; ``torchaudio.save`` needs TorchCodec).
* :class:`AudioFeatures`: ``kind="logmel"`` is ``log(MelSpectrogram(x) + 1e-6)``
  (``torchaudio.transforms.MelSpectrogram``, power 2, HTK mel scale), ``kind="fbank"`` is
  ``torchaudio.compliance.kaldi.fbank`` per utterance (Kaldi's log mel filter bank: 25 ms
  Povey window, 10 ms shift, dither 0, pre-emphasis 0.97). Shapes: waveforms ``[B, T]`` and
  sample lengths ``[B]`` -> features ``[B, F, num_mels]`` and frame lengths ``[B]``; frames past
  an utterance's end are zero.
* :class:`SpecAugment`: ``num_freq_masks`` frequency masks of width ``U(0, freq_mask_param)`` and
  ``num_time_masks`` time masks of width ``U(0, time_mask_param)`` (``torchaudio.transforms.
  FrequencyMasking`` / ``TimeMasking``, independent per example), active only in training mode
  (Park et al., "SpecAugment", Interspeech 2019; no time warping). Time masks are drawn inside
  each utterance's own frames (padding never counts towards the mask width).
"""

from __future__ import annotations

import importlib.util
import os
import wave
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torchaudio
from torch import nn

__all__ = ["AUDIO_FEATURES", "AudioFeatures", "SpecAugment", "load_audio", "resample", "save_wav"]

AUDIO_FEATURES = ("logmel", "fbank")


def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _read_wave(path: Path) -> tuple[torch.Tensor, int]:
    """PCM WAV through the stdlib ``wave`` module -> float32 ``[C, T]`` in ``[-1, 1]``."""
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, rate, frames = (
                w.getnchannels(),
                w.getsampwidth(),
                w.getframerate(),
                w.getnframes(),
            )
            raw = w.readframes(frames)
    except (wave.Error, EOFError) as e:
        raise ValueError(
            f"{path}: not a PCM WAV file readable without FFmpeg ({e}); install torchcodec (with FFmpeg) "
            "or soundfile for other formats"
        ) from None
    if width == 1:  # unsigned 8-bit
        data = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        data = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
        data = ints.astype(np.float32) / float(1 << 23)
    elif width == 4:
        data = np.frombuffer(raw, dtype="<i4").astype(np.float32) / float(1 << 31)
    else:
        raise ValueError(f"{path}: unsupported WAV sample width {width} bytes")
    if data.size != frames * channels:
        raise ValueError(f"{path}: truncated WAV ({data.size} samples, header says {frames} x {channels})")
    return torch.from_numpy(data.reshape(frames, channels).T.copy()), rate


def resample(waveform: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """``torchaudio.functional.resample`` (band-limited sinc); identity when the rates agree."""
    for name, r in (("orig_rate", orig_rate), ("new_rate", new_rate)):
        if not isinstance(r, int) or r <= 0:
            raise ValueError(f"resample: {name} must be a positive int, got {r!r}")
    if orig_rate == new_rate:
        return waveform
    return torchaudio.functional.resample(waveform, orig_rate, new_rate)


def load_audio(
    path: str | os.PathLike[str], sample_rate: int | None = None, *, mono: bool = True
) -> tuple[torch.Tensor, int]:
    """Read an audio file -> ``(waveform [C, T] float32, sample_rate)``.

    ``sample_rate``: resample to it (``None``: keep the file's rate). ``mono``: average the
    channels (``C = 1``). Decoders: see the module docstring. Errors name the file.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"audio file not found: {p}")
    if _have("torchcodec"):
        wav, rate = torchaudio.load(str(p))
    elif _have("soundfile"):
        import soundfile

        data, rate = soundfile.read(str(p), dtype="float32", always_2d=True)
        wav = torch.from_numpy(data.T.copy())
    else:
        wav, rate = _read_wave(p)
    if wav.shape[-1] == 0:
        raise ValueError(f"{p}: no audio samples")
    if mono:
        wav = wav.mean(dim=0, keepdim=True)
    if sample_rate is not None:
        wav = resample(wav, int(rate), sample_rate)
        rate = sample_rate
    return wav.float(), int(rate)


def save_wav(path: str | os.PathLike[str], waveform: torch.Tensor, sample_rate: int) -> Path:
    """Write ``waveform`` (``[T]`` or ``[C, T]``, values in ``[-1, 1]``) as 16-bit PCM WAV.

    Values outside ``[-1, 1]`` raise (no silent clipping).
    """
    p = Path(path)
    w = waveform.detach().float().cpu()
    if w.dim() == 1:
        w = w[None]
    if w.dim() != 2 or w.shape[-1] == 0:
        raise ValueError(f"save_wav({p}): expected a waveform [T] or [C, T], got {tuple(waveform.shape)}")
    if not torch.isfinite(w).all():
        raise ValueError(f"save_wav({p}): waveform has non-finite samples")
    peak = float(w.abs().max())
    if peak > 1.0:
        raise ValueError(f"save_wav({p}): samples must lie in [-1, 1], peak is {peak:.4g}")
    ints = (w * 32767.0).round().to(torch.int16).numpy().T.astype("<i2")
    p.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(p), "wb") as f:
        f.setnchannels(w.shape[0])
        f.setsampwidth(2)
        f.setframerate(int(sample_rate))
        f.writeframes(ints.tobytes())
    return p


class AudioFeatures(nn.Module):
    """Waveforms -> log-mel or Kaldi fbank frames (module docstring for the definitions).

    Args:
        sample_rate: of the input waveforms (Hz).
        kind: ``"logmel"`` or ``"fbank"``.
        num_mels: mel bins (the feature width).
        win_ms, hop_ms: analysis window and shift in milliseconds (25 / 10, Kaldi's defaults).
        cmvn: per-utterance mean and variance normalisation of every mel bin over the
            utterance's own frames (``(f - mean) / (std + 1e-5)``), so features are centred at 0
            (the value :class:`SpecAugment` masks with).

    Forward: ``waveform`` ``[B, T]`` (or ``[T]``) float, optional ``lengths`` ``[B]`` valid
    samples per row -> ``(features [B, F, num_mels], frame_lengths [B])``. The frame count of a
    row of ``n`` samples is :meth:`num_frames` ``(n)``; the features of a padded row equal those of
    the row alone, zero-filled past its frames.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        *,
        kind: Literal["logmel", "fbank"] = "logmel",
        num_mels: int = 40,
        win_ms: float = 25.0,
        hop_ms: float = 10.0,
        cmvn: bool = True,
    ) -> None:
        super().__init__()
        if kind not in AUDIO_FEATURES:
            raise ValueError(f"AudioFeatures: kind must be one of {AUDIO_FEATURES}, got {kind!r}")
        if not isinstance(num_mels, int) or num_mels < 1:
            raise ValueError(f"AudioFeatures: num_mels must be a positive int, got {num_mels!r}")
        if not 0 < hop_ms <= win_ms:
            raise ValueError(
                f"AudioFeatures: need 0 < hop_ms <= win_ms, got hop_ms={hop_ms}, win_ms={win_ms}"
            )
        self.sample_rate, self.kind, self.num_mels = int(sample_rate), kind, num_mels
        self.win_ms, self.hop_ms = float(win_ms), float(hop_ms)
        self.cmvn = cmvn
        self.win_length = round(sample_rate * win_ms / 1000.0)
        self.hop_length = round(sample_rate * hop_ms / 1000.0)
        self.mel = (
            torchaudio.transforms.MelSpectrogram(
                sample_rate=sample_rate,
                n_fft=self.win_length,
                win_length=self.win_length,
                hop_length=self.hop_length,
                n_mels=num_mels,
                center=False,
                power=2.0,
            )
            if kind == "logmel"
            else None
        )

    def num_frames(self, num_samples: int) -> int:
        """Frames of ``num_samples`` samples (no centre padding; Kaldi's ``snip_edges=True``)."""
        if num_samples < self.win_length:
            return 0
        return 1 + (num_samples - self.win_length) // self.hop_length

    def _one(self, w: torch.Tensor) -> torch.Tensor:
        if self.kind == "fbank":
            return torchaudio.compliance.kaldi.fbank(
                w[None].float() * 32768.0,  # Kaldi works on 16-bit integer amplitudes
                num_mel_bins=self.num_mels,
                frame_length=self.win_ms,
                frame_shift=self.hop_ms,
                dither=0.0,
                sample_frequency=float(self.sample_rate),
                energy_floor=0.0,
            )
        return torch.log(self.mel(w.float()) + 1e-6).transpose(0, 1)

    def _normalise(self, f: torch.Tensor) -> torch.Tensor:
        if not self.cmvn:
            return f
        return (f - f.mean(dim=-2, keepdim=True)) / (f.std(dim=-2, keepdim=True, correction=0) + 1e-5)

    def forward(
        self, waveform: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if waveform.dim() == 1:
            waveform = waveform[None]
        if waveform.dim() != 2:
            raise ValueError(f"AudioFeatures: expected waveforms [B, T], got {tuple(waveform.shape)}")
        B, T = waveform.shape
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.long)
        if lengths.shape != (B,) or lengths.dtype not in (torch.int32, torch.int64):
            raise ValueError(
                f"AudioFeatures: lengths must be integer [B] = ({B},), got {tuple(lengths.shape)} {lengths.dtype}"
            )
        if int(lengths.max()) > T or int(lengths.min()) < 1:
            raise ValueError(f"AudioFeatures: lengths must lie in [1, {T}], got {lengths.tolist()}")
        frames = [self.num_frames(int(n)) for n in lengths]
        short = [i for i, f in enumerate(frames) if f == 0]
        if short:
            raise ValueError(
                f"AudioFeatures: rows {short} are shorter than one {self.win_ms} ms window "
                f"({self.win_length} samples): lengths {[int(lengths[i]) for i in short]}"
            )
        out = waveform.new_zeros(B, max(frames), self.num_mels, dtype=torch.float32)
        if self.kind == "logmel" and len(set(frames)) == 1:
            # one batched STFT; exact: with equal frame counts every frame ends inside every row
            # (the F = 1 + (n - win) // hop frames of n samples end at or before sample n)
            n = int(lengths.min())
            out = self._normalise(torch.log(self.mel(waveform[:, :n].float()) + 1e-6).transpose(1, 2))
        else:
            for i in range(B):
                out[i, : frames[i]] = self._normalise(self._one(waveform[i, : int(lengths[i])]))
        return out, torch.tensor(frames, dtype=torch.long, device=waveform.device)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, sample_rate={self.sample_rate}, num_mels={self.num_mels}, win={self.win_length}, hop={self.hop_length}"


class SpecAugment(nn.Module):
    """Frequency and time masking of feature frames ``[B, F, num_mels]`` in training mode only.

    Args:
        freq_mask_param: largest frequency-mask width (mel bins).
        time_mask_param: largest time-mask width (frames); also capped at each row's length.
        num_freq_masks, num_time_masks: masks of each kind per example.

    Forward: ``(features [B, F, M], frame_lengths [B] or None)`` -> ``[B, F, M]``; masked cells
    are set to 0 (the mean of normalised features; apply after normalisation). Identity in eval
    mode.
    """

    def __init__(
        self,
        freq_mask_param: int = 8,
        time_mask_param: int = 20,
        *,
        num_freq_masks: int = 2,
        num_time_masks: int = 2,
    ) -> None:
        super().__init__()
        for name, v in (
            ("freq_mask_param", freq_mask_param),
            ("time_mask_param", time_mask_param),
            ("num_freq_masks", num_freq_masks),
            ("num_time_masks", num_time_masks),
        ):
            if not isinstance(v, int) or v < 0:
                raise ValueError(f"SpecAugment: {name} must be a non-negative int, got {v!r}")
        self.num_freq_masks, self.num_time_masks = num_freq_masks, num_time_masks
        self.time_mask_param = time_mask_param
        self.freq_mask = torchaudio.transforms.FrequencyMasking(freq_mask_param, iid_masks=True)

    def forward(self, features: torch.Tensor, frame_lengths: torch.Tensor | None = None) -> torch.Tensor:
        if features.dim() != 3:
            raise ValueError(f"SpecAugment: expected features [B, F, M], got {tuple(features.shape)}")
        if not self.training:
            return features
        B, F, _ = features.shape
        x = features.transpose(1, 2)[:, None]  # [B, 1, M, F]: torchaudio's (..., freq, time)
        for _ in range(self.num_freq_masks):
            x = self.freq_mask(x)
        x = x[:, 0].transpose(1, 2).clone()  # never write into the caller's tensor
        lengths = [F] * B if frame_lengths is None else [int(n) for n in frame_lengths]
        for i in range(B):
            # a row's own TimeMasking: width <= its length, mask start inside its frames
            n = lengths[i]
            width = min(self.time_mask_param, n)
            if n == 0 or width == 0:
                continue
            mask_t = torchaudio.transforms.TimeMasking(width)
            row = x[i, :n].transpose(0, 1)[None]  # [1, M, n]
            for _ in range(self.num_time_masks):
                row = mask_t(row)
            x[i, :n] = row[0].transpose(0, 1)
        return x
