"""Exact token counting and lookup with bounded memory, vectorised (numpy over Arrow buffers).

* :func:`token_keys`: a ``uint64`` key per string entry. A token of at most 8 UTF-8 bytes with no
  NUL byte is *packed* (its bytes little-endian, zero-padded): an injective key, so equal keys
  mean equal tokens. Longer tokens get a 64-bit hash (``hashed`` mask); a null gets
  :data:`NULL_KEY` (``2^64 - 1``, never a packed key: byte ``0xff`` is not UTF-8).
* :func:`chunk_counts`: the exact distinct tokens of a chunk and their counts (sort of the packed
  keys; pyarrow ``value_counts`` when a chunk has a hashed token).
* :class:`TokenLookup`: token -> vocabulary index (binary search over the sorted packed keys of the
  vocabulary; ``pyarrow.compute.index_in`` when the vocabulary has a token longer than 8 bytes).
  Exact: a hashed chunk token is never matched against a packed vocabulary key.
* :func:`partition_of`: the spill partition of a key (``splitmix64`` finaliser, high bits), so
  the per-chunk counts of one token always land in the same partition, whatever the chunking.

The encoder spills each chunk's ``(field, token, count)`` rows into hash partitions on disk and
sums them one partition at a time (:func:`merge_counts`): exact counts, memory bounded by one
partition's rows instead of the whole vocabulary of the training split.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "NULL_KEY",
    "TokenLookup",
    "chunk_counts",
    "merge_counts",
    "mix64",
    "partition_of",
    "row_hashes",
    "token_keys",
    "write_counts",
]

NULL_KEY = np.uint64(0xFFFF_FFFF_FFFF_FFFF)
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_LENGTH_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)
COUNT_SCHEMA = pa.schema([("field", pa.int32()), ("v", pa.string()), ("n", pa.int64())])


def mix64(x: np.ndarray) -> np.ndarray:
    """``splitmix64``'s finaliser of ``x`` (uint64, wrapping arithmetic), element-wise."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _C1
        z = (z ^ (z >> np.uint64(27))) * _C2
        return z ^ (z >> np.uint64(31))


