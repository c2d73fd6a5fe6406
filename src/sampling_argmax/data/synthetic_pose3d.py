"""Procedural 3D human poses seen by a random camera: the Human3.6M task with no download.

A skeleton of the 18 Human3.6M joints (:data:`~sampling_argmax.data.h36m.JOINT_NAMES`) is built from bone
lengths (a random body scale and per-bone jitter) and joint angles drawn inside anatomical limits (hips,
knees, spine, neck, shoulders, elbows), turned to a random heading, placed 4-6.5 m in front of a pinhole
camera of random focal length, and rendered into the crop around its box exactly as the Human3.6M module
frames a frame: limbs as shaded capsules drawn far to near (radius shrinks with distance, brightness halves
every 600 mm behind the pelvis),
the left side tinted warm and the right cool, the head a sphere with a bright nose mark (the facing
cue), on a background of random clutter. Labels are exact: the same :class:`VolumeCoding`,
``to_original`` and evaluation extras as Human3.6M, so :class:`~sampling_argmax.metrics.pose3d.Pose3DEvaluator`
reports MPJPE and PA-MPJPE in mm.

Sides are told apart by colour, so the task has no mirror symmetry a flip could exploit: training does
no flipping and the config evaluates without the flip test.

Example:
    >>> sample = SyntheticPoses("val", length=2)[0]
    >>> sample["image"].shape, sample["target"].shape, sample["to_original"].shape
    (torch.Size([3, 64, 64]), torch.Size([18, 3]), torch.Size([4, 4]))
"""

from __future__ import annotations

import numpy as np
from torch.utils.data import Dataset

from sampling_argmax.codecs.affine import apply_affine
from sampling_argmax.data.base import ProceduralSplits, check_loader_args
from sampling_argmax.data.h36m import Pose3DDataModule, pose_sample, project
from sampling_argmax.data.h36m_files import NUM_JOINTS
from sampling_argmax.codecs.volume import VolumeCoding

__all__ = ["SyntheticPoses", "SyntheticPose3DDataModule", "random_pose"]

SPLITS = {"train": 0, "val": 1, "test": 2}
# bone lengths (mm) of an average adult
_LENGTH = {"hip": 130.0, "thigh": 440.0, "shin": 430.0, "spine": 230.0, "chest": 250.0, "neck": 110.0,
           "head": 120.0, "shoulder": 160.0, "upper_arm": 280.0, "forearm": 250.0}
# capsule radius (mm) of the bone ending at each joint
_RADIUS = {1: 90, 2: 85, 3: 70, 4: 90, 5: 85, 6: 70, 7: 130, 8: 120, 9: 60, 10: 60, 11: 80, 12: 75, 13: 65,
           14: 80, 15: 75, 16: 65}
_PARENT = {1: 0, 2: 1, 3: 2, 4: 0, 5: 4, 6: 5, 7: 0, 8: 7, 9: 8, 10: 9, 11: 8, 12: 11, 13: 12, 14: 8, 15: 14, 16: 15}
_LEFT, _RIGHT = {4, 5, 6, 11, 12, 13}, {1, 2, 3, 14, 15, 16}


