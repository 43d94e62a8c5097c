"""gatelab repro vl-audio on spoken shapes and COCO-mini captions made by a stand-in synthesiser
(WAVs built with torch in the test, no espeak-ng): rows through the recipe runner, and a run
killed mid-training that ``--resume-training`` finishes with the uninterrupted run's rows."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
from speech_fixtures import fake_tts

from gatelab.core.harness.cli import main as cli
from gatelab.multimodal.data.speech import prepare_spoken_captions
from gatelab.multimodal.recipes.vl_audio import CLASSES, STREAMS, VL_AUDIO_RECIPE, vl_audio_cells

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "core" / "harness"))
import resume_cases as rc


@pytest.fixture(scope="module")
def speech_dir(tmp_path_factory, vl_data_dir):
    root = tmp_path_factory.mktemp("speech")
    prepare_spoken_captions(root, sources=("shapes", "coco"), voices=("a", "b"), speeds=(150, 170),
                            snrs=(None, 20.0), shapes_train=24, shapes_val=4, shapes_test=8,
                            coco_dir=vl_data_dir / "coco_mini", synthesize=fake_tts)  # fmt: skip
    return root


def _rows(folder: Path, table: str) -> list[dict]:
    return [json.loads(line) for line in (folder / f"{table}.jsonl").read_text().splitlines()]


def test_quick_table_rows_on_shapes_and_coco(speech_dir, vl_data_dir, tmp_path):
    rc_ = cli(["repro", "vl-audio", "--quick", "--seeds", "0", "--dataset", "shapes", "coco-mini",
               "--data-dir", str(vl_data_dir), "--speech-dir", str(speech_dir), "--skip-checksums",
               "--output-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path)])  # fmt: skip
    assert rc_ == 0
    rows = _rows(tmp_path, "vl-audio-quick")
    assert [(r["dataset"], r["variant"]) for r in rows] == [
        ("shapes-spoken", "all-streams"), ("shapes-spoken", "blank-image"),
        ("coco-mini-spoken", "all-streams"), ("coco-mini-spoken", "blank-image"),
    ]  # fmt: skip
    assert rows[0]["config_hash"] == rows[1]["config_hash"] != rows[2]["config_hash"] == rows[3]["config_hash"]
    for full in (rows[0], rows[2]):
        for k in ("ppl_all", "ppl_noimage", "ppl_noaudio", "ppl_textonly"):
            assert math.isfinite(full[k]) and full[k] > 1.0
        assert 0.0 <= full["audio_image_r@1"] <= full["audio_image_r@5"] <= 100.0
        assert "max_epochs=1" in full["budget"]
    assert "8 test spoken captions (8 test images)" in rows[0]["note"]
    # COCO-mini fixture: val2017 has 44 images, the first 39 validate, 5 x 5 captions test
    assert "20 train / 25 test spoken captions (5 test images)" in rows[2]["note"]
    for r in rows:
        classes = [c for c in CLASSES if f"gate_image_{c}" in r]
        assert {"function", "punct"} <= set(classes)
        for c in classes:
            assert abs(sum(r[f"gate_{st}_{c}"] for st in STREAMS) - 1.0) < 1e-6  # softmax over 3 streams
    assert {"colour", "shape", "position"} <= {c for c in CLASSES if f"gate_image_{c}" in rows[0]}
    # the blank image changes the gate weights, not the row key or the config
    assert rows[0]["gate_image_colour"] != rows[1]["gate_image_colour"]
    assert "ppl_all" not in rows[1] or rows[1]["ppl_all"] is None
    assert (tmp_path / "vl-audio-quick.md").is_file()


_TINY = ["--d-model", "16", "--num-layers", "1", "--num-heads", "2", "--num-audio-layers", "1", "--num-mels", "20",
         "--epochs", "2", "--batch-size", "4", "--max-train", "24", "--max-test", "8", "--warmup", "0"]  # fmt: skip


def test_killed_recipe_run_resumes_to_the_same_rows(speech_dir, vl_data_dir, tmp_path, monkeypatch):
    """The recipe's run is killed after 8 of its 12 steps (newest checkpoint: the end of epoch 0);
    ``--resume-training`` continues it and the rows equal the uninterrupted run's exactly."""
    import gatelab.core.harness.experiment as experiment

    def run(results: Path, *extra: str) -> int:
        return cli(["repro", "vl-audio", "--seeds", "3", "--dataset", "shapes", *_TINY, "--data-dir",
                    str(vl_data_dir), "--speech-dir", str(speech_dir), "--output-dir", str(results / "runs"),
                    "--results-dir", str(results), *extra])  # fmt: skip

    assert run(tmp_path / "a") == 0
    real = experiment.run_experiment

    def killed(*args, **kw):
        return real(*args, **{**kw, "callbacks": [*kw.get("callbacks", ()), rc.stop_at(8)]})

    monkeypatch.setattr(experiment, "run_experiment", killed)
    with pytest.raises(rc.Killed):
        run(tmp_path / "b")
    monkeypatch.setattr(experiment, "run_experiment", real)
    assert not (tmp_path / "b" / "vl-audio.jsonl").exists()
    assert run(tmp_path / "b", "--resume-training") == 0
    a, b = _rows(tmp_path / "a", "vl-audio"), _rows(tmp_path / "b", "vl-audio")
    skip = {"wall_s", "note", "date", "command", "duration_s"}
    for ra, rb in zip(a, b, strict=True):
        keys = {k for k in ra if k not in skip and not isinstance(ra[k], dict)}
        assert {k: ra[k] for k in keys} == {k: rb.get(k) for k in keys}
    run_a, run_b = (Path(r["note"].split(";")[0].removeprefix("run ")) for r in (a[0], b[0]))
    assert run_b.name == "version_0"  # continued in the killed run's directory
    same = rc.compare_runs(run_a, run_b)
    assert same["weights_equal"] and same["metrics_equal"] and same["best_ckpt_equal"]


