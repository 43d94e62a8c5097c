"""Helpers of the recsys model tests: a tiny spec, inputs, and hand-written embeddings / MLPs."""

from __future__ import annotations

import torch

from gatelab.recsys.data.frappe import FRAPPE_X1_VOCAB
from gatelab.recsys.models import FieldEmbedding, example_inputs, tiny_feature_spec

SPEC = tiny_feature_spec()  # user, item (cat), price (num), ctx (cat), tags (seq, max_len 3)


def inputs(b=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return example_inputs(SPEC, b, generator=g)


def manual_embeddings(emb: FieldEmbedding, x, dims):
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


def mlp_manual(block, h):
    """Apply an MLPBlock layer by layer with explicit formulas (eval mode: BN uses running stats)."""
    for m in block:
        if isinstance(m, torch.nn.Linear):
            h = h @ m.weight.T + m.bias
        elif isinstance(m, torch.nn.BatchNorm1d):
            h = (h - m.running_mean) / torch.sqrt(m.running_var + m.eps) * m.weight + m.bias
        elif isinstance(m, torch.nn.ReLU):
            h = torch.clamp(h, min=0)
    return h


def randomize(model):
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def frappe_spec():
    return {
        "fields": [
            {"name": k, "type": "categorical", "vocab_size": v, "num_tokens": v - 2}
            for k, v in FRAPPE_X1_VOCAB.items()
        ]
    }
