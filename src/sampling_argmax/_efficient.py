"""Memory-efficient sampling-argmax: a custom autograd.Function that never holds S relaxed maps.

Noise protocol (shared with the reference implementation, so both draw identical numbers from the same
generator): for each sample s in order, one ``rand`` call of shape (B, K, M) for the Gumbel noise of the
flattened map, then one basis-offset call of shape (B, K, L) holding every axis's per-cell offsets one
after the other (x, y, z; L = W + H + D) -- for point sets the d coordinates of the N points (L = d N).

Forward keeps two (B, K, M) buffers (noise, relaxed sample); it saves the logits, the (B, K, S, dims)
output and the generator state. Backward restores the state into a private generator, regenerates each
relaxed sample in turn and accumulates the analytic gradient through the Gumbel softmax:

    r = softmax(z),  z = (x + g)/tau ("paper") or x + g/tau ("authors"),  out_a = sum_j marg_a(r)_j pos_aj
    dL/dz = r * (v - <r, v>),  v_m = sum_a dL/dout_a * pos_a(m),  <r, v> = sum_a dL/dout_a * out_a

The log-softmax between logits and z is dropped: the softmax of z is invariant to shifting x per row, so
its Jacobian correction (pi * sum dL/dlogpi) is identically zero. Peak memory is three (B, K, M) buffers in
backward (gradient accumulator, noise, relaxed sample), independent of S; the per-sample loop trades the
S-fold memory of the reference for drawing the noise twice.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._checks import no_autocast
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


class Layout:
    """Where the cells of one map sit, per axis: grid cell centres or point coordinates.

    Holds the concatenated positions ``(L,)`` (grid) or ``(B, 1, L)`` (points) and the per-axis segment
    lengths, so that one sample's offsets, read-out and gradient take a handful of ops.
    """

    def __init__(self, batch: int, keypoints: int, grid: tuple[int, ...] | None, points: Tensor | None,
                 like: Tensor):
        self.batch, self.keypoints, self.grid, self.points = batch, keypoints, grid, points
        if points is None:
            self.sizes = tuple(reversed(grid))  # x, y, z
            self.positions = torch.cat([torch.arange(n, device=like.device, dtype=like.dtype) for n in self.sizes])
        else:
            self.sizes = (points.shape[1],) * points.shape[2]
            self.positions = points.transpose(1, 2).reshape(batch, 1, -1)
        self.dims = len(self.sizes)
        # (L, dims) indicator of the axis each concatenated entry belongs to: per-axis sums as one matmul
        axis_of = torch.repeat_interleave(torch.arange(self.dims, device=like.device),
                                          torch.tensor(self.sizes, device=like.device))
        self.segments = torch.nn.functional.one_hot(axis_of, self.dims).to(like.dtype)

    def draw_offsets(self, basis: Basis, generator, like: Tensor) -> Tensor:
        """One sample's basis offsets, (B, K, L)."""
        return basis.sample((self.batch, self.keypoints, sum(self.sizes)), generator=generator,
                            device=like.device, dtype=like.dtype)

    def split(self, values: Tensor) -> tuple[Tensor, ...]:
        """(..., L) -> per-axis (..., n_a) views, x, y, z order."""
        return values.split(self.sizes, dim=-1)

    def readout(self, r: Tensor, perturbed: Tensor) -> Tensor:
        """``out_a = sum_j marg_a(r)_j perturbed_aj`` for one sample: r (B, K, M), perturbed (B, K, L)."""
        b, k = self.batch, self.keypoints
        if self.points is not None:
            return (r[:, :, None, :] * perturbed.view(b, k, self.dims, -1)).sum(-1)
        rv = r.view(b, k, *self.grid)
        marg = torch.cat([grid_marginal(rv, self.grid, a) for a in range(self.dims)], dim=-1)
        return (marg * perturbed) @ self.segments

    def accumulate_grad(self, grad: Tensor, r: Tensor, perturbed: Tensor, g: Tensor, inner: Tensor,
                        scale: float) -> None:
        """``grad += scale * r * (v - inner)`` with ``v_m = sum_a g_a perturbed_a(m)``, in place."""
        b, k = self.batch, self.keypoints
        v = perturbed * (g @ self.segments.T)  # (B, K, L): each axis's positions times its output gradient
        if self.points is not None:
            grad.addcmul_(r, v.view(b, k, self.dims, -1).sum(2).sub_(inner), value=scale)
            return
        gv, rv = grad.view(b, k, *self.grid), r.view(b, k, *self.grid)
        for a, va in enumerate(self.split(v)):
            if a == 0:  # fold -<r, v> into the first axis: one full-size pass per axis
                va = va - inner
            nd = len(self.grid)
            gv.addcmul_(rv, va.reshape(b, k, *([1] * (nd - 1 - a)), va.shape[-1], *([1] * a)), value=scale)


