"""Crash-safe, resumable, verifiable paper tables (issue 13, point 2).

``gatelab repro`` of a tiny table (tests/core/harness/fake_table.py: rows of a few ms) is killed at
random points 20 times -- SIGKILL, SIGINT, an exception in a later row -- and resumed with
``--resume`` each time. Each run is the real CLI (``gatelab.core.harness.cli.main``) in a forked child
process (a fresh interpreter would spend seconds importing torch per run).
"""

from __future__ import annotations

import json
import random
import signal
import sys
import warnings
from pathlib import Path

import pytest

from gatelab.core.harness import ledger
from gatelab.core.harness.cli import main
from gatelab.core.harness.repro import ReproTable, run_table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from file_modules import load_once  # noqa: E402

FAKE_MODULE = "gatelab_harness_fake_table"
fake = load_once(FAKE_MODULE, "fake_table.py")  # registers table ``fake-crash``
NAME = fake.NAME




def _records(folder: Path) -> list[dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a torn tail is skipped (and counted below)
        return ledger.read_records(NAME, folder)


def _config(rec: dict) -> dict:
    """The row's recorded options, less those that cannot change a number (``not_in_hash``)."""
    return {k: v for k, v in json.loads(rec["config"]).items() if k not in fake.TABLE.not_in_hash}


def _entries(records: list[dict]) -> dict[tuple, tuple]:
    return {
        (ledger.record_key(r), r["config_hash"]): (r["mse"], r["mae"], _config(r), r.get("paper_mse"))
        for r in records
    }


def _logged_keys(log: Path) -> list[str]:
    return [
        line.split(" recorded ", 1)[1].rsplit(" (config", 1)[0]
        for line in log.read_text().splitlines()
        if f"[gatelab repro {NAME}] recorded " in line
    ]


def _key_text(key: tuple) -> str:
    return " ".join(f"{k}={v}" for k, v in zip(ledger.KEY_FIELDS, key, strict=True) if v is not None)


def _table_lines(md: str) -> list[str]:
    return [line for line in md.splitlines() if line.startswith("|")]


def test_killed_twenty_times_loses_nothing_and_resumes_to_the_same_table(tmp_path):
    rng = random.Random(1234)
    folder = tmp_path / "killed"
    seeds = [str(s) for s in range(8)]  # 8 seeds x 3 models x (4 horizons + avg) = 120 rows
    argv = ["--results-dir", str(folder), "--seeds", *seeds, "--row-ms", "8", "--resume"]
    kinds = ["sigkill"] * 8 + ["sigint"] * 6 + ["raise"] * 6
    rng.shuffle(kinds)
    before: dict[tuple, tuple] = {}
    cut_short = 0
    finished: list[str] = []  # the log tails of trials that ran to the end despite their signal
    for trial, kind in enumerate(kinds):
        log = tmp_path / f"trial{trial}.log"
        if kind == "raise":
            code = fake.fork_repro([*argv, "--fail-at", str(rng.randrange(0, 6))], log)
            expected = {99, 0}
        else:
            sig = signal.SIGKILL if kind == "sigkill" else signal.SIGINT
            code = fake.fork_repro(argv, log, kill=sig, delay=rng.uniform(0.0, 0.06))
            # 0: finished before the signal; 99 + KeyboardInterrupt: Ctrl-C before `main` set up its handler
            expected = {-9, 0} if kind == "sigkill" else {130, 0}
            if kind == "sigint" and "child ended by KeyboardInterrupt" in log.read_text():
                expected.add(99)
        assert code in expected, (trial, kind, code, log.read_text()[-2000:])
        cut_short += code != 0
        if code == 0:
            finished.append(f"trial {trial} ({kind}):\n{log.read_text()[-1500:]}")
        print(f"trial {trial}: {kind} -> exit {code}; rows recorded {len(_logged_keys(log))}")
        records = _records(folder)  # parseable: a corrupt line anywhere but a torn tail raises
        after = _entries(records)
        assert len(after) == len(records), f"trial {trial}: a row was appended twice"
        lost = {k: v for k, v in before.items() if after.get(k) != v}
        assert not lost, f"trial {trial} ({kind}): finished rows lost {lost}"
        keys = {_key_text(k) for k, _ in after}
        missing = [k for k in _logged_keys(log) if k not in keys]
        assert not missing, f"trial {trial} ({kind}): rows reported recorded are not in the ledger: {missing}"
        before = after
    assert cut_short >= 15, f"only {cut_short} of 20 trials interrupted a run:\n" + "\n".join(finished)

    # finish, then compare with an uninterrupted run
    final = run_table(NAME, argv)
    full = run_table(NAME, ["--results-dir", str(tmp_path / "full"), "--seeds", *seeds, "--row-ms", "0"])
    assert _entries(_records(folder)) == _entries(ledger.read_records(NAME, tmp_path / "full"))
    assert len(_records(folder)) == 120
    assert _table_lines(final.markdown) == _table_lines(full.markdown)
    body = _table_lines(final.markdown)[2:]
    assert len(body) == 15 and all(line.split(" | ")[5] == "8" for line in body)  # every seed in every row
    assert not (folder / f"{NAME}.jsonl.torn").exists() or (folder / f"{NAME}.jsonl.torn").read_text()
    # nothing left to do: a further --resume skips every row and appends none
    again = run_table(NAME, argv)
    assert again.rows == [] and len(again.skipped) == 120
    assert len(_records(folder)) == 120


def test_sigint_exits_130_and_renders_the_rows_it_finished(tmp_path):
    folder = tmp_path / "r"
    code = fake.fork_repro(
        ["--results-dir", str(folder), "--row-ms", "40"], tmp_path / "log", kill=signal.SIGINT, delay=0.1,
        after_rows=folder / f"{NAME}.jsonl",
    )  # fmt: skip
    assert code == 130
    assert "interrupted" in (tmp_path / "log").read_text()
    records = ledger.read_records(NAME, folder)
    assert 0 < len(records) < 45
    md = (folder / f"{NAME}.md").read_text()
    for r in records:  # every finished row is in the markdown the interrupted run left
        cell = f"{r['mse']:.4f}"
        assert cell in md


def test_exception_in_a_later_row_keeps_the_earlier_ones(tmp_path):
    with pytest.raises(RuntimeError, match="fake failure in row 3"):
        run_table(NAME, ["--results-dir", str(tmp_path), "--seeds", "0", "--fail-at", "3", "--row-ms", "0"])
    records = ledger.read_records(NAME, tmp_path)
    assert [(r["model"], r.get("horizon")) for r in records] == [("a", 1), ("a", 2), ("a", 3)]
    assert "| a | toy | 3 |" in (tmp_path / f"{NAME}.md").read_text()
    # the resume runs the rest and computes model a's average partly from the records
    res = run_table(NAME, ["--results-dir", str(tmp_path), "--seeds", "0", "--row-ms", "0", "--resume"])
    assert len(res.skipped) == 3 and len(res.rows) == 12
    avg = next(r for r in res.rows if r["model"] == "a" and r.get("split") == "avg")
    assert avg["mse"] == pytest.approx(sum(fake.value("a", h, 0, 1.0, "mse") for h in (1, 2, 3, 4)) / 4)


def test_resume_reruns_rows_whose_config_changed(tmp_path):
    base = ["--results-dir", str(tmp_path), "--seeds", "0", "--row-ms", "0", "--horizon", "1"]
    first = run_table(NAME, base)
    assert len(first.rows) == 6  # 3 models x (1 horizon + avg)
    # a setting that does not change numbers (not_in_hash) keeps the hashes: nothing re-run
    same = run_table(NAME, [*base, "--resume", "--row-ms", "1"])
    assert same.rows == [] and len(same.skipped) == 6
    changed = run_table(NAME, [*base, "--resume", "--scale", "2"])
    assert len(changed.rows) == 6 and not changed.skipped
    assert {r["config_hash"] for r in changed.rows}.isdisjoint({r["config_hash"] for r in first.rows})
    md = (tmp_path / f"{NAME}.md").read_text()
    # the table shows the latest configuration only, and says what it left out
    assert f"{fake.value('a', 1, 0, 2.0, 'mse'):.4f}" in md
    assert f"{fake.value('a', 1, 0, 1.0, 'mse'):.4f}" not in md
    assert "Records of an earlier configuration, not shown" in md


def test_verify_passes_on_recorded_rows_and_writes_nothing(tmp_path, capsys):
    base = ["--results-dir", str(tmp_path), "--seeds", "0", "1", "--row-ms", "0", "--scale", "3"]
    run_table(NAME, base)
    path = tmp_path / f"{NAME}.jsonl"
    before = path.read_bytes()
    # the recorded command (--scale 3) is re-run, whatever this invocation's options say
    code = main(["repro", NAME, "--results-dir", str(tmp_path), "--verify", "3", "--verify-seed", "7"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.count("PASS record") == 3 and "3 passed, 0 failed" in out
    assert "mse: recorded" in out and "tolerance 0" in out
    assert path.read_bytes() == before
    # the random choice is reproducible
    main(["repro", NAME, "--results-dir", str(tmp_path), "--verify", "3", "--verify-seed", "7"])
    assert capsys.readouterr().out == out


def test_verify_fails_on_a_changed_value_and_exits_1(tmp_path, capsys):
    run_table(NAME, ["--results-dir", str(tmp_path), "--seeds", "0", "--row-ms", "0"])
    path = tmp_path / f"{NAME}.jsonl"
    lines = path.read_text().splitlines()
    rec = json.loads(lines[1])
    rec["mse"] += 1e-3  # as if the code had changed the result
    lines[1] = json.dumps(rec)
    path.write_text("\n".join(lines) + "\n")
    before = path.read_bytes()
    code = main(["repro", NAME, "--results-dir", str(tmp_path), "--verify-rows", "2", "1"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "FAIL record 2: model=a dataset=toy horizon=2 seed=0" in out
    assert "PASS record 1" in out and "1 passed, 1 failed" in out
    assert f"mse: recorded {rec['mse']!r}" in out
    assert path.read_bytes() == before
    # a declared tolerance accepts the difference
    tolerant = ReproTable(
        NAME, "same table, tolerant", "Nobody 2099", fake.run, options=fake.TABLE.options, tolerance={"mse": 2e-3},
        not_in_hash=fake.TABLE.not_in_hash,
    )  # fmt: skip
    res = run_table(tolerant, ["--results-dir", str(tmp_path), "--verify-rows", "2"])
    assert res.failed == 0, res.markdown
    assert res.verify[0]["checks"][0]["tolerance"] == 2e-3
    # bad choices are one clear error (exit 2)
    assert main(["repro", NAME, "--results-dir", str(tmp_path), "--verify-rows", "99"]) == 2
    assert "holds records 1..15" in capsys.readouterr().err
    assert main(["repro", NAME, "--results-dir", str(tmp_path / "empty"), "--verify", "1"]) == 2
    assert "no recorded rows" in capsys.readouterr().err


def test_verify_reports_a_changed_config(tmp_path, capsys):
    run_table(NAME, ["--results-dir", str(tmp_path), "--seeds", "0", "--row-ms", "0", "--horizon", "1"])
    path = tmp_path / f"{NAME}.jsonl"
    rec = json.loads(path.read_text().splitlines()[0])
    rec["config_hash"] = "0" * 16
    path.write_text(path.read_text() + json.dumps(rec) + "\n")
    assert main(["repro", NAME, "--results-dir", str(tmp_path), "--verify-rows", "7"]) == 1
    assert "config differs (recorded 0000000000000000" in capsys.readouterr().out
