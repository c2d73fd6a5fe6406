"""Shared affine/flip transforms: exact mappings at known points, inverse, cv2 agreement, flips."""

import numpy as np
import pytest
from sampling_argmax.codecs.affine import (
    affine_matrix,
    apply_affine,
    homogeneous,
    invert_affine,
)
from sampling_argmax.codecs.base import flip_keypoints
from sampling_argmax.data.transforms import random_affine_params, warp_image


def test_box_edges_map_to_output_edges():
    m = affine_matrix(center=(100.0, 50.0), size=(48.0, 64.0), rotation_deg=0.0, output_size=(192, 256))
    corners = np.array([[76.0, 18.0], [124.0, 82.0], [100.0, 50.0]])
    out = apply_affine(corners, m)
    np.testing.assert_allclose(out, [[-0.5, -0.5], [191.5, 255.5], [95.5, 127.5]], atol=1e-9)


def test_heatmap_and_input_grids_agree():
    # One source box, mapped to the 256x192 input and to the 64x48 heatmap: stride 4 around pixel edges.
    center, size = (320.0, 240.0), (150.0, 200.0)
    to_input = affine_matrix(center, size, 17.0, (192, 256))
    to_heatmap = affine_matrix(center, size, 17.0, (48, 64))
    p = np.array([[300.0, 200.0], [350.0, 300.0]])
    np.testing.assert_allclose(apply_affine(p, to_input), (apply_affine(p, to_heatmap) + 0.5) * 4 - 0.5, atol=1e-9)


def test_rotation_turns_content_counter_clockwise_on_screen():
    # A point to the right of the centre moves up (smaller y) under a +90 degree rotation.
    m = affine_matrix((10.0, 10.0), (20.0, 20.0), 90.0, (20, 20))
    out = apply_affine(np.array([15.0, 10.0]), m)
    np.testing.assert_allclose(out, [9.5, 4.5], atol=1e-9)


def test_invert_and_homogeneous_roundtrip():
    m = affine_matrix((31.0, 12.0), (40.0, 30.0), -33.0, (48, 64))
    pts = np.random.default_rng(0).uniform(0, 60, size=(5, 2))
    np.testing.assert_allclose(apply_affine(apply_affine(pts, m), invert_affine(m)), pts, atol=1e-9)
    np.testing.assert_allclose(homogeneous(invert_affine(m)) @ homogeneous(m), np.eye(3), atol=1e-12)
    np.testing.assert_allclose(apply_affine(pts, homogeneous(m)), apply_affine(pts, m))


def test_warp_image_puts_a_pixel_where_apply_affine_says():
    image = np.zeros((120, 90, 3), np.uint8)
    src = np.array([37.0, 61.0])
    image[61, 37] = 255
    m = affine_matrix((45.0, 60.0), (60.0, 80.0), 25.0, (60, 80))  # scale 1: a single pixel stays a blob
    warped = warp_image(image, m, (60, 80))
    assert warped.shape == (80, 60, 3)
    ys, xs = np.nonzero(warped[..., 0])
    weights = warped[ys, xs, 0].astype(float)
    centroid = np.array([np.average(xs, weights=weights), np.average(ys, weights=weights)])
    np.testing.assert_allclose(centroid, apply_affine(src, m), atol=0.05)


def test_flip_keypoints_mirrors_and_swaps():
    kp = np.array([[1.0, 5.0], [8.0, 6.0], [4.5, 7.0]])
    w = np.array([1.0, 0.0, 1.0])
    out, out_w = flip_keypoints(kp, w, image_width=10, flip_pairs=[(0, 1)])
    np.testing.assert_allclose(out, [[1.0, 6.0], [8.0, 5.0], [4.5, 7.0]])
    np.testing.assert_array_equal(out_w, [0.0, 1.0, 1.0])
    again, again_w = flip_keypoints(out, out_w, 10, [(0, 1)])
    np.testing.assert_allclose(again, kp)
    np.testing.assert_array_equal(again_w, w)
    assert kp[0, 0] == 1.0  # input untouched


def test_flip_matches_image_flip():
    image = np.zeros((6, 10), np.uint8)
    image[2, 3] = 1
    flipped = image[:, ::-1]
    out, _ = flip_keypoints(np.array([[3.0, 2.0]]), np.ones(1), image.shape[1], [])
    assert flipped[int(out[0, 1]), int(out[0, 0])] == 1


def test_random_affine_params_ranges_and_determinism():
    rng = np.random.default_rng(1)
    draws = np.array([random_affine_params(rng, scale=0.3, rotation=40, rotation_prob=0.6) for _ in range(2000)])
    assert draws[:, 0].min() >= 0.7 and draws[:, 0].max() <= 1.3
    assert np.abs(draws[:, 1]).max() <= 80
    assert 0.3 < np.mean(draws[:, 1] == 0.0) < 0.5  # rotation applied with probability 0.6
    a = random_affine_params(np.random.default_rng(5))
    b = random_affine_params(np.random.default_rng(5))
    assert a == b


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(center=(0, 0), size=(0, 10), rotation_deg=0, output_size=(4, 4)), "size"),
        (dict(center=(0, np.nan), size=(1, 1), rotation_deg=0, output_size=(4, 4)), "center"),
        (dict(center=(0, 0, 0), size=(1, 1), rotation_deg=0, output_size=(4, 4)), "center"),
    ],
)
def test_affine_matrix_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        affine_matrix(**kwargs)


def test_flip_keypoints_rejects_bad_pairs():
    with pytest.raises(ValueError, match="flip_pairs"):
        flip_keypoints(np.zeros((2, 2)), np.ones(2), 10, [(0, 5)])
