"""Retina OCT layer boundaries (MSHC, He et al. 2019): Heidelberg ``.vol`` volumes and their delineation ``.mat``.

The task (the paper's Table 4): in every A-scan (image column) of a B-scan, locate each of 9 retinal
boundaries by a 1D probability over the rows. In the task contract each (boundary, column) pair is one
"keypoint" with a 1D map over the rows: the model outputs ``(B, 9·W, H)`` logits, ``target`` is
``(9·W, 1)`` rows in the crop, keypoint ``k = b·W + c`` (boundary-major). The evaluator
(:class:`~sampling_argmax.metrics.oct.OCTEvaluator`) reshapes them back to ``(9, W)``.

Files (the official MSHC layout, the file names of the dataset)::

    <root>/vol/hc01_spectralis_macula_v1_s1_R.vol              # 49 B-scans of 496 x 1024 (or <root>/*.vol)
    <root>/delineation/hc01_spectralis_macula_v1_s1_R.mat      # control_pts or bd_pts (or <root>/*.mat)

``.vol`` files are read by eyepy's construct-based Heyex reader (raw float32 reflectivities and the header's
axial pixel size). A delineation holds either ``control_pts`` (B-scans x 11 cells of 1-based (x, y) spline
control points; cells 3 and 11 (1-based) unused, leaving 9 boundaries) or dense ``bd_pts`` (A-scans x B-scans
x 11 or 9, 1-based rows). Control points become per-A-scan rows as the dataset's tools make them
(:func:`control_points_to_rows`): sorted by x, a natural cubic spline through them in the control-point index
(each segment mapped linearly onto its x span), nearest-value extrapolation to the image edges, and every
boundary clamped to lie on or below the one above it.

Boundary names (top to bottom): ILM, RNFL-GCL, IPL-INL, INL-OPL, OPL-ONL, ELM, IS-OS, OS-RPE, BM.

Preprocessing (:func:`flatten_crop`), as in the reference pipeline of He et al.: intensities ``raw^(1/4)``
(the usual Spectralis display scale, invalid samples to 0); Bruch's membrane estimated *from the image*
(:func:`estimate_bruchs_membrane`; labels are never used to frame an input) and each A-scan shifted by a whole
number of rows so that the estimate lies on one row (the middle row of the B-scan); then a crop of ``rows``
(128) rows that ends ``bottom_margin_um`` (60 µm) below it; the crop is standardized (zero mean, unit std).
Whole-row shifts carry the boundaries through exactly: ``original row = crop row + row_offset[column]``,
``row_offset`` travels with each sample and the evaluator maps predictions back before measuring.

Example:
    >>> import numpy as np
    >>> points = np.array([[1.0, 100.0], [50.0, 110.0], [100.0, 100.0]])
    >>> rows = control_points_to_rows(points, num_ascans=100)
    >>> rows.shape, float(rows[0]), float(rows[49]), float(rows[99])   # 0-based rows at the control points
    ((100,), 99.0, 109.0, 99.0)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from scipy.interpolate import CubicSpline
from torch.utils.data import Dataset

from sampling_argmax.codecs.bscan import DEFAULT_PIXEL_UM, display_intensity, standardize, frame_bscan
from sampling_argmax.data.base import LocalizationDataModule, RawInput, check_loader_args
from sampling_argmax.data.images import IMAGE_SUFFIXES, read_raw
from sampling_argmax.data.validation import DataError, DataReport, check_inside_image

__all__ = [
    "BOUNDARY_NAMES",
    "NUM_BOUNDARIES",
    "MSHC_SPLIT",
    "VolScan",
    "read_vol",
    "read_delineation",
    "control_points_to_rows",
    "OCTBScans",
    "MSHCDataModule",
    "find_mshc_pairs",
    "BScanPredict",
]

BOUNDARY_NAMES = ("ILM", "RNFL-GCL", "IPL-INL", "INL-OPL", "OPL-ONL", "ELM", "IS-OS", "OS-RPE", "BM")
NUM_BOUNDARIES = len(BOUNDARY_NAMES)
#: Delineation cells (0-based) of the 11-cell layout that hold no boundary (1-based cells 3 and 11).
UNUSED_CELLS = (2, 10)

#: The official split (He et al., MICCAI 2019; the reference pipeline's README): train hc09-hc14 + ms13-ms21
#: with hc09, ms13, ms14 held out for validation; test hc01-hc08 + ms01-ms12 (the first 20 subjects).
MSHC_SPLIT: dict[str, tuple[str, ...]] = {
    "train": tuple(f"hc{i:02d}" for i in range(10, 15)) + tuple(f"ms{i:02d}" for i in range(15, 22)),
    "val": ("hc09", "ms13", "ms14"),
    "test": tuple(f"hc{i:02d}" for i in range(1, 9)) + tuple(f"ms{i:02d}" for i in range(1, 13)),
}


# ---------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class VolScan:
    """A Heyex ``.vol`` volume: ``bscans`` (N, H, W) float32 raw reflectivity in [0, 1] (invalid samples 0),
    ``pixel_um`` the axial (row) pixel size from the header (µm), ``scale_x_um`` the A-scan spacing (µm)."""

    path: Path
    bscans: np.ndarray
    pixel_um: float
    scale_x_um: float


def read_vol(path: str | Path) -> VolScan:
    """Read a Heidelberg Heyex ``.vol`` file with eyepy's reader (construct-based, also used to write test files).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is truncated or not a ``.vol`` export (naming the file).
    """
    import construct
    from eyepy.io.he.vol_reader import HeVolReader

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such .vol file; point --data.data_root at the MSHC folder (vol/, delineation/)")
    try:
        parsed = HeVolReader(path).parsed_file
        bscans = np.stack([np.asarray(b.data, dtype=np.float32) for b in parsed.bscans]) if parsed.bscans else None
    except (construct.ConstructError, ValueError, OverflowError, MemoryError) as error:
        raise ValueError(
            f"{path}: not a readable Heidelberg .vol file ({type(error).__name__}: {str(error).splitlines()[0][:120]}); "
            "the file is truncated or not a Heyex .vol export: download it again"
        ) from None
    if bscans is None or bscans.ndim != 3 or min(bscans.shape) == 0:
        raise ValueError(f"{path}: the .vol file holds no B-scans")
    # Heyex marks samples outside the scan with float32 max; reflectivities are in [0, 1]
    bscans = np.where(np.isfinite(bscans) & (bscans <= 1.0) & (bscans >= 0.0), bscans, 0.0).astype(np.float32)
    scale_y_mm = float(parsed.scale_y)
    pixel_um = scale_y_mm * 1000.0 if np.isfinite(scale_y_mm) and 0 < scale_y_mm < 1 else DEFAULT_PIXEL_UM
    return VolScan(path, bscans, pixel_um, float(parsed.scale_x) * 1000.0)


def control_points_to_rows(points: np.ndarray, num_ascans: int) -> np.ndarray:
    """One boundary's control points -> its row in every A-scan, as the MSHC delineation tools interpolate.

    Args:
        points: (n, 2) 1-based (x = A-scan, y = row) control points, any order; n >= 2.
        num_ascans: W, the B-scan width.

    Returns:
        (W,) float64 0-based rows (pixel centres at integers): the natural cubic spline through the points in
        their index (segment i spans x_i..x_{i+1} linearly), the end values held outside the first/last point.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    order = np.argsort(points[:, 0], kind="stable")
    x, first = np.unique(points[order, 0], return_index=True)  # duplicate x: the first one counts
    y = points[order, 1][first]
    if x.size < 2:
        return np.full(num_ascans, y[0] - 1.0 if y.size else np.nan)
    spline = CubicSpline(np.arange(x.size, dtype=np.float64), y, bc_type="natural")
    columns = np.arange(1, num_ascans + 1, dtype=np.float64)  # 1-based A-scans
    inside = (columns >= x[0]) & (columns <= x[-1])
    segment = np.clip(np.searchsorted(x, columns[inside], side="right") - 1, 0, x.size - 2)
    parameter = segment + (columns[inside] - x[segment]) / (x[segment + 1] - x[segment])
    rows = np.empty(num_ascans)
    rows[inside] = spline(parameter)
    rows[columns < x[0]] = y[0]
    rows[columns > x[-1]] = y[-1]
    return rows - 1.0


