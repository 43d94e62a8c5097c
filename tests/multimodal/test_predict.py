"""``gatelab predict`` for the VL decoders: a real tiny training run -> export -> captions JSONL;
features models; the input errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from trainer_fixtures import quiet_trainer

from gatelab.core.config import ConfigError
from gatelab.core.harness.predict import PredictOptions
from gatelab.core.pretrained import from_pretrained, load_preprocessing
from gatelab.core.registry import create_model
from gatelab.multimodal.data.datamodule import _image_features
from gatelab.multimodal.data.shapes import make_shapes
from gatelab.multimodal.data.tokenizer import train_bpe


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """vl-shapes, one epoch of a tiny gated decoder, exported with ``gatelab export``."""
    from gatelab.core.harness import ExperimentConfig, run_experiment
    from gatelab.core.harness.cli import main

    tmp = tmp_path_factory.mktemp("vl_predict")
    cfg = {
        "name": "vl-predict",
        "seed": 0,
        "output_dir": str(tmp / "runs"),
        "test": False,
        "model": {"name": "vl-gated-decoder", "kwargs": {"d_model": 16, "num_layers": 2, "num_heads": 2, "dropout": 0.0}},
        "data": {
            "name": "vl-shapes",
            "kwargs": {"vocab_size": 300, "n_train": 48, "n_val": 8, "n_test": 8, "image_size": 16, "patch": 8,
                       "seq_len": 48, "two_object_prob": 0.0, "batch_size": 16, "verify": False},
        },
        "task": {"name": "vl-lm", "lr": 3e-3},
        "trainer": quiet_trainer(
            max_epochs=1, num_sanity_val_steps=0, early_stopping=None, loggers=[],
            checkpoint={"monitor": None, "save_top_k": 1, "save_last": True},
        ),
    }  # fmt: skip
    res = run_experiment(ExperimentConfig.from_dict(cfg), data_dir=tmp)
    out = tmp / "model"
    assert main(["export", str(res.last_checkpoint), str(out)]) == 0
    return res, out, tmp


def _write_images(folder, n=3, seed=7, size=16):
    d = make_shapes(n, size=size, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        arr = (d.images[i].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
        Image.fromarray(arr).save(folder / f"img{i}.png")
    return d


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_export_then_predict_captions_a_folder(exported, tmp_path, capsys):
    from gatelab.core.harness.cli import main

    res, model_dir, _ = exported
    prep = load_preprocessing(model_dir)
    assert prep == {
        "kind": "vl", "format": 1, "max_len": 48,
        "image": {"source": "pixels", "size": 16, "resize": "center-crop-bicubic", "channels": 3,
                  "mean": [0.5] * 3, "std": [0.5] * 3, "layout": "patches", "patch": 8},
    }  # fmt: skip
    d = _write_images(tmp_path / "imgs")
    out = tmp_path / "captions.jsonl"
    argv = ["predict", "--model", str(model_dir), "--input", str(tmp_path / "imgs"), "--output", str(out)]
    assert main([*argv, "--batch-size", "2", "--num-threads", "1", "--no-progress"]) == 0
    assert "3 images" in capsys.readouterr().out
    lines = _lines(out)
    assert [r["id"] for r in lines] == ["img0.png", "img1.png", "img2.png"]
    # the same captions as the trained model generates from the training pipeline's image tokens
    model = res.task.model.eval()
    feats, _ = _image_features(d.images.clone(), "patches", 8)
    want = model.generate(feats, max_new_tokens=48, return_gates=True)
    for k, rec in enumerate(lines):
        n = int(want.lengths[k])
        assert rec["token_ids"] == want.sequences[k, :n].tolist() and rec["caption"] == want.texts[k]
        assert len(rec["tokens"]) == len(rec["gates"]) == n and all(len(g) == 2 for g in rec["gates"])
        np.testing.assert_allclose(rec["gates"], want.gates[k, :n, :, 0].numpy(), atol=1e-6)
        assert all(0 < g < 1 for row in rec["gates"] for g in row)
        assert rec["finished"] == (rec["tokens"][-1] == "[EOS]") and rec["prompt"] is None


def test_manifest_prompts_and_a_single_image(exported, tmp_path):
    from gatelab.multimodal.predict import predict_path

    _, model_dir, _ = exported
    model = from_pretrained(model_dir)
    _write_images(tmp_path / "imgs", n=2)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        json.dumps({"image": "imgs/img0.png", "prompt": "a red"}) + "\n\n"
        + json.dumps({"image": "imgs/img1.png", "id": "second"}) + "\n"
    )
    opts = PredictOptions(batch_size=4, progress=False)
    assert predict_path(model, manifest, tmp_path / "a.jsonl", opts) == 2
    a = _lines(tmp_path / "a.jsonl")
    assert [r["id"] for r in a] == [1, "second"] and a[0]["prompt"] == "a red"
    # a prompt continues: same as generate() on that prompt; the prompt-less row as a lone image
    # (each row has all its room, max_len - prompt + 1 tokens, whatever else is in the run)
    assert predict_path(model, tmp_path / "imgs" / "img1.png", tmp_path / "b.jsonl", opts) == 1
    b = _lines(tmp_path / "b.jsonl")
    assert b[0]["id"] == "img1.png" and b[0]["token_ids"] == a[1]["token_ids"]
    from gatelab.multimodal.predict import VLItem, image_input

    x = image_input(VLItem(0, tmp_path / "imgs" / "img0.png"), model.preprocessing["image"])
    prompt_len = 1 + len(model.tokenizer.encode("a red").ids) - 2  # [BOS] tokens (the template adds BOS, EOS)
    want = model.generate(x[None], "a red", max_new_tokens=48 - prompt_len + 1)
    assert a[0]["token_ids"] == want.sequences[0, : int(want.lengths[0])].tolist()


def _features_model(tmp_path, fusion="gate", gate_mode="scalar"):
    tok = train_bpe(["a red circle on top", "a blue square at the bottom"] * 10, vocab_size=280)
    torch.manual_seed(0)
    name = {"gate": "vl-gated-decoder", "add": "vl-nogate-decoder"}[fusion]
    model = create_model(name, vocab_size=tok.get_vocab_size(), d_model=16, num_layers=2, num_heads=2, image_dim=6,
                         max_len=12, max_image_tokens=4, gate_mode=gate_mode).eval()  # fmt: skip
    model.set_tokenizer(tok)
    prep = {"kind": "vl", "format": 1, "max_len": 12, "image": {"source": "features", "image_dim": 6, "tokens": None}}
    model.save_pretrained(tmp_path / "feat-model", preprocessing=prep)
    return model


@pytest.mark.parametrize("fusion,gate_mode", [("gate", "vector"), ("add", "scalar")])
def test_features_model_reads_npy_rows(tmp_path, fusion, gate_mode):
    from gatelab.core.harness.predict import predict

    model = _features_model(tmp_path, fusion, gate_mode)
    feats = np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32)
    np.save(tmp_path / "f.npy", feats)
    rep = predict(tmp_path / "feat-model", tmp_path / "f.npy", tmp_path / "o.jsonl", batch_size=2, progress=False)
    assert rep.items == 3 and rep.unit == "images"
    lines = _lines(tmp_path / "o.jsonl")
    want = model.generate(torch.from_numpy(feats), max_new_tokens=12, return_gates=fusion == "gate")
    for k, rec in enumerate(lines):
        n = int(want.lengths[k])
        assert rec["id"] == k and rec["token_ids"] == want.sequences[k, :n].tolist()
        if fusion == "gate":
            assert rec["gate_reduce"] == "mean"
            np.testing.assert_allclose(rec["gates"], want.gates[k, :n].mean(-1).numpy(), atol=1e-6)
        else:
            assert rec["gates"] is None


def test_input_errors(exported, tmp_path, capsys):
    from gatelab.core.harness.cli import main
    from gatelab.multimodal.predict import predict_path

    _, model_dir, _ = exported
    argv = ["predict", "--model", str(model_dir), "--output", str(tmp_path / "o.jsonl"), "--no-progress"]
    (tmp_path / "bad.png").write_bytes(b"not an image")
    assert main([*argv, "--input", str(tmp_path / "bad.png")]) == 2
    assert f"{tmp_path / 'bad.png'}: cannot read as an image" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()
    (tmp_path / "m.jsonl").write_text('{"image": "missing.png"}\n')
    assert main([*argv, "--input", str(tmp_path / "m.jsonl")]) == 2
    assert f"{tmp_path / 'm.jsonl'}:1: image file" in capsys.readouterr().err
    (tmp_path / "m.jsonl").write_text('{"picture": "x.png"}\n')
    assert main([*argv, "--input", str(tmp_path / "m.jsonl")]) == 2
    assert "unknown key(s) ['picture']" in capsys.readouterr().err
    np.save(tmp_path / "f.npy", np.zeros((2, 6), np.float32))
    assert main([*argv, "--input", str(tmp_path / "f.npy")]) == 2
    assert "not .npy features" in capsys.readouterr().err

    model = _features_model(tmp_path)
    np.save(tmp_path / "wide.npy", np.zeros((2, 7), np.float32))
    feat_argv = ["predict", "--model", str(tmp_path / "feat-model"), "--output", str(tmp_path / "o.jsonl")]
    assert main([*feat_argv, "--input", str(tmp_path / "wide.npy")]) == 2
    assert f"{tmp_path / 'wide.npy'} row 0: features of shape (7,), expected [6]" in capsys.readouterr().err
    np.save(tmp_path / "long.npy", np.zeros((1, 5, 6), np.float32))  # 5 tokens > max_image_tokens=4
    assert main([*feat_argv, "--input", str(tmp_path / "long.npy")]) == 2
    assert "5 feature tokens > the model's max_image_tokens=4" in capsys.readouterr().err
    model.preprocessing = None
    with pytest.raises(ConfigError, match=r"no preprocessing\.json"):
        predict_path(model, tmp_path / "f.npy", tmp_path / "o.jsonl", PredictOptions(progress=False))


def test_pixel_model_with_a_timm_backbone(tmp_path):
    """layout "pixels": the normalised [3, S, S] image goes to the backbone as it is."""
    from gatelab.multimodal.data.datamodule import pixel_preprocessing
    from gatelab.multimodal.predict import predict_path

    tok = train_bpe(["a red circle on top", "a blue square at the bottom"] * 10, vocab_size=280)
    torch.manual_seed(0)
    model = create_model("vl-gated-decoder", vocab_size=tok.get_vocab_size(), d_model=16, num_layers=1, num_heads=2,
                         image_backbone="resnet10t", max_len=10, dropout=0.0).eval()  # fmt: skip
    model.set_tokenizer(tok)
    model.preprocessing = {"kind": "vl", "format": 1, "max_len": 10, "image": pixel_preprocessing(32, "pixels", 8)}
    _write_images(tmp_path / "imgs", n=2, size=32)
    assert predict_path(model, tmp_path / "imgs", tmp_path / "o.jsonl", PredictOptions(progress=False)) == 2
    rec = _lines(tmp_path / "o.jsonl")[1]
    x = (torch.from_numpy(np.asarray(Image.open(tmp_path / "imgs" / "img1.png"), dtype=np.float32)).permute(2, 0, 1) / 255 - 0.5) / 0.5
    want = model.generate(x[None], max_new_tokens=10)
    assert rec["token_ids"] == want.sequences[0, : int(want.lengths[0])].tolist()
    # patches preprocessing does not fit a backbone model: said before any image is read
    model.preprocessing["image"] = pixel_preprocessing(32, "patches", 8)
    with pytest.raises(ConfigError, match="do not fit"):
        predict_path(model, tmp_path / "imgs", tmp_path / "o.jsonl", PredictOptions(progress=False))
