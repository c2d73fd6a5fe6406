"""One set of record checks for every reader (MTFL, COCO, Human3.6M/MPII, OCT, KeypointNet, point clouds).

Each reader calls these once, where it reads a record; a violation is a :class:`DataError` (a ``ValueError``)
that names the file, the record (image id, line number or index) and the fix. ``where`` is that file and
record, e.g. ``"person_keypoints_val2017.json: annotation #12 (id 183126)"``; messages read ``<where>:
<what is wrong>; <fix>``.

The rules, one definition each:

* numbers where numbers belong: :func:`numbers` takes json/Python numbers (or numeric arrays) only; a
  string (``"12"``), a bool, ``None`` or a nested object is refused, never converted;
* finite coordinates (:func:`numbers` refuses NaN and infinity; point clouds, joints, centres and scales also
  ``|x| <= MAX_COORDINATE``);
* keypoints inside the image (:func:`check_inside_image`): a labeled keypoint lies within the image's
  pixel extent grown by a tolerance of ``max(1 px, 5 % of the image's larger side)`` (annotators click on
  the border, truncated limbs are estimated just outside; a landmark at x = -5000 is a fault);
* the image size an annotation states equals the image file's (:func:`check_image_size`; the header is read,
  not the pixels, and cached per file by its size and modification time);
* ``num_keypoints`` equals the count of labeled keypoints (:func:`check_num_keypoints`);
* no repeated record, by id or by identical content (:class:`UniqueRecords`);
* a centre and scale that are present, numeric, finite and (scale) positive (:func:`check_centre_scale`);
* no empty list where the format requires entries (:func:`check_nonempty`).

Where the format's documented convention is to skip a record (COCO crowd regions and people without a
labeled keypoint, a partial KeypointNet download with ``missing_clouds="skip"``, undelineated OCT B-scans),
the reader counts it in a :class:`DataReport` (records read, kept, dropped by reason), which is printed
and saved in the run folder (``data_report.json``, see
:meth:`~sampling_argmax.data.base.LocalizationDataModule.add_data_report`).

Example:
    >>> numbers([1, 2.5], "a.json: entry 0", "center").tolist()
    [1.0, 2.5]
    >>> numbers(["1", 2], "a.json: entry 0", "center")
    Traceback (most recent call last):
        ...
    sampling_argmax.data.validation.DataError: a.json: entry 0: 'center' must hold numbers, got ['1', 2] (a string where a number belongs); write json numbers (1.5, not "1.5")
    >>> report = DataReport("val: person_keypoints_val2017.json")
    >>> report.keep(); report.drop("crowd region (iscrowd=1)", "annotation #3")
    >>> print(report.summary())
    data report, val: person_keypoints_val2017.json: 2 read, 1 kept, 1 dropped (crowd region (iscrowd=1): 1, e.g. annotation #3)
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "MAX_COORDINATE",
    "DataError",
    "DataReport",
    "UniqueRecords",
    "check_centre_scale",
    "check_image_size",
    "check_inside_image",
    "check_nonempty",
    "check_num_keypoints",
    "check_points",
    "image_size",
    "inside_tolerance",
    "integer",
    "number",
    "numbers",
]

#: Largest magnitude of a coordinate (point clouds, joints, centres) or scale: beyond it a value is corrupt or in
#: wrong units, and squares and sums of it overflow float32.
MAX_COORDINATE = 1e6


class DataError(ValueError):
    """A data file breaks a rule of its format; the message names the file, the record and the fix."""


# ---------------------------------------------------------------------------------------------- numbers


def _kind_of_non_number(value: Any) -> str | None:
    """Why ``value`` (a json value, list or array) is not all numbers; None when it is."""
    if isinstance(value, np.ndarray):
        if value.dtype == bool or not (np.issubdtype(value.dtype, np.number)):
            return f"an array of {value.dtype}"
        return None
    if isinstance(value, (list, tuple)):
        for item in value:
            reason = _kind_of_non_number(item)
            if reason is not None:
                return reason
        return None
    if isinstance(value, (bool, np.bool_)):
        return "true/false where a number belongs"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return None
    if isinstance(value, str):
        return "a string where a number belongs"
    if value is None:
        return "null where a number belongs"
    return f"a {type(value).__name__} where a number belongs"


def numbers(value: Any, where: str, name: str, shape: tuple[int, ...] | None = None,
            fix: str = "") -> np.ndarray:
    """``value`` (a number, a list of numbers, nested lists or a numeric array) as finite float64.

    Args:
        shape: the required shape (``-1`` = any length on that axis); None = flattened to 1D, any length.

    Raises:
        DataError: a string, bool, null or object among the values, ragged lists, NaN or infinity, or another
            shape; naming ``where`` and ``name``.
    """
    shown = repr(value) if len(repr(value)) <= 120 else repr(value)[:117] + "..."
    reason = _kind_of_non_number(value)
    if reason is not None:
        raise DataError(f"{where}: {name!r} must hold numbers, got {shown} ({reason}); "
                        f"{fix or 'write json numbers (1.5, not ' + chr(34) + '1.5' + chr(34) + ')'}")
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):  # ragged lists
        raise DataError(f"{where}: {name!r} must be a list of numbers of one shape, got {shown}; "
                        f"{fix or 'fix the record'}") from None
    if shape is None:
        array = array.reshape(-1)
    elif array.ndim != len(shape) or any(want not in (-1, got) for want, got in zip(shape, array.shape)):
        wanted = " x ".join("n" if s == -1 else str(s) for s in shape) or "one number"
        raise DataError(f"{where}: {name!r} must be {wanted}, got shape {array.shape}: {shown}; "
                        f"{fix or 'fix the record'}")
    if not np.all(np.isfinite(array)):
        raise DataError(f"{where}: {name!r} holds NaN or infinite values: {shown}; "
                        f"{fix or 'give finite numbers (leave an unknown keypoint unlabeled instead)'}")
    return array


def number(value: Any, where: str, name: str, positive: bool = False, fix: str = "") -> float:
    """One finite number (``positive``: > 0); a :class:`DataError` naming ``where`` and ``name`` otherwise."""
    out = float(numbers(value, where, name, shape=(), fix=fix))
    if positive and not out > 0:
        raise DataError(f"{where}: {name!r} must be > 0, got {value!r}; {fix or 'give a positive number'}")
    return out


def integer(value: Any, where: str, name: str, minimum: int | None = None, fix: str = "") -> int:
    """One integer (a json integer, or a float with no fractional part); >= ``minimum`` when given."""
    out = number(value, where, name, fix=fix)
    if out != math.floor(out):
        raise DataError(f"{where}: {name!r} must be an integer, got {value!r}; {fix or 'give a whole number'}")
    if minimum is not None and out < minimum:
        raise DataError(f"{where}: {name!r} must be >= {minimum}, got {value!r}; {fix or 'fix the record'}")
    return int(out)


def check_points(points: np.ndarray, where: str, name: str = "points", limit: float = MAX_COORDINATE) -> np.ndarray:
    """Finite coordinates of magnitude at most ``limit`` (point clouds, 3D joints)."""
    points = np.asarray(points)
    finite = np.isfinite(points)
    if not finite.all():
        bad = np.argwhere(~finite)[0].tolist()
        raise DataError(f"{where}: {name} holds a NaN or infinite coordinate (at index {bad}); fix or remove it")
    if points.size and float(np.abs(points).max()) > limit:
        bad = np.unravel_index(int(np.abs(points).argmax()), points.shape)
        raise DataError(f"{where}: {name} holds the coordinate {points[bad]:g} (at index {list(map(int, bad))}), "
                        f"beyond +-{limit:g}: a corrupt value or wrong units; rescale or fix the file")
    return points


# ---------------------------------------------------------------------------------------------- images


def inside_tolerance(width: float, height: float) -> float:
    """The stated rule's tolerance (pixels) around an image: max(1 px, 5 % of its larger side)."""
    return max(1.0, 0.05 * max(width, height))


