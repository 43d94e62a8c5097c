"""Exact resume: a killed run continues to the same weights, metrics and best checkpoint.

A Lightning checkpoint holds the weights, optimizer, scheduler, loop progress and callback
states, but not what decides the *next* random numbers, so a plain ``Trainer.fit(ckpt_path=...)``
replays the first epoch's data order and dropout masks. This module adds the missing state.

Two random streams
    gatelab separates the randomness of the training data from that of the model:

    * the **data stream**: everything the training ``DataLoader`` draws from the global RNGs
      (the seed of a ``RandomSampler`` without a generator, the base seed of the worker
      processes, ``torch.randperm`` in an ``IterableDataset``, augmentations in ``__getitem__``
      with ``num_workers=0``) runs on Python/NumPy/torch-CPU states seeded from
      ``(seed, epoch)`` when the epoch's iterator is created, and is swapped in around every
      ``next()``. The data order of epoch ``e`` is therefore a pure function of
      ``(seed, e)``, whatever the sampler;
    * the **model stream**: the global RNGs as the model sees them (dropout, noise, CUDA),
      saved in every checkpoint and restored on resume.

    Samplers (and batch samplers, and datasets) with ``set_epoch`` get ``set_epoch(e)`` right
    before the epoch's iterator is created, including batch samplers Lightning does not reach.

Mid-epoch checkpoints
    A checkpoint taken after ``k`` batches of an epoch resumes by re-creating that epoch's
    iterator and drawing (and discarding) its first ``k`` batches, so the rest of the epoch
    sees exactly the batches, in the order, of the uninterrupted run; this works for any
    ``DataLoader`` (map-style or iterable, any sampler). The training loop's epoch
    aggregates (``self.log(..., on_epoch=True)`` values and the ``torchmetrics`` states they
    point to) of the first ``k`` batches are saved too and restored before the first resumed
    batch (the entries re-created with their ``self.log`` options), so the epoch's ``train/*``
    values are those of the uninterrupted run, also for keys the remaining batches never log.

:class:`ExactResume` is the callback that does all this (``run_experiment`` adds it to every
fit); :class:`StepCheckpoint` saves checkpoints every ``n`` optimizer steps and/or every
``t`` seconds (``trainer.checkpoint.every_n_train_steps`` / ``train_time_interval``);
:func:`find_checkpoint` and :func:`check_checkpoint` find and vet the checkpoint
``--resume auto|last|PATH`` names.

Limits (stated, not hidden): exactness holds for ``num_workers=0`` or for workers whose
randomness is a function of the sample index or of the iterator's base seed; with
``persistent_workers=True`` the worker processes keep their RNG across epochs, so worker-side
augmentations after a resume differ. ``self.log`` entries with a custom ``reduce_fx`` or a
``sync_dist_group`` are not carried over. Under DDP every rank restores the streams
saved by rank 0 (identical across ranks when they draw alike); DDP resume is not covered by the
exactness tests.
"""

from __future__ import annotations

import dataclasses
import os
import random
import warnings
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch.utils.data import DataLoader

from gatelab.core.config import ConfigError

__all__ = [
    "CHECKPOINT_KEY",
    "EpochCheckpoint",
    "ExactResume",
    "ResumeChoice",
    "StepCheckpoint",
    "check_checkpoint",
    "data_seed",
    "find_checkpoint",
    "get_rng_state",
    "resolve_resume",
    "set_rng_state",
]

CHECKPOINT_KEY = "gatelab_resume"
_VERSION = 1


# --------------------------------------------------------------------------- RNG states


def get_rng_state(cuda: bool = True) -> dict[str, Any]:
    """The global RNG states as plain data (loadable with ``torch.load(weights_only=True)``).

    Keys: ``python`` (``random.getstate()`` as lists), ``numpy`` (the legacy global
    ``RandomState``: ``keys`` int64 tensor, ``pos``, ``has_gauss``, ``gauss``), ``torch``
    (CPU generator state, uint8 tensor) and, when ``cuda`` and CUDA is initialised, ``cuda``
    (one state per device).
    """
    version, state, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # noqa: NPY002 (the global state is what we save)
    out: dict[str, Any] = {
        "python": {"version": version, "state": list(state), "gauss": gauss},
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64).copy()),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if cuda and torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = list(torch.cuda.get_rng_state_all())
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore states from :func:`get_rng_state` (a missing ``cuda`` entry leaves CUDA as is)."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    npst = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            npst["name"],
            np.asarray(npst["keys"], dtype=np.int64).astype(np.uint32),
            int(npst["pos"]),
            int(npst["has_gauss"]),
            float(npst["gauss"]),
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def data_seed(seed: int, epoch: int) -> int:
    """The 63-bit seed of the data stream of ``epoch`` (a pure function of ``(seed, epoch)``)."""
    words = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), 0x6A7E1AB]).generate_state(2)
    return (int(words[0]) << 31 | int(words[1]) >> 1) & 0x7FFFFFFFFFFFFFFF


