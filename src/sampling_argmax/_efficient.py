"""Memory-efficient sampling-argmax: a custom autograd.Function that never holds S relaxed maps.

Noise protocol (shared with the reference implementation, so both draw identical numbers from the same
generator): for each sample s in order, one ``rand`` call of shape (B, K, M) for the Gumbel noise of the
flattened map, then one basis-offset call per axis in x, y, z order (shape (B, K, n_axis); (B, K, N) per
coordinate for point sets).

Forward keeps two (B, K, M) buffers (noise, relaxed sample); it saves the logits, the (B, K, S, dims) output and the generator state.
Backward restores the state into a private generator, regenerates each relaxed sample in turn and
accumulates the analytic gradient through the Gumbel softmax:

    r = softmax(z),  z = (x + g)/tau ("paper") or x + g/tau ("authors"),  out_a = sum_j marg_a(r)_j pos_aj
    dL/dz = r * (v - <r, v>),  v_m = sum_a dL/dout_a * pos_a(m),  <r, v> = sum_a dL/dout_a * out_a

The log-softmax between logits and z is dropped: the softmax of z is invariant to shifting x per row, so
its Jacobian correction (pi * sum dL/dlogpi) is identically zero. Peak memory is three (B, K, M) buffers in
backward (gradient accumulator, noise, relaxed sample), independent of S.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .bases import Basis


def relaxed_sample(zbuf: Tensor, out: Tensor, x: Tensor, tau: float, gumbel: str,
                   generator: torch.Generator) -> Tensor:
    """Draw the Gumbel noise of one sample into ``zbuf`` (B, K, M) and write its relaxed one-hot to ``out``.

    With ``g = -log(L)``, ``L = -log(u)``: "paper" ``softmax((x + g)/tau)`` (``log pi = x - lse(x)``; the
    shift cancels in the softmax), "authors" ``softmax(x + g/tau)``. Everything runs in the two buffers.
    """
    zbuf.uniform_(generator=generator)
    neg_gumbel_from_uniform_(zbuf)
    if gumbel == "paper":
        torch.sub(x, zbuf, out=zbuf)
        if tau != 1.0:
            zbuf.mul_(1.0 / tau)
    else:
        torch.add(x, zbuf, alpha=-1.0 / tau, out=zbuf)
    return torch.softmax(zbuf, dim=-1, out=out)


def neg_gumbel_from_uniform_(u: Tensor) -> Tensor:
    """In place ``-g = log(-log(u))``. u = 0 (probability 2^-24 in float32) gives g = -inf: a cell that
    cannot win this sample, which softmax and its gradient handle exactly (weight 0)."""
    return u.log_().neg_().log_()


def draw_offsets(basis: Basis, shapes, generator, device, dtype) -> list[Tensor]:
    return [basis.sample(shape, generator=generator, device=device, dtype=dtype) for shape in shapes]


def offset_shapes(batch: int, keypoints: int, grid: tuple[int, ...] | None, num_points: int, dims: int):
    """Shapes of the per-axis offset draws, in x, y, z order (``grid`` in tensor layout, e.g. (H, W))."""
    if grid is None:
        return [(batch, keypoints, num_points)] * dims
    return [(batch, keypoints, n) for n in reversed(grid)]


def grid_marginal(r: Tensor, grid: tuple[int, ...], axis: int) -> Tensor:
    """Marginal over axis ``axis`` (x = 0) of ``r`` shaped (..., *grid)."""
    nd = len(grid)
    other = [-1 - b for b in range(nd) if b != axis]
    return r.sum(dim=other) if other else r


def axis_positions(grid, points: Tensor | None, axis: int, like: Tensor) -> Tensor:
    """Cell centres of a grid axis, (n,), or the point coordinates of a point set, (B, 1, N)."""
    if points is None:
        return torch.arange(grid[len(grid) - 1 - axis], device=like.device, dtype=like.dtype)
    return points[:, None, :, axis]


class SamplingArgmaxFunction(torch.autograd.Function):
    """``(x (B,K,M), points (B,N,d) | None) -> samples (B, K, S, dims)``; see the module docstring."""

    @staticmethod
    def forward(ctx, x, points, grid, num_samples, tau, gumbel, basis, generator):
        b, k, m = x.shape
        dims = len(grid) if points is None else points.shape[-1]
        shapes = offset_shapes(b, k, grid, m, dims)
        ctx.state = generator.get_state()
        out = x.new_empty(b, k, num_samples, dims)
        zbuf, rbuf = torch.empty_like(x), torch.empty_like(x)
        for s in range(num_samples):
            r = relaxed_sample(zbuf, rbuf, x, tau, gumbel, generator)
            eps = draw_offsets(basis, shapes, generator, x.device, x.dtype)
            rv = r if points is not None else r.view(b, k, *grid)
            for a in range(dims):
                weights = rv if points is not None else grid_marginal(rv, grid, a)
                pos = axis_positions(grid, points, a, x)
                out[:, :, s, a] = (weights * (eps[a] + pos)).sum(-1)
        ctx.save_for_backward(x, points, out)
        ctx.grid, ctx.tau, ctx.gumbel, ctx.basis = grid, tau, gumbel, basis
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        x, points, out = ctx.saved_tensors
        grid, tau, gumbel, basis = ctx.grid, ctx.tau, ctx.gumbel, ctx.basis
        b, k, m = x.shape
        num_samples, dims = out.shape[2], out.shape[3]
        shapes = offset_shapes(b, k, grid, m, dims)
        generator = torch.Generator(device=x.device)
        generator.set_state(ctx.state)
        grad_out = grad_out.to(x.dtype)
        scale = 1.0 / tau if gumbel == "paper" else 1.0
        want_points = points is not None and ctx.needs_input_grad[1]
        grad_x = torch.zeros_like(x)
        grad_points = torch.zeros_like(points) if want_points else None
        inner = (grad_out * out).sum(-1, keepdim=True)  # <r, v> per sample: (B, K, S, 1)
        zbuf, rbuf = torch.empty_like(x), torch.empty_like(x)
        gx = grad_x if points is not None else grad_x.view(b, k, *grid)
        for s in range(num_samples):
            r = relaxed_sample(zbuf, rbuf, x, tau, gumbel, generator)
            eps = draw_offsets(basis, shapes, generator, x.device, x.dtype)
            g = grad_out[:, :, s]
            rv = r if points is not None else r.view(b, k, *grid)
            for a in range(dims):
                v = (eps[a] + axis_positions(grid, points, a, x)) * g[:, :, a, None]  # (B, K, n_a)
                if a == 0:  # fold -<r, v> into the first axis: one full-size pass per axis
                    v = v - inner[:, :, s]
                if points is None:  # broadcast the per-axis vector along the other grid axes
                    v = v.view(b, k, *([1] * (len(grid) - 1 - a)), v.shape[-1], *([1] * a))
                gx.addcmul_(rv, v, value=scale)
            if want_points:
                grad_points += torch.einsum("bkn,bkd->bnd", r, g)
        return grad_x, grad_points, None, None, None, None, None, None
