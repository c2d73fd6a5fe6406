"""The shared record checks (data/validation.py), one test per fault class of every reader, the data report, the
content-keyed caches, and the CI switch that makes a missing data sample a failure. Small generated files only."""

import json
import os
import pickle
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from writers import (
    coco_person,
    mpii_person,
    mtfl_line,
    write_coco,
    write_h36m_npz,
    write_image,
    write_pcd,
    write_vol,
)

from sampling_argmax.data import oct as oct_data
from sampling_argmax.data.coco import COCODataModule
from sampling_argmax.data.coco_files import load_detection_records, load_person_records
from sampling_argmax.data.h36m import load_cameras, load_h36m_annotations, load_mpii_annotations
from sampling_argmax.data.keypointnet import KeypointNetDataModule, read_annotations as read_kpn, read_cloud, read_pcd, read_split
from sampling_argmax.data.mtfl import cache_images, read_annotations as read_mtfl
from sampling_argmax.data.validation import (
    DataError,
    DataReport,
    UniqueRecords,
    check_centre_scale,
    check_image_size,
    check_inside_image,
    check_nonempty,
    image_size,
    integer,
    numbers,
)

FACE = np.array([[30.0, 30.0], [50.0, 30.0], [40.0, 40.0], [32.0, 50.0], [48.0, 50.0]])
KPTS = [(10.0, 8.0, 2), (20.0, 12.0, 1)]


# ---------------------------------------------------------------------------------------------- the checks


@pytest.mark.parametrize("value, reason", [
    (["1", 2], "a string"), ([1, None], "null"), ([True, 2], "true/false"), ([1, {"x": 1}], "a dict"),
    ("abc", "a string"), (np.array(["a"]), "an array of <U1"),
])
def test_numbers_refuse_what_is_not_a_number_naming_the_record(value, reason):
    with pytest.raises(DataError, match=rf"f\.json: entry 3: 'center' must hold numbers, .*\({reason}"):
        numbers(value, "f.json: entry 3", "center")


def test_numbers_refuse_nan_inf_ragged_and_wrong_shapes():
    for value in ([1, float("nan")], [float("inf")]):
        with pytest.raises(DataError, match="NaN or infinite"):
            numbers(value, "w", "x")
    with pytest.raises(DataError, match="one shape"):
        numbers([[1, 2], [3]], "w", "x")
    with pytest.raises(DataError, match=r"must be 16 x 2, got shape \(15, 2\)"):
        numbers(np.zeros((15, 2)).tolist(), "w", "joints", shape=(16, 2))
    assert integer(3.0, "w", "n") == 3
    with pytest.raises(DataError, match="must be an integer"):
        integer(2.5, "w", "n")


@pytest.mark.parametrize("center, scale, match", [
    ([1, float("nan")], 1.0, "NaN"), ("abc", 1.0, "a string"), (None, 1.0, "center is missing"),
    ([1, 2], None, "scale is missing"), ([1, 2], 0, "must be > 0"), ([1, 2], -2.0, "must be > 0"),
    ([1, 2, 3], 1.0, r"must be 2, got shape \(3,\)"), ([1, 2], "1", "a string"),
])
def test_centre_and_scale_must_be_present_numeric_and_positive(center, scale, match):
    with pytest.raises(DataError, match=match):
        check_centre_scale(center, scale, "p.json entry 0")


def test_inside_the_image_rule_has_a_stated_tolerance():
    check_inside_image(np.array([[-0.5 - 4.9, 99.5 + 4.9]]), None, 100, 100, "w")  # within 5 % of 100 px
    with pytest.raises(DataError, match=r"w: keypoints 0 at \(-5000, 3\) lies outside the 100 x 100 image"):
        check_inside_image(np.array([[-5000.0, 3.0]]), None, 100, 100, "w")
    check_inside_image(np.array([[-5000.0, 3.0]]), np.array([False]), 100, 100, "w")  # unlabeled: not checked


