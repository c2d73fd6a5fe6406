"""The fused (torch.compile) path: the same samples and gradients as the chunked path, gradcheck, "auto"'s
choice, and the fallback to the eager chunk functions when compilation is off or fails.

CI compiles with a recording backend that runs the traced graph eagerly: it checks that the chunk functions
trace as single graphs (``fullgraph=True``) and that the traced graphs compute what the eager code does,
without inductor's C++ build (~20-40 s per graph on the 2-core CI machine). The inductor test at the end runs
with ``SAMPLING_ARGMAX_TEST_INDUCTOR=1`` (a minute here); ``benchmarks/operator.py`` exercises inductor too.
"""

import os
import warnings

import pytest
import torch

from sampling_argmax import _chunked, _fused, sampling_argmax, sampling_argmax_points


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
    monkeypatch.delenv("SAMPLING_ARGMAX_FUSED", raising=False)
    logits = torch.randn(2, 3, 8, 6, generator=torch.Generator().manual_seed(1)) * 3
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a fallback would hide a compiler failure
        fused = _run(logits, "fused", tau)
    chunked = _run(logits, "chunked", tau)
    for a, b in zip(fused, chunked):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
