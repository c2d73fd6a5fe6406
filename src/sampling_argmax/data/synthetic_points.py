"""Procedural point-cloud objects with semantic keypoints: KeypointNet's task with no download.

Three categories assembled from parametric parts (boxes and a cylinder), y up, front = +z, left = +x:

* chair: seat, four legs, a backrest and (40 %) armrests;
* table: a top and four legs, inset by a random margin;
* airplane: a cylindrical fuselage with a pointed nose, swept wings, tail stabilizers and a fin.

Every object is scaled to ShapeNet's frame (bounding box centred, unit diagonal), its visible surface
(points inside another part are dropped) is sampled uniformly by area, and each semantic keypoint (a
part corner or tip) is one of the cloud's points, as in KeypointNet (``pcd_info.point_index``). Semantic
ids are per category (like KeypointNet's) in one K = 12 slot layout: chairs and tables share 0-3 leg
tips (front-left, front-right, back-left, back-right) and 4-7 seat/top corners; chairs add 8-9 backrest
top corners and 10-11 armrest front tips; airplanes use 0 nose, 1 tail, 2-3 wing tips, 4-5 stabilizer
tips, 6 fin top. Ids a category does not have, parts an object lacks (armrests) and a random 10 % of
the rest ("not annotated") get weight 0. Sensor-like noise: Gaussian jitter on every point and a few
outliers off the surface (never the keypoints).

A sample is a pure function of ``(seed, split, index)``; training augmentation (rotation about y,
scale, jitter) is drawn per epoch from torch's generator and is off at evaluation.

Example:
    >>> sample = SyntheticPointClouds("val", length=2, num_points=512)[0]
    >>> sample["points"].shape, sample["target"].shape, int(sample["category"]) in (0, 1, 2)
    (torch.Size([512, 3]), torch.Size([12, 3]), True)
"""

from __future__ import annotations

import numpy as np
from torch.utils.data import Dataset

from sampling_argmax.data.base import check_loader_args
from sampling_argmax.data.keypointnet import (
    PointCloudDataModule,
    augment_cloud,
    check_augmentation,
    point_sample,
    torch_rng,
)

__all__ = ["CATEGORY_NAMES", "NUM_KEYPOINTS", "KEYPOINT_NAMES", "make_object", "SyntheticPointClouds",
           "SyntheticPointsDataModule"]

CATEGORY_NAMES = ("chair", "table", "airplane")
NUM_KEYPOINTS = 12
_LEGS = ("leg tip FL", "leg tip FR", "leg tip BL", "leg tip BR")
_TOP = ("corner FL", "corner FR", "corner BL", "corner BR")
KEYPOINT_NAMES = {
    "chair": (*_LEGS, *_TOP, "back top L", "back top R", "arm tip L", "arm tip R"),
    "table": (*_LEGS, *_TOP),
    "airplane": ("nose", "tail", "wing tip L", "wing tip R", "stabilizer tip L", "stabilizer tip R", "fin top"),
}
SPLITS = {"train": 0, "val": 1, "test": 2}

# A part: ("box", centre (3,), half sizes (3,)) or ("cylinder", centre, (radius, half length along z)).


def _box(lo, hi) -> tuple:
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    return ("box", (lo + hi) / 2, (hi - lo) / 2)


