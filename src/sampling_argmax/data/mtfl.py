"""MTFL facial landmarks (Zhang et al., ECCV 2014) in the official layout: ``training.txt``/``testing.txt``.

Each annotation line is ``path x1..x5 y1..y5 gender smile glasses pose`` with Windows paths
(``lfw_5590\\Aaron_Eckhart_0001.jpg``), CRLF line ends and leading spaces; landmarks are left eye,
right eye, nose, left mouth corner, right mouth corner in original-image pixels (pixel centres at
integer coordinates, as everywhere in this package).

Framing. Training images are loosely framed (a face in a 250×250 LFW or 400×400 web frame); the
official test images are 150×150 tightly framed faces. Evaluation never looks at the labels to crop:
the whole image is letterboxed to a square and resized to the input (:func:`whole_image_box`).
Training mixes that same whole-frame view with face-centred crops of random tightness (derived from
the ground truth, which is allowed at training time), then applies the SimpleBaseline augmentation
(scale ±0.3, rotation ±40° with probability 0.6, horizontal flip with the left/right swap), so one
model sees every framing between "tight 150×150 face" and "small face in a big frame".

Example:
    >>> dm = MTFLDataModule(data_root="/path/to/MTFL", input_size=256, heatmap_size=64)  # doctest: +SKIP
    >>> dm.setup("fit"); batch = next(iter(dm.train_dataloader()))                       # doctest: +SKIP
    >>> batch["image"].shape, batch["target"].shape                                       # doctest: +SKIP
    (torch.Size([32, 3, 256, 256]), torch.Size([32, 5, 2]))
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from sampling_argmax.codecs.topdown import TopDownCodec
from sampling_argmax.data.base import LocalizationDataModule, RawInput, check_loader_args
from sampling_argmax.data.images import IMAGE_SUFFIXES, read_rgb
from sampling_argmax.data.validation import DataError, UniqueRecords, check_inside_image, image_size
from sampling_argmax.data.transforms import (
    random_affine_params,
    to_model_input,
    warp_image,
)

__all__ = [
    "LANDMARK_NAMES",
    "FLIP_PAIRS",
    "MTFLRecord",
    "read_annotations",
    "split_train_val",
    "whole_image_box",
    "face_box",
    "crop_sample",
    "MTFLDataset",
    "MTFLDataModule",
]

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")
FLIP_PAIRS = [(0, 1), (3, 4)]
_FIELDS = "'path x1 x2 x3 x4 x5 y1 y2 y3 y4 y5 gender smile glasses pose'"
_ATTRIBUTES = ("gender", "smile", "glasses", "pose")
#: Smallest distance between the eye landmarks of a valid face (original pixels).
MIN_INTEROCULAR = 1.0


@dataclass(frozen=True)
class MTFLRecord:
    """One annotated face: absolute image path, (5, 2) landmarks (x, y), where it was read from."""

    image: Path
    landmarks: np.ndarray
    attributes: tuple[int, int, int, int]  # gender, smile, glasses, head pose (readme.txt codes)
    source: str  # "file:line", for error messages

    @property
    def subset(self) -> str:
        """Top folder of the image path (``lfw_5590``, ``net_7876``, ``AFLW``): the stratum of the split."""
        return self.image.parent.name


def read_annotations(file: str | Path, image_root: str | Path | None = None, check_images: bool = True) -> list[MTFLRecord]:
    """Parse an official MTFL annotation file (``training.txt`` or ``testing.txt``).

    Blank lines are skipped; every other line must have 15 fields. Paths are resolved against
    ``image_root`` (default: the file's folder) with backslashes turned into ``/``. Each line is checked
    (:mod:`~sampling_argmax.data.validation`): finite landmarks, integer attribute codes >= 1, no line repeated
    verbatim (same image and landmarks) and, with ``check_images``, landmarks inside the image (its size read
    from the file's header).

    Raises:
        FileNotFoundError: the file, or (``check_images``) an image it names, does not exist; the
            message names the annotation file and line.
        ValueError: a malformed line (wrong field count, non-numeric or non-finite value, a landmark outside
            its image, a repeated line), naming ``file:line`` and showing the line.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "t.txt").write_bytes(b" a\\\\b.jpg 1 2 3 4 5 6 7 8 9 10 1 2 2 3\\r\\n")
        >>> rec = read_annotations(folder / "t.txt", check_images=False)[0]
        >>> rec.image.relative_to(folder).as_posix(), rec.landmarks[1].tolist(), rec.source.endswith("t.txt:1")
        ('a/b.jpg', [2.0, 7.0], True)
    """
    file = Path(file)
    if not file.is_file():
        raise FileNotFoundError(
            f"MTFL annotation file {file} not found; point --data.data_root at the MTFL folder that holds "
            "training.txt (and testing.txt for the test split) next to lfw_5590/, net_7876/, AFLW/"
        )
    root = Path(image_root) if image_root is not None else file.parent
    records = []
    unique = UniqueRecords("annotation line")
    text = file.read_bytes().decode("utf-8-sig", errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{file}:{number}"
        if len(fields) != 15:
            raise ValueError(f"{where}: expected 15 fields {_FIELDS}, got {len(fields)}: {line.strip()!r}")
        try:
            values = np.array([float(v) for v in fields[1:11]], dtype=np.float64)
            codes = [float(v) for v in fields[11:15]]
        except ValueError:
            raise DataError(f"{where}: non-numeric value in {line.strip()!r}; expected {_FIELDS}") from None
        if not np.all(np.isfinite(values)):
            raise DataError(f"{where}: non-finite landmark coordinate in {line.strip()!r}; fix or remove the line")
        for code, name in zip(codes, _ATTRIBUTES):
            if not (code.is_integer() and code >= 1):
                raise DataError(f"{where}: {name!r} must be an integer code >= 1 (readme.txt), got {code:g}; fix the line")
        attributes = tuple(int(code) for code in codes)
        relative = Path(fields[0].replace("\\", "/"))
        if relative.is_absolute() or ".." in relative.parts or fields[0].startswith(("\\", "/")):
            raise ValueError(
                f"{where}: image path {fields[0]!r} leaves the data folder; paths must be relative to {root} "
                "(e.g. lfw_5590\\Aaron_Eckhart_0001.jpg)"
            )
        image = root / relative
        if check_images and not image.is_file():
            raise FileNotFoundError(
                f"{where}: image {image} does not exist; the annotation paths are relative to {root} "
                "(download the full MTFL archive there, or fix the line)"
            )
        landmarks = np.stack([values[:5], values[5:]], axis=1)  # (5, 2) x, y
        unique.add(None, (relative.as_posix(), landmarks.tobytes()), where)
        if check_images:
            width, height = image_size(image, where)
            check_inside_image(landmarks, None, width, height, where, "landmark",
                               fix="fix the line (x1..x5 then y1..y5, in the image's pixels)")
        if np.linalg.norm(landmarks[0] - landmarks[1]) < MIN_INTEROCULAR:
            raise ValueError(
                f"{where}: the two eyes are {np.linalg.norm(landmarks[0] - landmarks[1]):.2g} px apart; the "
                f"relative error divides by that distance, so a face needs eyes at least {MIN_INTEROCULAR} px "
                "apart (fix or remove the line)"
            )
        records.append(MTFLRecord(image, landmarks, attributes, where))  # type: ignore[arg-type]
    if not records:
        raise ValueError(f"{file} holds no annotation lines; expected one face a line: {_FIELDS}")
    return records


def split_train_val(records: list[MTFLRecord], val_size: int = 1000, seed: int = 0) -> tuple[list[int], list[int]]:
    """Deterministic validation split, stratified over the image folders (``lfw_5590``, ``net_7876``).

    Each folder gives its proportional share of ``val_size`` (largest remainders), chosen by a
    fixed-seed permutation that does not depend on the training seed. Lines naming the same image
    (duplicates) go to the same side, so no face is both trained on and validated on; they count
    once toward ``val_size``. Returns (train, val) indices, each sorted.

    Example:
        >>> recs = [MTFLRecord(Path(f"{d}/{i}.jpg"), np.zeros((5, 2)), (1, 1, 1, 3), "") for d, n in
        ...         (("lfw_5590", 40), ("net_7876", 60)) for i in range(n)]
        >>> train, val = split_train_val(recs, val_size=10)
        >>> len(train), sum(recs[i].subset == "lfw_5590" for i in val)
        (90, 4)
    """
    by_image: dict[Path, list[int]] = {}
    for index, record in enumerate(records):
        by_image.setdefault(record.image, []).append(index)
    repeated = [lines for lines in by_image.values() if len(lines) > 1]
    if repeated:
        warnings.warn(
            f"{len(repeated)} image(s) are annotated on several lines (e.g. {records[repeated[0][0]].source} and "
            f"{records[repeated[0][1]].source}); each image is kept on one side of the train/val split",
            stacklevel=2,
        )
    faces = [lines[0] for lines in by_image.values()]  # one representative line per image
    if not 0 < val_size < len(faces):
        raise ValueError(f"val_size={val_size} must be between 1 and {len(faces) - 1} (the number of images - 1)")
    groups: dict[str, list[int]] = {}
    for index in faces:
        groups.setdefault(records[index].subset, []).append(index)
    names = sorted(groups)
    quotas = np.array([val_size * len(groups[n]) / len(faces) for n in names])
    counts = np.floor(quotas).astype(int)
    for i in np.argsort(-(quotas - counts), kind="stable")[: val_size - counts.sum()]:
        counts[i] += 1
    rng = np.random.default_rng(seed)
    chosen: set[int] = set()
    for name, count in zip(names, counts):
        members = np.array(groups[name])
        for index in members[rng.permutation(len(members))[:count]].tolist():
            chosen.update(by_image[records[index].image])
    return [i for i in range(len(records)) if i not in chosen], sorted(chosen)


def whole_image_box(width: int, height: int) -> tuple[np.ndarray, float]:
    """The label-free evaluation framing: the square (centre, side) that letterboxes the whole image.

    Example:
        >>> whole_image_box(160, 216)
        (array([ 79.5, 107.5]), 216.0)
    """
    return np.array([(width - 1) / 2.0, (height - 1) / 2.0]), float(max(width, height))


def face_box(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre and size of the five landmarks (centre of their bounding box, its larger side).

    The size is robust to profile faces, where the inter-ocular distance collapses but the
    eye-to-mouth extent does not. Training-time framing only.

    Example:
        >>> face_box(np.array([[10, 10], [30, 10], [20, 20], [12, 30], [28, 30]], float))
        (array([20., 20.]), 20.0)
    """
    low, high = landmarks.min(axis=0), landmarks.max(axis=0)
    return (low + high) / 2.0, float(max(np.max(high - low), 1.0))


def crop_sample(
    image: np.ndarray,
    landmarks: np.ndarray,
    center: np.ndarray,
    side: float,
    rotation_deg: float,
    flip: bool,
    input_size: int,
    heatmap_size: int,
    image_to_original: np.ndarray | None = None,
    original_width: float | None = None,
) -> dict[str, np.ndarray]:
    """Cut a square box out of ``image`` and map everything to input pixels and heatmap cells.

    Args:
        image: (H, W, 3) uint8 RGB, the original image or a downscaled copy of it.
        landmarks: (5, 2) in original pixels.
        center, side: square source box in original pixels; rotated by ``rotation_deg`` about its centre
            (positive = content turns counter-clockwise on screen).
        flip: mirror the original image first (the contract's rule,
            :func:`~sampling_argmax.data.base.mirror_matrix`), then crop; left/right landmarks are swapped.
        image_to_original: (3, 3) mapping ``image`` pixels -> original pixels (None: identity).
        original_width: width of the original image (needed to mirror when ``image`` is a resized copy).

    Returns:
        "image" (S, S, 3) uint8, "target" (5, 2) heatmap cells, "target_weight" (5,) (0 where the
        landmark falls outside the map), "to_original" (3, 3) float64 heatmap cells -> original pixels.

    Example:
        >>> out = crop_sample(np.zeros((100, 100, 3), np.uint8), np.full((5, 2), 49.5), np.array([49.5, 49.5]),
        ...                   100.0, 0.0, False, input_size=64, heatmap_size=16)
        >>> out["image"].shape, out["target"][0].tolist(), out["target_weight"].tolist()
        ((64, 64, 3), [7.5, 7.5], [1.0, 1.0, 1.0, 1.0, 1.0])
    """
    codec = TopDownCodec((input_size, input_size), (heatmap_size, heatmap_size), FLIP_PAIRS)
    if flip and original_width is None:
        if image_to_original is not None:
            raise ValueError("crop_sample(flip=True) of a resized image needs original_width")
        original_width = image.shape[1]
    frame = codec.frame(center, (side, side), rotation_deg, original_width if flip else None)
    image_to_input = frame.to_input if image_to_original is None else frame.to_input @ image_to_original
    crop = warp_image(image, image_to_input[:2], (input_size, input_size))
    target, weight = codec.encode(landmarks, np.ones(len(landmarks)), frame)
    return {"image": crop, "target": target, "target_weight": weight, "to_original": codec.to_original(frame)}


class MTFLDataset(Dataset):
    """Faces as batch-contract samples (see the module doc for the framing).

    Samples: "image" (3, S, S) float32 normalized, "target" (5, 2) heatmap cells, "target_weight" (5,),
    "index", "to_original" (3, 3) float64, extras "landmarks" (5, 2) original pixels and
    "interocular" (original pixels).

    Args:
        records: faces (from :func:`read_annotations`).
        input_size, heatmap_size: square network input and output grid.
        train: random framing + augmentation; otherwise the whole image, no randomness.
        images: optional in-memory/memory-mapped copies ``(array, scale_xy)`` per record, a downscaled
            image and its (sx, sy) resize factors (see :func:`cache_images`); None reads JPEGs.
        whole_frame_prob: probability of the evaluation framing during training (else face-centred).
        tight_range: face-centred crops have side = face size × U(low, high) (log-uniform).
        scale, rotation, rotation_prob, flip_prob: augmentation (:func:`random_affine_params`).
    """

    def __init__(
        self,
        records: list[MTFLRecord],
        input_size: int,
        heatmap_size: int,
        train: bool,
        images: list[tuple[np.ndarray, np.ndarray]] | None = None,
        whole_frame_prob: float = 0.5,
        tight_range: tuple[float, float] = (1.8, 4.5),
        scale: float = 0.3,
        rotation: float = 40.0,
        rotation_prob: float = 0.6,
        flip_prob: float = 0.5,
    ) -> None:
        self.records = records
        self.input_size = input_size
        self.heatmap_size = heatmap_size
        self.train = train
        self.images = images
        self.whole_frame_prob = whole_frame_prob
        self.tight_range = tight_range
        self.scale, self.rotation, self.rotation_prob, self.flip_prob = scale, rotation, rotation_prob, flip_prob

    def __len__(self) -> int:
        return len(self.records)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray | None, tuple[int, int]]:
        """(RGB image, (3, 3) image->original pixels or None, original (width, height))."""
        if self.images is not None:
            image, factors = self.images[index]
            sx, sy = float(factors[0]), float(factors[1])
            # resizing keeps the image edges: x_small = (x + 0.5) * s - 0.5
            to_original = np.array([[1 / sx, 0, 0.5 / sx - 0.5], [0, 1 / sy, 0.5 / sy - 0.5], [0, 0, 1]])
            size = (round(image.shape[1] / sx), round(image.shape[0] / sy))
            return np.asarray(image), to_original, size
        image = _read_rgb(self.records[index])
        return image, None, (image.shape[1], image.shape[0])

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        image, image_to_original, (width, height) = self.load(index)
        center, side = whole_image_box(width, height)
        rotation, flip = 0.0, False
        if self.train:
            rng = np.random.default_rng(int(torch.randint(2**62, ()).item()))  # seeded by --seed via torch
            if rng.random() >= self.whole_frame_prob:
                face_center, face_size = face_box(record.landmarks)
                low, high = np.log(self.tight_range)
                side = face_size * float(np.exp(rng.uniform(low, high)))
                center = face_center + rng.uniform(-0.15, 0.15, size=2) * side
            scale_factor, rotation = random_affine_params(rng, self.scale, self.rotation, self.rotation_prob)
            side *= scale_factor
            flip = bool(rng.random() < self.flip_prob)
        out = crop_sample(image, record.landmarks, center, side, rotation, flip, self.input_size,
                          self.heatmap_size, image_to_original, original_width=width)
        return {
            "image": to_model_input(out["image"]),
            "target": torch.from_numpy(out["target"]),
            "target_weight": torch.from_numpy(out["target_weight"]),
            "index": index,
            "to_original": torch.from_numpy(out["to_original"]),
            "landmarks": torch.from_numpy(record.landmarks.astype(np.float32)),
            "interocular": float(np.linalg.norm(record.landmarks[0] - record.landmarks[1])),
        }


