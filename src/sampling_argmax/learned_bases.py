"""Learnable per-cell sub-distributions: the paper's stated next step, aimed at the read-out bias.

The fixed bases of :mod:`sampling_argmax.bases` spread every cell's mass the same way around its centre,
so a map can only put sub-cell mass by mixing neighbouring cells, and the expected-error objective pulls
the read-out of coarse maps toward cell centres (docs/methods.md, "Read-out bias"). Here the network
predicts, for every cell and axis, the parameters of that cell's offset law; sampling stays
reparameterized, so the expected-error loss trains the offsets, and the read-out is the mixture's mean
``sum_c pi_c (c + mean_c)``: a learned sub-cell offset, no longer tied to cell centres.

Two families (exact ``sample``, ``cdf``, ``pdf`` and ``mean`` of raw parameters ``(..., P)``, cell units):

- :class:`ShiftedGaussian` (P = 2): ``N(mu, s^2)`` with ``mu = max_shift * tanh(a)`` and
  ``s = min_scale + (max_scale - min_scale) * sigmoid(b)``: a location-scale law within the cell's
  neighbourhood.
- :class:`QuantileSpline` (P = 2 * bins + 1): the offset is ``Q(u)``, ``u ~ U(0, 1)``, with ``Q`` a monotone
  rational-quadratic spline from [0, 1] onto [-bound, bound] (Gregory & Delbourgo 1982; Durkan et al.,
  "Neural Spline Flows", 2019): ``bins`` equal steps in u, learned heights (softmax) and knot slopes
  (softplus). Any smooth unimodal or multimodal law on the interval; raw zeros give the uniform law.

The operator :func:`learned_sampling_argmax` draws S samples ``(B, K, S, dims)`` from logits ``(B, K, *grid)``
and parameters ``(B, K, dims, P, *grid)``; :class:`~sampling_argmax.methods.LearnedBasisMethod` trains and
reads out a model whose output carries both, ``(B, K, 1 + dims * P, *grid)`` (channel 0 the logits).
"""

from __future__ import annotations

import math
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from sampling_argmax._checks import (
    GUMBEL_MODES,
    check_choice,
    check_logits,
    check_num_samples,
    check_positive,
    check_tau,
)

__all__ = ["LearnedBasis", "ShiftedGaussian", "QuantileSpline", "learned_sampling_argmax",
           "learned_basis_mean", "LEARNED_BASES", "get_learned_basis"]

# Gauss-Legendre nodes and weights on [0, 1]: the spline's mean per bin (a smooth rational function)
_GL_NODES, _GL_WEIGHTS = (torch.from_numpy(a) for a in np.polynomial.legendre.leggauss(8))
_GL_NODES, _GL_WEIGHTS = (_GL_NODES + 1.0) / 2.0, _GL_WEIGHTS / 2.0


class LearnedBasis:
    """A family of offset laws around a cell centre, indexed by raw parameters ``(..., P)``."""

    num_params: int = 0

    def noise(self, shape, generator: torch.Generator | None, device, dtype) -> Tensor:
        """Parameter-free draws that :meth:`sample` turns into offsets (one per offset)."""
        return torch.rand(shape, generator=generator, device=device, dtype=dtype)

    def sample(self, params: Tensor, noise: Tensor) -> Tensor:
        """Reparameterized offsets ``(...)`` of parameters ``(..., P)`` and :meth:`noise` draws ``(...)``."""
        raise NotImplementedError

    def mean(self, params: Tensor) -> Tensor:
        raise NotImplementedError

    def cdf(self, params: Tensor, x: Tensor) -> Tensor:
        raise NotImplementedError

    def pdf(self, params: Tensor, x: Tensor) -> Tensor:
        raise NotImplementedError


