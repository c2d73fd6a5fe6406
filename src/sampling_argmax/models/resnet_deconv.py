"""SimpleBaseline-style heatmap network: a torchvision ResNet backbone, a deconvolution head, a 1×1 conv.

With ``depth_bins`` D the 1×1 conv outputs K·D channels, read as K volumes of D × H × W logits: the
integral-regression head of Integral Human Pose (Sun et al. 2018) for 3D pose.

The network outputs raw logits over the grid; what they mean (softmax, sampling, read-out) is the
method's business, never the model's.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet18, resnet50

from sampling_argmax._io import load_tensors

_BACKBONES = {18: (resnet18, 512), 50: (resnet50, 2048)}


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
    """ResNet-18/50 + ``num_deconv`` stride-2 deconvolutions + 1×1 conv to ``num_keypoints`` logit maps.

    Args:
        depth: 18 or 50.
        num_keypoints: K, number of output maps.
        deconv_channels: channels of each deconvolution layer, or one number per layer (a list of
            ``num_deconv`` widths, e.g. a thin last layer for fine maps on a CPU budget).
        num_deconv: number of ×2 upsampling deconvolutions (output stride 32 / 2**num_deconv).
        in_channels: input channels; other than 3 replaces the stem convolution.
        pretrained: path to a local torchvision ResNet state dict (``resnet50-*.pth``); None = random init.
            No weights are ever downloaded.
        depth_bins: 0 = 2D maps; D > 0 = K volumes of D depth bins (channel ``k * D + d`` is bin d of
            keypoint k), for 3D pose.

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
        depth: int = 50,
        num_keypoints: int = 17,
        deconv_channels: int | list[int] = 256,
        num_deconv: int = 3,
        in_channels: int = 3,
        pretrained: str | None = None,
        depth_bins: int = 0,
    ) -> None:
        super().__init__()
        if depth not in _BACKBONES:
            raise ValueError(f"depth={depth} is not supported; use one of {sorted(_BACKBONES)}")
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
        build, feature_channels = _BACKBONES[depth]
        backbone = build(weights=None)
        if pretrained is not None:
            _load_torchvision_state(backbone, pretrained)
        if in_channels != 3:
            backbone.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        # everything up to the last residual stage; avgpool/fc are dropped
        self.backbone = nn.Sequential(
            backbone.conv1, backbone.bn1, backbone.relu, backbone.maxpool,
            backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4,
        )
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


def _load_torchvision_state(backbone: nn.Module, path: str) -> None:
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(
            f"pretrained={path!r} does not exist; pass the path of a local torchvision ResNet state dict "
            "(e.g. resnet50-0676ba61.pth downloaded once by hand), or pretrained=None for random init"
        )
    state = load_tensors(file, "pretrained=", "give torchvision's ResNet weights file (e.g. resnet18-f37072fd.pth)")
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"pretrained={path!r} does not hold a state dict (got {type(state).__name__})")
    # the classifier is not part of this network: drop it so a plain ImageNet checkpoint loads strictly
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    try:
        missing, unexpected = backbone.load_state_dict(state, strict=False)
    except RuntimeError as error:  # same names, other shapes (e.g. a ResNet-18 file for depth=50)
        raise ValueError(f"pretrained={path!r} does not match a torchvision ResNet of this depth: {error}") from None
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise ValueError(
            f"pretrained={path!r} does not match a torchvision ResNet of this depth: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