def test_nonempty_and_unique_records():
    with pytest.raises(DataError, match="'keypoints' is empty"):
        check_nonempty([], "a.json: entry 0", "keypoints")
    with pytest.raises(DataError, match="must be a list"):
        check_nonempty("x", "a.json: entry 0", "keypoints")
    seen = UniqueRecords("annotation")
    seen.add(1, {"a": np.array([1.0, 2.0])}, "#0")
    with pytest.raises(DataError, match="#1 has the same id 1 as #0"):
        seen.add(1, {"a": [3]}, "#1")
    with pytest.raises(DataError, match=r"#2 repeats #0 \(identical content\)"):
        seen.add(2, {"a": [1.0, 2.0]}, "#2")


def test_image_size_reads_the_header_and_is_cached_by_size_and_mtime(tmp_path):
    path = write_image(tmp_path / "a.png", 40, 30)
    assert image_size(path) == (40, 30)
    check_image_size(path, 40, 30, "w")
    with pytest.raises(DataError, match=r"w: states the image is 41 x 30 but .*a\.png is 40 x 30"):
        check_image_size(path, 41, 30, "w")
    write_image(path, 52, 30)  # replaced: another size (and mtime)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert image_size(path) == (52, 30)
    (tmp_path / "b.png").write_text("not an image")
    with pytest.raises(DataError, match=r"rec: cannot read the header of image .*b\.png"):
        image_size(tmp_path / "b.png", "rec")
    assert check_image_size(tmp_path / "gone.png", 1, 1, "w") is False  # a missing file fails when it is read


# ---------------------------------------------------------------------------------------------- COCO


def _coco(tmp_path, annotations=None, images=((1, "a.png", 40, 30),), **kwargs):
    anns = annotations if annotations is not None else [coco_person(1, 1, KPTS)]
    return write_coco(tmp_path, list(images), anns, **kwargs)


def test_coco_wrong_image_size_is_an_error_not_a_silent_drop(tmp_path):
    ann = _coco(tmp_path, images=[(1, "a.png", 40, 30)])
    assert len(load_person_records(ann, tmp_path)) == 1
    write_image(tmp_path / "a.png", 400, 300)  # the json says 40 x 30
    with pytest.raises(ValueError, match=r"image id 1 \(a\.png\): states the image is 40 x 30 but .* is 400 x 300"):
        load_person_records(ann, tmp_path)


@pytest.mark.parametrize("mutate, match", [
    (lambda a: a.update(keypoints=["10"] + a["keypoints"][1:]), r"annotation #0 \(id 1\): 'keypoints' must hold numbers.*a string"),
    (lambda a: a.update(num_keypoints=5), r"annotation #0 \(id 1\): num_keypoints is 5 but 2 keypoints"),
    (lambda a: a["keypoints"].__setitem__(0, -5000.0), r"annotation #0 \(id 1\): keypoints 0 at \(-5000, 8\) lies outside"),
    (lambda a: a["keypoints"].__setitem__(2, 3.0), r"visibility flags must be 0 .* 1 .* or 2"),
    (lambda a: a.update(keypoints=[]), r"'keypoints' must hold 17 x 3 numbers"),
    (lambda a: a.update(area="big"), r"'area' must hold numbers"),
    (lambda a: a.update(bbox=[500, 500, 10, 10]), r"'bbox' .* lies outside the 40 x 30 image"),
    (lambda a: a.pop("id"), r"annotation #0 \(id \?\) has no 'id'"),
    (lambda a: a.pop("keypoints"), r"has no 'keypoints'"),
    (lambda a: a.update(image_id=[1]), r"image_id \[1\] is not in the file's 'images' list"),
])
def test_coco_annotation_faults_name_the_file_and_the_record(tmp_path, mutate, match):
    ann = coco_person(1, 1, KPTS)
    mutate(ann)
    path = _coco(tmp_path, [ann])
    with pytest.raises(ValueError, match=match):
        load_person_records(path, tmp_path)


