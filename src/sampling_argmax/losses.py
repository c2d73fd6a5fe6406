"""Per-keypoint localization losses that combine with visibility weights (dsntnn-like).

Every loss first computes one value per keypoint, ``(B, K)``, then reduces with
:func:`reduce_keypoints`: ``"none"`` keeps ``(B, K)``, ``"sum"`` sums ``weight * loss`` and
``"mean"`` divides that sum by ``weight.sum()`` (0, not NaN, when every weight is 0). A keypoint
with weight 0 neither changes the loss nor receives gradient, even if its target is garbage.

Units follow the package convention: grid coordinates in cells (centre of cell ``i`` at ``i``),
point-set coordinates in the units of ``points``. Regularizer targets are variances in those
units squared. For point sets the default target variance is ``POINT_TARGET_VARIANCE = 4e-4``:
the grid default of 4 cell² with the "cell" replaced by 0.01, the mean distance between
neighbouring points of a normalized 2048-point object (the scale the paper uses for its
point-cloud Gaussian basis, σ = 0.01).

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

from sampling_argmax.coords import cell_centers
from sampling_argmax.functional import grid_variance

__all__ = [
    "GRID_TARGET_VARIANCE",
    "POINT_TARGET_VARIANCE",
    "coordinate_loss",
    "distribution_loss",
    "distribution_loss_points",
    "reduce_keypoints",
    "variance_loss",
    "variance_loss_points",
]

GRID_TARGET_VARIANCE = 4.0
"""σ_t² of the paper's regularizers on grids, in cell² (heatmap pixels²)."""

POINT_TARGET_VARIANCE = 4e-4
"""σ_t² for point sets: 4 × 0.01², 0.01 being the neighbour spacing of a normalized object."""

Reduction = Literal["none", "mean", "sum"]
Divergence = Literal["js", "kl"]


def _check_weight(weight: Tensor | None, batch_shape: torch.Size, like: Tensor) -> Tensor:
    """Return a ``(B, K)`` float weight (ones when None), or raise naming the bad shape."""
    if weight is None:
        return torch.ones(batch_shape, dtype=torch.float32, device=like.device)
    if not isinstance(weight, Tensor):
        weight = torch.as_tensor(weight, device=like.device)
    if weight.shape != batch_shape:
        raise ValueError(
            f"weight must have shape (B, K) = {tuple(batch_shape)} (one visibility per keypoint), "
            f"got {tuple(weight.shape)}; squeeze a trailing singleton dim or pass weight=None"
        )
    return weight.to(dtype=torch.float32)


def reduce_keypoints(loss: Tensor, weight: Tensor | None = None, reduction: Reduction = "mean") -> Tensor:
    """Visibility-weighted reduction of a per-keypoint loss.

    Args:
        loss: ``(B, K)`` per-keypoint values.
        weight: ``(B, K)`` visibility (0 = ignore), or None for all ones.
        reduction: ``"none"`` -> ``weight * loss`` ``(B, K)``; ``"sum"`` -> its sum;
            ``"mean"`` -> its sum / ``weight.sum()``, 0 when the weights sum to 0.

    Masked keypoints are replaced (not multiplied) by 0 so a NaN/inf there cannot leak into the
    loss or its gradient.

    Example:
        >>> reduce_keypoints(torch.tensor([[1.0, 3.0, 100.0]]), torch.tensor([[1.0, 1.0, 0.0]]))
        tensor(2.)
    """
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    if loss.ndim != 2:
        raise ValueError(f"loss must be per keypoint, shape (B, K), got {tuple(loss.shape)}")
    w = _check_weight(weight, loss.shape, loss)
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
    if p not in (1, 2):
        raise ValueError(f"p must be 1 (ℓ1, the paper's) or 2 (Euclidean), got {p!r}")
    if target.ndim != 3:
        raise ValueError(f"target must have shape (B, K, dims), got {tuple(target.shape)}")
    if pred.ndim == 3:
        expected = target.shape
    elif pred.ndim == 4:
        expected = torch.Size((target.shape[0], target.shape[1], pred.shape[2], target.shape[2]))
    else:
        raise ValueError(f"pred must be (B, K, dims) coordinates or (B, K, S, dims) samples, got {tuple(pred.shape)}")
    if pred.shape != expected:
        raise ValueError(
            f"pred {tuple(pred.shape)} does not match target {tuple(target.shape)}: "
            "B, K and dims must agree (pred may add a samples dim S before dims)"
        )
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
    return reduce_keypoints(dist, weight, reduction)


