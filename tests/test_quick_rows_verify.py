"""The CI-sized verification of issue 19 point 6: for every registered paper table with a recorded
``--quick`` row in its quick ledger, re-run that row (``gatelab repro NAME --quick --verify-rows N``)
and require it to reproduce.

Floating-point results depend on the CPU (the BLAS and oneDNN kernels torch dispatches to differ
between, say, an Intel Xeon and an AMD EPYC), so a quick row reproduces bit for bit only on the
kind of CPU that recorded it. The row re-run is therefore chosen by CPU:

* a quick row recorded on this CPU (the CPU model in its ``machine`` column, core count and OS left
  out): the latest such row, checked bit for bit, or within the table's stated
  ``ReproTable(tolerance=...)``;
* no quick row from this CPU: the latest quick row of any CPU, which must still have the same config
  hash and data, with each metric within :data:`CROSS_CPU_RTOL` of its recorded value (relative, or
  absolute below 1). This is a weaker check, and the assertion message says how to record a row on
  this CPU. Measured on the committed rows: Intel Xeon vs AMD EPYC differ by at most 1.7e-3 relative
  (the ctr quick row's AUC after 3 optimizer steps).

``gatelab repro NAME --quick`` appends a row of this machine; the quick ledgers hold one for each CPU
the tables were recorded on. The tables are found by walking the registry, so a quick ledger
recorded at regeneration is picked up without editing this file; the skip reason names the tables
that have none. Runs with one torch thread (the quick rows are recorded with ``OMP_NUM_THREADS=1``).
Marked ``verify`` (deselect with ``-m "not verify"``); it runs in the default ``-m "not slow"``
suite. Skipped when the real data directory is absent. A row recorded by older code fails with
"config differs": re-record it with ``gatelab repro NAME --quick``.

``vl-audio`` also needs the spoken captions, which ``gatelab prepare spoken-captions`` synthesises
with espeak-ng (a Debian package the default tests never require): they are looked for in the data
directory, then in ``$GATELAB_SPEECH_DIR`` (a folder holding ``spoken_captions/``); without them
that table's row is skipped, saying so.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

from gatelab.core.harness import ledger, provenance
from gatelab.core.harness.repro import get_table, list_tables, quick_rows, run_table

RESULTS = ledger.resolve_results_dir(None)

TABLES = list_tables()

CROSS_CPU_RTOL = 5e-3
"""Allowed |new - recorded| / max(1, |recorded|) when the row was recorded on another CPU."""


def cross_cpu_failures(report: dict[str, Any]) -> list[str]:
    """What fails in one ``--verify`` report when metrics may differ by :data:`CROSS_CPU_RTOL`:
    every reason that is not a metric difference (config, data, missing row) and every metric
    beyond that tolerance."""
    checks = report["checks"]
    metric_reasons = tuple(f"{c['metric']}: recorded " for c in checks)
    bad = [r for r in str(report.get("reason", "")).split("; ") if r and not r.startswith(metric_reasons)]
    for c in checks:
        a, b, diff = c["recorded"], c["new"], c["diff"]
        if diff is None:
            if not (a is None and b is None):
                bad.append(f"{c['metric']}: recorded {a!r}, now {b!r}")
        elif not diff <= max(c["tolerance"], CROSS_CPU_RTOL * max(1.0, abs(float(a)))):
            bad.append(f"{c['metric']}: recorded {a}, now {b}, |diff| {diff:.3g}")
    return bad


def test_cpu_of_reads_the_cpu_model():
    assert provenance.cpu_of("AMD EPYC x2 cores; Linux-6.18.44-x86_64-with-glibc2.36") == "AMD EPYC"
    assert provenance.cpu_of("Intel(R) Xeon(R) Processor x16 cores; NVIDIA H100 x1; Linux") == "Intel(R) Xeon(R) Processor"


def test_quick_rows_by_cpu_take_each_cpus_latest_row(tmp_path):
    name = TABLES[0]
    table = get_table(name)
    cmd = f"gatelab repro {name} --quick"
    key = {"model": "m", "dataset": "d", "split": "test", "seed": 0, "command": cmd}
    rows = [{**key, "mse": 1.0, "machine": "Intel(R) Xeon(R) x16 cores; Linux"},
            {**key, "mse": 2.0, "machine": "AMD EPYC x2 cores; Linux"},
            {**key, "mse": 3.0, "machine": "Intel(R) Xeon(R) x4 cores; Linux"},
            {**key, "seed": 1, "mse": 4.0, "machine": "AMD EPYC x2 cores; Linux", "command": f"gatelab repro {name}"}]  # fmt: skip
    ledger.append_records(table.ledger_name(True), rows, tmp_path, render=False)
    assert quick_rows(name, tmp_path) == [3]  # the key's latest row, any CPU; row 4 is not a quick run
    assert quick_rows(name, tmp_path, cpu="AMD EPYC") == [2]
    assert quick_rows(name, tmp_path, cpu="Intel(R) Xeon(R)") == [3]
    assert quick_rows(name, tmp_path, cpu="Apple M2") == []


def test_cross_cpu_check_allows_small_metric_differences_only():
    def report(new: float, reason_extra: str = "") -> dict[str, Any]:
        check = {"metric": "auc", "recorded": 0.8, "new": new, "diff": abs(new - 0.8), "tolerance": 0.0}
        reason = f"auc: recorded 0.8, now {new}, |diff| {abs(new - 0.8)} > tolerance 0.0"
        return {"checks": [check], "reason": "; ".join(r for r in (reason_extra, reason) if r)}

    assert cross_cpu_failures(report(0.8 + 1e-3)) == []
    assert cross_cpu_failures(report(0.8 + 1e-2)) == ["auc: recorded 0.8, now 0.81, |diff| 0.01"]
    assert cross_cpu_failures(report(0.8 + 1e-3, "config differs (recorded a, now b)")) == [
        "config differs (recorded a, now b)"
    ]


def _extra_args(name: str, data: Path) -> list[str]:
    """Arguments a table's quick row needs beyond ``--data-dir`` (the spoken captions of vl-audio)."""
    if name != "vl-audio":
        return []
    marker = Path("spoken_captions") / "speech.json"
    for folder in (data, os.environ.get("GATELAB_SPEECH_DIR")):
        if folder and (Path(folder) / marker).is_file():
            return ["--speech-dir", str(folder)]
    pytest.skip(
        f"vl-audio: no spoken captions ({data / marker} absent and $GATELAB_SPEECH_DIR unset or without them); "
        "`gatelab prepare spoken-captions --data-dir DIR` builds them (needs espeak-ng)"
    )