def _clamp_order(rows: np.ndarray) -> np.ndarray:
    """(..., 9, W): each boundary on or below the one above it (the tools' rule after the spline fit)."""
    out = rows.copy()
    for b in range(1, out.shape[-2]):
        out[..., b, :] = np.fmax(out[..., b, :], out[..., b - 1, :])
    return out


def read_delineation(path: str | Path, num_bscans: int | None = None, num_ascans: int | None = None) -> np.ndarray:
    """A delineation ``.mat`` -> (N, 9, W) float64 0-based boundary rows; NaN where a B-scan or boundary is unlabeled.

    Args:
        path: the ``.mat`` file (``control_pts`` or ``bd_pts``).
        num_bscans, num_ascans: the volume's N and W when known (checked; W is needed to interpolate control
            points -- None = the largest control-point x).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a MATLAB file, neither key, a number of boundaries other than 9 (or 11 with the two
            unused cells), or B-scans/A-scans that do not match the volume (each naming the file).
    """
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such delineation .mat; each .vol needs delineation/<same name>.mat")
    try:
        mat = loadmat(path)
    except (MatReadError, ValueError, OSError, TypeError, NotImplementedError) as error:
        raise ValueError(f"{path}: not a readable MATLAB .mat file ({error}); the file is truncated or of another "
                         "kind (v7.3/HDF5 files: re-save with save(..., '-v7'))") from None
    if "bd_pts" in mat:
        dense = mat["bd_pts"]
        if not isinstance(dense, np.ndarray) or dense.dtype == bool or not np.issubdtype(dense.dtype, np.number):
            raise DataError(f"{path}: bd_pts holds {getattr(dense, 'dtype', type(dense).__name__)} values; it must be "
                            "a numeric array of 1-based rows (A-scans x B-scans x boundaries)")
        dense = np.asarray(dense, dtype=np.float64)
        if np.isinf(dense).any():
            raise DataError(f"{path}: bd_pts holds infinite rows; mark an unlabeled boundary with NaN or 0, not inf")
        if dense.ndim == 2:  # one B-scan: (A-scans, boundaries)
            dense = dense[:, None, :]
        if dense.ndim != 3 or dense.shape[2] not in (NUM_BOUNDARIES, 11):
            raise ValueError(f"{path}: bd_pts has shape {dense.shape}; expected (A-scans, B-scans, 9) or "
                             "(A-scans, B-scans, 11) with cells 3 and 11 unused")
        if dense.shape[2] == 11:
            dense = np.delete(dense, UNUSED_CELLS, axis=2)
        rows = np.transpose(dense, (1, 2, 0)) - 1.0  # (N, 9, W), 0-based
        labeled = np.nansum(np.abs(dense), axis=(0, 2)) > 0  # the tools' rule: an all-zero B-scan is unlabeled
        rows[~labeled] = np.nan
    elif "control_pts" in mat:
        cells = np.asarray(mat["control_pts"], dtype=object)
        if cells.ndim == 1:
            cells = cells[None]
        if cells.ndim != 2 or cells.shape[1] not in (NUM_BOUNDARIES, 11):
            raise ValueError(f"{path}: control_pts has shape {cells.shape}; expected (B-scans, 11) cells (cells 3 and "
                             "11 unused) or (B-scans, 9)")
        if cells.shape[1] == 11:
            cells = np.delete(cells, UNUSED_CELLS, axis=1)
        width = num_ascans
        if width is None:
            xs = [np.asarray(c, float).reshape(-1, 2)[:, 0].max() for c in cells.ravel() if np.size(c) >= 2]
            width = int(round(max(xs))) if xs else 0
        rows = np.full((cells.shape[0], NUM_BOUNDARIES, width), np.nan)
        for i in range(cells.shape[0]):
            for b in range(NUM_BOUNDARIES):
                try:
                    points = np.asarray(cells[i, b], dtype=np.float64)
                except (TypeError, ValueError):
                    raise DataError(f"{path}: control_pts cell ({i + 1}, {b + 1}) does not hold numbers "
                                    f"({np.asarray(cells[i, b]).dtype}); expected (n, 2) (x, y) control points") from None
                if points.size == 0:
                    continue
                if points.ndim != 2 or points.shape[1] != 2 or not np.all(np.isfinite(points)):
                    raise ValueError(f"{path}: control_pts cell ({i + 1}, {b + 1}) holds {points.shape} values; "
                                     "expected (n, 2) finite (x, y) control points")
                if points[:, 0].max() > width + 0.5 or points[:, 0].min() < 0.5:
                    raise ValueError(f"{path}: control_pts cell ({i + 1}, {b + 1}) has x in "
                                     f"[{points[:, 0].min():g}, {points[:, 0].max():g}] outside the B-scan's 1..{width} "
                                     "A-scans; the delineation belongs to another volume")
                rows[i, b] = control_points_to_rows(points, width)
    else:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(f"{path}: holds neither 'control_pts' nor 'bd_pts' (it has {keys}); an MSHC delineation "
                         "file has one of them")
    if num_bscans is not None and rows.shape[0] != num_bscans:
        raise ValueError(f"{path}: delineates {rows.shape[0]} B-scans but its volume has {num_bscans}; the "
                         "delineation belongs to another volume")
    if num_ascans is not None and rows.shape[2] != num_ascans:
        raise ValueError(f"{path}: delineates {rows.shape[2]} A-scans per B-scan but its volume has {num_ascans}")
    return _clamp_order(rows)


