"""Methods: the six paper methods on grids and point sets, loss scale, read-outs, schedules, configs."""

import pytest
import torch
from jsonargparse import ArgumentParser

from sampling_argmax import (
    ConstantTemperature,
    LinearTemperature,
    soft_argmax,
    soft_argmax_points,
)
from sampling_argmax import grid_variance
from sampling_argmax.losses import distribution_loss, variance_loss
from sampling_argmax.methods import (
    PAPER_METHODS,
    Method,
    SamplingArgmaxMethod,
    SoftArgmaxMethod,
    method_config,
    paper_method,
)

GRIDS = {"1d": (2, 3, 16), "2d": (2, 3, 12, 10), "3d": (1, 2, 6, 5, 4)}
POINT_METHODS = ("soft", "soft_vr", "soft_dr", "samp_gau")


def small(name):
    """The paper's method with few samples (speed); everything else as published."""
    return paper_method(name, num_samples=4) if name.startswith("samp") else paper_method(name)


def grid_case(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=g).requires_grad_(True)
    sizes = torch.tensor(list(reversed(shape[2:])), dtype=torch.float32)
    target = torch.rand(*shape[:2], len(shape) - 2, generator=g) * (sizes - 1)
    return logits, target


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("name", PAPER_METHODS)
def test_every_method_finite_scalar_loss_with_gradient_on_grids(name, grid):
    logits, target = grid_case(GRIDS[grid])
    method = small(name)
    loss = method.loss(logits, target, torch.ones(logits.shape[:2]), generator=torch.Generator().manual_seed(1))
    assert loss.ndim == 0 and torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    assert method.name == name


@pytest.mark.parametrize("name", POINT_METHODS)
def test_point_set_methods_finite_loss_with_gradient(name):
    g = torch.Generator().manual_seed(0)
    points = torch.rand(2, 64, 3, generator=g)
    logits = torch.randn(2, 3, 64, generator=g).requires_grad_(True)
    target = points[:, :3] + 0.005
    loss = small(name).loss(logits, target, points=points, generator=torch.Generator().manual_seed(1))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    # σ_t² defaults to the point-set scale: a map already matching N(target, 4e-4) has a tiny regularizer
    assert loss.item() < 5.0


@pytest.mark.parametrize("name", ["samp_uni", "samp_tri"])
def test_grid_only_bases_on_point_sets_say_so(name):
    with pytest.raises(ValueError, match="basis='gaussian'"):
        small(name).loss(torch.randn(1, 2, 8), torch.rand(1, 2, 3), points=torch.rand(1, 8, 3))


@pytest.mark.parametrize("name", PAPER_METHODS)
def test_predict_is_soft_argmax_and_confidence_is_peak(name):
    logits, _ = grid_case(GRIDS["2d"])
    method = paper_method(name)
    assert torch.equal(method.predict(logits), soft_argmax(logits))
    peak = torch.softmax(logits.flatten(2), -1).amax(-1)
    assert torch.allclose(method.confidence(logits), peak)
    points, point_logits = torch.rand(2, 20, 3), torch.randn(2, 3, 20)
    assert torch.equal(method.predict(point_logits, points), soft_argmax_points(point_logits, points))


def test_mass_confidence_readout_grid_and_points():
    logits = torch.zeros(1, 1, 10)  # uniform: prediction 4.5, cells 3..6 within 1.5
    assert paper_method("samp_tri", confidence="mass").confidence(logits).item() == pytest.approx(0.4)
    assert paper_method("soft").confidence(logits).item() == pytest.approx(0.1)
    assert SoftArgmaxMethod(confidence="mass", mass_radius=0.5).confidence(logits).item() == pytest.approx(0.2)
    points = torch.tensor([[[0.0, 0, 0], [0.01, 0, 0], [0.5, 0, 0], [1.0, 0, 0]]])
    point_logits = torch.tensor([[[3.0, 3.0, -9.0, -9.0]]])  # prediction ≈ 0.005: two points within 0.015
    conf = SoftArgmaxMethod(confidence="mass").confidence(point_logits, points)
    expected = torch.softmax(point_logits, -1)[0, 0, :2].sum()
    assert conf.item() == pytest.approx(expected.item(), rel=1e-5)


