"""COCO end to end on the real samples: detection boxes -> model -> evaluate; flip test; smoke fits."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sampling_argmax.data.coco import COCODataModule
from sampling_argmax.data.coco_files import load_person_records
from sampling_argmax.methods import paper_method
from sampling_argmax.metrics.base import EvaluationContext
from sampling_argmax.metrics.coco import COCOEvaluator
from sampling_argmax.models import ResNetDeconv

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


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
    module = _detection_module(coco_root, batch_size=59, input_size=(64, 96), heatmap_size=(16, 24))
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
            assert logits.shape[-2:] == (24, 16)
            grid = method.predict(logits)
            homogeneous = torch.cat([grid, torch.ones_like(grid[..., :1])], dim=-1)
            rows["pred"].append(torch.einsum("bij,bkj->bki", batch["to_original"], homogeneous.double())[..., :2])
            rows["confidence"].append(method.confidence(logits))
            for key in ("index", "image_id", "bbox_score", "area"):
                rows[key].append(batch[key])
    outputs = {key: torch.cat(value).numpy() for key, value in rows.items()}
    evaluator = COCOEvaluator()
    context = EvaluationContext("test", tmp_path, module.references("test"), len(dataset))
    metrics = evaluator(outputs, context)
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
    assert evaluator(outputs, context)["AP"] == pytest.approx(1.0)
    assert COCOEvaluator(oks_nms_threshold=1.0)(outputs, context)["AP"] < 0.99  # OKS <= 1: keeps every pose


def test_flip_test_on_a_symmetric_input_is_mirror_consistent(coco_root):
    from sampling_argmax.readout import flip_average

    module = COCODataModule(
        data_root=str(coco_root / "mmpose-tests"), val_ann_file="test_coco.json", val_image_dir=".",
        input_size=(96, 128), heatmap_size=(24, 32),
    )
    image = module.build_dataset("val")[0]["image"][None]
    symmetric = (image + image.flip(-1)) / 2
    torch.manual_seed(0)
    model = ResNetDeconv(depth=18, num_keypoints=17, deconv_channels=32).eval()
    for layer in model.modules():  # a fresh head starts at std 0.001 (near-uniform maps): make them peaked
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            torch.nn.init.kaiming_normal_(layer.weight)

    method = paper_method("soft")
    partner = list(range(17))
    for left, right in module.flip_pairs:
        partner[left], partner[right] = right, left
    def flip_test_prediction(inputs):
        with torch.no_grad():
            return method.predict(flip_average(model(inputs), model(inputs.flip(-1)), module.flip_pairs))[0]

    width = 24
    for inputs in (image, symmetric):
        pred, pred_mirrored = flip_test_prediction(inputs), flip_test_prediction(inputs.flip(-1))
        # The flip-test prediction of the mirrored input is the mirrored prediction, joints swapped.
        torch.testing.assert_close(pred_mirrored[:, 0], width - 1 - pred[partner, 0], atol=1e-3, rtol=0)
        torch.testing.assert_close(pred_mirrored[:, 1], pred[partner, 1], atol=1e-3, rtol=0)
    # A symmetric input is its own mirror: left/right joints mirror each other, the nose is centred.
    torch.testing.assert_close(pred_mirrored, pred, atol=1e-3, rtol=0)
    assert abs(pred[0, 0].item() - (width - 1) / 2) < 1e-3
    with torch.no_grad():
        plain = method.predict(model(symmetric))[0]
    assert (plain[:, 0] - (width - 1 - plain[partner, 0])).abs().max() > 0.5  # the network alone is not symmetric


SMOKE_OVERRIDES = [
    "--data.num_workers", "0", "--data.batch_size", "4",
    "--data.input_size", "[32, 64]", "--data.heatmap_size", "[8, 16]",
    "--model.model.init_args.depth", "18", "--model.model.init_args.deconv_channels", "16",
    "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["soft", "soft_vr", "soft_dr", "samp_uni", "samp_tri", "samp_gau"])
def test_one_epoch_smoke_fit_on_coco_mini(coco_root, tmp_path, method):
    from sampling_argmax.training.lightning_cli import SamplingArgmaxCLI

    config = Path(__file__).resolve().parents[2] / "configs" / "coco.yaml"  # one config, the method by name
    cli = SamplingArgmaxCLI(args=[
        "fit", "--config", str(config), "--method", method, "--data.data_root", str(coco_root / "coco-mini"),
        "--data.val_split", "train2017", *SMOKE_OVERRIDES,
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "2",
        "--trainer.check_val_every_n_epoch", "1", "--trainer.default_root_dir", str(tmp_path),
        "--trainer.logger", "false",
    ])
    assert cli.model.method.name == method and cli.model.flip_test
    if method.startswith("samp"):  # the config's method_args: the Gumbel form the study chose (see its comment)
        assert cli.model.method.gumbel == "paper" and cli.model.method.num_samples == 30
    assert cli.trainer.global_step == 2
    logged = cli.trainer.callback_metrics
    assert torch.isfinite(logged["train/loss"]) and logged["val/num_samples"] == 8
    metrics = json.loads((tmp_path / "evaluation" / "coco_keypoints_val_train2017_metrics.json").read_text())
    assert set(metrics) >= {"AP", "AP50", "AP75", "APM", "APL", "AR", "oks_confidence_pearson"}
    assert metrics["AP"] == pytest.approx(float(logged["val/AP"]))
    if method != "samp_tri":
        return
    # `sampling-argmax test` of the trained weights on the detection boxes writes the results json and metrics
    SamplingArgmaxCLI(args=[
        "test", "--config", str(config), "--method", method, "--data.data_root", str(coco_root / "mmpose-tests"),
        "--data.test_ann_file", "test_coco.json", "--data.test_image_dir", ".",
        "--data.test_detection_file", "test_coco_det_AP_H_56.json", *SMOKE_OVERRIDES,
        "--data.batch_size", "40", "--trainer.default_root_dir", str(tmp_path), "--trainer.logger", "false",
        "--ckpt_path", "last",
    ])
    results = json.loads((tmp_path / "evaluation" / "coco_keypoints_test_val2017_results.json").read_text())
    assert 0 < len(results) <= 118 and all(len(r["keypoints"]) == 51 for r in results)
    assert "AP" in json.loads((tmp_path / "evaluation" / "coco_keypoints_test_val2017_metrics.json").read_text())
