"""PointNet++ in plain PyTorch: the sampling and grouping primitives on hand-made clouds, the (B, K, N)
output, determinism with a seed, and clear errors for inconsistent sizes."""

import pytest
import torch

from sampling_argmax.models import PointNet2
from sampling_argmax.models.pointnet2 import ball_query, farthest_point_sample, interpolate_features

TINY = dict(sa_npoints=[32, 8], sa_radii=[[0.2, 0.4], [0.5]], sa_nsamples=[[4, 8], [8]],
            sa_mlps=[[[8], [8, 8]], [[16]]], global_mlp=[16], fp_mlps=[[16], [16], [16]], head_width=16)


def line(n):
    return torch.stack([torch.arange(n, dtype=torch.float32), torch.zeros(n), torch.zeros(n)], -1)[None]


def test_farthest_point_sampling_starts_at_the_first_point_and_takes_the_farthest():
    xyz = line(5)  # x = 0..4
    assert farthest_point_sample(xyz, 3).tolist() == [[0, 4, 2]]


def test_ball_query_takes_the_lowest_indices_inside_and_pads_with_the_first():
    xyz = line(6)
    index = ball_query(xyz, xyz[:, [2, 5]], radius=1.0, nsample=4)
    assert index.tolist() == [[[1, 2, 3, 1], [4, 5, 4, 4]]]


def test_interpolation_reproduces_features_at_coarse_points_and_weights_by_inverse_distance():
    coarse = line(3)
    features = torch.tensor([[[1.0], [2.0], [4.0]]])
    out = interpolate_features(torch.tensor([[[1.0, 0, 0], [0.5, 0, 0]]]), coarse, features, k=2)
    assert out[0, 0, 0] == pytest.approx(2.0, abs=1e-5)  # on a coarse point: its own feature
    assert out[0, 1, 0] == pytest.approx(1.5, abs=1e-5)  # halfway: the mean of the two neighbours


def test_output_is_per_point_logits_and_deterministic_with_a_seed():
    points = torch.rand(2, 64, 3) - 0.5
    torch.manual_seed(0)
    a = PointNet2(num_keypoints=5, **TINY).eval()
    torch.manual_seed(0)
    b = PointNet2(num_keypoints=5, **TINY).eval()
    out = a(points)
    assert out.shape == (2, 5, 64)
    assert torch.equal(out, b(points))
    out.sum().backward()
    assert all(p.grad is not None for p in a.parameters())
    with_features = PointNet2(num_keypoints=3, in_channels=2, **TINY)
    assert with_features(torch.rand(2, 64, 5)).shape == (2, 3, 64)


def test_inconsistent_sizes_are_clear_errors():
    with pytest.raises(ValueError, match="fp_mlps needs 3"):
        PointNet2(num_keypoints=2, **{**TINY, "fp_mlps": [[16], [16]]})
    with pytest.raises(ValueError, match="one entry per level"):
        PointNet2(num_keypoints=2, **{**TINY, "sa_radii": [[0.2]]})
    with pytest.raises(ValueError, match=r"expects points \(B, N, 3\)"):
        PointNet2(num_keypoints=2, **TINY)(torch.rand(2, 3, 64))
