"""Fi-GNN: hand-written math, dense == sparse (PyG batch) graph, and FuxiCTR's FiGNN with copied weights."""

from __future__ import annotations

import importlib.util
import math
import os
import sys
from pathlib import Path

import pytest
import torch
from ctr_model_fixtures import frappe_spec
from torch.testing import assert_close

from gatelab.core import capture_gates
from gatelab.core.config import ConfigError
from gatelab.core.registry import create_model
from gatelab.recsys.models import FiGNN, FiGNNConfig, example_inputs, tiny_feature_spec

D64 = torch.float64


def _spec(num_fields: int = 4) -> dict:
    vocab = [7, 9, 5, 6, 4, 8][:num_fields]
    return {
        "fields": [
            {"name": f"f{k}", "type": "categorical", "vocab_size": v, "num_tokens": v - 2} for k, v in enumerate(vocab)
        ]
    }


def _perturb(m: torch.nn.Module) -> torch.nn.Module:
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return m


def _hand(m: FiGNN, e: torch.Tensor) -> torch.Tensor:
    """FuxiCTR's FiGNN forward re-derived with loops over fields: e [B, F, d] -> logit [B]."""
    cfg = m.config
    b, f, d = e.shape
    w = m.edge_attention.weight[0]
    p = m.propagation
    out = torch.zeros(b, dtype=e.dtype)
    for n in range(b):
        h1 = e[n]
        if m.attention is not None:
            heads = cfg.num_heads
            dk = d // heads
            wq, wk, wv = m.attention.qkv.weight.split(d)
            cols = []
            for k in range(heads):
                sl = slice(k * dk, (k + 1) * dk)
                q, kk, v = h1 @ wq[sl].T, h1 @ wk[sl].T, h1 @ wv[sl].T
                cols.append(torch.softmax(q @ kk.T / math.sqrt(dk), dim=-1) @ v)
            h1 = torch.relu(torch.cat(cols, dim=-1))
        A = torch.zeros(f, f, dtype=e.dtype)
        for i in range(f):
            logits = torch.stack(
                [torch.nn.functional.leaky_relu(w @ torch.cat([h1[i], h1[j]]), 0.01) for j in range(f) if j != i]
            )
            A[i, [j for j in range(f) if j != i]] = torch.softmax(logits, 0)
        h = h1.clone()
        for t in range(cfg.num_layers):
            s = 0 if cfg.share_weights else t
            a = torch.stack(
                [
                    p.weight_in[s, i] @ sum(A[i, j] * (p.weight_out[s, j] @ h[j]) for j in range(f)) + p.bias_in[s]
                    for i in range(f)
                ]
            )
            if cfg.update == "gru":
                cell = torch.nn.GRUCell(d, d, dtype=e.dtype)
                with torch.no_grad():
                    cell.weight_ih.copy_(p.gru_ih.weight), cell.bias_ih.copy_(p.gru_ih.bias)
                    cell.weight_hh.copy_(p.gru_hh.weight), cell.bias_hh.copy_(p.gru_hh.bias)
                h = cell(a, h)
            else:
                h = a + h
            if cfg.residual:
                h = h + h1
        score = h @ m.score.weight[0]
        weight = torch.sigmoid(m.score_weight.weight @ h.reshape(-1))
        out[n] = (weight * score).sum()
    return out


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(num_layers=3, update="gru"),
        dict(num_layers=2, update="add", residual=False),
        dict(num_layers=3, update="add", share_weights=True),
        dict(num_layers=2, self_attention=True, num_heads=2),
    ],
    ids=["gru", "add-no-residual", "shared", "self-attention"],
)
def test_fignn_matches_hand_computation(kwargs):
    torch.manual_seed(0)
    m = _perturb(FiGNN(feature_spec=_spec(), embedding_dim=4, dtype=D64, **kwargs)).eval()
    x = example_inputs(m.feature_spec, 3, generator=torch.Generator().manual_seed(1))
    e = m.embedding(**x).view(3, 4, 4)
    with torch.no_grad():
        assert_close(m(**x), _hand(m, e))


def test_dense_and_sparse_graphs_agree():
    """graph="sparse" runs the propagation on a PyG batch (B * F nodes): same logits and gradients."""
    torch.manual_seed(0)
    dense = _perturb(FiGNN(feature_spec=_spec(5), embedding_dim=4, num_layers=3, dtype=D64))
    sparse = FiGNN(dense.config, graph="sparse", dtype=D64)
    sparse.load_state_dict(dense.state_dict())
    x = example_inputs(dense.feature_spec, 6, generator=torch.Generator().manual_seed(2))
    yd, ys = dense(**x), sparse(**x)
    assert_close(ys, yd)
    yd.sum().backward()
    ys.sum().backward()
    for (n, p), q in zip(dense.named_parameters(), sparse.parameters()):
        assert_close(q.grad, p.grad, msg=n)


def test_gates_are_recorded():
    m = create_model("fignn", feature_spec=tiny_feature_spec(), embedding_dim=4, num_layers=2)
    x = example_inputs(m.feature_spec, 3)
    with capture_gates(m) as gates:
        m(**x)
    a = gates["FiGNN:edges"]
    f = m.num_fields
    assert a.shape == (3, f, f)
    assert_close(a.sum(-1), torch.ones(3, f))  # a softmax over the other fields
    assert (a.diagonal(dim1=1, dim2=2) == 0).all()  # no self-loops
    assert gates["FiGNN:scoring"].shape == (3, f)
    assert len(gates.all("propagation:update")) == 2


