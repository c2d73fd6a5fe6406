"""The fused path: on CPU the native C kernel (what "auto" runs by default), elsewhere torch.compile -- the
same samples and gradients as the reference and the chunked path, gradcheck, "auto"'s choice, the fallbacks.

The native kernel is built and run for real here (the suite needs a C compiler, as users' CPUs do for the
fast path). The torch.compile path (the GPU's) is checked on CPU with a recording backend that runs the traced
graph eagerly: the chunk functions trace as single graphs (``fullgraph=True``) and compute what the eager code
does, without inductor's C++ build (~20-40 s per graph on the 2-core CI machine); the inductor test runs with
``SAMPLING_ARGMAX_TEST_INDUCTOR=1``, and the CUDA twin at the end runs inductor (Triton) where a GPU exists.
"""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from sampling_argmax import (
    _chunked,
    _fused,
    _native,
    _noise,
    sampling_argmax,
    sampling_argmax_points,
    soft_argmax_points,
    soft_argmax,
)
from sampling_argmax._chunked import native_forward_chunk, sample_keys
from sampling_argmax._memory import peak_cpu_memory


class RecordingBackend:
    """A torch.compile backend that counts the graphs it is given and runs them as traced."""

    def __init__(self):
        self.graphs = 0

    def __call__(self, gm, example_inputs):
        self.graphs += 1
        return gm.forward


@pytest.fixture
def backend(monkeypatch):
    torch._dynamo.reset()  # fresh compile caches (and recompile counts) per test
    _fused._compile.cache_clear()
    recorder = RecordingBackend()
    monkeypatch.setattr(_fused, "backend", lambda: recorder)
    monkeypatch.setattr(_fused, "NATIVE_ON_CPU", False)  # the torch.compile path, on CPU
    monkeypatch.delenv("SAMPLING_ARGMAX_FUSED", raising=False)
    yield recorder
    torch._dynamo.reset()
    _fused._compile.cache_clear()


def _run(logits, implementation, tau=0.7, basis="triangular", gumbel="paper", samples=5):
    x = logits.detach().clone().requires_grad_()
    out = sampling_argmax(x, samples, tau, basis, gumbel, torch.Generator().manual_seed(3), sigma=1.3,
                          implementation=implementation)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(9), dtype=out.dtype)
    (grad,) = torch.autograd.grad((out * weights).sum(), x)
    return out, grad


@pytest.mark.parametrize("grid,basis,tau,gumbel", [((11,), "gaussian", 1.0, "paper"),
                                                   ((6, 7), "triangular", 0.7, "authors"),
                                                   ((3, 4, 5), "uniform", 0.05, "paper")],
                         ids=["1d-one", "2d-bounded-authors", "3d-shifted"])  # every dims and relaxation form
def test_fused_equals_chunked(backend, grid, basis, tau, gumbel, monkeypatch):
    monkeypatch.setattr(_chunked, "CHUNK_BYTES", 2 * 2 * 3 * torch.Size(grid).numel() * 4 * 2)  # chunks 2+2+1
    logits = torch.randn(2, 3, *grid, generator=torch.Generator().manual_seed(1)) * 2
    fused = _run(logits, "fused", tau, basis, gumbel)
    assert backend.graphs == 4  # forward and backward, each for chunks of 2 and the last chunk of 1
    chunked = _run(logits, "chunked", tau, basis, gumbel)
    for a, b in zip(fused, chunked):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_fused_equals_chunked_on_points(backend):
    logits, points = torch.randn(2, 4, 30), torch.rand(2, 30, 3)
    results = []
    for implementation in ("fused", "chunked"):
        x, p = logits.clone().requires_grad_(), points.clone().requires_grad_()
        out = sampling_argmax_points(x, p, 6, 0.5, 0.05, torch.Generator().manual_seed(3),
                                     implementation=implementation)
        weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(9))
        results.append((out, *torch.autograd.grad((out * weights).sum(), (x, p))))
    assert backend.graphs == 2
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_more_configurations_than_the_recompile_limit_stay_compiled(backend):
    # dynamo allows 8 recompiles per code object; a six-method comparison needs more (bases x tau forms x
    # shapes). Before: the 9th configuration hit the limit and switched the fused path off process-wide.
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with torch.no_grad():
            for basis in ("uniform", "triangular", "gaussian"):
                for n in (5, 6, 7):
                    sampling_argmax(torch.randn(1, 2, n), 1, 0.5, basis, implementation="fused")
    assert backend.graphs == 9 and _fused.enabled()


