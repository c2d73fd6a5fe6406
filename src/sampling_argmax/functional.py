"""Soft-argmax and sampling-argmax on grids (1D/2D/3D) and point sets, plus map statistics.

Shapes: logits ``(B, K, *grid)`` with grid = (W,), (H, W) or (D, H, W); coordinates ``(B, K, dims)`` in
x, y, z order, in cell-index units (see :mod:`sampling_argmax.coords`); training samples ``(B, K, S, dims)``.
Point sets: logits ``(B, K, N)`` over the points ``(B, N, d)``. Probabilities and sampling are computed in
float32 (float64 inputs stay float64), with autocast turned off inside. Inputs are validated at these public
entry points (see :mod:`sampling_argmax._checks` and :func:`sampling_argmax.set_input_checks`); the private
``_``-prefixed versions assume validated inputs and are what the losses and methods call.

>>> logits = torch.randn(2, 17, 64, 48)
>>> soft_argmax(logits).shape
torch.Size([2, 17, 2])
>>> sampling_argmax(logits, num_samples=30, tau=1.0, generator=torch.Generator().manual_seed(0)).shape
torch.Size([2, 17, 30, 2])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from . import _chunked, _fused
from ._checks import (
    GUMBEL_MODES,
    IMPLEMENTATIONS,
    MAX_CELL_SAMPLES,
    MIN_TAU,
    check_authors_options,
    check_choice,
    check_coords,
    check_data,
    check_generator,
    check_logits,
    check_num_samples,
    check_points,
    check_positive,
    check_sampling_budget,
    check_tau,
    compute_dtype,
    no_autocast,
)
from ._chunked import SamplingArgmaxFunction, exponentials, grid_marginal, layout, perturbed_positions, sample_keys
from ._noise import draw_seed
from .bases import BASES, GRID_SIGMA, POINT_SIGMA
from .coords import cell_centers

POINTS_HINT = "(B, K, N)"

__all__ = [
    "MIN_TAU",
    "MAX_CELL_SAMPLES",
    "grid_probabilities",
    "marginals",
    "soft_argmax",
    "grid_variance",
    "peak_confidence",
    "mass_confidence",
    "soft_argmax_points",
    "sampling_argmax",
    "sampling_argmax_points",
]


# ----------------------------------------------------------------------------------------------- statistics
def _check_grid(logits: Tensor) -> int:
    nd = check_logits(logits)
    check_data(logits=logits)
    return nd


def _check_point_set(logits: Tensor, points: Tensor) -> None:
    check_logits(logits, spatial_dims=(1,), shape_hint=POINTS_HINT)
    check_points(points, logits)
    check_data(logits=logits, points=points)


def grid_probabilities(logits: Tensor) -> Tensor:
    """Softmax over all cells of each map: ``(B, K, *grid)`` -> same shape, float32 (float64 kept)."""
    _check_grid(logits)
    return _probabilities(logits)



def _probabilities(logits: Tensor) -> Tensor:
    with no_autocast(logits):
        x = logits.to(compute_dtype(logits))
        return torch.softmax(x.flatten(2), dim=-1).view(x.shape)


def _marginals(probs: Tensor) -> tuple[Tensor, ...]:
    grid = tuple(probs.shape[2:])
    return tuple(grid_marginal(probs, grid, a) for a in range(len(grid)))


def marginals(logits: Tensor) -> tuple[Tensor, ...]:
    """Per-axis marginals of the softmax, in x, y, z order: ``((B,K,W), (B,K,H)[, (B,K,D)])``."""
    _check_grid(logits)
    return _marginals(_probabilities(logits))


def _expectation(marginal: Tensor) -> Tensor:
    return (marginal * cell_centers(marginal.shape[-1], marginal.device, marginal.dtype)).sum(-1)


def soft_argmax(logits: Tensor) -> Tensor:
    """Expectation of the softmax over the grid: ``(B, K, *grid)`` -> ``(B, K, dims)``, x-y-z, cell units.

    >>> logits = torch.full((1, 1, 4, 5), -1e4); logits[0, 0, 3, 1] = 0.0   # peak at row 3, column 1
    >>> soft_argmax(logits)
    tensor([[[1., 3.]]])
    """
    _check_grid(logits)
    return _soft_argmax(logits)


def _soft_argmax(logits: Tensor) -> Tensor:
    with no_autocast(logits):
        return torch.stack([_expectation(m) for m in _marginals(_probabilities(logits))], dim=-1)


def grid_variance(logits: Tensor) -> Tensor:
    """Variance of the softmax per axis, ``(B, K, dims)`` in cell² units."""
    _check_grid(logits)
    return _grid_variance(logits)


def _grid_variance(logits: Tensor) -> Tensor:
    with no_autocast(logits):
        out = []
        for m in _marginals(_probabilities(logits)):
            centred = cell_centers(m.shape[-1], m.device, m.dtype) - _expectation(m)[..., None]
            out.append((m * centred.square()).sum(-1))
        return torch.stack(out, dim=-1)


def peak_confidence(logits: Tensor) -> Tensor:
    """Maximum probability of each map, ``(B, K)`` -- the paper's confidence score."""
    _check_grid(logits)
    return _peak_confidence(logits)


