"""Packaging: every package folder is listed in pyproject, and the wheel carries all of them.

setuptools' ``package-dir`` mapping (``gatelab.core = core``...) only installs packages that are
listed in ``[tool.setuptools] packages``; a folder missing there is silently dropped from wheels.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: files that must ship inside the wheel (path in the wheel -> sha256, or None)
SHIPPED_DATA = {
    # the embedded ETTh1 (unmodified, CC BY-ND 4.0) with its license and attribution
    "gatelab/timeseries/data/embedded/ETTh1.csv": "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066",
    "gatelab/timeseries/data/embedded/LICENSE": "83cbb5c31415b1d0ee1d20d35dae3fda3a045b85fae9364cc57facc9cd6e0946",
    "gatelab/timeseries/data/embedded/README.md": None,
}


def _config() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def _folder_of(package: str, package_dir: dict[str, str]) -> Path:
    """Folder of a dotted package name under the package-dir mapping (longest prefix wins)."""
    parts = package.split(".")
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in package_dir:
            return REPO / package_dir[prefix] / Path(*parts[i:])
    raise AssertionError(f"{package} has no package-dir mapping")


def _package_folders(package_dir: dict[str, str]) -> dict[str, Path]:
    """Every folder holding Python files below a mapped root, as its dotted package name."""
    found: dict[str, Path] = {}
    for name, rel in package_dir.items():
        root = REPO / rel
        for py in root.rglob("*.py"):
            folder = py.parent
            if any(p.startswith(".") or p == "__pycache__" for p in folder.relative_to(REPO).parts):
                continue
            sub = folder.relative_to(root).parts
            # a mapped child root (gatelab.core inside nothing) is handled by its own mapping
            dotted = ".".join((name, *sub)) if sub else name
            found[dotted] = folder
    return found


def test_every_package_folder_is_listed():
    cfg = _config()
    listed = set(cfg["packages"])
    folders = _package_folders(cfg["package-dir"])
    missing = sorted(set(folders) - listed)
    assert not missing, f"package folders missing from [tool.setuptools] packages: {missing}"
    for dotted, folder in folders.items():
        assert (folder / "__init__.py").exists(), f"{folder} holds Python files but no __init__.py ({dotted})"


def test_every_listed_package_exists():
    cfg = _config()
    for pkg in cfg["packages"]:
        folder = _folder_of(pkg, cfg["package-dir"])
        assert (folder / "__init__.py").is_file(), f"{pkg} is listed but {folder}/__init__.py does not exist"


@pytest.mark.timeout(300)
def test_wheel_contains_every_module(tmp_path):
    """Build the wheel and check every .py under the mapped folders is inside it.

    The sources are copied first so the build's scratch folders never touch the checkout.
    """
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", ".*")
    cfg = _config()
    for rel in set(cfg["package-dir"].values()):
        shutil.copytree(REPO / rel, src / rel, ignore=ignore)
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / f, src / f)
    out = tmp_path / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(src)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    wheel = next(out.glob("gatelab-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = []
    for dotted, folder in _package_folders(cfg["package-dir"]).items():
        for py in folder.glob("*.py"):
            expected.append("/".join([*dotted.split("."), py.name]))
    missing = sorted(e for e in expected if e not in names)
    assert not missing, f"wheel lacks {missing[:20]}"
    # data files shipped inside packages (pyproject package-data), byte-identical
    with zipfile.ZipFile(wheel) as z:
        for rel, digest in SHIPPED_DATA.items():
            assert rel in names, f"wheel lacks package data {rel}"
            if digest:
                assert hashlib.sha256(z.read(rel)).hexdigest() == digest, f"{rel} changed in the wheel"


def test_mapping_resolves_in_this_install():
    import gatelab
    import gatelab.core

    assert Path(gatelab.core.__file__).resolve().parent == (REPO / "core").resolve()
    assert Path(gatelab.__file__).resolve().parent == (REPO / "gatelab").resolve()