def check_inside_image(points: np.ndarray, labeled: np.ndarray | None, width: float, height: float, where: str,
                       name: str = "keypoints", fix: str = "") -> None:
    """Every labeled (K, 2) ``points`` lies in the image's pixel extent [-0.5, W - 0.5] x [-0.5, H - 0.5]
    (pixel centres at integers) grown by :func:`inside_tolerance`."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    labeled = np.ones(len(points), bool) if labeled is None else np.asarray(labeled, bool).reshape(-1)
    margin = 0.5 + inside_tolerance(width, height)
    outside = labeled & ((points[:, 0] < -margin) | (points[:, 0] > width - 1 + margin)
                         | (points[:, 1] < -margin) | (points[:, 1] > height - 1 + margin))
    if outside.any():
        k = int(np.flatnonzero(outside)[0])
        raise DataError(
            f"{where}: {name} {k} at ({points[k, 0]:g}, {points[k, 1]:g}) lies outside the {width:g} x {height:g} "
            f"image (the rule: within {inside_tolerance(width, height):g} px of it); "
            f"{fix or 'fix the coordinates or the image size, or mark the keypoint unlabeled'}")


@lru_cache(maxsize=65536)
def _header_size(path: str, size: int, mtime_ns: int) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:  # lazy: reads the header, not the pixels
        return image.size


def image_size(path: str | os.PathLike, where: str = "") -> tuple[int, int]:
    """(width, height) of an image file from its header; cached per file, keyed by its size and modification
    time, so a replaced file is read again. Raises ``FileNotFoundError`` or :class:`DataError` (not an image),
    naming ``where`` (the record that names the image) and the file."""
    path = Path(path)
    stat = path.stat()
    try:
        return _header_size(os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    except (OSError, SyntaxError, ValueError) as error:
        raise DataError(f"{where + ': ' if where else ''}cannot read the header of image {path} ({error}); the "
                        "file is not an image or is damaged: replace it") from None


def check_image_size(path: str | os.PathLike, width: float, height: float, where: str, fix: str = "") -> bool:
    """The stated ``width`` x ``height`` of an annotation equals the image file's; False (nothing checked)
    when the file does not exist (reading it fails later, naming it)."""
    path = Path(path)
    if not path.is_file():
        return False
    real = image_size(path, where)
    if (round(width), round(height)) != real or width != round(width) or height != round(height):
        raise DataError(
            f"{where}: states the image is {width:g} x {height:g} but {path} is {real[0]} x {real[1]}; "
            f"{fix or 'correct width/height in the annotation file (or replace the image with the annotated one)'}")
    return True


# ---------------------------------------------------------------------------------------------- records


def check_num_keypoints(stated: Any, labeled: np.ndarray, where: str) -> None:
    """A record's ``num_keypoints`` equals its count of labeled keypoints (visibility > 0)."""
    count = int(np.count_nonzero(labeled))
    if integer(stated, where, "num_keypoints", minimum=0) != count:
        raise DataError(f"{where}: num_keypoints is {stated!r} but {count} keypoints have visibility > 0; "
                        "correct num_keypoints or the visibility flags")


