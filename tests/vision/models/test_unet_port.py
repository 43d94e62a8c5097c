"""Official Attention U-Net weights into UNet (gatelab.vision.models.unet_port).

Without a checkout: the key map covers exactly our paper networks' state dicts (official names
generated from the official module layout). With ``GATELAB_OFFICIAL_AGN`` pointing at a checkout of
ozan-oktay/Attention-Gated-Networks: the official ``unet_CT_multi_att_dsv_3D`` / ``unet_CT_dsv_3D``
and ours with copied weights agree in float64 (forward and every parameter gradient, relative
1e-9 of the largest entry) and in float32 with our oneDNN convolutions (logits, relative 1e-4:
float32 summation order through 18 train-mode batch norms)."""

from __future__ import annotations

import copy
import os

import pytest
import torch

from gatelab.vision.models.unet import UNet
from gatelab.vision.models.unet_port import (
    build_official,
    load_official_into,
    official_key,
    official_state_dict,
)

OFFICIAL = os.environ.get("GATELAB_OFFICIAL_AGN")


def _official_names(attention: bool) -> list[str]:
    """Parameter and buffer names of the official network, from its module layout."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    conv = ("weight", "bias")
    names: list[str] = []

    def block(prefix: str) -> None:  # UnetConv3: conv1/conv2 = Sequential(Conv3d, BatchNorm3d, ReLU)
        for j in (1, 2):
            names.extend(f"{prefix}.conv{j}.0.{p}" for p in conv)
            names.extend(f"{prefix}.conv{j}.1.{p}" for p in bn)

    for i in (1, 2, 3, 4):
        block(f"conv{i}")
    block("center")
    if attention:
        names.extend(f"gating.conv1.0.{p}" for p in conv)
        names.extend(f"gating.conv1.1.{p}" for p in bn)
        for i in (2, 3, 4):
            for k in (1, 2):
                g = f"attentionblock{i}.gate_block_{k}"
                names.extend(f"{g}.W.0.{p}" for p in conv)
                names.extend(f"{g}.W.1.{p}" for p in bn)
                names += [f"{g}.theta.weight", f"{g}.phi.weight", f"{g}.phi.bias", f"{g}.psi.weight", f"{g}.psi.bias"]
            names.extend(f"attentionblock{i}.combine_gates.0.{p}" for p in conv)
            names.extend(f"attentionblock{i}.combine_gates.1.{p}" for p in bn)
    for i in (4, 3, 2, 1):
        block(f"up_concat{i}.conv")
    for i in (4, 3, 2):
        names.extend(f"dsv{i}.dsv.0.{p}" for p in conv)
    names += ["dsv1.weight", "dsv1.bias", "final.weight", "final.bias"]
    return names


@pytest.mark.parametrize("attention", [True, False])
def test_key_map_covers_the_paper_networks(attention):
    ours = UNet(spatial_dims=3, in_channels=1, num_classes=2, feature_scale=16, attention=attention)
    names = _official_names(attention)
    mapped = [official_key(n) for n in names]
    assert sorted(mapped) == sorted(ours.state_dict())
    fake = {n: ours.state_dict()[m].clone() for n, m in zip(names, mapped, strict=True)}
    ours.load_state_dict(official_state_dict(fake), strict=True)
    assert official_key("attentionblock3.gate_block_2.theta.weight") == "gates.att3.gates.1.theta.weight"
    assert official_key("up_concat1.conv.conv2.1.running_var") == "decoder.0.4.running_var"
    assert official_key("dsv3.dsv.0.bias") == "dsv.2.bias"


def test_unknown_key_is_named():
    with pytest.raises(KeyError, match=r"'up_concat4\.up\.weight'"):
        official_key("up_concat4.up.weight")


def test_import_official_names_a_bad_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"unet_CT_multi_att_dsv_3D\.py not found"):
        build_official(tmp_path)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


@pytest.mark.skipif(not OFFICIAL, reason="set GATELAB_OFFICIAL_AGN to a checkout of ozan-oktay/Attention-Gated-Networks")
@pytest.mark.parametrize("attention", [True, False])
def test_equal_to_the_official_network(attention):
    torch.manual_seed(0)
    official = build_official(OFFICIAL, attention=attention, feature_scale=16).train()
    ours = load_official_into(
        UNet(spatial_dims=3, in_channels=1, num_classes=2, feature_scale=16, attention=attention), official
    ).train()
    x = torch.randn(1, 1, 32, 32, 32)
    o64, m64 = copy.deepcopy(official).double(), copy.deepcopy(ours).double()
    with torch.no_grad():
        assert _rel(ours(x), official(x)) < 1e-4  # float32, oneDNN convolutions vs the native ones
    y_o, y_m = o64(x.double()), m64(x.double())
    assert _rel(y_m, y_o) < 1e-9
    (y_o.square().mean()).backward()
    (y_m.square().mean()).backward()
    ours_params = dict(m64.named_parameters())
    top = max(p.grad.abs().max() for p in o64.parameters())
    for name, p in o64.named_parameters():
        q = ours_params[official_key(name)]
        if p.grad.abs().max() < 1e-12 * top:
            continue  # e.g. a conv bias under train-mode batch norm: gradient zero up to rounding
        assert _rel(q.grad, p.grad) < 1e-9, name
    for name, b in o64.named_buffers():  # batch-norm running statistics after one step
        torch.testing.assert_close(dict(m64.named_buffers())[official_key(name)], b, rtol=1e-9, atol=1e-12)
