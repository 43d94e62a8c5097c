"""Paper-table reproduction: a paper table is data, run by ``gatelab repro NAME``.

A domain describes each table it reproduces with a :class:`ReproTable` and registers it with
:func:`register_table` when its package is imported::

    register_table(ReproTable(
        name="gateformer-etth1",
        description="Gateformer, ETTh1, lookback 96, MSE/MAE per horizon",
        paper="Huang et al. 2025, Table 2",
        references=[
            {"model": "gateformer", "dataset": "etth1", "horizon": 96, "mse": 0.376, "mae": 0.396},
            ("gateformer", "etth1", 192, {"mse": 0.428, "mae": 0.425}),
        ],
        options=[Option("--horizon", type=int, nargs="+", default=[96, 192, 336, 720]),
                 Option("--epochs", type=int, default=10)],
        run="gatelab.timeseries.repro:run_etth1",     # or the callable itself
        default_seeds=(0, 1, 2),
    ))

``run(args)`` receives the parsed options (the table's own plus the common ``--seeds``,
``--quick``, ``--data-dir``, ``--results-dir``, ``--dry-run``) and returns or yields row dicts
``{"model", "dataset", "horizon" | "split", "seed", <metrics>...}``. :func:`run_table` stamps each
row with ``command``, ``commit``, ``machine``, ``date``, ``wall_s``, ``config`` (the options as
JSON), ``data_sha256`` (when the row's dataset is a registered
:class:`~gatelab.core.harness.data.DatasetSpec`) and ``paper_<metric>`` from ``references``, then
appends the rows to ``<results dir>/<name>.jsonl`` and re-renders ``<name>.md`` (our value, the
paper's, the difference). A row's ``wall_s`` is the time spent producing it when ``run`` is a
generator, else the whole run's time (then ``note`` says so).
"""

from __future__ import annotations

import argparse
import importlib
import json
import shlex
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gatelab.core.config import ConfigError, did_you_mean

from . import ledger, provenance
from .data import DatasetNotFoundError, dataset_sha256, list_datasets

__all__ = [
    "Option",
    "ReproResult",
    "ReproTable",
    "get_table",
    "list_tables",
    "register_table",
    "run_table",
    "table_parser",
]

_REF_KEYS = ("model", "dataset", "horizon", "split", "variant")
_COMMON = {"seeds", "quick", "data_dir", "results_dir", "dry_run"}


class Option:
    """One command-line option of a table: ``Option("--horizon", type=int, nargs="+", default=[96])``.

    Arguments are those of ``argparse.ArgumentParser.add_argument``.
    """

    def __init__(self, *flags: str, **kwargs: Any) -> None:
        if not flags or not all(f.startswith("-") for f in flags):
            raise ValueError(f"Option flags must start with '-', got {flags!r}")
        self.flags = flags
        self.kwargs = kwargs

    def __repr__(self) -> str:
        return f"Option({', '.join(map(repr, self.flags))}, {self.kwargs!r})"


RowFn = Callable[[argparse.Namespace], Iterable[Mapping[str, Any]]]


