"""The ``ctr`` recipe (gatelab.recsys.recipes.ctr): the shipped example config equals its cells;
every row's model comes from its config's ``frappe-x1`` preset."""

from __future__ import annotations

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

    sets = [f"model.name={model}", f"name=ctr-frappe-{model}"]
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
