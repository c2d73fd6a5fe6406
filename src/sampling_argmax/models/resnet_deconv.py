"""SimpleBaseline-style heatmap network: a backbone by name (torchvision ResNet-18...152, or a timm model), a
deconvolution head, a 1×1 conv.

With ``depth_bins`` D the 1×1 conv outputs K·D channels, read as K volumes of D × H × W logits: the
integral-regression head of Integral Human Pose (Sun et al. 2018) for 3D pose.

The network outputs raw logits over the grid; what they mean (softmax, sampling, read-out) is the
method's business, never the model's.
"""

from __future__ import annotations

import torch
from torch import nn

from sampling_argmax.models.backbones import backbone_name, build_backbone


def _deconv_head(in_channels: int, widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for channels in widths:
        # kernel 4, stride 2, padding 1 doubles the resolution exactly (the SimpleBaseline head)
        layers += [
            nn.ConvTranspose2d(in_channels, channels, kernel_size=4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        ]
        in_channels = channels
    return nn.Sequential(*layers)


class ResNetDeconv(nn.Module):
    """A backbone + ``num_deconv`` stride-2 deconvolutions + 1×1 conv to ``num_keypoints`` logit maps.

    Args:
        depth: 18, 34, 50, 101 or 152: torchvision's ResNet of that depth (the older spelling of ``backbone``).
        num_keypoints: K, number of output maps. None is a placeholder that the CLI replaces by the data's K
            (COCO-format json, landmark CSV); building with None is an error.
        deconv_channels: channels of each deconvolution layer, or one number per layer (a list of
            ``num_deconv`` widths, e.g. a thin last layer for fine maps on a CPU budget).
        num_deconv: number of ×2 upsampling deconvolutions (output stride 32 / 2**num_deconv).
        in_channels: input channels; other than 3 replaces the stem convolution.
        pretrained: path to a local state dict of the backbone (torchvision's ``resnet50-*.pth``, or a timm
            model's weights); None = random init. No weights are ever downloaded.
        depth_bins: 0 = 2D maps; D > 0 = K volumes of D depth bins (channel ``k * D + d`` is bin d of
            keypoint k), for 3D pose.
        backbone: ``resnet18|resnet34|resnet50|resnet101|resnet152`` (torchvision) or any timm model with
            ``features_only`` (needs timm); None = ``resnet{depth}``, or resnet50 (:mod:`~sampling_argmax.models.backbones`).

    Shape:
        (B, in_channels, H, W) -> (B, K, H / 32 * 2**num_deconv, W / 32 * 2**num_deconv), or with
        ``depth_bins`` D: (B, K, D, H / 32 * 2**num_deconv, W / 32 * 2**num_deconv) (x, y, z = last, 2nd, 3rd)

    Example:
        >>> net = ResNetDeconv(depth=18, num_keypoints=5, deconv_channels=32)
        >>> net(torch.zeros(1, 3, 256, 192)).shape
        torch.Size([1, 5, 64, 48])
        >>> ResNetDeconv(depth=18, num_keypoints=2, deconv_channels=16, depth_bins=8)(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 2, 8, 16, 16])
    """

    def __init__(
        self,
        depth: int | None = None,
        num_keypoints: int | None = 17,
        deconv_channels: int | list[int] = 256,
        num_deconv: int = 3,
        in_channels: int = 3,
        pretrained: str | None = None,
        depth_bins: int = 0,
        backbone: str | None = None,
    ) -> None:
        super().__init__()
        name = backbone_name(backbone, depth)
        if num_keypoints is None:
            raise ValueError("num_keypoints=None: give the number of keypoints (the CLI fills a config's null from "
                             "data modules that know it, e.g. COCOFormatDataModule, CSVLandmarkDataModule)")
        if num_keypoints < 1:
            raise ValueError(f"num_keypoints={num_keypoints} must be >= 1")
        if num_deconv < 0:
            raise ValueError(f"num_deconv={num_deconv} must be >= 0")
        if depth_bins < 0:
            raise ValueError(f"depth_bins={depth_bins} must be >= 0 (0 = 2D maps, D = volumes of D depth bins)")
        widths = [deconv_channels] * num_deconv if isinstance(deconv_channels, int) else list(deconv_channels)
        if len(widths) != num_deconv or min(widths, default=1) < 1:
            raise ValueError(f"deconv_channels={deconv_channels} must be a positive width or a list of num_deconv="
                             f"{num_deconv} positive widths")
        # everything up to the last stage (a ResNet's avgpool/fc are dropped)
        self.backbone, feature_channels = build_backbone(name, in_channels, pretrained)
        self.head = _deconv_head(feature_channels, widths)
        head_channels = widths[-1] if widths else feature_channels
        self.final = nn.Conv2d(head_channels, num_keypoints * max(depth_bins, 1), kernel_size=1)
        self._init_head()
        self.num_keypoints = num_keypoints
        self.depth_bins = depth_bins

    def _init_head(self) -> None:
        for module in self.head.modules():
            if isinstance(module, nn.ConvTranspose2d):
                nn.init.normal_(module.weight, std=0.001)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.final.weight, std=0.001)
        nn.init.zeros_(self.final.bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        maps = self.final(self.head(self.backbone(image)))
        if self.depth_bins:
            maps = maps.unflatten(1, (self.num_keypoints, self.depth_bins))
        return maps