def check_nonempty(value: Any, where: str, name: str, fix: str = "") -> Sequence:
    """A list (or array) that the format requires to hold entries."""
    if value is None or not hasattr(value, "__len__") or isinstance(value, (str, bytes, dict)):
        raise DataError(f"{where}: {name!r} must be a list, got {value!r:.80}; {fix or 'fix the record'}")
    if len(value) == 0:
        raise DataError(f"{where}: {name!r} is empty; the format requires entries here: "
                        f"{fix or 'fill it in or remove the record'}")
    return value


def check_centre_scale(center: Any, scale: Any, where: str, scale_name: str = "scale") -> tuple[np.ndarray, float]:
    """A person's (2,) centre (finite numbers) and scale (a positive number)."""
    fix = "give the person's box centre as [x, y] and its scale as a positive number"
    if center is None or scale is None:
        raise DataError(f"{where}: {'center' if center is None else scale_name} is missing (null); {fix}")
    center = numbers(center, where, "center", shape=(2,), fix=fix)
    scale_value = number(scale, where, scale_name, positive=True, fix=fix)
    if np.abs(center).max() > MAX_COORDINATE or scale_value > MAX_COORDINATE:
        raise DataError(f"{where}: center {center.tolist()} or {scale_name} {scale_value:g} is beyond "
                        f"{MAX_COORDINATE:g}: a corrupt value or wrong units; {fix}")
    return center, scale_value


