"""Map statistics, soft-argmax, input checks, numerics under autocast and extreme logits, modules, schedules."""

import math

import pytest
import torch

from sampling_argmax.losses import coordinate_loss
from sampling_argmax.methods import paper_method

from sampling_argmax import (
    ConstantTemperature,
    ExponentialTemperature,
    LinearTemperature,
    SamplingArgmax,
    SoftArgmax,
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


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------------ statistics
def test_probabilities_and_marginals_in_xyz_order():
    logits = torch.randn(2, 3, 4, 5, 6)  # (B, K, D, H, W)
    probs = grid_probabilities(logits)
    assert probs.shape == logits.shape and probs.dtype == torch.float32
    torch.testing.assert_close(probs.flatten(2).sum(-1), torch.ones(2, 3))
    mx, my, mz = marginals(logits)
    assert (mx.shape, my.shape, mz.shape) == ((2, 3, 6), (2, 3, 5), (2, 3, 4))
    torch.testing.assert_close(my, probs.sum(dim=(2, 4)))


def test_soft_argmax_variance_and_confidences_match_direct_formulas():
    logits = torch.randn(2, 3, 7, 9, dtype=torch.float64)
    probs = torch.softmax(logits.flatten(2), -1).view_as(logits)
    ys, xs = torch.meshgrid(torch.arange(7.0, dtype=torch.float64), torch.arange(9.0, dtype=torch.float64),
                            indexing="ij")
    mean = torch.stack([(probs * xs).sum((2, 3)), (probs * ys).sum((2, 3))], -1)
    torch.testing.assert_close(soft_argmax(logits), mean)
    var = torch.stack([(probs * xs**2).sum((2, 3)), (probs * ys**2).sum((2, 3))], -1) - mean**2
    torch.testing.assert_close(grid_variance(logits), var)
    torch.testing.assert_close(peak_confidence(logits), probs.flatten(2).amax(-1))
    coords = torch.tensor([4.0, 3.0], dtype=torch.float64).expand(2, 3, 2)
    near = ((xs - 4) ** 2 + (ys - 3) ** 2) <= 1.5**2  # 9 cells: the 3x3 block (corners at distance 1.41)
    assert int(near.sum()) == 9
    torch.testing.assert_close(mass_confidence(logits, coords), (probs * near).sum((2, 3)))


def test_mass_confidence_of_a_peaked_map_is_one():
    logits = torch.full((1, 2, 8, 8), -1e4)
    logits[0, :, 5, 2] = 0.0
    torch.testing.assert_close(mass_confidence(logits), torch.ones(1, 2))
    torch.testing.assert_close(peak_confidence(logits), torch.ones(1, 2))


def test_soft_argmax_points_is_the_weighted_mean_of_points():
    logits, points = torch.randn(2, 4, 30), torch.randn(2, 30, 3)
    expected = torch.einsum("bkn,bnd->bkd", torch.softmax(logits, -1), points)
    torch.testing.assert_close(soft_argmax_points(logits, points), expected)


# --------------------------------------------------------------------------------------------- input checks
BAD_CALLS = [
    ("logits", lambda: soft_argmax(torch.randn(4, 5))),
    ("logits", lambda: soft_argmax(torch.randn(1, 1, 2, 2, 2, 2))),
    ("logits", lambda: sampling_argmax(torch.randn(5))),
    ("logits", lambda: soft_argmax(torch.tensor([[[0.0, float("nan")]]]))),
    ("logits", lambda: sampling_argmax(torch.tensor([[[0.0, float("inf")]]]))),
    ("logits", lambda: soft_argmax(torch.zeros(1, 1, 3, dtype=torch.long))),
    ("points", lambda: soft_argmax_points(torch.randn(2, 3, 10), torch.randn(2, 9, 3))),
    ("points", lambda: sampling_argmax_points(torch.randn(2, 3, 10), torch.randn(10, 3))),
    ("points", lambda: sampling_argmax_points(torch.randn(2, 3, 10), torch.randn(3, 10, 3))),
    ("num_samples", lambda: sampling_argmax(torch.randn(1, 1, 5), num_samples=0)),
    ("num_samples", lambda: sampling_argmax(torch.randn(1, 1, 5), num_samples=2.5)),
    ("tau", lambda: sampling_argmax(torch.randn(1, 1, 5), tau=0.0)),
    ("tau", lambda: sampling_argmax(torch.randn(1, 1, 5), tau=-1.0)),
    ("tau", lambda: sampling_argmax_points(torch.randn(1, 1, 5), torch.randn(1, 5, 3), tau=float("nan"))),
    ("basis", lambda: sampling_argmax(torch.randn(1, 1, 5), basis="tri")),
    ("gumbel", lambda: sampling_argmax(torch.randn(1, 1, 5), gumbel="kornia")),
    ("sigma", lambda: sampling_argmax(torch.randn(1, 1, 5), basis="gaussian", sigma=0.0)),
    ("sigma", lambda: sampling_argmax_points(torch.randn(1, 1, 5), torch.randn(1, 5, 3), sigma=-0.01)),
    ("implementation", lambda: sampling_argmax(torch.randn(1, 1, 5), implementation="fast")),
    ("implementation", lambda: sampling_argmax(torch.randn(1, 1, 5), clipped_gradient=True,
                                               implementation="chunked")),
    ("triangular_reread", lambda: sampling_argmax(torch.randn(1, 1, 5), basis="uniform", triangular_reread=True)),
    ("gaussian_reweight", lambda: sampling_argmax(torch.randn(1, 1, 5), gaussian_reweight=True)),
    ("generator", lambda: sampling_argmax(torch.randn(1, 1, 5), generator=0)),
    ("radius", lambda: mass_confidence(torch.randn(1, 1, 5), radius=0)),
    ("coords", lambda: mass_confidence(torch.randn(1, 1, 5), torch.zeros(1, 1, 2))),
    ("num_samples", lambda: SamplingArgmax(num_samples=0)),
    ("tau", lambda: SamplingArgmax(tau=0)),
    ("basis", lambda: SamplingArgmax(basis="gauss")),
    ("tau", lambda: ConstantTemperature(0.0)),
    ("end", lambda: LinearTemperature(end=-1.0)),
    ("rate", lambda: ExponentialTemperature(rate=-0.1)),
    ("epoch", lambda: LinearTemperature()(-1)),
]


@pytest.mark.parametrize("argument,call", BAD_CALLS, ids=[f"{i}-{a}" for i, (a, _) in enumerate(BAD_CALLS)])
def test_bad_input_raises_value_error_naming_the_argument(argument, call):
    with pytest.raises(ValueError, match=argument):
        call()


# ------------------------------------------------------------------------------------------------- numerics
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("implementation", ["chunked", "reference"])
def test_autocast_computes_in_float32_without_nan(dtype, implementation):
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    image = torch.randn(2, 3, 16, 12)
    with torch.autocast("cpu", dtype=dtype):
        logits = conv(image) * 30
        assert logits.dtype == dtype
        coords = soft_argmax(logits)
        samples = sampling_argmax(logits, 4, 0.5, generator=_gen(), implementation=implementation)
        conf = peak_confidence(logits)
    assert coords.dtype == samples.dtype == conf.dtype == torch.float32
    samples.sum().backward()
    assert torch.isfinite(samples).all() and torch.isfinite(coords).all()
    assert all(torch.isfinite(p.grad).all() for p in conv.parameters())
    torch.testing.assert_close(coords, soft_argmax(logits.float()))


@pytest.mark.parametrize("implementation", ["chunked", "reference"])
@pytest.mark.parametrize("basis", ["uniform", "triangular", "gaussian"])
def test_extreme_and_uniform_maps_stay_finite(implementation, basis):
    extreme = torch.where(torch.rand(2, 3, 8, 6, generator=_gen(1)) > 0.5, 1e4, -1e4).requires_grad_()
    flat = torch.zeros(2, 3, 8, 6, requires_grad=True)
    for logits in (extreme, flat):
        for gumbel in ("paper", "authors"):
            for tau in (1.0, 0.3, 0.01):  # the three relaxation forms: pi / E, bounded exponent, max-shifted
                out = sampling_argmax(logits, 5, tau, basis, gumbel, _gen(), implementation=implementation)
                (grad,) = torch.autograd.grad(out.square().sum(), logits)
                assert torch.isfinite(out).all() and torch.isfinite(grad).all()
    torch.testing.assert_close(soft_argmax(flat), torch.tensor([2.5, 3.5]).expand(2, 3, 2))
    torch.testing.assert_close(grid_variance(flat), torch.tensor([(36 - 1) / 12, (64 - 1) / 12]).expand(2, 3, 2))


@pytest.mark.parametrize("gumbel", ["paper", "authors"])
@pytest.mark.parametrize("tau,forced", [(1.0, "bounded"), (1.0, "shifted"), (0.4, "shifted")])
def test_the_relaxation_forms_agree(tau, forced, gumbel, monkeypatch):
    # pi / E (tau = 1, no exp), the bounded exponent (no max) and the max-shifted form are one function of the
    # noise: forcing another form on the same call gives the same samples and gradients (logits spread over 60)
    from sampling_argmax import _chunked

    logits = torch.randn(2, 3, 9, 7, generator=_gen(5)) * 20

    def run():
        x = logits.clone().requires_grad_()
        out = sampling_argmax(x, 4, tau, "triangular", gumbel, _gen(6), implementation="chunked")
        return out, torch.autograd.grad((out * torch.randn(out.shape, generator=_gen(7))).sum(), x)[0]

    natural = run()
    monkeypatch.setattr(_chunked, "relax_mode", lambda t: forced)
    for a, b in zip(run(), natural):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_float64_input_stays_float64_and_float16_input_is_computed_in_float32():
    assert soft_argmax(torch.randn(1, 2, 5, dtype=torch.float64)).dtype == torch.float64
    assert sampling_argmax(torch.randn(1, 2, 5, dtype=torch.float64), 2).dtype == torch.float64
    assert sampling_argmax(torch.randn(1, 2, 5).half(), 2).dtype == torch.float32


def test_default_generator_follows_the_global_seed():
    logits = torch.randn(2, 3, 6, 5)
    torch.manual_seed(7)
    a = sampling_argmax(logits, 3)
    torch.manual_seed(7)
    b = sampling_argmax(logits, 3)
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, sampling_argmax(logits, 3))


