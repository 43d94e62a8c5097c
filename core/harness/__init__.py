"""gatelab's experiment harness: configs, training task, trainer, experiments, paper tables, ledger.

Names are exported lazily (PEP 562): ``import gatelab.core.harness`` imports nothing heavy, and
Lightning is imported only when a Lightning-backed name (``GatelabTask``, ``build_trainer``,
``seed_everything`` ...) is first used. See ``docs/harness.md``.

Modules: :mod:`.data` (data directory, dataset specs, checksums), :mod:`.ledger` (results
JSONL + markdown), :mod:`.configs` (strict dataclass configs), :mod:`.task` (Lightning task),
:mod:`.trainer` (Trainer factory, seeding), :mod:`.experiment` (registries, ``run_experiment``),
:mod:`.repro` (paper tables), :mod:`.provenance` (commit, machine, date), :mod:`.errors` (the
data errors), :mod:`.official` (imports from a user's checkout of a paper's official code),
:mod:`.cli` (the ``gatelab`` command).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gatelab.core.layers.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    # data
    "resolve_data_dir": "data",
    "DatasetSpec": "data",
    "register_dataset": "data",
    "list_datasets": "data",
    "get_dataset": "data",
    "locate": "data",
    "dataset_file": "data",
    "dataset_sha256": "data",
    "file_sha256": "data",
    "DataError": "errors",
    "DatasetNotFoundError": "errors",
    "ChecksumError": "errors",
    # ledger
    "append_records": "ledger",
    "read_records": "ledger",
    "render_markdown": "ledger",
    "validate_record": "ledger",
    "resolve_results_dir": "ledger",
    "LedgerError": "ledger",
    "paired_comparisons": "ledger",
    # paired statistics
    "Comparison": "stats",
    "PairedDifference": "stats",
    "paired_difference": "stats",
    # configs
    "TaskConfig": "configs",
    "SchedulerConfig": "configs",
    "TrainerConfig": "configs",
    "EarlyStoppingConfig": "configs",
    "CheckpointConfig": "configs",
    "ComponentConfig": "configs",
    "ExperimentConfig": "configs",
    "load_experiment": "configs",
    "apply_overrides": "configs",
    "CallbackConfig": "configs",
    "merge_configs": "configs",
    "validate_experiment": "validation",
    # task (Lightning)
    "GatelabTask": "task",
    "RegressionTask": "task",
    "ClassificationTask": "task",
    "LogLoss": "task",
    "build_optimizer": "task",
    "build_scheduler": "task",
    # trainer (Lightning)
    "build_trainer": "trainer",
    "seed_everything": "trainer",
    # experiments
    "register_datamodule": "experiment",
    "register_task": "experiment",
    "get_datamodule": "experiment",
    "get_task": "experiment",
    "list_datamodules": "experiment",
    "list_tasks": "experiment",
    "build_datamodule": "experiment",
    "run_experiment": "experiment",
    "evaluate": "experiment",
    "ExperimentResult": "experiment",
    # paper tables
    "ReproTable": "repro",
    "Option": "repro",
    "register_table": "repro",
    "list_tables": "repro",
    "get_table": "repro",
    "run_table": "repro",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:  # pragma: no cover
    from .configs import (
        CallbackConfig,
        CheckpointConfig,
        ComponentConfig,
        EarlyStoppingConfig,
        ExperimentConfig,
        SchedulerConfig,
        TaskConfig,
        TrainerConfig,
        apply_overrides,
        load_experiment,
        merge_configs,
    )
    from .data import (
        DatasetSpec,
        dataset_file,
        dataset_sha256,
        file_sha256,
        get_dataset,
        list_datasets,
        locate,
        register_dataset,
        resolve_data_dir,
    )
    from .errors import ChecksumError, DataError, DatasetNotFoundError
    from .experiment import (
        ExperimentResult,
        build_datamodule,
        evaluate,
        get_datamodule,
        get_task,
        list_datamodules,
        list_tasks,
        register_datamodule,
        register_task,
        run_experiment,
    )
    from .ledger import (
        LedgerError,
        append_records,
        paired_comparisons,
        read_records,
        render_markdown,
        resolve_results_dir,
        validate_record,
    )
    from .repro import Option, ReproTable, get_table, list_tables, register_table, run_table
    from .stats import Comparison, PairedDifference, paired_difference
    from .task import (
        ClassificationTask,
        GatelabTask,
        LogLoss,
        RegressionTask,
        build_optimizer,
        build_scheduler,
    )
    from .trainer import build_trainer, seed_everything
    from .validation import validate_experiment