def test_coco_repeated_annotations_are_errors(tmp_path):
    path = _coco(tmp_path, [coco_person(1, 1, KPTS), coco_person(1, 1, [(5.0, 5.0, 2)])])
    with pytest.raises(ValueError, match=r"annotation #1 \(id 1\) has the same id 1 as .*annotation #0"):
        load_person_records(path, tmp_path)
    path = _coco(tmp_path, [coco_person(1, 1, KPTS), coco_person(2, 1, KPTS)])
    with pytest.raises(ValueError, match=r"annotation #1 \(id 2\) repeats .*annotation #0 .*identical content"):
        load_person_records(path, tmp_path)
    path = _coco(tmp_path, images=[(1, "a.png", 40, 30), (1, "b.png", 40, 30)])
    with pytest.raises(ValueError, match=r"image #1 \(id 1\) has the same id 1 as"):
        load_person_records(path, tmp_path)


def test_coco_drops_by_convention_are_counted_in_the_report(tmp_path):
    anns = [coco_person(1, 1, KPTS), coco_person(2, 1, KPTS[:1], iscrowd=1), coco_person(3, 1, []),
            coco_person(4, 1, [(3.0, 3.0, 2)], box=(2, 2, 0, 5)), coco_person(5, 1, [(4.0, 4.0, 2)], category_id=2)]
    report = DataReport("val")
    records = load_person_records(_coco(tmp_path, anns), tmp_path, report)
    assert [r["ann_id"] for r in records] == [1]
    assert (report.read, report.kept) == (5, 1)
    assert report.dropped == {"crowd region (iscrowd=1)": 1, "no labeled keypoint (num_keypoints 0)": 1,
                              "box of zero width or height": 1, "another category (category_id != 1)": 1}
    assert "annotation #1 (id 2)" in report.examples["crowd region (iscrowd=1)"]
    assert "5 read, 1 kept, 4 dropped" in report.summary()


