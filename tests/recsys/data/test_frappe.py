"""Frappe: raw log -> x1 global indices (first appearance), the mapping check, the train rebuild."""

from __future__ import annotations

import random

import numpy as np
import pytest

from gatelab.recsys.data import CTRDataError
from gatelab.recsys.data.frappe import (
    FRAPPE_FIELDS,
    build_train,
    frappe_x1_codes,
    prepare_frappe_x1,
    read_x1,
    verify_x1_mapping,
)

CONTEXT = {
    "daytime": ["morning", "noon", "night"],
    "weekday": ["monday", "sunday"],
    "isweekend": ["workday", "weekend"],
    "homework": ["unknown", "home"],
    "cost": ["free", "paid"],
    "weather": ["sunny", "rainy"],
    "country": ["Spain", "Peru"],
    "city": ["0", "17", "3"],
}


def _log(n=60, seed=0):
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        row = {"user": str(rng.randint(0, 5)), "item": str(rng.randint(0, 9)), "cnt": str(rng.randint(1, 9))}
        row.update({k: rng.choice(v) for k, v in CONTEXT.items()})
        rows.append(row)
    return rows


def _write_log(path, rows):
    cols = ["user", "item", "cnt", *CONTEXT]
    path.write_text("\t".join(cols) + "\n" + "".join("\t".join(r[c] for c in cols) + "\n" for r in rows))


def _first_appearance(rows):
    """Independent reference: per field, values numbered by first appearance, offsets across fields."""
    maps, offset = {}, 0
    for f in FRAPPE_FIELDS:
        m = {}
        for r in rows:
            m.setdefault(r[f], len(m))
        maps[f] = {k: v + offset for k, v in m.items()}
        offset += len(m)
    return maps


def _x1(rows, maps, pos_idx, n_neg, rng):
    """x1 rows: the given log rows as positives, plus negatives (same user+context, unused item)."""
    used = {(r["user"], r["item"]) for r in rows}
    items = list(maps["item"])
    out = [[1, *(maps[f][rows[i][f]] for f in FRAPPE_FIELDS)] for i in pos_idx]
    for _ in range(n_neg):
        r = rows[rng.randrange(len(rows))]
        free = [it for it in items if (r["user"], it) not in used]
        it = rng.choice(free)
        out.append(
            [0, maps["user"][r["user"]], maps["item"][it], *(maps[f][r[f]] for f in FRAPPE_FIELDS[2:])]
        )
    y = np.array([o[0] for o in out], np.int8)
    return y, np.array([o[1:] for o in out], np.int64)


@pytest.fixture
def frappe_fixture(tmp_path):
    rows = _log()
    _write_log(tmp_path / "frappe.csv", rows)
    maps = _first_appearance(rows)
    rng = random.Random(1)
    valid = _x1(rows, maps, [3, 10, 11], 5, rng)
    test = _x1(rows, maps, [0, 20], 4, rng)
    return tmp_path, rows, maps, {"valid": valid, "test": test}


def test_codes_are_first_appearance(frappe_fixture):
    folder, rows, maps, _ = frappe_fixture
    codes, values = frappe_x1_codes(folder / "frappe.csv", expected_features=None)
    want = np.array([[maps[f][r[f]] for f in FRAPPE_FIELDS] for r in rows])
    np.testing.assert_array_equal(codes, want)
    assert values[0][0] == rows[0]["user"]
    with pytest.raises(CTRDataError, match="expected 5382"):
        frappe_x1_codes(folder / "frappe.csv")


