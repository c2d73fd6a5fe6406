"""Landmark metrics of single-object images with missing keypoints: normalized error (NME) and PCK.

The error of a keypoint is its Euclidean distance in original pixels divided by a per-image distance (the
image diagonal, or the distance between two named keypoints such as the eyes); only labeled keypoints count.

Example:
    >>> pred = np.array([[[0.0, 0.0], [10.0, 0.0]]]); target = np.array([[[3.0, 4.0], [10.0, 0.0]]])
    >>> errors = normalized_errors(pred, target, np.array([[True, True]]), np.array([50.0]))
    >>> errors.tolist(), pck(errors, 0.05)
    ([[0.1, 0.0]], 0.5)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from sampling_argmax.metrics.base import EvaluationContext, Evaluator, require
from sampling_argmax.metrics.calibration import calibration

__all__ = ["normalized_errors", "pck", "evaluate_normalized", "NormalizedErrorEvaluator"]


def normalized_errors(pred: np.ndarray, target: np.ndarray, visible: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """(N, K, 2) predictions and targets, (N, K) labeled mask, (N,) normalizing distances -> (N, K) errors / norm,
    NaN where the keypoint is unlabeled or the image has no positive finite ``norm``."""
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    visible, norm = np.asarray(visible, bool), np.asarray(norm, np.float64).reshape(-1)
    if pred.shape != target.shape or pred.ndim != 3 or visible.shape != pred.shape[:2] or norm.shape != pred.shape[:1]:
        raise ValueError(f"need pred, target (N, K, 2), visible (N, K), norm (N,); got {pred.shape}, {target.shape}, "
                         f"{visible.shape}, {norm.shape}")
    good = np.isfinite(norm) & (norm > 0)
    errors = np.linalg.norm(pred - target, axis=-1) / np.where(good, norm, 1.0)[:, None]
    return np.where(visible & good[:, None], errors, np.nan)


def pck(errors: np.ndarray, threshold: float) -> float:
    """Fraction of the labeled keypoints (non-NaN ``errors``) whose normalized error is below ``threshold``."""
    labeled = errors[np.isfinite(errors)]
    return float(np.mean(labeled < threshold)) if labeled.size else float("nan")


def evaluate_normalized(pred, target, visible, norm, confidence=None, names: Sequence[str] | None = None,
                        pck_threshold: float = 0.05) -> dict[str, float]:
    """``nme`` (%, mean over labeled keypoints), ``pck`` (fraction under ``pck_threshold``), ``nme/<name>`` per
    keypoint, ``num_unnormalized`` (images without a normalizing distance, left out) and with ``confidence``
    (N, K) ``calibration`` (Pearson r between an image's mean confidence and minus its NME)."""
    errors = normalized_errors(pred, target, visible, norm)
    labeled = np.isfinite(errors)
    metrics = {"nme": float(100 * np.nanmean(errors)) if labeled.any() else float("nan"),
               "pck": pck(errors, pck_threshold),
               "num_unnormalized": float(np.sum(~np.isfinite(np.asarray(norm, np.float64)) | (np.asarray(norm) <= 0)))}
    names = list(names) if names is not None else [f"kp{k}" for k in range(errors.shape[1])]
    if len(names) != errors.shape[1]:
        raise ValueError(f"{len(names)} names for {errors.shape[1]} keypoints")
    for k, name in enumerate(names):
        column = errors[:, k]
        metrics[f"nme/{name}"] = float(100 * np.nanmean(column)) if np.isfinite(column).any() else float("nan")
    if confidence is not None:
        rows = labeled.any(axis=1)
        if rows.sum() >= 2:
            image_error = np.nanmean(np.where(labeled, errors, np.nan)[rows], axis=1)
            metrics["calibration"] = calibration(np.asarray(confidence, np.float64)[rows], -image_error)
    return metrics


class NormalizedErrorEvaluator(Evaluator):
    """NME and PCK of single-object landmarks (the landmark CSV's evaluator).

    Reads "pred" and "landmarks" (N, K, 2) original pixels, "visible" (N, K), "norm" (N,) normalizing
    distances (the data module says which: ``references["norm"]``) and "confidence"; keypoint names from
    ``references["names"]``.

    Args:
        pck_threshold: a keypoint is correct when its error is below this fraction of the normalizing distance.
    """

    def __init__(self, pck_threshold: float = 0.05) -> None:
        if not 0 < pck_threshold:
            raise ValueError(f"pck_threshold={pck_threshold} must be > 0 (a fraction of the normalizing distance)")
        self.pck_threshold = float(pck_threshold)

    def __call__(self, outputs: Mapping[str, np.ndarray], context: EvaluationContext) -> dict[str, float]:
        require(outputs, ("pred", "landmarks", "visible", "norm", "confidence"), type(self).__name__)
        return evaluate_normalized(outputs["pred"], outputs["landmarks"], outputs["visible"], outputs["norm"],
                                   outputs["confidence"], context.references.get("names"), self.pck_threshold)