def _chair(rng):
    w, d = rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6)
    h, t, leg = rng.uniform(0.38, 0.5), rng.uniform(0.03, 0.06), rng.uniform(0.025, 0.05)
    back_h, back_t = rng.uniform(0.3, 0.55), rng.uniform(0.025, 0.05)
    x, z = w / 2, d / 2
    parts = [_box([-x, h - t, -z], [x, h, z]), _box([-x, h, -z], [x, h + back_h, -z + back_t])]
    corners = [(x - leg / 2, z - leg / 2), (-x + leg / 2, z - leg / 2), (x - leg / 2, -z + leg / 2),
               (-x + leg / 2, -z + leg / 2)]  # FL, FR, BL, BR (left = +x)
    parts += [_box([cx - leg / 2, 0, cz - leg / 2], [cx + leg / 2, h - t, cz + leg / 2]) for cx, cz in corners]
    kp = [[cx, 0.0, cz] for cx, cz in corners]
    kp += [[x, h, z], [-x, h, z], [x, h, -z + back_t], [-x, h, -z + back_t]]
    kp += [[x, h + back_h, -z], [-x, h + back_h, -z]]
    if rng.random() < 0.4:  # armrests: a bar on each side, its front tip a keypoint
        arm_h, arm_w, arm_d = rng.uniform(0.15, 0.25), rng.uniform(0.03, 0.06), rng.uniform(0.6, 0.9) * d
        for sign in (1, -1):
            parts.append(_box([sign * x - arm_w / 2, h + arm_h - 0.03, -z], [sign * x + arm_w / 2, h + arm_h, -z + arm_d]))
        kp += [[x, h + arm_h, -z + arm_d], [-x, h + arm_h, -z + arm_d]]
    else:
        kp += [None, None]
    return parts, kp


def _table(rng):
    w, d = rng.uniform(0.6, 1.2), rng.uniform(0.5, 0.9)
    h, t, leg, inset = rng.uniform(0.55, 0.8), rng.uniform(0.03, 0.07), rng.uniform(0.03, 0.07), rng.uniform(0, 0.1)
    x, z = w / 2, d / 2
    parts = [_box([-x, h - t, -z], [x, h, z])]
    lx, lz = x - inset - leg / 2, z - inset - leg / 2
    corners = [(lx, lz), (-lx, lz), (lx, -lz), (-lx, -lz)]
    parts += [_box([cx - leg / 2, 0, cz - leg / 2], [cx + leg / 2, h - t, cz + leg / 2]) for cx, cz in corners]
    kp = [[cx, 0.0, cz] for cx, cz in corners] + [[x, h, z], [-x, h, z], [x, h, -z], [-x, h, -z]]
    return parts, kp + [None] * 4


def _airplane(rng):
    length, radius = 1.0, rng.uniform(0.04, 0.07)
    nose = rng.uniform(0.08, 0.15)  # the nose cone: a cylinder tapered to a tip (see _sample_part)
    span, chord, sweep = rng.uniform(0.7, 1.1), rng.uniform(0.12, 0.22), rng.uniform(0.0, 0.5)
    wing_z, thick = rng.uniform(-0.05, 0.1), 0.015
    parts = [("cylinder", np.array([0.0, 0.0, -nose / 2]), np.array([radius, (length - nose) / 2])),
             ("cone", np.array([0.0, 0.0, length / 2 - nose / 2]), np.array([radius, nose / 2]))]
    # swept wings: boxes sheared so their tips move back by sweep * |x|
    parts.append(("wing", np.array([0.0, 0.0, wing_z]), np.array([span / 2, thick / 2, chord / 2, sweep])))
    stab_span, stab_chord, tail = rng.uniform(0.25, 0.4), rng.uniform(0.06, 0.1), -length / 2
    stab_z = tail + stab_chord / 2 + 0.02
    parts.append(("wing", np.array([0.0, 0.0, stab_z]), np.array([stab_span / 2, thick / 2, stab_chord / 2, sweep])))
    fin_h = rng.uniform(0.12, 0.22)
    parts.append(_box([-thick / 2, radius * 0.5, tail + 0.02], [thick / 2, radius * 0.5 + fin_h, tail + 0.02 + stab_chord * 1.3]))
    kp = [[0.0, 0.0, length / 2], [0.0, 0.0, tail],
          [span / 2, 0.0, wing_z + chord / 2 - sweep * span / 2], [-span / 2, 0.0, wing_z + chord / 2 - sweep * span / 2],
          [stab_span / 2, 0.0, stab_z + stab_chord / 2 - sweep * stab_span / 2],
          [-stab_span / 2, 0.0, stab_z + stab_chord / 2 - sweep * stab_span / 2],
          [0.0, radius * 0.5 + fin_h, tail + 0.02]]
    return parts, kp + [None] * (NUM_KEYPOINTS - len(kp))