def grid_marginal(r: Tensor, grid: tuple[int, ...], axis: int) -> Tensor:
    """Marginal over axis ``axis`` (x = 0) of ``r`` shaped (..., *grid)."""
    nd = len(grid)
    other = [-1 - b for b in range(nd) if b != axis]
    return r.sum(dim=other) if other else r


class SamplingArgmaxFunction(torch.autograd.Function):
    """``(x (B,K,M), points (B,N,d) | None) -> samples (B, K, S, dims)``; see the module docstring."""

    @staticmethod
    def forward(ctx, x, points, grid, num_samples, tau, gumbel, basis, generator):
        b, k, _ = x.shape
        layout = Layout(b, k, grid, points, x)
        ctx.state = generator.get_state()
        out = x.new_empty(num_samples, b, k, layout.dims)
        zbuf, rbuf = torch.empty_like(x), torch.empty_like(x)
        for s in range(num_samples):
            r = relaxed_sample(zbuf, rbuf, x, tau, gumbel, generator)
            perturbed = layout.draw_offsets(basis, generator, x).add_(layout.positions)
            out[s] = layout.readout(r, perturbed)
        out = out.permute(1, 2, 0, 3).contiguous()  # (B, K, S, dims)
        ctx.save_for_backward(x, points, out)
        ctx.grid, ctx.tau, ctx.gumbel, ctx.basis = grid, tau, gumbel, basis
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        with no_autocast(grad_out):  # backward may run inside a user's autocast region; stay in float32
            return SamplingArgmaxFunction._backward(ctx, grad_out)

    @staticmethod
    def _backward(ctx, grad_out):
        x, points, out = ctx.saved_tensors
        tau, gumbel, basis = ctx.tau, ctx.gumbel, ctx.basis
        b, k, _ = x.shape
        layout = Layout(b, k, ctx.grid, points, x)
        generator = torch.Generator(device=x.device)
        generator.set_state(ctx.state)
        grad_out = grad_out.to(x.dtype)
        scale = 1.0 / tau if gumbel == "paper" else 1.0
        want_points = points is not None and ctx.needs_input_grad[1]
        grad_x = torch.zeros_like(x)
        grad_points = torch.zeros_like(points) if want_points else None
        inner = (grad_out * out).sum(-1, keepdim=True)  # <r, v> per sample: (B, K, S, 1)
        zbuf, rbuf = torch.empty_like(x), torch.empty_like(x)
        for s in range(out.shape[2]):
            r = relaxed_sample(zbuf, rbuf, x, tau, gumbel, generator)
            perturbed = layout.draw_offsets(basis, generator, x).add_(layout.positions)
            g = grad_out[:, :, s]
            layout.accumulate_grad(grad_x, r, perturbed, g, inner[:, :, s], scale)
            if want_points:
                grad_points += torch.einsum("bkn,bkd->bnd", r, g)
        return grad_x, grad_points, None, None, None, None, None, None
