"""File helpers (private): tensor files read with one clear error for every way a file can be broken, a file's
SHA-256 (rows say which exact weights produced them), and the predictions.{json,csv} writer."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch


def load_tensors(path: str | os.PathLike, what: str, fix: str) -> Any:
    """``torch.load`` on the CPU, tensors only (no code runs); a broken file is a ValueError naming it and ``fix``."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises a different type for each way a file can be broken
        raise ValueError(
            f"{what} {path} is not a readable checkpoint or state dict ({type(error).__name__}: "
            f"{str(error)[:200]}); it is truncated or another kind of file: {fix}"
        ) from None


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file (rows say which exact weights produced them)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_rows(rows: Sequence[dict], out: Path, keypoint_names: Sequence[str]) -> list[Path]:
    """``predictions.json`` (a list of the rows) and ``predictions.csv`` (one line a row, flat columns:
    ``input, method, checkpoint_sha256``, the task's extras, then ``<name>_x, <name>_y[, <name>_z],
    <name>_confidence`` per keypoint)."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = out / "predictions.json", out / "predictions.csv"
    json_path.write_text(json.dumps(list(rows), indent=1) + "\n")
    fixed = ("input", "keypoints", "confidence", "method", "checkpoint_sha256")
    extras = list(dict.fromkeys(k for row in rows for k in row if k not in fixed))
    dims = len(rows[0]["keypoints"][0]) if rows else 2
    axes = "xyz"[:dims] if dims <= 3 else [f"d{a}" for a in range(dims)]
    columns = ["input", "method", "checkpoint_sha256", *extras]
    columns += [f"{name}_{part}" for name in keypoint_names for part in (*axes, "confidence")]
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            cells = [row["input"], row["method"], row["checkpoint_sha256"]]
            cells += [" ".join(map(str, v)) if isinstance(v, list) else ("" if v is None else v)
                      for v in (row.get(k) for k in extras)]
            for point, confidence in zip(row["keypoints"], row["confidence"]):
                cells += [f"{v:.6f}" for v in point] + [f"{confidence:.6f}"]
            writer.writerow(cells)
    return [json_path, csv_path]
