"""GatedVLDecoder.generate: the KV cache against a full recompute, gates per token, sampling, errors."""

from __future__ import annotations

import pytest
import torch

from gatelab.core import capture_gates
from gatelab.multimodal.data.tokenizer import BOS_ID, EOS_ID, train_bpe
from gatelab.multimodal.models import GatedVLDecoder


def _model(seed: int = 0, **kw) -> GatedVLDecoder:
    torch.manual_seed(seed)
    cfg = dict(
        vocab_size=40, d_model=16, num_layers=2, num_heads=2, image_dim=6, max_len=24, max_image_tokens=4, dropout=0.0
    )
    cfg.update(kw)
    model = GatedVLDecoder(**cfg).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # away from the zero/identity init, so FiLM, gates and EOS all matter
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.2)
        model.head.bias[EOS_ID] -= 3.0  # rows run for several steps before EOS
    return model


def _reference(model: GatedVLDecoder, image, prompt: torch.Tensor, steps: int):
    """Greedy decoding by hand: the whole sequence through forward() at every step."""
    seq, logits = prompt, []
    for _ in range(steps):
        step = model(seq, image).logits[:, -1]
        logits.append(step)
        seq = torch.cat([seq, step.argmax(-1, keepdim=True)], dim=1)
    return seq[:, prompt.shape[1] :], torch.stack(logits, 1)


@pytest.mark.parametrize(
    "kw",
    [
        {"fusion": "gate", "gate_mode": "scalar"},
        {"fusion": "gate", "gate_mode": "vector", "attn_gate": "headwise"},
        {"fusion": "add", "attn_gate": "elementwise"},
        {"fusion": "visual"},
    ],
    ids=["gate-scalar", "gate-vector-headwise", "add-elementwise", "visual"],
)
def test_cached_greedy_equals_full_recompute(kw):
    model = _model(**kw)
    g = torch.Generator().manual_seed(3)
    image = torch.randn(3, 4, 6, generator=g)
    prompt = torch.tensor([[BOS_ID, 5, 7], [BOS_ID, 9, 3], [BOS_ID, 11, 12]])
    with torch.no_grad():
        want_tokens, want_logits = _reference(model, image, prompt, 10)
    for use_cache in (True, False):
        out = model.generate(image, prompt, max_new_tokens=10, return_logits=True, use_cache=use_cache)
        for i in range(3):
            n = int(out.lengths[i])
            assert n >= 1
            assert out.sequences[i, :n].tolist() == want_tokens[i, :n].tolist()
            torch.testing.assert_close(out.logits[i, :n], want_logits[i, :n], atol=1e-5, rtol=1e-5)
            assert bool(out.finished[i]) == (EOS_ID in want_tokens[i, :n].tolist())
            assert (out.sequences[i, n:] == 0).all()
    # the test is not vacuous: several steps decoded, tokens vary
    assert int(out.lengths.max()) > 3 and len(set(out.sequences.flatten().tolist())) > 2


def test_cache_computes_memory_keys_once_and_grows():
    model = _model()
    image = torch.randn(2, 4, 6)
    calls = []
    for layer in model.layers:
        layer.cross_attn.k_proj.register_forward_hook(lambda m, a, o: calls.append(a[0].shape))
    model.generate(image, torch.tensor([[BOS_ID, 4], [BOS_ID, 8]]), max_new_tokens=6)
    # one cross-attention key projection per layer, of the image memory [B, N, d]
    assert calls == [torch.Size([2, 4, 16])] * 2


@pytest.mark.parametrize("gate_mode", ["scalar", "vector"])
def test_gates_per_generated_token(gate_mode):
    model = _model(gate_mode=gate_mode)
    image = torch.randn(2, 4, 6)
    prompt = torch.tensor([[BOS_ID, 5], [BOS_ID, 6]])
    out = model.generate(image, prompt, max_new_tokens=5, return_gates=True)
    G = 1 if gate_mode == "scalar" else 16
    assert out.gates.shape == (2, out.sequences.shape[1], 2, G)
    # each step's gates are those of the position that chose the token, in a full forward pass
    seq = torch.cat([prompt, out.sequences], dim=1)
    with torch.no_grad(), capture_gates(model, "layers.*.gate") as gates:
        model(seq, image)
    for i in range(2):
        for s in range(int(out.lengths[i])):
            pos = prompt.shape[1] - 1 + s
            for layer in range(2):
                want = gates[f"layers.{layer}.gate"][i, pos]
                torch.testing.assert_close(out.gates[i, s, layer], want, atol=1e-5, rtol=1e-5)
    assert ((out.gates > 0) & (out.gates < 1))[0, : int(out.lengths[0])].all()