def test_fused_gradcheck(backend):
    logits = torch.randn(1, 2, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1),
                         requires_grad=True)

    def fn(x):
        return sampling_argmax(x, 3, 0.8, "gaussian", "authors", torch.Generator().manual_seed(2),
                               implementation="fused")

    assert torch.autograd.gradcheck(fn, (logits,))
    assert backend.graphs >= 2


def test_auto_takes_the_fused_path_from_the_threshold(backend, monkeypatch):
    logits = torch.randn(2, 3, 6, 5)
    monkeypatch.setattr(_fused, "FUSED_MIN_CELL_SAMPLES", 2 * 3 * 30 * 4 + 1)
    small = sampling_argmax(logits, 4, generator=torch.Generator().manual_seed(0))  # one short: chunked
    assert backend.graphs == 0
    large = sampling_argmax(logits, 5, generator=torch.Generator().manual_seed(0))
    assert backend.graphs == 1
    torch.testing.assert_close(large[:, :, :4], small)  # same seed, same first samples
    monkeypatch.setenv("SAMPLING_ARGMAX_FUSED", "0")
    sampling_argmax(logits, 5, generator=torch.Generator().manual_seed(0))
    assert backend.graphs == 1  # switched off: "auto" runs the chunked path


def test_a_failing_compiler_falls_back_to_the_chunked_path_with_one_warning(monkeypatch):
    def broken(gm, example_inputs):
        raise RuntimeError("no C++ compiler (simulated)")

    torch._dynamo.reset()
    _fused._compile.cache_clear()
    _fused._warn_once.cache_clear()
    monkeypatch.setattr(_fused, "backend", lambda: broken)
    monkeypatch.setattr(_fused, "_broken", [])
    monkeypatch.setattr(_fused, "NATIVE_ON_CPU", False)
    monkeypatch.delenv("SAMPLING_ARGMAX_FUSED", raising=False)
    logits = torch.randn(2, 3, 6, 5)
    with pytest.warns(RuntimeWarning, match="fused .* unavailable .*no C\\+\\+ compiler"):
        fused = _run(logits, "fused")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once only
        again = _run(logits, "fused")
    chunked = _run(logits, "chunked")
    for a, b, c in zip(fused, again, chunked):
        torch.testing.assert_close(a, c)
        torch.testing.assert_close(b, c)
    assert not _fused.enabled() and not _fused.worth_it(2**40)  # "auto" stops trying
    torch._dynamo.reset()
    _fused._compile.cache_clear()


@pytest.mark.skipif(os.environ.get("SAMPLING_ARGMAX_TEST_INDUCTOR") != "1",
                    reason="inductor's C++ build takes ~1 min on the 2-core CI machine; set SAMPLING_ARGMAX_TEST_INDUCTOR=1")
@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_inductor_fused_equals_chunked(tau, monkeypatch):
    torch._dynamo.reset()
    _fused._compile.cache_clear()
    monkeypatch.setattr(_fused, "_broken", [])
    monkeypatch.setattr(_fused, "backend", lambda: "inductor")
    monkeypatch.setattr(_fused, "NATIVE_ON_CPU", False)  # torch.compile on CPU (the GPU path's code)
    monkeypatch.delenv("SAMPLING_ARGMAX_FUSED", raising=False)
    logits = torch.randn(2, 3, 8, 6, generator=torch.Generator().manual_seed(1)) * 3
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a fallback would hide a compiler failure
        fused = _run(logits, "fused", tau)
    chunked = _run(logits, "chunked", tau)
    for a, b in zip(fused, chunked):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------ the native CPU kernel (default)
def _native_vs_reference(logits, tau, basis, gumbel, samples=5, points=None):
    results = []
    for implementation in ("fused", "reference"):
        leaves = [t.detach().clone().requires_grad_() for t in (logits, points) if t is not None]
        gen = torch.Generator().manual_seed(3)
        if points is None:
            out = sampling_argmax(leaves[0], samples, tau, basis, gumbel, gen, sigma=1.3,
                                  implementation=implementation)
        else:
            out = sampling_argmax_points(leaves[0], leaves[1], samples, tau, 0.05, gen, gumbel=gumbel,
                                         implementation=implementation)
        weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(9), dtype=out.dtype)
        results.append((out, *torch.autograd.grad((out * weights).sum(), leaves)))
    return results


