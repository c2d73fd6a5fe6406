"""Property-based tests of every reader: a valid small file with one field replaced by anything json (or the
format) can hold gives either a clear ValueError naming the file and the record, or records that obey every rule
of data/validation.py, with every record read accounted for in the data report (kept or dropped by a documented
reason). Any other exception (TypeError, KeyError, IndexError, a raw numpy error) fails the property."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from writers import coco_person, mpii_person, mtfl_line, write_coco, write_h36m_npz, write_image, write_pcd, write_vol

from sampling_argmax.data import oct as oct_data
from sampling_argmax.data.coco_files import load_detection_records, load_person_records
from sampling_argmax.data.h36m import load_h36m_annotations, load_mpii_annotations
from sampling_argmax.data.keypointnet import read_annotations as read_kpn, read_pcd
from sampling_argmax.data.mtfl import read_annotations as read_mtfl
from sampling_argmax.data.validation import MAX_COORDINATE, DataReport, inside_tolerance

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                           HealthCheck.too_slow])

#: Anything a json value can be: numbers of every kind (NaN, inf, huge, negative), strings, null, bools, lists, objects.
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1e30, -5000.0, 0.5, 2.5, 16, 17, "", "1", "abc", "nan", "1e400"]), st.text(max_size=6),
)
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=3), inner, max_size=3)),
                           max_leaves=6)


def _clear(error: ValueError, file: Path, record: str) -> None:
    """The error names the file and the record (``record``: a regex, e.g. entry/line/row markers)."""
    message = str(error)
    assert file.name in message, message
    assert re.search(record, message), message


def _inside(points: np.ndarray, labeled: np.ndarray, width: float, height: float) -> bool:
    margin = 0.5 + inside_tolerance(width, height) + 1e-9
    p = np.asarray(points, float).reshape(-1, 2)[np.asarray(labeled, bool).reshape(-1)]
    return bool(np.all((p >= -margin) & (p[:, :1] <= width - 1 + margin) & (p[:, 1:] <= height - 1 + margin)))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("readers")
    write_image(root / "a.png", 40, 30)
    write_image(root / "lfw_5590" / "a.jpg", 80, 80)
    write_image(root / "lfw_5590" / "b.jpg", 80, 80)
    write_image(root / "p.jpg", 60, 50)
    return root


# ---------------------------------------------------------------------------------------------- COCO

KPTS = [(10.0, 8.0, 2), (20.0, 12.0, 1), (25.0, 20.0, 2)]
ANN_FIELDS = ["id", "image_id", "category_id", "iscrowd", "bbox", "keypoints", "num_keypoints", "area", "<whole>",
              "keypoints[0]", "keypoints[2]", "keypoints[4]", "bbox[2]", "<repeat>"]
IMAGE_FIELDS = ["id", "width", "height", "file_name", "<whole>"]


@PROPERTY
@given(target=st.sampled_from(["annotation 0", "annotation 1", "image"]), field=st.integers(0, 100), value=json_values)
def test_coco_annotation_json(folder, target, field, value):
    anns = [coco_person(1, 1, KPTS), coco_person(2, 1, KPTS[:1], box=(5, 5, 20, 15))]
    images = [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}]
    if target == "image":
        name = IMAGE_FIELDS[field % len(IMAGE_FIELDS)]
        if name == "<whole>":
            images[0] = value
        else:
            images[0][name] = value
    else:
        ann = anns[int(target[-1])]
        name = ANN_FIELDS[field % len(ANN_FIELDS)]
        if name == "<whole>":
            anns[int(target[-1])] = value
        elif name == "<repeat>":
            anns.append(dict(ann))
        elif "[" in name:
            key, index = name[:-1].split("[")
            ann[key][int(index)] = value
        else:
            ann[name] = value
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "person_keypoints.json"
        path.write_text(json.dumps({"images": images, "annotations": anns}))
        report = DataReport("property")
        try:
            records = load_person_records(path, folder, report)
        except ValueError as error:
            _clear(error, path, r"annotation #\d|image #\d|image id")
            return
    assert report.read == len(anns) == report.kept + sum(report.dropped.values())
    assert len(records) == report.kept and len({r["ann_id"] for r in records}) == len(records)
    for record in records:
        assert np.isfinite(record["keypoints"]).all() and record["visible"].any()
        if Path(record["file"]).is_file():
            assert (record["width"], record["height"]) == (40, 30)
        assert _inside(record["keypoints"], record["visible"], record["width"], record["height"])
        assert record["box"][2] >= 0 and record["box"][3] >= 0 and record["area"] > 0


@PROPERTY
@given(field=st.sampled_from(["image_id", "category_id", "bbox", "score", "<whole>", "<repeat>"]), value=json_values)
def test_coco_detection_json(folder, field, value):
    dets = [{"image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10], "score": 0.9}]
    if field == "<whole>":
        dets[0] = value
    elif field == "<repeat>":
        dets.append(dict(dets[0]))
    else:
        dets[0][field] = value
    with tempfile.TemporaryDirectory() as tmp:
        ann = write_coco(tmp, [(1, "a.png", 40, 30)], [coco_person(1, 1, KPTS)], write_images=False)
        (Path(tmp) / "det.json").write_text(json.dumps(dets))
        report = DataReport("property")
        try:
            records = load_detection_records(Path(tmp) / "det.json", ann, folder, 0.0, report)
        except ValueError as error:
            _clear(error, Path(tmp) / "det.json", r"detection #\d|must hold a json list")
            return
    assert report.read == len(dets) == report.kept + sum(report.dropped.values()) and len(records) == report.kept
    assert all(np.isfinite(r["box"]).all() and np.isfinite(r["bbox_score"]) for r in records)


# ---------------------------------------------------------------------------------------------- MTFL

FACE = np.array([[30.0, 30.0], [50.0, 30.0], [40.0, 40.0], [32.0, 50.0], [48.0, 50.0]])
tokens = st.one_of(st.sampled_from(["nan", "inf", "-5000", "1e30", "0", "-1", "abc", "1.5", "80", "", "x y"]),
                   st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers(-10**6, 10**6).map(str),
                   st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=5))


@PROPERTY
@given(line=st.integers(0, 1), field=st.integers(0, 15), token=tokens)
def test_mtfl_annotation_lines(folder, line, field, token):
    lines = [mtfl_line("lfw_5590\\a.jpg", FACE).split(" "), mtfl_line("lfw_5590\\b.jpg", FACE + 2).split(" ")]
    if field < 15:
        lines[line][field] = token
    else:
        lines[line].append(token)
    file = folder / f"training_{line}_{field}.txt"
    file.write_text("\r\n".join(" ".join(fields) for fields in lines) + "\r\n")
    try:
        records = read_mtfl(file)
    except FileNotFoundError as error:  # the path field replaced: the image does not exist (named)
        assert field == 0 and f"{file.name}:{line + 1}" in str(error)
        return
    except ValueError as error:
        _clear(error, file, rf"{re.escape(file.name)}:\d")
        return
    for record in records:
        assert np.isfinite(record.landmarks).all() and _inside(record.landmarks, np.ones(5), 80, 80)
        assert all(isinstance(a, int) and a >= 1 for a in record.attributes)


# ---------------------------------------------------------------------------------------------- MPII / Human3.6M

JOINTS = np.stack([np.linspace(5, 40, 16), np.linspace(5, 30, 16)], 1)


@PROPERTY
@given(field=st.sampled_from(["image", "center", "scale", "joints", "joints_vis", "<whole>", "<repeat>", "joints[3]",
                              "center[0]"]), value=json_values)
def test_mpii_json(folder, field, value):
    people = [mpii_person("p.jpg", JOINTS), mpii_person("p.jpg", JOINTS + 1)]
    person = people[1]
    if field == "<whole>":
        people[1] = value
    elif field == "<repeat>":
        people.append(dict(people[0]))
    elif field == "joints[3]":
        person["joints"][3] = value
    elif field == "center[0]":
        person["center"][0] = value
    else:
        person[field] = value
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mpii.json"
        path.write_text(json.dumps(people))
        try:
            records = load_mpii_annotations(path, folder)
        except ValueError as error:
            _clear(error, path, r"entry \d")
            return
    for record in records:
        assert np.isfinite(record["center"]).all() and record["side"] > 0 and np.isfinite(record["uv"]).all()


CAMERAS = {("S1", "54138969"): {"f": [1145.0, 1144.0], "c": [512.0, 515.0]}}
numbers_anywhere = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -1.0, 1e30]))


@PROPERTY
@given(field=st.sampled_from(["center", "scale", "S", "S_depth", "name"]), row=st.integers(0, 1), value=numbers_anywhere)
def test_h36m_npz(field, row, value):
    names = ["S1_Directions_1.54138969_000001.jpg", "S1_Directions_1.54138969_000002.jpg"]
    centers, scales = np.array([[500.0, 500.0], [510.0, 500.0]]), np.array([1.0, 1.1])
    joints = np.tile(np.array([0.1, 0.2, 4.0]), (2, 17, 1))
    if field == "center":
        centers[row, 1] = value
    elif field == "scale":
        scales[row] = value
    elif field == "S":
        joints[row, 5, 0] = value
    elif field == "S_depth":
        joints[row, 3, 2] = value
    else:
        names[row] = names[1 - row]
    with tempfile.TemporaryDirectory() as tmp:
        path = write_h36m_npz(Path(tmp) / "h36m.npz", names, centers, scales, joints)
        try:
            records = load_h36m_annotations(path, Path(tmp), CAMERAS)
        except ValueError as error:
            _clear(error, path, r"row \d")
            return
    for record in records:
        assert np.isfinite(record["center"]).all() and record["side"] > 0
        assert np.isfinite(record["joints_cam"]).all() and (record["joints_cam"][:, 2] > 0).all()


# ---------------------------------------------------------------------------------------------- KeypointNet


@PROPERTY
@given(field=st.sampled_from(["model_id", "keypoints", "semantic_id", "point_index", "pcd_info", "<whole>",
                              "<keypoint>"]), value=json_values)
def test_keypointnet_annotations(field, value):
    model = {"class_id": "02691156", "model_id": "m1",
             "keypoints": [{"semantic_id": 0, "pcd_info": {"point_index": 1}}, {"semantic_id": 2, "pcd_info": {"point_index": 3}}]}
    models = [model, {"class_id": "02691156", "model_id": "m2", "keypoints": [{"semantic_id": 1, "pcd_info": {"point_index": 0}}]}]
    if field in ("model_id", "keypoints"):
        model[field] = value
    elif field == "semantic_id":
        model["keypoints"][1]["semantic_id"] = value
    elif field == "point_index":
        model["keypoints"][1]["pcd_info"]["point_index"] = value
    elif field == "pcd_info":
        model["keypoints"][0]["pcd_info"] = value
    elif field == "<keypoint>":
        model["keypoints"][0] = value
    else:
        models[0] = value
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "airplane.json"
        path.write_text(json.dumps(models))
        try:
            shapes, count = read_kpn(path, "02691156")
        except ValueError as error:
            _clear(error, path, r"entry \d|no model of class|expected a JSON list")
            return
    assert count >= 1
    for shape in shapes.values():
        assert shape.keypoints and all(isinstance(s, int) and isinstance(i, int) and 0 <= s < count and i >= 0
                                       for s, i in shape.keypoints.items())


@PROPERTY
@given(line=st.integers(1, 13), token=tokens)
def test_pcd_files(line, token):
    with tempfile.TemporaryDirectory() as tmp:
        path = write_pcd(Path(tmp) / "c.pcd", [[0, 0, 0], [1, 2, 3]])
        lines = path.read_text().splitlines()
        fields = lines[line - 1].split(" ")
        fields[-1] = token
        lines[line - 1] = " ".join(fields)
        path.write_text("\n".join(lines) + "\n")
        try:
            cloud = read_pcd(path)
        except ValueError as error:
            _clear(error, path, r"c\.pcd")
            return
    assert cloud.ndim == 2 and cloud.shape[1] == 3 and len(cloud) >= 1
    assert np.isfinite(cloud).all() and np.abs(cloud).max() <= MAX_COORDINATE


# ---------------------------------------------------------------------------------------------- OCT


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=st.tuples(st.integers(0, 15), st.integers(0, 1), st.integers(0, 8)),
       value=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -1.0, 48.0, 900.0])))
def test_oct_delineation(tmp_path_factory, index, value):
    from scipy.io import savemat

    folder = tmp_path_factory.mktemp("oct")
    height, width = 48, 16
    write_vol(folder / "hc01.vol", np.full((2, height, width), 0.2, np.float32))
    rows = np.tile(np.linspace(10, 30, 9), (width, 1))[:, None, :].repeat(2, axis=1)  # (W, B, 9), 1-based
    rows[index] = value
    savemat(folder / "hc01.mat", {"bd_pts": rows})
    report = DataReport("property")
    try:
        out = oct_data.prepare_volume(folder / "hc01.vol", folder / "hc01.mat", 16, 0.0, 1, width, report)
    except ValueError as error:
        _clear(error, folder / "hc01.mat", r"hc01\.mat")
        return
    truth = out[2]
    labeled = np.isfinite(truth)
    assert report.read == 2 == report.kept + sum(report.dropped.values())
    assert _inside(np.stack([np.broadcast_to(np.arange(width, dtype=float), truth.shape), truth], -1)[labeled],
                   np.ones(int(labeled.sum())), width, height)
