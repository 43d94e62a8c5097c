"""The CTR Lightning data module: encoded arrays -> dict batches for the recsys models.

``ctr_datamodule`` (registered as data module ``ctr``) turns a named layout (or your own files
and fields) into encoded arrays with :func:`~.encoder.encode_dataset` (cached under
``$GATELAB_CACHE/recsys``) and returns a :class:`CTRDataModule`. Batches are dicts
``{"categorical" [B, F_cat] int64, "numeric" [B, F_num] float32, "sequence" [B, F_seq, L] int64,
"target" [B] float32}`` (the keys the spec has), gathered from whole arrays with one index per
batch (no per-row ``__getitem__``, no collation, no pandas). Training batches are a fresh
permutation per epoch drawn from ``(seed, epoch)`` only (no global RNG; ``seed`` defaults to the
harness seed), evaluation batches are in file order
(:class:`gatelab.core.harness.sampling.EpochBatchSampler`).

Distributed training (DDP): ``batch_size`` is per rank. Each step's global batch
(``batch_size * world_size`` rows) is split over the ranks, so every rank yields the same number
of batches and the ranks together see the rows one process would see with batch
``batch_size * world_size``. The incomplete last batch is split over the ranks (sizes differ by at
most one row; nothing is dropped or repeated unless it has fewer rows than there are ranks); in
training a last batch that would give a rank a single row is skipped on every rank (BatchNorm
cannot train on one row).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from gatelab.core.config import ConfigError, NonNegativeInt, PositiveInt
from gatelab.core.harness.data import cache_dir, locate
from gatelab.core.harness.sampling import EpochBatchSampler, batch_loader, default_seed, replicas

from .encoder import DEFAULT_SHARD_ROWS, EncodedSplit, encode_dataset, load_encoded
from .layouts import LAYOUTS, Layout
from .readers import DEFAULT_BLOCK_SIZE, DEFAULT_READ_AHEAD, CTRDataError, Reader, make_reader
from .shards import ShardedArray
from .spec import FeatureSpec

__all__ = ["CTRDataModule", "ctr_datamodule", "data_report", "oov_report"]

log = logging.getLogger("gatelab.recsys")


class _Batches(Dataset):
    """Batches of one encoded split: item ``[i, j, ...]`` (or a ``range``) is the batch of those
    rows, a dict of tensors gathered from the whole arrays at once.

    Memory-mapped splits (:class:`~.shards.ShardedArray`): a batch of scattered rows (training)
    is read shard by shard with ``os.pread`` (nothing mapped); a batch of consecutive rows
    (evaluation) is copied from the mapping, and after about ``resident_mb`` MB of mapped pages
    the pages are dropped from the process (``madvise(MADV_DONTNEED)``), so the resident set
    stays bounded whatever the split's size."""

    def __init__(self, split: EncodedSplit, resident_mb: float = 256.0) -> None:
        super().__init__()
        self.n = len(split)
        self.arrays: dict[str, Any] = {}
        for k, a in split.arrays().items():
            self.arrays[k] = a if isinstance(a, ShardedArray) else torch.from_numpy(np.ascontiguousarray(a))
        self.resident_bytes = resident_mb * 2**20
        self._touched = 0.0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, rows: Sequence[int]) -> dict[str, torch.Tensor]:  # type: ignore[override]
        idx: torch.Tensor | slice
        if isinstance(rows, range) and rows.step == 1:
            idx = slice(rows.start, rows.stop)
        else:
            idx = torch.as_tensor(list(rows) if isinstance(rows, range) else rows, dtype=torch.long)
        out: dict[str, torch.Tensor] = {}
        mapped = []
        for k, a in self.arrays.items():
            if isinstance(a, ShardedArray):
                if isinstance(idx, slice):
                    t = torch.from_numpy(a[idx])
                    self._touched += (idx.stop - idx.start) * a.dtype.itemsize * int(np.prod(a.shape[1:])) + 8192
                else:
                    t = torch.from_numpy(a[idx.numpy()])  # read with pread: maps nothing
                mapped.append(a)
            else:
                t = a[idx]
            if k in ("categorical", "sequence"):
                t = t.long()
            out["target" if k == "label" else k] = t
        if self._touched > self.resident_bytes:
            for a in mapped:
                a.release()
            self._touched = 0.0
        return out


def oov_report(spec: FeatureSpec) -> dict[str, dict[str, int]]:
    """Per evaluation split, the fields with values unseen in training (mapped to the OOV bucket)."""
    out: dict[str, dict[str, int]] = {}
    for split, s in spec.splits.items():
        if split == spec.meta.get("train_split", "train"):
            continue
        counts = {k: v for k, v in (s.get("oov") or {}).items() if v}
        if counts:
            out[split] = counts
    return out


