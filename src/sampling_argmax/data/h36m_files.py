"""Reading Human3.6M (mmpose's preprocessed layout: an ``.npz`` per split and ``cameras.pkl``) and MPII (the
mmpose/HRNet json) into pose records, every frame and person checked by the shared rules of
:mod:`~sampling_argmax.data.validation` where it is read; a violation names the file, the record and the fix.
"""

from __future__ import annotations

import json
import pickle
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sampling_argmax.data.validation import (
    MAX_COORDINATE,
    DataError,
    UniqueRecords,
    check_centre_scale,
    check_inside_image,
    check_nonempty,
    image_size,
    numbers,
)

__all__ = ["ACTIONS", "BONES", "FLIP_PAIRS", "JOINT_NAMES", "MPII_TO_H36M", "NUM_JOINTS", "ROOT", "action_index",
           "load_cameras", "load_h36m_annotations", "load_mpii_annotations"]

JOINT_NAMES = (
    "pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "torso", "neck", "nose", "head",
    "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist", "thorax",
)
NUM_JOINTS = len(JOINT_NAMES)
ROOT = 0
FLIP_PAIRS = ((1, 4), (2, 5), (3, 6), (11, 14), (12, 15), (13, 16))
#: Bones (parent, child) of the 17 Human3.6M joints, for drawing.
BONES = ((0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6), (0, 7), (7, 8), (8, 9), (9, 10),
         (8, 11), (11, 12), (12, 13), (8, 14), (14, 15), (15, 16))
#: MPII joint feeding each of the 18 joints (-1: MPII has none).
MPII_TO_H36M = (6, 2, 1, 0, 3, 4, 5, -1, 8, -1, 9, 13, 14, 15, 12, 11, 10, 7)
#: The 15 Human3.6M actions; a sequence name's action is its text before a "_<number>" suffix.
ACTIONS = ("Directions", "Discussion", "Eating", "Greeting", "Phoning", "Posing", "Purchases", "Sitting",
           "SittingDown", "Smoking", "Photo", "Waiting", "Walking", "WalkDog", "WalkTogether")



_ACTION_ALIASES = {"TakingPhoto": "Photo", "WalkingDog": "WalkDog"}


_NAME = re.compile(r"^(S\d+)_(.+)\.(\w+)_(\d+)\.\w+$")  # S9_Greeting_1.54138969_000001.jpg


_DAMAGED = ("S9_Greeting_1", "S9_SittingDown_1", "S9_Waiting")


def action_index(sequence: str) -> int:
    """Index in :data:`ACTIONS` of a sequence name ("Directions_1", "Walk Dog" ...); -1 if none matches."""
    name = re.sub(r"[_ ]\d+$", "", sequence).replace(" ", "")
    name = _ACTION_ALIASES.get(name, name)
    return ACTIONS.index(name) if name in ACTIONS else -1


def _require_fields(data: Any, fields: Sequence[str], where: Path, fix: str) -> None:
    missing = [f for f in fields if f not in data]
    if missing:
        raise DataError(f"{where} has no field(s) {missing} (it has {sorted(data)}); {fix}")


