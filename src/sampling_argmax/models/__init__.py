"""Networks that output logits over a grid: (B, K, *grid). No method logic lives here."""

from sampling_argmax.models.resnet_deconv import ResNetDeconv
from sampling_argmax.models.small import SmallHeatmapNet

__all__ = ["ResNetDeconv", "SmallHeatmapNet"]
