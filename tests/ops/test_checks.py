"""Loss inputs validated at the public entry points: bad visibility weights and targets raise a ValueError
naming the argument, unlabeled keypoints (weight 0, NaN target) stay legal, the data checks are skipped
under torch.compile and switch off with ``set_input_checks``."""

import pytest
import torch

import sampling_argmax
from sampling_argmax import set_input_checks
from sampling_argmax.losses import (
    coordinate_loss,
    distribution_loss,
    distribution_loss_points,
    reduce_keypoints,
    variance_loss,
    variance_loss_points,
)
from sampling_argmax.methods import PAPER_METHODS, paper_method

NAN, INF = float("nan"), float("inf")
POINT_METHODS = ("soft", "soft_vr", "soft_dr", "samp_gau")


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _method(name):
    return paper_method(name, num_samples=3) if name.startswith("samp") else paper_method(name)


def _grid_inputs(seed=0):
    g = _gen(seed)
    logits = torch.randn(2, 3, 8, 6, generator=g).requires_grad_(True)
    target = torch.rand(2, 3, 2, generator=g) * 5
    return logits, target


def _point_inputs(seed=0):
    g = _gen(seed)
    points = torch.rand(2, 20, 3, generator=g)
    logits = torch.randn(2, 3, 20, generator=g).requires_grad_(True)
    target = torch.rand(2, 3, 3, generator=g)
    return logits, points, target


def _loss_calls():
    """Every public loss entry point as ``f(target, weight)`` on fixed grid / point-set inputs."""
    logits, target = _grid_inputs()
    plogits, points, ptarget = _point_inputs()
    pred = torch.randn(2, 3, 4, 2, generator=_gen(5))
    calls = {
        "coordinate_loss": (target, lambda t, w: coordinate_loss(pred, t, w)),
        "distribution_loss": (target, lambda t, w: distribution_loss(logits, t, weight=w)),
        "distribution_loss_points": (ptarget, lambda t, w: distribution_loss_points(plogits, points, t, weight=w)),
        "variance_loss": (target, lambda t, w: variance_loss(logits, weight=w)),
        "variance_loss_points": (ptarget, lambda t, w: variance_loss_points(plogits, points, weight=w)),
        "reduce_keypoints": (target, lambda t, w: reduce_keypoints(torch.ones(2, 3), w)),
    }
    for name in PAPER_METHODS:
        calls[f"{name}.loss"] = (target, lambda t, w, m=_method(name): m.loss(logits, t, w, generator=_gen()))
    for name in POINT_METHODS:
        calls[f"{name}.loss(points)"] = (
            ptarget, lambda t, w, m=_method(name): m.loss(plogits, t, w, points, generator=_gen()))
    return calls


CALLS = list(_loss_calls())
TARGET_CALLS = [c for c in CALLS if not c.startswith(("variance", "reduce"))]  # the ones that read a target


@pytest.mark.parametrize("bad", [-1.0, NAN, INF, -INF], ids=["negative", "nan", "inf", "-inf"])
@pytest.mark.parametrize("call", CALLS)
def test_bad_weight_raises_naming_weight(call, bad):
    # before: a negative weight gave a mean loss divided by a clamped negative sum (losses like -2.3e38)
    target, fn = _loss_calls()[call]
    weight = torch.ones(2, 3)
    weight[1, 2] = bad
    with pytest.raises(ValueError, match=r"weight must be finite and >= 0.*\(b, k\) = \(1, 2\)"):
        fn(target, weight)


@pytest.mark.parametrize("bad", [NAN, INF], ids=["nan", "inf"])
@pytest.mark.parametrize("call", TARGET_CALLS)
def test_non_finite_target_with_non_zero_weight_raises_naming_target(call, bad):
    target, fn = _loss_calls()[call]
    target = target.clone()
    target[0, 1, -1] = bad
    weight = torch.ones(2, 3)
    with pytest.raises(ValueError, match=r"target contains NaN or inf at 1 keypoint\(s\) with non-zero weight"):
        fn(target, weight)
    with pytest.raises(ValueError, match=r"target contains NaN or inf.*weight=None"):
        fn(target, None)


