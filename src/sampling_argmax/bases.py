"""Per-cell sub-distributions ("bases") f_i of the continuous mixture p(y) = sum_i pi_i f_i(y).

Each basis is the law of the offset ``eps = y - y_i`` around a cell centre, in cell units (grid spacing
c = 1): ``sample`` draws reparameterized offsets, ``cdf``/``pdf`` give the exact law (used to test that
sampling-argmax samples follow the mixture).

- uniform:    f = 1/c on [-c/2, c/2]
- triangular: f = (c - |eps|)/c^2 on [-c, c]  (the mixture is then the linear interpolation of pi)
- gaussian:   N(0, sigma^2), sigma in cell units (:data:`GRID_SIGMA` = 1 cell by default; :data:`POINT_SIGMA`
  = 0.01 for normalized point clouds, the paper's)

Every basis turns two independent uniforms in (0, 1) into an offset (``from_uniforms``; the uniform basis
uses the first only), so the sampling operator draws offsets from its counter-based noise
(:mod:`sampling_argmax._noise`) and ``sample`` from a ``torch.Generator`` with the same law.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._checks import check_choice, check_positive
from .coords import POINT_CELL

__all__ = ["Basis", "UniformBasis", "TriangularBasis", "GaussianBasis", "BASES", "GRID_SIGMA", "POINT_SIGMA",
           "get_basis"]

#: Default Gaussian basis width on grids, in cells.
GRID_SIGMA = 1.0
#: Default Gaussian basis width on point sets, in point units: one :data:`~sampling_argmax.coords.POINT_CELL`
#: (0.01, the paper's σ for normalized point clouds).
POINT_SIGMA = POINT_CELL


class Basis:
    """Law of the offset from a cell centre. Subclasses define ``sample``, ``cdf`` and ``pdf``."""

    name: str = ""

    def sample(self, shape, generator: torch.Generator | None = None, device=None,
               dtype: torch.dtype = torch.float32) -> Tensor:
        """Offsets of shape ``shape`` drawn from ``generator``."""
        u = torch.rand((2, *shape), generator=generator, device=device, dtype=dtype).neg_().add_(1.0)  # (0, 1]
        return self.from_uniforms(u[0], u[1])

    def from_uniforms(self, u1: Tensor, u2: Tensor) -> Tensor:
        """Offsets from two independent U(0, 1) tensors in (0, 1) (overwritten: this runs in place)."""
        raise NotImplementedError

    def cdf(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def pdf(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class UniformBasis(Basis):
    """``eps ~ U(-1/2, 1/2)``: each cell spreads its mass evenly over its own extent."""

    name = "uniform"

    def from_uniforms(self, u1: Tensor, u2: Tensor) -> Tensor:
        return u1.sub_(0.5)

    def cdf(self, x: Tensor) -> Tensor:
        return (x + 0.5).clamp(0.0, 1.0)

    def pdf(self, x: Tensor) -> Tensor:
        return ((x >= -0.5) & (x <= 0.5)).to(x.dtype)


class TriangularBasis(Basis):
    """``eps`` with density ``1 - |eps|`` on [-1, 1]: the sum of two U(0, 1) minus 1 (2 cheap ops)."""

    name = "triangular"

    def from_uniforms(self, u1: Tensor, u2: Tensor) -> Tensor:
        return u1.add_(u2).sub_(1.0)

    def cdf(self, x: Tensor) -> Tensor:
        x = x.clamp(-1.0, 1.0)
        left = 0.5 * (1.0 + x) ** 2
        right = 1.0 - 0.5 * (1.0 - x) ** 2
        return torch.where(x < 0, left, right)

    def pdf(self, x: Tensor) -> Tensor:
        return (1.0 - x.abs()).clamp_min(0.0)


class GaussianBasis(Basis):
    """``eps ~ N(0, sigma^2)``, sigma in cell units (or point-set units)."""

    name = "gaussian"

    def __init__(self, sigma: float = GRID_SIGMA):
        self.sigma = check_positive(sigma, "sigma", "the Gaussian basis width, in cells or point units")

    def from_uniforms(self, u1: Tensor, u2: Tensor) -> Tensor:
        # Box-Muller; u1 >= 2^-24 (the noise's smallest uniform) truncates at 5.8 sigma (probability 8e-9)
        return u1.log_().mul_(-2.0).sqrt_().mul_(torch.cos(u2.mul_(2.0 * math.pi))).mul_(self.sigma)

    def cdf(self, x: Tensor) -> Tensor:
        return 0.5 * (1.0 + torch.erf(x / (self.sigma * math.sqrt(2.0))))

    def pdf(self, x: Tensor) -> Tensor:
        return torch.exp(-0.5 * (x / self.sigma) ** 2) / (self.sigma * math.sqrt(2.0 * math.pi))

    def __repr__(self) -> str:
        return f"GaussianBasis(sigma={self.sigma})"


BASES = ("uniform", "triangular", "gaussian")


def get_basis(name: str, sigma: float = GRID_SIGMA) -> Basis:
    """The basis called ``name`` (one of :data:`BASES`); ``sigma`` is used by the Gaussian only."""
    check_choice(name, "basis", BASES)
    if name == "uniform":
        return UniformBasis()
    if name == "triangular":
        return TriangularBasis()
    return GaussianBasis(sigma)