def test_coco_detections_are_checked_and_their_drops_reported(tmp_path):
    ann = _coco(tmp_path)
    dets = [{"image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10], "score": 0.9},
            {"image_id": 1, "category_id": 1, "bbox": [2, 2, 10, 10], "score": 0.1}]
    (tmp_path / "det.json").write_text(json.dumps(dets))
    report = DataReport("test")
    assert len(load_detection_records(tmp_path / "det.json", ann, tmp_path, 0.5, report)) == 1
    assert report.dropped == {"score below det_score_threshold 0.5": 1}
    (tmp_path / "det.json").write_text(json.dumps(dets + [dets[0]]))
    with pytest.raises(ValueError, match=r"det\.json: detection #2 repeats .*detection #0"):
        load_detection_records(tmp_path / "det.json", ann, tmp_path)
    (tmp_path / "det.json").write_text(json.dumps([dict(dets[0], score="0.9")]))
    with pytest.raises(ValueError, match=r"detection #0: 'score' must hold numbers"):
        load_detection_records(tmp_path / "det.json", ann, tmp_path)


def test_the_data_module_prints_and_saves_its_report_in_the_run_folder(tmp_path, capsys):
    anns = [coco_person(1, 1, KPTS), coco_person(2, 1, KPTS[:1], iscrowd=1)]
    _coco(tmp_path / "data" / "annotations", anns, name="person_keypoints_val2017.json", write_images=False)
    write_image(tmp_path / "data" / "val2017" / "a.png", 40, 30)
    module = COCODataModule(data_root=str(tmp_path / "data"), num_workers=0)
    module.trainer = SimpleNamespace(default_root_dir=str(tmp_path / "run"), is_global_zero=True)  # as Lightning does
    module.setup("validate")
    assert "data report, val: " in capsys.readouterr().out
    saved = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert saved["val"]["read"] == 2 and saved["val"]["kept"] == 1
    assert saved["val"]["dropped"] == {"crowd region (iscrowd=1)": 1}
    assert module.save_data_reports(tmp_path / "elsewhere").is_file()


# ---------------------------------------------------------------------------------------------- MTFL


def _mtfl(tmp_path, lines, size=(80, 80)):
    write_image(tmp_path / "lfw_5590" / "a.jpg", *size)
    write_image(tmp_path / "lfw_5590" / "b.jpg", *size)
    (tmp_path / "training.txt").write_text("\r\n".join(lines) + "\r\n")
    return tmp_path / "training.txt"


def test_mtfl_landmark_outside_the_image_is_an_error_naming_the_line(tmp_path):
    far = FACE.copy()
    far[2] = (-5000.0, 40.0)
    file = _mtfl(tmp_path, [mtfl_line("lfw_5590\\a.jpg", FACE), mtfl_line("lfw_5590\\b.jpg", far)])
    with pytest.raises(ValueError, match=r"training\.txt:2: landmark 2 at \(-5000, 40\) lies outside the 80 x 80"):
        read_mtfl(file)


@pytest.mark.parametrize("line, match", [
    (mtfl_line("lfw_5590\\b.jpg", FACE, attributes=(1, 2, 0, 3)), r"training\.txt:2: 'glasses' must be an integer code >= 1"),
    (mtfl_line("lfw_5590\\b.jpg", FACE, attributes=(1, 2.5, 2, 3)), r"training\.txt:2: 'smile' must be an integer code"),
    (mtfl_line("lfw_5590\\a.jpg", FACE), r"training\.txt:2 repeats .*training\.txt:1 \(identical content\)"),
    (mtfl_line("lfw_5590\\b.jpg", FACE).replace("40", "nan", 1), r"training\.txt:2: non-finite landmark"),
])
def test_mtfl_line_faults_name_the_line(tmp_path, line, match):
    with pytest.raises(ValueError, match=match):
        read_mtfl(_mtfl(tmp_path, [mtfl_line("lfw_5590\\a.jpg", FACE), line]))


def test_mtfl_image_cache_sees_an_edited_image(tmp_path):
    records = read_mtfl(_mtfl(tmp_path, [mtfl_line("lfw_5590\\a.jpg", FACE)]))
    first = np.array(cache_images(records, 64, tmp_path / "cache")[0][0])
    write_image(tmp_path / "lfw_5590" / "a.jpg", 80, 80, value=200)  # edited in place, same path
    os.utime(tmp_path / "lfw_5590" / "a.jpg", ns=(time.time_ns(), time.time_ns() + 10**9))
    second = np.array(cache_images(records, 64, tmp_path / "cache")[0][0])
    assert abs(float(first.mean()) - 90) < 3 and abs(float(second.mean()) - 200) < 3
    assert len(list((tmp_path / "cache").glob("mtfl_*_index.npy"))) == 2  # a new cache, the old one untouched


# ---------------------------------------------------------------------------------------------- MPII / Human3.6M


def _mpii(tmp_path, people, size=(60, 50)):
    write_image(tmp_path / "p.jpg", *size)
    (tmp_path / "mpii.json").write_text(json.dumps(people))
    return tmp_path / "mpii.json"


JOINTS = np.stack([np.linspace(5, 40, 16), np.linspace(5, 30, 16)], 1)


@pytest.mark.parametrize("change, match", [
    (dict(scale=0), r"mpii\.json entry 1: 'scale' must be > 0"),
    (dict(center="abc"), r"mpii\.json entry 1: 'center' must hold numbers, got 'abc'"),
    (dict(center=None), r"mpii\.json entry 1: center is missing"),
    (dict(center=[float("nan"), 3.0]), r"mpii\.json entry 1: 'center' holds NaN"),
    (dict(joints=(JOINTS + [[-5000, 0]]).tolist()), r"mpii\.json entry 1: joint 0 at \(-4996, 4\) lies outside"),
    (dict(joints_vis=[2] * 16), r"joints_vis must be 16 flags 0 or 1"),
    (dict(joints=JOINTS[:15].tolist()), r"'joints' must be 16 x 2"),
    (dict(image=""), r"entry 1: image '' must be a file name"),
])
def test_mpii_person_faults_name_the_entry(tmp_path, change, match):
    people = [mpii_person("p.jpg", JOINTS), dict(mpii_person("p.jpg", JOINTS + 1), **change)]
    with pytest.raises(ValueError, match=match):
        load_mpii_annotations(_mpii(tmp_path, people), tmp_path)


def test_mpii_repeated_person_and_empty_list_are_errors(tmp_path):
    with pytest.raises(ValueError, match=r"entry 1 repeats .*entry 0"):
        load_mpii_annotations(_mpii(tmp_path, [mpii_person("p.jpg", JOINTS)] * 2), tmp_path)
    with pytest.raises(ValueError, match=r"mpii\.json: 'people' is empty"):
        load_mpii_annotations(_mpii(tmp_path, []), tmp_path)
    assert len(load_mpii_annotations(_mpii(tmp_path, [mpii_person("p.jpg", JOINTS)]), tmp_path)) == 1


def _h36m(tmp_path, **changes):
    names = ["S1_Directions_1.54138969_000001.jpg", "S1_Directions_1.54138969_000002.jpg"]
    joints = np.tile(np.array([0.1, 0.2, 4.0]), (2, 17, 1))
    arrays = dict(names=names, centers=[[500.0, 500.0], [510.0, 500.0]], scales=[1.0, 1.1], joints_m=joints)
    arrays.update(changes)
    return write_h36m_npz(tmp_path / "h36m.npz", **arrays)


CAMERAS = {("S1", "54138969"): {"f": [1145.0, 1144.0], "c": [512.0, 515.0]}}


@pytest.mark.parametrize("changes, match", [
    (dict(centers=[[500.0, 500.0], [np.nan, 500.0]]), r"h36m\.npz row 1 .*: center is not two finite numbers"),
    (dict(scales=[1.0, 0.0]), r"row 1 .*: scale is not a positive number"),
    (dict(joints_m=np.tile(np.array([0.1, 0.2, -4.0]), (2, 17, 1))), r"row 0 .*depth Z <= 0"),
    (dict(joints_m=np.full((2, 17, 3), np.inf)), r"row 0 .*S holds a NaN, infinite or beyond"),
    (dict(names=["S1_Directions_1.54138969_000001.jpg"] * 2), r"row 1 .* has the same id"),
    (dict(scales=np.array(["1", "2"])), r"h36m\.npz: scale holds <U1 values"),
    (dict(names=[], centers=np.zeros((0, 2)), scales=np.zeros(0), joints_m=np.zeros((0, 17, 3))), r"holds no frames"),
])
def test_h36m_frame_faults_name_the_row(tmp_path, changes, match):
    with pytest.raises(ValueError, match=match):
        load_h36m_annotations(_h36m(tmp_path, **changes), tmp_path, CAMERAS)


def test_h36m_unreadable_files_and_bad_cameras_are_named(tmp_path):
    assert len(load_h36m_annotations(_h36m(tmp_path), tmp_path, CAMERAS)) == 2
    with pytest.raises(ValueError, match=r"camera \('S1', '54138969'\) needs f = \[fx, fy\] > 0"):
        load_h36m_annotations(_h36m(tmp_path), tmp_path, {("S1", "54138969"): {"f": [0, 1], "c": [1, 1]}})
    with pytest.raises(ValueError, match=r"camera \('S1', '54138969'\) has no 'f' and 'c'"):
        load_h36m_annotations(_h36m(tmp_path), tmp_path, {("S1", "54138969"): {"R": 1}})
    (tmp_path / "bad.npz").write_text("not a zip")
    with pytest.raises(ValueError, match=r"bad\.npz: not a readable \.npz archive"):
        load_h36m_annotations(tmp_path / "bad.npz", tmp_path, CAMERAS)
    (tmp_path / "cameras.pkl").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"cameras\.pkl: not a readable pickle"):
        load_cameras(tmp_path / "cameras.pkl")
    (tmp_path / "cameras.pkl").write_bytes(pickle.dumps(CAMERAS))
    assert load_cameras(tmp_path / "cameras.pkl") == CAMERAS


