"""The package layout: no import cycles (deferred imports included), no private core names outside core.

The import graph is static (``tests/layout_checks.py``: every ``import`` anywhere in a module,
function-level ones included, ``if TYPE_CHECKING:`` blocks excluded).
"""

from __future__ import annotations

from pathlib import Path

from layout_checks import find_cycles, import_graph, private_core_imports

REPO = Path(__file__).resolve().parents[1]

CORE = {"gatelab.core": REPO / "core"}
#: every package outside gatelab.core (the domains and the top-level package)
OUTSIDE_CORE = {
    "gatelab": REPO / "gatelab",
    "gatelab.timeseries": REPO / "timeseries",
    "gatelab.recsys": REPO / "recsys",
    "gatelab.vision": REPO / "vision",
    "gatelab.multimodal": REPO / "multimodal",
}


def test_find_cycles_sees_deferred_and_import_module_cycles(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from . import a\n")  # a package importing its own module: no cycle
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..a import x  # deferred: still a cycle\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\nimport importlib\n"
        "importlib.import_module('p.d')\n"
    )
    (pkg / "d.py").write_text("import p.c\n")
    graph = import_graph({"p": pkg})
    assert graph["p"] == {"p.a"}
    assert graph["p.a"] == {"p.sub", "p.sub.b"}
    assert graph["p.c"] == {"p.d"}  # import_module with a literal name counts; TYPE_CHECKING does not
    assert find_cycles(graph) == [["p.a", "p.sub.b", "p.a"], ["p.c", "p.d", "p.c"]]


def test_core_has_no_import_cycles():
    cycles = find_cycles(import_graph(CORE))
    assert cycles == [], "import cycles in gatelab.core:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_kernels_never_import_the_layers_of_core():
    """gatelab.core.kernels owns op + reference + backends; the gate modules call it, never the reverse."""
    graph = import_graph(CORE)
    for module, deps in graph.items():
        if module.startswith("gatelab.core.kernels"):
            outside = {d for d in deps if not d.startswith("gatelab.core.kernels")}
            assert outside == set(), f"{module} imports {sorted(outside)}"


def test_no_module_outside_core_imports_a_private_core_name():
    bad = private_core_imports(OUTSIDE_CORE)
    assert bad == [], "private gatelab.core names imported outside core:\n" + "\n".join(bad)


# --------------------------------------------------------------------------- the domain skeleton (issue 14)

DOMAINS = {name: path for name, path in OUTSIDE_CORE.items() if name != "gatelab"}
TOP_FILES = {"__init__.py", "registry.py", "README.md"}
OPTIONAL_FILES = {"predict.py"}  # `gatelab predict` for the domain (gatelab.core.harness.predict)
REQUIRED = {"models", "data", "tasks", "recipes"}
OPTIONAL = {"analysis"}  # only where a domain has interpretation or plotting code


def test_no_import_cycles_anywhere():
    """Zero import cycles in the whole of gatelab (core, domains, top level), deferred ones included."""
    cycles = find_cycles(import_graph({**CORE, **OUTSIDE_CORE}))
    assert cycles == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_every_domain_keeps_the_skeleton():
    """README.md + registry.py + models/ data/ tasks/ recipes/ (+ analysis/), nothing else at the top,
    one data/datamodule.py, a package __init__ in every sub-folder (docs/conventions.md, "Layout")."""
    problems = []
    for name, root in DOMAINS.items():
        files = {p.name for p in root.iterdir() if p.is_file()}
        folders = {p.name for p in root.iterdir() if p.is_dir() and p.name != "__pycache__"}
        if extra := files - TOP_FILES - OPTIONAL_FILES:
            problems.append(f"{name}: modules outside the skeleton: {sorted(extra)}")
        if missing := TOP_FILES - files:
            problems.append(f"{name}: missing {sorted(missing)}")
        if missing := REQUIRED - folders:
            problems.append(f"{name}: missing sub-packages {sorted(missing)}")
        if extra := folders - REQUIRED - OPTIONAL:
            problems.append(f"{name}: folders outside the skeleton: {sorted(extra)}")
        for sub in folders & (REQUIRED | OPTIONAL):
            if not (root / sub / "__init__.py").is_file():
                problems.append(f"{name}.{sub}: no __init__.py")
        if not (root / "data" / "datamodule.py").is_file():
            problems.append(f"{name}: no data/datamodule.py (the domain's Lightning data modules)")
    assert problems == [], "\n".join(problems)


def test_domain_init_imports_only_its_registry():
    for name, root in DOMAINS.items():
        graph = import_graph({name: root})
        assert graph[name] == {f"{name}.registry"}, f"{name}/__init__.py imports {sorted(graph[name])}"


#: the longest ``__init__`` body (statements after the signature and docstring) issue 14 allows
MAX_INIT_LINES = 60


def test_no_constructor_over_60_lines():
    """Models and layers are built from configs by short constructors with named builders."""
    import ast

    long = []
    for pkg in ("core", "timeseries", "recsys", "vision", "multimodal"):
        for path in sorted((REPO / pkg).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef) and node.name == "__init__":
                    body = node.body
                    if (
                        body
                        and isinstance(body[0], ast.Expr)
                        and isinstance(getattr(body[0], "value", None), ast.Constant)
                    ):
                        body = body[1:]
                    if body and body[-1].end_lineno - body[0].lineno + 1 > MAX_INIT_LINES:
                        long.append(
                            f"{path.relative_to(REPO)}:{node.lineno} ({body[-1].end_lineno - body[0].lineno + 1} lines)"
                        )
    assert not long, f"__init__ bodies over {MAX_INIT_LINES} lines: {long}"
