"""Reliability trials of crash-safe paper tables (issue 13, point 2): ``gatelab repro`` of a tiny
table killed at random points (SIGKILL, SIGINT, an exception in a later row) and resumed with
``--resume`` each time, then finished and compared with an uninterrupted run; plus torn-tail
repairs.

    .venv/bin/python tools/reliability/tables.py [--quick]     # JSON lines, one per trial kind

The table is tests/core/harness/fake_table.py (rows of a few ms, values fixed by the row's key). Each
run is the real CLI (``gatelab.core.harness.cli.main``) in a forked child process. Row fields:
``trials``; ``rows_lost`` (finished rows missing or changed after a later kill: must be 0);
``ledgers_valid`` (trials after which every complete ledger line parsed and no row was recorded
twice); ``rows_reported_missing`` (rows the killed run reported recorded that are not in the
ledger: must be 0); ``resumed_equal`` (1 when the finished ledger equals the uninterrupted one,
modulo provenance, wall time and options that cannot change a number).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import random
import signal
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _fake() -> Any:
    name = "gatelab_reliability_fake_table"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "core" / "harness" / "fake_table.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]




def _entries(records: list[dict[str, Any]], fake: Any) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    from gatelab.core.harness import ledger

    out = {}
    for r in records:
        cfg = {k: v for k, v in json.loads(r["config"]).items() if k not in fake.TABLE.not_in_hash}
        out[(ledger.record_key(r), r["config_hash"])] = (r["mse"], r["mae"], json.dumps(cfg, sort_keys=True))
    return out


def kill_trials(n: int, seed: int, folder: Path) -> list[dict[str, Any]]:
    """``n`` kill/resume trials (kinds in equal shares, shuffled), then finish and compare."""
    from gatelab.core.harness import ledger
    from gatelab.core.harness.repro import run_table

    fake = _fake()
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    n_seeds = max(8, n // 2)  # enough rows that every trial interrupts a run with work left
    seeds = [str(s) for s in range(n_seeds)]
    argv = ["--results-dir", str(folder / "killed"), "--seeds", *seeds, "--row-ms", "8", "--resume"]
    kinds = [("sigkill", "sigint", "raise")[i % 3] for i in range(n)]
    rng.shuffle(kinds)
    stats = {k: {"trials": 0, "rows_lost": 0, "ledgers_valid": 0, "rows_reported_missing": 0, "cut_short": 0}
             for k in ("sigkill", "sigint", "raise")}  # fmt: skip
    before: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for trial, kind in enumerate(kinds):
        log = folder / f"trial{trial}.log"
        if kind == "raise":
            code = _fake().fork_repro([*argv, "--fail-at", str(rng.randrange(0, 6))], log)
        else:
            sig = signal.SIGKILL if kind == "sigkill" else signal.SIGINT
            code = _fake().fork_repro(argv, log, kill=sig, delay=rng.uniform(0.0, 0.06))
        s = stats[kind]
        s["trials"] += 1
        s["cut_short"] += int(code != 0)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                records = ledger.read_records(fake.NAME, folder / "killed")
            after = _entries(records, fake)
            s["ledgers_valid"] += int(len(after) == len(records))
        except ledger.LedgerError:
            after = before
        s["rows_lost"] += sum(1 for k, v in before.items() if after.get(k) != v)
        keys = {
            " ".join(f"{f}={v}" for f, v in zip(ledger.KEY_FIELDS, k, strict=True) if v is not None)
            for k, _ in after
        }
        reported = [ln.split(" recorded ", 1)[1].rsplit(" (config", 1)[0] for ln in log.read_text().splitlines()
                    if f"[gatelab repro {fake.NAME}] recorded " in ln]  # fmt: skip
        s["rows_reported_missing"] += sum(1 for k in reported if k not in keys)
        before = after
    with contextlib.redirect_stderr(io.StringIO()):  # the runs' progress lines
        run_table(fake.NAME, argv)
        run_table(fake.NAME, ["--results-dir", str(folder / "full"), "--seeds", *seeds, "--row-ms", "0"])
    equal = _entries(ledger.read_records(fake.NAME, folder / "killed"), fake) == _entries(
        ledger.read_records(fake.NAME, folder / "full"), fake
    )
    rows = []
    for kind, s in stats.items():
        rows.append({"model": "tables", "dataset": fake.NAME, "split": f"kill-{kind}", "seed": seed, **s,
                     "resumed_equal": int(equal)})  # fmt: skip
    total = {k: sum(s[k] for s in stats.values()) for k in next(iter(stats.values()))}
    rows.append({"model": "tables", "dataset": fake.NAME, "split": "kill-all", "seed": seed, **total,
                 "resumed_equal": int(equal), "rows_total": 15 * n_seeds})  # fmt: skip
    return rows


def torn_tail_trials(n: int, seed: int, folder: Path) -> dict[str, Any]:
    """``n`` ledgers cut at a random byte of their last line, then appended to: repaired?"""
    from gatelab.core.harness import ledger

    rng = random.Random(seed)
    prov = {"command": "t", "commit": "c", "machine": "m", "date": "d"}
    repaired = intact = 0
    for i in range(n):
        sub = folder / f"torn{i}"
        ledger.append_records("t", [{"model": "m", "dataset": "d", "split": "s", "seed": s, "mse": s / 7, **prov}
                                    for s in range(3)], sub, render=False)  # fmt: skip
        path = sub / "t.jsonl"
        data = path.read_bytes()
        last_start = data.rstrip(b"\n").rfind(b"\n") + 1
        path.write_bytes(data[: rng.randrange(last_start + 1, len(data) - 1)])  # the last write cut short
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ledger.append_records("t", [{"model": "m", "dataset": "d", "split": "s", "seed": 9, "mse": 1.0, **prov}],
                                  sub, render=False)  # fmt: skip
            recs = ledger.read_records("t", sub)
        repaired += int([r["seed"] for r in recs] == [0, 1, 9] and (sub / "t.jsonl.torn").is_file())
        intact += int(path.read_bytes().startswith(data[:last_start]))
    return {"model": "tables", "dataset": "ledger", "split": "torn-tail", "seed": seed, "trials": n,
            "repaired": repaired, "earlier_rows_intact": intact}  # fmt: skip


def rows(quick: bool = False) -> list[dict[str, Any]]:
    """The reliability rows: kill trials (20 quick, 60 full) and torn-tail repairs (20 / 100)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="gatelab-rel-tables-") as tmp:
        folder = Path(tmp)
        out = kill_trials(20 if quick else 60, 0, folder / "kill")
        out.append(torn_tail_trials(20 if quick else 100, 0, folder / "torn"))
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    for row in rows(quick=p.parse_args().quick):
        print(json.dumps(row), flush=True)
