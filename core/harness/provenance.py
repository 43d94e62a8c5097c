"""Where a result came from: git commit, machine, date, command line, process rank.

Every ledger record and every run directory is stamped with these, so a number in
``docs/results/`` can be traced to the code and the hardware that produced it. Nothing here
imports torch at module level; :func:`machine` imports it only to name the GPU.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import os
import platform
import re
import shlex
import subprocess
import sys
from pathlib import Path

__all__ = [
    "command_line",
    "cpu_of",
    "git_commit",
    "is_rank_zero",
    "machine",
    "now_iso",
    "repo_root",
    "source_hash",
]

#: what regenerating results rewrites (a prefix ending in ``/`` is a folder): changes there do not
#: make :func:`git_commit` ``-dirty``
RESULTS_PATHS = ("docs/results/", "README.md")

#: files that only render pages from recorded rows (they compute paired comparisons and verdicts
#: from the ledgers, and write no row): a fix to a page's wording or layout cannot change a number
#: the rows hold, so it does not split a regeneration's source
RENDER_ONLY = ("tools/results_pages.py",)

#: paths left out of :func:`source_hash`: the results, and every file that cannot change a result
#: (documentation: ``docs/`` and every markdown file, the domains' READMEs included; tests, CI
#: scripts, repository metadata, :data:`RENDER_ONLY`). What is left is what runs: the packages,
#: ``benchmarks/``, the other ``tools/``, ``pyproject.toml`` and ``uv.lock``. A pattern ending in
#: ``/`` is a folder, one starting with ``*`` a file-name suffix, anything else one path.
SOURCE_EXCLUDE = (
    *RESULTS_PATHS, "docs/", "tests/", ".ci/", "*.md", "Makefile", "LICENSE", ".gitignore", ".gitattributes",
    *RENDER_ONLY,
)


@functools.cache
def repo_root() -> Path | None:
    """The gatelab checkout this code runs from, or ``None`` for an installed wheel.

    A checkout is recognised by ``pyproject.toml`` naming the ``gatelab`` project two levels above
    ``core/harness/``.
    """
    root = Path(__file__).resolve().parents[2]
    pyproject = root / "pyproject.toml"
    try:
        text = pyproject.read_text()
    except OSError:
        return None
    return root if 'name = "gatelab"' in text else None


def _git(*args: str, cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _dirty(root: Path, exclude: tuple[str, ...]) -> bool:
    """Whether tracked files outside ``exclude`` differ from ``HEAD`` (``git diff --name-only HEAD``)."""
    changed = _git("-c", "core.quotePath=false", "diff", "--name-only", "--no-renames", "HEAD", cwd=root)
    return any(not _excluded(path, exclude) for path in (changed or "").splitlines() if path)


def git_commit(root: Path | None = None, exclude: tuple[str, ...] = RESULTS_PATHS) -> str:
    """``git rev-parse HEAD`` of the checkout, suffixed ``-dirty`` when tracked files outside
    ``exclude`` differ from it (default: ``docs/results/`` and ``README.md``, which a regeneration
    itself rewrites: appending a row does not make the next row's commit dirty).

    Outside a checkout (installed package, no git) returns ``"gatelab-<version>"``.
    """
    root = root or repo_root()
    if root is not None:
        head = _git("rev-parse", "HEAD", cwd=root)
        if head:
            return head + ("-dirty" if _dirty(root, exclude) else "")
    try:
        from importlib.metadata import version

        return f"gatelab-{version('gatelab')}"
    except Exception:  # metadata missing (not installed): an honest placeholder
        return "unknown"


def _excluded(path: str, exclude: tuple[str, ...]) -> bool:
    return any(
        path.startswith(e) if e.endswith("/") else path.endswith(e[1:]) if e.startswith("*") else path == e
        for e in exclude
    )


def source_hash(root: Path | None = None, exclude: tuple[str, ...] = SOURCE_EXCLUDE) -> str | None:
    """A digest of the tracked source tree at ``HEAD`` less ``exclude`` (default
    :data:`SOURCE_EXCLUDE`: results, docs, tests, CI scripts, the page renderer), suffixed ``-dirty`` when tracked
    files outside ``exclude`` differ from it.

    Two commits that differ only in results (ledgers, rendered tables, README's generated block),
    documentation or tests have the same source hash: rows recorded over several sessions, each
    committing its results, still come from one source, and a test fixed between two sessions
    of a regeneration does not split it. The digest: the first 16 hex digits of the sha256 of the
    ``<mode> <blob sha> <path>`` lines of ``git ls-tree -r HEAD`` for the kept paths. ``None``
    outside a git checkout.
    """
    root = root or repo_root()
    if root is None:
        return None
    tree = _git("ls-tree", "-r", "--full-tree", "HEAD", cwd=root)
    if tree is None:
        return None
    h = hashlib.sha256()
    for line in tree.splitlines():
        meta, _, path = line.partition("\t")
        if not path or _excluded(path, exclude):
            continue
        mode, _kind, sha = meta.split()
        h.update(f"{mode} {sha} {path}\n".encode())
    digest = h.hexdigest()[:16]
    return digest + ("-dirty" if _dirty(root, exclude) else "")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown cpu"


def cpu_of(machine_line: str) -> str:
    """The CPU model of a :func:`machine` line (``"<cpu> x<n> cores; ...; <os>"``), core count
    and the rest left out: ``"AMD EPYC"``."""
    return re.sub(r" x\d+ cores$", "", machine_line.split(";", 1)[0].strip())


@functools.cache
def machine() -> str:
    """One line naming the hardware: ``"<cpu model> x<cores> cores; <gpu> x<n>; <os>"``.

    The GPU part is present only when CUDA is available (``torch.cuda.get_device_name``).
    """
    parts = [f"{_cpu_model()} x{os.cpu_count()} cores"]
    torch = sys.modules.get("torch")
    if torch is None:
        import torch
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        parts.append(f"{torch.cuda.get_device_name(0)} x{n}")
    parts.append(platform.platform(terse=True))
    return "; ".join(parts)


def now_iso() -> str:
    """Current local time, ISO 8601 with the UTC offset, to the second."""
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def command_line(argv: list[str] | None = None) -> str:
    """The command as a user would retype it: ``gatelab <args>`` for the CLI, else ``sys.argv``."""
    if argv is not None:
        return shlex.join(["gatelab", *argv])
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])


def is_rank_zero() -> bool:
    """True unless this process is a non-zero rank of a distributed launch.

    Reads the variables Lightning, torchrun and SLURM set (``RANK``, ``NODE_RANK``/``LOCAL_RANK``,
    ``SLURM_PROCID``), so it works before any process group exists (e.g. in the child processes
    Lightning's DDP launcher re-runs the command in).
    """
    env = os.environ
    if "RANK" in env:
        return env["RANK"] == "0"
    if "SLURM_PROCID" in env and "LOCAL_RANK" not in env:
        return env["SLURM_PROCID"] == "0"
    return env.get("LOCAL_RANK", "0") == "0" and env.get("NODE_RANK", "0") == "0"
