"""3D human pose metrics: decoding to camera space, MPJPE and PA-MPJPE (Human3.6M protocol 2), in mm.

A prediction leaves the training module in the task's original units, ``(u, v, dz)``: pixels of the
original image and the depth relative to the root in mm (the data module's ``to_original``).
:func:`back_project` adds the ground-truth root depth and inverts the pinhole camera to get camera
coordinates; :func:`mpjpe` is the mean joint distance after subtracting each pose's root;
:func:`pa_mpjpe` the same after a similarity Procrustes alignment (rotation without reflection, scale,
translation) of the prediction onto the truth (:func:`procrustes_align`).

Example:
    >>> truth = np.random.default_rng(0).normal(size=(2, 17, 3)) * 300
    >>> rotation = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    >>> pred = 1.2 * truth @ rotation.T + 50.0
    >>> bool(mpjpe(pred, truth).mean() > 100), bool(pa_mpjpe(pred, truth).max() < 1e-9)
    (True, True)
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence

import numpy as np

from sampling_argmax.metrics.base import EvaluationContext, Evaluator, require

__all__ = ["back_project", "mpjpe", "pa_mpjpe", "procrustes_align", "Pose3DEvaluator"]


def _check_poses(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, truth = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if pred.shape != truth.shape or pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(f"pred and truth must both be (N, K, 3) poses, got {pred.shape} and {truth.shape}")
    return pred, truth


def back_project(uvz: np.ndarray, root_depth: np.ndarray, focal: np.ndarray, principal: np.ndarray) -> np.ndarray:
    """Camera coordinates (N, K, 3) of (N, K, 3) ``(u, v, dz)`` predictions.

    Args:
        uvz: pixels of the original image (u, v) and depth relative to the root (mm).
        root_depth: (N,) the root's depth in camera coordinates (mm; the ground truth's, as in protocol 2).
        focal, principal: (N, 2) pinhole intrinsics (fx, fy), (cx, cy) in pixels.

    Example:
        >>> back_project(np.array([[[612.0, 500.0, 0.0]]]), np.array([5000.0]), np.array([[1000.0, 1000.0]]),
        ...              np.array([[512.0, 500.0]])).tolist()
        [[[500.0, 0.0, 5000.0]]]
    """
    uvz = np.asarray(uvz, dtype=np.float64)
    if uvz.ndim != 3 or uvz.shape[-1] != 3:
        raise ValueError(f"uvz must be (N, K, 3) = (u, v, dz) per joint, got {uvz.shape}")
    n = uvz.shape[0]
    root_depth = np.asarray(root_depth, dtype=np.float64).reshape(n)
    focal = np.asarray(focal, dtype=np.float64).reshape(n, 2)
    principal = np.asarray(principal, dtype=np.float64).reshape(n, 2)
    depth = root_depth[:, None] + uvz[..., 2]
    xy = (uvz[..., :2] - principal[:, None]) / focal[:, None] * depth[..., None]
    return np.concatenate([xy, depth[..., None]], axis=-1)


def mpjpe(pred: np.ndarray, truth: np.ndarray, root: int = 0, joints: Sequence[int] | None = None) -> np.ndarray:
    """(N,) mean per-joint position error after root alignment (each pose minus its ``root`` joint).

    ``joints`` selects the evaluated joints (default all); units are those of the inputs.
    """
    pred, truth = _check_poses(pred, truth)
    pred, truth = pred - pred[:, root : root + 1], truth - truth[:, root : root + 1]
    error = np.linalg.norm(pred - truth, axis=-1)
    return (error if joints is None else error[:, list(joints)]).mean(-1)


def procrustes_align(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``pred`` (N, K, 3) moved onto ``truth`` by the similarity s·R·x + t of least squared error.

    R is a proper rotation: when the best orthogonal matrix is a reflection, the reflection is undone on
    the smallest singular direction (Umeyama 1991), so a mirrored pose is not aligned to zero error.
    """
    pred, truth = _check_poses(pred, truth)
    mu_p, mu_t = pred.mean(1, keepdims=True), truth.mean(1, keepdims=True)
    p, t = pred - mu_p, truth - mu_t
    u, sigma, vt = np.linalg.svd(np.einsum("nki,nkj->nij", t, p))  # covariance truth^T pred, (N, 3, 3)
    sign = np.sign(np.linalg.det(u @ vt))
    sign[sign == 0] = 1.0
    fix = np.ones_like(sigma)
    fix[:, -1] = sign
    rotation = (u * fix[:, None]) @ vt
    variance = np.square(p).sum((1, 2))
    scale = (sigma * fix).sum(-1) / np.maximum(variance, np.finfo(np.float64).tiny)
    return scale[:, None, None] * p @ rotation.transpose(0, 2, 1) + mu_t


