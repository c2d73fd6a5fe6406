"""COCO Keypoint (2017) top-down dataset and LightningDataModule (SimpleBaseline recipe).

Official layout under ``data_root``::

    annotations/person_keypoints_train2017.json   annotations/person_keypoints_val2017.json
    train2017/*.jpg                                val2017/*.jpg
    person_detection_results/COCO_val2017_detections_AP_H_56_person.json   (optional, for test)

Every person box (ground truth, or a detection of a ``person_detection_results`` json) becomes one
sample: the box is grown to the input aspect ratio (192:256), padded by 1.25, and cropped with an
affine warp (:mod:`sampling_argmax.data.transforms`) to 256×192; targets are in 64×48 heatmap cell
units and ``"to_original"`` maps heatmap cells back to original-image pixels.

Example:
    >>> center, size = box_to_center_size([10.0, 20.0, 30.0, 80.0])
    >>> center.tolist(), size.tolist()
    ([25.0, 60.0], [75.0, 100.0])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from sampling_argmax.codecs.topdown import TopDownCodec
from sampling_argmax.data.base import LocalizationDataModule, RawInput, check_loader_args
from sampling_argmax.data.coco_files import (
    _CLIPPED,
    _GET_COCO,
    _annotation_data,
    _clean_box,
    detections_by_file,
    load_detection_records,
    load_person_records,
)
from sampling_argmax.data.images import IMAGE_SUFFIXES
from sampling_argmax.data.validation import DataReport
from sampling_argmax.data.transforms import (
    random_affine_params,
    to_model_input,
    warp_image,
)

__all__ = [
    "COCO_KEYPOINT_NAMES",
    "COCO_FLIP_PAIRS",
    "COCO_SKELETON",
    "box_to_center_size",
    "half_body_box",
    "COCOKeypoints",
    "COCODataModule",
]

COCO_KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
#: (left, right) index pairs swapped by a horizontal flip.
COCO_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
#: The person category's skeleton of the COCO 2017 keypoint json, 0-based (the json's is 1-based): overlay lines.
COCO_SKELETON = ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9),
                 (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6))
UPPER_BODY = tuple(range(11))
LOWER_BODY = tuple(range(11, 17))


def box_to_center_size(box, aspect_ratio: float = 192 / 256, padding: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """COCO box (x, y, w, h) -> crop centre (2,) and size (w, h) in pixels.

    The shorter side is grown until w / h == ``aspect_ratio`` (the input's width/height), then
    both sides are multiplied by ``padding``.
    """
    x, y, w, h = (float(v) for v in box)
    center = np.array([x + 0.5 * w, y + 0.5 * h])
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    else:
        w = h * aspect_ratio
    return center, np.array([w, h]) * padding


def half_body_box(
    keypoints: np.ndarray,
    visible: np.ndarray,
    rng: np.random.Generator,
    aspect_ratio: float = 192 / 256,
    enlarge: float = 1.5,
    parts: tuple[Sequence[int], Sequence[int]] = (UPPER_BODY, LOWER_BODY),
) -> tuple[np.ndarray, np.ndarray] | None:
    """Half-body augmentation: a crop around the visible upper- or lower-body joints.

    Picks the upper body or the lower body with probability 1/2 (falling back to the other half
    when the chosen one has fewer than 2 visible joints), centres the crop on the mean of those
    joints, sizes it to their extent fixed to ``aspect_ratio`` and enlarged by ``enlarge``.
    Returns (center, size) or None when neither half has 2 visible joints. ``parts``: the (upper, lower)
    keypoint indices (COCO's person by default).
    """
    upper = [k for k in parts[0] if visible[k]]
    lower = [k for k in parts[1] if visible[k]]
    chosen = upper if rng.random() < 0.5 else lower
    if len(chosen) < 2:
        chosen = lower if chosen is upper else upper
    if len(chosen) < 2:
        return None
    points = keypoints[chosen]
    center = points.mean(axis=0)
    w, h = points.max(axis=0) - points.min(axis=0)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    else:
        w = h * aspect_ratio
    return center, np.array([w, h]) * enlarge


class COCOKeypoints(Dataset):
    """Top-down COCO person crops as batch-contract dicts.

    Args:
        records: from :func:`load_person_records` or :func:`load_detection_records`.
        train: apply the random augmentation (flip, rotation, scale, half-body).
        input_size: (w, h) of the network input. heatmap_size: (w, h) of the output grid.
        flip_prob, rotation, rotation_prob, scale, half_body_prob, half_body_min_joints: augmentation
            (Appendix A / SimpleBaseline: 0.5, 40°, 0.6, 0.3, 0.3, more than 8 visible joints).
        padding: box padding factor (1.25).
        num_keypoints, flip_pairs: K and the (left, right) pairs (COCO's person by default).
        half_body_parts: the (upper, lower) keypoint indices of the half-body augmentation; None = no half-body
            crops (a category other than the person).

    Sample keys: image (3, H, W) float32 normalized; target (K, 2) heatmap cells; target_weight
    (K,); index; to_original (3, 3) heatmap cells -> original pixels; image_id; bbox_score; area
    (crop box area, pixels², OKS-NMS scale); ann_id (-1 for detections); center (2,), size (2,).

    Example (shapes only; see tests/data/test_coco_data.py for real images):
        >>> ds = COCOKeypoints([], train=False); len(ds), ds.num_keypoints
        (0, 17)
    """

    num_keypoints = 17
    flip_pairs = COCO_FLIP_PAIRS

    def __init__(
        self,
        records: list[dict],
        train: bool = False,
        input_size: tuple[int, int] = (192, 256),
        heatmap_size: tuple[int, int] = (48, 64),
        flip_prob: float = 0.5,
        rotation: float = 40.0,
        rotation_prob: float = 0.6,
        scale: float = 0.3,
        half_body_prob: float = 0.3,
        half_body_min_joints: int = 8,
        padding: float = 1.25,
        num_keypoints: int = 17,
        flip_pairs: Sequence[tuple[int, int]] = COCO_FLIP_PAIRS,
        half_body_parts: tuple[Sequence[int], Sequence[int]] | None = (UPPER_BODY, LOWER_BODY),
    ) -> None:
        self.records = records
        self.train = train
        self.num_keypoints = int(num_keypoints)
        self.flip_pairs = tuple(tuple(p) for p in flip_pairs)
        self.half_body_parts = half_body_parts
        self.input_size = tuple(int(v) for v in input_size)
        self.heatmap_size = tuple(int(v) for v in heatmap_size)
        self.aspect_ratio = self.input_size[0] / self.input_size[1]
        self.codec = TopDownCodec(self.input_size, self.heatmap_size, self.flip_pairs)
        self.flip_prob = flip_prob
        self.rotation = rotation
        self.rotation_prob = rotation_prob
        self.scale = scale
        self.half_body_prob = half_body_prob
        self.half_body_min_joints = half_body_min_joints
        self.padding = padding

    def __len__(self) -> int:
        return len(self.records)

    def crop_params(self, record: dict, rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray, float, bool]:
        """(center, size, rotation_deg, flip) of the crop; deterministic when ``rng`` is None."""
        center, size = box_to_center_size(record["box"], self.aspect_ratio, self.padding)
        if rng is None:
            return center, size, 0.0, False
        visible = record["visible"]
        if (self.half_body_parts is not None and visible.sum() > self.half_body_min_joints
                and rng.random() < self.half_body_prob):
            half = half_body_box(record["keypoints"], visible, rng, self.aspect_ratio, parts=self.half_body_parts)
            if half is not None:
                center, size = half
        scale_factor, rotation = random_affine_params(rng, self.scale, self.rotation, self.rotation_prob)
        flip = bool(rng.random() < self.flip_prob)
        return center, size * scale_factor, rotation, flip

    def load_image(self, record: dict) -> np.ndarray:
        image = cv2.imread(record["file"], cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(
                f"cannot read COCO image {record['file']}: missing or corrupt. Check --data.data_root and the "
                f"image folder ({_GET_COCO})."
            )
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def make_sample(self, index: int, center, size, rotation: float, flip: bool) -> dict:
        """Build the sample of record ``index`` for explicit crop parameters (also used by tests)."""
        record = self.records[index]
        image = self.load_image(record)
        frame = self.codec.frame(center, size, rotation, record["width"] if flip else None)
        crop = warp_image(image, frame.to_input[:2], self.input_size)
        target, weight = self.codec.encode(record["keypoints"], record["visible"], frame)
        center = frame.center
        return {
            "image": to_model_input(crop),
            "target": torch.from_numpy(target),
            "target_weight": torch.from_numpy(weight),
            "index": index,
            "to_original": torch.from_numpy(self.codec.to_original(frame)),
            "image_id": record["image_id"],
            "bbox_score": float(record["bbox_score"]),
            "area": float(size[0] * size[1]),
            "ann_id": record["ann_id"],
            "center": torch.from_numpy(center.astype(np.float32)),
            "size": torch.from_numpy(np.asarray(size, dtype=np.float32)),
        }

    def __getitem__(self, index: int) -> dict:
        # Seeded from torch so that `seed_everything(workers=True)` makes augmentation reproducible.
        rng = np.random.default_rng(int(torch.randint(0, 2**62, ()).item())) if self.train else None
        center, size, rotation, flip = self.crop_params(self.records[index], rng)
        return self.make_sample(index, center, size, rotation, flip)


class COCODataModule(LocalizationDataModule):
    """COCO Keypoint 2017 for top-down 2D pose (SimpleBaseline, 256×192 input, 64×48 heatmaps).

    Trains on ground-truth person boxes; validates/tests on ground-truth boxes or on a person
    detection results json (``val_detection_file`` / ``test_detection_file``). Relative paths are
    resolved against ``data_root``. Evaluated by :class:`~sampling_argmax.metrics.coco.COCOEvaluator`,
    which gets the split's annotation file from :meth:`references`.

    Args:
        data_root: folder with annotations/ and {split}/ image folders; default
            ``$SAMPLING_ARGMAX_DATA/coco``.
        batch_size: per process (per GPU). num_workers: dataloader workers per process.
        train_split, val_split, test_split: split names ("train2017", "val2017"); the annotation file is
            annotations/person_keypoints_{split}.json and the images {split}/, unless
            ``{stage}_ann_file`` / ``{stage}_image_dir`` override them.
        val_detection_file, test_detection_file: person detection results json; None = GT boxes.
        det_score_threshold: drop detections scoring below it (0.0 as in SimpleBaseline).
        input_size, heatmap_size, flip_prob, rotation, rotation_prob, scale, half_body_prob,
            half_body_min_joints, padding: see :class:`COCOKeypoints`.
    """

    task = "coco"
    data_folder = "coco"
    num_keypoints = 17
    flip_pairs = COCO_FLIP_PAIRS
    keypoint_names = COCO_KEYPOINT_NAMES
    skeleton = COCO_SKELETON
    predict_suffixes = IMAGE_SUFFIXES
    #: The annotations' and detections' ``category_id`` read (COCO's person), and the half-body parts.
    category_id = 1
    category_name = "person"
    half_body_parts: tuple[Sequence[int], Sequence[int]] | None = (UPPER_BODY, LOWER_BODY)

    def __init__(
        self,
        data_root: str | None = None,
        batch_size: int = 32,
        num_workers: int = 4,
        train_split: str = "train2017",
        val_split: str = "val2017",
        test_split: str = "val2017",
        train_ann_file: str | None = None,
        train_image_dir: str | None = None,
        val_ann_file: str | None = None,
        val_image_dir: str | None = None,
        test_ann_file: str | None = None,
        test_image_dir: str | None = None,
        val_detection_file: str | None = None,
        test_detection_file: str | None = None,
        det_score_threshold: float = 0.0,
        input_size: tuple[int, int] = (192, 256),
        heatmap_size: tuple[int, int] = (48, 64),
        flip_prob: float = 0.5,
        rotation: float = 40.0,
        rotation_prob: float = 0.6,
        scale: float = 0.3,
        half_body_prob: float = 0.3,
        half_body_min_joints: int = 8,
        padding: float = 1.25,
    ) -> None:
        super().__init__()
        check_loader_args(batch_size, num_workers)
        self.save_hyperparameters()
        self.data_root = self.resolve_data_root(data_root)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.splits = {
            "train": (train_split, train_ann_file, train_image_dir, None),
            "val": (val_split, val_ann_file, val_image_dir, val_detection_file),
            "test": (test_split, test_ann_file, test_image_dir, test_detection_file),
        }
        self.det_score_threshold = det_score_threshold
        self.dataset_kwargs = dict(
            input_size=tuple(input_size),
            heatmap_size=tuple(heatmap_size),
            flip_prob=flip_prob,
            rotation=rotation,
            rotation_prob=rotation_prob,
            scale=scale,
            half_body_prob=half_body_prob,
            half_body_min_joints=half_body_min_joints,
            padding=padding,
        )
        self.datasets: dict[str, COCOKeypoints] = {}

    @property
    def input_shape(self) -> tuple[int, ...]:
        width, height = self.dataset_kwargs["input_size"]
        return (3, height, width)

    @property
    def map_shape(self) -> tuple[int, ...]:
        width, height = self.dataset_kwargs["heatmap_size"]
        return (height, width)

    def references(self, stage: str) -> dict[str, object]:
        """The split's annotation file and name, for :class:`~sampling_argmax.metrics.coco.COCOEvaluator`."""
        return {"ann_file": str(self.paths(stage)[0]), "split": self.splits[stage][0]}

    def _resolve(self, path: str | None) -> Path | None:
        if path is None:
            return None
        path = Path(path)
        return path if path.is_absolute() else self.data_root / path

    def paths(self, stage: str) -> tuple[Path, Path, Path | None]:
        """(annotation file, image folder, detection file or None) of stage "train" | "val" | "test"."""
        split, ann_file, image_dir, detection_file = self.splits[stage]
        ann = self._resolve(ann_file) or self.data_root / "annotations" / f"person_keypoints_{split}.json"
        images = self._resolve(image_dir) or self.data_root / split
        return ann, images, self._resolve(detection_file)

    def build_dataset(self, stage: str) -> COCOKeypoints:
        """The dataset of stage "train" | "val" | "test", checking that its files exist."""
        ann, images, detections = self.paths(stage)
        if not ann.is_file():
            raise FileNotFoundError(
                f"COCO annotation file not found: {ann}. Point --data.data_root at the COCO 2017 folder that holds "
                f"annotations/person_keypoints_{self.splits[stage][0]}.json (or pass --data.{stage}_ann_file); "
                f"{_GET_COCO}."
            )
        if not images.is_dir():
            raise FileNotFoundError(
                f"COCO image folder not found: {images}. Unpack the {self.splits[stage][0]} images there "
                f"(or pass --data.{stage}_image_dir); {_GET_COCO}."
            )
        return COCOKeypoints(self.read_records(ann, images, detections, stage), train=stage == "train",
                             **self.dataset_kwargs, num_keypoints=self.num_keypoints, flip_pairs=self.flip_pairs,
                             half_body_parts=self.half_body_parts)

    def read_records(self, ann: Path, images: Path, detections: Path | None, stage: str) -> list[dict]:
        """The records of a stage's files: the annotations' instances of :attr:`category_id`, or the detections."""
        kind = dict(category_id=self.category_id, num_keypoints=self.num_keypoints)
        report = DataReport(f"{stage}: {detections or ann}")
        if detections is None:
            records = load_person_records(ann, images, report, **kind)
        else:
            records = load_detection_records(detections, ann, images, self.det_score_threshold, report, **kind)
        self.add_data_report(stage, report)
        if not records:
            raise ValueError(f"no {self.category_name} boxes found for stage {stage!r} in {detections or ann}")
        return records

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for name in wanted.get(stage, ("train", "val", "test")):
            self.dataset(name)

    def dataset(self, name: str) -> COCOKeypoints:
        if name not in self.datasets:
            self.datasets[name] = self.build_dataset(name)
        return self.datasets[name]


    # ---------------------------------------------------------------- predict on raw files

    def raw_inputs(self, path: Path, boxes: Path | None = None) -> list[RawInput]:
        """One input per person box.

        ``path``: an image or a folder of images (boxes from ``boxes``, a COCO detection-results json, else
        the whole image), or a COCO keypoint annotation json (``person_keypoints_*.json``: its ground-truth
        person boxes, or the detections of ``boxes`` on its images, exactly as ``test`` frames them). The
        annotation json's images are looked up beside it, else in ``<root>/<split>/`` of the COCO layout.
        """
        if path.is_file() and path.suffix.lower() == ".json":
            data = _annotation_data(path)
            first = next((i.get("file_name") for i in data["images"] if isinstance(i, dict)), None)
            image_dir = next((d for d in self.json_image_dirs(path) if first is None or (d / str(first)).is_file()),
                             path.parent)
            kind = dict(category_id=self.category_id, num_keypoints=self.num_keypoints)
            records = (load_person_records(path, image_dir, **kind) if boxes is None
                       else load_detection_records(boxes, path, image_dir, self.det_score_threshold, **kind))
            # the records' boxes are clipped to their image already (clipping twice would shrink them)
            return [RawInput(Path(r["file"]), f"{r['file']} box {n}", tuple(r["box"]),
                             {"image": r["file"], "image_id": r["image_id"], "score": r["bbox_score"], _CLIPPED: True})
                    for n, r in enumerate(records)]
        files = [Path(r.source) for r in super().raw_inputs(path)]
        if boxes is None:
            return [RawInput(f, str(f), extra={"image": str(f)}) for f in files]
        found, _ = detections_by_file(boxes, files, self.det_score_threshold, self.category_id)
        return [RawInput(f, f"{f} box {n}", tuple(d["bbox"]), {"image": str(f), "image_id": d["image_id"],
                                                               "score": d["score"]})
                for f in files for n, d in enumerate(found[f])]

    def json_image_dirs(self, path: Path) -> list[Path]:
        """Where ``predict --input X.json`` looks for the json's images, in order: beside it, then
        ``<root>/<split>/`` of the COCO layout (``annotations/person_keypoints_<split>.json``)."""
        return [path.parent, path.parent.parent / path.stem.removeprefix("person_keypoints_")]

    def prepare(self, raw: RawInput) -> dict:
        """The test-time top-down crop of :class:`COCOKeypoints`: the box (default: the whole image) grown to
        the input's aspect ratio, padded by ``padding``, warped to ``input_size``; no flip, no rotation.

        ``raw.source``: an image file or an (H, W, 3) uint8 RGB array; ``raw.box``: (x, y, w, h) pixels as a
        detector gives it (clipped to the image here, as the annotation loaders clip theirs).
        """
        if isinstance(raw.source, np.ndarray):
            image = raw.source
            if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
                raise ValueError(f"{raw.name}: expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        else:
            image = cv2.imread(str(raw.source), cv2.IMREAD_COLOR)  # the decoder of COCOKeypoints
            if image is None:
                raise ValueError(f"{raw.name}: cannot read the image (missing, truncated or not an image file)")
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        height, width = image.shape[:2]
        box = raw.box if raw.box is not None else (0.0, 0.0, width, height)
        box = list(box) if raw.extra.get(_CLIPPED) else _clean_box(box, width, height)  # as the records are
        if box is None:
            raise ValueError(f"{raw.name}: the box {raw.box} is empty inside the {width}x{height} image")
        kwargs = self.dataset_kwargs
        codec = TopDownCodec(kwargs["input_size"], kwargs["heatmap_size"], self.flip_pairs)
        center, size = box_to_center_size(box, codec.input_size[0] / codec.input_size[1], kwargs["padding"])
        frame = codec.frame(center, size)
        crop = warp_image(image, frame.to_input[:2], codec.input_size)
        return {"image": to_model_input(crop), "to_original": torch.from_numpy(codec.to_original(frame)), "box": box}


