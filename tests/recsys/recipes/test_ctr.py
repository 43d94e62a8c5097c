"""The ``ctr`` recipe (gatelab.recsys.recipes.ctr): the shipped example config equals its cells;
every row's model comes from its config's ``frappe-x1`` preset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gatelab.recsys.recipes.ctr import CTR_TASK_KWARGS

EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "examples" / "ctr" / "frappe.yaml"


@pytest.mark.parametrize("model", sorted(CTR_TASK_KWARGS))
def test_shipped_config_equals_each_row(model):
    """docs/examples/ctr/frappe.yaml, with the ``--set`` overrides its header gives for another
    model, is the row's config (what `gatelab train --config` would run)."""
    from gatelab.core.config import to_dict
    from gatelab.core.harness.configs import load_experiment
    from gatelab.recsys.recipes.ctr import ctr_config

    sets = [f"model.name={model}", f"name=ctr-frappe-{model}-neg2021"]
    if model == "lr":
        sets.append("task.kwargs.embedding_regularizer=1e-5")
    if model == "fignn":
        sets.append("task.kwargs.embedding_regularizer=0.001")
    assert to_dict(load_experiment(EXAMPLE, sets)) == to_dict(ctr_config(model, "frappe"))


def test_rows_name_the_preset_and_validate():
    """Each row's model kwargs are just the preset, and the whole config validates (the preset
    exists for the model, the task kwargs are CTROptions keys) without reading data."""
    from gatelab.core.harness.validation import validate_experiment
    from gatelab.recsys.recipes.ctr import CTR_PRESET, ctr_config

    for model in CTR_TASK_KWARGS:
        cfg = validate_experiment(ctr_config(model, "frappe_x1"))
        assert cfg.model.kwargs == {"preset": CTR_PRESET}, model
        assert cfg.task.kwargs == CTR_TASK_KWARGS[model], model


def test_unknown_model_is_one_line():
    from gatelab.core.config import ConfigError
    from gatelab.recsys.recipes.ctr import ctr_config

    with pytest.raises(ConfigError, match=r"model 'finalmpl' has no row.*did you mean 'finalmlp'"):
        ctr_config("finalmpl")


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"preset": "frappe-x2"}, ["model.kwargs.preset='frappe-x2'", "'frappe-x1'"]),
        ({"mlp1_act": "reluu"}, ["model.kwargs.mlp1_act='reluu'", "did you mean 'relu'"]),
        ({"mlp1_activation": "relu"}, ["model.kwargs.mlp1_activation='relu'", "did you mean 'mlp1_act'"]),
        ({"fs_hidden_dims": [8, 0]}, ["model.kwargs.fs_hidden_dims=[8, 0]", "[1]"]),
    ],
)
def test_bad_model_kwargs_fail_before_any_data(kwargs, fragments):
    """The row's model kwargs are checked against FinalMLPConfig (types, ranges, activation
    names, preset names) when the experiment config is validated, before the data is read."""
    from gatelab.core.config import ConfigError, to_dict
    from gatelab.core.harness.validation import validate_experiment
    from gatelab.recsys.recipes.ctr import ctr_config

    cfg = to_dict(ctr_config("finalmlp", "frappe"))
    cfg["model"]["kwargs"].update(kwargs)
    with pytest.raises(ConfigError) as e:
        validate_experiment(cfg)
    msg = str(e.value)
    assert "\n" not in msg
    for f in fragments:
        assert f in msg, msg


# --------------------------------------------------------------------------- Criteo_x1 / Avazu_x1

#: vocabulary sizes of BARS's Criteo_x1 / Avazu_x1 encodings (min_count 1), from the feature specs
#: in the logs of FinalMLP_criteo_x1_004_d5d36917 / FinalMLP_avazu_x1_018_488deefd
CRITEO_X1_VOCAB = dict(zip(
    [f"C{i}" for i in range(1, 27)],
    [1462, 560, 413424, 248543, 307, 23, 12192, 635, 5, 54712, 5350, 409749, 3182, 29, 12500, 365811,
     12, 4934, 2096, 6, 397981, 20, 17, 88608, 98, 64073],
))  # fmt: skip
AVAZU_X1_VOCAB = dict(zip(
    [f"feat_{i}" for i in range(1, 23)],
    [9, 9, 3480, 4271, 26, 4864, 305, 33, 228186, 1048285, 6515, 6, 6, 1940, 10, 11, 349, 6, 61, 171, 52, 26],
))  # fmt: skip


