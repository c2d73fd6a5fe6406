"""Human3.6M + MPII readers on the real fixtures (../shared/data/h36m, mpii): exact decoding, MPII mapping,
flip, the mixed sampler, and clear errors on bad data."""

import json
import pickle
import shutil

import numpy as np
import pytest
import torch

from sampling_argmax.data.h36m import H36MDataModule, MixedBatchSampler
from sampling_argmax.data.h36m_files import FLIP_PAIRS, MPII_TO_H36M, load_cameras, load_h36m_annotations
from sampling_argmax.codecs.volume import apply_to_original
from sampling_argmax.methods import paper_method
from sampling_argmax.metrics.base import EvaluationContext
from sampling_argmax.metrics.pose3d import Pose3DEvaluator, back_project, mpjpe

FIXTURE_SUBJECTS = ["S1", "S5", "S7", "S8"]


def fixture_module(shared_data, **overrides):
    options = dict(
        data_root=str(shared_data / "h36m"), train_annotation="test_h36m_body3d.npz",
        test_annotation="test_h36m_body3d.npz", train_subjects=FIXTURE_SUBJECTS, test_subjects=FIXTURE_SUBJECTS,
        train_stride=1, test_stride=1, mpii_root=str(shared_data / "mpii"), mpii_annotation="test_mpii.json",
        batch_size=4, num_workers=0,
    )
    options.update(overrides)
    return H36MDataModule(**options)


def test_fixture_frames_decode_exactly(shared_data):
    module = fixture_module(shared_data)
    test = module.dataset("test")
    assert len(test) == 4
    samples = [test[i] for i in range(4)]
    outputs = {key: np.stack([s[key].numpy() for s in samples]) for key in ("joints_cam", "root_depth", "focal",
                                                                           "principal", "target_weight")}
    assert outputs["target_weight"].min() == 1.0  # every joint inside the 64 x 64 x 64 volume
    # ground truth -> crop -> volume cells -> (u, v, dz) -> camera space
    outputs["pred"] = np.stack([apply_to_original(s["to_original"].numpy(), s["target"].numpy().astype(np.float64))
                                for s in samples])
    metrics = Pose3DEvaluator()(outputs, EvaluationContext("test"))
    assert metrics["mpjpe"] < 1.0 and metrics["pa_mpjpe"] < 1.0
    truth = outputs["joints_cam"]
    assert 4000 < truth[:, 0, 2].min() and truth[:, 0, 2].max() < 7000  # metres read as mm
    np.testing.assert_allclose(truth[:, 17], (truth[:, 11] + truth[:, 14]) / 2)  # thorax
    # the projection with cameras.pkl's intrinsics lands on the file's 2D joints (up to lens distortion)
    raw = np.load(shared_data / "h36m" / "test_h36m_body3d.npz")
    order = [list(raw["imgname"]).index(str(r["image"].relative_to(shared_data / "h36m"))) for r in test.records]
    uv = outputs["pred"][:, :17, :2]
    assert np.abs(uv - raw["part"][order, :, :2]).max() < 4.0
    # the box is centred on the person: the pelvis lands near the middle of the map
    assert np.all(np.abs(np.stack([s["target"][0, :2].numpy() for s in samples]) - 31.5) < 16)


def test_decoding_with_a_wrong_root_depth_is_not_exact(shared_data):
    samples = [fixture_module(shared_data).dataset("test")[i] for i in range(4)]
    uvz = np.stack([apply_to_original(s["to_original"].numpy(), s["target"].numpy().astype(np.float64))
                    for s in samples])
    root = np.stack([s["root_depth"].numpy() for s in samples])
    focal, principal = np.stack([s["focal"].numpy() for s in samples]), np.stack([s["principal"].numpy() for s in samples])
    truth = np.stack([s["joints_cam"].numpy() for s in samples])
    assert mpjpe(back_project(uvz, root, focal, principal), truth).max() < 1.0
    assert mpjpe(back_project(uvz, root + 500.0, focal, principal), truth).min() > 10.0


