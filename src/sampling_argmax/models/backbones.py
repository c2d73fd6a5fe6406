"""Backbones by name: torchvision's ResNets, and any timm model that offers ``features_only`` when timm is
installed (``pip install sampling-argmax[timm]``). Weights come from a local file only; nothing downloads.

:func:`build_backbone` returns a module mapping (B, C, H, W) images to its last feature map (B, F, H/s, W/s)
and F. The torchvision ResNets keep their layer names (``conv1``, ``bn1``, ``layer1`` ... as items 0-7 of a
Sequential), so checkpoints written before this module existed still load.

Example:
    >>> net, channels = build_backbone("resnet18")
    >>> channels, tuple(net(torch.zeros(1, 3, 64, 64)).shape)
    (512, (1, 512, 2, 2))
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn
from torchvision import models as tv

from sampling_argmax._io import load_tensors

__all__ = ["TORCHVISION_BACKBONES", "build_backbone", "backbone_name"]

#: torchvision ResNets: name -> (constructor, channels of the last stage).
TORCHVISION_BACKBONES = {
    "resnet18": (tv.resnet18, 512),
    "resnet34": (tv.resnet34, 512),
    "resnet50": (tv.resnet50, 2048),
    "resnet101": (tv.resnet101, 2048),
    "resnet152": (tv.resnet152, 2048),
}


def backbone_name(backbone: str | None, depth: int | None) -> str:
    """The backbone of ``ResNetDeconv(backbone=..., depth=...)``: ``depth`` N is ``resnetN`` (the older
    spelling); neither = resnet50."""
    if depth is not None:
        if isinstance(depth, bool) or not isinstance(depth, int) or f"resnet{depth}" not in TORCHVISION_BACKBONES:
            raise ValueError(f"depth={depth!r} is not supported; use one of 18, 34, 50, 101, 152 (or backbone=NAME)")
        if backbone is not None and backbone != f"resnet{depth}":
            raise ValueError(f"backbone={backbone!r} and depth={depth} disagree; give one of them")
        return f"resnet{depth}"
    return "resnet50" if backbone is None else str(backbone)


class _LastFeatureMap(nn.Module):
    """A timm ``features_only`` model that returns only its last feature map."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.body(image)[-1]


def build_backbone(name: str, in_channels: int = 3, pretrained: str | None = None) -> tuple[nn.Module, int]:
    """(module: images -> last feature map, its channel count) of backbone ``name``.

    Args:
        name: ``resnet18|resnet34|resnet50|resnet101|resnet152`` (torchvision) or a timm model name.
        in_channels: input channels; other than 3 replaces the first convolution (ResNets) or is timm's
            ``in_chans``. Pretrained weights are loaded before the stem is replaced.
        pretrained: a local state dict file (torchvision's or timm's; a ``{"state_dict": ...}`` wrapper is
            unwrapped); None = random init.
    """
    if name in TORCHVISION_BACKBONES:
        build, channels = TORCHVISION_BACKBONES[name]
        net = build(weights=None)
        if pretrained is not None:
            _load_state(net, pretrained, name, ignore=("fc.",))
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        body = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)
        return body, channels
    if importlib.util.find_spec("timm") is None:
        raise ValueError(
            f"backbone {name!r} is not a torchvision ResNet ({', '.join(TORCHVISION_BACKBONES)}); other backbones "
            "come from timm, which is not installed: pip install 'sampling-argmax[timm]'"
        )
    import timm

    if not timm.is_model(name):
        raise ValueError(f"backbone {name!r} is neither a torchvision ResNet ({', '.join(TORCHVISION_BACKBONES)}) "
                         "nor a timm model (timm.list_models() lists them)")
    try:
        body = timm.create_model(name, pretrained=False, features_only=True, out_indices=(-1,), in_chans=in_channels)
    except Exception as error:  # noqa: BLE001 - timm raises several types for a model without feature maps
        raise ValueError(f"backbone {name!r}: timm cannot build it with features_only=True ({type(error).__name__}: "
                         f"{str(error)[:200]}); choose a model with feature maps (a CNN, e.g. resnet18, "
                         "mobilenetv3_small_100, convnext_atto)") from None
    if pretrained is not None:
        _load_state(body, pretrained, name, ignore=None)
    return _LastFeatureMap(body), int(body.feature_info.channels()[-1])


def _load_state(net: nn.Module, path: str, name: str, ignore: tuple[str, ...] | None) -> None:
    """Load a state dict file into ``net``: every weight of ``net`` must be in it with its shape. Extra entries
    (a classifier) are dropped: those starting with ``ignore``, or with ``ignore`` None any not in ``net``."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(
            f"pretrained={path!r} does not exist; pass the path of a local {name} state dict (torchvision's "
            "resnet50-0676ba61.pth, or timm's model.safetensors/pytorch_model.bin saved by hand), or pretrained=None "
            "for random init. Nothing is downloaded"
        )
    if file.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ValueError(f"pretrained={path!r} is a .safetensors file; pip install safetensors") from None
        state = load_file(str(file))
    else:
        state = load_tensors(file, "pretrained=", f"give a state dict of {name} (torchvision or timm)")
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"pretrained={path!r} does not hold a state dict (got {type(state).__name__})")
    own = net.state_dict()
    if ignore is None:
        state = {k: v for k, v in state.items() if k in own}
    else:
        state = {k: v for k, v in state.items() if not k.startswith(ignore)}
    wrong = [f"{k} {tuple(v.shape)} (the backbone's: {tuple(own[k].shape)})" for k, v in state.items()
             if k in own and tuple(v.shape) != tuple(own[k].shape)]
    missing = [k for k in own if k not in state and not (ignore and k.startswith(ignore))]
    unexpected = [k for k in state if k not in own]
    if wrong or missing or unexpected:
        raise ValueError(
            f"pretrained={path!r} does not match backbone {name!r}: "
            + "; ".join(f"{what} {items[:3]}{' ...' if len(items) > 3 else ''} ({len(items)})"
                        for what, items in (("other shapes", wrong), ("missing", missing), ("unexpected", unexpected))
                        if items)
            + ". Give the weights of that very architecture"
        )
    net.load_state_dict(state, strict=ignore is None)