def _seed_data_stream(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch.default_generator.manual_seed(seed)  # CPU only: CUDA belongs to the model stream


# --------------------------------------------------------------------------- the data loader hook


class _DataStreamIter:
    """A DataLoader iterator whose ``next()`` draws from the data stream, not the model's."""

    def __init__(self, inner: Iterator[Any], state: dict[str, Any]) -> None:
        self.inner = inner
        self.state = state

    def __iter__(self) -> _DataStreamIter:
        return self

    def __next__(self) -> Any:
        model = get_rng_state(cuda=False)
        set_rng_state(self.state)
        try:
            return next(self.inner)
        finally:
            self.state = get_rng_state(cuda=False)
            set_rng_state(model)

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]


def _hooked_iter(self: DataLoader) -> Any:
    hook: ExactResume = type(self)._gatelab_resume_hook  # type: ignore[attr-defined]
    return hook._start_epoch(self, super(type(self), self).__iter__)


_HOOKED: dict[tuple[type, int], type] = {}


def _sampling_objects(dl: DataLoader) -> list[Any]:
    """The sampler, the batch sampler and its inner sampler of ``dl`` (deduplicated, in order)."""
    out: list[Any] = []
    batch_sampler = getattr(dl, "batch_sampler", None)
    for obj in (getattr(dl, "sampler", None), batch_sampler, getattr(batch_sampler, "sampler", None)):
        if obj is not None and all(obj is not o for o in out):
            out.append(obj)
    return out


def _set_epoch_everywhere(dl: DataLoader, epoch: int) -> None:
    for obj in [*_sampling_objects(dl), getattr(dl, "dataset", None)]:
        fn = getattr(obj, "set_epoch", None)
        if callable(fn):
            fn(epoch)


_PURE_SAMPLERS = (
    torch.utils.data.SequentialSampler,
    torch.utils.data.RandomSampler,
    torch.utils.data.SubsetRandomSampler,
    torch.utils.data.WeightedRandomSampler,
    torch.utils.data.BatchSampler,
    torch.utils.data.distributed.DistributedSampler,
)


def _sampler_states(dl: DataLoader) -> list[Any]:
    """Per sampling object: its ``state_dict()`` (stateful samplers), the state of its
    ``torch.Generator`` (samplers built with one), else ``None`` (stateless here)."""
    out: list[Any] = []
    for obj in _sampling_objects(dl):
        if callable(getattr(obj, "state_dict", None)) and callable(getattr(obj, "load_state_dict", None)):
            out.append({"state_dict": obj.state_dict()})
        elif isinstance(getattr(obj, "generator", None), torch.Generator):
            out.append({"generator": obj.generator.get_state()})
        else:
            out.append(None)
    return out


def _load_sampler_states(dl: DataLoader, states: list[Any]) -> None:
    objs = _sampling_objects(dl)
    if len(objs) != len(states):
        raise RuntimeError(
            f"exact resume: the training DataLoader has {len(objs)} sampling objects, the checkpoint "
            f"{len(states)}; the data module changed since it was written"
        )
    for obj, state in zip(objs, states):
        if state is None:
            continue
        if "state_dict" in state:
            obj.load_state_dict(state["state_dict"])
        else:
            obj.generator.set_state(state["generator"])


def _needs_replay(dl: DataLoader, states: list[Any]) -> bool:
    """Whether a sampling object keeps unsaved state across epochs: a custom sampler with
    neither ``state_dict`` nor a ``torch.Generator`` (e.g. one continuing a permutation)."""
    return any(
        state is None and not isinstance(obj, _PURE_SAMPLERS) for obj, state in zip(_sampling_objects(dl), states)
    )


# --------------------------------------------------------------------------- epoch aggregates


