"""The "fused" path: the per-cell loop of a sampling call as compiled code -- the native C kernel on CPU, the
chunk functions of :mod:`._chunked` through ``torch.compile`` (Triton) on other devices -- and "auto"'s choice.

**CPU**: :mod:`._native`, a C loop that the system's C compiler builds in about 2 s, then cached (inductor
took 40-45 s per process from an empty cache on the 2-core CI machine, and printed a CUDA warning there).
"auto" does not build it for the first calls of a process: it runs the eager chunk functions until they have
cost about an eighth of a build (``BUILD_AFTER_CELL_SAMPLES`` cell-samples at the measured eager-minus-native cost per
cell-sample), then builds (or loads) the kernel and stays native. The build is paid once per machine (cached), the
eager calls by every process, so the rent is kept short: a few predictions or a doc example never build, a
training run switches within its first steps. A build that an earlier process left in the cache
(:func:`._native.cache_dir`) makes that build instant, but "auto" still runs the same first calls eagerly: so
which path a call takes depends on the process's own calls only, never on the cache, and a seeded run gives
the same numbers whether or not the cache was filled (eager and native agree to float rounding only). The
native kernel computes the relaxation forms "one" and "bounded" (tau >= 0.3); the "shifted" form of small
temperatures runs eagerly (see :mod:`._native`).

**Other devices** (CUDA): ``torch.compile`` of the chunk functions, once per shape, dtype and static
configuration (grid, basis, relaxation form), cached by ``torch.compile``; tau enters as a tensor, so a
temperature schedule does not recompile. "auto" compiles from ``FUSED_MIN_CELL_SAMPLES`` cell-samples per
call. (Not measured in this repository's CI, which has no GPU: see benchmarks/gpu.py.)

Where building or compiling fails (no C compiler, an unsupported platform, a compiler error), the eager chunk
functions run instead, after a one-time warning -- never an error. ``SAMPLING_ARGMAX_FUSED=0`` turns the
fused path off process-wide ("auto" then picks "chunked", "fused" warns and runs eagerly);
``SAMPLING_ARGMAX_COMPILE_BACKEND`` picks another ``torch.compile`` backend.
"""

from __future__ import annotations

import functools
import os
import types
import warnings

import torch
from torch import Tensor

from . import _native

#: "auto" on CUDA uses the compiled path from this many cell-samples (S x B x K x cells) per call, 2^20 (the
#: synthetic task's batch, 32 x 3 x 24 x 24 at S = 30, is 1.7e6). Not measured on a GPU here.
FUSED_MIN_CELL_SAMPLES = 2**20
#: "auto" on CPU builds (or loads) the native kernel once a process's eager calls have processed this many
#: cell-samples, 2^23 = 8.4e6: at the eager path's extra cost per cell-sample (forward + backward at tau = 0.5-2:
#: ~30 ns eager against ~2-5 ns native at the COCO shape, benchmarks/operator.py, one thread) about 0.25 s, an
#: eighth of the build (~2 s on the 2-core CI machine, once per machine). The synthetic task's first 5 training
#: steps stay eager; a COCO-sized call (3.7e7) builds at once. (It was 2^26 -- the build's full cost, the "ski
#: rental" rule -- which charged every process the rent of a build that only the first one pays: the cold `fit` of
#: the synthetic task at 1.15x Soft's wall time, docs/performance.md.)
BUILD_AFTER_CELL_SAMPLES = 2**23
#: A point-set cell-sample counts this many times towards that rent: eagerly it also draws a Gaussian offset per
#: point and axis and reads out on tensors of that size, ~150 ns per cell-sample more than native against ~30 on a
#: grid (KeypointNet's 8 x 19 x 2048 points in 3D, S = 30: benchmarks/operator.py --tasks keypointnet).
POINT_SET_RENT = 5
#: run the native kernel on CPU (the tests switch it off to exercise the torch.compile path on CPU)
NATIVE_ON_CPU = True

_broken: list[str] = []  # why compilation failed in this process (then everything runs eagerly)
_eager_cell_samples = [0]  # cell-samples "auto" ran eagerly on CPU in this process (the rent paid so far)


def enabled() -> bool:
    return os.environ.get("SAMPLING_ARGMAX_FUSED", "1") != "0" and not _broken


def backend() -> str:
    return os.environ.get("SAMPLING_ARGMAX_COMPILE_BACKEND", "inductor")


def worth_it(cell_samples: int, device: torch.device | None = None, points: bool = False) -> bool:
    """Whether "auto" should take the fused path for a call of this size on ``device`` (default CPU), on a grid or
    a point set (``points``)."""
    if not enabled() or torch.compiler.is_compiling():
        return False
    if (device is None or torch.device(device).type == "cpu") and NATIVE_ON_CPU:
        if _native.library(build=False) is not None:
            return True
        if _native.failure() is not None:
            return False
        _eager_cell_samples[0] += cell_samples * (POINT_SET_RENT if points else 1)
        return _eager_cell_samples[0] > BUILD_AFTER_CELL_SAMPLES
    return cell_samples >= FUSED_MIN_CELL_SAMPLES


def kind(x: Tensor, mode: str) -> str:
    """How a "fused" call on ``x`` runs: "native" (CPU kernel), "compiled" (torch.compile) or "eager" (the
    chunk functions as they are: fused path off, a relaxation form the kernel lacks, or a failed build)."""
    if not enabled() or torch.compiler.is_compiling():
        if not _broken and os.environ.get("SAMPLING_ARGMAX_FUSED", "1") == "0":
            _warn_once("SAMPLING_ARGMAX_FUSED=0")
        return "eager"
    if x.device.type != "cpu" or not NATIVE_ON_CPU:
        return "compiled"
    if not _native.supports(x, mode):
        return "eager"
    if _native.library() is None:
        _warn_once(f"the native CPU kernel could not be built: {_native.failure()}")
        return "eager"
    return "native"


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
    """``fn`` through ``torch.compile``, falling back to ``fn`` itself (with a one-time warning) when
    compilation fails. Non-tensor arguments are static (one compiled graph per configuration)."""

    def run(*args, **kwargs):
        try:
            static = (*(a for a in args if not isinstance(a, Tensor)),
                      *((k, v) for k, v in kwargs.items() if not isinstance(v, Tensor)))
            return _compile(fn, backend(), static)(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 -- any compiler failure must degrade to the eager path
            _broken.append(f"{type(error).__name__}: {' '.join(str(error).split())[:300]}")
            _warn_once(_broken[-1])
            return fn(*args, **kwargs)

    return run


@functools.cache
def _warn_once(reason: str) -> None:
    warnings.warn(f"sampling_argmax: the fused path is unavailable ({reason}); running the "
                  f"chunked eager path instead (same samples, slower)", RuntimeWarning, stacklevel=3)
