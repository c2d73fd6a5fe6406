"""Reading image files, one rule for every task: the suffixes read, full decoding (a truncated file is an
error naming it, never a grey patch), RGB for colour tasks and grey levels or ``.npy`` arrays for the synthetic
and OCT tasks.

Example:
    >>> ".png" in IMAGE_SUFFIXES and ".jpg" in IMAGE_SUFFIXES
    True
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["IMAGE_SUFFIXES", "read_rgb", "read_raw"]

#: Image files the image tasks read (``predict --input`` folders, annotation images).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def read_rgb(path: Path, where: str, fix: str = "replace it with a readable image file") -> np.ndarray:
    """Decode an image fully to (H, W, 3) uint8 RGB: a truncated or corrupt file is an error naming it
    (``where``), never a grey patch."""
    try:
        with Image.open(path) as image:
            image.load()  # raises on truncated data instead of padding it with grey
            return np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{where}: image {path} does not exist") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"{where}: cannot decode image {path} ({error}); the file is truncated or not an image: "
                         f"{fix}") from None


def read_raw(source: Path | np.ndarray, name: str, dims: int) -> np.ndarray:
    """A raw synthetic input in renderer units (about [0, 1]): an array, a ``.npy`` file or (2D) an image file.

    Arrays and ``.npy`` files hold the renderer's output, (W,), (H, W) or (D, H, W) (a leading channel of 1
    is allowed); image files are grey levels scaled to [0, 1]. Raises ``ValueError`` naming ``name``.
    """
    if isinstance(source, np.ndarray):
        array = source
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{name}: no such file")
        suffix = path.suffix.lower()
        if suffix == ".npy":
            try:
                array = np.load(path, allow_pickle=False)
            except (OSError, ValueError, EOFError) as error:
                raise ValueError(f"{name}: not a readable .npy array ({error}); save it with numpy.save") from None
        elif suffix in IMAGE_SUFFIXES and dims == 2:
            try:
                with Image.open(path) as image:
                    image.load()  # raises on truncated data instead of padding it
                    grey = np.asarray(image if image.mode in ("L", "I;16", "I") else image.convert("L"))
            except (OSError, SyntaxError, ValueError) as error:
                raise ValueError(f"{name}: cannot decode the image ({error}); the file is truncated or not an "
                                 "image") from None
            array = grey.astype(np.float32) / (65535.0 if grey.dtype == np.uint16 or grey.max(initial=0) > 255 else 255.0)
        else:
            kinds = ".npy or an image file (.png, .jpg, ...)" if dims == 2 else ".npy"
            raise ValueError(f"{name}: a {dims}D synthetic model reads {kinds}, not {suffix or 'a file without suffix'}")
    array = np.asarray(array)
    if array.ndim == dims + 1 and array.shape[0] == 1:
        array = array[0]
    if not np.issubdtype(array.dtype, np.number) or array.ndim != dims:
        raise ValueError(f"{name}: expected a {dims}D array of numbers ({'(W,)' if dims == 1 else '(H, W)' if dims == 2 else '(D, H, W)'}), "
                         f"got shape {array.shape} of {array.dtype}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: holds NaN or infinite values")
    return array.astype(np.float32)
