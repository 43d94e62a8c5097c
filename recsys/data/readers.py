"""Streaming readers of raw CTR files: CSV/TSV (Criteo, Avazu, BARS x1 layouts), libsvm/libfm, parquet.

Every reader yields :class:`RawChunk` objects -- a ``pyarrow.Table`` of raw columns plus the file
line number of its first row -- so an arbitrarily large file is processed with bounded memory
(``block_size`` bytes of text per chunk for CSV/libsvm, ``batch_rows`` rows for parquet).
Columns are read as strings (``null`` for an empty field), so tokens are exactly the text in
the file and the same in every split; the encoder casts numeric columns itself.

Line numbers count physical lines (1-based, the header is line 1 when there is one); they
assume no field contains a line break, which holds for every CTR format here. A row with the
wrong number of fields raises :class:`CTRDataError` naming the file and line (found by
re-scanning the file only on that error path).
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from gatelab.core.harness.errors import DataError

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "CTRDataError",
    "CsvReader",
    "LibsvmReader",
    "ParquetReader",
    "RawChunk",
    "Reader",
    "make_reader",
]

#: bytes of raw text per chunk (pyarrow block size): ~0.5-1M Criteo lines
DEFAULT_BLOCK_SIZE = 1 << 26


class CTRDataError(DataError, ValueError):
    """Bad CTR input (malformed line, bad label, unparsable number); names file and line."""


@dataclasses.dataclass
class RawChunk:
    """A chunk of raw rows: string (or typed, for parquet) columns and where they start."""

    table: pa.Table
    first_line: int  # file line (1-based) of the chunk's first row; parquet: row number
    unit: str = "line"
    rows: np.ndarray | None = None  # after take(): each kept row's position in the raw chunk

    def line_of(self, row: int) -> int:
        """File line (parquet: row number) of row ``row`` of this chunk."""
        return self.first_line + int(row if self.rows is None else self.rows[row])

    def where(self, path: Path | str, row: int) -> str:
        """``file:line`` (parquet: ``file: row N``) of row ``row``, for error messages."""
        if self.unit == "line":
            return f"{path}:{self.line_of(row)}"
        return f"{path}: row {self.line_of(row)}"

    def take(self, keep: np.ndarray) -> RawChunk:
        """The chunk restricted to rows ``keep`` (indices), still mapping rows to file lines."""
        keep = np.asarray(keep, dtype=np.int64)
        rows = keep if self.rows is None else self.rows[keep]
        return RawChunk(self.table.take(pa.array(keep)), self.first_line, self.unit, rows)


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _stat(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


class Reader:
    """Base class: ``iter_chunks()`` and ``describe()`` (used to fingerprint the cache)."""

    path: Path
    columns: list[str]

    def iter_chunks(self) -> Iterator[RawChunk]:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError


class CsvReader(Reader):
    """Delimited text (CSV, TSV), plain or ``.gz``.

    Args:
        path: the file.
        sep: field separator (``","``; ``"\\t"`` for Criteo's raw TSV).
        header: the first line holds the column names.
        names: column names when there is no header (required then; must match the field count).
        quoting: honour ``"`` quotes (off for TSV).
        block_size: bytes of text per chunk.
        columns: read only these columns (default all).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        sep: str = ",",
        header: bool = True,
        names: Sequence[str] | None = None,
        quoting: bool = True,
        block_size: int = DEFAULT_BLOCK_SIZE,
        columns: Sequence[str] | None = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise CTRDataError(f"{self.path}: file not found")
        if len(sep) != 1:
            raise CTRDataError(f"{self.path}: separator must be one character, got {sep!r}")
        self.sep, self.header, self.quoting, self.block_size = sep, header, quoting, int(block_size)
        if header:
            file_names = self._header_names()
            if names is not None and list(names) != file_names:
                raise CTRDataError(
                    f"{self.path}: header {file_names} differs from the expected columns {list(names)}"
                )
            self.all_columns = file_names
        else:
            if names is None:
                raise CTRDataError(f"{self.path}: a file without header needs column names")
            self.all_columns = list(names)
        dup = sorted({c for c in self.all_columns if self.all_columns.count(c) > 1})
        if dup:
            raise CTRDataError(f"{self.path}: duplicate column names {dup}")
        if columns is not None:
            missing = [c for c in columns if c not in self.all_columns]
            if missing:
                raise CTRDataError(
                    f"{self.path}: columns {missing} not found; the file has {self.all_columns}"
                )
        self.columns = list(columns) if columns is not None else list(self.all_columns)

    def _header_names(self) -> list[str]:
        with _open_text(self.path) as f:
            line = f.readline()
        if not line:
            raise CTRDataError(f"{self.path}: empty file (no header line)")
        row = next(
            csv.reader(
                [line.rstrip("\r\n")],
                delimiter=self.sep,
                quoting=csv.QUOTE_MINIMAL if self.quoting else csv.QUOTE_NONE,
            )
        )
        return [c.strip() for c in row]

    def describe(self) -> dict[str, Any]:
        return {
            "reader": "csv",
            **_stat(self.path),
            "sep": self.sep,
            "header": self.header,
            "columns": self.columns,
        }

    def _line_fields(self, line: str) -> int:
        if self.quoting:
            return len(next(csv.reader([line], delimiter=self.sep)))
        return line.count(self.sep) + 1

    def _find_bad_line(self) -> tuple[int, int] | None:
        """(line number, field count) of the first line whose field count is wrong."""
        expected = len(self.all_columns)
        with _open_text(self.path) as f:
            for i, raw in enumerate(f, start=1):
                if i == 1 and self.header:
                    continue
                line = raw.rstrip("\r\n")
                if not line:
                    continue  # pyarrow skips empty lines
                n = self._line_fields(line)
                if n != expected:
                    return i, n
        return None

    def _raise_parse_error(self, err: Exception) -> None:
        bad = self._find_bad_line()
        if bad is not None:
            line, n = bad
            raise CTRDataError(
                f"{self.path}:{line}: malformed line: expected {len(self.all_columns)} fields "
                f"({self.sep!r}-separated), got {n}"
            ) from None
        raise CTRDataError(f"{self.path}: could not parse ({err})") from None

    def iter_chunks(self) -> Iterator[RawChunk]:
        read = pcsv.ReadOptions(
            block_size=self.block_size,
            column_names=None if self.header else self.all_columns,
            skip_rows=0,
            autogenerate_column_names=False,
        )
        parse = pcsv.ParseOptions(delimiter=self.sep, quote_char='"' if self.quoting else False)
        convert = pcsv.ConvertOptions(
            column_types={c: pa.string() for c in self.all_columns},
            include_columns=self.columns,
            strings_can_be_null=True,
            null_values=[""],
        )
        line = 2 if self.header else 1
        try:
            reader = pcsv.open_csv(
                pa.input_stream(str(self.path), compression="detect"),
                read_options=read,
                parse_options=parse,
                convert_options=convert,
            )
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                yield RawChunk(pa.Table.from_batches([batch]), line)
                line += batch.num_rows
        except pa.ArrowInvalid as e:
            self._raise_parse_error(e)


class LibsvmReader(Reader):
    """libsvm / libfm lines ``label idx:val idx:val ...`` with one entry per field, in field order
    (the NFM/AFN files behind Frappe_x1, Criteo_x1, Avazu_x1, MovielensLatest_x1).

    Column ``label`` holds the label as written (``-1`` for NFM's negatives; the encoder maps
    it with ``negative_label``); field ``k`` (named ``names[k]``) holds the feature index (text
    before ``:``) or, for the names in ``numeric``, the value (text after ``:``).

    Args:
        path: the file (plain or ``.gz``; CRLF line ends are fine).
        names: field names, one per ``idx:val`` entry (default ``f0, f1, ...`` from the first line).
        numeric: fields whose value (not index) is kept.
        block_size: bytes of text per chunk.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        names: Sequence[str] | None = None,
        numeric: Sequence[str] = (),
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise CTRDataError(f"{self.path}: file not found")
        with _open_text(self.path) as f:
            first = f.readline().strip()
        if not first:
            raise CTRDataError(f"{self.path}: empty file")
        n_fields = len(first.split(" ")) - 1
        if names is None:
            names = [f"f{i}" for i in range(n_fields)]
        elif len(names) != n_fields:
            raise CTRDataError(
                f"{self.path}:1: {n_fields} idx:val entries, but {len(names)} field names were given"
            )
        self.names = list(names)
        unknown = sorted(set(numeric) - set(self.names))
        if unknown:
            raise CTRDataError(f"{self.path}: numeric fields {unknown} are not among {self.names}")
        self.numeric = set(numeric)
        self.block_size = int(block_size)
        self.columns = ["label", *self.names]

    def describe(self) -> dict[str, Any]:
        return {"reader": "libsvm", **_stat(self.path), "names": self.names, "numeric": sorted(self.numeric)}

    def _find_bad_line(self) -> tuple[int, str] | None:
        with _open_text(self.path) as f:
            for i, raw in enumerate(f, start=1):
                line = raw.strip()
                if not line:
                    continue
                parts = line.split(" ")
                if len(parts) != len(self.names) + 1:
                    return i, f"expected {len(self.names)} idx:val entries, got {len(parts) - 1}"
                bad = [p for p in parts[1:] if p.count(":") != 1]
                if bad:
                    return i, f"entry {bad[0]!r} is not idx:val"
        return None

    def iter_chunks(self) -> Iterator[RawChunk]:
        read = pcsv.ReadOptions(block_size=self.block_size, column_names=self.columns)
        parse = pcsv.ParseOptions(delimiter=" ", quote_char=False)
        convert = pcsv.ConvertOptions(
            column_types={c: pa.string() for c in self.columns}, strings_can_be_null=True, null_values=[""]
        )
        line = 1
        try:
            reader = pcsv.open_csv(
                pa.input_stream(str(self.path), compression="detect"),
                read_options=read,
                parse_options=parse,
                convert_options=convert,
            )
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                cols = {"label": batch.column(0)}
                for k, name in enumerate(self.names):
                    col = batch.column(k + 1)
                    parts = pc.split_pattern(col, ":", max_splits=1)
                    if pc.any(pc.not_equal(pc.list_value_length(parts), 2)).as_py():
                        bad = pc.index(pc.not_equal(pc.list_value_length(parts), 2), True).as_py()
                        raise CTRDataError(
                            f"{self.path}:{line + bad}: entry {col[bad].as_py()!r} of field {name!r} is not idx:val"
                        )
                    cols[name] = pc.list_element(parts, 1 if name in self.numeric else 0)
                yield RawChunk(pa.table(cols), line)
                line += batch.num_rows
        except pa.ArrowInvalid as e:
            bad = self._find_bad_line()
            if bad is not None:
                raise CTRDataError(f"{self.path}:{bad[0]}: malformed line: {bad[1]}") from None
            raise CTRDataError(f"{self.path}: could not parse ({e})") from None


class ParquetReader(Reader):
    """A parquet file read in row batches (``batch_rows``); positions are row numbers (1-based)."""

    def __init__(
        self, path: str | os.PathLike[str], *, batch_rows: int = 1 << 20, columns: Sequence[str] | None = None
    ) -> None:
        import pyarrow.parquet as pq

        self.path = Path(path)
        if not self.path.is_file():
            raise CTRDataError(f"{self.path}: file not found")
        self._file = pq.ParquetFile(str(self.path))
        names = self._file.schema_arrow.names
        if columns is not None:
            missing = [c for c in columns if c not in names]
            if missing:
                raise CTRDataError(f"{self.path}: columns {missing} not found; the file has {names}")
        self.columns = list(columns) if columns is not None else list(names)
        self.batch_rows = int(batch_rows)

    def describe(self) -> dict[str, Any]:
        return {"reader": "parquet", **_stat(self.path), "columns": self.columns}

    def iter_chunks(self) -> Iterator[RawChunk]:
        row = 1
        for batch in self._file.iter_batches(batch_size=self.batch_rows, columns=self.columns):
            if batch.num_rows == 0:
                continue
            yield RawChunk(pa.Table.from_batches([batch]), row, unit="row")
            row += batch.num_rows


def make_reader(path: str | os.PathLike[str], fmt: str | None = None, **kwargs: Any) -> Reader:
    """A reader for ``path`` by format: ``csv``, ``tsv``, ``libsvm``/``libfm`` or ``parquet``
    (default: from the suffix, ignoring ``.gz``)."""
    p = Path(path)
    if fmt is None:
        suffixes = [s for s in p.suffixes if s != ".gz"]
        fmt = suffixes[-1].lstrip(".") if suffixes else "csv"
        fmt = {"txt": "csv", "libfm": "libsvm"}.get(fmt, fmt)
    if fmt == "csv":
        return CsvReader(p, **kwargs)
    if fmt == "tsv":
        return CsvReader(p, sep="\t", quoting=False, **kwargs)
    if fmt in ("libsvm", "libfm"):
        return LibsvmReader(p, **kwargs)
    if fmt == "parquet":
        return ParquetReader(p, **kwargs)
    raise CTRDataError(f"{p}: unknown format {fmt!r}; expected csv, tsv, libsvm, libfm or parquet")