def _string_buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(offsets ``[n + 1]`` int64 from 0, data bytes, validity ``[n]`` bool or None) of a string array."""
    if pa.types.is_large_string(arr.type):
        off_dtype = np.int64
    elif pa.types.is_string(arr.type):
        off_dtype = np.int32
    else:
        raise TypeError(f"expected a string array, got {arr.type}")
    n = len(arr)
    bufs = arr.buffers()
    off = np.frombuffer(bufs[1], off_dtype, n + 1, arr.offset * np.dtype(off_dtype).itemsize).astype(np.int64)
    data = (
        np.frombuffer(bufs[2], np.uint8)[off[0] : off[-1]] if bufs[2] is not None and n else np.empty(0, np.uint8)
    )
    off = off - off[0]
    valid = None
    if arr.null_count:
        valid = arr.is_valid().to_numpy(zero_copy_only=False)
    return off, data, valid


def _as_array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        values = pc.cast(values, pa.string())
    return values


def token_keys(values: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """``(keys, hashed)`` of string ``values``: ``keys`` ``[n]`` uint64 (packed bytes, or a hash where
    ``hashed`` is True; :data:`NULL_KEY` for a null), ``hashed`` ``[n]`` bool."""
    arr = _as_array(values)
    off, data, valid = _string_buffers(arr)
    n = len(arr)
    lens = np.diff(off)
    packable = lens <= 8
    if len(data) and not data.all():  # a NUL byte breaks the zero padding's injectivity
        zero_rows = np.searchsorted(off, np.flatnonzero(data == 0), side="right") - 1
        packable[zero_rows] = False
    if valid is not None:
        packable |= ~valid
    keys = np.zeros(n, np.uint64)
    if len(data):
        if packable.all() and (lens == 8).all():
            keys = data.reshape(n, 8).view("<u8").ravel().copy()
        else:
            # an unaligned 8-byte little-endian load at each token's offset, masked to its length
            padded = np.zeros(len(data) + 8, np.uint8)
            padded[: len(data)] = data
            windows = np.ndarray((len(data) + 1,), dtype="<u8", buffer=padded, strides=(1,))
            keys = windows[off[:-1]] & _LENGTH_MASKS[np.minimum(lens, 8)]
            if not packable.all():
                # 64-bit polynomial hash of the long (or NUL-holding) tokens' bytes and length
                lr = np.flatnonzero(~packable)
                ll = lens[lr]
                starts = np.cumsum(ll) - ll  # each long token's start in their concatenated bytes
                pos = np.arange(int(ll.sum())) - np.repeat(starts, ll)  # byte position inside the token
                w = mix64(pos.astype(np.uint64) + np.uint64(0x5EED))
                with np.errstate(over="ignore"):
                    terms = data[np.repeat(off[lr], ll) + pos].astype(np.uint64) * w
                    sums = np.add.reduceat(terms, starts)
                    keys[lr] = mix64(sums ^ (lens[lr].astype(np.uint64) * _C1))
    hashed = ~packable
    if valid is not None:
        keys[~valid] = NULL_KEY
    return keys, hashed


def _unpack(keys: np.ndarray) -> pa.Array:
    """The string tokens of packed (non-null) ``keys``."""
    b = np.ascontiguousarray(keys, dtype="<u8").view(np.uint8).reshape(-1, 8)
    nz = b != 0
    lens = nz.sum(axis=1)
    offsets = np.zeros(len(keys) + 1, np.int32)
    np.cumsum(lens, out=offsets[1:])
    data = b[nz]
    return pa.StringArray.from_buffers(len(keys), pa.py_buffer(offsets), pa.py_buffer(data.tobytes()))


def chunk_counts(values: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """``(tokens, counts, keys)``: the distinct non-null tokens of ``values`` (string array), how
    often each occurs (int64) and their :func:`token_keys` keys. Exact."""
    arr = _as_array(values)
    keys, hashed = token_keys(arr)
    if not hashed.any():
        k = keys[keys != NULL_KEY]
        uniq, counts = np.unique(k, return_counts=True)
        return _unpack(uniq), counts.astype(np.int64), uniq
    vc = pc.value_counts(pc.drop_null(arr))
    tokens = vc.field("values")
    return tokens, vc.field("counts").to_numpy().astype(np.int64), token_keys(tokens)[0]


def partition_of(keys: np.ndarray, num_parts: int) -> np.ndarray:
    """The spill partition (``0 .. num_parts - 1``, int64) of each key."""
    return (mix64(keys) % np.uint64(num_parts)).astype(np.int64)


def write_counts(
    path: str | os.PathLike[str],
    per_field: Sequence[tuple[int, pa.Array, np.ndarray, np.ndarray]],
    num_parts: int,
) -> None:
    """Spill one chunk's counts: ``per_field`` holds ``(field id, tokens, counts, keys)``; the rows go
    to an Arrow IPC file with one record batch per partition (batch ``p`` = partition ``p``)."""
    tables = []
    parts = []
    for fid, tokens, counts, keys in per_field:
        if len(tokens) == 0:
            continue
        tables.append(
            pa.table(
                [pa.array(np.full(len(tokens), fid, np.int32)), tokens.cast(pa.string()), pa.array(counts)],
                schema=COUNT_SCHEMA,
            )
        )
        parts.append(partition_of(keys, num_parts))
    table = pa.concat_tables(tables) if tables else COUNT_SCHEMA.empty_table()
    part = np.concatenate(parts) if parts else np.empty(0, np.int64)
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(num_parts + 1))
    table = table.take(pa.array(order))
    tmp = Path(f"{path}.tmp")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, COUNT_SCHEMA) as w:
        for p in range(num_parts):
            sl = table.slice(int(bounds[p]), int(bounds[p + 1] - bounds[p]))
            batches = sl.combine_chunks().to_batches()
            w.write_batch(batches[0] if batches else pa.record_batch([[], [], []], schema=COUNT_SCHEMA))
    os.replace(tmp, path)


def merge_counts(files: Sequence[str | os.PathLike[str]], part: int, min_counts: Mapping[int, int]) -> pa.Table:
    """Partition ``part`` of the spilled count ``files`` summed per ``(field, token)``; the rows whose
    total reaches the field's ``min_counts[field]``. Columns ``field``, ``v``, ``n``."""
    batches = []
    for f in files:
        with pa.memory_map(str(f)) as src:
            b = pa.ipc.open_file(src).get_batch(part)
            if b.num_rows:
                batches.append(pa.Table.from_batches([b]).combine_chunks())  # copy out of the map
    if not batches:
        return COUNT_SCHEMA.empty_table()
    t = pa.concat_tables(batches)
    g = t.group_by(["field", "v"]).aggregate([("n", "sum")])
    g = pa.table({"field": g.column("field"), "v": g.column("v"), "n": g.column("n_sum")}, schema=COUNT_SCHEMA)
    fid = g.column("field").to_numpy()
    need = np.zeros(len(fid), np.int64)
    for k, m in min_counts.items():
        need[fid == k] = m
    return g.filter(pa.array(g.column("n").to_numpy() >= need))


class TokenLookup:
    """Token -> 1-based index in ``vocab`` (0 = not found), exact.

    With every vocabulary token packable (at most 8 bytes, no NUL) the lookup is a binary search
    over the sorted packed keys; otherwise ``pyarrow.compute.index_in``."""

    def __init__(self, vocab: pa.Array) -> None:
        self.vocab = _as_array(vocab)
        keys, hashed = token_keys(self.vocab)
        self.packed = not hashed.any()
        if self.packed:
            order = np.argsort(keys, kind="stable")
            self.sorted_keys = keys[order]
            self.index = (order + 1).astype(np.int32)

    def __call__(self, tokens: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """``[n]`` int32: the 1-based vocabulary index of each token, 0 for a null or unknown token."""
        if not self.packed or len(self.vocab) == 0:
            idx = pc.index_in(tokens, value_set=self.vocab)
            out = pc.add(idx, 1).fill_null(0)
            if isinstance(out, pa.ChunkedArray):
                out = out.combine_chunks()
            return out.to_numpy(zero_copy_only=False).astype(np.int32)
        keys, hashed = token_keys(tokens)
        pos = np.searchsorted(self.sorted_keys, keys)
        np.minimum(pos, len(self.sorted_keys) - 1, out=pos)
        hit = (self.sorted_keys[pos] == keys) & ~hashed & (keys != NULL_KEY)
        return np.where(hit, self.index[pos], 0).astype(np.int32)


def row_hashes(columns: Sequence[pa.Array | pa.ChunkedArray]) -> np.ndarray:
    """A 64-bit hash ``[n]`` uint64 of each row's values in ``columns`` (strings; nulls distinct
    from any text), combining the columns' :func:`token_keys`."""
    h: np.ndarray | None = None
    with np.errstate(over="ignore"):
        for i, c in enumerate(columns):
            k = mix64(token_keys(c)[0] ^ mix64(np.uint64(i)))
            h = k if h is None else mix64(h * _C2 + k)
    if h is None:
        raise ValueError("row_hashes: no columns")
    return h
