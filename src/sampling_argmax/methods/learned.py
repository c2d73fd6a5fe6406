"""Sampling-argmax with learned per-cell laws (beyond the paper): the model outputs the laws' parameters too."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from sampling_argmax.learned_bases import (
    LEARNED_BASES,
    LearnedBasis,
    QuantileSpline,
    ShiftedGaussian,
    get_learned_basis,
    learned_basis_mean,
    learned_sampling_argmax,
)
from sampling_argmax.methods.base import Confidence, NotDefinedOnPointsError, Schedule
from sampling_argmax.methods.sampling import _RelaxedSampling


class LearnedBasisMethod(_RelaxedSampling):
    """Sampling-argmax with learned per-cell laws: the expected-error loss, the mixture-mean read-out.

    The model outputs, per keypoint, one logit map and the raw parameters of every cell's law per axis:
    ``(B, K, 1 + dims * P, *grid)``, channel 0 the logits, then P parameters for x, P for y(, P for z)
    (:meth:`output_channels`; e.g. :class:`~sampling_argmax.models.KeypointChannels` groups a model's
    ``K * (1 + dims * P)`` maps so). Every public call takes that output where the other methods take logits.
    Grids only; the flip test (which averages probability maps) does not apply.

    Args:
        basis: the family of :mod:`~sampling_argmax.learned_bases`: ``"shifted_gaussian"`` (P = 2),
            ``"quantile_spline"`` (4 pieces, P = 9), or a configured ``ShiftedGaussian``/``QuantileSpline``.
        num_samples, schedule, gumbel: as :class:`~sampling_argmax.methods.SamplingArgmaxMethod`.
        p, confidence, mass_radius, name: see :class:`~sampling_argmax.methods.Method`.

    >>> method = LearnedBasisMethod()
    >>> output = torch.randn(2, 3, method.output_channels(2), 8, 8, requires_grad=True)
    >>> method.loss(output, torch.rand(2, 3, 2) * 7).backward()
    >>> method.predict(output).shape, method.maps(output).shape
    (torch.Size([2, 3, 2]), torch.Size([2, 3, 8, 8]))
    """

    def __init__(
        self,
        basis: Literal["shifted_gaussian", "quantile_spline"] | ShiftedGaussian | QuantileSpline = "shifted_gaussian",
        num_samples: int = 30,
        schedule: Schedule | None = None,
        gumbel: Literal["paper", "authors"] = "paper",
        p: Literal[1, 2] = 1,
        confidence: Confidence = "peak",
        mass_radius: float | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(num_samples, schedule, gumbel, p=p, confidence=confidence, mass_radius=mass_radius, name=name)
        self.basis = get_learned_basis(basis) if isinstance(basis, str) else basis
        if not isinstance(self.basis, LearnedBasis):
            raise ValueError(f"basis must be one of {LEARNED_BASES} or a LearnedBasis, got {basis!r}")

    def output_channels(self, dims: int) -> int:
        """Channels per keypoint the model must output on a ``dims``-dimensional grid: 1 + dims * P."""
        return 1 + dims * self.basis.num_params

    def output_shape(self, num_keypoints: int, map_shape) -> tuple[int, ...]:
        return (num_keypoints, self.output_channels(len(map_shape)), *map_shape)

    def maps(self, output: Tensor) -> Tensor:
        return self._split(output)[0]

    def loss(self, output, target, weight=None, points=None, *, generator=None) -> Tensor:
        logits, params = self._split(output, points)
        weight = self._check_inputs(logits, target, weight, None)
        samples = learned_sampling_argmax(logits, params, self.basis, self.num_samples, self.temperature,
                                          self.gumbel, generator)
        return self._coordinate_term(samples, target, weight, logits, None)

    def predict(self, output, points=None) -> Tensor:
        logits, params = self._split(output, points)
        self._check_inputs(logits, None, None, None)
        return learned_basis_mean(logits, params, self.basis)

    def confidence(self, output, points=None) -> Tensor:
        return super().confidence(self._split(output, points)[0])

    def keypoint_samples(self, output, points=None, *, generator=None) -> Tensor:
        logits, params = self._split(output, points)
        self._check_inputs(logits, None, None, None)
        return learned_sampling_argmax(logits, params, self.basis, self.num_samples, self.temperature,
                                       self.gumbel, generator)

    def label_free_regularizer(self, output, points=None) -> Tensor:
        return torch.zeros((), device=output.device)

    def _split(self, output: Tensor, points: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(logits ``(B, K, *grid)``, parameters ``(B, K, dims, P, *grid)``) of the model's output."""
        if points is not None:
            raise NotDefinedOnPointsError(f"{self.name} learns per-cell laws on grids; it has no point-set form")
        dims = output.dim() - 3 if isinstance(output, Tensor) else 0
        if dims not in (1, 2, 3) or output.shape[2] != self.output_channels(dims):
            got = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
            raise ValueError(
                f"{self.name} needs the model's output as (B, K, 1 + dims * P, *grid): on a 2D grid with "
                f"{self.basis!r} that is {self.output_channels(2)} channels per keypoint (P = {self.basis.num_params}); "
                f"got {got}. Group the model's maps per keypoint, e.g. with sampling_argmax.models.KeypointChannels")
        b, k, _, *grid = output.shape
        return output[:, :, 0], output[:, :, 1:].reshape(b, k, dims, self.basis.num_params, *grid)

    def _default_name(self) -> str:
        return {"ShiftedGaussian": "samp_lgau", "QuantileSpline": "samp_lspline"}.get(type(self.basis).__name__,
                                                                                      "samp_learned")

    def _repr_fields(self) -> tuple[str, ...]:
        return (*super()._repr_fields(), "basis", "num_samples", "schedule", "gumbel")

