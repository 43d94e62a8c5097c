"""benchmarks/maxim_speed.py: the parts that run without the vztu/maxim-pytorch checkout.

The weight map into their module is checked layer type by layer type against gatelab's Flax port
(itself checked against the official Flax outputs by ``test_maxim_port.py``) on small torch layers
named like theirs; the equality check is shown able to fail; without a checkout the benchmark
skips and records nothing. With ``$GATELAB_MAXIM_PYTORCH_REPO`` set, their model at a small width
must match ours.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import numpy as np
import pytest
import torch
from torch import nn

from gatelab.vision.models import maxim_port
from gatelab.vision.models.maxim import Maxim, MaximConfig

TINY = dict(features=4, block_size_hr=4, grid_size_hr=4, block_size_lr=2, grid_size_lr=2)


@pytest.fixture(scope="module")
def bench(repo_root):
    spec = importlib.util.spec_from_file_location("bench_maxim_speed", repo_root / "benchmarks" / "maxim_speed.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_maxim_speed"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_skips_without_checkout(bench, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(bench.ENV_REPO, raising=False)
    assert bench.main(["--official-repo", str(tmp_path / "absent"), "--record", "--results-dir", str(tmp_path)]) == 0
    assert "SKIPPED" in capsys.readouterr().out
    assert not list(tmp_path.iterdir())
    assert bench.main(["--record", "--results-dir", str(tmp_path)]) == 0  # no path at all
    assert not list(tmp_path.iterdir())


def test_random_flax_params_fill_ours_exactly(bench):
    model = Maxim(MaximConfig.from_preset("S-1", **TINY))
    params = bench.random_flax_params(model, seed=3)
    state = maxim_port.convert_flax_params(params, model.config)  # raises on a missing, left-over or misshapen key
    model.load_state_dict(state, strict=True)
    again = bench.random_flax_params(model, seed=3)
    assert again.keys() == params.keys() and all(np.array_equal(again[k], params[k]) for k in params)
    scales = np.concatenate([v for k, v in params.items() if k.endswith("/scale")])
    assert abs(scales.mean() - 1) < 0.05 and scales.std() > 0.05  # norms are not left at identity


class _Norm(nn.Module):  # their LayerNorm parameter names
    def __init__(self, c: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(c))
        self.beta = nn.Parameter(torch.zeros(c))


def test_reference_map_computes_what_our_port_computes(bench):
    """Each Flax layer type, mapped into a torch layer named and shaped as theirs, computes what the
    same parameters compute in ours through maxim_port (the ConvTranspose flip included)."""
    rng = np.random.default_rng(0)
    flax = {
        "blk/Dense_0/kernel": rng.standard_normal((5, 7)),
        "blk/Dense_0/bias": rng.standard_normal(7),
        "blk/Conv_0/kernel": rng.standard_normal((3, 3, 4, 6)),
        "blk/Conv_0/bias": rng.standard_normal(6),
        "blk/ConvTranspose_0/kernel": rng.standard_normal((2, 2, 4, 3)),
        "blk/ConvTranspose_0/bias": rng.standard_normal(3),
        "blk/LayerNorm/scale": rng.standard_normal(4),
        "blk/LayerNorm/bias": rng.standard_normal(4),
    }
    flax = {k: v.astype(np.float32) for k, v in flax.items()}
    blk = nn.Module()
    blk.Dense_0 = nn.Linear(5, 7)
    blk.Conv_0 = nn.Conv2d(4, 6, 3, padding=1)
    blk.ConvTranspose_0 = nn.ConvTranspose2d(4, 3, 2, stride=2)
    blk.LayerNorm = _Norm(4)
    theirs = nn.Module()
    theirs.blk = blk
    filled = bench.load_reference(theirs, flax)
    assert filled == {n for n, _ in theirs.named_parameters()}

    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a))

    x = torch.randn(2, 4, 6, 6)
    tokens = torch.randn(3, 5)
    want_dense = nn.functional.linear(tokens, t(maxim_port._t_dense(flax["blk/Dense_0/kernel"])), t(flax["blk/Dense_0/bias"]))
    torch.testing.assert_close(blk.Dense_0(tokens), want_dense)
    want_conv = nn.functional.conv2d(x, t(maxim_port._t_conv(flax["blk/Conv_0/kernel"])), t(flax["blk/Conv_0/bias"]), padding=1)
    torch.testing.assert_close(blk.Conv_0(x), want_conv)
    k = t(maxim_port._t_conv_transpose(flax["blk/ConvTranspose_0/kernel"]))
    want_up = nn.functional.conv_transpose2d(x, k, t(flax["blk/ConvTranspose_0/bias"]), stride=2)
    torch.testing.assert_close(blk.ConvTranspose_0(x), want_up)
    torch.testing.assert_close(blk.LayerNorm.gamma.data, t(flax["blk/LayerNorm/scale"]))
    torch.testing.assert_close(blk.LayerNorm.beta.data, t(flax["blk/LayerNorm/bias"]))
    with pytest.raises(ValueError, match=r"no parameter 'blk\.Extra_0\.weight'"):
        bench.load_reference(theirs, {**flax, "blk/Extra_0/kernel": np.zeros((2, 2), np.float32)})
    with pytest.raises(ValueError, match=r"blk\.Dense_0\.weight: theirs"):
        bench.load_reference(theirs, {**flax, "blk/Dense_0/kernel": np.zeros((7, 5), np.float32)})


def test_equality_check_passes_on_equal_models_and_fails_otherwise(bench):
    cfg = MaximConfig.from_preset("S-1", **TINY)
    a, b = Maxim(cfg), Maxim(cfg)
    state = maxim_port.convert_flax_params(bench.random_flax_params(a), cfg)
    a.load_state_dict(state)
    b.load_state_dict(state)
    x, y = bench.make_batch(1, 16)
    names = {n for n, _ in b.named_parameters()}
    diff = bench.check_equal(a, b, x, y, names)
    assert diff["max_rel_diff"] == 0.0 and diff["max_rel_grad_diff"] == 0.0
    with pytest.raises(AssertionError, match="get gradients but were not filled"):
        bench.check_equal(a, b, x, y, names - {"stages.0.input_conv.0.weight"})
    with torch.no_grad():
        b.stages[-1].heads[-1].bias.add_(1.0)  # the final image's output conv
    with pytest.raises(AssertionError, match=r"output 2 .* differs"):
        bench.check_equal(a, b, x, y, names)


def test_their_model_matches_ours(bench):
    """Needs ``$GATELAB_MAXIM_PYTORCH_REPO`` (a vztu/maxim-pytorch checkout): width 8, 64x64."""
    root = bench.check_official_repo(os.environ.get(bench.ENV_REPO))
    if root is None:
        pytest.skip(f"${bench.ENV_REPO} does not point at a vztu/maxim-pytorch checkout")
    ours, theirs, filled = bench.build_pair(root, features=8)
    x, y = bench.make_batch(1, 64)
    diff = bench.check_equal(ours, theirs, x, y, filled)
    assert diff["max_rel_diff"] <= bench.TOLERANCE
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for n, p in theirs.named_parameters() if n in filled)
