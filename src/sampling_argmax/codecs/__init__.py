"""Codecs: coordinates between a task's original frame and its map, one object per task family.

Shared by the readers (encode: original -> map targets), the read-out (decode: map -> original through the
batch's ``to_original``) and ``predict`` (the same framing of a user's file):

* :mod:`~sampling_argmax.codecs.base`: the one coordinate convention, the flip rule, ``to_original_coords``;
* :mod:`~sampling_argmax.codecs.affine`: affine maps of a (rotated) box crop;
* :class:`~sampling_argmax.codecs.topdown.TopDownCodec`: top-down crop with flip (COCO, MTFL, own data);
* :class:`~sampling_argmax.codecs.volume.VolumeCoding`: 2D crop + root-relative depth volumes (Human3.6M);
* :mod:`~sampling_argmax.codecs.bscan`: OCT column flattening;
* :mod:`~sampling_argmax.codecs.points`: point-cloud normalization.
"""

from sampling_argmax.codecs.affine import affine_matrix, apply_affine, homogeneous, invert_affine
from sampling_argmax.codecs.base import flip_keypoints, inside_map, mirror_matrix, swap_pairs, to_original_coords
from sampling_argmax.codecs.bscan import FlatCrop, flatten_crop, frame_bscan
from sampling_argmax.codecs.points import cloud_sample, normalize_cloud
from sampling_argmax.codecs.topdown import TopDownCodec
from sampling_argmax.codecs.volume import VolumeCoding, apply_to_original

__all__ = [
    "affine_matrix", "apply_affine", "homogeneous", "invert_affine",
    "flip_keypoints", "inside_map", "mirror_matrix", "swap_pairs", "to_original_coords",
    "FlatCrop", "flatten_crop", "frame_bscan",
    "cloud_sample", "normalize_cloud",
    "TopDownCodec",
    "VolumeCoding", "apply_to_original",
]
