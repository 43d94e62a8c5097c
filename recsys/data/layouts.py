"""Known CTR file layouts: field lists, readers and file names, plus the registered datasets.

=====================  ==============================================================================
layout                 files (under the data directory)
=====================  ==============================================================================
``frappe``             ``frappe/frappe.csv[.gz]`` + official ``frappe/Frappe_x1/{valid,test}.csv``;
                       the train split is rebuilt from the log (:mod:`.frappe`)
``frappe_x1``          ``frappe/Frappe_x1/{train,valid,test}.csv`` (BARS; official train needed)
``criteo_x1``          ``Criteo_x1/{train,valid,test}.csv`` (BARS: header ``label,I1..I13,C1..C26``; label
                       0/1; I1-I13 floats already normalised by BARS, read as ``numeric`` fields
                       without normalisation (an empty cell is an error naming file:line); C1-C26
                       integer ids, ``categorical``)
``avazu_x1``           ``Avazu_x1/{train,valid,test}.csv`` (BARS: header ``label,feat_1..feat_22``; label
                       0/1; 22 integer-id ``categorical`` fields)
``movielenslatest_x1`` ``MovielensLatest_x1/{train,valid,test}.csv`` (BARS: label, user_id, item_id, tag_id)
``criteo``             raw Kaggle TSV without header (label, I1-I13, C1-C26), your own split files
                       ``criteo/{train,valid,test}.txt``; I1-I13 log-bucketed (``floor(log(x)^2)``)
``avazu``              raw Kaggle CSV with header (id, click, hour, ...), ``avazu/{train,valid,test}.csv``;
                       ``hour`` -> hour of day, weekday, weekend
=====================  ==============================================================================

Settings follow BARS/FuxiCTR: ``min_count`` 1 for the x1 layouts (BARS), 10 for raw Criteo and
2 for raw Avazu (FuxiCTR's Criteo_x4/Avazu_x4 settings).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from gatelab.core.harness.data import DatasetSpec

__all__ = ["DATASETS", "LAYOUTS", "Layout"]


def _cats(*names: str, **extra: Any) -> tuple[dict[str, Any], ...]:
    return tuple({"name": n, "type": "categorical", **extra} for n in names)


FRAPPE_FIELDS = (
    "user",
    "item",
    "daytime",
    "weekday",
    "isweekend",
    "homework",
    "cost",
    "weather",
    "country",
    "city",
)
CRITEO_I = tuple(f"I{i}" for i in range(1, 14))
CRITEO_C = tuple(f"C{i}" for i in range(1, 27))
AVAZU_COLUMNS = (
    "id", "click", "hour", "C1", "banner_pos", "site_id", "site_domain", "site_category", "app_id", "app_domain",
    "app_category", "device_id", "device_ip", "device_model", "device_type", "device_conn_type",
    "C14", "C15", "C16", "C17", "C18", "C19", "C20", "C21",
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Layout:
    """How to read one dataset layout.

    Args:
        name: layout name (``data.kwargs.dataset``).
        description: one line.
        dataset: registered :class:`DatasetSpec` whose folder holds ``files`` (``None``: files
            must be given explicitly).
        files: split -> path relative to the dataset folder.
        fmt: ``csv``, ``tsv``, ``libsvm`` or ``parquet``.
        fields: the fields (:class:`~gatelab.recsys.data.FieldSpec` dicts), in model order.
        label: label column.
        header: the files have a header line (CSV/TSV).
        names: column names of header-less files.
        min_count: default ``min_count``.
        negative_label: raw label meaning 0 besides 0 (``-1`` in libfm files).
        id_columns: columns that identify a row (no field may read them; leakage guard).
    """

    name: str
    description: str
    dataset: str | None
    files: Mapping[str, str]
    fmt: str
    fields: tuple[Mapping[str, Any], ...]
    label: str = "label"
    header: bool = True
    names: tuple[str, ...] | None = None
    min_count: int = 1
    negative_label: float | None = None
    id_columns: tuple[str, ...] = ()


LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout(
            "frappe",
            "Frappe: train rebuilt from the raw log (NFM protocol), official Frappe_x1 valid/test",
            "frappe",
            {"valid": "Frappe_x1/valid.csv", "test": "Frappe_x1/test.csv"},
            "csv",
            _cats(*FRAPPE_FIELDS),
        ),
        Layout(
            "frappe_x1",
            "Frappe_x1 (BARS), official train/valid/test",
            "frappe_x1",
            {"train": "train.csv", "valid": "valid.csv", "test": "test.csv"},
            "csv",
            _cats(*FRAPPE_FIELDS),
        ),
        Layout(
            "criteo_x1",
            "Criteo_x1 (BARS): 13 normalised numeric + 26 categorical fields",
            "criteo_x1",
            {"train": "train.csv", "valid": "valid.csv", "test": "test.csv"},
            "csv",
            (*({"name": n, "type": "numeric"} for n in CRITEO_I), *_cats(*CRITEO_C)),
        ),
        Layout(
            "avazu_x1",
            "Avazu_x1 (BARS): 22 categorical fields",
            "avazu_x1",
            {"train": "train.csv", "valid": "valid.csv", "test": "test.csv"},
            "csv",
            _cats(*(f"feat_{i}" for i in range(1, 23))),
        ),
        Layout(
            "movielenslatest_x1",
            "MovielensLatest_x1 (BARS): user_id, item_id, tag_id",
            "movielenslatest_x1",
            {"train": "train.csv", "valid": "valid.csv", "test": "test.csv"},
            "csv",
            _cats("user_id", "item_id", "tag_id"),
        ),
        Layout(
            "criteo",
            "Criteo Kaggle raw TSV (label, I1-I13, C1-C26; no header), log-bucketed integer fields",
            "criteo",
            {"train": "train.txt", "valid": "valid.txt", "test": "test.txt"},
            "tsv",
            (*_cats(*CRITEO_I, preprocess="log_bucket", fill_na=0.0), *_cats(*CRITEO_C)),
            header=False,
            names=("label", *CRITEO_I, *CRITEO_C),
            min_count=10,
        ),
        Layout(
            "avazu",
            "Avazu Kaggle raw CSV (id, click, hour, ...); hour -> hour of day, weekday, weekend",
            "avazu",
            {"train": "train.csv", "valid": "valid.csv", "test": "test.csv"},
            "csv",
            (
                {"name": "hour", "type": "categorical", "preprocess": "hour_of_day"},
                {"name": "weekday", "type": "categorical", "column": "hour", "preprocess": "weekday"},
                {"name": "weekend", "type": "categorical", "column": "hour", "preprocess": "weekend"},
                *_cats(*AVAZU_COLUMNS[3:]),
            ),
            label="click",
            min_count=2,
            id_columns=("id",),
        ),
    )
}

_FRAPPE_SOURCE = (
    "frappe.csv: Baltrunas et al. 2015, https://www.baltrunas.info/context-aware (also in github.com/irecsys/CARSKit, "
    "context-aware_data_sets/Mobile_Frappe.zip); Frappe_x1/{train,valid,test}.csv: https://huggingface.co/datasets/reczoo/Frappe_x1"
)
_FRAPPE_LICENSE = "research use only, no redistribution, no commercial use (Frappe README)"

DATASETS: tuple[DatasetSpec, ...] = (
    DatasetSpec(
        name="frappe",
        subdir="frappe",
        files={
            "frappe.csv": (
                "409edc12f4e2153c5dd58ae171938735911d9b0f70961d5f1086b241656b2cb5",  # plain
                "f07a0a396f3c42a8474ae772c56640c714572d548527f58154655be35ed81835",  # gzip -9 -n
            ),
            "Frappe_x1/valid.csv": "72b6a89fee413def6936bf0ab0be30b8c5aa200bd1d1fc533aca6eb0d3dd98e2",
            "Frappe_x1/test.csv": "f09423427a86efc87f9da3b7a2eb9bdd77f117e13458b00400e9d9fc8ac4f6d7",
        },
        source=_FRAPPE_SOURCE,
        license=_FRAPPE_LICENSE,
        description="Frappe raw log + official Frappe_x1 valid/test (md5 88d51bf2..., 3470f6d3...)",
    ),
    DatasetSpec(
        name="frappe_x1",
        subdir="frappe/Frappe_x1",
        files={
            "train.csv": None,  # md5 ba7306e6c4fc19dd2cd84f2f0596d158 (reczoo/Datasets)
            "valid.csv": "72b6a89fee413def6936bf0ab0be30b8c5aa200bd1d1fc533aca6eb0d3dd98e2",
            "test.csv": "f09423427a86efc87f9da3b7a2eb9bdd77f117e13458b00400e9d9fc8ac4f6d7",
        },
        source="https://huggingface.co/datasets/reczoo/Frappe_x1 (BARS)",
        license=_FRAPPE_LICENSE,
        description="Frappe_x1 (BARS) with the official train split",
    ),
    DatasetSpec(
        name="criteo_x1",
        subdir="Criteo_x1",
        files={"train.csv": None, "valid.csv": None, "test.csv": None},
        source="https://huggingface.co/datasets/reczoo/Criteo_x1 (md5 in github.com/reczoo/Datasets Criteo/Criteo_x1/README.md)",
        license="Criteo Kaggle DAC terms (research, non-commercial)",
        description="Criteo_x1 (BARS): 45.8M rows split 7:2:1",
    ),
    DatasetSpec(
        name="avazu_x1",
        subdir="Avazu_x1",
        files={"train.csv": None, "valid.csv": None, "test.csv": None},
        source="https://huggingface.co/datasets/reczoo/Avazu_x1 (md5 in github.com/reczoo/Datasets Avazu/Avazu_x1/README.md)",
        license="Avazu Kaggle competition rules",
        description="Avazu_x1 (BARS): 40.4M rows split 7:1:2",
    ),
    DatasetSpec(
        name="movielenslatest_x1",
        subdir="MovielensLatest_x1",
        files={"train.csv": None, "valid.csv": None, "test.csv": None},
        source="https://huggingface.co/datasets/reczoo/MovielensLatest_x1",
        license="GroupLens terms (no redistribution without permission)",
        description="MovielensLatest_x1 (BARS): 2.0M tagging records split 7:2:1",
    ),
    DatasetSpec(
        name="criteo",
        subdir="criteo",
        files={"train.txt": None, "valid.txt": None, "test.txt": None},
        source="Criteo Display Advertising Challenge train.txt (https://www.kaggle.com/c/criteo-display-ad-challenge), split by you",
        license="Criteo Kaggle DAC terms (research, non-commercial)",
        description="Criteo raw TSV (label, I1-I13, C1-C26), user-made splits",
    ),
    DatasetSpec(
        name="avazu",
        subdir="avazu",
        files={"train.csv": None, "valid.csv": None, "test.csv": None},
        source="Avazu CTR prediction train.gz (https://www.kaggle.com/c/avazu-ctr-prediction), split by you",
        license="Avazu Kaggle competition rules",
        description="Avazu raw CSV, user-made splits",
    ),
)