@pytest.fixture
def native(monkeypatch):
    monkeypatch.delenv("SAMPLING_ARGMAX_FUSED", raising=False)
    assert _native.library() is not None, _native.failure()  # CI has a C compiler: a failed build is a failure


def test_native_uniforms_are_the_noise_protocol_bits(native):
    keys = sample_keys(-7, 4, torch.device("cpu"))[:, 1].contiguous()
    for dtype in (torch.float32, torch.float64):
        assert torch.equal(_native.uniforms(keys, 1001, dtype), _noise.uniforms(keys, 1001, dtype))


@pytest.mark.parametrize("tau", [1.0, 0.7, 2.0], ids=["one", "bounded", "bounded-hot"])
@pytest.mark.parametrize("grid,basis,gumbel", [((37,), "gaussian", "paper"), ((41,), "uniform", "authors"),
                                               ((37,), "triangular", "paper"), ((6, 37), "triangular", "authors"),
                                               ((3, 4, 21), "uniform", "paper")],
                         ids=["1d-gaussian", "1d-uniform", "1d-triangular", "2d", "3d"])
def test_native_equals_reference(native, grid, basis, gumbel, tau):
    # rows of 37/21 cells: the vector loop's body and its remainder
    logits = torch.randn(2, 3, *grid, generator=torch.Generator().manual_seed(1)) * 2
    assert _fused.kind(logits, _chunked.relax_mode(tau)) == "native"
    (out, grad), (ref, ref_grad) = _native_vs_reference(logits, tau, basis, gumbel)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_native_equals_reference_on_points(native, tau):
    logits, points = torch.randn(2, 4, 30), torch.rand(2, 30, 3)
    native_results, reference = _native_vs_reference(logits, tau, "gaussian", "paper", 6, points)
    for a, b in zip(native_results, reference):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("tau", [1.0, 0.7])
def test_native_point_kernel_equals_reference_without_a_points_gradient(native, dims, tau):
    # the whole point-set forward and backward in C (offsets, anchors, read-out): 37 points is the vector loop's
    # body and remainder; points without requires_grad take the path that makes no relaxed samples
    gen = torch.Generator().manual_seed(dims)
    logits, points = torch.randn(3, 5, 37, generator=gen) * 2, torch.rand(3, 37, dims, generator=gen) * 10 - 5
    results = []
    for implementation in ("fused", "reference"):
        x = logits.clone().requires_grad_()
        out = sampling_argmax_points(x, points, 7, tau, 0.3, torch.Generator().manual_seed(5),
                                     implementation=implementation)
        weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(9))
        results.append((out, *torch.autograd.grad((out * weights).sum(), x)))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_native_point_kernel_splits_rows_over_threads_without_changing_a_bit(native):
    logits, points = torch.randn(4, 6, 3000), torch.rand(4, 3000, 3)  # 2^16+ cell-samples: several threads
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 3):
            torch.set_num_threads(n)
            x = logits.clone().requires_grad_()
            out = sampling_argmax_points(x, points, 4, 0.8, generator=torch.Generator().manual_seed(1),
                                         implementation="fused")
            results.append((out, *torch.autograd.grad(out.square().sum(), x)))
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(*results):
        assert torch.equal(a, b)


@pytest.mark.parametrize("grid", [(5,), (3, 4), (2, 3, 2)], ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("tau", [1.0, 0.8])
def test_native_gradcheck(native, grid, tau):
    logits = torch.randn(1, 2, *grid, dtype=torch.float64, generator=torch.Generator().manual_seed(1),
                         requires_grad=True)
    points = torch.rand(1, 6, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x: sampling_argmax(x, 3, tau, "gaussian", "paper", torch.Generator().manual_seed(2),
                                  implementation="fused"), (logits,))
    assert torch.autograd.gradcheck(
        lambda x, p: sampling_argmax_points(x, p, 3, tau, 0.1, torch.Generator().manual_seed(2),
                                            implementation="fused"),
        (torch.randn(1, 2, 6, dtype=torch.float64, requires_grad=True), points))


def test_native_threads_split_rows_without_changing_a_bit(native):
    logits = torch.randn(4, 9, 40, 33, generator=torch.Generator().manual_seed(1))  # 2^16+ cell-samples
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 3):
            torch.set_num_threads(n)
            results.append(_native_vs_reference(logits, 0.7, "triangular", "paper", samples=2)[0])
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_small_temperatures_run_the_eager_chunk_functions(native):
    # the "shifted" form divides float rounding by tau: it keeps torch's own log (see _native's docstring)
    logits = torch.randn(2, 3, 6, 7)
    assert _fused.kind(logits, _chunked.relax_mode(0.1)) == "eager"
    assert _fused.kind(logits.half(), "one") == "eager"


