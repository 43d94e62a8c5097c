"""Audio front end on generated waveforms (tones, chirps, noise): WAV I/O, resampling, features, SpecAugment."""

from __future__ import annotations

import math
import wave

import numpy as np
import pytest
import torch
import torchaudio

from gatelab.multimodal.data.audio import AudioFeatures, SpecAugment, load_audio, resample, save_wav

SR = 16000


def tone(freq: float, seconds: float = 0.5, sr: int = SR, amp: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(seconds * sr), dtype=torch.float64) / sr
    return (amp * torch.sin(2 * math.pi * freq * t)).float()


def chirp(f0: float, f1: float, seconds: float = 1.0, sr: int = SR) -> torch.Tensor:
    """Linear chirp: instantaneous frequency f0 + (f1 - f0) t / seconds."""
    t = torch.arange(int(seconds * sr), dtype=torch.float64) / sr
    return (0.5 * torch.sin(2 * math.pi * (f0 * t + (f1 - f0) * t * t / (2 * seconds)))).float()


def noise(seconds: float = 0.5, sr: int = SR, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (0.1 * torch.randn(int(seconds * sr), generator=g)).clamp(-1, 1)


def dominant_hz(w: torch.Tensor, sr: int) -> float:
    spec = torch.fft.rfft(w.double()).abs()
    return float(spec.argmax()) * sr / w.shape[-1]


def mel_bin_of(freq: float, num_mels: int = 40, sr: int = SR) -> int:
    """The HTK mel band whose centre is nearest ``freq`` (torchaudio's default mel scale)."""
    mel = lambda f: 2595.0 * math.log10(1.0 + f / 700.0)  # noqa: E731
    centres = np.linspace(mel(0.0), mel(sr / 2), num_mels + 2)[1:-1]
    return int(np.abs(centres - mel(freq)).argmin())


# ---- WAV I/O and resampling ---------------------------------------------------------------------


def test_wav_round_trip_and_formats(tmp_path):
    w = tone(440.0)
    p = save_wav(tmp_path / "a" / "tone.wav", w, SR)
    got, sr = load_audio(p)
    assert sr == SR and got.shape == (1, w.shape[0])
    assert (got[0] - w).abs().max() <= 1.0 / 32767 + 1e-7
    # stereo averaged to mono; mono=False keeps the channels
    st = torch.stack([w, -w * 0.5])
    save_wav(tmp_path / "st.wav", st, SR)
    both, _ = load_audio(tmp_path / "st.wav", mono=False)
    assert both.shape == (2, w.shape[0])
    mono, _ = load_audio(tmp_path / "st.wav")
    torch.testing.assert_close(mono[0], 0.25 * w, atol=2e-4, rtol=0)
    # 8-bit and 32-bit PCM written by hand
    for width, dtype, scale, offset in ((1, np.uint8, 127.0, 128.0), (4, "<i4", 2.0**31 - 1, 0.0)):
        ints = (w.numpy() * scale + offset).round().astype(dtype)
        q = tmp_path / f"w{width}.wav"
        with wave.open(str(q), "wb") as f:
            f.setnchannels(1)
            f.setsampwidth(width)
            f.setframerate(SR)
            f.writeframes(ints.tobytes())
        got, _ = load_audio(q)
        assert (got[0] - w).abs().max() < 2.0 / scale + 1e-6


def test_resampling_keeps_the_tone(tmp_path):
    w = tone(440.0, seconds=1.0)
    p = save_wav(tmp_path / "t.wav", w, SR)
    down, sr = load_audio(p, 8000)
    assert sr == 8000 and down.shape == (1, 8000)
    assert abs(dominant_hz(down[0], 8000) - 440.0) <= 1.0
    assert torch.equal(resample(w, SR, SR), w)
    torch.testing.assert_close(resample(w, SR, 8000), torchaudio.functional.resample(w, SR, 8000))


def test_io_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.wav"):
        load_audio(tmp_path / "missing.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wav file at all")
    with pytest.raises(ValueError, match=r"bad\.wav: not a PCM WAV"):
        load_audio(bad)
    with pytest.raises(ValueError, match=r"peak is 1\.5"):
        save_wav(tmp_path / "loud.wav", torch.tensor([0.0, 1.5]), SR)
    with pytest.raises(ValueError, match="non-finite"):
        save_wav(tmp_path / "nan.wav", torch.tensor([0.0, float("nan")]), SR)
    with pytest.raises(ValueError, match="new_rate must be a positive int"):
        resample(torch.zeros(10), SR, 0)


# ---- features -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["logmel", "fbank"])
@pytest.mark.parametrize("freq", [300.0, 1000.0, 3000.0])
def test_a_tone_peaks_in_its_mel_band(kind, freq):
    feats, frames = AudioFeatures(SR, kind=kind, num_mels=40, cmvn=False)(tone(freq))
    assert feats.shape == (1, 48, 40) and frames.tolist() == [48]  # 1 + (8000 - 400) // 160
    peak = feats[0].mean(dim=0).argmax().item()
    assert abs(peak - mel_bin_of(freq)) <= 1


@pytest.mark.parametrize("kind", ["logmel", "fbank"])
def test_a_chirp_rises_through_the_bands_and_noise_is_flat(kind):
    f = AudioFeatures(SR, kind=kind, num_mels=40, cmvn=False)
    feats, _ = f(chirp(200.0, 6000.0))
    peaks = feats[0].argmax(dim=-1).float()
    q = peaks.shape[0] // 4
    assert peaks[:q].mean() + 8 < peaks[q : 2 * q].mean() + 4 < peaks[-q:].mean()
    # white noise: a smooth broadband profile (no jump between neighbouring bands); a tone: one peak
    flat = f(noise())[0][0].mean(dim=0)
    peaked = f(tone(1000.0))[0][0].mean(dim=0)
    assert (flat[1:] - flat[:-1]).abs().max() < 1.0
    assert (peaked[1:] - peaked[:-1]).abs().max() > 5.0


def test_fbank_equals_torchaudio_kaldi():
    w = chirp(300.0, 3000.0, seconds=0.3)
    got, _ = AudioFeatures(SR, kind="fbank", num_mels=23, cmvn=False)(w)
    want = torchaudio.compliance.kaldi.fbank(
        w[None] * 32768.0, num_mel_bins=23, dither=0.0, sample_frequency=SR, energy_floor=0.0
    )
    torch.testing.assert_close(got[0], want)


@pytest.mark.parametrize("kind", ["logmel", "fbank"])
def test_padded_rows_equal_the_rows_alone_and_cmvn(kind):
    f = AudioFeatures(SR, kind=kind, num_mels=20)
    a, b = chirp(200.0, 2000.0, seconds=0.4), tone(700.0, seconds=0.25)
    batch = torch.zeros(2, a.shape[0])
    batch[0], batch[1, : b.shape[0]] = a, b
    feats, frames = f(batch, torch.tensor([a.shape[0], b.shape[0]]))
    assert frames.tolist() == [f.num_frames(a.shape[0]), f.num_frames(b.shape[0])]
    for i, w in enumerate((a, b)):
        alone, _ = f(w)
        torch.testing.assert_close(feats[i, : frames[i]], alone[0], rtol=1e-4, atol=1e-4)
    assert (feats[1, frames[1] :] == 0).all()
    # cmvn: each band centred and scaled over the utterance's own frames
    raw = AudioFeatures(SR, kind=kind, num_mels=20, cmvn=False)(a)[0][0]
    want = (raw - raw.mean(0)) / (raw.std(0, correction=0) + 1e-5)
    torch.testing.assert_close(feats[0, : frames[0]], want, rtol=1e-4, atol=1e-4)


def test_feature_errors():
    with pytest.raises(ValueError, match="kind must be one of"):
        AudioFeatures(kind="mfcc")
    f = AudioFeatures(SR)
    with pytest.raises(ValueError, match=r"rows \[1\] are shorter than one 25.0 ms window"):
        f(torch.zeros(2, 1000), torch.tensor([1000, 100]))
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 1000\]"):
        f(torch.zeros(2, 1000), torch.tensor([1000, 1001]))
    with pytest.raises(ValueError, match=r"expected waveforms \[B, T\]"):
        f(torch.zeros(1, 2, 1000))


