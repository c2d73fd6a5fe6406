"""One test per reader error message that no other test reaches (COCO, Human3.6M/MPII, KeypointNet, MTFL, OCT), each on a
small generated file: the error type, and a message that names the file or argument and says the fix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from writers import PCD_HEADER, coco_person, mpii_person, write_coco, write_h36m_npz, write_image, write_pcd, write_vol

from sampling_argmax.data import oct as oct_data
from sampling_argmax.data.base import RawInput
from sampling_argmax.data.coco import COCODataModule
from sampling_argmax.data.coco_files import detections_by_file, load_detection_records, load_person_records
from sampling_argmax.data.h36m import H36MDataModule, load_cameras, load_h36m_annotations, load_mpii_annotations
from sampling_argmax.data.keypointnet import (
    KeypointNetDataModule,
    check_augmentation,
    read_annotations,
    read_cloud,
    read_pcd,
    read_split,
)
from sampling_argmax.data.mtfl import MTFLDataModule, crop_sample, read_annotations as read_mtfl, split_train_val
from sampling_argmax.data.validation import check_centre_scale, check_points

KPTS = [(10.0, 8.0, 2), (20.0, 12.0, 1)]


def _json(path: Path, value) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))
    return path


# ---------------------------------------------------------------------------------------------- COCO


def _coco_ann(tmp: Path) -> Path:
    return write_coco(tmp, [(1, "a.png", 40, 30)], [coco_person(1, 1, KPTS)])


def _coco_module(tmp: Path, annotations=None, **kwargs) -> COCODataModule:
    write_coco(tmp / "annotations", [(1, "a.png", 40, 30)], annotations if annotations is not None else
               [coco_person(1, 1, KPTS)], write_images=False, name="person_keypoints_val2017.json")
    write_image(tmp / "val2017" / "a.png", 40, 30)
    return COCODataModule(data_root=str(tmp), num_workers=0, **kwargs)


COCO_CASES = {
    "detection file not a list": (
        lambda t: load_detection_records(_json(t / "d.json", {"a": 1}), _coco_ann(t), t),
        ValueError, r"d\.json must hold a json list of detections"),
    "--boxes not a list": (
        lambda t: detections_by_file(_json(t / "b.json", {"a": 1}), []),
        ValueError, r"--boxes .*b\.json must hold a json list of detections, got dict"),
    "--boxes entry not an object": (
        lambda t: detections_by_file(_json(t / "b.json", [[1, 2]]), []),
        ValueError, r"b\.json: detection #0 must be a json object with image_id \(or file_name\)"),
    "--boxes score a list": (
        lambda t: detections_by_file(_json(t / "b.json", [{"image_id": 1, "bbox": [0, 0, 5, 5], "score": [1, 2]}]), []),
        ValueError, r"detection #0: 'score' must be one number"),
    "--boxes image_id not an integer": (
        lambda t: detections_by_file(_json(t / "b.json", [{"image_id": "x7", "bbox": [0, 0, 5, 5], "score": 1}]),
                                     [t / "000000000007.jpg"]),
        ValueError, r"detection #0: image_id 'x7' is not an integer; give 'file_name' instead"),
    "image width 0": (
        lambda t: load_person_records(_json(t / "p.json", {"images": [{"id": 1, "file_name": "a.png", "width": 0,
                                                                        "height": 30}], "annotations": []}), t),
        ValueError, r"p\.json: image #0 \(id 1\): 'width' must be >= 1, got 0"),
    "no person in the split": (
        lambda t: _coco_module(t, [coco_person(1, 1, [])]).build_dataset("val"),
        ValueError, r"no person boxes found for stage 'val' in .*person_keypoints_val2017\.json"),
    "predict: array not RGB": (
        lambda t: _coco_module(t).prepare(RawInput(np.zeros((4, 4, 2), np.uint8), "arr[0]")),
        ValueError, r"arr\[0\]: expected an \(H, W, 3\) uint8 RGB image"),
    "predict: unreadable image": (
        lambda t: _coco_module(t).prepare(RawInput(_json(t / "x.jpg", 1), "x.jpg")),
        ValueError, r"x\.jpg: cannot read the image \(missing, truncated or not an image file\)"),
    "predict: box outside the image": (
        lambda t: _coco_module(t).prepare(RawInput(t / "val2017" / "a.png", "a.png", box=(100, 100, 5, 5))),
        ValueError, r"a\.png: the box .* is empty inside the 40x30 image"),
}


@pytest.mark.parametrize("case", list(COCO_CASES))
def test_coco_reader_errors(tmp_path, case):
    call, kind, match = COCO_CASES[case]
    with pytest.raises(kind, match=match):
        call(tmp_path)


# ---------------------------------------------------------------------------------------------- Human3.6M / MPII

NAMES = ["S1_Directions_1.54138969_000001.jpg", "S1_Directions_1.54138969_000002.jpg"]
CAMERAS = {("S1", "54138969"): {"f": [1145.0, 1144.0], "c": [512.0, 515.0]}}
JOINTS = np.tile(np.array([0.1, 0.2, 4.0]), (2, 17, 1))


def _npz(tmp: Path, names=NAMES, centers=((500.0, 500.0), (510.0, 500.0)), scales=(1.0, 1.1), joints=JOINTS) -> Path:
    return write_h36m_npz(tmp / "h36m.npz", list(names), np.asarray(centers), np.asarray(scales), joints)


def _h36m_module(tmp: Path, **kwargs) -> H36MDataModule:
    _npz(tmp)
    (tmp / "cameras.pkl").write_bytes(__import__("pickle").dumps(CAMERAS))
    return H36MDataModule(data_root=str(tmp), train_annotation="h36m.npz", test_annotation="h36m.npz",
                          num_workers=0, **kwargs)


H36M_CASES = {
    "cameras.pkl missing": (lambda t: load_cameras(t / "cameras.pkl"), FileNotFoundError,
                            r"cameras\.pkl does not exist: Human3\.6M needs the camera parameters"),
    "center of another shape": (lambda t: load_h36m_annotations(_npz(t, centers=[[1, 2, 3], [1, 2, 3]]), t, CAMERAS),
                                ValueError, r"h36m\.npz: center has shape \(2, 3\) and scale \(2,\); expected \(N, 2\)"),
    "npz missing": (lambda t: load_h36m_annotations(t / "none.npz", t, CAMERAS), FileNotFoundError,
                    r"none\.npz does not exist: give the split's annotation \.npz"),
    "stride 0": (lambda t: load_h36m_annotations(_npz(t), t, CAMERAS, stride=0), ValueError, r"stride=0 must be >= 1"),
    "field missing": (lambda t: load_h36m_annotations(_drop_field(_npz(t), "scale"), t, CAMERAS), ValueError,
                      r"h36m\.npz has no field\(s\) \['scale'\] .*preprocess_h36m\.py"),
    "rows that do not match": (lambda t: load_h36m_annotations(_npz(t, scales=[1.0]), t, CAMERAS), ValueError,
                               r"imgname, center, scale and S have 2, 2, 1, 2 rows; they must match"),
    "image name of another layout": (lambda t: load_h36m_annotations(_npz(t, names=["a.jpg", "b.jpg"]), t, CAMERAS),
                                     ValueError, r"h36m\.npz row 0: imgname 'a\.jpg' is not <subject>_<sequence>"),
    "MPII json missing": (lambda t: load_mpii_annotations(t / "mpii.json", t), FileNotFoundError,
                          r"mpii\.json does not exist: give MPII's annotation json .* or mix_mpii: false"),
    "MPII json not json": (lambda t: load_mpii_annotations(_text(t / "mpii.json", "{oops"), t), ValueError,
                           r"mpii\.json: not valid json .*mmpose/HRNet's MPII json"),
    "MPII json not a list": (lambda t: load_mpii_annotations(_json(t / "mpii.json", {"a": 1}), t), ValueError,
                             r"mpii\.json holds a dict; expected a list of people"),
    "MPII person not an object": (lambda t: load_mpii_annotations(_json(t / "mpii.json", [[1]]), t), ValueError,
                                  r"mpii\.json entry 0 is a list, not a json object"),
    "MPII field missing": (lambda t: load_mpii_annotations(_json(t / "mpii.json", [{"image": "a.jpg"}]), t),
                           ValueError, r"entry 0 has no field\(s\) \['center', 'scale', 'joints', 'joints_vis'\]"),
    "bad strides or units": (lambda t: H36MDataModule(data_root=str(t), unit_mm=0), ValueError,
                             r"need strides >= 1 and unit_mm > 0"),
    "no frame of the subjects": (lambda t: _h36m_module(t, test_subjects=["S9"]).dataset("test"), ValueError,
                                 r"h36m\.npz has no frames of subjects \['S9'\]; check --data\.init_args\.test_subjects"),
    "mixed training without MPII": (lambda t: _h36m_module(t)._mpii(), ValueError,
                                    r"mixed training needs MPII: pass --data\.init_args\.mpii_root"),
    "unknown split": (lambda t: _h36m_module(t).dataset("holdout"), ValueError,
                      r"split='holdout' must be 'train', 'val' or 'test'"),
}


def _drop_field(npz: Path, field: str) -> Path:
    data = {k: v for k, v in np.load(npz).items() if k != field}
    np.savez(npz, **data)
    return npz


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("case", list(H36M_CASES))
def test_h36m_reader_errors(tmp_path, monkeypatch, case):
    monkeypatch.delenv("SAMPLING_ARGMAX_DATA", raising=False)  # "mixed training without MPII" needs it unset
    call, kind, match = H36M_CASES[case]
    with pytest.raises(kind, match=match):
        call(tmp_path)


def test_mpii_person_with_every_field_passes(tmp_path):
    write_image(tmp_path / "p.jpg", 60, 50)
    joints = np.stack([np.linspace(5, 40, 16), np.linspace(5, 30, 16)], 1)
    records = load_mpii_annotations(_json(tmp_path / "mpii.json", [mpii_person("p.jpg", joints)]), tmp_path)
    assert len(records) == 1 and records[0]["labeled"].sum() == 16  # the 16 MPII joints feed 16 of the 18


# ---------------------------------------------------------------------------------------------- KeypointNet


def _pcd(tmp: Path, header: str = PCD_HEADER, rows: str | None = None, name: str = "c.pcd") -> Path:
    path = tmp / name
    path.write_text(header.format(n=2) + (rows if rows is not None else "0 0 0 0\n1 2 3 0\n"))
    return path


def _kpn_root(tmp: Path, split: str = "02691156-m1\n", models=("m1",), clouds=("m1",)) -> Path:
    _json(tmp / "annotations" / "airplane.json",
          [{"class_id": "02691156", "model_id": m, "keypoints": [{"semantic_id": 0, "pcd_info": {"point_index": 1}}]}
           for m in models])
    (tmp / "splits").mkdir(parents=True, exist_ok=True)
    for name in ("train", "val", "test"):
        (tmp / "splits" / f"{name}.txt").write_text(split)
    for m in clouds:
        write_pcd(tmp / "pcds" / "02691156" / f"{m}.pcd", np.zeros((4, 3)) + np.arange(4)[:, None])
    return tmp


def _annotation(tmp: Path, models) -> Path:
    return _json(tmp / "a.json", models)


def _kp(semantic, index):
    return {"semantic_id": semantic, "pcd_info": {"point_index": index}}


KPN_CASES = {
    "cloud missing": (lambda t: read_pcd(t / "none.pcd"), FileNotFoundError, r"none\.pcd: point cloud not found"),
    "binary content": (lambda t: read_pcd(_bytes(t / "b.pcd", b"\xff\xfe\x00")), ValueError,
                       r"b\.pcd: not an ASCII PCD file \(binary content\)"),
    "header without DATA": (lambda t: read_pcd(_pcd(t, PCD_HEADER.replace("DATA ascii\n", ""), rows="")), ValueError,
                            r"c\.pcd: PCD header ends before its DATA line"),
    "FIELDS without x y z": (lambda t: read_pcd(_pcd(t, PCD_HEADER.replace("FIELDS x y z", "FIELDS y x z"))),
                             ValueError, r"c\.pcd: PCD FIELDS y x z rgb must start with 'x y z'"),
    "SIZE of another length": (lambda t: read_pcd(_pcd(t, PCD_HEADER.replace("SIZE 4 4 4 4", "SIZE 4 4 4"))),
                               ValueError, r"c\.pcd: PCD SIZE has 3 entries for 4 FIELDS"),
    "COUNT 3": (lambda t: read_pcd(_pcd(t, PCD_HEADER.replace("COUNT 1 1 1 1", "COUNT 1 1 1 3"))), ValueError,
                r"c\.pcd: PCD COUNT 1 1 1 3: only single-valued fields"),
    "WIDTH not an integer": (lambda t: read_pcd(_pcd(t, PCD_HEADER.replace("WIDTH {n}", "WIDTH two"))), ValueError,
                             r"c\.pcd: PCD WIDTH/HEIGHT/POINTS must be integers"),
    "POINTS != WIDTH x HEIGHT": (lambda t: read_pcd(_pcd(t, PCD_HEADER.replace("HEIGHT 1", "HEIGHT 2"))), ValueError,
                                 r"c\.pcd: PCD POINTS 2 != WIDTH 2 × HEIGHT 2"),
    "row with too few values": (lambda t: read_pcd(_pcd(t, rows="0 0 0 0\n1 2 3\n")), ValueError,
                                r"c\.pcd:13: 3 values for the 4 FIELDS x y z rgb"),
    "annotation file missing": (lambda t: read_annotations(t / "none.json", "02691156"), FileNotFoundError,
                                r"none\.json: KeypointNet annotation file not found"),
    "annotation not json": (lambda t: read_annotations(_text(t / "a.json", "[\n{oops"), "02691156"), ValueError,
                            r"a\.json:2: not valid JSON"),
    "annotation not a list": (lambda t: read_annotations(_json(t / "a.json", {"a": 1}), "02691156"), ValueError,
                              r"a\.json: expected a JSON list of models, got dict"),
    "record without keys": (lambda t: read_annotations(_annotation(t, [{"class_id": "02691156"}]), "02691156"),
                            ValueError, r"a\.json: entry 0: malformed record \(KeyError: 'model_id'\)"),
    "negative semantic id": (lambda t: read_annotations(_annotation(t, [
        {"class_id": "02691156", "model_id": "m1", "keypoints": [_kp(-1, 3)]}]), "02691156"),
        ValueError, r"entry 0 \(model m1\), keypoint 0: negative semantic_id -1"),
    "semantic id labeled twice": (lambda t: read_annotations(_annotation(t, [
        {"class_id": "02691156", "model_id": "m1", "keypoints": [_kp(0, 3), _kp(0, 4)]}]), "02691156"),
        ValueError, r"keypoint 1: semantic_id 0 is labeled twice"),
    "model annotated twice": (lambda t: read_annotations(_annotation(t, [
        {"class_id": "02691156", "model_id": "m1", "keypoints": [_kp(0, 3)]},
        {"class_id": "02691156", "model_id": "m1", "keypoints": [_kp(1, 3)]}]), "02691156"),
        ValueError, r"a\.json: entry 1: model m1 is annotated twice"),
    "model id not a string": (lambda t: read_annotations(_annotation(t, [
        {"class_id": "02691156", "model_id": 7, "keypoints": [_kp(0, 3)]}]), "02691156"),
        ValueError, r"entry 0: model_id 7 must be the ShapeNet model id"),
    "no model of the class": (lambda t: read_annotations(_annotation(t, []), "02691156"), ValueError,
                              r"a\.json: no model of class 02691156"),
    "split file missing": (lambda t: read_split(t / "train.txt", "02691156"), FileNotFoundError,
                           r"train\.txt: KeypointNet split file not found .*--data\.init_args\.splits_dir"),
    "predict: file missing": (lambda t: read_cloud(t / "none.npy", "none.npy", 2), FileNotFoundError,
                              r"none\.npy: no such file"),
    "predict: npy unreadable": (lambda t: read_cloud(_text(t / "x.npy", "text"), "x.npy", 2), ValueError,
                                r"x\.npy: not a readable \.npy array"),
    "predict: another suffix": (lambda t: read_cloud(_text(t / "x.ply", "text"), "x.ply", 2), ValueError,
                                r"x\.ply: a point cloud must be a \.pcd or \.npy file"),
    "predict: not (N, 3)": (lambda t: read_cloud(np.zeros((4, 2)), "arr", 4), ValueError,
                            r"arr: a cloud must be an \(N, 3\) array of x, y, z, got shape \(4, 2\)"),
    "predict: other point count": (lambda t: read_cloud(np.zeros((4, 3)), "arr", 8), ValueError,
                                   r"arr: 4 points, but the model was trained on clouds of 8; resample"),
    "scale range": (lambda t: check_augmentation((2.0, 1.0), 0.0), ValueError, r"scale=\(2\.0, 1\.0\) must be \[low, high\]"),
    "negative jitter": (lambda t: check_augmentation(None, -1.0), ValueError, r"jitter=-1\.0 must be >= 0"),
    "unknown category": (lambda t: KeypointNetDataModule("plane"), ValueError,
                         r"category='plane' is not a KeypointNet class"),
    "unknown normalization": (lambda t: KeypointNetDataModule(normalize="box"), ValueError,
                              r"normalize='box' must be 'none' .* or 'unit_sphere'"),
    "unknown missing_clouds": (lambda t: KeypointNetDataModule(missing_clouds="drop"), ValueError,
                               r"missing_clouds='drop' must be 'error' or 'skip'"),
    "num_points 0": (lambda t: KeypointNetDataModule(num_points=0), ValueError,
                     r"--data\.init_args\.num_points 0 must be >= 1"),
    "split model without annotation": (
        lambda t: KeypointNetDataModule(data_root=str(_kpn_root(t, split="02691156-m9\n")), num_points=4)
        .load_split("train"), ValueError, r"train\.txt:1: model 02691156-m9 has no annotation in .*airplane\.json"),
    "no model with a cloud": (
        lambda t: KeypointNetDataModule(data_root=str(_kpn_root(t, clouds=())), num_points=4,
                                        missing_clouds="skip").load_split("train"),
        ValueError, r"train\.txt: no airplane model with a cloud under .*pcds/02691156; pick another split"),
}


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", list(KPN_CASES))
def test_keypointnet_reader_errors(tmp_path, case):
    call, kind, match = KPN_CASES[case]
    with pytest.warns(UserWarning) if case == "no model with a cloud" else _nothing():
        with pytest.raises(kind, match=match):
            call(tmp_path)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# ---------------------------------------------------------------------------------------------- MTFL

FACE = np.array([[30.0, 30.0], [50.0, 30.0], [40.0, 40.0], [32.0, 50.0], [48.0, 50.0]])

MTFL_CASES = {
    "no annotation lines": (lambda t: read_mtfl(_text(t / "training.txt", "\r\n\r\n"), check_images=False), ValueError,
                            r"training\.txt holds no annotation lines; expected one face a line"),
    "val_size out of range": (lambda t: split_train_val(read_mtfl(_text(
        t / "training.txt", "a\\x.jpg 30 50 40 32 48 30 30 40 50 50 1 2 2 3\r\n"), check_images=False), val_size=0),
        ValueError, r"val_size=0 must be between 1 and 0"),
    "flip of a resized image": (lambda t: crop_sample(np.zeros((40, 40, 3), np.uint8), FACE, np.array([20.0, 20.0]),
                                                      40.0, 0.0, True, 32, 8, image_to_original=np.eye(3)),
                                ValueError, r"crop_sample\(flip=True\) of a resized image needs original_width"),
    "input too small": (lambda t: MTFLDataModule(data_root=str(t), input_size=16), ValueError,
                        r"input_size=16 must be >= 32"),
    "unknown test split": (lambda t: MTFLDataModule(data_root=str(t), test_split="holdout"), ValueError,
                           r"test_split='holdout' must be 'auto', 'official' .* or 'val'"),
    "no training faces per epoch": (lambda t: MTFLDataModule(data_root=str(t), train_samples_per_epoch=0), ValueError,
                                    r"train_samples_per_epoch=0 must be >= 1 or None"),
    "predict: array not RGB": (lambda t: MTFLDataModule(data_root=str(t)).prepare(
        RawInput(np.zeros((8, 8, 2), np.uint8), "arr[1]")), ValueError, r"arr\[1\]: expected an \(H, W, 3\) uint8 RGB"),
}


@pytest.mark.parametrize("case", list(MTFL_CASES))
def test_mtfl_reader_errors(tmp_path, case):
    call, kind, match = MTFL_CASES[case]
    with pytest.raises(kind, match=match):
        call(tmp_path)


# ---------------------------------------------------------------------------------------------- OCT and the checks


def _mat(path: Path, **arrays) -> Path:
    from scipy.io import savemat

    savemat(path, arrays)
    return path


def _cells(shape, fill) -> np.ndarray:
    cells = np.empty(shape, dtype=object)
    for index in np.ndindex(shape):
        cells[index] = fill
    return cells


ROWS = np.tile(np.linspace(10, 30, 9), (16, 1))[:, None, :]  # (W, 1 B-scan, 9) 1-based rows


def _two_volumes(tmp: Path) -> Path:
    for name in ("hc01_a", "hc01_b"):
        (tmp / f"{name}.vol").write_bytes(b"")
        (tmp / f"{name}.mat").write_bytes(b"")
    return tmp


OCT_CASES = {
    "delineation missing": (lambda t: oct_data.read_delineation(t / "none.mat"), FileNotFoundError,
                            r"none\.mat: no such delineation \.mat; each \.vol needs delineation/<same name>\.mat"),
    "bd_pts of text": (lambda t: oct_data.read_delineation(_mat(t / "d.mat", bd_pts=np.array(["abc"]))), ValueError,
                       r"d\.mat: bd_pts holds <U3 values; it must be a numeric array"),
    "control_pts of another shape": (
        lambda t: oct_data.read_delineation(_mat(t / "d.mat", control_pts=_cells((2, 5), np.ones((2, 2))))),
        ValueError, r"d\.mat: control_pts has shape \(2, 5\); expected \(B-scans, 11\)"),
    "control_pts cell of text": (
        lambda t: oct_data.read_delineation(_mat(t / "d.mat", control_pts=_cells((1, 9), "abc")), 1, 16),
        ValueError, r"d\.mat: control_pts cell \(1, 1\) does not hold numbers"),
    "control_pts cell of 3 columns": (
        lambda t: oct_data.read_delineation(_mat(t / "d.mat", control_pts=_cells((1, 9), np.ones((2, 3)))), 1, 16),
        ValueError, r"d\.mat: control_pts cell \(1, 1\) holds \(2, 3\) values; expected \(n, 2\)"),
    "control points beyond the B-scan": (
        lambda t: oct_data.read_delineation(_mat(t / "d.mat", control_pts=_cells((1, 9), np.array([[1.0, 5.0], [500.0, 6.0]]))), 1, 16),
        ValueError, r"d\.mat: control_pts cell \(1, 1\) has x in \[1, 500\] outside the B-scan's 1\.\.16 A-scans"),
    "other A-scan count": (lambda t: oct_data.read_delineation(_mat(t / "d.mat", bd_pts=ROWS), 1, 20), ValueError,
                           r"d\.mat: delineates 16 A-scans per B-scan but its volume has 20"),
    "index beyond the B-scans": (lambda t: oct_data.OCTBScans(np.zeros((1, 8, 4)), np.zeros((1, 9, 4)),
                                                            np.zeros((1, 9, 4)), np.zeros((1, 4)), np.ones(1),
                                                            np.zeros((1, 2), int))[3],
                                 IndexError, r"index 3 out of range for 1 B-scans"),
    "two volumes of one subject": (lambda t: oct_data.find_mshc_pairs(_two_volumes(t)), ValueError,
                                   r"hc01_b\.vol and .*hc01_a\.vol are both subject hc01; keep one volume per subject"),
    "nothing delineated": (lambda t: oct_data.prepare_volume(
        write_vol(t / "hc01.vol", np.full((1, 48, 16), 0.2, np.float32)), _mat(t / "hc01.mat", bd_pts=ROWS * 0),
        16, 0.0, 1, 16), ValueError, r"hc01\.mat: no B-scan is delineated"),
    "predict: .vol missing": (lambda t: oct_data.BScanPredict._volume(t / "none.vol"), FileNotFoundError,
                              r"none\.vol: no such \.vol file"),
    "MSHC crop too small": (lambda t: oct_data.MSHCDataModule(data_root=str(t), rows=4), ValueError,
                            r"need rows >= 8, width >= 1, column_step >= 1, bottom_margin_um >= 0; got 4"),
    "COCO annotation not an object": (
        lambda t: load_person_records(write_coco(t, [(1, "a.png", 40, 30)], [[1, 2]]), t),
        ValueError, r"annotation #0 \(id \?\) is not a json object"),
    "cloud with NaN": (lambda t: check_points(np.array([[0.0, np.nan, 0.0]]), "c.npy", "the cloud"), ValueError,
                       r"c\.npy: the cloud holds a NaN or infinite coordinate \(at index \[0, 1\]\)"),
    "centre beyond 1e6": (lambda t: check_centre_scale([1e9, 0.0], 1.0, "p.json entry 0"), ValueError,
                          r"p\.json entry 0: center \[1000000000\.0, 0\.0\] or scale 1 is beyond 1e\+06"),
}


@pytest.mark.parametrize("case", list(OCT_CASES))
def test_oct_reader_and_check_errors(tmp_path, case):
    call, kind, match = OCT_CASES[case]
    with pytest.raises(kind, match=match):
        call(tmp_path)
