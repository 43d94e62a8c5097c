#!/usr/bin/env python3
"""Developer entry point that needs nothing but python3 (the Makefile calls it).

    python3 tools/dev.py run     # the main job (README)
    python3 tools/dev.py test    # the default test suite (README, CI)
    python3 tools/dev.py lint    # ruff check
    python3 tools/dev.py sync    # create/refresh the locked environment (.venv)

It finds ``uv`` (on PATH, in ``.tools/``, via ``pip install --target``, or by fetching the uv wheel
from PyPI with the standard library), then runs ``uv sync --frozen`` against the committed
``uv.lock`` and the requested command inside that environment.
"""

from __future__ import annotations

import io
import json
import os
import platform
import shutil
import stat
import subprocess
import sys
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / ".tools"

# The main job and the test command. README.md and .ci/run name these targets.
MAIN_JOB = ["gatelab", "list"]
TEST_CMD = ["pytest", "-q", "-m", "not slow"]
LINT_CMD = ["ruff", "check", "."]


def _log(msg: str) -> None:
    print(f"[dev] {msg}", file=sys.stderr, flush=True)


def _uv_from_pypi(dest: Path) -> Path:
    """Download the uv wheel for this platform from PyPI and unpack its binary (stdlib only)."""
    machine = platform.machine().lower()
    arch = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}.get(machine)
    if arch is None or sys.platform != "linux":
        raise SystemExit(
            f"cannot fetch uv for {sys.platform}/{machine}; install uv (https://docs.astral.sh/uv/)"
        )
    index = "https://pypi.org/pypi/uv/json"
    with urllib.request.urlopen(index, timeout=60) as r:
        meta = json.load(r)
    for f in meta["urls"]:
        name = f["filename"]
        if name.endswith(".whl") and "manylinux" in name and arch in name and "musl" not in name:
            _log(f"downloading {name}")
            with urllib.request.urlopen(urllib.parse.urljoin(index, f["url"]), timeout=300) as r:
                data = r.read()
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                member = next(m for m in z.namelist() if m.endswith("/scripts/uv"))
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(z.read(member))
            dest.chmod(dest.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            return dest
    raise SystemExit("no uv wheel for this platform on PyPI")


def find_uv() -> str:
    """Path of a usable ``uv`` binary, installing one under .tools/ if needed."""
    found = shutil.which("uv")
    if found:
        return found
    for cand in (TOOLS / "bin" / "uv", TOOLS / "pip" / "bin" / "uv"):
        if cand.exists():
            return str(cand)
    _log("uv not found; installing it under .tools/")
    try:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(TOOLS / "pip"), "uv"],
            check=True,
        )
        cand = TOOLS / "pip" / "bin" / "uv"
        if cand.exists():
            return str(cand)
    except (subprocess.CalledProcessError, FileNotFoundError):
        _log("pip is not available; fetching the uv wheel from PyPI directly")
    return str(_uv_from_pypi(TOOLS / "bin" / "uv"))


def sync(uv: str) -> None:
    subprocess.run([uv, "sync", "--frozen"], cwd=ROOT, check=True)


def run_in_env(uv: str, cmd: list[str]) -> int:
    return subprocess.run([uv, "run", "--frozen", "--no-sync", *cmd], cwd=ROOT).returncode


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "test", "lint", "sync"}:
        print(__doc__)
        return 2
    uv = find_uv()
    sync(uv)
    target, extra = argv[0], argv[1:]
    if target == "sync":
        return 0
    cmd = {"run": MAIN_JOB, "test": TEST_CMD, "lint": LINT_CMD}[target]
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return run_in_env(uv, [*cmd, *extra])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
