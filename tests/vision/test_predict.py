"""gatelab predict for vision (gatelab.vision.predict) and the data modules' preprocessing():
real tiny training runs -> gatelab export -> gatelab predict, outputs checked against the model
run by hand; NIfTI geometry; field-of-view normalisation; restoration; every input error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from restoration_fixtures import make_paired_restoration_data
from segmentation_fixtures import FOLDERS, write_nifti, write_pngs
from trainer_fixtures import quiet_trainer

from gatelab.core.harness import ExperimentConfig, run_experiment
from gatelab.core.harness.cli import main
from gatelab.core.harness.errors import DataError
from gatelab.core.harness.predict import PredictOptions, predict
from gatelab.core.pretrained import from_pretrained, save_pretrained
from gatelab.core.registry import create_model
from gatelab.vision.data.datamodule import (
    folder_datamodule,
    membrane_datamodule,
    nifti_datamodule,
    segmentation_preprocessing,
)
from gatelab.vision.data.segmentation import normalize_image, read_image
from gatelab.vision.tasks.inference import sliding_window_inference

QUIET = ["--no-progress", "--num-threads", "1"]
OPTS = PredictOptions(progress=False, batch_size=4)


def _trainer(steps: int) -> dict:
    return quiet_trainer(
        max_epochs=1,
        max_steps=steps,
        checkpoint={"monitor": None, "save_top_k": 0, "save_last": True},
        early_stopping=None,
        loggers=[],
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )


def _seg_model_by_hand(model, image: np.ndarray, prep: dict, valid: np.ndarray | None = None):
    """Masks and maps of one raw image ``[C, H, W]`` computed here step by step."""
    x = torch.from_numpy(normalize_image(image, prep["normalize"], valid))[None]
    with torch.no_grad():
        logits, maps = sliding_window_inference(
            x, prep["sliding_window"]["roi_size"], lambda t: model(t, return_attention=True), overlap=0.5
        )
    classes = logits[0].argmax(0).numpy()
    if valid is not None:
        classes = np.where(valid, classes, 0)
    return np.asarray(prep["mask_values"])[classes], maps


def test_segmentation_2d_train_export_predict(tmp_path):
    """A tiny seg-folder training run -> export (preprocessing.json from the data module) ->
    gatelab predict: masks with the input's size and raw label values, one attention PNG per gate
    and level, equal to the model run by hand."""
    write_pngs(tmp_path, {"train": 2, "test": 2}, seed=1)
    cfg = ExperimentConfig.from_dict(
        {
            "name": "seg2d",
            "output_dir": str(tmp_path / "runs"),
            "model": {"name": "attention-unet-2d", "kwargs": {"filters": [4, 8, 16], "feature_scale": 1}},
            "data": {
                "name": "seg-folder",
                "kwargs": {**FOLDERS, "batch_size": 2, "label_values": {0: 0, 255: 1}, "patch_size": 16, "samples_per_epoch": 4},
            },
            "task": {"name": "segmentation", "kwargs": {"roi_size": [16, 16]}, "lr": 1e-2},
            "trainer": _trainer(2),
        }
    )
    res = run_experiment(cfg, data_dir=tmp_path)
    out_model = tmp_path / "model"
    assert main(["export", str(res.last_checkpoint), str(out_model)]) == 0
    prep = json.loads((out_model / "preprocessing.json").read_text())
    assert prep["kind"] == "segmentation" and prep["spatial_dims"] == 2
    assert prep["normalize"] == "zscore" and prep["normalize_over"] == "image"
    assert prep["in_channels"] == 1 and prep["num_classes"] == 2 and prep["mask_values"] == [0, 255]
    assert prep["label_values"] == {"0": 0, "255": 1} and prep["patch_size"] == [16, 16]

    out = tmp_path / "masks"
    assert main(["predict", "--model", str(out_model), "--input", str(tmp_path / "test/img"), "--output", str(out), *QUIET]) == 0
    model = from_pretrained(out_model)
    for k in range(2):
        mask = np.array(Image.open(out / f"{k}.png"))
        assert mask.shape == (24, 20) and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
        want, maps = _seg_model_by_hand(model, read_image(tmp_path / f"test/img/{k}.png"), prep)
        np.testing.assert_array_equal(mask, want)
        assert sorted(maps) == ["att2"] and maps["att2"].shape == (1, 2, 24, 20)
        for g in range(2):
            att = np.array(Image.open(out / "attention" / f"{k}_att2_gate{g}.png"))
            assert att.shape == (24, 20)
            np.testing.assert_allclose(att, np.rint(maps["att2"][0, g].numpy() * 255), atol=1)
    # a single file works too; the API returns a report
    rep = predict(out_model, tmp_path / "test/img/1.png", tmp_path / "one", options=OPTS)
    assert rep.items == 1 and rep.unit == "images" and (tmp_path / "one/1.png").is_file()


def test_segmentation_3d_nifti_geometry(tmp_path):
    """A 3D model on NIfTI volumes: the mask keeps the input's shape, affine and header fields;
    attention maps are float NIfTIs on the same grid."""
    write_nifti(tmp_path, {"train": 2}, (12, 10, 9), np.s_[3:7, 2:6, 2:5], seed=0)
    dm = nifti_datamodule(
        tmp_path, train_images="train/img", train_labels="train/lab", test_images="train/img",
        test_labels="train/lab", label_values={0: 0, 1: 1}, patch_size=8,
    )
    prep = dm.preprocessing()
    assert prep["spatial_dims"] == 3 and prep["patch_size"] == [8, 8, 8] and prep["spacing"] is None
    torch.manual_seed(0)
    model = create_model("attention-unet-3d", in_channels=1, num_classes=2, filters=(4, 8, 16), feature_scale=1).eval()
    save_pretrained(model, tmp_path / "m3", preprocessing=prep)

    import nibabel as nib

    vol = np.random.default_rng(1).normal(0, 1, (12, 10, 9)).astype(np.float32)
    affine = np.array([[0.8, 0, 0, -10], [0, 0.7, 0, 5], [0, 0, 2.5, 3], [0, 0, 0, 1]])
    img = nib.Nifti1Image(vol, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header["descrip"] = b"test volume"
    (tmp_path / "new").mkdir()
    nib.save(img, str(tmp_path / "new/case.nii.gz"))
    assert main(["predict", "--model", str(tmp_path / "m3"), "--input", str(tmp_path / "new"), "--output", str(tmp_path / "o3"), *QUIET]) == 0
    got = nib.load(str(tmp_path / "o3/case.nii.gz"))
    assert got.shape == (12, 10, 9) and np.allclose(got.affine, affine)
    assert got.header.get_xyzt_units() == ("mm", "sec") and got.header["descrip"].tobytes().startswith(b"test volume")
    assert got.get_data_dtype() == np.uint8
    data = np.asarray(got.dataobj)
    x = torch.from_numpy(normalize_image(np.transpose(vol, (2, 1, 0))[None], "zscore"))[None]
    with torch.no_grad():
        logits, maps = sliding_window_inference(x, 8, lambda t: model(t, return_attention=True))
    np.testing.assert_array_equal(data, np.transpose(logits[0].argmax(0).numpy(), (2, 1, 0)))
    att = nib.load(str(tmp_path / "o3/attention/case_att2_gate1.nii.gz"))
    assert att.shape == (12, 10, 9) and np.allclose(att.affine, affine) and att.get_data_dtype() == np.float32
    np.testing.assert_allclose(np.asarray(att.dataobj), np.transpose(maps["att2"][0, 1].numpy(), (2, 1, 0)), atol=1e-6)
    # a model trained with target_spacing takes volumes of that spacing only (no silent resampling)
    save_pretrained(model, tmp_path / "m3s", preprocessing={**prep, "spacing": [2.5, 0.7, 0.8]})
    assert main(["predict", "--model", str(tmp_path / "m3s"), "--input", str(tmp_path / "new"), "--output", str(tmp_path / "o3s"), *QUIET]) == 0
    save_pretrained(model, tmp_path / "m3s", preprocessing={**prep, "spacing": [1.0, 1.0, 1.0]})
    with pytest.raises(DataError, match=r"case.nii.gz has spacing \(2.5, 0.7, 0.8\) mm; the model was trained on volumes resampled to \(1.0, 1.0, 1.0\)"):
        predict(tmp_path / "m3s", tmp_path / "new", tmp_path / "x", options=OPTS)
    # a 3D model given a 2D image, a 2D model given a volume
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "flat.png")
    with pytest.raises(DataError, match=r"flat.png is a 2D image but the model is 3D"):
        predict(tmp_path / "m3", tmp_path / "flat.png", tmp_path / "x", options=OPTS)
    model2 = create_model("attention-unet-2d", in_channels=1, num_classes=2, filters=(4, 8, 16), feature_scale=1)
    save_pretrained(model2, tmp_path / "m2", preprocessing=segmentation_preprocessing(
        spatial_dims=2, in_channels=1, num_classes=2, patch_size=(16, 16), normalize="zscore"))
    with pytest.raises(DataError, match=r"case.nii.gz is a NIfTI volume but the model is 2D"):
        predict(tmp_path / "m2", tmp_path / "new", tmp_path / "x", options=OPTS)


def test_field_of_view_normalisation_needs_masks(tmp_path):
    """A seg-folder module with FOV masks normalises over the mask: predict wants images/ + masks/,
    uses the mask's pixels for the z-score and writes class 0 outside it."""
    write_pngs(tmp_path, {"train": 2}, seed=2)
    for k in range(2):
        fov = np.zeros((24, 20), np.uint8)
        fov[2:22, 1:19] = 255
        (tmp_path / "train/fov").mkdir(exist_ok=True)
        Image.fromarray(fov).save(tmp_path / f"train/fov/{k}.png")
    dm = folder_datamodule(
        tmp_path, train_images="train/img", train_labels="train/lab", test_images="train/img",
        test_labels="train/lab", label_values={0: 0, 255: 1}, train_masks="train/fov", test_masks="train/fov",
        patch_size=16,
    )
    prep = dm.preprocessing()
    assert prep["normalize_over"] == "fov"
    torch.manual_seed(0)
    model = create_model("attention-unet-2d", in_channels=1, num_classes=2, filters=(4, 8, 16), feature_scale=1).eval()
    save_pretrained(model, tmp_path / "m", preprocessing=prep)
    with pytest.raises(DataError, match="images/ and masks/"):
        predict(tmp_path / "m", tmp_path / "train/img", tmp_path / "o", options=OPTS)
    new = tmp_path / "new"
    (new / "images").mkdir(parents=True)
    (new / "masks").mkdir()
    for k in range(2):
        (new / "images" / f"{k}.png").write_bytes((tmp_path / f"train/img/{k}.png").read_bytes())
        (new / "masks" / f"{k}.png").write_bytes((tmp_path / f"train/fov/{k}.png").read_bytes())
    assert predict(tmp_path / "m", new, tmp_path / "o", options=OPTS).items == 2
    valid = np.array(Image.open(new / "masks/0.png")) > 0
    want, _ = _seg_model_by_hand(model, read_image(new / "images/0.png"), prep, valid)
    got = np.array(Image.open(tmp_path / "o/0.png"))
    np.testing.assert_array_equal(got, want)
    assert (got[~valid] == 0).all()
    (new / "masks").rename(new / "mask")  # DRIVE's folder name works too
    assert predict(tmp_path / "m", new, tmp_path / "o2", options=OPTS).items == 2
    np.testing.assert_array_equal(np.array(Image.open(tmp_path / "o2/0.png")), want)
    (new / "masks").mkdir()
    with pytest.raises(DataError, match="has both masks/ and mask/"):
        predict(tmp_path / "m", new, tmp_path / "o", options=OPTS)
    (new / "masks").rmdir()
    (new / "mask").rename(new / "masks")
    (new / "masks/1.png").unlink()
    with pytest.raises(DataError, match=r"no mask in .*masks for image .*1.png"):
        predict(tmp_path / "m", new, tmp_path / "o", options=OPTS)