def _peak_confidence(logits: Tensor) -> Tensor:
    return _probabilities(logits).flatten(2).amax(-1)


def mass_confidence(logits: Tensor, coords: Tensor | None = None, radius: float = 1.5) -> Tensor:
    """Probability mass of the cells whose centres lie within ``radius`` cells of ``coords``, ``(B, K)``.

    ``coords`` ``(B, K, dims)`` in cell units defaults to :func:`soft_argmax` of the logits.
    """
    nd = check_logits(logits)
    radius = check_positive(radius, "radius", "in cells")
    if coords is not None:
        check_coords(coords, logits, nd)
    check_data(logits=logits)
    return _mass_confidence(logits, coords, radius)


def _mass_confidence(logits: Tensor, coords: Tensor | None, radius: float) -> Tensor:
    nd = logits.dim() - 2
    if coords is None:
        coords = _soft_argmax(logits)
    with no_autocast(logits):
        probs = _probabilities(logits)
        coords = coords.to(probs.dtype)
        b, k = probs.shape[:2]
        dist2 = probs.new_zeros(())
        for a in range(nd):
            n = probs.shape[-1 - a]
            d = (cell_centers(n, probs.device, probs.dtype) - coords[..., a, None]).square()
            dist2 = dist2 + d.view(b, k, *([1] * (nd - 1 - a)), n, *([1] * a))
        return (probs * (dist2 <= radius * radius)).flatten(2).sum(-1)


def soft_argmax_points(logits: Tensor, points: Tensor) -> Tensor:
    """Expectation over a point set: logits ``(B, K, N)``, points ``(B, N, d)`` -> ``(B, K, d)``.

    >>> points = torch.rand(2, 100, 3)
    >>> soft_argmax_points(torch.randn(2, 10, 100), points).shape
    torch.Size([2, 10, 3])
    """
    _check_point_set(logits, points)
    return _soft_argmax_points(logits, points)


def _soft_argmax_points(logits: Tensor, points: Tensor) -> Tensor:
    with no_autocast(logits):
        probs = _probabilities(logits)
        return torch.bmm(probs, points.to(probs.dtype))


