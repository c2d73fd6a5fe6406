"""Sampling-argmax: samples follow the mixture, chunked == reference, gradcheck, memory flat in S,
and the authors' options (reread, reweight, clipped gradient) against direct formulas."""

import numpy as np
import pytest
import torch
from scipy import stats

from sampling_argmax import (
    ConstantTemperature,
    _noise,
    LinearTemperature,
    SamplingArgmax,
    _chunked,
    marginals,
    sampling_argmax,
    sampling_argmax_points,
    soft_argmax,
)
from sampling_argmax._memory import peak_cpu_memory
from sampling_argmax.bases import get_basis
from sampling_argmax.functional import _ClippedIntegral, _interpolate
from sampling_argmax.methods import paper_method

BASES = ["uniform", "triangular", "gaussian"]
N = 20_000


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _mixture_cdf(probs, basis):
    """Exact CDF of p(y) = sum_i pi_i f_i(y) for cell centres 0..n-1."""
    probs = probs.double()
    centres = torch.arange(probs.shape[-1], dtype=torch.float64)

    def cdf(y):
        y = torch.as_tensor(y, dtype=torch.float64)[:, None]
        return (probs * basis.cdf(y - centres)).sum(-1).numpy()

    return cdf


def _samples(logits, tau, basis, seed=0):
    """N independent samples of one map: the map repeated over the batch, one sample each."""
    return sampling_argmax(logits.expand(N, 1, *logits.shape), 1, tau, basis, generator=_gen(seed))[:, 0, 0]


_RANDOM_1D = torch.randn(12, generator=_gen(123)) * 1.5
_RANDOM_2D = torch.randn(7, 9, generator=_gen(124)) * 1.5
_TWO_MODES = torch.full((16,), -1e4).index_fill_(0, torch.tensor([3, 11]), 0.0)


# ------------------------------------------------------------------------------------------- distribution
@pytest.mark.parametrize("basis", BASES)
def test_near_zero_temperature_samples_follow_the_mixture(basis):
    f = get_basis(basis)
    s1 = _samples(_RANDOM_1D, 0.01, basis)[:, 0]
    assert stats.kstest(s1.numpy(), _mixture_cdf(torch.softmax(_RANDOM_1D, -1), f)).pvalue > 0.01
    s2 = _samples(_RANDOM_2D, 0.01, basis)
    for axis, marginal in enumerate(marginals(_RANDOM_2D[None, None])):
        assert stats.kstest(s2[:, axis].numpy(), _mixture_cdf(marginal[0, 0], f)).pvalue > 0.01


@pytest.mark.parametrize("basis", BASES)
def test_visible_relaxation_is_rejected(basis):
    # two separated modes: at tau = 0.2 many samples are blends that land between them
    samples = _samples(_TWO_MODES, 0.2, basis)[:, 0]
    assert stats.kstest(samples.numpy(), _mixture_cdf(torch.softmax(_TWO_MODES, -1), get_basis(basis))).pvalue < 1e-6


def test_sample_mean_converges_to_the_expectation():
    # the S axis itself (reference path: vectorized over S); tau small so that E[relaxed] ~ pi
    logits = torch.randn(1, 1, 10, generator=_gen(5))
    expectation = soft_argmax(logits)[0, 0, 0]
    samples = sampling_argmax(logits, N, 0.01, "triangular", generator=_gen(), implementation="reference")
    samples = samples[0, 0, :, 0]
    spread = samples.std()
    errors = []
    for count in (10, 100, 1000, N):
        error = (samples[:count].mean() - expectation).abs()
        assert error < 4 * spread / count**0.5 + 0.01, count
        errors.append(float(error))
    assert errors[-1] < 0.05 and errors[-1] < errors[0]


