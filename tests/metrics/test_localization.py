import numpy as np
import pytest

from sampling_argmax.metrics.base import EvaluationContext
from sampling_argmax.metrics.localization import KeypointEvaluator


def test_keypoint_evaluator_reports_error_pck_and_calibration():
    rng = np.random.default_rng(0)
    keypoints = rng.uniform(0, 31, size=(4, 2, 2))
    offsets = np.array([0.0, 1.0, 3.0, 5.0])[:, None, None] * np.array([1.0, 0.0])  # growing x error
    outputs = {
        "pred": keypoints + offsets, "keypoints": keypoints, "target_weight": np.ones((4, 2)),
        "confidence": np.array([[0.9, 0.9], [0.6, 0.6], [0.3, 0.3], [0.1, 0.1]]),
    }
    evaluator = KeypointEvaluator(pck_threshold=2.0)
    metrics = evaluator(outputs, EvaluationContext("val"))
    assert metrics["mean_error"] == pytest.approx(9.0 / 4)
    assert metrics["pck"] == pytest.approx(0.5)  # errors 0 and 1 are within 2 px
    assert metrics["calibration"] > 0.9  # confidence falls as the error grows
    outputs["confidence"] = outputs["confidence"][::-1].copy()
    assert evaluator(outputs, EvaluationContext("val"))["calibration"] < -0.9


def test_evaluator_names_the_missing_batch_keys():
    with pytest.raises(ValueError, match=r"\['keypoints'\].*KeypointEvaluator|KeypointEvaluator.*\['keypoints'\]"):
        KeypointEvaluator()({"pred": np.zeros((1, 1, 2)), "confidence": np.ones((1, 1))}, EvaluationContext("val"))
    with pytest.raises(ValueError, match="pck_threshold"):
        KeypointEvaluator(pck_threshold=0)
