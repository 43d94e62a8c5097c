"""VLTask: loss vs hand computation, init from a text checkpoint, end-to-end Lightning runs."""

from __future__ import annotations

import pytest
import torch
from trainer_fixtures import quiet_trainer

from gatelab.core import ConfigError
from gatelab.core.harness import ExperimentConfig, run_experiment
from gatelab.multimodal.models import GatedVLDecoder
from gatelab.multimodal.tasks.vl import VLTask, lm_nll, load_init_weights


def test_lm_nll_matches_a_loop():
    logits = torch.randn(2, 4, 7)
    ids = torch.tensor([[1, 3, 4, 2], [1, 5, 2, 0]])
    mask = torch.tensor([[True] * 4, [True, True, True, False]])
    s, n = lm_nll(logits, ids, mask)
    want, count = 0.0, 0
    for b in range(2):
        for t in range(1, 4):
            if mask[b, t]:
                want -= torch.log_softmax(logits[b, t - 1], -1)[ids[b, t]].item()
                count += 1
    assert s.item() == pytest.approx(want, rel=1e-5) and n.item() == count == 5


def test_load_init_weights_allows_only_visual_differences(tmp_path):
    text = GatedVLDecoder(vocab_size=50, d_model=16, num_heads=2, num_layers=2, image_dim=8)
    torch.save({"state_dict": {f"model.{k}": v for k, v in text.state_dict().items()}}, tmp_path / "t.ckpt")
    other = GatedVLDecoder(vocab_size=50, d_model=16, num_heads=2, num_layers=2, image_dim=12, fusion="add")
    info = load_init_weights(other, tmp_path / "t.ckpt")
    torch.testing.assert_close(other.tok_emb.weight, text.tok_emb.weight)
    torch.testing.assert_close(other.layers[1].ffn.fc1.weight, text.layers[1].ffn.fc1.weight)
    assert "image_encoder.proj.weight" in info["skipped"]  # 8 vs 12 features: fresh init kept
    assert any(".gate." in k for k in info["unexpected"])
    assert not torch.equal(other.image_encoder.proj.weight[:, :8], text.image_encoder.proj.weight)
    wider = GatedVLDecoder(vocab_size=60, d_model=16, num_heads=2, num_layers=2)
    with pytest.raises(ConfigError, match=r"tok_emb\.weight"):
        load_init_weights(wider, tmp_path / "t.ckpt")
    deeper = GatedVLDecoder(vocab_size=50, d_model=16, num_heads=2, num_layers=3)
    with pytest.raises(ConfigError, match="outside the visual path"):
        load_init_weights(deeper, tmp_path / "t.ckpt")
    with pytest.raises(ConfigError, match="not found"):
        load_init_weights(deeper, tmp_path / "missing.ckpt")


def _cfg(root, name, data, init=None, model="vl-gated-decoder"):
    return ExperimentConfig.from_dict(
        {
            "name": name,
            "seed": 0,
            "output_dir": str(root),
            "test": False,
            "model": {
                "name": model,
                "kwargs": {"d_model": 16, "num_layers": 1, "num_heads": 2, "dropout": 0.0},
            },
            "data": data,
            "task": {"name": "vl-lm", "lr": 3e-3, "kwargs": {"init_from": init}},
            "trainer": quiet_trainer(
                max_epochs=1,
                num_sanity_val_steps=0,
                early_stopping=None,
                loggers=["csv"],
            ),
        }
    )


def test_text_then_shapes_through_the_harness(vl_data_dir, tmp_path):
    tok = tmp_path / "tok.json"
    text = {
        "name": "vl-text",
        "kwargs": {
            "vocab_size": 400,
            "seq_len": 32,
            "batch_size": 8,
            "save_tokenizer": str(tok),
            "val_fraction": 0.1,
            "test_fraction": 0.1,
            "verify": False,
        },
    }
    res = run_experiment(_cfg(tmp_path, "text", text), data_dir=vl_data_dir)
    assert "val/text_nll" in res.metrics and "val/caption_nll" not in res.metrics
    task = VLTask.load_from_checkpoint(res.best_checkpoint, map_location="cpu", weights_only=True)
    assert task.model.tokenizer.to_str() == res.datamodule.tokenizer.to_str()

    shapes = {
        "name": "vl-shapes",
        "kwargs": {
            "tokenizer": str(tok),
            "n_train": 32,
            "n_val": 8,
            "n_test": 8,
            "text_ratio": 1.0,
            "seq_len": 32,
            "batch_size": 8,
            "verify": False,
        },
    }
    res2 = run_experiment(
        _cfg(tmp_path, "shapes", shapes, init=res.best_checkpoint, model="vl-nogate-decoder"),
        data_dir=vl_data_dir,
    )
    assert {"train/text_nll", "val/caption_nll", "val/contrastive"} <= set(res2.metrics)
    m2 = VLTask.load_from_checkpoint(res2.best_checkpoint, map_location="cpu", weights_only=True).model
    assert m2.fusion == "add" and m2.image_encoder.image_dim == 192

    # a data module with another tokenizer cannot start from that checkpoint
    other = dict(shapes, kwargs={**shapes["kwargs"], "tokenizer": None, "vocab_size": 400})
    with pytest.raises(ConfigError, match="different tokenizer"):
        run_experiment(_cfg(tmp_path, "bad", other, init=res.best_checkpoint), data_dir=vl_data_dir)
