import numpy as np
import pytest
import torch
from scipy import stats

import sampling_argmax.learned_bases as lb
from sampling_argmax.functional import sampling_argmax, soft_argmax
from sampling_argmax.methods import LearnedBasisMethod, NotDefinedOnPointsError, paper_method
from sampling_argmax.learned_bases import (
    QuantileSpline,
    ShiftedGaussian,
    learned_basis_mean,
    learned_sampling_argmax,
)

FAMILIES = [ShiftedGaussian(), QuantileSpline(bins=4), QuantileSpline(bins=3, bound=1.5)]


def _random_params(basis, n, seed=0, scale=1.5):
    return torch.randn(n, basis.num_params, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale


@pytest.mark.parametrize("basis", FAMILIES, ids=repr)
def test_samples_follow_the_exact_cdf(basis):
    params = _random_params(basis, 1)
    draws = basis.noise((40000,), torch.Generator().manual_seed(1), "cpu", torch.float64)
    x = basis.sample(params.expand(40000, -1), draws)
    cdf = lambda v: basis.cdf(params.expand(len(v), -1), torch.as_tensor(v)).numpy()  # noqa: E731
    assert stats.kstest(x.numpy(), cdf).pvalue > 1e-3
    assert float(x.mean()) == pytest.approx(float(basis.mean(params)), abs=0.02)


@pytest.mark.parametrize("basis", FAMILIES, ids=repr)
def test_the_cdf_is_the_integral_of_the_pdf(basis):
    params = _random_params(basis, 1, seed=3).expand(8001, -1)
    x = torch.linspace(-6.0, 6.0, 8001, dtype=torch.float64)
    pdf, cdf = basis.pdf(params, x), basis.cdf(params, x)
    assert torch.trapezoid(pdf, x).item() == pytest.approx(1.0, abs=2e-3)
    integral = torch.cumulative_trapezoid(pdf, x)  # robust to the spline's cusps at knots and edges
    assert torch.allclose(integral, cdf[1:] - cdf[0], atol=2e-3)
    assert (pdf >= 0).all() and cdf[0] == pytest.approx(0.0, abs=1e-6) and cdf[-1] == pytest.approx(1.0, abs=1e-6)


def test_the_spline_cdf_inverts_its_quantile():
    basis = QuantileSpline(bins=5, bound=1.0)
    params = _random_params(basis, 200, seed=4, scale=2.0)
    u = torch.rand(200, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    assert torch.allclose(basis.cdf(params, basis.sample(params, u)), u, atol=1e-8)


def test_raw_zeros_give_a_centred_law():
    for basis in FAMILIES:
        assert basis.mean(torch.zeros(1, basis.num_params)).abs().item() < 1e-6


def _mixture_cdf(basis, logits, params):
    """x-marginal cdf of the 1D mixture sum_c pi_c F_c(x - c)."""
    prob = torch.softmax(logits, -1)
    centres = torch.arange(len(prob), dtype=torch.float64)
    return lambda v: (prob * basis.cdf(params, torch.as_tensor(v)[:, None] - centres)).sum(-1).numpy()


@pytest.mark.parametrize("basis", [ShiftedGaussian(), QuantileSpline(bins=4)], ids=repr)
def test_at_tiny_tau_the_samples_follow_the_mixture_of_the_learned_laws(basis):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 1, 6, generator=gen, dtype=torch.float64)
    params = torch.randn(1, 1, 1, basis.num_params, 6, generator=gen, dtype=torch.float64)
    y = learned_sampling_argmax(logits, params, basis, num_samples=6000, tau=1e-4,
                                generator=torch.Generator().manual_seed(1), chunk=2000)
    cdf = _mixture_cdf(basis, logits[0, 0], params[0, 0, 0].T)
    assert stats.kstest(y[0, 0, :, 0].numpy(), cdf).pvalue > 1e-3


def test_on_a_2d_grid_each_axis_follows_its_marginal_mixture():
    basis = ShiftedGaussian()
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(1, 1, 3, 4, generator=gen, dtype=torch.float64)  # H 3, W 4
    params = torch.randn(1, 1, 2, 2, 3, 4, generator=gen, dtype=torch.float64)
    y = learned_sampling_argmax(logits, params, basis, num_samples=6000, tau=1e-4,
                                generator=torch.Generator().manual_seed(3), chunk=3000)
    prob = torch.softmax(logits.flatten(), -1)
    centres = lb._centres((3, 4), "cpu", torch.float64)  # (2, 12): x then y
    for axis in range(2):
        p = params[0, 0, axis].flatten(1).T  # (12, P)
        cdf = lambda v, a=axis, p=p: (prob * basis.cdf(p, torch.as_tensor(v)[:, None] - centres[a])).sum(-1).numpy()  # noqa: E731
        assert stats.kstest(y[0, 0, :, axis].numpy(), cdf).pvalue > 1e-3
    mean = learned_basis_mean(logits, params, basis)[0, 0]
    assert torch.allclose(y[0, 0].mean(0), mean, atol=0.05)


def test_a_3d_grid_reads_each_axis_from_its_own_parameters():
    """Offsets are per axis in x, y, z order: shifting only z's law moves only the z read-out."""
    basis = ShiftedGaussian()
    logits = torch.randn(1, 2, 3, 4, 5, dtype=torch.float64)  # D 3, H 4, W 5
    params = torch.zeros(1, 2, 3, 2, 3, 4, 5, dtype=torch.float64)
    params[:, :, 2, 0] = 20.0  # z mean offset saturates at +1 cell
    centred = learned_basis_mean(logits, torch.zeros_like(params), basis)
    shifted = learned_basis_mean(logits, params, basis)
    assert torch.allclose(shifted - centred, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), atol=1e-5)
    y = learned_sampling_argmax(logits, params, basis, num_samples=4000, tau=1e-4,
                                generator=torch.Generator().manual_seed(4), chunk=2000)
    assert torch.allclose(y.mean(2), shifted, atol=0.1)


