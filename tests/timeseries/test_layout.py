"""gatelab.timeseries keeps the domain skeleton (issue 14): no module outside it, no import cycle.

Static checks on the source (``ast``): deferred imports inside functions count as edges too.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "timeseries"
PKG = "gatelab.timeseries"
TOP_FILES = {"__init__.py", "registry.py", "README.md"}
SUB_PACKAGES = {"models", "data", "tasks", "analysis", "recipes"}


def _modules() -> dict[str, Path]:
    mods = {}
    for p in ROOT.rglob("*.py"):
        parts = [*PKG.split("."), *p.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = p
    return mods


def _edges(mods: dict[str, Path]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        out: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                candidates = [target, *(f"{target}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            else:
                continue
            out.update(c for c in candidates if c in mods and c != name and not c.startswith(name + "."))
        edges[name] = out
    return edges


def test_top_level_holds_only_the_skeleton():
    files = {p.name for p in ROOT.iterdir() if p.is_file()}
    folders = {p.name for p in ROOT.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert files <= TOP_FILES, f"modules outside the skeleton: {sorted(files - TOP_FILES)}"
    assert folders == SUB_PACKAGES, sorted(folders ^ SUB_PACKAGES)
    for sub in SUB_PACKAGES:
        assert (ROOT / sub / "__init__.py").is_file(), sub


def test_no_import_cycles_deferred_ones_included():
    edges = _edges(_modules())
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(u: str) -> None:
        state[u] = 1
        stack.append(u)
        for v in sorted(edges[u]):
            if state.get(v) == 1:
                cycles.append([*stack[stack.index(v) :], v])
            elif v not in state:
                visit(v)
        stack.pop()
        state[u] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)
    assert cycles == []


def test_the_port_imports_the_model_never_the_reverse():
    edges = _edges(_modules())
    assert f"{PKG}.models.tft" in edges[f"{PKG}.models.tft_port"]
    assert not any(m.endswith("tft_port") for m in edges[f"{PKG}.models.tft"])