def data_report(spec: FeatureSpec) -> dict[str, dict[str, Any]]:
    """Per split, what the encoder did to imperfect data: ``na`` (per field: the missing-value
    ``policy`` and its ``missing`` / ``non_finite`` / ``filled`` / ``masked`` / ``dropped``
    counts), ``rows_dropped``, ``oov`` (non-zero counts), ``overlap_with_train`` (evaluation
    rows equal to a training row), ``duplicate_ids`` and ``ids_in_train`` (with ``id_columns``).
    Splits with nothing to report are left out."""
    out: dict[str, dict[str, Any]] = {}
    for split, s in spec.splits.items():
        r: dict[str, Any] = {}
        if s.get("na"):
            r["na"] = s["na"]
        if s.get("rows_dropped"):
            r["rows_dropped"] = s["rows_dropped"]
        oov = {k: v for k, v in (s.get("oov") or {}).items() if v}
        if oov and split != spec.meta.get("train_split", "train"):
            r["oov"] = oov
        for key in ("overlap_with_train", "duplicate_ids", "ids_in_train"):
            if s.get(key):
                r[key] = s[key]
        if r:
            out[split] = r
    return out


def _check_type(key: str, value: Any, kind: type | tuple[type, ...], what: str) -> None:
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ConfigError(f"data.kwargs.{key}={value!r}: expected {what}")
    if not isinstance(value, kind):
        raise ConfigError(f"data.kwargs.{key}={value!r}: expected {what}, got {type(value).__name__}")


