"""Our TFT gates reproduce pytorch-forecasting's when given its weights (fp32, eval mode, 1e-6).

pytorch-forecasting's modules are random-initialised (every parameter, LayerNorm affines and
trainable-add masks included), ported with ``gatelab.timeseries.models.tft_port``'s ``*_from_pytorch_forecasting`` /
``load_pytorch_forecasting_state`` and run on the same inputs.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from gatelab.core import GatedResidualNetwork
from gatelab.timeseries.models.tft_port import (
    gate_add_norm_from_pytorch_forecasting,
    glu_from_pytorch_forecasting,
    grn_from_pytorch_forecasting,
    load_pytorch_forecasting_state,
    vsn_from_pytorch_forecasting,
)


def _load_sub_modules():
    """pytorch-forecasting's ``sub_modules.py`` on its own.

    Importing the ``pytorch_forecasting`` package pulls in lightning, sklearn, ... (~15 s); the file
    itself only needs torch, so it is executed alone under its real module name.
    """
    spec = importlib.util.find_spec("pytorch_forecasting")
    if spec is None or spec.origin is None:
        pytest.skip("pytorch-forecasting is not installed")
    path = Path(spec.origin).parent / "models" / "temporal_fusion_transformer" / "sub_modules.py"
    name = "pytorch_forecasting.models.temporal_fusion_transformer.sub_modules"
    mod_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module


pf = _load_sub_modules()
ATOL = RTOL = 1e-6


def _randomize(m: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0.0, 0.7)
    return m.eval()


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, atol=ATOL, rtol=RTOL)


def test_glu():
    theirs = _randomize(pf.GatedLinearUnit(5, 3, dropout=0.2))
    ours = glu_from_pytorch_forecasting(theirs).eval()
    assert ours.dropout.p == 0.2
    x = torch.randn(4, 6, 5)
    _close(ours(x), theirs(x))


@pytest.mark.parametrize("trainable_add", [False, True])
@pytest.mark.parametrize("skip_size", [None, 7, 3])
def test_gate_add_norm(trainable_add, skip_size):
    theirs = _randomize(pf.GateAddNorm(6, 5, skip_size=skip_size, trainable_add=trainable_add, dropout=0.1))
    ours = gate_add_norm_from_pytorch_forecasting(theirs).eval()
    x, s = torch.randn(4, 3, 6), torch.randn(4, 3, skip_size or 5)
    _close(ours(x, s), theirs(x, s))


@pytest.mark.parametrize(
    ("d_in", "d_hid", "d_out"),
    [(5, 7, 5), (5, 4, 9), (8, 3, 2)],
    ids=["in==out", "in<out", "in>out"],
)
@pytest.mark.parametrize("context", [False, True])
def test_grn(d_in, d_hid, d_out, context):
    theirs = _randomize(
        pf.GatedResidualNetwork(d_in, d_hid, d_out, dropout=0.1, context_size=4 if context else None)
    )
    ours = grn_from_pytorch_forecasting(theirs).eval()
    a = torch.randn(4, 3, d_in)
    c = torch.randn(4, 3, 4) if context else None
    _close(ours(a, c), theirs(a, c))


def test_load_into_existing_module_and_layout_errors():
    theirs = _randomize(pf.GatedResidualNetwork(5, 4, 9, dropout=0.1, context_size=3))
    ours = GatedResidualNetwork(5, 4, 9, context_dim=3, skip="interpolate").eval()
    load_pytorch_forecasting_state(ours, theirs)
    a, c = torch.randn(2, 5), torch.randn(2, 3)
    _close(ours(a, c), theirs(a, c))
    with pytest.raises(ValueError, match="skip='interpolate'"):
        load_pytorch_forecasting_state(GatedResidualNetwork(5, 4, 9, context_dim=3), theirs)
    with pytest.raises(ValueError, match="sizes differ"):
        load_pytorch_forecasting_state(
            GatedResidualNetwork(5, 4, 8, context_dim=3, skip="interpolate"), theirs
        )
    with pytest.raises(TypeError, match="expected pytorch_forecasting's GatedResidualNetwork"):
        load_pytorch_forecasting_state(ours, torch.nn.Linear(2, 2))


SIZES = {"price": 4, "promo": 1, "store": 6, "day": 8, "item": 3, "temp": 5}


@pytest.mark.parametrize("context", [False, True])
def test_variable_selection_network(context):
    """Reals with default and custom prescalers, categorical embeddings (ResampleNorm only),
    input sizes below, equal to and above hidden_size, optional static context."""
    hidden = 5
    theirs = pf.VariableSelectionNetwork(
        SIZES,
        hidden,
        input_embedding_flags={"store": True, "item": True},
        dropout=0.1,
        context_size=3 if context else None,
        prescalers={"day": torch.nn.Linear(1, 8), "temp": torch.nn.Linear(1, 5)},
    )
    theirs = _randomize(theirs)
    ours = vsn_from_pytorch_forecasting(theirs).eval()
    assert ours.prescale == ["price", "promo", "day", "temp"]
    assert ours.resample_only == ["store", "item"]
    assert ours.grn_hidden_dims == [4, 1, hidden, 5, hidden, 5]
    x = {n: torch.randn(4, 3, 6 if n == "store" else 3 if n == "item" else 1) for n in SIZES}
    ctx = torch.randn(4, 3, 3) if context else None
    out_t, w_t = theirs(x, ctx)
    out_o, w_o = ours(x, ctx)
    assert w_t.shape == (4, 3, 1, len(SIZES))
    _close(w_o, w_t.squeeze(-2))
    _close(out_o, out_t)


def test_variable_selection_network_single_variable_and_2d_inputs():
    theirs = _randomize(pf.VariableSelectionNetwork({"y": 3}, 6, dropout=0.1))
    ours = vsn_from_pytorch_forecasting(theirs).eval()
    x = {"y": torch.randn(7, 1)}
    out_t, w_t = theirs(x)
    out_o, w_o = ours(x)
    _close(out_o, out_t)
    _close(w_o, w_t.reshape(7, 1))


def test_variable_selection_network_shared_grns_as_in_tft():
    """TFT passes shared single-variable GRNs; they port like the VSN's own."""
    shared = {"a": pf.GatedResidualNetwork(3, 3, 4, 0.1), "b": pf.GatedResidualNetwork(6, 4, 4, 0.1)}
    theirs = _randomize(
        pf.VariableSelectionNetwork(
            {"a": 3, "b": 6},
            4,
            input_embedding_flags={"b": True},
            single_variable_grns=shared,
            context_size=2,
        )
    )
    ours = vsn_from_pytorch_forecasting(theirs).eval()
    assert ours.resample_only == [] and ours.prescale == ["a"]
    x = {"a": torch.randn(5, 1), "b": torch.randn(5, 6)}
    c = torch.randn(5, 2)
    out_t, w_t = theirs(x, c)
    out_o, w_o = ours(x, c)
    _close(out_o, out_t)
    _close(w_o, w_t.squeeze(-2))
