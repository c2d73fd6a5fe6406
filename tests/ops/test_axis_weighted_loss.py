"""Per-axis target weights (B, K, dims): a 2D label in a 3D volume trains the x-y marginal (issue 14, MPII)."""

import pytest
import torch

from sampling_argmax.methods import PAPER_METHODS, paper_method


def _method(name):
    return paper_method(name, num_samples=4) if name.startswith("samp") else paper_method(name)


def _case(seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 3, 5, 6, 7, generator=g).requires_grad_(True)  # (B, K, D, H, W)
    target = torch.rand(2, 3, 3, generator=g) * torch.tensor([6.0, 5.0, 4.0])
    return logits, target


@pytest.mark.parametrize("name", PAPER_METHODS)
def test_all_axes_equal_the_per_keypoint_weight(name):
    logits, target = _case()
    weight = torch.tensor([[1.0, 0.0, 2.0], [1.0, 1.0, 0.0]])
    method = _method(name)
    plain = method.loss(logits, target, weight, generator=torch.Generator().manual_seed(3))
    per_axis = method.loss(logits, target, weight[..., None].expand(-1, -1, 3), generator=torch.Generator().manual_seed(3))
    assert torch.allclose(plain, per_axis, atol=1e-6)


@pytest.mark.parametrize("name", PAPER_METHODS)
def test_xy_only_keypoints_train_the_marginal(name):
    logits, target = _case(1)
    method = _method(name)
    weight = torch.ones(2, 3, 3)
    weight[1, :, 2] = 0.0  # sample 1: x, y labels only (an MPII image)
    loss = method.loss(logits, target, weight, generator=torch.Generator().manual_seed(0))
    # by hand: the 3D loss of sample 0 and the 2D loss of sample 1's x-y marginal, averaged over the 6 keypoints
    full = method.loss(logits[:1], target[:1], torch.ones(1, 3), generator=torch.Generator().manual_seed(0))
    marginal = torch.log(torch.softmax(logits[1:].flatten(2), -1).reshape(logits[1:].shape).sum(2))
    flat = method.loss(marginal, target[1:, :, :2], torch.ones(1, 3), generator=torch.Generator().manual_seed(0))
    if not name.startswith("samp"):  # deterministic: the exact combination
        assert torch.allclose(loss, (full + flat) / 2, atol=1e-5)
    # the unsupervised depth of sample 1 neither changes the loss nor gets a gradient
    moved = target.clone().requires_grad_(True)
    with torch.no_grad():
        moved[1, :, 2] += 100.0
    again = method.loss(logits, moved, weight, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(loss, again)
    again.backward()
    assert torch.all(moved.grad[1, :, 2] == 0) and logits.grad is not None and torch.isfinite(logits.grad).all()


def test_bad_per_axis_weights_are_refused():
    logits, target = _case()
    method = _method("soft")
    with pytest.raises(ValueError, match="non-zero axis weights"):
        method.loss(logits, target, torch.tensor([[[1.0, 0.5, 1.0]] * 3] * 2))
    with pytest.raises(ValueError, match=r"\(B, K, dims\)"):
        method.loss(logits, target, torch.ones(2, 3, 2))
