"""The CI-sized verification of issue 19 point 6: for every registered paper table with a recorded
``--quick`` row in its quick ledger, re-run that row (``gatelab repro NAME --quick --verify-rows N``,
the row :func:`~gatelab.core.harness.repro.quick_rows` lists last) and require it to reproduce:
bit for bit, or within the table's stated ``ReproTable(tolerance=...)``.

The tables are found by walking the registry, so a quick ledger recorded at regeneration is picked
up without editing this file; the skip reason names the tables that have none. Runs with one torch
thread (the quick rows are recorded with ``OMP_NUM_THREADS=1``). Marked ``verify`` (deselect with
``-m "not verify"``); it runs in the default ``-m "not slow"`` suite. Skipped when the real data
directory is absent. A row recorded by older code fails with "config differs": re-record it with
``gatelab repro NAME --quick``.

``vl-audio`` also needs the spoken captions, which ``gatelab prepare spoken-captions`` synthesises
with espeak-ng (a Debian package the default tests never require): they are looked for in the data
directory, then in ``$GATELAB_SPEECH_DIR`` (a folder holding ``spoken_captions/``); without them
that table's row is skipped, saying so.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from gatelab.core.harness.ledger import resolve_results_dir
from gatelab.core.harness.repro import get_table, list_tables, quick_rows, run_table

RESULTS = resolve_results_dir(None)


TABLES = list_tables()


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
    numbers = quick_rows(name, RESULTS)
    if not numbers:
        lacking = [t for t in TABLES if not quick_rows(t, RESULTS)]
        pytest.skip(
            f"{name}: no recorded --quick row in {get_table(name).ledger_name(True)}.jsonl (record one with "
            f"`gatelab repro {name} --quick`); tables without one: {', '.join(lacking)}"
        )
    number = numbers[-1]
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
    assert res.failed == 0, (
        f"quick row {number} of table {name!r} did not reproduce (tolerance: {get_table(name).tolerance}); "
        f"if its config changed, re-record it with `gatelab repro {name} --quick`:\n{res.markdown}"
    )
