"""Networks that output logits over a grid (B, K, *grid) or a point set (B, K, N). No method logic lives here."""

from sampling_argmax.models.channels import KeypointChannels
from sampling_argmax.models.oct_net import OCTBoundaryNet
from sampling_argmax.models.pointnet2 import PointNet2
from sampling_argmax.models.resnet_deconv import ResNetDeconv
from sampling_argmax.models.small import SmallHeatmapNet

__all__ = ["KeypointChannels", "OCTBoundaryNet", "PointNet2", "ResNetDeconv", "SmallHeatmapNet"]
