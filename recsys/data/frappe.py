"""Frappe: the raw log -> NFM/Frappe_x1 global feature indices, and a rebuilt training split.

The official Frappe_x1 files (BARS; converted from the AFN/NFM libfm files) hold *global feature
indices*, not raw values: ``user`` 0..956, ``item`` 957..5038, then ``daytime``, ``weekday``,
``isweekend``, ``homework``, ``cost``, ``weather``, ``country``, ``city`` -- 5382 indices in all.
The mapping from the raw log ``frappe.csv`` to those indices is NFM's preprocessing order:
**per field, values numbered in order of first appearance in the raw log, fields in the order
above, indices consecutive across fields**. :func:`verify_x1_mapping` checks this on the
official files every time: every positive of x1 ``valid``/``test`` must be a log row (as a
multiset) and every negative must pair a log row's user and context with an item that user never
used (how NFM sampled its negatives). Both hold for 100% of the 86,582 official rows.

The official x1 train split (202,027 rows) is not available here; :func:`build_train` rebuilds
one with NFM's protocol. NFM turned every log row into a positive plus ``negatives`` (2) sampled
negatives -- same user and context, an item drawn uniformly from the items that user never used
in the log -- and split the 288,609 instances 7:2:1 at random. The rebuilt train therefore holds
(a) the log rows left after removing, as a multiset, the positives of x1 valid and test (67,604
rows) and (b) a uniformly random subset of freshly sampled negatives (2 per log row, distinct
within a row) of the size the official train has (192,406 - 57,983 held-out = 134,423): 202,027
rows, the official count. Sampling is seeded (``numpy.random.default_rng(seed)``). Models are
validated and tested on the official x1 ``valid.csv`` / ``test.csv``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from .layouts import FRAPPE_FIELDS
from .readers import CTRDataError

__all__ = [
    "FRAPPE_FIELDS",
    "FRAPPE_NUM_FEATURES",
    "FRAPPE_X1_VOCAB",
    "build_train",
    "frappe_x1_codes",
    "prepare_frappe_x1",
    "read_x1",
    "verify_x1_mapping",
]

FRAPPE_NUM_FEATURES = 5382
#: FuxiCTR's Frappe_x1 vocabulary size per field (its ``feature_map``: the field's distinct
#: values plus padding and OOV rows; 5,399 embedding rows over 10 fields), the sizes the BARS
#: logs' parameter counts and the FuxiCTR speed comparison use
FRAPPE_X1_VOCAB: dict[str, int] = dict(
    user=956,
    item=4084,
    daytime=9,
    weekday=9,
    isweekend=4,
    homework=5,
    cost=4,
    weather=11,
    country=82,
    city=235,
)
_PREP_VERSION = 2


def _read_table(path: Path, sep: str) -> pa.Table:
    try:
        return pcsv.read_csv(
            pa.input_stream(str(path), compression="detect"),
            parse_options=pcsv.ParseOptions(delimiter=sep, quote_char=False),
            convert_options=pcsv.ConvertOptions(
                column_types={}, strings_can_be_null=False, auto_dict_encode=False
            ),
        )
    except pa.ArrowInvalid as e:
        raise CTRDataError(f"{path}: could not parse ({e})") from None


def frappe_x1_codes(
    log_path: str | os.PathLike[str], *, expected_features: int | None = FRAPPE_NUM_FEATURES
) -> tuple[np.ndarray, list[list[str]]]:
    """Global x1 indices ``[N, 10]`` (int64) of every raw log row, and per field the raw values in
    index order (first appearance in the log). ``expected_features``: the number of distinct
    values the log must have (5382 for Frappe; ``None`` skips the check)."""
    path = Path(log_path)
    t = _read_table(path, "\t")
    missing = [f for f in FRAPPE_FIELDS if f not in t.column_names]
    if missing:
        raise CTRDataError(
            f"{path}: columns {missing} missing; expected the Frappe log columns {FRAPPE_FIELDS}"
        )
    codes = np.empty((t.num_rows, len(FRAPPE_FIELDS)), np.int64)
    values: list[list[str]] = []
    offset = 0
    for j, name in enumerate(FRAPPE_FIELDS):
        col = pc.cast(t.column(name), pa.string())
        uniq = pc.unique(col)  # first-appearance order
        codes[:, j] = pc.index_in(col, value_set=uniq).to_numpy(zero_copy_only=False) + offset
        values.append(uniq.to_pylist())
        offset += len(uniq)
    if expected_features is not None and offset != expected_features:
        raise CTRDataError(
            f"{path}: {offset} distinct field values, expected {expected_features} (not the Frappe log?)"
        )
    return codes, values


def read_x1(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Labels ``[N]`` (int8) and global indices ``[N, 10]`` (int64) of a Frappe_x1 CSV."""
    path = Path(path)
    t = _read_table(path, ",")
    expected = ["label", *FRAPPE_FIELDS]
    if t.column_names != expected:
        raise CTRDataError(f"{path}: columns {t.column_names}, expected {expected}")
    y = t.column("label").to_numpy().astype(np.int64)
    bad = np.flatnonzero((y != 0) & (y != 1))
    if len(bad):
        raise CTRDataError(f"{path}:{int(bad[0]) + 2}: label {int(y[bad[0]])} is not 0 or 1")
    x = np.stack([t.column(f).to_numpy().astype(np.int64) for f in FRAPPE_FIELDS], axis=1)
    return y.astype(np.int8), x


