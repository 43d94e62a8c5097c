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


def test_num_train_batches_is_exact_whatever_the_data_size(tmp_path):
    import torch

    from gatelab.core.config import ConfigError

    f = tmp_path / "dm.csv"
    write_csv(f, 100)
    kw = dict(file="dm.csv", freq="h", lookback=10, horizon=5, batch_size=4)
    n = len(ltsf_datamodule(tmp_path, **kw).data.windows("train"))  # 56 training windows

    def first_values(dm):
        return [b["x"][:, 0, 0].tolist() for b in dm.train_dataloader()]

    # more steps than one pass holds (25 x 4 = 100 > 56 windows): exactly 25 full batches, every
    # window drawn once before any repeats (successive permutations)
    dm = ltsf_datamodule(tmp_path, num_train_batches=25, **kw)
    torch.manual_seed(0)
    batches = list(dm.train_dataloader())
    assert n == 56 and len(batches) == 25 and all(b["x"].shape[0] == 4 for b in batches)
    xs = torch.cat([b["x"] for b in batches])
    assert len({tuple(x.flatten().tolist()) for x in xs[:n]}) == n
    # fewer steps than one pass: the first S batches of the plain shuffled pass (limit_train_batches=S)
    torch.manual_seed(1)
    short = first_values(ltsf_datamodule(tmp_path, num_train_batches=3, **kw))
    torch.manual_seed(1)
    plain = first_values(ltsf_datamodule(tmp_path, **kw))
    assert len(short) == 3 and short == plain[:3]
    for bad in (0, -1, True):
        with pytest.raises(ConfigError, match="num_train_batches"):
            ltsf_datamodule(tmp_path, num_train_batches=bad, **kw)
