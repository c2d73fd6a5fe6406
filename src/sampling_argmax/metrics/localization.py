"""Generic localization errors on arrays: per-keypoint Euclidean error, its mean, PCK.

All functions take predictions and targets ``(N, K, dims)`` in the same units and an optional
visibility ``weight`` ``(N, K)`` (0 = not labeled; such keypoints are left out of every average).

Example:
    >>> import numpy as np
    >>> pred = np.array([[[0.0, 0.0], [3.0, 4.0]]]); target = np.zeros((1, 2, 2))
    >>> float(mean_keypoint_error(pred, target)), float(pck(pred, target, threshold=2.0))
    (2.5, 0.5)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from sampling_argmax.metrics.base import EvaluationContext, Evaluator, require
from sampling_argmax.metrics.calibration import calibration

__all__ = ["keypoint_errors", "mean_keypoint_error", "pck", "instance_errors", "KeypointEvaluator"]


def _checked(pred: np.ndarray, target: np.ndarray, weight: np.ndarray | None) -> tuple[np.ndarray, ...]:
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if pred.ndim != 3 or pred.shape != target.shape:
        raise ValueError(f"pred {pred.shape} and target {target.shape} must both be (N, K, dims)")
    if weight is None:
        weight = np.ones(pred.shape[:2])
    weight = np.asarray(weight, dtype=np.float64)
    if weight.shape != pred.shape[:2]:
        raise ValueError(f"weight {weight.shape} must be (N, K) = {pred.shape[:2]}")
    return pred, target, weight


def keypoint_errors(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Euclidean distance per keypoint: (N, K, dims) x 2 -> (N, K)."""
    pred, target, _ = _checked(pred, target, None)
    return np.linalg.norm(pred - target, axis=-1)


def mean_keypoint_error(pred: np.ndarray, target: np.ndarray, weight: np.ndarray | None = None) -> float:
    """Mean Euclidean error over labeled keypoints of all instances (nan when none is labeled)."""
    pred, target, weight = _checked(pred, target, weight)
    total = weight.sum()
    if total <= 0:
        return float("nan")
    return float((np.linalg.norm(pred - target, axis=-1) * weight).sum() / total)


def instance_errors(pred: np.ndarray, target: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
    """Mean Euclidean error per instance over its labeled keypoints, (N,) (nan for an unlabeled instance)."""
    pred, target, weight = _checked(pred, target, weight)
    count = weight.sum(axis=1)
    total = (np.linalg.norm(pred - target, axis=-1) * weight).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1e-12), np.nan)


def pck(
    pred: np.ndarray, target: np.ndarray, threshold: float | np.ndarray, weight: np.ndarray | None = None
) -> float:
    """Fraction of labeled keypoints whose error is <= threshold.

    ``threshold`` is a scalar, or (N,) per instance (e.g. a fraction of each instance's size).
    """
    pred, target, weight = _checked(pred, target, weight)
    threshold = np.asarray(threshold, dtype=np.float64)
    if threshold.ndim == 1:
        if threshold.shape[0] != pred.shape[0]:
            raise ValueError(f"threshold {threshold.shape} must be a scalar or (N,) with N = {pred.shape[0]}")
        threshold = threshold[:, None]
    elif threshold.ndim != 0:
        raise ValueError(f"threshold {threshold.shape} must be a scalar or (N,)")
    total = weight.sum()
    if total <= 0:
        return float("nan")
    hits = np.linalg.norm(pred - target, axis=-1) <= threshold
    return float((hits * weight).sum() / total)


class KeypointEvaluator(Evaluator):
    """Generic keypoint metrics in the units of the outputs' ``"keypoints"`` (original units).

    ``mean_error``, ``pck`` (error <= ``pck_threshold``) and ``calibration`` (Pearson of the instance's
    mean confidence with minus its mean error). Reads "pred", "keypoints", "confidence" and, when present,
    "target_weight" (0 = not labeled). The evaluator of the synthetic tasks.
    """

    def __init__(self, pck_threshold: float = 2.0) -> None:
        if not pck_threshold > 0:
            raise ValueError(f"pck_threshold must be > 0 (a distance in original units), got {pck_threshold}")
        self.pck_threshold = float(pck_threshold)

    def __call__(self, outputs: Mapping[str, np.ndarray], context: EvaluationContext) -> dict[str, float]:
        require(outputs, ("pred", "keypoints", "confidence"), type(self).__name__)
        pred, truth, weight = outputs["pred"], outputs["keypoints"], outputs.get("target_weight")
        errors = instance_errors(pred, truth, weight)
        return {
            "mean_error": mean_keypoint_error(pred, truth, weight),
            "pck": pck(pred, truth, self.pck_threshold, weight),
            "calibration": calibration(outputs["confidence"], -errors, weight),
        }