@pytest.mark.parametrize("call", CALLS)
def test_unlabeled_keypoint_nan_target_weight_zero_is_legal_finite_and_gets_no_gradient(call):
    target, fn = _loss_calls()[call]
    target = target.clone()
    target[0, 1] = NAN
    weight = torch.ones(2, 3)
    weight[0, 1] = 0.0
    loss = fn(target, weight)
    assert torch.isfinite(loss)
    leaves = [t for t in _leaves(fn) if t.requires_grad]
    if loss.requires_grad:
        grads = torch.autograd.grad(loss, leaves, allow_unused=True)
        for grad in grads:
            if grad is not None:
                assert torch.isfinite(grad).all()
                assert torch.all(grad[0, 1] == 0)


def _leaves(fn):
    """The tensors a loss closure captured (its logits)."""
    found = []
    for cell in fn.__closure__ or ():
        value = cell.cell_contents
        if isinstance(value, torch.Tensor):
            found.append(value)
    return found


def test_nan_logits_or_points_raise_at_the_loss_entry_points():
    logits, target = _grid_inputs()
    bad = logits.detach().clone()
    bad[0, 0, 0, 0] = NAN
    with pytest.raises(ValueError, match="logits contain NaN or inf"):
        variance_loss(bad)
    with pytest.raises(ValueError, match="logits contain NaN or inf"):
        paper_method("soft_dr").loss(bad, target)
    plogits, points, ptarget = _point_inputs()
    points = points.clone()
    points[1, 3, 0] = INF
    with pytest.raises(ValueError, match="points contain NaN or inf"):
        paper_method("soft").loss(plogits, ptarget, points=points)
    with pytest.raises(ValueError, match="points contain NaN or inf"):
        distribution_loss_points(plogits, points, ptarget)


def test_switch_turns_the_data_checks_off_and_back_on():
    logits, target = _grid_inputs()
    weight = torch.ones(2, 3)
    weight[0, 0] = -1.0
    assert set_input_checks(False) is True
    try:
        loss = paper_method("soft").loss(logits, target, weight)  # garbage in, no check: no error
        assert loss.ndim == 0
        bad = target.clone()
        bad[0, 0, 0] = NAN
        assert torch.isnan(coordinate_loss(bad, bad))
        # structural checks stay on
        with pytest.raises(ValueError, match=r"weight must have shape \(B, K\)"):
            paper_method("soft").loss(logits, target, torch.ones(2, 3, 1))
    finally:
        assert set_input_checks(True) is False
    with pytest.raises(ValueError, match="weight must be finite and >= 0"):
        paper_method("soft").loss(logits, target, weight)
    with pytest.raises(ValueError, match="enabled must be True or False"):
        set_input_checks("no")
    assert sampling_argmax.set_input_checks is set_input_checks


def test_data_checks_are_skipped_under_torch_compile():
    # fullgraph=True fails on any graph break, such as the host sync of a data check
    vr, dr = paper_method("soft_vr"), paper_method("soft_dr")

    def total(pred, target, weight, logits):
        return coordinate_loss(pred, target, weight) + variance_loss(logits, weight=weight) + \
            distribution_loss(logits, target, weight=weight) + vr.loss(logits, target, weight) + \
            dr.loss(logits, target, weight)

    compiled = torch.compile(total, fullgraph=True, backend="aot_eager")
    logits, target = _grid_inputs()
    pred = torch.randn(2, 3, 2)
    weight = torch.ones(2, 3)
    torch.testing.assert_close(compiled(pred, target, weight, logits), total(pred, target, weight, logits))


@pytest.mark.parametrize("name", PAPER_METHODS)
def test_method_loss_runs_the_data_checks_once(name, monkeypatch):
    # the methods validate at the entry point and call the unchecked internals: one pass, one sync per loss
    from sampling_argmax import _checks, functional, losses
    from sampling_argmax.methods import base as methods

    calls = []

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return _checks.check_data(*args, **kwargs)

    for module in (functional, losses, methods):
        monkeypatch.setattr(module, "check_data", counting)
    logits, target = _grid_inputs()
    _method(name).loss(logits, target, torch.ones(2, 3), generator=_gen())
    assert len(calls) == 1 and set(calls[0]) == {"logits", "points", "target", "weight"}
