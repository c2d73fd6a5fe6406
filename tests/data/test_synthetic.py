import numpy as np
import pytest
import torch

from sampling_argmax.data.synthetic import (
    INPUT_KEY,
    OUTPUT_STRIDE,
    SyntheticDataModule,
    SyntheticLandmarks,
    render_landmarks_2d,
)
from sampling_argmax.models import SmallHeatmapNet


@pytest.mark.parametrize("dims,size,k,stride", [(1, 64, 2, 2), (2, 32, 3, 2), (3, 16, 2, 2), (2, 48, 3, 4)])
def test_sample_follows_the_batch_contract(dims, size, k, stride):
    sample = SyntheticLandmarks("val", length=3, dims=dims, num_keypoints=k, size=size, output_stride=stride)[2]
    key = INPUT_KEY[dims]  # signal, image or volume: one key per modality
    assert sample[key].shape == (1,) + (size,) * dims and sample[key].dtype == torch.float32
    assert sample["to_original"].dtype == torch.float64
    assert sample["target"].shape == (k, dims) and sample["target_weight"].shape == (k,)
    assert sample["index"] == 2
    assert sample["to_original"].shape == (dims + 1, dims + 1)
    # target (grid cells) maps through to_original onto the keypoints (input pixels)
    homogeneous = torch.cat([sample["target"], torch.ones(k, 1)], 1)
    back = (homogeneous.double() @ sample["to_original"].T)[:, :dims].float()
    assert torch.allclose(back, sample["keypoints"], atol=1e-5)
    # keypoints lie inside the input and the grid has size / stride cells
    assert (sample["keypoints"] >= 0).all() and (sample["keypoints"] <= size - 1).all()
    assert (sample["target"] <= size // stride - 1).all()


def test_coarse_maps_match_a_stride_4_network():
    dm = SyntheticDataModule(dims=2, size=48, output_stride=4, test_size=4)
    assert dm.map_shape == (12, 12)
    assert SmallHeatmapNet(num_keypoints=3, output_stride=4)(torch.zeros(1, 1, 48, 48)).shape == (1, 3, 12, 12)
    assert SyntheticDataModule(dims=2, size=48).map_shape == (48 // OUTPUT_STRIDE,) * 2
    with pytest.raises(ValueError, match="output_stride=3"):
        SyntheticDataModule(dims=2, output_stride=3)


def test_samples_are_a_pure_function_of_seed_split_index():
    a = SyntheticLandmarks("train", 10, seed=3)
    b = SyntheticLandmarks("train", 10, seed=3)
    assert torch.equal(a[7]["image"], b[7]["image"]) and torch.equal(a[7]["keypoints"], b[7]["keypoints"])
    assert not torch.equal(a[7]["image"], a[6]["image"])
    assert not torch.equal(a[7]["image"], SyntheticLandmarks("val", 10, seed=3)[7]["image"])
    assert not torch.equal(a[7]["image"], SyntheticLandmarks("train", 10, seed=4)[7]["image"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_landmark_glyph_is_drawn_at_its_keypoint(seed):
    """Without noise/occlusion the dot at each keypoint is brighter than the gap around it."""
    rng = np.random.default_rng(seed)
    image, keypoints = render_landmarks_2d(rng, size=64, num_keypoints=3, distractors=0, occlusion=0.0, noise=0.0)
    angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    for x, y in keypoints:
        centre = image[int(round(y)), int(round(x))]
        # between the dot (radius ~1.3) and the outline (radius >= 3)
        gap = [image[int(round(y + 1.9 * np.sin(a))), int(round(x + 1.9 * np.cos(a)))] for a in angles]
        assert centre > np.median(gap) + 0.1


def test_distractors_and_occlusion_change_the_image_not_the_keypoints():
    clean = render_landmarks_2d(np.random.default_rng(5), distractors=0, occlusion=0.0)
    hard = render_landmarks_2d(np.random.default_rng(5), distractors=3, occlusion=1.0)
    assert np.allclose(clean[1], hard[1])
    assert np.abs(clean[0] - hard[0]).mean() > 0.02


@pytest.mark.parametrize(
    "kwargs,match",
    [({"split": "dev"}, "split"), ({"dims": 4}, "dims"), ({"num_keypoints": 9}, "num_keypoints"),
     ({"size": 30}, "size"), ({"occlusion": 2.0}, "occlusion")],
)
def test_bad_arguments_name_themselves(kwargs, match):
    options = {"split": "val", "length": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        SyntheticLandmarks(**options)


def test_datamodule_loaders_and_fixed_validation_set():
    dm = SyntheticDataModule(dims=1, num_keypoints=2, size=64, train_size=20, val_size=7, batch_size=4)
    train = list(dm.train_dataloader())
    assert len(train) == 5 and train[0]["signal"].shape == (4, 1, 64)
    assert dm.input_shape == (1, 64) and dm.map_shape == (32,) and dm.task == "synthetic1d"
    first, again = next(iter(dm.val_dataloader())), next(iter(dm.val_dataloader()))
    assert torch.equal(first["signal"], again["signal"]) and first["index"].tolist() == [0, 1, 2, 3]
    assert sum(len(b["index"]) for b in dm.val_dataloader()) == 7
    with pytest.raises(ValueError, match="batch_size"):
        SyntheticDataModule(batch_size=0)