class ReproTable:
    """A paper table to reproduce (see the module docstring for an example).

    Args:
        name: table name; also the ledger file stem ``docs/results/<name>.jsonl``.
        description: one line: what the table measures.
        paper: citation and table number.
        run: ``run(args) -> iterable of row dicts`` or a ``"module:function"`` string imported
            when the table runs (keeps domain imports light).
        references: the paper's values: dicts with ``model``, ``dataset``, ``horizon`` or
            ``split`` (optionally ``variant``) and metric values, or tuples
            ``(model, dataset, horizon_or_split, {metric: value})`` (an int is a horizon, a
            string a split).
        options: table-specific CLI options (:class:`Option`).
        domain: the domain that owns the table.
        metrics: metric columns for the markdown, in order (default: every metric in the ledger).
        default_seeds: seeds run when ``--seeds`` is not given.
        quick_table: ledger table for ``--quick`` runs (default: this table). Giving one keeps smoke
            runs out of the paper table: ``gatelab repro NAME --quick`` then writes
            ``<quick_table>.jsonl`` / ``.md``.
    """

    def __init__(
        self,
        name: str,
        description: str,
        paper: str,
        run: RowFn | str,
        references: Sequence[Mapping[str, Any] | tuple[Any, ...]] = (),
        options: Sequence[Option] = (),
        domain: str = "core",
        metrics: Sequence[str] | None = None,
        default_seeds: Sequence[int] = (0,),
        quick_table: str | None = None,
    ) -> None:
        ledger._check_table_name(name)
        if quick_table is not None:
            ledger._check_table_name(quick_table)
        self.name = name
        self.description = description
        self.paper = paper
        self._run = run
        self.references = [self._norm_ref(r) for r in references]
        self.options = list(options)
        self.domain = domain
        self.metrics = list(metrics) if metrics is not None else None
        self.default_seeds = [int(s) for s in default_seeds]
        self.quick_table = quick_table

    def ledger_name(self, quick: bool = False) -> str:
        """The ledger a run writes to: :attr:`quick_table` for ``--quick`` runs when set, else the name."""
        return self.quick_table if quick and self.quick_table else self.name

    def __repr__(self) -> str:
        return f"ReproTable({self.name!r}, paper={self.paper!r})"

    def _norm_ref(self, ref: Mapping[str, Any] | tuple[Any, ...]) -> dict[str, Any]:
        if isinstance(ref, tuple):
            if len(ref) != 4 or not isinstance(ref[3], Mapping):
                raise ValueError(
                    f"table {self.name!r}: reference tuple must be (model, dataset, horizon|split, {{metric: value}}), got {ref!r}"
                )
            model, dataset, where, values = ref
            key = "horizon" if isinstance(where, int) and not isinstance(where, bool) else "split"
            ref = {"model": model, "dataset": dataset, key: where, **values}
        ref = dict(ref)
        if "model" not in ref or "dataset" not in ref or ("horizon" not in ref and "split" not in ref):
            raise ValueError(
                f"table {self.name!r}: reference {ref} needs model, dataset and horizon or split"
            )
        return ref

    @property
    def run(self) -> RowFn:
        """The row function (imported now if it was given as ``"module:function"``)."""
        if isinstance(self._run, str):
            mod, _, attr = self._run.partition(":")
            self._run = getattr(importlib.import_module(mod), attr)
        return self._run

    def paper_values(self, row: Mapping[str, Any]) -> dict[str, float]:
        """The reference metrics matching ``row`` on model, dataset, horizon, split, variant."""
        key = tuple(row.get(k) for k in _REF_KEYS)
        for ref in self.references:
            if tuple(ref.get(k) for k in _REF_KEYS) == key:
                return {k: v for k, v in ref.items() if k not in _REF_KEYS}
        return {}


_TABLES: dict[str, ReproTable] = {}


def register_table(table: ReproTable) -> ReproTable:
    """Register ``table`` under ``table.name`` (a second table with that name is an error)."""
    old = _TABLES.get(table.name)
    if old is not None and old is not table:
        raise ValueError(f"repro table {table.name!r} is already registered ({old!r})")
    _TABLES[table.name] = table
    return table


def list_tables() -> dict[str, ReproTable]:
    """Registered tables by name (imports every domain first)."""
    from gatelab.core.registry import registered

    registered()
    return dict(sorted(_TABLES.items()))


def get_table(name: str) -> ReproTable:
    """The table ``name``; :class:`ConfigError` (with close names) if unknown."""
    tables = _TABLES if name in _TABLES else list_tables()
    if name not in tables:
        raise ConfigError(
            f"unknown repro table {name!r}{did_you_mean(name, tables)}; see `gatelab repro --list`"
        )
    return tables[name]


def table_parser(table: ReproTable) -> argparse.ArgumentParser:
    """The argument parser of ``gatelab repro <table>``: common options plus the table's own."""
    p = argparse.ArgumentParser(
        prog=f"gatelab repro {table.name}",
        description=f"{table.description} ({table.paper})",
        allow_abbrev=False,
    )
    common = p.add_argument_group("common options")
    common.add_argument(
        "--seeds", type=int, nargs="+", default=list(table.default_seeds), help="seeds to run"
    )
    common.add_argument(
        "--quick", action="store_true", help="a few steps on a subset: a smoke run, not the paper's numbers"
    )
    common.add_argument(
        "--data-dir", default=None, help="data directory (else $GATELAB_DATA, else ~/.cache/gatelab/data)"
    )
    common.add_argument(
        "--results-dir", default=None, help="ledger directory (else $GATELAB_RESULTS, else docs/results)"
    )
    common.add_argument("--dry-run", action="store_true", help="print the rows, write nothing")
    own = p.add_argument_group(f"{table.name} options")
    for opt in table.options:
        own.add_argument(*opt.flags, **opt.kwargs)
    return p