def _rot(axis: str, degrees: float) -> np.ndarray:
    c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    return {"x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]), "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


def random_pose(rng: np.random.Generator, articulation: float = 1.0) -> np.ndarray:
    """(18, 3) joints in mm in a body frame (x = the person's left, y up, z forward), pelvis at 0.

    Angles are uniform within limits (degrees): hip flexion -25..100, abduction 0..35, knee 0..140; spine bend
    -10..40, side bend ±15, twist ±30; neck nod -20..40, turn ±50; shoulder flexion -40..170, abduction
    0..110; elbow 0..145. ``articulation`` scales every limit towards the upright pose (0: all angles 0).
    """
    if not 0 <= articulation <= 1:
        raise ValueError(f"articulation={articulation} must be in [0, 1] (a fraction of the joint limits)")

    def angle(low: float, high: float) -> float:
        return rng.uniform(low * articulation, high * articulation)

    scale = rng.uniform(0.85, 1.15)
    length = {name: value * scale * rng.uniform(0.95, 1.05) for name, value in _LENGTH.items()}
    joints = np.zeros((NUM_JOINTS, 3))
    down, up = np.array([0.0, -1.0, 0.0]), np.array([0.0, 1.0, 0.0])
    for side, hip, knee, ankle in ((+1, 4, 5, 6), (-1, 1, 2, 3)):
        leg = _rot("z", side * angle(0, 35)) @ _rot("x", -angle(-25, 100))
        joints[hip] = [side * length["hip"], 0.0, 0.0]
        joints[knee] = joints[hip] + leg @ down * length["thigh"]
        joints[ankle] = joints[knee] + leg @ _rot("x", angle(0, 140)) @ down * length["shin"]
    spine = _rot("y", angle(-30, 30)) @ _rot("z", angle(-15, 15)) @ _rot("x", angle(-10, 40))
    joints[7] = spine @ up * length["spine"]
    joints[8] = joints[7] + spine @ up * length["chest"]
    head = spine @ _rot("y", angle(-50, 50)) @ _rot("x", angle(-20, 40))
    joints[9] = joints[8] + head @ np.array([0.0, 0.6, 0.8]) * length["neck"]
    joints[10] = joints[8] + head @ up * (length["neck"] + length["head"])
    for side, shoulder, elbow, wrist in ((+1, 11, 12, 13), (-1, 14, 15, 16)):
        arm = spine @ _rot("z", side * angle(0, 110)) @ _rot("x", -angle(-40, 170))
        joints[shoulder] = joints[8] + spine @ np.array([side * length["shoulder"], -30.0, 0.0])
        joints[elbow] = joints[shoulder] + arm @ down * length["upper_arm"]
        joints[wrist] = joints[elbow] + arm @ _rot("x", -angle(0, 145)) @ down * length["forearm"]
    joints[17] = (joints[11] + joints[14]) / 2
    return joints


def _window(size: int, low: np.ndarray, high: np.ndarray) -> tuple[slice, slice]:
    """Rows and columns of the pixels inside the box [low, high] (x, y), clipped to the image."""
    x0, y0 = np.clip(np.floor(low), 0, size).astype(int)
    x1, y1 = np.clip(np.ceil(high) + 1, 0, size).astype(int)
    return slice(y0, y1), slice(x0, x1)


def _capsule(size: int, a: np.ndarray, b: np.ndarray, radius: float) -> tuple[tuple[slice, slice], np.ndarray]:
    """The window around the capsule a-b of ``radius`` px and the distance of its pixels to the segment."""
    rows, cols = _window(size, np.minimum(a, b) - radius, np.maximum(a, b) + radius)
    ys, xs = np.mgrid[rows, cols].astype(np.float64)
    grid = np.stack([xs, ys], -1)
    ab = b - a
    t = np.clip(((grid - a) @ ab) / max(float(ab @ ab), 1e-9), 0.0, 1.0)
    return (rows, cols), np.linalg.norm(grid - (a + t[..., None] * ab), axis=-1)


def _render(rng: np.random.Generator, size: int, points: np.ndarray, depth: np.ndarray, pixels_per_mm: np.ndarray,
            clutter: int, noise: float) -> np.ndarray:
    """(size, size, 3) uint8: clutter, then capsules far to near, then noise."""
    ys = np.arange(size, dtype=np.float64)[:, None, None]
    image = np.ones((size, size, 3)) * rng.uniform(0.2, 0.8, 3) + ys / size * rng.uniform(-0.2, 0.2, 3)
    for _ in range(clutter):  # rectangles and ellipses of random colour
        centre, half = rng.uniform(0, size, 2), rng.uniform(2, size / 4, 2)
        rows, cols = _window(size, centre - half, centre + half)
        if rng.random() < 0.5:
            image[rows, cols] = rng.uniform(0, 1, 3)
        else:
            yy, xx = np.mgrid[rows, cols]
            inside = np.hypot((xx - centre[0]) / half[0], (yy - centre[1]) / half[1]) < 1
            image[rows, cols][inside] = rng.uniform(0, 1, 3)
    root = depth[0]
    order = sorted(_PARENT, key=lambda j: -(depth[j] + depth[_PARENT[j]]))  # painter's algorithm
    for joint in order:
        parent = _PARENT[joint]
        if joint == 10:  # the head: a sphere
            radius = max(110 * pixels_per_mm[10], 0.7)
            window, distance = _capsule(size, points[10], points[10], radius)
        else:
            radius = max(_RADIUS[joint] * (pixels_per_mm[joint] + pixels_per_mm[parent]) / 2, 0.7)
            window, distance = _capsule(size, points[parent], points[joint], radius)
        mask = distance < radius
        colour = np.array([0.95, 0.55, 0.35]) if joint in _LEFT else np.array([0.35, 0.6, 0.95]) if joint in _RIGHT \
            else np.array([0.85, 0.85, 0.8])
        shade = np.sqrt(np.clip(1 - (distance[mask] / radius) ** 2, 0, 1))  # a lit cylinder
        # aerial-perspective-like depth cue: 600 mm nearer than the pelvis is 1.5x brighter, 600 mm farther 2x darker
        nearness = 2.0 ** np.clip(-((depth[joint] + depth[parent]) / 2 - root) / 600.0, -1.5, 1.0)
        image[window][mask] = np.clip(colour * (0.35 + 0.65 * shade[:, None]) * 0.6 * nearness, 0, 1)
    if depth[9] < depth[10] + 60:  # the nose mark, visible unless the head turns away
        radius = max(1.0, 35 * pixels_per_mm[9])
        window, distance = _capsule(size, points[9], points[9], radius)
        image[window][distance < radius] = [1.0, 1.0, 0.2]
    image += rng.normal(0, noise, image.shape)
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


class SyntheticPoses(Dataset):
    """Sample ``index`` of ``split`` is a pure function of ``(seed, split, index)``.

    Args:
        split: "train", "val" or "test".
        length: number of samples.
        coding: crop/volume geometry (default 64 px crops, 16 × 16 × 16 volumes, ±1,000 mm).
        seed: base seed.
        clutter: background shapes per image.
        noise: std of the pixel noise (in [0, 1] units).
        heading: the person faces the camera turned by up to ± ``heading`` degrees (180: any heading).
        articulation: fraction of the joint-angle limits (see :func:`random_pose`).
    """

    def __init__(self, split: str, length: int, coding: VolumeCoding | None = None, seed: int = 0, clutter: int = 0,
                 noise: float = 0.02, heading: float = 90.0, articulation: float = 0.7) -> None:
        if split not in SPLITS:
            raise ValueError(f"split={split!r} must be one of {sorted(SPLITS)}")
        if length < 1 or clutter < 0 or noise < 0 or not 0 <= heading <= 180 or not 0 <= articulation <= 1:
            raise ValueError("need length >= 1, clutter >= 0, noise >= 0, heading in [0, 180], articulation in "
                             f"[0, 1]; got {length}, {clutter}, {noise}, {heading}, {articulation}")
        self.split, self.length, self.seed, self.clutter, self.noise = split, length, seed, clutter, noise
        self.heading, self.articulation = heading, articulation
        self.coding = coding or VolumeCoding(input_size=64, map_size=16, depth_bins=16)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        rng = np.random.default_rng([self.seed, SPLITS[self.split], index])
        body = random_pose(rng, self.articulation)
        # heading (0: facing the camera), a little pitch and roll; body (y up, z forward) -> camera (y down, z away)
        turn = _rot("y", rng.uniform(-self.heading, self.heading)) @ _rot("x", rng.uniform(-10, 10)) @ _rot("z", rng.uniform(-5, 5))
        position = np.array([rng.uniform(-400, 400), rng.uniform(-300, 300), rng.uniform(4000, 6500)])
        joints_cam = body @ turn.T @ np.diag([1.0, -1.0, -1.0]) + position
        focal, principal = np.full(2, rng.uniform(900, 1200)), np.array([500.0, 500.0])
        uv = project(joints_cam, focal, principal)
        low, high = uv.min(0), uv.max(0)
        centre = (low + high) / 2 + rng.normal(0, 0.03, 2) * (high - low).max()
        side = (high - low).max() * rng.uniform(1.15, 1.35)  # a detector-like box with a margin
        coding = self.coding
        to_input = coding.input_matrix(centre, side)
        pixels_per_mm = focal[0] / joints_cam[:, 2] * coding.input_size / side
        image = _render(rng, coding.input_size, apply_affine(uv, to_input), joints_cam[:, 2], pixels_per_mm,
                        self.clutter, self.noise)
        sample = pose_sample(image, joints_cam, focal, principal, coding.crop_matrix(centre, side), coding, index)
        sample["target_weight"] = sample["target_weight"][:, 0].contiguous()  # every axis labeled: (K,)
        return sample


class SyntheticPose3DDataModule(ProceduralSplits, Pose3DDataModule):
    """Procedural 3D poses (:class:`SyntheticPoses`) on the Human3.6M contract.

    Training samples are drawn on the fly; validation and test are fixed sets of other streams.

    Args:
        input_size: crop side in pixels (a ResNet's stride 32 must divide it).
        map_size, depth_bins, depth_range: the volume (see :class:`~sampling_argmax.data.h36m.VolumeCoding`).
        train_size, val_size, test_size: samples per split (the training split is a pool reshuffled every epoch).
        batch_size, num_workers: per process.
        seed: base seed of the generated data (independent of the training seed).
        clutter, noise, heading, articulation: difficulty (see :class:`SyntheticPoses`).
    """

    drop_last_train = True
    task = "synthetic_pose3d"

    def __init__(self, input_size: int = 64, map_size: int = 16, depth_bins: int = 16, depth_range: float = 2000.0,
                 train_size: int = 100_000, val_size: int = 128, test_size: int = 256, batch_size: int = 16,
                 num_workers: int = 0, seed: int = 0, clutter: int = 0, noise: float = 0.02, heading: float = 90.0,
                 articulation: float = 0.7) -> None:
        super().__init__()
        check_loader_args(batch_size, num_workers)
        self.save_hyperparameters()
        self.coding = VolumeCoding(input_size, map_size, depth_bins, depth_range)
        self.batch_size, self.num_workers = batch_size, num_workers
        options = {"coding": self.coding, "seed": seed, "clutter": clutter, "noise": noise, "heading": heading,
                   "articulation": articulation}
        self.splits = {split: SyntheticPoses(split, size, **options)
                       for split, size in (("train", train_size), ("val", val_size), ("test", test_size))}
