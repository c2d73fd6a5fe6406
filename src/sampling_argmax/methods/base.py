"""The base of every method: what a method is (read-out, confidence, loss), and a label-free objective.

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
    >>> from sampling_argmax.methods import paper_method
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

from typing import Any, Literal

import torch
from torch import Tensor

from sampling_argmax._checks import (
    GRID_HINT,
    check_choice,
    check_data,
    check_logits,
    check_nonnegative,
    check_optional_positive,
    check_p,
    check_points,
    check_target,
    check_weight,
)
from sampling_argmax.coords import POINT_CELL, grid_size_xyz
from sampling_argmax.functional import (
    _mass_confidence,
    _peak_confidence,
    _probabilities,
    _soft_argmax,
    _soft_argmax_points,
)
from sampling_argmax.losses import (
    _coordinate_loss,
)
from sampling_argmax.modules import (
    ConstantTemperature,
    ExponentialTemperature,
    LinearTemperature,
)

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



class Objective:
    """A task's own training loss, for tasks trained without labels: ``objective(model, method, batch) -> scalar``.

    It runs the model on the batch itself and reads the keypoints out with the method's label-free entry points
    (:meth:`Method.keypoint_samples`, ``label_free_regularizer``).
    """

    def __call__(self, model: torch.nn.Module, method: Method, batch: dict[str, Any]) -> Tensor:
        raise NotImplementedError
