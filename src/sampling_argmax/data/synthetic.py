"""Procedurally generated localization tasks: 2D landmark images, 1D boundary signals, 3D volumes.

Every sample is a pure function of ``(seed, split, index)``, so no files are needed, validation and
test sets are fixed, and any process (DDP rank, resumed run, dataloader worker) draws the same
sample for the same index.

What makes them hard, in the ways that matter for probability-map read-outs:

* **look-alike distractors**: each landmark is a hollow glyph with a centre dot; the image also
  holds copies of the same glyph *without* the dot. When the dot is hidden (noise, occlusion),
  the map has several plausible modes, and a soft-argmax map can put mass on all of them and
  still get its mean right;
* **clutter**: random strokes and blobs of similar intensity;
* **partial occlusion**: flat patches laid over part of a landmark (sometimes its dot);
* **context**: landmarks sit on a jittered regular polygon, so their layout disambiguates.

1D ("A-scan"): K ordered boundaries between layers of different brightness, short pulses with the
same edge height as distractors, multiplicative speckle and shadows. 3D: the 2D recipe in a volume.

Coordinates follow the package convention: ``keypoints`` in input pixels (the centre of pixel i is
at i), ``target`` in output-grid cells of a stride-2 network (cell c covers pixels 2c and 2c+1, so
pixel = 2·cell + 0.5).

Example:
    >>> sample = SyntheticLandmarks("val", length=4, dims=2, num_keypoints=3, size=64)[0]
    >>> sample["image"].shape, sample["target"].shape, sample["keypoints"].shape
    (torch.Size([1, 64, 64]), torch.Size([3, 2]), torch.Size([3, 2]))
    >>> dm = SyntheticDataModule(dims=1, num_keypoints=2, val_size=5, batch_size=4)
    >>> batch = next(iter(dm.val_dataloader()))
    >>> batch["signal"].shape, batch["target"].shape, dm.map_shape
    (torch.Size([4, 1, 256]), torch.Size([4, 2, 1]), (128,))
"""

from __future__ import annotations


import numpy as np
import torch
from torch.utils.data import Dataset

from sampling_argmax.data.base import LocalizationDataModule, ProceduralSplits, RawInput, check_loader_args
from sampling_argmax.data.images import IMAGE_SUFFIXES, read_raw

__all__ = [
    "SyntheticLandmarks",
    "SyntheticDataModule",
    "INPUT_KEY",
    "render_landmarks_2d",
    "render_boundaries_1d",
    "render_landmarks_3d",
    "OUTPUT_STRIDE",
    "SPLITS",
]

#: Default output stride of the networks the targets are expressed for (cell c <-> pixel 2c + 0.5); 4 gives
#: deliberately coarse maps (cell c <-> pixel 4c + 1.5), where the fixed bases' read-out bias shows.
OUTPUT_STRIDE = 2
OUTPUT_STRIDES = (2, 4)
#: Split name -> stream id mixed into the seed, so train/val/test never share a sample.
SPLITS = {"train": 0, "val": 1, "test": 2}
_MAX_KEYPOINTS = {1: 4, 2: 4, 3: 3}
#: Batch key of the input of each dimension (the task contract's modalities).
INPUT_KEY = {1: "signal", 2: "image", 3: "volume"}


def _stroke(distance: np.ndarray, width: float) -> np.ndarray:
    """Anti-aliased coverage of a stroke of ``width`` pixels centred on distance 0."""
    return np.clip(width / 2 + 0.5 - np.abs(distance), 0.0, 1.0)


def _glyph_distance(offsets: list[np.ndarray], shape: int) -> np.ndarray:
    """Distance-like field whose level sets are the glyph outline: ring, square, diamond, hexagon."""
    a = [np.abs(o) for o in offsets]
    if shape == 0:
        return np.sqrt(sum(o * o for o in offsets))
    if shape == 1:
        return np.maximum.reduce(a)
    if shape == 2:
        return sum(a) / np.sqrt(len(a))
    # a hexagonal prism-like outline: two slanted faces and one flat pair
    return np.maximum(a[0] * 0.866 + a[1] * 0.5, a[1]) if len(a) == 2 else np.maximum(
        np.maximum(a[0] * 0.866 + a[1] * 0.5, a[1]), a[2]
    )


