"""``gatelab repro vl-gating --quick`` end to end on fixtures: rows, side tables, figure."""

from __future__ import annotations

import json

from gatelab.core.harness import run_table
from gatelab.core.harness.ledger import read_records


def test_quick_repro_on_fixtures(vl_data_dir, tmp_path):
    res_dir = tmp_path / "results"
    argv = [
        "--quick",
        "--skip-checksums",
        "--data-dir",
        str(vl_data_dir),
        "--output-dir",
        str(tmp_path / "runs"),
        "--results-dir",
        str(res_dir),
        "--shapes-train",
        "64",
        "--gallery",
        "8",
    ]
    out = run_table("vl-gating", argv)
    rows = {(r["dataset"], r["variant"]): r for r in out.rows}
    assert set(rows) == {
        ("text-corpora", "text-pretrain-quick"),
        ("shapes", "gate-scalar-quick"),
        ("shapes", "gate-vector-quick"),
        ("shapes", "no-gate-quick"),
        ("shapes", "always-visual-quick"),
        ("coco-mini-captions", "gate-scalar-quick"),
    }
    gate = rows[("shapes", "gate-scalar-quick")]
    for key in (
        "blimp",
        "text_ppl",
        "ppl_image",
        "ppl_noimage",
        "r@1",
        "r@5",
        "clip_r@1",
        "gate_colour",
        "gate_function",
    ):
        assert isinstance(gate[key], float), key
    assert 0 <= gate["r@1"] <= gate["r@5"] <= 100 and 0 < gate["gate_colour"] < 1
    assert "gate_colour" not in rows[("shapes", "no-gate-quick")]
    cfg = json.loads(gate["config"])  # the cell's experiment, with the quick settings
    assert cfg["model"] == {"name": "vl-gated-decoder", "kwargs": {"dropout": 0.1, "d_model": 32, "n_layers": 2,
                                                                   "n_heads": 2, "gate_mode": "scalar"}}
    assert cfg["trainer"]["max_epochs"] == 1 and gate["budget"].startswith("max_epochs=1;")
    assert "init_from" not in cfg["task"]["kwargs"]  # a path: not hashed
    assert gate["command"].startswith("gatelab repro vl-gating --quick")
    blimp = read_records("vl-gating-blimp", res_dir)
    assert len(blimp) == 5 * 68  # 5 models x (67 paradigms + overall)
    gates = read_records("vl-gating-gates", res_dir)
    assert {r["dataset"] for r in gates} == {"shapes", "coco-mini-captions"}
    words = {r["variant"]: r for r in gates if r["dataset"] == "shapes" and "word=" in r["variant"]}
    assert "gate-scalar-quick word=the" in words and words["gate-scalar-quick word=the"]["n"] > 10
    assert (res_dir / "vl-gating-gates-quick.png").read_bytes()[:4] == b"\x89PNG"
    assert "paper_blimp" not in gate  # the paper's number attaches to the full run's row only
    assert (res_dir / "vl-gating.md").is_file()
