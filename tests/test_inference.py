"""`sampling-argmax predict --input` and the Predictor API: trained checkpoints on files a user would have.

What ties them to the rest: a file framed by the task's `prepare` predicts exactly what `test` scores for the
same sample (synthetic .npy files, the real MTFL images through their annotation file), every input gets a
row or a named failure, and the rows say which method and which exact weights produced them.
"""

import hashlib
import json

import numpy as np
import pytest
import torch
from PIL import Image

from sampling_argmax.data.base import RawInput
from sampling_argmax.inference import Predictor
from sampling_argmax.cli import main
from sampling_argmax.training.lightning_cli import SamplingArgmaxCLI

pytestmark = pytest.mark.usefixtures("one_thread", "quiet")  # tests/conftest.py




def _test_outputs(args):
    """`sampling-argmax test` in-process: the gathered rows it scored (index, pred, confidence, ...)."""
    cli = SamplingArgmaxCLI(args=["test", *args])
    return cli.model.last_outputs


def _synthetic_test_outputs(synthetic_run, synthetic_args, tmp_path):
    _, ckpt = synthetic_run
    return _test_outputs([*synthetic_args, "--trainer.logger", "false", "--trainer.default_root_dir",
                          str(tmp_path / "test"), "--ckpt_path", str(ckpt)])


