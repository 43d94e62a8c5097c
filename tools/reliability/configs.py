"""Reliability trials of validated configs (issue 13, point 4): every bad config in
``tests/core/harness/bad_config_cases.py`` through ``gatelab.core.harness.cli.main``.

Rows (ledger-style, see ``rows``):

* ``split="in-process"``: each case under ``train --print-config``, ``train`` and ``eval``
  (``quick``: one mode per case, cycling): ``trials``, ``clear_exit2`` (exit 2, one stderr line
  with the key, the value and what is allowed, no traceback), ``tracebacks``, ``max_seconds``
  (slowest answer once the libraries are imported);
* ``split="cold-process"``: every case (``quick``: every 7th) through the real CLI in a fresh
  interpreter, the test model/data module declared lazily (``bad_config_cases.run_cold``):
  ``median_seconds``, ``max_seconds`` and ``under_2s`` (wall time of the whole process,
  interpreter start included), the same for CPU time (``*_cpu_*``: what an idle machine's wall
  time would be; the wall time grows with the machine's ``load_average``). Static validation
  (:mod:`gatelab.core.harness.schema`) answers every case without importing torch or Lightning.

Run: ``.venv/bin/python tools/reliability/configs.py [--quick]`` (JSON lines on stdout).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "core" / "harness"))

import bad_config_cases as bc  # noqa: E402  (the test suite's case list)


class _Tally:
    """Counts of one kind of trial: how many ran, how many exited 2 with the expected one-line
    message (:func:`bad_config_cases.check`), how many printed a traceback."""

    def __init__(self, split: str, quick: bool) -> None:
        self.split = split + (" quick" if quick else "")
        self.trials = self.clear = self.tracebacks = 0

    def add(self, case: bc.Case, mode: str, rc: int, err: str, label: str = "") -> None:
        self.trials += 1
        self.tracebacks += "Traceback" in err
        problems = bc.check(case, rc, err)
        self.clear += not problems
        if problems:
            print(f"[configs] {label}{case.id} ({mode}): {problems}: {err.strip()}", file=sys.stderr)

    def row(self, **metrics: float) -> dict:
        head = {"model": "configs", "dataset": "all", "split": self.split, "seed": 0}
        counts = {"trials": self.trials, "clear_exit2": self.clear, "tracebacks": self.tracebacks}
        return {**head, **counts, **metrics}


def _in_process(quick: bool, tmp: Path) -> dict:
    bc.load_tiny()
    tally = _Tally("in-process", quick)
    worst = 0.0
    for i, case in enumerate(bc.CASES):
        modes = [bc.MODES[i % len(bc.MODES)]] if quick else list(bc.MODES)
        for mode in modes:
            try:
                rc, _, err, seconds = bc.run_case(case, tmp / f"{i}-{mode}", mode)
            except Exception:  # an exception escaping main is a traceback for the user
                tally.trials += 1
                tally.tracebacks += 1
                traceback.print_exc(file=sys.stderr)
                continue
            worst = max(worst, seconds)
            tally.add(case, mode, rc, err)
    return tally.row(max_seconds=round(worst, 4))


def _cold(quick: bool, tmp: Path) -> dict:
    """Every case (``quick``: every 7th) through the real CLI in a fresh interpreter
    (:func:`bad_config_cases.run_cold`), cycling the three modes; wall and CPU seconds of the
    whole process, interpreter start included."""
    walls, cpus = [], []
    tally = _Tally("cold-process", quick)
    for i, case in enumerate(bc.CASES):
        if quick and i % 7:
            continue
        mode = bc.MODES[i % len(bc.MODES)]
        rc, _, err, wall, cpu = bc.run_cold(case, tmp / f"cold-{i}", mode)
        walls.append(wall)
        cpus.append(cpu)
        tally.add(case, mode, rc, err, "cold ")
    return tally.row(
        median_seconds=round(statistics.median(walls), 3),
        max_seconds=round(max(walls), 3),
        under_2s=sum(w < 2.0 for w in walls),
        median_cpu_seconds=round(statistics.median(cpus), 3),
        max_cpu_seconds=round(max(cpus), 3),
        cpu_under_2s=sum(c < 2.0 for c in cpus),
        load_average=round(os.getloadavg()[0], 2),
    )


def rows(quick: bool = False) -> list[dict]:
    """Run the bad-config trials; one ledger-style record per kind of trial."""
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        os.environ.setdefault("GATELAB_CACHE", str(tmp / "cache"))
        os.environ.setdefault("GATELAB_RESULTS", str(tmp / "results"))
        out = [_in_process(quick, tmp), _cold(quick, tmp)]
    return out


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    for row in rows(quick="--quick" in sys.argv[1:]):
        print(json.dumps(row))
