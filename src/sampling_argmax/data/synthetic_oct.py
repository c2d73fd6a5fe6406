"""Procedural retina OCT B-scans with 9 exact boundaries: the MSHC task without the dataset.

Each sample is a flattened 128-row B-scan as the MSHC preprocessing makes it (:mod:`sampling_argmax.data.oct`):
Bruch's membrane near row 108 with a residual tilt and curvature, and above it 8 layers whose thicknesses
(µm, at 3.9 µm per row) and reflectivities vary per scan in realistic ranges (healthy parafoveal macula):

============  ============  ========================================
layer         thickness     reflectivity (display scale, mean)
============  ============  ========================================
RNFL          15-45 µm      bright (0.65-0.85), thicker on one side
GCL + IPL     65-95 µm      medium (0.40-0.55)
INL           30-40 µm      dark (0.20-0.30)
OPL           20-30 µm      medium-bright (0.45-0.60)
ONL (+ HFL)   65-85 µm      dark (0.12-0.22), thicker in the pit
ELM - IS/OS   18-26 µm      dark with a thin bright ELM line
IS/OS - RPE   25-35 µm      bright IS/OS line, then medium
RPE           18-26 µm      brightest (0.80-0.95)
============  ============  ========================================

plus the **foveal pit** (the inner layers thin to almost nothing over a Gaussian profile, the ONL thickens),
**vessel shadows** (a bright vessel cross-section in the inner retina and a dark column below it, where the
outer boundaries are barely visible), the choroid below BM and the dark vitreous above the ILM, an axial
blur of 0.7 rows, and **multiplicative speckle** (gamma-distributed, the OCT noise model) with a little
additive noise. Pixel values are the exact area fractions of the layers (8 sub-rows per row), so the
labels are the generating boundaries themselves, in rows (row i's centre at i), not re-annotations.

Every sample is a pure function of ``(seed, split, index)``; items follow :class:`~sampling_argmax.data.oct.OCTBScans`.

Example:
    >>> image, rows = render_oct_bscan(np.random.default_rng(0), rows=128, width=64)
    >>> image.shape, rows.shape, bool(np.all(np.diff(rows, axis=0) >= 0))
    ((128, 64), (9, 64), True)
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from torch.utils.data import Dataset

from sampling_argmax.data.base import LocalizationDataModule, ProceduralSplits, check_loader_args
from sampling_argmax.data.oct import BOUNDARY_NAMES, NUM_BOUNDARIES, BScanPredict
from sampling_argmax.codecs.bscan import DEFAULT_PIXEL_UM, standardize

__all__ = ["render_oct_bscan", "SyntheticOCT", "SyntheticOCTDataModule", "SPLITS"]

SPLITS = {"train": 0, "val": 1, "test": 2}
_SUBROWS = 8

# (low, high) thickness in µm of the 8 layers between consecutive boundaries, top to bottom
_THICKNESS_UM = ((15, 45), (65, 95), (30, 40), (20, 30), (65, 85), (18, 26), (25, 35), (18, 26))
# how much of each layer the foveal pit removes (negative: the layer thickens)
_PIT_DEPTH = (0.97, 0.93, 0.85, 0.7, -0.45, -0.25, -0.3, 0.0)
# mean reflectivity of vitreous, the 8 layers and the choroid
_REFLECTIVITY = ((0.03, 0.08), (0.65, 0.85), (0.40, 0.55), (0.20, 0.30), (0.45, 0.60), (0.12, 0.22),
                 (0.15, 0.25), (0.35, 0.50), (0.80, 0.95), (0.40, 0.55))


def _smooth_curve(rng: np.random.Generator, u: np.ndarray, amplitude: float) -> np.ndarray:
    """A random smooth curve over u in [-1, 1]: a few low-frequency cosines, zero mean, given amplitude."""
    curve = np.zeros_like(u)
    for k in range(1, 4):
        curve += rng.normal(0, 1 / k) * np.cos(np.pi * k * (u + rng.uniform(-1, 1)) / 2)
    return amplitude * curve / max(np.abs(curve).max(), 1e-6)


def render_oct_bscan(rng: np.random.Generator, rows: int = 128, width: int = 64, pixel_um: float = DEFAULT_PIXEL_UM,
                     speckle: float = 4.0, vessels: tuple[int, int] = (1, 4), noise: float = 0.02
                     ) -> tuple[np.ndarray, np.ndarray]:
    """One B-scan ``(rows, width)`` float32 display intensities (about [0, 1]) and its boundaries ``(9, width)`` rows.

    Args:
        rng: the sample's generator.
        rows, width: size in pixels (width A-scans across a 6 mm scan).
        pixel_um: axial pixel size (µm per row).
        speckle: gamma shape of the multiplicative speckle (smaller = noisier; inf = none).
        vessels: (min, max) number of vessels casting shadows.
        noise: std of the additive Gaussian noise.
    """
    u = np.linspace(-1.0, 1.0, width)  # 6 mm across: u = 1/3 is 1 mm
    bm = rows - 20.0 + rng.uniform(-4, 4) + rng.uniform(-6, 6) * u + rng.uniform(-5, 5) * u**2 + _smooth_curve(rng, u, 2.0)
    pit = np.exp(-0.5 * ((u - rng.uniform(-0.35, 0.35)) / rng.uniform(0.12, 0.18)) ** 2)
    side = rng.choice([-1.0, 1.0])  # the RNFL thickens toward the optic disc's side
    thickness = np.empty((8, width))
    for layer, ((low, high), depth) in enumerate(zip(_THICKNESS_UM, _PIT_DEPTH)):
        base = rng.uniform(low, high) * (1 + 0.08 * _smooth_curve(rng, u, 1.0))
        if layer == 0:
            base = base * (1 + 0.6 * np.clip(side * u, 0, None))
        thickness[layer] = np.maximum(base * (1 - depth * pit), 1.0) / pixel_um
    boundaries = np.empty((NUM_BOUNDARIES, width))
    boundaries[-1] = bm
    for b in range(NUM_BOUNDARIES - 2, -1, -1):
        boundaries[b] = boundaries[b + 1] - thickness[b]

    # piecewise-constant reflectivity between boundaries, integrated over 8 sub-rows per row
    levels = np.array([rng.uniform(*r) for r in _REFLECTIVITY])
    depth = (np.arange(rows * _SUBROWS) + 0.5) / _SUBROWS - 0.5  # sub-row centres, in rows
    region = (depth[:, None, None] >= boundaries[None]).sum(1)  # (sub-rows, W): 0 = vitreous .. 9 = choroid
    fine = levels[region]
    below = np.clip(depth[:, None] - bm[None], 0, None)
    fine = np.where(region == NUM_BOUNDARIES, fine * np.exp(-below / rng.uniform(15, 30)) + 0.05, fine)
    # thin bright lines: the ELM (boundary 5) and the IS/OS junction (boundary 6) sit on their boundary
    for b, gain in ((5, rng.uniform(0.25, 0.4)), (6, rng.uniform(0.35, 0.55))):
        line = (depth[:, None] >= boundaries[b]) & (depth[:, None] < boundaries[b] + 1.5)
        fine = fine + gain * line
    # vessels: a bright cross-section in the inner retina, and the shadow it casts on everything below
    for _ in range(rng.integers(vessels[0], vessels[1] + 1)):
        center, radius = rng.uniform(-0.95, 0.95), rng.uniform(0.012, 0.03)
        columns = np.abs(u - center) <= radius + 1e-9 + 1.0 / width
        top = boundaries[1] + rng.uniform(0, 0.5) * thickness[1]
        vessel = columns & (depth[:, None] >= top) & (depth[:, None] < top + radius * 3000 / pixel_um)
        fine = np.where(vessel, fine + rng.uniform(0.2, 0.4), fine)
        shadow = columns & (depth[:, None] >= top + radius * 3000 / pixel_um)
        fine = np.where(shadow, fine * rng.uniform(0.3, 0.6), fine)
    image = fine.reshape(rows, _SUBROWS, width).mean(1)
    image = ndimage.gaussian_filter1d(image, 0.7, axis=0, mode="nearest")  # axial point-spread function
    if np.isfinite(speckle):
        image = image * rng.gamma(speckle, 1.0 / speckle, size=image.shape)
    image = image + rng.normal(0.0, noise, size=image.shape)
    return image.astype(np.float32), boundaries


class SyntheticOCT(Dataset):
    """Dataset view of :func:`render_oct_bscan`: sample ``index`` of ``split`` is the same everywhere.

    Items as :class:`~sampling_argmax.data.oct.OCTBScans`: ``image`` (1, rows, W), ``target`` (9·W, 1) rows,
    ``target_weight`` (9·W,), ``to_original`` identity, ``row_offset`` (W,) zeros, ``truth`` (9, W), ``pixel_um``,
    ``volume_id``, ``bscan``, ``index``.
    """

    def __init__(self, split: str, length: int, rows: int = 128, width: int = 64, seed: int = 0,
                 pixel_um: float = DEFAULT_PIXEL_UM, speckle: float = 4.0) -> None:
        if split not in SPLITS:
            raise ValueError(f"split={split!r} must be one of {sorted(SPLITS)}")
        if length < 1 or rows < 64 or width < 8 or pixel_um <= 0 or speckle <= 0:
            raise ValueError(f"need length >= 1, rows >= 64, width >= 8, pixel_um > 0, speckle > 0; got {length}, "
                             f"{rows}, {width}, {pixel_um}, {speckle}")
        self.split, self.length, self.rows, self.width = split, length, rows, width
        self.seed, self.pixel_um, self.speckle = seed, pixel_um, speckle

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        rng = np.random.default_rng([self.seed, SPLITS[self.split], index])
        image, truth = render_oct_bscan(rng, self.rows, self.width, self.pixel_um, self.speckle)
        weight = (truth >= -0.5) & (truth <= self.rows - 0.5)
        return {
            "image": torch.from_numpy(standardize(image))[None],
            "target": torch.from_numpy(np.where(weight, truth, 0.0).reshape(-1, 1).astype(np.float32)),
            "target_weight": torch.from_numpy(weight.reshape(-1).astype(np.float32)),
            "index": index,
            "to_original": torch.eye(2, dtype=torch.float64),
            "row_offset": torch.zeros(self.width, dtype=torch.float64),
            "truth": torch.from_numpy(truth),
            "pixel_um": torch.tensor(self.pixel_um, dtype=torch.float64),
            "volume_id": torch.tensor(0),
            "bscan": torch.tensor(index),
        }


class SyntheticOCTDataModule(BScanPredict, ProceduralSplits, LocalizationDataModule):
    """The embedded OCT task: procedural B-scans, 9 boundaries per A-scan, evaluated like MSHC (MAD in µm).

    Args:
        rows, width: B-scan size (128 rows as MSHC's crops; width A-scans, e.g. 64 = MSHC's 1024 / 16).
        train_size, val_size, test_size: samples per split (train drawn on the fly, val/test fixed).
        batch_size, num_workers: loaders.
        seed: base seed of the data (independent of the training seed).
        pixel_um: axial pixel size (3.9 µm, Spectralis).
        speckle: gamma shape of the speckle (smaller = noisier).
    """

    drop_last_train = True

    flip_pairs = None  # a mirror permutes the columns (keypoints): no flip test
    flatten = False  # predict: its B-scans are already flattened crops (BScanPredict)

    def __init__(self, rows: int = 128, width: int = 64, train_size: int = 4096, val_size: int = 64,
                 test_size: int = 64, batch_size: int = 8, num_workers: int = 0, seed: int = 0,
                 pixel_um: float = DEFAULT_PIXEL_UM, speckle: float = 4.0) -> None:
        super().__init__()
        check_loader_args(batch_size, num_workers)
        self.save_hyperparameters()
        self.task = "synthetic_oct"
        self.rows, self.width, self.pixel_um = rows, width, pixel_um
        self.num_keypoints = NUM_BOUNDARIES * width
        self.batch_size, self.num_workers = batch_size, num_workers
        options = {"rows": rows, "width": width, "seed": seed, "pixel_um": pixel_um, "speckle": speckle}
        self.splits = {"train": SyntheticOCT("train", train_size, **options),
                       "val": SyntheticOCT("val", val_size, **options),
                       "test": SyntheticOCT("test", test_size, **options)}

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (1, self.rows, self.width)

    @property
    def map_shape(self) -> tuple[int, ...]:
        return (self.rows,)

    def references(self, stage: str) -> dict:
        split = "val" if stage in ("val", "validate") else "test"
        return {"split": f"synthetic OCT {split} ({len(self.splits[split])} B-scans)", "boundary_names": BOUNDARY_NAMES}

