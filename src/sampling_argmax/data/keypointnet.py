"""KeypointNet (You et al., CVPR 2020): semantic 3D keypoints on ShapeNet point clouds, official layout.

Layout under the data root (``--data.init_args.data_root`` or ``$SAMPLING_ARGMAX_DATA/keypointnet``)::

    annotations/<category>.json        [{class_id, model_id, keypoints: [{xyz, semantic_id,
                                          pcd_info: {point_index}, ...}], symmetries}, ...]
    pcds/<class_id>/<model_id>.pcd     ASCII PCD v0.7, FIELDS x y z rgb, 2,048 points
    splits/{train,val,test}.txt        one "<class_id>-<model_id>" a line, all 16 categories

Semantic keypoints. Every category has its own semantic ids ``0 .. K-1`` (K = the largest id in its
annotation file + 1, as the benchmark counts them); a model is annotated with a subset. The network
predicts one map per id; a model's missing ids get ``target_weight`` 0 and ``keypoint_index`` -1, so the
loss and the metrics skip them. The target of an id is the cloud point its ``pcd_info.point_index``
names (after normalization and augmentation), in the cloud's own units: the task contract's point-set
convention, so no ``to_original`` is needed.

Normalization as the KeypointNet benchmark does it: by default (``normalize="none"``, the benchmark's
``normalize_pc: False``) the clouds are used as stored, i.e. in ShapeNet's normalized frame (centred,
unit bounding-box diagonal, y up), in which its PCK thresholds 0.00-0.10 are stated; ``"unit_sphere"``
is the benchmark's optional variant (subtract the mean, divide by the largest norm). Augmentation is
training-only: random rotation about the up (y) axis, a uniform scale and Gaussian jitter (the
benchmark's σ 0.004 clipped at 0.01 when ``jitter=0.004``).

Data faults are errors naming the file (and line or entry) and the fix: PCD headers or rows the strict
reader does not understand, a cloud with the wrong point count, a keypoint index beyond the cloud, two
keypoints with one semantic id, a split line that is not ``<class_id>-<model_id>``, and a model of the
split without a cloud (``missing_clouds="skip"`` accepts a partial download, e.g. the repository's
13-cloud airplane sample, and says how many it skipped).

Example:
    >>> dm = KeypointNetDataModule("airplane", data_root="keypointnet", missing_clouds="skip")  # doctest: +SKIP
    >>> dm.setup("fit"); batch = next(iter(dm.train_dataloader()))                            # doctest: +SKIP
    >>> batch["points"].shape, batch["target"].shape, dm.num_keypoints                        # doctest: +SKIP
    (torch.Size([8, 2048, 3]), torch.Size([8, 19, 3]), 19)
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from sampling_argmax.codecs.points import Normalize, cloud_sample, normalize_cloud
from sampling_argmax.data.base import LocalizationDataModule, RawInput, check_loader_args
from sampling_argmax.data.validation import (
    MAX_COORDINATE,
    DataError,
    DataReport,
    UniqueRecords,
    check_nonempty,
    check_points,
    integer,
)

__all__ = [
    "CATEGORIES",
    "AnnotatedShape",
    "KeypointNetClouds",
    "KeypointNetDataModule",
    "augment_cloud",
    "read_annotations",
    "read_pcd",
    "read_split",
]

#: Category name -> ShapeNet (WordNet) class id, the 16 classes of KeypointNet.
CATEGORIES = {
    "airplane": "02691156", "bathtub": "02808440", "bed": "02818832", "bottle": "02876657",
    "cap": "02954340", "car": "02958343", "chair": "03001627", "guitar": "03467517",
    "helmet": "03513137", "knife": "03624134", "laptop": "03642806", "motorcycle": "03790512",
    "mug": "03797390", "skateboard": "04225987", "table": "04379243", "vessel": "04530566",
}


# ---------------------------------------------------------------------------------------------- PCD


_PCD_KEYS = ("VERSION", "FIELDS", "SIZE", "TYPE", "COUNT", "WIDTH", "HEIGHT", "VIEWPOINT", "POINTS", "DATA")


def read_pcd(path: str | os.PathLike, num_points: int | None = None) -> np.ndarray:
    """Read the x, y, z of an ASCII PCD file (KeypointNet's format): ``(N, 3)`` float32.

    Strict: the header must hold the PCD v0.7 keys in order (``#`` comments allowed), FIELDS must start
    with ``x y z``, every COUNT be 1, DATA be ``ascii`` and POINTS = WIDTH × HEIGHT; every data row must
    hold one finite number per field, and there must be exactly POINTS rows (``num_points``, if given,
    too). Anything else is a ``ValueError`` naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: point cloud not found")
    with open(path, encoding="ascii", errors="strict") as handle:
        try:
            lines = handle.read().splitlines()
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not an ASCII PCD file (binary content); KeypointNet clouds are "
                             "'DATA ascii' PCD v0.7") from None
    header: dict[str, list[str]] = {}
    expected = iter(_PCD_KEYS)
    row = 0
    for row, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, *values = line.split()
        want = next(expected, None)
        if key != want:
            raise ValueError(f"{path}:{row}: PCD header key {key!r} where {want!r} was expected (keys in order: "
                             f"{' '.join(_PCD_KEYS)}); is this a PCD v0.7 file?")
        header[key] = values
        if key == "DATA":
            break
    if "DATA" not in header:
        raise ValueError(f"{path}: PCD header ends before its DATA line (found {list(header)})")
    fields = header["FIELDS"]
    if fields[:3] != ["x", "y", "z"]:
        raise ValueError(f"{path}: PCD FIELDS {' '.join(fields)} must start with 'x y z'")
    for key in ("SIZE", "TYPE", "COUNT"):
        if len(header[key]) != len(fields):
            raise ValueError(f"{path}: PCD {key} has {len(header[key])} entries for {len(fields)} FIELDS")
    if any(count != "1" for count in header["COUNT"]):
        raise ValueError(f"{path}: PCD COUNT {' '.join(header['COUNT'])}: only single-valued fields (COUNT 1) "
                         "are supported")
    if header["DATA"] != ["ascii"]:
        raise ValueError(f"{path}: PCD 'DATA {' '.join(header['DATA'])}' is not supported; only 'DATA ascii' "
                         "(convert binary clouds, e.g. with pcl_convert_pcd_ascii_binary)")
    try:
        width, height, points = (int(header[k][0]) for k in ("WIDTH", "HEIGHT", "POINTS"))
    except (ValueError, IndexError):
        raise ValueError(f"{path}: PCD WIDTH/HEIGHT/POINTS must be integers, got "
                         f"{header['WIDTH']} {header['HEIGHT']} {header['POINTS']}") from None
    if width * height != points:
        raise ValueError(f"{path}: PCD POINTS {points} != WIDTH {width} × HEIGHT {height}")
    if points < 1 or width < 1 or height < 1:
        raise DataError(f"{path}: PCD POINTS {points} (WIDTH {width}, HEIGHT {height}): a cloud needs at least one "
                        "point; re-export the cloud")
    start = row  # data rows follow the DATA line
    body = [(number, line) for number, line in enumerate(lines[start:], start=start + 1) if line.strip()]
    if len(body) != points:
        raise ValueError(f"{path}: the header says POINTS {points} but the file has {len(body)} data rows")
    if num_points is not None and points != num_points:
        raise ValueError(f"{path}: the cloud has {points} points, expected {num_points} (KeypointNet clouds have "
                         "2,048); re-export it or set --data.init_args.num_points")
    xyz = np.empty((points, 3), dtype=np.float64)
    for i, (number, line) in enumerate(body):
        values = line.split()
        if len(values) != len(fields):
            raise ValueError(f"{path}:{number}: {len(values)} values for the {len(fields)} FIELDS "
                             f"{' '.join(fields)}: {line.strip()!r}")
        try:
            xyz[i] = [float(v) for v in values[:3]]
        except ValueError:
            raise ValueError(f"{path}:{number}: non-numeric coordinate in {line.strip()!r}") from None
    bad_rows = ~(np.isfinite(xyz) & (np.abs(xyz) <= MAX_COORDINATE)).all(1)
    if bad_rows.any():
        bad = int(np.flatnonzero(bad_rows)[0])
        raise DataError(f"{path}:{body[bad][0]}: non-finite coordinate, or one beyond +-{MAX_COORDINATE:g} (a corrupt "
                        f"value or wrong units), in {body[bad][1].strip()!r}; fix or re-export the cloud")
    return xyz.astype(np.float32)


# ---------------------------------------------------------------------------------------------- annotations


@dataclass(frozen=True)
class AnnotatedShape:
    """The annotation of one ShapeNet shape (a "model" in KeypointNet's files): ``keypoints`` maps semantic id
    -> point index in its cloud."""

    model_id: str
    keypoints: dict[int, int]


def read_annotations(path: str | os.PathLike, class_id: str) -> tuple[dict[str, AnnotatedShape], int]:
    """The models of ``class_id`` in an annotation file and K (largest semantic id + 1).

    Raises ``ValueError`` naming the file and entry for malformed records and for a model that labels one
    semantic id twice.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: KeypointNet annotation file not found (annotations/<category>.json)")
    try:
        records = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None
    if not isinstance(records, list):
        raise ValueError(f"{path}: expected a JSON list of models, got {type(records).__name__}")
    models: dict[str, AnnotatedShape] = {}
    largest = -1
    for n, record in enumerate(records):
        where = f"{path}: entry {n}"
        try:
            if record["class_id"] != class_id:
                continue
            if not isinstance(record["model_id"], str) or not record["model_id"].strip():
                raise DataError(f"{where}: model_id {record['model_id']!r} must be the ShapeNet model id (a string)")
            model_id = record["model_id"]
            check_nonempty(record["keypoints"], f"{where} (model {model_id})", "keypoints",
                           fix="a KeypointNet model lists its keypoints; remove the model from the file")
            keypoints: dict[int, int] = {}
            for j, keypoint in enumerate(record["keypoints"]):
                at = f"{where} (model {model_id}), keypoint {j}"
                semantic = integer(keypoint["semantic_id"], at, "semantic_id")
                index = integer(keypoint["pcd_info"]["point_index"], at, "point_index")
                if semantic < 0 or index < 0:
                    raise ValueError(f"{where} (model {model_id}), keypoint {j}: negative semantic_id {semantic} "
                                     f"or point_index {index}")
                if semantic in keypoints:
                    raise ValueError(f"{where} (model {model_id}), keypoint {j}: semantic_id {semantic} is labeled "
                                     "twice; keep one keypoint per semantic id")
                keypoints[semantic] = index
                largest = max(largest, semantic)
        except (KeyError, TypeError) as error:
            raise ValueError(f"{where}: malformed record ({type(error).__name__}: {error}); expected "
                             "{class_id, model_id, keypoints: [{semantic_id, pcd_info: {point_index}}]}") from None
        if model_id in models:
            raise ValueError(f"{where}: model {model_id} is annotated twice")
        models[model_id] = AnnotatedShape(model_id, keypoints)
    if not models:
        raise ValueError(f"{path}: no model of class {class_id}; is this the right category's annotation file?")
    return models, largest + 1


def read_split(path: str | os.PathLike, class_id: str) -> list[tuple[int, str]]:
    """``(line number, model id)`` of the ``class_id`` lines of a split file, in file order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: KeypointNet split file not found (splits/{{train,val,test}}.txt); "
                                "point --data.init_args.splits_dir at the folder that holds it")
    out = []
    unique = UniqueRecords("split line")
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        parts = line.split("-")
        if len(parts) != 2 or not parts[0].isdigit() or not parts[1]:
            raise ValueError(f"{path}:{number}: {line!r} is not '<class_id>-<model_id>'")
        unique.add(line, None, f"{path}:{number}")
        if parts[0] == class_id:
            out.append((number, parts[1]))
    return out


