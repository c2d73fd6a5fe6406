"""Calibration: the binned error-vs-confidence curve, the per-instance points and their figure."""

import numpy as np
import pytest

from sampling_argmax.metrics import binned_by_confidence
from sampling_argmax.training.report import calibration_points, plot_calibration


def test_bins_are_equal_count_and_ordered_by_confidence():
    rng = np.random.default_rng(0)
    confidence = rng.random(1000)
    error = 1.0 - confidence + 0.01 * rng.standard_normal(1000)  # confident = accurate
    mean_conf, mean_err = binned_by_confidence(confidence, error, bins=10)
    assert mean_conf.shape == mean_err.shape == (10,)
    assert np.all(np.diff(mean_conf) > 0) and np.all(np.diff(mean_err) < 0)
    assert mean_err.mean() == pytest.approx(error.mean())  # equal-count groups: mean of means = mean
    shuffled_conf, shuffled_err = binned_by_confidence(rng.permutation(confidence), error, bins=10)
    assert np.ptp(shuffled_err) < 0.2 * np.ptp(mean_err)  # an uninformative confidence gives a flat curve


def test_bins_skip_nan_and_handle_few_instances():
    conf, err = binned_by_confidence(np.array([0.3, np.nan, 0.1]), np.array([1.0, 5.0, np.nan]), bins=10)
    assert conf.tolist() == [0.3] and err.tolist() == [1.0]
    conf, err = binned_by_confidence(np.array([0.2, 0.1, 0.3]), np.array([2.0, 1.0, 3.0]), bins=10)
    assert conf.tolist() == [0.1, 0.2, 0.3] and err.tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="same length"):
        binned_by_confidence(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="bins"):
        binned_by_confidence(np.zeros(3), np.zeros(3), bins=0)


def test_calibration_points_use_labeled_keypoints_in_cells(tmp_path, drawn):
    outputs = {
        "confidence": np.array([[0.2, 0.9], [0.4, 0.4]]),
        "pred_grid": np.array([[[0.0, 0.0], [3.0, 4.0]], [[1.0, 0.0], [0.0, 0.0]]]),
        "target": np.zeros((2, 2, 2)),
        "target_weight": np.array([[1.0, 0.0], [1.0, 1.0]]),  # the first instance's 2nd keypoint is unlabeled
    }
    confidence, error = calibration_points(outputs)
    np.testing.assert_allclose(confidence, [0.2, 0.4])
    np.testing.assert_allclose(error, [0.0, 0.5])
    rng = np.random.default_rng(1)
    runs = {"a": [(rng.random(50), rng.random(50))] * 2, "b": [(rng.random(30), rng.random(30))]}
    path = plot_calibration(runs, tmp_path / "calibration.png")
    assert drawn(path) > 0.001, drawn(path)  # the curves of two methods
    with pytest.raises(ValueError, match="no calibration points"):
        plot_calibration({}, tmp_path / "empty.png")
