"""The bad-input census (issue 18 point 6): ONE writer for every domain's census.

API (for census test modules ``tests/**/test_bad_input*.py``; ``tests/census.py`` re-exports it,
so a test module writes ``from census import check_error, check_policy, record``)::

    record(loader: str, cases: list[dict]) -> None
        Append census rows. ``loader`` names the loader under test, dotted by domain
        (``"recsys.ctr.csv"``, ``"vision.nifti"``, ``"timeseries.ltsf"``). Each case dict has
            case     str   short id of the malformed input ("nan-numeric", "truncated-gzip", ...)
            fault    str   what is wrong with the input, in words
            outcome  str   "error" (the loader must refuse) or "policy" (a declared policy applies)
            clear    bool  the error named the file and the fault / the policy was applied and counted
            message  str   the error text (first line kept) or the policy's counts, as a user sees them
        Rows are written only when the environment variable ``GATELAB_CENSUS_OUT`` names a file
        (``python tools/census.py`` sets it); in the ordinary test suite ``record`` is a no-op,
        so tests never touch ``docs/results``.

    check_error(loader, case, fault, fn, *, names, exc=Exception) -> BaseException
        Run ``fn()``; it must raise ``exc`` whose text contains every string in ``names``
        (the file name, the line/column/key, the value ...). Records the case (clear or not)
        and then fails the test with the message when it is not clear.

    check_policy(loader, case, fault, ok, message) -> None
        Record a policy case (``ok``: the policy was applied and its counts are right), then
        ``assert ok``.

Command::

    python tools/census.py [--out docs/results/bad-inputs.jsonl] [-k EXPR] [FILES ...]

runs every ``tests/**/test_bad_input*.py`` (or FILES) with pytest, collects the rows, stamps
each with commit, machine, date and the command, writes ``docs/results/bad-inputs.jsonl``
(rows of loaders re-run replace that loader's old rows; other loaders' rows are kept) and
renders ``docs/results/bad-inputs.md`` (per loader: cases tried, clear, and the cases not
clear). Exit status: pytest's (non-zero when a case is not clear).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["ENV", "check_error", "check_policy", "main", "record", "render_md"]

ENV = "GATELAB_CENSUS_OUT"
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "results" / "bad-inputs.jsonl"
_CASE_KEYS = ("case", "fault", "outcome", "clear", "message")
_OUTCOMES = ("error", "policy")


_TMP = re.compile(r"/[^\s:'\"]*?/pytest-of-[^/]+/pytest-\d+/[^/]+/|/tmp/tmp[\w-]+/")


def _first_line(text: str, limit: int = 300) -> str:
    """The message's first line, temporary test folders shown as ``<tmp>/``, at most ``limit`` chars."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    line = _TMP.sub("<tmp>/", line)
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _check_case(loader: str, case: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(case, Mapping):
        raise TypeError(f"census.record({loader!r}): a case must be a dict, got {type(case).__name__}")
    missing = [k for k in _CASE_KEYS if k not in case]
    if missing:
        raise ValueError(f"census.record({loader!r}): case {dict(case)!r} misses keys {missing}")
    unknown = sorted(set(case) - set(_CASE_KEYS))
    if unknown:
        raise ValueError(f"census.record({loader!r}): case {case['case']!r} has unknown keys {unknown}")
    if case["outcome"] not in _OUTCOMES:
        raise ValueError(
            f"census.record({loader!r}): case {case['case']!r}: outcome={case['outcome']!r} "
            f"is not one of {_OUTCOMES}"
        )
    if not isinstance(case["clear"], bool):
        raise TypeError(f"census.record({loader!r}): case {case['case']!r}: clear must be a bool")
    return {
        "loader": loader,
        "case": str(case["case"]),
        "fault": str(case["fault"]),
        "outcome": case["outcome"],
        "clear": case["clear"],
        "message": _first_line(str(case["message"])),
    }


def record(loader: str, cases: list[dict[str, Any]]) -> None:
    """Append census rows for ``loader`` to ``$GATELAB_CENSUS_OUT`` (no-op when unset).

    Every case is validated (keys, outcome, bool ``clear``) even when nothing is written, so a
    census test with a malformed case fails in the ordinary suite too.
    """
    rows = [_check_case(loader, c) for c in cases]
    out = os.environ.get(ENV)
    if not out:
        return
    text = "".join(json.dumps(r, sort_keys=False) + "\n" for r in rows)
    # one write per call, O_APPEND: parallel test processes do not interleave lines
    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def check_error(
    loader: str,
    case: str,
    fault: str,
    fn: Callable[[], Any],
    *,
    names: Iterable[str],
    exc: type[BaseException] | tuple[type[BaseException], ...] = Exception,
) -> BaseException:
    """Run ``fn``; record whether it raised ``exc`` naming every string in ``names``; assert so.

    Returns the exception (for further checks by the caller).
    """
    names = [str(n) for n in names]
    try:
        fn()
    except exc as e:  # the expected refusal
        message = f"{type(e).__name__}: {e}"
        absent = [n for n in names if n not in message]
        record(
            loader,
            [{"case": case, "fault": fault, "outcome": "error", "clear": not absent, "message": message}],
        )
        if absent:
            raise AssertionError(
                f"census {loader}/{case}: the error does not name {absent}: {message}"
            ) from e
        return e
    except BaseException as e:  # another exception type: not clear
        message = f"{type(e).__name__}: {e}"
        record(
            loader, [{"case": case, "fault": fault, "outcome": "error", "clear": False, "message": message}]
        )
        raise AssertionError(f"census {loader}/{case}: expected {exc}, got {message}") from e
    record(
        loader, [{"case": case, "fault": fault, "outcome": "error", "clear": False, "message": "no error"}]
    )
    raise AssertionError(f"census {loader}/{case}: {fault}: no error was raised")


def check_policy(loader: str, case: str, fault: str, ok: bool, message: str) -> None:
    """Record a policy case and assert ``ok`` (the policy was applied and counted)."""
    record(
        loader, [{"case": case, "fault": fault, "outcome": "policy", "clear": bool(ok), "message": message}]
    )
    assert ok, f"census {loader}/{case}: {message}"


# --------------------------------------------------------------------------- the command


def _census_files() -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_bad_input*.py"))


def _stamp() -> dict[str, str]:
    sys.path.insert(0, str(ROOT))
    from gatelab.core.harness.provenance import git_commit, machine, now_iso

    return {"commit": git_commit(), "machine": machine(), "date": now_iso()}


def render_md(rows: list[dict[str, Any]]) -> str:
    """The markdown summary: one line per loader (cases tried, clear), then the unclear cases."""
    loaders: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        loaders.setdefault(r["loader"], []).append(r)
    lines = [
        "# Bad-input census (issue 18)",
        "",
        "Written by `python tools/census.py` from the census tests `tests/**/test_bad_input*.py`: each",
        "case builds a malformed input in the loader's real format and checks that the error names the",
        "file and the fault (`error`), or that the declared policy was applied and counted (`policy`).",
        "",
        "| loader | cases tried | clear | errors | policies | commit | date |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in sorted(loaders):
        rs = loaders[name]
        clear = sum(r["clear"] for r in rs)
        errors = sum(r["outcome"] == "error" for r in rs)
        commit = str(rs[0].get("commit", ""))[:12]
        date = str(rs[0].get("date", ""))[:10]
        lines.append(f"| {name} | {len(rs)} | {clear} | {errors} | {len(rs) - errors} | {commit} | {date} |")
    total = len(rows)
    lines += ["", f"Total: {total} cases, {sum(r['clear'] for r in rows)} clear.", ""]
    unclear = [r for r in rows if not r["clear"]]
    if unclear:
        lines += ["## Not clear", "", "| loader | case | fault | message |", "|---|---|---|---|"]
        for r in unclear:
            msg = r["message"].replace("|", "\\|")
            lines.append(f"| {r['loader']} | {r['case']} | {r['fault']} | {msg} |")
        lines.append("")
    lines += ["## Cases", "", "| loader | case | fault | outcome | message |", "|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["loader"], r["case"])):
        msg = r["message"].replace("|", "\\|")
        mark = "" if r["clear"] else " (NOT clear)"
        lines.append(f"| {r['loader']} | {r['case']} | {r['fault']} | {r['outcome']}{mark} | {msg} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="*", help="census test files (default: tests/**/test_bad_input*.py)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="jsonl to write (the .md goes next to it)")
    parser.add_argument("-k", default=None, help="pytest -k expression")
    args = parser.parse_args(argv)
    files = args.files or _census_files()
    if not files:
        print("census: no tests/**/test_bad_input*.py found", file=sys.stderr)
        return 2
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp) / "rows.jsonl"
        staging.touch()
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files]
        if args.k:
            cmd += ["-k", args.k]
        env = {**os.environ, ENV: str(staging)}
        rc = subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode
        new = [json.loads(line) for line in staging.read_text().splitlines() if line.strip()]
    if not new:
        print(f"census: pytest recorded no case (exit {rc})", file=sys.stderr)
        return rc or 1
    stamp = {**_stamp(), "command": shlex.join(["python", "tools/census.py", *(argv or sys.argv[1:])])}
    new = [{**r, **stamp} for r in new]
    rerun = {r["loader"] for r in new}
    old: list[dict[str, Any]] = []
    if out.is_file():
        old = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    rows = [r for r in old if r["loader"] not in rerun] + new
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out.with_suffix(".md").write_text(render_md(rows))
    clear = sum(r["clear"] for r in new)
    print(f"census: {len(new)} cases from {len(rerun)} loader(s), {clear} clear -> {out}")
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
