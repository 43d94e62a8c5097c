"""MAXIM: official parameter counts, any input size, tiling, blocks against hand-written math."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gatelab.core import capture_gates
from gatelab.core.config import ConfigError
from gatelab.vision.models.dncnn import DnCNN
from gatelab.vision.models.maxim import (
    _TINY,
    MAXIM_OFFICIAL_PARAMS,
    RCAB,
    SAM,
    ChannelAttention,
    Maxim,
    MaximConfig,
    UpSampleRatio,
    _nhwc_resize,
    pad_to_multiple,
    tiled_forward,
)

PRESETS = MaximConfig.presets


def _count(**cfg) -> int:
    with torch.device("meta"):
        model = Maxim(**cfg)
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- parameter counts


@pytest.mark.parametrize("variant", sorted(PRESETS))
def test_official_code_parameter_counts(variant):
    """maxim/models/maxim.py states e.g. "S-2 params: 13.35383 M", "S-3: 20.599145 M": those are the
    MAXIM class defaults (num_supervision_scales=1, 3 outputs); ours match to the parameter."""
    assert _count(**PRESETS[variant], num_supervision_scales=1) == MAXIM_OFFICIAL_PARAMS[variant]


def test_released_configuration_parameter_counts():
    """run_eval.py builds every released model with num_supervision_scales=3 (multi-scale
    inputs/outputs): 14.18M (2S) and 22.21M (3S), the README's "14.1M" and "22.2M"."""
    assert _count(**PRESETS["S-2"]) == 14_176_178
    assert _count(**PRESETS["S-3"]) == 22_212_795
    assert _count(**PRESETS["S-1"]) == 6_139_561
    # lrelu_slope, dropout and the head init do not change the count
    assert _count(**PRESETS["S-2"], lrelu_slope=0.0, zero_init_heads=True) == 14_176_178


def test_registered_variants_build_at_official_size():
    from gatelab import create_model

    m = create_model("maxim-3s")
    assert sum(p.numel() for p in m.parameters()) == 22_212_795
    assert m.config.features == 32 and m.config.num_stages == 3 and m.size_multiple == 64
    m.eval()
    with torch.no_grad():
        out = m(torch.rand(1, 3, 64, 64))
    assert [[tuple(o.shape[-2:]) for o in row] for row in out] == [[(16, 16), (32, 32), (64, 64)]] * 3
    assert all(torch.isfinite(o).all() for row in out for o in row)


def test_size_multiple():
    assert MaximConfig().size_multiple == 64  # 16-blocks at H/2, 8-blocks in the bottleneck at H/8
    assert MaximConfig(**_TINY).size_multiple == 8
    cfg = MaximConfig(
        depth=2,
        num_supervision_scales=2,
        block_size_hr=(4, 4),
        grid_size_hr=(2, 2),
        block_size_lr=3,
        grid_size_lr=3,
        high_res_stages=1,
    )
    assert cfg.size_multiple == 12  # lcm(4 at H, 2*3 at H/2, 4*3 in the bottleneck at H/4)


# ----------------------------------------------------------------------------- any input size


@pytest.mark.parametrize("hw", [(13, 7), (8, 8), (17, 30), (1, 1)])
def test_any_input_size_round_trips(hw):
    m = Maxim(**_TINY).eval()
    x = torch.rand(2, 3, *hw)
    with torch.no_grad():
        out = m(x)
        xp, (top, _, left, _) = pad_to_multiple(x, m.size_multiple)
        ref = m(xp)
    assert out[-1][-1].shape == x.shape
    assert out[-1][0].shape[-2:] == (math.ceil(hw[0] / 2), math.ceil(hw[1] / 2))
    # the crop is exactly the padded input's output at the original pixels
    h, w = hw
    torch.testing.assert_close(out[-1][-1], ref[-1][-1][..., top : top + h, left : left + w])


