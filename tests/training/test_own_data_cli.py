"""Your own data end to end with the shipped configs and no code: a made-up 'kite' category as a COCO-format json
and as a landmark CSV -> fit (2 steps) -> test (AP / NME, PCK) -> predict (named columns, skeleton overlays)
from the checkpoint alone."""

import csv
import json
import logging
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from sampling_argmax.cli import main
from writers import KITE_NAMES, write_coco_kites, write_landmark_csv

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
CONFIGS = Path(__file__).resolve().parents[2] / "configs"

#: CPU-test sizes on top of the shipped configs: 64 x 64 input, 16 x 16 maps, thin head, one epoch of 2 steps.
TINY = ["--data.input_size", "[64, 64]", "--data.heatmap_size", "[16, 16]", "--data.batch_size", "4",
        "--data.num_workers", "0", "--model.model.init_args.deconv_channels", "16", "--trainer.max_epochs", "1",
        "--trainer.check_val_every_n_epoch", "1", "--trainer.logger", "false", "--trainer.enable_progress_bar",
        "false", "--trainer.enable_model_summary", "false"]


def _cli(args):
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main(args)


def _metrics(root, pattern):
    found = sorted(Path(root).glob(f"evaluation/{pattern}"))
    assert found, f"no {pattern} under {root}/evaluation"
    return json.loads(found[-1].read_text())


@pytest.mark.slow
def test_coco_format_dataset_fit_test_predict_with_no_code(tmp_path):
    train = write_coco_kites(tmp_path / "train", num_images=8, size=48, seed=0)
    val = write_coco_kites(tmp_path / "val", num_images=3, size=48, seed=1)
    run = tmp_path / "run"
    config = ["--config", str(CONFIGS / "coco_format.yaml")]
    _cli(["fit", *config, "--data.train_ann_file", str(train), "--data.train_image_dir", str(train.parent / "images"),
          "--data.val_ann_file", str(val), "--data.val_image_dir", str(val.parent / "images"),
          "--data.sigmas", "[0.06, 0.05, 0.05, 0.07, 0.07]", "--trainer.default_root_dir", str(run), *TINY])
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["state_dict"]["model.final.weight"].shape[0] == 5  # the model's output count follows K
    recorded = state["datamodule_hyper_parameters"]["metainfo"]
    assert recorded["names"] == list(KITE_NAMES) and recorded["flip_pairs"] == [[1, 2], [3, 4]]
    assert recorded["sigmas"] == [0.06, 0.05, 0.05, 0.07, 0.07] and recorded["category_id"] == 7
    assert {"AP", "AR"} <= set(_metrics(run, "coco_keypoints_val_val_metrics.json"))

    _cli(["test", *config, "--data.test_ann_file", str(val), "--data.test_image_dir", str(val.parent / "images"),
          "--trainer.default_root_dir", str(run), "--ckpt_path", str(run / "checkpoints" / "last.ckpt"), *TINY])
    metrics = _metrics(run, "coco_keypoints_test_test_metrics.json")
    assert 0.0 <= metrics["AP"] <= 1.0 and 0.0 <= metrics["AR"] <= 1.0

    # predict needs only the checkpoint: the jsons are gone
    images = tmp_path / "photos"
    shutil.copytree(val.parent / "images", images)
    shutil.rmtree(train.parent), shutil.rmtree(val.parent)
    out = tmp_path / "predictions"
    _cli(["predict", "--ckpt_path", str(run / "checkpoints" / "last.ckpt"), "--input", str(images), "--out", str(out),
          "--draw", "--no_progress"])
    rows = json.loads((out / "predictions.json").read_text())
    assert len(rows) == 3 and all(len(r["keypoints"]) == 5 and len(r["confidence"]) == 5 for r in rows)
    with open(out / "predictions.csv", newline="") as handle:
        header = next(csv.reader(handle))
    assert {"left_wing_x", "left_wing_y", "left_wing_confidence", "RightTail_x"} <= set(header)
    assert len(list((out / "overlays").glob("*.png"))) == 3


@pytest.mark.slow
def test_landmark_csv_fit_test_predict_with_no_code(tmp_path):
    train = write_landmark_csv(tmp_path / "train", num_images=8, size=48, seed=0)
    val = write_landmark_csv(tmp_path / "val", num_images=3, size=48, seed=1, visible_column=False)
    run = tmp_path / "run"
    config = ["--config", str(CONFIGS / "csv_landmarks.yaml")]
    _cli(["fit", *config, "--data.train_csv", str(train), "--data.train_image_dir", str(train.parent / "images"),
          "--data.val_csv", str(val), "--data.val_image_dir", str(val.parent / "images"),
          "--data.normalize", "[left_wing, right_wing]", "--trainer.default_root_dir", str(run), *TINY])
    _cli(["test", *config, "--data.test_csv", str(val), "--data.test_image_dir", str(val.parent / "images"),
          "--data.normalize", "[left_wing, right_wing]", "--trainer.default_root_dir", str(run),
          "--ckpt_path", str(run / "checkpoints" / "last.ckpt"), *TINY])
    out = tmp_path / "predictions"
    _cli(["predict", "--ckpt_path", str(run / "checkpoints" / "last.ckpt"), "--input", str(val), "--out", str(out),
          "--no_progress"])
    rows = json.loads((out / "predictions.json").read_text())
    assert len(rows) == 3 and all(len(r["keypoints"]) == 5 for r in rows)
    assert rows[0]["input"] == f"{val}:2"  # the CSV's line
    with open(out / "predictions.csv", newline="") as handle:
        assert "nose_confidence" in next(csv.reader(handle))


def test_landmark_csv_header_error_reaches_the_command_line(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("image,tip_x,tip_z\na.png,1,2\n")
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(CONFIGS / "csv_landmarks.yaml"), "--data.train_csv", str(bad)])
    assert "header column 3 must be 'tip_y'" in capsys.readouterr().err
