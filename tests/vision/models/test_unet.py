"""U-Net / Attention U-Net: parameter counts of the paper's configuration, a hand-written forward
following the official code's layer list, attention maps (shape, range, gate agreement), errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tolerances import assert_close

from gatelab import create_model
from gatelab.core import ConfigError, capture_gates
from gatelab.vision.models.unet import AttentionUNet, UNet, unet_param_count

# --------------------------------------------------------------------------- parameter counts


def _conv(cin: int, cout: int, k: int, nd: int, bias: bool = True) -> int:
    return cin * cout * k**nd + (cout if bias else 0)


def _bn(c: int) -> int:
    return 2 * c  # weight + bias (running statistics are buffers)


def _official_count(nd: int, in_ch: int, n_cls: int, f: list[int], attention: bool, gates: int = 2) -> int:
    """Parameters of unet_CT_dsv_3D / unet_CT_multi_att_dsv_3D, layer by layer from the official code."""

    def unet_conv(cin, cout):  # UnetConv3: 2 x (conv3 + BN + ReLU)
        return _conv(cin, cout, 3, nd) + _bn(cout) + _conv(cout, cout, 3, nd) + _bn(cout)

    total = unet_conv(in_ch, f[0]) + unet_conv(f[0], f[1]) + unet_conv(f[1], f[2]) + unet_conv(f[2], f[3])
    total += unet_conv(f[3], f[4])  # center
    # up_concat4..1: UnetUp3_CT(in, out) = UnetConv3(in + out, out) after a parameter-free upsample
    total += sum(unet_conv(f[i + 1] + f[i], f[i]) for i in range(4))
    # deep supervision: dsv4/3/2 (conv1 + upsample), dsv1 conv1, final conv1 over 4 * num_classes
    total += sum(_conv(f[i], n_cls, 1, nd) for i in range(4)) + _conv(4 * n_cls, n_cls, 1, nd)
    if attention:
        total += _conv(f[4], f[4], 1, nd) + _bn(f[4])  # UnetGridGatingSignal3
        for i in (1, 2, 3):  # attentionblock2/3/4: MultiAttentionBlock(in=f[i], gate=f[i+1], inter=f[i])
            c, g = f[i], f[i + 1]
            grid_gate = (
                _conv(c, c, 2, nd, bias=False)  # theta, kernel = stride = 2
                + _conv(g, c, 1, nd)  # phi
                + _conv(c, 1, 1, nd)  # psi
                + _conv(c, c, 1, nd)
                + _bn(c)  # W
            )
            total += gates * grid_gate + _conv(gates * c, c, 1, nd) + _bn(c)  # combine_gates
    return total


def test_paper_configuration_parameter_counts():
    """The paper's CT networks: 3D, feature_scale 4 (filters 16..256), 1 input channel, 2 classes."""
    f = [16, 32, 64, 128, 256]
    unet = UNet(spatial_dims=3, in_channels=1, num_classes=2, feature_scale=4, attention=False)
    att = UNet(spatial_dims=3, in_channels=1, num_classes=2, feature_scale=4, attention=True)
    assert unet.widths == tuple(f)
    assert unet_param_count(unet) == _official_count(3, 1, 2, f, attention=False) == 5_887_466
    assert unet_param_count(att) == _official_count(3, 1, 2, f, attention=True) == 6_472_784
    # the registered name builds the same network
    assert unet_param_count(create_model("attention-unet-3d", feature_scale=4)) == 6_472_784


@pytest.mark.parametrize(("fs", "gates"), [(8, 2), (8, 1), (16, 2)])
def test_parameter_counts_2d(fs, gates):
    f = [int(c / fs) for c in (64, 128, 256, 512, 1024)]
    for att in (False, True):
        m = UNet(
            spatial_dims=2,
            in_channels=3,
            num_classes=2,
            feature_scale=fs,
            attention=att,
            gates_per_level=gates,
        )
        assert unet_param_count(m) == _official_count(2, 3, 2, f, att, gates)


# --------------------------------------------------------------------------- hand-written forward


def _bn_eval(x, bn):
    shape = [1, -1] + [1] * (x.dim() - 2)
    return (x - bn.running_mean.view(shape)) / torch.sqrt(
        bn.running_var.view(shape) + bn.eps
    ) * bn.weight.view(shape) + bn.bias.view(shape)


def _conv_nd(x, conv, stride=1, padding=0):
    fn = F.conv2d if x.dim() == 4 else F.conv3d
    return fn(x, conv.weight, conv.bias, stride=stride, padding=padding)