def _read_rgb(record: MTFLRecord) -> np.ndarray:
    return read_rgb(record.image, record.source, "re-extract it from the MTFL archive or remove its line")


def _cache_key(records: list[MTFLRecord], max_side: int) -> str:
    """What the cache is built from: every image's path, size and modification time, and ``max_side``; a
    replaced or edited image gives a new key (and a new cache), never the old pixels."""
    parts = []
    for record in records:
        try:
            stat = record.image.stat()
            parts.append(f"{record.image}|{stat.st_size}|{stat.st_mtime_ns}")
        except OSError:
            parts.append(f"{record.image}|missing")  # fails when the cache is built, naming the line
    return hashlib.sha1(("\n".join(parts) + f"|{max_side}").encode()).hexdigest()[:16]


def cache_images(records: list[MTFLRecord], max_side: int, cache_dir: str | Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """Decode every image once, downscale it so its longer side is at most ``max_side``, and keep it.

    The copies go to one ``.npy`` file in ``cache_dir`` (keyed by every image's path, size and modification
    time and by ``max_side``: an edited image makes a new cache),
    memory-mapped by later runs, so a multi-run comparison decodes the JPEGs only once.
    Returns ``(image (h, w, 3) uint8, (sx, sy) resize factors)`` per record.
    """
    cache_dir = Path(cache_dir).expanduser()
    if cache_dir.exists() and not cache_dir.is_dir():
        raise NotADirectoryError(f"--data.cache_dir {cache_dir} is a file; give a folder for the decoded-image cache")
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = _cache_key(records, max_side)
    pixels_file, index_file = cache_dir / f"mtfl_{key}.npy", cache_dir / f"mtfl_{key}_index.npy"
    if not (pixels_file.is_file() and index_file.is_file()):
        chunks, rows, offset = [], [], 0
        for record in records:
            image = _read_rgb(record)
            height, width = image.shape[:2]
            factor = min(1.0, max_side / max(width, height))
            new_w, new_h = max(1, round(width * factor)), max(1, round(height * factor))
            if (new_w, new_h) != (width, height):
                image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
            chunks.append(image.reshape(-1))
            rows.append((offset, new_h, new_w, new_w / width, new_h / height))
            offset += image.size
        # write-then-rename: parallel runs never see a half-written cache
        for target, array in ((pixels_file, np.concatenate(chunks)), (index_file, np.array(rows, dtype=np.float64))):
            partial = target.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(partial, array)
            os.replace(partial, target)
    try:
        pixels = np.load(pixels_file, mmap_mode="r")
        rows = np.load(index_file)
        valid = (rows.ndim == 2 and rows.shape == (len(records), 5) and pixels.ndim == 1
                 and int((rows[:, 1] * rows[:, 2] * 3).sum()) == pixels.size)
    except (OSError, ValueError, EOFError) as error:
        valid, rows = False, error
    if not valid:
        raise ValueError(
            f"the decoded-image cache {pixels_file} / {index_file} is corrupt or does not match the annotation "
            f"list ({rows if isinstance(rows, Exception) else 'sizes differ'}); delete those two files (or the "
            f"folder {cache_dir}) and rerun: the cache is rebuilt from the JPEGs"
        )
    out = []
    for offset, height, width, sx, sy in rows:
        start, h, w = int(offset), int(height), int(width)
        out.append((pixels[start : start + h * w * 3].reshape(h, w, 3), np.array([sx, sy])))
    return out


class MTFLDataModule(LocalizationDataModule):
    """MTFL train/validation from ``training.txt``, test from ``testing.txt`` (official layout).

    The validation split is ``val_size`` faces carved out of ``training.txt`` (stratified over
    ``lfw_5590``/``net_7876``, fixed seed); the official test split is read only by ``test``.

    Args:
        data_root: the MTFL folder; default ``$SAMPLING_ARGMAX_DATA/MTFL``.
        input_size: square network input (256 in Appendix A).
        heatmap_size: the model's output grid (input / 32 × 2**num_deconv; 64 in Appendix A).
        batch_size, num_workers: loaders.
        val_size, split_seed: the validation split.
        train_samples_per_epoch: draw this many training faces per epoch (a fresh random subset
            each epoch) instead of all of them; None = all.
        cache_dir: decode the images once into a downscaled cache there (longer side 2 × input_size);
            None reads the JPEGs each time.
        test_split: what ``test`` evaluates: ``"official"`` = ``testing.txt`` (the 2,995 AFLW faces of
            a full MTFL copy), ``"val"`` = the validation split, ``"auto"`` = ``testing.txt`` when the data
            folder has it, else the validation split. ``references("test")["split"]`` names the one used.
        whole_frame_prob, tight_range, scale, rotation, rotation_prob, flip_prob: training framing and
            augmentation (:class:`MTFLDataset`).

    Evaluated by :class:`~sampling_argmax.metrics.landmarks.LandmarkEvaluator` (samples carry
    "landmarks" and "interocular" in original pixels).
    """

    task = "mtfl"
    data_folder = "MTFL"
    num_keypoints = 5
    flip_pairs = FLIP_PAIRS
    keypoint_names = LANDMARK_NAMES
    predict_suffixes = IMAGE_SUFFIXES

    def __init__(
        self,
        data_root: str | None = None,
        input_size: int = 256,
        heatmap_size: int = 64,
        batch_size: int = 32,
        num_workers: int = 4,
        val_size: int = 1000,
        split_seed: int = 0,
        train_samples_per_epoch: int | None = None,
        cache_dir: str | None = None,
        test_split: Literal["auto", "official", "val"] = "auto",
        whole_frame_prob: float = 0.5,
        tight_range: tuple[float, float] = (1.8, 4.5),
        scale: float = 0.3,
        rotation: float = 40.0,
        rotation_prob: float = 0.6,
        flip_prob: float = 0.5,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if input_size < 32 or heatmap_size < 2:
            raise ValueError(f"input_size={input_size} must be >= 32 and heatmap_size={heatmap_size} >= 2")
        if test_split not in ("auto", "official", "val"):
            raise ValueError(f"test_split={test_split!r} must be 'auto', 'official' (testing.txt) or 'val' (the split "
                             "of training.txt)")
        if train_samples_per_epoch is not None and train_samples_per_epoch < 1:
            raise ValueError(f"train_samples_per_epoch={train_samples_per_epoch} must be >= 1 or None (all faces)")
        check_loader_args(batch_size, num_workers)
        self.data_root = self.resolve_data_root(data_root)
        self.input_size, self.heatmap_size = input_size, heatmap_size
        self.batch_size, self.num_workers = batch_size, num_workers
        self.val_size, self.split_seed = val_size, split_seed
        self.train_samples_per_epoch = train_samples_per_epoch
        self.cache_dir = cache_dir
        if test_split == "auto":
            test_split = "official" if (self.data_root / "testing.txt").is_file() else "val"
        self.test_split = test_split
        self.augmentation = dict(whole_frame_prob=whole_frame_prob, tight_range=tuple(tight_range), scale=scale,
                                 rotation=rotation, rotation_prob=rotation_prob, flip_prob=flip_prob)
        self.train_set: MTFLDataset | None = None
        self.val_set: MTFLDataset | None = None
        self.test_set: MTFLDataset | None = None

    def _dataset(self, records: list[MTFLRecord], train: bool) -> MTFLDataset:
        images = None
        if self.cache_dir is not None:
            images = cache_images(records, 2 * self.input_size, self.cache_dir)
        return MTFLDataset(records, self.input_size, self.heatmap_size, train, images, **self.augmentation)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit", "validate") and self.val_set is None:
            records = read_annotations(self.data_root / "training.txt")
            train, val = split_train_val(records, self.val_size, self.split_seed)
            if stage in (None, "fit"):
                self.train_set = self._dataset([records[i] for i in train], train=True)
            self.val_set = self._dataset([records[i] for i in val], train=False)
        if stage in (None, "test", "predict") and self.test_set is None:
            if self.test_split == "val":
                self.setup("validate")
                self.test_set = self.val_set
                return
            file = self.data_root / "testing.txt"
            if not file.is_file():
                raise FileNotFoundError(
                    f"{file} not found: the official MTFL test split is not part of the shared sample; point "
                    "--data.data_root at a full MTFL copy (testing.txt + AFLW/), or use `validate` for the "
                    "validation split carved from training.txt"
                )
            self.test_set = self._dataset(read_annotations(file), train=False)

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            self.setup("fit")
        sampler = RandomSampler(self.train_set, num_samples=self.train_samples_per_epoch)
        return self._loader(self.train_set, sampler=sampler, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        if self.val_set is None:
            self.setup("validate")
        return self._loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        if self.test_set is None:
            self.setup("test")
        return self._loader(self.test_set)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    def _loader(self, dataset: Dataset, sampler=None, drop_last: bool = False) -> DataLoader:
        return self.loader(dataset, self.batch_size, self.num_workers, sampler=sampler, drop_last=drop_last)

    def references(self, stage: str) -> dict[str, str]:
        """Which faces a stage evaluates (reports say which split each number is on)."""
        official = stage == "test" and self.test_split == "official"
        return {"split": "testing.txt (official test)" if official else f"validation split of training.txt ({self.val_size} faces)"}

    # ---------------------------------------------------------------- predict on raw files

    def raw_inputs(self, path: Path, boxes: Path | None = None) -> list[RawInput]:
        """An image, a folder of images, or an annotation file in the official format (``training.txt``,
        ``testing.txt``: its images, in line order, named ``file:line``)."""
        if path.is_file() and path.suffix.lower() == ".txt" and boxes is None:
            return [RawInput(r.image, r.source, extra={"image": str(r.image)})
                    for r in read_annotations(path, check_images=False)]  # a missing image fails on its own row
        return super().raw_inputs(path, boxes)

    def prepare(self, raw: RawInput) -> dict:
        """The evaluation framing of :class:`MTFLDataset`: the whole image letterboxed to a square, resized.

        ``raw.source``: an image file, or an (H, W, 3) uint8 RGB / (H, W) grey array. The detected face is
        not cropped (evaluation never is); images framed like the training data (a face filling a good part
        of the frame) work best.
        """
        if isinstance(raw.source, np.ndarray):
            image = raw.source
            if image.ndim == 2:
                image = np.repeat(image[..., None], 3, axis=-1)
            if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
                raise ValueError(f"{raw.name}: expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        else:
            image = read_rgb(Path(raw.source), raw.name, "give a readable JPEG/PNG")
        height, width = image.shape[:2]
        center, side = whole_image_box(width, height)
        out = crop_sample(image, np.zeros((5, 2)), center, side, 0.0, False, self.input_size, self.heatmap_size)
        return {"image": to_model_input(out["image"]), "to_original": torch.from_numpy(out["to_original"]),
                "image_size": (width, height)}

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (3, self.input_size, self.input_size)

    @property
    def map_shape(self) -> tuple[int, ...]:
        return (self.heatmap_size, self.heatmap_size)