def test_mpii_fixture_maps_onto_the_18_joints_with_xy_weights(shared_data):
    module = fixture_module(shared_data)
    train = module.dataset("train")
    frames, people = train.datasets
    assert len(frames) == 4 and len(people) == 5
    people.augment = None  # evaluation framing: exact round trip
    raw = json.load(open(shared_data / "mpii" / "test_mpii.json"))
    for i in range(5):
        sample = people[i]
        weight = sample["target_weight"].numpy()
        assert weight.shape == (18, 3) and np.all(weight[:, 2] == 0)
        assert np.all(weight[[7, 9], :2] == 0)  # torso and nose: MPII has none
        labeled = weight[:, 0] > 0
        uvz = apply_to_original(sample["to_original"].numpy(), sample["target"].numpy().astype(np.float64))
        joints = np.asarray(raw[i]["joints"]) - 1.0
        for joint in np.flatnonzero(labeled):
            np.testing.assert_allclose(uvz[joint, :2], joints[MPII_TO_H36M[joint]], atol=1e-3)
        assert labeled.sum() >= sum(raw[i]["joints_vis"][m] for m in MPII_TO_H36M if m >= 0) - 2  # a few may crop out


def test_flip_mirrors_the_crop_and_swaps_sides(shared_data):
    plain = fixture_module(shared_data, scale=0.0, rotation=0.0, flip_prob=0.0, colour=0.0, mix_mpii=False)
    flipped = fixture_module(shared_data, scale=0.0, rotation=0.0, flip_prob=1.0, colour=0.0, mix_mpii=False)
    a, b = plain.dataset("train")[1], flipped.dataset("train")[1]
    # the same crop, mirrored (bilinear rounding may differ by one grey level on a few pixels)
    torch.testing.assert_close(b["image"], a["image"].flip(-1), atol=0.02, rtol=0)
    order = list(range(18))
    for left, right in FLIP_PAIRS:
        order[left], order[right] = right, left
    expected = a["target"][order].clone()
    expected[:, 0] = 63 - expected[:, 0]
    torch.testing.assert_close(b["target"], expected, atol=1e-4, rtol=0)


