"""Missing time steps and missing values in LTSF files: the explicit policies (error, ffill, fill_na,
mask), the counts per split, the availability mask fed to Gateformer and to the regression loss,
numerically stable scaling and huge values. Fixtures are small CSVs in the real LTSF layout."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import torch
from ltsf_fixtures import write_csv
from trainer_fixtures import quiet_trainer

from gatelab.core.config import ConfigError
from gatelab.timeseries.data.ltsf import LTSFDataError, load_ltsf, read_ltsf_file
from gatelab.timeseries.models.gateformer import Gateformer

KW = dict(freq="h", lookback=8, horizon=4)
TINY = dict(d_model=8, hidden_dim=8, num_heads=2, num_layers=1, patch_len=4, stride=4)


def gappy_csv(path, n=80, drop=(30, 31, 55), nan=((12, "a"), (40, "OT"), (41, "OT")), inf=((20, "b"),)):
    """An hourly CSV of ``n`` steps with rows ``drop`` removed (gaps) and NaN / inf cells; returns
    the full values ``[n, 3]`` before the damage."""
    vals = write_csv(path, n)
    df = pd.read_csv(path)
    df = df.astype({"a": object, "b": object, "OT": object})
    for r, c in nan:
        df.loc[r, c] = ""
    for r, c in inf:
        df.loc[r, c] = "inf"
    df.drop(index=list(drop)).to_csv(path, index=False)
    return vals


def test_default_policy_is_an_error_naming_file_line_column(tmp_path):
    f = tmp_path / "gappy.csv"
    gappy_csv(f, drop=())
    with pytest.raises(LTSFDataError, match=r"gappy.csv: column 'a' has 1 missing/NaN value\(s\), the first at line 14"):
        load_ltsf(None, file=f, **KW)
    gappy_csv(f, drop=(), nan=())
    with pytest.raises(LTSFDataError, match=r"gappy.csv: column 'b' has 1 infinite value\(s\), the first \(inf\) at line 22"):
        load_ltsf(None, file=f, **KW)
    gappy_csv(f, nan=(), inf=())
    with pytest.raises(LTSFDataError, match=r"gappy.csv: 2 of 76 timestamp steps .* a gap of 2 missing time step\(s\) at line 32"):
        load_ltsf(None, file=f, **KW)
    with pytest.raises(ConfigError, match=r"steps='insert' .* choose a missing-value policy"):
        load_ltsf(None, file=f, steps="insert", **KW)
    with pytest.raises(ConfigError, match="missing='zero' is not one of error, ffill, fill_na, mask"):
        read_ltsf_file(f, missing="zero")


def test_mask_policy_inserts_steps_counts_per_split_and_masks(tmp_path, caplog):
    f = tmp_path / "gappy.csv"
    full = gappy_csv(f)
    with caplog.at_level(logging.WARNING, logger="gatelab.timeseries"):
        d = load_ltsf(None, file=f, missing="mask", steps="insert", **KW)
    s = d.series
    assert s.n_rows == 80 and s.inserted_steps == 3 and s.lines[30] == 0 and s.lines[32] == 32
    # custom split of 80 rows, L = 8: train [0, 56), val [48, 64), test [56, 80)
    assert d.borders == {"train": (0, 56), "val": (48, 64), "test": (56, 80)}
    assert d.missing_counts() == {
        "train": {"missing": 3, "infinite": 1, "inserted_rows": 3},
        "val": {"missing": 0, "infinite": 0, "inserted_rows": 1},  # row 55
        "test": {"missing": 0, "infinite": 0, "inserted_rows": 0},
    }
    assert d.summary()["missing_counts"]["train"]["inserted_rows"] == 3
    assert "missing='mask' applied to 13 cells" in caplog.text
    obs = d.observed.numpy()
    expected = np.ones((80, 3), dtype=bool)
    expected[[30, 31, 55]] = False
    expected[12, 0] = expected[40, 2] = expected[41, 2] = expected[20, 1] = False
    np.testing.assert_array_equal(obs, expected)
    # scaler: mean/std over the observed training cells only
    train = np.where(expected[:56], full[:56], np.nan)
    np.testing.assert_allclose(d.mean, np.nanmean(train, axis=0))
    np.testing.assert_allclose(d.std, np.nanstd(train, axis=0))
    # unobserved cells hold the training mean (0 after scaling); observed cells their scaled value
    assert torch.all(d.data[~d.observed] == 0)
    np.testing.assert_allclose(d.inverse_transform(d.data[:12]), full[:12], atol=1e-3)
    # windows carry the input and the target masks
    w = d.windows("train")[26]  # x rows 26..33 (30, 31 inserted), target rows 34..37
    assert set(w) == {"x", "x_mark", "target", "observed", "target_observed"}
    assert w["observed"][:, 0].tolist() == [True] * 4 + [False] * 2 + [True] * 2
    assert w["target_observed"].shape == (4, 3) and bool(w["target_observed"].all())
    w = d.windows("train")[30]  # target rows 38..41: OT missing at 40, 41
    assert w["target_observed"][:, 2].tolist() == [True, True, False, False]


def test_ffill_and_fill_na(tmp_path):
    f = tmp_path / "gappy.csv"
    full = gappy_csv(f)
    d = load_ltsf(None, file=f, missing="ffill", steps="insert", scale=False, **KW)
    raw = d.data.double().numpy()
    assert raw[12, 0] == pytest.approx(full[11, 0], abs=1e-4)  # a NaN cell: the previous value
    assert raw[31, 1] == pytest.approx(full[29, 1], abs=1e-4)  # two inserted steps: the value before
    assert raw[20, 1] == pytest.approx(full[19, 1], abs=1e-4)  # inf counts as missing under a policy
    assert d.observed is None and "observed" not in d.windows("train")[0]
    d = load_ltsf(None, file=f, missing="fill_na", steps="insert", **KW)
    assert d.data[12, 0] == 0 and d.data[30].abs().max() == 0 and d.observed is None
    # ffill needs an earlier value
    gappy_csv(f, drop=(), nan=((0, "b"),), inf=())
    with pytest.raises(LTSFDataError, match=r"ffill' has no earlier value for column 'b' at line 2"):
        load_ltsf(None, file=f, missing="ffill", **KW)
    # a column without any observed training value has no scaling statistics
    gappy_csv(f, drop=(), nan=tuple((r, "a") for r in range(60)), inf=())
    with pytest.raises(LTSFDataError, match=r"column 'a' has no observed value in the training split"):
        load_ltsf(None, file=f, missing="mask", **KW)


def test_stable_scaling_and_huge_values(tmp_path):
    f = tmp_path / "big.csv"
    rng = np.random.default_rng(0)
    n = 2000
    df = pd.DataFrame(
        {
            "date": pd.date_range("2020-01-01", periods=n, freq="h").strftime("%Y-%m-%d %H:%M:%S"),
            "a": 1e9 + rng.normal(0, 1, n),  # a one-pass E[x^2] - mean^2 variance gives 0 here
            "OT": rng.normal(0, 1, n),
        }
    )
    df.to_csv(f, index=False)
    d = load_ltsf(None, file=f, **KW)
    assert d.std[0] == pytest.approx(np.std(df["a"].to_numpy()[: int(0.7 * n)]), rel=1e-6)
    assert 0.9 < d.std[0] < 1.1 and float(d.data[:, 0].abs().max()) < 6
    df.loc[100, "OT"] = 1e300  # finite in the file, but the training variance overflows float64
    df.to_csv(f, index=False)
    with pytest.raises(LTSFDataError, match=r"big.csv: column 'OT': the training mean/std overflow .* 1e\+300 at line 102"):
        load_ltsf(None, file=f, **KW)


def test_gateformer_mask_hides_unobserved_cells():
    torch.manual_seed(0)
    m = Gateformer(num_vars=3, lookback=16, horizon=4, d_model=8, num_heads=2, num_layers=1,
                   hidden_dim=16, patch_len=4, stride=4).eval()  # fmt: skip
    x = torch.randn(2, 16, 3)
    obs = torch.rand(2, 16, 3) > 0.3
    y = m(x, observed=obs)
    x2 = torch.where(obs, x, torch.randn_like(x) * 100)  # other values where nothing is observed
    torch.testing.assert_close(m(x2, observed=obs), y)
    torch.testing.assert_close(m(x, observed=torch.ones_like(obs)), m(x), rtol=1e-5, atol=1e-5)
    assert torch.isfinite(m(x, observed=torch.zeros_like(obs))).all()  # nothing observed: still finite
    with pytest.raises(ValueError, match=r"observed must have the shape of x \(2, 16, 3\)"):
        m(x, observed=obs[:, :8])
    with pytest.raises(TypeError, match=r"floating-point tensor, got dtype torch\.int64"):
        m(x.long())


def test_training_on_a_series_with_gaps(tmp_path):
    """A tiny Gateformer trains through the harness on a gappy series with the mask policy; the
    regression loss ignores the unobserved targets."""
    from gatelab.core.harness import run_experiment
    from gatelab.core.harness.task import RegressionTask

    f = tmp_path / "gappy.csv"
    gappy_csv(f, n=120, drop=(30, 31, 55, 90), nan=((12, "a"), (40, "OT"), (70, "OT")))
    cfg = {
        "name": "gaps",
        "seed": 0,
        "output_dir": str(tmp_path / "runs"),
        "model": {"name": "gateformer", "kwargs": TINY},
        "data": {
            "name": "ltsf",
            "kwargs": {"file": str(f), "freq": "h", "lookback": 8, "horizon": 4, "batch_size": 8,
                       "missing": "mask", "steps": "insert"},
        },
        "task": {"name": "regression", "optimizer": "adam", "lr": 1e-3},
        "trainer": quiet_trainer(max_epochs=1, loggers=[]),
    }
    res = run_experiment(cfg, data_dir=tmp_path)
    assert np.isfinite(res.metrics["test/loss"]) and np.isfinite(res.metrics["test/mse"])
    # the loss counts observed target cells only: garbage where unobserved changes nothing
    task = RegressionTask(
        task={"name": "regression"},
        model=Gateformer(num_vars=3, lookback=8, horizon=4, **TINY),
    ).eval()  # no dropout: two calls see the same network
    d = load_ltsf(None, file=f, missing="mask", steps="insert", **KW)
    batch = torch.utils.data.default_collate([d.windows("train")[i] for i in range(20, 30)])
    assert not bool(batch["target_observed"].all())
    loss, preds, target = task.shared_step(batch, "train")
    garbage = dict(batch, target=torch.where(batch["target_observed"], batch["target"], torch.tensor(float("nan"))))
    loss2, _, _ = task.shared_step(garbage, "train")
    assert torch.isfinite(loss2) and loss2 == loss
    assert preds.shape == target.shape == (int(batch["target_observed"].sum()),)
