"""MTFL: the real training.txt, its quirks and errors, the split, crops/flip/rotation geometry, metrics."""

import math

import cv2
import numpy as np
import pytest
import torch

from sampling_argmax.data.mtfl import (
    FLIP_PAIRS,
    MTFLDataModule,
    MTFLDataset,
    cache_images,
    crop_sample,
    read_annotations,
    split_train_val,
    whole_image_box,
)
from sampling_argmax.metrics.base import EvaluationContext
from sampling_argmax.metrics.landmarks import (
    LandmarkEvaluator,
    absolute_error,
    evaluate_landmarks,
    interocular_distance,
    per_landmark_errors,
    relative_error,
)

LINE = "{path} 107.25 147.75 126.25 106.25 140.75 108.75 113.25 143.75 158.75 162.75 1 2 2 3"


@pytest.fixture(scope="module")
def mtfl_root(shared_data):
    root = shared_data / "MTFL"
    if not (root / "training.txt").is_file():
        pytest.skip(f"MTFL sample absent: {root / 'training.txt'} not found (see shared/data/README.md)")
    return root


@pytest.fixture(scope="module")
def records(mtfl_root):
    return read_annotations(mtfl_root / "training.txt")


# --- the real annotation file ---------------------------------------------------------------------------


def test_reads_every_training_line(mtfl_root, records):
    raw = (mtfl_root / "training.txt").read_bytes()
    assert b"\r\n" in raw and b"\\" in raw  # the quirks are really there
    assert len(records) == 10_000 == sum(1 for line in raw.splitlines() if line.strip())
    assert all(r.image.is_file() for r in records[::97])
    first, last = records[0], records[-1]
    assert first.image == mtfl_root / "lfw_5590" / "Aaron_Eckhart_0001.jpg"
    np.testing.assert_allclose(first.landmarks[:, 0], [107.25, 147.75, 126.25, 106.25, 140.75])
    np.testing.assert_allclose(first.landmarks[:, 1], [108.75, 113.25, 143.75, 158.75, 162.75])
    assert first.attributes == (1, 2, 2, 3)
    assert last.image.name == "_60_991_0.jpg" and last.source.endswith("training.txt:10000")
    subsets = [r.subset for r in records]
    assert subsets.count("lfw_5590") == 4151 and subsets.count("net_7876") == 5849


def _write(folder, lines, crlf=True):
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / "training.txt"
    file.write_bytes(("\r\n" if crlf else "\n").join(lines).encode() + b"\r\n")
    return file


def test_malformed_line_names_file_and_line(tmp_path):
    good = LINE.format(path="a\\x.jpg")
    file = _write(tmp_path, [good, " " + LINE.format(path="a\\z.jpg"), " a\\y.jpg 1 2 3"])
    with pytest.raises(ValueError, match=r"training\.txt:3: expected 15 fields"):
        read_annotations(file, check_images=False)
    file = _write(tmp_path, [good, " " + good.replace("126.25", "nose")])
    with pytest.raises(ValueError, match=r"training\.txt:2: non-numeric"):
        read_annotations(file, check_images=False)


def test_missing_image_names_file_line_and_image(tmp_path):
    (tmp_path / "lfw_5590").mkdir()
    cv2.imwrite(str(tmp_path / "lfw_5590" / "present.jpg"), np.zeros((180, 180, 3), np.uint8))
    file = _write(tmp_path, [LINE.format(path="lfw_5590\\present.jpg"), " " + LINE.format(path="lfw_5590\\gone.jpg")])
    with pytest.raises(FileNotFoundError, match=r"training\.txt:2: image .*lfw_5590/gone\.jpg does not exist"):
        read_annotations(file)
    assert len(read_annotations(file, check_images=False)) == 2


def test_missing_annotation_file_and_test_split_explain_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_root"):
        read_annotations(tmp_path / "training.txt")
    with pytest.raises(FileNotFoundError, match="testing.txt not found"):
        MTFLDataModule(data_root=str(tmp_path), test_split="official").setup("test")


