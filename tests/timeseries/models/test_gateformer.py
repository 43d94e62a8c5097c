"""Gateformer / iTransformer: equality with a transcription of the official forward passes built
from plain torch modules (weights copied), the gate flags, shapes, capture and bad input."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from gatelab import create_model
from gatelab.core import TokenwiseGate, capture_gates
from gatelab.timeseries.models.gateformer import (
    Gateformer,
    GateformerConfig,
    ITransformer,
    ITransformerConfig,
    PatchEmbedding,
    sinusoidal_table,
)


def _mha_from(attn) -> nn.MultiheadAttention:
    """torch MHA with the weights of a SelfAttention (packed in_proj, the same [q; k; v] layout)."""
    d = attn.dim
    mha = nn.MultiheadAttention(d, attn.num_heads, dropout=0.0, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(attn.in_proj.weight)
        mha.in_proj_bias.copy_(attn.in_proj.bias)
        mha.out_proj.weight.copy_(attn.out_proj.weight)
        mha.out_proj.bias.copy_(attn.out_proj.bias)
    return mha


def _torch_layer(layer, norm_first: bool, activation: str) -> nn.TransformerEncoderLayer:
    d = layer.linear1.in_features
    ref = nn.TransformerEncoderLayer(
        d, layer.attn.num_heads, layer.linear1.out_features, dropout=0.0, activation=activation,
        batch_first=True, norm_first=norm_first,
    )  # fmt: skip
    mha = _mha_from(layer.attn)
    ref.self_attn.load_state_dict(mha.state_dict())
    for name in ("linear1", "linear2", "norm1", "norm2"):
        getattr(ref, name).load_state_dict(getattr(layer, name).state_dict())
    return ref.eval()


def _official_gateformer(m: Gateformer, x: torch.Tensor) -> torch.Tensor:
    """nyuolab/Gateformer models/Gateformer.py forecast(), re-typed with torch modules."""
    temporal = [_torch_layer(layer, True, "relu") for layer in m.temporal_encoder]
    variate = [_torch_layer(layer, True, "relu") for layer in m.variate_encoder]
    d = m.projection.in_features
    w1, w2 = m.temporal_gate.proj.weight[:, :d], m.temporal_gate.proj.weight[:, d:]
    w3, w4 = m.variate_gate.proj.weight[:, :d], m.variate_gate.proj.weight[:, d:]
    b12, b34 = m.temporal_gate.proj.bias, m.variate_gate.proj.bias

    means = x.mean(1, keepdim=True)
    z = x - means
    stdev = torch.sqrt(torch.var(z, dim=1, keepdim=True, unbiased=False) + 1e-5)
    z = z / stdev
    glob = m.global_embedding(z.permute(0, 2, 1))  # DataEmbedding_inverted(x, None)
    xe = z.permute(0, 2, 1)  # [B, N, L]
    n_vars = xe.shape[1]
    pad = nn.ReplicationPad1d((0, m.patch_embedding.stride))(xe)
    patches = pad.unfold(-1, m.patch_embedding.patch_len, m.patch_embedding.stride)
    patches = patches.reshape(-1, patches.shape[2], patches.shape[3])
    enc = m.patch_embedding.value(patches) + sinusoidal_table(patches.shape[1], d)
    for layer in temporal:
        enc = layer(enc)
    enc = enc.reshape(-1, n_vars, enc.shape[-2], enc.shape[-1]).permute(0, 1, 3, 2)
    tde = m.temporal_head(enc.flatten(-2))  # FlattenHead
    gate = torch.sigmoid(glob @ w1.T + tde @ w2.T + b12)
    u = gate * glob + (1 - gate) * tde
    c = u
    for layer in variate:
        c = layer(c)
    gate = torch.sigmoid(u @ w3.T + c @ w4.T + b34)
    h = gate * u + (1 - gate) * c
    dec = m.projection(h).permute(0, 2, 1)[:, :, :n_vars]
    return dec * stdev[:, 0, :].unsqueeze(1) + means[:, 0, :].unsqueeze(1)


def _official_itransformer(m: Gateformer, x: torch.Tensor, x_mark: torch.Tensor) -> torch.Tensor:
    """thuml/iTransformer model/iTransformer.py forecast() with post-norm GELU layers + final LayerNorm."""
    layers = [_torch_layer(layer, False, "gelu") for layer in m.variate_encoder]
    means = x.mean(1, keepdim=True)
    z = x - means
    stdev = torch.sqrt(torch.var(z, dim=1, keepdim=True, unbiased=False) + 1e-5)
    z = z / stdev
    n = x.shape[2]
    enc = m.global_embedding(torch.cat([z.permute(0, 2, 1), x_mark.permute(0, 2, 1)], 1))
    for layer in layers:
        enc = layer(enc)
    enc = m.final_norm(enc)
    dec = m.projection(enc).permute(0, 2, 1)[:, :, :n]
    return dec * stdev[:, 0, :].unsqueeze(1) + means[:, 0, :].unsqueeze(1)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_gateformer_matches_official_forward(num_layers):
    torch.manual_seed(0)
    m = create_model(
        "gateformer", num_vars=5, lookback=24, horizon=6, d_model=16, num_heads=4, num_layers=num_layers, hidden_dim=32,
        patch_len=8, stride=8,
    ).eval()  # fmt: skip
    x = torch.randn(3, 24, 5) * 3 + 1
    with torch.no_grad():
        torch.testing.assert_close(m(x), _official_gateformer(m, x), rtol=1e-5, atol=1e-5)


def test_itransformer_matches_official_forward():
    torch.manual_seed(1)
    m = create_model("itransformer", num_vars=4, lookback=20, horizon=7, d_model=16, num_heads=2, num_layers=2, hidden_dim=24,
                     num_marks=3).eval()  # fmt: skip
    x, mark = torch.randn(2, 20, 4), torch.rand(2, 20, 3) - 0.5
    with torch.no_grad():
        torch.testing.assert_close(
            m(x, x_mark=mark), _official_itransformer(m, x, mark), rtol=1e-5, atol=1e-5
        )


def test_patch_count_and_padding():
    # official: ReplicationPad1d((0, stride)), unfold(patch_len, stride), patch_num = int((L - P) / S + 2)
    for L, P, S in [(96, 8, 8), (36, 8, 8), (16, 4, 4), (20, 6, 3)]:
        pe = PatchEmbedding(P, P, S, L)  # d_model = P so an identity value embedding shows the patches
        assert pe.num_patches == int((L - P) / S + 2)
        with torch.no_grad():
            pe.value.weight.copy_(torch.eye(P))
        z = torch.randn(2, 3, L)
        out = (pe(z) - pe.pe).reshape(2, 3, pe.num_patches, P)
        for b in range(2):
            for v in range(3):
                series = z[b, v].tolist() + [z[b, v, -1].item()] * S
                for k in range(pe.num_patches):
                    want = torch.tensor(series[k * S : k * S + P])
                    torch.testing.assert_close(out[b, v, k], want, rtol=1e-5, atol=1e-5)


def test_sinusoidal_table_values():
    pe = sinusoidal_table(5, 6)
    for pos in range(5):
        for i in range(3):
            ang = pos / 10000 ** (2 * i / 6)
            assert pe[pos, 2 * i].item() == pytest.approx(math.sin(ang), abs=1e-6)
            assert pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(ang), abs=1e-6)


def test_gates_are_core_tokenwise_gates_and_captured():
    m = create_model("gateformer", num_vars=3, lookback=16, horizon=4, d_model=8, num_heads=2, num_layers=1, hidden_dim=8)
    assert isinstance(m.temporal_gate, TokenwiseGate) and m.temporal_gate.mode == "vector"
    assert isinstance(m.variate_gate, TokenwiseGate)
    with capture_gates(m) as g:
        m(torch.randn(2, 16, 3))
    assert set(g) == {"temporal_gate", "variate_gate"}
    assert g["temporal_gate"].shape == (2, 3, 8)
    assert ((g["variate_gate"] > 0) & (g["variate_gate"] < 1)).all()


def test_gate_init_matches_two_official_linears():
    torch.manual_seed(0)
    d = 64
    m = create_model("gateformer", num_vars=2, lookback=16, horizon=4, d_model=d, num_heads=4, num_layers=1, hidden_dim=8)
    w = m.temporal_gate.proj.weight
    bound = 1 / math.sqrt(d)
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound  # U(-1/sqrt(d), 1/sqrt(d)), not 1/sqrt(2d)
    b = m.variate_gate.proj.bias
    assert b.abs().max() <= 2 * bound and b.abs().max() > bound  # sum of two uniform biases


def test_flags_make_itransformer_a_gateformer_without_branch_and_gates():
    it = create_model(
        "itransformer", num_vars=3, lookback=16, horizon=4, d_model=8, num_heads=2, num_layers=1, hidden_dim=8
    )
    assert isinstance(it, Gateformer)
    assert (
        not hasattr(it, "temporal_encoder")
        and not hasattr(it, "variate_gate")
        and not hasattr(it, "temporal_gate")
    )
    nogate = create_model("gateformer", num_vars=3, lookback=16, horizon=4, d_model=8, num_heads=2, num_layers=1, hidden_dim=8,
                          gates=False)  # fmt: skip
    assert not hasattr(nogate, "variate_gate") and hasattr(nogate, "temporal_encoder")
    # gates=False, temporal_branch=False on Gateformer's (pre-norm) path: h = encoder(embedding) exactly
    bare = create_model("gateformer", num_vars=3, lookback=16, horizon=4, d_model=8, num_heads=2, num_layers=1, hidden_dim=8,
                        gates=False, temporal_branch=False).eval()  # fmt: skip
    x = torch.randn(2, 16, 3)
    with torch.no_grad():
        mean = x.mean(1, keepdim=True)
        std = torch.sqrt(x.var(1, keepdim=True, unbiased=False) + 1e-5)
        h = bare.variate_encoder(bare.global_embedding(((x - mean) / std).transpose(1, 2)))
        want = bare.projection(h).transpose(1, 2) * std + mean
        torch.testing.assert_close(bare(x), want)
    with capture_gates(nogate) as g:
        nogate(x)
    assert g == {}


def test_ms_mode_returns_target_only_and_marks_are_checked():
    m = create_model("gateformer", num_vars=4, lookback=16, horizon=5, d_model=8, num_heads=2, num_layers=1, hidden_dim=8,
                     num_targets=1).eval()  # fmt: skip
    full = create_model(
        "gateformer", num_vars=4, lookback=16, horizon=5, d_model=8, num_heads=2, num_layers=1, hidden_dim=8
    ).eval()
    full.load_state_dict(m.state_dict())
    x = torch.randn(2, 16, 4)
    with torch.no_grad():
        torch.testing.assert_close(m(x), full(x)[..., -1:])
    it = create_model("itransformer", num_vars=4, lookback=16, horizon=5, d_model=8, num_heads=2, num_layers=1, hidden_dim=8,
                      num_marks=2)  # fmt: skip
    with pytest.raises(ValueError, match=r"x_mark \[B, 16, 2\]"):
        it(x)
    with pytest.raises(ValueError, match=r"expected x \[B, lookback=16, num_vars=4\]"):
        m(torch.randn(2, 15, 4))


def test_bad_config_is_an_error():
    with pytest.raises(ValueError, match="divisible"):
        Gateformer(num_vars=3, lookback=16, horizon=4, d_model=10, num_heads=4)
    with pytest.raises(ValueError, match="num_targets"):
        Gateformer(num_vars=3, lookback=16, horizon=4, d_model=8, num_heads=2, num_targets=4)
    from gatelab.core import ConfigError

    with pytest.raises(ConfigError, match="d_modle"):
        create_model("gateformer", num_vars=3, lookback=16, horizon=4, d_modle=8)


@pytest.mark.parametrize(
    ("name", "config_class"), [("gateformer", GateformerConfig), ("itransformer", ITransformerConfig)]
)
def test_config_presets_build_and_create_model_uses_them(name, config_class):
    assert config_class.presets and "etth1-96" in config_class.presets
    for preset in config_class.presets:  # every preset is a valid config
        cfg = config_class.from_preset(preset)
        assert cfg.horizon == int(preset.rsplit("-", 1)[1])
    m = create_model(name, preset="etth1-96")
    assert type(m.config) is config_class
    assert m.config == config_class.from_preset("etth1-96")
    assert (m.num_vars, m.lookback, m.horizon) == (7, 96, 96)
    assert m.global_embedding.weight.shape == (m.config.d_model, 96)
    # data-module sizes and overrides win over the preset
    small = create_model(name, preset="etth1-96", num_vars=3, lookback=16, horizon=4, d_model=8, hidden_dim=8)
    assert (small.config.num_layers, small.config.num_heads) == (
        config_class.presets["etth1-96"]["num_layers"],
        config_class.presets["etth1-96"]["num_heads"],
    )
    assert small(torch.randn(2, 16, 3), x_mark=torch.zeros(2, 16, small.num_marks)).shape == (2, 4, 3)


def test_itransformer_is_gateformer_with_itransformer_defaults():
    cfg = ITransformerConfig(num_vars=3, lookback=16, horizon=4)
    flags = ("temporal_branch", "gates", "norm_first", "act", "final_norm", "use_marks", "attn_init")
    assert {k: getattr(cfg, k) for k in flags} == {
        "temporal_branch": False, "gates": False, "norm_first": False, "act": "gelu", "final_norm": True,
        "use_marks": True, "attn_init": "default",
    }  # fmt: skip
    it = ITransformer(cfg)
    assert isinstance(it, Gateformer) and it.config is cfg
    # the same config as a Gateformer builds the same network (one code path)
    torch.manual_seed(0)
    a = Gateformer(GateformerConfig(**cfg.to_dict()))
    torch.manual_seed(0)
    b = ITransformer(num_vars=3, lookback=16, horizon=4)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    # a config plus keyword overrides; the config is frozen
    assert Gateformer(cfg, d_model=16).config.d_model == 16 and Gateformer(cfg, d_model=16).config.gates is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.d_model = 4  # type: ignore[misc]


@pytest.mark.parametrize(
    ("call", "fragments"),
    [
        (lambda: GateformerConfig(num_vars=3, lookback=16, horizon=0), ["GateformerConfig.horizon=0", ">= 1"]),
        (lambda: GateformerConfig(num_vars=3, lookback=16, horizon=4, dropout=1.0), ["dropout=1.0", "[0, 1)"]),
        (lambda: GateformerConfig(num_vars=3, lookback=16, horizon=4, gates="yes"), ["gates='yes'"]),
        (lambda: GateformerConfig(num_vars=3, lookback=16, horizon=4, attn_gate="rowwise"), ["attn_gate='rowwise'"]),
        (lambda: ITransformerConfig(num_vars=3, lookback=16, horizon=4, act="gelux"), ["ITransformerConfig.act='gelux'"]),
        (lambda: GateformerConfig(num_vars=3, lookback=16, horizon=4, d_model=10, num_heads=4),
         ["d_model=10 must be divisible by num_heads=4"]),
        (lambda: GateformerConfig(num_vars=3, lookback=4, horizon=4, patch_len=16, stride=4),
         ["patch_len=16 exceeds lookback=4 + stride=4"]),
        (lambda: ITransformerConfig(num_vars=3, lookback=16, horizon=4, num_targets=5),
         ["ITransformerConfig: num_targets=5 must be in [1, num_vars=3]"]),
        (lambda: GateformerConfig.from_preset("etth1-96", n_heads=2), ["'n_heads'", "did you mean 'num_heads'"]),
        (lambda: GateformerConfig.from_preset("etth1-97"), ["unknown preset 'etth1-97'", "etth1-96"]),
        (lambda: create_model("itransformer", preset="ettm3-96"), ["unknown preset 'ettm3-96'"]),
        (lambda: Gateformer(num_vars=3, lookback=16, horizon=4, seq_len=16), ["'seq_len'"]),
        (lambda: GateformerConfig.from_preset(None, d_model=8), ["num_vars"]),
    ],
)
def test_bad_config_values_are_one_line_config_errors(call, fragments):
    from gatelab.core import ConfigError

    with pytest.raises(ConfigError) as e:
        call()
    msg = str(e.value)
    assert "\n" not in msg
    for f in fragments:
        assert f in msg, msg


# --------------------------------------------------------------------------- fast paths (issue 17.3)


def test_dropout_attention_function_gradcheck_and_reference():
    """The packed attention function (``qkv [B, T, 3d]`` -> ``[B, T, d]``) against the textbook
    per-head formula: equal to 1e-12 in float64, and its hand-written backward passes gradcheck."""
    from gatelab.core.layers.dropout import dropout_mask
    from gatelab.timeseries.models.gateformer import _DropoutAttention

    torch.manual_seed(0)
    B, T, H, Dh = 2, 5, 3, 4
    qkv = torch.randn(B, T, 3 * H * Dh, dtype=torch.float64, requires_grad=True)
    noise = dropout_mask(torch.empty(B, H, T, T, dtype=torch.float64), 0.3)
    q16 = round(0.3 * 65536) / 65536  # dropout_mask's rounded p
    assert set(noise.unique().tolist()) <= {0.0, 1 / (1 - q16)}
    assert torch.autograd.gradcheck(lambda a: _DropoutAttention.apply(a, noise, H, 0.5), (qkv,))
    q, k, v = (t.reshape(B, T, H, Dh).transpose(1, 2) for t in qkv.split(H * Dh, dim=-1))
    ref = ((torch.softmax(q @ k.transpose(-2, -1) * 0.5, -1) * noise) @ v).transpose(1, 2).reshape(B, T, H * Dh)
    torch.testing.assert_close(_DropoutAttention.apply(qkv, noise, H, 0.5), ref, rtol=1e-12, atol=1e-12)


def test_relu_dropout_feed_forward_equals_relu_then_dropout():
    """Training forward/backward with the fused ReLU-dropout of the feed-forward equal the same
    model with ``relu(h) * dropout_mask(h, p)`` composed from separate ops, same seed (the same
    masks): rtol = atol = 1e-6 (float32)."""
    from gatelab.core.layers.dropout import dropout_mask
    from gatelab.timeseries.models import gateformer as gf

    torch.manual_seed(0)
    m = create_model(
        "gateformer", num_vars=4, lookback=24, horizon=6, d_model=16, num_heads=4, num_layers=2, hidden_dim=32,
        dropout=0.3,
    )  # fmt: skip
    x = torch.randn(3, 24, 4)

    def run() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        m.zero_grad()
        torch.manual_seed(1)
        y = m(x)
        y.square().mean().backward()
        return y, {n: p.grad.clone() for n, p in m.named_parameters()}

    y_fast, g_fast = run()
    composed = []

    def relu_then_dropout(h, p, training, inplace=False):
        composed.append(tuple(h.shape))
        return torch.relu(h) * dropout_mask(h, p)

    orig = gf.relu_dropout
    gf.relu_dropout = relu_then_dropout
    try:
        y_ref, g_ref = run()
    finally:
        gf.relu_dropout = orig
    assert (3 * 4 * 4, 32) in composed and (3 * 4, 32) in composed  # both encoders' FFN rows went through it
    torch.testing.assert_close(y_fast, y_ref, rtol=1e-6, atol=1e-6)
    for n in g_ref:
        torch.testing.assert_close(g_fast[n], g_ref[n], rtol=1e-6, atol=1e-6, msg=lambda s, n=n: f"{n}: {s}")


def test_train_mode_fast_paths_equal_eval_with_unit_noise(monkeypatch):
    """With every dropout mask forced to 1 the training forward (packed CPU attention function,
    core fast_dropout) must equal the evaluation forward (SDPA) and give the same gradients:
    rtol = atol = 1e-5 (float32)."""
    from gatelab.core.layers import dropout as core_dropout
    from gatelab.timeseries.models import gateformer as gf

    torch.manual_seed(0)
    m = create_model(
        "gateformer", num_vars=5, lookback=24, horizon=6, d_model=16, num_heads=4, num_layers=2, hidden_dim=32,
        patch_len=8, stride=8, dropout=0.2,
    )  # fmt: skip
    x = torch.randn(3, 24, 5) * 3 + 1
    calls = []

    def unit_noise(t, p):
        calls.append(tuple(t.shape))
        return torch.ones_like(t)

    monkeypatch.setattr(gf, "dropout_mask", unit_noise)  # attention probabilities, residual addcmul
    monkeypatch.setattr(core_dropout, "dropout_mask", unit_noise)  # fast_dropout (patch, head)
    # the FFN's fused ReLU-dropout scales its backward by 1 / (1 - p) (it assumes a real mask):
    # a ReLU here; test_relu_dropout_feed_forward_equals_relu_then_dropout covers the fused op
    monkeypatch.setattr(gf, "relu_dropout", lambda h, p, training, inplace=False: torch.relu(h))
    m.train()
    y_train = m(x)
    y_train.square().mean().backward()
    g_train = {n: p.grad.clone() for n, p in m.named_parameters()}
    m.zero_grad()
    m.eval()
    y_eval = m(x)
    y_eval.square().mean().backward()
    torch.testing.assert_close(y_train, y_eval, rtol=1e-5, atol=1e-5)
    for n, p in m.named_parameters():
        torch.testing.assert_close(g_train[n], p.grad, rtol=1e-5, atol=1e-5, msg=lambda s, n=n: f"{n}: {s}")
    # 4 attention-probability masks [B*N or B, H, T, T] among the masks drawn (2 layers x 2 encoders)
    assert (15, 4, 4, 4) in calls and (3, 4, 5, 5) in calls


def test_self_attention_loads_the_separate_qkv_layout():
    from gatelab.core import OutputGatedAttention
    from gatelab.timeseries.models.gateformer import SelfAttention

    torch.manual_seed(0)
    old = OutputGatedAttention(16, 4, gate=None).eval()
    new = SelfAttention(16, 4).eval()
    new.load_state_dict(old.state_dict())
    x = torch.randn(2, 7, 16)
    torch.testing.assert_close(new(x), old(x), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"\[B, T, dim=16\]"):
        new(torch.randn(2, 7, 8))


def _speed_benchmark(repo_root):
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("bench_gateformer_speed", repo_root / "benchmarks" / "gateformer_speed.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_gateformer_speed"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_speed_benchmark_skips_without_official_checkout(repo_root, tmp_path, capsys, monkeypatch):
    bench = _speed_benchmark(repo_root)
    monkeypatch.delenv(bench.ENV_REPO, raising=False)
    assert bench.main(["--official-repo", str(tmp_path / "absent"), "--record", "--results-dir", str(tmp_path)]) == 0
    assert "SKIPPED" in capsys.readouterr().out
    assert not list(tmp_path.iterdir())  # nothing recorded


def test_speed_benchmark_matmul_floor_counts_the_step_products(repo_root):
    """The benchmark's floor replays exactly the matrix products of a step: for ``Linear(4, 3)``
    on 5 rows (input without gradient) one ``addmm`` forward and one weight-gradient ``mm``,
    ``2 * 5 * 4 * 3`` FLOP each; with a second layer its input gradient adds one more product."""
    bench = _speed_benchmark(repo_root)
    x, y = torch.randn(5, 4), torch.randn(5, 3)

    def step_of(model):  # forward, MSE, backward (the optimizer adds no matrix product)
        return lambda x, y: torch.nn.functional.mse_loss(model(x), y).backward()

    replay, gflop = bench.matmul_floor(step_of(torch.nn.Linear(4, 3)), x, y)
    assert gflop * 1e9 == pytest.approx(2 * (2 * 5 * 4 * 3))
    replay()
    two = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Linear(6, 3))
    _, gflop2 = bench.matmul_floor(step_of(two), x, y)
    # forward 5x4x6 + 5x6x3; backward: weight grads 6x5x4 and 3x5x6, input grad of layer 2: 5x3x6
    assert gflop2 * 1e9 == pytest.approx(2 * (5 * 4 * 6 + 5 * 6 * 3 + 6 * 5 * 4 + 3 * 5 * 6 + 5 * 3 * 6))
    # a batched product written into a given buffer (``out=``, as the attention backward does) counts too
    a, b, out = torch.randn(2, 3, 4), torch.randn(2, 4, 5), torch.empty(2, 3, 5)
    _, gflop3 = bench.matmul_floor(lambda x, y: torch.matmul(a, b, out=out), x, y)
    assert gflop3 * 1e9 == pytest.approx(2 * 2 * 3 * 4 * 5)


def test_official_checkout_weights_copy_to_equal_outputs(repo_root):
    """The official nyuolab/Gateformer ``Model`` (a user's checkout, ``$GATELAB_GATEFORMER_REPO``)
    with its weights copied into ours: forecasts within 1e-5 and gradients within 1e-4/1e-5
    (the benchmark's check) at the ETTh1-96 preset; a perturbed copy fails it."""
    import os

    bench = _speed_benchmark(repo_root)
    root = bench.check_official_repo(os.environ.get(bench.ENV_REPO))
    if root is None:
        pytest.skip(f"${bench.ENV_REPO} does not point at a nyuolab/Gateformer checkout")
    ours, official = bench.build_pair(root, "etth1-96")
    x, y = bench.make_batches("etth1-96", 4, 1)[0]
    diff = bench.check_equal(ours, official, x, y)
    assert diff["max_abs_diff"] <= 1e-4
    # a perturbed copy must fail the check (the check can fail)
    with torch.no_grad():
        ours.variate_gate.proj.bias.add_(1e-2)
    with pytest.raises(AssertionError, match="forecast differs"):
        bench.check_equal(ours, official, x, y)