def _content_key(content: Any) -> Hashable:
    """A canonical key of a record's content (json-like values, arrays), for duplicate detection; a tuple of
    strings, bytes and numbers is its own key (the fast path of the line readers)."""
    if isinstance(content, tuple) and all(isinstance(v, (str, bytes, int, float)) for v in content):
        return content
    def plain(value):
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, (np.integer, np.floating)):
            return value.item()
        if isinstance(value, Path):
            return str(value)
        return value
    return json.dumps(plain(content), sort_keys=True, default=str)


class UniqueRecords:
    """Refuses a record seen before, by its id or by identical content (a repeated annotation would count twice).

    Example:
        >>> seen = UniqueRecords("annotation")
        >>> seen.add(1, [10, 20], "a.json: annotation #0")
        >>> seen.add(2, [10, 20], "a.json: annotation #1")
        Traceback (most recent call last):
            ...
        sampling_argmax.data.validation.DataError: a.json: annotation #1 repeats a.json: annotation #0 (identical content); a repeated annotation would count twice: remove one of them
    """

    def __init__(self, what: str = "record") -> None:
        self.what = what
        self._ids: dict[Hashable, str] = {}
        self._contents: dict[Hashable, str] = {}

    def add(self, key: Hashable | None, content: Any, where: str) -> None:
        if key is not None:
            if not isinstance(key, Hashable):
                key = _content_key(key)
            if key in self._ids:
                raise DataError(f"{where} has the same id {key!r} as {self._ids[key]}; each {self.what} needs its "
                                "own id: remove the repeated entry or give it a new id")
            self._ids[key] = where
        if content is not None:
            text = _content_key(content)
            if text in self._contents:
                raise DataError(f"{where} repeats {self._contents[text]} (identical content); a repeated "
                                f"{self.what} would count twice: remove one of them")
            self._contents[text] = where


@dataclass
class DataReport:
    """What a reader did with a file: records read, kept, and dropped by reason (the format's conventions).

    ``drop`` keeps the first record of each reason as an example. :meth:`summary` is one line; :meth:`as_dict`
    the json that the data module saves in the run folder.
    """

    source: str
    read: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def keep(self) -> None:
        self.read += 1
        self.kept += 1

    def drop(self, reason: str, where: str) -> None:
        self.read += 1
        self.dropped[reason] += 1
        self.examples.setdefault(reason, where)

    def summary(self) -> str:
        total = sum(self.dropped.values())
        text = f"data report, {self.source}: {self.read} read, {self.kept} kept, {total} dropped"
        if total:
            text += " (" + "; ".join(f"{reason}: {count}, e.g. {self.examples[reason]}"
                                     for reason, count in sorted(self.dropped.items())) + ")"
        return text

    def as_dict(self) -> dict:
        return {"source": self.source, "read": self.read, "kept": self.kept,
                "dropped": dict(sorted(self.dropped.items())), "examples": dict(sorted(self.examples.items()))}
