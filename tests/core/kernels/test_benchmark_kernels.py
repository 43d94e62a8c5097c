"""benchmarks/kernels.py end to end on the CPU: cases, correctness gate, timing, ledger/CSV/markdown.

The Triton rows run through the interpreter (tiny sizes; not a speed measurement); the external
anchors (Liger-Kernel, flash-linear-attention) need CUDA, so their wiring is checked with a stand-in.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import sys

import pytest
from kernel_checks import needs_interpreter

from gatelab.core.harness import ledger
from gatelab.core.kernels import reference


@pytest.fixture(scope="module")
def bench(repo_root):
    spec = importlib.util.spec_from_file_location("bench_kernels", repo_root / "benchmarks" / "kernels.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_kernels"] = mod  # dataclasses look their module up there
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop("bench_kernels", None)


FAST = [
    "--interpret", "--sizes", "tiny", "--no-compile", "--iters", "1", "--repeats", "1", "--warmup", "0",
    "--parts", "ops",
]  # fmt: skip


@needs_interpreter
def test_tiny_run_writes_ledger_csv_and_markdown(bench, tmp_path, capsys):
    rc = bench.main([*FAST, "--results-dir", str(tmp_path), "--ops", "swiglu", "tokenwise_gate", "gla_chunk"])
    assert rc == 0
    recs = ledger.read_records("kernels", tmp_path)
    for r in recs:
        ledger.validate_record(r, "kernels")
        assert r["fwd_ms"] > 0 and r["fwd_bwd_ms"] > 0 and r["fwd_gbps"] > 0
        assert r["split"].startswith("cpu/")
    got = {(r["model"], r["split"].split("/")[1], r["variant"]) for r in recs}
    assert ("swiglu", "N=4 H=40", "eager") in got and ("swiglu", "N=4 H=40", "triton (interpreted)") in got
    assert {r["split"] for r in recs if r["model"] == "tokenwise_gate"} == {
        "cpu/scalar N=5 D=16/float32",
        "cpu/vector N=5 D=16/float32",
    }
    gla = [r for r in recs if r["model"] == "gla_chunk"]
    assert all(r["fwd_bwd_tflops"] > 0 for r in gla)  # FLOP-counted op
    # why fla did not run: no GPU (anchors installed) or not installed (plain `uv sync`)
    note = gla[0]["note"]
    assert "flash-linear-attention needs a GPU" in note or "flash-linear-attention not installed" in note
    md = (tmp_path / "kernels.md").read_text()
    assert "GPU numbers pending" in md and "| gla_chunk |" in md
    rows = list(csv.DictReader(open(tmp_path / "kernels.csv")))
    assert len(rows) == len(recs) and rows[0]["machine"] == recs[0]["machine"]
    assert "GPU numbers pending" in capsys.readouterr().out


@needs_interpreter
def test_interpreted_run_is_not_written_by_default(bench, tmp_path, monkeypatch):
    monkeypatch.setenv("GATELAB_RESULTS", str(tmp_path))
    assert bench.main([*FAST, "--ops", "gate_add_norm"]) == 0
    assert not (tmp_path / "kernels.jsonl").exists()


def test_peak_bandwidth_table(bench):
    assert bench.peak_hbm_gbps("NVIDIA H100 80GB HBM3") == 3350.0
    assert bench.peak_hbm_gbps("NVIDIA H100 PCIe") == 2000.0
    assert bench.peak_hbm_gbps("NVIDIA H100 NVL") == 3900.0
    assert bench.peak_hbm_gbps("NVIDIA H200") == 4800.0
    assert bench.peak_hbm_gbps("Some Future GPU") is None


def test_cases_cover_every_op_and_count_traffic(bench):
    from gatelab.core.kernels import ops

    new_ops = {
        "sigmoid_gate",
        "gate_add_norm",
        "feature_gate",
        "gated_cross",
        "tokenwise_gate",
        "gla_chunk",
        "topk_router",
    }
    for sizes in ("gpu", "cpu", "tiny"):
        cs = bench.cases(sizes)
        assert new_ops | {"swiglu", "geglu"} <= {c.op for c in cs} <= set(ops())
    (c,) = [c for c in bench.cases("tiny") if c.op == "swiglu"]
    assert c.bytes_fwd(2) == 3 * 4 * 40 * 2 and c.bytes_bwd(2) == 5 * 4 * 40 * 2


@needs_interpreter
def test_anchor_rows_and_ratio(bench, tmp_path, monkeypatch):
    # stand-in anchor (the reference) so the liger/fla plumbing runs without CUDA
    monkeypatch.setattr(bench, "anchor_impl", lambda op, cuda: (reference(op), ""))
    assert bench.main([*FAST, "--results-dir", str(tmp_path), "--ops", "swiglu"]) == 0
    recs = {r["variant"]: r for r in ledger.read_records("kernels", tmp_path)}
    assert set(recs) == {"eager", "triton (interpreted)", "liger"}
    tri = recs["triton (interpreted)"]
    assert tri["speedup_vs_anchor"] == pytest.approx(recs["liger"]["fwd_bwd_ms"] / tri["fwd_bwd_ms"])
    assert json.loads(tri["config"])["anchor"] == "liger"


def test_wrong_implementation_aborts(bench, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "anchor_impl", lambda op, cuda: (lambda g, v: 2 * reference(op)(g, v), ""))
    args = ["--sizes", "tiny", "--no-compile", "--impls", "eager", "liger", "--results-dir", str(tmp_path)]
    args += ["--parts", "ops"]
    assert bench.main([*args, "--ops", "geglu"]) == 1
    assert "WRONG" in capsys.readouterr().err
    assert not (tmp_path / "kernels.jsonl").exists()


def test_dispatch_part_writes_its_ledger(bench, tmp_path, capsys):
    args = ["--parts", "dispatch", "--dispatch-rounds", "3", "--dispatch-calls", "200"]
    assert bench.main([*args, "--results-dir", str(tmp_path)]) == 0
    recs = ledger.read_records(bench.DISPATCH_TABLE, tmp_path)
    assert not (tmp_path / "kernels.jsonl").exists()  # no op rows in a dispatch-only run
    got = {(r["split"], r["variant"]) for r in recs}
    assert ("cpu/identity [4, 8]", "auto") in got and ("cpu/swiglu [4, 8]", "use_backend(reference)") in got
    for r in recs:
        ledger.validate_record(r, bench.DISPATCH_TABLE)
        assert r["dispatch_us"] > 0 and r["direct_us"] > 0
        assert r["overhead_us_q1"] <= r["overhead_us"] <= r["overhead_us_q3"]
        assert r["meets_goal"] == (r["overhead_us"] < bench.DISPATCH_GOAL_US)
        assert json.loads(r["config"])["threads"] == 1
    md = (tmp_path / f"{bench.DISPATCH_TABLE}.md").read_text()
    assert "Kernel dispatch overhead" in md and "overhead_us" in md
    out = capsys.readouterr().out
    assert "goals (issue 17 point 5)" in out and "pending" in out


def test_layer_part_is_pending_without_cuda(bench, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA machine runs the layer comparison")
    assert bench.main(["--parts", "layer", "--no-write"]) == 0
    out = capsys.readouterr().out
    assert "gla_layer: pending" in out and "GPU numbers pending" in out


def test_goal_checks(bench):
    def rec(model, variant, split, **m):
        return {"model": model, "variant": variant, "split": split, **m}

    assert all(status == "pending" for _, status in bench.goal_checks([]))
    recs = [
        rec("swiglu", "triton", "nvidia-h100/N=1/bfloat16", pct_hbm_fwd_bwd=90.0, speedup_vs_anchor=1.1),
        rec("swiglu", "triton", "nvidia-h100/N=2/bfloat16", pct_hbm_fwd_bwd=80.0, speedup_vs_anchor=0.9),
        rec("swiglu", "triton (interpreted)", "cpu/N=1/float32", pct_hbm_fwd_bwd=1.0),  # never counts
        rec("gla_chunk", "triton", "nvidia-h100/B=8/bfloat16", speedup_vs_anchor=0.85),
        rec("gla_chunk", "triton", "nvidia-h100/B=8/float32", speedup_vs_anchor=0.1),  # not bf16
        rec("gla_layer", "triton", "nvidia-h100/B=8/bfloat16", speedup_vs_anchor=0.7),
        rec("dispatch", "auto", "cpu/identity [4, 8]", overhead_us=1.2),
        rec("dispatch", "auto", "cpu/swiglu [4, 8]", overhead_us=1.9),
        rec("dispatch", "use_backend(reference)", "cpu/swiglu [4, 8]", overhead_us=9.0),  # explicit path
    ]
    got = [status for _, status in bench.goal_checks(recs)]
    assert got == ["MISSED (80.0%)", "MISSED (0.90x)", "met", "MISSED (0.70x)", "met"]


def test_fla_layer_gets_our_weights(bench):
    pytest.importorskip("fla.layers.gla")
    import torch

    from gatelab.core import GatedLinearAttention

    ours = GatedLinearAttention(64, 4)
    ref = bench.fla_gla_layer(ours)
    theirs = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        other = theirs["g_norm_swish_gate.weight" if name == "norm_weight" else name]
        assert torch.equal(p, other), name
    assert len(theirs) == len(dict(ours.named_parameters()))
    assert (ref.key_dim, ref.value_dim, ref.num_heads) == (ours.key_dim, ours.value_dim, ours.num_heads)
