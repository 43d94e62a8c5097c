"""Chunked feature encoding: raw CTR files -> vocabularies + columnar arrays on disk.

Two streaming passes with bounded memory (one raw chunk plus the per-field token counts):

1. :meth:`FeatureEncoder.fit` on the training split: token counts per categorical/sequence field
   (``pyarrow.compute.value_counts`` per chunk, merged with a hash group-by every few chunks), numeric statistics,
   the longest sequence. Vocabularies keep tokens seen at least ``min_count`` times, most
   frequent first (ties by token text, so the result does not depend on the chunking).
2. :meth:`FeatureEncoder.transform` on every split: tokens -> indices with
   ``pyarrow.compute.index_in`` (OOV bucket for unseen/rare/missing tokens), numeric
   normalisation, sequence padding; each chunk's arrays are written as a part file, and the parts
   are concatenated into memory-mappable ``.npy`` arrays at the end.

The encoded split is a folder of ``.npy`` arrays, one per feature type (columns of a type side
by side): ``label.npy`` ``[N]`` float32, ``categorical.npy`` ``[N, F_cat]`` int32,
``numeric.npy`` ``[N, F_num]`` float32, ``sequence.npy`` ``[N, F_seq, L]`` int32 (``L`` the
longest ``max_len``; shorter fields are padded with 0). :class:`EncodedSplit` opens them with
``numpy.load(mmap_mode="r")``: no pandas anywhere, and the training loop gathers batches by
fancy indexing.

:func:`encode_dataset` runs both passes for a set of splits into a cache folder named by a
fingerprint of the sources (path, size, mtime) and the field configuration, and reuses it when
nothing changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .readers import CTRDataError, RawChunk, Reader
from .spec import FeatureSpec, FieldSpec

__all__ = ["ENCODER_VERSION", "EncodedSplit", "FeatureEncoder", "encode_dataset", "load_encoded"]

log = logging.getLogger(__name__)

#: bump when the encoded layout or the encoding rules change (invalidates caches)
ENCODER_VERSION = 1
ARRAYS = ("label", "categorical", "numeric", "sequence")


# --------------------------------------------------------------------------- column helpers


def _column(chunk: RawChunk, name: str, reader: Reader) -> pa.ChunkedArray:
    if name not in chunk.table.column_names:
        raise CTRDataError(f"{reader.path}: no column {name!r}; columns read: {chunk.table.column_names}")
    return chunk.table.column(name)


def _to_float(col: pa.ChunkedArray, chunk: RawChunk, reader: Reader, what: str) -> pa.ChunkedArray:
    """Cast a raw column to float64 (nulls stay null); a bad number names file, line, column."""
    if pa.types.is_floating(col.type) or pa.types.is_integer(col.type):
        return pc.cast(col, pa.float64())
    try:
        return pc.cast(col, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        for i, v in enumerate(col.to_pylist()):
            if v is None:
                continue
            try:
                float(v)
            except ValueError:
                raise CTRDataError(
                    f"{reader.path}:{chunk.line_of(i)}: {what}: {v!r} is not a number"
                ) from None
        raise


def _as_string(col: pa.ChunkedArray) -> pa.ChunkedArray:
    return (
        col
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type)
        else pc.cast(col, pa.string())
    )


def _log_bucket(x: pa.ChunkedArray) -> pa.ChunkedArray:
    """Criteo's transform: ``floor(log(x)^2)`` for ``x > 2``, else ``trunc(x)``, as integer text."""
    big = pc.greater(x, 2.0)
    safe = pc.if_else(big, x, 3.0)  # avoid log of <= 0 in the unused branch
    bucket = pc.floor(pc.power(pc.ln(safe), 2.0))
    y = pc.if_else(big, bucket, pc.trunc(x))
    return pc.cast(pc.cast(y, pa.int64()), pa.string())


