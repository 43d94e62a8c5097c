"""Paper tables as data: a :class:`Recipe` declares a table's grid and settings; one runner
(:func:`run_cell` / :func:`run_recipe`) turns each grid cell into an
:class:`~gatelab.core.harness.configs.ExperimentConfig`, asks the table run whether the row is
wanted (``args.should_run``: ``--resume`` / ``--verify``), runs it through
:func:`~gatelab.core.harness.experiment.run_experiment` and returns the ledger row.

A recipe is a frozen dataclass::

    RECIPE = Recipe(
        name="gateformer",
        models=("gateformer", "itransformer"),
        datasets=("etth1", "etth2"),
        horizons=(96, 192, 336, 720),            # or {"ili": (24, 36, 48, 60), ...}; or splits=(...)
        seeds=(2021, 2022, 2023),
        base={...},                               # the ExperimentConfig dict every cell starts from
        cell_paths={"dataset": "data.kwargs.dataset", "horizon": "data.kwargs.horizon"},
        overrides=(Override({"model": {"kwargs": {"gates": False}}}, model="gateformer-nogate"),),
        configure="gatelab.timeseries.recipes.gateformer:cell_settings",   # settings looked up in data tables
        option_paths={"patience": "trainer.early_stopping.patience"},
        budget=Budget(max_epochs=10),
        metrics={"mse": "test/mse", "mae": "test/mae"},
        references=(Reference("itransformer", "etth1", {"mse": 0.386}, "Liu et al. 2024, Table 10", horizon=96),),
    )

A cell's config, in order of precedence (later wins): :attr:`Recipe.base`; the cell (``name``,
``seed``, ``model.name`` -- :attr:`Recipe.model_names` maps a row label to a registered model --,
and :attr:`Recipe.cell_paths`); the matching :class:`Override`\\ s in order; the ``configure``
hook's settings (for values that live in a domain's tables, e.g. per-dataset presets); the
table's options named in :attr:`Recipe.option_paths`; the :class:`Budget`. Every row states its
budget in a ``budget`` column (the trainer's effective ``max_epochs`` / ``max_steps`` /
``limit_train_batches``, and the budget's note).

Cells whose configs are equal share one run (:func:`run_shared`; :func:`run_recipe` groups
them): one training tested on several test sets gives one row per test set, each reading its
own metric (``metrics={"psnr": "test/{dataset}/psnr"}``: metric names may name cell fields).

Domain code keeps only what is specific to it: the ``configure`` hook, extra row fields, plots,
derived rows (averages) and summaries.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import importlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from gatelab.core.config import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .experiment import ExperimentResult

__all__ = [
    "Budget",
    "Cell",
    "CellRun",
    "Override",
    "Recipe",
    "Reference",
    "recorded_row",
    "run_cell",
    "run_recipe",
    "run_shared",
]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _as_tuple(value: Any) -> tuple[Any, ...] | None:
    if value is None:
        return None
    return tuple(value) if isinstance(value, (tuple, list, frozenset, set)) else (value,)


def _set_path(cfg: dict[str, Any], path: str, value: Any) -> None:
    """``cfg["a"]["b"]["c"] = value`` for ``path = "a.b.c"`` (intermediate dicts created)."""
    *parents, leaf = path.split(".")
    node = cfg
    for p in parents:
        child = node.get(p)
        if child is None:
            child = node[p] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"recipe path {path!r}: {p!r} holds {child!r}, not a mapping")
        node = child
    node[leaf] = value


def _get_path(cfg: Mapping[str, Any], path: str) -> Any:
    node: Any = cfg
    for p in path.split("."):
        if not isinstance(node, Mapping) or p not in node:
            return None
        node = node[p]
    return node


def _merge(into: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merge key by key, anything else replaces (a copy of) the old value."""
    for k, v in update.items():
        if isinstance(v, Mapping) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = copy.deepcopy(dict(v) if isinstance(v, Mapping) else v)
    return into


