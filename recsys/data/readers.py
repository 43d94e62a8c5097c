"""Streaming readers of raw CTR files: CSV/TSV (Criteo, Avazu, BARS x1 layouts), libsvm/libfm, parquet.

Every reader yields :class:`RawChunk` objects -- a ``pyarrow.Table`` of raw columns plus the file
line number of its first row -- so an arbitrarily large file is processed with bounded memory
(``block_size`` bytes of text per chunk for CSV/libsvm, ``batch_rows`` rows for parquet).

Text files are cut into blocks of whole lines here (plain or ``.gz`` through Python's ``gzip``)
and each block is parsed by ``pyarrow.csv.read_csv``; ``pyarrow.csv.open_csv`` is not used
because its background reader runs up to 32 blocks ahead of the consumer (Arrow's fixed
``MakeBackgroundGenerator`` queue), i.e. ~2 GB resident at 64 MiB blocks. Here one background
thread reads at most ``read_ahead`` blocks ahead (default 1; 0 reads in the caller's thread),
so the raw text held at once is at most ``(read_ahead + 1) * block_size`` plus one partial line.

Every error names the file: invalid UTF-8 (line and byte offset), a truncated or corrupt gzip
stream (the last complete line), a malformed line (line and field count), header problems.
Columns are read as strings (``null`` for an empty field), so tokens are exactly the text in
the file and the same in every split; the encoder casts numeric columns itself.

Line numbers count physical lines (1-based, the header is line 1 when there is one); they
assume no field contains a line break, which holds for every CTR format here. A row with the
wrong number of fields raises :class:`CTRDataError` naming the file and line (found by
re-scanning the failing block only, on that error path).
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import os
import queue
import threading
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from gatelab.core.harness.errors import DataError

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "DEFAULT_READ_AHEAD",
    "CTRDataError",
    "CsvReader",
    "LibsvmReader",
    "ParquetReader",
    "RawChunk",
    "Reader",
    "Segment",
    "make_reader",
]

#: bytes of raw text per chunk: ~0.3M Criteo lines
DEFAULT_BLOCK_SIZE = 1 << 26
#: raw blocks read ahead by the background reading thread
DEFAULT_READ_AHEAD = 1


def _check_read_ahead(path: Path, read_ahead: int, block_size: int) -> int:
    for key, v, lo in (("read_ahead", read_ahead, 0), ("block_size", block_size, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise CTRDataError(f"{path}: {key} must be an integer >= {lo}, got {v!r}")
    return int(read_ahead)


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


def _open_binary(path: Path) -> io.BufferedIOBase:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


_GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of every line of ``path`` (plain or ``.gz``), decoded as UTF-8.

    Invalid UTF-8 raises :class:`CTRDataError` naming the file, the line and the byte offset
    (in the decompressed text for ``.gz``); a truncated or corrupt gzip stream names the file
    and the last complete line. A UTF-8 byte order mark before the first line is skipped.
    """
    offset, i = 0, 0
    try:
        with _open_binary(path) as f:
            for i, raw in enumerate(f, start=1):
                if i == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw, offset = raw[3:], 3
                try:
                    yield i, raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise CTRDataError(
                        f"{path}:{i}: invalid UTF-8: byte {raw[e.start : e.start + 1]!r} at byte offset "
                        f"{offset + e.start} of the {'decompressed ' if path.suffix == '.gz' else ''}file "
                        f"(byte {e.start + 1} of the line)"
                    ) from None
                offset += len(raw)
    except _GZIP_ERRORS as e:
        raise CTRDataError(
            f"{path}: corrupt or truncated gzip stream after line {i} ({type(e).__name__}: {e})"
        ) from None
    except OSError as e:  # e.g. "Not a gzipped file"
        raise CTRDataError(f"{path}: cannot read ({type(e).__name__}: {e})") from None


def _first_line(path: Path) -> str:
    for _, line in _lines(path):
        return line
    return ""


