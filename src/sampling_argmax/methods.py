"""The six methods of the paper's tables, one object each: read-out, loss, confidence, schedule.

A method is not a model: any network that outputs logits over a grid ``(B, K, *grid)`` or a
point set ``(B, K, N)`` (with ``points`` ``(B, N, d)``) trains with any method. Methods are plain
Python objects with typed constructor arguments, so LightningCLI builds them from YAML::

    method:
      class_path: sampling_argmax.methods.SamplingArgmaxMethod
      init_args: {basis: gaussian, num_samples: 30}

Loss scale (the contract's, so the paper's regularizer weights keep their meaning): on grids the
ℓ1 coordinate term is computed on coordinates divided by the grid size per axis (cells / n_axis)
and summed over axes; regularizers are in cell units (V.R. in cell², D.R. against a Gaussian of
σ_t² = 4 cell²); the total is the visibility-weighted mean over (B, K). On point sets coordinates
are used as they are (the objects are already normalized) and σ_t², σ and the confidence radius
default to their point-set values (:data:`~sampling_argmax.losses.POINT_TARGET_VARIANCE`,
0.01, 0.015).

Example:
    >>> import torch
    >>> method = paper_method("samp_tri")
    >>> logits = torch.randn(2, 17, 64, 48, requires_grad=True)
    >>> target = torch.rand(2, 17, 2) * torch.tensor([47.0, 63.0])
    >>> loss = method.loss(logits, target, weight=torch.ones(2, 17))
    >>> loss.backward()
    >>> method.predict(logits).shape, method.confidence(logits).shape
    (torch.Size([2, 17, 2]), torch.Size([2, 17]))
    >>> method.set_epoch(10); method.temperature
    1.4
"""

from __future__ import annotations

import inspect
from typing import Literal

import torch
from torch import Tensor

from sampling_argmax.coords import grid_size_xyz
from sampling_argmax.functional import (
    grid_probabilities,
    mass_confidence,
    peak_confidence,
    sampling_argmax,
    sampling_argmax_points,
    soft_argmax,
    soft_argmax_points,
)
from sampling_argmax.losses import (
    GRID_TARGET_VARIANCE,
    POINT_TARGET_VARIANCE,
    coordinate_loss,
    distribution_loss,
    distribution_loss_points,
    variance_loss,
    variance_loss_points,
)
from sampling_argmax.modules import ConstantTemperature, ExponentialTemperature, LinearTemperature

__all__ = ["Method", "SoftArgmaxMethod", "SamplingArgmaxMethod", "paper_method", "PAPER_METHODS"]

PAPER_METHODS = ("soft", "soft_vr", "soft_dr", "samp_uni", "samp_tri", "samp_gau")
"""The names of the paper's six methods, in the order of its tables."""

POINT_CELL = 0.01
"""The point-set analogue of one grid cell: mean neighbour spacing of a normalized object."""

Confidence = Literal["peak", "mass"]
Schedule = ConstantTemperature | LinearTemperature | ExponentialTemperature


