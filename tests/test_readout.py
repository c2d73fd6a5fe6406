"""The one read-out: flip averaging, keypoints and confidence, original units, the finite check."""

import pytest
import torch

import sampling_argmax
from sampling_argmax.methods import paper_method
from sampling_argmax.readout import FlipTest, flip_average, read_out


def test_flip_average_mirrors_back_and_swaps_pairs():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5, 6)
    # what a perfectly flip-equivariant model outputs on the mirrored image: mirrored maps, pair (0, 2) swapped
    mirrored = logits.flip(-1)[:, [2, 1, 0]]
    averaged = flip_average(logits, mirrored, [(0, 2)])
    expected = torch.softmax(logits.reshape(2, 3, -1), -1).reshape(logits.shape)
    assert torch.allclose(averaged.exp(), expected, atol=1e-6)
    # without the swap the maps of keypoints 0 and 2 get mixed: the average differs
    assert not torch.allclose(flip_average(logits, mirrored, []).exp(), expected, atol=1e-3)


def test_read_out_is_the_methods_read_out_then_the_original_frame():
    torch.manual_seed(0)
    model = torch.nn.Conv2d(1, 3, 3, padding=1)
    inputs = torch.randn(2, 1, 8, 6)
    method = paper_method("samp_tri")
    to_original = torch.tensor([[2.0, 0.0, 10.0], [0.0, 2.0, 20.0], [0.0, 0.0, 1.0]], dtype=torch.float64).expand(2, 3, 3)
    out = read_out(model, method, inputs, "image", to_original=to_original)
    logits = model(inputs)
    assert torch.equal(out.logits, logits)
    assert torch.equal(out.pred_grid, method.predict(logits).float())
    assert torch.equal(out.confidence, method.confidence(logits).float())
    assert out.pred.dtype == torch.float64
    assert torch.allclose(out.pred, out.pred_grid.double() * 2 + torch.tensor([10.0, 20.0], dtype=torch.float64))
    assert read_out(model, method, inputs, "image").pred is None


def test_read_out_with_the_flip_test_averages_the_mirrored_maps():
    torch.manual_seed(0)
    model = torch.nn.Conv2d(1, 2, 3, padding=1)
    inputs = torch.randn(1, 1, 6, 6)
    flip = FlipTest(((0, 1),), lambda key, value: value.flip(-1))
    out = read_out(model, paper_method("soft"), inputs, "image", flip)
    assert torch.allclose(out.logits, flip_average(model(inputs), model(inputs.flip(-1)), ((0, 1),)))


def test_read_out_over_points_reads_the_same_points():
    torch.manual_seed(0)
    points = torch.rand(2, 10, 3)

    class PerPoint(torch.nn.Module):
        def forward(self, cloud):
            return cloud.sum(-1, keepdim=True).expand(-1, -1, 4).transpose(1, 2) * 3.0  # (B, K=4, N)

    out = read_out(PerPoint(), paper_method("soft"), points, "points")
    assert out.pred_grid.shape == (2, 4, 3)
    weights = torch.softmax(PerPoint()(points), -1)
    assert torch.allclose(out.pred_grid, weights @ points, atol=1e-6)


def test_non_finite_keypoints_are_refused_unless_asked_not_to_check():
    class Broken(torch.nn.Module):
        def forward(self, inputs):
            return torch.full((inputs.shape[0], 2, 4, 4), float("nan"))

    with pytest.raises(ValueError, match="logits"):  # the method's own input check comes first
        read_out(Broken(), paper_method("soft"), torch.zeros(1, 1, 4, 4), "image")
    previous = sampling_argmax.set_input_checks(False)  # a tuned loop without the data checks: the read-out's stays
    try:
        with pytest.raises(FloatingPointError, match=r"non-finite predictions \(soft\)"):
            read_out(Broken(), paper_method("soft"), torch.zeros(1, 1, 4, 4), "image")
        assert read_out(Broken(), paper_method("soft"), torch.zeros(1, 1, 4, 4), "image", check_finite=False
                        ).pred_grid.isnan().all()
    finally:
        sampling_argmax.set_input_checks(previous)
