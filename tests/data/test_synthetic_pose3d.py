"""The synthetic 3D-pose task: exact labels through the Human3.6M coding, plausible skeletons, determinism."""

import numpy as np
import pytest
import torch

from sampling_argmax.codecs.volume import apply_to_original
from sampling_argmax.data.synthetic_pose3d import SyntheticPose3DDataModule, SyntheticPoses, random_pose
from sampling_argmax.metrics.base import EvaluationContext
from sampling_argmax.metrics.pose3d import Pose3DEvaluator
from sampling_argmax.models.integral import IntegralPoseNet


def test_labels_decode_exactly_and_are_deterministic():
    data = SyntheticPoses("test", length=6)
    samples = [data[i] for i in range(6)]
    torch.testing.assert_close(data[3]["image"], samples[3]["image"])
    assert not torch.equal(samples[0]["image"], samples[1]["image"])
    outputs = {key: np.stack([s[key].numpy() for s in samples]) for key in ("joints_cam", "root_depth", "focal",
                                                                           "principal")}
    outputs["pred"] = np.stack([apply_to_original(s["to_original"].numpy(), s["target"].numpy().astype(np.float64))
                                for s in samples])
    metrics = Pose3DEvaluator()(outputs, EvaluationContext("test"))
    assert metrics["mpjpe"] < 1e-3 and metrics["pa_mpjpe"] < 1e-3
    weight = np.stack([s["target_weight"].numpy() for s in samples])
    assert weight.shape == (6, 18) and weight.mean() > 0.95  # the box holds the body, depth within +-1 m
    # the person is drawn: the crop's centre differs from a clutter-free background strip
    assert samples[0]["image"].std() > 0.3


def test_skeletons_respect_bone_lengths_and_joint_limits():
    rng = np.random.default_rng(0)
    for _ in range(50):
        joints = random_pose(rng)
        thigh = np.linalg.norm(joints[5] - joints[4])
        assert 440 * 0.8 < thigh < 440 * 1.21
        assert np.linalg.norm(joints[13] - joints[12]) < 250 * 1.21
        # knee flexion: the angle between thigh and shin stays within 0..140 degrees
        a, b = joints[5] - joints[4], joints[6] - joints[5]
        assert np.degrees(np.arccos(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))) <= 140 + 1e-6
        np.testing.assert_allclose(joints[17], (joints[11] + joints[14]) / 2)
        assert joints[10, 1] > joints[0, 1] - 400  # the head is not far below the pelvis


def test_module_contract_and_model_shapes():
    module = SyntheticPose3DDataModule(val_size=4, test_size=4, batch_size=2)
    assert module.input_shape == (3, 64, 64) and module.map_shape == (16, 16, 16)
    assert len(module.dataset("test")) == 4 and module.dataset("test") is module.dataset("test")
    net = IntegralPoseNet(num_keypoints=18, depth_bins=16, width=8)
    assert net(torch.zeros(2, *module.input_shape)).shape == (2, 18, *module.map_shape)
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.zeros(1, 3, 62, 62))
    with pytest.raises(ValueError, match="split"):
        SyntheticPoses("holdout", 2)


def test_difficulty_knobs_narrow_the_distribution_and_are_checked():
    upright = random_pose(np.random.default_rng(0), articulation=0.0)
    np.testing.assert_allclose(upright[[5, 6], 0], upright[4, 0])  # straight left leg: knee and ankle below the hip
    assert upright[6, 1] < upright[5, 1] < upright[4, 1]
    # facing the camera within +-10 degrees: the left hip (body +x) is on the image's right of the right hip
    data = SyntheticPoses("test", length=4, heading=10.0)
    assert all(data[i]["joints_cam"][4, 0] > data[i]["joints_cam"][1, 0] for i in range(4))
    with pytest.raises(ValueError, match="articulation"):
        random_pose(np.random.default_rng(0), articulation=1.5)
    with pytest.raises(ValueError, match="heading"):
        SyntheticPoses("test", length=2, heading=200.0)
