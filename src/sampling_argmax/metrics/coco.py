"""COCO keypoint evaluation: OKS, instance rescoring, OKS-NMS, OKS AP (pycocotools).

Pure functions on numpy arrays; :func:`coco_keypoint_ap` is the only one that touches pycocotools.
The pipeline of a top-down evaluation (:class:`COCOEvaluator`) is::

    scores = rescore_instances(confidence, box_scores)          # box score x mean confident-joint score
    keep = oks_nms(keypoints, scores, areas)                     # per image
    results = keypoint_results(image_ids[keep], keypoints[keep], confidence[keep], scores[keep])
    metrics = coco_keypoint_ap(coco_gt, results)                 # AP, AP50, AP75, APM, APL, AR, ...

The paper's calibration number is ``metrics.calibration.calibration(confidence, oks)`` with the
OKS of each instance from :func:`keypoint_oks`.

Example:
    >>> import numpy as np
    >>> kp = np.zeros((2, 17, 2)); kp[1] += 0.5                  # two near-identical poses
    >>> oks_nms(kp, scores=np.array([0.2, 0.9]), areas=np.array([1e4, 1e4])).tolist()
    [1]
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from sampling_argmax.metrics.base import EvaluationContext, Evaluator, require
from sampling_argmax.metrics.calibration import calibration

log = logging.getLogger(__name__)

__all__ = [
    "COCO_SIGMAS",
    "COCO_METRIC_NAMES",
    "keypoint_oks",
    "rescore_instances",
    "oks_nms",
    "keypoint_results",
    "coco_keypoint_ap",
    "load_coco",
    "COCOEvaluator",
]

#: Per-keypoint OKS constants of the 17 COCO keypoints (the values pycocotools uses).
COCO_SIGMAS = np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62,
                        1.07, 1.07, 0.87, 0.87, 0.89, 0.89]) / 10.0

#: Names of ``COCOeval.stats`` for iouType "keypoints", in order.
COCO_METRIC_NAMES = ("AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL")


def keypoint_oks(
    pred: np.ndarray,
    gt: np.ndarray,
    gt_visible: np.ndarray,
    gt_areas: np.ndarray,
    sigmas: np.ndarray = COCO_SIGMAS,
) -> np.ndarray:
    """Object keypoint similarity between every prediction and every ground-truth instance.

    OKS = mean over visible GT joints of exp(-d² / (2 · area · (2σ)²)), as in pycocotools.

    Args:
        pred: (N, K, 2) predicted x, y in pixels.
        gt: (M, K, 2) ground-truth x, y.
        gt_visible: (M, K) bool, joints that count (COCO v > 0).
        gt_areas: (M,) instance areas (pixels²).
        sigmas: (K,) per-joint constants.

    Returns:
        (N, M) OKS in [0, 1]; 0 for a GT instance without visible joints.

    Example:
        >>> gt = np.zeros((1, 17, 2)); vis = np.ones((1, 17), bool)
        >>> keypoint_oks(gt.copy(), gt, vis, np.array([100.0])).tolist()
        [[1.0]]
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    gt_visible = np.asarray(gt_visible, dtype=bool)
    gt_areas = np.asarray(gt_areas, dtype=np.float64)
    sigmas = np.asarray(sigmas, dtype=np.float64)
    if pred.ndim != 3 or gt.ndim != 3 or pred.shape[1:] != gt.shape[1:] or pred.shape[2] != 2:
        raise ValueError(f"pred (N, K, 2) and gt (M, K, 2) must share K, got {pred.shape} and {gt.shape}")
    if gt_visible.shape != gt.shape[:2] or gt_areas.shape != gt.shape[:1] or sigmas.shape != gt.shape[1:2]:
        raise ValueError(
            f"gt_visible (M, K), gt_areas (M,), sigmas (K,) must match gt {gt.shape}; got "
            f"{gt_visible.shape}, {gt_areas.shape}, {sigmas.shape}"
        )
    sq_dist = np.sum((pred[:, None] - gt[None]) ** 2, axis=-1)  # (N, M, K)
    denom = 2.0 * (gt_areas[None, :, None] + np.spacing(1)) * (2.0 * sigmas) ** 2
    similarity = np.exp(-sq_dist / denom) * gt_visible[None]
    count = gt_visible.sum(axis=1)[None]
    return np.where(count > 0, similarity.sum(-1) / np.maximum(count, 1), 0.0)


