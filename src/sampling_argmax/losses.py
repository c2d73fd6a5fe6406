"""Per-keypoint localization losses that combine with visibility weights (dsntnn-like).

Every loss first computes one value per keypoint, ``(B, K)``, then reduces with
:func:`reduce_keypoints`: ``"none"`` keeps ``(B, K)``, ``"sum"`` sums ``weight * loss`` and
``"mean"`` divides that sum by ``weight.sum()`` (0, not NaN, when every weight is 0). A keypoint
with weight 0 neither changes the loss nor receives gradient, even if its target is NaN (masked with
``torch.where``, never multiplied).

Inputs are validated here, at the public functions (:mod:`sampling_argmax._checks`): weights must be
finite and >= 0, targets finite wherever the weight is non-zero, logits and points finite -- each a
``ValueError`` naming the argument; the data checks cost one pass and one sync per call and are turned
off with :func:`sampling_argmax.set_input_checks`. The ``_``-prefixed versions skip them (methods call
those after validating once).

Units follow the package convention: grid coordinates in cells (centre of cell ``i`` at ``i``),
point-set coordinates in the units of ``points``. Regularizer targets are variances in those
units squared. For point sets the default target variance is ``POINT_TARGET_VARIANCE = 4e-4``:
the grid default of 4 cell² with the "cell" replaced by ``POINT_CELL`` = 0.01, the mean distance between
neighbouring points of a normalized 2048-point object (the scale the paper uses for its
point-cloud Gaussian basis, σ = 0.01).

The variance regularizer on grids is by default on the *normalized* scale of the methods' coordinate
loss (each axis divided by its size): Σ_axes ((Var_a − σ_t²) / n_a²)²; ``scale="cell"`` gives the
paper's literal cell² form Σ_axes (Var_a − σ_t²)², which with weight 1 swamps the coordinate loss
(see docs/methods.md).

Example:
    >>> import torch
    >>> logits = torch.zeros(2, 3, 16, 16, requires_grad=True)
    >>> target = torch.full((2, 3, 2), 7.5)
    >>> weight = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    >>> variance_loss(logits, 4.0, weight).shape, distribution_loss(logits, target, weight=weight).shape
    (torch.Size([]), torch.Size([]))
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from sampling_argmax._checks import (
    REDUCTIONS,
    check_choice,
    check_data,
    check_logits,
    check_nonnegative,
    check_p,
    check_per_keypoint,
    check_points,
    check_prediction,
    check_positive,
    check_target,
    check_weight,
)
from sampling_argmax.coords import POINT_CELL, cell_centers, grid_size_xyz
from sampling_argmax.functional import _grid_variance

__all__ = [
    "GRID_TARGET_VARIANCE",
    "POINT_TARGET_VARIANCE",
    "VARIANCE_SCALES",
    "coordinate_loss",
    "distribution_loss",
    "distribution_loss_points",
    "reduce_keypoints",
    "variance_loss",
    "variance_loss_points",
]

GRID_TARGET_VARIANCE = 4.0
"""σ_t² of the paper's regularizers on grids, in cell² (heatmap pixels²)."""

POINT_TARGET_VARIANCE = GRID_TARGET_VARIANCE * POINT_CELL**2
"""σ_t² for point sets: 4 × 0.01² = 4e-4, 0.01 (``POINT_CELL``) being the neighbour spacing of a normalized
object."""

VARIANCE_SCALES = ("normalized", "cell")
"""Scales of the grid variance regularizer: per axis ``(Var − σ_t²) / n²`` (the default, the coordinate loss's
scale), or ``Var − σ_t²`` in cell² (the paper's literal statement)."""

Reduction = Literal["none", "mean", "sum"]
Divergence = Literal["js", "kl"]
VarianceScale = Literal["normalized", "cell"]
DIVERGENCES = ("js", "kl")


def reduce_keypoints(loss: Tensor, weight: Tensor | None = None, reduction: Reduction = "mean") -> Tensor:
    """Visibility-weighted reduction of a per-keypoint loss.

    Args:
        loss: ``(B, K)`` per-keypoint values.
        weight: ``(B, K)`` visibility (0 = ignore), finite and >= 0, or None for all ones.
        reduction: ``"none"`` -> ``weight * loss`` ``(B, K)``; ``"sum"`` -> its sum;
            ``"mean"`` -> its sum / ``weight.sum()``, 0 when the weights sum to 0.

    Masked keypoints are replaced (not multiplied) by 0 so a NaN/inf there cannot leak into the
    loss or its gradient.

    Example:
        >>> reduce_keypoints(torch.tensor([[1.0, 3.0, 100.0]]), torch.tensor([[1.0, 1.0, 0.0]]))
        tensor(2.)
    """
    check_choice(reduction, "reduction", REDUCTIONS)
    check_per_keypoint(loss)
    w = check_weight(weight, loss.shape, loss)
    check_data(weight=w)
    return _reduce(loss, w, reduction)