def _avazu_time(col: pa.ChunkedArray, what: str) -> pa.ChunkedArray:
    """Avazu's ``hour`` column (``YYMMDDHH`` text) -> hour of day, weekday (0 = Monday) or weekend flag."""
    if what == "hour_of_day":
        return pc.utf8_slice_codeunits(col, 6, 8)
    day = pc.day_of_week(
        pc.strptime(pc.utf8_slice_codeunits(col, 0, 6), format="%y%m%d", unit="s", error_is_null=True)
    )
    if what == "weekday":
        return pc.cast(day, pa.string())
    return pc.cast(pc.cast(pc.greater_equal(day, 5), pa.int8()), pa.string())


class _TokenCounts:
    """Token counts of one field over many chunks: per-chunk ``value_counts`` tables, merged by
    a hash group-by every ``merge_every`` chunks (and at the end), so the merge cost stays
    ``O(vocabulary)`` per few chunks instead of per chunk."""

    def __init__(self, merge_every: int = 8) -> None:
        self.merge_every = merge_every
        self.parts: list[pa.Table] = []

    def add(self, values: pa.Array | pa.ChunkedArray) -> None:
        values = pc.drop_null(values)
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        vc = pc.value_counts(values)
        self.parts.append(pa.table({"v": vc.field("values"), "n": vc.field("counts")}))
        if len(self.parts) > self.merge_every:
            self.parts = [self.table()]

    def table(self) -> pa.Table:
        if not self.parts:
            return pa.table({"v": pa.array([], pa.string()), "n": pa.array([], pa.int64())})
        if len(self.parts) == 1:
            return self.parts[0]
        merged = pa.concat_tables(self.parts).group_by("v").aggregate([("n", "sum")])
        return pa.table({"v": merged.column("v"), "n": merged.column("n_sum")})


# --------------------------------------------------------------------------- encoded splits


class EncodedSplit:
    """One encoded split: arrays opened with ``numpy.load(mmap_mode=...)``.

    Attributes ``label`` ``[N]`` float32 and, when the spec has such fields, ``categorical``
    ``[N, F_cat]`` int32, ``numeric`` ``[N, F_num]`` float32, ``sequence`` ``[N, F_seq, L]`` int32
    (otherwise ``None``).
    """

    def __init__(self, folder: str | os.PathLike[str], mmap_mode: str | None = "r") -> None:
        self.folder = Path(folder)
        if not (self.folder / "label.npy").is_file():
            raise CTRDataError(f"{self.folder}: not an encoded split (no label.npy)")
        self.label: np.ndarray = np.load(self.folder / "label.npy", mmap_mode=mmap_mode)
        self.categorical: np.ndarray | None = None
        self.numeric: np.ndarray | None = None
        self.sequence: np.ndarray | None = None
        for name in ARRAYS[1:]:
            p = self.folder / f"{name}.npy"
            if p.is_file():
                setattr(self, name, np.load(p, mmap_mode=mmap_mode))
        n = len(self.label)
        for name in ARRAYS[1:]:
            a = getattr(self, name)
            if a is not None and len(a) != n:
                raise CTRDataError(f"{self.folder}: {name}.npy has {len(a)} rows, label.npy {n}")

    def __len__(self) -> int:
        return len(self.label)

    def arrays(self) -> dict[str, np.ndarray]:
        """The present arrays by name (``label`` always)."""
        return {k: getattr(self, k) for k in ARRAYS if getattr(self, k) is not None}


def load_encoded(
    folder: str | os.PathLike[str], mmap_mode: str | None = "r"
) -> tuple[FeatureSpec, dict[str, EncodedSplit]]:
    """The :class:`FeatureSpec` and the encoded splits in ``folder`` (written by :func:`encode_dataset`)."""
    folder = Path(folder)
    spec = FeatureSpec.load(folder / "feature_spec.json")
    splits = {name: EncodedSplit(folder / name, mmap_mode=mmap_mode) for name in spec.splits}
    return spec, splits


# --------------------------------------------------------------------------- the encoder


