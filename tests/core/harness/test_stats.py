"""Paired comparisons: the t-interval by hand, pairing in the ledger, rendering."""

from __future__ import annotations

import math

import pytest

from gatelab.core.harness import (
    Comparison,
    append_records,
    paired_comparisons,
    paired_difference,
    render_markdown,
)
from gatelab.core.harness.repro import ReproTable

T_975_DF2 = 4.302652729911275  # Student t quantile, 0.975, 2 degrees of freedom (printed tables: 4.303)


def test_paired_difference_by_hand():
    res = paired_difference([1.0, 2.0, 3.5], [0.5, 1.4, 2.9])
    d = [0.5, 0.6, 0.6]
    mean = sum(d) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / 2)
    half = T_975_DF2 * sd / math.sqrt(3)
    assert res.n == 3
    assert res.mean == pytest.approx(mean)
    assert res.sd == pytest.approx(sd)
    assert (res.lo, res.hi) == (pytest.approx(mean - half), pytest.approx(mean + half))
    assert res.significant and res.verdict("a", "b", lower_is_better=True) == "b better"
    assert res.verdict("a", "b", lower_is_better=False) == "a better"
    # t = mean / (sd / sqrt(3)) = 17.0; two-sided p with 2 df = 1 - t / sqrt(t^2 + 2) (closed form)
    t = mean / (sd / math.sqrt(3))
    assert res.p == pytest.approx(1 - t / math.sqrt(t * t + 2), rel=1e-9)


def test_paired_difference_not_significant_and_errors():
    res = paired_difference([1.0, 2.0, 3.0], [1.1, 1.8, 3.05])
    assert res.lo < 0 < res.hi and not res.significant
    assert res.verdict("a", "b", True) == "not significant"
    with pytest.raises(ValueError, match="at least 2"):
        paired_difference([1.0], [2.0])
    with pytest.raises(ValueError, match="equal lengths"):
        paired_difference([1.0, 2.0], [2.0])
    with pytest.raises(ValueError, match="not finite"):
        paired_difference([1.0, float("nan")], [2.0, 1.0])


def _rec(model, seed, mse, **kw):
    return {"table": "t", "model": model, "dataset": "etth1", "horizon": 96, "seed": seed, "mse": mse,
            "command": "c", "commit": "x", "machine": "m", "date": "d", **kw}  # fmt: skip


def test_ledger_pairs_by_seed_data_seed_and_budget(tmp_path):
    recs = []
    for s in (0, 1, 2):
        for ds in (10, 11):
            recs.append(_rec("ours", s, 0.30 + 0.01 * s + 0.001 * ds, data_seed=ds, budget="equal steps 100"))
            recs.append(_rec("rival", s, 0.35 + 0.01 * s + 0.001 * ds, data_seed=ds, budget="equal steps 100"))
            recs.append(_rec("rival", s, 0.40 + 0.01 * s, data_seed=ds, budget="preset"))
    recs.append(_rec("rival", 3, 0.9, data_seed=10, budget="equal steps 100"))  # no partner
    append_records("t", recs, tmp_path, render=False)
    same = Comparison("mse", "ours", "rival", lower_is_better=True)
    res = paired_comparisons("t", [same], tmp_path)
    by_budget = {r["budget"]: r for r in res}
    eq = by_budget["equal steps 100"]
    assert eq["pairs"] == 6 and eq["unpaired"] == 1
    assert eq["diff"] == pytest.approx(-0.05) and eq["verdict"] == "ours better"
    assert "preset" not in by_budget  # ours has no preset runs: nothing to pair
    cross = Comparison("mse", "ours", "rival", True, model_where={"budget": "equal steps 100"},
                       rival_where={"budget": "preset"}, label="ours vs rival preset")  # fmt: skip
    (r,) = paired_comparisons("t", [cross], tmp_path)
    assert r["pairs"] == 6 and r["comparison"] == "ours vs rival preset"
    assert r["diff"] == pytest.approx(statistics_mean([0.30 + 0.001 * ds - 0.40 for ds in (10, 11)]))
    md = render_markdown("t", tmp_path, comparisons=[same, cross])
    assert "| runs |" in md or "| runs" in md
    assert "## Paired comparisons" in md and "ours better (1 unpaired)" in md


def statistics_mean(xs):
    return sum(xs) / len(xs)


def test_single_pair_says_so(tmp_path):
    append_records("t", [_rec("ours", 0, 0.3), _rec("rival", 0, 0.4)], tmp_path, render=False)
    (r,) = paired_comparisons("t", [Comparison("mse", "ours", "rival", True)], tmp_path)
    assert r["pairs"] == 1 and r["diff"] is None and r["verdict"] == "fewer than 2 pairs"


def test_table_rejects_non_comparison():
    with pytest.raises(ValueError, match="Comparison objects"):
        ReproTable("x", "d", "p", run=lambda a: [], comparisons=[("mse", "a", "b")])
    with pytest.raises(ValueError, match="itself"):
        Comparison("mse", "a", "a", True)
