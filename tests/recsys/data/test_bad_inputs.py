"""The CTR bad-input census (issue 18 point 6): each malformed input is built in its real format
(CSV/TSV, ``.gz``, libsvm, parquet) and must either raise an error naming the file and the fault
(line, column, value) or be handled by the declared policy, with the counts reported.

Every case is recorded through ``tools/census.py`` (``python tools/census.py`` writes
``docs/results/bad-inputs.jsonl`` + ``.md``); in the ordinary suite recording is a no-op.
"""

from __future__ import annotations

import gzip

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from census import check_error, check_policy
from ctr_fixtures import write_lines

from gatelab.core.config import ConfigError
from gatelab.recsys.data import (
    CsvReader,
    CTRDataError,
    LibsvmReader,
    ParquetReader,
    encode_dataset,
    load_encoded,
    make_reader,
)
from gatelab.recsys.data.datamodule import ctr_datamodule, data_report

CSV = "recsys.ctr.csv"
GZ = "recsys.ctr.csv.gz"
LIBSVM = "recsys.ctr.libsvm"
PARQUET = "recsys.ctr.parquet"
MODULE = "recsys.ctr.datamodule"

HEADER = ["label", "cat", "price", "tags"]
FIELDS = [
    {"name": "cat", "type": "categorical"},
    {"name": "price", "type": "numeric", "normalizer": "standard"},
    {"name": "tags", "type": "sequence"},
]


def _rows(n: int = 12, seed: int = 0) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    return [
        [str(i % 2), "abc"[i % 3], f"{rng.normal(10, 2):.3f}", "^".join("xyz"[: 1 + i % 3])] for i in range(n)
    ]


def _csv(tmp_path, name: str, rows: list[list[str]], header: list[str] | None = HEADER):
    return write_lines(tmp_path / name, rows, ",", header)


def _encode(tmp_path, files: dict, fields=FIELDS, **kw):
    readers = {k: (v if not hasattr(v, "suffix") else CsvReader(v)) for k, v in files.items()}
    folder = encode_dataset(readers, fields, tmp_path / "cache", **kw)
    return load_encoded(folder)


def _with(rows: list[list[str]], row: int, col: int, value: str) -> list[list[str]]:
    rows = [list(r) for r in rows]
    rows[row][col] = value
    return rows


def _price(**extra):
    return [FIELDS[0], {**FIELDS[1], **extra}, FIELDS[2]]


# --------------------------------------------------------------------------- numeric values


@pytest.mark.parametrize(
    "case,value,kind",
    [("nan-numeric", "nan", "non-finite value 'nan'"), ("inf-numeric", "inf", "non-finite value 'inf'"),
     ("neg-inf-numeric", "-Infinity", "non-finite value '-Infinity'"), ("empty-numeric", "", "empty value")],
)  # fmt: skip
def test_non_finite_numeric_is_an_error_naming_file_line_column(tmp_path, case, value, kind):
    train = _csv(tmp_path, "train.csv", _with(_rows(), 4, 2, value))
    check_error(
        CSV,
        case,
        f"{value or 'empty'} in a numeric column without na_policy",
        lambda: _encode(tmp_path, {"train": train}),
        names=[f"{train}:6", "column 'price'", kind, "na_policy"],
        exc=CTRDataError,
    )


def test_nan_only_in_test_split_names_the_test_file(tmp_path):
    train = _csv(tmp_path, "train.csv", _rows())
    test = _csv(tmp_path, "test.csv", _with(_rows(5, seed=1), 2, 2, "nan"))
    check_error(
        CSV,
        "nan-numeric-test-only",
        "a NaN in test.csv only (silently lowered AUC before)",
        lambda: _encode(tmp_path, {"train": train, "test": test}),
        names=[f"{test}:4", "column 'price'", "'nan'"],
        exc=CTRDataError,
    )


def test_nan_with_normalizer_none_is_an_error(tmp_path):
    train = _csv(tmp_path, "train.csv", _with(_rows(), 1, 2, "NaN"))
    check_error(
        CSV,
        "nan-numeric-normalizer-none",
        "NaN in a numeric column with normalizer none (trained to loss nan before)",
        lambda: _encode(tmp_path, {"train": train}, _price(normalizer="none")),
        names=[f"{train}:3", "column 'price'", "'NaN'"],
        exc=CTRDataError,
    )


