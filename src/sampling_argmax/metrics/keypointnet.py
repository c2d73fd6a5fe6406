"""KeypointNet's supervised keypoint metric: PCK with geodesic distances on the cloud, and its evaluator.

As the KeypointNet benchmark defines it (You et al., CVPR 2020; its ``benchmark_scripts``):

* geodesic distance = shortest path on the undirected k-nearest-neighbour graph of the cloud (k = 20,
  edges weighted by Euclidean length, an edge wherever either point is among the other's neighbours);
* per model, PCK(t) = the fraction of its annotated keypoints whose predicted point lies at a distance
  **strictly below** t from the ground-truth point (so PCK(0) = 0), t = 0.00, 0.01, ..., 0.10;
* a category's PCK is the mean over its models; the paper reports t = 0.01, averaged over categories.

Read-out. The benchmark's network predicts a point (argmax); here the methods read out a coordinate (the
expectation over the points), so the geodesic variant snaps it to its nearest cloud point first. The
Euclidean variant (labelled ``*_euclidean``) measures the read-out coordinate itself. Points the graph does
not connect to the ground truth are at infinite geodesic distance (a miss).

Example:
    >>> points = np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0]])
    >>> geodesic_distances(points, [0], neighbours=1).round(3).tolist()
    [[0.0, 1.0, 2.0, 3.0]]
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from sampling_argmax.metrics.base import EvaluationContext, Evaluator, require
from sampling_argmax.metrics.calibration import calibration
from sampling_argmax.metrics.localization import instance_errors

__all__ = [
    "THRESHOLDS",
    "knn_graph",
    "geodesic_distances",
    "nearest_points",
    "keypoint_distances",
    "pck_per_model",
    "pck_by_category",
    "KeypointNetEvaluator",
]

#: The benchmark's thresholds 0.00, 0.01, ..., 0.10 (normalized object units).
THRESHOLDS = tuple(round(0.01 * i, 2) for i in range(11))


def knn_graph(points: np.ndarray, neighbours: int = 20):
    """Symmetric sparse ``(N, N)`` graph: an edge of Euclidean length between each point and its k nearest."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or len(points) < 2:
        raise ValueError(f"points {points.shape} must be (N, d) with N >= 2")
    k = min(int(neighbours), len(points) - 1)
    if k < 1:
        raise ValueError(f"neighbours={neighbours} must be >= 1")
    distance, index = cKDTree(points).query(points, k=k + 1)  # the first neighbour is the point itself
    rows = np.repeat(np.arange(len(points)), k)
    cols, weights = index[:, 1:].ravel(), distance[:, 1:].ravel()
    # coincident points (distance 0) would vanish from a sparse matrix: keep them connected at a tiny length
    weights = np.maximum(weights, 1e-12)
    graph = coo_matrix((weights, (rows, cols)), shape=(len(points),) * 2).tocsr()
    return graph.maximum(graph.T)


def geodesic_distances(points: np.ndarray, sources: Sequence[int], neighbours: int = 20,
                       limit: float = np.inf) -> np.ndarray:
    """``(len(sources), N)`` shortest-path lengths on :func:`knn_graph`; inf beyond ``limit`` or unreachable."""
    return dijkstra(knn_graph(points, neighbours), directed=False, indices=np.asarray(sources, dtype=np.int64),
                    limit=limit)


