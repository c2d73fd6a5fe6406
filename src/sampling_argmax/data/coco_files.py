"""Reading COCO keypoint files: the annotation json (people with their keypoints) and a detection json (person
boxes with scores), each record checked where it is read, with an error naming the file, the record and the fix.

Records are plain dicts that :class:`~sampling_argmax.data.coco.COCOKeypoints` crops: ``image_id``, ``file``,
``width``, ``height``, ``box`` (x, y, w, h clipped to the image), ``keypoints`` (K, 2) pixels, ``visible`` (K,),
``ann_id``, ``area``, ``bbox_score``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

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


def load_person_records(ann_file: str | os.PathLike, image_dir: str | os.PathLike, category_id: int = 1,
                        num_keypoints: int = 17) -> list[dict]:
    """One record per non-crowd annotation of ``category_id`` (1 = COCO's person) with at least one labeled
    keypoint; each must hold ``num_keypoints`` (x, y, v) triples (K, the category's keypoint names).

    Records: image_id, file (path), width, height, box (cleaned x, y, w, h), keypoints (K, 2),
    visible (K,) bool, ann_id, area (the annotation's area), bbox_score 1.0.
    """
    data = _annotation_data(Path(ann_file))
    images = _images_by_id(data, Path(ann_file))
    records = []
    for number, ann in enumerate(data["annotations"]):
        where = f"{ann_file}: annotation #{number} (id {ann.get('id', '?') if isinstance(ann, dict) else '?'})"
        if not isinstance(ann, dict):
            raise ValueError(f"{where} is not a json object")
        if ann.get("category_id", 1) != category_id or ann.get("iscrowd", 0):
            continue
        keypoints = _numbers(ann.get("keypoints", []), where, "keypoints")
        if keypoints.size % 3 or keypoints.size // 3 != num_keypoints:
            if keypoints.size:
                raise ValueError(f"{where}: 'keypoints' must hold {num_keypoints} x 3 numbers (x, y, v), one triple "
                                 f"per keypoint name of category {category_id}, got {keypoints.size}")
            continue
        keypoints = keypoints.reshape(num_keypoints, 3)
        if not np.any(keypoints[:, 2] > 0):
            continue
        image = _image_of(ann, images, where)
        box = _clean_box(_box(ann, where), image["width"], image["height"])
        if box is None:
            continue
        records.append(_record(image, image_dir, box, keypoints[:, :2].copy(), keypoints[:, 2] > 0,
                               ann_id=int(ann["id"]), area=float(ann.get("area", box[2] * box[3])), bbox_score=1.0))
    return records


def load_detection_records(
    detection_file: str | os.PathLike,
    ann_file: str | os.PathLike,
    image_dir: str | os.PathLike,
    score_threshold: float = 0.0,
    category_id: int = 1,
    num_keypoints: int = 17,
) -> list[dict]:
    """One record per detection of ``category_id`` (1 = person; ``person_detection_results`` json) with score
    >= threshold, with ``num_keypoints`` unknown keypoints.

    The annotation file supplies the image file names and sizes; keypoints are unknown (zeros,
    not visible); ann_id is -1.
    """
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
    records = []
    for number, det in enumerate(detections):
        where = f"{detection_file}: detection #{number}"
        if not isinstance(det, dict) or "image_id" not in det:
            raise ValueError(f"{where} must be a json object with image_id, category_id, bbox and score")
        if det.get("category_id", category_id) != category_id:
            continue
        score = _numbers(det.get("score"), where, "score")
        if score.size != 1:
            raise ValueError(f"{where}: 'score' must be one number, got {det.get('score')!r}")
        if float(score[0]) < score_threshold:
            continue
        if det["image_id"] not in images:
            raise ValueError(
                f"{where}: image_id {det['image_id']} has no image in {ann_file}; "
                "the detections and the annotation file must be of the same split"
            )
        image = images[det["image_id"]]
        box = _clean_box(_box(det, where), image["width"], image["height"])
        if box is None:
            continue
        records.append(_record(image, image_dir, box, np.zeros((num_keypoints, 2)),
                               np.zeros(num_keypoints, dtype=bool),
                               ann_id=-1, area=float(box[2] * box[3]), bbox_score=float(score[0])))
    return records


def _numbers(value, where: str, field: str) -> np.ndarray:
    """A json number or list of numbers as float64, finite; a clear error otherwise."""
    try:
        array = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: '{field}' must hold numbers, got {value!r}") from None
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{where}: '{field}' holds NaN or infinite values: {value!r}")
    return array


def _box(entry: dict, where: str) -> list[float]:
    if "bbox" not in entry:
        raise ValueError(f"{where} has no 'bbox' (x, y, w, h); fix or remove the entry")
    box = _numbers(entry["bbox"], where, "bbox")
    if box.size != 4 or box[2] < 0 or box[3] < 0:
        raise ValueError(f"{where}: 'bbox' must be [x, y, w, h] with w, h >= 0, got {entry['bbox']!r}")
    return box.tolist()


def _images_by_id(data: dict, ann_file: Path) -> dict:
    images = {}
    for number, image in enumerate(data["images"]):
        where = f"{ann_file}: image #{number}"
        if not isinstance(image, dict) or not {"id", "file_name", "width", "height"} <= set(image):
            raise ValueError(f"{where} needs 'id', 'file_name', 'width' and 'height'; got {image!r:.200}")
        size = _numbers([image["width"], image["height"]], where, "width/height")
        if np.any(size < 1):
            raise ValueError(f"{where}: width and height must be >= 1, got {image['width']}, {image['height']}")
        name = Path(str(image["file_name"]))
        if name.is_absolute() or ".." in name.parts:
            raise ValueError(f"{where}: file_name {image['file_name']!r} must be relative to the image folder")
        images[image["id"]] = image
    return images


def _image_of(ann: dict, images: dict, where: str) -> dict:
    if ann.get("image_id") not in images:
        raise ValueError(f"{where}: image_id {ann.get('image_id')!r} is not in the file's 'images' list")
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