def test_fill_policy_is_applied_and_counted(tmp_path):
    rows = _with(_with(_rows(), 1, 2, "nan"), 3, 2, "")
    train = _csv(tmp_path, "train.csv", rows)
    test = _csv(tmp_path, "test.csv", _with(_rows(4, seed=2), 0, 2, "inf"))
    spec, splits = _encode(tmp_path, {"train": train, "test": test}, _price(fill_na=-1.0))
    na = spec.splits["train"]["na"]["price"]
    st = spec["price"].stats
    finite = np.array([float(r[2]) for i, r in enumerate(rows) if i not in (1, 3)])
    x = splits["train"].numeric[:, 0]
    ok = (
        na == {"policy": "fill", "missing": 1, "non_finite": 1, "filled": 2}
        and spec.splits["test"]["na"]["price"]["filled"] == 1
        and st["count"] == 10
        and np.isclose(st["mean"], finite.mean())
        and np.isclose(x[1], (-1.0 - st["mean"]) / st["std"], rtol=1e-5)
        and np.isfinite(x).all()
    )
    check_policy(CSV, "nan-numeric-fill", "NaN, empty and inf with na_policy fill (fill_na -1)", ok, str(na))


def test_drop_row_policy_is_applied_and_counted(tmp_path):
    train = _csv(tmp_path, "train.csv", _with(_with(_rows(), 2, 2, "nan"), 7, 2, "inf"))
    test = _csv(tmp_path, "test.csv", _with(_rows(5, seed=1), 0, 2, ""))
    spec, splits = _encode(tmp_path, {"train": train, "test": test}, _price(na_policy="drop_row"))
    tr, te = spec.splits["train"], spec.splits["test"]
    ok = (
        len(splits["train"]) == 10
        and tr["rows_dropped"] == 2
        and tr["na"]["price"] == {"policy": "drop_row", "non_finite": 2, "dropped": 2}
        and len(splits["test"]) == 4
        and te["rows_dropped"] == 1
        and np.isfinite(splits["train"].numeric).all()
    )
    check_policy(
        CSV,
        "nan-numeric-drop_row",
        "NaN/inf/empty with na_policy drop_row",
        ok,
        f"train {tr['na']}, test {te['na']}",
    )


def test_mask_policy_is_applied_and_counted(tmp_path):
    train = _csv(tmp_path, "train.csv", _with(_rows(), 5, 2, "nan"))
    spec, splits = _encode(tmp_path, {"train": train}, _price(na_policy="mask"))
    s = splits["train"]
    ok = (
        s.numeric[5, 0] == 0.0
        and s.numeric_mask is not None
        and s.numeric_mask[:, 0].tolist() == [1] * 5 + [0] + [1] * 6
        and spec.splits["train"]["na"]["price"] == {"policy": "mask", "non_finite": 1, "masked": 1}
        and spec["price"].stats["count"] == 11
    )
    check_policy(CSV, "nan-numeric-mask", "NaN with na_policy mask", ok, str(spec.splits["train"]["na"]))


def test_minmax_with_nan_is_an_error(tmp_path):
    train = _csv(tmp_path, "train.csv", _with(_rows(), 9, 2, "nan"))
    check_error(
        CSV,
        "nan-numeric-minmax",
        "NaN with normalizer minmax (zeroed the column before)",
        lambda: _encode(tmp_path, {"train": train}, _price(normalizer="minmax")),
        names=[f"{train}:11", "column 'price'"],
        exc=CTRDataError,
    )


def test_huge_value_overflowing_float32_is_an_error(tmp_path):
    train = _csv(tmp_path, "train.csv", _with(_rows(), 3, 2, "1e300"))
    check_error(
        CSV,
        "huge-numeric",
        "1e300 in a numeric column (overflows float32)",
        lambda: _encode(tmp_path, {"train": train}, _price(normalizer="none")),
        names=[f"{train}:5", "column 'price'", "'1e300'", "float32"],
        exc=CTRDataError,
    )


def test_wrong_type_numeric_is_an_error(tmp_path):
    train = _csv(tmp_path, "train.csv", _with(_rows(), 6, 2, "12,5".replace(",", ";")))
    check_error(
        CSV,
        "wrong-type-numeric",
        "text '12;5' in a numeric column",
        lambda: _encode(tmp_path, {"train": train}),
        names=[f"{train}:8", "column 'price'", "'12;5' is not a number"],
        exc=CTRDataError,
    )


