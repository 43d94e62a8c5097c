"""Memory-mapped row shards of an encoded split: fixed-size ``.npy`` shards plus a manifest.

A split folder holds, per array (``label``, ``categorical``, ``numeric``, ``numeric_mask``,
``sequence``), the files ``<array>-<k>.npy`` (``k`` = 00000, 00001, ...): shard ``k`` holds
rows ``[k * shard_rows, min((k + 1) * shard_rows, rows))`` of the split, and ``manifest.json``::

    {"format": "gatelab.recsys.data.shards/1", "rows": N, "shard_rows": S,
     "arrays": {"categorical": {"dtype": "<i4", "shape": [F_cat]}, ...},   # shape after the row axis
     "shards": [{"rows": S, "files": {"categorical": {"file": "categorical-00000.npy",
                                                      "bytes": ..., "sha256": "..."}, ...}}, ...]}

:class:`ShardWriter` creates the shard files at their final size (so several processes can fill
disjoint row ranges of the same split) and writes the manifest with each file's size and sha256
once the rows are in. :func:`open_shards` checks the manifest against the files (every file
present, its ``.npy`` header's dtype and shape and its size as the manifest says; the sha256 too
with ``verify=True``) and returns one :class:`ShardedArray` per array; any mismatch is a
:class:`~.readers.CTRDataError` naming the manifest and the shard file.

A :class:`ShardedArray` reads rows by index without loading the split: ``a[rows]`` reads the
scattered rows of each shard with ``os.pread`` (through the page cache, nothing mapped: a page
fault on a mapping would map the kernel's 64 KiB fault-around window per row, i.e. nearly the
whole shard for a random batch), ``a[start:stop]`` copies from the memory-mapped shard, and
:meth:`ShardedArray.release` drops the mapped pages from the process (``madvise(MADV_DONTNEED)``;
the file stays in the page cache). Together they bound the resident set of a training loop over a
split larger than memory.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .readers import CTRDataError

__all__ = ["MANIFEST", "SHARD_FORMAT", "ShardWriter", "ShardedArray", "file_sha256", "open_shards"]

SHARD_FORMAT = "gatelab.recsys.data.shards/1"
MANIFEST = "manifest.json"


def file_sha256(path: str | os.PathLike[str], block: int = 1 << 23) -> str:
    """sha256 of a file, read in ``block``-byte pieces (plain reads: nothing stays mapped)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(block)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def _shard_file(name: str, k: int) -> str:
    return f"{name}-{k:05d}.npy"