def test_membrane_and_channel_selection_preprocessing(tmp_path):
    """The ISBI membrane module (challenge TIFF stacks) records its classes and raw label values;
    a model reading one channel of RGB files (DRIVE green) selects it; errors name the file."""
    import tifffile

    root = tmp_path / "isbi2012_membrane"
    root.mkdir()
    rng = np.random.default_rng(0)
    lab = np.where(rng.random((10, 16, 16)) > 0.5, 255, 0).astype(np.uint8)
    tifffile.imwrite(root / "train-volume.tif", rng.integers(0, 255, (10, 16, 16), dtype=np.uint8))
    tifffile.imwrite(root / "train-labels.tif", lab)
    prep = membrane_datamodule(tmp_path, patch_size=16).preprocessing()
    assert prep["classes"] == ["cell", "membrane"] and prep["mask_values"] == [255, 0]
    assert prep["label_values"] == {"0": 1, "255": 0}

    green = segmentation_preprocessing(
        spatial_dims=2, in_channels=1, num_classes=2, patch_size=(16, 16), normalize="zscore",
        channels=[1], label_values={0: 0, 255: 1}, classes=["background", "vessel"],
    )
    torch.manual_seed(0)
    model = create_model("attention-unet-2d", in_channels=1, num_classes=2, filters=(4, 8, 16), feature_scale=1).eval()
    save_pretrained(model, tmp_path / "m", preprocessing=green)
    rgb = rng.integers(0, 255, (20, 18, 3), dtype=np.uint8)
    (tmp_path / "in").mkdir()
    Image.fromarray(rgb).save(tmp_path / "in/a.png")
    predict(tmp_path / "m", tmp_path / "in", tmp_path / "o", options=OPTS)
    want, _ = _seg_model_by_hand(model, rgb.transpose(2, 0, 1)[1:2].astype(np.float32), green)
    np.testing.assert_array_equal(np.array(Image.open(tmp_path / "o/a.png")), want)
    # errors: a grey file where channel 1 is read; a grey model given RGB; an unreadable file;
    # a multi-page TIFF; an unexpected file; two inputs with one output name; no preprocessing
    Image.fromarray(rgb[..., 0]).save(tmp_path / "grey.png")
    with pytest.raises(DataError, match=r"grey.png has 1 channel\(s\); the model reads channel\(s\) \[1\]"):
        predict(tmp_path / "m", tmp_path / "grey.png", tmp_path / "o", options=OPTS)
    plain = {**green, "channels": None}
    save_pretrained(model, tmp_path / "g", preprocessing=plain)
    with pytest.raises(DataError, match=r"a.png has 3 channel\(s\), the model expects 1"):
        predict(tmp_path / "g", tmp_path / "in/a.png", tmp_path / "o", options=OPTS)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"cannot read image file .*bad.png"):
        predict(tmp_path / "g", tmp_path / "bad.png", tmp_path / "o", options=OPTS)
    with tifffile.TiffWriter(tmp_path / "stack.tif") as tw:
        for _ in range(3):
            tw.write(np.zeros((16, 16), np.uint8), photometric="minisblack")
    with pytest.raises(DataError, match=r"stack.tif is a multi-page TIFF \(3 pages\)"):
        predict(tmp_path / "g", tmp_path / "stack.tif", tmp_path / "o", options=OPTS)
    (tmp_path / "in/notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"notes.txt: not a 2D image file"):
        predict(tmp_path / "g", tmp_path / "in", tmp_path / "o", options=OPTS)
    (tmp_path / "in/notes.txt").unlink()
    Image.fromarray(rgb[..., 0]).save(tmp_path / "in/a.tif")
    with pytest.raises(DataError, match=r"would both write the output 'a'"):
        predict(tmp_path / "g", tmp_path / "in", tmp_path / "o", options=OPTS)
    save_pretrained(model, tmp_path / "none")
    with pytest.raises(DataError, match=r"has no preprocessing\.json"):
        predict(tmp_path / "none", tmp_path / "grey.png", tmp_path / "o", options=OPTS)
    # through the CLI: exit code 2 and the message on stderr
    assert main(["predict", "--model", str(tmp_path / "g"), "--input", str(tmp_path / "bad.png"), "--output", str(tmp_path / "o"), *QUIET]) == 2


def test_restoration_train_export_predict(tmp_path):
    """A tiny paired-restoration DnCNN run -> export -> predict: restored 8-bit PNGs of the input's
    size equal to the model's clipped output; a model saved without preprocessing uses the 8-bit
    convention; grey / 16-bit inputs for an RGB model are errors."""
    data = make_paired_restoration_data(tmp_path / "data")
    cfg = ExperimentConfig.from_dict(
        {
            "name": "restore",
            "output_dir": str(tmp_path / "runs"),
            "model": {"name": "dncnn", "kwargs": {"num_layers": 3, "features": 4}},
            "data": {"name": "paired_restoration", "kwargs": {"train_root": "train", "crop": 16, "batch_size": 2, "samples_per_epoch": 2}},
            "task": {"name": "restoration", "lr": 1e-3},
            "trainer": {**_trainer(1), "limit_test_batches": 0},
        }
    )
    res = run_experiment(cfg, data_dir=data)
    assert main(["export", str(res.last_checkpoint), str(tmp_path / "m")]) == 0
    prep = json.loads((tmp_path / "m/preprocessing.json").read_text())
    assert prep["kind"] == "restoration" and prep["channels"] == 3 and prep["scale"] == 255.0 and prep["tile"] is None
    inputs = data / "test/input"
    (inputs / "extra").mkdir()  # sub-folders are not searched
    arr = np.random.default_rng(3).integers(0, 256, (19, 13, 3), dtype=np.uint8)
    Image.fromarray(arr).save(inputs / "same_size.png")
    out = tmp_path / "restored"
    assert main(["predict", "--model", str(tmp_path / "m"), "--input", str(inputs), "--output", str(out), "--batch-size", "2", *QUIET]) == 0
    model = from_pretrained(tmp_path / "m")
    for name in ("0", "same_size"):
        src = np.array(Image.open(inputs / f"{name}.png"))
        got = np.array(Image.open(out / f"{name}.png"))
        assert got.shape == src.shape == (19, 13, 3) and got.dtype == np.uint8
        with torch.no_grad():
            y = model(torch.from_numpy(src.transpose(2, 0, 1)).float()[None] / 255)
        want = y[0].clamp(0, 1).mul(255).round().to(torch.uint8).numpy().transpose(1, 2, 0)
        np.testing.assert_array_equal(got, want)
    save_pretrained(model, tmp_path / "bare", preprocessing=None)
    rep = predict(tmp_path / "bare", inputs / "0.png", tmp_path / "bare_out", options=OPTS)
    assert rep.items == 1
    np.testing.assert_array_equal(np.array(Image.open(tmp_path / "bare_out/0.png")), np.array(Image.open(out / "0.png")))
    Image.fromarray(arr[..., 0]).save(tmp_path / "grey.png")
    with pytest.raises(DataError, match=r"grey.png has 1 channel\(s\) \(L\), the model expects 3"):
        predict(tmp_path / "m", tmp_path / "grey.png", tmp_path / "o", options=OPTS)
    Image.fromarray(arr[..., 0].astype(np.uint16) * 200).save(tmp_path / "deep.png")
    with pytest.raises(DataError, match=r"deep.png has pixel mode I;16"):
        predict(tmp_path / "m", tmp_path / "deep.png", tmp_path / "o", options=OPTS)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match=r"cannot read image .*broken.png"):
        predict(tmp_path / "m", tmp_path / "broken.png", tmp_path / "o", options=OPTS)


