"""The methods: one object each, read-out + loss + confidence + schedule (a method is not a model).

The paper's six (:data:`PAPER_METHODS`: ``soft``, ``soft_vr``, ``soft_dr``, ``samp_uni``, ``samp_tri``,
``samp_gau``) and two beyond the paper with learned per-cell laws (``samp_lgau``, ``samp_lspline``); every
name is in :data:`METHODS`. :func:`paper_method` builds one by name with the paper's settings,
:func:`method_config` writes its LightningCLI config.

Example:
    >>> paper_method("samp_tri").name, len(PAPER_METHODS), len(METHODS)
    ('samp_tri', 6, 8)
"""

from sampling_argmax.coords import POINT_CELL
from sampling_argmax.methods.base import Method, NotDefinedOnPointsError, Objective
from sampling_argmax.methods.catalogue import (
    METHODS,
    PAPER_METHODS,
    method_config,
    paper_method,
)
from sampling_argmax.methods.learned import LearnedBasisMethod
from sampling_argmax.methods.sampling import SamplingArgmaxMethod
from sampling_argmax.methods.soft import SoftArgmaxMethod

__all__ = [
    "NotDefinedOnPointsError",
    "Method",
    "Objective",
    "SoftArgmaxMethod",
    "SamplingArgmaxMethod",
    "LearnedBasisMethod",
    "paper_method",
    "method_config",
    "PAPER_METHODS",
    "METHODS",
    "POINT_CELL",
]