@dataclasses.dataclass(frozen=True)
class Reference:
    """A published value: ``values`` (metric -> number) of ``model`` on ``dataset`` at ``horizon``
    or ``split`` (optionally ``variant``), from ``source`` (paper, table)."""

    model: str
    dataset: str
    values: Mapping[str, float]
    source: str
    horizon: int | None = None
    split: str | None = None
    variant: str | None = None

    def __post_init__(self) -> None:
        if (self.horizon is None) == (self.split is None):
            raise ValueError(f"reference {self.model}/{self.dataset}: give exactly one of horizon or split")
        if not self.source:
            raise ValueError(f"reference {self.model}/{self.dataset}: the source is required")

    def row(self) -> dict[str, Any]:
        """The :class:`~gatelab.core.harness.repro.ReproTable` reference dict."""
        out: dict[str, Any] = {"model": self.model, "dataset": self.dataset}
        out.update({"horizon": self.horizon} if self.horizon is not None else {"split": self.split})
        if self.variant is not None:
            out["variant"] = self.variant
        return {**out, **self.values}


@dataclasses.dataclass(frozen=True)
class Cell:
    """One grid point: a row of the table (``horizon`` or ``split`` set, not both; ``variant``
    labels otherwise equal rows, e.g. ``quick``)."""

    model: str
    dataset: str
    seed: int
    horizon: int | None = None
    split: str | None = None
    variant: str | None = None

    @property
    def where(self) -> int | str:
        """The horizon, else the split."""
        return self.horizon if self.horizon is not None else str(self.split)

    def key(self) -> dict[str, Any]:
        """The row key: ``model``, ``dataset``, ``horizon`` or ``split``, ``variant`` (when set), ``seed``."""
        out: dict[str, Any] = {"model": self.model, "dataset": self.dataset}
        out.update({"horizon": self.horizon} if self.horizon is not None else {"split": self.split})
        if self.variant is not None:
            out["variant"] = self.variant
        out["seed"] = self.seed
        return out


@dataclasses.dataclass(frozen=True)
class Override:
    """Settings (a nested dict, deep-merged into the config) for the cells that match every given
    field; a field is a value or a tuple of values, ``None`` matches all."""

    set: Mapping[str, Any]
    model: str | tuple[str, ...] | None = None
    dataset: str | tuple[str, ...] | None = None
    horizon: int | tuple[int, ...] | None = None
    split: str | tuple[str, ...] | None = None

    def matches(self, cell: Cell) -> bool:
        for field in ("model", "dataset", "horizon", "split"):
            allowed = _as_tuple(getattr(self, field))
            if allowed is not None and getattr(cell, field) not in allowed:
                return False
        return True


@dataclasses.dataclass(frozen=True)
class Budget:
    """How long each cell trains: ``trainer.max_epochs`` / ``max_steps`` / ``limit_train_batches``
    where set (``None`` keeps the config's value); ``note`` names further reductions (stated in
    the row's ``budget`` column)."""

    max_epochs: int | None = None
    max_steps: int | None = None
    limit_train_batches: int | float | None = None
    note: str = ""

    def apply(self, cfg: dict[str, Any]) -> dict[str, Any]:
        for key in ("max_epochs", "max_steps", "limit_train_batches"):
            value = getattr(self, key)
            if value is not None:
                _set_path(cfg, f"trainer.{key}", value)
        return cfg

    def describe(self, cfg: Mapping[str, Any]) -> str:
        """The effective budget of ``cfg``: ``max_epochs=10, limit_train_batches=256; <note>``."""
        parts = [
            f"{key}={_get_path(cfg, f'trainer.{key}')}"
            for key in ("max_epochs", "max_steps", "limit_train_batches")
            if _get_path(cfg, f"trainer.{key}") not in (None, -1)
        ]
        text = ", ".join(parts) or "unlimited"
        return f"{text}; {self.note}" if self.note else text