def _reduce(loss: Tensor, w: Tensor | None, reduction: str) -> Tensor:
    if w is None:
        w = torch.ones(loss.shape, dtype=torch.float32, device=loss.device)
    weighted = torch.where(w != 0, loss * w, torch.zeros((), dtype=loss.dtype, device=loss.device))
    if reduction == "none":
        return weighted
    total = weighted.sum()
    if reduction == "sum":
        return total
    # clamp keeps an all-masked batch at exactly 0 (0 / 1) instead of 0 / 0 = NaN
    return total / w.sum().clamp_min(torch.finfo(torch.float32).tiny)


def _mask_targets(target: Tensor, weight: Tensor | None) -> Tensor:
    """Zero the targets of masked keypoints (unlabeled targets may be NaN or placeholders)."""
    if weight is None:
        return target
    return torch.where((weight != 0)[..., None], target, torch.zeros((), dtype=target.dtype, device=target.device))


def coordinate_loss(
    pred: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    p: Literal[1, 2] = 1,
    reduction: Reduction = "mean",
) -> Tensor:
    """Distance between predicted coordinates (or samples) and targets, per keypoint.

    Args:
        pred: ``(B, K, dims)`` coordinates, or ``(B, K, S, dims)`` samples; for samples the
            per-keypoint loss is the mean over S of the per-sample distance (the paper's
            Monte-Carlo estimate of the expected error).
        target: ``(B, K, dims)``, same units as ``pred``.
        weight: ``(B, K)`` visibility, or None.
        p: 1 -> ℓ1, Σ_axes |pred − target| (the paper's d); 2 -> Euclidean distance ‖·‖₂.
        reduction: see :func:`reduce_keypoints`.

    Returns:
        Scalar, or ``(B, K)`` for ``reduction="none"``.

    Example:
        >>> pred = torch.tensor([[[1.0, 2.0], [0.0, 0.0]]])      # (B=1, K=2, 2)
        >>> target = torch.tensor([[[0.0, 0.0], [3.0, 4.0]]])
        >>> coordinate_loss(pred, target, reduction="none")
        tensor([[3., 7.]])
        >>> coordinate_loss(pred, target, p=2, reduction="none")
        tensor([[2.2361, 5.0000]])
    """
    check_p(p)
    check_prediction(pred, target)
    check_target(target, tuple(target.shape[:2]), target.shape[2], "pred")
    w = check_weight(weight, target.shape[:2], target)
    check_choice(reduction, "reduction", REDUCTIONS)
    check_data(target=target, weight=w)
    return _coordinate_loss(pred, target, w, p, reduction)


def _coordinate_loss(pred: Tensor, target: Tensor, weight: Tensor | None, p: int, reduction: str) -> Tensor:
    target = _mask_targets(target, weight)
    diff = pred - (target if pred.ndim == 3 else target[:, :, None])
    if p == 1:
        dist = diff.abs().sum(-1)
    else:
        # sqrt with a zero-safe gradient: d‖x‖/dx at x = 0 is taken as 0, not NaN
        sq = diff.square().sum(-1)
        dist = torch.where(sq > 0, sq.clamp_min(torch.finfo(sq.dtype).tiny).sqrt(), sq)
    if dist.ndim == 3:
        dist = dist.mean(-1)
    return _reduce(dist, weight, reduction)


def variance_loss(
    logits: Tensor,
    target_variance: float = GRID_TARGET_VARIANCE,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
    scale: VarianceScale = "normalized",
) -> Tensor:
    """Variance regularization (Soft w/ V.R., PAPER.md §4) per keypoint, on grids of any dimension.

    ``scale="normalized"`` (default): Σ_axes ((Var_a − σ_t²) / n_a²)², n_a the size of axis a -- the
    variance of the coordinate divided by the axis size, the scale of the methods' coordinate loss, so
    that the paper's weight 1 balances the two terms on any grid (non-square, 1D, 3D). ``scale="cell"``:
    Σ_axes (Var_a − σ_t²)² in cell², the paper's literal form (with weight 1 it collapses training).

    Args:
        logits: ``(B, K, *grid)``, grid = (W,), (H, W) or (D, H, W).
        target_variance: σ_t² in cell², >= 0; the paper uses 4 (per axis).
        weight, reduction: see :func:`reduce_keypoints`.
        scale: ``"normalized"`` or ``"cell"`` (:data:`VARIANCE_SCALES`).

    Example:
        >>> variance_loss(torch.zeros(1, 1, 3), target_variance=0.0, scale="cell")  # uniform on {0,1,2}: Var = 2/3
        tensor(0.4444)
        >>> variance_loss(torch.zeros(1, 1, 3), target_variance=0.0)  # ((2/3) / 3²)²
        tensor(0.0055)
    """
    check_logits(logits)
    target_variance = check_nonnegative(target_variance, "target_variance", "σ_t² in cell²")
    check_choice(scale, "scale", VARIANCE_SCALES)
    w = check_weight(weight, logits.shape[:2], logits)
    check_choice(reduction, "reduction", REDUCTIONS)
    check_data(logits=logits, weight=w)
    return _variance_loss(logits, target_variance, w, reduction, scale)


