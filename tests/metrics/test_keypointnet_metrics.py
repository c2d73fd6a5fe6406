"""KeypointNet PCK against hand-computed cases: geodesics on a path graph, a U-shaped cloud where the
geodesic and Euclidean distances differ, the benchmark's strict threshold and its per-model averaging."""

import numpy as np
import pytest

from sampling_argmax.metrics.base import EvaluationContext
from sampling_argmax.metrics.keypointnet import (
    KeypointNetEvaluator,
    geodesic_distances,
    keypoint_distances,
    knn_graph,
    pck_by_category,
    pck_per_model,
)


def u_cloud():
    """Left arm x=0, bottom y=1, right arm x=0.5, points 0.1 apart: tips (0,0) and (0.5,0)."""
    left = [(0.0, y) for y in np.linspace(0, 1, 11)]
    bottom = [(x, 1.0) for x in np.linspace(0.1, 0.4, 4)]
    right = [(0.5, y) for y in np.linspace(1, 0, 11)]
    return np.array(left + bottom + right)  # 26 points; tips at indices 0 and 25


def test_geodesics_on_a_path_graph_are_sums_of_edge_lengths():
    points = np.array([[0.0, 0, 0], [1, 0, 0], [3, 0, 0], [6, 0, 0]])  # 1-NN graph: the path 0-1-2-3
    assert knn_graph(points, 1).nnz == 6  # three undirected edges
    np.testing.assert_allclose(geodesic_distances(points, [0, 3], neighbours=1), [[0, 1, 3, 6], [6, 5, 3, 0]])
    # beyond the limit the distance is inf (a miss at every threshold below it)
    assert geodesic_distances(points, [0], neighbours=1, limit=2.0)[0].tolist() == [0, 1, np.inf, np.inf]


def test_geodesic_differs_from_euclidean_on_a_u_shaped_cloud():
    points = u_cloud()
    np.testing.assert_allclose(geodesic_distances(points, [0], neighbours=2)[0, 25], 2.5, atol=1e-9)
    truth, pred = np.array([0]), points[[25]] + 0.01  # predicted at the other tip (snaps to point 25)
    np.testing.assert_allclose(keypoint_distances(points, truth, pred, "geodesic", neighbours=2), [2.5], atol=1e-9)
    np.testing.assert_allclose(keypoint_distances(points, truth, pred, "euclidean"), [np.hypot(0.51, 0.01)])
    geo = pck_per_model(keypoint_distances(points, truth, pred, "geodesic", neighbours=2)[None], [1.0])
    euc = pck_per_model(keypoint_distances(points, truth, pred, "euclidean")[None], [1.0])
    assert geo.tolist() == [[0.0]] and euc.tolist() == [[1.0]]


def test_pck_is_strict_per_model_and_skips_missing_keypoints():
    distances = np.array([[0.005, np.nan, 0.02], [0.0, 0.5, np.nan], [np.nan, np.nan, np.nan]])
    per_model = pck_per_model(distances, [0.0, 0.01, 0.03])
    np.testing.assert_allclose(per_model[:2], [[0, 0.5, 1.0], [0, 0.5, 0.5]])  # d < t: PCK(0) = 0 even at d = 0
    assert np.isnan(per_model[2]).all()  # no annotated keypoint: left out
    by_class = pck_by_category(per_model, np.array([0, 0, 1]))
    np.testing.assert_allclose(by_class[0], [0, 0.5, 0.75])  # mean over models, not over keypoints
    assert np.isnan(by_class[1]).all()


def test_missing_keypoints_get_nan_distances_and_bad_indices_are_refused():
    points = u_cloud()
    out = keypoint_distances(points, np.array([-1, 3]), points[[0, 3]], "geodesic", neighbours=2)
    assert np.isnan(out[0]) and out[1] == 0.0
    with pytest.raises(ValueError, match="beyond the cloud"):
        keypoint_distances(points, np.array([26]), points[[0]])
    with pytest.raises(ValueError, match="geodesic"):
        keypoint_distances(points, np.array([0]), points[[0]], kind="manhattan")


def test_evaluator_averages_over_categories_and_labels_both_distances(tmp_path):
    cloud = np.concatenate([u_cloud(), np.zeros((26, 1))], 1)  # 3D
    points = np.stack([cloud, cloud, cloud])
    truth = np.array([[0, 5], [0, -1], [25, 10]])
    pred = np.stack([cloud[[0, 5]], cloud[[25, 0]], cloud[[25, 12]]])  # hits: 2/2, 0/1 (other tip), 1/2
    pred[0, 0, 0] += 0.02  # read-out 0.02 off its point: a geodesic hit after snapping, a Euclidean miss
    outputs = {"points": points, "pred": pred, "keypoint_index": truth, "confidence": np.ones((3, 2)),
               "category": np.array([0, 0, 1])}
    evaluator = KeypointNetEvaluator(neighbours=2)
    context = EvaluationContext("test", tmp_path, {"categories": ["cup", "pot"]})
    metrics = evaluator(outputs, context)
    assert metrics["pck_cup"] == pytest.approx(0.5) and metrics["pck_pot"] == pytest.approx(0.5)
    assert metrics["pck"] == pytest.approx(0.5)  # class average of (1 + 0)/2 and 1/2
    assert metrics["pck_euclidean"] == pytest.approx(((0.5 + 0) / 2 + 0.5) / 2)
    curve = (tmp_path / "pck_curve_test.csv").read_text().splitlines()
    assert curve[0].startswith("distance,category,0.00,0.01") and len(curve) == 7  # header + 2 kinds x (2 + mean)