def _stat(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


@dataclasses.dataclass
class _Block:
    """Whole lines of raw text: ``data`` starts at file line ``first_line`` and decompressed byte
    ``offset``; ``rows`` (filled on parsing, :func:`_rows_of`) maps each non-empty line to its
    offset from ``first_line`` (``None`` when the block has no empty line)."""

    data: bytes
    first_line: int
    offset: int
    rows: np.ndarray | None


def _non_empty_rows(data: bytes) -> np.ndarray | None:
    """Line offsets of the non-empty lines of ``data`` (``None`` if no line is empty), so
    row numbers still map to file lines where pyarrow skips empty lines."""
    if not (data.startswith((b"\n", b"\r\n")) or b"\n\n" in data or b"\n\r\n" in data):
        return None
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return np.array([k for k, ln in enumerate(lines) if ln.rstrip(b"\r")], dtype=np.int64)


def _rows_of(block: _Block, num_rows: int) -> np.ndarray | None:
    """The line offset of each parsed row of ``block`` (``None``: every line is a row). pyarrow
    skips empty lines, so the map is only built when the block has fewer rows than lines."""
    if block.rows is not None or num_rows == block.data.count(b"\n"):
        return block.rows
    return _non_empty_rows(block.data)


@dataclasses.dataclass
class _Cursor:
    """Where :func:`_cut_lines` is in its file: the next block's first line and byte offset (kept
    up to date while it reads, so an error handler can name the last complete line)."""

    line: int = 1
    offset: int = 0


def _cut_lines(f: BinaryIO, block_size: int, skip_lines: int, at: _Cursor) -> Iterator[tuple[bytes, int, int, bool]]:
    """The one cut rule of :func:`_blocks` and :func:`_segments`: after ``skip_lines`` header
    lines, ``(data, first line, byte offset, whole)`` for each run of whole lines ending at the last
    line end of every ``block_size`` bytes read (a line longer than a block joins the next read);
    a last line without a line end comes last with ``whole`` false (a blank tail is dropped)."""
    rest = b""
    for _ in range(skip_lines):
        head = f.readline()
        at.line += 1
        at.offset += len(head)
    while True:
        buf = f.read(block_size)
        if not buf:
            break
        data = rest + buf if rest else buf
        cut = data.rfind(b"\n")
        if cut < 0:  # no line end yet: keep reading (a line longer than a block)
            rest = data
            continue
        block, rest = data[: cut + 1], data[cut + 1 :]
        yield block, at.line, at.offset, True
        at.line += block.count(b"\n")
        at.offset += len(block)
    if rest.strip():  # last line without a line end
        yield rest, at.line, at.offset, False


def _blocks(path: Path, block_size: int, read_ahead: int, skip_lines: int = 0) -> Iterator[_Block]:
    """The file (plain or ``.gz``) as blocks of whole lines of about ``block_size`` bytes.

    At most ``read_ahead`` further blocks are read ahead by one background thread (0: none, the
    file is read in the consumer's thread), so at most ``read_ahead + 1`` raw blocks (plus one
    partial line) are held at any time. A truncated/corrupt gzip stream raises
    :class:`CTRDataError` naming the file and the last complete line.
    """

    def produce() -> Iterator[_Block]:
        at = _Cursor()
        try:
            with _open_binary(path) as f:
                for data, line, offset, whole in _cut_lines(f, block_size, skip_lines, at):
                    yield _Block(data if whole else data + b"\n", line, offset, None)
        except _GZIP_ERRORS as e:
            raise CTRDataError(
                f"{path}: corrupt or truncated gzip stream after line {at.line - 1} ({type(e).__name__}: {e})"
            ) from None
        except OSError as e:
            raise CTRDataError(f"{path}: cannot read ({type(e).__name__}: {e})") from None

    if read_ahead <= 0:
        yield from produce()
        return
    q: queue.Queue[Any] = queue.Queue(maxsize=read_ahead)
    stop = threading.Event()
    done = object()

    def work() -> None:
        try:
            for b in produce():
                while not stop.is_set():
                    try:
                        q.put(b, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as e:  # handed to the consumer
            q.put(e)

    t = threading.Thread(target=work, name=f"gatelab-read-ahead:{path.name}", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while t.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(timeout=0.1)


@dataclasses.dataclass(frozen=True)
class Segment:
    """A byte range of whole lines of a plain-text file: ``length`` bytes from byte ``start``,
    whose first line is file line ``first_line``; ``index`` is its position in the file.

    A file's segments are exactly the blocks :meth:`Reader.iter_chunks` yields (the same cuts at
    the last line end of every ``block_size`` bytes), so encoding segment by segment -- in one
    process or spread over several -- sees the same chunks in the same order."""

    index: int
    start: int
    length: int
    first_line: int


def _segments(path: Path, block_size: int, skip_lines: int = 0) -> list[Segment]:
    """The :class:`Segment` list of a plain (not ``.gz``) text file: one pass over the file
    reading ``block_size`` bytes at a time (the cut rule of :func:`_blocks`)."""
    out: list[Segment] = []
    try:
        with open(path, "rb") as f:
            for data, line, offset, _ in _cut_lines(f, block_size, skip_lines, _Cursor()):
                out.append(Segment(len(out), offset, len(data), line))
    except OSError as e:
        raise CTRDataError(f"{path}: cannot read ({type(e).__name__}: {e})") from None
    return out


def _read_segment(path: Path, seg: Segment) -> _Block:
    try:
        with open(path, "rb") as f:
            f.seek(seg.start)
            data = f.read(seg.length)
    except OSError as e:
        raise CTRDataError(f"{path}: cannot read ({type(e).__name__}: {e})") from None
    if len(data) != seg.length:
        raise CTRDataError(
            f"{path}: file changed while encoding (segment {seg.index}: {len(data)} of {seg.length} bytes "
            f"at byte {seg.start})"
        )
    if not data.endswith(b"\n"):
        data += b"\n"
    return _Block(data, seg.first_line, seg.start, None)


def _bad_utf8(path: Path, block: _Block) -> CTRDataError | None:
    """The invalid-UTF-8 error of ``block`` (file, line, byte offset), or ``None``."""
    try:
        block.data.decode("utf-8")
        return None
    except UnicodeDecodeError as e:
        pos = e.start
    start = block.data.rfind(b"\n", 0, pos) + 1
    line = block.first_line + block.data.count(b"\n", 0, start)
    where = "decompressed " if path.suffix == ".gz" else ""
    return CTRDataError(
        f"{path}:{line}: invalid UTF-8: byte {block.data[pos : pos + 1]!r} at byte offset "
        f"{block.offset + pos} of the {where}file (byte {pos - start + 1} of the line)"
    )


class Reader:
    """Base class: ``iter_chunks()`` and ``describe()`` (used to fingerprint the cache)."""

    path: Path
    columns: list[str]

    def iter_chunks(self) -> Iterator[RawChunk]:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def segments(self) -> list[Segment] | None:
        """The file's :class:`Segment` list, for encoding chunks in any order or in several
        processes (``None``: a compressed or columnar file, read in order only)."""
        return None

    def read_segment(self, seg: Segment) -> RawChunk | None:  # pragma: no cover - abstract
        """The parsed rows of segment ``seg`` (``None`` if it holds no row)."""
        raise NotImplementedError


class _TextReader(Reader):
    """Shared segment logic of the plain-text readers (``_parse`` turns a block into a chunk)."""

    block_size: int
    _skip_lines: int = 0
    _segment_cache: tuple[tuple[int, int], list[Segment]] | None = None

    def _parse(self, block: _Block) -> RawChunk | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def segments(self) -> list[Segment] | None:
        if self.path.suffix == ".gz":
            return None
        st = self.path.stat()
        stamp = (st.st_size, st.st_mtime_ns)
        if self._segment_cache is None or self._segment_cache[0] != stamp:
            self._segment_cache = (stamp, _segments(self.path, self.block_size, self._skip_lines))
        return self._segment_cache[1]

    def read_segment(self, seg: Segment) -> RawChunk | None:
        return self._parse(_read_segment(self.path, seg))

    def iter_chunks(self) -> Iterator[RawChunk]:
        for block in _blocks(self.path, self.block_size, self.read_ahead, skip_lines=self._skip_lines):
            chunk = self._parse(block)
            if chunk is not None:
                yield chunk


class CsvReader(_TextReader):
    """Delimited text (CSV, TSV), plain or ``.gz``.

    Args:
        path: the file.
        sep: field separator (``","``; ``"\\t"`` for Criteo's raw TSV).
        header: the first line holds the column names.
        names: column names when there is no header (required then; must match the field count).
        quoting: honour ``"`` quotes (off for TSV).
        block_size: bytes of raw (decompressed) text per chunk, cut at a line end.
        columns: read only these columns (default all).
        read_ahead: raw blocks read ahead by a background thread (default 1; 0: none). At most
            ``read_ahead + 1`` raw blocks are held at once, plus the parsed chunk being encoded.
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
        read_ahead: int = DEFAULT_READ_AHEAD,
    ) -> None:
        self.path = Path(path)
        self.read_ahead = _check_read_ahead(self.path, read_ahead, block_size)
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
        self._skip_lines = 1 if header else 0

    def _header_names(self) -> list[str]:
        line = _first_line(self.path)
        if not line.strip():
            raise CTRDataError(f"{self.path}:1: empty file or empty header line (no column names)")
        row = next(
            csv.reader(
                [line.rstrip("\r\n")],
                delimiter=self.sep,
                quoting=csv.QUOTE_MINIMAL if self.quoting else csv.QUOTE_NONE,
            )
        )
        names = [c.strip() for c in row]
        empty = [k + 1 for k, c in enumerate(names) if not c]
        if empty:
            raise CTRDataError(f"{self.path}:1: header column(s) {empty} have no name: {line.rstrip()!r}")
        return names

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

    def _block_error(self, block: _Block, err: BaseException) -> CTRDataError:
        """The error naming file and line of a block pyarrow could not parse."""
        bad = _bad_utf8(self.path, block)
        if bad is not None:
            return bad
        expected = len(self.all_columns)
        for k, raw in enumerate(block.data.decode("utf-8").split("\n")):
            line = raw.rstrip("\r")
            if not line:
                continue  # pyarrow skips empty lines
            n = self._line_fields(line)
            if n != expected:
                return CTRDataError(
                    f"{self.path}:{block.first_line + k}: malformed line: expected {expected} fields "
                    f"({self.sep!r}-separated), got {n}"
                )
        return CTRDataError(
            f"{self.path}:{block.first_line}: could not parse the block of lines starting here ({err})"
        )

    def _parse(self, block: _Block) -> RawChunk | None:
        read = pcsv.ReadOptions(column_names=self.all_columns, autogenerate_column_names=False)
        parse = pcsv.ParseOptions(delimiter=self.sep, quote_char='"' if self.quoting else False)
        convert = pcsv.ConvertOptions(
            column_types={c: pa.string() for c in self.all_columns},
            include_columns=self.columns,
            strings_can_be_null=True,
            null_values=[""],
        )
        try:
            table = pcsv.read_csv(
                pa.BufferReader(block.data),
                read_options=read,
                parse_options=parse,
                convert_options=convert,
            )
        except pa.ArrowInvalid as e:
            raise self._block_error(block, e) from None
        return RawChunk(table, block.first_line, rows=_rows_of(block, table.num_rows)) if table.num_rows else None


class LibsvmReader(_TextReader):
    """libsvm / libfm lines ``label idx:val idx:val ...`` with one entry per field, in field order
    (the NFM/AFN files behind Frappe_x1, Criteo_x1, Avazu_x1, MovielensLatest_x1).

    Column ``label`` holds the label as written (``-1`` for NFM's negatives; the encoder maps
    it with ``negative_label``); field ``k`` (named ``names[k]``) holds the feature index (text
    before ``:``) or, for the names in ``numeric``, the value (text after ``:``).

    Args:
        path: the file (plain or ``.gz``; CRLF line ends are fine).
        names: field names, one per ``idx:val`` entry (default ``f0, f1, ...`` from the first line).
        numeric: fields whose value (not index) is kept.
        block_size: bytes of raw (decompressed) text per chunk, cut at a line end.
        read_ahead: raw blocks read ahead by a background thread (see :class:`CsvReader`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        names: Sequence[str] | None = None,
        numeric: Sequence[str] = (),
        block_size: int = DEFAULT_BLOCK_SIZE,
        read_ahead: int = DEFAULT_READ_AHEAD,
    ) -> None:
        self.path = Path(path)
        self.read_ahead = _check_read_ahead(self.path, read_ahead, block_size)
        if not self.path.is_file():
            raise CTRDataError(f"{self.path}: file not found")
        first = _first_line(self.path).strip()
        if not first:
            raise CTRDataError(f"{self.path}:1: empty file or empty first line")
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

    def _block_error(self, block: _Block, err: BaseException) -> CTRDataError:
        bad = _bad_utf8(self.path, block)
        if bad is not None:
            return bad
        for k, raw in enumerate(block.data.decode("utf-8").split("\n")):
            line = raw.strip()
            if not line:
                continue
            parts = line.split(" ")
            if len(parts) != len(self.names) + 1:
                return CTRDataError(
                    f"{self.path}:{block.first_line + k}: malformed line: expected {len(self.names)} "
                    f"idx:val entries, got {len(parts) - 1}"
                )
        return CTRDataError(
            f"{self.path}:{block.first_line}: could not parse the block of lines starting here ({err})"
        )

    def _parse(self, block: _Block) -> RawChunk | None:
        read = pcsv.ReadOptions(column_names=self.columns)
        parse = pcsv.ParseOptions(delimiter=" ", quote_char=False)
        convert = pcsv.ConvertOptions(
            column_types={c: pa.string() for c in self.columns}, strings_can_be_null=True, null_values=[""]
        )
        try:
            batch = pcsv.read_csv(
                pa.BufferReader(block.data),
                read_options=read,
                parse_options=parse,
                convert_options=convert,
            )
        except pa.ArrowInvalid as e:
            raise self._block_error(block, e) from None
        if batch.num_rows == 0:
            return None
        rows = _rows_of(block, batch.num_rows)
        chunk = RawChunk(batch, block.first_line, rows=rows)
        cols = {"label": batch.column(0)}
        for k, name in enumerate(self.names):
            col = batch.column(k + 1)
            parts = pc.split_pattern(col, ":", max_splits=1)
            not_pair = pc.not_equal(pc.list_value_length(parts), 2)
            if pc.any(not_pair).as_py():
                bad = pc.index(not_pair, True).as_py()
                raise CTRDataError(
                    f"{chunk.where(self.path, bad)}: entry {col[bad].as_py()!r} of field {name!r} is not idx:val"
                )
            cols[name] = pc.list_element(parts, 1 if name in self.numeric else 0)
        return RawChunk(pa.table(cols), block.first_line, rows=rows)


class ParquetReader(Reader):
    """A parquet file read in row batches (``batch_rows``); positions are row numbers (1-based)."""

    def __init__(
        self, path: str | os.PathLike[str], *, batch_rows: int = 1 << 20, columns: Sequence[str] | None = None
    ) -> None:
        import pyarrow.parquet as pq

        self.path = Path(path)
        if not self.path.is_file():
            raise CTRDataError(f"{self.path}: file not found")
        try:
            self._file = pq.ParquetFile(str(self.path))
        except (pa.ArrowInvalid, OSError) as e:
            raise CTRDataError(f"{self.path}: not a readable parquet file ({e})") from None
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
        try:
            for batch in self._file.iter_batches(batch_size=self.batch_rows, columns=self.columns):
                if batch.num_rows == 0:
                    continue
                yield RawChunk(pa.Table.from_batches([batch]), row, unit="row")
                row += batch.num_rows
        except (pa.ArrowInvalid, OSError) as e:
            raise CTRDataError(f"{self.path}: corrupt parquet data after row {row - 1} ({e})") from None


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
