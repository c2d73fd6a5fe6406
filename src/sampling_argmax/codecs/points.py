"""Point-cloud coding (KeypointNet, Skeleton Merger, synthetic shapes): the normalization of a cloud and its
map back to the file's coordinates. Keypoints of a point-set task are in the normalized cloud's units.

Example:
    >>> import numpy as np
    >>> sample = cloud_sample(np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]]), "unit_sphere")
    >>> sample["points"].tolist(), sample["to_original"][0].tolist()
    ([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], [1.0, 0.0, 0.0, 1.0])
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

__all__ = ["Normalize", "cloud_sample", "normalize_cloud"]


Normalize = Literal["none", "unit_sphere"]


def cloud_sample(cloud: np.ndarray, mode: Normalize) -> dict:
    """The ``prepare`` sample of a cloud: normalized points and the (4, 4) map back to the file's coordinates."""
    points = normalize_cloud(cloud, mode)
    to_original = np.eye(4)
    if mode != "none":  # points = (cloud - centre) / scale  ->  cloud = scale * points + centre
        centre = cloud.mean(0)
        scale = float(np.linalg.norm(cloud - centre, axis=1).max())
        to_original[:3, :3] *= scale
        to_original[:3, 3] = centre
    return {"points": torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32)),
            "to_original": torch.from_numpy(to_original)}


def normalize_cloud(points: np.ndarray, mode: Normalize) -> np.ndarray:
    """``"none"``: as stored (ShapeNet's frame); ``"unit_sphere"``: minus the mean, over the largest norm."""
    if mode == "none":
        return points
    centred = points - points.mean(0)
    return centred / max(float(np.linalg.norm(centred, axis=1).max()), 1e-12)
