"""Affine maps between an original image and a crop of it (the top-down framing of every image task).

Pixel-centre convention (the same as the grid-cell convention of the operators): the centre of
pixel ``i`` is at coordinate ``i``, so an image of width ``W`` spans ``[-0.5, W - 0.5]``.

A crop is described by a source box (``center``, ``size = (w, h)`` in original pixels) and an
optional rotation about the box centre. :func:`affine_matrix` maps the box edges onto the edges
of the output image, so the box centre lands on ``((out_w - 1) / 2, (out_h - 1) / 2)``. The same
function with ``output_size`` = map size gives the original-pixels -> map-cells mapping;
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

import numpy as np

__all__ = ["affine_matrix", "invert_affine", "apply_affine", "homogeneous"]


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