class ShiftedGaussian(LearnedBasis):
    """``N(mu, s^2)``, ``mu = max_shift tanh(a)``, ``s = min_scale + (max_scale - min_scale) sigmoid(b)``.

    >>> basis = ShiftedGaussian()
    >>> params = torch.zeros(3, 2)
    >>> basis.mean(params), basis.cdf(params, torch.zeros(3))
    (tensor([0., 0., 0.]), tensor([0.5000, 0.5000, 0.5000]))
    """

    num_params = 2

    def __init__(self, max_shift: float = 1.0, min_scale: float = 0.05, max_scale: float = 1.0):
        self.max_shift = check_positive(max_shift, "max_shift", "the largest mean offset, in cells")
        self.min_scale = check_positive(min_scale, "min_scale", "the narrowest law, in cells")
        self.max_scale = check_positive(max_scale, "max_scale", "the widest law, in cells")
        if self.max_scale <= self.min_scale:
            raise ValueError(f"max_scale={max_scale} must exceed min_scale={min_scale}")

    def _loc_scale(self, params: Tensor) -> tuple[Tensor, Tensor]:
        loc = self.max_shift * torch.tanh(params[..., 0])
        scale = self.min_scale + (self.max_scale - self.min_scale) * torch.sigmoid(params[..., 1])
        return loc, scale

    def noise(self, shape, generator, device, dtype) -> Tensor:
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)

    def sample(self, params: Tensor, noise: Tensor) -> Tensor:
        loc, scale = self._loc_scale(params)
        return loc + scale * noise

    def mean(self, params: Tensor) -> Tensor:
        return self._loc_scale(params)[0]

    def cdf(self, params: Tensor, x: Tensor) -> Tensor:
        loc, scale = self._loc_scale(params)
        return 0.5 * (1.0 + torch.erf((x - loc) / (scale * math.sqrt(2.0))))

    def pdf(self, params: Tensor, x: Tensor) -> Tensor:
        loc, scale = self._loc_scale(params)
        return torch.exp(-0.5 * ((x - loc) / scale) ** 2) / (scale * math.sqrt(2.0 * math.pi))

    def __repr__(self) -> str:
        return f"ShiftedGaussian(max_shift={self.max_shift}, min_scale={self.min_scale}, max_scale={self.max_scale})"


