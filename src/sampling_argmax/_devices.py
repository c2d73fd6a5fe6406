"""A device named by the user, checked before anything runs on it (private)."""

from __future__ import annotations

import torch

__all__ = ["check_device"]


def check_device(device: str | torch.device, what: str = "--device") -> torch.device:
    """``torch.device(device)`` if this machine has it; a ``ValueError`` naming ``what`` and the fix otherwise.

    >>> check_device("cpu")
    device(type='cpu')
    """
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{what} {device!r} is not a device name; use cpu, cuda, cuda:1 or mps") from None
    if parsed.type == "cpu":
        return parsed
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{what} {device}: this machine has no usable CUDA GPU (torch.cuda.is_available() is "
                             f"False); use {what} cpu")
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(f"{what} {device}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
        return parsed
    if parsed.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"{what} {device}: Apple's MPS is not available on this machine; use {what} cpu")
        return parsed
    raise ValueError(f"{what} {device}: only cpu, cuda and mps devices are supported")