def _resolve(hook: Callable[..., Any] | str | None) -> Callable[..., Any] | None:
    if isinstance(hook, str):
        mod, _, attr = hook.partition(":")
        return getattr(importlib.import_module(mod), attr)
    return hook


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A paper table as data (see the module docstring).

    Args:
        name: the table (ledger) name.
        models: row labels (registered models, or labels mapped by ``model_names``).
        datasets: dataset names.
        base: the ExperimentConfig dict every cell starts from.
        seeds: default seeds.
        horizons: horizons of every dataset, or ``{dataset: horizons}``.
        splits: splits of every dataset, or ``{dataset: splits}`` (when the table has no horizons).
        overrides: per-model / per-dataset / per-horizon settings.
        configure: ``configure(cell, options) -> settings`` (or ``"module:function"``): settings
            looked up in a domain's tables (presets); ``options`` are the table run's options.
        budget: the default :class:`Budget`.
        references: published values with their sources.
        metrics: row column -> ``run_experiment`` metric (``{"mse": "test/mse"}``).
        cell_paths: cell field (``dataset``, ``horizon``, ``split``) -> config path.
        option_paths: table option -> config path (set when the option is not ``None``).
        model_names: row label -> registered model name (default: the label).
        run_name: ``name`` of each run, formatted with ``model``, ``dataset``, ``where``, ``seed``
            (``configure`` may set another).
        not_hashed: config paths left out of the row's config hash (paths and display only).
    """

    name: str
    models: tuple[str, ...]
    datasets: tuple[str, ...]
    base: Mapping[str, Any]
    seeds: tuple[int, ...] = (0,)
    horizons: tuple[int, ...] | Mapping[str, tuple[int, ...]] = ()
    splits: tuple[str, ...] | Mapping[str, tuple[str, ...]] = ()
    overrides: tuple[Override, ...] = ()
    configure: Callable[[Cell, Mapping[str, Any]], Mapping[str, Any]] | str | None = None
    budget: Budget = Budget()
    references: tuple[Reference, ...] = ()
    metrics: Mapping[str, str] = dataclasses.field(default_factory=dict)
    cell_paths: Mapping[str, str] = dataclasses.field(default_factory=dict)
    option_paths: Mapping[str, str] = dataclasses.field(default_factory=dict)
    model_names: Mapping[str, str] = dataclasses.field(default_factory=dict)
    run_name: str = "{model}-{dataset}-{where}"
    not_hashed: tuple[str, ...] = ("output_dir", "trainer.progress_bar")

    def __post_init__(self) -> None:
        if not self.models or not self.datasets:
            raise ValueError(f"recipe {self.name!r}: models and datasets must not be empty")
        if bool(self.horizons) == bool(self.splits):
            raise ValueError(f"recipe {self.name!r}: give horizons or splits (one of the two)")
        for field in self.cell_paths:
            if field not in ("dataset", "horizon", "split", "seed"):
                raise ValueError(f"recipe {self.name!r}: cell_paths key {field!r} is not a cell field")

    def horizons_of(self, dataset: str) -> tuple[int, ...]:
        """The horizons of ``dataset`` (empty when the recipe has splits)."""
        if isinstance(self.horizons, Mapping):
            if dataset not in self.horizons:
                raise ConfigError(f"recipe {self.name!r} has no horizons for dataset {dataset!r}")
            return tuple(self.horizons[dataset])
        return tuple(self.horizons)

    def splits_of(self, dataset: str) -> tuple[str, ...]:
        """The splits of ``dataset`` (empty when the recipe has horizons)."""
        if isinstance(self.splits, Mapping):
            if dataset not in self.splits:
                raise ConfigError(f"recipe {self.name!r} has no splits for dataset {dataset!r}")
            return tuple(self.splits[dataset])
        return tuple(self.splits)

    def cells(
        self,
        *,
        datasets: Iterable[str] | None = None,
        models: Iterable[str] | None = None,
        seeds: Iterable[int] | None = None,
        horizons: Iterable[int] | None = None,
        splits: Iterable[str] | None = None,
    ) -> list[Cell]:
        """The grid in table order: dataset, seed, horizon/split, model (arguments narrow it)."""
        out = []
        for ds in datasets if datasets is not None else self.datasets:
            wheres: list[tuple[int | None, str | None]]
            if self.splits:
                wheres = [(None, s) for s in (splits if splits is not None else self.splits_of(ds))]
            else:
                wheres = [
                    (int(h), None) for h in (horizons if horizons is not None else self.horizons_of(ds))
                ]
            for seed in seeds if seeds is not None else self.seeds:
                for h, split in wheres:
                    for model in models if models is not None else self.models:
                        out.append(Cell(model, ds, int(seed), horizon=h, split=split))
        return out

    def config(
        self, cell: Cell, options: Mapping[str, Any] = _EMPTY, budget: Budget | None = None
    ) -> dict[str, Any]:
        """The ExperimentConfig dict of ``cell`` (see the module docstring for the precedence)."""
        cfg = copy.deepcopy(dict(self.base))
        cfg["name"] = self.run_name.format(
            model=cell.model, dataset=cell.dataset, where=cell.where, seed=cell.seed
        )
        cfg["seed"] = int(cell.seed)
        _set_path(cfg, "model.name", self.model_names.get(cell.model, cell.model))
        for field, path in self.cell_paths.items():
            _set_path(cfg, path, getattr(cell, field))
        for ov in self.overrides:
            if ov.matches(cell):
                _merge(cfg, ov.set)
        configure = _resolve(self.configure)
        if configure is not None:
            _merge(cfg, configure(cell, options))
        for opt, path in self.option_paths.items():
            if options.get(opt) is not None:
                _set_path(cfg, path, options[opt])
        return (budget if budget is not None else self.budget).apply(cfg)

    def hashed(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        """``cfg`` without ``seed`` (part of the row's key) and the :attr:`not_hashed` paths: what
        a row's ``config_hash`` covers, equal for every seed of a cell."""
        out = copy.deepcopy(dict(cfg))
        out.pop("seed", None)
        for path in self.not_hashed:
            *parents, leaf = path.split(".")
            node: Any = out
            for p in parents:
                node = node.get(p) if isinstance(node, dict) else None
            if isinstance(node, dict):
                node.pop(leaf, None)
        return out

    def reference_rows(self) -> list[dict[str, Any]]:
        """:attr:`references` as :class:`~gatelab.core.harness.repro.ReproTable` references."""
        return [r.row() for r in self.references]

    def sources(self) -> list[str]:
        """The distinct sources of the references, in order."""
        return list(dict.fromkeys(r.source for r in self.references))


@dataclasses.dataclass
class CellRun:
    """A cell that ran: its config, the experiment result and the ledger row (add to it freely)."""

    cell: Cell
    config: dict[str, Any]
    result: ExperimentResult
    row: dict[str, Any]


def _options(args: argparse.Namespace | Mapping[str, Any]) -> Mapping[str, Any]:
    return args if isinstance(args, Mapping) else vars(args)


def _metric_key(metric: str, cell: Cell) -> str:
    """``metric`` with the cell's fields filled in (``"test/{dataset}/psnr"`` -> ``"test/Kodak24/psnr"``)."""
    try:
        return metric.format(**dataclasses.asdict(cell), where=cell.where)
    except (KeyError, IndexError, ValueError) as e:
        raise ConfigError(
            f"metric {metric!r}: {e!r} is not a cell field (model, dataset, seed, horizon, split, variant, where)"
        ) from None


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    """The first config path where ``a`` and ``b`` differ (for error messages)."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for k in sorted(set(a) | set(b), key=str):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
    return f"{path or '<root>'} ({a!r} vs {b!r})"


def run_shared(
    recipe: Recipe,
    cells: Sequence[Cell],
    args: argparse.Namespace,
    *,
    budget: Budget | None = None,
    data_dir: str | None = None,
    before_run: Callable[[Cell, dict[str, Any]], None] | None = None,
    options: Mapping[str, Any] | None = None,
    ckpt_path: str | None = None,
) -> list[CellRun]:
    """Serve several cells with ONE run: cells whose configs are equal (e.g. one training tested
    on several test sets, the cells differing only in the ``dataset`` their metrics are read
    from: ``metrics={"psnr": "test/{dataset}/psnr"}``). Cells whose configs differ raise
    :class:`ConfigError` naming the first differing path.

    ``args.should_run`` is asked for every cell; the run happens when any cell is wanted and
    returns a :class:`CellRun` for each wanted cell (all sharing one result), in order; ``[]``
    when none is. ``ckpt_path`` is passed to ``run_experiment`` (``"auto"``: continue the
    newest checkpoint of the run's experiment, see :mod:`~gatelab.core.harness.resume`).
    Arguments otherwise as :func:`run_cell`.
    """
    from .experiment import run_experiment

    if not cells:
        return []
    budget = budget if budget is not None else recipe.budget
    opts = options if options is not None else _options(args)
    configs = [recipe.config(cell, opts, budget) for cell in cells]
    for cell, cfg in zip(cells[1:], configs[1:], strict=True):
        if cfg != configs[0]:
            raise ConfigError(
                f"recipe {recipe.name!r}: cells {cells[0].key()} and {cell.key()} cannot share one run: "
                f"their configs differ at {_first_difference(configs[0], cfg)}"
            )
    cfg = configs[0]
    hashed = recipe.hashed(cfg)
    should_run = getattr(args, "should_run", None)
    # the row's key includes its budget column (a ledger key): ask with it, as the row will be keyed
    described = budget.describe(cfg)
    wanted = [cell for cell in cells if should_run is None or should_run({**cell.key(), "budget": described}, hashed)]
    if not wanted:
        return []
    if before_run is not None:
        before_run(wanted[0], cfg)
    res = run_experiment(
        cfg,
        data_dir=data_dir if data_dir is not None else getattr(args, "data_dir", None),
        ckpt_path=ckpt_path,
    )
    out = []
    for cell in wanted:
        row: dict[str, Any] = dict(cell.key())
        for column, metric in recipe.metrics.items():
            key = _metric_key(metric, cell)
            if key not in res.metrics:
                raise ConfigError(
                    f"recipe {recipe.name!r}, run {cfg['name']} (seed {cell.seed}): no metric {key!r} "
                    f"(the run has {sorted(res.metrics)})"
                )
            row[column] = float(res.metrics[key])
        row["budget"] = described
        row["wall_s"] = round(res.wall_s, 2)
        row["config"] = json.dumps(hashed, sort_keys=True, default=str)
        out.append(CellRun(cell, cfg, res, row))
    return out


def run_cell(
    recipe: Recipe,
    cell: Cell,
    args: argparse.Namespace,
    *,
    budget: Budget | None = None,
    data_dir: str | None = None,
    before_run: Callable[[Cell, dict[str, Any]], None] | None = None,
    options: Mapping[str, Any] | None = None,
) -> CellRun | None:
    """Run one cell unless ``args.should_run`` declines it (then ``None``; :func:`recorded_row`
    gives its record). ``before_run(cell, config)`` is called just before the run starts;
    ``options`` (default: ``vars(args)``) are what ``configure`` and ``option_paths`` read.

    The row: the cell's key, each of :attr:`Recipe.metrics` (the metric name may name cell
    fields, ``"test/{dataset}/psnr"``; a missing metric is a :class:`ConfigError` naming the
    run and the metrics it has), ``budget`` (the effective budget), ``wall_s`` (training +
    test) and ``config`` (the hashed config as JSON).
    """
    done = run_shared(
        recipe, [cell], args, budget=budget, data_dir=data_dir, before_run=before_run, options=options
    )
    return done[0] if done else None


def recorded_row(
    recipe: Recipe,
    cell: Cell,
    args: argparse.Namespace,
    *,
    budget: Budget | None = None,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The ledger's record of ``cell`` with the config it would run with now (``args.recorded``),
    or ``None``: how a row derived from skipped cells (an average) finds their values."""
    recorded = getattr(args, "recorded", None)
    if recorded is None:
        return None
    budget = budget if budget is not None else recipe.budget
    opts = options if options is not None else _options(args)
    cfg = recipe.config(cell, opts, budget)
    return recorded({**cell.key(), "budget": budget.describe(cfg)}, recipe.hashed(cfg))


def run_recipe(
    recipe: Recipe,
    args: argparse.Namespace,
    cells: Sequence[Cell] | None = None,
    *,
    budget: Budget | None = None,
    on_run: Callable[[CellRun], Mapping[str, Any] | None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Rows of ``cells`` (default: the grid for ``args.seeds``); ``on_run(cell_run)`` may return
    extra row fields (plots and clean-up go there too).

    Cells whose configs are equal share one run (:func:`run_shared`): the groups run in the
    order of their first cell, each cell's row follows its group's run."""
    if cells is None:
        cells = recipe.cells(seeds=getattr(args, "seeds", None))
    budget = budget if budget is not None else recipe.budget
    opts = _options(args)
    groups: dict[str, list[Cell]] = {}
    for cell in cells:
        cfg = recipe.config(cell, opts, budget)
        groups.setdefault(json.dumps(cfg, sort_keys=True, default=str), []).append(cell)
    for group in groups.values():
        for done in run_shared(recipe, group, args, budget=budget):
            if on_run is not None:
                done.row.update(on_run(done) or {})
            yield done.row
