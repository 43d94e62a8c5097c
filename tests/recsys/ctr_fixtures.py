"""Helpers of the recsys tests: tiny files in the real CTR formats."""

from __future__ import annotations

import random
from pathlib import Path

CRITEO_I = [f"I{i}" for i in range(1, 14)]
CRITEO_C = [f"C{i}" for i in range(1, 27)]


def criteo_rows(n: int, seed: int = 0, *, vocab: int = 6) -> list[list[str]]:
    """Rows in Criteo's raw layout: label, I1-I13 (ints, some missing), C1-C26 (hex, some missing)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        row = [str(rng.randint(0, 1))]
        for _ in CRITEO_I:
            row.append("" if rng.random() < 0.2 else str(rng.choice([-1, 0, 1, 2, 3, 7, 20, 150, 5000])))
        for j in range(len(CRITEO_C)):
            row.append(
                "" if rng.random() < 0.1 else f"{(rng.randint(0, vocab) * 2654435761 + j) % 2**32:08x}"
            )
        rows.append(row)
    return rows


def write_lines(
    path: Path, rows: list[list[str]], sep: str, header: list[str] | None = None, newline: str = "\n"
) -> Path:
    lines = ([sep.join(header)] if header else []) + [sep.join(r) for r in rows]
    path.write_text(newline.join(lines) + newline)
    return path


#: the fields of :func:`write_custom_ctr`'s files (``custom`` data module fields)
CUSTOM_FIELDS = [
    {"name": "user", "type": "categorical"},
    {"name": "item", "type": "categorical", "min_count": 2},
    {"name": "price", "type": "numeric", "normalizer": "standard", "fill_na": 0.0},  # the files hold empty prices
    {"name": "tags", "type": "sequence"},
]


def write_custom_ctr(
    root: Path, sizes: dict[str, int] | None = None, seed: int = 0, *, users: int = 10
) -> dict[str, str]:
    """CSV splits ``label,rid,user,item,price,tags`` (the label depends mostly on the user; ``rid``
    a row id); returns split -> path. ``users`` > 10 adds users unseen in a 10-user training file."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, n in (sizes or {"train": 300, "valid": 80, "test": 80}).items():
        rows = ["label,rid,user,item,price,tags"]
        for k in range(n):
            u, i = rng.randint(0, users - 1), rng.randint(0, 14)
            y = int(u < 5) if rng.random() < 0.9 else rng.randint(0, 1)
            tags = "^".join(str(rng.randint(0, 5)) for _ in range(rng.randint(0, 3)))
            price = "" if rng.random() < 0.05 else f"{rng.random() * 10:.3f}"
            rows.append(f"{y},{split}-{k},u{u},i{i},{price},{tags}")
        (root / f"{split}.csv").write_text("\n".join(rows) + "\n")
        files[split] = str(root / f"{split}.csv")
    return files