def test_cells_and_config():
    opts = {"dataset": ["coco-mini", "shapes"], "seeds": [0, 1], "quick": False, "epochs": 3}
    cells = vl_audio_cells(opts)
    assert [(c[0].dataset, c[0].seed, [x.variant for x in c]) for c, _ in cells] == [
        ("coco-mini-spoken", 0, ["all-streams", "blank-image"]), ("coco-mini-spoken", 1, ["all-streams", "blank-image"]),
        ("shapes-spoken", 0, ["all-streams", "blank-image"]), ("shapes-spoken", 1, ["all-streams", "blank-image"]),
    ]  # fmt: skip
    with pytest.raises(ValueError, match=r"--dataset: unknown \['flickr'\]"):
        vl_audio_cells({**opts, "dataset": ["flickr"]})
    full = {"output_dir": "o", "speech_dir": "/s", "d_model": 8, "num_layers": 1, "num_heads": 2, "num_audio_layers": 1,
            "num_mels": 20, "drop_image": 0.1, "drop_audio": 0.2, "max_train": None, "max_test": None,
            "vocab_size": 300, "batch_size": 4, "lr": 1e-3, "warmup": 5, "skip_checksums": False}  # fmt: skip
    (cell, *_), budget = cells[0]
    cfg = VL_AUDIO_RECIPE.config(cell, full, budget)
    assert cfg["model"]["name"] == "vl-gated-decoder" and cfg["data"]["name"] == "vl-spoken"
    assert cfg["data"]["kwargs"]["source"] == "coco" and cfg["data"]["kwargs"]["truncate_captions"] is True
    assert cfg["trainer"]["max_epochs"] == 3 and cfg["trainer"]["checkpoint"]["every_n_train_steps"] == 20
    assert "speech_dir" not in VL_AUDIO_RECIPE.hashed(cfg)["data"]["kwargs"]  # a path, not a setting
    # the seeds of a cell share one config hash (the md aggregates them), the datasets do not
    (seed1, *_), _ = cells[1]
    cfg1 = VL_AUDIO_RECIPE.config(seed1, full, budget)
    assert cfg1["data"]["kwargs"]["seed"] == cfg1["seed"] == 1 and cfg["data"]["kwargs"]["seed"] == 0
    assert VL_AUDIO_RECIPE.hashed(cfg1) == VL_AUDIO_RECIPE.hashed(cfg)
    (shapes, *_), _ = cells[2]
    assert VL_AUDIO_RECIPE.hashed(VL_AUDIO_RECIPE.config(shapes, full, budget)) != VL_AUDIO_RECIPE.hashed(cfg)


def test_speech_dir_falls_back_to_the_environment(monkeypatch):
    from gatelab.multimodal.recipes.vl_audio import SPEECH_DIR_ENV, speech_dir_of

    monkeypatch.delenv(SPEECH_DIR_ENV, raising=False)
    assert speech_dir_of({"speech_dir": None}) is None  # the data directory
    monkeypatch.setenv(SPEECH_DIR_ENV, "/env/speech")
    assert speech_dir_of({"speech_dir": None}) == "/env/speech"
    assert speech_dir_of({"speech_dir": "/flag"}) == "/flag"  # the flag wins
    (cell, *_), budget = vl_audio_cells({"dataset": ["shapes"], "seeds": [0], "quick": False, "epochs": 1})[0]
    opts = {"output_dir": "o", "speech_dir": None, "d_model": 8, "num_layers": 1, "num_heads": 2,
            "num_audio_layers": 1, "num_mels": 20, "drop_image": 0.1, "drop_audio": 0.2, "max_train": None,
            "max_test": None, "vocab_size": 300, "batch_size": 4, "lr": 1e-3, "warmup": 5, "skip_checksums": False}  # fmt: skip
    assert VL_AUDIO_RECIPE.config(cell, opts, budget)["data"]["kwargs"]["speech_dir"] == "/env/speech"