# ---------------------------------------------------------------------------------------------- KeypointNet / clouds


def test_pcd_with_no_points_or_huge_coordinates_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"empty\.pcd: PCD POINTS 0 .* needs at least one point"):
        read_pcd(write_pcd(tmp_path / "empty.pcd", []))
    with pytest.raises(ValueError, match=r"huge\.pcd:13: non-finite coordinate, or one beyond"):
        read_pcd(write_pcd(tmp_path / "huge.pcd", [[0, 0, 0], [1e30, 0, 0]]))
    with pytest.raises(ValueError, match=r"cloud\.npy: the cloud holds the coordinate 1e\+30"):
        np.save(tmp_path / "cloud.npy", np.array([[0, 0, 0], [1e30, 0, 0]], np.float32))
        read_cloud(tmp_path / "cloud.npy", "cloud.npy", 2)


def test_predict_on_an_unusable_cloud_is_a_clear_error_of_that_file(tmp_path):
    """predict lists the file in failures.csv (a ValueError per input) instead of aborting with an IndexError."""
    from sampling_argmax.data.base import RawInput

    module = KeypointNetDataModule("airplane", data_root=str(tmp_path), num_points=2)
    bad = write_pcd(tmp_path / "bad.pcd", [[0, 0, 0], [1e30, 0, 0]])
    with pytest.raises(ValueError, match=r"bad\.pcd:13: non-finite coordinate, or one beyond"):
        module.prepare(RawInput(bad, str(bad)))
    good = write_pcd(tmp_path / "good.pcd", [[0, 0, 0], [1, 0, 0]])
    assert module.prepare(RawInput(good, str(good)))["points"].shape == (2, 3)


