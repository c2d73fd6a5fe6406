"""The "fused" implementation: the chunk functions of :mod:`._chunked` through ``torch.compile``.

Inductor turns a chunk's hash -> exponential -> relaxed weight -> marginal read-out chain (and backward's
regeneration -> gradient accumulation) into a few loops: C++/OpenMP on CPU, Triton on GPU. Each chunk
function is compiled once per shape, dtype and static configuration (grid, basis, relaxation form) and
cached by ``torch.compile``; tau enters as a tensor, so a temperature schedule does not recompile (only
crossing between tau = 1, the "bounded" and the "shifted" forms does).

Where compilation is unavailable or fails (no C++ compiler, an unsupported platform, a compiler error),
the eager chunk functions run instead, after a one-time warning -- never an error. ``SAMPLING_ARGMAX_FUSED=0``
turns the fused path off process-wide ("auto" then picks "chunked", "fused" warns and runs eagerly);
``SAMPLING_ARGMAX_COMPILE_BACKEND`` picks another ``torch.compile`` backend (the tests use "aot_eager",
which checks the traced graphs without inductor's ~40 s C++ build per graph on a 2-core machine).
"""

from __future__ import annotations

import functools
import os
import types
import warnings

import torch
from torch import Tensor

#: "auto" uses the fused path from this many cell-samples (S x B x K x cells) per call, 2^20 (the synthetic
#: task's batch, 32 x 3 x 24 x 24 at S = 30, is 1.7e6): below it compiling (30-70 s once per shape on a 2-core
#: CPU) cannot pay off, and the eager chunk loop costs little.
FUSED_MIN_CELL_SAMPLES = 2**20

_broken: list[str] = []  # why compilation failed in this process (then everything runs eagerly)


def enabled() -> bool:
    return os.environ.get("SAMPLING_ARGMAX_FUSED", "1") != "0" and not _broken


def backend() -> str:
    return os.environ.get("SAMPLING_ARGMAX_COMPILE_BACKEND", "inductor")


def worth_it(cell_samples: int) -> bool:
    """Whether "auto" should take the fused path for a call of this size."""
    return enabled() and cell_samples >= FUSED_MIN_CELL_SAMPLES and not torch.compiler.is_compiling()


@functools.cache
def _compile(fn, backend_name, static: tuple):
    """``fn`` compiled for one static configuration (the non-tensor arguments). Each configuration gets its own
    copy of the code object, hence its own torch.compile cache and recompile budget (8 shapes): dynamo counts
    recompiles per code object, and one process may run many configurations (a six-method comparison:
    bases x relaxation forms x map shapes), which would otherwise exhaust one shared budget."""
    code = fn.__code__.replace(co_name=f"{fn.__name__}_{_compile.cache_info().currsize}")
    copy = types.FunctionType(code, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    return torch.compile(copy, backend=backend_name, fullgraph=True, dynamic=False)


def compiled(fn):
    """``fn`` through ``torch.compile``, falling back to ``fn`` itself (with a one-time warning) when the
    fused path is disabled or compilation fails."""

    def run(*args):
        if not enabled() or torch.compiler.is_compiling():
            if not _broken and os.environ.get("SAMPLING_ARGMAX_FUSED", "1") == "0":
                _warn_once("SAMPLING_ARGMAX_FUSED=0")
            return fn(*args)
        try:
            static = tuple(a for a in args if not isinstance(a, Tensor))
            return _compile(fn, backend(), static)(*args)
        except Exception as error:  # noqa: BLE001 -- any compiler failure must degrade to the eager path
            _broken.append(f"{type(error).__name__}: {' '.join(str(error).split())[:300]}")
            _warn_once(_broken[-1])
            return fn(*args)

    return run


@functools.cache
def _warn_once(reason: str) -> None:
    warnings.warn(f"sampling_argmax: the fused (torch.compile) path is unavailable ({reason}); running the "
                  f"chunked eager path instead (same samples, slower)", RuntimeWarning, stacklevel=3)
