"""Reliability trials of exact resume (issue 13, point 1), as ledger-style rows.

For every registered data module (``quick``: a few), on the tiny real-format fixture of
``tests/core/harness/resume_cases.py``: one uninterrupted run, then ``trials`` runs stopped at
seeded random steps (2..6 of 6; newest checkpoint mid-epoch or at an epoch end) and resumed
with ``--resume auto``; each resumed run is compared with the uninterrupted one (final weights
bit for bit, ``metrics.json`` equal, the tested best checkpoint equal by name and weights).
With ``sigkill`` the stop is a real SIGKILL of a forked training process.

Run: ``.venv/bin/python tools/reliability/resume.py [--quick]`` (JSON lines on stdout).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "core" / "harness"))

QUICK = ("ltsf", "seg-folder", "ctr", "vl-text")


def _sigkill_child(rc: Any, case: Any, step: int) -> None:
    """Fork; the child trains ``case`` and SIGKILLs itself at the end of step ``step``. Raises
    with the child's traceback when it ended any other way (e.g. torch refuses autograd after a
    fork once the parent started autograd worker threads: run this tool in a fresh process)."""
    import lightning as L

    class SigKill(L.Callback):
        def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
            if trainer.global_step >= step:
                os.kill(os.getpid(), signal.SIGKILL)

    log = Path(tempfile.mkstemp(suffix=".log")[1])
    pid = os.fork()
    if pid == 0:
        try:
            rc.run_case(case, callbacks=(SigKill(),))
            log.write_text("the run finished without reaching the kill step")
        except BaseException:
            import traceback

            log.write_text(traceback.format_exc())
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    detail = log.read_text()
    log.unlink()
    if not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL):
        raise RuntimeError(f"the training child was not SIGKILLed at step {step}:\n{detail}")


def trial_rows(name: str, trials: int, seed: int = 0, sigkill: bool = True) -> dict[str, Any]:
    """``trials`` kill/resume trials of data module ``name``; one ledger row."""
    import resume_cases as rc

    rng = random.Random(f"{seed}:{name}")
    with tempfile.TemporaryDirectory(prefix=f"resume-{name}-") as tmp:
        root = Path(tmp)
        base = rc.build_case(name, root / "base")
        rc.run_case(base)
        identical = best_equal = metrics_equal = 0
        max_diff = 0.0
        steps = []
        modes: set[str] = set()
        for t in range(trials):
            case = rc.build_case(name, root / f"t{t}")
            k = rng.randint(2, rc.STEPS)
            steps.append(k)
            mode = "in-process stop"
            if sigkill and hasattr(os, "fork"):
                try:
                    _sigkill_child(rc, case, k)
                    mode = "SIGKILL of a forked training process"
                except RuntimeError as e:
                    if "Autograd-and-Fork" not in str(e):
                        raise
                    case = rc.build_case(name, root / f"t{t}-inproc")  # this process cannot fork training
            if mode == "in-process stop":
                try:
                    rc.run_case(case, callbacks=(rc.stop_at(k),))
                except rc.Killed:
                    pass
            modes.add(mode)
            rc.run_case(case, resume="auto")
            res = rc.compare_runs(rc.run_dir(base), rc.run_dir(case))
            max_diff = max(max_diff, res["max_abs_diff"])
            metrics_equal += res["metrics_equal"]
            best_equal += res["best_ckpt_equal"]
            identical += res["weights_equal"] and res["metrics_equal"] and res["best_ckpt_equal"]
    return {
        "model": "resume",
        "dataset": name,
        "split": f"kill at seeded random steps {steps} of {rc.STEPS}, resume auto; " + " + ".join(sorted(modes)),
        "seed": seed,
        "runs": trials,
        "identical": identical,
        "metrics_equal": metrics_equal,
        "best_ckpt_equal": best_equal,
        "max_abs_diff": max_diff,
    }


def rows(quick: bool = False) -> list[dict[str, Any]]:
    """Ledger rows: one per data module (``quick``: 4 modules x 1 trial; else all x 3 trials)."""
    import resume_cases as rc

    names = QUICK if quick else tuple(sorted(rc.CASES))
    return [trial_rows(n, 1 if quick else 3) for n in names]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    for row in rows(quick=args.quick):
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
