"""Point-cloud tasks without keypoint labels in training (unsupervised keypoints, Skeleton Merger).

The clouds of KeypointNet or of the synthetic shapes, with the annotated keypoints moved where no training
loss can read them: a sample's ``target`` is zeros ``(K, 3)`` with ``target_weight`` 0 (K = the detector's
keypoints, not the class's semantic ids), and the annotation travels as ``gt_keypoints`` ``(G, 3)`` and
``gt_weight`` ``(G,)`` to the evaluator only (DAS, :mod:`sampling_argmax.metrics.das`). One class per data
module, as Skeleton Merger trains one model per category.

Example:
    >>> dm = UnlabeledSyntheticPointsDataModule(num_keypoints=8, category="airplane", num_points=256,
    ...                                         train_size=6, val_size=3, test_size=3)
    >>> sample = dm.dataset("train")[0]
    >>> sample["target_weight"].sum().item(), tuple(sample["gt_keypoints"].shape), len(dm.dataset("train"))
    (0.0, (12, 3), 2)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

from sampling_argmax.data.keypointnet import KeypointNetDataModule
from sampling_argmax.data.synthetic_points import CATEGORY_NAMES, SyntheticPointsDataModule

__all__ = ["UnlabeledPoints", "UnlabeledKeypointNetDataModule", "UnlabeledSyntheticPointsDataModule"]


class UnlabeledPoints(Dataset):
    """``source``'s samples (optionally the subset ``indices``) with their labels kept for evaluation only."""

    def __init__(self, source: Dataset, num_keypoints: int, indices: Sequence[int] | None = None) -> None:
        self.source, self.num_keypoints = source, int(num_keypoints)
        self.indices = list(range(len(source))) if indices is None else list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict:
        sample = dict(self.source[self.indices[index]])
        sample["gt_keypoints"], sample["gt_weight"] = sample.pop("target"), sample.pop("target_weight")
        sample.pop("keypoint_index", None)
        sample["target"] = torch.zeros(self.num_keypoints, 3)
        sample["target_weight"] = torch.zeros(self.num_keypoints)
        sample["index"] = index
        return sample


def _check_keypoints(num_keypoints: int) -> int:
    if not isinstance(num_keypoints, int) or num_keypoints < 2:
        raise ValueError(f"num_keypoints={num_keypoints!r} must be an integer >= 2: the detector's keypoints "
                         "(a skeleton joins pairs of them), not the class's semantic ids")
    return num_keypoints


class UnlabeledKeypointNetDataModule(KeypointNetDataModule):
    """One KeypointNet category without training labels; ``num_keypoints`` = the detector's K.

    Every other argument is :class:`~sampling_argmax.data.keypointnet.KeypointNetDataModule`'s.
    """

    def __init__(self, num_keypoints: int = 10, **kwargs) -> None:
        super().__init__(**kwargs)
        self.detector_keypoints = _check_keypoints(num_keypoints)
        self.task = f"skeleton_{self.category}"

    @property
    def num_keypoints(self) -> int:  # type: ignore[override]
        return self.detector_keypoints

    def dataset(self, split: str) -> UnlabeledPoints:
        return UnlabeledPoints(self.load_split(split), self.detector_keypoints)


class UnlabeledSyntheticPointsDataModule(SyntheticPointsDataModule):
    """One class of the synthetic shapes without training labels; ``num_keypoints`` = the detector's K.

    ``category``: chair, table or airplane; the split sizes count all three classes (the synthetic
    generator's), so a split holds a third of them. Every other argument is
    :class:`~sampling_argmax.data.synthetic_points.SyntheticPointsDataModule`'s.
    """

    def __init__(self, num_keypoints: int = 8, category: str = "airplane", **kwargs) -> None:
        super().__init__(**kwargs)
        if category not in CATEGORY_NAMES:
            raise ValueError(f"category={category!r} must be one of {', '.join(CATEGORY_NAMES)}")
        self.detector_keypoints = _check_keypoints(num_keypoints)
        self.category = category
        self.task = f"synthetic_skeleton_{category}"

    @property
    def num_keypoints(self) -> int:  # type: ignore[override]
        return self.detector_keypoints

    def references(self, stage: str) -> dict:
        name = "test" if stage in ("test", "predict") else "val"
        return {**super().references(stage),
                "split": f"synthetic {name} split ({len(self.dataset(name))} {self.category} objects)"}

    def dataset(self, split: str) -> UnlabeledPoints:
        source = self.datasets[split]
        mine = range(CATEGORY_NAMES.index(self.category), len(source), len(CATEGORY_NAMES))  # index mod 3 = class
        if not mine:
            raise ValueError(f"the {split} split has no {self.category}: raise {split}_size to at least 3")
        return UnlabeledPoints(source, self.detector_keypoints, mine)