# ---------------------------------------------------------------------------------------------- preprocessing


# ---------------------------------------------------------------------------------------------- dataset


@dataclass
class _Prepared:
    """One split's B-scans, ready to index: images (N, rows, W') float16 model inputs, crop rows (N, 9, W'),
    truth (N, 9, W') original rows (NaN = unlabeled), offsets (N, W'), pixel size (N,), ids (N, 2)."""

    images: np.ndarray
    crop_rows: np.ndarray
    truth: np.ndarray
    offsets: np.ndarray
    pixel_um: np.ndarray
    ids: np.ndarray


class OCTBScans(Dataset):
    """B-scans in the task contract's form (shared by MSHC and the synthetic OCT task).

    Items: ``image`` (1, rows, W) standardized crop; ``target`` (9·W, 1) crop rows (boundary-major, k = b·W + c);
    ``target_weight`` (9·W,) 1 where labeled and inside the crop; ``to_original`` (2, 2) identity (map units are
    crop rows); ``row_offset`` (W,) float64 (original row = crop row + offset); ``truth`` (9, W) float64 original
    rows (NaN = unlabeled); ``pixel_um`` () float64; ``volume_id``, ``bscan`` () int64; ``index``.
    """

    def __init__(self, images: np.ndarray, crop_rows: np.ndarray, truth: np.ndarray, offsets: np.ndarray,
                 pixel_um: np.ndarray, ids: np.ndarray) -> None:
        self.data = _Prepared(images, crop_rows, truth, offsets, pixel_um, ids)
        self.rows = images.shape[1]

    def __len__(self) -> int:
        return self.data.images.shape[0]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} B-scans")
        d = self.data
        crop = d.crop_rows[index]  # (9, W)
        weight = np.isfinite(crop) & (crop >= -0.5) & (crop <= self.rows - 0.5)
        target = np.where(weight, crop, 0.0).reshape(-1, 1)
        return {
            "image": torch.from_numpy(d.images[index].astype(np.float32))[None],
            "target": torch.from_numpy(target.astype(np.float32)),
            "target_weight": torch.from_numpy(weight.reshape(-1).astype(np.float32)),
            "index": index,
            "to_original": torch.eye(2, dtype=torch.float64),
            "row_offset": torch.from_numpy(d.offsets[index].astype(np.float64)),
            "truth": torch.from_numpy(d.truth[index].astype(np.float64)),
            "pixel_um": torch.tensor(float(d.pixel_um[index]), dtype=torch.float64),
            "volume_id": torch.tensor(int(d.ids[index, 0])),
            "bscan": torch.tensor(int(d.ids[index, 1])),
        }


