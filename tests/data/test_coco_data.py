"""COCO top-down data on the real samples: records, crops, targets, flips, errors, COCOEvaluator."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from sampling_argmax.codecs.affine import apply_affine
from sampling_argmax.data.coco import (
    COCO_FLIP_PAIRS,
    COCODataModule,
    box_to_center_size,
    half_body_box,
)
from sampling_argmax.data.coco_files import load_detection_records, load_person_records
from sampling_argmax.metrics.base import EvaluationContext
from sampling_argmax.metrics.coco import COCOEvaluator


@pytest.fixture(scope="module")
def coco_root(shared_data):
    root = shared_data / "coco"
    if not (root / "coco-mini" / "annotations" / "person_keypoints_train2017.json").is_file():
        pytest.skip(f"COCO samples absent under {root} (see shared/data/README.md)")
    return root


@pytest.fixture(scope="module")
def mini(coco_root):
    return COCODataModule(data_root=str(coco_root / "coco-mini"), batch_size=4, num_workers=0, val_split="train2017")


@pytest.fixture(scope="module")
def mmpose_module(coco_root, tmp_path_factory):
    return COCODataModule(
        data_root=str(coco_root / "mmpose-tests"),
        batch_size=4,
        num_workers=0,
        val_ann_file="test_coco.json",
        val_image_dir=".",
        test_ann_file="test_coco.json",
        test_image_dir=".",
        test_detection_file="test_coco_det_AP_H_56.json",
    )


def _mirror_pairs():
    partner = np.arange(17)
    for left, right in COCO_FLIP_PAIRS:
        partner[left], partner[right] = right, left
    return partner


def test_box_to_center_size_keeps_aspect_and_padding():
    center, size = box_to_center_size([0, 0, 300, 100], aspect_ratio=0.75, padding=1.25)
    np.testing.assert_allclose(center, [150, 50])
    np.testing.assert_allclose(size, [375, 500])
    assert size[0] / size[1] == pytest.approx(0.75)


def test_records_from_real_annotations(coco_root):
    mini = load_person_records(coco_root / "coco-mini/annotations/person_keypoints_train2017.json", coco_root / "coco-mini/train2017")
    assert len(mini) == 86  # the persons with labeled keypoints (README: 86 of 172)
    assert all(r["visible"].any() for r in mini)
    tests = load_person_records(coco_root / "mmpose-tests/test_coco.json", coco_root / "mmpose-tests")
    assert len(tests) == 12
    dets = load_detection_records(
        coco_root / "mmpose-tests/test_coco_det_AP_H_56.json", coco_root / "mmpose-tests/test_coco.json", coco_root / "mmpose-tests"
    )
    assert len(dets) == 118 and all(r["ann_id"] == -1 and not r["visible"].any() for r in dets)
    strong = load_detection_records(
        coco_root / "mmpose-tests/test_coco_det_AP_H_56.json", coco_root / "mmpose-tests/test_coco.json",
        coco_root / "mmpose-tests", score_threshold=0.5,
    )
    assert 0 < len(strong) < 118 and min(r["bbox_score"] for r in strong) >= 0.5


def test_eval_sample_contract_and_round_trip(mini):
    ds = mini.build_dataset("val")
    sample = ds[0]
    assert sample["image"].shape == (3, 256, 192) and sample["image"].dtype == torch.float32
    assert sample["target"].shape == (17, 2) and sample["target_weight"].shape == (17,)
    assert sample["to_original"].shape == (3, 3) and sample["index"] == 0
    for index in range(0, len(ds), 7):
        sample, record = ds[index], ds.records[index]
        weight = sample["target_weight"].numpy() > 0
        assert np.array_equal(weight, record["visible"] & weight)  # unlabeled joints always weigh 0
        back = apply_affine(sample["target"].numpy(), sample["to_original"].numpy())
        np.testing.assert_allclose(back[weight], record["keypoints"][weight], atol=0.02)


def test_weights_zero_outside_heatmap(mini):
    ds = mini.build_dataset("val")
    record = ds.records[0]
    center, size, _, _ = ds.crop_params(record, None)
    sample = ds.make_sample(0, center, size * 0.3, 0.0, False)  # tight crop: many joints fall outside
    target, weight = sample["target"].numpy(), sample["target_weight"].numpy()
    inside = (target[:, 0] >= 0) & (target[:, 0] <= 47) & (target[:, 1] >= 0) & (target[:, 1] <= 63)
    np.testing.assert_array_equal(weight > 0, inside & record["visible"])
    assert (~inside & record["visible"]).any()


def test_flip_maps_every_joint_to_its_mirror_joint(mini):
    ds = mini.build_dataset("val")
    partner = _mirror_pairs()
    for index in (0, 5, 20):
        record = ds.records[index]
        center, size, _, _ = ds.crop_params(record, None)
        plain = ds.make_sample(index, center, size, 20.0, False)
        flipped = ds.make_sample(index, center, size, -20.0, True)  # the mirror image of a +20° crop
        # Heatmap: joint k of the flipped crop sits at the mirrored position of joint partner(k).
        expected = plain["target"].numpy()[partner].copy()
        expected[:, 0] = 47.0 - expected[:, 0]
        np.testing.assert_allclose(flipped["target"].numpy(), expected, atol=1e-4)
        np.testing.assert_array_equal(flipped["target_weight"].numpy(), plain["target_weight"].numpy()[partner])
        # to_original brings the flipped target of joint k back to the original joint partner(k).
        back = apply_affine(flipped["target"].numpy(), flipped["to_original"].numpy())
        visible = record["visible"][partner]
        np.testing.assert_allclose(back[visible], record["keypoints"][partner][visible], atol=0.02)


def test_flip_of_unrotated_crop_is_the_mirrored_crop(mini):
    ds = mini.build_dataset("val")
    center, size, _, _ = ds.crop_params(ds.records[3], None)
    plain = ds.make_sample(3, center, size, 0.0, False)["image"]
    flipped = ds.make_sample(3, center, size, 0.0, True)["image"]
    torch.testing.assert_close(flipped, plain.flip(-1), atol=0.03, rtol=0)  # cv2 fixed-point rounding: 1 grey level


def test_training_augmentation_is_random_but_seeded(mini):
    ds = mini.build_dataset("train")
    torch.manual_seed(0)
    a = [ds[i]["target"] for i in range(4)]
    torch.manual_seed(0)
    b = [ds[i]["target"] for i in range(4)]
    c = [ds[i]["target"] for i in range(4)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    # Crop parameters stay within the SimpleBaseline ranges.
    rng = np.random.default_rng(0)
    for _ in range(200):
        _, size, rotation, _ = ds.crop_params(ds.records[0], rng)
        assert abs(rotation) <= 80
        assert size[0] / size[1] == pytest.approx(192 / 256)


def test_half_body_box_covers_the_chosen_half():
    keypoints = np.stack([np.arange(17) * 10.0, np.arange(17) * 20.0], axis=1)
    visible = np.ones(17, bool)
    center, size = half_body_box(keypoints, visible, np.random.default_rng(0))
    half = keypoints[:11] if center[1] < keypoints[11:, 1].min() else keypoints[11:]
    assert np.all(np.abs(half - center) <= size / 2)
    visible[:] = False
    visible[[0, 16]] = True
    assert half_body_box(keypoints, visible, np.random.default_rng(0)) is None


def test_dataloader_collates_contract_batch(mini):
    mini.setup("fit")
    batch = next(iter(mini.train_dataloader()))
    assert batch["image"].shape == (4, 3, 256, 192)
    assert batch["target"].shape == (4, 17, 2) and batch["to_original"].shape == (4, 3, 3)
    assert batch["index"].shape == (4,) and batch["image_id"].dtype == torch.int64
    assert mini.num_keypoints == 17 and len(mini.flip_pairs) == 8


def test_evaluate_ground_truth_boxes_and_keypoints_gives_ap_one(mmpose_module, tmp_path):
    ds = mmpose_module.dataset("val")
    evaluator = COCOEvaluator()
    context = EvaluationContext("val", tmp_path, mmpose_module.references("val"), len(ds))
    samples = [ds[i] for i in range(len(ds))]
    outputs = {
        "index": np.arange(len(ds)),
        "pred": np.stack([r["keypoints"] for r in ds.records]),
        "confidence": np.stack([np.where(r["visible"], 0.9, 0.05) for r in ds.records]),
        "image_id": np.array([s["image_id"] for s in samples]),
        "bbox_score": np.array([s["bbox_score"] for s in samples]),
        "area": np.array([s["area"] for s in samples]),
    }
    metrics = evaluator(outputs, context)
    assert metrics["AP"] == pytest.approx(1.0) and metrics["AR"] == pytest.approx(1.0)
    # Calibration: perturb instances by different amounts, confidence tracking accuracy -> r > 0.9.
    rng = np.random.default_rng(0)
    amount = np.linspace(0, 30, len(ds))
    outputs["pred"] = outputs["pred"] + amount[:, None, None] * rng.standard_normal(outputs["pred"].shape)
    outputs["confidence"] = np.repeat((1.0 - amount / 30)[:, None], 17, axis=1)
    metrics = evaluator(outputs, context)
    assert metrics["AP"] < 1.0 and metrics["oks_confidence_pearson"] > 0.8
    out = tmp_path
    assert json.loads((out / "coco_keypoints_val_val2017_metrics.json").read_text())["AP"] == pytest.approx(metrics["AP"])
    results = json.loads((out / "coco_keypoints_val_val2017_results.json").read_text())
    assert len(results) == len(ds) and len(results[0]["keypoints"]) == 51


def test_missing_files_name_path_and_fix(tmp_path, coco_root):
    with pytest.raises(FileNotFoundError, match=r"person_keypoints_val2017\.json.*--data\.data_root"):
        COCODataModule(data_root=str(tmp_path)).build_dataset("val")
    (tmp_path / "annotations").mkdir()
    source = coco_root / "coco-mini/annotations/person_keypoints_train2017.json"
    (tmp_path / "annotations" / "person_keypoints_train2017.json").write_text(source.read_text())
    with pytest.raises(FileNotFoundError, match=r"image folder not found: .*train2017"):
        COCODataModule(data_root=str(tmp_path)).build_dataset("train")
    (tmp_path / "train2017").mkdir()
    module = COCODataModule(data_root=str(tmp_path), val_split="train2017", val_detection_file="dets.json")
    with pytest.raises(FileNotFoundError, match=r"dets\.json.*--data\.test_detection_file"):
        module.build_dataset("val")
    ds = COCODataModule(data_root=str(tmp_path)).build_dataset("train")
    with pytest.raises(FileNotFoundError, match=r"cannot read COCO image .*train2017/0000"):
        ds[0]
    (tmp_path / "annotations" / "person_keypoints_val2017.json").write_text("{not json")
    (tmp_path / "val2017").mkdir()
    with pytest.raises(ValueError, match="not valid json"):
        COCODataModule(data_root=str(tmp_path)).build_dataset("val")


def _annotations(folder, mutate):
    """A copy of the real coco-mini annotation file with one fault made by ``mutate(data)``."""
    source = json.loads((Path(os.environ["SAMPLING_ARGMAX_DATA"]) / "coco/coco-mini/annotations/"
                         "person_keypoints_train2017.json").read_text())
    mutate(source)
    (folder / "annotations").mkdir(exist_ok=True)
    (folder / "train2017").mkdir(exist_ok=True)
    (folder / "annotations" / "person_keypoints_train2017.json").write_text(json.dumps(source))
    return folder


def _first_person(data):
    return next(a for a in data["annotations"] if a.get("num_keypoints", 0) > 0)


@pytest.mark.parametrize("fault,match", [
    (lambda d: _first_person(d).update(image_id=-7), r"annotation #\d+ \(id \d+\): image_id -7 is not in"),
    (lambda d: _first_person(d).pop("bbox"), r"annotation #\d+ .* has no 'bbox'"),
    (lambda d: _first_person(d).update(bbox=[1, 2, float("nan"), 4]), r"'bbox' holds NaN"),
    (lambda d: _first_person(d).update(bbox=[1, 2, -3, 4]), r"'bbox' must be \[x, y, w, h\] with w, h >= 0"),
    (lambda d: _first_person(d).update(keypoints=["a"] * 51), r"'keypoints' must hold numbers"),
    (lambda d: d["images"][0].pop("width"), r"image #0 needs 'id', 'file_name', 'width' and 'height'"),
    (lambda d: d["images"][0].update(file_name="../../etc/passwd"), r"must be relative to the image folder"),
    (lambda d: d.pop("annotations"), r"has no 'annotations' list"),
])
def test_annotation_faults_are_clear_errors_naming_the_file(tmp_path, coco_root, fault, match):
    root = _annotations(tmp_path, fault)
    with pytest.raises(ValueError, match=match) as error:
        COCODataModule(data_root=str(root)).build_dataset("train")
    assert "person_keypoints_train2017.json" in str(error.value)


def test_detection_faults_name_the_detection_file(tmp_path, coco_root):
    root = coco_root / "mmpose-tests"
    detections = json.loads((root / "test_coco_det_AP_H_56.json").read_text())
    for fault, match in [({"image_id": 123456789}, "has no image in"), ({"score": "high"}, "'score' must hold numbers"),
                         ({"bbox": [0, 0, float("inf"), 3]}, "'bbox' holds NaN or infinite")]:
        broken = [dict(detections[0], **fault)] + detections[1:]
        (tmp_path / "dets.json").write_text(json.dumps(broken))
        with pytest.raises(ValueError, match=match) as error:
            load_detection_records(tmp_path / "dets.json", root / "test_coco.json", root)
        assert "dets.json: detection #0" in str(error.value)


def test_data_root_from_environment_or_a_clear_error(monkeypatch, coco_root):
    monkeypatch.delenv("SAMPLING_ARGMAX_DATA", raising=False)
    with pytest.raises(ValueError, match="--data.data_root"):
        COCODataModule()
    monkeypatch.setenv("SAMPLING_ARGMAX_DATA", str(coco_root.parent))
    assert COCODataModule().data_root == coco_root
