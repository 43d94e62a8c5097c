"""One generic test over every registered model (timm's test_models pattern).

For each model: build its tiny config, run ``example_inputs``, forward, check outputs are finite,
backward reaches every trainable parameter, and a state_dict round trip into a fresh instance
reproduces the outputs in eval mode. New models are covered as soon as they register.
"""

from __future__ import annotations

import pytest
import torch
from gate_checks import output_tensors

from gatelab.core.registry import create_model, register_model, registered

MODELS = sorted(registered())


def _build(name: str):
    info = registered()[name]
    assert info.example_inputs is not None, f"{name}: register_model(example_inputs=...) is required"
    torch.manual_seed(0)
    model = create_model(name, **info.tiny)  # the registry entry's preset, reduced by ``tiny``
    return info, model


@pytest.mark.parametrize("name", MODELS)
def test_forward_backward(name):
    info, model = _build(name)
    model.train()
    args, kwargs = info.example_inputs(model, 2)
    out = output_tensors(model(*args, **kwargs))
    assert out, f"{name}: forward returned no tensors"
    floats = [o for o in out if o.is_floating_point()]
    for o in floats:
        assert torch.isfinite(o).all(), f"{name}: non-finite output"
    sum(o.float().mean() for o in floats).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"{name}: no gradient reached {missing[:10]}"
    bad = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    assert not bad, f"{name}: non-finite gradients in {bad[:10]}"


@pytest.mark.parametrize("name", MODELS)
def test_state_dict_round_trip(name):
    info, model = _build(name)
    model.eval()
    args, kwargs = info.example_inputs(model, 2)
    with torch.no_grad():
        ref = output_tensors(model(*args, **kwargs))
    torch.manual_seed(123)  # a different init for the fresh copy
    fresh = create_model(name, **info.tiny).eval()
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        got = output_tensors(fresh(*args, **kwargs))
    assert len(got) == len(ref)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b)


def test_every_model_declares_core_gates():
    # baselines (tag "baseline", e.g. DNN or DCNv2 next to the gated CTR models) use no gates
    for name, info in registered().items():
        assert info.gates or "baseline" in info.tags, (
            f"{name} declares no gatelab.core gates (and is not tagged 'baseline')"
        )
        assert info.paper, f"{name} declares no paper"


def test_registry_rejects_bad_registrations():
    with pytest.raises(ValueError, match="must be a lower-case identifier"):
        register_model("x-test", domain="Not A Domain", paper="p", gates=("GluMlp",))
    with pytest.raises(ValueError, match=r"not gatelab\.core exports"):
        register_model("x-test", domain="core", paper="p", gates=("NotAGate",))(lambda: None)


def test_create_model_errors():
    from gatelab import create_model

    with pytest.raises(KeyError, match="unknown model"):
        create_model("definitely-not-a-model")
