"""A plain landmark CSV of single-object images (faces, medical images, product photos), with no code.

The file::

    image,left_eye_x,left_eye_y,left_eye_visible,right_eye_x,right_eye_y,right_eye_visible,nose_x,nose_y
    img_001.jpg,101.5,80.2,1,150.0,79.8,1,126.1,110.4
    img_002.jpg,98.0,77.0,1,,,0,120.3,108.9

``image`` is a path relative to the image folder; each keypoint has ``<name>_x`` and ``<name>_y`` in
pixels (pixel centres at integers, the project's convention), optionally ``<name>_visible`` (0 = not
labeled: no loss, no metric; an empty x or y also means not labeled). The keypoint names come from the
header; flip pairs from left/right names as for COCO-format data
(:func:`~sampling_argmax.data.keypoint_meta.infer_flip_pairs`) or ``--data.flip_pairs``.

The whole image is the object: it is framed as a top-down crop of the full image (aspect ratio kept, the
same crops, augmentation and ``predict`` framing as :class:`~sampling_argmax.data.coco.COCODataModule`,
whose methods this module shares). Evaluated by
:class:`~sampling_argmax.metrics.normalized.NormalizedErrorEvaluator`: the error normalized by the image
diagonal or by the distance between two named keypoints (``--data.normalize [left_eye, right_eye]``), and PCK.

Example:
    >>> read_landmark_header(["image", "tip_x", "tip_y", "base_x", "base_y", "base_visible"], "a.csv")
    (('tip', 'base'), (False, True))
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from sampling_argmax.data.base import LocalizationDataModule, RawInput, check_loader_args
from sampling_argmax.data.coco import COCODataModule, COCOKeypoints
from sampling_argmax.data.coco_files import _clean_box
from sampling_argmax.data.keypoint_meta import KeypointMeta

__all__ = ["read_landmark_header", "load_landmark_records", "LandmarkCrops", "CSVLandmarkDataModule"]

_PATTERN = "image,<name>_x,<name>_y[,<name>_visible],..."


def read_landmark_header(header: Sequence[str], path: str | Path) -> tuple[tuple[str, ...], tuple[bool, ...]]:
    """(keypoint names, whether each has a ``_visible`` column) of a landmark CSV header; a ValueError naming
    the first column that does not follow ``image,<name>_x,<name>_y[,<name>_visible],...``."""
    columns = [c.strip() for c in header]
    if not columns or columns[0] != "image":
        raise ValueError(f"{path}: the header must start with 'image' (then {_PATTERN}), got {columns[:3]}")
    names, visible, n = [], [], 1
    while n < len(columns):
        column = columns[n]
        if not column.endswith("_x") or len(column) < 3:
            raise ValueError(f"{path}: header column {n + 1} {column!r} does not follow {_PATTERN}: expected "
                             "<name>_x" + (f" or {names[-1]}_visible" if names and not visible[-1] else ""))
        name = column[:-2]
        if n + 1 >= len(columns) or columns[n + 1] != f"{name}_y":
            found = columns[n + 1] if n + 1 < len(columns) else "the end of the header"
            raise ValueError(f"{path}: header column {n + 2} must be {name + '_y'!r} after {column!r} ({_PATTERN}), "
                             f"got {found!r}")
        has_visible = n + 2 < len(columns) and columns[n + 2] == f"{name}_visible"
        names.append(name)
        visible.append(has_visible)
        n += 3 if has_visible else 2
    if not names:
        raise ValueError(f"{path}: the header names no keypoint; it must be {_PATTERN}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{path}: keypoint names repeated in the header: {repeated}")
    return tuple(names), tuple(visible)


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    if not path.is_file():
        raise FileNotFoundError(f"landmark CSV {path} not found; give the file of {_PATTERN} rows")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = [(line, row) for line, row in enumerate(csv.reader(handle), start=1) if any(c.strip() for c in row)]
    if not rows:
        raise ValueError(f"landmark CSV {path} is empty; it needs the header {_PATTERN} and one row per image")
    return rows[0][1], rows[1:]


def csv_keypoint_names(path: str | Path) -> tuple[str, ...]:
    """The keypoint names of a landmark CSV's header."""
    header, _ = _read_rows(Path(path))
    return read_landmark_header(header, path)[0]