def rescore_instances(confidence: np.ndarray, box_scores: np.ndarray, threshold: float = 0.2) -> np.ndarray:
    """Instance score = box score × mean confidence of the joints whose confidence exceeds ``threshold``.

    The standard top-down rescoring (SimpleBaseline, mmpose). When no joint of an instance passes
    the threshold, the mean over all its joints is used, so that such instances keep a ranking
    among themselves instead of all tying at 0 (confidence scales differ between read-outs).

    Args:
        confidence: (N, K) per-joint confidence.
        box_scores: (N,) person box scores (1 for ground-truth boxes).

    Example:
        >>> rescore_instances(np.array([[0.9, 0.1, 0.5]]), np.array([0.5])).round(3).tolist()
        [0.35]
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    box_scores = np.asarray(box_scores, dtype=np.float64).reshape(-1)
    if confidence.ndim != 2 or box_scores.shape[0] != confidence.shape[0]:
        raise ValueError(f"confidence must be (N, K) and box_scores (N,), got {confidence.shape}, {box_scores.shape}")
    passing = confidence > threshold
    count = passing.sum(axis=1)
    confident_mean = np.where(passing, confidence, 0.0).sum(axis=1) / np.maximum(count, 1)
    mean = np.where(count > 0, confident_mean, confidence.mean(axis=1) if confidence.shape[1] else 0.0)
    return box_scores * mean


def oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    threshold: float = 0.9,
    sigmas: np.ndarray = COCO_SIGMAS,
) -> np.ndarray:
    """Greedy non-maximum suppression of poses of one image by OKS.

    Repeatedly keeps the highest-scoring pose and drops every remaining pose whose OKS with it
    (all joints counted, the mean of the two areas as scale) exceeds ``threshold``.

    Args:
        keypoints: (N, K, 2) poses of one image, pixels.
        scores: (N,) instance scores.
        areas: (N,) instance areas (pixels²), e.g. the person box area.

    Returns:
        indices of the kept poses, by decreasing score.

    Example:
        >>> kp = np.stack([np.zeros((17, 2)), np.full((17, 2), 50.0)])
        >>> oks_nms(kp, np.array([0.1, 0.8]), np.array([100.0, 100.0])).tolist()
        [1, 0]
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    areas = np.asarray(areas, dtype=np.float64).reshape(-1)
    if keypoints.ndim != 3 or not (scores.shape[0] == areas.shape[0] == keypoints.shape[0]):
        raise ValueError(
            f"keypoints (N, K, 2), scores (N,), areas (N,) must agree, got {keypoints.shape}, {scores.shape}, {areas.shape}"
        )
    sigmas = np.asarray(sigmas, dtype=np.float64)
    order = list(np.argsort(-scores, kind="stable"))
    keep = []
    while order:
        best, rest = order[0], np.array(order[1:], dtype=int)
        keep.append(best)
        if rest.size == 0:
            break
        sq_dist = np.sum((keypoints[rest] - keypoints[best]) ** 2, axis=-1)  # (R, K)
        scale = (areas[rest, None] + areas[best]) / 2.0 + np.spacing(1)
        oks = np.mean(np.exp(-sq_dist / (2.0 * scale * (2.0 * sigmas) ** 2)), axis=1)
        order = list(rest[oks <= threshold])
    return np.asarray(keep, dtype=int)


