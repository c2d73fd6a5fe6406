"""Soft-argmax and its regularized baselines (V.R., D.R.): the soft-argmax methods of the paper's tables."""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from sampling_argmax._checks import (
    check_choice,
    check_nonnegative,
    check_optional_positive,
)
from sampling_argmax.losses import (
    DIVERGENCES,
    GRID_TARGET_VARIANCE,
    POINT_TARGET_VARIANCE,
    VARIANCE_SCALES,
    _distribution_loss,
    _distribution_loss_points,
    _variance_loss,
    _variance_loss_points,
)
from sampling_argmax.methods.base import REGULARIZERS, Confidence, Method


class SoftArgmaxMethod(Method):
    """Soft-argmax trained on the error of the expectation, optionally regularized (PAPER.md §4).

    Args:
        regularizer: None (Soft), ``"variance"`` (Soft w/ V.R.) or ``"distribution"`` (Soft w/ D.R.:
            divergence to N(target, σ_t²) on the grid).
        regularizer_weight: its weight in the total (paper: V.R. 1; D.R. 0.1, 1 for OCT, 0.01 for
            point clouds).
        target_variance: σ_t²; None = 4 cell² on grids, 4e-4 on point sets.
        divergence: D.R. divergence, ``"js"`` (the paper's) or ``"kl"`` (KL(π‖q)).
        variance_scale: V.R. on grids: ``"normalized"`` (default) Σ_axes ((Var_a − σ_t²) / n_a²)², the scale of
            the coordinate term; ``"cell"`` Σ_axes (Var_a − σ_t²)² in cell², the paper's literal form (it
            swamps the coordinate term at weight 1). Point sets are already normalized: one form.
        p, confidence, mass_radius, name: see :class:`Method`.
    """

    def __init__(
        self,
        regularizer: Literal["variance", "distribution"] | None = None,
        regularizer_weight: float = 1.0,
        target_variance: float | None = None,
        divergence: Literal["js", "kl"] = "js",
        variance_scale: Literal["normalized", "cell"] = "normalized",
        p: Literal[1, 2] = 1,
        confidence: Confidence = "peak",
        mass_radius: float | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(p=p, confidence=confidence, mass_radius=mass_radius, name=name)
        self.regularizer = check_choice(regularizer, "regularizer", REGULARIZERS)
        self.regularizer_weight = check_nonnegative(regularizer_weight, "regularizer_weight",
                                                    "the regularizer's weight in the total")
        self.target_variance = check_optional_positive(target_variance, "target_variance", "σ_t²")
        self.divergence = check_choice(divergence, "divergence", DIVERGENCES)
        self.variance_scale = check_choice(variance_scale, "variance_scale", VARIANCE_SCALES)

    def _default_name(self) -> str:
        return {None: "soft", "variance": "soft_vr", "distribution": "soft_dr"}[self.regularizer]

    def _repr_fields(self) -> tuple[str, ...]:
        return (*super()._repr_fields(), "regularizer", "regularizer_weight", "target_variance", "divergence",
                "variance_scale")

    def _loss(self, logits, target, weight, points, generator) -> Tensor:
        pred = self._predict(logits, points)
        total = self._coordinate_term(pred, target, weight, logits, points)
        if self.regularizer is None or self.regularizer_weight == 0:
            return total
        # both terms are weighted means over the same (B, K), so their sum is the mean of the sums
        return total + self.regularizer_weight * self._regularizer(logits, target, weight, points)

    def _label_free_regularizer(self, logits, points) -> Tensor:
        if self.regularizer is None or self.regularizer_weight == 0:
            return super()._label_free_regularizer(logits, points)
        centre = self._predict(logits, points).detach()
        return self.regularizer_weight * self._regularizer(logits, centre, None, points)

    def _regularizer(self, logits, target, weight, points) -> Tensor:
        on_grid = points is None
        var = self.target_variance
        if var is None:
            var = GRID_TARGET_VARIANCE if on_grid else POINT_TARGET_VARIANCE
        if self.regularizer == "variance":
            reg = (
                _variance_loss(logits, var, weight, "mean", self.variance_scale)
                if on_grid
                else _variance_loss_points(logits, points, var, weight, "mean")
            )
        else:
            reg = (
                _distribution_loss(logits, target, var, self.divergence, weight, "mean")
                if on_grid
                else _distribution_loss_points(logits, points, target, var, self.divergence, weight, "mean")
            )
        return reg

