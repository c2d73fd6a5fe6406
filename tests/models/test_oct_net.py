"""OCTBoundaryNet: one 1D row map per (boundary, column), boundary-major, from a U-Net over the B-scan."""

import pytest
import torch

from sampling_argmax.models import OCTBoundaryNet


def test_output_is_the_head_map_of_each_boundary_and_column(one_thread):
    net = OCTBoundaryNet(num_boundaries=9, width=4, depth=3).eval()
    seen = {}
    net.head.register_forward_hook(lambda module, args, out: seen.setdefault("head", out))
    x = torch.randn(2, 1, 64, 32)
    with torch.no_grad():
        out = net(x)
    head = seen["head"]  # (B, 9, H, W)
    assert out.shape == (2, 9 * 32, 64) and head.shape == (2, 9, 64, 32)
    for b, c in ((0, 0), (4, 17), (8, 31)):
        assert torch.equal(out[:, b * 32 + c], head[:, b, :, c])  # keypoint b·W + c = column c of boundary b


def test_columns_see_their_neighbours_and_sizes_are_checked(one_thread):
    net = OCTBoundaryNet(num_boundaries=2, width=4, depth=2).eval()
    x = torch.zeros(1, 1, 32, 16)
    y = x.clone()
    y[..., 5] = 3.0  # change one A-scan: the U-Net's context reaches the next columns' maps too
    with torch.no_grad():
        delta = (net(x) - net(y)).abs().reshape(2, 16, 32).sum(-1)
    assert delta[:, 5].min() > 0 and delta[:, 6].min() > 0
    with pytest.raises(ValueError, match=r"divisible by 2\*\*depth = 4"):
        net(torch.zeros(1, 1, 30, 16))
