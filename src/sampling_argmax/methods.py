"""The six methods of the paper's tables, one object each: read-out, loss, confidence, schedule.

A method is not a model: any network that outputs logits over a grid ``(B, K, *grid)`` or a
point set ``(B, K, N)`` (with ``points`` ``(B, N, d)``) trains with any method. Methods are plain
Python objects with typed constructor arguments, so LightningCLI builds them from YAML::

    method:
      class_path: sampling_argmax.methods.SamplingArgmaxMethod
      init_args: {basis: gaussian, num_samples: 30}

:func:`method_config` writes that config for one of the paper's methods, :func:`paper_method` builds the
object; both read the paper's settings from one table.

Loss scale (the contract's, so the paper's regularizer weights keep their meaning): on grids the
ℓ1 coordinate term is computed on coordinates divided by the grid size per axis (cells / n_axis)
and summed over axes; the variance regularizer is on the same normalized scale, Σ_axes
((Var_a − σ_t²) / n_a²)² with σ_t² = 4 cell² (``variance_scale="cell"``: the paper's literal cell² form,
which collapses training at weight 1 -- docs/methods.md); D.R. compares π with a Gaussian of σ_t² = 4
cell²; the total is the visibility-weighted mean over (B, K). On point sets coordinates
are used as they are (the objects are already normalized) and σ_t², σ and the confidence radius
default to their point-set values (:data:`~sampling_argmax.losses.POINT_TARGET_VARIANCE`,
0.01, 0.015).

Inputs are validated once, at :meth:`Method.loss` / ``predict`` / ``confidence`` (shapes; NaN/inf logits and
points; weights finite and >= 0; targets finite where the weight is non-zero), see
:func:`sampling_argmax.set_input_checks`.

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
from typing import Any, Literal

import torch
from torch import Tensor

from sampling_argmax._checks import (
    GRID_HINT,
    GUMBEL_MODES,
    check_authors_options,
    check_choice,
    check_data,
    check_logits,
    check_nonnegative,
    check_num_samples,
    check_optional_positive,
    check_p,
    check_points,
    check_target,
    check_weight,
)
from sampling_argmax.bases import BASES, GRID_SIGMA, POINT_SIGMA
from sampling_argmax.coords import POINT_CELL, grid_size_xyz
from sampling_argmax.functional import (
    _mass_confidence,
    _peak_confidence,
    _probabilities,
    _sampling_argmax,
    _soft_argmax,
    _soft_argmax_points,
)
from sampling_argmax.losses import (
    DIVERGENCES,
    GRID_TARGET_VARIANCE,
    POINT_TARGET_VARIANCE,
    VARIANCE_SCALES,
    _coordinate_loss,
    _distribution_loss,
    _distribution_loss_points,
    _variance_loss,
    _variance_loss_points,
)
from sampling_argmax.learned_bases import (
    LEARNED_BASES,
    LearnedBasis,
    QuantileSpline,
    ShiftedGaussian,
    get_learned_basis,
    learned_basis_mean,
    learned_sampling_argmax,
)
from sampling_argmax.modules import ConstantTemperature, ExponentialTemperature, LinearTemperature

__all__ = [
    "NotDefinedOnPointsError",
    "Method",
    "SoftArgmaxMethod",
    "SamplingArgmaxMethod",
    "paper_method",
    "method_config",
    "PAPER_METHODS",
    "METHODS",
    "LearnedBasisMethod",
    "POINT_CELL",
]

Confidence = Literal["peak", "mass"]
Schedule = ConstantTemperature | LinearTemperature | ExponentialTemperature
REGULARIZERS = (None, "variance", "distribution")


class NotDefinedOnPointsError(ValueError):
    """The method needs a grid (uniform/triangular bases, the authors' grid options) and got a point set."""


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
        self.p = check_p(p)
        self.confidence_readout = check_choice(confidence, "confidence", ("peak", "mass"))
        self.mass_radius = check_optional_positive(mass_radius, "mass_radius", "the 'mass' confidence radius")
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
        """Scalar training loss; target ``(B, K, dims)`` in cells (or point units), weight ``(B, K)``.

        On grids the weight may also be per axis, ``(B, K, dims)``: a keypoint supervises the axes whose
        weight is non-zero (e.g. a 2D label in a 3D volume: x, y), and is trained on the marginal of its map
        over the other axes (:meth:`axis_weighted_loss`).

        Raises ``ValueError`` on bad shapes, NaN/inf logits or points, weights that are negative or not
        finite, and targets that are NaN/inf where the weight is non-zero (unlabeled keypoints: weight 0,
        any target -- they add nothing to the loss and get no gradient).
        """
        if isinstance(weight, Tensor) and weight.dim() == 3 and weight.shape[-1] > 1 and target is not None:
            return self.axis_weighted_loss(logits, target, weight, points, generator=generator)
        weight = self._check_inputs(logits, target, weight, points)
        return self._loss(logits, target, weight, points, generator)

    def axis_weighted_loss(self, logits: Tensor, target: Tensor, weight: Tensor, points: Tensor | None = None, *,
                           generator: torch.Generator | None = None) -> Tensor:
        """The loss with a per-axis weight ``(B, K, dims)`` on a grid.

        Keypoints are grouped by the set of axes they supervise; each group is trained with the plain loss on
        the marginal of the logits over its unsupervised axes (log-sum-exp) and its supervised coordinates,
        and the groups' weighted means are combined into the mean over all weighted keypoints. The marginal
        of a softmax is the softmax of the log-sum-exp, so soft-argmax, sampling and the regularizers see the
        x-y distribution of a 3D map for a 2D label. A keypoint's non-zero axis weights must be equal.
        """
        if points is not None:
            raise ValueError("a per-axis weight (B, K, dims) is defined on grids only; give point sets a (B, K) weight")
        dims = logits.dim() - 2
        if tuple(weight.shape) != (*logits.shape[:2], dims):
            raise ValueError(f"a per-axis weight must have shape (B, K, dims) = {(*logits.shape[:2], dims)} for logits "
                             f"{tuple(logits.shape)}, got {tuple(weight.shape)}")
        weight = weight.to(torch.float32)
        supervised = weight != 0
        per_keypoint = weight.amax(-1)
        if bool(((weight != per_keypoint[..., None]) & supervised).any()):
            raise ValueError("the non-zero axis weights of a keypoint must be equal (weight (B, K, dims): 0 = that "
                             "axis unsupervised); give unequal confidences as a (B, K) weight")
        total = logits.sum() * 0.0  # keeps the graph when no keypoint is labeled
        norm = torch.zeros((), device=logits.device)
        for pattern in torch.unique(supervised.reshape(-1, dims), dim=0).tolist():
            axes = [axis for axis in range(dims) if pattern[axis]]
            if not axes:
                continue
            chosen = (supervised == torch.tensor(pattern, device=logits.device)).all(-1)
            group_weight = torch.where(chosen, per_keypoint, torch.zeros((), device=logits.device))
            # only the samples that have such keypoints (a mixed batch: the 3D half, then the 2D half)
            rows = chosen.any(-1)
            sub = (lambda x: x) if bool(rows.all()) else (lambda x: x[rows])
            # axis a (x, y, z order) is logits dimension -1 - a
            dropped = [logits.dim() - 1 - axis for axis in range(dims) if axis not in axes]
            marginal = torch.logsumexp(sub(logits), dim=dropped) if dropped else sub(logits)
            group_weight = sub(group_weight)
            group = self.loss(marginal, sub(target)[..., axes], group_weight, generator=generator)
            total = total + group * group_weight.sum()
            norm = norm + group_weight.sum()
        return total / norm.clamp_min(torch.finfo(torch.float32).tiny)

    def predict(self, logits: Tensor, points: Tensor | None = None) -> Tensor:
        """Expectation (soft-argmax) read-out ``(B, K, dims)``, for every method (PAPER.md §2)."""
        self._check_inputs(logits, None, None, points)
        return self._predict(logits, points)

    def confidence(self, logits: Tensor, points: Tensor | None = None) -> Tensor:
        """Per-keypoint confidence ``(B, K)``: peak probability, or mass near the prediction."""
        self._check_inputs(logits, None, None, points)
        if self.confidence_readout == "peak":
            return _peak_confidence(logits)  # a point set (B, K, N) reads like a 1D grid
        if points is None:
            return _mass_confidence(logits, None, 1.5 if self.mass_radius is None else self.mass_radius)
        radius = 1.5 * POINT_CELL if self.mass_radius is None else self.mass_radius
        prob = _probabilities(logits)  # (B, K, N), float32
        coords = _soft_argmax_points(logits, points)
        sq_dist = (points[:, None].to(prob.dtype) - coords[:, :, None]).square().sum(-1)  # (B, K, N)
        return (prob * (sq_dist <= radius * radius)).sum(-1)

    def keypoint_samples(self, logits: Tensor, points: Tensor | None = None, *,
                         generator: torch.Generator | None = None) -> Tensor:
        """The keypoints a label-free objective trains on, ``(B, K, S, dims)``.

        The coordinates the method's loss compares with a label, for objectives that have none (e.g. the
        reconstruction losses of :mod:`~sampling_argmax.models.skeleton_merger`): the soft-argmax (S = 1) for
        the soft-argmax methods, the S relaxed samples for sampling-argmax (a loss averaged over them is the
        Monte-Carlo estimate of the expected loss, as in :meth:`loss`).
        """
        self._check_inputs(logits, None, None, points)
        return self._samples(logits, points, generator)

    def label_free_regularizer(self, logits: Tensor, points: Tensor | None = None) -> Tensor:
        """The method's regularizer without labels (scalar, weight included; 0 for methods without one).

        V.R. needs no label; D.R. compares π with a Gaussian of σ_t² centred on the map's own expectation
        (detached), the only location a label-free objective has.
        """
        self._check_inputs(logits, None, None, points)
        return self._label_free_regularizer(logits, points)

    def output_shape(self, num_keypoints: int, map_shape) -> tuple[int, ...]:
        """The model output one sample must have: ``(K, *map_shape)`` (one logit map per keypoint)."""
        return (num_keypoints, *map_shape)

    def maps(self, output: Tensor) -> Tensor:
        """The logit maps ``(B, K, *grid)`` (or ``(B, K, N)``) of a model output: the output itself here."""
        return output

    def set_epoch(self, epoch: int) -> None:
        """Advance schedules to ``epoch`` (call at the start of each training epoch)."""
        self.epoch = int(check_nonnegative(epoch, "epoch", "the training epoch about to start"))

    def __repr__(self) -> str:
        # constructor-style: the "confidence" argument is stored as confidence_readout (confidence is a method)
        args = ", ".join(
            f"{k.removesuffix('_readout')}={getattr(self, k)!r}" for k in self._repr_fields()
        )
        return f"{type(self).__name__}({args})"

    # ---------------------------------------------------------------- for subclasses

    def _loss(self, logits, target, weight, points, generator) -> Tensor:
        """The loss of validated inputs (weight float32 or None)."""
        raise NotImplementedError

    def _samples(self, logits, points, generator) -> Tensor:
        return self._predict(logits, points)[:, :, None]

    def _label_free_regularizer(self, logits, points) -> Tensor:
        return torch.zeros((), device=logits.device)

    def _default_name(self) -> str:
        return type(self).__name__

    def _repr_fields(self) -> tuple[str, ...]:
        return ("name", "p", "confidence_readout")

    @staticmethod
    def _predict(logits: Tensor, points: Tensor | None) -> Tensor:
        return _soft_argmax(logits) if points is None else _soft_argmax_points(logits, points)

    def _coordinate_term(self, pred: Tensor, target: Tensor, weight: Tensor | None, logits: Tensor, points) -> Tensor:
        """ℓ_p term of the total; on grids both sides are divided by the axis sizes first."""
        if points is None:
            sizes = torch.tensor(grid_size_xyz(logits), dtype=torch.float32, device=logits.device)
            pred, target = pred / sizes, target / sizes
        return _coordinate_loss(pred, target, weight, self.p, "mean")

    @staticmethod
    def _check_inputs(logits: Tensor, target: Tensor | None, weight: Tensor | None,
                      points: Tensor | None) -> Tensor | None:
        """Every check of a public call (one device sync for the data checks); returns weight as float32."""
        if points is None:
            dims = check_logits(logits, shape_hint=f"{GRID_HINT} on a grid, or (B, K, N) with points=(B, N, d)")
            source = "the grid of logits"
        else:
            check_logits(logits, spatial_dims=(1,), shape_hint="(B, K, N) with points=(B, N, d)")
            dims = check_points(points, logits)
            source = "points (B, N, d)"
        batch = tuple(logits.shape[:2])
        if target is not None:
            check_target(target, batch, dims, source)
        weight = check_weight(weight, batch, logits)
        check_data(logits=logits, points=points, target=target, weight=weight)
        return weight


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


# The paper's settings, stated once (COCO/MTFL, supplementary Appendix A); read by paper_method and method_config.
_PAPER_DEFAULTS: dict[str, tuple[type[Method], dict[str, Any]]] = {
    "soft": (SoftArgmaxMethod, {}),
    # target_variance None = σ_t² 4 cell² on grids (the paper's), 4e-4 on point sets; weight 1 on the
    # normalized variance scale (variance_scale's default), see docs/methods.md
    "soft_vr": (SoftArgmaxMethod, {"regularizer": "variance", "regularizer_weight": 1.0}),
    "soft_dr": (SoftArgmaxMethod, {"regularizer": "distribution", "regularizer_weight": 0.1, "divergence": "js"}),
    "samp_uni": (SamplingArgmaxMethod, {"basis": "uniform", "num_samples": 30, "gumbel": "paper"}),
    "samp_tri": (SamplingArgmaxMethod, {"basis": "triangular", "num_samples": 30, "gumbel": "paper"}),
    "samp_gau": (SamplingArgmaxMethod, {"basis": "gaussian", "num_samples": 30, "gumbel": "paper"}),
}

PAPER_METHODS = tuple(_PAPER_DEFAULTS)
"""The names of the paper's six methods, in the order of its tables."""

# Beyond the paper: sampling-argmax with learned per-cell laws (their model outputs the laws' parameters too).
_LEARNED_DEFAULTS: dict[str, tuple[type[Method], dict[str, Any]]] = {
    "samp_lgau": (LearnedBasisMethod, {"basis": "shifted_gaussian", "num_samples": 30, "gumbel": "paper"}),
    "samp_lspline": (LearnedBasisMethod, {"basis": "quantile_spline", "num_samples": 30, "gumbel": "paper"}),
}
_DEFAULTS = {**_PAPER_DEFAULTS, **_LEARNED_DEFAULTS}
METHODS = tuple(_DEFAULTS)
"""Every method name: the paper's six, then the learned-basis ones (``samp_lgau``, ``samp_lspline``)."""


def _paper_arguments(name: str, overrides: dict[str, Any]) -> tuple[type[Method], dict[str, Any]]:
    """The class of paper method ``name`` and its constructor arguments with ``overrides`` applied."""
    if name not in _DEFAULTS:
        raise ValueError(f"unknown method name {name!r}; valid names are {', '.join(METHODS)}")
    cls, defaults = _DEFAULTS[name]
    valid = [k for k in inspect.signature(cls.__init__).parameters if k != "self"]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"{cls.__name__} ({name!r}) has no argument(s) {unknown}; valid ones are {valid}")
    return cls, {**defaults, **overrides}


