"""COCO keypoint metrics: OKS vs pycocotools, OKS-NMS, rescoring, AP on the real mmpose test annotations."""

import contextlib
import io
import json

import numpy as np
import pytest

from sampling_argmax.metrics.coco import (
    COCO_SIGMAS,
    coco_keypoint_ap,
    keypoint_oks,
    keypoint_results,
    oks_nms,
    rescore_instances,
)


@pytest.fixture(scope="module")
def coco_test(shared_data):
    from pycocotools.coco import COCO

    path = shared_data / "coco" / "mmpose-tests" / "test_coco.json"
    if not path.is_file():
        pytest.skip(f"{path} absent (see shared/data/README.md)")
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def _gt_arrays(coco):
    anns = [a for a in coco.loadAnns(coco.getAnnIds()) if a["num_keypoints"] > 0 and not a["iscrowd"]]
    kp = np.array([a["keypoints"] for a in anns], dtype=np.float64).reshape(len(anns), 17, 3)
    return anns, kp


def _direct_pycocotools(coco, results):
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(coco, coco.loadRes(json.loads(json.dumps(results))), iouType="keypoints")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


def test_ground_truth_gives_ap_one_and_noise_lowers_it(coco_test):
    anns, kp = _gt_arrays(coco_test)
    assert len(anns) == 12
    image_ids = np.array([a["image_id"] for a in anns])
    rng = np.random.default_rng(0)
    unit_noise = rng.standard_normal(kp[..., :2].shape)
    aps = []
    for noise in (0.0, 2.0, 5.0, 10.0, 20.0):
        pred = kp[..., :2] + noise * unit_noise
        results = keypoint_results(image_ids, pred, np.ones((len(anns), 17)), np.linspace(1.0, 0.5, len(anns)))
        metrics = coco_keypoint_ap(coco_test, results)
        np.testing.assert_allclose(list(metrics.values()), _direct_pycocotools(coco_test, results), atol=1e-12)
        aps.append(metrics["AP"])
    assert aps[0] == pytest.approx(1.0)
    assert all(a > b for a, b in zip(aps, aps[1:])), aps


def test_keypoint_oks_matches_pycocotools(coco_test):
    from pycocotools.cocoeval import COCOeval

    anns, kp = _gt_arrays(coco_test)
    image_id = anns[0]["image_id"]
    gts = [i for i, a in enumerate(anns) if a["image_id"] == image_id]
    rng = np.random.default_rng(1)
    pred = kp[gts][..., :2] + rng.normal(0, 6.0, size=(len(gts), 17, 2))
    scores = np.linspace(0.9, 0.1, len(gts))
    results = keypoint_results(np.full(len(gts), image_id), pred, np.ones((len(gts), 17)), scores)
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(coco_test, coco_test.loadRes(results), iouType="keypoints")
        evaluator.params.imgIds = [image_id]
        evaluator.evaluate()
    reference = evaluator.ious[(image_id, 1)]  # (dets sorted by score, gts in annotation order)
    gt_anns = [anns[i] for i in gts]
    ours = keypoint_oks(
        pred, kp[gts][..., :2], kp[gts][..., 2] > 0, np.array([a["area"] for a in gt_anns]), COCO_SIGMAS
    )
    np.testing.assert_allclose(ours, reference, rtol=1e-9, atol=1e-12)
    assert 0.0 < ours.min() and ours.max() < 1.0


def test_keypoint_oks_identity_and_no_visible_joints():
    gt = np.random.default_rng(2).uniform(0, 100, size=(2, 17, 2))
    visible = np.ones((2, 17), bool)
    visible[1] = False
    oks = keypoint_oks(gt, gt, visible, np.array([500.0, 500.0]))
    np.testing.assert_allclose(oks[:, 0], [1.0, keypoint_oks(gt[1:], gt[:1], visible[:1], np.array([500.0]))[0, 0]])
    np.testing.assert_array_equal(oks[:, 1], 0.0)
    with pytest.raises(ValueError, match="gt_visible"):
        keypoint_oks(gt, gt, visible[:, :3], np.array([1.0, 1.0]))


def test_oks_nms_suppresses_duplicates_only():
    rng = np.random.default_rng(3)
    person_a = rng.uniform(0, 100, size=(17, 2))
    person_b = person_a + 300.0
    poses = np.stack([person_a, person_a + 0.5, person_b, person_b + 40.0])
    scores = np.array([0.5, 0.9, 0.7, 0.8])
    areas = np.full(4, 100.0**2)
    keep = oks_nms(poses, scores, areas, threshold=0.9)
    # 1 beats its near-duplicate 0; 3 and 2 are 40 px apart: distinct people at this scale.
    assert keep.tolist() == [1, 3, 2]
    assert oks_nms(poses, scores, areas, threshold=0.0).tolist() == [1]  # OKS > 0 for every pair
    assert oks_nms(np.zeros((0, 17, 2)), np.zeros(0), np.zeros(0)).tolist() == []


def test_rescore_instances():
    conf = np.array([[0.9, 0.5, 0.1, 0.0], [0.1, 0.1, 0.05, 0.05]])
    scores = rescore_instances(conf, np.array([1.0, 0.5]), threshold=0.2)
    np.testing.assert_allclose(scores, [0.7, 0.5 * 0.075])
    with pytest.raises(ValueError, match="box_scores"):
        rescore_instances(conf, np.ones(3))


def test_empty_results_give_zero(coco_test):
    assert coco_keypoint_ap(coco_test, [])["AP"] == 0.0
