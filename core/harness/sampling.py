"""Distributed-aware, epoch-seeded batch samplers (one rule for every data module that batches itself).

A data module that builds its own batches (CTR's vectorised gathers, the vision-language decoder's
homogeneous caption/text batches) cannot use Lightning's automatic ``DistributedSampler``: Lightning
only knows how to shard a plain sampler. The samplers here do the sharding themselves, in terms of
the **global batch** (``batch_size * num_replicas`` samples, one optimizer step):

* every epoch is a list of global batches that depends only on ``(seed, epoch)`` -- never on the
  global torch / NumPy / Python RNG, never on how many epochs were iterated before -- so a resumed
  run and every DDP rank see the same list;
* rank ``r`` of ``W`` takes the ``r``-th contiguous part of each global batch (:func:`shard_batch`);
  the union of the parts is the global batch, so ``W`` ranks with per-rank batch ``b`` see the
  same samples at each step as one process with batch ``W * b``;
* every rank yields the same number of batches (a rank that finishes early would hang the others'
  gradient all-reduce). The global batch list is the same on every rank, and a global batch is kept
  or dropped on all ranks together (:meth:`ShardedBatchSampler.keep`).

Uneven last batches (**split, pad only when needed**): a global batch of ``m`` samples with
``m % W != 0`` is split into parts whose sizes differ by at most one (the first ``m % W`` ranks
get one more); no sample is repeated. Only when ``m < W`` do the ranks left without a sample get
the batch's first sample again (a duplicate). ``drop_last=True`` drops every incomplete global
batch instead (then every rank batch has exactly ``batch_size`` samples).

The samplers subclass ``torch.utils.data.DistributedSampler`` only so that Lightning
(``use_distributed_sampler=True``) recognises them as already distributed and leaves them alone,
and calls :meth:`~ShardedBatchSampler.set_epoch` on them at the start of every epoch (Lightning
calls ``set_epoch`` on ``dataloader.sampler``). They do not use ``DistributedSampler``'s
constructor. Use them as the loader's *sampler* with automatic batching off::

    loader = batch_loader(dataset, EpochBatchSampler(len(dataset), 32, seed=0), collate_fn=collate)

(:func:`batch_loader` wraps a map-style dataset in :class:`IndexBatches`, whose item is the list of
samples of one batch.) ``num_replicas`` and ``rank`` default to :func:`replicas` (the trainer's,
else ``torch.distributed``'s, else ``(1, 0)``); ``seed`` defaults to :func:`default_seed` (the seed
the harness set with ``seed_everything``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler

__all__ = [
    "EpochBatchSampler",
    "IndexBatches",
    "ShardedBatchSampler",
    "batch_loader",
    "default_seed",
    "epoch_permutation",
    "replicas",
    "shard_batch",
]

Batch = list[int] | range


def replicas(trainer: Any = None) -> tuple[int, int]:
    """``(num_replicas, rank)``: the trainer's ``world_size`` and ``global_rank`` when a trainer is
    given, else the initialised default ``torch.distributed`` process group's, else ``(1, 0)``."""
    if trainer is not None:
        return int(trainer.world_size), int(trainer.global_rank)
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def default_seed() -> int:
    """The harness seed: ``$PL_GLOBAL_SEED`` (exported by ``seed_everything``, inherited by DDP
    ranks), else 0."""
    raw = os.environ.get("PL_GLOBAL_SEED", "").strip()
    if not raw:
        return 0
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"$PL_GLOBAL_SEED={raw!r} is not an integer") from None


def epoch_permutation(n: int, seed: int, epoch: int, stream: int = 0) -> np.ndarray:
    """A permutation of ``range(n)`` that depends only on ``(seed, epoch, stream)``.

    Drawn from a private ``numpy.random.Generator`` seeded with ``SeedSequence([seed, epoch,
    stream])`` (no global RNG is read or advanced). ``stream`` separates independent draws of one
    epoch (e.g. caption order and batch order).
    """
    for name, v in (("n", n), ("seed", seed), ("epoch", epoch), ("stream", stream)):
        if v < 0:
            raise ValueError(f"epoch_permutation: {name} must be >= 0, got {v}")
    return np.random.default_rng([int(seed), int(epoch), int(stream)]).permutation(int(n))