class CTRDataModule(L.LightningDataModule):
    """Encoded CTR splits as Lightning data loaders.

    Args:
        folder: an encoded dataset folder (:func:`~.encoder.encode_dataset`).
        batch_size: training batch size (BARS: 4096).
        eval_batch_size: validation/test batch size (default ``batch_size``).
        in_memory: load the arrays into RAM (default) instead of memory-mapping the shards
            (then batches are gathered from the mapped shards and the mapped pages are dropped
            after about ``resident_mb`` MB: a bounded working set whatever the split's size).
        splits: names of the train/validation/test splits in the folder.
        info: extra provenance (e.g. Frappe's rebuild report), kept as ``self.info``.
        seed: seed of the training order (a permutation per ``(seed, epoch)``); default: the
            harness seed (``$PL_GLOBAL_SEED``, see :func:`~gatelab.core.harness.sampling.default_seed`).
        verify_shards: check every shard file's sha256 against its manifest on opening (sizes,
            dtypes and shapes are always checked).
        resident_mb: with ``in_memory=False``, MB of mapped pages touched before they are dropped.

    Under DDP ``batch_size`` and ``eval_batch_size`` are per rank (see the module docstring).
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        batch_size: int = 4096,
        eval_batch_size: int | None = None,
        *,
        in_memory: bool = True,
        splits: Mapping[str, str] | None = None,
        info: Mapping[str, Any] | None = None,
        seed: int | None = None,
        verify_shards: bool = False,
        resident_mb: float = 256.0,
    ) -> None:
        super().__init__()
        _check_type("batch_size", batch_size, int, "an integer >= 1")
        if eval_batch_size is not None:
            _check_type("eval_batch_size", eval_batch_size, int, "an integer >= 1")
        if seed is not None:
            _check_type("seed", seed, int, "an integer >= 0")
        if batch_size < 1:
            raise ConfigError(f"data.kwargs.batch_size must be >= 1, got {batch_size}")
        if eval_batch_size is not None and eval_batch_size < 1:
            raise ConfigError(f"data.kwargs.eval_batch_size must be >= 1, got {eval_batch_size}")
        if seed is not None and seed < 0:
            raise ConfigError(f"data.kwargs.seed must be >= 0, got {seed}")
        self.seed = default_seed() if seed is None else int(seed)
        self.folder = Path(folder)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.resident_mb = float(resident_mb)
        self.spec, self.encoded = load_encoded(
            self.folder, mmap_mode=None if in_memory else "r", verify=bool(verify_shards)
        )
        self.split_names = {"train": "train", "val": "valid", "test": "test", **dict(splits or {})}
        for stage, name in self.split_names.items():
            if name not in self.encoded:
                raise CTRDataError(
                    f"{self.folder}: no {name!r} split for {stage} (have {sorted(self.encoded)})"
                )
        self.info = dict(info or {})
        self._preprocessing: dict[str, Any] | None = None
        #: per split, the missing-value policies applied, rows dropped, OOV and train-overlap counts
        self.report = data_report(self.spec)
        for split, r in self.report.items():
            rest = {k: v for k, v in r.items() if k != "oov"}
            if rest:
                log.warning("gatelab.recsys: %s: %s", split, rest)
        for split, counts in oov_report(self.spec).items():
            total = sum(counts.values())
            log.warning(
                "gatelab.recsys: %s: %d value(s) unseen in training mapped to the OOV bucket (%s)",
                split,
                total,
                ", ".join(f"{k} {v}" for k, v in counts.items()),
            )

    def summary(self) -> dict[str, Any]:
        """Rows per split and :attr:`report` (what was done to imperfect data), JSON-ready."""
        return {
            "folder": str(self.folder),
            "rows": {s: int(v.get("rows", 0)) for s, v in self.spec.splits.items()},
            "report": self.report,
        }

    def model_kwargs(self) -> dict[str, Any]:
        """Sizes the model: ``{"feature_spec": spec.model_dict()}``."""
        return {"feature_spec": self.spec.model_dict()}

    def preprocessing(self) -> dict[str, Any]:
        """What the model needs to score new rows (stored in every task checkpoint, written to
        ``preprocessing.json`` by ``gatelab export``; read by :mod:`gatelab.recsys.predict`):

        ``{"kind": "ctr", "format": 1, "label", "id_columns", "min_count", "fields", "vocab"}`` where
        ``fields`` are the fitted :class:`~.spec.FieldSpec` dicts in model order (type, raw column,
        ``preprocess``, ``fill_na``, ``normalizer`` with the training ``stats``, ``splitter``,
        ``max_len``, ``min_count``, sizes) and ``vocab`` maps each categorical/sequence field to its
        tokens, index ``i + 1`` for ``vocab[field][i]``; any other token (unseen in training or
        rarer than ``min_count``) and a missing value go to the OOV index ``num_tokens + 1``.
        ``id_columns`` are the encoded dataset's declared row-id columns (``spec.meta``; none:
        ``gatelab predict`` numbers the rows).
        """
        if self._preprocessing is None:
            path = self.folder / "vocab.json"
            try:
                vocab = json.loads(path.read_text())
            except FileNotFoundError:
                raise CTRDataError(f"{path}: not found (the encoded dataset has no vocabularies)") from None
            need = [f.name for f in self.spec.fields if f.type != "numeric"]
            missing = [n for n in need if n not in vocab]
            if missing:
                raise CTRDataError(f"{path}: no vocabulary for field(s) {missing}")
            self._preprocessing = {
                "kind": "ctr",
                "format": 1,
                "label": self.spec.label,
                "id_columns": list(self.spec.meta.get("id_columns") or []),
                "min_count": self.spec.meta.get("min_count"),
                "fields": [f.to_dict() for f in self.spec.fields],
                "vocab": {n: list(vocab[n]) for n in need},
            }
        return self._preprocessing

    def _loader(self, stage: str, shuffle: bool) -> DataLoader:
        bs = self.batch_size if stage == "train" else self.eval_batch_size
        ds = _Batches(self.encoded[self.split_names[stage]], self.resident_mb)
        num_replicas, rank = replicas(self.trainer)
        sampler = EpochBatchSampler(
            len(ds),
            bs,
            shuffle=shuffle,
            seed=self.seed,
            num_replicas=num_replicas,
            rank=rank,
            # a 1-row training batch breaks BatchNorm: such a last batch is skipped (on every rank)
            min_rank_batch=2 if shuffle else 1,
        )
        return batch_loader(ds, sampler, batched=True)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


def _readers(
    layout: Layout,
    files: Mapping[str, Path],
    fmt: str,
    header: bool,
    sep: str | None,
    block_size: int,
    read_ahead: int = DEFAULT_READ_AHEAD,
) -> dict[str, Reader]:
    readers: dict[str, Reader] = {}
    for split, path in files.items():
        if fmt in ("csv", "tsv"):
            kw: dict[str, Any] = {"header": header, "block_size": block_size, "read_ahead": read_ahead}
            if not header:
                if layout.names is None:
                    raise ConfigError(f"layout {layout.name!r}: header=False needs column names")
                kw["names"] = list(layout.names)
            if sep is not None:
                kw["sep"] = sep
            readers[split] = make_reader(path, fmt, **kw)
        elif fmt in ("libsvm", "libfm"):
            names = [f.get("column") or f["name"] for f in layout.fields]
            numeric = [f.get("column") or f["name"] for f in layout.fields if f["type"] == "numeric"]
            readers[split] = make_reader(
                path, "libsvm", names=names, numeric=numeric, block_size=block_size, read_ahead=read_ahead
            )
        else:
            readers[split] = make_reader(path, fmt)
    return readers


def _prepare(
    data_dir: str | os.PathLike[str],
    dataset: str,
    layout: Layout,
    cache_root: Path,
    *,
    files: Mapping[str, str] | None,
    fields: Sequence[Mapping[str, Any]] | None,
    label: str | None,
    fmt: str | None,
    header: bool | None,
    sep: str | None,
    min_count: int | None,
    negative_label: float | None,
    negative_seed: int,
    block_size: int,
    verify: bool,
    id_columns: Sequence[str] | None,
    strict_overlap: bool,
    read_ahead: int = DEFAULT_READ_AHEAD,
    check_overlap: bool = True,
    num_encode_workers: int = 1,
    shard_rows: int = DEFAULT_SHARD_ROWS,
) -> tuple[Path, dict[str, Any]]:
    """Locate the files, rebuild Frappe's train split if needed, and encode (or reuse the cache)."""
    info: dict[str, Any] = {}
    if files is not None:
        root = Path(data_dir)
        paths = {k: (Path(v) if Path(v).is_absolute() else root / v) for k, v in files.items()}
    else:
        if layout.dataset is None:
            raise ConfigError(f"data.kwargs: dataset={dataset!r} needs files")
        folder = locate(layout.dataset, data_dir, verify=verify)
        if dataset == "frappe":
            from .frappe import prepare_frappe_x1

            paths, info = prepare_frappe_x1(folder, cache_root, seed=negative_seed)
        else:
            paths = {}
            for split, rel in layout.files.items():
                p = folder / rel
                paths[split] = p if p.exists() or not Path(f"{p}.gz").exists() else Path(f"{p}.gz")
    if "train" not in paths:
        raise ConfigError(f"data.kwargs: dataset={dataset!r} has no train file (files: {sorted(paths)})")
    layout_fields = tuple(fields) if fields is not None else layout.fields
    eff = Layout(
        layout.name,
        layout.description,
        layout.dataset,
        layout.files,
        fmt or layout.fmt,
        layout_fields,
        label=label or layout.label,
        header=layout.header if header is None else header,
        names=layout.names,
        min_count=layout.min_count if min_count is None else min_count,
        negative_label=layout.negative_label if negative_label is None else negative_label,
        id_columns=layout.id_columns if id_columns is None else tuple(id_columns),
    )
    readers = _readers(eff, paths, eff.fmt, eff.header, sep, block_size, read_ahead)
    folder = encode_dataset(
        readers,
        eff.fields,
        cache_root,
        name=dataset,
        label=eff.label,
        min_count=eff.min_count,
        negative_label=eff.negative_label,
        meta={"layout": dataset, "prepare": info},
        id_columns=eff.id_columns,
        strict_overlap=strict_overlap,
        check_overlap=check_overlap,
        num_workers=num_encode_workers,
        shard_rows=shard_rows,
    )
    return folder, info


