"""FieldEmbedding's sequence pooling (mean / sum / max), shared tables and hashed fields against
hand-written math on tiny tensors; a model with all three survives save/load."""

from __future__ import annotations

import pytest
import torch

from gatelab.recsys.models import FieldEmbedding

SEQ_SPEC = {
    "fields": [
        {"name": "user", "type": "categorical", "vocab_size": 5, "num_tokens": 3},
        {"name": "s_mean", "type": "sequence", "vocab_size": 4, "num_tokens": 2, "max_len": 3},
        {"name": "s_sum", "type": "sequence", "vocab_size": 4, "num_tokens": 2, "max_len": 3, "pooling": "sum"},
        {"name": "s_max", "type": "sequence", "vocab_size": 4, "num_tokens": 2, "max_len": 3, "pooling": "max"},
    ]
}


def _filled(emb):
    torch.manual_seed(0)
    with torch.no_grad():
        for t in emb.tables.values():
            t.weight.normal_()
    return emb


def test_pooling_matches_hand_math_and_empty_is_zero():
    emb = _filled(FieldEmbedding(SEQ_SPEC, 2))
    seq = torch.tensor(
        [
            [[1, 2, 0], [1, 2, 0], [1, 2, 0]],  # tokens 1, 2 in each field
            [[3, 0, 0], [3, 3, 0], [2, 1, 3]],
            [[0, 0, 0], [0, 0, 0], [0, 0, 0]],  # empty sequences
        ]
    )
    cat = torch.tensor([[1], [2], [3]])
    out = emb(categorical=cat, sequence=seq).view(3, 4, 2)
    T = {n: emb.field_table(n) for n in ("s_mean", "s_sum", "s_max")}
    for b in range(3):
        toks = [[int(t) for t in seq[b, j] if t > 0] for j in range(3)]
        rows = [[T[n][t] for t in tk] for n, tk in zip(T, toks)]
        mean = sum(rows[0]) / len(rows[0]) if rows[0] else torch.zeros(2)
        total = sum(rows[1]) if rows[1] else torch.zeros(2)
        mx = torch.stack(rows[2]).max(dim=0).values if rows[2] else torch.zeros(2)  # the rule: empty -> 0
        torch.testing.assert_close(out[b, 0], emb.field_table("user")[cat[b, 0]])
        torch.testing.assert_close(out[b, 1], mean)
        torch.testing.assert_close(out[b, 2], total)
        torch.testing.assert_close(out[b, 3], mx)
    assert torch.equal(out[2, 1:], torch.zeros(3, 2))
    # max: the gradient reaches only the arg-max rows; padding rows get none
    emb.zero_grad()
    emb(categorical=cat, sequence=seq)[:, 6:].sum().backward()  # s_max only
    g = emb.tables["sequence_2"].weight.grad
    start = emb._field_rows["s_max"][1]
    assert torch.all(g[start] == 0)  # padding row of s_max
    b1 = torch.stack([T["s_max"][t] for t in (2, 1, 3)]).argmax(dim=0)  # per dimension, row 1
    b0 = torch.stack([T["s_max"][t] for t in (1, 2)]).argmax(dim=0)
    expect = torch.zeros(4, 2)
    for k in range(2):
        expect[[1, 2][b0[k]], k] += 1
        expect[[2, 1, 3][b1[k]], k] += 1
    torch.testing.assert_close(g[start : start + 4], expect)


