"""Data modules of gatelab.multimodal (batching: MixedBatchSampler, collate, CaptionSet; the vl-* data
modules) on fixtures in the real formats."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gatelab.core.harness import ChecksumError
from gatelab.multimodal.data.datamodule import (
    CaptionSet,
    MixedBatchSampler,
    collate,
    vl_babylm_datamodule,
    vl_coco_datamodule,
    vl_shapes_datamodule,
    vl_text_datamodule,
)
from gatelab.multimodal.data.tokenizer import BOS_ID, EOS_ID, PAD_ID

# ---------------------------------------------------------------- batching


def test_mixed_batch_sampler_covers_captions_and_interleaves_text():
    s = MixedBatchSampler(10, 50, 4, text_ratio=1.5, seed=1)
    s.set_epoch(0)
    batches = list(s)
    assert len(batches) == len(s) == 3 + 4  # ceil(10/4) caption batches, round(1.5 * 3) text batches
    cap = [b for b in batches if b[0] < 10]
    txt = [b for b in batches if b[0] >= 10]
    assert all(all(i < 10 for i in b) for b in cap) and all(all(i >= 10 for i in b) for b in txt)
    assert sorted(i for b in cap for i in b) == list(range(10))
    seen = [i for b in txt for i in b]
    assert len(seen) == len(set(seen)) == 16
    s.set_epoch(1)
    nxt = [i for b in s if b[0] >= 10 for i in b]
    assert not set(nxt) & set(seen)  # the text permutation continues across epochs
    s.set_epoch(0)
    order = [b[0] < 10 for b in batches]
    assert order != sorted(order) or order != sorted(order, reverse=True)  # kinds are interleaved
    fresh = MixedBatchSampler(10, 50, 4, text_ratio=1.5, seed=1)
    assert list(fresh) == list(fresh) == batches  # a pure function of (seed, epoch): no hidden state
    fresh.set_epoch(1)
    assert [i for b in fresh if b[0] >= 10 for i in b] == nxt
    ev = MixedBatchSampler(10, 50, 4, text_ratio=2.0, shuffle=False)
    assert list(ev) == list(ev)  # evaluation repeats the same batches


def test_text_only_sampler_uses_every_block():
    s = MixedBatchSampler(0, 10, 3, seed=0)
    assert sorted(i for b in s for i in b) == list(range(10)) and len(s) == 4


def test_collate_pads_and_rejects_mixed_batches():
    out = collate(
        [
            {"ids": torch.tensor([1, 5, 2]), "image": torch.zeros(2)},
            {"ids": torch.tensor([1, 2]), "image": torch.ones(2)},
        ]
    )
    assert out["input_ids"].tolist() == [[1, 5, 2], [1, 2, PAD_ID]]
    assert out["attention_mask"].tolist() == [[True, True, True], [True, True, False]]
    assert out["image"].shape == (2, 2)
    with pytest.raises(ValueError, match="mixes captions and text"):
        collate([{"ids": torch.tensor([1, 2]), "image": torch.zeros(2)}, {"ids": torch.tensor([1, 2])}])


def test_caption_set_checks_indices():
    with pytest.raises(ValueError, match="image indices"):
        CaptionSet(["a", "b"], torch.tensor([0, 3]), torch.zeros(2, 4))
    cs = CaptionSet(["a", "b", "c"], torch.tensor([1, 0, 1]), torch.arange(2.0)[:, None])
    sub = cs.subset_images([1])
    assert (
        sub.captions == ["a", "c"] and sub.caption_image.tolist() == [0, 0] and sub.images.tolist() == [[1.0]]
    )


# ---------------------------------------------------------------- data modules


def test_shapes_datamodule_with_text_mixing(vl_data_dir, tmp_path):
    dm = vl_shapes_datamodule(
        vl_data_dir,
        n_train=40,
        n_val=8,
        n_test=8,
        text_ratio=1.0,
        vocab_size=400,
        seq_len=24,
        batch_size=8,
        save_tokenizer=str(tmp_path / "tok.json"),
        verify=False,
    )
    kw = dm.model_kwargs()
    assert kw["image_dim"] == 3 * 8 * 8 and kw["max_image_tokens"] == 16 and kw["max_len"] == 24
    assert kw["vocab_size"] == dm.tokenizer.get_vocab_size() <= 400
    assert (tmp_path / "tok.json").is_file()
    kinds = []
    for batch in dm.train_dataloader():
        ids = batch["input_ids"]
        if "image" in batch:
            assert batch["image"].shape == (ids.shape[0], 16, 192)
            assert (ids[:, 0] == BOS_ID).all()
            last = batch["attention_mask"].sum(1) - 1
            assert (ids[torch.arange(len(ids)), last] == EOS_ID).all()
        else:
            assert ids.shape[1] == 24 and batch["attention_mask"].all()
        kinds.append("image" in batch)
    assert kinds.count(True) == 5 and kinds.count(False) == 5
    # the same tokenizer file gives the same ids
    dm2 = vl_shapes_datamodule(
        vl_data_dir, n_train=40, n_val=8, n_test=8, tokenizer=str(tmp_path / "tok.json"), seq_len=24
    )
    assert [t.tolist() for t in dm2.caption_ids("test")] == [t.tolist() for t in dm.caption_ids("test")]


def test_long_captions_are_an_error_unless_truncated(vl_data_dir):
    dm = vl_shapes_datamodule(vl_data_dir, n_train=8, n_val=4, n_test=4, vocab_size=260, seq_len=8)
    with pytest.raises(ValueError, match="tokens > seq_len=8"):
        dm.setup()


def test_text_and_coco_and_babylm_datamodules(vl_data_dir, tmp_path):
    t = vl_text_datamodule(
        vl_data_dir,
        vocab_size=300,
        seq_len=16,
        batch_size=4,
        val_fraction=0.1,
        test_fraction=0.1,
        verify=False,
    )
    assert set(t.model_kwargs()) == {"vocab_size", "max_len"}
    b = next(iter(t.train_dataloader()))
    assert "image" not in b and b["input_ids"].shape == (4, 16)
    with pytest.raises(ChecksumError):
        vl_text_datamodule(vl_data_dir, vocab_size=300)
    c = vl_coco_datamodule(
        vl_data_dir, val_images=2, image_size=32, patch=16, vocab_size=300, seq_len=32, verify=False
    )
    assert c.model_kwargs()["image_dim"] == 768 and c.model_kwargs()["max_image_tokens"] == 4
    assert len(c.captions["train"].captions) == 20 and len(c.captions["test"].images) == 42
    np.save(tmp_path / "babylm_multimodal.npy", np.zeros(1))  # unrelated file: paths resolve under the folder
    folder = tmp_path / "babylm_multimodal"
    folder.mkdir()
    (folder / "caps.json").write_text(json.dumps([f"a dog number {i}." for i in range(20)]))
    np.save(folder / "dino.npy", np.random.default_rng(0).standard_normal((20, 6)).astype(np.float32))
    bl = vl_babylm_datamodule(
        tmp_path, captions_json="caps.json", embedding_files=["dino.npy"], vocab_size=300, seq_len=16
    )
    assert bl.model_kwargs()["image_dim"] == 6
    assert sum(len(bl.captions[s].captions) for s in ("train", "val", "test")) == 20
    batch = next(iter(bl.train_dataloader()))
    assert batch["image"].shape[1:] == (6,)
    with pytest.raises(ValueError, match="needs manifest"):
        vl_babylm_datamodule(tmp_path)