# -------------------------------------------------------------------------------------------------- modules
def test_sampling_module_samples_in_train_and_reads_out_the_expectation_in_eval():
    logits = torch.randn(2, 3, 10, 8)
    head = SamplingArgmax(num_samples=6, tau=2.0, basis="gaussian", sigma=0.5)
    assert head.state_dict() == {} and list(head.buffers()) == []
    out = head.train()(logits, generator=_gen())
    assert out.shape == (2, 3, 6, 2)
    torch.testing.assert_close(out, sampling_argmax(logits, 6, 2.0, "gaussian", generator=_gen(), sigma=0.5))
    torch.testing.assert_close(head.eval()(logits), soft_argmax(logits))
    assert SoftArgmax().state_dict() == {}


def test_sampling_module_on_point_sets():
    logits, points = torch.randn(2, 3, 20), torch.rand(2, 20, 3)
    head = SamplingArgmax(num_samples=4, sigma=0.01)
    assert head.train()(logits, points, _gen()).shape == (2, 3, 4, 3)
    torch.testing.assert_close(head.eval()(logits, points), soft_argmax_points(logits, points))
    torch.testing.assert_close(SoftArgmax()(logits, points), soft_argmax_points(logits, points))


def test_one_point_set_sigma_default_for_function_module_and_method():
    # before: the module's default sigma (1.0) on point sets differed from the function's (0.01)
    g = _gen(0)
    points, logits, target = torch.rand(2, 20, 3, generator=g), torch.randn(2, 3, 20, generator=g), torch.rand(2, 3, 3)
    expected = sampling_argmax_points(logits, points, 4, 1.0, generator=_gen())
    torch.testing.assert_close(SamplingArgmax(num_samples=4).train()(logits, points, _gen()), expected)
    explicit = sampling_argmax_points(logits, points, 4, 1.0, sigma=0.01, generator=_gen())
    torch.testing.assert_close(expected, explicit)
    method = paper_method("samp_gau", num_samples=4, schedule=ConstantTemperature(1.0))
    loss = method.loss(logits, target, points=points, generator=_gen())
    assert loss.item() == pytest.approx(coordinate_loss(expected, target).item(), rel=1e-6)


def test_temperature_schedules():
    linear = LinearTemperature()
    assert [linear(e) for e in (0, 10, 25, 140)] == pytest.approx([2.0, 1.4, 0.5, 0.5])
    assert ConstantTemperature(2.0)(100) == 2.0
    expo = ExponentialTemperature(start=2.0, end=0.5, rate=0.1)
    assert expo(0) == 2.0 and expo(5) == pytest.approx(2.0 * math.exp(-0.5)) and expo(1000) == 0.5


def test_backward_inside_autocast_stays_float32():
    logits = torch.randn(2, 3, 8, 6, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = sampling_argmax(logits, 3, 0.5, generator=_gen())
        (grad,) = torch.autograd.grad(out.square().sum(), logits)
    ref = sampling_argmax(logits, 3, 0.5, generator=_gen(), implementation="reference")
    (ref_grad,) = torch.autograd.grad(ref.square().sum(), logits)
    assert grad.dtype == torch.float32
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-4)
