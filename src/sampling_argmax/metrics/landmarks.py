"""Facial-landmark metrics (MTFL, PAPER.md §6): absolute and inter-ocular-normalized errors.

All functions are pure numpy (Euclidean errors from :mod:`.localization`, Pearson from
:mod:`.calibration`). Shapes: predictions and targets (N, K, 2) in original-image pixels,
inter-ocular distances (N,), confidences (N, K).

Example:
    >>> pred = np.array([[[0.0, 0.0], [10.0, 0.0]]]); target = np.array([[[3.0, 4.0], [10.0, 0.0]]])
    >>> float(absolute_error(pred, target)), float(relative_error(pred, target, np.array([10.0])))
    (2.5, 25.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from sampling_argmax.metrics.base import EvaluationContext, Evaluator, require
from sampling_argmax.metrics.calibration import calibration
from sampling_argmax.metrics.localization import keypoint_errors

__all__ = [
    "interocular_distance",
    "absolute_error",
    "relative_error",
    "per_landmark_errors",
    "evaluate_landmarks",
    "LandmarkEvaluator",
]


def _points(array, name: str) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 3 or array.shape[-1] != 2:
        raise ValueError(f"{name} must have shape (N, K, 2), got {array.shape}")
    return array


def interocular_distance(landmarks: np.ndarray, left_eye: int = 0, right_eye: int = 1) -> np.ndarray:
    """Distance between the two eye landmarks (MTFL order: left eye 0, right eye 1): (N, K, 2) -> (N,).

    Example:
        >>> interocular_distance(np.array([[[0.0, 0.0], [6.0, 8.0]]])).tolist()
        [10.0]
    """
    landmarks = _points(landmarks, "landmarks")
    return np.linalg.norm(landmarks[:, left_eye] - landmarks[:, right_eye], axis=-1)


def _normalized(pred: np.ndarray, target: np.ndarray, interocular: np.ndarray | None) -> np.ndarray:
    errors = keypoint_errors(_points(pred, "pred"), _points(target, "target"))
    scale = interocular_distance(target) if interocular is None else np.asarray(interocular, dtype=np.float64)
    if scale.shape != (errors.shape[0],):
        raise ValueError(f"interocular must have shape (N,) = ({errors.shape[0]},), got {scale.shape}")
    if np.any(~np.isfinite(scale) | (scale <= 0)):
        raise ValueError("interocular distances must be positive and finite (two eye landmarks at the same point?)")
    return errors / scale[:, None]


def absolute_error(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean Euclidean landmark error in pixels over faces and landmarks ("Abs. Err").

    Example:
        >>> absolute_error(np.zeros((2, 1, 2)), np.array([[[3.0, 4.0]], [[0.0, 1.0]]]))
        3.0
    """
    return float(keypoint_errors(_points(pred, "pred"), _points(target, "target")).mean())


def relative_error(pred: np.ndarray, target: np.ndarray, interocular: np.ndarray | None = None) -> float:
    """Per-landmark error / inter-ocular distance, averaged, × 100 ("Rel. Err", %).

    ``interocular`` (N,) defaults to the distance between the target's eyes.

    Example:
        >>> relative_error(np.zeros((1, 2, 2)), np.array([[[0.0, 0.0], [0.0, 4.0]]]))
        50.0
    """
    return float(100.0 * _normalized(pred, target, interocular).mean())


def per_landmark_errors(
    pred: np.ndarray, target: np.ndarray, interocular: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Mean absolute (pixels) and relative (%) error of each landmark: -> ((K,), (K,)).

    Example:
        >>> absolute, relative = per_landmark_errors(np.zeros((1, 2, 2)), np.array([[[0.0, 0.0], [0.0, 4.0]]]))
        >>> absolute.tolist(), relative.tolist()
        ([0.0, 4.0], [0.0, 100.0])
    """
    absolute = keypoint_errors(_points(pred, "pred"), _points(target, "target")).mean(axis=0)
    relative = 100.0 * _normalized(pred, target, interocular).mean(axis=0)
    return absolute, relative


def evaluate_landmarks(
    pred: np.ndarray,
    target: np.ndarray,
    interocular: np.ndarray | None = None,
    confidence: np.ndarray | None = None,
    names: Sequence[str] = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth"),
) -> dict[str, float]:
    """All MTFL metrics as one flat dict (the DataModule's ``evaluate``).

    Keys: "abs_err" (pixels), "rel_err" (%), "abs_err/<name>", "rel_err/<name>", and with
    ``confidence`` (N, K) "calibration": Pearson correlation, over faces, between the mean landmark
    confidence and the accuracy −(face's relative error) — positive when confident faces are accurate.

    Example:
        >>> target = np.array([[[0.0, 0.0], [10.0, 0.0]]] * 3)
        >>> pred = target + np.array([0.0, 1.0, 2.0])[:, None, None]
        >>> metrics = evaluate_landmarks(pred, target, confidence=np.array([[0.9] * 2, [0.5] * 2, [0.1] * 2]),
        ...                              names=("a", "b"))
        >>> round(metrics["rel_err"], 3), round(metrics["abs_err/b"], 3), round(metrics["calibration"], 3)
        (14.142, 1.414, 1.0)
    """
    pred, target = _points(pred, "pred"), _points(target, "target")
    if len(names) != target.shape[1]:
        raise ValueError(f"names has {len(names)} entries but there are K={target.shape[1]} landmarks")
    normalized = _normalized(pred, target, interocular)
    absolute, relative = per_landmark_errors(pred, target, interocular)
    metrics = {"abs_err": absolute_error(pred, target), "rel_err": float(100.0 * normalized.mean())}
    for name, a, r in zip(names, absolute, relative):
        metrics[f"abs_err/{name}"] = float(a)
        metrics[f"rel_err/{name}"] = float(r)
    if confidence is not None:
        confidence = np.asarray(confidence, dtype=np.float64)
        if confidence.shape != normalized.shape:
            raise ValueError(f"confidence must have shape (N, K) = {normalized.shape}, got {confidence.shape}")
        metrics["calibration"] = calibration(confidence, -normalized.mean(axis=1))
    return metrics


class LandmarkEvaluator(Evaluator):
    """Facial-landmark metrics of :func:`evaluate_landmarks` (MTFL's evaluator).

    Reads "pred" and "landmarks" (original pixels), "interocular" (original pixels) and "confidence".

    Args:
        names: landmark names of the per-landmark keys (MTFL's five by default).
    """

    def __init__(self, names: Sequence[str] = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")) -> None:
        self.names = tuple(names)

    def __call__(self, outputs: Mapping[str, np.ndarray], context: EvaluationContext) -> dict[str, float]:
        require(outputs, ("pred", "landmarks", "interocular", "confidence"), type(self).__name__)
        return evaluate_landmarks(outputs["pred"], outputs["landmarks"], outputs["interocular"],
                                  outputs["confidence"], self.names)