def _bars_spec(dataset):
    cats = CRITEO_X1_VOCAB if dataset == "criteo_x1" else AVAZU_X1_VOCAB
    nums = [f"I{i}" for i in range(1, 14)] if dataset == "criteo_x1" else []
    return {
        "fields": [{"name": n, "type": "numeric"} for n in nums]
        + [{"name": n, "type": "categorical", "vocab_size": v, "num_tokens": v - 2} for n, v in cats.items()]
    }


@pytest.mark.parametrize(
    ("model", "dataset", "expected"),
    [
        # FuxiCTR 2.0.1's count less one: its InteractionAggregation has a second (redundant) bias
        ("finalmlp", "criteo_x1", 22_478_162 - 1),
        ("finalmlp", "avazu_x1", 13_979_472 - 1),
        # FuxiCTR 1.1's count (BARS logs) plus one table row per categorical field (26 / 22 x 10):
        # the 2.0 layout with a padding row that gatelab uses; the network itself is the same
        ("dcnv2", "criteo_x1", 22_018_021 + 26 * 10),
        ("dcnv2", "avazu_x1", 13_641_311 + 22 * 10),
    ],
)
def test_x1_presets_have_bars_parameter_counts(model, dataset, expected):
    """The criteo-x1 / avazu-x1 presets build BARS's networks: the parameter counts of BARS's logs
    with BARS's vocabularies (up to the documented layout differences)."""
    from gatelab.core.registry import create_model
    from gatelab.recsys.recipes.ctr import CTR_DATASETS

    m = create_model(model, preset=CTR_DATASETS[dataset][1], feature_spec=_bars_spec(dataset))
    assert sum(p.numel() for p in m.parameters()) == expected


def test_x1_rows_validate_and_carry_sourced_references():
    """Every Criteo_x1 / Avazu_x1 row validates (preset exists, task kwargs are BARS's
    regularisers); every reference of the table has a source URL; a model without an x1 preset
    is one clear error."""
    from gatelab.core.config import ConfigError
    from gatelab.core.harness.validation import validate_experiment
    from gatelab.recsys.recipes.ctr import CTR_REFERENCES, CTR_TABLE, X1_MODELS, X1_TASK_KWARGS, ctr_config

    for dataset, preset, l2 in (("criteo_x1", "criteo-x1", 1e-5), ("avazu_x1", "avazu-x1", 0.05)):
        for model in X1_MODELS:
            cfg = validate_experiment(ctr_config(model, dataset))
            assert cfg.model.kwargs == {"preset": preset}
            assert cfg.task.kwargs == X1_TASK_KWARGS[dataset][model]
            assert cfg.task.kwargs["embedding_regularizer"] == l2
            assert cfg.data.kwargs["dataset"] == dataset
    assert all("https://" in r.source for r in CTR_REFERENCES)
    row = {"model": "finalmlp", "dataset": "avazu_x1", "split": "x1"}
    assert CTR_TABLE.paper_values(row) == {"auc": 0.766566, "logloss": 0.365803}
    assert {r["model"] for r in CTR_TABLE.references if r["dataset"] == "frappe"} >= {"deepfm", "lr"}
    with pytest.raises(ConfigError, match=r"model 'dnn' has no row in the table on criteo_x1.*finalmlp, gdcn-p, dcnv2"):
        ctr_config("dnn", "criteo_x1")


