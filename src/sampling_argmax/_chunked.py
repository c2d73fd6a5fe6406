"""Sampling-argmax without holding S relaxed maps: a custom autograd.Function over chunks of samples.

Noise: counter-based (:mod:`sampling_argmax._noise`). A call draws one int64 seed from its generator; the
Gumbel noise of sample s at cell (b, k, m) and its basis offsets are hashes of (seed, s, cell), so backward
regenerates any chunk of samples from the seed alone, and the reference path (all S samples at once) draws
the very same numbers.

Relaxed sample, with ``E = -log u ~ Exp(1)`` (so the Gumbel noise is ``g = -log E``), ``x' = x - max x``
and ``a = 1`` ("paper": ``softmax((log pi + g)/tau)``) or ``a = tau`` ("authors": ``softmax(x + g/tau)``):

    r = w / sum w,   w = exp((a x' - log E) / tau - shift)

computed in one of three forms (:func:`relax_mode`), all equal in exact arithmetic:

* ``"one"`` (tau = 1, both forms): ``w = pi' / E`` with ``pi' = exp(x')`` computed once per call -- one
  ``log`` and a division per cell, no exp: ``pi' <= 1`` and ``E >= 2^-24`` bound w by 1.7e7;
* ``"bounded"`` (tau >= ``BOUNDED_MIN_TAU``): ``shift = LOG_E_BOUND / tau`` bounds the exponent by 0 without a
  max over the sample (``-log E <= LOG_E_BOUND``); the winning cell's exponent is at least
  ``-(log 16.64 + 16.64)/tau`` >= -65, far from float32's underflow;
* ``"shifted"`` (small tau): ``y = a x' - log E``, ``w = exp((y - max y)/tau)``: the max is subtracted before
  the division magnifies it, as small temperatures need (near-tie differences survive, no overflow).

The read-out never normalizes the map: the per-axis marginals of w are divided by their total, so a chunk
costs one pass that makes w and the reductions that read it. Output per axis ``out_a = sum_j marg_a(r)_j
pos_aj`` relative to an **anchor**, the perturbed position of the cell where the relaxed marginal peaks (at
small tau r is nearly one-hot and ``v - <r, v>`` in the gradient would otherwise be a difference of two
grid-sized numbers whose rounding is multiplied by 1/tau).

Backward regenerates w chunk by chunk and accumulates the analytic gradient through the Gumbel softmax:

    dL/dx = (1/tau if "paper" else 1) * sum_s r * (v - <r, v>),  v_m = sum_a dL/dout_a * pos_a(m)

(the max subtractions and the log-softmax drop out: r is invariant to shifting x per row). Peak memory is a
few maps (gradient accumulator, noise and weights of a chunk, the per-call ``pi'``) whatever S is; the price of
not holding S relaxed maps is drawing the noise twice. The chunk functions below are plain tensor code: the
"chunked" implementation runs them eagerly, the "fused" one through ``torch.compile`` (:mod:`._fused`).
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from . import _fused, _native
from ._checks import no_autocast
from ._noise import LOG_E_BOUND, exponentials, sample_keys, uniforms
from .bases import get_basis

#: Samples are processed ``chunk`` at a time with ``chunk = clamp(CHUNK_BYTES // (2 * map bytes), 1, S)``:
#: maps of 4 MiB and more go one sample at a time; small maps batch several samples per op to amortize
#: per-op overhead. Peak memory stays below a few maps + ``CHUNK_BYTES`` whatever S is.
CHUNK_BYTES = 8 * 2**20
#: Smallest temperature of the "bounded" form (one pass per sample, no max); below it the "shifted" form.
BOUNDED_MIN_TAU = 0.3


#: The native kernel's chunks: its per-sample tensors on a grid are per axis, (C, B, K, W + H [+ D]), and a few
#: of them live at once; one is kept below an eighth of a map or ``AXIS_CHUNK_BYTES``, whichever is larger
#: (small maps: fewer, larger chunks; the per-chunk overhead is ~20 small torch ops).
AXIS_CHUNK_BYTES = 2**18


def chunk_size(x: Tensor, num_samples: int, length: int | None = None) -> int:
    """Samples per chunk: maps (eager, compiled, native on points) or, given ``length``, per-axis vectors of that
    length (native on grids)."""
    if length is not None:
        budget = max(AXIS_CHUNK_BYTES, x.numel() * x.element_size() // 8)
        return max(1, min(num_samples, budget // (x.shape[0] * x.shape[1] * length * x.element_size())))
    return max(1, min(num_samples, CHUNK_BYTES // (2 * x.numel() * x.element_size())))


def relax_mode(tau: float) -> str:
    return "one" if tau == 1.0 else "bounded" if tau >= BOUNDED_MIN_TAU else "shifted"


def prepare(x: Tensor, tau: float, gumbel: str, mode: str) -> Tensor:
    """The per-call, per-cell part of the log-weights (see the module docstring), ``(B, K, M)``."""
    shifted = x - x.detach().amax(-1, keepdim=True)  # <= 0; r does not depend on the shift: no gradient
    inplace = not shifted.requires_grad  # inside the autograd Function: one map, not two
    if mode == "one":
        return shifted.exp_() if inplace else shifted.exp()
    scale = 1.0 if gumbel == "authors" else 1.0 / tau
    if mode == "bounded":
        return shifted.mul_(scale).sub_(LOG_E_BOUND / tau) if inplace else shifted * scale - LOG_E_BOUND / tau
    return shifted.mul_(scale * tau) if inplace else shifted * (scale * tau)


def relaxed_weights(prep: Tensor, e: Tensor, inv_tau: Tensor, mode: str) -> Tensor:
    """Unnormalized relaxed sample w (C, B, K, M) from ``prepare``'s output and the exponentials ``e``
    (C, B, K, M; overwritten). ``inv_tau`` is a 0-dim tensor, so that compiled code does not specialize on tau."""
    if mode == "one":
        return prep / e if prep.requires_grad else e.reciprocal_().mul_(prep)
    if mode == "bounded":
        return e.log_().mul_(inv_tau).neg_().add_(prep).exp_()
    y = e.log_().neg_().add_(prep)
    return y.sub_(y.detach().amax(-1, keepdim=True)).mul_(inv_tau).exp_()


def perturbed_positions(keys: Tensor, batch: int, keypoints: int, positions: Tensor, basis: str, sigma: float,
                        dtype: torch.dtype, draw=uniforms) -> Tensor:
    """Cell positions plus basis offsets, ``(C, B, K, L)``; ``positions`` (L,) for grids, (B, 1, L) for points.
    ``draw``: the uniforms' implementation (:func:`._noise.uniforms` or the native kernel's, same bits)."""
    c, length = keys.shape[0], positions.shape[-1]
    count = batch * keypoints * length
    offsets = get_basis(basis, sigma).from_uniforms(draw(keys[:, 1], count, dtype), draw(keys[:, 2], count, dtype))
    return offsets.view(c, batch, keypoints, length).add_(positions)


def grid_marginal(r: Tensor, grid: tuple[int, ...], axis: int) -> Tensor:
    """Marginal over axis ``axis`` (x = 0) of ``r`` shaped (..., *grid)."""
    nd = len(grid)
    other = [-1 - b for b in range(nd) if b != axis]
    return r.sum(dim=other) if other else r


def _broadcast(va: Tensor, grid: tuple[int, ...], axis: int) -> Tensor:
    """Per-axis vector (..., n_a) -> shape broadcastable against (..., *grid) along ``axis``."""
    nd = len(grid)
    return va.reshape(*va.shape[:-1], *([1] * (nd - 1 - axis)), va.shape[-1], *([1] * axis))


def _anchor_(perturbed: Tensor, index: Tensor, segments: Tensor) -> Tensor:
    """Subtract from ``perturbed`` (C, B, K, L), in place, its entries at ``index`` (C, B, K, dims) along their
    axes; return those anchors (C, B, K, dims)."""
    anchor = perturbed.gather(-1, index)
    perturbed.sub_(anchor @ segments.T)
    return anchor


def read_out(sums: Tensor, perturbed: Tensor, segments: Tensor, grid: tuple[int, ...] | None,
             sizes: tuple[int, ...]):
    """From the per-axis sums of w (C, B, K, L') -- the unnormalized marginals of a grid, w itself on a point set
    -- and the perturbed positions (C, B, K, L; anchored in place): anchor-relative read-out, anchors, anchor index
    into L (each (C, B, K, dims)) and the totals ``sum w`` (C, B, K, 1)."""
    starts = torch.tensor([sum(sizes[:a]) for a in range(len(sizes))], device=sums.device)
    if grid is None:  # points: every axis reads the same weights
        total = sums.sum(-1, keepdim=True)
        r = sums / total
        index = r.argmax(-1, keepdim=True) + starts
        anchor = _anchor_(perturbed, index, segments)
        return (r.unsqueeze(-2) * perturbed.unflatten(-1, (len(sizes), -1))).sum(-1), anchor, index, total
    total = sums[..., : sizes[0]].sum(-1, keepdim=True)
    index = torch.cat([m.argmax(-1, keepdim=True) for m in sums.split(sizes, dim=-1)], dim=-1) + starts
    anchor = _anchor_(perturbed, index, segments)
    return (sums / total * perturbed) @ segments, anchor, index, total


def forward_chunk(prep: Tensor, keys: Tensor, inv_tau: Tensor, positions: Tensor, segments: Tensor, mode: str,
                  grid: tuple[int, ...] | None, sizes: tuple[int, ...], basis: str, sigma: float):
    """Samples of one chunk: ``keys`` (C, STREAMS) -> :func:`read_out`'s four tensors. ``positions``,
    ``segments``: see :func:`layout`."""
    c, (b, k, m) = keys.shape[0], prep.shape
    w = relaxed_weights(prep, exponentials(keys[:, 0], b * k * m, prep.dtype).view(c, b, k, m), inv_tau, mode)
    sums = w if grid is None else torch.cat([grid_marginal(w.view(c, b, k, *grid), grid, a)
                                             for a in range(len(grid))], dim=-1)
    perturbed = perturbed_positions(keys, b, k, positions, basis, sigma, prep.dtype)
    return read_out(sums, perturbed, segments, grid, sizes)


def native_forward_chunk(prep: Tensor, keys: Tensor, tau: float, positions: Tensor, segments: Tensor, mode: str,
                         grid: tuple[int, ...] | None, sizes: tuple[int, ...], basis: str, sigma: float):
    """:func:`forward_chunk` with the per-cell work in the native CPU kernel (:mod:`._native`); on a point set or a
    1D grid, whose per-axis work is as large as the map, all of it, offsets and read-out included."""
    b, k, _ = prep.shape
    if grid is None or len(grid) == 1:
        return _native.point_forward(prep, keys, 1.0 / tau, mode, positions, len(sizes), basis, sigma)
    sums = _native.forward_sums(prep, keys[:, 0].contiguous(), 1.0 / tau, mode, grid)
    perturbed = perturbed_positions(keys, b, k, positions, basis, sigma, prep.dtype, _native.uniforms)
    return read_out(sums, perturbed, segments, grid, sizes)


def axis_terms(keys: Tensor, batch: int, keypoints: int, positions: Tensor, segments: Tensor, index: Tensor,
               g: Tensor, basis: str, sigma: float, dtype: torch.dtype, draw=uniforms) -> Tensor:
    """``v`` (C, B, K, L): each axis's anchor-relative perturbed positions times its output gradient."""
    perturbed = perturbed_positions(keys, batch, keypoints, positions, basis, sigma, dtype, draw)
    _anchor_(perturbed, index, segments)
    return perturbed.mul_(g @ segments.T)


def backward_chunk(grad_x: Tensor, prep: Tensor, keys: Tensor, inv_tau: Tensor, positions: Tensor,
                   segments: Tensor, total: Tensor, index: Tensor, g: Tensor, inner: Tensor, scale: Tensor, mode: str,
                   grid: tuple[int, ...] | None, sizes: tuple[int, ...], basis: str, sigma: float) -> Tensor | None:
    """``grad_x += scale * sum_c r_c * (v_c - inner_c)`` for one chunk, in place, with the forward's totals
    (C, B, K, 1) and anchor index (C, B, K, dims); g (C, B, K, dims) and inner (C, B, K, 1) as in the module
    docstring. Returns the chunk's gradient w.r.t. the points ``(B, N, d)`` (points only, else None)."""
    c, (b, k, m) = keys.shape[0], prep.shape
    r = relaxed_weights(prep, exponentials(keys[:, 0], b * k * m, prep.dtype).view(c, b, k, m), inv_tau, mode)
    r = r.div_(total)
    v = axis_terms(keys, b, k, positions, segments, index, g, basis, sigma, prep.dtype)
    if grid is None:
        grad_points = torch.einsum("cbkn,cbkd->bnd", r, g)
        weight = v.unflatten(-1, (len(sizes), -1)).sum(-2).sub_(inner)  # (C, B, K, N)
    else:
        grad_points = None
        parts = v.split(sizes, dim=-1)
        weight = (parts[0] - inner).view(c, b, k, *([1] * (len(grid) - 1)), sizes[0])
        for a in range(1, len(grid)):
            weight = weight + _broadcast(parts[a], grid, a)
        weight = weight.reshape(c, b, k, m)
    r = r.mul_(scale).mul_(weight)  # scaled after the points' gradient, which has no 1/tau
    grad_x.add_(r[0] if c == 1 else r.sum(0))
    return grad_points


def native_backward_chunk(grad_x: Tensor, prep: Tensor, keys: Tensor, tau: float, positions: Tensor,
                          segments: Tensor, total: Tensor, index: Tensor, g: Tensor, inner: Tensor, scale: float,
                          mode: str, grid: tuple[int, ...] | None, sizes: tuple[int, ...], basis: str,
                          sigma: float, want_points: bool = False) -> Tensor | None:
    """:func:`backward_chunk` with the per-cell work in the native CPU kernel (:mod:`._native`); on a point set or a
    1D grid all of it (the relaxed samples are made only for the points' gradient, ``want_points``)."""
    b, k, _ = prep.shape
    if grid is None or len(grid) == 1:
        r = _native.point_backward(grad_x, prep, keys, 1.0 / tau, mode, positions, len(sizes), basis, sigma, total,
                                   index, g, inner, scale, want_points)
        return None if r is None else torch.einsum("cbkn,cbkd->bnd", r, g)
    terms = axis_terms(keys, b, k, positions, segments, index, g, basis, sigma, prep.dtype, _native.uniforms)
    terms[..., : sizes[0]] -= inner
    _native.backward_accumulate(grad_x, prep, keys[:, 0].contiguous(), 1.0 / tau, mode, grid, total, terms, scale)
    return None


class SamplingArgmaxFunction(torch.autograd.Function):
    """``(x (B,K,M), points (B,N,d) | None) -> samples (B, K, S, dims)``; see the module docstring.
    ``fused``: run the chunk functions through ``torch.compile`` (:mod:`._fused`)."""

    @staticmethod
    def forward(ctx, x, points, grid, num_samples, tau, gumbel, basis, sigma, seed, fused):
        mode = relax_mode(tau)
        kind = _fused.kind(x, mode) if fused else "eager"
        positions, segments, sizes = layout(grid, points, x)
        keys = sample_keys(seed, num_samples, x.device)
        prep = prepare(x, tau, gumbel, mode)
        if kind == "native":  # per-axis outputs on a grid, (C, B, K, d) on points and 1D: chunks of many samples
            chunk = num_samples if grid is None or len(grid) == 1 else chunk_size(x, num_samples, positions.shape[-1])
            run = functools.partial(native_forward_chunk, prep, tau=tau)
        else:
            chunk = chunk_size(x, num_samples)
            run = functools.partial(_fused.compiled(forward_chunk) if kind == "compiled" else forward_chunk, prep,
                                    inv_tau=x.new_tensor(1.0 / tau))
        results = []
        for s0 in range(0, num_samples, chunk):
            results.append(run(keys=keys[s0 : s0 + chunk], positions=positions, segments=segments, mode=mode,
                               grid=grid, sizes=sizes, basis=basis, sigma=sigma))
        relative, anchors, index, total = (torch.cat(parts) for parts in zip(*results))
        out = (relative + anchors).permute(1, 2, 0, 3).contiguous()  # (B, K, S, dims)
        ctx.save_for_backward(x, points, relative, index, total)
        ctx.config = (grid, tau, gumbel, basis, sigma, seed, kind)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        with no_autocast(grad_out):  # backward may run inside a user's autocast region; stay in float32
            return SamplingArgmaxFunction._backward(ctx, grad_out)

    @staticmethod
    def _backward(ctx, grad_out):
        x, points, relative, index, total = ctx.saved_tensors
        grid, tau, gumbel, basis, sigma, seed, kind = ctx.config
        num_samples = relative.shape[0]
        mode = relax_mode(tau)
        positions, segments, sizes = layout(grid, points, x)
        keys = sample_keys(seed, num_samples, x.device)
        prep = prepare(x, tau, gumbel, mode)
        scale = 1.0 / tau if gumbel == "paper" else 1.0
        want_points = points is not None and ctx.needs_input_grad[1]
        grad_s = grad_out.to(x.dtype).permute(2, 0, 1, 3)  # (S, B, K, dims)
        inner = (grad_s * relative).sum(-1, keepdim=True)  # <r, v> per sample, anchor-relative: (S, B, K, 1)
        grad_x = torch.zeros_like(x)
        grad_points = torch.zeros_like(points) if want_points else None
        if kind == "native":  # on points, map-sized output only for the points' gradient (the relaxed samples)
            chunk = chunk_size(x, num_samples) if want_points else num_samples if grid is None or len(grid) == 1 \
                else chunk_size(x, num_samples, positions.shape[-1])
            run = functools.partial(native_backward_chunk, grad_x, prep, tau=tau, scale=scale,
                                    want_points=want_points)
        else:
            chunk = chunk_size(x, num_samples)
            run = functools.partial(_fused.compiled(backward_chunk) if kind == "compiled" else backward_chunk,
                                    grad_x, prep, inv_tau=x.new_tensor(1.0 / tau), scale=x.new_tensor(scale))
        for s0 in range(0, num_samples, chunk):
            part = slice(s0, s0 + chunk)
            gp = run(keys=keys[part], positions=positions, segments=segments, total=total[part], index=index[part],
                     g=grad_s[part], inner=inner[part], mode=mode, grid=grid, sizes=sizes, basis=basis, sigma=sigma)
            if want_points:
                grad_points += gp
        return grad_x, grad_points, None, None, None, None, None, None, None, None


def layout(grid, points, like) -> tuple[Tensor, Tensor, tuple[int, ...]]:
    """Where the cells sit, per axis: concatenated positions (L,) of a grid (x, y, z) or (B, 1, d N) of a point
    set; the (L, dims) indicator of the axis of each entry (per-axis sums as one matmul); the per-axis lengths."""
    if points is None:
        sizes = tuple(reversed(grid))
        positions = torch.cat([torch.arange(n, device=like.device, dtype=like.dtype) for n in sizes])
    else:
        b, n, d = points.shape
        sizes, positions = (n,) * d, points.transpose(1, 2).reshape(b, 1, d * n)
    axis_of = torch.repeat_interleave(torch.arange(len(sizes), device=like.device),
                                      torch.tensor(sizes, device=like.device))
    return positions, torch.nn.functional.one_hot(axis_of, len(sizes)).to(like.dtype), sizes