def nearest_points(points: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Index of the cloud point ``(N, d)`` nearest to each coordinate ``(K, d)``: ``(K,)``."""
    return cKDTree(np.asarray(points, dtype=np.float64)).query(np.asarray(coords, dtype=np.float64))[1]


def keypoint_distances(points: np.ndarray, truth_index: np.ndarray, pred: np.ndarray, kind: str = "geodesic",
                       neighbours: int = 20, limit: float = np.inf) -> np.ndarray:
    """Distance of each predicted keypoint to its ground-truth point; nan where ``truth_index`` < 0.

    points ``(N, d)`` one cloud; truth_index ``(K,)`` point indices (-1 = not annotated); pred ``(K, d)``
    read-out coordinates. ``"geodesic"``: from the ground-truth point to the cloud point nearest to
    the prediction (inf beyond ``limit``); ``"euclidean"``: from the ground-truth point to the prediction.
    """
    points, pred = np.asarray(points, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    truth_index = np.asarray(truth_index, dtype=np.int64)
    if truth_index.ndim != 1 or pred.shape != (len(truth_index), points.shape[-1]):
        raise ValueError(f"truth_index {truth_index.shape} must be (K,) and pred {pred.shape} (K, {points.shape[-1]})")
    if (truth_index >= len(points)).any():
        raise ValueError(f"truth_index {truth_index.max()} is beyond the cloud of {len(points)} points")
    out = np.full(len(truth_index), np.nan)
    labeled = np.flatnonzero(truth_index >= 0)
    if not len(labeled):
        return out
    truth = truth_index[labeled]
    if kind == "euclidean":
        out[labeled] = np.linalg.norm(pred[labeled] - points[truth], axis=-1)
    elif kind == "geodesic":
        snapped = nearest_points(points, pred[labeled])
        table = geodesic_distances(points, truth, neighbours, limit)  # (labeled, N)
        out[labeled] = table[np.arange(len(labeled)), snapped]
    else:
        raise ValueError(f"kind={kind!r} must be 'geodesic' or 'euclidean'")
    return out


def pck_per_model(distances: np.ndarray, thresholds: Sequence[float] = THRESHOLDS) -> np.ndarray:
    """``(M, T)``: per model, the fraction of its keypoints at distance < t (nan entries = not annotated).

    distances ``(M, K)``; a model with no annotated keypoint gets a nan row (left out of averages).
    """
    distances = np.asarray(distances, dtype=np.float64)
    if distances.ndim != 2:
        raise ValueError(f"distances {distances.shape} must be (M, K)")
    labeled = ~np.isnan(distances)
    count = labeled.sum(1)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        hits = (np.where(labeled, distances, np.inf)[:, :, None] < thresholds).sum(1)  # (M, T)
        return np.where(count[:, None] > 0, hits / np.maximum(count, 1)[:, None], np.nan)


def pck_by_category(per_model: np.ndarray, category: np.ndarray) -> dict[int, np.ndarray]:
    """Mean over the models of each category: ``{category: (T,)}`` (models with a nan row left out)."""
    out = {}
    for c in np.unique(category):
        rows = per_model[category == c]
        rows = rows[~np.isnan(rows).any(1)]
        out[int(c)] = rows.mean(0) if len(rows) else np.full(per_model.shape[1], np.nan)
    return out


class KeypointNetEvaluator(Evaluator):
    """PCK on point sets as the KeypointNet benchmark defines it, per category and averaged over categories.

    Reads ``points`` (M, N, 3), ``pred`` (M, K, 3), ``keypoint_index`` (M, K, -1 = not annotated),
    ``confidence`` (M, K) and, if present, ``category`` (M,) with names from ``references["categories"]``.
    Returns ``pck`` (geodesic, at ``threshold``, averaged over categories: the paper's number),
    ``pck_euclidean``, ``pck_<category>`` per category, ``euclidean_error`` (mean distance of the read-out
    to the truth, object units) and ``calibration`` (Pearson of a model's mean confidence with minus its
    mean Euclidean error). Writes ``pck_curve_<stage>.csv`` (every threshold, both distances) when it may.

    Args:
        threshold: the reported threshold (paper: 0.01); must be one of ``thresholds``.
        thresholds: the PCK curve (benchmark: 0.00..0.10).
        neighbours: k of the k-nearest-neighbour graph (benchmark: 20).
    """

    def __init__(self, threshold: float = 0.01, thresholds: Sequence[float] = THRESHOLDS,
                 neighbours: int = 20) -> None:
        self.thresholds = [float(t) for t in thresholds]
        if not self.thresholds or any(t < 0 for t in self.thresholds):
            raise ValueError(f"thresholds {thresholds} must be a non-empty list of distances >= 0")
        if not any(abs(t - threshold) < 1e-12 for t in self.thresholds):
            raise ValueError(f"threshold {threshold} must be one of thresholds {self.thresholds}")
        if neighbours < 1:
            raise ValueError(f"neighbours={neighbours} must be >= 1 (benchmark: 20)")
        self.threshold, self.neighbours = float(threshold), int(neighbours)

    def __call__(self, outputs: Mapping[str, np.ndarray], context: EvaluationContext) -> dict[str, float]:
        require(outputs, ("points", "pred", "keypoint_index", "confidence"), type(self).__name__)
        points, pred, truth = outputs["points"], outputs["pred"], outputs["keypoint_index"]
        category = np.asarray(outputs.get("category", np.zeros(len(points), dtype=np.int64))).astype(np.int64)
        names = list(context.references.get("categories", []))
        limit = max(self.thresholds)  # distances beyond the largest threshold only need to be "a miss"
        geodesic = np.stack([keypoint_distances(p, t, q, "geodesic", self.neighbours, limit)
                             for p, t, q in zip(points, truth, pred)])
        euclidean = np.stack([keypoint_distances(p, t, q, "euclidean") for p, t, q in zip(points, truth, pred)])
        column = self.thresholds.index(min(self.thresholds, key=lambda t: abs(t - self.threshold)))
        curves = {kind: pck_by_category(pck_per_model(d, self.thresholds), category)
                  for kind, d in (("geodesic", geodesic), ("euclidean", euclidean))}
        metrics: dict[str, float] = {
            "pck": float(np.nanmean([c[column] for c in curves["geodesic"].values()])),
            "pck_euclidean": float(np.nanmean([c[column] for c in curves["euclidean"].values()])),
        }
        label = {c: names[c] if c < len(names) else f"class{c}" for c in curves["geodesic"]}
        if len(curves["geodesic"]) > 1:
            metrics.update({f"pck_{label[c]}": float(curve[column]) for c, curve in curves["geodesic"].items()})
        weight = (truth >= 0).astype(np.float64)
        labeled = weight > 0
        metrics["euclidean_error"] = float(euclidean[labeled].mean()) if labeled.any() else float("nan")
        truth_xyz = np.where(labeled[..., None], np.take_along_axis(points, np.maximum(truth, 0)[..., None], 1), 0.0)
        metrics["calibration"] = calibration(outputs["confidence"], -instance_errors(pred, truth_xyz, weight), weight)
        if context.output_dir is not None:
            self._write_curves(context, curves, label)
        return metrics

    def _write_curves(self, context: EvaluationContext, curves: dict, label: dict) -> None:
        context.output_dir.mkdir(parents=True, exist_ok=True)
        with open(context.output_dir / f"pck_curve_{context.stage}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["distance", "category", *(f"{t:.2f}" for t in self.thresholds)])
            for kind, per_category in curves.items():
                for c, curve in per_category.items():
                    writer.writerow([kind, label[c], *(f"{v:.4f}" for v in curve)])
                writer.writerow([kind, "mean", *(f"{v:.4f}" for v in np.nanmean(list(per_category.values()), 0))])
