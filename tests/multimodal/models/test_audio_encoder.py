"""AudioEncoder (conv subsampling + GAU blocks) on features of generated waveforms."""

from __future__ import annotations

import math

import pytest
import torch
from gate_checks import check_grads, check_half_finite

from gatelab.core import GatedAttentionUnit, capture_gates
from gatelab.core.config import ConfigError
from gatelab.multimodal.data.audio import AudioFeatures
from gatelab.multimodal.models import AudioEncoder, AudioEncoderConfig

SR = 16000
TINY = dict(num_mels=20, d_model=16, num_layers=2, conv_channels=4, qk_dim=8, max_rel_pos=4, dropout=0.0)


def _waves() -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.arange(SR // 2, dtype=torch.float64) / SR
    tone = 0.5 * torch.sin(2 * math.pi * 500 * t)
    chirp = 0.5 * torch.sin(2 * math.pi * (200 * t + 3000 * t * t))
    noise = 0.1 * torch.randn(SR // 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    batch = torch.stack([tone, chirp, noise]).float()
    lengths = torch.tensor([SR // 2, SR // 4, SR // 8])
    for i, n in enumerate(lengths):
        batch[i, n:] = 0.0
    return batch, lengths


def test_shapes_padding_mask_and_padding_invariance():
    torch.manual_seed(0)
    feats, frames = AudioFeatures(SR, num_mels=20)(*_waves())
    enc = AudioEncoder(**TINY).eval()
    memory, pad = enc(feats, frames)
    want_len = [((int(f) - 1) // 2 + 1 - 1) // 2 + 1 for f in frames]
    assert memory.shape == (3, want_len[0], 16)
    assert (~pad).sum(dim=1).tolist() == want_len
    for i in range(3):  # each row alone (no padding) gives the same memory on its own frames
        alone, alone_pad = enc(feats[i : i + 1, : frames[i]])
        assert not alone_pad.any()
        torch.testing.assert_close(memory[i, : want_len[i]], alone[0], rtol=1e-4, atol=1e-5)
    feats2 = feats.clone()
    feats2[2, frames[2] :] = 7.0  # whatever lies past a row's frames is ignored
    torch.testing.assert_close(enc(feats2, frames)[0][2, : want_len[2]], memory[2, : want_len[2]])


def test_gau_blocks_are_core_gates_and_captured():
    enc = AudioEncoder(**TINY)
    gaus = [m for m in enc.modules() if isinstance(m, GatedAttentionUnit)]
    assert len(gaus) == 2
    feats = torch.randn(2, 30, 20)
    with capture_gates(enc) as gates:
        enc(feats)
    assert sorted(gates) == ["blocks.0.gau", "blocks.1.gau"]
    assert gates["blocks.0.gau"].shape == (2, 8, 32)  # u: [B, F', 2 d]


def test_gradients_and_half_precision():
    enc = AudioEncoder(**TINY)
    feats = torch.randn(2, 30, 20)
    check_grads(enc, feats)
    check_half_finite(lambda: AudioEncoder(**TINY), lambda dt: [torch.randn(2, 30, 20, dtype=dt) * 50])


def test_config_and_errors():
    cfg = AudioEncoderConfig.from_preset("small")
    assert cfg.d_model == 64 and cfg.num_layers == 2
    with pytest.raises(ConfigError, match="attention"):
        AudioEncoderConfig(attention="linear")
    with pytest.raises(ConfigError, match="num_mels"):
        AudioEncoder(num_mels=0)
    enc = AudioEncoder(**TINY)
    with pytest.raises(ValueError, match=r"expected features \[B, F, num_mels=20\], got \(2, 30, 40\)"):
        enc(torch.randn(2, 30, 40))
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 30\], got \[30, 0\]"):
        enc(torch.randn(2, 30, 20), torch.tensor([30, 0]))
    with pytest.raises(ValueError, match="lengths must be integer"):
        enc(torch.randn(2, 30, 20), torch.tensor([30.0, 2.0]))