def test_loss_scale_is_l1_over_grid_size_per_axis():
    # uniform 2D map on H=4, W=10: read-out (4.5, 1.5); target (2.5, 0.5) -> 2/10 + 1/4
    logits = torch.zeros(1, 1, 4, 10)
    assert paper_method("soft").loss(logits, torch.tensor([[[2.5, 0.5]]])).item() == pytest.approx(0.45)
    # a map peaked on the target: sampling at low τ gives only the basis spread, ~E|ε|/n per axis
    peaked = torch.full((1, 1, 4, 10), -1e4)
    peaked[0, 0, 1, 6] = 1e4
    samp = paper_method("samp_uni", num_samples=200, schedule=ConstantTemperature(0.5))
    loss = samp.loss(peaked, torch.tensor([[[6.0, 1.0]]]), generator=torch.Generator().manual_seed(0))
    assert loss.item() == pytest.approx(0.25 / 10 + 0.25 / 4, rel=0.15)


def test_regularized_totals_are_coordinate_term_plus_weighted_regularizer():
    logits, target = grid_case(GRIDS["2d"], seed=3)
    w = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.5]])
    soft = paper_method("soft").loss(logits, target, w)
    vr = paper_method("soft_vr").loss(logits, target, w)
    dr = paper_method("soft_dr").loss(logits, target, w)
    assert vr.item() == pytest.approx((soft + 1.0 * variance_loss(logits, 4.0, w)).item(), rel=1e-5)
    assert dr.item() == pytest.approx((soft + 0.1 * distribution_loss(logits, target, 4.0, "js", w)).item(), rel=1e-5)


@pytest.mark.parametrize("name", PAPER_METHODS)
def test_masked_keypoints_get_no_gradient_and_all_masked_is_zero(name):
    logits, target = grid_case(GRIDS["2d"])
    target[0, 1] = float("nan")  # unlabeled
    w = torch.ones(2, 3)
    w[0, 1] = 0
    method = small(name)
    method.loss(logits, target, w, generator=torch.Generator().manual_seed(0)).backward()
    assert torch.all(logits.grad[0, 1] == 0) and torch.isfinite(logits.grad).all()
    zero = method.loss(logits, target, torch.zeros(2, 3))
    assert zero.item() == 0.0


def test_set_epoch_follows_paper_schedule_and_changes_the_loss():
    method = paper_method("samp_tri", num_samples=8)
    taus = []
    for epoch in (0, 10, 25, 100):
        method.set_epoch(epoch)
        taus.append(method.temperature)
    assert taus == pytest.approx([2.0, 1.4, 0.5, 0.5])
    logits, target = grid_case(GRIDS["1d"])
    losses = []
    for epoch in (0, 25):
        method.set_epoch(epoch)
        losses.append(method.loss(logits, target, generator=torch.Generator().manual_seed(0)).item())
    assert losses[0] != pytest.approx(losses[1])
    soft = paper_method("soft")
    before = soft.loss(logits, target)
    soft.set_epoch(30)
    assert soft.loss(logits, target).item() == before.item()
    with pytest.raises(ValueError, match="epoch"):
        method.set_epoch(-1)


def test_generator_makes_the_loss_reproducible():
    logits, target = grid_case(GRIDS["2d"])
    method = paper_method("samp_gau", num_samples=3)
    a = method.loss(logits, target, generator=torch.Generator().manual_seed(7))
    b = method.loss(logits, target, generator=torch.Generator().manual_seed(7))
    c = method.loss(logits, target, generator=torch.Generator().manual_seed(8))
    assert a.item() == b.item() and a.item() != c.item()


