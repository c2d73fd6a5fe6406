"""Several output channels per keypoint, for methods that read more than one logit map per keypoint."""

from __future__ import annotations

import torch
from torch import nn


class KeypointChannels(nn.Module):
    """Groups a model's ``K * channels`` output maps per keypoint: ``(B, K * C, *grid) -> (B, K, C, *grid)``.

    Map ``k * C + c`` becomes channel c of keypoint k. For
    :class:`~sampling_argmax.learned_bases.LearnedBasisMethod`, C = 1 + dims * P (the logits, then the
    per-cell law's P parameters per axis): build the wrapped model with ``num_keypoints = K * C``.

    Args:
        model: any network that outputs ``(B, K * C, *grid)``.
        channels: C.

    Example:
        >>> from sampling_argmax.models import SmallHeatmapNet
        >>> net = KeypointChannels(SmallHeatmapNet(num_keypoints=3 * 5), channels=5)
        >>> net(torch.zeros(2, 1, 48, 48)).shape
        torch.Size([2, 3, 5, 24, 24])
    """

    def __init__(self, model: nn.Module, channels: int) -> None:
        super().__init__()
        if int(channels) != channels or channels < 1:
            raise ValueError(f"channels={channels} must be a positive integer (maps per keypoint)")
        self.model = model
        self.channels = int(channels)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        maps = self.model(inputs)
        if maps.dim() < 3 or maps.shape[1] % self.channels:
            raise ValueError(f"the wrapped model output {tuple(maps.shape)} does not split into groups of "
                             f"channels={self.channels} maps per keypoint; build it with num_keypoints = K * "
                             f"{self.channels}")
        return maps.unflatten(1, (maps.shape[1] // self.channels, self.channels))
