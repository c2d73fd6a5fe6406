"""Unsupervised 3D keypoints in the manner of Skeleton Merger (Shi et al., CVPR 2021), written from its description.

A PointNet++ backbone scores every point of a cloud for K keypoints: logits ``(B, K, N)``, read out by any
method on point sets (Soft, V.R., D.R., Samp. Gau.). A skeleton decoder joins every pair of keypoints by a
segment of ``points_per_segment`` points, moved by learned offsets (one per segment point, shared by all
objects: the class's typical deviation from a straight bar, at most ``max_offset`` per axis so that they add
local detail and the keypoints have to span the shape), and switches each segment on or off with an
activation strength in (0, 1) predicted from the cloud's global feature (a chair without armrests turns its
armrest segments off). No keypoint label is used: the keypoints are whatever makes the skeleton reconstruct
the cloud, scored by two composite Chamfer terms (:func:`composite_chamfer`):

* **reconstruction** (fidelity): every cloud point is near an *active* segment -- its distance to segment
  ``p`` divided by the strength ``a_p``, minimum over segments, mean over points;
* **coverage**: every segment point is near the cloud -- the mean distance of segment ``p``'s points to the
  cloud, weighted by ``a_p``, mean over segments.

The first pushes strengths up on the segments that explain points, the second down on the segments through
empty space. Distances are Euclidean (not squared), in object units, the scale of the ℓ1 loss the paper's
regularizer weights were tuned against.

With sampling-argmax the decoder is fed each relaxed sample of the keypoints and the losses are averaged over
the samples (the expected loss); with the soft-argmax methods it is fed the expectation
(:meth:`~sampling_argmax.methods.Method.keypoint_samples`). V.R. and D.R. add their label-free
regularizer (:meth:`~sampling_argmax.methods.Method.label_free_regularizer`).

Example:
    >>> from sampling_argmax.methods import Objective, paper_method
    >>> model = SkeletonMerger(PointNet2(16, sa_npoints=(16,), sa_radii=((0.4,),), sa_nsamples=((8,),),
    ...                        sa_mlps=(((16,),),), global_mlp=(16,), fp_mlps=((16,), (16,)), head_width=16),
    ...                        num_keypoints=4, points_per_segment=5)
    >>> cloud = torch.rand(2, 64, 3)
    >>> model(cloud).shape, model.skeleton(torch.rand(2, 4, 3)).shape
    (torch.Size([2, 4, 64]), torch.Size([2, 6, 5, 3]))
    >>> loss = SkeletonObjective()(model, paper_method("samp_gau", num_samples=2), {"points": cloud})
    >>> loss.backward()
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from sampling_argmax.methods import Method, Objective
from sampling_argmax.models.pointnet2 import PointNet2

__all__ = ["SkeletonMerger", "SkeletonObjective", "composite_chamfer", "segment_pairs"]


def segment_pairs(num_keypoints: int, device: torch.device | None = None) -> Tensor:
    """(2, K(K-1)/2): the keypoint pairs (i < j) joined by a segment, row-major (0-1, 0-2, ..., 1-2, ...)."""
    return torch.triu_indices(num_keypoints, num_keypoints, 1, device=device)


class SkeletonMerger(nn.Module):
    """Keypoint maps over the points and a skeleton decoder: points (B, N, 3) -> logits (B, K, N).

    Args:
        backbone: a per-point network (B, N, 3) -> features (B, C, N), e.g. ``PointNet2(num_keypoints=C)``
            (its K outputs used as C feature channels).
        num_keypoints: K.
        points_per_segment: points placed along each of the K(K-1)/2 segments (ends included).
        strength_width: hidden width of the activation-strength head.
        max_offset: bound of the learned offsets per axis, object units (``max_offset · tanh``); free offsets
            would let a few segments bend into any shape, leaving most keypoints without a role.
    """

    def __init__(self, backbone: nn.Module, num_keypoints: int = 10, points_per_segment: int = 16,
                 strength_width: int = 128, max_offset: float = 0.05) -> None:
        super().__init__()
        if not isinstance(backbone, nn.Module):
            raise ValueError(f"backbone must be an nn.Module mapping (B, N, 3) to (B, C, N), got {type(backbone).__name__}")
        if num_keypoints < 2 or points_per_segment < 2 or strength_width < 1:
            raise ValueError(f"need num_keypoints >= 2 (a skeleton joins pairs), points_per_segment >= 2 and "
                             f"strength_width >= 1; got {num_keypoints}, {points_per_segment}, {strength_width}")
        if not max_offset >= 0:
            raise ValueError(f"max_offset={max_offset} must be >= 0 (object units; 0 = straight segments)")
        channels = getattr(backbone, "num_keypoints", None)
        if not isinstance(channels, int):
            raise ValueError("backbone must say its output channels as .num_keypoints (e.g. PointNet2(num_keypoints=C))")
        self.num_keypoints, self.points_per_segment = int(num_keypoints), int(points_per_segment)
        self.max_offset = float(max_offset)
        pairs = num_keypoints * (num_keypoints - 1) // 2
        self.backbone = backbone
        self.keypoint_head = nn.Conv1d(channels, num_keypoints, 1)
        self.strength_head = nn.Sequential(nn.Linear(channels, strength_width), nn.ReLU(),
                                           nn.Linear(strength_width, pairs))
        self.raw_offsets = nn.Parameter(torch.zeros(pairs, points_per_segment, 3))

    @property
    def offsets(self) -> Tensor:
        """The learned offsets (K(K-1)/2, points_per_segment, 3), each coordinate within ±max_offset."""
        return self.max_offset * torch.tanh(self.raw_offsets)

    def encode(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """points (B, N, 3) -> keypoint logits (B, K, N) and segment activation strengths (B, K(K-1)/2) in (0, 1)."""
        features = torch.relu(self.backbone(points))  # (B, C, N)
        return self.keypoint_head(features), torch.sigmoid(self.strength_head(features.amax(-1)))

    def forward(self, points: Tensor) -> Tensor:
        return self.encode(points)[0]

    def skeleton(self, keypoints: Tensor) -> Tensor:
        """keypoints (..., K, 3) -> segment points (..., K(K-1)/2, points_per_segment, 3), offsets added."""
        if keypoints.shape[-2:] != (self.num_keypoints, 3):
            raise ValueError(f"keypoints {tuple(keypoints.shape)} must be (..., {self.num_keypoints}, 3)")
        first, second = segment_pairs(self.num_keypoints, keypoints.device)
        start, end = keypoints[..., first, None, :], keypoints[..., second, None, :]  # (..., P, 1, 3)
        t = torch.linspace(0, 1, self.points_per_segment, device=keypoints.device, dtype=keypoints.dtype)[:, None]
        return start + t * (end - start) + self.offsets.to(keypoints.dtype)


def composite_chamfer(cloud: Tensor, skeleton: Tensor, strength: Tensor,
                      min_strength: float = 1e-3) -> tuple[Tensor, Tensor]:
    """Reconstruction and coverage losses of skeletons against their clouds (see the module docstring).

    Both terms are minima of distances, and a minimum's gradient is the gradient of the distance it picks. So the
    (B, N, S x P x L) distances of every cloud point to every skeleton point are computed without autograd, one
    skeleton sample at a time, only to pick, per cloud point and sample, the segment and segment point of its
    reconstruction term and, per skeleton point, its nearest cloud point; the picked distances are then computed
    again with autograd, (B, N, S) and (B, S, P, L) of them. Values and gradients are those of the dense
    definition (``cdist``, ``amin``; tested), except at exact ties, where the dense gradient is split among the
    tied entries and this one goes to one of them; time and memory are a fraction of the dense one's, whose
    backward runs over all B N S P L distances.

    Args:
        cloud: (B, N, 3).
        skeleton: (B, S, P, L, 3): S skeletons per cloud (keypoint samples), P segments of L points.
        strength: (B, P) activation strengths in (0, 1]; clamped at ``min_strength`` in the reconstruction term.

    Returns:
        reconstruction, coverage: scalars, means over the batch and the S skeletons.
    """
    batch, samples, pairs, length, _ = skeleton.shape
    if cloud.dim() != 3 or cloud.shape[0] != batch or strength.shape != (batch, pairs):
        raise ValueError(f"cloud {tuple(cloud.shape)}, skeleton {tuple(skeleton.shape)} and strength "
                         f"{tuple(strength.shape)} must be (B, N, 3), (B, S, P, L, 3) and (B, P)")
    points = cloud.shape[1]
    divisor = strength.clamp_min(min_strength)  # (B, P)
    with torch.no_grad():
        picked, nearest = [], []  # per sample: (B, N) flat skeleton index of the picked point; (B, P L) cloud index
        for s in range(samples):
            segments = skeleton[:, s].detach()  # (B, P, L, 3)
            square = _squared_distances(segments.reshape(batch, pairs * length, 3), cloud)  # (B, P L, N)
            nearest.append(square.argmin(-1))
            to_segment = square.view(batch, pairs, length, points).amin(2).transpose(1, 2).contiguous()  # (B, N, P)
            segment = to_segment.clamp_min_(0).sqrt_().div_(divisor[:, None]).argmin(-1)  # (B, N)
            candidates = segments.gather(1, segment[..., None, None].expand(-1, -1, length, 3))  # (B, N, L, 3)
            point = (candidates - cloud[:, :, None]).square().sum(-1).argmin(-1)  # exact distances
            picked.append((s * pairs + segment) * length + point)
        picked = torch.stack(picked, -1)  # (B, N, S)
        nearest = torch.cat(nearest, -1)  # (B, S P L)
    flat = skeleton.reshape(batch, samples * pairs * length, 3)
    chosen = flat.gather(1, picked.view(batch, -1, 1).expand(-1, -1, 3)).view(batch, points, samples, 3)
    segment_of_pick = torch.div(picked, length, rounding_mode="floor") % pairs  # (B, N, S)
    reconstruction = ((cloud[:, :, None] - chosen).norm(dim=-1)
                      / divisor.gather(1, segment_of_pick.view(batch, -1)).view(batch, points, samples)).mean()
    near = cloud.gather(1, nearest[..., None].expand(-1, -1, 3))  # (B, S P L, 3)
    to_cloud = (flat - near).norm(dim=-1).view(batch, samples, pairs, length).mean(-1)  # (B, S, P)
    coverage = (strength[:, None] * to_cloud).mean()
    return reconstruction, coverage


def _squared_distances(a: Tensor, b: Tensor) -> Tensor:
    """|a_i - b_j|^2 for a (B, M, 3), b (B, N, 3): (B, M, N), as |a|^2 + |b|^2 - 2 a.b (one batched matmul; a few
    units of rounding of |a|^2 -- used only to pick minima, whose distances are then computed exactly)."""
    return torch.baddbmm(b.square().sum(-1)[:, None, :], a, b.transpose(1, 2), alpha=-2.0).add_(
        a.square().sum(-1)[..., None])


class SkeletonObjective(Objective):
    """The label-free loss of :class:`SkeletonMerger`: reconstruction + coverage (+ the method's regularizer).

    Args:
        reconstruction_weight, coverage_weight: weights of the two composite Chamfer terms.
    """

    def __init__(self, reconstruction_weight: float = 1.0, coverage_weight: float = 1.0) -> None:
        if not (reconstruction_weight > 0 and coverage_weight >= 0):
            raise ValueError(f"need reconstruction_weight > 0 and coverage_weight >= 0, got "
                             f"{reconstruction_weight}, {coverage_weight}")
        self.reconstruction_weight, self.coverage_weight = float(reconstruction_weight), float(coverage_weight)

    def losses(self, model: nn.Module, method: Method, batch: dict[str, Any]) -> dict[str, Tensor]:
        """The terms: ``reconstruction``, ``coverage``, ``regularizer`` (scalars)."""
        if not isinstance(model, SkeletonMerger):
            raise ValueError(f"SkeletonObjective trains a sampling_argmax.models.SkeletonMerger, got {type(model).__name__}")
        points = batch["points"]
        logits, strength = model.encode(points)
        keypoints = method.keypoint_samples(logits, points)  # (B, K, S, 3)
        skeleton = model.skeleton(keypoints.transpose(1, 2).to(points.dtype))  # (B, S, P, L, 3)
        reconstruction, coverage = composite_chamfer(points, skeleton, strength)
        return {"reconstruction": reconstruction, "coverage": coverage,
                "regularizer": method.label_free_regularizer(logits, points)}

    def __call__(self, model: nn.Module, method: Method, batch: dict[str, Any]) -> Tensor:
        terms = self.losses(model, method, batch)
        return (self.reconstruction_weight * terms["reconstruction"] + self.coverage_weight * terms["coverage"]
                + terms["regularizer"])
