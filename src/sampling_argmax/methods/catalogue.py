"""The methods by name: the paper's six settings and the learned-basis ones, stated once; read by
:func:`paper_method` (builds the object) and :func:`method_config` (writes its LightningCLI config)."""

from __future__ import annotations

import inspect
from typing import Any

from sampling_argmax.methods.base import Method
from sampling_argmax.methods.learned import LearnedBasisMethod
from sampling_argmax.methods.sampling import SamplingArgmaxMethod
from sampling_argmax.methods.soft import SoftArgmaxMethod

# The paper's settings, stated once (COCO/MTFL, supplementary Appendix A); read by paper_method and method_config.
_PAPER_DEFAULTS: dict[str, tuple[type[Method], dict[str, Any]]] = {
    "soft": (SoftArgmaxMethod, {}),
    # target_variance None = σ_t² 4 cell² on grids (the paper's), 4e-4 on point sets; weight 1 on the
    # normalized variance scale (variance_scale's default), see docs/methods.md
    "soft_vr": (SoftArgmaxMethod, {"regularizer": "variance", "regularizer_weight": 1.0}),
    "soft_dr": (SoftArgmaxMethod, {"regularizer": "distribution", "regularizer_weight": 0.1, "divergence": "js"}),
    "samp_uni": (SamplingArgmaxMethod, {"basis": "uniform", "num_samples": 30, "gumbel": "paper"}),
    "samp_tri": (SamplingArgmaxMethod, {"basis": "triangular", "num_samples": 30, "gumbel": "paper"}),
    "samp_gau": (SamplingArgmaxMethod, {"basis": "gaussian", "num_samples": 30, "gumbel": "paper"}),
}

PAPER_METHODS = tuple(_PAPER_DEFAULTS)
"""The names of the paper's six methods, in the order of its tables."""

# Beyond the paper: sampling-argmax with learned per-cell laws (their model outputs the laws' parameters too).
_LEARNED_DEFAULTS: dict[str, tuple[type[Method], dict[str, Any]]] = {
    "samp_lgau": (LearnedBasisMethod, {"basis": "shifted_gaussian", "num_samples": 30, "gumbel": "paper"}),
    "samp_lspline": (LearnedBasisMethod, {"basis": "quantile_spline", "num_samples": 30, "gumbel": "paper"}),
}
_DEFAULTS = {**_PAPER_DEFAULTS, **_LEARNED_DEFAULTS}
METHODS = tuple(_DEFAULTS)
"""Every method name: the paper's six, then the learned-basis ones (``samp_lgau``, ``samp_lspline``)."""


def _paper_arguments(name: str, overrides: dict[str, Any]) -> tuple[type[Method], dict[str, Any]]:
    """The class of paper method ``name`` and its constructor arguments with ``overrides`` applied."""
    if name not in _DEFAULTS:
        raise ValueError(f"unknown method name {name!r}; valid names are {', '.join(METHODS)}")
    cls, defaults = _DEFAULTS[name]
    valid = [k for k in inspect.signature(cls.__init__).parameters if k != "self"]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"{cls.__name__} ({name!r}) has no argument(s) {unknown}; valid ones are {valid}")
    return cls, {**defaults, **overrides}


def paper_method(name: str, /, **overrides) -> Method:
    """Build one of the paper's six methods (:data:`PAPER_METHODS`) with its COCO/MTFL settings (or a learned-basis
    one of :data:`METHODS`, ``samp_lgau``/``samp_lspline``, with the same sampling settings).

    ``soft``; ``soft_vr`` (V.R. weight 1 on the normalized scale, σ_t² = 4); ``soft_dr`` (D.R. JS, weight 0.1,
    σ_t² = 4); ``samp_uni``/``samp_tri``/``samp_gau`` (N_s = 30, τ = max(0.5, 2 − 3·epoch/50), paper Gumbel).
    Keyword overrides replace constructor arguments, e.g. point clouds:
    ``paper_method("soft_dr", regularizer_weight=0.01)`` (σ_t² then defaults to 4e-4 on points).

    >>> paper_method("samp_gau", num_samples=10).num_samples
    10
    """
    cls, arguments = _paper_arguments(name, overrides)
    return cls(**arguments)


def method_config(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The LightningCLI config ``{"class_path": ..., "init_args": {...}}`` of paper method ``name``.

    ``overrides`` replace constructor arguments: plain values (``{"num_samples": 1}``) or, for ``schedule``, a
    class_path config (``{"schedule": {"class_path": "sampling_argmax.ConstantTemperature", "init_args":
    {"tau": 0.5}}}``). Unknown keys raise a ``ValueError`` listing the valid ones; plain values are
    validated by building the method once (nested class_path configs are left to the CLI).

    >>> method_config("samp_gau", {"num_samples": 10})
    {'class_path': 'sampling_argmax.methods.SamplingArgmaxMethod', 'init_args': {'basis': 'gaussian', 'num_samples': 10, 'gumbel': 'paper'}}
    """
    if overrides is not None and not isinstance(overrides, dict):
        raise ValueError(f"overrides must be a dict of constructor arguments or None, got {type(overrides).__name__}")
    overrides = dict(overrides or {})
    cls, arguments = _paper_arguments(name, overrides)
    cls(**{k: v for k, v in arguments.items() if not isinstance(v, dict)})  # raises on bad values
    return {"class_path": f"sampling_argmax.methods.{cls.__name__}", "init_args": arguments}  # the public path