def keypoint_results(
    image_ids: np.ndarray,
    keypoints: np.ndarray,
    confidence: np.ndarray,
    scores: np.ndarray,
    category_id: int = 1,
) -> list[dict]:
    """COCO keypoint results (the json list ``COCO.loadRes`` reads), one dict per instance.

    Args:
        image_ids: (N,) COCO image ids.
        keypoints: (N, K, 2) x, y in original-image pixels.
        confidence: (N, K) per-joint confidence (written as the keypoint "visibility" column).
        scores: (N,) instance scores.

    Example:
        >>> r = keypoint_results(np.array([7]), np.ones((1, 2, 2)), np.full((1, 2), 0.5), np.array([0.9]))
        >>> r[0]["image_id"], r[0]["keypoints"], r[0]["score"]
        (7, [1.0, 1.0, 0.5, 1.0, 1.0, 0.5], 0.9)
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    confidence = np.asarray(confidence, dtype=np.float64)
    triples = np.concatenate([keypoints, confidence[..., None]], axis=-1).reshape(len(keypoints), -1)
    return [
        {
            "image_id": int(image_id),
            "category_id": int(category_id),
            "keypoints": [float(v) for v in row],
            "score": float(score),
        }
        for image_id, row, score in zip(np.asarray(image_ids).reshape(-1), triples, np.asarray(scores).reshape(-1))
    ]


def coco_keypoint_ap(coco_gt, results: list[dict], image_ids: Sequence[int] | None = None,
                     sigmas: Sequence[float] | None = None, category_id: int | None = None) -> dict[str, float]:
    """OKS AP/AR of keypoint ``results`` against a ``pycocotools.coco.COCO`` ground truth.

    Args:
        coco_gt: loaded ``COCO`` object of a keypoints annotation file.
        results: list from :func:`keypoint_results`.
        image_ids: restrict the evaluation to these images (default: every image of ``coco_gt``).
        sigmas: (K,) OKS constants; None = pycocotools' own (COCO's 17 person keypoints).
        category_id: evaluate this category only; None = every category of ``coco_gt``.

    Returns:
        {"AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL"} as floats in [0, 1]
        (-1 where pycocotools has no ground truth in a range). Empty ``results`` give all zeros.
    """
    from pycocotools.cocoeval import COCOeval

    if not results:
        return {name: 0.0 for name in COCO_METRIC_NAMES}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress and tables
        coco_dt = coco_gt.loadRes(list(results))
        evaluator = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        if image_ids is not None:
            evaluator.params.imgIds = sorted({int(i) for i in image_ids})
        if sigmas is not None:
            evaluator.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        if category_id is not None:
            evaluator.params.catIds = [int(category_id)]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(value) for name, value in zip(COCO_METRIC_NAMES, evaluator.stats)}


def load_coco(ann_file: str | Path):
    """A ``pycocotools.coco.COCO`` ground truth, quietly, with a clear error for a bad file.

    Annotations without the fields that the keypoint evaluation reads (exports of other tools often omit them)
    get them as COCO defines them: ``num_keypoints`` = labeled keypoints (v > 0), ``iscrowd`` = 0, ``area`` =
    the box's w x h.
    """
    from pycocotools.coco import COCO

    path = Path(ann_file)
    if not path.is_file():
        raise FileNotFoundError(f"COCO annotation file {path} not found (the evaluated split's ground truth)")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(path))
        for ann in coco.dataset.get("annotations", []):
            if "keypoints" in ann and "num_keypoints" not in ann:
                ann["num_keypoints"] = int(np.sum(np.asarray(ann["keypoints"], dtype=np.float64)[2::3] > 0))
            ann.setdefault("iscrowd", 0)
            if "area" not in ann and len(ann.get("bbox", ())) == 4:
                ann["area"] = float(ann["bbox"][2]) * float(ann["bbox"][3])
        return coco
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"pycocotools cannot read {path} ({type(error).__name__}: {error}); is it a COCO "
                         "person_keypoints json?") from error


class COCOEvaluator(Evaluator):
    """OKS AP of top-down predictions: rescoring, per-image OKS-NMS, pycocotools; and calibration.

    Reads "pred" (N, 17, 2) original pixels, "confidence" (N, 17), "image_id", "bbox_score", "area"
    (N,). Needs ``references["ann_file"]`` (the split's annotation json) and ``references["split"]``
    (its name, for file names); ``references["sigmas"]`` (K OKS constants, default :data:`COCO_SIGMAS`) and
    ``references["category_id"]`` (default 1, the person) for other categories. When the outputs cover the whole split (``context.num_samples``) every
    image of the annotation file is evaluated; otherwise only the images present (partial runs such as
    ``limit_val_batches``). Writes ``coco_keypoints_<stage>_<split>_results.json`` and ``..._metrics.json``.

    Returns AP, AP50, AP75, APM, APL, AR, AR50, AR75, ARM, ARL (in [0, 1]) and ``oks_confidence_pearson``
    (Pearson r between mean joint confidence and the OKS with the best-matching ground truth, over
    instances whose image has labeled people).

    Args:
        keypoint_score_threshold: joints above it count in an instance's rescoring (SimpleBaseline: 0.2).
        oks_nms_threshold: OKS above which the lower-scored of two instances is dropped (0.9).
    """

    def __init__(self, keypoint_score_threshold: float = 0.2, oks_nms_threshold: float = 0.9) -> None:
        if not 0 <= keypoint_score_threshold <= 1 or not 0 < oks_nms_threshold <= 1:
            raise ValueError(
                f"need 0 <= keypoint_score_threshold <= 1 and 0 < oks_nms_threshold <= 1, got "
                f"{keypoint_score_threshold}, {oks_nms_threshold}"
            )
        self.keypoint_score_threshold = float(keypoint_score_threshold)
        self.oks_nms_threshold = float(oks_nms_threshold)
        self._ground_truth: dict[str, object] = {}

    def ground_truth(self, ann_file: str | Path):
        """The loaded ground truth of ``ann_file`` (once per file)."""
        key = str(ann_file)
        if key not in self._ground_truth:
            self._ground_truth[key] = load_coco(ann_file)
        return self._ground_truth[key]

    def __call__(self, outputs: Mapping[str, np.ndarray], context: EvaluationContext) -> dict[str, float]:
        require(outputs, ("pred", "confidence", "image_id", "bbox_score", "area"), type(self).__name__)
        if "ann_file" not in context.references:
            raise ValueError("COCOEvaluator needs references['ann_file'] from the data module (COCODataModule)")
        pred = np.asarray(outputs["pred"], dtype=np.float64)
        confidence = np.asarray(outputs["confidence"], dtype=np.float64)
        image_ids = np.asarray(outputs["image_id"]).reshape(-1).astype(np.int64)
        box_scores = np.asarray(outputs["bbox_score"], dtype=np.float64).reshape(-1)
        areas = np.asarray(outputs["area"], dtype=np.float64).reshape(-1)
        scores = rescore_instances(confidence, box_scores, self.keypoint_score_threshold)
        sigmas = np.asarray(context.references.get("sigmas", COCO_SIGMAS), dtype=np.float64)
        category_id = int(context.references.get("category_id", 1))
        if sigmas.shape != pred.shape[1:2]:
            raise ValueError(f"references['sigmas'] holds {sigmas.size} OKS constants for {pred.shape[1]} keypoints; "
                             "give one per keypoint (--data.sigmas)")

        keep = []
        for image_id in np.unique(image_ids):
            rows = np.flatnonzero(image_ids == image_id)
            keep.extend(rows[oks_nms(pred[rows], scores[rows], areas[rows], self.oks_nms_threshold, sigmas)])
        keep = np.sort(np.asarray(keep, dtype=int))
        results = keypoint_results(image_ids[keep], pred[keep], confidence[keep], scores[keep], category_id)

        coco = self.ground_truth(context.references["ann_file"])
        covered = context.num_samples is not None and len(pred) == context.num_samples
        metrics = coco_keypoint_ap(coco, results, image_ids=None if covered else np.unique(image_ids),
                                   sigmas=None if "sigmas" not in context.references else sigmas,
                                   category_id=None if "category_id" not in context.references else category_id)
        metrics["oks_confidence_pearson"] = _oks_calibration(coco, pred, confidence, image_ids, sigmas, category_id)
        if context.output_dir is not None:
            _write(Path(context.output_dir), f"{context.stage}_{context.references.get('split', '')}", results,
                   metrics)
        return metrics


def _oks_calibration(coco, pred: np.ndarray, confidence: np.ndarray, image_ids: np.ndarray,
                     sigmas: np.ndarray = COCO_SIGMAS, category_id: int = 1) -> float:
    instance_confidence, instance_oks = [], []  # (N, K) joint confidences, (N,) OKS
    for image_id in np.unique(image_ids):
        anns = [
            a for a in coco.loadAnns(coco.getAnnIds(imgIds=[int(image_id)], iscrowd=False))
            if a.get("num_keypoints", 0) > 0 and a.get("category_id", category_id) == category_id
        ]
        if not anns:
            continue
        gt = np.array([a["keypoints"] for a in anns], dtype=np.float64).reshape(len(anns), -1, 3)
        rows = np.flatnonzero(image_ids == image_id)
        oks = keypoint_oks(pred[rows], gt[..., :2], gt[..., 2] > 0, np.array([a["area"] for a in anns]), sigmas)
        instance_oks.extend(oks.max(axis=1))
        instance_confidence.extend(confidence[rows])
    if not instance_oks:
        return float("nan")
    return calibration(np.array(instance_confidence), np.array(instance_oks))


def _write(out: Path, name: str, results: list[dict], metrics: dict[str, float]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"coco_keypoints_{name}_results.json", "w") as handle:
        json.dump(results, handle)
    with open(out / f"coco_keypoints_{name}_metrics.json", "w") as handle:
        json.dump(metrics, handle, indent=2)
    log.info("wrote COCO keypoint results and metrics (%s) to %s", name, out)