# ---------------------------------------------------------------------------------------------- transforms


def read_cloud(source: Path | np.ndarray, name: str, num_points: int) -> np.ndarray:
    """A user's cloud for ``predict``: an (N, 3) array, a ``.npy`` of one, or a ``.pcd`` (:func:`read_pcd`).

    The model scores a fixed number of points, so the cloud must have ``num_points`` of them.
    Raises ``ValueError``/``FileNotFoundError`` naming ``name``.
    """
    if isinstance(source, np.ndarray):
        cloud = source
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{name}: no such file")
        if path.suffix.lower() == ".pcd":
            cloud = read_pcd(path)
        elif path.suffix.lower() == ".npy":
            try:
                cloud = np.load(path, allow_pickle=False)
            except (OSError, ValueError, EOFError) as error:
                raise ValueError(f"{name}: not a readable .npy array ({error}); save an (N, 3) array with numpy.save") from None
        else:
            raise ValueError(f"{name}: a point cloud must be a .pcd or .npy file")
    cloud = np.asarray(cloud, dtype=np.float32)
    if cloud.ndim != 2 or cloud.shape[1] < 3:
        raise ValueError(f"{name}: a cloud must be an (N, 3) array of x, y, z, got shape {cloud.shape}")
    cloud = cloud[:, :3]
    if len(cloud) != num_points:
        raise ValueError(f"{name}: {len(cloud)} points, but the model was trained on clouds of {num_points}; "
                         f"resample the cloud to {num_points} points")
    return check_points(cloud, name, "the cloud")