def test_auto_test_split_is_the_official_one_when_present_and_says_which(tmp_path):
    auto = MTFLDataModule(data_root=str(tmp_path))
    assert auto.test_split == "val" and auto.references("test")["split"].startswith("validation split")
    (tmp_path / "testing.txt").write_text("")
    auto = MTFLDataModule(data_root=str(tmp_path))
    assert auto.test_split == "official" and auto.references("test")["split"] == "testing.txt (official test)"
    assert auto.references("val")["split"].startswith("validation split")


def test_validation_split_is_deterministic_stratified_and_disjoint(records):
    train, val = split_train_val(records, val_size=1000, seed=0)
    assert len(val) == 1000 and len(train) == 9000 and not set(train) & set(val)
    assert sum(records[i].subset == "lfw_5590" for i in val) == 415  # 1000 * 4151 / 10000, rounded
    assert split_train_val(records, 1000, 0) == (train, val)
    assert split_train_val(records, 1000, 1)[1] != val


# --- geometry: crops, flip, rotation ----------------------------------------------------------------------

LANDMARKS = np.array([[70.0, 80.0], [130.0, 84.0], [100.0, 115.0], [76.0, 140.0], [126.0, 142.0]])


def _dotted_image():
    """200x200 black image with a distinct red level painted at each landmark (value 50 * (k + 1))."""
    image = np.zeros((200, 200, 3), np.uint8)
    for k, (x, y) in enumerate(LANDMARKS.astype(int)):
        image[y - 3 : y + 4, x - 3 : x + 4, 0] = 50 * (k + 1)
    return image


def _dot_at(crop, point):
    x, y = np.round(point).astype(int)
    return int(crop[y, x, 0])


def test_flip_swaps_left_right_and_mirrors():
    center, side = np.array([100.0, 110.0]), 140.0
    plain = crop_sample(_dotted_image(), LANDMARKS, center, side, 0.0, False, 64, 64)
    flipped = crop_sample(_dotted_image(), LANDMARKS, center, side, 0.0, True, 64, 64)
    mirror = plain["target"].copy()
    mirror[:, 0] = 63 - mirror[:, 0]
    # the left-eye target is the mirrored right eye (and vice versa), same for the mouth corners; nose stays
    np.testing.assert_allclose(flipped["target"][0], mirror[1], atol=1e-5)
    np.testing.assert_allclose(flipped["target"][1], mirror[0], atol=1e-5)
    np.testing.assert_allclose(flipped["target"][3], mirror[4], atol=1e-5)
    np.testing.assert_allclose(flipped["target"][4], mirror[3], atol=1e-5)
    np.testing.assert_allclose(flipped["target"][2], mirror[2], atol=1e-5)
    assert flipped["target"][0, 0] < flipped["target"][1, 0]  # "left eye" stays on the image's left
    # the pixels follow: at the flipped left-eye target sits the original right eye's dot
    swapped = [1, 0, 2, 4, 3]
    for k in range(5):
        assert _dot_at(plain["image"], plain["target"][k]) == 50 * (k + 1)
        assert _dot_at(flipped["image"], flipped["target"][k]) == 50 * (swapped[k] + 1)
    # "to_original" undoes the mirror: channel k maps back onto the original landmark it was taken from
    back = flipped["to_original"][:2, :2] @ flipped["target"].T + flipped["to_original"][:2, 2:]
    np.testing.assert_allclose(back.T, LANDMARKS[swapped], atol=1e-4)