def test_verify_mapping_accepts_and_rejects(frappe_fixture):
    folder, _rows, _maps, heldout = frappe_fixture
    codes, _ = frappe_x1_codes(folder / "frappe.csv", expected_features=None)
    rep = verify_x1_mapping(codes, heldout)
    assert rep["valid"] == {"rows": 8, "positives": 3, "negatives": 5}
    y, x = heldout["test"]
    bad = x.copy()
    bad[0, 2] = bad[0, 2] + 1 if bad[0, 2] + 1 in codes[:, 2] else bad[0, 2] - 1  # another daytime
    with pytest.raises(CTRDataError, match=r"positives .* are not rows of the raw log"):
        verify_x1_mapping(codes, {**heldout, "test": (y, bad)})
    bad = x.copy()
    neg = int(np.flatnonzero(y == 0)[0])
    used_item = codes[codes[:, 0] == bad[neg, 0], 1][0]
    bad[neg, 1] = used_item  # an item the user did use
    with pytest.raises(CTRDataError, match="negatives do not pair"):
        verify_x1_mapping(codes, {**heldout, "test": (y, bad)})


def test_build_train_protocol(frappe_fixture):
    folder, rows, _maps, heldout = frappe_fixture
    codes, _ = frappe_x1_codes(folder / "frappe.csv", expected_features=None)
    y, x, info = build_train(codes, heldout, negatives=2, seed=3)
    n_pos_heldout = sum(int((yy == 1).sum()) for yy, _ in heldout.values())
    n_neg_heldout = sum(int((yy == 0).sum()) for yy, _ in heldout.values())
    assert info["train_positives"] == len(rows) - n_pos_heldout == int((y == 1).sum())
    assert info["train_negatives"] == 2 * len(rows) - n_neg_heldout == int((y == 0).sum())
    # positives: the log minus the held-out positives, as multisets
    from collections import Counter

    log_c = Counter(map(tuple, codes.tolist()))
    held = Counter(map(tuple, np.concatenate([xx[yy == 1] for yy, xx in heldout.values()]).tolist()))
    assert Counter(map(tuple, x[y == 1].tolist())) == log_c - held
    # negatives: a log row's user and context with an item that user never used
    used = {(u, i) for u, i in codes[:, :2].tolist()}
    ctx = {tuple(r) for r in codes[:, [0, *range(2, 10)]].tolist()}
    for r in x[y == 0].tolist():
        assert (r[0], r[1]) not in used and (r[0], *r[2:]) in ctx
    # seeded
    _y2, x2, _ = build_train(codes, heldout, negatives=2, seed=3)
    np.testing.assert_array_equal(x, x2)
    _, x3, _ = build_train(codes, heldout, negatives=2, seed=4)
    assert not np.array_equal(x, x3)


def test_prepare_writes_x1_layout(frappe_fixture, tmp_path):
    folder, rows, _maps, heldout = frappe_fixture
    (folder / "Frappe_x1").mkdir()
    for k, (y, x) in heldout.items():
        lines = ["label," + ",".join(FRAPPE_FIELDS)] + [
            ",".join(map(str, [int(a), *b])) for a, b in zip(y, x.tolist())
        ]
        (folder / "Frappe_x1" / f"{k}.csv").write_text("\r\n".join(lines) + "\r\n")  # official files use CRLF
    files, report = prepare_frappe_x1(folder, tmp_path / "cache", seed=5, expected_features=None)
    y, x = read_x1(files["train"])
    assert report["train"]["train_rows"] == len(y) == 3 * len(rows) - sum(len(v[0]) for v in heldout.values())
    _yv, xv = read_x1(files["valid"])
    np.testing.assert_array_equal(xv, heldout["valid"][1])


@pytest.mark.data
def test_real_frappe_mapping_is_verified(shared_data, tmp_path):
    """The raw log explains 100% of the official x1 valid/test rows under the first-appearance mapping."""
    _files, report = prepare_frappe_x1(shared_data / "frappe", tmp_path / "cache", seed=2021)
    assert report["verified"] == {
        "valid": {"rows": 57722, "positives": 19063, "negatives": 38659},
        "test": {"rows": 28860, "positives": 9536, "negatives": 19324},
    }
    t = report["train"]
    assert (t["train_positives"], t["train_negatives"], t["train_rows"]) == (67604, 134423, 202027)
