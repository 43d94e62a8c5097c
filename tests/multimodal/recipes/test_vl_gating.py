"""``gatelab repro vl-gating --quick`` end to end on fixtures: rows, side tables, figure."""

from __future__ import annotations

import json

import pytest

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
    out = run_table("vl-gating", argv)  # --quick: the first of the default seeds 0 1 2 only
    rows = {(r["dataset"], r["variant"]): r for r in out.rows}
    assert {r["seed"] for r in out.rows} == {0}
    assert set(rows) == {
        ("text-corpora", "text-pretrain-quick"),
        ("shapes", "gate-scalar-quick"),
        ("shapes", "gate-vector-quick"),
        ("shapes", "no-gate-quick"),
        ("shapes", "always-visual-quick"),
        ("coco-mini-captions", "gate-scalar-quick"),
    }
    gate = rows[("shapes", "gate-scalar-quick")]
    for key in ("blimp", "text_ppl", "ppl_image", "ppl_noimage", "r@1", "r@5", "clip_r@1"):
        assert isinstance(gate[key], float), key
    for cls in ("colour", "shape", "position", "function", "punct"):  # every class of the captions
        assert 0 < gate[f"gate_last_{cls}"] < 1 and 0 < gate[f"gate_mean_{cls}"] < 1, cls
    assert 0 <= gate["r@1"] <= gate["r@5"] <= 100
    assert not any(k.startswith("gate_") for k in rows[("shapes", "no-gate-quick")])
    cfg = json.loads(gate["config"])  # the cell's experiment, with the quick settings
    assert cfg["model"] == {"name": "vl-gated-decoder", "kwargs": {"dropout": 0.1, "d_model": 32, "num_layers": 2,
                                                                   "num_heads": 2, "gate_mode": "scalar"}}
    assert cfg["trainer"]["max_epochs"] == 1 and gate["budget"].startswith("max_epochs=1;")
    assert "init_from" not in cfg["task"]["kwargs"]  # a path: not hashed
    assert gate["command"].startswith("gatelab repro vl-gating --quick")
    assert read_records("vl-gating-quick", res_dir) and not (res_dir / "vl-gating.jsonl").exists()
    blimp = read_records("vl-gating-blimp-quick", res_dir)
    assert len(blimp) == 5 * 68  # 5 models x (67 paradigms + overall)

    # the gate side table: a row per (word class, layer reading) of each gated run
    gates = read_records("vl-gating-gates-quick", res_dir)
    assert {r["dataset"] for r in gates} == {"shapes", "coco-mini-captions"}
    shapes = {(r["variant"], r["model"], r["split"]): r for r in gates if r["dataset"] == "shapes"}
    for v in ("gate-scalar-quick", "gate-vector-quick"):
        for cls in ("colour", "shape", "position", "function", "punct"):
            assert {s for (vv, c, s) in shapes if vv == v and c == cls} == {"last", "mean", "layer0", "layer1"}
            last, mean = shapes[v, cls, "last"], shapes[v, cls, "mean"]
            assert last["gate"] == shapes[v, cls, "layer1"]["gate"]  # 2 layers: the last is layer1
            assert mean["gate"] == pytest.approx((shapes[v, cls, "layer0"]["gate"] + last["gate"]) / 2, abs=1e-6)
            assert last["n"] > 0 and last["config_hash"] and last["decoder"] == "vl-gated-decoder"
    assert shapes["gate-scalar-quick", "colour", "last"]["gate"] == gate["gate_last_colour"]
    md = (res_dir / "vl-gating-gates-quick.md").read_text()
    assert "## Paired comparisons" in md and "gate: colour − function" in md  # one seed: fewer than 2 pairs
    words = {r["variant"]: r for r in read_records("vl-gating-words-quick", res_dir) if r["dataset"] == "shapes"}
    assert "gate-scalar-quick word=the" in words and words["gate-scalar-quick word=the"]["n"] > 10
    assert (res_dir / "vl-gating-gates-quick.png").read_bytes()[:4] == b"\x89PNG"
    assert "paper_blimp" not in gate  # the paper's number attaches to the full run's row only
    assert (res_dir / "vl-gating-quick.md").is_file()

    # --resume: every row recorded with the same config hash, nothing trains
    again = run_table("vl-gating", [*argv, "--resume"])
    assert again.rows == [] and len(again.skipped) == 6


