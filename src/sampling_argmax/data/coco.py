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

import json
import logging
import os
from pathlib import Path

import cv2
import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from sampling_argmax.data.transforms import (
    to_model_input,
    affine_matrix,
    apply_affine,
    flip_keypoints,
    homogeneous,
    invert_affine,
    random_affine_params,
    warp_image,
)
from sampling_argmax.metrics.calibration import calibration
from sampling_argmax.metrics.coco import (
    COCO_SIGMAS,
    coco_keypoint_ap,
    keypoint_oks,
    keypoint_results,
    oks_nms,
    rescore_instances,
)

__all__ = [
    "COCO_KEYPOINT_NAMES",
    "COCO_FLIP_PAIRS",
    "box_to_center_size",
    "half_body_box",
    "load_person_records",
    "load_detection_records",
    "COCOKeypoints",
    "COCODataModule",
]

log = logging.getLogger(__name__)

COCO_KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
#: (left, right) index pairs swapped by a horizontal flip.
COCO_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
UPPER_BODY = tuple(range(11))
LOWER_BODY = tuple(range(11, 17))

_GET_COCO = "download it from https://cocodataset.org/#download (2017 Train/Val annotations and images)"


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
) -> tuple[np.ndarray, np.ndarray] | None:
    """Half-body augmentation: a crop around the visible upper- or lower-body joints.

    Picks the upper body or the lower body with probability 1/2 (falling back to the other half
    when the chosen one has fewer than 2 visible joints), centres the crop on the mean of those
    joints, sizes it to their extent fixed to ``aspect_ratio`` and enlarged by ``enlarge``.
    Returns (center, size) or None when neither half has 2 visible joints.
    """
    upper = [k for k in UPPER_BODY if visible[k]]
    lower = [k for k in LOWER_BODY if visible[k]]
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


