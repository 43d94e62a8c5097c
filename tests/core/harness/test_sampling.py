"""Distributed-aware batch samplers (gatelab.core.harness.sampling, the VL MixedBatchSampler, CTR's loader).

DDP ranks are simulated without processes: one sampler per rank with ``num_replicas``/``rank``.
Checked: every rank yields the same number of batches (else DDP hangs), ``len`` is exact, the
union of the ranks' parts at each step is the global batch one process sees with batch
``W * b`` (so nothing is lost or repeated), the order is a pure function of ``(seed, epoch)``, and
iterating leaves the global torch / NumPy / Python RNG untouched.
"""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from gatelab.core.harness.sampling import (
    EpochBatchSampler,
    IndexBatches,
    ShardedBatchSampler,
    batch_loader,
    epoch_permutation,
    shard_batch,
)
from gatelab.multimodal.data.datamodule import MixedBatchSampler


def _ranks(make, world: int) -> list[list[list[int]]]:
    """The batches of every rank (each a list of index lists)."""
    return [[list(b) for b in make(world, r)] for r in range(world)]


def _rng_states() -> tuple:
    numpy_state = np.random.get_state()[1].copy()  # noqa: NPY002 (the global state must not move)
    return torch.get_rng_state().clone(), numpy_state, random.getstate()


def _assert_rng_unchanged(before: tuple) -> None:
    t, n, p = _rng_states()
    assert torch.equal(t, before[0]) and np.array_equal(n, before[1]) and p == before[2]


