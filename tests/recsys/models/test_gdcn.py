"""GDCN against a hand-written computation, its gate importance and FDO."""

from __future__ import annotations

import pytest
import torch
from ctr_model_fixtures import SPEC, inputs, manual_embeddings, mlp_manual, randomize

from gatelab.recsys.models import GDCN, fdo_embedding_dims


@pytest.mark.parametrize("structure", ["parallel", "stacked", "crossnet_only"])
def test_gdcn_matches_hand_computation(structure):
    m = randomize(
        GDCN(
            feature_spec=SPEC,
            embedding_dim=2,
            structure=structure,
            num_cross_layers=2,
            dnn_hidden_dims=[] if structure == "crossnet_only" else [4],
            batch_norm=True,
        )
    )
    x = inputs()
    e = torch.cat(manual_embeddings(m.embedding, x, [2] * 5), dim=1)
    c = e
    for layer in m.cross.layers:  # c_{l+1} = c0 * (W c_l + b) * sigmoid(Wg c_l) + c_l
        c = e * (c @ layer.w.weight.T + layer.b) * torch.sigmoid(c @ layer.wg.weight.T) + c
    if structure == "parallel":
        want = torch.cat([c, mlp_manual(m.dnn, e)], dim=1) @ m.fc.weight.T + m.fc.bias
    elif structure == "stacked":
        want = mlp_manual(m.dnn, c)
    else:
        want = c @ m.fc.weight.T + m.fc.bias
    torch.testing.assert_close(m(**x), want[:, 0])



def test_gdcn_p_training_gradients_match_the_formula():
    """GDCN-P in training mode (batch statistics, the two matrix-vector head, the fused cross
    step, the embedding gather): loss and every parameter gradient equal autograd through the
    hand formula (float64, 1e-10 relative, 1e-12 of the largest gradient absolute; dropout 0 so both sides are deterministic)."""
    torch.manual_seed(0)
    m = GDCN(
        feature_spec=SPEC, embedding_dim=3, num_cross_layers=2, dnn_hidden_dims=[6, 5], batch_norm=True,
        dtype=torch.float64,
    )
    with torch.no_grad():
        for t in m.embedding.tables.values():
            t.weight.normal_()
    x = inputs(b=32, seed=2)
    w = torch.randn(32, dtype=torch.float64)
    (m(**x) * w).sum().backward()
    got = {n: p.grad.clone() for n, p in m.named_parameters()}
    m.zero_grad()
    e = m.embedding(**x)
    c = e
    for layer in m.cross.layers:
        c = e * (c @ layer.w.weight.T + layer.b) * torch.sigmoid(c @ layer.wg.weight.T) + c
    h = e
    for mod in m.dnn:
        if isinstance(mod, torch.nn.Linear):
            h = h @ mod.weight.T + mod.bias
        elif isinstance(mod, torch.nn.BatchNorm1d):
            mu, var = h.mean(0), h.var(0, unbiased=False)
            h = (h - mu) / torch.sqrt(var + mod.eps) * mod.weight + mod.bias
        else:
            h = torch.clamp(h, min=0)
    want = torch.cat([c, h], dim=1) @ m.fc.weight.T + m.fc.bias
    (want[:, 0] * w).sum().backward()
    # one scale for all: a hidden Linear's bias before BatchNorm has a zero gradient (rounding noise)
    scale = max(float(p.grad.abs().max()) for p in m.parameters())
    for n, p in m.named_parameters():
        torch.testing.assert_close(got[n], p.grad, rtol=1e-10, atol=1e-12 * scale, msg=n)

def test_gdcn_gate_importance():
    m = randomize(GDCN(feature_spec=SPEC, embedding_dim=2, structure="parallel", num_cross_layers=2, dnn_hidden_dims=[4]))
    x = inputs(7)
    imp = m.gate_importance(**x)
    e = torch.cat(manual_embeddings(m.embedding, x, [2] * 5), dim=1)
    gate0 = torch.sigmoid(e @ m.cross.layers[0].wg.weight.T).mean(0)
    assert imp.shape == (2, 5)
    torch.testing.assert_close(imp[0], gate0.view(5, 2).mean(1))
    assert m.training is False


def test_fdo_dimensions_follow_pca():
    m = GDCN(feature_spec=SPEC, embedding_dim=4, dnn_hidden_dims=[4])
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
    m2 = GDCN(feature_spec=spec2, embedding_dim=4, dnn_hidden_dims=[4])  # a FeatureSpec is accepted
    assert m2.embedding.output_dim == sum(dims.values())
    assert m2(**inputs()).shape == (5,)