# ------------------------------------------------------------------------------------------------- sampling
def sampling_argmax(
    logits: Tensor,
    num_samples: int = 30,
    tau: float = 1.0,
    basis: str = "triangular",
    gumbel: str = "paper",
    generator: torch.Generator | None = None,
    *,
    sigma: float = GRID_SIGMA,
    triangular_reread: bool = False,
    gaussian_reweight: bool = False,
    clipped_gradient: bool = False,
    implementation: str = "auto",
) -> Tensor:
    """Differentiable samples of the continuous mixture ``p(y) = sum_i pi_i f_i(y)``: ``(B, K, S, dims)``.

    Per sample: a relaxed one-hot ``r`` over the whole flattened grid (Gumbel-softmax), its per-axis
    marginals ``r_x, r_y[, r_z]``, per-axis per-cell basis offsets ``eps``, and the coordinate
    ``x = sum_j r_x[j] (j + eps_x[j])`` (same for y, z).

    Why per-axis marginals with per-axis offsets sample the product basis: as tau -> 0 the relaxed
    one-hot becomes one cell (i, j); its marginals are one-hot at i and at j, so the sample is
    ``(i + eps_x[i], j + eps_y[j])`` with independent offsets -- a draw from ``f_i(x) f_j(y)``, the
    product basis of cell (i, j). For tau > 0 the sample is a relaxation of that draw.

    Args:
        logits: ``(B, K, W)``, ``(B, K, H, W)`` or ``(B, K, D, H, W)``, finite.
        num_samples: S >= 1 (paper: 30 for COCO/MTFL, 10 for Human3.6M; one already suffices). Refused when
            S x B x K x cells exceeds ``MAX_CELL_SAMPLES`` (2^40, hours of compute) or the estimated peak
            memory exceeds the device's (see :func:`~sampling_argmax._checks.check_sampling_budget`).
        tau: Gumbel-softmax temperature, ``MIN_TAU`` (1e-6) <= tau (annealed during training, see
            ``LinearTemperature``). Computed overflow-free: the max is subtracted before dividing by tau.
        basis: "uniform", "triangular" or "gaussian" (sigma in cells, default ``GRID_SIGMA`` = 1).
        gumbel: "paper" -> ``softmax((log pi + g)/tau)``; "authors" -> ``softmax(logits + g/tau)`` (the
            public code's form: the noise is tempered but the logits are not).
        triangular_reread: authors' option (triangular basis only): the relaxed marginal is re-read by
            linear interpolation at the perturbed positions ``j + eps_j`` (zero outside the grid) and
            renormalized before the weighted sum.
        gaussian_reweight: authors' option (gaussian basis only): the relaxed marginal is multiplied by
            ``exp(-2 eps_j^2)`` and renormalized before the weighted sum.
        clipped_gradient: authors' "clipped integral" (2D pose): the backward of ``sum_j r_j w_j`` w.r.t.
            ``r_j`` (w_j = j + eps_j) is replaced by +2 where ``w_j >=`` the read-out and -2 elsewhere, on
            the authors' normalized scale (index/size), i.e. ``+-2 * n_axis`` in cell units.
        generator: a ``torch.Generator`` on the logits' device, or None for the global RNG; a call draws one
            int64 seed from it, and every noise value of the call is a hash of that seed, the sample and the
            cell (:mod:`sampling_argmax._noise`), so ``torch.manual_seed`` makes runs reproducible.
        implementation: "chunked" (custom autograd.Function that regenerates the noise in backward, chunk by
            chunk: memory independent of S -- a few maps -- no authors' options), "fused" (the per-cell loop
            as compiled code: on CPU a C kernel built once per process (~2 s), for tau >= 0.3; on GPU the chunk
            functions through ``torch.compile``; falls back to "chunked" with a warning where building fails),
            "reference" (plain autograd over all S relaxed maps; the test oracle) or "auto" (the reference with
            an authors' option; else on CPU "chunked" until the process's calls have paid for the kernel's build,
            then "fused"; on GPU "fused" from ``_fused.FUSED_MIN_CELL_SAMPLES`` = 2^20 cell-samples per call).
            All draw the same noise from the same seed (equal samples up to float rounding).

    Returns:
        ``(B, K, S, dims)`` samples, x-y-z, cell units, float32 (float64 for float64 logits).
    """
    _check_grid(logits)
    return _sampling_argmax(logits, None, num_samples, tau, basis, gumbel, generator, sigma,
                            triangular_reread, gaussian_reweight, clipped_gradient, implementation)


def sampling_argmax_points(
    logits: Tensor,
    points: Tensor,
    num_samples: int = 30,
    tau: float = 1.0,
    sigma: float = POINT_SIGMA,
    generator: torch.Generator | None = None,
    *,
    gumbel: str = "paper",
    implementation: str = "auto",
) -> Tensor:
    """Sampling-argmax over a point set with a Gaussian basis per point and axis: ``(B, K, S, d)``.

    logits ``(B, K, N)``, points ``(B, N, d)``; ``sigma`` in point units (default ``POINT_SIGMA`` = 0.01, the
    paper's for normalized objects). Gradients flow to the logits and, if it requires grad, to ``points``.
    Other arguments as :func:`sampling_argmax`.

    >>> sampling_argmax_points(torch.randn(2, 10, 100), torch.rand(2, 100, 3), num_samples=4).shape
    torch.Size([2, 10, 4, 3])
    """
    _check_point_set(logits, points)
    return _sampling_argmax(logits, points, num_samples, tau, "gaussian", gumbel, generator, sigma,
                            False, False, False, implementation)


def _sampling_argmax(logits, points, num_samples, tau, basis, gumbel, generator, sigma,
                     triangular_reread, gaussian_reweight, clipped_gradient, implementation) -> Tensor:
    """Argument checks and dispatch of both entry points (logits/points already validated)."""
    num_samples = check_num_samples(num_samples)
    tau = check_tau(tau)
    sigma = check_positive(sigma, "sigma", "the Gaussian basis width, in cells on grids, point units on point sets")
    check_choice(basis, "basis", BASES)
    check_choice(gumbel, "gumbel", GUMBEL_MODES)
    check_choice(implementation, "implementation", IMPLEMENTATIONS)
    check_authors_options(basis, triangular_reread, gaussian_reweight)
    authors_options = bool(triangular_reread or gaussian_reweight or clipped_gradient)
    if implementation in ("chunked", "fused") and authors_options:
        raise ValueError(f"implementation={implementation!r} does not support triangular_reread, gaussian_reweight "
                         f"or clipped_gradient; use implementation='auto' or 'reference'")
    b, k = logits.shape[:2]
    grid = None if points is not None else tuple(logits.shape[2:])
    dims = points.shape[2] if points is not None else len(grid)
    length = dims * points.shape[1] if points is not None else sum(grid)
    flat = logits.reshape(b, k, -1)
    if implementation == "auto":
        implementation = "reference" if authors_options else \
            "fused" if _fused.worth_it(num_samples * flat.numel(), logits.device, points is not None) else "chunked"
    check_sampling_budget(flat, num_samples, length, dims, implementation != "reference", _chunked.CHUNK_BYTES)
    if generator is not None:
        check_generator(generator, logits.device)
    seed = draw_seed(generator, logits.device)  # the call's only generator draw; all noise hashes from it
    with no_autocast(logits):
        dtype = compute_dtype(logits)
        x = flat.to(dtype).contiguous()
        pts = None if points is None else points.to(dtype)
        if implementation == "reference":
            return _reference(x, pts, grid, num_samples, tau, gumbel, basis, sigma, seed,
                              triangular_reread, gaussian_reweight, clipped_gradient)
        return SamplingArgmaxFunction.apply(x, pts, grid, num_samples, tau, gumbel, basis, sigma, seed,
                                            implementation == "fused")


