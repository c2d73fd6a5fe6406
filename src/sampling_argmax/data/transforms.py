"""Image-side transforms of the image datasets (COCO, MTFL, Human3.6M, own data): warping a crop, random crop
parameters for augmentation, and the model-input normalization. The geometry (affine maps, the flip rule) is
in :mod:`sampling_argmax.codecs`.

Example:
    >>> import numpy as np
    >>> to_model_input(np.zeros((4, 6, 3), np.uint8)).shape
    torch.Size([3, 4, 6])
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

__all__ = ["to_model_input", "warp_image", "random_affine_params"]


def warp_image(image: np.ndarray, matrix: np.ndarray, output_size: Sequence[int]) -> np.ndarray:
    """Warp an image (H, W[, C]) with a (2, 3) original->output affine (bilinear, zero border).

    Returns an array of the input's dtype, (out_h, out_w[, C]). cv2 uses the same pixel-centre
    convention, so a point at ``p`` in ``image`` appears at ``apply_affine(p, matrix)`` in the output.

    Example:
        >>> from sampling_argmax.codecs.affine import affine_matrix
        >>> warp_image(np.zeros((10, 12, 3), np.uint8), affine_matrix((6, 5), (12, 10), 0, (6, 5)), (6, 5)).shape
        (5, 6, 3)
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must have shape (H, W) or (H, W, C), got {image.shape}")
    width, height = (int(v) for v in output_size)
    return cv2.warpAffine(
        image,
        np.asarray(matrix, dtype=np.float64),
        (width, height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def random_affine_params(
    rng: np.random.Generator,
    scale: float = 0.3,
    rotation: float = 40.0,
    rotation_prob: float = 0.6,
) -> tuple[float, float]:
    """Draw (scale_factor, rotation_deg) for training augmentation (SimpleBaseline recipe).

    scale_factor = clip(1 + scale * n, 1 - scale, 1 + scale); rotation_deg = clip(rotation * n',
    -2 rotation, 2 rotation) with probability ``rotation_prob``, else 0 (n, n' standard normal).
    A scale factor > 1 enlarges the source box (the person appears smaller).

    Example:
        >>> s, r = random_affine_params(np.random.default_rng(0))
        >>> 0.7 <= s <= 1.3 and -80 <= r <= 80
        True
    """
    if scale < 0 or rotation < 0 or not 0.0 <= rotation_prob <= 1.0:
        raise ValueError(
            f"need scale >= 0, rotation >= 0, 0 <= rotation_prob <= 1; got {scale}, {rotation}, {rotation_prob}"
        )
    scale_factor = float(np.clip(1.0 + scale * rng.standard_normal(), 1.0 - scale, 1.0 + scale))
    rotation_deg = float(np.clip(rotation * rng.standard_normal(), -2.0 * rotation, 2.0 * rotation))
    if rng.random() >= rotation_prob:
        rotation_deg = 0.0
    return scale_factor, rotation_deg


#: torchvision's ImageNet statistics, which the ResNet backbones (and local pretrained weights) expect.
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def to_model_input(image: np.ndarray) -> torch.Tensor:
    """An RGB ``H x W x 3`` uint8 crop -> the ImageNet-normalized ``(3, H, W)`` float32 tensor a ResNet expects."""
    pixels = (image.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))
