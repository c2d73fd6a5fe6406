"""Volume coding (Human3.6M, the synthetic 3D-pose task): joints <-> points of a K x D x H x W volume.

x, y are a joint's pixels in the ``map_size`` grid of the ``input_size`` crop around the person's box; z is its
depth relative to the root joint, ``depth_range`` mm over ``depth_bins`` cells. ``to_original`` maps a volume
point back to ``(u, v, dz)``: pixels of the original image and mm relative to the root.

Example:
    >>> import numpy as np
    >>> coding = VolumeCoding(input_size=256, map_size=64, depth_bins=64)
    >>> crop = coding.crop_matrix(center=(500.0, 500.0), side=400.0)
    >>> target = coding.encode(np.array([[500.0, 500.0]]), np.array([250.0]), crop)
    >>> target.round(2).tolist()  # box centre -> map centre; +250 mm -> 5/8 of the depth bins
    [[31.5, 31.5, 39.5]]
    >>> bool(np.allclose(apply_to_original(coding.to_original(crop), target), [[500.0, 500.0, 250.0]]))
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sampling_argmax.codecs.affine import affine_matrix, apply_affine, homogeneous, invert_affine

__all__ = ["VolumeCoding", "apply_to_original"]


def apply_to_original(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (K, 3) volume points through a (4, 4) ``to_original`` matrix."""
    return points @ matrix[:3, :3].T + matrix[:3, 3]


@dataclass(frozen=True)
class VolumeCoding:
    """Crop and volume geometry: ``input_size``² crops, ``map_size``² × ``depth_bins`` volumes.

    ``depth_range`` mm of root-relative depth span the depth bins, centred on the root: bin ``i`` holds
    ``dz`` around ``((i + 0.5) / D − 0.5) · depth_range``.
    """

    input_size: int = 256
    map_size: int = 64
    depth_bins: int = 64
    depth_range: float = 2000.0

    def __post_init__(self) -> None:
        if self.input_size < 1 or self.map_size < 1 or self.depth_bins < 1 or not self.depth_range > 0:
            raise ValueError(f"need input_size, map_size, depth_bins >= 1 and depth_range > 0, got {self}")

    @property
    def map_shape(self) -> tuple[int, int, int]:
        return (self.depth_bins, self.map_size, self.map_size)

    def crop_matrix(self, center: Sequence[float], side: float, rotation: float = 0.0) -> np.ndarray:
        """(2, 3) original pixels -> map cells for the square box of ``side`` px at ``center``."""
        return affine_matrix(center, (side, side), rotation, (self.map_size, self.map_size))

    def input_matrix(self, center: Sequence[float], side: float, rotation: float = 0.0) -> np.ndarray:
        """(2, 3) original pixels -> input-crop pixels for the same box."""
        return affine_matrix(center, (side, side), rotation, (self.input_size, self.input_size))

    def encode(self, uv: np.ndarray, dz: np.ndarray, crop: np.ndarray) -> np.ndarray:
        """(K, 3) volume points of joints at original pixels ``uv`` (K, 2), root-relative depth ``dz`` (K,) mm."""
        z = (np.asarray(dz, np.float64) / self.depth_range + 0.5) * self.depth_bins - 0.5
        return np.concatenate([apply_affine(uv, crop), z[:, None]], axis=1)

    def to_original(self, crop: np.ndarray) -> np.ndarray:
        """(4, 4) float64: volume points (x, y, z cells) -> (u, v pixels of the original image, dz mm)."""
        matrix = np.eye(4)
        back = homogeneous(invert_affine(crop))
        matrix[:2, :2], matrix[:2, 3] = back[:2, :2], back[:2, 2]
        step = self.depth_range / self.depth_bins
        matrix[2, 2], matrix[2, 3] = step, step / 2 - self.depth_range / 2
        return matrix
