"""Spoken captions: preparation with a stand-in synthesiser (no espeak-ng), manifest strictness, the CLI."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from speech_fixtures import fake_tts

from gatelab.core.harness.cli import main as cli
from gatelab.multimodal.data.audio import load_audio, save_wav
from gatelab.multimodal.data.speech import (
    EspeakNotFoundError,
    add_noise,
    find_espeak,
    prepare_spoken_captions,
    read_speech_manifest,
)


def test_prepare_shapes_and_coco(tmp_path, vl_data_dir):
    out = tmp_path / "data"
    manifest = prepare_spoken_captions(
        out, sources=("shapes", "coco"), voices=("v1", "v2"), speeds=(130, 190), snrs=(None, 10.0),
        shapes_train=6, shapes_val=2, shapes_test=3, coco_dir=vl_data_dir / "coco_mini", synthesize=fake_tts,
    )  # fmt: skip
    assert manifest == out / "spoken_captions" / "manifest.jsonl"
    utts = read_speech_manifest(manifest)
    shapes = [u for u in utts if u.source == "shapes"]
    coco = [u for u in utts if u.source == "coco"]
    assert [sum(u.split == s for u in shapes) for s in ("train", "val", "test")] == [6, 2, 3]
    assert len(coco) == 5 * (4 + 44) and {u.split for u in coco} == {"train", "test"}
    assert {u.voice for u in utts} == {"v1", "v2"} and {u.speed for u in utts} == {130, 190}
    assert {u.snr_db for u in utts} == {None, 10.0}
    header = json.loads((out / "spoken_captions" / "speech.json").read_text())
    assert header["shapes"]["n_train"] == 6 and header["synthesizer"] == "stand-in synthesiser"
    for u in utts[:5] + coco[:3]:
        wav, sr = load_audio(manifest.parent / u.path)
        assert sr == 16000 and wav.shape == (1, u.num_samples)
    # the noise level is the one recorded: regenerate the clean utterance and compare powers
    noisy = next(u for u in utts if u.snr_db == 10.0 and u.gain == 1.0)
    fake_tts(noisy.caption, noisy.voice, noisy.speed, tmp_path / "clean.wav")
    clean, _ = load_audio(tmp_path / "clean.wav", 16000)
    mix, _ = load_audio(manifest.parent / noisy.path)
    snr = 10 * math.log10(clean.square().mean() / (mix - clean).square().mean())
    assert abs(snr - 10.0) < 0.5


def test_add_noise_snr_and_clipping():
    g = torch.Generator().manual_seed(0)
    x = 0.5 * torch.sin(torch.linspace(0, 400, 16000))
    y, gain = add_noise(x, 20.0, g)
    assert gain == 1.0
    snr = 10 * math.log10(x.double().square().mean() / (y.double() - x.double()).square().mean())
    assert abs(snr - 20.0) < 0.3
    loud, gain = add_noise(torch.full((100,), 0.99), -10.0, g)  # noise 3x the signal: would clip
    assert gain < 1.0 and loud.abs().max() <= 1.0
    clean, gain = add_noise(x, None, g)
    assert gain == 1.0 and torch.equal(clean, x)
    with pytest.raises(ValueError, match="silent"):
        add_noise(torch.zeros(10), 10.0, g)


def _manifest(tmp_path: Path, lines: list[str]) -> Path:
    p = tmp_path / "manifest.jsonl"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_manifest_errors_name_line_and_key(tmp_path):
    good = {"id": "a", "source": "shapes", "split": "train", "item": 0, "caption": "a red circle.",
            "voice": "en-us", "speed": 160, "snr_db": None, "gain": 1.0, "path": "a.wav", "sample_rate": 16000,
            "num_samples": 10}  # fmt: skip
    save_wav(tmp_path / "a.wav", torch.zeros(10), 16000)
    assert read_speech_manifest(_manifest(tmp_path, [json.dumps(good)]))[0].caption == "a red circle."
    cases = [
        ([json.dumps(good), "{not json"], r"manifest.jsonl:2: not valid JSON"),
        ([json.dumps({**good, "speed": "fast"})], r"manifest.jsonl:1: key 'speed' must be int, got 'fast'"),
        ([json.dumps({k: v for k, v in good.items() if k != "voice"})], r":1: missing keys \['voice'\]"),
        ([json.dumps({**good, "extra": 1})], r"unknown key\(s\) \[.extra.\]"),
        ([json.dumps(good), json.dumps(good)], r":2: duplicate id 'a'"),
        ([json.dumps({**good, "split": "dev"})], r":1: unknown source/split 'shapes'/'dev'"),
        ([json.dumps({**good, "path": "b.wav"})], r":1: audio file not found: .*b\.wav"),
    ]
    for lines, pattern in cases:
        with pytest.raises((ValueError, FileNotFoundError), match=pattern):
            read_speech_manifest(_manifest(tmp_path, lines))
    with pytest.raises(FileNotFoundError, match="gatelab prepare spoken-captions"):
        read_speech_manifest(tmp_path / "none.jsonl")


def test_missing_espeak_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    with pytest.raises(EspeakNotFoundError, match="apt-get install espeak-ng"):
        find_espeak()
    with pytest.raises(EspeakNotFoundError, match="--espeak 'nope': no such program"):
        find_espeak("nope")
    fake = tmp_path / "espeak-ng"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert find_espeak() == str(fake)
    fake.unlink()
    # the CLI reports it as one message, exit code 2
    assert cli(["prepare", "spoken-captions", "--data-dir", str(tmp_path / "d"), "--sources", "shapes"]) == 2


def test_cli_lists_the_preparation(capsys):
    assert cli(["prepare", "--list"]) == 0
    assert "spoken-captions" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (never needed by tests)")
def test_real_espeak_when_present(tmp_path):
    m = prepare_spoken_captions(tmp_path, sources=("shapes",), voices=("en-us",), speeds=(175,), snrs=(None,),
                                shapes_train=1, shapes_val=0, shapes_test=1)  # fmt: skip
    utts = read_speech_manifest(m)
    wav, sr = load_audio(m.parent / utts[0].path)
    assert sr == 16000 and wav.shape[1] > 8000 and wav.abs().max() > 0.05  # at least half a second of speech
