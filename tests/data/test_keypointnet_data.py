"""KeypointNet data: the repository's chair and airplane samples load in the official layout, keypoints are
the annotated cloud points, and bad data (PCD the reader does not understand, wrong point count, keypoint
index beyond the cloud, a split model without a cloud) is an error naming the file. Plus the synthetic
point-cloud objects."""

import json
import warnings

import numpy as np
import pytest
import torch

from sampling_argmax.data.keypointnet import KeypointNetDataModule, read_pcd
from sampling_argmax.data.synthetic_points import NUM_KEYPOINTS, SyntheticPointClouds, SyntheticPointsDataModule

HEADER = "VERSION .7\nFIELDS x y z rgb\nSIZE 4 4 4 4\nTYPE F F F U\nCOUNT 1 1 1 1\nWIDTH {n}\nHEIGHT 1\n" \
         "VIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA ascii\n"


def write_pcd(path, points, header=HEADER):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header.format(n=len(points)) + "".join(f"{x} {y} {z} 0\n" for x, y, z in points))
    return path


@pytest.fixture
def airplane(shared_data):
    root = shared_data / "keypointnet"
    if not (root / "airplane-sample" / "annotations" / "airplane.json").is_file():
        pytest.skip("KeypointNet airplane sample absent (see shared/data/README.md)")
    return root


def airplane_module(root, **kwargs):
    return KeypointNetDataModule("airplane", data_root=str(root / "airplane-sample"),
                                 splits_dir=str(root / "splits"), missing_clouds="skip", **kwargs)


def test_the_airplane_sample_loads_with_its_official_splits(airplane):
    dm = airplane_module(airplane)
    with pytest.warns(UserWarning, match="skipped .* without a cloud"):
        train, test = dm.load_split("train"), dm.load_split("test")
    assert dm.num_keypoints == 19 and (len(train), len(test)) == (11, 2)
    assert set(test.model_ids) == {"1bcbb0267f5f1d53c6c0edf9d2d89150", "1c673748703c99207f1f82f6fc8747b8"}
    annotations = {m["model_id"]: m for m in json.loads((airplane / "airplane-sample/annotations/airplane.json").read_text())}
    sample = test[0]
    record = annotations[test.model_ids[0]]
    assert sample["points"].shape == (2048, 3) and sample["target"].shape == (19, 3)
    assert int(sample["target_weight"].sum()) == len(record["keypoints"])
    for keypoint in record["keypoints"]:  # the target of each semantic id is its annotated cloud point
        k = keypoint["semantic_id"]
        assert int(sample["keypoint_index"][k]) == keypoint["pcd_info"]["point_index"]
        np.testing.assert_allclose(sample["target"][k].numpy(), keypoint["xyz"], atol=1e-5)
    missing = sample["target_weight"] == 0
    assert (sample["keypoint_index"][missing] == -1).all()


def test_the_chair_sample_loads(shared_data):
    root = shared_data / "keypointnet"
    if not (root / "annotations" / "chair.json").is_file():
        pytest.skip("KeypointNet chair sample absent")
    dm = KeypointNetDataModule("chair", data_root=str(root), missing_clouds="skip")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train = dm.load_split("train")
    assert dm.num_keypoints == 21 and train.model_ids == ["88382b877be91b2a572f8e1c1caad99e"]
    assert train[0]["points"].shape == (2048, 3)


def test_a_split_model_without_a_cloud_is_an_error_naming_the_split_and_the_cloud(airplane):
    dm = KeypointNetDataModule("airplane", data_root=str(airplane / "airplane-sample"),
                               splits_dir=str(airplane / "splits"))
    with pytest.raises(FileNotFoundError, match=r"splits/train\.txt:\d+: model 02691156-.* has no cloud .*\.pcd.*missing_clouds skip"):
        dm.load_split("train")


def test_augmentation_is_training_only(airplane):
    dm = airplane_module(airplane, rotate_up=True, scale=(0.8, 1.2), jitter=0.004)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train, test = dm.load_split("train"), dm.load_split("test")
    assert torch.equal(test[0]["points"], test[0]["points"])  # evaluation: no randomness
    np.testing.assert_allclose(test[0]["points"].numpy(), test.clouds[0])
    torch.manual_seed(0)
    a, b = train[0]["points"], train[0]["points"]
    assert not torch.equal(a, b)
    # the targets follow the augmented cloud
    labeled = train[0]
    k = int(torch.nonzero(labeled["target_weight"])[0])
    assert torch.equal(labeled["target"][k], labeled["points"][labeled["keypoint_index"][k]])


