"""One LightningModule for every task: a model that outputs logits, a method that turns them into a
loss, coordinates and confidences, and the DataModule's ``evaluate`` that turns predictions into metrics.

Example:
    >>> from sampling_argmax.methods import paper_method
    >>> from sampling_argmax.models import SmallHeatmapNet
    >>> module = LocalizationModule(SmallHeatmapNet(num_keypoints=3), paper_method("samp_tri"), lr=1e-3)
    >>> module(torch.zeros(2, 1, 64, 64)).shape
    torch.Size([2, 3, 32, 32])
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn

from sampling_argmax.methods import Method

__all__ = ["LocalizationModule", "flip_average", "gather_outputs", "to_original_coords"]


def to_original_coords(pred_grid: Tensor, to_original: Tensor | None) -> Tensor:
    """Map (B, K, dims) grid coordinates through per-sample homogeneous (B, dims+1, dims+1) matrices."""
    if to_original is None:
        return pred_grid
    dims = pred_grid.shape[-1]
    matrix = to_original.to(pred_grid.dtype)
    if matrix.shape[-2:] != (dims + 1, dims + 1):
        raise ValueError(
            f"batch['to_original'] has shape {tuple(to_original.shape)}; it must be (B, {dims + 1}, {dims + 1}) "
            f"for {dims}D coordinates"
        )
    return pred_grid @ matrix[:, :dims, :dims].transpose(1, 2) + matrix[:, None, :dims, dims]


def flip_average(logits: Tensor, flipped_logits: Tensor, flip_pairs: Sequence[Sequence[int]]) -> Tensor:
    """Flip test: average the probability maps of an image and of its horizontal mirror.

    ``flipped_logits`` are the model's output on the mirrored image; they are mirrored back along
    the last (x) axis and left/right keypoints are swapped before averaging. Returns log-probabilities
    (B, K, *grid), so every method's read-out applies unchanged (softmax(log p) = p).
    """
    if logits.shape != flipped_logits.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and flipped_logits {tuple(flipped_logits.shape)} differ")
    order = list(range(logits.shape[1]))
    for left, right in flip_pairs:
        order[left], order[right] = right, left
    back = flipped_logits.flip(-1)[:, order]
    batch, keypoints = logits.shape[:2]
    prob = torch.softmax(logits.float().reshape(batch, keypoints, -1), -1)
    prob_back = torch.softmax(back.float().reshape(batch, keypoints, -1), -1)
    return torch.log((prob + prob_back).clamp_min(1e-30) / 2).reshape(logits.shape)


def gather_outputs(chunks: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate per-batch outputs of all ranks, keep one row per dataset "index", sort by it.

    DDP's DistributedSampler pads the last shard by repeating samples; duplicates share an index.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        gathered: list[Any] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(gathered, chunks)
        chunks = [chunk for rank_chunks in gathered for chunk in rank_chunks]
    if not chunks:
        return {}
    outputs = {key: np.concatenate([chunk[key] for chunk in chunks]) for key in chunks[0]}
    _, first = np.unique(outputs["index"], return_index=True)  # sorted unique indices
    return {key: value[first] for key, value in outputs.items()}


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, Tensor):
        value = value.detach()
        return (value.float() if value.is_floating_point() else value).cpu().numpy()
    return np.asarray(value)


class LocalizationModule(L.LightningModule):
    """Trains ``model`` with ``method``; evaluates with ``trainer.datamodule.evaluate``.

    Args:
        model: any nn.Module mapping ``batch["image"]`` to logits (B, K, *grid).
        method: a :class:`~sampling_argmax.methods.Method` (loss, read-out, confidence, τ schedule).
        lr: Adam learning rate.
        milestones: epochs at which the learning rate is multiplied by ``gamma`` (MultiStepLR).
        gamma: learning-rate decay factor.
        weight_decay: Adam weight decay.
        flip_test: average the maps of each image and its mirror at evaluation; needs
            ``datamodule.flip_pairs`` (2D grids only).

    Every validation/test epoch logs ``{stage}/{metric}`` for each metric of ``evaluate`` and
    ``{stage}/num_samples`` (unique samples evaluated, after de-duplication over DDP ranks); the
    gathered outputs of the last evaluation are kept in ``self.last_outputs``.
    """

    def __init__(
        self,
        model: nn.Module,
        method: Method,
        lr: float = 1e-3,
        milestones: list[int] | None = None,
        gamma: float = 0.1,
        weight_decay: float = 0.0,
        flip_test: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module that outputs logits, got {type(model).__name__}")
        if not all(callable(getattr(method, name, None)) for name in ("loss", "predict", "confidence", "set_epoch")):
            raise ValueError(
                f"method must provide loss/predict/confidence/set_epoch (a sampling_argmax.methods.Method), "
                f"got {type(method).__name__}; build one with sampling_argmax.methods.paper_method(name)"
            )
        if lr <= 0 or gamma <= 0 or weight_decay < 0:
            raise ValueError(f"need lr > 0, gamma > 0, weight_decay >= 0; got {lr}, {gamma}, {weight_decay}")
        milestones = sorted(milestones or [])
        if any(m < 1 for m in milestones):
            raise ValueError(f"milestones {milestones} must be epochs >= 1")
        self.model = model
        self.method = method
        self.lr, self.milestones, self.gamma, self.weight_decay = lr, milestones, gamma, weight_decay
        self.flip_test = flip_test
        with warnings.catch_warnings():  # the nn.Module case is handled just below
            warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`.*")
            self.save_hyperparameters()
        if isinstance(self.hparams.get("model"), nn.Module):
            # built in Python, not from a LightningCLI config: objects would be pickled into the
            # checkpoint; keep only plain values (load_from_checkpoint then needs model=, method=)
            for key in ("model", "method"):
                self.hparams.pop(key, None)
        self._outputs: list[dict[str, np.ndarray]] = []
        self.last_outputs: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ forward and read-outs

    def forward(self, image: Tensor) -> Tensor:
        return self.model(image)

    def evaluation_logits(self, image: Tensor, flip_pairs: Sequence[Sequence[int]] | None = None) -> Tensor:
        """Logits used for evaluation: the model's, or with ``flip_test`` the flip-averaged log-probabilities.

        ``flip_pairs`` default to ``trainer.datamodule.flip_pairs``.
        """
        logits = self.model(image)
        if not self.flip_test:
            return logits
        if flip_pairs is None:
            datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
            flip_pairs = getattr(datamodule, "flip_pairs", None)
        if flip_pairs is None:
            raise ValueError(
                "flip_test=True needs the datamodule to define flip_pairs (left/right keypoint pairs, [] if none); "
                "set model.flip_test=false for this dataset"
            )
        if logits.dim() != 4:
            raise ValueError(f"flip_test=True needs 2D maps (B, K, H, W); got logits {tuple(logits.shape)}")
        return flip_average(logits, self.model(image.flip(-1)), flip_pairs)

    # ------------------------------------------------------------------ training

    def on_train_epoch_start(self) -> None:
        self.method.set_epoch(self.current_epoch)
        tau = getattr(self.method, "temperature", None)
        if tau is not None:
            self.log("train/tau", float(tau), on_step=False, on_epoch=True)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        logits = self.model(batch["image"])
        self._check_keypoints(logits)
        loss = self.method.loss(logits, batch["target"], batch.get("target_weight"))
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite training loss at step {self.global_step} ({self.method.name}); lower the learning "
                "rate or use --trainer.precision 32"
            )
        self.log("train/loss", loss, prog_bar=True, batch_size=logits.shape[0])
        return loss

    def _check_keypoints(self, logits: Tensor) -> None:
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        expected = getattr(datamodule, "num_keypoints", None)
        if expected is not None and logits.shape[1] != expected:
            raise ValueError(
                f"the model outputs {logits.shape[1]} maps but the datamodule has num_keypoints={expected}; "
                "set the model's num_keypoints to match"
            )

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=self.milestones, gamma=self.gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    # ------------------------------------------------------------------ evaluation

    def _evaluation_step(self, batch: dict[str, Any]) -> None:
        logits = self.evaluation_logits(batch["image"])
        self._check_keypoints(logits)
        pred_grid = self.method.predict(logits).float()
        row = {key: _to_numpy(value) for key, value in batch.items() if key != "image"}
        row["pred_grid"] = _to_numpy(pred_grid)
        row["pred"] = _to_numpy(to_original_coords(pred_grid, batch.get("to_original")))
        row["confidence"] = _to_numpy(self.method.confidence(logits))
        if "index" not in row:
            raise ValueError("every batch needs an 'index' entry (the dataset index) to de-duplicate DDP outputs")
        self._outputs.append(row)

    def _evaluation_epoch_end(self, stage: str) -> None:
        chunks, self._outputs = self._outputs, []
        if self.trainer.sanity_checking:
            return
        outputs = gather_outputs(chunks)
        evaluate = getattr(self.trainer.datamodule, "evaluate", None)
        if evaluate is None:
            raise ValueError(
                "evaluation needs a LightningDataModule with evaluate(outputs) -> dict[str, float]; "
                "pass datamodule=... instead of bare dataloaders"
            )
        metrics = {"num_samples": float(len(outputs.get("index", [])))}
        if outputs:
            metrics.update(evaluate(outputs))
        self.last_outputs = outputs
        # every rank computed the same numbers from the same rows, so the mean over ranks changes nothing
        self.log_dict({f"{stage}/{k}": float(v) for k, v in metrics.items()}, sync_dist=True)

    def _sync_buffers(self) -> None:
        """Give every rank rank 0's buffers (BatchNorm statistics) before evaluating.

        DDP syncs buffers only inside its training forward; each rank's last batch then moves its own
        running statistics, so without this the ranks would evaluate slightly different models, and
        none of them exactly the one rank 0 saves in the checkpoint.
        """
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            for buffer in self.model.buffers():
                torch.distributed.broadcast(buffer, src=0)

    def on_validation_epoch_start(self) -> None:
        self._sync_buffers()

    def on_test_epoch_start(self) -> None:
        self._sync_buffers()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluation_step(batch)

    def on_validation_epoch_end(self) -> None:
        self._evaluation_epoch_end("val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluation_step(batch)

    def on_test_epoch_end(self) -> None:
        self._evaluation_epoch_end("test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Tensor]:
        logits = self.evaluation_logits(batch["image"])
        pred_grid = self.method.predict(logits).float()
        return {
            "index": batch["index"],
            "pred_grid": pred_grid,
            "pred": to_original_coords(pred_grid, batch.get("to_original")),
            "confidence": self.method.confidence(logits),
        }