@contextlib.contextmanager
def _cache_lock(root: Path, name: str) -> Iterator[None]:
    """An exclusive file lock on ``<root>/.<name>.lock`` (several processes -- DDP ranks,
    parallel runs -- preparing the same dataset wait for one another)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ctr_datamodule(
    data_dir: str | os.PathLike[str],
    dataset: str = "frappe",
    batch_size: PositiveInt = 4096,
    eval_batch_size: PositiveInt | None = None,
    *,
    files: Mapping[str, str] | None = None,
    fields: Sequence[Mapping[str, Any]] | None = None,
    label: str | None = None,
    fmt: str | None = None,
    header: bool | None = None,
    sep: str | None = None,
    min_count: NonNegativeInt | None = None,
    negative_label: float | None = None,
    negative_seed: int = 2021,
    cache: str | None = None,
    block_size: PositiveInt = DEFAULT_BLOCK_SIZE,
    read_ahead: NonNegativeInt = DEFAULT_READ_AHEAD,
    in_memory: bool = True,
    verify: bool = True,
    seed: int | None = None,
    id_columns: Sequence[str] | None = None,
    strict_overlap: bool = False,
    check_overlap: bool = True,
    num_encode_workers: PositiveInt = 1,
    shard_rows: PositiveInt = DEFAULT_SHARD_ROWS,
) -> CTRDataModule:
    """Build (or reuse) the encoded data of ``dataset`` and return its :class:`CTRDataModule`.

    Args:
        data_dir: the data directory (the harness resolves it).
        dataset: a layout name (``frappe``, ``frappe_x1``, ``criteo_x1``, ``avazu_x1``,
            ``movielenslatest_x1``, ``criteo``, ``avazu``; see :mod:`.layouts`) or ``custom``
            (then ``files`` and ``fields`` are required).
        batch_size, eval_batch_size: batch sizes.
        files: split -> file (absolute, or relative to the data directory); overrides the
            layout's files.
        fields: the fields (FieldSpec dicts); overrides the layout's.
        label, fmt, header, sep, min_count, negative_label: override the layout's reading
            settings (``fmt``: csv, tsv, libsvm, parquet).
        negative_seed: seed of Frappe's negative sampling (``dataset: frappe``).
        cache: cache root (default ``$GATELAB_CACHE/recsys``).
        block_size: bytes of raw text per encoding chunk.
        read_ahead: raw blocks read ahead while encoding (0: none); the raw text held at once
            is at most ``(read_ahead + 1) * block_size``.
        in_memory: load arrays into RAM (else memory-map).
        verify: check the registered files' sha256 when locating the dataset, and the encoded
            shards' sha256 against their manifests.
        seed: seed of the training order (default: the harness seed).
        id_columns: columns that identify a row and may not be read by a field (default: the
            layout's, ``id`` for raw Avazu); the label can never be a field either.
        strict_overlap: fail when a validation/test row has the same feature values as a
            training row (default: count them in the spec and :attr:`CTRDataModule.report` and
            log a warning).
        check_overlap: hash rows to count that overlap (default; ``false`` skips the cost).
        num_encode_workers: processes encoding a plain-text file segment by segment (the
            encoded bytes are the same for any count; ``.gz`` and parquet files: one process).
        shard_rows: rows per memory-mapped shard of the encoded splits.

    Missing, NaN and infinite numeric entries are an error naming file:line and column unless
    the field declares ``na_policy`` (``fill`` with ``fill_na``, ``drop_row``, ``mask``); what
    each policy did is counted per split in :attr:`CTRDataModule.report`.
    """
    for key, value, kind, what in (
        ("batch_size", batch_size, int, "an integer >= 1"),
        ("block_size", block_size, int, "an integer >= 1 (bytes)"),
        ("read_ahead", read_ahead, int, "an integer >= 0 (blocks)"),
        ("in_memory", in_memory, bool, "a boolean"),
        ("strict_overlap", strict_overlap, bool, "a boolean"),
        ("check_overlap", check_overlap, bool, "a boolean"),
        ("num_encode_workers", num_encode_workers, int, "an integer >= 1 (processes)"),
        ("shard_rows", shard_rows, int, "an integer >= 1 (rows)"),
        ("dataset", dataset, str, "a layout name"),
    ):
        _check_type(key, value, kind, what)
    for key, value in (("block_size", block_size), ("num_encode_workers", num_encode_workers), ("shard_rows", shard_rows)):
        if value < 1:
            raise ConfigError(f"data.kwargs.{key}={value!r}: expected an integer >= 1")
    if dataset == "custom":
        if not files or not fields:
            raise ConfigError("data.kwargs: dataset=custom needs files and fields")
        layout = Layout(
            "custom", "custom files", None, dict(files), fmt or "csv", tuple(fields), label=label or "label"
        )
    elif dataset in LAYOUTS:
        layout = LAYOUTS[dataset]
    else:
        raise ConfigError(
            f"data.kwargs.dataset={dataset!r}: unknown; expected one of {', '.join([*LAYOUTS, 'custom'])}"
        )
    cache_root = Path(cache).expanduser() if cache else cache_dir() / "recsys"
    with _cache_lock(cache_root, dataset):
        folder, info = _prepare(
            data_dir,
            dataset,
            layout,
            cache_root,
            files=files,
            fields=fields,
            label=label,
            fmt=fmt,
            header=header,
            sep=sep,
            min_count=min_count,
            negative_label=negative_label,
            negative_seed=negative_seed,
            block_size=block_size,
            verify=verify,
            id_columns=id_columns,
            strict_overlap=strict_overlap,
            read_ahead=read_ahead,
            check_overlap=check_overlap,
            num_encode_workers=num_encode_workers,
            shard_rows=shard_rows,
        )
    return CTRDataModule(
        folder, batch_size, eval_batch_size, in_memory=in_memory, info=info, seed=seed, verify_shards=verify
    )
