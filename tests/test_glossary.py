"""One concept, one name: no constructor argument, public function parameter or config field in
the package uses a name the glossary of ``docs/conventions.md`` replaces.

The banned names are read from the glossary table itself (its "replaces" column, less every name
of its "name" column), so the table and the check cannot drift. Weight ports (``*_port.py``)
keep the other library's names by design and are not checked.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "timeseries", "recsys", "vision", "multimodal")


def glossary() -> tuple[set[str], set[str]]:
    """``(names, banned)`` from the glossary table of docs/conventions.md."""
    text = (ROOT / "docs" / "conventions.md").read_text()
    section = text.split("## Glossary", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    replaced: set[str] = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("concept", "") or set(cells[1]) <= {"-"}:
            continue
        names |= set(re.findall(r"`(\w+)`", cells[1]))
        # "`n_vars` -> `num_vars`": only the left side is replaced
        replaced |= {m for part in cells[2].split(",") for m in re.findall(r"`(\w+)`", part.split("->")[0])}
    return names, replaced - names


def offenders(banned: set[str]) -> list[str]:
    out = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if path.name.endswith("_port.py"):
                continue
            rel = path.relative_to(ROOT)
            for node in ast.walk(ast.parse(path.read_text(), str(rel))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                    node.name == "__init__" or not node.name.startswith("_")
                ):
                    args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
                    out += [f"{rel}:{node.lineno} {node.name}({a.arg})" for a in args if a.arg in banned]
                elif isinstance(node, ast.ClassDef):
                    out += [
                        f"{rel}:{st.lineno} {node.name}.{st.target.id}"
                        for st in node.body
                        if isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name) and st.target.id in banned
                    ]
    return out


def test_glossary_table_parses():
    names, banned = glossary()
    assert {"dim", "num_heads", "lookback", "horizon", "act", "dropout"} <= names
    assert {"n_heads", "input_size", "pred_len", "activation", "dropout_rate"} <= banned
    assert not names & banned


def test_no_replaced_name_in_the_package():
    bad = offenders(glossary()[1])
    assert not bad, "names the glossary replaces (docs/conventions.md):\n" + "\n".join(bad)
