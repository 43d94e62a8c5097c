"""The VL decoder's audio stream: 3-stream gate vs hand-written math, absent streams, padding, fp16."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gatelab.core import ConfigError, capture_gates
from gatelab.multimodal.data.audio import AudioFeatures
from gatelab.multimodal.models import GatedVLDecoder, VLDecoderLayer

SR = 16000
TINY = dict(
    vocab_size=40, d_model=16, num_layers=2, num_heads=2, image_dim=6, max_len=12, max_image_tokens=4,
    audio_mels=20, num_audio_layers=1, dropout=0.0,
)  # fmt: skip


def _ln(x: torch.Tensor, norm: torch.nn.LayerNorm) -> torch.Tensor:
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias


def _randomise(module: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)


def _speechlike(batch: int = 3, seconds: float = 0.4) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of a tone, a chirp and noise (rows shortened by padding)."""
    n = int(SR * seconds)
    t = torch.arange(n, dtype=torch.float64) / SR
    waves = [
        0.5 * torch.sin(2 * math.pi * 440 * t),
        0.5 * torch.sin(2 * math.pi * (200 * t + 2500 * t * t)),
        0.1 * torch.randn(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64),
    ]
    w = torch.stack(waves[:batch]).float()
    lengths = torch.tensor([n, n * 3 // 4, n // 2][:batch])
    return AudioFeatures(SR, num_mels=20)(w, lengths)


@pytest.mark.parametrize("gate_mode", ["scalar", "vector"])
def test_layer_three_streams_match_hand_written(gate_mode):
    d = 8
    layer = VLDecoderLayer(d, 2, 12, fusion="gate", gate_mode=gate_mode, dropout=0.0, audio=True).eval()
    _randomise(layer)
    x, mem, aud = torch.randn(2, 5, d), torch.randn(2, 3, d), torch.randn(2, 4, d)
    apad = torch.tensor([[False] * 4, [False, False, True, True]])
    pool = mem.mean(1)
    with torch.no_grad():
        got = layer(x, mem, pool, audio_memory=aud, audio_padding_mask=apad)
        h = x + layer.self_attn(_ln(x, layer.norm1), is_causal=True)
        q = _ln(h, layer.norm2)
        v = layer.cross_attn(q, mem)
        a = layer.audio_attn(q, aud, key_padding_mask=apad)
        gb = pool @ layer.film.proj.weight.t() + layer.film.proj.bias
        t = q * (1 + gb[:, None, :d]) + gb[:, None, d:]
        logits = torch.cat([v, a, t], -1) @ layer.gate.proj.weight.t() + layer.gate.proj.bias
        logits = logits.unflatten(-1, (3, -1))  # [B, T, 3, 1 or d], stream-major
        w = torch.exp(logits) / torch.exp(logits).sum(-2, keepdim=True)
        fused = _ln(w[..., 0, :] * v + w[..., 1, :] * a + w[..., 2, :] * t, layer.fuse_norm)
        h = h + fused
        want = h + layer.ffn(_ln(h, layer.norm3))
        # the padded audio frames are not attended: changing them changes nothing
        aud2 = aud.clone()
        aud2[1, 2:] = 100.0
        again = layer(x, mem, pool, audio_memory=aud2, audio_padding_mask=apad)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(again, got)


def test_model_outputs_gates_and_absent_streams():
    torch.manual_seed(0)
    m = GatedVLDecoder(**TINY).eval()
    feats, frames = _speechlike()
    ids = torch.randint(3, 40, (3, 7))
    image = torch.randn(3, 4, 6)
    with capture_gates(m) as gates:
        out = m(ids, image, audio=feats, audio_lengths=frames)
    assert out.logits.shape == (3, 7, 40)
    assert out.audio_embed.shape == (3, 16) and out.audio_image_logits.shape == (3, 3)
    torch.testing.assert_close(out.audio_embed.norm(dim=-1), torch.ones(3))
    w = gates["layers.0.gate"]
    assert w.shape == (3, 7, 3)  # [B, T, (image, audio, text)]
    torch.testing.assert_close(w.sum(-1), torch.ones(3, 7))
    # no image: its weight is 0 and the audio + text weights renormalise
    with capture_gates(m) as gates:
        audio_only = m(ids, audio=feats, audio_lengths=frames)
    assert (gates["layers.1.gate"][..., 0] == 0).all() and audio_only.contrastive_logits is None
    torch.testing.assert_close(gates["layers.1.gate"].sum(-1), torch.ones(3, 7))
    # per-row audio_mask: row 1 without audio
    with capture_gates(m) as gates:
        m(ids, image, audio=feats, audio_lengths=frames, audio_mask=torch.tensor([True, False, True]))
    g = gates["layers.0.gate"]
    assert (g[1, :, 1] == 0).all() and (g[0, :, 1] > 0).all()
    # a row with neither stream skips the block: equals the text-only model on that row
    text_only = m(ids).logits
    masked = m(ids, image, image_mask=torch.tensor([False, True, True]), audio=feats, audio_lengths=frames,
               audio_mask=torch.tensor([False, True, True])).logits  # fmt: skip
    torch.testing.assert_close(masked[0], text_only[0])
    assert not torch.allclose(masked[1], text_only[1])


def test_audio_padding_and_causality():
    torch.manual_seed(0)
    m = GatedVLDecoder(**TINY).eval()
    feats, frames = _speechlike()
    ids = torch.randint(3, 40, (3, 7))
    full = m(ids, audio=feats, audio_lengths=frames).logits
    alone = m(ids[2:], audio=feats[2:, : frames[2]], audio_lengths=frames[2:]).logits
    torch.testing.assert_close(alone[0], full[2], rtol=1e-4, atol=1e-5)
    ids2 = ids.clone()
    ids2[:, 4:] = 5
    later = m(ids2, audio=feats, audio_lengths=frames).logits
    torch.testing.assert_close(later[:, :4], full[:, :4])


def test_backward_reaches_the_audio_path_and_half_precision():
    torch.manual_seed(0)
    m = GatedVLDecoder(**TINY)
    feats, frames = _speechlike()
    ids = torch.randint(3, 40, (3, 7))
    out = m(ids, torch.randn(3, 4, 6), audio=feats, audio_lengths=frames)
    loss = F.cross_entropy(out.logits.flatten(0, 1), ids.flatten()) + out.audio_image_logits.logsumexp(-1).mean()
    loss.backward()
    for name in ("audio_encoder.conv1.weight", "audio_encoder.blocks.0.gau.to_uvz.weight",
                 "layers.0.audio_attn.q_proj.weight", "layers.0.gate.proj.weight", "audio_proj.weight"):  # fmt: skip
        p = m.get_parameter(name)
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    for dt in (torch.float16, torch.bfloat16):
        h = GatedVLDecoder(**TINY).to(dt)
        o = h(ids, torch.randn(3, 4, 6, dtype=dt) * 1e3, audio=(feats * 30).to(dt), audio_lengths=frames)
        assert torch.isfinite(o.logits.float()).all() and torch.isfinite(o.audio_image_logits.float()).all()
        o.logits.float().sum().backward()
        assert all(torch.isfinite(p.grad.float()).all() for p in h.parameters() if p.grad is not None)


def test_add_fusion_and_no_audio_model_unchanged():
    torch.manual_seed(0)
    add = GatedVLDecoder(**{**TINY, "fusion": "add"}).eval()
    feats, frames = _speechlike()
    ids = torch.randint(3, 40, (3, 7))
    assert add(ids, audio=feats, audio_lengths=frames).logits.shape == (3, 7, 40)
    plain = GatedVLDecoder(**{**TINY, "audio_mels": None})
    assert not any("audio" in n for n, _ in plain.named_parameters())
    assert plain.audio_encoder is None and plain.layers[0].gate.num_streams == 2


def test_audio_errors():
    feats, frames = _speechlike()
    ids = torch.randint(3, 40, (3, 7))
    with pytest.raises(ValueError, match="no audio stream"):
        GatedVLDecoder(**{**TINY, "audio_mels": None})(ids, audio=feats)
    with pytest.raises(ConfigError, match="audio_mels=20: an audio stream needs fusion='gate' or 'add'"):
        GatedVLDecoder(**{**TINY, "fusion": "visual"})
    m = GatedVLDecoder(**TINY)
    with pytest.raises(ValueError, match="audio batch 2 != text batch 3"):
        m(ids, audio=feats[:2])
    with pytest.raises(ValueError, match=r"audio_mask must be bool \[B\]"):
        m(ids, audio=feats, audio_mask=torch.ones(3))
    with pytest.raises(ValueError, match="given without audio"):
        m(ids, audio_lengths=frames)
    with pytest.raises(ValueError, match=r"num_mels=20\], got \(3, 24, 40\)"):
        m(ids, audio=torch.randn(3, 24, 40))
