"""Unsupervised point-cloud data: the training samples carry no usable label (weight 0 everywhere), the
annotation reaches the evaluator under its own keys, and one class is kept."""

import pytest
import torch

from sampling_argmax.data.synthetic_points import SyntheticPointsDataModule
from sampling_argmax.data.unlabeled_points import UnlabeledKeypointNetDataModule, UnlabeledSyntheticPointsDataModule


def test_synthetic_labels_are_hidden_from_training_and_kept_for_evaluation():
    kwargs = dict(num_points=128, train_size=9, val_size=3, test_size=6, noise=0.0, outliers=0.0)
    dm = UnlabeledSyntheticPointsDataModule(num_keypoints=5, category="table", **kwargs)
    labeled = SyntheticPointsDataModule(**kwargs)
    assert dm.num_keypoints == 5 and dm.task == "synthetic_skeleton_table"
    test = dm.dataset("test")
    assert len(test) == 2  # tables are the objects 1, 4 of the split
    for n, source_index in enumerate((1, 4)):
        sample, source = test[n], labeled.dataset("test")[source_index]
        assert sample["index"] == n and int(sample["category"]) == 1
        assert sample["target"].shape == (5, 3) and not sample["target_weight"].any()
        assert "keypoint_index" not in sample
        torch.testing.assert_close(sample["gt_keypoints"], source["target"])
        torch.testing.assert_close(sample["gt_weight"], source["target_weight"])
        torch.testing.assert_close(sample["points"], source["points"])
    with pytest.raises(ValueError, match="category"):
        UnlabeledSyntheticPointsDataModule(category="sofa")
    with pytest.raises(ValueError, match="num_keypoints"):
        UnlabeledSyntheticPointsDataModule(num_keypoints=1)


def test_keypointnet_airplane_sample_without_labels(shared_data):
    root = shared_data / "keypointnet"
    if not (root / "airplane-sample" / "pcds").is_dir():
        pytest.skip("KeypointNet airplane sample absent")
    dm = UnlabeledKeypointNetDataModule(num_keypoints=6, category="airplane", data_root=str(root / "airplane-sample"),
                                        splits_dir=str(root / "splits"), missing_clouds="skip")
    with pytest.warns(UserWarning, match="skipped"):
        dm.setup("test")
    sample = dm.dataset("test")[0]
    assert dm.num_keypoints == 6 and dm.task == "skeleton_airplane"
    assert sample["target"].shape == (6, 3) and not sample["target_weight"].any()
    assert sample["gt_keypoints"].shape == (19, 3) and sample["gt_weight"].sum() > 0
