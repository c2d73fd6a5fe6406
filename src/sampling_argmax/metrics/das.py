"""The dual alignment score (DAS) of unsupervised 3D keypoints, and its evaluator.

Skeleton Merger's evaluation (Shi et al., CVPR 2021) on KeypointNet; facts from its description, no code
taken. An unsupervised detector's keypoint ``i`` has no name: it is good when it lands on the *same
semantic part* on every object of the class. DAS measures that consistency with the annotated semantic
keypoints, which are used for evaluation only:

* every cloud (with its predicted and annotated keypoints) is normalized to ``[-1, 1]`` per axis by the
  cloud's min and max (:func:`normalize_min_max`);
* **forward alignment**: each predicted keypoint ``i`` of a model is labelled with the semantic id of its
  nearest annotated keypoint; for two models, the share of ``i`` with the same label on both; averaged
  over all ordered pairs of distinct models;
* **backward alignment**: each annotated semantic id ``s`` of a model is labelled with the index of its
  nearest predicted keypoint; for two models, the share of the ids annotated on both that get the same
  index; averaged over all ordered pairs of distinct models (pairs sharing no id are left out);
* DAS = the mean of the two (the single number the sampling-argmax paper reports).

Not part of DAS, reported beside it (``keypoint_truth_distance``): the mean distance from a predicted keypoint
to its nearest annotated one in the normalized frame (:func:`nearest_truth_distance`), which tells keypoints on
semantic parts from keypoints gathered inside the object (both can align consistently).

A detector that puts keypoint ``i`` on the same part everywhere scores 1; keypoints placed at random
score the chance level of their labels (about 1/G forward for G equally likely ids, 1/K backward).

Example:
    >>> truth = np.array([[[0.0, 0, 0], [1, 1, 1]]] * 3)       # 3 models, ids 0 and 1 at opposite corners
    >>> pred = truth[:, ::-1] + 0.01                              # keypoint 0 on id 1, keypoint 1 on id 0
    >>> {k: round(v, 3) for k, v in dual_alignment(pred, truth, np.ones((3, 2))).items()}
    {'forward': 1.0, 'backward': 1.0, 'das': 1.0}
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from sampling_argmax.metrics.base import EvaluationContext, Evaluator, require

__all__ = [
    "normalize_min_max",
    "nearest_semantic_ids",
    "nearest_keypoint_indices",
    "pairwise_agreement",
    "dual_alignment",
    "nearest_truth_distance",
    "DASEvaluator",
]


def normalize_min_max(points: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Map each cloud of ``points`` (M, N, 3) to [-1, 1] per axis by its min/max; ``others`` (M, L, 3)
    (keypoints of the same clouds) go through the same map. A flat axis (max = min) is only centred."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 3:
        raise ValueError(f"points {points.shape} must be (M, N, d) clouds")
    low, high = points.min(1, keepdims=True), points.max(1, keepdims=True)
    centre, half = (low + high) / 2, np.maximum((high - low) / 2, 1e-12)
    out = [(points - centre) / half]
    for other in others:
        other = np.asarray(other, dtype=np.float64)
        if other.ndim != 3 or other.shape[0] != points.shape[0] or other.shape[2] != points.shape[2]:
            raise ValueError(f"keypoints {other.shape} must be (M, L, {points.shape[2]}) for clouds {points.shape}")
        out.append((other - centre) / half)
    return tuple(out)


def _check(pred: np.ndarray, truth: np.ndarray, truth_weight: np.ndarray) -> tuple[np.ndarray, ...]:
    pred, truth = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    labeled = np.asarray(truth_weight) > 0
    if pred.ndim != 3 or truth.ndim != 3 or pred.shape[0] != truth.shape[0] or pred.shape[2] != truth.shape[2]:
        raise ValueError(f"pred {pred.shape} and truth {truth.shape} must be (M, K, d) and (M, G, d)")
    if labeled.shape != truth.shape[:2]:
        raise ValueError(f"truth_weight {labeled.shape} must be (M, G) = {truth.shape[:2]}")
    return pred, truth, labeled


def _distances(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.linalg.norm(pred[:, :, None] - truth[:, None], axis=-1)  # (M, K, G)


def nearest_semantic_ids(pred: np.ndarray, truth: np.ndarray, truth_weight: np.ndarray) -> np.ndarray:
    """(M, K): the semantic id (column of ``truth``) of the annotated keypoint nearest each predicted one;
    -1 on a model with no annotated keypoint."""
    pred, truth, labeled = _check(pred, truth, truth_weight)
    distance = np.where(labeled[:, None], _distances(pred, truth), np.inf)
    return np.where(labeled.any(1, keepdims=True), distance.argmin(-1), -1)


def nearest_keypoint_indices(pred: np.ndarray, truth: np.ndarray, truth_weight: np.ndarray) -> np.ndarray:
    """(M, G): the index of the predicted keypoint nearest each annotated semantic id; -1 where not annotated."""
    pred, truth, labeled = _check(pred, truth, truth_weight)
    return np.where(labeled, _distances(pred, truth).argmin(1), -1)


def pairwise_agreement(labels: np.ndarray, chunk: int = 256) -> float:
    """Mean over ordered pairs of distinct rows of the share of columns where both rows agree.

    ``labels`` (M, L) integers, -1 = no label (a column counts for a pair only where both rows have one;
    pairs with no such column are left out). NaN when no pair counts.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels {labels.shape} must be (M, L)")
    valid = labels >= 0
    total, pairs = 0.0, 0
    for start in range(0, len(labels), chunk):
        rows = slice(start, start + chunk)
        both = valid[rows, None] & valid[None]  # (chunk, M, L)
        same = (labels[rows, None] == labels[None]) & both
        count = both.sum(-1)
        count[np.arange(count.shape[0]), np.arange(start, start + count.shape[0])] = 0  # a model with itself
        keep = count > 0
        total += float((same.sum(-1)[keep] / count[keep]).sum())
        pairs += int(keep.sum())
    return total / pairs if pairs else float("nan")