@dataclasses.dataclass
class _NumStats:
    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    lo: float = math.inf
    hi: float = -math.inf

    def update(self, x: np.ndarray) -> None:
        if len(x) == 0:
            return
        self.n += len(x)
        self.total += float(x.sum())
        self.total_sq += float(np.square(x).sum())
        self.lo = min(self.lo, float(x.min()))
        self.hi = max(self.hi, float(x.max()))

    def as_dict(self) -> dict[str, float]:
        if self.n == 0:
            return {"min": 0.0, "max": 0.0, "mean": 0.0, "std": 0.0}
        mean = self.total / self.n
        var = max(self.total_sq / self.n - mean * mean, 0.0)
        return {"min": self.lo, "max": self.hi, "mean": mean, "std": math.sqrt(var)}


class FeatureEncoder:
    """Fits vocabularies/statistics on the training split and encodes splits, chunk by chunk.

    Args:
        fields: the fields to produce (:class:`FieldSpec` or dicts), in model order.
        label: label column.
        min_count: default ``min_count`` of fields that do not set their own (FuxiCTR's
            ``min_categr_count``; 1 keeps every training token).
        negative_label: a raw label value that means 0 (``-1`` in NFM/libfm files); labels must
            otherwise be 0 or 1.

    Raises:
        CTRDataError: a label that is not 0/1 (or ``negative_label``), a number that does not
            parse, a missing column -- each naming the file and line.
    """

    def __init__(
        self,
        fields: Sequence[FieldSpec | Mapping[str, Any]],
        label: str = "label",
        *,
        min_count: int = 1,
        negative_label: float | None = None,
    ) -> None:
        self.fields = [
            f if isinstance(f, FieldSpec) else FieldSpec.from_dict(f, f"fields[{i}]")
            for i, f in enumerate(fields)
        ]
        FeatureSpec(self.fields)  # validates names
        if min_count < 1:
            raise CTRDataError(f"min_count must be >= 1, got {min_count}")
        self.label = label
        self.min_count = int(min_count)
        self.negative_label = negative_label
        self.vocab: dict[str, list[str]] = {}
        self._value_sets: dict[str, pa.Array] = {}
        self.spec: FeatureSpec | None = None

    # ---- per-chunk pieces ----------------------------------------------------------------

    def _labels(self, chunk: RawChunk, reader: Reader) -> np.ndarray:
        col = _column(chunk, self.label, reader)
        if col.null_count:
            i = int(pc.index(pc.is_null(col), True).as_py())
            raise CTRDataError(f"{reader.path}:{chunk.line_of(i)}: missing label in column {self.label!r}")
        y = _to_float(col, chunk, reader, f"label column {self.label!r}").to_numpy()
        if self.negative_label is not None:
            y = np.where(y == self.negative_label, 0.0, y)
        bad = np.flatnonzero((y != 0.0) & (y != 1.0))
        if len(bad):
            i = int(bad[0])
            allowed = "0 or 1" + (
                f" (or {self.negative_label:g} for 0)" if self.negative_label is not None else ""
            )
            raise CTRDataError(
                f"{reader.path}:{chunk.line_of(i)}: label {col[i].as_py()!r} in column {self.label!r} is not {allowed}"
            )
        return y.astype(np.float32)

    def _tokens(self, f: FieldSpec, chunk: RawChunk, reader: Reader) -> pa.ChunkedArray:
        """Categorical tokens (string, null = missing) of field ``f``."""
        col = _column(chunk, f.source, reader)
        if f.preprocess is None:
            return _as_string(col)
        if f.preprocess == "log_bucket":
            x = _to_float(col, chunk, reader, f"column {f.source!r}").fill_null(f.fill_na)
            return _log_bucket(x)
        if f.preprocess in ("hour_of_day", "weekday", "weekend"):
            return _avazu_time(_as_string(col), f.preprocess)
        raise AssertionError(f.preprocess)  # FieldSpec validates preprocess

    def _numbers(self, f: FieldSpec, chunk: RawChunk, reader: Reader) -> np.ndarray:
        col = _column(chunk, f.source, reader)
        x = _to_float(col, chunk, reader, f"column {f.source!r}")
        return x.fill_null(f.fill_na).to_numpy().astype(np.float64)

    def _sequences(self, f: FieldSpec, chunk: RawChunk, reader: Reader) -> pa.ListArray:
        col = _as_string(_column(chunk, f.source, reader)).combine_chunks()
        lists = pc.split_pattern(col.fill_null(""), f.splitter)
        flat = lists.flatten()
        keep = pc.not_equal(flat, "")
        lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
        # drop empty tokens (an empty cell is an empty sequence)
        row = np.repeat(np.arange(len(lists)), lengths)
        keep_np = keep.to_numpy(zero_copy_only=False)
        new_len = (
            np.bincount(row[keep_np], minlength=len(lists)) if len(row) else np.zeros(len(lists), np.int64)
        )
        offsets = np.concatenate([[0], np.cumsum(new_len)]).astype(np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), pc.filter(flat, keep))

    # ---- pass 1: fit ---------------------------------------------------------------------

    def fit(self, reader: Reader) -> FeatureSpec:
        """Count tokens / statistics over ``reader`` (the training split) and build the spec."""
        counts = {f.name: _TokenCounts() for f in self.fields if f.type != "numeric"}
        stats = {f.name: _NumStats() for f in self.fields if f.type == "numeric"}
        longest = {f.name: 0 for f in self.fields if f.type == "sequence"}
        rows = 0
        for chunk in reader.iter_chunks():
            self._labels(chunk, reader)
            rows += chunk.table.num_rows
            for f in self.fields:
                if f.type == "categorical":
                    counts[f.name].add(self._tokens(f, chunk, reader))
                elif f.type == "numeric":
                    stats[f.name].update(self._numbers(f, chunk, reader))
                else:
                    lists = self._sequences(f, chunk, reader)
                    counts[f.name].add(lists.flatten())
                    if len(lists):
                        longest[f.name] = max(
                            longest[f.name], int(pc.max(pc.list_value_length(lists)).as_py() or 0)
                        )
        if rows == 0:
            raise CTRDataError(f"{reader.path}: no data rows")
        fitted: list[FieldSpec] = []
        for f in self.fields:
            if f.type == "numeric":
                fitted.append(dataclasses.replace(f, stats=stats[f.name].as_dict()))
                continue
            t = counts[f.name].table()
            min_count = f.min_count if f.min_count is not None else self.min_count
            if t.num_rows == 0:
                tokens: list[str] = []
            else:
                t = t.filter(pc.greater_equal(t.column("n"), min_count))
                order = pc.sort_indices(t, sort_keys=[("n", "descending"), ("v", "ascending")])
                tokens = t.column("v").take(order).to_pylist()
            self.vocab[f.name] = tokens
            self._value_sets[f.name] = pa.array(tokens, type=pa.string())
            extra: dict[str, Any] = {
                "num_tokens": len(tokens),
                "vocab_size": len(tokens) + 2,
                "min_count": min_count,
            }
            if f.type == "sequence" and f.max_len is None:
                extra["max_len"] = max(longest[f.name], 1)
            fitted.append(dataclasses.replace(f, **extra))
        self.spec = FeatureSpec(fitted, label=self.label)
        return self.spec

    def load_vocab(self, spec: FeatureSpec, vocab: Mapping[str, Sequence[str]]) -> None:
        """Use an already fitted ``spec`` and its vocabularies (skip :meth:`fit`)."""
        self.spec = spec
        self.vocab = {k: list(v) for k, v in vocab.items()}
        self._value_sets = {k: pa.array(v, type=pa.string()) for k, v in self.vocab.items()}

    def encode_features(
        self, chunk: RawChunk, reader: Reader, oov: dict[str, int], missing: dict[str, int]
    ) -> dict[str, np.ndarray]:
        """The feature arrays of ``chunk`` (new rows to score, no label), encoded exactly as
        :meth:`transform` encodes a split: ``categorical`` / ``numeric`` / ``sequence`` arrays,
        unseen or rare tokens and missing values in the OOV bucket, numeric values normalised with
        the training statistics. ``oov`` / ``missing`` (field -> count) are incremented. A label
        column in ``chunk`` is ignored (the encoding of a row never reads it)."""
        if self.spec is None:
            raise CTRDataError("FeatureEncoder.encode_features: call fit() (or load_vocab()) first")
        table = chunk.table
        if self.label in table.column_names:
            table = table.drop_columns([self.label])
        zeros = pa.array(np.zeros(table.num_rows), pa.float64())  # a placeholder label, dropped below
        unlabelled = dataclasses.replace(chunk, table=table.append_column(self.label, zeros))
        out = self._encode_chunk(unlabelled, reader, oov, missing)
        del out["label"]
        return out

    # ---- pass 2: transform ---------------------------------------------------------------

    def _index(self, f: FieldSpec, tokens: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, int, int]:
        """Indices (1..V, OOV = V+1) of ``tokens``; also the OOV and missing counts."""
        assert self.spec is not None
        fitted = self.spec[f.name]
        idx = pc.index_in(tokens, value_set=self._value_sets[f.name])
        missing = int(tokens.null_count)
        oov = int(idx.null_count) - missing
        out = pc.add(idx, 1).fill_null(fitted.oov_index)
        if isinstance(out, pa.ChunkedArray):
            out = out.combine_chunks()
        return out.to_numpy(zero_copy_only=False).astype(np.int32), oov, missing

    def _encode_chunk(
        self, chunk: RawChunk, reader: Reader, oov: dict[str, int], missing: dict[str, int]
    ) -> dict[str, np.ndarray]:
        assert self.spec is not None
        n = chunk.table.num_rows
        out: dict[str, np.ndarray] = {"label": self._labels(chunk, reader)}
        cats = [f for f in self.spec.fields if f.type == "categorical"]
        nums = [f for f in self.spec.fields if f.type == "numeric"]
        seqs = [f for f in self.spec.fields if f.type == "sequence"]
        if cats:
            a = np.empty((n, len(cats)), np.int32)
            for j, f in enumerate(cats):
                a[:, j], o, m = self._index(f, self._tokens(f, chunk, reader))
                oov[f.name] += o
                missing[f.name] += m
            out["categorical"] = a
        if nums:
            a = np.empty((n, len(nums)), np.float32)
            for j, f in enumerate(nums):
                col = _column(chunk, f.source, reader)
                missing[f.name] += int(col.null_count)
                x = self._numbers(f, chunk, reader)
                s = f.stats or {}
                if f.normalizer == "minmax":
                    span = s["max"] - s["min"]
                    x = (x - s["min"]) / span if span > 0 else np.zeros_like(x)
                elif f.normalizer == "standard":
                    x = (x - s["mean"]) / s["std"] if s["std"] > 0 else np.zeros_like(x)
                a[:, j] = x
            out["numeric"] = a
        if seqs:
            L = max(f.max_len or 1 for f in seqs)
            a = np.zeros((n, len(seqs), L), np.int32)
            for j, f in enumerate(seqs):
                lists = self._sequences(f, chunk, reader)
                missing[f.name] += int(_column(chunk, f.source, reader).null_count)
                idx, o, _ = self._index(f, lists.flatten())
                oov[f.name] += o
                lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
                row = np.repeat(np.arange(n), lengths)
                pos = np.arange(len(idx)) - np.repeat(
                    lists.offsets.to_numpy()[:-1] - lists.offsets.to_numpy()[0], lengths
                )
                keep = pos < f.max_len  # truncate after max_len tokens ("post")
                a[row[keep], j, pos[keep]] = idx[keep]
            out["sequence"] = a
        return out

    def transform(self, reader: Reader, folder: str | os.PathLike[str]) -> dict[str, Any]:
        """Encode every row of ``reader`` into ``folder`` (the ``.npy`` arrays); returns the
        split's statistics: ``rows``, ``positives``, ``oov`` and ``missing`` counts per field."""
        if self.spec is None:
            raise CTRDataError("FeatureEncoder.transform: call fit() (or load_vocab()) first")
        folder = Path(folder)
        parts = folder / "_parts"
        if folder.exists():
            shutil.rmtree(folder)
        parts.mkdir(parents=True)
        oov = {f.name: 0 for f in self.spec.fields if f.type != "numeric"}
        missing = {f.name: 0 for f in self.spec.fields}
        n_parts, rows, positives = 0, 0, 0.0
        shapes: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        for chunk in reader.iter_chunks():
            arrays = self._encode_chunk(chunk, reader, oov, missing)
            np.savez(parts / f"{n_parts:06d}.npz", **arrays)
            for k, v in arrays.items():
                shapes[k] = (v.shape[1:], v.dtype)
            n_parts += 1
            rows += len(arrays["label"])
            positives += float(arrays["label"].sum())
        if rows == 0:
            raise CTRDataError(f"{reader.path}: no data rows")
        # concatenate the parts into memory-mappable arrays (bounded memory: one part at a time)
        outs = {
            k: np.lib.format.open_memmap(folder / f"{k}.npy", mode="w+", dtype=dt, shape=(rows, *shape))
            for k, (shape, dt) in shapes.items()
        }
        start = 0
        for i in range(n_parts):
            with np.load(parts / f"{i:06d}.npz") as part:
                n = len(part["label"])
                for k, out in outs.items():
                    out[start : start + n] = part[k]
            start += n
        for out in outs.values():
            out.flush()
        del outs
        shutil.rmtree(parts)
        return {"rows": rows, "positives": int(positives), "oov": oov, "missing": missing}