# ---------------------------------------------------------------------------------- chunked == reference
def _both(fn, *inputs):
    results = []
    for implementation in ("reference", "chunked"):
        leaves = [t.detach().clone().requires_grad_() for t in inputs]
        out = fn(*leaves, implementation=implementation)
        weights = torch.randn(out.shape, generator=_gen(99), dtype=out.dtype)
        grads = torch.autograd.grad((out * weights).sum(), leaves)
        results.append((out, *grads))
    return results


IMPLEMENTATIONS = ["reference", "chunked", "chunked-one-at-a-time"]


def _implementation(name, monkeypatch):
    if name == "chunked-one-at-a-time":
        monkeypatch.setattr(_chunked, "CHUNK_BYTES", 0)
        return "chunked"
    return name


def _check_equal(grid, basis, gumbel):
    logits = torch.randn(2, 3, *grid, generator=_gen(1)) * 2

    def fn(x, implementation):
        return sampling_argmax(x, 5, 0.7, basis, gumbel, _gen(3), sigma=1.3, implementation=implementation)

    (ref, ref_grad), (eff, eff_grad) = _both(fn, logits)
    torch.testing.assert_close(eff, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(eff_grad, ref_grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("gumbel", ["paper", "authors"])
@pytest.mark.parametrize("basis", BASES)
@pytest.mark.parametrize("grid", [(11,), (6, 7), (3, 4, 5)], ids=["1d", "2d", "3d"])
def test_chunked_equals_reference(grid, basis, gumbel):
    _check_equal(grid, basis, gumbel)  # small maps: the chunked path runs all 5 samples in one chunk


@pytest.mark.parametrize("chunk", [1, 2])
@pytest.mark.parametrize("grid,gumbel", [((11,), "paper"), ((6, 7), "authors"), ((3, 4, 5), "paper")],
                         ids=["1d", "2d", "3d"])
def test_chunked_in_smaller_chunks_equals_reference(grid, gumbel, chunk, monkeypatch):
    # chunk 1: the regime of maps >= 4 MiB; chunk 2: S = 5 runs as 2 + 2 + 1 (both accumulation paths)
    map_bytes = 2 * 3 * torch.Size(grid).numel() * 4
    monkeypatch.setattr(_chunked, "CHUNK_BYTES", 2 * map_bytes * chunk)
    assert _chunked.chunk_size(torch.zeros(2, 3, *grid), 5) == chunk
    _check_equal(grid, "triangular", gumbel)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS[1:])
def test_chunked_equals_reference_on_points(implementation, monkeypatch):
    _implementation(implementation, monkeypatch)
    logits, points = torch.randn(2, 4, 30, generator=_gen(1)), torch.rand(2, 30, 3, generator=_gen(2))

    def fn(x, p, implementation):
        return sampling_argmax_points(x, p, 6, 0.5, 0.05, _gen(3), implementation=implementation)

    ref, eff = _both(fn, logits, points)
    for a, b in zip(ref, eff):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def test_every_implementation_draws_one_seed_from_the_generator():
    # the counter-based noise: one int64 per call, whatever S and the map size; all else is a hash of it
    logits = torch.randn(2, 3, 6, 5)
    expected = _gen(4)
    torch.randint(-(2**63), 2**63 - 1, (1,), generator=expected)
    for implementation in ("reference", "chunked"):
        for num_samples in (1, 7):
            g = _gen(4)
            sampling_argmax(logits, num_samples, generator=g, implementation=implementation)
            assert torch.equal(g.get_state(), expected.get_state())


# ------------------------------------------------------------------------------------------------ gradcheck
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("grid,basis,gumbel", [((6,), "triangular", "paper"), ((3, 4), "gaussian", "authors"),
                                               ((2, 3, 4), "uniform", "paper")], ids=["1d", "2d", "3d"])
def test_gradcheck(implementation, grid, basis, gumbel, monkeypatch):
    implementation = _implementation(implementation, monkeypatch)
    logits = torch.randn(1, 2, *grid, dtype=torch.float64, generator=_gen(1), requires_grad=True)

    def fn(x):
        return sampling_argmax(x, 3, 0.8, basis, gumbel, _gen(2), implementation=implementation)

    assert torch.autograd.gradcheck(fn, (logits,))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_gradcheck_points(implementation, monkeypatch):
    implementation = _implementation(implementation, monkeypatch)
    logits = torch.randn(1, 2, 8, dtype=torch.float64, generator=_gen(1), requires_grad=True)
    points = torch.rand(1, 8, 3, dtype=torch.float64, generator=_gen(2), requires_grad=True)

    def fn(x, p):
        return sampling_argmax_points(x, p, 3, 0.8, 0.05, _gen(3), implementation=implementation)

    assert torch.autograd.gradcheck(fn, (logits, points))


@pytest.mark.parametrize("option", [dict(basis="triangular", triangular_reread=True),
                                    dict(basis="gaussian", gaussian_reweight=True)], ids=["reread", "reweight"])
def test_gradcheck_authors_options(option):
    logits = torch.randn(1, 2, 4, 5, dtype=torch.float64, generator=_gen(1), requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: sampling_argmax(x, 2, 0.8, generator=_gen(2), **option), (logits,))


# ---------------------------------------------------------------------------------------- authors' options
def _first_sample_noise(shape, seed, dtype):
    """Exponentials E (Gumbel noise g = -log E) and the two offset uniforms of sample 0 of a call with
    generator ``_gen(seed)`` on logits of ``shape`` (B, K, n): the documented counter-based protocol."""
    call_seed = int(torch.randint(-(2**63), 2**63 - 1, (1,), generator=_gen(seed)).item())
    keys = _noise.sample_keys(call_seed, 1, torch.device("cpu"))
    count = shape.numel()
    e, u1, u2 = (_noise.uniforms(keys[:, i], count, dtype).view(shape) for i in range(3))
    return -torch.log(e), u1, u2


def _replay_1d(logits, tau, basis):
    """Relaxed marginal and perturbed positions of one 1D sample, drawn by the documented protocol."""
    e, u1, u2 = _first_sample_noise(logits.shape, 8, logits.dtype)
    eps = get_basis(basis).from_uniforms(u1, u2)
    relaxed = torch.softmax((torch.log_softmax(logits, -1) - torch.log(e)) / tau, -1)
    return relaxed, torch.arange(logits.shape[-1], dtype=logits.dtype) + eps, eps


def test_gaussian_reweight_matches_its_formula():
    logits = torch.randn(2, 3, 9, dtype=torch.float64)
    relaxed, pos, eps = _replay_1d(logits, 0.5, "gaussian")
    w = relaxed * torch.exp(-2 * eps**2)
    expected = (w * pos).sum(-1) / w.sum(-1)
    out = sampling_argmax(logits, 1, 0.5, "gaussian", generator=_gen(8), gaussian_reweight=True)
    torch.testing.assert_close(out[:, :, 0, 0], expected)
    plain = sampling_argmax(logits, 1, 0.5, "gaussian", generator=_gen(8))
    assert not torch.allclose(out, plain)


def test_triangular_reread_matches_its_formula():
    logits = torch.randn(2, 3, 9, dtype=torch.float64)
    relaxed, pos, _ = _replay_1d(logits, 0.5, "triangular")
    grid = torch.arange(-1.0, 10.0, dtype=torch.float64)  # zero beyond the grid
    padded = torch.nn.functional.pad(relaxed, (1, 1))
    reread = torch.from_numpy(np.array([[np.interp(pos[b, k].numpy(), grid.numpy(), padded[b, k].numpy())
                                         for k in range(3)] for b in range(2)]))
    expected = (reread * pos).sum(-1) / reread.sum(-1)
    out = sampling_argmax(logits, 1, 0.5, "triangular", generator=_gen(8), triangular_reread=True)
    torch.testing.assert_close(out[:, :, 0, 0], expected)


def test_interpolate_is_exact_at_cells_and_zero_outside():
    values = torch.tensor([1.0, 3.0, 2.0])
    pos = torch.tensor([0.0, 0.5, 2.0, 2.5, -1.0, -0.5, 3.0])
    torch.testing.assert_close(_interpolate(values, pos), torch.tensor([1.0, 2.0, 2.0, 1.0, 0.0, 0.5, 0.0]))


def test_clipped_gradient_replaces_the_weight_gradient_by_plus_minus_two_per_normalized_unit():
    weights = torch.tensor([[0.2, 0.3, 0.5]], requires_grad=True)
    positions = torch.tensor([[0.1, 1.2, 1.9]])
    out = _ClippedIntegral.apply(weights, positions, 6.0)
    torch.testing.assert_close(out, (weights * positions).sum(-1))
    out.sum().backward()  # out = 1.33: positions >= out get +6, the others -6
    torch.testing.assert_close(weights.grad, torch.tensor([[-6.0, -6.0, 6.0]]))
    # through the operator: same forward as the plain path, different gradient
    logits = torch.randn(2, 3, 8, 6, requires_grad=True)
    clipped = sampling_argmax(logits, 2, 0.5, generator=_gen(), clipped_gradient=True)
    plain = sampling_argmax(logits, 2, 0.5, generator=_gen())
    torch.testing.assert_close(clipped, plain)
    (g_clipped,) = torch.autograd.grad(clipped.sum(), logits)
    (g_plain,) = torch.autograd.grad(plain.sum(), logits)
    assert not torch.allclose(g_clipped, g_plain)


# ---------------------------------------------------------------------------------------------------- memory
def _fwd_bwd_peak(logits, num_samples, implementation):
    def run():
        out = sampling_argmax(logits, num_samples, 1.0, generator=_gen(), implementation=implementation)
        (grad,) = torch.autograd.grad(out.sum(), logits)
        return grad

    return peak_cpu_memory(run)[1]


def test_the_memory_probe_reports_a_known_allocation():
    # calibrates the probe the memory tests below rely on: one 4 MB tensor alive at the end, a 2 MB one freed
    # inside, a 1 MB one allocated after that free (the peak is 6 MB, not 7 MB and not 4 MB)
    def run():
        kept = torch.empty(1_000_000)
        temporary = torch.empty(500_000)
        del temporary
        later = torch.empty(250_000)
        del later
        return kept

    kept, peak = peak_cpu_memory(run)
    assert kept.numel() == 1_000_000 and peak == 6_000_000
    # the 24,000-byte operand and the 8-byte result are alive together
    assert peak_cpu_memory(lambda: torch.ones(3, 1000, dtype=torch.float64).sum())[1] == 24_008


def test_chunked_memory_is_flat_in_samples_and_far_below_the_reference(monkeypatch):
    monkeypatch.setattr(_chunked, "CHUNK_BYTES", 0)  # one sample at a time, as for maps of >= 4 MiB
    logits = torch.randn(4, 4, 32, 32, requires_grad=True)
    map_bytes = logits.numel() * 4
    one, many = _fwd_bwd_peak(logits, 1, "chunked"), _fwd_bwd_peak(logits, 20, "chunked")
    reference = _fwd_bwd_peak(logits, 20, "reference")
    assert many <= 1.1 * one, (one, many)
    # accumulator, the per-call weights pi' = exp(x - max x), the noise hash and its shifted copy (eagerly),
    # plus small per-axis vectors
    assert many <= 4.5 * map_bytes, many / map_bytes
    assert reference >= 10 * many, (reference, many)


def test_chunked_memory_is_bounded_by_the_chunk_budget():
    logits = torch.randn(4, 4, 32, 32, requires_grad=True)
    map_bytes = logits.numel() * 4
    assert _chunked.chunk_size(logits, 1000) == _chunked.CHUNK_BYTES // (2 * map_bytes)  # 64 samples
    mid, large = _fwd_bwd_peak(logits, 150, "chunked"), _fwd_bwd_peak(logits, 300, "chunked")
    assert large <= 1.1 * mid, (mid, large)
    assert large <= _chunked.CHUNK_BYTES * 1.25 + 2 * map_bytes, large


# ------------------------------------------------------------------------------------------------------ bases
@pytest.mark.parametrize("basis,variance", [("uniform", 1 / 12), ("triangular", 1 / 6), ("gaussian", 0.7**2)])
def test_bases_sample_their_law_and_pdf_is_the_cdf_derivative(basis, variance):
    f = get_basis(basis, sigma=0.7)
    eps = f.sample((200_000,), generator=_gen(), dtype=torch.float64)
    assert abs(float(eps.mean())) < 0.01 and float(eps.var()) == pytest.approx(variance, rel=0.02)
    x = torch.linspace(-2.5, 2.5, 1001, dtype=torch.float64)
    numeric = (f.cdf(x + 1e-6) - f.cdf(x - 1e-6)) / 2e-6
    inside = (x.abs() - 0.5).abs() > 1e-3  # away from the uniform's jumps
    torch.testing.assert_close(numeric[inside], f.pdf(x)[inside], atol=1e-4, rtol=1e-4)
    assert float(f.cdf(torch.tensor(-3.0, dtype=torch.float64))) < 1e-3 < 0.999 < float(f.cdf(torch.tensor(3.0)))


# ------------------------------------------------------------------------------------------ small temperatures
def _near_tie_logits(shape, tau, gumbel, seed, dtype=torch.float32):
    """Logits (B, K, M) whose first sample's perturbed values y (x + g, or tau x + g) tie within a few tau
    on 4 cells per map -- replayed from the noise protocol -- and lose by 30 on the others: the regime
    where the relaxed sample is not one-hot and the gradient is ~1/tau."""
    g = -torch.log(_first_sample_noise(torch.Size(shape), seed, dtype)[0].double())
    delta = torch.full(shape, -30.0, dtype=torch.float64)
    delta[..., :4] = tau * torch.randn(*shape[:-1], 4, generator=_gen(seed + 1), dtype=torch.float64)
    delta = delta[..., torch.randperm(shape[-1], generator=_gen(seed + 2))]
    y = delta - g
    return (y if gumbel == "paper" else y / tau).to(dtype)


@pytest.mark.parametrize("tau", [1e-4, 1e-6], ids=["1e-4", "MIN_TAU"])
@pytest.mark.parametrize("gumbel", ["paper", "authors"])
@pytest.mark.parametrize("grid", [(40,), (6, 7), (3, 4, 5), "points"], ids=["1d", "2d", "3d", "points"])
def test_small_tau_chunked_equals_reference_and_stays_finite(grid, gumbel, tau):
    # before: the chunked (then "efficient") backward subtracted two grid-sized numbers and multiplied the rounding by 1/tau
    # (gradient errors of 1e-2 at tau = 1e-4, 1 at 1e-6 where the reference's gradient was 0)
    m = 30 if grid == "points" else torch.Size(grid).numel()
    logits = _near_tie_logits((2, 3, m), tau, gumbel, seed=11)
    if grid == "points":
        points = torch.rand(2, m, 3, generator=_gen(4))

        def fn(x, implementation):
            return sampling_argmax_points(x, points, 3, tau, 0.05, _gen(11), gumbel=gumbel,
                                          implementation=implementation)
    else:
        logits = logits.view(2, 3, *grid)

        def fn(x, implementation):
            return sampling_argmax(x, 3, tau, "triangular", gumbel, _gen(11), implementation=implementation)

    (ref, ref_grad), (eff, eff_grad) = _both(fn, logits)
    for t in (ref, ref_grad, eff, eff_grad):
        assert torch.isfinite(t).all()
    scale = 1 / tau if gumbel == "paper" else 1.0
    assert ref_grad.abs().max() > 0.01 * scale  # the near-tie regime is exercised: gradients ~1/tau
    torch.testing.assert_close(eff, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(eff_grad, ref_grad, rtol=1e-4, atol=1e-5 * scale)
    # the samples are blends of the tied cells, not hard picks, so the relaxation is really at work
    assert (ref[:, :, 0] - ref[:, :, 0].round()).abs().max() > 1e-3


@pytest.mark.parametrize("tau", [1e-7, 1e-30, 1e-45])
def test_tau_below_min_tau_is_refused_everywhere(tau):
    logits = torch.randn(1, 2, 8)
    for call in (lambda: sampling_argmax(logits, 2, tau),
                 lambda: sampling_argmax(logits, 2, tau, implementation="reference"),
                 lambda: sampling_argmax_points(logits, torch.rand(1, 8, 2), 2, tau),
                 lambda: SamplingArgmax(tau=tau),
                 lambda: ConstantTemperature(tau),
                 lambda: LinearTemperature(end=tau),
                 lambda: paper_method("samp_tri", schedule=LinearTemperature(start=tau))):
        with pytest.raises(ValueError, match=r"(tau|start|end) must be >= 1e-06 \(MIN_TAU\)"):
            call()


def test_tau_below_min_tau_from_a_custom_schedule_is_refused_at_the_loss():
    method = paper_method("samp_tri", num_samples=2, schedule=lambda epoch: 1e-9)
    with pytest.raises(ValueError, match=r"tau must be >= 1e-06 \(MIN_TAU\), got 1e-09"):
        method.loss(torch.randn(1, 2, 6, 5), torch.rand(1, 2, 2))


# ------------------------------------------------------------------------------------------ sample budget
def test_too_many_cell_samples_are_refused_with_the_count():
    # 2^31 samples of a 1024-cell map: 2.2e12 cell-samples, hours of compute (before: it started and hung)
    with pytest.raises(ValueError, match=r"num_samples=2147483648 .* 2\.2e\+12 cell-samples .* MAX_CELL_SAMPLES"):
        sampling_argmax(torch.zeros(1, 1, 1024), 2**31)


@pytest.mark.parametrize("implementation", ["reference", "chunked"])
def test_memory_beyond_the_device_is_refused_with_the_estimate(implementation):
    # reference: 3 maps per sample, 1e8 samples of a 1000-cell map ~ 1.1 TiB; chunked: the (B, K, S, dims)
    # output alone, 2^38 samples of a 2-cell map ~ 3 TiB. Both beyond any machine's RAM, within the time bound.
    logits, samples = (torch.zeros(1, 1, 1000), 10**8) if implementation == "reference" else \
        (torch.zeros(1, 1, 2), 2**38)
    with pytest.raises(ValueError, match=rf"implementation={implementation} .* needs about [0-9.e+]+ GiB, more than"):
        sampling_argmax(logits, samples, implementation=implementation)


def test_the_budget_check_does_not_touch_sensible_calls():
    # COCO-sized S = 30 reference call: ~800 MiB, far below the limits -- only its estimate is computed here
    from sampling_argmax._checks import check_sampling_budget

    check_sampling_budget(torch.empty(32, 17, 64 * 48), 30, 64 + 48, 2, False, 8 * 2**20)
    check_sampling_budget(torch.empty(16, 18, 64**3), 10, 3 * 64, 3, True, 8 * 2**20)  # Human3.6M, chunked


@pytest.mark.parametrize("shape,length", [((2, 1, 2**31 + 1), 1), ((2, 2, 2**20), 2**30 + 1)],
                         ids=["gumbel-noise", "offsets"])
def test_more_noise_counters_than_the_hash_has_are_refused(shape, length):
    # the per-sample counter of the noise is 32-bit (B K M for the Gumbel noise, B K L for the offsets): beyond 2^32
    # the noise would repeat silently; shapes only (meta tensors), checked before anything is allocated
    from sampling_argmax._checks import check_sampling_budget

    with pytest.raises(ValueError, match=r"noise counters per sample .* more than 2\^32: .* split the batch"):
        check_sampling_budget(torch.empty(shape, device="meta"), 1, length, 1, True, 8 * 2**20)