def test_all_numeric_missing_in_train_is_an_error(tmp_path):
    rows = [[r[0], r[1], "", r[3]] for r in _rows()]
    train = _csv(tmp_path, "train.csv", rows)
    check_error(
        CSV,
        "numeric-all-missing",
        "a numeric column with no value in train, normalizer standard, fill policy",
        lambda: _encode(tmp_path, {"train": train}, _price(fill_na=0.0)),
        names=[str(train), "column 'price'", "no finite value"],
        exc=CTRDataError,
    )


# --------------------------------------------------------------------------- labels


@pytest.mark.parametrize(
    "case,value,fault",
    [("bad-label", "2", "label 2"), ("nan-label", "nan", "label nan"), ("missing-label", "", "empty label"),
     ("text-label", "yes", "label 'yes'")],
)  # fmt: skip
def test_bad_labels(tmp_path, case, value, fault):
    train = _csv(tmp_path, "train.csv", _with(_rows(), 3, 0, value))
    check_error(
        CSV,
        case,
        fault,
        lambda: _encode(tmp_path, {"train": train}),
        names=[f"{train}:5", "'label'"],
        exc=CTRDataError,
    )


# --------------------------------------------------------------------------- structure


def test_missing_column(tmp_path):
    train = _csv(tmp_path, "train.csv", [r[:3] for r in _rows()], HEADER[:3])
    check_error(
        CSV,
        "missing-column",
        "a field's column is not in the file",
        lambda: _encode(tmp_path, {"train": train}),
        names=[str(train), "no column 'tags'"],
        exc=CTRDataError,
    )


def test_extra_field_on_a_line(tmp_path):
    rows = _rows()
    rows[7] = [*rows[7], "surplus"]
    train = _csv(tmp_path, "train.csv", rows)
    check_error(
        CSV,
        "extra-column",
        "one line has an extra field",
        lambda: _encode(tmp_path, {"train": train}),
        names=[f"{train}:9", "expected 4 fields", "got 5"],
        exc=CTRDataError,
    )


def test_truncated_file_last_line_cut(tmp_path):
    train = _csv(tmp_path, "train.csv", _rows())
    text = train.read_text()
    train.write_text(text[: text.rstrip("\n").rfind(",")])  # the last line loses its last field
    check_error(
        CSV,
        "truncated",
        "the file ends in the middle of a line",
        lambda: _encode(tmp_path, {"train": train}),
        names=[f"{train}:13", "expected 4 fields", "got 3"],
        exc=CTRDataError,
    )


def test_empty_file(tmp_path):
    train = tmp_path / "train.csv"
    train.write_bytes(b"")
    check_error(
        CSV,
        "empty",
        "an empty file",
        lambda: CsvReader(train),
        names=[f"{train}:1", "empty"],
        exc=CTRDataError,
    )


def test_header_only(tmp_path):
    train = _csv(tmp_path, "train.csv", [])
    train.write_text(",".join(HEADER) + "\n")
    check_error(
        CSV,
        "header-only",
        "a header and no rows",
        lambda: _encode(tmp_path, {"train": train}),
        names=[str(train), "no data rows"],
        exc=CTRDataError,
    )


def test_duplicate_header_names(tmp_path):
    train = _csv(tmp_path, "train.csv", _rows(), ["label", "cat", "price", "cat"])
    check_error(
        CSV,
        "duplicate-column",
        "two columns with the same name",
        lambda: CsvReader(train),
        names=[str(train), "duplicate column names ['cat']"],
        exc=CTRDataError,
    )


def test_unnamed_header_column(tmp_path):
    train = _csv(tmp_path, "train.csv", _rows(), ["label", "cat", "", "tags"])
    check_error(
        CSV,
        "unnamed-column",
        "a header column without a name",
        lambda: CsvReader(train),
        names=[f"{train}:1", "column(s) [3] have no name"],
        exc=CTRDataError,
    )


