"""benchmarks/recsys_speed.py: the statistics (paired ratios, bootstrap interval) and, where FuxiCTR's
model zoo is available ($GATELAB_FUXICTR_MODEL_ZOO), a tiny step-mode run end to end."""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import sys

import pytest


@pytest.fixture(scope="module")
def bench(repo_root):
    spec = importlib.util.spec_from_file_location("bench_recsys_speed", repo_root / "benchmarks" / "recsys_speed.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_recsys_speed"] = mod
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop("bench_recsys_speed", None)


def test_bootstrap_interval_brackets_the_median_and_narrows(bench):
    few = [1.4, 1.6, 1.5, 1.7, 1.3]
    lo, hi = bench.bootstrap_median_ci(few)
    assert lo <= statistics.median(few) <= hi
    assert (lo, hi) == bench.bootstrap_median_ci(few)  # seeded
    many = [1.5 + 0.1 * ((i * 7) % 11 - 5) / 5 for i in range(60)]
    lo2, hi2 = bench.bootstrap_median_ci(many)
    assert hi2 - lo2 < hi - lo
    assert bench.bootstrap_median_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)
    with pytest.raises(ValueError, match="no values"):
        bench.bootstrap_median_ci([])


def test_rows_use_paired_per_round_ratios(bench):
    rates = {"gatelab": [30.0, 10.0, 20.0], "fuxictr": [10.0, 5.0, 10.0]}  # ratios 3, 2, 2
    (row,) = bench._rows("gdcn-p", "frappe", "train-epoch", rates, "fuxictr x", {"threads": 1})
    assert row["speedup"] == 2.0  # median of the paired ratios, not 20 / 10
    assert row["samples_per_s"] == 20.0 and row["baseline_samples_per_s"] == 10.0
    assert row["speedup_lo"] <= 2.0 <= row["speedup_hi"] and row["rounds"] == 3
    assert json.loads(row["config"])["all_rates"] == rates


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("GATELAB_FUXICTR_MODEL_ZOO"), reason="needs FuxiCTR's model_zoo ($GATELAB_FUXICTR_MODEL_ZOO)"
)
def test_tiny_step_run(bench, capsys):
    pytest.importorskip("fuxictr")
    argv = ["--models", "gdcn-p", "--mode", "step", "--batch-size", "64", "--rounds", "2", "--steps", "1"]
    assert bench.main([*argv, "--warmup", "1", "--dry-run"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [(r["model"], r["split"], r["rounds"]) for r in rows] == [("gdcn-p", "train-step", 2)]
