"""Paper-table reproduction: a paper table is data, run by ``gatelab repro NAME``.

A domain describes each table it reproduces with a :class:`ReproTable` and registers it with
:func:`register_table` when its package is imported::

    register_table(ReproTable(
        name="gateformer",
        description="Gateformer vs iTransformer, MSE/MAE per horizon",
        paper="Lan & Oermann 2025 (Gateformer); Liu et al. 2024 (iTransformer), Table 10",
        references=[
            {"model": "itransformer", "dataset": "etth1", "horizon": 96, "mse": 0.386, "mae": 0.405},
            ("itransformer", "etth1", 192, {"mse": 0.441, "mae": 0.436}),
        ],
        options=[Option("--horizon", type=int, nargs="+", default=[96, 192, 336, 720]),
                 Option("--epochs", type=int, default=10)],
        run="gatelab.timeseries.recipes.gateformer:run_gateformer_table",   # or the callable itself
        default_seeds=(0, 1, 2),
    ))

``run(args)`` receives the parsed options (the table's own plus the common ``--seeds``,
``--quick``, ``--data-dir``, ``--results-dir``, ``--dry-run``) and returns or yields row dicts
``{"model", "dataset", "horizon" | "split", "seed", <metrics>...}``. :func:`run_table` stamps each
row with ``command`` (without ``--data-dir`` / ``--results-dir``, paths inside the working
directory made relative: :func:`recorded_command`), ``commit``, ``source_hash``, ``machine``,
``date``, ``wall_s``, ``config`` (the options as
JSON), ``data_sha256`` (when the row's dataset is a registered
:class:`~gatelab.core.harness.data.DatasetSpec`) and ``paper_<metric>`` from ``references``, then
appends the rows to ``<results dir>/<name>.jsonl`` and re-renders ``<name>.md`` (our value, the
paper's, the difference). A row's ``wall_s`` is the time spent producing it when ``run`` is a
generator, else the whole run's time (then ``note`` says so).

Rows stream: each row is appended (:func:`~gatelab.core.harness.ledger.append_records`: one
locked, fsynced write) and the markdown re-rendered the moment the row is produced, so an
interrupted table (Ctrl-C, SIGKILL, a later row's exception) keeps every row it finished. Each row
carries ``config_hash``: the hash of its configuration, i.e. the table's options (less the seeds,
the paths and the options named in ``ReproTable(not_in_hash=...)``) plus the per-row config the
run function declared through ``args.should_run``.

Run functions ask before doing a row's work::

    for seed in args.seeds:
        cfg = experiment_config(...)
        if not args.should_run({"model": m, "dataset": d, "horizon": h, "seed": seed}, cfg):
            continue                      # recorded already (--resume) or not chosen (--verify)
        ...
        yield row

``args.should_run(key, config=None) -> bool`` is ``True`` in a plain run; with ``--resume``
``False`` for a key whose latest record has the same ``config_hash``; with ``--verify`` ``True``
only for the rows being verified. ``args.recorded(key, config=None)`` returns that record (for
rows derived from skipped ones, e.g. averages). A run function may ask with a key that lacks
``budget`` / ``data_seed`` and add them to the row it yields (the recipe runner asks with the
cell's key and writes the effective budget): such a key matches the recorded rows that differ only
in those fields, and where several do (two budgets of one cell) the config hash decides.

``--verify K`` (or ``--verify-rows N ...``, 1-based record numbers in the ledger) re-runs K
recorded rows (random, ``--verify-seed``), each with the options of the command that recorded
it, and reports recorded vs new values against ``ReproTable(tolerance=...)`` (default: exact);
nothing is written to the ledger. ``--verify-quick`` re-runs the latest ``--quick`` row of the
table's quick ledger (:func:`quick_rows`): the CI-sized check of issue 19.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import json
import math
import random
import shlex
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from gatelab.core.config import ConfigError

from . import ledger, provenance
from .data import dataset_sha256, list_datasets
from .errors import DatasetNotFoundError
from .stats import Comparison

__all__ = [
    "Option",
    "ReproResult",
    "ReproTable",
    "get_table",
    "list_tables",
    "quick_rows",
    "recorded_command",
    "register_table",
    "run_table",
    "table_example",
    "table_options",
    "table_parser",
]

_REF_KEYS = ("model", "dataset", "horizon", "split", "variant")
_COMMON = {"seeds", "quick", "data_dir", "results_dir", "dry_run"}
#: common options that never enter a row's config (its ``config`` field or its ``config_hash``)
_RUN_CONTROL = ("resume", "verify", "verify_rows", "verify_seed", "verify_quick", "should_run", "recorded")
#: options left out of every row's config hash: which seeds run, where files go, how the run is steered
_NOT_HASHED = frozenset({"seeds", "results_dir", "data_dir", "dry_run", *_RUN_CONTROL})
#: key fields a row may add to the key its run function asked ``should_run`` with (the recipe
#: runner asks with the cell's key and writes the effective ``budget`` into the row)
_ROW_FILLED = ("budget", "data_seed")
_ROW_FILLED_AT = tuple(ledger.KEY_FIELDS.index(k) for k in _ROW_FILLED)


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
        tolerance: ``--verify`` tolerance: an absolute difference allowed for every metric, or
            ``{metric: tolerance}`` (metrics not named: exact). Default 0: deterministic CPU rows
            must reproduce exactly.
        verify_metrics: metrics ``--verify`` compares (default: :attr:`metrics`, else every
            metric of the recorded row except timings ending in ``_s``).
        not_in_hash: option destinations (``"out"``, ``"no_plots"``) left out of the rows'
            ``config_hash``: options that only choose rows or place files, never change a number.
        comparisons: :class:`~gatelab.core.harness.stats.Comparison` s rendered under the table
            ("Paired comparisons": mean difference over seed-paired runs with its 95% interval).
        side_pages: the table's side ledgers (rows its run function writes beside its own, e.g.
            per-class measurements) as ``{ledger name: render_markdown keyword arguments}``; the
            quick run writes ``<name>-quick``. :meth:`pages` lists them with the table's own.
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
        tolerance: float | Mapping[str, float] = 0.0,
        verify_metrics: Sequence[str] | None = None,
        not_in_hash: Sequence[str] = (),
        comparisons: Sequence[Comparison] = (),
        side_pages: Mapping[str, Mapping[str, Any]] | None = None,
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
        tols = dict(tolerance) if isinstance(tolerance, Mapping) else {}
        for metric, tol in tols.items() if tols else [("*", tolerance)]:
            if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0:
                raise ValueError(
                    f"table {name!r}: tolerance of {metric!r} must be a number >= 0, got {tol!r}"
                )
        self.tolerance: float | dict[str, float] = (
            tols if isinstance(tolerance, Mapping) else float(tolerance)
        )
        self.verify_metrics = list(verify_metrics) if verify_metrics is not None else None
        self.not_in_hash = frozenset(not_in_hash)
        self.comparisons = list(comparisons)
        for comp in self.comparisons:
            if not isinstance(comp, Comparison):
                raise ValueError(f"table {name!r}: comparisons must be Comparison objects, got {comp!r}")
        self.side_pages = {k: dict(v) for k, v in (side_pages or {}).items()}
        for side, kwargs in self.side_pages.items():
            ledger._check_table_name(side)
            unknown = set(kwargs) - {"title", "description", "metrics", "comparisons"}
            if unknown:
                raise ValueError(f"table {name!r}: side page {side!r}: unknown render arguments {sorted(unknown)}")

    def tolerance_of(self, metric: str) -> float:
        """The ``--verify`` tolerance of ``metric`` (absolute difference)."""
        if isinstance(self.tolerance, dict):
            return float(self.tolerance.get(metric, 0.0))
        return self.tolerance

    def ledger_name(self, quick: bool = False) -> str:
        """The ledger a run writes to: :attr:`quick_table` for ``--quick`` runs when set, else the name."""
        return self.quick_table if quick and self.quick_table else self.name

    def page_kwargs(self, quick: bool = False) -> dict[str, Any]:
        """The :func:`~gatelab.core.harness.ledger.render_markdown` keyword arguments of the table's
        page (``quick``: its ``--quick`` page): the one definition ``run_table`` renders with and
        the page test re-renders with."""
        ledger_name = self.ledger_name(quick)
        description = f"Paper: {self.paper}."
        if ledger_name != self.name:
            description += f" Smoke runs (`--quick`) of table `{self.name}`: not the paper's protocol."
        return {"title": f"{ledger_name}: {self.description}", "description": description,
                "metrics": self.metrics, "comparisons": self.comparisons}  # fmt: skip

    def pages(self) -> dict[str, dict[str, Any]]:
        """``{ledger name: render_markdown keyword arguments}`` of every page the table's runs
        write: its own and its quick ledger, and each side page with its ``-quick`` twin."""
        out = {self.ledger_name(q): self.page_kwargs(q) for q in (False, True)}
        for side, kwargs in self.side_pages.items():
            out[side] = dict(kwargs)
            out[f"{side}-quick"] = dict(kwargs)
        return out

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


def register_table(table: ReproTable | str, target: str | None = None, *, domain: str | None = None) -> Any:
    """Register ``table`` under ``table.name`` (a second table with that name is an error).

    Lazily: ``register_table("gateformer", "package.module:TABLE", domain="timeseries")``
    declares the name without importing the module that builds the table (returns the entry;
    the module's own ``register_table(table)`` then fills it in). Entries live in
    :data:`gatelab.core.registry.TABLES`.
    """
    from gatelab.core.registry import TABLES

    if isinstance(table, str):
        if target is None:
            raise TypeError(f"register_table({table!r}): a name needs a 'module:attr' target")
        return TABLES.register(table, target, domain=domain or "core")
    if not isinstance(table, ReproTable):
        raise TypeError(f"register_table: expected a ReproTable, got {type(table).__name__}")
    TABLES.register(table.name, table, domain=domain or table.domain)
    return table


def list_tables(domain: str | None = None) -> list[str]:
    """Sorted names of registered tables (after loading the domains' registrations)."""
    from gatelab.core.registry import TABLES

    return TABLES.names(domain)


def get_table(name: str) -> ReproTable:
    """The table ``name`` (imported now if declared lazily); :class:`ConfigError` with close names if unknown."""
    from gatelab.core.registry import TABLES

    return TABLES.get(name)


def table_example(table: ReproTable) -> str:
    """The example ending ``gatelab repro <table> --help``: ``--quick --dry-run`` plus the table's
    required options (as ``FLAG METAVAR``)."""
    required = [
        f"{opt.flags[0]} {opt.kwargs.get('metavar') or opt.flags[0].lstrip('-').upper().replace('-', '_')}"
        for opt in table.options
        if opt.kwargs.get("required")
    ]
    return " ".join(["gatelab repro", table.name, "--quick", "--dry-run", *required])


def table_parser(table: ReproTable) -> argparse.ArgumentParser:
    """The argument parser of ``gatelab repro <table>``: common options plus the table's own."""
    p = argparse.ArgumentParser(
        prog=f"gatelab repro {table.name}",
        description=textwrap.fill(f"{table.description} ({table.paper})", width=88),
        allow_abbrev=False,
        epilog=f"example (a smoke run that prints its rows and writes nothing):\n  {table_example(table)}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    common.add_argument(
        "--resume",
        action="store_true",
        help="skip rows whose key and config hash are the ledger's latest record from this source hash "
        "(rows of older code are run again)",
    )
    common.add_argument(
        "--verify",
        type=int,
        default=None,
        metavar="K",
        help="re-run K recorded rows (random, --verify-seed) and compare; writes nothing",
    )
    common.add_argument(
        "--verify-rows",
        type=int,
        nargs="+",
        default=None,
        metavar="N",
        help="re-run these recorded rows (1-based record numbers in the ledger) and compare",
    )
    common.add_argument("--verify-seed", type=int, default=0, help="seed of --verify's random choice")
    common.add_argument(
        "--verify-quick",
        action="store_true",
        help="re-run the latest recorded --quick row (the CI check) and compare; writes nothing",
    )
    own = p.add_argument_group(f"{table.name} options")
    for opt in table.options:
        own.add_argument(*opt.flags, **opt.kwargs)
    return p


class ReproResult:
    """What :func:`run_table` did: the rows written (or, for ``--dry-run``, produced), the rendered
    markdown, the ledger paths, the keys ``--resume`` skipped and, for ``--verify``, one report
    dict per verified row (``verify``; ``failed``: how many did not pass)."""

    def __init__(
        self,
        rows: list[dict[str, Any]],
        markdown: str,
        jsonl: Path | None,
        md: Path | None,
        *,
        skipped: list[tuple[Any, ...]] | None = None,
        verify: list[dict[str, Any]] | None = None,
    ) -> None:
        self.rows = rows
        self.markdown = markdown
        self.jsonl = jsonl
        self.md = md
        self.skipped = skipped or []
        self.verify = verify

    @property
    def failed(self) -> int:
        """Verified rows that did not pass (0 outside ``--verify``)."""
        return sum(1 for r in self.verify or () if not r["passed"])


def table_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options of a table run that describe its rows: all but the paths, ``--dry-run`` and the
    run control (``--resume``, ``--verify*``). What a row's default ``config`` field records."""
    return {
        k: v for k, v in vars(args).items() if k not in ("results_dir", "dry_run", "data_dir", *_RUN_CONTROL)
    }


_options = table_options


def _options_json(args: argparse.Namespace) -> str:
    return json.dumps(_options(args), sort_keys=True, default=str)


def _key_text(key: tuple[Any, ...]) -> str:
    return " ".join(f"{k}={v}" for k, v in zip(ledger.KEY_FIELDS, key, strict=True) if v is not None)


class _RowBook:
    """The row bookkeeping of one run: config hashes, what the ledger holds, what to skip."""

    def __init__(
        self,
        table: ReproTable,
        args: argparse.Namespace,
        ledger_name: str,
        res_dir: str | Path | None,
        *,
        resume: bool = False,
        chosen: Mapping[tuple[Any, ...], str | None] | set[tuple[Any, ...]] | None = None,
        source: str | None = None,
    ) -> None:
        self.table = table
        #: ``--resume``: a row counts as recorded only when it comes from this source hash (a row of
        #: older code is stale and is run again); ``None`` (no git checkout): the config hash decides
        self.source = source
        self.ledger_name = ledger_name
        self.res_dir = res_dir
        self.resume = resume
        #: verify: the chosen records' keys -> their config hash (``None``: recorded without one)
        self.chosen: dict[tuple[Any, ...], str | None] | None = (
            None if chosen is None else (dict(chosen) if isinstance(chosen, Mapping) else dict.fromkeys(chosen))
        )
        self.options = {k: v for k, v in _options(args).items() if k not in _NOT_HASHED | table.not_in_hash}
        self.asked: dict[tuple[Any, ...], str] = {}
        self.skipped: list[tuple[Any, ...]] = []
        self._records: dict[tuple[tuple[Any, ...], str | None], dict[str, Any]] | None = None
        self._latest: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.seeds = list(args.seeds)

    def records(self) -> dict[tuple[tuple[Any, ...], str | None], dict[str, Any]]:
        if self._records is None:
            self._records = {}
            for rec in ledger.read_records(self.ledger_name, self.res_dir):
                self._records[(ledger.record_key(rec), rec.get("config_hash"))] = rec
                self._latest[ledger.record_key(rec)] = rec
        return self._records

    def hash_of(self, config: Mapping[str, Any] | str | None) -> str:
        """The row's config hash: the options (less :data:`_NOT_HASHED` and ``not_in_hash``) and
        the run function's row config, less its top-level ``seed`` / ``seeds`` -- the seed is part
        of the row's key, so all seeds of one configuration share a hash (and a table row)."""
        if isinstance(config, str):
            with contextlib.suppress(ValueError):
                config = json.loads(config)
        if isinstance(config, Mapping):
            config = {k: v for k, v in config.items() if k not in ("seed", "seeds")}
        return ledger.config_hash({"options": self.options, "row": config})

    def key_of(self, key: Mapping[str, Any]) -> tuple[Any, ...]:
        key = dict(key)
        if "seed" not in key and len(self.seeds) == 1:
            key["seed"] = self.seeds[0]
        missing = [k for k in ("model", "dataset", "seed") if key.get(k) is None]
        if "horizon" not in key and "split" not in key:
            missing.append("horizon|split")
        if missing:
            raise ValueError(f"table {self.table.name!r}: row key {key} lacks {missing}")
        return ledger.record_key(key)

    def _loose_matches(self, asked: tuple[Any, ...], keys: Iterable[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The ``keys`` equal to ``asked`` once the fields ``asked`` leaves out (``None``) among
        :data:`_ROW_FILLED` are ignored: a run function asks with its cell's key, and the row it
        then yields adds ``budget`` (the recipe runner does) or ``data_seed``."""
        free = [i for i in _ROW_FILLED_AT if asked[i] is None]
        if not free:
            return []
        return [
            k for k in keys
            if k != asked and all(a == b for i, (a, b) in enumerate(zip(asked, k, strict=True)) if i not in free)
        ]  # fmt: skip

    def asked_hash(self, key: tuple[Any, ...]) -> str | None:
        """The config hash ``should_run`` computed for the row with ``key`` (or for the cell key
        it was asked under, without the fields the row added), else ``None``."""
        if key in self.asked:
            return self.asked[key]
        hits = [a for a in self.asked if self._loose_matches(a, [key])]
        return self.asked[hits[-1]] if hits else None

    def _current(self, rec: Mapping[str, Any], h: str) -> bool:
        return rec.get("config_hash") == h and (self.source is None or rec.get("source_hash") == self.source)

    def is_recorded(self, key: tuple[Any, ...], h: str) -> bool:
        rec = self.records()
        if (key, h) in rec and self._current(self._latest[key], h):
            return True
        return any(self._current(self._latest[k], h) for k in self._loose_matches(key, self._latest))

    def _is_chosen(self, k: tuple[Any, ...], h: str) -> bool:
        assert self.chosen is not None
        if k in self.chosen:
            return True
        loose = self._loose_matches(k, self.chosen)
        if any(self.chosen[c] == h for c in loose):
            return True  # the config decides between e.g. two budgets of one cell
        if len(loose) != 1:
            return False
        # one candidate of another config: another recorded row of the cell (e.g. the other
        # budget) when the ledger has one with this config, else the candidate's config changed
        # since it was recorded -- re-run it, and the report says so
        self.records()
        return not any(
            self._latest[m].get("config_hash") == h for m in self._loose_matches(k, self._latest) if m != loose[0]
        )

    def should_run(self, key: Mapping[str, Any], config: Mapping[str, Any] | str | None = None) -> bool:
        k = self.key_of(key)
        h = self.asked[k] = self.hash_of(config)
        if self.chosen is not None:
            return self._is_chosen(k, h)
        if self.resume and self.is_recorded(k, h):
            self.skipped.append(k)
            print(
                f"[gatelab repro {self.ledger_name}] skipped (recorded already): {_key_text(k)} (config {h[:8]})",
                file=sys.stderr,
                flush=True,
            )
            return False
        return True

    def recorded(
        self, key: Mapping[str, Any], config: Mapping[str, Any] | str | None = None
    ) -> dict[str, Any] | None:
        k = self.key_of(key)
        records = self.records()
        if config is None:
            if k in self._latest:
                return self._latest[k]
            loose = self._loose_matches(k, self._latest)
            return self._latest[loose[-1]] if len(loose) == 1 else None
        h = self.hash_of(config)
        if (k, h) in records:
            return records[(k, h)]
        hits = [records[(m, h)] for m in self._loose_matches(k, self._latest) if (m, h) in records]
        return hits[-1] if hits else None

    def install(self, args: argparse.Namespace) -> argparse.Namespace:
        """``args`` with ``should_run`` and ``recorded`` (class attributes: ``vars(args)`` stays the options)."""
        cls = type(
            "TableArgs",
            (argparse.Namespace,),
            {"should_run": staticmethod(self.should_run), "recorded": staticmethod(self.recorded)},
        )
        return cls(**vars(args))


def _finish_row(
    table: ReproTable,
    book: _RowBook,
    row: dict[str, Any],
    *,
    ledger_name: str,
    args: argparse.Namespace,
    stamp: dict[str, str],
    wall_s: float,
    whole_run: bool,
    options: str,
    datasets: Sequence[str] | Mapping[str, Any],
    digests: dict[str, str],
) -> dict[str, Any]:
    """Stamp ``row`` (provenance, wall time, config, its hash, data digest, paper values); validated."""
    row.setdefault("table", ledger_name)
    if "seed" not in row and len(args.seeds) == 1:
        row["seed"] = args.seeds[0]
    if "wall_s" not in row:
        row["wall_s"] = round(wall_s, 3)
        if whole_run:
            note = "wall_s covers the whole table run"
            row["note"] = f"{row['note']}; {note}" if row.get("note") else note
    if "config_hash" not in row:
        key = ledger.record_key(row)
        row["config_hash"] = book.asked_hash(key) or book.hash_of(None)
    row.setdefault("config", options)
    ds = row.get("dataset")
    if "data_sha256" not in row and isinstance(ds, str) and ds in datasets:
        if ds not in digests:
            try:
                digests[ds] = dataset_sha256(ds, args.data_dir)
            except DatasetNotFoundError:  # the run used a stand-in (e.g. --quick on synthetic data)
                digests[ds] = ""
        if digests[ds]:
            row["data_sha256"] = digests[ds]
        else:
            note = f"dataset {ds!r} files not found: no data_sha256"
            row["note"] = f"{row['note']}; {note}" if row.get("note") else note
    for metric, value in table.paper_values(row).items():
        row.setdefault(f"paper_{metric}", value)
    for k, v in stamp.items():
        row.setdefault(k, v)
    return ledger.validate_record(row, ledger_name)


def _produce(
    table: ReproTable, args: argparse.Namespace
) -> tuple[Iterator[tuple[dict[str, Any], float, bool]], Callable[[], None]]:
    """Iterate ``(row, wall_s, whole_run)`` of ``table.run(args)``, and a closer for the generator."""
    t0 = time.perf_counter()
    produced = table.run(args)  # a list: all the work is done here; a generator: none yet

    def rows() -> Iterator[tuple[dict[str, Any], float, bool]]:
        last = t0
        if isinstance(produced, Sequence):  # all the work was done before the first row
            total = time.perf_counter() - t0
            for row in produced:
                yield dict(row), total, len(produced) > 1
            return
        for row in produced:
            now = time.perf_counter()
            yield dict(row), now - last, False
            last = time.perf_counter()

    def close() -> None:
        if inspect.isgenerator(produced):
            produced.close()

    return rows(), close


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

    Each row is appended the moment it is produced and the markdown re-rendered (also when the
    run ends by an exception or Ctrl-C), so the rows before a failure stay recorded. With
    ``--resume`` rows already recorded with the same config hash are skipped (and a row the run
    function produces anyway is not appended twice); ``--verify`` / ``--verify-rows`` re-run
    recorded rows and compare (:attr:`ReproResult.verify`), writing nothing. Only rank 0 of a
    distributed run writes the ledger. Raises :class:`ConfigError` for an unknown table or a row
    the ledger rejects (the rows before it stay written).
    """
    if isinstance(table, str):
        table = get_table(table)
    args = table_parser(table).parse_args(list(argv))
    res_dir = args.results_dir or results_dir
    if args.verify_quick:
        if args.verify is not None or args.verify_rows is not None:
            raise ConfigError("--verify-quick chooses the row itself: drop --verify / --verify-rows")
        # this CPU's latest quick row when there is one (it reproduces bit for bit), else any CPU's
        numbers = quick_rows(table, res_dir, cpu=provenance.cpu_of(provenance.machine())) or quick_rows(table, res_dir)
        if not numbers:
            path = ledger.resolve_results_dir(res_dir) / f"{table.ledger_name(True)}.jsonl"
            raise ConfigError(
                f"--verify-quick: no --quick row recorded in {path}; record one with `gatelab repro {table.name} --quick`"
            )
        args.quick, args.verify_rows = True, numbers[-1:]
    if args.verify is not None or args.verify_rows is not None:
        return _verify(table, args, res_dir)
    command = recorded_command(table.name, argv)
    stamp = {
        "command": command,
        "commit": provenance.git_commit(),
        "machine": provenance.machine(),
        "date": provenance.now_iso(),
    }
    if (src := provenance.source_hash()) is not None:
        stamp["source_hash"] = src
    options = _options_json(args)
    ledger_name = table.ledger_name(args.quick)
    write = not args.dry_run and provenance.is_rank_zero()
    book = _RowBook(table, args, ledger_name, res_dir, resume=args.resume, source=stamp.get("source_hash"))
    args = book.install(args)
    datasets = list_datasets()
    digests: dict[str, str] = {}
    folder = ledger.resolve_results_dir(res_dir)
    jsonl = folder / f"{ledger_name}.jsonl"

    def render() -> str:
        return ledger.render_markdown(ledger_name, res_dir, **table.page_kwargs(args.quick))

    rows: list[dict[str, Any]] = []
    md = ""
    produced, close = _produce(table, args)
    try:
        for row, dt, whole in produced:
            rec = _finish_row(
                table, book, row, ledger_name=ledger_name, args=args, stamp=stamp, wall_s=dt,
                whole_run=whole, options=options, datasets=datasets, digests=digests,
            )  # fmt: skip
            key = ledger.record_key(rec)
            if args.resume and book.is_recorded(key, rec["config_hash"]):
                if key not in book.skipped:
                    book.skipped.append(key)
                continue  # produced by a run function that did not ask: recorded once only
            if write:
                ledger.append_records(ledger_name, [rec], res_dir, stamp=False, render=False)
                md = render()
                print(
                    f"[gatelab repro {ledger_name}] recorded {_key_text(key)} (config {rec['config_hash'][:8]})",
                    file=sys.stderr,
                    flush=True,
                )
            rows.append(rec)
    finally:
        close()
        if write and jsonl.is_file():
            md = render()  # also after an interruption, and after a kill of an earlier run
    if not write:
        lines = [json.dumps(r) for r in rows]
        return ReproResult(rows, "\n".join(lines) + ("\n" if lines else ""), None, None, skipped=book.skipped)
    return ReproResult(rows, md, jsonl, folder / f"{ledger_name}.md", skipped=book.skipped)


#: common options that say where files are, not what was computed: never in a recorded command
_PLACE_OPTIONS = ("--data-dir", "--results-dir")


def _portable_path(word: str, cwd: Path) -> str:
    """``word`` relative to ``cwd`` when it is an absolute path inside ``cwd``, else unchanged."""
    if not word.startswith("/"):
        return word
    try:
        return Path(word).relative_to(cwd).as_posix() or "."
    except ValueError:
        return word


def recorded_command(table_name: str, argv: Sequence[str], cwd: str | Path | None = None) -> str:
    """The ``command`` a row of ``gatelab repro <table_name> <argv>`` records, free of this
    machine's paths: ``--data-dir`` / ``--results-dir`` and their values are left out (where the
    files are, not what was computed; ``--verify`` re-runs with its own), and any other absolute
    path inside the working directory ``cwd`` (default: the current one), alone or as
    ``--opt=/path``, is written relative to it. An absolute path elsewhere is kept as given."""
    here = Path(cwd) if cwd is not None else Path.cwd()
    words: list[str] = []
    skip = False
    for word in argv:
        if skip:
            skip = False
            continue
        flag, eq, value = word.partition("=")
        if flag in _PLACE_OPTIONS:
            skip = not eq  # ``--data-dir DIR``: drop DIR too; ``--data-dir=DIR``: one word
            continue
        words.append(f"{flag}={_portable_path(value, here)}" if eq and flag.startswith("-") else _portable_path(word, here))
    return shlex.join(["gatelab", "repro", table_name, *words])


def quick_rows(table: ReproTable | str, results_dir: str | Path | None = None, cpu: str | None = None) -> list[int]:
    """1-based record numbers, in file order, of the ``--quick`` rows of ``table``'s quick ledger
    (:meth:`ReproTable.ledger_name` ``(quick=True)``) that are their key's latest record: the rows
    ``--verify-quick`` (the last of them) and the CI check re-run. A row is a quick row when its
    recorded command is ``gatelab repro <table> ... --quick ...``.

    ``cpu``: only rows recorded on that CPU model (:func:`~gatelab.core.harness.provenance.cpu_of`
    of their ``machine``), each the latest of its key among them: floating-point results
    reproduce bit for bit only on the kind of CPU that recorded them."""
    if isinstance(table, str):
        table = get_table(table)
    records = ledger.read_records(table.ledger_name(True), results_dir)
    mine = [(i, r) for i, r in enumerate(records, 1) if cpu is None or provenance.cpu_of(str(r.get("machine", ""))) == cpu]
    latest = {ledger.record_key(r): i for i, r in mine}
    out = []
    for i, rec in mine:
        try:
            words = shlex.split(str(rec.get("command", "")))
        except ValueError:
            continue
        if words[:3] == ["gatelab", "repro", table.name] and "--quick" in words[3:] and latest[ledger.record_key(rec)] == i:
            out.append(i)
    return out


def _verify_metrics(table: ReproTable, recorded: Mapping[str, Any]) -> list[str]:
    if table.verify_metrics is not None:
        return list(table.verify_metrics)
    if table.metrics is not None:
        return list(table.metrics)
    return [m for m in ledger.metric_keys([recorded]) if not m.endswith("_s")]


def _compare(
    table: ReproTable, number: int, recorded: Mapping[str, Any], new: Mapping[str, Any] | None
) -> dict[str, Any]:
    """One ``--verify`` report: per metric recorded, new, |difference|, tolerance; passed or not."""
    key = ledger.record_key(recorded)
    report: dict[str, Any] = {"key": _key_text(key), "record": number, "checks": []}
    if new is None:
        report.update(passed=False, reason="the re-run did not produce this row")
        return report
    reasons = []
    old_hash, new_hash = recorded.get("config_hash"), new.get("config_hash")
    if old_hash is not None and old_hash != new_hash:
        reasons.append(f"config differs (recorded {old_hash}, now {new_hash})")
    old_data, new_data = recorded.get("data_sha256"), new.get("data_sha256")
    if old_data is not None and new_data is not None and old_data != new_data:
        reasons.append(
            f"data differs (recorded data_sha256 {str(old_data)[:12]}, now {str(new_data)[:12]}): the re-run "
            "read other files; give the recorded run's --data-dir (or $GATELAB_DATA)"
        )
    for m in _verify_metrics(table, recorded):
        if m not in recorded:
            continue
        a, b, tol = recorded.get(m), new.get(m), table.tolerance_of(m)
        if a is None or b is None:
            ok = a is None and b is None
            diff = None
        else:
            diff = abs(float(b) - float(a))
            ok = math.isfinite(diff) and diff <= tol
        report["checks"].append(
            {"metric": m, "recorded": a, "new": b, "diff": diff, "tolerance": tol, "passed": ok}
        )
        if not ok:
            reasons.append(f"{m}: recorded {a}, now {b}, |diff| {diff} > tolerance {tol}")
    report.update(passed=not reasons, reason="; ".join(reasons))
    return report


def _verify(table: ReproTable, args: argparse.Namespace, res_dir: str | Path | None) -> ReproResult:
    """``--verify K`` / ``--verify-rows N ...``: re-run recorded rows and compare (nothing written)."""
    ledger_name = table.ledger_name(args.quick)
    path = ledger.resolve_results_dir(res_dir) / f"{ledger_name}.jsonl"
    records = ledger.read_records(ledger_name, res_dir)
    number = {id(rec): i for i, rec in enumerate(records, 1)}  # 1-based record numbers
    if not records:
        raise ConfigError(f"--verify: no recorded rows in {path}")
    if args.verify_rows is not None:
        bad = [n for n in args.verify_rows if not 1 <= n <= len(records)]
        if bad:
            raise ConfigError(f"--verify-rows {bad}: {path} holds records 1..{len(records)}")
        chosen = [records[n - 1] for n in dict.fromkeys(args.verify_rows)]
    else:
        if args.verify < 1:
            raise ConfigError(f"--verify {args.verify}: the number of rows to re-run must be >= 1")
        latest = {ledger.record_key(r): r for r in records}  # a key's latest record is the one that counts
        pool = sorted(latest.values(), key=lambda r: number[id(r)])
        chosen = random.Random(args.verify_seed).sample(pool, min(args.verify, len(pool)))
        chosen.sort(key=lambda r: number[id(r)])
    prefix = ["gatelab", "repro", table.name]
    by_command: dict[str, list[dict[str, Any]]] = {}
    reports: list[dict[str, Any]] = []
    for rec in chosen:
        by_command.setdefault(str(rec.get("command", "")), []).append(rec)
    with tempfile.TemporaryDirectory(prefix="gatelab-verify-") as scratch:
        for command, recs in by_command.items():
            words = shlex.split(command)
            try:
                if words[:3] != prefix:
                    raise SystemExit(2)
                rerun = table_parser(table).parse_args(words[3:])
            except SystemExit:
                for rec in recs:
                    reports.append(
                        {"key": _key_text(ledger.record_key(rec)), "record": number[id(rec)], "checks": [],
                         "passed": False, "reason": f"its command does not parse as `gatelab repro {table.name}`: {command!r}"}
                    )  # fmt: skip
                continue
            rerun.resume = False
            rerun.verify = rerun.verify_rows = None
            rerun.dry_run = True  # run functions skip their side files
            rerun.results_dir = scratch  # ... and any they write anyway land here
            if args.data_dir is not None:
                rerun.data_dir = args.data_dir
            wanted = {ledger.record_key(r): r for r in recs}
            book = _RowBook(
                table, rerun, ledger_name, res_dir, chosen={k: r.get("config_hash") for k, r in wanted.items()}
            )
            rerun = book.install(rerun)
            options = _options_json(rerun)
            new: dict[tuple[Any, ...], dict[str, Any]] = {}
            produced, close = _produce(table, rerun)
            try:
                for row, dt, whole in produced:
                    key = book.key_of(row)
                    if key not in wanted:
                        continue
                    new[key] = _finish_row(
                        table, book, row, ledger_name=ledger_name, args=rerun, stamp={"command": command,
                        "commit": "", "machine": "", "date": ""}, wall_s=dt, whole_run=whole,
                        options=options, datasets={}, digests={},
                    )  # fmt: skip
                    if len(new) == len(wanted):
                        break
            finally:
                close()
            for key, rec in wanted.items():
                reports.append(_compare(table, number[id(rec)], rec, new.get(key)))
    reports.sort(key=lambda r: r["record"])
    lines = [f"verify {ledger_name}: {len(reports)} recorded row(s) of {path} re-run"]
    for r in reports:
        lines.append(f"{'PASS' if r['passed'] else 'FAIL'} record {r['record']}: {r['key']}")
        for c in r["checks"]:
            diff = "—" if c["diff"] is None else f"{c['diff']:.3g}"
            lines.append(
                f"    {c['metric']}: recorded {c['recorded']!r}, new {c['new']!r}, |diff| {diff}, "
                f"tolerance {c['tolerance']:g}: {'ok' if c['passed'] else 'FAIL'}"
            )
        if not r["passed"]:
            lines.append(f"    {r['reason']}")
    failed = sum(1 for r in reports if not r["passed"])
    lines.append(f"{len(reports) - failed} passed, {failed} failed")
    return ReproResult([], "\n".join(lines) + "\n", None, None, verify=reports)