def test_header_differs_from_expected_names(tmp_path):
    train = _csv(tmp_path, "train.csv", _rows(), ["label", "kat", "price", "tags"])
    check_error(
        CSV,
        "header-mismatch",
        "the header differs from the layout's column names",
        lambda: CsvReader(train, names=HEADER),
        names=[str(train), "['label', 'kat', 'price', 'tags']", "differs"],
        exc=CTRDataError,
    )


def test_missing_file(tmp_path):
    check_error(
        CSV,
        "missing-file",
        "the file does not exist",
        lambda: make_reader(tmp_path / "nope.csv"),
        names=[str(tmp_path / "nope.csv"), "file not found"],
        exc=CTRDataError,
    )


def test_unknown_format(tmp_path):
    f = _csv(tmp_path, "train.json", _rows())
    check_error(
        CSV,
        "unknown-format",
        "a file whose format is not known",
        lambda: make_reader(f),
        names=[str(f), "unknown format 'json'"],
        exc=CTRDataError,
    )


# --------------------------------------------------------------------------- bytes


def test_garbled_bytes_invalid_utf8(tmp_path):
    train = _csv(tmp_path, "train.csv", _rows())
    lines = train.read_bytes().split(b"\n")
    lines[5] = lines[5].replace(b"b", b"\xff\xfe", 1)
    train.write_bytes(b"\n".join(lines))
    offset = sum(len(x) + 1 for x in lines[:5]) + lines[5].index(b"\xff")
    check_error(
        CSV,
        "garbled-bytes",
        "invalid UTF-8 bytes in a row",
        lambda: _encode(tmp_path, {"train": train}),
        names=[f"{train}:6", "invalid UTF-8", f"byte offset {offset}"],
        exc=CTRDataError,
    )


def test_garbled_header_bytes(tmp_path):
    train = _csv(tmp_path, "train.csv", _rows())
    train.write_bytes(b"lab\xc3el" + train.read_bytes()[5:])
    check_error(
        CSV,
        "garbled-header",
        "invalid UTF-8 in the header",
        lambda: CsvReader(train),
        names=[f"{train}:1", "invalid UTF-8", "byte offset 3"],
        exc=CTRDataError,
    )