def _draw_glyph(
    canvas: np.ndarray, grids: list[np.ndarray], center: np.ndarray, radius: float, shape: int, value: float,
    dot: float,
) -> None:
    """Blend one glyph into ``canvas``; ``dot`` in [0, 1] scales the coverage of its centre dot (0: none)."""
    offsets = [g - c for g, c in zip(grids, center)]
    alpha = _stroke(_glyph_distance(offsets, shape) - radius, 1.4)
    if dot > 0:
        alpha = np.maximum(alpha, dot * _stroke(np.sqrt(sum(o * o for o in offsets)), 2.6))
    canvas *= 1 - alpha
    canvas += alpha * value


def _place(rng: np.random.Generator, low: float, high: float, dims: int, taken: list[np.ndarray],
           spacing: float) -> np.ndarray:
    """A uniform position at least ``spacing`` away from every taken one (best effort after 30 tries)."""
    for _ in range(30):
        point = rng.uniform(low, high, size=dims)
        if not taken or np.min(np.sum((np.asarray(taken) - point) ** 2, axis=-1)) >= spacing**2:
            return point
    return point


def _layout(rng: np.random.Generator, num_keypoints: int, size: int, dims: int, radius_range: tuple[float, float]
            ) -> np.ndarray:
    """K landmark centres on a jittered regular polygon (a random 2D plane in 3D), fully inside."""
    ring = rng.uniform(*radius_range)
    margin = min(ring + (7.0 if dims == 2 else 4.0), (size - 1) / 2)
    center = rng.uniform(margin, size - 1 - margin, size=dims)
    angles = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.arange(num_keypoints) / max(num_keypoints, 2)
    if dims == 2:
        u, v = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    else:
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        u, v = q[:, 0], q[:, 1]
    points = center + ring * (np.cos(angles)[:, None] * u + np.sin(angles)[:, None] * v)
    points += rng.uniform(-2.0, 2.0, size=points.shape)
    return np.clip(points, 5.0, size - 6.0)