@pytest.mark.parametrize("basis", [ShiftedGaussian(), QuantileSpline(bins=2)], ids=repr)
def test_gradcheck_in_float64(basis):
    logits = torch.randn(1, 2, 4, dtype=torch.float64, requires_grad=True)
    params = torch.randn(1, 2, 1, basis.num_params, 4, dtype=torch.float64, requires_grad=True)

    def f(lg, pr):  # the same noise at every call: gradcheck compares the function with itself
        return learned_sampling_argmax(lg, pr, basis, num_samples=3, tau=0.7,
                                       generator=torch.Generator().manual_seed(7), chunk=2)

    assert torch.autograd.gradcheck(f, (logits, params), eps=1e-6, atol=1e-5)


def test_chunks_are_recomputed_with_their_own_noise(monkeypatch):
    """Activation checkpointing changes memory, not values: gradients equal plain autograd's."""
    basis = QuantileSpline(bins=3)
    logits = torch.randn(2, 3, 5, 5, requires_grad=True)
    params = torch.randn(2, 3, 2, basis.num_params, 5, 5, requires_grad=True)

    def grads():
        y = learned_sampling_argmax(logits, params, basis, num_samples=7, tau=0.5,
                                    generator=torch.Generator().manual_seed(11), chunk=3)
        return y, torch.autograd.grad(y.square().sum(), (logits, params))

    y1, g1 = grads()
    monkeypatch.setattr(lb, "checkpoint", lambda fn, *args, **kwargs: fn(*args))
    y2, g2 = grads()
    assert torch.equal(y1, y2)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(g1, g2))