@pytest.mark.parametrize("dataset", ["criteo_x1", "avazu_x1"])
def test_x1_presets_train_on_files_in_the_bars_layout(tmp_path, dataset):
    """Tiny files in BARS's Criteo_x1 (label, I1-I13 floats, C1-C26) / Avazu_x1 (label,
    feat_1-feat_22) CSV layouts go through the ``ctr`` data module into each x1 preset's model
    (FinalMLP's Criteo contexts are the numeric I1-I13 and C6): a forward and backward pass."""
    import numpy as np
    import torch

    from gatelab.core.registry import create_model
    from gatelab.recsys.data.datamodule import ctr_datamodule
    from gatelab.recsys.data.layouts import LAYOUTS
    from gatelab.recsys.recipes.ctr import CTR_DATASETS, X1_MODELS

    lay = LAYOUTS[dataset]
    folder = tmp_path / "data" / {"criteo_x1": "Criteo_x1", "avazu_x1": "Avazu_x1"}[dataset]
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    header = ",".join([lay.label, *(f["name"] for f in lay.fields)])
    for split, n in (("train", 40), ("valid", 12), ("test", 12)):
        rows = [
            ",".join(
                [str(rng.integers(0, 2))]
                + [f"{rng.random():.4f}" if f["type"] == "numeric" else str(rng.integers(0, 9)) for f in lay.fields]
            )
            for _ in range(n)
        ]
        (folder / f"{split}.csv").write_text("\n".join([header, *rows]) + "\n")
    dm = ctr_datamodule(tmp_path / "data", dataset=dataset, batch_size=8, cache=str(tmp_path / "c"), verify=False)
    batch = next(iter(dm.train_dataloader()))
    for model in X1_MODELS:
        torch.manual_seed(0)
        m = create_model(model, preset=CTR_DATASETS[dataset][1], **dm.model_kwargs())
        logit = m(**{k: v for k, v in batch.items() if k != "target"})
        assert logit.shape == (8,) and torch.isfinite(logit).all()
        logit.sum().backward()


# --------------------------------------------------------------------------- issue 19: fair grid


def test_negative_seed_is_the_rows_data_seed_not_in_its_config_hash():
    """The negative-sampling seed reaches the data module (``data.kwargs.negative_seed``) and the
    run name, and is part of the cell's key (``data_seed``), but the hashed config -- what a row's
    ``config_hash`` covers -- is the same for every negative seed and model seed, as for the seed."""
    from gatelab.core.harness.recipes import Cell
    from gatelab.recsys.recipes.ctr import BARS_BUDGET, CTR_RECIPE

    configs = {
        (seed, neg): CTR_RECIPE.config(Cell("finalmlp", "frappe", seed, split="x1", data_seed=neg), {}, BARS_BUDGET)
        for seed in (0, 1)
        for neg in (2021, 2022)
    }
    assert {c["data"]["kwargs"]["negative_seed"] for c in configs.values()} == {2021, 2022}
    assert configs[(0, 2022)]["name"] == "ctr-frappe-finalmlp-neg2022"
    hashed = {str(sorted(CTR_RECIPE.hashed(c).items())) for c in configs.values()}
    assert len(hashed) == 1
    assert Cell("finalmlp", "frappe", 0, split="x1", data_seed=2022).key()["data_seed"] == 2022
    # another model, or another budget, is another configuration
    other = CTR_RECIPE.config(Cell("gdcn-p", "frappe", 0, split="x1", data_seed=2021), {}, BARS_BUDGET)
    assert CTR_RECIPE.hashed(other) != CTR_RECIPE.hashed(configs[(0, 2021)])


def test_default_grid_and_model_choice():
    """Default: FinalMLP / GDCN-P / GDCN-S over 3 negative seeds, the baselines over one, LR and
    Fi-GNN only when named (or ``all``); ``--negative-seeds`` applies to every model; bad
    choices are one clear error."""
    from gatelab.core.config import ConfigError
    from gatelab.recsys.recipes.ctr import (
        BASELINE_NEGATIVE_SEEDS,
        CTR_ALL_MODELS,
        CTR_MODELS,
        NEGATIVE_SEEDS,
        ctr_models,
        negative_seeds,
    )

    assert ctr_models(None, "frappe") == CTR_MODELS
    assert "lr" not in CTR_MODELS and "fignn" not in CTR_MODELS
    assert ctr_models(["all"], "frappe") == CTR_ALL_MODELS
    assert ctr_models(["fignn", "finalmlp", "fignn"], "frappe") == ("fignn", "finalmlp")
    assert ctr_models(None, "frappe", quick=True) == ("finalmlp",)
    assert ctr_models(None, "criteo_x1") == ("finalmlp", "gdcn-p", "dcnv2")
    assert len(NEGATIVE_SEEDS) == 3 and len(BASELINE_NEGATIVE_SEEDS) == 1
    for m in ("finalmlp", "gdcn-p", "gdcn-s"):
        assert negative_seeds(m, "frappe") == NEGATIVE_SEEDS
        assert negative_seeds(m, "frappe", quick=True) == BASELINE_NEGATIVE_SEEDS
    for m in ("dualmlp", "dcnv2", "dnn", "deepfm", "lr", "fignn"):
        assert negative_seeds(m, "frappe") == BASELINE_NEGATIVE_SEEDS
    assert negative_seeds("dnn", "frappe", [7, 8]) == (7, 8)
    assert negative_seeds("finalmlp", "frappe_x1") == (None,)
    with pytest.raises(ConfigError, match=r"--negative-seeds 5: dataset 'criteo_x1' has no negative sampling"):
        negative_seeds("finalmlp", "criteo_x1", [5])
    with pytest.raises(ConfigError, match="repeats a seed"):
        negative_seeds("finalmlp", "frappe", [5, 5])
    with pytest.raises(ConfigError, match=r"model 'finalmpl' has no row.*did you mean 'finalmlp'"):
        ctr_models(["finalmpl"], "frappe")