_SUBJECT = re.compile(r"^((?:hc|ms)\d+)", re.IGNORECASE)


def find_mshc_pairs(root: Path) -> dict[str, tuple[Path, Path]]:
    """subject (``hc01``) -> (.vol, delineation .mat) under ``root`` (``vol/`` and ``delineation/``, or flat).

    Raises ``FileNotFoundError`` for a ``.vol`` without its delineation and ``ValueError`` for two volumes
    of one subject (naming the files).
    """
    vol_folder = root / "vol" if (root / "vol").is_dir() else root
    mat_folder = root / "delineation" if (root / "delineation").is_dir() else root
    pairs: dict[str, tuple[Path, Path]] = {}
    for vol in sorted(vol_folder.glob("*.vol")):
        match = _SUBJECT.match(vol.name)
        if not match:
            continue
        subject = match.group(1).lower()
        mat = mat_folder / f"{vol.stem}.mat"
        if not mat.is_file():
            raise FileNotFoundError(f"{vol}: its delineation {mat} does not exist; put the manual delineation "
                                    "(same name, .mat) under delineation/")
        if subject in pairs:
            raise ValueError(f"{vol} and {pairs[subject][0]} are both subject {subject}; keep one volume per subject")
        pairs[subject] = (vol, mat)
    return pairs