_REDUCE_FX = {"mean": torch.mean, "sum": torch.sum, "max": torch.max, "min": torch.min}


def _result_kind(meta: Any) -> str | None:
    for kind in ("mean", "sum", "max", "min"):
        if getattr(meta, f"is_{kind}_reduction"):
            return kind
    return None


def _save_epoch_aggregates(results: Any) -> dict[str, Any]:
    """The ``on_epoch`` entries of the training ``_ResultCollection``, as plain data: their
    ``self.log`` metadata, the running sums/counts (tensor values) or the states of the
    torchmetrics object logged (metric values)."""
    out: dict[str, Any] = {}
    for key, rm in results.items():
        meta = rm.meta
        kind = _result_kind(meta)
        sync = meta._sync
        if not meta.on_epoch or kind is None or (sync is not None and sync.group is not None):
            continue
        entry: dict[str, Any] = {
            "meta": {
                "fx": meta.fx,
                "name": meta.name,
                "prog_bar": meta.prog_bar,
                "logger": meta.logger,
                "on_step": meta.on_step,
                "on_epoch": meta.on_epoch,
                "reduce": kind,
                "enable_graph": meta.enable_graph,
                "add_dataloader_idx": meta.add_dataloader_idx,
                "dataloader_idx": meta.dataloader_idx,
                "metric_attribute": meta.metric_attribute,
                "sync_dist": bool(sync.should) if sync is not None else False,
                "rank_zero_only": bool(sync.rank_zero_only) if sync is not None else False,
            }
        }
        if rm.is_tensor:
            entry["value"] = rm.value.detach().cpu().clone()
            if kind == "mean":
                entry["cumulated_batch_size"] = rm.cumulated_batch_size.detach().cpu().clone()
        else:
            metric = rm.value
            states: dict[str, Any] = {}
            for name in metric._defaults:
                value = getattr(metric, name)
                states[name] = (
                    [v.detach().cpu().clone() for v in value] if isinstance(value, list) else value.detach().cpu().clone()
                )
            entry["states"] = states
            entry["update_count"] = int(metric._update_count)
        out[key] = entry
    return out


def _restore_epoch_aggregates(trainer: Any, pl_module: Any, saved: dict[str, Any]) -> None:
    """Re-create the saved entries in the (empty) training ``_ResultCollection`` before the first
    resumed batch, with the saved sums/counts or metric states: the resumed batches then add
    to them exactly as in the uninterrupted run."""
    results = trainer.fit_loop.epoch_loop._results
    for key, entry in saved.items():
        m = entry["meta"]
        kwargs = dict(
            prog_bar=m["prog_bar"],
            logger=m["logger"],
            on_step=m["on_step"],
            on_epoch=m["on_epoch"],
            reduce_fx=_REDUCE_FX[m["reduce"]],
            enable_graph=m["enable_graph"],
            add_dataloader_idx=m["add_dataloader_idx"],
            sync_dist=m["sync_dist"],
            sync_dist_fn=trainer.strategy.reduce,
            metric_attribute=m["metric_attribute"],
            rank_zero_only=m["rank_zero_only"],
            batch_size=1,
        )
        fx = m["fx"]
        old_idx = results.dataloader_idx
        results.dataloader_idx = m["dataloader_idx"]
        if m["dataloader_idx"] is not None and m["add_dataloader_idx"] and fx.endswith(f".{m['dataloader_idx']}"):
            fx = fx[: -len(f".{m['dataloader_idx']}")]
        try:
            if "states" in entry:
                metric = pl_module.get_submodule(m["metric_attribute"])
                for name, value in entry["states"].items():
                    current = getattr(metric, name)
                    if isinstance(current, list):
                        current[:] = [v.to(pl_module.device) for v in value]
                    else:
                        setattr(metric, name, value.to(current.device, current.dtype))
                metric._update_count = entry["update_count"]
                metric._computed = None
                results.log(fx, m["name"], metric, **kwargs)
            else:
                results.log(fx, m["name"], torch.zeros((), dtype=entry["value"].dtype), **kwargs)
                rm = results[key]
                rm.value = entry["value"].to(rm.value.device)
                if "cumulated_batch_size" in entry:
                    rm.cumulated_batch_size = entry["cumulated_batch_size"].to(rm.cumulated_batch_size.device)
        finally:
            results.dataloader_idx = old_idx


# --------------------------------------------------------------------------- CSV logs


