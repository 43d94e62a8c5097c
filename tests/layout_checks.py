"""Static checks of the package layout: the import graph of gatelab's packages and its cycles.

``import_graph({"gatelab.core": REPO / "core"})`` parses every module of the package with ``ast``
(nothing is imported) and returns ``{module: modules it imports}``, restricted to the modules of the
graph. What counts as an import:

- every ``import a.b`` / ``from a import b`` / ``from . import b`` statement anywhere in the module,
  at the top or deferred inside a function, method or ``try`` (a deferred import still runs, and a
  cycle through it is still a cycle);
- ``importlib.import_module("a.b")`` with a literal module name;
- NOT the imports inside an ``if TYPE_CHECKING:`` block (they never run) and not the lazy
  ``"module:attr"`` strings of registries and ``_EXPORTS`` tables (resolved by name on first use).

``from a import b`` is an edge to ``a`` (its ``__init__`` runs first) and also to ``a.b`` when that
is a module of the graph; ``import a.b.c`` is an edge to ``a.b.c`` only (the parent packages'
``__init__`` run too, but an edge to every parent would turn each package ``__init__`` into a hub
of false cycles; a ``from`` import names its package explicitly, so that edge is kept).

``find_cycles(graph)`` returns one concrete cycle ``[m1, m2, ..., m1]`` per strongly connected
component of more than one module (or a module importing itself), sorted.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

__all__ = ["find_cycles", "import_graph", "module_names", "private_core_imports"]


def module_names(package_dirs: Mapping[str, Path]) -> dict[str, Path]:
    """``{dotted module name: file}`` for every ``.py`` file under each ``{package: folder}``."""
    out: dict[str, Path] = {}
    for package, folder in package_dirs.items():
        folder = Path(folder)
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("").parts
            if any(p.startswith(".") or p == "__pycache__" for p in rel):
                continue
            parts = rel[:-1] if rel[-1] == "__init__" else rel
            out[".".join((package, *parts))] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, tuple[str, ...]]]:
    """``(imported module, names)`` for every import that runs (TYPE_CHECKING blocks skipped)."""
    found: list[tuple[str, tuple[str, ...]]] = []
    package = module if is_package else module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((target, tuple(alias.name for alias in node.names)))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.args[0].value, ()))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(package_dirs: Mapping[str, Path]) -> dict[str, set[str]]:
    """``{module: set of modules of the graph it imports}`` over ``{package name: folder}``."""
    files = module_names(package_dirs)
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: set[str] = set()
        for target, names in _imports(tree, module, path.name == "__init__.py"):
            if target in files and target != module:  # a package's own `from . import sub` is no cycle
                edges.add(target)  # `from pkg import x` runs pkg's __init__ first
            edges.update(f"{target}.{n}" for n in names if f"{target}.{n}" in files)
        graph[module] = edges
    return graph


def find_cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """One cycle ``[a, b, ..., a]`` per non-trivial strongly connected component (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    def strongconnect(v: str) -> None:  # recursion depth is bounded by the number of modules
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                components.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)

    cycles = []
    for comp in components:
        members = set(comp)
        start = comp[0]
        # shortest path back to start inside the component (BFS)
        prev: dict[str, str] = {}
        frontier = [start]
        seen = {start}
        end = None
        while frontier and end is None:
            nxt = []
            for u in frontier:
                for w in sorted(graph.get(u, ())):
                    if w == start:
                        end = u
                        break
                    if w in members and w not in seen:
                        seen.add(w)
                        prev[w] = u
                        nxt.append(w)
                if end is not None:
                    break
            frontier = nxt
        path = [start]
        u = end
        while u is not None and u != start:
            path.append(u)
            u = prev.get(u)
        cycles.append([start, *reversed(path[1:]), start])
    return sorted(cycles)


def private_core_imports(package_dirs: Mapping[str, Path]) -> list[str]:
    """``"module: gatelab.core._x"`` for every import of a private core name outside ``gatelab.core``.

    Private: any dotted component after ``gatelab.core`` starting with ``_`` (``gatelab.core._nd``,
    ``from gatelab.core import _nd``, ``from gatelab.core.kernels import _common``).
    """
    bad = []
    for module, path in module_names(package_dirs).items():
        if module == "gatelab.core" or module.startswith("gatelab.core."):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for target, names in _imports(tree, module, path.name == "__init__.py"):
            if not (target == "gatelab.core" or target.startswith("gatelab.core.")):
                continue
            for name in [target, *(f"{target}.{n}" for n in names)]:
                parts = name.split(".")[2:]
                if any(p.startswith("_") for p in parts):
                    bad.append(f"{module}: {name}")
    return sorted(set(bad))