def test_a_learned_basis_reads_out_between_cell_centres():
    """The read-out bias the fixed bases leave on a coarse grid (docs/methods.md: triangular at tau 0.5 reads
    7.14 for a target at 7.30) goes: free logits and free Gaussian offsets, trained on the expected error."""
    torch.manual_seed(0)
    basis = ShiftedGaussian()
    logits = torch.zeros(1, 1, 12, requires_grad=True)
    params = torch.zeros(1, 1, 1, 2, 12, requires_grad=True)
    opt = torch.optim.Adam([logits, params], lr=0.05)
    for _ in range(300):
        y = learned_sampling_argmax(logits, params, basis, num_samples=32, tau=0.5)
        loss = (y - 7.30).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    readout = learned_basis_mean(logits, params, basis).item()
    assert abs(readout - 7.30) < 0.02
    # the control: the fixed triangular basis, same objective and budget, stays pulled toward the centre 7
    torch.manual_seed(0)
    fixed = torch.zeros(1, 1, 12, requires_grad=True)
    opt = torch.optim.Adam([fixed], lr=0.05)
    for _ in range(300):
        loss = (sampling_argmax(fixed, num_samples=32, tau=0.5) - 7.30).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert 7.30 - soft_argmax(fixed).item() > 0.1


def test_bad_parameters_are_refused_with_the_expected_shape():
    with pytest.raises(ValueError, match=r"basis_params must have shape \(B, K, dims, P, \*grid\) = \(1, 2, 2, 2, 4, 4\)"):
        learned_sampling_argmax(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 2, 4, 4), ShiftedGaussian())
    with pytest.raises(ValueError, match="max_scale"):
        ShiftedGaussian(min_scale=1.0, max_scale=0.5)
    with pytest.raises(ValueError, match="bins"):
        QuantileSpline(bins=0)
    with pytest.raises(ValueError, match="tau"):
        learned_sampling_argmax(torch.zeros(1, 1, 4), torch.zeros(1, 1, 1, 2, 4), ShiftedGaussian(), tau=0.0)


def test_float32_samples_stay_finite_at_extreme_logits_and_tiny_tau():
    basis = QuantileSpline()
    logits = torch.tensor([[[-1e4, 0.0, 1e4, 3e4]]], requires_grad=True)
    params = torch.randn(1, 1, 1, basis.num_params, 4, requires_grad=True)
    y = learned_sampling_argmax(logits, params, basis, num_samples=4, tau=1e-6)
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(logits.grad).all() and torch.isfinite(params.grad).all()
    assert np.allclose(y.detach().numpy(), 3.0, atol=1.0)


def test_the_method_reads_out_the_mixture_mean_and_soft_argmax_for_centred_laws():
    method = paper_method("samp_lgau")
    output = torch.randn(2, 3, method.output_channels(2), 6, 5)
    output[:, :, 1:] = 0.0  # raw zeros: centred laws, so the mixture mean is the soft-argmax
    assert torch.allclose(method.predict(output), soft_argmax(output[:, :, 0]), atol=1e-5)
    output[:, :, 1] = 20.0  # x shifts saturate at +max_shift = 1 cell
    assert torch.allclose(method.predict(output)[..., 0], soft_argmax(output[:, :, 0])[..., 0] + 1.0, atol=1e-4)
    assert torch.equal(method.maps(output), output[:, :, 0])
    assert method.confidence(output).shape == (2, 3)


def test_the_method_loss_respects_visibility_and_refuses_what_it_cannot_read():
    method = LearnedBasisMethod(basis="quantile_spline", num_samples=4)
    output = torch.randn(2, 3, method.output_channels(1), 7, requires_grad=True)
    weight = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    method.loss(output, torch.rand(2, 3, 1) * 6, weight).backward()
    assert output.grad[1, :2].abs().sum() == 0 and output.grad[0, 0].abs().sum() > 0
    with pytest.raises(ValueError, match="19 channels per keypoint"):
        method.predict(torch.zeros(1, 3, 5, 8, 8))
    with pytest.raises(NotDefinedOnPointsError):
        method.predict(torch.zeros(1, 3, 10, 5), points=torch.zeros(1, 5, 3))
    with pytest.raises(ValueError, match="basis"):
        LearnedBasisMethod(basis="triangular")