# --------------------------------------------------------------------------- whole datasets


def _fingerprint(payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def encode_dataset(
    readers: Mapping[str, Reader],
    fields: Sequence[FieldSpec | Mapping[str, Any]],
    cache_root: str | os.PathLike[str],
    *,
    name: str = "ctr",
    label: str = "label",
    min_count: int = 1,
    negative_label: float | None = None,
    train_split: str = "train",
    meta: Mapping[str, Any] | None = None,
    force: bool = False,
) -> Path:
    """Fit on ``readers[train_split]``, encode every split, and return the cache folder.

    The folder ``<cache_root>/<name>-<fingerprint>`` holds ``feature_spec.json`` (with per-split
    ``rows``/``positives``/``oov``/``missing`` counts), ``vocab.json`` and one sub-folder of arrays
    per split. An existing complete folder with the same fingerprint (sources' path, size and
    mtime; fields; label; ``min_count``; encoder version) is reused unless ``force``. The folder
    is built under a temporary name and renamed when complete, so an interrupted run leaves no
    half-written cache behind.
    """
    if train_split not in readers:
        raise CTRDataError(f"encode_dataset: no {train_split!r} split among {sorted(readers)}")
    field_list = [
        f if isinstance(f, FieldSpec) else FieldSpec.from_dict(f, f"fields[{i}]")
        for i, f in enumerate(fields)
    ]
    payload = {
        "version": ENCODER_VERSION,
        "sources": {k: r.describe() for k, r in readers.items()},
        "fields": [f.to_dict() for f in field_list],
        "label": label,
        "min_count": min_count,
        "negative_label": negative_label,
        "train_split": train_split,
    }
    fp = _fingerprint(payload)
    root = Path(cache_root).expanduser()
    folder = root / f"{name}-{fp[:16]}"
    if not force and (folder / "feature_spec.json").is_file():
        spec = FeatureSpec.load(folder / "feature_spec.json")
        if spec.meta.get("fingerprint") == fp and all((folder / s / "label.npy").is_file() for s in readers):
            log.info("recsys: using the encoded cache %s", folder)
            return folder
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        enc = FeatureEncoder(field_list, label, min_count=min_count, negative_label=negative_label)
        spec = enc.fit(readers[train_split])
        splits = {s: enc.transform(r, tmp / s) for s, r in readers.items()}
        spec.splits = splits
        spec.meta = {
            "fingerprint": fp,
            "encoder_version": ENCODER_VERSION,
            "sources": payload["sources"],
            "min_count": min_count,
            "negative_label": negative_label,
            "train_split": train_split,
            **dict(meta or {}),
        }
        (tmp / "vocab.json").write_text(json.dumps(enc.vocab) + "\n")
        spec.save(tmp / "feature_spec.json")
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
