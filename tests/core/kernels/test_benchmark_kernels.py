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


FAST = ["--interpret", "--sizes", "tiny", "--no-compile", "--iters", "1", "--repeats", "1", "--warmup", "0"]


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
    assert bench.main([*args, "--ops", "geglu"]) == 1
    assert "WRONG" in capsys.readouterr().err
    assert not (tmp_path / "kernels.jsonl").exists()
