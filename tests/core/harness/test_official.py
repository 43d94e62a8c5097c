"""gatelab.core.harness.official: importing from a user's checkout of an official repository."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gatelab.core.harness.official import checkout_root, import_from_checkout


def _checkout(root: Path, value: int, *, init: bool = False, sub: str = "") -> Path:
    """A fake checkout whose ``models/net.py`` imports ``layers.block`` absolutely (as official code does)."""
    base = root / sub if sub else root
    for pkg in ("models", "layers"):
        (base / pkg).mkdir(parents=True)
        if init:
            (base / pkg / "__init__.py").write_text("")
    (base / "layers" / "block.py").write_text(f"VALUE = {value}\n")
    (base / "models" / "net.py").write_text(
        "from layers.block import VALUE\n\nclass Model:\n    value = VALUE\n"
    )
    return root


@pytest.fixture(autouse=True)
def _clean_modules():
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.split(".")[0] in ("models", "layers"):
            del sys.modules[name]


@pytest.mark.parametrize("init", [False, True])
def test_second_checkout_is_not_shadowed_by_the_first(tmp_path, init):
    a = _checkout(tmp_path / "a", 1, init=init)
    b = _checkout(tmp_path / "b", 2, init=init)
    path_before = list(sys.path)
    assert import_from_checkout(a, "models.net").Model.value == 1
    assert import_from_checkout(b, "models.net").Model.value == 2  # not a's cached models/layers
    assert sys.path == path_before
    assert import_from_checkout(a, "models.net").Model.value == 1


def test_search_dir_below_the_root(tmp_path):
    root = _checkout(tmp_path / "c", 3, sub="pkg")
    assert import_from_checkout(root, "models.net", search_dir="pkg").Model.value == 3


def test_missing_module_names_the_file_and_the_repository(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"models/net\.py not found; expected a checkout of org/repo at"
    ):
        import_from_checkout(tmp_path, "models.net", what="org/repo")


def test_checkout_root(tmp_path):
    _checkout(tmp_path / "d", 4)
    assert checkout_root(tmp_path / "d", "models/net.py") == (tmp_path / "d").resolve()
    assert checkout_root(tmp_path / "d", "models/other.py") is None
    assert checkout_root(None, "models/net.py") is None
    assert checkout_root("", "models/net.py") is None


def test_an_installed_library_the_checkout_vendors_stays_loaded(tmp_path):
    import json as json_module

    root = _checkout(tmp_path / "e", 5)
    (root / "json").mkdir()
    (root / "json" / "__init__.py").write_text("VENDORED = True\n")
    assert import_from_checkout(root, "models.net").Model.value == 5
    assert sys.modules["json"] is json_module