def _row_ids(*blocks: np.ndarray) -> list[np.ndarray]:
    """A shared integer id per distinct row across ``blocks`` (each ``[n_i, 10]``)."""
    allrows = np.concatenate(blocks, axis=0)
    _, inverse = np.unique(allrows, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    out, start = [], 0
    for b in blocks:
        out.append(inverse[start : start + len(b)])
        start += len(b)
    return out


def _used_matrix(codes: np.ndarray, n_users: int, n_items: int) -> np.ndarray:
    used = np.zeros((n_users, n_items), dtype=bool)
    used[codes[:, 0], codes[:, 1] - n_users] = True
    return used


def verify_x1_mapping(codes: np.ndarray, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Check that the x1 rows are explained by the log under :func:`frappe_x1_codes`' mapping.

    Raises :class:`CTRDataError` if a positive is not a log row (counting multiplicity across all
    splits) or a negative does not pair a log row's (user, context) with an item the user never
    used. Returns per-split counts.
    """
    n_users = int(codes[:, 0].max()) + 1
    n_items = int(codes[:, 1].max()) + 1 - n_users
    used = _used_matrix(codes, n_users, n_items)
    ctx_cols = [0, *range(2, len(FRAPPE_FIELDS))]
    report: dict[str, Any] = {}
    pos_blocks = {k: x[y == 1] for k, (y, x) in splits.items()}
    ids = _row_ids(codes, *pos_blocks.values())
    log_count = np.bincount(ids[0], minlength=int(max(i.max(initial=0) for i in ids)) + 1)
    need = np.zeros_like(log_count)
    for pid in ids[1:]:
        need += np.bincount(pid, minlength=len(log_count))
    short = int(np.maximum(need - log_count, 0).sum())
    if short:
        raise CTRDataError(
            f"Frappe_x1: {short} positives of {sorted(splits)} are not rows of the raw log under the "
            "first-appearance index mapping (the mapping or the files are not the expected ones)"
        )
    for k, (y, x) in splits.items():
        neg = x[y == 0]
        ctx_ids = _row_ids(codes[:, ctx_cols], neg[:, ctx_cols])
        ctx_ok = np.isin(ctx_ids[1], ctx_ids[0])
        items = neg[:, 1] - n_users
        item_ok = (items >= 0) & (items < n_items)
        never = np.zeros(len(neg), bool)
        never[item_ok] = ~used[neg[item_ok, 0], items[item_ok]]
        bad = int((~(ctx_ok & never)).sum())
        if bad:
            raise CTRDataError(
                f"Frappe_x1 {k}: {bad} negatives do not pair a log (user, context) with an item the user never used"
            )
        report[k] = {"rows": len(y), "positives": int((y == 1).sum()), "negatives": int((y == 0).sum())}
    return report


def build_train(
    codes: np.ndarray,
    heldout: dict[str, tuple[np.ndarray, np.ndarray]],
    *,
    negatives: int = 2,
    seed: int = 2021,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Training rows (labels ``[M]``, indices ``[M, 10]``) rebuilt with NFM's protocol (module doc).

    Positives: the log rows left after removing the held-out positives (multiset). Negatives:
    ``negatives`` per log row (all of them, as NFM generated its 288,609 instances before the
    7:2:1 split), of which a uniformly random subset of ``negatives * len(log) - held-out
    negatives`` is kept -- the size of the official x1 train's negative part. Positives come first
    (log order), then the kept negatives (order of generation).
    """
    if negatives < 0:
        raise ValueError("negatives must be >= 0")
    n_users = int(codes[:, 0].max()) + 1
    n_items = int(codes[:, 1].max()) + 1 - n_users
    pos = [x[y == 1] for y, x in heldout.values()]
    ids = _row_ids(codes, *pos)
    need = np.zeros(int(max(i.max(initial=0) for i in ids)) + 1, np.int64)
    for pid in ids[1:]:
        need += np.bincount(pid, minlength=len(need))
    # drop, per distinct row, as many log occurrences as the held-out splits use
    order = np.argsort(ids[0], kind="stable")
    sorted_ids = ids[0][order]
    first = np.searchsorted(sorted_ids, sorted_ids, side="left")
    rank = np.arange(len(sorted_ids)) - first
    removed = np.zeros(len(codes), bool)
    removed[order] = rank < need[sorted_ids]
    if int(removed.sum()) != int(need.sum()):
        raise CTRDataError("Frappe: held-out positives are not all rows of the raw log")
    train_pos = codes[~removed]

    rng = np.random.default_rng(seed)
    used = _used_matrix(codes, n_users, n_items)
    n = len(codes)
    users = codes[:, 0]
    items = np.full((n, negatives), -1, np.int64)
    for k in range(negatives):  # rejection sampling: an unused item, distinct from the earlier draws
        todo = np.arange(n)
        while len(todo):
            draw = rng.integers(0, n_items, size=len(todo))
            ok = ~used[users[todo], draw]
            for prev in range(k):
                ok &= draw != items[todo, prev]
            items[todo[ok], k] = draw[ok]
            todo = todo[~ok]
    neg = np.repeat(codes, negatives, axis=0)
    neg[:, 1] = items.reshape(-1) + n_users
    heldout_neg = sum(int((y == 0).sum()) for y, _ in heldout.values())
    n_keep = len(neg) - heldout_neg
    if n_keep < 0:
        raise CTRDataError(f"Frappe: {heldout_neg} held-out negatives exceed the {len(neg)} generated ones")
    keep = np.sort(rng.choice(len(neg), size=n_keep, replace=False))
    neg = neg[keep]
    x = np.concatenate([train_pos, neg], axis=0)
    y = np.concatenate([np.ones(len(train_pos), np.int8), np.zeros(len(neg), np.int8)])
    # overlap with the held-out rows (reported, not removed: the official random split had it too)
    ids2 = _row_ids(x, *[xx for _, xx in heldout.values()])
    overlap = int(np.isin(ids2[0], np.concatenate(ids2[1:])).sum())
    info = {
        "log_rows": len(codes),
        "heldout_positives_removed": int(removed.sum()),
        "train_positives": len(train_pos),
        "negatives_generated": n * negatives,
        "heldout_negatives": heldout_neg,
        "train_negatives": len(neg),
        "train_rows": len(x),
        "negatives_per_log_row": negatives,
        "negative_seed": seed,
        "train_rows_equal_to_a_heldout_row": overlap,
    }
    return y, x, info


def _write_x1_csv(path: Path, y: np.ndarray, x: np.ndarray) -> None:
    tmp = path.with_suffix(".tmp")
    np.savetxt(
        tmp,
        np.concatenate([y[:, None].astype(np.int64), x], axis=1),
        fmt="%d",
        delimiter=",",
        header=",".join(["label", *FRAPPE_FIELDS]),
        comments="",
    )
    tmp.replace(path)


def prepare_frappe_x1(
    frappe_dir: str | os.PathLike[str],
    cache_root: str | os.PathLike[str],
    *,
    seed: int = 2021,
    negatives: int = 2,
    expected_features: int | None = FRAPPE_NUM_FEATURES,
) -> tuple[dict[str, Path], dict[str, Any]]:
    """Verify the mapping, rebuild the training split and return the x1-layout files
    ``{"train", "valid", "test"}`` (train in ``cache_root``, valid/test the official files) and a
    report (the mapping check and the rebuild counts)."""
    root = Path(frappe_dir)
    log_path = root / "frappe.csv"
    if not log_path.is_file():
        log_path = root / "frappe.csv.gz"
    files = {"valid": root / "Frappe_x1" / "valid.csv", "test": root / "Frappe_x1" / "test.csv"}
    for p in (log_path, *files.values()):
        if not p.is_file():
            raise CTRDataError(f"Frappe: {p} not found")
    codes, _ = frappe_x1_codes(log_path, expected_features=expected_features)
    heldout = {k: read_x1(p) for k, p in files.items()}
    report = {
        "mapping": "first appearance in the raw log, fields in x1 order",
        "verified": verify_x1_mapping(codes, heldout),
    }
    st = log_path.stat()
    out = Path(cache_root).expanduser() / "frappe"
    out.mkdir(parents=True, exist_ok=True)
    train = (
        out / f"train-x1rebuilt-v{_PREP_VERSION}-seed{seed}-neg{negatives}-{st.st_size}-{st.st_mtime_ns}.csv"
    )
    y, x, info = build_train(codes, heldout, negatives=negatives, seed=seed)
    report["train"] = info
    if not train.is_file():
        _write_x1_csv(train, y, x)
    return {"train": train, **files}, report