class Method:
    """Base of all methods: the soft-argmax read-out and confidence; subclasses define the loss.

    Args:
        p: distance of the coordinate loss, 1 = ℓ1 summed over axes (the paper's), 2 = Euclidean.
        confidence: ``"peak"`` = max probability of the map (the paper's calibration read-out), or
            ``"mass"`` = probability mass within ``mass_radius`` of the prediction.
        mass_radius: radius of the ``"mass"`` read-out; None = 1.5 cells on grids, 1.5 × 0.01 on
            point sets.
        name: label used in reports; None = derived from the arguments (e.g. ``"samp_tri"``).
    """

    def __init__(
        self,
        p: Literal[1, 2] = 1,
        confidence: Confidence = "peak",
        mass_radius: float | None = None,
        name: str | None = None,
    ) -> None:
        if p not in (1, 2):
            raise ValueError(f"p must be 1 (ℓ1, the paper's) or 2 (Euclidean), got {p!r}")
        if confidence not in ("peak", "mass"):
            raise ValueError(f"confidence must be 'peak' (the paper's) or 'mass', got {confidence!r}")
        if mass_radius is not None and mass_radius <= 0:
            raise ValueError(f"mass_radius must be > 0 (or None for the default), got {mass_radius}")
        self.p = p
        self.confidence_readout = confidence
        self.mass_radius = mass_radius
        self._name = name
        self.epoch = 0

    # ---------------------------------------------------------------- public interface

    @property
    def name(self) -> str:
        return self._name if self._name is not None else self._default_name()

    def loss(
        self,
        logits: Tensor,
        target: Tensor,
        weight: Tensor | None = None,
        points: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Scalar training loss; target ``(B, K, dims)`` in cells (or point units), weight ``(B, K)``."""
        self._check_inputs(logits, target, weight, points)
        return self._loss(logits, target, weight, points, generator)

    def predict(self, logits: Tensor, points: Tensor | None = None) -> Tensor:
        """Expectation (soft-argmax) read-out ``(B, K, dims)``, for every method (PAPER.md §2)."""
        self._check_inputs(logits, None, None, points)
        return soft_argmax(logits) if points is None else soft_argmax_points(logits, points)

    def confidence(self, logits: Tensor, points: Tensor | None = None) -> Tensor:
        """Per-keypoint confidence ``(B, K)``: peak probability, or mass near the prediction."""
        self._check_inputs(logits, None, None, points)
        if self.confidence_readout == "peak":
            return peak_confidence(logits)  # a point set (B, K, N) reads like a 1D grid
        if points is None:
            radius = 1.5 if self.mass_radius is None else self.mass_radius
            return mass_confidence(logits, radius=radius)
        radius = 1.5 * POINT_CELL if self.mass_radius is None else self.mass_radius
        prob = grid_probabilities(logits)  # (B, K, N), float32
        coords = soft_argmax_points(logits, points)
        sq_dist = (points[:, None].to(prob.dtype) - coords[:, :, None]).square().sum(-1)  # (B, K, N)
        return (prob * (sq_dist <= radius * radius)).sum(-1)

    def set_epoch(self, epoch: int) -> None:
        """Advance schedules to ``epoch`` (call at the start of each training epoch)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def __repr__(self) -> str:
        # constructor-style: the "confidence" argument is stored as confidence_readout (confidence is a method)
        args = ", ".join(
            f"{k.removesuffix('_readout')}={getattr(self, k)!r}" for k in self._repr_fields()
        )
        return f"{type(self).__name__}({args})"

    # ---------------------------------------------------------------- for subclasses

    def _loss(self, logits, target, weight, points, generator) -> Tensor:
        raise NotImplementedError

    def _default_name(self) -> str:
        return type(self).__name__

    def _repr_fields(self) -> tuple[str, ...]:
        return ("name", "p", "confidence_readout")

    def _coordinate_term(self, pred: Tensor, target: Tensor, weight: Tensor | None, logits: Tensor, points) -> Tensor:
        """ℓ_p term of the total; on grids both sides are divided by the axis sizes first."""
        if points is None:
            sizes = torch.tensor(grid_size_xyz(logits), dtype=torch.float32, device=logits.device)
            pred, target = pred / sizes, target / sizes
        return coordinate_loss(pred, target, weight, p=self.p)

    @staticmethod
    def _check_inputs(logits: Tensor, target: Tensor | None, weight: Tensor | None, points: Tensor | None) -> None:
        if not isinstance(logits, Tensor):
            raise ValueError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
        if points is None:
            if not 3 <= logits.ndim <= 5:
                raise ValueError(
                    "logits must be (B, K, W), (B, K, H, W) or (B, K, D, H, W) on a grid, or (B, K, N) with "
                    f"points=(B, N, d); got {tuple(logits.shape)}"
                )
            dims, source = logits.ndim - 2, "the grid of logits"
        else:
            if logits.ndim != 3 or points.ndim != 3 or points.shape[:2] != (logits.shape[0], logits.shape[2]):
                raise ValueError(
                    f"point sets need logits (B, K, N) and points (B, N, d) with matching B and N; got logits "
                    f"{tuple(logits.shape)} and points {tuple(points.shape)}"
                )
            dims, source = points.shape[-1], "points (B, N, d)"
        batch = tuple(logits.shape[:2])
        if target is not None and tuple(target.shape) != (*batch, dims):
            raise ValueError(
                f"target must have shape (B, K, dims) = {(*batch, dims)} to match {source}, "
                f"got {tuple(target.shape)}"
            )
        if weight is not None and tuple(weight.shape) != batch:
            raise ValueError(
                f"weight must have shape (B, K) = {batch} (one visibility per keypoint), got {tuple(weight.shape)}"
            )


class SoftArgmaxMethod(Method):
    """Soft-argmax trained on the error of the expectation, optionally regularized (PAPER.md §4).

    Args:
        regularizer: None (Soft), ``"variance"`` (Soft w/ V.R.: Σ_axes (Var_π − σ_t²)²) or
            ``"distribution"`` (Soft w/ D.R.: divergence to N(target, σ_t²) on the grid).
        regularizer_weight: its weight in the total (paper: V.R. 1; D.R. 0.1, 1 for OCT, 0.01 for
            point clouds).
        target_variance: σ_t²; None = 4 cell² on grids, 4e-4 on point sets.
        divergence: D.R. divergence, ``"js"`` (the paper's) or ``"kl"`` (KL(π‖q)).
        p, confidence, mass_radius, name: see :class:`Method`.
    """

    def __init__(
        self,
        regularizer: Literal["variance", "distribution"] | None = None,
        regularizer_weight: float = 1.0,
        target_variance: float | None = None,
        divergence: Literal["js", "kl"] = "js",
        p: Literal[1, 2] = 1,
        confidence: Confidence = "peak",
        mass_radius: float | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(p=p, confidence=confidence, mass_radius=mass_radius, name=name)
        if regularizer not in (None, "variance", "distribution"):
            raise ValueError(f"regularizer must be None, 'variance' or 'distribution', got {regularizer!r}")
        if divergence not in ("js", "kl"):
            raise ValueError(f"divergence must be 'js' or 'kl', got {divergence!r}")
        if regularizer_weight < 0:
            raise ValueError(f"regularizer_weight must be >= 0, got {regularizer_weight}")
        if target_variance is not None and target_variance <= 0:
            raise ValueError(f"target_variance must be > 0 (or None for the default), got {target_variance}")
        self.regularizer = regularizer
        self.regularizer_weight = float(regularizer_weight)
        self.target_variance = target_variance
        self.divergence = divergence

    def _default_name(self) -> str:
        return {None: "soft", "variance": "soft_vr", "distribution": "soft_dr"}[self.regularizer]

    def _repr_fields(self) -> tuple[str, ...]:
        return (*super()._repr_fields(), "regularizer", "regularizer_weight", "target_variance", "divergence")

    def _loss(self, logits, target, weight, points, generator) -> Tensor:
        pred = self.predict(logits, points)
        total = self._coordinate_term(pred, target, weight, logits, points)
        if self.regularizer is None or self.regularizer_weight == 0:
            return total
        on_grid = points is None
        var = self.target_variance
        if var is None:
            var = GRID_TARGET_VARIANCE if on_grid else POINT_TARGET_VARIANCE
        if self.regularizer == "variance":
            reg = (
                variance_loss(logits, var, weight)
                if on_grid
                else variance_loss_points(logits, points, var, weight)
            )
        else:
            reg = (
                distribution_loss(logits, target, var, self.divergence, weight)
                if on_grid
                else distribution_loss_points(logits, points, target, var, self.divergence, weight)
            )
        # both terms are weighted means over the same (B, K), so their sum is the mean of the sums
        return total + self.regularizer_weight * reg


class SamplingArgmaxMethod(Method):
    """Sampling-argmax: trained on the expected error E_{y~p}[ℓ1(y_t, y)], read out as soft-argmax.

    Args:
        basis: sub-distribution per cell, ``"uniform"``, ``"triangular"`` or ``"gaussian"``.
        num_samples: N_s, Monte-Carlo samples per keypoint (paper: 30; 1 already suffices).
        schedule: Gumbel-softmax temperature per epoch; None = the paper's
            ``LinearTemperature(2.0, 0.5, 3/50)``, τ = max(0.5, 2 − 3·epoch/50).
        gumbel: ``"paper"`` softmax((log π + g)/τ), or ``"authors"`` softmax(log π + g/τ).
        sigma: Gaussian basis σ; None = 1 cell on grids, 0.01 on point sets.
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
        super().__init__(p=p, confidence=confidence, mass_radius=mass_radius, name=name)
        if basis not in ("uniform", "triangular", "gaussian"):
            raise ValueError(f"basis must be 'uniform', 'triangular' or 'gaussian', got {basis!r}")
        if int(num_samples) != num_samples or num_samples < 1:
            raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}")
        if gumbel not in ("paper", "authors"):
            raise ValueError(f"gumbel must be 'paper' or 'authors', got {gumbel!r}")
        if sigma is not None and sigma <= 0:
            raise ValueError(f"sigma must be > 0 (or None for the default), got {sigma}")
        self.basis = basis
        self.num_samples = int(num_samples)
        self.schedule = LinearTemperature(start=2.0, end=0.5, slope=3 / 50) if schedule is None else schedule
        if not callable(self.schedule):
            raise ValueError(f"schedule must be a temperature schedule (epoch -> τ), got {schedule!r}")
        self.gumbel = gumbel
        self.sigma = sigma
        if triangular_reread and basis != "triangular":
            raise ValueError("triangular_reread=True needs basis='triangular'; set one or the other")
        if gaussian_reweight and basis != "gaussian":
            raise ValueError("gaussian_reweight=True needs basis='gaussian'; set one or the other")
        self.triangular_reread = bool(triangular_reread)
        self.gaussian_reweight = bool(gaussian_reweight)
        self.clipped_gradient = bool(clipped_gradient)

    @property
    def temperature(self) -> float:
        """τ of the current epoch."""
        return float(self.schedule(self.epoch))

    def _default_name(self) -> str:
        return "samp_" + {"uniform": "uni", "triangular": "tri", "gaussian": "gau"}[self.basis]

    def _repr_fields(self) -> tuple[str, ...]:
        authors = [k for k in ("triangular_reread", "gaussian_reweight", "clipped_gradient") if getattr(self, k)]
        return (*super()._repr_fields(), "basis", "num_samples", "schedule", "gumbel", "sigma", *authors)

    def _loss(self, logits, target, weight, points, generator) -> Tensor:
        tau = self.temperature
        if points is None:
            sigma = 1.0 if self.sigma is None else self.sigma
            samples = sampling_argmax(
                logits, self.num_samples, tau, self.basis, self.gumbel, generator, sigma=sigma,
                triangular_reread=self.triangular_reread, gaussian_reweight=self.gaussian_reweight,
                clipped_gradient=self.clipped_gradient,
            )
        else:
            if self.basis != "gaussian" or self.triangular_reread or self.gaussian_reweight or self.clipped_gradient:
                raise ValueError(
                    f"{self.name}: on point sets only basis='gaussian' is defined (the paper's choice, sigma=0.01; "
                    "uniform/triangular bases need a grid cell) and the authors' grid options do not apply; "
                    "use paper_method('samp_gau') or SamplingArgmaxMethod(basis='gaussian')"
                )
            sigma = POINT_CELL if self.sigma is None else self.sigma
            samples = sampling_argmax_points(
                logits, points, self.num_samples, tau, sigma, generator, gumbel=self.gumbel
            )
        return self._coordinate_term(samples, target, weight, logits, points)


_PAPER_DEFAULTS: dict[str, tuple[type[Method], dict]] = {
    "soft": (SoftArgmaxMethod, {}),
    # target_variance None = σ_t² 4 cell² on grids (the paper's), 4e-4 on point sets
    "soft_vr": (SoftArgmaxMethod, {"regularizer": "variance", "regularizer_weight": 1.0}),
    "soft_dr": (SoftArgmaxMethod, {"regularizer": "distribution", "regularizer_weight": 0.1, "divergence": "js"}),
    "samp_uni": (SamplingArgmaxMethod, {"basis": "uniform", "num_samples": 30, "gumbel": "paper"}),
    "samp_tri": (SamplingArgmaxMethod, {"basis": "triangular", "num_samples": 30, "gumbel": "paper"}),
    "samp_gau": (SamplingArgmaxMethod, {"basis": "gaussian", "num_samples": 30, "gumbel": "paper"}),
}


def paper_method(name: str, /, **overrides) -> Method:
    """Build one of the paper's six methods (:data:`PAPER_METHODS`) with its COCO/MTFL settings.

    ``soft``; ``soft_vr`` (V.R. weight 1, σ_t² = 4); ``soft_dr`` (D.R. JS, weight 0.1, σ_t² = 4);
    ``samp_uni``/``samp_tri``/``samp_gau`` (N_s = 30, τ = max(0.5, 2 − 3·epoch/50), paper Gumbel).
    Keyword overrides replace constructor arguments, e.g. point clouds:
    ``paper_method("soft_dr", regularizer_weight=0.01)`` (σ_t² then defaults to 4e-4 on points).

    >>> paper_method("samp_gau", num_samples=10).num_samples
    10
    """
    if name not in _PAPER_DEFAULTS:
        raise ValueError(f"unknown method name {name!r}; valid names are {', '.join(PAPER_METHODS)}")
    cls, defaults = _PAPER_DEFAULTS[name]
    valid = [k for k in inspect.signature(cls.__init__).parameters if k != "self"]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"{cls.__name__} ({name!r}) has no argument(s) {unknown}; valid ones are {valid}")
    return cls(**{**defaults, **overrides})
