"""Sampling-argmax: the relaxed-sampling read-out with fixed bases (uniform, triangular, Gaussian)."""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from sampling_argmax._checks import (
    GUMBEL_MODES,
    check_authors_options,
    check_choice,
    check_num_samples,
    check_optional_positive,
)
from sampling_argmax.bases import BASES, GRID_SIGMA, POINT_SIGMA
from sampling_argmax.functional import (
    _sampling_argmax,
)
from sampling_argmax.methods.base import (
    Confidence,
    Method,
    NotDefinedOnPointsError,
    Schedule,
)
from sampling_argmax.modules import LinearTemperature


class _RelaxedSampling(Method):
    """What the sampling methods share: N_s relaxed samples, the Gumbel-softmax τ schedule and Gumbel form."""

    def __init__(self, num_samples: int, schedule: Schedule | None, gumbel: str, **method_args) -> None:
        super().__init__(**method_args)
        self.num_samples = check_num_samples(num_samples)
        self.schedule = LinearTemperature(start=2.0, end=0.5, slope=3 / 50) if schedule is None else schedule
        if not callable(self.schedule):
            raise ValueError(f"schedule must be a temperature schedule (epoch -> τ), e.g. LinearTemperature(), "
                             f"got {schedule!r}")
        self.gumbel = check_choice(gumbel, "gumbel", GUMBEL_MODES)

    @property
    def temperature(self) -> float:
        """τ of the current epoch."""
        return float(self.schedule(self.epoch))


class SamplingArgmaxMethod(_RelaxedSampling):
    """Sampling-argmax: trained on the expected error E_{y~p}[ℓ1(y_t, y)], read out as soft-argmax.

    Args:
        basis: sub-distribution per cell, ``"uniform"``, ``"triangular"`` or ``"gaussian"``.
        num_samples: N_s, Monte-Carlo samples per keypoint (paper: 30; 1 already suffices).
        schedule: Gumbel-softmax temperature per epoch; None = the paper's
            ``LinearTemperature(2.0, 0.5, 3/50)``, τ = max(0.5, 2 − 3·epoch/50).
        gumbel: ``"paper"`` softmax((log π + g)/τ), or ``"authors"`` softmax(log π + g/τ).
        sigma: Gaussian basis σ; None = ``GRID_SIGMA`` (1 cell) on grids, ``POINT_SIGMA`` (0.01) on point sets.
        triangular_reread, gaussian_reweight, clipped_gradient: the authors' code's deviations
            (PAPER.md §3), off by default; see :func:`~sampling_argmax.functional.sampling_argmax`.
        p, confidence, mass_radius, name: see :class:`Method`.
    """

    def __init__(
        self,
        basis: Literal["uniform", "triangular", "gaussian"] = "triangular",
        num_samples: int = 30,
        schedule: Schedule | None = None,
        gumbel: Literal["paper", "authors"] = "paper",
        sigma: float | None = None,
        triangular_reread: bool = False,
        gaussian_reweight: bool = False,
        clipped_gradient: bool = False,
        p: Literal[1, 2] = 1,
        confidence: Confidence = "peak",
        mass_radius: float | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(num_samples, schedule, gumbel, p=p, confidence=confidence, mass_radius=mass_radius, name=name)
        self.basis = check_choice(basis, "basis", BASES)
        self.sigma = check_optional_positive(sigma, "sigma", "the Gaussian basis width")
        check_authors_options(basis, triangular_reread, gaussian_reweight)
        self.triangular_reread = bool(triangular_reread)
        self.gaussian_reweight = bool(gaussian_reweight)
        self.clipped_gradient = bool(clipped_gradient)

    def _default_name(self) -> str:
        return "samp_" + {"uniform": "uni", "triangular": "tri", "gaussian": "gau"}[self.basis]

    def _repr_fields(self) -> tuple[str, ...]:
        authors = [k for k in ("triangular_reread", "gaussian_reweight", "clipped_gradient") if getattr(self, k)]
        return (*super()._repr_fields(), "basis", "num_samples", "schedule", "gumbel", "sigma", *authors)

    def _loss(self, logits, target, weight, points, generator) -> Tensor:
        return self._coordinate_term(self._samples(logits, points, generator), target, weight, logits, points)

    def _samples(self, logits, points, generator) -> Tensor:
        tau = self.temperature
        if points is None:
            samples = _sampling_argmax(
                logits, None, self.num_samples, tau, self.basis, self.gumbel, generator,
                GRID_SIGMA if self.sigma is None else self.sigma,
                self.triangular_reread, self.gaussian_reweight, self.clipped_gradient, "auto",
            )
        else:
            if self.basis != "gaussian" or self.triangular_reread or self.gaussian_reweight or self.clipped_gradient:
                raise NotDefinedOnPointsError(
                    f"{self.name}: on point sets only basis='gaussian' is defined (the paper's choice, sigma=0.01; "
                    "uniform/triangular bases need a grid cell) and the authors' grid options do not apply; "
                    "use paper_method('samp_gau') or SamplingArgmaxMethod(basis='gaussian')"
                )
            samples = _sampling_argmax(
                logits, points, self.num_samples, tau, "gaussian", self.gumbel, generator,
                POINT_SIGMA if self.sigma is None else self.sigma, False, False, False, "auto",
            )
        return samples