@pytest.fixture
def unbuilt(monkeypatch, tmp_path):
    """A process that has built nothing and run nothing eagerly yet, with an empty kernel cache."""
    monkeypatch.delenv("SAMPLING_ARGMAX_FUSED", raising=False)
    monkeypatch.setenv("SAMPLING_ARGMAX_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(_native, "_library", [])
    monkeypatch.setattr(_native, "_failure", [])
    monkeypatch.setattr(_fused, "_eager_cell_samples", [0])


def test_auto_builds_the_kernel_once_eager_calls_paid_for_it(unbuilt, monkeypatch, tmp_path):
    # eager until BUILD_AFTER_CELL_SAMPLES cell-samples, then build and stay native
    logits = torch.randn(2, 3, 6, 5)  # 180 cells: 900 cell-samples per call of S = 5
    monkeypatch.setattr(_fused, "BUILD_AFTER_CELL_SAMPLES", 2 * 900)
    calls = []
    monkeypatch.setattr(_chunked, "native_forward_chunk",
                        lambda *a, **k: calls.append(1) or native_forward_chunk(*a, **k))
    first = [sampling_argmax(logits, 5, generator=torch.Generator().manual_seed(0)) for _ in range(2)]
    assert _native.library(build=False) is None and not calls  # the rent: 1800 cell-samples, not more
    third = sampling_argmax(logits, 5, generator=torch.Generator().manual_seed(0))
    assert _native.library(build=False) is not None and len(calls) == 1
    torch.testing.assert_close(third, first[0], rtol=1e-5, atol=1e-5)  # same seed, same samples
    # the next process finds the build in the cache and loads it without compiling -- but "auto" still pays the
    # same eager rent first, so a seeded run's numbers do not depend on whether the cache was filled
    (built,) = (tmp_path / "cache").glob("kernels-*.so")
    stamp = built.stat().st_mtime_ns
    monkeypatch.setattr(_native, "_library", [])
    monkeypatch.setattr(_fused, "_eager_cell_samples", [0])
    again = [sampling_argmax(logits, 5, generator=torch.Generator().manual_seed(0)) for _ in range(2)]
    assert len(calls) == 1 and all(torch.equal(a, b) for a, b in zip(again, first))
    monkeypatch.setattr(_native.subprocess, "run", None)  # no compiler run (the cache key's version is memoized)
    sampling_argmax(logits, 5, generator=torch.Generator().manual_seed(0))
    assert len(calls) == 2 and built.stat().st_mtime_ns == stamp


def test_point_sets_pay_the_rent_faster(unbuilt, monkeypatch):
    # an eager point-set cell-sample costs ~5x a grid's (offsets per point and axis): the build comes 5x sooner
    monkeypatch.setattr(_fused, "BUILD_AFTER_CELL_SAMPLES", 5 * 900)  # a grid would take 6 such calls
    logits, points = torch.randn(2, 3, 30), torch.rand(2, 30, 3)  # 900 cell-samples per call of S = 5
    sampling_argmax_points(logits, points, 5)
    assert _native.library(build=False) is None  # 4500 of 4500 paid: eager; the next call crosses and builds
    sampling_argmax_points(logits, points, 5)
    assert _native.library(build=False) is not None
    assert _fused._eager_cell_samples[0] == 2 * _fused.POINT_SET_RENT * 900


def test_no_c_compiler_falls_back_to_the_eager_path_with_one_warning(monkeypatch):
    monkeypatch.delenv("SAMPLING_ARGMAX_FUSED", raising=False)
    monkeypatch.setattr(_native, "_library", [])
    monkeypatch.setattr(_native, "_failure", [])
    monkeypatch.setattr(_native, "compiler", lambda: None)
    _fused._warn_once.cache_clear()
    logits = torch.randn(2, 3, 6, 5)
    with pytest.warns(RuntimeWarning, match="native CPU kernel could not be built: .*no C compiler found"):
        fused = _run(logits, "fused")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once only
        again = _run(logits, "fused")
    chunked = _run(logits, "chunked")
    for a, b, c in zip(fused, again, chunked):
        assert torch.equal(a, c) and torch.equal(b, c)
    assert not _fused.worth_it(2**40)  # "auto" stops trying
    _fused._warn_once.cache_clear()


def test_native_memory_stays_flat_in_samples_and_below_soft_argmax(native):
    # the goal: the allocator's peak over forward + backward <= 1.1x soft-argmax's (here at S = 60)
    logits = torch.randn(8, 8, 64, 64, requires_grad=True)

    def peak(fn):
        return peak_cpu_memory(lambda: torch.autograd.grad(fn().sum(), logits))[1]

    def sampling(samples):
        return lambda: sampling_argmax(logits, samples, 1.0, generator=torch.Generator(), implementation="fused")

    one, chunk, many = peak(sampling(1)), peak(sampling(8)), peak(sampling(200))
    soft = peak(lambda: soft_argmax(logits))
    assert _chunked.chunk_size(logits.view(8, 8, -1), 200, 128) == 8  # 256 KiB of (C, B, K, W + H) per tensor
    output = 200 * 8 * 8 * 2 * 4  # (B, K, S, dims): the result, and the read-outs, anchors, indices it is made of
    assert one <= chunk and many - chunk <= 6 * output, (one, chunk, many)  # no map-sized tensor per sample
    assert many <= 1.1 * soft, (many, soft)


def test_native_point_kernel_memory_is_flat_in_samples(native):
    # no (S, B, K, d N) offsets tensor: the peak grows by the (B, K, S, d) outputs only
    logits, points = torch.randn(8, 10, 2048, requires_grad=True), torch.rand(8, 2048, 3)

    def peak(samples):
        return peak_cpu_memory(lambda: torch.autograd.grad(sampling_argmax_points(
            logits, points, samples, 1.0, generator=torch.Generator(), implementation="fused").sum(), logits))[1]

    one, paper, many = peak(1), peak(30), peak(100)
    soft = peak_cpu_memory(lambda: torch.autograd.grad(soft_argmax_points(logits, points).sum(), logits))[1]
    output = 100 * 8 * 10 * 3 * 4  # one (B, K, S, d) float32 tensor at S = 100; a map per sample would be 68x it
    assert many - one <= 8 * output, (one, many)  # outputs, read-outs, anchors, int64 indices, their gradients
    assert paper <= 1.1 * soft, (paper, soft)  # the memory goal at the paper's S = 30


# ------------------------------------------------------------------------------------ CUDA: the compiled path
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("tau", [1.0, 0.5, 0.05])
def test_cuda_fused_equals_chunked_and_is_auto_s_choice(tau, monkeypatch):
    monkeypatch.delenv("SAMPLING_ARGMAX_FUSED", raising=False)
    monkeypatch.setattr(_fused, "backend", lambda: "inductor")  # the real compiler: Triton kernels
    logits = torch.randn(32, 17, 64, 48, device="cuda", generator=torch.Generator("cuda").manual_seed(1)) * 3
    assert _fused.worth_it(30 * logits.numel(), logits.device)

    def run(implementation):
        x = logits.detach().clone().requires_grad_()
        out = sampling_argmax(x, 30, tau, "triangular", "paper", torch.Generator("cuda").manual_seed(3),
                              implementation=implementation)
        (grad,) = torch.autograd.grad((out * torch.linspace(-1, 1, out.shape[-1], device="cuda")).sum(), x)
        return out, grad

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a fallback would hide a compiler failure
        fused, auto = run("fused"), run("auto")
    chunked = run("chunked")
    for a, b, c in zip(fused, chunked, auto):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
        assert torch.equal(a, c)


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the script measures for minutes")
def test_the_gpu_benchmark_says_there_is_no_gpu_and_exits_0():
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu.py"
    env = dict(os.environ, PYTHONPATH=str(script.parents[1] / "src"))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "no CUDA device on this machine" in done.stdout and "|" not in done.stdout
