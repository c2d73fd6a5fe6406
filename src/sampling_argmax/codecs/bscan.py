"""OCT B-scan framing (retina layer boundaries): column flattening to Bruch's membrane and the crop.

Preprocessing, as in the reference pipeline of He et al. (2019): intensities ``raw^(1/4)`` (the usual Spectralis
display scale, invalid samples to 0); Bruch's membrane estimated *from the image* (labels never frame an input),
each A-scan shifted by a whole number of rows so that the estimate lies on the middle row; then a crop of
``rows`` rows ending ``bottom_margin_um`` below it, standardized. Whole-row shifts carry the boundaries exactly:
``original row = crop row + row_offset[column]`` (:class:`FlatCrop`), which is the task's ``to_original``.

Example:
    >>> import numpy as np
    >>> flat = flatten_crop(np.zeros((64, 8)), rows=16, bm=np.full(8, 40.0))
    >>> flat.image.shape, float(flat.to_original(np.zeros(8))[0] - flat.to_crop(np.zeros(8))[0] > 0)
    ((16, 8), 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["DEFAULT_PIXEL_UM", "FlatCrop", "display_intensity", "estimate_bruchs_membrane", "flatten_crop",
           "frame_bscan", "standardize"]


#: Axial pixel size of Spectralis B-scans (µm) when a file's header does not give one.
DEFAULT_PIXEL_UM = 3.9


def display_intensity(raw: np.ndarray) -> np.ndarray:
    """Raw Heyex reflectivity -> ``raw^(1/4)`` in [0, 1] (the usual Spectralis display scale); invalid -> 0."""
    raw = np.asarray(raw, dtype=np.float64)
    return np.clip(np.where(np.isfinite(raw), raw, 0.0), 0.0, 1.0) ** 0.25


def estimate_bruchs_membrane(image: np.ndarray, pixel_um: float = DEFAULT_PIXEL_UM) -> np.ndarray:
    """Bruch's membrane per A-scan, from the image alone (no labels): (H, W) display intensities -> (W,) rows.

    The ILM is the strongest dark-to-bright step from the vitreous; BM is the strongest bright-to-dark step
    175-500 µm below it (the RPE's lower edge; the window skips the bright RNFL near the optic disc, which
    defeats a brightest-row rule). Both are median-filtered and smoothed across A-scans (W/16, W/100).
    On the real Spectralis scan of the tests it is within 2 rows of the manual BM on average.
    """
    image = np.asarray(image, dtype=np.float64)
    height, width = image.shape
    smooth = ndimage.gaussian_filter(image, (2.0, 4.0))
    gradient = np.gradient(smooth, axis=0)
    ilm = ndimage.median_filter(gradient.argmax(0).astype(np.float64), size=max(width // 16, 1) | 1, mode="nearest")
    rows = np.arange(height)[:, None]
    window = (rows >= ilm + 175.0 / pixel_um) & (rows <= ilm + 500.0 / pixel_um)
    window[:, ~window.any(0)] = True  # too close to the bottom: search the whole A-scan
    bm = np.where(window, gradient, np.inf).argmin(0).astype(np.float64)
    bm = ndimage.median_filter(bm, size=max(width // 16, 1) | 1, mode="nearest")
    return ndimage.gaussian_filter1d(bm, max(width / 100.0, 0.5), mode="nearest")


@dataclass(frozen=True)
class FlatCrop:
    """A flattened, cropped B-scan: ``image`` (rows, W) display intensities (0 outside the scan),
    ``row_offset`` (W,) float64 with original row = crop row + row_offset, ``bm`` (W,) the BM estimate used."""

    image: np.ndarray
    row_offset: np.ndarray
    bm: np.ndarray

    def to_crop(self, rows: np.ndarray) -> np.ndarray:
        """(..., W) original rows -> crop rows (exact: whole-row shifts)."""
        return np.asarray(rows, dtype=np.float64) - self.row_offset

    def to_original(self, rows: np.ndarray) -> np.ndarray:
        """(..., W) crop rows -> original rows."""
        return np.asarray(rows, dtype=np.float64) + self.row_offset


def flatten_crop(image: np.ndarray, pixel_um: float = DEFAULT_PIXEL_UM, rows: int = 128,
                 bottom_margin_um: float = 60.0, bm: np.ndarray | None = None) -> FlatCrop:
    """Flatten a B-scan to Bruch's membrane (moved to the middle row) and crop ``rows`` rows ending below it.

    Args:
        image: (H, W) display intensities (:func:`display_intensity`).
        pixel_um: axial pixel size (µm); sets the bottom margin in rows.
        rows: crop height (128 in the paper).
        bottom_margin_um: the crop ends this far below the flattened BM (60 µm, the reference pipeline's).
        bm: (W,) BM rows to flatten to; None = :func:`estimate_bruchs_membrane` of the image.

    Every A-scan is shifted by a whole number of rows (no resampling), so image samples and boundary rows move
    together exactly; rows beyond the B-scan read as 0.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"image of shape {image.shape} must be one (H, W) B-scan")
    height, width = image.shape
    if rows < 8 or bottom_margin_um < 0:
        raise ValueError(f"need rows >= 8 and bottom_margin_um >= 0; got {rows}, {bottom_margin_um}")
    bm = estimate_bruchs_membrane(image, pixel_um) if bm is None else np.asarray(bm, dtype=np.float64)
    middle = height // 2
    shift = np.round(bm).astype(np.int64) - middle  # flattened row = original row - shift
    top = middle + int(round(bottom_margin_um / pixel_um)) - (rows - 1)
    offset = shift + top  # crop row r of column c = original row r + offset[c]
    source = np.arange(rows)[:, None] + offset[None, :]
    valid = (source >= 0) & (source < height)
    crop = np.where(valid, image[np.clip(source, 0, height - 1), np.arange(width)[None, :]], 0.0)
    return FlatCrop(crop.astype(np.float32), offset.astype(np.float64), bm)


def standardize(image: np.ndarray) -> np.ndarray:
    """The model input of every OCT task: the crop minus its mean over its std (float32)."""
    image = np.asarray(image, dtype=np.float64)
    return ((image - image.mean()) / max(float(image.std()), 1e-6)).astype(np.float32)


def frame_bscan(image: np.ndarray, pixel_um: float, rows: int, bottom_margin_um: float,
                column_step: int) -> tuple[np.ndarray, FlatCrop, slice]:
    """The model input of one B-scan of display intensities, as every MSHC split and ``predict`` frame it.

    Returns the standardized flattened crop of the kept columns, (rows, W') float16 (the datasets' storage
    precision, so a predicted file scores exactly as the same B-scan in ``test``), the :class:`FlatCrop`
    (all columns) and the column slice.
    """
    columns = slice(None, None, column_step)
    flat = flatten_crop(image, pixel_um, rows, bottom_margin_um)
    return standardize(flat.image[:, columns]).astype(np.float16), flat, columns
