"""Results ledger: one flat JSON object per line in ``docs/results/<table>.jsonl``.

Every number gatelab reports lives in a ledger record, and the markdown table beside it
(``<table>.md``) is rendered from the records, never edited by hand.

Record format (keys are lower-case; values are strings, numbers, booleans or ``null``):

=============== ==========================================================================
key             meaning
=============== ==========================================================================
``table``       ledger table name (the file stem)
``model``       registered model name (or a baseline's name)
``dataset``     dataset name
``horizon``     forecast horizon (int) -- or ``split`` (str); at least one of the two
``seed``        integer seed of the run
metrics         by their usual names: ``mse``, ``mae``, ``auc``, ``logloss``, ``dice``,
                ``psnr``, ``ssim``, ``q50``, ``q90``, ``accuracy``, ``speedup``, ...
``paper_<m>``   the published value of metric ``m`` for this row, when one exists
``baseline``    what ``speedup`` is relative to
``variant``     optional free-form label distinguishing otherwise equal rows
``budget``      the training budget of the row where rivals could differ (``"equal steps 2560"``,
                ``"preset"``); a column of its own, so a comparison never mixes budgets
``data_seed``   seed of the data draw (sampled negatives, a resampled split) when it varies;
                a run is identified by ``seed`` and ``data_seed`` together
``command``     the command that produced the row
``commit``      git HEAD of the checkout (``-dirty`` when tracked files differed)
``source_hash`` :func:`~gatelab.core.harness.provenance.source_hash`: the tracked source tree
                less ``docs/results/`` and ``README.md`` (equal for commits that differ only
                in results; ``-dirty`` when other tracked files differed); optional
``machine``     cpu model and cores, gpu if any, os
``date``        ISO 8601 time the record was written
``config``      json-encoded run configuration (or flat ``config_*`` keys)
``config_hash`` :func:`config_hash` of the row's full configuration (rows written before the
                hash existed have none); the markdown never mixes rows of different hashes
``data_sha256`` digest of the dataset files (:func:`gatelab.core.harness.data.dataset_sha256`)
``wall_s``      wall-clock seconds the row took
``note``        free text; NaN/inf metrics are written as ``null`` and named here
=============== ==========================================================================

Any other numeric key is a metric; descriptive settings (lookback, epochs, ...) belong in
``config``, or in ``variant`` when rows must be told apart.

Results directory (:func:`resolve_results_dir`): an explicit argument, ``$GATELAB_RESULTS``,
``<repo>/docs/results`` when running from a checkout, else ``./results``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import re
import statistics
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from gatelab.core.config import ConfigError

from . import provenance

__all__ = [
    "DESCRIPTIVE_KEYS",
    "KEY_FIELDS",
    "PROVENANCE_KEYS",
    "REQUIRED_KEYS",
    "LedgerError",
    "append_records",
    "config_hash",
    "ledger_lock",
    "metric_keys",
    "paired_comparisons",
    "read_records",
    "record_key",
    "render_markdown",
    "repair_torn_tail",
    "resolve_results_dir",
    "validate_record",
]

ENV_RESULTS = "GATELAB_RESULTS"

#: keys that say what was run (they group records in the markdown table)
DESCRIPTIVE_KEYS = ("model", "dataset", "horizon", "split", "variant", "baseline", "budget")
#: keys that say how, where and when it was run
PROVENANCE_KEYS = ("command", "commit", "machine", "date")
REQUIRED_KEYS = ("table", "model", "dataset", "seed", *PROVENANCE_KEYS)
_NON_METRIC = frozenset(
    {"table", "seed", "data_seed", "note", "config", "config_hash", "data_sha256", "wall_s", "source_hash",
     *DESCRIPTIVE_KEYS}
    | set(PROVENANCE_KEYS)
)
_KEY_RE = re.compile(r"^[a-z0-9_][a-z0-9_@.\-]*$")


class LedgerError(ConfigError):
    """A record is not a valid ledger record (the message names the key)."""


def resolve_results_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """Where ledgers live: ``path``, ``$GATELAB_RESULTS``, ``<repo>/docs/results``, or ``./results``."""
    if path is not None and str(path) != "":
        return Path(path).expanduser()
    env = os.environ.get(ENV_RESULTS, "").strip()
    if env:
        return Path(env).expanduser()
    root = provenance.repo_root()
    if root is not None and (root / "docs").is_dir():
        return root / "docs" / "results"
    return Path("results")


def _check_table_name(table: str) -> None:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.\-]*", table or ""):
        raise LedgerError(f"ledger table name {table!r} must be lower-case letters, digits, '_', '-', '.'")


def _scalar(value: Any) -> Any:
    """numpy / torch 0-d values -> Python scalars; anything else unchanged."""
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except (ValueError, RuntimeError):  # not a single element: left for validation to reject
            return value
    return value


def validate_record(record: Mapping[str, Any], table: str | None = None) -> dict[str, Any]:
    """Return a normalised copy of ``record`` or raise :class:`LedgerError`.

    Normalisation: numpy/torch scalars become Python numbers; a ``config`` mapping is
    json-encoded; NaN and infinite values become ``null`` and are named in ``note``.
    Checks: keys lower-case (``[a-z0-9_@.-]``), values flat, required keys present
    (:data:`REQUIRED_KEYS` and ``horizon`` or ``split``), ``seed`` an integer,
    ``table`` equal to ``table`` when given.
    """
    out: dict[str, Any] = {}
    bad_values: list[str] = []
    for key, raw in record.items():
        if not isinstance(key, str) or not _KEY_RE.match(key):
            raise LedgerError(f"ledger key {key!r} must be lower-case ([a-z0-9_@.-], no spaces)")
        value = _scalar(raw)
        if key == "config" and isinstance(value, Mapping):
            value = json.dumps(value, sort_keys=True, default=str)
        if not (value is None or isinstance(value, (str, bool, int, float))):
            raise LedgerError(
                f"ledger key {key!r}: value of type {type(value).__name__} is not flat "
                "(use str/int/float/bool/None; json-encode structures into 'config')"
            )
        if isinstance(value, float) and not math.isfinite(value):
            bad_values.append(f"{key}={value}")
            value = None
        out[key] = value
    if bad_values:
        note = f"non-finite values written as null: {', '.join(bad_values)}"
        out["note"] = f"{out['note']}; {note}" if out.get("note") else note
    if table is not None:
        if out.get("table") not in (None, table):
            raise LedgerError(f"record table {out['table']!r} differs from ledger table {table!r}")
        out["table"] = table
    missing = [k for k in REQUIRED_KEYS if out.get(k) is None]
    if "horizon" not in out and "split" not in out:
        missing.append("horizon|split")
    if missing:
        raise LedgerError(f"ledger record is missing required key(s) {missing}: {out}")
    if isinstance(out["seed"], bool) or not isinstance(out["seed"], int):
        raise LedgerError(f"ledger key 'seed' must be an integer, got {out['seed']!r}")
    if "data_seed" in out and (isinstance(out["data_seed"], bool) or not isinstance(out["data_seed"], int)):
        raise LedgerError(f"ledger key 'data_seed' must be an integer, got {out['data_seed']!r}")
    if "budget" in out and not isinstance(out["budget"], str):
        raise LedgerError(f"ledger key 'budget' must be a string (e.g. 'equal steps 2560'), got {out['budget']!r}")
    return out


def _stamp(record: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(record)
    out.setdefault("command", provenance.command_line())
    out.setdefault("commit", provenance.git_commit())
    out.setdefault("machine", provenance.machine())
    out.setdefault("date", provenance.now_iso())
    if "source_hash" not in out and (src := provenance.source_hash()) is not None:
        out["source_hash"] = src
    return out


def config_hash(config: Mapping[str, Any] | str | None) -> str:
    """First 16 hex digits of the sha256 of ``config``'s canonical JSON (sorted keys, no spaces).

    A string is parsed as JSON first (so a json-encoded ``config`` field and the mapping it encodes
    hash alike); values JSON cannot encode are hashed by their ``str``.
    """
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except ValueError:
            pass  # a free-text config: hashed as that string
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


#: the keys that identify a row of a table (with ``config_hash``: the row a resume may skip)
KEY_FIELDS = (*DESCRIPTIVE_KEYS, "seed", "data_seed")


def record_key(record: Mapping[str, Any]) -> tuple[Any, ...]:
    """``(model, dataset, horizon, split, variant, baseline, budget, seed, data_seed)`` of ``record``
    (absent keys: ``None``)."""
    return tuple(record.get(k) for k in KEY_FIELDS)


def _ledger_path(table: str, results_dir: str | os.PathLike[str] | None) -> Path:
    _check_table_name(table)
    return resolve_results_dir(results_dir) / f"{table}.jsonl"


@contextlib.contextmanager
def ledger_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive ``fcntl.flock`` on the sidecar ``<path>.lock`` (created if absent).

    Every writer of a ledger takes it, so appends and tail repairs of concurrent runs never
    interleave. The lock is released when the holder exits or dies.
    """
    lock = Path(f"{os.fspath(path)}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _is_record_line(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:  # includes UnicodeDecodeError
        return False


def _torn_tail(path: Path) -> tuple[int, bytes] | None:
    """``(offset, bytes)`` of a torn tail of ``path``, or ``None`` when its end is sound.

    Torn: the bytes after the last newline (a line whose write was cut short), or else a last
    line that is not a JSON object (e.g. zeros left by a crash).
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    if size == 0:
        return None
    with open(path, "rb") as f:
        pos, buf = size, b""
        while pos > 0:
            step = min(1 << 16, pos)
            pos -= step
            f.seek(pos)
            buf = f.read(step) + buf
            if buf.count(b"\n") >= (2 if buf.endswith(b"\n") else 1):
                break
    if not buf.endswith(b"\n"):
        cut = buf.rfind(b"\n") + 1
        return pos + cut, buf[cut:]
    cut = buf.rfind(b"\n", 0, len(buf) - 1) + 1
    last = buf[cut:-1]
    if not last.strip() or _is_record_line(last):
        return None
    return pos + cut, buf[cut:]


def _torn_tail_before(path: Path, offset: int) -> tuple[int, bytes] | None:
    """A bad line ending right at ``offset`` of ``path`` (``(start, bytes)``), else ``None``."""
    if offset == 0:
        return None
    with open(path, "rb") as f:
        start = offset
        while start > 0:  # find the start of the line ending at offset
            step = min(1 << 16, start)
            f.seek(start - step)
            chunk = f.read(step)
            nl = chunk.rfind(b"\n", 0, len(chunk) - 1 if start == offset else len(chunk))
            if nl >= 0:
                start = start - step + nl + 1
                break
            start -= step
        f.seek(start)
        line = f.read(offset - start)
    body = line[:-1]
    if not body.strip() or _is_record_line(body):
        return None
    return start, line


def repair_torn_tail(path: str | os.PathLike[str]) -> bytes | None:
    """Move a torn tail of ledger ``path`` to ``<path>.torn`` and cut it off; returns what moved.

    The caller holds :func:`ledger_lock`. The fragment is written (and fsynced) to the quarantine
    file before the ledger is truncated, so a crash in between loses nothing. Warns
    (``RuntimeWarning``) naming the file, the byte offset and the quarantine file.
    """
    path = Path(path)
    torn = _torn_tail(path)
    if torn is None:
        return None
    offset, fragment = torn
    while (more := _torn_tail_before(path, offset)) is not None:  # several bad lines at the end
        offset, fragment = more[0], more[1] + fragment
    quarantine = Path(f"{path}.torn")
    with open(quarantine, "ab") as q:
        q.write(fragment if fragment.endswith(b"\n") else fragment + b"\n")
        q.flush()
        os.fsync(q.fileno())
    with open(path, "r+b") as f:
        f.truncate(offset)
        f.flush()
        os.fsync(f.fileno())
    warnings.warn(
        f"{path}: torn last line at byte {offset} ({len(fragment)} bytes, from an interrupted write) "
        f"moved to {quarantine}",
        RuntimeWarning,
        stacklevel=3,
    )
    return fragment


def append_records(
    table: str,
    rows: Iterable[Mapping[str, Any]],
    results_dir: str | os.PathLike[str] | None = None,
    *,
    stamp: bool = True,
    render: bool = True,
) -> list[dict[str, Any]]:
    """Validate ``rows`` and append them to ``<results dir>/<table>.jsonl``, crash-safely.

    Args:
        table: ledger name (file stem).
        rows: records; ``table`` is filled in.
        results_dir: see :func:`resolve_results_dir`.
        stamp: fill missing ``command``/``commit``/``machine``/``date`` from this process.
        render: re-render ``<table>.md`` afterwards (:func:`render_markdown`).

    All rows are validated before anything is written, so a bad row appends nothing. Under
    :func:`ledger_lock`, a torn tail is quarantined (:func:`repair_torn_tail`), then the rows are
    written in one ``write`` call (one line each), flushed and fsynced: a process killed at any
    point leaves either all of them or a torn tail the next append repairs.
    Returns the records as written.
    """
    path = _ledger_path(table, results_dir)
    records = [validate_record(_stamp(r) if stamp else r, table) for r in rows]
    if records:
        data = "".join(json.dumps(rec, allow_nan=False) + "\n" for rec in records).encode()
        path.parent.mkdir(parents=True, exist_ok=True)
        with ledger_lock(path):
            repair_torn_tail(path)
            created = not path.exists()
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                view = memoryview(data)
                while view:  # one call for any regular file; the loop only guards short writes
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                _fsync_dir(path.parent)
    if render:
        render_markdown(table, results_dir)
    return records


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a directory
    finally:
        os.close(fd)


def read_records(table: str, results_dir: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """All records of ``table`` in file order (an absent ledger is empty).

    A torn last line (no newline, or not JSON) is skipped with a ``RuntimeWarning`` (the next
    append quarantines it); any other line that is not a JSON object raises :class:`LedgerError`
    naming ``file:line``.
    """
    path = _ledger_path(table, results_dir)
    if not path.is_file():
        return []
    lines = path.read_bytes().split(b"\n")
    complete = lines[:-1]  # text after the last newline is a torn tail (or empty)
    tail = lines[-1]
    out = []
    for i, line in enumerate(complete, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as e:
            if i == len(complete) and not tail.strip():
                warnings.warn(
                    f"{path}:{i}: torn last line skipped (not JSON: {e})", RuntimeWarning, stacklevel=2
                )
                continue
            raise LedgerError(f"{path}:{i}: not a JSON object: {e}") from None
        if not isinstance(rec, dict):
            raise LedgerError(f"{path}:{i}: not a JSON object: {type(rec).__name__}")
        out.append(rec)
    if tail.strip():
        warnings.warn(
            f"{path}:{len(complete) + 1}: torn last line skipped (no newline: an interrupted write)",
            RuntimeWarning,
            stacklevel=2,
        )
    return out


def metric_keys(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Metric names in order of first appearance: numeric/null keys that are not descriptive,
    provenance, ``paper_*`` or ``config_*`` keys."""
    seen: dict[str, None] = {}
    for rec in records:
        for k, v in rec.items():
            if k in _NON_METRIC or k.startswith(("paper_", "config_")) or isinstance(v, (str, bool)):
                continue
            seen.setdefault(k, None)
    return list(seen)


def _fmt(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.4f}" if abs(v) < 100 else f"{v:.2f}"


def _fmt_diff(v: float, scale: float) -> str:
    """Signed difference, with the decimals :func:`_fmt` uses for values of size ``scale``."""
    return f"{v:+.4f}" if abs(scale) < 100 else f"{v:+.2f}"


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (1, value)
    return (2, str(value))


def _run_id(rec: Mapping[str, Any]) -> tuple[Any, Any]:
    return (rec["seed"], rec.get("data_seed"))


def _current_groups(
    records: Sequence[Mapping[str, Any]], keys: Sequence[str]
) -> tuple[dict[tuple[Any, ...], dict[tuple[Any, Any], Mapping[str, Any]]], dict[tuple[Any, ...], Any], dict[tuple[Any, ...], dict[Any, int]]]:
    """Group ``records`` by ``keys``; keep each group's latest configuration, latest record per run.

    Returns ``(groups, latest_hash, hidden)``: ``groups[gkey][(seed, data_seed)]`` is the run's
    latest record of the group's latest ``config_hash``; ``hidden[gkey]`` counts the records of
    other configurations by hash.
    """
    latest_hash: dict[tuple[Any, ...], Any] = {}
    for rec in records:
        latest_hash[tuple(rec.get(k) for k in keys)] = rec.get("config_hash")
    groups: dict[tuple[Any, ...], dict[tuple[Any, Any], Mapping[str, Any]]] = {}
    hidden: dict[tuple[Any, ...], dict[Any, int]] = {}
    for rec in records:
        gkey = tuple(rec.get(k) for k in keys)
        if rec.get("config_hash") != latest_hash[gkey]:  # another configuration: never mixed in
            counts = hidden.setdefault(gkey, {})
            counts[rec.get("config_hash")] = counts.get(rec.get("config_hash"), 0) + 1
            continue
        groups.setdefault(gkey, {})[_run_id(rec)] = rec  # latest record per run wins
    return groups, latest_hash, hidden


def current_records(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The records a rendered table shows, in file order: per group of :data:`DESCRIPTIVE_KEYS`
    the latest configuration, per run ``(seed, data_seed)`` its latest record
    (:func:`render_markdown`'s rule)."""
    keys = [k for k in DESCRIPTIVE_KEYS if any(k in r for r in records)]
    groups, _, _ = _current_groups(records, keys)
    shown = {id(rec) for by_run in groups.values() for rec in by_run.values()}
    return [dict(r) for r in records if id(r) in shown]


def paired_comparisons(
    records: Sequence[Mapping[str, Any]] | str,
    comparisons: Sequence[Any],
    results_dir: str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """Evaluate :class:`~gatelab.core.harness.stats.Comparison` s on a ledger's current records.

    ``records`` is a list of records or a table name (read from ``results_dir``). One result per
    comparison and group of pairs (see :class:`~gatelab.core.harness.stats.Comparison`):
    ``{"comparison", "metric", "model", "rival", <the group's key values>, "pairs", "model_mean",
    "rival_mean", "diff", "lo", "hi", "p", "verdict", "unpaired"}``; ``diff``/``lo``/``hi`` are
    ``None`` (verdict ``"fewer than 2 pairs"``) when fewer than two pairs exist; ``unpaired``
    counts runs of either side without a partner.
    """
    from .stats import paired_difference

    if not comparisons:
        return []
    if isinstance(records, str):
        records = read_records(records, results_dir)
    keys = [k for k in DESCRIPTIVE_KEYS if any(k in r for r in records)]
    current = current_records(records)
    out: list[dict[str, Any]] = []
    for comp in comparisons:

        def keep(rec: Mapping[str, Any], side: Mapping[str, Any], comp: Any = comp) -> bool:
            return all(rec.get(k) == v for k, v in {**comp.where, **side}.items())

        free = {"model", *comp.model_where, *comp.rival_where}
        match = [k for k in keys if k not in free]
        sides: dict[tuple[Any, ...], tuple[dict[Any, Any], dict[Any, Any]]] = {}
        for rec in current:
            if not isinstance(rec.get(comp.metric), (int, float)) or isinstance(rec.get(comp.metric), bool):
                continue
            for i, (name, side) in enumerate(((comp.model, comp.model_where), (comp.rival, comp.rival_where))):
                if rec.get("model") == name and keep(rec, side):
                    sides.setdefault(tuple(rec.get(k) for k in match), ({}, {}))[i][_run_id(rec)] = float(
                        rec[comp.metric]
                    )
        for mkey in sorted(sides, key=lambda g: tuple(_sort_key(v) for v in g)):
            a, b = sides[mkey]
            if not a or not b:
                continue
            common = sorted(set(a) & set(b), key=lambda r: tuple(_sort_key(v) for v in r))
            row: dict[str, Any] = {
                "comparison": comp.name, "metric": comp.metric, "model": comp.model, "rival": comp.rival,
                **{k: v for k, v in zip(match, mkey, strict=True) if v is not None},
                "pairs": len(common),
                "model_mean": statistics.fmean(a[r] for r in common) if common else None,
                "rival_mean": statistics.fmean(b[r] for r in common) if common else None,
                "unpaired": len(set(a) ^ set(b)),
            }  # fmt: skip
            if len(common) >= 2:
                res = paired_difference([a[r] for r in common], [b[r] for r in common])
                row |= {"diff": res.mean, "lo": res.lo, "hi": res.hi, "p": res.p,
                        "verdict": res.verdict(comp.model, comp.rival, comp.lower_is_better)}  # fmt: skip
            else:
                row |= {"diff": None, "lo": None, "hi": None, "p": None, "verdict": "fewer than 2 pairs"}
            out.append(row)
    return out


def _render_comparisons(results: Sequence[Mapping[str, Any]], comparisons: Sequence[Any]) -> list[str]:
    if not comparisons:
        return []
    lines = [
        "",
        "## Paired comparisons",
        "",
        "Δ = first − second of runs paired by seed (and data seed), with its 95% paired t-interval; "
        "\"not significant\" when the interval contains 0.",
        "",
    ]
    if not results:
        return [*lines, "No pairs recorded yet."]
    where_keys = [
        k for k in DESCRIPTIVE_KEYS if k != "model" and any(r.get(k) is not None for r in results)
    ]
    header = ["comparison", "metric", *where_keys, "pairs", "first", "second", "Δ", "95% CI", "p", "verdict"]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in results:
        ci = "—" if r["lo"] is None else f"[{_fmt(r['lo'])}, {_fmt(r['hi'])}]"
        p = "—" if r["p"] is None else (f"{r['p']:.3f}" if r["p"] >= 0.001 else "<0.001")
        cells = [
            str(r["comparison"]), str(r["metric"]), *("" if r.get(k) is None else str(r[k]) for k in where_keys),
            str(r["pairs"]), _fmt(r["model_mean"]), _fmt(r["rival_mean"]), _fmt(r["diff"]), ci, p,
            str(r["verdict"]) + (f" ({r['unpaired']} unpaired)" if r["unpaired"] else ""),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_markdown(
    table: str,
    results_dir: str | os.PathLike[str] | None = None,
    *,
    title: str | None = None,
    description: str | None = None,
    metrics: Sequence[str] | None = None,
    comparisons: Sequence[Any] = (),
) -> str:
    """Render ``<table>.md`` from ``<table>.jsonl``; returns the markdown.

    One row per group of records with equal :data:`DESCRIPTIVE_KEYS` (model, dataset,
    horizon/split, variant, baseline). Only records of the group's latest configuration count:
    those whose ``config_hash`` equals that of the group's last record (records without a hash
    form one configuration); records of other configurations are left out and counted below the
    table, with the hashes. Per seed only the latest record counts (a re-run replaces an earlier
    one). When any shown record has a ``config_hash``, a ``config`` column shows its first 8
    digits. For each metric: mean ± sample standard deviation over seeds (``n-1``
    denominator; no ± with one seed), and when any record carries ``paper_<metric>``, the paper's
    value and ``Δ = ours − paper``. Records with a ``data_seed`` count as one run per
    ``(seed, data_seed)`` (the column is then ``runs``). ``comparisons``
    (:class:`~gatelab.core.harness.stats.Comparison`) add a "Paired comparisons" section
    (:func:`paired_comparisons`). Below: every distinct command with its commit and date.
    """
    records = read_records(table, results_dir)
    folder = resolve_results_dir(results_dir)
    metrics = list(metrics) if metrics is not None else metric_keys(records)
    keys = [k for k in DESCRIPTIVE_KEYS if any(k in r for r in records)]

    groups, latest_hash, hidden = _current_groups(records, keys)
    show_hash = any(latest_hash[g] is not None for g in groups)

    with_paper = [m for m in metrics if any(r.get(f"paper_{m}") is not None for r in records)]
    runs_col = "runs" if any(r.get("data_seed") is not None for r in records) else "seeds"
    header = [*keys, *(["config"] if show_hash else []), runs_col]
    for m in metrics:
        header.append(m)
        if m in with_paper:
            header += [f"paper {m}", f"Δ {m}"]
    lines = [
        f"# {title or table}",
        "",
        *([description, ""] if description else []),
        f"<!-- generated by gatelab.core.harness.ledger from {table}.jsonl; do not edit by hand -->",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    used: list[dict[str, Any]] = []
    for gkey in sorted(groups, key=lambda g: tuple(_sort_key(v) for v in g)):
        by_run = groups[gkey]
        recs = [by_run[r] for r in sorted(by_run, key=lambda r: tuple(_sort_key(v) for v in r))]
        used += recs
        cells = ["" if v is None else str(v) for v in gkey]
        if show_hash:
            cells.append(str(latest_hash[gkey] or "")[:8])
        cells.append(str(len(recs)))
        for m in metrics:
            vals = [float(r[m]) for r in recs if isinstance(r.get(m), (int, float))]
            n_null = sum(1 for r in recs if m in r and r[m] is None)
            if not vals:
                cell = "—"
            elif len(vals) == 1:
                cell = _fmt(vals[0])
            else:
                cell = f"{_fmt(statistics.fmean(vals))} ± {_fmt(statistics.stdev(vals))}"
            if n_null:
                cell += f" ({n_null} NaN)"
            cells.append(cell)
            if m in with_paper:
                paper = next(
                    (r[f"paper_{m}"] for r in reversed(recs) if r.get(f"paper_{m}") is not None), None
                )
                cells.append(_fmt(paper))
                cells.append(
                    _fmt_diff(statistics.fmean(vals) - paper, paper) if vals and paper is not None else "—"
                )
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Mean ± sample std over seeds (latest record per seed, latest configuration); Δ = ours − paper.",
    ]
    lines += _render_comparisons(paired_comparisons(records, comparisons), comparisons)
    if hidden:
        lines += ["", "Records of an earlier configuration, not shown (config_hash: records):", ""]
        for gkey in sorted(hidden, key=lambda g: tuple(_sort_key(v) for v in g)):
            what = ", ".join(f"{k}={v}" for k, v in zip(keys, gkey, strict=True) if v is not None)
            counts = ", ".join(f"{h or 'none'}: {n}" for h, n in hidden[gkey].items())
            lines.append(f"- {what} (shown: {latest_hash[gkey] or 'none'}; not shown: {counts})")
    commands: dict[str, dict[str, Any]] = {}
    for r in used:
        commands[r["command"]] = r
    if commands:
        lines += ["", "Commands:", ""]
        for cmd, r in commands.items():
            lines.append(f"- `{cmd}` (commit {str(r['commit'])[:12]}, {r['date']}, {r['machine']})")
    text = "\n".join(lines) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{table}.md"
    tmp = folder / f".{table}.md.{os.getpid()}.tmp"
    tmp.write_text(text)
    os.replace(tmp, target)  # atomic: a reader (or a kill) never sees half a table
    return text
