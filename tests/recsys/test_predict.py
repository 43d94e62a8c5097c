"""``gatelab predict`` for CTR: a real tiny training run -> export -> predict, and the input errors."""

from __future__ import annotations

import csv
import json
import logging
import shutil

import numpy as np
import pytest
import torch
from trainer_fixtures import quiet_trainer

from gatelab.core.config import ConfigError
from gatelab.core.harness.predict import PredictOptions
from gatelab.core.pretrained import from_pretrained, load_preprocessing

from .ctr_fixtures import CUSTOM_FIELDS, write_custom_ctr


def _train(tmp_path):
    from gatelab.core.harness import ExperimentConfig, run_experiment

    files = write_custom_ctr(tmp_path / "data")
    data_kwargs = {
        "dataset": "custom",
        "files": files,
        "fields": CUSTOM_FIELDS,
        "batch_size": 32,
        "block_size": 2048,
        "cache": str(tmp_path / "cache"),
    }
    cfg = {
        "name": "ctr-predict",
        "seed": 0,
        "output_dir": str(tmp_path / "runs"),
        "model": {"name": "finalmlp", "kwargs": {"embedding_dim": 4, "mlp1_hidden_dims": [8], "mlp2_hidden_dims": [8]}},
        "data": {"name": "ctr", "kwargs": data_kwargs},
        "task": {"name": "ctr", "optimizer": "adam", "lr": 0.01},
        "trainer": quiet_trainer(
            max_epochs=2,
            num_sanity_val_steps=0,
            loggers=[],
            checkpoint={"monitor": None, "save_top_k": 1, "save_last": True},
        ),
    }
    res = run_experiment(ExperimentConfig.from_dict(cfg), data_dir=tmp_path)
    return res, files


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny training run, exported with ``gatelab export`` (shared by the tests below)."""
    from gatelab.core.harness.cli import main

    tmp = tmp_path_factory.mktemp("ctr_predict")
    res, files = _train(tmp)
    out = tmp / "model"
    assert main(["export", str(res.last_checkpoint), str(out)]) == 0
    # the same model for data whose rows carry a declared id column (preprocessing id_columns)
    with_ids = tmp / "model-ids"
    shutil.copytree(out, with_ids)
    prep = json.loads((with_ids / "preprocessing.json").read_text())
    (with_ids / "preprocessing.json").write_text(json.dumps({**prep, "id_columns": ["rid"]}))
    return res, files, out, tmp


def _read(path):
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["row_id", "score"]
    return [r[0] for r in rows[1:]], np.array([float(r[1]) for r in rows[1:]])


def test_export_predict_equals_the_trained_model_on_the_encoded_split(trained, capsys):
    from gatelab.core.harness.cli import main

    res, files, model_dir, tmp = trained
    prep = load_preprocessing(model_dir)
    assert prep["kind"] == "ctr" and prep["id_columns"] == []
    assert [f["name"] for f in prep["fields"]] == ["user", "item", "price", "tags"]
    assert set(prep["vocab"]) == {"user", "item", "tags"} and "u3" in prep["vocab"]["user"]
    price = next(f for f in prep["fields"] if f["name"] == "price")
    assert price["normalizer"] == "standard" and price["stats"]["std"] > 0

    out = tmp / "scores.csv"
    argv = ["predict", "--model", str(model_dir), "--input", files["test"], "--output", str(out)]
    assert main([*argv, "--batch-size", "7", "--num-threads", "1", "--no-progress"]) == 0
    assert "80 rows" in capsys.readouterr().out
    ids, scores = _read(out)
    assert ids == [str(k) for k in range(80)]  # no id column declared: the 0-based row index
    # the same rows as the training run encoded them (its test split), through the trained model
    dm = res.datamodule
    arrays = dm.encoded["test"].arrays()
    model = res.task.model.eval()
    with torch.no_grad():
        want = torch.sigmoid(
            model(**{k: torch.from_numpy(np.asarray(a)).long() if k != "numeric" else torch.from_numpy(np.asarray(a))
                     for k, a in arrays.items() if k != "label"})
        ).numpy()
    np.testing.assert_allclose(scores, want, rtol=1e-6, atol=1e-7)
    assert scores.std() > 0.01  # a trained model, not a constant


def test_declared_id_columns_and_parquet_input(trained, tmp_path):
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from gatelab.recsys.predict import score_file

    _, files, model_dir, _ = trained
    model = from_pretrained(model_dir.parent / "model-ids")
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    opts = PredictOptions(batch_size=16, progress=False)
    score_file(model, files["valid"], a, opts)
    table = pcsv.read_csv(files["valid"], convert_options=pcsv.ConvertOptions(strings_can_be_null=True,
                          column_types={c: "string" for c in ("user", "item", "tags", "rid", "price")}))
    pq.write_table(table.drop(["label"]), tmp_path / "valid.parquet")
    score_file(model, tmp_path / "valid.parquet", b, opts)
    ids_a, sa = _read(a)
    ids_b, sb = _read(b)
    assert ids_a == ids_b == [f"valid-{i}" for i in range(80)]
    np.testing.assert_array_equal(sa, sb)
    model.preprocessing = {**model.preprocessing, "id_columns": ["rid", "user"]}
    score_file(model, files["valid"], a, opts)
    ids, sc = _read(a)
    users = [line.split(",")[2] for line in open(files["valid"]).read().splitlines()[1:]]
    assert ids == [f"valid-{i}|{u}" for i, u in enumerate(users)]
    np.testing.assert_array_equal(sc, sa)


def test_unseen_categories_are_counted_and_mapped_to_oov(trained, tmp_path, caplog):
    from gatelab.recsys.predict import score_file

    _, _, model_dir, _ = trained
    model = from_pretrained(model_dir)
    new = write_custom_ctr(tmp_path, {"new": 200}, seed=5, users=20)["new"]
    with caplog.at_level(logging.WARNING, logger="gatelab.recsys"):
        rep = score_file(model, new, tmp_path / "s.csv", PredictOptions(progress=False))
    lines = open(new).read().splitlines()[1:]
    unseen_users = sum(int(line.split(",")[2][1:]) >= 10 for line in lines)
    assert rep.rows == 200 and rep.oov["user"] == unseen_users > 0
    assert "tags" not in rep.oov  # every tag 0-5 was seen in training
    assert rep.missing["price"] == sum(line.split(",")[4] == "" for line in lines)
    assert "unseen in training mapped to the OOV bucket" in caplog.text and f"user {unseen_users}" in caplog.text
    # two unseen users are the same OOV index (same score); an empty cell too; a seen user differs
    two = tmp_path / "two.csv"
    two.write_text("rid,user,item,price,tags\na,zzz,i1,1.0,1\nb,yyy,i1,1.0,1\nc,,i1,1.0,1\nd,u1,i1,1.0,1\n")
    rep = score_file(model, two, tmp_path / "two_s.csv", PredictOptions(progress=False))
    assert rep.oov == {"user": 2} and rep.missing == {"user": 1}
    _, s = _read(tmp_path / "two_s.csv")
    assert s[0] == s[1] == s[2] != s[3]


def test_input_errors_name_file_line_and_column(trained, tmp_path, capsys):
    from gatelab.core.harness.cli import main

    _, _, model_dir, _ = trained
    model_dir = model_dir.parent / "model-ids"
    bad = tmp_path / "nan.csv"
    bad.write_text("rid,user,item,price,tags\nr0,u1,i2,1.5,1^2\nr1,u2,i3,nan,3\n")
    argv = ["predict", "--model", str(model_dir), "--output", str(tmp_path / "o.csv"), "--no-progress"]
    assert main([*argv, "--input", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:3: column 'price'" in err and "not a finite number" in err
    assert not (tmp_path / "o.csv").exists()  # nothing half-written

    bad.write_text("rid,user,tags\nr0,u1,1^2\n")
    assert main([*argv, "--input", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "missing column(s) ['item', 'price']" in err and "'item' for field item (categorical)" in err

    bad.write_text("rid,user,item,price,tags\nr0,u1,i2,abc,1\n")
    assert main([*argv, "--input", str(bad)]) == 2
    assert f"{bad}:2" in capsys.readouterr().err

    bad.write_text("rid,user,item,price,tags\n,u1,i2,1.0,1\n")
    assert main([*argv, "--input", str(bad)]) == 2
    assert f"{bad}:2: empty id in column 'rid'" in capsys.readouterr().err


def test_a_model_without_preprocessing_says_what_is_missing(trained, tmp_path):
    from gatelab.recsys.predict import score_file

    _, files, model_dir, _ = trained
    model = from_pretrained(model_dir)
    model.preprocessing = None
    with pytest.raises(ConfigError, match="feature spec and vocabularies are missing"):
        score_file(model, files["test"], tmp_path / "o.csv", PredictOptions(progress=False))
    prep = json.loads((model_dir / "preprocessing.json").read_text())
    prep["vocab"]["user"] = prep["vocab"]["user"][:-1]
    model.preprocessing = prep
    with pytest.raises(ConfigError, match="vocab\\['user'\\] has"):
        score_file(model, files["test"], tmp_path / "o.csv", PredictOptions(progress=False))