def _number(cell: str, where: str, column: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise ValueError(f"{where}: {column} = {cell!r} is not a number") from None
    if not np.isfinite(value):
        raise ValueError(f"{where}: {column} = {cell!r} is not finite")
    return value


def load_landmark_records(csv_file: str | Path, image_dir: str | Path, names: Sequence[str] | None = None,
                          normalize: Sequence[int] | None = None) -> list[dict]:
    """One record per row of a landmark CSV (the records :class:`LandmarkCrops` crops).

    ``names``: the keypoints expected (a ValueError when the header's differ); ``normalize``: two keypoint
    indices whose distance normalizes the errors (None = the image diagonal). Records: image_id (row
    number), file, width, height (from the image file's header), box (the whole image), keypoints (K, 2),
    visible (K,) bool, ann_id, area, bbox_score 1.0, norm (NaN when a normalizing keypoint is unlabeled).
    """
    path, image_dir = Path(csv_file), Path(image_dir)
    header, rows = _read_rows(path)
    found, has_visible = read_landmark_header(header, path)
    if names is not None and tuple(found) != tuple(names):
        raise ValueError(f"{path}: the header names the keypoints {list(found)}, but this run's are {list(names)}; "
                         "every CSV of a run must have the same keypoints in the same order")
    records = []
    for line, row in rows:
        where = f"{path}:{line}"
        if len(row) != len(header):
            raise ValueError(f"{where}: {len(row)} cells for the header's {len(header)} columns")
        name = Path(row[0].strip())
        if not row[0].strip() or name.is_absolute() or ".." in name.parts:
            raise ValueError(f"{where}: image {row[0]!r} must be a file name relative to the image folder {image_dir}")
        file = image_dir / name
        try:
            with Image.open(file) as image:
                width, height = image.size
        except FileNotFoundError:
            raise FileNotFoundError(f"{where}: image {file} not found; check --data.*_image_dir") from None
        except OSError as error:
            raise ValueError(f"{where}: cannot read image {file} ({error})") from None
        keypoints, visible, column = np.zeros((len(found), 2)), np.zeros(len(found), bool), 1
        for k, key in enumerate(found):
            x, y = row[column].strip(), row[column + 1].strip()
            labeled = bool(x and y)
            if labeled:
                keypoints[k] = _number(x, where, f"{key}_x"), _number(y, where, f"{key}_y")
            if has_visible[k]:
                flag = row[column + 2].strip()
                labeled = labeled and bool(flag) and _number(flag, where, f"{key}_visible") > 0
            visible[k] = labeled
            column += 3 if has_visible[k] else 2
        box = _clean_box([0.0, 0.0, width, height], width, height)
        if normalize is None:
            norm = float(np.hypot(width, height))
        else:
            a, b = normalize
            norm = float(np.linalg.norm(keypoints[a] - keypoints[b])) if visible[a] and visible[b] else float("nan")
        records.append({"image_id": line, "file": str(file), "width": int(width), "height": int(height),
                        "box": box, "keypoints": keypoints, "visible": visible, "ann_id": line,
                        "area": float(width * height), "bbox_score": 1.0, "norm": norm})
    if not records:
        raise ValueError(f"landmark CSV {path} has a header and no rows")
    return records


class LandmarkCrops(COCOKeypoints):
    """:class:`~sampling_argmax.data.coco.COCOKeypoints` crops of landmark records, with the evaluation's extras:
    ``landmarks`` (K, 2) original pixels, ``visible`` (K,) and ``norm`` (the normalizing distance)."""

    def make_sample(self, index: int, center, size, rotation: float, flip: bool) -> dict:
        sample = super().make_sample(index, center, size, rotation, flip)
        record = self.records[index]
        sample["landmarks"] = torch.from_numpy(np.asarray(record["keypoints"], np.float64))
        sample["visible"] = torch.from_numpy(np.asarray(record["visible"], bool))
        sample["norm"] = float(record["norm"])
        return sample


class CSVLandmarkDataModule(COCODataModule):
    """Single-object images with a landmark CSV per stage (see the module docstring).

    Args:
        train_csv, val_csv, test_csv: the stages' landmark CSVs (relative to ``data_root``).
        train_image_dir, val_image_dir, test_image_dir: their image folders; None = the CSV's folder.
        data_root: folder that relative paths are resolved against; None = the current folder.
        flip_pairs: [[left, right], ...] names or 0-based indices; None = inferred from the names; [] = none.
        skeleton: [[a, b], ...] names or 0-based indices drawn by ``predict --draw``.
        normalize: two keypoint names whose distance normalizes the errors (e.g. [left_eye, right_eye]);
            None = the image diagonal.
        metainfo: the resolved keypoints as ``fit`` records them in the checkpoint; None = the first CSV's header.
        batch_size, num_workers, input_size, heatmap_size, flip_prob, rotation, rotation_prob, scale, padding:
            as :class:`~sampling_argmax.data.coco.COCODataModule` (``padding`` 1.0: the image is the object).
    """

    task = "csv_landmarks"
    data_folder = ""
    half_body_parts = None

    def __init__(
        self,
        train_csv: str | None = None,
        train_image_dir: str | None = None,
        val_csv: str | None = None,
        val_image_dir: str | None = None,
        test_csv: str | None = None,
        test_image_dir: str | None = None,
        data_root: str | None = None,
        flip_pairs: list[list[str | int]] | None = None,
        skeleton: list[list[str | int]] | None = None,
        normalize: list[str] | None = None,
        metainfo: dict[str, Any] | None = None,
        batch_size: int = 16,
        num_workers: int = 2,
        input_size: tuple[int, int] = (128, 128),
        heatmap_size: tuple[int, int] = (32, 32),
        flip_prob: float = 0.5,
        rotation: float = 30.0,
        rotation_prob: float = 0.6,
        scale: float = 0.25,
        padding: float = 1.0,
    ) -> None:
        LocalizationDataModule.__init__(self)  # COCODataModule's constructor is for the COCO 2017 layout
        check_loader_args(batch_size, num_workers)
        self.save_hyperparameters()
        self.data_root = Path(data_root).expanduser() if data_root else Path(".")
        self.batch_size, self.num_workers = batch_size, num_workers
        self.splits = {"train": ("train", train_csv, train_image_dir, None),
                       "val": ("val", val_csv, val_image_dir, None),
                       "test": ("test", test_csv, test_image_dir, None)}
        self.det_score_threshold = 0.0
        self.dataset_kwargs = dict(input_size=tuple(input_size), heatmap_size=tuple(heatmap_size), flip_prob=flip_prob,
                                   rotation=rotation, rotation_prob=rotation_prob, scale=scale, half_body_prob=0.0,
                                   padding=padding)
        self.datasets: dict[str, COCOKeypoints] = {}
        args = dict(train_csv=train_csv, val_csv=val_csv, test_csv=test_csv, data_root=data_root,
                    flip_pairs=flip_pairs, skeleton=skeleton, metainfo=metainfo)
        self.meta = self.resolve_meta(args)
        if normalize is not None:
            if len(normalize) != 2 or not set(normalize) <= set(self.meta.names) or normalize[0] == normalize[1]:
                raise ValueError(f"--data.normalize {normalize}: give two different keypoint names of "
                                 f"{list(self.meta.names)} (their distance normalizes the error), or null for the "
                                 "image diagonal")
            self.normalize = tuple(self.meta.names.index(n) for n in normalize)
        else:
            self.normalize = None
        if metainfo is None:  # the checkpoint records what the header said: predict needs no CSV
            self.hparams.update(metainfo=self.meta.as_dict(), flip_pairs=None, skeleton=None)  # the metainfo holds them

    @classmethod
    def resolve_meta(cls, args: Mapping[str, Any]) -> KeypointMeta:
        """The keypoints of constructor arguments ``args``: ``metainfo`` if recorded, else the first CSV's header
        with ``flip_pairs`` and ``skeleton``."""
        recorded = args.get("metainfo")
        if recorded is not None:
            if args.get("flip_pairs") is not None or args.get("skeleton") is not None:
                raise ValueError("--data.metainfo (recorded by fit) already holds flip_pairs and the skeleton; drop "
                                 "--data.flip_pairs/--data.skeleton or the metainfo")
            try:
                return KeypointMeta(**{k: (tuple(map(tuple, v)) if k in ("skeleton", "flip_pairs") else v)
                                       for k, v in dict(recorded).items()}, source="--data.metainfo")
            except TypeError as error:
                raise ValueError(f"--data.metainfo {dict(recorded)!r:.200} is not a recorded keypoint description "
                                 f"({error}); drop it to read the CSV header") from None
        first = next((args.get(f"{s}_csv") for s in ("train", "val", "test") if args.get(f"{s}_csv")), None)
        if first is None:
            raise ValueError(f"CSVLandmarkDataModule needs a landmark CSV: pass --data.train_csv ({_PATTERN}) and "
                             "--data.train_image_dir (and --data.val_csv, --data.test_csv)")
        root = Path(args["data_root"]).expanduser() if args.get("data_root") else Path(".")
        path = Path(first) if Path(first).is_absolute() else root / first
        flip = args.get("flip_pairs")
        return KeypointMeta(csv_keypoint_names(path), tuple(map(tuple, args.get("skeleton") or ())),
                            None if flip is None else tuple(map(tuple, flip)), source=f"{path} header")

    @classmethod
    def num_keypoints_of(cls, args: Mapping[str, Any]) -> int:
        """K of constructor arguments ``args`` before the module exists: the CLI sizes the model with it."""
        return cls.resolve_meta(args).num_keypoints

    num_keypoints = property(lambda self: self.meta.num_keypoints)  # type: ignore[assignment]
    keypoint_names = property(lambda self: self.meta.names)  # type: ignore[assignment]
    flip_pairs = property(lambda self: self.meta.flip_pairs)  # type: ignore[assignment]
    skeleton = property(lambda self: self.meta.skeleton)  # type: ignore[assignment]

    def paths(self, stage: str) -> tuple[Path, Path, None]:
        """(landmark CSV, image folder, None) of stage "train" | "val" | "test"."""
        _, csv_file, image_dir, _ = self.splits[stage]
        if csv_file is None:
            raise ValueError(f"no landmark CSV for stage {stage!r}: pass --data.{stage}_csv ({_PATTERN}) and "
                             f"--data.{stage}_image_dir")
        path = self._resolve(csv_file)
        return path, self._resolve(image_dir) if image_dir is not None else path.parent, None

    def build_dataset(self, stage: str) -> LandmarkCrops:
        path, images, _ = self.paths(stage)
        if not images.is_dir():
            raise FileNotFoundError(f"--data.{stage}_image_dir {images} is not a folder; give the folder that the "
                                    "CSV's image column is relative to")
        records = load_landmark_records(path, images, self.meta.names, self.normalize)
        return LandmarkCrops(records, train=stage == "train", **self.dataset_kwargs, num_keypoints=self.num_keypoints,
                             flip_pairs=self.flip_pairs, half_body_parts=None)

    def references(self, stage: str) -> dict[str, object]:
        """The keypoint names and what normalizes the errors, for the evaluator."""
        norm = "image diagonal" if self.normalize is None else "-".join(self.meta.names[k] for k in self.normalize)
        return {"names": list(self.meta.names), "norm": norm}

    def raw_inputs(self, path: Path, boxes: Path | None = None) -> list[RawInput]:
        """An image, a folder of images, or a landmark CSV (its rows' images, looked up beside it or in its
        ``images/`` folder); ``boxes`` (a detection json) frames boxes instead of the whole image."""
        if path.is_file() and path.suffix.lower() == ".csv":
            header, rows = _read_rows(path)
            read_landmark_header(header, path)
            folder = next((d for d in (path.parent, path.parent / "images")
                           if rows and (d / rows[0][1][0].strip()).is_file()), path.parent)
            return [RawInput(folder / row[0].strip(), f"{path}:{line}", extra={"image": str(folder / row[0].strip())})
                    for line, row in rows]
        return super().raw_inputs(path, boxes)
