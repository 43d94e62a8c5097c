"""Shared fixtures of the LTSF data tests (``from ltsf_fixtures import ...``)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd


def write_csv(
    path: Path,
    n: int,
    *,
    freq: str = "h",
    cols: tuple[str, ...] = ("a", "b", "OT"),
    start: str = "2016-07-01",
    seed: int = 0,
    gz: bool = False,
) -> np.ndarray:
    """An LTSF-layout CSV: date + cols, values = row * 10 + column index + noise; returns the values."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start, periods=n, freq=freq)
    vals = np.arange(n)[:, None] * 10.0 + np.arange(len(cols))[None, :] + rng.normal(0, 0.1, (n, len(cols)))
    df = pd.DataFrame(vals, columns=list(cols))
    df.insert(0, "date", dates.strftime("%Y-%m-%d %H:%M:%S"))
    path.parent.mkdir(parents=True, exist_ok=True)
    text = df.to_csv(index=False)
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return vals
