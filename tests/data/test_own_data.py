"""Your own keypoints: the metainfo of a COCO-format json (a made-up 'kite' category), the landmark CSV, and
every way they can be wrong. The end-to-end fit/test/predict runs are in tests/training/test_own_data_cli.py."""

import json

import numpy as np
import pytest
from sampling_argmax.data.coco import COCO_FLIP_PAIRS, COCO_KEYPOINT_NAMES
from sampling_argmax.data.coco_files import load_person_records
from sampling_argmax.data.coco_format import COCOFormatDataModule
from sampling_argmax.data.csv_landmarks import CSVLandmarkDataModule, load_landmark_records, read_landmark_header
from sampling_argmax.data.keypoint_meta import DEFAULT_SIGMA, KeypointMeta, category_meta, infer_flip_pairs
from sampling_argmax.metrics.base import EvaluationContext
from sampling_argmax.metrics.coco import COCOEvaluator
from sampling_argmax.metrics.normalized import evaluate_normalized
from writers import KITE_NAMES, write_coco_kites, write_landmark_csv


@pytest.fixture(scope="module")
def kites(tmp_path_factory):
    return write_coco_kites(tmp_path_factory.mktemp("kites"), num_images=3, size=40)


def _module(ann, **kwargs):
    return COCOFormatDataModule(train_ann_file=str(ann), train_image_dir=str(ann.parent / "images"),
                                val_ann_file=str(ann), val_image_dir=str(ann.parent / "images"), num_workers=0,
                                batch_size=3, input_size=(32, 32), heatmap_size=(8, 8), **kwargs)


def test_flip_pairs_are_inferred_from_each_spelling_of_left_and_right():
    assert infer_flip_pairs(KITE_NAMES) == ((1, 2), (3, 4))
    assert infer_flip_pairs(COCO_KEYPOINT_NAMES) == COCO_FLIP_PAIRS  # the person's pairs from its names
    assert infer_flip_pairs(["l_x", "r_x", "wingL", "tip", "foot.R", "foot.L"]) == ((0, 1), (4, 5))
    assert infer_flip_pairs(["L1", "L2", "leftmost", "lr", "Rt"]) == ()  # no side word: vertebrae, ...
    with pytest.raises(ValueError, match=r"'left_wing' \(no 'right_wing'\).*--data.flip_pairs"):
        infer_flip_pairs(["nose", "left_wing", "RightTail", "LeftTail"])


def test_the_json_category_gives_names_skeleton_pairs_and_sigmas(kites):
    module = _module(kites)
    assert module.num_keypoints == 5 and module.keypoint_names == KITE_NAMES
    assert module.flip_pairs == ((1, 2), (3, 4)) and module.skeleton == ((0, 1), (0, 2), (1, 3), (2, 4))
    assert module.category_id == 7 and module.meta.sigmas == (DEFAULT_SIGMA,) * 5
    assert COCOFormatDataModule.num_keypoints_of({"train_ann_file": str(kites)}) == 5
    module.setup("fit")
    sample = module.dataset("val")[0]
    assert sample["target"].shape == (5, 2) and sample["image"].shape == (3, 32, 32)
    assert module.dataset("val").codec.flip_pairs == ((1, 2), (3, 4))
    # a flipped crop swaps the wings: left_wing's target is the mirrored right_wing
    dataset, record = module.dataset("val"), module.dataset("val").records[0]
    center, size, _, _ = dataset.crop_params(record, None)
    plain, flipped = dataset.make_sample(0, center, size, 0.0, False), dataset.make_sample(0, center, size, 0.0, True)
    assert np.allclose(flipped["target"][1, 0], 7 - plain["target"][2, 0], atol=1e-4)
    assert np.allclose(flipped["target"][1, 1], plain["target"][2, 1], atol=1e-4)
    refs = module.references("val")
    assert refs["category_id"] == 7 and refs["sigmas"] == [DEFAULT_SIGMA] * 5
    # given pairs and sigmas win; the recorded metainfo rebuilds the module without the json
    given = _module(kites, flip_pairs=[["LeftTail", "RightTail"]], sigmas=[0.1, 0.2, 0.2, 0.3, 0.3])
    assert given.flip_pairs == ((3, 4),) and given.meta.sigmas == (0.1, 0.2, 0.2, 0.3, 0.3)
    rebuilt = COCOFormatDataModule(metainfo=given.hparams["metainfo"])
    assert rebuilt.keypoint_names == KITE_NAMES and rebuilt.flip_pairs == ((3, 4),) and rebuilt.category_id == 7


