"""The coordinate convention's converters: to_original_coords (per sample and per keypoint), the flip rule."""

import numpy as np
import pytest
import torch

from sampling_argmax.codecs.base import flip_keypoints, inside_map, mirror_matrix, swap_pairs, to_original_coords


def test_to_original_coords_applies_each_samples_affine():
    pred = torch.tensor([[[1.0, 2.0]], [[1.0, 2.0]]])
    matrices = torch.stack([torch.eye(3), torch.tensor([[2.0, 0, 0.5], [0, 4.0, 1.0], [0, 0, 1]])])
    out = to_original_coords(pred, matrices)
    assert torch.allclose(out, torch.tensor([[[1.0, 2.0]], [[2.5, 9.0]]]))
    assert to_original_coords(pred, None) is pred
    with pytest.raises(ValueError, match="to_original"):
        to_original_coords(pred, torch.eye(4).expand(2, 4, 4))


def test_to_original_coords_applies_each_keypoints_map_into_more_dimensions():
    rows = torch.tensor([[[3.0], [5.0]]])  # two 1D keypoints (OCT: crop rows of A-scans 0 and 8)
    maps = torch.tensor([[[[0.0, 0.0], [1.0, 10.0], [0.0, 1.0]], [[0.0, 8.0], [1.0, -2.0], [0.0, 1.0]]]])
    assert torch.equal(to_original_coords(rows, maps), torch.tensor([[[0.0, 13.0], [8.0, 3.0]]]))
    with pytest.raises(ValueError, match=r"\(B, 2, out\+1, 2\) per keypoint"):
        to_original_coords(rows, maps[:, :1])


def test_the_flip_rule_is_one_rule_for_keypoints_matrices_and_orders():
    keypoints = np.array([[0.0, 1.0], [3.0, 2.0], [7.5, 4.0]])
    flipped, weights = flip_keypoints(keypoints, np.array([1.0, 0.0, 1.0]), 10, [(0, 1)])
    mirrored = (mirror_matrix(10) @ np.c_[keypoints, np.ones(3)].T).T[:, :2]
    assert np.array_equal(flipped, mirrored[swap_pairs(3, [(0, 1)])])
    assert weights.tolist() == [0.0, 1.0, 1.0]
    with pytest.raises(ValueError, match=r"flip pair \(0, 3\) is outside 0..2"):
        swap_pairs(3, [(0, 3)])


def test_inside_map_is_the_cell_edge_rule():
    assert inside_map(np.array([[-0.5, -0.5], [3.5, 3.5], [-0.51, 0.0], [0.0, 3.51]]), (4, 4)).tolist() == [
        True, True, False, False]
