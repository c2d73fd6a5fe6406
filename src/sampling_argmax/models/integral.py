"""A small fully convolutional integral-regression network for 3D keypoints from an image, sized for CPUs.

It keeps a 1/4-resolution feature map (no deep downsampling that the head would have to undo), grows its
receptive field with dilated convolutions (a joint's depth relative to the root depends on the whole body)
and reads K volumes of D depth bins from K·D output channels, as the integral head of
:class:`~sampling_argmax.models.ResNetDeconv` with ``depth_bins`` does. The synthetic 3D-pose config uses it
because a ResNet-18 trained from scratch did not leave the mean pose within its CPU budget (docs/h36m.md).
"""

from __future__ import annotations

import torch
from torch import nn


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class IntegralPoseNet(nn.Module):
    """Stem (stride 2) + stride-2 stage + dilated context (1, 2, 4, 8) + 1×1 conv to K·D channels.

    Args:
        num_keypoints: K.
        depth_bins: D (channel ``k * D + d`` is depth bin d of keypoint k).
        in_channels: input channels.
        width: channels of the 1/2-resolution stem (doubled at 1/4).

    Shape:
        (B, in_channels, H, W) -> (B, K, D, H / 4, W / 4); H and W divisible by 4.

    Example:
        >>> IntegralPoseNet(num_keypoints=18, depth_bins=16)(torch.zeros(2, 3, 64, 64)).shape
        torch.Size([2, 18, 16, 16, 16])
    """

    def __init__(self, num_keypoints: int = 18, depth_bins: int = 16, in_channels: int = 3, width: int = 32) -> None:
        super().__init__()
        if min(num_keypoints, depth_bins, in_channels, width) < 1:
            raise ValueError(f"num_keypoints={num_keypoints}, depth_bins={depth_bins}, in_channels={in_channels}, "
                             f"width={width} must all be >= 1")
        w = width
        self.num_keypoints, self.depth_bins = num_keypoints, depth_bins
        self.features = nn.Sequential(
            _conv(in_channels, w, stride=2), _conv(w, w), _conv(w, 2 * w, stride=2),
            *[_conv(2 * w, 2 * w, dilation=d) for d in (1, 2, 4, 8)], _conv(2 * w, 2 * w),
        )
        self.final = nn.Conv2d(2 * w, num_keypoints * depth_bins, kernel_size=1)
        nn.init.normal_(self.final.weight, std=0.001)
        nn.init.zeros_(self.final.bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.dim() != 4 or image.shape[-1] % 4 or image.shape[-2] % 4:
            raise ValueError(f"input of shape {tuple(image.shape)} must be (B, C, H, W) with H, W divisible by 4")
        return self.final(self.features(image)).unflatten(1, (self.num_keypoints, self.depth_bins))
