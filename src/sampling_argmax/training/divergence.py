"""The divergence guard: a run whose numbers blow up stops with an error, and nothing broken is saved.

A finite loss is not enough: the paper's losses are bounded (an expectation over a probability map), so a
learning rate that drives the weights to 1e29 can leave the logged loss at a calm 0.65. The guard watches
the causes, not the loss:

* **gradients** (before each optimizer step): NaN or inf -> stop before the step corrupts the weights;
* **weights** (after each step): NaN or inf, or a parameter tensor whose norm grew more than
  ``max_weight_growth`` times ``max(its norm at the start of this fit, 1)`` (default 1000: three orders of
  magnitude; the floor of 1 gives zero-initialized biases a scale);
* **logits** (every training, validation, test and predict batch): NaN or inf, or one map whose logits
  span more than ``max_logit_range`` (default 1000). The probability of a cell ``r`` below the map's
  maximum is at most ``exp(-r)``: beyond a range of about 104 a float32 softmax already rounds such cells
  to exactly 0 (no probability, no gradient), and a range of 1000 is ten times past that, a map that is
  one-hot in float64 too (``exp(-745)`` underflows). Healthy runs stay far below both limits (measured by
  ``experiments/divergence_margins.py``, in docs/reliability.md).

The limits are the module's ``max_weight_growth`` and ``max_logit_range`` (``--model.max_weight_growth``,
``--model.max_logit_range``; ``inf``, on the command line ``.inf``, switches a check off). An error names
the step, the tensor or map, the numbers and the likely cause (the learning rate, or extreme input values);
the checkpoint callbacks run after the guard and its :meth:`DivergenceGuard.on_save_checkpoint` refuses a
state past the limits, so the last good checkpoint stays.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from torch import Tensor

__all__ = ["MAX_LOGIT_RANGE", "MAX_WEIGHT_GROWTH", "DivergedError", "DivergenceGuard", "logit_range"]

MAX_WEIGHT_GROWTH = 1e3
MAX_LOGIT_RANGE = 1e3


class DivergedError(FloatingPointError):
    """Training produced non-finite or exploding numbers; nothing broken is saved."""


def logit_range(maps: Tensor) -> float:
    """Largest ``max - min`` of the logits over the maps of (B, K, *map) (inf when any is NaN or inf)."""
    if maps.dim() < 3 or maps.numel() == 0:
        return 0.0
    flat = maps.detach().float().flatten(2)
    if not bool(torch.isfinite(flat).all()):
        return math.inf
    return float((flat.amax(-1) - flat.amin(-1)).max())


class DivergenceGuard(L.Callback):
    """Stops training (and evaluation of a diverged checkpoint) with :class:`DivergedError`; see the module doc.

    Added by :meth:`LocalizationModule.configure_callbacks`, so every Trainer has it.
    """

    def __init__(self, max_weight_growth: float = MAX_WEIGHT_GROWTH, max_logit_range: float = MAX_LOGIT_RANGE) -> None:
        for name, value in (("max_weight_growth", max_weight_growth), ("max_logit_range", max_logit_range)):
            if not (isinstance(value, (int, float)) and value > 1):
                raise ValueError(f"{name}={value!r} must be a number > 1 (inf switches the check off)")
        self.max_weight_growth = float(max_weight_growth)
        self.max_logit_range = float(max_logit_range)
        self._start: dict[str, float] = {}
        self._range = 0.0
        self._hook = None

    # ------------------------------------------------------------------ the logits, seen by a forward hook

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        model = getattr(pl_module, "model", None)
        if self._hook is None and isinstance(model, torch.nn.Module):
            self._hook = model.register_forward_hook(self._record)
        self._pl_module = pl_module

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.teardown(trainer, pl_module, "")

    def _record(self, module: torch.nn.Module, inputs: Any, output: Any) -> None:
        if isinstance(output, Tensor) and output.is_floating_point():
            method = getattr(self._pl_module, "method", None)
            maps = method.maps(output) if callable(getattr(method, "maps", None)) else output
            self._range = max(self._range, logit_range(maps))

    def _check_logits(self, trainer: L.Trainer, pl_module: L.LightningModule, where: str) -> None:
        seen, self._range = self._range, 0.0
        if trainer.world_size > 1:  # every rank decides alike (one rank stopping alone would hang the others)
            seen = float(trainer.strategy.reduce(torch.tensor(seen, device=pl_module.device), reduce_op="max"))
        if seen > self.max_logit_range:
            lr = getattr(pl_module, "lr", None)
            if where == "training":
                cause = (f"training diverged: the learning rate (--model.lr {lr}) is too high for this model, or the "
                         "data holds extreme values; the last checkpoint written before is kept")
            else:
                cause = ("the weights being evaluated diverged in training (evaluate an earlier checkpoint, or "
                         "retrain with a lower --model.lr)")
            what = "NaN or inf" if math.isinf(seen) else f"a range of {seen:.3g}"
            raise DivergedError(
                f"{where} step {trainer.global_step}: the model's logits hold {what} within one map, past "
                f"max_logit_range={self.max_logit_range:g}, so its softmax is one-hot (degenerate); {cause}. "
                "The limit is --model.max_logit_range"
            )

    # ------------------------------------------------------------------ gradients and weights

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = {name: float(p.detach().norm()) for name, p in pl_module.named_parameters()}

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        bad = [name for name, p in pl_module.named_parameters()
               if p.grad is not None and not bool(torch.isfinite(p.grad).all())]
        if bad:
            raise DivergedError(
                f"training step {trainer.global_step}: the gradients of {', '.join(bad[:3])} hold NaN or inf; the "
                f"step was not taken and the last checkpoint written before is kept. Likely cause: the learning "
                f"rate (--model.lr {getattr(pl_module, 'lr', '?')}) or extreme values in the data"
            )

    def weight_problem(self, pl_module: L.LightningModule) -> str | None:
        """Why the weights are past the limits (the worst tensor), or None."""
        worst, worst_ratio, worst_norm = None, 0.0, 0.0
        for name, p in pl_module.named_parameters():
            norm = float(p.detach().norm())
            if not math.isfinite(norm):
                return f"{name} holds NaN or inf"
            ratio = norm / max(self._start.get(name, norm), 1.0)
            if ratio > worst_ratio:
                worst, worst_ratio, worst_norm = name, ratio, norm
        if worst is not None and worst_ratio > self.max_weight_growth:
            return (f"the norm of {worst} grew {worst_ratio:.3g} times (from {self._start.get(worst, 0.0):.3g} to "
                    f"{worst_norm:.3g}), past max_weight_growth={self.max_weight_growth:g}")
        return None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if problem := self.weight_problem(pl_module):
            raise DivergedError(
                f"training step {trainer.global_step}: {problem}; training diverged and stopped, the last "
                f"checkpoint written before is kept. Likely cause: the learning rate (--model.lr "
                f"{getattr(pl_module, 'lr', '?')}) is too high for this model, or the data holds extreme values. "
                "The limit is --model.max_weight_growth"
            )
        self._check_logits(trainer, pl_module, "training")

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if self._start and (problem := self.weight_problem(pl_module)):
            raise DivergedError(f"not saving step {trainer.global_step}: {problem}; the last checkpoint written "
                                "before is kept")

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._check_logits(trainer, pl_module, "validation")

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._check_logits(trainer, pl_module, "test")

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._check_logits(trainer, pl_module, "predict")
