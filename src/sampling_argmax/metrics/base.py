"""Evaluators: small objects that turn the gathered outputs of an evaluation into metrics and files.

The training module gathers one row per sample over all processes (keys: the batch's extras plus
``pred`` (original units), ``pred_grid`` (map units), ``confidence`` (K,)) and calls the task's
evaluator once per validation/test epoch. Evaluators compute with the pure functions of
:mod:`sampling_argmax.metrics`, hold no reference to the trainer or the data module, and write files
only into ``context.output_dir`` (given to one process only).

Example:
    >>> import numpy as np
    >>> from sampling_argmax.metrics.localization import KeypointEvaluator
    >>> outputs = {"pred": np.zeros((2, 1, 2)), "keypoints": np.ones((2, 1, 2)), "confidence": np.ones((2, 1))}
    >>> round(KeypointEvaluator()(outputs, EvaluationContext("val"))["mean_error"], 4)
    1.4142
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["EvaluationContext", "Evaluator", "require"]


@dataclass(frozen=True)
class EvaluationContext:
    """What an evaluator may know besides the outputs.

    stage: "val" or "test". output_dir: folder for result files, None on processes that must not write.
    references: the data module's ``references(stage)`` (e.g. the annotation file of the split).
    num_samples: samples in the evaluated split (None if unknown), to tell full from partial runs.
    """

    stage: str
    output_dir: Path | None = None
    references: Mapping[str, Any] = field(default_factory=dict)
    num_samples: int | None = None


class Evaluator:
    """Base class: ``evaluator(outputs, context) -> {metric: float}``."""

    def __call__(self, outputs: Mapping[str, np.ndarray], context: EvaluationContext) -> dict[str, float]:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


def require(outputs: Mapping[str, Any], keys: Iterable[str], evaluator: str) -> None:
    """A clear error when the gathered outputs lack what an evaluator reads (a data/evaluator mismatch)."""
    missing = [key for key in keys if key not in outputs]
    if missing:
        raise ValueError(
            f"{evaluator} needs the batch keys {missing}, which the data module's samples do not have "
            f"(they have {sorted(outputs)}); pick the evaluator that belongs to this task's data module"
        )