def test_padding_is_symmetric_reflect():
    x = torch.arange(2 * 5, dtype=torch.float32).view(1, 1, 2, 5)
    xp, pads = pad_to_multiple(x, 4)
    assert pads == (1, 1, 1, 2) and xp.shape == (1, 1, 4, 8)
    assert xp[0, 0, 1, 1:6].tolist() == x[0, 0, 0].tolist()
    assert xp[0, 0, 0, 1:6].tolist() == x[0, 0, 1].tolist()  # reflected row
    tiny = torch.rand(1, 3, 1, 1)
    assert torch.equal(pad_to_multiple(tiny, 8)[0], tiny.expand(1, 3, 8, 8))  # too small: replicate


def test_zero_init_heads_start_as_identity():
    m = Maxim(**_TINY, zero_init_heads=True)
    x = torch.rand(1, 3, 16, 16)
    out = m(x)
    torch.testing.assert_close(out[-1][-1], x)
    torch.testing.assert_close(out[0][0], x[..., 1::2, 1::2])  # nearest (JAX): odd pixels


def test_presets_and_registered_sizes():
    from gatelab import create_model

    assert sorted(PRESETS) == sorted(MAXIM_OFFICIAL_PARAMS)
    for k in (1, 2, 3):  # the registry entries name their preset; keys given next to it override it
        with torch.device("meta"):
            m = create_model(f"maxim-{k}s", dropout=0.1)
        assert m.config == MaximConfig.from_preset(f"S-{k}", dropout=0.1)
    with torch.device("meta"):
        m = create_model("maxim", preset="M-1", num_supervision_scales=1)
    assert sum(p.numel() for p in m.parameters()) == MAXIM_OFFICIAL_PARAMS["M-1"]
    assert MaximConfig() == MaximConfig.from_preset("S-2")  # the defaults are MAXIM-2S
    cfg = MaximConfig.from_preset("S-1", block_size_lr=4, grid_size_hr=[8, 4])  # int: a square; YAML list
    assert (cfg.block_size_lr, cfg.grid_size_hr) == ((4, 4), (8, 4))
    assert Maxim(cfg).config is cfg


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"featurs": 8}, ["'featurs'", "did you mean 'features'"]),
        ({"dropout_rate": 0.1}, ["'dropout_rate'", "did you mean 'dropout'"]),  # the official names
        ({"use_bias": False}, ["'use_bias'", "did you mean 'bias'"]),
        ({"dropout": 1.5}, ["MaximConfig.dropout=1.5", "[0, 1)"]),
        ({"features": 0}, ["MaximConfig.features=0", ">= 1"]),
        ({"bias": "yes"}, ["MaximConfig.bias='yes'", "boolean"]),
        ({"block_size_hr": (4, 0)}, ["MaximConfig.block_size_hr=(4, 0)", "pair [h, w]"]),
        ({"depth": 2, "num_supervision_scales": 3}, ["num_supervision_scales=3", "depth=2"]),
        ({"preset": "S-4"}, ["unknown preset 'S-4'", "S-1"]),
    ],
)
def test_config_errors_are_one_line(kwargs, fragments):
    from gatelab import create_model

    with pytest.raises(ConfigError) as e:
        create_model("maxim", **kwargs)
    assert "\n" not in str(e.value)
    for f in fragments:
        assert f in str(e.value), str(e.value)


def test_config_errors():
    with pytest.raises(ConfigError, match="did you mean 'features'"):
        Maxim(featurs=8)
    with pytest.raises(ConfigError, match="num_supervision_scales"):
        Maxim(depth=2, num_supervision_scales=3)
    with pytest.raises(ValueError, match=r"input must be \[B, C=3"):
        Maxim(**_TINY)(torch.rand(1, 1, 8, 8))


def test_gates_are_captured():
    m = Maxim(**_TINY)
    with capture_gates(m) as gates:
        m(torch.rand(1, 3, 8, 8))
    names = list(gates)
    for part in ("mab.0.grid.gating", "mab.0.block.gating", ":gate_x", "channel_attention.se", "heads.0"):
        assert any(part in n for n in names), (part, names[:20])
    sam = next(n for n in names if n.startswith("stages.0.heads"))
    assert gates[sam].min() >= 0 and gates[sam].max() <= 1


# ----------------------------------------------------------------------------- blocks vs hand math