@pytest.mark.parametrize("theta", [30.0, -40.0])
def test_rotation_turns_landmarks_by_theta_about_the_crop_centre(theta):
    center, side = np.array([100.0, 110.0]), 150.0
    plain = crop_sample(_dotted_image(), LANDMARKS, center, side, 0.0, False, 96, 96)
    turned = crop_sample(_dotted_image(), LANDMARKS, center, side, theta, False, 96, 96)
    middle = (96 - 1) / 2
    a, b = plain["target"] - middle, turned["target"] - middle
    np.testing.assert_allclose(np.hypot(*b.T), np.hypot(*a.T), atol=1e-4)
    # counter-clockwise on screen (y down) = the math angle of (x, -y) grows by theta
    turn = np.degrees(np.arctan2(-b[:, 1], b[:, 0]) - np.arctan2(-a[:, 1], a[:, 0]))
    np.testing.assert_allclose((turn - theta + 180) % 360 - 180, 0.0, atol=1e-3)
    for k in range(5):
        assert _dot_at(turned["image"], turned["target"][k]) == 50 * (k + 1)


def test_targets_outside_the_crop_get_zero_weight():
    out = crop_sample(_dotted_image(), LANDMARKS, np.array([70.0, 80.0]), 40.0, 0.0, False, 64, 16)
    np.testing.assert_array_equal(out["target_weight"], [1, 0, 0, 0, 0])


def test_whole_image_box_letterboxes_without_labels():
    center, side = whole_image_box(160, 216)
    out = crop_sample(np.full((216, 160, 3), 255, np.uint8), LANDMARKS, center, side, 0.0, False, 64, 16)
    assert out["image"][:, :4].max() == 0 and out["image"][:, 30].min() == 255  # padded left/right only
    corners = out["to_original"] @ np.array([[-0.5, -0.5, 1.0], [15.5, 15.5, 1.0]]).T
    np.testing.assert_allclose(corners[:2].T, [[-28.5, -0.5], [187.5, 215.5]])


# --- the datasets on the real file -------------------------------------------------------------------------


def test_validation_samples_map_back_to_the_labels(mtfl_root, records):
    dataset = MTFLDataset(records[:3] + records[-3:], input_size=64, heatmap_size=16, train=False)
    for index in range(len(dataset)):
        sample = dataset[index]
        to_original, target = sample["to_original"].numpy(), sample["target"].numpy().astype(np.float64)
        back = target @ to_original[:2, :2].T + to_original[:2, 2]
        np.testing.assert_allclose(back, sample["landmarks"].numpy(), atol=1e-3)
        assert sample["interocular"] == pytest.approx(np.linalg.norm(np.subtract(*sample["landmarks"][:2].numpy())))
        assert sample["image"].shape == (3, 64, 64) and sample["target_weight"].tolist() == [1.0] * 5
    assert not torch.equal(dataset[0]["image"], dataset[1]["image"])
    assert torch.equal(dataset[0]["image"], dataset[0]["image"])  # evaluation is deterministic


def test_cached_images_give_the_same_samples(records, tmp_path):
    subset = records[:2] + records[-2:]
    direct = MTFLDataset(subset, 64, 16, train=False)
    cached = MTFLDataset(subset, 64, 16, train=False, images=cache_images(subset, 128, tmp_path))
    assert len(list(tmp_path.glob("*.npy"))) == 2
    for index in range(len(subset)):
        a, b = direct[index], cached[index]
        np.testing.assert_allclose(a["to_original"], b["to_original"], atol=1e-6)
        np.testing.assert_allclose(a["target"], b["target"], atol=1e-4)
        # same picture from the 2x-input-size copy: only resampling differences
        assert (a["image"] - b["image"]).abs().mean() < 0.1
    again = cache_images(subset, 128, tmp_path)  # second call memory-maps the file
    assert isinstance(again[0][0], np.memmap)


