"""The CTR feature pipeline: readers, chunked encoding, vocabularies/OOV, errors, layouts."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ctr_fixtures import CRITEO_C, CRITEO_I, criteo_rows, write_lines

from gatelab.core.config import ConfigError
from gatelab.recsys.data import (
    CsvReader,
    CTRDataError,
    FeatureEncoder,
    FeatureSpec,
    FieldSpec,
    LibsvmReader,
    ParquetReader,
    encode_dataset,
    load_encoded,
)
from gatelab.recsys.data.layouts import LAYOUTS

NAMES = ["label", *CRITEO_I, *CRITEO_C]


def _criteo_readers(files, block_size):
    return {
        k: CsvReader(p, sep="\t", header=False, names=NAMES, quoting=False, block_size=block_size)
        for k, p in files.items()
    }


def _criteo_fields():
    return [dict(f) for f in LAYOUTS["criteo"].fields]


# --------------------------------------------------------------------------- chunked == one-shot


def test_chunked_encoding_equals_one_shot(criteo_tsv, tmp_path):
    size = criteo_tsv["train"].stat().st_size
    small = 4096
    assert size > 5 * small, "the fixture must span several chunks"
    n_chunks = sum(1 for _ in _criteo_readers(criteo_tsv, small)["train"].iter_chunks())
    assert n_chunks > 8  # more than the token-count merge interval
    one = encode_dataset(_criteo_readers(criteo_tsv, 1 << 26), _criteo_fields(), tmp_path / "a", min_count=2)
    many = encode_dataset(_criteo_readers(criteo_tsv, small), _criteo_fields(), tmp_path / "b", min_count=2)
    spec1, s1 = load_encoded(one)
    spec2, s2 = load_encoded(many)
    assert json.loads((one / "vocab.json").read_text()) == json.loads((many / "vocab.json").read_text())
    assert [f.to_dict() for f in spec1.fields] == [f.to_dict() for f in spec2.fields]
    assert spec1.splits == spec2.splits
    for split in ("train", "valid", "test"):
        for k, a in s1[split].arrays().items():
            np.testing.assert_array_equal(a, s2[split].arrays()[k])
    assert len(s1["train"]) == 600 and s1["train"].categorical.shape == (600, 39)


def test_encoding_matches_hand_computation(tmp_path):
    rows = [
        ["1", "a", "3", "x^y"],
        ["0", "b", "", "y"],
        ["0", "a", "100", ""],
        ["1", "a", "-1", "y^y^z"],
        ["0", "c", "2", "x"],
    ]
    train = write_lines(tmp_path / "train.csv", rows, ",", ["label", "cat", "num", "seq"])
    valid = write_lines(
        tmp_path / "valid.csv",
        [["1", "d", "7", "q^x"], ["0", "", "1", "y"]],
        ",",
        ["label", "cat", "num", "seq"],
    )
    fields = [
        {"name": "cat", "type": "categorical"},
        {"name": "num_b", "type": "categorical", "column": "num", "preprocess": "log_bucket", "fill_na": 0.0},
        {"name": "num", "type": "numeric", "normalizer": "minmax", "fill_na": 0.0},
        {"name": "seq", "type": "sequence", "max_len": 2},
    ]
    folder = encode_dataset(
        {"train": CsvReader(train), "valid": CsvReader(valid)}, fields, tmp_path / "c", min_count=2
    )
    spec, splits = load_encoded(folder)
    vocab = json.loads((folder / "vocab.json").read_text())
    # most frequent first; tokens seen once (b, c) go to OOV with min_count 2
    assert vocab["cat"] == ["a"]
    # log_bucket: 3 -> floor(ln(3)^2) = 1, missing -> 0 -> "0", 100 -> floor(ln(100)^2) = 21, -1 -> -1, 2 -> 2
    assert math.floor(math.log(3) ** 2) == 1 and math.floor(math.log(100) ** 2) == 21
    assert sorted(vocab["num_b"]) == []  # every bucket token appears once
    assert vocab["seq"] == ["y", "x"]  # y: 4 times, x: 2, z: 1 (< min_count)
    assert spec["cat"].vocab_size == 3 and spec["cat"].oov_index == 2
    assert spec["seq"].max_len == 2
    tr = splits["train"]
    np.testing.assert_array_equal(tr.categorical[:, 0], [1, 2, 1, 1, 2])
    # minmax over filled values (missing -> 0): min -1, max 100
    x = np.array([3, 0, 100, -1, 2], np.float64)
    np.testing.assert_allclose(tr.numeric[:, 0], (x + 1) / 101, rtol=1e-6)
    # sequences: x^y -> [2, 1]; y -> [1, 0]; "" -> [0, 0]; y^y^z -> [1, 1] (truncated); x -> [2, 0]
    np.testing.assert_array_equal(tr.sequence[:, 0], [[2, 1], [1, 0], [0, 0], [1, 1], [2, 0]])
    np.testing.assert_array_equal(tr.label, [1, 0, 0, 1, 0])
    # evaluation: unseen "d" and unseen "q" are counted as OOV; the empty category is missing
    va = splits["valid"]
    np.testing.assert_array_equal(va.categorical[:, 0], [2, 2])
    np.testing.assert_array_equal(va.sequence[:, 0], [[3, 2], [1, 0]])
    assert spec.splits["valid"]["oov"]["cat"] == 1 and spec.splits["valid"]["missing"]["cat"] == 1
    assert spec.splits["valid"]["oov"]["seq"] == 1
    assert spec.splits["train"]["oov"]["cat"] == 2  # b and c are below min_count


def test_log_bucket_values(tmp_path):
    vals = ["0", "1", "2", "3", "7", "20", "150", "-1", "", "2.5"]
    f = write_lines(tmp_path / "t.csv", [["0", v] for v in vals], ",", ["label", "I1"])
    enc = FeatureEncoder([{"name": "I1", "type": "categorical", "preprocess": "log_bucket", "fill_na": 0.0}])
    enc.fit(CsvReader(f))
    expect = []
    for v in vals:
        x = float(v) if v else 0.0
        expect.append(str(math.floor(math.log(x) ** 2)) if x > 2 else str(int(x)))
    assert sorted(enc.vocab["I1"]) == sorted(set(expect))


def test_cache_is_reused_and_invalidated(criteo_tsv, tmp_path):
    a = encode_dataset(_criteo_readers(criteo_tsv, 1 << 20), _criteo_fields(), tmp_path / "c")
    mtime = (a / "feature_spec.json").stat().st_mtime_ns
    b = encode_dataset(_criteo_readers(criteo_tsv, 1 << 20), _criteo_fields(), tmp_path / "c")
    assert a == b and (b / "feature_spec.json").stat().st_mtime_ns == mtime
    c = encode_dataset(_criteo_readers(criteo_tsv, 1 << 20), _criteo_fields(), tmp_path / "c", min_count=3)
    assert c != a


# --------------------------------------------------------------------------- bad input


def test_malformed_line_names_file_and_line(tmp_path):
    rows = criteo_rows(400, 5)
    rows[333] = rows[333][:-1]  # 39 fields instead of 40
    f = write_lines(tmp_path / "bad.txt", rows, "\t")
    reader = CsvReader(f, sep="\t", header=False, names=NAMES, quoting=False, block_size=2048)
    with pytest.raises(CTRDataError, match=r"bad\.txt:334: malformed line: expected 40 fields .* got 39"):
        FeatureEncoder(_criteo_fields()).fit(reader)


def test_bad_label_names_file_and_line(tmp_path):
    rows = criteo_rows(300, 6)
    rows[250][0] = "2"
    f = write_lines(tmp_path / "lab.txt", rows, "\t")
    reader = CsvReader(f, sep="\t", header=False, names=NAMES, quoting=False, block_size=2048)
    with pytest.raises(CTRDataError, match=r"lab\.txt:251: label '2' in column 'label' is not 0 or 1"):
        FeatureEncoder(_criteo_fields()).fit(reader)
    # with a header the first data row is line 2
    g = write_lines(tmp_path / "lab2.csv", [["1", "a"], ["yes", "b"]], ",", ["label", "c"])
    with pytest.raises(
        CTRDataError,
        match=r"lab2\.csv:3: label .yes. in column 'label' is not a number|lab2\.csv:3: label column 'label': 'yes' is not a number",
    ):
        FeatureEncoder([{"name": "c", "type": "categorical"}]).fit(CsvReader(g))


def test_bad_number_and_missing_column(tmp_path):
    f = write_lines(tmp_path / "n.csv", [["1", "3"], ["0", "x7"]], ",", ["label", "price"])
    with pytest.raises(CTRDataError, match=r"n\.csv:3: column 'price': 'x7' is not a number"):
        FeatureEncoder([{"name": "price", "type": "numeric"}]).fit(CsvReader(f))
    with pytest.raises(CTRDataError, match="no column 'cost'"):
        FeatureEncoder([{"name": "cost", "type": "numeric"}]).fit(CsvReader(f))
    with pytest.raises(CTRDataError, match=r"header \['label', 'price'\] differs"):
        CsvReader(f, names=["label", "cost"])


def test_spec_validation_and_round_trip(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'vocab_size'"):
        FieldSpec.from_dict({"name": "a", "type": "categorical", "vocab_sise": 3})
    with pytest.raises(ConfigError, match="type='cat' is not one of"):
        FieldSpec(name="a", type="cat")
    with pytest.raises(ConfigError, match="normalizer applies to numeric"):
        FieldSpec(name="a", type="categorical", normalizer="minmax")
    with pytest.raises(ConfigError, match="duplicate field names"):
        FeatureSpec([FieldSpec("a", "numeric"), FieldSpec("a", "numeric")])
    spec = FeatureSpec(
        [
            FieldSpec("a", "categorical", vocab_size=5, num_tokens=3, embedding_dim=4),
            FieldSpec("b", "numeric"),
        ]
    )
    path = spec.save(tmp_path / "s.json")
    assert FeatureSpec.load(path).to_dict() == spec.to_dict()
    assert spec.model_dict() == {
        "label": "label",
        "fields": [
            {"name": "a", "type": "categorical", "vocab_size": 5, "num_tokens": 3, "embedding_dim": 4},
            {"name": "b", "type": "numeric"},
        ],
    }
    assert spec.with_embedding_dims({"b": 2})["b"].embedding_dim == 2


# --------------------------------------------------------------------------- other readers


def test_libfm_reader_nfm_style(tmp_path):
    lines = ["-1 3:1 10:1 12:1", "1 4:1 11:1 12:1", "1 3:1 10:1 13:1", "-1 5:1 11:1 12:1"]
    f = tmp_path / "x.libfm"
    f.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    r = LibsvmReader(f, names=["user", "item", "ctx"], block_size=16)
    assert sum(1 for _ in r.iter_chunks()) > 1
    enc = FeatureEncoder(
        [{"name": n, "type": "categorical"} for n in ("user", "item", "ctx")], negative_label=-1
    )
    spec = enc.fit(r)
    assert enc.vocab["user"] == ["3", "4", "5"]  # 3 twice, then by token
    assert enc.vocab["ctx"] == ["12", "13"]
    out = enc.transform(r, tmp_path / "enc")
    assert out["positives"] == 2 and spec["user"].vocab_size == 5
    # without negative_label, -1 is an error naming the line
    with pytest.raises(CTRDataError, match=r"x\.libfm:1: label '-1'"):
        FeatureEncoder([{"name": "user", "type": "categorical"}]).fit(r)
    bad = tmp_path / "bad.libfm"
    bad.write_text("1 3:1 10:1 12:1\n0 3:1 10:1\n")
    with pytest.raises(
        CTRDataError, match=r"bad\.libfm:2: malformed line: expected 3 idx:val entries, got 2"
    ):
        list(LibsvmReader(bad).iter_chunks())


def test_libsvm_numeric_values(tmp_path):
    f = tmp_path / "c.libsvm"
    f.write_text("0 1:0.5 7:1\n1 1:0.25 8:1\n")
    r = LibsvmReader(f, names=["I1", "C1"], numeric=["I1"])
    folder = encode_dataset(
        {"train": r},
        [{"name": "I1", "type": "numeric"}, {"name": "C1", "type": "categorical"}],
        tmp_path / "c",
    )
    _, s = load_encoded(folder)
    np.testing.assert_allclose(s["train"].numeric[:, 0], [0.5, 0.25])


def test_parquet_equals_csv(tmp_path):
    rows = [["1", "a", "x^y", "0.5"], ["0", "b", "y", "1.5"], ["1", "a", "", "2.5"]]
    csv = write_lines(tmp_path / "d.csv", rows, ",", ["label", "c", "s", "n"])
    table = pa.table(
        {"label": [1, 0, 1], "c": ["a", "b", "a"], "s": ["x^y", "y", None], "n": [0.5, 1.5, 2.5]}
    )
    pq.write_table(table, tmp_path / "d.parquet")
    fields = [
        {"name": "c", "type": "categorical"},
        {"name": "s", "type": "sequence"},
        {"name": "n", "type": "numeric", "normalizer": "standard"},
    ]
    a = load_encoded(encode_dataset({"train": CsvReader(csv)}, fields, tmp_path / "a"))[1]["train"]
    b = load_encoded(
        encode_dataset({"train": ParquetReader(tmp_path / "d.parquet", batch_rows=2)}, fields, tmp_path / "b")
    )[1]["train"]
    for k, v in a.arrays().items():
        np.testing.assert_allclose(v, b.arrays()[k])
    n = np.array([0.5, 1.5, 2.5])
    np.testing.assert_allclose(a.numeric[:, 0], (n - n.mean()) / n.std(), rtol=1e-6)


def test_avazu_hour_preprocessing(tmp_path):
    header = ["id", "click", "hour", "C1", "site_id"]
    rows = [
        ["1", "0", "14102100", "1005", "s1"],
        ["2", "1", "14102523", "1005", "s2"],
    ]  # Tue 21 Oct, Sat 25 Oct 2014
    f = write_lines(tmp_path / "a.csv", rows, ",", header)
    fields = [
        dict(x)
        for x in LAYOUTS["avazu"].fields
        if x["name"] in ("hour", "weekday", "weekend", "C1", "site_id")
    ]
    enc = FeatureEncoder(fields, label="click")
    enc.fit(CsvReader(f))
    assert sorted(enc.vocab["hour"]) == ["00", "23"]
    assert sorted(enc.vocab["weekday"]) == ["1", "5"]  # 0 = Monday
    assert sorted(enc.vocab["weekend"]) == ["0", "1"]


# --------------------------------------------------------------------------- BARS x1 layouts


def _x1_files(tmp_path, layout, make_row, n=(60, 20, 20)):
    folder = tmp_path / layout
    folder.mkdir()
    lay = LAYOUTS[layout]
    header = [lay.label, *(f.get("column") or f["name"] for f in lay.fields)]
    rng = np.random.default_rng(0)
    for split, k in zip(("train", "valid", "test"), n):
        write_lines(folder / f"{split}.csv", [make_row(rng) for _ in range(k)], ",", header)
    return folder


@pytest.mark.parametrize(
    "layout,make_row",
    [
        (
            "criteo_x1",
            lambda r: [
                str(r.integers(0, 2)),
                *(f"{r.random():.4f}" for _ in range(13)),
                *(str(r.integers(0, 30)) for _ in range(26)),
            ],
        ),
        ("avazu_x1", lambda r: [str(r.integers(0, 2)), *(str(r.integers(0, 50)) for _ in range(22))]),
        (
            "movielenslatest_x1",
            lambda r: [
                str(r.integers(0, 2)),
                str(r.integers(0, 9)),
                str(r.integers(9, 30)),
                str(r.integers(30, 40)),
            ],
        ),
        (
            "frappe_x1",
            lambda r: [str(r.integers(0, 2)), *(str(r.integers(0, 20) + 20 * j) for j in range(10))],
        ),
    ],
)
def test_bars_x1_layouts(tmp_path, layout, make_row):
    from gatelab.recsys.data.datamodule import ctr_datamodule

    lay = LAYOUTS[layout]
    sub = {
        "criteo_x1": "Criteo_x1",
        "avazu_x1": "Avazu_x1",
        "movielenslatest_x1": "MovielensLatest_x1",
        "frappe_x1": "frappe/Frappe_x1",
    }[layout]
    (tmp_path / "data" / sub).parent.mkdir(parents=True, exist_ok=True)
    _x1_files(tmp_path, layout, make_row).rename(tmp_path / "data" / sub)
    dm = ctr_datamodule(
        tmp_path / "data", dataset=layout, batch_size=16, cache=str(tmp_path / "cache"), verify=False
    )
    assert dm.spec.names == [f["name"] for f in lay.fields]
    n_num = sum(f["type"] == "numeric" for f in lay.fields)
    batch = next(iter(dm.train_dataloader()))
    assert batch["target"].shape == (16,)
    assert batch["categorical"].shape == (16, len(lay.fields) - n_num)
    if n_num:
        assert batch["numeric"].shape == (16, n_num)
    assert len(dm.encoded["valid"]) == 20 and len(dm.encoded["test"]) == 20
    # every training row is seen once per epoch, in a new order each epoch
    rows = sum(len(b["target"]) for b in dm.train_dataloader())
    assert rows == 60


def test_datamodule_errors(tmp_path):
    from gatelab.core.harness.errors import DatasetNotFoundError
    from gatelab.recsys.data.datamodule import ctr_datamodule

    with pytest.raises(ConfigError, match="dataset='nope': unknown"):
        ctr_datamodule(tmp_path, dataset="nope")
    with pytest.raises(DatasetNotFoundError, match="Criteo_x1"):
        ctr_datamodule(tmp_path, dataset="criteo_x1")
    with pytest.raises(ConfigError, match="custom needs files and fields"):
        ctr_datamodule(tmp_path, dataset="custom")