@pytest.mark.verify
@pytest.mark.parametrize("name", TABLES)
def test_the_latest_quick_row_of_each_table_reproduces(name, shared_data, tmp_path, monkeypatch):
    numbers = quick_rows(name, RESULTS)  # the latest quick row of each key, whatever its CPU
    if not numbers:
        lacking = [t for t in TABLES if not quick_rows(t, RESULTS)]
        pytest.skip(
            f"{name}: no recorded --quick row in {get_table(name).ledger_name(True)}.jsonl (record one with "
            f"`gatelab repro {name} --quick`); tables without one: {', '.join(lacking)}"
        )
    here = provenance.cpu_of(provenance.machine())
    mine = quick_rows(name, RESULTS, cpu=here)
    same_cpu = bool(mine)
    number = mine[-1] if same_cpu else numbers[-1]
    extra = _extra_args(name, shared_data)
    monkeypatch.chdir(tmp_path)  # run directories a table writes relative to the cwd (e.g. runs/repro) land here
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = run_table(
            name, ["--quick", "--verify-rows", str(number), "--data-dir", str(shared_data), *extra], results_dir=RESULTS
        )
    finally:
        torch.set_num_threads(threads)
    assert res.verify is not None and len(res.verify) == 1, res.markdown
    if same_cpu:
        assert res.failed == 0, (
            f"quick row {number} of table {name!r} (recorded on this CPU, {here}) did not reproduce (tolerance: "
            f"{get_table(name).tolerance}); if its config changed, re-record it with `gatelab repro {name} --quick`:"
            f"\n{res.markdown}"
        )
    else:
        bad = cross_cpu_failures(res.verify[0])
        assert not bad, (
            f"quick row {number} of table {name!r} was recorded on another CPU ("
            f"{provenance.cpu_of(str(ledger.read_records(get_table(name).ledger_name(True), RESULTS)[number - 1].get('machine', '')))}; this is "
            f"{here}) and did not reproduce within {CROSS_CPU_RTOL:g} relative: {'; '.join(bad)}. Record a row "
            f"on this CPU with `OMP_NUM_THREADS=1 gatelab repro {name} --quick`:\n{res.markdown}"
        )
