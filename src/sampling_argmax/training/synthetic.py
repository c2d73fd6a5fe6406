"""LightningDataModule of the embedded synthetic tasks (the default when no dataset is named).

Example:
    >>> dm = SyntheticDataModule(dims=2, num_keypoints=3, val_size=5, batch_size=4)
    >>> dm.setup("fit")
    >>> batch = next(iter(dm.val_dataloader()))
    >>> batch["image"].shape, batch["target"].shape
    (torch.Size([4, 1, 48, 48]), torch.Size([4, 3, 2]))
"""

from __future__ import annotations

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Dataset

from sampling_argmax.data.synthetic import SyntheticLandmarks
from sampling_argmax.metrics import calibration, instance_errors, mean_keypoint_error, pck

__all__ = ["SyntheticDataModule"]

_DEFAULT_SIZE = {1: 256, 2: 48, 3: 24}


class _Materialized(Dataset):
    """A fixed split generated once and kept in memory (validation and test are evaluated every epoch)."""

    def __init__(self, source: Dataset) -> None:
        self.items = [source[i] for i in range(len(source))]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        return self.items[index]


class SyntheticDataModule(L.LightningDataModule):
    """Procedural landmarks (2D images), boundaries (1D signals) or landmarks in volumes (3D).

    Training samples are drawn on the fly from ``(seed, index)``; validation and test are fixed sets
    of other seeds. Metrics (input pixels): ``mean_error``, ``pck`` (error <= ``pck_threshold``),
    ``calibration`` (Pearson of instance confidence with −instance error).

    Args:
        dims: 1, 2 or 3.
        num_keypoints: K.
        size: input side in pixels; None = 256 (1D), 48 (2D), 24 (3D).
        train_size, val_size, test_size: samples per split. The training split is a pool that is
            reshuffled every epoch; the default configs make short epochs with
            ``trainer.limit_train_batches`` so that per-epoch schedules (τ, learning rate) see many epochs.
        batch_size: per process.
        num_workers: dataloader workers.
        seed: base seed of the generated data (independent of the training seed).
        distractors, occlusion, noise: difficulty, see :class:`~sampling_argmax.data.synthetic.SyntheticLandmarks`.
        pck_threshold: PCK distance in input pixels.
    """

    flip_pairs = None  # the landmarks have no left/right symmetry

    def __init__(
        self,
        dims: int = 2,
        num_keypoints: int = 3,
        size: int | None = None,
        train_size: int = 8192,
        val_size: int = 300,
        test_size: int = 300,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        distractors: int = 2,
        occlusion: float = 0.4,
        noise: float = 0.08,
        pck_threshold: float = 2.0,
    ) -> None:
        super().__init__()
        if batch_size < 1 or num_workers < 0 or pck_threshold <= 0:
            raise ValueError(
                f"need batch_size >= 1, num_workers >= 0, pck_threshold > 0; got {batch_size}, {num_workers}, "
                f"{pck_threshold}"
            )
        if dims not in _DEFAULT_SIZE:
            raise ValueError(f"dims={dims} must be 1, 2 or 3")
        self.save_hyperparameters()
        self.dims, self.num_keypoints = dims, num_keypoints
        self.size = _DEFAULT_SIZE[dims] if size is None else size
        self.batch_size, self.num_workers = batch_size, num_workers
        self.pck_threshold = pck_threshold
        self.task = f"synthetic{dims}d"
        options = {
            "dims": dims, "num_keypoints": num_keypoints, "size": self.size, "seed": seed,
            "distractors": distractors, "occlusion": occlusion, "noise": noise,
        }
        # built here (cheap, lazy) so that bad arguments fail at construction, not mid-run
        self.splits = {
            "train": SyntheticLandmarks("train", train_size, **options),
            "val": SyntheticLandmarks("val", val_size, **options),
            "test": SyntheticLandmarks("test", test_size, **options),
        }
        self._materialized: dict[str, Dataset] = {}

    def _fixed(self, split: str) -> Dataset:
        if split not in self._materialized:
            self._materialized[split] = _Materialized(self.splits[split])
        return self._materialized[split]

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset, batch_size=self.batch_size, shuffle=shuffle, drop_last=shuffle, num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.splits["train"], shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self._fixed("val"), shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self._fixed("test"), shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    def evaluate(self, outputs: dict[str, np.ndarray]) -> dict[str, float]:
        """Metrics in input pixels from gathered outputs ("pred", "keypoints", "confidence", ...)."""
        pred, truth, weight = outputs["pred"], outputs["keypoints"], outputs["target_weight"]
        errors = instance_errors(pred, truth, weight)
        return {
            "mean_error": mean_keypoint_error(pred, truth, weight),
            "pck": pck(pred, truth, self.pck_threshold, weight),
            "calibration": calibration(outputs["confidence"], -errors, weight),
        }