# ---- SpecAugment ------------------------------------------------------------------------------------


def test_specaugment_masks_in_training_only():
    feats, frames = AudioFeatures(SR, num_mels=40)(torch.stack([noise(seed=1), noise(seed=2)]))
    feats[1, 30:] = 0.0
    frames = torch.tensor([48, 30])
    aug = SpecAugment(freq_mask_param=6, time_mask_param=5, num_freq_masks=2, num_time_masks=2)
    assert torch.equal(aug.eval()(feats, frames), feats)
    torch.manual_seed(0)
    before = feats.clone()
    out = aug.train()(feats, frames)
    assert torch.equal(feats, before)  # the input is not modified
    changed = out != feats
    assert changed.any()
    assert (out[changed] == 0).all()  # masked cells are set to 0, nothing else changes
    for i in range(2):
        n = int(frames[i])
        zero_bins = (out[i, :n] == 0).all(dim=0)  # frequency masks cover whole bands
        zero_frames = (out[i, :n] == 0).all(dim=1)  # time masks cover whole frames
        assert int(zero_bins.sum()) <= 2 * 6 and int(zero_frames.sum()) <= 2 * 5
        # every zeroed cell belongs to a masked band or a masked frame
        assert torch.equal(out[i, :n] == 0, zero_bins[None, :] | zero_frames[:, None])
    masked_any = sum(int((out[i, : int(frames[i])] == 0).any()) for i in range(2))
    assert masked_any == 2
    with pytest.raises(ValueError, match=r"expected features \[B, F, M\]"):
        aug(feats[0])
    with pytest.raises(ValueError, match="num_time_masks must be a non-negative int"):
        SpecAugment(num_time_masks=-1)


def test_rows_with_equal_frame_counts_but_different_lengths_stay_separate():
    """16050 and 16000 samples give the same 98 frames (one batched STFT): no frame reads row 1's padding."""
    f = AudioFeatures(SR, num_mels=20)
    a = noise(seconds=16050 / SR, seed=3)
    batch = torch.stack([a, a.clone()])
    batch[1, 16000:] = 0.9  # padding content of row 1
    feats, frames = f(batch, torch.tensor([16050, 16000]))
    assert frames.tolist() == [98, 98]
    torch.testing.assert_close(feats[1], f(a[:16000])[0][0], rtol=1e-4, atol=1e-4)
