"""Sampling-argmax (Li et al., NeurIPS 2021) and the soft-argmax family for localization.

>>> import torch
>>> from sampling_argmax import soft_argmax, sampling_argmax
>>> logits = torch.randn(2, 17, 64, 48)                      # (B, K, H, W)
>>> soft_argmax(logits).shape                                # (B, K, 2), x-y, cell units
torch.Size([2, 17, 2])
>>> sampling_argmax(logits, num_samples=30, tau=1.0).shape   # (B, K, S, 2) training samples
torch.Size([2, 17, 30, 2])

Bad input raises ``ValueError`` naming the argument and the fix. The data-dependent checks (NaN/inf,
negative weights) cost one pass and one sync per call; ``set_input_checks(False)`` turns them off.
"""

from ._checks import set_input_checks
from .functional import (
    grid_probabilities,
    grid_variance,
    marginals,
    mass_confidence,
    peak_confidence,
    sampling_argmax,
    sampling_argmax_points,
    soft_argmax,
    soft_argmax_points,
)
from .modules import ConstantTemperature, ExponentialTemperature, LinearTemperature, SamplingArgmax, SoftArgmax

__version__ = "0.1.0"

__all__ = [
    "soft_argmax",
    "sampling_argmax",
    "soft_argmax_points",
    "sampling_argmax_points",
    "grid_probabilities",
    "marginals",
    "grid_variance",
    "peak_confidence",
    "mass_confidence",
    "SoftArgmax",
    "SamplingArgmax",
    "ConstantTemperature",
    "LinearTemperature",
    "ExponentialTemperature",
    "set_input_checks",
]
