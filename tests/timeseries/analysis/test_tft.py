"""TFT interpretation: importances and attention over time against direct averages of the outputs; PNGs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gatelab.timeseries.analysis.tft import interpret, plot_interpretation
from gatelab.timeseries.models.tft import _TINY, TemporalFusionTransformer, example_batch


@pytest.fixture(scope="module")
def model_and_batches():
    torch.manual_seed(0)
    m = TemporalFusionTransformer(**_TINY, lookback=5).eval()
    b1 = example_batch(m, 3, encoder_length=5)
    b1["encoder_lengths"] = torch.tensor([5, 2, 4])
    b2 = example_batch(m, 2, encoder_length=5)
    b2["decoder_lengths"] = torch.tensor([3, 1])
    return m, [b1, b2]


def test_importances_are_averaged_selection_weights(model_and_batches):
    m, batches = model_and_batches
    it = interpret(m, batches)
    with torch.no_grad():
        outs = [m(b) for b in batches]
    enc = []
    for o in outs:
        for b in range(o.encoder_variables.shape[0]):
            L = int(o.encoder_lengths[b])
            enc.append(o.encoder_variables[b, :L].mean(0))
    enc = torch.stack(enc).mean(0)
    ref = 100 * enc / enc.sum()
    got = it.encoder["importance"].reindex(m.encoder_variables).to_numpy()
    np.testing.assert_allclose(got, ref.numpy(), rtol=1e-5)
    stat = torch.cat([o.static_variables for o in outs]).mean(0)
    np.testing.assert_allclose(
        it.static["importance"].reindex(m.static_variables), (100 * stat / stat.sum()).numpy(), rtol=1e-5
    )
    for df in (it.static, it.encoder, it.decoder):
        assert df["importance"].sum() == pytest.approx(100.0)
        assert df["importance"].is_monotonic_decreasing
    assert it.samples == 5


def test_attention_is_aligned_on_the_last_encoder_step(model_and_batches):
    m, batches = model_and_batches
    it = interpret(m, batches[:1])
    with torch.no_grad():
        o = m(batches[0])
    a = o.encoder_attention.mean(2)  # [B, T_d, T_e] mean over heads
    # relative time -1 = each sample's last valid encoder step
    last = torch.stack([a[b, :, int(o.encoder_lengths[b]) - 1] for b in range(3)]).mean(0)
    np.testing.assert_allclose(it.attention.loc[-1].to_numpy(), last.numpy(), rtol=1e-5)
    # relative time -5 exists only for the sample with 5 encoder steps
    np.testing.assert_allclose(it.attention.loc[-5].to_numpy(), a[0, :, 0].numpy(), rtol=1e-5)
    # decoder step 0 as a key, seen from horizon 1 (the step itself: the paper's mask allows it)
    d = o.decoder_attention.mean(2)
    assert it.attention.loc[0, "h1"] == pytest.approx(float(d[:, 0, 0].mean()), rel=1e-5)
    assert it.attention.loc[2, "h1"] == 0.0  # future step: masked


def test_tables_and_plots_are_written(tmp_path, model_and_batches):
    m, batches = model_and_batches
    it = interpret(m, batches)
    csv = it.to_csv(tmp_path)
    assert set(csv) == {"static", "encoder", "decoder", "attention"}
    pngs = plot_interpretation(it, tmp_path, title="tiny")
    for path in pngs.values():
        with Image.open(path) as im:
            assert im.format == "PNG" and im.size[0] > 300