def test_a_folder_of_generated_images_predicts_what_test_scores(synthetic_run, synthetic_args, raw_synthetic_image,
                                                                tmp_path, capsys):
    _, ckpt = synthetic_run
    scored = _synthetic_test_outputs(synthetic_run, synthetic_args, tmp_path)
    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(4):  # the test split's first images, as a user would have them: arrays and 8-bit PNGs
        raw = raw_synthetic_image("test", index)
        np.save(folder / f"sample{index}.npy", raw)
        Image.fromarray((np.clip(raw, 0, 1) * 255).round().astype(np.uint8)).save(folder / f"sample{index}.png")
    (folder / "notes.txt").write_text("not an input")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:  # one unreadable input: everything else written, status 1
        main(["predict", "--ckpt_path", str(ckpt), "--input", str(folder), "--out", str(out), "--draw",
              "--batch_size", "3"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "1 of 9 inputs failed" in err and "broken.png" in err and "cannot decode" in err
    assert "notes.txt" in err  # a file that is not an input is named, not dropped silently
    rows = {row["input"]: row for row in json.loads((out / "predictions.json").read_text())}
    assert len(rows) == 8
    sha = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert {(r["method"], r["checkpoint_sha256"]) for r in rows.values()} == {("samp_tri", sha)}
    for index in range(4):
        from_npy, from_png = rows[str(folder / f"sample{index}.npy")], rows[str(folder / f"sample{index}.png")]
        # the .npy is the test sample itself: the same pixels in, the same keypoints out (original pixels)
        np.testing.assert_allclose(from_npy["keypoints"], scored["pred"][index], rtol=0, atol=1e-4)
        np.testing.assert_allclose(from_npy["confidence"], scored["confidence"][index], rtol=1e-4, atol=1e-6)
        # the PNG lost precision to 8 bits and still lands within a small fraction of a pixel
        np.testing.assert_allclose(from_png["keypoints"], from_npy["keypoints"], atol=0.05)
    failures = (out / "failures.csv").read_text()
    assert "broken.png" in failures and "cannot decode" in failures
    header = (out / "predictions.csv").read_text().splitlines()[0]
    assert header == "input,method,checkpoint_sha256,kp0_x,kp0_y,kp0_confidence,kp1_x,kp1_y,kp1_confidence"
    # overlays: one per input file, enlarged to >= 256 px, the last keypoint's colour where it was predicted
    overlays = sorted(p.name for p in (out / "overlays").iterdir())
    assert len(overlays) == 8 and "sample0.png.png" in overlays and "sample0.npy.png" in overlays
    drawn = np.asarray(Image.open(out / "overlays" / "sample1.png.png").convert("RGB"))
    scale = drawn.shape[0] // 32
    assert drawn.shape[:2] == (32 * scale, 32 * scale) and scale >= 8
    x, y = (np.asarray(rows[str(folder / "sample1.png")]["keypoints"][1]) + 0.5) * scale - 0.5
    assert np.abs(drawn[round(y), round(x)].astype(int) - (255, 127, 14)).max() <= 2  # tab10 orange: keypoint 1


def test_predictor_api_takes_paths_and_arrays_and_names_bad_inputs(synthetic_run, raw_synthetic_image, tmp_path):
    _, ckpt = synthetic_run
    predictor = Predictor.from_checkpoint(ckpt)
    images = [raw_synthetic_image("val", index) for index in range(3)]
    np.save(tmp_path / "first.npy", images[0])
    keypoints, confidence = predictor([tmp_path / "first.npy", *images])
    assert keypoints.shape == (4, 2, 2) and confidence.shape == (4, 2) and keypoints.dtype == np.float64
    np.testing.assert_array_equal(keypoints[0], keypoints[1])  # the file and the array are the same input
    assert np.all((confidence > 0) & (confidence <= 1))
    one = predictor(images[2])
    np.testing.assert_allclose(one.keypoints[0], keypoints[3], atol=1e-5)  # batch composition does not matter
    with pytest.raises(ValueError, match=r"array\[0\]: shape \(40, 40\).*trained on \(32, 32\)"):
        predictor(np.zeros((40, 40), np.float32))
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        predictor(tmp_path / "missing.npy")
    with pytest.raises(ValueError, match="takes no boxes"):
        predictor.inputs([tmp_path], boxes=tmp_path / "boxes.json")


def test_predict_without_input_writes_the_test_split(synthetic_run, synthetic_args, tmp_path, capsys):
    _, ckpt = synthetic_run
    scored = _synthetic_test_outputs(synthetic_run, synthetic_args, tmp_path)
    root = tmp_path / "predict_run"
    main(["predict", *synthetic_args, "--trainer.logger", "false", "--trainer.default_root_dir", str(root),
          "--ckpt_path", str(ckpt)])
    assert "7 rows of the test split" in capsys.readouterr().out
    rows = json.loads((root / "predictions" / "predictions.json").read_text())
    assert [r["input"] for r in rows] == [f"test split #{i}" for i in range(7)]
    np.testing.assert_allclose([r["keypoints"] for r in rows], scored["pred"], atol=1e-4)


# ------------------------------------------------------------------------------------------------ MTFL


def test_mtfl_checkpoint_predicts_the_real_images_as_test_scores_them(mtfl_run, mtfl_args, tmp_path):
    data, _, ckpt = mtfl_run
    scored = _test_outputs([*mtfl_args, "--data.init_args.data_root", str(data), "--trainer.default_root_dir",
                            str(tmp_path / "test"), "--ckpt_path", str(ckpt)])
    assert len(scored["index"]) == 8  # the validation split of the 40 faces (no testing.txt here)
    from sampling_argmax.data.mtfl import read_annotations, split_train_val

    records = read_annotations(data / "training.txt")
    _, val = split_train_val(records, 8, 0)
    out = tmp_path / "out"
    main(["predict", "--ckpt_path", str(ckpt), "--input", str(data / "training.txt"), "--out", str(out),
          "--no_progress"])
    rows = json.loads((out / "predictions.json").read_text())
    by_line = {row["input"]: row for row in rows}
    assert len(by_line) == len(records) and all(row["method"] == "samp_gau" for row in rows)
    for position, record_index in enumerate(val):
        row = by_line[records[record_index].source]  # rows are named file:line
        assert row["image"] == str(records[record_index].image)
        # the same framing and read-out; other batch neighbours move float32 convolutions by at most an ulp
        np.testing.assert_allclose(row["keypoints"], scored["pred"][position], rtol=2e-7, atol=0)
        np.testing.assert_allclose(row["confidence"], scored["confidence"][position], rtol=1e-5, atol=1e-8)
    # the same faces as separate image files in test's batches: bit for bit the rows of test
    main(["predict", "--ckpt_path", str(ckpt), "--input", *(str(records[i].image) for i in val),
                  "--out", str(tmp_path / "exact"), "--batch_size", "8", "--no_progress"])
    exact = json.loads((tmp_path / "exact" / "predictions.json").read_text())
    assert [row["input"] for row in exact] == [str(records[i].image) for i in val]
    np.testing.assert_array_equal([row["keypoints"] for row in exact], scored["pred"])
    np.testing.assert_array_equal(np.float32([row["confidence"] for row in exact]), scored["confidence"])
    header = (out / "predictions.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["input", "method", "checkpoint_sha256", "image"] and "left_eye_x" in header
    # one image file of the folder, given directly: the same row as through the annotation file
    record = records[val[0]]
    single = Predictor.from_checkpoint(ckpt)(record.image)
    np.testing.assert_allclose(single.keypoints[0], by_line[record.source]["keypoints"], atol=1e-4)
    # keypoints are in the original image's pixels: inside the 250 x 250 / 400 x 400 frames
    width, height = Image.open(record.image).size
    assert np.all(single.keypoints[0] >= -0.5) and np.all(single.keypoints[0] <= [width - 0.5, height - 0.5])


def test_predict_on_a_machine_without_the_dataset(mtfl_run, tmp_path, monkeypatch):
    data, _, ckpt = mtfl_run
    image = sorted((data / "lfw_5590").iterdir())[0]
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    state["datamodule_hyper_parameters"]["data_root"] = str(tmp_path / "not_here" / "MTFL")  # another machine
    moved = tmp_path / "shipped.ckpt"
    torch.save(state, moved)
    monkeypatch.delenv("SAMPLING_ARGMAX_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="not_here"):  # training or testing still needs the folder
        from sampling_argmax.data.mtfl import MTFLDataModule

        MTFLDataModule(data_root=str(tmp_path / "not_here" / "MTFL"))
    predictor = Predictor.from_checkpoint(moved)
    assert predictor(image).keypoints.shape == (1, 5, 2)
    raw = predictor.datamodule.prepare(RawInput(image, str(image)))
    assert raw["image"].shape == (3, 64, 64) and raw["to_original"].dtype == torch.float64


# ------------------------------------------------------------------------------------------------ COCO (top-down)


def test_coco_person_boxes_are_framed_exactly_as_test_frames_them(shared_data, tmp_path):
    from PIL import Image as PILImage

    from sampling_argmax.data.coco import COCODataModule

    root = shared_data / "coco" / "mmpose-tests"
    if not (root / "test_coco_det_AP_H_56.json").is_file():
        pytest.skip(f"COCO samples absent under {root} (see shared/data/README.md)")
    module = COCODataModule(data_root=str(root), num_workers=0, test_ann_file="test_coco.json", test_image_dir=".",
                            test_detection_file="test_coco_det_AP_H_56.json", input_size=(64, 96),
                            heatmap_size=(16, 24))
    dataset = module.dataset("test")
    detections = root / "test_coco_det_AP_H_56.json"
    # the annotation json + the detections: the same 118 boxes, in test's order, framed pixel for pixel alike
    raws = module.raw_inputs(root / "test_coco.json", detections)
    assert len(raws) == len(dataset) == 118
    for n in (0, 57, 117):
        sample, prepared = dataset[n], module.prepare(raws[n])
        assert torch.equal(prepared["image"], sample["image"])
        assert torch.equal(prepared["to_original"], sample["to_original"])
        assert raws[n].extra["score"] == sample["bbox_score"] and raws[n].extra["image_id"] == sample["image_id"]
    # a folder of images + the detection json (image_id = the file name's number): the same boxes
    from_folder = module.raw_inputs(root, detections)
    assert len(from_folder) == 118
    by_score = {(str(r.source), r.extra["score"]): r for r in raws}
    for raw in from_folder[::20]:  # the detector's box, clipped here as the annotation loaders clip it
        twin = by_score[(str(raw.source), raw.extra["score"])]
        assert torch.equal(module.prepare(raw)["to_original"], module.prepare(twin)["to_original"])
    # no boxes: one input per image, framed as a whole
    whole = module.raw_inputs(root)
    assert [r.source.name for r in whole] == sorted(p.name for p in root.glob("*.jpg"))
    width, height = PILImage.open(whole[0].source).size
    assert module.prepare(whole[0])["box"] == [0.0, 0.0, width - 1.0, height - 1.0]
    # the ground-truth boxes of the annotation json when no detections are given
    from sampling_argmax.data.coco_files import load_person_records

    people = load_person_records(root / "test_coco.json", root)
    assert [r.box for r in module.raw_inputs(root / "test_coco.json")] == [tuple(p["box"]) for p in people]
    bad = tmp_path / "dets.json"
    bad.write_text('[{"image_id": "x", "bbox": [0, 0, 5, 5], "score": 1}]')
    with pytest.raises(ValueError, match=r"dets.json: detection #0: image_id 'x' is not an integer"):
        module.raw_inputs(root, bad)


def test_overlays_draw_the_skeleton(tmp_path):
    from PIL import Image

    from sampling_argmax.inference import draw_overlay

    image = np.zeros((256, 256, 3), np.uint8)
    row = {"keypoints": [[40.0, 128.0], [216.0, 128.0], [128.0, 30.0]], "confidence": [0.5, 0.5, 0.5]}
    plain = np.asarray(Image.open(draw_overlay(image, [row], tmp_path / "plain.png")))
    bones = np.asarray(Image.open(draw_overlay(image, [row], tmp_path / "bones.png", skeleton=[(0, 1)])))
    assert plain[128, 128].max() == 0 and bones[128, 128].min() > 200  # the bone's midpoint, white (anti-aliased)
    assert bones[80, 128].max() == 0  # no bone to the third keypoint
