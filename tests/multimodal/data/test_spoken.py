"""The vl-spoken data module: spoken captions with their images (stand-in synthesiser, no espeak-ng)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from speech_fixtures import fake_tts

from gatelab.core.harness.errors import DataError
from gatelab.multimodal.data.datamodule import StreamDropout, collate, vl_spoken_datamodule
from gatelab.multimodal.data.speech import prepare_spoken_captions


@pytest.fixture(scope="module")
def speech_root(tmp_path_factory, vl_data_dir):
    root = tmp_path_factory.mktemp("spoken")
    prepare_spoken_captions(root, sources=("shapes", "coco"), voices=("a",), speeds=(150, 170), snrs=(None,),
                            shapes_train=8, shapes_val=2, shapes_test=3, coco_dir=vl_data_dir / "coco_mini",
                            synthesize=fake_tts)  # fmt: skip
    return root


def _dm(root, data_dir=None, **kw):
    kw = {"vocab_size": 300, "num_mels": 16, "batch_size": 4, "verify": False, **kw}
    return vl_spoken_datamodule(data_dir if data_dir is not None else root, speech_dir=str(root), **kw)


def test_batches_carry_audio_and_training_drops_one_stream(speech_root):
    dm = _dm(speech_root)
    assert [len(dm.captions[s].captions) for s in ("train", "val", "test")] == [8, 2, 3]
    assert dm.model_kwargs()["audio_mels"] == 16
    assert dm.preprocessing()["audio"] == {"sample_rate": 16000, "kind": "logmel", "num_mels": 16, "win_ms": 25.0,
                                           "hop_ms": 10.0, "cmvn": True}  # fmt: skip
    val = next(iter(dm.val_dataloader()))
    assert "image_mask" not in val and "audio_mask" not in val  # evaluation sees every stream
    cs = dm.captions["val"]
    for i in range(2):
        n = int(val["audio_lengths"][i])
        assert torch.equal(val["audio"][i, :n], cs.audio[i]) and (val["audio"][i, n:] == 0).all()
    torch.manual_seed(0)
    batch = next(iter(dm.train_dataloader()))
    assert batch["audio"].shape[0] == 4 and batch["audio"].shape[2] == 16
    assert (batch["image_mask"] | batch["audio_mask"]).all()  # never both streams dropped


def test_stream_dropout_probabilities_and_errors():
    items = [{"ids": torch.tensor([1, 5, 2]), "image": torch.zeros(2, 3), "audio": torch.randn(4 + i, 6)} for i in range(64)]
    torch.manual_seed(0)
    b = StreamDropout(1.0, 0.0, None)(items)
    assert not b["image_mask"].any() and b["audio_mask"].all()
    b = StreamDropout(0.0, 1.0, None)(items)
    assert b["image_mask"].all() and not b["audio_mask"].any()
    b = StreamDropout(0.25, 0.25, None)(items)
    assert 0 < int((~b["image_mask"]).sum()) < 32 and 0 < int((~b["audio_mask"]).sum()) < 32
    assert torch.equal(b["audio"], collate(items)["audio"])  # no SpecAugment: the frames untouched
    with pytest.raises(ValueError, match=r"drop_image \+ drop_audio <= 1, got 0.6, 0.6"):
        StreamDropout(0.6, 0.6, None)


def test_coco_splits_by_image(speech_root, vl_data_dir):
    dm = _dm(speech_root, vl_data_dir, source="coco", coco_image_size=16, patch=8, val_images=40, max_eval=12)
    train, val, test = (dm.captions[s] for s in ("train", "val", "test"))
    assert len(train.captions) == 20 and len(train.images) == 4  # 4 train2017 images x 5 captions
    assert len(val.captions) == 12 and len(val.images) == 3  # --max-eval: the first 12 captions
    assert len(test.captions) == 12 and len(test.images) == 3  # val2017 images 40..43
    assert test.caption_image.tolist() == [0] * 5 + [1] * 5 + [2] * 2
    assert dm.model_kwargs()["max_image_tokens"] == 4  # 16 px / 8 px patches


def test_spoken_caption_errors(speech_root, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(speech_root / "spoken_captions", bad / "spoken_captions")
    manifest = bad / "spoken_captions" / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    rec = json.loads(lines[3])
    rec["caption"] = "a wrong caption."
    lines[3] = json.dumps(rec)
    manifest.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"{rec['id']}: caption 'a wrong caption.' is not shapes train caption"):
        _dm(bad)
    with pytest.raises(DataError, match="gatelab prepare spoken-captions"):
        _dm(tmp_path / "empty")
    novel = tmp_path / "noval"
    prepare_spoken_captions(novel, sources=("shapes",), voices=("a",), speeds=(150,), snrs=(None,), shapes_train=4,
                            shapes_val=0, shapes_test=2, synthesize=fake_tts)  # fmt: skip
    with pytest.raises(DataError, match="no spoken shapes val captions; prepare them with --shapes-val N"):
        _dm(novel)
    with pytest.raises(DataError, match="no 'coco' captions were spoken"):
        _dm(novel, source="coco")
    with pytest.raises(ValueError, match=r"data\.kwargs\.source must be 'shapes' or 'coco', got 'flickr'"):
        _dm(novel, source="flickr")