def paper_method(name: str, /, **overrides) -> Method:
    """Build one of the paper's six methods (:data:`PAPER_METHODS`) with its COCO/MTFL settings (or a learned-basis
    one of :data:`METHODS`, ``samp_lgau``/``samp_lspline``, with the same sampling settings).

    ``soft``; ``soft_vr`` (V.R. weight 1 on the normalized scale, σ_t² = 4); ``soft_dr`` (D.R. JS, weight 0.1,
    σ_t² = 4); ``samp_uni``/``samp_tri``/``samp_gau`` (N_s = 30, τ = max(0.5, 2 − 3·epoch/50), paper Gumbel).
    Keyword overrides replace constructor arguments, e.g. point clouds:
    ``paper_method("soft_dr", regularizer_weight=0.01)`` (σ_t² then defaults to 4e-4 on points).

    >>> paper_method("samp_gau", num_samples=10).num_samples
    10
    """
    cls, arguments = _paper_arguments(name, overrides)
    return cls(**arguments)


def method_config(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The LightningCLI config ``{"class_path": ..., "init_args": {...}}`` of paper method ``name``.

    ``overrides`` replace constructor arguments: plain values (``{"num_samples": 1}``) or, for ``schedule``, a
    class_path config (``{"schedule": {"class_path": "sampling_argmax.ConstantTemperature", "init_args":
    {"tau": 0.5}}}``). Unknown keys raise a ``ValueError`` listing the valid ones; plain values are
    validated by building the method once (nested class_path configs are left to the CLI).

    >>> method_config("samp_gau", {"num_samples": 10})
    {'class_path': 'sampling_argmax.methods.SamplingArgmaxMethod', 'init_args': {'basis': 'gaussian', 'num_samples': 10, 'gumbel': 'paper'}}
    """
    if overrides is not None and not isinstance(overrides, dict):
        raise ValueError(f"overrides must be a dict of constructor arguments or None, got {type(overrides).__name__}")
    overrides = dict(overrides or {})
    cls, arguments = _paper_arguments(name, overrides)
    cls(**{k: v for k, v in arguments.items() if not isinstance(v, dict)})  # raises on bad values
    return {"class_path": f"{cls.__module__}.{cls.__name__}", "init_args": arguments}
