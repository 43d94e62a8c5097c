"""gatelab repro vl-audio --quick on spoken shapes captions made by a stand-in synthesiser."""

from __future__ import annotations

import json
import math
import shutil

import pytest
from speech_fixtures import fake_tts

from gatelab.core.harness.cli import main as cli
from gatelab.core.harness.errors import DataError
from gatelab.multimodal.data.speech import prepare_spoken_captions
from gatelab.multimodal.recipes.vl_audio import CLASSES, STREAMS, load_spoken_shapes


@pytest.fixture(scope="module")
def spoken_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("spoken")
    prepare_spoken_captions(root, sources=("shapes",), voices=("a", "b"), speeds=(150, 170), snrs=(None, 20.0),
                            shapes_train=24, shapes_val=0, shapes_test=8, synthesize=fake_tts)  # fmt: skip
    return root


def test_quick_table_rows(spoken_dir, tmp_path):
    rc = cli(["repro", "vl-audio", "--quick", "--seeds", "0", "--data-dir", str(spoken_dir),
              "--results-dir", str(tmp_path)])  # fmt: skip
    assert rc == 0
    rows = [json.loads(line) for line in (tmp_path / "vl-audio-quick.jsonl").read_text().splitlines()]
    assert [r["variant"] for r in rows] == ["all-streams", "blank-image"]
    assert rows[0]["config_hash"] == rows[1]["config_hash"]
    full = rows[0]
    for k in ("ppl_all", "ppl_noimage", "ppl_noaudio", "ppl_textonly"):
        assert math.isfinite(full[k]) and full[k] > 1.0
    assert 0.0 <= full["audio_image_r@1"] <= full["audio_image_r@5"] <= 100.0
    for r in rows:
        for c in ("colour", "shape", "function"):
            total = sum(r[f"gate_{st}_{c}"] for st in STREAMS)
            assert abs(total - 1.0) < 1e-6  # softmax weights over the three streams
    assert set(CLASSES) >= {"colour", "shape", "position"}
    assert (tmp_path / "vl-audio-quick.md").is_file()


def test_loader_checks_captions_against_the_regenerated_shapes(spoken_dir, tmp_path):
    data = load_spoken_shapes(spoken_dir, num_mels=40)
    assert len(data["train"].captions) == 24 and data["test"].images.shape[0] == 8
    assert data["train"].feats[0].shape[1] == 40
    bad = tmp_path / "bad"
    shutil.copytree(spoken_dir / "spoken_captions", bad / "spoken_captions")
    lines = (bad / "spoken_captions" / "manifest.jsonl").read_text().splitlines()
    rec = json.loads(lines[3])
    rec["caption"] = "a wrong caption."
    lines[3] = json.dumps(rec)
    (bad / "spoken_captions" / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"{rec['id']}: caption 'a wrong caption.' is not shapes train caption"):
        load_spoken_shapes(bad, num_mels=40)
    with pytest.raises(DataError, match="gatelab prepare spoken-captions"):
        load_spoken_shapes(tmp_path / "empty")


def test_recipe_nll_is_the_task_formula():
    import torch

    from gatelab.multimodal.recipes.vl_audio import lm_nll
    from gatelab.multimodal.tasks.vl import lm_nll as task_nll

    logits, ids = torch.randn(2, 5, 7), torch.randint(0, 7, (2, 5))
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    for a, b in zip(lm_nll(logits, ids, mask), task_nll(logits, ids, mask)):
        torch.testing.assert_close(a, b)
