"""CTR models against hand-written computations on small tensors, parameter counts, FDO, gates."""

from __future__ import annotations

import pytest
import torch

from gatelab.core import capture_gates
from gatelab.recsys.data.frappe import FRAPPE_X1_VOCAB
from gatelab.recsys.models import (
    DNN,
    GDCN,
    DCNv2,
    DeepFM,
    DualMLP,
    FieldEmbedding,
    FinalMLP,
    LogisticRegression,
    example_inputs,
    fdo_embedding_dims,
    model_param_groups,
    tiny_feature_spec,
)

SPEC = tiny_feature_spec()  # user, item (cat), price (num), ctx (cat), tags (seq, max_len 3)


def _inputs(b=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return example_inputs(SPEC, b, generator=g)


def _manual_embeddings(emb: FieldEmbedding, x, dims):
    """Per-field embeddings by explicit row lookups and loops (spec order)."""
    cat_cols = {"user": 0, "item": 1, "ctx": 2}
    out = []
    for name, d in zip(emb.field_names, dims):
        rows = []
        for b in range(x["categorical"].shape[0]):
            if name in cat_cols:
                rows.append(emb.field_table(name)[x["categorical"][b, cat_cols[name]]])
            elif name == "price":
                key = f"numeric_{d}"
                rows.append(x["numeric"][b, 0] * emb.numeric_weights[key][0])
            else:
                toks = [int(t) for t in x["sequence"][b, 0] if t > 0]
                table = emb.field_table(name)
                rows.append(sum(table[t] for t in toks) / len(toks) if toks else torch.zeros(d))
        out.append(torch.stack(rows))
    return out


def test_field_embedding_matches_lookups_with_mixed_dims():
    spec = dict(SPEC, fields=[dict(f) for f in SPEC["fields"]])
    spec["fields"][1]["embedding_dim"] = 3  # item: 3, the rest: 2
    emb = FieldEmbedding(spec, 2)
    with torch.no_grad():
        for t in emb.tables.values():
            t.weight.normal_()
        for w in emb.numeric_weights.values():
            w.normal_()
    x = _inputs()
    x["sequence"][0] = 0  # an empty sequence embeds to zero
    got = emb(**x)
    want = torch.cat(_manual_embeddings(emb, x, [2, 3, 2, 2, 2]), dim=1)
    torch.testing.assert_close(got, want)
    assert emb.output_dim == 11 and not emb.equal_dims
    # the padding row of every field starts at zero; other rows ~ N(0, 1e-4^2)
    fresh = FieldEmbedding(SPEC, 4)
    for name in ("user", "item", "ctx", "tags"):
        t = fresh.field_table(name)
        assert torch.all(t[0] == 0) and 0 < t[1:].std() < 1e-3
    with pytest.raises(ValueError, match=r"categorical must be \[B, 3\]"):
        fresh(categorical=x["categorical"][:, :2], numeric=x["numeric"], sequence=x["sequence"])


def test_context_embedding_selects_fields_in_given_order():
    emb = FieldEmbedding(SPEC, 4, fields=["ctx", "user"])
    x = _inputs()
    got = emb(**x)
    want = torch.cat(
        [emb.field_table("ctx")[x["categorical"][:, 2]], emb.field_table("user")[x["categorical"][:, 0]]],
        dim=1,
    )
    torch.testing.assert_close(got, want)


def _mlp_manual(block, h):
    """Apply an MLPBlock layer by layer with explicit formulas (eval mode: BN uses running stats)."""
    for m in block:
        if isinstance(m, torch.nn.Linear):
            h = h @ m.weight.T + m.bias
        elif isinstance(m, torch.nn.BatchNorm1d):
            h = (h - m.running_mean) / torch.sqrt(m.running_var + m.eps) * m.weight + m.bias
        elif isinstance(m, torch.nn.ReLU):
            h = torch.clamp(h, min=0)
    return h


def _randomize(model):
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_finalmlp_matches_hand_computation():
    m = _randomize(
        FinalMLP(
            SPEC,
            2,
            [4],
            mlp1_batch_norm=True,
            mlp2_hidden_units=[6],
            fs_hidden_units=[3],
            fs1_context=["user", "ctx"],
            num_heads=2,
        )
    )
    x = _inputs()
    e = torch.cat(_manual_embeddings(m.embedding, x, [2] * 5), dim=1)
    c1 = torch.cat(
        [
            m.ctx1.field_table("user")[x["categorical"][:, 0]],
            m.ctx1.field_table("ctx")[x["categorical"][:, 2]],
        ],
        dim=1,
    )
    g1, g2 = m.gate1.mlp, m.gate2.mlp
    gate1 = torch.sigmoid(torch.relu(c1 @ g1[0].weight.T + g1[0].bias) @ g1[2].weight.T + g1[2].bias)
    ctx2 = m.gate2.context  # learned context (fs2_context empty)
    gate2 = torch.sigmoid(torch.relu(ctx2 @ g2[0].weight.T + g2[0].bias) @ g2[2].weight.T + g2[2].bias)
    o1 = _mlp_manual(m.mlp1, e * 2 * gate1)
    o2 = _mlp_manual(m.mlp2, e * 2 * gate2)
    f = m.fusion
    want = f.w_x(o1)[:, 0] + f.w_y(o2)[:, 0] + f.bias[0]
    for b in range(o1.shape[0]):
        for h in range(2):
            want[b] = want[b] + o1[b, 2 * h : 2 * h + 2] @ f.w_xy[h, 0] @ o2[b, 3 * h : 3 * h + 3]
    torch.testing.assert_close(m(**x), want)
    with capture_gates(m) as gates:
        m(**x)
    torch.testing.assert_close(gates["gate1"], gate1)


def test_dualmlp_and_dnn_and_lr_match_hand_computation():
    x = _inputs()
    d = _randomize(DualMLP(SPEC, 2, [4], mlp2_hidden_units=[3, 2], mlp2_batch_norm=True))
    e = torch.cat(_manual_embeddings(d.embedding, x, [2] * 5), dim=1)
    torch.testing.assert_close(d(**x), (_mlp_manual(d.mlp1, e) + _mlp_manual(d.mlp2, e))[:, 0])
    n = _randomize(DNN(SPEC, 2, [4, 4], batch_norm=True))
    e = torch.cat(_manual_embeddings(n.embedding, x, [2] * 5), dim=1)
    torch.testing.assert_close(n(**x), _mlp_manual(n.mlp, e)[:, 0])
    lr = _randomize(LogisticRegression(SPEC))
    parts = _manual_embeddings(lr.embedding, x, [1] * 5)
    torch.testing.assert_close(lr(**x), sum(p[:, 0] for p in parts) + lr.bias)


@pytest.mark.parametrize("structure", ["parallel", "stacked", "crossnet_only"])
def test_gdcn_matches_hand_computation(structure):
    m = _randomize(
        GDCN(
            SPEC,
            2,
            structure=structure,
            num_cross_layers=2,
            dnn_hidden_units=[] if structure == "crossnet_only" else [4],
            batch_norm=True,
        )
    )
    x = _inputs()
    e = torch.cat(_manual_embeddings(m.embedding, x, [2] * 5), dim=1)
    c = e
    for layer in m.cross.layers:  # c_{l+1} = c0 * (W c_l + b) * sigmoid(Wg c_l) + c_l
        c = e * (c @ layer.w.weight.T + layer.b) * torch.sigmoid(c @ layer.wg.weight.T) + c
    if structure == "parallel":
        want = torch.cat([c, _mlp_manual(m.dnn, e)], dim=1) @ m.fc.weight.T + m.fc.bias
    elif structure == "stacked":
        want = _mlp_manual(m.dnn, c)
    else:
        want = c @ m.fc.weight.T + m.fc.bias
    torch.testing.assert_close(m(**x), want[:, 0])


def test_gdcn_gate_importance():
    m = _randomize(GDCN(SPEC, 2, structure="parallel", num_cross_layers=2, dnn_hidden_units=[4]))
    x = _inputs(7)
    imp = m.gate_importance(**x)
    e = torch.cat(_manual_embeddings(m.embedding, x, [2] * 5), dim=1)
    gate0 = torch.sigmoid(e @ m.cross.layers[0].wg.weight.T).mean(0)
    assert imp.shape == (2, 5)
    torch.testing.assert_close(imp[0], gate0.view(5, 2).mean(1))
    assert m.training is False


def test_dcnv2_and_deepfm_match_hand_computation():
    x = _inputs()
    m = _randomize(DCNv2(SPEC, 2, num_cross_layers=2, parallel_dnn_hidden_units=[3]))
    e = torch.cat(_manual_embeddings(m.embedding, x, [2] * 5), dim=1)
    c = e
    for layer in m.cross.layers:  # x_{l+1} = x0 * (W x_l + b) + x_l
        c = e * (c @ layer.weight.T + layer.bias) + c
    want = torch.cat([c, _mlp_manual(m.parallel_dnn, e)], dim=1) @ m.fc.weight.T + m.fc.bias
    torch.testing.assert_close(m(**x), want[:, 0])
    fm = _randomize(DeepFM(SPEC, 2, [3]))
    parts = _manual_embeddings(fm.embedding, x, [2] * 5)
    pair = sum((parts[i] * parts[j]).sum(1) for i in range(5) for j in range(i + 1, 5))
    first = sum(p[:, 0] for p in _manual_embeddings(fm.lr.embedding, x, [1] * 5)) + fm.lr.bias
    deep = _mlp_manual(fm.mlp, torch.cat(parts, dim=1))[:, 0]
    torch.testing.assert_close(fm(**x), first + pair + deep)


def _frappe_spec():
    return {
        "fields": [
            {"name": k, "type": "categorical", "vocab_size": v, "num_tokens": v - 2}
            for k, v in FRAPPE_X1_VOCAB.items()
        ]
    }


def test_parameter_counts_match_fuxictr_logs():
    """Parameter counts with the official Frappe_x1 vocabulary sizes, as printed in the BARS /
    RecZoo logs (FinalMLP 253392 with FuxiCTR's two fusion biases -- one here -- and DualMLP 972992)."""
    from gatelab.recsys.models.presets import preset

    spec = _frappe_spec()
    fin = FinalMLP(spec, **preset("frappe", "finalmlp")["model"])
    assert sum(p.numel() for p in fin.parameters()) == 253392 - 1
    dual = DualMLP(spec, **preset("frappe", "dualmlp")["model"])
    assert sum(p.numel() for p in dual.parameters()) == 972992
    emb, other = model_param_groups(fin)
    # main table + separate user/item context tables, as FuxiCTR's fs*_ctx_emb
    assert sum(p.numel() for p in emb) == 10 * (sum(f["vocab_size"] for f in spec["fields"]) + FRAPPE_X1_VOCAB["user"] + FRAPPE_X1_VOCAB["item"])
    assert {id(p) for p in emb}.isdisjoint({id(p) for p in other})


def test_fdo_dimensions_follow_pca():
    m = GDCN(SPEC, 4, dnn_hidden_units=[4])
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        basis = torch.randn(2, 4, generator=g)
        for name, rank in (("user", 1), ("item", 2)):
            t = m.embedding.field_table(name)
            coef = torch.randn(t.shape[0], rank, generator=g) * torch.tensor([10.0, 1.0][:rank])
            t.copy_(coef @ basis[:rank])
        t = m.embedding.field_table("ctx")
        t.copy_(torch.randn(t.shape, generator=g))
    dims = fdo_embedding_dims(m, ratio=0.999)
    assert dims["user"] == 1 and dims["item"] == 2 and dims["price"] == 4
    assert 1 <= dims["ctx"] <= 2  # 3 non-padding rows: rank <= 2 after centering
    dims = fdo_embedding_dims(m, ratio=0.5)
    assert dims["item"] == 1  # the first component (x10 scale) explains > 50%
    from gatelab.recsys.data import as_feature_spec

    spec2 = as_feature_spec(SPEC).with_embedding_dims(dims)
    m2 = GDCN(spec2.model_dict(), 4, dnn_hidden_units=[4])
    assert m2.embedding.output_dim == sum(dims.values())
    assert m2(**_inputs()).shape == (5,)


def test_bad_config_is_an_error():
    from gatelab import create_model
    from gatelab.core.config import ConfigError

    with pytest.raises(ConfigError, match="unexpected keyword"):
        create_model("finalmlp", feature_spec=SPEC, crossing_layers=3)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        FinalMLP(SPEC, 2, [4], mlp2_hidden_units=[3], num_heads=2)
    with pytest.raises(ValueError, match="needs dnn_hidden_units"):
        GDCN(SPEC, 2, dnn_hidden_units=[])
    with pytest.raises(KeyError, match="no field 'shop'"):
        FinalMLP(SPEC, 2, [4], fs1_context=["shop"])


def test_dropout_distribution_and_eval_identity():
    from gatelab.recsys.models import Dropout

    d = Dropout(0.3)
    x = torch.ones(200, 500)
    y = d(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.01  # Bernoulli(0.7) keep mask
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.7))  # inverted scaling
    d.eval()
    assert d(x) is x
    with pytest.raises(ValueError, match="p must be in"):
        Dropout(1.0)


def test_every_model_is_a_ctr_model():
    """The eight registered CTR models share one scaffold (spec -> FieldEmbedding -> tower)."""
    from gatelab.core.registry import registered
    from gatelab.recsys.models import CTRModel

    names = sorted(n for n, i in registered().items() if i.domain == "recsys")
    assert len(names) == 9  # finalmlp, dualmlp, gdcn-p, gdcn-s, gcn, lr, dnn, dcnv2, deepfm
    for name in names:
        m = registered()[name].fn(**registered()[name].tiny)
        assert isinstance(m, CTRModel) and isinstance(m.embedding, FieldEmbedding), name
    with pytest.raises(NotImplementedError):
        CTRModel(SPEC, 2)(**_inputs())