# ---------------------------------------------------------------------------------- reference (test oracle)
def _reference(x, points, grid, num_samples, tau, gumbel, basis, sigma, seed, reread, reweight, clipped):
    """Plain-autograd sampling-argmax over all S relaxed maps at once (the test oracle; the authors' options
    live here): the same noise as the chunk functions of :mod:`sampling_argmax._chunked`, relaxed by the
    textbook ``softmax((a x' + g - max)/tau)`` rather than their three cheaper forms, so the tests that the
    paths agree (to float32 precision, down to ``MIN_TAU``) also check that algebra."""
    b, k, m = x.shape
    positions, _, sizes = layout(grid, points, x)
    keys = sample_keys(seed, num_samples, x.device)
    y = x.new_empty(num_samples, b, k, m)  # -log E, then y; one sample's hashing temporaries at a time
    for s in range(num_samples):
        y[s] = exponentials(keys[s : s + 1, 0], b * k * m, x.dtype).view(b, k, m).log_().neg_()
    shifted = x - x.detach().amax(-1, keepdim=True)
    y = torch.add(y, shifted if gumbel == "paper" else shifted * tau)  # a x' + g
    z = y - y.detach().amax(-1, keepdim=True)  # softmax is shift-invariant: no gradient through the max
    del y
    r = torch.softmax(z * (1.0 / tau) if tau != 1.0 else z, dim=-1)
    del z
    rv = r.view(num_samples, b, k, *grid) if points is None else r
    perturbed = perturbed_positions(keys, b, k, positions, basis, sigma, x.dtype)  # (S, B, K, L)
    coords = []
    starts = [sum(sizes[:a]) for a in range(len(sizes))]
    for a, pos in enumerate(perturbed.split(sizes, dim=-1)):  # per axis (S, B, K, n_a)
        weights = grid_marginal(rv, grid, a) if points is None else rv
        eps = pos - positions[..., starts[a] : starts[a] + sizes[a]]
        if reread:
            weights = _normalize(_interpolate(weights, pos))
        if reweight:
            weights = _normalize(weights * torch.exp(-2.0 * eps.square()))
        anchor = pos.gather(-1, weights.detach().argmax(-1, keepdim=True))  # (S, B, K, 1)
        relative = pos - anchor
        if clipped:
            coords.append(_ClippedIntegral.apply(weights, relative, 2.0 * weights.shape[-1]) + anchor[..., 0])
        else:
            coords.append((weights * relative).sum(-1) + anchor[..., 0])
    return torch.stack(coords, dim=-1).permute(1, 2, 0, 3)  # (B, K, S, dims)


def _normalize(w: Tensor) -> Tensor:
    return w / w.sum(-1, keepdim=True).clamp_min(torch.finfo(w.dtype).tiny)


def _interpolate(values: Tensor, pos: Tensor) -> Tensor:
    """Linear interpolation of ``values`` (..., n) given at 0..n-1 (zero beyond) at ``pos`` in [-1, n]."""
    n = values.shape[-1]
    padded = F.pad(values, (1, 1))  # padded[q] = values[q - 1]
    q = (pos.detach() + 1.0).clamp(0.0, n + 1.0)
    lo = q.floor().clamp(max=n).long()
    t = q - lo.to(q.dtype)
    return (1.0 - t) * padded.gather(-1, lo) + t * padded.gather(-1, lo + 1)


class _ClippedIntegral(torch.autograd.Function):
    """``sum_j w_j p_j`` whose gradient w.r.t. w_j is ``+-scale`` by the sign of ``p_j - output``."""

    @staticmethod
    def forward(ctx, weights, positions, scale):
        out = (weights * positions).sum(-1)
        ctx.save_for_backward(weights, positions, out)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx, grad):
        weights, positions, out = ctx.saved_tensors
        sign = torch.where(positions >= out[..., None], ctx.scale, -ctx.scale).to(grad.dtype)
        return grad[..., None] * sign, grad[..., None] * weights, None
