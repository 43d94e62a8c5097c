"""Readers of gatelab.multimodal (shapes, text corpora, captions, BLiMP) on fixtures in the real formats."""

from __future__ import annotations

import gzip
import json
import random

import numpy as np
import pytest
import torch

from gatelab.core.harness import ChecksumError, DatasetNotFoundError, locate
from gatelab.multimodal.data import (
    BLIMP_PARADIGMS,
    COLOURS,
    POSITIONS,
    TEXT_CORPORA,
    make_shapes,
    pack_blocks,
    patchify,
    read_babylm,
    read_blimp,
    read_caption_manifest,
    read_coco_captions,
    read_corpus,
    render,
    split_documents,
)

# ---------------------------------------------------------------- shapes


def test_shapes_are_deterministic_and_captions_name_the_objects():
    a, b = make_shapes(20, seed=3), make_shapes(20, seed=3)
    assert torch.equal(a.images, b.images) and a.captions == b.captions
    assert not torch.equal(make_shapes(20, seed=4).images, a.images)
    assert a.images.shape == (20, 3, 32, 32) and 0 <= a.images.min() and a.images.max() <= 1
    for objs, cap in zip(a.objects, a.captions):
        for colour, shape, _pos in objs:
            assert colour in cap and shape in cap
        assert 1 <= len(objs) <= 2 and len({o[2] for o in objs}) == len(objs)


def test_render_puts_the_colour_in_its_cell():
    img = np.asarray(render([("blue", "square", "bottom right")], size=32, rng=random.Random(0))).astype(int)
    cell = img[16:, 16:].reshape(-1, 3)
    close = np.abs(cell - np.array(COLOURS["blue"])).max(axis=1) <= 20
    assert close.sum() >= 0.25 * 16 * 16  # the square covers >= 55% of the cell side
    for r, c in [(0, 0), (0, 1), (1, 0)]:  # the other cells are background
        other = img[16 * r : 16 * r + 16, 16 * c : 16 * c + 16]
        assert np.abs(other - 25).max() == 0
    assert set(POSITIONS) == {"top left", "top right", "bottom left", "bottom right"}


def test_patchify_matches_a_loop():
    x = torch.randn(2, 3, 8, 12)
    p = patchify(x, 4)
    assert p.shape == (2, 6, 48)
    for n in range(2):
        k = 0
        for i in range(2):
            for j in range(3):
                torch.testing.assert_close(p[n, k], x[n, :, 4 * i : 4 * i + 4, 4 * j : 4 * j + 4].reshape(-1))
                k += 1
    with pytest.raises(ValueError, match="divisible"):
        patchify(x, 5)


# ---------------------------------------------------------------- text corpus


def test_split_documents_rules():
    text = "One.\n\nTwo  words\nthree.\n\n\nFour.\n"
    assert split_documents(text, "lines") == ["One.", "Two words", "three.", "Four."]
    assert split_documents(text, "paragraphs") == ["One.", "Two words three.", "Four."]
    with pytest.raises(ValueError, match="rule"):
        split_documents(text, "sentences")


def test_read_corpus_and_word_cap(vl_data_dir):
    root = vl_data_dir / "text_corpora"
    docs = read_corpus(root)
    assert len(docs) > 100 and all(d == " ".join(d.split()) for d in docs)
    capped = read_corpus(root, max_words=100)
    words = sum(len(d.split()) for d in capped)
    assert 100 <= words < 100 + 40  # stops at the first document crossing the cap
    # round robin: the first documents come from different files
    first = read_corpus(
        root, ["childes_cds/childes_cds.txt", "gutenberg_nltk/children/carroll-alice.txt"], max_words=20
    )
    assert first[0] == read_corpus(root, ["childes_cds/childes_cds.txt"])[0]
    assert first[1] == read_corpus(root, ["gutenberg_nltk/children/carroll-alice.txt"])[0]
    with pytest.raises(ValueError, match="unknown corpus file"):
        read_corpus(root, ["nope.txt"])


def test_text_spec_checksums_reject_fixture(vl_data_dir):
    assert locate(TEXT_CORPORA, vl_data_dir, verify=False) == vl_data_dir / "text_corpora"
    with pytest.raises(ChecksumError):
        locate(TEXT_CORPORA, vl_data_dir, verify=True)
    with pytest.raises(DatasetNotFoundError, match="childes_cds"):
        locate(TEXT_CORPORA, vl_data_dir / "nowhere", verify=False)


def test_pack_blocks():
    out = pack_blocks([[1, 2, 3], [4, 5], [6, 7, 8, 9]], 4)
    assert out.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]


# ---------------------------------------------------------------- captions


