"""PointNet++ (Qi et al., NeurIPS 2017) for per-point keypoint logits, in plain PyTorch (no compiled ops).

Set abstraction with multi-scale grouping (farthest point sampling, ball query, a shared MLP per scale,
max-pooling), a global abstraction, and feature propagation (inverse-distance interpolation from the 3
nearest coarse points, skip features, a shared MLP) back to every input point; a per-point head gives
``(B, K, N)`` logits: one map over the points per keypoint. The default sizes are the paper's
part-segmentation network (SA: 512 centres at radii 0.1/0.2/0.4, 128 at 0.4/0.8; FP 256-256, 256-128,
128-128). Deterministic: farthest point sampling starts at each cloud's first point and the ball query
takes the lowest-indexed neighbours, so a seed fixes everything.

The grouping builds ``(B, S, N)`` distance tables, which is fine for KeypointNet's 2,048 points (and the
reason there is no CUDA kernel to build).

Example:
    >>> net = PointNet2(num_keypoints=5, sa_npoints=[64, 16], sa_radii=[[0.2], [0.4]], sa_nsamples=[[8], [8]],
    ...                 sa_mlps=[[[16, 16]], [[32, 32]]], global_mlp=[64], fp_mlps=[[32], [32], [32]], head_width=32)
    >>> net(torch.rand(2, 256, 3)).shape
    torch.Size([2, 5, 256])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["PointNet2", "farthest_point_sample", "ball_query", "gather_points", "interpolate_features"]


def gather_points(values: Tensor, index: Tensor) -> Tensor:
    """``values`` (B, N, C) at ``index`` (B, *S) -> (B, *S, C)."""
    batch = values.shape[0]
    flat = index.reshape(batch, -1)
    out = torch.gather(values, 1, flat[..., None].expand(-1, -1, values.shape[-1]))
    return out.reshape(*index.shape, values.shape[-1])


def _square_distances(a: Tensor, b: Tensor) -> Tensor:
    """(B, S, 3), (B, N, 3) -> (B, S, N) squared Euclidean distances (clamped at 0)."""
    return (a.square().sum(-1)[:, :, None] + b.square().sum(-1)[:, None, :] - 2 * a @ b.transpose(1, 2)).clamp_min(0)


@torch.no_grad()
def farthest_point_sample(xyz: Tensor, npoint: int) -> Tensor:
    """``(B, npoint)`` indices: greedy farthest points of (B, N, 3), starting at index 0 (deterministic)."""
    batch, n, _ = xyz.shape
    if not 1 <= npoint <= n:
        raise ValueError(f"npoint={npoint} must be between 1 and the {n} points of the input")
    chosen = torch.zeros(batch, npoint, dtype=torch.long, device=xyz.device)
    nearest = torch.full((batch, n), float("inf"), device=xyz.device, dtype=xyz.dtype)
    last = torch.zeros(batch, dtype=torch.long, device=xyz.device)
    rows = torch.arange(batch, device=xyz.device)
    for i in range(npoint):
        chosen[:, i] = last
        nearest = torch.minimum(nearest, (xyz - xyz[rows, last][:, None]).square().sum(-1))
        last = nearest.argmax(-1)
    return chosen


@torch.no_grad()
def ball_query(xyz: Tensor, centers: Tensor, radius: float, nsample: int) -> Tensor:
    """``(B, S, nsample)``: the lowest-indexed points within ``radius`` of each centre, padded with the first.

    Every centre is a point of ``xyz`` (farthest point sampling), so each ball holds at least one point.
    """
    n = xyz.shape[1]
    inside = _square_distances(centers, xyz) <= radius * radius  # (B, S, N)
    candidates = torch.where(inside, torch.arange(n, device=xyz.device), n)
    k = min(nsample, n)
    index = candidates.topk(k, dim=-1, largest=False, sorted=True).values  # lowest indices first, n = empty
    first = index[..., :1]
    index = torch.where(index == n, first, index)
    if k < nsample:
        index = torch.cat([index, first.expand(*first.shape[:-1], nsample - k)], -1)
    return index


def interpolate_features(xyz: Tensor, coarse_xyz: Tensor, coarse_features: Tensor, k: int = 3) -> Tensor:
    """Features (B, S, C) at (B, S, 3) -> (B, N, C) at (B, N, 3): inverse-distance weights of the k nearest."""
    if coarse_xyz.shape[1] == 1:
        return coarse_features.expand(-1, xyz.shape[1], -1)
    k = min(k, coarse_xyz.shape[1])
    distance, index = _square_distances(xyz, coarse_xyz).topk(k, dim=-1, largest=False)  # (B, N, k)
    # clamp, not "+ 1e-8": the ONNX exporter's optimizer drops the tiny addend, and a point that is one of the
    # coarse centres (distance 0) then gets weight inf and NaN features (tests/training/test_export_tasks.py)
    weight = 1.0 / distance.sqrt().clamp_min(1e-8)
    weight = weight / weight.sum(-1, keepdim=True)
    return (gather_points(coarse_features, index) * weight[..., None]).sum(-2)


def _mlp(channels: Sequence[int], conv: type[nn.Module], norm: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        layers += [conv(c_in, c_out, 1, bias=False), norm(c_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class SetAbstraction(nn.Module):
    """Multi-scale grouping: S farthest centres, one ball and shared MLP per radius, max-pooled, concatenated."""

    def __init__(self, npoint: int, radii: Sequence[float], nsamples: Sequence[int], mlps: Sequence[Sequence[int]],
                 in_channels: int) -> None:
        super().__init__()
        if not len(radii) == len(nsamples) == len(mlps) >= 1:
            raise ValueError(f"a set abstraction needs one radius, nsample and mlp per scale; got {len(radii)} radii, "
                             f"{len(nsamples)} nsamples, {len(mlps)} mlps")
        self.npoint, self.radii, self.nsamples = int(npoint), [float(r) for r in radii], [int(s) for s in nsamples]
        self.branches = nn.ModuleList(_mlp([in_channels + 3, *mlp], nn.Conv2d, nn.BatchNorm2d) for mlp in mlps)
        self.out_channels = sum(mlp[-1] for mlp in mlps)

    def forward(self, xyz: Tensor, features: Tensor | None) -> tuple[Tensor, Tensor]:
        """xyz (B, N, 3), features (B, N, C) or None -> centres (B, S, 3), features (B, S, C_out)."""
        centers = gather_points(xyz, farthest_point_sample(xyz, min(self.npoint, xyz.shape[1])))
        pooled = []
        for radius, nsample, branch in zip(self.radii, self.nsamples, self.branches):
            index = ball_query(xyz, centers, radius, nsample)  # (B, S, ns)
            grouped = gather_points(xyz, index) - centers[:, :, None]  # local coordinates
            if features is not None:
                grouped = torch.cat([grouped, gather_points(features, index)], -1)
            out = branch(grouped.permute(0, 3, 1, 2))  # (B, C, S, ns)
            pooled.append(out.amax(-1))
        return centers, torch.cat(pooled, 1).transpose(1, 2)


class PointNet2(nn.Module):
    """PointNet++ MSG segmentation network with K per-point outputs: (B, N, 3 + C) -> logits (B, K, N).

    Args:
        num_keypoints: K, maps over the points.
        in_channels: per-point features after x, y, z (0 = coordinates only, KeypointNet's input).
        sa_npoints: centres per set-abstraction level.
        sa_radii, sa_nsamples, sa_mlps: per level, per scale: ball radius, points per ball, MLP widths.
        global_mlp: widths of the global (group-all) abstraction.
        fp_mlps: feature-propagation widths, coarsest first: one for the global level and one per
            set-abstraction level (``len(sa_npoints) + 1`` lists).
        head_width: width of the per-point head before the K outputs.
        dropout: dropout in the head (paper network: 0.5).
    """

    def __init__(
        self,
        num_keypoints: int,
        in_channels: int = 0,
        sa_npoints: Sequence[int] = (512, 128),
        sa_radii: Sequence[Sequence[float]] = ((0.1, 0.2, 0.4), (0.4, 0.8)),
        sa_nsamples: Sequence[Sequence[int]] = ((32, 64, 128), (64, 128)),
        sa_mlps: Sequence[Sequence[Sequence[int]]] = (((32, 32, 64), (64, 64, 128), (64, 96, 128)),
                                                     ((128, 128, 256), (128, 196, 256))),
        global_mlp: Sequence[int] = (256, 512, 1024),
        fp_mlps: Sequence[Sequence[int]] = ((256, 256), (256, 128), (128, 128)),
        head_width: int = 128,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if num_keypoints < 1 or in_channels < 0:
            raise ValueError(f"need num_keypoints >= 1 and in_channels >= 0, got {num_keypoints}, {in_channels}")
        levels = len(sa_npoints)
        if not (len(sa_radii) == len(sa_nsamples) == len(sa_mlps) == levels >= 1):
            raise ValueError(f"sa_npoints, sa_radii, sa_nsamples and sa_mlps need one entry per level; got "
                             f"{levels}, {len(sa_radii)}, {len(sa_nsamples)}, {len(sa_mlps)}")
        if len(fp_mlps) != levels + 1 or not all(fp_mlps) or not global_mlp:
            raise ValueError(f"fp_mlps needs {levels + 1} non-empty width lists (global level + one per set "
                             f"abstraction), got {len(fp_mlps)}; global_mlp must be non-empty")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout={dropout} must be in [0, 1)")
        self.num_keypoints, self.in_channels = int(num_keypoints), int(in_channels)
        self.sa = nn.ModuleList()
        channels = [in_channels]  # feature channels of level 0 (input), 1, ..., levels
        for npoint, radii, nsamples, mlps in zip(sa_npoints, sa_radii, sa_nsamples, sa_mlps):
            layer = SetAbstraction(npoint, radii, nsamples, mlps, channels[-1])
            self.sa.append(layer)
            channels.append(layer.out_channels)
        self.global_sa = _mlp([channels[-1] + 3, *global_mlp], nn.Conv1d, nn.BatchNorm1d)
        self.fp = nn.ModuleList()
        coarse = global_mlp[-1]
        for level, widths in zip(range(levels, -1, -1), fp_mlps):
            skip = channels[level] + (3 if level == 0 else 0)  # the input level also sees its coordinates
            self.fp.append(_mlp([coarse + skip, *widths], nn.Conv1d, nn.BatchNorm1d))
            coarse = widths[-1]
        self.head = nn.Sequential(
            *_mlp([coarse, head_width], nn.Conv1d, nn.BatchNorm1d), nn.Dropout(dropout),
            nn.Conv1d(head_width, num_keypoints, 1),
        )

    def forward(self, points: Tensor) -> Tensor:
        """points (B, N, 3 + in_channels) -> logits (B, K, N)."""
        if points.dim() != 3 or points.shape[-1] != 3 + self.in_channels:
            raise ValueError(f"PointNet2 expects points (B, N, {3 + self.in_channels}), got {tuple(points.shape)}")
        xyz = points[..., :3].contiguous()
        features = points[..., 3:] if self.in_channels else None
        levels = [(xyz, features)]
        for layer in self.sa:
            levels.append(layer(*levels[-1]))
        top_xyz, top_features = levels[-1]
        pooled = self.global_sa(torch.cat([top_xyz, top_features], -1).transpose(1, 2)).amax(-1)  # (B, C)
        coarse_xyz, coarse = top_xyz.mean(1, keepdim=True), pooled[:, None]  # one global "point"
        for (level_xyz, level_features), mlp in zip(reversed(levels), self.fp):
            up = interpolate_features(level_xyz, coarse_xyz, coarse)  # (B, N_level, C)
            skip = level_features if level_xyz is not xyz else torch.cat(
                [xyz] + ([level_features] if level_features is not None else []), -1)
            merged = up if skip is None else torch.cat([up, skip], -1)
            coarse = mlp(merged.transpose(1, 2)).transpose(1, 2)
            coarse_xyz = level_xyz
        return self.head(coarse.transpose(1, 2))
