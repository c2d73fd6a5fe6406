"""Reading COCO keypoint files: the annotation json (people with their keypoints) and a detection json (person
boxes with scores), each record checked where it is read, with an error naming the file, the record and the fix.

Records are plain dicts that :class:`~sampling_argmax.data.coco.COCOKeypoints` crops: ``image_id``, ``file``,
``width``, ``height``, ``box`` (x, y, w, h clipped to the image), ``keypoints`` (K, 2) pixels, ``visible`` (K,),
``ann_id``, ``area``, ``bbox_score``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Hashable
from pathlib import Path

import numpy as np

from sampling_argmax.data.validation import (
    DataError,
    DataReport,
    UniqueRecords,
    check_image_size,
    check_inside_image,
    check_num_keypoints,
    integer,
    number,
    numbers,
)

__all__ = ["load_person_records", "load_detection_records", "detections_by_file"]


#: RawInput.extra flag: the box was clipped to the image by the annotation loaders already.
_CLIPPED = "_box_clipped"


_GET_COCO = "download it from https://cocodataset.org/#download (2017 Train/Val annotations and images)"


def _clean_box(box, width: int, height: int) -> list[float] | None:
    """Clip an (x, y, w, h) box to the image (pixel-centre extent); None if it is empty."""
    x, y, w, h = (float(v) for v in box)
    x1, y1 = max(0.0, x), max(0.0, y)
    x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
    y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
    if w * h <= 0 or x2 < x1 or y2 < y1:
        return None
    return [x1, y1, x2 - x1, y2 - y1]


def _read_json(path: Path, what: str, fix: str):
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}. {fix}")
    try:
        with open(path) as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"{what} {path} is not valid json ({error}); re-download it. {fix}") from error


def _annotation_data(ann_file: Path) -> dict:
    data = _read_json(ann_file, "COCO annotation file", _GET_COCO)
    for key in ("images", "annotations"):
        if not isinstance(data, dict) or not isinstance(data.get(key), list):
            raise ValueError(f"COCO annotation file {ann_file} has no '{key}' list; is it a person_keypoints_*.json?")
    return data


def load_person_records(ann_file: str | os.PathLike, image_dir: str | os.PathLike,
                        report: DataReport | None = None, category_id: int = 1, num_keypoints: int = 17
                        ) -> list[dict]:
    """One record per non-crowd annotation of ``category_id`` (1 = COCO's person) with at least one labeled
    keypoint; each holds ``num_keypoints`` (K, the category's keypoint names) (x, y, v) triples.

    Every annotation is checked (:mod:`~sampling_argmax.data.validation`): numbers where numbers belong, K x 3
    keypoints with visibility 0, 1 or 2, ``num_keypoints`` equal to the labeled count, labeled keypoints inside
    the image, the image's stated size equal to its file's, no repeated annotation (id or content), a box
    inside the image. Dropped by COCO's convention and counted in ``report`` (by reason): other categories,
    crowd regions (``iscrowd``), people without a labeled keypoint, boxes of zero width or height.

    Records: image_id, file (path), width, height, box (cleaned x, y, w, h), keypoints (K, 2),
    visible (K,) bool, ann_id, area (the annotation's area), bbox_score 1.0.
    """
    report = report if report is not None else DataReport(str(ann_file))
    data = _annotation_data(Path(ann_file))
    images = _images_by_id(data, Path(ann_file))
    checked: set = set()
    unique = UniqueRecords("annotation")
    records = []
    for number, ann in enumerate(data["annotations"]):
        where = f"{ann_file}: annotation #{number} (id {ann.get('id', '?') if isinstance(ann, dict) else '?'})"
        if not isinstance(ann, dict):
            raise DataError(f"{where} is not a json object; remove it or write {{id, image_id, category_id, "
                            "bbox, keypoints, num_keypoints, iscrowd}}")
        if "id" not in ann:
            raise DataError(f"{where} has no 'id'; give every annotation a unique integer id")
        ann_id = integer(ann["id"], where, "id")
        unique.add(ann_id, [ann.get(k) for k in ("image_id", "category_id", "iscrowd", "bbox", "keypoints")], where)
        if ann.get("category_id", 1) != category_id:
            report.drop(f"another category (category_id != {category_id})", where)
            continue
        if ann.get("iscrowd", 0):
            report.drop("crowd region (iscrowd=1)", where)
            continue
        if "keypoints" not in ann:
            raise DataError(f"{where} has no 'keypoints'; a keypoints file gives {num_keypoints} x 3 numbers (x, y, v) "
                            "per instance (0, 0, 0 for an unlabeled keypoint)")
        keypoints = _numbers(ann["keypoints"], where, "keypoints")
        if keypoints.size != num_keypoints * 3:
            raise DataError(f"{where}: 'keypoints' must hold {num_keypoints} x 3 numbers (x, y, v), one triple per "
                            f"keypoint name of category {category_id}, got {keypoints.size}; write 0, 0, 0 for an "
                            "unlabeled keypoint")
        keypoints = keypoints.reshape(num_keypoints, 3)
        if not np.isin(keypoints[:, 2], (0, 1, 2)).all():
            raise DataError(f"{where}: keypoint visibility flags must be 0 (unlabeled), 1 (occluded) or 2 (visible), "
                            f"got {keypoints[:, 2].tolist()}")
        labeled = keypoints[:, 2] > 0
        if "num_keypoints" in ann:
            check_num_keypoints(ann["num_keypoints"], labeled, where)
        image = _image_of(ann, images, where)
        _check_image(image, image_dir, ann_file, checked)
        check_inside_image(keypoints[:, :2], labeled, image["width"], image["height"], where)
        raw_box = _box(ann, where)
        if not labeled.any():
            report.drop("no labeled keypoint (num_keypoints 0)", where)
            continue
        if raw_box[2] * raw_box[3] <= 0:
            report.drop("box of zero width or height", where)
            continue
        box = _clean_box(raw_box, image["width"], image["height"])
        if box is None:
            raise DataError(f"{where}: 'bbox' {ann['bbox']!r} lies outside the {image['width']} x {image['height']} "
                            "image; fix the box or the image size")
        report.keep()
        records.append(_record(image, image_dir, box, keypoints[:, :2].copy(), labeled,
                               ann_id=ann_id, area=_area(ann, box, where), bbox_score=1.0))
    return records


def load_detection_records(
    detection_file: str | os.PathLike,
    ann_file: str | os.PathLike,
    image_dir: str | os.PathLike,
    score_threshold: float = 0.0,
    report: DataReport | None = None,
    category_id: int = 1,
    num_keypoints: int = 17,
) -> list[dict]:
    """One record per detection of ``category_id`` (1 = person; ``person_detection_results`` json) with score
    >= threshold, with ``num_keypoints`` unknown keypoints.

    The annotation file supplies the image file names and sizes; keypoints are unknown (zeros,
    not visible); ann_id is -1. A repeated detection (identical image, box and score) is an error;
    other categories, scores below the threshold and empty boxes are dropped and counted in ``report``.
    """
    report = report if report is not None else DataReport(str(detection_file))
    detections = _read_json(
        Path(detection_file),
        "person detection results file",
        "Pass --data.test_detection_file (a json list of {image_id, category_id, bbox, score}, e.g. "
        "COCO_val2017_detections_AP_H_56_person.json from the SimpleBaseline release), or leave it unset to "
        "evaluate on ground-truth boxes.",
    )
    if not isinstance(detections, list):
        raise ValueError(f"detection file {detection_file} must hold a json list of detections, got {type(detections)}")
    images = _images_by_id(_annotation_data(Path(ann_file)), Path(ann_file))
    checked: set = set()
    unique = UniqueRecords("detection")
    records = []
    for number, det in enumerate(detections):
        where = f"{detection_file}: detection #{number}"
        if not isinstance(det, dict) or "image_id" not in det:
            raise DataError(f"{where} must be a json object with image_id, category_id, bbox and score")
        unique.add(None, [det.get(k) for k in ("image_id", "category_id", "bbox", "score")], where)
        if det.get("category_id", category_id) != category_id:
            report.drop(f"another category (category_id != {category_id})", where)
            continue
        score = _numbers(det.get("score"), where, "score")
        if score.size != 1:
            raise DataError(f"{where}: 'score' must be one number, got {det.get('score')!r}")
        raw_box = _box(det, where)
        if not isinstance(det["image_id"], Hashable) or det["image_id"] not in images:
            raise DataError(
                f"{where}: image_id {det['image_id']!r} has no image in {ann_file}; "
                "the detections and the annotation file must be of the same split"
            )
        if float(score[0]) < score_threshold:
            report.drop(f"score below det_score_threshold {score_threshold:g}", where)
            continue
        image = images[det["image_id"]]
        _check_image(image, image_dir, ann_file, checked)
        box = _clean_box(raw_box, image["width"], image["height"]) if raw_box[2] * raw_box[3] > 0 else None
        if box is None:
            report.drop("box empty inside the image", where)
            continue
        report.keep()
        records.append(_record(image, image_dir, box, np.zeros((num_keypoints, 2)), np.zeros(num_keypoints, dtype=bool),
                               ann_id=-1, area=float(box[2] * box[3]), bbox_score=float(score[0])))
    return records


def _numbers(value, where: str, field: str) -> np.ndarray:
    """A json number or list of numbers as finite float64 (:func:`~sampling_argmax.data.validation.numbers`)."""
    return numbers(value, where, field)


def _area(ann: dict, box: list[float], where: str) -> float:
    """The annotation's ``area`` (OKS normalizes by it), else the box's."""
    if "area" not in ann:
        return float(box[2] * box[3])
    return number(ann["area"], where, "area", positive=True, fix="give the person's segmented area in pixels")


def _box(entry: dict, where: str) -> list[float]:
    if "bbox" not in entry:
        raise DataError(f"{where} has no 'bbox' (x, y, w, h); fix or remove the entry")
    box = _numbers(entry["bbox"], where, "bbox")
    if box.size != 4 or box[2] < 0 or box[3] < 0:
        raise DataError(f"{where}: 'bbox' must be [x, y, w, h] with w, h >= 0, got {entry['bbox']!r}")
    return box.tolist()


def _images_by_id(data: dict, ann_file: Path) -> dict:
    images = {}
    unique = UniqueRecords("image")
    for number, image in enumerate(data["images"]):
        where = f"{ann_file}: image #{number}"
        if not isinstance(image, dict) or not {"id", "file_name", "width", "height"} <= set(image):
            raise DataError(f"{where} needs 'id', 'file_name', 'width' and 'height'; got {image!r:.200}")
        where = f"{where} (id {image['id']!r})"
        integer(image["id"], where, "id", fix="give every image a unique integer id")
        integer(image["width"], where, "width", minimum=1)
        integer(image["height"], where, "height", minimum=1)
        if not isinstance(image["file_name"], str) or not image["file_name"].strip():
            raise DataError(f"{where}: file_name {image['file_name']!r} must be the image's file name (a string)")
        name = Path(image["file_name"])
        if name.is_absolute() or ".." in name.parts:
            raise DataError(f"{where}: file_name {image['file_name']!r} must be relative to the image folder")
        unique.add(image["id"], None, where)
        images[image["id"]] = image
    return images


def _check_image(image: dict, image_dir, ann_file, checked: set) -> None:
    """Once per image: its stated width/height equal its file's (header only; a missing file fails when read)."""
    if image["id"] in checked:
        return
    checked.add(image["id"])
    check_image_size(Path(image_dir) / image["file_name"], image["width"], image["height"],
                     f"{ann_file}: image id {image['id']!r} ({image['file_name']})")


def _image_of(ann: dict, images: dict, where: str) -> dict:
    if not isinstance(ann.get("image_id"), Hashable) or ann.get("image_id") not in images:
        raise DataError(f"{where}: image_id {ann.get('image_id')!r} is not in the file's 'images' list")
    return images[ann["image_id"]]


def detections_by_file(detection_file: Path, files: list[Path], score_threshold: float = 0.0, category_id: int = 1
                       ) -> tuple[dict[Path, list[dict]], int]:
    """Person boxes of a COCO detection-results json for the given image files.

    A detection names its image by ``file_name`` (relative or absolute) or, as in COCO's own files, by
    ``image_id`` = the integer of the file name (``000000000785.jpg`` <-> 785). Returns (file -> its
    detections {"bbox", "score", "image_id"} in the json's order, count of detections of no given file).
    """
    detections = _read_json(detection_file, "person detection results file (--boxes)",
                            "Give a json list of {image_id or file_name, category_id, bbox [x, y, w, h], score}.")
    if not isinstance(detections, list):
        raise ValueError(f"--boxes {detection_file} must hold a json list of detections, got {type(detections).__name__}")
    by_name = {f.name: f for f in files}
    by_id = {int(f.stem): f for f in files if f.stem.isdigit()}
    out: dict[Path, list[dict]] = {f: [] for f in files}
    unmatched = 0
    for number, det in enumerate(detections):
        where = f"{detection_file}: detection #{number}"
        if not isinstance(det, dict) or not ({"image_id", "file_name"} & set(det)):
            raise ValueError(f"{where} must be a json object with image_id (or file_name), bbox and score")
        if det.get("category_id", category_id) != category_id:
            continue
        score = _numbers(det.get("score", 1.0), where, "score")
        if score.size != 1:
            raise ValueError(f"{where}: 'score' must be one number, got {det.get('score')!r}")
        if float(score[0]) < score_threshold:
            continue
        box = _box(det, where)
        if "file_name" in det:
            file = by_name.get(Path(str(det["file_name"])).name)
        else:
            try:
                file = by_id.get(int(det["image_id"]))
            except (TypeError, ValueError):
                raise ValueError(f"{where}: image_id {det['image_id']!r} is not an integer; give 'file_name' "
                                 "instead") from None
        if file is None:
            unmatched += 1
            continue
        out[file].append({"bbox": box, "score": float(score[0]), "image_id": det.get("image_id")})
    return out, unmatched


def _record(image: dict, image_dir, box, keypoints: np.ndarray, visible: np.ndarray, *, ann_id: int, area: float,
            bbox_score: float) -> dict:
    """One person instance (a ground-truth annotation or a detection) of ``image``, as the datasets use it."""
    return {
        "image_id": int(image["id"]),
        "file": str(Path(image_dir) / image["file_name"]),
        "width": int(image["width"]),
        "height": int(image["height"]),
        "box": box,
        "keypoints": keypoints,
        "visible": visible,
        "ann_id": ann_id,
        "area": area,
        "bbox_score": bbox_score,
    }