_BUILDERS = (_chair, _table, _airplane)


def _area(part) -> float:
    kind, _, size = part
    if kind == "box":
        a, b, c = 2 * size
        return 2 * (a * b + b * c + a * c)
    if kind == "wing":
        a, b, c = 2 * size[:3]
        return 2 * (a * b + b * c + a * c)
    radius, half = size
    return 2 * np.pi * radius * 2 * half if kind == "cylinder" else np.pi * radius * np.hypot(radius, 2 * half)


def _sample_part(part, count: int, rng) -> np.ndarray:
    """``count`` points uniform on the part's surface (box faces by area; cylinder/cone mantle)."""
    kind, centre, size = part
    if kind in ("box", "wing"):
        half = size[:3]
        faces = np.array([half[1] * half[2], half[0] * half[2], half[0] * half[1]])  # areas of the x, y, z faces
        axis = rng.choice(3, size=count, p=faces / faces.sum())
        out = rng.uniform(-1, 1, size=(count, 3))
        out[np.arange(count), axis] = rng.choice([-1.0, 1.0], size=count)
        out = out * half
        if kind == "wing":  # sweep: the tips move back (−z) in proportion to |x|
            out[:, 2] -= size[3] * np.abs(out[:, 0])
        return out + centre
    radius, half = size
    angle, along = rng.uniform(0, 2 * np.pi, count), rng.uniform(-1, 1, count)
    if kind == "cone":  # area-uniform on the mantle: the radius shrinks linearly to the tip at +z
        along = 1 - 2 * np.sqrt(rng.uniform(0, 1, count))  # density ∝ remaining radius
        r = radius * (1 - along) / 2
    else:
        r = np.full(count, radius)
    return np.stack([r * np.cos(angle), r * np.sin(angle), along * half], 1) + centre


def _inside(points: np.ndarray, part, margin: float = 1e-3) -> np.ndarray:
    """Strictly inside a box part (used to drop hidden surface); other parts are never occluders."""
    kind, centre, size = part
    if kind != "box":
        return np.zeros(len(points), dtype=bool)
    return np.all(np.abs(points - centre) < size - margin, axis=1)