def shard_batch(batch: Batch, num_replicas: int, rank: int) -> Batch:
    """Rank ``rank``'s part of one global ``batch`` (see the module docstring).

    Parts are contiguous; sizes differ by at most one, the first ``len(batch) % num_replicas``
    ranks taking one more. When ``len(batch) < num_replicas`` the ranks left empty get
    ``batch[:1]`` (a duplicate). A ``range`` stays a ``range``.
    """
    if not 0 <= rank < num_replicas:
        raise ValueError(f"shard_batch: rank {rank} not in [0, {num_replicas})")
    m = len(batch)
    if m == 0:
        raise ValueError("shard_batch: empty global batch")
    base, extra = divmod(m, num_replicas)
    start = rank * base + min(rank, extra)
    stop = start + base + (1 if rank < extra else 0)
    if start == stop:
        return batch[:1]
    return batch[start:stop]


class ShardedBatchSampler(DistributedSampler):
    """Base class: yields this rank's part of every kept global batch of the current epoch.

    Subclasses implement :meth:`global_batches` (a pure function of ``(self.seed, epoch)`` and
    the sampler's settings, identical on every rank) and :meth:`global_batch_sizes` (the sizes of
    those batches, in any order, without drawing them: used by ``len``).

    Args:
        batch_size: samples per rank per step (the global batch is ``batch_size * num_replicas``).
        num_replicas, rank: the process group (default :func:`replicas`).
        seed: shuffling seed (default :func:`default_seed`).
        shuffle: draw a new order every epoch (training) or keep a fixed order (evaluation).
        drop_last: drop incomplete global batches.
        min_rank_batch: drop (on every rank) a global batch whose smallest rank part would have
            fewer samples than this (e.g. 2 for BatchNorm, which fails on one training sample).
    """

    def __init__(
        self,
        batch_size: int,
        *,
        num_replicas: int | None = None,
        rank: int | None = None,
        seed: int | None = None,
        shuffle: bool = True,
        drop_last: bool = False,
        min_rank_batch: int = 1,
    ) -> None:
        # DistributedSampler.__init__ is not called on purpose (it needs a dataset and an
        # initialised process group); the attributes it defines are set here.
        w, r = replicas()
        if num_replicas is None:
            if rank is not None and int(rank) != r:
                raise ValueError(f"{type(self).__name__}: rank={rank} given without num_replicas")
            num_replicas = w
        num_replicas = int(num_replicas)
        if rank is None:
            if num_replicas != w:
                raise ValueError(
                    f"{type(self).__name__}: num_replicas={num_replicas} given without rank "
                    f"(the process group has {w})"
                )
            rank = r
        rank = int(rank)
        if isinstance(batch_size, bool) or int(batch_size) < 1:
            raise ValueError(f"{type(self).__name__}: batch_size must be >= 1, got {batch_size!r}")
        if num_replicas < 1:
            raise ValueError(f"{type(self).__name__}: num_replicas must be >= 1, got {num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"{type(self).__name__}: rank {rank} not in [0, {num_replicas})")
        if min_rank_batch < 1:
            raise ValueError(f"{type(self).__name__}: min_rank_batch must be >= 1, got {min_rank_batch}")
        seed = default_seed() if seed is None else int(seed)
        if seed < 0:
            raise ValueError(f"{type(self).__name__}: seed must be >= 0, got {seed}")
        self.dataset = None
        self.batch_size = int(batch_size)
        self.num_replicas, self.rank = num_replicas, rank
        self.seed, self.shuffle, self.drop_last = seed, bool(shuffle), bool(drop_last)
        self.min_rank_batch = int(min_rank_batch)
        self.epoch = 0

    @property
    def global_batch_size(self) -> int:
        """Samples per optimizer step over all ranks: ``batch_size * num_replicas``."""
        return self.batch_size * self.num_replicas

    # DistributedSampler's attributes, for code that reads them
    @property
    def num_samples(self) -> int:  # type: ignore[override]
        return len(self)

    @property
    def total_size(self) -> int:  # type: ignore[override]
        return len(self) * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next iteration yields (Lightning calls this)."""
        if epoch < 0:
            raise ValueError(f"{type(self).__name__}.set_epoch: epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def global_batches(self, epoch: int) -> list[Batch]:
        """Every global batch of ``epoch`` (each of at most :attr:`global_batch_size` samples)."""
        raise NotImplementedError

    def global_batch_sizes(self) -> list[int]:
        """Sizes of :meth:`global_batches` (any epoch; the sizes do not depend on the order)."""
        raise NotImplementedError

    def keep(self, size: int) -> bool:
        """Whether a global batch of ``size`` samples is used (the same answer on every rank)."""
        if size < 1 or (self.drop_last and size < self.global_batch_size):
            return False
        smallest = max(size // self.num_replicas, 1)
        return smallest >= self.min_rank_batch

    def __iter__(self) -> Iterator[Batch]:  # type: ignore[override]
        for batch in self.global_batches(self.epoch):
            if len(batch) > self.global_batch_size:
                raise RuntimeError(
                    f"{type(self).__name__}: a global batch of {len(batch)} samples exceeds "
                    f"batch_size * num_replicas = {self.global_batch_size}"
                )
            if self.keep(len(batch)):
                yield shard_batch(batch, self.num_replicas, self.rank)

    def __len__(self) -> int:
        return sum(1 for m in self.global_batch_sizes() if self.keep(m))


class EpochBatchSampler(ShardedBatchSampler):
    """Batches of ``range(n)``: a fresh permutation per ``(seed, epoch)`` when ``shuffle``, else
    in order, cut into global batches of ``batch_size * num_replicas`` (the last may be smaller).

    Unshuffled batches are ``range`` objects (a data set can slice instead of gathering).
    Other arguments: :class:`ShardedBatchSampler`.
    """

    def __init__(self, n: int, batch_size: int, **kwargs: Any) -> None:
        super().__init__(batch_size, **kwargs)
        if n < 0:
            raise ValueError(f"EpochBatchSampler: n must be >= 0, got {n}")
        self.n = int(n)

    def global_batch_sizes(self) -> list[int]:
        g = self.global_batch_size
        full, rest = divmod(self.n, g)
        return [g] * full + ([rest] if rest else [])

    def global_batches(self, epoch: int) -> list[Batch]:
        g = self.global_batch_size
        if not self.shuffle:
            return [range(s, min(s + g, self.n)) for s in range(0, self.n, g)]
        order = epoch_permutation(self.n, self.seed, epoch)
        return [order[s : s + g].tolist() for s in range(0, self.n, g)]


class IndexBatches(Dataset):
    """A map-style dataset whose item ``[i, j, ...]`` is ``[dataset[i], dataset[j], ...]`` (one batch)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __getitem__(self, batch: Sequence[int]) -> list[Any]:  # type: ignore[override]
        return [self.dataset[int(i)] for i in batch]

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]


def batch_loader(
    dataset: Dataset,
    sampler: ShardedBatchSampler,
    *,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    num_workers: int = 0,
    batched: bool = False,
    **kwargs: Any,
) -> DataLoader:
    """A ``DataLoader`` whose sampler yields whole batches (automatic batching off).

    Args:
        dataset: a map-style dataset of samples, or (``batched=True``) one whose
            ``__getitem__`` already takes a batch of indices and returns the batch.
        sampler: a :class:`ShardedBatchSampler` (Lightning leaves it in place under DDP).
        collate_fn: turns the list of samples (or, with ``batched``, the batch) into tensors;
            default: the samples as they are (``batched``) or ``default_collate``.
        num_workers, kwargs: passed to ``DataLoader``.
    """
    from torch.utils.data import default_collate

    if collate_fn is None:
        collate_fn = _identity if batched else default_collate
    return DataLoader(
        dataset if batched else IndexBatches(dataset),
        batch_size=None,
        sampler=sampler,
        collate_fn=collate_fn,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        **kwargs,
    )


def _identity(batch: Any) -> Any:
    return batch