def dual_alignment(pred: np.ndarray, truth: np.ndarray, truth_weight: np.ndarray,
                   points: np.ndarray | None = None) -> dict[str, float]:
    """Forward and backward alignment of predicted keypoints (M, K, 3) with annotated ones (M, G, 3), and DAS.

    ``truth_weight`` (M, G): > 0 where a semantic id is annotated on the model. With ``points`` (M, N, 3) every
    cloud and its keypoints are first normalized to [-1, 1] (:func:`normalize_min_max`), as the benchmark does.
    """
    if points is not None:
        _, pred, truth = normalize_min_max(points, pred, truth)
    forward = pairwise_agreement(nearest_semantic_ids(pred, truth, truth_weight))
    backward = pairwise_agreement(nearest_keypoint_indices(pred, truth, truth_weight))
    return {"forward": forward, "backward": backward, "das": (forward + backward) / 2}


def nearest_truth_distance(pred: np.ndarray, truth: np.ndarray, truth_weight: np.ndarray,
                           points: np.ndarray | None = None) -> float:
    """Mean distance of each predicted keypoint to its nearest annotated keypoint (models with annotations only);
    with ``points`` in the [-1, 1] frame of :func:`normalize_min_max`."""
    if points is not None:
        _, pred, truth = normalize_min_max(points, pred, truth)
    pred, truth, labeled = _check(pred, truth, truth_weight)
    nearest = np.where(labeled[:, None], _distances(pred, truth), np.inf).min(-1)  # (M, K)
    rows = labeled.any(1)
    return float(nearest[rows].mean()) if rows.any() else float("nan")


class DASEvaluator(Evaluator):
    """DAS of a class's objects (per category when the split mixes several, then averaged).

    Reads ``pred`` (M, K, 3), ``gt_keypoints`` (M, G, 3), ``gt_weight`` (M, G), ``points`` (M, N, 3) and, if
    present, ``category`` (M,) named by ``references["categories"]``. Returns ``das`` (the mean of forward and
    backward alignment, averaged over categories), ``das_forward``, ``das_backward``, ``das_<category>``
    when there are several categories, and ``keypoint_truth_distance`` (:func:`nearest_truth_distance`, not
    part of DAS).
    """

    def __call__(self, outputs: Mapping[str, np.ndarray], context: EvaluationContext) -> dict[str, float]:
        require(outputs, ("pred", "gt_keypoints", "gt_weight", "points"), type(self).__name__)
        category = np.asarray(outputs.get("category", np.zeros(len(outputs["pred"]), dtype=np.int64))).astype(int)
        names = list(context.references.get("categories", []))
        scores = {}
        for c in np.unique(category):
            rows = category == c
            name = names[c] if c < len(names) else str(c)
            arrays = (outputs["pred"][rows], outputs["gt_keypoints"][rows], outputs["gt_weight"][rows],
                      outputs["points"][rows])
            scores[name] = {**dual_alignment(*arrays), "distance": nearest_truth_distance(*arrays)}
        metrics = {f"das_{part}" if part != "das" else "das": float(np.nanmean([s[part] for s in scores.values()]))
                   for part in ("das", "forward", "backward")}
        metrics["keypoint_truth_distance"] = float(np.nanmean([s["distance"] for s in scores.values()]))
        if len(scores) > 1:
            metrics.update({f"das_{name}": s["das"] for name, s in scores.items()})
        return metrics