def _csv_loggers(trainer: Any) -> list[Any]:
    from lightning.pytorch.loggers import CSVLogger

    return [lg for lg in trainer.loggers if isinstance(lg, CSVLogger)]


def _read_csv_logs(paths: Any) -> dict[str, tuple[list[str], list[dict[str, str]]]]:
    """``{normalised path: (header, rows)}`` of existing CSV logs (read before Lightning's
    CSV writer, created when the trainer is set up, deletes them)."""
    import csv

    out = {}
    for path in paths:
        if os.path.isfile(path):
            with open(path, newline="") as fh:
                reader = csv.DictReader(fh)
                out[os.path.normpath(path)] = (list(reader.fieldnames or []), list(reader))
    return out


def _continue_csv_logs(trainer: Any, saved: dict[str, tuple[list[str], list[dict[str, str]]]], step: int) -> None:
    """Write back the rows logged before the checkpoint (``step < global_step``; later rows were
    logged by the killed run after it and are logged again) so the log continues."""
    import csv

    if not trainer.is_global_zero:
        return  # only rank 0 writes logs
    for lg in _csv_loggers(trainer):
        writer = lg.experiment  # creating it deletes metrics.csv (Lightning)
        path = getattr(writer, "metrics_file_path", None)
        if not isinstance(path, str):
            continue
        header, rows = saved.get(os.path.normpath(path), ([], []))
        if not header:
            continue
        keep = [r for r in rows if not str(r.get("step", "")).strip() or int(float(r["step"])) < step]
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=header)
            w.writeheader()
            w.writerows(keep)
        writer.metrics_keys = list(header)


# --------------------------------------------------------------------------- the callback