def make_object(rng: np.random.Generator, category: int, num_points: int = 2048, noise: float = 0.004,
                outliers: float = 0.01, drop: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """One object: cloud ``(num_points, 3)`` float32 (unit bounding-box diagonal, centred) and keypoint
    indices ``(NUM_KEYPOINTS,)`` into it (-1 = absent or not annotated)."""
    parts, keypoints = _BUILDERS[category](rng)
    areas = np.array([_area(p) for p in parts])
    pool = []
    for part, count in zip(parts, rng.multinomial(int(num_points * 1.6), areas / areas.sum())):
        points = _sample_part(part, count, rng)
        hidden = np.zeros(len(points), dtype=bool)
        for other in parts:
            if other is not part:
                hidden |= _inside(points, other)
        pool.append(points[~hidden])
    pool = np.concatenate(pool)
    present = [k for k, p in enumerate(keypoints) if p is not None]
    surface = pool[rng.choice(len(pool), num_points - len(present), replace=len(pool) < num_points - len(present))]
    cloud = np.concatenate([np.array([keypoints[k] for k in present]), surface])
    order = rng.permutation(num_points)  # keypoints land at random indices, as in a real scan
    cloud = cloud[order]
    index = np.full(NUM_KEYPOINTS, -1, dtype=np.int64)
    index[present] = np.argsort(order)[: len(present)]
    # ShapeNet's frame: bounding box centred, unit diagonal
    lo, hi = cloud.min(0), cloud.max(0)
    cloud = (cloud - (lo + hi) / 2) / np.linalg.norm(hi - lo)
    # sensor-like noise: jitter everywhere, a few outliers off the surface (never a keypoint)
    cloud = cloud + rng.normal(0, noise, cloud.shape)
    candidates = np.setdiff1d(np.arange(num_points), index[index >= 0])
    wild = rng.choice(candidates, int(outliers * num_points), replace=False)
    cloud[wild] += rng.normal(0, 0.03, (len(wild), 3))
    # not annotated: a random share of the present keypoints
    index[(index >= 0) & (rng.random(NUM_KEYPOINTS) < drop)] = -1
    return cloud.astype(np.float32), index


class SyntheticPointClouds(Dataset):
    """``length`` objects of ``split``, categories in turn (index mod 3), each a pure function of the seed.

    ``augment`` = ``(rotate_up, scale, jitter)`` for training, None for evaluation. Objects are cached.
    """

    def __init__(self, split: str, length: int, num_points: int = 2048, seed: int = 0, noise: float = 0.004,
                 outliers: float = 0.01, drop: float = 0.1,
                 augment: tuple[bool, tuple[float, float] | None, float] | None = None) -> None:
        if split not in SPLITS:
            raise ValueError(f"split={split!r} must be one of {list(SPLITS)}")
        if length < 1 or num_points < 64:
            raise ValueError(f"need length >= 1 and num_points >= 64, got {length}, {num_points}")
        self.split, self.length, self.num_points, self.seed = split, length, num_points, seed
        self.noise, self.outliers, self.drop, self.augment = noise, outliers, drop, augment
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return self.length

    def object(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if index not in self._cache:
            rng = np.random.default_rng([self.seed, SPLITS[self.split], index])
            self._cache[index] = make_object(rng, index % len(CATEGORY_NAMES), self.num_points, self.noise,
                                             self.outliers, self.drop)
        return self._cache[index]

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        cloud, keypoint_index = self.object(index)
        if self.augment is not None:
            cloud = augment_cloud(cloud, torch_rng(), *self.augment)
        return point_sample(cloud, keypoint_index, index, index % len(CATEGORY_NAMES))


class SyntheticPointsDataModule(PointCloudDataModule):
    """The synthetic point-cloud task: chairs, tables and airplanes, K = 12 semantic slots.

    Args:
        num_points: points per cloud (KeypointNet: 2,048).
        train_size, val_size, test_size: objects per split (categories in equal parts).
        noise: jitter std of the "sensor"; outliers: share of off-surface points; drop: share of
            keypoints left unannotated.
        rotate_up, scale, jitter: training augmentation.
        batch_size, num_workers, seed: loading.
    """

    num_keypoints = NUM_KEYPOINTS
    flip_pairs = None  # no mirror defined: model.flip_test false
    task = "synthetic_points"

    def __init__(self, num_points: int = 2048, train_size: int = 1200, val_size: int = 150, test_size: int = 300,
                 noise: float = 0.004, outliers: float = 0.01, drop: float = 0.1, rotate_up: bool = False,
                 scale: tuple[float, float] | None = (0.9, 1.1), jitter: float = 0.0, batch_size: int = 16,
                 num_workers: int = 0, seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.scale, self.jitter = check_augmentation(scale, jitter)
        check_loader_args(batch_size, num_workers)
        self.num_points, self.batch_size, self.num_workers = num_points, batch_size, num_workers
        augment = (bool(rotate_up), self.scale, self.jitter)
        common = dict(num_points=num_points, seed=seed, noise=noise, outliers=outliers, drop=drop)
        self.datasets = {
            "train": SyntheticPointClouds("train", train_size, augment=augment, **common),
            "val": SyntheticPointClouds("val", val_size, **common),
            "test": SyntheticPointClouds("test", test_size, **common),
        }

    def references(self, stage: str) -> dict:
        name = "test" if stage in ("test", "predict") else "val"
        return {"categories": list(CATEGORY_NAMES), "split": f"synthetic {name} split ({len(self.datasets[name])} objects)"}

    def dataset(self, split: str) -> Dataset:
        return self.datasets[split]