def test_frappe_size_gives_every_rank_the_same_batch_count():
    """The issue's case: 202,027 rows, batch 8192 per rank, 2 ranks (before: 13 vs 12 batches, a hang)."""
    n, b = 202_027, 8192
    ranks = _ranks(lambda w, r: EpochBatchSampler(n, b, num_replicas=w, rank=r, seed=3), 2)
    assert [len(x) for x in ranks] == [13, 13]
    assert [len(EpochBatchSampler(n, b, num_replicas=2, rank=r, seed=3)) for r in (0, 1)] == [13, 13]
    single = [list(x) for x in EpochBatchSampler(n, 2 * b, num_replicas=1, rank=0, seed=3)]
    assert len(single) == 13
    for step, global_batch in enumerate(single):  # the union at each step is one process's batch 2b
        assert ranks[0][step] + ranks[1][step] == global_batch
    assert sorted(i for x in ranks for bt in x for i in bt) == list(range(n))  # every row once
    assert [len(bt) for bt in ranks[0]][-1] == [len(bt) for bt in ranks[1]][-1] + 1  # 5419 = 2710 + 2709


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize(("n", "b"), [(1, 1), (2, 3), (5, 2), (7, 3), (10, 4), (13, 1), (17, 5), (64, 8)])
def test_equal_counts_exact_len_and_coverage(n, b, world, drop_last, shuffle):
    def make(w, r):
        return EpochBatchSampler(n, b, num_replicas=w, rank=r, seed=1, shuffle=shuffle, drop_last=drop_last)

    ranks = _ranks(make, world)
    counts = [len(x) for x in ranks]
    assert len(set(counts)) == 1 and counts[0] == len(make(world, 0))
    single = [
        list(x)
        for x in EpochBatchSampler(
            n, b * world, num_replicas=1, rank=0, seed=1, shuffle=shuffle, drop_last=drop_last
        )
    ]
    assert len(single) == counts[0]
    for step, global_batch in enumerate(single):
        parts = [ranks[r][step] for r in range(world)]
        assert all(parts), "no rank may get an empty batch"
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
        union = [i for p in parts for i in p]
        if len(global_batch) >= world:
            assert union == global_batch  # split, nothing repeated
        else:  # fewer samples than ranks: the empty ranks repeat the first sample
            assert union[: len(global_batch)] == global_batch and set(union) == set(global_batch)
    if not drop_last:
        seen = {i for x in ranks for bt in x for i in bt}
        assert seen == set(range(n))
    else:
        assert all(len(bt) == b for x in ranks for bt in x)
        assert len({i for x in ranks for bt in x for i in bt}) == (n // (b * world)) * b * world


def test_min_rank_batch_drops_a_last_batch_on_every_rank():
    # 2 ranks, batch 4: 18 rows = 2 global batches of 8 + 2 rows -> 1 row per rank: dropped on both
    s = [EpochBatchSampler(18, 4, num_replicas=2, rank=r, seed=0, min_rank_batch=2) for r in (0, 1)]
    assert [len(x) for x in s] == [len(list(x)) for x in s] == [2, 2]
    s = [EpochBatchSampler(20, 4, num_replicas=2, rank=r, seed=0, min_rank_batch=2) for r in (0, 1)]
    assert [len(x) for x in s] == [len(list(x)) for x in s] == [3, 3]


def test_order_is_a_pure_function_of_seed_and_epoch_and_leaves_global_rngs_alone():
    torch.manual_seed(0)
    before = _rng_states()
    a = EpochBatchSampler(50, 4, num_replicas=2, rank=1, seed=7)
    e0, e0_again = list(a), list(a)
    assert e0 == e0_again  # no hidden state: the same epoch twice gives the same batches
    a.set_epoch(1)
    e1 = list(a)
    assert e1 != e0
    b = EpochBatchSampler(50, 4, num_replicas=2, rank=1, seed=7)
    b.set_epoch(1)
    assert list(b) == e1  # a fresh sampler (a resumed run) at epoch 1 sees epoch 1's batches
    c = EpochBatchSampler(50, 4, num_replicas=2, rank=1, seed=8)
    assert list(c) != e0
    m = MixedBatchSampler(10, 50, 2, text_ratio=1.5, seed=3, num_replicas=2, rank=0)
    for epoch in range(3):
        m.set_epoch(epoch)
        list(m)
    _assert_rng_unchanged(before)
    ev = EpochBatchSampler(10, 3, num_replicas=2, rank=0, shuffle=False)
    assert [list(x) for x in ev] == [[0, 1, 2], [6, 7]] and all(isinstance(x, range) for x in ev)
    assert not np.array_equal(epoch_permutation(20, 0, 1), epoch_permutation(20, 1, 0))


def test_samplers_are_distributed_samplers_so_lightning_keeps_them():
    # Lightning replaces a loader's sampler under DDP unless it is a DistributedSampler
    assert isinstance(EpochBatchSampler(4, 2, num_replicas=1, rank=0), DistributedSampler)
    assert isinstance(MixedBatchSampler(4, 0, 2, num_replicas=1, rank=0), DistributedSampler)
    loader = batch_loader(list(range(10)), EpochBatchSampler(10, 4, num_replicas=2, rank=1, shuffle=False))
    assert [b.tolist() for b in loader] == [[4, 5, 6, 7], [9]]  # global batches [0..7], [8, 9]
    assert IndexBatches(["a", "b", "c"])[[2, 0]] == ["c", "a"]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        EpochBatchSampler(4, 0)
    with pytest.raises(ValueError, match="rank 2 not in"):
        EpochBatchSampler(4, 1, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="given without rank"):
        EpochBatchSampler(4, 1, num_replicas=3)
    with pytest.raises(ValueError, match="seed must be >= 0"):
        EpochBatchSampler(4, 1, seed=-1)
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        EpochBatchSampler(4, 1).set_epoch(-1)
    with pytest.raises(ValueError, match="rank 1 not in"):
        shard_batch([1, 2], 1, 1)

    class TooBig(ShardedBatchSampler):
        def global_batches(self, epoch):
            return [list(range(5))]

        def global_batch_sizes(self):
            return [5]

    with pytest.raises(RuntimeError, match="exceeds"):
        list(TooBig(2, num_replicas=1, rank=0))


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize(
    ("n_cap", "n_text", "ratio"), [(10, 50, 1.5), (7, 0, 1.0), (0, 11, 1.0), (9, 40, 0.5)]
)
def test_mixed_batches_shard_evenly_and_stay_homogeneous(world, n_cap, n_text, ratio):
    b = 2

    def make(w, r, **kw):
        return MixedBatchSampler(n_cap, n_text, b, text_ratio=ratio, seed=5, num_replicas=w, rank=r, **kw)

    for shuffle in (True, False):
        ranks = _ranks(lambda w, r, shuffle=shuffle: make(w, r, shuffle=shuffle), world)
        counts = {len(x) for x in ranks}
        assert counts == {len(make(world, 0, shuffle=shuffle))}
        single = [
            list(x)
            for x in MixedBatchSampler(
                n_cap, n_text, b * world, text_ratio=ratio, seed=5, num_replicas=1, rank=0, shuffle=shuffle
            )
        ]
        assert len(single) == counts.pop()
        for step, global_batch in enumerate(single):
            parts = [ranks[r][step] for r in range(world)]
            kinds = {i < n_cap for p in parts for i in p}
            assert len(kinds) == 1  # every rank trains on the same kind at each step
            union = [i for p in parts for i in p]
            assert union == global_batch or set(union) == set(global_batch)
        caps = Counter(i for x in ranks for bt in x for i in bt if i < n_cap)
        assert set(caps) == set(
            range(n_cap)
        )  # every caption once per epoch (repeated only if a batch < ranks)


def test_mixed_text_stream_continues_across_epochs_without_state():
    s = MixedBatchSampler(10, 50, 4, text_ratio=1.0, seed=2)  # 3 caption batches -> 3 text batches of 4
    seen = []
    for epoch in range(4):  # 4 epochs x 12 blocks: the first 48 blocks of the stream, no repeats
        s.set_epoch(epoch)
        seen += [i - 10 for bt in s for i in bt if i >= 10]
    assert len(seen) == len(set(seen)) == 48
    fresh = MixedBatchSampler(10, 50, 4, text_ratio=1.0, seed=2)
    fresh.set_epoch(3)
    # a fresh sampler (a resumed run) at epoch 3 takes the same stream positions (batch order shuffled)
    assert sorted(i - 10 for bt in fresh for i in bt if i >= 10) == sorted(seen[36:])


def test_ctr_loader_shards_over_simulated_ranks(tmp_path, monkeypatch):
    """CTR batches come from the sharded sampler: equal counts per rank, union = one process's batch."""
    from gatelab.recsys.data import datamodule as ctr

    rows = ["label,user,item"] + [f"{i % 2},u{i % 7},i{i % 5}" for i in range(45)]
    for split in ("train", "valid", "test"):
        (tmp_path / f"{split}.csv").write_text("\n".join(rows) + "\n")
    fields = [{"name": "user", "type": "categorical"}, {"name": "item", "type": "categorical"}]
    files = {s: f"{s}.csv" for s in ("train", "valid", "test")}

    def batches(world: int, rank: int, bs: int, stage: str) -> list[torch.Tensor]:
        monkeypatch.setattr(ctr, "replicas", lambda trainer=None: (world, rank))
        dm = ctr.ctr_datamodule(
            tmp_path, "custom", bs, files=files, fields=fields, cache=str(tmp_path / "c"), seed=4
        )
        loader = dm.train_dataloader() if stage == "train" else dm.val_dataloader()
        loader.sampler.set_epoch(1)
        return [b["categorical"] for b in loader]

    for stage in ("train", "val"):
        one = batches(1, 0, 8, stage)
        r0, r1 = batches(2, 0, 4, stage), batches(2, 1, 4, stage)
        assert len(r0) == len(r1) == len(one) == 6  # 45 rows: 5 global batches of 8 + 5
        for a, b, g in zip(r0, r1, one):
            assert torch.equal(torch.cat([a, b]), g)


def test_seeded_segmentation_patches_are_pure_functions_of_seed_and_index():
    """Segmentation patches under DDP: with a seed, patch k depends on (seed, k) only, so ranks
    (which share the global RNG state) draw different patches for their different indices."""
    from gatelab.vision.data.segmentation import PatchDataset, SegmentationCase

    g = torch.Generator().manual_seed(0)
    case = SegmentationCase(
        "c0",
        torch.rand(1, 20, 20, generator=g),
        torch.randint(0, 2, (20, 20), generator=g),
        torch.ones(20, 20, dtype=torch.bool),
    )
    ds = PatchDataset([case], (8, 8), 4, seed=11)
    before = _rng_states()
    a = [ds[k]["image"] for k in (0, 1, 5, 4000)]  # any k >= 0 (epoch * 4 + i)
    _assert_rng_unchanged(before)
    torch.manual_seed(123)  # the global state does not matter
    b = [ds[k]["image"] for k in (0, 1, 5, 4000)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], a[1]) and not torch.equal(a[1], a[2])
    assert not torch.equal(PatchDataset([case], (8, 8), 4, seed=12)[0]["image"], a[0])
    with pytest.raises(IndexError):
        ds[-1]