def test_training_batches_are_augmented_and_seeded(mtfl_root):
    def first_batch(seed):
        torch.manual_seed(seed)
        module = MTFLDataModule(str(mtfl_root), input_size=64, heatmap_size=16, batch_size=8, num_workers=0,
                                train_samples_per_epoch=24)
        module.setup("fit")
        loader = module.train_dataloader()
        assert len(loader) == 3 and len(module.train_set) == 9000 and len(module.val_set) == 1000
        return next(iter(loader))

    batch = first_batch(0)
    assert batch["image"].shape == (8, 3, 64, 64) and batch["target"].shape == (8, 5, 2)
    weighted = batch["target"][batch["target_weight"] > 0]
    assert weighted.min() >= -0.5 and weighted.max() <= 15.5
    assert batch["target_weight"].mean() > 0.8  # crops keep most faces whole
    assert torch.equal(first_batch(0)["image"], batch["image"])
    assert not torch.equal(first_batch(1)["target"], batch["target"])


# --- metrics, hand-checked -----------------------------------------------------------------------------------


def test_metrics_hand_checked():
    target = np.array([[[0.0, 0.0], [20.0, 0.0], [10.0, 10.0], [2.0, 20.0], [18.0, 20.0]]])  # inter-ocular 20
    pred = target.copy()
    pred[0, 2] += [3.0, 4.0]  # nose off by 5 px
    pred[0, 4] += [0.0, -10.0]  # right mouth corner off by 10 px
    assert interocular_distance(target).tolist() == [20.0]
    assert absolute_error(pred, target) == pytest.approx(3.0)  # (5 + 10) / 5
    assert relative_error(pred, target) == pytest.approx(15.0)  # (5/20 + 10/20) / 5 * 100
    assert relative_error(pred, target, np.array([10.0])) == pytest.approx(30.0)
    absolute, relative = per_landmark_errors(pred, target)
    np.testing.assert_allclose(absolute, [0, 0, 5, 0, 10])
    np.testing.assert_allclose(relative, [0, 0, 25, 0, 50])
    metrics = evaluate_landmarks(pred, target, np.array([20.0]))
    assert metrics["abs_err/nose"] == pytest.approx(5.0) and metrics["rel_err/right_mouth"] == pytest.approx(50.0)


def test_calibration_sign_and_errors():
    target = np.tile(np.array([[[0.0, 0.0], [10.0, 0.0], [5.0, 5.0], [1.0, 9.0], [9.0, 9.0]]]), (4, 1, 1))
    pred = target + np.array([0.5, 1.0, 2.0, 4.0])[:, None, None]
    confident_when_right = np.repeat(np.array([[0.9], [0.7], [0.4], [0.1]]), 5, axis=1)
    assert evaluate_landmarks(pred, target, confidence=confident_when_right)["calibration"] > 0.9
    assert evaluate_landmarks(pred, target, confidence=confident_when_right[::-1])["calibration"] < -0.9
    with pytest.raises(ValueError, match="interocular"):
        relative_error(pred, target, np.zeros(4))
    with pytest.raises(ValueError, match="confidence"):
        evaluate_landmarks(pred, target, confidence=np.ones((4, 2)))


def test_landmark_evaluator_reads_original_pixel_landmarks():
    landmarks = np.array([[[0.0, 0.0], [20.0, 0.0], [10.0, 10.0], [2.0, 20.0], [18.0, 20.0]]])
    outputs = {"pred": landmarks + [0.0, 2.0], "landmarks": landmarks, "interocular": np.array([20.0]),
               "confidence": np.ones((1, 5)), "target": np.zeros((1, 5, 2))}
    metrics = LandmarkEvaluator()(outputs, EvaluationContext("test"))
    assert metrics["abs_err"] == pytest.approx(2.0) and metrics["rel_err"] == pytest.approx(10.0)
    assert MTFLDataModule.num_keypoints == 5 and MTFLDataModule.flip_pairs == FLIP_PAIRS == [(0, 1), (3, 4)]


# --- faults: every bad input is named, nothing trains silently ---------------------------------------------------


def _faces(folder, count):
    (folder / "lfw_5590").mkdir(exist_ok=True)
    for i in range(count):
        # 180 x 180: LINE's landmarks (x and y up to 163) lie inside
        cv2.imwrite(str(folder / "lfw_5590" / f"f{i}.jpg"), np.full((180, 180, 3), 40 * i % 255, np.uint8))
    return [LINE.format(path=f"lfw_5590\\f{i}.jpg") for i in range(count)]


