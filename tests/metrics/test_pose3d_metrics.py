"""MPJPE / PA-MPJPE / back-projection: hand-computed cases, scipy's Procrustes, and the evaluator."""

import numpy as np
import pytest
from scipy.spatial import procrustes
from scipy.spatial.transform import Rotation

from sampling_argmax.metrics.base import EvaluationContext
from sampling_argmax.metrics.pose3d import Pose3DEvaluator, back_project, mpjpe, pa_mpjpe, procrustes_align


def _poses(n=4, k=17, seed=0):
    return np.random.default_rng(seed).normal(size=(n, k, 3)) * 300.0


def test_mpjpe_hand_computed():
    truth = np.zeros((1, 3, 3))
    truth[0, 1] = [100.0, 0, 0]
    truth[0, 2] = [0, 100.0, 0]
    pred = truth.copy()
    pred[0, 2] += [0, 0, 30.0]  # one joint off by 30 mm, the root exact
    assert mpjpe(pred, truth)[0] == pytest.approx(10.0)
    # a translation of the whole pose is removed by the root alignment
    assert mpjpe(pred + 1000.0, truth)[0] == pytest.approx(10.0)
    assert mpjpe(pred, truth, joints=[2])[0] == pytest.approx(30.0)


def test_rotation_and_scale_give_zero_pa_mpjpe_and_nonzero_mpjpe():
    truth = _poses()
    rotation = Rotation.from_euler("xyz", [20, -40, 75], degrees=True).as_matrix()
    pred = 0.8 * truth @ rotation.T + np.array([10.0, -20.0, 300.0])
    assert np.all(mpjpe(pred, truth) > 50.0)
    np.testing.assert_allclose(pa_mpjpe(pred, truth), 0.0, atol=1e-8)


def test_procrustes_matches_scipy():
    # scipy standardizes both sets; its disparity times |truth - mean|^2 is the aligned squared error
    rng = np.random.default_rng(1)
    truth = _poses(3, seed=2)
    rotation = Rotation.from_euler("zyx", [30, 10, -50], degrees=True).as_matrix()
    pred = 1.3 * truth @ rotation.T + rng.normal(size=truth.shape) * 40.0
    aligned = procrustes_align(pred, truth)
    for i in range(len(truth)):
        _, _, disparity = procrustes(truth[i], pred[i])
        centred = truth[i] - truth[i].mean(0)
        assert np.square(aligned[i] - truth[i]).sum() == pytest.approx(disparity * np.square(centred).sum(), rel=1e-9)


def test_procrustes_does_not_reflect():
    truth = _poses(2, seed=3)
    mirrored = truth * np.array([-1.0, 1.0, 1.0])
    # scipy allows reflections and aligns a mirror image perfectly; a pose must not be aligned onto its mirror
    assert procrustes(truth[0], mirrored[0])[2] < 1e-12
    assert np.all(pa_mpjpe(mirrored, truth) > 10.0)
    aligned = procrustes_align(mirrored, truth)
    centred = aligned - aligned.mean(1, keepdims=True)
    source = mirrored - mirrored.mean(1, keepdims=True)
    # the fitted map is a proper similarity: same orientation as the source (det > 0)
    for a, s in zip(centred, source):
        m = np.linalg.lstsq(s, a, rcond=None)[0]
        assert np.linalg.det(m) > 0


def test_back_project_inverts_the_pinhole():
    cam = _poses(2, k=5, seed=4) + np.array([0.0, 0.0, 5000.0])
    focal, principal = np.array([[1145.0, 1143.8], [1000.0, 990.0]]), np.array([[512.5, 515.5], [500.0, 480.0]])
    uv = cam[..., :2] / cam[..., 2:] * focal[:, None] + principal[:, None]
    uvz = np.concatenate([uv, cam[..., 2:] - cam[:, :1, 2:]], -1)
    np.testing.assert_allclose(back_project(uvz, cam[:, 0, 2], focal, principal), cam, atol=1e-9)


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="pred and truth"):
        mpjpe(np.zeros((2, 17, 3)), np.zeros((2, 16, 3)))
    with pytest.raises(ValueError, match="uvz"):
        back_project(np.zeros((2, 17)), np.zeros(2), np.ones((2, 2)), np.zeros((2, 2)))


def test_evaluator_per_action(tmp_path):
    truth = _poses(4, k=18, seed=5) + np.array([0.0, 0.0, 5000.0])
    focal, principal = np.full((4, 2), 1000.0), np.full((4, 2), 500.0)
    uv = truth[..., :2] / truth[..., 2:] * focal[:, None] + principal[:, None]
    uvz = np.concatenate([uv, truth[..., 2:] - truth[:, :1, 2:]], -1)
    uvz[2:, 3, 2] += 170.0  # frames 2, 3 (action 1): one joint 170 mm deeper
    outputs = {"pred": uvz, "joints_cam": truth, "root_depth": truth[:, 0, 2], "focal": focal,
               "principal": principal, "action": np.array([0, 0, 1, 1])}
    context = EvaluationContext("test", tmp_path, {"actions": ["Walk", "Sit"]})
    metrics = Pose3DEvaluator()(outputs, context)
    assert metrics["mpjpe_Walk"] == pytest.approx(0.0, abs=1e-9)
    # the joint moves 170 mm in depth along its pixel's ray: 170 * |((u - c) / f, 1)|, over 17 joints
    ray = np.concatenate([(uv[2:, 3] - 500.0) / 1000.0, np.ones((2, 1))], -1)
    expected = (170.0 * np.linalg.norm(ray, axis=-1) / 17).mean()
    assert metrics["mpjpe_Sit"] == pytest.approx(expected)
    assert metrics["mpjpe"] == pytest.approx(expected / 2)
    assert "Sit" in (tmp_path / "per_action_test.csv").read_text()
    with pytest.raises(ValueError, match="joints_cam"):
        Pose3DEvaluator()({"pred": uvz}, context)
