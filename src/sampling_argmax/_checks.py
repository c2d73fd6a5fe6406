"""Input validation and numerics helpers shared by the functional operators (private)."""

from __future__ import annotations

import contextlib
import math

import torch
from torch import Tensor


GUMBEL_MODES = ("paper", "authors")
IMPLEMENTATIONS = ("auto", "efficient", "reference")


def _skip_data_checks() -> bool:
    # Data-dependent checks (a full pass + host sync) cannot be traced/compiled; exporters skip them.
    return torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export()


def check_logits(logits, name: str = "logits", spatial_dims: tuple[int, ...] = (1, 2, 3),
                 shape_hint: str = "(B, K, W), (B, K, H, W) or (B, K, D, H, W)") -> int:
    """Validate ``(B, K, *grid)`` logits; return the number of spatial dims."""
    if not isinstance(logits, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (B, K, *grid), got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {logits.dtype}; call {name}.float()")
    nd = logits.dim() - 2
    if nd not in spatial_dims:
        raise ValueError(
            f"{name} must have shape {shape_hint}, got shape {tuple(logits.shape)}; add missing batch/keypoint "
            f"dimensions with {name}[None] / {name}.unsqueeze(1)"
        )
    if logits.numel() == 0 or min(logits.shape[2:]) < 1:
        raise ValueError(f"{name} must have at least one cell per axis and non-empty batch, got shape "
                         f"{tuple(logits.shape)}")
    if not _skip_data_checks() and not bool(torch.isfinite(logits).all()):
        raise ValueError(
            f"{name} contain NaN or inf; the network diverged or a mask used -inf -- use a large finite "
            "negative value (e.g. -1e4) for masked cells and check the learning rate / loss scale"
        )
    return nd


def check_points(points, logits: Tensor, name: str = "points") -> None:
    if not isinstance(points, Tensor) or not points.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor of shape (B, N, d)")
    b, _, n = logits.shape
    if points.dim() != 3 or points.shape[0] != b or points.shape[1] != n or points.shape[2] < 1:
        raise ValueError(
            f"{name} must have shape (B, N, d) = ({b}, {n}, d) to match logits of shape {tuple(logits.shape)}, "
            f"got {tuple(points.shape)}; pass one point set per batch element with N = logits.shape[2]"
        )
    if not _skip_data_checks() and not bool(torch.isfinite(points).all()):
        raise ValueError(f"{name} contain NaN or inf; check the point-cloud loader/normalization")


def check_positive(value, name: str, hint: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number > 0 ({hint}), got {value!r}") from None
    if not (v > 0.0 and math.isfinite(v)):
        raise ValueError(f"{name} must be a finite number > 0 ({hint}), got {value!r}")
    return v


def check_num_samples(num_samples) -> int:
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be an int >= 1 (samples per keypoint; the paper uses 30), "
                         f"got {num_samples!r}")
    return num_samples


def check_choice(value, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def compute_dtype(t: Tensor) -> torch.dtype:
    """float64 stays float64 (gradcheck); everything else is computed in float32."""
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def no_autocast(t: Tensor):
    """Context that turns autocast off for ``t``'s device, so sums/matmuls stay in float32."""
    dev = t.device.type
    if dev in ("cpu", "cuda", "xpu", "mps") and torch.is_autocast_enabled(dev):
        return torch.autocast(device_type=dev, enabled=False)
    return contextlib.nullcontext()
