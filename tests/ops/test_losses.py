"""Losses: hand-computed values, visibility masking, shapes, numerics."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sampling_argmax.losses import (
    POINT_TARGET_VARIANCE,
    coordinate_loss,
    distribution_loss,
    distribution_loss_points,
    reduce_keypoints,
    variance_loss,
    variance_loss_points,
)


def gaussian_logits(shape_xyz, centre, var):
    """Log of an (unnormalized) Gaussian at the cell centres; grid given in x, y, z order."""
    axes = [torch.arange(n, dtype=torch.float32) for n in reversed(shape_xyz)]  # z, y, x
    mesh = torch.meshgrid(*axes, indexing="ij")
    sq = sum((m - c).square() for m, c in zip(mesh, reversed(centre)))
    return (-sq / (2 * var))[None, None]


# ---------------------------------------------------------------- reduction and masking


def test_reduce_keypoints_weighted_mean_and_all_masked_is_zero():
    loss = torch.tensor([[1.0, 3.0], [5.0, float("nan")]])
    w = torch.tensor([[1.0, 1.0], [2.0, 0.0]])
    assert reduce_keypoints(loss, w).item() == pytest.approx((1 + 3 + 10) / 4)
    assert reduce_keypoints(loss, w, "sum").item() == pytest.approx(14.0)
    assert torch.equal(reduce_keypoints(loss, w, "none"), torch.tensor([[1.0, 3.0], [10.0, 0.0]]))
    zero = reduce_keypoints(loss, torch.zeros(2, 2))
    assert zero.item() == 0.0 and not torch.isnan(zero)


def test_reduce_keypoints_rejects_bad_reduction_and_weight_shape():
    with pytest.raises(ValueError, match="reduction"):
        reduce_keypoints(torch.ones(1, 2), reduction="avg")
    with pytest.raises(ValueError, match=r"weight must have shape \(B, K\)"):
        reduce_keypoints(torch.ones(2, 3), torch.ones(2, 3, 1))


# ---------------------------------------------------------------- coordinate loss


def test_coordinate_loss_hand_values_l1_l2():
    pred = torch.tensor([[[1.0, 2.0], [0.0, 0.0]]])
    target = torch.tensor([[[0.0, 0.0], [3.0, 4.0]]])
    assert torch.allclose(coordinate_loss(pred, target, reduction="none"), torch.tensor([[3.0, 7.0]]))
    assert torch.allclose(coordinate_loss(pred, target, p=2, reduction="none"), torch.tensor([[math.sqrt(5), 5.0]]))
    assert coordinate_loss(pred, target).item() == pytest.approx(5.0)


def test_coordinate_loss_samples_average_per_sample_distance():
    target = torch.zeros(1, 1, 1)
    samples = torch.tensor([-1.0, 3.0]).view(1, 1, 2, 1)  # the mean sample is at 1, but mean |error| is 2
    assert coordinate_loss(samples, target).item() == pytest.approx(2.0)
    assert coordinate_loss(samples.mean(2), target).item() == pytest.approx(1.0)


def test_coordinate_loss_masked_keypoint_no_effect_no_gradient():
    pred = torch.randn(2, 3, 4, 2, requires_grad=True)
    target = torch.randn(2, 3, 2)
    w = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    loss = coordinate_loss(pred, target, w)
    garbage = target.clone()
    garbage[0, 1] = float("nan")  # unlabeled targets may hold anything
    loss_garbage = coordinate_loss(pred, garbage, w)
    assert loss.item() == pytest.approx(loss_garbage.item())
    loss_garbage.backward()
    assert torch.all(pred.grad[0, 1] == 0)
    assert torch.all(pred.grad[0, 0] != 0)
    assert torch.isfinite(pred.grad).all()


def test_coordinate_loss_l2_gradient_finite_at_zero_error():
    pred = torch.zeros(1, 1, 2, requires_grad=True)
    coordinate_loss(pred, torch.zeros(1, 1, 2), p=2).backward()
    assert torch.isfinite(pred.grad).all()


@pytest.mark.parametrize(
    "pred_shape, target_shape",
    [((2, 3, 2), (2, 3, 3)), ((2, 3, 5, 2), (2, 4, 2)), ((2, 3), (2, 3, 2)), ((2, 3, 2), (2, 3))],
)
def test_coordinate_loss_shape_mismatch_raises(pred_shape, target_shape):
    with pytest.raises(ValueError, match="target|pred"):
        coordinate_loss(torch.zeros(pred_shape), torch.zeros(target_shape))


def test_coordinate_loss_rejects_p3():
    with pytest.raises(ValueError, match="p must be"):
        coordinate_loss(torch.zeros(1, 1, 2), torch.zeros(1, 1, 2), p=3)


# ---------------------------------------------------------------- variance regularizer


def test_variance_loss_hand_values_1d_2d_cell_scale():
    # uniform over 3 cells: Var = 2/3; (2/3 - 4)^2
    assert variance_loss(torch.zeros(1, 1, 3), scale="cell").item() == pytest.approx((2 / 3 - 4) ** 2, rel=1e-5)
    # 2D: mass split equally between cells (x=0, y=0) and (x=2, y=0): Var_x = 1, Var_y = 0
    logits = torch.full((1, 1, 2, 3), -1e4)
    logits[0, 0, 0, 0] = logits[0, 0, 0, 2] = 0.0
    assert variance_loss(logits, target_variance=1.0, scale="cell").item() == pytest.approx(0 + 1.0, abs=1e-5)
    assert variance_loss(logits, target_variance=0.0, scale="cell").item() == pytest.approx(1.0 + 0.0, abs=1e-5)


def test_variance_loss_normalized_hand_values_1d_2d_3d():
    # the default: per axis ((Var_a - σ²) / n_a²)², n_a the axis size
    assert variance_loss(torch.zeros(1, 1, 3)).item() == pytest.approx(((2 / 3 - 4) / 9) ** 2, rel=1e-5)
    # non-square 2D (H=2, W=3): Var_x = 1 on n_x = 3, Var_y = 0 on n_y = 2
    logits = torch.full((1, 1, 2, 3), -1e4)
    logits[0, 0, 0, 0] = logits[0, 0, 0, 2] = 0.0
    expected = ((1 - 4) / 9) ** 2 + ((0 - 4) / 4) ** 2
    assert variance_loss(logits).item() == pytest.approx(expected, rel=1e-5)
    # 3D (D=4, H=5, W=6), uniform: Var_a = (n_a² - 1) / 12
    expected = sum(((n * n - 1) / 12 - 4) ** 2 / n**4 for n in (6, 5, 4))
    assert variance_loss(torch.zeros(1, 1, 4, 5, 6)).item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="scale"):
        variance_loss(logits, scale="pixel")


def test_variance_loss_masked_keypoint_gets_no_gradient():
    logits = torch.randn(1, 2, 5, 5, requires_grad=True)
    variance_loss(logits, weight=torch.tensor([[0.0, 1.0]])).backward()
    assert torch.all(logits.grad[0, 0] == 0) and logits.grad[0, 1].abs().sum() > 0


def test_variance_loss_points_hand_value():
    pts = torch.tensor([[[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]]])
    logits = torch.tensor([[[0.0, 0.0, -1e4]]])  # half on (0,0), half on (2,0): Var_x = 1, Var_y = 0
    assert variance_loss_points(logits, pts, target_variance=1.0).item() == pytest.approx(1.0, abs=1e-5)


# ---------------------------------------------------------------- distribution regularizer


@pytest.mark.parametrize("divergence", ["js", "kl"])
@pytest.mark.parametrize("shape, centre", [((11,), (4.3,)), ((9, 7), (3.5, 2.2)), ((6, 5, 4), (2.0, 1.5, 2.7))])
def test_distribution_loss_zero_at_target_positive_elsewhere(divergence, shape, centre):
    logits = gaussian_logits(shape, centre, 4.0)
    target = torch.tensor(centre).view(1, 1, -1)
    assert distribution_loss(logits, target, divergence=divergence).abs().item() < 1e-6
    shifted = torch.tensor(centre).view(1, 1, -1) + 1.0
    assert distribution_loss(logits, shifted, divergence=divergence).item() > 1e-3
    assert distribution_loss(logits * 3, target, divergence=divergence).item() > 1e-3  # too narrow


def test_distribution_loss_hand_value_js_disjoint_is_log2():
    # π all on cell 0, q essentially all on cell 9 (σ² tiny): JS = log 2
    logits = torch.full((1, 1, 10), -1e4)
    logits[..., 0] = 0
    js = distribution_loss(logits, torch.tensor([[[9.0]]]), target_variance=0.01)
    assert js.item() == pytest.approx(math.log(2), abs=1e-5)


def test_distribution_loss_kl_is_kl_of_map_to_gaussian():
    logits = torch.tensor([[[0.3, -1.0, 2.0, 0.5]]])
    target = torch.tensor([[[1.2]]])
    p = torch.softmax(logits[0, 0], -1)
    q = torch.softmax(-(torch.arange(4.0) - 1.2) ** 2 / 8.0, -1)
    expected = (p * (p / q).log()).sum()
    assert distribution_loss(logits, target, divergence="kl").item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("divergence", ["js", "kl"])
def test_distribution_loss_finite_with_extreme_logits(divergence):
    logits = torch.full((2, 3, 8, 8), -1e4)
    logits[..., 2, 5] = 1e4
    logits.requires_grad_(True)
    target = torch.tensor([6.0, 6.0]).expand(2, 3, 2)
    loss = distribution_loss(logits, target, divergence=divergence)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 0
    assert torch.isfinite(logits.grad).all()
    pts_loss = distribution_loss_points(logits.detach().flatten(2), torch.rand(2, 64, 3), torch.rand(2, 3, 3))
    assert torch.isfinite(pts_loss)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_js_is_symmetric_bounded(seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(1, 1, 12, generator=g) * 3
    centre = torch.rand(1, 1, 1, generator=g) * 11
    js = distribution_loss(logits, centre).item()
    assert 0 <= js <= math.log(2) + 1e-6


def test_distribution_loss_masked_keypoint_and_shape_errors():
    logits = torch.randn(1, 2, 6, 6, requires_grad=True)
    target = torch.tensor([[[float("nan"), 0.0], [2.0, 3.0]]])
    loss = distribution_loss(logits, target, weight=torch.tensor([[0.0, 1.0]]))
    loss.backward()
    assert torch.isfinite(loss) and torch.all(logits.grad[0, 0] == 0)
    with pytest.raises(ValueError, match=r"target must have shape \(B, K, dims\) = \(1, 2, 2\)"):
        distribution_loss(logits, torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match="divergence"):
        distribution_loss(logits, torch.zeros(1, 2, 2), divergence="hellinger")
    with pytest.raises(ValueError, match="target_variance"):
        distribution_loss(logits, torch.zeros(1, 2, 2), target_variance=0.0)


def test_distribution_loss_points_zero_at_target_default_variance():
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(2, 50, 3, generator=g)
    target = torch.rand(2, 4, 3, generator=g)
    logits = -(pts[:, None] - target[:, :, None]).square().sum(-1) / (2 * POINT_TARGET_VARIANCE)
    assert distribution_loss_points(logits, pts, target).abs().item() < 1e-6
    assert distribution_loss_points(torch.zeros_like(logits), pts, target).item() > 0.1
    with pytest.raises(ValueError, match="points"):
        distribution_loss_points(logits, pts[:, :10], target)