class ExactResume(Callback):
    """Makes ``Trainer.fit(ckpt_path=...)`` continue bit-identically (see the module docstring).

    Args:
        seed: the experiment seed; the data stream of epoch ``e`` is seeded with
            :func:`data_seed(seed, e) <data_seed>`.
        csv_logs: ``metrics.csv`` files of the run being resumed, read now (Lightning's CSV
            logger deletes an existing file when the trainer is set up); their rows logged
            before the checkpoint's step are written back, so the log continues.

    Saved in every checkpoint under ``checkpoint["gatelab_resume"]``: the model-stream RNG
    states, the epoch of the current training iterator, the number of its batches consumed,
    the number of batches per epoch, and the epoch aggregates of those batches. A checkpoint
    without that entry (written without this callback) resumes with a warning and is not exact.
    """

    def __init__(self, seed: int, csv_logs: Sequence[str | os.PathLike[str]] = ()) -> None:
        super().__init__()
        self.seed = int(seed)
        self._csv_rows = _read_csv_logs(csv_logs)
        # Lightning's warnings that do not apply under this callback: the training data *is*
        # resumable mid-epoch, and the CSV logger appends to (it does not delete) an existing log
        warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch")
        warnings.filterwarnings("ignore", message=r"Experiment logs directory .* exists and is not empty")
        self._epoch = 0  # epoch of the current training iterator
        self._consumed = 0  # its batches whose training step finished
        self._pending: dict[str, Any] | None = None  # state loaded from a checkpoint
        self._carry: dict[str, Any] = {}  # epoch aggregates to restore before the first resumed batch
        self._trainer: Any = None
        self._patched: tuple[Any, Any] | None = None
        self._loader: DataLoader | None = None  # the training DataLoader (hooked)
        self._epoch_sampler_states: list[Any] | None = None  # its samplers' states at epoch start

    @property
    def state_key(self) -> str:
        return "ExactResume"

    # ---- installing the hook on the training DataLoader

    def _install(self, loader: Any) -> Any:
        if not isinstance(loader, DataLoader):
            return loader  # a custom iterable: epoch-start seeding and mid-epoch skipping unavailable
        cls = type(loader)
        if getattr(cls, "_gatelab_resume_hook", None) is self:
            return loader
        base = cls.__mro__[1] if getattr(cls, "_gatelab_resume_hook", None) is not None else cls
        sub = _HOOKED.get((base, id(self)))
        if sub is None:
            sub = type(
                base.__name__,
                (base,),
                {
                    "__iter__": _hooked_iter,
                    "_gatelab_resume_hook": self,
                    "__module__": base.__module__,
                    "__qualname__": base.__qualname__,
                },
            )
            _HOOKED[(base, id(self))] = sub
        object.__setattr__(loader, "__class__", sub)
        return loader

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage != "fit":
            return
        self._trainer = trainer
        source = trainer.datamodule if trainer.datamodule is not None else pl_module
        original = source.train_dataloader
        hook = self

        def train_dataloader() -> Any:
            return hook._install(original())

        train_dataloader.__wrapped__ = original  # type: ignore[attr-defined]
        source.train_dataloader = train_dataloader
        self._patched = (source, original)

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if self._patched is not None:
            source, _ = self._patched
            if "train_dataloader" in vars(source):
                del source.train_dataloader
            self._patched = None
        for key in [k for k in _HOOKED if k[1] == id(self)]:
            del _HOOKED[key]

    # ---- epoch start (called from the hooked DataLoader.__iter__)

    def _start_epoch(self, loader: DataLoader, make_iter: Any) -> Any:
        trainer = self._trainer
        model_state = get_rng_state(cuda=False)
        skip = 0
        pending = self._pending
        if pending is not None:
            self._pending = None
            if pending["consumed"] < pending["epoch_batches"]:
                epoch, skip = int(pending["epoch"]), int(pending["consumed"])
                self._carry = dict(pending.get("aggregates") or {})
            else:
                epoch = int(pending["epoch"]) + 1
            model_state = pending["rng"]
        elif trainer is not None:
            # the epoch index (completed epochs), not ``processed``: a step-capped run restarted on a
            # saved epoch's end counts that epoch as processed twice, so ``processed`` runs one ahead
            epoch = int(trainer.fit_loop.epoch_progress.current.completed)
        else:
            epoch = self._epoch
        self._epoch, self._consumed = epoch, skip
        try:
            if pending is not None:
                self._restore_samplers(loader, pending, epoch, skip)
            _set_epoch_everywhere(loader, epoch)
            self._epoch_sampler_states = _sampler_states(loader)
            self._loader = loader
            _seed_data_stream(data_seed(self.seed, epoch))
            inner = make_iter()
            for i in range(skip):
                try:
                    next(inner)
                except StopIteration:
                    raise RuntimeError(
                        f"exact resume: the training data of epoch {epoch} ended after {i} batches, "
                        f"but the checkpoint had consumed {skip}; the data changed since it was written"
                    ) from None
            data_state = get_rng_state(cuda=False)
        finally:
            set_rng_state(model_state)  # the model stream: as it was, or as the checkpoint saved it
        return _DataStreamIter(inner, data_state)

    def _restore_samplers(self, loader: DataLoader, pending: dict[str, Any], epoch: int, skip: int) -> None:
        """Bring the samplers to their state at the start of ``epoch``: saved states when they
        have any, else (custom samplers without state) by replaying the previous epochs' indices."""
        saved = pending.get("sampler_states_epoch_start" if skip else "sampler_states_now")
        if saved is not None and any(state is not None for state in saved):
            _load_sampler_states(loader, saved)
        if not _needs_replay(loader, _sampler_states(loader)):
            return
        index_sampler = loader.batch_sampler if loader.batch_sampler is not None else loader.sampler
        per_epoch = int(pending["epoch_batches"])
        for past in range(epoch):
            _set_epoch_everywhere(loader, past)
            _seed_data_stream(data_seed(self.seed, past))
            for i, _ in enumerate(index_sampler):
                if i + 1 >= per_epoch:
                    break

    # ---- progress and epoch aggregates

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if self._pending is not None:  # the training data is not a DataLoader of the data module
            pending, self._pending = self._pending, None
            set_rng_state(pending["rng"])
            warnings.warn(
                "exact resume: the training data is not a torch DataLoader returned by "
                "train_dataloader(); the RNG states are restored, the data order is not",
                stacklevel=2,
            )

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if self._carry:
            carry, self._carry = self._carry, {}
            _restore_epoch_aggregates(trainer, pl_module, carry)
            # Lightning resets an epoch's logged tensors on the first batch of a loop run; this batch
            # continues an epoch, as batch k of the uninterrupted run does, where the flag is False
            trainer._logger_connector._first_loop_iter = False

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._consumed = batch_idx + 1

    # ---- checkpoint state

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        epoch_batches = trainer.num_training_batches
        mid_epoch = self._consumed < epoch_batches
        checkpoint[CHECKPOINT_KEY] = {
            "version": _VERSION,
            "seed": self.seed,
            "rng": get_rng_state(),
            "epoch": self._epoch,
            "consumed": self._consumed,
            "epoch_batches": int(epoch_batches) if epoch_batches != float("inf") else -1,
            "aggregates": _save_epoch_aggregates(trainer.fit_loop.epoch_loop._results) if mid_epoch else {},
            "sampler_states_epoch_start": self._epoch_sampler_states,
            "sampler_states_now": _sampler_states(self._loader) if self._loader is not None else None,
        }

    def on_load_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        if trainer.state.fn != "fit":
            return  # trainer.test(ckpt_path=...) after fitting: nothing to resume
        state = checkpoint.get(CHECKPOINT_KEY)
        if state is None:
            warnings.warn(
                "exact resume: the checkpoint has no gatelab RNG/data-order state (written by an older "
                "gatelab or without ExactResume); training resumes, but not bit-identically",
                stacklevel=2,
            )
            return
        if int(state.get("version", 0)) != _VERSION:
            raise ConfigError(f"checkpoint resume state version {state.get('version')} is not {_VERSION}")
        if state["epoch_batches"] < 0 and state["consumed"] > 0:
            warnings.warn(
                "exact resume: the training data has no length; the resumed epoch is treated as unfinished",
                stacklevel=2,
            )
            state = {**state, "epoch_batches": state["consumed"] + 1}
        self._pending = state
        _continue_csv_logs(trainer, self._csv_rows, int(checkpoint.get("global_step", 0)))


