"""benchmarks/recsys_speed.py: the statistics (paired ratios, bootstrap interval) and, where FuxiCTR's
model zoo is available ($GATELAB_FUXICTR_MODEL_ZOO), a tiny step-mode run end to end."""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import sys

import pytest


@pytest.fixture(scope="module")
def bench(repo_root):
    spec = importlib.util.spec_from_file_location("bench_recsys_speed", repo_root / "benchmarks" / "recsys_speed.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_recsys_speed"] = mod
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop("bench_recsys_speed", None)


def test_bootstrap_interval_brackets_the_median_and_narrows(bench):
    few = [1.4, 1.6, 1.5, 1.7, 1.3]
    lo, hi = bench.bootstrap_median_ci(few)
    assert lo <= statistics.median(few) <= hi
    assert (lo, hi) == bench.bootstrap_median_ci(few)  # seeded
    many = [1.5 + 0.1 * ((i * 7) % 11 - 5) / 5 for i in range(60)]
    lo2, hi2 = bench.bootstrap_median_ci(many)
    assert hi2 - lo2 < hi - lo
    assert bench.bootstrap_median_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)
    with pytest.raises(ValueError, match="no values"):
        bench.bootstrap_median_ci([])


def test_rows_use_paired_per_round_ratios(bench):
    rates = {"gatelab": [30.0, 10.0, 20.0], "fuxictr": [10.0, 5.0, 10.0]}  # ratios 3, 2, 2
    (row,) = bench._rows("gdcn-p", "frappe", "train-epoch", rates, "fuxictr x", {"threads": 1})
    assert row["speedup"] == 2.0  # median of the paired ratios, not 20 / 10
    assert row["samples_per_s"] == 20.0 and row["baseline_samples_per_s"] == 10.0
    assert row["speedup_lo"] <= 2.0 <= row["speedup_hi"] and row["rounds"] == 3
    assert json.loads(row["config"])["all_rates"] == rates


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("GATELAB_FUXICTR_MODEL_ZOO"), reason="needs FuxiCTR's model_zoo ($GATELAB_FUXICTR_MODEL_ZOO)"
)
def test_tiny_step_run(bench, capsys):
    pytest.importorskip("fuxictr")
    argv = ["--models", "gdcn-p", "--mode", "step", "--batch-size", "64", "--rounds", "2", "--steps", "1"]
    assert bench.main([*argv, "--warmup", "1", "--dry-run"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [(r["model"], r["split"], r["rounds"]) for r in rows] == [("gdcn-p", "train-step", 2)]


@pytest.mark.skipif(
    not os.environ.get("GATELAB_FUXICTR_MODEL_ZOO"), reason="needs FuxiCTR's model_zoo ($GATELAB_FUXICTR_MODEL_ZOO)"
)
@pytest.mark.parametrize("name", ["gdcn-p", "finalmlp"])
def test_train_mode_equal_to_fuxictr_with_copied_weights(bench, name, tmp_path):
    """The fast training paths (fused gated cross step, in-place ReLU, fused ReLU+Dropout with
    p = 0) against FuxiCTR's model with copied weights, both in train mode (batch-statistics
    BatchNorm): equal predictions (float32, 1e-5 relative) and gradients (BatchNorm weights, cross
    layers, the flat embeddings; 1e-4 relative)."""
    pytest.importorskip("fuxictr")
    import torch

    torch.manual_seed(0)
    task, theirs = bench._build(name, bench.Path(os.environ["GATELAB_FUXICTR_MODEL_ZOO"]), str(tmp_path))
    ours = task.model
    for model in (ours, theirs):
        for m in model.modules():
            if hasattr(m, "p") and isinstance(m.p, float):  # both libraries' dropouts: off
                m.p = 0.0
    ours.train(), theirs.train()
    ours_b, their_b = bench._batches(1, 256)[0]
    flat = {}  # the flat field embeddings [B, D] of both (same field order): their gradients

    def keep(key):
        def hook(module, args, out):
            out.retain_grad()
            flat[key] = out

        return hook

    ours.embedding.register_forward_hook(keep("ours"))
    theirs.embedding_layer.register_forward_hook(keep("theirs"))
    p_ours = torch.sigmoid(ours(categorical=ours_b["categorical"]))
    p_theirs = theirs(their_b)["y_pred"].view(-1)
    torch.testing.assert_close(p_ours, p_theirs, rtol=1e-5, atol=1e-6)
    p_ours.sum().backward()
    p_theirs.sum().backward()

    def grads(model, kind):
        return [m.weight.grad for m in model.modules() if isinstance(m, kind)]

    for kind in (torch.nn.BatchNorm1d,):
        for a, b in zip(grads(ours, kind), grads(theirs, kind), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    if name == "gdcn-p":
        for i, layer in enumerate(ours.cross.layers):
            torch.testing.assert_close(layer.w.weight.grad, theirs.cross_net.w[i].weight.grad, rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(layer.wg.weight.grad, theirs.cross_net.wg[i].weight.grad, rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(layer.b.grad, theirs.cross_net.b[i].grad, rtol=1e-4, atol=1e-6)
    want = flat["theirs"].grad.flatten(1)  # sums of many float32 terms: atol 1e-5 of the largest entry
    torch.testing.assert_close(flat["ours"].grad, want, rtol=1e-4, atol=1e-5 * want.abs().max().item())
