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


def _in_process(quick: bool, tmp: Path) -> dict:
    bc.load_tiny()
    trials = clear = tracebacks = 0
    worst = 0.0
    for i, case in enumerate(bc.CASES):
        modes = [bc.MODES[i % len(bc.MODES)]] if quick else list(bc.MODES)
        for mode in modes:
            trials += 1
            try:
                rc, _, err, seconds = bc.run_case(case, tmp / f"{i}-{mode}", mode)
            except Exception:  # an exception escaping main is a traceback for the user
                tracebacks += 1
                traceback.print_exc(file=sys.stderr)
                continue
            worst = max(worst, seconds)
            tracebacks += "Traceback" in err
            problems = bc.check(case, rc, err)
            clear += not problems
            if problems:
                print(f"[configs] {case.id} ({mode}): {problems}: {err.strip()}", file=sys.stderr)
    return {
        "model": "configs",
        "dataset": "all",
        "split": "in-process" + (" quick" if quick else ""),
        "seed": 0,
        "trials": trials,
        "clear_exit2": clear,
        "tracebacks": tracebacks,
        "max_seconds": round(worst, 4),
    }


def _cold(quick: bool, tmp: Path) -> dict:
    """Every case (``quick``: every 7th) through the real CLI in a fresh interpreter
    (:func:`bad_config_cases.run_cold`), cycling the three modes; wall and CPU seconds of the
    whole process, interpreter start included."""
    walls, cpus = [], []
    trials = clear = tracebacks = 0
    for i, case in enumerate(bc.CASES):
        if quick and i % 7:
            continue
        mode = bc.MODES[i % len(bc.MODES)]
        rc, _, err, wall, cpu = bc.run_cold(case, tmp / f"cold-{i}", mode)
        trials += 1
        walls.append(wall)
        cpus.append(cpu)
        tracebacks += "Traceback" in err
        problems = bc.check(case, rc, err)
        clear += not problems
        if problems:
            print(f"[configs] cold {case.id} ({mode}): {problems}: {err.strip()}", file=sys.stderr)
    return {
        "model": "configs",
        "dataset": "all",
        "split": "cold-process" + (" quick" if quick else ""),
        "seed": 0,
        "trials": trials,
        "clear_exit2": clear,
        "tracebacks": tracebacks,
        "median_seconds": round(statistics.median(walls), 3),
        "max_seconds": round(max(walls), 3),
        "under_2s": sum(w < 2.0 for w in walls),
        "median_cpu_seconds": round(statistics.median(cpus), 3),
        "max_cpu_seconds": round(max(cpus), 3),
        "cpu_under_2s": sum(c < 2.0 for c in cpus),
        "load_average": round(os.getloadavg()[0], 2),
    }


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
