"""A fully convolutional boundary-regression network for OCT B-scans (in the spirit of He et al., MICCAI 2019).

A U-Net-like encoder-decoder over the B-scan; per boundary one logit per (column, row): the output
``(B, 9, W, H)`` is flattened to ``(B, 9·W, H)`` -- B·9·W one-dimensional maps over the rows, keypoint
``k = b·W + c`` -- so the six methods read it out with the same operators as any 1D grid task. The topology
(boundaries ordered top to bottom) is imposed at evaluation, the same way for every method
(:func:`sampling_argmax.metrics.oct.ordered_boundaries`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["OCTBoundaryNet"]


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class OCTBoundaryNet(nn.Module):
    """U-Net encoder-decoder with skip connections; per-column row logits for each boundary.

    Args:
        num_boundaries: boundaries per A-scan (9 for MSHC).
        in_channels: input channels (1).
        width: channels of the first stage, doubled at each of the ``depth`` downsamplings.
        depth: number of 2x downsamplings; H and W must be divisible by 2**depth.

    Shape:
        (B, C, H, W) -> (B, num_boundaries·W, H).

    Example:
        >>> net = OCTBoundaryNet(num_boundaries=9, width=8, depth=3)
        >>> net(torch.zeros(2, 1, 128, 64)).shape
        torch.Size([2, 576, 128])
    """

    def __init__(self, num_boundaries: int = 9, in_channels: int = 1, width: int = 16, depth: int = 4) -> None:
        super().__init__()
        if num_boundaries < 1 or in_channels < 1 or width < 1 or depth < 1:
            raise ValueError(f"num_boundaries={num_boundaries}, in_channels={in_channels}, width={width}, "
                             f"depth={depth} must all be >= 1")
        self.num_boundaries, self.depth = num_boundaries, depth
        channels = [width * 2**i for i in range(depth + 1)]
        self.encoders = nn.ModuleList([_double_conv(in_channels, channels[0])] + [
            _double_conv(channels[i], channels[i + 1]) for i in range(depth)])
        self.decoders = nn.ModuleList([_double_conv(channels[i + 1] + channels[i], channels[i]) for i in range(depth)])
        self.head = nn.Conv2d(channels[0], num_boundaries, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"input of shape {tuple(x.shape)} must be a batch of B-scans (B, C, H, W)")
        step = 2**self.depth
        if x.shape[-2] % step or x.shape[-1] % step:
            raise ValueError(f"B-scan size {tuple(x.shape[-2:])} must be divisible by 2**depth = {step} in rows and "
                             "columns; change the crop/column_step or the model's depth")
        skips = []
        for i, encoder in enumerate(self.encoders):
            x = encoder(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for decoder in reversed(self.decoders):
            skip = skips.pop()
            x = decoder(torch.cat([F.interpolate(x, size=skip.shape[-2:], mode="nearest"), skip], dim=1))
        logits = self.head(x)  # (B, num_boundaries, H, W)
        batch, boundaries, height, width = logits.shape
        return logits.transpose(2, 3).reshape(batch, boundaries * width, height)