def _mode(x):
    return "bilinear" if x.dim() == 4 else "trilinear"


def _unet_conv(x, block):  # block = [conv, bn, relu, conv, bn, relu]
    for j in (0, 3):
        x = torch.clamp(_bn_eval(_conv_nd(x, block[j], padding=1), block[j + 1]), min=0)
    return x


def _grid_gate(x, g, gate):
    """Official _GridAttentionBlockND._concatenation, eval-mode BN."""
    theta = _conv_nd(x, gate.theta, stride=2)
    phi = F.interpolate(_conv_nd(g, gate.phi), size=theta.shape[2:], mode=_mode(x), align_corners=False)
    q = _conv_nd(torch.clamp(theta + phi, min=0), gate.psi)
    a = F.interpolate(torch.sigmoid(q), size=x.shape[2:], mode=_mode(x), align_corners=False)
    return _bn_eval(_conv_nd(a * x, gate.W[0]), gate.W[1]), a


def _official_forward(m: UNet, x: torch.Tensor):
    """unet_CT_multi_att_dsv_3D.forward (and unet_CT_dsv_3D without gates), written from the official
    code with the module's weights: maxpool, UnetUp3_CT (upsample by 2, concat [skip, up], UnetConv3),
    UnetDsv3 (conv1 then upsample by 2^i), final conv over [dsv1, dsv2, ...]."""
    depth = m.depth
    skips, h = [], x
    for i in range(depth):
        h = _unet_conv(
            h if i == 0 else F.max_pool2d(h, 2) if x.dim() == 4 else F.max_pool3d(h, 2), m.encoder[i]
        )
        skips.append(h)
    pool = F.max_pool2d if x.dim() == 4 else F.max_pool3d
    center = _unet_conv(pool(h, 2), m.center)
    maps = {}
    if m.attention:
        gating = torch.clamp(_bn_eval(_conv_nd(center, m.gating[0]), m.gating[1]), min=0)
    h, ups = center, [None] * depth
    for i in reversed(range(depth)):
        skip = skips[i]
        if m.attention and i >= 1:
            blk = m.gates[f"att{i + 1}"]
            g = gating if i == depth - 1 else h
            outs = [_grid_gate(skip, g, gate) for gate in blk.gates]
            y = torch.cat([o[0] for o in outs], 1)
            skip = torch.clamp(_bn_eval(_conv_nd(y, blk.combine[0]), blk.combine[1]), min=0)
            maps[f"att{i + 1}"] = torch.cat([o[1] for o in outs], 1)
        up = F.interpolate(h, scale_factor=2, mode=_mode(x), align_corners=False)
        h = _unet_conv(torch.cat([skip, up], 1), m.decoder[i])
        ups[i] = h
    dsv = [_conv_nd(ups[0], m.dsv[0])]
    for i in range(1, depth):
        dsv.append(
            F.interpolate(_conv_nd(ups[i], m.dsv[i]), scale_factor=2**i, mode=_mode(x), align_corners=False)
        )
    return _conv_nd(torch.cat(dsv, 1), m.final), maps


