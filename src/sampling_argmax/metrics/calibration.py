"""Calibration: does a more confident prediction tend to be a more accurate one?

Measured like the paper's COCO table: the Pearson correlation, over instances, between the
instance confidence (mean of its labeled keypoints' confidences, e.g. the map's peak value) and
the instance accuracy (e.g. −error, PCK or OKS). 1 = confidence ranks predictions perfectly.

Example:
    >>> import numpy as np
    >>> conf = np.array([[0.9], [0.5], [0.1]]); err = np.array([1.0, 2.0, 4.0])
    >>> round(calibration(conf, -err), 3)
    0.982
"""

from __future__ import annotations

import numpy as np

__all__ = ["pearson", "instance_confidence", "calibration", "binned_by_confidence"]


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two (N,) arrays, ignoring pairs with a nan; nan when either is constant."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x {x.shape} and y {y.shape} must have the same length")
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 2:
        return float("nan")
    x, y = x[keep] - x[keep].mean(), y[keep] - y[keep].mean()
    denominator = np.sqrt((x * x).sum() * (y * y).sum())
    if denominator == 0:
        return float("nan")
    return float((x * y).sum() / denominator)


def instance_confidence(confidence: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
    """Mean confidence over each instance's labeled keypoints: (N, K) -> (N,) (nan if none labeled)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    if confidence.ndim != 2:
        raise ValueError(f"confidence {confidence.shape} must be (N, K)")
    weight = np.ones_like(confidence) if weight is None else np.asarray(weight, dtype=np.float64)
    if weight.shape != confidence.shape:
        raise ValueError(f"weight {weight.shape} must match confidence {confidence.shape}")
    count = weight.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (confidence * weight).sum(axis=1) / np.maximum(count, 1e-12), np.nan)


def calibration(confidence: np.ndarray, accuracy: np.ndarray, weight: np.ndarray | None = None) -> float:
    """Pearson correlation of instance confidence (from (N, K) keypoint confidences) with accuracy (N,)."""
    return pearson(instance_confidence(confidence, weight), accuracy)


def binned_by_confidence(confidence: np.ndarray, error: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Mean confidence and mean error of ``bins`` equal-count groups of instances, least confident first.

    The curve a calibration figure draws: with a well-calibrated confidence the error falls from left
    to right. Instances with a nan confidence or error are left out; with fewer instances than
    ``bins`` every instance is its own group.

    Example:
        >>> conf, err = binned_by_confidence(np.array([0.1, 0.2, 0.8, 0.9]), np.array([4.0, 2.0, 1.0, 1.0]), bins=2)
        >>> conf.round(2).tolist(), err.tolist()
        ([0.15, 0.85], [3.0, 1.0])
    """
    confidence = np.asarray(confidence, dtype=np.float64).ravel()
    error = np.asarray(error, dtype=np.float64).ravel()
    if confidence.shape != error.shape:
        raise ValueError(f"confidence {confidence.shape} and error {error.shape} must have the same length")
    if bins < 1:
        raise ValueError(f"bins={bins} must be >= 1")
    keep = np.isfinite(confidence) & np.isfinite(error)
    order = np.argsort(confidence[keep], kind="stable")
    groups = [g for g in np.array_split(order, min(bins, order.size)) if g.size]
    return (np.array([confidence[keep][g].mean() for g in groups]),
            np.array([error[keep][g].mean() for g in groups]))