class ShardWriter:
    """Creates the shard files of a split of ``rows`` rows and fills them.

    Args:
        folder: the split folder (created).
        rows: rows of the split.
        arrays: ``name -> (dtype, shape after the row axis)``.
        shard_rows: rows per shard (the last shard holds the rest).

    :meth:`write` may be called from several processes on disjoint row ranges (each opens the
    files it touches with ``mode="r+"``); :meth:`finish` (once, after every write) records the
    sizes and sha256 of the files in ``manifest.json``.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        rows: int,
        arrays: Mapping[str, tuple[Any, tuple[int, ...]]],
        shard_rows: int,
        *,
        create: bool = True,
    ) -> None:
        if isinstance(shard_rows, bool) or not isinstance(shard_rows, int) or shard_rows < 1:
            raise CTRDataError(f"shard_rows must be an integer >= 1, got {shard_rows!r}")
        self.folder = Path(folder)
        self.rows = int(rows)
        self.shard_rows = int(shard_rows)
        self.arrays = {k: (np.dtype(dt), tuple(int(s) for s in shape)) for k, (dt, shape) in arrays.items()}
        self.num_shards = max(1, -(-self.rows // self.shard_rows))
        if create:
            self.folder.mkdir(parents=True, exist_ok=True)
            for name, (dt, shape) in self.arrays.items():
                for k in range(self.num_shards):
                    m = np.lib.format.open_memmap(
                        self.folder / _shard_file(name, k), mode="w+", dtype=dt, shape=(self._rows_of(k), *shape)
                    )
                    del m

    def _rows_of(self, k: int) -> int:
        return max(0, min(self.shard_rows, self.rows - k * self.shard_rows))

    def state(self) -> dict[str, Any]:
        """What another process needs to write into these shards (``ShardWriter(**state, create=False)``)."""
        return {
            "folder": str(self.folder),
            "rows": self.rows,
            "arrays": {k: (dt.str, shape) for k, (dt, shape) in self.arrays.items()},
            "shard_rows": self.shard_rows,
        }

    def write(self, start: int, arrays: Mapping[str, np.ndarray]) -> None:
        """Write rows ``[start, start + n)`` of every array (``n`` = rows of the given arrays)."""
        n = len(next(iter(arrays.values())))
        if start < 0 or start + n > self.rows:
            raise CTRDataError(f"{self.folder}: rows [{start}, {start + n}) outside the split's {self.rows} rows")
        row = start
        while row < start + n:
            k = row // self.shard_rows
            lo = row - k * self.shard_rows
            take = min(self.shard_rows - lo, start + n - row)
            for name, a in arrays.items():
                m = np.load(self.folder / _shard_file(name, k), mmap_mode="r+")
                m[lo : lo + take] = a[row - start : row - start + take]
                m.flush()
                del m
            row += take

    def checksum(self, name: str, k: int) -> dict[str, Any]:
        """The manifest entry of shard ``k`` of array ``name`` (file, bytes, sha256)."""
        p = self.folder / _shard_file(name, k)
        return {"file": p.name, "bytes": p.stat().st_size, "sha256": file_sha256(p)}

    def finish(self, checksums: Mapping[tuple[str, int], Mapping[str, Any]] | None = None) -> dict[str, Any]:
        """Write ``manifest.json`` (computing the checksums not given) and return it."""
        checksums = dict(checksums or {})
        shards = []
        for k in range(self.num_shards):
            files = {}
            for name in self.arrays:
                files[name] = dict(checksums.get((name, k)) or self.checksum(name, k))
            shards.append({"rows": self._rows_of(k), "files": files})
        manifest = {
            "format": SHARD_FORMAT,
            "rows": self.rows,
            "shard_rows": self.shard_rows,
            "arrays": {k: {"dtype": dt.str, "shape": list(shape)} for k, (dt, shape) in self.arrays.items()},
            "shards": shards,
        }
        tmp = self.folder / f"{MANIFEST}.tmp"
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
        tmp.replace(self.folder / MANIFEST)
        return manifest


class ShardedArray:
    """Rows of one array spread over memory-mapped shards of ``shard_rows`` rows.

    ``len(a)``, ``a.shape``, ``a.dtype``; ``a[i]``, ``a[start:stop]``, ``a[index_array]`` (any
    order) and ``a[rows, ...]`` with further indices gather rows into a new in-memory array;
    ``numpy.asarray(a)`` concatenates every shard (only for splits that fit in memory)."""

    def __init__(self, shards: list[np.ndarray], shard_rows: int, dtype: np.dtype, shape: tuple[int, ...]) -> None:
        self.shards = shards
        self.shard_rows = int(shard_rows)
        self.dtype = np.dtype(dtype)
        self.rows = sum(len(s) for s in shards)
        self.shape = (self.rows, *shape)
        self.ndim = len(self.shape)
        self.row_bytes = self.dtype.itemsize * int(np.prod(shape, dtype=np.int64))
        #: (file, data offset) per shard: scattered rows are read with ``os.pread``, not through the
        #: mapping (a page fault maps the kernel's fault-around window, 64 KiB, per row touched)
        self._files = (
            [(str(m.filename), int(m.offset)) for m in shards]
            if all(isinstance(m, np.memmap) and m.filename for m in shards)
            else None
        )
        self._fds: dict[int, int] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_fds"] = {}
        return state

    def __del__(self) -> None:
        for fd in getattr(self, "_fds", {}).values():
            try:
                os.close(fd)
            except OSError:
                pass

    def _read_rows(self, s: int, local: np.ndarray) -> np.ndarray:
        """Rows ``local`` (sorted) of shard ``s`` read with ``os.pread`` (nothing stays mapped)."""
        assert self._files is not None
        path, base = self._files[s]
        fd = self._fds.get(s)
        if fd is None:
            fd = self._fds[s] = os.open(path, os.O_RDONLY)
        rb = self.row_bytes
        buf = b"".join([os.pread(fd, rb, base + r * rb) for r in local.tolist()])
        if len(buf) != rb * len(local):
            raise CTRDataError(f"{path}: short read ({len(buf)} of {rb * len(local)} bytes): the shard file changed")
        return np.frombuffer(buf, self.dtype).reshape(len(local), *self.shape[1:])

    def __len__(self) -> int:
        return self.rows

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = np.concatenate(self.shards) if self.shards else np.empty(self.shape, self.dtype)
        return out if dtype is None else out.astype(dtype)

    def _gather(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        if rows.ndim != 1:
            raise IndexError(f"ShardedArray: row index must be 1-d, got shape {rows.shape}")
        if len(rows) and (rows.min() < -self.rows or rows.max() >= self.rows):
            raise IndexError(f"ShardedArray: row index out of range for {self.rows} rows")
        rows = np.where(rows < 0, rows + self.rows, rows)
        order = np.argsort(rows, kind="stable")  # read each shard in file order
        srt = rows[order]
        got = np.empty((len(rows), *self.shape[1:]), self.dtype)
        k = srt // self.shard_rows
        bounds = np.searchsorted(k, np.arange(len(self.shards) + 1))
        for s in range(len(self.shards)):
            lo, hi = bounds[s], bounds[s + 1]
            if hi > lo:
                local = srt[lo:hi] - s * self.shard_rows
                got[lo:hi] = self._read_rows(s, local) if self._files is not None else self.shards[s][local]
        out = np.empty_like(got)
        out[order] = got
        return out

    def __getitem__(self, index: Any) -> Any:
        rest: tuple[Any, ...] = ()
        if isinstance(index, tuple):
            index, rest = index[0], index[1:]
        if isinstance(index, (int, np.integer)):
            i = int(index) + (self.rows if index < 0 else 0)
            if not 0 <= i < self.rows:
                raise IndexError(f"ShardedArray: row {index} out of range for {self.rows} rows")
            k = i // self.shard_rows
            out = self.shards[k][i - k * self.shard_rows]
        elif isinstance(index, slice):
            start, stop, step = index.indices(self.rows)
            if step == 1:
                parts = []
                row = start
                while row < stop:
                    k = row // self.shard_rows
                    lo = row - k * self.shard_rows
                    take = min(self.shard_rows - lo, stop - row)
                    parts.append(self.shards[k][lo : lo + take])
                    row += take
                out = np.concatenate(parts) if parts else np.empty((0, *self.shape[1:]), self.dtype)
            else:
                out = self._gather(np.arange(start, stop, step))
        else:
            out = self._gather(np.asarray(index))
        if not rest:
            return out
        return out[rest] if isinstance(index, (int, np.integer)) else out[(slice(None), *rest)]

    def tolist(self) -> list[Any]:
        return np.asarray(self).tolist()

    def release(self) -> None:
        """Drop this array's mapped pages from the process's resident set (``MADV_DONTNEED``;
        the data stays in the page cache and is faulted back in on the next access)."""
        for s in self.shards:
            mm = getattr(s, "_mmap", None)
            if isinstance(mm, mmap.mmap) and hasattr(mm, "madvise"):
                mm.madvise(mmap.MADV_DONTNEED)


def _load_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        m = json.loads(path.read_text())
    except FileNotFoundError:
        raise CTRDataError(f"{path}: not found ({folder} is not an encoded split)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CTRDataError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(m, dict) or m.get("format") != SHARD_FORMAT:
        got = m.get("format") if isinstance(m, dict) else type(m).__name__
        raise CTRDataError(f"{path}: format {got!r}, expected {SHARD_FORMAT!r}")
    for key, kind in (("rows", int), ("shard_rows", int), ("arrays", dict), ("shards", list)):
        if not isinstance(m.get(key), kind) or isinstance(m.get(key), bool):
            raise CTRDataError(f"{path}: key {key!r} is {m.get(key)!r}, expected a {kind.__name__}")
    return m


def open_shards(
    folder: str | os.PathLike[str], mmap_mode: str | None = "r", *, verify: bool = False
) -> tuple[dict[str, Any], dict[str, ShardedArray | np.ndarray]]:
    """The manifest and the arrays of the split in ``folder``.

    ``mmap_mode="r"``: each array is a :class:`ShardedArray` over memory-mapped shards; ``None``:
    each array is loaded into one in-memory ``numpy`` array. Every shard file must exist with the
    dtype, shape and size the manifest gives (``verify=True``: and its sha256); otherwise a
    :class:`~.readers.CTRDataError` names the manifest, the shard file and the mismatch."""
    folder = Path(folder)
    m = _load_manifest(folder)
    mpath = folder / MANIFEST
    rows, shard_rows = m["rows"], m["shard_rows"]
    expected_shards = max(1, -(-rows // shard_rows)) if shard_rows > 0 else -1
    if shard_rows < 1 or rows < 0 or len(m["shards"]) != expected_shards:
        raise CTRDataError(
            f"{mpath}: {len(m['shards'])} shard(s) listed, but {rows} rows at shard_rows={shard_rows} "
            f"need {expected_shards}"
        )
    total = sum(int(s.get("rows", -1)) for s in m["shards"])
    if total != rows:
        raise CTRDataError(f"{mpath}: the shards' rows add up to {total}, the manifest says rows={rows}")
    out: dict[str, ShardedArray | np.ndarray] = {}
    for name, info in m["arrays"].items():
        dtype = np.dtype(info["dtype"])
        shape = tuple(info["shape"])
        parts: list[np.ndarray] = []
        for k, s in enumerate(m["shards"]):
            entry = (s.get("files") or {}).get(name)
            if not isinstance(entry, dict) or "file" not in entry:
                raise CTRDataError(f"{mpath}: shard {k} has no file for array {name!r}")
            p = folder / entry["file"]
            if not p.is_file():
                raise CTRDataError(f"{mpath}: shard file {p} (array {name!r}, shard {k}) is missing")
            size = p.stat().st_size
            if size != entry.get("bytes"):
                raise CTRDataError(
                    f"{p}: {size} bytes, the manifest {mpath} says {entry.get('bytes')} (truncated or replaced "
                    "shard file)"
                )
            if verify:
                digest = file_sha256(p)
                if digest != entry.get("sha256"):
                    raise CTRDataError(
                        f"{p}: sha256 {digest[:16]}... differs from the manifest's {str(entry.get('sha256'))[:16]}... "
                        f"({mpath}): the shard file is corrupt"
                    )
            try:
                a = np.load(p, mmap_mode=mmap_mode, allow_pickle=False)
            except (ValueError, OSError) as e:
                raise CTRDataError(f"{p}: not a readable .npy shard ({e}); manifest {mpath}") from None
            if a.dtype != dtype or a.shape != (s["rows"], *shape):
                raise CTRDataError(
                    f"{p}: dtype {a.dtype} shape {a.shape}, the manifest {mpath} says dtype {dtype} shape "
                    f"{(s['rows'], *shape)}"
                )
            parts.append(a)
        if mmap_mode is None:
            out[name] = np.concatenate(parts) if len(parts) > 1 else parts[0]
        else:
            out[name] = ShardedArray(parts, shard_rows, dtype, shape)
    return m, out
