"""Interop with pytorch-forecasting: whole-model weight port (same forward outputs), from_dataset,
training on a ``TimeSeriesDataSet``'s dataloaders.

pytorch-forecasting is the anchor here (an independent implementation of the same network).
"""

from __future__ import annotations

import warnings

import pytest
import torch
from tft_fixtures import tiny_frame, tiny_spec

pytest.importorskip("pytorch_forecasting")
warnings.filterwarnings("ignore", category=UserWarning)

from pytorch_forecasting import TemporalFusionTransformer as PFTFT  # noqa: E402
from pytorch_forecasting.metrics import QuantileLoss  # noqa: E402

from gatelab.timeseries.data.tft import build_dataset  # noqa: E402
from gatelab.timeseries.models.tft import TemporalFusionTransformer, config_from_dataset  # noqa: E402
from gatelab.timeseries.models.tft_port import from_pytorch_forecasting, load_tft_state  # noqa: E402
from gatelab.timeseries.tasks.metrics import quantile_loss, valid_mask  # noqa: E402


@pytest.fixture(scope="module")
def dataset():
    return build_dataset(tiny_frame(), tiny_spec())


@pytest.fixture(scope="module")
def batch(dataset):
    x, y = next(iter(dataset.to_dataloader(train=False, batch_size=64, num_workers=0)))
    assert (x["encoder_lengths"] < 6).any() and (x["decoder_lengths"] < 3).any()  # ragged windows
    return x, y


def _pf_model(dataset, **kw):
    torch.manual_seed(0)
    pf = PFTFT.from_dataset(
        dataset,
        hidden_size=8,
        attention_head_size=2,
        dropout=0.1,
        hidden_continuous_size=4,
        loss=QuantileLoss(),
        **kw,
    )
    with torch.no_grad():  # random weights everywhere (LayerNorm affines, masks, biases included)
        for p in pf.parameters():
            p.normal_(0.0, 0.5)
    return pf.eval()


@pytest.mark.parametrize("causal", [True, False])
def test_whole_model_port_reproduces_pytorch_forecasting(dataset, batch, causal):
    x, _ = batch
    pf = _pf_model(dataset, causal_attention=causal)
    ours = from_pytorch_forecasting(pf).eval()
    with torch.no_grad():
        theirs, got = pf(x), ours(x)
    torch.testing.assert_close(got.prediction, theirs["prediction"], rtol=1e-5, atol=1e-4)
    for key in ("encoder_attention", "decoder_attention"):
        torch.testing.assert_close(getattr(got, key), theirs[key], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        got.static_variables, theirs["static_variables"].squeeze(-2), rtol=1e-5, atol=1e-6
    )
    for key in ("encoder_variables", "decoder_variables"):
        torch.testing.assert_close(getattr(got, key), theirs[key].squeeze(-2), rtol=1e-5, atol=1e-6)


def test_port_gradients_match(dataset, batch):
    """Same weights, same loss -> same gradients (dropout off): the backward matches too."""
    x, (y, _) = batch
    pf = _pf_model(dataset)
    pf.hparams.dropout = 0.0
    for m in pf.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    ours = from_pytorch_forecasting(pf)
    for m in ours.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    pf.train()
    ours.train()
    mask = valid_mask(x["decoder_lengths"], y.shape)
    quantile_loss(pf(x)["prediction"], y, pf.loss.quantiles, mask).backward()
    quantile_loss(ours(x).prediction, y, ours.quantiles, mask).backward()
    torch.testing.assert_close(
        ours.output_layer.weight.grad, pf.output_layer.weight.grad, rtol=1e-4, atol=1e-5
    )
    torch.testing.assert_close(
        ours.lstm_encoder.weight_hh_l0.grad, pf.lstm_encoder.weight_hh_l0.grad, rtol=1e-4, atol=1e-5
    )
    q = torch.cat([lin.weight.grad for lin in pf.multihead_attn.q_layers])
    torch.testing.assert_close(ours.attention.q_proj.weight.grad, q, rtol=1e-4, atol=1e-5)


def test_load_errors_name_the_mismatch(dataset):
    pf = _pf_model(dataset)
    paper = TemporalFusionTransformer.from_dataset(
        dataset, layout="paper", d_model=8, num_heads=2
    )
    with pytest.raises(ValueError, match="layout='pytorch-forecasting'"):
        load_tft_state(paper, pf)
    wider = TemporalFusionTransformer.from_dataset(
        dataset, d_model=16, num_heads=2, continuous_dim=4, quantiles=pf.loss.quantiles
    )
    with pytest.raises(ValueError, match="shape"):
        load_tft_state(wider, pf)
    with pytest.raises(TypeError, match="expected pytorch_forecasting's TemporalFusionTransformer"):
        load_tft_state(wider, torch.nn.Linear(2, 2))


def test_from_dataset_matches_pytorch_forecastings_variables(dataset):
    pf = PFTFT.from_dataset(dataset, hidden_size=8, attention_head_size=2, hidden_continuous_size=4)
    ours = TemporalFusionTransformer.from_dataset(
        dataset, d_model=8, num_heads=2, continuous_dim=4, quantiles=pf.loss.quantiles
    )
    assert ours.static_variables == pf.static_variables
    assert ours.encoder_variables == pf.encoder_variables
    assert ours.decoder_variables == pf.decoder_variables
    assert ours.x_reals == list(pf.hparams.x_reals)
    assert ours.target_transform == "softplus"
    # identical network: same effective parameter count (ours pads a few unused embedding columns)
    emb = ours.input_embedding
    pad = sum(n * (emb._d_cat - d) for n, d in zip(emb.cardinalities, emb.cat_dims))
    pad += sum(2 * (emb._d_real - d) for d in emb.real_dims)
    assert sum(p.numel() for p in ours.parameters()) - pad == sum(p.numel() for p in pf.parameters())
    cfg = config_from_dataset(dataset, allowed_encoder_known_variable_names=["time_idx"])
    assert "promo" not in cfg["time_varying_categoricals_encoder"]
    assert "price" not in cfg["time_varying_reals_encoder"] and "price" in cfg["time_varying_reals_decoder"]


def test_trains_on_timeseries_dataset_dataloaders(dataset):
    """Lightning fit of our task on the dataset's own dataloaders: the loss goes down."""
    import lightning as L

    from gatelab.timeseries.data.datamodule import TFTDataModule
    from gatelab.timeseries.tasks.tft import TFTTask

    torch.manual_seed(0)
    # fast=False: the dataset's own TimeSeriesDataSet.to_dataloader
    dm = TFTDataModule(dataset, dataset, batch_size=16, val_batch_size=64, fast=False)
    assert dm.train_dataloader().collate_fn.__qualname__ == "TimeSeriesDataSet._collate_fn"
    task = TFTTask(
        model_name="tft",
        model_kwargs={**dm.model_kwargs(), "d_model": 8, "num_heads": 2, "dropout": 0.0},
        task={"name": "tft", "optimizer": "adam", "lr": 3e-2},
    )
    loader = dm.val_dataloader()

    def val_loss() -> float:
        task.eval()
        with torch.no_grad():
            return float(sum(task.shared_step(b, "val")[0] for b in loader) / len(loader))

    before = val_loss()
    task.train()
    trainer = L.Trainer(
        max_steps=10,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        gradient_clip_val=1.0,
    )
    trainer.fit(task, datamodule=dm)
    after = val_loss()
    assert after < 0.8 * before, (before, after)
    assert {"val/loss", "val/mae", "val/q50", "val/q90"} <= set(trainer.callback_metrics)