def augment_cloud(points: np.ndarray, rng: np.random.Generator, rotate_up: bool,
                  scale: tuple[float, float] | None, jitter: float) -> np.ndarray:
    """Training augmentation of an ``(N, 3)`` cloud (y up): rotation about y, uniform scale, clipped jitter."""
    out = points.astype(np.float64)
    if rotate_up:
        angle = rng.uniform(0, 2 * math.pi)
        c, s = math.cos(angle), math.sin(angle)
        out = out @ np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]]).T
    if scale is not None:
        out = out * rng.uniform(*scale)
    if jitter > 0:  # the benchmark's noise: σ, clipped at 2.5 σ (0.004 -> 0.01)
        out = out + np.clip(rng.normal(0.0, jitter, out.shape), -2.5 * jitter, 2.5 * jitter)
    return out.astype(np.float32)


def check_augmentation(scale: tuple[float, float] | None, jitter: float) -> tuple[tuple[float, float] | None, float]:
    if scale is not None:
        scale = tuple(float(s) for s in scale)
        if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale={scale} must be [low, high] with 0 < low <= high, or null for no scaling")
    if not jitter >= 0:
        raise ValueError(f"jitter={jitter} must be >= 0 (the std of the Gaussian noise, 0 = off)")
    return scale, float(jitter)