def _fake_result(cfg, **_):
    """A stand-in for run_experiment: metrics that depend on model, seed and negative seed."""
    from types import SimpleNamespace

    model, seed, neg = cfg["model"]["name"], cfg["seed"], cfg["data"]["kwargs"].get("negative_seed", 0)
    base = {"finalmlp": 0.9850, "gdcn-p": 0.9855, "gdcn-s": 0.9851, "dualmlp": 0.9849}.get(model, 0.98)
    auc = base + 1e-4 * seed + 1e-3 * (neg - 2021) + (2e-5 * seed * (model == "gdcn-p"))
    config = SimpleNamespace(to_dict=lambda: {"preset": "frappe-x1"})
    return SimpleNamespace(
        metrics={"test/auc": auc, "test/logloss": 1.5 - auc, "val/auc": auc},
        wall_s=1.0,
        trainer=SimpleNamespace(checkpoint_callback=SimpleNamespace(best_model_score=auc), current_epoch=4),
        datamodule=SimpleNamespace(encoded={"train": [0] * 5}, info={"train": {}}, spec=SimpleNamespace(splits={}), report={}),
        task=SimpleNamespace(model=SimpleNamespace(parameters=lambda: [], config=config)),
        run_dir="runs/ctr/x",
    )


def test_table_rows_pairs_resume_and_portable_command(tmp_path, monkeypatch):
    """``gatelab repro ctr`` end to end with a stand-in for training: one row per (model, seed,
    negative seed) with ``data_seed`` and the budget column; all runs of a model share one config
    hash; the paired comparisons pair by (seed, data_seed); ``--resume`` skips every recorded
    row; the recorded command holds no --data-dir / --results-dir."""
    import gatelab.core.harness.experiment as experiment
    from gatelab.core.harness.ledger import paired_comparisons, read_records
    from gatelab.core.harness.repro import run_table
    from gatelab.recsys.recipes.ctr import BARS_BUDGET, CTR_TABLE

    calls = []
    monkeypatch.setattr(experiment, "run_experiment", lambda cfg, **kw: calls.append(cfg) or _fake_result(cfg))
    argv = ["--models", "finalmlp", "gdcn-p", "dualmlp", "--seeds", "0", "1", "--data-dir", str(tmp_path / "none")]
    run_table(CTR_TABLE, [*argv, "--results-dir", str(tmp_path)])
    rows = read_records("ctr", tmp_path)
    runs = {(r["model"], r["seed"], r["data_seed"]) for r in rows}
    assert runs == {(m, s, n) for m in ("finalmlp", "gdcn-p") for s in (0, 1) for n in (2021, 2022, 2023)} | {
        ("dualmlp", s, 2021) for s in (0, 1)
    }
    assert len(rows) == len(runs) == 14
    assert {r["budget"] for r in rows} == {BARS_BUDGET.describe({"trainer": {"max_epochs": 100}})}
    assert "patience 2" in rows[0]["budget"]
    for model in ("finalmlp", "gdcn-p"):
        assert len({r["config_hash"] for r in rows if r["model"] == model}) == 1
    assert {r["command"] for r in rows} == {
        "gatelab repro ctr --models finalmlp gdcn-p dualmlp --seeds 0 1"
    }
    fm = next(r for r in rows if r["model"] == "finalmlp")
    assert fm["paper_auc"] == 0.985938  # BARS's validation-selected run, not the best-of-sweep 0.986072
    assert not any(k.startswith("paper_") for k in next(r for r in rows if r["model"] == "gdcn-p"))

    res = paired_comparisons(rows, CTR_TABLE.comparisons)
    by = {r["comparison"]: r for r in res}
    fp = by["FinalMLP − GDCN-P (auc)"]
    assert fp["pairs"] == 6 and fp["unpaired"] == 0
    assert fp["diff"] == pytest.approx(0.9850 - 0.9855 - 1e-5)  # paired: the seed and data-seed effects cancel
    assert fp["verdict"] == "gdcn-p better"
    assert by["FinalMLP − DualMLP (its ablation: no gates, no fusion) (auc)"]["pairs"] == 2
    assert by["FinalMLP − GDCN-P (logloss)"]["verdict"] == "gdcn-p better"
    md = (tmp_path / "ctr.md").read_text()
    assert "## Paired comparisons" in md and "| runs |" in md

    n = len(calls)
    done = run_table(CTR_TABLE, [*argv, "--resume", "--results-dir", str(tmp_path)])
    assert len(calls) == n and len(done.skipped) == 14 and len(read_records("ctr", tmp_path)) == 14