@pytest.mark.parametrize("keypoints, match", [
    ([{"semantic_id": "0", "pcd_info": {"point_index": 1}}], r"entry 0 \(model m1\), keypoint 0: 'semantic_id' must hold numbers"),
    ([{"semantic_id": 0, "pcd_info": {"point_index": 1.5}}], r"keypoint 0: 'point_index' must be an integer"),
    ([{"semantic_id": 0, "pcd_info": {"point_index": "abc"}}], r"'point_index' must hold numbers"),
    ([], r"entry 0 \(model m1\): 'keypoints' is empty"),
])
def test_keypointnet_annotation_faults_name_the_entry(tmp_path, keypoints, match):
    (tmp_path / "a.json").write_text(json.dumps([{"class_id": "02691156", "model_id": "m1", "keypoints": keypoints}]))
    with pytest.raises(ValueError, match=match):
        read_kpn(tmp_path / "a.json", "02691156")


def test_keypointnet_repeated_split_line_and_missing_cloud_report(tmp_path):
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "train.txt").write_text("02691156-m1\n02691156-m1\n")
    with pytest.raises(ValueError, match=r"train\.txt:2 has the same id '02691156-m1' as .*train\.txt:1"):
        read_split(tmp_path / "splits" / "train.txt", "02691156")
    (tmp_path / "splits" / "train.txt").write_text("02691156-m1\n02691156-m2\n")
    (tmp_path / "annotations").mkdir()
    models = [{"class_id": "02691156", "model_id": m, "keypoints": [{"semantic_id": 0, "pcd_info": {"point_index": 1}}]}
              for m in ("m1", "m2")]
    (tmp_path / "annotations" / "airplane.json").write_text(json.dumps(models))
    write_pcd(tmp_path / "pcds" / "02691156" / "m1.pcd", np.zeros((4, 3)) + np.arange(4)[:, None])
    module = KeypointNetDataModule("airplane", data_root=str(tmp_path), num_points=4, missing_clouds="skip")
    with pytest.warns(UserWarning, match="skipped 1"):
        assert len(module.load_split("train")) == 1
    report = module.data_reports["train"]
    assert (report.read, report.kept, dict(report.dropped)) == (2, 1, {"no cloud (missing_clouds=skip)": 1})