def test_gate_comparisons_pair_classes_of_a_run_by_seed():
    """GATE_COMPARISONS on gate rows of 3 seeds: colour above function in the last layer (every
    seed +0.2: significant), position below function (a miss, reported as NO), punct within noise."""
    from gatelab.core.harness.ledger import paired_comparisons
    from gatelab.multimodal.recipes.vl_gating import GATE_COMPARISONS, gate_claim

    base = {"dataset": "shapes", "variant": "gate-scalar", "budget": "b", "config_hash": "h"}
    gates = {"function": 0.6, "colour": 0.8, "shape": 0.7, "position": 0.5, "punct": 0.6}
    recs = []
    for seed, wiggle in ((0, 0.0), (1, 0.01), (2, -0.02)):
        for cls, g in gates.items():
            for split, shift in (("last", 0.0), ("mean", -0.1), ("layer0", -0.2)):
                noise = {"punct": (0.1, -0.1, 0.05)[seed]}.get(cls, 0.0)
                recs.append({**base, "model": cls, "split": split, "seed": seed, "gate": g + shift + wiggle + noise})
    found = {(r["comparison"], r["split"]): r for r in paired_comparisons(recs, GATE_COMPARISONS)}
    last = found["gate: colour − function", "last"]
    assert last["pairs"] == 3 and last["diff"] == pytest.approx(0.2) and last["verdict"] == "colour better"
    assert found["gate: position − function", "layer0"]["verdict"] == "function better"
    assert found["gate: colour − punct", "mean"]["verdict"] == "not significant"
    lines = gate_claim(recs)
    assert lines[0].startswith("shapes, gate-scalar, last layer: colour − function +0.200 [+0.200, +0.200] yes")
    assert "position − function -0.100 [-0.100, -0.100] NO" in lines[0] and lines[0].endswith("-> 2/6 yes")
    assert [line.split(":")[0] for line in lines] == [
        "shapes, gate-scalar, last layer", "shapes, gate-scalar, mean over layers", "shapes, gate-scalar, layer0"
    ]


@pytest.mark.slow
def test_verify_of_a_shapes_row_trains_its_text_dependency(vl_data_dir, tmp_path):
    """--verify of a shapes row: its text pre-training runs first (a dependency, no row), then the
    row itself; CPU training is deterministic, so the re-run equals the record exactly."""
    res_dir = tmp_path / "results"
    argv = ["--quick", "--skip-checksums", "--data-dir", str(vl_data_dir), "--output-dir", str(tmp_path / "runs"),
            "--results-dir", str(res_dir), "--shapes-train", "64", "--gallery", "8", "--variants", "no-gate",
            "--coco-epochs", "0"]  # fmt: skip
    assert [r["variant"] for r in run_table("vl-gating", argv).rows] == ["text-pretrain-quick", "no-gate-quick"]
    check = run_table("vl-gating", ["--quick", "--results-dir", str(res_dir), "--verify-rows", "2"])  # vl-gating-quick
    assert [r["passed"] for r in check.verify] == [True], check.markdown
    assert len(list((tmp_path / "runs" / "seed0-quick" / "text-pretrain" / "seed0").glob("version_*"))) == 2


def _opts(**kw):
    from gatelab.core.harness.repro import table_parser
    from gatelab.multimodal.recipes.vl_gating import VL_TABLE

    return vars(table_parser(VL_TABLE).parse_args([f"--{k.replace('_', '-')}={v}" for k, v in kw.items()]))


def test_cells_and_their_configs():
    from gatelab.multimodal.recipes.vl_gating import VL_RECIPE, vl_cells

    opts = _opts(output_dir="runs/x")
    assert opts["seeds"] == [0, 1, 2]  # issue 19: three seeds by default, paired in the comparisons
    cells = vl_cells(opts)
    assert [c.seed for c, _ in cells] == [0] * 6 + [1] * 6 + [2] * 6
    cells = cells[:6]
    assert [(c.model, c.dataset, c.variant, b.max_epochs) for c, b in cells] == [
        ("vl-gated-decoder", "text-corpora", "text-pretrain", 2),
        ("vl-gated-decoder", "shapes", "gate-scalar", 6),
        ("vl-gated-decoder", "shapes", "gate-vector", 6),
        ("vl-nogate-decoder", "shapes", "no-gate", 6),
        ("vl-visual-decoder", "shapes", "always-visual", 6),
        ("vl-gated-decoder", "coco-mini-captions", "gate-scalar", 10),
    ]
    text, *shapes = [VL_RECIPE.config(c, opts, b) for c, b in cells[:5]]
    assert text["data"]["name"] == "vl-text" and text["data"]["kwargs"]["save_tokenizer"] == "runs/x/seed0/tokenizer.json"
    assert text["task"]["lr"] == 1e-3 and text["model"]["kwargs"] == {"dropout": 0.1, "d_model": 192, "num_layers": 4, "num_heads": 6}
    for cfg in shapes:  # every variant: the same data, task and budget, from the same tokenizer
        assert cfg["data"]["kwargs"]["tokenizer"] == "runs/x/seed0/tokenizer.json"
        assert cfg["task"]["lr"] == 5e-4 and cfg["trainer"]["max_epochs"] == 6
        assert {k: v for k, v in cfg.items() if k not in ("name", "model")} == {
            k: v for k, v in shapes[0].items() if k not in ("name", "model")
        }
    assert [c["model"]["kwargs"].get("gate_mode") for c in shapes] == ["scalar", "vector", None, None]
    quick = vl_cells({**_opts(coco_epochs=0), "quick": True})
    assert [c.variant for c, _ in quick][-1] == "always-visual-quick" and len(quick) == 5
    with pytest.raises(ValueError, match=r"--variants: unknown \['gate'\]"):
        vl_cells({**opts, "variants": ["gate"]})