#: a checkout of github.com/reczoo/BARS ($GATELAB_BARS; the test is skipped without one)
BARS = Path(os.environ.get("GATELAB_BARS", "/work/ext/BARS")) / "ranking" / "ctr"


def _sweep(path):
    """``(exp_id, val AUC, test AUC, test logloss)`` of each run line of a BARS results/sweep csv."""
    import re

    pat = re.compile(r"\[exp_id\] (\S+),.*\[val\] AUC: ([\d.]+) .*\[test\] AUC: ([\d.]+) - logloss: ([\d.]+)")
    return [(m[1], float(m[2]), float(m[3]), float(m[4])) for m in map(pat.search, path.read_text().splitlines()) if m]


@pytest.mark.skipif(not BARS.is_dir(), reason="no BARS checkout (github.com/reczoo/BARS; set GATELAB_BARS)")
def test_frappe_references_match_the_bars_sweeps():
    """Each Frappe reference read from a BARS sweep log is what its label says: the Δ reference
    is the run with the best validation AUC, ``bars-best-of-sweep`` the best test AUC (the
    leaderboard value), ``bars-sweep-median`` the median test AUC (FinalMLP: 32 runs)."""
    import statistics

    from gatelab.recsys.recipes.ctr import CTR_REFERENCES, model_dir

    refs = {(r.model, r.variant): r for r in CTR_REFERENCES if r.dataset == "frappe"}
    sweeps = {
        "finalmlp": "FinalMLP_frappe_x1_tuner_config_16.csv",
        "dcnv2": "DCNv2_frappe_x1_tuner_config_03.csv",
        "fignn": "FiGNN_frappe_x1_tuner_config_04.csv",
    }
    for model, sweep in sweeps.items():
        runs = _sweep(BARS / model_dir(model) / sweep)
        assert sweep in refs[(model, None)].source
        best_val = max(runs, key=lambda r: r[1])
        best_test = max(runs, key=lambda r: r[2])
        assert dict(refs[(model, None)].values) == {"auc": best_val[2], "logloss": best_val[3]}, model
        assert dict(refs[(model, "bars-best-of-sweep")].values) == {"auc": best_test[2], "logloss": best_test[3]}
        assert best_val[2] < best_test[2], model  # the leaderboard value is the optimistic one
    runs = _sweep(BARS / model_dir("finalmlp") / sweeps["finalmlp"])
    assert len(runs) == 32
    assert refs[("finalmlp", "bars-sweep-median")].values == {"auc": statistics.median(r[2] for r in runs)}
    (leader,) = _sweep(BARS / model_dir("finalmlp") / "results.csv")
    assert leader[0] == "FinalMLP_frappe_x1_004_e1ab402f" and leader[2] == 0.986072
    # the GDCN paper's values are context only: no row gets a paper value (no Δ) from them
    from gatelab.recsys.recipes.ctr import CTR_TABLE

    for model in ("gdcn-p", "gdcn-s"):
        assert refs[(model, "gdcn-paper-own-split")].values["auc"] > 0.98
        assert CTR_TABLE.paper_values({"model": model, "dataset": "frappe", "split": "x1"}) == {}
