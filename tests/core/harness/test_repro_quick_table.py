"""``ReproTable(quick_table=...)``: ``--quick`` runs go to their own ledger, full runs to the table's."""

from __future__ import annotations

import json

from gatelab.core.harness.repro import ReproTable, run_table


def _rows(args):
    yield {
        "model": "m",
        "dataset": "d",
        "horizon": 1,
        "seed": args.seeds[0],
        "mse": 0.25 if args.quick else 0.5,
    }


def test_quick_runs_use_the_quick_ledger(tmp_path):
    table = ReproTable(
        "paper-x", "a test table", "Nobody 2099", _rows, references=[("m", "d", 1, {"mse": 0.4})],
        quick_table="paper-x-quick",
    )  # fmt: skip
    assert table.ledger_name() == "paper-x" and table.ledger_name(quick=True) == "paper-x-quick"
    quick = run_table(table, ["--quick", "--seeds", "3"], results_dir=tmp_path)
    assert quick.jsonl == tmp_path / "paper-x-quick.jsonl" and not (tmp_path / "paper-x.jsonl").exists()
    rec = json.loads(quick.jsonl.read_text())
    assert rec["table"] == "paper-x-quick" and rec["mse"] == 0.25 and rec["paper_mse"] == 0.4
    assert "Smoke runs (`--quick`) of table `paper-x`" in (tmp_path / "paper-x-quick.md").read_text()
    full = run_table(table, ["--seeds", "3"], results_dir=tmp_path)
    assert full.jsonl == tmp_path / "paper-x.jsonl"
    assert json.loads(full.jsonl.read_text())["mse"] == 0.5
    assert len(quick.jsonl.read_text().splitlines()) == 1  # untouched by the full run


def test_without_quick_table_quick_rows_stay_in_the_table(tmp_path):
    table = ReproTable("paper-y", "a test table", "Nobody 2099", _rows)
    res = run_table(table, ["--quick"], results_dir=tmp_path)
    assert res.jsonl == tmp_path / "paper-y.jsonl"


def test_a_run_function_returning_a_list_is_timed_as_a_whole(tmp_path):
    import time

    def rows(args):
        time.sleep(0.05)
        return [{"model": m, "dataset": "d", "horizon": 1, "seed": 0, "mse": 0.1} for m in ("a", "b")]

    res = run_table(ReproTable("paper-z", "a test table", "Nobody 2099", rows), [], results_dir=tmp_path)
    assert [r["model"] for r in res.rows] == ["a", "b"]
    assert all(r["wall_s"] >= 0.05 and "whole table run" in r["note"] for r in res.rows)
