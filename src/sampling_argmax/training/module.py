"""One LightningModule for every task: a model that outputs logits, a method that turns them into a loss,
coordinates and confidences, and an evaluator that turns the gathered predictions into metrics.

It is generic over the input (the batch's one key of :data:`~sampling_argmax.data.base.INPUT_KEYS`:
images, volumes, signals, point sets) and over the map (any grid dimension, or the points of a cloud).
With a :class:`~sampling_argmax.data.base.LocalizationDataModule` it checks, before the first step, that the
model's output fits the data (keypoints, map shape, input channels).

Example:
    >>> from sampling_argmax.methods import paper_method
    >>> from sampling_argmax.models import SmallHeatmapNet
    >>> module = LocalizationModule(SmallHeatmapNet(num_keypoints=3), paper_method("samp_tri"), lr=1e-3)
    >>> module(torch.zeros(2, 1, 64, 64)).shape
    torch.Size([2, 3, 32, 32])
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn

from sampling_argmax.data.base import INPUT_KEYS, Batch, LocalizationDataModule, input_key
from sampling_argmax.methods import Method, Objective
from sampling_argmax.metrics.base import EvaluationContext, Evaluator
from sampling_argmax.metrics.localization import KeypointEvaluator
from sampling_argmax.readout import FlipTest, ReadOut, read_out
from sampling_argmax.training.divergence import MAX_LOGIT_RANGE, MAX_WEIGHT_GROWTH, DivergedError, DivergenceGuard
from sampling_argmax.training.undefined import undefined_metrics

__all__ = ["LocalizationModule", "Objective", "gather_outputs", "DivergedError"]




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
        return (value.float() if value.is_floating_point() and value.dtype != torch.float64 else value).cpu().numpy()
    return np.asarray(value)


def _non_finite(module: nn.Module) -> list[str]:
    """Names of parameters and buffers holding NaN or inf (BatchNorm statistics included)."""
    tensors = list(module.named_parameters()) + list(module.named_buffers())
    return [name for name, t in tensors if t.is_floating_point() and not bool(torch.isfinite(t).all())]


class LocalizationModule(L.LightningModule):
    """Trains ``model`` with ``method``; evaluates with ``evaluator``.

    Args:
        model: any nn.Module mapping the batch's input (its one key of ``INPUT_KEYS``) to logits
            (B, K, *grid) or, for point sets, (B, K, N).
        method: a :class:`~sampling_argmax.methods.Method` (loss, read-out, confidence, τ schedule); the
            CLI builds it from ``--method NAME``.
        evaluator: turns gathered outputs into metrics (the task's, e.g.
            :class:`~sampling_argmax.metrics.landmarks.LandmarkEvaluator`); None =
            :class:`~sampling_argmax.metrics.localization.KeypointEvaluator`.
        lr: Adam learning rate.
        milestones: epochs at which the learning rate is multiplied by ``gamma`` (MultiStepLR).
        gamma: learning-rate decay factor.
        weight_decay: Adam weight decay.
        flip_test: average the maps of each input and its mirror at evaluation (needs the data module's
            ``flip_pairs``).
        objective: a task's own training loss ``objective(model, method, batch) -> scalar`` in place of
            ``method.loss`` on the batch's targets, for tasks that train without labels (e.g.
            :class:`~sampling_argmax.models.skeleton_merger.SkeletonObjective`); evaluation is unchanged.
        max_weight_growth, max_logit_range: the divergence guard's limits
            (:mod:`~sampling_argmax.training.divergence`): a parameter tensor may grow to this many times its
            norm at the start of the fit, one map's logits may span this range; past them the run stops with
            :class:`DivergedError`. ``inf`` (``.inf`` on the command line) switches a check off.

    Every validation/test epoch logs ``{stage}/{metric}`` for each metric of the evaluator and
    ``{stage}/num_samples`` (unique samples evaluated, after de-duplication over DDP ranks); the
    gathered outputs of the last evaluation are kept in ``self.last_outputs``.
    """

    def __init__(
        self,
        model: nn.Module,
        method: Method | None = None,
        evaluator: Evaluator | None = None,
        lr: float = 1e-3,
        milestones: list[int] | None = None,
        gamma: float = 0.1,
        weight_decay: float = 0.0,
        flip_test: bool = False,
        objective: Objective | None = None,
        max_weight_growth: float = MAX_WEIGHT_GROWTH,
        max_logit_range: float = MAX_LOGIT_RANGE,
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module that outputs logits, got {type(model).__name__}")
        if method is None:
            raise ValueError("no method: pass --method NAME (soft, soft_vr, soft_dr, samp_uni, samp_tri, samp_gau) "
                             "or method=sampling_argmax.methods.paper_method(NAME)")
        if not all(callable(getattr(method, name, None)) for name in ("loss", "predict", "confidence", "set_epoch")):
            raise ValueError(
                f"method must provide loss/predict/confidence/set_epoch (a sampling_argmax.methods.Method), "
                f"got {type(method).__name__}; build one with sampling_argmax.methods.paper_method(name)"
            )
        if objective is not None and not callable(objective):
            raise ValueError(f"objective must be callable as objective(model, method, batch) -> loss, got "
                             f"{type(objective).__name__}")
        if evaluator is not None and not callable(evaluator):
            raise ValueError(f"evaluator must be a sampling_argmax.metrics.base.Evaluator, got {type(evaluator).__name__}")
        if not (lr > 0 and gamma > 0 and weight_decay >= 0):
            raise ValueError(f"need lr > 0, gamma > 0, weight_decay >= 0; got {lr}, {gamma}, {weight_decay}")
        milestones = sorted(milestones or [])
        if any(m < 1 for m in milestones):
            raise ValueError(f"milestones {milestones} must be epochs >= 1")
        self.model = model
        self.method = method
        self.evaluator = evaluator if evaluator is not None else KeypointEvaluator()
        self.lr, self.milestones, self.gamma, self.weight_decay = lr, milestones, gamma, weight_decay
        self.flip_test = flip_test
        self.objective = objective
        self.guard = DivergenceGuard(max_weight_growth, max_logit_range)  # checks the limits now
        with warnings.catch_warnings():  # the nn.Module case is handled just below
            warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`.*")
            self.save_hyperparameters()
        if isinstance(self.hparams.get("model"), nn.Module):
            # built in Python, not from a LightningCLI config: objects would be pickled into the
            # checkpoint; keep only plain values (load_from_checkpoint then needs model=, method=)
            for key in ("model", "method", "evaluator", "objective"):
                self.hparams.pop(key, None)
        self._outputs: list[dict[str, np.ndarray]] = []
        self.last_outputs: dict[str, np.ndarray] = {}
        #: metric -> why it is undefined (NaN) in the last evaluation, e.g. a correlation of constant confidences
        self.undefined_metrics: dict[str, str] = {}

    # ------------------------------------------------------------------ forward and read-outs

    def forward(self, inputs: Tensor) -> Tensor:
        return self.model(inputs)

    def _datamodule(self) -> LocalizationDataModule | None:
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        return datamodule if isinstance(datamodule, LocalizationDataModule) else None

    def evaluation_logits(self, batch: Batch, datamodule: LocalizationDataModule | None = None) -> Tensor:
        """Logits used for evaluation: the model's, or with ``flip_test`` the flip-averaged log-probabilities.

        ``datamodule`` (default: the trainer's) gives the flip pairs and the mirror of the input.
        """
        return self.read_out(batch, datamodule, check_finite=False).logits

    def flip(self, datamodule: LocalizationDataModule | None = None) -> FlipTest | None:
        """The flip test's pairs and mirror (from ``datamodule``, default the trainer's) when ``flip_test``."""
        if not self.flip_test:
            return None
        datamodule = datamodule or self._datamodule()
        if datamodule is None or datamodule.flip_pairs is None:
            raise ValueError(
                "flip_test=True needs a LocalizationDataModule with flip_pairs (left/right keypoint pairs, () if "
                "none); set model.flip_test=false for this dataset"
            )
        return FlipTest(datamodule.flip_pairs, datamodule.mirror)

    def read_out(self, batch: Batch, datamodule: LocalizationDataModule | None = None,
                 check_finite: bool = True) -> ReadOut:
        """:func:`~sampling_argmax.readout.read_out` of this model and method on a batch (its input, its
        ``to_original``), with the flip test as configured; ``datamodule`` default: the trainer's."""
        key = input_key(batch)
        return read_out(self.model, self.method, batch[key], key, self.flip(datamodule), batch.get("to_original"),
                        check_finite)

    # ------------------------------------------------------------------ the data/model pairing

    @torch.no_grad()
    def check_task(self, datamodule: LocalizationDataModule) -> None:
        """Refuse a model whose output does not fit the data (keypoints, map shape, input channels).

        Runs the model once on zeros of the data's ``input_shape`` (eval mode, no gradient).
        """
        input_shape = tuple(datamodule.input_shape)
        expected = tuple(self.method.output_shape(datamodule.num_keypoints, tuple(datamodule.map_shape)))
        if self.flip_test and expected[1:] != tuple(datamodule.map_shape):
            raise ValueError(f"flip_test=True averages probability maps, which {self.method.name} does not read alone "
                             "(its output carries more than logits per keypoint); set model.flip_test=false")
        name = type(datamodule).__name__
        was_training = self.model.training
        self.model.eval()
        try:
            logits = self.model(torch.zeros((2, *input_shape), device=self.device))
        except (RuntimeError, ValueError) as error:
            raise ValueError(
                f"the model cannot take {name}'s input of shape (B, {', '.join(map(str, input_shape))}): {error}. "
                "Match the model's input channels/dimensions to the data (e.g. --model.model.init_args.in_channels)"
            ) from None
        finally:
            self.model.train(was_training)
        if tuple(logits.shape[1:]) != expected:
            raise ValueError(
                f"the model outputs maps of shape (B, {', '.join(map(str, logits.shape[1:]))}) but {name} has "
                f"num_keypoints={datamodule.num_keypoints} and targets on a map of shape {tuple(datamodule.map_shape)}"
                f"{'' if expected[1:] == tuple(datamodule.map_shape) else f', and {self.method.name} reads {expected[1]} maps per keypoint'}"
                "; make the model's num_keypoints and output size match the data's (e.g. the heatmap size)"
            )

    def _check_batch(self, logits: Tensor, batch: Batch) -> None:
        """Cheap per-batch shape checks (also for bare dataloaders, which have no task to check up front)."""
        target = batch["target"]
        logits = self.method.maps(logits)
        dims = batch["points"].shape[-1] if "points" in batch else logits.dim() - 2
        if tuple(target.shape[1:]) != (logits.shape[1], dims):
            raise ValueError(
                f"batch['target'] has shape {tuple(target.shape)} but the model outputs {logits.shape[1]} maps "
                f"of {dims} dimension(s) ({tuple(logits.shape)}); make the model's num_keypoints and output "
                "dimension match the data"
            )

    def noise_generator(self, device: torch.device) -> torch.Generator:
        """The sampling noise of one training step: seeded from the run's seed (``seed_everything``'s
        ``PL_GLOBAL_SEED``), the global step and the process rank only. A resumed run draws the noise the
        uninterrupted run drew at the same step, and DDP processes (seeded alike) draw different noise."""
        base = int(os.environ.get("PL_GLOBAL_SEED", 0))
        seed = (base * 1_000_003 + self.global_step) * 1_009 + self.global_rank
        return torch.Generator(device=device).manual_seed(seed % 2**63)

    def on_fit_start(self) -> None:
        datamodule = self._datamodule()
        if datamodule is not None:
            self.check_task(datamodule)
        if names := _non_finite(self.model):
            raise DivergedError(f"the model starts with non-finite values in {names[:5]}; the weights are broken")

    def on_validation_start(self) -> None:
        if not self.trainer.sanity_checking and self.trainer.state.fn != "fit" and (datamodule := self._datamodule()):
            self.check_task(datamodule)

    on_test_start = on_validation_start

    # ------------------------------------------------------------------ training

    def on_train_start(self) -> None:
        # a run resumed mid-epoch re-enters that epoch without on_train_epoch_start: τ would be epoch 0's
        self.method.set_epoch(self.current_epoch)

    def on_train_epoch_start(self) -> None:
        self.method.set_epoch(self.current_epoch)
        tau = getattr(self.method, "temperature", None)
        if tau is not None:
            self.log("train/tau", float(tau), on_step=False, on_epoch=True)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        if self.objective is not None:
            return self._objective_step(batch)
        key = input_key(batch)
        logits = self.model(batch[key])
        self._check_batch(logits, batch)
        if not bool(torch.isfinite(logits).all()):
            raise DivergedError(
                f"the model output NaN or inf at step {self.global_step}{self._names_hint()}: training diverged and "
                "stopped; the last checkpoint written before is kept. Lower the learning rate or use "
                "--trainer.precision 32"
            )
        loss = self.method.loss(logits, batch["target"], batch.get("target_weight"), batch.get("points"),
                                generator=self.noise_generator(logits.device))
        if not torch.isfinite(loss):
            raise DivergedError(
                f"non-finite training loss at step {self.global_step} ({self.method.name}); training stopped and "
                "the last checkpoint written before is kept. Lower the learning rate or use --trainer.precision 32"
            )
        self.log("train/loss", loss, prog_bar=True, batch_size=logits.shape[0])
        return loss

    def _objective_step(self, batch: Batch) -> Tensor:
        """A label-free task's step: its objective runs the model and returns the loss."""
        loss = self.objective(self.model, self.method, batch)
        if not torch.isfinite(loss):
            raise DivergedError(
                f"non-finite training loss at step {self.global_step} ({self.method.name}){self._names_hint()}; "
                "training stopped and the last checkpoint written before is kept. Lower the learning rate"
            )
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["index"]))
        return loss

    def configure_callbacks(self) -> list[L.Callback]:
        """The divergence guard, in every Trainer (it replaces one given to the Trainer)."""
        return [self.guard]

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=self.milestones, gamma=self.gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # the last good checkpoint must never be replaced by a broken model
        if names := _non_finite(self.model):
            raise DivergedError(
                f"training diverged: {names[:5]} hold NaN or inf at step {self.global_step}; nothing was saved and "
                "the last checkpoint written before is kept. Lower the learning rate or use --trainer.precision 32"
            )

    # ------------------------------------------------------------------ evaluation

    def _evaluation_step(self, batch: Batch) -> None:
        try:
            out = self.read_out(batch)
        except FloatingPointError as error:
            raise DivergedError(f"{error}{self._names_hint()}") from None
        self._check_batch(out.logits, batch)
        # grid inputs are large and no evaluator reads them; point sets stay (geodesic metrics need them)
        row = {key: _to_numpy(value) for key, value in batch.items() if key not in INPUT_KEYS or key == "points"}
        row["pred_grid"] = _to_numpy(out.pred_grid)
        row["pred"] = _to_numpy(out.pred_grid.double() if out.pred is None else out.pred)
        row["confidence"] = _to_numpy(out.confidence)
        if not np.isfinite(row["confidence"]).all():
            raise DivergedError(
                f"non-finite confidences ({self.method.name}): the model diverged{self._names_hint()}; lower the "
                "learning rate, or evaluate an earlier checkpoint"
            )
        if "index" not in row:
            raise ValueError("every batch needs an 'index' entry (the dataset index) to de-duplicate DDP outputs")
        self._outputs.append(row)

    def _names_hint(self) -> str:
        names = _non_finite(self.model)
        return f" ({', '.join(names[:3])} hold NaN or inf)" if names else ""

    def _evaluation_epoch_end(self, stage: str) -> None:
        chunks, self._outputs = self._outputs, []
        if self.trainer.sanity_checking:
            return
        outputs = gather_outputs(chunks)
        metrics = {"num_samples": float(len(outputs.get("index", [])))}
        if outputs:
            metrics.update(self.evaluator(outputs, self._context(stage)))
        self.last_outputs = outputs
        # a NaN metric is either undefined for a stated reason (kept as NaN, the reason in undefined_metrics,
        # tables print it) or an error: never a silent NaN
        self.undefined_metrics = undefined_metrics(metrics, outputs, stage)
        if self.trainer.is_global_zero:
            for name, reason in self.undefined_metrics.items():
                print(f"{stage}/{name} is undefined: {reason}")
        # every rank computed the same numbers from the same rows, so the mean over ranks changes nothing
        self.log_dict({f"{stage}/{k}": float(v) for k, v in metrics.items()}, sync_dist=True)

    def _context(self, stage: str) -> EvaluationContext:
        datamodule = self._datamodule()
        loaders = self.trainer.val_dataloaders if stage == "val" else self.trainer.test_dataloaders
        loader = loaders[0] if isinstance(loaders, (list, tuple)) else loaders
        dataset = getattr(loader, "dataset", None)
        size = len(dataset) if dataset is not None and hasattr(dataset, "__len__") else None
        folder = Path(self.trainer.log_dir or self.trainer.default_root_dir) / "evaluation"  # log_dir is collective
        out = folder if self.trainer.is_global_zero else None
        return EvaluationContext(stage, out, datamodule.references(stage) if datamodule else {}, size)

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

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluation_step(batch)

    def on_validation_epoch_end(self) -> None:
        self._evaluation_epoch_end("val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluation_step(batch)

    def on_test_epoch_end(self) -> None:
        self._evaluation_epoch_end("test")

    def predict_step(self, batch: Batch, batch_idx: int) -> dict[str, Tensor]:
        out = self.read_out(batch, check_finite=False)
        return {
            "index": batch["index"],
            "pred_grid": out.pred_grid,
            "pred": out.pred_grid if out.pred is None else out.pred.to(out.pred_grid.dtype),
            "confidence": out.confidence,
        }