def test_text_prompts_of_different_lengths_and_tokenizer_decoding():
    tok = train_bpe(["a red circle on top", "a blue square at the bottom left"] * 20, vocab_size=300)
    model = _model(vocab_size=tok.get_vocab_size())
    model.set_tokenizer(tok)
    image = torch.randn(2, 4, 6)
    prompts = ["a red", "a blue square at the"]
    out = model.generate(image, prompts, max_new_tokens=4, return_logits=True)
    for i, text in enumerate(prompts):
        ids = [BOS_ID, *[t for t in tok.encode(text).ids if t not in (BOS_ID, EOS_ID)]]
        alone = model.generate(image[i : i + 1], torch.tensor([ids]), max_new_tokens=4, return_logits=True)
        n = int(alone.lengths[0])
        assert out.sequences[i, :n].tolist() == alone.sequences[0, :n].tolist()
        torch.testing.assert_close(out.logits[i, :n], alone.logits[0, :n], atol=1e-5, rtol=1e-5)
        assert out.texts[i] == tok.decode(alone.sequences[0, :n].tolist(), skip_special_tokens=True)


def test_sampling_top_k_and_reproducibility():
    model = _model()
    image = torch.randn(4, 4, 6)
    a = model.generate(image, max_new_tokens=6, temperature=1.0, top_k=3, generator=torch.Generator().manual_seed(0), return_logits=True)
    b = model.generate(image, max_new_tokens=6, temperature=1.0, top_k=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.sequences, b.sequences)
    for i in range(4):
        for s in range(int(a.lengths[i])):
            top = a.logits[i, s].topk(3).indices.tolist()
            assert int(a.sequences[i, s]) in top
    model.train()
    model.generate(image, max_new_tokens=2)
    assert model.training  # mode restored