def test_paper_method_names_overrides_and_errors():
    assert tuple(paper_method(n).name for n in PAPER_METHODS) == PAPER_METHODS
    dr = paper_method("soft_dr")
    assert (dr.regularizer, dr.regularizer_weight, dr.divergence) == ("distribution", 0.1, "js")
    tri = paper_method("samp_tri")
    assert (tri.basis, tri.num_samples, tri.gumbel) == ("triangular", 30, "paper")
    assert isinstance(tri.schedule, LinearTemperature)
    assert paper_method("samp_tri", name="samp_tri_authors", gumbel="authors").name == "samp_tri_authors"
    with pytest.raises(ValueError, match="soft, soft_vr, soft_dr, samp_uni, samp_tri, samp_gau"):
        paper_method("samp_triangle")
    with pytest.raises(ValueError, match="num_sample"):
        paper_method("samp_tri", num_sample=3)


def test_shape_and_argument_errors():
    method = paper_method("soft")
    logits = torch.zeros(2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"target must have shape \(B, K, dims\) = \(2, 3, 2\)"):
        method.loss(logits, torch.zeros(2, 3, 3))
    with pytest.raises(ValueError, match=r"weight must have shape \(B, K\)"):
        method.loss(logits, torch.zeros(2, 3, 2), weight=torch.ones(2, 3, 1))
    with pytest.raises(ValueError, match="points"):
        method.predict(torch.zeros(2, 3, 10), points=torch.zeros(2, 9, 3))
    with pytest.raises(ValueError, match=r"logits must have shape \(B, K, W\)"):
        method.predict(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="basis"):
        SamplingArgmaxMethod(basis="triangle")
    with pytest.raises(ValueError, match="num_samples"):
        SamplingArgmaxMethod(num_samples=0)
    with pytest.raises(ValueError, match="regularizer"):
        SoftArgmaxMethod(regularizer="entropy")
    with pytest.raises(ValueError, match="confidence"):
        SoftArgmaxMethod(confidence="max")
    with pytest.raises(ValueError, match="triangular_reread"):
        SamplingArgmaxMethod(basis="gaussian", triangular_reread=True)


def test_authors_options_are_forwarded():
    logits, target = grid_case(GRIDS["2d"])
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    plain = paper_method("samp_tri", num_samples=4).loss(logits, target, generator=gen())
    reread = paper_method("samp_tri", num_samples=4, triangular_reread=True).loss(logits, target, generator=gen())
    assert torch.isfinite(reread) and reread.item() != pytest.approx(plain.item())


def test_built_from_yaml_like_config_with_jsonargparse():
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--method", type=Method)
    config = {
        "method": {
            "class_path": "sampling_argmax.methods.SamplingArgmaxMethod",
            "init_args": {
                "basis": "gaussian",
                "num_samples": 10,
                "schedule": {"class_path": "sampling_argmax.ConstantTemperature", "init_args": {"tau": 2.0}},
            },
        }
    }
    method = parser.instantiate(parser.parse_object(config)).method
    assert isinstance(method, SamplingArgmaxMethod) and method.name == "samp_gau"
    assert method.num_samples == 10 and method.temperature == 2.0
    yaml = """
method:
  class_path: sampling_argmax.methods.SoftArgmaxMethod
  init_args: {regularizer: distribution, regularizer_weight: 0.01, divergence: kl}
"""
    soft = parser.instantiate(parser.parse_string(yaml)).method
    assert (soft.name, soft.regularizer_weight, soft.divergence) == ("soft_dr", 0.01, "kl")
    default = parser.instantiate(
        parser.parse_object({"method": {"class_path": "sampling_argmax.methods.SamplingArgmaxMethod"}})
    ).method
    assert default.name == "samp_tri" and default.temperature == 2.0
    with pytest.raises(Exception, match="basis|triangle"):
        parser.parse_object({"method": {"class_path": "sampling_argmax.methods.SamplingArgmaxMethod",
                                        "init_args": {"basis": "triangle"}}})


# ---------------------------------------------------------------- Soft w/ V.R. on the normalized scale


