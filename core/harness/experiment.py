"""Experiments: registered data modules and tasks, run from one :class:`ExperimentConfig`.

A domain plugs in by registering, never by editing the harness:

* models with :func:`gatelab.core.registry.register_model`;
* data modules with :func:`register_datamodule` -- a factory
  ``factory(data_dir: Path, **kwargs) -> LightningDataModule`` (``data_dir`` is the resolved data
  directory, see :func:`gatelab.core.harness.data.resolve_data_dir`);
* task classes (subclasses of :class:`gatelab.core.harness.task.GatelabTask`) with
  :func:`register_task`.

Factories and task classes may be registered as ``"package.module:attr"`` strings, imported on
first use, so a domain's ``registry`` module declares them without importing Lightning (the
entries live in :data:`gatelab.core.registry.DATAMODULES` and :data:`~gatelab.core.registry.TASKS`).

:func:`run_experiment` seeds everything, builds the data module, the model (its keyword
arguments are ``datamodule.model_kwargs()``, when the data module defines it, updated with
``model.kwargs`` from the config, which win), the task and the trainer; writes the resolved
config to ``<run dir>/config.yaml``; fits; tests the best checkpoint; writes ``metrics.json`` and
``run.json`` (provenance) and returns an :class:`ExperimentResult`. Run directories are
``<output_dir>/<name>/seed<seed>/version_<n>`` (``eval_<n>`` for test-only runs); a resumed run
continues in the directory of its checkpoint (see :mod:`gatelab.core.harness.resume`).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gatelab.core.config import ConfigError, save_yaml
from gatelab.core.registry import DATAMODULES, TASKS

from . import provenance
from .configs import CheckpointConfig, ComponentConfig, ExperimentConfig, load_experiment
from .data import resolve_data_dir

if TYPE_CHECKING:  # pragma: no cover
    import lightning as L

    from .task import GatelabTask

__all__ = [
    "ExperimentConfig",
    "ExperimentResult",
    "build_datamodule",
    "evaluate",
    "get_datamodule",
    "get_task",
    "list_datamodules",
    "list_tasks",
    "load_experiment",
    "register_datamodule",
    "register_task",
    "run_experiment",
]


def register_datamodule(
    name: str, factory: Callable[..., Any] | str | None = None, *, domain: str = "core"
) -> Any:
    """Register a data-module factory under ``name`` (also usable as a decorator).

    ``factory(data_dir: Path, **kwargs)`` returns a ``LightningDataModule``; ``kwargs`` come from
    ``data.kwargs`` in the experiment config and are checked against the factory's signature
    (an unknown key raises :class:`ConfigError`). The data module may define
    ``model_kwargs() -> dict`` to size the model from the data (number of variables, feature
    map, ...). ``factory`` may be a ``"module:attr"`` string imported on first use. Entries live
    in :data:`gatelab.core.registry.DATAMODULES`.
    """
    if factory is None:

        def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
            DATAMODULES.register(name, fn, domain=domain)
            return fn

        return deco
    DATAMODULES.register(name, factory, domain=domain)
    return factory


def register_task(name: str, task: type | str | None = None, *, domain: str = "core") -> Any:
    """Register a :class:`~gatelab.core.harness.task.GatelabTask` subclass under ``name``
    (``task.name`` in configs). Also a class decorator; ``task`` may be a ``"module:Class"``
    string imported on first use. Entries live in :data:`gatelab.core.registry.TASKS`."""
    if task is None:

        def deco(cls: type) -> type:
            TASKS.register(name, cls, domain=domain)
            return cls

        return deco
    TASKS.register(name, task, domain=domain)
    return task


def get_datamodule(name: str) -> Callable[..., Any]:
    """The data-module factory registered as ``name`` (:class:`ConfigError` if unknown)."""
    return DATAMODULES.get(name)


def get_task(name: str) -> type[GatelabTask]:
    """The task class registered as ``name`` (:class:`ConfigError` if unknown)."""
    return TASKS.get(name)


def list_datamodules(domain: str | None = None) -> list[str]:
    """Sorted names of registered data modules (after loading the domains' registrations)."""
    return DATAMODULES.names(domain)


def list_tasks(domain: str | None = None) -> list[str]:
    """Sorted names of registered tasks (after loading the domains' registrations)."""
    return TASKS.names(domain)


def build_datamodule(
    cfg: ComponentConfig, data_dir: str | os.PathLike[str] | None = None
) -> L.LightningDataModule:
    """Call the registered factory ``cfg.name`` with ``data_dir`` and ``cfg.kwargs`` (checked strictly)."""
    factory = get_datamodule(cfg.name)
    kwargs = {"data_dir": resolve_data_dir(data_dir), **cfg.kwargs}
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as e:
        raise ConfigError(f"data.kwargs for data module {cfg.name!r}: {e}") from None
    except ValueError:  # no signature (builtins): let the call itself decide
        pass
    return factory(**kwargs)


@dataclasses.dataclass
class ExperimentResult:
    """What :func:`run_experiment` returns.

    ``metrics``: final logged values as floats (``train/*``, ``val/*`` of the last epoch, and
    ``test/*`` of the tested checkpoint). ``stopped_early``: the early-stopping rule ended the fit
    (read right after ``fit``: testing the best checkpoint restores the callbacks' state from it,
    which resets ``EarlyStopping.stopped_epoch`` whenever the best epoch precedes the stop).
    ``task``/``datamodule``/``trainer`` are the live objects (e.g. to capture gates after training).
    """

    run_dir: Path
    metrics: dict[str, float]
    config_path: Path
    best_checkpoint: str | None
    last_checkpoint: str | None
    wall_s: float
    model_kwargs: dict[str, Any]
    task: Any = dataclasses.field(repr=False, default=None)
    datamodule: Any = dataclasses.field(repr=False, default=None)
    trainer: Any = dataclasses.field(repr=False, default=None)
    stopped_early: bool = False


def _stopped_early(trainer: Any) -> bool:
    """Whether ``trainer``'s ``EarlyStopping`` callback ended the fit (its ``stopped_epoch`` is
    set when the rule fires). Call it before ``trainer.test(ckpt_path=...)``, which reloads it."""
    es = getattr(trainer, "early_stopping_callback", None)
    return es is not None and int(getattr(es, "stopped_epoch", 0) or 0) > 0


def _new_run_dir(cfg: ExperimentConfig, prefix: str) -> Path:
    base = Path(cfg.output_dir) / cfg.name / f"seed{cfg.seed}"
    n = 0
    while (base / f"{prefix}_{n}").exists():
        n += 1
    return base / f"{prefix}_{n}"


def _floats(metrics: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            continue
    return out


def _has_hook(dm: Any, hook: str) -> bool:
    """Whether data module ``dm`` provides ``hook`` (overridden in its class, or set on the
    instance as ``LightningDataModule.from_datasets`` does)."""
    import lightning as L

    fn = getattr(dm, hook, None)
    fn = getattr(fn, "__func__", fn)
    return fn is not None and fn is not getattr(L.LightningDataModule, hook, None)


def _sync_callback(run_dir: Path) -> Any:
    """A callback that makes every DDP rank use rank 0's run directory for checkpoints."""
    from lightning.pytorch.callbacks import Callback, ModelCheckpoint

    class _SyncRunDir(Callback):
        def __init__(self) -> None:
            self.run_dir = str(run_dir)

        def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
            self.run_dir = trainer.strategy.broadcast(self.run_dir)
            for cb in trainer.callbacks:
                if isinstance(cb, ModelCheckpoint):
                    cb.dirpath = os.path.join(self.run_dir, "checkpoints")

    return _SyncRunDir()


def run_experiment(
    cfg: ExperimentConfig | Mapping[str, Any],
    *,
    stage: str = "fit",
    ckpt_path: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    callbacks: Sequence[Any] = (),
    argv: Sequence[str] | None = None,
) -> ExperimentResult:
    """Run one experiment.

    Args:
        cfg: the experiment (an :class:`ExperimentConfig` or its dict; unknown keys raise).
        stage: ``"fit"`` (train, then test the best checkpoint when ``cfg.test`` and the data
            module has a test split) or ``"test"`` (evaluate ``ckpt_path`` only).
        ckpt_path: for ``fit``, a checkpoint to resume from: a path, ``"auto"`` (the newest
            checkpoint of this experiment, ``<output_dir>/<name>/seed<seed>/version_*``, or a
            fresh start when there is none) or ``"last"`` (the same, an error when there is
            none); a checkpoint of this experiment continues in its own run directory. For
            ``test``, the checkpoint to evaluate (required).
        data_dir: data directory flag (see :func:`~gatelab.core.harness.data.resolve_data_dir`).
        callbacks: extra Lightning callbacks.
        argv: the CLI arguments, recorded in ``run.json``.

    Raises:
        ConfigError: unknown model / data module / task / key, or a bad value.
    """
    from .trainer import build_trainer, seed_everything
    from .validation import validate_experiment

    if not isinstance(cfg, ExperimentConfig):
        cfg = ExperimentConfig.from_dict(cfg)
    if stage not in ("fit", "test"):
        raise ConfigError(f"stage={stage!r} must be 'fit' or 'test'")
    if stage == "test" and ckpt_path is None:
        raise ConfigError("stage='test' needs a checkpoint (ckpt_path / --ckpt)")
    resume_choice = None
    if stage == "fit" and ckpt_path is not None:  # auto / last / a path, vetted before any data is read
        from .resume import resolve_resume

        resume_choice = resolve_resume(
            ckpt_path, Path(cfg.output_dir) / cfg.name / f"seed{cfg.seed}", cfg.model.name, cfg.task.name
        )
        for note in resume_choice.notes:
            print(f"gatelab: --resume {ckpt_path}: {note}")
        ckpt_path = resume_choice.checkpoint
    elif ckpt_path is not None:
        from .resume import check_checkpoint

        check_checkpoint(ckpt_path, cfg.model.name, cfg.task.name, training=False)
    validate_experiment(cfg)  # kwargs, monitors, Trainer extras, callbacks: before any data is read
    task_cls = get_task(cfg.task.name)

    t0 = time.perf_counter()
    seed_everything(cfg.seed, cfg.trainer.deterministic)
    dm = build_datamodule(cfg.data, data_dir)

    if stage == "fit":
        model_kwargs = dict(dm.model_kwargs()) if callable(getattr(dm, "model_kwargs", None)) else {}
        model_kwargs.update(cfg.model.kwargs)
        task = task_cls(model_name=cfg.model.name, model_kwargs=model_kwargs, task=cfg.task)
    else:
        # check_checkpoint (above) already vetted its model and task names
        task = task_cls.load_from_checkpoint(str(ckpt_path), map_location="cpu", weights_only=True)
        model_kwargs = dict(task.hparams.get("model_kwargs") or {})

    continuing = resume_choice is not None and resume_choice.run_dir is not None
    if continuing:
        run_dir = resume_choice.run_dir  # continue the interrupted run (logs, best-k tracking)
    else:
        run_dir = _new_run_dir(cfg, "version" if stage == "fit" else "eval")
    rank_zero = provenance.is_rank_zero()
    config_path = run_dir / "config.yaml"
    if rank_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_yaml(cfg, config_path)
    sync = _sync_callback(run_dir)
    trainer_cfg = cfg.trainer
    if stage == "test":  # evaluation saves no checkpoints and never stops early
        trainer_cfg = dataclasses.replace(
            trainer_cfg, checkpoint=CheckpointConfig(enabled=False), early_stopping=None
        )
    extra = [sync, *callbacks]
    if stage == "fit":
        from .resume import ExactResume

        extra.append(ExactResume(cfg.seed, csv_logs=[run_dir / "csv" / "metrics.csv"] if continuing else ()))
    trainer = build_trainer(trainer_cfg, run_dir=run_dir, callbacks=extra)

    metrics: dict[str, float] = {}
    best = last = None
    stopped_early = False
    if stage == "fit":
        trainer.fit(task, datamodule=dm, ckpt_path=str(ckpt_path) if ckpt_path else None)
        stopped_early = _stopped_early(trainer)  # before test(), which reloads the callback state
        metrics.update(_floats(trainer.callback_metrics))
        ck = trainer.checkpoint_callback
        if ck is not None:
            best = getattr(ck, "best_model_path", "") or None
            last = getattr(ck, "last_model_path", "") or None
        if cfg.test and _has_hook(dm, "test_dataloader"):
            results = trainer.test(task, datamodule=dm, ckpt_path=best or last, verbose=False)
            for r in results:
                metrics.update(_floats(r))
    else:
        results = trainer.test(task, datamodule=dm, verbose=False)
        for r in results:
            metrics.update(_floats(r))
        best = str(ckpt_path)

    run_dir = Path(sync.run_dir)  # rank 0's directory on every rank
    config_path = run_dir / "config.yaml"
    wall = time.perf_counter() - t0
    if trainer.is_global_zero:
        prior = run_dir / "metrics.json"
        if continuing and prior.is_file():
            # resuming a finished run trains nothing: keep its train/val values, update the rest
            metrics = {**json.loads(prior.read_text()), **metrics}
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        info = {
            "stage": stage,
            "command": provenance.command_line(list(argv) if argv is not None else None),
            "commit": provenance.git_commit(),
            "machine": provenance.machine(),
            "date": provenance.now_iso(),
            "wall_s": round(wall, 3),
            "data_dir": str(resolve_data_dir(data_dir)),
            "model_kwargs": model_kwargs,
            "best_checkpoint": best,
            "last_checkpoint": last,
            "resumed_from": str(ckpt_path) if stage == "fit" and ckpt_path else None,
            "stopped_early": stopped_early,
            "world_size": trainer.world_size,
        }
        (run_dir / "run.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    return ExperimentResult(
        run_dir=run_dir,
        metrics=metrics,
        config_path=config_path,
        best_checkpoint=best,
        last_checkpoint=last,
        wall_s=wall,
        model_kwargs=model_kwargs,
        task=task,
        datamodule=dm,
        trainer=trainer,
        stopped_early=stopped_early,
    )


def evaluate(
    cfg: ExperimentConfig | Mapping[str, Any],
    ckpt_path: str | os.PathLike[str],
    *,
    data_dir: str | os.PathLike[str] | None = None,
    argv: Sequence[str] | None = None,
) -> ExperimentResult:
    """Test checkpoint ``ckpt_path`` on the config's data module (``run_experiment(stage="test")``)."""
    return run_experiment(cfg, stage="test", ckpt_path=ckpt_path, data_dir=data_dir, argv=argv)
