"""Pure metric functions on numpy arrays (no torch, no state)."""

from sampling_argmax.metrics.calibration import binned_by_confidence, calibration, instance_confidence, pearson
from sampling_argmax.metrics.localization import instance_errors, keypoint_errors, mean_keypoint_error, pck

__all__ = [
    "binned_by_confidence",
    "calibration",
    "instance_confidence",
    "pearson",
    "instance_errors",
    "keypoint_errors",
    "mean_keypoint_error",
    "pck",
]
