"""DAS on hand-built cases: consistent keypoints score 1, random ones the chance level, a hand-counted case."""

import numpy as np
import pytest

from sampling_argmax.metrics.base import EvaluationContext
from sampling_argmax.metrics.das import (
    DASEvaluator,
    dual_alignment,
    nearest_keypoint_indices,
    nearest_semantic_ids,
    nearest_truth_distance,
    normalize_min_max,
    pairwise_agreement,
)


def _objects(rng, models, ids, noise=0.02):
    """Clouds of one 'class': ids at fixed places per class, moved a little per model, on a random scale."""
    layout = rng.uniform(-1, 1, (ids, 3))
    truth = layout + rng.normal(0, noise, (models, ids, 3))
    scale = rng.uniform(0.2, 3.0, (models, 1, 3))   # anisotropic: undone by the min/max normalization
    shift = rng.normal(0, 5, (models, 1, 3))
    points = np.concatenate([truth, rng.uniform(-1, 1, (models, 200, 3))], 1)
    return points * scale + shift, truth * scale + shift


def test_consistent_keypoints_score_one_even_when_scaled_and_shifted():
    rng = np.random.default_rng(0)
    points, truth = _objects(rng, models=20, ids=6)
    weight = (rng.random((20, 6)) > 0.3).astype(float)        # some ids unannotated on some models
    order = [3, 0, 5, 1]                                        # keypoint i always on id order[i]
    weight[:, order] = 1
    pred = truth[:, order] + 0.001
    scores = dual_alignment(pred, truth, weight, points)
    assert scores["forward"] == pytest.approx(1.0)
    # backward: each id that hosts a keypoint gets that keypoint on every model
    ids = nearest_keypoint_indices(*normalize_min_max(points, pred, truth)[1:], weight)
    assert (ids[:, order] == [0, 1, 2, 3]).all()
    full = dual_alignment(truth[:, [1, 0, 2, 3, 4, 5]], truth, np.ones((20, 6)), points)  # one keypoint per id
    assert full == {"forward": pytest.approx(1.0), "backward": pytest.approx(1.0), "das": pytest.approx(1.0)}


def test_random_keypoints_score_chance():
    rng = np.random.default_rng(1)
    models, ids, keypoints = 300, 8, 10
    points, truth = _objects(rng, models, ids)
    pred = rng.uniform(points.min(1, keepdims=True), points.max(1, keepdims=True), (models, keypoints, 3))
    scores = dual_alignment(pred, truth, np.ones((models, ids)), points)
    # chance = sum of squared label frequencies (1/G forward, 1/K backward when labels are equally likely)
    labels = nearest_semantic_ids(*normalize_min_max(points, pred, truth)[1:], np.ones((models, ids)))
    chance = (np.bincount(labels.ravel(), minlength=ids) / labels.size) ** 2
    assert scores["forward"] == pytest.approx(chance.sum(), abs=0.02)
    assert scores["forward"] < 0.25 and scores["backward"] < 0.2
    assert abs(scores["backward"] - 1 / keypoints) < 0.03


def test_hand_counted_case():
    # forward labels per model: [0, 1], [0, 1], [1, 1] -> pairs (ordered): m0-m1 1.0, m0-m2 0.5, m1-m2 0.5
    # (each twice) -> 2/3; backward: models 0, 1 have ids {0, 1}, model 2 only id 1
    truth = np.array([[[0.0, 0, 0], [1, 0, 0]]] * 3)
    pred = np.array([[[0.1, 0, 0], [0.9, 0, 0]], [[0.2, 0, 0], [0.8, 0, 0]], [[0.6, 0, 0], [0.9, 0, 0]]])
    weight = np.array([[1, 1], [1, 1], [0, 1]])
    assert nearest_semantic_ids(pred, truth, weight).tolist() == [[0, 1], [0, 1], [1, 1]]
    assert nearest_keypoint_indices(pred, truth, weight).tolist() == [[0, 1], [0, 1], [-1, 1]]
    scores = dual_alignment(pred, truth, weight)
    assert scores["forward"] == pytest.approx(2 / 3)
    assert scores["backward"] == pytest.approx(1.0)
    assert scores["das"] == pytest.approx(5 / 6)


def test_pairwise_agreement_skips_self_and_unlabelled_pairs():
    labels = np.array([[0, -1], [0, 2], [-1, -1], [1, 2]])
    # pairs with a common label: (0,1): 1/1, (0,3): 0/1, (1,3): 1/2, each both ways
    assert pairwise_agreement(labels, chunk=1) == pytest.approx((1 + 0 + 0.5) / 3)
    assert np.isnan(pairwise_agreement(np.array([[0], [-1]])))


def test_normalization_maps_each_axis_to_minus_one_one():
    points = np.array([[[0.0, 2, 5], [4, 3, 5], [2, 2.5, 5]]])
    normal, keypoint = normalize_min_max(points, np.array([[[4.0, 2, 5]]]))
    assert normal.min(1).tolist() == [[-1, -1, 0]] and normal.max(1).tolist() == [[1, 1, 0]]
    assert keypoint.tolist() == [[[1, -1, 0]]]


def test_evaluator_per_category_and_errors():
    rng = np.random.default_rng(2)
    points, truth = _objects(rng, 10, 4)
    outputs = {"pred": truth[:, [2, 1]], "gt_keypoints": truth, "gt_weight": np.ones((10, 4)), "points": points,
               "category": np.array([0, 1] * 5)}
    metrics = DASEvaluator()(outputs, EvaluationContext("test", references={"categories": ["chair", "table"]}))
    assert metrics["das_forward"] == pytest.approx(1.0) and metrics["das_chair"] == pytest.approx(metrics["das_table"])
    assert set(metrics) == {"das", "das_forward", "das_backward", "das_chair", "das_table", "keypoint_truth_distance"}
    assert metrics["keypoint_truth_distance"] == pytest.approx(0.0)  # keypoints on annotated points
    with pytest.raises(ValueError, match="gt_keypoints"):
        DASEvaluator()({"pred": truth, "points": points}, EvaluationContext("test"))
    with pytest.raises(ValueError, match="truth_weight"):
        dual_alignment(truth, truth, np.ones((10, 3)))


def test_nearest_truth_distance_is_measured_in_the_normalized_frame():
    truth = np.array([[[0.0, 0, 0], [4, 0, 0]]])
    pred = np.array([[[1.0, 0, 0], [4, 0, 0]]])  # 1 and 0 away from their nearest truth
    assert nearest_truth_distance(pred, truth, np.ones((1, 2))) == pytest.approx(0.5)
    points = np.array([[[0.0, 0, 0], [4, 2, 2]]])  # x spans 4 -> [-1, 1]: distances halve
    assert nearest_truth_distance(pred, truth, np.ones((1, 2)), points) == pytest.approx(0.25)
    assert nearest_truth_distance(pred, truth, np.array([[0, 1]])) == pytest.approx(1.5)  # only id 1 annotated
