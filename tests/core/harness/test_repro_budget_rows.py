"""Rows that add ``budget`` to the key their run function asked with (what the recipe runner does:
it asks ``should_run(cell.key())`` and writes the effective budget into the row): the row keeps
the config hash it was asked with, ``--resume`` skips it, and ``--verify-rows`` re-runs exactly
the chosen budget's row."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from gatelab.core.harness.ledger import read_records
from gatelab.core.harness.repro import Option, ReproTable, run_table

RUNS: list[tuple[str, str]] = []
BUDGETS = {"preset": 10, "equal steps 40": 40}


def _value(model: str, budget: str, seed: int, scale: float) -> float:
    h = hashlib.sha256(f"{model}/{budget}/{seed}".encode()).digest()
    return scale * int.from_bytes(h[:6], "big") / 2**48


def _run(args: Any) -> Iterator[dict[str, Any]]:
    for seed in args.seeds:
        for model in ("a", "b"):
            for budget, steps in BUDGETS.items():
                key = {"model": model, "dataset": "toy", "horizon": 1, "seed": seed}  # no budget
                if not args.should_run(key, {"steps": steps, "scale": args.scale}):
                    continue
                RUNS.append((model, budget))
                yield {**key, "budget": budget, "mse": _value(model, budget, seed, args.scale)}


TABLE = ReproTable(
    name="fake-budget",
    description="rows whose budget the run adds",
    paper="Nobody 2099",
    run=_run,
    options=[Option("--scale", type=float, default=1.0)],
    metrics=["mse"],
    default_seeds=(0, 1),
)


def test_rows_with_an_added_budget_keep_their_hash_resume_and_verify(tmp_path):
    RUNS.clear()
    res = run_table(TABLE, [], results_dir=tmp_path)
    assert len(res.rows) == 8 and len(RUNS) == 8
    hashes = {(r["model"], r["budget"], r["seed"]): r["config_hash"] for r in res.rows}
    # the two budgets of one cell key have different configs, so different hashes
    assert hashes[("a", "preset", 0)] != hashes[("a", "equal steps 40", 0)]
    assert hashes[("a", "preset", 0)] == hashes[("a", "preset", 1)]  # the seed is not hashed

    RUNS.clear()
    again = run_table(TABLE, ["--resume"], results_dir=tmp_path)
    assert again.rows == [] and RUNS == [], "--resume re-ran rows whose budget the run added"
    assert len(again.skipped) == 8

    records = read_records("fake-budget", tmp_path)
    number = next(i for i, r in enumerate(records, 1) if (r["model"], r["budget"], r["seed"]) == ("b", "equal steps 40", 1))
    RUNS.clear()
    ver = run_table(TABLE, ["--verify-rows", str(number)], results_dir=tmp_path)
    assert ver.failed == 0 and len(ver.verify) == 1, ver.markdown
    assert RUNS == [("b", "equal steps 40")], f"verify ran more than the chosen row: {RUNS}"
    assert len(read_records("fake-budget", tmp_path)) == 8  # verify writes nothing


def test_verify_reports_a_changed_config_of_a_budget_row(tmp_path):
    run_table(TABLE, ["--seeds", "0"], results_dir=tmp_path)
    records = read_records("fake-budget", tmp_path)
    # the recorded command is re-run; a recorded row whose numbers were produced differently fails
    path = tmp_path / "fake-budget.jsonl"
    lines = path.read_text().splitlines()
    import json

    rec = json.loads(lines[0])
    rec["mse"] += 1e-3
    lines[0] = json.dumps(rec)
    path.write_text("\n".join(lines) + "\n")
    ver = run_table(TABLE, ["--verify-rows", "1", "2"], results_dir=tmp_path)
    assert [r["passed"] for r in ver.verify] == [False, True], ver.markdown
    assert "mse: recorded" in ver.verify[0]["reason"]
    assert records[0]["budget"] == "preset"


def test_verify_quick_reruns_the_latest_quick_row(tmp_path):
    from gatelab.core.config import ConfigError
    from gatelab.core.harness.repro import quick_rows

    run_table(TABLE, ["--seeds", "0"], results_dir=tmp_path)  # not quick rows
    try:
        run_table(TABLE, ["--verify-quick"], results_dir=tmp_path)
    except ConfigError as e:
        assert "no --quick row" in str(e) and "gatelab repro fake-budget --quick" in str(e)
    else:
        raise AssertionError("--verify-quick without a quick row did not raise")
    run_table(TABLE, ["--seeds", "0", "--quick"], results_dir=tmp_path)
    numbers = quick_rows(TABLE, tmp_path)
    assert numbers == [5, 6, 7, 8]  # the quick run's records; the plain run's are not quick rows
    RUNS.clear()
    ver = run_table(TABLE, ["--verify-quick"], results_dir=tmp_path)
    assert [r["record"] for r in ver.verify] == [8] and ver.failed == 0, ver.markdown
    assert RUNS == [("b", "equal steps 40")]


def test_resume_runs_again_the_rows_of_another_source(tmp_path, monkeypatch):
    """``--resume`` skips a row only when its latest record comes from this source hash: after a
    source change every row is stale and runs again (a regeneration at the new code), and the rows
    recorded at the new source are skipped from then on."""
    from gatelab.core.harness import provenance

    monkeypatch.setattr(provenance, "source_hash", lambda *a, **k: "aaaa")
    run_table(TABLE, ["--seeds", "0"], results_dir=tmp_path)
    assert {r["source_hash"] for r in read_records("fake-budget", tmp_path)} == {"aaaa"}
    RUNS.clear()
    assert run_table(TABLE, ["--seeds", "0", "--resume"], results_dir=tmp_path).rows == [] and RUNS == []
    monkeypatch.setattr(provenance, "source_hash", lambda *a, **k: "bbbb")
    again = run_table(TABLE, ["--seeds", "0", "--resume"], results_dir=tmp_path)
    assert len(again.rows) == 4 and len(RUNS) == 4, "--resume skipped rows recorded by another source"
    assert [r["source_hash"] for r in read_records("fake-budget", tmp_path)] == ["aaaa"] * 4 + ["bbbb"] * 4
    RUNS.clear()
    assert run_table(TABLE, ["--seeds", "0", "--resume"], results_dir=tmp_path).rows == [] and RUNS == []
