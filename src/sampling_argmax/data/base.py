"""The task contract: what every dataset gives the one generic training module.

A task is three things and nothing in ``training/``:

1. a :class:`LocalizationDataModule` subclass (``data/<task>.py``): its loaders yield :class:`Batch`
   dicts, and it states ``task``, ``num_keypoints``, ``flip_pairs``, the per-sample ``input_shape`` and
   ``map_shape`` (checked against the model before the first step), the mirror of an input, and the
   ``references`` an evaluator needs;
2. an evaluator (``metrics/<task>.py``, a :class:`~sampling_argmax.metrics.base.Evaluator`) that turns the
   gathered outputs into metrics with the pure functions of ``metrics/`` and writes its files;
3. a YAML config (``configs/<task>.yaml``) naming the data module, the model, the evaluator and the
   default method. docs/tasks.md walks through a toy task.

Conventions shared by every task (one rule each):

* a sample's input sits under exactly one key of :data:`INPUT_KEYS`;
* ``target`` is in map units: grid cells in x, y(, z) order (cell ``i`` centred at ``i``) or, on point
  sets, the points' own coordinates; ``target_weight`` ``>= 0`` (0 = unlabeled or outside the map);
* a keypoint is inside the map when every coordinate lies in ``[-0.5, n - 0.5]`` (:func:`~sampling_argmax.codecs.base.inside_map`);
* ``to_original`` is a float64 homogeneous matrix from map units to the original image/object;
* a horizontal flip mirrors x about the centre of the input (:func:`~sampling_argmax.codecs.base.mirror_matrix`) and swaps the
  ``flip_pairs``; the map of a mirrored input is the mirrored map (:meth:`LocalizationDataModule.mirror`);
* predicting on a user's own files (optional): :meth:`LocalizationDataModule.raw_inputs` lists what a path
  stands for and :meth:`LocalizationDataModule.prepare` frames one :class:`RawInput` as at evaluation.

Example:
    >>> batch = {"image": torch.zeros(2, 3, 64, 64), "target": torch.zeros(2, 5, 2), "index": torch.arange(2)}
    >>> input_key(batch)
    'image'
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler

from sampling_argmax.data.validation import DataReport

__all__ = [
    "INPUT_KEYS",
    "DATA_ENV",
    "Batch",
    "LocalizationDataModule",
    "Materialized",
    "ProceduralSplits",
    "RawInput",
    "without_data_files",
    "input_key",
    "check_loader_args",
]

#: Keys a model input may sit under, one per modality.
INPUT_KEYS = ("image", "volume", "signal", "points")
#: Environment variable naming the folder that holds every dataset (``$SAMPLING_ARGMAX_DATA/<folder>``).
DATA_ENV = "SAMPLING_ARGMAX_DATA"


class Batch(TypedDict, total=False):
    """A collated batch. Exactly one input key; any other key is a free extra carried to the evaluator."""

    image: Tensor  # (B, C, H, W)
    volume: Tensor  # (B, C, D, H, W)
    signal: Tensor  # (B, C, W)
    points: Tensor  # (B, N, d), also passed to the method's read-out
    target: Tensor  # (B, K, dims) map units
    target_weight: Tensor  # (B, K) >= 0
    index: Tensor  # (B,) dataset index: de-duplicates DDP outputs
    to_original: Tensor  # (B, dims + 1, dims + 1) float64, map units -> original units


@dataclass(frozen=True)
class RawInput:
    """One thing ``predict`` runs the model on: a user's file (or an in-memory array), and a box for top-down tasks.

    Args:
        source: a file path, or an array in the task's raw layout (e.g. an (H, W, 3) uint8 RGB image).
        name: what the output row calls it (the path, ``file:line`` of an annotation file, ``array[3]``).
        box: (x, y, w, h) in original pixels for top-down tasks; None = the task's default framing.
        extra: values copied into the output row (e.g. a detection's ``score``, a COCO ``image_id``); keys
            starting with ``_`` are the task's own notes to its ``prepare`` and are not written.
    """

    source: Path | np.ndarray
    name: str
    box: tuple[float, float, float, float] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


# False while data modules are built only to frame a user's files: their dataset folder is then not needed
_NEED_DATA_FILES = contextvars.ContextVar("sampling_argmax_need_data_files", default=True)


@contextmanager
def without_data_files() -> Iterator[None]:
    """Build data modules that will only :meth:`~LocalizationDataModule.prepare` raw inputs.

    A checkpoint records its data module's arguments, and building it normally checks the dataset folder;
    predicting on one's own images must work on a machine that has the checkpoint and no dataset, so
    :meth:`~LocalizationDataModule.resolve_data_root` then returns the recorded folder unchecked.
    """
    token = _NEED_DATA_FILES.set(False)
    try:
        yield
    finally:
        _NEED_DATA_FILES.reset(token)


class Materialized(Dataset):
    """A split generated once and kept in memory: procedural validation and test sets are evaluated every
    epoch and must be the same samples each time."""

    def __init__(self, source: Dataset) -> None:
        self.items = [source[i] for i in range(len(source))]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        return self.items[index]


class ProceduralSplits:
    """Mixin of the data modules whose samples are generated (the synthetic proxies): their ``splits``
    ``{"train", "val", "test"}`` are datasets of generated samples; training draws them on the fly, validation and
    test are generated once and kept, so every epoch evaluates the same samples."""

    splits: dict[str, Dataset]

    def dataset(self, split: str) -> Dataset:
        if split == "train":
            return self.splits["train"]
        kept = self.__dict__.setdefault("_kept_splits", {})
        if split not in kept:
            kept[split] = Materialized(self.splits[split])
        return kept[split]


def check_loader_args(batch_size: int, num_workers: int, min_batch_size: int = 1) -> None:
    """The loader arguments of every data module: a clear error naming the option and its fix."""
    if not isinstance(batch_size, int) or batch_size < min_batch_size:
        raise ValueError(f"--data.init_args.batch_size {batch_size!r} must be an integer >= {min_batch_size}")
    if not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"--data.init_args.num_workers {num_workers!r} must be an integer >= 0 (0 = load in the "
                         "main process)")


def input_key(batch: dict[str, Any]) -> str:
    """The one key of :data:`INPUT_KEYS` present in ``batch``."""
    present = [key for key in INPUT_KEYS if key in batch]
    if len(present) != 1:
        raise ValueError(
            f"a batch must hold exactly one model input under one of {INPUT_KEYS}; it has {present or 'none'} "
            f"(keys: {sorted(batch)}). Fix the dataset's __getitem__"
        )
    return present[0]


class EpochShuffle(RandomSampler):
    """A random order of the training set that depends on the run's seed (``seed_everything``'s
    ``PL_GLOBAL_SEED``) and the epoch only (Lightning calls :meth:`set_epoch` before each epoch), not on what
    else drew from the global generator: a run resumed at an epoch boundary sees the batches the uninterrupted
    run saw. The order is ``DistributedSampler``'s (``randperm`` seeded with seed + epoch), which Lightning puts in
    its place under DDP (it is a ``RandomSampler``): rank r of W takes every W-th sample of this order, so W
    processes of batch B see, step for step, the samples of one process of batch W·B."""

    def __init__(self, data_source, num_samples: int | None = None) -> None:
        super().__init__(data_source, num_samples=num_samples, generator=torch.Generator())
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        base = int(os.environ.get("PL_GLOBAL_SEED", 0))
        self.generator.manual_seed(base + epoch)


class LocalizationDataModule(L.LightningDataModule):
    """Base of every task's DataModule (the contract of the module docstring).

    Subclasses set ``task`` and ``num_keypoints`` (class attributes or properties), ``flip_pairs`` when the
    task has a mirror symmetry, and implement the loaders, ``input_shape`` and ``map_shape``. They never
    touch the trainer and import no metrics.
    """

    #: Task name: run folders (``runs/<task>/<method>``) and reports.
    task: str = ""
    #: Keypoints per sample (K).
    num_keypoints: int = 0
    #: (left, right) keypoint pairs swapped by a mirror; None = the task has no mirror symmetry.
    flip_pairs: Sequence[tuple[int, int]] | None = None
    #: Folder of the dataset under ``$SAMPLING_ARGMAX_DATA``; "" = no files needed (synthetic tasks).
    data_folder: str = ""
    #: File suffixes (lower case, with the dot) that ``predict`` reads from a folder; () = no raw-file predict.
    predict_suffixes: tuple[str, ...] = ()
    #: Optional keypoint names for output columns (``left_eye_x``); None = ``kp0``, ``kp1``, ...
    keypoint_names: Sequence[str] | None = None
    #: Keypoints that come as this many equal consecutive runs (OCT: 9 boundaries x W A-scans); overlays
    #: draw each run as one coloured line. None = separate keypoints.
    keypoint_groups: int | None = None

    #: The batch key of the model input (one of :data:`INPUT_KEYS`).
    input_name: str = "image"

    # ---------------------------------------------------------------- what the training module checks

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One sample's model input: (C, *spatial) on grids, (N, d) on point sets."""
        raise NotImplementedError(f"{type(self).__name__} must define input_shape")

    @property
    def map_shape(self) -> tuple[int, ...]:
        """The model's per-keypoint output for one sample: the grid (*grid) or (N,) points."""
        raise NotImplementedError(f"{type(self).__name__} must define map_shape")

    def mirror(self, key: str, value: Tensor) -> Tensor:
        """Mirror a batch's input (under ``key``) for the flip test. Grids: reverse the last (x) axis.

        Point-set tasks override this (e.g. negate x); the maps over points then need no mirroring.
        """
        if key == "points":
            raise ValueError(f"{type(self).__name__} must define mirror() for point sets to use flip_test")
        return value.flip(-1)

    def references(self, stage: str) -> dict[str, Any]:
        """What an evaluator needs beyond the gathered outputs (e.g. an annotation file); {} by default."""
        return {}

    # ---------------------------------------------------------------- predict on a user's own files (optional)

    def raw_inputs(self, path: Path, boxes: Path | None = None) -> list[RawInput]:
        """The inputs one ``predict --input PATH`` stands for, in a fixed order.

        Default: a folder gives its files whose suffix is in ``predict_suffixes`` (sorted; other files are
        the caller's to report), a file gives itself. Tasks whose annotation files name inputs (MTFL's
        ``training.txt``, COCO's json) or that take person ``boxes`` override it.
        """
        if boxes is not None:
            raise ValueError(f"{type(self).__name__} takes no boxes (--boxes {boxes}); boxes are for top-down tasks")
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in self.predict_suffixes)
            return [RawInput(p, str(p)) for p in files]
        return [RawInput(path, str(path))]

    def prepare(self, raw: RawInput) -> dict[str, Any]:
        """Frame one raw input as the task's evaluation does, without labels.

        Returns the model input under its key of :data:`INPUT_KEYS` (``(C, *spatial)`` or ``(N, d)`` float32
        tensor, the same shape as ``input_shape``), ``"to_original"`` ((dims+1, dims+1) float64 tensor, or
        (K, out+1, dims+1) per keypoint, map
        units -> the file's pixels or object units) and optionally what the framing used (e.g. ``"box"``).
        Raises ``ValueError``/``OSError`` naming ``raw.name`` for an input that cannot be read.
        """
        raise NotImplementedError(
            f"{type(self).__name__} does not support predict on raw files: implement its prepare() (docs/tasks.md, "
            "'Predicting on raw files'), or use `sampling-argmax predict --ckpt_path X` without --input to predict "
            "the task's test split"
        )

    def display(self, raw: RawInput) -> np.ndarray | None:
        """An (H, W, 3) uint8 RGB picture of a 2D raw input in the predicted keypoints' coordinates, for
        ``predict --draw``; None = draw a plot of the prepared input instead. Default: the file or array
        itself (an image file, an RGB array, or a grey (H, W) array / ``.npy`` stretched to its 1-99 %
        percentiles)."""
        source = raw.source
        if isinstance(source, Path) and source.suffix.lower() != ".npy":
            from PIL import Image

            with Image.open(source) as image:
                return np.asarray(image.convert("RGB"))
        array = np.asarray(np.load(source, allow_pickle=False) if isinstance(source, Path) else source)
        if array.ndim == 3 and array.shape[0] == 1:
            array = array[0]
        if array.ndim == 3 and array.shape[-1] == 3 and array.dtype == np.uint8:
            return array
        if array.ndim != 2:
            return None
        low, high = np.percentile(array, [1, 99])
        grey = np.clip((array - low) / max(high - low, 1e-6) * 255, 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)

    # ---------------------------------------------------------------- helpers for subclasses

    def resolve_data_root(self, data_root: str | os.PathLike | None) -> Path:
        """The argument if given, else ``$SAMPLING_ARGMAX_DATA/<data_folder>``; a clear error otherwise."""
        name = type(self).__name__
        if not _NEED_DATA_FILES.get():  # only framing raw inputs: the dataset folder is never read
            env = os.environ.get(DATA_ENV)
            if data_root is not None and str(data_root) != "":
                return Path(data_root).expanduser()
            return Path(env).expanduser() / self.data_folder if env else Path(f"<no {self.data_folder} folder>")
        if data_root is not None and str(data_root) != "":
            root = Path(data_root).expanduser()
            source = f"--data.data_root {root}"
        else:
            env = os.environ.get(DATA_ENV)
            if not env:
                raise ValueError(
                    f"{name} needs its data folder: pass --data.data_root /path/to/{self.data_folder} or set "
                    f"{DATA_ENV} to the folder that holds {self.data_folder}/"
                )
            root = Path(env).expanduser() / self.data_folder
            source = f"${DATA_ENV}/{self.data_folder} = {root}"
        if root.exists() and not root.is_dir():
            raise NotADirectoryError(f"{source} is a file; it must be the {self.data_folder} data folder")
        if not root.exists():
            raise FileNotFoundError(
                f"{source} does not exist; point --data.data_root (or {DATA_ENV}) at the {self.data_folder} folder"
            )
        return root

    # ---------------------------------------------------------------- data reports (records dropped by convention)

    #: File name of the data reports in the run folder.
    DATA_REPORT_FILE = "data_report.json"

    @property
    def data_reports(self) -> dict[str, DataReport]:
        """split -> the :class:`~sampling_argmax.data.validation.DataReport` of the files read for it."""
        return self.__dict__.setdefault("_data_reports", {})

    def add_data_report(self, split: str, report: DataReport) -> None:
        """Keep and print a reader's report; attached to a trainer, also save every report in its run folder
        (``<default_root_dir>/data_report.json``, process 0 only)."""
        self.data_reports[split] = report
        print(report.summary(), flush=True)
        trainer = getattr(self, "trainer", None)
        if trainer is not None and getattr(trainer, "is_global_zero", True) and trainer.default_root_dir:
            self.save_data_reports(trainer.default_root_dir)

    def save_data_reports(self, folder: str | os.PathLike) -> Path | None:
        """Write ``folder/data_report.json`` (split -> read, kept, dropped by reason, examples); None when no
        reader reported. The file is replaced whole (write, then rename)."""
        if not self.data_reports:
            return None
        import json

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / self.DATA_REPORT_FILE
        partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps({split: report.as_dict() for split, report in self.data_reports.items()},
                                      indent=2) + "\n")
        os.replace(partial, target)
        return target

    # ---------------------------------------------------------------- the loaders (one recipe for every task)

    #: Per-process batch size and loader workers, set by the subclass's constructor.
    batch_size: int = 1
    num_workers: int = 0
    #: Drop the last incomplete training batch (small synthetic batches: BatchNorm needs more than one sample).
    drop_last_train: bool = False

    def dataset(self, split: str) -> Dataset:
        """The dataset of ``split`` ("train" | "val" | "test"), built once; the loaders below read it."""
        raise NotImplementedError(f"{type(self).__name__} must define dataset(split) or its own dataloaders")

    def train_dataloader(self) -> DataLoader:
        dataset = self.dataset("train")
        return self.loader(dataset, self.batch_size, self.num_workers, sampler=EpochShuffle(dataset),
                           drop_last=self.drop_last_train)

    def val_dataloader(self) -> DataLoader:
        return self.loader(self.dataset("val"), self.batch_size, self.num_workers)

    def test_dataloader(self) -> DataLoader:
        return self.loader(self.dataset("test"), self.batch_size, self.num_workers)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    def loader(self, dataset: Dataset, batch_size: int, num_workers: int, shuffle: bool = False,
               sampler: Sampler | None = None, drop_last: bool = False) -> DataLoader:
        """The one DataLoader recipe of every task."""
        return DataLoader(
            dataset, batch_size=batch_size, shuffle=shuffle, sampler=sampler, drop_last=drop_last,
            num_workers=num_workers, persistent_workers=num_workers > 0, pin_memory=torch.cuda.is_available(),
        )