def _render_glyph_scene(
    rng: np.random.Generator, size: int, dims: int, num_keypoints: int, distractors: int, occlusion: float,
    noise: float, distractor_similarity: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    axes = [np.arange(size, dtype=np.float64)] * dims
    # grids in x, y(, z) order; arrays are indexed [(z,) y, x]
    mesh = np.meshgrid(*axes, indexing="ij")[::-1]
    coarse = rng.uniform(0.2, 0.5, size=(4,) * dims)
    canvas = _upsample(coarse, size)
    ring = (0.16 * size, 0.28 * size) if dims == 2 else (0.2 * size, 0.27 * size)
    keypoints = _layout(rng, num_keypoints, size, dims, ring)
    glyph_radius = (3.0, 4.5) if dims == 2 else (2.5, 3.2)
    taken = list(keypoints)
    # clutter: strokes and blobs with the glyphs' intensity range
    for _ in range(rng.integers(2, 6)):
        start, end = rng.uniform(0, size - 1, size=(2, dims))
        direction = end - start
        t = np.clip(sum((g - s) * d for g, s, d in zip(mesh, start, direction)) / (direction @ direction + 1e-9),
                    0, 1)
        distance = np.sqrt(sum((g - s - t * d) ** 2 for g, s, d in zip(mesh, start, direction)))
        alpha = _stroke(distance, rng.uniform(0.8, 2.0)) * rng.uniform(0.4, 0.9)
        canvas = canvas * (1 - alpha) + alpha * rng.uniform(0.5, 1.0)
    for _ in range(rng.integers(1, 4)):
        center = rng.uniform(0, size - 1, size=dims)
        r2 = sum((g - c) ** 2 for g, c in zip(mesh, center))
        canvas += rng.uniform(-0.3, 0.4) * np.exp(-r2 / (2 * rng.uniform(1.5, 4.0) ** 2))
    # look-alikes first, so a true landmark drawn later is never hidden by one
    for k in range(num_keypoints):
        for _ in range(distractors):
            where = _place(rng, 4.0, size - 5.0, dims, taken, 2.5 * glyph_radius[1])
            taken.append(where)
            _draw_glyph(canvas, mesh, where, rng.uniform(*glyph_radius), k, rng.uniform(0.6, 1.0),
                        dot=distractor_similarity)
    for k, where in enumerate(keypoints):
        _draw_glyph(canvas, mesh, where, rng.uniform(*glyph_radius), k, rng.uniform(0.6, 1.0), dot=1.0)
    # occluders over part of a landmark: offset by up to the glyph radius so the dot is sometimes covered
    for where in keypoints:
        if rng.random() < occlusion:
            center = where + rng.uniform(-glyph_radius[1], glyph_radius[1], size=dims)
            half = rng.uniform(1.5, 3.5, size=dims)
            inside = np.ones_like(canvas, dtype=bool)
            for g, c, h in zip(mesh, center, half):
                inside &= np.abs(g - c) <= h
            canvas[inside] = rng.uniform(0.15, 0.55)
    canvas += rng.normal(0.0, noise, size=canvas.shape)
    return canvas.astype(np.float32), keypoints


def _upsample(coarse: np.ndarray, size: int) -> np.ndarray:
    """Smooth background: linear interpolation of a coarse random grid to ``size`` along every axis."""
    n = coarse.shape[0]
    position = np.linspace(0, n - 1, size)
    # (size, n) interpolation weights: the hat function of each coarse node
    weights = np.clip(1 - np.abs(position[:, None] - np.arange(n)[None]), 0, None)
    out = coarse
    for _ in range(coarse.ndim):
        # contract the leading axis and append the fine one: after ndim rounds the axis order is restored
        out = np.tensordot(out, weights, axes=([0], [1]))
    return out


def render_landmarks_2d(
    rng: np.random.Generator, size: int = 64, num_keypoints: int = 3, distractors: int = 2,
    occlusion: float = 0.4, noise: float = 0.08, distractor_similarity: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """One image ``(size, size)`` float32 in ~[0, 1] and its keypoints ``(K, 2)`` (x, y) in pixels.

    ``distractor_similarity`` in [0, 1] is the strength of the centre dot drawn on every look-alike
    (0: none, the dot tells the landmark apart; 1: the landmark's own dot, so only the layout does).
    """
    return _render_glyph_scene(rng, size, 2, num_keypoints, distractors, occlusion, noise, distractor_similarity)


def render_landmarks_3d(
    rng: np.random.Generator, size: int = 24, num_keypoints: int = 2, distractors: int = 1,
    occlusion: float = 0.4, noise: float = 0.08, distractor_similarity: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """One volume ``(size,)*3`` float32 indexed [z, y, x] and its keypoints ``(K, 3)`` (x, y, z) in voxels."""
    return _render_glyph_scene(rng, size, 3, num_keypoints, distractors, occlusion, noise, distractor_similarity)


def render_boundaries_1d(
    rng: np.random.Generator, size: int = 256, num_keypoints: int = 2, distractors: int = 2,
    occlusion: float = 0.4, noise: float = 0.08,
) -> tuple[np.ndarray, np.ndarray]:
    """One A-scan-like signal ``(size,)`` and the positions ``(K, 1)`` of its K layer boundaries.

    Layers of different brightness meet at the boundaries (blurred steps); short pulses with the
    same edge height are the look-alikes; a shadow (attenuated stretch) plays the occluder.
    """
    x = np.arange(size, dtype=np.float64)
    gap = size / (num_keypoints + 1)
    boundaries = np.sort(gap * (1 + np.arange(num_keypoints)) + rng.uniform(-0.35, 0.35, num_keypoints) * gap)
    levels = [rng.uniform(0.1, 0.3)]
    signal = np.full(size, levels[0])
    for b in boundaries:
        step = rng.choice([-1.0, 1.0]) * rng.uniform(0.25, 0.5)
        step = step if 0.05 < levels[-1] + step < 1.0 else -step
        levels.append(levels[-1] + step)
        signal += step * _soft_step(x - b, rng.uniform(0.6, 2.0))
    taken = list(boundaries)
    for _ in range(distractors * num_keypoints):
        start = _place(rng, 4.0, size - 20.0, 1, [np.array([t]) for t in taken], 10.0)[0]
        width = rng.uniform(4.0, 12.0)
        taken += [start, start + width]
        height = rng.choice([-1.0, 1.0]) * rng.uniform(0.25, 0.5)
        signal += height * (_soft_step(x - start, 1.0) - _soft_step(x - start - width, 1.0))
    if rng.random() < occlusion:
        start = rng.uniform(0, size - 30)
        shadow = (x >= start) & (x < start + rng.uniform(15, 45))
        signal[shadow] *= rng.uniform(0.3, 0.6)
    signal = signal * rng.gamma(20.0, 1 / 20.0, size=size) + rng.normal(0.0, noise, size=size)
    return signal.astype(np.float32), boundaries[:, None]


def _soft_step(distance: np.ndarray, width: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-distance / (0.5 * width)))


_RENDER = {1: render_boundaries_1d, 2: render_landmarks_2d, 3: render_landmarks_3d}


class SyntheticLandmarks(Dataset):
    """Dataset view of the generators; sample ``index`` of ``split`` is the same everywhere.

    Args:
        split: "train", "val" or "test" (an independent stream each).
        length: number of samples.
        dims: 1 (signal), 2 (image) or 3 (volume).
        num_keypoints: K (1..4 in 1D/2D, 1..3 in 3D).
        size: side of the input in pixels; divisible by 4.
        seed: base seed of all streams.
        distractors: look-alikes per landmark.
        occlusion: probability that a landmark is partly occluded (shadowed in 1D).
        noise: std of the additive Gaussian noise.
        distractor_similarity: 2D/3D only, in [0, 1]: strength of the centre dot on every look-alike.
            0 (default) draws none, so the dot tells a landmark from its look-alikes wherever it is
            visible; 1 draws the landmark's own dot, so only the layout (and occlusion-free context)
            does. The default draws no extra random numbers, so samples are those of earlier versions.

    Items follow the batch contract: "signal" (1, W), "image" (1, H, W) or "volume" (1, D, H, W), normalized
    (see :data:`INPUT_KEY`), "target" (K, dims) in output
    cells, "target_weight" (K,), "index", "to_original" (dims+1, dims+1), and "keypoints" (K, dims) in
    input pixels.
    """

    def __init__(
        self, split: str, length: int, dims: int = 2, num_keypoints: int = 3, size: int = 64, seed: int = 0,
        distractors: int = 2, occlusion: float = 0.4, noise: float = 0.08, output_stride: int = OUTPUT_STRIDE,
        distractor_similarity: float = 0.0,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split={split!r} must be one of {sorted(SPLITS)}")
        if dims not in _RENDER:
            raise ValueError(f"dims={dims} must be 1, 2 or 3")
        if not 1 <= num_keypoints <= _MAX_KEYPOINTS[dims]:
            raise ValueError(f"num_keypoints={num_keypoints} must be in 1..{_MAX_KEYPOINTS[dims]} for dims={dims}")
        if size % 4 or size < (32 if dims == 1 else 16 if dims == 3 else 32):
            raise ValueError(f"size={size} must be divisible by 4 and at least 32 (16 for dims=3)")
        if output_stride not in OUTPUT_STRIDES:
            raise ValueError(f"output_stride={output_stride} must be one of {OUTPUT_STRIDES} (the network's; "
                             f"SmallHeatmapNet(output_stride=...) matches it)")
        if length < 1 or distractors < 0 or not 0 <= occlusion <= 1 or noise < 0:
            raise ValueError(
                f"need length >= 1, distractors >= 0, 0 <= occlusion <= 1, noise >= 0; got {length}, "
                f"{distractors}, {occlusion}, {noise}"
            )
        if not 0 <= distractor_similarity <= 1:
            raise ValueError(f"distractor_similarity={distractor_similarity} must be in [0, 1] (0: look-alikes without "
                             "the centre dot, 1: with the landmark's own dot)")
        if dims == 1 and distractor_similarity:
            raise ValueError(f"distractor_similarity={distractor_similarity} applies to the glyph tasks (dims 2, 3); "
                             "the 1D look-alike pulses already have the boundaries' edge height: leave it 0")
        self.split, self.length, self.dims, self.num_keypoints = split, length, dims, num_keypoints
        self.size, self.seed, self.stride = size, seed, output_stride
        self.options = {"distractors": distractors, "occlusion": occlusion, "noise": noise}
        if dims != 1:
            self.options["distractor_similarity"] = distractor_similarity
        to_original = np.eye(dims + 1, dtype=np.float64)
        to_original[:dims, :dims] *= output_stride
        to_original[:dims, dims] = (output_stride - 1) / 2
        self.to_original = torch.from_numpy(to_original)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        rng = np.random.default_rng([self.seed, SPLITS[self.split], index])
        signal, keypoints = _RENDER[self.dims](rng, self.size, self.num_keypoints, **self.options)
        keypoints = torch.as_tensor(keypoints, dtype=torch.float32)
        return {
            INPUT_KEY[self.dims]: normalize(signal)[None],
            "target": (keypoints - (self.stride - 1) / 2) / self.stride,
            "target_weight": torch.ones(self.num_keypoints),
            "index": index,
            "to_original": self.to_original,
            "keypoints": keypoints,
        }


_DEFAULT_SIZE = {1: 256, 2: 48, 3: 24}


def normalize(raw: np.ndarray) -> torch.Tensor:
    """Renderer values (about [0, 1]) -> the model input of the datasets: (x - 0.5) / 0.25, float32."""
    return torch.from_numpy(((np.asarray(raw, dtype=np.float32) - 0.5) / 0.25).astype(np.float32))


class SyntheticDataModule(ProceduralSplits, LocalizationDataModule):
    """Procedural landmarks (2D images), boundaries (1D signals) or landmarks in volumes (3D).

    Training samples are drawn on the fly from ``(seed, index)``; validation and test are fixed sets
    of other seeds. Evaluated by :class:`~sampling_argmax.metrics.localization.KeypointEvaluator`
    (samples carry "keypoints" in input pixels).

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
        distractors, occlusion, noise, distractor_similarity: difficulty (the ambiguity of the task: how
            many look-alikes per landmark, how alike, how often a landmark is partly hidden), see
            :class:`SyntheticLandmarks`; the defaults are the task of ``configs/synthetic.yaml``.
        output_stride: input pixels per map cell, 2 (default) or 4 (coarse maps; the model must match).
    """

    drop_last_train = True

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
        output_stride: int = OUTPUT_STRIDE,
        distractor_similarity: float = 0.0,
    ) -> None:
        super().__init__()
        check_loader_args(batch_size, num_workers)
        if dims not in _DEFAULT_SIZE:
            raise ValueError(f"dims={dims} must be 1, 2 or 3")
        self.save_hyperparameters()
        self.dims, self.num_keypoints = dims, num_keypoints
        self.input_name = INPUT_KEY[dims]
        self.size = _DEFAULT_SIZE[dims] if size is None else size
        self.batch_size, self.num_workers = batch_size, num_workers
        self.task = f"synthetic{dims}d"
        options = {
            "dims": dims, "num_keypoints": num_keypoints, "size": self.size, "seed": seed,
            "distractors": distractors, "occlusion": occlusion, "noise": noise, "output_stride": output_stride,
            "distractor_similarity": distractor_similarity,
        }
        # built here (cheap, lazy) so that bad arguments fail at construction, not mid-run
        self.splits = {
            "train": SyntheticLandmarks("train", train_size, **options),
            "val": SyntheticLandmarks("val", val_size, **options),
            "test": SyntheticLandmarks("test", test_size, **options),
        }

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (1,) + (self.size,) * self.dims

    @property
    def map_shape(self) -> tuple[int, ...]:
        return (self.size // self.splits["test"].stride,) * self.dims


    # ---------------------------------------------------------------- predict on raw files

    @property
    def predict_suffixes(self) -> tuple[str, ...]:  # type: ignore[override]
        return (".npy", *IMAGE_SUFFIXES) if self.dims == 2 else (".npy",)

    def prepare(self, raw: RawInput) -> dict:
        """A ``.npy`` (or, in 2D, an image file) of the trained size -> the dataset's normalized input.

        The framing is the dataset's: the whole input, no resizing (a model of ``size`` 48 reads 48 x 48
        inputs); ``to_original`` maps output cells to the file's pixels (pixel = 2 cell + 0.5).
        """
        array = read_raw(raw.source, raw.name, self.dims)
        expected = (self.size,) * self.dims
        if array.shape != expected:
            raise ValueError(f"{raw.name}: shape {array.shape}, but the model was trained on {expected} inputs; "
                             f"crop or resize it to {expected}")
        return {INPUT_KEY[self.dims]: normalize(array)[None], "to_original": self.splits["test"].to_original.clone()}