def _edited(path, tmp_path, edit):
    data = json.loads(path.read_text())
    edit(data)
    out = tmp_path / "edited.json"
    out.write_text(json.dumps(data))
    return out


def test_bad_categories_are_clear_errors(kites, tmp_path):
    data = json.loads(kites.read_text())
    with pytest.raises(ValueError, match=r"--data.category 'bird' is not a keypoint category.*'kite' \(id 7\)"):
        category_meta(data, kites, "bird")
    assert category_meta(data, kites, 7).category == "kite" and category_meta(data, kites, "kite").category_id == 7
    two = _edited(kites, tmp_path, lambda d: d["categories"].append({"id": 8, "name": "cup", "keypoints": ["rim"]}))
    with pytest.raises(ValueError, match="2 keypoint categories.*--data.category"):
        _module(two)
    assert _module(two, category="cup").num_keypoints == 1
    nameless = _edited(kites, tmp_path, lambda d: d["categories"][0].pop("keypoints"))
    with pytest.raises(ValueError, match="no category has a 'keypoints' list of names"):
        _module(nameless)
    empty = _edited(kites, tmp_path, lambda d: d["categories"][0].update(keypoints=[]))
    with pytest.raises(ValueError, match="'keypoints' must be the list of keypoint names"):
        _module(empty)
    bones = _edited(kites, tmp_path, lambda d: d["categories"][0].update(skeleton=[[1, 6]]))
    with pytest.raises(ValueError, match=r"skeleton.*6 of \[1, 6\] is not one of the 5 keypoints"):
        _module(bones)
    unmatched = _edited(kites, tmp_path, lambda d: d["categories"][0]["keypoints"].__setitem__(2, "right_fin"))
    with pytest.raises(ValueError, match="'left_wing' \\(no 'right_wing'\\)"):
        _module(unmatched)
    with pytest.raises(ValueError, match="sigmas must be 5 positive numbers"):
        _module(kites, sigmas=[0.1, 0.1])
    with pytest.raises(ValueError, match="flip_pairs.*'tail' of"):
        _module(kites, flip_pairs=[["left_wing", "tail"]])


def test_keypoint_count_disagreeing_with_the_names_is_a_clear_error(kites, tmp_path):
    short = _edited(kites, tmp_path, lambda d: d["annotations"][1].update(keypoints=d["annotations"][1]["keypoints"][:12]))
    with pytest.raises(ValueError, match=r"annotation #1 .*must hold 5 x 3 numbers.*category 7, got 12"):
        load_person_records(short, kites.parent / "images", category_id=7, num_keypoints=5)
    # a json whose names differ from the run's (train vs val) is refused when the stage is built
    other = _edited(kites, tmp_path, lambda d: d["categories"][0]["keypoints"].__setitem__(0, "beak"))
    module = COCOFormatDataModule(train_ann_file=str(kites), val_ann_file=str(other),
                                  val_image_dir=str(kites.parent / "images"), num_workers=0)
    with pytest.raises(ValueError, match="names the keypoints .*'beak'.*same keypoints in the same order"):
        module.dataset("val")


def test_the_category_sigmas_reach_the_evaluation(kites):
    """Predictions 1 px off every keypoint: AP 1 with lenient sigmas, AP 0 with very strict ones."""
    records = load_person_records(kites, kites.parent / "images", category_id=7, num_keypoints=5)
    pred = np.stack([r["keypoints"] + 1.0 for r in records])
    outputs = {"pred": pred, "confidence": np.ones((len(records), 5)), "bbox_score": np.ones(len(records)),
               "image_id": np.array([r["image_id"] for r in records]), "area": np.array([r["area"] for r in records])}
    ap = {}
    for sigma in (0.5, 0.001):
        refs = {"ann_file": str(kites), "split": "val", "category_id": 7, "sigmas": [sigma] * 5}
        ap[sigma] = COCOEvaluator()(outputs, EvaluationContext("val", None, refs, len(records)))["AP"]
    assert ap[0.5] == pytest.approx(1.0) and ap[0.001] == pytest.approx(0.0)


