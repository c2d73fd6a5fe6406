"""Input validation shared by the operators, losses and methods: the one place where checks live.

Two kinds of checks:

* **structural** (types, shapes, argument values): free, always on;
* **data** (NaN/inf in logits, points and weighted targets; negative or non-finite weights): one pass over
  the data and one device-to-host sync per public call (:func:`check_data` gathers every flag of a call
  into one sync). They are skipped under ``torch.jit`` tracing, ``torch.compile`` and ONNX export (a
  data-dependent branch cannot be traced) and when turned off with :func:`set_input_checks`.

Messages name the argument, say what was expected, what was got, and how to fix it.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os

import torch
from torch import Tensor

from ._noise import MAX_COUNTER

GUMBEL_MODES = ("paper", "authors")
IMPLEMENTATIONS = ("auto", "fused", "chunked", "reference")
REDUCTIONS = ("none", "mean", "sum")

#: Smallest accepted Gumbel-softmax temperature. The relaxed sample is computed overflow-free for any τ > 0
#: (the max is subtracted before dividing by τ), but its gradient scales as 1/τ: at τ = 1e-6 the relaxed
#: sample of a float32 map is one-hot except on near-ties (two perturbed logits within ~1e-4), where the
#: gradient is ~1e6 × the output gradient; below that nothing trainable is left, and near τ ≈ 3e-39 1/τ
#: itself overflows float32.
MIN_TAU = 1e-6

#: Largest accepted S × B × K × cells of one sampling call ("cell-samples"), 2^40 ≈ 1.1e12: the time of both
#: implementations is linear in it (the chunked path ran 3.7e7 cell-samples/s forward+backward on one CPU
#: core, so 2^40 is ~8 hours; 20,000× a COCO batch at S = 30). The paper uses S ≤ 30 and one sample already
#: trains; so many samples in one call is almost surely a mistake (split the call if it is not).
MAX_CELL_SAMPLES = 2**40

_INPUT_CHECKS = True


def set_input_checks(enabled: bool) -> bool:
    """Turn the data-dependent input checks on (the default) or off, process-wide; returns the previous setting.

    The data checks look for NaN/inf in logits, points and in the targets of keypoints with non-zero weight,
    and for negative or non-finite weights. Each public call pays one pass over its inputs and one
    device-to-host sync for them; turn them off in a tuned training loop for speed (bad inputs then give NaN or
    meaningless losses instead of a ``ValueError``). Structural checks (shapes, argument values) stay on.
    They are always skipped while tracing, compiling or exporting.

    >>> import sampling_argmax
    >>> previous = sampling_argmax.set_input_checks(False)
    >>> sampling_argmax.set_input_checks(previous)
    False
    """
    global _INPUT_CHECKS
    if not isinstance(enabled, bool):
        raise ValueError(f"enabled must be True or False, got {enabled!r}")
    previous, _INPUT_CHECKS = _INPUT_CHECKS, enabled
    return previous


def _tracing() -> bool:
    return torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export()


def _skip_data_checks() -> bool:
    # Data-dependent checks (a full pass + host sync) cannot be traced/compiled; exporters skip them.
    return _tracing() or not _INPUT_CHECKS


# ------------------------------------------------------------------------------------------------ structural
GRID_HINT = "(B, K, W), (B, K, H, W) or (B, K, D, H, W)"


def check_logits(logits, name: str = "logits", spatial_dims: tuple[int, ...] = (1, 2, 3),
                 shape_hint: str = GRID_HINT) -> int:
    """Validate the structure of ``(B, K, *grid)`` logits; return the number of spatial dims."""
    if not isinstance(logits, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape {shape_hint}, got {type(logits).__name__}")
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
    return nd


def check_points(points, logits: Tensor, name: str = "points") -> int:
    """Validate the structure of ``(B, N, d)`` points for ``(B, K, N)`` logits; return d."""
    if not isinstance(points, Tensor) or not points.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor of shape (B, N, d), got "
                         f"{getattr(points, 'dtype', type(points).__name__)}")
    b, _, n = logits.shape
    if points.dim() != 3 or points.shape[0] != b or points.shape[1] != n or points.shape[2] < 1:
        raise ValueError(
            f"{name} must have shape (B, N, d) = ({b}, {n}, d) to match logits of shape {tuple(logits.shape)}, "
            f"got {tuple(points.shape)}; pass one point set per batch element with N = logits.shape[2]"
        )
    return points.shape[2]


def check_target(target, batch_shape: tuple[int, ...], dims: int, source: str, name: str = "target") -> None:
    """Validate the structure of a ``(B, K, dims)`` target."""
    expected = (*batch_shape, dims)
    if not isinstance(target, Tensor) or not target.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor of shape (B, K, dims) = {expected}, got "
                         f"{getattr(target, 'dtype', type(target).__name__)}")
    if tuple(target.shape) != expected:
        raise ValueError(
            f"{name} must have shape (B, K, dims) = {expected} to match {source}, got {tuple(target.shape)}"
        )


def check_weight(weight, batch_shape: tuple[int, ...], like: Tensor) -> Tensor | None:
    """Validate the structure of a ``(B, K)`` visibility weight; return it as float32 (None stays None)."""
    if weight is None:
        return None
    if not isinstance(weight, Tensor):
        weight = torch.as_tensor(weight, device=like.device)
    if tuple(weight.shape) != tuple(batch_shape):
        raise ValueError(
            f"weight must have shape (B, K) = {tuple(batch_shape)} (one visibility per keypoint), "
            f"got {tuple(weight.shape)}; squeeze a trailing singleton dim or pass weight=None"
        )
    return weight.to(dtype=torch.float32)


def check_coords(coords, logits: Tensor, dims: int, name: str = "coords") -> None:
    """Validate ``(B, K, dims)`` coordinates that go with ``(B, K, *grid)`` logits."""
    expected = (*logits.shape[:2], dims)
    if not isinstance(coords, Tensor) or tuple(coords.shape) != expected:
        raise ValueError(f"{name} must have shape (B, K, dims) = {expected} for logits of shape "
                         f"{tuple(logits.shape)}, got {getattr(coords, 'shape', type(coords).__name__)}")


def check_prediction(pred, target) -> None:
    """Validate predictions ``(B, K, dims)`` or samples ``(B, K, S, dims)`` against a ``(B, K, dims)`` target."""
    if not isinstance(target, Tensor) or target.ndim != 3:
        raise ValueError(f"target must have shape (B, K, dims), got {getattr(target, 'shape', type(target).__name__)}")
    if not isinstance(pred, Tensor) or pred.ndim not in (3, 4):
        raise ValueError(f"pred must be (B, K, dims) coordinates or (B, K, S, dims) samples, got "
                         f"{getattr(pred, 'shape', type(pred).__name__)}")
    b, k, dims = target.shape
    expected = (b, k, dims) if pred.ndim == 3 else (b, k, pred.shape[2], dims)
    if tuple(pred.shape) != expected:
        raise ValueError(
            f"pred {tuple(pred.shape)} does not match target {tuple(target.shape)}: "
            "B, K and dims must agree (pred may add a samples dim S before dims)"
        )


def check_per_keypoint(loss, name: str = "loss") -> None:
    if not isinstance(loss, Tensor) or loss.ndim != 2:
        raise ValueError(f"{name} must be per keypoint, a tensor of shape (B, K), got "
                         f"{getattr(loss, 'shape', type(loss).__name__)}")


def check_generator(generator, device: torch.device) -> None:
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    if torch.device(generator.device).type != device.type:
        raise ValueError(f"generator is on {generator.device} but logits are on {device}; "
                         f"create it with torch.Generator(device=logits.device)")


def check_authors_options(basis: str, triangular_reread: bool, gaussian_reweight: bool) -> None:
    """The authors' grid options each belong to one basis."""
    if triangular_reread and basis != "triangular":
        raise ValueError("triangular_reread=True needs basis='triangular'; set one or the other")
    if gaussian_reweight and basis != "gaussian":
        raise ValueError("gaussian_reweight=True needs basis='gaussian'; set one or the other")


