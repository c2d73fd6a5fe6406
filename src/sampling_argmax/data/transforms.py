"""Affine crop/augmentation transforms shared by the image datasets (COCO, MTFL, ...).

Pixel-centre convention (the same as the grid-cell convention of the operators): the centre of
pixel ``i`` is at coordinate ``i``, so an image of width ``W`` spans ``[-0.5, W - 0.5]``.

A crop is described by a source box (``center``, ``size = (w, h)`` in original pixels) and an
optional rotation about the box centre. :func:`affine_matrix` maps the box edges onto the edges
of the output image, so the box centre lands on ``((out_w - 1) / 2, (out_h - 1) / 2)``. The same
function with ``output_size`` = heatmap size gives the original-pixels -> heatmap-cells mapping;
its inverse (made 3x3 by :func:`homogeneous`) is the batch's ``"to_original"``.

Example:
    >>> import numpy as np
    >>> m = affine_matrix(center=(50.0, 40.0), size=(20.0, 10.0), rotation_deg=0.0, output_size=(4, 2))
    >>> apply_affine(np.array([[40.0, 35.0], [50.0, 40.0]]), m)  # box corner -> output corner (edge)
    array([[-0.5, -0.5],
           [ 1.5,  0.5]])
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

__all__ = [
    "to_model_input",
    "affine_matrix",
    "invert_affine",
    "apply_affine",
    "homogeneous",
    "warp_image",
    "flip_keypoints",
    "random_affine_params",
]


def _pair(value, name: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64).reshape(-1)
    if array.shape != (2,) or not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be two finite numbers (x, y) / (w, h), got {value!r}")
    return array


def affine_matrix(
    center: Sequence[float] | np.ndarray,
    size: Sequence[float] | np.ndarray,
    rotation_deg: float,
    output_size: Sequence[int] | np.ndarray,
) -> np.ndarray:
    """(2, 3) affine that maps original pixels -> output pixels for a (rotated) source box.

    Args:
        center: (2,) box centre (x, y) in original pixels.
        size: (w, h) of the box in original pixels (> 0). The box edges map to the output edges:
            x scale = out_w / w, y scale = out_h / h (equal when the box has the output's aspect).
        rotation_deg: rotation of the crop about the box centre, degrees; positive turns the image
            content counter-clockwise as displayed (y axis pointing down), like cv2.getRotationMatrix2D.
        output_size: (out_w, out_h) of the output image/grid.

    Returns:
        (2, 3) float64 matrix ``M`` with ``out = M[:, :2] @ p + M[:, 2]``.

    Example:
        >>> m = affine_matrix((95.5, 127.5), (192, 256), 0.0, (192, 256))
        >>> bool(np.allclose(m, [[1, 0, 0], [0, 1, 0]]))  # box == whole 192x256 image
        True
    """
    center = _pair(center, "center")
    size = _pair(size, "size")
    output_size = _pair(output_size, "output_size")
    if np.any(size <= 0) or np.any(output_size <= 0):
        raise ValueError(f"size and output_size must be positive, got size={size}, output_size={output_size}")
    theta = np.deg2rad(float(rotation_deg))
    cos, sin = np.cos(theta), np.sin(theta)
    # Rotate the content counter-clockwise on screen (y down): [x', y'] = [[c, s], [-s, c]] [x, y].
    rotation = np.array([[cos, sin], [-sin, cos]])
    linear = np.diag(output_size / size) @ rotation
    out_center = (output_size - 1.0) / 2.0
    translation = out_center - linear @ center
    return np.concatenate([linear, translation[:, None]], axis=1)


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine, as (2, 3).

    Example:
        >>> m = affine_matrix((10, 20), (8, 8), 30.0, (4, 4))
        >>> bool(np.allclose(apply_affine(apply_affine(np.ones((1, 2)), m), invert_affine(m)), 1.0))
        True
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (2, 3):
        raise ValueError(f"matrix must have shape (2, 3), got {matrix.shape}")
    return np.linalg.inv(homogeneous(matrix))[:2]


def homogeneous(matrix: np.ndarray) -> np.ndarray:
    """(2, 3) affine -> (3, 3) with last row (0, 0, 1) (the batch's ``"to_original"`` format).

    Example:
        >>> homogeneous(np.zeros((2, 3)))[2].tolist()
        [0.0, 0.0, 1.0]
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (2, 3):
        raise ValueError(f"matrix must have shape (2, 3), got {matrix.shape}")
    return np.concatenate([matrix, [[0.0, 0.0, 1.0]]], axis=0)


def apply_affine(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) (or (3, 3)) affine to points (..., 2) -> (..., 2).

    Example:
        >>> apply_affine(np.array([1.0, 2.0]), np.array([[2.0, 0, 1], [0, 1, -1]])).tolist()
        [3.0, 1.0]
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape not in ((2, 3), (3, 3)):
        raise ValueError(f"matrix must have shape (2, 3) or (3, 3), got {matrix.shape}")
    points = np.asarray(points, dtype=np.float64)
    if points.shape[-1] != 2:
        raise ValueError(f"points must have shape (..., 2), got {points.shape}")
    return points @ matrix[:2, :2].T + matrix[:2, 2]


def warp_image(image: np.ndarray, matrix: np.ndarray, output_size: Sequence[int]) -> np.ndarray:
    """Warp an image (H, W[, C]) with a (2, 3) original->output affine (bilinear, zero border).

    Returns an array of the input's dtype, (out_h, out_w[, C]). cv2 uses the same pixel-centre
    convention, so a point at ``p`` in ``image`` appears at ``apply_affine(p, matrix)`` in the output.

    Example:
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


def flip_keypoints(
    keypoints: np.ndarray,
    weights: np.ndarray,
    image_width: float,
    flip_pairs: Sequence[tuple[int, int]],
) -> tuple[np.ndarray, np.ndarray]:
    """Mirror keypoints horizontally and swap left/right joints.

    Args:
        keypoints: (K, 2) x, y in pixels of an image of width ``image_width``.
        weights: (K,) visibility weights (swapped along with the joints).
        image_width: width ``W`` of the image being flipped; ``x' = W - 1 - x`` (pixel centres).
        flip_pairs: (left, right) joint index pairs.

    Returns:
        (keypoints (K, 2), weights (K,)) as new arrays.

    Example:
        >>> kp, w = flip_keypoints(np.array([[0.0, 1.0], [3.0, 2.0]]), np.array([1.0, 0.0]), 10, [(0, 1)])
        >>> kp.tolist(), w.tolist()
        ([[6.0, 2.0], [9.0, 1.0]], [0.0, 1.0])
    """
    keypoints = np.array(keypoints, dtype=np.float64, copy=True)
    weights = np.array(weights, copy=True)
    if keypoints.ndim != 2 or keypoints.shape[1] < 2:
        raise ValueError(f"keypoints must have shape (K, 2), got {keypoints.shape}")
    if weights.shape[0] != keypoints.shape[0]:
        raise ValueError(f"weights must have shape (K,) = ({keypoints.shape[0]},), got {weights.shape}")
    num = keypoints.shape[0]
    order = np.arange(num)
    for left, right in flip_pairs:
        if not (0 <= left < num and 0 <= right < num):
            raise ValueError(f"flip_pairs entry {(left, right)} is out of range for K={num} keypoints")
        order[left], order[right] = right, left
    keypoints[:, 0] = float(image_width) - 1.0 - keypoints[:, 0]
    return keypoints[order], weights[order]


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
