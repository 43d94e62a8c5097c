"""Any timm backbone as the VL image encoder (issue 16 point 7): ViT tokens, CNN and NHWC feature maps, from scratch."""

from __future__ import annotations

import pytest
import torch

from gatelab.core.config import ConfigError
from gatelab.core.registry import create_model
from gatelab.multimodal.models.vl_decoder import GatedVLDecoder, ImageEncoder

# tiny versions of three timm families (constructor keywords of the timm model classes)
VIT = ("vit_tiny_patch16_224", {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 1, "num_heads": 2})
RESNET = ("resnet10t", {"channels": [8, 16, 16, 24], "stem_width": 8})
SWIN = (
    "swin_tiny_patch4_window7_224",
    {"img_size": 32, "embed_dim": 16, "depths": [1, 1], "num_heads": [1, 2], "window_size": 4},
)


def _encoder(spec, **kw) -> ImageEncoder:
    torch.manual_seed(0)
    return ImageEncoder(d_model=16, num_heads=2, backbone=spec[0], backbone_kwargs=spec[1], **kw).eval()


def test_vit_patch_tokens_and_prefix_tokens():
    name, kw = VIT
    keep = _encoder((name, {**kw, "reg_tokens": 2}))
    drop = _encoder((name, {**kw, "reg_tokens": 2}), prefix_tokens="drop")
    assert keep.backbone.num_prefix_tokens == 3  # class token + 2 register tokens
    x = torch.randn(2, 3, 32, 32)
    raw = keep.backbone.forward_features(x)
    assert raw.shape == (2, 3 + 16, 32)  # (32 / 8)^2 = 16 patches
    assert torch.equal(keep.tokens(x), raw)
    drop.load_state_dict(keep.state_dict())
    assert torch.equal(drop.tokens(x), raw[:, 3:])  # exactly the patch tokens
    assert keep(x).shape == (2, 19, 16) and drop(x).shape == (2, 16, 16)


def test_cnn_feature_map_flattened_row_major():
    enc = _encoder(RESNET)
    x = torch.randn(2, 3, 64, 64)
    fmap = enc.backbone.forward_features(x)
    assert fmap.shape == (2, 24, 2, 2)  # stride 32
    tok = enc.tokens(x)
    assert tok.shape == (2, 4, 24) and enc.image_dim == 24
    assert torch.equal(tok[:, 1], fmap[:, :, 0, 1]) and torch.equal(tok[:, 2], fmap[:, :, 1, 0])
    assert _encoder(RESNET, prefix_tokens="drop").tokens(x).shape == (2, 4, 24)  # CNNs have no prefix


def test_nhwc_backbone_uses_timm_output_fmt():
    enc = _encoder(SWIN)
    assert enc.backbone.output_fmt == "NHWC"
    x = torch.randn(2, 3, 32, 32)
    fmap = enc.backbone.forward_features(x)
    assert fmap.shape == (2, 4, 4, 32)  # [B, h, w, C]
    tok = enc.tokens(x)
    assert tok.shape == (2, 16, 32)
    assert torch.equal(tok[:, 5], fmap[:, 1, 1]) and torch.equal(tok[:, 7], fmap[:, 1, 3])


@pytest.mark.parametrize("spec", [VIT, RESNET, SWIN], ids=["vit", "resnet", "swin"])
def test_full_decoder_trains_backbone_from_scratch(spec):
    torch.manual_seed(0)
    m = create_model(
        "vl-gated-decoder",
        vocab_size=30,
        d_model=16,
        num_layers=1,
        num_heads=2,
        max_image_tokens=32,
        image_backbone=spec[0],
        image_backbone_kwargs=spec[1],
        image_prefix_tokens="drop",
        dropout=0.0,
    )
    assert m.image_encoder.backbone is not None
    ids = torch.randint(3, 30, (2, 6))
    image = torch.randn(2, 3, 32, 32)
    out = m(ids, image)
    assert out.logits.shape == (2, 6, 30) and torch.isfinite(out.logits).all()
    loss = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, 30), ids[:, 1:].reshape(-1))
    loss.backward()
    grads = [p.grad for p in m.image_encoder.backbone.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    # the image reaches the text: other pixels, other logits
    assert not torch.allclose(m(ids, image).logits, m(ids, image.flip(-1) + 1).logits)
    # the config round-trips (a checkpoint's config rebuilds the same architecture)
    cfg = type(m.config).build(m.config.to_dict())
    assert cfg == m.config and cfg.image_backbone_kwargs == spec[1]


def test_backbone_config_errors_name_the_field():
    with pytest.raises(ConfigError, match=r"backbone='no_such_net': not a timm model name"):
        ImageEncoder(backbone="no_such_net")
    with pytest.raises(ConfigError, match=r"backbone_kwargs: pretrained may not be set"):
        ImageEncoder(backbone="resnet10t", backbone_kwargs={"pretrained": True})
    with pytest.raises(ConfigError, match=r"backbone_kwargs: in_chans may not be set.*in_channels"):
        ImageEncoder(backbone="resnet10t", backbone_kwargs={"in_chans": 1})
    with pytest.raises(ConfigError, match=r"backbone_kwargs=\{'bogus': 1\}: cannot create timm model 'resnet10t'"):
        ImageEncoder(backbone="resnet10t", backbone_kwargs={"bogus": 1})
    with pytest.raises(ConfigError, match=r"backbone_kwargs=\{'img_size': 32\}: given without a backbone"):
        ImageEncoder(backbone_kwargs={"img_size": 32})
    with pytest.raises(ConfigError, match=r"image_prefix_tokens='first'"):
        GatedVLDecoder(vocab_size=30, d_model=16, num_heads=2, image_prefix_tokens="first")
    enc = _encoder(VIT, max_tokens=8)
    with pytest.raises(ValueError, match=r"17 image tokens > max_image_tokens=8 \(input \(1, 3, 32, 32\)"):
        enc(torch.randn(1, 3, 32, 32))


def test_in_channels_reach_the_backbone():
    enc = ImageEncoder(d_model=16, num_heads=2, backbone=RESNET[0], backbone_kwargs=RESNET[1], in_channels=1)
    assert enc.tokens(torch.randn(1, 1, 64, 64)).shape == (1, 4, 24)
