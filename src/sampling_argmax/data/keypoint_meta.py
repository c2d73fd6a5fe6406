"""What a keypoint dataset says about its keypoints: names, skeleton, left/right flip pairs, OKS sigmas.

A COCO-format json states them in its ``categories`` entry (``keypoints``: the names, ``skeleton``: 1-based
index pairs); a landmark CSV in its header. :class:`KeypointMeta` holds them for one category, 0-based, and
:func:`category_meta` reads it from a COCO json's data with an error naming the file and the fix for every
way a category can be wrong. A checkpoint records :meth:`KeypointMeta.as_dict`, so ``predict`` needs no json.

Flip pairs are inferred from the names (:func:`infer_flip_pairs`): a name holding a side word -- ``left`` /
``right`` as a separate or CamelCase word (``left_wing``, ``wing-right``, ``LeftX``, ``leftWing``) or ``l`` /
``r`` as a separate word (``l_x``, ``x_r``, ``L.eye``) -- is paired with the name whose side word is the
other side, written the same way. ``L1``, ``leftmost``, ``lr`` hold no side word.

Example:
    >>> infer_flip_pairs(["beak", "left_wing", "right_wing", "LeftFoot", "RightFoot", "l_eye", "r_eye"])
    ((1, 2), (3, 4), (5, 6))
    >>> meta = KeypointMeta(names=("a", "left_b", "right_b"), skeleton=((0, 1), (0, 2)))
    >>> meta.flip_pairs, meta.sigmas
    (((1, 2),), (0.05, 0.05, 0.05))
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_SIGMA", "KeypointMeta", "infer_flip_pairs", "category_meta", "keypoint_categories"]

#: OKS sigma of every keypoint when ``--data.sigmas`` is not given: a round value inside COCO's own range (0.025
#: for the eyes to 0.107 for the hips; their mean is 0.067). OKS = exp(-d^2 / (2 s^2 (2 sigma)^2)), s^2 = the
#: object's area: with 0.05 a keypoint off by 10 % of the object's size scores exp(-0.5) = 0.61.
DEFAULT_SIGMA = 0.05

_SEPARATORS = r"[_\-\s.]"
_OTHER_SIDE = {"left": "right", "right": "left", "l": "r", "r": "l"}


def _side_words(name: str) -> list[tuple[int, int, str]]:
    """(start, end, word) of each side word of ``name`` (see the module docstring)."""
    found = []
    for chunk in re.finditer(rf"[^{_SEPARATORS[1:-1]}]+", name):
        text = chunk.group()
        if text.lower() in _OTHER_SIDE:  # a whole separated word: left, Right, L, r
            found.append((chunk.start(), chunk.end(), text))
            continue
        # CamelCase words inside the chunk: LeftWing, leftWing, wingRight (never single letters: L1, LWing)
        for word in re.finditer(r"[A-Z][a-z]+|^[a-z]+", text):
            if word.group().lower() in ("left", "right") and (word.end() == len(text) or text[word.end()].isupper()
                                                                or text[word.end()].isdigit()):
                found.append((chunk.start() + word.start(), chunk.start() + word.end(), word.group()))
    return found


def _mirror_word(word: str) -> str:
    other = _OTHER_SIDE[word.lower()]
    if word.isupper():
        return other.upper()
    return other.capitalize() if word[0].isupper() else other


def mirrored_name(name: str) -> str | None:
    """``name`` with each side word swapped for the other side, written the same way; None without one.

    >>> mirrored_name("LeftWingTip"), mirrored_name("wing_l"), mirrored_name("L1")
    ('RightWingTip', 'wing_r', None)
    """
    words = _side_words(name)
    if not words:
        return None
    out, last = [], 0
    for start, end, word in words:
        out += [name[last:start], _mirror_word(word)]
        last = end
    return "".join(out) + name[last:]


def infer_flip_pairs(names: Sequence[str], where: str = "the keypoint names") -> tuple[tuple[int, int], ...]:
    """(left, right) index pairs of ``names`` whose side words mirror each other, in the order of the first.

    Raises ValueError naming every name with a side word and no mirrored partner (e.g. ``left_wing`` without
    ``right_wing``), and the fix: rename it or give the pairs with ``--data.flip_pairs`` (``[]`` for none).
    """
    index = {name: k for k, name in enumerate(names)}
    pairs, unmatched, seen = [], [], set()
    for k, name in enumerate(names):
        other = mirrored_name(name)
        if other is None or k in seen:
            continue
        if other not in index:
            unmatched.append(f"{name!r} (no {other!r})")
            continue
        seen |= {k, index[other]}
        pairs.append((k, index[other]))
    if unmatched:
        raise ValueError(
            f"{where}: left/right names without a partner: {', '.join(unmatched)}. A flip must swap each left "
            "keypoint with its right one: rename the keypoints, or give the pairs with --data.flip_pairs "
            "(e.g. [[left_wing, right_wing]]; [] = no flip pairs, then with --data.flip_prob 0 and "
            "--model.flip_test false if the object has no mirror symmetry)"
        )
    return tuple(pairs)


def _index_pairs(pairs: Sequence[Sequence[Any]], names: Sequence[str], what: str, base: int = 0
                 ) -> tuple[tuple[int, int], ...]:
    """Pairs of names or ``base``-based indices -> 0-based index pairs, each checked."""
    index = {name: k for k, name in enumerate(names)}
    out = []
    for pair in pairs:
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise ValueError(f"{what}: {pair!r} is not a pair; give [a, b] of two keypoint names or indices")
        ends = []
        for end in pair:
            if isinstance(end, str) and end in index:
                ends.append(index[end])
            elif isinstance(end, int) and not isinstance(end, bool) and base <= end < len(names) + base:
                ends.append(end - base)
            else:
                raise ValueError(f"{what}: {end!r} of {list(pair)} is not one of the {len(names)} keypoints (names "
                                 f"{list(names)} or indices {base}..{len(names) - 1 + base})")
        if ends[0] == ends[1]:
            raise ValueError(f"{what}: {list(pair)} joins a keypoint with itself")
        out.append((ends[0], ends[1]))
    return tuple(out)


@dataclass(frozen=True)
class KeypointMeta:
    """The keypoints of one object category.

    Args:
        names: K unique non-empty keypoint names (output columns ``<name>_x``, flip-pair inference).
        skeleton: 0-based index pairs drawn as lines by ``predict --draw``.
        flip_pairs: (left, right) 0-based pairs swapped by a horizontal flip; None = inferred from ``names``.
        sigmas: K OKS constants; None = :data:`DEFAULT_SIGMA` each.
        category_id, category: the COCO category's id and name (the evaluation's ``category_id``).
    """

    names: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...] = ()
    flip_pairs: tuple[tuple[int, int], ...] | None = None
    sigmas: tuple[float, ...] | None = None
    category_id: int = 1
    category: str = ""
    source: str = field(default="the keypoint names", compare=False)

    def __post_init__(self) -> None:
        names = tuple(self.names)
        where = self.source
        if not names:
            raise ValueError(f"{where}: no keypoint names; a category needs its 'keypoints' list of names")
        bad = [n for n in names if not isinstance(n, str) or not n.strip()]
        if bad:
            raise ValueError(f"{where}: keypoint names must be non-empty strings, got {bad[:3]}")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"{where}: keypoint names must be unique; repeated: {duplicates}")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "skeleton", _index_pairs(self.skeleton, names, f"{where}: skeleton"))
        pairs = (infer_flip_pairs(names, where) if self.flip_pairs is None
                 else _index_pairs(self.flip_pairs, names, f"{where}: flip_pairs"))
        used = [k for pair in pairs for k in pair]
        if len(set(used)) != len(used):
            raise ValueError(f"{where}: flip_pairs {[list(p) for p in pairs]} use a keypoint twice")
        object.__setattr__(self, "flip_pairs", pairs)
        sigmas = (DEFAULT_SIGMA,) * len(names) if self.sigmas is None else tuple(float(s) for s in self.sigmas)
        if len(sigmas) != len(names) or not all(0 < s < float("inf") for s in sigmas):
            raise ValueError(f"{where}: sigmas must be {len(names)} positive numbers (one per keypoint: "
                             f"{list(names)}), got {list(self.sigmas or [])}")
        object.__setattr__(self, "sigmas", sigmas)

    @property
    def num_keypoints(self) -> int:
        return len(self.names)

    def as_dict(self) -> dict[str, Any]:
        """Plain lists, as a checkpoint records them (``KeypointMeta(**meta.as_dict())`` rebuilds it)."""
        return {"names": list(self.names), "skeleton": [list(p) for p in self.skeleton],
                "flip_pairs": [list(p) for p in self.flip_pairs], "sigmas": list(self.sigmas),
                "category_id": self.category_id, "category": self.category}


def keypoint_categories(data: Mapping[str, Any], ann_file: str | Path) -> list[dict]:
    """The ``categories`` of a COCO json that have keypoints; a clear error when there is none."""
    categories = data.get("categories")
    if not isinstance(categories, list) or not categories:
        raise ValueError(f"{ann_file} has no 'categories' list; a COCO keypoint json names its category with "
                         "'keypoints' (the names) and 'skeleton' there")
    found = [c for c in categories if isinstance(c, dict) and "keypoints" in c]
    if not found:
        raise ValueError(f"{ann_file}: no category has a 'keypoints' list of names (categories: "
                         f"{[c.get('name') for c in categories if isinstance(c, dict)]}); add the names of the "
                         "keypoints, in the order of each annotation's 'keypoints' triples")
    return found


def category_meta(data: Mapping[str, Any], ann_file: str | Path, category: str | int | None = None,
                  flip_pairs: Sequence[Sequence[Any]] | None = None, sigmas: Sequence[float] | None = None
                  ) -> KeypointMeta:
    """The :class:`KeypointMeta` of ``category`` (its name or id; None = the only keypoint category) of a
    loaded COCO json, with ``flip_pairs`` (names or 0-based indices; None = inferred) and ``sigmas``
    (None = :data:`DEFAULT_SIGMA`)."""
    found = keypoint_categories(data, ann_file)
    listed = ", ".join(f"{c.get('name')!r} (id {c.get('id')})" for c in found)
    if category is None:
        if len(found) > 1:
            raise ValueError(f"{ann_file} has {len(found)} keypoint categories: {listed}; pick one with "
                             "--data.category NAME_OR_ID")
        chosen = found[0]
    else:
        matches = [c for c in found if c.get("name") == category or (
            not isinstance(category, bool) and str(c.get("id")) == str(category))]
        if not matches:
            raise ValueError(f"--data.category {category!r} is not a keypoint category of {ann_file}; it has "
                             f"{listed}")
        chosen = matches[0]
    where = f"{ann_file}: category {chosen.get('name')!r}"
    names = chosen["keypoints"]
    if not isinstance(names, list) or not names:
        raise ValueError(f"{where}: 'keypoints' must be the list of keypoint names, got {names!r:.200}")
    if not isinstance(chosen.get("id"), int) or isinstance(chosen.get("id"), bool):
        raise ValueError(f"{where}: 'id' must be an integer (annotations name it by 'category_id')")
    skeleton = chosen.get("skeleton") or []
    if not isinstance(skeleton, list):
        raise ValueError(f"{where}: 'skeleton' must be a list of [a, b] 1-based keypoint index pairs")
    skeleton = _index_pairs(skeleton, names, f"{where}: skeleton (1-based index pairs)", base=1)
    return KeypointMeta(tuple(names), skeleton, None if flip_pairs is None else tuple(map(tuple, flip_pairs)),
                        None if sigmas is None else tuple(sigmas), int(chosen["id"]), str(chosen.get("name", "")),
                        source=where)
