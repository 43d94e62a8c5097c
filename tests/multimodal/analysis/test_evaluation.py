"""Evaluation: log-probabilities, BLiMP, perplexity, retrieval and gate analysis vs direct computations."""

from __future__ import annotations

import math

import pytest
import torch

from gatelab.core import capture_gates
from gatelab.multimodal.analysis.evaluation import (
    blimp_accuracy,
    caption_perplexity,
    contrastive_retrieval,
    gate_by_word_class,
    generative_retrieval,
    plot_gate_classes,
    sequence_logprobs,
)
from gatelab.multimodal.analysis.wordclasses import shapes_word_class, word_class
from gatelab.multimodal.data.blimp import MinimalPair
from gatelab.multimodal.data.tokenizer import EOS_ID, train_bpe
from gatelab.multimodal.models import GatedVLDecoder

TEXT = ["the red circle is in the top left.", "a blue square and a green diamond.", "Who should Derek hug?"]


@pytest.fixture(scope="module")
def tok():
    return train_bpe(TEXT * 30, 300)


@pytest.fixture
def model(tok):
    torch.manual_seed(0)
    return GatedVLDecoder(
        vocab_size=tok.get_vocab_size(), d_model=16, num_layers=2, num_heads=2, image_dim=5, max_len=32
    ).eval()


def _direct_logp(model, ids: list[int], image=None, include_eos=True) -> float:
    """Score one sequence on its own (no padding), token by token from the full logits."""
    x = torch.tensor([ids])
    logits = model(x, image).logits[0]
    total = 0.0
    for t in range(1, len(ids)):
        if not include_eos and ids[t] == EOS_ID:
            continue
        total += torch.log_softmax(logits[t - 1], -1)[ids[t]].item()
    return total


def test_sequence_logprobs_match_unbatched_scores(model, tok):
    seqs = [tok.encode(s).ids for s in TEXT]
    imgs = torch.randn(3, 2, 5)
    for images in (None, imgs):
        for eos in (True, False):
            lp, n = sequence_logprobs(model, seqs, images, include_eos=eos, batch_size=2)
            for i, s in enumerate(seqs):
                want = _direct_logp(model, s, None if images is None else images[i : i + 1], eos)
                assert lp[i].item() == pytest.approx(want, abs=1e-4)
                assert n[i].item() == len(s) - 1 - (0 if eos else 1)


def test_blimp_accuracy_counts_strict_wins(model, tok):
    pairs = [
        MinimalPair("p1", "the red circle.", "circle red the.", "f", "t"),
        MinimalPair("p1", "a blue square.", "a blue square.", "f", "t"),  # a tie never counts
        MinimalPair("p2", "Who should Derek hug?", "Who Derek should hug?", "f", "t"),
    ]
    res = blimp_accuracy(model, tok, pairs, batch_size=2)
    wins = []
    for p in pairs:
        g = _direct_logp(model, tok.encode(p.good).ids, include_eos=False)
        b = _direct_logp(model, tok.encode(p.bad).ids, include_eos=False)
        wins.append(g > b + 1e-9)
    assert wins[1] is False
    assert res["n_pairs"] == 3
    assert res["overall"] == pytest.approx(sum(wins) / 3)
    assert res["per_paradigm"] == {"p1": pytest.approx((wins[0] + wins[1]) / 2), "p2": float(wins[2])}


def test_caption_perplexity(model, tok):
    seqs = [tok.encode(s).ids for s in TEXT]
    total = sum(_direct_logp(model, s) for s in seqs)
    n = sum(len(s) - 1 for s in seqs)
    assert caption_perplexity(model, seqs, None) == pytest.approx(math.exp(-total / n), rel=1e-5)


def test_generative_retrieval_ranks_by_likelihood(model, tok):
    seqs = [tok.encode(s).ids for s in TEXT]
    images = torch.randn(4, 2, 5)
    owner = torch.tensor([2, 0, 3])
    scores = torch.tensor([[_direct_logp(model, s, images[j : j + 1]) for j in range(4)] for s in seqs])
    rank = [(scores[i] > scores[i, owner[i]]).sum().item() for i in range(3)]
    got = generative_retrieval(model, seqs, owner, images, ks=(1, 2))
    assert got["r@1"] == pytest.approx(sum(r < 1 for r in rank) / 3)
    assert got["r@2"] == pytest.approx(sum(r < 2 for r in rank) / 3)


