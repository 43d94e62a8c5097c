"""Numeric statistics and the raw reader's bounded read-ahead (issue 18 points 1 and 3)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from ctr_fixtures import write_lines

from gatelab.recsys.data import CsvReader, encode_dataset, load_encoded
from gatelab.recsys.data import readers as readers_mod
from gatelab.recsys.data.encoder import _NumStats


def test_welford_chan_keeps_std_of_large_offset_values():
    """1e9 + N(0, 1) over 1M values in 16 chunks: std ~1 (E[x^2] - mean^2 gave 0)."""
    rng = np.random.default_rng(0)
    x = 1e9 + rng.standard_normal(1_000_000)
    st = _NumStats()
    for part in np.array_split(x, 16):
        st.update(part)
    d = st.as_dict()
    assert d["count"] == len(x)
    assert d["mean"] == pytest.approx(x.mean(), abs=1e-6)
    assert d["std"] == pytest.approx(x.std(), rel=1e-9)
    assert 0.99 < d["std"] < 1.01
    naive = max(float(np.square(x).sum()) / len(x) - float(x.sum() / len(x)) ** 2, 0.0) ** 0.5
    assert abs(naive - 1.0) > 0.1  # the one-pass formula this replaces is wrong here


def test_chunked_statistics_equal_one_shot():
    rng = np.random.default_rng(1)
    x = rng.lognormal(3, 2, 10_001)
    st = _NumStats()
    for part in np.array_split(x, 7):
        st.update(part)
    assert st.as_dict()["std"] == pytest.approx(x.std(), rel=1e-12)
    assert (st.lo, st.hi) == (x.min(), x.max())


def test_large_offset_column_is_normalised_not_zeroed(tmp_path):
    rng = np.random.default_rng(2)
    v = 1e9 + rng.standard_normal(3000)
    rows = [[str(i % 2), f"{x:.6f}"] for i, x in enumerate(v)]
    f = write_lines(tmp_path / "train.csv", rows, ",", ["label", "x"])
    folder = encode_dataset(
        {"train": CsvReader(f, block_size=4096)},
        [{"name": "x", "type": "numeric", "normalizer": "standard"}],
        tmp_path / "cache",
    )
    spec, splits = load_encoded(folder)
    enc = np.asarray(splits["train"].numeric[:, 0], dtype=np.float64)
    parsed = np.array([float(r[1]) for r in rows])
    assert 0.95 < spec["x"].stats["std"] < 1.05
    assert enc.std() == pytest.approx(1.0, rel=1e-3)
    np.testing.assert_allclose(enc, (parsed - parsed.mean()) / parsed.std(), atol=1e-4)


class _CountingFile:
    """A binary file that counts ``read`` calls (the blocks the reader has pulled)."""

    def __init__(self, path):
        self.f = open(path, "rb")
        self.reads = 0

    def read(self, n=-1):
        self.reads += 1
        return self.f.read(n)

    def readline(self):
        return self.f.readline()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


@pytest.mark.parametrize("read_ahead", [0, 1, 3])
def test_read_ahead_is_bounded(tmp_path, monkeypatch, read_ahead):
    """The background reader never holds more than read_ahead blocks besides the one in use,
    however slow the consumer (an upper bound: a slow machine only reads less)."""
    rows = [[str(i % 2), f"{i:06d}"] for i in range(4000)]
    f = write_lines(tmp_path / "t.csv", rows, ",", ["label", "x"])
    opened = []

    def counting_open(path):
        opened.append(_CountingFile(path))
        return opened[-1]

    monkeypatch.setattr(readers_mod, "_open_binary", counting_open)
    block = 2048
    n_blocks = 0
    lines = 0
    for k, b in enumerate(readers_mod._blocks(f, block, read_ahead, skip_lines=1), start=1):
        time.sleep(0.02)  # let the background thread run ahead as far as it may
        # one read per block (+1 for the block being put in the queue by the thread)
        assert opened[0].reads <= k + read_ahead + 1, (k, opened[0].reads)
        n_blocks = k
        lines += b.data.count(b"\n")
    assert lines == 4000 and n_blocks >= 15


def test_block_reader_keeps_exact_lines_across_empty_lines(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("label,x\n1,a\n\n0,b\n\n\n1,c\n")
    chunks = list(CsvReader(f, block_size=8).iter_chunks())
    lines = [c.line_of(i) for c in chunks for i in range(c.table.num_rows)]
    values = [v for c in chunks for v in c.table.column("x").to_pylist()]
    assert values == ["a", "b", "c"] and lines == [2, 4, 7]