def variance_loss(
    logits: Tensor,
    target_variance: float = GRID_TARGET_VARIANCE,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Variance regularization: Σ_axes (Var_π(y) − σ_t²)² per keypoint, in cell² (PAPER.md §4).

    Args:
        logits: ``(B, K, *grid)``, grid = (W,), (H, W) or (D, H, W).
        target_variance: σ_t² in cell²; the paper uses 4.
        weight, reduction: see :func:`reduce_keypoints`.

    Example:
        >>> variance_loss(torch.zeros(1, 1, 3), target_variance=0.0)  # uniform on {0,1,2}: Var = 2/3
        tensor(0.4444)
    """
    _check_grid_logits(logits)
    var = grid_variance(logits)  # (B, K, dims)
    per_keypoint = (var - target_variance).square().sum(-1)
    return reduce_keypoints(per_keypoint, weight, reduction)


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
    _check_point_logits(logits, points)
    prob = torch.softmax(_float(logits), dim=-1)[..., None]  # (B, K, N, 1)
    pts = _float(points)[:, None]  # (B, 1, N, d)
    # elementwise sums rather than einsum/matmul, which autocast would run in half precision
    mean = (prob * pts).sum(-2, keepdim=True)
    centred = pts - mean  # (B, K, N, d)
    var = (prob * centred.square()).sum(-2)
    per_keypoint = (var - target_variance).square().sum(-1)
    return reduce_keypoints(per_keypoint, weight, reduction)


def _divergence(log_p: Tensor, log_q: Tensor, divergence: Divergence) -> Tensor:
    """KL(p‖q) or JS(p, q) in nats over the last dim, from log-probabilities (finite or -inf)."""
    if divergence == "kl":
        return _kl(log_p, log_q)
    if divergence == "js":
        # log m = log((p + q) / 2), computed in log space so peaked maps don't underflow to log 0
        log_m = torch.logaddexp(log_p, log_q) - math.log(2.0)
        return 0.5 * _kl(log_p, log_m) + 0.5 * _kl(log_q, log_m)
    raise ValueError(f"divergence must be 'js' or 'kl', got {divergence!r}")


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
    _check_grid_logits(logits)
    dims = logits.ndim - 2
    _check_target(target, logits.shape[:2], dims, "logits (B, K, *grid)")
    if target_variance <= 0:
        raise ValueError(f"target_variance must be > 0, got {target_variance}")
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
    return reduce_keypoints(_divergence(log_p, log_q, divergence), weight, reduction)


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
    _check_point_logits(logits, points)
    _check_target(target, logits.shape[:2], points.shape[-1], "points (B, N, d)")
    if target_variance <= 0:
        raise ValueError(f"target_variance must be > 0, got {target_variance}")
    target = _mask_targets(_float(target), weight)
    sq_dist = (_float(points)[:, None] - target[:, :, None]).square().sum(-1)  # (B, K, N)
    log_q = torch.log_softmax(sq_dist / (-2.0 * target_variance), dim=-1)
    log_p = torch.log_softmax(_float(logits), dim=-1)
    return reduce_keypoints(_divergence(log_p, log_q, divergence), weight, reduction)


def _float(t: Tensor) -> Tensor:
    """float32 for the maths (float64 kept, so gradcheck works), whatever autocast produced."""
    return t if t.dtype == torch.float64 else t.float()


def _check_grid_logits(logits: Tensor) -> None:
    if not 3 <= logits.ndim <= 5:
        raise ValueError(
            f"logits must be (B, K, W), (B, K, H, W) or (B, K, D, H, W), got {tuple(logits.shape)}"
        )


def _check_point_logits(logits: Tensor, points: Tensor) -> None:
    if logits.ndim != 3 or points.ndim != 3:
        raise ValueError(
            f"point sets need logits (B, K, N) and points (B, N, d), got {tuple(logits.shape)} and {tuple(points.shape)}"
        )
    if points.shape[0] != logits.shape[0] or points.shape[1] != logits.shape[2]:
        raise ValueError(
            f"points {tuple(points.shape)} must be (B, N, d) with B, N of logits {tuple(logits.shape)} = (B, K, N)"
        )


def _check_target(target: Tensor, batch_shape: torch.Size, dims: int, source: str) -> None:
    expected = (*batch_shape, dims)
    if tuple(target.shape) != expected:
        raise ValueError(
            f"target must have shape (B, K, dims) = {expected} to match {source}, got {tuple(target.shape)}"
        )