def _lightning_ddp_view(make_loader, world: int, rank: int, mode: str = "train"):
    """What Lightning does to a data module's loader on rank ``rank`` of ``world`` under DDP: the
    hook runs with DataLoader/BatchSampler arguments recorded, then a loader whose sampler is not
    a DistributedSampler is rebuilt around one (training data shuffled)."""
    from lightning.fabric.utilities.data import _replace_dunder_methods
    from lightning.pytorch.trainer.connectors.data_connector import _get_distributed_sampler
    from lightning.pytorch.trainer.states import RunningStage
    from lightning.pytorch.utilities.data import _update_dataloader
    from torch.utils.data import BatchSampler, DataLoader

    with _replace_dunder_methods(DataLoader, "dataset"), _replace_dunder_methods(BatchSampler):
        loader = make_loader()
    if isinstance(loader.sampler, DistributedSampler):
        return loader
    stage = RunningStage.TRAINING if mode == "train" else RunningStage.VALIDATING
    sampler = _get_distributed_sampler(loader, mode == "train", 0, num_replicas=world, rank=rank, seed=0)
    return _update_dataloader(loader, sampler, mode=stage)


def _batch_len(batch) -> int:
    if isinstance(batch, dict):
        return len(next(iter(batch.values())))
    if isinstance(batch, (tuple, list)) and isinstance(batch[0], dict):  # TFT: (x, (target, weight))
        return len(batch[0]["encoder_lengths"])
    return len(batch)


