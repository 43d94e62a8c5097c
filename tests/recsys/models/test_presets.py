"""The Frappe presets: parameter counts equal the BARS / RecZoo logs."""

from __future__ import annotations

from ctr_model_fixtures import frappe_spec

from gatelab.recsys.data.frappe import FRAPPE_X1_VOCAB
from gatelab.recsys.models import DualMLP, FinalMLP, model_param_groups


def test_parameter_counts_match_fuxictr_logs():
    """Parameter counts with the official Frappe_x1 vocabulary sizes, as printed in the BARS /
    RecZoo logs (FinalMLP 253392 with FuxiCTR's two fusion biases -- one here -- and DualMLP 972992)."""
    from gatelab.recsys.models.presets import preset

    spec = frappe_spec()
    fin = FinalMLP(spec, **preset("frappe", "finalmlp")["model"])
    assert sum(p.numel() for p in fin.parameters()) == 253392 - 1
    dual = DualMLP(spec, **preset("frappe", "dualmlp")["model"])
    assert sum(p.numel() for p in dual.parameters()) == 972992
    emb, other = model_param_groups(fin)
    # main table + separate user/item context tables, as FuxiCTR's fs*_ctx_emb
    assert sum(p.numel() for p in emb) == 10 * (
        sum(f["vocab_size"] for f in spec["fields"]) + FRAPPE_X1_VOCAB["user"] + FRAPPE_X1_VOCAB["item"]
    )
    assert {id(p) for p in emb}.isdisjoint({id(p) for p in other})
