"""Hashed fields (``hash_buckets``) and shared tables (``share_embedding``) through the encoder,
and the FeatureSpec rules of both (and of ``pooling``), against hand computation."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest
import torch
from ctr_fixtures import write_lines

from gatelab.core.config import ConfigError
from gatelab.recsys.data import CsvReader, FeatureSpec, encode_dataset, load_encoded
from gatelab.recsys.data.hashing import hash_token, hash_tokens


def _by_hand(token: str, n: int) -> int:
    """1 + (first 8 bytes of blake2b-64, little-endian) mod n: the documented formula."""
    return 1 + int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little") % n


def test_hash_is_the_documented_stable_function():
    for tok in ["a", "user_17", "", "é中", "05db9164"]:
        assert hash_token(tok, 97) == _by_hand(tok, 97)
    arr = pa.array(["b", None, "a", "b", ""])
    np.testing.assert_array_equal(hash_tokens(arr, 13), [_by_hand(t, 13) for t in ["b", "", "a", "b", ""]])
    assert hash_tokens(pa.array([], pa.string()), 5).shape == (0,)
    # not Python's salted hash: another process with another hash seed gives the same indices
    code = "from gatelab.recsys.data.hashing import hash_token; print(hash_token('user_17', 1000003))"
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert int(out.stdout) == _by_hand("user_17", 1000003)
    with pytest.raises(ValueError, match="buckets must be a positive int"):
        hash_token("a", 0)


def test_hashed_and_shared_fields_encode_as_computed_by_hand(tmp_path):
    header = ["label", "user", "clicked", "ad"]
    train = write_lines(
        tmp_path / "train.csv",
        [["1", "u1", "u2^u3", "a"], ["0", "u2", "u1", "b"], ["0", "u1", "", ""], ["1", "u3", "u9^u1", "a"]],
        ",",
        header,
    )
    test = write_lines(tmp_path / "test.csv", [["0", "u7", "u1^u7", "zz"], ["1", "", "u2", "a"]], ",", header)
    fields = [
        {"name": "user", "type": "categorical"},
        {"name": "clicked", "type": "sequence", "share_embedding": "user", "max_len": 2, "pooling": "sum"},
        {"name": "ad", "type": "categorical", "hash_buckets": 7},
    ]
    folder = encode_dataset({"train": CsvReader(train), "test": CsvReader(test)}, fields, tmp_path / "c")
    spec, splits = load_encoded(folder)
    vocab = json.loads((folder / "vocab.json").read_text())
    # one vocabulary fitted on user and clicked together: u1 x3, u2 x2, u3 x2, u9 x1 (ties by token)
    assert vocab["user"] == vocab["clicked"] == ["u1", "u2", "u3", "u9"]
    assert spec["user"].vocab_size == spec["clicked"].vocab_size == 6
    idx = {t: i + 1 for i, t in enumerate(vocab["user"])}
    tr = splits["train"]
    np.testing.assert_array_equal(tr.categorical[:, 0], [idx["u1"], idx["u2"], idx["u1"], idx["u3"]])
    np.testing.assert_array_equal(
        tr.sequence[:, 0], [[idx["u2"], idx["u3"]], [idx["u1"], 0], [0, 0], [idx["u9"], idx["u1"]]]
    )
    # hashed: no vocabulary, vocab_size = buckets + 1, a missing entry hashed as ""
    assert vocab["ad"] == [] and spec["ad"].vocab_size == 8 and spec["ad"].num_tokens == 0
    np.testing.assert_array_equal(tr.categorical[:, 1], [_by_hand(t, 7) for t in ["a", "b", "", "a"]])
    te = splits["test"]
    # unseen "zz" hashes like any token (no OOV); unseen u7 goes to the shared OOV index 5 in both fields
    np.testing.assert_array_equal(te.categorical[:, 1], [_by_hand("zz", 7), _by_hand("a", 7)])
    assert spec.splits["test"]["oov"]["ad"] == 0 and spec.splits["test"]["missing"]["ad"] == 0
    np.testing.assert_array_equal(te.categorical[:, 0], [5, 5])
    np.testing.assert_array_equal(te.sequence[:, 0], [[idx["u1"], 5], [idx["u2"], 0]])
    assert spec.splits["test"]["oov"]["clicked"] == 1 and spec.splits["test"]["oov"]["user"] == 1
    # the model part of the spec keeps the three options (what a saved model is rebuilt from)
    md = {f["name"]: f for f in spec.model_dict()["fields"]}
    assert md["clicked"]["share_embedding"] == "user" and md["clicked"]["pooling"] == "sum"
    assert md["ad"]["hash_buckets"] == 7
    with pytest.raises(ConfigError, match=r"is hashed.*no OOV index"):
        _ = spec["ad"].oov_index


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        (
            [{"name": "user", "type": "categorical"}, {"name": "s", "type": "sequence", "share_embedding": "usr"}],
            r"field 's' share_embedding='usr': unknown field.*did you mean 'user'.*fields: user, s",
        ),
        (
            [{"name": "u", "type": "categorical", "embedding_dim": 8},
             {"name": "s", "type": "sequence", "share_embedding": "u", "embedding_dim": 4}],
            r"different embedding sizes \(s: 4, u: 8",
        ),
        (
            [{"name": "x", "type": "numeric"}, {"name": "s", "type": "sequence", "share_embedding": "x"}],
            r"'x' is numeric",
        ),
        (
            [{"name": "a", "type": "categorical"}, {"name": "b", "type": "categorical", "share_embedding": "a"},
             {"name": "c", "type": "sequence", "share_embedding": "b"}],
            r"'b' shares 'a''s table itself; name the owner: share_embedding: a",
        ),
        (
            [{"name": "u", "type": "categorical", "vocab_size": 9},
             {"name": "s", "type": "sequence", "share_embedding": "u", "vocab_size": 7}],
            r"vocab_size 7 differs from 'u''s 9",
        ),
        ([{"name": "u", "type": "categorical", "pooling": "max"}], r"field 'u': pooling='max' applies to sequence fields only"),
        ([{"name": "s", "type": "sequence", "pooling": "median"}], r"pooling='median' is not one of mean, sum, max"),
        ([{"name": "u", "type": "categorical", "hash_buckets": 0}], r"hash_buckets must be an int >= 1, got 0"),
        ([{"name": "x", "type": "numeric", "hash_buckets": 10}], r"hash_buckets applies to categorical and sequence"),
        ([{"name": "u", "type": "categorical", "hash_buckets": 10, "min_count": 2}], r"min_count=2 has no effect"),
        (
            [{"name": "u", "type": "categorical", "hash_buckets": 10},
             {"name": "s", "type": "sequence", "share_embedding": "u", "hash_buckets": 10}],
            r"shares 'u''s table, so \['hash_buckets'\] are the owner's",
        ),
        ([{"name": "u", "type": "categorical", "share_embedding": "u"}], r"share_embedding names the field itself"),
    ],
)  # fmt: skip
def test_spec_rules_are_clear_errors(fields, match):
    with pytest.raises(ConfigError, match=match):
        FeatureSpec(fields)


def test_predict_encodes_hashed_and_shared_fields_as_training_did(tmp_path):
    """A model saved with the data module's preprocessing scores a raw file exactly as the
    model scores the encoded split: hashed tokens (unseen ones included) and the shared
    vocabulary go through ``gatelab predict``'s encoder the same way."""
    from ctr_fixtures import write_custom_ctr

    from gatelab.core.harness.predict import PredictOptions
    from gatelab.core.pretrained import from_pretrained
    from gatelab.core.registry import create_model
    from gatelab.recsys.data.datamodule import ctr_datamodule
    from gatelab.recsys.predict import score_file

    files = write_custom_ctr(tmp_path / "data", {"train": 120, "valid": 20, "test": 40}, users=14)  # users 10-13 unseen
    fields = [
        {"name": "user", "type": "categorical", "hash_buckets": 32},
        {"name": "item", "type": "categorical"},
        {"name": "also_item", "type": "categorical", "column": "item", "share_embedding": "item"},
        {"name": "tags", "type": "sequence", "pooling": "max", "hash_buckets": 5},
    ]
    dm = ctr_datamodule(
        tmp_path, dataset="custom", files=files, fields=fields, batch_size=16, cache=str(tmp_path / "c"), verify=False
    )
    torch.manual_seed(0)
    model = create_model("dnn", **dm.model_kwargs(), embedding_dim=4, hidden_dims=(8,)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    model.save_pretrained(tmp_path / "m", preprocessing=dm.preprocessing())
    score_file(from_pretrained(tmp_path / "m"), files["test"], tmp_path / "s.csv", PredictOptions(progress=False))
    got = np.array([float(line.split(",")[1]) for line in (tmp_path / "s.csv").read_text().splitlines()[1:]])
    arrays = dm.encoded["test"].arrays()
    with torch.no_grad():
        want = torch.sigmoid(
            model(categorical=torch.from_numpy(np.asarray(arrays["categorical"])).long(),
                  sequence=torch.from_numpy(np.asarray(arrays["sequence"])).long())
        ).numpy()  # fmt: skip
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert np.asarray(arrays["categorical"])[:, 0].max() <= 32  # hashed indices 1..32, no OOV
