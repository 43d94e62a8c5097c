"""The ``tft`` table's baselines as registered models: pytorch-forecasting's TFT built from the
data module's dataset description equals its ``from_dataset`` build; the naive last value."""

from __future__ import annotations

import types
import warnings

import pytest
import torch

from gatelab.core.config import ConfigError
from gatelab.core.registry import create_model
from gatelab.timeseries.models.tft import config_from_dataset
from gatelab.timeseries.models.tft_baselines import PF_QUANTILES, NaiveLastValue, PytorchForecastingTFT

pytest.importorskip("pytorch_forecasting")


@pytest.fixture(scope="module")
def stallion_sets():
    from tft_fixtures import stallion_raw

    from gatelab.timeseries.data import tft as td

    frame = td.stallion_frame(stallion_raw(n_agency=2, n_sku=2, months=40))
    return td.stallion_datasets(frame)


def test_pytorch_forecasting_tft_equals_its_from_dataset(stallion_sets):
    from pytorch_forecasting import TemporalFusionTransformer
    from pytorch_forecasting.metrics import QuantileLoss

    training, validation = stallion_sets
    sizes = {"hidden_size": 8, "attention_head_size": 2, "dropout": 0.1, "hidden_continuous_size": 4}
    # the same sizes in the glossary's names (TFTConfig's keys)
    ours_sizes = {"d_model": 8, "num_heads": 2, "dropout": 0.1, "continuous_dim": 4}
    torch.manual_seed(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = TemporalFusionTransformer.from_dataset(
            training, loss=QuantileLoss(list(PF_QUANTILES)), log_interval=-1, **sizes
        )
    torch.manual_seed(3)
    # what the harness does: the data module's model_kwargs() updated with model.kwargs
    ours = create_model("pytorch-forecasting-tft", **{**config_from_dataset(training), **ours_sizes})
    assert isinstance(ours, PytorchForecastingTFT) and ours.quantiles == PF_QUANTILES
    a, b = theirs.state_dict(), ours.net.state_dict()
    assert sorted(a) == sorted(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    x, _ = next(iter(validation.to_dataloader(train=False, batch_size=4)))
    theirs.eval(), ours.eval()
    with torch.no_grad():
        p, q = theirs(x).prediction, ours(x).prediction
    assert p.shape == (4, 6, len(PF_QUANTILES)) and torch.equal(p, q)  # both in the target's scale


def test_pytorch_forecasting_tft_rejects_bad_settings(stallion_sets):
    cfg = config_from_dataset(stallion_sets[0])
    with pytest.raises(ConfigError, match=r"PytorchForecastingTFTConfig.layout='paper': expected 'pytorch-forecasting'"):
        PytorchForecastingTFT(**{**cfg, "layout": "paper"})
    with pytest.raises(ConfigError, match=r"quantiles=\[0\.9, 0\.1\]: expected increasing values"):
        PytorchForecastingTFT(**cfg, quantiles=[0.9, 0.1])
    with pytest.raises(ConfigError, match=r"PytorchForecastingTFTConfig.embedding_sizes="):
        PytorchForecastingTFT(**{**cfg, "embedding_sizes": {"month": [12]}})


def test_naive_last_value_repeats_the_last_observed_target():
    target = torch.arange(12.0).reshape(3, 4)
    lengths = torch.tensor([4, 2, 1])
    out = NaiveLastValue()(
        {"encoder_target": target, "encoder_lengths": lengths, "decoder_cont": torch.zeros(3, 5, 2)}
    )
    assert out.prediction.shape == (3, 5, 1)
    assert out.prediction[:, :, 0].tolist() == [[3.0] * 5, [5.0] * 5, [8.0] * 5]
    assert list(NaiveLastValue().parameters()) == []


def test_naive_last_value_errors(stallion_sets):
    NaiveLastValue(**config_from_dataset(stallion_sets[0]))  # the data module's description: accepted
    with pytest.raises(ConfigError, match=r"takes no settings: \['d_model'\]"):
        NaiveLastValue(d_model=16)
    with pytest.raises(ValueError, match="lack 'encoder_lengths'"):
        NaiveLastValue()({"encoder_target": torch.zeros(2, 3), "decoder_cont": torch.zeros(2, 1, 1)})
    with pytest.raises(ValueError, match=r"encoder_lengths must be in \[1, 3\]"):
        NaiveLastValue()(
            {"encoder_target": torch.zeros(2, 3), "encoder_lengths": torch.tensor([0, 3]),
             "decoder_cont": torch.zeros(2, 1, 1)}
        )  # fmt: skip


def test_tft_task_evaluates_but_never_trains_a_parameterless_model():
    from gatelab.timeseries.tasks.tft import TFTTask

    task = TFTTask(model_name="naive-last-value", task={"name": "tft", "kwargs": {"qrisk": [0.5]}})
    task._trainer = types.SimpleNamespace(max_epochs=0, max_steps=-1)
    assert task.configure_optimizers() is None
    task._trainer = types.SimpleNamespace(max_epochs=3, max_steps=-1)
    with pytest.raises(ConfigError, match=r"'naive-last-value' has no trainable parameters.*max_epochs: 0"):
        task.configure_optimizers()
