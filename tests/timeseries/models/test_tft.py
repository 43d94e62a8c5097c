"""Temporal Fusion Transformer: components against hand-written math, causality, masks, precision, errors."""

from __future__ import annotations

import math
import typing

import pytest
import torch
import torch.nn.functional as F
from tft_fixtures import pf_sub_modules

from gatelab.core import capture_gates
from gatelab.core.config import ConfigError
from gatelab.timeseries.models.tft import (
    _TINY,
    ELU,
    TARGET_TRANSFORMS,
    InterpretableMultiHeadAttention,
    TemporalFusionTransformer,
    default_embedding_size,
    example_batch,
)


def _model(layout: str = "paper", **kw) -> TemporalFusionTransformer:
    torch.manual_seed(0)
    return TemporalFusionTransformer(**{**_TINY, "layout": layout, **kw})


# ------------------------------------------------------------------------------------------ ELU
def test_vectorised_elu_matches_torch_values_and_gradients():
    x = torch.tensor(
        [-30.0, -2.0, -1e-4, -1e-8, 0.0, 1e-8, 0.5, 3.0, 80.0], dtype=torch.float64, requires_grad=True
    )
    y = ELU()(x)
    ref = torch.where(x > 0, x, torch.exp(x) - 1)  # the definition, alpha = 1
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-15)
    torch.testing.assert_close(y, F.elu(x), rtol=1e-9, atol=1e-12)
    (g,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(g, torch.where(x > 0, 1.0, torch.exp(x)).double())


# -------------------------------------------------------------------------------- attention
def _imha_reference(m: InterpretableMultiHeadAttention, q, k, v, blocked):
    """Per-head loop, written from the paper's equations (13)-(16)."""
    h, dk = m.num_heads, m.d_k
    vs = v @ m.v_proj.weight.T + (m.v_proj.bias if m.v_proj.bias is not None else 0)
    heads, attns = [], []
    for i in range(h):
        wq = m.q_proj.weight[i * dk : (i + 1) * dk]
        wk = m.k_proj.weight[i * dk : (i + 1) * dk]
        bq = m.q_proj.bias[i * dk : (i + 1) * dk] if m.q_proj.bias is not None else 0
        bk = m.k_proj.bias[i * dk : (i + 1) * dk] if m.k_proj.bias is not None else 0
        s = (q @ wq.T + bq) @ (k @ wk.T + bk).transpose(1, 2) / math.sqrt(dk)
        s = s.masked_fill(blocked, float("-inf"))
        a = torch.softmax(s, -1)
        heads.append(a @ vs)
        attns.append(a)
    out = torch.stack(heads).mean(0) @ m.out_proj.weight.T
    return out, torch.stack(attns, dim=2)


@pytest.mark.parametrize("bias", [False, True])
def test_interpretable_attention_matches_per_head_loop(bias):
    torch.manual_seed(1)
    m = InterpretableMultiHeadAttention(8, 2, bias=bias).eval()
    if bias:
        with torch.no_grad():
            for lin in (m.q_proj, m.k_proj, m.v_proj):
                lin.bias.normal_()
    q, k = torch.randn(3, 4, 8), torch.randn(3, 6, 8)
    blocked = torch.zeros(3, 4, 6, dtype=torch.bool)
    blocked[0, :, 4:] = True
    blocked[1, 2:, 0] = True
    out, attn = m(q, k, k, blocked)
    ref_out, ref_attn = _imha_reference(m, q, k, k, blocked)
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(attn, ref_attn, rtol=1e-5, atol=1e-6)
    assert attn.shape == (3, 4, 2, 6)
    assert float(attn.detach()[0, :, :, 4:].abs().max()) == 0.0  # blocked keys get exactly zero weight


def test_attention_fully_blocked_row_is_uniform_and_finite():
    m = InterpretableMultiHeadAttention(4, 2).eval()
    q = torch.randn(1, 2, 4)
    blocked = torch.zeros(1, 2, 3, dtype=torch.bool)
    blocked[0, 0] = True
    out, attn = m(q, q.new_ones(1, 3, 4), q.new_ones(1, 3, 4), blocked)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(attn[0, 0], torch.full((2, 3), 1 / 3))


# -------------------------------------------------------------------------------- embeddings
def test_embeddings_groups_sum_and_padding():
    m = _model("pytorch-forecasting", embedding_paddings=["month"]).eval()
    emb = m.input_embedding
    names = emb.cat_names
    lo = {n: sum(emb.cardinalities[: names.index(n)]) for n in names}
    x = example_batch(m, 2)
    cat, cont = x["encoder_cat"], x["encoder_cont"]
    cat[0, 0, 1] = 0  # month code 0 -> padding -> zeros
    feats = emb(cat, cont, "encoder")
    cols = m.x_categoricals
    d_m, d_h = emb.sizes["month"], emb.sizes["holidays"]
    month = emb.cat_weight[lo["month"] + cat[..., cols.index("month")], :d_m]
    month[0, 0] = 0.0
    hol = (
        emb.cat_weight[lo["holidays"] + cat[..., cols.index("hol_a")], :d_h]
        + emb.cat_weight[lo["holidays"] + cat[..., cols.index("hol_b")], :d_h]
    )
    # encoder variables: categoricals month, holidays first, then reals price, time, y
    torch.testing.assert_close(feats[..., :d_m], month)
    torch.testing.assert_close(feats[..., d_m : d_m + d_h], hol)
    j = emb.real_names.index("price")
    d_r = emb.sizes["price"]
    price = cont[..., m.x_reals.index("price"), None] * emb.real_weight[j, :d_r]
    torch.testing.assert_close(feats[..., d_m + d_h : d_m + d_h + d_r], price + emb.real_bias[j, :d_r])


def test_default_embedding_size_heuristic():
    assert [default_embedding_size(n) for n in (1, 2, 3, 10, 58, 10_000)] == [1, 1, 3, 6, 16, 100]


# -------------------------------------------------------------------------------- the model
@pytest.mark.parametrize("layout", ["paper", "pytorch-forecasting"])
def test_forecasts_are_causal_in_the_decoder(layout):
    """A forecast at step t never depends on known inputs of later decoder steps."""
    m = _model(layout, dropout=0.0).eval()
    x = example_batch(m, 2, encoder_length=5, decoder_length=4)
    base = m(x).prediction
    x2 = {k: v.clone() for k, v in x.items()}
    x2["decoder_cont"][:, 2:] += 5.0
    x2["decoder_cat"][:, 2:] = 0
    out = m(x2).prediction
    torch.testing.assert_close(out[:, :2], base[:, :2])
    assert (out[:, 2:] - base[:, 2:]).abs().max() > 1e-4


def test_padded_encoder_steps_do_not_matter():
    m = _model(dropout=0.0).eval()
    x = example_batch(m, 2, encoder_length=6)
    x["encoder_lengths"] = torch.tensor([6, 3])
    base = m(x)
    x2 = {k: v.clone() for k, v in x.items()}
    x2["encoder_cont"][1, 3:] = 1e3
    x2["encoder_cat"][1, 3:] = 1
    out = m(x2)
    torch.testing.assert_close(out.prediction, base.prediction)
    assert float(out.encoder_attention[1, :, :, 3:].abs().max()) == 0.0


def test_zero_length_encoder_keeps_static_state_and_is_finite():
    m = _model(dropout=0.0).eval()
    x = example_batch(m, 3, encoder_length=4)
    x["encoder_lengths"] = torch.tensor([4, 0, 2])
    out = m(x)
    assert torch.isfinite(out.prediction).all()


def test_output_rescaling_and_transform():
    m = _model(dropout=0.0, target_transform="softplus").eval()
    raw = _model(dropout=0.0, target_transform="softplus", rescale_output=False).eval()
    raw.load_state_dict(m.state_dict())
    x = example_batch(m, 2)
    y = raw(x).prediction
    c, s = x["target_scale"][:, 0], x["target_scale"][:, 1]
    torch.testing.assert_close(m(x).prediction, F.softplus(y * s[:, None, None] + c[:, None, None]))


def test_quantile_outputs_and_point_prediction():
    m = _model(quantiles=[0.1, 0.5, 0.9])
    out = m(example_batch(m, 2))
    assert out.prediction.shape == (2, 3, 3)
    torch.testing.assert_close(m.point_prediction(out.prediction), out.prediction[..., 1])


def test_capture_gates_sees_selection_weights_and_attention():
    m = _model().eval()
    with capture_gates(m) as gates:
        out = m(example_batch(m, 2))
    torch.testing.assert_close(gates["encoder_vsn:weights"], out.encoder_variables)
    torch.testing.assert_close(gates["static_vsn:weights"], out.static_variables)
    att = gates["attention:attention"]  # [B, heads, T_d, T_e + T_d]
    torch.testing.assert_close(att.transpose(1, 2)[..., :5], out.encoder_attention)
    torch.testing.assert_close(out.encoder_variables.sum(-1), torch.ones(2, 5))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_forward_backward_finite_with_masks(dtype):
    m = _model("pytorch-forecasting")
    x = example_batch(m, 4, encoder_length=6)
    x["encoder_lengths"] = torch.tensor([6, 2, 1, 4])
    x["decoder_lengths"] = torch.tensor([3, 3, 1, 2])
    x["encoder_cont"] = x["encoder_cont"] * 100.0
    with torch.autocast("cpu", dtype=dtype):
        out = m(x)
        loss = out.prediction.float().pow(2).mean()
    loss.backward()
    assert torch.isfinite(out.prediction).all()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


def test_pytorch_forecastings_minus_1e9_mask_overflows_half_ours_does_not():
    """pytorch-forecasting fills masked scores with -1e9, which float16 cannot hold."""
    pf = pf_sub_modules()
    q = torch.randn(2, 3, 4, dtype=torch.float16)
    mask = torch.zeros(2, 3, 5, dtype=torch.bool)
    mask[:, :, 3:] = True
    with pytest.raises(RuntimeError, match="overflow"):
        pf.ScaledDotProductAttention()(
            q, torch.randn(2, 5, 4, dtype=torch.float16), torch.randn(2, 5, 4, dtype=torch.float16), mask
        )
    ours = InterpretableMultiHeadAttention(4, 2).half()
    out, attn = ours(
        q, torch.randn(2, 5, 4, dtype=torch.float16), torch.randn(2, 5, 4, dtype=torch.float16), mask
    )
    assert torch.isfinite(out).all() and float(attn[..., 3:].abs().max()) == 0.0


# -------------------------------------------------------------------------------- errors
def test_config_errors_name_the_problem():
    cfg = dict(_TINY)
    with pytest.raises(ConfigError, match="'nope' is not a column of x_reals"):
        TemporalFusionTransformer(**{**cfg, "time_varying_reals_encoder": ["price", "nope"]})
    with pytest.raises(ConfigError, match="embedding_sizes has no entry for categorical variable 'month'"):
        TemporalFusionTransformer(**{**cfg, "embedding_sizes": {"store": [3, 2], "holidays": [3, 2]}})
    with pytest.raises(ConfigError, match="no decoder"):
        TemporalFusionTransformer(
            **{**cfg, "time_varying_reals_decoder": [], "time_varying_categoricals_decoder": []}
        )
    with pytest.raises(ConfigError, match="quantiles"):
        TemporalFusionTransformer(**{**cfg, "quantiles": [0.5, 0.1]})
    with pytest.raises(ConfigError, match="layout"):
        TemporalFusionTransformer(**{**cfg, "layout": "keras"})


def test_forward_errors_name_the_input():
    m = _model()
    x = example_batch(m, 2)
    with pytest.raises(KeyError, match="target_scale"):
        m({k: v for k, v in x.items() if k != "target_scale"})
    bad = dict(x, encoder_cont=x["encoder_cont"][..., :2])
    with pytest.raises(ValueError, match=r"encoder_cont must be \[B, T, 4\]"):
        m(bad)
    unknown = dict(x, decoder_cat=x["decoder_cat"].clone())
    unknown["decoder_cat"][0, 1, m.x_categoricals.index("month")] = 12  # 12 classes: codes 0..11
    with pytest.raises(ValueError, match="decoder_cat column 'month' holds code 12"):
        m(unknown)


# -------------------------------------------------------------------------------- config and presets
def test_config_presets_build_and_create_model_uses_them():
    from gatelab import create_model
    from gatelab.timeseries.models.tft import TFTConfig

    assert set(TFTConfig.presets) == {"stallion", "electricity", "traffic"}
    variables = {k: v for k, v in _TINY.items() if k not in ("d_model", "num_heads", "continuous_dim")}
    for name, sizes in TFTConfig.presets.items():
        cfg = TFTConfig.from_preset(name, **variables)
        assert {k: getattr(cfg, k) for k in sizes} == dict(sizes)
    assert (TFTConfig.presets["electricity"]["d_model"], TFTConfig.presets["traffic"]["dropout"]) == (160, 0.3)
    torch.manual_seed(0)
    m = create_model("tft", preset="stallion", **variables)
    assert m.config == TFTConfig.from_preset("stallion", **variables)
    assert (m.d_model, m.attention.num_heads) == (16, 2)
    assert m(example_batch(m, 2)).prediction.shape == (2, 3, 3)
    # a config, a mapping or keywords build the same model; the config is frozen and saves as YAML
    cfg = TFTConfig(**_TINY)
    assert TemporalFusionTransformer(cfg).config is cfg
    assert TemporalFusionTransformer(dict(_TINY)).config == cfg == TemporalFusionTransformer(**_TINY).config
    assert TemporalFusionTransformer(cfg, dropout=0.2).config.dropout == 0.2
    assert cfg.to_dict()["embedding_sizes"]["store"] == [3, 2]
    # the config's target_transform names are exactly the inverse transforms the model has
    hints = typing.get_type_hints(TFTConfig, include_extras=True)
    assert set(typing.get_args(typing.get_args(hints["target_transform"])[0])) == set(TARGET_TRANSFORMS) - {None}
    assert TFTConfig(**cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("override", "fragments"),
    [
        ({"d_model": 0}, ["TFTConfig.d_model=0", ">= 1"]),
        ({"dropout": 1.0}, ["TFTConfig.dropout=1.0", "[0, 1)"]),
        ({"num_heads": 16}, ["num_heads 16 > d_model 8"]),
        ({"layout": "keras"}, ["TFTConfig.layout='keras'", "pytorch-forecasting"]),
        ({"target_transform": "log2"}, ["TFTConfig.target_transform='log2'"]),
        ({"x_reals": "price"}, ["TFTConfig.x_reals='price'"]),
        ({"x_reals": ["size", "price", "time", "y", "y"]}, ["x_reals lists ['y'] more than once"]),
        ({"embedding_sizes": {"store": [3, 0], "month": [12, 5], "holidays": [3, 2]}}, ["embedding_sizes"]),
        ({"continuous_dims": {"nope": 3}}, ["continuous_dims names unknown real 'nope'"]),
        ({"hidden_size": 8}, ["'hidden_size'", "valid keys"]),
        ({"attention_head_size": 2}, ["'attention_head_size'"]),
        ({"preset": "electricty"}, ["unknown preset 'electricty'", "did you mean 'electricity'"]),
    ],
)
def test_bad_config_values_are_one_line_config_errors(override, fragments):
    from gatelab import create_model

    with pytest.raises(ConfigError) as e:
        create_model("tft", **{**_TINY, **override})
    msg = str(e.value)
    assert "\n" not in msg
    for f in fragments:
        assert f in msg, msg


@pytest.mark.parametrize("transform", [None, "softplus", "log", "logit", "sqrt", "relu"])
def test_monotone_quantile_head_never_crosses(transform):
    """Random weights (the output layer scaled up so independent heads would cross), random
    inputs and target scales: the monotone head's quantiles are non-decreasing everywhere."""
    from gatelab.timeseries.models.tft import _TINY, TemporalFusionTransformer, example_batch

    crossed = 0
    for seed in range(5):
        torch.manual_seed(seed)
        cfg = {**_TINY, "target_transform": transform, "quantiles": [0.02, 0.1, 0.5, 0.9, 0.98]}
        mono = TemporalFusionTransformer(**cfg, quantile_head="monotone").eval()
        indep = TemporalFusionTransformer(**cfg).eval()
        indep.load_state_dict(mono.state_dict())  # the same parameters
        with torch.no_grad():
            for m in (mono, indep):
                m.output_layer.weight.normal_(0, 3.0)
                m.output_layer.bias.normal_(0, 3.0)
            indep.load_state_dict(mono.state_dict())
            x = example_batch(mono, batch=8)
            x["target_scale"][:, 1] = torch.rand(8) * 10 + 1e-3  # scale > 0, as every normaliser's
            q = mono(x).prediction
            p = indep(x).prediction
            crossed += int((p[..., 1:] < p[..., :-1]).any())
        assert not q.isnan().any() and (q[..., 1:] >= q[..., :-1]).all(), (transform, seed)  # inf >= inf holds
    if transform not in ("relu",):
        assert crossed > 0  # the check is not vacuous: the same weights cross without the head


def test_default_quantile_head_is_the_independent_one():
    from gatelab.timeseries.models.tft import _TINY, TemporalFusionTransformer, example_batch

    torch.manual_seed(0)
    model = TemporalFusionTransformer(**_TINY).eval()
    assert model.config.quantile_head == "independent"
    x = example_batch(model, 4)
    with torch.no_grad():
        model.rescale_output = False  # the head is the plain linear layer: y_hat = W psi + b
        raw = model(x).prediction
        model.quantile_head = "monotone"
        mono = model(x).prediction
    assert torch.equal(mono[..., 0], raw[..., 0])
    assert torch.allclose(mono[..., 1:], raw[..., :1] + torch.nn.functional.softplus(raw[..., 1:]).cumsum(-1))
