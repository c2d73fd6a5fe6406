"""Reading tensor files with one clear error for every way a file can be broken (private)."""

from __future__ import annotations

import os
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
