"""The read-out of a trained model, spelled once: model -> logits (flip-averaged with the flip test) -> the
method's keypoints and confidence -> original units.

Every consumer calls :func:`read_out`: the training module's ``validate``/``test``/``predict`` steps, the
:class:`~sampling_argmax.inference.Predictor` (``predict --input``), the exported graph
(:class:`~sampling_argmax.export.InferenceModel`), the report figures and the experiments. So a file
predicts what ``test`` scores, and an export computes what ``predict`` writes.

Example:
    >>> import torch
    >>> from sampling_argmax.methods import paper_method
    >>> model = torch.nn.Conv2d(1, 3, 1)
    >>> out = read_out(model, paper_method("soft"), torch.zeros(2, 1, 8, 8), "image")
    >>> out.pred_grid.shape, out.confidence.shape, out.pred is None
    (torch.Size([2, 3, 2]), torch.Size([2, 3]), True)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from sampling_argmax.codecs.base import swap_pairs, to_original_coords

__all__ = ["FlipTest", "ReadOut", "flip_average", "read_out"]


class FlipTest(NamedTuple):
    """What the flip test needs from a task: left/right keypoint pairs and the mirror of a model input.

    ``mirror(key, inputs) -> inputs`` mirrors a batch of model inputs horizontally (the data module's
    :meth:`~sampling_argmax.data.base.LocalizationDataModule.mirror`).
    """

    pairs: Sequence[Sequence[int]]
    mirror: Callable[[str, Tensor], Tensor]


class ReadOut(NamedTuple):
    """What :func:`read_out` returns for a batch of B inputs with K keypoints."""

    logits: Tensor  # the evaluation logits (B, K, *map): the model's, or the flip-averaged log-probabilities
    pred_grid: Tensor  # (B, K, dims) float32, map units (grid cells, cell i centred at i; points' own units)
    confidence: Tensor  # (B, K) float32, the method's confidence (peak probability by default)
    pred: Tensor | None  # (B, K, out) float64 original units, when a to_original map was given


def flip_average(logits: Tensor, flipped_logits: Tensor, flip_pairs: Sequence[Sequence[int]],
                 mirror_maps: bool = True) -> Tensor:
    """Flip test: average the probability maps of an input and of its mirror image.

    ``flipped_logits`` are the model's output on the mirrored input; on grids (``mirror_maps``) they are
    mirrored back along the last (x) axis, on point sets (the same points, mirrored) they are not; then
    left/right keypoints are swapped before averaging. Returns log-probabilities (B, K, *map), so every
    method's read-out applies unchanged (softmax(log p) = p).
    """
    if logits.shape != flipped_logits.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and flipped_logits {tuple(flipped_logits.shape)} differ")
    back = (flipped_logits.flip(-1) if mirror_maps else flipped_logits)[:, swap_pairs(logits.shape[1], flip_pairs)]
    batch, keypoints = logits.shape[:2]
    prob = torch.softmax(logits.float().reshape(batch, keypoints, -1), -1)
    prob_back = torch.softmax(back.float().reshape(batch, keypoints, -1), -1)
    return torch.log((prob + prob_back).clamp_min(1e-30) / 2).reshape(logits.shape)


def read_out(model: nn.Module, method, inputs: Tensor, key: str, flip: FlipTest | None = None,
             to_original: Tensor | None = None, check_finite: bool = True) -> ReadOut:
    """Run ``model`` on a prepared batch and read the keypoints out with ``method``.

    Args:
        model: outputs logits (B, K, *map) (or what ``method`` reads, e.g. learned-basis parameters).
        method: a :class:`~sampling_argmax.methods.Method` (``predict``, ``confidence``).
        inputs: the batch's model input under ``key`` (one of ``image``, ``volume``, ``signal``, ``points``);
            for ``points`` (B, N, d) the read-out runs over the same points.
        key: the input's name in the batch contract.
        flip: with the flip test, the task's pairs and mirror; the maps of the input and of its mirror
            are averaged (:func:`flip_average`).
        to_original: the batch's map -> original units matrices (see
            :func:`~sampling_argmax.codecs.base.to_original_coords`), or None for map units only.
        check_finite: refuse non-finite keypoints (a diverged or broken model) with a ``FloatingPointError``.
    """
    logits = model(inputs)
    if flip is not None:
        logits = flip_average(logits, model(flip.mirror(key, inputs)), flip.pairs, mirror_maps=key != "points")
    points = inputs if key == "points" else None
    pred_grid = method.predict(logits, points).float()
    if check_finite and not bool(torch.isfinite(pred_grid).all()):
        raise FloatingPointError(
            f"non-finite predictions ({getattr(method, 'name', type(method).__name__)}): the model's weights are "
            "broken or training diverged; lower the learning rate, or use an earlier checkpoint"
        )
    pred = None
    if to_original is not None:
        pred = to_original_coords(pred_grid.double(), to_original.to(pred_grid.device))
    return ReadOut(logits, pred_grid, method.confidence(logits, points).float(), pred)