def test_config_rules():
    with pytest.raises(ConfigError, match="same embedding size"):
        spec = _spec()
        spec["fields"][1]["embedding_dim"] = 6
        FiGNNConfig(feature_spec=spec, embedding_dim=4)
    with pytest.raises(ConfigError, match="at least 2 fields"):
        FiGNNConfig(feature_spec=_spec(1))
    with pytest.raises(ConfigError, match=r"num_heads=3: must divide the embedding size 4"):
        FiGNNConfig(feature_spec=_spec(), embedding_dim=4, self_attention=True, num_heads=3)
    with pytest.raises(ConfigError, match="graph"):
        FiGNNConfig(feature_spec=_spec(), graph="csr")


def test_frappe_preset_parameter_count():
    """BARS FiGNN_frappe_x1_003: 17 separate graph layers of 2 [F, d, d] matrices + a bias, the
    edge attention (2d) and the scoring layers (d + F*d*F), on top of the embeddings."""
    m = create_model("fignn", preset="frappe-x1", feature_spec=frappe_spec())
    f, d = 10, 10
    emb = sum(p.numel() for p in m.embedding.parameters())
    assert sum(p.numel() for p in m.parameters()) - emb == 17 * (2 * f * d * d + d) + 2 * d + d + f * d * f
    assert m.propagation.gru_ih is None and m.propagation.residual


# --------------------------------------------------------------------------- FuxiCTR's model_zoo FiGNN


def _fuxictr_fignn():
    """FuxiCTR's ``model_zoo/FiGNN/src`` (not in its pip package): ``$GATELAB_FUXICTR_MODEL_ZOO``."""
    pytest.importorskip("fuxictr")
    zoo = os.environ.get("GATELAB_FUXICTR_MODEL_ZOO")
    src = Path(zoo or "/nonexistent") / "FiGNN" / "src" / "__init__.py"
    if not src.is_file():
        pytest.skip("set GATELAB_FUXICTR_MODEL_ZOO to a reczoo/FuxiCTR checkout's model_zoo folder")
    spec = importlib.util.spec_from_file_location("fuxictr_zoo_fignn", src, submodule_search_locations=[str(src.parent)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod.FiGNN


@pytest.mark.parametrize("use_gru", [True, False])
def test_fignn_equals_fuxictr(tmp_path, use_gru):
    FuxiFiGNN = _fuxictr_fignn()
    from fuxictr.features import FeatureMap

    spec = _spec(5)
    fm = FeatureMap("fignn_test", str(tmp_path))
    for fld in spec["fields"]:
        fm.features[fld["name"]] = {"source": "", "type": "categorical", "padding_idx": 0, "vocab_size": fld["vocab_size"]}
    fm.labels = ["label"]
    fm.num_fields = len(spec["fields"])
    fm.default_emb_dim = 6
    fm.set_column_index()
    torch.manual_seed(0)
    theirs = FuxiFiGNN(
        fm,
        model_id="fignn_test",
        gpu=-1,
        embedding_dim=6,
        gnn_layers=3,
        use_gru=use_gru,
        use_residual=True,
        reuse_graph_layer=False,
        optimizer="adam",
        loss="binary_crossentropy",
        metrics=["AUC"],
        model_root=str(tmp_path),
        verbose=0,
    ).eval()
    ours = FiGNN(feature_spec=spec, embedding_dim=6, num_layers=3, update="gru" if use_gru else "add").eval()
    layer = theirs.fignn
    with torch.no_grad():
        for fld in spec["fields"]:
            tab = theirs.embedding_layer.embedding_layer.embedding_layers[fld["name"]].weight
            tab.normal_()  # off FuxiCTR's 1e-4 init, so the embeddings matter
            ours.embedding.field_table(fld["name"]).copy_(tab)
        ours.edge_attention.weight.copy_(layer.W_attn.weight)
        for t in range(3):
            ours.propagation.weight_out[t].copy_(layer.gnn[t].W_out)
            ours.propagation.weight_in[t].copy_(layer.gnn[t].W_in)
            ours.propagation.bias_in[t].copy_(layer.gnn[t].bias_p.normal_())
        if use_gru:
            ours.propagation.gru_ih.weight.copy_(layer.gru.weight_ih)
            ours.propagation.gru_ih.bias.copy_(layer.gru.bias_ih)
            ours.propagation.gru_hh.weight.copy_(layer.gru.weight_hh)
            ours.propagation.gru_hh.bias.copy_(layer.gru.bias_hh)
        ours.score.weight.copy_(theirs.fc.mlp1.weight)
        ours.score_weight.weight.copy_(theirs.fc.mlp2[0].weight)
    g = torch.Generator().manual_seed(3)
    cols = {fld["name"]: torch.randint(1, fld["vocab_size"], (16,), generator=g) for fld in spec["fields"]}
    with torch.no_grad():
        p_theirs = theirs({**cols, "label": torch.zeros(16)})["y_pred"].view(-1)
        p_ours = torch.sigmoid(ours(categorical=torch.stack(list(cols.values()), dim=1)))
    assert p_theirs.std() > 1e-3  # the predictions are not all alike
    assert_close(p_ours, p_theirs, rtol=1e-5, atol=1e-6)
