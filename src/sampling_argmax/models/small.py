"""A compact encoder-decoder heatmap network for 1D signals, 2D images and 3D volumes.

Small enough to train on two CPU cores in about a minute; used by the synthetic tasks and tests.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def _block(dims: int, cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    conv = _CONV[dims](cin, cout, kernel_size=3, stride=stride, padding=dilation, dilation=dilation, bias=False)
    return nn.Sequential(conv, _NORM[dims](cout), nn.ReLU(inplace=True))


class SmallHeatmapNet(nn.Module):
    """Encoder to 1/4 resolution with dilated context, decoder back to 1/2 with a skip connection.

    With ``output_stride=4`` the maps stay at 1/4 (the 1/2 skip is pooled down instead): deliberately coarse
    maps, where the fixed bases' read-out bias toward cell centres shows.

    Args:
        num_keypoints: K, number of output maps.
        dims: 1 (signal), 2 (image) or 3 (volume).
        in_channels: input channels.
        width: channels of the first stage (doubled at each downsampling).
        output_stride: 2 (default) or 4.

    Shape:
        (B, C, *grid_in) -> (B, K, *grid_in / output_stride); every input side must be divisible by 4.

    Example:
        >>> net = SmallHeatmapNet(num_keypoints=3, dims=2)
        >>> net(torch.zeros(2, 1, 64, 64)).shape
        torch.Size([2, 3, 32, 32])
    """

    def __init__(self, num_keypoints: int = 3, dims: int = 2, in_channels: int = 1, width: int = 16,
                 output_stride: int = 2) -> None:
        super().__init__()
        if dims not in _CONV:
            raise ValueError(f"dims={dims} must be 1, 2 or 3")
        if output_stride not in (2, 4):
            raise ValueError(f"output_stride={output_stride} must be 2 or 4")
        self.output_stride = output_stride
        if num_keypoints < 1 or width < 1 or in_channels < 1:
            raise ValueError(
                f"num_keypoints={num_keypoints}, width={width}, in_channels={in_channels} must all be >= 1"
            )
        w = width
        self.dims = dims
        self.num_keypoints = num_keypoints
        self.stem = _block(dims, in_channels, w)
        self.down1 = nn.Sequential(_block(dims, w, 2 * w, stride=2), _block(dims, 2 * w, 2 * w))
        # dilations grow the receptive field so a landmark can be told from a look-alike by its context
        self.down2 = nn.Sequential(
            _block(dims, 2 * w, 4 * w, stride=2),
            _block(dims, 4 * w, 4 * w, dilation=2),
            _block(dims, 4 * w, 4 * w, dilation=4),
        )
        self.fuse = _block(dims, 6 * w, 2 * w)
        self.final = _CONV[dims](2 * w, num_keypoints, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != self.dims + 2:
            raise ValueError(f"input of shape {tuple(x.shape)} must be (B, C, *grid) with {self.dims} grid dims")
        if any(side % 4 for side in x.shape[2:]):
            raise ValueError(f"input grid {tuple(x.shape[2:])} must be divisible by 4 on every side")
        half = self.down1(self.stem(x))
        quarter = self.down2(half)
        if self.output_stride == 4:
            pooled = _POOL[self.dims](half, kernel_size=2)
            return self.final(self.fuse(torch.cat([pooled, quarter], dim=1)))
        up = F.interpolate(quarter, size=half.shape[2:], mode="nearest")
        return self.final(self.fuse(torch.cat([half, up], dim=1)))
