"""Writers of data files in their official formats, for test fixtures (not part of the package)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sampling_argmax.codecs.bscan import DEFAULT_PIXEL_UM


def write_vol(path: str | Path, bscans: np.ndarray, pixel_um: float = DEFAULT_PIXEL_UM, scale_x_um: float = 11.0,
              bscan_distance_um: float = 120.0) -> Path:
    """Write raw reflectivities ``bscans`` (N, H, W) in [0, 1] as a Heyex ``.vol`` (eyepy's format definition).

    For test fixtures and for exporting scans of other sources: the header carries the pixel sizes, an empty
    16 x 16 localizer, no layer segmentations. Built from eyepy's ``vol_format`` directly because eyepy 0.21's
    ``HeVolWriter`` cannot encode the examination date (its 64-bit date field gets a float); that one field is
    written as a plain integer here.
    """
    import construct
    from eyepy.io.he.vol_reader import vol_format

    bscans = np.asarray(bscans, dtype=np.float32)
    if bscans.ndim != 3 or min(bscans.shape) == 0:
        raise ValueError(f"bscans of shape {bscans.shape} must be (N, H, W) raw reflectivities")
    fields = [("exam_time" / construct.Int64ul) if sub.name == "exam_time" else sub for sub in vol_format.subcons]
    date = "2000-01-01T00:00:00"
    num, height, width = bscans.shape
    records = [
        dict(bscan_hdr_size=256, start_x=0.0, start_y=i * bscan_distance_um / 1000.0, end_x=width * scale_x_um / 1000.0,
             end_y=i * bscan_distance_um / 1000.0, num_seg=0, quality=30.0, shift=0, iv_transformation=[0.0] * 6,
             layer_segmentations=np.zeros((0, width), np.float32), data=np.ascontiguousarray(bscans[i]))
        for i in range(num)
    ]
    header = dict(size_x=width, size_y=height, n_bscans=num, scale_x=scale_x_um / 1000.0, scale_y=pixel_um / 1000.0,
                  distance=bscan_distance_um / 1000.0, size_x_slo=16, size_y_slo=16, scale_x_slo=0.2, scale_y_slo=0.2,
                  id="sampling-argmax", reference_id="", dob=date, visit_date=date, exam_time=0, grid_type=0,
                  grid_offset=0, grid_type1=0, grid_offset1=0, prog_id="", localizer=np.zeros((16, 16), np.uint8),
                  bscans=records)
    path = Path(path)
    path.write_bytes(construct.Struct(*fields).build(header))
    return path


#: The made-up category of the own-data tests: a "kite" (not a person) with left/right pairs of two spellings.
KITE_NAMES = ("nose", "left_wing", "right_wing", "LeftTail", "RightTail")
KITE_SKELETON = [[1, 2], [1, 3], [2, 4], [3, 5]]  # 1-based, as COCO jsons give it
# mirror-symmetric like a real object: a flip shows a left wing where a right one was, looking the same
_KITE_COLORS = [(255, 255, 255), (255, 0, 0), (255, 0, 0), (0, 255, 255), (0, 255, 255)]


def kite_keypoints(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[float]]:
    """(5, 2) keypoints of one kite inside a ``size`` x ``size`` image and its box (x, y, w, h)."""
    scale = rng.uniform(0.3, 0.45) * size
    cx, cy = rng.uniform(0.35, 0.65, size=2) * size
    shape = np.array([[0.0, -0.5], [-0.5, 0.0], [0.5, 0.0], [-0.25, 0.5], [0.25, 0.5]])
    points = shape * scale + [cx, cy]
    low, high = points.min(0) - 2, points.max(0) + 2
    return points, [float(low[0]), float(low[1]), float(high[0] - low[0]), float(high[1] - low[1])]


def draw_kite(points: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """An (size, size, 3) uint8 image with a coloured 3 x 3 patch at each keypoint over noise."""
    image = rng.integers(0, 60, size=(size, size, 3), dtype=np.uint8)
    for (x, y), color in zip(np.round(points).astype(int), _KITE_COLORS):
        image[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2] = color
    return image


def write_coco_kites(folder: str | Path, num_images: int = 4, size: int = 48, seed: int = 0, category_id: int = 7,
                     extra_category: bool = False) -> Path:
    """A COCO-format keypoint json ``folder/kites.json`` of ``num_images`` images (PNG, one kite each) in
    ``folder/images``; returns the json path. ``extra_category`` adds a second keypoint category."""
    import json

    from PIL import Image

    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    for n in range(num_images):
        points, box = kite_keypoints(rng, size)
        name = f"kite_{n:03d}.png"
        Image.fromarray(draw_kite(points, size, rng)).save(folder / "images" / name)
        images.append({"id": 100 + n, "file_name": name, "width": size, "height": size})
        triples = [v for x, y in points for v in (float(x), float(y), 2)]
        annotations.append({"id": 1000 + n, "image_id": 100 + n, "category_id": category_id, "bbox": box,
                            "area": box[2] * box[3], "iscrowd": 0, "num_keypoints": 5, "keypoints": triples})
    categories = [{"id": category_id, "name": "kite", "supercategory": "toy", "keypoints": list(KITE_NAMES),
                   "skeleton": KITE_SKELETON}]
    if extra_category:
        categories.append({"id": category_id + 1, "name": "cup", "keypoints": ["rim", "handle", "base"],
                           "skeleton": [[1, 3]]})
    path = folder / "kites.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def write_landmark_csv(folder: str | Path, num_images: int = 4, size: int = 48, seed: int = 0,
                       visible_column: bool = True) -> Path:
    """A landmark CSV ``folder/landmarks.csv`` (``image,<name>_x,<name>_y[,<name>_visible],...``) of the kite
    keypoints over images in ``folder/images``; returns the CSV path."""
    import csv

    from PIL import Image

    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    header = ["image"] + [f"{name}_{part}" for name in KITE_NAMES
                          for part in (("x", "y", "visible") if visible_column else ("x", "y"))]
    rows = []
    for n in range(num_images):
        points, _ = kite_keypoints(rng, size)
        name = f"kite_{n:03d}.png"
        Image.fromarray(draw_kite(points, size, rng)).save(folder / "images" / name)
        row = [name]
        for x, y in points:
            row += [f"{x:.3f}", f"{y:.3f}"] + (["1"] if visible_column else [])
        rows.append(row)
    path = folder / "landmarks.csv"
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    return path
