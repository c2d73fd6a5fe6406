"""Top-down crop coding (COCO, MTFL, your own COCO-format or CSV keypoints): a box of the original image ->
the model input and the map, with the flip rule and rotation.

A frame is a source box (``center``, ``size = (w, h)`` original pixels) rotated by ``rotation`` degrees about
its centre, optionally mirrored first (the flip rule of :mod:`~sampling_argmax.codecs.base`: the whole image
is mirrored, then cropped; left/right keypoints swap). :meth:`TopDownCodec.encode` turns original keypoints into
map targets and weights; :meth:`TopDownCodec.to_original` is the batch's ``to_original`` (map cells -> original
pixels), which the read-out applies.

Example:
    >>> import numpy as np
    >>> codec = TopDownCodec(input_size=(64, 64), map_size=(16, 16), flip_pairs=((0, 1),))
    >>> frame = codec.frame(center=(49.5, 49.5), size=(100.0, 100.0))
    >>> target, weight = codec.encode(np.array([[49.5, 49.5], [-0.5, -0.5], [150.0, 50.0]]), np.ones(3), frame)
    >>> target[:2].tolist(), weight.tolist()  # the box edge -> the map edge; outside the map: weight 0
    ([[7.5, 7.5], [-0.5, -0.5]], [1.0, 1.0, 0.0])
    >>> codec.to_original(frame) @ [7.5, 7.5, 1.0]
    array([49.5, 49.5,  1. ])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sampling_argmax.codecs.affine import affine_matrix, apply_affine, homogeneous
from sampling_argmax.codecs.base import inside_map, mirror_matrix, swap_pairs

__all__ = ["Frame", "TopDownCodec"]


@dataclass(frozen=True)
class Frame:
    """One crop: ``to_input`` and ``to_map`` (3, 3) float64 from original pixels (mirror included), the box
    ``center`` (2,) in the (mirrored) original image, ``size`` (w, h), ``rotation`` degrees, ``flipped``."""

    to_input: np.ndarray
    to_map: np.ndarray
    center: np.ndarray
    size: np.ndarray
    rotation: float
    flipped: bool


@dataclass(frozen=True)
class TopDownCodec:
    """Original pixels <-> input pixels and map cells of a top-down crop.

    Args:
        input_size: (w, h) of the model input in pixels.
        map_size: (w, h) of the output map in cells.
        flip_pairs: (left, right) keypoint index pairs swapped by a flip.
    """

    input_size: tuple[int, int]
    map_size: tuple[int, int]
    flip_pairs: tuple[tuple[int, int], ...] = field(default=())

    def __post_init__(self) -> None:
        for name in ("input_size", "map_size"):
            value = tuple(int(v) for v in np.broadcast_to(np.asarray(getattr(self, name)), (2,)))
            if min(value) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r} must be (w, h) >= 1")
            object.__setattr__(self, name, value)
        object.__setattr__(self, "flip_pairs", tuple((int(a), int(b)) for a, b in self.flip_pairs))

    def frame(self, center: Sequence[float] | np.ndarray, size: Sequence[float] | np.ndarray, rotation: float = 0.0,
              flip_width: float | None = None) -> Frame:
        """The crop of the box (``center``, ``size``) rotated by ``rotation`` degrees; with ``flip_width`` (the
        original image's width) the image is mirrored first and the box centre with it."""
        center = np.asarray(center, dtype=np.float64)
        mirror = np.eye(3)
        if flip_width is not None:
            mirror = mirror_matrix(flip_width)
            center = apply_affine(center, mirror)
        to_input = homogeneous(affine_matrix(center, size, rotation, self.input_size)) @ mirror
        to_map = homogeneous(affine_matrix(center, size, rotation, self.map_size)) @ mirror
        return Frame(to_input, to_map, center, np.asarray(size, dtype=np.float64), float(rotation),
                     flip_width is not None)

    def encode(self, keypoints: np.ndarray, visible: np.ndarray, frame: Frame) -> tuple[np.ndarray, np.ndarray]:
        """(K, 2) original pixels and (K,) visibility -> (target (K, 2) float32 map cells, weight (K,) float32).

        A flipped frame swaps the left/right keypoints; a keypoint outside the map gets weight 0.
        """
        keypoints = np.asarray(keypoints, dtype=np.float64)
        visible = np.asarray(visible, dtype=np.float32)
        target = apply_affine(keypoints, frame.to_map)
        if frame.flipped:
            order = swap_pairs(len(keypoints), self.flip_pairs)
            target, visible = target[order], visible[order]
        weight = visible * inside_map(target, self.map_size)
        return target.astype(np.float32), weight.astype(np.float32)

    @staticmethod
    def to_original(frame: Frame) -> np.ndarray:
        """(3, 3) float64 map cells -> original pixels: the batch's ``to_original``."""
        return np.linalg.inv(frame.to_map)
