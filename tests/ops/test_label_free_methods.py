"""The methods' label-free entry points: the keypoints an objective without labels trains on (the same
samples the supervised loss uses) and the regularizers V.R. and D.R. without a label."""

import pytest
import torch

from sampling_argmax.methods import paper_method


def test_soft_argmax_methods_give_their_expectation():
    logits, points = torch.randn(2, 3, 40), torch.rand(2, 40, 3)
    for name in ("soft", "soft_vr", "soft_dr"):
        method = paper_method(name)
        samples = method.keypoint_samples(logits, points)
        assert samples.shape == (2, 3, 1, 3)
        torch.testing.assert_close(samples[:, :, 0], method.predict(logits, points))
    assert paper_method("soft").keypoint_samples(torch.randn(1, 2, 8, 6)).shape == (1, 2, 1, 2)  # grids too


def test_sampling_argmax_samples_are_the_ones_its_loss_averages():
    logits = torch.randn(2, 3, 40, requires_grad=True)
    points, target = torch.rand(2, 40, 3), torch.rand(2, 3, 3)
    method = paper_method("samp_gau", num_samples=5)
    samples = method.keypoint_samples(logits, points, generator=torch.Generator().manual_seed(3))
    assert samples.shape == (2, 3, 5, 3) and samples.std(2).mean() > 0  # distinct samples
    by_hand = (samples - target[:, :, None]).abs().sum(-1).mean()
    loss = method.loss(logits, target, torch.ones(2, 3), points, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(loss, by_hand)
    torch.autograd.grad(by_hand, logits)  # differentiable
    assert method.label_free_regularizer(logits, points).item() == 0.0


def test_variance_regularizer_needs_no_label():
    logits, points, target = torch.randn(2, 3, 40), torch.rand(2, 40, 3), torch.rand(2, 3, 3)
    vr, soft = paper_method("soft_vr"), paper_method("soft")
    torch.testing.assert_close(vr.label_free_regularizer(logits, points),
                               vr.loss(logits, target, points=points) - soft.loss(logits, target, points=points))


def test_distribution_regularizer_centres_the_gaussian_on_the_expectation():
    method = paper_method("soft_dr", regularizer_weight=0.01)
    axis = torch.linspace(-0.1, 0.1, 21)
    points = torch.cartesian_prod(axis, axis, torch.zeros(1))[None]  # a symmetric grid of points around 0
    variance = 4e-4  # the point-set σ_t²
    gaussian = -(points.square().sum(-1)) / (2 * variance)  # logits of N(0, σ_t²) over the points
    assert method.label_free_regularizer(gaussian[:, None], points).item() == pytest.approx(0.0, abs=1e-7)
    shifted = -((points - torch.tensor([0.05, 0, 0])).square().sum(-1)) / (2 * variance)
    # a Gaussian elsewhere is still "a Gaussian around its expectation": no label pulls it back
    assert method.label_free_regularizer(shifted[:, None], points).item() < 1e-4
    flat = torch.zeros(1, 1, points.shape[1])
    assert method.label_free_regularizer(flat, points).item() > 1e-3  # a spread map is penalized
