"""Skeleton Merger: segments between keypoint pairs, the composite Chamfer terms on hand-made skeletons, and
gradients of the label-free objective reaching every parameter through each method's read-out."""

import pytest
import torch

from sampling_argmax.methods import paper_method
from sampling_argmax.models import PointNet2
from sampling_argmax.models.skeleton_merger import SkeletonMerger, SkeletonObjective, composite_chamfer, segment_pairs


def _model(keypoints=4, length=5):
    backbone = PointNet2(16, sa_npoints=(16,), sa_radii=((0.4,),), sa_nsamples=((8,),), sa_mlps=(((16,),),),
                         global_mlp=(16,), fp_mlps=((16,), (16,)), head_width=16, dropout=0.0)
    return SkeletonMerger(backbone, num_keypoints=keypoints, points_per_segment=length, strength_width=8)


def test_segments_join_every_pair_from_end_to_end():
    assert segment_pairs(4).tolist() == [[0, 0, 0, 1, 1, 2], [1, 2, 3, 2, 3, 3]]
    model = _model(keypoints=3, length=3)
    keypoints = torch.tensor([[[0.0, 0, 0], [2, 0, 0], [0, 4, 0]]])
    skeleton = model.skeleton(keypoints)  # offsets start at 0: straight segments
    assert skeleton.shape == (1, 3, 3, 3)
    assert skeleton[0, 0].tolist() == [[0, 0, 0], [1, 0, 0], [2, 0, 0]]  # 0-1
    assert skeleton[0, 2].tolist() == [[2, 0, 0], [1, 2, 0], [0, 4, 0]]  # 1-2
    with torch.no_grad():
        model.raw_offsets[1, 1] = torch.tensor([0.0, 0, 100])
    # the middle of 0-2, moved by its offset, which is bounded by max_offset (0.05)
    torch.testing.assert_close(model.skeleton(keypoints)[0, 1, 1], torch.tensor([0.0, 2, 0.05]))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3\)"):
        model.skeleton(torch.zeros(1, 4, 3))


def test_composite_chamfer_on_a_hand_made_skeleton():
    # the cloud lies 0.1 from segment 0 (x axis, 0..1); segment 1 floats 0.9 above the cloud
    cloud = torch.stack([torch.linspace(0, 1, 5), torch.full((5,), 0.1), torch.zeros(5)], -1)[None]
    on = torch.stack([torch.linspace(0, 1, 5), torch.zeros(5), torch.zeros(5)], -1)
    skeleton = torch.stack([on, on + torch.tensor([0.0, 1, 0])])[None, None]  # (B 1, S 1, P 2, L 5, 3)
    strength = torch.tensor([[1.0, 0.5]], requires_grad=True)
    reconstruction, coverage = composite_chamfer(cloud, skeleton, strength)
    assert reconstruction.item() == pytest.approx(0.1)  # every point 0.1 from the active segment 0
    assert coverage.item() == pytest.approx((1.0 * 0.1 + 0.5 * 0.9) / 2)  # strength-weighted, mean over segments
    coverage.backward()
    assert strength.grad[0, 1] > 0  # coverage turns the floating segment off
    # with segment 0 switched (almost) off, the cloud is explained by segment 1: 0.9 / 0.5
    reconstruction, _ = composite_chamfer(cloud, skeleton, torch.tensor([[1e-4, 0.5]]))
    assert reconstruction.item() == pytest.approx(1.8)
    strength = torch.tensor([[0.3, 0.5]], requires_grad=True)
    composite_chamfer(cloud, skeleton, strength)[0].backward()
    assert strength.grad[0, 0] < 0  # reconstruction turns the segment that explains the cloud on
    with pytest.raises(ValueError, match="strength"):
        composite_chamfer(cloud, skeleton, torch.ones(1, 3))


def _dense_composite_chamfer(cloud, skeleton, strength, min_strength=1e-3):
    """The losses by their definition: every distance, minima over them (the implementation before it picked)."""
    batch, samples, pairs, length, _ = skeleton.shape
    flat = skeleton.reshape(batch, samples * pairs * length, 3)
    distance = torch.cdist(cloud, flat, compute_mode="donot_use_mm_for_euclid_dist")
    distance = distance.reshape(batch, -1, samples, pairs, length)
    reconstruction = (distance.amin(-1) / strength.clamp_min(min_strength)[:, None, None]).amin(-1).mean()
    coverage = (strength[:, None] * distance.amin(1).mean(-1)).mean()
    return reconstruction, coverage


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("samples", [1, 3])
def test_composite_chamfer_equals_its_dense_definition(samples, dtype):
    gen = torch.Generator().manual_seed(samples)
    cloud = torch.rand(2, 300, 3, generator=gen, dtype=dtype)
    skeleton = torch.rand(2, samples, 6, 5, 3, generator=gen, dtype=dtype)
    strength = torch.rand(2, 6, generator=gen, dtype=dtype)
    strength[0, 2] = 1e-5  # below min_strength: the clamp's path
    results = []
    for fn in (composite_chamfer, _dense_composite_chamfer):
        leaves = [t.clone().requires_grad_() for t in (cloud, skeleton, strength)]
        reconstruction, coverage = fn(*leaves)
        results.append((reconstruction, coverage, *torch.autograd.grad(reconstruction + 0.7 * coverage, leaves)))
    tolerance = {"rtol": 1e-9, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-4, "atol": 1e-6}
    for name, a, b in zip(["reconstruction", "coverage", "cloud", "skeleton", "strength"], *results):
        torch.testing.assert_close(a, b, **tolerance, msg=lambda m, name=name: f"{name}: {m}")
    assert results[0][3].abs().sum() > 0 and results[0][2].abs().sum() > 0  # the picked paths carry gradients


@pytest.mark.parametrize("name", ["soft", "soft_vr", "soft_dr", "samp_gau"])
def test_objective_reaches_every_parameter(name, one_thread):
    torch.manual_seed(0)
    model = _model()
    with torch.no_grad():
        model.raw_offsets.normal_(0, 0.01)  # an exact zero would hide a missing gradient path
    method = paper_method(name, **({"num_samples": 3} if name == "samp_gau" else {}))
    objective = SkeletonObjective()
    batch = {"points": torch.rand(2, 64, 3)}
    torch.manual_seed(1)
    terms = objective.losses(model, method, batch)
    assert (terms["regularizer"].item() > 0) == (name in ("soft_vr", "soft_dr"))
    torch.manual_seed(1)  # samp_gau draws its noise from the global generator: the same draws as for `terms`
    loss = objective(model, method, batch)
    assert loss.item() == pytest.approx(sum(t.item() for t in terms.values()), rel=1e-5)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing
    assert model(batch["points"]).shape == (2, 4, 64)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="num_keypoints >= 2"):
        _model(keypoints=1)
    with pytest.raises(ValueError, match="max_offset"):
        SkeletonMerger(PointNet2(4), num_keypoints=4, max_offset=-1)
    with pytest.raises(ValueError, match="backbone"):
        SkeletonMerger(torch.nn.Linear(3, 3), num_keypoints=4)
    with pytest.raises(ValueError, match="SkeletonMerger"):
        SkeletonObjective()(PointNet2(4), paper_method("soft"), {"points": torch.rand(1, 32, 3)})
    with pytest.raises(ValueError, match="reconstruction_weight"):
        SkeletonObjective(reconstruction_weight=0)