def _variance_loss(logits: Tensor, target_variance: float, weight: Tensor | None, reduction: str,
                   scale: str) -> Tensor:
    deviation = _grid_variance(logits) - target_variance  # (B, K, dims), cell²
    if scale == "normalized":
        sizes = torch.tensor(grid_size_xyz(logits), dtype=deviation.dtype, device=deviation.device)
        deviation = deviation / sizes.square()
    return _reduce(deviation.square().sum(-1), weight, reduction)


def variance_loss_points(
    logits: Tensor,
    points: Tensor,
    target_variance: float = POINT_TARGET_VARIANCE,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Variance regularization over a point set: Σ_axes (Var_π(p) − σ_t²)² per keypoint.

    Args:
        logits: ``(B, K, N)`` per-point logits.
        points: ``(B, N, d)`` point coordinates.
        target_variance: σ_t² in points' units²; default :data:`POINT_TARGET_VARIANCE`.
        weight, reduction: see :func:`reduce_keypoints`.

    Example:
        >>> pts = torch.tensor([[[0.0], [2.0]]])               # two points on a line
        >>> variance_loss_points(torch.zeros(1, 1, 2), pts, target_variance=0.0)  # Var = 1
        tensor(1.)
    """
    _check_point_set(logits, points)
    target_variance = check_nonnegative(target_variance, "target_variance", "σ_t² in points' units²")
    w = check_weight(weight, logits.shape[:2], logits)
    check_choice(reduction, "reduction", REDUCTIONS)
    check_data(logits=logits, points=points, weight=w)
    return _variance_loss_points(logits, points, target_variance, w, reduction)


def _variance_loss_points(logits: Tensor, points: Tensor, target_variance: float, weight: Tensor | None,
                          reduction: str) -> Tensor:
    prob = torch.softmax(_float(logits), dim=-1)[..., None]  # (B, K, N, 1)
    pts = _float(points)[:, None]  # (B, 1, N, d)
    # elementwise sums rather than einsum/matmul, which autocast would run in half precision
    mean = (prob * pts).sum(-2, keepdim=True)
    centred = pts - mean  # (B, K, N, d)
    var = (prob * centred.square()).sum(-2)
    per_keypoint = (var - target_variance).square().sum(-1)
    return _reduce(per_keypoint, weight, reduction)


def _divergence(log_p: Tensor, log_q: Tensor, divergence: Divergence) -> Tensor:
    """KL(p‖q) or JS(p, q) in nats over the last dim, from log-probabilities (finite or -inf)."""
    if divergence == "kl":
        return _kl(log_p, log_q)
    # "js": log m = log((p + q) / 2), computed in log space so peaked maps don't underflow to log 0
    log_m = torch.logaddexp(log_p, log_q) - math.log(2.0)
    return 0.5 * _kl(log_p, log_m) + 0.5 * _kl(log_q, log_m)


def _kl(log_p: Tensor, log_q: Tensor) -> Tensor:
    p = log_p.exp()
    # 0 · log 0 = 0: terms with p = 0 contribute nothing (and no NaN gradient via -inf)
    terms = torch.where(p > 0, p * (log_p - log_q), torch.zeros((), dtype=p.dtype, device=p.device))
    return terms.sum(-1)


def distribution_loss(
    logits: Tensor,
    target: Tensor,
    target_variance: float = GRID_TARGET_VARIANCE,
    divergence: Divergence = "js",
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Distribution regularization (DSNT, Nibali et al. 2018): divergence between π and a
    Gaussian N(target, σ_t² I) discretized on the grid (evaluated at the cell centres and
    normalized over the whole grid), per keypoint.

    Args:
        logits: ``(B, K, *grid)``.
        target: ``(B, K, dims)`` in cells, x, y, z order.
        target_variance: σ_t² in cell²; the paper uses 4.
        divergence: ``"js"`` Jensen–Shannon (the paper's D.R.), or ``"kl"`` = KL(π ‖ q).
        weight, reduction: see :func:`reduce_keypoints`.

    Computed from log-softmax in float32, so it stays finite for peaked maps (±1e4 logits).

    Example:
        >>> logits = -0.5 * (torch.arange(9.0) - 4.0).square() / 4.0   # exactly the target Gaussian
        >>> distribution_loss(logits.view(1, 1, 9), torch.tensor([[[4.0]]])).abs() < 1e-6
        tensor(True)
    """
    dims = check_logits(logits)
    check_target(target, tuple(logits.shape[:2]), dims, "logits (B, K, *grid)")
    target_variance = check_positive(target_variance, "target_variance", "σ_t² in cell²")
    check_choice(divergence, "divergence", DIVERGENCES)
    w = check_weight(weight, logits.shape[:2], logits)
    check_choice(reduction, "reduction", REDUCTIONS)
    check_data(logits=logits, target=target, weight=w)
    return _distribution_loss(logits, target, target_variance, divergence, w, reduction)


def _distribution_loss(logits: Tensor, target: Tensor, target_variance: float, divergence: str,
                       weight: Tensor | None, reduction: str) -> Tensor:
    dims = logits.ndim - 2
    target = _mask_targets(_float(target), weight)
    grid = logits.shape[2:]
    # separable Gaussian: log q(y) = Σ_axis −(y_axis − t_axis)² / (2σ²); axis x is the last grid dim
    log_q = torch.zeros((), device=logits.device)
    for axis in range(dims):
        size = grid[dims - 1 - axis]
        centres = cell_centers(size, device=logits.device)
        sq = (centres - target[..., axis, None]).square() / (-2.0 * target_variance)  # (B, K, size)
        view = [*sq.shape[:2]] + [1] * dims
        view[2 + dims - 1 - axis] = size
        log_q = log_q + sq.view(view)
    flat = logits.shape[:2] + (-1,)
    log_q = torch.log_softmax(log_q.reshape(flat), dim=-1)
    log_p = torch.log_softmax(_float(logits).reshape(flat), dim=-1)
    return _reduce(_divergence(log_p, log_q, divergence), weight, reduction)


def distribution_loss_points(
    logits: Tensor,
    points: Tensor,
    target: Tensor,
    target_variance: float = POINT_TARGET_VARIANCE,
    divergence: Divergence = "js",
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Distribution regularization over a point set: divergence between π over the points and
    N(target, σ_t² I) evaluated at the points and normalized over them, per keypoint.

    Args:
        logits: ``(B, K, N)``; points: ``(B, N, d)``; target: ``(B, K, d)``.
        target_variance: σ_t² in points' units²; default :data:`POINT_TARGET_VARIANCE`.
        divergence, weight, reduction: as :func:`distribution_loss`.

    Example:
        >>> pts = torch.rand(1, 64, 3)
        >>> distribution_loss_points(torch.zeros(1, 2, 64), pts, torch.rand(1, 2, 3)).item() > 0
        True
    """
    _check_point_set(logits, points)
    check_target(target, tuple(logits.shape[:2]), points.shape[-1], "points (B, N, d)")
    target_variance = check_positive(target_variance, "target_variance", "σ_t² in points' units²")
    check_choice(divergence, "divergence", DIVERGENCES)
    w = check_weight(weight, logits.shape[:2], logits)
    check_choice(reduction, "reduction", REDUCTIONS)
    check_data(logits=logits, points=points, target=target, weight=w)
    return _distribution_loss_points(logits, points, target, target_variance, divergence, w, reduction)


def _distribution_loss_points(logits: Tensor, points: Tensor, target: Tensor, target_variance: float,
                              divergence: str, weight: Tensor | None, reduction: str) -> Tensor:
    target = _mask_targets(_float(target), weight)
    sq_dist = (_float(points)[:, None] - target[:, :, None]).square().sum(-1)  # (B, K, N)
    log_q = torch.log_softmax(sq_dist / (-2.0 * target_variance), dim=-1)
    log_p = torch.log_softmax(_float(logits), dim=-1)
    return _reduce(_divergence(log_p, log_q, divergence), weight, reduction)


def _float(t: Tensor) -> Tensor:
    """float32 for the maths (float64 kept, so gradcheck works), whatever autocast produced."""
    return t if t.dtype == torch.float64 else t.float()


def _check_point_set(logits: Tensor, points: Tensor) -> None:
    check_logits(logits, spatial_dims=(1,), shape_hint="(B, K, N) with points (B, N, d)")
    check_points(points, logits)