def load_cameras(path: Path) -> dict:
    """``{(subject, camera_id): {"f": (2,), "c": (2,)}}`` from mmpose's ``cameras.pkl``."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: Human3.6M needs the camera parameters (mmpose's "
                                "cameras.pkl from its preprocess_h36m.py) in the data folder, or --data.init_args.cameras")
    try:
        with open(path, "rb") as handle:
            cameras = pickle.load(handle)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError, TypeError) as error:
        raise DataError(f"{path}: not a readable pickle ({type(error).__name__}: {error}); use the cameras.pkl "
                        "written by mmpose's preprocess_h36m.py") from None
    if not isinstance(cameras, dict):
        raise DataError(f"{path} holds a {type(cameras).__name__}; expected mmpose's dict (subject, camera_id) -> "
                        "{'f', 'c', ...}")
    return cameras


def _intrinsics(cameras: dict, key: tuple[str, str], where: str) -> tuple[np.ndarray, np.ndarray]:
    """(focal, principal) of one camera of ``cameras.pkl``: two finite numbers each, focal > 0."""
    info = cameras[key]
    fix = "use the cameras.pkl of mmpose's preprocess_h36m.py ({'f': [fx, fy], 'c': [cx, cy], ...} per camera)"
    if not isinstance(info, dict) or "f" not in info or "c" not in info:
        raise DataError(f"{where}: camera {key} has no 'f' and 'c' (got {info!r:.80}); {fix}")
    focal = numbers(info["f"], f"{where}: camera {key}", "f", fix=fix)
    principal = numbers(info["c"], f"{where}: camera {key}", "c", fix=fix)
    if focal.size != 2 or principal.size != 2 or not (focal > 0).all():
        raise DataError(f"{where}: camera {key} needs f = [fx, fy] > 0 and c = [cx, cy], got f {focal.tolist()}, "
                        f"c {principal.tolist()}; {fix}")
    return focal, principal


def _check_h36m_arrays(npz: Path, names: np.ndarray, centers: np.ndarray, scales: np.ndarray,
                       joints: np.ndarray) -> None:
    """Every row's centre (2 finite numbers), scale (> 0), 3D joints (finite, in front of the camera) and a
    name seen once; the first bad row is named."""
    for field, array in (("center", centers), ("scale", scales), ("S", joints)):
        if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
            raise DataError(f"{npz}: {field} holds {array.dtype} values; it must hold numbers (mmpose's layout)")
    if centers.ndim != 2 or centers.shape[1] != 2 or scales.ndim != 1:
        raise DataError(f"{npz}: center has shape {centers.shape} and scale {scales.shape}; expected (N, 2) and "
                        "(N,): mmpose's body3d .npz")
    limit = MAX_COORDINATE
    with np.errstate(invalid="ignore"):
        checks = (
            (~(np.abs(centers) <= limit).all(axis=1), f"center is not two finite numbers within +-{limit:g}", "center"),
            (~((scales > 0) & (scales <= limit)), f"scale is not a positive number up to {limit:g}", "scale"),
            (~(np.abs(joints[:, :, :3]) <= limit).all(axis=(1, 2)),
             f"S holds a NaN, infinite or beyond +-{limit:g} coordinate", "S"),
            (~(joints[:, :, 2] > 0).all(axis=1), "a joint has depth Z <= 0 (behind the camera)", "S"),
        )
    for bad, problem, field in checks:
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            value = {"center": centers, "scale": scales, "S": joints[:, :, :3]}[field][row]
            raise DataError(f"{npz} row {row} ({names[row]}): {problem} ({np.array2string(np.asarray(value), threshold=8)}); "
                            "fix or drop the row (mmpose's preprocess_h36m.py writes camera coordinates in metres)")
    unique = UniqueRecords("frame")
    for row, name in enumerate(names):
        unique.add(str(name), None, f"{npz} row {row} ({name})")


def load_h36m_annotations(npz: Path, image_root: Path, cameras: dict, subjects: Sequence[str] | None = None,
                          stride: int = 1, exclude: Sequence[str] = (), unit_mm: float = 1000.0) -> list[dict]:
    """Frames of an mmpose Human3.6M annotation ``.npz`` as records for :class:`PoseFrames`.

    Args:
        npz: the split's file (``imgname``, ``center``, ``scale``, ``S`` (N, 17, 3 or 4) camera coordinates).
        image_root: folder holding ``S*/<sequence>.<camera>/`` (``imgname`` is relative to it; a bare file
            name is looked up in its sequence folder).
        cameras: :func:`load_cameras`.
        subjects: keep these subjects (None: all).
        stride: every ``stride``-th frame of each sequence and camera, in frame order (the protocol's
            every 5th for training and 64th for testing, counted in the file's frames).
        exclude: ``<subject>_<sequence>`` names left out (default of the data module: the damaged S9 ones).
        unit_mm: millimetres per unit of ``S`` (1000: mmpose stores metres).

    Records: ``image``, ``center``, ``side`` (200·scale px), ``joints_cam`` (18, 3) mm, ``focal``,
    ``principal``, ``action``, ``where`` (file and row for error messages).
    """
    if not npz.is_file():
        raise FileNotFoundError(f"{npz} does not exist: give the split's annotation .npz of mmpose's preprocessed "
                                "Human3.6M (--data.init_args.train_annotation / test_annotation)")
    if stride < 1:
        raise ValueError(f"stride={stride} must be >= 1")
    fix = "use the annotation .npz written by mmpose's preprocess_h36m.py (imgname, center, scale, S, part)"
    try:
        data = np.load(npz, allow_pickle=False)
        _require_fields(data.files, ("imgname", "center", "scale", "S"), npz, fix)
        names, centers, scales, joints = data["imgname"], data["center"], data["scale"], data["S"]
    except (OSError, ValueError, EOFError, AttributeError, zipfile.BadZipFile) as error:
        if isinstance(error, DataError):
            raise
        raise DataError(f"{npz}: not a readable .npz archive ({type(error).__name__}: {error}); {fix}") from None
    if joints.ndim != 3 or joints.shape[1] != 17 or joints.shape[2] not in (3, 4):
        raise ValueError(f"{npz}: S has shape {joints.shape}, expected (N, 17, 3 or 4): the 17 Human3.6M joints "
                         "in camera coordinates (mmpose's body3d .npz, e.g. h36m_train.npz; a 24-joint file "
                         "is the SMPL mesh annotation, not this layout)")
    if not (len(names) == len(centers) == len(scales) == len(joints)):
        raise ValueError(f"{npz}: imgname, center, scale and S have {len(names)}, {len(centers)}, {len(scales)}, "
                         f"{len(joints)} rows; they must match (a truncated or mixed file)")
    if len(names) == 0:
        raise DataError(f"{npz}: holds no frames (empty imgname); {fix}")
    _check_h36m_arrays(npz, names, centers, scales, joints)
    groups: dict[tuple[str, str, str], list[tuple[int, int]]] = {}
    for row, name in enumerate(names):
        match = _NAME.match(Path(str(name)).name)
        if match is None:
            raise ValueError(f"{npz} row {row}: imgname {str(name)!r} is not <subject>_<sequence>.<camera>_<frame>.jpg")
        subject, sequence, camera, frame = match.groups()
        if (subjects is None or subject in subjects) and f"{subject}_{sequence}" not in exclude:
            groups.setdefault((subject, sequence, camera), []).append((int(frame), row))
    records = []
    for (subject, sequence, camera), frames in sorted(groups.items()):
        if (subject, camera) not in cameras:
            raise ValueError(f"{npz}: cameras.pkl has no camera ({subject!r}, {camera!r}) for {subject}_{sequence}; "
                             "use the cameras.pkl of the same preprocessing (it lists all subjects and cameras)")
        focal, principal = _intrinsics(cameras, (subject, camera), str(npz))
        for _, row in sorted(frames)[::stride]:
            name = str(names[row])
            image = image_root / name if "/" in name else image_root / subject / name.rsplit("_", 1)[0] / name
            cam = joints[row, :, :3].astype(np.float64) * unit_mm
            records.append({
                "image": image, "center": centers[row].astype(np.float64), "side": 200.0 * float(scales[row]),
                "joints_cam": np.concatenate([cam, (cam[11:12] + cam[14:15]) / 2]),  # + thorax
                "focal": focal, "principal": principal, "action": action_index(sequence),
                "where": f"{npz} row {row}",
            })
    return records


def load_mpii_annotations(json_file: Path, image_root: Path) -> list[dict]:
    """People of an MPII json (mmpose/HRNet: image, center, scale, joints 16 × 2, joints_vis) as 2D records.

    Coordinates are 1-based (MATLAB) in these files: 1 is subtracted. The box follows HRNet's reading of
    MPII's rough person scale: side 1.25 · 200 · scale, centre moved 15 · scale px down.
    """
    if not json_file.is_file():
        raise FileNotFoundError(f"{json_file} does not exist: give MPII's annotation json in mmpose/HRNet format "
                                "(--data.init_args.mpii_annotation), or mix_mpii: false to train on Human3.6M only")
    layout = "use mmpose/HRNet's MPII json (image, center, scale, joints, joints_vis)"
    try:
        with open(json_file) as handle:
            people = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{json_file}: not valid json ({error}); {layout}") from None
    if not isinstance(people, list):
        raise ValueError(f"{json_file} holds a {type(people).__name__}; expected a list of people (mmpose/HRNet MPII "
                         "json: image, center, scale, joints, joints_vis)")
    check_nonempty(people, str(json_file), "people", fix=layout)
    unique = UniqueRecords("person")
    records = []
    for row, person in enumerate(people):
        where = f"{json_file} entry {row}"
        if not isinstance(person, dict):
            raise DataError(f"{where} is a {type(person).__name__}, not a json object; {layout}")
        _require_fields(person, ("image", "center", "scale", "joints", "joints_vis"), Path(where), layout)
        if not isinstance(person["image"], str) or not person["image"].strip() or Path(person["image"]).is_absolute() \
                or ".." in Path(person["image"]).parts:
            raise DataError(f"{where}: image {person['image']!r} must be a file name relative to {image_root}")
        joints = numbers(person["joints"], where, "joints", shape=(16, 2), fix="MPII has 16 joints (joints 16 x 2)")
        visible = numbers(person["joints_vis"], where, "joints_vis", shape=(16,),
                          fix="MPII has 16 joints (joints_vis: 16 flags 0 or 1)")
        if not np.isin(visible, (0, 1)).all():
            raise DataError(f"{where}: joints_vis must be 16 flags 0 or 1, got {visible.tolist()}")
        center, scale = check_centre_scale(person["center"], person["scale"], where)
        unique.add(None, [person["image"], center, scale, joints], where)
        image = image_root / person["image"]
        if image.is_file():  # a missing image fails when its sample is read, naming the entry
            width, height = image_size(image, where)
            check_inside_image(joints - 1.0, visible > 0, width, height, where, "joint",
                               fix="fix the joint (1-based pixels) or set its joints_vis to 0")
        mapping = np.array(MPII_TO_H36M)
        uv = np.where(mapping[:, None] >= 0, joints[mapping] - 1.0, 0.0)
        labeled = (mapping >= 0) & (visible[mapping] > 0)
        center = center - 1.0 + np.array([0.0, 15.0 * scale])
        records.append({"image": image, "center": center, "side": 1.25 * 200.0 * scale,
                        "uv": uv, "labeled": labeled, "where": where})
    return records