def test_landmark_csv_header_and_rows(tmp_path):
    assert read_landmark_header(["image", "a_x", "a_y", "a_visible", "b_x", "b_y"], "f.csv") == (("a", "b"), (True, False))
    for header, message in ((["img", "a_x", "a_y"], "must start with 'image'"),
                            (["image", "a_x", "b_y"], "column 3 must be 'a_y'"),
                            (["image", "a_x", "a_y", "a_vis"], "column 4 'a_vis' does not follow"),
                            (["image", "a_x"], "'a_y' after 'a_x'"),
                            (["image"], "names no keypoint"),
                            (["image", "a_x", "a_y", "a_x", "a_y"], "repeated")):
        with pytest.raises(ValueError, match=message):
            read_landmark_header(header, "f.csv")
    path = write_landmark_csv(tmp_path, num_images=2, size=40)
    lines = path.read_text().splitlines()
    cells = lines[2].split(",")
    cells[4:7] = ["", "", "0"]  # left_wing of the second image: not labeled
    path.write_text("\n".join([lines[0], lines[1], ",".join(cells)]) + "\n")
    records = load_landmark_records(path, tmp_path / "images", normalize=(1, 2))
    assert records[0]["visible"].all() and records[1]["visible"].tolist() == [True, False, True, True, True]
    assert records[0]["norm"] > 0 and np.isnan(records[1]["norm"])  # no left wing: no normalizing distance
    assert load_landmark_records(path, tmp_path / "images")[0]["norm"] == pytest.approx(np.hypot(40, 40))
    bad = tmp_path / "bad.csv"
    bad.write_text(lines[0] + "\n" + lines[1].replace(lines[1].split(",")[1], "abc", 1) + "\n")
    with pytest.raises(ValueError, match=r"bad.csv:2: nose_x = 'abc' is not a number"):
        load_landmark_records(bad, tmp_path / "images")


def test_landmark_csv_module_and_metrics(tmp_path):
    path = write_landmark_csv(tmp_path, num_images=3, size=40)
    module = CSVLandmarkDataModule(train_csv=str(path), train_image_dir=str(tmp_path / "images"), num_workers=0,
                                   input_size=(32, 32), heatmap_size=(8, 8), normalize=["left_wing", "right_wing"])
    assert module.keypoint_names == KITE_NAMES and module.flip_pairs == ((1, 2), (3, 4))
    assert CSVLandmarkDataModule.num_keypoints_of({"train_csv": str(path)}) == 5
    sample = module.dataset("train")[0]
    assert sample["landmarks"].shape == (5, 2) and sample["visible"].all() and sample["norm"] > 0
    with pytest.raises(ValueError, match="--data.normalize"):
        CSVLandmarkDataModule(train_csv=str(path), normalize=["nose", "beak"])
    with pytest.raises(ValueError, match="--data.train_csv"):
        CSVLandmarkDataModule()
    target = np.zeros((2, 2, 2))
    pred = target + np.array([[[3.0, 4.0], [0.0, 0.0]], [[0.0, 0.0], [30.0, 40.0]]])
    metrics = evaluate_normalized(pred, target, np.array([[True, True], [True, False]]), np.array([100.0, 100.0]),
                                  names=("a", "b"), pck_threshold=0.1)
    assert metrics["nme"] == pytest.approx(100 * 0.05 / 3) and metrics["pck"] == 1.0  # the unlabeled 50 px is left out
    assert metrics["nme/b"] == 0.0


def test_keypoint_meta_rejects_bad_names():
    with pytest.raises(ValueError, match="unique"):
        KeypointMeta(names=("a", "a"))
    with pytest.raises(ValueError, match="no keypoint names"):
        KeypointMeta(names=())
