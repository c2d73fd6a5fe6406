"""Memory-efficient sampling-argmax: a custom autograd.Function that never holds S relaxed maps.

Noise protocol (shared with the reference implementation, so both draw identical numbers from the same
generator): for each sample s in order, one ``rand`` call of shape (B, K, M) for the Gumbel noise of the
flattened map, then one basis-offset call of shape (B, K, L) holding every axis's per-cell offsets one
after the other (x, y, z; L = W + H + D) -- for point sets the d coordinates of the N points (L = d N).

Forward runs the samples in chunks of C (C = 1 for maps of 4 MiB and more, see ``CHUNK_BYTES``) with two
(C, B, K, M) buffers (noise, relaxed samples); it saves the logits, the (B, K, S, dims) output relative to
each sample's anchor (below), the anchor cells and the generator state. Backward restores the state into a
private generator, regenerates the relaxed samples chunk by chunk and accumulates the analytic gradient
through the Gumbel softmax:

    r = softmax(z),  z = (y - max y)/tau,  y = x + g ("paper") or tau x + g ("authors")
    out_a = sum_j marg_a(r)_j pos_aj
    dL/dz = r * (v - <r, v>),  v_m = sum_a dL/dout_a * pos_a(m),  <r, v> = sum_a dL/dout_a * out_a

The log-softmax between logits and z is dropped: the softmax of z is invariant to shifting x per row, so
its Jacobian correction (pi * sum dL/dlogpi) is identically zero. Peak memory is the gradient accumulator
plus the two chunk buffers -- three maps for large maps, at most one map + 8 MiB otherwise -- independent
of S; the price of not holding S relaxed maps is drawing the noise twice.

Small temperatures (both paths compute the same expressions, so they agree to float32 precision down to
``MIN_TAU``): the max of y is subtracted *before* dividing by tau, so z <= 0 never overflows whatever tau
is, and y - max y keeps the near-tie differences that the division magnifies; and positions are taken
relative to the **anchor**, per axis the perturbed position of the cell where the relaxed marginal peaks.
At small tau r is nearly one-hot, v - <r, v> is then a difference of two nearly equal numbers of the size
of the grid, and its rounding error (ulp ~ 4e-6 at 64 cells) is multiplied by 1/tau; relative to the
anchor (then the winning cell) the winner's v is exactly 0 and every term is small, so the gradient keeps
full relative precision. The anchor comes from the marginals the read-out computes anyway (an argmax over
the whole map costs ~20x a max on CPU); any anchor is exact in exact arithmetic.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._checks import no_autocast
from .bases import Basis


#: Samples are processed ``chunk`` at a time with ``chunk = clamp(CHUNK_BYTES // (2 * map bytes), 1, S)``:
#: maps of 4 MiB and more go one sample at a time; small maps batch several samples per op to amortize
#: per-op overhead. Peak memory stays below ``3 maps + CHUNK_BYTES`` whatever S is.
CHUNK_BYTES = 8 * 2**20


def chunk_size(x: Tensor, num_samples: int) -> int:
    return max(1, min(num_samples, CHUNK_BYTES // (2 * x.numel() * x.element_size())))


def draw_chunk(zbuf: Tensor, perturbed: Tensor, layout: "Layout", basis: Basis, generator: torch.Generator) -> None:
    """Draw the noise of ``zbuf.shape[0]`` consecutive samples in protocol order (per sample: Gumbel
    uniforms of the map into ``zbuf[i]``, then its offsets, plus cell positions, into ``perturbed[i]``)."""
    for i in range(zbuf.shape[0]):
        zbuf[i].uniform_(generator=generator)
        perturbed[i] = layout.draw_offsets(basis, generator, zbuf)
    perturbed.add_(layout.positions)


def relax_(zbuf: Tensor, out: Tensor, x: Tensor, tau: float, gumbel: str) -> Tensor:
    """Turn the uniforms in ``zbuf`` (C, B, K, M) into relaxed one-hot samples written to ``out``.

    ``y = x + g`` ("paper": ``softmax((log pi + g)/tau)``, ``log pi = x - lse(x)`` whose shift cancels) or
    ``y = tau x + g`` ("authors": ``softmax(x + g/tau)`` times tau/tau), then ``softmax((y - max y)/tau)``.
    Everything runs in the two buffers; the reference path computes the same expressions op for op.
    """
    neg_gumbel_from_uniform_(zbuf)
    if gumbel == "paper":
        torch.sub(x, zbuf, out=zbuf)
    else:
        zbuf.sub_(x, alpha=tau).neg_()
    zbuf.sub_(zbuf.amax(dim=-1, keepdim=True))
    if tau != 1.0:
        zbuf.mul_(1.0 / tau)
    return torch.softmax(zbuf, dim=-1, out=out)


def neg_gumbel_from_uniform_(u: Tensor) -> Tensor:
    """In place ``-g = log(-log(u))`` over the last dim (the cells of one map). u = 0 (probability 2^-24 per
    cell in float32) gives g = -inf: a cell that cannot win this sample, which ``y - max y``, softmax and
    its gradient handle exactly (weight 0) -- unless every cell is -inf, which only a 1-cell map can draw
    (softmax([-inf]) = NaN): its uniforms are raised to the smallest normal number first."""
    if u.shape[-1] == 1:
        u.clamp_min_(torch.finfo(u.dtype).tiny)
    return u.log_().neg_().log_()


class Layout:
    """Where the cells of one map sit, per axis: grid cell centres or point coordinates.

    Holds the concatenated positions ``(L,)`` (grid) or ``(B, 1, L)`` (points) and the per-axis segment
    lengths, so that a chunk's offsets, read-out and gradient take a handful of ops. Tensors below carry
    a leading chunk dim C: relaxed samples (C, B, K, M), perturbed positions (C, B, K, L).
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
        self.starts = [sum(self.sizes[:a]) for a in range(self.dims)]  # of each axis's segment in L
        # (L, dims) indicator of the axis each concatenated entry belongs to: per-axis sums as one matmul
        axis_of = torch.repeat_interleave(torch.arange(self.dims, device=like.device),
                                          torch.tensor(self.sizes, device=like.device))
        self.segments = torch.nn.functional.one_hot(axis_of, self.dims).to(like.dtype)

    @property
    def length(self) -> int:
        return sum(self.sizes)

    def draw_offsets(self, basis: Basis, generator, like: Tensor) -> Tensor:
        """One sample's basis offsets, (B, K, L)."""
        return basis.sample((self.batch, self.keypoints, self.length), generator=generator,
                            device=like.device, dtype=like.dtype)

    def anchor_(self, perturbed: Tensor, index: Tensor) -> Tensor:
        """Subtract from ``perturbed`` (C, B, K, L), in place, its entries at ``index`` (C, B, K, dims) -- one
        per axis, positions in the concatenated L -- along their axes; return those anchors (C, B, K, dims)."""
        anchor = perturbed.gather(-1, index)
        perturbed.sub_(anchor @ self.segments.T)
        return anchor

    def split(self, values: Tensor) -> tuple[Tensor, ...]:
        """(..., L) -> per-axis (..., n_a) views, x, y, z order."""
        return values.split(self.sizes, dim=-1)

    def _grid_view(self, t: Tensor) -> Tensor:
        return t.view(*t.shape[:-1], *self.grid)

    def _broadcast(self, va: Tensor, axis: int) -> Tensor:
        """Per-axis vector (..., n_a) -> shape broadcastable against (..., *grid) along ``axis``."""
        nd = len(self.grid)
        return va.reshape(*va.shape[:-1], *([1] * (nd - 1 - axis)), va.shape[-1], *([1] * axis))

    def readout_(self, r: Tensor, perturbed: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``out_a = sum_j marg_a(r)_j perturbed_aj`` relative to the anchor: r (C, B, K, M), perturbed
        (C, B, K, L), made anchor-relative in place. Returns the relative read-out, the anchors and their
        index into L (per axis the peak of the relaxed marginal), each (C, B, K, dims)."""
        if self.points is not None:
            index = r.argmax(-1, keepdim=True) + torch.tensor(self.starts, device=r.device)
            anchor = self.anchor_(perturbed, index)
            return (r.unsqueeze(-2) * perturbed.unflatten(-1, (self.dims, -1))).sum(-1), anchor, index
        rv = self._grid_view(r)
        marg = torch.cat([grid_marginal(rv, self.grid, a) for a in range(self.dims)], dim=-1)
        index = torch.cat([m.argmax(-1, keepdim=True) + start for m, start in zip(self.split(marg), self.starts)],
                          dim=-1)
        anchor = self.anchor_(perturbed, index)
        return (marg * perturbed) @ self.segments, anchor, index

    def accumulate_grad(self, grad: Tensor, r: Tensor, perturbed: Tensor, g: Tensor, inner: Tensor,
                        scale: float, scratch: Tensor) -> None:
        """``grad += scale * sum_c r_c * (v_c - inner_c)``, ``v_m = sum_a g_a perturbed_a(m)``.

        r, scratch: (C, B, K, M) (both overwritten when C > 1); g (C, B, K, dims); inner (C, B, K, 1).
        """
        v = perturbed * (g @ self.segments.T)  # (C, B, K, L): each axis's positions times its output gradient
        if self.points is not None:
            weight = v.unflatten(-1, (self.dims, -1)).sum(-2).sub_(inner)  # (C, B, K, N)
            if r.shape[0] == 1:
                grad.addcmul_(r[0], weight[0], value=scale)
            else:
                grad.add_(r.mul_(weight).sum(0), alpha=scale)
            return
        parts = [va - inner if a == 0 else va for a, va in enumerate(self.split(v))]  # fold -<r, v> into x
        if r.shape[0] == 1:  # one full-size pass per axis, no scratch
            gv, rv = self._grid_view(grad), self._grid_view(r[0])
            for a, va in enumerate(parts):
                gv.addcmul_(rv, self._broadcast(va[0], a), value=scale)
            return
        weight = self._grid_view(scratch)  # materialize sum_a v_a on the grid, then one product and one sum
        weight.copy_(self._broadcast(parts[0], 0))
        for a in range(1, self.dims):
            weight.add_(self._broadcast(parts[a], a))
        grad.add_(r.mul_(scratch).sum(0), alpha=scale)


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
        chunk = chunk_size(x, num_samples)
        relative = x.new_empty(num_samples, b, k, layout.dims)  # read-out relative to the anchor
        anchors = x.new_empty(num_samples, b, k, layout.dims)
        index = torch.empty(num_samples, b, k, layout.dims, dtype=torch.long, device=x.device)
        zbuf, rbuf = x.new_empty(chunk, *x.shape), x.new_empty(chunk, *x.shape)
        perturbed = x.new_empty(chunk, b, k, layout.length)
        for s0 in range(0, num_samples, chunk):
            c = min(chunk, num_samples - s0)
            draw_chunk(zbuf[:c], perturbed[:c], layout, basis, generator)
            r = relax_(zbuf[:c], rbuf[:c], x, tau, gumbel)
            relative[s0 : s0 + c], anchors[s0 : s0 + c], index[s0 : s0 + c] = layout.readout_(r, perturbed[:c])
        out = (relative + anchors).permute(1, 2, 0, 3).contiguous()  # (B, K, S, dims)
        ctx.save_for_backward(x, points, relative, index)
        ctx.grid, ctx.tau, ctx.gumbel, ctx.basis = grid, tau, gumbel, basis
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        with no_autocast(grad_out):  # backward may run inside a user's autocast region; stay in float32
            return SamplingArgmaxFunction._backward(ctx, grad_out)

    @staticmethod
    def _backward(ctx, grad_out):
        x, points, relative, index = ctx.saved_tensors
        tau, gumbel, basis = ctx.tau, ctx.gumbel, ctx.basis
        b, k, _ = x.shape
        num_samples = relative.shape[0]
        layout = Layout(b, k, ctx.grid, points, x)
        generator = torch.Generator(device=x.device)
        generator.set_state(ctx.state)
        scale = 1.0 / tau if gumbel == "paper" else 1.0
        want_points = points is not None and ctx.needs_input_grad[1]
        grad_s = grad_out.to(x.dtype).permute(2, 0, 1, 3)  # (S, B, K, dims)
        inner = (grad_s * relative).sum(-1, keepdim=True)  # <r, v> per sample, anchor-relative: (S, B, K, 1)
        grad_x = torch.zeros_like(x)
        grad_points = torch.zeros_like(points) if want_points else None
        chunk = chunk_size(x, num_samples)
        zbuf, rbuf = x.new_empty(chunk, *x.shape), x.new_empty(chunk, *x.shape)
        perturbed = x.new_empty(chunk, b, k, layout.length)
        for s0 in range(0, num_samples, chunk):
            c = min(chunk, num_samples - s0)
            draw_chunk(zbuf[:c], perturbed[:c], layout, basis, generator)
            r = relax_(zbuf[:c], rbuf[:c], x, tau, gumbel)
            layout.anchor_(perturbed[:c], index[s0 : s0 + c])  # the forward's anchors, replayed
            g = grad_s[s0 : s0 + c]
            if want_points:
                grad_points += torch.einsum("cbkn,cbkd->bnd", r, g)
            layout.accumulate_grad(grad_x, r, perturbed[:c], g, inner[s0 : s0 + c], scale, zbuf[:c])
        return grad_x, grad_points, None, None, None, None, None, None