def test_duplicated_lines_never_straddle_train_and_validation(tmp_path):
    lines = _faces(tmp_path, 6)
    again = [lines[i].replace("107.25", f"10{k}.5") for k, i in enumerate((2, 4, 2))]  # relabelled, not verbatim
    file = _write(tmp_path, lines + again)  # three more lines of two faces
    records = read_annotations(file)
    with pytest.warns(UserWarning, match=r"training\.txt:3 and .*training\.txt:7"):
        for seed in range(5):
            train, val = split_train_val(records, val_size=2, seed=seed)
            train_images = {records[i].image for i in train}
            assert not train_images & {records[i].image for i in val}
            assert len({records[i].image for i in val}) == 2


def test_truncated_jpeg_is_an_error_naming_file_and_line(tmp_path):
    _faces(tmp_path, 2)
    jpeg = tmp_path / "lfw_5590" / "f1.jpg"
    cv2.imwrite(str(jpeg), np.random.default_rng(0).integers(0, 255, (180, 180, 3), dtype=np.uint8))  # half of it
    # keeps the header: the size check passes, decoding fails
    jpeg.write_bytes(jpeg.read_bytes()[: len(jpeg.read_bytes()) // 2])  # cut the file as a failed copy would
    file = _write(tmp_path, [LINE.format(path=f"lfw_5590\\f{i}.jpg") for i in range(2)])
    records = read_annotations(file)
    with pytest.raises(ValueError, match=r"training\.txt:2: cannot decode image .*f1\.jpg"):
        cache_images(records, 64, tmp_path / "cache")
    dataset = MTFLDataset(records, 64, 16, train=False)
    dataset[0]
    with pytest.raises(ValueError, match="truncated"):
        dataset[1]


@pytest.mark.parametrize("path", ["/etc/passwd", "..\\..\\secret.jpg", "lfw_5590\\..\\..\\x.jpg"])
def test_annotation_paths_cannot_leave_the_data_folder(tmp_path, path):
    file = _write(tmp_path, [LINE.format(path=path)])
    with pytest.raises(ValueError, match=r"training\.txt:1: image path .* leaves the data folder"):
        read_annotations(file, check_images=False)


def test_coincident_eyes_are_refused_at_load_time(tmp_path):
    line = "lfw_5590\\a.jpg 100 100 126 106 140 108 108 143 158 162 1 2 2 3"  # both eyes at (100, 108)
    with pytest.raises(ValueError, match=r"training\.txt:1: the two eyes are 0 px apart"):
        read_annotations(_write(tmp_path, [line]), check_images=False)


def test_corrupt_image_cache_names_the_file_and_the_fix(tmp_path):
    file = _write(tmp_path, _faces(tmp_path, 3))
    records = read_annotations(file)
    cache_images(records, 32, tmp_path / "cache")
    pixels = next((tmp_path / "cache").glob("mtfl_*[0-9a-f].npy"))
    pixels.write_bytes(pixels.read_bytes()[:100])  # a half-written cache from a killed process
    with pytest.raises(ValueError, match=r"cache .* is corrupt .* delete those two files"):
        cache_images(records, 32, tmp_path / "cache")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="cache_dir .* is a file"):
        cache_images(records, 32, tmp_path / "file")


def test_data_root_comes_from_the_argument_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("SAMPLING_ARGMAX_DATA", raising=False)
    with pytest.raises(ValueError, match="SAMPLING_ARGMAX_DATA"):
        MTFLDataModule()
    (tmp_path / "MTFL").mkdir()
    monkeypatch.setenv("SAMPLING_ARGMAX_DATA", str(tmp_path))
    assert MTFLDataModule().data_root == tmp_path / "MTFL"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        MTFLDataModule(data_root=str(tmp_path / "nowhere"))