def test_read_coco_captions_and_errors(vl_data_dir, tmp_path):
    base = vl_data_dir / "coco_mini"
    imgs = read_coco_captions(base / "annotations/captions_train2017.json", base / "train2017")
    assert len(imgs) == 4 and all(len(im.captions) == 5 for im in imgs)
    assert imgs[0].captions[0] == "A red ball 0 on the grass."  # whitespace normalised
    bad = json.loads((base / "annotations/captions_train2017.json").read_text())
    bad["annotations"][0]["image_id"] = 999
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="image_id 999"):
        read_coco_captions(tmp_path / "bad.json", base / "train2017")
    with pytest.raises(FileNotFoundError, match="image file"):
        read_coco_captions(base / "annotations/captions_train2017.json", tmp_path)


def test_read_babylm_layout(tmp_path):
    caps = ["a dog.", "a  cat.", "two birds."]
    (tmp_path / "caps.json").write_text(json.dumps(caps))
    e1, e2 = np.arange(8, dtype=np.float32).reshape(2, 4), np.ones((1, 4), np.float32)
    np.save(tmp_path / "s1.npy", e1)
    np.save(tmp_path / "s2.npy", e2)
    got_caps, emb = read_babylm(tmp_path / "caps.json", [tmp_path / "s1.npy", tmp_path / "s2.npy"])
    assert got_caps == ["a dog.", "a cat.", "two birds."]
    torch.testing.assert_close(emb, torch.from_numpy(np.concatenate([e1, e2])))
    with pytest.raises(ValueError, match="3 captions but 2 embeddings"):
        read_babylm(tmp_path / "caps.json", [tmp_path / "s1.npy"])
    np.save(tmp_path / "s3.npy", np.ones((1, 5), np.float32))
    with pytest.raises(ValueError, match="width 5"):
        read_babylm(tmp_path / "caps.json", [tmp_path / "s1.npy", tmp_path / "s3.npy"])


def test_read_caption_manifest(tmp_path):
    np.save(tmp_path / "stack.npy", np.arange(12, dtype=np.float32).reshape(3, 4))
    (tmp_path / "emb").mkdir()
    np.save(tmp_path / "emb" / "one.npy", np.full(4, 7.0, np.float32))
    lines = [
        {"caption": "first", "embedding": "stack.npy", "index": 2},
        {"caption": "second", "embedding": "emb/one.npy"},
    ]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    caps, emb = read_caption_manifest(tmp_path / "m.jsonl")
    assert caps == ["first", "second"]
    torch.testing.assert_close(emb, torch.tensor([[8.0, 9, 10, 11], [7, 7, 7, 7]]))
    (tmp_path / "bad.jsonl").write_text(json.dumps({"caption": "x", "embeding": "stack.npy"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: unknown key"):
        read_caption_manifest(tmp_path / "bad.jsonl")
    (tmp_path / "bad2.jsonl").write_text(
        json.dumps({"caption": "x", "embedding": "stack.npy", "index": 3}) + "\n"
    )
    with pytest.raises(ValueError, match="index 3 out of range"):
        read_caption_manifest(tmp_path / "bad2.jsonl")


# ---------------------------------------------------------------- BLiMP


def test_read_blimp_fixture_and_errors(vl_data_dir, tmp_path):
    pairs = read_blimp(vl_data_dir / "blimp")
    assert len(pairs) == 3 * 67 and len(BLIMP_PARADIGMS) == 67
    assert pairs[0].paradigm == BLIMP_PARADIGMS[0] and pairs[0].good.endswith("dog 0.")
    assert len(read_blimp(vl_data_dir / "blimp", ["passive_1"], per_paradigm=2)) == 2
    d = tmp_path / "blimp" / "data"
    d.mkdir(parents=True)
    with gzip.open(d / "passive_1.jsonl.gz", "wt") as fh:
        fh.write(json.dumps({"sentence_good": "a", "sentence_bad": "b", "UID": "passive_2"}) + "\n")
    with pytest.raises(ValueError, match="UID 'passive_2'"):
        read_blimp(tmp_path / "blimp", ["passive_1"])
    with pytest.raises(FileNotFoundError, match="passive_2"):
        read_blimp(tmp_path / "blimp", ["passive_2"])
    with pytest.raises(ValueError, match="unknown paradigm"):
        read_blimp(tmp_path / "blimp", ["passive_3"])


@pytest.mark.data
def test_real_data_readers(shared_data):
    pairs = read_blimp(shared_data / "blimp")
    assert len(pairs) == 67000 and len({p.paradigm for p in pairs}) == 67
    base = shared_data / "coco_mini"
    assert len(read_coco_captions(base / "annotations/captions_val2017.json", base / "val2017")) == 79
    docs = read_corpus(shared_data / "text_corpora", ["switchboard_sample/switchboard_transcript.txt"])
    assert 4000 < len(docs) < 6000
