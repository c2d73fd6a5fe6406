"""COCO end to end on the real samples: detection boxes -> model -> evaluate; flip test; smoke fits."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sampling_argmax.data.coco import COCODataModule, load_person_records
from sampling_argmax.methods import paper_method
from sampling_argmax.models import ResNetDeconv


@pytest.fixture(scope="module")
def coco_root(shared_data):
    root = shared_data / "coco"
    if not (root / "mmpose-tests" / "test_coco_det_AP_H_56.json").is_file():
        pytest.skip(f"COCO samples absent under {root} (see shared/data/README.md)")
    return root


def _detection_module(coco_root, **kwargs):
    return COCODataModule(
        data_root=str(coco_root / "mmpose-tests"),
        num_workers=0,
        test_ann_file="test_coco.json",
        test_image_dir=".",
        test_detection_file="test_coco_det_AP_H_56.json",
        **kwargs,
    )


def _box_iou(a, b):
    width = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_detection_path_model_forward_and_evaluate(coco_root, tmp_path):
    module = _detection_module(
        coco_root, batch_size=40, input_size=(96, 128), heatmap_size=(24, 32), output_dir=str(tmp_path)
    )
    module.setup("test")
    dataset = module.datasets["test"]
    assert len(dataset) == 118
    torch.manual_seed(0)
    model = ResNetDeconv(depth=18, num_keypoints=17, deconv_channels=32).eval()
    method = paper_method("samp_tri")
    rows = {key: [] for key in ("index", "pred", "confidence", "image_id", "bbox_score", "area")}
    with torch.no_grad():
        for batch in module.test_dataloader():
            logits = model(batch["image"])
            assert logits.shape[-2:] == (32, 24)
            grid = method.predict(logits)
            homogeneous = torch.cat([grid, torch.ones_like(grid[..., :1])], dim=-1)
            rows["pred"].append(torch.einsum("bij,bkj->bki", batch["to_original"], homogeneous)[..., :2])
            rows["confidence"].append(method.confidence(logits))
            for key in ("index", "image_id", "bbox_score", "area"):
                rows[key].append(batch[key])
    outputs = {key: torch.cat(value).numpy() for key, value in rows.items()}
    metrics = module.evaluate(outputs, stage="test")
    assert set(metrics) >= {"AP", "AP50", "AP75", "APM", "APL", "AR", "oks_confidence_pearson"}
    assert all(0.0 <= metrics[key] <= 1.0 for key in ("AP", "AP50", "AR"))
    assert metrics["AP"] < 0.5  # an untrained network
    results = json.loads((tmp_path / "coco_keypoints_test_val2017_results.json").read_text())
    assert 0 < len(results) <= 118 and {r["image_id"] for r in results} <= {785, 40083, 196141, 197388}

    # Oracle keypoints on the detection boxes (each box takes its best-overlapping person): AP 1 after
    # OKS-NMS removes the duplicate poses of overlapping boxes; without NMS the duplicates cost AP.
    people = load_person_records(coco_root / "mmpose-tests/test_coco.json", coco_root / "mmpose-tests")
    oracle = []
    for record in dataset.records:
        candidates = [p for p in people if p["image_id"] == record["image_id"]]
        oracle.append(max(candidates, key=lambda p: _box_iou(p["box"], record["box"]))["keypoints"])
    outputs["pred"] = np.stack(oracle)
    outputs["confidence"] = np.full((len(dataset), 17), 0.9)
    assert module.evaluate(outputs, stage="test")["AP"] == pytest.approx(1.0)
    module.oks_nms_threshold = 1.0  # OKS <= 1: keeps every pose
    assert module.evaluate(outputs, stage="test")["AP"] < 0.99