def test_truncated_gzip(tmp_path):
    plain = _csv(tmp_path, "plain.csv", _rows(400))
    data = gzip.compress(plain.read_bytes())
    train = tmp_path / "train.csv.gz"
    train.write_bytes(data[: len(data) // 2])
    check_error(
        GZ,
        "truncated-gzip",
        "a .gz file cut in the middle",
        lambda: _encode(tmp_path, {"train": CsvReader(train, block_size=512)}),
        names=[str(train), "corrupt or truncated gzip stream after line"],
        exc=CTRDataError,
    )


def test_not_gzip_data_with_gz_suffix(tmp_path):
    train = tmp_path / "train.csv.gz"
    train.write_bytes(b"\x1f\x8b\x09garbage that is not deflate")
    check_error(
        GZ,
        "garbled-gzip",
        "a .gz file with garbage after the magic bytes",
        lambda: CsvReader(train),
        names=[str(train), "gzip"],
        exc=CTRDataError,
    )


def test_plain_text_named_gz(tmp_path):
    train = _csv(tmp_path, "train.csv.gz", _rows())
    check_error(
        GZ,
        "plain-text-gz",
        "an uncompressed file named .gz",
        lambda: CsvReader(train),
        names=[str(train), "Not a gzipped file"],
        exc=CTRDataError,
    )


def test_gzip_invalid_utf8_names_decompressed_offset(tmp_path):
    rows = _rows()
    body = ("\n".join(",".join(r) for r in [HEADER, *rows]) + "\n").encode()
    body = body.replace(b",b,", b",\x80,", 1)
    at = body.index(b"\x80")
    line = body[:at].count(b"\n") + 1
    train = tmp_path / "train.csv.gz"
    train.write_bytes(gzip.compress(body))
    check_error(
        GZ,
        "garbled-bytes-gzip",
        "invalid UTF-8 inside a .gz file",
        lambda: _encode(tmp_path, {"train": CsvReader(train)}),
        names=[f"{train}:{line}", "invalid UTF-8", f"byte offset {at} of the decompressed file"],
        exc=CTRDataError,
    )


# --------------------------------------------------------------------------- categories and leakage


def test_unseen_category_goes_to_oov_and_is_counted(tmp_path):
    train = _csv(tmp_path, "train.csv", _rows())
    test = _csv(tmp_path, "test.csv", _with(_with(_rows(4, seed=3), 1, 1, "zzz"), 2, 1, "yyy"))
    spec, splits = _encode(tmp_path, {"train": train, "test": test})
    oov_index = spec["cat"].oov_index
    ok = spec.splits["test"]["oov"]["cat"] == 2 and (splits["test"].categorical[[1, 2], 0] == oov_index).all()
    check_policy(
        CSV,
        "unseen-category",
        "categories of test unseen in train (OOV bucket)",
        ok,
        str(spec.splits["test"]["oov"]),
    )


def test_missing_category_with_error_policy(tmp_path):
    train = _csv(tmp_path, "train.csv", _with(_rows(), 8, 1, ""))
    fields = [{**FIELDS[0], "na_policy": "error"}, *FIELDS[1:]]
    check_error(
        CSV,
        "missing-category-error",
        "an empty categorical value where the field declares na_policy error",
        lambda: _encode(tmp_path, {"train": train}, fields),
        names=[f"{train}:10", "column 'cat'", "empty value"],
        exc=CTRDataError,
    )


def test_missing_sequence_with_drop_row(tmp_path):
    train = _csv(tmp_path, "train.csv", _with(_rows(), 8, 3, ""))
    fields = [*FIELDS[:2], {**FIELDS[2], "na_policy": "drop_row"}]
    spec, splits = _encode(tmp_path, {"train": train}, fields)
    na = spec.splits["train"]["na"]
    ok = len(splits["train"]) == 11 and na["tags"] == {"policy": "drop_row", "missing": 1, "dropped": 1}
    check_policy(
        CSV, "missing-sequence-drop_row", "an empty sequence value with na_policy drop_row", ok, str(na)
    )


def test_label_as_feature_is_refused(tmp_path):
    train = _csv(tmp_path, "train.csv", _rows())
    fields = [*FIELDS, {"name": "leak", "type": "categorical", "column": "label"}]
    check_error(
        CSV,
        "label-as-feature",
        "the label column listed as a feature (test AUC 0.81 vs 0.66 before)",
        lambda: _encode(tmp_path, {"train": train}, fields),
        names=["field 'leak'", "label column 'label'", "leakage"],
        exc=ConfigError,
    )


def test_id_as_feature_is_refused(tmp_path):
    rows = [[str(i), *r] for i, r in enumerate(_rows())]
    train = _csv(tmp_path, "train.csv", rows, ["id", *HEADER])
    fields = [*FIELDS, {"name": "id", "type": "categorical"}]
    check_error(
        CSV,
        "id-as-feature",
        "a declared id column listed as a feature",
        lambda: _encode(tmp_path, {"train": train}, fields, id_columns=["id"]),
        names=["field 'id'", "id column", "id_columns=['id']"],
        exc=ConfigError,
    )


def test_test_rows_equal_to_train_rows_are_counted(tmp_path):
    rows = _rows()
    train = _csv(tmp_path, "train.csv", rows)
    test = _csv(tmp_path, "test.csv", [rows[2], rows[5], *_rows(3, seed=9)])
    spec, _ = _encode(tmp_path, {"train": train, "test": test})
    n = spec.splits["test"]["overlap_with_train"]
    report = data_report(spec)
    ok = (
        n == 2
        and report["test"]["overlap_with_train"] == 2
        and "overlap_with_train" not in spec.splits["train"]
    )
    check_policy(
        CSV,
        "test-overlaps-train",
        "2 test rows identical to train rows (reported)",
        ok,
        f"overlap_with_train={n}",
    )


def test_strict_overlap_raises(tmp_path):
    rows = _rows()
    train = _csv(tmp_path, "train.csv", rows)
    test = _csv(tmp_path, "test.csv", [*_rows(3, seed=9), rows[4]])
    check_error(
        CSV,
        "test-overlaps-train-strict",
        "a test row identical to a train row with strict_overlap",
        lambda: _encode(tmp_path, {"train": train, "test": test}, strict_overlap=True),
        names=[str(test), "1 of 4 rows", f"{test}:5", "strict_overlap"],
        exc=CTRDataError,
    )


def test_bad_avazu_hour(tmp_path):
    rows = [["1", "14102100"], ["0", "1410210"], ["1", "14102101"]]
    train = write_lines(tmp_path / "train.csv", rows, ",", ["click", "hour"])
    fields = [{"name": "hour", "type": "categorical", "preprocess": "hour_of_day"}]
    check_error(
        CSV,
        "bad-hour",
        "an Avazu hour that is not YYMMDDHH",
        lambda: _encode(tmp_path, {"train": train}, fields, label="click"),
        names=[f"{train}:3", "column 'hour'", "'1410210' is not a YYMMDDHH hour"],
        exc=CTRDataError,
    )


def test_log_bucket_nan_without_fill_is_an_error(tmp_path):
    rows = [["1", "3", "a"], ["0", "nan", "b"], ["1", "", "a"]]
    train = write_lines(tmp_path / "train.tsv", rows, "\t")
    reader = CsvReader(train, sep="\t", header=False, names=["label", "I1", "C1"], quoting=False)
    fields = [
        {"name": "I1", "type": "categorical", "preprocess": "log_bucket"},
        {"name": "C1", "type": "categorical"},
    ]
    check_error(
        CSV,
        "nan-log-bucket",
        "NaN in a log-bucketed Criteo integer column without fill_na",
        lambda: _encode(tmp_path, {"train": reader}, fields),
        names=[f"{train}:2", "column 'I1'", "'nan'"],
        exc=CTRDataError,
    )


# --------------------------------------------------------------------------- libsvm


def _libsvm(tmp_path, lines: list[str], name: str = "train.libsvm"):
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n")
    return p


_GOOD = ["1 3:1 7:1 9:0.5", "-1 4:1 7:1 9:1.5", "1 3:1 8:1 9:2.5"]


def _libsvm_reader(p):
    return LibsvmReader(p, names=["a", "b", "x"], numeric=["x"])


def _libsvm_fields(**extra):
    return [
        {"name": "a", "type": "categorical"},
        {"name": "b", "type": "categorical"},
        {"name": "x", "type": "numeric", **extra},
    ]


def test_libsvm_entry_without_colon(tmp_path):
    p = _libsvm(tmp_path, [*_GOOD[:2], "1 3:1 8 9:2.5"])
    check_error(
        LIBSVM,
        "not-idx-val",
        "an entry without ':'",
        lambda: _encode(tmp_path, {"train": _libsvm_reader(p)}, _libsvm_fields(), negative_label=-1),
        names=[f"{p}:3", "'8'", "not idx:val"],
        exc=CTRDataError,
    )


def test_libsvm_wrong_entry_count(tmp_path):
    p = _libsvm(tmp_path, [*_GOOD, "0 3:1 9:1"])
    check_error(
        LIBSVM,
        "missing-entry",
        "a line with one idx:val entry too few",
        lambda: _encode(tmp_path, {"train": _libsvm_reader(p)}, _libsvm_fields(), negative_label=-1),
        names=[f"{p}:4", "expected 3 idx:val entries, got 2"],
        exc=CTRDataError,
    )


def test_libsvm_nan_value(tmp_path):
    p = _libsvm(tmp_path, [*_GOOD[:2], "1 3:1 8:1 9:nan"])
    check_error(
        LIBSVM,
        "nan-numeric",
        "a NaN value of a numeric libsvm field",
        lambda: _encode(tmp_path, {"train": _libsvm_reader(p)}, _libsvm_fields(), negative_label=-1),
        names=[f"{p}:3", "column 'x'", "'nan'"],
        exc=CTRDataError,
    )


def test_libsvm_garbled_bytes(tmp_path):
    p = _libsvm(tmp_path, _GOOD)
    p.write_bytes(p.read_bytes().replace(b"4:1", b"4:\xe9", 1))
    check_error(
        LIBSVM,
        "garbled-bytes",
        "invalid UTF-8 in a libsvm line",
        lambda: _encode(tmp_path, {"train": _libsvm_reader(p)}, _libsvm_fields(), negative_label=-1),
        names=[f"{p}:2", "invalid UTF-8"],
        exc=CTRDataError,
    )


def test_libsvm_truncated_gzip(tmp_path):
    lines = [_GOOD[i % 3] for i in range(3000)]
    data = gzip.compress(("\n".join(lines) + "\n").encode())
    p = tmp_path / "train.libsvm.gz"
    p.write_bytes(data[: int(len(data) * 0.6)])
    check_error(
        LIBSVM,
        "truncated-gzip",
        "a libsvm .gz cut in the middle",
        lambda: _encode(
            tmp_path,
            {"train": LibsvmReader(p, names=["a", "b", "x"], numeric=["x"], block_size=1024)},
            _libsvm_fields(),
            negative_label=-1,
        ),
        names=[str(p), "corrupt or truncated gzip stream after line"],
        exc=CTRDataError,
    )


def test_libsvm_empty(tmp_path):
    p = tmp_path / "train.libsvm"
    p.write_text("")
    check_error(
        LIBSVM,
        "empty",
        "an empty libsvm file",
        lambda: _libsvm_reader(p),
        names=[f"{p}:1", "empty"],
        exc=CTRDataError,
    )


# --------------------------------------------------------------------------- parquet


def _parquet(tmp_path, price: list[float], name: str = "train.parquet"):
    n = len(price)
    t = pa.table(
        {"label": [i % 2 for i in range(n)], "cat": ["abc"[i % 3] for i in range(n)], "price": price}
    )
    p = tmp_path / name
    pq.write_table(t, p)
    return p


_PQ_FIELDS = [
    {"name": "cat", "type": "categorical"},
    {"name": "price", "type": "numeric", "normalizer": "standard"},
]


def test_parquet_nan(tmp_path):
    p = _parquet(tmp_path, [1.0, 2.0, float("nan"), 4.0])
    check_error(
        PARQUET,
        "nan-numeric",
        "a NaN in a float parquet column",
        lambda: _encode(tmp_path, {"train": ParquetReader(p)}, _PQ_FIELDS),
        names=[f"{p}: row 3", "column 'price'", "nan"],
        exc=CTRDataError,
    )


def test_parquet_null_with_fill(tmp_path):
    t = pa.table({"label": [0, 1, 0], "cat": ["a", "b", "a"], "price": pa.array([1.0, None, 3.0])})
    p = tmp_path / "train.parquet"
    pq.write_table(t, p)
    spec, splits = _encode(
        tmp_path, {"train": ParquetReader(p)}, [_PQ_FIELDS[0], {**_PQ_FIELDS[1], "fill_na": 2.0}]
    )
    na = spec.splits["train"]["na"]["price"]
    ok = na == {"policy": "fill", "missing": 1, "filled": 1} and splits["train"].numeric[1, 0] == 0.0
    check_policy(PARQUET, "null-numeric-fill", "a null in a parquet float column with fill_na", ok, str(na))


def test_parquet_garbage(tmp_path):
    p = tmp_path / "train.parquet"
    p.write_bytes(b"PAR1 this is not parquet at all")
    check_error(
        PARQUET,
        "garbled-bytes",
        "a .parquet file that is not parquet",
        lambda: ParquetReader(p),
        names=[str(p), "not a readable parquet file"],
        exc=CTRDataError,
    )


def test_parquet_truncated(tmp_path):
    p = _parquet(tmp_path, [float(i) for i in range(100)])
    p.write_bytes(p.read_bytes()[:-40])
    check_error(
        PARQUET,
        "truncated",
        "a parquet file cut before its footer",
        lambda: _encode(tmp_path, {"train": ParquetReader(p)}, _PQ_FIELDS),
        names=[str(p), "parquet"],
        exc=CTRDataError,
    )


def test_parquet_missing_column(tmp_path):
    p = _parquet(tmp_path, [1.0, 2.0])
    check_error(
        PARQUET,
        "missing-column",
        "a requested column not in the parquet file",
        lambda: ParquetReader(p, columns=["label", "age"]),
        names=[str(p), "['age'] not found"],
        exc=CTRDataError,
    )


# --------------------------------------------------------------------------- the data module factory


def test_datamodule_batch_size_string(tmp_path):
    train = _csv(tmp_path, "train.csv", _rows())
    check_error(
        MODULE,
        "batch-size-string",
        "batch_size given as the string '4096' from Python",
        lambda: ctr_datamodule(tmp_path, "custom", "4096", files={"train": str(train)}, fields=FIELDS),
        names=["data.kwargs.batch_size='4096'", "expected an integer >= 1", "str"],
        exc=ConfigError,
    )


def test_datamodule_read_ahead_negative(tmp_path):
    train = _csv(tmp_path, "train.csv", _rows())
    check_error(
        MODULE,
        "read-ahead-negative",
        "read_ahead -1",
        lambda: ctr_datamodule(tmp_path, "custom", files={"train": str(train)}, fields=FIELDS, read_ahead=-1),
        names=[str(train), "read_ahead must be an integer >= 0, got -1"],
        exc=CTRDataError,
    )


def test_datamodule_unknown_dataset(tmp_path):
    check_error(
        MODULE,
        "unknown-dataset",
        "a layout name that does not exist",
        lambda: ctr_datamodule(tmp_path, "criteo_x9"),
        names=["data.kwargs.dataset='criteo_x9'", "criteo_x1"],
        exc=ConfigError,
    )


def test_statistics_overflow_is_an_error(tmp_path):
    train = _csv(tmp_path, "train.csv", _with(_with(_rows(), 3, 2, "1e300"), 4, 2, "-1e300"))
    check_error(
        CSV,
        "huge-numeric-standard",
        "+-1e300 in a numeric column with normalizer standard (std overflows float64)",
        lambda: _encode(tmp_path, {"train": train}),
        names=[str(train), "column 'price'", "overflow the float64 statistics"],
        exc=CTRDataError,
    )


def test_duplicate_ids_are_counted(tmp_path):
    rows = [[str(i if i != 5 else 2), *r] for i, r in enumerate(_rows())]
    train = _csv(tmp_path, "train.csv", rows, ["id", *HEADER])
    test = _csv(
        tmp_path, "test.csv", [[str(i), *r] for i, r in zip([3, 100, 101], _rows(3, seed=4))], ["id", *HEADER]
    )
    spec, _ = _encode(tmp_path, {"train": train, "test": test}, id_columns=["id"])
    tr, te = spec.splits["train"], spec.splits["test"]
    report = data_report(spec)
    ok = (
        tr["duplicate_ids"] == 1
        and te["duplicate_ids"] == 0
        and te["ids_in_train"] == 1
        and report["train"]["duplicate_ids"] == 1
        and report["test"]["ids_in_train"] == 1
    )
    msg = f"train duplicate_ids={tr['duplicate_ids']}, test ids_in_train={te.get('ids_in_train')}"
    check_policy(
        CSV, "duplicate-ids", "an id repeated in train and one test id found in train (reported)", ok, msg
    )


def test_overlap_check_can_be_switched_off(tmp_path):
    rows = _rows()
    train = _csv(tmp_path, "train.csv", rows)
    test = _csv(tmp_path, "test.csv", rows[:3])
    spec, _ = _encode(tmp_path, {"train": train, "test": test}, check_overlap=False)
    assert "overlap_with_train" not in spec.splits["test"]
    with pytest.raises(ConfigError, match="strict_overlap needs check_overlap"):
        _encode(tmp_path, {"train": train, "test": test}, check_overlap=False, strict_overlap=True)


def test_datamodule_reports_policies_in_its_summary(tmp_path, caplog):
    train = _csv(tmp_path, "train.csv", _with(_rows(), 2, 2, "nan"))
    valid = _csv(tmp_path, "valid.csv", _with(_rows(6, seed=5), 1, 2, ""))
    files = {"train": str(train), "valid": str(valid), "test": str(valid)}
    with caplog.at_level("WARNING", logger="gatelab.recsys"):
        dm = ctr_datamodule(
            tmp_path,
            "custom",
            4,
            files=files,
            fields=_price(na_policy="drop_row"),
            cache=str(tmp_path / "c"),
            seed=0,
        )
    summary = dm.summary()
    batch = next(iter(dm.train_dataloader()))
    ok = (
        summary["rows"] == {"train": 11, "valid": 5, "test": 5}
        and summary["report"]["train"]["rows_dropped"] == 1
        and summary["report"]["valid"]["na"]["price"]["dropped"] == 1
        and torch_isfinite(batch["numeric"])
        and any("rows_dropped" in r.getMessage() for r in caplog.records)
    )
    check_policy(
        MODULE,
        "nan-drop_row-summary",
        "NaN/empty with drop_row through ctr_datamodule",
        ok,
        str(summary["report"]),
    )


def torch_isfinite(t) -> bool:
    import torch

    return bool(torch.isfinite(t).all())