def test_contrastive_retrieval_matches_cosine_ranking(model, tok):
    seqs = [tok.encode(s).ids for s in TEXT]
    images = torch.randn(2, 2, 5)
    owner = torch.tensor([1, 0, 1])
    zt = torch.cat([model.text_embedding(torch.tensor([s])) for s in seqs])
    zi = model.image_embedding(images)
    sim = zt @ zi.t()
    t2i = sum(sim[i].argmax().item() == owner[i].item() for i in range(3)) / 3
    i2t = 0
    for j in range(2):
        best = sim[:, j].argmax().item()
        i2t += owner[best].item() == j
    got = contrastive_retrieval(model, seqs, owner, images, ks=(1,))
    assert got["r@1"] == pytest.approx((t2i + i2t / 2) / 2)


def test_gate_by_word_class_attributes_the_predicting_position(model, tok):
    caps = ["the red circle.", "a blue square."]
    images = torch.randn(2, 2, 5)
    rep = gate_by_word_class(model, tok, caps, images, classify=shapes_word_class)
    # by hand: word k of caption b is predicted at the positions just before its tokens
    gates = {}
    for b, cap in enumerate(caps):
        enc = tok.encode(cap)
        with capture_gates(model) as cap_g:
            model(torch.tensor([enc.ids]), images[b : b + 1])
        g = torch.stack([cap_g[f"layers.{i}.gate"][0, :, 0] for i in range(2)]).mean(0)  # [T]
        for w in set(x for x in enc.word_ids if x is not None):
            pos = [j for j, x in enumerate(enc.word_ids) if x == w]
            word = cap[enc.offsets[pos[0]][0] : enc.offsets[pos[-1]][1]].strip()
            gates.setdefault(shapes_word_class(word), []).append(
                torch.stack([g[p - 1] for p in pos]).mean().item()
            )
    assert set(rep.classes) == set(gates) == {"function", "colour", "shape", "punct"}
    for cls, vals in gates.items():
        assert rep.classes[cls]["n"] == len(vals)
        assert rep.classes[cls]["gate_mean"] == pytest.approx(sum(vals) / len(vals), abs=1e-5)
    assert rep.words["red"]["n"] == 1 and "." in rep.words
    with pytest.raises(ValueError, match="fusion"):
        gate_by_word_class(
            GatedVLDecoder(vocab_size=tok.get_vocab_size(), fusion="add", d_model=8, num_heads=2),
            tok,
            caps,
            images,
        )


def test_word_classes():
    assert [word_class(w) for w in ("The", "dog", "Don", "'t", ",", "42", "quickly", "between")] == [
        "function",
        "content",
        "function",
        "function",
        "punct",
        "number",
        "content",
        "function",
    ]
    assert [shapes_word_class(w) for w in ("red", "circle", "left", "the", "see")] == [
        "colour",
        "shape",
        "position",
        "function",
        "content",
    ]


def test_plot_writes_png(model, tok, tmp_path):
    rep = gate_by_word_class(
        model, tok, ["the red circle."], torch.randn(1, 2, 5), classify=shapes_word_class
    )
    out = plot_gate_classes(
        {"a": rep, "b": rep}, tmp_path / "g.png", classes=["colour", "function", "position"]
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    last = plot_gate_classes({"a": rep}, tmp_path / "last.png", value="gate_last")  # the official reading
    assert last.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="value='gate_sem'"):
        plot_gate_classes({"a": rep}, tmp_path / "x.png", value="gate_sem")


def test_gate_class_rows_cover_every_class_and_layer_reading(model, tok):
    from gatelab.multimodal.analysis.table import gate_class_rows, gate_layers

    caps = ["the red circle is in the top left.", "a blue square."]
    rep = gate_by_word_class(model, tok, caps, torch.randn(2, 2, 5), classify=shapes_word_class)
    rows = gate_class_rows(rep, {"dataset": "shapes", "seed": 3}, "gate-scalar")
    splits = [s for s, _ in gate_layers(rep.num_layers)]
    assert splits[:2] == ["last", "mean"] and len(splits) == 2 + rep.num_layers
    assert {(r["model"], r["split"]) for r in rows} == {(c, s) for c in rep.classes for s in splits}
    by = {(r["model"], r["split"]): r for r in rows}
    for cls, v in rep.classes.items():
        assert by[cls, "last"]["gate"] == v["gate_last"] == v[f"gate_layer{rep.num_layers - 1}"]
        assert by[cls, "mean"]["gate"] == v["gate_mean"] and by[cls, "last"]["n"] == v["n"]
        assert v["gate_last_sem"] == v["gate_last_sem"] or v["n"] == 1  # NaN only for a single occurrence
    assert {"colour", "shape", "position", "function", "punct"} <= set(rep.classes)
    assert all(r["variant"] == "gate-scalar" and r["seed"] == 3 for r in rows)
