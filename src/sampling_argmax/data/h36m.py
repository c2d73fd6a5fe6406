"""Human3.6M (+ MPII 2D) for 3D human pose by integral regression over K × D × H × W volumes.

The target of a joint is a point of the volume (map units, x, y, z order): x, y the joint's pinhole
projection in the ``map_size`` grid of the ``input_size`` crop around the person's box, z its depth
relative to the root (pelvis), ``depth_range`` mm (default ±1,000 mm) over ``depth_bins`` cells
(:class:`~sampling_argmax.codecs.volume.VolumeCoding`). ``to_original`` maps a volume point back to ``(u, v, dz)``: pixels of the
original image and mm relative to the root; the evaluator
(:class:`~sampling_argmax.metrics.pose3d.Pose3DEvaluator`) adds the ground-truth root depth and inverts
the camera. The 2D targets are the projections of the 3D joints with the intrinsics ``f``, ``c`` of
``cameras.pkl`` (no lens distortion), so the round trip target → ``(u, v, dz)`` → camera space is exact.

Joints (18, PROTOCOLS.md): the 17 of Human3.6M + thorax (mean of the shoulders); 17 are evaluated.

Layouts read (a user's own copies, nothing is downloaded):

* Human3.6M, mmpose's preprocessed layout: ``<root>/S*/<sequence>.<camera>/<sequence>.<camera>_<frame>.jpg``,
  an annotation ``.npz`` per split (``imgname``, ``center``, ``scale`` (box side 200·scale px), ``part``
  (K, 3) 2D, ``S`` (K, 4) 3D camera coordinates in metres + a confidence) and ``cameras.pkl``
  (``{(subject, camera_id): {"f", "c", ...}}``);
* MPII, the mmpose/HRNet json (``image``, ``center``, ``scale``, ``joints`` 16 × 2, ``joints_vis``): its 16
  joints go onto the 18 (:data:`MPII_TO_H36M`) and supervise x and y only: ``target_weight`` is (K, 3),
  per keypoint and axis, with z = 0 (the methods then train on the x-y marginal of the volume).

Example:
    >>> [JOINT_NAMES[i] for i in FLIP_PAIRS[0]], len(JOINT_NAMES)  # the volume coding: codecs/volume.py
    (['r_hip', 'l_hip'], 18)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from sampling_argmax.codecs.affine import (
    homogeneous,
)
from sampling_argmax.codecs.base import inside_map, mirror_matrix, swap_pairs
from sampling_argmax.codecs.volume import VolumeCoding
from sampling_argmax.data.base import LocalizationDataModule, RawInput, check_loader_args
from sampling_argmax.data.coco_files import _clean_box, detections_by_file
from sampling_argmax.data.h36m_files import (
    _DAMAGED,
    ACTIONS,
    FLIP_PAIRS,
    JOINT_NAMES,
    MPII_TO_H36M,
    NUM_JOINTS,
    ROOT,
    load_cameras,
    load_h36m_annotations,
    load_mpii_annotations,
)
from sampling_argmax.data.images import IMAGE_SUFFIXES, read_rgb
from sampling_argmax.data.transforms import (
    random_affine_params,
    to_model_input,
    warp_image,
)

__all__ = [
    "ACTIONS",
    "FLIP_PAIRS",
    "JOINT_NAMES",
    "MPII_TO_H36M",
    "NUM_JOINTS",
    "ROOT",
    "H36MDataModule",
    "Pose3DDataModule",
    "MixedBatchSampler",
    "PoseFrames",
    "pose_sample",
    "project",
]

def project(joints_cam: np.ndarray, focal: np.ndarray, principal: np.ndarray) -> np.ndarray:
    """(K, 2) pinhole projection (pixels) of (K, 3) camera coordinates: u = f · X / Z + c."""
    return joints_cam[:, :2] / joints_cam[:, 2:3] * np.asarray(focal) + np.asarray(principal)


def pose_sample(image: np.ndarray, joints_cam: np.ndarray, focal: np.ndarray, principal: np.ndarray,
                crop: np.ndarray, coding: VolumeCoding, index: int, xy_only: bool = False,
                uv: np.ndarray | None = None, labeled: np.ndarray | None = None) -> dict[str, Any]:
    """One sample of the batch contract from a model-input crop and a pose.

    Args:
        image: (H, W, 3) uint8 crop (already warped to the input size).
        joints_cam: (K, 3) camera coordinates in mm (zeros when ``xy_only``).
        focal, principal: (2,) intrinsics (any values when ``xy_only``).
        crop: (2, 3) original pixels -> map cells.
        xy_only: a 2D-only sample (MPII): ``uv`` gives the joints' pixels, z gets weight 0.
        uv: (K, 2) original pixels; default the projection of ``joints_cam``.
        labeled: (K,) bool, default all.

    Returns:
        ``image`` (3, H, W), ``target`` (K, 3), ``target_weight`` (K, 3) (per axis), ``to_original`` (4, 4),
        ``joints_cam`` (K, 3) mm, ``root_depth`` (), ``focal`` (2,), ``principal`` (2,), ``index``.
    """
    joints_cam = np.asarray(joints_cam, np.float64)
    num = joints_cam.shape[0]
    if uv is None:
        uv = project(joints_cam, focal, principal)
    dz = joints_cam[:, 2] - joints_cam[ROOT, 2]
    target = coding.encode(uv, np.zeros(num) if xy_only else dz, crop)
    labeled = np.ones(num, bool) if labeled is None else np.asarray(labeled, bool)
    grid = (coding.map_size, coding.map_size) if xy_only else (coding.map_size, coding.map_size, coding.depth_bins)
    valid = labeled & inside_map(target[:, : len(grid)], grid)
    weight = np.repeat(valid[:, None].astype(np.float32), 3, axis=1)
    if xy_only:
        weight[:, 2] = 0.0
    target[~valid] = 0.0
    return {
        "image": to_model_input(image),
        "target": torch.as_tensor(target, dtype=torch.float32),
        "target_weight": torch.from_numpy(weight),
        "to_original": torch.from_numpy(coding.to_original(crop)),
        "joints_cam": torch.from_numpy(joints_cam),
        "root_depth": torch.tensor(float(joints_cam[ROOT, 2]), dtype=torch.float64),
        "focal": torch.as_tensor(np.asarray(focal, np.float64).reshape(2)),
        "principal": torch.as_tensor(np.asarray(principal, np.float64).reshape(2)),
        "index": index,
    }


# ---------------------------------------------------------------------------------------------------- readers


# ---------------------------------------------------------------------------------------------------- samples


@dataclass(frozen=True)
class Augmentation:
    """Training augmentation (Integral Human Pose's): box scale ±``scale`` (clipped normal), rotation
    (normal, σ = ``rotation`` degrees, with probability ``rotation_prob``), horizontal flip with the
    left/right pairs swapped (probability ``flip_prob``), colour: each channel × U(1 − colour, 1 + colour)."""

    scale: float = 0.25
    rotation: float = 30.0
    rotation_prob: float = 0.6
    flip_prob: float = 0.5
    colour: float = 0.2


class PoseFrames(Dataset):
    """Crops of Human3.6M frames (3D records) or MPII people (2D records) as batch-contract samples.

    Every sample has the same keys, so the two kinds mix in one batch: 2D samples have ``target_weight`` z = 0
    and zero evaluation extras. ``augment`` None = evaluation framing (the box as given).
    """

    def __init__(self, records: list[dict], coding: VolumeCoding, augment: Augmentation | None = None) -> None:
        self.records, self.coding, self.augment = records, coding, augment

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        image = read_rgb(record["image"], record["where"], "check the data folder holds every image the annotation "
                         "names (re-extract the frames), or point --data.init_args.data_root at it")
        side, rotation, flip = record["side"], 0.0, False
        rng = None
        if self.augment is not None:
            rng = np.random.default_rng(int(torch.randint(1 << 62, ())))  # torch's stream: seeded per worker
            factor, rotation = random_affine_params(rng, self.augment.scale, self.augment.rotation,
                                                    self.augment.rotation_prob)
            side, flip = side * factor, bool(rng.random() < self.augment.flip_prob)
        coding = self.coding
        crop = coding.crop_matrix(record["center"], side, rotation)
        to_input = coding.input_matrix(record["center"], side, rotation)
        if flip:  # mirror the crop (x -> n - 1 - x) and swap left and right
            crop = mirror_matrix(coding.map_size) @ homogeneous(crop)
            to_input = mirror_matrix(coding.input_size) @ homogeneous(to_input)
            crop, to_input = crop[:2], to_input[:2]
        pixels = warp_image(image, to_input, (coding.input_size, coding.input_size))
        if rng is not None and self.augment.colour > 0:
            gain = rng.uniform(1 - self.augment.colour, 1 + self.augment.colour, 3)
            pixels = np.clip(pixels * gain, 0, 255).astype(np.uint8)
        order = swap_pairs(NUM_JOINTS, FLIP_PAIRS) if flip else slice(None)
        if "joints_cam" in record:
            sample = pose_sample(pixels, record["joints_cam"][order], record["focal"], record["principal"], crop,
                                 coding, index)
            sample["action"] = record["action"]
        else:
            sample = pose_sample(pixels, np.zeros((NUM_JOINTS, 3)), np.ones(2), np.zeros(2), crop, coding, index,
                                 xy_only=True, uv=record["uv"][order], labeled=record["labeled"][order])
            sample["action"] = -1
        return sample


class MixedBatchSampler(Sampler[list[int]]):
    """Batches of a two-part dataset (``ConcatDataset([first, second])``): ``first_per_batch`` indices of the
    first part, the rest of the second, each part reshuffled whenever it runs out.

    One epoch is ``num_batches`` batches (default: one pass over the first part). Under DDP each process
    takes every ``world_size``-th batch of the same sequence (give the trainer ``use_distributed_sampler:
    false``); ``batch_size`` is per process. Lightning calls :meth:`set_epoch`.
    """

    def __init__(self, first: int, second: int, batch_size: int, first_per_batch: int | None = None,
                 num_batches: int | None = None, seed: int = 0) -> None:
        first_per_batch = batch_size // 2 if first_per_batch is None else first_per_batch
        if first < 1 or second < 1 or batch_size < 2 or not 0 < first_per_batch < batch_size:
            raise ValueError(f"need both parts non-empty and 0 < first_per_batch < batch_size; got first={first}, "
                             f"second={second}, batch_size={batch_size}, first_per_batch={first_per_batch}")
        self.first, self.second, self.batch_size, self.first_per_batch = first, second, batch_size, first_per_batch
        self.num_batches = num_batches or -(-first // first_per_batch)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _world(self) -> tuple[int, int]:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def __len__(self) -> int:
        rank, world = self._world()
        return len(range(rank, self.num_batches, world))

    def __iter__(self) -> Iterator[list[int]]:
        rank, world = self._world()
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        streams = [_cycle(self.first, generator), _cycle(self.second, generator)]
        for batch in range(self.num_batches):
            indices = [next(streams[0]) for _ in range(self.first_per_batch)]
            indices += [self.first + next(streams[1]) for _ in range(self.batch_size - self.first_per_batch)]
            if batch % world == rank:
                yield indices


def _cycle(length: int, generator: torch.Generator) -> Iterator[int]:
    while True:
        yield from torch.randperm(length, generator=generator).tolist()


# ---------------------------------------------------------------------------------------------------- data module


class Pose3DDataModule(LocalizationDataModule):
    """What every 3D-pose data module shares: the 18 joints, their mirror pairs, and shapes from ``self.coding``."""

    num_keypoints = NUM_JOINTS
    flip_pairs = FLIP_PAIRS
    keypoint_names = JOINT_NAMES
    coding: VolumeCoding

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (3, self.coding.input_size, self.coding.input_size)

    @property
    def map_shape(self) -> tuple[int, ...]:
        return self.coding.map_shape


class H36MDataModule(Pose3DDataModule):
    """Human3.6M protocol 2 (+ MPII 2D for training) on the task contract, read from a user's mmpose layout.

    Args:
        data_root: the Human3.6M folder (``S*/``, the annotation files, ``cameras.pkl``); None =
            ``$SAMPLING_ARGMAX_DATA/h36m``.
        train_annotation, test_annotation: the splits' ``.npz`` files, relative to ``data_root``.
        cameras: the camera file, relative to ``data_root``.
        train_subjects, test_subjects: protocol 2: S1, S5, S6, S7, S8 / S9, S11.
        train_stride, test_stride: every 5th / 64th frame of each sequence (counted in the file's frames).
        exclude_sequences: ``<subject>_<sequence>`` names left out: the three S9 sequences with damaged ground
            truth (act 05 subact 2, act 10 subact 2, act 13 subact 1, read as Greeting_1, SittingDown_1, Waiting
            in mmpose's names; check them against your copy's naming).
        unit_mm: millimetres per unit of the files' ``S`` (1000: metres, mmpose's).
        mix_mpii: half of every training batch from MPII (Appendix A); False = Human3.6M only.
        mpii_root: the MPII folder (images + json); None = ``$SAMPLING_ARGMAX_DATA/mpii``.
        mpii_annotation: MPII's training json, relative to ``mpii_root``.
        input_size, map_size, depth_bins, depth_range: :class:`VolumeCoding`.
        batch_size, num_workers: per process.
        scale, rotation, rotation_prob, flip_prob, colour: :class:`Augmentation`.
        seed: seed of the mixed batches' order (augmentation follows torch's seed, set by seed_everything).

    Validation reads the test split (the protocol has no separate one). ``references`` gives the action names.
    """

    data_folder = "h36m"
    task = "h36m"
    predict_suffixes = IMAGE_SUFFIXES
    #: ``predict``: the square crop's side is this times the longer side of the person box (MPII's 1.25).
    box_padding = 1.25

    def __init__(
        self,
        data_root: str | None = None,
        train_annotation: str = "annotation_body3d/fps50/h36m_train.npz",
        test_annotation: str = "annotation_body3d/fps50/h36m_test.npz",
        cameras: str = "cameras.pkl",
        train_subjects: list[str] | None = None,
        test_subjects: list[str] | None = None,
        train_stride: int = 5,
        test_stride: int = 64,
        exclude_sequences: list[str] | None = None,
        unit_mm: float = 1000.0,
        mix_mpii: bool = True,
        mpii_root: str | None = None,
        mpii_annotation: str = "annotations/mpii_train.json",
        input_size: int = 256,
        map_size: int = 64,
        depth_bins: int = 64,
        depth_range: float = 2000.0,
        batch_size: int = 16,
        num_workers: int = 4,
        scale: float = 0.25,
        rotation: float = 30.0,
        rotation_prob: float = 0.6,
        flip_prob: float = 0.5,
        colour: float = 0.2,
        seed: int = 0,
    ) -> None:
        super().__init__()
        check_loader_args(batch_size, num_workers, min_batch_size=2)
        if train_stride < 1 or test_stride < 1 or not unit_mm > 0:
            raise ValueError(f"need strides >= 1 and unit_mm > 0; got {train_stride}, {test_stride}, {unit_mm}")
        self.save_hyperparameters()
        self.coding = VolumeCoding(input_size, map_size, depth_bins, depth_range)
        self.augmentation = Augmentation(scale, rotation, rotation_prob, flip_prob, colour)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.train_subjects = list(train_subjects or ["S1", "S5", "S6", "S7", "S8"])
        self.test_subjects = list(test_subjects or ["S9", "S11"])
        self.exclude = tuple(_DAMAGED if exclude_sequences is None else exclude_sequences)
        self._datasets: dict[str, Dataset] = {}  # built when first needed: configs build with no data folder

    def references(self, stage: str) -> dict[str, Any]:
        return {"actions": ACTIONS}

    def _h36m(self, split: str) -> list[dict]:
        h = self.hparams
        root = self.resolve_data_root(h.data_root)
        cameras = load_cameras(root / h.cameras)
        npz = root / (h.train_annotation if split == "train" else h.test_annotation)
        subjects = self.train_subjects if split == "train" else self.test_subjects
        stride = h.train_stride if split == "train" else h.test_stride
        records = load_h36m_annotations(npz, root, cameras, subjects, stride, self.exclude, h.unit_mm)
        if not records:
            raise ValueError(f"{npz} has no frames of subjects {subjects}; check --data.init_args.{split}_subjects "
                             "and that the file is the split's annotation")
        return records

    def _mpii(self) -> list[dict]:
        h = self.hparams
        if h.mpii_root:
            root = Path(h.mpii_root).expanduser()
        elif os.environ.get("SAMPLING_ARGMAX_DATA"):
            root = Path(os.environ["SAMPLING_ARGMAX_DATA"]).expanduser() / "mpii"
        else:
            raise ValueError("mixed training needs MPII: pass --data.init_args.mpii_root /path/to/mpii or set "
                             "SAMPLING_ARGMAX_DATA to the folder holding mpii/ (or mix_mpii: false)")
        return load_mpii_annotations(root / h.mpii_annotation, root)

    def dataset(self, split: str) -> Dataset:
        """"train": Human3.6M frames, then (``mix_mpii``) MPII people, one ConcatDataset; "val"/"test": the test frames."""
        split = "test" if split == "val" else split
        if split not in self._datasets:
            if split == "train":
                frames = PoseFrames(self._h36m("train"), self.coding, self.augmentation)
                if self.hparams.mix_mpii:
                    people = PoseFrames(self._mpii(), self.coding, self.augmentation)
                    self._datasets[split] = torch.utils.data.ConcatDataset([frames, people])
                else:
                    self._datasets[split] = frames
            elif split == "test":
                self._datasets[split] = PoseFrames(self._h36m("test"), self.coding)
            else:
                raise ValueError(f"split={split!r} must be 'train', 'val' or 'test'")
        return self._datasets[split]

    # ---------------------------------------------------------------- predict on raw files

    def raw_inputs(self, path: Path, boxes: Path | None = None) -> list[RawInput]:
        """One input per image (the whole image as the person box) or, with ``boxes`` (a COCO detection-results
        json: ``image_id`` = the file name's number, or ``file_name``), one per person box."""
        files = [Path(r.source) for r in super().raw_inputs(path)]
        if boxes is None:
            return [RawInput(f, str(f), extra={"image": str(f)}) for f in files]
        found, _ = detections_by_file(boxes, files)
        return [RawInput(f, f"{f} box {n}", tuple(d["bbox"]), {"image": str(f), "score": d["score"]})
                for f in files for n, d in enumerate(found[f])]

    def prepare(self, raw: RawInput) -> dict:
        """The evaluation crop of a person: the square of side ``box_padding`` x the box's longer side around its
        centre (the box: ``raw.box`` (x, y, w, h) pixels, default the whole image), warped to ``input_size``.

        ``to_original`` (4, 4) maps volume points to (u, v) original pixels and dz, the depth relative to the
        pelvis in mm (a keypoint's third coordinate in ``predict`` rows).
        """
        if isinstance(raw.source, np.ndarray):
            image = raw.source
            if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
                raise ValueError(f"{raw.name}: expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        else:
            image = read_rgb(Path(raw.source), raw.name)
        height, width = image.shape[:2]
        box = _clean_box(raw.box if raw.box is not None else (0.0, 0.0, width, height), width, height)
        if box is None:
            raise ValueError(f"{raw.name}: the box {raw.box} is empty inside the {width}x{height} image")
        center = (box[0] + box[2] / 2, box[1] + box[3] / 2)
        side = self.box_padding * max(box[2], box[3], 1.0)
        crop = self.coding.crop_matrix(center, side)
        pixels = warp_image(image, self.coding.input_matrix(center, side), (self.coding.input_size,) * 2)
        return {"image": to_model_input(pixels), "to_original": torch.from_numpy(self.coding.to_original(crop)),
                "box": box}

    def train_dataloader(self) -> DataLoader:
        dataset = self.dataset("train")
        if not self.hparams.mix_mpii:
            return super().train_dataloader()
        frames, people = dataset.datasets  # type: ignore[attr-defined]
        sampler = MixedBatchSampler(len(frames), len(people), self.batch_size, seed=self.hparams.seed)
        return DataLoader(dataset, batch_sampler=sampler, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, pin_memory=torch.cuda.is_available())