def torch_rng() -> np.random.Generator:
    """A numpy generator drawn from torch's (seeded by ``seed_everything``, distinct per dataloader worker)."""
    return np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))


def point_sample(points: np.ndarray, keypoint_index: np.ndarray, index: int, category: int) -> dict:
    """The contract's sample of a cloud ``(N, 3)`` and its ``(K,)`` keypoint indices (-1 = missing)."""
    labeled = keypoint_index >= 0
    target = np.where(labeled[:, None], points[np.maximum(keypoint_index, 0)], 0.0).astype(np.float32)
    return {
        "points": torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32)),
        "target": torch.from_numpy(target),
        "target_weight": torch.from_numpy(labeled.astype(np.float32)),
        "keypoint_index": torch.from_numpy(keypoint_index.astype(np.int64)),
        "category": category,
        "index": index,
    }


# ---------------------------------------------------------------------------------------------- dataset


class KeypointNetClouds(Dataset):
    """Loaded clouds ``(M, N, 3)`` with their keypoint indices ``(M, K)`` (-1 = not annotated).

    ``augment`` (training only) is ``(rotate_up, scale, jitter)``; None = evaluation, no randomness.
    """

    def __init__(self, clouds: np.ndarray, keypoint_index: np.ndarray, model_ids: list[str],
                 normalize: Normalize = "none", augment: tuple[bool, tuple[float, float] | None, float] | None = None,
                 category: int = 0) -> None:
        self.clouds, self.keypoint_index, self.model_ids = clouds, keypoint_index, model_ids
        self.normalize, self.augment, self.category = normalize, augment, category

    def __len__(self) -> int:
        return len(self.clouds)

    def __getitem__(self, index: int) -> dict:
        points = normalize_cloud(self.clouds[index], self.normalize)
        if self.augment is not None:
            points = augment_cloud(points, torch_rng(), *self.augment)
        return point_sample(points, self.keypoint_index[index], index, self.category)