class ReproResult:
    """Rows written by :func:`run_table`, the rendered markdown and the ledger paths."""

    def __init__(
        self, rows: list[dict[str, Any]], markdown: str, jsonl: Path | None, md: Path | None
    ) -> None:
        self.rows = rows
        self.markdown = markdown
        self.jsonl = jsonl
        self.md = md


def _options_json(args: argparse.Namespace) -> str:
    opts = {k: v for k, v in vars(args).items() if k not in ("results_dir", "dry_run", "data_dir")}
    return json.dumps(opts, sort_keys=True, default=str)


def run_table(
    table: ReproTable | str,
    argv: Sequence[str] = (),
    *,
    results_dir: str | Path | None = None,
) -> ReproResult:
    """Run a paper table and record its rows (see the module docstring).

    Args:
        table: a :class:`ReproTable` or a registered name.
        argv: the table's command-line options (``["--seeds", "0", "1", "--quick"]``).
        results_dir: ledger directory; ``--results-dir`` in ``argv`` wins.

    Only rank 0 of a distributed run writes the ledger. Raises :class:`ConfigError` for an
    unknown table or a row the ledger rejects (nothing is written then).
    """
    if isinstance(table, str):
        table = get_table(table)
    args = table_parser(table).parse_args(list(argv))
    res_dir = args.results_dir or results_dir
    command = shlex.join(["gatelab", "repro", table.name, *argv])
    commit, machine, date = provenance.git_commit(), provenance.machine(), provenance.now_iso()
    options = _options_json(args)
    datasets = list_datasets()
    digests: dict[str, str] = {}

    produced = table.run(args)
    per_row = not isinstance(produced, Sequence)
    t0 = last = time.perf_counter()
    raw: list[tuple[dict[str, Any], float]] = []
    for row in produced:
        now = time.perf_counter()
        raw.append((dict(row), now - last))
        last = now
    total = time.perf_counter() - t0

    rows: list[dict[str, Any]] = []
    ledger_name = table.ledger_name(args.quick)
    for row, dt in raw:
        row.setdefault("table", ledger_name)
        if "seed" not in row and len(args.seeds) == 1:
            row["seed"] = args.seeds[0]
        if "wall_s" not in row:
            row["wall_s"] = round(dt if per_row else total, 3)
            if not per_row and len(raw) > 1:
                note = "wall_s covers the whole table run"
                row["note"] = f"{row['note']}; {note}" if row.get("note") else note
        row.setdefault("config", options)
        ds = row.get("dataset")
        if "data_sha256" not in row and isinstance(ds, str) and ds in datasets:
            if ds not in digests:
                try:
                    digests[ds] = dataset_sha256(datasets[ds], args.data_dir)
                except DatasetNotFoundError:  # the run used a stand-in (e.g. --quick on synthetic data)
                    digests[ds] = ""
            if digests[ds]:
                row["data_sha256"] = digests[ds]
            else:
                note = f"dataset {ds!r} files not found: no data_sha256"
                row["note"] = f"{row['note']}; {note}" if row.get("note") else note
        for metric, value in table.paper_values(row).items():
            row.setdefault(f"paper_{metric}", value)
        row.setdefault("command", command)
        row.setdefault("commit", commit)
        row.setdefault("machine", machine)
        row.setdefault("date", date)
        rows.append(ledger.validate_record(row, ledger_name))

    title = f"{ledger_name}: {table.description}"
    description = f"Paper: {table.paper}."
    if ledger_name != table.name:
        description += f" Smoke runs (`--quick`) of table `{table.name}`: not the paper's protocol."
    if args.dry_run or not provenance.is_rank_zero():
        lines = [json.dumps(r) for r in rows]
        return ReproResult(rows, "\n".join(lines) + ("\n" if lines else ""), None, None)
    ledger.append_records(ledger_name, rows, res_dir, stamp=False, render=False)
    md = ledger.render_markdown(
        ledger_name, res_dir, title=title, description=description, metrics=table.metrics
    )
    folder = ledger.resolve_results_dir(res_dir)
    return ReproResult(rows, md, folder / f"{ledger_name}.jsonl", folder / f"{ledger_name}.md")