def test_generate_errors():
    model = _model()
    image = torch.randn(2, 4, 6)
    with pytest.raises(ValueError, match="max_len=24"):
        model.generate(image, max_new_tokens=30)
    with pytest.raises(ValueError, match="tokenizer"):
        model.generate(image, "a red circle")
    with pytest.raises(ValueError, match="3 prompts for 2 images"):
        model.generate(image, torch.ones(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="temperature"):
        model.generate(image, temperature=-1.0)
    with pytest.raises(ValueError, match="needs an image"):
        model.generate(None, return_gates=True)
    with pytest.raises(ValueError, match="fusion='add'"):
        _model(fusion="add").generate(image, return_gates=True)


# --------------------------------------------------------------------------- with an audio stream (issue 16)


def _audio_inputs(batch: int = 3, frames: int = 30, mels: int = 8):
    g = torch.Generator().manual_seed(5)
    feats = torch.randn(batch, frames, mels, generator=g)
    lengths = torch.tensor([frames, frames - 7, frames // 2][:batch])
    return feats, lengths


@pytest.mark.parametrize(
    "kw, with_image",
    [
        ({"fusion": "gate", "gate_mode": "scalar"}, True),
        ({"fusion": "gate", "gate_mode": "vector", "attn_gate": "headwise"}, True),
        ({"fusion": "add", "attn_gate": "elementwise"}, True),
        ({"fusion": "gate", "gate_mode": "scalar"}, False),
    ],
    ids=["gate-scalar", "gate-vector-headwise", "add-elementwise", "audio-only"],
)
def test_cached_greedy_with_audio_equals_full_recompute(kw, with_image):
    """generate(image, audio) with the KV cache == the whole sequence through forward() at every
    step with the same audio (padded frames masked), tokens equal and logits within 1e-5."""
    model = _model(audio_mels=8, num_audio_layers=1, **kw)
    g = torch.Generator().manual_seed(3)
    image = torch.randn(3, 4, 6, generator=g) if with_image else None
    feats, lengths = _audio_inputs()
    prompt = torch.tensor([[BOS_ID, 5, 7], [BOS_ID, 9, 3], [BOS_ID, 11, 12]])
    seq, want_logits = prompt, []
    with torch.no_grad():
        for _ in range(10):
            step = model(seq, image, audio=feats, audio_lengths=lengths).logits[:, -1]
            want_logits.append(step)
            seq = torch.cat([seq, step.argmax(-1, keepdim=True)], dim=1)
    want_tokens, want_logits = seq[:, prompt.shape[1] :], torch.stack(want_logits, 1)
    for use_cache in (True, False):
        out = model.generate(image, prompt, max_new_tokens=10, return_logits=True, use_cache=use_cache,
                             audio=feats, audio_lengths=lengths)  # fmt: skip
        for i in range(3):
            n = int(out.lengths[i])
            assert out.sequences[i, :n].tolist() == want_tokens[i, :n].tolist()
            torch.testing.assert_close(out.logits[i, :n], want_logits[i, :n], atol=1e-5, rtol=1e-5)
    assert int(out.lengths.max()) > 3
    # the audio matters: other audio (or the padding ignored differently) changes the logits
    other = model.generate(image, prompt, max_new_tokens=10, return_logits=True, audio=feats.flip(1),
                           audio_lengths=lengths)  # fmt: skip
    assert not torch.allclose(other.logits[:, 0], out.logits[:, 0], atol=1e-4)


def test_cache_computes_audio_keys_once_and_padding_is_ignored():
    model = _model(audio_mels=8, num_audio_layers=1)
    feats, lengths = _audio_inputs(2)
    image = torch.randn(2, 4, 6, generator=torch.Generator().manual_seed(4))
    calls = []
    for layer in model.layers:
        layer.audio_attn.k_proj.register_forward_hook(lambda m, a, o: calls.append(a[0].shape))
    prompt = torch.tensor([[BOS_ID, 4], [BOS_ID, 8]])
    out = model.generate(image, prompt, max_new_tokens=6, audio=feats, audio_lengths=lengths, return_logits=True)
    frames = model.encode_audio(feats, lengths)[0].shape[1]
    assert calls == [torch.Size([2, frames, 16])] * 2  # once per layer, of the audio memory [B, F', d]
    # garbage in the padded frames of row 1 changes nothing
    noisy = feats.clone()
    noisy[1, int(lengths[1]) :] = 100.0
    again = model.generate(image, prompt, max_new_tokens=6, audio=noisy, audio_lengths=lengths, return_logits=True)
    assert torch.equal(again.sequences, out.sequences)
    torch.testing.assert_close(again.logits, out.logits, atol=1e-5, rtol=1e-5)


def test_gates_of_three_streams_per_generated_token():
    model = _model(audio_mels=8, num_audio_layers=1)
    feats, lengths = _audio_inputs(2)
    image = torch.randn(2, 4, 6)
    prompt = torch.tensor([[BOS_ID, 5], [BOS_ID, 6]])
    out = model.generate(image, prompt, max_new_tokens=5, return_gates=True, audio=feats, audio_lengths=lengths)
    assert out.gates.shape == (2, out.sequences.shape[1], 2, 3)
    seq = torch.cat([prompt, out.sequences], dim=1)
    with torch.no_grad(), capture_gates(model, "layers.*.gate") as gates:
        model(seq, image, audio=feats, audio_lengths=lengths)
    for i in range(2):
        for s in range(int(out.lengths[i])):
            for layer in range(2):
                want = gates[f"layers.{layer}.gate"][i, prompt.shape[1] - 1 + s]
                torch.testing.assert_close(out.gates[i, s, layer], want, atol=1e-5, rtol=1e-5)
    n0 = int(out.lengths[0])
    torch.testing.assert_close(out.gates[0, :n0].sum(-1), torch.ones(n0, 2))  # softmax over the streams


def test_generate_audio_errors():
    feats, lengths = _audio_inputs(2)
    prompt = torch.tensor([[BOS_ID, 5], [BOS_ID, 6]])
    with pytest.raises(ValueError, match="no audio stream"):
        _model().generate(torch.randn(2, 4, 6), prompt, audio=feats)
    model = _model(audio_mels=8, num_audio_layers=1)
    with pytest.raises(ValueError, match="audio batch 2 != image batch 3"):
        model.generate(torch.randn(3, 4, 6), prompt, audio=feats)
    with pytest.raises(ValueError, match="audio_lengths given without audio"):
        model.generate(torch.randn(2, 4, 6), prompt, audio_lengths=lengths)