class QuantileSpline(LearnedBasis):
    """Offsets ``Q(u)``, ``u ~ U(0, 1)``, ``Q`` a monotone rational-quadratic spline onto [-bound, bound].

    Parameters per offset: ``bins`` height logits, then ``bins + 1`` knot-slope pre-activations. Raw zeros
    give equal heights and slopes equal to the mean slope: ``Q`` is linear and the law uniform on
    [-bound, bound].

    >>> basis = QuantileSpline(bins=4)
    >>> params = torch.zeros(2, basis.num_params)
    >>> basis.sample(params, torch.tensor([0.25, 0.5])), basis.pdf(params, torch.zeros(2))
    (tensor([-0.5000,  0.0000]), tensor([0.5000, 0.5000]))
    """

    def __init__(self, bins: int = 4, bound: float = 1.0, min_height: float = 1e-3, min_slope: float = 1e-3):
        if int(bins) != bins or bins < 1:
            raise ValueError(f"bins={bins} must be a positive integer (the spline's pieces)")
        self.bins = int(bins)
        self.bound = check_positive(bound, "bound", "the support half-width, in cells")
        self.min_height = check_positive(min_height, "min_height", "the smallest bin height, as a fraction")
        self.min_slope = check_positive(min_slope, "min_slope", "the smallest knot slope, as a fraction")
        self.num_params = 2 * self.bins + 1

    def _knots(self, params: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Knot values ``(..., bins + 1)`` from -bound to bound, heights ``(..., bins)``, slopes ``(..., bins + 1)``."""
        n, span = self.bins, 2.0 * self.bound
        heights = span * (self.min_height + (1.0 - n * self.min_height) * torch.softmax(params[..., :n], -1))
        knots = F.pad(torch.cumsum(heights, -1), (1, 0)) - self.bound
        # softplus(0 + log(e - 1)) = 1: raw zeros give the mean slope (span per unit of u)
        slopes = span * (self.min_slope + (1.0 - self.min_slope) * F.softplus(params[..., n:] + math.log(math.e - 1.0)))
        return knots, heights, slopes

    def _piece(self, params: Tensor, index: Tensor):
        knots, heights, slopes = self._knots(params)
        take = lambda t, i: t.gather(-1, i.unsqueeze(-1)).squeeze(-1)  # noqa: E731
        y0, h, d0, d1 = take(knots, index), take(heights, index), take(slopes, index), take(slopes, index + 1)
        return y0, h, h * self.bins, d0, d1  # s = h / w with bin width w = 1 / bins

    def sample(self, params: Tensor, noise: Tensor) -> Tensor:
        scaled = noise * self.bins
        index = scaled.detach().floor().clamp(0, self.bins - 1).long()
        xi = scaled - index.to(scaled.dtype)
        y0, h, s, d0, d1 = self._piece(params, index)
        both = xi * (1.0 - xi)
        return y0 + h * (s * xi * xi + d0 * both) / (s + (d1 + d0 - 2.0 * s) * both)

    def _inverse(self, params: Tensor, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(u, Q'(u), inside) at values ``x``: the cdf, the slope of the quantile and the support mask."""
        shape = torch.broadcast_shapes(params.shape[:-1], x.shape)  # searchsorted does not broadcast
        params, x = params.expand(*shape, params.shape[-1]), x.expand(shape)
        knots, _, _ = self._knots(params)
        inside = (x >= -self.bound) & (x <= self.bound)
        xc = x.clamp(-self.bound, self.bound)
        index = (torch.searchsorted(knots[..., 1:-1].contiguous(), xc.unsqueeze(-1).contiguous())
                 .squeeze(-1).clamp(0, self.bins - 1))
        y0, h, s, d0, d1 = self._piece(params, index)
        dy, total = xc - y0, d1 + d0 - 2.0 * s
        a = h * (s - d0) + dy * total
        b = h * d0 - dy * total
        c = -s * dy
        xi = (2.0 * c / (-b - torch.sqrt((b * b - 4.0 * a * c).clamp_min(0.0)))).clamp(0.0, 1.0)
        both = xi * (1.0 - xi)
        slope = s * s * (d1 * xi * xi + 2.0 * s * both + d0 * (1.0 - xi) ** 2) / (s + total * both) ** 2
        return (index.to(x.dtype) + xi) / self.bins, slope, inside

    def cdf(self, params: Tensor, x: Tensor) -> Tensor:
        u, _, _ = self._inverse(params, x)
        return torch.where(x < -self.bound, torch.zeros_like(u), torch.where(x > self.bound, torch.ones_like(u), u))

    def pdf(self, params: Tensor, x: Tensor) -> Tensor:
        _, slope, inside = self._inverse(params, x)
        return torch.where(inside, 1.0 / slope, torch.zeros_like(slope))

    def mean(self, params: Tensor) -> Tensor:
        """``E[Q(U)]`` by 8-point Gauss-Legendre per piece (exact to ~1e-7 for these smooth rational pieces)."""
        nodes = _GL_NODES.to(params.device, params.dtype)
        u = (torch.arange(self.bins, device=params.device, dtype=params.dtype)[:, None] + nodes) / self.bins
        values = self.sample(params[..., None, None, :].expand(*params.shape[:-1], *u.shape, params.shape[-1]),
                             u.expand(*params.shape[:-1], *u.shape))
        return (values * _GL_WEIGHTS.to(params.device, params.dtype)).sum(-1).mean(-1)

    def __repr__(self) -> str:
        return f"QuantileSpline(bins={self.bins}, bound={self.bound})"


LEARNED_BASES = ("shifted_gaussian", "quantile_spline")


def get_learned_basis(name: str) -> LearnedBasis:
    """The family called ``name`` (one of :data:`LEARNED_BASES`) with its default settings."""
    check_choice(name, "basis", LEARNED_BASES)
    return ShiftedGaussian() if name == "shifted_gaussian" else QuantileSpline()


def learned_basis_mean(logits: Tensor, basis_params: Tensor, basis: LearnedBasis) -> Tensor:
    """The mixture's mean ``sum_c pi_c (c + mean_c)`` per axis: ``(B, K, dims)``, x-y-z, cell units (float32, or
    float64 for float64 logits)."""
    grid = tuple(logits.shape[2:])
    dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    prob = torch.softmax(logits.to(dtype).flatten(2), -1)  # (B, K, M)
    means = basis.mean(_cells_last(basis_params.to(dtype), grid))  # (B, K, dims, M)
    return (prob[:, :, None] * (_centres(grid, logits.device, dtype) + means)).sum(-1)


def learned_sampling_argmax(
    logits: Tensor,
    basis_params: Tensor,
    basis: LearnedBasis,
    num_samples: int = 30,
    tau: float = 1.0,
    gumbel: str = "paper",
    generator: torch.Generator | None = None,
    *,
    chunk: int = 8,
) -> Tensor:
    """Samples of ``p(y) = sum_c pi_c f_c(y - c)`` with learned per-cell laws ``f_c``: ``(B, K, S, dims)``.

    Per sample: a relaxed one-hot ``r`` over the flattened grid (Gumbel-softmax, the two forms of
    :func:`~sampling_argmax.functional.sampling_argmax`), an offset per cell and axis drawn from the cell's own
    law, and ``y_a = sum_c r_c (c_a + eps_{c,a})``. As tau -> 0, ``r`` is one cell drawn with probability
    ``pi_c`` and the sample is that cell's centre plus a draw of its law: exactly the mixture. Offsets depend on
    the whole cell, not on its row or column, so the full relaxed map is used (no per-axis marginals).

    Memory is flat in S: samples are computed ``chunk`` at a time and recomputed in backward
    (activation checkpointing), each chunk's noise from its own seed so the recomputation draws it again.

    Args:
        logits: ``(B, K, W)``, ``(B, K, H, W)`` or ``(B, K, D, H, W)``.
        basis_params: ``(B, K, dims, P, *grid)``, axis order x, y, z; P = ``basis.num_params``.
        basis: a :class:`LearnedBasis`.
        num_samples, tau, gumbel, generator: as :func:`~sampling_argmax.functional.sampling_argmax`.
        chunk: samples computed at once.

    >>> basis = ShiftedGaussian()
    >>> logits, params = torch.randn(2, 3, 8, 8), torch.zeros(2, 3, 2, 2, 8, 8)
    >>> learned_sampling_argmax(logits, params, basis, num_samples=5).shape
    torch.Size([2, 3, 5, 2])
    """
    dims = check_logits(logits, shape_hint="(B, K, W), (B, K, H, W) or (B, K, D, H, W)")
    grid = tuple(logits.shape[2:])
    expected = (*logits.shape[:2], dims, basis.num_params, *grid)
    if not isinstance(basis_params, Tensor) or tuple(basis_params.shape) != expected:
        got = tuple(basis_params.shape) if isinstance(basis_params, Tensor) else type(basis_params).__name__
        raise ValueError(f"basis_params must have shape (B, K, dims, P, *grid) = {expected} for logits "
                         f"{tuple(logits.shape)} and {basis!r} (P = {basis.num_params}), got {got}")
    num_samples = check_num_samples(num_samples)
    tau = check_tau(tau)
    check_choice(gumbel, "gumbel", GUMBEL_MODES)
    dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    x = logits.to(dtype).flatten(2)
    params = _cells_last(basis_params.to(dtype), grid)  # (B, K, dims, M, P)
    centres = _centres(grid, logits.device, dtype)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device if generator else None))
    outputs = []
    for start in range(0, num_samples, chunk):
        count = min(chunk, num_samples - start)
        args = (x, params, centres, basis, count, tau, gumbel, seed + start)
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or params.requires_grad)
        outputs.append(checkpoint(_chunk, *args, use_reentrant=False) if needs_grad else _chunk(*args))
    return torch.cat(outputs, dim=2)