@pytest.mark.parametrize("shape", [(2, 3, 40), (2, 3, 64, 48), (1, 2, 6, 9, 4)], ids=["1d", "2d-64x48", "3d"])
def test_soft_vr_default_is_the_variance_term_on_the_coordinate_scale(shape):
    # per axis ((Var_a - 4) / n_a²)², n_a the axis size: the paper's weight 1 then balances the l1 term on
    # coordinates / n_a on any grid; variance_scale="cell" keeps the paper's literal cell² form reachable
    logits, target = grid_case(shape, seed=2)
    w = torch.ones(shape[:2])
    w[0, 1] = 0.0
    soft = paper_method("soft").loss(logits, target, w)
    sizes = torch.tensor(list(reversed(shape[2:])), dtype=torch.float32)
    var = grid_variance(logits)
    normalized = (((var - 4.0) / sizes**2).square().sum(-1) * w).sum() / w.sum()
    cell = ((var - 4.0).square().sum(-1) * w).sum() / w.sum()
    vr = paper_method("soft_vr")
    assert (vr.regularizer_weight, vr.variance_scale) == (1.0, "normalized")
    assert vr.loss(logits, target, w).item() == pytest.approx((soft + normalized).item(), rel=1e-5)
    old = paper_method("soft_vr", variance_scale="cell").loss(logits, target, w)
    assert old.item() == pytest.approx((soft + cell).item(), rel=1e-5)
    # the cell² term dwarfs the coordinate term; the normalized one does not
    assert cell > 10 * soft and normalized < soft
    with pytest.raises(ValueError, match="variance_scale"):
        SoftArgmaxMethod(regularizer="variance", variance_scale="pixels")


def test_soft_vr_on_point_sets_keeps_the_point_set_form():
    g = torch.Generator().manual_seed(0)
    points, logits = torch.rand(2, 30, 3, generator=g), torch.randn(2, 3, 30, generator=g)
    target = torch.rand(2, 3, 3, generator=g)
    prob = torch.softmax(logits, -1)[..., None]
    mean = (prob * points[:, None]).sum(-2, keepdim=True)
    var = (prob * (points[:, None] - mean).square()).sum(-2)
    expected = paper_method("soft").loss(logits, target, points=points) + (var - 4e-4).square().sum(-1).mean()
    for scale in ("normalized", "cell"):
        got = paper_method("soft_vr", variance_scale=scale).loss(logits, target, points=points)
        assert got.item() == pytest.approx(expected.item(), rel=1e-5)


# ---------------------------------------------------------------- method_config


def test_method_config_is_the_lightning_config_of_paper_method():
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--method", type=Method)
    for name in PAPER_METHODS:
        config = method_config(name)
        assert config["class_path"] == f"sampling_argmax.methods.{type(paper_method(name)).__name__}"
        built = parser.instantiate(parser.parse_object({"method": config})).method
        assert repr(built) == repr(paper_method(name)) and built.name == name
    tri = method_config("samp_tri", {"num_samples": 1, "gumbel": "authors"})
    assert tri["init_args"] == {"basis": "triangular", "num_samples": 1, "gumbel": "authors"}
    schedule = {"class_path": "sampling_argmax.ConstantTemperature", "init_args": {"tau": 0.5}}
    gau = method_config("samp_gau", {"schedule": schedule})
    built = parser.instantiate(parser.parse_object({"method": gau})).method
    assert built.temperature == 0.5 and built.name == "samp_gau"
    assert method_config("soft_vr")["init_args"] == {"regularizer": "variance", "regularizer_weight": 1.0}


def test_method_config_validates_names_keys_and_values():
    with pytest.raises(ValueError, match=r"no argument\(s\) \['num_sample'\]; valid ones are \[.*'num_samples'"):
        method_config("samp_tri", {"num_sample": 3})
    with pytest.raises(ValueError, match=r"SoftArgmaxMethod \('soft'\) has no argument\(s\) \['basis'\]"):
        method_config("soft", {"basis": "gaussian"})
    with pytest.raises(ValueError, match="valid names are soft, soft_vr"):
        method_config("samp_triangle")
    with pytest.raises(ValueError, match="num_samples must be an int >= 1"):
        method_config("samp_tri", {"num_samples": 0})
    with pytest.raises(ValueError, match="overrides must be a dict"):
        method_config("soft", [("p", 2)])
    assert method_config("soft", None) == method_config("soft", {})