def _ln(t: torch.Tensor, ln: torch.nn.LayerNorm) -> torch.Tensor:
    mu = t.mean(-1, keepdim=True)
    var = ((t - mu) ** 2).mean(-1, keepdim=True)
    return (t - mu) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias


def _conv_same(t: torch.Tensor, conv: torch.nn.Conv2d) -> torch.Tensor:
    """3x3 SAME conv of NHWC ``t`` with explicit loops over the kernel taps."""
    b, h, w, _ = t.shape
    k = conv.kernel_size[0]
    p = F.pad(t, (0, 0, k // 2, k // 2, k // 2, k // 2))
    out = conv.bias.view(1, 1, 1, -1).expand(b, h, w, -1).clone()
    for dy in range(k):
        for dx in range(k):
            out = out + p[:, dy : dy + h, dx : dx + w, :] @ conv.weight[:, :, dy, dx].T
    return out


def _randomise(m: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.2 * torch.randn_like(p))


def test_channel_attention_is_official_calayer():
    ca = ChannelAttention(8, 4)
    _randomise(ca)
    x = torch.randn(2, 5, 6, 8)
    fc1, fc2 = ca.se.fc1, ca.se.fc2
    assert fc1.weight.shape == (2, 8)  # features // reduction
    z = x.mean(dim=(1, 2))
    s = torch.sigmoid(torch.relu(z @ fc1.weight.T + fc1.bias) @ fc2.weight.T + fc2.bias)
    torch.testing.assert_close(ca(x), x * s[:, None, None, :])


def test_rcab_matches_hand_written():
    blk = RCAB(4, 2, lrelu_slope=0.3)
    _randomise(blk)
    x = torch.randn(2, 5, 6, 4)
    y = _conv_same(_ln(x, blk.norm), blk.conv1)
    y = torch.where(y > 0, y, 0.3 * y)
    y = _conv_same(y, blk.conv2)
    torch.testing.assert_close(blk(x), blk.channel_attention(y) + x)


def test_sam_matches_hand_written():
    sam = SAM(4, 3, residual=True)
    _randomise(sam)
    x, img = torch.randn(1, 6, 5, 4), torch.rand(1, 6, 5, 3)
    feat, out = sam(x, img)
    ref_out = _conv_same(x, sam.conv_out) + img
    ref_feat = _conv_same(x, sam.conv_feat) * torch.sigmoid(_conv_same(ref_out, sam.conv_gate)) + x
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(feat, ref_feat)


def test_resizes_follow_jax_image_resize():
    # nearest: jax picks source floor((o + 0.5) * in / out)
    x = torch.arange(8.0).view(1, 8, 1, 1).expand(1, 8, 8, 1)
    y = _nhwc_resize(x, (4, 4), "nearest")
    assert y[0, :, 0, 0].tolist() == [1.0, 3.0, 5.0, 7.0]
    # bilinear shrink by 2 with antialiasing: triangle kernel of radius 2 (weights 1,3,3,1)/8,
    # renormalised at the border (taps outside the image dropped), as jax's scale_and_translate
    # (PyTorch's antialiased path mishandles a width-1 axis; MAXIM's feature maps are never 1 wide)
    v = torch.tensor([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
    x = v.view(1, 6, 1, 1).expand(1, 6, 2, 1)
    got = _nhwc_resize(x, (3, 2), "bilinear")[0, :, 1, 0]
    ref = torch.tensor(
        [(3 * 1 + 3 * 2 + 1 * 4) / 7, (1 * 2 + 3 * 4 + 3 * 8 + 1 * 16) / 8, (1 * 8 + 3 * 16 + 3 * 32) / 7]
    )
    torch.testing.assert_close(got, ref)
    # bilinear upsampling by 2: half-pixel centres, the border pixel repeated
    up = _nhwc_resize(v[:3].view(1, 3, 1, 1), (6, 1), "bilinear")[0, :, 0, 0]
    torch.testing.assert_close(up, torch.tensor([1.0, 1.25, 1.75, 2.5, 3.5, 4.0]))
    # UpSampleRatio = resize then a 1x1 conv
    usr = UpSampleRatio(1, 2, 0.5)
    xr = torch.randn(1, 4, 4, 1)
    torch.testing.assert_close(usr(xr), usr.proj(_nhwc_resize(xr, (2, 2), "bilinear")))


# ----------------------------------------------------------------------------- tiled inference


def test_tiling_equals_untiled_within_receptive_field():
    """DnCNN with 5 layers has a receptive radius of 5 pixels: with margin >= 5 every blended pixel is
    exact, so tiled == whole-image inference up to float rounding."""
    net = DnCNN(in_channels=3, features=8, num_layers=5).eval()
    _randomise(net)
    x = torch.rand(1, 3, 45, 38)
    with torch.no_grad():
        whole = net(x)
        tiled = tiled_forward(net, x, tile=20, overlap=12, margin=5)
        loose = tiled_forward(net, x, tile=20, overlap=4, margin=0)
    torch.testing.assert_close(tiled, whole, rtol=1e-5, atol=1e-5)
    assert (loose - whole).abs().max() > 1e-3  # too little overlap: the cuts show


def test_tiling_maxim():
    m = Maxim(**_TINY).eval()
    x = torch.rand(1, 3, 24, 20)
    with torch.no_grad():
        whole = m.restore(x)
        one = tiled_forward(m.restore, x, tile=32, overlap=8)
        tiled = tiled_forward(m.restore, x, tile=16, overlap=8)
    torch.testing.assert_close(one, whole)  # a single tile is the whole image
    assert tiled.shape == x.shape and torch.isfinite(tiled).all()
    with pytest.raises(ValueError, match="overlap < tile"):
        tiled_forward(m.restore, x, tile=8, overlap=8)
    with pytest.raises(ValueError, match="margin"):
        tiled_forward(m.restore, x, tile=16, overlap=8, margin=4)


# ----------------------------------------------------------------------------- stated counts = built counts

_COUNT = r"(\d{1,3}(?:,\d{3})+)"  # a count written with thousands separators: 14,176,178


def _stated_counts(text: str) -> list[int]:
    import re

    return [int(m.replace(",", "")) for m in re.findall(_COUNT + r" parameters", text)]


@pytest.mark.parametrize("name", ["maxim", "maxim-1s", "maxim-2s", "maxim-3s", "dncnn"])
def test_registry_descriptions_state_the_built_parameter_count(name):
    """Issue 19: each registered MAXIM variant's description states the count the model really
    has (built on the meta device with the entry's preset and defaults; no weights allocated)."""
    from gatelab import create_model
    from gatelab.core.registry import model_info

    stated = _stated_counts(model_info(name).description)
    assert len(stated) == 1, f"{name}: description must state one 'N,NNN,NNN parameters': {model_info(name).description!r}"
    with torch.device("meta"):
        model = create_model(name)
    assert sum(p.numel() for p in model.parameters()) == stated[0]


def test_module_docstring_table_states_the_built_parameter_counts():
    """The parameter table of ``gatelab.vision.models.maxim`` (preset, as built, with one
    supervision scale): every preset appears once and both counts equal the built models'."""
    import re

    import gatelab.vision.models.maxim as mod

    rows = re.findall(r"^(\S-\d)\s+" + _COUNT + r"\s+" + _COUNT + r"\s*$", mod.__doc__, flags=re.M)
    assert sorted(r[0] for r in rows) == sorted(PRESETS)
    for preset, built, one_scale in rows:
        assert _count(**PRESETS[preset]) == int(built.replace(",", "")), preset
        assert _count(**PRESETS[preset], num_supervision_scales=1) == int(one_scale.replace(",", "")), preset
        assert MAXIM_OFFICIAL_PARAMS[preset] == int(one_scale.replace(",", ""))
    # the preset comments in the config state the built (3-scale) counts too
    src = mod.__loader__.get_source(mod.__name__)
    for preset, built, _ in rows:
        line = re.search(rf'"{preset}": dict\(.*#\s*{_COUNT}', src)
        assert line is not None and line.group(1) == built, preset