def _randomise_norms(m):
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                mod.running_mean.normal_(0, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
                mod.weight.normal_(1, 0.2)
                mod.bias.normal_(0, 0.2)


@pytest.mark.parametrize(("nd", "size"), [(2, (16, 24)), (3, (8, 8, 16))])
@pytest.mark.parametrize("attention", [False, True])
def test_matches_official_forward(nd, size, attention):
    torch.manual_seed(0)
    m = (
        UNet(
            spatial_dims=nd,
            in_channels=2,
            num_classes=3,
            filters=(8, 16, 32, 64),
            feature_scale=2,
            attention=attention,
        )
        .double()
        .eval()
    )
    _randomise_norms(m)
    x = torch.randn(2, 2, *size, dtype=torch.float64)
    with torch.no_grad():
        if attention:
            logits, maps = m(x, return_attention=True)
        else:
            logits, maps = m(x), {}
        ref_logits, ref_maps = _official_forward(m, x)
    assert_close(logits, ref_logits, kind="reduction")
    assert maps.keys() == ref_maps.keys()
    for k in maps:
        assert_close(maps[k], ref_maps[k], kind="reduction")


# --------------------------------------------------------------------------- attention maps


@pytest.mark.parametrize(("nd", "size"), [(2, (48, 40)), (3, (32, 16, 24))])
@pytest.mark.parametrize("gates", [1, 2])
def test_return_attention_shapes_and_range(nd, size, gates):
    m = AttentionUNet(
        spatial_dims=nd, in_channels=1, num_classes=2, feature_scale=16, gates_per_level=gates
    ).train()
    x = torch.randn(2, 1, *size)
    with capture_gates(m) as captured:
        logits, maps = m(x, return_attention=True)
    assert logits.shape == (2, 2, *size)
    assert list(maps) == ["att2", "att3", "att4"]  # every gated skip (levels 1..3), official names
    for i, name in ((1, "att2"), (2, "att3"), (3, "att4")):
        a = maps[name].detach()
        assert a.shape == (2, gates, *(s // 2**i for s in size)), name
        assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
        assert a.std() > 0  # not a constant map
        for k in range(gates):  # the returned map is each core gate's own alpha
            torch.testing.assert_close(a[:, k : k + 1], captured[f"gates.{name}.gates.{k}"])
    assert len(captured) == 3 * gates
    # without return_attention: the logits alone, same values
    torch.testing.assert_close(m.eval()(x), m(x, return_attention=True)[0])


def test_attention_maps_receive_gradients_and_unet_has_none():
    m = AttentionUNet(spatial_dims=2, in_channels=1, num_classes=2, feature_scale=16)
    logits, _ = m(torch.randn(2, 1, 32, 32), return_attention=True)
    logits.mean().backward()
    for gate in m.gates.values():
        assert gate.gates[0].psi.weight.grad is not None and gate.gates[0].psi.weight.grad.abs().sum() > 0
    u = UNet(spatial_dims=2, in_channels=1, num_classes=2, feature_scale=16)
    out = u(torch.randn(1, 1, 32, 32), return_attention=True)
    assert out[1] == {} and not hasattr(u, "gates")
    # the U-Net baseline round-trips through its state dict like the registered models
    u.eval()
    fresh = UNet(spatial_dims=2, in_channels=1, num_classes=2, feature_scale=16).eval()
    fresh.load_state_dict(u.state_dict())
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), u(x))


def test_odd_sizes_and_options():
    m = UNet(
        spatial_dims=2,
        in_channels=1,
        num_classes=4,
        feature_scale=16,
        attention=True,
        deep_supervision=False,
        norm="instance",
        act="silu",
    )
    y, maps = m(torch.randn(1, 1, 37, 45), return_attention=True)
    assert y.shape == (1, 4, 37, 45)
    assert maps["att2"].shape == (1, 2, 18, 22)
    assert not hasattr(m, "dsv")


def test_errors():
    m = UNet(spatial_dims=2, in_channels=1, num_classes=2, feature_scale=16)
    with pytest.raises(ValueError, match="input must be"):
        m(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match=">= 2\\^depth = 16"):
        m(torch.randn(1, 1, 8, 32))
    with pytest.raises(ValueError, match="spatial_dims"):
        UNet(spatial_dims=1, in_channels=1, num_classes=2)
    with pytest.raises(ValueError, match="every width must be >= 1"):
        UNet(spatial_dims=2, in_channels=1, num_classes=2, feature_scale=128)
    with pytest.raises(ConfigError, match="unknown config key 'feature_scael'"):
        create_model("attention-unet-2d", feature_scael=4)
    with pytest.raises(ConfigError, match="spatial_dims"):
        create_model("attention-unet-2d", spatial_dims=3)


# --------------------------------------------------------------------------- config and presets


@pytest.mark.parametrize("preset", ["unet-2d", "unet-3d", "attention-unet-2d", "attention-unet-3d"])
def test_presets_build_the_papers_networks(preset):
    from gatelab.vision.models.unet import UNetConfig

    cfg = UNetConfig.from_preset(preset)
    nd = cfg.spatial_dims
    with torch.device("meta"):
        m = UNet(cfg)
    assert m.config is cfg and m.widths == (16, 32, 64, 128, 256) and m.attention == preset.startswith("att")
    assert unet_param_count(m) == _official_count(nd, 1, 2, [16, 32, 64, 128, 256], attention=m.attention)


def test_registry_entries_start_from_their_preset():
    from gatelab.vision.models.unet import (
        AttentionUNet2d,
        AttentionUNet2dConfig,
        AttentionUNet3d,
        AttentionUNet3dConfig,
        UNetConfig,
    )

    with torch.device("meta"):
        m = create_model("attention-unet-3d", attention=False, gates_per_level=1)
        base = create_model("attention-unet-2d", preset="unet-2d")  # another preset of the same rank
    assert type(m) is AttentionUNet3d and type(base) is AttentionUNet2d
    assert m.config == AttentionUNet3dConfig.from_preset(
        "attention-unet-3d", attention=False, gates_per_level=1
    )
    assert (
        m.config.to_dict()
        == UNetConfig.from_preset("attention-unet-3d", attention=False, gates_per_level=1).to_dict()
    )
    assert base.config.to_dict() == UNetConfig.from_preset("unet-2d").to_dict() and not base.attention
    # the fixed key: one line naming the key, the value and the allowed value
    for kwargs, bad in (
        ({"preset": "unet-3d"}, "unknown preset 'unet-3d'"),
        ({"spatial_dims": 3}, "spatial_dims=3: expected 2"),
    ):
        with pytest.raises(ConfigError) as e:
            create_model("attention-unet-2d", **kwargs)
        assert bad in str(e.value) and "AttentionUNet2dConfig" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=r"^AttentionUNet3dConfig\.spatial_dims=2: expected 3$"):
        AttentionUNet3d(spatial_dims=2)
    with pytest.raises(ConfigError, match="expected a AttentionUNet2dConfig"):
        AttentionUNet2d(UNetConfig())  # the generic config: UNet(config) builds it
    # each entry's presets are the base presets of its rank (the subclass repeats them as a
    # literal so that the static schema reader lists them)
    for cls, nd in ((AttentionUNet2dConfig, 2), (AttentionUNet3dConfig, 3)):
        assert cls.presets == {k: v for k, v in UNetConfig.presets.items() if v["spatial_dims"] == nd}
        assert cls().to_dict() == UNetConfig.from_preset(f"attention-unet-{nd}d").to_dict()
    a = AttentionUNet(spatial_dims=2, filters=[4, 8, 16], feature_scale=1)  # a YAML list is a tuple
    assert a.attention and a.config.filters == (4, 8, 16)
    with pytest.raises(ConfigError, match="attention=False"):
        AttentionUNet(UNetConfig())
    with pytest.raises(ConfigError, match="'attention'"):
        AttentionUNet(attention=True)


