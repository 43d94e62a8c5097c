"""The Flax -> PyTorch MAXIM converter against outputs of the official code (no jax needed).

``tests/vision/fixtures/maxim_flax.npz`` was written by ``tools/make_maxim_fixture.py`` from a
checkout of google-research/maxim: for five small variants (1, 2 and 3 stages, bias-free, the
ablation without MAB and cross-gating) random Flax parameters (every leaf perturbed), a batch
of images in [0, 1] and every output of the official model, computed in float64 by JAX.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gatelab.core.config import ConfigError
from gatelab.vision.models import maxim_port
from gatelab.vision.models.maxim import Maxim, MaximConfig
from gatelab.vision.models.maxim_port import (
    check_official_compatible,
    config_from_official,
    convert_flax_params,
    infer_config,
    load_flax_checkpoint,
    read_flax_checkpoint,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "maxim_flax.npz"


@pytest.fixture(scope="module")
def fixture() -> dict[str, np.ndarray]:
    with np.load(FIXTURE, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _meta(fx) -> dict:
    return json.loads(str(fx["meta"]))


def _params(fx, variant: str) -> dict[str, np.ndarray]:
    """The variant's arrays, named as in a released checkpoint (``opt/target/...``)."""
    return {k.split(":", 1)[1]: v for k, v in fx.items() if k.startswith(f"{variant}:opt/")}


def _outputs(fx, variant: str, cfg: MaximConfig) -> list[list[np.ndarray]]:
    return [
        [fx[f"{variant}:output/{s}/{c}"] for c in range(cfg.num_supervision_scales)]
        for s in range(cfg.num_stages)
    ]


def _max_err(model: Maxim, fx, variant: str, dtype: torch.dtype) -> float:
    model = model.to(dtype).eval()
    x = torch.from_numpy(fx[f"{variant}:input"]).to(dtype)
    with torch.no_grad():
        outs = model(x)
    want = _outputs(fx, variant, model.config)
    assert len(outs) == len(want) and all(len(o) == len(w) for o, w in zip(outs, want))
    return max(
        float(np.abs(o.double().numpy() - w).max()) for row, wrow in zip(outs, want) for o, w in zip(row, wrow)
    )


VARIANTS = ["s1", "s2", "s3", "s2-nobias", "s2-ablation"]


def test_fixture_is_small_and_complete(fixture):
    assert FIXTURE.stat().st_size < 5 * 2**20  # a few MiB
    meta = _meta(fixture)
    assert sorted(meta["variants"]) == sorted(VARIANTS)
    assert {v["num_stages"] for v in meta["variants"].values()} == {1, 2, 3}
    assert meta["official_repo"] == "google-research/maxim"


@pytest.mark.parametrize("variant", VARIANTS)
def test_converted_weights_reproduce_the_official_outputs(fixture, variant):
    """Every output (all stages, all scales) of the official model, on the [0, 1] image scale:
    within 1e-4 in float32, and within 1e-11 in float64 (weights converted in float64): the same
    function, not an approximation."""
    cfg = config_from_official(**_meta(fixture)["variants"][variant])
    x = fixture[f"{variant}:input"]
    assert 0.0 <= x.min() and x.max() <= 1.0
    final = fixture[f"{variant}:output/{cfg.num_stages - 1}/{cfg.num_supervision_scales - 1}"]
    assert np.abs(final - x).mean() > 0.02  # the model changes the image 200x more than the tolerance
    model = Maxim(cfg)
    model.load_state_dict(convert_flax_params(_params(fixture, variant), cfg), strict=True)
    assert _max_err(model, fixture, variant, torch.float32) < 1e-4
    model = Maxim(cfg).double()  # load_state_dict keeps the parameters' dtype
    model.load_state_dict(convert_flax_params(_params(fixture, variant), cfg, dtype=torch.float64), strict=True)
    assert _max_err(model, fixture, variant, torch.float64) < 1e-11


@pytest.mark.parametrize(
    "patch, variant",
    [
        ("_t_conv_transpose", "s2"),  # ConvTranspose kernels not flipped
        ("_t_plus_one", "s2"),  # the official gating unit's constant 1 not folded into the bias
    ],
)
def test_each_layout_rule_is_needed(fixture, monkeypatch, patch, variant):
    """The fixture sees each conversion rule: leaving one out breaks the match."""
    cfg = config_from_official(**_meta(fixture)["variants"][variant])
    monkeypatch.setattr(maxim_port, patch, maxim_port._t_copy if patch == "_t_plus_one" else lambda k: k.transpose(2, 3, 0, 1))
    model = Maxim(cfg)
    model.load_state_dict(convert_flax_params(_params(fixture, variant), cfg), strict=True)
    assert _max_err(model, fixture, variant, torch.float64) > 1e-2


@pytest.mark.parametrize("variant", VARIANTS)
def test_infer_config_reads_the_structure(fixture, variant):
    """Everything but non-square block/grid shapes is read from the weights."""
    want = config_from_official(**_meta(fixture)["variants"][variant])
    params = _params(fixture, variant)
    if variant == "s3":  # square blocks, as in every released model: nothing to pass
        got = infer_config(params)
    else:
        got = infer_config(params, block_size_hr=want.block_size_hr, grid_size_hr=want.grid_size_hr)
    assert got == want