def prepare_volume(vol_path: Path, mat_path: Path, rows: int, bottom_margin_um: float, column_step: int,
                   width: int | None, report: DataReport | None = None) -> tuple[np.ndarray, ...]:
    """Read, flatten and crop one volume's labeled B-scans -> (images, crop_rows, truth, offsets, pixel_um, bscans).

    Boundary rows must lie in the B-scan (:func:`~sampling_argmax.data.validation.check_inside_image`'s rule);
    B-scans without a delineation are dropped, as the format intends, and counted in ``report``.
    """
    scan = read_vol(vol_path)
    num, height, scan_width = scan.bscans.shape
    if width is not None and scan_width != width:
        raise ValueError(f"{vol_path}: B-scans are {scan_width} A-scans wide but the data module expects "
                         f"width={width}; set --data.init_args.width {scan_width}")
    truth = read_delineation(mat_path, num, scan_width)
    labeled = np.where(np.isfinite(truth).any(axis=(1, 2)))[0]
    if labeled.size == 0:
        raise ValueError(f"{mat_path}: no B-scan is delineated")
    for i in range(num):
        if i not in labeled:
            if report is not None:
                report.drop("B-scan not delineated", f"{mat_path} B-scan {i}")
            continue
        columns = np.broadcast_to(np.arange(scan_width, dtype=np.float64), truth[i].shape)
        points = np.stack([columns, truth[i]], -1).reshape(-1, 2)
        check_inside_image(points, np.isfinite(points[:, 1]), scan_width, height, f"{mat_path} B-scan {i}",
                           "boundary row (boundary-major index)",
                           fix="the delineation belongs to another volume, or its rows are not 1-based pixels")
        if report is not None:
            report.keep()
    images, crops, truths, offsets = [], [], [], []
    for i in labeled:
        image, flat, columns = frame_bscan(display_intensity(scan.bscans[i]), scan.pixel_um, rows,
                                           bottom_margin_um, column_step)
        images.append(image)
        crops.append(flat.to_crop(truth[i])[:, columns])
        truths.append(truth[i][:, columns])
        offsets.append(flat.row_offset[columns])
    return (np.stack(images), np.stack(crops), np.stack(truths), np.stack(offsets),
            np.full(labeled.size, scan.pixel_um), labeled)


# ---------------------------------------------------------------------------------------------- predict on raw files


@lru_cache(maxsize=2)
def _read_vol_once(path: Path, size: int, mtime_ns: int) -> VolScan:  # a volume's B-scans are framed one by one
    return read_vol(path)  # keyed by the file's size and mtime: a replaced volume is read again


