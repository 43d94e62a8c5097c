"""Chunked feature encoding: raw CTR files -> vocabularies + memory-mapped row shards on disk.

Two passes over chunks (byte segments of a plain-text file, shared by ``num_workers``
processes; the chunks of a ``.gz`` or parquet file, in one process), with bounded memory:

1. :meth:`FeatureEncoder.fit` on the training split: exact token counts per categorical/sequence
   field (:mod:`.counting`: per chunk, sorted packed keys or ``pyarrow.compute.value_counts``,
   spilled to hash partitions on disk and summed one partition at a time), numeric statistics
   (merged in file order), the longest sequence. Vocabularies keep tokens seen at least
   ``min_count`` times, most frequent first (ties by token text, so the result depends neither
   on the chunking nor on the worker count).
2. :meth:`FeatureEncoder.transform` on every split: tokens -> indices (:meth:`FeatureEncoder._index`,
   OOV bucket for unseen/rare/missing tokens), numeric normalisation, sequence padding; each
   chunk's arrays go to a part file and are then copied into the split's shards at their row
   offset.

The encoded split is a folder of fixed-size row shards per array plus ``manifest.json``
(:mod:`.shards`): ``label`` ``[N]`` float32, ``categorical`` ``[N, F_cat]`` int32, ``numeric``
``[N, F_num]`` float32, ``numeric_mask`` ``[N, F_num]`` uint8, ``sequence`` ``[N, F_seq, L]``
int32 (``L`` the longest ``max_len``; shorter fields are padded with 0). :class:`EncodedSplit`
opens them memory-mapped (or loaded): no pandas anywhere, and the training loop gathers batches
by fancy indexing.

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
import multiprocessing
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gatelab.core.config import ConfigError

from .counting import TokenLookup, chunk_counts, merge_counts, partition_of, row_hashes, write_counts
from .hashing import hash_tokens
from .readers import CTRDataError, RawChunk, Reader, Segment
from .shards import ShardWriter, open_shards
from .spec import FeatureSpec, FieldSpec

__all__ = ["ENCODER_VERSION", "EncodedSplit", "FeatureEncoder", "encode_dataset", "load_encoded"]

log = logging.getLogger(__name__)

#: bump when the encoded layout or the encoding rules change (invalidates caches)
ENCODER_VERSION = 3
ARRAYS = ("label", "categorical", "numeric", "sequence")
#: default rows per memory-mapped shard of an encoded split
DEFAULT_SHARD_ROWS = 1 << 20
#: bytes of spilled token counts aimed at per partition (the merge holds one partition at a time)
PARTITION_BYTES = 1 << 26


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


# --------------------------------------------------------------------------- encoded splits


class EncodedSplit:
    """One encoded split: memory-mapped row shards (:mod:`.shards`) and their manifest.

    Attributes ``label`` ``[N]`` float32 and, when the spec has such fields, ``categorical``
    ``[N, F_cat]`` int32, ``numeric`` ``[N, F_num]`` float32, ``sequence`` ``[N, F_seq, L]`` int32,
    ``numeric_mask`` ``[N, F_num]`` uint8 (otherwise ``None``): :class:`~.shards.ShardedArray`
    views over the shards (``mmap_mode="r"``; rows are gathered by index, nothing is loaded
    up front) or in-memory ``numpy`` arrays (``mmap_mode=None``). The manifest is checked against
    the shard files on opening (sizes, dtypes, shapes; sha256 too with ``verify=True``).
    """

    def __init__(self, folder: str | os.PathLike[str], mmap_mode: str | None = "r", *, verify: bool = False) -> None:
        self.folder = Path(folder)
        self.manifest, arrays = open_shards(self.folder, mmap_mode=mmap_mode, verify=verify)
        if "label" not in arrays:
            raise CTRDataError(f"{self.folder / 'manifest.json'}: no 'label' array (arrays: {sorted(arrays)})")
        self.label: Any = arrays["label"]
        self.categorical: Any = arrays.get("categorical")
        self.numeric: Any = arrays.get("numeric")
        self.sequence: Any = arrays.get("sequence")
        #: ``[N, F_num]`` uint8, 0 where ``na_policy: mask`` masked the entry (None: no masked field)
        self.numeric_mask: Any = arrays.get("numeric_mask")

    def __len__(self) -> int:
        return len(self.label)

    def arrays(self) -> dict[str, Any]:
        """The present arrays by name (``label`` always; not ``numeric_mask``)."""
        return {k: getattr(self, k) for k in ARRAYS if getattr(self, k) is not None}


def load_encoded(
    folder: str | os.PathLike[str], mmap_mode: str | None = "r", *, verify: bool = False
) -> tuple[FeatureSpec, dict[str, EncodedSplit]]:
    """The :class:`FeatureSpec` and the encoded splits in ``folder`` (written by :func:`encode_dataset`);
    ``verify``: also check every shard's sha256 against its manifest."""
    folder = Path(folder)
    spec = FeatureSpec.load(folder / "feature_spec.json")
    splits = {name: EncodedSplit(folder / name, mmap_mode=mmap_mode, verify=verify) for name in spec.splits}
    return spec, splits


# --------------------------------------------------------------------------- the encoder


