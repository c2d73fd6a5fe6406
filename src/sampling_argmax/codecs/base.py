"""The one coordinate convention of every task, and its converters.

* Map units: grid cells in x, y(, z) order, the centre of cell ``i`` at ``i``, so a map of ``n`` cells spans
  ``[-0.5, n - 0.5]`` (:func:`inside_map`); on point sets, the points' own coordinates.
* Original units: pixels of the original image (same pixel-centre rule), or the object's own units.
* ``to_original``: a float64 homogeneous matrix from map units to original units, per sample
  (B, dims+1, dims+1) or per keypoint (B, K, out+1, dims+1); :func:`to_original_coords` applies it.
* The flip rule: a horizontal mirror of an image or grid of width ``W`` is ``x -> W - 1 - x``
  (:func:`mirror_matrix`) and swaps the left/right keypoints of ``flip_pairs`` (:func:`swap_pairs`,
  :func:`flip_keypoints`).

Example:
    >>> import numpy as np
    >>> inside_map(np.array([[-0.5, 3.0], [2.0, 3.6]]), (4, 4)).tolist()
    [True, False]
    >>> swap_pairs(4, [(0, 3)])
    [3, 1, 2, 0]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["inside_map", "mirror_matrix", "swap_pairs", "flip_keypoints", "to_original_coords"]


def inside_map(target: np.ndarray, map_size_xyz: Sequence[int]) -> np.ndarray:
    """(K,) bool: every coordinate of a (K, dims) target lies in ``[-0.5, n - 0.5]`` of its axis."""
    sizes = np.asarray(map_size_xyz, dtype=np.float64)
    return np.all((target >= -0.5) & (target <= sizes - 0.5), axis=-1)


def mirror_matrix(width: float) -> np.ndarray:
    """(3, 3) horizontal mirror of an image or grid of ``width`` pixels/cells: x -> width - 1 - x."""
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def swap_pairs(num_keypoints: int, pairs: Sequence[Sequence[int]]) -> list[int]:
    """Keypoint order after a mirror: left and right of each pair exchanged."""
    order = list(range(num_keypoints))
    for left, right in pairs:
        if not (0 <= left < num_keypoints and 0 <= right < num_keypoints):
            raise ValueError(f"flip pair ({left}, {right}) is outside 0..{num_keypoints - 1}")
        order[left], order[right] = right, left
    return order


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


def to_original_coords(pred_grid: Tensor, to_original: Tensor | None) -> Tensor:
    """Map (B, K, dims) map coordinates to original units through homogeneous matrices.

    ``to_original``: (B, dims+1, dims+1) per sample, or (B, K, out+1, dims+1) per keypoint (a keypoint's own
    affine map into ``out`` original dimensions, e.g. OCT: crop row of A-scan c -> (column, original row)).
    Returns (B, K, dims) or (B, K, out).
    """
    if to_original is None:
        return pred_grid
    dims = pred_grid.shape[-1]
    per_sample = to_original.dim() == 3 and to_original.shape[-2:] == (dims + 1, dims + 1)
    per_keypoint = to_original.dim() == 4 and to_original.shape[1] == pred_grid.shape[1] and \
        to_original.shape[-1] == dims + 1 and to_original.shape[-2] >= 2
    if not (per_sample or per_keypoint):
        raise ValueError(
            f"batch['to_original'] has shape {tuple(to_original.shape)}; it must be (B, {dims + 1}, {dims + 1}) "
            f"per sample or (B, {pred_grid.shape[1]}, out+1, {dims + 1}) per keypoint for {dims}D coordinates"
        )
    matrix = to_original.to(torch.float64)  # the contract's precision: original pixels can be large
    if per_sample:
        matrix = matrix[:, None]
    out = (matrix[..., :-1, :dims] @ pred_grid.to(torch.float64)[..., None])[..., 0] + matrix[..., :-1, dims]
    return out.to(pred_grid.dtype)
