"""The loaders on the real tiny CTR samples in ``<data>/ctr_samples`` (skipped without the data)."""

from __future__ import annotations

import numpy as np
import pytest

from gatelab.recsys.data import CsvReader, CTRDataError, FeatureEncoder
from gatelab.recsys.data.datamodule import ctr_datamodule

pytestmark = pytest.mark.data


def _same(path):
    return {"train": str(path), "valid": str(path), "test": str(path)}


def test_criteo_sample(shared_data, tmp_path):
    path = shared_data / "ctr_samples" / "deepctr" / "criteo_sample.txt"  # CSV with a header, Criteo columns
    dm = ctr_datamodule(
        shared_data,
        dataset="criteo",
        files=_same(path),
        fmt="csv",
        header=True,
        min_count=2,
        cache=str(tmp_path),
        batch_size=64,
    )
    spec = dm.spec
    assert len(spec.fields) == 39 and spec["I2"].preprocess == "log_bucket"
    tr = dm.encoded["train"]
    assert tr.categorical.shape == (200, 39) and set(np.unique(tr.label)) == {0.0, 1.0}
    # the rare tokens (seen once) share the OOV bucket, the frequent ones get their own index
    c1 = tr.categorical[:, spec.names.index("C1")]
    assert (c1 == spec["C1"].oov_index).any() and (c1 == 1).sum() >= 2
    batch = next(iter(dm.train_dataloader()))
    assert batch["categorical"].shape == (64, 39)


def test_avazu_sample(shared_data, tmp_path):
    path = shared_data / "ctr_samples" / "deepctr" / "avazu_sample.txt"
    dm = ctr_datamodule(shared_data, dataset="avazu", files=_same(path), min_count=1, cache=str(tmp_path))
    assert dm.spec.names[:3] == ["hour", "weekday", "weekend"]
    assert len(dm.encoded["train"]) == 100 and dm.spec["hour"].num_tokens >= 1


def test_taobao_sequence_sample(shared_data, tmp_path):
    folder = shared_data / "ctr_samples" / "fuxictr_tiny_csv"
    fields = [
        {"name": "userid", "type": "categorical"},
        {"name": "adgroup_id", "type": "categorical"},
        {"name": "price", "type": "numeric", "normalizer": "minmax"},
        {"name": "click_sequence", "type": "sequence", "splitter": "^", "max_len": 5},
    ]
    files = {k: str(folder / f"{k}_sample.csv") for k in ("train", "valid", "test")}
    dm = ctr_datamodule(
        shared_data, dataset="custom", files=files, fields=fields, label="clk", cache=str(tmp_path)
    )
    seq = dm.encoded["train"].sequence
    assert seq.shape == (100, 1, 5) and (seq > 0).any() and (seq == 0).any()
    # valid/test lack most sequences of train: reported as OOV or missing, never dropped
    assert len(dm.encoded["valid"]) == 100


def test_movielens_sample_rating_is_not_a_label(shared_data):
    path = shared_data / "ctr_samples" / "deepctr" / "movielens_sample.txt"
    enc = FeatureEncoder(
        [{"name": "user_id", "type": "categorical"}, {"name": "genres", "type": "sequence", "splitter": "|"}],
        label="rating",
    )
    with pytest.raises(
        CTRDataError, match=r"movielens_sample\.txt:2: label '4' in column 'rating' is not 0 or 1"
    ):
        enc.fit(CsvReader(path))