def _flax_shapes(cfg: MaximConfig) -> dict[str, np.ndarray]:
    """Zero-memory arrays with the official parameter names and shapes of ``cfg``'s model."""
    with torch.device("meta"):
        ours = {k: tuple(v.shape) for k, v in Maxim(cfg).state_dict().items()}
    to_flax = {
        maxim_port._t_dense: lambda s: s[::-1],
        maxim_port._t_conv1x1: lambda s: (1, 1, s[1], s[0]),
        maxim_port._t_conv: lambda s: (s[2], s[3], s[1], s[0]),
        maxim_port._t_conv_transpose: lambda s: (s[2], s[3], s[0], s[1]),
        maxim_port._t_copy: lambda s: s,
        maxim_port._t_plus_one: lambda s: s,
    }
    return {
        flax: np.broadcast_to(np.float32(0), to_flax[t](ours[name])) for name, flax, t in maxim_port._name_map(cfg)
    }


@pytest.mark.parametrize("variant", ["S-2", "S-3", "M-1"])
def test_infer_config_reads_the_released_sizes(variant):
    """At the released sizes (16 x 16 blocks and grids at high resolution, 8 x 8 below, run_eval's
    three supervision scales) the whole config is read from the parameter names and shapes."""
    cfg = config_from_official(variant=variant, num_supervision_scales=3)
    assert infer_config(_flax_shapes(cfg)) == cfg


def test_infer_config_refuses_to_guess_a_non_square_block(fixture):
    with pytest.raises(ConfigError, match=r"8 tokens, not a square.*block_size_hr"):
        infer_config(_params(fixture, "s1"))


def test_load_flax_checkpoint_reads_the_released_format(fixture, tmp_path):
    """A released checkpoint: a flat .npz of ``opt/target/...`` parameters next to the optimizer
    state (``opt/state/...``, ignored); the config is read from it."""
    params = _params(fixture, "s3")
    path = tmp_path / "checkpoint.npz"
    np.savez(path, **params, **{"opt/state/step": np.array(1000), "opt/state/param_states/x/v": np.zeros(3)})
    assert sorted(read_flax_checkpoint(path)) == sorted(k[len("opt/target/") :] for k in params)
    model = load_flax_checkpoint(path)
    assert not model.training
    assert model.config == config_from_official(**_meta(fixture)["variants"]["s3"])
    assert _max_err(model, fixture, "s3", torch.float32) < 1e-4


def test_command_line_converts_to_a_pretrained_folder(fixture, tmp_path, capsys):
    import gatelab

    path = tmp_path / "checkpoint.npz"
    np.savez(path, **_params(fixture, "s3"))
    assert maxim_port.main([str(path), str(tmp_path / "out")]) == 0
    assert "parameters" in capsys.readouterr().out
    model = gatelab.from_pretrained(tmp_path / "out")
    assert isinstance(model, Maxim)
    assert _max_err(model, fixture, "s3", torch.float32) < 1e-4


def test_nested_params_convert_like_flat_ones(fixture):
    flat = {k[len("opt/target/") :]: v for k, v in _params(fixture, "s1").items()}
    nested: dict = {}
    for key, value in flat.items():
        node = nested
        *path, leaf = key.split("/")
        for p in path:
            node = node.setdefault(p, {})
        node[leaf] = value
    cfg = config_from_official(**_meta(fixture)["variants"]["s1"])
    a, b = convert_flax_params(flat, cfg), convert_flax_params(nested, cfg)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_bad_checkpoints_fail_naming_the_parameter(fixture, tmp_path):
    cfg = config_from_official(**_meta(fixture)["variants"]["s1"])
    params = _params(fixture, "s1")
    missing = dict(params)
    del missing["opt/target/stage_0_encoder_block_1/Conv_1/kernel"]
    with pytest.raises(ConfigError, match=r"not in the checkpoint.*stage_0_encoder_block_1/Conv_1/kernel"):
        convert_flax_params(missing, cfg)
    extra = dict(params, **{"opt/target/stage_0_extra/kernel": np.zeros((1, 1, 4, 4), np.float32)})
    with pytest.raises(ConfigError, match=r"no place in this config.*stage_0_extra/kernel"):
        convert_flax_params(extra, cfg)
    with pytest.raises(ConfigError, match=r"stage_0_input_conv_0/kernel.*needs"):
        convert_flax_params(params, MaximConfig.build(cfg, features=8))
    with pytest.raises(ConfigError, match="not a MAXIM checkpoint"):
        infer_config({"conv/kernel": np.zeros((3, 3, 3, 4))})
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match=r"junk\.npz: not a numpy \.npz"):
        read_flax_checkpoint(junk)
    with pytest.raises(FileNotFoundError, match=r"nope\.npz"):
        read_flax_checkpoint(tmp_path / "nope.npz")


def test_configs_the_official_code_computes_differently_are_refused():
    base = config_from_official(variant="S-2", num_supervision_scales=3)
    assert base == MaximConfig.from_preset("S-2")  # run_eval's S-2 is our preset
    check_official_compatible(base)
    for change, match in [
        (dict(grid_size_lr=(4, 4)), "grid_size_lr"),
        (dict(lrelu_slope=0.1), "lrelu_slope"),
        (dict(input_proj_factor=4), "input_proj_factor"),
        (dict(in_channels=1), "in_channels=1 != num_outputs=3"),
        (dict(in_channels=1, num_outputs=1), "num_outputs=1 with SAMs"),
    ]:
        with pytest.raises(ConfigError, match=match):
            check_official_compatible(MaximConfig.build(base, **change))
    with pytest.raises(ConfigError, match="unknown official MAXIM arguments"):
        config_from_official(variant="S-2", use_bias=True, bias=True)
