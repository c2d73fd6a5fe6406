"""SimpleBaseline-style heatmap network: a torchvision ResNet backbone, a deconvolution head, a 1×1 conv.

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


def _deconv_head(in_channels: int, channels: int, num_deconv: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(num_deconv):
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
        deconv_channels: channels of each deconvolution layer.
        num_deconv: number of ×2 upsampling deconvolutions (output stride 32 / 2**num_deconv).
        in_channels: input channels; other than 3 replaces the stem convolution.
        pretrained: path to a local torchvision ResNet state dict (``resnet50-*.pth``); None = random init.
            No weights are ever downloaded.

    Shape:
        (B, in_channels, H, W) -> (B, K, H / 32 * 2**num_deconv, W / 32 * 2**num_deconv)

    Example:
        >>> net = ResNetDeconv(depth=18, num_keypoints=5, deconv_channels=32)
        >>> net(torch.zeros(1, 3, 256, 192)).shape
        torch.Size([1, 5, 64, 48])
    """

    def __init__(
        self,
        depth: int = 50,
        num_keypoints: int = 17,
        deconv_channels: int = 256,
        num_deconv: int = 3,
        in_channels: int = 3,
        pretrained: str | None = None,
    ) -> None:
        super().__init__()
        if depth not in _BACKBONES:
            raise ValueError(f"depth={depth} is not supported; use one of {sorted(_BACKBONES)}")
        if num_keypoints < 1:
            raise ValueError(f"num_keypoints={num_keypoints} must be >= 1")
        if num_deconv < 0:
            raise ValueError(f"num_deconv={num_deconv} must be >= 0")
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
        self.head = _deconv_head(feature_channels, deconv_channels, num_deconv)
        head_channels = deconv_channels if num_deconv > 0 else feature_channels
        self.final = nn.Conv2d(head_channels, num_keypoints, kernel_size=1)
        self._init_head()
        self.num_keypoints = num_keypoints

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
        return self.final(self.head(self.backbone(image)))


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