def load_person_records(ann_file: str | os.PathLike, image_dir: str | os.PathLike) -> list[dict]:
    """One record per non-crowd person annotation with at least one labeled keypoint.

    Records: image_id, file (path), width, height, box (cleaned x, y, w, h), keypoints (17, 2),
    visible (17,) bool, ann_id, area (the annotation's area), bbox_score 1.0.
    """
    data = _read_json(Path(ann_file), "COCO annotation file", _GET_COCO)
    for key in ("images", "annotations"):
        if key not in data:
            raise ValueError(f"COCO annotation file {ann_file} has no '{key}' list; is it a person_keypoints_*.json?")
    images = {image["id"]: image for image in data["images"]}
    records = []
    for ann in data["annotations"]:
        keypoints = np.asarray(ann.get("keypoints", []), dtype=np.float64).reshape(-1, 3)
        if ann.get("category_id", 1) != 1 or ann.get("iscrowd", 0) or keypoints.shape[0] != 17:
            continue
        if not np.any(keypoints[:, 2] > 0):
            continue
        image = images[ann["image_id"]]
        box = _clean_box(ann["bbox"], image["width"], image["height"])
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
) -> list[dict]:
    """One record per person detection (``person_detection_results`` json) with score >= threshold.

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
    data = _read_json(Path(ann_file), "COCO annotation file", _GET_COCO)
    images = {image["id"]: image for image in data["images"]}
    records = []
    for det in detections:
        if det.get("category_id", 1) != 1 or float(det["score"]) < score_threshold:
            continue
        image = images.get(det["image_id"])
        if image is None:
            raise ValueError(
                f"detection for image_id {det['image_id']} in {detection_file} has no image in {ann_file}; "
                "the detections and the annotation file must be of the same split"
            )
        box = _clean_box(det["bbox"], image["width"], image["height"])
        if box is None:
            continue
        records.append(_record(image, image_dir, box, np.zeros((17, 2)), np.zeros(17, dtype=bool),
                               ann_id=-1, area=float(box[2] * box[3]), bbox_score=float(det["score"])))
    return records


class COCOKeypoints(Dataset):
    """Top-down COCO person crops as batch-contract dicts.

    Args:
        records: from :func:`load_person_records` or :func:`load_detection_records`.
        train: apply the random augmentation (flip, rotation, scale, half-body).
        input_size: (w, h) of the network input. heatmap_size: (w, h) of the output grid.
        flip_prob, rotation, rotation_prob, scale, half_body_prob, half_body_min_joints: augmentation
            (Appendix A / SimpleBaseline: 0.5, 40°, 0.6, 0.3, 0.3, more than 8 visible joints).
        padding: box padding factor (1.25).

    Sample keys: image (3, H, W) float32 normalized; target (17, 2) heatmap cells; target_weight
    (17,); index; to_original (3, 3) heatmap cells -> original pixels; image_id; bbox_score; area
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
    ) -> None:
        self.records = records
        self.train = train
        self.input_size = tuple(int(v) for v in input_size)
        self.heatmap_size = tuple(int(v) for v in heatmap_size)
        self.aspect_ratio = self.input_size[0] / self.input_size[1]
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
        if visible.sum() > self.half_body_min_joints and rng.random() < self.half_body_prob:
            half = half_body_box(record["keypoints"], visible, rng, self.aspect_ratio)
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
        keypoints, visible = record["keypoints"], record["visible"].astype(np.float32)
        center = np.asarray(center, dtype=np.float64)
        # A flip is an affine too: mirror the whole image first (x' = W - 1 - x), then crop.
        mirror = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        if flip:
            mirror = np.array([[-1.0, 0.0, record["width"] - 1.0], [0.0, 1.0, 0.0]])
            keypoints, visible = flip_keypoints(keypoints, visible, record["width"], self.flip_pairs)
            center = apply_affine(center, mirror)
        to_input = affine_matrix(center, size, rotation, self.input_size)
        to_heatmap = affine_matrix(center, size, rotation, self.heatmap_size)
        crop = warp_image(image, (homogeneous(to_input) @ homogeneous(mirror))[:2], self.input_size)
        target = apply_affine(keypoints, to_heatmap)
        width, height = self.heatmap_size
        inside = (target[:, 0] >= 0) & (target[:, 0] <= width - 1) & (target[:, 1] >= 0) & (target[:, 1] <= height - 1)
        to_original = homogeneous(invert_affine((homogeneous(to_heatmap) @ homogeneous(mirror))[:2]))
        return {
            "image": to_model_input(crop),
            "target": torch.from_numpy(target.astype(np.float32)),
            "target_weight": torch.from_numpy((visible * inside).astype(np.float32)),
            "index": index,
            "to_original": torch.from_numpy(to_original.astype(np.float32)),
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


class COCODataModule(L.LightningDataModule):
    """COCO Keypoint 2017 for top-down 2D pose (SimpleBaseline, 256×192 input, 64×48 heatmaps).

    Trains on ground-truth person boxes; validates/tests on ground-truth boxes or on a person
    detection results json (``val_detection_file`` / ``test_detection_file``). Relative paths are
    resolved against ``data_root``.

    Args:
        data_root: folder with annotations/ and {split}/ image folders; default: env
            ``SAMPLING_ARGMAX_DATA`` + "/coco".
        batch_size: per process (per GPU). num_workers: dataloader workers per process.
        train_split, val_split, test_split: split names ("train2017", "val2017"); the annotation file is
            annotations/person_keypoints_{split}.json and the images {split}/, unless
            ``{stage}_ann_file`` / ``{stage}_image_dir`` override them.
        val_detection_file, test_detection_file: person detection results json; None = GT boxes.
        det_score_threshold: drop detections scoring below it (0.0 as in SimpleBaseline).
        keypoint_score_threshold: joints counted in the instance rescoring (0.2).
        oks_nms_threshold: OKS above which a lower-scored pose of the same image is suppressed (0.9).
        output_dir: where ``evaluate`` writes the results json and metrics (default: the trainer's
            log_dir; nothing when neither exists).
        input_size, heatmap_size, flip_prob, rotation, rotation_prob, scale, half_body_prob,
            half_body_min_joints, padding: see :class:`COCOKeypoints`.
    """

    num_keypoints = 17

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
        keypoint_score_threshold: float = 0.2,
        oks_nms_threshold: float = 0.9,
        output_dir: str | None = None,
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
        if data_root is None:
            env = os.environ.get("SAMPLING_ARGMAX_DATA")
            if env is None:
                raise ValueError(
                    "COCODataModule needs data_root: pass --data.data_root /path/to/coco (the folder with "
                    "annotations/ and train2017/, val2017/) or set SAMPLING_ARGMAX_DATA to a folder holding coco/"
                )
            data_root = str(Path(env) / "coco")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.data_root = Path(data_root)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.splits = {
            "train": (train_split, train_ann_file, train_image_dir, None),
            "val": (val_split, val_ann_file, val_image_dir, val_detection_file),
            "test": (test_split, test_ann_file, test_image_dir, test_detection_file),
        }
        self.det_score_threshold = det_score_threshold
        self.keypoint_score_threshold = keypoint_score_threshold
        self.oks_nms_threshold = oks_nms_threshold
        self.output_dir = output_dir
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
        self.flip_pairs = [tuple(pair) for pair in COCO_FLIP_PAIRS]
        self.datasets: dict[str, COCOKeypoints] = {}
        self._coco_gt: dict[str, object] = {}

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
        if detections is None:
            records = load_person_records(ann, images)
        else:
            records = load_detection_records(detections, ann, images, self.det_score_threshold)
        if not records:
            raise ValueError(f"no person boxes found for stage {stage!r} in {detections or ann}")
        return COCOKeypoints(records, train=stage == "train", **self.dataset_kwargs)

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for name in wanted.get(stage, ("train", "val", "test")):
            if name not in self.datasets:
                self.datasets[name] = self.build_dataset(name)

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        if name not in self.datasets:
            self.datasets[name] = self.build_dataset(name)
        return DataLoader(
            self.datasets[name],
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def coco_gt(self, stage: str):
        """The pycocotools ``COCO`` ground truth of a stage (loaded once)."""
        if stage not in self._coco_gt:
            import contextlib
            import io

            from pycocotools.coco import COCO

            with contextlib.redirect_stdout(io.StringIO()):
                self._coco_gt[stage] = COCO(str(self.paths(stage)[0]))
        return self._coco_gt[stage]

    def _current_stage(self) -> str:
        trainer = getattr(self, "trainer", None)
        return "test" if trainer is not None and trainer.testing else "val"

    def evaluate(self, outputs: dict[str, np.ndarray], stage: str | None = None) -> dict[str, float]:
        """OKS AP of gathered predictions (rescoring + per-image OKS-NMS + pycocotools) and calibration.

        Args:
            outputs: one row per sample of the stage's dataset (batch-contract gathered outputs):
                "pred" (N, 17, 2) original pixels, "confidence" (N, 17), "image_id", "bbox_score",
                "area" (N,), "index" (N,).
            stage: "val" or "test"; default: "test" while the attached trainer is testing, else "val".

        Returns:
            AP, AP50, AP75, APM, APL, AR, AR50, AR75, ARM, ARL (pycocotools, in [0, 1]) and
            oks_confidence_pearson (Pearson r between mean joint confidence and the OKS with the best
            matching ground truth, over instances whose image has labeled people). When the outputs
            cover the whole dataset, every image of the annotation file is evaluated; otherwise only
            the images present (partial runs such as limit_val_batches).
        """
        stage = stage or self._current_stage()
        if stage not in ("val", "test"):
            raise ValueError(f"stage must be 'val' or 'test', got {stage!r}")
        for key in ("pred", "confidence", "image_id", "bbox_score", "area"):
            if key not in outputs:
                raise ValueError(f"outputs is missing {key!r}; expected the gathered batch-contract outputs")
        pred = np.asarray(outputs["pred"], dtype=np.float64)
        confidence = np.asarray(outputs["confidence"], dtype=np.float64)
        image_ids = np.asarray(outputs["image_id"]).reshape(-1).astype(np.int64)
        box_scores = np.asarray(outputs["bbox_score"], dtype=np.float64).reshape(-1)
        areas = np.asarray(outputs["area"], dtype=np.float64).reshape(-1)
        scores = rescore_instances(confidence, box_scores, self.keypoint_score_threshold)

        keep = []
        for image_id in np.unique(image_ids):
            rows = np.flatnonzero(image_ids == image_id)
            keep.extend(rows[oks_nms(pred[rows], scores[rows], areas[rows], self.oks_nms_threshold)])
        keep = np.sort(np.asarray(keep, dtype=int))
        results = keypoint_results(image_ids[keep], pred[keep], confidence[keep], scores[keep])

        coco = self.coco_gt(stage)
        dataset = self.datasets.get(stage)
        covered = "index" in outputs and dataset is not None and len(np.unique(outputs["index"])) == len(dataset)
        metrics = coco_keypoint_ap(coco, results, image_ids=None if covered else np.unique(image_ids))
        metrics["oks_confidence_pearson"] = self._calibration(coco, pred, confidence, image_ids)
        self._write(stage, results, metrics)
        return metrics

    @staticmethod
    def _calibration(coco, pred, confidence, image_ids) -> float:
        instance_confidence, instance_oks = [], []  # (N, K) joint confidences, (N,) OKS
        for image_id in np.unique(image_ids):
            anns = [
                a for a in coco.loadAnns(coco.getAnnIds(imgIds=[int(image_id)], iscrowd=False))
                if a.get("num_keypoints", 0) > 0
            ]
            if not anns:
                continue
            gt = np.array([a["keypoints"] for a in anns], dtype=np.float64).reshape(len(anns), -1, 3)
            rows = np.flatnonzero(image_ids == image_id)
            oks = keypoint_oks(pred[rows], gt[..., :2], gt[..., 2] > 0, np.array([a["area"] for a in anns]), COCO_SIGMAS)
            instance_oks.extend(oks.max(axis=1))
            instance_confidence.extend(confidence[rows])
        if not instance_oks:
            return float("nan")
        return calibration(np.array(instance_confidence), np.array(instance_oks))

    def _write(self, stage: str, results: list[dict], metrics: dict[str, float]) -> None:
        trainer = getattr(self, "trainer", None)
        if trainer is not None and not trainer.is_global_zero:
            return
        out = self.output_dir or (trainer.log_dir if trainer is not None else None)
        if out is None:
            return
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        split = self.splits[stage][0]
        with open(out / f"coco_keypoints_{stage}_{split}_results.json", "w") as handle:
            json.dump(results, handle)
        with open(out / f"coco_keypoints_{stage}_{split}_metrics.json", "w") as handle:
            json.dump(metrics, handle, indent=2)
        log.info("wrote COCO keypoint results and metrics of %s to %s", stage, out)


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