# --------------------------------------------------------------------------- checkpoints


class EpochCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` whose ``last.ckpt`` (``save_last``) is the state at the end
    of every epoch (after validation), not only of epochs that entered the top ``k``.

    Lightning 2.6 writes ``last.ckpt`` only when a top-k checkpoint was written at the same
    step, so after an epoch that did not improve ``monitor``, ``last.ckpt`` is older than the
    run; ``--resume`` from it would redo epochs and the "final weights" on disk would not be
    final.
    """

    def _ensure_last(self, trainer: Any) -> None:
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer) and self._epoch_done(trainer):
            self._ensure_last(trainer)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._ensure_last(trainer)

    @staticmethod
    def _epoch_done(trainer: Any) -> bool:
        progress = trainer.fit_loop.epoch_loop.batch_progress
        return bool(progress.is_last_batch) or progress.current.ready >= trainer.num_training_batches


# --------------------------------------------------------------------------- step/time checkpoints


class StepCheckpoint(ModelCheckpoint):
    """Keeps the latest checkpoint taken every ``every_n_train_steps`` optimizer steps and/or
    every ``train_time_interval``, named ``step-epoch=E-step=S.ckpt`` (the previous one is
    removed once the new one is written).

    The last batch of an epoch is never saved here: the epoch-end checkpoint
    (``last.ckpt``, after validation) follows it, and resuming between the two would skip
    that epoch's validation in Lightning's loop.
    """

    def __init__(
        self,
        dirpath: str | os.PathLike[str],
        every_n_train_steps: int | None = None,
        train_time_interval: float | None = None,
    ) -> None:
        super().__init__(
            dirpath=str(dirpath),
            filename="step-{epoch}-{step}",
            monitor=None,
            save_top_k=1,
            save_last=False,
            every_n_train_steps=every_n_train_steps,
            train_time_interval=timedelta(seconds=train_time_interval) if train_time_interval else None,
        )

    @property
    def state_key(self) -> str:
        return f"StepCheckpoint{{every_n_train_steps={self._every_n_train_steps}, interval={self._train_time_interval}}}"

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if batch_idx + 1 >= trainer.num_training_batches:
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        return  # epoch-end saving is the main ModelCheckpoint's job

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        return


# --------------------------------------------------------------------------- finding and vetting


def _checkpoints_in(base: Path) -> list[Path]:
    if not base.is_dir():
        return []
    files = [p for p in base.glob("version_*/checkpoints/*.ckpt") if p.is_file()]
    return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name == "last.ckpt"), reverse=True)


def _load(path: Path) -> dict[str, Any]:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # corrupt / truncated / not a torch file: reported as one line
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"checkpoint {path}: not a readable checkpoint ({reason})") from None
    if not isinstance(ckpt, dict):
        raise ConfigError(f"checkpoint {path}: not a Lightning checkpoint (holds a {type(ckpt).__name__})")
    return ckpt


def check_checkpoint(
    path: str | os.PathLike[str], model_name: str, task_name: str, *, training: bool = True
) -> dict[str, Any]:
    """Load checkpoint ``path`` (memory-mapped) and check it can resume this experiment
    (``training=False``: only that it is readable and holds this model and task).

    Raises:
        ConfigError: one line naming ``path`` and what is wrong: unreadable/corrupt, not a
            Lightning training checkpoint, another model, or another task.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint not found: {path}")
    ckpt = _load(path)
    missing = [
        k for k in ("state_dict", "loops", "optimizer_states")[: 3 if training else 1] if k not in ckpt
    ]
    if missing:
        raise ConfigError(
            f"checkpoint {path}: not a Lightning training checkpoint (missing {', '.join(missing)})"
        )
    hp = ckpt.get("hyper_parameters") or {}
    saved_model = hp.get("model_name")
    if saved_model is not None and saved_model != model_name:
        raise ConfigError(
            f"checkpoint {path} holds model {saved_model!r}, but the config names {model_name!r}"
        )
    saved_task = (hp.get("task") or {}).get("name") if isinstance(hp.get("task"), dict) else None
    if saved_task is not None and saved_task != task_name:
        raise ConfigError(
            f"checkpoint {path} was trained with task {saved_task!r}, but the config names {task_name!r}"
        )
    return ckpt


def find_checkpoint(
    experiment_dir: str | os.PathLike[str], model_name: str, task_name: str
) -> tuple[Path | None, list[str]]:
    """The newest usable checkpoint under ``<experiment_dir>/version_*/checkpoints/``.

    Newest by modification time (``last.ckpt`` first on a tie). A checkpoint that cannot be
    read (e.g. truncated by a crash) is renamed to ``<name>.corrupt`` and the next one is
    tried; a readable checkpoint of another model or task raises. Returns ``(path or None,
    notes about skipped files)``.
    """
    notes = []
    for path in _checkpoints_in(Path(experiment_dir)):
        try:
            check_checkpoint(path, model_name, task_name)
        except ConfigError as e:
            if "not a readable checkpoint" not in str(e):
                raise
            quarantine = path.with_name(path.name + ".corrupt")
            try:
                os.replace(path, quarantine)
            except FileNotFoundError:  # another DDP rank moved it first
                pass
            notes.append(f"{e}; moved to {quarantine.name}")
            continue
        return path, notes
    return None, notes


@dataclasses.dataclass
class ResumeChoice:
    """What ``--resume`` resolved to: the checkpoint (``None``: start fresh) and the run
    directory to continue in (``None``: a new ``version_<n>``)."""

    checkpoint: Path | None
    run_dir: Path | None
    notes: list[str] = dataclasses.field(default_factory=list)


def resolve_resume(
    resume: str | os.PathLike[str] | None,
    experiment_dir: str | os.PathLike[str],
    model_name: str,
    task_name: str,
) -> ResumeChoice:
    """Resolve ``--resume``: ``None`` (fresh), ``auto`` (newest checkpoint of this experiment,
    fresh if none), ``last`` (the same, an error if none) or a checkpoint path.

    ``experiment_dir`` is ``<output_dir>/<name>/seed<seed>``. A checkpoint inside
    ``<experiment_dir>/version_<n>/checkpoints/`` continues in ``version_<n>`` (logs,
    ``metrics.json``, best-k tracking); a checkpoint from elsewhere starts a new run directory.

    Raises:
        ConfigError: ``last`` with no checkpoint, or a bad checkpoint (see :func:`check_checkpoint`).
    """
    if resume is None:
        return ResumeChoice(None, None)
    exp = Path(experiment_dir)
    if str(resume) in ("auto", "last"):
        path, notes = find_checkpoint(exp, model_name, task_name)
        if path is None:
            if str(resume) == "last":
                raise ConfigError(
                    f"--resume last: no checkpoint of this experiment under {exp}/version_*/checkpoints/"
                    + (f" ({'; '.join(notes)})" if notes else "")
                )
            return ResumeChoice(None, None, notes)
    else:
        path, notes = Path(resume), []
        check_checkpoint(path, model_name, task_name)
    run_dir = None
    resolved = path.resolve()
    parent = resolved.parent
    if parent.name == "checkpoints" and parent.parent.parent == exp.resolve():
        run_dir = path.parent.parent
    return ResumeChoice(path, run_dir, notes)
