"""CTR data at scale, tiny versions (issue 18 point 7): row shards and their manifest, the exact
bounded token counter, and the multi-process encoder's determinism."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from gatelab.recsys.data import CsvReader, CTRDataError, FeatureEncoder, encode_dataset, load_encoded
from gatelab.recsys.data.counting import TokenLookup, chunk_counts, merge_counts, token_keys, write_counts
from gatelab.recsys.data.datamodule import CTRDataModule
from gatelab.recsys.data.layouts import LAYOUTS
from gatelab.recsys.data.shards import ShardWriter, open_shards

CRITEO = LAYOUTS["criteo"]


def _criteo_tsv(path: Path, rows: int, seed: int) -> Path:
    """A raw Criteo-layout TSV (no header): label, 13 ints (some empty), 26 hex ids (some empty,
    a few longer than 8 bytes so both token paths run)."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(rows):
        ints = ["" if rng.random() < 0.2 else str(int(rng.integers(-2, 3000))) for _ in range(13)]
        cats = []
        for j in range(26):
            r = int(np.floor(np.exp(rng.random() * np.log(40 + 10 * j))))
            cats.append("" if rng.random() < 0.05 else (f"{r * 2654435761 % 2**32:08x}" + ("long-tail" if r % 7 == 0 else "")))
        lines.append("\t".join([str(int(rng.integers(0, 2))), *ints, *cats]))
    path.write_text("\n".join(lines) + "\n")
    return path


def _reader(path: Path, block_size: int = 1 << 14) -> CsvReader:
    return CsvReader(path, sep="\t", header=False, names=list(CRITEO.names), quoting=False, block_size=block_size)


# ---------------------------------------------------------------------------------------- shards