class BScanPredict:
    """``predict --input`` for the OCT data modules (mixed in): B-scans in, boundary rows out.

    Inputs: a Heyex ``.vol`` (one row per B-scan, named ``<file>:b<i>``, with its header's pixel size), a grey
    image file (display scale, as Heyex exports B-scans; 8 or 16 bit) or a ``.npy``/array (H, W) of display
    intensities in [0, 1] (pixel size: the module's default). The framing is the evaluation's; keypoint
    ``b·W' + c`` (names ``<boundary>@<A-scan>``) comes back as (A-scan column, row) of the original B-scan.
    Subclasses set ``rows``, ``width``, ``column_step``, ``bottom_margin_um`` and ``flatten`` (False: inputs
    are already flattened crops of ``rows`` x ``width``, as the synthetic task renders them).
    """

    predict_suffixes = (".vol", ".npy", *IMAGE_SUFFIXES)
    keypoint_groups = NUM_BOUNDARIES
    flatten = True
    column_step = 1
    bottom_margin_um = 60.0
    pixel_um = DEFAULT_PIXEL_UM

    @property
    def keypoint_names(self) -> list[str]:
        return [f"{name}@{c}" for name in BOUNDARY_NAMES for c in range(0, self.width, self.column_step)]

    def raw_inputs(self, path: Path, boxes: Path | None = None) -> list[RawInput]:
        raws = super().raw_inputs(path, boxes)
        return [one for raw in raws for one in self._bscans(raw)]

    def _bscans(self, raw: RawInput) -> list[RawInput]:
        """A .vol stands for its B-scans; an unreadable one stays one input, which fails on its own row."""
        if not (isinstance(raw.source, Path) and raw.source.suffix.lower() == ".vol"):
            return [raw]
        try:
            count = self._volume(raw.source).bscans.shape[0]
        except (OSError, ValueError):
            return [raw]
        return [RawInput(raw.source, f"{raw.name}:b{i}", extra={"bscan": i}) for i in range(count)]

    @staticmethod
    def _volume(path: Path) -> VolScan:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such .vol file")
        stat = path.stat()
        return _read_vol_once(path.resolve(), stat.st_size, stat.st_mtime_ns)

    def _display(self, raw: RawInput) -> tuple[np.ndarray, float]:
        """(H, W) display intensities of one raw B-scan and its axial pixel size (µm)."""
        if isinstance(raw.source, Path) and raw.source.suffix.lower() == ".vol":
            scan = self._volume(raw.source)
            bscan = raw.extra.get("bscan", 0 if scan.bscans.shape[0] == 1 else None)
            if bscan is None:
                raise ValueError(f"{raw.name}: the volume holds {scan.bscans.shape[0]} B-scans; give the file to "
                                 "`predict --input` or Predictor.inputs(), which make one input per B-scan")
            return display_intensity(scan.bscans[bscan]), scan.pixel_um
        image = read_raw(raw.source, raw.name, 2)  # image files: grey levels scaled to [0, 1]
        if isinstance(raw.source, np.ndarray) and raw.source.dtype in (np.uint8, np.uint16):
            image = image / np.float32(np.iinfo(raw.source.dtype).max)  # as an image file of that depth
        return image, self.pixel_um

    def display(self, raw: RawInput) -> np.ndarray:
        image, _ = self._display(raw)
        grey = np.clip(np.asarray(image, np.float64) * 255, 0, 255).round().astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)

    def prepare(self, raw: RawInput) -> dict:
        image, pixel_um = self._display(raw)
        columns = np.arange(0, self.width, self.column_step)
        if self.flatten:
            if image.shape[1] != self.width:
                raise ValueError(f"{raw.name}: {image.shape[1]} A-scans wide, but the model reads B-scans of "
                                 f"{self.width}; resample it to {self.width} A-scans")
            crop, flat, kept = frame_bscan(image, pixel_um, self.rows, self.bottom_margin_um, self.column_step)
            offset = flat.row_offset[kept]
        else:
            if image.shape != (self.rows, self.width):
                raise ValueError(f"{raw.name}: shape {image.shape}, but the model reads flattened crops of "
                                 f"{(self.rows, self.width)}; crop or resize it")
            crop, offset = standardize(image), np.zeros(self.width)
        matrix = np.zeros((NUM_BOUNDARIES, len(columns), 3, 2))  # crop row -> (column, original row)
        matrix[..., 0, 1] = columns
        matrix[..., 1, 0] = 1.0
        matrix[..., 1, 1] = offset
        matrix[..., 2, 1] = 1.0
        return {"image": torch.from_numpy(crop.astype(np.float32))[None],
                "to_original": torch.from_numpy(matrix.reshape(-1, 3, 2)), "pixel_um": pixel_um}