@pytest.mark.parametrize(
    ("name", "nd", "shape"), [("attention-unet-2d", 2, (12, 10)), ("attention-unet-3d", 3, (8, 8, 6))]
)
@pytest.mark.parametrize("attention", [True, False])
def test_registry_classes_match_unet(name, nd, shape, attention):
    """The entries' classes are UNet with a fixed-rank config: same state dict (keys, shapes,
    random init for one seed) and the same outputs."""
    kw = dict(in_channels=1, num_classes=2, filters=(4, 8, 16), feature_scale=1, attention=attention)
    torch.manual_seed(0)
    fixed = create_model(name, **kw).eval()
    torch.manual_seed(0)
    plain = UNet(spatial_dims=nd, **kw).eval()
    assert isinstance(fixed, UNet) and fixed.config.spatial_dims == nd
    a, b = fixed.state_dict(), plain.state_dict()
    assert list(a) == list(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    x = torch.randn(2, 1, *shape)
    with torch.no_grad():
        assert torch.equal(fixed(x), plain(x))
    plain.load_state_dict(fixed.state_dict())  # checkpoints load across the two


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"spatial_dims": 1}, ["AttentionUNet2dConfig.spatial_dims=1", "expected 2"]),
        ({"n_classes": 3}, ["'n_classes'", "did you mean 'num_classes'"]),
        ({"num_classes": 0}, ["AttentionUNet2dConfig.num_classes=0", ">= 1"]),
        ({"filters": [64]}, ["AttentionUNet2dConfig.filters=[64]", "at least 2 levels"]),
        ({"kernel_size": 4}, ["AttentionUNet2dConfig.kernel_size=4", "odd"]),
        ({"norm": "layer"}, ["AttentionUNet2dConfig.norm='layer'", "batch"]),
        ({"upsample_mode": "bicubic"}, ["AttentionUNet2dConfig.upsample_mode='bicubic'", "nearest"]),
        (
            {"upsample_mode": "trilinear"},
            ["AttentionUNet2dConfig.upsample_mode='trilinear'", "spatial_dims=3"],
        ),
        ({"feature_scale": -1}, ["AttentionUNet2dConfig.feature_scale=-1", "> 0"]),
    ],
)
def test_config_errors_are_one_line(kwargs, fragments):
    with pytest.raises(ConfigError) as e:
        create_model("attention-unet-2d", **kwargs)
    assert "\n" not in str(e.value)
    for f in fragments:
        assert f in str(e.value), str(e.value)
