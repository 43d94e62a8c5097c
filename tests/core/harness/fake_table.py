"""A tiny paper table for the crash/resume/verify tests: rows take a few milliseconds, values are a
deterministic function of the row's key and ``--scale``.

Rows: for every seed, model (``a``, ``b``, ``c``) and ``--horizon`` one row (``mse``, ``mae``),
then per (model, seed) a ``split = "avg"`` row: the mean over the horizons, computed from the rows
of this run and, for rows a ``--resume`` skipped, from their records (``args.recorded``), the
pattern a real table uses for derived rows. ``--fail-at N`` raises before the first horizon row
after this run produced N rows, ``--row-ms`` is the time each row takes.
"""

from __future__ import annotations

import hashlib
import statistics
import time
from collections.abc import Iterator
from typing import Any

from gatelab.core.harness.repro import Option, ReproTable, register_table

NAME = "fake-crash"
MODELS = ("a", "b", "c")


def value(model: str, horizon: int, seed: int, scale: float, metric: str) -> float:
    """The row's metric: a pseudo-random number fixed by the arguments."""
    h = hashlib.sha256(f"{model}/{horizon}/{seed}/{metric}".encode()).digest()
    return scale * int.from_bytes(h[:6], "big") / 2**48


def run(args: Any) -> Iterator[dict[str, Any]]:
    produced = 0
    for seed in args.seeds:
        for model in MODELS:
            per_h: list[dict[str, Any]] = []
            for h in args.horizon:
                key = {"model": model, "dataset": "toy", "horizon": h, "seed": seed}
                cfg = {"model": model, "horizon": h, "scale": args.scale}
                if not args.should_run(key, cfg):
                    rec = args.recorded(key, cfg)
                    if rec is not None:
                        per_h.append(rec)
                    continue
                if args.fail_at is not None and produced >= args.fail_at:
                    raise RuntimeError(f"fake failure in row {produced}")
                time.sleep(args.row_ms / 1000.0)
                row = {
                    **key,
                    "mse": value(model, h, seed, args.scale, "mse"),
                    "mae": value(model, h, seed, args.scale, "mae"),
                }
                per_h.append(row)
                produced += 1
                yield row
            avg_key = {"model": model, "dataset": "toy", "split": "avg", "seed": seed}
            avg_cfg = {"model": model, "horizons": list(args.horizon), "scale": args.scale}
            if len(per_h) == len(args.horizon) and args.should_run(avg_key, avg_cfg):
                produced += 1
                yield {
                    **avg_key,
                    "mse": statistics.fmean(r["mse"] for r in per_h),
                    "mae": statistics.fmean(r["mae"] for r in per_h),
                }


TABLE = ReproTable(
    name=NAME,
    description="a fake table for the crash tests",
    paper="Nobody 2099, Table 0",
    run=run,
    references=[("a", "toy", 1, {"mse": 0.5})],
    options=[
        Option("--horizon", type=int, nargs="+", default=[1, 2, 3, 4]),
        Option("--scale", type=float, default=1.0),
        Option("--row-ms", type=float, default=5.0),
        Option("--fail-at", type=int, default=None),
    ],
    metrics=["mse", "mae"],
    default_seeds=(0, 1, 2),
    not_in_hash=("row_ms", "fail_at"),
)
register_table(TABLE)


def fork_repro(
    argv: list[str], log: Any, *, kill: int | None = None, delay: float = 0.0, after_rows: Any = None
) -> int:
    """Run ``gatelab repro fake-crash ARGV`` in a forked child (stdout/stderr to ``log``); send
    signal ``kill`` ``delay`` seconds after it starts, or, with ``after_rows`` (a ledger path),
    ``delay`` seconds after that ledger holds its first complete row (up to 60 s: a loaded machine
    may take longer than ``delay`` to finish one). Returns the wait status's exit code, or
    ``-signal`` for a child killed by a signal."""
    import gc
    import os
    import signal
    import sys
    import time

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 97
        try:
            os.close(r)
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            sys.stdout = open(1, "w", buffering=1, closefd=False)
            sys.stderr = sys.stdout
            signal.signal(signal.SIGINT, signal.default_int_handler)
            # a clean signal state whatever the parent test process inherited or set up: the
            # suite once saw a child ignore the SIGINT and finish its run (likely cause and remedy: below)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
            print(f"child sigmask {sorted(int(x) for x in signal.pthread_sigmask(signal.SIG_BLOCK, []))}", flush=True)
            # collect the garbage inherited from the test process now, before the parent's timer starts:
            # a KeyboardInterrupt raised while a collection runs a ``__del__`` is printed as "Exception
            # ignored" and lost, and the child then finishes its run (seen once in a full-suite CI run)
            gc.collect()
            os.write(w, b"r")
            os.close(w)
            from gatelab.core.harness.cli import main

            code = main(["repro", NAME, *argv])
        except BaseException as e:  # the exception trial ends here: a line, code 99
            print(f"child ended by {type(e).__name__}: {e}", flush=True)
            code = 99
        finally:
            sys.stdout.flush()
            os._exit(code)
    os.close(w)
    assert os.read(r, 1) == b"r"
    os.close(r)
    if kill is not None:
        if after_rows is not None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not (
                os.path.isfile(after_rows) and b"\n" in open(after_rows, "rb").read()
            ):
                time.sleep(0.01)
        time.sleep(delay)
        os.kill(pid, kill)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