# ---------------------------------------------------------------------------------------------- OCT


def test_oct_rows_outside_the_bscan_and_infinite_rows_are_errors(tmp_path):
    from scipy.io import savemat

    height, width = 48, 16
    write_vol(tmp_path / "hc01.vol", np.full((2, height, width), 0.2, np.float32))
    rows = np.tile(np.linspace(10, 30, 9), (width, 1))[:, None, :].repeat(2, axis=1)  # (W, B, 9) 1-based
    rows[:, 1] = 0  # the second B-scan is not delineated
    savemat(tmp_path / "hc01.mat", {"bd_pts": rows})
    report = DataReport("test")
    out = oct_data.prepare_volume(tmp_path / "hc01.vol", tmp_path / "hc01.mat", 16, 0.0, 1, width, report)
    assert out[5].tolist() == [0] and report.dropped == {"B-scan not delineated": 1} and report.kept == 1
    rows[3, 0, 4] = 900.0
    savemat(tmp_path / "hc01.mat", {"bd_pts": rows})
    with pytest.raises(ValueError, match=r"hc01\.mat B-scan 0: boundary row .* lies outside the 16 x 48 image"):
        oct_data.prepare_volume(tmp_path / "hc01.vol", tmp_path / "hc01.mat", 16, 0.0, 1, width)
    rows[3, 0, 4] = np.inf
    savemat(tmp_path / "hc01.mat", {"bd_pts": rows})
    with pytest.raises(ValueError, match=r"hc01\.mat: bd_pts holds infinite rows"):
        oct_data.read_delineation(tmp_path / "hc01.mat")


def test_the_vol_cache_reads_a_replaced_volume_again(tmp_path):
    path = write_vol(tmp_path / "a.vol", np.full((1, 8, 4), 0.2, np.float32))
    assert oct_data.BScanPredict._volume(path).bscans.shape == (1, 8, 4)
    write_vol(path, np.full((2, 8, 4), 0.2, np.float32))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert oct_data.BScanPredict._volume(path).bscans.shape == (2, 8, 4)


# ---------------------------------------------------------------------------------------------- CI: data required


@pytest.mark.slow  # a nested pytest session (about 10 s on the 2-core machine)
def test_a_missing_data_sample_fails_under_the_ci_switch(pytester, monkeypatch):
    """Under SAMPLING_ARGMAX_REQUIRE_DATA=1 (.ci/run) a test that needs ../shared/data fails instead of skipping,
    both through the shared_data fixture and through a test's own "sample absent" skip."""
    root = Path(__file__).resolve().parents[2]
    pytester.makeconftest((root / "tests" / "conftest.py").read_text())
    pytester.makepyfile(test_needs_data="""
import pytest

def test_uses_the_folder(shared_data):
    pass

def test_own_sample_check():
    pytest.skip("MTFL sample absent: training.txt not found (see shared/data/README.md)")

def test_other_skip():
    pytest.skip("no GPU")
""")
    monkeypatch.setenv("SAMPLING_ARGMAX_DATA", str(pytester.path / "absent"))
    monkeypatch.setenv("SAMPLING_ARGMAX_REQUIRE_DATA", "1")
    required = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    required.assert_outcomes(failed=1, errors=1, skipped=1)
    assert "the real data samples are required here" in required.stdout.str()
    monkeypatch.setenv("SAMPLING_ARGMAX_REQUIRE_DATA", "0")
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(skipped=3)
    assert 'SAMPLING_ARGMAX_REQUIRE_DATA="${SAMPLING_ARGMAX_REQUIRE_DATA:-1}"' in (root / ".ci" / "run").read_text()
