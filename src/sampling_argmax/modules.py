"""nn.Module wrappers of the operators and the temperature schedules.

The modules hold only hyper-parameters (no buffers: nothing lands in ``state_dict``).

>>> head = SamplingArgmax(num_samples=30, tau=2.0)
>>> logits = torch.randn(2, 17, 64, 48)
>>> head.train()(logits).shape           # training: samples
torch.Size([2, 17, 30, 2])
>>> head.eval()(logits).shape            # inference: the expectation (soft-argmax)
torch.Size([2, 17, 2])
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ._checks import (
    GUMBEL_MODES,
    IMPLEMENTATIONS,
    check_authors_options,
    check_choice,
    check_nonnegative,
    check_num_samples,
    check_optional_positive,
    check_tau,
)
from .bases import BASES, GRID_SIGMA, POINT_SIGMA
from .functional import sampling_argmax, sampling_argmax_points, soft_argmax, soft_argmax_points

__all__ = ["SoftArgmax", "SamplingArgmax", "ConstantTemperature", "LinearTemperature", "ExponentialTemperature"]


class SoftArgmax(nn.Module):
    """``(B, K, *grid) -> (B, K, dims)`` expectation read-out; with ``points`` ``(B, N, d)``: over a point set."""

    def forward(self, logits: Tensor, points: Tensor | None = None) -> Tensor:
        return soft_argmax(logits) if points is None else soft_argmax_points(logits, points)


class SamplingArgmax(nn.Module):
    """Sampling-argmax: ``(B, K, S, dims)`` samples in ``train()``, the expectation ``(B, K, dims)`` in ``eval()``.

    Arguments are those of :func:`sampling_argmax`; ``sigma`` is the Gaussian width, None = the operators'
    defaults (``GRID_SIGMA`` = 1 cell on grids, ``POINT_SIGMA`` = 0.01 point units on point sets). ``tau`` is a
    plain attribute; set it from a schedule each epoch.
    """

    def __init__(self, num_samples: int = 30, tau: float = 1.0, basis: str = "triangular", gumbel: str = "paper",
                 sigma: float | None = None, triangular_reread: bool = False, gaussian_reweight: bool = False,
                 clipped_gradient: bool = False, implementation: str = "auto"):
        super().__init__()
        self.num_samples = check_num_samples(num_samples)
        self.tau = check_tau(tau)
        self.basis = check_choice(basis, "basis", BASES)
        self.gumbel = check_choice(gumbel, "gumbel", GUMBEL_MODES)
        self.sigma = check_optional_positive(sigma, "sigma", "the Gaussian basis width")
        check_authors_options(basis, triangular_reread, gaussian_reweight)
        self.triangular_reread = bool(triangular_reread)
        self.gaussian_reweight = bool(gaussian_reweight)
        self.clipped_gradient = bool(clipped_gradient)
        self.implementation = check_choice(implementation, "implementation", IMPLEMENTATIONS)

    def forward(self, logits: Tensor, points: Tensor | None = None,
                generator: torch.Generator | None = None) -> Tensor:
        if not self.training:
            return soft_argmax(logits) if points is None else soft_argmax_points(logits, points)
        if points is not None:
            sigma = POINT_SIGMA if self.sigma is None else self.sigma
            return sampling_argmax_points(logits, points, self.num_samples, self.tau, sigma, generator,
                                          gumbel=self.gumbel, implementation=self.implementation)
        return sampling_argmax(
            logits, self.num_samples, self.tau, self.basis, self.gumbel, generator,
            sigma=GRID_SIGMA if self.sigma is None else self.sigma,
            triangular_reread=self.triangular_reread, gaussian_reweight=self.gaussian_reweight,
            clipped_gradient=self.clipped_gradient, implementation=self.implementation,
        )

    def extra_repr(self) -> str:
        return (f"num_samples={self.num_samples}, tau={self.tau}, basis={self.basis!r}, gumbel={self.gumbel!r}, "
                f"sigma={self.sigma}, implementation={self.implementation!r}")


def _check_epoch(epoch) -> float:
    return check_nonnegative(epoch, "epoch", "the training epoch the temperature is taken at")


class ConstantTemperature:
    """``tau(epoch) = tau`` (Human3.6M: 2)."""

    def __init__(self, tau: float = 1.0):
        self.tau = check_tau(tau)

    def __call__(self, epoch: float) -> float:
        _check_epoch(epoch)
        return self.tau

    def __repr__(self) -> str:
        return f"ConstantTemperature(tau={self.tau})"


class LinearTemperature:
    """``tau(epoch) = max(end, start - slope * epoch)``; defaults are the authors' COCO/MTFL schedule
    ``max(0.5, 2 - 3 * epoch / 50)``."""

    def __init__(self, start: float = 2.0, end: float = 0.5, slope: float = 3.0 / 50.0):
        self.start = check_tau(start, "start")
        self.end = check_tau(end, "end")
        self.slope = check_nonnegative(slope, "slope", "the temperature decrease per epoch")

    def __call__(self, epoch: float) -> float:
        return max(self.end, self.start - self.slope * _check_epoch(epoch))

    def __repr__(self) -> str:
        return f"LinearTemperature(start={self.start}, end={self.end}, slope={self.slope})"


class ExponentialTemperature:
    """``tau(epoch) = max(end, start * exp(-rate * epoch))`` (the Gumbel-softmax paper's annealing)."""

    def __init__(self, start: float = 2.0, end: float = 0.5, rate: float = 0.05):
        self.start = check_tau(start, "start")
        self.end = check_tau(end, "end")
        self.rate = check_nonnegative(rate, "rate", "the decay per epoch")

    def __call__(self, epoch: float) -> float:
        return max(self.end, self.start * math.exp(-self.rate * _check_epoch(epoch)))

    def __repr__(self) -> str:
        return f"ExponentialTemperature(start={self.start}, end={self.end}, rate={self.rate})"