class MSHCDataModule(BScanPredict, LocalizationDataModule):
    """MSHC (35 Spectralis macular volumes, He et al. 2019) in its official layout and split.

    Args:
        data_root: the folder with ``vol/`` and ``delineation/`` (or both kinds of files side by side); None =
            ``$SAMPLING_ARGMAX_DATA/mshc``.
        rows: crop height (128, the paper's input 128 x 1024).
        width: A-scans per B-scan in the files (1024 for MSHC); each volume is checked against it.
        column_step: keep every ``column_step``-th A-scan (1 = all, the paper's; CPU configs use more). MAD is
            then measured on the kept A-scans.
        bottom_margin_um: the crop ends this far below the flattened BM (60 µm).
        train_subjects, val_subjects, test_subjects: None = :data:`MSHC_SPLIT`; a subject missing from the
            folder is an error.
        batch_size, num_workers: loaders (the paper: batch 2).
    """

    num_keypoints = 0  # set per instance: 9 x width / column_step
    flip_pairs = None  # a mirrored B-scan reverses the columns, i.e. permutes keypoints: no flip test
    data_folder = "mshc"

    def __init__(self, data_root: str | None = None, rows: int = 128, width: int = 1024, column_step: int = 1,
                 bottom_margin_um: float = 60.0, train_subjects: list[str] | None = None,
                 val_subjects: list[str] | None = None, test_subjects: list[str] | None = None,
                 batch_size: int = 2, num_workers: int = 0) -> None:
        super().__init__()
        check_loader_args(batch_size, num_workers)
        if rows < 8 or width < 1 or column_step < 1 or bottom_margin_um < 0:
            raise ValueError(f"need rows >= 8, width >= 1, column_step >= 1, bottom_margin_um >= 0; got {rows}, "
                             f"{width}, {column_step}, {bottom_margin_um}")
        self.save_hyperparameters()
        self.task = "oct"
        self.rows, self.width, self.column_step = rows, width, column_step
        self.columns = len(range(0, width, column_step))
        self.num_keypoints = NUM_BOUNDARIES * self.columns
        self.bottom_margin_um = bottom_margin_um
        self.batch_size, self.num_workers = batch_size, num_workers
        self._data_root, self._root = data_root, None  # resolved when data is first needed (setup)
        self.subjects = {
            "train": tuple(train_subjects) if train_subjects is not None else MSHC_SPLIT["train"],
            "val": tuple(val_subjects) if val_subjects is not None else MSHC_SPLIT["val"],
            "test": tuple(test_subjects) if test_subjects is not None else MSHC_SPLIT["test"],
        }
        self._datasets: dict[str, OCTBScans] = {}

    @property
    def root(self) -> Path:
        """The MSHC folder (``data_root`` or ``$SAMPLING_ARGMAX_DATA/mshc``); a clear error when it does not exist.

        Resolved at first use, not at construction, so a config can be built (checked, printed) without the data.
        """
        if self._root is None:
            self._root = self.resolve_data_root(self._data_root)
        return self._root

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (1, self.rows, self.columns)

    @property
    def map_shape(self) -> tuple[int, ...]:
        return (self.rows,)

    def references(self, stage: str) -> dict:
        split = "val" if stage in ("val", "validate") else stage
        return {"split": f"MSHC {split}: {', '.join(self.subjects.get(split, ()))}", "boundary_names": BOUNDARY_NAMES}

    def dataset(self, split: str) -> OCTBScans:
        """The prepared B-scans of one split (read and preprocessed once)."""
        if split not in self._datasets:
            pairs = find_mshc_pairs(self.root)
            missing = [s for s in self.subjects[split] if s not in pairs]
            if missing:
                raise FileNotFoundError(
                    f"{self.root}: the {split} split needs subjects {missing}, which have no .vol under "
                    f"{self.root / 'vol'}; download the full MSHC data, or list the subjects you have with "
                    f"--data.init_args.{split}_subjects"
                )
            report = DataReport(f"{split}: MSHC {', '.join(self.subjects[split])}")
            parts = [prepare_volume(*pairs[s], self.rows, self.bottom_margin_um, self.column_step, self.width, report)
                     for s in self.subjects[split]]
            self.add_data_report(split, report)
            ids = np.concatenate([np.stack([np.full(len(p[5]), v), p[5]], 1) for v, p in enumerate(parts)])
            self._datasets[split] = OCTBScans(*(np.concatenate([p[i] for p in parts]) for i in range(5)), ids)
        return self._datasets[split]

    def setup(self, stage: str | None = None) -> None:
        splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for split in splits.get(stage or "fit", ("train", "val", "test")):
            self.dataset(split)