def test_shared_table_is_one_parameter_set():
    spec = {
        "fields": [
            {"name": "user", "type": "categorical", "vocab_size": 6, "num_tokens": 4},
            {"name": "clicked", "type": "sequence", "vocab_size": 6, "num_tokens": 4, "max_len": 2,
             "share_embedding": "user", "pooling": "sum"},
            {"name": "item", "type": "categorical", "vocab_size": 3, "num_tokens": 1},
        ]
    }  # fmt: skip
    emb = _filled(FieldEmbedding(spec, 3))
    # user's 6 rows + item's 3: the sharer adds none, and reads the owner's storage
    assert sum(p.numel() for p in emb.parameters()) == (6 + 3) * 3
    assert emb.field_table("clicked").data_ptr() == emb.field_table("user").data_ptr()
    cat = torch.tensor([[2, 1], [5, 2]])
    seq = torch.tensor([[[2, 3]], [[0, 0]]])
    out = emb(categorical=cat, sequence=seq).view(2, 3, 3)
    U = emb.field_table("user")
    torch.testing.assert_close(out[0, 1], U[2] + U[3])  # the clicked users' own user_id rows
    torch.testing.assert_close(out[0, 0], U[2])
    torch.testing.assert_close(out[1, 1], torch.zeros(3))
    # both fields' gradients land in the one table: user 2 gets 1 (categorical) + 1 (sequence)
    emb.zero_grad()
    emb(categorical=cat, sequence=seq)[:, :6].sum().backward()
    g = emb.tables["categorical_3"].weight.grad
    assert g[2].tolist() == [2.0, 2.0, 2.0] and g[3].tolist() == [1.0] * 3 and g[5].tolist() == [1.0] * 3
    # a context embedding of the sharer alone still reads the owner's rows
    ctx = FieldEmbedding(spec, 3, fields=["clicked"])
    assert ctx.field_table("clicked").shape == (6, 3)
    # sizes that resolve differently (the model default vs an explicit size) are an error
    bad = {"fields": [dict(f) for f in spec["fields"]]}
    bad["fields"][0]["embedding_dim"] = 3
    from gatelab.core.config import ConfigError

    with pytest.raises(ConfigError, match="different embedding sizes"):
        FieldEmbedding(bad, 3)


def test_hashed_shared_pooled_model_round_trips(tmp_path):
    """A DNN on a spec with a hashed field, a shared table and max pooling: the saved config
    keeps the three options and the reloaded model gives the same logits."""
    from gatelab.core.pretrained import from_pretrained
    from gatelab.core.registry import create_model
    from gatelab.recsys.models import example_inputs

    spec = {
        "fields": [
            {"name": "user", "type": "categorical", "vocab_size": 6, "num_tokens": 4},
            {"name": "ad", "type": "categorical", "vocab_size": 17, "num_tokens": 0, "hash_buckets": 16},
            {"name": "clicked", "type": "sequence", "vocab_size": 6, "num_tokens": 4, "max_len": 3,
             "share_embedding": "user", "pooling": "max"},
        ]
    }  # fmt: skip
    torch.manual_seed(0)
    model = create_model("dnn", feature_spec=spec, embedding_dim=4, hidden_dims=(8,)).eval()
    x = example_inputs(model.feature_spec, 6, generator=torch.Generator().manual_seed(1))
    x["sequence"][0] = 0
    want = model(**x)
    model.save_pretrained(tmp_path / "m")
    again = from_pretrained(tmp_path / "m").eval()
    fields = {f["name"]: f for f in again.config.feature_spec["fields"]}
    assert fields["ad"]["hash_buckets"] == 16
    assert fields["clicked"]["share_embedding"] == "user" and fields["clicked"]["pooling"] == "max"
    torch.testing.assert_close(again(**x), want, rtol=0, atol=0)


def test_every_recsys_model_takes_hashed_shared_and_max_pooled_fields():
    """Each registered CTR model (tiny config) builds on a spec with a hashed field, a sequence
    sharing a categorical table with max pooling, and a numeric field; forward and backward run
    (FinalMLP with the sharer and the hashed field as its gate contexts)."""
    from gatelab.core.registry import create_model, registered
    from gatelab.recsys.models import example_inputs

    spec = {
        "fields": [
            {"name": "user", "type": "categorical", "vocab_size": 6, "num_tokens": 4},
            {"name": "item", "type": "categorical", "vocab_size": 9, "num_tokens": 0, "hash_buckets": 8},
            {"name": "price", "type": "numeric"},
            {"name": "clicked", "type": "sequence", "vocab_size": 6, "num_tokens": 4, "max_len": 3,
             "share_embedding": "user", "pooling": "max"},
        ]
    }  # fmt: skip
    names = sorted(n for n, i in registered().items() if i.domain == "recsys")
    for name in names:
        kw = {**registered()[name].tiny, "feature_spec": spec}
        if name == "finalmlp":
            kw.update(fs1_context=("clicked",), fs2_context=("item",))
        torch.manual_seed(0)
        m = create_model(name, **kw)
        y = m(**example_inputs(spec, 4, generator=torch.Generator().manual_seed(0)))
        assert y.shape == (4,) and torch.isfinite(y).all(), name
        y.sum().backward()