def _write_shards(folder: Path, rows: int = 10, shard_rows: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    data = {
        "label": rng.integers(0, 2, rows).astype(np.float32),
        "categorical": rng.integers(0, 100, (rows, 4)).astype(np.int32),
        "sequence": rng.integers(0, 9, (rows, 2, 3)).astype(np.int32),
    }
    w = ShardWriter(folder, rows, {k: (v.dtype, v.shape[1:]) for k, v in data.items()}, shard_rows)
    # two writers on disjoint ranges (as two worker processes would), one range across shards
    ShardWriter(**w.state(), create=False).write(0, {k: v[:4] for k, v in data.items()})
    ShardWriter(**w.state(), create=False).write(4, {k: v[4:] for k, v in data.items()})
    w.finish()
    return data


def test_shards_round_trip(tmp_path: Path) -> None:
    data = _write_shards(tmp_path / "s")
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["rows"] == 10 and [s["rows"] for s in manifest["shards"]] == [3, 3, 3, 1]
    assert manifest["arrays"]["sequence"] == {"dtype": "<i4", "shape": [2, 3]}
    _, mapped = open_shards(tmp_path / "s", verify=True)
    _, loaded = open_shards(tmp_path / "s", mmap_mode=None)
    rows = np.array([9, 0, 4, 4, 7, 2, -1])
    for k, v in data.items():
        a = mapped[k]
        assert a.shape == v.shape and len(a) == 10
        np.testing.assert_array_equal(a[rows], v[rows])
        np.testing.assert_array_equal(a[2:8], v[2:8])
        np.testing.assert_array_equal(a[::3], v[::3])
        np.testing.assert_array_equal(a[5], v[5])
        np.testing.assert_array_equal(np.asarray(a), v)
        np.testing.assert_array_equal(loaded[k], v)
        a.release()  # pages dropped; the data is still there
        np.testing.assert_array_equal(a[rows], v[rows])
    np.testing.assert_array_equal(mapped["categorical"][rows, 1], data["categorical"][rows, 1])
    with pytest.raises(IndexError, match="out of range"):
        mapped["label"][np.array([10])]


def test_shard_manifest_corruption_names_the_file(tmp_path: Path) -> None:
    _write_shards(tmp_path / "s")
    shard = tmp_path / "s" / "categorical-00001.npy"
    manifest = tmp_path / "s" / "manifest.json"
    good = manifest.read_text()
    # a flipped byte keeps the size: only the checksum sees it
    raw = bytearray(shard.read_bytes())
    raw[-1] ^= 0xFF
    shard.write_bytes(bytes(raw))
    open_shards(tmp_path / "s")  # sizes and headers still agree
    with pytest.raises(CTRDataError, match=r"categorical-00001\.npy: sha256 .* corrupt"):
        open_shards(tmp_path / "s", verify=True)
    shard.write_bytes(bytes(raw[:-4]))
    with pytest.raises(CTRDataError, match=r"categorical-00001\.npy: \d+ bytes, the manifest .* says"):
        open_shards(tmp_path / "s")
    shard.unlink()
    with pytest.raises(CTRDataError, match=r"shard file .*categorical-00001\.npy .* is missing"):
        open_shards(tmp_path / "s")
    m = json.loads(good)
    m["shards"][2]["rows"] = 2
    manifest.write_text(json.dumps(m))
    with pytest.raises(CTRDataError, match=r"manifest\.json: the shards' rows add up to 9"):
        open_shards(tmp_path / "s")
    m = json.loads(good)
    m["arrays"]["label"]["dtype"] = "<f8"
    m["shards"][0]["files"]["categorical"]["bytes"] = (tmp_path / "s" / "categorical-00000.npy").stat().st_size
    manifest.write_text(json.dumps(m))
    with pytest.raises(CTRDataError, match=r"label-00000\.npy: dtype float32 .* says dtype float64"):
        open_shards(tmp_path / "s")
    manifest.write_text(good[:-20])
    with pytest.raises(CTRDataError, match=r"manifest\.json: not valid JSON"):
        open_shards(tmp_path / "s")


# ---------------------------------------------------------------------------------------- counting


def test_token_keys_and_lookup_are_exact() -> None:
    vals = ["a", "bb", None, "abcdefgh", "abcdefghi", "x\x00y", "a", "é", "ééééé", "abcdefghi"]
    keys, hashed = token_keys(pa.array(vals))
    assert hashed.tolist() == [False, False, False, False, True, True, False, False, True, True]
    assert len(set(keys[~hashed].tolist())) == 5  # a, bb, null, abcdefgh, é: distinct packed keys
    tokens, counts, _ = chunk_counts(pa.array(vals))
    assert dict(zip(tokens.to_pylist(), counts.tolist())) == collections.Counter(v for v in vals if v is not None)
    short = ["a", "bb", "abcdefgh"]  # packed vocabulary: binary search; a long token is never a hit
    assert TokenLookup(pa.array(short))(pa.array(vals)).tolist() == [1, 2, 0, 3, 0, 0, 1, 0, 0, 0]
    mixed = ["abcdefghi", "a", "x\x00y"]  # a long token in the vocabulary: index_in
    assert TokenLookup(pa.array(mixed))(pa.array(vals)).tolist() == [2, 0, 0, 0, 1, 3, 2, 0, 0, 1]


def test_spilled_counts_equal_a_counter(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    words = [f"t{i}" for i in range(60)] + [f"a-long-token-{i}" for i in range(20)]
    chunks = [[words[int(i)] for i in rng.zipf(1.3, 300) % len(words)] for _ in range(5)]
    exact = [collections.Counter(), collections.Counter()]
    files = []
    for c, chunk in enumerate(chunks):
        half = len(chunk) // 2
        per_field = []
        for fid, part in enumerate((chunk[:half], chunk[half:])):
            exact[fid].update(part)
            per_field.append((fid, *chunk_counts(pa.array(part))))
        files.append(tmp_path / f"{c}.arrow")
        write_counts(files[-1], per_field, 4)
    for min_count in (1, 5):
        got = [collections.Counter(), collections.Counter()]
        for p in range(4):
            t = merge_counts(files, p, {0: min_count, 1: min_count})
            for fid, v, n in zip(*(t.column(k).to_pylist() for k in ("field", "v", "n"))):
                assert v not in got[fid]  # each token in exactly one partition
                got[fid][v] = n
        for fid in (0, 1):
            assert got[fid] == {k: n for k, n in exact[fid].items() if n >= min_count}


def test_bounded_counter_vocabulary_equals_a_counter(tmp_path: Path) -> None:
    f = _criteo_tsv(tmp_path / "t.tsv", 600, 0)
    enc = FeatureEncoder(CRITEO.fields, min_count=3, num_partitions=3)
    reader = _reader(f, 1 << 12)
    assert len(reader.segments()) > 5
    spec = enc.fit(reader)
    rows = [line.split("\t") for line in f.read_text().splitlines()]
    for j, name in enumerate(CRITEO.names[14:], start=14):
        counts = collections.Counter(r[j] for r in rows if r[j])
        want = sorted((t for t, n in counts.items() if n >= 3), key=lambda t: (-counts[t], t))
        assert enc.vocab[name] == want, name
        assert spec[name].num_tokens == len(want)
    enc.close()


# ---------------------------------------------------------------------------------------- workers


def test_one_and_two_workers_write_the_same_bytes(tmp_path: Path) -> None:
    train = _criteo_tsv(tmp_path / "train.tsv", 1500, 1)
    valid = _criteo_tsv(tmp_path / "valid.tsv", 300, 2)
    valid.write_text(valid.read_text() + "\n".join(train.read_text().splitlines()[:7]) + "\n")  # 7 shared rows
    folders = []
    for w in (1, 2):
        readers = {"train": _reader(train), "valid": _reader(valid)}
        folders.append(
            encode_dataset(readers, CRITEO.fields, tmp_path / f"w{w}", min_count=2, num_workers=w, shard_rows=500)
        )
    a, b = folders
    assert a.name == b.name  # the worker count is not part of the fingerprint: same output
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert any("categorical-00002.npy" in str(p) for p in files)
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    spec, splits = load_encoded(a, verify=True)
    assert spec.splits["valid"]["overlap_with_train"] >= 7 and len(splits["train"]) == 1500
    dm_mem = CTRDataModule(a, 64, in_memory=True, splits={"test": "valid"}, seed=0)
    dm_map = CTRDataModule(a, 64, in_memory=False, splits={"test": "valid"}, seed=0, resident_mb=0.01)
    for x, y in zip(dm_mem._loader("train", shuffle=True), dm_map._loader("train", shuffle=True)):
        assert x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)


def test_two_workers_report_the_first_bad_line(tmp_path: Path) -> None:
    f = _criteo_tsv(tmp_path / "t.tsv", 400, 3)
    lines = f.read_text().splitlines()
    for k in (350, 30):  # bad labels in a late and an early segment
        lines[k] = "7" + lines[k][1:]
    f.write_text("\n".join(lines) + "\n")
    with FeatureEncoder(CRITEO.fields, num_workers=2) as enc:
        with pytest.raises(CTRDataError, match=r"t\.tsv:31: label '7'"):
            enc.fit(_reader(f, 1 << 12))
