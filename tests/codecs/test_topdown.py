"""The top-down codec of COCO, MTFL and own data: crop geometry, the flip rule, the map back to pixels."""

import numpy as np
import pytest

from sampling_argmax.codecs.affine import apply_affine
from sampling_argmax.codecs.base import flip_keypoints
from sampling_argmax.codecs.topdown import TopDownCodec
from sampling_argmax.data.mtfl import FLIP_PAIRS, crop_sample


def test_encode_then_to_original_returns_the_keypoints_at_any_rotation():
    rng = np.random.default_rng(0)
    codec = TopDownCodec((48, 64), (12, 16))
    keypoints = rng.uniform(40, 60, size=(6, 2))
    for rotation in (0.0, 17.0, -90.0):
        frame = codec.frame((50.0, 50.0), (60.0, 80.0), rotation)
        target, weight = codec.encode(keypoints, np.ones(6), frame)
        back = apply_affine(target.astype(np.float64), codec.to_original(frame)[:2])
        np.testing.assert_allclose(back, keypoints, atol=1e-4)  # float32 targets
        assert weight.tolist() == [1.0] * 6


def test_a_flipped_frame_mirrors_the_image_first_and_swaps_the_pairs():
    codec = TopDownCodec((32, 32), (8, 8), ((0, 1),))
    keypoints, visible = np.array([[10.0, 20.0], [30.0, 22.0], [25.0, 5.0]]), np.array([1.0, 0.0, 1.0])
    flipped = codec.frame((25.0, 20.0), (40.0, 40.0), 10.0, flip_width=50)
    target, weight = codec.encode(keypoints, visible, flipped)
    # the same as flipping the keypoints in the original image, then cropping the mirrored box unflipped
    mirrored, mirrored_visible = flip_keypoints(keypoints, visible, 50, [(0, 1)])
    plain = codec.frame(flipped.center, (40.0, 40.0), 10.0)
    expected, expected_weight = codec.encode(mirrored, mirrored_visible, plain)
    np.testing.assert_allclose(target, expected, atol=1e-5)
    assert weight.tolist() == expected_weight.tolist() == [0.0, 1.0, 1.0]
    assert flipped.center.tolist() == [24.0, 20.0]
    # a keypoint on the mirrored map decodes to the original image's pixel
    np.testing.assert_allclose(apply_affine(target[:1].astype(np.float64), codec.to_original(flipped)[:2]),
                               keypoints[1:2], atol=1e-4)


def test_keypoints_outside_the_map_get_weight_zero():
    codec = TopDownCodec((16, 16), (4, 4))
    frame = codec.frame((7.5, 7.5), (16.0, 16.0))  # the box spans the image: pixels -0.5 .. 15.5
    _, weight = codec.encode(np.array([[-0.5, -0.5], [15.5, 15.5], [-0.6, 8.0], [8.0, 16.0]]), np.ones(4), frame)
    assert weight.tolist() == [1.0, 1.0, 0.0, 0.0]


def test_mtfl_frames_its_faces_with_the_codec():
    image = np.random.default_rng(0).integers(0, 255, (100, 120, 3), dtype=np.uint8)
    landmarks = np.array([[40.0, 40.0], [80.0, 40.0], [60.0, 60.0], [45.0, 80.0], [75.0, 80.0]])
    out = crop_sample(image, landmarks, np.array([60.0, 60.0]), 90.0, 15.0, True, input_size=64, heatmap_size=16)
    codec = TopDownCodec((64, 64), (16, 16), FLIP_PAIRS)
    frame = codec.frame((60.0, 60.0), (90.0, 90.0), 15.0, flip_width=120)
    target, weight = codec.encode(landmarks, np.ones(5), frame)
    assert np.array_equal(out["target"], target) and np.array_equal(out["target_weight"], weight)
    assert np.array_equal(out["to_original"], codec.to_original(frame))


@pytest.mark.parametrize("sizes", [((0, 64), (16, 16)), ((64, 64), (16, -1))])
def test_sizes_below_one_are_refused(sizes):
    with pytest.raises(ValueError, match="must be \\(w, h\\) >= 1"):
        TopDownCodec(*sizes)
