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


# ---------------------------------------------------------------------------------------------- small reader fixtures

#: The PCD v0.7 header of KeypointNet's clouds ({n} points).
PCD_HEADER = ("# .PCD v0.7 - Point Cloud Data file format\nVERSION .7\nFIELDS x y z rgb\nSIZE 4 4 4 4\nTYPE F F F F\n"
              "COUNT 1 1 1 1\nWIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA ascii\n")


def write_image(path: str | Path, width: int, height: int, value: int = 90) -> Path:
    """A small flat RGB image file (PNG or JPEG by suffix) of ``width`` x ``height``."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), value, np.uint8)).save(path)
    return path


def coco_person(ann_id: int, image_id: int, keypoints: list[tuple[float, float, int]], box=(2.0, 2.0, 30.0, 20.0),
                **fields) -> dict:
    """One person annotation of a COCO keypoint json: 17 keypoints (the given ones first, the rest unlabeled)."""
    flat = [float(v) for x, y, v in keypoints for v in (x, y, v)] + [0.0] * 3 * (17 - len(keypoints))
    ann = {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "bbox": list(box), "area": 300.0,
           "keypoints": flat, "num_keypoints": sum(1 for _, _, v in keypoints if v > 0)}
    ann.update(fields)
    return ann


def write_coco(folder: str | Path, images: list[tuple[int, str, int, int]], annotations: list[dict],
               write_images: bool = True, name: str = "person_keypoints.json") -> Path:
    """A COCO keypoint json ``folder/name`` with ``images`` (id, file_name, width, height) and their files."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if write_images:
        for _, file_name, width, height in images:
            write_image(folder / file_name, width, height)
    data = {"images": [{"id": i, "file_name": f, "width": w, "height": h} for i, f, w, h in images],
            "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}
    path = folder / name
    import json

    path.write_text(json.dumps(data))
    return path


def mtfl_line(path: str, landmarks: np.ndarray, attributes=(1, 2, 2, 3)) -> str:
    """One MTFL annotation line: ``path x1..x5 y1..y5 gender smile glasses pose``."""
    landmarks = np.asarray(landmarks, float)
    return " ".join([path, *(f"{v:g}" for v in landmarks[:, 0]), *(f"{v:g}" for v in landmarks[:, 1]),
                     *(str(a) for a in attributes)])


def write_pcd(path: str | Path, points, header: str = PCD_HEADER) -> Path:
    """An ASCII PCD v0.7 cloud of (N, 3) ``points`` (rgb 0)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header.format(n=len(points)) + "".join(f"{x} {y} {z} 0\n" for x, y, z in points))
    return path


def mpii_person(image: str, joints: np.ndarray, visible=None, center=(20.0, 15.0), scale=0.2) -> dict:
    """One person of mmpose/HRNet's MPII json (1-based joints 16 x 2)."""
    visible = np.ones(16) if visible is None else np.asarray(visible)
    return {"image": image, "center": list(center), "scale": scale, "joints": np.asarray(joints, float).tolist(),
            "joints_vis": visible.astype(int).tolist()}


def write_h36m_npz(path: str | Path, names: list[str], centers, scales, joints_m) -> Path:
    """An mmpose body3d annotation .npz: imgname, center (N, 2), scale (N,), S (N, 17, 4) metres + confidence."""
    joints_m = np.asarray(joints_m, float)
    if joints_m.shape[-1] == 3:
        joints_m = np.concatenate([joints_m, np.ones(joints_m.shape[:-1] + (1,))], -1)
    np.savez(path, imgname=np.array(names), center=np.asarray(centers), scale=np.asarray(scales), S=joints_m)
    return Path(path)


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