def test_mixed_sampler_gives_half_and_half_and_splits_ranks(monkeypatch):
    sampler = MixedBatchSampler(first=10, second=3, batch_size=4, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 5  # one pass over the first part
    for batch in batches:
        assert sum(i < 10 for i in batch) == 2 and sum(i >= 10 for i in batch) == 2
    assert sorted(i for b in batches for i in b if i < 10) == list(range(10))
    sampler.set_epoch(1)
    assert list(sampler) != batches
    monkeypatch.setattr(MixedBatchSampler, "_world", lambda self: (1, 2))
    sampler.set_epoch(0)
    assert list(sampler) == batches[1::2]
    with pytest.raises(ValueError, match="first_per_batch"):
        MixedBatchSampler(first=10, second=0, batch_size=4)


def test_mixed_batch_trains_every_method(shared_data):
    module = fixture_module(shared_data, input_size=64, map_size=16, depth_bins=16)
    loader = module.train_dataloader()
    batch = next(iter(loader))
    weight = batch["target_weight"]
    assert weight.shape == (4, 18, 3)
    assert (weight[:, :, 2].sum(1) > 0).sum() == 2  # two Human3.6M frames, two MPII people
    logits = torch.zeros(4, 18, 16, 16, 16, requires_grad=True)
    for name in ("soft", "samp_tri"):
        method = paper_method(name, num_samples=2) if name.startswith("samp") else paper_method(name)
        loss = method.loss(logits, batch["target"], weight)
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(loss) and grad.abs().sum() > 0


def _copy_h36m(shared_data, tmp_path):
    root = tmp_path / "h36m"
    shutil.copytree(shared_data / "h36m", root, ignore=shutil.ignore_patterns("BF_IUV_gt"))
    return root


def test_bad_data_names_the_file_and_the_fix(shared_data, tmp_path):
    root = _copy_h36m(shared_data, tmp_path)
    cameras = load_cameras(root / "cameras.pkl")
    raw = dict(np.load(root / "test_h36m_body3d.npz"))
    # a field missing
    np.savez(root / "no_s.npz", **{k: v for k, v in raw.items() if k != "S"})
    with pytest.raises(ValueError, match=r"no_s.npz has no field\(s\) \['S'\].*mmpose"):
        load_h36m_annotations(root / "no_s.npz", root, cameras)
    # another joint layout (the 24-joint mesh file of the same folder)
    with pytest.raises(ValueError, match=r"test_h36m.npz: S has shape \(4, 24, 4\).*17 Human3.6M joints"):
        load_h36m_annotations(root / "test_h36m.npz", root, cameras)
    # cameras without a subject
    with pytest.raises(ValueError, match=r"cameras.pkl has no camera \('S5', '54138969'\)"):
        load_h36m_annotations(root / "test_h36m_body3d.npz", root, {k: v for k, v in cameras.items() if k[0] != "S5"})
    # an image missing
    (root / "S7" / "S7_Greeting.55011271" / "S7_Greeting.55011271_000396.jpg").unlink()
    module = fixture_module(shared_data, data_root=str(root))
    with pytest.raises(FileNotFoundError, match=r"test_h36m_body3d.npz row 2.*S7_Greeting.55011271_000396.jpg"):
        [module.dataset("test")[i] for i in range(4)]
    # a camera file that is not mmpose's
    (root / "cameras.pkl").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(ValueError, match="cameras.pkl holds a list"):
        load_cameras(root / "cameras.pkl")


def test_protocol_selection_and_module_builds_without_files(shared_data):
    module = H36MDataModule(data_root="/nonexistent/h36m")  # reads nothing when built
    assert module.map_shape == (64, 64, 64) and module.input_shape == (3, 256, 256)
    assert module.train_subjects == ["S1", "S5", "S6", "S7", "S8"] and module.test_subjects == ["S9", "S11"]
    cameras = load_cameras(shared_data / "h36m" / "cameras.pkl")
    npz, root = shared_data / "h36m" / "test_h36m_body3d.npz", shared_data / "h36m"
    assert len(load_h36m_annotations(npz, root, cameras, ["S9", "S11"])) == 0
    assert len(load_h36m_annotations(npz, root, cameras, ["S1", "S5"])) == 2
    assert len(load_h36m_annotations(npz, root, cameras, exclude=["S5_SittingDown"])) == 3
    # every 64th frame of each sequence: one frame per sequence here
    assert len(load_h36m_annotations(npz, root, cameras, stride=64)) == 4
    assert [r["action"] for r in load_h36m_annotations(npz, root, cameras)] == [0, 8, 3, 13]


def test_predict_frames_an_image_and_a_person_box_as_the_test_split_does(shared_data, tmp_path):
    """predict --input on Human3.6M: the box whose padded square is the record's crop gives the test sample's input
    and to_original; a Predictor then reads (u, v, dz) per joint, and --boxes lists one input per box."""
    from sampling_argmax.data.base import RawInput
    from sampling_argmax.inference import Predictor
    from sampling_argmax.models import ResNetDeconv
    from sampling_argmax.training.module import LocalizationModule

    module = fixture_module(shared_data, input_size=64, map_size=16, depth_bins=8)
    dataset = module.dataset("test")
    record, sample = dataset.records[0], dataset[0]
    extent = record["side"] / module.box_padding  # _clean_box measures pixel-centre extents: w - 1
    box = (record["center"][0] - extent / 2, record["center"][1] - extent / 2, extent + 1, extent + 1)
    prepared = module.prepare(RawInput(record["image"], "frame", box))
    torch.testing.assert_close(prepared["image"], sample["image"], atol=1e-6, rtol=0)
    torch.testing.assert_close(prepared["to_original"], sample["to_original"])
    torch.manual_seed(0)
    model = LocalizationModule(ResNetDeconv(depth=18, num_keypoints=18, deconv_channels=8, depth_bins=8),
                               paper_method("soft"))
    keypoints, confidence = Predictor(model, module)(RawInput(record["image"], "frame", box))
    assert keypoints.shape == (1, 18, 3) and confidence.shape == (1, 18)
    x, y = record["center"]
    assert np.all(np.abs(keypoints[0, :, 0] - x) <= record["side"] / 2 + 1)  # inside the crop
    folder = tmp_path / "frames"
    folder.mkdir()
    shutil.copy(record["image"], folder / "000007.jpg")
    detections = tmp_path / "dets.json"
    detections.write_text(json.dumps([{"image_id": 7, "bbox": list(box), "score": 0.9},
                                      {"image_id": 7, "bbox": [0, 0, 50, 80], "score": 0.5}]))
    raws = module.raw_inputs(folder, detections)
    assert [r.box for r in raws] == [tuple(box), (0, 0, 50, 80)] and raws[0].extra["score"] == 0.9