class PointCloudDataModule(LocalizationDataModule):
    input_name = "points"
    """What every point-cloud task shares: ``num_points`` clouds of (x, y, z), maps over the points, and
    ``predict`` on a user's cloud (.pcd, .npy, array) normalized as evaluation normalizes it (``normalize``),
    keypoints coming back in the file's frame."""

    num_points: int = 2048
    normalize: Normalize = "none"
    predict_suffixes = (".pcd", ".npy")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.num_points, 3)

    @property
    def map_shape(self) -> tuple[int, ...]:
        return (self.num_points,)

    def prepare(self, raw: RawInput) -> dict:
        return cloud_sample(read_cloud(raw.source, raw.name, self.num_points), self.normalize)


class KeypointNetDataModule(PointCloudDataModule):
    """One KeypointNet category (the paper trains one model per category), official splits.

    Args:
        category: one of :data:`CATEGORIES` (e.g. ``"airplane"``, ``"chair"``).
        data_root: the KeypointNet folder; None = ``$SAMPLING_ARGMAX_DATA/keypointnet``.
        splits_dir: folder of ``{train,val,test}.txt``; None = ``<data_root>/splits``.
        num_points: points per cloud (KeypointNet: 2,048); a cloud with another count is an error.
        normalize: ``"none"`` (the benchmark's default, ShapeNet's frame) or ``"unit_sphere"``.
        train_split, val_split, test_split: split file names (e.g. ``val_split="test"`` for a sample
            without validation clouds).
        missing_clouds: ``"error"`` (default) or ``"skip"`` models of a split that have no cloud.
        rotate_up, scale, jitter: training augmentation (off at evaluation).
        batch_size: clouds per batch (paper: 8). num_workers: dataloader workers.
    """

    data_folder = "keypointnet"
    flip_pairs = None  # no mirror defined: set model.flip_test false

    def __init__(
        self,
        category: str = "airplane",
        data_root: str | None = None,
        splits_dir: str | None = None,
        num_points: int = 2048,
        normalize: Normalize = "none",
        train_split: str = "train",
        val_split: str = "val",
        test_split: str = "test",
        missing_clouds: Literal["error", "skip"] = "error",
        rotate_up: bool = False,
        scale: tuple[float, float] | None = None,
        jitter: float = 0.0,
        batch_size: int = 8,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if category not in CATEGORIES:
            raise ValueError(f"category={category!r} is not a KeypointNet class; choose one of {', '.join(CATEGORIES)}")
        if normalize not in ("none", "unit_sphere"):
            raise ValueError(f"normalize={normalize!r} must be 'none' (the benchmark's default) or 'unit_sphere'")
        if missing_clouds not in ("error", "skip"):
            raise ValueError(f"missing_clouds={missing_clouds!r} must be 'error' or 'skip'")
        check_loader_args(batch_size, num_workers)
        if num_points < 1:
            raise ValueError(f"--data.init_args.num_points {num_points} must be >= 1")
        self.scale, self.jitter = check_augmentation(scale, jitter)
        self.category, self.class_id = category, CATEGORIES[category]
        self.data_root_arg, self.splits_dir_arg = data_root, splits_dir
        self.num_points, self.normalize, self.missing_clouds = num_points, normalize, missing_clouds
        self.splits = {"train": train_split, "val": val_split, "test": test_split}
        self.rotate_up = bool(rotate_up)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.task = f"keypointnet_{category}"
        self._datasets: dict[str, KeypointNetClouds] = {}

    # ---------------------------------------------------------------- files

    @cached_property
    def root(self) -> Path:
        return self.resolve_data_root(self.data_root_arg)

    @cached_property
    def annotation_file(self) -> Path:
        return self.root / "annotations" / f"{self.category}.json"

    @cached_property
    def _annotations(self) -> tuple[dict[str, AnnotatedShape], int]:
        return read_annotations(self.annotation_file, self.class_id)

    @property
    def num_keypoints(self) -> int:  # type: ignore[override]
        """K: the category's semantic ids (largest id in its annotation file + 1)."""
        return self._annotations[1]


    def split_file(self, stage: str) -> Path:
        folder = Path(self.splits_dir_arg).expanduser() if self.splits_dir_arg else self.root / "splits"
        return folder / f"{self.splits[stage]}.txt"

    def load_split(self, stage: str) -> KeypointNetClouds:
        """Read the clouds of one stage's split (cached)."""
        if stage in self._datasets:
            return self._datasets[stage]
        models, num_keypoints = self._annotations
        split = self.split_file(stage)
        clouds, indices, ids, missing = [], [], [], []
        report = DataReport(f"{stage}: {split} ({self.category})")
        for number, model_id in read_split(split, self.class_id):
            if model_id not in models:
                raise ValueError(f"{split}:{number}: model {self.class_id}-{model_id} has no annotation in "
                                 f"{self.annotation_file}")
            pcd = self.root / "pcds" / self.class_id / f"{model_id}.pcd"
            if not pcd.is_file():
                if self.missing_clouds == "error":
                    raise FileNotFoundError(
                        f"{split}:{number}: model {self.class_id}-{model_id} has no cloud {pcd}; complete the "
                        "download, or pass --data.init_args.missing_clouds skip to use the clouds present"
                    )
                missing.append(model_id)
                report.drop("no cloud (missing_clouds=skip)", f"{split}:{number}")
                continue
            cloud = read_pcd(pcd, self.num_points)
            index = np.full(num_keypoints, -1, dtype=np.int64)
            for semantic, point in models[model_id].keypoints.items():
                if point >= len(cloud):
                    raise ValueError(f"{self.annotation_file}: model {model_id}, semantic_id {semantic}: point_index "
                                     f"{point} is beyond its cloud {pcd} ({len(cloud)} points)")
                index[semantic] = point
            clouds.append(cloud)
            indices.append(index)
            ids.append(model_id)
            report.keep()
        if missing:
            warnings.warn(f"{split}: skipped {len(missing)} {self.category} model(s) without a cloud "
                          f"(missing_clouds=skip); using {len(ids)}", stacklevel=2)
        self.add_data_report(stage, report)
        if not ids:
            raise ValueError(f"{split}: no {self.category} model with a cloud under {self.root / 'pcds' / self.class_id}; "
                             f"pick another split (e.g. --data.init_args.{stage}_split) or complete the download")
        augment = (self.rotate_up, self.scale, self.jitter) if stage == "train" else None
        dataset = KeypointNetClouds(np.stack(clouds), np.stack(indices), ids, self.normalize, augment)
        self._datasets[stage] = dataset
        return dataset

    # ---------------------------------------------------------------- contract

    def setup(self, stage: str | None = None) -> None:
        stages = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for name in stages.get(stage, ("train", "val", "test")):
            self.load_split(name)

    def references(self, stage: str) -> dict:
        name = "test" if stage in ("test", "predict") else "val"
        count = len(self._datasets[name]) if name in self._datasets else None
        where = f"{count} " if count is not None else ""
        return {"categories": [self.category],
                "split": f"KeypointNet {self.splits[name]} split ({where}{self.category} models)"}

    def dataset(self, split: str) -> KeypointNetClouds:
        return self.load_split(split)
