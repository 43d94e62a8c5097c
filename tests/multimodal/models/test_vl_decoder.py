"""GatedVLDecoder: layer equations vs hand-written math, causality, visual path on/off, errors."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F

from gatelab.core import ConfigError, capture_gates, create_model
from gatelab.multimodal.data.tokenizer import train_bpe
from gatelab.multimodal.models import FiLM, GatedVLDecoder, VLDecoderLayer, contrastive_loss


def _ln(x: torch.Tensor, norm: torch.nn.LayerNorm) -> torch.Tensor:
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias


def _randomise(module: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)


def test_film_identity_at_init_and_value():
    film = FiLM(4, 3)
    x, c = torch.randn(2, 5, 4), torch.randn(2, 3)
    torch.testing.assert_close(film(x, c), x)
    _randomise(film)
    W, b = film.proj.weight, film.proj.bias  # [8, 3], [8]
    want = torch.empty_like(x)
    for i in range(2):
        gb = W @ c[i] + b
        gamma, beta = gb[:4], gb[4:]
        for t in range(5):
            want[i, t] = x[i, t] * (1 + gamma) + beta
    torch.testing.assert_close(film(x, c), want)


@pytest.mark.parametrize(
    "fusion,gate_mode", [("gate", "scalar"), ("gate", "vector"), ("add", "scalar"), ("visual", "scalar")]
)
def test_layer_matches_hand_written_equations(fusion, gate_mode):
    d = 8
    layer = VLDecoderLayer(d, 2, 12, fusion=fusion, gate_mode=gate_mode, dropout=0.0).eval()
    _randomise(layer)
    x, mem = torch.randn(2, 5, d), torch.randn(2, 3, d)
    pool = mem.mean(1)
    with torch.no_grad():
        got = layer(x, mem, pool)
        # attention and the GLU FFN are core gates with their own value tests; the fusion is hand-written
        h = x + layer.self_attn(_ln(x, layer.norm1), is_causal=True)
        q = _ln(h, layer.norm2)
        v = layer.cross_attn(q, mem)
        if fusion == "gate":
            gb = pool @ layer.film.proj.weight.t() + layer.film.proj.bias
            t = q * (1 + gb[:, None, :d]) + gb[:, None, d:]
            logits = torch.cat([v, t], -1) @ layer.gate.proj.weight.t() + layer.gate.proj.bias
            g = 1 / (1 + torch.exp(-logits))
            assert g.shape[-1] == (1 if gate_mode == "scalar" else d)
            fused = _ln(g * v + (1 - g) * t, layer.fuse_norm)
        elif fusion == "visual":
            fused = _ln(v, layer.fuse_norm)
        else:
            fused = v
        h = h + fused
        want = h + layer.ffn(_ln(h, layer.norm3))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def _model(**kw) -> GatedVLDecoder:
    cfg = dict(
        d_model=16, num_layers=2, num_heads=2, image_dim=6, max_len=12, max_image_tokens=4, dropout=0.0
    )
    cfg.update(kw)
    return GatedVLDecoder(vocab_size=40, **cfg).eval()


def test_causal_text_and_image():
    m = _model()
    ids = torch.randint(3, 40, (2, 8))
    img = torch.randn(2, 4, 6)
    ids2 = ids.clone()
    ids2[:, 5:] = torch.randint(3, 40, (2, 3))
    for image in (None, img):
        a = m(ids, image).logits
        b = m(ids2, image).logits
        torch.testing.assert_close(a[:, :5], b[:, :5])
        assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_image_changes_output_and_text_only_skips_visual_path():
    m = _model()
    ids = torch.randint(3, 40, (3, 7))
    img = torch.randn(3, 4, 6)
    text_only = m(ids).logits
    with_img = m(ids, img).logits
    assert not torch.allclose(text_only, with_img)
    # image_mask switches the visual block off per row: those rows equal the text-only pass
    mask = torch.tensor([True, False, True])
    mixed = m(ids, img, image_mask=mask).logits
    torch.testing.assert_close(mixed[1], text_only[1])
    torch.testing.assert_close(mixed[0], with_img[0])


def test_right_padding_does_not_change_real_positions():
    m = _model()
    ids = torch.randint(3, 40, (1, 6))
    img = torch.randn(1, 4, 6)
    padded = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], 1)
    mask = torch.tensor([[True] * 6 + [False] * 3])
    a = m(ids, img, attention_mask=torch.ones(1, 6, dtype=torch.bool))
    b = m(padded, img, attention_mask=mask)
    torch.testing.assert_close(b.logits[:, :6], a.logits)
    torch.testing.assert_close(b.text_embed, a.text_embed)  # masked mean ignores padding


def test_global_vector_is_one_image_token():
    m = _model()
    ids = torch.randint(3, 40, (2, 5))
    vec = torch.randn(2, 6)
    torch.testing.assert_close(m(ids, vec).logits, m(ids, vec[:, None]).logits)


@pytest.mark.parametrize("mode,last", [("scalar", 1), ("vector", 16)])
def test_gate_captured_per_layer(mode, last):
    m = _model(gate_mode=mode)
    ids = torch.randint(3, 40, (2, 5))
    with capture_gates(m) as gates:
        m(ids, torch.randn(2, 4, 6))
    for i in range(2):
        g = gates[f"layers.{i}.gate"]
        assert g.shape == (2, 5, last)
        assert ((g > 0) & (g < 1)).all()
    assert gates["image_encoder.se"].shape == (2, 16)
    with capture_gates(m) as gates:  # text only: no visual gates fire
        m(ids)
    assert not any(k.startswith("layers.") and k.endswith(".gate") for k in gates)


def test_contrastive_outputs_and_loss():
    m = _model()
    ids = torch.randint(3, 40, (3, 5))
    mask = torch.ones(3, 5, dtype=torch.bool)
    img = torch.randn(3, 4, 6)
    out = m(ids, img, attention_mask=mask)
    torch.testing.assert_close(out.text_embed, m.text_embedding(ids, mask))
    torch.testing.assert_close(out.image_embed, m.image_embedding(img))
    torch.testing.assert_close(out.text_embed.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(out.contrastive_logits, out.text_embed @ out.image_embed.t() / 0.07)
    S = torch.randn(3, 3)
    want = 0.0
    for i in range(3):
        want += -(S[i, i] - torch.logsumexp(S[i], 0)) / 6 - (S[i, i] - torch.logsumexp(S[:, i], 0)) / 6
    torch.testing.assert_close(contrastive_loss(S), want)
    keep = torch.tensor([True, False, True])
    torch.testing.assert_close(contrastive_loss(S, keep), contrastive_loss(S[[0, 2]][:, [0, 2]]))


def test_backward_reaches_visual_path_and_gate():
    m = _model()
    m.train()
    out = m(torch.randint(3, 40, (2, 5)), torch.randn(2, 4, 6))
    (out.logits.mean() + contrastive_loss(out.contrastive_logits)).backward()
    for name in (
        "layers.0.gate.proj.weight",
        "layers.1.film.proj.weight",
        "image_encoder.se.fc1.weight",
        "log_tau",
    ):
        p = dict(m.named_parameters())[name]
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_presets_fix_fusion_and_reject_unknown_keys():
    assert create_model("vl-nogate-decoder", vocab_size=30, d_model=8, num_heads=2).fusion == "add"
    assert create_model("vl-visual-decoder", vocab_size=30, d_model=8, num_heads=2).fusion == "visual"
    nogate = create_model("vl-nogate-decoder", vocab_size=30, d_model=8, num_heads=2)
    assert not any(".gate." in n or ".film." in n for n, _ in nogate.named_parameters())
    with pytest.raises(ConfigError, match="unknown config key 'd_modle'"):
        create_model("vl-gated-decoder", vocab_size=30, d_modle=8)
    # the fixed key: one line naming the key, the value and the allowed value
    for name, cfg, fixed in (
        ("vl-gated-decoder", "VLGatedDecoderConfig", "'gate'"),
        ("vl-nogate-decoder", "VLNoGateDecoderConfig", "'add'"),
        ("vl-visual-decoder", "VLVisualDecoderConfig", "'visual'"),
    ):
        bad = "'add'" if fixed != "'add'" else "'gate'"
        with pytest.raises(ConfigError) as e:
            create_model(name, vocab_size=30, fusion=bad.strip("'"))
        assert str(e.value) == f"{cfg}.fusion={bad}: expected {fixed}", str(e.value)


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="fusion"):
        GatedVLDecoder(vocab_size=10, fusion="concat")
    with pytest.raises(ValueError, match="gate_mode"):
        GatedVLDecoder(vocab_size=10, gate_mode="token")
    m = _model()
    with pytest.raises(ValueError, match="max_len"):
        m(torch.randint(3, 40, (1, 13)))
    with pytest.raises(ValueError, match=r"image features \[B, 6\]"):
        m(torch.randint(3, 40, (1, 4)), torch.randn(1, 4, 5))
    with pytest.raises(ValueError, match="image batch"):
        m(torch.randint(3, 40, (2, 4)), torch.randn(1, 4, 6))
    with pytest.raises(ValueError, match="max_image_tokens"):
        m(torch.randint(3, 40, (1, 4)), torch.randn(1, 5, 6))
    with pytest.raises(ValueError, match="attention_mask"):
        m(torch.randint(3, 40, (1, 4)), attention_mask=torch.ones(1, 4))


def test_tokenizer_saved_in_state_dict_and_weights_only_checkpoint():
    tok = train_bpe(["the red circle is in the top left."] * 20, 280)
    m = GatedVLDecoder(vocab_size=tok.get_vocab_size(), d_model=8, num_heads=2, num_layers=1)
    m.set_tokenizer(tok)
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    fresh = GatedVLDecoder(vocab_size=tok.get_vocab_size(), d_model=8, num_heads=2, num_layers=1)
    assert fresh.tokenizer is None
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    assert fresh.tokenizer.encode("a red circle").ids == tok.encode("a red circle").ids
    with pytest.raises(ValueError, match="vocab_size"):
        GatedVLDecoder(vocab_size=10, d_model=8, num_heads=2).set_tokenizer(tok)


def test_timm_backbone_from_scratch_on_raw_images():
    m = GatedVLDecoder(
        vocab_size=30, d_model=16, num_layers=1, num_heads=2, image_backbone="resnet10t", max_image_tokens=4
    )
    assert m.image_encoder.image_dim == m.image_encoder.backbone.num_features
    ids = torch.randint(3, 30, (2, 5))
    out = m(ids, torch.randn(2, 3, 32, 32))  # resnet stride 32: one 1x1 feature map token
    out.logits.mean().backward()
    assert m.image_encoder.backbone.conv1[0].weight.grad is not None
    with pytest.raises(ValueError, match="raw images"):
        m(ids, torch.randn(2, 4, 16))
    with pytest.raises(ValueError, match="timm model"):
        GatedVLDecoder(vocab_size=30, d_model=16, num_heads=2, image_backbone="no_such_net")


def test_half_precision_forward_is_finite():
    m = _model().to(torch.bfloat16)
    out = m(torch.randint(3, 40, (2, 5)), torch.randn(2, 4, 6, dtype=torch.bfloat16) * 1e3)
    assert torch.isfinite(out.logits.float()).all()
    assert F.softmax(out.logits.float(), -1).sum(-1).allclose(torch.ones(2, 5), atol=1e-3)


# ----------------------------------------------------------------------------- config and presets


def test_presets_are_the_papers_fusion_variants():
    from gatelab.multimodal.models import GatedVLDecoderConfig, ImageEncoder

    tiny = dict(vocab_size=30, d_model=8, num_heads=2, num_layers=1)
    for name, preset, fusion, mode in (
        ("vl-gated-decoder", "gate-scalar", "gate", "scalar"),
        ("vl-gated-decoder", "gate-vector", "gate", "vector"),
        ("vl-nogate-decoder", "no-gate", "add", "scalar"),
        ("vl-visual-decoder", "always-visual", "visual", "scalar"),
    ):
        m = create_model(name, preset=preset, **tiny)
        assert (
            type(m).__name__
            == {"gate": "VLGatedDecoder", "add": "VLNoGateDecoder", "visual": "VLVisualDecoder"}[fusion]
        )
        assert m.config.to_dict() == GatedVLDecoderConfig.from_preset(preset, **tiny).to_dict()
        assert type(m).config_class.presets[preset] == GatedVLDecoderConfig.presets[preset]
        assert (m.fusion, m.gate_mode) == (fusion, mode)
        assert (m.layers[0].gate is not None) == (fusion == "gate")
        if fusion == "gate":
            assert m.layers[0].gate.mode == mode
    # a config instance is taken as it is
    cfg = GatedVLDecoderConfig(**tiny, hidden_dim=12, num_image_layers=2)
    m = GatedVLDecoder(cfg)
    assert m.config is cfg and m.layers[0].ffn.fc2.in_features == 12  # hidden_dim: the SwiGLU width
    enc = ImageEncoder(cfg.image_encoder())  # the decoder's image side alone: same keys, same shapes
    assert len(enc.blocks) == 2 and enc.blocks[0].mlp.fc2.in_features == 12
    assert {k: v.shape for k, v in enc.state_dict().items()} == {
        k: v.shape for k, v in m.image_encoder.state_dict().items()
    }
    # each entry lists only the presets of its fusion (so the static schema rejects the others)
    with pytest.raises(
        ConfigError,
        match=r"^VLGatedDecoderConfig: unknown preset 'no-gate'.*presets: gate-scalar, gate-vector$",
    ):
        create_model("vl-gated-decoder", preset="no-gate", **tiny)
    from gatelab.multimodal.models import VLGatedDecoder

    with pytest.raises(ConfigError, match="expected a VLGatedDecoderConfig"):
        VLGatedDecoder(cfg)  # the generic config: GatedVLDecoder(cfg) builds it


@pytest.mark.parametrize(
    ("name", "fusion"),
    [("vl-gated-decoder", "gate"), ("vl-nogate-decoder", "add"), ("vl-visual-decoder", "visual")],
)
def test_registry_classes_match_the_generic_decoder(name, fusion):
    """The entries' classes are GatedVLDecoder with a fixed-fusion config: same state dict (keys,
    shapes, random init for one seed) and the same outputs."""
    tiny = dict(vocab_size=30, d_model=8, num_heads=2, num_layers=2, image_dim=6, max_len=12, dropout=0.0)
    torch.manual_seed(0)
    fixed = create_model(name, **tiny).eval()
    torch.manual_seed(0)
    plain = GatedVLDecoder(fusion=fusion, **tiny).eval()
    assert isinstance(fixed, GatedVLDecoder) and fixed.fusion == fusion
    a, b = fixed.state_dict(), plain.state_dict()
    assert list(a) == list(b)
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert torch.equal(a[k], b[k]), k
    ids = torch.randint(3, 30, (2, 5))
    image = torch.randn(2, 3, 6)
    with torch.no_grad():
        x, y = fixed(ids, image), plain(ids, image)
    assert torch.equal(x.logits, y.logits) and torch.equal(x.contrastive_logits, y.contrastive_logits)
    plain.load_state_dict(fixed.state_dict())  # checkpoints load across the two


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"n_heads": 2}, ["'n_heads'", "did you mean 'num_heads'"]),  # the old names
        ({"ffn_hidden": 32}, ["'ffn_hidden'", "valid keys"]),
        ({"d_model": 10, "num_heads": 4}, ["d_model=10", "divisible by num_heads=4"]),
        ({"num_layers": 0}, ["VLGatedDecoderConfig.num_layers=0", ">= 1"]),
        ({"dropout": 1.5}, ["VLGatedDecoderConfig.dropout=1.5", "[0, 1)"]),
        ({"gate_init": 1.0}, ["VLGatedDecoderConfig.gate_init=1.0", "(0, 1)"]),
        ({"attn_gate": "token"}, ["VLGatedDecoderConfig.attn_gate='token'", "headwise"]),
        ({"tau_init": 0}, ["VLGatedDecoderConfig.tau_init=0", "> 0"]),
        ({"preset": "gated"}, ["unknown preset 'gated'", "gate-scalar"]),
    ],
)
def test_config_errors_are_one_line(kwargs, fragments):
    with pytest.raises(ConfigError) as e:
        create_model("vl-gated-decoder", vocab_size=30, **kwargs)
    assert "\n" not in str(e.value)
    for f in fragments:
        assert f in str(e.value), str(e.value)


def test_vocab_size_is_required():
    with pytest.raises(ConfigError, match="vocab_size"):
        GatedVLDecoder(d_model=8, num_heads=2)