def test_tft_fast_loader_keeps_its_batch_size_under_ddp():
    """Lightning rebuilds plain loaders under DDP; an explicit torch BatchSampler came back with
    batch size 1 (TFT trained on single windows under DDP). Now: full batches, equal counts."""
    pytest.importorskip("pytorch_forecasting")
    from tft_fixtures import tiny_frame, tiny_spec

    from gatelab.timeseries.data.tft import build_dataset
    from gatelab.timeseries.data.tft_loader import window_dataloader

    ds = build_dataset(tiny_frame(), tiny_spec())
    for train in (True, False):
        ranks = [
            [
                _batch_len(b)
                for b in _lightning_ddp_view(
                    lambda train=train: window_dataloader(ds, train=train, batch_size=8),
                    2,
                    r,
                    "train" if train else "val",
                )
            ]
            for r in (0, 1)
        ]
        assert len(ranks[0]) == len(ranks[1]) > 0
        assert ranks[0][0] == ranks[1][0] == 8
        if train:  # training drops the incomplete batch
            assert set(ranks[0]) == set(ranks[1]) == {8}


def test_ltsf_loader_gives_every_rank_the_same_batch_count(tmp_path):
    import pandas as pd

    from gatelab.timeseries.data.datamodule import ltsf_datamodule

    n = 103
    df = pd.DataFrame(
        {"date": pd.date_range("2016-07-01", periods=n, freq="h").strftime("%Y-%m-%d %H:%M:%S")}
    )
    for c in ("a", "OT"):
        df[c] = np.arange(n, dtype=float)
    df.to_csv(tmp_path / "s.csv", index=False)
    dm = ltsf_datamodule(tmp_path, file="s.csv", freq="h", lookback=8, horizon=4, batch_size=4, verify=False)
    for mode, hook in (
        ("train", dm.train_dataloader),
        ("val", dm.val_dataloader),
        ("test", dm.test_dataloader),
    ):
        counts = [len(list(_lightning_ddp_view(hook, 3, r, mode))) for r in range(3)]
        assert len(set(counts)) == 1, (mode, counts)
