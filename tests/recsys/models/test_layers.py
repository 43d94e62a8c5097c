"""Shared CTR layers and the CTRModel scaffold against hand-written computations."""

from __future__ import annotations

import pytest
import torch
from ctr_model_fixtures import SPEC, inputs, manual_embeddings

from gatelab.core.layers.dropout import FastDropout
from gatelab.recsys.models import FieldEmbedding


def test_field_embedding_matches_lookups_with_mixed_dims():
    spec = dict(SPEC, fields=[dict(f) for f in SPEC["fields"]])
    spec["fields"][1]["embedding_dim"] = 3  # item: 3, the rest: 2
    emb = FieldEmbedding(spec, 2)
    with torch.no_grad():
        for t in emb.tables.values():
            t.weight.normal_()
        for w in emb.numeric_weights.values():
            w.normal_()
    x = inputs()
    x["sequence"][0] = 0  # an empty sequence embeds to zero
    got = emb(**x)
    want = torch.cat(manual_embeddings(emb, x, [2, 3, 2, 2, 2]), dim=1)
    torch.testing.assert_close(got, want)
    assert emb.output_dim == 11 and not emb.equal_dims
    # the padding row of every field starts at zero; other rows ~ N(0, 1e-4^2)
    fresh = FieldEmbedding(SPEC, 4)
    for name in ("user", "item", "ctx", "tags"):
        t = fresh.field_table(name)
        assert torch.all(t[0] == 0) and 0 < t[1:].std() < 1e-3
    with pytest.raises(ValueError, match=r"categorical must be \[B, 3\]"):
        fresh(categorical=x["categorical"][:, :2], numeric=x["numeric"], sequence=x["sequence"])



def test_field_embedding_gather_backward_equals_nn_embedding():
    """The CPU lookup (index_select forward, index_put_ accumulation backward) gives the values
    and table gradients of nn.Embedding, repeated rows and sequence padding included (float64,
    equal to 1e-12 relative: only the order of additions into a row differs); a table with
    padding_idx falls back to nn.Embedding and keeps its zero padding gradient."""
    from gatelab.recsys.models import layers

    emb = FieldEmbedding(SPEC, 3, dtype=torch.float64)
    with torch.no_grad():
        for t in emb.tables.values():
            t.weight.normal_()
    x = inputs(b=64, seed=3)  # 64 rows over small vocabularies: every row is hit many times
    g = torch.randn(64, emb.output_dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    (emb(**x) * g).sum().backward()
    fast = {k: t.weight.grad.clone() for k, t in emb.tables.items()}
    values = emb(**x).detach()
    for t in emb.tables.values():
        t.weight.grad = None
    plain = layers._lookup
    layers._lookup = lambda table, idx: table(idx)  # the nn.Embedding path
    try:
        torch.testing.assert_close(emb(**x).detach(), values, rtol=0, atol=0)
        (emb(**x) * g).sum().backward()
    finally:
        layers._lookup = plain
    for k, t in emb.tables.items():
        assert fast[k].abs().sum() > 0
        torch.testing.assert_close(fast[k], t.weight.grad, rtol=1e-12, atol=1e-12)

    padded = torch.nn.Embedding(6, 2, padding_idx=0, dtype=torch.float64)
    idx = torch.tensor([[0, 1], [1, 5]])
    layers._lookup(padded, idx).sum().backward()
    assert torch.all(padded.weight.grad[0] == 0) and torch.all(padded.weight.grad[1] == 2)
    with pytest.raises(IndexError):
        layers._lookup(torch.nn.Embedding(6, 2), torch.tensor([6]))

def test_context_embedding_selects_fields_in_given_order():
    emb = FieldEmbedding(SPEC, 4, fields=["ctx", "user"])
    x = inputs()
    got = emb(**x)
    want = torch.cat(
        [emb.field_table("ctx")[x["categorical"][:, 2]], emb.field_table("user")[x["categorical"][:, 0]]],
        dim=1,
    )
    torch.testing.assert_close(got, want)


def test_every_model_is_a_ctr_model():
    """The registered CTR models share one scaffold (spec -> FieldEmbedding -> tower)."""
    from gatelab.core.registry import registered
    from gatelab.recsys.models import CTRModel

    names = sorted(n for n, i in registered().items() if i.domain == "recsys")
    assert len(names) == 10  # finalmlp, dualmlp, gdcn-p, gdcn-s, gcn, fignn, lr, dnn, dcnv2, deepfm
    for name in names:
        m = registered()[name].fn(**registered()[name].tiny)
        assert isinstance(m, CTRModel) and isinstance(m.embedding, FieldEmbedding), name
    with pytest.raises(NotImplementedError, match="build_tower"):
        CTRModel(feature_spec=SPEC, embedding_dim=2)


@pytest.mark.parametrize(("batch_norm", "dropout"), [(False, 0.5), (True, 0.5), (False, 0.3)])
def test_mlp_block_fast_forward_equals_module_by_module(batch_norm, dropout):
    """MLPBlock.forward (in-place ReLU, fused ReLU+Dropout) == nn.Sequential's module-by-module call
    with the same dropout draws: outputs and parameter gradients, train and eval."""
    from gatelab.recsys.models import MLPBlock

    torch.manual_seed(0)
    block = MLPBlock(6, [8, 5], 1, dropout=dropout, batch_norm=batch_norm)
    assert isinstance(block[3 if batch_norm else 2], FastDropout)  # core's dropout, not a domain copy
    x = torch.randn(16, 6)
    for train in (True, False):
        block.train(train)
        results = []
        for fwd in (block.forward, lambda t: torch.nn.Sequential.forward(block, t)):
            torch.manual_seed(7)
            out = fwd(x)
            results.append((out, torch.autograd.grad(out.square().sum(), list(block.parameters()))))
        (a, ga), (b, gb) = results
        torch.testing.assert_close(a, b)
        for u, v in zip(ga, gb):
            torch.testing.assert_close(u, v)
