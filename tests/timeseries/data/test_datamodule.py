"""The Lightning data modules of gatelab.timeseries (``data/datamodule.py``): ``ltsf`` batches.

The TFT data modules are exercised by ``tests/timeseries/models/test_tft_port.py`` (training on
them) and ``tests/timeseries/tasks/test_tft.py`` (the example config).
"""

from __future__ import annotations

import pytest
from ltsf_fixtures import write_csv

from gatelab.timeseries.data.datamodule import ltsf_datamodule
from gatelab.timeseries.data.ltsf import LTSFWindows


@pytest.fixture(autouse=True)
def _private_hash_cache(tmp_path, monkeypatch):
    """Digests of large files are cached; keep the tests out of the user's cache."""
    monkeypatch.setenv("GATELAB_CACHE", str(tmp_path / "cache"))


def test_datamodule_batches(tmp_path):
    f = tmp_path / "dm.csv"
    write_csv(f, 100)
    dm = ltsf_datamodule(
        tmp_path, file="dm.csv", freq="h", lookback=10, horizon=5, batch_size=4, eval_batch_size=7
    )
    assert dm.model_kwargs() == {"num_vars": 3, "lookback": 10, "horizon": 5, "num_targets": 3, "num_marks": 4}
    b = next(iter(dm.train_dataloader()))
    assert b["x"].shape == (4, 10, 3) and b["x_mark"].shape == (4, 10, 4) and b["target"].shape == (4, 5, 3)
    v = list(dm.val_dataloader())
    assert [x["x"].shape[0] for x in v] == [6]  # 6 windows, in order, nothing dropped
    t = list(dm.test_dataloader())
    assert sum(x["x"].shape[0] for x in t) == 16 and t[0]["x"].shape[0] == 7
    assert isinstance(dm.data.windows("train"), LTSFWindows)