def test_maxim_restores_odd_sizes_tiled_or_whole(tmp_path):
    """A tiny MAXIM through predict: whole image (padded internally) and tiled (tile in the
    preprocessing) both write the input's size."""
    torch.manual_seed(0)
    model = create_model("maxim", **_tiny_maxim()).eval()
    rgb = np.random.default_rng(4).integers(0, 256, (21, 17, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "odd.png")
    from gatelab.vision.data.datamodule import restoration_preprocessing

    for tile in (None, 16):
        save_pretrained(model, tmp_path / "mx", preprocessing=restoration_preprocessing(channels=3, tile=tile, tile_overlap=4))
        predict(tmp_path / "mx", tmp_path / "odd.png", tmp_path / f"o{tile}", options=OPTS)
        assert np.array(Image.open(tmp_path / f"o{tile}/odd.png")).shape == (21, 17, 3)


def _tiny_maxim() -> dict:
    from gatelab.vision.models.maxim import _TINY

    return dict(_TINY)


def test_wrong_kind_is_an_error(tmp_path):
    model = create_model("dncnn", num_layers=3, features=4)
    save_pretrained(model, tmp_path / "m", preprocessing={"kind": "forecast"})
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(DataError, match="kind='forecast'"):
        predict(tmp_path / "m", tmp_path / "a.png", tmp_path / "o", options=OPTS)


def test_mirror_tta_from_the_preprocessing(tmp_path):
    """``sliding_window.mirror_axes`` in preprocessing.json turns on mirror test-time augmentation."""
    torch.manual_seed(0)
    model = create_model("attention-unet-2d", in_channels=1, num_classes=2, filters=(4, 8, 16), feature_scale=1).eval()
    prep = segmentation_preprocessing(
        spatial_dims=2, in_channels=1, num_classes=2, patch_size=(16, 16), normalize="unit", mirror_axes=[0, 1]
    )
    save_pretrained(model, tmp_path / "m", preprocessing=prep)
    img = np.random.default_rng(5).integers(0, 256, (22, 19), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    predict(tmp_path / "m", tmp_path / "a.png", tmp_path / "o", options=OPTS)
    x = torch.from_numpy(img.astype(np.float32) / 255)[None, None]
    with torch.no_grad():
        logits, maps = sliding_window_inference(x, 16, lambda t: model(t, return_attention=True), mirror_axes=[0, 1])
        plain = sliding_window_inference(x, 16, model)
    want = logits[0].argmax(0).numpy()
    np.testing.assert_array_equal(np.array(Image.open(tmp_path / "o/a.png")), want)  # mask_values [0, 1]
    assert not torch.allclose(logits, plain)  # the augmentation changed the logits
    att = np.array(Image.open(tmp_path / "o/attention/a_att2_gate0.png"))
    np.testing.assert_allclose(att, np.rint(maps["att2"][0, 0].numpy() * 255), atol=1)


def test_gatelab_predict_in_a_fresh_process(tmp_path):
    """The installed ``gatelab`` command in a new interpreter (no domain registry imported yet)."""
    import subprocess
    import sys

    torch.manual_seed(0)
    model = create_model("dncnn", num_layers=3, features=4).eval()
    save_pretrained(model, tmp_path / "m")
    Image.fromarray(np.zeros((9, 7, 3), np.uint8)).save(tmp_path / "a.png")
    code = "import sys; from gatelab.core.harness.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = ["predict", "--model", str(tmp_path / "m"), "--input", str(tmp_path / "a.png"), "--output", str(tmp_path / "o"), *QUIET]
    res = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "dncnn: 1 images" in res.stdout and (tmp_path / "o/a.png").is_file()


def test_denoise_module_preprocessing_records_the_noise():
    from gatelab.vision.data.datamodule import denoise_datamodule

    prep = denoise_datamodule(None, sigma=[0, 50], channels=1).preprocessing()
    assert prep["kind"] == "restoration" and prep["channels"] == 1 and prep["scale"] == 255.0
    assert prep["trained_on"] == {"task": "denoise", "sigma": [0.0, 50.0], "test_sigma": 25.0}
    json.dumps(prep, allow_nan=False)  # plain JSON