def check_positive(value, name: str, hint: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number > 0 ({hint}), got {value!r}") from None
    if not (v > 0.0 and math.isfinite(v)):
        raise ValueError(f"{name} must be a finite number > 0 ({hint}), got {value!r}")
    return v


def check_nonnegative(value, name: str, hint: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number >= 0 ({hint}), got {value!r}") from None
    if not (v >= 0.0 and math.isfinite(v)):
        raise ValueError(f"{name} must be a finite number >= 0 ({hint}), got {value!r}")
    return v


def check_optional_positive(value, name: str, hint: str) -> float | None:
    return None if value is None else check_positive(value, name, f"{hint}; or None for the default")


def check_tau(tau, name: str = "tau") -> float:
    tau = check_positive(tau, name, "the Gumbel-softmax temperature")
    if tau < MIN_TAU:
        raise ValueError(
            f"{name} must be >= {MIN_TAU:g} (MIN_TAU), got {tau!r}: the gradient scales as 1/{name} and below "
            f"{MIN_TAU:g} the relaxed sample is one-hot in float32 except on near-ties, where the gradient "
            f"spikes; use {name}={MIN_TAU:g} for (almost) hard samples, or a schedule that ends at 0.5 as the paper's"
        )
    return tau


def check_num_samples(num_samples) -> int:
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be an int >= 1 (samples per keypoint; the paper uses 30), "
                         f"got {num_samples!r}")
    return num_samples


def check_p(p) -> int:
    if isinstance(p, bool) or p not in (1, 2):
        raise ValueError(f"p must be 1 (ℓ1 summed over axes, the paper's) or 2 (Euclidean), got {p!r}")
    return int(p)


def check_choice(value, name: str, choices: tuple) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


@functools.lru_cache(maxsize=None)
def _device_memory_bytes(device: torch.device) -> int | None:
    """Total memory of ``device`` (physical RAM for the CPU), or None when unknown."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    if device.type == "cpu":
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, ValueError, OSError):
            return None
    return None


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB"


def check_sampling_budget(logits: Tensor, num_samples: int, length: int, dims: int, chunked: bool,
                          chunk_bytes: int) -> None:
    """Refuse a sampling call whose time or memory cannot be sensible, with the estimate in the message.

    ``logits`` ``(B, K, M)``; ``length`` = L, the per-sample offsets of one map (W + H + D, or d N). Time is
    linear in S × B × K × M for both implementations (bounded by :data:`MAX_CELL_SAMPLES`). Peak memory: the
    reference path holds about 3 float maps per sample (measured 3.0 forward+backward), the
    chunked and fused paths a few maps plus ``chunk_bytes`` of chunk buffers, and ~5 copies of the
    ``(B, K, S, dims)`` output (output, anchor-relative output, anchors, int64 anchor indices); refused when the
    estimate exceeds the device's total memory (physical RAM for the CPU), where the call could only fail
    (or be killed by the OS).
    """
    b, k, m = logits.shape
    cell_samples = num_samples * b * k * m
    if cell_samples > MAX_CELL_SAMPLES:
        raise ValueError(
            f"num_samples={num_samples} on logits of shape {tuple(logits.shape)} is {cell_samples:.3g} "
            f"cell-samples (S x B x K x cells), more than MAX_CELL_SAMPLES = 2^40 ~ 1.1e12 (~8 h per CPU core "
            f"at the measured 3.7e7/s); use fewer samples (the paper uses <= 30) or split the batch"
        )
    counters = b * k * max(m, length)  # the noise's per-sample cell counter (Gumbel noise: B K M; offsets: B K L)
    if counters > MAX_COUNTER:
        raise ValueError(
            f"logits of shape {tuple(logits.shape)} need {counters:.3g} noise counters per sample (B x K x "
            f"max(cells, offsets)), more than 2^32: the counter-based noise would repeat; split the batch")
    item = torch.finfo(logits.dtype).bits // 8 if logits.is_floating_point() else 4
    map_bytes = b * k * m * item
    per_sample = b * k * (length + dims) * item
    if chunked:
        estimate = 5 * map_bytes + chunk_bytes + 5 * num_samples * b * k * dims * item
    else:
        estimate = 3 * num_samples * map_bytes + num_samples * per_sample * 2 + 2 * map_bytes
    total = None if _tracing() else _device_memory_bytes(logits.device)  # a host query: not traceable
    if total is not None and estimate > total:
        fix = ("use fewer samples or a smaller batch" if chunked else
               "use implementation='chunked' (memory independent of num_samples; not with the authors' "
               "options) or fewer samples")
        raise ValueError(
            f"num_samples={num_samples} with implementation={'chunked' if chunked else 'reference'} on "
            f"logits of shape {tuple(logits.shape)} needs about {_gib(estimate)}, more than the "
            f"{_gib(total)} of {logits.device}; {fix}"
        )


# ------------------------------------------------------------------------------------------------------ data
def check_data(logits: Tensor | None = None, points: Tensor | None = None, target: Tensor | None = None,
               weight: Tensor | None = None, logits_name: str = "logits") -> None:
    """The data-dependent checks of one call, with a single device-to-host sync for all of them.

    logits and points must be finite; weight ``(B, K)`` finite and >= 0; target ``(B, K, dims)`` finite
    wherever the weight is non-zero (everywhere when weight is None): unlabeled keypoints (weight 0) may hold
    NaN targets. Inputs must already have passed the structural checks. No-op when :func:`_skip_data_checks`.
    """
    if _skip_data_checks():
        return
    checks = []
    if logits is not None:
        checks.append((~torch.isfinite(logits)).any())
    if points is not None:
        checks.append((~torch.isfinite(points)).any())
    bad_weight = None
    if weight is not None:
        bad_weight = ~(torch.isfinite(weight) & (weight >= 0))
        checks.append(bad_weight.any())
    bad_target = None
    if target is not None:
        bad_target = (~torch.isfinite(target)).any(-1)
        if weight is not None:
            bad_target = bad_target & (weight != 0)
        checks.append(bad_target.any())
    if not checks:
        return
    device = checks[0].device
    flags = torch.stack([c.to(device) for c in checks]).tolist()  # the one sync
    flags.reverse()
    if logits is not None and flags.pop():
        raise ValueError(
            f"{logits_name} contain NaN or inf; the network diverged or a mask used -inf -- use a large finite "
            "negative value (e.g. -1e4) for masked cells and check the learning rate / loss scale"
        )
    if points is not None and flags.pop():
        raise ValueError("points contain NaN or inf; check the point-cloud loader/normalization")
    if weight is not None and flags.pop():
        where = bad_weight.nonzero()[0].tolist()
        raise ValueError(
            f"weight must be finite and >= 0 (a visibility per keypoint, 0 = ignored), got "
            f"{int(bad_weight.sum())} bad value(s), e.g. {weight[tuple(where)].item()!r} at (b, k) = "
            f"{tuple(where)}; fix the labels (a visibility flag of -1 or NaN usually means unlabeled: use 0)"
        )
    if target is not None and flags.pop():
        where = tuple(bad_target.nonzero()[0].tolist())
        scope = "with non-zero weight" if weight is not None else "(weight=None weighs every keypoint)"
        raise ValueError(
            f"target contains NaN or inf at {int(bad_target.sum())} keypoint(s) {scope}, e.g. (b, k) = {where}; "
            "give unlabeled keypoints weight 0 (their targets are then ignored) or fix the targets"
        )


# -------------------------------------------------------------------------------------------------- numerics
def compute_dtype(t: Tensor) -> torch.dtype:
    """float64 stays float64 (gradcheck); everything else is computed in float32."""
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def no_autocast(t: Tensor):
    """Context that turns autocast off for ``t``'s device, so sums/matmuls stay in float32."""
    dev = t.device.type
    if dev in ("cpu", "cuda", "xpu", "mps") and torch.is_autocast_enabled(dev):
        return torch.autocast(device_type=dev, enabled=False)
    return contextlib.nullcontext()
