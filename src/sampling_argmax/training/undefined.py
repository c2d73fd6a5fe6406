"""Why an evaluation metric is NaN: undefined for a stated reason, or an error (never a silent NaN).

A metric can be undefined on valid predictions: a correlation of confidences that are all equal (a
method whose confidence does not vary on this split), a correlation over fewer than 2 instances, any
error metric of a split without one labeled keypoint. :func:`undefined_metrics` states the reason for
these; any other NaN, and any infinite metric, is an error naming the metric.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from sampling_argmax.metrics import instance_confidence, instance_errors

__all__ = ["is_correlation", "undefined_metrics"]

#: Parts of a metric's name that mark a correlation (of confidence with error).
CORRELATION_NAMES = ("calibration", "pearson", "corr")


def is_correlation(name: str) -> bool:
    return any(part in name.lower() for part in CORRELATION_NAMES)


def _labeled(outputs: Mapping[str, np.ndarray]) -> int:
    target = outputs.get("target")
    if target is None:
        return 0
    finite = np.isfinite(np.asarray(target, np.float64)).all(-1)
    weight = outputs.get("target_weight")
    if weight is not None:
        finite = finite & (np.asarray(weight, np.float64).reshape(finite.shape) > 0)
    return int(finite.sum())


def _correlation_reason(outputs: Mapping[str, np.ndarray]) -> str | None:
    if "confidence" not in outputs or "pred_grid" not in outputs or "target" not in outputs:
        return None
    weight = outputs.get("target_weight")
    confidence = instance_confidence(outputs["confidence"], weight)
    error = instance_errors(outputs["pred_grid"], outputs["target"], weight)
    keep = np.isfinite(confidence) & np.isfinite(error)
    if keep.sum() < 2:
        return f"{int(keep.sum())} labeled instance(s): a correlation needs at least 2"
    if np.ptp(confidence[keep]) == 0:
        return (f"every instance has the same confidence ({float(confidence[keep][0]):.6g}), so its correlation "
                "with the error is undefined (the method's confidence does not vary on this split)")
    if np.ptp(error[keep]) == 0:
        return f"every instance has the same error ({float(error[keep][0]):.6g}), so a correlation is undefined"
    return None


def undefined_metrics(metrics: Mapping[str, float], outputs: Mapping[str, np.ndarray], stage: str) -> dict[str, str]:
    """``{metric: reason}`` for the NaN metrics that are undefined on these outputs; raises ``ValueError`` for a
    NaN without such a reason or an infinite metric.

    ``outputs``: the gathered evaluation outputs ("confidence", "pred_grid", "target", optional "target_weight").
    """
    reasons: dict[str, str] = {}
    for name, value in metrics.items():
        value = float(value)
        if math.isfinite(value):
            continue
        reason = None
        if math.isnan(value):
            labeled = _labeled(outputs)
            if labeled == 0:
                reason = f"the {stage} split has no labeled keypoint, so there is nothing to score"
            elif is_correlation(name):
                reason = _correlation_reason(outputs)
        if reason is None:
            raise ValueError(
                f"{stage}/{name} is {value} although the predictions and confidences are finite and the split has "
                f"labeled keypoints: the metric is broken for these outputs (check the data's labels and the "
                f"evaluator); no result with it is reported"
            )
        reasons[name] = reason
    return reasons
