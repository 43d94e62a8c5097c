"""Reliability trials of validated configs (issue 13, point 4): every bad config in
``tests/core/harness/bad_config_cases.py`` through ``gatelab.core.harness.cli.main``.

Rows (ledger-style, see ``rows``):

* ``split="in-process"``: each case under ``train --print-config``, ``train`` and ``eval``
  (``quick``: one mode per case, cycling): ``trials``, ``clear_exit2`` (exit 2, one stderr line
  with the key, the value and what is allowed, no traceback), ``tracebacks``, ``max_seconds``
  (slowest answer once the libraries are imported);
* ``split="cold-process"`` (not in ``quick``): a fresh interpreter per case kind:
  ``import_seconds`` (``import gatelab.core.harness.cli``, which imports torch today) and the seconds
  after it until the error, for a harness-section error (no further imports) and for a
  model-kwargs error (imports the domains and the model's module).

Run: ``.venv/bin/python tools/reliability/configs.py [--quick]`` (JSON lines on stdout).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "core" / "harness"))

import bad_config_cases as bc  # noqa: E402  (the test suite's case list)

_TIMED = """
import json, sys, time
t0 = time.perf_counter()
from gatelab.core.harness.cli import main
t1 = time.perf_counter()
rc = main(sys.argv[1:])
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "check_s": t2 - t1}))
sys.exit(rc)
"""


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


def _cold(tmp: Path) -> list[dict]:
    out = []
    for case_id, split in (("seed-text", "harness-section"), ("gateformer-dropout", "model-kwargs")):
        case = next(c for c in bc.CASES if c.id == case_id)
        configs = bc.write_case(case, tmp / f"cold-{case_id}")
        args = bc.cli_args(case, configs, "print", tmp)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.run(
            [sys.executable, "-c", _TIMED, *args],
            capture_output=True,
            text=True,
            env=env,
        )
        timing = json.loads(proc.stdout.strip().splitlines()[-1])
        out.append(
            {
                "model": "configs",
                "dataset": "all",
                "split": f"cold-process {split} error ({case_id})",
                "seed": 0,
                "trials": 1,
                "clear_exit2": int(not bc.check(case, proc.returncode, proc.stderr)),
                "tracebacks": int("Traceback" in proc.stderr),
                "import_seconds": round(timing["import_s"], 3),
                "max_seconds": round(timing["check_s"], 3),
            }
        )
    return out


def rows(quick: bool = False) -> list[dict]:
    """Run the bad-config trials; one ledger-style record per kind of trial."""
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        os.environ.setdefault("GATELAB_CACHE", str(tmp / "cache"))
        os.environ.setdefault("GATELAB_RESULTS", str(tmp / "results"))
        out = [_in_process(quick, tmp)]
        if not quick:
            out += _cold(tmp)
    return out


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    for row in rows(quick="--quick" in sys.argv[1:]):
        print(json.dumps(row))
