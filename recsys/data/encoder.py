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

from gatelab.core.config import ConfigError

from .hashing import hash_tokens
from .readers import CTRDataError, RawChunk, Reader
from .spec import FeatureSpec, FieldSpec

__all__ = ["ENCODER_VERSION", "EncodedSplit", "FeatureEncoder", "encode_dataset", "load_encoded"]

log = logging.getLogger(__name__)

#: bump when the encoded layout or the encoding rules change (invalidates caches)
ENCODER_VERSION = 2
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
        mask = self.folder / "numeric_mask.npy"
        #: ``[N, F_num]`` uint8, 0 where ``na_policy: mask`` masked the entry (None: no masked field)
        self.numeric_mask: np.ndarray | None = np.load(mask, mmap_mode=mmap_mode) if mask.is_file() else None
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
        nb = len(x)
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported by fit()
            mean_b = float(x.mean())
            m2_b = float(np.square(x - mean_b).sum())
        n = self.n + nb
        delta = mean_b - self.mean
        self.mean += delta * nb / n
        self.m2 += m2_b + delta * delta * (self.n * nb / n)
        self.n = n
        self.lo = min(self.lo, float(x.min()))
        self.hi = max(self.hi, float(x.max()))

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


def _row_hashes(chunk: RawChunk, columns: Sequence[str]) -> np.ndarray:
    """A 64-bit hash of each row's raw values in ``columns`` (nulls distinct from any text)."""
    import pandas as pd  # hash_array: vectorised, deterministic (SipHash with a fixed key)

    cols = [_as_string(chunk.table.column(c)) for c in columns]
    joined = pc.binary_join_element_wise(*cols, "\x1f", null_handling="replace", null_replacement="\x1e")
    if isinstance(joined, pa.ChunkedArray):
        joined = joined.combine_chunks()
    return pd.util.hash_array(joined.to_numpy(zero_copy_only=False)).astype(np.uint64)


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
    ) -> None:
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
        self._value_sets: dict[str, pa.Array] = {}
        self._train_hashes: np.ndarray | None = None
        self._train_reader: Reader | None = None
        self._train_ids: np.ndarray | None = None
        self.spec: FeatureSpec | None = None

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

    def fit(self, reader: Reader) -> FeatureSpec:
        """Count tokens / statistics over ``reader`` (the training split) and build the spec.

        Also hashes every training row's feature values, so :meth:`transform` can count
        evaluation rows equal to a training row."""
        # one counter per vocabulary: a field sharing another's table counts into the owner's;
        # hashed fields have none
        owners = {f.name: f for f in self.fields}
        counts = {
            f.name: _TokenCounts()
            for f in self.fields
            if f.type != "numeric" and f.share_embedding is None and f.hash_buckets is None
        }
        stats = {f.name: _NumStats() for f in self.fields if f.type == "numeric"}
        longest = {f.name: 0 for f in self.fields if f.type == "sequence"}
        hashes: list[np.ndarray] = []
        rows = 0
        for raw in reader.iter_chunks():
            chunk = self._drop_rows(raw, reader, None)
            if chunk.table.num_rows == 0:
                continue
            self._labels(chunk, reader)
            rows += chunk.table.num_rows
            for f in self.fields:
                if f.type == "categorical":
                    tokens = self._tokens(f, chunk, reader)
                    if f.table_owner in counts:
                        counts[f.table_owner].add(tokens)
                elif f.type == "numeric":
                    x, bad = self._raw_numbers(f, chunk, reader)
                    if bad.any() and f.missing_policy == "error":
                        self._raise_na(f, chunk, reader, bad)
                    stats[f.name].update(x[~bad])  # observed finite values only
                else:
                    lists = self._sequences(f, chunk, reader)
                    if f.table_owner in counts:
                        counts[f.table_owner].add(lists.flatten())
                    if len(lists):
                        longest[f.name] = max(
                            longest[f.name], int(pc.max(pc.list_value_length(lists)).as_py() or 0)
                        )
            if self.check_overlap:
                hashes.append(np.unique(_row_hashes(chunk, self._feature_columns)))
        if rows == 0:
            raise CTRDataError(f"{reader.path}: no data rows" + self._dropped_note())
        if self.check_overlap:
            self._train_hashes = np.unique(np.concatenate(hashes)) if hashes else np.empty(0, np.uint64)
        self._train_reader = reader
        self.vocab, self._value_sets = {}, {}
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
                if owner.name not in self.vocab:
                    self._fit_vocab(owner, counts[owner.name])
                tokens = self.vocab[f.name] = self.vocab[owner.name]
                self._value_sets[f.name] = self._value_sets[owner.name]
                extra = {"num_tokens": len(tokens), "vocab_size": len(tokens) + 2}
                if f.share_embedding is None:
                    extra["min_count"] = owner.min_count if owner.min_count is not None else self.min_count
            if f.type == "sequence" and f.max_len is None:
                extra["max_len"] = max(longest[f.name], 1)
            fitted.append(dataclasses.replace(f, **extra))
        self.spec = FeatureSpec(fitted, label=self.label)
        return self.spec

    def _fit_vocab(self, f: FieldSpec, counts: _TokenCounts) -> None:
        """``self.vocab[f.name]``: the tokens of ``counts`` seen at least ``min_count`` times, most
        frequent first (ties by token)."""
        t = counts.table()
        min_count = f.min_count if f.min_count is not None else self.min_count
        if t.num_rows == 0:
            tokens: list[str] = []
        else:
            t = t.filter(pc.greater_equal(t.column("n"), min_count))
            order = pc.sort_indices(t, sort_keys=[("n", "descending"), ("v", "ascending")])
            tokens = t.column("v").take(order).to_pylist()
        self.vocab[f.name] = tokens
        self._value_sets[f.name] = pa.array(tokens, type=pa.string())

    def _dropped_note(self) -> str:
        drop = [f.name for f in self.fields if f.missing_policy == "drop_row"]
        return f" left after na_policy drop_row of fields {drop}" if drop else ""

    def load_vocab(self, spec: FeatureSpec, vocab: Mapping[str, Sequence[str]]) -> None:
        """Use an already fitted ``spec`` and its vocabularies (skip :meth:`fit`; evaluation rows
        equal to training rows are then not counted)."""
        self.spec = spec
        self.vocab = {k: list(v) for k, v in vocab.items()}
        self._value_sets = {k: pa.array(v, type=pa.string()) for k, v in self.vocab.items()}

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
        """Indices (1..V, OOV = V+1) of ``tokens``; also the OOV and missing counts."""
        assert self.spec is not None
        fitted = self.spec[f.name]
        buckets = self.spec[fitted.table_owner].hash_buckets
        if buckets is not None:  # no vocabulary, no OOV: a missing entry is hashed as ""
            return hash_tokens(tokens, buckets), 0, int(tokens.null_count)
        idx = pc.index_in(tokens, value_set=self._value_sets[f.name])
        missing = int(tokens.null_count)
        oov = int(idx.null_count) - missing
        out = pc.add(idx, 1).fill_null(fitted.oov_index)
        if isinstance(out, pa.ChunkedArray):
            out = out.combine_chunks()
        return out.to_numpy(zero_copy_only=False).astype(np.int32), oov, missing

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
        """Encode every row of ``reader`` into ``folder`` (the ``.npy`` arrays); returns the
        split's statistics: ``rows``, ``positives``, ``oov`` and ``missing`` counts per field,
        ``na`` (per field with a missing/non-finite entry: ``policy``, ``missing``,
        ``non_finite`` and the ``filled`` / ``masked`` / ``dropped`` counts), ``rows_dropped``,
        and -- after :meth:`fit` -- ``overlap_with_train`` (rows whose feature values equal a
        training row's; not for the training split itself: ``train``, default: ``reader`` is the
        reader :meth:`fit` read). With ``id_columns``: ``duplicate_ids`` (rows whose id repeats
        an earlier row's id in the split) and, for evaluation splits encoded after the training
        split, ``ids_in_train`` (distinct ids also found in train)."""
        if self.spec is None:
            raise CTRDataError("FeatureEncoder.transform: call fit() (or load_vocab()) first")
        folder = Path(folder)
        parts = folder / "_parts"
        if folder.exists():
            shutil.rmtree(folder)
        parts.mkdir(parents=True)
        oov = {f.name: 0 for f in self.spec.fields if f.type != "numeric"}
        missing = {f.name: 0 for f in self.spec.fields}
        na = self._new_na_tally()
        is_train = reader is self._train_reader if train is None else train
        check_overlap = self._train_hashes is not None and not is_train
        n_parts, rows, positives, raw_rows, overlap = 0, 0, 0.0, 0, 0
        first_overlap: str | None = None
        ids: list[np.ndarray] = []
        shapes: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        for raw in reader.iter_chunks():
            raw_rows += raw.table.num_rows
            chunk = self._drop_rows(raw, reader, na)
            if chunk.table.num_rows == 0:
                continue
            arrays = self._encode_chunk(chunk, reader, oov, missing, na)
            if check_overlap:
                hit = np.isin(_row_hashes(chunk, self._feature_columns), self._train_hashes)
                if hit.any():
                    overlap += int(hit.sum())
                    if first_overlap is None:
                        first_overlap = chunk.where(reader.path, int(np.flatnonzero(hit)[0]))
            if self.id_columns:
                for c in self.id_columns:
                    _column(chunk, c, reader)  # a declared id column must exist: names the file
                ids.append(_row_hashes(chunk, self.id_columns))
            np.savez(parts / f"{n_parts:06d}.npz", **arrays)
            for k, v in arrays.items():
                shapes[k] = (v.shape[1:], v.dtype)
            n_parts += 1
            rows += len(arrays["label"])
            positives += float(arrays["label"].sum())
        if rows == 0:
            raise CTRDataError(f"{reader.path}: no data rows" + self._dropped_note())
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
            all_ids = np.concatenate(ids)
            unique = np.unique(all_ids)
            stats["duplicate_ids"] = int(len(all_ids) - len(unique))
            if is_train:
                self._train_ids = unique
            elif self._train_ids is not None:
                stats["ids_in_train"] = int(np.isin(unique, self._train_ids).sum())
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
) -> Path:
    """Fit on ``readers[train_split]``, encode every split, and return the cache folder.

    The folder ``<cache_root>/<name>-<fingerprint>`` holds ``feature_spec.json`` (with per-split
    ``rows``/``positives``/``oov``/``missing`` counts), ``vocab.json`` and one sub-folder of arrays
    per split. An existing complete folder with the same fingerprint (sources' path, size and
    mtime; fields; label; ``min_count``; encoder version) is reused unless ``force``. The folder
    is built under a temporary name and renamed when complete, so an interrupted run leaves no
    half-written cache behind.

    ``id_columns``, ``strict_overlap`` and ``check_overlap`` are passed to :class:`FeatureEncoder` (leakage guards:
    no field may read the label or an id column; evaluation rows equal to training rows are
    counted in ``splits[split]["overlap_with_train"]``, an error with ``strict_overlap``).
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
        enc = FeatureEncoder(
            field_list,
            label,
            min_count=min_count,
            negative_label=negative_label,
            id_columns=id_columns,
            strict_overlap=strict_overlap,
            check_overlap=check_overlap,
        )
        spec = enc.fit(readers[train_split])
        order = [train_split, *(s for s in readers if s != train_split)]
        done = {s: enc.transform(readers[s], tmp / s, train=s == train_split) for s in order}
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