def pa_mpjpe(pred: np.ndarray, truth: np.ndarray, joints: Sequence[int] | None = None) -> np.ndarray:
    """(N,) mean per-joint error after :func:`procrustes_align` of each predicted pose onto its truth.

    The alignment uses the ``joints`` that are evaluated (default all).
    """
    pred, truth = _check_poses(pred, truth)
    if joints is not None:
        pred, truth = pred[:, list(joints)], truth[:, list(joints)]
    return np.linalg.norm(procrustes_align(pred, truth) - truth, axis=-1).mean(-1)


class Pose3DEvaluator(Evaluator):
    """MPJPE and PA-MPJPE (mm) overall and per action, from ``(u, v, dz)`` predictions.

    Reads the gathered ``pred`` (N, K, 3) and the samples' ``joints_cam`` (N, K, 3, mm), ``root_depth``,
    ``focal``, ``principal`` and optionally ``action`` (an index into ``context.references["actions"]``).
    Writes ``per_action_<stage>.csv`` into ``context.output_dir``.

    Args:
        root: index of the root joint (pelvis).
        num_joints: the first ``num_joints`` joints are evaluated (17: Human3.6M's joints, the 18th
            thorax left out as in protocol 2).
        per_action: also return ``mpjpe_<action>`` / ``pa_mpjpe_<action>`` metrics.
    """

    def __init__(self, root: int = 0, num_joints: int = 17, per_action: bool = True) -> None:
        if root < 0 or num_joints < 1 or root >= num_joints:
            raise ValueError(f"need 0 <= root < num_joints, got root={root}, num_joints={num_joints}")
        self.root, self.num_joints, self.per_action = root, num_joints, per_action

    def __call__(self, outputs: Mapping[str, np.ndarray], context: EvaluationContext) -> dict[str, float]:
        require(outputs, ("pred", "joints_cam", "root_depth", "focal", "principal"), "Pose3DEvaluator")
        pred = back_project(outputs["pred"], outputs["root_depth"], outputs["focal"], outputs["principal"])
        truth = np.asarray(outputs["joints_cam"], dtype=np.float64)
        if pred.shape[1] < self.num_joints:
            raise ValueError(f"Pose3DEvaluator evaluates {self.num_joints} joints but the predictions have "
                             f"{pred.shape[1]}; set num_joints to at most the model's keypoints")
        joints = range(self.num_joints)
        errors = {"mpjpe": mpjpe(pred, truth, self.root, joints), "pa_mpjpe": pa_mpjpe(pred, truth, joints)}
        metrics = {name: float(values.mean()) for name, values in errors.items()}
        names = list(context.references.get("actions", ()))
        if "action" not in outputs or not names:
            return metrics
        action = np.asarray(outputs["action"]).astype(int).reshape(-1)
        rows = []
        for index, name in enumerate(names):
            chosen = action == index
            if chosen.any():
                row = {"action": name, "frames": int(chosen.sum())}
                row.update({metric: float(values[chosen].mean()) for metric, values in errors.items()})
                rows.append(row)
                if self.per_action:
                    metrics.update({f"{metric}_{name}": row[metric] for metric in errors})
        if context.output_dir is not None and rows:
            context.output_dir.mkdir(parents=True, exist_ok=True)
            with open(context.output_dir / f"per_action_{context.stage}.csv", "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
        return metrics