@dataclasses.dataclass
class _NumStats:
    """Streaming min/max/mean/std of one numeric field: each chunk's mean and sum of squared
    deviations (two-pass inside the chunk, float64), merged with Chan et al.'s parallel update --
    Welford's algorithm over chunks. Stable where ``E[x^2] - mean^2`` is not: values
    ``1e9 + N(0, 1)`` keep their std of ~1."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    lo: float = math.inf
    hi: float = -math.inf

    def update(self, x: np.ndarray) -> None:
        """Add the (finite) values ``x``."""
        if len(x) == 0:
            return
        x = np.asarray(x, dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported by fit()
            mean_b = float(x.mean())
            m2_b = float(np.square(x - mean_b).sum())
        self.merge(_NumStats(len(x), mean_b, m2_b, float(x.min()), float(x.max())))

    def merge(self, other: _NumStats) -> None:
        """Add the values summarised by ``other`` (Chan et al.'s update)."""
        if other.n == 0:
            return
        nb = other.n
        n = self.n + nb
        delta = other.mean - self.mean
        self.mean += delta * nb / n
        self.m2 += other.m2 + delta * delta * (self.n * nb / n)
        self.n = n
        self.lo = min(self.lo, other.lo)
        self.hi = max(self.hi, other.hi)

    def as_dict(self) -> dict[str, float]:
        if self.n == 0:
            return {"count": 0, "min": 0.0, "max": 0.0, "mean": 0.0, "std": 0.0}
        return {
            "count": self.n,
            "min": self.lo,
            "max": self.hi,
            "mean": self.mean,
            "std": math.sqrt(max(self.m2 / self.n, 0.0)),
        }


class FeatureEncoder:
    """Fits vocabularies/statistics on the training split and encodes splits, chunk by chunk.

    Args:
        fields: the fields to produce (:class:`FieldSpec` or dicts), in model order.
        label: label column.
        min_count: default ``min_count`` of fields that do not set their own (FuxiCTR's
            ``min_categr_count``; 1 keeps every training token).
        negative_label: a raw label value that means 0 (``-1`` in NFM/libfm files); labels must
            otherwise be 0 or 1.
        id_columns: columns that identify a row (Avazu's ``id``): no field may read them.
        strict_overlap: raise when an evaluation split has rows whose feature values equal a
            training row's (default: count them in ``splits[split]["overlap_with_train"]`` and
            log a warning).
        check_overlap: hash the rows to count that overlap (default); ``False`` skips it
            (hashing costs about a third of the encoding time: one 64-bit SipHash of each row's
            joined raw feature values, 8 bytes of memory per distinct training row).

    Raises:
        ConfigError: a field reads the label or an id column (leakage).
        CTRDataError: a label that is not 0/1 (or ``negative_label``), a number that does not
            parse, a missing/NaN/infinite numeric entry without a policy, a value that overflows
            float32, a missing column -- each naming the file, line and column.
    """

    def __init__(
        self,
        fields: Sequence[FieldSpec | Mapping[str, Any]],
        label: str = "label",
        *,
        min_count: int = 1,
        negative_label: float | None = None,
        id_columns: Sequence[str] = (),
        strict_overlap: bool = False,
        check_overlap: bool = True,
        num_workers: int = 1,
        num_partitions: int | None = None,
        shard_rows: int = DEFAULT_SHARD_ROWS,
        work_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        for key, v in (("num_workers", num_workers), ("shard_rows", shard_rows), ("num_partitions", num_partitions)):
            if v is None and key == "num_partitions":
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"FeatureEncoder: {key} must be an integer >= 1, got {v!r}")
        self.num_workers = int(num_workers)
        self.num_partitions = num_partitions
        self.shard_rows = int(shard_rows)
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self.fields = [
            f if isinstance(f, FieldSpec) else FieldSpec.from_dict(f, f"fields[{i}]")
            for i, f in enumerate(fields)
        ]
        FeatureSpec(self.fields)  # validates names
        if min_count < 1:
            raise CTRDataError(f"min_count must be >= 1, got {min_count}")
        if isinstance(id_columns, str):
            id_columns = [id_columns]
        if label in id_columns:
            raise ConfigError(f"id_columns: the label column {label!r} cannot also be an id column")
        for f in self.fields:
            if f.source == label:
                raise ConfigError(
                    f"field {f.name!r} reads the label column {label!r}: the label cannot be a "
                    "feature (target leakage); remove the field"
                )
            if f.source in id_columns:
                raise ConfigError(
                    f"field {f.name!r} reads {f.source!r}, declared an id column (id_columns="
                    f"{list(id_columns)}): a row id cannot be a feature; remove the field"
                )
        self.label = label
        self.min_count = int(min_count)
        self.negative_label = negative_label
        self.id_columns = list(id_columns)
        self.strict_overlap = bool(strict_overlap)
        if strict_overlap and not check_overlap:
            raise ConfigError(
                "strict_overlap needs check_overlap (the rows must be hashed to find the overlap)"
            )
        self.check_overlap = bool(check_overlap)
        self.vocab: dict[str, list[str]] = {}
        self._lookups: dict[str, TokenLookup] = {}
        self._train_rows_dir: Path | None = None  # partitioned unique training-row hashes (after fit)
        self._train_ids_dir: tuple[Path, int] | None = None  # partitioned training ids, partitions
        self._train_reader: Reader | None = None
        self._parts: int | None = None  # hash partitions of the training split's spills
        self._workers: _Workers | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._runs = 0
        #: peak resident memory (VmHWM, MB) of each process that took part (pid -> MB)
        self.peak_rss_mb: dict[int, float] = {}
        self.spec: FeatureSpec | None = None

    def __getstate__(self) -> dict[str, Any]:  # what a worker process gets: no pool, no vocab lists
        state = dict(self.__dict__)
        for k in ("_workers", "_tmp", "_train_reader", "vocab"):
            state[k] = None if k != "vocab" else {}
        return state

    def __enter__(self) -> FeatureEncoder:
        """Keep one pool of ``num_workers`` processes for every :meth:`fit` / :meth:`transform` until exit."""
        if self.num_workers > 1 and self._workers is None:
            self._workers = _Workers(self.num_workers, self.peak_rss_mb)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker processes and remove the scratch folder."""
        if self._workers is not None:
            self._workers.close()
            self._workers = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _scratch(self, name: str) -> Path:
        """A fresh scratch folder ``name`` (spilled counts, row hashes, part files)."""
        if self.work_dir is not None:
            root = self.work_dir
        else:
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="gatelab-encode-")
            root = Path(self._tmp.name)
        self._runs += 1
        d = root / f"{self._runs:03d}-{name}"
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        return d

    def _map(self, fn: Callable[[dict[str, Any], Any], Any], state: dict[str, Any], items: Sequence[Any]) -> list[Any]:
        """``[fn(state, item) for item in items]``, in the worker processes when ``num_workers > 1``."""
        if self.num_workers <= 1 or len(items) <= 1:
            out = [fn(state, it) for it in items]
            _note_peak(self.peak_rss_mb, os.getpid())
            return out
        if self._workers is not None:
            return self._workers.map(fn, state, items)
        with _Workers(self.num_workers, self.peak_rss_mb) as w:
            return w.map(fn, state, items)

    def _num_parts(self, reader: Reader) -> int:
        if self.num_partitions is not None:
            return self.num_partitions
        try:
            size = reader.path.stat().st_size * (4 if reader.path.suffix == ".gz" else 1)
        except OSError:
            size = 0
        return int(min(512, max(1, -(-size // PARTITION_BYTES))))

    @property
    def _feature_columns(self) -> list[str]:
        return list(dict.fromkeys(f.source for f in self.fields))

    # ---- per-chunk pieces ----------------------------------------------------------------

    def _labels(self, chunk: RawChunk, reader: Reader) -> np.ndarray:
        col = _column(chunk, self.label, reader)
        if col.null_count:
            i = int(pc.index(pc.is_null(col), True).as_py())
            raise CTRDataError(f"{chunk.where(reader.path, i)}: missing label in column {self.label!r}")
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
                f"{chunk.where(reader.path, i)}: label {col[i].as_py()!r} in column {self.label!r} is not {allowed}"
            )
        return y.astype(np.float32)

    def _raw_numbers(self, f: FieldSpec, chunk: RawChunk, reader: Reader) -> tuple[np.ndarray, np.ndarray]:
        """(float64 values with NaN for empty entries, mask of the non-finite entries)."""
        col = _column(chunk, f.source, reader)
        x = _to_float(col, chunk, reader, f"column {f.source!r}")
        if isinstance(x, pa.ChunkedArray):
            x = x.combine_chunks()
        values = x.to_numpy(zero_copy_only=False).astype(np.float64, copy=True)
        return values, ~np.isfinite(values)

    def _na_counts(self, f: FieldSpec, chunk: RawChunk, reader: Reader, bad: np.ndarray) -> dict[str, int]:
        col = _column(chunk, f.source, reader)
        null = col.is_null().to_numpy(zero_copy_only=False) if col.null_count else np.zeros(len(bad), bool)
        return {"missing": int(null.sum()), "non_finite": int((bad & ~null).sum())}

    def _raise_na(self, f: FieldSpec, chunk: RawChunk, reader: Reader, bad: np.ndarray) -> None:
        i = int(np.flatnonzero(bad)[0])
        raw = _column(chunk, f.source, reader)[i].as_py()
        what = "empty value" if raw is None else f"non-finite value {raw!r}"
        raise CTRDataError(
            f"{chunk.where(reader.path, i)}: column {f.source!r} (numeric field {f.name!r}): {what}; "
            "declare na_policy (fill with fill_na, drop_row or mask) in the field spec to accept it"
        )

    def _numbers(
        self, f: FieldSpec, chunk: RawChunk, reader: Reader, na: dict[str, dict[str, int]] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raw float64 values of a number-reading field after its missing-value policy, and the
        mask of entries to mask (``na_policy: mask``; else all False). ``na`` accumulates counts."""
        x, bad = self._raw_numbers(f, chunk, reader)
        masked = np.zeros(len(x), bool)
        if bad.any():
            policy = f.missing_policy
            if na is not None:
                for k, v in self._na_counts(f, chunk, reader, bad).items():
                    na[f.name][k] += v
            if policy == "error":
                self._raise_na(f, chunk, reader, bad)
            elif policy == "fill":
                assert f.fill_na is not None
                x[bad] = f.fill_na
                if na is not None:
                    na[f.name]["filled"] += int(bad.sum())
            elif policy == "mask":
                masked = bad
                if na is not None:
                    na[f.name]["masked"] += int(bad.sum())
            else:  # drop_row: removed by _drop_rows before
                raise AssertionError(f"{f.name}: drop_row rows left in the chunk")
        return x, masked

    def _drop_rows(self, chunk: RawChunk, reader: Reader, na: dict[str, dict[str, int]] | None) -> RawChunk:
        """The chunk without the rows a ``drop_row`` field finds missing/non-finite."""
        drop = np.zeros(chunk.table.num_rows, bool)
        for f in self.fields:
            if f.missing_policy != "drop_row":
                continue
            if f.reads_number:
                _, bad = self._raw_numbers(f, chunk, reader)
            else:
                col = _column(chunk, f.source, reader)
                bad = (
                    col.is_null().to_numpy(zero_copy_only=False)
                    if col.null_count
                    else np.zeros(len(drop), bool)
                )
            if na is not None and bad.any():
                for k, v in self._na_counts(f, chunk, reader, bad).items():
                    na[f.name][k] += v
                na[f.name]["dropped"] += int(bad.sum())
            drop |= bad
        return chunk.take(np.flatnonzero(~drop)) if drop.any() else chunk

    def _check_missing_tokens(self, f: FieldSpec, chunk: RawChunk, reader: Reader) -> None:
        if f.missing_policy == "error" and not f.reads_number:  # numbers: see _numbers
            col = _column(chunk, f.source, reader)
            if col.null_count:
                i = int(pc.index(pc.is_null(col), True).as_py())
                raise CTRDataError(
                    f"{chunk.where(reader.path, i)}: column {f.source!r} ({f.type} field {f.name!r}): "
                    "empty value, and the field's na_policy is error"
                )

    def _tokens(
        self, f: FieldSpec, chunk: RawChunk, reader: Reader, na: dict[str, dict[str, int]] | None = None
    ) -> pa.ChunkedArray:
        """Categorical tokens (string, null = missing) of field ``f``."""
        self._check_missing_tokens(f, chunk, reader)
        col = _column(chunk, f.source, reader)
        if f.preprocess is None:
            return _as_string(col)
        if f.preprocess == "log_bucket":
            x, _ = self._numbers(f, chunk, reader, na)
            low = x < -(2.0**53)  # truncated to an integer token: beyond 2^53 it is not exact
            if low.any():
                i = int(np.flatnonzero(low)[0])
                raise CTRDataError(
                    f"{chunk.where(reader.path, i)}: column {f.source!r} (field {f.name!r}, log_bucket): "
                    f"value {_column(chunk, f.source, reader)[i].as_py()!r} is below -2^53"
                )
            return _log_bucket(pa.chunked_array([pa.array(x)]))
        if f.preprocess in ("hour_of_day", "weekday", "weekend"):
            s = _as_string(col)
            ok = pc.match_substring_regex(s, r"^\d{8}$")
            if pc.any(pc.invert(ok.fill_null(True))).as_py():
                i = int(pc.index(pc.invert(ok.fill_null(True)), True).as_py())
                raise CTRDataError(
                    f"{chunk.where(reader.path, i)}: column {f.source!r} (field {f.name!r}, preprocess "
                    f"{f.preprocess}): {s[i].as_py()!r} is not a YYMMDDHH hour"
                )
            out = _avazu_time(s, f.preprocess)
            parsed_bad = pc.and_(pc.is_valid(s), pc.is_null(out))
            if pc.any(parsed_bad).as_py():
                i = int(pc.index(parsed_bad, True).as_py())
                raise CTRDataError(
                    f"{chunk.where(reader.path, i)}: column {f.source!r} (field {f.name!r}): "
                    f"{s[i].as_py()!r} is not a valid YYMMDDHH date"
                )
            return out
        raise AssertionError(f.preprocess)  # FieldSpec validates preprocess

    def _sequences(self, f: FieldSpec, chunk: RawChunk, reader: Reader) -> pa.ListArray:
        self._check_missing_tokens(f, chunk, reader)
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

    def _run_chunks(self, fn: Callable[[dict[str, Any], Any], Any], state: dict[str, Any], reader: Reader) -> list[Any]:
        """``fn(state, item)`` for every chunk of ``reader``, results in file order: the reader's
        segments spread over the worker processes, or (a ``.gz`` or parquet file, read in order
        only) its chunks in this process."""
        segs = reader.segments()
        if segs is not None:
            return self._map(fn, state, segs)
        if self.num_workers > 1:
            log.info("gatelab.recsys: %s is read in order (compressed or columnar): one process", reader.path)
        out = [fn(state, (i, c)) for i, c in enumerate(reader.iter_chunks())]
        _note_peak(self.peak_rss_mb, os.getpid())
        return out

    def fit(self, reader: Reader) -> FeatureSpec:
        """Count tokens / statistics over ``reader`` (the training split) and build the spec.

        Token counts are exact with bounded memory: each chunk's distinct tokens and counts are
        spilled to ``num_partitions`` hash partitions on disk and summed one partition at a time,
        keeping the tokens seen at least ``min_count`` times. With ``num_workers > 1`` the chunks
        (byte segments of a plain-text file) are processed by that many processes; the result is
        the same for any worker count (per-chunk statistics are merged in file order).

        With ``check_overlap``, every training row's feature values are hashed (also spilled by
        partition), so :meth:`transform` can count evaluation rows equal to a training row.

        A field sharing another's table (``share_embedding``) counts into the owner's vocabulary;
        hashed fields (``hash_buckets``) have none."""
        d = self._scratch("fit")
        (d / "counts").mkdir()
        (d / "rows").mkdir()
        (d / "train_rows").mkdir()
        parts = self._num_parts(reader)
        hash_rows = self.check_overlap
        state = {"enc": self, "reader": reader, "dir": str(d), "parts": parts, "hash_rows": hash_rows}
        results = self._run_chunks(_fit_chunk, state, reader)
        rows = sum(r["rows"] for r in results)
        if rows == 0:
            raise CTRDataError(f"{reader.path}: no data rows" + self._dropped_note())
        stats = {f.name: _NumStats() for f in self.fields if f.type == "numeric"}
        longest = {f.name: 0 for f in self.fields if f.type == "sequence"}
        for r in results:  # file order: the same merge whatever the worker count
            for name, st in r["stats"].items():
                stats[name].merge(st)
            for name, n in r["longest"].items():
                longest[name] = max(longest[name], n)
        min_counts = {
            i: (f.min_count if f.min_count is not None else self.min_count)
            for i, f in enumerate(self.fields)
            if f.type != "numeric"
        }
        mstate = {
            "count_files": [str(d / "counts" / f"{r['index']:06d}.arrow") for r in results if r["rows"]],
            "row_spills": [(str(d / "rows" / f"{r['index']:06d}"), r["row_bounds"]) for r in results if r["rows"]]
            if hash_rows
            else [],
            "min_counts": min_counts,
            "rows_dir": str(d / "train_rows"),
        }
        tables = self._map(_merge_fit, mstate, list(range(parts)))
        shutil.rmtree(d / "counts")
        shutil.rmtree(d / "rows")
        kept = pa.concat_tables(tables) if tables else None
        if kept is not None and kept.num_rows:
            kept = kept.take(pc.sort_indices(kept, [("field", "ascending"), ("n", "descending"), ("v", "ascending")]))
            fids = kept.column("field").to_numpy()
        else:
            fids = np.empty(0, np.int32)
        self._train_rows_dir = d / "train_rows" if hash_rows else None
        self._parts = parts
        self._train_reader = reader
        self.vocab, self._lookups = {}, {}
        owners = {f.name: f for f in self.fields}
        index_of = {f.name: i for i, f in enumerate(self.fields)}
        fitted: list[FieldSpec] = []
        for f in self.fields:
            if f.type == "numeric":
                st = stats[f.name].as_dict()
                if st["count"] == 0 and f.normalizer != "none":
                    raise CTRDataError(
                        f"{reader.path}: column {f.source!r} (numeric field {f.name!r}) has no finite "
                        f"value in the training split: normalizer={f.normalizer} has no statistics"
                    )
                if f.normalizer != "none" and not all(math.isfinite(v) for v in st.values()):
                    raise CTRDataError(
                        f"{reader.path}: column {f.source!r} (numeric field {f.name!r}): values up to "
                        f"{max(abs(st['min']), abs(st['max'])):.3g} overflow the float64 statistics of "
                        f"normalizer={f.normalizer} (mean {st['mean']:.3g}, std {st['std']:.3g})"
                    )
                fitted.append(dataclasses.replace(f, stats=st))
                continue
            owner = owners[f.table_owner]
            extra: dict[str, Any]
            if owner.hash_buckets is not None:  # hashed: no vocabulary (gatelab.recsys.data.hashing)
                self.vocab[f.name] = []
                extra = {"num_tokens": 0, "vocab_size": owner.hash_buckets + 1}
            else:
                oi = index_of[owner.name]
                if owner.name not in self._lookups:
                    lo, hi = np.searchsorted(fids, [oi, oi + 1])
                    tokens = (
                        kept.column("v").slice(int(lo), int(hi - lo)).combine_chunks()
                        if kept is not None and hi > lo
                        else pa.array([], pa.string())
                    )
                    self.vocab[owner.name] = tokens.to_pylist()
                    self._lookups[owner.name] = TokenLookup(tokens)
                self.vocab[f.name] = self.vocab[owner.name]
                self._lookups[f.name] = self._lookups[owner.name]
                extra = {"num_tokens": len(self.vocab[f.name]), "vocab_size": len(self.vocab[f.name]) + 2}
                if f.share_embedding is None:
                    extra["min_count"] = min_counts[oi]
            if f.type == "sequence" and f.max_len is None:
                extra["max_len"] = max(longest[f.name], 1)
            fitted.append(dataclasses.replace(f, **extra))
        self.spec = FeatureSpec(fitted, label=self.label)
        return self.spec

    def _dropped_note(self) -> str:
        drop = [f.name for f in self.fields if f.missing_policy == "drop_row"]
        return f" left after na_policy drop_row of fields {drop}" if drop else ""

    def load_vocab(self, spec: FeatureSpec, vocab: Mapping[str, Sequence[str]]) -> None:
        """Use an already fitted ``spec`` and its vocabularies (skip :meth:`fit`; evaluation rows
        equal to training rows are then not counted)."""
        self.spec = spec
        self.vocab = {k: list(v) for k, v in vocab.items()}
        self._lookups = {k: TokenLookup(pa.array(v, type=pa.string())) for k, v in self.vocab.items()}

    def _new_na_tally(self) -> dict[str, dict[str, int]]:
        """Zeroed per-field counts of the missing-value policies (what :meth:`transform` reports)."""
        assert self.spec is not None
        return {f.name: dict.fromkeys(("missing", "non_finite", "filled", "masked", "dropped"), 0) for f in self.spec.fields}

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
        na = self._new_na_tally()
        kept = self._drop_rows(unlabelled, reader, na)
        if kept.table.num_rows != unlabelled.table.num_rows:  # a row to score is never dropped
            bad = {name: c["dropped"] for name, c in na.items() if c["dropped"]}
            raise CTRDataError(
                f"{reader.path}: {unlabelled.table.num_rows - kept.table.num_rows} rows miss a value of a "
                f"field whose policy is drop_row ({bad}); rows to score cannot be dropped: fill them first"
            )
        out = self._encode_chunk(unlabelled, reader, oov, missing, na)
        del out["label"]
        return out

    # ---- pass 2: transform ---------------------------------------------------------------

    def _index(self, f: FieldSpec, tokens: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, int, int]:
        """The token -> index step of field ``f``: ``[n]`` int32 indices (1..V for the vocabulary's
        tokens, OOV = V+1 for unseen, rarer-than-``min_count`` and missing tokens), and the OOV and
        missing counts. Exact (:class:`~.counting.TokenLookup`)."""
        assert self.spec is not None
        fitted = self.spec[f.name]
        buckets = self.spec[fitted.table_owner].hash_buckets
        if buckets is not None:  # no vocabulary, no OOV: a missing entry is hashed as ""
            return hash_tokens(tokens, buckets), 0, int(tokens.null_count)
        idx = self._lookups[f.name](tokens)
        missing = int(tokens.null_count)
        unknown = idx == 0
        oov = int(unknown.sum()) - missing
        idx[unknown] = fitted.oov_index
        return idx, oov, missing

    def _normalise(self, f: FieldSpec, x: np.ndarray, chunk: RawChunk, reader: Reader) -> np.ndarray:
        """``x`` (float64, finite) normalised with the training statistics, as float32; a value
        that overflows float32 is an error naming file:line:column."""
        s = f.stats or {}
        if f.normalizer == "minmax":
            span = s["max"] - s["min"]
            y = (x - s["min"]) / (span if span > 0 else 1.0)
        elif f.normalizer == "standard":
            y = (x - s["mean"]) / (s["std"] if s["std"] > 0 else 1.0)
        else:
            y = x
        with np.errstate(over="ignore"):
            out = y.astype(np.float32)
        over = ~np.isfinite(out)
        if over.any():
            i = int(np.flatnonzero(over)[0])
            raw = _column(chunk, f.source, reader)[i].as_py()
            raise CTRDataError(
                f"{chunk.where(reader.path, i)}: column {f.source!r} (numeric field {f.name!r}): value "
                f"{raw!r} is {float(y[i]):.3g} after normalizer={f.normalizer}, beyond float32 "
                f"(max {np.finfo(np.float32).max:.3g})"
            )
        return out

    def _encode_chunk(
        self,
        chunk: RawChunk,
        reader: Reader,
        oov: dict[str, int],
        missing: dict[str, int],
        na: dict[str, dict[str, int]],
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
                a[:, j], o, m = self._index(f, self._tokens(f, chunk, reader, na))
                oov[f.name] += o
                missing[f.name] += int(_column(chunk, f.source, reader).null_count) if f.reads_number else m
            out["categorical"] = a
        if nums:
            a = np.empty((n, len(nums)), np.float32)
            mask = np.ones((n, len(nums)), np.uint8)
            for j, f in enumerate(nums):
                col = _column(chunk, f.source, reader)
                missing[f.name] += int(col.null_count)
                x, masked = self._numbers(f, chunk, reader, na)
                x[masked] = 0.0  # placeholder before normalising; set to 0 after
                y = self._normalise(f, x, chunk, reader)
                y[masked] = 0.0
                mask[masked, j] = 0
                a[:, j] = y
            out["numeric"] = a
            if any(f.missing_policy == "mask" for f in nums):
                out["numeric_mask"] = mask
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

    def transform(
        self, reader: Reader, folder: str | os.PathLike[str], *, train: bool | None = None
    ) -> dict[str, Any]:
        """Encode every row of ``reader`` into ``folder`` (memory-mapped row shards of
        ``shard_rows`` rows and their ``manifest.json``, :mod:`.shards`); returns the split's
        statistics: ``rows``, ``positives``, ``oov`` and ``missing`` counts per field,
        ``na`` (per field with a missing/non-finite entry: ``policy``, ``missing``,
        ``non_finite`` and the ``filled`` / ``masked`` / ``dropped`` counts), ``rows_dropped``,
        and -- after :meth:`fit` -- ``overlap_with_train`` (rows whose feature values equal a
        training row's; not for the training split itself: ``train``, default: ``reader`` is the
        reader :meth:`fit` read). With ``id_columns``: ``duplicate_ids`` (rows whose id repeats
        an earlier row's id in the split) and, for evaluation splits encoded after the training
        split, ``ids_in_train`` (distinct ids also found in train).

        Chunks are encoded by ``num_workers`` processes into part files, then copied into the
        shards at their row offsets (file order): the output bytes do not depend on the worker
        count. Overlap and id counts are exact per 64-bit row hash, computed one hash partition at
        a time (bounded memory)."""
        if self.spec is None:
            raise CTRDataError("FeatureEncoder.transform: call fit() (or load_vocab()) first")
        folder = Path(folder)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        d = self._scratch("transform")
        for sub in ("parts", "rows", "ids"):
            (d / sub).mkdir()
        is_train = reader is self._train_reader if train is None else train
        check_overlap = self._train_rows_dir is not None and not is_train
        parts = self._parts or self._num_parts(reader)
        if self._train_ids_dir is not None and not is_train:
            parts = self._train_ids_dir[1]
        state = {
            "enc": self,
            "reader": reader,
            "dir": str(d),
            "parts": parts,
            "overlap": check_overlap,
            "ids": bool(self.id_columns),
        }
        results = self._run_chunks(_encode_chunk_task, state, reader)
        oov = {f.name: 0 for f in self.spec.fields if f.type != "numeric"}
        missing = {f.name: 0 for f in self.spec.fields}
        na = self._new_na_tally()
        rows, positives, raw_rows = 0, 0, 0
        shapes: dict[str, tuple[str, tuple[int, ...]]] = {}
        copies = []
        for r in results:
            for name in oov:
                oov[name] += r["oov"][name]
            for name in missing:
                missing[name] += r["missing"][name]
                for k, v in r["na"][name].items():
                    na[name][k] += v
            raw_rows += r["raw_rows"]
            if r["rows"]:
                copies.append((str(d / "parts" / f"{r['index']:06d}"), rows, list(r["shapes"])))
                shapes.update(r["shapes"])
                rows += r["rows"]
                positives += r["positives"]
        if rows == 0:
            raise CTRDataError(f"{reader.path}: no data rows" + self._dropped_note())
        writer = ShardWriter(folder, rows, shapes, self.shard_rows)
        wstate = {"writer": writer.state()}
        self._map(_copy_part, wstate, copies)
        checks = self._map(_checksum_shard, wstate, [(n, k) for n in shapes for k in range(writer.num_shards)])
        writer.finish({(c["array"], c["shard"]): c["entry"] for c in checks})
        overlap, first_overlap = 0, None
        if check_overlap:
            ostate = {
                "spills": [(str(d / "rows" / f"{r['index']:06d}"), r["row_bounds"]) for r in results if r["rows"]],
                "train_dir": str(self._train_rows_dir),
            }
            hits = self._map(_overlap_part, ostate, list(range(parts)))
            overlap = sum(h[0] for h in hits)
            lines = [h[1] for h in hits if h[1] is not None]
            if lines:
                unit = next(r["unit"] for r in results if r["rows"])
                first_overlap = f"{reader.path}:{min(lines)}" if unit == "line" else f"{reader.path}: row {min(lines)}"
        id_stats: dict[str, int] = {}
        if self.id_columns:
            save = None
            if is_train:
                save = self._scratch("train-ids")
            istate = {
                "spills": [(str(d / "ids" / f"{r['index']:06d}"), r["id_bounds"]) for r in results if r["rows"]],
                "train_dir": None if is_train or self._train_ids_dir is None else str(self._train_ids_dir[0]),
                "save_dir": None if save is None else str(save),
            }
            got = self._map(_ids_part, istate, list(range(parts)))
            id_stats["duplicate_ids"] = sum(g[0] for g in got)
            if save is not None:
                self._train_ids_dir = (save, parts)
            elif istate["train_dir"] is not None:
                id_stats["ids_in_train"] = sum(g[1] for g in got)
        shutil.rmtree(d)
        if overlap and self.strict_overlap:
            raise CTRDataError(
                f"{reader.path}: {overlap} of {rows} rows have the same feature values as a training "
                f"row (first: {first_overlap}); strict_overlap is set"
            )
        if overlap:
            log.warning(
                "gatelab.recsys: %s: %d of %d rows have the same feature values as a training row (first: %s)",
                reader.path,
                overlap,
                rows,
                first_overlap,
            )
        na_report = {
            f.name: {"policy": f.missing_policy, **{k: v for k, v in na[f.name].items() if v}}
            for f in self.spec.fields
            if any(na[f.name].values())
        }
        if na_report:
            log.warning(
                "gatelab.recsys: %s: missing/non-finite entries handled by policy: %s",
                reader.path,
                "; ".join(f"{k} {v}" for k, v in na_report.items()),
            )
        stats: dict[str, Any] = {
            "rows": rows,
            "positives": int(positives),
            "oov": oov,
            "missing": missing,
            "na": na_report,
            "rows_dropped": raw_rows - rows,
        }
        if check_overlap:
            stats["overlap_with_train"] = overlap
        if self.id_columns:
            stats.update(id_stats)
            shared = stats.get("ids_in_train", 0)
            if stats["duplicate_ids"] or shared:
                log.warning(
                    "gatelab.recsys: %s: id columns %s: %d duplicate id(s) in the split, %d id(s) also in train",
                    reader.path,
                    self.id_columns,
                    stats["duplicate_ids"],
                    shared,
                )
        return stats


# --------------------------------------------------------------------------- worker tasks
#
# Module-level functions ``fn(state, item)`` run by FeatureEncoder._map, in this process or in the
# worker processes (then ``state`` arrives pickled once per map, see _Workers).


def _hwm_mb() -> float:
    """This process's peak resident memory in MB (``VmHWM``; ``ru_maxrss`` where /proc is absent)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _note_peak(peaks: dict[int, float], pid: int) -> None:
    peaks[pid] = max(peaks.get(pid, 0.0), _hwm_mb())


def _chunk_of(state: dict[str, Any], item: Any) -> tuple[int, RawChunk | None]:
    if isinstance(item, Segment):
        return item.index, state["reader"].read_segment(item)
    return item


def _spill_u64(prefix: str, values: np.ndarray, parts: int, extra: np.ndarray | None = None) -> list[int]:
    """Save ``values`` (and ``extra`` alongside) ordered by hash partition as ``<prefix>.h.npy``
    (``<prefix>.x.npy``); returns the partition bounds (``parts + 1`` offsets)."""
    part = partition_of(values, parts)
    order = np.argsort(part, kind="stable")
    np.save(f"{prefix}.h.npy", values[order])
    if extra is not None:
        np.save(f"{prefix}.x.npy", extra[order])
    return np.searchsorted(part[order], np.arange(parts + 1)).tolist()


def _gather_spills(spills: Sequence[tuple[str, Sequence[int]]], p: int, extra: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Partition ``p`` of every spill (values, and the ``extra`` arrays when asked)."""
    hs, xs = [np.empty(0, np.uint64)], [np.empty(0, np.int64)]
    for prefix, bounds in spills:
        lo, hi = bounds[p], bounds[p + 1]
        if hi > lo:
            hs.append(np.array(np.load(f"{prefix}.h.npy", mmap_mode="r")[lo:hi]))
            if extra:
                xs.append(np.array(np.load(f"{prefix}.x.npy", mmap_mode="r")[lo:hi]))
    return np.concatenate(hs), (np.concatenate(xs) if extra else None)


def _fit_chunk(state: dict[str, Any], item: Any) -> dict[str, Any]:
    """Pass 1 on one chunk: spill its token counts (and row hashes); its numeric statistics."""
    enc: FeatureEncoder = state["enc"]
    reader: Reader = state["reader"]
    d = Path(state["dir"])
    index, raw = _chunk_of(state, item)
    res: dict[str, Any] = {"index": index, "rows": 0, "stats": {}, "longest": {}, "row_bounds": None}
    if raw is None:
        return res
    chunk = enc._drop_rows(raw, reader, None)
    if chunk.table.num_rows == 0:
        return res
    enc._labels(chunk, reader)
    res["rows"] = chunk.table.num_rows
    per_field = []
    owners = {f.name: (i, f) for i, f in enumerate(enc.fields)}
    for f in enc.fields:
        # a sharer counts into its owner's vocabulary (the owner's field id); a hashed table has none
        oi, owner = owners[f.table_owner]
        counted = owner.hash_buckets is None
        if f.type == "categorical":
            if counted:
                per_field.append((oi, *chunk_counts(enc._tokens(f, chunk, reader))))
        elif f.type == "numeric":
            x, bad = enc._raw_numbers(f, chunk, reader)
            if bad.any() and f.missing_policy == "error":
                enc._raise_na(f, chunk, reader, bad)
            st = _NumStats()
            st.update(x[~bad])  # observed finite values only
            res["stats"][f.name] = st
        else:
            lists = enc._sequences(f, chunk, reader)
            if counted:
                per_field.append((oi, *chunk_counts(lists.flatten())))
            res["longest"][f.name] = int(pc.max(pc.list_value_length(lists)).as_py() or 0) if len(lists) else 0
    write_counts(d / "counts" / f"{index:06d}.arrow", per_field, state["parts"])
    if state["hash_rows"]:
        h = np.unique(row_hashes([_column(chunk, c, reader) for c in enc._feature_columns]))
        res["row_bounds"] = _spill_u64(str(d / "rows" / f"{index:06d}"), h, state["parts"])
    return res


def _merge_fit(state: dict[str, Any], p: int) -> pa.Table:
    """Partition ``p``: the summed token counts reaching ``min_count``; the unique training-row hashes saved."""
    kept = merge_counts(state["count_files"], p, state["min_counts"])
    if state["row_spills"]:
        h, _ = _gather_spills(state["row_spills"], p)
        np.save(Path(state["rows_dir"]) / f"{p:05d}.npy", np.unique(h))
    return kept


def _encode_chunk_task(state: dict[str, Any], item: Any) -> dict[str, Any]:
    """Pass 2 on one chunk: its encoded arrays to part files, its counts (and row/id hashes spilled)."""
    enc: FeatureEncoder = state["enc"]
    reader: Reader = state["reader"]
    assert enc.spec is not None
    d = Path(state["dir"])
    index, raw = _chunk_of(state, item)
    oov = {f.name: 0 for f in enc.spec.fields if f.type != "numeric"}
    missing = {f.name: 0 for f in enc.spec.fields}
    na = enc._new_na_tally()
    res: dict[str, Any] = {"index": index, "rows": 0, "raw_rows": 0, "oov": oov, "missing": missing, "na": na}
    if raw is None:
        return res
    res["raw_rows"] = raw.table.num_rows
    chunk = enc._drop_rows(raw, reader, na)
    n = chunk.table.num_rows
    if n == 0:
        return res
    arrays = enc._encode_chunk(chunk, reader, oov, missing, na)
    prefix = d / "parts" / f"{index:06d}"
    for k, v in arrays.items():
        np.save(f"{prefix}.{k}.npy", v)
    res.update(
        rows=n,
        positives=int(arrays["label"].sum()),
        shapes={k: (v.dtype.str, tuple(v.shape[1:])) for k, v in arrays.items()},
        unit=chunk.unit,
    )
    if state["overlap"]:
        h = row_hashes([_column(chunk, c, reader) for c in enc._feature_columns])
        pos = np.arange(n) if chunk.rows is None else np.asarray(chunk.rows, np.int64)
        lines = chunk.first_line + pos
        res["row_bounds"] = _spill_u64(str(d / "rows" / f"{index:06d}"), h, state["parts"], lines)
    if state["ids"]:
        cols = [_column(chunk, c, reader) for c in enc.id_columns]  # a declared id column must exist
        res["id_bounds"] = _spill_u64(str(d / "ids" / f"{index:06d}"), row_hashes(cols), state["parts"])
    return res


def _copy_part(state: dict[str, Any], item: tuple[str, int, list[str]]) -> None:
    """Copy one chunk's part files into the shards at its row offset, then delete them."""
    prefix, start, names = item
    writer = ShardWriter(**state["writer"], create=False)
    arrays = {k: np.load(f"{prefix}.{k}.npy", mmap_mode="r") for k in names}
    writer.write(start, arrays)
    del arrays
    for k in names:
        os.remove(f"{prefix}.{k}.npy")


def _checksum_shard(state: dict[str, Any], item: tuple[str, int]) -> dict[str, Any]:
    name, k = item
    writer = ShardWriter(**state["writer"], create=False)
    return {"array": name, "shard": k, "entry": writer.checksum(name, k)}


def _overlap_part(state: dict[str, Any], p: int) -> tuple[int, int | None]:
    """Partition ``p``: evaluation rows whose hash is a training row's, and the first such line."""
    h, lines = _gather_spills(state["spills"], p, extra=True)
    f = Path(state["train_dir"]) / f"{p:05d}.npy"
    if not len(h) or not f.is_file():
        return 0, None
    hit = np.isin(h, np.load(f))
    assert lines is not None
    return int(hit.sum()), (int(lines[hit].min()) if hit.any() else None)


def _ids_part(state: dict[str, Any], p: int) -> tuple[int, int]:
    """Partition ``p`` of the id hashes: repeated ids, ids also in train (saved for the training split)."""
    ids, _ = _gather_spills(state["spills"], p)
    unique = np.unique(ids)
    in_train = 0
    if state["train_dir"] is not None:
        f = Path(state["train_dir"]) / f"{p:05d}.npy"
        if f.is_file():
            in_train = int(np.isin(unique, np.load(f)).sum())
    if state["save_dir"] is not None:
        np.save(Path(state["save_dir"]) / f"{p:05d}.npy", unique)
    return len(ids) - len(unique), in_train


_STATE_CACHE: list[Any] = [None, None]  # [state file, state] in a worker process


@dataclasses.dataclass
class _Failed:
    """A task's exception, returned instead of raised so the first failure in file order wins."""

    error: BaseException


def _call(args: tuple[Callable[[dict[str, Any], Any], Any], str, Any]) -> tuple[int, float, Any]:
    fn, path, item = args
    if _STATE_CACHE[0] != path:
        with open(path, "rb") as f:
            _STATE_CACHE[1] = pickle.load(f)
        _STATE_CACHE[0] = path
    try:
        out: Any = fn(_STATE_CACHE[1], item)
    except (CTRDataError, ConfigError) as e:
        out = _Failed(e)
    return os.getpid(), _hwm_mb(), out


class _Workers:
    """A pool of ``n`` processes; :meth:`map` sends the state once (a pickle file) and the items
    one at a time, and records each process's peak RSS in ``peaks``.

    The processes are forked where the platform can (Linux): no re-import, and no re-run of an
    unguarded ``__main__`` script (``spawn`` would re-run it in every worker); elsewhere spawned
    (then the calling script needs the ``if __name__ == "__main__":`` guard)."""

    def __init__(self, n: int, peaks: dict[int, float]) -> None:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        if method == "fork":
            # pyarrow's first cast imports pandas (~1.5 CPU-seconds): once here, inherited by the workers
            pc.cast(pa.array(["0"]), pa.float64())
        self.pool = multiprocessing.get_context(method).Pool(n)
        self.peaks = peaks
        self.dir = tempfile.mkdtemp(prefix="gatelab-workers-")
        self.k = 0

    def map(self, fn: Callable[[dict[str, Any], Any], Any], state: dict[str, Any], items: Iterable[Any]) -> list[Any]:
        self.k += 1
        path = os.path.join(self.dir, f"state-{self.k}.pkl")
        with open(path, "wb") as f:
            pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            out = self.pool.map(_call, [(fn, path, it) for it in items], chunksize=1)
        finally:
            os.remove(path)
        res = []
        for pid, mb, r in out:
            self.peaks[pid] = max(self.peaks.get(pid, 0.0), mb)
            res.append(r)
        _note_peak(self.peaks, os.getpid())
        for r in res:  # the error of the earliest chunk, as one process would have raised
            if isinstance(r, _Failed):
                raise r.error
        return res

    def close(self) -> None:
        self.pool.close()
        self.pool.join()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> _Workers:
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is not None:
            self.pool.terminate()
        self.close()


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
    id_columns: Sequence[str] = (),
    strict_overlap: bool = False,
    check_overlap: bool = True,
    num_workers: int = 1,
    shard_rows: int = DEFAULT_SHARD_ROWS,
    num_partitions: int | None = None,
) -> Path:
    """Fit on ``readers[train_split]``, encode every split, and return the cache folder.

    The folder ``<cache_root>/<name>-<fingerprint>`` holds ``feature_spec.json`` (with per-split
    ``rows``/``positives``/``oov``/``missing`` counts), ``vocab.json`` and one sub-folder of
    row shards per split (:mod:`.shards`: ``shard_rows`` rows per shard, ``manifest.json``). An
    existing complete folder with the same fingerprint (sources' path, size and mtime; fields;
    label; ``min_count``; ``shard_rows``; encoder version) is reused unless ``force``. The folder
    is built under a temporary name and renamed when complete, so an interrupted run leaves no
    half-written cache behind; the scratch files (spilled counts, part files) live inside it.

    ``id_columns``, ``strict_overlap`` and ``check_overlap`` are passed to :class:`FeatureEncoder` (leakage guards:
    no field may read the label or an id column; evaluation rows equal to training rows are
    counted in ``splits[split]["overlap_with_train"]``, an error with ``strict_overlap``; the
    training rows are hashed only when there is an evaluation split to compare).
    ``num_workers`` processes encode plain-text files segment by segment (same output for any
    count); ``num_partitions``: hash partitions of the exact token counter (default: one per
    64 MiB of training file).
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
        "id_columns": list(id_columns),
        "strict_overlap": bool(strict_overlap),
        "check_overlap": bool(check_overlap),
        "shard_rows": shard_rows,
    }
    fp = _fingerprint(payload)
    root = Path(cache_root).expanduser()
    folder = root / f"{name}-{fp[:16]}"
    if not force and (folder / "feature_spec.json").is_file():
        spec = FeatureSpec.load(folder / "feature_spec.json")
        if spec.meta.get("fingerprint") == fp and all((folder / s / "manifest.json").is_file() for s in readers):
            log.info("recsys: using the encoded cache %s", folder)
            return folder
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        enc = FeatureEncoder(
            field_list,
            label,
            min_count=min_count,
            negative_label=negative_label,
            id_columns=id_columns,
            strict_overlap=strict_overlap,
            check_overlap=check_overlap and (len(readers) > 1 or strict_overlap),
            num_workers=num_workers,
            num_partitions=num_partitions,
            shard_rows=shard_rows,
            work_dir=tmp / "_work",
        )
        with enc:
            spec = enc.fit(readers[train_split])
            order = [train_split, *(s for s in readers if s != train_split)]
            done = {s: enc.transform(readers[s], tmp / s, train=s == train_split) for s in order}
        shutil.rmtree(tmp / "_work", ignore_errors=True)
        log.info(
            "recsys: encoded %s with %d process(es), peak RSS %s MB",
            sorted(readers),
            num_workers,
            {pid: round(mb) for pid, mb in enc.peak_rss_mb.items()},
        )
        splits = {s: done[s] for s in readers}
        spec.splits = splits
        spec.meta = {
            "fingerprint": fp,
            "encoder_version": ENCODER_VERSION,
            "sources": payload["sources"],
            "min_count": min_count,
            "negative_label": negative_label,
            "train_split": train_split,
            "id_columns": list(id_columns),
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