def _chunk(x, params, centres, basis, count, tau, gumbel, seed) -> Tensor:
    """``count`` samples ``(B, K, count, dims)``; all noise from ``seed`` (so a recomputation is identical)."""
    gen = torch.Generator(device=x.device).manual_seed(seed)
    b, k, m = x.shape
    dims = params.shape[2]
    u = torch.rand((b, k, count, m), generator=gen, device=x.device, dtype=x.dtype)
    tiny = torch.finfo(x.dtype).tiny
    gumbel_noise = -torch.log(-torch.log(u.clamp(tiny, 1.0 - 1e-7)))
    xs = x[:, :, None]
    # paper: softmax((x + g) / tau); authors: softmax(x + g / tau) = softmax((tau x + g) / tau)
    y = xs + gumbel_noise if gumbel == "paper" else xs * tau + gumbel_noise
    y = y - y.detach().amax(-1, keepdim=True)  # shift-invariant: overflow-free at tiny tau
    r = torch.softmax(y / tau, dim=-1)  # (B, K, c, M)
    draws = basis.noise((b, k, count, dims, m), gen, x.device, x.dtype)
    offsets = basis.sample(params[:, :, None].expand(b, k, count, dims, m, params.shape[-1]), draws)
    return (r[:, :, :, None] * (centres + offsets)).sum(-1)


def _cells_last(basis_params: Tensor, grid: tuple[int, ...]) -> Tensor:
    """``(B, K, dims, P, *grid)`` -> ``(B, K, dims, M, P)`` with the cells flattened."""
    b, k, dims, p = basis_params.shape[:4]
    return basis_params.reshape(b, k, dims, p, -1).transpose(-1, -2)


def _centres(grid: tuple[int, ...], device, dtype=torch.float32) -> Tensor:
    """Cell centres ``(dims, M)`` of the flattened grid, x-y-z order."""
    axes = torch.meshgrid(*(torch.arange(n, device=device, dtype=dtype) for n in grid), indexing="ij")
    return torch.stack([a.reshape(-1) for a in reversed(axes)])