def test_unit_sphere_normalization(airplane):
    dm = airplane_module(airplane, normalize="unit_sphere")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        points = dm.load_split("test")[0]["points"].double()
    np.testing.assert_allclose(points.mean(0).numpy(), 0, atol=1e-6)
    assert float(points.norm(dim=1).max()) == pytest.approx(1.0, abs=1e-6)


def test_strict_pcd_reader_names_file_and_line(tmp_path):
    good = write_pcd(tmp_path / "good.pcd", [[0, 0, 0], [1, 2, 3]])
    np.testing.assert_array_equal(read_pcd(good), [[0, 0, 0], [1, 2, 3]])
    with pytest.raises(ValueError, match=r"good\.pcd: the cloud has 2 points, expected 2048"):
        read_pcd(good, 2048)
    bad_row = tmp_path / "row.pcd"
    bad_row.write_text(HEADER.format(n=2) + "0 0 0 0\n1 two 3 0\n")
    with pytest.raises(ValueError, match=r"row\.pcd:12: non-numeric coordinate"):
        read_pcd(bad_row)
    short = tmp_path / "short.pcd"
    short.write_text(HEADER.format(n=3) + "0 0 0 0\n")
    with pytest.raises(ValueError, match="POINTS 3 but the file has 1 data rows"):
        read_pcd(short)
    binary = write_pcd(tmp_path / "binary.pcd", [[0, 0, 0]], HEADER.replace("DATA ascii", "DATA binary"))
    with pytest.raises(ValueError, match="only 'DATA ascii'"):
        read_pcd(binary)
    swapped = write_pcd(tmp_path / "order.pcd", [[0, 0, 0]], HEADER.replace("VERSION .7\nFIELDS x y z rgb",
                                                                             "FIELDS x y z rgb\nVERSION .7"))
    with pytest.raises(ValueError, match=r"order\.pcd:1: PCD header key 'FIELDS' where 'VERSION'"):
        read_pcd(swapped)


def test_a_keypoint_index_beyond_the_cloud_names_the_annotation_file(tmp_path):
    write_pcd(tmp_path / "pcds" / "02691156" / "m1.pcd", np.zeros((4, 3)))
    record = {"class_id": "02691156", "model_id": "m1",
              "keypoints": [{"semantic_id": 0, "pcd_info": {"point_index": 7}, "xyz": [0, 0, 0]}]}
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "airplane.json").write_text(json.dumps([record]))
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "train.txt").write_text("02691156-m1\n")
    dm = KeypointNetDataModule("airplane", data_root=str(tmp_path), num_points=4)
    with pytest.raises(ValueError, match=r"airplane\.json: model m1, semantic_id 0: point_index 7 is beyond .*m1\.pcd \(4 points\)"):
        dm.load_split("train")
    dm = KeypointNetDataModule("airplane", data_root=str(tmp_path))  # 2,048 expected, the file has 4
    with pytest.raises(ValueError, match=r"m1\.pcd: the cloud has 4 points, expected 2048"):
        dm.load_split("train")
    (tmp_path / "splits" / "train.txt").write_text("02691156_m1\n")
    with pytest.raises(ValueError, match=r"train\.txt:1: '02691156_m1' is not '<class_id>-<model_id>'"):
        KeypointNetDataModule("airplane", data_root=str(tmp_path), num_points=4).load_split("train")


def test_synthetic_objects_are_deterministic_and_their_keypoints_are_cloud_points():
    data = SyntheticPointClouds("test", length=6, num_points=256)
    again = SyntheticPointClouds("test", length=6, num_points=256)
    for n in range(6):
        sample = data[n]
        assert torch.equal(sample["points"], again[n]["points"])
        labeled = sample["target_weight"] > 0
        assert torch.equal(sample["target"][labeled], sample["points"][sample["keypoint_index"][labeled]])
        assert float(sample["target"][~labeled].abs().sum()) == 0.0
        category = int(sample["category"])
        assert category == n % 3
        if category == 1:  # tables have 8 of the 12 slots, airplanes 7: the rest are never labeled
            assert not labeled[8:].any()
        if category == 2:
            assert not labeled[7:].any()
        extent = sample["points"].max(0).values - sample["points"].min(0).values
        assert 0.95 < float(extent.norm()) < 1.2  # unit diagonal plus noise and outliers
    dm = SyntheticPointsDataModule(num_points=256, train_size=8, val_size=3, test_size=3)
    assert dm.num_keypoints == NUM_KEYPOINTS and dm.input_shape == (256, 3) and dm.map_shape == (256,)
    assert dm.references("test")["categories"] == ["chair", "table", "airplane"]
