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
