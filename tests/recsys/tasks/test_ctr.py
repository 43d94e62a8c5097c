"""The CTR task (regularisers, FuxiCTR plateau decay) and a tiny end-to-end run through the harness."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import torch
from trainer_fixtures import quiet_trainer

from gatelab.core.config import ConfigError
from gatelab.recsys.models import tiny_feature_spec
from gatelab.recsys.tasks.ctr import CTRTask, parse_regularizer


def test_parse_regularizer():
    assert parse_regularizer(0.05) == [(2, 0.05)]
    assert parse_regularizer("0.05") == [(2, 0.05)]
    assert parse_regularizer(0) == [] and parse_regularizer(None) == []
    assert parse_regularizer("l1(1e-3)") == [(1, 1e-3)]
    assert parse_regularizer("l1_l2(1e-3, 2e-3)") == [(1, 1e-3), (2, 2e-3)]
    with pytest.raises(ConfigError, match="expected a number"):
        parse_regularizer("l3(1)")
    with pytest.raises(ConfigError, match=">= 0"):
        parse_regularizer(-1.0)


def _task(**kwargs):
    return CTRTask(
        model_name="finalmlp",
        model_kwargs=dict(
            feature_spec=tiny_feature_spec(),
            embedding_dim=4,
            mlp1_hidden_dims=[4],
            mlp2_hidden_dims=[4],
            fs1_context=["user"],
        ),
        task={"name": "ctr", "optimizer": "adam", "monitor": "val/auc", "kwargs": kwargs},
    )


def test_regularization_is_fuxictr_l2_over_embedding_tables():
    task = _task(embedding_regularizer=0.05, net_regularizer="l1(0.01)")
    m = task.model
    emb = [
        m.embedding.tables["categorical_4"].weight,
        m.embedding.tables["sequence_4"].weight,
        m.embedding.numeric_weights["numeric_4"],
        m.ctx1.tables["categorical_4"].weight,
    ]
    emb_ids = {id(p) for p in emb}
    net = [p for p in m.parameters() if id(p) not in emb_ids]
    want = 0.05 / 2 * sum((p**2).sum() for p in emb) + 0.01 * sum(p.abs().sum() for p in net)
    torch.testing.assert_close(task.regularization(), want)
    # the training loss adds it to the BCE; evaluation does not
    x = {
        "categorical": torch.tensor([[1, 2, 1]]),
        "numeric": torch.tensor([[0.5]]),
        "sequence": torch.tensor([[[1, 0, 0]]]),
    }
    y = torch.tensor([1.0])
    task.train()
    z = task.model(**x)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(z, y)
    torch.testing.assert_close(task.compute_loss(z, y), bce + want)
    task.eval()
    torch.testing.assert_close(task.compute_loss(z, y), bce)
    assert _task().regularization() is None


def test_plateau_decay_follows_fuxictr():
    task = _task()
    opt = torch.optim.Adam(task.parameters(), lr=1e-3)
    trainer = SimpleNamespace(callback_metrics={}, optimizers=[opt])
    task._trainer = trainer
    lrs = []
    for auc in (0.90, 0.95, 0.95, 0.9500005, 0.96, 0.94, 0.93, 0.92, 0.91):
        trainer.callback_metrics = {"val/auc": torch.tensor(auc)}
        task.on_train_epoch_end()
        lrs.append(opt.param_groups[0]["lr"])
    # improvement must exceed 1e-6; every non-improving validation divides the lr by 10, floor 1e-6
    assert lrs == pytest.approx([1e-3, 1e-3, 1e-4, 1e-5, 1e-5, 1e-6, 1e-6, 1e-6, 1e-6])
    task._trainer = None


def _write_custom(tmp_path):
    rng = random.Random(0)
    lines = {}
    for split, n in (("train", 300), ("valid", 80), ("test", 80)):
        rows = ["label,user,item,price,tags"]
        for _ in range(n):
            u, i = rng.randint(0, 9), rng.randint(0, 14)
            y = int(u < 5) if rng.random() < 0.9 else rng.randint(0, 1)
            tags = "^".join(str(rng.randint(0, 5)) for _ in range(rng.randint(0, 3)))
            rows.append(f"{y},u{u},i{i},{rng.random():.3f},{tags}")
        (tmp_path / f"{split}.csv").write_text("\n".join(rows) + "\n")
        lines[split] = str(tmp_path / f"{split}.csv")
    return lines


def test_end_to_end_run_through_the_harness(tmp_path):
    from gatelab.core.harness import ExperimentConfig, run_experiment

    files = _write_custom(tmp_path)
    cfg = ExperimentConfig.from_dict(
        {
            "name": "ctr-tiny",
            "seed": 0,
            "output_dir": str(tmp_path / "runs"),
            "model": {
                "name": "gdcn-p",
                "kwargs": {"embedding_dim": 4, "dnn_hidden_dims": [8], "num_cross_layers": 2},
            },
            "data": {
                "name": "ctr",
                "kwargs": {
                    "dataset": "custom",
                    "files": files,
                    "fields": [
                        {"name": "user", "type": "categorical"},
                        {"name": "item", "type": "categorical"},
                        {"name": "price", "type": "numeric"},
                        {"name": "tags", "type": "sequence"},
                    ],
                    "batch_size": 32,
                    "block_size": 2048,
                },
            },
            "task": {
                "name": "ctr",
                "optimizer": "adam",
                "lr": 0.01,
                "monitor": "val/auc",
                "kwargs": {"embedding_regularizer": 0.01},
            },
            "trainer": quiet_trainer(
                max_epochs=3,
                gradient_clip_val=10.0,
                early_stopping={"monitor": "val/auc", "mode": "max", "patience": 2},
                checkpoint={"monitor": "val/auc", "mode": "max", "save_last": False},
                num_sanity_val_steps=0,
                loggers=[],
            ),
        }
    )
    res = run_experiment(cfg, data_dir=tmp_path)
    assert 0.0 <= res.metrics["test/auc"] <= 1.0 and res.metrics["test/logloss"] > 0
    assert res.best_checkpoint and res.model_kwargs["feature_spec"]["fields"][3]["type"] == "sequence"
    assert res.metrics["val/auc"] > 0.7  # the label depends on the user: learnable in 3 epochs
